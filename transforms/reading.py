"""Reading frame shards: expand globs, open (any fsspec file system, any compression), stream records.

A JSON Lines shard is streamed line by line with a bounded line length, never loaded whole. A ``.json``
shard (the ClearML WebApp export: one frame or an array of frames) is parsed whole when small, else its
array is streamed element by element (memory bounded by the largest element). Compressed shards are
checked to their end marker and checksum (a cut ``.zst`` is ``shard_unreadable``, not fewer records).
Records are handed on in chunks (``RecordChunk``) so the per-element cost of Beam is paid once per
chunk, not once per frame.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import fsspec
import orjson

from transforms.findings import RAW_TEXT_LIMIT, Finding
from transforms.storage import Target, is_transient
from transforms.uris import strip_userinfo
from transforms.uris import redact_uri
from transforms.validation import parse_record

BOM = b"\xef\xbb\xbf"
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".zstd", ".xz")


class RawRecord(NamedTuple):
    """One record as read. ``problem`` is set when reading already knows it cannot be a frame."""

    line: int | None
    data: bytes
    problem: Finding | None = None
    offset: int | None = None  # byte offset in the (decompressed) document, for elements of a .json array


class RecordChunk(NamedTuple):
    shard: str
    records: list[RawRecord]


@dataclass(frozen=True)
class ReadLimits:
    max_record_bytes: int = 16 * 1024 * 1024
    chunk_records: int = 1000
    chunk_bytes: int = 8 * 1024 * 1024
    split_bytes: int = 64 * 1024 * 1024  # uncompressed JSON Lines shards larger than this are read in parts
    fast_document_bytes: int = 8 * 1024 * 1024  # a .json document up to this size is parsed whole (one orjson call)


class ShardPart(NamedTuple):
    """Lines of a shard starting in bytes [start, end) (end None: to the end); first_line numbers the first."""

    uri: str
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


def plan_shard(shard: Target | str, limits: ReadLimits = ReadLimits()) -> list[ShardPart]:
    """Split a large uncompressed JSON Lines shard into parts that workers read in parallel.

    Parts start right after a newline; one sequential pass counts the newlines before each part so
    records keep their physical line numbers (memchr speed: ~20x cheaper than parsing the records).
    Compressed shards and .json documents cannot be split and are read whole.
    """
    shard = Target.of(shard)
    uri = shard.url
    if shard_codec(uri) or shard_format(uri) == "json":
        return [ShardPart(uri)]
    try:
        fs, path = shard.fs, shard.path
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


def expand_input(pattern: Target | str) -> list[str]:
    """Shard URIs matching one glob (sorted, with the protocol kept: 's3://b/k', not 'b/k'; reached with
    the pattern's storage options)."""
    pattern = Target.of(pattern)
    fs, _, paths = fsspec.get_fs_token_paths(pattern.url, storage_options=pattern.storage_options)
    literal = fs._strip_protocol(pattern.url)
    if "*" not in pattern.url and _is_glob(pattern.url):
        # fsspec globs only patterns holding '*': 'frames-0?.jsonl' and 'frames-0[0-3].jsonl' were taken as
        # file names. A file whose name really holds '?' or '[' is still read as itself.
        paths = [literal] if fs.isfile(literal) else fs.glob(literal)
    elif not _is_glob(pattern.url) and not paths:
        paths = [literal]
    return [pattern.url_of(p) for p in sorted(paths) if not fs.isdir(p)]


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


class ShardDamaged(ValueError):
    """A compressed shard that ends before its end marker or fails its checksum."""


def shard_codec(uri: str) -> str | None:
    """'gzip', 'bz2', 'xz', 'zstd' or None, from the suffix."""
    name = uri.lower()
    for suffix, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".xz", "xz"), (".zst", "zstd"), (".zstd", "zstd")):
        if name.endswith(suffix):
            return codec
    return None


