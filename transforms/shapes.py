"""Shape quality per label, from a label image: components, holes, component sizes, specks, and the
pixels of a label that lie outside its ROI's polygon.

The input is the label image of the mask kernel: a 2-D uint8 or uint16 array where a value ``i < n``
is declared colour ``i`` and any value ``>= n`` (the dtype's maximum: a colour nobody declared) is no
label. Every label is measured in the same few passes, so the cost does not grow with the number of
declared colours:

- **Components** (8-connected) come from runs: one scan of the rows cuts each row into runs of equal
  value, and each run is united (union-find) with the runs of the same label in the row above that
  touch it, diagonals included (a previous-row run ``[a, b)`` touches ``[s, e)`` when ``a <= e`` and
  ``b >= s``). Run lengths summed per root give component sizes and bounding boxes.
- **Holes** are the 4-connected regions of pixels *not* of label L that L encloses (they do not touch
  the image border). Counting them per label by labelling each complement would cost classes x
  pixels. Instead one pass over every 2x2 window of the image, padded by a frame of "no label",
  computes each label's Euler number with Gray's bit-quad counts: for the label's pattern in a window,
  ``Q1`` = one pixel of the window is L, ``Q3`` = three are, ``QD`` = two on a diagonal; with
  8-connected foreground (and so 4-connected background) ``E = (Q1 - Q3 - 2 QD) / 4`` and
  ``E = components - holes``. The padding joins every border-touching complement region to the one
  outer background, so ``holes = components - E`` counts exactly the enclosed ones. A window holds at
  most four labels, so the pass costs the same with 8 or 150 declared colours; windows of one value
  (most of them) are skipped.

Both are checked against ``scipy.ndimage.label`` (8-connected structure for the label, the default
4-connectivity for its complement, border-touching complement regions dropped) in the tests.

**Pixels outside the ROI** (``pixels_outside``): a pixel (x, y) is inside a polygon when its centre
(x + 0.5, y + 0.5) is inside by the even-odd rule (an odd number of the polygon's edges cross the
ray from the centre to the right; an edge counts at height yc when exactly one of its end points has
y > yc, the half-open convention of the classic crossing test). ClearML separates polygon parts with
-999999999 in the flat ``poly``; a part is closed on its own, and the parts of one poly are combined by
the same even-odd rule over all their edges (a part inside another is a hole; disjoint parts are
simply several pieces). When several ROIs declare the same colour for one mask, a pixel is inside
when it is inside any of their polys. See docs/SHAPES.md.

Compiled with numba (``cache=True``: compiled once per machine, then loaded from ``__pycache__`` or
``tuning.numba_cache_dir``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from transforms.tuning import use_numba_cache

use_numba_cache()  # before the decorators below (see transforms.kernel)

from numba import njit  # noqa: E402

POLY_SEPARATOR = -999999999.0
MIN_RUNS_CAPACITY = 1024


class Runs(NamedTuple):
    """Every run of one declared label in a row: row y's runs are ``row_start[y]:row_start[y + 1]``,
    sorted by x; run r covers columns ``x0[r]`` to ``x1[r] - 1`` and has label ``label[r]``."""

    row_start: np.ndarray  # int64, h + 1
    x0: np.ndarray         # int32
    x1: np.ndarray         # int32
    label: np.ndarray      # int32


class ShapeStats(NamedTuple):
    """Per declared label (index = position in the declared colours); zero where a label is absent."""

    components: np.ndarray        # int64: 8-connected regions
    holes: np.ndarray             # int64: enclosed 4-connected regions of other pixels
    largest: np.ndarray           # int64: pixels of the largest component
    smallest: np.ndarray          # int64: pixels of the smallest component
    specks: np.ndarray            # int64: components smaller than min_component_pixels
    speck_pixels: np.ndarray      # int64: pixels of the largest speck (0 when none)
    speck_bbox: np.ndarray        # int32 (n, 4): x0, y0, x1, y1 (exclusive ends) of the largest speck
    runs: Runs


# --- numba kernels --------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _runs(img):
    """Every run of equal value per row (undeclared ones too: holes need them).

    Per row: where each pixel differs from its left neighbour (a loop LLVM vectorises), then the
    changes read eight at a time as one uint64 word: most words are zero. ~0.5 ms per 1080p mask.
    """
    h, w = img.shape
    padded = (w + 7) // 8 * 8
    changes = np.zeros(padded, np.uint8)
    words = changes.view(np.uint64)
    starts = np.empty(w, np.int32)
    capacity = max(MIN_RUNS_CAPACITY, 8 * h)
    x0 = np.empty(capacity, np.int32)
    x1 = np.empty(capacity, np.int32)
    lab = np.empty(capacity, np.int32)
    row_start = np.empty(h + 1, np.int64)
    r = 0
    for y in range(h):
        row_start[y] = r
        row = img[y]
        changes[0] = 1
        for x in range(1, w):
            changes[x] = row[x] != row[x - 1]
        k = 0
        for wi in range(padded // 8):
            word = words[wi]
            if not word:
                continue
            base = wi * 8
            for b in range(8):
                if (word >> np.uint64(8 * b)) & np.uint64(0xFF):
                    starts[k] = base + b
                    k += 1
        if r + k > capacity:  # grown once per row at most, not in the pixel loops
            capacity = max(2 * capacity, r + k)
            x0 = _grown(x0, capacity)
            x1 = _grown(x1, capacity)
            lab = _grown(lab, capacity)
        for q in range(k):
            s = starts[q]
            x0[r + q] = s
            x1[r + q] = starts[q + 1] if q + 1 < k else w
            lab[r + q] = row[s]
        r += k
    row_start[h] = r
    return row_start, x0[:r].copy(), x1[:r].copy(), lab[:r].copy()


@njit(cache=True, nogil=True)
def _grown(a, capacity):
    out = np.empty(capacity, a.dtype)
    out[: a.size] = a
    return out


@njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _components(row_start, x0, x1, lab, n, min_pixels):
    """8-connected components of every label at once: union-find over runs."""
    h = row_start.size - 1
    total = x0.size
    parent = np.arange(total)
    for y in range(1, h):
        i = row_start[y - 1]
        prev_end = row_start[y]
        for j in range(row_start[y], row_start[y + 1]):
            if lab[j] >= n:
                continue
            s = x0[j]
            e = x1[j]
            while i < prev_end and x1[i] < s:  # ends left of s - 1: touches no later run of this row either
                i += 1
            k = i
            while k < prev_end and x0[k] <= e:
                if lab[k] == lab[j]:
                    a = _find(parent, j)
                    b = _find(parent, k)
                    if a != b:  # the smaller index is the root: roots are the component's first run
                        if a < b:
                            parent[b] = a
                        else:
                            parent[a] = b
                k += 1
    size = np.zeros(total, np.int64)
    bx0 = np.empty(total, np.int32)
    by0 = np.empty(total, np.int32)
    bx1 = np.empty(total, np.int32)
    by1 = np.empty(total, np.int32)
    for y in range(h):
        for r in range(row_start[y], row_start[y + 1]):
            if lab[r] >= n:
                continue
            root = _find(parent, r)
            if root == r:
                bx0[r] = x0[r]
                bx1[r] = x1[r]
                by0[r] = y
            else:
                bx0[root] = min(bx0[root], x0[r])
                bx1[root] = max(bx1[root], x1[r])
            by1[root] = y + 1
            size[root] += x1[r] - x0[r]
    components = np.zeros(n, np.int64)
    largest = np.zeros(n, np.int64)
    smallest = np.zeros(n, np.int64)
    specks = np.zeros(n, np.int64)
    speck_pixels = np.zeros(n, np.int64)
    speck_bbox = np.zeros((n, 4), np.int32)
    for r in range(total):
        if parent[r] != r or lab[r] >= n:
            continue
        label = lab[r]
        px = size[r]
        if components[label] == 0 or px < smallest[label]:
            smallest[label] = px
        if px > largest[label]:
            largest[label] = px
        components[label] += 1
        if px < min_pixels:
            specks[label] += 1
            if px > speck_pixels[label]:  # the first (top-most) of equal specks wins
                speck_pixels[label] = px
                speck_bbox[label, 0] = bx0[r]
                speck_bbox[label, 1] = by0[r]
                speck_bbox[label, 2] = bx1[r]
                speck_bbox[label, 3] = by1[r]
    return components, largest, smallest, specks, speck_pixels, speck_bbox


@njit(cache=True, nogil=True)
def _quad(acc, a, b, c, d, n):
    """Add the 2x2 window (a b / c d)'s bit-quad term Q1 - Q3 - 2 QD for each label in it."""
    for slot in range(4):
        if slot == 0:
            v = a
        elif slot == 1:
            if b == a:
                continue
            v = b
        elif slot == 2:
            if c == a or c == b:
                continue
            v = c
        else:
            if d == a or d == b or d == c:
                continue
            v = d
        if v >= n:
            continue
        pa = a == v
        pd = d == v
        k = pa + (b == v) + (c == v) + pd
        if k == 1:
            acc[v] += 1
        elif k == 3:
            acc[v] -= 1
        elif k == 2 and pa == pd:  # the two are a diagonal pair
            acc[v] -= 2


