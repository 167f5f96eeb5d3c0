"""Decoding masks into statistics: every mask file read and decoded once, however many frames use it.

Each (frame, mask) reference becomes a ``MaskRequest`` keyed by the URI it reads. Requests are
grouped by that key, so a file is fetched and decoded once per group and each request's statistics
come from the one decoded image. Video masks are keyed by (URI, time segment): each group decodes
its segment of the video in one forward pass (``transforms.video``), and a video shared by 100,000
frames spreads over workers segment by segment instead of landing on one.

Per request the step yields rows for ``masks`` (decode columns), ``label_stats``, ``crops`` and
``issues``, plus ``(frame key, (errors, warnings, label flags, table key))`` so the ``frames`` table can
mark a frame invalid when one of its masks is, and ``label_summary`` can count frames per label.

``label_stats`` has a row for every declared colour present in the mask and for every colour an ROI
declared (its zero row says the ROI's class is missing: ``mask_colour_absent``). A class-table colour
absent from the mask gets no row and no event: the summary counts those absences from run-level
totals (see ``transforms.summary``), so cost follows what the masks hold, not the table's size.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam import typehints as th

from transforms import progress
from transforms.decoding import DecodeDeadline, MaskDecodeError, open_mask
from transforms.findings import ERROR, INFO, Finding
from transforms.flattening import TableRows, finding_row, with_frame_counts
from transforms.joining import Declaration, MaskLabels
from transforms.mask_requests import FrameKey, MaskRequest, group_key
from transforms.portable import MAIN, Gather, Tagged, only, tag_outputs
from transforms.schema import CropRow, IssueRow, LabelStatsRow, MaskRow
from transforms.statistics import MaskAnalysis, analyse_mask, pack_rgb
from transforms.steps import Joined
from transforms.storage import ReadProblem, open_mask_file, permanent_error_code, read_mask
from transforms.summary import (FrameEvent, FrameTables, LabelSummaryFn, MaskEvent, MasksDecoded, RunCountsFn, label_distributions,
                                label_summary_rows, resolve_labels, summary_findings)
from transforms.tuning import WorkerSetup
from transforms.uris import UriPolicy, redact_uri

if TYPE_CHECKING:
    from transforms.decoding import MaskPixels

LabelKey = tuple[tuple[str, ...], tuple[int, int, int]]


@dataclass(frozen=True)
class DecodeOptions:
    max_mask_pixels: int = 100_000_000
    colour_tolerance: int = 0
    crop_png: bool = False
    policy: UriPolicy = field(default_factory=UriPolicy)
    storage_options: dict[str, Any] | None = None
    min_label_frames: int = 5
    video_segment_ms: int = 5_000
    mask_decode_timeout: float = 60.0
    max_mask_bytes: int = 256 * 1024 * 1024
    slice_by: tuple[str, ...] = ()
    shape_stats: bool = True          # components, holes, component sizes, mask_speckle
    min_component_pixels: int = 4     # smaller components are specks
    max_outside_roi: float = 0.005    # mask_outside_roi above this fraction of a colour's pixels

    def __post_init__(self):
        if self.video_segment_ms <= 0:
            raise ValueError(f"video_segment_ms must be positive, got {self.video_segment_ms}")
        if self.min_component_pixels < 1:
            raise ValueError(f"min_component_pixels must be positive, got {self.min_component_pixels}")

    @classmethod
    def from_job(cls, job) -> "DecodeOptions":
        return cls(
            max_mask_pixels=job.max_mask_pixels, colour_tolerance=job.colour_tolerance, crop_png=job.crop_png,
            policy=UriPolicy(tuple(job.allow_uri_prefixes), job.allow_http),
            storage_options=job.storage_options or None, min_label_frames=job.min_label_frames,
            mask_decode_timeout=job.mask_decode_timeout, slice_by=tuple(job.slice_by), shape_stats=job.shape_stats,
            min_component_pixels=job.min_component_pixels, max_outside_roi=job.max_outside_roi,
            max_mask_bytes=getattr(job, "max_mask_bytes", 256 * 1024 * 1024),
        )


# --- analysing one decoded mask for one request ---------------------------------------------------------

PRESENT = 1  # label flags: the colour has pixels in the mask
ROI_DECLARED = 2  # an ROI of the frame declared it (not only the class table)


class LabelResult(NamedTuple):
    """One colour of one decoded mask that has a label_stats row: what label_summary accumulates for it."""

    key: LabelKey  # (labels, rgb)
    pixel_fraction: float
    pixel_count: int
    bbox: tuple[int | None, int | None, int | None, int | None]  # (x0, y0, x1, y1); all None without pixels
    roi_declared: bool  # an ROI of the frame declared it (not only the class table)
    components: int | None  # shape statistics (label_stats' columns); None when not measured
    holes: int | None
    largest: int | None  # pixels of the largest component

    @property
    def flags(self) -> int:
        return (PRESENT if self.pixel_count else 0) | (ROI_DECLARED if self.roi_declared else 0)


class RequestResult(NamedTuple):
    """Everything one request yields: its rows, its frame's extra finding counts and its per-label results."""

    frame_key: FrameKey
    mask: MaskRow
    issues: list[IssueRow]
    errors: int
    warnings: int
    labels: list[LabelResult] = []  # one per label_stats row; none when the mask was not decoded
    label_stats: list[LabelStatsRow] = []
    crops: list[CropRow] = []
    table_key: str | None = None  # the class-table entry that declared the mask's colours (None: ROIs, or none)
    decoded: bool = False


