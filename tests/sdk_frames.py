"""Frames built by the real ``clearml`` SDK (Hyper-Datasets), serialized exactly as it sends them.

How the SDK (clearml 2.1.12, read from ``clearml/hyperdatasets/data_entry*.py``) writes a frame:

- ``DataEntryImage(data_entry_id, metadata).to_api_object()`` returns a plain dict. Saving wraps a list
  of those in ``datasets.SaveFramesRequest(version=..., frames=[...])``; its ``to_dict()`` is the JSON
  body that goes to the server. We return exactly that body's frames. The request's data models fill
  schema defaults: ``timestamp: 0`` on every source and every mask that had none.
- Frame keys: ``id`` (str; ``uuid4().hex`` unless given), ``meta`` (dict), ``sources`` (list),
  ``rois`` (list, only if any), ``context_id`` (str, only if a sub-entry had one: the first one wins).
  No frame-level ``timestamp``: the server fills it from the first source.
- ``meta`` holds the user's metadata plus ``_clearml_data_entry_class: "DataEntryImage"`` and, for each
  source, ``meta[<source id>] = {...sub-entry metadata, "_clearml_data_sub_entry_class": "DataSubEntryImage"}``.
  So frame meta has nested dicts keyed by source ids.
- Source (one per ``DataSubEntryImage``): ``id`` (the sub-entry name, default ``"image_entry_0"``),
  ``uri``, ``preview: {uri}`` (only if given), ``width``/``height`` (ints, only if given), ``timestamp``
  (int), ``masks``. The SDK writes no ``content_type`` on sources or masks.
- Masks: ``[{"id": "00", "uri": ..., "timestamp": 0}, {"id": "01", ...}]`` -- ids are numbered per
  SOURCE, so a multi-source frame with a mask on each source has mask id ``"00"`` twice in one frame
  (the schema's "unique ID (in this frame)" is not what the SDK produces).
- ROI from ``add_annotation(...)``: ``label`` (list of str, only if ``labels`` given), ``confidence``
  (float), ``meta: {"_type": "mask" | "b2d" | "p2d" | "k2d" | "elp" | ..., "_id": <id if given>}``,
  ``poly`` (flat list of floats), ``sources: [<this source id>]``, and for ``mask_rgb=[r, g, b]``:
  ``mask: {"id": "00", "value": [r, g, b]}`` -- always ``"00"``: an ROI for mask ``"01"`` cannot be made
  through ``add_annotation``. ROIs have no ``id`` key (the given id goes to ``meta._id``).
  ``box2d_xywh=[x, y, w, h]`` becomes a 4-corner poly ``[x, y, x+w, y, x+w, y+h, x, y+h]``.
  ``DataEntryImage.add_global_annotation`` adds one ROI per source (each naming only its own source).

Offline: nothing here needs a server. ``CLEARML_OFFLINE_MODE=1`` keeps the SDK from looking for one.
We use the versioned ``clearml.backend_api.services.v2_23.datasets`` module directly: offline, the
SDK's version proxy (``clearml.backend_api.services.datasets``) settles on API 2.9, which has no
``datasets`` service, and the SDK's ``_SaveFramesRequestNoValidate`` then degrades to ``object``
("takes no arguments").
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

MASK_WIDTH, MASK_HEIGHT = 32, 24

# Colours of the small SDK masks: label -> RGB.
ROAD = (128, 64, 128)
CAR = (64, 0, 128)
SKY = (70, 130, 180)
PERSON = (220, 20, 60)
INSTANCE_1 = (1, 1, 1)
INSTANCE_2 = (2, 2, 2)


def _write_mask(path: Path, bands: list[tuple[tuple[int, int, int], slice, slice]]) -> str:
    """Fill a 32x24 RGB mask with rectangles (colour, rows, columns), later ones on top; return its path."""
    pixels = np.zeros((MASK_HEIGHT, MASK_WIDTH, 3), dtype=np.uint8)
    for colour, rows, columns in bands:
        pixels[rows, columns] = colour
    Image.fromarray(pixels, mode="RGB").save(path)
    return str(path.resolve())


def _write_photo(path: Path, seed: int) -> str:
    """A stand-in source image (a gradient); framebeam never decodes sources, but the URI must exist."""
    ramp = np.arange(MASK_WIDTH, dtype=np.uint8)[None, :] * 8 + seed
    pixels = np.stack([np.broadcast_to(ramp, (MASK_HEIGHT, MASK_WIDTH))] * 3, axis=-1).astype(np.uint8)
    Image.fromarray(pixels, mode="RGB").save(path)
    return str(path.resolve())


def write_sdk_masks(mask_dir: Path) -> dict[str, str]:
    """Write the PNGs the SDK frames point at; return name -> absolute path."""
    mask_dir.mkdir(parents=True, exist_ok=True)
    everything = slice(None)
    return {
        "street": _write_mask(mask_dir / "street.png", [
            (SKY, slice(0, 8), everything),
            (ROAD, slice(8, 24), everything),
            (CAR, slice(12, 20), slice(4, 14)),
        ]),
        "front": _write_mask(mask_dir / "front.png", [
            (ROAD, everything, everything),
            (PERSON, slice(6, 18), slice(20, 24)),
        ]),
        "rear": _write_mask(mask_dir / "rear.png", [
            (ROAD, everything, everything),
            (CAR, slice(10, 20), slice(8, 24)),
        ]),
        "semantic": _write_mask(mask_dir / "semantic.png", [
            (ROAD, everything, everything),
            (CAR, slice(4, 12), slice(2, 10)),
            (CAR, slice(14, 22), slice(18, 28)),
        ]),
        "instance": _write_mask(mask_dir / "instance.png", [
            (INSTANCE_1, slice(4, 12), slice(2, 10)),
            (INSTANCE_2, slice(14, 22), slice(18, 28)),
        ]),
        "photo_front": _write_photo(mask_dir / "photo_front.png", 0),
        "photo_rear": _write_photo(mask_dir / "photo_rear.png", 3),
    }


def _build_entries(paths: dict[str, str]) -> list[Any]:
    """The five frames, built only through the SDK's public classes."""
    from clearml.hyperdatasets import DataEntryImage, DataSubEntryImage

    # 1. One source (the SDK's default name), one mask, three colours.
    street = DataEntryImage(data_entry_id="sdk-single-mask", metadata={"weather": "rain", "city": "Haifa"})
    street_source = DataSubEntryImage(
        source=paths["photo_front"], width=MASK_WIDTH, height=MASK_HEIGHT,
        context_id="drive-0001", masks_source=[paths["street"]],
    )
    for label, colour in (("sky", SKY), ("road", ROAD), ("car", CAR)):
        street_source.add_annotation(mask_rgb=list(colour), labels=[label])
    street.add_sub_entries([street_source])

    # 2. A FrameGroup: two sources, a mask on each (both numbered "00"), one box on every source.
    group = DataEntryImage(data_entry_id="sdk-frame-group", metadata={"rig": "dual-cam"})
    front = DataSubEntryImage(
        name="front", source=paths["photo_front"], width=MASK_WIDTH, height=MASK_HEIGHT,
        timestamp=0, context_id="drive-0002", masks_source=[paths["front"]], metadata={"fov": 120},
    )
    rear = DataSubEntryImage(
        name="rear", source=paths["photo_rear"], width=MASK_WIDTH, height=MASK_HEIGHT,
        timestamp=0, context_id="drive-0002", masks_source=[paths["rear"]], metadata={"fov": 90},
    )
    front.add_annotation(mask_rgb=list(ROAD), labels=["road"])
    front.add_annotation(mask_rgb=list(PERSON), labels=["person"])
    rear.add_annotation(mask_rgb=list(ROAD), labels=["road"])
    rear.add_annotation(mask_rgb=list(CAR), labels=["car"])
    group.add_sub_entries([front, rear])
    group.add_global_annotation(box2d_xywh=[1, 1, 4, 4], labels=["sensor_glare"], confidence=0.5)

    # 3. Box, polygon and keypoints: no masks at all. (Not add_annotation(frame_class=...): the SDK
    # drops the class and writes an ROI without 'label', which its own SaveFramesRequest then rejects.)
    shapes = DataEntryImage(data_entry_id="sdk-shapes-only")
    shapes_source = DataSubEntryImage(
        name="front", source=paths["photo_front"], width=MASK_WIDTH, height=MASK_HEIGHT,
        timestamp=0, context_id="drive-0003",
    )
    shapes_source.add_annotation(box2d_xywh=[4, 12, 10, 8], labels=["car"], confidence=0.87, id="car-1")
    shapes_source.add_annotation(poly2d_xy=[(20, 6), (24, 6), (24, 18), (20, 18)], labels=["person", "pedestrian"])
    shapes_source.add_annotation(points2d_xy=[(22, 7), (22, 12)], labels=["person_keypoints"])
    shapes.add_sub_entries([shapes_source])

    # 4. Two masks on one source: the SDK numbers them "00" and "01"; ROIs can only name "00".
    two_masks = DataEntryImage(data_entry_id="sdk-two-masks")
    two_masks_source = DataSubEntryImage(
        name="front", source=paths["photo_front"], width=MASK_WIDTH, height=MASK_HEIGHT,
        timestamp=0, context_id="drive-0004", masks_source=[paths["semantic"], paths["instance"]],
    )
    two_masks_source.add_annotation(mask_rgb=list(ROAD), labels=["road"])
    two_masks_source.add_annotation(mask_rgb=list(CAR), labels=["car"])
    two_masks.add_sub_entries([two_masks_source])

    # 5. A video-like frame: timestamp 33 ms into the sequence, a preview, meta with nested values.
    video = DataEntryImage(
        data_entry_id="sdk-video-frame",
        metadata={"velocity_kmh": 60, "tags": ["night", "highway"], "calib": {"fx": 1.5}},
    )
    video_source = DataSubEntryImage(
        name="front", source=paths["photo_front"], preview_source=paths["photo_front"],
        width=MASK_WIDTH, height=MASK_HEIGHT, timestamp=33, context_id="drive-0005",
        masks_source=[paths["street"]],
    )
    video_source.add_annotation(mask_rgb=list(ROAD), labels=["road"], confidence=1.0, metadata={"annotator": "qa-7"})
    video_source.add_annotation(mask_rgb=list(SKY), labels=["sky"])
    video_source.add_annotation(mask_rgb=list(CAR), labels=["car"])
    video.add_sub_entries([video_source])

    return [street, group, shapes, two_masks, video]


def save_frames_request(frames: list[dict]) -> Any:
    """The SDK's own request object for saving ``frames`` (its schema and defaults apply)."""
    from clearml.backend_api.services.v2_23 import datasets

    return datasets.SaveFramesRequest(version="sdk-frames-draft", frames=frames)


def sdk_frames(mask_dir: Path) -> list[dict]:
    """Write small PNG masks into ``mask_dir`` and return ~5 frames exactly as the clearml SDK sends them.

    Raises ImportError if clearml (or its Hyper-Datasets module) is not installed: ``pip install clearml``.
    """
    os.environ.setdefault("CLEARML_OFFLINE_MODE", "1")  # never look for a server or credentials
    paths = write_sdk_masks(mask_dir)
    entries = _build_entries(paths)
    request = save_frames_request([entry.to_api_object() for entry in entries])
    # A JSON round trip: what a shard holds is JSON text, not the SDK's Python objects.
    return json.loads(json.dumps(request.to_dict()["frames"]))
