"""A dataset-wide class table on real masks: the 100 CamVid masks with their 32-class table, given in
every form --mask-labels accepts, and as 32 ROIs per frame. The answers come from plain numpy on
Pillow's RGB view of the same files: which (mask, class) pairs have pixels, each class's pixel fraction
in every mask (0 where absent) and numpy's quantile(method="lower") of it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import beside, query, run_cli, table
from transforms.joining import MaskLabels, MaskLabelsError

MIN_LABEL_FRAMES = 5  # the default of --min-label-frames


def camvid_reference(folder: Path) -> tuple[list[str], dict, np.ndarray, list[Path]]:
    """Class names, their colours, and fractions[mask, class] computed with numpy."""
    colours = json.loads((folder / "colors.json").read_text())
    names = list(colours)
    paths = sorted(folder.glob("*.png"))
    fractions = np.zeros((len(paths), len(names)))
    for i, path in enumerate(paths):
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        values, counts = np.unique(key, return_counts=True)
        found = dict(zip(values.tolist(), counts.tolist()))
        for j, name in enumerate(names):
            r, g, b = colours[name]
            fractions[i, j] = found.get((r << 16) | (g << 8) | b, 0) / key.size
    return names, colours, fractions, paths


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    from tests.conftest import shared_dir

    shared = shared_dir()
    if shared is None:
        pytest.skip("../shared is not beside the repo (set FRAMEBEAM_SHARED to run this test)")
    folder = shared / "data" / "real-masks" / "camvid"
    names, colours, fractions, paths = camvid_reference(folder)
    d = tmp_path_factory.mktemp("camvid")
    # The table forms: as the dataset ships it (colors.json, label_colors.txt), ClearML's, and "#rrggbb".
    (d / "clearml.json").write_text(json.dumps({"_all_": [{"value": rgb, "labels": [n]} for n, rgb in colours.items()]}))
    (d / "hex.json").write_text(json.dumps({n: "#%02x%02x%02x" % tuple(rgb) for n, rgb in colours.items()}))

    def mask(path: Path) -> dict:
        return {"id": "00", "uri": str(path)}

    table_frames = [{"id": p.stem, "sources": [{"id": "img", "uri": "unused.jpg", "masks": [mask(p)]}], "rois": []} for p in paths]
    roi_frames = [{"id": p.stem, "sources": [{"id": "img", "uri": "unused.jpg", "masks": [mask(p)]}],
                   "rois": [{"label": [n], "sources": ["img"], "mask": {"id": "00", "value": rgb}} for n, rgb in colours.items()]}
                  for p in paths]
    (d / "table.jsonl").write_text("".join(json.dumps(f) + "\n" for f in table_frames))
    (d / "rois.jsonl").write_text("".join(json.dumps(f) + "\n" for f in roi_frames))
    return {"dir": d, "folder": folder, "names": names, "fractions": fractions, "runs": {}}


FORMS = {
    "colors.json": lambda c: c["folder"] / "colors.json",
    "label_colors.txt": lambda c: c["folder"] / "label_colors.txt",
    "clearml": lambda c: c["dir"] / "clearml.json",
    "hex": lambda c: c["dir"] / "hex.json",
}


def run_form(camvid: dict, form: str) -> Path:
    """Run once per form (module-wide): the output folder."""
    if form not in camvid["runs"]:
        out = beside(camvid["dir"], f"out-{form.replace('.', '-')}")
        if form == "rois":
            args = ["--input", str(camvid["dir"] / "rois.jsonl")]
        else:
            args = ["--input", str(camvid["dir"] / "table.jsonl"), "--mask-labels", str(FORMS[form](camvid))]
        assert run_cli("run", *args, "--output", str(out), "--quiet") == 0
        camvid["runs"][form] = out
    return camvid["runs"][form]


def findings(out: Path, code: str) -> list[str]:
    return [m for (m,) in query(f"SELECT message FROM {table(out, 'issues')} WHERE code = '{code}'")]


def named(messages: list[str], names: list[str]) -> set[str]:
    return {n for n in names for m in messages if f"['{n}']" in m}


@pytest.mark.parametrize("form", ["colors.json", *(pytest.param(f, marks=pytest.mark.slow) for f in [*FORMS, "rois"][1:])])
def test_camvid_counts_presence(camvid: dict, form: str) -> None:
    out = run_form(camvid, form)
    names, fractions = camvid["names"], camvid["fractions"]
    present = fractions > 0
    masks_present = present.sum(axis=0)
    pairs = int(present.sum())

    absent = findings(out, "mask_colour_absent")
    rows = query(f"SELECT count(*), count(*) FILTER (WHERE pixel_count > 0) FROM {table(out, 'label_stats')}")[0]
    if form == "rois":  # the frames claim all 32 classes: each absent one is a warning, and a zero row
        assert len(absent) == present.size - pairs
        assert rows == (present.size, pairs)
    else:  # the table says what may appear: no warning, no row for what is not there
        assert absent == []
        assert rows == (pairs, pairs)

    never = named(findings(out, "label_never_present"), names)
    assert never == {n for n, k in zip(names, masks_present) if k == 0}
    assert never  # CamVid's Train and Tunnel
    few = named(findings(out, "label_few_samples"), names)
    assert few == {n for n, k in zip(names, masks_present) if 0 < k < MIN_LABEL_FRAMES}

    summary = {labels[0]: rest for labels, *rest in query(
        f"SELECT labels, masks_present, frames_present, masks_declared, pixel_fraction_p50, pixel_fraction_p95, "
        f"pixel_fraction_mean FROM {table(out, 'label_summary')}")}
    assert set(summary) == set(names)
    for j, name in enumerate(names):
        got_present, got_frames, declared, p50, p95, mean = summary[name]
        assert (got_present, got_frames, declared) == (masks_present[j], masks_present[j], len(fractions))
        for q, got in ((0.5, p50), (0.95, p95)):
            want = float(np.quantile(fractions[:, j], q, method="lower"))
            assert got == 0.0 if want == 0.0 else abs(got - want) <= 0.002, (name, q, got, want)
        assert mean == pytest.approx(fractions[:, j].mean(), abs=1e-12)


def test_camvid_summary_json_ranks_by_presence(camvid: dict) -> None:
    out = run_form(camvid, "colors.json")
    labels = json.loads((out / "summary.json").read_text())["labels"]
    ranking = [(-x["masks_present"], -x["total_pixels"]) for x in labels]
    assert ranking == sorted(ranking) and len(labels) == len(camvid["names"])
    tree = next(x for x in labels if x["labels"] == ["Tree"])
    assert tree["masks_present"] == tree["frames_present"] == int((camvid["fractions"][:, camvid["names"].index("Tree")] > 0).sum())
    assert tree["masks_declared"] == 100


def test_every_form_reads_as_the_same_table(camvid: dict) -> None:
    tables = {form: MaskLabels.load(str(path(camvid))) for form, path in FORMS.items()}
    first = tables["colors.json"]
    assert len(first.by_mask["_all_"]) == 32
    for form, t in tables.items():
        assert t == first, form


def test_unknown_forms_fail_with_the_accepted_forms(tmp_path: Path) -> None:
    for text in ('{"Animal": [64, 128]}', "64 128 Animal", '["Animal"]', '{"_all_": [{"value": [1, 2, 3]}]}', "{oops", ""):
        with pytest.raises(MaskLabelsError) as e:
            MaskLabels.parse(text.encode())
        assert "label_colors.txt" in str(e.value) and '{"car": [r, g, b]' in str(e.value), text
    (tmp_path / "bad.json").write_text('{"Animal": [64, 128]}')
    (tmp_path / "f.jsonl").write_text("{}\n")
    assert run_cli("run", "--input", str(tmp_path / "f.jsonl"), "--mask-labels", str(tmp_path / "bad.json"),
                   "--output", str(beside(tmp_path)), "--quiet") == 2


def test_text_table_forms() -> None:
    t = MaskLabels.parse(b"\xef\xbb\xbf# CamVid\n64 128 64\tAnimal\r\n\n0 0 0 Void class\n#ff0080 Plate\n10 10 10 Car\n#0a0a0a Car body\n")
    assert [(d.rgb, d.labels) for d in t.by_mask["_all_"]] == [
        ((64, 128, 64), ("Animal",)), ((0, 0, 0), ("Void class",)), ((255, 0, 128), ("Plate",)), ((10, 10, 10), ("Car", "Car body"))]
    with pytest.raises(MaskLabelsError, match="0..255"):
        MaskLabels.parse(b"300 0 0 Hot\n")
