"""The one-pass mask kernel (transforms/kernel.py) against a plain numpy reference and pycocotools.

PNGs here are written by our own small encoder so that every row can carry any of the five filters
(Pillow and libpng choose filters by heuristics and would leave rows untested), in every colour type
and bit depth the decoder accepts. The reference computes each colour's statistics from scratch with
``==`` / ``np.nonzero`` / ``np.unique``, tolerance by brute force over all declared colours, crops with
pycocotools. Damaged pixel data is compared with the reference decoder (``decode_mask_bytes``): same
pixels or the same finding code.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from tests.conftest import REPO, examples
from transforms import kernel
from transforms.decoding import MaskDecodeError, decode_mask_bytes, open_mask
from transforms.statistics import _png_1bit, analyse_mask, analyse_mask_bytes, pack_rgb, unpack_rgb

# ---------------------------------------------------------------- a PNG writer with a chosen filter per row


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filter_row(raw: np.ndarray, prior: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    raw16, prior16 = raw.astype(np.int16), prior.astype(np.int16)
    left = np.concatenate((np.zeros(bpp, np.int16), raw16[:-bpp])) if raw.size > bpp else np.zeros_like(raw16)
    if raw.size > bpp:
        upper_left = np.concatenate((np.zeros(bpp, np.int16), prior16[:-bpp]))
    else:
        upper_left = np.zeros_like(raw16)
    if kind == 0:
        predicted = np.zeros_like(raw16)
    elif kind == 1:
        predicted = left
    elif kind == 2:
        predicted = prior16
    elif kind == 3:
        predicted = (left + prior16) // 2
    else:
        p = left + prior16 - upper_left
        pa, pb, pc = np.abs(p - left), np.abs(p - prior16), np.abs(p - upper_left)
        predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior16, upper_left))
    return ((raw16 - predicted) & 0xFF).astype(np.uint8)


def write_png(rows: np.ndarray, width: int, bit_depth: int, colour_type: int, filters: list[int], *,
              palette: bytes | None = None, trns: bytes | None = None, idat_parts: int = 1) -> bytes:
    """rows: (height, rowbytes) unfiltered scanline bytes."""
    bits = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type] * bit_depth
    bpp = max(1, bits // 8)
    prior = np.zeros(rows.shape[1], np.uint8)
    out = bytearray()
    for raw, kind in zip(rows, filters):
        out.append(kind)
        out += _filter_row(raw, prior, bpp, kind).tobytes()
        prior = raw
    stream = zlib.compress(bytes(out), 6)
    header = struct.pack(">IIBBBBB", width, rows.shape[0], bit_depth, colour_type, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if palette is not None:
        chunks.append(_chunk(b"PLTE", palette))
    if trns is not None:
        chunks.append(_chunk(b"tRNS", trns))
    step = max(1, -(-len(stream) // idat_parts))
    chunks += [_chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step)] or [_chunk(b"IDAT", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + _chunk(b"IEND", b"")


def _pack_indices(indices: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth == 8:
        return indices.astype(np.uint8)
    per_byte = 8 // bit_depth
    height, width = indices.shape
    padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint16)
    padded[:, :width] = indices
    groups = padded.reshape(height, -1, per_byte)
    shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
    return (groups << shifts).sum(axis=2).astype(np.uint8)


# ---------------------------------------------------------------- the reference


def reference(packed: np.ndarray, colours: list[tuple[int, int, int]], tolerance: int):
    """Label image, per-colour (count, bbox, centroid, tolerance pixels), undeclared summary, RLE crops."""
    n = len(colours)
    undeclared = np.iinfo(np.uint8 if n < 255 else np.uint16).max
    codes = np.array([pack_rgb(c) for c in colours], dtype=np.uint32)
    labels = np.full(packed.shape, undeclared, dtype=np.uint8 if n < 255 else np.uint16)
    exact = np.zeros(packed.shape, bool)
    for i, code in enumerate(codes):
        labels[packed == code] = i
        exact |= packed == code
    if tolerance and n:
        ys, xs = np.nonzero(~exact)
        rgb = np.stack([(packed[ys, xs] >> s) & 0xFF for s in (16, 8, 0)], axis=1).astype(np.int32)
        declared = np.array(colours, dtype=np.int32)
        distance = np.abs(rgb[:, None, :] - declared[None, :, :]).max(axis=2)  # (pixels, n)
        nearest = distance.argmin(axis=1)  # first on ties
        within = distance[np.arange(len(nearest)), nearest] <= tolerance
        labels[ys[within], xs[within]] = nearest[within]
    per_colour, crops = [], []
    for i in range(n):
        ys, xs = np.nonzero(labels == i)
        if ys.size == 0:
            per_colour.append((0, None, None, 0))
            crops.append(None)
            continue
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        tolerance_pixels = int((packed[ys, xs] != codes[i]).sum())
        per_colour.append((int(ys.size), bbox, (float(xs.mean()), float(ys.mean())), tolerance_pixels))
        crop = (labels[bbox[1] : bbox[3], bbox[0] : bbox[2]] == i).astype(np.uint8)
        crops.append(coco_mask.encode(np.asfortranarray(crop))["counts"].decode("ascii"))
    values, counts = np.unique(packed[labels == undeclared], return_counts=True)
    order = np.lexsort((values, -counts))[:5]
    summary = (int(counts.sum()), int(values.size), [(unpack_rgb(values[j]), int(counts[j])) for j in order])
    return labels, per_colour, summary, crops


def assert_matches_reference(analysis, packed, colours, tolerance):
    labels, per_colour, summary, crops = reference(packed, colours, tolerance)
    got = [(c.pixel_count, c.bbox, c.centroid, c.tolerance_pixels) for c in analysis.stats.colours]
    for (count, bbox, centroid, tol), (g_count, g_bbox, g_centroid, g_tol) in zip(per_colour, got):
        assert (g_count, g_bbox, g_tol) == (count, bbox, tol)
        if centroid is not None:
            assert g_centroid == pytest.approx(centroid, rel=1e-12)
    stats = analysis.stats
    assert (stats.undeclared_pixels, stats.n_undeclared_colours, stats.top_undeclared) == summary
    assert analysis.labels.dtype == labels.dtype and np.array_equal(analysis.labels, labels)
    if analysis.crops_rle is not None:
        assert analysis.crops_rle == crops
    if analysis.crops_png is not None:
        expected = [None if bbox is None else _png_1bit(labels[bbox[1]:bbox[3], bbox[0]:bbox[2]] == i)
                    for i, (_, bbox, _, _) in enumerate(per_colour)]
        assert analysis.crops_png == expected


# ---------------------------------------------------------------- random masks as PNGs of every layout

LAYOUTS = [(2, 8), (6, 8), (4, 8), (0, 8), (0, 4), (0, 2), (0, 1), (3, 8), (3, 4), (3, 2), (3, 1)]


@st.composite
def random_png(draw, max_side=48):
    colour_type, bit_depth = draw(st.sampled_from(LAYOUTS))
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if colour_type in (0, 4):
        levels = 1 << bit_depth
        n_values = min(levels, draw(st.integers(1, 12)))
        values = rng.choice(levels, n_values, replace=False)
    elif colour_type == 3:
        n_entries = draw(st.integers(1, 1 << bit_depth))
        palette = rng.integers(0, 256, (n_entries, 3), dtype=np.uint8)
        if draw(st.booleans()):  # repeated palette colours: two indices, one colour
            palette[-1] = palette[0]
        values = np.arange(n_entries)
    else:
        n_values = draw(st.integers(1, 12))
        values = np.arange(n_values)
        table = rng.integers(0, 256, (n_values, 3), dtype=np.uint8)
        if draw(st.booleans()):  # near-duplicates, for the tolerance
            table[-1] = np.clip(table[0].astype(int) + rng.integers(-3, 4, 3), 0, 255)
    # Blocks of one value (runs, like masks) or pure noise.
    if draw(st.booleans()):
        block = draw(st.integers(1, 12))
        coarse = rng.integers(0, len(values), (-(-height // block), -(-width // block)))
        index = np.kron(coarse, np.ones((block, block), int))[:height, :width]
    else:
        index = rng.integers(0, len(values), (height, width))
    filters = draw(st.lists(st.integers(0, 4), min_size=height, max_size=height))
    palette_bytes = trns = None
    if colour_type == 2:
        pixels = table[index]
        rows = pixels.reshape(height, width * 3)
        packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) | pixels[..., 2]
    elif colour_type == 6:
        alpha = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        pixels = np.concatenate((table[index], alpha), axis=2)
        rows = pixels.reshape(height, width * 4)
        packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) | pixels[..., 2]
    elif colour_type == 4:
        grey = values[index].astype(np.uint8)
        rows = np.stack((grey, rng.integers(0, 256, grey.shape, dtype=np.uint8)), axis=2).reshape(height, width * 2)
        packed = grey.astype(np.uint32) * 0x010101
    elif colour_type == 0:
        grey = values[index]
        rows = _pack_indices(grey, bit_depth)
        packed = (grey * 255 // ((1 << bit_depth) - 1)).astype(np.uint32) * 0x010101
        if draw(st.booleans()):
            trns = struct.pack(">H", int(values[0]))
    else:
        rows = _pack_indices(index, bit_depth)
        palette_bytes = palette.tobytes()
        packed = ((palette[..., 0].astype(np.uint32) << 16) | (palette[..., 1].astype(np.uint32) << 8) | palette[..., 2])[index]
        if draw(st.booleans()):
            trns = bytes(rng.integers(0, 256, draw(st.integers(1, len(palette))), dtype=np.uint8))
    data = write_png(rows, width, bit_depth, colour_type, filters, palette=palette_bytes, trns=trns,
                     idat_parts=draw(st.integers(1, 3)))
    return data, packed


@st.composite
def class_table(draw, packed: np.ndarray, max_size: int = 255):
    """Some of the mask's colours (shuffled), plus colours it does not hold, up to max_size entries."""
    present = [unpack_rgb(v) for v in np.unique(packed)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    chosen = [c for c in present if draw(st.booleans())] if len(present) < 40 else \
        [present[i] for i in rng.choice(len(present), min(len(present), 20), replace=False)]
    extra = draw(st.integers(0, max_size - len(chosen)))
    others = {tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(extra)} - set(present)
    colours = chosen + sorted(others)
    order = rng.permutation(len(colours))
    return [colours[i] for i in order][:max_size]


@given(st.data(), random_png(), st.sampled_from([0, 0, 1, 3, 40]))
@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_fused_png_pass_equals_the_reference(data, png_and_pixels, tolerance):
    png, packed = png_and_pixels
    assert np.array_equal(decode_mask_bytes(png).packed, packed)  # our writer is right: libspng agrees
    colours = data.draw(class_table(packed))
    pixels, analysis = analyse_mask_bytes(png, colours, tolerance, rle=True, png=data.draw(st.booleans()))
    assert pixels.fused
    assert_matches_reference(analysis, packed, colours, tolerance)
    # A second colour table on the same (now defiltered) scanlines.
    others = data.draw(class_table(packed))
    assert_matches_reference(analyse_mask(pixels, others, tolerance, rle=True), packed, others, tolerance)


@given(st.data(), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from([0, 2, 30]))
@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_packed_pass_equals_the_reference(data, height, width, seed, tolerance):
    rng = np.random.default_rng(seed)
    n_colours = data.draw(st.integers(1, 300))
    table = rng.integers(0, 1 << 24, n_colours, dtype=np.uint32)
    packed = table[rng.integers(0, n_colours, (height, width))]
    if data.draw(st.booleans()):
        packed = np.sort(packed, axis=1)  # long runs
    colours = data.draw(class_table(packed, max_size=data.draw(st.sampled_from([255, 300]))))
    assert_matches_reference(analyse_mask(packed, colours, tolerance, rle=True, png=True), packed, colours, tolerance)


def test_label_image_dtype_follows_the_contract():
    packed = np.array([[pack_rgb((1, 2, 3)), pack_rgb((9, 9, 9))]], dtype=np.uint32)
    small = analyse_mask(packed, [(1, 2, 3)] + [(0, 0, i) for i in range(253)])  # 254 colours
    assert small.labels.dtype == np.uint8 and small.labels.tolist() == [[0, 255]]
    big = analyse_mask(packed, [(0, 0, i) for i in range(255)] + [(1, 2, 3)])  # 256 colours
    assert big.labels.dtype == np.uint16 and big.labels.tolist() == [[255, 65535]]
    with pytest.raises(ValueError, match="at most 65534"):
        kernel.label_dtype(65535)


def test_cost_does_not_grow_with_the_table_a_thousand_colours_met():
    """Many distinct undeclared colours grow the hash table (rehashing keeps every count)."""
    rng = np.random.default_rng(1)
    packed = rng.integers(0, 1 << 24, (60, 70), dtype=np.uint32)
    colours = [unpack_rgb(v) for v in packed[0, :10]]
    assert_matches_reference(analyse_mask(packed, colours, 0, rle=True), packed, colours, 0)
    assert_matches_reference(analyse_mask(packed, colours, 9, rle=True), packed, colours, 9)


@pytest.mark.parametrize("tolerance", [0, 4])
def test_a_run_across_a_row_end_keeps_its_count_when_the_table_grows(tolerance):
    """Each row brings new colours (the table rehashes between rows) and starts with the colour the
    row above ended with (the last-colour cache carries over): counts stay with the right colour."""
    rng = np.random.default_rng(3)
    rows = []
    for y in range(40):
        row = rng.integers(0, 1 << 24, 50, dtype=np.uint32)
        row[0] = row[-1] = pack_rgb((10, 10, 12))
        rows.append(row)
    packed = np.array(rows)
    colours = [(10, 10, 10), (200, 0, 0)]
    analysis = analyse_mask(packed, colours, tolerance, rle=True)
    assert_matches_reference(analysis, packed, colours, tolerance)
    assert analysis.stats.colours[0].tolerance_pixels == (80 if tolerance else 0)


@pytest.mark.slow
@pytest.mark.parametrize("colour_type", [2, 3])
def test_large_mask_equals_the_reference(colour_type):
    """4000x3000, 150 declared colours (20 present), rows with every filter: the kernel at full size."""
    rng = np.random.default_rng(colour_type)
    height, width = 3000, 4000
    present = rng.integers(0, 256, (20, 3), dtype=np.uint8)
    coarse = rng.integers(0, 20, (height // 50 + 1, width // 40 + 1))
    index = np.kron(coarse, np.ones((50, 40), int))[:height, :width]
    index[rng.random((height, width)) < 0.001] = 0  # speckle
    filters = list(rng.integers(0, 5, height))
    if colour_type == 2:
        png = write_png(present[index].reshape(height, width * 3), width, 8, 2, filters)
    else:
        png = write_png(index.astype(np.uint8), width, 8, 3, filters, palette=present.tobytes())
    packed = ((present[..., 0].astype(np.uint32) << 16) | (present[..., 1].astype(np.uint32) << 8) | present[..., 2])[index]
    colours = [unpack_rgb(v) for v in np.unique(packed)] + [(i, 255 - i, 7) for i in range(130)]
    colours = [colours[i] for i in rng.permutation(len(colours))]
    _, analysis = analyse_mask_bytes(png, colours, 2, rle=True)
    assert_matches_reference(analysis, packed, colours, 2)


# ---------------------------------------------------------------- damage reaching the kernel


@given(random_png(max_side=24), st.data())
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_pixel_data_with_valid_crcs_ends_like_the_reference_decoder(png_and_pixels, data):
    """Flip bytes of the *inflated* scanlines (filter bytes included), cut or pad them, recompress and
    fix the CRCs, so the damage gets past the chunk walk into the kernel. Lie about the size in IHDR.
    The fused path must end exactly as the reference decoder: the same pixels, or a finding."""
    png, _ = png_and_pixels
    ihdr = bytearray(png[16:29])
    chunks = _chunks(png)
    stream = b"".join(payload for kind, payload in chunks if kind == b"IDAT")
    raw = bytearray(zlib.decompress(stream))
    for _ in range(data.draw(st.integers(0, 6))):
        where = data.draw(st.integers(0, len(raw) - 1))
        raw[where] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([0, 0, 1, -1, 5, -5]))
    raw = raw[:-cut] if cut > 0 else raw + bytes(-cut)
    if data.draw(st.booleans()):
        width, height = struct.unpack(">II", ihdr[:8])
        struct.pack_into(">II", ihdr, 0, max(1, width + data.draw(st.integers(-2, 2))), max(1, height + data.draw(st.integers(-2, 2))))
    damaged = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", bytes(ihdr)) + b"".join(
        _chunk(kind, payload) for kind, payload in chunks if kind not in (b"IHDR", b"IDAT", b"IEND")
    ) + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    colours = [(0, 0, 0), (255, 255, 255), (17, 17, 17)]
    try:
        expected = decode_mask_bytes(damaged, max_pixels=4096)
    except MaskDecodeError as error:
        with pytest.raises(MaskDecodeError) as raised:
            analyse_mask_bytes(damaged, colours, rle=True, max_pixels=4096)
        assert raised.value.code == error.code
    else:
        pixels, analysis = analyse_mask_bytes(damaged, colours, rle=True, max_pixels=4096)
        assert (pixels.width, pixels.height, pixels.mode) == (expected.width, expected.height, expected.mode)
        assert_matches_reference(analysis, expected.packed, colours, 0)


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, offset = [], 8
    while offset < len(png):
        length, kind = struct.unpack_from(">I4s", png, offset)
        out.append((kind, png[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return out


def test_a_bad_filter_byte_is_corrupt_not_a_crash():
    rows = np.zeros((4, 6), np.uint8)
    png = write_png(rows, 2, 8, 2, [0, 1, 2, 3])
    raw = bytearray(zlib.decompress(b"".join(p for k, p in _chunks(png) if k == b"IDAT")))
    raw[7 * 2] = 5  # the third row's filter byte
    damaged = png[:33] + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    with pytest.raises(MaskDecodeError) as raised:
        analyse_mask_bytes(damaged, [(0, 0, 0)])
    assert raised.value.code == "mask_corrupt"


def test_palette_index_past_the_palette_is_corrupt_with_the_reference_message():
    index = np.array([[0, 1], [2, 3]], np.uint8)
    png = write_png(index, 2, 8, 3, [0, 0], palette=bytes(range(9)))  # 3 entries, index 3 used
    with pytest.raises(MaskDecodeError, match="palette index 3 but the palette has only 3 entries"):
        analyse_mask_bytes(png, [(0, 1, 2)])


def test_a_lying_bbox_or_size_is_refused_by_the_kernel_itself():
    lab = np.zeros((3, 3), np.uint8)
    chars, offsets = kernel.rle_strings(lab, np.array([[0, 0, 2, 2]], np.int64))  # label 0 fills 3x3, not 2x2
    assert offsets.tolist() == [0, 0] and chars.size == 0
    chars, offsets = kernel.rle_strings(lab, np.array([[0, 0, 4, 3]], np.int64))  # outside the image
    assert offsets.tolist() == [0, 0]
    declared = np.array([[0, 0, 0]], np.int64)
    lab_, acc, keys, labels, counts = kernel.start_pass(3, 3, declared)
    status, *_ = kernel.png_pass(np.zeros(5, np.uint8), 3, 3, kernel.RGB8, 8, np.zeros(256, np.uint32), False,
                                 lab_, keys, labels, counts, declared, 0, 255, acc, 1)
    assert status == kernel.BAD_SIZES  # 5 bytes cannot hold 3 rows of 3 RGB pixels
    status, *_ = kernel.packed_pass(np.zeros((3, 4), np.uint32), lab_, keys, labels, counts, declared, 0, 255, acc, 1)
    assert status == kernel.BAD_SIZES


# ---------------------------------------------------------------- other inputs through the same pass


def test_interlaced_png_falls_back_to_the_reference_decoder_and_matches():
    from PIL import Image
    import io

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 3, (37, 53, 1)).repeat(3, axis=2).astype(np.uint8) * 100
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", interlace=1)  # Pillow ignores it; write by hand below
    png = _interlaced(rgb)
    packed = decode_mask_bytes(png).packed
    pixels, analysis = analyse_mask_bytes(png, [(0, 0, 0), (100, 100, 100)], rle=True)
    assert not pixels.fused
    assert_matches_reference(analysis, packed, [(0, 0, 0), (100, 100, 100)], 0)


def _interlaced(rgb: np.ndarray) -> bytes:
    """An Adam7-interlaced RGB PNG, filter None."""
    height, width, _ = rgb.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = bytearray()
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                out += b"\x00" + row.tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(out)))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["BMP", "WEBP"])
def test_pillow_formats_go_through_the_same_label_pass(fmt):
    from PIL import Image
    import io

    rng = np.random.default_rng(2)
    rgb = (rng.integers(0, 4, (20, 30, 1)) * 60).repeat(3, axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    packed = decode_mask_bytes(buffer.getvalue()).packed
    pixels, analysis = analyse_mask_bytes(buffer.getvalue(), [(0, 0, 0), (60, 60, 60), (120, 120, 120)], rle=True)
    assert not pixels.fused
    assert_matches_reference(analysis, packed, [(0, 0, 0), (60, 60, 60), (120, 120, 120)], 0)


def test_open_mask_checks_the_chunks_and_the_size_before_inflating():
    rows = np.zeros((4, 6), np.uint8)
    png = write_png(rows, 2, 8, 2, [0] * 4)
    with pytest.raises(MaskDecodeError) as raised:
        open_mask(png, max_pixels=7)
    assert raised.value.code == "mask_too_large"
    bad_crc = png[:-5] + bytes([png[-5] ^ 1]) + png[-4:]
    with pytest.raises(MaskDecodeError) as raised:
        open_mask(bad_crc)
    assert raised.value.code == "mask_corrupt"


# ---------------------------------------------------------------- numba's missing bounds checks


@pytest.mark.slow
def test_hostile_and_random_inputs_stay_in_bounds_with_numba_boundscheck():
    """The damage and reference tests again, compiled with NUMBA_BOUNDSCHECK=1 (any out-of-bounds index
    raises IndexError) into a throwaway cache so the product's cache keeps its unchecked code."""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(REPO / "tests" / "test_kernel.py"),
             "-k", "damaged or refused or reference and not large and not boundscheck"],
            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# ---------------------------------------------------------------- the compiled code is cached, as the image ships it


