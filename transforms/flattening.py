"""Flattening joined frames into table rows (the row types of ``transforms.schema``, or Arrow columns for
the two tables with many rows per frame)."""
from __future__ import annotations

import functools
import gc

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa

from transforms.findings import ERROR, Finding
from transforms.content_types import infer_content_type
from transforms.joining import JoinedFrame
from transforms.reading import RawRecord
from transforms.schema import TABLES, FrameRow, IssueRow, MaskRow
from transforms.uris import redact_uri, resolve_uri
from transforms.validation import meta_texts, raw_text

CHUNK_GC_THRESHOLD = 200_000


def chunk_gc(fn):
    """Run a chunk function with the garbage collector's young-generation threshold raised.

    A chunk allocates ~100,000 small acyclic objects (freed by reference counting) that live until
    the chunk is done. At Python's default threshold (700 allocations) the collector scanned each
    chunk's live objects two or three times: 0.9 s of a 7 s in-process convert of 20,000 frames,
    counted with gc.callbacks. Pausing the collector inside the function did not help: it scanned
    everything the moment it was re-enabled. So the first chunk function a process runs raises the
    threshold to 200,000 for the whole process (GC then took 0.12 s of that convert); cyclic garbage
    is still collected, in larger batches. A collector someone disabled stays disabled.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threshold, *older = gc.get_threshold()
        if 0 < threshold < CHUNK_GC_THRESHOLD:
            gc.set_threshold(CHUNK_GC_THRESHOLD, *older)
        return fn(*args, **kwargs)
    return wrapper


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
    """An issues row for a record that could not become a frame (it keeps the raw text)."""
    return finding_row(shard, rec.line, None, finding, raw_text(rec.data) if rec.data else None)


def count_severities(findings: Iterable[Finding]) -> tuple[int, int]:
    errors = warnings = 0
    for f in findings:
        if f.severity == ERROR:
            errors += 1
        else:
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


def frame_tables(j: JoinedFrame, include_masks: bool = True, include_frame: bool = True) -> dict[str, list[tuple]]:
    """Rows of frames, masks (undecoded) and issues for one joined frame (sources and rois: ``chunk_tables``)."""
    f = j.frame
    out = {"issues": [finding_row(f.shard, f.line, f.id, x) for x in f.findings]}
    if include_frame:
        out["frames"] = [frame_row(j)]
    if include_masks:
        out["masks"] = [mask_row(j, si, mi) for si, s in enumerate(f.doc.sources) for mi in range(len(s.masks))]
    return out


def chunk_tables(joined: Sequence[JoinedFrame]) -> dict[str, pa.Table]:
    """The sources and rois tables of a chunk of joined frames, built column by column.

    These two tables hold ~20 rows per frame: building Arrow columns straight from the parsed structs
    (no row tuples, provenance columns by index) costs about two thirds of building rows and then
    columns from them (rois: 88 -> 55-61 us a frame, docs/PERFORMANCE.md).
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
    }


def _positions(counts: list[int]) -> pa.Array:
    """0, 1, ..., n-1 for each count: the index of each row within its frame."""
    n = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(n) - n, n)
    return pa.array((np.arange(int(n.sum()), dtype=np.int64) - starts).astype(np.int32))


def _from_columns(table: str, columns: list) -> pa.Table:
    schema = TABLES[table]
    arrays = [c if isinstance(c, pa.Array) else pa.array(c, type=fld.type) for c, fld in zip(columns, schema)]
    return pa.Table.from_arrays(arrays, schema=schema)


@chunk_gc
def rows_to_table(table: str, rows: Sequence[tuple]) -> pa.Table:
    schema = TABLES[table]
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows))
    if len(columns) != len(schema):
        raise ValueError(f"{table}: rows have {len(columns)} columns, the schema {len(schema)}")
    return pa.Table.from_arrays([pa.array(col, type=fld.type) for col, fld in zip(columns, schema)], schema=schema)

