"""analyse_mask / crop_rle / crop_png on small arrays with answers worked out by hand."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from transforms.statistics import (
    ColourStats,
    analyse_mask,
    crop_png,
    crop_rle,
    nearest_colour,
    pack_rgb,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def paint(rows: list[str], legend: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """A packed mask from a picture: one character per pixel."""
    return np.array([[pack_rgb(legend[ch]) for ch in row] for row in rows], dtype=np.uint32)


LEGEND = {".": (0, 0, 0), "r": RED, "g": GREEN, "b": BLUE, "w": WHITE, "x": (9, 9, 9)}
PICTURE = paint(
    [
        "......",
        ".rr...",
        ".r..gg",
        "....gg",
        "w..x..",
    ],
    LEGEND,
)


def test_count_bbox_centroid_by_hand():
    stats = analyse_mask(PICTURE, [RED, GREEN]).stats
    red, green = stats.colours
    # red pixels: (x=1,y=1) (2,1) (1,2) -> bbox x 1..3 exclusive, y 1..3 exclusive
    assert red == ColourStats(RED, 3, (1, 1, 3, 3), ((1 + 2 + 1) / 3, (1 + 1 + 2) / 3), 0)
    assert green == ColourStats(GREEN, 4, (4, 2, 6, 4), (4.5, 2.5), 0)


def test_absent_colour_has_no_bbox_or_centroid():
    blue = analyse_mask(PICTURE, [BLUE]).stats.colours[0]
    assert blue == ColourStats(BLUE, 0, None, None, 0)


def test_undeclared_pixels_and_top_colours():
    stats = analyse_mask(PICTURE, [RED, GREEN]).stats
    # 30 pixels - 3 red - 4 green = 23: 21 black, 1 white, 1 (9,9,9)
    assert stats.undeclared_pixels == 23
    assert stats.n_undeclared_colours == 3
    assert stats.top_undeclared == [((0, 0, 0), 21), ((9, 9, 9), 1), (WHITE, 1)]  # tie: by rgb


def test_top_undeclared_keeps_five():
    values = np.arange(8, dtype=np.uint32).repeat(np.arange(1, 9))  # value v occurs v+1 times
    stats = analyse_mask(values.reshape(4, 9), []).stats
    assert stats.n_undeclared_colours == 8
    assert [count for _, count in stats.top_undeclared] == [8, 7, 6, 5, 4]
    assert stats.top_undeclared[0][0] == (0, 0, 7)


def test_everything_declared_means_nothing_undeclared():
    stats = analyse_mask(PICTURE, list(LEGEND.values())).stats
    assert (stats.undeclared_pixels, stats.n_undeclared_colours, stats.top_undeclared) == (0, 0, [])
    assert sum(c.pixel_count for c in stats.colours) == PICTURE.size


def test_single_pixel_at_the_far_corner_has_exclusive_end():
    mask = np.zeros((3, 4), dtype=np.uint32)
    mask[2, 3] = pack_rgb(RED)
    red = analyse_mask(mask, [RED]).stats.colours[0]
    assert red.bbox == (3, 2, 4, 3)
    assert red.centroid == (3.0, 2.0)


# ---------------------------------------------------------------- tolerance


def test_tolerance_zero_is_exact():
    mask = paint(["rg"], {"r": (250, 3, 0), "g": GREEN})
    stats = analyse_mask(mask, [RED, GREEN]).stats
    assert [c.pixel_count for c in stats.colours] == [0, 1]
    assert stats.undeclared_pixels == 1


def test_tolerance_assigns_within_chebyshev_distance():
    # (250, 3, 0) is 5 from red in its largest channel; (240, 0, 0) is 15 away.
    mask = paint(["abr"], {"a": (250, 3, 0), "b": (240, 0, 0), "r": RED})
    stats = analyse_mask(mask, [RED, GREEN], tolerance=5).stats
    red = stats.colours[0]
    assert (red.pixel_count, red.tolerance_pixels) == (2, 1)
    assert red.bbox == (0, 0, 3, 1) and red.centroid == (1.0, 0.0)
    assert stats.undeclared_pixels == 1 and stats.top_undeclared == [((240, 0, 0), 1)]


def test_tolerance_nearest_colour_wins():
    # (100, 100, 100) is 10 from A=(110,100,100) and 4 from B=(100,104,100): B is nearer although A is first.
    a, b = (110, 100, 100), (100, 104, 100)
    mask = paint(["p"], {"p": (100, 100, 100)})
    stats = analyse_mask(mask, [a, b], tolerance=20).stats
    assert [c.pixel_count for c in stats.colours] == [0, 1]


def test_tolerance_ties_go_to_the_first_declared():
    a, b = (110, 100, 100), (100, 90, 100)  # both exactly 10 from the pixel
    mask = paint(["p"], {"p": (100, 100, 100)})
    assert [c.pixel_count for c in analyse_mask(mask, [a, b], tolerance=10).stats.colours] == [1, 0]
    assert [c.pixel_count for c in analyse_mask(mask, [b, a], tolerance=10).stats.colours] == [1, 0]


def test_exact_match_wins_over_an_earlier_colour_within_tolerance():
    near, exact = (100, 100, 101), (100, 100, 100)
    mask = paint(["p"], {"p": exact})
    stats = analyse_mask(mask, [near, exact], tolerance=10).stats
    assert [(c.pixel_count, c.tolerance_pixels) for c in stats.colours] == [(0, 0), (1, 0)]


def test_nearest_colour_returns_minus_one_beyond_tolerance():
    codes = [pack_rgb(RED), pack_rgb(GREEN)]
    values = np.array([pack_rgb((250, 0, 0)), pack_rgb((0, 200, 0)), pack_rgb((0, 0, 0))], dtype=np.uint32)
    assert nearest_colour(values, codes, 10).tolist() == [0, -1, -1]


# ---------------------------------------------------------------- crops


def coco_reference(binary: np.ndarray) -> str:
    return coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))["counts"].decode()


def random_blob_mask(seed: int, height: int = 37, width: int = 53) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Rectangles of a few colours plus a little noise in near and far colours."""
    rng = np.random.default_rng(seed)
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (90, 90, 90)]
    mask = np.zeros((height, width), dtype=np.uint32)
    for colour in colours[:3]:
        y, x = rng.integers(0, height - 5), rng.integers(0, width - 5)
        mask[y : y + rng.integers(3, 20), x : x + rng.integers(3, 25)] = pack_rgb(colour)
    noise = rng.random((height, width)) < 0.05
    mask[noise] = [pack_rgb(tuple(int(v) for v in rng.integers(0, 256, 3))) for _ in range(int(noise.sum()))]
    near = rng.random((height, width)) < 0.05
    mask[near] = pack_rgb((203, 8, 12))  # within 3 of the first colour
    return mask, colours