@pytest.mark.slow
def test_a_warmed_cache_serves_every_signature_a_run_uses_without_compiling(tmp_path):
    """deploy/Dockerfile's warm-up (warmup.warm with NUMBA_CPU_NAME=generic into NUMBA_CACHE_DIR), then a
    fresh process analysing PNGs of every layout, Pillow formats and uint16 label images: no compile."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_CPU_NAME": "generic", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", "from transforms.warmup import warm; warm()"], env=env, check=True, timeout=900)
    child = r"""
import io, json, numpy as np
from PIL import Image
from transforms import kernel
from transforms.statistics import analyse_mask_bytes
kernel.load()
rgb = np.random.default_rng(0).integers(0, 3, (30, 40, 3)).astype(np.uint8) * 90
images = [Image.fromarray(rgb), Image.fromarray(rgb).convert("RGBA"), Image.fromarray(rgb).convert("L"),
          Image.fromarray(rgb).convert("LA"), Image.fromarray(rgb).quantize(3), Image.fromarray(rgb[..., 0] > 50)]
for image, fmt in [(i, "PNG") for i in images] + [(images[0], "BMP"), (images[0], "WEBP")]:
    buffer = io.BytesIO(); image.save(buffer, format=fmt)
    for n in (3, 300):
        colours = [(0, 0, 0), (90, 90, 90)] + [(1, i // 256, i % 256) for i in range(n - 2)]
        analyse_mask_bytes(buffer.getvalue(), colours, 0, rle=True, png=True)
        analyse_mask_bytes(buffer.getvalue(), colours, 5, rle=True)
misses = {name: dict(f.stats.cache_misses) for name, f in vars(kernel).items() if hasattr(f, "stats") and f.stats.cache_misses}
print(json.dumps(misses, default=str))
"""
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=900, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "{}", f"compiled at run time (not warmed): {out.stdout}"