@njit(cache=True, nogil=True)
def _euler4(img, row_start, x0, n):
    """4 x the Euler number (8-connected foreground) of every label < n, the image padded by no-label.

    Only windows across a run boundary of either of their two rows can count: elsewhere the window is
    (a a / c c), which is Q0/Q4 or two horizontal pairs, none of which count. So each pair of rows
    costs its runs, not its pixels: the boundaries of both rows are walked together.
    """
    h, w = img.shape
    acc = np.zeros(n, np.int64)
    none = n  # any value >= n is no label
    for y in range(h + 1):  # the window rows straddle rows y - 1 and y; -1 and h are the padding
        t = y - 1
        if t >= 0:
            i = row_start[t] + 1  # a row's first run starts at 0: that is the x = 0 window below
            i_end = row_start[t + 1]
        else:
            i = i_end = 0
        if y < h:
            j = row_start[y] + 1
            j_end = row_start[y + 1]
        else:
            j = j_end = 0
        # windows over the left and right padding columns
        _quad(acc, none, img[t, 0] if t >= 0 else none, none, img[y, 0] if y < h else none, n)
        _quad(acc, img[t, w - 1] if t >= 0 else none, none, img[y, w - 1] if y < h else none, none, n)
        while i < i_end or j < j_end:
            xi = x0[i] if i < i_end else w
            xj = x0[j] if j < j_end else w
            x = min(xi, xj)
            if xi == x:
                i += 1
            if xj == x:
                j += 1
            if t >= 0:
                a = img[t, x - 1]
                b = img[t, x]
            else:
                a = none
                b = none
            if y < h:
                c = img[y, x - 1]
                d = img[y, x]
            else:
                c = none
                d = none
            _quad(acc, a, b, c, d, n)
    return acc


