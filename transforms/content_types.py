"""A mask's content type: the declared one, else inferred from its URI (mask entries often omit it)."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

SUFFIX_TYPES: dict[str, str] = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".avi": "video/x-msvideo",
}
GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream")


def infer_content_type(uri: str | None, declared: str | None) -> str | None:
    """The declared type (lower case, parameters dropped) unless missing or generic, else the URI suffix's."""
    if declared:
        declared_type = declared.split(";", 1)[0].strip().lower()
        if declared_type and declared_type not in GENERIC_TYPES:
            return declared_type
    if not uri:
        return None
    path = urlsplit(uri).path if uri.lower().startswith(("http://", "https://")) else uri
    return SUFFIX_TYPES.get(os.path.splitext(path)[1].lower())


def is_video_type(content_type: str | None) -> bool:
    return bool(content_type) and content_type.startswith("video/")
