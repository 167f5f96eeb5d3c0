"""Reading objects through fsspec, and telling permanent storage failures from transient ones.

Permanent failures (missing, forbidden, not a file) become findings on the record that needed the
object; transient ones (resets, timeouts, 5xx after the client's own retries) raise, so the runner
retries the bundle. s3fs raises PermissionError for a 403, gcsfs a plain OSError("Forbidden")
(NOTES.md), so messages are looked at too.
"""
from __future__ import annotations

import re
from typing import Any

import fsspec

from transforms.uris import strip_userinfo

_FORBIDDEN = re.compile(r"\b(403|Forbidden|AccessDenied|Access Denied|InvalidAccessKeyId|SignatureDoesNotMatch)\b", re.I)
_NOT_FOUND = re.compile(r"\b(404|Not ?Found|NoSuchKey|NoSuchBucket)\b", re.I)


def permanent_error_code(exc: BaseException) -> str | None:
    """'mask_not_found' / 'mask_unreadable' for permanent failures; None when a retry may succeed."""
    if isinstance(exc, FileNotFoundError):
        return "mask_not_found"
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return "mask_unreadable"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return None
    text = str(exc)
    if _NOT_FOUND.search(text):
        return "mask_not_found"
    if _FORBIDDEN.search(text):
        return "mask_unreadable"
    if isinstance(exc, ValueError):  # malformed URL, unknown protocol: retrying will not help
        return "mask_unreadable"
    return None


def open_binary(uri: str, storage_options: dict[str, Any] | None = None):
    """An fsspec file opened for binary reading; credentials in the URI are never used (nor logged)."""
    return fsspec.open(strip_userinfo(uri), "rb", **(storage_options or {}))


def read_bytes(uri: str, storage_options: dict[str, Any] | None = None) -> bytes:
    with open_binary(uri, storage_options) as f:
        return f.read()