def failed_request(req: MaskRequest, finding: Finding) -> RequestResult:
    shard, line = req.frame_key
    issue = finding_row(shard, line, req.frame_id, finding)
    return RequestResult(req.frame_key, req.row._replace(status=finding.code), [issue], errors=1, warnings=0)


def label_image(analysis: MaskAnalysis, packed: "np.ndarray | MaskPixels", colours: list, tolerance: int) -> np.ndarray:
    """The label image shapes are measured on (contract: transforms/shapes.py): the one-pass kernel's."""
    if analysis.labels is not None:
        return analysis.labels
    from transforms.shapes import label_image_from_packed  # an analysis made without the kernel

    return label_image_from_packed(packed, [pack_rgb(c) for c in colours], tolerance)


class MaskShapes(NamedTuple):
    stats: Any | None   # shapes.ShapeStats when shape statistics are on
    runs: Any           # shapes.Runs: what pixels_outside_roi counts on


def measure_shapes(analysis: MaskAnalysis, packed: "np.ndarray | MaskPixels", colours: list, options: DecodeOptions) -> MaskShapes:
    from transforms.shapes import label_runs, shape_stats

    labels = label_image(analysis, packed, colours, options.colour_tolerance)
    if options.shape_stats:
        stats = shape_stats(labels, len(colours), options.min_component_pixels)
        return MaskShapes(stats, stats.runs)
    return MaskShapes(None, label_runs(labels, len(colours)))


def shape_columns(shapes: MaskShapes, index: int, decl: Declaration, colour, width: int, options: DecodeOptions) -> tuple:
    """label_stats' components, holes, largest/smallest_component_pixels and pixels_outside_roi."""
    from transforms.shapes import pixels_outside

    if shapes.stats is not None and colour.pixel_count:
        s = shapes.stats
        measured = (int(s.components[index]), int(s.holes[index]), int(s.largest[index]), int(s.smallest[index]))
    else:
        measured = (None, None, None, None)
    outside = None
    if decl.polys is not None:
        outside = pixels_outside(shapes.runs, index, colour.pixel_count, colour.bbox, decl.polys, width)
    return (*measured, outside)


