"""What each worker setting of transforms/tuning.py buys: peak RSS and time, with and without, in one run.

    .venv/bin/python bench/tuning_bench.py [--masks 600] [--frames 60000] [--repeat 2] [--workers 0] [--data DIR]
    .venv/bin/python bench/tuning_bench.py --skip-convert --masks 120 --mask-size 4000x3000

Runs the CLI as a subprocess (both cores by default) on
  * run:     bench/run_bench.py's synthetic 1920x1080 PNG masks (Pillow-drawn random polygons, 8 colours),
             or with --mask-size bench/memory_bench.py's big masks (4 Pillow-drawn random polygons spanning the image),
  * convert: bench/convert_bench.py's synthetic frames,
under FRAMEBEAM_TUNING variants (transforms/tuning.py): every setting (the default), each one left
alone, and all off; plus a capped malloc arena count, which framebeam does not set. Variants alternate
within each repeat so machine load hits them alike. Per run: wall time, CPU time of the whole process
tree (user + system of the CLI and its worker processes: less sensitive to other load than the wall
time) and the peak RSS of the tree (psutil, sampled every 50 ms). Outputs are checked (run_bench).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_bench import write_frames  # noqa: E402
from memory_bench import tree_rss, write_mask_frames  # noqa: E402
from run_bench import check_output, write_inputs  # noqa: E402

RUN_VARIANTS = {
    "all settings (default)": "",
    "without gc threshold": "gc",
    "without mmap threshold": "mmap",
    "without trim threshold": "trim",
    "arena max 2 (not a default)": "arena=2",
    "none (FRAMEBEAM_TUNING=off)": "off",
}
CONVERT_VARIANTS = {  # a convert does not decode masks: malloc is left alone anyway
    "all settings (default)": "",
    "none (FRAMEBEAM_TUNING=off)": "off",
}


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the process tree, peak RSS bytes of the tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    root, peak, done = psutil.Process(proc.pid), 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(root))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = proc.wait()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if status:
        raise SystemExit(f"{' '.join(cmd[:2])} failed with status {status}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), peak


def framebeam(command: str, inputs: str, output: Path, workers: int, extra: list[str] = ()) -> list[str]:
    exe = str(Path(sys.executable).with_name("framebeam"))
    return [exe, command, "--input", inputs, "--output", str(output), "--quiet", f"--direct_num_workers={workers}", *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", type=int, default=600)
    ap.add_argument("--frames", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="Beam workers, 0 = all cores")
    ap.add_argument("--data", type=Path, help="keep generated inputs here between runs")
    ap.add_argument("--mask-size", metavar="WxH", help="big masks instead of 1920x1080 ones (bench/memory_bench.py's)")
    ap.add_argument("--skip-convert", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-tuning-bench-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "FRAMEBEAM_TUNING"}
    try:
        jobs = []
        if not args.skip_run and args.mask_size:
            masks = (args.data or tmp) / f"masks-{args.masks}-{args.mask_size}"
            if not masks.is_dir():
                write_mask_frames(masks, args.masks, tuple(int(v) for v in args.mask_size.split("x")))
            jobs.append(("run", RUN_VARIANTS, framebeam("run", f"{masks}/frames.jsonl", tmp / "out", args.workers)))
        elif not args.skip_run:
            masks = (args.data or tmp) / f"masks-{args.masks}"
            write_inputs(masks, args.masks, 8)
            jobs.append(("run", RUN_VARIANTS, framebeam("run", f"{masks}/frames-*.jsonl", tmp / "out", args.workers)))
        if not args.skip_convert:
            frames = (args.data or tmp) / f"frames-{args.frames}"
            if not frames.is_dir():
                frames.mkdir(parents=True)
                write_frames(frames, args.frames, 8)
            jobs.append(("convert", CONVERT_VARIANTS, framebeam("convert", f"{frames}/*.jsonl", tmp / "out", args.workers)))
        print(f"{args.masks:,} polygon masks {args.mask_size or '1920x1080'} (run), {args.frames:,} frames (convert), workers={args.workers or 'all'}, "
              f"{os.cpu_count()} cores; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for _ in range(args.repeat):
            for job, variants, cmd in jobs:
                for name, switch in variants.items():
                    shutil.rmtree(tmp / "out", ignore_errors=True)
                    results.setdefault((job, name), []).append(measured(cmd, {**base, "FRAMEBEAM_TUNING": switch}))
                    if job == "run" and not args.mask_size:
                        check_output(tmp / "out", args.masks, 8)
        for job, variants, _ in jobs:
            default = results[(job, "all settings (default)")]
            t0, c0 = statistics.median(r[0] for r in default), statistics.median(r[1] for r in default)
            for name in variants:
                rs = results[(job, name)]
                wall, cpu, peak = statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs), max(r[2] for r in rs)
                print(f"{job:8} {name:30} wall {wall:6.1f} s ({wall / t0:4.2f}x)  CPU {cpu:6.1f} s ({cpu / c0:4.2f}x)  "
                      f"peak RSS {peak / 2**20:7.0f} MiB   [walls: {', '.join(f'{r[0]:.1f}' for r in rs)}]")
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