def unpacked(mask: np.ndarray) -> np.ndarray:
    return np.stack([(mask >> s) & 0xFF for s in (16, 8, 0)], axis=-1).astype(int)


def reference_assignment(mask: np.ndarray, colours, tolerance: int) -> np.ndarray:
    """Brute force: Chebyshev distance to every colour, argmin (first on ties), -1 beyond tolerance."""
    pixels = unpacked(mask)
    distances = np.stack([np.abs(pixels - np.array(c)).max(axis=-1) for c in colours], axis=-1)
    nearest = distances.argmin(axis=-1)
    return np.where(distances.min(axis=-1) <= tolerance, nearest, -1)


@pytest.mark.parametrize("tolerance", [0, 3, 40])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stats_and_crops_match_a_brute_force_reference(seed, tolerance):
    mask, colours = random_blob_mask(seed)
    assignment = reference_assignment(mask, colours, tolerance)
    analysis = analyse_mask(mask, colours, tolerance, rle=True, png=True)
    for index, (colour, stats) in enumerate(zip(colours, analysis.stats.colours)):
        ys, xs = np.nonzero(assignment == index)
        assert stats.pixel_count == ys.size
        if ys.size == 0:
            assert stats.bbox is None and analysis.crops_rle[index] is None and analysis.crops_png[index] is None
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        assert stats.bbox == (x0, y0, x1, y1)
        assert stats.centroid == pytest.approx((xs.mean(), ys.mean()), rel=1e-12)
        exact = int((mask == pack_rgb(colour)).sum())
        assert stats.tolerance_pixels == stats.pixel_count - exact
        binary = assignment[y0:y1, x0:x1] == index
        assert analysis.crops_rle[index] == coco_reference(binary)
        assert crop_rle(mask, colour, stats.bbox, tolerance, colours) == coco_reference(binary)
        read_back = np.asarray(Image.open(io.BytesIO(analysis.crops_png[index])))
        np.testing.assert_array_equal(read_back, binary)
        assert crop_png(mask, colour, stats.bbox, tolerance, colours) == analysis.crops_png[index]
    left = assignment == -1
    assert analysis.stats.undeclared_pixels == int(left.sum())
    assert analysis.stats.n_undeclared_colours == np.unique(mask[left]).size


def test_crop_png_is_a_valid_1_bit_png_pillow_reads_back():
    binary = np.random.default_rng(5).random((13, 21)) < 0.4  # width 21: rows end mid-byte
    mask = np.where(binary, pack_rgb(RED), 0).astype(np.uint32)
    data = crop_png(mask, RED, (0, 0, 21, 13))
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.mode == "1" and image.size == (21, 13)
    np.testing.assert_array_equal(np.asarray(image), binary)


def test_crop_rle_without_colours_is_exact_and_refuses_tolerance():
    assert crop_rle(PICTURE, RED, (1, 1, 3, 3)) == coco_reference(np.array([[1, 1], [1, 0]]))
    with pytest.raises(ValueError, match="colours="):
        crop_rle(PICTURE, RED, (1, 1, 3, 3), tolerance=5)


def test_bad_inputs_say_how_to_fix_them():
    with pytest.raises(ValueError, match="de-duplicate"):
        analyse_mask(PICTURE, [RED, RED]).stats
    with pytest.raises(ValueError, match="uint32"):
        analyse_mask(PICTURE.astype(np.int64), [RED]).stats
    with pytest.raises(ValueError, match="0..255"):
        analyse_mask(PICTURE, [(256, 0, 0)]).stats
    with pytest.raises(ValueError, match="inside"):
        crop_rle(PICTURE, RED, (0, 0, 7, 1))
