"""Parsing and validating one record: bytes -> a normalised ``Frame`` plus findings.

One pass over the record does the structural checks (types and required keys, per FORMAT.md) and the
referential ones (unique ids, ROI sources exist, mask values are colours), and normalises what it
accepts: a value of the wrong type is reported and then treated as absent, so every table still gets
a row. Unknown keys are kept (they stay in ``meta`` / the raw record) and never reported.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

import orjson

from transforms.findings import RAW_TEXT_LIMIT, Finding
from transforms.uris import redact_text

# The normalised frame: msgspec Structs named after the JSON keys. Well-formed records decode straight
# into them in C (the fast path); the rest are checked key by key in Python and built into the same
# types with unusable values set to None (the slow path). Meta objects stay raw JSON text.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Size = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Colour = Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=255)]], msgspec.Meta(min_length=3, max_length=3)]
NO_RAW = msgspec.Raw()


class Mask(msgspec.Struct, kw_only=True, gc=False):
    id: NonEmpty | None
    uri: str | None
    content_type: str | None = None
    timestamp: Int64 | None = None
    width: Size | None = None
    height: Size | None = None


class Preview(msgspec.Struct, kw_only=True, gc=False):
    uri: str | None = None


class Source(msgspec.Struct, kw_only=True, gc=False):
    id: NonEmpty | None
    uri: str | None
    content_type: str | None = None
    width: Size | None = None
    height: Size | None = None
    timestamp: Int64 | None = None
    preview: Preview | None = None
    meta: msgspec.Raw = NO_RAW
    masks: list[Mask] = []


class RoiMask(msgspec.Struct, kw_only=True, gc=False):
    id: NonEmpty | None
    value: Colour | None  # None when invalid (reported)


class Roi(msgspec.Struct, kw_only=True, gc=False):
    id: str | None = None
    label: list[str] | None = None
    labels: list[str] | None = None  # the docs' spelling: only the slow path reads it (with a warning)
    sources: list[str] | None = None
    confidence: float | None = None
    poly: list[float] | None = None
    meta: msgspec.Raw = NO_RAW
    mask: RoiMask | None = None


class Dataset(msgspec.Struct, kw_only=True, gc=False):
    id: str | None = None
    version: str | None = None


class FrameDoc(msgspec.Struct, kw_only=True, gc=False):
    id: NonEmpty | None = None
    context_id: str | None = None
    timestamp: Int64 | None = None
    meta: msgspec.Raw = NO_RAW
    meta_blob: msgspec.Raw = NO_RAW
    blob: str | None = None
    dataset: Dataset | None = None
    sources: list[Source]
    rois: list[Roi] = []


_DECODER = msgspec.json.Decoder(FrameDoc)


@dataclass(slots=True)
class Frame:
    shard: str
    line: int
    id: str
    own_id: bool
    doc: FrameDoc
    findings: list[Finding] = field(default_factory=list)
    extra: str | None = None  # top-level keys no column holds, as JSON object text (server fields, blobs)
    roi_metas: list[str | None] = field(default_factory=list)  # each ROI's meta as JSON text (meta_texts)


# Top-level keys with columns of their own; every other key is kept in frames.extra.
COLUMN_KEYS = frozenset({"id", "context_id", "timestamp", "meta", "dataset", "sources", "rois"})
_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])


def extra_from_raw(data: bytes) -> str | None:
    """frames.extra of a well-formed record: its other top-level values, as written (raw slices, no parse)."""
    top = _TOP_LEVEL.decode(data)
    parts = [orjson.dumps(k).decode() + ":" + str(v, "utf-8") for k, v in top.items() if k not in COLUMN_KEYS]
    return "{" + ",".join(parts) + "}" if parts else None


def extra_from_value(obj: dict) -> str | None:
    other = {k: v for k, v in obj.items() if k not in COLUMN_KEYS}
    if not other:
        return None
    try:
        return orjson.dumps(other).decode()
    except TypeError:  # integers beyond 64 bits, read by the standard library
        return json.dumps(other)


def json_text(value: Any) -> str:
    """JSON text of a parsed value: orjson's, or the standard library's for what orjson refuses (integers
    beyond 64 bits, which only the standard library parses: they reach metas and messages)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


