"""Running a job: check its inputs, build and run the pipeline, read back its summary."""
from __future__ import annotations

import contextlib
import time
from typing import Any, NamedTuple

import apache_beam as beam
import fsspec
from fsspec.utils import infer_compression

from pipelines.assemble import build_pipeline, new_run_id
from pipelines.options import JobOptions, beam_options, uses_dask
from pipelines.progress import Progress
from transforms.joining import MaskLabels
from transforms.reading import expand_input
from transforms.uris import redact_uri
from transforms.writing import read_summary


class InputError(Exception):
    """Misuse or unreachable input: the CLI exits 2."""


class InputSize(NamedTuple):
    stored: int | None  # bytes as stored (what progress counts); None when unknown
    expanded: int | None  # compressed shards at an estimated expanded size (what work scales with)


COMPRESSION_RATIO = 10  # frames are repetitive JSON: gzip/zstd shrink them ~5-15x


def check_inputs(job: JobOptions) -> InputSize:
    """Every glob matches a file (else InputError); returns the inputs' total size when it can tell
    (at most 10,000 files are sized: beyond that, only that the input is large matters)."""
    stored = expanded = 0
    for pattern in job.inputs:
        try:
            matched = expand_input(pattern, job.storage_options)
            fs, _ = fsspec.core.url_to_fs(pattern, **job.storage_options)
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
        read_baseline(job.baseline, job.output, job.storage_options)
    except (DriftInputError, OSError) as e:
        raise InputError(f"--baseline: {redact_uri(str(e))}") from None


def load_mask_labels(job: JobOptions) -> MaskLabels | None:
    if not job.mask_labels:
        return None
    try:
        return MaskLabels.load(job.mask_labels, job.storage_options)
    except (OSError, ValueError) as e:
        raise InputError(f"--mask-labels {redact_uri(job.mask_labels)}: {e}") from None


def prepare_job(job: JobOptions, beam_flags: list[str]) -> tuple[beam.Pipeline, InputSize]:
    """Check the inputs (InputError on misuse) and build the pipeline with Beam's options from
    ``beam_flags``; returns it with the inputs' size."""
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


def run_job(job: JobOptions, beam_flags: list[str], show_progress: bool = False) -> dict[str, Any]:
    """Run the pipeline to completion and return its summary (summary.json)."""
    started = time.monotonic()
    p, size = prepare_job(job, beam_flags)
    dask = uses_dask(beam_flags)
    # On Dask the workers' progress files are not where the launcher looks (nor are Beam counters collected).
    with Progress(size.stored) if show_progress and not dask else contextlib.nullcontext(), task_retries(dask):
        result = p.run()
        try:
            result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)  # the DaskRunner's connection to its scheduler
            if client is not None:
                client.close()
    summary = read_summary(job.output, job.storage_options)
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    return summary


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
        lines.append(f"  drift vs {drift['baseline']}: L-inf {d['linf']:.4f}, JS {d['js']:.4f}, PSI {d['psi']:.4f}{label_js}; "
                     f"{len(drift['labels_appeared'])} label(s) appeared, {len(drift['labels_vanished'])} vanished, "
                     f"{len(drift['colour_changed'])} changed colour")
    elif job.baseline:
        lines.append("  drift: no earlier run with labels in this output yet, nothing to compare with")
    tables = summary.get("tables", {})
    lines.append("  tables: " + ", ".join(f"{t}={n:,}" for t, n in tables.items()) + f"  -> {redact_uri(job.output)}")
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