@njit(cache=True, nogil=True)
def _inside_pixels(row_start, x0, x1, lab, label, ex0, ey0, ex1, ey1, poly_of_edge, n_polys, y_lo, y_hi, width):
    """Pixels of ``label`` in rows y_lo..y_hi-1 whose centre is inside any of the polys (even-odd per poly)."""
    n_edges = ex0.size
    xs = np.empty(n_edges, np.float64)
    span_a = np.empty(n_edges, np.int64)
    span_b = np.empty(n_edges, np.int64)
    inside = 0
    for y in range(y_lo, y_hi):
        yc = y + 0.5
        n_spans = 0
        for p in range(n_polys):
            k = 0
            for e in range(n_edges):
                if poly_of_edge[e] != p:
                    continue
                ya = ey0[e]
                yb = ey1[e]
                if (ya > yc) != (yb > yc):
                    xs[k] = ex0[e] + (yc - ya) * (ex1[e] - ex0[e]) / (yb - ya)
                    k += 1
            if k < 2:
                continue
            _insertion_sort(xs, k)  # a row crosses few edges; numba's np.sort costs seconds to compile
            for q in range(0, k - 1, 2):
                # centre x + 0.5 in [left, right): pixels first..last-1, found exactly in floating point
                first = _first_pixel_at_or_after(xs[q])
                last = _first_pixel_at_or_after(xs[q + 1])
                first = max(first, 0)
                last = min(last, width)
                if first < last:
                    span_a[n_spans] = first
                    span_b[n_spans] = last
                    n_spans += 1
        if n_spans == 0:
            continue
        _insertion_sort_pairs(span_a, span_b, n_spans)
        start = row_start[y]
        end = row_start[y + 1]
        cur_a = -1
        cur_b = -1
        for q in range(n_spans + 1):
            if q < n_spans:
                a = span_a[q]
                b = span_b[q]
                if a <= cur_b:  # overlapping spans of different polys: one union span
                    cur_b = max(cur_b, b)
                    continue
            if cur_b > cur_a:
                inside += _label_pixels_in(x0, x1, lab, start, end, label, cur_a, cur_b)
            if q < n_spans:
                cur_a = a
                cur_b = b
    return inside


