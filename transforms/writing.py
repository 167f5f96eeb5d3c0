"""Writing tables: rows -> Parquet files in the run's own folder, then one atomic publish at the end.

Workers write each bundle's rows as Parquet files under ``OUTPUT/_runs/<run_id>/_incoming/<table>/``
and report the files they wrote. One final step (``publish``) completes the run folder with only the
files reported by committed bundles (a retried bundle's orphans are dropped), an empty file for a table
with no rows (so ``SELECT * FROM 'OUTPUT/t/*.parquet'`` always works), ``summary.json`` and, last,
``_SUCCESS``; then it exposes that folder as the output in one atomic step (``expose_run``), so a run
killed at any moment leaves the previous complete output (or nothing), never a mix.

Only framebeam's own names are ever written, replaced or deleted here: the run folders under ``_runs/``,
``_current``, ``_SUCCESS``, ``summary.json`` and the links to ``_current``. The launcher holds the
output's lease (``transforms.lease``) for the whole run, so no other run is live when ``publish``
deletes the folders of earlier and killed runs; a failed or interrupted run deletes its own folder.
"""
from __future__ import annotations

import datetime as dt
import os
import posixpath
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.flattening import TableRows, rows_to_table
from transforms.schema import TABLES, is_computed
from transforms.storage import Target
from transforms.uris import redact_value

SUCCESS_MARKER = "_SUCCESS"
SUMMARY_FILE = "summary.json"
RUNS_DIR = "_runs"  # OUTPUT/_runs/<run_id>/: one complete, self-contained output per run
INCOMING_DIR = "_incoming"  # OUTPUT/_runs/<run_id>/_incoming/: files workers wrote, before publish
CURRENT_LINK = "_current"  # local disk: OUTPUT/_current -> _runs/<run_id>, swapped atomically
PAUSE_BEFORE_SWAP_ENV = "FRAMEBEAM_TEST_PAUSE_BEFORE_PUBLISH_SWAP"
# Held while a run is exposed, and by an interrupted launcher while it decides whether its run folder was
# published (on the in-process runner the publish step runs in one of its threads).
PUBLISH_LOCK = threading.Lock()
STOPPING = threading.Event()  # set by an interrupted launcher: in-process writers stop writing


class NotOurs(Exception):
    """A name framebeam would write is taken by something framebeam did not write: it is left alone."""


class WrittenFile(NamedTuple):
    table: str
    path: str
    rows: int


def join_path(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts)


