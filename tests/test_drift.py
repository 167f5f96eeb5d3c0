"""Drift between two runs: known answers worked out by hand, every metric against a plain-Python computation,
thresholds and findings, and baselines read from outputs of every layout."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms import drift
from transforms.drift import (
    PSI_EPSILON,
    DriftInputError,
    LabelProfile,
    check_thresholds,
    compare_profiles,
    drift_findings,
    js_divergence,
    label_distribution,
    linf_distance,
    parse_threshold,
)
from transforms.findings import CODES
from transforms.flattening import rows_to_table
from transforms.history import read_baseline
from transforms.schema import LABEL_STATS, LABEL_SUMMARY
from transforms.writing import write_parquet

CAR, ROAD, ROAD_RECOLOURED, TREE, PERSON = (0, 0, 142), (128, 64, 128), (128, 64, 64), (107, 142, 35), (220, 20, 60)


def profile(label: str, present: int, masks: int | None = None, colour=CAR, hist=None, **kw) -> LabelProfile:
    return LabelProfile((label,), (colour,), frames=masks or present, masks=masks or present, masks_present=present,
                        total_pixels=present * 100, fraction_hist=hist, **kw)


def profiles(*items: LabelProfile) -> dict:
    return {p.labels: p for p in items}


# Baseline: 100 masks where present: car 50, road 40, tree 10. Current: road 60 (new colour), car 20, person 20.
BASELINE = profiles(profile("car", 50, 60), profile("road", 40, colour=ROAD), profile("tree", 10, colour=TREE))
CURRENT = profiles(profile("road", 60, colour=ROAD_RECOLOURED), profile("car", 20, 60), profile("person", 20, colour=PERSON))


def plain_js(p: dict, q: dict) -> float:
    """JS divergence in bits, written out the textbook way."""
    total = 0.0
    for k in set(p) | set(q):
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        m = (a + b) / 2
        if a:
            total += 0.5 * a * math.log(a / m, 2)
        if b:
            total += 0.5 * b * math.log(b / m, 2)
    return total


def plain_psi(p: dict, q: dict, eps: float = PSI_EPSILON) -> float:
    return sum((max(p.get(k, 0), eps) - max(q.get(k, 0), eps)) * math.log(max(p.get(k, 0), eps) / max(q.get(k, 0), eps))
               for k in set(p) | set(q))


def test_known_answer() -> None:
    result = compare_profiles(CURRENT, BASELINE)
    dist = result["label_distribution"]
    p = {"road": 0.6, "car": 0.2, "person": 0.2}
    q = {"car": 0.5, "road": 0.4, "tree": 0.1}
    assert dist["linf"] == pytest.approx(0.3)
    assert dist["largest_shift_labels"] == ["car"]
    assert dist["js"] == pytest.approx(plain_js(p, q), abs=1e-12)
    assert dist["psi"] == pytest.approx(plain_psi(p, q), abs=1e-12)
    # By hand: PSI = 0.2 ln(1.5) + (-0.3) ln(0.4) + (0.2 - 1e-4) ln(0.2 / 1e-4) + (1e-4 - 0.1) ln(1e-4 / 0.1)
    by_hand = 0.2 * math.log(1.5) - 0.3 * math.log(0.4) + (0.2 - 1e-4) * math.log(2000) + (1e-4 - 0.1) * math.log(1e-3)
    assert dist["psi"] == pytest.approx(by_hand, abs=1e-12)
    assert [x["labels"] for x in result["labels_appeared"]] == [["person"]]
    assert [x["labels"] for x in result["labels_vanished"]] == [["tree"]]
    assert result["colour_changed"] == [{"labels": ["road"], "baseline_colours": [list(ROAD)], "current_colours": [list(ROAD_RECOLOURED)]}]
    shifts = {tuple(r["labels"]): r["share_change"] for r in result["per_label"]}
    assert shifts == pytest.approx({("car",): -0.3, ("road",): 0.2, ("person",): 0.2, ("tree",): -0.1})
    presence = {tuple(r["labels"]): r["presence_rate_change"] for r in result["per_label"]}
    assert presence[("car",)] == pytest.approx(20 / 60 - 50 / 60)
    assert presence[("person",)] is None and presence[("tree",)] is None  # no masks declaring it on one side
    json.dumps(result)  # goes into summary.json as is


def test_label_distribution_is_presence_based() -> None:
    # A class table declared on every mask: 'declared' counts are equal, presence is what differs.
    labels = profiles(profile("sky", 90, 100), profile("boat", 10, 100), profile("never", 0, 100))
    assert label_distribution(labels.values()) == {("sky",): 0.9, ("boat",): 0.1}


def test_per_label_histogram_js_and_shape_changes() -> None:
    base = profiles(profile("car", 10, hist=(5, 5) + (0,) * 18, components_mean=2.0, holes_mean=0.5))
    cur = profiles(profile("car", 10, hist=(0, 5, 5) + (0,) * 17, components_mean=3.5, holes_mean=None))
    result = compare_profiles(cur, base)
    row = result["per_label"][0]
    # p = (0, .5, .5), q = (.5, .5, 0): m = (.25, .5, .25); JS = 0.5 (.5 log2 2) + 0.5 (.5 log2 2) = 0.5
    assert row["fraction_js"] == pytest.approx(0.5)
    assert result["label_js"] == pytest.approx(0.5) and result["label_js_labels"] == ["car"]
    assert row["components_mean_change"] == pytest.approx(1.5)
    assert row["holes_mean_change"] is None
    assert result["shape_columns"] is True
    unknown = compare_profiles(profiles(profile("car", 10)), base)
    assert unknown["per_label"][0]["fraction_js"] is None and unknown["label_js"] is None


def test_shape_histograms_js_and_threshold() -> None:
    """components/holes histograms: JS per label, shape_js the largest, a shape_js breach names the label."""
    base = profiles(profile("car", 4, components_hist=(0, 4) + (0,) * 10, holes_hist=(4,) + (0,) * 11),
                    profile("road", 4, colour=ROAD, components_hist=(0, 2, 2) + (0,) * 9, holes_hist=(2, 2) + (0,) * 10))
    cur = profiles(profile("car", 4, components_hist=(0, 2, 0, 0, 0, 2) + (0,) * 6, holes_hist=(4,) + (0,) * 11),
                   profile("road", 4, colour=ROAD, components_hist=(0, 2, 2) + (0,) * 9, holes_hist=None))
    result = compare_profiles(cur, base)
    car, road = result["per_label"]
    # car components p = (.5 @1, .5 @5), q = (1 @1): m = (.75, .25); JS = .5(.5 log2(.5/.75)) + .5(.5 log2 2 + 1 log2(1/.75))... by hand:
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * (1.0 * math.log2(1 / 0.75))
    assert car["components_js"] == pytest.approx(expected) and car["holes_js"] == 0.0 and car["shape_js"] == pytest.approx(expected)
    assert road["components_js"] == 0.0 and road["holes_js"] is None and road["shape_js"] == 0.0
    assert result["shape_js"] == pytest.approx(expected) and result["shape_js_labels"] == ["car"]
    assert "0, 1, 2, 3, 4, 5-7, 8-15, 16-31, 32-63, 64-127, 128-255, 256+;" in result["shape_bins"]
    result["breaches"] = check_thresholds(result, {"shape_js": 0.1, "label_js": 0.0})
    assert [b["metric"] for b in result["breaches"]] == ["shape_js"]
    (row,) = drift_findings(result, "b1")
    assert row.code == "drift_shape_js_exceeded" and "drift" in row.code and CODES[row.code].severity == "error"
    assert f"{expected:.4f} > --max-drift shape_js=0.1" in row.message and "['car'] (components JS" in row.message
    assert "shape_js" in drift.METRICS and parse_threshold("shape_js=0.3") == ("shape_js", 0.3)
    none = compare_profiles(profiles(profile("car", 4)), base)
    assert none["shape_js"] is None and none["per_label"][0]["components_js"] is None


def test_one_side_without_any_present_label() -> None:
    empty = profiles(profile("car", 0, 10))
    result = compare_profiles(empty, BASELINE)
    assert result["label_distribution"]["js"] == 1.0
    assert result["label_distribution"]["linf"] == pytest.approx(0.5)
    both = compare_profiles(empty, empty)["label_distribution"]
    assert (both["linf"], both["js"], both["psi"]) == (0.0, 0.0, 0.0)


def test_same_labels_no_drift() -> None:
    result = compare_profiles(BASELINE, BASELINE)
    dist = result["label_distribution"]
    assert dist["linf"] == 0.0 and dist["js"] == pytest.approx(0.0, abs=1e-15) and dist["psi"] == 0.0
    result["breaches"] = check_thresholds(result, {"linf": 0.0, "js": 0.0, "psi": 0.0})
    assert result["breaches"] == [] and drift_findings(result) == []


@pytest.mark.parametrize("text, expected", [
    ("0.2", ("linf", 0.2)), ("js=0.05", ("js", 0.05)), ("PSI=2.5", ("psi", 2.5)), ("label_js=1", ("label_js", 1.0)),
])
def test_parse_threshold(text: str, expected: tuple) -> None:
    assert parse_threshold(text) == expected


@pytest.mark.parametrize("text, message", [("kl=0.1", "unknown drift metric"), ("js=2", "between 0 and 1"),
                                           ("1.5", "between 0 and 1"), ("psi=-1", "between 0 and inf"), ("js=x", "not a number")])
def test_parse_threshold_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_threshold(text)


def test_breaches_become_error_findings_naming_value_threshold_and_labels() -> None:
    result = compare_profiles(CURRENT, BASELINE)
    result["breaches"] = check_thresholds(result, {"linf": 0.25, "js": 0.01, "psi": 100.0})
    assert [b["metric"] for b in result["breaches"]] == ["linf", "js"]
    rows = drift_findings(result, "gs://b/out")
    by_code = {row.code: row for row in rows}
    assert set(by_code) == {"drift_label_appeared", "drift_label_vanished", "drift_label_colour_changed",
                            "drift_distribution_exceeded", "drift_js_exceeded"}
    for code, row in by_code.items():
        assert code in CODES and row.severity == CODES[code].severity
        assert row[:3] == (None, None, None)  # dataset-level
    linf = by_code["drift_distribution_exceeded"]
    assert linf.severity == "error" and "drift" in linf.code
    assert "0.3000" in linf.message and "linf=0.25" in linf.message and "['car'] 50.0% -> 20.0%" in linf.message
    js = by_code["drift_js_exceeded"].message
    assert f"{result['label_distribution']['js']:.4f}" in js and "js=0.01" in js and "['person']" in js


def test_slice_breach_has_its_own_code() -> None:
    result = compare_profiles(CURRENT, BASELINE)
    result["breaches"] = check_thresholds(result, {"psi": 0.5})
    rows = drift_findings(result, "b", "source_id=rear")
    assert [r.code for r in rows] == ["drift_slice_exceeded"]  # appeared/vanished are reported for the whole run only
    assert "source_id=rear" in rows[0].message and "psi=0.5" in rows[0].message


shares = st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 1000), max_size=6)


@given(shares, shares)
def test_metrics_against_plain_python(a: dict, b: dict) -> None:
    cur = profiles(*(profile(k, n, max(n, 1)) for k, n in a.items()))
    base = profiles(*(profile(k, n, max(n, 1)) for k, n in b.items()))
    p, q = label_distribution(cur.values()), label_distribution(base.values())
    dist = compare_profiles(cur, base)["label_distribution"]
    assert 0.0 <= dist["js"] <= 1.0 and 0.0 <= dist["linf"] <= 1.0 and dist["psi"] >= 0.0
    if p and q:
        assert dist["js"] == pytest.approx(plain_js(p, q), abs=1e-9)
        assert dist["linf"] == pytest.approx(max(abs(p.get(k, 0) - q.get(k, 0)) for k in set(p) | set(q)), abs=1e-12)
        assert dist["psi"] == pytest.approx(plain_psi(p, q), abs=1e-9)
        back = compare_profiles(base, cur)["label_distribution"]
        assert back["js"] == pytest.approx(dist["js"], abs=1e-12) and back["psi"] == pytest.approx(dist["psi"], abs=1e-12)
    assert compare_profiles(cur, cur)["label_distribution"]["js"] == pytest.approx(0.0, abs=1e-12)


@given(st.lists(st.floats(0, 1), min_size=3, max_size=3), st.lists(st.floats(0, 1), min_size=3, max_size=3))
def test_js_is_bounded(a: list, b: list) -> None:
    if sum(a) == 0 or sum(b) == 0:
        return
    p, q = [x / sum(a) for x in a], [x / sum(b) for x in b]
    assert 0.0 <= js_divergence(p, q) <= 1.0
    assert linf_distance(dict(enumerate(p)), dict(enumerate(q)))[0] <= 1.0


# ---------------------------------------------------------------- baselines from outputs of every layout


def summary_row(labels: list[str], rgb: tuple[int, int, int], declared: int, present: int) -> tuple:
    """A label_summary row by column name (the rest plausible filler), in the schema's current order."""
    values = {"labels": labels, "rgb": list(rgb), "frames_present": present, "masks_present": present, "frames_declared": declared,
              "masks_declared": declared, "total_pixels": present * 100, "pixel_fraction_mean": 0.1}
    return tuple(values.get(f.name, 0 if not f.nullable else None) for f in LABEL_SUMMARY)


