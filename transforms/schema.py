"""Every output table's pyarrow schema, with each column's meaning: the one place they are defined.

docs/TABLES.md is generated from this module (``python -m transforms.schema > docs/TABLES.md``) and a
test fails when the two drift.
"""
from __future__ import annotations

import pyarrow as pa


def _col(name: str, type_: pa.DataType, meaning: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"meaning": meaning})


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
    _col("severity", pa.string(), "`error` or `warning`.", False),
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
])

CROPS = pa.schema([
    *_PROVENANCE,
    _col("source_id", pa.string(), "Source whose mask this is."),
    _col("mask_id", pa.string(), "The mask entry's id."),
    _col("roi_index", pa.int32(), "ROI that declared the colour; null when it came from --mask-labels."),
    _col("labels", pa.list_(pa.string()), "Class labels of the colour."),
    _col("rgb", _RGB, "Declared colour [r, g, b].", False),
    *[f.with_nullable(False) for f in _BBOX],
    _col("rle_counts", pa.string(), "COCO compressed RLE of the binary crop, shape (y1-y0, x1-x0), Fortran order: pycocotools.mask.decode({'size': [h, w], 'counts': rle_counts}).", False),
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
}

# Tables every command writes; the others come from mask decoding (`run`, `validate` without --no-decode).
CORE_TABLES = ("frames", "sources", "masks", "rois", "issues")
DECODE_TABLES = ("label_stats", "crops", "label_summary")

_EXAMPLES = {
    "frames": "SELECT valid, count(*) FROM 'out/frames/*.parquet' GROUP BY valid;",
    "sources": "SELECT content_type, count(*) FROM 'out/sources/*.parquet' GROUP BY ALL ORDER BY 2 DESC;",
    "masks": "SELECT status, count(*), sum(undeclared_pixels) FROM 'out/masks/*.parquet' GROUP BY status;",
    "rois": "SELECT join_rule, count(*) FROM 'out/rois/*.parquet' GROUP BY join_rule;",
    "issues": "SELECT severity, code, count(*) FROM 'out/issues/*.parquet' GROUP BY ALL ORDER BY 3 DESC;",
    "label_stats": "SELECT labels, sum(pixel_count) AS px FROM 'out/label_stats/*.parquet' GROUP BY labels ORDER BY px DESC;",
    "crops": "SELECT frame_id, labels, bbox_x1 - bbox_x0 AS w, bbox_y1 - bbox_y0 AS h, rle_counts FROM 'out/crops/*.parquet' LIMIT 5;",
    "label_summary": "SELECT labels, masks_present, masks_declared, pixel_fraction_p50 FROM 'out/label_summary/*.parquet' ORDER BY masks_present DESC;",
}


def empty_table(name: str) -> pa.Table:
    return TABLES[name].empty_table()


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
