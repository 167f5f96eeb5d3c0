"""Compile (or load from numba's on-disk cache) every kernel signature the product calls.

Run once when building the worker image (deploy/Dockerfile: ``python -c "from transforms.warmup import warm; warm()"``),
so workers start with the machine code on disk. It drives every module with compiled code (kernel, decoding,
statistics, shapes), so it sits above them: inside ``kernel``, the lowest of them, it made import cycles.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from transforms import shapes
from transforms.decoding import open_mask
from transforms.statistics import analyse_mask


def warm() -> None:
    """Every mask-kernel signature (packed arrays, PNGs of each layout, uint8 and uint16 label images) and
    the shape kernels."""
    rgb = np.array([[(1 << 16) | 2, 7], [7, 7]], dtype=np.uint32)
    for n in (2, 300):  # uint8 and uint16 label images
        colours = [(0, 0, 7)] + [(i // 256, i % 256, 200) for i in range(n - 1)]
        analyse_mask(rgb, colours, 0, rle=True, png=True)
        analyse_mask(rgb, colours, 3, rle=True)
        readonly = rgb.copy()
        readonly.setflags(write=False)
        analyse_mask(readonly, colours, 0, rle=True)
    _warm_png_kernels()
    shapes.warm()  # the shape columns' passes over the label image


def _warm_png_kernels() -> None:
    """The fused PNG pass once on a PNG of each layout."""
    rgb = np.array([[[0, 0, 7], [1, 2, 3]], [[0, 0, 7], [9, 9, 9]]], dtype=np.uint8)
    images = [Image.fromarray(rgb), Image.fromarray(np.dstack([rgb, rgb[..., :1]])), Image.fromarray(rgb).convert("LA"),
              Image.fromarray(rgb[..., 2]), Image.fromarray(rgb[..., 2] > 3), Image.fromarray(rgb).quantize(4)]
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pixels = open_mask(buffer.getvalue())
        for n in (2, 300):
            colours = [(0, 0, 7)] + [(i // 256, i % 256, 200) for i in range(n - 1)]
            analyse_mask(pixels, colours, 0, rle=True, png=True)
            analyse_mask(pixels, colours, 3, rle=True)