def write_output(directory: Path, tables: dict[str, list[tuple]], listed: list[str] | None = None) -> str:
    """An output folder as an older framebeam left it: tables, and summary.json naming them."""
    for name, rows in tables.items():
        write_parquet(rows_to_table(name, rows), str(directory / name / "part-00000.parquet"))
    listed = list(tables) if listed is None else listed
    (directory / "summary.json").write_text(json.dumps({"tables": {name: len(tables.get(name, [])) for name in listed}}))
    return str(directory)


def test_baseline_from_label_summary(tmp_path: Path) -> None:
    out = write_output(tmp_path / "o", {"label_summary": [
        summary_row(["car"], CAR, 10, 3), summary_row(["car"], (0, 0, 70), 5, 1), summary_row([], (1, 2, 3), 9, 9)]})
    base = read_baseline(out, str(tmp_path / "unused"))
    assert base.profile.source == "label_summary"
    car = base.profile.labels[("car",)]
    assert (car.masks, car.masks_present, car.colours) == (15, 4, ((0, 0, 70), CAR))
    assert car.fraction_hist is None  # no histogram: label_js is not computed against it
    assert set(base.profile.labels) == {("car",)}  # the colour without labels is no class


def test_baseline_counts_presence_not_declarations(tmp_path: Path) -> None:
    # A 32-class table declares tree in all 100 masks; it has pixels in 7 of them; train in none.
    out = write_output(tmp_path / "o", {"label_summary": [summary_row(["tree"], TREE, 100, 7), summary_row(["train"], (192, 64, 128), 100, 0)]})
    labels = read_baseline(out, str(tmp_path / "unused")).profile.labels
    assert label_distribution(labels.values()) == {("tree",): 1.0}
    assert labels[("tree",)].presence_rate == pytest.approx(0.07)


