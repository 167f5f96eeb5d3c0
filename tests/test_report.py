"""report.html from a real run: sections, charts, escaping, self-containment, and a render in headless Chromium."""
from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.browser import CHROMIUM, chromium
from tests.conftest import run_cli
from transforms import report_data
from transforms.flattening import rows_to_table
from transforms.markup import Markup, h, join
from transforms.report import render_report, write_report
from transforms.report_data import OutputFolder, pick_row_groups, row_groups, worst_frames
from transforms.schema import FrameRow

MASK_W, MASK_H = 400, 300  # wider than the 320 px preview: the report must downscale it
CAR, ROAD, EVIL = (0, 0, 142), (128, 64, 128), (255, 0, 0)
EVIL_LABEL = "<script>alert(1)</script>"
EVIL_FRAME_ID = '<img src=x onerror="alert(2)">'
# label -> frames declaring it; the chart must show one bar per label, longest first.
LABEL_FRAMES = {"car": 6, "road": 4, EVIL_LABEL: 2}
SECTIONS = ("headline", "findings", "labels", "bbox-sizes", "shapes", "worst-frames", "mask-preview", "run")


def draw_mask(index: int) -> np.ndarray:
    mask = np.zeros((MASK_H, MASK_W, 3), dtype=np.uint8)
    mask[:] = CAR
    if index < LABEL_FRAMES["road"]:
        mask[150:] = ROAD
    if index < LABEL_FRAMES[EVIL_LABEL]:
        mask[10:40 + 10 * index, 20:60] = EVIL
    return mask


def frame(index: int, frame_id: str, mask_uri: str, colours: dict[str, tuple[int, int, int]]) -> dict:
    return {
        "id": frame_id,
        "sources": [{"id": "front", "uri": f"images/{index}.jpg", "width": MASK_W, "height": MASK_H, "timestamp": 0,
                     "masks": [{"id": "00", "uri": mask_uri, "content_type": "image/png"}]}],
        "rois": [{"label": [label], "sources": ["front"], "meta": {"_type": "mask"}, "mask": {"id": "00", "value": list(rgb)}}
                 for label, rgb in colours.items()],
    }


def write_input(directory: Path) -> Path:
    (directory / "masks").mkdir(parents=True)
    lines = []
    for i in range(LABEL_FRAMES["car"]):
        Image.fromarray(draw_mask(i), "RGB").save(directory / "masks" / f"m{i}.png")
        colours = {"car": CAR}
        if i < LABEL_FRAMES["road"]:
            colours["road"] = ROAD
        if i < LABEL_FRAMES[EVIL_LABEL]:
            colours[EVIL_LABEL] = EVIL
        lines.append(json.dumps(frame(i, f"frame-{i}", f"masks/m{i}.png", colours)))
    # Line 7: a frame whose id is markup and whose mask is missing (an error: the worst frame).
    lines.append(json.dumps(frame(6, EVIL_FRAME_ID, "masks/missing.png", {"car": CAR})))
    lines.append('{"id": "broken", "sources": [')  # line 8: json_invalid
    shard = directory / "frames.jsonl"
    shard.write_text("\n".join(lines) + "\n")
    return shard


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real `run` output and one `convert` output (no decode tables) of the same input."""
    base = tmp_path_factory.mktemp("report")
    shard = write_input(base / "input")
    out = {"run": base / "run-out", "convert": base / "convert-out"}
    assert run_cli("run", "--input", str(shard), "--output", str(out["run"]), "--quiet") == 0
    assert run_cli("convert", "--input", str(shard), "--output", str(out["convert"]), "--quiet") == 0
    return out


@pytest.fixture(scope="module")
def page(outputs: dict[str, Path]) -> str:
    return render_report(str(outputs["run"]))


class ElementCollector(HTMLParser):
    """Start tags with their attributes, and the ids of the elements each one sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes, tuple(i for _, i in self._open if i)))
        if tag not in ("img", "meta", "br", "hr", "input", "link"):  # HTML void elements never close
            self._open.append((tag, attributes.get("id")))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(i for _, i in self._open if i)))  # <rect/>: nothing to close

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break


def elements(html_text: str) -> list[tuple[str, dict[str, str | None], tuple[str, ...]]]:
    parser = ElementCollector()
    parser.feed(html_text)
    return parser.elements


def bars_in(html_text: str, chart_id: str) -> list[dict[str, str | None]]:
    return [a for tag, a, inside in elements(html_text) if tag == "rect" and "bar" in (a.get("class") or "").split()
            and chart_id in inside]


