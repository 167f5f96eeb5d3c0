"""Convert throughput against a single-process orjson parse-only loop over the same lines, in one run.

    .venv/bin/python bench/convert_bench.py [--frames 100000] [--shards 8] [--workers 0] [--no-floors]

Writes realistic synthetic frames (1-3 sources, 5-30 ROIs with polys and mask colours), then times
(a) a plain `for line in f: orjson.loads(line)` loop on one core and (b) `framebeam convert` end to end
(process start, Beam start-up, parsing, validation, joining, Parquet writing, publish). Prints both
rates and the ratio convert/parse. Goal (issue 2): >= 0.7 on 2 cores.

Then the floors under that ratio, each on one core and against the same parse loop: Beam's fixed cost
(a 1-frame convert, with worker processes and in-process); framebeam's own per-frame work without Beam
(the chunk functions: validation, join, Arrow columns, Parquet); how fast C++ JSON readers
(pyarrow.json; DuckDB's read_json when installed: the test extra) turn the same lines into columns;
and what DuckDB takes to write the main tables from them without validating anything.
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


LABELS = ["car", "person", "road", "building", "sky", "tree", "bicycle", "truck", "sign", "pole"]


def synthetic_frame(rng: random.Random, i: int) -> dict:
    sources = []
    for s in range(rng.randint(1, 3)):
        sources.append({
            "id": f"cam{s}", "uri": f"s3://bucket/images/{i:08d}_{s}.jpg", "content_type": "image/jpeg",
            "width": 1920, "height": 1080, "timestamp": 0,
            "masks": [{"id": "00", "uri": f"s3://bucket/masks/{i:08d}_{s}.png", "timestamp": 0}],
            "meta": {"camera": f"cam{s}", "exposure": rng.random()},
        })
    rois = []
    for r in range(rng.randint(5, 30)):
        x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
        w, h = rng.uniform(5, 120), rng.uniform(5, 80)
        src = f"cam{rng.randrange(len(sources))}"
        roi = {"label": [rng.choice(LABELS)], "sources": [src], "confidence": 1.0,
               "poly": [x, y, x + w, y, x + w, y + h, x, y + h], "meta": {"_type": "b2d"}}
        if r % 3 == 0:
            roi["mask"] = {"id": "00", "value": [rng.randrange(256), rng.randrange(256), rng.randrange(256)]}
            roi["meta"] = {"_type": "mask"}
        rois.append(roi)
    return {"id": f"{i:032x}", "context_id": f"seq{i // 100}", "timestamp": 1_700_000_000_000 + i * 33,
            "meta": {"weather": rng.choice(["sun", "rain"]), "velocity": rng.randint(0, 120)},
            "sources": sources, "rois": rois}


def write_frames(directory: Path, n: int, shards: int) -> int:
    rng = random.Random(7)
    total = 0
    files = [open(directory / f"part-{k:04d}.jsonl", "wb") for k in range(shards)]
    for i in range(n):
        line = orjson.dumps(synthetic_frame(rng, i)) + b"\n"
        files[i % shards].write(line)
        total += len(line)
    for f in files:
        f.close()
    return total


def parse_only(directory: Path) -> float:
    start = time.perf_counter()
    n = 0
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)
                n += 1
    return time.perf_counter() - start


def convert(directory: Path, output: Path, workers: int, *beam_flags: str) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    start = time.perf_counter()
    subprocess.run([str(framebeam), "convert", "--input", f"{directory}/*.jsonl", "--output", str(output), "--quiet",
                    f"--direct_num_workers={workers}", *beam_flags], check=True)
    return time.perf_counter() - start


def parse_with_msgspec(directory: Path) -> float:
    """The typed decode of framebeam's validation fast path alone (C), over every line."""
    from transforms.validation import _DECODER

    start = time.perf_counter()
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                _DECODER.decode(line)
    return time.perf_counter() - start


