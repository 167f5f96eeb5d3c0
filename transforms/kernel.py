"""The mask kernel: every pixel classified into a label index in one pass, whatever the size of the class table.

Compiled with numba (``cache=True``: the machine code is kept on disk, so a fresh worker loads it in
milliseconds instead of compiling for seconds; see ``tuning.numba_cache_dir``). Two entry points feed one
classifier:

* ``png_pass``: the inflated PNG scanlines (``deflate.zlib_decompress`` of the IDAT data), defiltered
  in place row by row and classified while the row is still in the L1 cache;
* ``packed_pass``: an already decoded (h, w) uint32 ``r<<16 | g<<8 | b`` image (Pillow formats, the
  PNG fallbacks, video frames).

Classification: a last-colour cache (mask pixels come in runs) and, on a change of colour, one probe
of an open-addressing hash table that starts with the declared colours (label i = declared colour i)
and learns every other colour met, with the label it resolved to (the nearest declared colour within
the tolerance, or "undeclared") and its pixel count. So the cost per pixel does not depend on how many
colours are declared; the tolerance search (Chebyshev distance, ties to the first declared, an exact
match always wins because it is in the table already) runs once per distinct colour, not per pixel.

Per label the pass accumulates, run by run: pixel count, bbox, the sums of x and of y (exact centroid)
— and writes the label image (``label_dtype``): value i < n is declared colour i, the dtype's maximum
is "undeclared" (the contract with transforms/shapes: uint8 below 255 declared colours, else uint16).

``rle_strings``: COCO compressed RLE of every present label's bbox crop from one column-major pass over
the label image (vertical runs of one label become that label's 1-runs in its crop), byte-identical to
pycocotools' ``rleToString``.

Safety: numba does not check bounds. Every index here is derived from sizes checked at the top of each
kernel against the arrays' real lengths (a caller passing a lying header gets a status, never a stray
read or write); filter bytes > 4 and palette indices past the palette stop the pass with a status.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transforms.tuning import use_numba_cache

use_numba_cache()  # before the decorators below: numba fixes a function's cache folder when it is decorated

from numba import njit  # noqa: E402

EMPTY = np.uint32(0xFFFFFFFF)  # no 24-bit colour has this value: an empty hash slot, or a palette hole
MAX_DECLARED = 65534  # uint16 label image: 65535 means undeclared

# Statuses of the passes.
OK = 0
BAD_FILTER = 1  # a scanline's filter byte is not 0..4
BAD_PALETTE_INDEX = 2  # a pixel uses a palette entry the PLTE chunk does not have
BAD_SIZES = 3  # the arrays do not hold what the header says (a caller's bug, refused before any access)

# How png_pass reads a defiltered scanline into colours.
RGB8, RGBA8, GREY_ALPHA8, INDEXED = 0, 1, 2, 3


def label_dtype(n_declared: int) -> type:
    if n_declared > MAX_DECLARED:
        raise ValueError(f"{n_declared} declared colours: at most {MAX_DECLARED} fit a uint16 label image")
    return np.uint8 if n_declared < 255 else np.uint16


def undeclared_label(n_declared: int) -> int:
    return int(np.iinfo(label_dtype(n_declared)).max)


# ------------------------------------------------------------------ what a pass leaves behind


@dataclass(frozen=True)
class LabelPass:
    """The label image and the per-label sums of one pass (see the module doc)."""

    labels: np.ndarray  # (h, w) label_dtype(n): i < n = declared colour i, dtype max = undeclared
    acc: np.ndarray  # (n + 1, 7) int64: count, sum x, sum y, x0, y0, x1, y1 (inclusive); row n = undeclared
    keys: np.ndarray  # the colour table: every colour met (and every declared one), EMPTY elsewhere
    table_labels: np.ndarray  # each key's label (undeclared_label(n) for an undeclared colour)
    counts: np.ndarray  # each key's pixel count


def start_pass(height: int, width: int, declared_rgb: np.ndarray):
    """Fresh outputs and colour table for a pass over an image of that size with those declared colours."""
    n = len(declared_rgb)
    codes = (declared_rgb[:, 0] << 16) | (declared_rgb[:, 1] << 8) | declared_rgb[:, 2]
    keys, table_labels, counts = new_table(codes)
    lab = np.empty((height, width), dtype=label_dtype(n))
    acc = np.zeros((n + 1, 7), dtype=np.int64)
    return lab, acc, keys, table_labels, counts


def classify_packed(packed: np.ndarray, declared_rgb: np.ndarray, tolerance: int) -> LabelPass:
    """The pass over an (h, w) uint32 image. declared_rgb: (n, 3) int64, distinct."""
    packed = np.ascontiguousarray(packed, dtype=np.uint32)
    lab, acc, keys, table_labels, counts = start_pass(*packed.shape, declared_rgb)
    status, keys, table_labels, counts = packed_pass(
        packed, lab, keys, table_labels, counts, declared_rgb, int(tolerance),
        undeclared_label(len(declared_rgb)), acc, len(declared_rgb))
    if status != OK:
        raise AssertionError(f"packed_pass refused its own inputs (status {status})")
    return LabelPass(lab, acc, keys, table_labels, counts)


# ------------------------------------------------------------------ the colour table


def new_table(codes: np.ndarray, capacity_hint: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An open-addressing table (keys, labels, counts) holding the declared colours as labels 0..n-1."""
    capacity = 64
    while capacity < 4 * (len(codes) + capacity_hint):
        capacity *= 2
    keys = np.full(capacity, EMPTY, dtype=np.uint32)
    labels = np.zeros(capacity, dtype=np.int32)
    counts = np.zeros(capacity, dtype=np.int64)
    _insert_declared(keys, labels, codes.astype(np.uint32))
    return keys, labels, counts


