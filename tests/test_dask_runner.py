"""framebeam on a real Dask cluster: a `distributed` scheduler and two single-threaded worker processes
on 127.0.0.1, talking over TCP, with a real shuffle and pickling between processes.

Each run's tables must equal the local FnApiRunner's (row order aside, compared with DuckDB): on the
sample, on mask videos, on an s3:// input on moto, and after a worker process is killed mid-run
(the scheduler reruns its tasks on the restarted worker; publish must still happen exactly once).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.servers import forget_cached_filesystems, moto_s3, s3  # noqa: F401 - fixtures
from transforms.writing import RUNS_DIR, SUCCESS_MARKER, SUMMARY_FILE

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed: pip install 'framebeam[dask]'")

pytestmark = pytest.mark.slow
BUCKET = "dask-bucket"
# Columns that differ between any two runs whatever the runner: none in the tables. summary.json has these.
SUMMARY_PER_RUN = {"run_id", "run_folder", "published_at", "started_at", "elapsed_s", "files", "parameters", "versions"}
# The history tables carry each run's identity; everything else in them must agree.
RUN_IDENTITY = {"run_id", "started_at", "published_at", "baseline", "baseline_run_id"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    """A scheduler and two worker processes (one thread each), loopback only; stopped afterwards."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=40) as local:
        with distributed.Client(local) as client:
            client.wait_for_workers(2, timeout=60)
            yield client


def dask_flags(client: distributed.Client) -> list[str]:
    return ["--runner", "DaskRunner", "--dask_client_address", client.scheduler.address]


def run_args(data: str, out: str) -> list[str]:
    return ["run", "--input", f"{data}/frames-*", "--mask-labels", f"{data}/mask_labels.json", "--output", out, "--quiet",
            "--slice-by", "source_id"]


def table_names(out: Path) -> list[str]:
    return sorted(json.loads((out / SUMMARY_FILE).read_text())["tables"])


def assert_same_output(got: Path, want: Path) -> None:
    """Every table holds the same multiset of rows (DuckDB EXCEPT ALL both ways); summary.json agrees."""
    names = table_names(want)
    assert table_names(got) == names
    for name in names:
        a, b = (f"read_parquet('{d}/{name}/*.parquet')" for d in (got, want))
        columns = [c for (c, *_) in duckdb.sql(f"DESCRIBE SELECT * FROM {b}").fetchall() if c not in RUN_IDENTITY]
        a, b = (f"(SELECT {', '.join(columns)} FROM {x})" for x in (a, b))
        assert duckdb.sql(f"SELECT count(*) FROM {a}").fetchall() == duckdb.sql(f"SELECT count(*) FROM {b}").fetchall(), name
        for x, y in ((a, b), (b, a)):
            extra = duckdb.sql(f"SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y}").fetchall()
            assert not extra, f"{name}: rows only in one output, e.g. {extra[:3]}"
    summaries = [json.loads((d / SUMMARY_FILE).read_text()) for d in (got, want)]
    for s in summaries:
        for key in SUMMARY_PER_RUN:
            s.pop(key, None)
    assert summaries[0] == summaries[1]


