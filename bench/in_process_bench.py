"""Where one process stops beating all cores for decoding jobs (issue 14: revisit the in-process threshold).

    PYTHONPATH=. .venv/bin/python bench/in_process_bench.py [--kinds camvid polygons] [--masks 200 600 1500] [--repeat 2]

For each kind of mask and each N, times ``framebeam run`` on N masks in one process (IN_PROCESS flags) and on all
cores (ALL_CORES flags), alternating, keeping each mode's fastest of --repeat. A line t = start-up + N * per-mask
is fitted to each mode; where they cross is the break-even, given in masks and in bytes of frames (what
pipelines.options.IN_PROCESS_MAX_BYTES_DECODING is compared with).
Kinds: camvid = the 100 real CamVid masks (960x720, 32-class --mask-labels table) repeated, one small frame each;
polygons = synthetic 1920x1080 Pillow-drawn polygon masks with 8 colours declared as ROIs (bench/run_bench.py).
Inputs and outputs go to a temporary folder.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import datumaro_bench  # noqa: E402
import run_bench  # noqa: E402
from pipelines.options import ALL_CORES, IN_PROCESS, IN_PROCESS_MAX_BYTES_DECODING  # noqa: E402


def inputs(kind: str, root: Path, n: int) -> tuple[list[str], int]:
    """framebeam run arguments for n masks of this kind, and the bytes of frames."""
    if kind == "camvid":
        _, frames = datumaro_bench.build(root / kind, datumaro_bench.SHARED / "data" / "real-masks" / "camvid", n)
        colours = datumaro_bench.SHARED / "data" / "real-masks" / "camvid" / "colors.json"
        return ["--input", str(frames), "--mask-labels", str(colours)], frames.stat().st_size
    directory = root / f"{kind}{n}"
    run_bench.write_inputs(directory, n, 4)
    shards = sorted(directory.glob("frames-*.jsonl"))
    return ["--input", f"{directory}/frames-*.jsonl"], sum(p.stat().st_size for p in shards)


def run(args: list[str], output: Path, mode: list[str]) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    if output.exists():
        subprocess.run(["rm", "-rf", str(output)], check=True)
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", *args, "--output", str(output), "--quiet", *mode], check=True)
    return time.perf_counter() - started


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (start-up seconds, seconds per mask)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=["camvid", "polygons"], choices=["camvid", "polygons"])
    ap.add_argument("--masks", type=int, nargs="+", default=[200, 600, 1500])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    print(f"threshold today: {IN_PROCESS_MAX_BYTES_DECODING // 1024} KB of frames")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind in args.kinds:
            times: dict[str, list[tuple[int, float]]] = {"one process": [], "all cores": []}
            per_frame_bytes = []
            for n in args.masks:
                run_args, frame_bytes = inputs(kind, root, n)
                per_frame_bytes.append(frame_bytes / n)
                best = {"one process": float("inf"), "all cores": float("inf")}
                for _ in range(args.repeat):
                    for name, mode in (("one process", IN_PROCESS), ("all cores", ALL_CORES)):
                        best[name] = min(best[name], run(run_args, root / "out", mode))
                for name in best:
                    times[name].append((n, best[name]))
                print(f"{kind} N={n} ({frame_bytes / 1024:.0f} KB of frames): one process {best['one process']:.1f} s, "
                      f"all cores {best['all cores']:.1f} s", flush=True)
            (a1, b1), (a2, b2) = fit(times["one process"]), fit(times["all cores"])
            print(f"{kind}: one process {a1:.1f} s + {b1 * 1000:.2f} ms/mask; all cores {a2:.1f} s + {b2 * 1000:.2f} ms/mask")
            if b1 > b2:
                even = (a2 - a1) / (b1 - b2)
                kb = even * sum(per_frame_bytes) / len(per_frame_bytes) / 1024
                print(f"{kind}: break-even at ~{even:.0f} masks = ~{kb:.0f} KB of frames "
                      f"({sum(per_frame_bytes) / len(per_frame_bytes):.0f} B a frame)", flush=True)
            else:
                print(f"{kind}: all cores never wins in this range")


if __name__ == "__main__":
    main()
