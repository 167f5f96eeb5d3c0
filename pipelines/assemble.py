"""Assembling the pipeline from JobOptions: wiring only, the domain lives in ``transforms``."""
from __future__ import annotations

import uuid

import apache_beam as beam

from pipelines.options import JobOptions
from transforms.joining import MaskLabels
from transforms.reading import ReadLimits
from transforms.schema import CORE_TABLES, DECODE_TABLES
from transforms.flattening import TableRows
from transforms.steps import SUMMARY_EXTRAS, JoinMasks, JoinOptions, ReadFrames, Validate, WriteTables
from transforms.writing import RunInfo, now_iso


def new_run_id() -> str:
    return f"{now_iso().replace(':', '').replace('+0000', 'Z')}-{uuid.uuid4().hex[:8]}"


def build_pipeline(p: beam.Pipeline, job: JobOptions, mask_labels: MaskLabels | None, run_id: str) -> None:
    """ReadFrames | Validate | JoinMasks | DecodeMasks | WriteTables."""
    limits = ReadLimits(max_record_bytes=job.max_record_bytes)
    so = job.storage_options or None
    joined = (
        p
        | "ReadFrames" >> ReadFrames(job.inputs, limits, so)
        | "Validate" >> Validate(job.max_json_depth)
        | "JoinMasks" >> JoinMasks(JoinOptions(mask_labels=mask_labels, decode=job.decode, max_masks_per_frame=job.max_masks_per_frame))
    )
    branches = {"frame_rows": joined["rows"], "duplicate_rows": joined["duplicates"]}
    tables = CORE_TABLES
    if job.decode:
        from transforms.drift import drift_findings
        from transforms.masks import LABEL_ITEMS, DecodeMasks, DecodeOptions
        from transforms.summary import drift_against, label_totals

        decoded = dict(joined | "DecodeMasks" >> DecodeMasks(DecodeOptions.from_job(job)))
        label_items = decoded.pop(LABEL_ITEMS)
        branches.update(decoded)
        tables = CORE_TABLES + DECODE_TABLES
        extras = [label_items | "LabelTotals" >> beam.Map(lambda items: ("labels", label_totals(items)))]
        if job.baseline:
            drift = label_items | "CompareBaseline" >> beam.Map(drift_against, job.baseline, so, job.max_drift)
            branches["drift_rows"] = drift | "DriftFindings" >> beam.Map(lambda result: TableRows("issues", drift_findings(result)))
            extras.append(drift | "DriftSummary" >> beam.Map(lambda result: ("drift", result)))
        branches[SUMMARY_EXTRAS] = tuple(extras) | "SummaryExtras" >> beam.Flatten()
    info = RunInfo(command=job.command, parameters=job.parameters(), started_at=now_iso())
    branches | "WriteTables" >> WriteTables(job.output, run_id, tables, info, so)