def test_every_section_is_there(page: str) -> None:
    ids = {a.get("id") for _, a, _ in elements(page)}
    assert set(SECTIONS) <= ids
    assert {"label-frequency", "bbox-width", "bbox-height"} <= ids
    headline = page[page.index('id="headline"'):page.index('id="findings"')]
    assert ">7<" in headline  # frames (the unparsable line is no frame)
    assert f"{6 / 7:.1%}" in headline  # valid: every frame but the one with the missing mask
    assert ">2<" in headline  # errors: mask_not_found, json_invalid


def test_classes_have_one_presence_bar_each_most_present_first(page: str) -> None:
    bars = bars_in(page, "label-frequency")
    assert len(bars) == len(LABEL_FRAMES)
    widths = [float(b["width"] or 0) for b in bars]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] / widths[1] == pytest.approx(LABEL_FRAMES["car"] / LABEL_FRAMES["road"], rel=0.01)
    assert [b["fill"] for b in bars] == ["rgb(0,0,142)", "rgb(128,64,128)", "rgb(255,0,0)"]  # the labels' own colours


def test_bbox_histograms_and_box_plots(page: str) -> None:
    assert len(bars_in(page, "bbox-width")) == len(bars_in(page, "bbox-height")) > 0
    boxes = [a for tag, a, inside in elements(page) if tag == "rect" and "label-frequency" in inside and a.get("class") == "iqr"]
    assert len(boxes) == len(LABEL_FRAMES)  # pixel fractions where present, one box per class row
    assert "From all" in page and "from all" in page  # a small table is not sampled


def test_findings_list_codes_with_example_locations(page: str) -> None:
    findings = page[page.index('id="findings"'):page.index('id="labels"')]
    assert "<code>mask_not_found</code>" in findings and "frames.jsonl:7" in findings
    assert "<code>json_invalid</code>" in findings and "frames.jsonl:8" in findings
    worst = page[page.index('id="worst-frames"'):page.index('id="mask-preview"')]
    assert "frames.jsonl:7" in worst and "<code>mask_not_found</code>" in worst


def test_user_strings_are_escaped(page: str) -> None:
    assert EVIL_LABEL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert EVIL_FRAME_ID not in page and "&lt;img src=x" in page
    assert not [tag for tag, _, _ in elements(page) if tag in ("script", "iframe", "object", "embed", "link")]


def test_nothing_is_fetched_from_anywhere(page: str) -> None:
    for tag, attributes, _ in elements(page):
        for name in ("src", "href", "srcset", "action"):
            value = (attributes.get(name) or "").strip()
            assert not value or value.startswith(("data:", "#")), f"<{tag} {name}={value[:60]!r}> loads something"
    assert "url(" not in page and "@import" not in page


def test_mask_preview_is_a_downscaled_mask_with_exact_colours(page: str) -> None:
    images = [a["src"] for tag, a, inside in elements(page) if tag == "img" and "mask-preview" in inside]
    assert len(images) == 1
    png = Image.open(io.BytesIO(base64.b64decode(images[0].split(",", 1)[1])))
    assert png.size == (320, 240)
    colours = {tuple(c) for c in np.asarray(png.convert("RGB")).reshape(-1, 3)}
    assert colours <= {CAR, ROAD, EVIL}  # nearest-neighbour: no blended colours
    preview = page[page.index('id="mask-preview"'):page.index('id="run"')]
    assert "car" in preview and "rgb(0,0,142)" in preview  # legend with its declared colours


def test_convert_output_says_what_is_missing(outputs: dict[str, Path]) -> None:
    page = render_report(str(outputs["convert"]))
    ids = {a.get("id") for _, a, _ in elements(page)}
    assert set(SECTIONS) <= ids
    sections = re.findall(r'<section id="([^"]+)">(.*?)</section>', page)
    for section_id, body in sections:
        says_no_decode = "written by `convert` or with --no-decode" in body and "Run `framebeam run`" in body
        assert says_no_decode == (section_id in ("labels", "pixel-fractions", "bbox-sizes", "shapes")), section_id
    assert "label-frequency" not in ids
    assert "No decoded still-image mask" in page


