"""Atomic outputs: a run killed at any moment (real SIGKILL) leaves the previous complete output or nothing.

Two levels: `publish` itself, driven without Beam (local disk and an object store without rename), and
`framebeam run` on the sample dataset killed as a whole process group right after start, mid-run and
inside the publish window (held open by the FRAMEBEAM_TEST_PAUSE_BEFORE_PUBLISH_SWAP hook).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from transforms import ownership, writing
from transforms.schema import HISTORY_TABLES, TABLES

TABLE_NAMES = ("frames", "issues")


def frame_row(i: int) -> tuple:
    """One `frames` row in schema order, built from the schema so the test follows its changes."""
    values = {"frame_id": f"f{i}", "shard": "s.jsonl", "line": i}
    return tuple(values.get(field.name, None if field.nullable else filler(field.type)) for field in TABLES["frames"])


def filler(arrow_type: pa.DataType) -> object:
    if pa.types.is_boolean(arrow_type):
        return True
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return 0
    if pa.types.is_list(arrow_type):
        return []
    return ""


def stage_run(output: str, run_id: str, rows: int) -> list[writing.WrittenFile]:
    """What the workers do: write a run's files into its incoming folder, plus one orphan (a retried bundle)."""
    stage = writing.staging_dir(output, run_id)
    written = [writing.write_rows("frames", [frame_row(i) for i in range(rows)], stage)]
    writing.write_rows("frames", [frame_row(999)], stage)  # never reported: must not be published
    return written


def publish_run(output: str, run_id: str, rows: int) -> dict:
    return writing.publish(output, run_id, stage_run(output, run_id, rows), TABLE_NAMES, {"frames": rows})


def visible(output: Path) -> dict[str, bytes]:
    """Every file a reader reaches from the output folder (through links), by path; run folders left out."""
    files = {}
    if not output.exists():
        return files
    for name in os.listdir(output):
        if name in (writing.RUNS_DIR, writing.CURRENT_LINK, ownership.LOGS_DIR, ownership.LEASE, ownership.MARKER):
            continue  # run folders, the run logs, the lease and the ownership marker are no output a reader reads
        path = output / name
        if path.is_file():
            files[name] = path.read_bytes()
        elif path.is_dir():
            for root, _, names in os.walk(path, followlinks=True):
                for n in names:
                    files[os.path.relpath(os.path.join(root, n), output)] = Path(root, n).read_bytes()
    return files


