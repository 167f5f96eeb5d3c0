"""The bundled sample dataset written by ``framebeam sample DIR``: deterministic, offline, numpy + Pillow only.

Forty frames of a made-up street-camera drive in every shard form framebeam reads, colour-coded masks
(RGB, palette, grayscale), both ROI join conventions, a version-level ``mask_labels.json``, and a few
deliberate problems. ``write_sample`` returns a manifest saying what was written and which findings a
run with ``--mask-labels DIR/mask_labels.json`` must report, and where.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from PIL import Image

WIDTH, HEIGHT = 160, 120
START_MS = 1710489600000  # 2024-03-15T08:00:00Z
FRAMES_PER_SEQUENCE = 8
FRAME_INTERVAL_MS = 100  # 10 fps

# Class -> mask colour (Cityscapes-like). Every scene mask pixel is one of these.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "sky": (70, 130, 180),
    "building": (70, 70, 70),
    "sidewalk": (244, 35, 232),
    "road": (128, 64, 128),
    "car": (0, 0, 142),
    "person": (220, 20, 60),
}
BICYCLE = (119, 11, 32)  # declared on one frame, drawn on none: mask_colour_absent
VOID = (0, 0, 0)  # drawn on one mask, declared by nobody: mask_undeclared_pixels
# The grayscale lane mask: value v means colour (v, v, v).
LANE_GRAY_LEVELS: dict[str, int] = {"drivable": 30, "curb": 90, "lane_marking": 200}

# Which frame (by index, 0..38) carries which deliberate problem or special form.
UNJOINED_ROI_FRAME = 3
DUPLICATED_FRAME = 2  # written again, identical, into frames-0001.jsonl.gz
COLOUR_ABSENT_FRAME = 7
UNDECLARED_PIXELS_FRAME = 15
MISSING_MASK_FRAME = 18
PALETTE_MASK_FRAME = 20
GRAYSCALE_MASK_FRAME = 21
SEED_RULE_FRAMES = (23, 24, 25)
MASK_LABELS_TABLE_FRAMES = (26, 27, 28, 29)
SIZE_MISMATCH_FRAME = 31
FRAME_GROUP_FRAME = 35
DEFAULT_MIN_LABEL_FRAMES = 5  # label_few_samples below this; framebeam's --min-label-frames default

SHARD_FRAMES: dict[str, range] = {
    "frames-0000.jsonl": range(0, 12),
    "frames-0001.jsonl.gz": range(12, 23),  # plus the duplicate of frame 2
    "frames-0002.ndjson.zst": range(23, 33),
    "frames-export.json": range(33, 38),
    "frames-single.json": range(38, 39),
}
MALFORMED_LINE = '{"id":"4b1d5a0c9e2f4f7a8c3b6d1e0f2a9b7c","timestamp":1710489600400,"sources":[{"id":"front","uri":"images/fro'
NOT_AN_OBJECT_LINE = '["images/front-000009.jpg","masks/scene-0009.png"]'
DATASET = {"id": "5e0d7c1b2a3f4e6d8c9b0a1f2e3d4c5b", "version": "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"}

README = """framebeam sample dataset
========================

{frames} frames ({unique} distinct ids) in {records} records across {shards} shards, and {masks} mask PNGs.

  frames-0000.jsonl         JSON Lines, CRLF line endings, one blank line, one malformed line,
                            one record that is an array instead of an object
  frames-0001.jsonl.gz      gzip JSON Lines; repeats one frame id from frames-0000.jsonl
  frames-0002.ndjson.zst    zstandard JSON Lines; seed Example-1 join shape; frames whose ROIs carry
                            no mask (their colours come from mask_labels.json)
  frames-export.json        a JSON array, like the ClearML WebApp's "export frames"
  frames-single.json        one frame object
  mask_labels.json          version-level colour -> labels table ({{"_all_": [...]}})
  masks/                    colour-coded RGB PNGs, one palette PNG, one grayscale PNG

Mask URIs are relative ("masks/scene-0001.png"): framebeam resolves them against the folder of the
shard holding the frame. Source image URIs ("images/...") are not included: framebeam reads masks only.

Run (DIR is the folder holding this file):
  framebeam run --input 'DIR/frames-*' --mask-labels DIR/mask_labels.json --output DIR-out

