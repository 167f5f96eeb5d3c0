"""Limits, each a flag: JSON depth, masks per frame, per-mask decode time; hostile PNG bytes never escape.

The record-size and mask-pixel limits have their own tests (test_validation/test_cli, test_decoding);
here: the new limits at their boundary, end to end through the CLI once, and hypothesis on the decoder.
"""
from __future__ import annotations

import io
import json
import resource
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import beside, examples, query, run_cli, table
from transforms.decoding import DecodeDeadline, MaskDecodeError, decode_mask_bytes
from transforms.mask_requests import too_many_masks
from transforms.statistics import analyse_mask, analyse_mask_bytes
from transforms.validation import DEFAULT_MAX_JSON_DEPTH, nesting_exceeds, validate_record


def frame_with_meta(meta: object) -> bytes:
    return orjson.dumps({"id": "f", "sources": [{"id": "cam", "uri": "a.jpg", "meta": {"deep": meta}}], "rois": [], "meta": {}})


def nested(levels: int) -> object:
    """A value ``levels`` containers deep, alternating objects and arrays."""
    value: object = 1
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


# --- --max-json-depth ------------------------------------------------------------------------------

@pytest.mark.parametrize("levels, too_deep", [(4, False), (5, True), (30, True)])
def test_json_depth_counts_from_the_record_on_the_fast_path(levels, too_deep):
    # frame(1) > sources(2) > source(3) > meta(4), then `levels` more: limit 8 admits 4 levels, not 5
    frame, finding = validate_record(frame_with_meta(nested(levels)), "s", 1, max_json_depth=8)
    assert (finding is not None and finding.code == "json_too_deep") == too_deep
    assert (frame is None) == too_deep


def test_json_depth_on_the_slow_path_and_in_unknown_keys():
    record = b'{"id": 7, "x": ' + b"[" * 70 + b"]" * 70 + b"}"  # id of the wrong type: the slow path
    assert validate_record(record, "s", 1)[1].code == "json_too_deep"
    shallow = b'{"id": 7, "x": ' + b"[" * 10 + b"]" * 10 + b"}"
    assert validate_record(shallow, "s", 1)[1] is None  # a frame, with a finding about its id
    assert "--max-json-depth=64" in validate_record(record, "s", 1)[1].message


def test_many_brackets_that_do_not_nest_are_not_too_deep():
    meta = {f"k{i}": [[i]] for i in range(200)}  # 400 brackets, depth 3
    frame, finding = validate_record(frame_with_meta(meta), "s", 1)
    assert finding is None and frame is not None


@given(st.recursive(st.integers() | st.text(max_size=3), lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3)),
       st.integers(1, 12))
@settings(max_examples=examples(200), deadline=None)
def test_nesting_exceeds_agrees_with_a_recursive_definition(value, limit):
    def depth(v: object) -> int:
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        return 0

    assert nesting_exceeds(value, limit) == (depth(value) > limit)


# --- --max-masks-per-frame -------------------------------------------------------------------------

def test_too_many_masks_is_an_error_beyond_the_limit_only(tmp_path):
    def frame(n_masks: int):
        record = {"id": "f", "sources": [{"id": "cam", "uri": "a.jpg", "masks": [{"id": f"m{i}", "uri": f"m{i}.png"} for i in range(n_masks)]}],
                  "rois": []}
        return validate_record(orjson.dumps(record), "s", 1)[0]

    assert too_many_masks(frame(3), 3) is None
    finding = too_many_masks(frame(4), 3)
    assert finding.code == "too_many_masks" and "--max-masks-per-frame=3" in finding.message


# --- --mask-decode-timeout -------------------------------------------------------------------------

