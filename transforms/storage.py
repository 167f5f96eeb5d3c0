"""Where framebeam reads and writes (``Target``: a URL with its fsspec storage options), reading objects through fsspec, telling permanent storage failures from transient ones, and the one
checked, bounded reader every mask read goes through (``read_mask``).

Permanent failures (missing, forbidden, not a file) become findings on the record that needed the
object. s3fs raises PermissionError for a 403, gcsfs a plain OSError("Forbidden") (NOTES.md), so
messages are looked at too. A mask read never raises: what the storage client could not fix with its
own retries (5xx, resets, an unreachable endpoint) is ``mask_unreadable`` on the masks that needed it,
and an endpoint that refused a connection or could not be resolved is remembered by the worker process
for a few minutes so the next masks fail at once instead of each waiting out the client's retries.

``read_mask`` reads what the URI policy allowed and nothing else: local paths are resolved (symlinks)
and checked again, only regular files are opened (stat before open, O_NONBLOCK so a FIFO swapped in
cannot block), http(s) is fetched by a small client that follows no redirect, every read stops at
``max_bytes`` and at the mask's time budget (``deadline``), and a stalled or endless body is cut there.
"""
from __future__ import annotations

import errno
import os
import posixpath
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fsspec

from transforms.uris import _SECRET_NAME, HTTP_SCHEMES, MASK, UriPolicy, normalise_http, redact, scheme_of, strip_userinfo

_FORBIDDEN = re.compile(r"\b(401|403|Forbidden|Unauthori[sz]ed|AccessDenied|Access Denied|InvalidAccessKeyId|SignatureDoesNotMatch)\b", re.I)
_NOT_FOUND = re.compile(r"\b(404|Not ?Found|NoSuchKey|NoSuchBucket)\b", re.I)
# s3fs turns a 5xx/throttling answer that outlived botocore's retries into OSError(EREMOTEIO/EBUSY).
_TRANSIENT_ERRNOS = {getattr(errno, "EREMOTEIO", errno.EIO), errno.EBUSY, errno.EAGAIN, errno.ECONNRESET,
                     errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE}
_TRANSIENT_TEXT = re.compile(r"\b(50[0-4]|InternalError|ServiceUnavailable|SlowDown|RequestTimeout|Throttl\w*|Too Many Requests|429)\b", re.I)
# Client-library types that mean "the request did not get an answer": retry, never a finding.
_TRANSIENT_TYPES = {"ClientConnectionError", "ClientPayloadError", "ServerDisconnectedError", "ServerTimeoutError",
                    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
                    "HTTPClientError", "IncompleteRead", "FSTimeoutError", "RetryError"}
# Types meaning the endpoint itself cannot be reached (refused, unresolvable): remembered per process.
_UNREACHABLE_TYPES = {"ClientConnectorError", "ClientConnectorDNSError", "EndpointConnectionError", "ConnectTimeoutError",
                      "ConnectionRefusedError", "gaierror", "NewConnectionError"}
_CREDENTIAL_TYPES = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "DefaultCredentialsError",
                     "RefreshError", "NoAuthTokenError"}

DEFAULT_MAX_MASK_BYTES = 256 * 1024 * 1024
READ_CHUNK = 1 << 20
HTTP_ATTEMPTS = 3  # a 5xx/429/408 answer is retried this often (backoff 0.5 s, 1 s) within the time budget
UNREACHABLE_MEMORY_S = 300.0
NOT_FOUND = "no such file or object"  # one text for every storage, so outputs compare equal across them


# --- the storage target: one URL with the options to reach it -------------------------------------------

_SECRET_OPTION = re.compile(_SECRET_NAME, re.IGNORECASE)


def redact_options(options: Any) -> Any:
    """Storage options as they may be shown: values of credential-like keys (key, secret, token, password,
    aws_secret_access_key, ...) are '***', every other string goes through ``redact`` (user-info in URLs)."""
    if isinstance(options, Mapping):
        return {k: MASK if isinstance(k, str) and _SECRET_OPTION.fullmatch(k) and v not in (None, "", False)
                else redact_options(v) for k, v in options.items()}
    if isinstance(options, (list, tuple)):
        return type(options)(redact_options(v) for v in options)
    return redact(options) if isinstance(options, str) else options


_KINDS = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs"}