Deliberate problems (a correct run reports each one):
{problems}
"""


def _frame_id(index: int) -> str:
    return hashlib.md5(f"framebeam-sample-frame-{index}".encode()).hexdigest()


def draw_scene(index: int) -> np.ndarray:
    """A 160x120 road scene that drifts with ``index``: sky, skyline, sidewalk, road, cars, a pedestrian."""
    mask = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask[:] = CLASS_COLOURS["sky"]
    for block in range(8):  # skyline: eight buildings whose heights shift along the sequence
        top = 15 + (block * 7 + index * 3) % 22
        mask[top:68, block * 20:(block + 1) * 20] = CLASS_COLOURS["building"]
    mask[68:78] = CLASS_COLOURS["sidewalk"]
    mask[78:] = CLASS_COLOURS["road"]
    car_x = (6 + 9 * index) % 110
    mask[84:104, car_x:car_x + 40] = CLASS_COLOURS["car"]
    if index % 2 == 0:  # an oncoming car on every other frame
        mask[80:92, 120 - car_x // 2:140 - car_x // 2] = CLASS_COLOURS["car"]
    if index % 3 == 0 or index in MASK_LABELS_TABLE_FRAMES:
        person_x = 150 - (5 * index) % 140
        mask[50:80, person_x:person_x + 6] = CLASS_COLOURS["person"]
    return mask


def draw_lanes(index: int) -> np.ndarray:
    """A 160x120 grayscale lane mask: drivable area, curbs and dashed lane markings."""
    lanes = np.full((HEIGHT, WIDTH), LANE_GRAY_LEVELS["drivable"], dtype=np.uint8)
    lanes[:, :12] = lanes[:, -12:] = LANE_GRAY_LEVELS["curb"]
    for dash_top in range((index * 4) % 20, HEIGHT, 20):
        lanes[dash_top:dash_top + 10, 78:82] = LANE_GRAY_LEVELS["lane_marking"]
    return lanes


def colours_in(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """The distinct colours of an RGB mask, sorted (deterministic ROI order)."""
    # One uint32 per pixel: np.unique on those is ~40x faster than np.unique(axis=0) on rows.
    packed = np.unique((mask[..., 0].astype(np.uint32) << 16) | (mask[..., 1].astype(np.uint32) << 8) | mask[..., 2])
    return [(int(v >> 16), int((v >> 8) & 255), int(v & 255)) for v in packed]


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _palette_image(mask: np.ndarray) -> Image.Image:
    """The same pixels as a palette-mode ('P') PNG whose palette is the class table."""
    palette_colours = list(CLASS_COLOURS.values())
    indices = np.zeros(mask.shape[:2], dtype=np.uint8)
    for position, colour in enumerate(palette_colours):
        indices[np.all(mask == colour, axis=-1)] = position
    image = Image.fromarray(indices, mode="P")
    image.putpalette([channel for colour in palette_colours for channel in colour])
    return image


def _class_of(colour: tuple[int, int, int]) -> str:
    return next(name for name, value in CLASS_COLOURS.items() if value == colour)


def _mask_roi(label: str, colour: tuple[int, int, int], mask_id: str, source_id: str = "front") -> dict:
    return {"label": [label], "sources": [source_id], "meta": {"_type": "mask"},
            "mask": {"id": mask_id, "value": list(colour)}}


def _box_rois(mask: np.ndarray, source_id: str = "front") -> list[dict]:
    """One b2d ROI (a 4-corner poly, as the SDK writes boxes) around the car pixels."""
    rows, columns = np.nonzero(np.all(mask == CLASS_COLOURS["car"], axis=-1))
    if rows.size == 0:
        return []
    x0, y0, x1, y1 = float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1)
    return [{"label": ["car"], "sources": [source_id], "confidence": 0.93, "meta": {"_type": "b2d"},
             "poly": [x0, y0, x1, y0, x1, y1, x0, y1]}]


def _source(index: int, source_id: str, masks: list[dict]) -> dict:
    return {"id": source_id, "uri": f"images/{source_id}-{index:06d}.jpg", "content_type": "image/jpeg",
            "width": WIDTH, "height": HEIGHT, "timestamp": 0, "meta": {"camera": source_id}, "masks": masks}


def _mask_entry(mask_id: str, uri: str, content_type: bool = True) -> dict:
    entry = {"id": mask_id, "uri": uri, "width": WIDTH, "height": HEIGHT, "timestamp": 0}
    if content_type:  # the SDK writes none; readers infer it from the URI
        entry["content_type"] = "image/png"
    return entry


class _SampleWriter:
    """Builds frames and mask files in memory; ``write`` puts them on disk."""

    def __init__(self) -> None:
        self.mask_files: dict[str, bytes] = {}  # relative path -> PNG bytes
        self.findings: dict[str, list[dict]] = {}
        self.findings_without_mask_labels: dict[str, list[dict]] = {}

    def _expect(self, code: str, frame_index: int, path: str, mask_uri: str | None = None, **detail: Any) -> None:
        self.findings.setdefault(code, []).append(
            {"frame_id": _frame_id(frame_index), "path": path, "mask_uri": mask_uri, **detail})

    def frame(self, index: int) -> dict:
        sequence, position = divmod(index, FRAMES_PER_SEQUENCE)
        frame: dict[str, Any] = {
            "id": _frame_id(index),
            "timestamp": START_MS + sequence * 3_600_000 + position * FRAME_INTERVAL_MS,
            "context_id": f"drive-2024-03-15-seq{sequence:02d}",
            "meta": {"weather": ("sunny", "overcast", "rain")[sequence % 3], "city": "Haifa",
                     "frame_number": position, "annotator": f"team-{1 + index % 2}"},
        }
        scene = draw_scene(index)
        mask_uri = f"masks/scene-{index:04d}.png"
        if index == FRAME_GROUP_FRAME:
            return self._frame_group(frame, index, scene)
        if index == UNDECLARED_PIXELS_FRAME:
            scene = scene.copy()
            scene[67:69] = VOID  # an anti-aliasing seam nobody declared
            self._expect("mask_undeclared_pixels", index, "/sources/0/masks/0", mask_uri, colours=[list(VOID)])
        declared = [c for c in colours_in(scene) if c != VOID]
        masks = [_mask_entry("00", mask_uri, content_type=index % 4 != 1)]
        rois = [_mask_roi(_class_of(c), c, "00") for c in declared] + _box_rois(scene)

        if index == PALETTE_MASK_FRAME:
            mask_uri = masks[0]["uri"] = f"masks/palette-{index:04d}.png"
            self.mask_files[mask_uri] = _png_bytes(_palette_image(scene))
        elif index == MISSING_MASK_FRAME:
            self._expect("mask_not_found", index, "/sources/0/masks/0", mask_uri)
        elif index == SIZE_MISMATCH_FRAME:
            small = Image.fromarray(scene, mode="RGB").resize((WIDTH // 2, HEIGHT // 2), Image.Resampling.NEAREST)
            self.mask_files[mask_uri] = _png_bytes(small)
            self._expect("mask_size_mismatch", index, "/sources/0/masks/0", mask_uri,
                         declared=[WIDTH, HEIGHT], actual=[WIDTH // 2, HEIGHT // 2])
        else:
            self.mask_files[mask_uri] = _png_bytes(Image.fromarray(scene, mode="RGB"))

        if index == GRAYSCALE_MASK_FRAME:
            lanes_uri = f"masks/lanes-{index:04d}.png"
            self.mask_files[lanes_uri] = _png_bytes(Image.fromarray(draw_lanes(index), mode="L"))
            masks.append(_mask_entry("01", lanes_uri))
            rois += [_mask_roi(label, (level,) * 3, "01") for label, level in LANE_GRAY_LEVELS.items()]
        if index in SEED_RULE_FRAMES:  # the seed's Example 1: label names the mask, mask.id the class
            masks[0]["id"] = "seg"
            rois = [{"sources": ["front"], "label": ["seg"], "mask": {"id": _class_of(c), "value": list(c)}}
                    for c in declared]
            # One finding per frame at its first such ROI; "rois" lists them all.
            self._expect("seed_join_rule", index, "/rois/0", mask_uri, rois=[f"/rois/{i}" for i in range(len(rois))])
        if index in MASK_LABELS_TABLE_FRAMES:  # colours come from mask_labels.json only
            rois = _box_rois(scene)
            self.findings_without_mask_labels.setdefault("mask_without_labels", []).append(
                {"frame_id": _frame_id(index), "path": "/sources/0/masks/0", "mask_uri": mask_uri})
        if index == UNJOINED_ROI_FRAME:
            rois.append(_mask_roi("car", CLASS_COLOURS["car"], "01"))  # the source has no mask "01"
            self._expect("roi_mask_unjoined", index, f"/rois/{len(rois) - 1}/mask/id")
        if index == COLOUR_ABSENT_FRAME:
            rois.append(_mask_roi("bicycle", BICYCLE, "00"))
            self._expect("mask_colour_absent", index, "/sources/0/masks/0", mask_uri, colours=[list(BICYCLE)])

        frame["sources"] = [_source(index, "front", masks)]
        frame["rois"] = rois
        return frame

    def _frame_group(self, frame: dict, index: int, front_scene: np.ndarray) -> dict:
        """Two cameras in one frame; mask ids differ ("00", "01") so they are unique in the frame too."""
        rear_scene = draw_scene(index + 100)
        sources, rois = [], []
        for source_id, mask_id, scene in (("front", "00", front_scene), ("rear", "01", rear_scene)):
            uri = f"masks/scene-{index:04d}-{source_id}.png"
            self.mask_files[uri] = _png_bytes(Image.fromarray(scene, mode="RGB"))
            sources.append(_source(index, source_id, [_mask_entry(mask_id, uri)]))
            rois += [_mask_roi(_class_of(c), c, mask_id, source_id) for c in colours_in(scene)]
            rois += _box_rois(scene, source_id)
        frame["meta"]["rig"] = "front+rear"
        frame["sources"], frame["rois"] = sources, rois
        return frame


def _exported(frame: dict, index: int) -> dict:
    """A frame as the WebApp exports it: with its dataset and the server's bookkeeping fields."""
    saved = START_MS + 86_400_000 + index * 1000
    return {**frame, "dataset": DATASET, "saved": saved, "updated": saved,
            "saved_in_version": DATASET["version"], "updated_in_version": DATASET["version"]}