def shape_findings(req: MaskRequest, shapes: MaskShapes, index: int, decl: Declaration, colour, outside: int | None,
                   options: DecodeOptions) -> list[Finding]:
    out = []
    what = f"colour {list(decl.rgb)} ({', '.join(decl.labels) or 'no label'})"
    s = shapes.stats
    if s is not None and s.specks[index]:
        x0, y0, x1, y1 = (int(v) for v in s.speck_bbox[index])
        out.append(Finding(
            "mask_speckle", req.path,
            f"{what} has {int(s.specks[index]):,} speck(s) (components under --min-component-pixels={options.min_component_pixels} "
            f"pixels) among its {int(s.components[index]):,} components; the largest speck, {int(s.speck_pixels[index])} pixel(s), "
            f"is at x {x0}..{x1 - 1}, y {y0}..{y1 - 1}. Clean them up in the annotation tool if they are not meant to be there.",
        ))
    if outside is not None and outside > options.max_outside_roi * colour.pixel_count:
        rois = f"ROI {decl.roi_index}'s poly" if len(decl.polys or ()) == 1 else f"the polys of its {len(decl.polys)} ROIs"
        out.append(Finding(
            "mask_outside_roi", f"/rois/{decl.roi_index}/poly",
            f"{outside:,} of the {colour.pixel_count:,} pixels of {what} ({outside / colour.pixel_count:.2%}) lie outside {rois} "
            f"(more than --max-outside-roi {options.max_outside_roi:.2%}); fix the poly or the mask.",
        ))
    return out


def analyse_request(req: MaskRequest, packed: "np.ndarray | MaskPixels", mode: str, options: DecodeOptions,
                    cache: dict | None = None) -> RequestResult:
    """Rows for one request from its decoded mask. ``cache`` shares analyses between requests of one file.

    ``packed``: (h, w) uint32 pixels (video frames) or a decoding.MaskPixels (images: the fused PNG path).
    """
    height, width = packed.shape
    shard, line = req.frame_key
    dw, dh = req.declared_size
    if (dw is not None and dw != width) or (dh is not None and dh != height):
        return failed_request(req, Finding(
            "mask_size_mismatch", req.path,
            f"The mask is {width}x{height} but the frame declares {dw}x{dh}; fix the declared width/height or re-export the mask.",
        ))
    decls = req.declarations
    colours = [d.rgb for d in decls]
    key = (tuple(colours), id(packed))
    analysis = cache.get(key) if cache is not None else None
    if analysis is None:
        analysis = analyse_mask(packed, colours, options.colour_tolerance, rle=True, png=options.crop_png)
        if cache is not None:
            cache[key] = analysis
    shapes = None
    if options.shape_stats or any(d.polys is not None for d in decls):
        shapes_key = ("shapes", *key)
        shapes = cache.get(shapes_key) if cache is not None else None
        if shapes is None:
            shapes = measure_shapes(analysis, packed, colours, options)
            if cache is not None:
                cache[shapes_key] = shapes
    stats = analysis.stats
    total = float(width * height)
    results: list[LabelResult] = []
    label_rows: list[LabelStatsRow] = []
    crop_rows: list[CropRow] = []
    issues: list[IssueRow] = []
    no_shapes = (None,) * 5
    for i, (d, c) in enumerate(zip(decls, stats.colours)):
        roi_declared = d.roi_index is not None
        if not c.pixel_count and not roi_declared:
            continue  # a table class this mask does not hold: no row (the summary counts it from run totals)
        x0, y0, x1, y1 = c.bbox or (None, None, None, None)
        cx, cy = c.centroid or (None, None)
        labels, rgb = list(d.labels), list(d.rgb)
        fraction = c.pixel_count / total
        components, holes, largest, smallest, outside = (
            shape_columns(shapes, i, d, c, width, options) if shapes is not None else no_shapes)
        results.append(LabelResult((tuple(d.labels), tuple(d.rgb)), fraction, c.pixel_count, (x0, y0, x1, y1), roi_declared,
                                   components, holes, largest))
        label_rows.append(LabelStatsRow(
            frame_id=req.frame_id, shard=shard, line=line, source_id=req.source_id, mask_id=req.mask_id,
            roi_index=d.roi_index, labels=labels, rgb=rgb, pixel_count=c.pixel_count, pixel_fraction=fraction,
            bbox_x0=x0, bbox_y0=y0, bbox_x1=x1, bbox_y1=y1, centroid_x=cx, centroid_y=cy,
            tolerance_pixels=c.tolerance_pixels, mask_width=width, mask_height=height,
            components=components, holes=holes, largest_component_pixels=largest, smallest_component_pixels=smallest,
            pixels_outside_roi=outside,
        ))
        if shapes is not None:
            issues.extend(finding_row(shard, line, req.frame_id, f) for f in shape_findings(req, shapes, i, d, c, outside, options))
        if c.pixel_count:
            crop_rows.append(CropRow(
                frame_id=req.frame_id, shard=shard, line=line, source_id=req.source_id, mask_id=req.mask_id,
                roi_index=d.roi_index, labels=labels, rgb=rgb, bbox_x0=x0, bbox_y0=y0, bbox_x1=x1, bbox_y1=y1,
                rle_counts=analysis.crops_rle[i], png=analysis.crops_png[i] if analysis.crops_png else None,
            ))
        else:  # only an ROI's colour: the frame said this class is in the mask
            issues.append(finding_row(shard, line, req.frame_id, Finding(
                "mask_colour_absent", req.path,
                f"Colour {rgb} ({', '.join(labels) or 'no label'}) is declared for this mask but has no pixels; "
                "check the colour (a lossy export moves colours: see --colour-tolerance) or drop the declaration.",
            )))
    if stats.undeclared_pixels:
        top = ", ".join(f"{list(rgb)}: {n:,}" for rgb, n in stats.top_undeclared)
        issues.append(finding_row(shard, line, req.frame_id, Finding(
            "mask_undeclared_pixels", req.path,
            f"{stats.undeclared_pixels:,} of {int(total):,} pixels are in {stats.n_undeclared_colours} colour(s) nobody declared "
            f"(most: {top}); declare them (void, background) or fix the class table.",
        )))
    mask = req.row._replace(width=width, height=height, mode=mode, status="ok", undeclared_pixels=stats.undeclared_pixels,
                            n_undeclared_colours=stats.n_undeclared_colours,
                            top_undeclared=[{"rgb": list(rgb), "pixels": n} for rgb, n in stats.top_undeclared])
    errors = sum(1 for r in issues if r.severity == ERROR)
    infos = sum(1 for r in issues if r.severity == INFO)
    table_key = decls[0].table_key if decls and decls[0].roi_index is None else None
    return RequestResult(req.frame_key, mask, issues, errors, len(issues) - errors - infos, results, label_rows, crop_rows,
                         table_key, decoded=True)


