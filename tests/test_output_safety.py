"""framebeam never touches what it did not write; it fails fast and cleanly.

Ownership of OUTPUT and its overlap with what a run reads, pre-flight checks, the lease (local disk,
moto's S3, the GCS emulator), did-you-mean flags, `framebeam tables` without a run; then, as real
processes: SIGINT and SIGTERM to the process group, two concurrent runs, a full disk (a small tmpfs),
a read-only OUTPUT, progress over masks decoded, and the verdict line.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.servers import gcs, gcs_emulator, gcs_proxy, moto_s3, s3, s3_proxy, s3_through_proxy  # noqa: F401 - fixtures
from transforms import lease as leases
from transforms import writing
from transforms.ownership import MARKER, OutputRefused, check_output, check_overlap, claim_output

FRAMEBEAM = str(Path(sys.executable).with_name("framebeam"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    from transforms.sample import write_sample

    directory = tmp_path_factory.mktemp("safety") / "sd"
    write_sample(str(directory))
    return directory


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and link under root with its content hash: what 'untouched' means."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([FRAMEBEAM, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def run_args(sample: Path, out: Path | str, *extra: str, beam: bool = True) -> list[str]:
    """`framebeam run` on the sample; with ``beam``, in one process (run_cli adds that itself)."""
    in_process = ["--direct_running_mode=in_memory", "--direct_num_workers=1"] if beam else []
    return ["run", "--input", f"{sample}/frames-*", "--mask-labels", str(sample / "mask_labels.json"), "--output", str(out),
            *extra, *in_process]


# --- ownership and overlap, without Beam --------------------------------------------------------------

def test_a_file_or_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputRefused, match="is a file"):
        check_output(str(tmp_path / "f"))
    with pytest.raises(OutputRefused, match="is a file"):
        check_output(str(tmp_path / "f" / "below"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "masks").mkdir()
    with pytest.raises(OutputRefused, match="did not write.*'masks'"):
        check_output(str(tmp_path / "data"))
    (tmp_path / "empty").mkdir()
    assert not check_output(str(tmp_path / "empty")).foreign
    claim_output(str(tmp_path / "empty"))
    assert (tmp_path / "empty" / MARKER).exists() and check_output(str(tmp_path / "empty")).owned


def test_an_output_framebeam_wrote_before_the_marker_is_adopted_and_a_foreign_name_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    from tests.test_atomic import publish_run

    publish_run(str(out), "run-a", rows=2)  # publish alone writes no marker: an output of framebeam 0.1
    assert check_output(str(out)).owned
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputRefused, match="notes.txt"):
        check_output(str(out))
    # publish itself never moves or replaces a name it did not write
    (out / "notes.txt").unlink()
    (out / "issues").unlink()
    (out / "issues").mkdir()
    (out / "issues" / "keep.parquet").write_text("user data")
    with pytest.raises(writing.NotOurs):
        publish_run(str(out), "run-b", rows=3)
    assert (out / "issues" / "keep.parquet").read_text() == "user data"


def test_overlap_with_what_the_run_reads(tmp_path):
    data = tmp_path / "data"
    (data / "masks").mkdir(parents=True)
    (tmp_path / "link").symlink_to(data)
    folders = [("input shards", str(data)), ("masks", str(data / "masks"))]
    for output, relation in [(data, "is"), (data / "new", "lies inside"), (tmp_path, "contains"),
                             (tmp_path / "link" / "out", "lies inside"), (f"file://{data}/x", "lies inside"),
                             (data / "masks" / ".." / "masks", "lies inside the folder of the input shards")]:
        with pytest.raises(OutputRefused, match=relation):
            check_overlap(str(output), folders)
    check_overlap(str(tmp_path / "data-out"), folders)  # a sibling whose name starts alike is fine
    check_overlap("s3://b/data", folders)  # another store


# --- the lease ----------------------------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_local_lease_is_exclusive_and_a_dead_runs_lease_is_broken(tmp_path):
    out = str(tmp_path)
    first = leases.acquire(out, "run-1")
    with pytest.raises(leases.LeaseBusy, match="run-1"):
        leases.acquire(out, "run-2")
    started = time.monotonic()
    with pytest.raises(leases.LeaseBusy):
        leases.acquire(out, "run-2", wait_s=1.0)
    assert 0.9 < time.monotonic() - started < 5
    first.release()
    second = leases.acquire(out, "run-2")
    # Its run dies without releasing (SIGKILL): a lease naming a pid that no longer runs here is stale.
    record = json.loads((tmp_path / leases.LEASE_NAME).read_bytes())
    (tmp_path / leases.LEASE_NAME).write_bytes(json.dumps({**record, "pid": dead_pid()}).encode())
    third = leases.acquire(out, "run-3")
    assert json.loads((tmp_path / leases.LEASE_NAME).read_bytes())["run_id"] == "run-3"
    second.release()  # releasing a lease that was broken must not remove the new holder's
    assert json.loads((tmp_path / leases.LEASE_NAME).read_bytes())["run_id"] == "run-3"
    third.release()
    assert not (tmp_path / leases.LEASE_NAME).exists()


def test_a_lease_from_another_host_holds_until_it_expires(tmp_path):
    other = {"run_id": "far", "hostname": "elsewhere", "boot_id": "x", "pid": 1, "expires_at": time.time() + 60}
    (tmp_path / leases.LEASE_NAME).write_bytes(json.dumps(other).encode())
    with pytest.raises(leases.LeaseBusy, match="elsewhere"):
        leases.acquire(str(tmp_path), "mine")
    (tmp_path / leases.LEASE_NAME).write_bytes(json.dumps({**other, "expires_at": time.time() - 1}).encode())
    leases.acquire(str(tmp_path), "mine").release()


def race_for_the_lease(output: str, contenders: int) -> tuple[list, list]:
    """``contenders`` threads try to acquire the lease of ``output`` at the same moment: (leases won, losers)."""
    won, busy, barrier = [], [], threading.Barrier(contenders)

    def contender(i: int) -> None:
        barrier.wait()
        try:
            won.append(leases.acquire(output, f"c-{i}"))
        except leases.LeaseBusy:
            busy.append(i)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, busy


def test_many_runs_breaking_one_stale_lease_only_one_wins(tmp_path):
    stale = {"run_id": "dead", "hostname": "elsewhere", "boot_id": "x", "pid": 1, "expires_at": time.time() - 1}
    (tmp_path / leases.LEASE_NAME).write_bytes(json.dumps(stale).encode())
    won, busy = race_for_the_lease(str(tmp_path), 8)
    assert len(won) == 1 and len(busy) == 7
    won[0].release()


def test_lease_renewal_extends_it_and_notices_a_broken_lease(tmp_path):
    lease = leases.acquire(str(tmp_path), "r", ttl_s=30)
    before = json.loads((tmp_path / leases.LEASE_NAME).read_bytes())["expires_at"]
    time.sleep(0.05)
    lease.renew()
    assert json.loads((tmp_path / leases.LEASE_NAME).read_bytes())["expires_at"] > before and not lease.lost
    (tmp_path / leases.LEASE_NAME).unlink()
    lease.renew()
    assert lease.lost
    lease.release()


@pytest.mark.parametrize("store", ["s3", "gcs"])
def test_object_store_lease_is_a_conditional_create(store, request, tmp_path):
    server = request.getfixturevalue(store)
    fs = server.filesystem()
    if store == "s3":
        fs.mkdir("lease-bucket")
        out = "s3://lease-bucket/out"
    else:
        if not fs.exists("lease-bucket"):
            fs.mkdir("lease-bucket")
        out = f"gs://lease-bucket/out-{time.time_ns()}"
    first = leases.acquire(out, "run-1")
    with pytest.raises(leases.LeaseBusy, match="run-1"):
        leases.acquire(out, "run-2")
    path = out.split("://", 1)[1] + "/" + leases.LEASE_NAME
    record = json.loads(fs.cat_file(path))
    assert record["run_id"] == "run-1" and record["pid"] == os.getpid()
    first.release()
    assert not fs.exists(path)
    # A dead run's lease (same host, its pid gone) is broken by a conditional delete of that version.
    fs.pipe_file(path, json.dumps({**record, "run_id": "dead", "pid": dead_pid()}).encode())
    second = leases.acquire(out, "run-2")
    assert json.loads(fs.cat_file(path))["run_id"] == "run-2"
    # Many contenders for one stale lease: exactly one wins (the store's conditional writes decide).
    second.release()
    fs.pipe_file(path, json.dumps({**record, "run_id": "dead", "expires_at": time.time() - 1, "hostname": "far"}).encode())
    won, busy = race_for_the_lease(out, 4)
    assert len(won) == 1 and len(busy) == 3
    assert json.loads(fs.cat_file(path))["run_id"] == won[0].run_id
    won[0].release()


# --- the CLI: refused before any work, in one line ------------------------------------------------------

def test_an_existing_file_as_output_fails_within_seconds(sample, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    started = time.monotonic()
    result = cli(*run_args(sample, target))
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "is a file" in result.stderr
    assert elapsed < 10, f"the first error took {elapsed:.1f} s"
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("where", ["the sample folder", "its masks folder", "a new folder inside it", "its parent"])
def test_outputs_over_the_inputs_are_refused_and_nothing_changes(where, sample, tmp_path, capsys):
    output = {"the sample folder": sample, "its masks folder": sample / "masks", "a new folder inside it": sample / "out",
              "its parent": sample.parent}[where]
    before = tree_digest(sample.parent)
    assert run_cli(*run_args(sample, output, beam=False)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "framebeam: --output" in err and "choose" in err
    assert tree_digest(sample.parent) == before


def test_an_output_inside_the_folder_of_absolute_mask_uris_is_refused(tmp_path, capsys):
    masks = tmp_path / "elsewhere" / "masks"
    masks.mkdir(parents=True)
    frames = tmp_path / "frames"
    frames.mkdir()
    frame = {"id": "f", "sources": [{"id": "s", "uri": "x.jpg", "masks": [{"id": "m", "uri": f"file://{masks}/a.png"}]}],
             "rois": [{"label": ["car"], "sources": ["s"], "mask": {"id": "m", "value": [1, 2, 3]}}]}
    (frames / "f.jsonl").write_text(json.dumps(frame) + "\n")
    assert run_cli("run", "--input", str(frames / "f.jsonl"), "--output", str(masks / "stats")) == 2
    assert "masks and sources the frames name" in capsys.readouterr().err
    assert not (masks / "stats").exists()


def test_unreadable_class_table_and_baseline_fail_before_any_work(sample, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("run", "--input", f"{sample}/frames-*", "--mask-labels", str(tmp_path / "none.json"), "--output", str(out)) == 2
    assert "--mask-labels" in capsys.readouterr().err
    assert run_cli(*run_args(sample, out, "--baseline", str(tmp_path / "no-such-run"), beam=False)) == 2
    assert "--baseline" in capsys.readouterr().err
    assert not out.exists()  # nothing was created for a refused run


@pytest.mark.slow
def test_a_second_run_into_an_owned_output_replaces_only_its_own_files(sample, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*run_args(sample, out, "--quiet", beam=False)) == 0
    assert (out / MARKER).exists() and (out / "_logs").is_dir()
    assert run_cli(*run_args(sample, out, "--quiet", beam=False)) == 0
    assert len(list((out / writing.RUNS_DIR).iterdir())) == 1


def test_did_you_mean_and_unknown_flags_before_missing_ones(sample, tmp_path, capsys):
    o = str(tmp_path / "o")
    for argv, expected in [
        (["run", "--input", "x", "--mask-label", "y", "--output", o], "--mask-label (did you mean --mask-labels?)"),
        (["run", "--input", "x", "--ouptut", o], "--ouptut (did you mean --output?)"),
        (["convert", "--input", "x", "--output", o, "--direct-num-workers", "2"], "did you mean --direct_num_workers?"),
        (["rn", "--input", "x"], "did you mean 'run'?"),
        (["tables", o, "--storage-option", "{}"], "did you mean --storage-options?"),
    ]:
        with pytest.raises(SystemExit) as e:
            run_cli(*argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert expected in err, err
        assert "required" not in err


def test_help_shows_exit_codes_and_an_example(capsys):
    for argv in (["--help"], ["run", "--help"], ["validate", "--help"]):
        with pytest.raises(SystemExit):
            from pipelines.cli import main

            main(argv)
        text = capsys.readouterr().out
        assert "exit status" in text and "130" in text and "143" in text and "example:" in text and "framebeam " in text


def test_tables_on_an_output_without_a_complete_run_says_so_in_one_line(tmp_path, capsys):
    from pipelines.cli import main

    assert main(["tables", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert main(["tables", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no complete run" in err


# --- real processes: signals, concurrency, full disk, read-only -----------------------------------------

def frames_with_masks(tmp_path: Path, n: int, size: tuple[int, int] = (640, 480)) -> tuple[Path, Path]:
    """n frames, each with its own random-polygon PNG mask, in tmp_path/in; returns (shard, class table)."""
    import random

    from PIL import Image, ImageDraw

    d = tmp_path / "in"
    (d / "masks").mkdir(parents=True)
    colours = {"car": [255, 0, 0], "road": [0, 255, 0], "sky": [0, 0, 255]}
    rng = random.Random(7)
    lines = []
    for i in range(n):
        im = Image.new("RGB", size)
        draw = ImageDraw.Draw(im)
        for _ in range(12):
            draw.polygon([(rng.randrange(size[0]), rng.randrange(size[1])) for _ in range(8)], fill=tuple(rng.choice(list(colours.values()))))
        im.save(d / "masks" / f"{i}.png")
        lines.append(json.dumps({"id": f"f{i}", "sources": [{"id": "s", "uri": "x.jpg", "masks": [{"id": "m", "uri": f"masks/{i}.png"}]}],
                                 "rois": [{"label": [k], "sources": ["s"], "mask": {"id": "m", "value": v}} for k, v in colours.items()]}))
    (d / "frames.jsonl").write_text("\n".join(lines) + "\n")
    return d / "frames.jsonl", d


def group_processes(pgid: int) -> list[str]:
    """Live (not zombie) processes of a process group."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                out.append(name)
    return out


