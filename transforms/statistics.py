"""Per-colour statistics, COCO RLE and 1-bit PNG crops of a mask, from one labelling pass (transforms/kernel.py).

``analyse_mask`` takes either a packed mask ((h, w) uint32 ``r<<16 | g<<8 | b``, as decoding.decode_mask_bytes
and the video decoder give) or a ``decoding.MaskPixels`` (decoding.open_mask: a PNG's inflated scanlines,
defiltered and classified in the same pass). One numba pass labels every pixel (the label image,
``MaskAnalysis.labels``) and sums count, bbox and centroid per label; its cost does not depend on how many
colours are declared. Crops come from the label image: COCO RLE of every present colour from one
column-major pass (byte-identical to pycocotools), 1-bit PNGs from each colour's bbox slice.

Tolerance N > 0: every pixel goes to the nearest declared colour by Chebyshev distance (largest
per-channel difference), ties to the first declared, if that distance is <= N. Exact matches
have distance 0, so they always win. The search runs once per distinct undeclared colour.

``crop_rle``, ``crop_png`` and ``nearest_colour`` are the one-off forms (``analyse_mask(...).stats`` gives the
statistics alone).
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
from pycocotools import mask as coco_mask

if TYPE_CHECKING:
    from transforms import kernel
    from transforms.decoding import MaskPixels

RGB = tuple[int, int, int]
BBox = tuple[int, int, int, int]
TOP_UNDECLARED = 5


@dataclass(frozen=True)
class ColourStats:
    rgb: RGB
    pixel_count: int
    bbox: BBox | None  # (x0, y0, x1, y1): x0, y0 inclusive, x1, y1 exclusive; None when count == 0
    centroid: tuple[float, float] | None  # (mean pixel column, mean pixel row)
    tolerance_pixels: int  # pixels matched only through the tolerance


@dataclass(frozen=True)
class MaskStats:
    colours: list[ColourStats]  # in the order of the declared colours
    undeclared_pixels: int
    n_undeclared_colours: int
    top_undeclared: list[tuple[RGB, int]]  # up to 5 (rgb, count), most pixels first, ties by rgb


@dataclass(frozen=True)
class MaskAnalysis:
    """Stats, the label image, and when asked for one crop per declared colour (None where the colour is absent)."""

    stats: MaskStats
    crops_rle: list[str | None] | None  # COCO compressed RLE counts of each colour's bbox crop
    crops_png: list[bytes | None] | None  # 1-bit PNG of the same crop
    # (h, w) label image: uint8 when fewer than 255 colours are declared, else uint16; value i is declared
    # colour i (tolerance matches included), the dtype's maximum is a colour nobody declared.
    labels: np.ndarray | None = None


def pack_rgb(rgb: Sequence[int]) -> int:
    """(r, g, b) -> r<<16 | g<<8 | b, the value decoding.decode_mask_bytes stores per pixel."""
    r, g, b = (int(channel) for channel in rgb)
    if not all(0 <= channel <= 255 for channel in (r, g, b)):
        raise ValueError(f"colour {tuple(rgb)} is not three integers in 0..255")
    return (r << 16) | (g << 8) | b


def unpack_rgb(value: int) -> RGB:
    value = int(value)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def analyse_mask(
    mask: "np.ndarray | MaskPixels",
    colours: Sequence[RGB],
    tolerance: int = 0,
    *,
    rle: bool = False,
    png: bool = False,
) -> MaskAnalysis:
    """Stats of every colour, the label image, and each present colour's RLE / PNG crop when asked.

    mask: a packed (h, w) uint32 array, or a decoding.MaskPixels (then a PNG whose pixel data turns out
    damaged raises decoding.MaskDecodeError, as decoding it would have).
    """
    from transforms import kernel  # here, not at the top: importing numba costs ~0.7 s, and convert never decodes

    codes = _colour_codes(colours)
    tolerance = _check_tolerance(tolerance)
    declared_rgb = np.array([unpack_rgb(code) for code in codes], dtype=np.int64).reshape(-1, 3)
    if isinstance(mask, np.ndarray):
        _check_packed(mask)
        result = kernel.classify_packed(mask, declared_rgb, tolerance)
    else:
        result = mask.classify(declared_rgb, tolerance)
    return _analysis(result, colours, codes, rle, png)


def analyse_mask_bytes(
    data: bytes,
    colours: Sequence[RGB],
    tolerance: int = 0,
    *,
    rle: bool = False,
    png: bool = False,
    max_pixels: int = 100_000_000,
    deadline=None,
) -> tuple["MaskPixels", MaskAnalysis]:
    """Decode and analyse mask bytes in one go (PNG: the fused inflate + defilter + classify pass).

    Raises decoding.MaskDecodeError for bad bytes. Returns the decoded mask too (its size and mode;
    analyse_mask(it, other_colours) reuses its pixels for another colour table).
    """
    from transforms.decoding import open_mask

    pixels = open_mask(data, max_pixels=max_pixels, deadline=deadline)
    return pixels, analyse_mask(pixels, colours, tolerance, rle=rle, png=png)


def _analysis(result: "kernel.LabelPass", colours: Sequence[RGB], codes: list[int], rle: bool, png: bool) -> MaskAnalysis:
    from transforms import kernel

    n = len(codes)
    acc = result.acc
    keys, table_labels, counts = result.keys, result.table_labels, result.counts
    met = keys != kernel.EMPTY
    # Pixels matched through the tolerance: table entries resolved to a declared colour, other than its own key.
    codes_array = np.array(codes, dtype=np.uint32)
    by_tolerance = met & (table_labels < n) & ~np.isin(keys, codes_array)
    tolerance_counts = np.zeros(n, dtype=np.int64)
    np.add.at(tolerance_counts, table_labels[by_tolerance], counts[by_tolerance])
    colour_stats = []
    for i, rgb in enumerate(colours):
        rgb_tuple = tuple(int(channel) for channel in rgb)
        count = int(acc[i, 0])
        if count == 0:
            colour_stats.append(ColourStats(rgb_tuple, 0, None, None, 0))
            continue
        x0, y0, x1, y1 = (int(v) for v in acc[i, 3:7])
        # Integer sums are exact; one division gives the same float as mean() of the coordinates.
        centroid = (int(acc[i, 1]) / count, int(acc[i, 2]) / count)
        colour_stats.append(ColourStats(rgb_tuple, count, (x0, y0, x1 + 1, y1 + 1), centroid, int(tolerance_counts[i])))

    undeclared = met & (table_labels == kernel.undeclared_label(n))
    values, value_counts = keys[undeclared], counts[undeclared]
    order = np.lexsort((values, -value_counts))[:TOP_UNDECLARED]
    stats = MaskStats(
        colours=colour_stats,
        undeclared_pixels=int(acc[n, 0]),
        n_undeclared_colours=int(values.size),
        top_undeclared=[(unpack_rgb(values[i]), int(value_counts[i])) for i in order],
    )

    crops_rle: list[str | None] | None = None
    crops_png: list[bytes | None] | None = None
    labels = result.labels
    if rle:
        bboxes = np.zeros((n, 4), dtype=np.int64)
        for i, c in enumerate(colour_stats):
            if c.bbox is not None:
                bboxes[i] = c.bbox
        chars, offsets = kernel.rle_strings(labels, bboxes)
        if offsets[-1] == 0 and bboxes.any():
            raise AssertionError("rle_strings refused the bboxes of its own pass")
        text = chars[: offsets[-1]].tobytes().decode("ascii")
        crops_rle = [text[offsets[i] : offsets[i + 1]] if c.bbox else None for i, c in enumerate(colour_stats)]
    if png:
        crops_png = [None] * n
        for i, c in enumerate(colour_stats):
            if c.bbox is not None:
                x0, y0, x1, y1 = c.bbox
                crops_png[i] = _png_1bit(labels[y0:y1, x0:x1] == i)
    return MaskAnalysis(stats, crops_rle, crops_png, labels)


def nearest_colour(values: np.ndarray, codes: Sequence[int], tolerance: int) -> np.ndarray:
    """Index of the nearest code (Chebyshev, first on ties) per packed value; -1 if over tolerance."""
    values = np.asarray(values, dtype=np.uint32)
    channels = [((values >> shift) & 0xFF).astype(np.int16) for shift in (16, 8, 0)]
    best_distance = np.full(values.shape, tolerance + 1, dtype=np.int16)
    best_index = np.full(values.shape, -1, dtype=np.int64)
    for index, code in enumerate(codes):
        target = unpack_rgb(code)
        distance = np.abs(channels[0] - target[0])
        for channel, wanted in zip(channels[1:], target[1:]):
            np.maximum(distance, np.abs(channel - wanted), out=distance)
        closer = distance < best_distance  # strict: an earlier colour keeps a tie
        best_distance[closer] = distance[closer]
        best_index[closer] = index
    return best_index


def crop_rle(
    packed: np.ndarray,
    rgb: RGB,
    bbox: BBox,
    tolerance: int = 0,
    colours: Sequence[RGB] | None = None,
) -> str:
    """COCO compressed RLE counts (pycocotools) of rgb's binary mask cropped to bbox.

    With tolerance > 0 pass all declared colours: a pixel belongs to rgb only if rgb is its
    nearest declared colour. Equals ``pycocotools.mask.encode(np.asfortranarray(crop))["counts"]``.
    """
    return _rle_counts(_one_off_crop(packed, rgb, bbox, tolerance, colours))


def crop_png(
    packed: np.ndarray,
    rgb: RGB,
    bbox: BBox,
    tolerance: int = 0,
    colours: Sequence[RGB] | None = None,
) -> bytes:
    """The same crop as crop_rle as a 1-bit grayscale PNG (1 = the colour, shown white)."""
    return _png_1bit(_one_off_crop(packed, rgb, bbox, tolerance, colours))


# ---------------------------------------------------------------- helpers


def _one_off_crop(packed, rgb, bbox, tolerance, colours) -> np.ndarray:
    _check_packed(packed)
    tolerance = _check_tolerance(tolerance)
    code = pack_rgb(rgb)
    if colours is None:
        if tolerance:
            raise ValueError("crop with tolerance > 0 needs colours=<all declared colours> to pick the nearest one")
        codes = [code]
    else:
        codes = _colour_codes(colours)
        if code not in codes:
            raise ValueError(f"colour {tuple(rgb)} is not among the declared colours passed in colours=")
    return _binary_crop(packed, codes, codes.index(code), _check_bbox(bbox, packed.shape), tolerance)


def _binary_crop(packed: np.ndarray, codes: list[int], index: int, bbox: BBox, tolerance: int) -> np.ndarray:
    x0, y0, x1, y1 = bbox
    block = packed[y0:y1, x0:x1]
    crop = block == codes[index]
    if tolerance:
        inexact = ~crop
        for code in codes:
            if code != codes[index]:
                inexact &= block != code
        block_rows, cols = np.nonzero(inexact)
        nearest = nearest_colour(block[block_rows, cols], codes, tolerance)
        hits = nearest == index
        crop[block_rows[hits], cols[hits]] = True
    return crop


def _rle_counts(crop: np.ndarray) -> str:
    fortran = np.asfortranarray(crop.view(np.uint8) if crop.dtype == bool else crop.astype(np.uint8))
    return coco_mask.encode(fortran)["counts"].decode("ascii")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_1bit(crop: np.ndarray) -> bytes:
    """packbits + zlib level 1: ~10x faster than Pillow's PNG encoder for the same bytes' meaning."""
    height, width = crop.shape
    bits = np.packbits(crop, axis=1)  # MSB first, rows padded to whole bytes, as PNG wants
    scanlines = np.zeros((height, bits.shape[1] + 1), dtype=np.uint8)  # column 0: filter "None"
    scanlines[:, 1:] = bits
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )


def _colour_codes(colours: Sequence[RGB]) -> list[int]:
    codes = [pack_rgb(rgb) for rgb in colours]
    if len(set(codes)) != len(codes):
        raise ValueError("declared colours must be distinct; de-duplicate them (and report the conflict) first")
    return codes


def _check_packed(packed: np.ndarray) -> None:
    if not isinstance(packed, np.ndarray) or packed.ndim != 2 or packed.dtype != np.uint32:
        raise ValueError("packed must be a 2-D uint32 array from decoding.decode_mask_bytes(...).packed")


def _check_tolerance(tolerance: int) -> int:
    if not 0 <= int(tolerance) <= 255:
        raise ValueError(f"tolerance {tolerance} must be an integer in 0..255")
    return int(tolerance)


def _check_bbox(bbox: BBox, shape: tuple[int, int]) -> BBox:
    x0, y0, x1, y1 = (int(v) for v in bbox)
    height, width = shape
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"bbox {bbox} is not a non-empty (x0, y0, x1, y1) box inside the {width}x{height} mask")
    return x0, y0, x1, y1
