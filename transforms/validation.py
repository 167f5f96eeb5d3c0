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
from typing import Any

import orjson

from transforms.findings import Finding, json_pointer
from transforms.reading import RAW_TEXT_LIMIT

POLY_SEPARATOR = -999999999  # seen in ClearML's examples between polygon parts


@dataclass(slots=True)
class Mask:
    index: int
    id: str | None
    uri: str | None
    content_type: str | None
    timestamp: int | None
    width: int | None
    height: int | None


@dataclass(slots=True)
class Source:
    index: int
    id: str | None
    uri: str | None
    content_type: str | None
    width: int | None
    height: int | None
    timestamp: int | None
    preview_uri: str | None
    meta: Any
    masks: list[Mask]


@dataclass(slots=True)
class Roi:
    index: int
    id: str | None
    labels: list[str] | None
    source_ids: list[str] | None
    confidence: float | None
    poly: list[float] | None
    roi_type: str | None
    meta: Any
    has_mask: bool
    mask_id: str | None
    mask_rgb: tuple[int, int, int] | None  # None when absent or invalid


@dataclass(slots=True)
class Frame:
    shard: str
    line: int
    id: str
    own_id: bool
    context_id: str | None
    timestamp: int | None
    meta: Any
    dataset_id: str | None
    dataset_version: str | None
    sources: list[Source]
    rois: list[Roi]
    findings: list[Finding] = field(default_factory=list)


def derived_frame_id(shard: str, line: int) -> str:
    """The id of a frame without its own: stable for the same shard and line."""
    return f"{shard}#{line}"


# --- parsing -----------------------------------------------------------------------------------------

class _NonFinite(ValueError):
    pass


def _reject_constant(name: str):
    raise _NonFinite(name)


# A number that may overflow a double: orjson silently reads 1e999 as inf, which JSON cannot hold.
_MAYBE_OVERFLOW = re.compile(rb"[0-9][eE]\+?[0-9]{3}|[0-9]{309}")


def _reject_overflow(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _NonFinite(f"{text[:20]} (a number too large for a double)")
    return value


def parse_record(data: bytes) -> tuple[Any, Finding | None]:
    """orjson first (fast, strict); on failure, say precisely why so users can fix the exporter."""
    try:
        value = orjson.loads(data)
        if not _MAYBE_OVERFLOW.search(data):
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
        # The standard library is slower but reads what orjson refuses and JSON allows (integers beyond
        # 64 bits: validation then reports them where they stand) and names NaN/Infinity.
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_reject_overflow)
    except _NonFinite as nf:
        return None, Finding("json_nan_or_infinity", "", f"The record contains {nf}, which JSON does not allow; write null or a number instead.")
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None, Finding("json_invalid", "", f"The record is not valid JSON: {msg}.")
    try:
        orjson.dumps(value)  # lone surrogates (\ud800) parse in Python but cannot be written as UTF-8
    except orjson.JSONEncodeError:
        return None, Finding("json_invalid_utf8", "", f"The record escapes an invalid Unicode code point ({msg}); re-export it as valid UTF-8.")
    except TypeError:
        pass
    return value, None


