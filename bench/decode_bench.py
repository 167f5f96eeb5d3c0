"""Per-mask cost of the mask kernel against pyspng's decode-only time for the same PNG, one core, same run.

    .venv/bin/python bench/decode_bench.py [--masks 12] [--repeat 5] [--sets blobs,polygons,table150,camvid]

Sets (all RGB PNGs saved by Pillow):
  blobs     1920x1080, 8 colours declared and present, smooth ellipses/rectangles
  polygons  1920x1080, 8 colours declared and present, random polygons (bench/synthetic_masks.py)
  table150  1920x1080 polygons of 20 colours out of a declared 150-colour table
  camvid    the real CamVid masks (960x720) with their 32-colour table (../shared/data/real-masks)

For each mask, each step runs --repeat times interleaved with the others (so load hits all alike) and
its best time counts; the table gives the median over masks of each step's time and of its ratio to
pyspng's decode on that mask. Goals (issue 14): decode+stats <= 0.9x, decode+stats+RLE <= 1.2x pyspng.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyspng
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_masks import CITYSCAPES_8, blob_labels, class_table, polygon_labels, present_colours, rgb_png  # noqa: E402
from transforms.decoding import decode_mask_bytes, open_mask  # noqa: E402
from transforms.statistics import analyse_mask  # noqa: E402

SHARED = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
BASELINE = "pyspng decode RGBA (baseline)"


def make_set(name: str, n: int) -> tuple[list[bytes], list[list[tuple[int, int, int]]]]:
    """(PNG bytes, declared colours) per mask."""
    if name == "blobs":
        return [rgb_png(blob_labels(seed), CITYSCAPES_8) for seed in range(n)], [CITYSCAPES_8] * n
    if name == "polygons":
        return [rgb_png(polygon_labels(seed), CITYSCAPES_8) for seed in range(n)], [CITYSCAPES_8] * n
    if name == "table150":
        table = class_table(150)
        masks = [rgb_png(polygon_labels(seed, n_labels=20), present_colours(seed, table, 20)) for seed in range(n)]
        return masks, [table] * n
    if name == "camvid":
        folder = SHARED / "data" / "real-masks" / "camvid"
        colours = [tuple(v) for v in json.loads((folder / "colors.json").read_text()).values()]
        masks = [p.read_bytes() for p in sorted(folder.glob("*.png"))[: max(n, 0) or None]]
        return masks, [colours] * len(masks)
    raise SystemExit(f"unknown set {name!r}")


def steps(data: bytes, colours) -> dict[str, Callable[[], object]]:
    return {
        "Pillow decode": lambda: Image.open(io.BytesIO(data)).load(),
        BASELINE: lambda: pyspng.load(data, "RGBA"),
        "kernel: open_mask (chunks, CRCs, inflate)": lambda: open_mask(data),
        "kernel: decode + stats": lambda: analyse_mask(open_mask(data), colours),
        "kernel: decode + stats + RLE crops": lambda: analyse_mask(open_mask(data), colours, rle=True),
        "kernel: decode + stats + RLE + PNG crops": lambda: analyse_mask(open_mask(data), colours, rle=True, png=True),
        "fallback: pyspng + packed pass + RLE": lambda: analyse_mask(decode_mask_bytes(data).packed, colours, rle=True),
    }


def measure(masks: list[bytes], tables: list, repeat: int) -> tuple[dict[str, float], dict[str, float], float]:
    times: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    started = time.perf_counter()
    for data, colours in zip(masks, tables):
        analyse_mask(open_mask(data), colours, rle=True)  # the kernel's code loaded before timing
        named = steps(data, colours)
        best = {name: float("inf") for name in named}
        for _ in range(repeat):
            for name, step in named.items():
                t0 = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - t0)
        for name, seconds in best.items():
            times.setdefault(name, []).append(seconds * 1000)
            ratios.setdefault(name, []).append(seconds / best[BASELINE])
    return ({k: float(np.median(v)) for k, v in times.items()}, {k: float(np.median(v)) for k, v in ratios.items()},
            time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", type=int, default=12, help="synthetic masks per set (camvid: first N, 0 = all 100)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sets", default="blobs,polygons,table150,camvid")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name in args.sets.split(","):
        masks, tables = make_set(name, args.masks if name != "camvid" else args.masks * 2)
        times, ratios, took = measure(masks, tables, args.repeat)
        print(f"\n{name}: {len(masks)} masks, {len(tables[0])} colours declared, mean {np.mean([len(m) for m in masks]) / 1e3:.0f} KB "
              f"({took:.0f} s, load {os.getloadavg()[0]:.2f})")
        print(f"{'step':44} {'ms/mask':>8} {'x pyspng':>9}")
        for step, ms in times.items():
            print(f"{step:44} {ms:8.2f} {ratios[step]:9.2f}")


if __name__ == "__main__":
    main()
