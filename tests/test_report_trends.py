"""The report's trends section over a long history: 30 runs of a 150-class table (synthesized with the
functions a run uses, into a real run's folder), under 2 MB, the labels that moved most chosen as a
plain recomputation chooses them, escaped, and rendered by headless Chromium."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import beside, run_cli
from tests.synthetic_history import EVIL_LABEL, synthetic_history
from tests.test_history import COLOURS, draw_masks, write_frames
from tests.browser import CHROMIUM, chromium, layout_check
from tests.test_report import elements
from transforms.report import render_report
from transforms.report_trends import MAX_TREND_LABELS
from transforms.writing import write_parquet

RUNS, CLASSES = 30, 150


@pytest.fixture(scope="module")
def long_history(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("trends")
    frames = write_frames(tmp / "frames.jsonl", draw_masks(tmp / "masks", n=6), COLOURS)
    out = beside(tmp)
    assert run_cli("run", "--input", str(frames), "--output", str(out), "--quiet") == 0
    run_folder = (out / "_current").resolve()
    history, runs = synthetic_history(RUNS, CLASSES)
    for name, data in (("history", history), ("history_runs", runs)):
        for old in (run_folder / name).glob("*.parquet"):
            old.unlink()
        write_parquet(data, str(run_folder / name / "part-00000.parquet"))
    page = render_report(str(run_folder), title_output=str(out))
    path = run_folder / "report-long-history.html"
    path.write_text(page, encoding="utf-8")
    return {"page": page, "path": path, "history": history, "runs": runs}


@pytest.mark.slow
def test_report_stays_small(long_history: dict) -> None:
    size = len(long_history["page"].encode("utf-8"))
    assert size < 2 * 1024 * 1024, size
    trends = long_history["page"][long_history["page"].index('id="trends"'):long_history["page"].index('id="findings"')]
    assert len(trends.encode()) < 200 * 1024  # the section itself: summaries, not rows


@pytest.mark.slow
def test_one_verdict_per_run_and_sparklines(long_history: dict) -> None:
    els = elements(long_history["page"])
    cells = [a for tag, a, inside in els if tag == "rect" and a.get("class") == "verdict-cell" and "run-history" in inside]
    assert len(cells) == RUNS
    passed = long_history["runs"].column("passed").to_pylist()
    assert [c["fill"] == "#1e7b34" for c in cells] == passed  # oldest left, green when passed
    ids = {a.get("id") for _, a, _ in els}
    assert {f"trend-label-{i}" for i in range(MAX_TREND_LABELS)} <= ids and f"trend-label-{MAX_TREND_LABELS}" not in ids
    assert {"trend-drift-linf", "trend-drift-js", "trend-drift-psi", "trend-drift-label-js"} <= ids


@pytest.mark.slow
def test_labels_that_moved_most_match_a_plain_recomputation(long_history: dict) -> None:
    runs = sorted(long_history["runs"].to_pylist(), key=lambda r: r["published_at"])
    order = {r["run_id"]: i for i, r in enumerate(runs)}
    series: dict[str, list[float]] = {}
    for row in long_history["history"].to_pylist():
        series.setdefault(row["labels"][0], [0.0] * len(runs))[order[row["run_id"]]] = row["label_share"]
    movement = {k: sum(abs(b - a) for a, b in zip(v, v[1:])) for k, v in series.items()}
    expected = sorted(movement, key=lambda k: (-movement[k], k))[:MAX_TREND_LABELS]
    page = long_history["page"]
    trends = page[page.index("Labels whose share moved most"):]
    shown = [a.get("title") for tag, a, inside in elements(trends) if tag == "div" and a.get("class") == "name"]
    assert shown == expected


@pytest.mark.slow
def test_label_names_are_escaped(long_history: dict) -> None:
    page = long_history["page"]
    assert EVIL_LABEL not in page
    assert not [tag for tag, _, _ in elements(page) if tag == "script"]


@pytest.mark.slow
def test_chromium_renders_the_trends(long_history: dict, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium (Debian) to run this test")
    dom = chromium("--dump-dom", long_history["path"].as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    ids = {a.get("id") for _, a, _ in elements(dom.stdout)}
    assert {"trends", "run-history", "trend-label-0"} <= ids
    assert len([1 for tag, a, _ in elements(dom.stdout) if tag == "polyline"]) >= MAX_TREND_LABELS
    checked = layout_check(long_history["path"], tmp_path)
    mine = [c for c in checked["clipped"] if str(c.get("svg") or "").startswith(("trend", "run-history"))]
    assert mine == [], mine  # no label or tick of the trends section is cut off
