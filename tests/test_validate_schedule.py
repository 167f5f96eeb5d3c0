"""What a nightly validation job sees: progress, summary.json, thresholds, drift, report, exit status."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import query, run_cli, table


def args(sample: Path, out: Path, *extra: str) -> list[str]:
    return ["--input", f"{sample}/frames-*", "--mask-labels", f"{sample}/mask_labels.json", "--output", str(out), *extra]


@pytest.fixture(scope="module")
def baseline(sample, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "out"
    assert run_cli("validate", *args(sample, out, "--quiet")) == 1  # the sample has deliberate errors
    return out


def test_summary_counts_equal_the_issues_table(baseline):
    summary = json.loads((baseline / "summary.json").read_text())
    by_code = dict(query(f"SELECT code, count(*) FROM {table(baseline, 'issues')} GROUP BY code"))
    assert {code: v["count"] for code, v in summary["findings_by_code"].items()} == by_code
    severities = dict(query(f"SELECT severity, count(*) FROM {table(baseline, 'issues')} GROUP BY severity"))
    assert summary["findings"] == {sev: severities.get(sev, 0) for sev in ("error", "warning", "info")}
    assert summary["frames"] == query(f"SELECT count(*) FROM {table(baseline, 'frames')}")[0][0]
    assert summary["passed"] is False and summary["reasons"]
    assert summary["labels"] and summary["started_at"] and summary["published_at"] and summary["versions"]["apache-beam"]
    assert summary["parameters"]["command"] == "validate"
    assert (baseline / "report.html").exists()


@pytest.mark.slow
def test_thresholds(sample, baseline, tmp_path):
    summary = json.loads((baseline / "summary.json").read_text())
    errors, warnings = summary["findings"]["error"], summary["findings"]["warning"]
    out = tmp_path / "out"
    assert run_cli("validate", *args(sample, out, "--quiet", "--max-errors", str(errors))) == 0
    assert run_cli("validate", *args(sample, out, "--quiet", "--max-errors", str(errors), "--fail-on", "warning")) == 1
    assert run_cli("validate", *args(sample, out, "--quiet", "--max-errors", str(errors + warnings), "--fail-on", "warning")) == 0
    rate = summary["invalid_records"] / summary["records"]
    assert run_cli("validate", *args(sample, out, "--quiet", "--max-errors", "999", "--max-error-rate", f"{rate - 0.01:.4f}")) == 1
    assert run_cli("validate", *args(sample, out, "--quiet", "--max-errors", "999", "--max-error-rate", f"{rate + 0.01:.4f}")) == 0


@pytest.mark.slow
def test_drift_against_a_baseline(sample, baseline, tmp_path):
    """Drop every 'person' ROI and recolour 'car': person vanishes, car changes colour, the distribution shifts."""
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "masks").symlink_to(sample / "masks")
    for shard in sample.glob("frames-0000.jsonl"):
        lines = []
        for line in shard.read_text().splitlines():
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            rois = []
            for roi in frame.get("rois", []):
                if roi.get("label") == ["person"]:
                    continue
                if roi.get("label") == ["car"] and "mask" in roi:
                    # Drift counts presence, so the new colour must be drawn: person's, whose ROIs are dropped.
                    roi["mask"]["value"] = [220, 20, 60]
                rois.append(roi)
            frame["rois"] = rois
            lines.append(json.dumps(frame))
        (changed / shard.name).write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code = run_cli("validate", "--input", f"{changed}/frames-*", "--output", str(out), "--quiet", "--max-errors", "999",
                   "--baseline", str(baseline), "--max-drift", "0.01")
    summary = json.loads((out / "summary.json").read_text())
    drift = summary["drift"]
    assert ["person"] in [x["labels"] for x in drift["labels_vanished"]]
    assert ["car"] in [x["labels"] for x in drift["colour_changed"]]
    assert [b["metric"] for b in drift["breaches"]] == ["linf"]
    assert drift["label_distribution"]["linf"] > 0.01
    codes = {c for (c,) in query(f"SELECT code FROM {table(out, 'issues')} WHERE shard IS NULL")}
    assert {"drift_label_vanished", "drift_label_colour_changed", "drift_distribution_exceeded"} <= codes
    assert code == 1 and summary["passed"] is False  # a drift breach fails even when --max-errors tolerates errors
    assert any("--max-drift" in reason for reason in summary["reasons"])


def test_progress_lines_when_not_a_terminal(sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FRAMEBEAM_PROGRESS_SECONDS", "0.2")
    assert run_cli("run", *args(sample, tmp_path / "out")) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("framebeam: ") and ("records read" in line or "masks decoded" in line)]
    assert lines, err
    # the masks to decode are counted as soon as they are planned, then counted down
    assert any("masks planned" in line or " of 42 masks decoded" in line for line in lines), lines
    assert all("findings" in line for line in lines)


@pytest.mark.slow
def test_quiet_prints_nothing(sample, tmp_path, capsys):
    assert run_cli("run", *args(sample, tmp_path / "out", "--quiet")) == 0
    captured = capsys.readouterr()
    assert "framebeam" not in captured.out


def test_infrastructure_failure_exits_2(sample, tmp_path, capsys):
    out = tmp_path / "file-not-folder"
    out.write_text("a file where the output folder should be")
    assert run_cli("validate", *args(sample, out / "sub", "--quiet")) == 2
    assert "framebeam:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run_cli("validate", *args(sample, tmp_path / "o", "--max-error-rate", "2"))
    assert e.value.code == 2
    assert run_cli("validate", *args(sample, tmp_path / "o", "--baseline", str(tmp_path / "nothing-here"))) == 2
