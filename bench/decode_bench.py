"""Per-mask cost of each decoding and statistics step, against Pillow-decode-only measured in the same run.

    .venv/bin/python bench/decode_bench.py [--masks 12] [--repeat 3] [--camvid DIR]

Synthetic: 1920x1080 RGB PNGs with 8 colours drawn as overlapping ellipses and rectangles (real
masks are blobs, which compress and branch very differently from noise). Real: the CamVid masks
in ../shared/data/real-masks/camvid (skipped if absent). Times are the median over masks of the
best of --repeat runs per mask, in milliseconds.
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
from transforms.decoding import _pack_rgba, decode_mask_bytes  # noqa: E402
from transforms.statistics import analyse_mask, crop_rle, mask_statistics  # noqa: E402

SHARED = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SYNTHETIC_COLOURS = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
]


def synthetic_mask(seed: int, width: int = 1920, height: int = 1080) -> bytes:
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.uint8)
    ys, xs = np.ogrid[:height, :width]
    for _ in range(40):
        label = int(rng.integers(1, len(SYNTHETIC_COLOURS)))
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        if rng.random() < 0.5:
            rx, ry = rng.integers(20, 400), rng.integers(20, 300)
            labels[((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1] = label
        else:
            labels[max(cy - 100, 0) : cy + int(rng.integers(10, 200)), max(cx - 150, 0) : cx + int(rng.integers(10, 300))] = label
    rgb = np.array(SYNTHETIC_COLOURS, dtype=np.uint8)[labels]
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def best_ms(step: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def measure(masks: list[bytes], colours: list[tuple[int, int, int]], repeat: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {}

    def record(name: str, step: Callable[[], object]) -> None:
        rows.setdefault(name, []).append(best_ms(step, repeat))

    for data in masks:
        decoded = decode_mask_bytes(data)
        packed = decoded.packed
        stats = mask_statistics(packed, colours)
        rgba = pyspng.load(data, "RGBA")
        record("pillow decode (baseline)", lambda: Image.open(io.BytesIO(data)).load())
        record("pillow convert('RGB') + asarray", lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        record("pyspng decode RGBA", lambda: pyspng.load(data, "RGBA"))
        record("pack RGBA -> uint32", lambda: _pack_rgba(rgba.copy()))
        record("decode_mask_bytes (checks+decode+pack)", lambda: decode_mask_bytes(data))
        record("mask_statistics", lambda: mask_statistics(packed, colours))
        present = [c for c in stats.colours if c.bbox is not None]
        record("crop_rle x present colours (one-off)", lambda: [crop_rle(packed, c.rgb, c.bbox) for c in present])
        record("analyse_mask stats+rle", lambda: analyse_mask(packed, colours, rle=True))
        record("analyse_mask stats+rle+png", lambda: analyse_mask(packed, colours, rle=True, png=True))
        record("analyse_mask stats, tolerance=3", lambda: analyse_mask(packed, colours, 3))
        record(
            "decode + stats + rle (per mask total)",
            lambda: analyse_mask(decode_mask_bytes(data).packed, colours, rle=True),
        )
    return {name: float(np.median(times)) for name, times in rows.items()}


def print_table(title: str, results: dict[str, float]) -> None:
    baseline = results["pillow decode (baseline)"]
    print(f"\n{title}")
    print(f"{'step':44} {'ms/mask':>9} {'x pillow decode':>16}")
    for name, ms in results.items():
        print(f"{name:44} {ms:9.2f} {ms / baseline:16.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=12, help="synthetic masks to generate")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mask; the best one counts")
    parser.add_argument("--camvid", type=Path, default=SHARED / "data" / "real-masks" / "camvid")
    args = parser.parse_args()

    synthetic = [synthetic_mask(seed) for seed in range(args.masks)]
    print(f"synthetic: {len(synthetic)} masks 1920x1080, 8 colours, mean {np.mean([len(d) for d in synthetic]) / 1e3:.0f} KB")
    print_table("synthetic 1920x1080, 8 colours", measure(synthetic, SYNTHETIC_COLOURS, args.repeat))

    if args.camvid.is_dir():
        files = sorted(args.camvid.glob("*.png"))
        colours = [tuple(v) for v in json.loads((args.camvid / "colors.json").read_text()).values()]
        camvid = [path.read_bytes() for path in files]
        print(f"\ncamvid: {len(camvid)} masks 960x720, {len(colours)} declared colours")
        print_table("camvid 960x720, 32 colours", measure(camvid, colours, args.repeat))
    else:
        print(f"\n{args.camvid} absent: real-mask rows skipped")


if __name__ == "__main__":
    main()
