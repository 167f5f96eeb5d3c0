"""Flattening joined frames into table rows (the row types of ``transforms.schema``, or Arrow columns for
the two tables with many rows per frame)."""
from __future__ import annotations

import functools

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa

from transforms.findings import ERROR, WARNING, Finding
from transforms.content_types import infer_content_type
from transforms.joining import JoinedFrame
from transforms.reading import RawRecord
from transforms.schema import TABLES, FrameRow, IssueRow, MaskRow
from transforms.uris import redact_uri, resolve_uri
from transforms.validation import meta_texts, raw_text

class TableRows(NamedTuple):
    """Rows for one table; what every step hands to WriteTables: the table's row type (``schema.ROW_TYPES``),
    or (sources and rois, built per chunk by ``chunk_tables``) an Arrow table."""

    table: str
    rows: list[tuple] | pa.Table


def roi_type(meta: str | None) -> str | None:
    """meta._type, as the SDK writes it (mask, b2d, p2d, ...)."""
    if not meta or ('"_type"' not in meta and "\\" not in meta):  # a key may be written escaped
        return None
    # ROI metas repeat a handful of short texts ('{"_type":"b2d"}'): parse each distinct one once.
    return _cached_roi_type(meta) if len(meta) <= 256 else _parse_roi_type(meta)


def _parse_roi_type(meta: str) -> str | None:
    value = orjson.loads(meta).get("_type")
    return value if type(value) is str else None


_cached_roi_type = functools.lru_cache(maxsize=4096)(_parse_roi_type)


def finding_row(shard: str | None, line: int | None, frame_id: str | None, f: Finding, raw: str | None = None) -> IssueRow:
    return IssueRow(shard=shard, line=line, frame_id=frame_id, severity=f.severity, code=f.code, path=f.path,
                    message=f.message, raw=raw)


def record_problem_row(shard: str, rec: RawRecord, finding: Finding) -> IssueRow:
    """An issues row for a record that could not become a frame (it keeps the raw text). An element of
    a .json array also says where it starts: its index is the row's line, its byte offset is told here."""
    if rec.offset is not None and "byte offset" not in finding.message:
        finding = Finding(finding.code, finding.path, f"{finding.message} (array element {rec.line}, byte offset {rec.offset:,})")
    return finding_row(shard, rec.line, None, finding, raw_text(rec.data) if rec.data else None)


def count_severities(findings: Iterable[Finding]) -> tuple[int, int]:
    """(errors, warnings); info findings are neither."""
    errors = warnings = 0
    for f in findings:
        if f.severity == ERROR:
            errors += 1
        elif f.severity == WARNING:
            warnings += 1
    return errors, warnings


def frame_row(j: JoinedFrame) -> FrameRow:
    f = j.frame
    doc = f.doc
    errors, warnings = count_severities(f.findings)
    dataset = doc.dataset
    return FrameRow(
        frame_id=f.id, shard=f.shard, line=f.line, context_id=doc.context_id, timestamp=doc.timestamp,
        n_sources=len(doc.sources), n_rois=len(doc.rois), n_masks=sum(len(s.masks) for s in doc.sources),
        valid=errors == 0, n_errors=errors, n_warnings=warnings,
        dataset_id=dataset.id if dataset else None, dataset_version=dataset.version if dataset else None,
        meta=meta_texts([doc.meta])[0], extra=f.extra,
    )


def with_frame_counts(row: FrameRow, extra_errors: int, extra_warnings: int) -> FrameRow:
    """A frames row with decode-level findings added to its counts (and validity)."""
    errors = row.n_errors + extra_errors
    return row._replace(valid=errors == 0, n_errors=errors, n_warnings=row.n_warnings + extra_warnings)


def declared_size(source, mask) -> tuple[int | None, int | None]:
    """A mask's declared (width, height): its own, else its source's."""
    return (mask.width if mask.width is not None else source.width,
            mask.height if mask.height is not None else source.height)


