"""`framebeam run`/`validate` with shape columns: label_stats, label_summary, mask_speckle (info) and
mask_outside_roi, read back with DuckDB."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import query, run_cli, table
from tests.test_masks_pipeline import BLUE, GREEN, RED, png_bytes, write_frames

BOX = [10, 5, 30, 5, 30, 20, 10, 20]  # the red rectangle's edges: its pixel centres are inside


def shaped_mask() -> np.ndarray:
    m = np.zeros((48, 64, 3), np.uint8)
    m[5:20, 10:30] = RED
    m[10:13, 15:18] = 0           # a 3x3 hole in it
    m[40, 2] = RED                # a 1-pixel speck
    m[44, 50:52] = RED            # a 2-pixel speck: the largest
    m[25:40, 3:60] = GREEN
    return m


def shaped_frame(fid: str, red_poly=BOX) -> dict:
    rois = [
        {"label": ["car"], "sources": ["cam"], "mask": {"id": "00", "value": list(RED)}, "poly": red_poly},
        {"label": ["road"], "sources": ["cam"], "mask": {"id": "00", "value": list(GREEN)}},
        {"label": ["sky"], "sources": ["cam"], "mask": {"id": "00", "value": list(BLUE)}, "poly": [0, 0, 5, 0, 5, 5]},
    ]
    return {"id": fid, "sources": [{"id": "cam", "uri": "img.png", "width": 64, "height": 48,
                                    "masks": [{"id": "00", "uri": "m.png"}]}], "rois": rois}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    (d / "m.png").write_bytes(png_bytes(shaped_mask()))
    write_frames(d / "f.jsonl", [shaped_frame("a"), shaped_frame("b", red_poly=None)])
    return d


def label_stats(out) -> dict:
    rows = query(f"SELECT frame_id, labels[1], components, holes, largest_component_pixels, smallest_component_pixels, "
                 f"pixels_outside_roi, pixel_count FROM {table(out, 'label_stats')}")
    return {(fid, label): tuple(rest) for fid, label, *rest in rows}


@pytest.mark.slow
def test_shape_columns_findings_and_summary(inputs, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", "--input", str(inputs / "f.jsonl"), "--output", str(out), "--quiet") == 0
    stats = label_stats(out)
    red_pixels = 15 * 20 - 9 + 3
    assert stats[("a", "car")] == (3, 1, 291, 1, 3, red_pixels)
    assert stats[("b", "car")] == (3, 1, 291, 1, None, red_pixels)  # no poly: nothing to be outside of
    assert stats[("a", "road")] == (1, 0, 15 * 57, 15 * 57, None, 15 * 57)
    assert stats[("a", "sky")] == (None, None, None, None, 0, 0)  # absent: no shape; nothing outside its poly

    issues = query(f"SELECT frame_id, severity, code, path, message FROM {table(out, 'issues')} "
                   "WHERE code IN ('mask_speckle', 'mask_outside_roi') ORDER BY frame_id, code")
    assert [(f, s, c, p) for f, s, c, p, _ in issues] == [
        ("a", "warning", "mask_outside_roi", "/rois/0/poly"),
        ("a", "info", "mask_speckle", "/sources/0/masks/0"),
        ("b", "info", "mask_speckle", "/sources/0/masks/0"),
    ]
    speckle = issues[1][4]
    assert "car" in speckle and "2 speck(s)" in speckle and "x 50..51, y 44..44" in speckle and "2 pixel(s)" in speckle
    assert "3 of the 294 pixels" in issues[0][4]

    # info findings are neither errors nor warnings of the frame
    frames = dict(query(f"SELECT frame_id, n_warnings FROM {table(out, 'frames')}"))
    warnings = dict(query(f"SELECT frame_id, count(*) FROM {table(out, 'issues')} WHERE severity = 'warning' GROUP BY 1"))
    assert frames == {fid: warnings.get(fid, 0) for fid in frames}

    summary = json.loads((out / "summary.json").read_text())
    assert summary["findings"]["info"] == 2
    assert summary["findings_by_code"]["mask_speckle"] == {"severity": "info", "count": 2}

    rows = query(f"SELECT labels[1], components_mean, components_p95, holes_mean, holes_p95 FROM {table(out, 'label_summary')}")
    by_label = {label: tuple(rest) for label, *rest in rows}
    assert by_label["car"] == (3.0, 3, 1.0, 1)
    assert by_label["road"] == (1.0, 1, 0.0, 0)
    assert by_label["sky"] == (None, None, None, None)

    # the report: an info tile, and the fragments section with the worst (mask, label) drawn
    html = (out / "report.html").read_text()
    assert re.search(r'<div class="tile info"><div class="num">2</div>', html)
    section = html[html.index('<section id="shapes">'):]
    section = section[:section.index("</section>")]
    assert "Most fragmented" in section and "car" in section and "3 components, 1 hole(s)" in section
    png = base64.b64decode(re.search(r'class="crop"[^>]*src="data:image/png;base64,([^"]+)"', section).group(1))
    crop = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    expected = np.all(shaped_mask()[5:45, 2:52] == RED, axis=-1)  # the car's bbox: x 2..51, y 5..44
    assert np.array_equal(np.all(crop == RED, axis=-1), expected)


@pytest.mark.slow
def test_info_never_fails_validate(inputs, tmp_path):
    out = tmp_path / "out"
    args = ["--input", str(inputs / "f.jsonl"), "--output", str(out), "--quiet"]
    assert run_cli("validate", *args, "--max-outside-roi", "0.5") == 0  # only info findings left: mask_speckle
    summary = json.loads((out / "summary.json").read_text())
    assert summary["findings"]["info"] == 2 and summary["findings"]["warning"] > 0  # mask_colour_absent (sky)
    warnings = summary["findings"]["warning"]
    assert run_cli("validate", *args, "--max-outside-roi", "0.5", "--fail-on", "warning", "--max-errors", str(warnings)) == 0
    assert run_cli("validate", *args, "--max-outside-roi", "0.5", "--fail-on", "warning", "--max-errors", str(warnings - 1)) == 1


@pytest.mark.slow
def test_no_shape_stats_and_thresholds(inputs, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", "--input", str(inputs / "f.jsonl"), "--output", str(out), "--quiet", "--no-shape-stats",
                   "--max-outside-roi", "0.02", parallel=True) == 0  # worker processes: polys travel pickled
    stats = label_stats(out)
    assert stats[("a", "car")] == (None, None, None, None, 3, 294)
    assert "No shape columns in this output" in (out / "report.html").read_text()
    codes = {c for (c,) in query(f"SELECT code FROM {table(out, 'issues')}")}
    assert "mask_speckle" not in codes and "mask_outside_roi" not in codes  # 3/294 = 1.0% < 2%
    out2 = tmp_path / "out2"
    assert run_cli("run", "--input", str(inputs / "f.jsonl"), "--output", str(out2), "--quiet", "--min-component-pixels", "1") == 0
    codes = {c for (c,) in query(f"SELECT code FROM {table(out2, 'issues')}")}
    assert "mask_speckle" not in codes  # no component is smaller than 1 pixel
