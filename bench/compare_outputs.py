"""Outputs of two checkouts on the same inputs, compared table by table: a refactor must not change them.

    .venv/bin/python bench/compare_outputs.py --before /path/to/other/checkout [--after .] [--work DIR] [--only NAME ...]
        [--input GLOB [--command run|convert]] [-- extra CLI flags, e.g. --crop-png --colour-tolerance 3]

Runs the CLI of each checkout (PYTHONPATH set to it, the same interpreter) on:
  sample      `framebeam sample` (every shard form, both join conventions, deliberate problems): run and convert
  real-masks  every mask in ../shared/data/real-masks (camvid, dubai_aerial, voc) with its colours.json: run
  convert     bench/convert_bench.py's synthetic frames (20,000 frames, 4 shards): convert
  run         bench/run_bench.py's synthetic 1920x1080 masks (60 masks, 3 shards): run
and compares, per output: every table's rows (as sets of rows in a canonical order: the row order of
Parquet files depends on bundling; the history tables without their run ids and times), summary.json
without its times, and report.html with times, run ids and the output's path masked. Each CLI runs on one in-process worker, so file order (and the report's examples) depend on the input only.
With --input, only that input is compared (name `input`, with --command, default run). Flags after `--` are
added to every command it runs (e.g. `--only sample-run real-masks-run -- --crop-png --colour-tolerance 3`).
Prints one line per comparison (with each side's wall time) and exits 1 when anything differs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
VOLATILE_SUMMARY_KEYS = {"started_at", "published_at", "run_id", "output", "run_folder"}
VOLATILE_COLUMNS = {"run_id", "started_at", "published_at", "baseline_run_id"}  # history tables: which run, when
RUN_ID = re.compile(r"\d{4}-\d\d-\d\dT\d{6}Z-[0-9a-f]{8}")


def _cli(checkout: Path, *args: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    started = time.perf_counter()
    # One in-process worker: the order of rows in Parquet files, and so the report's examples (the first issues
    # rows of each code), then depend on the input only.
    subprocess.run([sys.executable, "-m", "pipelines.cli", *args, "--quiet", "--direct_running_mode=in_memory",
                    "--direct_num_workers=1"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=checkout)
    return time.perf_counter() - started


def make_inputs(work: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (command, CLI arguments before --output)."""
    sys.path.insert(0, str(REPO))
    jobs: dict[str, tuple[str, list[str]]] = {}
    sample = work / "in-sample"
    if not sample.exists():
        subprocess.run([sys.executable, "-m", "pipelines.cli", "sample", str(sample)], env=dict(os.environ, PYTHONPATH=str(REPO)),
                       check=True, stdout=subprocess.DEVNULL)
    sample_args = ["--input", str(sample / "frames-*"), "--mask-labels", str(sample / "mask_labels.json")]
    jobs["sample-run"] = ("run", sample_args)
    jobs["sample-convert"] = ("convert", sample_args)

    shared = Path(os.environ.get("FRAMEBEAM_SHARED", REPO.parent / "shared")) / "data" / "real-masks"
    if shared.is_dir():
        real = work / "in-real-masks" / "frames.jsonl"  # in a folder of its own: an --output may not lie in the input's folder
        real.parent.mkdir(exist_ok=True)
        frames = []
        for folder in ("camvid", "dubai_aerial", "voc"):
            colours = json.loads((shared / folder / "colors.json").read_text())
            for path in sorted((shared / folder).glob("*.png")):
                frames.append({"id": f"{folder}/{path.stem}", "sources": [{"id": "img", "uri": "unused.jpg", "masks": [{"id": "00", "uri": str(path)}]}],
                               "rois": [{"label": [name], "sources": ["img"], "mask": {"id": "00", "value": rgb}} for name, rgb in colours.items()]})
        real.write_text("".join(json.dumps(f) + "\n" for f in frames))
        jobs["real-masks-run"] = ("run", ["--input", str(real)])
    else:
        print(f"real-masks: skipped, {shared} is missing (set FRAMEBEAM_SHARED)")

    from bench import convert_bench, run_bench

    conv = work / "in-convert"
    if not conv.exists():
        conv.mkdir()
        convert_bench.write_frames(conv, 20_000, 4)
    jobs["convert-bench"] = ("convert", ["--input", str(conv / "part-*.jsonl")])
    runb = work / "in-run"
    if not (runb / "frames-000.jsonl").exists():
        run_bench.write_inputs(runb, 60, 3)
    jobs["run-bench"] = ("run", ["--input", str(runb / "frames-*.jsonl")])
    return jobs


