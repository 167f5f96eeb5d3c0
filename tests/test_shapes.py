"""transforms.shapes against independent references: scipy.ndimage.label for components and holes,
a per-pixel even-odd crossing test for pixels outside polygons, a naive lookup for label images."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from tests.conftest import examples
from transforms.shapes import label_image_from_packed, label_runs, parse_poly, pixels_outside, shape_stats
from transforms.statistics import nearest_colour, pack_rgb

EIGHT = np.ones((3, 3), dtype=bool)


def scipy_shapes(labels: np.ndarray, n: int, min_pixels: int = 4) -> list[tuple]:
    """(components, holes, largest, smallest, specks, largest speck) per label, the plain way."""
    out = []
    for label in range(n):
        mask = labels == label
        if not mask.any():
            out.append((0, 0, 0, 0, 0, 0))
            continue
        regions, components = ndimage.label(mask, structure=EIGHT)
        sizes = np.bincount(regions.ravel())[1:]
        background, n_background = ndimage.label(~mask)  # default structure: 4-connected
        border = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
        touching = set(np.unique(border).tolist()) - {0}
        specks = sizes[sizes < min_pixels]
        out.append((components, n_background - len(touching), int(sizes.max()), int(sizes.min()),
                    int(specks.size), int(specks.max()) if specks.size else 0))
    return out


def ours(labels: np.ndarray, n: int, min_pixels: int = 4) -> list[tuple]:
    s = shape_stats(labels, n, min_pixels)
    return [tuple(int(v) for v in row) for row in zip(s.components, s.holes, s.largest, s.smallest, s.specks, s.speck_pixels)]


def with_undeclared(values: np.ndarray, n: int) -> np.ndarray:
    """Values equal to n become the dtype's max: the contract's undeclared colour."""
    out = values.copy()
    out[values == n] = np.iinfo(values.dtype).max
    return out


@st.composite
def label_images(draw, max_side: int = 40):
    n = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    style = draw(st.sampled_from(["noise", "blocks"]))
    if style == "noise":
        values = draw(arrays(dtype, (h, w), elements=st.integers(0, n)))
    else:  # few big rectangles over a background: rings, enclosed islands, border-touching regions
        values = np.full((h, w), draw(st.integers(0, n)), dtype=dtype)
        for _ in range(draw(st.integers(1, 8))):
            y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            y1, x1 = draw(st.integers(y0 + 1, h)), draw(st.integers(x0 + 1, w))
            values[y0:y1, x0:x1] = draw(st.integers(0, n))
    return with_undeclared(values, n), n


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_images(), st.integers(1, 6))
def test_components_holes_sizes_and_specks_equal_scipy(case, min_pixels):
    labels, n = case
    assert ours(labels, n, min_pixels) == scipy_shapes(labels, n, min_pixels)


def test_large_random_masks_equal_scipy():
    """Bigger images than hypothesis draws: many runs, long chains of unions, uint16 with 300 labels."""
    rng = np.random.default_rng(5)
    blobs = ndimage.zoom(rng.integers(0, 5, (30, 40)), 8, order=0)[:233, :301].astype(np.uint8)
    blobs[rng.random(blobs.shape) < 0.01] = 4  # specks, and undeclared (4 -> 255 below) pixels
    assert ours(with_undeclared(blobs, 4), 4) == scipy_shapes(with_undeclared(blobs, 4), 4)
    many = rng.integers(0, 301, (120, 150)).astype(np.uint16)
    many = ndimage.zoom(many, 2, order=0)
    labels = with_undeclared(many, 300)
    assert ours(labels, 300) == scipy_shapes(labels, 300)


def test_worked_examples():
    ring = np.zeros((7, 7), np.uint8)  # label 1: a ring inside a frame of 0, around 0s around one 2
    ring[1:6, 1:6] = 1
    ring[2:5, 2:5] = 0
    ring[3, 3] = 2
    s = shape_stats(ring, 3)
    # 0: the frame and the inner square (2 components), enclosing the ring and the 2 (2 holes);
    # 1: one ring with one hole (the inner 0s and the 2 together); 2: one pixel.
    assert (s.components.tolist(), s.holes.tolist()) == ([2, 1, 1], [2, 1, 0])

    diagonal = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.uint8)  # 8-connected: one component, no hole
    assert ours(diagonal, 2)[1][:2] == (1, 0)
    # a hole whose two halves touch only diagonally: two 4-connected holes
    two_holes = np.array([
        [1, 1, 1, 1],
        [1, 0, 1, 1],
        [1, 1, 0, 1],
        [1, 1, 1, 1],
    ], np.uint8)
    assert ours(two_holes, 2)[1][:2] == (1, 2)
    # the complement touching the border is no hole, even when it is enclosed on three sides
    open_cup = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 1]], np.uint8)
    assert ours(open_cup, 2)[1][:2] == (1, 0)
    # undeclared pixels are "not the label" like any other: they can be a hole
    undeclared_hole = np.full((3, 3), 0, np.uint8)
    undeclared_hole[1, 1] = 255
    assert ours(undeclared_hole, 1)[0][:2] == (1, 1)


def test_speck_location_is_the_largest_speck():
    labels = np.zeros((20, 30), np.uint8)
    labels[2, 3] = 1                # a 1-pixel speck
    labels[10:12, 20:22] = 1        # 4 pixels: not a speck at --min-component-pixels 4
    labels[15, 5:8] = 1             # a 3-pixel speck: the largest
    labels[0:5, 25:30] = 1          # a big component
    s = shape_stats(labels, 2, 4)
    assert (s.components[1], s.specks[1], s.speck_pixels[1]) == (4, 2, 3)
    assert s.speck_bbox[1].tolist() == [5, 15, 8, 16]
    assert (s.largest[1], s.smallest[1]) == (25, 1)


def test_absent_labels_and_empty_images():
    assert ours(np.full((4, 5), 255, np.uint8), 3) == [(0, 0, 0, 0, 0, 0)] * 3
    assert ours(np.zeros((0, 5), np.uint8), 2) == [(0, 0, 0, 0, 0, 0)] * 2
    with pytest.raises(ValueError):
        shape_stats(np.zeros((3, 3), np.int32), 2)


def test_cost_does_not_depend_on_the_declared_table():
    """Same image, same result whether 3 or 250 colours are declared (the extra ones absent)."""
    rng = np.random.default_rng(2)
    labels = ndimage.zoom(rng.integers(0, 3, (20, 20)), 6, order=0).astype(np.uint8)
    small = ours(labels, 3)
    big = ours(labels, 250)
    assert big[:3] == small and all(row == (0,) * 6 for row in big[3:])


# --- pixels outside polygons -------------------------------------------------------------------------

def reference_inside(height: int, width: int, polys: list[list[float]]) -> np.ndarray:
    """Pixel centres inside any poly; within a poly, the classic crossing test over every part's edges."""
    yc, xc = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    union = np.zeros((height, width), dtype=bool)
    for poly in polys:
        inside = np.zeros((height, width), dtype=bool)
        for points in parse_poly(poly):
            for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
                crosses = (y1 > yc) != (y2 > yc)
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    x_at = x1 + (yc - y1) * (x2 - x1) / (y2 - y1)
                inside ^= crosses & (xc < x_at)
        union |= inside
    return union


