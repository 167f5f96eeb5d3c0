"""Drift against a baseline: outputs with known label counts and colours, and the answers worked out by hand."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms import findings
from transforms.drift import (
    DriftInputError,
    compare_runs,
    drift_findings,
    frequency_distribution,
    linf_distance,
    read_label_counts,
)
from transforms.flattening import rows_to_table
from transforms.writing import write_parquet

CAR, ROAD, ROAD_RECOLOURED, TREE, PERSON = (0, 0, 142), (128, 64, 128), (128, 64, 64), (107, 142, 35), (220, 20, 60)

DRIFT_CODES = {
    "drift_label_appeared": findings.CodeInfo(findings.WARNING, "A label is in this run but not in the baseline."),
    "drift_label_vanished": findings.CodeInfo(findings.WARNING, "A label was in the baseline but is not in this run."),
    "drift_label_colour_changed": findings.CodeInfo(findings.WARNING, "A label's colours differ from the baseline's."),
    "drift_distribution_exceeded": findings.CodeInfo(findings.ERROR, "The label distribution moved more than --max-drift."),
}


@pytest.fixture
def drift_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift codes, until they are registered in transforms/findings.py (registered ones are left alone)."""
    for code, info in DRIFT_CODES.items():
        if code not in findings.CODES:
            monkeypatch.setitem(findings.CODES, code, info)


def summary_row(labels: list[str], rgb: tuple[int, int, int], frames: int, declared: int | None = None) -> tuple:
    """A label_summary row; only labels, rgb and frames_present matter for drift, the rest is plausible filler."""
    declared = frames if declared is None else declared
    return (labels, list(rgb), frames, frames, declared, declared, frames * 100, 0.1, 0.0, 0.2, 0.1, 0.2, 10.0, 10.0)


def write_output(directory: Path, tables: dict[str, list[tuple]], listed: list[str] | None = None) -> str:
    """An output folder as `publish` leaves it: tables, and summary.json naming them."""
    for name, rows in tables.items():
        write_parquet(rows_to_table(name, rows), str(directory / name / "part-00000.parquet"))
    listed = list(tables) if listed is None else listed
    (directory / "summary.json").write_text(json.dumps({"tables": {name: len(tables.get(name, [])) for name in listed}}))
    return str(directory)


@pytest.fixture
def baseline(tmp_path: Path) -> str:
    # 100 label occurrences: car 0.5, road 0.4, tree 0.1
    return write_output(tmp_path / "baseline", {"label_summary": [
        summary_row(["car"], CAR, 50), summary_row(["road"], ROAD, 40), summary_row(["tree"], TREE, 10)]})


@pytest.fixture
def current(tmp_path: Path) -> str:
    # 100 label occurrences: car 0.2 (-0.3), road 0.6 in a new colour (+0.2), person 0.2 (new), tree gone (-0.1)
    return write_output(tmp_path / "current", {"label_summary": [
        summary_row(["road"], ROAD_RECOLOURED, 60), summary_row(["car"], CAR, 20), summary_row(["person"], PERSON, 20)]})


def test_known_answer(current: str, baseline: str) -> None:
    result = compare_runs(current, baseline, max_drift=0.25)
    assert [x["labels"] for x in result["labels_appeared"]] == [["person"]]
    assert result["labels_appeared"][0]["frames"] == 20
    assert [x["labels"] for x in result["labels_vanished"]] == [["tree"]]
    assert result["colour_changed"] == [
        {"labels": ["road"], "baseline_colours": [list(ROAD)], "current_colours": [list(ROAD_RECOLOURED)]}]
    dist = result["distribution"]
    assert dist["distance"] == pytest.approx(0.3)
    assert dist["largest_shift_labels"] == ["car"]
    assert dist["exceeded"] is True
    shifts = {tuple(r["labels"]): r["difference"] for r in dist["per_label"]}
    assert shifts == pytest.approx({("car",): -0.3, ("road",): 0.2, ("person",): 0.2, ("tree",): -0.1})
    assert [r["labels"] for r in dist["per_label"]][0] == ["car"]  # largest shift first
    assert result["label_occurrences"] == {"current": 100, "baseline": 100}
    json.dumps(result)  # goes into summary.json as is


def test_findings_have_the_drift_codes(current: str, baseline: str, drift_codes: None) -> None:
    result = compare_runs(current, baseline, max_drift=0.25)
    rows = drift_findings(result)
    by_code = {row[4]: row for row in rows}
    assert sorted(by_code) == sorted(DRIFT_CODES)
    assert by_code["drift_distribution_exceeded"][3] == "error"
    assert by_code["drift_label_appeared"][3] == "warning"
    for shard, line, frame_id, *_ in rows:  # dataset-level findings: no record to point at
        assert (shard, line, frame_id) == (None, None, None)
    message = by_code["drift_distribution_exceeded"][6]
    assert "0.3000" in message and "['car']" in message and "--max-drift" in message
    assert "person" in by_code["drift_label_appeared"][6]
    assert "tree" in by_code["drift_label_vanished"][6]