def raw_is_object(raw: msgspec.Raw) -> bool:
    """A raw meta value is usable when absent, null or an object."""
    if not raw:
        return True
    view = memoryview(raw)
    return view[:1] == b"{" or bytes(view).lstrip()[:1] in (b"{", b"n")


def meta_texts(raws: list[msgspec.Raw]) -> list[str | None]:
    """JSON texts of raw meta values for a table column (None for absent or null)."""
    texts = [str(m, "utf-8") if m else None for m in raws]
    if "null" in texts:
        texts = [None if t == "null" else t for t in texts]
    return texts


def derived_frame_id(shard: str, line: int) -> str:
    """The id of a frame without its own: stable for the same shard and line."""
    return f"{shard}#{line}"


# --- parsing -----------------------------------------------------------------------------------------

class _NonFinite(ValueError):
    pass


def _reject_constant(name: str):
    raise _NonFinite(name)


# A number that may overflow a double: orjson silently reads 1e999 as inf, which JSON cannot hold. The
# regexes [0-9][eE]+?[0-9]{3} and [0-9]{309}, found without a regex: bytes.translate maps every digit to
# '0', 'e'/'E' to 'e', '+' to itself and the rest to ' ', then three substring searches run in C. On the
# convert bench's 5 KB frames (polygons: mostly digits) the two regexes were 22 % of a convert's time.
_NUMBER_SHAPE = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord("e") if b in b"eE" else ord("+") if b == ord("+")
                      else ord(" ") for b in range(256))
_LONG_RUN = b"0" * 309


def maybe_overflow(data: bytes) -> bool:
    shape = data.translate(_NUMBER_SHAPE)
    return b"0e000" in shape or b"0e+000" in shape or (len(shape) >= 309 and _LONG_RUN in shape)


def _reject_overflow(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _NonFinite(f"{text[:20]} (a number too large for a double)")
    return value


def overflows(data: bytes) -> bool:
    """True when a number of the record (not a string that looks like one: maybe_overflow's false positives,
    like an id '0E000') is beyond a double, or the record does not parse here: the slow path then decides."""
    try:
        json.loads(data, parse_constant=_reject_constant, parse_float=_reject_overflow)
    except (ValueError, RecursionError, UnicodeDecodeError):  # _NonFinite is a ValueError
        return True
    return False


# An integer orjson reads as a float (it reads -2**63 .. 2**64 - 1 exactly): more than 19 digits, or a negative one of 19.
_BEYOND_64_BITS = re.compile(rb"[0-9]{20}|-[0-9]{19}")


def parse_record(data: bytes) -> tuple[Any, Finding | None]:
    """orjson first (fast, strict); on failure, say precisely why so users can fix the exporter."""
    try:
        value = orjson.loads(data)
        if not maybe_overflow(data) and _BEYOND_64_BITS.search(data) is None:
            return value, None
    except orjson.JSONDecodeError as e:
        msg = str(e)
    else:
        msg = "number out of range"
    if "depth limit" in msg or "recursion" in msg:
        return None, Finding("json_too_deep", "", "The record nests deeper than 1024 levels; frames never need that, so the exporter is broken.")
    if "UTF-8" in msg:
        return None, Finding("json_invalid_utf8", "", f"The record is not valid UTF-8 ({msg}); re-export it as UTF-8.")
    try:
        # The standard library is slower but reads what orjson refuses or rounds and JSON allows (integers beyond
        # 64 bits: validation reports them in typed fields and keeps them exactly in metas) and names NaN/Infinity.
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_reject_overflow)
    except _NonFinite as nf:
        return None, Finding("json_nan_or_infinity", "", f"The record contains {nf}, which JSON does not allow; write null or a number instead.")
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None, Finding("json_invalid", "", f"The record is not valid JSON: {msg}.")
    if _has_lone_surrogate(value):  # \ud800 parses in Python but is no text: it cannot be written as UTF-8
        return None, Finding("json_invalid_utf8", "", f"The record escapes an invalid Unicode code point ({msg}); re-export it as valid UTF-8.")
    return value, None


