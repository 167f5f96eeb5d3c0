"""Frames written by the clearml SDK's own serializer, through `framebeam run`: joins and statistics
equal a plain per-colour numpy computation on the same PNG masks."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import beside, query, run_cli, table

pytest.importorskip("clearml", reason="clearml (test extra) builds the frames: pip install -e '.[test]'")
from tests.sdk_frames import sdk_frames  # noqa: E402

pytestmark = pytest.mark.slow  # a whole run over SDK-built frames; tests/test_sdk_frames.py is the fast part


def reference_stats(path: str, rgb: tuple[int, int, int]) -> tuple:
    """Count, bbox (x1/y1 exclusive) and centroid of one colour, the obvious way."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    ys, xs = np.nonzero(np.all(pixels == np.array(rgb, dtype=np.uint8), axis=-1))
    if not len(xs):
        return (0, None, None, None, None, None, None)
    return (len(xs), int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, float(xs.mean()), float(ys.mean()))


@pytest.fixture(scope="module")
def sdk_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sdk")
    frames = sdk_frames(d / "masks")
    (d / "frames.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    out = beside(d)
    assert run_cli("run", "--input", str(d / "frames.jsonl"), "--output", str(out), "--quiet") in (0,)
    return frames, out


def test_sdk_rois_join_by_the_schema_rule(sdk_run):
    frames, out = sdk_run
    n_mask_rois = sum(1 for f in frames for r in f.get("rois", []) if "mask" in r)
    assert n_mask_rois > 0
    assert query(f"SELECT join_rule, count(*) FROM {table(out, 'rois')} WHERE mask_rgb IS NOT NULL GROUP BY 1") == [("schema", n_mask_rois)]
    assert query(f"SELECT count(*) FROM {table(out, 'issues')} WHERE severity = 'error'") == [(0,)]
    assert query(f"SELECT count(*) FROM {table(out, 'frames')}") == [(len(frames),)]


def test_sdk_label_stats_equal_numpy(sdk_run):
    frames, out = sdk_run
    expected = {}
    for f in frames:
        masks = {(s["id"], m["id"]): m["uri"] for s in f["sources"] for m in s.get("masks", [])}
        for r in f.get("rois", []):
            if "mask" in r:
                (source_id,) = r["sources"]
                uri = masks[(source_id, r["mask"]["id"])]
                expected[(f["id"], source_id, tuple(r["mask"]["value"]))] = reference_stats(uri, tuple(r["mask"]["value"]))
    rows = query(f"""SELECT frame_id, source_id, rgb, pixel_count, bbox_x0, bbox_y0, bbox_x1, bbox_y1, centroid_x, centroid_y
                     FROM {table(out, 'label_stats')}""")
    got = {(fid, sid, tuple(rgb)): tuple(rest) for fid, sid, rgb, *rest in rows}
    assert got.keys() == expected.keys()
    for key, ref in expected.items():
        assert got[key][:5] == ref[:5], key
        if ref[0]:
            assert got[key][5:] == pytest.approx(ref[5:]), key