def _rows(output: Path, table: str) -> list[str]:
    rows = []
    for path in sorted((output / table).glob("*.parquet")):
        data = pq.read_table(path)
        data = data.drop_columns([c for c in data.column_names if c in VOLATILE_COLUMNS])
        rows.extend(orjson.dumps(r, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=repr).decode()
                    for r in data.to_pylist())
    return sorted(rows)


def _schema(output: Path, table: str) -> str:
    files = sorted((output / table).glob("*.parquet"))
    return str(pq.read_schema(files[0]).remove_metadata()) if files else ""


def _summary(output: Path) -> dict:
    summary = json.loads((output / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in VOLATILE_SUMMARY_KEYS}


def _report(output: Path) -> str:
    text = (output / "report.html").read_text()
    text = RUN_ID.sub("RUN", text.replace(str(output), "OUTPUT"))
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^\s<&\"]*", "TIME", text)


def compare(before: Path, after: Path) -> list[str]:
    problems = []
    tables = sorted({p.name for p in before.iterdir() if p.is_dir() and any(p.glob("*.parquet"))}
                    | {p.name for p in after.iterdir() if p.is_dir() and any(p.glob("*.parquet"))})
    for table in tables:
        a, b = _rows(before, table), _rows(after, table)
        if a != b:
            problems.append(f"{table}: {len(a)} rows before, {len(b)} after, {len(set(a) ^ set(b))} differ")
        if _schema(before, table) != _schema(after, table):
            problems.append(f"{table}: schema differs")
    sa, sb = _summary(before), _summary(after)
    sa.get("parameters", {}).pop("output", None), sb.get("parameters", {}).pop("output", None)
    if sa != sb:
        keys = sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k))
        problems.append(f"summary.json differs in {keys}")
    if (before / "report.html").exists() and _report(before) != _report(after):
        problems.append("report.html differs")
    return problems, tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the checkout to compare against")
    ap.add_argument("--after", type=Path, default=REPO)
    ap.add_argument("--work", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    ap.add_argument("--only", nargs="*", help="only these inputs (sample-run, sample-convert, real-masks-run, convert-bench, run-bench)")
    ap.add_argument("--input", help="compare on this input only (a glob of frame files)")
    ap.add_argument("--command", choices=("run", "convert"), default="run", help="with --input: the command (default run)")
    ap.add_argument("flags", nargs=argparse.REMAINDER, help="after --: flags added to every command")
    args = ap.parse_args()
    extra = [f for f in args.flags if f != "--"]
    work = args.work or Path(tempfile.mkdtemp(prefix="compare-outputs-"))
    work.mkdir(parents=True, exist_ok=True)
    failed = False
    jobs = {"input": (args.command, ["--input", args.input])} if args.input else make_inputs(work)
    for name, (command, job_args) in jobs.items():
        if args.only and name not in args.only:
            continue
        outs, seconds = {}, {}
        for side, checkout in (("before", args.before), ("after", args.after)):
            out = work / f"out-{name}-{side}"
            shutil.rmtree(out, ignore_errors=True)
            seconds[side] = _cli(checkout.resolve(), command, *job_args, *extra, "--output", str(out))
            outs[side] = out
        if not (outs["before"] / "summary.json").exists() or not (outs["after"] / "summary.json").exists():
            print(f"{name}: a run did not finish ({', '.join(s for s, o in outs.items() if not (o / 'summary.json').exists())})")
            failed = True
            continue
        problems, tables = compare(outs["before"], outs["after"])
        rows = sum(len(_rows(outs["after"], t)) for t in tables)
        print(f"{name}: {'identical' if not problems else 'DIFFERENT'} ({len(tables)} tables, {rows:,} rows, summary.json"
              f"{', report.html' if (outs['after'] / 'report.html').exists() else ''}; {seconds['before']:.1f} s before, "
              f"{seconds['after']:.1f} s after)")
        for p in problems:
            print(f"    {p}")
        failed |= bool(problems)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
