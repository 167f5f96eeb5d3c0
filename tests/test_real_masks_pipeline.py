"""Every real mask in ../shared/data/real-masks through `framebeam run`: label_stats equal a plain
per-colour numpy computation on Pillow's RGB view of the same file (the masks were drawn by other
people: palette PNGs, undeclared void, colours nobody drew)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import beside, query, run_cli, table

pytestmark = pytest.mark.slow  # every real mask through a whole run; tests/test_real_masks.py keeps a few masks in the fast loop

FOLDERS = ("camvid", "dubai_aerial", "voc")


def reference(path: Path, colours: dict[str, list[int]]) -> dict:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = {}
    for label, (r, g, b) in colours.items():
        ys, xs = np.nonzero(packed == (r << 16 | g << 8 | b))
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (None,) * 4
        out[(r, g, b)] = (len(xs), *bbox)
    return out


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from tests.conftest import shared_dir

    shared = shared_dir()
    if shared is None:
        pytest.skip("../shared is not beside the repo (set FRAMEBEAM_SHARED to run this test)")
    root = shared / "data" / "real-masks"
    d = tmp_path_factory.mktemp("real")
    frames, expected = [], {}
    for folder in FOLDERS:
        colours = json.loads((root / folder / "colors.json").read_text())
        for path in sorted((root / folder).glob("*.png")):
            fid = f"{folder}/{path.stem}"
            frames.append({"id": fid, "sources": [{"id": "img", "uri": "unused.jpg", "masks": [{"id": "00", "uri": str(path)}]}],
                           "rois": [{"label": [name], "sources": ["img"], "mask": {"id": "00", "value": rgb}} for name, rgb in colours.items()]})
            expected[fid] = reference(path, colours)
    (d / "frames.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    out = beside(d)
    assert run_cli("run", "--input", str(d / "frames.jsonl"), "--output", str(out), "--quiet", parallel=True) == 0
    return out, expected


def test_every_real_mask_equals_numpy(real_run):
    out, expected = real_run
    rows = query(f"SELECT frame_id, rgb, pixel_count, bbox_x0, bbox_y0, bbox_x1, bbox_y1 FROM {table(out, 'label_stats')}")
    got: dict = {}
    for fid, rgb, *rest in rows:
        got.setdefault(fid, {})[tuple(rgb)] = tuple(rest)
    assert got.keys() == expected.keys()
    assert len(expected) >= 170
    for fid in expected:
        assert got[fid] == expected[fid], fid


def test_real_masks_undeclared_pixels_are_counted(real_run):
    out, expected = real_run
    undeclared = dict(query(f"SELECT frame_id, undeclared_pixels FROM {table(out, 'masks')}"))
    for fid, per_colour in expected.items():
        w, h = Image.open(_path_of(fid)).size
        assert undeclared[fid] == w * h - sum(v[0] for v in per_colour.values()), fid
    assert any(v > 0 for k, v in undeclared.items() if k.startswith("dubai_aerial/"))  # the undeclared black


def _path_of(fid: str) -> Path:
    from tests.conftest import shared_dir

    folder, stem = fid.split("/")
    return shared_dir() / "data" / "real-masks" / folder / f"{stem}.png"
