"""The bundled sample dataset: every file readable with plain tools, deterministic, and honest about its problems.

These tests read the sample with the standard library (plus ``zstandard`` for .zst) and Pillow, never
with framebeam's own reader, so they check the sample and its manifest independently of it.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from PIL import Image

from transforms.sample import write_sample

JSON_LINES_SHARDS = ("frames-0000.jsonl", "frames-0001.jsonl.gz", "frames-0002.ndjson.zst")
JSON_DOCUMENT_SHARDS = ("frames-export.json", "frames-single.json")
MASK_FILE_FINDINGS = ("mask_colour_absent", "mask_undeclared_pixels", "mask_not_found", "mask_size_mismatch")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("sample")
    return directory, write_sample(str(directory))


def shard_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().decompress(raw)
    return raw.decode("utf-8")


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every record: shard, record index, 1-based line (JSON Lines only), and the value or the parse error."""
    records: list[dict[str, Any]] = []
    for name in JSON_LINES_SHARDS:
        record_index = 0
        for line_number, line in enumerate(shard_text(directory / name).split("\n"), start=1):
            if not line.strip():
                continue
            try:
                value: Any = json.loads(line)
            except json.JSONDecodeError as error:
                value = error
            records.append({"shard": name, "record": record_index, "line": line_number, "value": value})
            record_index += 1
    for name in JSON_DOCUMENT_SHARDS:
        document = json.loads(shard_text(directory / name))
        values = document if isinstance(document, list) else [document]
        records += [{"shard": name, "record": i, "line": None, "value": v} for i, v in enumerate(values)]
    return records


def frames_of(directory: Path) -> list[dict]:
    return [r["value"] for r in read_records(directory) if isinstance(r["value"], dict)]


def decode_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))  # P via its palette, L as (v, v, v)


def colours_of(pixels: np.ndarray) -> set[tuple[int, int, int]]:
    packed = np.unique((pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) | pixels[..., 2])
    return {(int(v >> 16), int((v >> 8) & 255), int(v & 255)) for v in packed}


def mask_ids_of(frame: dict, source_ids: list[str]) -> set[str]:
    return {m["id"] for s in frame["sources"] if s["id"] in source_ids for m in s.get("masks", [])}


def join_rule(frame: dict, roi: dict) -> str | None:
    """'schema' (mask.id is a mask of the ROI's sources), 'seed' (the label names that mask), or None."""
    ids = mask_ids_of(frame, roi["sources"])
    if roi["mask"]["id"] in ids:
        return "schema"
    if len(roi["label"]) == 1 and roi["label"][0] in ids:
        return "seed"
    return None


def declared_colours(frame: dict, source: dict, mask: dict, table: dict) -> set[tuple[int, int, int]]:
    colours = set()
    for roi in frame["rois"]:
        if "mask" not in roi or source["id"] not in roi["sources"]:
            continue
        rule = join_rule(frame, roi)
        if (rule == "schema" and roi["mask"]["id"] == mask["id"]) or (rule == "seed" and roi["label"] == [mask["id"]]):
            colours.add(tuple(roi["mask"]["value"]))
    if not any("mask" in roi for roi in frame["rois"]):  # no ROI carries a mask: the version table applies
        colours = {tuple(entry["value"]) for entry in table["_all_"]}
    return colours


def findings_by_mask_uri(manifest: dict, code: str) -> dict[str, dict]:
    return {entry["mask_uri"]: entry for entry in manifest["expected_findings"].get(code, [])}


