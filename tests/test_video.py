"""Video masks: frame selection rule, lossless round trips, bad input as results, the seek hint."""
from __future__ import annotations

import bisect
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.videos import (
    frame_stamped_masks,
    moving_blob_masks,
    unpack_rgb,
    write_h264_video,
    write_lossless_video,
)
from transforms.findings import CODES
from transforms.video import (
    MASK_TOO_LARGE,
    VIDEO_CORRUPT,
    VIDEO_TIMESTAMP_OUT_OF_RANGE,
    VideoFrameResult,
    decode_video_frames,
)
from transforms.content_types import infer_content_type, is_video_type

NTSC = Fraction(30000, 1001)


def shared_dir() -> Path:
    return Path(os.environ.get("FRAMEBEAM_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def stamped_index(result: VideoFrameResult) -> int:
    """The frame index k written into a frame_stamped_masks frame (red channel)."""
    assert result.ok, result.error_message
    return int(result.packed[0, 0] >> 16)


def decode(source, timestamps, **kwargs) -> list[VideoFrameResult]:
    return list(decode_video_frames(source, timestamps, **kwargs))


@pytest.fixture(scope="module")
def stamped_25fps(tmp_path_factory) -> Path:
    return write_lossless_video(tmp_path_factory.mktemp("v") / "stamped25.mp4", frame_stamped_masks(40), fps=25)


@pytest.fixture(scope="module")
def stamped_ntsc(tmp_path_factory) -> Path:
    return write_lossless_video(tmp_path_factory.mktemp("v") / "stamped2997.mp4", frame_stamped_masks(40), fps=NTSC)


# --- the rule on its own -------------------------------------------------------------------

def frame_index_rule(timestamp_ms: int, frame_starts_ms: list[Fraction], video_end_ms: Fraction) -> int | None:
    """The module doc's frame rule stated directly (decode_video_frames applies it in one streaming pass):
    the last frame starting at or before the timestamp; None out of range."""
    if timestamp_ms < 0 or timestamp_ms > video_end_ms:
        return None
    index = bisect.bisect_right(frame_starts_ms, timestamp_ms) - 1
    return index if index >= 0 else None


def test_frame_index_rule_at_25_fps_boundaries():
    starts = [Fraction(40 * k) for k in range(10)]
    end = Fraction(400)
    assert [frame_index_rule(t, starts, end) for t in (0, 39, 40, 79, 80, 399, 400)] == [0, 0, 1, 1, 2, 9, 9]
    assert frame_index_rule(401, starts, end) is None
    assert frame_index_rule(-1, starts, end) is None


def test_frame_index_rule_at_2997_fps_is_exact_where_floats_are_not():
    interval = Fraction(1000) / NTSC  # 33.3667 ms
    starts = [k * interval for k in range(61)]
    end = 61 * interval
    assert [frame_index_rule(t, starts, end) for t in (33, 34, 66, 67)] == [0, 1, 1, 2]
    # Frame 30 starts at exactly 1001 ms; in floats 30 * (1001 / 30) lands just above or below it.
    assert starts[30] == 1001 and frame_index_rule(1001, starts, end) == 30 and frame_index_rule(1000, starts, end) == 29


def test_frame_index_rule_before_first_frame_is_out_of_range():
    assert frame_index_rule(5, [Fraction(10), Fraction(20)], Fraction(30)) is None


# --- decoding: which frame -----------------------------------------------------------------

def test_25_fps_boundaries_select_the_documented_frames(stamped_25fps):
    results = decode(stamped_25fps, [0, 39, 40, 79, 80, 1599, 1600])
    assert [stamped_index(r) for r in results] == [0, 0, 1, 1, 2, 39, 39]
    assert [r.frame_pts_ms for r in results] == [0, 0, 40, 40, 80, 1560, 1560]


def test_2997_fps_every_millisecond_matches_the_rule(stamped_ntsc):
    with av.open(str(stamped_ntsc)) as container:
        stream = container.streams.video[0]
        starts = [Fraction(f.pts) * stream.time_base * 1000 for f in container.decode(stream)]
    assert starts[:3] == [0, Fraction(1001, 30), Fraction(2002, 30)]  # the file keeps exact times
    end = starts[-1] + Fraction(1000) / NTSC
    every_ms = range(0, int(end) + 2)
    results = decode(stamped_ntsc, every_ms)
    expected = [frame_index_rule(t, starts, end) for t in every_ms]
    assert [stamped_index(r) if r.ok else None for r in results] == expected
    assert expected[33:35] == [0, 1] and expected[1001] == 30 and expected[-1] is None


def test_unsorted_duplicate_timestamps_give_one_result_each_in_ascending_order(stamped_25fps):
    results = decode(stamped_25fps, [800, 0, 80, 800, 41, 0])
    assert [r.timestamp_ms for r in results] == [0, 41, 80, 800]
    assert [stamped_index(r) for r in results] == [0, 1, 2, 20]


def test_timestamps_selecting_one_frame_share_a_read_only_array(stamped_25fps):
    first, second = decode(stamped_25fps, [40, 79])
    assert first.packed is second.packed
    assert not first.packed.flags.writeable


def test_negative_and_past_the_end_are_out_of_range(stamped_25fps):
    results = decode(stamped_25fps, [1601, -1, 1600, 5000])
    assert [(r.timestamp_ms, r.error_code) for r in results] == [
        (-1, VIDEO_TIMESTAMP_OUT_OF_RANGE),
        (1600, None),
        (1601, VIDEO_TIMESTAMP_OUT_OF_RANGE),
        (5000, VIDEO_TIMESTAMP_OUT_OF_RANGE),
    ]
    assert "1600.000 ms" in results[2].error_message


def test_non_integer_timestamp_is_a_type_error(stamped_25fps):
    with pytest.raises(TypeError, match="integers"):
        decode(stamped_25fps, [40.5])


# --- decoding: pixels ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "width", "height"),
    [
        ("mp4_x264rgb", 64, 48),
        ("mp4_x264rgb", 61, 45),  # odd sizes: decoded planes have padded rows (line_size > width)
        ("mkv_ffv1", 64, 48),
        ("webm_vp9", 64, 48),
    ],
)
def test_lossless_video_frames_decode_to_the_source_masks(tmp_path, kind, width, height):
    masks = moving_blob_masks(24, width=width, height=height, blobs=5)
    video = write_lossless_video(tmp_path / f"masks.{kind}", masks, fps=25)
    chosen = [0, 1, 5, 12, 23]
    results = decode(video, [40 * k + 20 for k in chosen])
    for k, result in zip(chosen, results):
        assert result.packed.dtype == np.uint32 and result.packed.shape == (height, width)
        np.testing.assert_array_equal(result.packed, masks[k], err_msg=f"frame {k}")


def test_file_object_source_gives_the_same_frames_as_a_path(stamped_25fps):
    with open(stamped_25fps, "rb") as file:
        from_file = decode(file, [0, 500, 1000])
        assert not file.closed  # the caller's file stays open
    from_path = decode(str(stamped_25fps), [0, 500, 1000])
    assert [stamped_index(r) for r in from_file] == [stamped_index(r) for r in from_path] == [0, 12, 25]


def test_lossy_h264_moves_colours_but_selects_the_right_frame(tmp_path):
    masks = moving_blob_masks(12, blobs=5, seed=3)
    video = write_h264_video(tmp_path / "lossy.mp4", masks, crf=18)
    results = decode(video, [40 * k for k in range(12)])
    errors = []
    for k, result in enumerate(results):
        decoded = unpack_rgb(result.packed).astype(np.int16)
        error_to = [np.abs(decoded - unpack_rgb(m).astype(np.int16)).mean() for m in masks]
        assert int(np.argmin(error_to)) == k  # closest to its own source frame, not a neighbour
        errors.append(np.abs(decoded - unpack_rgb(masks[k]).astype(np.int16)).max())
    max_error = max(errors)
    print(f"H.264 yuv420p crf 18, 64x48 blobs: max per-channel error {max_error}")
    assert 0 < max_error < 256  # colours move: exact colour matching on lossy video needs a tolerance


@pytest.mark.skipif(not (shared_dir() / "data/real-masks/camvid").is_dir(), reason="needs ../shared/data/real-masks/camvid (set FRAMEBEAM_SHARED)")
def test_real_camvid_masks_round_trip_through_lossless_h264(tmp_path):
    from PIL import Image

    paths = sorted((shared_dir() / "data/real-masks/camvid").glob("*.png"))[:4]
    rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    video = write_lossless_video(tmp_path / "camvid.mp4", rgbs, fps=NTSC)
    results = decode(video, [0, 34, 67, 101])  # frame 3 starts at 100.1 ms
    for rgb, result in zip(rgbs, results):
        np.testing.assert_array_equal(unpack_rgb(result.packed), rgb)


# --- bad input gives results, not exceptions -------------------------------------------------

@pytest.mark.parametrize(
    "make_bytes",
    [
        pytest.param(lambda video: b"", id="empty"),
        pytest.param(lambda video: b"\x00garbage" * 200, id="garbage"),
        pytest.param(lambda video: b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="not-a-video"),
        pytest.param(lambda video: video[: len(video) // 2], id="truncated-mp4"),
    ],
)
def test_corrupt_bytes_give_video_corrupt_for_every_timestamp(stamped_25fps, make_bytes):
    data = make_bytes(stamped_25fps.read_bytes())
    results = decode(io.BytesIO(data), [0, 40, -5, 80])
    assert [r.timestamp_ms for r in results] == [-5, 0, 40, 80]
    assert [r.error_code for r in results] == [VIDEO_TIMESTAMP_OUT_OF_RANGE, VIDEO_CORRUPT, VIDEO_CORRUPT, VIDEO_CORRUPT]
    assert all(r.packed is None and r.error_message for r in results)


def test_missing_file_is_video_corrupt_with_the_reason(tmp_path):
    [result] = decode(str(tmp_path / "absent.mp4"), [0])
    assert result.error_code == VIDEO_CORRUPT and "No such file" in result.error_message


def packet_positions(video: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet, in file order."""
    with av.open(str(video)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size]


def test_decoding_failure_midway_keeps_served_timestamps(tmp_path):
    video = write_lossless_video(tmp_path / "v.mp4", moving_blob_masks(30), keyframe_interval=5)
    data = bytearray(video.read_bytes())
    position, size = packet_positions(video)[15]  # frame 15 starts at 600 ms
    data[position : position + size] = bytes(size)  # zeroed H.264 data fails to decode
    results = decode(io.BytesIO(bytes(data)), [0, 200, 400, 520, 560, 700, 1000])
    # 520 ms (frame 13) is decided once frame 14 decodes; 560 ms (frame 14) needed frame 15 to start.
    assert [r.error_code for r in results] == [None, None, None, None, VIDEO_CORRUPT, VIDEO_CORRUPT, VIDEO_CORRUPT]
    assert "corrupt" in results[-1].error_message


def test_truncated_matroska_serves_frames_before_the_cut_and_reports_the_rest(tmp_path):
    masks = frame_stamped_masks(30)
    video = write_lossless_video(tmp_path / "v.mkv", masks, kind="mkv_ffv1")
    data = video.read_bytes()
    results = decode(io.BytesIO(data[: len(data) // 2]), [0, 200, 1100, 5000])
    assert [stamped_index(r) for r in results[:2]] == [0, 5]
    assert results[2].error_code == VIDEO_CORRUPT and "truncated" in results[2].error_message
    assert results[3].error_code == VIDEO_TIMESTAMP_OUT_OF_RANGE


def test_frames_over_max_pixels_are_refused(stamped_25fps):
    results = decode(stamped_25fps, [0, 40], max_pixels=64 * 48 - 1)
    assert [r.error_code for r in results] == [MASK_TOO_LARGE, MASK_TOO_LARGE]
    assert "64x48" in results[0].error_message and "--max-mask-pixels" in results[0].error_message
    assert decode(stamped_25fps, [0], max_pixels=64 * 48)[0].ok


def test_playlists_and_urls_are_not_followed(tmp_path, stamped_25fps):
    # An HLS playlist named .mp4 would make FFmpeg read the file it lists (or a URL).
    playlist = tmp_path / "evil.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{stamped_25fps}\n#EXT-X-ENDLIST\n")
    [result] = decode(str(playlist), [0])
    assert result.error_code == VIDEO_CORRUPT
    [result] = decode(f"file://{stamped_25fps}", [0])  # a str is a local path, never a URL
    assert result.error_code == VIDEO_CORRUPT


def test_error_codes_are_registered():
    assert {VIDEO_CORRUPT, VIDEO_TIMESTAMP_OUT_OF_RANGE, MASK_TOO_LARGE} <= CODES.keys()


# --- the start_ms hint ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def short_gop_video(tmp_path_factory) -> Path:
    return write_lossless_video(tmp_path_factory.mktemp("v") / "gop5.mp4", moving_blob_masks(40), fps=NTSC, keyframe_interval=5)


@pytest.mark.parametrize("start_ms", [0, 300, 333, 334, 700, 1300])
def test_start_hint_selects_identical_frames(short_gop_video, start_ms):
    timestamps = [t for t in range(0, 1400, 23) if t >= start_ms] + [start_ms, 1334, 1335, 2000]
    plain = decode(short_gop_video, timestamps)
    hinted = decode(short_gop_video, timestamps, start_ms=start_ms)
    assert [(r.timestamp_ms, r.frame_pts_ms, r.error_code) for r in hinted] == [(r.timestamp_ms, r.frame_pts_ms, r.error_code) for r in plain]
    for a, b in zip(plain, hinted):
        if a.ok:
            np.testing.assert_array_equal(a.packed, b.packed)


def test_start_hint_seeks_past_the_frames_before_it(short_gop_video):
    # Destroy the first keyframe interval: only a decoder that seeked past it can serve t >= 400.
    data = bytearray(short_gop_video.read_bytes())
    for position, size in packet_positions(short_gop_video)[:5]:
        data[position : position + size] = bytes(size)
    assert decode(io.BytesIO(bytes(data)), [400])[0].error_code == VIDEO_CORRUPT
    plain = decode(short_gop_video, [400, 900])
    hinted = decode(io.BytesIO(bytes(data)), [900, 400], start_ms=400)
    assert [r.error_code for r in hinted] == [None, None]
    for a, b in zip(plain, hinted):
        np.testing.assert_array_equal(a.packed, b.packed)


def test_start_hint_after_the_smallest_timestamp_is_lowered_to_it(short_gop_video):
    plain = decode(short_gop_video, [50, 900])
    hinted = decode(short_gop_video, [50, 900], start_ms=800)
    assert [r.frame_pts_ms for r in hinted] == [r.frame_pts_ms for r in plain]


# --- content types --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("uri", "declared", "expected"),
    [
        ("s3://b/masks/0001.mp4", None, "video/mp4"),
        ("gs://b/m.MKV", "", "video/x-matroska"),
        ("/data/m.webm", None, "video/webm"),
        ("https://h/m.mp4?X-Amz-Signature=abc", None, "video/mp4"),
        ("s3://b/m.png", "Video/MP4; codecs=avc1", "video/mp4"),
        ("s3://b/m.mp4", "image/png", None),
        ("s3://b/m.mp4", "application/octet-stream", "video/mp4"),
        ("s3://b/m.png", None, None),
        ("s3://b/mp4", None, None),
    ],
)
def test_video_content_type(uri, declared, expected):
    content_type = infer_content_type(uri, declared)  # as mask_requests.plan_masks decides a mask is a video
    assert (content_type if is_video_type(content_type) else None) == expected