def analyse_group(key: str, requests: Iterable[MaskRequest], options: DecodeOptions) -> Iterator[RequestResult]:
    """All requests that read one object (or one segment of one video): read and decode once."""
    requests = list(requests)
    first = requests[0]
    reason = options.policy.check(first.read_uri)
    if reason:
        message = f"Mask URI {redact_uri(first.read_uri)} was not read: {reason}."
        for req in requests:
            yield failed_request(req, Finding("uri_not_allowed", req.path, message))
        return
    if first.is_video:
        yield from _analyse_video(requests, options)
        return
    # One budget from the first byte read to the last statistics: a stalled server counts too.
    deadline = DecodeDeadline(options.mask_decode_timeout)
    try:
        data = read_mask(first.read_uri, policy=options.policy, storage_options=options.storage_options,
                         max_bytes=options.max_mask_bytes, deadline=deadline)
    except ReadProblem as problem:
        message = f"Cannot read mask {redact_uri(first.read_uri)}: {problem.message}."
        for req in requests:
            yield failed_request(req, Finding(problem.code, req.path, message))
        return
    cache: dict = {}
    analysed = 0
    try:
        # PNG: checked and inflated here; defiltered and classified by analyse_mask's one kernel pass
        # (which raises MaskDecodeError if the pixel data turns out damaged).
        decoded = open_mask(data, max_pixels=options.max_mask_pixels, deadline=deadline)
        for req in requests:
            deadline.check("statistics and crops")
            yield analyse_request(req, decoded, decoded.mode, options, cache)
            analysed += 1
    except MaskDecodeError as e:
        for req in requests[analysed:]:
            yield failed_request(req, Finding(e.code, req.path, f"Mask {redact_uri(req.read_uri)}: {e.message}"))


