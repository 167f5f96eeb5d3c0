"""The two validation paths agree: whenever msgspec's fast path takes a record, the Python slow path
gives the same frame (every table row it becomes) and the same findings.

Inputs: frames built by the clearml SDK, the bundled sample, the hostile corpus, and hypothesis-made
valid frames plus near-valid ones (one field of a valid frame replaced by any JSON value). Meta and
`extra` columns hold JSON text: the fast path keeps it as written, the slow path re-serialises it, so
those are compared as parsed JSON values; everything else is compared exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.bad_records import BAD_RECORDS, BASE_RAW
from tests.conftest import examples
from transforms.flattening import chunk_tables, frame_issue_rows
from transforms.joining import join_frame
from transforms.reading import iter_shard
from transforms.validation import check_references, fast_path, slow_path

JSON_TEXT_COLUMNS = {"meta", "extra"}


def outcome(result) -> tuple:
    """A path's result as plain data: the finding of a non-frame, or the frame's tables and findings."""
    frame, finding = result
    if frame is None:
        return ("not a frame", finding.code, finding.path, finding.message)
    check_references(frame)
    joined = join_frame(frame)
    tables = {name: [{k: orjson.loads(v) if k in JSON_TEXT_COLUMNS and v is not None else v for k, v in row.items()}
                     for row in table.to_pylist()]
              for name, table in chunk_tables([joined]).items()}
    findings = [row._asdict() for row in frame_issue_rows(joined)]
    return ("frame", frame.id, frame.own_id, tables, findings)


def agree(data: bytes) -> bool:
    """True when the fast path took the record (and then both paths agree); False when only the slow path can."""
    fast = fast_path(data, "mem://s.jsonl", 7)
    if fast is None:
        return False
    assert outcome(fast) == outcome(slow_path(data, "mem://s.jsonl", 7)), data[:300]
    return True


def test_sdk_frames(tmp_path: Path):
    pytest.importorskip("clearml.backend_api.services.v2_23.datasets", reason="the clearml SDK builds these frames")
    from tests.sdk_frames import sdk_frames

    frames = sdk_frames(tmp_path)
    taken = [agree(json.dumps(f).encode()) for f in frames]
    assert all(taken), "SDK frames are well-formed: the fast path takes every one"


def test_sample(tmp_path: Path):
    from transforms.sample import write_sample

    write_sample(str(tmp_path))
    records = [r for shard in sorted(tmp_path.glob("frames-*")) for r in iter_shard(str(shard)) if r.problem is None]
    taken = [agree(r.data) for r in records]
    assert len(records) > 20 and sum(taken) > len(records) // 2


def test_hostile_corpus():
    taken = [agree(bad.raw) for bad in BAD_RECORDS]
    assert any(taken) and not all(taken)


@pytest.mark.parametrize("record", [
    b'{"id": "a", "sources": [{"id": "s", "uri": "x.png"}], "rois": [], "meta": {"big": 1e400}}',
    b'{"id": "a", "sources": [{"id": "s", "uri": "x.png", "meta": {"n": -2E+999}}], "rois": []}',
    b'{"id": "a", "sources": [{"id": "s", "uri": "x.png"}], "rois": [], "exporter": {"v": 1e308, "w": 9e9999}}',
])
def test_a_number_beyond_a_double_is_the_same_finding_on_both_paths(record):
    # msgspec keeps metas and unknown keys as raw text, so the fast path once passed 1e400 in a .jsonl shard
    # while the same record in a .json array said json_nan_or_infinity.
    assert fast_path(record, "mem://s.jsonl", 7) is None
    frame, finding = slow_path(record, "mem://s.jsonl", 7)
    assert frame is None and finding.code == "json_nan_or_infinity"


@given(st.lists(st.sampled_from([b"0", b"7", b"9", b"00", b"e", b"E", b"+", b"e+", b"9E+", b"-", b".", b"x", b" ",
                                  b"\xc3\xa9", b"1" * 300, b"2" * 308]), max_size=30).map(b"".join))
@example(b"x" + b"2" * 308 + b"x")
@example(b"x" + b"2" * 309 + b"x")
@example(b"1e+123")
@example(b"1E99.")
@example(b"e+123")
@settings(max_examples=examples(300), deadline=None)
def test_the_overflow_check_finds_what_its_regexes_find(data):
    # maybe_overflow looks for the shapes of [0-9][eE]+?[0-9]{3} and [0-9]{309} without a regex (faster).
    import re

    from transforms.validation import maybe_overflow

    expected = re.search(rb"[0-9][eE]\+?[0-9]{3}", data) is not None or re.search(rb"[0-9]{309}", data) is not None
    assert maybe_overflow(data) == expected


@pytest.mark.parametrize("frame_id", ["plain", "0E000"])
def test_integers_beyond_64_bits_in_a_meta_keep_the_frame_on_both_paths(frame_id: str):
    """Found by hypothesis with "0E000" (a string that looked like a huge number to the slow path's overflow check):
    the standard library read -2**63 - 1 exactly, orjson could not write it back, and the slow path took that for a
    lone surrogate (json_invalid_utf8) while the fast path kept the frame. Now both keep it, exactly: a meta is
    free-form JSON kept as text (the fast path as written, the slow path as the standard library writes it)."""
    frame = {"id": frame_id, "sources": [{"id": "0", "uri": "0.jpg", "masks": [], "meta": {"": -9223372036854775809}},
                                         {"id": "1", "uri": "1.jpg", "masks": []}, {"id": "00", "uri": "00.jpg", "masks": []}],
             "rois": []}
    assert agree(json.dumps(frame).encode())
    for path in (fast_path, slow_path):
        kept, finding = path(json.dumps(frame).encode(), "mem://s.jsonl", 7)
        assert finding is None and json.loads(bytes(kept.doc.sources[0].meta)) == {"": -9223372036854775809}, path.__name__


@pytest.mark.parametrize("frame_id", ["plain", "0E000"])
def test_an_integer_beyond_64_bits_in_a_typed_field_is_reported_where_it_stands(frame_id: str):
    data = json.dumps({"id": frame_id, "timestamp": 2**64, "sources": [{"id": "a", "uri": "a.jpg"}]}).encode()
    assert fast_path(data, "mem://s.jsonl", 7) is None
    frame, finding = slow_path(data, "mem://s.jsonl", 7)
    assert finding is None and [(f.code, f.path) for f in frame.findings] == [("invalid_value", "/timestamp")]


def test_a_lone_surrogate_is_still_invalid_utf8():
    data = b'{"id": "0E000", "meta": {"a": "\\ud800"}, "sources": [{"id": "a", "uri": "a.jpg"}]}'
    assert fast_path(data, "mem://s.jsonl", 7) is None
    assert slow_path(data, "mem://s.jsonl", 7)[1].code == "json_invalid_utf8"


# --- hypothesis: valid frames, and near-valid ones with one field replaced -------------------------------

ids = st.text(min_size=1, max_size=6)
colour = st.lists(st.integers(0, 255), min_size=3, max_size=3)
metas = st.none() | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.booleans(), max_size=3)


@st.composite
def valid_frames(draw) -> dict:
    source_ids = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    sources = []
    for sid in source_ids:
        masks = [{"id": mid, "uri": f"m/{sid}-{mid}.png", "timestamp": draw(st.integers(0, 10**6))}
                 for mid in draw(st.lists(ids, max_size=2, unique=True))]
        source = {"id": sid, "uri": f"{sid}.jpg", "masks": masks}
        if draw(st.booleans()):
            source.update(width=draw(st.integers(1, 4000)), height=draw(st.integers(1, 4000)))
        if draw(st.booleans()):
            source["meta"] = draw(metas)
        sources.append(source)
    rois = []
    for _ in range(draw(st.integers(0, 4))):
        roi = {"label": draw(st.lists(st.text(max_size=6), max_size=2)), "sources": draw(st.lists(st.sampled_from(source_ids), max_size=2)),
               "meta": {"_type": draw(st.sampled_from(["mask", "b2d", "p2d"]))}}
        if draw(st.booleans()):
            roi["poly"] = draw(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=0, max_size=4).map(lambda p: p + p))
        if draw(st.booleans()):
            roi["mask"] = {"id": draw(ids), "value": draw(colour)}
        if draw(st.booleans()):
            roi["confidence"] = draw(st.floats(0, 1))
        rois.append(roi)
    frame = {"id": draw(ids), "sources": sources, "rois": rois}
    if draw(st.booleans()):
        frame["meta"] = draw(metas)
    if draw(st.booleans()):
        frame["context_id"] = draw(ids)
    if draw(st.booleans()):
        frame["timestamp"] = draw(st.integers(0, 2**40))
    return frame


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every (container, key) place in a JSON value, for mutating one field."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_frames())
def test_valid_frames(frame):
    assert agree(json.dumps(frame, ensure_ascii=False).encode())  # a \\u escape of a surrogate pair goes the slow way
    agree(json.dumps(frame).encode())


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(valid_frames(), st.builds(lambda: orjson.loads(BASE_RAW))), st.data())
def test_near_valid_frames(frame, data):
    paths = list(_paths(frame))
    path = data.draw(st.sampled_from(paths))
    target = frame
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = data.draw(json_values)
    agree(json.dumps(frame).encode())
