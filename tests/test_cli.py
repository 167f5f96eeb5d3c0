"""End to end: the framebeam CLI on real files, tables read back with DuckDB."""
from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest
import zstandard

from tests.bad_records import BAD_RECORDS, BASE_FRAME
from tests.conftest import beside, query, run_cli, table


def frame(i: int, **extra) -> dict:
    f = json.loads(json.dumps(BASE_FRAME))
    f["id"] = f"frame-{i}"
    f.update(extra)
    return f


def jsonl(frames) -> bytes:
    return b"".join(json.dumps(f).encode() + b"\n" for f in frames)


@pytest.fixture
def mixed_shards(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The same kind of frames in every shard form the issue names; returns the expected record count per shard."""
    d = tmp_path / "in"
    d.mkdir()
    # BOM, CRLF line endings and blank lines in a plain JSON Lines shard.
    (d / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + jsonl([frame(1)]).replace(b"\n", b"\r\n") + b"\r\n  \r\n" + jsonl([frame(2)]))
    (d / "b.ndjson.gz").write_bytes(gzip.compress(jsonl([frame(3), frame(4)])))
    (d / "c.jsonl.bz2").write_bytes(bz2.compress(jsonl([frame(5)])))
    (d / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl([frame(6), frame(7)])))
    (d / "e.json").write_text(json.dumps([frame(8), frame(9), frame(10)]))
    (d / "f.json.gz").write_bytes(gzip.compress(json.dumps(frame(11)).encode()))
    expected = {"a.jsonl": 2, "b.ndjson.gz": 2, "c.jsonl.bz2": 1, "d.jsonl.zst": 2, "e.json": 3, "f.json.gz": 1}
    return d, expected


def test_convert_reads_every_shard_form(mixed_shards, tmp_path):
    d, expected = mixed_shards
    out = beside(tmp_path)
    assert run_cli("convert", "--input", f"{d}/*", "--output", str(out)) == 0
    rows = query(f"SELECT regexp_extract(shard, '[^/]+$'), count(*), min(line), max(line) FROM {table(out, 'frames')} GROUP BY 1 ORDER BY 1")
    assert {name: n for name, n, _, _ in rows} == expected
    lines = dict(query(f"SELECT line, frame_id FROM {table(out, 'frames')} WHERE shard LIKE '%a.jsonl'"))
    assert lines == {1: "frame-1", 4: "frame-2"}  # physical lines: the CRLF blank line counts, is no record
    assert query(f"SELECT line FROM {table(out, 'frames')} WHERE shard LIKE '%e.json' ORDER BY line") == [(1,), (2,), (3,)]
    # every table is there, with the documented columns
    for name in ("frames", "sources", "masks", "rois", "issues"):
        assert query(f"SELECT count(*) FROM {table(out, name)}")[0][0] >= 0
    assert (out / "_SUCCESS").exists() and json.loads((out / "summary.json").read_text())["frames"] == 11
    # rois join by the schema rule; the mask colours are kept as ints
    rules = query(f"SELECT join_rule, count(*) FROM {table(out, 'rois')} GROUP BY 1 ORDER BY 1 NULLS FIRST")
    assert ("schema", 11 * sum(1 for r in BASE_FRAME["rois"] if "mask" in r)) in rules
    assert query(f"SELECT count(*) FROM {table(out, 'issues')} WHERE severity = 'error'") == [(0,)]


def test_every_hostile_record_is_accounted_for(tmp_path):
    """Nothing lost, nothing crashes: each record is in frames (by shard+line) or an error row in issues."""
    shard = tmp_path / "bad.jsonl"
    shard.write_bytes(b"\n".join(b.raw for b in BAD_RECORDS) + b"\n")
    out = beside(tmp_path)
    assert run_cli("validate", "--no-decode", "--input", str(shard), "--output", str(out), "--quiet") == 1
    frames = {line for (line,) in query(f"SELECT line FROM {table(out, 'frames')}")}
    unparsed = {line: raw for line, raw in query(f"SELECT line, raw FROM {table(out, 'issues')} WHERE frame_id IS NULL AND severity = 'error'")}
    for line, bad in enumerate(BAD_RECORDS, start=1):
        if bad.parses_to_frame:
            assert line in frames, bad.name
        else:
            assert line in unparsed and line not in frames, bad.name
            assert unparsed[line], f"{bad.name}: the raw text must be kept"
        codes = {c for (c,) in query(f"SELECT code FROM {table(out, 'issues')} WHERE line = {line}")}
        assert bad.expect_codes <= codes, bad.name


def test_validate_exit_status_and_thresholds(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl([frame(1), frame(2)]))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl([frame(3)]) + b"{not json\n")
    out = beside(tmp_path)
    assert run_cli("validate", "--no-decode", "--input", str(good), "--output", str(out)) == 0
    assert "2 frames (2 valid), 0 errors" in capsys.readouterr().out
    assert run_cli("validate", "--no-decode", "--input", str(bad), "--output", str(out)) == 1
    assert run_cli("validate", "--no-decode", "--input", str(bad), "--output", str(out), "--max-errors", "1") == 0


def test_misuse_exits_2(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl([frame(1)]))
    with pytest.raises(SystemExit) as e:
        run_cli("validate", "--input", str(good), "--output", str(beside(tmp_path, "o")), "--no-such-flag")
    assert e.value.code == 2
    assert run_cli("convert", "--input", str(tmp_path / "missing-*.jsonl"), "--output", str(beside(tmp_path, "o"))) == 2
    assert "no input file matches" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run_cli("convert", "--output", str(beside(tmp_path, "o")))
    assert e.value.code == 2


def test_beam_flags_pass_through(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl([frame(1)]))
    # A Beam flag framebeam does not own is accepted (and used) rather than refused.
    assert run_cli("convert", "--input", str(good), "--output", str(beside(tmp_path, "o")), "--job_name", "nightly-check") == 0


@pytest.mark.slow
def test_parallel_workers_give_the_same_tables(mixed_shards, tmp_path):
    """Multi-process runner: every DoFn pickles, and results do not depend on the worker layout."""
    d, _ = mixed_shards
    one, two = beside(tmp_path, "one"), beside(tmp_path, "two")
    assert run_cli("convert", "--input", f"{d}/*", "--output", str(one)) == 0
    assert run_cli("convert", "--input", f"{d}/*", "--output", str(two), parallel=True) == 0
    for name in ("frames", "rois", "issues"):
        a = query(f"SELECT * EXCLUDE (meta) FROM {table(one, name)} ORDER BY ALL" if name != "issues" else f"SELECT * FROM {table(one, name)} ORDER BY ALL")
        b = query(f"SELECT * EXCLUDE (meta) FROM {table(two, name)} ORDER BY ALL" if name != "issues" else f"SELECT * FROM {table(two, name)} ORDER BY ALL")
        assert a == b, name


def test_tables_command_prints_each_tables_glob(mixed_shards, tmp_path, capsys):
    from pipelines.cli import main

    d, _ = mixed_shards
    out = beside(tmp_path)
    assert run_cli("convert", "--input", f"{d}/*", "--output", str(out), "--quiet") == 0
    capsys.readouterr()
    assert main(["tables", str(out)]) == 0
    globs = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert set(globs) == {"frames", "sources", "masks", "rois", "issues", "history", "history_runs"}
    assert query(f"SELECT count(*) FROM read_parquet('{globs['frames']}')") == [(11,)]
    assert main(["tables", str(tmp_path / "nothing")]) == 2


def test_local_runner_mode_follows_input_size_unless_given():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from pipelines.options import IN_PROCESS_MAX_BYTES, IN_PROCESS_MAX_BYTES_DECODING, LOCAL_RUNNER, beam_options

    def mode(flags, size, decode=False):
        opts = beam_options(flags, size, decode)
        direct = opts.view_as(DirectOptions)
        return opts.view_as(StandardOptions).runner, direct.direct_running_mode, direct.direct_num_workers

    assert mode([], 1000) == (LOCAL_RUNNER, "in_memory", 1)
    assert mode([], IN_PROCESS_MAX_BYTES + 1) == (LOCAL_RUNNER, "multi_processing", 0)
    assert mode([], None) == (LOCAL_RUNNER, "multi_processing", 0)  # size unknown: all cores
    assert mode([], IN_PROCESS_MAX_BYTES_DECODING, decode=True)[1] == "in_memory"
    assert mode([], IN_PROCESS_MAX_BYTES_DECODING + 1, decode=True)[1] == "multi_processing"
    assert mode(["--direct_num_workers=3"], 1000) == (LOCAL_RUNNER, "multi_processing", 3)  # the user's choice wins
    assert mode(["--direct_num_workers=0"], 1000) == (LOCAL_RUNNER, "multi_processing", 0)
    assert mode(["--direct_running_mode", "multi_threading"], 1000)[1] == "multi_threading"
    assert mode(["--runner=DirectRunner"], 1000)[0] == "DirectRunner"


def test_compressed_shards_count_at_their_expanded_size(tmp_path):
    import gzip

    from pipelines.options import JobOptions
    from pipelines.runner import COMPRESSION_RATIO, check_inputs

    (tmp_path / "a.jsonl").write_bytes(jsonl([frame(1)]))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(jsonl([frame(2)])))
    size = check_inputs(JobOptions("convert", (f"{tmp_path}/*",), str(beside(tmp_path, "o"))))
    plain, packed = (tmp_path / "a.jsonl").stat().st_size, (tmp_path / "b.jsonl.gz").stat().st_size
    assert size.stored == plain + packed
    assert size.expanded == plain + COMPRESSION_RATIO * packed


def test_summary_says_how_fast_the_run_went(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl([frame(i) for i in range(3)]))
    assert run_cli("convert", "--input", str(good), "--output", str(beside(tmp_path, "o"))) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("framebeam convert: 3 frames (3 valid)") and first.endswith(" frames/s)"), first
