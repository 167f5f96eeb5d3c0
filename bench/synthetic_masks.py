"""Synthetic 8-bit RGB mask PNGs for the benches: smooth blobs and Pillow-drawn random polygons.

Blobs (ellipses and rectangles) compress well and decode cheaply; polygons have many slanted edges, so
libpng picks Sub/Paeth filters on most rows and every statistic meets more colour changes: real
annotation tools draw polygons. Both are saved by Pillow, as exporters do.

    labels = polygon_labels(seed, n_labels=8)            # (h, w) uint8 label indices, 0 = background
    png = rgb_png(labels, colours)                       # colours[i] paints label i
    table = class_table(150)                             # 150 distinct colours (ADE20K-sized)
    labels = polygon_labels(seed, n_labels=20)           # then paint with 20 of the 150: present_colours()
"""
from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 1920, 1080
CITYSCAPES_8 = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
]


def blob_labels(seed: int, n_labels: int = 8, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """40 ellipses and rectangles of labels 1..n-1 over label 0."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.uint8)
    for _ in range(40):
        label = int(rng.integers(1, n_labels))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            rx, ry = int(rng.integers(20, 400)), int(rng.integers(20, 300))
            x0, x1, y0, y1 = max(cx - rx, 0), min(cx + rx + 1, width), max(cy - ry, 0), min(cy + ry + 1, height)
            ys, xs = np.ogrid[y0:y1, x0:x1]
            labels[y0:y1, x0:x1][((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1] = label
        else:
            labels[max(cy - 100, 0) : cy + int(rng.integers(10, 200)), max(cx - 150, 0) : cx + int(rng.integers(10, 300))] = label
    return labels


def polygon_labels(seed: int, n_labels: int = 8, width: int = WIDTH, height: int = HEIGHT, polygons: int = 60) -> np.ndarray:
    """Random polygons (3-12 vertices, 20-600 px across) of labels 1..n-1 over label 0, drawn by Pillow.

    All n labels are present: one hidden under later polygons gets a small square on top."""
    rng = random.Random(seed)
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    order = list(range(1, n_labels)) + [rng.randrange(1, n_labels) for _ in range(max(0, polygons - n_labels + 1))]
    rng.shuffle(order)
    for label in order:
        cx, cy = rng.randrange(width), rng.randrange(height)
        radius = rng.uniform(10, 300)
        vertices = []
        for _ in range(rng.randint(3, 12)):
            angle = rng.uniform(0, 2 * np.pi)
            r = radius * rng.uniform(0.3, 1.0)
            vertices.append((angle, cx + r * np.cos(angle), cy + r * np.sin(angle)))
        vertices.sort()  # by angle: a star-shaped polygon, edges at every slope
        draw.polygon([(x, y) for _, x, y in vertices], fill=label)
    labels = np.asarray(image).copy()
    missing = sorted(set(range(n_labels)) - set(np.unique(labels).tolist()))
    for k, label in enumerate(missing):  # covered by later polygons: a small square on top, apart from the others
        x, y = 40 + 60 * k, 40 + 30 * k
        labels[y : y + 24, x : x + 24] = label
    return labels


def class_table(n: int, seed: int = 150) -> list[tuple[int, int, int]]:
    """n distinct colours, none of them the undeclared seam colour (0, 0, 1)."""
    rng = random.Random(seed)
    seen: dict[tuple[int, int, int], None] = {}
    while len(seen) < n:
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if colour != (0, 0, 1):
            seen[colour] = None
    return list(seen)


def present_colours(seed: int, table: list[tuple[int, int, int]], k: int) -> list[tuple[int, int, int]]:
    """k colours of the table for one mask (a different draw per mask)."""
    return random.Random(seed * 7919 + 1).sample(table, k)


def rgb_png(labels: np.ndarray, colours: list[tuple[int, int, int]], seam: tuple[int, int, int] | None = None,
            seed: int = 0) -> bytes:
    """labels painted with colours (label i -> colours[i]) as an RGB PNG, Pillow's encoder.

    seam: a 200-pixel run of one undeclared colour on a random row, as real exports have."""
    palette = np.array(list(colours) + ([seam] if seam else []), dtype=np.uint8)
    labels = labels.copy() if seam else labels
    if seam:
        rng = np.random.default_rng(seed)
        row = int(rng.integers(0, labels.shape[0]))
        labels[row, int(rng.integers(0, labels.shape[1] // 2)) :][:200] = len(colours)
    buffer = io.BytesIO()
    Image.fromarray(palette[labels]).save(buffer, format="PNG")
    return buffer.getvalue()
