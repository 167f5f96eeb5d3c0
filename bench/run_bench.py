"""`framebeam run` end to end against a single-process Pillow decode-only loop over the same PNGs, in one run.

    .venv/bin/python bench/run_bench.py [--masks 1000] [--shards 8] [--workers 0] [--malloc both|on|off]
                                        [--data DIR] [--repeat 1]

Writes --masks synthetic 1920x1080 RGB PNG masks (8 declared colours drawn as overlapping blobs, plus a
thin seam of one undeclared colour, as real exports have) and one frame per mask in --shards JSON Lines
shards, each frame declaring the 8 colours as ROIs. Then times, in the same run so machine load hits both:

  (a) decode-only: one process, ``np.asarray(Image.open(path).convert("RGB"))`` for every mask;
  (b) ``framebeam run`` as a subprocess: process start, Beam start-up, parsing, validation, joining,
      reading + decoding each mask, statistics, COCO RLE crops, Parquet writes and publish.

The decode-only loop runs in its own process three times: glibc's default malloc (the plain loop,
the goal's baseline) and under both settings below; ratios are given to the plain loop and to the
fastest loop. ``--malloc`` times (b) with glibc's malloc thresholds set for the workers (MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_, see ../shared/NOTES.md), without them, or both. The CLI sets them itself when
they are unset, so "off" passes glibc's initial values, fixed (see MALLOC_OFF).
Goal (issue 3): run >= 1.5x decode-only on 2 cores. --data DIR keeps the generated inputs between runs.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

WIDTH, HEIGHT = 1920, 1080
COLOURS = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
]
LABELS = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign"]
UNDECLARED = (0, 0, 1)  # a seam colour nobody declared
# glibc keeps freed 1080p buffers instead of unmapping them (NOTES.md: ~5,000 page faults per mask otherwise).
MALLOC_ON = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "2147483648"}
# glibc's initial values, but fixed: setting them turns off glibc's dynamic threshold (which rises to
# the size of freed big blocks, up to 32 MiB). The CLI fills in MALLOC_ON when they are unset, so a
# run with glibc's true default is not possible through the CLI; the plain baseline loop gets it.
MALLOC_OFF = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def synthetic_mask(seed: int) -> bytes:
    """A blob-shaped 8-colour mask: ellipses and rectangles over a road-coloured background."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for _ in range(40):
        label = int(rng.integers(1, len(COLOURS)))
        cx, cy = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        if rng.random() < 0.5:
            rx, ry = int(rng.integers(20, 400)), int(rng.integers(20, 300))
            x0, x1, y0, y1 = max(cx - rx, 0), min(cx + rx + 1, WIDTH), max(cy - ry, 0), min(cy + ry + 1, HEIGHT)
            ys, xs = np.ogrid[y0:y1, x0:x1]  # only the ellipse's box, not the whole image
            labels[y0:y1, x0:x1][((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1] = label
        else:
            labels[max(cy - 100, 0) : cy + int(rng.integers(10, 200)), max(cx - 150, 0) : cx + int(rng.integers(10, 300))] = label
    palette = np.array(COLOURS + [UNDECLARED], dtype=np.uint8)
    seam_row = int(rng.integers(0, HEIGHT))
    labels[seam_row, int(rng.integers(0, WIDTH // 2)) :][:200] = len(COLOURS)
    buffer = io.BytesIO()
    Image.fromarray(palette[labels]).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_mask(args: tuple[Path, int]) -> int:
    path, seed = args
    data = synthetic_mask(seed)
    path.write_bytes(data)
    return len(data)


def frame(index: int, mask_path: Path) -> dict:
    rois = [
        {"label": [label], "sources": ["cam"], "confidence": 1.0, "meta": {"_type": "mask"},
         "mask": {"id": "00", "value": list(rgb)}}
        for label, rgb in zip(LABELS, COLOURS)
    ]
    return {
        "id": f"{index:032x}", "context_id": f"seq{index // 100}", "timestamp": 1_700_000_000_000 + index * 33,
        "sources": [{"id": "cam", "uri": f"s3://bucket/images/{index:08d}.jpg", "content_type": "image/jpeg",
                     "width": WIDTH, "height": HEIGHT, "timestamp": 0,
                     "masks": [{"id": "00", "uri": f"masks/{mask_path.name}", "timestamp": 0}]}],
        "rois": rois,
    }


def write_inputs(directory: Path, n_masks: int, n_shards: int) -> list[Path]:
    """Masks under directory/masks, frames in directory/frames-*.jsonl; reused when already complete."""
    masks_dir = directory / "masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
    paths = [masks_dir / f"{i:06d}.png" for i in range(n_masks)]
    missing = [(path, i) for i, path in enumerate(paths) if not path.exists()]
    if missing:
        with multiprocessing.Pool(os.cpu_count()) as pool:
            pool.map(_write_mask, missing, chunksize=8)
    for old in directory.glob("frames-*.jsonl"):
        old.unlink()
    shards = [open(directory / f"frames-{k:03d}.jsonl", "wb") for k in range(n_shards)]
    for i, path in enumerate(paths):
        shards[i % n_shards].write(orjson.dumps(frame(i, path)) + b"\n")
    for shard in shards:
        shard.close()
    return paths


def decode_only(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            np.asarray(image.convert("RGB"))
    return time.perf_counter() - started


def decode_only_in_subprocess(directory: Path, n_masks: int, malloc_env: dict[str, str]) -> float:
    """decode_only in a fresh process: glibc reads its malloc settings only at process start."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, __file__, "--decode-only", str(directory), "--masks", str(n_masks)],
                          check=True, env={**env, **malloc_env}, capture_output=True, text=True)
    return float(done.stdout)


def framebeam_run(directory: Path, output: Path, workers: int, malloc_env: dict[str, str]) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    env = {**os.environ, **malloc_env}
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", "--input", f"{directory}/frames-*.jsonl", "--output", str(output), "--quiet",
                    f"--direct_num_workers={workers}"], check=True, env=env)
    return time.perf_counter() - started


def check_output(output: Path, n_masks: int) -> None:
    """The run really decoded every mask: 8 label_stats rows and one undeclared warning per mask."""
    import duckdb

    db = duckdb.connect()
    stats = db.execute(f"select count(*), count(bbox_x0) from '{output}/label_stats/*.parquet'").fetchone()
    crops = db.execute(f"select count(*) from '{output}/crops/*.parquet'").fetchone()[0]
    undeclared = db.execute(f"select count(*) from '{output}/issues/*.parquet' where code = 'mask_undeclared_pixels'").fetchone()[0]
    expected = n_masks * len(COLOURS)
    if stats[0] != expected or undeclared != n_masks:
        raise SystemExit(f"run output is wrong: {stats[0]} label_stats rows (want {expected}), "
                         f"{undeclared} undeclared-pixel findings (want {n_masks}); see {output}")
    print(f"checked: {stats[0]:,} label_stats rows ({stats[1]:,} present), {crops:,} crops, {undeclared:,} undeclared warnings")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="Beam workers, 0 = all cores")
    ap.add_argument("--malloc", choices=("both", "on", "off"), default="both")
    ap.add_argument("--data", type=Path, help="keep generated inputs here (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--decode-only", type=Path, metavar="DIR", help=argparse.SUPPRESS)  # the baseline's own process
    args = ap.parse_args()
    if args.decode_only:
        print(decode_only([args.decode_only / "masks" / f"{i:06d}.png" for i in range(args.masks)]))
        return

    tmp = Path(tempfile.mkdtemp(prefix="framebeam-run-bench-"))
    data = args.data or tmp / "in"
    try:
        started = time.perf_counter()
        paths = write_inputs(data, args.masks, args.shards)
        size = sum(p.stat().st_size for p in paths)
        print(f"{len(paths):,} masks {WIDTH}x{HEIGHT}, {len(COLOURS)} colours, mean {size / len(paths) / 1e3:.0f} KB, "
              f"{args.shards} shards (inputs ready in {time.perf_counter() - started:.0f} s)")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, cores: {os.cpu_count()}")
        variants = {"on": [("1 GiB/2 GiB thresholds", MALLOC_ON)], "off": [("fixed 128 KiB thresholds", MALLOC_OFF)]}
        variants["both"] = variants["on"] + variants["off"]
        for _ in range(args.repeat):
            # The plain loop is the goal's baseline; the tuned loop (same malloc settings as the run) is the
            # stricter one, and the ratios are against it.
            decode_times = {name: decode_only_in_subprocess(data, len(paths), env)
                            for name, env in [("glibc default malloc", {})] + variants["both"]}
            for name, t_decode in decode_times.items():
                print(f"decode-only loop, Pillow, 1 core ({name:24}): {t_decode:6.2f} s {len(paths) / t_decode:7.1f} masks/s")
            rate_decode = len(paths) / min(decode_times.values())
            rate_plain = len(paths) / decode_times["glibc default malloc"]
            for name, env in variants[args.malloc]:
                t_run = framebeam_run(data, tmp / "out", args.workers, env)
                rate_run = len(paths) / t_run
                print(f"framebeam run, {args.workers or 'all'} cores ({name:24}): {t_run:6.2f} s {rate_run:7.1f} masks/s  "
                      f"ratio to the plain loop {rate_run / rate_plain:.2f}, to the fastest loop {rate_run / rate_decode:.2f} (goal >= 1.5)")
            check_output(tmp / "out", len(paths))
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