def outside_ours(labels: np.ndarray, n: int, label: int, polys) -> int | None:
    mask = labels == label
    ys, xs = np.nonzero(mask)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if ys.size else None
    return pixels_outside(label_runs(labels, n), label, int(mask.sum()), bbox, polys, labels.shape[1])


coordinate = st.one_of(st.integers(-5, 45), st.floats(-5, 45, allow_nan=False).map(lambda v: round(v * 4) / 4),
                       st.floats(-5, 45, allow_nan=False))
ring = st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=9)


@st.composite
def polys(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        flat: list[float] = []
        for k, points in enumerate(draw(st.lists(ring, min_size=1, max_size=3))):
            if k:
                flat += draw(st.sampled_from([[-999999999], [-999999999, -999999999]]))
            flat += [float(v) for p in points for v in p]
        if sum(1 for v in flat if v == -999999999) % 2:  # keep pairs: a lone separator makes an odd part here
            flat += [-999999999]
        out.append(flat)
    return out


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_images(max_side=40), polys())
def test_pixels_outside_equal_a_per_pixel_reference(case, poly_list):
    labels, n = case
    if any(parse_poly(p) is None for p in poly_list):
        return
    inside = reference_inside(*labels.shape, poly_list)
    for label in range(n):
        expected = int(((labels == label) & ~inside).sum())
        assert outside_ours(labels, n, label, poly_list) == expected


