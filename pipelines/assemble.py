"""Assembling the pipeline from JobOptions: wiring only, the domain lives in ``transforms``."""
from __future__ import annotations

import uuid

import apache_beam as beam

from pipelines.options import JobOptions, spread_buckets
from transforms.joining import MaskLabels
from transforms.reading import ReadLimits
from transforms.schema import CORE_TABLES, DECODE_TABLES, HISTORY_TABLES, SLICE_TABLES
from transforms.steps import JoinMasks, JoinOptions, ReadFrames, TableBranches, Validate, WriteTables
from transforms.tuning import WorkerSetup
from transforms.writing import RunInfo, now_iso


def new_run_id() -> str:
    return f"{now_iso().replace(':', '').replace('+0000', 'Z')}-{uuid.uuid4().hex[:8]}"


def build_pipeline(p: beam.Pipeline, job: JobOptions, mask_labels: MaskLabels | None, run_id: str,
                   worker: WorkerSetup | None = None) -> None:
    """ReadFrames | Validate | JoinMasks | DecodeMasks | WriteTables.

    ``worker``: what the steps' set-up gives each worker process (transforms.tuning); by default the
    job's tuning, without a progress folder."""
    worker = worker or WorkerSetup.for_job(job.decode)
    limits = ReadLimits(max_record_bytes=job.max_record_bytes)
    joined = (
        p
        | "ReadFrames" >> ReadFrames([job.at(i) for i in job.inputs], limits, spread_buckets(p.options))
        | "Validate" >> Validate(job.max_json_depth, worker)
        | "JoinMasks" >> JoinMasks(JoinOptions(mask_labels=mask_labels, decode=job.decode, max_masks_per_frame=job.max_masks_per_frame,
                                                slice_by=tuple(job.slice_by) if job.decode else ()), worker)
    )
    branches, tables = TableBranches(joined), CORE_TABLES
    if job.decode:
        # Imported here: a convert job never loads the decoders.
        from transforms.history import CompareLabels
        from transforms.masks import DecodeMasks, DecodeOptions

        decoded = joined | "DecodeMasks" >> DecodeMasks(DecodeOptions.from_job(job), mask_labels, worker)
        slice_items = decoded.slice_items if decoded.slice_items is not None else p | "NoSlices" >> beam.Create([])
        compared = ((decoded.label_items, decoded.label_hists, slice_items)
                    | "CompareLabels" >> CompareLabels(job.baseline, job.target, job.drift_thresholds()))
        branches = TableBranches(joined, decoded, compared["extras"], compared["drift_rows"], compared["history"])
        tables = CORE_TABLES + DECODE_TABLES + (SLICE_TABLES if job.slice_by else ())
    info = RunInfo(command=job.command, parameters=job.parameters(), started_at=now_iso())
    branches | "WriteTables" >> WriteTables(job.target, run_id, tables + HISTORY_TABLES, info, job.keep_history,
                                            bundle_outputs=keeps_bundle_outputs(p), worker=worker)


def keeps_bundle_outputs(p: beam.Pipeline) -> bool:
    """Whether the runner passes on what DoFn.finish_bundle emits: Beam 2.77's DaskRunner drops it."""
    return type(p.runner).__name__ != "DaskRunner"