def test_drift_section(outputs: dict[str, Path]) -> None:
    drift = {"baseline": "gs://bucket/<b>", "labels_appeared": [{"labels": ["person"], "masks_present": 3, "colours": [[220, 20, 60]]}],
             "labels_vanished": [], "colour_changed": [], "thresholds": {"linf": 0.25, "js": 0.5},
             "breaches": [{"metric": "linf", "value": 0.3, "threshold": 0.25, "labels": []}],
             "label_distribution": {"linf": 0.3, "js": 0.125, "psi": 1.5, "psi_epsilon": 1e-4}, "label_js": None, "per_label": []}
    page = render_report(str(outputs["run"]), drift=drift)
    section = page[page.index('id="drift"'):page.index('id="findings"')]
    assert "0.3000" in section and "exceeds --max-drift linf=0.25" in section and "person" in section
    assert "0.1250" in section and "within --max-drift js=0.5" in section and "1.5000" in section
    assert "gs://bucket/&lt;b&gt;" in section
    assert 'id="drift"' not in render_report(str(outputs["run"]))  # no baseline, no section


def test_drift_section_shows_shape_drift(outputs: dict[str, Path]) -> None:
    row = {"labels": ["<car>"], "baseline_share": 0.5, "current_share": 0.5, "share_change": 0.0, "presence_rate_change": 0.0,
           "fraction_js": 0.01, "components_js": 0.4321, "holes_js": 0.0123, "largest_share_js": 0.2468, "shape_js": 0.4321, "components_mean_change": 2.5,
           "holes_mean_change": -0.25}
    drift = {"baseline": "previous run r1", "labels_appeared": [], "labels_vanished": [], "colour_changed": [],
             "thresholds": {"shape_js": 0.2}, "breaches": [{"metric": "shape_js", "value": 0.4321, "threshold": 0.2, "labels": []}],
             "label_distribution": {"linf": 0.0, "js": 0.0, "psi": 0.0, "psi_epsilon": 1e-4}, "label_js": 0.01,
             "shape_js": 0.4321, "shape_js_labels": ["<car>"], "per_label": [row],
             "slices": [{"slice_key": "source_id", "slice_value": "cam-a", "baseline": True, "linf": 0.0, "js": 0.0, "psi": 0.0,
                         "label_js": 0.0, "shape_js": 0.3, "breaches": [], "moved_most": []}]}
    section = (page := render_report(str(outputs["run"]), drift=drift))[page.index('id="drift"'):page.index('id="findings"')]
    assert "<code>shape_js</code>" in section and "exceeds --max-drift shape_js=0.2" in section and "0.4321" in section
    assert "Shapes that moved most" in section and "0.432" in section and "+2.50" in section and "-0.25" in section
    assert "0.247" in section
    assert "&lt;car&gt;" in section and "<car>" not in section
    assert "0.3000" in section  # the slice's shape_js


def test_write_report_through_fsspec(outputs: dict[str, Path]) -> None:
    """Any fsspec URL works (memory:// here stands for gs:// and s3://)."""
    fs = fsspec.filesystem("memory")
    # A local output exposes its tables through links; an object store holds the run folder itself.
    fs.put(str((outputs["run"] / "_current").resolve()), "/report-test-out", recursive=True)
    try:
        path = write_report("memory://report-test-out")
        assert path == "memory://report-test-out/report.html"
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            assert len(bars_in(f.read(), "label-frequency")) == len(LABEL_FRAMES)
    finally:
        fs.rm("/report-test-out", recursive=True)