@dataclass(frozen=True, repr=False)
class Target:
    """A place in storage: a URL (local path, file://, gs://, s3://, memory://, ...) and the fsspec storage
    options that reach it (credentials, endpoint_url, anon, ...). What used to travel as ``(url, storage_options)``.

    Picklable as its two fields only (``__reduce__``): the fsspec filesystem is made on first use in each
    process (fsspec caches instances per options), never shipped to workers. The repr redacts secrets.
    In the spirit of pangeo-forge-recipes' ``FSSpecTarget`` (which holds a filesystem instead of a URL).
    """

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.url, Target):
            raise TypeError("Target(url=...) takes a URL; use Target.of(target) to pass a Target through")
        object.__setattr__(self, "storage_options", dict(self.storage_options or {}))

    @classmethod
    def of(cls, place: "Target | str", storage_options: Mapping[str, Any] | None = None) -> "Target":
        """``place`` itself when it is a Target, else the Target of that URL (with ``storage_options``)."""
        if isinstance(place, Target):
            if storage_options:
                raise TypeError("a Target carries its own storage options")
            return place
        return cls(str(place), storage_options or {})

    def __reduce__(self):
        return (Target, (self.url, dict(self.storage_options)))

    def __repr__(self) -> str:
        options = f", storage_options={redact_options(self.storage_options)!r}" if self.storage_options else ""
        return f"Target({redact(self.url)!r}{options})"

    def __str__(self) -> str:
        return redact(self.url)

    __hash__ = None  # the options are a dict

    # -- where it is --
    @cached_property
    def _located(self) -> tuple[Any, str]:
        fs, path = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs, path.rstrip("/") or path

    @property
    def fs(self):
        """The fsspec filesystem (made on first use in this process; fsspec shares instances per options)."""
        return self._located[0]

    @property
    def path(self) -> str:
        """The path inside ``fs`` (no protocol; local paths made absolute), without a trailing '/'."""
        return self._located[1]

    @property
    def protocol(self) -> str:
        """The URL's protocol as fsspec reads it ('file' for a plain path), without making the filesystem."""
        return fsspec.utils.get_protocol(self.url)

    @property
    def is_local(self) -> bool:
        """On this machine's disk (plain path or file://): links, renames and fsync work there."""
        return self.protocol in ("file", "local")

    @property
    def kind(self) -> str:
        """'local', 's3', 'gs' or 'other' (memory://, ...)."""
        return "local" if self.is_local else _KINDS.get(self.protocol, "other")

    def at(self, url: str) -> "Target":
        """Another URL reached with the same storage options."""
        return Target(url, self.storage_options)

    def join(self, *parts: str) -> "Target":
        """The Target of ``url/part/...`` (same options)."""
        return Target(posixpath.join(self.url.rstrip("/"), *parts), self.storage_options) if parts else self

    def sub(self, *parts: str) -> str:
        """The ``fs`` path of ``url/part/...`` (for calls on ``fs`` with several paths, e.g. ``mv``)."""
        return posixpath.join(self.path, *parts) if parts else self.path

    def with_path(self, path: str) -> "Target":
        """The Target of another ``fs`` path on the same storage (e.g. from a listing)."""
        return Target(self.url_of(path), self.storage_options)

    def url_of(self, path: str) -> str:
        """A URL for an ``fs`` path on this storage: plain for local disk, with the protocol otherwise."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    # -- what is there --
    def open(self, mode: str = "rb", **kwargs):
        return self.fs.open(self.path, mode, **kwargs)

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def isdir(self) -> bool:
        return self.fs.isdir(self.path)

    def size(self) -> int | None:
        return self.fs.size(self.path)

    def ls(self, detail: bool = False) -> list:
        return self.fs.ls(self.path, detail=detail)

    def glob(self, pattern: str) -> list[str]:
        """``fs`` paths matching ``pattern`` under this Target (sorted)."""
        return sorted(self.fs.glob(posixpath.join(self.path, pattern)))

    def read_bytes(self) -> bytes:
        with self.open("rb") as f:
            return f.read()

    def write_bytes(self, data: bytes) -> None:
        with self.open("wb") as f:
            f.write(data)

    def makedirs(self, exist_ok: bool = True) -> None:
        self.fs.makedirs(self.path, exist_ok=exist_ok)

    def rm(self, recursive: bool = False) -> None:
        self.fs.rm(self.path, recursive=recursive)


def is_transient(exc: BaseException) -> bool:
    """True when the same read may succeed later: connection trouble, timeouts, 5xx and throttling.

    Checked by type (class names, so no client library has to be importable) and, for the OSError
    s3fs and gcsfs make of an HTTP answer, by errno and message.
    """
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if any(cls.__name__ in _TRANSIENT_TYPES for cls in type(exc).__mro__):
        return True
    code = getattr(exc, "code", None)  # gcsfs.retry.HttpError carries the HTTP status
    if isinstance(code, int) and (code >= 500 or code in (408, 429)):
        return True
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return isinstance(exc, OSError) and type(exc) is OSError and bool(_TRANSIENT_TEXT.search(str(exc)))


def _type_names(exc: BaseException) -> set[str]:
    names = {cls.__name__ for cls in type(exc).__mro__}
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        names |= {cls.__name__ for cls in type(cause).__mro__}
    return names


def permanent_error_code(exc: BaseException) -> str | None:
    """'mask_not_found' / 'mask_unreadable' for permanent failures; None when a retry may succeed."""
    if isinstance(exc, FileNotFoundError):
        return "mask_not_found"
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return "mask_unreadable"
    if _type_names(exc) & _CREDENTIAL_TYPES:
        return "mask_unreadable"
    if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES, errno.ENXIO, errno.ENODEV):
        return "mask_unreadable"
    if is_transient(exc):
        return None
    text = str(exc)
    if _NOT_FOUND.search(text):
        return "mask_not_found"
    if _FORBIDDEN.search(text):
        return "mask_unreadable"
    if isinstance(exc, ValueError):  # malformed URL, unknown protocol: retrying will not help
        return "mask_unreadable"
    return None


def open_binary(place: Target | str, compression: str | None = None):
    """An fsspec file opened for binary reading (decompressed with ``compression``); credentials in
    the URI are never used (nor logged): only the Target's storage options are."""
    target = Target.of(place)
    return fsspec.open(strip_userinfo(target.url), "rb", compression=compression, **target.storage_options)