def chunk_functions(directory: Path, frames: int) -> float:
    """framebeam's per-chunk work without Beam: validate, join, Arrow columns and Parquet (in memory).
    Returns seconds per frame, best of 3 (the first pass also pays one-off imports and caches)."""
    import io

    import pyarrow.parquet as pq

    from transforms import writing
    from transforms.flattening import TableRows
    from transforms.reading import ReadLimits, chunk_records, iter_shard
    from transforms.steps import JoinOptions, join_chunk, validate_chunk
    from transforms.tuning import WorkerSetup

    WorkerSetup.for_job(decode=False).apply()  # as the steps' set-up does in every worker (FRAMEBEAM_TUNING=off: not)
    path = sorted(directory.glob("*.jsonl"))[0]
    records = []
    for rec in iter_shard(str(path)):
        records.append(rec)
        if len(records) == frames:
            break
    chunks = list(chunk_records(str(path), iter(records), ReadLimits()))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        buffer = writing.TableBuffer(10**9)
        for chunk in chunks:
            for item in join_chunk(validate_chunk(chunk), JoinOptions()):
                if isinstance(item, TableRows):
                    buffer.add(item)
        for table in buffer.tables():
            data = buffer.take(table)
            pq.write_table(data, io.BytesIO(), compression="zstd", row_group_size=128 * 1024,
                           use_dictionary=writing.dictionary_columns(data.schema))
        best = min(best, time.perf_counter() - start)
    return best / len(records)


