"""`framebeam run` on Beam's DaskRunner (2 local single-threaded worker processes) against FnApiRunner
multi-processing on 2 cores, on bench/run_bench.py's masks, in one run; then the cost of a killed worker.

    .venv/bin/python bench/dask_bench.py [--masks 1000] [--shards 8] [--repeat 1] [--data DIR]

Each repeat times, alternating so that machine load hits all of them:
  (a) ``framebeam run --direct_running_mode=multi_processing --direct_num_workers=2`` (the baseline);
  (b) ``framebeam run --runner DaskRunner --dask_client_address tcp://127.0.0.1:PORT`` against a
      ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` started once before timing (a
      cluster outlives jobs; its ~5 s start-up is printed, not counted);
  (c) the same as (b), with one worker process SIGKILLed once half of the scheduler's tasks are done
      (the nanny restarts it, the scheduler reruns the lost tasks).
Every output is checked (8 label_stats rows and one undeclared-colour warning per mask); (b) and (c)
must hold the same rows as (a).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run_bench import check_output, write_inputs  # noqa: E402

TABLES = ("frames", "masks", "label_stats", "crops", "issues", "label_summary")


def framebeam_run(directory: Path, output: Path, flags: list[str]) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", "--input", f"{directory}/frames-*.jsonl", "--output", str(output), "--quiet", *flags],
                   check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def same_rows(a: Path, b: Path) -> None:
    import duckdb

    for table in TABLES:
        x, y = (f"read_parquet('{d}/{table}/*.parquet')" for d in (a, b))
        diff = duckdb.sql(f"SELECT count(*) FROM (SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y}) "
                          f"UNION ALL SELECT count(*) FROM (SELECT * FROM {y} EXCEPT ALL SELECT * FROM {x})").fetchall()
        if any(n for (n,) in diff):
            raise SystemExit(f"{table}: {a} and {b} differ")


def _progress(dask_scheduler) -> tuple[int, int]:
    states = [ts.state for ts in dask_scheduler.tasks.values()]
    return sum(s in ("memory", "released", "forgotten") for s in states), len(states)


def kill_a_worker_halfway(client, stop: threading.Event, killed: list) -> None:
    while not stop.is_set():
        done, known = client.run_on_scheduler(_progress)
        busy = [w for w, tasks in client.processing().items() if tasks]
        if known > 100 and done >= known // 2 and busy:
            pid = next(iter(client.run(os.getpid, workers=busy[:1]).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, done, known))
            return
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--data", type=Path, help="keep generated inputs here (default: a temporary folder)")
    args = ap.parse_args()

    import distributed

    tmp = Path(tempfile.mkdtemp(prefix="framebeam-dask-bench-"))
    data = args.data or tmp / "in"
    try:
        paths = write_inputs(data, args.masks, args.shards)
        print(f"{len(paths):,} masks, {args.shards} shards; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
              f"cores: {os.cpu_count()}")
        started = time.perf_counter()
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address="127.0.0.1:0", silence_logs=50) as cluster, distributed.Client(cluster) as client:
            client.wait_for_workers(2)
            print(f"cluster up in {time.perf_counter() - started:.1f} s: {cluster.scheduler_address}")
            dask = ["--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address]
            for _ in range(args.repeat):
                t_fn = framebeam_run(data, tmp / "fn", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
                check_output(tmp / "fn", len(paths))
                t_dask = framebeam_run(data, tmp / "dask", dask)
                check_output(tmp / "dask", len(paths))
                same_rows(tmp / "dask", tmp / "fn")
                stop, killed = threading.Event(), []
                killer = threading.Thread(target=kill_a_worker_halfway, args=(client, stop, killed))
                killer.start()
                t_killed = framebeam_run(data, tmp / "killed", dask)
                stop.set()
                killer.join()
                check_output(tmp / "killed", len(paths))
                same_rows(tmp / "killed", tmp / "fn")
                client.wait_for_workers(2)
                print(f"FnApiRunner, 2 worker processes : {t_fn:6.2f} s {len(paths) / t_fn:6.1f} masks/s")
                print(f"DaskRunner, 2 workers x 1 thread: {t_dask:6.2f} s {len(paths) / t_dask:6.1f} masks/s  "
                      f"time ratio Dask/FnApi {t_dask / t_fn:.2f}")
                what = f"pid {killed[0][0]} at {killed[0][1]}/{killed[0][2]} tasks" if killed else "none: the run ended first"
                print(f"DaskRunner, a worker killed     : {t_killed:6.2f} s  (+{t_killed - t_dask:.2f} s; killed {what})")
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
