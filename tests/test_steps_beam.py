"""The Beam steps themselves, with Beam's TestPipeline and assert_that (FnApiRunner, in process)."""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline  # not imported by name: pytest would try to collect the class
from apache_beam.testing.util import assert_that, equal_to

from pipelines.options import LOCAL_RUNNER
from transforms.steps import JoinMasks, JoinOptions, ReadFrames, Validate

OPTIONS = PipelineOptions([f"--runner={LOCAL_RUNNER}", "--direct_running_mode=in_memory", "--direct_num_workers=1"])


def frame(fid: str, **extra) -> dict:
    f = {"id": fid, "sources": [{"id": "cam", "uri": "a.jpg", "masks": [{"id": "00", "uri": "m.png"}]}],
         "rois": [{"label": ["car"], "sources": ["cam"], "mask": {"id": "00", "value": [1, 2, 3]}}]}
    f.update(extra)
    return f


def write(tmp_path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_read_and_validate_account_for_every_record(tmp_path):
    a = write(tmp_path, "a.jsonl", [json.dumps(frame("f1")), "", json.dumps(frame("f2")), "{broken"])
    b = write(tmp_path, "b.jsonl", [json.dumps(frame("f3"))])
    with test_pipeline.TestPipeline(options=OPTIONS) as p:
        validated = p | ReadFrames([str(tmp_path / "*.jsonl")]) | Validate()
        frames = validated | "Frames" >> beam.FlatMap(lambda c: [(f.shard, f.line, f.id) for f in c.frames])
        problems = validated | "Problems" >> beam.FlatMap(lambda c: [(row.shard, row.line, row.code) for row in c.problems])
        assert_that(frames, equal_to([(a, 1, "f1"), (a, 3, "f2"), (b, 1, "f3")]), label="AllFrames")
        assert_that(problems, equal_to([(a, 4, "json_invalid")]), label="AllProblems")


def test_join_masks_emits_rows_and_finds_duplicate_ids_across_shards(tmp_path):
    a = write(tmp_path, "a.jsonl", [json.dumps(frame("same")), json.dumps(frame("other"))])
    b = write(tmp_path, "b.jsonl", [json.dumps(frame("same"))])
    with test_pipeline.TestPipeline(options=OPTIONS) as p:
        joined = p | ReadFrames([a, b]) | Validate() | JoinMasks(JoinOptions())
        rois = joined.rows | "Rois" >> beam.FlatMap(
            lambda t: [(r["frame_id"], r["join_rule"]) for r in t.rows.to_pylist()] if t.table == "rois" else [])
        duplicates = joined.duplicates | "Dups" >> beam.FlatMap(lambda t: [(r.shard, r.line, r.code) for r in t.rows])
        assert_that(rois, equal_to([("same", "schema"), ("other", "schema"), ("same", "schema")]), label="RoisJoined")
        assert_that(duplicates, equal_to([(a, 1, "duplicate_frame_id"), (b, 1, "duplicate_frame_id")]), label="Duplicates")


def test_decoding_requests_are_keyed_by_object(tmp_path):
    a = write(tmp_path, "a.jsonl", [json.dumps(frame(f"f{i}")) for i in range(3)])
    with test_pipeline.TestPipeline(options=OPTIONS) as p:
        joined = p | ReadFrames([a]) | Validate() | JoinMasks(JoinOptions(decode=True))
        keys = joined.mask_requests | "Keys" >> beam.Map(lambda req: req.read_uri)
        assert_that(keys, equal_to([str(tmp_path / "m.png")] * 3))


def test_frame_id_batches_round_trip_any_id():
    from transforms.steps import FrameIdBatch

    entries = [("a", 1), ("", 2), ("ü\x00\n#", 3), ("x" * 1000, 2**40)]
    batch = FrameIdBatch.pack("s3://b/part.jsonl", entries)
    assert list(batch.entries()) == [(i, "s3://b/part.jsonl", line) for i, line in entries]
    assert list(FrameIdBatch.pack("s", []).entries()) == []