def arrow_reader(directory: Path) -> float:
    """pyarrow's C++ JSON reader, one thread, every line into typed columns (metas skipped)."""
    import pyarrow as pa
    import pyarrow.json as pj

    s, i = pa.string(), pa.int64()
    mask = pa.struct([("id", s), ("uri", s), ("content_type", s), ("timestamp", i), ("width", i), ("height", i)])
    source = pa.struct([("id", s), ("uri", s), ("content_type", s), ("width", i), ("height", i), ("timestamp", i),
                        ("masks", pa.list_(mask))])
    roi = pa.struct([("id", s), ("label", pa.list_(s)), ("sources", pa.list_(s)), ("confidence", pa.float64()),
                     ("poly", pa.list_(pa.float64())), ("mask", pa.struct([("id", s), ("value", pa.list_(i))]))])
    schema = pa.schema([("id", s), ("context_id", s), ("timestamp", i), ("sources", pa.list_(source)), ("rois", pa.list_(roi))])
    start = time.perf_counter()
    for path in sorted(directory.glob("*.jsonl")):
        pj.read_json(path, read_options=pj.ReadOptions(use_threads=False),
                     parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
    return time.perf_counter() - start


def duckdb_floors(directory: Path, output: Path) -> tuple[float, float] | None:
    """DuckDB, one thread: (a) its C++ JSON reader turning every line into typed columns (metas kept as
    JSON text), then (b) from those columns, frames, sources and rois tables written as Parquet, with
    no validation and no join at all: what a columnar convert costs before it checks anything."""
    try:
        import duckdb
    except ImportError:
        return None
    columns = {
        "id": "VARCHAR", "context_id": "VARCHAR", "timestamp": "BIGINT", "meta": "JSON",
        "sources": "STRUCT(id VARCHAR, uri VARCHAR, content_type VARCHAR, width BIGINT, height BIGINT, timestamp BIGINT, "
                   "meta JSON, masks STRUCT(id VARCHAR, uri VARCHAR, timestamp BIGINT)[])[]",
        "rois": "STRUCT(label VARCHAR[], sources VARCHAR[], confidence DOUBLE, poly DOUBLE[], meta JSON, "
                "mask STRUCT(id VARCHAR, value BIGINT[]))[]",
    }
    output.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET preserve_insertion_order = false")
    start = time.perf_counter()
    con.execute(f"CREATE TEMP TABLE f AS SELECT * FROM read_json('{directory}/*.jsonl', format='newline_delimited', "
                f"columns={columns!r}, filename=true)")
    read = time.perf_counter() - start
    parquet = "(FORMAT parquet, COMPRESSION zstd)"
    con.execute(f"COPY (SELECT id AS frame_id, filename AS shard, context_id, timestamp, len(sources) AS n_sources, "
                f"len(rois) AS n_rois, meta::VARCHAR AS meta FROM f) TO '{output}/frames.parquet' {parquet}")
    con.execute(f"COPY (SELECT id AS frame_id, filename AS shard, generate_subscripts(sources, 1) - 1 AS source_index, "
                f"unnest(sources, recursive := true) FROM f) TO '{output}/sources.parquet' {parquet}")
    con.execute(f"COPY (SELECT frame_id, shard, roi_index, r.label AS labels, r.sources AS source_ids, r.confidence, r.poly, "
                f"r.mask.id AS mask_id, r.mask.value AS mask_rgb, r.meta::VARCHAR AS meta FROM (SELECT id AS frame_id, "
                f"filename AS shard, generate_subscripts(rois, 1) - 1 AS roi_index, unnest(rois) AS r FROM f)) "
                f"TO '{output}/rois.parquet' {parquet}")
    return read, time.perf_counter() - start


def print_floors(data: Path, one: Path, out: Path, frames: int, t_parse: float) -> None:
    """What bounds the ratio from below, each measured in this run."""
    per_parse = t_parse / frames
    budget = 2 * t_parse / 0.7 / frames  # CPU time per frame the goal leaves on 2 cores with no fixed cost at all

    def line(label: str, seconds_per_frame: float) -> None:
        print(f"  {label:<46}: {seconds_per_frame * 1e6:6.1f} us/frame  {seconds_per_frame / per_parse:5.2f}x parse")

    in_process = convert(one, out, 1, "--direct_running_mode=in_memory")
    print(f"floors (one core each; parse loop = {per_parse * 1e6:.1f} us/frame; the goal leaves {budget * 1e6:.1f} us of CPU "
          f"per frame on 2 cores, and {t_parse / 0.7:.2f} s in all):")
    print(f"  {'Beam fixed cost, in-process 1-frame convert':<46}: {in_process:6.2f} s")
    line("msgspec typed decode (validation fast path)", parse_with_msgspec(data) / frames)
    line("framebeam chunk functions, no Beam", chunk_functions(data, min(frames, 10_000)))
    line("pyarrow.json reader -> columns (C++)", arrow_reader(data) / frames)
    duck = duckdb_floors(data, out.with_name("out-duckdb"))
    if duck is not None:
        line("DuckDB read_json -> columns (C++)", duck[0] / frames)
        line("DuckDB read + 3 tables to Parquet, no checks", duck[1] / frames)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-floors", action="store_true", help="skip the floor measurements after the runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-bench-"))
    try:
        data = tmp / "in"
        data.mkdir()
        size = write_frames(data, args.frames, args.shards)
        print(f"{args.frames:,} frames, {size / 1e6:.1f} MB in {args.shards} shards")
        one = tmp / "one"
        one.mkdir()
        write_frames(one, 1, 1)
        for _ in range(args.repeat):
            t_parse = parse_only(data)
            t_convert = convert(data, tmp / "out", args.workers)
            t_fixed = convert(one, tmp / "out-one", args.workers)  # start-up, graph, workers, publish: no data
            print(f"parse-only loop (1 core): {t_parse:6.2f} s  {args.frames / t_parse:10,.0f} records/s")
            print(f"framebeam convert       : {t_convert:6.2f} s  {args.frames / t_convert:10,.0f} records/s")
            print(f"ratio convert/parse     : {t_parse / t_convert:.2f}  (goal >= 0.7)")
            print(f"  fixed cost (1 frame)  : {t_fixed:6.2f} s  -> the goal needs convert <= {t_parse / 0.7:.2f} s in all")
            steady = max(t_convert - t_fixed, 1e-9)
            print(f"  steady state          : {args.frames / steady:10,.0f} records/s, ratio {t_parse / steady:.2f} (start-up excluded)")
        if not args.no_floors:
            print_floors(data, one, tmp / "out-floor", args.frames, t_parse)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
