"""The CamVid masks with their 32-class table in every form --mask-labels accepts, and as 32 ROIs per frame:
what a run reports, against plain numpy on the same files.

    .venv/bin/python bench/class_tables_bench.py [--camvid DIR]

Per form: mask_colour_absent warnings; label_never_present against the classes numpy finds no pixel of;
label_few_samples against the classes numpy finds in 1-4 masks; label_stats rows against the (mask, class)
pairs with pixels; the largest |p50 - numpy| and |p95 - numpy| over the classes (numpy's
quantile(method="lower") over all 100 masks, 0 where the class is absent); the run's wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.cli import main as cli  # noqa: E402
from tests.test_class_tables import camvid_reference  # noqa: E402

SHARED = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def named(messages: list[str], names: list[str]) -> set[str]:
    return {n for n in names for m in messages if f"['{n}']" in m}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", type=Path, default=SHARED / "data" / "real-masks" / "camvid")
    args = parser.parse_args()
    names, colours, fractions, paths = camvid_reference(args.camvid)
    present = fractions > 0
    masks_present = present.sum(axis=0)
    never = {n for n, k in zip(names, masks_present) if k == 0}
    few = {n for n, k in zip(names, masks_present) if 0 < k < 5}
    print(f"numpy: {len(paths)} masks, {len(names)} classes, {int(present.sum())} (mask, class) pairs with pixels; "
          f"never present {sorted(never)}; present in 1-4 masks {sorted(few)}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "clearml.json").write_text(json.dumps({"_all_": [{"value": rgb, "labels": [n]} for n, rgb in colours.items()]}))
        (d / "hex.json").write_text(json.dumps({n: "#%02x%02x%02x" % tuple(rgb) for n, rgb in colours.items()}))
        table_frames, roi_frames = [], []
        for p in paths:
            mask = [{"id": "00", "uri": str(p)}]
            table_frames.append({"id": p.stem, "sources": [{"id": "img", "uri": "x.jpg", "masks": mask}], "rois": []})
            roi_frames.append({"id": p.stem, "sources": [{"id": "img", "uri": "x.jpg", "masks": mask}],
                               "rois": [{"label": [n], "sources": ["img"], "mask": {"id": "00", "value": rgb}} for n, rgb in colours.items()]})
        (d / "table.jsonl").write_text("".join(json.dumps(f) + "\n" for f in table_frames))
        (d / "rois.jsonl").write_text("".join(json.dumps(f) + "\n" for f in roi_frames))
        forms = {
            "colors.json": ["--input", str(d / "table.jsonl"), "--mask-labels", str(args.camvid / "colors.json")],
            "label_colors.txt": ["--input", str(d / "table.jsonl"), "--mask-labels", str(args.camvid / "label_colors.txt")],
            "ClearML form": ["--input", str(d / "table.jsonl"), "--mask-labels", str(d / "clearml.json")],
            "#rrggbb map": ["--input", str(d / "table.jsonl"), "--mask-labels", str(d / "hex.json")],
            "32 ROIs per frame": ["--input", str(d / "rois.jsonl")],
        }
        print("| form | mask_colour_absent | label_never_present = numpy | label_few_samples = numpy | label_stats rows (with pixels) | max p50 error | max p95 error | run s |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for i, (form, flags) in enumerate(forms.items()):
            out = d / f"out{i}"
            started = time.perf_counter()
            assert cli(["run", *flags, "--output", str(out), "--quiet", "--direct_running_mode=in_memory", "--direct_num_workers=1"]) == 0
            seconds = time.perf_counter() - started

            def q(sql: str) -> list:
                return duckdb.sql(sql.replace("T(", f"read_parquet('{out}/").replace(")T", "/*.parquet')")).fetchall()

            def messages(code: str) -> list[str]:
                return [m for (m,) in q(f"SELECT message FROM T(issues)T WHERE code = '{code}'")]

            absent = len(messages("mask_colour_absent"))
            got_never = named(messages("label_never_present"), names)
            got_few = named(messages("label_few_samples"), names)
            rows, with_pixels = q("SELECT count(*), count(*) FILTER (WHERE pixel_count > 0) FROM T(label_stats)T")[0]
            summary = {labels[0]: (p50, p95) for labels, p50, p95 in q("SELECT labels, pixel_fraction_p50, pixel_fraction_p95 FROM T(label_summary)T")}
            err50 = max(abs(summary[n][0] - float(np.quantile(fractions[:, j], 0.5, method="lower"))) for j, n in enumerate(names))
            err95 = max(abs(summary[n][1] - float(np.quantile(fractions[:, j], 0.95, method="lower"))) for j, n in enumerate(names))
            print(f"| {form} | {absent:,} | {sorted(got_never)} {'=' if got_never == never else '!='} | "
                  f"{len(got_few)} {'=' if got_few == few else '!='} | {rows:,} ({with_pixels:,}) | {err50:.2g} | {err95:.2g} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