def write_parquet(table: pa.Table, place: Target | str) -> None:
    """One Parquet file; every string in it is redacted first (``redact_table``): nothing written
    escapes the one redaction function, whichever column a credential hid in."""
    table = redact_table(table)
    if STOPPING.is_set():
        raise RuntimeError("the run was interrupted")
    target = Target.of(place)
    target.fs.makedirs(posixpath.dirname(target.path), exist_ok=True)
    with target.open("wb") as f:
        pq.write_table(table, f, compression="zstd", row_group_size=128 * 1024, use_dictionary=dictionary_columns(table.schema))


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Parquet column paths worth dictionary-encoding: all but floats (polys and fractions rarely repeat,
    and their dictionaries cost more time than they save: bench/convert_bench.py)."""
    def leaves(name: str, type_: pa.DataType):
        if pa.types.is_list(type_) or pa.types.is_large_list(type_):
            yield from leaves(f"{name}.list.element", type_.value_type)
        elif pa.types.is_struct(type_):
            for f in type_:
                yield from leaves(f"{name}.{f.name}", f.type)
        elif not pa.types.is_floating(type_):
            yield name
    return [path for f in schema for path in leaves(f.name, f.type)]


def staging_dir(output: Target | str, run_id: str) -> Target:
    """Where workers write a run's files before publish: inside the run's own folder, never in place."""
    return Target.of(output).join(RUNS_DIR, run_id, INCOMING_DIR)


class TableBuffer:
    """Rows gathered per table until there are enough for a good-sized Parquet file.

    Bounded by bytes (and rows) of all tables together: a worker's memory must not grow with the
    number of tables that happen to fill at once, nor with the size of its rows (150,000 crop rows of
    4000x3000 masks held ~0.9 GB when the bound was a row count: bench/memory_bench.py). Rows come as
    tuples or as Arrow tables; the size of tuple rows is estimated from a sample of each batch.
    """

    def __init__(self, max_rows: int, max_bytes: int = 32 * 1024 * 1024):
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows: dict[str, list] = defaultdict(list)
        self.batches: dict[str, list[pa.Table]] = defaultdict(list)
        self.counts: Counter = Counter()
        self.sizes: Counter = Counter()
        self.total = 0
        self.total_bytes = 0

    def add(self, item: TableRows) -> str | None:
        """The table to flush now (the largest in bytes) when the buffer is full, else None."""
        n = len(item.rows)
        if not n:
            return None
        if isinstance(item.rows, pa.Table):
            self.batches[item.table].append(item.rows)
            size = item.rows.nbytes
        else:
            self.rows[item.table].extend(item.rows)
            size = estimate_rows_bytes(item.rows)
        self.counts[item.table] += n
        self.sizes[item.table] += size
        self.total += n
        self.total_bytes += size
        if self.total < self.max_rows and self.total_bytes < self.max_bytes:
            return None
        return max(self.sizes, key=self.sizes.__getitem__)

    def tables(self) -> list[str]:
        return list(self.counts)

    def take(self, table: str) -> pa.Table:
        pieces = self.batches.pop(table, [])
        rows = self.rows.pop(table, [])
        if rows:
            pieces.append(rows_to_table(table, rows))
        self.total -= self.counts.pop(table, 0)
        self.total_bytes -= self.sizes.pop(table, 0)
        if len(pieces) == 1:
            return pieces[0]
        return pa.concat_tables(pieces) if pieces else TABLES[table].empty_table()


_SAMPLE_ROWS = 16


def estimate_rows_bytes(rows: Sequence) -> int:
    """About how many bytes ``rows`` (tuples) take as Python objects: a sample of up to 16 rows, scaled.

    Strings and bytes count by length (crop RLE text is most of a big mask's rows), containers by their
    items; 56 bytes per object covers the headers. Rows of one batch come from one producer and are alike.
    """
    n = len(rows)
    step = max(1, n // _SAMPLE_ROWS)
    sample = rows[::step][:_SAMPLE_ROWS]
    total = sum(_value_bytes(r) for r in sample)
    return total * n // len(sample)


def _value_bytes(v) -> int:
    cls = v.__class__
    if cls is str or cls is bytes:
        return 56 + len(v)
    if cls is tuple or cls is list:
        return 56 + 8 * len(v) + sum(_value_bytes(x) for x in v)
    if cls is dict:
        return 232 + sum(_value_bytes(k) + _value_bytes(x) for k, x in v.items())
    return 32


# --- redaction at the sink: every string of every table written ------------------------------------------

# RE2 (Arrow) pre-filter: only values that could hold a credential go through uris.redact in Python.
_CANDIDATE = r"@|%40|\\u0040|=|%3[dD]|\\u003[dD]|(?i:bearer |basic |token )"


def redact_table(table: pa.Table) -> pa.Table:
    """``table`` with ``uris.redact`` applied to every string value, nested ones included, except in columns
    framebeam computes from pixels (``schema.is_computed``): COCO RLE strings hold '@', '=' and capitals, so
    redaction would both cost (every one matched the pre-filter: 40 % of a CamVid run's time) and corrupt some
    (';KEY=Y...' became ';KEY=***': ~1.5 per 1,000 random 2,000-character strings)."""
    for i, column in enumerate(table.columns):
        if not _has_strings(column.type) or is_computed(table.field(i)):
            continue
        chunks = [_redact_array(c) for c in column.chunks]
        if any(new is not old for new, old in zip(chunks, column.chunks)):
            table = table.set_column(i, table.field(i), pa.chunked_array(chunks, column.type))
    return table


def _has_strings(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_strings(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_strings(f.type) for f in t)
    return False


def _redact_array(arr: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    from transforms.uris import redact

    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        hits = pc.match_substring_regex(arr, _CANDIDATE)
        if not pc.any(hits).as_py():
            return arr
        return pa.array([redact(v) if h else v for v, h in zip(arr.to_pylist(), hits.to_pylist())], t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values = arr.values
        new = _redact_array(values)
        if new is values:
            return arr
        cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
        return cls.from_arrays(arr.offsets, new, type=t, mask=arr.is_null() if arr.null_count else None)
    if pa.types.is_struct(t):
        fields = arr.flatten()
        new = [_redact_array(f) for f in fields]
        if all(a is b for a, b in zip(new, fields)):
            return arr
        return pa.StructArray.from_arrays(new, fields=list(t), mask=arr.is_null() if arr.null_count else None)
    return arr


def write_rows(table: str, rows: Sequence | pa.Table, directory: Target | str) -> WrittenFile:
    """One Parquet file of rows (tuples in schema order, or an Arrow table) in ``directory/table/``."""
    data = rows if isinstance(rows, pa.Table) else rows_to_table(table, rows)
    target = Target.of(directory).join(table, f"part-{uuid.uuid4().hex}.parquet")
    write_parquet(data, target)
    return WrittenFile(table, target.url, len(data))


def publish(
    output: Target | str,
    run_id: str,
    written: Iterable[WrittenFile],
    tables: Sequence[str],
    summary: dict[str, Any],
    before_success: Callable[[Target, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Complete the run's own folder ``OUTPUT/_runs/<run_id>/``, then expose it in one atomic step.

    Inside the run folder: the reported files are renamed to ``<table>/part-NNNNN.parquet`` (unreported
    orphans of retried bundles stay behind in the incoming folder and are deleted), summary.json is
    written, ``before_success`` runs on the run folder (e.g. the report), and ``_SUCCESS`` comes last.
    Then the run is exposed (see ``expose_run``) and the folders of earlier or killed runs are removed.
    """
    output = Target.of(output)
    success = output.join(RUNS_DIR, run_id, SUCCESS_MARKER)
    if success.exists():  # a retried publish bundle: the run folder is already complete
        summary = orjson.loads(success.read_bytes())
    else:
        summary = _complete_run_folder(output.join(RUNS_DIR, run_id), run_id, written, tables, summary, before_success)
    with PUBLISH_LOCK:
        if STOPPING.is_set():
            raise RuntimeError("the run was interrupted")
        expose_run(output, run_id, summary)
    remove_other_runs(output, keep=run_id)
    return summary


def _complete_run_folder(run: Target, run_id: str, written: Iterable[WrittenFile], tables: Sequence[str],
                         summary: dict[str, Any], before_success: Callable[[Target, dict[str, Any]], None] | None) -> dict[str, Any]:
    by_table: dict[str, list[WrittenFile]] = defaultdict(list)
    for w in written:
        by_table[w.table].append(w)
    row_counts, files = {}, {}
    for table in tables:
        run.join(table).makedirs()
        reported = sorted(by_table.get(table, []), key=lambda w: w.path)
        names = [f"{table}/part-{i:05d}.parquet" for i in range(len(reported))]
        for w, name in zip(reported, names):
            run.fs.mv(run.at(w.path).path, run.sub(name))
        if not reported:  # so that SELECT * FROM 'OUTPUT/t/*.parquet' works on an empty table too
            names = [f"{table}/part-empty.parquet"]
            write_parquet(TABLES[table].empty_table(), run.join(names[0]))
        row_counts[table] = sum(w.rows for w in reported)
        files[table] = names
    incoming = run.join(INCOMING_DIR)
    if incoming.exists():
        incoming.rm(recursive=True)
    summary = {**summary, "tables": row_counts, "run_id": run_id, "run_folder": f"{RUNS_DIR}/{run_id}", "files": files,
               "published_at": summary.get("published_at") or now_iso()}  # given: the time history rows carry
    summary = redact_value(summary)
    text = orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    run.join(SUMMARY_FILE).write_bytes(text)
    if before_success is not None:
        before_success(run, summary)
    run.join(SUCCESS_MARKER).write_bytes(text)
    return summary


def expose_run(output: Target, run_id: str, summary: dict[str, Any]) -> None:
    """Make a complete run folder the output, in one atomic step.

    Local disk: every entry of the run folder (tables, summary.json, report, _SUCCESS) is reached through
    a fixed symlink ``OUTPUT/<name> -> _current/<name>``, and ``OUTPUT/_current -> _runs/<run_id>`` is
    swapped with one ``rename(2)`` (os.replace of a symlink). ``OUTPUT/<table>/*.parquet`` keeps working;
    before the swap readers see the previous run whole (or dangling links: nothing), after it the new one.

    Object stores have no rename: the run folder stays where it is and ``OUTPUT/_SUCCESS`` — one object,
    replaced by one PUT, written last — names it (``run_folder``) and lists its files (``files``). Readers
    there must read the tables through ``_SUCCESS``; summary.json beside it is a convenience copy.
    """
    text = orjson.dumps(redact_value(summary), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if not output.is_local:
        output.join(SUMMARY_FILE).write_bytes(text)
        _pause_for_tests()
        output.join(SUCCESS_MARKER).write_bytes(text)
        return
    out = output.path
    names = sorted(os.listdir(join_path(out, RUNS_DIR, run_id)))
    for name in names:
        _link_through_current(out, name)
    _pause_for_tests()
    _replace_symlink(join_path(out, CURRENT_LINK), f"{RUNS_DIR}/{run_id}")
    _fsync_dir(out)
    for name in os.listdir(out):  # links to tables the new run does not have (e.g. run, then convert)
        path = join_path(out, name)
        if os.path.islink(path) and not os.path.exists(path) and os.readlink(path) == f"{CURRENT_LINK}/{name}":
            os.remove(path)


def _link_through_current(out: str, name: str) -> None:
    path = join_path(out, name)
    target = f"{CURRENT_LINK}/{name}"
    if os.path.islink(path) and os.readlink(path) == target:
        return
    if os.path.lexists(path):
        # Not a link framebeam made: never moved or replaced (the CLI refuses such outputs before any work).
        raise NotOurs(f"{path} exists and framebeam did not write it; it was left alone and nothing was published")
    _replace_symlink(path, target)


def _replace_symlink(path: str, target: str) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    os.symlink(target, tmp)
    os.replace(tmp, path)  # rename(2): atomic, readers see the old link or the new one


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pause_for_tests() -> None:
    """Test hook: hold the publish window open so a test can SIGKILL the run inside it."""
    seconds = float(os.environ.get(PAUSE_BEFORE_SWAP_ENV, "0") or 0)
    if seconds > 0:
        print(f"framebeam: pausing {seconds} s before the publish swap ({PAUSE_BEFORE_SWAP_ENV})", flush=True)
        time.sleep(seconds)


def remove_other_runs(output: Target, keep: str | None) -> list[str]:
    """Delete the folders of earlier and of killed runs under ``_runs/`` (framebeam's own folder), all but
    ``keep``; the names removed.

    Safe because the caller's run holds the output's lease: no other run into this output is live.
    """
    runs = output.join(RUNS_DIR)
    removed = []
    for path in runs.ls() if runs.exists() else []:
        name = posixpath.basename(path.rstrip("/"))
        if name != keep:
            runs.fs.rm(path, recursive=True)
            removed.append(name)
    return removed


def published_run_id(output: Target | str) -> str | None:
    """The run id of the output's current complete run, or None."""
    try:
        return read_summary(output).get("run_id")
    except (OSError, ValueError):
        return None


def remove_leftover_runs(output: Target | str) -> list[str]:
    """Before a run (holding the lease): delete run folders killed runs left, keeping the published one."""
    output = Target.of(output)
    return remove_other_runs(output, keep=published_run_id(output))


def remove_own_run(output: Target | str, run_id: str) -> bool:
    """After a failed or interrupted run: delete its own run folder unless it was published. True if removed."""
    output = Target.of(output)
    with PUBLISH_LOCK:  # an in-process publish either finished its swap or will not start one
        if published_run_id(output) == run_id:
            return False
        run = output.join(RUNS_DIR, run_id)
        for _ in range(3):  # a writer thread may recreate a folder while it is deleted
            try:
                if run.exists():
                    run.rm(recursive=True)
                break
            except FileNotFoundError:
                continue
            except OSError:
                time.sleep(0.1)
        return True


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_summary(output: Target | str) -> dict[str, Any]:
    # _SUCCESS holds the summary and is what makes a run visible, on local disk and object stores alike.
    return orjson.loads(Target.of(output).join(SUCCESS_MARKER).read_bytes())


def table_globs(output: Target | str) -> dict[str, str]:
    """Where each table of the current complete run is: a glob any Parquet reader takes.

    Local outputs expose ``OUTPUT/<table>/*.parquet``; on object stores the tables stay in the run
    folder named by ``_SUCCESS`` (there is no atomic rename there), so ask this, or ``framebeam tables``.
    """
    output = Target.of(output)
    summary = read_summary(output)
    base = output.url.rstrip("/") if output.is_local else join_path(output.url, summary["run_folder"])
    return {table: f"{base}/{table}/*.parquet" for table in summary["tables"]}


def finding_counts(items: Iterable[TableRows]) -> Counter:
    """Counts for summary.json: (severity, code) over issues rows, plus ('frames'|'records'|'masks', what)."""
    c: Counter = Counter()
    for item in items:
        if item.table == "issues":
            for row in item.rows:
                c[(row.severity, row.code)] += 1
                if row.frame_id is None and row.shard is not None and row.code.startswith(("json_", "record_")):
                    c[("records", "rejected")] += 1  # a record that never became a frame
        elif item.table == "frames":
            c[("frames", "total")] += len(item.rows)
            c[("frames", "valid")] += _count_equal(item.rows, "valid", True)
        elif item.table == "masks":
            c[("masks", "total")] += len(item.rows)
            c[("masks", "decoded")] += _count_equal(item.rows, "status", "ok")
    return c


def _count_equal(rows: Sequence | pa.Table, column: str, value: Any) -> int:
    """How many rows (named rows, or an Arrow table) hold ``value`` in ``column``."""
    if isinstance(rows, pa.Table):
        return pc.sum(pc.equal(rows.column(column), value)).as_py() or 0
    return sum(1 for row in rows if getattr(row, column) == value)


COUNT_KINDS = ("frames", "records", "masks")


@dataclass(frozen=True)
class RunInfo:
    command: str
    parameters: dict[str, Any]
    started_at: str


def build_summary(info: RunInfo, counts: Counter, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json: counts by severity and code (equal to the issues table), the verdict, the run's
    parameters and versions, plus ``extras`` computed by other steps (labels, drift)."""
    from transforms.verdict import verdict

    by_code: dict[str, dict[str, Any]] = {}
    severities: Counter = Counter()
    for (kind, code), n in sorted(counts.items()):
        if kind in COUNT_KINDS:
            continue
        by_code[code] = {"severity": kind, "count": n}
        severities[kind] += n
    frames = counts.get(("frames", "total"), 0)
    valid = counts.get(("frames", "valid"), 0)
    rejected = counts.get(("records", "rejected"), 0)
    summary = {
        "command": info.command,
        "parameters": info.parameters,
        "started_at": info.started_at,
        "frames": frames,
        "valid_frames": valid,
        "records": frames + rejected,
        "invalid_records": frames - valid + rejected,
        "masks": {"referenced": counts.get(("masks", "total"), 0), "decoded": counts.get(("masks", "decoded"), 0)},
        "findings": {"error": severities.get("error", 0), "warning": severities.get("warning", 0), "info": severities.get("info", 0)},
        "findings_by_code": by_code,
        "versions": package_versions(),
        **(extras or {}),
    }
    summary.update(verdict(summary, info.parameters))
    return summary


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("framebeam", "apache-beam", "pyarrow", "numpy", "pillow", "orjson", "fsspec", "av"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