class _Zstd(io.RawIOBase):
    """zstd frames, one after another, each checked to its end: a stream cut anywhere (even at a
    block or frame boundary inside a frame) or failing its checksum raises ShardDamaged; what was
    decompressed before that is returned first."""

    def __init__(self, raw):
        import zstandard

        self.raw = raw
        self.zstd = zstandard
        self.dobj = None
        self.pending = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self.pending and not self.done:
            self._fill()
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def _fill(self) -> None:
        data = self.raw.read(1 << 20)
        if not data:
            self.done = True
            if self.dobj is not None and not self.dobj.eof:
                raise ShardDamaged("the zstd stream ends before the end of its frame (truncated)")
            return
        out = []
        while data:
            if self.dobj is None:
                self.dobj = self.zstd.ZstdDecompressor().decompressobj()
            try:
                out.append(self.dobj.decompress(data))
            except self.zstd.ZstdError as e:
                raise ShardDamaged(f"zstd: {e}") from None
            if self.dobj.eof:
                data = self.dobj.unused_data
                self.dobj = None
            else:
                data = b""
        self.pending = b"".join(out)


def open_shard(shard: Target | str):
    """A shard opened for binary reading, decompressed by its suffix. Every codec fails loudly on a
    stream that ends early or fails its checksum (gzip, bz2 and xz do on their own; zstd through
    ``_Zstd``), so damage is a ``shard_unreadable`` finding, never silently fewer records."""
    shard = Target.of(shard)
    codec = shard_codec(shard.url)
    raw = fsspec.open(strip_userinfo(shard.url), "rb", **shard.storage_options).open()
    try:
        if codec == "gzip":
            return gzip.GzipFile(fileobj=raw, mode="rb")
        if codec == "bz2":
            return bz2.BZ2File(raw, "rb")
        if codec == "xz":
            return lzma.LZMAFile(raw, "rb")
        if codec == "zstd":
            return _Closing(io.BufferedReader(_Zstd(raw), buffer_size=1 << 20), raw)
    except Exception:
        raw.close()
        raise
    return raw


class _Closing:
    """A decompressing reader that also closes the file under it."""

    def __init__(self, inner, raw):
        self.inner, self.raw = inner, raw

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.inner.close()
        finally:
            self.raw.close()


class _Counting:
    """Counts the (decompressed) bytes read, to say how far a damaged shard got."""

    def __init__(self, inner):
        self.inner = inner
        self.bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.bytes += len(data)
        return data

    def readline(self, n: int = -1) -> bytes:
        data = self.inner.readline(n)
        self.bytes += len(data)
        return data

    def peek(self, n: int = 0) -> bytes:
        return self.inner.peek(n)


def shard_format(uri: str) -> str:
    """'json' for a JSON document file (.json), else 'jsonl'. Compression suffixes are ignored."""
    name = uri.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return "json" if name.endswith(".json") else "jsonl"