def _analyse_video(requests: list[MaskRequest], options: DecodeOptions) -> Iterator[RequestResult]:
    # PyAV is the optional `video` extra: only a job with video masks needs it.
    from transforms.video import VIDEO_TIMESTAMP_OUT_OF_RANGE, decode_video_frames

    by_ts: dict[int, list[MaskRequest]] = defaultdict(list)
    for req in requests:
        by_ts[req.timestamp if req.timestamp is not None else 0].append(req)
    first = requests[0]
    start = min(by_ts)
    # Held so that the cache key (which includes id(packed)) cannot be reused by a newer array.
    analysed_frame: np.ndarray | None = None
    cache: dict = {}
    try:
        f = open_mask_file(first.read_uri, policy=options.policy, storage_options=options.storage_options,
                      max_bytes=options.max_mask_bytes)
    except ReadProblem as problem:
        message = f"Cannot read mask video {redact_uri(first.read_uri)}: {problem.message}."
        for req in requests:
            yield failed_request(req, Finding(problem.code, req.path, message))
        return
    try:
        with f:
            for result in decode_video_frames(f, list(by_ts), start_ms=max(start, 0), max_pixels=options.max_mask_pixels):
                reqs = by_ts.pop(result.timestamp_ms, [])
                if result.error_code:
                    # Only an out-of-range timestamp is the timestamp's fault; the rest is the video's.
                    suffix = "/timestamp" if result.error_code == VIDEO_TIMESTAMP_OUT_OF_RANGE else ""
                    for req in reqs:
                        yield failed_request(req, Finding(result.error_code, req.path + suffix,
                                                          f"Mask video {redact_uri(req.read_uri)} at {result.timestamp_ms} ms: {result.error_message}"))
                    continue
                if result.packed is not analysed_frame:  # timestamps selecting one frame share its analysis
                    analysed_frame, cache = result.packed, {}
                for req in reqs:
                    yield analyse_request(req, result.packed, "video", options, cache)
    except Exception as exc:  # noqa: BLE001 - reading the video object itself failed: a finding, never a crash
        code = permanent_error_code(exc) or "mask_unreadable"
        for reqs in by_ts.values():
            for req in reqs:
                yield failed_request(req, _unreadable(req, code, exc, "mask video"))


def _unreadable(req: MaskRequest, code: str, exc: BaseException, what: str) -> Finding:
    return Finding(code, req.path, f"Cannot read {what} {redact_uri(req.read_uri)}: {type(exc).__name__}: "
                                   f"{redact_uri(str(exc))[:300]}. Check the URI and the workers' credentials.")


# --- Beam ------------------------------------------------------------------------------------------------

LABEL_KEYS = "label_keys"
FRAME_COUNTS = "frame_counts"
SLICE_MASKS = "slice_masks"  # with --slice-by: (frame key, (source_id, table key, decoded, [(label key, mask event)]))
RUN_EVENTS = "run_events"  # decoded masks (and frames) per class-table entry: summary.RunCounts


class Decoded(NamedTuple):
    """What DecodeMasks produces."""

    measured: beam.PCollection        # TableRows of masks, label_stats, crops, issues
    decoded_frames: beam.PCollection  # TableRows of frames (frames with masks, counts including decoding's)
    label_summary: beam.PCollection   # TableRows of label_summary and label-level issues
    label_items: beam.PCollection     # one element: the run's list of summary.LabelSummary, for drift and summary.json
    label_hists: beam.PCollection     # one element: {labels: summary.LabelDistributions} (colours merged), for history and drift
    slice_summary: beam.PCollection | None = None  # TableRows of label_summary_by_slice (with --slice-by)
    slice_items: beam.PCollection | None = None    # one element: the run's slices.SliceSummary list (with --slice-by)


