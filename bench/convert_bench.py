"""Convert throughput against a single-process orjson parse-only loop over the same lines, in one run.

    .venv/bin/python bench/convert_bench.py [--frames 100000] [--shards 8] [--workers 0]

Writes realistic synthetic frames (1-3 sources, 5-30 ROIs with polys and mask colours), then times
(a) a plain `for line in f: orjson.loads(line)` loop on one core and (b) `framebeam convert` end to end
(process start, Beam start-up, parsing, validation, joining, Parquet writing, publish). Prints both
rates and the ratio convert/parse. Goal (issue 2): >= 0.7 on 2 cores.
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

LABELS = ["car", "person", "road", "building", "sky", "tree", "bicycle", "truck", "sign", "pole"]


def synthetic_frame(rng: random.Random, i: int) -> dict:
    sources = []
    for s in range(rng.randint(1, 3)):
        sources.append({
            "id": f"cam{s}", "uri": f"s3://bucket/images/{i:08d}_{s}.jpg", "content_type": "image/jpeg",
            "width": 1920, "height": 1080, "timestamp": 0,
            "masks": [{"id": "00", "uri": f"s3://bucket/masks/{i:08d}_{s}.png", "timestamp": 0}],
            "meta": {"camera": f"cam{s}", "exposure": rng.random()},
        })
    rois = []
    for r in range(rng.randint(5, 30)):
        x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
        w, h = rng.uniform(5, 120), rng.uniform(5, 80)
        src = f"cam{rng.randrange(len(sources))}"
        roi = {"label": [rng.choice(LABELS)], "sources": [src], "confidence": 1.0,
               "poly": [x, y, x + w, y, x + w, y + h, x, y + h], "meta": {"_type": "b2d"}}
        if r % 3 == 0:
            roi["mask"] = {"id": "00", "value": [rng.randrange(256), rng.randrange(256), rng.randrange(256)]}
            roi["meta"] = {"_type": "mask"}
        rois.append(roi)
    return {"id": f"{i:032x}", "context_id": f"seq{i // 100}", "timestamp": 1_700_000_000_000 + i * 33,
            "meta": {"weather": rng.choice(["sun", "rain"]), "velocity": rng.randint(0, 120)},
            "sources": sources, "rois": rois}


def write_frames(directory: Path, n: int, shards: int) -> int:
    rng = random.Random(7)
    total = 0
    files = [open(directory / f"part-{k:04d}.jsonl", "wb") for k in range(shards)]
    for i in range(n):
        line = orjson.dumps(synthetic_frame(rng, i)) + b"\n"
        files[i % shards].write(line)
        total += len(line)
    for f in files:
        f.close()
    return total


def parse_only(directory: Path) -> float:
    start = time.perf_counter()
    n = 0
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)
                n += 1
    return time.perf_counter() - start


def convert(directory: Path, output: Path, workers: int) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    start = time.perf_counter()
    subprocess.run([str(framebeam), "convert", "--input", f"{directory}/*.jsonl", "--output", str(output), "--quiet",
                    f"--direct_num_workers={workers}"], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-bench-"))
    try:
        data = tmp / "in"
        data.mkdir()
        size = write_frames(data, args.frames, args.shards)
        print(f"{args.frames:,} frames, {size / 1e6:.1f} MB in {args.shards} shards")
        one = tmp / "one"
        one.mkdir()
        write_frames(one, 1, 1)
        for _ in range(args.repeat):
            t_parse = parse_only(data)
            t_convert = convert(data, tmp / "out", args.workers)
            t_fixed = convert(one, tmp / "out-one", args.workers)  # start-up, graph, workers, publish: no data
            print(f"parse-only loop (1 core): {t_parse:6.2f} s  {args.frames / t_parse:10,.0f} records/s")
            print(f"framebeam convert       : {t_convert:6.2f} s  {args.frames / t_convert:10,.0f} records/s")
            print(f"ratio convert/parse     : {t_parse / t_convert:.2f}  (goal >= 0.7)")
            print(f"  fixed cost (1 frame)  : {t_fixed:6.2f} s  -> the goal needs convert <= {t_parse / 0.7:.2f} s in all")
            steady = max(t_convert - t_fixed, 1e-9)
            print(f"  steady state          : {args.frames / steady:10,.0f} records/s, ratio {t_parse / steady:.2f} (start-up excluded)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