def raw_text(data: bytes) -> str:
    """The record's text for issues.raw: at most 64 KiB, invalid UTF-8 replaced."""
    return data[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")


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
            elif key in obj:
                pass  # explicit null of an optional key is the same as absent
            return None
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
    c.findings.append(Finding("invalid_mask_value", path, f"mask.value must be exactly 3 integers in 0..255 (an RGB colour), got {orjson.dumps(v).decode()[:80]}."))
    return None


def validate_frame(obj: dict, shard: str, line: int) -> Frame:
    """Check and normalise one frame object. Findings are on ``Frame.findings``."""
    findings: list[Finding] = []
    c = _Checker(findings)

    own = obj.get("id")
    frame_id = _id_string(own, "/id", c, "frame") if "id" in obj else None
    own_id = bool(frame_id)
    meta = c.obj_(obj, "meta", "")
    c.obj_(obj, "meta_blob", "")  # kept only in the raw record, but typed by the schema
    c.str_(obj, "blob", "")
    dataset = c.obj_(obj, "dataset", "")
    dataset_id = dataset_version = None
    if dataset:
        dataset_id = c.str_(dataset, "id", "/dataset")
        dataset_version = c.str_(dataset, "version", "/dataset")

    frame = Frame(
        shard=shard, line=line,
        id=frame_id if own_id else derived_frame_id(shard, line), own_id=own_id,
        context_id=c.str_(obj, "context_id", ""),
        timestamp=c.int_(obj, "timestamp", ""),
        meta=meta, dataset_id=dataset_id, dataset_version=dataset_version,
        sources=[], rois=[], findings=findings,
    )

    sources = obj.get("sources")
    if sources is None:
        findings.append(Finding("missing_key", "/sources", "The frame has no 'sources'; every frame needs at least one source (the image or video it annotates)."))
    elif type(sources) is not list:
        c.wrong("/sources", "an array", sources)
    elif not sources:
        findings.append(Finding("no_sources", "/sources", "The frame's sources array is empty; a frame without sources annotates nothing."))
    else:
        _sources(sources, frame, c)

    rois = obj.get("rois")
    if rois is not None:
        if type(rois) is not list:
            c.wrong("/rois", "an array", rois)
        else:
            _rois(rois, frame, c)
    return frame


def _sources(sources: list, frame: Frame, c: _Checker) -> None:
    seen_sources: set[str] = set()
    for si, s in enumerate(sources):
        # Mask ids are unique per source: FORMAT.md says per frame, but the SDK numbers each
        # source's masks "00", "01", ... so a FrameGroup repeats them (ROIs name their sources).
        seen_masks: dict[str, str] = {}
        base = f"/sources/{si}"
        if type(s) is not dict:
            c.wrong(base, "an object", s)
            continue
        sid = _id_string(s.get("id"), base + "/id", c, "source")
        if sid is None and "id" not in s:
            c.findings.append(Finding("missing_key", base + "/id", f"Source {si} has no 'id'; ROIs refer to sources by id."))
        elif sid is not None:
            if sid in seen_sources:
                c.findings.append(Finding("duplicate_source_id", base + "/id", f"Source id {sid!r} is used twice in this frame; source ids must be unique."))
            seen_sources.add(sid)
        preview = c.obj_(s, "preview", base)
        src = Source(
            index=si, id=sid,
            uri=c.str_(s, "uri", base, required=True),
            content_type=c.str_(s, "content_type", base),
            width=c.int_(s, "width", base, 1), height=c.int_(s, "height", base, 1),
            timestamp=c.int_(s, "timestamp", base),
            preview_uri=c.str_(preview, "uri", base + "/preview") if preview else None,
            meta=c.obj_(s, "meta", base),
            masks=[],
        )
        masks = s.get("masks")
        if masks is not None:
            if type(masks) is not list:
                c.wrong(base + "/masks", "an array", masks)
            else:
                for mi, m in enumerate(masks):
                    mbase = f"{base}/masks/{mi}"
                    if type(m) is not dict:
                        c.wrong(mbase, "an object", m)
                        continue
                    mid = _id_string(m.get("id"), mbase + "/id", c, "mask")
                    if mid is None and "id" not in m:
                        c.findings.append(Finding("missing_key", mbase + "/id", "The mask has no 'id'; ROIs join to masks by id."))
                    elif mid is not None:
                        if mid in seen_masks:
                            c.findings.append(Finding("duplicate_mask_id", mbase + "/id", f"Mask id {mid!r} is also used at {seen_masks[mid]}; mask ids must be unique within a source."))
                        else:
                            seen_masks[mid] = mbase
                    src.masks.append(Mask(
                        index=mi, id=mid,
                        uri=c.str_(m, "uri", mbase, required=True),
                        content_type=c.str_(m, "content_type", mbase),
                        timestamp=c.int_(m, "timestamp", mbase),
                        width=c.int_(m, "width", mbase, 1), height=c.int_(m, "height", mbase, 1),
                    ))
        frame.sources.append(src)


def _rois(rois: list, frame: Frame, c: _Checker) -> None:
    source_ids = {s.id for s in frame.sources if s.id is not None}
    for ri, r in enumerate(rois):
        base = f"/rois/{ri}"
        if type(r) is not dict:
            c.wrong(base, "an object", r)
            continue
        labels = None
        if "label" in r:
            if r["label"] is not None:
                labels = c.str_list(r["label"], base + "/label")
        elif "labels" in r and r["labels"] is not None:
            c.findings.append(Finding("roi_labels_key", base + "/labels", "The ROI uses 'labels'; the frame schema calls it 'label'. Read as 'label'."))
            labels = c.str_list(r["labels"], base + "/labels")
        roi_sources = None
        if r.get("sources") is not None:
            roi_sources = c.str_list(r["sources"], base + "/sources")
            for k, sid in enumerate(roi_sources or ()):
                if sid not in source_ids:
                    c.findings.append(Finding("unknown_roi_source", f"{base}/sources/{k}", f"The ROI names source {sid!r}, which the frame does not have (sources: {sorted(source_ids)})."))
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
            elif len(poly) % 2:
                c.findings.append(Finding("poly_odd_length", base + "/poly", f"poly has {len(poly)} numbers; it must be x, y pairs."))
        meta = c.obj_(r, "meta", base)
        roi_type = meta.get("_type") if meta else None
        mask = r.get("mask")
        has_mask = False
        mask_id = rgb = None
        if mask is not None:
            if type(mask) is not dict:
                c.wrong(base + "/mask", "an object", mask)
            else:
                has_mask = True
                mask_id = _id_string(mask.get("id"), base + "/mask/id", c, "mask")
                if mask_id is None and "id" not in mask:
                    c.findings.append(Finding("missing_key", base + "/mask/id", "roi.mask has no 'id'; it must name the mask (sources[].masks[].id) it colours."))
                if "value" in mask:
                    rgb = mask_colour(mask["value"], base + "/mask/value", c)
                else:
                    c.findings.append(Finding("missing_key", base + "/mask/value", "roi.mask has no 'value'; give the [r, g, b] colour of this ROI in the mask."))
        frame.rois.append(Roi(
            index=ri, id=c.str_(r, "id", base), labels=labels, source_ids=roi_sources,
            confidence=float(confidence) if confidence is not None else None,
            poly=[float(x) for x in poly] if poly is not None else None,
            roi_type=roi_type if type(roi_type) is str else None, meta=meta,
            has_mask=has_mask, mask_id=mask_id, mask_rgb=rgb,
        ))
