"""Flattening joined frames into table rows (tuples in the column order of ``transforms.schema``)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson
import pyarrow as pa

from transforms.findings import ERROR, Finding
from transforms.joining import JoinedFrame
from transforms.reading import RawRecord
from transforms.schema import TABLES
from transforms.uris import redact_uri, resolve_uri
from transforms.validation import raw_text

Row = tuple


class TableRows(NamedTuple):
    """Rows for one table; what every step hands to WriteTables."""

    table: str
    rows: list[Row]


def to_json_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None


def finding_row(shard: str | None, line: int | None, frame_id: str | None, f: Finding, raw: str | None = None) -> Row:
    return (shard, line, frame_id, f.severity, f.code, f.path, f.message, raw)


def record_problem_row(shard: str, rec: RawRecord, finding: Finding) -> Row:
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


def frame_row(j: JoinedFrame, extra_errors: int = 0, extra_warnings: int = 0) -> Row:
    f = j.frame
    errors, warnings = count_severities(f.findings)
    errors += extra_errors
    warnings += extra_warnings
    return (
        f.id, f.shard, f.line, f.context_id, f.timestamp, len(f.sources), len(f.rois),
        sum(len(s.masks) for s in f.sources), errors == 0, errors, warnings,
        f.dataset_id, f.dataset_version, to_json_text(f.meta),
    )


def with_frame_counts(row: Row, extra_errors: int, extra_warnings: int) -> Row:
    """A frames row with decode-level findings added to its counts (and validity)."""
    errors = row[9] + extra_errors
    return (*row[:8], errors == 0, errors, row[10] + extra_warnings, *row[11:])


def infer_content_type(uri: str | None, declared: str | None) -> str | None:
    """The declared type, else one inferred from the URI suffix (mask entries often omit it)."""
    if declared:
        return declared
    if not uri:
        return None
    name = uri.rsplit("?", 1)[0].lower()
    for suffix, ctype in _SUFFIX_TYPES:
        if name.endswith(suffix):
            return ctype
    return None


_SUFFIX_TYPES = (
    (".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".bmp", "image/bmp"),
    (".tif", "image/tiff"), (".tiff", "image/tiff"), (".webp", "image/webp"),
    (".mp4", "video/mp4"), (".m4v", "video/mp4"), (".mov", "video/quicktime"), (".webm", "video/webm"),
    (".mkv", "video/x-matroska"), (".avi", "video/x-msvideo"),
)


def mask_base_row(j: JoinedFrame, s_index: int, m_index: int) -> Row:
    """The masks-table columns known without decoding (everything up to n_declared_colours)."""
    f = j.frame
    s = f.sources[s_index]
    m = s.masks[m_index]
    resolved = resolve_uri(m.uri, f.shard) if m.uri else None
    return (
        f.id, f.shard, f.line, s.id, m.id,
        redact_uri(m.uri) if m.uri else None, redact_uri(resolved) if resolved else None,
        infer_content_type(m.uri, m.content_type), m.timestamp,
        m.width if m.width is not None else s.width, m.height if m.height is not None else s.height,
        len(j.declarations.get((s_index, m_index), ())),
    )


NOT_DECODED = (None, None, None, "not_decoded", None, None, None)


def frame_tables(j: JoinedFrame, include_masks: bool = True, include_frame: bool = True) -> dict[str, list[Row]]:
    """Rows of frames, sources, masks (undecoded), rois and issues for one joined frame."""
    f = j.frame
    fid, shard, line = f.id, f.shard, f.line
    sources = [
        (fid, shard, line, s.index, s.id, redact_uri(s.uri) if s.uri else None, s.content_type, s.width, s.height,
         s.timestamp, s.preview_uri and redact_uri(s.preview_uri), to_json_text(s.meta))
        for s in f.sources
    ]
    rois = []
    for r, rj in zip(f.rois, j.roi_joins):
        rois.append((
            fid, shard, line, r.index, r.id, r.labels, rj.class_labels, r.source_ids, r.confidence, r.poly,
            r.roi_type, r.mask_id, list(r.mask_rgb) if r.mask_rgb else None, rj.mask_source_id, rj.rule,
            to_json_text(r.meta),
        ))
    out = {
        "sources": sources,
        "rois": rois,
        "issues": [finding_row(shard, line, fid, x) for x in f.findings],
    }
    if include_frame:
        out["frames"] = [frame_row(j)]
    if include_masks:
        out["masks"] = [
            mask_base_row(j, s.index, m.index) + NOT_DECODED for s in f.sources for m in s.masks
        ]
    return out


def rows_to_table(table: str, rows: Sequence[Row]) -> pa.Table:
    schema = TABLES[table]
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows))
    if len(columns) != len(schema):
        raise ValueError(f"{table}: rows have {len(columns)} columns, the schema {len(schema)}")
    return pa.Table.from_arrays([pa.array(col, type=fld.type) for col, fld in zip(columns, schema)], schema=schema)
