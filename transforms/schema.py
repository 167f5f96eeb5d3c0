"""Every output table's pyarrow schema, with each column's meaning: the one place they are defined.

Each schema also gives its table's row type (``FrameRow``, ``IssueRow``, ...): a NamedTuple made from the
schema's columns, in order, so the column list is written once; every producer builds rows and every
consumer reads them by field name (tests/test_schema.py fails when a row type and its schema disagree).
A row is still a tuple, so ``flattening.rows_to_table`` turns rows into columns by position, in schema order.

docs/TABLES.md is generated from this module (``python -m transforms.schema > docs/TABLES.md``) and a
test fails when the two drift.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa


def _col(name: str, type_: pa.DataType, meaning: str, nullable: bool = True, computed: bool = False) -> pa.Field:
    """``computed``: framebeam makes every value from pixels in an alphabet that cannot spell a credential,
    so the sink does not redact it (and must not: ``transforms.writing.redact_table``)."""
    metadata = {"meaning": meaning}
    if computed:
        metadata[COMPUTED] = "pixels"
    return pa.field(name, type_, nullable=nullable, metadata=metadata)


COMPUTED = "framebeam.computed"


def is_computed(field: pa.Field) -> bool:
    return bool(field.metadata) and COMPUTED.encode() in field.metadata


_PROVENANCE = [
    _col("frame_id", pa.string(), "The frame's own `id`; without one, `<shard>#<line>` (stable across runs). Not unique across shards: join on (shard, line).", False),
    _col("shard", pa.string(), "URI of the input file holding the record, as given or expanded from the glob (credentials removed).", False),
    _col("line", pa.int64(), "1-based physical line (JSON Lines), 1-based array index (JSON array file), or 1 (single-object file).", False),
]
_RGB = pa.list_(pa.int16())
_BBOX = [
    _col("bbox_x0", pa.int32(), "Leftmost pixel column of the colour (inclusive); null when it has no pixels."),
    _col("bbox_y0", pa.int32(), "Top pixel row (inclusive); null when no pixels."),
    _col("bbox_x1", pa.int32(), "One past the rightmost column (exclusive: width = x1 - x0); null when no pixels."),
    _col("bbox_y1", pa.int32(), "One past the bottom row (exclusive: height = y1 - y0); null when no pixels."),
]

FRAMES = pa.schema([
    *_PROVENANCE,
    _col("context_id", pa.string(), "Groups frames of one sequence or video."),
    _col("timestamp", pa.int64(), "Frame timestamp in ms, when given."),
    _col("n_sources", pa.int32(), "Number of sources (a FrameGroup has several).", False),
    _col("n_rois", pa.int32(), "Number of ROIs.", False),
    _col("n_masks", pa.int32(), "Number of mask entries over all sources.", False),
    _col("valid", pa.bool_(), "True when the frame has no error finding (decode-level findings included in `run`).", False),
    _col("n_errors", pa.int32(), "Error findings on this record (see `issues`, same shard and line).", False),
    _col("n_warnings", pa.int32(), "Warning findings on this record, dataset-level ones (duplicate_frame_id) excluded.", False),
    _col("dataset_id", pa.string(), "`dataset.id`, when given."),
    _col("dataset_version", pa.string(), "`dataset.version`, when given."),
    _col("meta", pa.string(), "The frame's `meta` object as JSON text (query with DuckDB's json functions)."),
    _col("extra", pa.string(), "Every other top-level key (server fields such as saved or updated, meta_blob, blob, ...) as a JSON object text, values as written; null when there are none."),
])

SOURCES = pa.schema([
    *_PROVENANCE,
    _col("source_index", pa.int32(), "0-based position in the frame's `sources`.", False),
    _col("source_id", pa.string(), "The source's `id`."),
    _col("uri", pa.string(), "The source's `uri` (credentials removed)."),
    _col("content_type", pa.string(), "Declared content type, e.g. image/png, video/mp4."),
    _col("width", pa.int64(), "Declared width in pixels."),
    _col("height", pa.int64(), "Declared height in pixels."),
    _col("timestamp", pa.int64(), "ms into a video; 0 for still images."),
    _col("preview_uri", pa.string(), "`preview.uri`, when given."),
    _col("meta", pa.string(), "The source's `meta` as JSON text."),
])

MASKS = pa.schema([
    *_PROVENANCE,
    _col("source_id", pa.string(), "Id of the source whose `masks` holds this entry."),
    _col("mask_id", pa.string(), "The mask entry's `id` (an integer id is given as its decimal string)."),
    _col("uri", pa.string(), "The mask's `uri` as written (credentials removed)."),
    _col("resolved_uri", pa.string(), "The URI read: relative URIs resolve against the shard's folder (credentials removed)."),
    _col("content_type", pa.string(), "Declared content type; when absent, inferred from the URI."),
    _col("timestamp", pa.int64(), "ms position in a mask video (0 or null for images)."),
    _col("declared_width", pa.int64(), "Declared width: the mask entry's, else its source's."),
    _col("declared_height", pa.int64(), "Declared height: the mask entry's, else its source's."),
    _col("n_declared_colours", pa.int32(), "Distinct colours declared for this mask (ROIs joined to it, or the --mask-labels table).", False),
    _col("width", pa.int32(), "Decoded width (`run` only; null when not decoded)."),
    _col("height", pa.int32(), "Decoded height (`run` only)."),
    _col("mode", pa.string(), "Pixel format of the file: RGB, RGBA, P, L, ... (`run` only)."),
    _col("status", pa.string(), "`ok`, `not_decoded` (convert, --no-decode, or no uri) or the error finding's code (`run`; `too_many_masks` beyond --max-masks-per-frame).", False),
    _col("undeclared_pixels", pa.int64(), "Pixels in no declared colour (`run` only)."),
    _col("n_undeclared_colours", pa.int32(), "Distinct colours among the undeclared pixels (`run` only)."),
    _col("top_undeclared", pa.list_(pa.struct([("rgb", _RGB), ("pixels", pa.int64())])), "Up to 5 undeclared colours with their pixel counts, most first (`run` only)."),
])

ROIS = pa.schema([
    *_PROVENANCE,
    _col("roi_index", pa.int32(), "0-based position in the frame's `rois` (ROIs usually have no id).", False),
    _col("roi_id", pa.string(), "The ROI's `id`, when given."),
    _col("labels", pa.list_(pa.string()), "`label` as written (`labels` accepted)."),
    _col("class_labels", pa.list_(pa.string()), "The class after the join: `labels` by the schema rule, [mask.id] by the seed rule."),
    _col("source_ids", pa.list_(pa.string()), "`sources`: ids of the sources the ROI annotates."),
    _col("confidence", pa.float64(), "`confidence`, when given."),
    _col("poly", pa.list_(pa.float64()), "Flat [x0, y0, x1, y1, ...]; -999999999 separates polygon parts."),
    _col("roi_type", pa.string(), "`meta._type` as the SDK writes it: mask, b2d, p2d, ..."),
    _col("mask_id", pa.string(), "`mask.id` as written."),
    _col("mask_rgb", _RGB, "`mask.value`: the colour in the mask image; null without a mask."),
    _col("mask_source_id", pa.string(), "Id of the mask entry this ROI joined to; null when not joined."),
    _col("join_rule", pa.string(), "`schema`, `seed_example` (warned), or null (no mask, or not joined)."),
    _col("meta", pa.string(), "The ROI's `meta` as JSON text."),
])

ISSUES = pa.schema([
    _col("shard", pa.string(), "Input file of the record; null for dataset-level findings."),
    _col("line", pa.int64(), "Line (or array index) of the record; null when the finding is about a whole shard or the dataset."),
    _col("frame_id", pa.string(), "Frame id when known; null for unparsable records and dataset-level findings."),
    _col("severity", pa.string(), "`error`, `warning` or `info` (counted and shown, never fails a run).", False),
    _col("code", pa.string(), "Stable snake_case code: see docs/FINDINGS.md.", False),
    _col("path", pa.string(), "JSON pointer into the record ('' = the whole record).", False),
    _col("message", pa.string(), "What is wrong and how to fix it.", False),
    _col("raw", pa.string(), "The raw record text (up to 64 KiB) when it could not be parsed into a frame; else null."),
])

# One row per colour present in the mask, and per colour an ROI declared for it (a zero row: the ROI's
# class is missing). A class-table colour absent from the mask has no row.
LABEL_STATS = pa.schema([
    *_PROVENANCE,
    _col("source_id", pa.string(), "Source whose mask this is."),
    _col("mask_id", pa.string(), "The mask entry's id."),
    _col("roi_index", pa.int32(), "ROI that declared the colour; null when it came from --mask-labels."),
    _col("labels", pa.list_(pa.string()), "Class labels of the colour."),
    _col("rgb", _RGB, "Declared colour [r, g, b].", False),
    _col("pixel_count", pa.int64(), "Pixels of this colour. A row exists for each colour present in the mask and each colour an ROI declared for it (0 here: the ROI's class is missing); a --mask-labels class absent from the mask has no row.", False),
    _col("pixel_fraction", pa.float64(), "pixel_count / (mask_width * mask_height).", False),
    *_BBOX,
    _col("centroid_x", pa.float64(), "Mean pixel column; null when no pixels."),
    _col("centroid_y", pa.float64(), "Mean pixel row; null when no pixels."),
    _col("tolerance_pixels", pa.int64(), "Pixels matched only through --colour-tolerance (0 when exact).", False),
    _col("mask_width", pa.int32(), "Decoded mask width.", False),
    _col("mask_height", pa.int32(), "Decoded mask height.", False),
    _col("components", pa.int32(), "8-connected regions of the colour; null when it has no pixels or with --no-shape-stats (docs/SHAPES.md)."),
    _col("holes", pa.int32(), "4-connected regions of other pixels the colour encloses (not touching the mask's border); null as components."),
    _col("largest_component_pixels", pa.int64(), "Pixels of the largest component; null as components."),
    _col("smallest_component_pixels", pa.int64(), "Pixels of the smallest component (below --min-component-pixels it is a speck: mask_speckle); null as components."),
    _col("pixels_outside_roi", pa.int64(), "Pixels of the colour whose centre lies outside its ROI's poly (even-odd rule, docs/SHAPES.md); null when an ROI declaring the colour has no poly, or it came from --mask-labels."),
])

CROPS = pa.schema([
    *_PROVENANCE,
    _col("source_id", pa.string(), "Source whose mask this is."),
    _col("mask_id", pa.string(), "The mask entry's id."),
    _col("roi_index", pa.int32(), "ROI that declared the colour; null when it came from --mask-labels."),
    _col("labels", pa.list_(pa.string()), "Class labels of the colour."),
    _col("rgb", _RGB, "Declared colour [r, g, b].", False),
    *[f.with_nullable(False) for f in _BBOX],
    _col("rle_counts", pa.string(), "COCO compressed RLE of the binary crop, shape (y1-y0, x1-x0), Fortran order: pycocotools.mask.decode({'size': [h, w], 'counts': rle_counts}). Not redacted: framebeam writes it from pixels.", False, computed=True),
    _col("png", pa.binary(), "1-bit PNG of the crop (only with --crop-png)."),
])

LABEL_SUMMARY = pa.schema([
    _col("labels", pa.list_(pa.string()), "Class labels.", False),
    _col("rgb", _RGB, "Colour.", False),
    _col("masks_present", pa.int64(), "Decoded masks in which it has at least one pixel. Rows are ranked by this, then total_pixels.", False),
    _col("frames_present", pa.int64(), "Frames with at least one pixel of it in a decoded mask.", False),
    _col("masks_declared", pa.int64(), "Decoded masks for which it was declared, by an ROI or by the --mask-labels class table.", False),
    _col("frames_declared", pa.int64(), "Frames in which it was declared for a decoded mask.", False),
    _col("total_pixels", pa.int64(), "Sum of pixel_count.", False),
    _col("pixel_fraction_mean", pa.float64(), "Mean pixel_fraction over all decoded masks of the run (0 where the class has no pixels)."),
    _col("pixel_fraction_min", pa.float64(), "Minimum pixel_fraction over all decoded masks (0 when some mask lacks it)."),
    _col("pixel_fraction_max", pa.float64(), "Maximum pixel_fraction."),
    _col("pixel_fraction_p50", pa.float64(), "Median pixel_fraction over all decoded masks (0 where absent), as numpy's quantile(method=\"lower\"): exact for a class present in at most 256 masks, else within 0.0005; exactly 0 when the median mask lacks the class."),
    _col("pixel_fraction_p95", pa.float64(), "95th percentile of pixel_fraction, as p50."),
    _col("bbox_width_mean", pa.float64(), "Mean bbox width over masks where present."),
    _col("bbox_height_mean", pa.float64(), "Mean bbox height over masks where present."),
    _col("components_mean", pa.float64(), "Mean components (8-connected regions) over masks where present and measured; null with --no-shape-stats."),
    _col("components_p95", pa.int64(), "95th percentile of components over the same masks: exact (the smallest value at least 95% of them do not exceed: numpy's method='inverted_cdf')."),
    _col("holes_mean", pa.float64(), "Mean holes over masks where present and measured."),
    _col("holes_p95", pa.int64(), "95th percentile of holes, exact as components_p95."),
])

LABEL_SUMMARY_BY_SLICE = pa.schema([
    _col("slice_key", pa.string(), "The --slice-by key: `source_id`, `context_id` or `meta.<path>`.", False),
    _col("slice_value", pa.string(), "The slice's value (null: frames or sources without one); meta values that are not strings as JSON text."),
    *LABEL_SUMMARY,
])

_RUN = [
    _col("run_id", pa.string(), "The run (its folder is `OUTPUT/_runs/<run_id>/` while it is the current one).", False),
    _col("started_at", pa.string(), "When the run started (ISO 8601, UTC)."),
    _col("published_at", pa.string(), "When the run was published (ISO 8601, UTC)."),
]

HISTORY = pa.schema([
    *_RUN,
    _col("slice_key", pa.string(), "null for the whole run (a row per declared label); else the --slice-by key (`source_id`, `context_id`, `meta.<path>`): a row per label present in the slice."),
    _col("slice_value", pa.string(), "The slice's value (null when the frame or source has none)."),
    _col("labels", pa.list_(pa.string()), "Class labels (one row per label, its colours merged).", False),
    _col("colours", pa.list_(_RGB), "Colours the label was declared in."),
    _col("frames_present", pa.int64(), "Frames in which the label has at least one pixel.", False),
    _col("masks", pa.int64(), "Decoded masks declaring the label, by an ROI or the class table (label_summary.masks_declared).", False),
    _col("masks_present", pa.int64(), "Decoded masks in which the label has at least one pixel.", False),
    _col("total_pixels", pa.int64(), "Pixels of the label.", False),
    _col("label_share", pa.float64(), "p(label) = masks_present / sum of masks_present over the run's (or slice's) labels; null when none is present."),
    _col("presence_rate", pa.float64(), "masks_present / masks."),
    _col("pixel_fraction_mean", pa.float64(), "Mean pixel_fraction over the run's decoded masks, 0 where absent (as label_summary)."),
    _col("pixel_fraction_p50", pa.float64(), "Median pixel_fraction (as label_summary), of the label's colours merged (a mask holding two of them counts once per colour)."),
    _col("pixel_fraction_p95", pa.float64(), "95th percentile of pixel_fraction (as p50)."),
    _col("components_mean", pa.float64(), "Mean connected components per mask (label_summary.components_mean; null when the run did not measure shapes)."),
    _col("holes_mean", pa.float64(), "Mean holes per mask (label_summary.holes_mean; null when not measured)."),
    _col("fraction_hist", pa.list_(pa.int64()), "Masks where present, by pixel_fraction in 20 equal bins on [0, 1] (bin k: min(floor(1000 f), 999) // 50 = k)."),
    _col("components_hist", pa.list_(pa.int64()), "Masks where present and measured, by components in 12 bins: 0, 1, 2, 3, 4, 5-7, 8-15, 16-31, 32-63, 64-127, 128-255, 256+; null when shapes were not measured."),
    _col("holes_hist", pa.list_(pa.int64()), "The same masks by holes, in the same 12 bins."),
    _col("largest_share_hist", pa.list_(pa.int64()), "The same masks by the largest component's share of the label's pixels (largest_component_pixels / pixel_count) in 10 equal bins: bin k = min(floor(10 share), 9)."),
    _col("baseline_run_id", pa.string(), "The run the drift columns compare with; null when the run had no baseline."),
    _col("share_change", pa.float64(), "label_share minus the baseline's (a label missing there counts 0)."),
    _col("presence_rate_change", pa.float64(), "presence_rate minus the baseline's; null when either has no mask declaring the label."),
    _col("fraction_js", pa.float64(), "Jensen-Shannon divergence (bits) of fraction_hist against the baseline's; null when either is empty."),
    _col("components_js", pa.float64(), "Jensen-Shannon divergence (bits) of components_hist against the baseline's; null when either is null or empty."),
    _col("holes_js", pa.float64(), "Jensen-Shannon divergence (bits) of holes_hist against the baseline's; null as components_js."),
    _col("largest_share_js", pa.float64(), "Jensen-Shannon divergence (bits) of largest_share_hist against the baseline's; null as components_js."),
    _col("components_mean_change", pa.float64(), "components_mean minus the baseline's; null when either is null."),
    _col("holes_mean_change", pa.float64(), "holes_mean minus the baseline's; null when either is null."),
])

HISTORY_RUNS = pa.schema([
    *_RUN,
    _col("command", pa.string(), "convert, run or validate."),
    _col("passed", pa.bool_(), "The verdict (validate's exit status 0); computed for every command."),
    _col("reasons", pa.list_(pa.string()), "Why the run failed its thresholds (empty when it passed)."),
    _col("errors", pa.int64(), "Error findings.", False),
    _col("warnings", pa.int64(), "Warning findings.", False),
    _col("infos", pa.int64(), "Info findings (null before the info severity existed)."),
    _col("frames", pa.int64(), "Frames read."),
    _col("valid_frames", pa.int64(), "Frames without an error finding."),
    _col("records", pa.int64(), "Records read (frames plus records that are no frame)."),
    _col("masks_decoded", pa.int64(), "Masks decoded."),
    _col("labels_present", pa.int64(), "Labels with at least one present mask (null without decoding)."),
    _col("findings_by_code", pa.list_(pa.struct([("code", pa.string()), ("severity", pa.string()), ("count", pa.int64())])),
         "Finding counts by code (as summary.json)."),
    _col("baseline", pa.string(), "The --baseline this run compared with (`previous` resolved to a run id), credentials removed; null without one."),
    _col("baseline_run_id", pa.string(), "The baseline's run id, when known."),
    _col("drift_linf", pa.float64(), "L-infinity distance of the label distributions against the baseline."),
    _col("drift_js", pa.float64(), "Jensen-Shannon divergence (bits) of the label distributions."),
    _col("drift_psi", pa.float64(), "Population stability index of the label distributions (empty cells at 1e-4)."),
    _col("drift_label_js", pa.float64(), "Largest per-label Jensen-Shannon divergence of pixel-fraction histograms."),
    _col("drift_shape_js", pa.float64(), "Largest per-label Jensen-Shannon divergence of components, holes or largest-component-share histograms (null when shapes were not measured)."),
    _col("drift_breaches", pa.list_(pa.string()), "Metrics over their --max-drift threshold (`js`, `slice:<key>=<value>:psi`, ...)."),
])


TABLES: dict[str, pa.Schema] = {
    "frames": FRAMES,
    "sources": SOURCES,
    "masks": MASKS,
    "rois": ROIS,
    "issues": ISSUES,
    "label_stats": LABEL_STATS,
    "crops": CROPS,
    "label_summary": LABEL_SUMMARY,
    "label_summary_by_slice": LABEL_SUMMARY_BY_SLICE,
    "history": HISTORY,
    "history_runs": HISTORY_RUNS,
}

# ---------------------------------------------------------------- row types, made from the schemas

_SCALAR_TYPES = ((pa.types.is_string, str), (pa.types.is_integer, int), (pa.types.is_floating, float),
                 (pa.types.is_boolean, bool), (pa.types.is_binary, bytes))


def python_type(type_: pa.DataType, nullable: bool = False) -> Any:
    """The Python type a row holds for an Arrow type: list columns take any sequence (lists, or tuples where
    the values are also dict keys, as summary's classes), struct columns a dict; ``| None`` when nullable."""
    if pa.types.is_list(type_):
        python: Any = Sequence[python_type(type_.value_type)]
    elif pa.types.is_struct(type_):
        python = dict[str, Any]
    else:
        python = next((p for is_kind, p in _SCALAR_TYPES if is_kind(type_)), None)
        if python is None:
            raise TypeError(f"no Python type for the Arrow type {type_}")
    return python | None if nullable else python


ROW_TYPES: dict[str, type] = {}


def _row_type(name: str, table: str) -> Any:
    """The NamedTuple of a table's rows: its schema's columns, in order, with their Python types."""
    row = NamedTuple(name, [(f.name, python_type(f.type, f.nullable)) for f in TABLES[table]])
    row.__doc__ = f"A row of `{table}` (columns and meanings: docs/TABLES.md, or ``schema.TABLES[{table!r}]``)."
    ROW_TYPES[table] = row
    return row


# Each is a plain typing.NamedTuple made from its schema: build rows by field name, read them by name.
FrameRow = _row_type("FrameRow", "frames")
SourceRow = _row_type("SourceRow", "sources")
MaskRow = _row_type("MaskRow", "masks")
RoiRow = _row_type("RoiRow", "rois")
IssueRow = _row_type("IssueRow", "issues")
LabelStatsRow = _row_type("LabelStatsRow", "label_stats")
CropRow = _row_type("CropRow", "crops")
LabelSummaryRow = _row_type("LabelSummaryRow", "label_summary")
LabelSummaryBySliceRow = _row_type("LabelSummaryBySliceRow", "label_summary_by_slice")
HistoryRow = _row_type("HistoryRow", "history")
HistoryRunRow = _row_type("HistoryRunRow", "history_runs")

# Tables every command writes; the others come from mask decoding (`run`, `validate` without --no-decode).
CORE_TABLES = ("frames", "sources", "masks", "rois", "issues")
DECODE_TABLES = ("label_stats", "crops", "label_summary")
SLICE_TABLES = ("label_summary_by_slice",)  # with --slice-by
# Carried forward from run to run in one OUTPUT (the last --keep-history runs), written by every command.
HISTORY_TABLES = ("history", "history_runs")

_EXAMPLES = {
    "frames": "SELECT valid, count(*) FROM 'out/frames/*.parquet' GROUP BY valid;",
    "sources": "SELECT content_type, count(*) FROM 'out/sources/*.parquet' GROUP BY ALL ORDER BY 2 DESC;",
    "masks": "SELECT status, count(*), sum(undeclared_pixels) FROM 'out/masks/*.parquet' GROUP BY status;",
    "rois": "SELECT join_rule, count(*) FROM 'out/rois/*.parquet' GROUP BY join_rule;",
    "issues": "SELECT severity, code, count(*) FROM 'out/issues/*.parquet' GROUP BY ALL ORDER BY 3 DESC;",
    "label_stats": "SELECT labels, sum(pixel_count) AS px FROM 'out/label_stats/*.parquet' GROUP BY labels ORDER BY px DESC;",
    "crops": "SELECT frame_id, labels, bbox_x1 - bbox_x0 AS w, bbox_y1 - bbox_y0 AS h, rle_counts FROM 'out/crops/*.parquet' LIMIT 5;",
    "label_summary": "SELECT labels, masks_present, masks_declared, pixel_fraction_p50 FROM 'out/label_summary/*.parquet' ORDER BY masks_present DESC;",
    "label_summary_by_slice": ("SELECT slice_value, labels, masks_present FROM 'out/label_summary_by_slice/*.parquet' "
                               "WHERE slice_key = 'source_id' ORDER BY slice_value, masks_present DESC;"),
    "history": ("SELECT run_id, label_share, fraction_js FROM 'out/history/*.parquet' WHERE labels = ['car'] AND slice_key IS NULL "
                "ORDER BY run_id;"),
    "history_runs": "SELECT run_id, passed, errors, warnings, drift_js FROM 'out/history_runs/*.parquet' ORDER BY run_id;",
}


def tables_markdown() -> str:
    """docs/TABLES.md, generated from the schemas above."""
    out = [
        "# Output tables",
        "",
        "Generated from `transforms/schema.py` by `python -m transforms.schema > docs/TABLES.md`; do not edit by hand.",
        "Each table is a folder of Parquet files. On local disk read `OUTPUT/<table>/*.parquet` with DuckDB, pandas or",
        "Spark. A run becomes visible atomically: it completes its own folder `OUTPUT/_runs/<run_id>/` and is then exposed",
        "in one step (a link swap on local disk). Object stores (gs://, s3://) have no atomic rename, so there the tables",
        "stay in that run folder, named by `OUTPUT/_SUCCESS` (`run_folder`, and `files` per table):",
        "`framebeam tables OUTPUT` prints the glob of each table of the current complete run, for BigQuery or DuckDB.",
        "Per-frame tables join on `(shard, line)`: frame ids can collide across shards.",
        "",
        "`history` and `history_runs` survive runs: each run copies them forward from the previous complete run of the same",
        "OUTPUT into its own folder (before `_SUCCESS`, so they publish atomically with it), drops runs beyond",
        "`--keep-history N` (default 30, this run included) and adds its own rows: `history_runs` one row per run (verdict,",
        "finding counts, drift values), `history` one row per run and label (and per run, slice and label with `--slice-by`),",
        "with the label's drift against that run's baseline. `--baseline previous` compares with the latest earlier run's",
        "`history` rows. `label_summary_by_slice` is written only with `--slice-by`.",
        "",
    ]
    for name, schema in TABLES.items():
        out += [f"## `{name}`", "", "| column | type | null | meaning |", "| --- | --- | --- | --- |"]
        for f in schema:
            meaning = (f.metadata or {}).get(b"meaning", b"").decode()
            out.append(f"| `{f.name}` | `{f.type}` | {'yes' if f.nullable else 'no'} | {meaning} |")
        out += ["", "```sql", _EXAMPLES[name], "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(tables_markdown(), end="")