def test_an_output_from_before_presence_columns_still_reads(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "old" / "label_summary").mkdir(parents=True)
    pq.write_table(pa.table({"labels": [["car"]], "rgb": [list(CAR)], "frames": [4], "masks": [4]}),
                   tmp_path / "old" / "label_summary" / "part-0.parquet")
    (tmp_path / "old" / "summary.json").write_text(json.dumps({"tables": {"label_summary": 1}}))
    car = read_baseline(str(tmp_path / "old"), str(tmp_path / "unused")).profile.labels[("car",)]
    assert (car.masks, car.masks_present, car.frames) == (4, 4, 4)


def stats_row(shard: str, line: int, labels: list[str], rgb: tuple[int, int, int], pixels: int) -> tuple:
    """A label_stats row of a 10 x 100 mask by column name (the rest plausible filler), in the schema's order."""
    values = {"frame_id": f"{shard}#{line}", "shard": shard, "line": line, "source_id": "front", "mask_id": "00",
              "labels": labels, "rgb": list(rgb), "pixel_count": pixels, "pixel_fraction": pixels / 1000,
              "mask_width": 10, "mask_height": 100}
    return tuple(values.get(f.name, None if f.nullable else 0) for f in LABEL_STATS)


def test_baseline_from_label_stats_of_an_old_output(tmp_path: Path) -> None:
    out = write_output(tmp_path / "old", {"label_stats": [
        stats_row("a.jsonl", 1, ["car"], CAR, 120), stats_row("a.jsonl", 2, ["car"], CAR, 0),
        stats_row("a.jsonl", 3, ["car"], CAR, 1000), stats_row("b.jsonl", 1, ["road"], ROAD, 60)]})
    base = read_baseline(out, str(tmp_path / "unused"))
    assert base.profile.source == "label_stats"
    car = base.profile.labels[("car",)]
    assert (car.masks, car.masks_present, car.frames, car.total_pixels) == (3, 2, 3, 1120)
    assert car.fraction_hist == (0, 0, 1) + (0,) * 16 + (1,)  # 0.12 in bin 2, 1.0 in the last bin


