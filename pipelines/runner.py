"""Running a job: check its inputs, build and run the pipeline, read back its summary."""
from __future__ import annotations

import time
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.assemble import build_pipeline, new_run_id
from pipelines.options import JobOptions
from transforms.joining import MaskLabels
from transforms.reading import expand_input
from transforms.uris import redact_uri
from transforms.writing import read_summary


class InputError(Exception):
    """Misuse or unreachable input: the CLI exits 2."""


def check_inputs(job: JobOptions) -> None:
    for pattern in job.inputs:
        try:
            matched = expand_input(pattern, job.storage_options)
        except Exception as e:  # noqa: BLE001 - any storage failure here is the user's to see, with exit 2
            raise InputError(f"cannot list {redact_uri(pattern)}: {type(e).__name__}: {redact_uri(str(e))}") from None
        if not matched:
            raise InputError(f"no input file matches {redact_uri(pattern)}; check the path and quote globs so the shell does not expand them")


def load_mask_labels(job: JobOptions) -> MaskLabels | None:
    if not job.mask_labels:
        return None
    try:
        return MaskLabels.load(job.mask_labels, job.storage_options)
    except (OSError, ValueError) as e:
        raise InputError(f"--mask-labels {redact_uri(job.mask_labels)}: {e}") from None


def run_job(job: JobOptions, options: PipelineOptions) -> dict[str, Any]:
    """Run the pipeline to completion and return its summary (summary.json)."""
    check_inputs(job)
    mask_labels = load_mask_labels(job)
    started = time.monotonic()
    p = beam.Pipeline(options=options)
    build_pipeline(p, job, mask_labels, new_run_id())
    result = p.run()
    result.wait_until_finish()
    summary = read_summary(job.output, job.storage_options)
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    return summary


def print_summary(summary: dict[str, Any], job: JobOptions) -> None:
    f = summary["findings"]
    lines = [
        f"framebeam {job.command}: {summary['frames']:,} frames ({summary['valid_frames']:,} valid), "
        f"{f['error']:,} errors, {f['warning']:,} warnings in {summary.get('elapsed_s', 0):.1f} s",
    ]
    by_code = sorted(summary["findings_by_code"].items(), key=lambda kv: (-kv[1]["count"], kv[0]))
    if by_code:
        width = max(len(code) for code, _ in by_code)
        lines.append(f"  {'code'.ljust(width)}  severity  count")
        for code, info in by_code:
            lines.append(f"  {code.ljust(width)}  {info['severity']:<8}  {info['count']:,}")
    tables = summary.get("tables", {})
    lines.append("  tables: " + ", ".join(f"{t}={n:,}" for t, n in tables.items()) + f"  -> {redact_uri(job.output)}")
    print("\n".join(lines))
