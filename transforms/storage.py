"""Reading objects through fsspec, and telling permanent storage failures from transient ones.

Permanent failures (missing, forbidden, not a file) become findings on the record that needed the
object; transient ones (resets, timeouts, 5xx after the client's own retries) raise, so the runner
retries the bundle. s3fs raises PermissionError for a 403, gcsfs a plain OSError("Forbidden")
(NOTES.md), so messages are looked at too.
"""
from __future__ import annotations

import errno
import re
from typing import Any

import fsspec

from transforms.uris import strip_userinfo

_FORBIDDEN = re.compile(r"\b(403|Forbidden|AccessDenied|Access Denied|InvalidAccessKeyId|SignatureDoesNotMatch)\b", re.I)
_NOT_FOUND = re.compile(r"\b(404|Not ?Found|NoSuchKey|NoSuchBucket)\b", re.I)
# s3fs turns a 5xx/throttling answer that outlived botocore's retries into OSError(EREMOTEIO/EBUSY).
_TRANSIENT_ERRNOS = {getattr(errno, "EREMOTEIO", errno.EIO), errno.EBUSY, errno.EAGAIN, errno.ECONNRESET,
                     errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE}
_TRANSIENT_TEXT = re.compile(r"\b(50[0-4]|InternalError|ServiceUnavailable|SlowDown|RequestTimeout|Throttl\w*|Too Many Requests|429)\b", re.I)
# Client-library types that mean "the request did not get an answer": retry, never a finding.
_TRANSIENT_TYPES = {"ClientConnectionError", "ClientPayloadError", "ServerDisconnectedError", "ServerTimeoutError",
                    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
                    "HTTPClientError", "IncompleteRead", "FSTimeoutError", "RetryError"}


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


def permanent_error_code(exc: BaseException) -> str | None:
    """'mask_not_found' / 'mask_unreadable' for permanent failures; None when a retry may succeed."""
    if isinstance(exc, FileNotFoundError):
        return "mask_not_found"
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
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


def open_binary(uri: str, storage_options: dict[str, Any] | None = None, compression: str | None = None):
    """An fsspec file opened for binary reading (decompressed with ``compression``); credentials in
    the URI are never used (nor logged)."""
    return fsspec.open(strip_userinfo(uri), "rb", compression=compression, **(storage_options or {}))


def read_bytes(uri: str, storage_options: dict[str, Any] | None = None) -> bytes:
    with open_binary(uri, storage_options) as f:
        return f.read()