def _has_lone_surrogate(value: Any) -> bool:
    """True when a string of the parsed value holds a lone surrogate. orjson.dumps refuses those, and also
    integers beyond 64 bits, which the standard library read exactly and validation keeps (metas, extra) or
    reports where they stand (typed fields); only the first is a problem here, so the standard library decides."""
    try:
        orjson.dumps(value)
        return False
    except TypeError:  # orjson.JSONEncodeError
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True


def raw_text(data: bytes) -> str:
    """The record's text for issues.raw: at most 64 KiB, invalid UTF-8 replaced, credentials in URIs redacted."""
    return redact_text(data[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace"))


# --- validation --------------------------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "an array", float: "a number"}


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(v), type(v).__name__)


class _Checker:
    """Typed getters that record a finding and return None when a value is unusable."""

    __slots__ = ("findings",)

    def __init__(self, findings: list[Finding]):
        self.findings = findings

    def wrong(self, path: str, want: str, v: Any) -> None:
        self.findings.append(Finding("wrong_type", path, f"Expected {want} at {path}, got {_type_name(v)}; fix the exporter or drop the key."))

    def str_(self, obj: dict, key: str, base: str, required: bool = False) -> str | None:
        v = obj.get(key)
        if type(v) is str:
            return v
        if v is None:
            if required:
                self.findings.append(Finding("missing_key", base + "/" + key, f"{base or 'The frame'} needs '{key}' (a string)."))
            return None  # (an explicit null of an optional key is the same as absent)
        self.wrong(base + "/" + key, "a string", v)
        return None

    def int_(self, obj: dict, key: str, base: str, minimum: int | None = None) -> int | None:
        v = obj.get(key)
        if type(v) is int:
            if minimum is not None and v < minimum:
                self.findings.append(Finding("invalid_value", base + "/" + key, f"{base}/{key} is {v}; it must be at least {minimum}."))
                return None
            if not -(2**63) <= v < 2**63:
                self.findings.append(Finding("invalid_value", base + "/" + key, f"{base}/{key} does not fit in 64 bits."))
                return None
            return v
        if v is None:
            return None
        if type(v) is float and v.is_integer() and abs(v) >= 2**63:
            # orjson reads integers beyond 64 bits as floats: the value is an integer, out of range.
            self.findings.append(Finding("invalid_value", base + "/" + key, f"{base}/{key} does not fit in 64 bits."))
            return None
        if type(v) is float and v.is_integer():
            self.wrong(base + "/" + key, "an integer (not a float like 3.0)", v)
        else:
            self.wrong(base + "/" + key, "an integer", v)
        return None

    def obj_(self, obj: dict, key: str, base: str) -> dict | None:
        v = obj.get(key)
        if v is None or type(v) is dict:
            return v
        self.wrong(base + "/" + key, "an object", v)
        return None

    def raw_obj(self, obj: dict, key: str, base: str) -> msgspec.Raw:
        """An object kept as raw JSON text (metas: free-form, stored as text)."""
        v = self.obj_(obj, key, base)
        if v is None:
            return NO_RAW
        return msgspec.Raw(json_text(v).encode())

    def str_list(self, v: Any, path: str) -> list[str] | None:
        if type(v) is not list:
            self.wrong(path, "an array of strings", v)
            return None
        if all(type(x) is str for x in v):
            return v
        bad = next(i for i, x in enumerate(v) if type(x) is not str)
        self.wrong(f"{path}/{bad}", "a string", v[bad])
        return [x for x in v if type(x) is str]


def _id_string(v: Any, path: str, c: _Checker, what: str) -> str | None:
    """Ids are strings; old docs say mask ids are integers, so an int is accepted (with a warning)."""
    if type(v) is str:
        if not v:
            c.findings.append(Finding("invalid_value", path, f"The {what} id is empty; give it a unique non-empty string."))
        return v
    if type(v) is int and what == "mask":
        c.findings.append(Finding("mask_id_not_string", path, f"Mask id {v} is an integer; the schema wants a string (\"{v}\"). It is joined as \"{v}\"."))
        return str(v)
    if v is None:
        return None
    c.wrong(path, "a string", v)
    return None


def mask_colour(v: Any, path: str, c: _Checker) -> tuple[int, int, int] | None:
    if type(v) is list and len(v) == 3 and all(type(x) is int and 0 <= x <= 255 for x in v):
        return (v[0], v[1], v[2])
    c.findings.append(Finding("invalid_mask_value", path, f"mask.value must be exactly 3 integers in 0..255 (an RGB colour), got {json_text(v)[:80]}."))
    return None


DEFAULT_MAX_JSON_DEPTH = 64  # --max-json-depth: frames nest 4-5 levels; metas rarely more than a few


def validate_record(data: bytes, shard: str, line: int,
                    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> tuple[Frame | None, Finding | None]:
    """One record -> a validated frame, or the finding that says why it is not a frame at all.

    Fast path: msgspec decodes a well-formed record straight into the typed structs. Anything it
    refuses (a wrong type, a missing key, a bad colour, broken JSON) takes the slow path, which finds
    every problem and says where. Records nesting deeper than ``max_json_depth`` are not frames.
    Both paths encode the same rules; tests/test_validation_paths.py checks they agree.
    """
    result = fast_path(data, shard, line, max_json_depth)
    frame, finding = result if result is not None else slow_path(data, shard, line, max_json_depth)
    if frame is not None:
        check_references(frame)
    return frame, finding


def fast_path(data: bytes, shard: str, line: int,
              max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> tuple[Frame | None, Finding | None] | None:
    """A well-formed record decoded by msgspec (references not checked yet); None when the record
    needs the slow path."""
    if b"\\ud" in data or b"\\uD" in data:
        return None  # a surrogate escape: msgspec takes a lone one, which is no text (the slow path says json_invalid_utf8)
    if maybe_overflow(data) and overflows(data):
        return None  # 1e400: msgspec keeps it as text in raw metas and skips unknown keys; the slow path names it
    try:
        doc = _DECODER.decode(data)
        if not data.isascii():
            data.decode("utf-8")  # msgspec does not check the UTF-8 inside raw (meta) values
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8 surfaces as UnicodeDecodeError
        return None
    # ROI metas repeat a few short texts ('{"_type":"b2d"}'): their checks run once per distinct text.
    roi_metas = meta_texts([r.meta for r in doc.rois])
    distinct_roi_metas = set(roi_metas)
    if not _fast_path_complete(doc, distinct_roi_metas):
        return None
    # The typed parts of a frame nest 5 levels at most (frame, sources, source, masks, mask): only its
    # free-form metas can go deeper, so a --max-json-depth of 5 or more is checked on them alone.
    if _metas_too_deep(doc, distinct_roi_metas, max_json_depth):
        return None, json_too_deep_finding(max_json_depth)
    frame = _frame(doc, shard, line, [])
    frame.extra = extra_from_raw(data)
    frame.roi_metas = roi_metas
    return frame, None


def slow_path(data: bytes, shard: str, line: int,
              max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> tuple[Frame | None, Finding | None]:
    """Any record, checked key by key in Python (references not checked yet)."""
    value, finding = parse_record(data)
    if finding is None and type(value) is not dict:
        kind = "an array" if type(value) is list else type(value).__name__ if value is not None else "null"
        finding = Finding("record_not_object", "", f"The record is {kind}, not a frame object; each line (or array element) must be one frame {{...}}.")
    if finding is None and _bracket_count(data) > max_json_depth and nesting_exceeds(value, max_json_depth):
        finding = json_too_deep_finding(max_json_depth)
    if finding is not None:
        return None, finding
    frame = validate_frame(value, shard, line)
    frame.extra = extra_from_value(value)
    frame.roi_metas = meta_texts([r.meta for r in frame.doc.rois])
    return frame, None


def json_too_deep_finding(max_json_depth: int) -> Finding:
    return Finding("json_too_deep", "", f"The record nests deeper than --max-json-depth={max_json_depth} levels (the record itself is "
                                        "level 1); frames never need that, so fix the exporter, or raise --max-json-depth (orjson stops at 1024).")


def _bracket_count(data: bytes) -> int:
    """Opening brackets, strings included: an upper bound of the nesting depth, counted in C."""
    return data.count(b"{") + data.count(b"[")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when JSON containers nest deeper than ``limit`` levels (``value`` itself is level 1)."""
    stack = [(value, 1)] if type(value) in (dict, list) else []
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        children = container.values() if type(container) is dict else container
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def raw_nesting_exceeds(raw: bytes, limit: int) -> bool:
    """``nesting_exceeds`` for JSON text, parsing it only when it has more brackets than ``limit``."""
    if _bracket_count(raw) <= limit:
        return False
    try:
        return nesting_exceeds(orjson.loads(raw), limit)
    except orjson.JSONDecodeError:
        return True  # valid JSON for msgspec, so only orjson's own depth limit (1024) refuses it


def _metas_too_deep(doc: FrameDoc, roi_metas: set[str | None], limit: int) -> bool:
    """Whether a meta nests deeper than ``limit``; ``roi_metas`` are the ROIs' distinct meta texts."""
    # Levels above each meta: frame (1) for its own; frame, sources list, source (3) for a source's or ROI's.
    metas = [(doc.meta, 1), (doc.meta_blob, 1)] + [(s.meta, 3) for s in doc.sources]
    metas += [(text.encode(), 3) for text in roi_metas if text]
    # A meta shorter than its depth budget cannot hold that many brackets: most ROI metas are a few bytes.
    return any(len(meta) > limit - above and raw_nesting_exceeds(bytes(meta), limit - above) for meta, above in metas)


def _fast_path_complete(doc: FrameDoc, roi_metas: set[str | None]) -> bool:
    """What msgspec's types do not say: metas are objects, 'labels' is not used, frame id not empty.

    ``roi_metas``: the ROIs' distinct meta texts (msgspec's raw values start at the value, no blanks).
    """
    if not (raw_is_object(doc.meta) and raw_is_object(doc.meta_blob)):
        return False
    for src in doc.sources:
        if src.meta and not raw_is_object(src.meta):
            return False
    if any(roi.labels is not None for roi in doc.rois):  # not a bytes search: JSON keys may be escaped
        return False
    # Keys the format requires may not be null: msgspec's types take null (the slow path's "absent"), the slow
    # path reports it. Found by tests/test_validation_paths.py; a null here sends the record to the slow path.
    for src in doc.sources:
        if src.id is None or src.uri is None or any(m.id is None or m.uri is None for m in src.masks):
            return False
    if any(roi.mask is not None and (roi.mask.id is None or roi.mask.value is None) for roi in doc.rois):
        return False
    return all(text is None or text[0] == "{" for text in roi_metas)


def _frame(doc: FrameDoc, shard: str, line: int, findings: list[Finding]) -> Frame:
    own_id = bool(doc.id)
    return Frame(shard, line, doc.id if own_id else derived_frame_id(shard, line), own_id, doc, findings)


def check_references(frame: Frame) -> None:
    """Referential checks on a normalised frame: unique ids, ROI sources exist, polys are pairs."""
    findings = frame.findings
    doc = frame.doc
    if not doc.sources and not any(f.path == "/sources" for f in findings):
        findings.append(Finding("no_sources", "/sources", "The frame's sources array is empty; a frame without sources annotates nothing."))
    seen_sources: set[str] = set()
    for si, src in enumerate(doc.sources):
        if src.id is not None:
            if src.id in seen_sources:
                findings.append(Finding("duplicate_source_id", f"/sources/{si}/id", f"Source id {src.id!r} is used twice in this frame; source ids must be unique."))
            seen_sources.add(src.id)
        # Mask ids are unique per source: FORMAT.md says per frame, but the SDK numbers each
        # source's masks "00", "01", ... so a FrameGroup repeats them (ROIs name their sources).
        seen_masks: dict[str, int] = {}
        for mi, m in enumerate(src.masks):
            if m.id is None:
                continue
            if m.id in seen_masks:
                findings.append(Finding("duplicate_mask_id", f"/sources/{si}/masks/{mi}/id",
                                        f"Mask id {m.id!r} is also used at /sources/{si}/masks/{seen_masks[m.id]}; mask ids must be unique within a source."))
            else:
                seen_masks[m.id] = mi
    for ri, roi in enumerate(doc.rois):
        if roi.sources:
            for k, sid in enumerate(roi.sources):
                if sid not in seen_sources:
                    findings.append(Finding("unknown_roi_source", f"/rois/{ri}/sources/{k}",
                                            f"The ROI names source {sid!r}, which the frame does not have (sources: {sorted(seen_sources)})."))
        if roi.poly is not None and len(roi.poly) % 2:
            findings.append(Finding("poly_odd_length", f"/rois/{ri}/poly", f"poly has {len(roi.poly)} numbers; it must be x, y pairs."))


def validate_frame(obj: dict, shard: str, line: int) -> Frame:
    """The slow path: check a parsed frame object key by key and normalise it (findings on the frame)."""
    findings: list[Finding] = []
    c = _Checker(findings)
    frame_id = _id_string(obj.get("id"), "/id", c, "frame") if "id" in obj else None
    dataset = c.obj_(obj, "dataset", "")
    doc = FrameDoc(
        id=frame_id or None,
        context_id=c.str_(obj, "context_id", ""),
        timestamp=c.int_(obj, "timestamp", ""),
        meta=c.raw_obj(obj, "meta", ""),
        meta_blob=c.raw_obj(obj, "meta_blob", ""),
        blob=c.str_(obj, "blob", ""),
        dataset=Dataset(id=c.str_(dataset, "id", "/dataset"), version=c.str_(dataset, "version", "/dataset")) if dataset else None,
        sources=[],
        rois=[],
    )
    sources = obj.get("sources")
    if sources is None:
        findings.append(Finding("missing_key", "/sources", "The frame has no 'sources'; every frame needs at least one source (the image or video it annotates)."))
    elif type(sources) is not list:
        c.wrong("/sources", "an array", sources)
    else:
        doc.sources = [_source(s, f"/sources/{si}", si, c) for si, s in enumerate(sources)]
    rois = obj.get("rois")
    if rois is not None:
        if type(rois) is not list:
            c.wrong("/rois", "an array", rois)
        else:
            doc.rois = [_roi(r, f"/rois/{ri}", c) for ri, r in enumerate(rois)]
    return _frame(doc, shard, line, findings)


_EMPTY: dict = {}


def _source(s: Any, base: str, si: int, c: _Checker) -> Source:
    if type(s) is not dict:
        c.wrong(base, "an object", s)
        s = _EMPTY
    sid = _id_string(s.get("id"), base + "/id", c, "source")
    if "id" not in s and s is not _EMPTY:
        c.findings.append(Finding("missing_key", base + "/id", f"Source {si} has no 'id'; ROIs refer to sources by id."))
    preview = c.obj_(s, "preview", base)
    masks = []
    raw_masks = s.get("masks")
    if raw_masks is not None:
        if type(raw_masks) is not list:
            c.wrong(base + "/masks", "an array", raw_masks)
        else:
            masks = [_mask(m, f"{base}/masks/{mi}", c) for mi, m in enumerate(raw_masks)]
    return Source(
        id=sid or None,
        uri=c.str_(s, "uri", base, required=s is not _EMPTY),
        content_type=c.str_(s, "content_type", base),
        width=c.int_(s, "width", base, 1), height=c.int_(s, "height", base, 1),
        timestamp=c.int_(s, "timestamp", base),
        preview=Preview(uri=c.str_(preview, "uri", base + "/preview")) if preview else None,
        meta=c.raw_obj(s, "meta", base),
        masks=masks,
    )


def _mask(m: Any, base: str, c: _Checker) -> Mask:
    if type(m) is not dict:
        c.wrong(base, "an object", m)
        m = _EMPTY
    mid = _id_string(m.get("id"), base + "/id", c, "mask")
    if "id" not in m and m is not _EMPTY:
        c.findings.append(Finding("missing_key", base + "/id", "The mask has no 'id'; ROIs join to masks by id."))
    return Mask(
        id=mid or None,
        uri=c.str_(m, "uri", base, required=m is not _EMPTY),
        content_type=c.str_(m, "content_type", base),
        timestamp=c.int_(m, "timestamp", base),
        width=c.int_(m, "width", base, 1), height=c.int_(m, "height", base, 1),
    )


def _roi(r: Any, base: str, c: _Checker) -> Roi:
    if type(r) is not dict:
        c.wrong(base, "an object", r)
        return Roi()
    labels = None
    if "label" in r:
        if r["label"] is not None:
            labels = c.str_list(r["label"], base + "/label")
    elif r.get("labels") is not None:
        c.findings.append(Finding("roi_labels_key", base + "/labels", "The ROI uses 'labels'; the frame schema calls it 'label'. Read as 'label'."))
        labels = c.str_list(r["labels"], base + "/labels")
    roi_sources = c.str_list(r["sources"], base + "/sources") if r.get("sources") is not None else None
    confidence = r.get("confidence")
    if confidence is not None and (type(confidence) not in (int, float) or confidence != confidence):
        c.wrong(base + "/confidence", "a number", confidence)
        confidence = None
    poly = r.get("poly")
    if poly is not None:
        if type(poly) is not list:
            c.wrong(base + "/poly", "a flat array of numbers", poly)
            poly = None
        elif not all(type(x) in (int, float) for x in poly):
            bad = next(i for i, x in enumerate(poly) if type(x) not in (int, float))
            c.wrong(f"{base}/poly/{bad}", "a number", poly[bad])
            poly = None
    mask = r.get("mask")
    roi_mask = None
    if mask is not None:
        if type(mask) is not dict:
            c.wrong(base + "/mask", "an object", mask)
        else:
            mask_id = _id_string(mask.get("id"), base + "/mask/id", c, "mask")
            if "id" not in mask:
                c.findings.append(Finding("missing_key", base + "/mask/id", "roi.mask has no 'id'; it must name the mask (sources[].masks[].id) it colours."))
            rgb = None
            if "value" in mask:
                rgb = mask_colour(mask["value"], base + "/mask/value", c)
            else:
                c.findings.append(Finding("missing_key", base + "/mask/value", "roi.mask has no 'value'; give the [r, g, b] colour of this ROI in the mask."))
            roi_mask = RoiMask(id=mask_id or None, value=list(rgb) if rgb else None)
    return Roi(
        id=c.str_(r, "id", base), label=labels, sources=roi_sources,
        confidence=float(confidence) if confidence is not None else None,
        poly=[float(x) for x in poly] if poly is not None else None,
        meta=c.raw_obj(r, "meta", base), mask=roi_mask,
    )