def read_bytes(place: Target | str) -> bytes:
    with open_binary(place) as f:
        return f.read()


# --- credentials: found once per process, with the chain that was tried --------------------------------

_credential_memo: dict[tuple, str | None] = {}
_memo_lock = threading.Lock()
_S3_OPTION_CREDENTIALS = ("key", "secret", "token", "anon", "profile", "session")


def credentials_problem(target: Target) -> str | None:
    """None when the storage client will find credentials for the Target (its options, or the chain of its
    URL's scheme), else a sentence naming the chain that was tried. Looked up once per process (the lookup
    may probe instance metadata).

    s3: botocore's chain (environment, shared files, SSO, container, EC2 instance metadata = IMDS at
    169.254.169.254 unless AWS_EC2_METADATA_DISABLED=true). gs: gcsfs tries Application Default
    Credentials, then GCE metadata (skipped with NO_GCE_CHECK=true), then reads anonymously, so no
    credentials is not an error there: a private bucket answers 401/403 (``mask_unreadable``).
    """
    scheme = scheme_of(target.url)
    if scheme not in ("s3", "s3a"):
        return None
    options = target.storage_options
    if any(options.get(k) for k in _S3_OPTION_CREDENTIALS):
        return None
    key = (scheme,)
    with _memo_lock:
        if key in _credential_memo:
            return _credential_memo[key]
    try:
        import botocore.session

        session = botocore.session.Session()
        resolver = session.get_component("credential_provider")
        tried = [p.METHOD for p in resolver.providers]
        found = session.get_credentials() is not None
        problem = None if found else (
            "no AWS credentials were found (botocore tried, in order: " + ", ".join(tried) + "; "
            + ("instance metadata (IMDS) was skipped: AWS_EC2_METADATA_DISABLED=true" if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
               else "iam-role is the EC2 instance metadata service at 169.254.169.254")
            + "). Give the workers credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role), "
            "or --storage-options '{\"anon\": true}' for a public bucket")
    except Exception as e:  # noqa: BLE001 - a broken config file is also "no credentials"
        problem = f"the AWS credential chain failed: {type(e).__name__}: {redact(str(e))[:300]}"
    with _memo_lock:
        _credential_memo[key] = problem
    return problem


# --- endpoints that cannot be reached: remembered so each mask does not wait out the retries again -------

_unreachable: dict[str, tuple[float, str]] = {}


