"""A corpus of hostile JSON Lines records, each with the findings it must produce.

Written from the rules in shared/FORMAT.md (not from framebeam's parser). Each ``BadRecord.raw`` is one
line of a shard without its trailing newline. Decisions taken where the format leaves room:

- A leading UTF-8 BOM is ignored (Windows tools write one; RFC 8259 lets a parser ignore it), and a
  trailing ``\\r`` is JSON whitespace: both records are clean frames.
- An escaped lone surrogate (``"\\ud800"``) is valid JSON grammar but no Unicode text: it cannot be
  written to Parquet (Arrow strings are UTF-8). It is ``json_invalid_utf8``. A proper surrogate pair
  (``"\\ud83d\\ude97"``) is fine. Overlong encodings and CESU-8 surrogates are invalid UTF-8 bytes.
- ``1e999`` parses to infinity in a float: ``json_nan_or_infinity``, like a literal ``Infinity``.
- ``2**70`` as a width is a JSON integer of the right type and out of range: ``invalid_value``
  (beware: orjson turns integers above 2**64 into floats, which would misreport it as ``wrong_type``).
- ``True`` is not an integer (Python says it is): ``wrong_type`` where an int is expected,
  ``invalid_mask_value`` inside ``mask.value``.
- ``mask.value`` that is not a list of exactly 3 integers in 0..255 (including a string, floats,
  4 numbers) is ``invalid_mask_value``, not ``wrong_type``: that code says exactly this.
- Mask ids must be unique per source here (two masks with one id on one source). The SDK numbers
  masks per source, so one frame with masks on two sources legitimately repeats ``"00"``.
- A ``poly`` with ``-999999999`` separators is kept even-length by writing the separator as a pair.

``expect_paths`` holds (code, JSON pointer) pairs that must be among the findings: the pointer names the
offending value, where a missing key would be, or for duplicates the later occurrence; '' is the
whole record. ``forbid_codes`` must NOT appear (they guard against over-eager validation).
``huge_record()`` builds the 50 MiB record on demand; it is not in ``BAD_RECORDS`` so that tests
include it once, deliberately.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transforms.findings import CODES


@dataclass(frozen=True)
class BadRecord:
    name: str
    raw: bytes  # one JSON Lines record as it appears in a shard (no trailing newline)
    expect_codes: frozenset[str]  # codes from findings.CODES that MUST appear among the record's findings
    parses_to_frame: bool  # True if it is a JSON object (so it lands in `frames`), False if only an `issues` row
    expect_paths: frozenset[tuple[str, str]] = field(default=frozenset())  # (code, JSON pointer) that MUST appear
    forbid_codes: frozenset[str] = field(default=frozenset())  # codes that must NOT appear


# Record-level errors: none of these may appear on a clean record (mask files are never read here).
RECORD_ERRORS = frozenset({
    "json_invalid", "json_invalid_utf8", "json_nan_or_infinity", "json_too_deep", "record_too_large",
    "record_not_object", "missing_key", "wrong_type", "invalid_value", "poly_odd_length",
    "duplicate_source_id", "duplicate_mask_id", "unknown_roi_source", "invalid_mask_value",
    "mask_colour_conflict", "roi_mask_unjoined",
})

ROAD, CAR = [128, 64, 128], [64, 0, 128]

# A clean frame in the schema's join convention; every frame-shaped record below is a variation of it.
BASE_FRAME: dict[str, Any] = {
    "id": "b7e1c0de5f0a4c2e9d3a6f1e2b4c8d90",
    "timestamp": 1700000000000,
    "context_id": "drive-2023-11-14-seq01",
    "meta": {"weather": "sunny", "city": "Haifa"},
    "sources": [{
        "id": "front",
        "uri": "images/front-000001.jpg",
        "content_type": "image/jpeg",
        "width": 160,
        "height": 120,
        "timestamp": 0,
        "meta": {"fov": 120},
        "preview": {"uri": "images/front-000001-thumb.jpg"},
        "masks": [{
            "id": "00",
            "uri": "masks/front-000001.png",
            "content_type": "image/png",
            "width": 160,
            "height": 120,
            "timestamp": 0,
        }],
    }],
    "rois": [
        {"label": ["road"], "sources": ["front"], "meta": {"_type": "mask"}, "mask": {"id": "00", "value": ROAD}},
        {"label": ["car"], "sources": ["front"], "meta": {"_type": "mask"}, "mask": {"id": "00", "value": CAR}},
        {"label": ["car"], "sources": ["front"], "meta": {"_type": "b2d"}, "confidence": 0.9,
         "poly": [10.0, 20.0, 40.0, 20.0, 40.0, 50.0, 10.0, 50.0]},
    ],
}

# The seed document's Example 1, verbatim (label names the mask, mask.id names the class).
SEED_EXAMPLE_1 = {
    "timestamp": 1234567889, "context_id": "car_1", "meta": {"velocity": "60"},
    "sources": [{
        "id": "front", "content_type": "video/mp4", "width": 800, "height": 600,
        "uri": "https://s3.amazonaws.com/my_cars/car_1/front.mp4", "timestamp": 1234567889,
        "meta": {"angle": 45, "fov": 129},
        "masks": [
            {"id": "seg", "content_type": "video/mp4",
             "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_seg.mp4", "timestamp": 123456789},
            {"id": "seg_instance", "content_type": "video/mp4",
             "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_instance_seg.mp4", "timestamp": 123456789},
        ],
    }],
    "rois": [
        {"sources": ["front"], "label": ["seg"], "mask": {"id": class_name, "value": value}}
        for class_name, value in (("car", [210, 210, 120]), ("person", [147, 44, 209]), ("road", [197, 135, 146]),
                                  ("street", [135, 198, 145]), ("building", [72, 191, 65]))
    ],
}

# The seed document's Example 2 (a fragment there; wrapped in an object here). Its mask ids "car" and
# "road" ARE mask ids of the source, so it joins by the schema rule with class "right_lane".
SEED_EXAMPLE_2 = {
    "sources": [{
        "id": "front", "content_type": "video/mp4", "width": 800, "height": 600,
        "uri": "https://s3.amazonaws.com/my_cars/car_1/front.mp4", "timestamp": 1234567889,
        "meta": {"angle": 45, "fov": 129},
        "masks": [
            {"id": "car", "content_type": "video/mp4",
             "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_seg.mp4", "timestamp": 123456789},
            {"id": "road", "content_type": "video/mp4",
             "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_instance_seg.mp4", "timestamp": 123456789},
        ],
    }],
    "rois": [
        {"sources": ["front"], "label": ["right_lane"], "mask": {"id": "car", "value": [210, 210, 120]}},
        {"sources": ["front"], "label": ["right_lane"], "mask": {"id": "road", "value": [197, 135, 146]}},
    ],
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode("utf-8")


BASE_RAW = _dumps(BASE_FRAME)


def _edited(edit: Callable[[dict], Any]) -> bytes:
    """BASE_FRAME after ``edit`` changed a deep copy of it, as one compact JSON line."""
    frame = copy.deepcopy(BASE_FRAME)
    edit(frame)
    return _dumps(frame)


def _set(pointer: str, value: Any) -> Callable[[dict], None]:
    """An edit that sets the value at a JSON pointer (parts that are digits index lists)."""
    *parents, last = pointer.strip("/").split("/")

    def edit(frame: dict) -> None:
        node: Any = frame
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    return edit


def _delete(pointer: str) -> Callable[[dict], None]:
    *parents, last = pointer.strip("/").split("/")

    def edit(frame: dict) -> None:
        node: Any = frame
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[int(last) if isinstance(node, list) else last]
    return edit


def _not_a_frame(name: str, raw: bytes, code: str) -> BadRecord:
    return BadRecord(name=name, raw=raw, expect_codes=frozenset({code}), parses_to_frame=False,
                     expect_paths=frozenset({(code, "")}))


def _frame_with(name: str, raw: bytes, code: str, pointer: str | None = None, **extra: Any) -> BadRecord:
    return BadRecord(name=name, raw=raw, expect_codes=frozenset({code}), parses_to_frame=True,
                     expect_paths=frozenset({(code, pointer)}) if pointer is not None else frozenset(), **extra)


def _wrong_type(name: str, pointer: str, value: Any) -> BadRecord:
    return _frame_with(name, _edited(_set(pointer, value)), "wrong_type", pointer)


def _clean(name: str, raw: bytes, forbid: frozenset[str] = RECORD_ERRORS) -> BadRecord:
    return BadRecord(name=name, raw=raw, expect_codes=frozenset(), parses_to_frame=True, forbid_codes=forbid)


def _mask_value(name: str, value: Any) -> BadRecord:
    return _frame_with(name, _edited(_set("/rois/0/mask/value", value)), "invalid_mask_value", "/rois/0/mask/value")


def _deeply_nested(depth: int) -> bytes:
    return b'{"id":"deep","meta":{"nested":' + b"[" * depth + b"]" * depth + b"}}"


def _add_roi(roi: dict) -> Callable[[dict], None]:
    return lambda frame: frame["rois"].append(roi)


def _append_source_mask(mask: dict) -> Callable[[dict], None]:
    return lambda frame: frame["sources"][0]["masks"].append(mask)


def _integer_mask_ids(frame: dict) -> None:
    frame["sources"][0]["masks"][0]["id"] = 0
    for roi in frame["rois"]:
        if "mask" in roi:
            roi["mask"]["id"] = 0


def _labels_key(frame: dict) -> None:
    frame["rois"][0]["labels"] = frame["rois"][0].pop("label")


BAD_RECORDS: list[BadRecord] = [
    # --- Controls: hostile-looking but valid; nothing record-level may be reported.
    _clean("valid_base_frame", BASE_RAW),
    _clean("utf8_bom_before_record", b"\xef\xbb\xbf" + BASE_RAW),
    _clean("crlf_record_ends_in_carriage_return", BASE_RAW + b"\r"),
    _clean("escaped_surrogate_pair_is_valid", _edited(_set("/meta/note", "\U0001F697 car"))
           .replace("\U0001F697".encode(), b"\\ud83d\\ude97")),
    _clean("nan_and_infinity_inside_strings", _edited(_set("/meta/note", "NaN Infinity -Infinity"))),
    _clean("poly_with_minus_999999999_separators", _edited(_set(
        "/rois/2/poly", [10.0, 20.0, 40.0, 20.0, 40.0, 50.0, -999999999, -999999999, 60.0, 60.0, 70.0, 60.0, 70.0, 70.0]))),
    _clean("no_frame_id_like_the_seed_examples", _edited(_delete("/id"))),
    _clean("seed_example_2_joins_by_schema_rule", _dumps(SEED_EXAMPLE_2), forbid=RECORD_ERRORS | {"seed_join_rule"}),

    # --- Not JSON at all.
    _not_a_frame("truncated_mid_string", BASE_RAW[:150], "json_invalid"),
    _not_a_frame("truncated_open_array", b'{"id":"f-0002","sources":[', "json_invalid"),
    _not_a_frame("trailing_comma", b'{"id":"f-0003","sources":[],}', "json_invalid"),
    _not_a_frame("single_quotes", b"{'id': 'f-0004', 'sources': []}", "json_invalid"),
    _not_a_frame("unquoted_keys", b'{id:"f-0005",sources:[]}', "json_invalid"),
    _not_a_frame("two_objects_on_one_line", b'{"id":"f-0006","sources":[]}{"id":"f-0007","sources":[]}', "json_invalid"),
    _not_a_frame("javascript_comment", b'{"id":"f-0008","sources":[]} // exported by tool', "json_invalid"),
    _not_a_frame("raw_tab_inside_string", b'{"id":"f-00\t09","sources":[]}', "json_invalid"),
    _not_a_frame("nul_byte_inside_string", b'{"id":"f-00\x0010","sources":[]}', "json_invalid"),
    _not_a_frame("empty_key_value", b'{"id":,"sources":[]}', "json_invalid"),

    # --- JSON, but not an object.
    _not_a_frame("array_holding_a_frame", b"[" + BASE_RAW + b"]", "record_not_object"),
    _not_a_frame("string", b'"frames-0000.jsonl"', "record_not_object"),
    _not_a_frame("number", b"42", "record_not_object"),
    _not_a_frame("null", b"null", "record_not_object"),
    _not_a_frame("true", b"true", "record_not_object"),

    # --- Not UTF-8 text.
    _not_a_frame("invalid_utf8_byte", b'{"id":"f-\xff\xfe","sources":[]}', "json_invalid_utf8"),
    _not_a_frame("latin1_encoded_city", b'{"id":"f-0011","meta":{"city":"Z\xfcrich"},"sources":[]}', "json_invalid_utf8"),
    _not_a_frame("overlong_utf8_slash", b'{"id":"f-\xc0\xaf0012","sources":[]}', "json_invalid_utf8"),
    _not_a_frame("cesu8_encoded_surrogate", b'{"id":"f-\xed\xa0\x80","sources":[]}', "json_invalid_utf8"),
    _not_a_frame("escaped_lone_surrogate", b'{"id":"f-\\ud800","sources":[]}', "json_invalid_utf8"),

    # --- NaN and infinities (JSON has none).
    _not_a_frame("nan_timestamp", b'{"id":"f-0013","timestamp":NaN,"sources":[]}', "json_nan_or_infinity"),
    _not_a_frame("infinity_confidence", BASE_RAW.replace(b'"confidence":0.9', b'"confidence":Infinity'), "json_nan_or_infinity"),
    _not_a_frame("negative_infinity_width", BASE_RAW.replace(b'"width":160', b'"width":-Infinity', 1), "json_nan_or_infinity"),
    _not_a_frame("number_overflows_to_infinity", BASE_RAW.replace(b'"confidence":0.9', b'"confidence":1e999'), "json_nan_or_infinity"),

    # --- Too deep.
    _not_a_frame("nested_10000_deep", _deeply_nested(10_000), "json_too_deep"),

    # --- Wrong types at every key of a frame.
    _wrong_type("frame_id_number", "/id", 1234),
    _wrong_type("frame_timestamp_string", "/timestamp", "1700000000000"),
    _wrong_type("frame_timestamp_float", "/timestamp", 1700000000000.5),
    _wrong_type("frame_timestamp_bool", "/timestamp", True),
    _wrong_type("frame_context_id_number", "/context_id", 7),
    _wrong_type("frame_meta_array", "/meta", ["sunny"]),
    _wrong_type("frame_meta_blob_string", "/meta_blob", "{\"k\": 1}"),
    _wrong_type("frame_blob_object", "/blob", {"k": 1}),
    _wrong_type("frame_dataset_string", "/dataset", "my-dataset"),
    _wrong_type("frame_sources_object", "/sources", {"front": {"uri": "images/front-000001.jpg"}}),
    _wrong_type("frame_rois_string", "/rois", "road,car"),
    # ... of a source
    _wrong_type("source_not_object", "/sources/0", "images/front-000001.jpg"),
    _wrong_type("source_id_number", "/sources/0/id", 0),
    _wrong_type("source_uri_number", "/sources/0/uri", 1),
    _wrong_type("source_content_type_list", "/sources/0/content_type", ["image/jpeg"]),
    _wrong_type("source_width_string", "/sources/0/width", "160"),
    _wrong_type("source_width_bool", "/sources/0/width", True),
    _wrong_type("source_height_float", "/sources/0/height", 120.5),
    _wrong_type("source_timestamp_string", "/sources/0/timestamp", "0"),
    _wrong_type("source_meta_array", "/sources/0/meta", [120]),
    _wrong_type("source_preview_string", "/sources/0/preview", "images/front-000001-thumb.jpg"),
    _wrong_type("source_masks_object", "/sources/0/masks", {"00": "masks/front-000001.png"}),
    # ... of a mask
    _wrong_type("mask_not_object", "/sources/0/masks/0", "masks/front-000001.png"),
    _wrong_type("mask_id_float", "/sources/0/masks/0/id", 0.5),
    _wrong_type("mask_uri_number", "/sources/0/masks/0/uri", 5),
    _wrong_type("mask_content_type_number", "/sources/0/masks/0/content_type", 200),
    _wrong_type("mask_width_string", "/sources/0/masks/0/width", "160"),
    _wrong_type("mask_height_bool", "/sources/0/masks/0/height", False),
    _wrong_type("mask_timestamp_string", "/sources/0/masks/0/timestamp", "0"),
    # ... of an ROI
    _wrong_type("roi_not_object", "/rois/0", ["road"]),
    _wrong_type("roi_id_number", "/rois/0/id", 3),
    _wrong_type("roi_label_string", "/rois/0/label", "road"),
    _wrong_type("roi_label_item_number", "/rois/0/label/0", 7),
    _wrong_type("roi_confidence_string", "/rois/2/confidence", "0.9"),
    _wrong_type("roi_poly_string", "/rois/2/poly", "10,20,40,20,40,50,10,50"),
    _wrong_type("roi_poly_item_string", "/rois/2/poly/1", "20"),
    _wrong_type("roi_sources_string", "/rois/0/sources", "front"),
    _wrong_type("roi_sources_item_number", "/rois/0/sources/0", 0),
    _wrong_type("roi_meta_array", "/rois/0/meta", ["mask"]),
    _wrong_type("roi_mask_array", "/rois/0/mask", ROAD),
    _wrong_type("roi_mask_id_list", "/rois/0/mask/id", ["00"]),

    # --- Missing keys.
    _frame_with("missing_sources", _edited(_delete("/sources")), "missing_key", "/sources"),
    _frame_with("missing_source_id", _edited(_delete("/sources/0/id")), "missing_key", "/sources/0/id"),
    _frame_with("missing_source_uri", _edited(_delete("/sources/0/uri")), "missing_key", "/sources/0/uri"),
    _frame_with("missing_mask_id", _edited(_delete("/sources/0/masks/0/id")), "missing_key", "/sources/0/masks/0/id"),
    _frame_with("missing_mask_uri", _edited(_delete("/sources/0/masks/0/uri")), "missing_key", "/sources/0/masks/0/uri"),
    _frame_with("roi_mask_without_value", _edited(_delete("/rois/0/mask/value")), "missing_key", "/rois/0/mask/value"),
    _frame_with("roi_mask_without_id", _edited(_delete("/rois/0/mask/id")), "missing_key", "/rois/0/mask/id"),
    _frame_with("empty_sources", _edited(_set("/sources", [])), "no_sources", "/sources"),

    # --- Right type, impossible value.
    _frame_with("empty_frame_id", _edited(_set("/id", "")), "invalid_value", "/id"),
    _frame_with("empty_source_id", _edited(_set("/sources/0/id", "")), "invalid_value", "/sources/0/id"),
    _frame_with("negative_source_width", _edited(_set("/sources/0/width", -160)), "invalid_value", "/sources/0/width"),
    _frame_with("zero_mask_height", _edited(_set("/sources/0/masks/0/height", 0)), "invalid_value", "/sources/0/masks/0/height"),
    _frame_with("width_2_pow_70", _edited(_set("/sources/0/width", 2**70)), "invalid_value", "/sources/0/width",
                forbid_codes=frozenset({"wrong_type", "json_invalid"})),

    # --- References inside the frame.
    _frame_with("duplicate_source_ids", _edited(lambda f: f["sources"].append(copy.deepcopy(f["sources"][0]))),
                "duplicate_source_id", "/sources/1/id"),
    _frame_with("duplicate_mask_ids_on_one_source",
                _edited(_append_source_mask({"id": "00", "uri": "masks/front-000001-instances.png"})),
                "duplicate_mask_id", "/sources/0/masks/1/id"),
    _frame_with("roi_names_unknown_source", _edited(_set("/rois/0/sources/0", "rear")), "unknown_roi_source",
                "/rois/0/sources/0"),

    # --- roi.mask.value that is not 3 integers in 0..255.
    _mask_value("mask_value_two_numbers", [128, 64]),
    _mask_value("mask_value_four_numbers_rgba", [128, 64, 128, 255]),
    _mask_value("mask_value_300", [300, 64, 128]),
    _mask_value("mask_value_clearml_example_minus_one", [-1, 1, 255]),
    _mask_value("mask_value_floats", [128.5, 64.0, 128.0]),
    _mask_value("mask_value_string", "#804080"),
    _mask_value("mask_value_booleans", [True, False, True]),
    _mask_value("mask_value_empty", []),

    # --- Geometry.
    _frame_with("poly_odd_length", _edited(_set("/rois/2/poly", [10.0, 20.0, 40.0, 20.0, 40.0])), "poly_odd_length",
                "/rois/2/poly"),

    # --- Colours and joins.
    _frame_with("colour_conflict_one_colour_two_labels",
                _edited(_add_roi({"label": ["truck"], "sources": ["front"], "mask": {"id": "00", "value": CAR}})),
                "mask_colour_conflict"),
    _frame_with("roi_mask_joins_nothing", _edited(_set("/rois/1/mask/id", "07")), "roi_mask_unjoined", "/rois/1/mask/id"),
    _frame_with("integer_mask_ids_old_docs", _edited(_integer_mask_ids), "mask_id_not_string", "/sources/0/masks/0/id",
                forbid_codes=frozenset({"roi_mask_unjoined", "wrong_type"})),
    _frame_with("roi_labels_instead_of_label", _edited(_labels_key), "roi_labels_key", "/rois/0/labels",
                forbid_codes=frozenset({"missing_key", "roi_mask_unjoined"})),
    # JSON lets a key be escaped: a byte search for '"labels"' would not see this one.
    _frame_with("roi_labels_key_escaped", _edited(_labels_key).replace(b'"labels"', b'"label\\u0073"'), "roi_labels_key",
                "/rois/0/labels", forbid_codes=frozenset({"missing_key", "roi_mask_unjoined"})),
    _frame_with("seed_example_1_verbatim", _dumps(SEED_EXAMPLE_1), "seed_join_rule", "/rois/0",
                forbid_codes=frozenset({"roi_mask_unjoined", "missing_key", "wrong_type"})),
]

HUGE_RECORD_BYTES = 50 * 1024 * 1024


def huge_record(size_bytes: int = HUGE_RECORD_BYTES) -> BadRecord:
    """A valid frame padded to ``size_bytes`` with one long meta string: record_too_large.

    Built on demand (50 MiB); assumes --max-record-bytes is below that (it should be far below).
    """
    head = BASE_RAW[:-1] + b',"meta_blob":{"padding":"'
    tail = b'"}}'
    raw = head + b"x" * max(0, size_bytes - len(head) - len(tail)) + tail
    return BadRecord(name="record_50_mib", raw=raw, expect_codes=frozenset({"record_too_large"}),
                     parses_to_frame=False, expect_paths=frozenset({("record_too_large", "")}))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _reject_infinite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows to infinity")
    return value


def reference_read(raw: bytes) -> tuple[Any, str | None]:
    """Read one record by the rules this corpus encodes, with the standard library only.

    Returns (value, None) or (None, code). Not framebeam's reader: a statement of what it must decide.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")  # strict: rejects overlong forms and encoded surrogates
    except UnicodeDecodeError:
        return None, "json_invalid_utf8"
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_reject_infinite_float)
    except RecursionError:
        return None, "json_too_deep"
    except ValueError as error:  # JSONDecodeError is a ValueError too
        if "is not JSON" in str(error) or "overflows to infinity" in str(error):
            return None, "json_nan_or_infinity"
        return None, "json_invalid"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # an escaped lone surrogate
        return None, "json_invalid_utf8"
    if not isinstance(value, dict):
        return None, "record_not_object"
    return value, None