def test_distribution_finding_only_above_the_threshold(current: str, baseline: str, drift_codes: None) -> None:
    result = compare_runs(current, baseline, max_drift=0.35)
    assert result["distribution"]["exceeded"] is False
    assert "drift_distribution_exceeded" not in {row[4] for row in drift_findings(result)}
    # The threshold given to drift_findings wins over the one the result was computed with.
    assert "drift_distribution_exceeded" in {row[4] for row in drift_findings(result, 0.29)}
    unbounded = compare_runs(current, baseline)
    assert unbounded["distribution"]["exceeded"] is None
    assert "drift_distribution_exceeded" not in {row[4] for row in drift_findings(unbounded)}


def test_same_labels_no_drift(baseline: str, drift_codes: None) -> None:
    result = compare_runs(baseline, baseline, max_drift=0.0)
    assert result["distribution"]["distance"] == 0.0
    assert not result["labels_appeared"] and not result["labels_vanished"] and not result["colour_changed"]
    assert drift_findings(result) == []


def test_a_label_in_two_colours_counts_both(tmp_path: Path) -> None:
    out = write_output(tmp_path / "o", {"label_summary": [
        summary_row(["car"], CAR, 3), summary_row(["car"], (0, 0, 70), 1), summary_row([], (1, 2, 3), 9)]})
    counts = read_label_counts(out)
    assert counts.frames == {("car",): 4}  # the colour without labels is no class
    assert counts.colours == {("car",): {CAR, (0, 0, 70)}}


def test_drift_counts_presence_not_declarations(tmp_path: Path) -> None:
    # A 32-class table declares tree in all 100 masks; it has pixels in 7 of them; train in none.
    out = write_output(tmp_path / "o", {"label_summary": [
        summary_row(["tree"], TREE, 7, declared=100), summary_row(["train"], (192, 64, 128), 0, declared=100)]})
    assert read_label_counts(out).frames == {("tree",): 7}


def test_an_output_from_before_presence_columns_still_reads(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "old" / "label_summary").mkdir(parents=True)
    pq.write_table(pa.table({"labels": [["car"]], "rgb": [list(CAR)], "frames": [4], "masks": [4]}),
                   tmp_path / "old" / "label_summary" / "part-0.parquet")
    (tmp_path / "old" / "summary.json").write_text(json.dumps({"tables": {"label_summary": 1}}))
    assert read_label_counts(str(tmp_path / "old")).frames == {("car",): 4}


def stats_row(shard: str, line: int, labels: list[str], rgb: tuple[int, int, int]) -> tuple:
    return (f"{shard}#{line}", shard, line, "front", "00", None, labels, list(rgb), 10, 0.1,
            0, 0, 5, 2, 2.0, 1.0, 0, 10, 10)


def test_output_without_label_summary_uses_label_stats(tmp_path: Path) -> None:
    # Two masks of one frame both declare car: one frame, as label_summary would count it.
    out = write_output(tmp_path / "old", {"label_stats": [
        stats_row("a.jsonl", 1, ["car"], CAR), stats_row("a.jsonl", 1, ["car"], CAR),
        stats_row("a.jsonl", 2, ["car"], CAR), stats_row("b.jsonl", 1, ["road"], ROAD)]})
    counts = read_label_counts(out)
    assert counts.source_table == "label_stats"
    assert counts.frames == {("car",): 2, ("road",): 1}


def test_convert_output_cannot_be_compared(tmp_path: Path, baseline: str) -> None:
    converted = write_output(tmp_path / "converted", {"frames": []})
    with pytest.raises(DriftInputError, match="framebeam run"):
        compare_runs(converted, baseline)


def test_stale_label_folder_from_an_earlier_run_is_ignored(tmp_path: Path, baseline: str) -> None:
    # `convert` into a folder where `run` wrote before: label_summary is on disk but not this run's.
    out = write_output(tmp_path / "reused", {"label_summary": [summary_row(["car"], CAR, 5)]}, listed=["frames"])
    with pytest.raises(DriftInputError):
        compare_runs(out, baseline)


def test_max_drift_must_be_a_frequency_difference(current: str, baseline: str) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        compare_runs(current, baseline, max_drift=5)


label_counts = st.dictionaries(st.sampled_from([("a",), ("b",), ("c",), ("d",)]), st.integers(0, 1000), max_size=4)


@given(label_counts, label_counts)
def test_linf_distance_is_a_bounded_symmetric_distance(a: dict, b: dict) -> None:
    pa, pb = frequency_distribution(a), frequency_distribution(b)
    d, _ = linf_distance(pa, pb)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(linf_distance(pb, pa)[0])
    assert linf_distance(pa, pa)[0] == 0.0
    assert d == pytest.approx(max((abs(pa.get(k, 0) - pb.get(k, 0)) for k in set(pa) | set(pb)), default=0.0))