def test_baseline_shapes_from_label_stats(tmp_path: Path) -> None:
    """label_stats with shape columns: the baseline's components/holes histograms over rows with pixels and shapes;
    without the columns (an output from before them): no histograms, so shape_js is not computed against it."""
    import pyarrow.parquet as pq

    rows = [stats_row("a.jsonl", i, ["car"], CAR, 100) for i in range(5)] + [stats_row("a.jsonl", 9, ["car"], CAR, 0)]
    shapes = [(1, 0, 100), (1, 0, 100), (6, 2, 35), (300, 1, 9), (None, None, None), (None, None, None)]  # no pixels: none
    names = [f.name for f in LABEL_STATS]
    rows = [tuple((dict(zip(names, r)) | {"components": c, "holes": k, "largest_component_pixels": big}).values())
            for r, (c, k, big) in zip(rows, shapes)]
    out = write_output(tmp_path / "old", {"label_stats": rows})
    car = read_baseline(out, str(tmp_path / "unused")).profile.labels[("car",)]
    assert car.components_hist == (0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1) and car.holes_hist == (2, 1, 1) + (0,) * 9
    assert car.components_mean == pytest.approx(308 / 4) and car.holes_mean == pytest.approx(3 / 4)
    assert car.largest_share_hist == (1, 0, 0, 1) + (0,) * 5 + (2,)  # shares 1, 1, .35, .09 of 100 pixels
    table = pq.read_table(tmp_path / "old" / "label_stats" / "part-00000.parquet").drop_columns(
        ["components", "holes", "largest_component_pixels"])
    pq.write_table(table, tmp_path / "old" / "label_stats" / "part-00000.parquet")
    older = read_baseline(out, str(tmp_path / "unused")).profile.labels[("car",)]
    assert older.components_hist is None and older.holes_hist is None and older.largest_share_hist is None
    assert older.masks_present == 5
    result = compare_profiles(profiles(profile("car", 4, components_hist=car.components_hist)), {("car",): older})
    assert result["shape_js"] is None and result["per_label"][0]["components_js"] is None


