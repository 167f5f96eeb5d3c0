"""Running a job: pre-flight checks, the output's lease, the pipeline, its summary, clean failures.

Order (every check before any work, the cheapest first): OUTPUT is a folder framebeam may write
(``transforms.ownership``), ``--mask-labels`` and ``--baseline`` read, every input glob matches, OUTPUT
does not overlap what the run reads; then OUTPUT is claimed (marker: the write probe), its lease taken
(``transforms.lease``), run folders killed runs left are removed, and only then the pipeline runs.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from fsspec.utils import infer_compression

from pipelines.assemble import build_pipeline, new_run_id
from pipelines.options import JobOptions, beam_options, uses_dask
from pipelines.progress import Progress
from transforms.joining import MaskLabels
from transforms.reading import expand_input
from transforms.tuning import WorkerSetup
from transforms.uris import redact_uri
from transforms.writing import read_summary


log = logging.getLogger("framebeam")


class InputError(Exception):
    """Misuse or unreachable input: the CLI exits 2."""


class RunFailed(Exception):
    """The pipeline failed; ``str()`` is one line, ``log_path`` holds the traceback."""

    def __init__(self, message: str, log_path: str | None):
        super().__init__(message)
        self.log_path = log_path


class InputSize(NamedTuple):
    stored: int | None  # bytes as stored (what progress counts); None when unknown
    expanded: int | None  # compressed shards at an estimated expanded size (what work scales with)


COMPRESSION_RATIO = 10  # frames are repetitive JSON: gzip/zstd shrink them ~5-15x


def check_inputs(job: JobOptions, shards: list[str] | None = None) -> InputSize:
    """Every glob matches a file (else InputError); returns the inputs' total size when it can tell
    (at most 10,000 files are sized: beyond that, only that the input is large matters). The matched
    shards are appended to ``shards`` when given."""
    stored = expanded = 0
    for pattern in job.inputs:
        try:
            glob = job.at(pattern)
            matched = expand_input(glob)
            if shards is not None:
                shards.extend(matched)
            fs = glob.fs
            for m in matched[:10_000]:
                size = fs.size(m) or 0
                stored += size
                expanded += size * COMPRESSION_RATIO if infer_compression(m) else size
        except Exception as e:  # noqa: BLE001 - any storage failure here is the user's to see, with exit 2
            raise InputError(f"cannot list {redact_uri(pattern)}: {type(e).__name__}: {redact_uri(str(e))}") from None
        if not matched:
            raise InputError(f"no input file matches {redact_uri(pattern)}; check the path and quote globs so the shell does not expand them")
    return InputSize(stored or None, expanded or None)


def check_baseline(job: JobOptions) -> None:
    if not job.baseline:
        if job.max_drift:
            raise InputError("--max-drift needs --baseline (`previous`, or an earlier run's output folder)")
        if job.slice_by and not job.decode:
            raise InputError("--slice-by summarises labels per slice, which needs mask decoding: drop --no-decode")
        return
    if not job.decode:
        raise InputError("--baseline compares label statistics, which need mask decoding: drop --no-decode")
    from transforms.drift import DriftInputError
    from transforms.history import PREVIOUS, read_baseline

    if job.baseline == PREVIOUS:
        return  # read when the run compares; a first run has no previous one and is compared with nothing
    try:
        read_baseline(job.baseline, job.target)
    except (DriftInputError, OSError) as e:
        raise InputError(f"--baseline: {redact_uri(str(e))}") from None


def load_mask_labels(job: JobOptions) -> MaskLabels | None:
    if not job.mask_labels:
        return None
    try:
        return MaskLabels.load(job.at(job.mask_labels))
    except (OSError, ValueError) as e:
        raise InputError(f"--mask-labels {redact_uri(job.mask_labels)}: {e}") from None


def prepare_job(job: JobOptions, beam_flags: list[str]) -> tuple[beam.Pipeline, InputSize]:
    """Check the inputs (InputError on misuse) and build the pipeline with Beam's options from
    ``beam_flags``; returns it with the inputs' size. (The Flex Template's launcher: it submits and
    exits, so it takes no lease.)"""
    size = check_inputs(job)
    check_baseline(job)
    mask_labels = load_mask_labels(job)
    p = beam.Pipeline(options=beam_options(beam_flags, size.expanded, job.decode))
    build_pipeline(p, job, mask_labels, new_run_id())
    return p, size


DASK_TASK_RETRIES = 3  # as Dataflow: a bundle that fails 4 times fails the job


def task_retries(dask: bool):
    """Dask reruns a task whose worker died, but not one that raised: framebeam raises on transient
    storage errors for the runner to retry (transforms/storage.py), so every task the DaskRunner
    builds inside this context is annotated with retries."""
    if not dask:
        return contextlib.nullcontext()
    import dask as dask_module

    return dask_module.annotate(retries=DASK_TASK_RETRIES)


class Checked(NamedTuple):
    size: InputSize
    mask_labels: MaskLabels | None


def preflight(job: JobOptions) -> Checked:
    """Every check that needs no work, cheapest first; InputError (one line) on the first failure.
    Ends by claiming OUTPUT (creating it and writing the marker: the write probe)."""
    from transforms.ownership import OutputRefused, check_output, check_overlap, claim_output, folders_read

    try:
        state = check_output(job.target)
    except OutputRefused as e:
        raise InputError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - the store cannot be listed: the user's to see, exit 2
        from transforms.ownership import describe_storage_error

        raise InputError(f"--output {redact_uri(job.output)}: cannot look at it ({describe_storage_error(e)})") from None
    mask_labels = load_mask_labels(job)
    check_baseline(job)
    shards: list[str] = []
    size = check_inputs(job, shards)
    try:
        check_overlap(job.output, folders_read([job.at(s) for s in shards], job.mask_labels))
        claim_output(job.target, state)
    except OutputRefused as e:
        raise InputError(redact_uri(str(e))) from None
    return Checked(size, mask_labels)


@dataclass
class ActiveRun:
    """What an interrupted launcher must clean up: its lease, its run folder, the processes it started."""

    job: JobOptions
    run_id: str = field(default_factory=new_run_id)
    lease: Any = None
    started_pids: set[int] = field(default_factory=set)
    pipeline_started: bool = False

    def stop(self) -> str:
        """Stop writing, kill this run's worker processes, remove its unpublished run folder, release the
        lease. Returns "published" (the run had already been published), "removed" or "nothing"."""
        from pipelines.lifecycle import descendants, kill_processes
        from transforms import writing

        writing.STOPPING.set()
        kill_processes(descendants() - self.started_pids)
        state = "nothing"
        if self.lease is not None:
            with contextlib.suppress(Exception):
                state = "removed" if writing.remove_own_run(self.job.target, self.run_id) else "published"
            self.lease.release()
            self.lease = None
        return state


def take_lease(job: JobOptions, run_id: str, wait_s: float = 0.0, on_wait=None):
    from transforms.lease import LeaseBusy, acquire
    from transforms.ownership import describe_storage_error

    try:
        lease = acquire(job.target, run_id, wait_s=wait_s, on_wait=on_wait)
    except LeaseBusy as e:
        waited = f" (waited {wait_s:g} s)" if wait_s else ""
        raise InputError(f"{redact_uri(job.output)} is in use by another framebeam {e}{waited}: let it finish, or "
                         f"pass --wait-for-lock SECONDS to wait for it") from None
    except Exception as e:  # noqa: BLE001
        raise InputError(f"--output {redact_uri(job.output)}: cannot take its lease ({describe_storage_error(e)})") from None
    lease.start_renewing()
    return lease


def run_job(job: JobOptions, beam_flags: list[str], show_progress: bool = False, active: ActiveRun | None = None,
            wait_for_lock: float = 0.0, debug: bool = False, on_wait=None) -> dict[str, Any]:
    """Pre-flight checks, the lease, the pipeline to completion; returns the summary (summary.json).

    InputError: misuse, refused before any work. RunFailed: the pipeline failed (one line; its folder
    removed, the traceback in the run's log)."""
    from pipelines.lifecycle import RunLog, classify_failure, descendants, kill_processes, wait_if_signalled
    from transforms import writing

    started = time.monotonic()
    active = active or ActiveRun(job)
    writing.STOPPING.clear()
    checked = preflight(job)
    active.lease = take_lease(job, active.run_id, wait_for_lock, on_wait)
    progress = None
    try:
        writing.remove_leftover_runs(job.target)
        with RunLog(job.target, active.run_id, debug) as run_log:
            p = beam.Pipeline(options=beam_options(beam_flags, checked.size.expanded, job.decode))
            dask = uses_dask(beam_flags)
            progress = Progress(checked.size.stored, show=show_progress and not dask)
            # The workers write progress files only where the launcher can read them: the local runner's.
            worker = WorkerSetup.for_job(job.decode, str(progress.directory) if runs_here(p) else None)
            build_pipeline(p, job, checked.mask_labels, active.run_id, worker)
            active.started_pids = descendants()
            active.pipeline_started = True
            log.info("%s %s started: %s -> %s", job.command, active.run_id, ", ".join(map(redact_uri, job.inputs)), redact_uri(job.output))
            try:
                with progress, task_retries(dask):
                    result = p.run()
                    try:
                        result.wait_until_finish()
                    finally:
                        client = getattr(result, "client", None)  # the DaskRunner's connection to its scheduler
                        if client is not None:
                            client.close()
            except Exception as e:
                wait_if_signalled()
                where = run_log.failure(e)
                failure = classify_failure(e, redact_uri(job.output))
                kill_processes(_beam_workers(descendants() - active.started_pids))
                if writing.remove_own_run(job.target, active.run_id):
                    raise RunFailed(failure.message + "; nothing was published, the previous output is unchanged", where) from None
                raise RunFailed(failure.message + " after this run was published: the output is this run's, complete", where) from None
            summary = read_summary(job.target)
            log.info("%s %s published: %s", job.command, active.run_id, verdict_line(summary).strip())
    finally:
        if progress is not None:
            progress.remove()  # when the pipeline could not be built or started
        if active.lease is not None:
            active.lease.release()
            active.lease = None
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    summary["log"] = run_log.final_path
    return summary


def runs_here(p: beam.Pipeline) -> bool:
    """Whether the runner's workers run on this machine (Beam's local runners): not Dataflow, not Dask
    (whose workers may be anywhere)."""
    return type(p.runner).__name__ in {"FnApiRunner", "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner"}


def _beam_workers(pids: set[int]) -> set[int]:
    """Of the processes a failed run left, the Beam SDK workers (and the shells that started them)."""
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"sdk_worker_main" in cmdline or b"apache_beam" in cmdline:
            out.add(pid)
    return out


def print_summary(summary: dict[str, Any], job: JobOptions) -> None:
    f = summary["findings"]
    elapsed = summary.get("elapsed_s") or 0
    rate = f" ({summary['frames'] / elapsed:,.0f} frames/s)" if elapsed and summary["frames"] else ""
    lines = [
        f"framebeam {job.command}: {summary['frames']:,} frames ({summary['valid_frames']:,} valid), "
        f"{f['error']:,} errors, {f['warning']:,} warnings, {f.get('info', 0):,} info in {elapsed:.1f} s{rate}",
    ]
    by_code = sorted(summary["findings_by_code"].items(), key=lambda kv: (-kv[1]["count"], kv[0]))
    if by_code:
        width = max(len(code) for code, _ in by_code)
        lines.append(f"  {'code'.ljust(width)}  severity  count")
        for code, info in by_code:
            lines.append(f"  {code.ljust(width)}  {info['severity']:<8}  {info['count']:,}")
    lines += label_lines(summary.get("labels") or [])
    masks = summary.get("masks", {})
    if masks.get("decoded"):
        rate = f", {masks['decoded'] / elapsed:,.1f} masks/s" if elapsed else ""
        lines.append(f"  masks: {masks['decoded']:,} decoded of {masks['referenced']:,} referenced{rate}")
    drift = summary.get("drift")
    if drift:
        d = drift["label_distribution"]
        label_js = f", label JS {drift['label_js']:.4f}" if drift.get("label_js") is not None else ""
        label_js += f", shape JS {drift['shape_js']:.4f}" if drift.get("shape_js") is not None else ""
        lines.append(f"  drift vs {drift['baseline']}: L-inf {d['linf']:.4f}, JS {d['js']:.4f}, PSI {d['psi']:.4f}{label_js}; "
                     f"{len(drift['labels_appeared'])} label(s) appeared, {len(drift['labels_vanished'])} vanished, "
                     f"{len(drift['colour_changed'])} changed colour")
    elif job.baseline:
        lines.append("  drift: no earlier run with labels in this output yet, nothing to compare with")
    tables = summary.get("tables", {})
    lines.append("  tables: " + ", ".join(f"{t}={n:,}" for t, n in tables.items()) + f"  -> {redact_uri(job.output)}")
    if summary.get("log"):
        lines.append(f"  log: {redact_uri(summary['log'])}")
    lines.append(verdict_line(summary))
    print("\n".join(lines))


def verdict_line(summary: dict[str, Any]) -> str:
    """The run's verdict, as the report's headline shows it: the last line of the terminal summary."""
    if summary.get("passed") is None:
        return "  verdict: unknown (summary.json has none)"
    return "  PASSED" if summary["passed"] else "  FAILED: " + "; ".join(summary.get("reasons") or [])


TERMINAL_LABELS = 8


def label_lines(labels: list[dict[str, Any]]) -> list[str]:
    """The most present labels (masks with pixels / masks declaring it), and those never present."""
    if not labels:
        return []

    def name(x: dict[str, Any]) -> str:
        return "/".join(x["labels"]) or "(none)"

    present = [x for x in labels if x.get("masks_present")]
    absent = [x for x in labels if not x.get("masks_present") and x.get("masks_declared")]
    out = []
    if present:
        more = f" (+{len(present) - TERMINAL_LABELS} more)" if len(present) > TERMINAL_LABELS else ""
        out.append("  labels by presence (masks with pixels/declared): "
                   + ", ".join(f"{name(x)} {x['masks_present']:,}/{x['masks_declared']:,}" for x in present[:TERMINAL_LABELS]) + more)
    if absent:
        more = f" (+{len(absent) - TERMINAL_LABELS} more)" if len(absent) > TERMINAL_LABELS else ""
        out.append(f"  never present ({len(absent)}): " + ", ".join(name(x) for x in absent[:TERMINAL_LABELS]) + more)
    return out