def test_all_files_exist_and_the_manifest_counts_them(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    for name in (*JSON_LINES_SHARDS, *JSON_DOCUMENT_SHARDS, "mask_labels.json", "README.txt"):
        assert (directory / name).is_file(), name
    assert len(list((directory / "masks").glob("*.png"))) == manifest["masks"]
    assert manifest["shards"] == len(manifest["shard_files"]) == 5
    assert 35 <= manifest["frames"] <= 45
    assert "framebeam run --input 'DIR/frames-*'" in (directory / "README.txt").read_text()


def test_every_shard_form_reads_with_plain_tools_and_matches_the_manifest(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    records = read_records(directory)
    for name, counts in manifest["shard_files"].items():
        in_shard = [r for r in records if r["shard"] == name]
        assert len(in_shard) == counts["records"], name
        assert sum(isinstance(r["value"], dict) for r in in_shard) == counts["frames"], name
    assert len(records) == manifest["records"]
    assert len(frames_of(directory)) == manifest["frames"]
    assert len(json.loads((directory / "frames-export.json").read_text())) == 5
    assert isinstance(json.loads((directory / "frames-single.json").read_text()), dict)


def test_the_plain_json_lines_shard_has_crlf_endings_and_a_blank_line(sample: tuple[Path, dict]) -> None:
    directory, _ = sample
    raw = (directory / "frames-0000.jsonl").read_bytes()
    lines = raw.split(b"\r\n")
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"" in lines[:-1]  # a blank line between records


def test_two_calls_write_byte_identical_files(sample: tuple[Path, dict], tmp_path: Path) -> None:
    directory, manifest = sample
    again = write_sample(str(tmp_path / "again"))
    first = {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
    second = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in sorted((tmp_path / "again").rglob("*")) if p.is_file()}
    assert first.keys() == second.keys()
    assert [path for path in first if first[path] != second[path]] == []
    assert {k: v for k, v in again.items() if k != "directory"} == {k: v for k, v in manifest.items() if k != "directory"}


def test_the_broken_records_are_where_the_manifest_says(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    records = read_records(directory)
    not_json = [(r["shard"], r["line"]) for r in records if isinstance(r["value"], json.JSONDecodeError)]
    not_objects = [(r["shard"], r["line"]) for r in records if not isinstance(r["value"], (dict, json.JSONDecodeError))]
    expected = manifest["expected_findings"]
    assert not_json == [(e["shard"], e["line"]) for e in expected["json_invalid"]]
    assert not_objects == [(e["shard"], e["line"]) for e in expected["record_not_object"]]


def test_the_duplicate_frame_id_is_the_only_one(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    seen: dict[str, list[tuple[str, int]]] = {}
    for r in read_records(directory):
        if isinstance(r["value"], dict):
            seen.setdefault(r["value"]["id"], []).append((r["shard"], r["record"]))
    duplicates = {frame_id: where for frame_id, where in seen.items() if len(where) > 1}
    expected = manifest["expected_findings"]["duplicate_frame_id"]
    assert duplicates == {expected[0]["frame_id"]: [(e["shard"], e["record"]) for e in expected]}
    assert len(seen) == manifest["unique_frame_ids"]


def test_frames_look_like_clearml_frames(sample: tuple[Path, dict]) -> None:
    directory, _ = sample
    for frame in frames_of(directory):
        assert len(frame["id"]) == 32 and int(frame["id"], 16) >= 0
        assert type(frame["timestamp"]) is int and isinstance(frame["context_id"], str) and frame["meta"]
        for source in frame["sources"]:
            for mask in source["masks"]:
                assert not Path(mask["uri"]).is_absolute() and mask["uri"].startswith("masks/")
        for roi in frame["rois"]:
            assert all(isinstance(label, str) for label in roi["label"]) and roi["sources"]
    assert any(len(frame["sources"]) > 1 for frame in frames_of(directory))  # a FrameGroup


def test_both_join_conventions_and_the_unjoined_roi_match_the_manifest(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    by_rule: dict[str | None, set[tuple[str, str]]] = {"schema": set(), "seed": set(), None: set()}
    for frame in {f["id"]: f for f in frames_of(directory)}.values():
        for index, roi in enumerate(frame["rois"]):
            if "mask" in roi:
                by_rule[join_rule(frame, roi)].add((frame["id"], f"/rois/{index}"))
    expected = manifest["expected_findings"]
    assert by_rule["seed"] == {(e["frame_id"], path) for e in expected["seed_join_rule"] for path in e["rois"]}
    assert {(f, p + "/mask/id") for f, p in by_rule[None]} == {(e["frame_id"], e["path"]) for e in expected["roi_mask_unjoined"]}
    assert len(by_rule["schema"]) > 5 * len(by_rule["seed"])  # most frames join the schema way


def test_masks_hold_exactly_the_declared_colours_except_the_deliberate_problems(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    table = json.loads((directory / "mask_labels.json").read_text())
    problems = {code: findings_by_mask_uri(manifest, code) for code in MASK_FILE_FINDINGS}
    modes_seen: set[str] = set()
    checked = 0
    for frame in frames_of(directory):  # the duplicated frame twice, like the masks table
        for source in frame["sources"]:
            for mask in source["masks"]:
                uri, path = mask["uri"], directory / mask["uri"]
                declared = declared_colours(frame, source, mask, table)
                assert declared, (frame["id"], uri)
                if uri in problems["mask_not_found"]:
                    assert not path.exists()
                    continue
                with Image.open(path) as image:
                    modes_seen.add(image.mode)
                    size = image.size
                drawn = colours_of(decode_rgb(path))
                if uri in problems["mask_size_mismatch"]:
                    assert list(size) == problems["mask_size_mismatch"][uri]["actual"] != [mask["width"], mask["height"]]
                else:
                    assert size == (mask["width"], mask["height"]) == (source["width"], source["height"])
                absent = {tuple(c) for c in problems["mask_colour_absent"].get(uri, {}).get("colours", [])}
                undeclared = {tuple(c) for c in problems["mask_undeclared_pixels"].get(uri, {}).get("colours", [])}
                assert declared - drawn == absent, (frame["id"], uri)
                assert drawn - declared == undeclared, (frame["id"], uri)
                checked += 1
    assert checked == manifest["mask_references"] - len(problems["mask_not_found"])
    few = {label for label, count in manifest["label_frame_counts"].items() if count < manifest["min_label_frames"]}
    assert few == {e["label"] for e in manifest["expected_findings"]["label_few_samples"]}
    assert {"RGB", "P", "L"} <= modes_seen


def test_frames_without_mask_rois_are_covered_by_the_table(sample: tuple[Path, dict]) -> None:
    directory, manifest = sample
    without_mask_rois = {f["id"] for f in frames_of(directory) if not any("mask" in roi for roi in f["rois"])}
    expected = {e["frame_id"] for e in manifest["expected_findings_without_mask_labels"]["mask_without_labels"]}
    assert without_mask_rois == expected and len(expected) >= 3