def mask_row(j: JoinedFrame, s_index: int, m_index: int, status: str = "not_decoded") -> MaskRow:
    """The masks row of a mask entry before decoding: the decode columns are empty, ``status`` says why."""
    f = j.frame
    s = f.doc.sources[s_index]
    m = s.masks[m_index]
    resolved = resolve_uri(m.uri, f.shard) if m.uri else None
    width, height = declared_size(s, m)
    return MaskRow(
        frame_id=f.id, shard=f.shard, line=f.line, source_id=s.id, mask_id=m.id,
        uri=redact_uri(m.uri) if m.uri else None, resolved_uri=redact_uri(resolved) if resolved else None,
        content_type=infer_content_type(m.uri, m.content_type), timestamp=m.timestamp,
        declared_width=width, declared_height=height,
        n_declared_colours=len(j.declarations.get((s_index, m_index), ())),
        width=None, height=None, mode=None, status=status, undeclared_pixels=None, n_undeclared_colours=None,
        top_undeclared=None,
    )


def frame_issue_rows(j: JoinedFrame) -> list[IssueRow]:
    """The issues rows of one joined frame's findings."""
    f = j.frame
    return [finding_row(f.shard, f.line, f.id, x) for x in f.findings]


def chunk_tables(joined: Sequence[JoinedFrame], settled: Sequence[JoinedFrame] | None = None) -> dict[str, pa.Table]:
    """The sources and rois tables of a chunk of joined frames, and the frames and (undecoded) masks
    tables of its ``settled`` frames (default: all; a frame whose masks are decoded gets those rows
    after decoding, from ``frame_row`` and ``mask_row``), built column by column.

    These tables hold ~20 rows per frame: building Arrow columns straight from the parsed structs
    (no row tuples, provenance columns by index) costs about two thirds of building rows and then
    columns from them (rois: 88 -> 55-61 us a frame, docs/PERFORMANCE.md). The columns are those of
    ``frame_row`` and ``mask_row`` (tests/test_flattening.py compares them).
    """
    frames = [j.frame for j in joined]
    ids = pa.array([f.id for f in frames], pa.string())
    shards = pa.array([f.shard for f in frames], pa.string())
    lines = pa.array([f.line for f in frames], pa.int64())

    def provenance(counts: list[int]) -> list[pa.Array]:
        parent = pa.array(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
        return [ids.take(parent), shards.take(parent), lines.take(parent), _positions(counts)]

    sources = [s for f in frames for s in f.doc.sources]
    rois = [r for f in frames for r in f.doc.rois]
    joins = [x for j in joined for x in j.roi_joins]
    masks = [r.mask for r in rois]
    roi_metas = [text for f in frames for text in f.roi_metas]
    labels = [r.label if r.label is not None else r.labels for r in rois]
    labels_array = pa.array(labels, TABLES["rois"].field("labels").type)
    # The join keeps an ROI's own label list as its class unless the seed rule swapped them: reuse the column.
    same_classes = all(x.class_labels is own for x, own in zip(joins, labels))
    return {
        "sources": _from_columns("sources", [
            *provenance([len(f.doc.sources) for f in frames]),
            [s.id for s in sources],
            [redact_uri(s.uri) if s.uri else None for s in sources],
            [s.content_type for s in sources],
            [s.width for s in sources],
            [s.height for s in sources],
            [s.timestamp for s in sources],
            [redact_uri(s.preview.uri) if s.preview and s.preview.uri else None for s in sources],
            meta_texts([s.meta for s in sources]),
        ]),
        "rois": _from_columns("rois", [
            *provenance([len(f.doc.rois) for f in frames]),
            [r.id for r in rois],
            labels_array,
            labels_array if same_classes else [x.class_labels for x in joins],
            [r.sources for r in rois],
            [r.confidence for r in rois],
            [r.poly for r in rois],
            [roi_type(m) for m in roi_metas],
            [m.id if m else None for m in masks],
            [m.value if m else None for m in masks],
            [x.mask_source_id for x in joins],
            [x.rule for x in joins],
            roi_metas,
        ]),
        **_frame_and_mask_tables(joined if settled is None else settled),
    }


def _frame_and_mask_tables(joined: Sequence[JoinedFrame]) -> dict[str, pa.Table]:
    frames = [j.frame for j in joined]
    docs = [f.doc for f in frames]
    counts = [count_severities(f.findings) for f in frames]
    datasets = [d.dataset for d in docs]
    mask_columns: dict[str, list] = {name: [] for name in (
        "frame_id", "shard", "line", "source_id", "mask_id", "uri", "resolved_uri", "content_type", "timestamp",
        "declared_width", "declared_height", "n_declared_colours")}
    add = {name: values.append for name, values in mask_columns.items()}
    for j, f in zip(joined, frames):
        for si, s in enumerate(f.doc.sources):
            for mi, m in enumerate(s.masks):
                width, height = declared_size(s, m)
                resolved = resolve_uri(m.uri, f.shard) if m.uri else None
                add["frame_id"](f.id)
                add["shard"](f.shard)
                add["line"](f.line)
                add["source_id"](s.id)
                add["mask_id"](m.id)
                add["uri"](redact_uri(m.uri) if m.uri else None)
                add["resolved_uri"](redact_uri(resolved) if resolved else None)
                add["content_type"](infer_content_type(m.uri, m.content_type))
                add["timestamp"](m.timestamp)
                add["declared_width"](width)
                add["declared_height"](height)
                add["n_declared_colours"](len(j.declarations.get((si, mi), ())))
    n_masks = len(mask_columns["frame_id"])
    return {
        "frames": _from_named("frames", len(frames), {
            "frame_id": [f.id for f in frames],
            "shard": [f.shard for f in frames],
            "line": [f.line for f in frames],
            "context_id": [d.context_id for d in docs],
            "timestamp": [d.timestamp for d in docs],
            "n_sources": [len(d.sources) for d in docs],
            "n_rois": [len(d.rois) for d in docs],
            "n_masks": [sum(len(s.masks) for s in d.sources) for d in docs],
            "valid": [errors == 0 for errors, _ in counts],
            "n_errors": [errors for errors, _ in counts],
            "n_warnings": [warnings for _, warnings in counts],
            "dataset_id": [x.id if x else None for x in datasets],
            "dataset_version": [x.version if x else None for x in datasets],
            "meta": meta_texts([d.meta for d in docs]),
            "extra": [f.extra for f in frames],
        }),
        # The decode columns stay null: these masks are not decoded (yet).
        "masks": _from_named("masks", n_masks, {**mask_columns, "status": pa.array(["not_decoded"] * n_masks, pa.string())}),
    }


def _positions(counts: list[int]) -> pa.Array:
    """0, 1, ..., n-1 for each count: the index of each row within its frame."""
    n = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(n) - n, n)
    return pa.array((np.arange(int(n.sum()), dtype=np.int64) - starts).astype(np.int32))


def _from_named(table: str, n_rows: int, columns: dict[str, list | pa.Array]) -> pa.Table:
    """A table from columns by name; the schema's other columns are null."""
    schema = TABLES[table]
    unknown = columns.keys() - set(schema.names)
    if unknown:
        raise ValueError(f"{table} has no column {sorted(unknown)}")
    return _from_columns(table, [columns.get(f.name, pa.nulls(n_rows, f.type)) for f in schema])


def _from_columns(table: str, columns: list) -> pa.Table:
    schema = TABLES[table]
    arrays = [c if isinstance(c, pa.Array) else pa.array(c, type=fld.type) for c, fld in zip(columns, schema)]
    return pa.Table.from_arrays(arrays, schema=schema)


def rows_to_table(table: str, rows: Sequence[tuple]) -> pa.Table:
    schema = TABLES[table]
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows))
    if len(columns) != len(schema):
        raise ValueError(f"{table}: rows have {len(columns)} columns, the schema {len(schema)}")
    return pa.Table.from_arrays([pa.array(col, type=fld.type) for col, fld in zip(columns, schema)], schema=schema)