def test_box_poly_and_pixel_centres():
    labels = np.full((10, 10), 1, np.uint8)
    labels[2:6, 3:8] = 0  # 20 pixels: x 3..7, y 2..5
    box = [3, 2, 8, 2, 8, 6, 3, 6]  # a 4-point box on pixel edges: exactly those pixels' centres
    assert outside_ours(labels, 2, 0, [box]) == 0
    # a box through pixel centres: a centre on the left/top edge is inside, on the right/bottom edge outside
    half = [3.5, 2.5, 7.5, 2.5, 7.5, 5.5, 3.5, 5.5]
    assert outside_ours(labels, 2, 0, [half]) == 20 - 4 * 3
    # two ROIs of one class: inside either one
    left, right = [3, 2, 5, 2, 5, 6, 3, 6], [5, 2, 8, 2, 8, 6, 5, 6]
    assert outside_ours(labels, 2, 0, [left]) == 12
    assert outside_ours(labels, 2, 0, [left, right]) == 0
    # one poly of two parts: the same pixels, separated by -999999999
    assert outside_ours(labels, 2, 0, [left + [-999999999] + right]) == 0
    # a part inside another is a hole (even-odd)
    donut = [0, 0, 10, 0, 10, 10, 0, 10, -999999999, -999999999, 3, 2, 8, 2, 8, 6, 3, 6]
    assert outside_ours(labels, 2, 0, [donut]) == 20
    assert outside_ours(labels, 2, 1, [donut]) == 0


def test_unusable_polys():
    assert parse_poly(None) is None and parse_poly([]) is None
    assert parse_poly([0, 0, 1, 0, 1]) is None  # odd
    assert parse_poly([0, 0, 1, 0, float("nan"), 1]) is None
    assert parse_poly([0, 0, 1, 1]) == []  # a line encloses nothing: every pixel is outside
    labels = np.zeros((4, 4), np.uint8)
    assert outside_ours(labels, 1, 0, [[0, 0, 1, 1]]) == 16
    assert outside_ours(labels, 1, 0, [[0, 0, 1, 0, 1]]) is None


# --- the stand-in label image --------------------------------------------------------------------------

@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=0, max_size=6, unique=True),
       arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3)), elements=st.integers(0, 4)),
       st.integers(0, 2))
def test_label_image_from_packed_equals_a_naive_lookup(colours, rgb, tolerance):
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    codes = [pack_rgb(c) for c in colours]
    got = label_image_from_packed(packed, codes, tolerance)
    assert got.dtype == np.uint8
    expected = np.full(packed.shape, 255, np.uint8)
    for y in range(packed.shape[0]):
        for x in range(packed.shape[1]):
            if int(packed[y, x]) in codes:
                expected[y, x] = codes.index(int(packed[y, x]))
            elif tolerance and codes:
                nearest = int(nearest_colour(packed[y:y + 1, x], codes, tolerance)[0])
                if nearest >= 0:
                    expected[y, x] = nearest
    assert np.array_equal(got, expected)


def test_label_image_is_uint16_from_255_colours():
    codes = list(range(300))
    packed = np.array([[0, 299, 1000]], np.uint32)
    assert label_image_from_packed(packed, codes).tolist() == [[0, 299, 65535]]
    assert label_image_from_packed(packed, codes[:254]).dtype == np.uint8
    assert label_image_from_packed(packed, codes[:255]).dtype == np.uint16
