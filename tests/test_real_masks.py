"""decode_mask_bytes + analyse_mask on real masks drawn by other people, against a plain reference.

The reference is deliberately naive and independent: Pillow's convert("RGB"), np.nonzero per colour,
np.unique over every undeclared pixel. Masks live in ../shared/data/real-masks (not in the repo:
their licences do not allow copying); the tests skip when that folder is absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transforms.decoding import decode_mask_bytes
from transforms.statistics import analyse_mask

SHARED = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REAL_MASKS = SHARED / "data" / "real-masks"
# Every dubai and voc mask; every 4th CamVid mask (25 of 100, all the same kind) keeps the run short.
CAMVID_STEP = 4

# (folder, colour table)
TABLES = [
    ("camvid", "colors.json"),
    ("dubai_aerial", "colors.json"),
    ("dubai_aerial", "colors_classes_json.json"),  # the dataset's own, wrong table
    ("voc", "colors.json"),
    ("voc", "colors_with_void.json"),
]


def mask_files(folder: str) -> list[Path]:
    files = sorted((REAL_MASKS / folder).glob("*.png"))
    return files[::CAMVID_STEP] if folder == "camvid" else files


def cases() -> list:
    if not REAL_MASKS.is_dir():
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=f"{REAL_MASKS} is absent (set FRAMEBEAM_SHARED)"))]
    # The fast loop (-m "not slow") checks the first two masks of each folder and table.
    return [
        pytest.param(folder, table, path, id=f"{folder}/{table}/{path.name}", marks=() if i < 2 else pytest.mark.slow)
        for folder, table in TABLES
        for i, path in enumerate(mask_files(folder))
    ]


def load_colours(folder: str, table: str) -> list[tuple[int, int, int]]:
    return [tuple(rgb) for rgb in json.loads((REAL_MASKS / folder / table).read_text()).values()]


def reference_statistics(path: Path, colours):
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int32)
    # One integer per colour, by plain arithmetic on Pillow's RGB (np.all over the channel axis
    # and np.unique(axis=0) are the obvious forms, but take ~0.5 s and ~15 s on the big masks).
    key = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
    declared = np.zeros(key.shape, dtype=bool)
    per_colour = []
    for r, g, b in colours:
        hit = key == r * 65536 + g * 256 + b
        declared |= hit
        ys, xs = np.nonzero(hit)
        if ys.size == 0:
            per_colour.append((0, None, None))
        else:
            bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            per_colour.append((int(ys.size), bbox, (xs.mean(), ys.mean())))
    keys = np.unique(key[~declared])
    undeclared_colours = {(int(k) // 65536, int(k) // 256 % 256, int(k) % 256) for k in keys}
    return per_colour, int((~declared).sum()), undeclared_colours


@pytest.mark.parametrize("folder, table, path", cases())
def test_real_mask_statistics_match_reference(folder, table, path):
    colours = load_colours(folder, table)
    decoded = decode_mask_bytes(path.read_bytes())
    stats = analyse_mask(decoded.packed, colours).stats
    per_colour, undeclared_pixels, undeclared_colours = reference_statistics(path, colours)

    for got, (count, bbox, centroid) in zip(stats.colours, per_colour):
        assert (got.pixel_count, got.bbox) == (count, bbox), got.rgb
        if centroid is None:
            assert got.centroid is None
        else:
            assert got.centroid == pytest.approx(centroid, rel=1e-12, abs=1e-9)
    assert stats.undeclared_pixels == undeclared_pixels
    assert stats.n_undeclared_colours == len(undeclared_colours)
    assert {rgb for rgb, _ in stats.top_undeclared} <= undeclared_colours


def test_the_quirks_the_folder_promises_are_covered():
    """Guards the sample: palette masks, dubai's undeclared black and VOC's void must stay in it."""
    if not REAL_MASKS.is_dir():
        pytest.skip(f"{REAL_MASKS} is absent (set FRAMEBEAM_SHARED)")
    modes = {Image.open(p).mode for folder in ("dubai_aerial", "voc") for p in mask_files(folder)}
    assert "P" in modes

    dubai = load_colours("dubai_aerial", "colors.json")
    black_seen = any(
        ((0, 0, 0) in {rgb for rgb, _ in analyse_mask(decode_mask_bytes(p.read_bytes()).packed, dubai).stats.top_undeclared})
        for p in mask_files("dubai_aerial")
    )
    assert black_seen, "dubai_aerial should show undeclared black (0, 0, 0)"

    void = (224, 224, 192)
    voc_plain, voc_void = load_colours("voc", "colors.json"), load_colours("voc", "colors_with_void.json")
    void_total = 0
    for path in mask_files("voc"):
        packed = decode_mask_bytes(path.read_bytes()).packed
        plain, with_void = analyse_mask(packed, voc_plain).stats, analyse_mask(packed, voc_void).stats
        void_pixels = dict(plain.top_undeclared).get(void, 0)
        # Declaring void moves exactly its pixels from undeclared to the void colour.
        assert with_void.colours[-1].rgb == void and with_void.colours[-1].pixel_count == void_pixels
        assert with_void.undeclared_pixels == plain.undeclared_pixels - void_pixels
        void_total += void_pixels
    assert void_total > 0, "VOC masks should contain void (224, 224, 192) pixels"
