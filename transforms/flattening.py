"""Flattening joined frames into table rows (tuples in the column order of ``transforms.schema``, or Arrow
columns for the two tables with many rows per frame)."""
from __future__ import annotations

import functools
import gc

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa

from transforms.findings import ERROR, WARNING, Finding
from transforms.content_types import infer_content_type
from transforms.joining import JoinedFrame
from transforms.reading import RawRecord
from transforms.schema import TABLES
from transforms.uris import redact_uri, resolve_uri
from transforms.validation import meta_texts, raw_text

Row = tuple


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
    """Rows for one table; what every step hands to WriteTables: tuples in schema order, or (sources
    and rois, built per chunk by ``chunk_tables``) an Arrow table."""

    table: str
    rows: list[Row] | pa.Table


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


def finding_row(shard: str | None, line: int | None, frame_id: str | None, f: Finding, raw: str | None = None) -> Row:
    return (shard, line, frame_id, f.severity, f.code, f.path, f.message, raw)


def record_problem_row(shard: str, rec: RawRecord, finding: Finding) -> Row:
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


def frame_row(j: JoinedFrame) -> Row:
    f = j.frame
    doc = f.doc
    errors, warnings = count_severities(f.findings)
    dataset = doc.dataset
    return (
        f.id, f.shard, f.line, doc.context_id, doc.timestamp, len(doc.sources), len(doc.rois),
        sum(len(s.masks) for s in doc.sources), errors == 0, errors, warnings,
        dataset.id if dataset else None, dataset.version if dataset else None, meta_texts([doc.meta])[0], f.extra,
    )


def with_frame_counts(row: Row, extra_errors: int, extra_warnings: int) -> Row:
    # columns 8..10 are valid, n_errors, n_warnings (see schema.FRAMES)
    """A frames row with decode-level findings added to its counts (and validity)."""
    errors = row[9] + extra_errors
    return (*row[:8], errors == 0, errors, row[10] + extra_warnings, *row[11:])


def declared_size(source, mask) -> tuple[int | None, int | None]:
    """A mask's declared (width, height): its own, else its source's."""
    return (mask.width if mask.width is not None else source.width,
            mask.height if mask.height is not None else source.height)


def mask_base_row(j: JoinedFrame, s_index: int, m_index: int) -> Row:
    """The masks-table columns known without decoding (everything up to n_declared_colours)."""
    f = j.frame
    s = f.doc.sources[s_index]
    m = s.masks[m_index]
    resolved = resolve_uri(m.uri, f.shard) if m.uri else None
    return (
        f.id, f.shard, f.line, s.id, m.id,
        redact_uri(m.uri) if m.uri else None, redact_uri(resolved) if resolved else None,
        infer_content_type(m.uri, m.content_type), m.timestamp,
        *declared_size(s, m),
        len(j.declarations.get((s_index, m_index), ())),
    )


def undecoded(status: str) -> tuple:
    """The masks-table decode columns of a mask that was not decoded: only its status."""
    return (None, None, None, status, None, None, None)


NOT_DECODED = undecoded("not_decoded")


def frame_tables(j: JoinedFrame, include_masks: bool = True, include_frame: bool = True) -> dict[str, list[Row]]:
    """Rows of frames, masks (undecoded) and issues for one joined frame (sources and rois: ``chunk_tables``)."""
    f = j.frame
    out = {"issues": [finding_row(f.shard, f.line, f.id, x) for x in f.findings]}
    if include_frame:
        out["frames"] = [frame_row(j)]
    if include_masks:
        out["masks"] = [
            mask_base_row(j, si, mi) + NOT_DECODED for si, s in enumerate(f.doc.sources) for mi in range(len(s.masks))
        ]
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
def rows_to_table(table: str, rows: Sequence[Row]) -> pa.Table:
    schema = TABLES[table]
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows))
    if len(columns) != len(schema):
        raise ValueError(f"{table}: rows have {len(columns)} columns, the schema {len(schema)}")
    return pa.Table.from_arrays([pa.array(col, type=fld.type) for col, fld in zip(columns, schema)], schema=schema)