@njit(cache=True, nogil=True)
def _insertion_sort(a, k):
    for i in range(1, k):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@njit(cache=True, nogil=True)
def _insertion_sort_pairs(keys, values, k):
    for i in range(1, k):
        key = keys[i]
        value = values[i]
        j = i - 1
        while j >= 0 and keys[j] > key:
            keys[j + 1] = keys[j]
            values[j + 1] = values[j]
            j -= 1
        keys[j + 1] = key
        values[j + 1] = value


@njit(cache=True, nogil=True)
def _first_pixel_at_or_after(bound):
    """The smallest integer x with x + 0.5 >= bound."""
    x = math.ceil(bound - 0.5)
    while x + 0.5 < bound:
        x += 1
    while x - 0.5 >= bound:
        x -= 1
    return x


@njit(cache=True, nogil=True)
def _label_pixels_in(x0, x1, lab, start, end, label, a, b):
    """Pixels of ``label`` in columns a..b-1 of a row whose runs are start..end-1."""
    lo = start
    hi = end
    while lo < hi:  # first run ending after a
        mid = (lo + hi) // 2
        if x1[mid] <= a:
            lo = mid + 1
        else:
            hi = mid
    total = 0
    r = lo
    while r < end and x0[r] < b:
        if lab[r] == label:
            total += min(x1[r], b) - max(x0[r], a)
        r += 1
    return total


# --- plain functions ----------------------------------------------------------------------------------

def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
        raise ValueError("labels must be a 2-D uint8 or uint16 label image (value i < n = declared colour i)")
    if not 0 <= n <= np.iinfo(labels.dtype).max:
        raise ValueError(f"{n} declared colours do not fit a {labels.dtype} label image")
    return np.ascontiguousarray(labels)


def label_runs(labels: np.ndarray, n: int) -> Runs:
    """The runs of a label image (undeclared runs included, with their value as label)."""
    labels = _check_labels(labels, n)
    if labels.size == 0:
        empty = np.empty(0, np.int32)
        return Runs(np.zeros(labels.shape[0] + 1, np.int64), empty, empty, empty)
    return Runs(*_runs(labels))


def shape_stats(labels: np.ndarray, n: int, min_component_pixels: int = 4) -> ShapeStats:
    """Components, holes, component sizes and specks of every declared label, in three passes."""
    labels = _check_labels(labels, n)
    runs = label_runs(labels, n)
    if labels.size == 0 or n == 0:
        zeros = np.zeros(n, np.int64)
        return ShapeStats(zeros, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(),
                          np.zeros((n, 4), np.int32), runs)
    components, largest, smallest, specks, speck_pixels, speck_bbox = _components(*runs, n, int(min_component_pixels))
    euler4 = _euler4(labels, runs.row_start, runs.x0, n)
    holes = components - euler4 // 4  # euler4 is a multiple of 4
    return ShapeStats(components, holes, largest, smallest, specks, speck_pixels, speck_bbox, runs)


