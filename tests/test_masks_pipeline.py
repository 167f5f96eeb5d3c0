"""`framebeam run` on masks: statistics, crops, mask-level errors and dataset-level label checks."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from tests.conftest import beside, query, run_cli, table

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(pixels) if mode is None else Image.frombytes(mode, pixels.shape[::-1], pixels.tobytes())).save(buf, format="PNG")
    return buf.getvalue()


def blob_mask(h: int = 48, w: int = 64) -> np.ndarray:
    m = np.zeros((h, w, 3), np.uint8)
    m[5:20, 10:30] = RED
    m[25:40, 3:60] = GREEN
    m[0, 0] = (7, 7, 7)  # undeclared
    return m


def frame(fid: str, mask_uri: str, colours: dict, width: int = 64, height: int = 48) -> dict:
    return {
        "id": fid,
        "sources": [{"id": "cam", "uri": "img.png", "width": width, "height": height,
                     "masks": [{"id": "00", "uri": mask_uri}]}],
        "rois": [{"label": [label], "sources": ["cam"], "mask": {"id": "00", "value": list(rgb)}} for label, rgb in colours.items()],
    }


def write_frames(path: Path, frames: list[dict]) -> None:
    path.write_text("".join(json.dumps(f) + "\n" for f in frames))


def test_one_file_is_read_and_decoded_once_for_many_frames(tmp_path, monkeypatch):
    import transforms.masks as masks

    calls = []
    real = masks.read_mask  # analyse_group decodes exactly what it read, once
    monkeypatch.setattr(masks, "read_mask", lambda uri, **kw: calls.append(uri) or real(uri, **kw))
    (tmp_path / "m.png").write_bytes(png_bytes(blob_mask()))
    write_frames(tmp_path / "f.jsonl", [frame(f"f{i}", "m.png", {"car": RED, "road": GREEN}) for i in range(25)])
    assert run_cli("run", "--input", str(tmp_path / "f.jsonl"), "--output", str(beside(tmp_path)), "--quiet") == 0
    assert len(calls) == 1  # in-memory runner: the monkeypatch reaches the worker
    assert query(f"SELECT count(DISTINCT frame_id), count(*) FROM {table(beside(tmp_path), 'label_stats')}") == [(25, 50)]


def test_stats_crops_and_png_crops_decode_back(tmp_path):
    pixels = blob_mask()
    (tmp_path / "m.png").write_bytes(png_bytes(pixels))
    write_frames(tmp_path / "f.jsonl", [frame("a", "m.png", {"car": RED, "road": GREEN, "sky": BLUE})])
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(tmp_path / "f.jsonl"), "--output", str(out), "--quiet", "--crop-png") == 0
    stats = {tuple(rgb): rest for rgb, *rest in query(
        f"SELECT rgb, pixel_count, bbox_x0, bbox_y0, bbox_x1, bbox_y1, pixel_fraction FROM {table(out, 'label_stats')}")}
    assert stats[RED] == [15 * 20, 10, 5, 30, 20, pytest.approx(300 / (64 * 48))]
    assert stats[GREEN][:5] == [15 * 57, 3, 25, 60, 40]
    assert stats[BLUE][:5] == [0, None, None, None, None]
    masks = query(f"SELECT status, mode, undeclared_pixels, n_undeclared_colours, top_undeclared FROM {table(out, 'masks')}")
    background = 64 * 48 - 300 - 15 * 57 - 1
    assert masks == [("ok", "RGB", background + 1, 2, [{"rgb": [0, 0, 0], "pixels": background}, {"rgb": [7, 7, 7], "pixels": 1}])]
    codes = {c for (c,) in query(f"SELECT code FROM {table(out, 'issues')}")}
    assert {"mask_colour_absent", "mask_undeclared_pixels"} <= codes
    for rgb, x0, y0, x1, y1, counts, png in query(
            f"SELECT rgb, bbox_x0, bbox_y0, bbox_x1, bbox_y1, rle_counts, png FROM {table(out, 'crops')}"):
        expected = np.all(pixels[y0:y1, x0:x1] == np.array(rgb, np.uint8), axis=-1)
        decoded = coco_mask.decode({"size": [y1 - y0, x1 - x0], "counts": counts.encode()})
        assert np.array_equal(decoded.astype(bool), expected)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))).astype(bool), expected)


def test_mask_level_errors_mark_the_frame_invalid_and_the_run_goes_on(tmp_path):
    good = png_bytes(blob_mask())
    files = {
        "good.png": good,
        "empty.png": b"",
        "truncated.png": good[: len(good) // 2],
        "garbage.png": b"not an image at all" * 10,
        "big.png": png_bytes(np.zeros((48, 64, 3), np.uint8)),  # refused by --max-mask-pixels 1000
        "sixteen.png": png_bytes(np.full((48, 64), 4000, np.uint16), mode="I;16"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    frames = [frame(name.split(".")[0], name, {"car": RED}) for name in files if name != "big.png"]
    frames.append(frame("missing", "nowhere.png", {"car": RED}))
    frames.append(frame("wrong_size", "good.png", {"car": RED}, width=65))
    write_frames(tmp_path / "f.jsonl", frames)
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(tmp_path / "f.jsonl"), "--output", str(out), "--quiet") == 0
    status = dict(query(f"SELECT frame_id, status FROM {table(out, 'masks')}"))
    assert status == {"good": "ok", "empty": "mask_empty_file", "truncated": "mask_corrupt", "garbage": "mask_corrupt",
                      "sixteen": "mask_unsupported_mode", "missing": "mask_not_found", "wrong_size": "mask_size_mismatch"}
    valid = dict(query(f"SELECT frame_id, valid FROM {table(out, 'frames')}"))
    assert valid == {fid: fid == "good" for fid in status}
    write_frames(tmp_path / "big.jsonl", [frame("big", "big.png", {"car": RED})])
    assert run_cli("run", "--input", str(tmp_path / "big.jsonl"), "--output", str(out), "--quiet", "--max-mask-pixels", "1000") == 0
    assert query(f"SELECT status FROM {table(out, 'masks')}") == [("mask_too_large",)]


def test_palette_and_grayscale_masks(tmp_path):
    palette = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    buf = io.BytesIO()
    palette.save(buf, format="PNG")
    (tmp_path / "p.png").write_bytes(buf.getvalue())
    (tmp_path / "g.png").write_bytes(png_bytes(np.array([[9, 9], [200, 9]], np.uint8), mode="L"))
    write_frames(tmp_path / "f.jsonl", [
        frame("p", "p.png", {"car": RED, "road": GREEN}, 2, 2),
        frame("g", "g.png", {"thing": (9, 9, 9), "other": (200, 200, 200)}, 2, 2),
    ])
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(tmp_path / "f.jsonl"), "--output", str(out), "--quiet") == 0
    got = {(f, tuple(rgb)): n for f, rgb, n in query(f"SELECT frame_id, rgb, pixel_count FROM {table(out, 'label_stats')}")}
    assert got == {("p", RED): 2, ("p", GREEN): 1, ("g", (9, 9, 9)): 3, ("g", (200, 200, 200)): 1}
    assert dict(query(f"SELECT frame_id, mode FROM {table(out, 'masks')}")) == {"p": "P", "g": "L"}


def test_dataset_level_label_checks(tmp_path):
    (tmp_path / "m.png").write_bytes(png_bytes(blob_mask()))
    frames = [frame(f"f{i}", "m.png", {"car": RED, "road": GREEN}) for i in range(60)]
    frames.append(frame("odd", "m.png", {"car": GREEN, "bus": RED}))  # car in another colour; red means bus here
    write_frames(tmp_path / "f.jsonl", frames)
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(tmp_path / "f.jsonl"), "--output", str(out), "--quiet") == 0
    codes = {c for (c,) in query(f"SELECT code FROM {table(out, 'issues')} WHERE shard IS NULL")}
    assert {"label_multiple_colours", "colour_multiple_labels", "label_few_samples", "label_imbalance"} <= codes
    summary = {(tuple(labels), tuple(rgb)): tuple(rest) for labels, rgb, *rest in
               query(f"SELECT labels, rgb, frames_present, frames_declared, masks_present FROM {table(out, 'label_summary')}")}
    assert summary[(("car",), RED)] == (60, 60, 60) and summary[(("bus",), RED)] == (1, 1, 1)
    p50 = query(f"SELECT pixel_fraction_p50, pixel_fraction_min, pixel_fraction_max FROM {table(out, 'label_summary')} "
                f"WHERE labels = ['road'] AND rgb = [0, 255, 0]")[0]
    # Over all 61 decoded masks: the odd frame's mask does not declare road, so it counts as 0 there.
    assert p50[0] == pytest.approx(15 * 57 / (64 * 48), abs=1e-3) and p50[0] == p50[2] and p50[1] == 0.0
