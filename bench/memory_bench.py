"""Peak memory (RSS of the whole process tree) of `framebeam convert` and `framebeam run` at two sizes.

    .venv/bin/python bench/memory_bench.py [--frames 20000 200000] [--masks 200 2000] [--workers 0]
    .venv/bin/python bench/memory_bench.py --skip-convert --masks 500 2000 --mask-size 4000x3000

Memory is bounded when the peak does not grow with the input: the goal (issue 7) is a peak within
1.5x from 20,000 to 200,000 frames (convert) and from 200 to 2,000 masks (run). The CLI runs as a
subprocess; psutil samples the RSS of it and every process it starts (Beam's workers) every 50 ms,
and the peak of their sum is reported. Frames are bench/convert_bench.py's synthetic frames; masks
are small synthetic PNGs (640x480, 4 colours drawn as rectangles), one per frame, each a distinct file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_bench import write_frames  # noqa: E402

MASK_COLOURS = [(128, 64, 128), (220, 20, 60), (0, 0, 142), (70, 70, 70)]
MASK_LABELS = ["road", "person", "car", "building"]


def tree_rss(root: psutil.Process) -> int:
    """RSS of a process and all its descendants, in bytes (processes that vanish mid-sample count 0)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:  # a child ended while being listed
        procs = [root]
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: list[str], interval_s: float = 0.05) -> tuple[float, int]:
    """Run a command to completion; return (seconds, peak RSS of its process tree in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(root))
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = proc.wait()
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed with status {status}")
    return time.perf_counter() - start, peak


def write_mask_frames(directory: Path, n: int, size: tuple[int, int] = (640, 480), distinct: int = 16) -> None:
    """n frames, each with one mask file of its own (a distinct path, so each is read and decoded) whose
    4 colours its ROIs declare (schema join). Small masks: rectangles; big ones (over 1 Mpx): Pillow-drawn
    random polygons spanning the image, whose crops (RLE) are large, as real masks' are. ``distinct``
    images are drawn and hard-linked to the n paths (drawing 12 Mpx PNGs dominates otherwise)."""
    from PIL import ImageDraw

    width, height = size
    masks = directory / "masks"
    masks.mkdir(parents=True)
    rng = np.random.default_rng(7)
    images = []
    for k in range(min(distinct, n)):
        if width * height <= 1_000_000:
            pixels = np.zeros((height, width, 3), np.uint8)
            for colour in MASK_COLOURS:
                x0, y0 = int(rng.integers(0, width - 80)), int(rng.integers(0, height - 80))
                pixels[y0:y0 + int(rng.integers(20, 80)), x0:x0 + int(rng.integers(20, 80))] = colour
            image = Image.fromarray(pixels)
        else:
            image = Image.new("RGB", (width, height))
            draw = ImageDraw.Draw(image)
            for colour in MASK_COLOURS:
                cx, cy = rng.integers(0, width), rng.integers(0, height)
                points = [(int(np.clip(cx + rng.normal(0, width / 4), 0, width - 1)), int(np.clip(cy + rng.normal(0, height / 4), 0, height - 1)))
                          for _ in range(12)]
                draw.polygon(points, fill=colour)
        path = masks / f"image-{k:03d}.png"
        image.save(path, compress_level=1)
        images.append(path)
    with open(directory / "frames.jsonl", "wb") as f:
        for i in range(n):
            path = masks / f"{i:06d}.png"
            os.link(images[i % len(images)], path)
            rois = [{"label": [label], "sources": ["cam0"], "mask": {"id": "00", "value": list(colour)}}
                    for label, colour in zip(MASK_LABELS, MASK_COLOURS)]
            frame = {"id": f"frame-{i:06d}", "sources": [{"id": "cam0", "uri": f"images/{i:06d}.jpg", "width": width, "height": height,
                                                        "masks": [{"id": "00", "uri": str(path)}]}], "rois": rois}
            f.write(orjson.dumps(frame) + b"\n")


def framebeam(command: str, inputs: str, output: Path, workers: int) -> list[str]:
    exe = str(Path(sys.executable).with_name("framebeam"))
    return [exe, command, "--input", inputs, "--output", str(output), "--quiet", f"--direct_num_workers={workers}"]


def report(what: str, sizes: list[int], peaks: list[int], seconds: list[float]) -> None:
    for size, peak, s in zip(sizes, peaks, seconds):
        print(f"{what:<8} {size:>9,}: peak RSS {peak / 2**20:8.1f} MiB   {s:6.1f} s")
    ratio = peaks[-1] / peaks[0]
    print(f"{what:<8} ratio {sizes[-1]:,}/{sizes[0]:,}: {ratio:.2f}x  (goal <= 1.5x): {'ok' if ratio <= 1.5 else 'OVER'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs=2, default=[20_000, 200_000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--masks", type=int, nargs=2, default=[200, 2_000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--mask-size", default="640x480", metavar="WxH",
                    help="mask size; 4000x3000 draws random polygons (issue 12: peak within 1.3x from 500 to 2,000 masks)")
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--skip-convert", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-membench-"))
    try:
        if not args.skip_convert:
            peaks, seconds = [], []
            for n in args.frames:
                data = tmp / f"frames-{n}"
                data.mkdir()
                write_frames(data, n, shards=8)
                s, peak = run_measured(framebeam("convert", f"{data}/*.jsonl", tmp / f"out-{n}", args.workers))
                peaks.append(peak)
                seconds.append(s)
                shutil.rmtree(data)
            report("convert", args.frames, peaks, seconds)
        if not args.skip_run:
            peaks, seconds = [], []
            for n in args.masks:
                data = tmp / f"masks-{n}"
                write_mask_frames(data, n, tuple(int(v) for v in args.mask_size.split("x")))
                s, peak = run_measured(framebeam("run", f"{data}/frames.jsonl", tmp / f"run-{n}", args.workers))
                peaks.append(peak)
                seconds.append(s)
            report("run", args.masks, peaks, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
