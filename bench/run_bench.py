"""`framebeam run` end to end against a single-process Pillow decode-only loop over the same PNGs, in one run.

    .venv/bin/python bench/run_bench.py [--masks 1000] [--shape polygons|blobs] [--table 150 --present 20]
                                        [--shards 8] [--workers 0] [--malloc both|on|off] [--data DIR] [--repeat 1]

Writes --masks synthetic 1920x1080 RGB PNG masks (bench/synthetic_masks.py: Pillow-drawn random polygons
or smooth blobs, plus a thin seam of one undeclared colour, as real exports have) and one frame per mask in
--shards JSON Lines shards. Without --table each frame declares 8 colours as ROIs, all present; with
--table N the frames carry no mask ROIs and a --mask-labels table of N colours declares them, --present
of which each mask holds (a different draw per mask: N=150, 20 present is ADE20K-like). Then times, in
the same run so machine load hits both:

  (a) decode-only: one process, ``np.asarray(Image.open(path).convert("RGB"))`` for every mask;
  (b) ``framebeam run`` as a subprocess: process start, Beam start-up, parsing, validation, joining,
      reading + decoding each mask, statistics, COCO RLE crops, Parquet writes and publish.

The decode-only loop runs in its own process three times: glibc's default malloc (the plain loop,
the goal's baseline) and under both settings below; ratios are given to the plain loop and to the
fastest loop. ``--malloc`` times (b) with glibc's malloc thresholds set for the workers (MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_, see ../shared/NOTES.md), without them, or both. framebeam's workers set the same
values themselves (mallopt, transforms/tuning.py) unless the environment gives them, so "off" passes glibc's
initial values, fixed (see MALLOC_OFF); bench/tuning_bench.py compares against glibc's true default.
Goals: issue 3, run >= 1.5x decode-only on 2 cores (blobs); issue 14, >= 2.2x on 2,000 polygon masks with 8
colours and >= 1.8x on 1,000 masks with a 150-colour table (20 present, so 20 crops each).
--data DIR keeps the generated inputs between runs (one folder per shape/table choice).
"""
from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_masks import CITYSCAPES_8 as COLOURS, HEIGHT, WIDTH, blob_labels, class_table, polygon_labels, present_colours, rgb_png  # noqa: E402

LABELS = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign"]
UNDECLARED = (0, 0, 1)  # a seam colour nobody declared
# glibc keeps freed 1080p buffers instead of unmapping them (NOTES.md: ~5,000 page faults per mask otherwise).
MALLOC_ON = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "2147483648"}
# glibc's initial values, but fixed: setting them turns off glibc's dynamic threshold (which rises to
# the size of freed big blocks, up to 32 MiB). The workers set MALLOC_ON's values when these are unset
# (FRAMEBEAM_TUNING=mmap,trim leaves glibc's true default: bench/tuning_bench.py); the plain loop gets it.
MALLOC_OFF = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def synthetic_mask(seed: int, shape: str = "polygons", table: int = 0, present: int = 0) -> bytes:
    """One mask: 8 colours (COLOURS), or `present` colours of a `table`-colour class table; plus a seam."""
    n_labels = present if table else len(COLOURS)
    labels = (polygon_labels if shape == "polygons" else blob_labels)(seed, n_labels=n_labels)
    colours = present_colours(seed, class_table(table), present) if table else COLOURS
    return rgb_png(labels, colours, seam=UNDECLARED, seed=seed)


def _write_mask(args: tuple[Path, int, str, int, int]) -> int:
    path, seed, shape, table, present = args
    data = synthetic_mask(seed, shape, table, present)
    path.write_bytes(data)
    return len(data)


