"""URIs inside frames: resolving relative ones, removing credentials, and the read policy.

URIs in frames are attacker-controlled (NOTES.md): ``s3://KEY:SECRET@bucket/k`` would put a secret into
tables and logs, ``file:///etc/passwd`` or ``../../`` reach the worker's disk, ``http://169.254.169.254``
reaches cloud credentials. Every text that leaves the run goes through ``redact`` (one function: tables,
summary.json, _SUCCESS, the report, logs, error messages), and a mask URI is read only when
``UriPolicy.check`` allows it (``transforms.storage.read_mask`` re-checks what is really read).
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")

REMOTE_SCHEMES = ("gs", "gcs", "s3", "s3a")
HTTP_SCHEMES = ("http", "https")
MASK = "***"

# --- redaction: the one function ---------------------------------------------------------------------

# 'scheme://' also as written inside JSON ('https:\/\/'), JSON-unicode-escaped or percent-encoded.
_SLASH = r"(?:/|\\{1,3}/|\\u002[fF]|%2[fF])"
_COLON = r"(?::|\\u003[aA]|%3[aA])"
_SCHEME_SEP = r"[a-zA-Z][a-zA-Z0-9+.\-]*" + _COLON + _SLASH + _SLASH
# Credential-like parameters (query strings, 'k=v' in messages): the name, then '=' (maybe encoded).
_SECRET_NAME = (
    r"(?:[\w.\-]*(?:passw(?:or)?d|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|"
    r"signature|credential|session[_\-]?key)[\w.\-]*|key|sig|pass|auth|authorization|AWSAccessKeyId|client_id_secret)"
)
_SECRET_EQUALS = r"(?:=|%3[dD]|\\u003[dD])"
_SECRET_VALUE = r"(?:(?!\\u0026|\\\"|%26)[^&#\s\"'<>])+"
# What _SECRET_NAME + _SECRET_EQUALS + _SECRET_VALUE matches, in linear time (``_secret_params_sub``): the
# name before '=' is always a whole run of [\w.-] (what follows it is not one), so each run is found once
# and its name tested, instead of the regex backtracking through every split of a long run (quadratic: a
# 64 KB run took 3 s).
_NAME_THEN_EQUALS = re.compile(r"(?<![\w.\-])([\w.\-]+)" + _SECRET_EQUALS, re.IGNORECASE)
_SECRET_IN_NAME = re.compile(
    r"passw(?:or)?d|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|signature|"
    r"credential|session[_\-]?key",
    re.IGNORECASE,
)
_SECRET_WHOLE_NAME = re.compile(r"key|sig|pass|auth|authorization|AWSAccessKeyId|client_id_secret", re.IGNORECASE)
_SECRET_VALUE_RE = re.compile(_SECRET_VALUE, re.IGNORECASE)
_BEARER = re.compile(r"\b(Bearer|Basic|token)\s+[A-Za-z0-9._~+/\-]{8,}=*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every credential replaced by '***': user-info of any URI-shaped string (also
    JSON-escaped or percent-encoded), credential-like parameters (password=, token=, api_key=,
    X-Amz-Signature=, ...) and bearer tokens. THE function every output and log line goes through."""
    if not text:
        return text
    if "@" in text or "%40" in text or "\\u0040" in text:
        text = _userinfo_sub(text)
    if "=" in text or "%3" in text or "\\u003" in text:
        text = _secret_params_sub(text)
    if " " in text:
        text = _BEARER.sub(lambda m: m.group(1) + " " + MASK, text)
    return text


def _secret_params_sub(text: str) -> str:
    """Each credential-like 'name=value' with its value replaced (``_SECRET_NAME`` then '=' then a value)."""
    out, pos, search = [], 0, 0
    while (m := _NAME_THEN_EQUALS.search(text, search)) is not None:
        name = m.group(1)
        value = _SECRET_VALUE_RE.match(text, m.end())
        if value is None or not (_SECRET_IN_NAME.search(name) or _SECRET_WHOLE_NAME.fullmatch(name)):
            search = m.start() + 1
            continue
        out.append(text[pos:m.end()])
        out.append(MASK)
        pos = search = value.end()
    out.append(text[pos:])
    return "".join(out)


def _userinfo_sub(text: str) -> str:
    # Line by line so that the greedy "last '@'" never reaches across lines.
    if "\n" in text or "\r" in text:
        return "".join(_userinfo_line(part) for part in re.split(r"(\r\n|\r|\n)", text))
    return _userinfo_line(text)


_COLON_SLASHES = re.compile(_COLON + _SLASH + _SLASH)
_SCHEME_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_CHARS = _SCHEME_LETTERS | frozenset("0123456789+.-")
_AT_RE = re.compile(r"@|%40|\\u0040")
_STOP = re.compile(r"(?<!\\)[\"<>]")