def _endpoint_key(target: Target) -> str:
    uri = target.url
    scheme = scheme_of(uri)
    if scheme in ("s3", "s3a"):
        kwargs = target.storage_options.get("client_kwargs") or {}
        return "s3 " + str(kwargs.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "aws")
    if scheme in ("gs", "gcs"):
        return "gs " + os.environ.get("STORAGE_EMULATOR_HOST", "google")
    from urllib.parse import urlsplit

    return scheme + " " + urlsplit(uri).netloc


def _remember_unreachable(key: str, message: str) -> None:
    with _memo_lock:
        _unreachable[key] = (time.monotonic(), message)


def _known_unreachable(key: str) -> str | None:
    with _memo_lock:
        entry = _unreachable.get(key)
        if entry and time.monotonic() - entry[0] < UNREACHABLE_MEMORY_S:
            return entry[1]
        _unreachable.pop(key, None)
    return None


_probed: set[str] = set()


def _probe_endpoint(target: Target) -> None:
    """Once per process and endpoint: can a TCP connection be opened at all? A refused connection or an
    unresolvable name is then known at once, instead of after the client's retries on the first object
    (gcsfs: ~34 s) and remembered for the next ones. Skipped behind a proxy (the client goes through it)."""
    key = _endpoint_key(target)
    with _memo_lock:
        if key in _probed:
            return
        _probed.add(key)
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return
    from urllib.parse import urlsplit

    endpoint = key.split(" ", 1)[1]
    if endpoint == "google":
        host, port = "storage.googleapis.com", 443
    elif endpoint == "aws":
        return  # regional endpoints vary: botocore finds out (and fails fast on DNS errors itself)
    else:
        parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except (socket.gaierror, ConnectionRefusedError) as e:
        _remember_unreachable(key, f"{type(e).__name__} connecting to {host}:{port}: {e}")
    except OSError:
        pass  # a timeout or anything else: let the client try (and retry) on its own


def forget_unreachable() -> None:
    """For tests: forget endpoints and credential lookups remembered by this process."""
    with _memo_lock:
        _unreachable.clear()
        _credential_memo.clear()
        _probed.clear()


# --- the checked, bounded mask reader ------------------------------------------------------------------

class ReadProblem(Exception):
    """A mask that cannot be read: ``code`` is a finding code, ``message`` says why (already redacted)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):
        return (ReadProblem, (self.code, self.message))


class _Budget:
    """The mask's time budget (a DecodeDeadline: ``seconds`` and ``elapsed()``), or none."""

    def __init__(self, deadline):
        self.deadline = deadline

    def remaining(self) -> float:
        if self.deadline is None:
            return float("inf")
        return self.deadline.seconds - self.deadline.elapsed()

    def check(self, what: str, got: int) -> None:
        if self.remaining() <= 0:
            raise ReadProblem("mask_decode_timeout", f"reading the mask took over --mask-decode-timeout={self.deadline.seconds:g} s "
                                                     f"({what}, {got:,} bytes received); the storage is slow or the server stalls")


def _too_large(size: int, max_bytes: int, exact: bool = True) -> ReadProblem:
    what = f"{size:,} bytes" if exact else f"over {max_bytes:,} bytes (the read was cut there)"
    return ReadProblem("mask_file_too_large", f"the mask file has {what}, more than --max-mask-bytes={max_bytes:,}; "
                                              "raise the limit if such files are expected")


def read_mask(uri: str, *, policy: UriPolicy | None = None, storage_options: dict[str, Any] | None = None,
              max_bytes: int = DEFAULT_MAX_MASK_BYTES, deadline=None) -> bytes:
    """The bytes of one mask, read only if the policy allows what is really read; else ReadProblem.

    Never raises anything but ReadProblem (codes: uri_not_allowed, mask_not_found, mask_unreadable,
    mask_file_too_large, mask_decode_timeout).
    """
    policy = policy or UriPolicy()
    reason = policy.check(uri)
    if reason:
        raise ReadProblem("uri_not_allowed", f"not read: {reason}")
    budget = _Budget(deadline)
    scheme = scheme_of(uri)
    try:
        if not scheme:
            return _read_local(uri, policy, max_bytes, budget)
        if scheme in HTTP_SCHEMES:
            return _read_http(normalise_http(uri), max_bytes, budget)
        return _read_fsspec(Target(strip_userinfo(uri), storage_options or {}), max_bytes, budget)
    except ReadProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - every other failure becomes a finding, never a crash
        code = permanent_error_code(exc) or "mask_unreadable"
        raise ReadProblem(code, f"{type(exc).__name__}: {redact(str(exc))[:300]}") from None


