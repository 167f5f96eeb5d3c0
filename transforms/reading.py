"""Reading frame shards: expand globs, open (any fsspec file system, any compression), stream records.

A JSON Lines shard is streamed line by line with a bounded line length, never loaded whole. A ``.json``
shard (the ClearML WebApp export: one frame or an array of frames) is parsed as one document.
Records are handed on in chunks (``RecordChunk``) so the per-element cost of Beam is paid once per
chunk, not once per frame.
"""
from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec
import orjson
from fsspec.utils import infer_compression

from transforms.findings import Finding
from transforms.storage import is_transient, open_binary
from transforms.uris import redact_uri

BOM = b"\xef\xbb\xbf"
RAW_TEXT_LIMIT = 64 * 1024  # issues.raw keeps this much of a record that could not be parsed
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".zstd", ".xz")


class RawRecord(NamedTuple):
    """One record as read. ``problem`` is set when reading already knows it cannot be a frame."""

    line: int | None
    data: bytes
    problem: Finding | None = None


class RecordChunk(NamedTuple):
    shard: str
    records: list[RawRecord]


@dataclass(frozen=True)
class ReadLimits:
    max_record_bytes: int = 16 * 1024 * 1024
    chunk_records: int = 1000
    chunk_bytes: int = 8 * 1024 * 1024
    split_bytes: int = 64 * 1024 * 1024  # uncompressed JSON Lines shards larger than this are read in parts
    max_document_bytes: int = 1024 * 1024 * 1024  # a .json document is parsed whole: refuse larger ones


class ShardPart(NamedTuple):
    """Lines of a shard starting in bytes [start, end) (end None: to the end); first_line numbers the first."""

    uri: str
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


def plan_shard(uri: str, limits: ReadLimits = ReadLimits(), storage_options: dict[str, Any] | None = None) -> list[ShardPart]:
    """Split a large uncompressed JSON Lines shard into parts that workers read in parallel.

    Parts start right after a newline; one sequential pass counts the newlines before each part so
    records keep their physical line numbers (memchr speed: ~20x cheaper than parsing the records).
    Compressed shards and .json documents cannot be split and are read whole.
    """
    if infer_compression(uri) or shard_format(uri) == "json":
        return [ShardPart(uri)]
    try:
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        size = fs.size(path)
    except (FileNotFoundError, PermissionError, ValueError, OSError):
        return [ShardPart(uri)]  # reading it reports the problem
    if not size or size <= limits.split_bytes:
        return [ShardPart(uri)]
    parts: list[ShardPart] = []
    start, first_line, lines, pos = 0, 1, 0, 0
    target = limits.split_bytes
    with fs.open(path, "rb") as f:
        while True:
            block = f.read(4 * 1024 * 1024)
            if not block:
                break
            while pos + len(block) > target:
                cut = block.find(b"\n", max(target - pos, 0))
                if cut < 0:
                    break  # the part ends in a later block
                boundary = pos + cut + 1
                lines_before = lines + block.count(b"\n", 0, cut + 1)
                if boundary < size:
                    parts.append(ShardPart(uri, start, boundary, first_line))
                    start, first_line = boundary, lines_before + 1
                target = boundary + limits.split_bytes
            lines += block.count(b"\n")
            pos += len(block)
    parts.append(ShardPart(uri, start, None, first_line))
    return parts


