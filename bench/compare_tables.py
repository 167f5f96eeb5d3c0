"""Run `framebeam run` with two checkouts' code on the same input and compare every output table, row for row.

    .venv/bin/python bench/compare_tables.py --baseline /work/main --candidate . -- --input 'DIR/frames-*' [run flags]
    .venv/bin/python bench/compare_tables.py --baseline /work/main --candidate . --real-masks [-- run flags]

--real-masks: the input is one frame per mask of ../shared/data/real-masks (camvid, dubai_aerial, voc),
each declaring its folder's colors.json as ROIs (as tests/test_real_masks_pipeline.py does).

Each checkout runs as ``PYTHONPATH=<checkout> framebeam run ... --output <tmp>/<name>``; then for every
table both wrote, DuckDB compares the multisets of rows (columns that name the run itself, such as
run ids and times, are left out). Exit status 1 when anything differs. Used to show that the numba
kernel left every table as the per-colour numpy code wrote it (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN_COLUMNS = {"run_id", "started_at", "finished_at", "written_at", "created_at"}


def run(checkout: Path, output: Path, flags: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    framebeam = Path(sys.executable).with_name("framebeam")
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", *flags, "--output", str(output), "--quiet"], env=env, check=True)
    return time.perf_counter() - started


def compare(a: Path, b: Path) -> list[str]:
    import duckdb

    db = duckdb.connect()
    problems = []
    tables = sorted(p.name for p in a.iterdir() if p.is_dir() and not p.name.startswith("_") and any(p.glob("*.parquet")))
    for name in tables:
        if not any((b / name).glob("*.parquet")):
            problems.append(f"{name}: only in the baseline")
            continue
        columns = [c for c, *_ in db.execute(f"DESCRIBE SELECT * FROM '{a / name}/*.parquet'").fetchall()]
        kept = ", ".join(f'"{c}"' for c in columns if c not in RUN_COLUMNS)
        left = f"SELECT {kept} FROM '{a / name}/*.parquet'"
        right = f"SELECT {kept} FROM '{b / name}/*.parquet'"
        n_left = db.execute(f"SELECT count(*) FROM ({left})").fetchone()[0]
        only_left = db.execute(f"SELECT count(*) FROM ({left} EXCEPT ALL {right})").fetchone()[0]
        only_right = db.execute(f"SELECT count(*) FROM ({right} EXCEPT ALL {left})").fetchone()[0]
        status = "identical" if only_left == only_right == 0 else f"DIFFERENT: {only_left} rows only in the baseline, {only_right} only in the candidate"
        print(f"  {name:16} {n_left:9,} rows  {status}")
        if only_left or only_right:
            problems.append(name)
            for row in db.execute(f"({left} EXCEPT ALL {right}) LIMIT 3").fetchall():
                print(f"      baseline : {row}")
            for row in db.execute(f"({right} EXCEPT ALL {left}) LIMIT 3").fetchall():
                print(f"      candidate: {row}")
    return problems


def write_real_frames(directory: Path) -> str:
    import json

    root = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "real-masks"
    frames = []
    for folder in ("camvid", "dubai_aerial", "voc"):
        colours = json.loads((root / folder / "colors.json").read_text())
        for path in sorted((root / folder).glob("*.png")):
            frames.append({"id": f"{folder}/{path.stem}", "sources": [{"id": "img", "uri": "unused.jpg", "masks": [{"id": "00", "uri": str(path)}]}],
                           "rois": [{"label": [name], "sources": ["img"], "mask": {"id": "00", "value": rgb}} for name, rgb in colours.items()]})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "frames.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    print(f"{len(frames)} real-mask frames")
    return str(directory / "frames.jsonl")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--candidate", type=Path, required=True)
    ap.add_argument("--real-masks", action="store_true", help="input: every mask of ../shared/data/real-masks")
    ap.add_argument("flags", nargs=argparse.REMAINDER, help="after --: framebeam run flags (without --output)")
    args = ap.parse_args()
    flags = [f for f in args.flags if f != "--"]
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-compare-"))
    if args.real_masks:
        flags = ["--input", write_real_frames(tmp / "real"), *flags]
    try:
        t_base = run(args.baseline.resolve(), tmp / "baseline", flags)
        t_cand = run(args.candidate.resolve(), tmp / "candidate", flags)
        print(f"baseline {args.baseline}: {t_base:.1f} s, candidate {args.candidate}: {t_cand:.1f} s")
        problems = compare(tmp / "baseline", tmp / "candidate")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("all tables identical" if not problems else f"differences in: {', '.join(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
