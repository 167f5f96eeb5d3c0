"""Report size and render time with a long history: 30 runs of a 150-class table against the same run's
report with one run of history, in the same process (ratios, not absolute times).

    PYTHONPATH=. python bench/report_bench.py [--runs 30] [--classes 150] [--repeat 3]

Prints, for both pages: bytes, time to build the page in Python (render_report) and time for headless
Chromium to load and lay it out (``--dump-dom``, wall time, median of --repeat; Chromium's start-up is
in both, so the ratio understates the page's own cost: the difference is printed too).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def chromium_ms(page: Path, profile: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    "--dump-dom", page.as_uri()], capture_output=True, check=True, timeout=120)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from tests.conftest import run_cli
    from tests.synthetic_history import synthetic_history
    from tests.test_history import COLOURS, draw_masks, write_frames
    from transforms.report import render_report
    from transforms.writing import write_parquet

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        frames = write_frames(tmp / "frames.jsonl", draw_masks(tmp / "masks", n=6), COLOURS)
        out = tmp / "out"
        assert run_cli("run", "--input", str(frames), "--output", str(out), "--quiet") == 0
        folder = (out / "_current").resolve()
        results = {}
        for name in ("one run", f"{args.runs} runs x {args.classes} classes"):
            if name != "one run":
                history, runs = synthetic_history(args.runs, args.classes)
                for table, data in (("history", history), ("history_runs", runs)):
                    for old in (folder / table).glob("*.parquet"):
                        old.unlink()
                    write_parquet(data, str(folder / table / "part-00000.parquet"))
            build = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                text = render_report(str(folder))
                build.append((time.perf_counter() - start) * 1000)
            page = tmp / f"{len(results)}.html"
            page.write_text(text, encoding="utf-8")
            chromium_ms(page, tmp / "warm")  # first start fills caches
            load = [chromium_ms(page, tmp / f"profile-{i}") for i in range(args.repeat)]
            results[name] = (len(text.encode()), statistics.median(build), statistics.median(load))
        base = next(iter(results.values()))
        for name, (size, build, load) in results.items():
            print(f"{name:>28}: {size / 1024:8.1f} KiB  build {build:7.1f} ms ({build / base[1]:.2f}x)  "
                  f"chromium --dump-dom {load:7.1f} ms ({load / base[2]:.2f}x, +{load - base[2]:.0f} ms)")


if __name__ == "__main__":
    main()