def check_local_file(path: str, policy: UriPolicy, max_bytes: int) -> str:
    """The real path of a local mask after the checks (symlinks resolved, regular file, size): else ReadProblem."""
    real = os.path.realpath(path)
    reason = policy.check_local_real_path(real)
    if reason:
        raise ReadProblem("uri_not_allowed", f"not read: {reason}")
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        raise ReadProblem("mask_not_found", NOT_FOUND) from None
    except OSError as e:
        raise ReadProblem("mask_unreadable", f"{type(e).__name__}: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ReadProblem("mask_unreadable", f"not a regular file ({_file_kind(st.st_mode)}); only regular files are read")
    if st.st_size > max_bytes:
        raise _too_large(st.st_size, max_bytes)
    return real


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a file"


def _read_local(path: str, policy: UriPolicy, max_bytes: int, budget: _Budget) -> bytes:
    real = check_local_file(path, policy, max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise ReadProblem("mask_not_found", NOT_FOUND) from None
    except OSError as e:
        raise ReadProblem("mask_unreadable", f"{type(e).__name__}: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between the check and the open
            raise ReadProblem("mask_unreadable", f"not a regular file ({_file_kind(st.st_mode)}); only regular files are read")
        return _read_capped(lambda n: os.read(fd, n), max_bytes, budget, "reading the file", READ_CHUNK)
    finally:
        os.close(fd)


def _read_capped(read: Callable[[int], bytes], max_bytes: int, budget: "_Budget", what: str, block_size: int,
                 progress: list[int] | None = None) -> bytes:
    """Blocks from ``read(n)`` until it returns b"": a finding past ``max_bytes`` (however the source lied about its
    size) or past the time budget. ``progress[0]`` holds the bytes read so far, for the caller's messages."""
    chunks, got = [], 0
    while True:
        block = read(min(block_size, max_bytes + 1 - got))
        if not block:
            break
        got += len(block)
        if progress is not None:
            progress[0] = got
        chunks.append(block)
        if got > max_bytes:
            raise _too_large(got, max_bytes, exact=False)
        budget.check(what, got)
    return b"".join(chunks)


def _read_fsspec(target: Target, max_bytes: int, budget: _Budget) -> bytes:
    """An object through fsspec (the Target's URL has no user-info: credentials come from its options)."""
    problem = credentials_problem(target)
    if problem:
        raise ReadProblem("mask_unreadable", problem)
    key = _endpoint_key(target)
    _probe_endpoint(target)
    known = _known_unreachable(key)
    if known:
        raise ReadProblem("mask_unreadable", f"the storage endpoint cannot be reached ({known}); this worker does not try it again for "
                                             f"{UNREACHABLE_MEMORY_S:.0f} s by this worker")
    try:
        fs, path = target.fs, target.path
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise _too_large(size, max_bytes)
        with fs.open(path, "rb") as f:
            return _read_capped(f.read, max_bytes, budget, "reading the object", 4 * READ_CHUNK)
    except ReadProblem:
        raise
    except FileNotFoundError:
        raise ReadProblem("mask_not_found", NOT_FOUND) from None
    except Exception as exc:  # noqa: BLE001 - classified: every failure is a finding on this mask
        text = f"{type(exc).__name__}: {redact(str(exc))[:300]}"
        if _type_names(exc) & _UNREACHABLE_TYPES:
            _remember_unreachable(key, text)
            raise ReadProblem("mask_unreadable", f"the storage endpoint cannot be reached ({text}), after the client's retries") from None
        code = permanent_error_code(exc)
        if code is None:
            raise ReadProblem("mask_unreadable", f"{text}, still failing after the storage client's retries") from None
        raise ReadProblem(code, text) from None


def _read_http(url: str, max_bytes: int, budget: _Budget) -> bytes:
    """GET with no redirects, a byte cap and the time budget; 5xx/429/408 retried, then a finding."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    key = _endpoint_key(Target(url))
    known = _known_unreachable(key)
    if known:
        raise ReadProblem("mask_unreadable", f"the server cannot be reached ({known}); this worker does not try it again for "
                                             f"{UNREACHABLE_MEMORY_S:.0f} s by this worker")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    last = ""
    for attempt in range(HTTP_ATTEMPTS):
        if attempt:
            pause = min(0.5 * 2 ** (attempt - 1), max(budget.remaining(), 0))
            time.sleep(pause)
            budget.check(f"retrying after {last}", 0)
        timeout = max(0.05, min(30.0, budget.remaining()))
        conn = conn_class(parts.hostname, parts.port, timeout=timeout)
        try:
            try:
                conn.request("GET", target, headers={"User-Agent": "framebeam", "Accept-Encoding": "identity"})
                sock = conn.sock  # kept: the connection forgets it once the answer says it will close
                resp = conn.getresponse()
            except (ConnectionRefusedError, socket.gaierror) as e:
                text = f"{type(e).__name__}: {e}"
                _remember_unreachable(key, text)
                raise ReadProblem("mask_unreadable", f"the server cannot be reached ({text})") from None
            except socket.timeout:
                budget.check("waiting for the server to answer", 0)
                last = "no answer in time"
                continue
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            status = resp.status
            if 300 <= status < 400:
                location = redact(resp.getheader("Location") or "nowhere")
                raise ReadProblem("mask_unreadable", f"the server answered {status} (redirect to {location}); redirects are not followed, "
                                                     "since the URI policy could not check where they lead: use the final URI")
            if status in (404, 410):
                raise ReadProblem("mask_not_found", f"the server answered {status} {resp.reason}")
            if status >= 500 or status in (408, 429):
                last = f"HTTP {status} {resp.reason}"
                continue
            if status >= 400:
                raise ReadProblem("mask_unreadable", f"the server answered {status} {resp.reason}")
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _too_large(int(length), max_bytes)
            def read_block(n: int, sock=sock, resp=resp) -> bytes:
                sock.settimeout(max(0.05, min(30.0, budget.remaining())))  # a stalled body waits no longer than the budget
                return resp.read1(n)

            progress = [0]
            try:
                return _read_capped(read_block, max_bytes, budget, "reading the body", 256 * 1024, progress)
            except socket.timeout:
                budget.check("waiting for more of the body", progress[0])
                last = f"the body stalled after {progress[0]:,} bytes"
                continue
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                last = f"{type(e).__name__} after {progress[0]:,} bytes: {e}"
                continue
        finally:
            conn.close()
    raise ReadProblem("mask_unreadable", f"{redact(last)}, still failing after {HTTP_ATTEMPTS} attempts")


def open_mask_file(uri: str, *, policy: UriPolicy | None = None, storage_options: dict[str, Any] | None = None,
              max_bytes: int = DEFAULT_MAX_MASK_BYTES, deadline=None):
    """A seekable binary file of a mask video, opened under the same checks as ``read_mask`` (raises
    ReadProblem). Local and bucket objects are streamed (size checked first); http(s) is read whole."""
    import io

    policy = policy or UriPolicy()
    reason = policy.check(uri)
    if reason:
        raise ReadProblem("uri_not_allowed", f"not read: {reason}")
    scheme = scheme_of(uri)
    try:
        if not scheme:
            real = check_local_file(uri, policy, max_bytes)
            extra = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            f = open(real, "rb", opener=lambda p, flags: os.open(p, flags | extra))  # noqa: SIM115 - the caller closes it
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                f.close()
                raise ReadProblem("mask_unreadable", "not a regular file; only regular files are read")
            return f
        if scheme in HTTP_SCHEMES:
            return io.BytesIO(read_mask(uri, policy=policy, max_bytes=max_bytes, deadline=deadline))
        target = Target(strip_userinfo(uri), storage_options or {})
        problem = credentials_problem(target)
        if problem:
            raise ReadProblem("mask_unreadable", problem)
        _probe_endpoint(target)
        known = _known_unreachable(_endpoint_key(target))
        if known:
            raise ReadProblem("mask_unreadable", f"the storage endpoint could not be reached a moment ago ({known})")
        fs, path = target.fs, target.path
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise _too_large(size, max_bytes)
        return fs.open(path, "rb")
    except ReadProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is a finding on the masks that needed it
        text = f"{type(exc).__name__}: {redact(str(exc))[:300]}"
        if scheme and _type_names(exc) & _UNREACHABLE_TYPES:
            _remember_unreachable(_endpoint_key(Target(uri, storage_options or {})), text)
        raise ReadProblem(permanent_error_code(exc) or "mask_unreadable", text) from None