def test_convert_output_cannot_be_compared(tmp_path: Path) -> None:
    converted = write_output(tmp_path / "converted", {"frames": []})
    with pytest.raises(DriftInputError, match="framebeam run"):
        read_baseline(converted, str(tmp_path / "unused"))
    with pytest.raises(DriftInputError, match="does not exist"):
        read_baseline(str(tmp_path / "nothing"), str(tmp_path / "unused"))


def test_stale_label_folder_from_an_earlier_run_is_ignored(tmp_path: Path) -> None:
    # `convert` into a folder where `run` wrote before: label_summary is on disk but not this run's.
    out = write_output(tmp_path / "reused", {"label_summary": [summary_row(["car"], CAR, 5, 5)]}, listed=["frames"])
    with pytest.raises(DriftInputError):
        read_baseline(out, str(tmp_path / "unused"))


def test_previous_without_any_earlier_run_is_no_baseline(tmp_path: Path) -> None:
    assert read_baseline("previous", str(tmp_path / "fresh-output")) is None


def test_previous_of_an_output_written_before_history(tmp_path: Path) -> None:
    """No history tables yet: `previous` is the output's current run, read from its label_summary."""
    out = write_output(tmp_path / "old", {"label_summary": [summary_row(["car"], CAR, 10, 4)]})
    base = read_baseline("previous", out)
    assert base.profile.source == "label_summary" and base.profile.labels[("car",)].masks_present == 4


def test_metric_names_cover_every_metric() -> None:
    assert set(drift.METRICS) == set(drift.METRIC_NAMES) == set(drift.BREACH_CODES) == set(drift.METRIC_LIMITS)
    assert all(code in CODES and "drift" in code for code in drift.BREACH_CODES.values())