def _jsonl(lines: list[str], newline: str) -> bytes:
    return "".join(line + newline for line in lines).encode("utf-8")


def write_sample(directory: str) -> dict:
    """Write the sample dataset into ``directory`` (created if needed) and return its manifest.

    The manifest holds counts (frames, records, shards, masks), per-shard counts, how many frames
    declare each label, and ``expected_findings``: code -> list of {shard, record, line, frame_id,
    path, mask_uri, ...}, one entry per issues row a run with ``--mask-labels DIR/mask_labels.json``
    (and the default ``--min-label-frames 5``) must report.
    Two calls write byte-identical files.
    """
    root = Path(directory)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    writer = _SampleWriter()
    mask_labels = {"_all_": [{"value": list(colour), "labels": [name]} for name, colour in CLASS_COLOURS.items()]}
    frames = {index: writer.frame(index) for shard in SHARD_FRAMES.values() for index in shard}

    # Records per shard, in order: (kind, payload) with kind "frame" or "raw" (a line written as-is).
    shard_records: dict[str, list[tuple[str, Any]]] = {name: [] for name in SHARD_FRAMES}
    for name, indices in SHARD_FRAMES.items():
        for index in indices:
            frame = _exported(frames[index], index) if name == "frames-export.json" else frames[index]
            shard_records[name].append(("frame", frame))
            if name == "frames-0000.jsonl" and index == 4:
                shard_records[name].append(("raw", MALFORMED_LINE))
            if name == "frames-0000.jsonl" and index == 8:
                shard_records[name].append(("raw", NOT_AN_OBJECT_LINE))
    shard_records["frames-0001.jsonl.gz"].insert(5, ("frame", frames[DUPLICATED_FRAME]))

    # Line numbers (1-based, physical) for the JSON Lines shards; frames-0000 has a blank line after record 7.
    blank_after_record = 7
    locations: dict[str, list[dict]] = {}  # frame id -> where it occurs
    shard_bytes: dict[str, bytes] = {}
    for name, records in shard_records.items():
        is_jsonl = "jsonl" in name or "ndjson" in name
        lines: list[str] = []
        for record_index, (kind, payload) in enumerate(records):
            if name == "frames-0000.jsonl" and record_index == blank_after_record + 1:
                lines.append("")
            line = payload if kind == "raw" else json.dumps(payload, separators=(",", ":"))
            lines.append(line)
            where = {"shard": name, "record": record_index, "line": len(lines) if is_jsonl else None}
            if kind == "frame":
                locations.setdefault(payload["id"], []).append(where)
            elif payload == MALFORMED_LINE:
                writer.findings.setdefault("json_invalid", []).append({**where, "frame_id": None, "path": ""})
            else:
                writer.findings.setdefault("record_not_object", []).append({**where, "frame_id": None, "path": ""})
        if name == "frames-0000.jsonl":
            shard_bytes[name] = _jsonl(lines, "\r\n")
        elif name == "frames-0001.jsonl.gz":
            compressed = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as stream:  # mtime=0: reproducible
                stream.write(_jsonl(lines, "\n"))
            shard_bytes[name] = compressed.getvalue()
        elif name == "frames-0002.ndjson.zst":
            shard_bytes[name] = zstandard.ZstdCompressor(level=3).compress(_jsonl(lines, "\n"))
        elif name == "frames-export.json":
            shard_bytes[name] = (json.dumps([p for _, p in records], indent=2) + "\n").encode("utf-8")
        else:
            [(_, single)] = records
            shard_bytes[name] = (json.dumps(single, indent=2) + "\n").encode("utf-8")

    # Where every frame-level finding sits: add shard/record/line of the frame (the first copy).
    for code, entries in (*writer.findings.items(), *writer.findings_without_mask_labels.items()):
        for entry in entries:
            if entry.get("frame_id") and "shard" not in entry:
                entry.update(locations[entry["frame_id"]][0])
    duplicated = _frame_id(DUPLICATED_FRAME)
    # One finding per occurrence, so each copy can be found from its own issues row.
    writer.findings["duplicate_frame_id"] = [{"frame_id": duplicated, "path": "/id", **where} for where in locations[duplicated]]
    label_counts = _label_frame_counts(frames.values(), mask_labels)
    writer.findings["label_few_samples"] = [
        {"frame_id": None, "path": "", "label": label, "frames": count}
        for label, count in label_counts.items() if count < DEFAULT_MIN_LABEL_FRAMES]

    for name, content in shard_bytes.items():
        (root / name).write_bytes(content)
    for relative, content in writer.mask_files.items():
        (root / relative).write_bytes(content)
    (root / "mask_labels.json").write_text(json.dumps(mask_labels, indent=2) + "\n", encoding="utf-8")

    frame_count = sum(kind == "frame" for records in shard_records.values() for kind, _ in records)
    record_count = sum(len(records) for records in shard_records.values())
    manifest = {
        "directory": str(root),
        "frames": frame_count,
        "unique_frame_ids": len(frames),
        "records": record_count,
        "shards": len(shard_records),
        "shard_files": {name: {"records": len(records), "frames": sum(k == "frame" for k, _ in records)}
                        for name, records in shard_records.items()},
        "masks": len(writer.mask_files),
        # One per mask entry of every frame record (the duplicated frame counts twice, as in the masks table).
        "mask_references": sum(len(s.get("masks", [])) for records in shard_records.values()
                               for kind, f in records if kind == "frame" for s in f["sources"]),
        "label_frame_counts": label_counts,
        "min_label_frames": DEFAULT_MIN_LABEL_FRAMES,
        "expected_findings": {code: writer.findings[code] for code in sorted(writer.findings)},
        "expected_findings_without_mask_labels": writer.findings_without_mask_labels,
    }
    problems = "\n".join(f"  {code}: {len(entries)}" for code, entries in manifest["expected_findings"].items())
    (root / "README.txt").write_text(README.format(
        frames=frame_count, unique=len(frames), records=record_count, shards=len(shard_records),
        masks=len(writer.mask_files), problems=problems), encoding="utf-8")
    return manifest


def _label_frame_counts(frames: Any, mask_labels: dict) -> dict[str, int]:
    """In how many distinct frames each class label is declared (by an ROI's mask or the table)."""
    table_labels = {label for entry in mask_labels["_all_"] for label in entry["labels"]}
    frames_per_label: dict[str, set[str]] = {}
    for frame in frames:
        labels: set[str] = set()
        for roi in frame["rois"]:
            if "mask" in roi:
                seed_shape = roi["label"] == ["seg"]
                labels |= {roi["mask"]["id"]} if seed_shape else set(roi["label"])
        if not any("mask" in roi for roi in frame["rois"]):
            labels |= table_labels
        for label in labels:
            frames_per_label.setdefault(label, set()).add(frame["id"])
    return {label: len(ids) for label, ids in sorted(frames_per_label.items())}