def count(output: Path, table: str) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{output}/{table}/*.parquet')").fetchall()[0][0]


# --- publish without Beam ---------------------------------------------------------------------------

def test_publish_exposes_tables_through_the_documented_glob(tmp_path):
    out = tmp_path / "out"
    summary = publish_run(str(out), "run-a", rows=3)
    assert count(out, "frames") == 3  # the orphan is not there
    assert count(out, "issues") == 0  # empty table: one empty file, so the glob still works
    assert summary["files"] == {"frames": ["frames/part-00000.parquet"], "issues": ["issues/part-empty.parquet"]}
    assert writing.read_summary(str(out))["run_id"] == "run-a"
    assert (out / "summary.json").read_bytes() == (out / "_SUCCESS").read_bytes()
    assert sorted(os.listdir(out / writing.RUNS_DIR)) == ["run-a"]


def test_republish_replaces_the_output_and_removes_killed_runs(tmp_path):
    out = tmp_path / "out"
    publish_run(str(out), "run-a", rows=3)
    stage_run(str(out), "run-killed", rows=5)  # a run killed before publish: files staged, never exposed
    assert count(out, "frames") == 3
    publish_run(str(out), "run-b", rows=4)
    assert count(out, "frames") == 4
    assert sorted(os.listdir(out / writing.RUNS_DIR)) == ["run-b"]


def test_a_retried_publish_is_idempotent(tmp_path):
    out = tmp_path / "out"
    written = stage_run(str(out), "run-a", rows=3)
    first = writing.publish(str(out), "run-a", written, TABLE_NAMES, {})
    again = writing.publish(str(out), "run-a", written, TABLE_NAMES, {})  # the staged files are gone by now
    assert again == first and count(out, "frames") == 3


def test_tables_the_new_run_lacks_disappear_with_the_swap(tmp_path):
    out = tmp_path / "out"
    writing.publish(str(out), "run-a", stage_run(str(out), "run-a", 2), ("frames", "issues", "masks"), {})
    assert (out / "masks").exists()
    publish_run(str(out), "run-b", rows=2)
    assert not os.path.lexists(out / "masks")


def test_publish_never_moves_or_replaces_what_it_did_not_write(tmp_path):
    """The pre-0.1 layout migration is gone: a real folder where a table link would go stays as it is."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "part-00000.parquet").write_bytes(b"not framebeam's")
    (out / "_staging" / "old-run").mkdir(parents=True)
    with pytest.raises(writing.NotOurs, match="left alone"):
        publish_run(str(out), "run-a", rows=2)
    assert (out / "frames" / "part-00000.parquet").read_bytes() == b"not framebeam's"
    assert (out / "_staging" / "old-run").is_dir() and not os.path.lexists(out / writing.CURRENT_LINK)


def test_object_store_publishes_a_manifest_in_success_written_last():
    """memory:// has no rename and no links: the run folder stays, _SUCCESS names it and lists its files."""
    out = "memory://atomic-test/out"
    fs = fsspec.filesystem("memory")
    try:
        publish_run(out, "run-a", rows=3)
        publish_run(out, "run-b", rows=4)
        summary = writing.read_summary(out)
        assert summary["run_folder"] == "_runs/run-b"
        files = [f"{out}/{summary['run_folder']}/{name}" for name in summary["files"]["frames"]]
        assert sum(pq.read_table(fs.open(f)).num_rows for f in files) == 4
        assert [p.rsplit("/", 1)[-1] for p in fs.ls("/atomic-test/out/_runs", detail=False)] == ["run-b"]
    finally:
        fs.rm("/atomic-test", recursive=True)


PUBLISH_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tests.test_atomic import publish_run
    publish_run({out!r}, "run-b", rows=7)
""")


def test_sigkill_inside_the_publish_window_leaves_the_previous_output(tmp_path):
    """publish alone in a process, held just before its swap, then SIGKILLed: nothing changes for readers."""
    out = tmp_path / "out"
    publish_run(str(out), "run-a", rows=3)
    before = visible(out)
    env = {**os.environ, writing.PAUSE_BEFORE_SWAP_ENV: "30"}
    proc = subprocess.Popen([sys.executable, "-c", PUBLISH_SCRIPT.format(repo=str(REPO), out=str(out))], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert "pausing" in proc.stdout.readline()  # the run folder is complete, the swap is next
        assert (out / writing.RUNS_DIR / "run-b" / writing.SUCCESS_MARKER).exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert visible(out) == before and count(out, "frames") == 3
    publish_run(str(out), "run-c", rows=5)  # the next successful run cleans up after the killed one
    assert count(out, "frames") == 5 and sorted(os.listdir(out / writing.RUNS_DIR)) == ["run-c"]


# --- the whole CLI, killed as a process group -------------------------------------------------------

@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    from transforms.sample import write_sample

    directory = tmp_path_factory.mktemp("atomic") / "sample"
    write_sample(str(directory))
    return directory


def start_run(sample: Path, out: Path, pause_s: float = 0) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).with_name("framebeam")), "run", "--input", f"{sample}/frames-*",
           "--mask-labels", str(sample / "mask_labels.json"), "--output", str(out), "--quiet",
           "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    env = {**os.environ, writing.PAUSE_BEFORE_SWAP_ENV: str(pause_s)}
    # Its own session, so one killpg reaches the CLI and every worker it started, as a real kill would.
    return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"framebeam ended (status {proc.returncode}) before the moment to kill it: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            kill_group(proc)
            pytest.fail("the moment to kill never came")
        time.sleep(0.02)


def runs(out: Path) -> list[Path]:
    return sorted((out / writing.RUNS_DIR).iterdir()) if (out / writing.RUNS_DIR).exists() else []


def new_run_has(out: Path, known: list[Path], relative: str) -> bool:
    return any(r not in known and (r / relative).exists() for r in runs(out))


def table_contents(out: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted (row order is not part of the contract); the history tables aside (each run adds to them)."""
    contents = {}
    for name in sorted(os.listdir(out)):
        if not name.startswith("_") and (out / name).is_dir() and name not in HISTORY_TABLES:
            rows = duckdb.sql(f"SELECT * FROM read_parquet('{out}/{name}/*.parquet')").fetchall()
            contents[name] = sorted(rows, key=repr)
    return contents


@pytest.mark.slow
def test_framebeam_run_killed_at_any_moment_leaves_the_previous_output(sample, tmp_path):
    out = tmp_path / "out"

    # Into an empty output, killed right after start: still nothing to read.
    proc = start_run(sample, out)
    time.sleep(0.5)
    kill_group(proc)
    assert visible(out) == {}

    first = start_run(sample, out)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    before, contents, summary = visible(out), table_contents(out), writing.read_summary(str(out))
    assert "_SUCCESS" in before and "frames/part-00000.parquet" in before

    moments = {
        "right after start": lambda known: None,
        "mid-run (workers writing)": lambda known: new_run_has(out, known, writing.INCOMING_DIR),
        "in the publish window": lambda known: new_run_has(out, known, writing.SUCCESS_MARKER),
    }
    for moment, ready in moments.items():
        known = runs(out)
        proc = start_run(sample, out, pause_s=60)
        if moment == "right after start":
            time.sleep(0.3)
        else:
            wait_for(lambda: ready(known), proc)
        kill_group(proc)
        assert visible(out) == before, f"killed {moment}: the output changed"
    # The last killed run's folder is still there (each run removes what killed runs left, at its start) ...
    assert len(runs(out)) >= 2

    again = start_run(sample, out)
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert len(runs(out)) == 1  # ... until the next run
    assert table_contents(out) == contents  # same input, same output: identical tables, row order aside
    # The killed runs left no trace in the history: the first complete run, then this one.
    history_runs = duckdb.sql(f"SELECT run_id FROM read_parquet('{out}/history_runs/*.parquet') ORDER BY published_at").fetchall()
    assert [r for (r,) in history_runs] == [summary["run_id"], writing.read_summary(str(out))["run_id"]]
    assert writing.read_summary(str(out))["findings_by_code"] == summary["findings_by_code"]