def assert_published_once(out: Path) -> None:
    """One complete run folder (summary, _SUCCESS, every table), nothing left in staging."""
    runs = [p for p in (out / RUNS_DIR).iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1, runs
    run = runs[0]
    assert (run / SUCCESS_MARKER).exists() and (run / SUMMARY_FILE).exists()
    assert [p.name for p in run.iterdir() if p.is_dir() and not any(p.glob("*.parquet"))] == []
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["run_folder"] == f"{RUNS_DIR}/{run.name}"
    for name, rows in summary["tables"].items():
        got = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/{name}/*.parquet')").fetchall()[0][0]
        assert got == rows, name


def test_sample_on_dask_equals_the_local_runner(cluster, sample, tmp_path):
    assert run_cli(*run_args(str(sample), str(tmp_path / "local"))) == 0
    assert run_cli(*run_args(str(sample), str(tmp_path / "dask")), *dask_flags(cluster)) == 0
    assert_same_output(tmp_path / "dask", tmp_path / "local")
    # The sample's own problems reached the tables through the Dask shuffle (not an empty run equal to another).
    codes = {r[0] for r in duckdb.sql(f"SELECT code FROM read_parquet('{tmp_path}/dask/issues/*.parquet')").fetchall()}
    assert {"duplicate_frame_id", "mask_not_found", "json_invalid", "label_few_samples"} <= codes


def test_validate_and_convert_on_dask(cluster, sample, tmp_path):
    """validate's exit status and convert's tables are the local runner's too."""
    for command, extra in (("validate", ["--max-errors", "1000"]), ("convert", [])):
        args = [command, "--input", f"{sample}/frames-*", "--quiet", *extra]
        if command == "validate":
            args += ["--mask-labels", f"{sample}/mask_labels.json"]
        assert run_cli(*args, "--output", str(tmp_path / f"{command}-local")) == 0
        assert run_cli(*args, "--output", str(tmp_path / f"{command}-dask"), *dask_flags(cluster)) == 0
        assert_same_output(tmp_path / f"{command}-dask", tmp_path / f"{command}-local")


def write_video_dataset(folder: Path) -> None:
    from tests.test_video_pipeline import HEIGHT, WIDTH, frame_record, write_shards
    from tests.videos import moving_blob_masks, write_lossless_video

    write_lossless_video(folder / "clip.mp4", moving_blob_masks(30, WIDTH, HEIGHT, blobs=4, seed=5), fps=25)
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    frames = [frame_record(f"v-{t}", "clip.mp4", t) for t in (0, 39, 40, 41, 400, 400, 1199, 6000)]
    frames += [frame_record("bad", "corrupt.mp4", 0), frame_record("gone", "missing.mp4", 0)]
    write_shards(folder, frames, shards=3, seed=2)


def test_video_masks_on_dask_equal_the_local_runner(cluster, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_video_dataset(data)
    args = ["run", "--input", f"{data}/shard-*", "--quiet"]
    assert run_cli(*args, "--output", str(tmp_path / "local")) == 0
    assert run_cli(*args, "--output", str(tmp_path / "dask"), *dask_flags(cluster)) == 0
    assert_same_output(tmp_path / "dask", tmp_path / "local")
    modes = duckdb.sql(f"SELECT mode, status, count(*) FROM read_parquet('{tmp_path}/dask/masks/*.parquet') GROUP BY ALL ORDER BY ALL").fetchall()
    assert ("video", "ok", 7) in modes, modes  # 6000 ms is past the end: an error, not a row of statistics


def test_s3_input_on_dask_equals_the_local_runner(cluster, s3, sample, tmp_path):
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    for path in sample.rglob("*"):
        if path.is_file():
            fs.pipe(f"{BUCKET}/data/{path.relative_to(sample)}", path.read_bytes())
    # Workers take the endpoint and credentials from their own environment, as a cluster's would.
    env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}

    def point_worker_at_moto(env=env):
        os.environ.update(env)
        forget_cached_filesystems()

    cluster.run(point_worker_at_moto)
    args = run_args(f"s3://{BUCKET}/data", "")[:-5]
    assert run_cli(*args, "--output", str(tmp_path / "local"), "--quiet") == 0
    assert run_cli(*args, "--output", str(tmp_path / "dask"), "--quiet", *dask_flags(cluster)) == 0
    assert_same_output(tmp_path / "dask", tmp_path / "local")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/dask/masks/*.parquet') WHERE status = 'ok'").fetchall()[0][0] > 30


def _scheduler_progress(dask_scheduler) -> tuple[int, int]:
    """(tasks done, tasks known) of what the scheduler holds."""
    states = [ts.state for ts in dask_scheduler.tasks.values()]
    return sum(s in ("memory", "released", "forgotten") for s in states), len(states)


def test_a_worker_killed_mid_run_changes_nothing(cluster, sample, tmp_path):
    assert run_cli(*run_args(str(sample), str(tmp_path / "local"))) == 0
    before = set(cluster.run(os.getpid).values())
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("rc", run_cli(*run_args(str(sample), str(tmp_path / "dask")),
                                                                               *dask_flags(cluster))))
    runner.start()
    killed = None
    deadline = time.monotonic() + 300
    while runner.is_alive() and time.monotonic() < deadline:
        done, known = cluster.run_on_scheduler(_scheduler_progress)
        busy = {w: tasks for w, tasks in cluster.processing().items() if tasks}
        if known > 100 and done > known // 4 and busy:
            pid = cluster.run(os.getpid, workers=[next(iter(busy))])
            killed = next(iter(pid.values()))
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.05)
    runner.join(timeout=600)
    assert killed is not None, "the run ended before a worker could be killed mid-run"
    assert outcome.get("rc") == 0
    cluster.wait_for_workers(2, timeout=60)
    after = set(cluster.run(os.getpid).values())
    assert killed in before and killed not in after, "the killed worker process was replaced"
    assert_same_output(tmp_path / "dask", tmp_path / "local")
    assert_published_once(tmp_path / "dask")


def test_a_task_that_raises_is_retried_as_dataflow_would(cluster, tmp_path):
    """framebeam raises on transient storage errors for the runner to retry; Dask retries only what
    run_job's task_retries context annotates."""
    import apache_beam as beam

    from pipelines.options import beam_options
    from pipelines.runner import task_retries

    marker = tmp_path / "failed-once"

    def flaky(x: int) -> int:
        if x == 2 and not marker.exists():
            marker.touch()
            raise OSError("a transient storage error")
        return x

    p = beam.Pipeline(options=beam_options(dask_flags(cluster)))
    _ = p | beam.Create([1, 2, 3]) | beam.Map(flaky)
    with task_retries(True):
        result = p.run()
    try:
        assert result.wait_until_finish() == "DONE"
    finally:
        result.client.close()
    assert marker.exists(), "the task never failed: this test proves nothing"
