"""History across runs into one OUTPUT: rows against a numpy count of the masks, drift values against a
plain-Python computation, --baseline previous, --keep-history, --max-drift METRIC=VALUE, --slice-by, and
the same history on the moto S3 server and the GCS emulator.

Runs go over shifting windows of one set of masks, so labels really move from run to run: Pillow-drawn
masks made here (fast) and, marked slow, the real CamVid masks."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

from tests.conftest import beside, query, run_cli, shared_dir, table
from tests.servers import gcs, gcs_emulator, gcs_proxy, moto_s3, s3  # noqa: F401 - fixtures
from transforms import history
from transforms.drift import HIST_BINS, LabelProfile, compare_profiles
from transforms.history import history_tables, label_profiles, read_history
from transforms.schema import HISTORY, HISTORY_RUNS
from transforms.summary import FrameEvent, LabelAccumulator, MaskEvent, MasksDecoded, RunCounts, fraction_hist, label_distributions, resolve_labels

RUN_COLUMNS = ("run_id", "started_at", "published_at", "baseline_run_id")
COLOURS = {"void": (0, 0, 0), "sky": (70, 130, 180), "road": (128, 64, 128), "car": (0, 0, 142), "person": (220, 20, 60),
           "bicycle": (119, 11, 32)}
CAMERAS = ("cam-a", "cam-b")


# ---------------------------------------------------------------- data: masks, frames, numpy references


def draw_masks(directory: Path, n: int = 30, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """Random polygons in label colours; person appears only in later masks, bicycle only in early ones."""
    rng = np.random.default_rng(17)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = size
    for i in range(n):
        image = Image.new("RGB", size, COLOURS["void"])
        draw = ImageDraw.Draw(image)
        present = ["road", "sky"] + (["car"] if i % 3 else []) + (["person"] if i >= n // 3 else []) + (["bicycle"] if i < n // 3 else [])
        for label in present:
            points = [(float(x), float(y)) for x, y in zip(rng.integers(0, w, 5), rng.integers(0, h, 5))]
            draw.polygon(points, fill=COLOURS[label])
        path = directory / f"m{i:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def write_frames(path: Path, masks: list[Path], colours: dict[str, tuple[int, int, int]]) -> Path:
    """One frame per mask, the whole class table declared on every mask; sources alternate between two cameras."""
    lines = []
    for i, mask in enumerate(masks):
        camera = CAMERAS[i % 2]
        lines.append(json.dumps({
            "id": mask.stem, "meta": {"site": {"name": f"site-{i % 3}"}},
            "sources": [{"id": camera, "uri": "unused.jpg", "masks": [{"id": "00", "uri": str(mask)}]}],
            "rois": [{"label": [name], "sources": [camera], "mask": {"id": "00", "value": list(rgb)}} for name, rgb in colours.items()],
        }))
    path.write_text("\n".join(lines) + "\n")
    return path


def numpy_profile(masks: list[Path], colours: dict[str, tuple[int, int, int]]) -> dict[str, dict]:
    """Per label, counted with numpy on Pillow's RGB view: masks, masks where present, pixels, 20-bin histogram."""
    out = {name: {"masks": 0, "present": 0, "pixels": 0, "hist": np.zeros(HIST_BINS, np.int64), "fractions": []} for name in colours}
    for path in masks:
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.uint32)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        total = packed.size
        for name, (r, g, b) in colours.items():
            count = int(np.count_nonzero(packed == (r << 16 | g << 8 | b)))
            ref = out[name]
            ref["masks"] += 1
            ref["pixels"] += count
            ref["fractions"].append(count / total)
            if count:
                ref["present"] += 1
                # The documented bin: floor(1000 f) // 50 (f = 1 in the last bin).
                ref["hist"][min(min(math.floor(count / total * 1000), 1000) // 50, HIST_BINS - 1)] += 1
    return out


def plain_shares(ref: dict[str, dict]) -> dict[str, float]:
    total = sum(v["present"] for v in ref.values())
    return {k: v["present"] / total for k, v in ref.items() if v["present"]}


def plain_js(p: dict, q: dict) -> float:
    out = 0.0
    for k in set(p) | set(q):
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        m = (a + b) / 2
        out += (0.5 * a * math.log2(a / m) if a else 0.0) + (0.5 * b * math.log2(b / m) if b else 0.0)
    return out


def plain_linf(p: dict, q: dict) -> float:
    return max(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def plain_hist_js(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.sum() == 0 or b.sum() == 0:
        return None
    return plain_js({i: x / a.sum() for i, x in enumerate(a) if x}, {i: x / b.sum() for i, x in enumerate(b) if x})


SHAPE_NAMES = ("components", "holes", "largest_share")


def shape_bin_sql(column: str) -> str:
    """The documented 12 shape bins, spelled out in SQL: 0, 1, 2, 3, 4, 5-7, 8-15, 16-31, 32-63, 64-127, 128-255, 256+."""
    return (f"CASE WHEN {column} < 5 THEN {column} WHEN {column} < 8 THEN 5 WHEN {column} < 16 THEN 6 WHEN {column} < 32 THEN 7 "
            f"WHEN {column} < 64 THEN 8 WHEN {column} < 128 THEN 9 WHEN {column} < 256 THEN 10 ELSE 11 END")


BIN_SQL = {"components": shape_bin_sql("components"), "holes": shape_bin_sql("holes"),
           # 10 equal bins of largest_component_pixels / pixel_count, in integers: floor(10 share), 1.0 in the last
           "largest_share": "least((10 * largest_component_pixels) // pixel_count, 9)"}
BIN_COUNT = {"components": 12, "holes": 12, "largest_share": 10}


def duckdb_shapes(output: Path, by: str | None = None) -> dict[tuple, dict[str, np.ndarray]]:
    """The current run's components, holes and largest-component-share histograms per ((by value,) label), from its
    label_stats rows read with DuckDB: masks where the label has pixels and was measured."""
    group = by or "NULL"
    out: dict[tuple, dict[str, np.ndarray]] = defaultdict(lambda: {n: np.zeros(BIN_COUNT[n], np.int64) for n in SHAPE_NAMES})
    for name in SHAPE_NAMES:
        for value, labels, b, n in query(
                f"SELECT {group}, labels, {BIN_SQL[name]} AS b, count(*) FROM {table(output, 'label_stats')} "
                f"WHERE pixel_count > 0 AND components IS NOT NULL GROUP BY ALL"):
            out[(value, labels[0])][name][b] += n
    return dict(out)


def history_shape_rows(output: Path, run_id: str) -> dict[tuple, dict]:
    names = ["slice_value", "labels", "components_hist", "holes_hist", "largest_share_hist", "components_js", "holes_js",
             "largest_share_js", "slice_key"]
    return {(r[0], r[1][0], r[-1]): dict(zip(names, r)) for r in query(
        f"SELECT {', '.join(names)} FROM {table(output, 'history')} WHERE run_id = '{run_id}'")}


def check_shapes(output: Path, run_id: str, ref: dict, base_ref: dict | None, slice_key: str | None = None) -> float | None:
    """History's shape histograms equal label_stats' (DuckDB); their JS equals plain Python to 1e-6. The largest JS."""
    rows = {(v, label): r for (v, label, key), r in history_shape_rows(output, run_id).items() if key == slice_key}
    assert {k for k, r in rows.items() if r["components_hist"] is not None} == set(ref)
    largest = None
    for key, row in rows.items():
        for name in SHAPE_NAMES:
            want = ref.get(key, {}).get(name)
            assert row[f"{name}_hist"] == (want.tolist() if want is not None else None), (key, name)
            expected = None
            if base_ref is not None and want is not None and key in base_ref:
                expected = plain_hist_js(want, base_ref[key][name])
            assert (row[f"{name}_js"] is None) == (expected is None), (key, name)
            if expected is not None:
                assert row[f"{name}_js"] == pytest.approx(expected, abs=1e-6), (key, name)
                largest = expected if largest is None else max(largest, expected)
    return largest


def history_rows(output: Path) -> list[dict]:
    names = ("run_id", "slice_key", "slice_value", "labels", "masks", "masks_present", "total_pixels", "label_share",
             "fraction_hist", "baseline_run_id", "share_change", "fraction_js", "presence_rate_change", "pixel_fraction_p50",
             "pixel_fraction_p95")
    return [dict(zip(names, r)) for r in query(f"SELECT {', '.join(names)} FROM {table(output, 'history')}")]


def runs_rows(output: Path) -> list[dict]:
    names = [f.name for f in HISTORY_RUNS]
    return [dict(zip(names, r)) for r in query(f"SELECT {', '.join(names)} FROM {table(output, 'history_runs')} ORDER BY published_at, run_id")]


def check_run_against_numpy(output: Path, run_id: str, ref: dict[str, dict], base_ref: dict[str, dict] | None) -> None:
    """The run's whole-run history rows equal the numpy counts; its drift values equal plain Python to 1e-6."""
    rows = {r["labels"][0]: r for r in history_rows(output) if r["run_id"] == run_id and r["slice_key"] is None}
    assert set(rows) == set(ref)
    shares = plain_shares(ref)
    for name, expected in ref.items():
        row = rows[name]
        assert (row["masks"], row["masks_present"], row["total_pixels"]) == (expected["masks"], expected["present"], expected["pixels"]), name
        assert row["fraction_hist"] == expected["hist"].tolist(), name
        assert row["label_share"] == pytest.approx(shares.get(name, 0.0), abs=1e-12)
        for q in (50, 95):  # over the run's masks, 0 where absent; exact while a label is present in <= 256 masks
            assert row[f"pixel_fraction_p{q}"] == pytest.approx(float(np.quantile(expected["fractions"], q / 100, method="lower")),
                                                                abs=1e-12 if expected["present"] <= 256 else 5e-4), name
    summary = json.loads((output / "summary.json").read_text())
    run = next(r for r in runs_rows(output) if r["run_id"] == run_id)
    if base_ref is None:
        assert run["drift_js"] is None and all(r["fraction_js"] is None for r in rows.values())
        return
    base_shares = plain_shares(base_ref)
    linf, js = plain_linf(shares, base_shares), plain_js(shares, base_shares)
    assert run["drift_linf"] == pytest.approx(linf, abs=1e-6) and run["drift_js"] == pytest.approx(js, abs=1e-6)
    if summary["run_id"] == run_id:
        assert summary["drift"]["label_distribution"]["linf"] == pytest.approx(linf, abs=1e-6)
        assert summary["drift"]["label_distribution"]["js"] == pytest.approx(js, abs=1e-6)
    for name, row in rows.items():
        assert row["share_change"] == pytest.approx(shares.get(name, 0.0) - base_shares.get(name, 0.0), abs=1e-6)
        expected_js = plain_hist_js(ref[name]["hist"], base_ref[name]["hist"])
        assert (row["fraction_js"] is None) == (expected_js is None), name
        if expected_js is not None:
            assert row["fraction_js"] == pytest.approx(expected_js, abs=1e-6), name


def run_windows(tmp: Path, masks: list[Path], colours: dict, windows: list[slice], output: str, *extra: str) -> list[dict]:
    """One `run --baseline previous` per window into one OUTPUT; per run, its shape histograms from label_stats (whole
    run under None, per source under "source_id"), read before the next run removes its folder."""
    shapes = []
    for i, window in enumerate(windows):
        frames = write_frames(tmp / f"frames-{i}.jsonl", masks[window], colours)
        assert run_cli("run", "--input", str(frames), "--output", output, "--baseline", "previous", "--quiet", *extra) == 0
        shapes.append({None: duckdb_shapes(Path(output)), "source_id": duckdb_shapes(Path(output), "source_id")})
    return shapes


def check_shape_drift(output: Path, shapes: list[dict], slice_keys: tuple = ()) -> None:
    """Every run's shape histograms and JS (whole run and per slice) against label_stats and plain Python; the
    run-level shape_js (history_runs, summary.json) is the largest per-label JS."""
    runs = runs_rows(output)
    assert len(runs) == len(shapes)
    summary = json.loads((output / "summary.json").read_text())
    for i, run in enumerate(runs):
        largest = check_shapes(output, run["run_id"], shapes[i][None], shapes[i - 1][None] if i else None)
        assert (run["drift_shape_js"] is None) == (largest is None)
        if largest is not None:
            assert run["drift_shape_js"] == pytest.approx(largest, abs=1e-6)
        for key in slice_keys:
            sliced = check_shapes(output, run["run_id"], shapes[i][key], shapes[i - 1][key] if i else None, key)
            if i == len(runs) - 1 and summary["run_id"] == run["run_id"]:
                got = max((s["shape_js"] for s in summary["drift"]["slices"] if s["slice_key"] == key and s.get("shape_js") is not None),
                          default=None)
                assert got == pytest.approx(sliced, abs=1e-6)
    if summary.get("drift") and summary["run_id"] == runs[-1]["run_id"]:
        assert summary["drift"]["shape_js"] == pytest.approx(runs[-1]["drift_shape_js"], abs=1e-12)


# ---------------------------------------------------------------- plain functions


@pytest.mark.parametrize("n", [40, 600])  # kept exactly (up to summary.EXACT_VALUES), then binned
def test_fraction_hist_equals_numpy_over_present_masks(n: int) -> None:
    rng = np.random.default_rng(n)
    fractions = np.concatenate([np.zeros(17), rng.random(n), [1.0, 1.0, 0.05, 0.95, 1e-9, 0.999]])
    acc = LabelAccumulator()
    for f in fractions:
        acc.add(MaskEvent(float(f), int(f * 1000) + (f > 0), (0, 0, 1, 1), True))
    present = fractions[fractions > 0]
    expected = np.bincount(np.minimum(np.floor(present * 1000).astype(int), 999) // 50, minlength=20)
    assert fraction_hist(acc) == tuple(expected.tolist())
    assert sum(fraction_hist(acc)) == acc.present == present.size


def test_label_profiles_merge_a_labels_colours() -> None:
    events = [((("car",), (0, 0, 142)), MaskEvent(0.2, 20, (0, 0, 1, 1), True)), ((("car",), (0, 0, 142)), MaskEvent(0.0, 0, (0, 0, 0, 0), True)),
              ((("car",), (0, 0, 70)), MaskEvent(0.6, 60, (0, 0, 1, 1), True)), ((("car",), (0, 0, 142)), FrameEvent(True, True)),
              ((("car",), (0, 0, 70)), FrameEvent(True, True)), (((), (9, 9, 9)), MaskEvent(0.5, 50, (0, 0, 1, 1), True))]
    accs: dict = defaultdict(LabelAccumulator)
    for key, event in events:
        accs[key].add(event)
    run = RunCounts()
    run.add(MasksDecoded(None, 3))
    profiles = label_profiles(resolve_labels(accs.items(), run), label_distributions(accs.items(), run))
    assert set(profiles) == {("car",)}  # a colour without labels is no class
    car = profiles[("car",)]
    assert (car.masks, car.masks_present, car.total_pixels, car.frames) == (3, 2, 80, 2)
    assert car.colours == ((0, 0, 70), (0, 0, 142))
    assert car.pixel_fraction_mean == pytest.approx(0.8 / 3)  # over the run's 3 decoded masks, 0 where absent
    assert car.fraction_hist[4] == 1 and car.fraction_hist[12] == 1 and sum(car.fraction_hist) == 2


@pytest.mark.parametrize("per_colour", [30, 400])  # exact values kept, then the 1000-bin histogram
def test_label_distributions_merge_colours_exactly(per_colour: int) -> None:
    """A label drawn in three colours in different masks: its quantiles over the run's masks (0 where absent) and its
    components/holes histograms equal numpy on the union of the colours' masks."""
    rng = np.random.default_rng(per_colour)
    colours = [(0, 0, 142), (0, 0, 70), (0, 60, 100)]
    accs: dict = defaultdict(LabelAccumulator)
    fractions, components, holes, largest, pixels = [], [], [], [], []
    for i, rgb in enumerate(colours):
        for _ in range(per_colour * (i + 1)):
            f, c, k = float(rng.random() ** 3), int(rng.integers(1, 400) if rng.random() < 0.3 else rng.integers(1, 6)), int(rng.integers(0, 40))
            px = max(1, int(f * 1000))
            big = int(rng.integers(1, px + 1)) if rng.random() < 0.8 else px  # one blob (share 1) now and then
            accs[(("car",), rgb)].add(MaskEvent(f, px, (0, 0, 1, 1), True, c, k, big))
            fractions.append(f), components.append(c), holes.append(k), largest.append(big), pixels.append(px)
    run = RunCounts()
    run.add(MasksDecoded(None, 9 * per_colour))  # 3 per_colour masks without car
    (car,) = label_distributions(accs.items(), run).values()
    values = np.concatenate([np.zeros(run.masks - len(fractions)), fractions])
    tolerance = 0.0 if len(fractions) <= 256 else 0.5 / 1000
    for q, got in ((0.5, car.pixel_fraction_p50), (0.95, car.pixel_fraction_p95)):
        assert got == pytest.approx(float(np.quantile(values, q, method="lower")), abs=tolerance + 1e-15)
    edges = [0, 1, 2, 3, 4, 5, 8, 16, 32, 64, 128, 256, 2**31]
    assert car.components_hist == tuple(np.histogram(components, edges)[0].tolist())
    assert car.holes_hist == tuple(np.histogram(holes, edges)[0].tolist())
    shares = np.asarray(largest) / np.asarray(pixels)
    assert car.largest_share_hist == tuple(np.bincount(np.minimum(np.floor(shares * 10 + 1e-9).astype(int), 9), minlength=10).tolist())
    assert sum(car.fraction_hist) == len(fractions)
    # The label's most present colour alone (what history used to keep) is another answer: merging matters here.
    top = resolve_labels(accs.items(), run)[0]
    assert top.rgb == colours[2] and top.pixel_fraction_p50 != car.pixel_fraction_p50


def test_retention_keeps_the_last_runs() -> None:
    previous = (HISTORY.empty_table(), HISTORY_RUNS.empty_table())
    for i in range(5):
        run = {"run_id": f"r{i}", "started_at": f"2026-01-0{i + 1}", "published_at": f"2026-01-0{i + 1}T01"}
        rows = history.label_rows({("car",): LabelProfile(("car",), masks=2, masks_present=1)}, None, None)
        previous = history_tables(previous, run, rows, {"command": "run", "errors": i, "warnings": 0}, keep=3)
    hist, runs = previous
    assert runs.column("run_id").to_pylist() == ["r2", "r3", "r4"]
    assert sorted(set(hist.column("run_id").to_pylist())) == ["r2", "r3", "r4"]
    assert runs.column("errors").to_pylist() == [2, 3, 4]
    # Fewer runs than kept: all of them stay, at every length.
    growing = (HISTORY.empty_table(), HISTORY_RUNS.empty_table())
    for i in range(12):
        growing = history_tables(growing, {"run_id": f"g{i:02d}", "published_at": f"t{i:02d}"}, [], {"errors": 0, "warnings": 0}, keep=30)
        assert growing[1].num_rows == i + 1
    one = history_tables(previous, {"run_id": "r9"}, [], {"errors": 0, "warnings": 0}, keep=1)
    assert one[1].column("run_id").to_pylist() == ["r9"] and one[0].num_rows == 0


def test_history_of_an_older_schema_is_carried_forward(tmp_path: Path) -> None:
    """History written by an earlier framebeam (fewer columns) is read in today's schema, new columns null."""
    old = pa.table({"run_id": ["r0"], "labels": [["car"]], "frames_present": [1], "masks": [2], "masks_present": [1], "total_pixels": [5]})
    conformed = history.conform(old, HISTORY)
    assert conformed.schema == HISTORY and conformed.column("components_mean").to_pylist() == [None]
    # A baseline from such rows has no shape histograms: shape drift is null against it, not an error.
    base = history.run_profile_from_history(conformed, "r0")
    assert base.labels[("car",)].components_hist is None and base.labels[("car",)].largest_share_hist is None
    current = {("car",): LabelProfile(("car",), masks=2, masks_present=1, components_hist=(0, 1) + (0,) * 10)}
    result = compare_profiles(current, base.labels)
    assert result["shape_js"] is None and result["per_label"][0]["components_js"] is None


# ---------------------------------------------------------------- runs into one OUTPUT


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> list[Path]:
    return draw_masks(tmp_path_factory.mktemp("drawn") / "masks")


WINDOWS = [slice(0, 14), slice(8, 22), slice(16, 30)]


@pytest.fixture(scope="module")
def three_runs_and_shapes(drawn: list[Path], tmp_path_factory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("runs")
    out = beside(tmp)
    shapes = run_windows(tmp, drawn, COLOURS, WINDOWS, str(out), "--slice-by", "source_id", "--slice-by", "meta.site.name")
    return out, shapes


@pytest.fixture(scope="module")
def three_runs(three_runs_and_shapes) -> Path:
    return three_runs_and_shapes[0]


def test_shape_histograms_equal_label_stats_and_js_equals_plain_python(three_runs_and_shapes) -> None:
    out, shapes = three_runs_and_shapes
    check_shape_drift(out, shapes, ("source_id",))
    assert runs_rows(out)[1]["drift_shape_js"] > 0.01  # the shapes really differ between windows


def test_history_rows_equal_numpy_and_drift_equals_plain_python(three_runs: Path, drawn: list[Path]) -> None:
    runs = runs_rows(three_runs)
    assert len(runs) == 3
    refs = [numpy_profile(drawn[w], COLOURS) for w in WINDOWS]
    for i, run in enumerate(runs):
        check_run_against_numpy(three_runs, run["run_id"], refs[i], refs[i - 1] if i else None)
        assert run["baseline_run_id"] == (runs[i - 1]["run_id"] if i else None)
        assert run["passed"] is True and run["command"] == "run"
    assert runs[1]["drift_js"] > 0.01  # the windows really differ: bicycle leaves, person arrives
    summary = json.loads((three_runs / "summary.json").read_text())
    assert summary["drift"]["baseline"] == f"previous run {runs[1]['run_id']}"
    assert summary["drift"]["label_distribution"]["psi_epsilon"] == 1e-4
    assert {"linf", "js", "psi"} <= set(summary["drift"]["label_distribution"]) and "label_js" in summary["drift"]


@pytest.mark.slow
def test_history_with_a_class_table(drawn: list[Path], tmp_path: Path) -> None:
    """Colours from --mask-labels (no ROIs): absent classes send nothing, yet every class has its history row."""
    table_file = tmp_path / "classes.json"
    table_file.write_text(json.dumps({name: list(rgb) for name, rgb in COLOURS.items()}))
    windows = [slice(0, 8), slice(20, 28)]
    out = beside(tmp_path)
    for i, window in enumerate(windows):
        frames = [{"id": m.stem, "sources": [{"id": "cam", "uri": "unused.jpg", "masks": [{"id": "00", "uri": str(m)}]}]}
                  for m in drawn[window]]
        path = tmp_path / f"f{i}.jsonl"
        path.write_text("".join(json.dumps(f) + "\n" for f in frames))
        assert run_cli("run", "--input", str(path), "--mask-labels", str(table_file), "--output", str(out),
                       "--baseline", "previous", "--quiet") == 0
    runs = runs_rows(out)
    refs = [numpy_profile(drawn[w], COLOURS) for w in windows]
    for i, run in enumerate(runs):
        check_run_against_numpy(out, run["run_id"], refs[i], refs[i - 1] if i else None)


def test_history_carries_label_summary_values(three_runs: Path) -> None:
    """The last run's history rows hold its label_summary's values (one colour per label here), shape means included."""
    columns = ["masks_present", "total_pixels", "pixel_fraction_mean", "pixel_fraction_p50", "pixel_fraction_p95",
               "components_mean", "holes_mean"]
    summary = json.loads((three_runs / "summary.json").read_text())
    want = {r[0][0]: r[1:] for r in query(f"SELECT labels, {', '.join(columns)} FROM {table(three_runs, 'label_summary')}")}
    got = {r[0][0]: r[1:] for r in query(f"SELECT labels, {', '.join(columns)} FROM {table(three_runs, 'history')} "
                                         f"WHERE run_id = '{summary['run_id']}' AND slice_key IS NULL")}
    assert got.keys() == want.keys()
    for label in want:
        assert got[label] == pytest.approx(want[label], nan_ok=True), label
    assert any(v[-2] is not None for v in got.values())  # the shape columns are measured


def test_finding_counts_of_each_run(three_runs: Path) -> None:
    summary = json.loads((three_runs / "summary.json").read_text())
    last = runs_rows(three_runs)[-1]
    assert last["run_id"] == summary["run_id"] and last["published_at"] == summary["published_at"]
    assert last["errors"] == summary["findings"]["error"] and last["warnings"] == summary["findings"]["warning"]
    assert {d["code"]: d["count"] for d in last["findings_by_code"]} == {c: v["count"] for c, v in summary["findings_by_code"].items()}
    by_code = dict(query(f"SELECT code, count(*) FROM {table(three_runs, 'issues')} GROUP BY code"))
    assert {d["code"]: d["count"] for d in last["findings_by_code"]} == by_code


def test_slices_equal_numpy_per_camera(three_runs: Path, drawn: list[Path]) -> None:
    last = drawn[WINDOWS[-1]]
    got = defaultdict(dict)
    for value, labels, masks, present, pixels in query(
            f"SELECT slice_value, labels, masks_declared, masks_present, total_pixels FROM {table(three_runs, 'label_summary_by_slice')} "
            "WHERE slice_key = 'source_id'"):
        got[value][labels[0]] = (masks, present, pixels)
    expected = {}
    for camera in CAMERAS:
        # Frames alternate cameras by their position in the window's frames file.
        ref = numpy_profile([m for i, m in enumerate(last) if CAMERAS[i % 2] == camera], COLOURS)
        expected[camera] = {k: (v["masks"], v["present"], v["pixels"]) for k, v in ref.items()}
    assert dict(got) == expected
    sites = {v for (v,) in query(f"SELECT DISTINCT slice_value FROM {table(three_runs, 'label_summary_by_slice')} "
                                  "WHERE slice_key = 'meta.site.name'")}
    assert sites == {"site-0", "site-1", "site-2"}
    summary = json.loads((three_runs / "summary.json").read_text())
    slices = {(s["slice_key"], s["slice_value"]): s for s in summary["drift"]["slices"]}
    assert set(slices) == {("source_id", c) for c in CAMERAS} | {("meta.site.name", f"site-{i}") for i in range(3)}
    # Per-slice drift against the previous run's same slice, from its history rows.
    prev = drawn[WINDOWS[-2]]
    for camera in CAMERAS:
        cur = plain_shares(numpy_profile([m for i, m in enumerate(last) if CAMERAS[i % 2] == camera], COLOURS))
        base = plain_shares(numpy_profile([m for i, m in enumerate(prev) if CAMERAS[i % 2] == camera], COLOURS))
        assert slices[("source_id", camera)]["js"] == pytest.approx(plain_js(cur, base), abs=1e-6)
        assert slices[("source_id", camera)]["linf"] == pytest.approx(plain_linf(cur, base), abs=1e-6)


def test_tables_lists_history(three_runs: Path, capsys) -> None:
    from pipelines.cli import main

    assert main(["tables", str(three_runs)]) == 0
    listed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert {"history", "history_runs", "label_summary_by_slice"} <= set(listed)
    assert query(f"SELECT count(DISTINCT run_id) FROM read_parquet('{listed['history']}')")[0][0] == 3


@pytest.mark.slow
def test_keep_history_and_max_drift_thresholds(drawn: list[Path], tmp_path: Path) -> None:
    out = beside(tmp_path)
    frames = [write_frames(tmp_path / f"f{i}.jsonl", drawn[w], COLOURS) for i, w in enumerate(WINDOWS)]
    base = ["--output", str(out), "--quiet", "--keep-history", "2", "--baseline", "previous"]
    # First run: no previous run, so nothing to breach.
    assert run_cli("validate", "--input", str(frames[0]), *base, "--max-drift", "js=0") == 0
    # Second: the windows differ; a JS threshold below the value fails, with an error finding naming it.
    assert run_cli("validate", "--input", str(frames[1]), *base, "--max-drift", "js=0.001", "--max-drift", "0.99",
                   "--max-drift", "label_js=1") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert [b["metric"] for b in summary["drift"]["breaches"]] == ["js"]
    assert any("label drift js" in r for r in summary["reasons"])
    (code, message), = query(f"SELECT code, message FROM {table(out, 'issues')} WHERE code LIKE '%drift%exceeded'")
    assert code == "drift_js_exceeded" and "js=0.001" in message and f"{summary['drift']['label_distribution']['js']:.4f}" in message
    assert "moved most: [" in message
    # Third, thresholds above the values: passes; history keeps the last two runs only.
    assert run_cli("validate", "--input", str(frames[2]), *base, "--max-drift", "js=1", "--max-drift", "psi=100") == 0
    runs = runs_rows(out)
    assert len(runs) == 2 and [r["passed"] for r in runs] == [False, True]
    assert runs[0]["drift_breaches"] == ["js"] and runs[1]["drift_breaches"] == []
    assert {r["run_id"] for r in history_rows(out)} == {r["run_id"] for r in runs}


def test_max_drift_without_baseline_is_misuse(drawn: list[Path], tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "f.jsonl", drawn[:2], COLOURS)
    assert run_cli("validate", "--input", str(frames), "--output", str(beside(tmp_path, "o")), "--quiet", "--max-drift", "js=0.1") == 2
    with pytest.raises(SystemExit):
        run_cli("validate", "--input", str(frames), "--output", str(beside(tmp_path, "o")), "--max-drift", "kl=0.1")


@pytest.mark.slow
def test_baseline_previous_from_history_only_and_a_shape_breach_fails_validate(drawn: list[Path], tmp_path: Path) -> None:
    """run, convert (no labels), validate --baseline previous: the baseline is the first run, whose folder the convert's
    publish removed, so its label and shape distributions come from history rows alone. A shape_js threshold below
    the value fails validate with a drift error naming the value, the threshold and the labels."""
    out = beside(tmp_path)
    frames = [write_frames(tmp_path / f"f{i}.jsonl", drawn[w], COLOURS) for i, w in enumerate(WINDOWS)]
    assert run_cli("run", "--input", str(frames[0]), "--output", str(out), "--quiet") == 0
    first = json.loads((out / "summary.json").read_text())["run_id"]
    base_shapes, base_ref = duckdb_shapes(out), numpy_profile(drawn[WINDOWS[0]], COLOURS)
    assert run_cli("convert", "--input", str(frames[1]), "--output", str(out), "--quiet") == 0
    assert not (out / "_runs" / first).exists()  # its tables are gone: only the history rows remember it
    assert run_cli("validate", "--input", str(frames[2]), "--output", str(out), "--baseline", "previous", "--quiet",
                   "--max-drift", "shape_js=0.001", "--max-drift", "label_js=1") == 1
    summary = json.loads((out / "summary.json").read_text())
    drift = summary["drift"]
    assert (drift["baseline_run_id"], drift["baseline_source"]) == (first, "history")
    check_run_against_numpy(out, summary["run_id"], numpy_profile(drawn[WINDOWS[2]], COLOURS), base_ref)
    largest = check_shapes(out, summary["run_id"], duckdb_shapes(out), base_shapes)
    assert drift["shape_js"] == pytest.approx(largest, abs=1e-6) and largest > 0.001
    assert [b["metric"] for b in drift["breaches"]] == ["shape_js"] and summary["passed"] is False
    (code, message), = query(f"SELECT code, message FROM {table(out, 'issues')} WHERE code LIKE '%drift%exceeded'")
    assert code == "drift_shape_js_exceeded"
    assert f"is {drift['shape_js']:.4f} > --max-drift shape_js=0.001" in message
    assert f"{drift['shape_js_labels']} (components JS" in message
    run = runs_rows(out)[-1]
    assert run["drift_breaches"] == ["shape_js"] and run["drift_shape_js"] == pytest.approx(largest, abs=1e-6)


def test_a_label_in_two_colours_is_one_distribution(drawn: list[Path], tmp_path: Path) -> None:
    """car drawn in two colours, in different masks (a palette change): its history row's p50/p95 and histograms
    are those of all its masks (numpy), not those of one colour."""
    other = (0, 0, 70)
    masks, lines = [], []
    for i, path in enumerate(drawn):
        rgb = np.asarray(Image.open(path).convert("RGB")).copy()
        colour = other if i % 2 else COLOURS["car"]
        rgb[(rgb == COLOURS["car"]).all(axis=-1)] = colour
        mask = tmp_path / "masks" / path.name
        mask.parent.mkdir(exist_ok=True)
        Image.fromarray(rgb).save(mask)
        masks.append(mask)
        declared = {**COLOURS, "car": colour}
        lines.append(json.dumps({"id": mask.stem, "sources": [{"id": "cam", "uri": "unused.jpg", "masks": [{"id": "00", "uri": str(mask)}]}],
                                 "rois": [{"label": [n], "sources": ["cam"], "mask": {"id": "00", "value": list(c)}} for n, c in declared.items()]}))
    frames = tmp_path / "f.jsonl"
    frames.write_text("\n".join(lines) + "\n")
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(frames), "--output", str(out), "--quiet") == 0
    fractions = []
    for mask in masks:
        rgb = np.asarray(Image.open(mask).convert("RGB"))
        fractions.append(float(np.any([(rgb == c).all(axis=-1) for c in (COLOURS["car"], other)], axis=0).mean()))
    fractions = np.asarray(fractions)
    (masks_n, present, p50, p95, hist, colours), = query(
        f"SELECT masks, masks_present, pixel_fraction_p50, pixel_fraction_p95, fraction_hist, colours FROM {table(out, 'history')} "
        "WHERE labels = ['car']")
    assert sorted(map(tuple, colours)) == [other, COLOURS["car"]]
    assert (masks_n, present) == (len(masks), int(np.count_nonzero(fractions)))
    assert p50 == pytest.approx(float(np.quantile(fractions, 0.5, method="lower")), abs=1e-12)
    assert p95 == pytest.approx(float(np.quantile(fractions, 0.95, method="lower")), abs=1e-12)
    nonzero = fractions[fractions > 0]
    assert hist == np.bincount(np.minimum(np.floor(nonzero * 1000).astype(int), 999) // 50, minlength=20).tolist()
    per_colour = query(f"SELECT pixel_fraction_p50 FROM {table(out, 'label_summary')} WHERE labels = ['car']")
    assert p50 > 0 and all(v != p50 for (v,) in per_colour)  # each colour alone has another median (0 here)
    components = duckdb_shapes(out)[(None, "car")]["components"]  # both colours' masks, from label_stats
    assert query(f"SELECT components_hist FROM {table(out, 'history')} WHERE labels = ['car']")[0][0] == components.tolist()


@pytest.mark.slow
def test_convert_keeps_history_of_verdicts(drawn: list[Path], tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "f.jsonl", drawn[:3], COLOURS)
    for _ in range(2):
        assert run_cli("convert", "--input", str(frames), "--output", str(beside(tmp_path, "o")), "--quiet") == 0
    runs = runs_rows(beside(tmp_path, "o"))
    assert [r["command"] for r in runs] == ["convert", "convert"] and all(r["frames"] == 3 for r in runs)
    assert history_rows(beside(tmp_path, "o")) == []  # no labels without decoding


# ---------------------------------------------------------------- buckets


BUCKET = "framebeam-history"


def comparable(rows: list[dict]) -> list[tuple]:
    """History rows without what differs between two runs of the same data (ids, times), floats rounded."""
    def norm(v):
        return round(v, 12) if isinstance(v, float) else (tuple(v) if isinstance(v, list) else v)
    return sorted((tuple(norm(v) for k, v in sorted(r.items()) if k not in RUN_COLUMNS) for r in rows), key=repr)


def local_history(out: Path) -> tuple[list[dict], list[dict]]:
    hist, runs = read_history(str(out))
    return hist.to_pylist(), runs.to_pylist()


@pytest.fixture(scope="module")
def local_two_runs(drawn: list[Path], tmp_path_factory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("local-two")
    out = beside(tmp)
    frames = [write_frames(tmp / f"f{i}.jsonl", drawn[w], COLOURS) for i, w in enumerate(WINDOWS[:2])]
    for f in frames:
        assert run_cli("run", "--input", str(f), "--output", str(out), "--baseline", "previous", "--quiet") == 0
    return out, frames


def _bucket_runs(fs, scheme: str, drawn: list[Path], local: tuple[Path, list[Path]]) -> None:
    out, frames = local
    fs.mkdir(BUCKET)
    for mask in drawn:
        fs.pipe(f"{BUCKET}/masks/{mask.name}", mask.read_bytes())
    for i, f in enumerate(frames):
        # Frames name masks by absolute local path: point them at the bucket copy instead.
        text = f.read_text().replace(str(drawn[0].parent), f"{scheme}://{BUCKET}/masks")
        fs.pipe(f"{BUCKET}/in/f{i}.jsonl", text.encode())
        assert run_cli("run", "--input", f"{scheme}://{BUCKET}/in/f{i}.jsonl", "--output", f"{scheme}://{BUCKET}/out",
                       "--baseline", "previous", "--quiet") == 0
    got_hist, got_runs = read_history(f"{scheme}://{BUCKET}/out")
    want_hist, want_runs = local_history(out)
    assert got_runs.num_rows == 2 and got_hist.num_rows == len(want_hist) > 0
    assert comparable(got_hist.to_pylist()) == comparable(want_hist)
    drift_cols = ["drift_linf", "drift_js", "drift_psi", "drift_label_js", "errors", "warnings", "frames"]
    assert [[r[c] for c in drift_cols] for r in got_runs.to_pylist()] == [[r[c] for c in drift_cols] for r in want_runs]
    # The second run's baseline is the first run, read from the bucket's history.
    ids = got_runs.column("run_id").to_pylist()
    assert got_runs.column("baseline_run_id").to_pylist() == [None, ids[0]]


@pytest.mark.slow
def test_history_on_s3(s3, drawn: list[Path], local_two_runs) -> None:
    _bucket_runs(s3.filesystem(), "s3", drawn, local_two_runs)


@pytest.mark.slow
def test_history_on_gcs(gcs, drawn: list[Path], local_two_runs) -> None:
    _bucket_runs(gcs.filesystem(), "gs", drawn, local_two_runs)


# ---------------------------------------------------------------- the real CamVid masks


@pytest.mark.slow
def test_camvid_windows(tmp_path: Path) -> None:
    shared = shared_dir()
    if shared is None:
        pytest.skip("../shared is not beside the repo (set FRAMEBEAM_SHARED to run this test)")
    root = shared / "data" / "real-masks" / "camvid"
    colours = {k: tuple(v) for k, v in json.loads((root / "colors.json").read_text()).items()}
    masks = sorted(root.glob("*.png"))
    windows = [slice(0, 40), slice(30, 70), slice(60, 100)]
    out = beside(tmp_path)
    shapes = run_windows(tmp_path, masks, colours, windows, str(out), "--slice-by", "source_id")
    runs = runs_rows(out)
    refs = [numpy_profile(masks[w], colours) for w in windows]
    assert len(runs) == 3
    for i, run in enumerate(runs):
        check_run_against_numpy(out, run["run_id"], refs[i], refs[i - 1] if i else None)
    # Shapes: components/holes histograms against label_stats (DuckDB), JS against plain Python, per camera too.
    check_shape_drift(out, shapes, ("source_id",))
    assert all(r["drift_shape_js"] > 0 for r in runs[1:])
