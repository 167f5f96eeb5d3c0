"""Worker tuning in one place (transforms/tuning.py): applied by the steps' set-up in worker processes,
once per process, never leaking into a process that calls the CLI."""
from __future__ import annotations

import gc
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest

from tests.conftest import IN_MEMORY, REPO, run_cli
from transforms import progress, tuning
from transforms.tuning import CHUNK_GC_THRESHOLD, WorkerSetup


def _args(sample: Path, out: Path) -> list[str]:
    return ["--input", f"{sample}/frames-*", "--mask-labels", f"{sample}/mask_labels.json", "--output", str(out), "--quiet"]


@pytest.mark.parametrize("command", ["convert", "run"])
def test_the_cli_leaves_its_calling_process_as_it_found_it(sample, tmp_path, command):
    environ, threshold, folder = dict(os.environ), gc.get_threshold(), progress.current()
    status = run_cli(command, *_args(sample, tmp_path / "out"))  # in-process: the steps run in this process
    assert status in (0, 1)
    assert dict(os.environ) == environ
    assert gc.get_threshold() == threshold
    assert progress.current() == folder


def test_the_steps_set_up_tunes_the_process_that_runs_them(sample, tmp_path):
    """What restored() undoes is real: run in this process, the steps' set-up raises the GC threshold."""
    from pipelines.assemble import build_pipeline
    from pipelines.options import beam_options, job_options_from_args
    from pipelines.cli import build_parser

    args, _ = build_parser().parse_known_args(["convert", *_args(sample, tmp_path / "out")])
    job = job_options_from_args("convert", args)
    before = gc.get_threshold()
    with tuning.restored():
        gc.set_threshold(700, 10, 10)
        tuning._done.clear()
        with beam.Pipeline(options=beam_options(IN_MEMORY)) as p:
            build_pipeline(p, job, None, "run-id", WorkerSetup.for_job(decode=False, progress_dir=str(tmp_path)))
        assert gc.get_threshold() == (CHUNK_GC_THRESHOLD, 10, 10)
        assert progress.current() == str(tmp_path)
        # ... and the progress folder came with the pipeline, not the environment: this process's file is there
        assert (tmp_path / f"{os.getpid()}.json").exists()
    assert gc.get_threshold() == before


_CHILD = """
import gc, pickle, sys
from transforms import tuning
for setup in pickle.loads(bytes.fromhex(sys.argv[1])):
    tuning._done.clear()  # each as if in a fresh worker process
    gc.set_threshold(700, 10, 10)
    first, second = setup.apply(), setup.apply()
    print(sorted(first.items()), sorted(second.items()), gc.get_threshold())
"""


def _apply_in_child(*setups: WorkerSetup, **env: str) -> list[str]:
    """What each set-up makes, applied twice, in a worker process (not the launcher that built them)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", _CHILD, pickle.dumps(setups).hex()], capture_output=True, text=True, check=True,
                          env={**environ, "PYTHONPATH": str(REPO), **env})
    return done.stdout.strip().splitlines()


def test_a_worker_process_is_tuned_once_and_the_launcher_not_at_all():
    if not tuning._mallopt(tuning.M_MMAP_THRESHOLD, 128 * 1024):  # glibc's default value: a no-op probe
        pytest.skip("no glibc mallopt here")
    decoding = WorkerSetup.for_job(decode=True, switch="")  # built here: this process is its launcher
    plain, off = WorkerSetup.for_job(decode=False, switch=""), WorkerSetup.for_job(decode=True, switch="off")
    assert _apply_in_child(decoding, plain, off) == [
        f"[('gc', {CHUNK_GC_THRESHOLD}), ('mmap', {tuning.MMAP_THRESHOLD}), ('trim', {tuning.TRIM_THRESHOLD})] [] ({CHUNK_GC_THRESHOLD}, 10, 10)",
        f"[('gc', {CHUNK_GC_THRESHOLD})] [] ({CHUNK_GC_THRESHOLD}, 10, 10)",  # no masks to decode: glibc's defaults
        "[] [] (700, 10, 10)",  # FRAMEBEAM_TUNING=off
    ]
    # a value the user (or the worker image) gave glibc at start-up wins
    assert _apply_in_child(decoding, MALLOC_MMAP_THRESHOLD_="131072")[0].startswith(
        f"[('gc', {CHUNK_GC_THRESHOLD}), ('trim', {tuning.TRIM_THRESHOLD})] []")
    # in the launcher itself (small jobs run their steps there) only the GC threshold, which the CLI puts back
    with tuning.restored():
        tuning._done.clear()
        gc.set_threshold(700, 10, 10)
        assert decoding.apply() == {"gc": CHUNK_GC_THRESHOLD}


def test_the_benchmark_switch_turns_settings_off():
    assert WorkerSetup.for_job(decode=True, switch="off").gc_threshold == 0
    off = WorkerSetup.for_job(decode=True, switch="mmap, arena=2")
    assert (off.gc_threshold, off.mmap_threshold, off.trim_threshold, off.arena_max) == (CHUNK_GC_THRESHOLD, 0, tuning.TRIM_THRESHOLD, 2)
    for wrong in ("gcc", "gc=many"):
        with pytest.raises(ValueError, match=wrong):
            WorkerSetup.for_job(decode=True, switch=wrong)


# What changes process-wide state, written anywhere in framebeam's code: only transforms/tuning.py may.
PROCESS_STATE = re.compile(r"gc\.set_threshold|gc\.disable|gc\.freeze|os\.environ\[[^]]+\]\s*=|os\.environ\.(setdefault|update|pop|clear)"
                           r"|os\.putenv|os\.unsetenv|mallopt|numba\.config\.\w+\s*=|set_num_threads|set_cpu_count|set_io_thread_count")


def test_one_module_changes_process_wide_state():
    writers = sorted(str(path.relative_to(REPO)) for folder in ("transforms", "pipelines") for path in (REPO / folder).glob("*.py")
                     if PROCESS_STATE.search(path.read_text()))
    assert writers == ["transforms/tuning.py"]


def _records_read(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "records read" in ln]
    assert lines
    return re.search(r"([0-9,]+) records read", lines[-1]).group(1)


@pytest.mark.slow
def test_worker_processes_write_progress_to_the_folder_the_pipeline_gives_them(sample, tmp_path, capsys, monkeypatch):
    """Worker processes (not this one) count the records: the last progress line has them all, as in-process."""
    monkeypatch.setenv("FRAMEBEAM_PROGRESS_SECONDS", "0.2")
    convert = ["convert", "--input", f"{sample}/frames-*"]
    assert run_cli(*convert, "--output", str(tmp_path / "one")) == 0
    in_process = _records_read(capsys)
    assert run_cli(*convert, "--output", str(tmp_path / "two"), parallel=True) == 0
    assert _records_read(capsys) == in_process != "0"
