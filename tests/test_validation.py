"""Parsing, validation and joining of single records, without Beam, against the hostile corpus."""
from __future__ import annotations

import io

import pytest

from tests.bad_records import BAD_RECORDS, BASE_RAW, corpus_problems, huge_record
from transforms.findings import CODES
from transforms.joining import join_frame
from transforms.reading import ReadLimits, RecordChunk, _json_lines_records
from transforms.steps import validate_chunk


def findings_of(raw: bytes, limits: ReadLimits = ReadLimits()):
    """Read one JSON Lines record as a shard would hold it, then validate and join it."""
    records = list(_json_lines_records(io.BytesIO(raw + b"\n"), limits))
    assert len(records) == 1, "one physical line is one record"
    chunk = validate_chunk(RecordChunk("mem://shard.jsonl", records))
    if chunk.problems:
        assert not chunk.frames
        return False, {(row.code, row.path) for row in chunk.problems}, chunk.problems
    (frame,) = chunk.frames
    join_frame(frame)
    return True, {(f.code, f.path) for f in frame.findings}, frame.findings


def test_corpus_is_sound():
    assert corpus_problems() == []
    assert len(BAD_RECORDS) >= 25


@pytest.mark.parametrize("bad", BAD_RECORDS, ids=lambda b: b.name)
def test_hostile_record_gives_expected_findings(bad):
    is_frame, found, _ = findings_of(bad.raw)
    codes = {code for code, _ in found}
    assert is_frame == bad.parses_to_frame
    assert bad.expect_codes <= codes, f"missing {sorted(bad.expect_codes - codes)}; got {sorted(found)}"
    assert bad.expect_paths <= found, f"missing {sorted(bad.expect_paths - found)}; got {sorted(found)}"
    assert not (bad.forbid_codes & codes), f"forbidden {sorted(bad.forbid_codes & codes)}"
    assert codes <= set(CODES)


def test_record_over_the_limit_keeps_its_start_and_skips_the_rest():
    bad = huge_record()
    limits = ReadLimits(max_record_bytes=16 * 1024 * 1024)
    stream = io.BytesIO(bad.raw + b"\n" + BASE_RAW + b"\n")
    records = list(_json_lines_records(stream, limits))
    assert [r.line for r in records] == [1, 2]
    assert records[0].problem.code == "record_too_large"
    assert len(records[0].data) == 64 * 1024
    assert records[1].problem is None and records[1].data == BASE_RAW


# --- no input escapes as an exception (hypothesis) ----------------------------------------------------

import json  # noqa: E402

import orjson  # noqa: E402
from hypothesis import example, given, settings, strategies as st  # noqa: E402

from tests.conftest import examples  # noqa: E402
from transforms.validation import validate_record  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FRAME_KEYS = ["id", "sources", "rois", "meta", "timestamp", "context_id", "dataset"]
NESTED_PATHS = [("sources", 0, k) for k in ("id", "uri", "width", "height", "masks", "meta", "preview")] + \
               [("sources", 0, "masks", 0, k) for k in ("id", "uri", "timestamp", "width")] + \
               [("rois", 0, k) for k in ("label", "sources", "poly", "mask", "meta", "confidence")] + \
               [("rois", 0, "mask", k) for k in ("id", "value")]


def _accounted(data: bytes) -> None:
    frame, finding = validate_record(data, "mem://s.jsonl", 1)
    assert (frame is None) != (finding is None)
    if frame is not None:
        join_frame(frame)
        for f in frame.findings:
            assert f.code in CODES


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    _accounted(data)


@settings(max_examples=examples(300), deadline=None)
@given(json_values)
def test_random_json_never_raises(value):
    _accounted(json.dumps(value).encode())


@settings(max_examples=examples(400), deadline=None)
@given(st.sampled_from(FRAME_KEYS + NESTED_PATHS), json_values)
@example(("rois", 0, "mask", "value"), -2**63 - 1)  # found by hypothesis: the finding's message crashed (orjson)
@example(("rois", 0, "mask", "value"), [2**64, 0, 0])
@example(("sources", 0, "meta"), {"n": -2**70})
def test_random_type_at_every_key_never_raises(path, value):
    frame = orjson.loads(BASE_RAW)
    target = frame
    path = (path,) if isinstance(path, str) else path
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    _accounted(json.dumps(frame).encode())


@settings(max_examples=examples(300), deadline=None)
@given(st.integers(min_value=0, max_value=len(BASE_RAW)), st.integers(min_value=0, max_value=len(BASE_RAW) - 1), st.integers(0, 255))
def test_truncated_and_flipped_records_never_raise(cut, pos, byte):
    _accounted(BASE_RAW[:cut])
    flipped = bytearray(BASE_RAW)
    flipped[pos] = byte
    _accounted(bytes(flipped))


def test_large_shards_split_into_parts_keep_line_numbers(tmp_path):
    from transforms.reading import iter_shard, plan_shard

    lines = [b'{"id":"%d","sources":[]}' % i if i % 7 else b"" for i in range(1, 2001)]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    limits = ReadLimits(split_bytes=3000)
    parts = plan_shard(str(path), limits)
    assert len(parts) > 5
    got = [(r.line, r.data) for part in parts for r in iter_shard(part, limits)]
    whole = [(r.line, r.data) for r in iter_shard(str(path), limits)]
    assert got == whole
    assert [line for line, _ in got] == [i for i in range(1, 2001) if i % 7]


def test_unknown_top_level_keys_are_kept_in_extra():
    import json as stdjson

    from transforms.validation import validate_record

    frame = stdjson.loads(BASE_RAW)
    frame.update({"saved": 1700000000000, "updated_in_version": "v2", "meta_blob": {"big": [1, 2]}, "blob": "x"})
    fast, _ = validate_record(stdjson.dumps(frame).encode(), "s", 1)
    frame["timestamp"] = "not an int"  # forces the slow path
    slow, _ = validate_record(stdjson.dumps(frame).encode(), "s", 2)
    for f in (fast, slow):
        assert stdjson.loads(f.extra) == {"saved": 1700000000000, "updated_in_version": "v2", "meta_blob": {"big": [1, 2]}, "blob": "x"}
    plain, _ = validate_record(BASE_RAW, "s", 3)
    assert plain.extra is None or "saved" not in plain.extra


def test_json_documents_larger_than_the_fast_path_are_streamed_with_the_same_records(tmp_path):
    from transforms.reading import iter_shard

    path = tmp_path / "export.json"
    path.write_text("[" + ",".join([BASE_RAW.decode()] * 50) + "]")
    whole = [r.data for r in iter_shard(str(path))]
    streamed = list(iter_shard(str(path), ReadLimits(fast_document_bytes=1000)))
    assert len(whole) == 50 and all(r.problem is None for r in streamed)
    assert [orjson.loads(r.data) for r in streamed] == [orjson.loads(d) for d in whole]