def _results_to_outputs(results: Iterable[RequestResult], slicing: bool = False) -> Iterator[Any]:
    tables: dict[str, list] = {"masks": [], "label_stats": [], "crops": [], "issues": []}
    handled = 0
    decoded: dict[str | None, int] = defaultdict(int)
    for r in results:
        handled += 1
        if r.decoded:
            decoded[r.table_key] += 1
        tables["masks"].append(r.mask)
        tables["label_stats"].extend(r.label_stats)
        tables["crops"].extend(r.crops)
        tables["issues"].extend(r.issues)
        flags = [(x.key, x.flags) for x in r.labels]
        yield beam.pvalue.TaggedOutput(FRAME_COUNTS, (r.frame_key, (r.errors, r.warnings, flags, r.table_key)))
        events = [(x.key, MaskEvent(fraction=x.pixel_fraction, pixels=x.pixel_count, bbox=x.bbox, roi_declared=x.roi_declared,
                                    components=x.components, holes=x.holes, largest=x.largest))
                  for x in r.labels]
        for event in events:
            yield beam.pvalue.TaggedOutput(LABEL_KEYS, event)
        if slicing:
            yield beam.pvalue.TaggedOutput(SLICE_MASKS, (r.frame_key, (r.mask.source_id, r.table_key, r.decoded, events)))
    for key, n in decoded.items():
        yield beam.pvalue.TaggedOutput(RUN_EVENTS, MasksDecoded(table_key=key, n=n))
    progress.note(masks=handled)
    for table, rows in tables.items():
        if rows:
            yield TableRows(table, rows)


class DecodeAndMeasureFn(beam.DoFn):
    """(read URI, requests) -> the rows and tagged outputs of every request of that mask object."""

    def __init__(self, options: DecodeOptions, worker: WorkerSetup = WorkerSetup()):
        self.options = options
        self.worker = worker

    def setup(self):
        self.worker.apply()  # malloc tuning for the mask buffers, GC, the progress folder
        # The mask kernel's machine code loads once per worker process (~0.5 s of CPU from numba's on-disk
        # cache, bench/first_mask_bench.py): here, not inside the first mask's --mask-decode-timeout.
        from transforms import kernel, shapes

        kernel.load()
        shapes.load()  # likewise the shape passes (uint8 label images: fewer than 255 declared colours)

    def process(self, element):
        key, requests = element
        # One output of Tagged branches (transforms.portable): not every runner splits a multi-output ParDo.
        yield from tag_outputs(_results_to_outputs(analyse_group(key, requests, self.options), bool(self.options.slice_by)))


def merge_frame(key_and_groups) -> Iterator[Any]:
    """The frames row of a frame with masks, its counts including decode-level findings."""
    _, groups = key_and_groups
    errors = warnings = 0
    labels: dict[LabelKey, int] = defaultdict(int)
    table_keys: set[str] = set()
    for e, w, flags, table_key in groups["counts"]:
        errors += e
        warnings += w
        for label, f in flags:
            labels[label] |= f
        if table_key is not None:
            table_keys.add(table_key)
    for row in groups["frame"]:
        yield TableRows("frames", [with_frame_counts(row, errors, warnings)])
    for label, f in labels.items():
        yield beam.pvalue.TaggedOutput(LABEL_KEYS, (label, FrameEvent(present=bool(f & PRESENT), roi_declared=bool(f & ROI_DECLARED))))
    if table_keys:
        yield beam.pvalue.TaggedOutput(RUN_EVENTS, FrameTables(table_keys=tuple(sorted(table_keys))))


