"""Flattening joined frames into tables, and buffering them for Parquet, without Beam."""
from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.flattening import TableRows, chunk_tables, frame_issue_rows, frame_row, mask_row, rows_to_table
from transforms.findings import Finding
from transforms.joining import join_frame
from transforms.reading import RawRecord, RecordChunk
from transforms.schema import TABLES
from transforms.steps import validate_chunk
from transforms.writing import TableBuffer, dictionary_columns

FRAMES = [
    {"id": "a", "sources": [{"id": "cam", "uri": "s3://b/a.jpg", "width": 4, "height": 3, "meta": {"k": 1},
                             "masks": [{"id": "00", "uri": "m.png"}]}],
     "rois": [{"label": ["car"], "sources": ["cam"], "poly": [0, 0, 1, 1], "mask": {"id": "00", "value": [1, 2, 3]},
               "meta": {"_type": "mask"}},
              {"label": ["sky"], "confidence": 0.5, "meta": None},
              {"id": "r2", "label": ["x"], "meta": {"_type": 7}}]},
    {"id": "b", "sources": [{"id": "c0", "uri": "https://u:p@h/x.jpg"}, {"id": "c1", "uri": "x.jpg", "preview": {"uri": "p.jpg"}}]},
    {"sources": [{"id": "c", "uri": "y.jpg"}], "rois": [{"label": ["only"], "sources": ["c"]}]},
]


def joined_frames():
    records = [RawRecord(i + 1, json.dumps(f, separators=(",", ":")).encode()) for i, f in enumerate(FRAMES)]
    chunk = validate_chunk(RecordChunk("mem://s.jsonl", records))
    assert not chunk.problems
    return [join_frame(f) for f in chunk.frames]


def test_chunk_tables_hold_one_row_per_source_and_roi_with_provenance():
    tables = chunk_tables(joined_frames())
    rois = tables["rois"]
    assert rois.schema == TABLES["rois"]
    assert rois.column("frame_id").to_pylist() == ["a", "a", "a", "mem://s.jsonl#3"]
    assert rois.column("line").to_pylist() == [1, 1, 1, 3]
    assert rois.column("roi_index").to_pylist() == [0, 1, 2, 0]
    assert rois.column("roi_type").to_pylist() == ["mask", None, None, None]  # _type 7 is not a string
    assert rois.column("meta").to_pylist() == ['{"_type":"mask"}', None, '{"_type":7}', None]
    assert rois.column("mask_rgb").to_pylist() == [[1, 2, 3], None, None, None]
    assert rois.column("join_rule").to_pylist() == ["schema", None, None, None]
    assert rois.column("poly").to_pylist() == [[0.0, 0.0, 1.0, 1.0], None, None, None]
    sources = tables["sources"]
    assert sources.schema == TABLES["sources"]
    assert sources.column("frame_id").to_pylist() == ["a", "b", "b", "mem://s.jsonl#3"]
    assert sources.column("source_index").to_pylist() == [0, 0, 1, 0]
    assert sources.column("uri").to_pylist()[1] == "https://***@h/x.jpg"  # credentials never reach a table
    assert sources.column("preview_uri").to_pylist() == [None, None, "p.jpg", None]
    assert sources.column("meta").to_pylist() == ['{"k":1}', None, None, None]


def test_frames_and_masks_columns_equal_the_named_rows():
    """chunk_tables builds frames and masks column by column; frame_row and mask_row build the same rows by name
    (for frames whose masks are decoded): the two must agree, column for column."""
    joined = joined_frames()
    joined[1].frame.findings.append(Finding("too_many_masks", "/sources", "x"))  # an error: valid False, n_errors 1
    tables = chunk_tables(joined)
    assert tables["frames"].equals(rows_to_table("frames", [frame_row(j) for j in joined]))
    assert tables["frames"].column("valid").to_pylist() == [True, False, True]
    mask_rows = [mask_row(j, si, mi) for j in joined for si, s in enumerate(j.frame.doc.sources) for mi in range(len(s.masks))]
    assert len(mask_rows) == 1 and mask_rows[0].n_declared_colours == 1
    assert tables["masks"].equals(rows_to_table("masks", mask_rows))
    only_last = chunk_tables(joined, settled=joined[2:])
    assert only_last["frames"].column("frame_id").to_pylist() == ["mem://s.jsonl#3"] and only_last["masks"].num_rows == 0