def png_bytes(width: int, height: int, colours: int = 4) -> bytes:
    pixels = np.zeros((height, width, 3), np.uint8)
    for i in range(colours):
        pixels[i * height // colours:(i + 1) * height // colours, :, i % 3] = 60 * (i + 1)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


class SteppedClock:
    """A clock that advances a fixed step each time it is read: deterministic 'slow' decoding."""

    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_a_mask_predicted_over_the_budget_is_refused_before_decoding():
    data = png_bytes(1920, 1080)
    with pytest.raises(MaskDecodeError) as e:
        decode_mask_bytes(data, deadline=DecodeDeadline(0.01))  # 2 Mpx x 50 ns = 0.1 s predicted
    assert e.value.code == "mask_decode_timeout" and "refused before decoding" in e.value.message
    assert decode_mask_bytes(data, deadline=DecodeDeadline(60)).width == 1920


def test_a_mask_that_overruns_while_decoding_fails_with_the_timeout_code():
    with pytest.raises(MaskDecodeError) as e:
        decode_mask_bytes(png_bytes(64, 64), deadline=DecodeDeadline(1.0, clock=SteppedClock(0.6)))
    assert e.value.code == "mask_decode_timeout" and "--mask-decode-timeout=1" in e.value.message


def test_limits_through_the_cli(tmp_path):
    """--max-json-depth, --max-masks-per-frame and --mask-decode-timeout reach the workers."""
    (tmp_path / "m.png").write_bytes(png_bytes(1920, 1080))
    source = {"id": "cam", "uri": "a.jpg", "masks": [{"id": f"m{i}", "uri": str(tmp_path / "m.png")} for i in range(3)]}
    frames = [
        {"id": "masks", "sources": [source], "rois": []},
        {"id": "deep", "sources": [], "rois": [], "meta": {"a": [[[[[[[[[1]]]]]]]]]}},
    ]
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in frames))
    out = beside(tmp_path)
    status = run_cli("run", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--quiet",
                     "--max-json-depth", "8", "--max-masks-per-frame", "2", "--mask-decode-timeout", "0.01")
    assert status == 0
    codes = query(f"SELECT code, coalesce(frame_id, ''), count(*) FROM {table(out, 'issues')} WHERE severity = 'error' GROUP BY ALL ORDER BY ALL")
    assert ("json_too_deep", "", 1) in codes
    assert ("too_many_masks", "masks", 1) in codes
    assert ("mask_decode_timeout", "masks", 2) in codes  # two masks decoded (refused: over budget), the third not at all
    statuses = query(f"SELECT mask_id, status FROM {table(out, 'masks')} ORDER BY mask_id")
    assert statuses == [("m0", "mask_decode_timeout"), ("m1", "mask_decode_timeout"), ("m2", "too_many_masks")]  # no mask vanishes
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["max_masks_per_frame"] == 2 and summary["parameters"]["mask_decode_timeout"] == 0.01


# --- hostile PNG bytes through decode + statistics ---------------------------------------------------

SEED_PNGS = [png_bytes(32, 24), png_bytes(7, 5, colours=2)]
PER_EXAMPLE_S = 2.0  # generous on a noisy machine; a hang would take far longer


def _mutations():
    seed = st.sampled_from(SEED_PNGS)
    flips = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=8)
    truncated = st.tuples(seed, st.integers(0, 400)).map(lambda t: t[0][:t[1]])
    flipped = st.tuples(seed, flips).map(lambda t: _flip(*t))
    return truncated | flipped | st.binary(max_size=64).map(lambda b: b"\x89PNG\r\n\x1a\n" + b)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for where, xor in flips:
        out[where % len(out)] ^= xor
    return bytes(out)


@pytest.fixture(scope="module")
def kernel_loaded():
    """The mask kernel's machine code loads once per process (~1 s, from numba's cache): not per example."""
    analyse_mask(np.zeros((1, 1), dtype=np.uint32), [(0, 0, 0)], rle=True)


@given(_mutations())
@settings(max_examples=examples(300), deadline=PER_EXAMPLE_S * 1000, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_pngs_decode_or_fail_with_a_finding_code_never_hang_or_blow_up(kernel_loaded, data):
    started = time.monotonic()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        decoded = decode_mask_bytes(data, max_pixels=4096, deadline=DecodeDeadline(PER_EXAMPLE_S))
    except MaskDecodeError as e:
        assert e.code.startswith("mask_")
    else:
        assert decoded.packed.shape == (decoded.height, decoded.width) and decoded.width * decoded.height <= 4096
        colours = [(60, 0, 0), (0, 120, 0), (0, 0, 180)]
        analyse_mask(decoded.packed, colours, rle=True)
    try:  # the fused PNG path (what runs use): a finding too, or the reference decoder's pixels
        pixels, analysis = analyse_mask_bytes(data, [(60, 0, 0), (0, 120, 0)], rle=True, max_pixels=4096,
                                              deadline=DecodeDeadline(PER_EXAMPLE_S))
    except MaskDecodeError as e:
        assert e.code.startswith("mask_")
    else:
        assert analysis.labels.shape == (pixels.height, pixels.width) and pixels.width * pixels.height <= 4096
    assert time.monotonic() - started < PER_EXAMPLE_S
    # max_pixels=4096 caps what any mutation may allocate; peak RSS must not jump (64 MiB is far above 4096 px).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024


def test_the_seed_pngs_are_valid():
    """So the mutation test starts from decodable masks and would notice a decoder that refuses everything."""
    for data in SEED_PNGS:
        assert decode_mask_bytes(data).width in (32, 7)


def test_default_depth_is_documented_in_the_flag_help():
    from pipelines.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert f"default {DEFAULT_MAX_JSON_DEPTH}" in help_text and "--mask-decode-timeout" in help_text
    assert "--max-masks-per-frame" in help_text
    assert Path(__file__).resolve().parents[1].joinpath("docs/FINDINGS.md").read_text().count("too_many_masks") == 1