@dataclass
class DecodeMasks(beam.PTransform):
    """Mask requests -> masks/label_stats/crops/issues rows, frames rows of frames with masks, label_summary."""

    options: DecodeOptions = field(default_factory=DecodeOptions)
    mask_labels: MaskLabels | None = None  # the class table: its classes absent from every mask still get a summary row
    worker: WorkerSetup = WorkerSetup()

    def __post_init__(self):
        super().__init__()

    def expand(self, joined: Joined) -> Decoded:
        opts, mask_labels = self.options, self.mask_labels
        # Single-output steps whose branches are selected by tag, each typed; no side inputs
        # (transforms.portable: what every runner, Dask included, runs the same way).
        decoded = (
            joined.mask_requests
            | "KeyByObject" >> beam.Map(lambda req: (group_key(req, opts.video_segment_ms), req)).with_output_types(th.Tuple[str, MaskRequest])
            | "GroupByObject" >> beam.GroupByKey()
            | "DecodeAndMeasure" >> beam.ParDo(DecodeAndMeasureFn(opts, self.worker)).with_output_types(Tagged)
        )
        frames = (
            {"frame": joined.pending_frames, "counts": decoded | "FrameCounts" >> only(FRAME_COUNTS, th.Tuple[th.Tuple[str, int], tuple])}
            | "JoinFrameCounts" >> beam.CoGroupByKey()
            | "MergeFrames" >> beam.FlatMap(lambda kv: tag_outputs(merge_frame(kv))).with_output_types(Tagged)
        )
        run_counts = (
            (decoded | "MaskRunEvents" >> only(RUN_EVENTS, tuple), frames | "FrameRunEvents" >> only(RUN_EVENTS, tuple))
            | "AllRunEvents" >> beam.Flatten()
            # Without defaults (the default is a side input); ResolveLabels supplies it.
            | "CountRun" >> beam.CombineGlobally(RunCountsFn()).without_defaults()
        )
        summarised = (
            (decoded | "MaskLabelEvents" >> only(LABEL_KEYS, th.Tuple[tuple, tuple]),
             frames | "FrameLabelEvents" >> only(LABEL_KEYS, th.Tuple[tuple, tuple]))
            | "AllLabelEvents" >> beam.Flatten()
            | "SummariseLabels" >> beam.CombinePerKey(LabelSummaryFn())
        )
        label_accs = {"items": summarised, "run": run_counts} | "ListLabels" >> Gather()
        label_items = label_accs | "ResolveLabels" >> beam.Map(_resolve_gathered, mask_labels).with_output_types(list)
        label_hists = label_accs | "LabelHistograms" >> beam.Map(lambda g: label_distributions(g["items"], g["run"][0] if g["run"] else None))
        summary = label_items | "SummaryRows" >> beam.FlatMap(lambda items: [
            TableRows("label_summary", label_summary_rows(items)),
            TableRows("issues", summary_findings(items, opts.min_label_frames)),
        ]).with_output_types(TableRows)
        measured = decoded | "MeasuredRows" >> only(MAIN, TableRows)
        decoded_frames = frames | "FrameRows" >> only(MAIN, TableRows)
        if not opts.slice_by:
            return Decoded(measured=measured, decoded_frames=decoded_frames, label_summary=summary, label_items=label_items,
                           label_hists=label_hists)
        from transforms.slices import SLICE_RUN_EVENTS, resolve_slices, slice_events, slice_summary_rows

        keys = opts.slice_by
        events = (
            {"frame": joined.frame_slices, "masks": decoded | "SliceMasks" >> only(SLICE_MASKS, th.Tuple[th.Tuple[str, int], tuple])}
            | "JoinSlices" >> beam.CoGroupByKey()
            | "SliceEvents" >> beam.FlatMap(lambda kv: tag_outputs(slice_events(kv[1]["frame"], kv[1]["masks"], keys))).with_output_types(Tagged)
        )
        slice_runs = events | "SliceRunEvents" >> only(SLICE_RUN_EVENTS, th.Tuple[th.Any, th.Any]) | "CountSlices" >> beam.CombinePerKey(RunCountsFn())
        slice_accs = events | "SliceLabelEvents" >> only(MAIN, th.Tuple[th.Any, th.Any]) | "SummariseSlices" >> beam.CombinePerKey(LabelSummaryFn())
        slice_items = (
            {"accs": slice_accs, "runs": slice_runs}
            | "ListSlices" >> Gather()
            | "ResolveSlices" >> beam.Map(lambda g: resolve_slices(g["accs"], g["runs"], mask_labels)).with_output_types(list)
        )
        slice_summary = slice_items | "SliceRows" >> beam.Map(
            lambda items: TableRows("label_summary_by_slice", slice_summary_rows(items))).with_output_types(TableRows)
        return Decoded(measured=measured, decoded_frames=decoded_frames, label_summary=summary, label_items=label_items,
                       label_hists=label_hists, slice_summary=slice_summary, slice_items=slice_items)


def _resolve_gathered(gathered: dict[str, list], mask_labels: MaskLabels | None) -> list:
    run = gathered["run"][0] if gathered["run"] else RunCountsFn().create_accumulator()
    return resolve_labels(gathered["items"], run, mask_labels)
