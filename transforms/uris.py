"""URIs inside frames: resolving relative ones, removing credentials, and the read policy.

URIs in frames are attacker-controlled (NOTES.md): ``s3://KEY:SECRET@bucket/k`` would put a secret into
tables and logs, ``file:///etc/passwd`` or ``../../`` reach the worker's disk, ``http://169.254.169.254``
reaches cloud credentials. Every URI is redacted before it is stored anywhere, and a mask URI is read
only when ``UriPolicy.check`` allows it.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@?#]*@")
_SECRET_QUERY = re.compile(
    r"([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|X-Goog-Credential|"
    r"Signature|sig|token|access_token|AWSAccessKeyId|key)=)[^&#]*",
    re.IGNORECASE,
)

REMOTE_SCHEMES = ("gs", "gcs", "s3", "s3a")
HTTP_SCHEMES = ("http", "https")


def scheme_of(uri: str) -> str:
    """'' for a plain local path."""
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else ""


# user:password@ after any scheme inside free text (a record's raw JSON, an error message).
_EMBEDDED_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@?#\s\"'<>]*@")


def redact_text(text: str) -> str:
    """Text (a URI, a record's raw JSON, an error message) with every user-info and signed-URL secret
    replaced by '***': safe for tables, findings and logs."""
    if "@" in text:
        text = _EMBEDDED_USERINFO.sub(r"\1***@", text)
    if "=" in text:
        text = _SECRET_QUERY.sub(r"\1***", text)
    return text


redact_uri = redact_text  # the name call sites use for a single URI


def strip_userinfo(uri: str) -> str:
    """The URI without ``user:password@``: credentials come from the standard chains, never from frames."""
    return _USERINFO.sub(r"\1", uri) if "@" in uri else uri


def resolve_uri(uri: str, shard: str) -> str:
    """A mask URI as read: absolute URIs unchanged; a relative path resolves against the shard's folder.

    ``masks/a.png`` in ``s3://b/data/part-0.jsonl`` is ``s3://b/data/masks/a.png``. The result is
    normalised (``..`` collapsed), so the URI policy sees where a traversal really points.
    """
    if scheme_of(uri) or uri.startswith("/"):
        if uri.startswith("file://"):
            return posixpath.normpath(uri[len("file://"):]) or "/"
        if not scheme_of(uri):
            return posixpath.normpath(uri)
        return uri
    base = shard[len("file://"):] if shard.startswith("file://") else shard
    m = _SCHEME.match(base)
    prefix, path = (base[: m.end()], base[m.end():]) if m else ("", base)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), uri))
    return prefix + joined


@dataclass(frozen=True)
class UriPolicy:
    """Which mask URIs may be read.

    With ``allowed_prefixes``: only URIs starting with one of them (after resolution). Without: gs://,
    s3:// and local paths, and http(s):// only with ``allow_http``. Other fsspec protocols (zip://,
    memory://, ftp://, chained ``::`` URLs, ...) are always refused: resolving them can touch local disk.
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
        if self.allowed_prefixes:
            if not any(_within(resolved, _normalise_prefix(p)) for p in self.allowed_prefixes):
                return "outside the allowed prefixes " + ", ".join(redact_uri(p) for p in self.allowed_prefixes) + " (--allow-uri-prefix)"
        return None


def _normalise_prefix(prefix: str) -> str:
    """A prefix in the form ``resolve_uri`` gives: file:// and local paths as normalised plain paths."""
    if prefix.startswith("file://"):
        return posixpath.normpath(prefix[len("file://"):]) or "/"
    return prefix if scheme_of(prefix) else posixpath.normpath(prefix)


def _within(uri: str, prefix: str) -> bool:
    # Prefix match on a path boundary: /data/masks must not allow /data/masks-private.
    if uri == prefix:
        return True
    return uri.startswith(prefix if prefix.endswith("/") else prefix + "/")