def iter_shard(source: Target | str | ShardPart, limits: ReadLimits = ReadLimits(), part: ShardPart | None = None) -> Iterator[RawRecord]:
    """Every non-blank record of a shard (or part of one), then (if reading failed part-way) one
    ``shard_unreadable`` problem.

    Permanent failures (missing file, permission, corrupt compression) become findings; transient ones
    (connection errors, timeouts) raise so the runner retries the bundle.
    """
    if isinstance(source, ShardPart):
        source, part = source.uri, source
    shard = Target.of(source)
    part = part or ShardPart(shard.url)
    uri = part.uri
    shown = redact_uri(uri)
    last_line = part.first_line - 1
    emitted = 0
    counted: _Counting | None = None
    try:
        with open_shard(shard) as f:
            if part.start:
                f.seek(part.start)
            counted = _Counting(f if hasattr(f, "peek") else io.BufferedReader(f, buffer_size=1 << 20))
            if shard_format(uri) == "json":
                records = _json_document_records(counted, limits)
            else:
                records = _json_lines_records(counted, limits, part.first_line, None if part.end is None else part.end - part.start)
            for rec in records:
                last_line = rec.line or last_line
                emitted += 1
                yield rec
    except Exception as e:  # noqa: BLE001 - every codec's errors (ZstdError is a bare Exception): a finding, never a crash
        if is_transient(e):
            raise  # connection trouble, timeout, 5xx: the runner retries the bundle
        got = f" ({emitted:,} records and {counted.bytes:,} bytes read before the damage; those records are kept)" if counted else ""
        what = "element" if shard_format(uri) == "json" else "line"
        yield RawRecord(
            last_line + 1 if emitted else None,
            b"",
            Finding("shard_unreadable", "", f"Could not read {shown} past {what} {last_line}{got}: {type(e).__name__}: {redact_uri(str(e))[:500]}. "
                    "Check that the file exists, is readable with these credentials, is complete and that its compression matches its suffix."),
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


def _json_document_records(f, limits: ReadLimits) -> Iterator[RawRecord]:
    """Records of a .json file: one object, or an array of frames (line = 1-based array index).

    A document up to ``fast_document_bytes`` that parses is split with one orjson call. Anything else is
    streamed: array elements are cut out one by one by ``_array_elements`` (memory bounded by the
    largest element, not the document) and each is validated on its own, so one bad element (NaN, a
    lone surrogate, 1e400) is one issue row with its index and byte offset, and a truncated document
    keeps every element before the damage.
    """
    head = f.read(limits.fast_document_bytes + 1)
    if head.startswith(BOM):
        head = head[len(BOM):]
    if len(head) <= limits.fast_document_bytes:
        if not head.strip():
            return
        try:
            doc = orjson.loads(head)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(doc, list):
                for i, element in enumerate(doc, start=1):
                    yield RawRecord(i, orjson.dumps(element))
            else:
                yield RawRecord(1, head)
            return
    stripped = head.lstrip()
    if stripped[:1] == b"[":
        yield from _array_elements(_Prefixed(head, f), limits)
        return
    # One object (or not JSON at all): a single record, or JSON Lines written into a .json file.
    if stripped[:1] == b"{" and b"\n" in stripped.strip():
        first = stripped.split(b"\n", 1)[0].strip()
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            pass
        else:  # named .json but written as JSON Lines: read it as such (line numbers stay physical)
            yield from _json_lines_records(_Prefixed(head, f), limits)
            return
    data = head + f.read(max(0, limits.max_record_bytes + 1 - len(head)))
    if len(data) > limits.max_record_bytes:
        yield RawRecord(1, data[:RAW_TEXT_LIMIT], Finding(
            "record_too_large", "", f"The .json document is one value of more than --max-record-bytes={limits.max_record_bytes:,} bytes; "
            "write large exports as an array of frames or as JSON Lines (.jsonl)."))
        return
    yield RawRecord(1, data)  # the parser reports exactly what is wrong with it


class _Prefixed(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


_WS = b" \t\r\n"
# One token of a JSON value: a whole string (escapes skipped), a string still open at the end of the
# buffer, or a bracket. Everything else (numbers, literals, NaN, ':' and ',') does not change nesting.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|(")|([\[\]{}])', re.S)
_SCALAR_END = re.compile(rb"[,\]\s]")
_ELEMENT_READ = 1 << 20
_BATCH_BYTES = 256 * 1024  # parsed in one orjson call when valid: ~20x faster than cutting elements one by one


def _array_elements(raw, limits: ReadLimits) -> Iterator[RawRecord]:
    """Each element of a JSON array as its own record (line = 1-based index, offset = byte offset).

    A scanner that only tracks strings and brackets cuts the elements out; parsing each is left to
    validation. Holds one element (at most --max-record-bytes; a longer one is skipped as
    ``record_too_large`` while scanning on) and one read block.
    """
    sc = _Scanner(raw if hasattr(raw, "read") else io.BytesIO(raw))
    sc.skip_ws()
    if sc.peek(len(BOM)) == BOM:
        sc.pos += len(BOM)
        sc.skip_ws()
    if sc.peek(1) != b"[":
        yield RawRecord(1, sc.buf[sc.pos:sc.pos + RAW_TEXT_LIMIT])
        return
    sc.pos += 1
    sc.skip_ws()
    if sc.peek(1) == b"]":
        return
    index = 0
    slow_until = -1  # document offset up to which elements are cut one by one (a batch failed to parse)
    while True:
        if sc.offset() >= slow_until:
            batch = sc.batch()
            if batch is None:
                slow_until = sc.offset() + _BATCH_BYTES
            elif batch:
                for element in batch:
                    index += 1
                    yield RawRecord(index, orjson.dumps(element))
                sc.pos += 1  # the ',' after the batch
                sc.skip_ws()
                if sc.peek(1) in (b"]", b""):
                    yield RawRecord(index + 1, b"", Finding("json_invalid", "", f"A ',' after array element {index} and then no element "
                                                                              f"(byte offset {sc.offset():,}); the elements are kept."), sc.offset())
                    return
                continue
        index += 1
        start = sc.offset()
        element, size = sc.element(limits.max_record_bytes)
        if element is None:
            yield RawRecord(index, sc.head, Finding(
                "json_invalid", "", f"The document ends inside array element {index} (byte offset {start:,}): truncated. "
                f"The {index - 1:,} elements before it are kept."), start)
            return
        head = sc.head or element[:RAW_TEXT_LIMIT]
        sc.skip_ws()
        sep = sc.peek(1)
        if sep not in (b",", b"]", b""):
            # Text after the value that is no separator: the value and everything up to the next ',' or
            # ']' (outside strings and brackets) is one bad element; the elements after it are kept.
            where = sc.offset()
            while sc.peek(1) not in (b",", b"]", b""):
                junk, _ = sc.element(limits.max_record_bytes)
                if junk is None:
                    break
                if not junk:
                    sc.pos += 1
                sc.skip_ws()
            yield RawRecord(index, head, Finding(
                "json_invalid", "", f"Array element {index} (byte offset {start:,}) is followed by text that is neither ',' nor ']' "
                f"at byte offset {where:,}; the element is skipped up to the next ','."), start)
            sep = sc.peek(1)
        elif size == 0:  # ',,' or a stray character the scanner cannot start a value with
            yield RawRecord(index, b"", Finding("json_invalid", "", f"Array element {index} (byte offset {start:,}) is empty."), start)
        elif size > limits.max_record_bytes:
            yield RawRecord(index, head, Finding(
                "record_too_large", "", f"Array element {index} (byte offset {start:,}) has {size:,} bytes, more than "
                f"--max-record-bytes={limits.max_record_bytes:,}; split it, or raise the limit if such frames are expected."), start)
        else:
            yield RawRecord(index, element, _element_problem(element), start)
        if sep == b",":
            sc.pos += 1
            sc.skip_ws()
            nxt = sc.peek(1)
            if nxt == b"]":
                yield RawRecord(index + 1, b"", Finding("json_invalid", "", f"A trailing ',' after array element {index} "
                                                                          f"(byte offset {sc.offset():,}); the elements are kept."), sc.offset())
                return
            if not nxt:
                yield _truncated_after(index, sc.offset())
                return
            continue
        if sep == b"]":
            sc.pos += 1
            rest = sc.buf[sc.pos:sc.pos + RAW_TEXT_LIMIT].strip() or sc.stream.read(RAW_TEXT_LIMIT).strip()
            if rest:
                yield RawRecord(None, rest, Finding("json_invalid", "", f"Text after the array's closing ']' "
                                                                      f"(byte offset {sc.offset():,}) is ignored."), sc.offset())
            return
        if not sep:
            yield _truncated_after(index, sc.offset())
            return
        yield RawRecord(index + 1, b"", Finding("json_invalid", "", f"Unexpected {sep!r} after array element {index} "
                                                                  f"(byte offset {sc.offset():,})."), sc.offset())
        return


def _truncated_after(index: int, offset: int) -> RawRecord:
    """The document ends after array element ``index`` (with or without a ',') and no ']' closes it."""
    return RawRecord(index + 1, b"", Finding("json_invalid", "", f"The document ends after array element {index} "
                                                            f"(byte offset {offset:,}) without its closing ']': truncated."), offset)


def _element_problem(element: bytes) -> Finding | None:
    """Only for elements cut one by one (their batch did not parse): what the strict parser says about
    this one, so NaN, 1e400 or a lone surrogate is named even where validation's fast path would pass it."""
    try:
        orjson.loads(element)
        return None
    except orjson.JSONDecodeError:
        return parse_record(element)[1]


class _Scanner:
    """A window over a byte stream: ``buf[pos]`` is the next unread byte, at document offset ``base + pos``.

    The window only grows while one element is longer than what is buffered; consumed bytes are
    dropped when more are read, never per element (copying a 1 MiB block per 2 KiB element would cost
    more than the parse).
    """

    def __init__(self, stream):
        self.stream = stream
        self.buf = b""
        self.base = 0
        self.pos = 0
        self.head = b""

    def offset(self) -> int:
        return self.base + self.pos

    def more(self, keep_from: int) -> int:
        """Read a block, dropping the bytes before ``keep_from``; the shift of positions, or -1 at the end."""
        block = self.stream.read(_ELEMENT_READ)
        if not block:
            return -1
        self.buf = self.buf[keep_from:] + block
        self.base += keep_from
        self.pos -= keep_from
        return keep_from

    def peek(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            self.more(self.pos)
        return self.buf[self.pos:self.pos + n]

    def skip_ws(self) -> None:
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < n or self.more(pos) < 0:
                return

    def batch(self) -> list | None:
        """Many elements at once, when the buffered text up to its last ',' parses as their array:
        a success proves each piece a complete, valid element (a ',' inside a string or a nested value
        leaves brackets or quotes open, and the parse fails). [] when there is too little buffered,
        None when it does not parse (then elements are cut one by one)."""
        if len(self.buf) - self.pos < _BATCH_BYTES:
            self.more(self.pos)
        cut = self.buf.rfind(b",", self.pos, self.pos + _BATCH_BYTES)
        if cut <= self.pos:
            return []
        try:
            elements = orjson.loads(b"[" + self.buf[self.pos:cut] + b"]")
        except orjson.JSONDecodeError:
            return None
        self.pos = cut
        return elements

    def element(self, cap: int) -> tuple[bytes | None, int]:
        """(bytes, size) of the value at ``pos``, which moves past it; (None, size) if the input ends first.

        Past ``cap`` bytes the element's start is kept in ``head`` (for issues.raw) and the scanned part
        is dropped as the scan goes on: a huge element costs no more memory than the cap.
        """
        self.head = b""
        start = self.pos
        dropped = 0
        if self.peek(1) in (b"{", b"[", b'"'):
            scan = start
            open_brackets: list[bytes] = []  # a '}' closing a '[' closes up to the nearest '{': broken text ends somewhere
            while True:
                closed = None
                m = None
                for m in _TOKEN.finditer(self.buf, scan):
                    if m.group(1):  # a string still open at the end of the buffer: read on from its quote
                        break
                    bracket = m.group(2)
                    if bracket is None:
                        if not open_brackets:
                            closed = m.end()
                            break
                    elif bracket in b"{[":
                        open_brackets.append(b"}" if bracket == b"{" else b"]")
                    else:
                        if bracket in open_brackets:
                            while open_brackets.pop() != bracket:
                                pass
                        if not open_brackets:
                            closed = m.end()
                            break
                else:
                    m = None
                if closed is not None:
                    break
                scan = m.start() if m is not None else len(self.buf)
                if dropped + scan - start > cap:  # too large: keep the head, drop what is scanned
                    if not self.head:
                        self.head = self.buf[start:start + RAW_TEXT_LIMIT]
                    dropped += scan - start
                    start = scan
                    self.pos = scan
                shift = self.more(start)
                if shift < 0:
                    if not self.head:
                        self.head = self.buf[start:start + RAW_TEXT_LIMIT]
                    return None, dropped + len(self.buf) - start
                start -= shift
                scan -= shift
        else:  # a number or literal (maybe NaN): up to the next ',', ']' or space
            while True:
                m = _SCALAR_END.search(self.buf, self.pos)
                if m:
                    closed = m.start()
                    break
                if dropped + len(self.buf) - start > cap:
                    if not self.head:
                        self.head = self.buf[start:start + RAW_TEXT_LIMIT]
                    dropped += len(self.buf) - start
                    start = self.pos = len(self.buf)
                shift = self.more(start)
                if shift < 0:
                    closed = len(self.buf)
                    break
                start -= shift
        size = dropped + closed - start
        if size > cap and not self.head:
            self.head = self.buf[start:start + RAW_TEXT_LIMIT]
        element = self.buf[start:closed] if size <= cap else None
        self.pos = closed
        return (element if element is not None else b""), size


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
