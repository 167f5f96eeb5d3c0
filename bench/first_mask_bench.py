"""A fresh worker's first mask against its later ones: what loading the compiled kernel costs.

    .venv/bin/python bench/first_mask_bench.py [--runs 5] [--masks 10]

Each run is a new Python process that imports transforms.masks (as a Beam worker unpickling the decode
step does), then analyses --masks polygon masks (1920x1080, 8 colours, stats + RLE crops) one after
another through transforms.decoding.open_mask + statistics.analyse_mask; optionally calling
kernel.load() first (what the decode step's DoFn.setup does). Reported per run: wall and CPU time of the
first mask and the median of the later ones; medians over runs. CPU time is less disturbed than wall
time when other jobs share the cores. The goal (issue 14): first mask <= ~1 s more than later ones.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import transforms.masks  # what a worker imports when it unpickles the decode step
from transforms.decoding import open_mask
from transforms.statistics import analyse_mask
sys.path.insert(0, sys.argv[2])
from synthetic_masks import CITYSCAPES_8, polygon_labels, rgb_png
masks = [rgb_png(polygon_labels(seed), CITYSCAPES_8) for seed in range(int(sys.argv[1]))]
imported = (time.perf_counter() - t0, time.process_time() - c0)
setup = (0.0, 0.0)
if sys.argv[3] == "load":
    from transforms import kernel
    t, c = time.perf_counter(), time.process_time()
    kernel.load()
    setup = (time.perf_counter() - t, time.process_time() - c)
times = []
for data in masks:
    t, c = time.perf_counter(), time.process_time()
    analyse_mask(open_mask(data), CITYSCAPES_8, rle=True)
    times.append((time.perf_counter() - t, time.process_time() - c))
print(json.dumps({"imported": imported, "setup": setup, "times": times}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--masks", type=int, default=10)
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for mode in ("first call loads", "load"):
        rows = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.masks), str(Path(__file__).parent), mode],
                                 env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            later = np.median(np.array(r["times"][1:]), axis=0)
            rows.append([*r["setup"], *r["times"][0], *later])
        wall_setup, cpu_setup, wall_first, cpu_first, wall_later, cpu_later = np.median(np.array(rows), axis=0)
        label = "kernel.load() in setup, then masks" if mode == "load" else "no set-up: the first mask loads the kernel"
        print(f"{label}: set-up {wall_setup * 1000:.0f} ms wall / {cpu_setup * 1000:.0f} ms CPU; first mask {wall_first * 1000:.0f} ms wall / "
              f"{cpu_first * 1000:.0f} ms CPU; later masks {wall_later * 1000:.1f} ms wall / {cpu_later * 1000:.1f} ms CPU; "
              f"first - later = {(wall_first - wall_later) * 1000:.0f} ms wall, {(cpu_first - cpu_later) * 1000:.0f} ms CPU")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
