"""Time to the first error: how long `framebeam run` takes to refuse a bad --output, against the time a
complete small run takes, in the same run.

    .venv/bin/python bench/first_error_bench.py [--repeat 5]

Cases (each a fresh `framebeam` process, median of --repeat): --output an existing file; a folder
holding files framebeam did not write (the sample's own folder); a new folder inside the input
shards' folder; the same with Beam flags on the command line (which load Beam to check them); a
bucket that does not exist is left out (it needs a storage server). Baseline: `framebeam run` of
the sample into a fresh folder (in one process), and `framebeam --help` (process start alone).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMEBEAM = str(Path(sys.executable).with_name("framebeam"))


def timed(argv: list[str], expect: int) -> float:
    started = time.perf_counter()
    result = subprocess.run([FRAMEBEAM, *argv], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        raise SystemExit(f"{argv}: exit {result.returncode}, expected {expect}: {result.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sd = Path(tmp) / "sd"
        subprocess.run([FRAMEBEAM, "sample", str(sd)], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        (Path(tmp) / "a-file").write_text("x")
        base = ["run", "--input", f"{sd}/frames-*", "--mask-labels", str(sd / "mask_labels.json")]
        beam = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
        cases = {
            "--output an existing file": (base + ["--output", f"{tmp}/a-file"], 2),
            "--output a folder of other files": (base + ["--output", str(sd)], 2),
            "--output inside the inputs' folder": (base + ["--output", f"{sd}/out"], 2),
            "--output an existing file, with Beam flags": (base + ["--output", f"{tmp}/a-file", *beam], 2),
            "baseline: framebeam --help": (["--help"], 0),
        }
        results = {name: [] for name in cases}
        runs = []
        for i in range(args.repeat):
            for name, (argv, expect) in cases.items():
                results[name].append(timed(argv, expect))
            runs.append(timed(base + ["--output", f"{tmp}/out-{i}", "--quiet", *beam], 0))
        full = statistics.median(runs)
        print(f"baseline: a complete `framebeam run` of the sample: {full:.2f} s (median of {args.repeat})")
        for name, times in results.items():
            t = statistics.median(times)
            print(f"{name:45s} {t:6.2f} s  ({t / full:.2f} of the complete run)")


if __name__ == "__main__":
    main()