def test_chunk_tables_of_frames_without_rois_are_empty_tables():
    tables = chunk_tables(joined_frames()[1:2])
    assert tables["rois"].num_rows == 0 and tables["rois"].schema == TABLES["rois"]
    assert tables["sources"].num_rows == 2


def test_buffer_mixes_row_tuples_and_arrow_tables_in_arrival_order_per_kind():
    joined = joined_frames()
    buffer = TableBuffer(max_rows=10)
    assert buffer.add(TableRows("rois", chunk_tables(joined)["rois"])) is None
    issue_rows = [row for j in joined for row in frame_issue_rows(j)]
    frames_rows = [frame_row(j) for j in joined]
    buffer.add(TableRows("issues", issue_rows))
    full = buffer.add(TableRows("frames", frames_rows))
    assert full is None or full in buffer.tables()
    assert buffer.take("rois").num_rows == 4
    frames = buffer.take("frames")
    assert frames.equals(rows_to_table("frames", frames_rows))
    assert buffer.total == len(issue_rows)


def test_floats_are_not_dictionary_encoded_in_parquet():
    paths = dictionary_columns(TABLES["rois"])
    assert "labels.list.element" in paths and "frame_id" in paths
    assert "poly.list.element" not in paths and "confidence" not in paths
    table = chunk_tables(joined_frames())["rois"]
    buf = io.BytesIO()
    pq.write_table(table, buf, use_dictionary=paths)
    meta = pq.ParquetFile(pa.BufferReader(buf.getvalue())).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" in encodings["labels.list.element"]
    assert "RLE_DICTIONARY" not in encodings["poly.list.element"]


def test_class_labels_follow_the_join_when_the_seed_rule_swaps_them():
    seed = {"id": "s", "sources": [{"id": "c", "uri": "x.jpg", "masks": [{"id": "00", "uri": "m.png"}]}],
            "rois": [{"label": ["00"], "mask": {"id": "car", "value": [1, 1, 1]}}, {"label": ["sky"]}]}
    chunk = validate_chunk(RecordChunk("mem://s.jsonl", [RawRecord(1, json.dumps(seed).encode())]))
    rois = chunk_tables([join_frame(f) for f in chunk.frames])["rois"]
    assert rois.column("labels").to_pylist() == [["00"], ["sky"]]
    assert rois.column("class_labels").to_pylist() == [["car"], ["sky"]]
    assert rois.column("join_rule").to_pylist() == ["seed_example", None]
    assert chunk_tables(joined_frames())["rois"].column("class_labels").to_pylist() == [["car"], ["sky"], ["x"], ["only"]]


def test_taking_a_table_the_buffer_never_saw_gives_an_empty_table():
    assert TableBuffer(10).take("frames").equals(TABLES["frames"].empty_table())


def test_roi_type_reads_an_escaped_key():
    from transforms.flattening import roi_type

    assert roi_type('{"_typ\\u0065":"mask"}') == "mask"
    assert roi_type('{"_type":"b2d"}') == "b2d"
    assert roi_type('{"kind":"x\\n"}') is None
    assert roi_type(None) is None


def test_summary_counts_read_named_rows_and_arrow_tables_alike():
    from transforms.writing import finding_counts

    joined = joined_frames()
    joined[1].frame.findings.append(Finding("too_many_masks", "/sources", "x"))
    tables = chunk_tables(joined)
    rows = {"frames": [frame_row(j) for j in joined],
            "masks": [mask_row(j, 0, 0, status="ok") for j in joined[:1]] + [mask_row(j, 0, 0) for j in joined[:1]]}
    as_rows = finding_counts([TableRows("frames", rows["frames"]), TableRows("masks", rows["masks"])])
    as_tables = finding_counts([TableRows("frames", tables["frames"]),
                                TableRows("masks", rows_to_table("masks", rows["masks"]))])
    assert as_rows == as_tables
    assert as_rows[("frames", "total")] == 3 and as_rows[("frames", "valid")] == 2
    assert as_rows[("masks", "total")] == 2 and as_rows[("masks", "decoded")] == 1