def start(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    # Its own session and process group, as a terminal gives a job: the signal goes to the whole group.
    return subprocess.Popen([FRAMEBEAM, *argv], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "FRAMEBEAM_PROGRESS_SECONDS": "0.2", **(env or {})})


def wait_until_decoding(proc: subprocess.Popen, timeout_s: float = 120) -> list[str]:
    """Read progress lines until masks are being decoded (the workers are busy)."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"framebeam ended before decoding started: {''.join(seen)[-2000:]}")
        seen.append(line)
        if "masks decoded" in line:
            return seen
    pytest.fail("decoding never started")


@pytest.fixture(scope="module")
def many_masks(tmp_path_factory) -> tuple[Path, Path]:
    return frames_with_masks(tmp_path_factory.mktemp("many"), 300, size=(1280, 960))


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_to_the_process_group_stops_everything_cleanly(sig, status, word, many_masks, sample, tmp_path):
    shard, _ = many_masks
    out = tmp_path / "out"
    assert cli(*run_args(sample, out, "--quiet")).returncode == 0  # a previous complete output
    before = tree_digest(out)
    proc = start(["run", "--input", str(shard), "--output", str(out), "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    wait_until_decoding(proc)
    assert len(group_processes(proc.pid)) >= 3  # the launcher and its worker processes
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Killed" not in err, err
    assert [ln for ln in err.splitlines() if not ln.startswith("framebeam: ") and ln.strip()] == []  # progress and one line
    assert sum(1 for ln in err.splitlines() if word in ln) == 1
    time.sleep(0.3)
    assert group_processes(proc.pid) == [], "a worker process outlived the run"
    assert not (out / leases.LEASE_NAME).exists()
    after = tree_digest(out)
    assert {k: v for k, v in after.items() if not k.startswith("_logs")} == {k: v for k, v in before.items() if not k.startswith("_logs")}
    # the next run starts clean and succeeds
    assert cli(*run_args(sample, out, "--quiet")).returncode == 0
    assert len(list((out / writing.RUNS_DIR).iterdir())) == 1


@pytest.mark.slow
def test_two_runs_into_one_output(sample, tmp_path):
    out = tmp_path / "out"
    # The first run holds its lease for a while: paused just before its publish swap.
    first = start(run_args(sample, out), env={writing.PAUSE_BEFORE_SWAP_ENV: "25"})
    deadline = time.monotonic() + 120
    while not (out / leases.LEASE_NAME).exists() or not list((out / writing.RUNS_DIR).glob("*/_SUCCESS")):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() is not None else "timeout"
        time.sleep(0.05)
    waiter = start(run_args(sample, out, "--wait-for-lock", "120", "--quiet"))
    second = cli(*run_args(sample, out))
    assert first.poll() is None, "the first run ended before the second tried"
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "in use by another framebeam run" in second.stderr and "--wait-for-lock" in second.stderr
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert waiter.wait(timeout=120) == 0, waiter.stderr.read()
    assert "waiting up to 120 s" in waiter.stderr.read()
    assert writing.read_summary(str(out))["frames"] == 40
    assert len(list((out / writing.RUNS_DIR).iterdir())) == 1


@pytest.mark.slow
def test_a_killed_run_leaves_a_lease_the_next_run_breaks(sample, tmp_path):
    out = tmp_path / "out"
    proc = start(run_args(sample, out), env={writing.PAUSE_BEFORE_SWAP_ENV: "60"})
    deadline = time.monotonic() + 120
    while not list((out / writing.RUNS_DIR).glob("*/_SUCCESS")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / leases.LEASE_NAME).exists()
    result = cli(*run_args(sample, out, "--quiet"))
    assert result.returncode == 0, result.stderr
    assert len(list((out / writing.RUNS_DIR).iterdir())) == 1


@pytest.fixture
def small_tmpfs(tmp_path) -> Path:
    mnt = tmp_path / "small"
    mnt.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(mnt)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_a_full_disk_fails_in_two_lines_and_the_next_smaller_run_fits(sample, small_tmpfs):
    out = small_tmpfs / "out"
    result = cli(*run_args(sample, out, "--quiet"))  # ~190 KB of tables and report on a 150 KB disk
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and "no space left" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list((out / writing.RUNS_DIR).iterdir()) if (out / writing.RUNS_DIR).exists() else True
    assert not (out / leases.LEASE_NAME).exists()
    # convert needs ~100 KB: it fits once the failed run's partial folder is gone
    convert = cli("convert", "--input", f"{sample}/frames-*", "--output", str(out), "--quiet",
                  "--direct_running_mode=in_memory", "--direct_num_workers=1")
    assert convert.returncode == 0, convert.stderr


@pytest.mark.slow
def test_a_read_only_output_is_refused_before_any_work(sample, tmp_path):
    out = tmp_path / "out"
    assert cli(*run_args(sample, out, "--quiet")).returncode == 0
    bind = subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], capture_output=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.decode().strip()}")
        before = tree_digest(out)
        result = cli(*run_args(sample, out, "--quiet"))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "read-only" in result.stderr, result.stderr
        assert tree_digest(out) == before
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


@pytest.mark.slow
def test_progress_counts_masks_decoded_of_planned_and_the_run_ends_with_its_verdict(many_masks, tmp_path):
    shard, _ = many_masks
    out = tmp_path / "out"
    proc = start(["run", "--input", str(shard), "--output", str(out), "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    decoding = [ln for ln in stderr.splitlines() if "masks decoded" in ln]
    assert decoding, stderr
    assert all(" of 300 masks decoded" in ln for ln in decoding)
    assert any("ETA" in ln for ln in decoding), decoding
    verdict = stdout.strip().splitlines()[-1].strip()
    assert verdict == "PASSED" or verdict.startswith("FAILED: ")
    logs = list((out / "_logs").glob("*.log"))
    assert len(logs) == 1 and "masks decoded" in logs[0].read_text()


def test_an_output_in_a_bucket_that_does_not_exist_fails_before_any_work(s3, sample, capsys):  # noqa: F811 - fixture
    started = time.monotonic()
    assert run_cli("run", "--input", f"{sample}/frames-*", "--mask-labels", str(sample / "mask_labels.json"),
                   "--output", "s3://no-such-bucket/out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-bucket" in err and "bucket does not exist" in err, err
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_a_storage_failure_mid_run_is_two_lines_and_removes_the_run(s3_through_proxy, moto_s3, sample, capsys):  # noqa: F811
    from tests.servers import FaultPlan

    fs = moto_s3.filesystem()
    fs.mkdir("safety-bucket")
    fs.put(str(sample), "safety-bucket/data", recursive=True)
    # Every write of the workers' table files is refused with S3's 403, as a bucket policy would.
    s3_through_proxy.arm(FaultPlan(forbidden_part="/_incoming/"))
    status = run_cli("run", "--input", "s3://safety-bucket/data/frames-*", "--mask-labels", "s3://safety-bucket/data/mask_labels.json",
                     "--output", "s3://safety-bucket/out", "--quiet")
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "permission denied" in lines[0] and "nothing was published" in lines[0], err
    assert "traceback is in" in lines[1]
    s3_through_proxy.arm(FaultPlan())
    fs.invalidate_cache()
    assert not fs.exists("safety-bucket/out/_LEASE")
    assert not [p for p in fs.find("safety-bucket/out/_runs")], "the failed run's folder is still there"
    assert fs.exists("safety-bucket/out/_FRAMEBEAM_OUTPUT") and fs.find("safety-bucket/out/_logs")
