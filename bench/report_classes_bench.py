"""How long report.html takes with a big class table: building it in Python, and rendering it in headless Chromium.

    .venv/bin/python bench/report_classes_bench.py [--classes 150] [--masks 400] [--repeat 3]

Input: ``tests.many_classes`` (Pillow-drawn random polygons, a Zipf-like long tail of classes, a few
classes never drawn), run through ``framebeam run`` with the table as --mask-labels. Chromium times:
``layout`` is the page's own clock from navigation start to its first complete layout (a script added
to a copy of the page forces layout and reads performance.now()); ``wall`` is the whole headless
Chromium process, printed beside the wall time of an empty page measured in the same run (Chromium's
start-up, which no page can avoid), and their ratio. Best of --repeat.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.cli import main as cli  # noqa: E402
from tests.browser import CHROMIUM, layout_check  # noqa: E402
from tests.many_classes import write_many_classes  # noqa: E402
from transforms.report import render_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--masks", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print("headless Chromium is not installed (python -m tests.system_deps as root)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_many_classes(work / "input", classes=args.classes, masks=args.masks, size=(320, 240))
        out = work / "out"
        code = cli(["run", "--input", str(data.frames), "--mask-labels", str(data.table), "--output", str(out), "--quiet",
                    "--direct_running_mode=in_memory", "--direct_num_workers=1"])
        assert code == 0, code
        present = sum(1 for k in data.masks_present.values() if k)
        build = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            render_report(str(out))
            build.append(time.perf_counter() - started)
        empty = work / "empty.html"
        empty.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>empty</p></body></html>")
        page = out / "report.html"
        pages, baselines = [], []
        for i in range(args.repeat):
            (work / f"r{i}").mkdir()
            baselines.append(layout_check(empty, work / f"r{i}"))
            pages.append(layout_check(page, work / f"r{i}"))
        best_page = min(pages, key=lambda r: r["wall_s"])
        best_empty = min(baselines, key=lambda r: r["wall_s"])
        print(f"{args.classes} classes ({present} present) in {args.masks} masks; report.html {page.stat().st_size / 1024:,.0f} KiB, "
              f"{best_page['rows']} class rows")
        print(f"build (Python, reading the tables): {min(build) * 1000:,.0f} ms")
        print(f"Chromium layout (page clock): {min(r['layoutMs'] for r in pages):,.0f} ms; empty page "
              f"{min(r['layoutMs'] for r in baselines):,.0f} ms")
        print(f"Chromium wall: {best_page['wall_s']:.2f} s; empty page {best_empty['wall_s']:.2f} s; "
              f"ratio {best_page['wall_s'] / best_empty['wall_s']:.2f}; difference {best_page['wall_s'] - best_empty['wall_s']:.2f} s")
        print(f"clipped text: {len(best_page['clipped'])}, overflowing cells: {len(best_page['overflowing'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