def expand_input(pattern: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Shard URIs matching one glob (sorted, with the protocol kept: 's3://b/k', not 'b/k')."""
    fs, _, paths = fsspec.get_fs_token_paths(pattern, storage_options=storage_options or {})
    if not _is_glob(pattern) and not paths:
        paths = [fs._strip_protocol(pattern)]
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    local = "file" in protocols
    return [p if local else fs.unstrip_protocol(p) for p in sorted(paths) if not fs.isdir(p)]


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def shard_format(uri: str) -> str:
    """'json' for a JSON document file (.json), else 'jsonl'. Compression suffixes are ignored."""
    name = uri.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return "json" if name.endswith(".json") else "jsonl"


def iter_shard(source: str | ShardPart, limits: ReadLimits = ReadLimits(), storage_options: dict[str, Any] | None = None) -> Iterator[RawRecord]:
    """Every non-blank record of a shard (or part of one), then (if reading failed part-way) one
    ``shard_unreadable`` problem.

    Permanent failures (missing file, permission, corrupt compression) become findings; transient ones
    (connection errors, timeouts) raise so the runner retries the bundle.
    """
    part = source if isinstance(source, ShardPart) else ShardPart(source)
    uri = part.uri
    shown = redact_uri(uri)
    last_line = part.first_line - 1
    emitted = 0
    try:
        with open_binary(uri, storage_options, infer_compression(uri)) as f:
            if shard_format(uri) == "json":
                data = f.read(limits.max_document_bytes + 1)
                if len(data) > limits.max_document_bytes:
                    yield RawRecord(1, data[:RAW_TEXT_LIMIT], Finding(
                        "record_too_large", "",
                        f"{shown} is a JSON document over {limits.max_document_bytes:,} bytes; a .json file is parsed whole, "
                        "so write large exports as JSON Lines (one frame per line, .jsonl), which is streamed."))
                    return
                records = _json_document_records(data, limits)
            else:
                if part.start:
                    f.seek(part.start)
                records = _json_lines_records(f, limits, part.first_line, None if part.end is None else part.end - part.start)
            for rec in records:
                last_line = rec.line or last_line
                emitted += 1
                yield rec
    except (OSError, EOFError, ValueError, zlib.error, RuntimeError) as e:  # zstd raises ZstdError(ValueError-like)
        if is_transient(e):
            raise  # connection trouble, timeout, 5xx: the runner retries the bundle
        yield RawRecord(
            last_line + 1 if emitted else None,
            b"",
            Finding("shard_unreadable", "", f"Could not read {shown} past line {last_line}: {type(e).__name__}: {redact_uri(str(e))}. "
                    "Check that the file exists, is readable with these credentials and that its compression matches its suffix."),
        )
        return
    if emitted == 0 and part.whole:
        yield RawRecord(None, b"", Finding("shard_empty", "", f"{shown} holds no records; remove it or check the export that wrote it."))


def _json_lines_records(f: io.BufferedIOBase, limits: ReadLimits, first_line: int = 1, length: int | None = None) -> Iterator[RawRecord]:
    """Records of a JSON Lines stream; with ``length``, only lines starting within that many bytes."""
    reader = f if hasattr(f, "peek") else io.BufferedReader(f, buffer_size=1 << 20)  # type: ignore[arg-type]
    cap = limits.max_record_bytes
    line_no = first_line - 1
    consumed = 0
    while True:
        if length is not None and consumed >= length:
            return
        line = reader.readline(cap + 1)
        if not line:
            return
        consumed += len(line)
        line_no += 1
        if line.startswith(BOM):  # not only on line 1: concatenated exports carry one per part
            line = line[len(BOM):]
        if len(line) > cap and not line.endswith(b"\n"):
            # Longer than the limit: keep the start for issues.raw, skip the rest without holding it.
            head = line[:RAW_TEXT_LIMIT]
            size = len(line)
            while not line.endswith(b"\n"):
                line = reader.readline(1 << 20)
                if not line:
                    break
                size += len(line)
                consumed += len(line)
            yield RawRecord(line_no, head, Finding("record_too_large", "", f"The record has {size:,} bytes, more than --max-record-bytes={cap:,}; "
                                                   "split it, or raise the limit if such frames are expected."))
            continue
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        yield RawRecord(line_no, line)


def _json_document_records(data: bytes, limits: ReadLimits) -> Iterator[RawRecord]:
    """Records of a .json file: one object, or an array of frames (line = 1-based array index)."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    if not data.strip():
        return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        stripped = data.lstrip()
        if stripped[:1] == b"{" and b"\n" in stripped.strip():
            # Named .json but written as JSON Lines: read it as such (line numbers stay physical).
            yield from _json_lines_records(io.BytesIO(data), limits)
        else:
            yield RawRecord(1, data)  # the parser reports exactly what is wrong with it
        return
    if isinstance(doc, list):
        for i, element in enumerate(doc, start=1):
            yield RawRecord(i, orjson.dumps(element))
    else:
        yield RawRecord(1, data)


def chunk_records(shard: str, records: Iterator[RawRecord], limits: ReadLimits = ReadLimits()) -> Iterator[RecordChunk]:
    batch: list[RawRecord] = []
    size = 0
    for rec in records:
        batch.append(rec)
        size += len(rec.data)
        if len(batch) >= limits.chunk_records or size >= limits.chunk_bytes:
            yield RecordChunk(shard, batch)
            batch, size = [], 0
    if batch:
        yield RecordChunk(shard, batch)