def frame(index: int, mask_path: Path, table: int = 0) -> dict:
    rois = [] if table else [
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


def write_inputs(directory: Path, n_masks: int, n_shards: int, shape: str = "polygons", table: int = 0, present: int = 0) -> list[Path]:
    """Masks under directory/masks, frames in directory/frames-*.jsonl; reused when already complete."""
    masks_dir = directory / "masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
    if table:
        names = {f"class {i:03d}": list(rgb) for i, rgb in enumerate(class_table(table))}
        (directory / "mask_labels.json").write_text(orjson.dumps(names).decode())
    paths = [masks_dir / f"{i:06d}.png" for i in range(n_masks)]
    missing = [(path, i, shape, table, present) for i, path in enumerate(paths) if not path.exists()]
    if missing:
        with multiprocessing.Pool(os.cpu_count()) as pool:
            pool.map(_write_mask, missing, chunksize=8)
    for old in directory.glob("frames-*.jsonl"):
        old.unlink()
    shards = [open(directory / f"frames-{k:03d}.jsonl", "wb") for k in range(n_shards)]
    for i, path in enumerate(paths):
        shards[i % n_shards].write(orjson.dumps(frame(i, path, table)) + b"\n")
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
    table = ["--mask-labels", str(directory / "mask_labels.json")] if (directory / "mask_labels.json").exists() else []
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", "--input", f"{directory}/frames-*.jsonl", "--output", str(output), "--quiet",
                    f"--direct_num_workers={workers}", *table], check=True, env=env)
    return time.perf_counter() - started


def check_output(output: Path, n_masks: int, present: int) -> None:
    """The run really decoded every mask: a present label_stats row and a crop per colour drawn, one undeclared warning per mask."""
    import duckdb

    db = duckdb.connect()
    stats = db.execute(f"select count(*), count(bbox_x0) from '{output}/label_stats/*.parquet'").fetchone()
    crops = db.execute(f"select count(*) from '{output}/crops/*.parquet'").fetchone()[0]
    undeclared = db.execute(f"select count(*) from '{output}/issues/*.parquet' where code = 'mask_undeclared_pixels'").fetchone()[0]
    expected = n_masks * present
    if stats[1] != expected or crops != expected or undeclared != n_masks:
        raise SystemExit(f"run output is wrong: {stats[1]} present label_stats rows and {crops} crops (want {expected}), "
                         f"{undeclared} undeclared-pixel findings (want {n_masks}); see {output}")
    print(f"checked: {stats[0]:,} label_stats rows ({stats[1]:,} present), {crops:,} crops, {undeclared:,} undeclared warnings")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", type=int, default=1000)
    ap.add_argument("--shape", choices=("polygons", "blobs"), default="polygons")
    ap.add_argument("--table", type=int, default=0, help="declare a class table of N colours with --mask-labels (0: 8 ROIs)")
    ap.add_argument("--present", type=int, default=20, help="with --table: colours drawn in each mask")
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
        if args.data:
            data = args.data / f"{args.shape}-{args.table or 8}-{args.present if args.table else 8}"
        paths = write_inputs(data, args.masks, args.shards, args.shape, args.table, args.present)
        present = args.present if args.table else len(COLOURS)
        size = sum(p.stat().st_size for p in paths)
        print(f"{len(paths):,} {args.shape} masks {WIDTH}x{HEIGHT}, {args.table or len(COLOURS)} colours declared, {present} present, "
              f"mean {size / len(paths) / 1e3:.0f} KB, "
              f"{args.shards} shards (inputs ready in {time.perf_counter() - started:.0f} s)")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, cores: {os.cpu_count()}")
        variants = {"on": [("1 GiB/2 GiB thresholds", MALLOC_ON)], "off": [("fixed 128 KiB thresholds", MALLOC_OFF)]}
        variants["both"] = variants["on"] + variants["off"]
        for _ in range(args.repeat):
            # The plain loop is the goal's baseline; the tuned loop (same malloc settings as the run) is the
            # stricter one, and the ratios are against it.
            decode_times = {name: decode_only_in_subprocess(data, len(paths), env)
                            for name, env in [("glibc default malloc", {})] + variants[args.malloc]}
            for name, t_decode in decode_times.items():
                print(f"decode-only loop, Pillow, 1 core ({name:24}): {t_decode:6.2f} s {len(paths) / t_decode:7.1f} masks/s")
            rate_decode = len(paths) / min(decode_times.values())
            rate_plain = len(paths) / decode_times["glibc default malloc"]
            for name, env in variants[args.malloc]:
                t_run = framebeam_run(data, tmp / "out", args.workers, env)
                rate_run = len(paths) / t_run
                print(f"framebeam run, {args.workers or 'all'} cores ({name:24}): {t_run:6.2f} s {rate_run:7.1f} masks/s  "
                      f"ratio to the plain loop {rate_run / rate_plain:.2f}, to the fastest loop {rate_run / rate_decode:.2f}")
            check_output(tmp / "out", len(paths), present)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
