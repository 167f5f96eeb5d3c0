"""Report size and render time with a long history: 30 runs of a 150-class table against the same run's
report with one run of history, in the same process (ratios, not absolute times).

    PYTHONPATH=. python bench/report_bench.py [--runs 30] [--classes 150] [--repeat 3]

Prints, for both pages: bytes, time to build the page in Python (render_report), and in headless
Chromium the time from navigation start to the first complete layout (tests.browser.layout_check's
``layoutMs``) and the wall time of the whole ``--dump-dom`` (Chromium's start-up included); medians of
--repeat.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

def check(page: Path, work: Path) -> dict:
    from tests.browser import layout_check

    work.mkdir(parents=True, exist_ok=True)
    return layout_check(page, work)


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
        (tmp / "in").mkdir()  # an OUTPUT must not lie inside the folder it reads
        frames = write_frames(tmp / "in" / "frames.jsonl", draw_masks(tmp / "in" / "masks", n=6), COLOURS)
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
            check(page, tmp / "warm")  # the first start fills caches
            checks = [check(page, tmp / f"check-{len(results)}-{i}") for i in range(args.repeat)]
            results[name] = (len(text.encode()), statistics.median(build), statistics.median(c["layoutMs"] for c in checks),
                             statistics.median(c["wall_s"] * 1000 for c in checks))
        base = next(iter(results.values()))
        for name, (size, build, layout, wall) in results.items():
            print(f"{name:>28}: {size / 1024:8.1f} KiB  build {build:7.1f} ms ({build / base[1]:.2f}x)  "
                  f"chromium layout {layout:7.1f} ms ({layout / base[2]:.2f}x)  --dump-dom wall {wall:7.1f} ms ({wall / base[3]:.2f}x)")


if __name__ == "__main__":
    main()