def corpus_problems(records: list[BadRecord] | None = None) -> list[str]:
    """Inconsistencies inside the corpus itself ([] when sound); a test asserts this is empty."""
    records = BAD_RECORDS if records is None else records
    problems: list[str] = []
    names = [record.name for record in records]
    problems += [f"duplicate record name {name!r}" for name in sorted({n for n in names if names.count(n) > 1})]
    for record in records:
        unknown = (record.expect_codes | record.forbid_codes | {code for code, _ in record.expect_paths}) - set(CODES)
        if unknown:
            problems.append(f"{record.name}: codes not in findings.CODES: {sorted(unknown)}")
        if record.expect_codes & record.forbid_codes:
            problems.append(f"{record.name}: a code is both expected and forbidden")
        if not {code for code, _ in record.expect_paths} <= record.expect_codes:
            problems.append(f"{record.name}: expect_paths names a code missing from expect_codes")
        if b"\n" in record.raw:
            problems.append(f"{record.name}: raw holds a newline, so it is not one JSON Lines record")
        if len(record.raw) > 1_000_000:
            continue  # huge_record: too large to read on purpose
        value, code = reference_read(record.raw)
        if (value is not None) != record.parses_to_frame:
            problems.append(f"{record.name}: parses_to_frame={record.parses_to_frame} but the reference read gives {code}")
        if code is not None and code not in record.expect_codes:
            problems.append(f"{record.name}: the reference read gives {code}, not among {sorted(record.expect_codes)}")
    return problems