def scheme_separators(line: str) -> list[tuple[int, int]]:
    """The (start, end) of every 'scheme://' in ``line``: the spans ``re.finditer(_SCHEME_SEP, line)`` gives, found in
    linear time. The regex tries every start inside a long run of scheme characters and is quadratic (a
    100 KB token took 30 s); here each '://' is found first and its scheme is read backwards."""
    spans: list[tuple[int, int]] = []
    floor = 0
    for m in _COLON_SLASHES.finditer(line):
        start = m.start()
        while start > floor and line[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < m.start() and line[start] not in _SCHEME_LETTERS:
            start += 1
        if start < m.start():
            spans.append((start, m.end()))
            floor = m.end()
    return spans


def _userinfo_line(line: str) -> str:
    """Each 'scheme://' of the line with its user-info (if any) replaced; see ``_userinfo_end``."""
    out, pos = [], 0
    seps = scheme_separators(line)
    for i, (sep_start, sep_end) in enumerate(seps):
        if sep_start < pos:
            continue
        end = seps[i + 1][0] if i + 1 < len(seps) else len(line)
        stop = _STOP.search(line, sep_end, end)
        if stop:
            end = stop.start()
        at = _userinfo_end(line, sep_end, end)
        if at is None:
            continue
        out.append(line[pos:sep_end])
        out.append(MASK)
        pos = at
    out.append(line[pos:])
    return "".join(out)


_SLASH_RE = re.compile(_SLASH)
_PORT = re.compile(r"(?::|\\u003[aA]|%3[aA])(\d+)$")


def _userinfo_end(line: str, sep_end: int, end: int) -> int | None:
    """Where the '@' ending the user-info of the 'scheme://' ending at ``sep_end`` starts, or None when there is none.

    The authority ends at the first '/': an '@' before it ends the user-info (the last one: passwords
    hold '@', '#', ' '). When that part is 'user:pass' (a ':' not followed by a port number), the
    password itself held a '/', and the user-info runs to the last '@' of the URI.
    """
    ats = list(_AT_RE.finditer(line, sep_end, end))
    if not ats:
        return None
    slash = _SLASH_RE.search(line, sep_end, end)
    head_end = slash.start() if slash else end
    in_head = [a for a in ats if a.start() < head_end]
    if in_head:
        return in_head[-1].start()
    head = line[sep_end:head_end]
    if re.search(r":|\\u003[aA]|%3[aA]", head) and not _PORT.search(head):
        return ats[-1].start()
    return None


# Names kept for call sites: a single URI and free text are redacted the same way.
redact_uri = redact
redact_text = redact


def redact_value(value):
    """``redact`` applied to every string inside a JSON-like value (dict keys and values, lists)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


class _RedactingRecords:
    """A log record factory: every record's message (and traceback text) goes through ``redact``."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, *args, **kwargs):
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to logging's own error path
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            import logging

            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record


def install_log_redaction() -> None:
    """Redact every log record of this process (idempotent): handlers, pytest's caplog, Beam's relays."""
    import logging

    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecords):
        logging.setLogRecordFactory(_RedactingRecords(factory))


def scheme_of(uri: str) -> str:
    """'' for a plain local path."""
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else ""


def strip_userinfo(uri: str) -> str:
    """The URI without ``user:password@``: credentials come from the standard chains, never from frames.

    The authority normally ends at the first '/', but passwords are written unencoded with '/', '#' or
    spaces: when the text before the first '/' is 'user:pass' (for http, a port that is not a number;
    for buckets, any ':'), the user-info runs to the next '@'.
    """
    m = _SCHEME.match(uri)
    if not m or "@" not in uri:
        return uri
    rest = uri[m.end():]
    slash = rest.find("/")
    head = rest if slash < 0 else rest[:slash]
    if "@" in head:
        return uri[: m.end()] + rest[head.rfind("@") + 1:]
    if ":" in head:
        port = head.rsplit(":", 1)[1]
        if not (m.group(1).lower() in HTTP_SCHEMES and port.isdigit()):
            at = rest.find("@", len(head))
            if at >= 0:
                return uri[: m.end()] + rest[at + 1:]
    return uri


# --- where a URI points ------------------------------------------------------------------------------

_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fF]|5[cC])|\\")


