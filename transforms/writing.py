"""Writing tables: rows -> Parquet files in a staging folder, then one publish step at the end.

Workers write each bundle's rows as Parquet files under ``OUTPUT/_staging/<run_id>/<table>/`` and
report the files they wrote. Only files reported by committed bundles are published (a retried
bundle's orphans are not), by one final step that moves them to ``OUTPUT/<table>/``, writes an empty
file for a table with no rows (so ``SELECT * FROM 'OUTPUT/t/*.parquet'`` always works), then
``summary.json`` and, last, the ``_SUCCESS`` marker: readers wait for it.
"""
from __future__ import annotations

import datetime as dt
import posixpath
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.flattening import TableRows, rows_to_table
from transforms.schema import TABLES

SUCCESS_MARKER = "_SUCCESS"
SUMMARY_FILE = "summary.json"
STAGING_DIR = "_staging"


class WrittenFile(NamedTuple):
    table: str
    path: str
    rows: int


def join_path(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts)


def _fs(path: str, storage_options: dict[str, Any] | None):
    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def write_parquet(table: pa.Table, path: str, storage_options: dict[str, Any] | None = None) -> None:
    fs, p = _fs(path, storage_options)
    fs.makedirs(posixpath.dirname(p), exist_ok=True)
    with fs.open(p, "wb") as f:
        pq.write_table(table, f, compression="zstd", row_group_size=128 * 1024)


def staging_dir(output: str, run_id: str) -> str:
    return join_path(output, STAGING_DIR, run_id)


class TableBuffer:
    """Rows gathered per table until there are enough for a good-sized Parquet file."""

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self.rows: dict[str, list] = defaultdict(list)

    def add(self, item: TableRows) -> bool:
        """True when the table is full and should be flushed."""
        buf = self.rows[item.table]
        buf.extend(item.rows)
        return len(buf) >= self.max_rows

    def take(self, table: str) -> list:
        return self.rows.pop(table, [])


def write_rows(table: str, rows: Sequence, directory: str, storage_options: dict[str, Any] | None = None) -> WrittenFile:
    path = join_path(directory, table, f"part-{uuid.uuid4().hex}.parquet")
    write_parquet(rows_to_table(table, rows), path, storage_options)
    return WrittenFile(table, path, len(rows))


def publish(
    output: str,
    run_id: str,
    written: Iterable[WrittenFile],
    tables: Sequence[str],
    summary: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move the reported staging files into place, then write summary.json and _SUCCESS (last)."""
    fs, out = _fs(output, storage_options)
    _, stage = _fs(staging_dir(output, run_id), storage_options)
    by_table: dict[str, list[WrittenFile]] = defaultdict(list)
    for w in written:
        by_table[w.table].append(w)
    if fs.exists(join_path(out, SUCCESS_MARKER)):
        fs.rm(join_path(out, SUCCESS_MARKER))
    row_counts = {}
    for table in tables:
        final_dir = join_path(out, table)
        if fs.exists(final_dir):
            fs.rm(final_dir, recursive=True)
        fs.makedirs(final_dir, exist_ok=True)
        files = sorted(by_table.get(table, []), key=lambda w: w.path)
        if not files:
            write_parquet(TABLES[table].empty_table(), join_path(output, table, "part-empty.parquet"), storage_options)
        for i, w in enumerate(files):
            _, src = _fs(w.path, storage_options)
            fs.mv(src, join_path(final_dir, f"part-{i:05d}.parquet"))
        row_counts[table] = sum(w.rows for w in files)
    if fs.exists(stage):
        fs.rm(stage, recursive=True)
    try:
        fs.rmdir(join_path(out, STAGING_DIR))
    except (OSError, NotImplementedError):
        pass  # another run is staging too, or the store has no folders
    summary = {**summary, "tables": row_counts, "published_at": now_iso()}
    text = orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    with fs.open(join_path(out, SUMMARY_FILE), "wb") as f:
        f.write(text)
    with fs.open(join_path(out, SUCCESS_MARKER), "wb") as f:
        f.write(text)
    return summary


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_summary(output: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    fs, out = _fs(output, storage_options)
    with fs.open(join_path(out, SUMMARY_FILE), "rb") as f:
        return orjson.loads(f.read())


def finding_counts(items: Iterable[TableRows]) -> Counter:
    """(severity, code) -> count over issues rows; frames and valid frames under ('frames', ...)."""
    c: Counter = Counter()
    for item in items:
        if item.table == "issues":
            for row in item.rows:
                c[(row[3], row[4])] += 1
        elif item.table == "frames":
            c[("frames", "total")] += len(item.rows)
            c[("frames", "valid")] += sum(1 for row in item.rows if row[8])
    return c


@dataclass(frozen=True)
class RunInfo:
    command: str
    parameters: dict[str, Any]
    started_at: str


def build_summary(info: RunInfo, counts: Counter) -> dict[str, Any]:
    by_code: dict[str, dict[str, Any]] = {}
    severities: Counter = Counter()
    for (kind, code), n in sorted(counts.items()):
        if kind == "frames":
            continue
        by_code[code] = {"severity": kind, "count": n}
        severities[kind] += n
    return {
        "command": info.command,
        "parameters": info.parameters,
        "started_at": info.started_at,
        "frames": counts.get(("frames", "total"), 0),
        "valid_frames": counts.get(("frames", "valid"), 0),
        "findings": {"error": severities.get("error", 0), "warning": severities.get("warning", 0)},
        "findings_by_code": by_code,
        "versions": package_versions(),
    }


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("framebeam", "apache-beam", "pyarrow", "numpy", "pillow", "orjson", "fsspec", "av"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