def parse_poly(poly: Sequence[float] | None) -> list[np.ndarray] | None:
    """A flat [x0, y0, x1, y1, ...] poly -> its parts as (k, 2) arrays of points; None if unusable.

    Parts are separated by one or more -999999999 values (a part, or a single separator value, or a
    separator pair (x, y) all work). Parts with fewer than 3 points enclose no area and are dropped.
    None when the poly is absent or empty, or a part has an odd count of numbers or a non-finite one.
    """
    if not poly:
        return None
    values = np.asarray(poly, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    parts, current = [], []
    for v in values.tolist() + [POLY_SEPARATOR]:
        if v == POLY_SEPARATOR:
            if current:
                if len(current) % 2:
                    return None
                if len(current) >= 6:
                    parts.append(np.asarray(current, dtype=np.float64).reshape(-1, 2))
                current = []
        else:
            current.append(v)
    return parts


def pixels_outside(runs: Runs, label: int, pixel_count: int, bbox: tuple[int, int, int, int] | None,
                   polys: Sequence[Sequence[float]], width: int) -> int | None:
    """Pixels of ``label`` whose centre is inside none of ``polys`` (even-odd within a poly, union
    across polys); None when a poly cannot be read (see ``parse_poly``)."""
    edges = []
    for p, poly in enumerate(polys):
        parts = parse_poly(poly)
        if parts is None:
            return None
        for points in parts:
            nxt = np.roll(points, -1, axis=0)
            keep = points[:, 1] != nxt[:, 1]  # horizontal edges cross no row centre
            edges.append(np.column_stack([points[keep], nxt[keep], np.full(int(keep.sum()), p)]))
    if pixel_count == 0 or bbox is None:
        return 0
    if not edges:
        return int(pixel_count)
    e = np.concatenate(edges)
    if e.shape[0] == 0:
        return int(pixel_count)
    _, label_y0, _, label_y1 = bbox
    poly_y0 = max(label_y0, math.floor(float(min(e[:, 1].min(), e[:, 3].min()))))
    poly_y1 = min(label_y1, math.ceil(float(max(e[:, 1].max(), e[:, 3].max()))) + 1)
    if poly_y0 >= poly_y1:
        return int(pixel_count)
    inside = _inside_pixels(*runs, label, np.ascontiguousarray(e[:, 0]), np.ascontiguousarray(e[:, 1]),
                            np.ascontiguousarray(e[:, 2]), np.ascontiguousarray(e[:, 3]),
                            e[:, 4].astype(np.int64), len(polys), int(poly_y0), int(poly_y1), int(width))
    return int(pixel_count) - int(inside)


def load(dtypes=(np.uint8,)) -> None:
    """Load (or compile) the shape kernels for label images of these dtypes: a worker's decode step
    calls it in its set-up, so the first mask's --mask-decode-timeout does not pay for it."""
    for dtype in dtypes:
        n = 2 if dtype == np.uint8 else 300
        labels = np.array([[0, 1, 1], [1, 0, np.iinfo(dtype).max]], dtype=dtype)
        stats = shape_stats(labels, n)
        pixels_outside(stats.runs, 1, 3, (0, 0, 3, 2), [[0, 0, 2, 0, 2, 2, -999999999, 0, 0, 1, 0, 1, 1]], 3)


def warm() -> None:
    """Compile (or load from numba's on-disk cache) every shape kernel, for uint8 and uint16 label
    images; warmup.warm calls it when the worker image is built."""
    load((np.uint8, np.uint16))
    for n in (2, 300):
        label_image_from_packed(np.array([[0, 5]], np.uint32), list(range(n)), 1)


def label_image_from_packed(packed: np.ndarray, codes: Sequence[int], tolerance: int = 0) -> np.ndarray:
    """The label image of a packed (uint32 r<<16|g<<8|b) mask, by the contract of the mask kernel.

    Stand-in until the one-pass kernel hands its label image over: same values (declared colour i ->
    i, anything else -> the dtype's max), tolerance matches assigned to their nearest colour.
    """
    n = len(codes)
    dtype = np.uint8 if n < 255 else np.uint16
    none = np.iinfo(dtype).max
    out = np.empty(packed.shape, dtype=dtype)
    if n == 0:
        out.fill(none)
        return out
    codes_arr = np.asarray(codes, dtype=np.uint32)
    order = np.argsort(codes_arr, kind="stable")
    unmatched = _classify(np.ascontiguousarray(packed), codes_arr[order], order.astype(np.int64), none, out)
    if tolerance and unmatched:
        from transforms.statistics import nearest_colour

        ys, xs = np.nonzero(out == none)
        nearest = nearest_colour(packed[ys, xs], list(codes), tolerance)
        ok = nearest >= 0
        out[ys[ok], xs[ok]] = nearest[ok].astype(dtype)
    return out


@njit(cache=True, nogil=True)
def _classify(packed, sorted_codes, order, none, out):
    """Declared index of each pixel (binary search, skipped while the colour repeats); returns misses."""
    h, w = packed.shape
    n = sorted_codes.size
    last = packed[0, 0] if packed.size else np.uint32(0)
    last_index = _lookup(sorted_codes, order, last, none)
    misses = 0
    for y in range(h):
        for x in range(w):
            v = packed[y, x]
            if v != last:
                last = v
                last_index = _lookup(sorted_codes, order, v, none)
            out[y, x] = last_index
            if last_index == none:
                misses += 1
    return misses


@njit(cache=True, nogil=True)
def _lookup(sorted_codes, order, v, none):
    lo = 0
    hi = sorted_codes.size
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_codes[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    if lo < sorted_codes.size and sorted_codes[lo] == v:
        return order[lo]
    return none