@njit(cache=True, nogil=True)
def _slot(keys, code):
    """Where code is, or the empty slot where it would go. The table is at most half full: this ends."""
    mask = keys.shape[0] - 1
    h = (np.uint64(code) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    i = np.int64(h) & mask
    while keys[i] != code and keys[i] != 0xFFFFFFFF:
        i = (i + 1) & mask
    return i


@njit(cache=True, nogil=True)
def _insert_declared(keys, labels, codes):
    for i in range(codes.shape[0]):
        s = _slot(keys, codes[i])
        keys[s] = codes[i]
        labels[s] = i


@njit(cache=True, nogil=True)
def _grow(keys, labels, counts):
    capacity = keys.shape[0] * 2
    new_keys = np.full(capacity, np.uint32(0xFFFFFFFF), dtype=np.uint32)
    new_labels = np.zeros(capacity, dtype=np.int32)
    new_counts = np.zeros(capacity, dtype=np.int64)
    for i in range(keys.shape[0]):
        if keys[i] != 0xFFFFFFFF:
            s = _slot(new_keys, keys[i])
            new_keys[s] = keys[i]
            new_labels[s] = labels[i]
            new_counts[s] = counts[i]
    return new_keys, new_labels, new_counts


@njit(cache=True, nogil=True)
def _room_for_row(keys, labels, counts, state, width):
    """A table that stays at most half full even if the next row brings width new colours."""
    if 2 * (state[3] + width) <= keys.shape[0]:
        return keys, labels, counts
    while 2 * (state[3] + width) > keys.shape[0]:
        keys, labels, counts = _grow(keys, labels, counts)
    if state[0] >= 0:  # the last colour's slot moved with the rehash
        state[2] = _slot(keys, state[0])
    return keys, labels, counts


@njit(cache=True, nogil=True)
def _resolve(code, declared_rgb, tolerance, undeclared):
    """The label of a colour that is not declared: the nearest declared within tolerance, first on ties."""
    best = undeclared
    best_distance = tolerance + 1
    r = np.int64((code >> 16) & 0xFF)
    g = np.int64((code >> 8) & 0xFF)
    b = np.int64(code & 0xFF)
    for i in range(declared_rgb.shape[0]):
        d = abs(r - declared_rgb[i, 0])
        dg = abs(g - declared_rgb[i, 1])
        db = abs(b - declared_rgb[i, 2])
        if dg > d:
            d = dg
        if db > d:
            d = db
        if d < best_distance:  # strict: an earlier colour keeps a tie
            best_distance = d
            best = i
    return best


# ------------------------------------------------------------------ classifying one row


@njit(cache=True, nogil=True)
def _classify_row(codes, width, y, lab_row, state, keys, labels, counts, declared_rgb, tolerance, undeclared, acc):
    """Label one row of colours, accumulating per-label runs.

    The table is never replaced in here: an array variable reassigned inside the pixel loop makes numba
    count references on every pixel (measured: 0.3 ms -> 100 ms for a 960x720 image).

    state: [last colour, its label, its table slot, table entries used]. acc has a row per declared
    colour plus a last one for undeclared pixels, with columns count, sum x, sum y, x0, y0, x1, y1
    (ends inclusive).
    """
    other = acc.shape[0] - 1
    last_code = state[0]
    last_label = state[1]
    last_slot = state[2]
    run_start = 0
    for x in range(width):
        code = np.int64(codes[x])
        if code != last_code:
            if x > run_start:
                _close_run(acc, counts, min(last_label, other), last_slot, run_start, x, y)
            s = _slot(keys, code)
            if keys[s] == 0xFFFFFFFF:  # room was made before the row (_room_for_row)
                keys[s] = code
                labels[s] = _resolve(code, declared_rgb, tolerance, undeclared)
                state[3] += 1
            last_code = code
            last_label = np.int64(labels[s])
            last_slot = s
            run_start = x
        lab_row[x] = last_label
    if width > run_start:
        _close_run(acc, counts, min(last_label, other), last_slot, run_start, width, y)
    state[0] = last_code
    state[1] = last_label
    state[2] = last_slot


@njit(cache=True, nogil=True, inline="always")
def _close_run(acc, counts, row, slot, start, end, y):
    n = end - start
    counts[slot] += n
    if acc[row, 0] == 0:  # the label's first run
        acc[row, 3] = start
        acc[row, 4] = y
        acc[row, 5] = end - 1
    else:
        if start < acc[row, 3]:
            acc[row, 3] = start
        if end - 1 > acc[row, 5]:
            acc[row, 5] = end - 1
    acc[row, 6] = y  # rows come in order: the last one seen is the bottom
    acc[row, 0] += n
    acc[row, 1] += (start + end - 1) * n // 2
    acc[row, 2] += y * n


# ------------------------------------------------------------------ the two passes


@njit(cache=True, nogil=True)
def _table_ok(keys, labels, counts, declared_rgb, undeclared, acc, used):
    capacity = keys.shape[0]
    return (capacity >= 2 and capacity & (capacity - 1) == 0 and labels.shape[0] == capacity
            and counts.shape[0] == capacity and 2 * used + 2 <= capacity and declared_rgb.shape[1] == 3
            and undeclared >= declared_rgb.shape[0] and acc.shape[0] == declared_rgb.shape[0] + 1
            and acc.shape[1] == 7)


@njit(cache=True, nogil=True)
def packed_pass(packed, lab, keys, labels, counts, declared_rgb, tolerance, undeclared, acc, used):
    """Classify an (h, w) uint32 image into lab. Returns (status, keys, labels, counts)."""
    height, width = packed.shape
    if lab.shape[0] != height or lab.shape[1] != width or not _table_ok(keys, labels, counts, declared_rgb, undeclared, acc, used):
        return BAD_SIZES, keys, labels, counts
    state = np.empty(4, dtype=np.int64)
    state[0] = -1
    state[1] = 0
    state[2] = 0
    state[3] = used
    for y in range(height):
        keys, labels, counts = _room_for_row(keys, labels, counts, state, width)
        _classify_row(packed[y], width, y, lab[y], state, keys, labels, counts, declared_rgb, tolerance, undeclared, acc)
    return OK, keys, labels, counts


@njit(cache=True, nogil=True)
def _unfilter_row(kind, cur, prior, rowbytes, bpp, first):
    """Undo one scanline's filter in place (cur: its bytes, prior: the row above, already unfiltered).

    False for a filter byte other than 0..4. Slices, not offsets into the whole buffer: numba then
    knows every index is >= 0 and drops its negative-index fix-up (measured: Up 90x, Paeth 3x faster).
    """
    if kind == 0:
        return True
    if kind == 1 or (kind == 4 and first):  # Paeth with no row above predicts from the left: Sub
        for i in range(bpp, rowbytes):
            cur[i] = np.uint8(cur[i] + cur[i - bpp])
        return True
    if kind == 2:
        if not first:
            for i in range(rowbytes):
                cur[i] = np.uint8(cur[i] + prior[i])
        return True
    if kind == 3:
        if first:
            for i in range(bpp, rowbytes):
                cur[i] = np.uint8(cur[i] + (cur[i - bpp] >> 1))
        else:
            for i in range(bpp):
                cur[i] = np.uint8(cur[i] + (prior[i] >> 1))
            for i in range(bpp, rowbytes):
                cur[i] = np.uint8(cur[i] + ((np.int64(cur[i - bpp]) + np.int64(prior[i])) >> 1))
        return True
    if kind == 4:
        for i in range(bpp):  # no left neighbour: Paeth picks the byte above
            cur[i] = np.uint8(cur[i] + prior[i])
        for i in range(bpp, rowbytes):
            a = np.int64(cur[i - bpp])
            b = np.int64(prior[i])
            c = np.int64(prior[i - bpp])
            pa = abs(b - c)  # = |p - a| with p = a + b - c
            pb = abs(a - c)
            pc = abs(a + b - 2 * c)
            if pa <= pb and pa <= pc:
                pred = a
            elif pb <= pc:
                pred = b
            else:
                pred = c
            cur[i] = np.uint8(np.int64(cur[i]) + pred)
        return True
    return False


@njit(cache=True, nogil=True)
def png_pass(buf, height, width, layout, bit_depth, lut, defiltered,
             lab, keys, labels, counts, declared_rgb, tolerance, undeclared, acc, used):
    """Defilter (unless already done) and classify PNG scanlines. Returns (status, keys, labels, counts).

    buf: the inflated IDAT, height scanlines of 1 filter byte + rowbytes. layout: RGB8 / RGBA8 /
    GREY_ALPHA8 (colour = lut[grey]) / INDEXED (bit_depth 1, 2, 4 or 8; colour = lut[index], EMPTY
    for an index past the palette). Defiltering writes into buf, so a second colour table skips it.
    """
    if layout == RGB8:
        bits = 24
    elif layout == RGBA8:
        bits = 32
    elif layout == GREY_ALPHA8:
        bits = 16
    elif layout == INDEXED and (bit_depth == 1 or bit_depth == 2 or bit_depth == 4 or bit_depth == 8):
        bits = bit_depth
    else:
        return BAD_SIZES, keys, labels, counts
    rowbytes = (width * bits + 7) // 8
    bpp = max(1, bits // 8)
    if (height <= 0 or width <= 0 or buf.shape[0] != height * (rowbytes + 1) or lut.shape[0] != 256
            or lab.shape[0] != height or lab.shape[1] != width
            or not _table_ok(keys, labels, counts, declared_rgb, undeclared, acc, used)):
        return BAD_SIZES, keys, labels, counts
    codes = np.empty(width, dtype=np.uint32)
    state = np.empty(4, dtype=np.int64)
    state[0] = -1
    state[1] = 0
    state[2] = 0
    state[3] = used
    stride = rowbytes + 1
    for y in range(height):
        start = y * stride + 1
        row = buf[start : start + rowbytes]
        prior = buf[start - stride : start - 1] if y > 0 else row
        if not defiltered and not _unfilter_row(buf[start - 1], row, prior, rowbytes, bpp, y == 0):
            return BAD_FILTER, keys, labels, counts
        if layout == RGB8:
            for x in range(width):
                codes[x] = (np.uint32(row[3 * x]) << 16) | (np.uint32(row[3 * x + 1]) << 8) | np.uint32(row[3 * x + 2])
        elif layout == RGBA8:
            for x in range(width):
                codes[x] = (np.uint32(row[4 * x]) << 16) | (np.uint32(row[4 * x + 1]) << 8) | np.uint32(row[4 * x + 2])
        elif layout == GREY_ALPHA8:
            for x in range(width):
                codes[x] = lut[row[2 * x]]
        elif bits == 8:
            for x in range(width):
                codes[x] = lut[row[x]]
        else:
            per_byte = 8 // bits
            top = 8 - bits
            value_mask = (1 << bits) - 1
            for x in range(width):
                byte = row[x // per_byte]
                codes[x] = lut[(byte >> (top - (x % per_byte) * bits)) & value_mask]
        if layout == INDEXED:
            for x in range(width):
                if codes[x] == 0xFFFFFFFF:
                    return BAD_PALETTE_INDEX, keys, labels, counts
        keys, labels, counts = _room_for_row(keys, labels, counts, state, width)
        _classify_row(codes, width, y, lab[y], state, keys, labels, counts, declared_rgb, tolerance, undeclared, acc)
    return OK, keys, labels, counts


# ------------------------------------------------------------------ COCO RLE from the label image


@njit(cache=True, nogil=True)
def rle_strings(lab, bboxes):
    """COCO compressed RLE (pycocotools' rleToString) of each label's bbox crop, from one column-major pass.

    bboxes: (n, 4) int64 x0, y0, x1, y1 (exclusive ends); x1 == x0 for an absent label. Every pixel of a
    label lies in its bbox, so a vertical run of label v in column x is a run of ones in v's crop at
    position (x - x0) * crop height + (y - y0), and ones runs meeting across a column boundary merge.
    Returns (chars uint8, offsets int64[n + 1]): label i's string is chars[offsets[i]:offsets[i + 1]].
    """
    height, width = lab.shape
    n = bboxes.shape[0]
    for i in range(n):  # a bbox outside the image would index outside it
        if bboxes[i, 2] > bboxes[i, 0] and not (0 <= bboxes[i, 0] and bboxes[i, 2] <= width
                                                and 0 <= bboxes[i, 1] < bboxes[i, 3] <= height):
            return np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64)
    columns = _transposed(lab)
    capacity = 1024
    run_label = np.empty(capacity, dtype=np.int64)
    run_pos = np.empty(capacity, dtype=np.int64)
    run_len = np.empty(capacity, dtype=np.int64)
    runs = 0
    last_end = np.full(n, -1, dtype=np.int64)
    last_run = np.zeros(n, dtype=np.int64)
    per_label = np.zeros(n, dtype=np.int64)
    for x in range(width):
        if runs + height > capacity:  # a column adds at most height runs; never resize inside it (see _classify_row)
            while runs + height > capacity:
                capacity *= 2
            run_label = _resized(run_label, capacity)
            run_pos = _resized(run_pos, capacity)
            run_len = _resized(run_len, capacity)
        column = columns[x]
        y = 0
        while y < height:
            v = np.int64(column[y])
            top = y
            y += 1
            while y < height and column[y] == v:
                y += 1
            if v >= n or bboxes[v, 2] <= bboxes[v, 0]:
                continue
            if not (bboxes[v, 0] <= x < bboxes[v, 2] and bboxes[v, 1] <= top and y <= bboxes[v, 3]):
                return np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64)  # a bbox that lies
            crop_height = bboxes[v, 3] - bboxes[v, 1]
            pos = (x - bboxes[v, 0]) * crop_height + (top - bboxes[v, 1])
            if last_end[v] == pos:
                run_len[last_run[v]] += y - top
            else:
                run_label[runs] = v
                run_pos[runs] = pos
                run_len[runs] = y - top
                last_run[v] = runs
                per_label[v] += 1
                runs += 1
            last_end[v] = pos + (y - top)
    # Group the runs by label, keeping their (column-major) order: a stable counting sort.
    first = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        first[i + 1] = first[i] + per_label[i]
    order = np.empty(runs, dtype=np.int64)
    fill = first[:n].copy()
    for r in range(runs):
        order[fill[run_label[r]]] = r
        fill[run_label[r]] += 1
    # At most 2 * runs + 1 counts per label, each at most 13 characters (5 bits of an int64 per character).
    chars = np.empty(13 * (2 * runs + n), dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    p = 0
    counts = np.empty(2 * runs + 2, dtype=np.int64)
    for i in range(n):
        offsets[i] = p
        if per_label[i] == 0:
            continue
        total = (bboxes[i, 2] - bboxes[i, 0]) * (bboxes[i, 3] - bboxes[i, 1])
        m = 0
        end = 0
        for k in range(first[i], first[i + 1]):
            r = order[k]
            counts[m] = run_pos[r] - end  # zeros before the run (0 before a crop starting with ones)
            counts[m + 1] = run_len[r]
            m += 2
            end = run_pos[r] + run_len[r]
        if end < total:
            counts[m] = total - end
            m += 1
        p = _rle_to_string(counts, m, chars, p)
    offsets[n] = p
    return chars, offsets


@njit(cache=True, nogil=True)
def _transposed(lab):
    """lab in column-major order, copied in 64x64 tiles: walking a row-major image down its columns
    touches a new cache line at every pixel."""
    height, width = lab.shape
    out = np.empty((width, height), dtype=lab.dtype)
    for y0 in range(0, height, 64):
        y1 = min(y0 + 64, height)
        for x0 in range(0, width, 64):
            x1 = min(x0 + 64, width)
            for y in range(y0, y1):
                for x in range(x0, x1):
                    out[x, y] = lab[y, x]
    return out


@njit(cache=True, nogil=True)
def _resized(array, capacity):
    out = np.empty(capacity, dtype=array.dtype)
    out[: array.shape[0]] = array
    return out


@njit(cache=True, nogil=True)
def _rle_to_string(counts, m, chars, p):
    """pycocotools' rleToString: LEB128-like, 5 bits a character, each count after the second as the
    difference from the count two before it."""
    for i in range(m):
        x = counts[i]
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as C's on a signed long
            if c & 0x10:
                more = x != -1
            else:
                more = x != 0
            if more:
                c |= 0x20
            chars[p] = c + 48
            p += 1
    return p


def load() -> None:
    """Load (or compile) the kernel signatures every mask job uses: what a worker's decode step calls in
    its set-up, so the first mask's --mask-decode-timeout does not pay for it (~1 s from the on-disk
    cache, mostly numba's own start-up; see bench/first_mask_bench.py)."""
    declared = np.array([[0, 0, 7], [1, 2, 3]], dtype=np.int64)
    packed = np.array([[7, 7], [(1 << 16) | (2 << 8) | 3, 9]], dtype=np.uint32)
    result = classify_packed(packed, declared, 0)
    lab, acc, keys, table_labels, counts = start_pass(1, 2, declared)
    scanline = np.array([1, 0, 0, 7, 0, 0, 0], dtype=np.uint8)  # Sub filter, two RGB pixels
    png_pass(scanline, 1, 2, RGB8, 8, np.zeros(256, np.uint32), False, lab, keys, table_labels, counts, declared, 0, 255, acc, 2)
    rle_strings(result.labels, np.array([[0, 0, 2, 1], [0, 1, 1, 2]], dtype=np.int64))