def _decode_unreserved(path: str) -> str:
    """Percent-encoded unreserved characters (RFC 3986 2.3: letters, digits, '-._~') decoded, so
    '%2e%2e' is the '..' a server will see; every other escape kept (upper-cased)."""
    def one(m: re.Match) -> str:
        c = chr(int(m.group(1), 16))
        return c if (c.isascii() and (c.isalnum() or c in "-._~")) else "%" + m.group(1).upper()
    return _UNRESERVED.sub(one, path)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4: what '/ok/../secret' means to a server ('/secret'); a trailing '/' is kept."""
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def normalise_http(uri: str) -> str:
    """An http(s) URI as the server will understand it: scheme and host lower-case, default port
    dropped, unreserved escapes decoded, dot segments removed, user-info and fragment dropped."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(strip_userinfo(uri))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == {"http": 80, "https": 443}.get(scheme) else f"{host}:{port}"
    path = _remove_dot_segments(_decode_unreserved(parts.path or "/"))
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def resolve_uri(uri: str, shard: str) -> str:
    """A mask URI as read: absolute URIs unchanged; a relative path resolves against the shard's folder.

    ``masks/a.png`` in ``s3://b/data/part-0.jsonl`` is ``s3://b/data/masks/a.png``. The result is
    normalised (``..`` collapsed, for http also ``%2e%2e``), so the URI policy sees where a traversal
    really points.
    """
    if scheme_of(uri) or uri.startswith("/"):
        if uri.startswith("file://"):
            return posixpath.normpath(uri[len("file://"):]) or "/"
        if not scheme_of(uri):
            return posixpath.normpath(uri)
        if scheme_of(uri) in HTTP_SCHEMES:
            return normalise_http(uri)
        return uri
    base = shard[len("file://"):] if shard.startswith("file://") else shard
    m = _SCHEME.match(base)
    prefix, path = (base[: m.end()], base[m.end():]) if m else ("", base)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), uri))
    if scheme_of(base) in HTTP_SCHEMES:
        return normalise_http(prefix + joined)
    return prefix + joined


@dataclass(frozen=True)
class UriPolicy:
    """Which mask URIs may be read.

    With ``allowed_prefixes``: only URIs starting with one of them (after resolution). Without: gs://,
    s3:// and local paths, and http(s):// only with ``allow_http``. Other fsspec protocols (zip://,
    memory://, ftp://, chained ``::`` URLs, ...) are always refused: resolving them can touch local disk.
    ``check`` looks at the text; ``transforms.storage.read_mask`` checks again what is really read
    (local symlinks resolved) and follows no redirect.
    """

    allowed_prefixes: tuple[str, ...] = ()
    allow_http: bool = False

    def check(self, resolved: str) -> str | None:
        """None when reading ``resolved`` is allowed, else the reason (for the finding's message)."""
        scheme = scheme_of(resolved)
        if "::" in resolved:
            return "chained fsspec URLs ('::') are never read"
        if scheme in HTTP_SCHEMES and not self.allow_http:
            return "http(s) mask URIs are read only with --allow-http"
        if scheme and scheme not in REMOTE_SCHEMES + HTTP_SCHEMES:
            return f"the {scheme}:// protocol is not allowed for masks (only local paths, gs://, s3://, http(s)://)"
        if scheme in HTTP_SCHEMES:
            from urllib.parse import urlsplit

            if _ENCODED_SEPARATOR.search(urlsplit(resolved).path):
                return "an encoded '/' or '\\' in an http path can step out of any prefix on the server"
            resolved = normalise_http(resolved)
        elif not scheme:
            resolved = posixpath.normpath(resolved)
        if self.allowed_prefixes:
            if not any(_within(resolved, _normalise_prefix(p)) for p in self.allowed_prefixes):
                return "outside the allowed prefixes " + ", ".join(redact(p) for p in self.allowed_prefixes) + " (--allow-uri-prefix)"
        return None

    def check_local_real_path(self, real: str) -> str | None:
        """For a local path after symlinks are resolved: inside a prefix, itself resolved the same way."""
        import os

        if not self.allowed_prefixes:
            return None
        for p in self.allowed_prefixes:
            prefix = _normalise_prefix(p)
            if scheme_of(prefix):
                continue
            if _within(real, os.path.realpath(prefix)):
                return None
        return (f"it resolves (symlinks followed) to {real}, outside the allowed prefixes "
                + ", ".join(redact(p) for p in self.allowed_prefixes) + " (--allow-uri-prefix)")


def _normalise_prefix(prefix: str) -> str:
    """A prefix in the form ``resolve_uri`` gives: file:// and local paths as normalised plain paths,
    http(s) normalised like the URIs it is compared with."""
    if prefix.startswith("file://"):
        return posixpath.normpath(prefix[len("file://"):]) or "/"
    scheme = scheme_of(prefix)
    if scheme in HTTP_SCHEMES:
        normalised = normalise_http(prefix)
        # normalise_http gives '/' for an empty path; keep "http://h" meaning the whole host.
        return normalised
    return prefix if scheme else posixpath.normpath(prefix)


def _within(uri: str, prefix: str) -> bool:
    # Prefix match on a path boundary: /data/masks must not allow /data/masks-private.
    if uri == prefix:
        return True
    return uri.startswith(prefix if prefix.endswith("/") else prefix + "/")
