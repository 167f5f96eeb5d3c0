"""Shape columns on real masks drawn by other people, exactly equal to scipy.ndimage.label.

Every (mask, declared colour) of ../shared/data/real-masks with each folder's table: components
(8-connected), holes (4-connected complement regions not touching the border), largest and smallest
component, specks. The fast run checks a few masks of each folder; the slow one checks them all.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_dir
from tests.test_shapes import ours, scipy_shapes
from transforms.decoding import decode_mask_bytes
from transforms.shapes import label_image_from_packed
from transforms.statistics import pack_rgb

SHARED = shared_dir()
REAL_MASKS = SHARED / "data" / "real-masks" if SHARED else None
TABLES = [("camvid", "colors.json"), ("dubai_aerial", "colors.json"), ("voc", "colors_with_void.json")]
FAST_PER_FOLDER = 2


def masks(every: bool) -> list:
    if REAL_MASKS is None or not REAL_MASKS.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="../shared/data/real-masks is absent (set FRAMEBEAM_SHARED)"))]
    out = []
    for folder, colours in TABLES:
        files = sorted((REAL_MASKS / folder).glob("*.png"))
        for path in files if every else files[:: max(1, len(files) // FAST_PER_FOLDER)][:FAST_PER_FOLDER]:
            out.append(pytest.param(path, REAL_MASKS / folder / colours, id=f"{folder}/{path.name}"))
    return out


def check(path: Path, table: Path) -> int:
    colours = [tuple(rgb) for rgb in json.loads(table.read_text()).values()]
    labels = label_image_from_packed(decode_mask_bytes(path.read_bytes()).packed, [pack_rgb(c) for c in colours])
    assert ours(labels, len(colours)) == scipy_shapes(labels, len(colours))
    return len(colours)


@pytest.mark.parametrize("path, table", masks(every=False))
def test_real_mask_shapes_equal_scipy(path, table):
    check(path, table)


@pytest.mark.slow
@pytest.mark.parametrize("path, table", masks(every=True))
def test_every_real_mask_shapes_equal_scipy(path, table):
    check(path, table)