def test_label_stats_are_sampled_by_whole_row_groups(outputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    groups = [report_data.RowGroup("f", i, 100) for i in range(10)]
    picked = pick_row_groups(groups, 300)
    assert [g.index for g in picked] == [0, 4, 9]  # spread from first to last, not the first three
    assert pick_row_groups(groups, 5_000) == groups
    monkeypatch.setattr(report_data, "MAX_SAMPLE_ROWS", 4)
    page = render_report(str(outputs["run"]))
    assert "From a sample of 4 of 12 label_stats rows" in page


def test_worst_frames_skip_row_groups_but_find_the_worst(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    errors = rng.integers(0, 4, 3_000)
    errors[[5, 1700, 2999]] = [9, 12, 9]
    warnings = rng.integers(0, 3, 3_000)
    rows = [FrameRow(frame_id=f"f{i}", shard="s.jsonl", line=i + 1, context_id=None, timestamp=None, n_sources=1, n_rois=0,
                     n_masks=0, valid=e == 0, n_errors=int(e), n_warnings=int(w), dataset_id=None, dataset_version=None,
                     meta=None, extra=None)
            for i, (e, w) in enumerate(zip(errors, warnings))]
    path = tmp_path / "out" / "frames" / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(rows_to_table("frames", rows), path, row_group_size=250)
    (tmp_path / "out" / "summary.json").write_text(json.dumps({"tables": {"frames": len(rows)}}))
    folder = OutputFolder.open(str(tmp_path / "out"))
    assert len(row_groups(folder, folder.files("frames"))) == 12
    got = [(f.frame_id, f.errors, f.warnings) for f in worst_frames(folder, k=5)]
    expected = sorted(((f"f{i}", int(e), int(w)) for i, (e, w) in enumerate(zip(errors, warnings))),
                      key=lambda t: (-t[1], -t[2]))[:5]
    assert [g[1:] for g in got] == [e[1:] for e in expected]
    assert got[0] == ("f1700", 12, int(warnings[1700]))


def test_missing_summary_says_what_to_point_at(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--output"):
        render_report(str(tmp_path))


# ---------------------------------------------------------------- headless Chromium


@pytest.fixture(scope="module")
def rendered(outputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium (Debian) to run this test")
    work = tmp_path_factory.mktemp("chromium")
    page = Path(write_report(str(outputs["run"])))
    url = page.resolve().as_uri()
    shot = work / "report.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1280,2400", url, profile=work / "profile-shot")
    assert shot.exists(), result.stderr[-2000:]
    dom = chromium("--dump-dom", url, profile=work / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    return {"screenshot": shot, "dom": dom.stdout}


@pytest.mark.slow
def test_chromium_renders_the_charts(rendered: dict[str, object]) -> None:
    dom = str(rendered["dom"])
    assert len(bars_in(dom, "label-frequency")) == len(LABEL_FRAMES)
    assert bars_in(dom, "bbox-width") and bars_in(dom, "bbox-height")
    assert {a.get("id") for _, a, _ in elements(dom)} >= set(SECTIONS)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # still text after parsing, never a script


@pytest.mark.slow
def test_chromium_screenshot_shows_a_page(rendered: dict[str, object]) -> None:
    image = np.asarray(Image.open(rendered["screenshot"]).convert("RGB"))
    assert image.shape[:2] == (2400, 1280)
    colours = {tuple(c) for c in image[::7, ::7].reshape(-1, 3)}
    assert len(colours) > 50  # text, charts and swatches, not a blank or error page
    assert any(np.all(image == CAR, axis=-1).ravel())  # the car bar / preview painted in its colour


def test_markup_escapes_every_value_unless_it_is_markup() -> None:
    evil = '<b onclick="x()">&\'</b>'
    built = h('<td title="{}">{}</td>{}', evil, evil, Markup("<br>"))
    assert built == ('<td title="&lt;b onclick=&quot;x()&quot;&gt;&amp;&#x27;&lt;/b&gt;">'
                     '&lt;b onclick=&quot;x()&quot;&gt;&amp;&#x27;&lt;/b&gt;</td><br>')
    assert isinstance(built, Markup) and h("{}", built) == built  # built markup is not escaped twice
    assert h("{:,.1f}", 1234.5) == "1,234.5"
    assert join(["<a>", Markup("<b>")], "<") == "&lt;a&gt;&lt;<b>"


# ---------------------------------------------------------------- a 150-class table


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory):
    from tests.many_classes import write_many_classes

    base = tmp_path_factory.mktemp("many")
    data = write_many_classes(base / "input", classes=150, masks=120)
    out = base / "out"
    assert run_cli("run", "--input", str(data.frames), "--mask-labels", str(data.table), "--output", str(out), "--quiet") == 0
    return data, out


@pytest.mark.slow
def test_150_classes_every_present_class_ranked_and_the_never_present_listed(many) -> None:
    import html as html_lib

    data, out = many
    page = render_report(str(out))
    table = page[page.index('id="label-frequency"'):page.index("</table>", page.index('id="label-frequency"'))]
    shown = [html_lib.unescape(m) for m in re.findall(r'<td class="name"><span class="swatch"[^>]*></span>([^<]*)', table)]
    present = {n: k for n, k in data.masks_present.items() if k}
    assert sorted(shown) == sorted(present)  # every class with pixels, none cut
    counts = [present[n] for n in shown]
    assert counts == sorted(counts, reverse=True)  # ranked by presence
    never = page[page.index('id="never-present"'):]
    never = never[:never.index("</ul>")]
    assert {n for n, k in data.masks_present.items() if not k} == {html_lib.unescape(m) for m in re.findall(r"</span>([^<]+) <span", never)}
    assert 'class="classes scroll"' in page  # a long table scrolls instead of being cut


@pytest.mark.slow
def test_150_classes_nothing_is_clipped_in_chromium(many, tmp_path: Path) -> None:
    from tests.browser import layout_check

    if not CHROMIUM.exists():
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium (Debian) to run this test")
    _, out = many
    result = layout_check(Path(write_report(str(out))), tmp_path)
    assert result["clipped"] == [] and result["overflowing"] == []
    assert result["rows"] == sum(1 for k in many[0].masks_present.values() if k)
