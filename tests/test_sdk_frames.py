"""Structural facts about frames written by the clearml SDK that framebeam relies on.

If a clearml release changes one of them, a test here fails and tells us which assumption broke.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip(
    "clearml.hyperdatasets",
    reason="clearml is not installed: `pip install clearml` (the test extra) to check SDK-written frames",
)

from tests.sdk_frames import MASK_HEIGHT, MASK_WIDTH, save_frames_request, sdk_frames  # noqa: E402

ROI_TYPES_WRITTEN_BY_SDK = {"mask", "b2d", "p2d", "k2d", "elp", "p3d", "k3d", "b3d"}


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return sdk_frames(tmp_path_factory.mktemp("sdk-masks"))


@pytest.fixture(scope="module")
def frames_by_id(frames: list[dict]) -> dict[str, dict]:
    return {frame["id"]: frame for frame in frames}


def mask_rois(frames: list[dict]) -> list[tuple[dict, dict]]:
    return [(frame, roi) for frame in frames for roi in frame.get("rois", []) if "mask" in roi]


def test_the_sdk_schema_accepts_the_frames(frames: list[dict]) -> None:
    assert len(frames) == 5
    save_frames_request(frames).validate()  # raises on any schema violation


def test_every_mask_roi_joins_by_the_schema_rule(frames: list[dict]) -> None:
    assert len(mask_rois(frames)) == 12
    for frame, roi in mask_rois(frames):
        mask_id = roi["mask"]["id"]
        assert isinstance(mask_id, str)
        ids_of_roi_sources = {
            mask["id"]
            for source in frame["sources"] if source["id"] in roi["sources"]
            for mask in source.get("masks", [])
        }
        assert mask_id in ids_of_roi_sources, (frame["id"], roi)


def test_the_sdk_writes_mask_id_00_for_every_mask_roi(frames: list[dict]) -> None:
    assert {roi["mask"]["id"] for _, roi in mask_rois(frames)} == {"00"}


def test_labels_are_lists_of_str_and_values_are_three_ints(frames: list[dict]) -> None:
    for frame in frames:
        for roi in frame.get("rois", []):
            assert isinstance(roi["label"], list) and roi["label"]
            assert all(isinstance(label, str) for label in roi["label"])
            assert "labels" not in roi
            assert isinstance(roi["sources"], list) and all(isinstance(s, str) for s in roi["sources"])
    for _, roi in mask_rois(frames):
        value = roi["mask"]["value"]
        assert len(value) == 3
        assert all(type(v) is int and 0 <= v <= 255 for v in value)


def test_mask_ids_are_numbered_per_source(frames_by_id: dict[str, dict]) -> None:
    [two_masks_source] = frames_by_id["sdk-two-masks"]["sources"]
    assert [mask["id"] for mask in two_masks_source["masks"]] == ["00", "01"]
    # A FrameGroup with a mask on each source repeats "00": mask ids are unique per source, not per frame.
    group_mask_ids = [mask["id"] for source in frames_by_id["sdk-frame-group"]["sources"] for mask in source["masks"]]
    assert group_mask_ids == ["00", "00"]


def test_a_global_annotation_becomes_one_roi_per_source(frames_by_id: dict[str, dict]) -> None:
    glare = [roi for roi in frames_by_id["sdk-frame-group"]["rois"] if roi["label"] == ["sensor_glare"]]
    assert [roi["sources"] for roi in glare] == [["front"], ["rear"]]


def test_rois_have_no_id_and_carry_their_type_in_meta(frames: list[dict]) -> None:
    for frame in frames:
        for roi in frame.get("rois", []):
            assert "id" not in roi  # ROIs are identified by their index
            assert roi["meta"]["_type"] in ROI_TYPES_WRITTEN_BY_SDK
            assert (roi["meta"]["_type"] == "mask") == ("mask" in roi)


def test_a_box_is_a_four_corner_poly_of_floats(frames_by_id: dict[str, dict]) -> None:
    [box] = [roi for roi in frames_by_id["sdk-shapes-only"]["rois"] if roi["meta"]["_type"] == "b2d"]
    assert box["poly"] == [4.0, 12.0, 14.0, 12.0, 14.0, 20.0, 4.0, 20.0]  # from box2d_xywh=[4, 12, 10, 8]
    assert box["meta"]["_id"] == "car-1" and box["confidence"] == pytest.approx(0.87)
    for frame in frames_by_id.values():
        for roi in frame.get("rois", []):
            if "poly" in roi:
                assert len(roi["poly"]) % 2 == 0 and all(isinstance(v, float) for v in roi["poly"])


def test_frame_meta_holds_class_markers_and_per_source_meta(frames: list[dict]) -> None:
    for frame in frames:
        assert frame["meta"]["_clearml_data_entry_class"] == "DataEntryImage"
        for source in frame["sources"]:
            assert frame["meta"][source["id"]]["_clearml_data_sub_entry_class"] == "DataSubEntryImage"


def test_frame_keys_and_timestamps(frames: list[dict], frames_by_id: dict[str, dict]) -> None:
    for frame in frames:
        assert isinstance(frame["id"], str) and isinstance(frame["context_id"], str)
        assert "timestamp" not in frame  # the server derives it from the first source
        for source in frame["sources"]:
            assert type(source["timestamp"]) is int
            assert (type(source["width"]), type(source["height"])) == (int, int)
            assert "content_type" not in source
            for mask in source.get("masks", []):
                assert set(mask) == {"id", "uri", "timestamp"}  # no content_type: infer it from the URI
                assert mask["timestamp"] == 0
    assert frames_by_id["sdk-video-frame"]["sources"][0]["timestamp"] == 33
    assert frames_by_id["sdk-video-frame"]["sources"][0]["preview"]["uri"].endswith(".png")


def test_uris_are_absolute_paths_to_masks_with_the_declared_colours(frames: list[dict]) -> None:
    for frame in frames:
        for source in frame["sources"]:
            assert Path(source["uri"]).is_absolute() and Path(source["uri"]).is_file()
            for mask in source.get("masks", []):
                with Image.open(mask["uri"]) as image:
                    assert image.size == (MASK_WIDTH, MASK_HEIGHT) and image.mode == "RGB"
                    pixels = np.asarray(image).reshape(-1, 3)
                colours_drawn = {tuple(int(c) for c in row) for row in np.unique(pixels, axis=0)}
                colours_declared = {
                    tuple(roi["mask"]["value"])
                    for roi in frame.get("rois", [])
                    if "mask" in roi and roi["mask"]["id"] == mask["id"] and source["id"] in roi["sources"]
                }
                if mask["id"] == "01":  # the instance mask: the SDK cannot attach ROIs to it
                    assert not colours_declared
                else:
                    assert colours_drawn == colours_declared, (frame["id"], source["id"], mask["id"])
