"""Video masks through `framebeam run`: the same rows as PNG masks, findings for bad videos, one decode per segment.

One module-scoped run holds everything the lossless tests look at: two mask videos (25 fps and
30000/1001 fps) of known moving-blob masks, each frame of them also saved as a PNG; frames that
reference the video at a timestamp ("v-...") and twin frames that reference the PNG of the frame
the timestamp selects ("p-..."); error frames; a 20 s video at 2 fps whose frames fall into four
time segments. Frames are shuffled over three shards and some timestamps repeat. While that run
goes, ``av.open`` is wrapped to count how often each video is opened (the in-memory runner runs
the pipeline in this process, so the wrapper sees every open).
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import beside, query, run_cli, table
from tests.videos import PALETTE, moving_blob_masks, unpack_rgb, write_h264_video, write_lossless_video
from transforms.masks import DecodeOptions

pytestmark = pytest.mark.slow  # whole runs over generated videos; tests/test_video.py is the fast part

WIDTH, HEIGHT = 64, 48
NTSC = Fraction(30000, 1001)
BLOB_COLOURS = [PALETTE[1 + i] for i in range(4)]  # the colours moving_blob_masks(blobs=4) draws
NEVER_DRAWN = PALETTE[8]  # declared on every frame, drawn nowhere: mask_colour_absent on both twins
SEGMENT_MS = DecodeOptions().video_segment_ms

# name -> (fps, frame count, seed); each is written as <name>.mp4 plus png/<name>-<k>.png per frame.
VIDEOS = {"clip25": (Fraction(25), 60, 1), "clip2997": (NTSC, 60, 2)}
# Timestamps (ms) of frames referencing each video: frame boundaries on both sides, the very end,
# and repeats (several frames at one timestamp).
TIMESTAMPS = {
    "clip25": [0, 39, 40, 40, 40, 41, 79, 80, 500, 999, 1000, 1234, 1234, 2359, 2360, 2399, 2400],
    "clip2997": [0, 33, 34, 66, 67, 67, 1000, 1001, 1001, 1968, 1969, 2002],
}
LONG_VIDEO = "long2fps"  # 40 frames at 2 fps: 20 s, four time segments
LONG_FPS, LONG_FRAMES = 2, 40
LONG_TIMESTAMPS = [0, 1500, 4999, 5000, 7250, 12000, 14999, 19000, 19500]

# Frames that must end as one error finding each, with the run going on: (frame id, mask uri,
# timestamp, declared (width, height), expected code, JSON pointer of the finding).
MASK = "/sources/0/masks/0"
ERROR_FRAMES = [
    ("err-past-end", "clip25.mp4", 2401, (WIDTH, HEIGHT), "video_timestamp_out_of_range", f"{MASK}/timestamp"),
    ("err-negative", "clip25.mp4", -40, (WIDTH, HEIGHT), "video_timestamp_out_of_range", f"{MASK}/timestamp"),
    ("err-corrupt", "corrupt.mp4", 0, (WIDTH, HEIGHT), "video_corrupt", MASK),
    ("err-missing", "missing.mp4", 0, (WIDTH, HEIGHT), "mask_not_found", MASK),
    ("err-size", "clip25.mp4", 400, (WIDTH + 16, HEIGHT), "mask_size_mismatch", MASK),
]
NO_TIMESTAMP_FRAME = "no-timestamp"  # a clip25.mp4 mask entry without "timestamp": the frame at 0 ms

# Columns of each table that must be equal between a video frame and its PNG twin (everything
# but where the rows come from: shard/line, and the masks' uri, content type, timestamp, mode).
LABEL_STATS_COLUMNS = ("source_id, mask_id, roi_index, labels, rgb, pixel_count, pixel_fraction, bbox_x0, bbox_y0, bbox_x1, "
                       "bbox_y1, centroid_x, centroid_y, tolerance_pixels, mask_width, mask_height")
CROPS_COLUMNS = "source_id, mask_id, roi_index, labels, rgb, bbox_x0, bbox_y0, bbox_x1, bbox_y1, rle_counts"
MASKS_COLUMNS = ("source_id, mask_id, declared_width, declared_height, n_declared_colours, width, height, status, "
                 "undeclared_pixels, n_undeclared_colours, top_undeclared")


def selected_frame(timestamp_ms: int, fps: Fraction, frame_count: int) -> int:
    """The frame a timestamp selects: the last one starting at or before it (the last frame covers its end)."""
    return min(math.floor(Fraction(timestamp_ms) * fps / 1000), frame_count - 1)


def frame_record(frame_id: str, mask_uri: str, timestamp: int | None, size: tuple[int, int] = (WIDTH, HEIGHT),
                 content_type: str | None = None, colours=(*BLOB_COLOURS, NEVER_DRAWN)) -> dict:
    """A frame with one source whose one mask is ``mask_uri``; one mask ROI per colour."""
    mask = {"id": "00", "uri": mask_uri, "width": size[0], "height": size[1]}
    if timestamp is not None:
        mask["timestamp"] = timestamp
    if content_type:
        mask["content_type"] = content_type
    return {
        "id": frame_id,
        "timestamp": 1_700_000_000_000 + max(timestamp or 0, 0),
        "sources": [{"id": "cam", "uri": "images/cam.jpg", "content_type": "image/jpeg", "width": size[0], "height": size[1],
                     "timestamp": 0, "masks": [mask]}],
        "rois": [{"label": [f"class-{i}"], "sources": ["cam"], "meta": {"_type": "mask"}, "mask": {"id": "00", "value": list(rgb)}}
                 for i, rgb in enumerate(colours)],
    }


def write_shards(folder: Path, frames: list[dict], shards: int, seed: int) -> None:
    """The frames in a shuffled order, dealt over ``shards`` JSON Lines files."""
    frames = list(frames)
    random.Random(seed).shuffle(frames)
    for index in range(shards):
        (folder / f"shard-{index}.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames[index::shards]))


def twin_frames() -> Iterator[dict]:
    """For every (video, timestamp): a frame on the video and its twin on the PNG of the selected frame."""
    for name, timestamps in TIMESTAMPS.items():
        fps, count, _ = VIDEOS[name]
        for i, timestamp in enumerate(timestamps):
            # Half declare the content type, half leave it to the .mp4 suffix.
            yield frame_record(f"v-{name}-{i}", f"{name}.mp4", timestamp, content_type="video/mp4" if i % 2 else None)
            yield frame_record(f"p-{name}-{i}", f"png/{name}-{selected_frame(timestamp, fps, count):03d}.png", 0)


@pytest.fixture(scope="module")
def lossless_run(tmp_path_factory) -> tuple[Path, Counter]:
    folder = tmp_path_factory.mktemp("video-run")
    (folder / "png").mkdir()
    for name, (fps, count, seed) in VIDEOS.items():
        masks = moving_blob_masks(count, WIDTH, HEIGHT, blobs=4, seed=seed)
        write_lossless_video(folder / f"{name}.mp4", masks, fps=fps)
        for k, mask in enumerate(masks):
            Image.fromarray(unpack_rgb(mask)).save(folder / "png" / f"{name}-{k:03d}.png")
    write_lossless_video(folder / f"{LONG_VIDEO}.mp4", moving_blob_masks(LONG_FRAMES, WIDTH, HEIGHT, blobs=4, seed=3), fps=LONG_FPS)
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))

    frames = list(twin_frames())
    frames += [frame_record(f"long-{i}", f"{LONG_VIDEO}.mp4", t) for i, t in enumerate(LONG_TIMESTAMPS)]
    frames += [frame_record(fid, uri, t, size) for fid, uri, t, size, _, _ in ERROR_FRAMES]
    frames.append(frame_record(NO_TIMESTAMP_FRAME, "clip25.mp4", None))
    write_shards(folder, frames, shards=3, seed=11)

    opens: Counter = Counter()
    real_open = av.open

    def counting_open(file, *args, **kwargs):
        opens[Path(str(getattr(file, "path", None) or getattr(file, "name", file))).name] += 1
        return real_open(file, *args, **kwargs)

    out = beside(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(av, "open", counting_open)
        assert run_cli("run", "--input", str(folder / "shard-*.jsonl"), "--output", str(out), "--quiet") == 0
    return out, opens


def twin_rows(out: Path, name: str, columns: str) -> tuple[dict, dict]:
    """Rows of one table for video frames and for PNG frames, keyed by the twins' common suffix."""
    rows = query(f"SELECT frame_id, {columns} FROM {table(out, name)} WHERE frame_id LIKE 'v-%' OR frame_id LIKE 'p-%'")
    video, png = {}, {}
    for frame_id, *rest in rows:
        (video if frame_id.startswith("v-") else png).setdefault(frame_id[2:], []).append(tuple(map(_hashable, rest)))
    return ({k: sorted(v, key=repr) for k, v in video.items()}, {k: sorted(v, key=repr) for k, v in png.items()})


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


# --- lossless video == PNG --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, columns", [("label_stats", LABEL_STATS_COLUMNS), ("crops", CROPS_COLUMNS), ("masks", MASKS_COLUMNS)])
def test_lossless_video_rows_equal_png_rows(lossless_run, name, columns):
    out, _ = lossless_run
    video, png = twin_rows(out, name, columns)
    n_twins = sum(len(t) for t in TIMESTAMPS.values())
    assert len(video) == len(png) == n_twins
    for key in png:
        assert video[key] == png[key], f"{name} differs for frame {key}"


def test_video_rows_are_decoded_and_carry_their_timestamp(lossless_run):
    out, _ = lossless_run
    rows = query(f"""SELECT frame_id, content_type, timestamp, mode, status FROM {table(out, 'masks')} WHERE frame_id LIKE 'v-%'""")
    assert {(ctype, mode, status) for _, ctype, _, mode, status in rows} == {("video/mp4", "video", "ok")}
    got = {fid: ts for fid, _, ts, _, _ in rows}
    assert got == {f"v-{name}-{i}": t for name, ts in TIMESTAMPS.items() for i, t in enumerate(ts)}
    # Every declared blob colour is somewhere in these masks: the twins did compare real pixel counts.
    drawn = query(f"SELECT count(DISTINCT rgb) FROM {table(out, 'label_stats')} WHERE frame_id LIKE 'v-%' AND pixel_count > 0")
    assert drawn == [(len(BLOB_COLOURS),)]


def test_repeated_timestamps_give_identical_rows(lossless_run):
    out, _ = lossless_run
    video, _ = twin_rows(out, "label_stats", LABEL_STATS_COLUMNS)
    for name, timestamps in TIMESTAMPS.items():
        by_timestamp: dict[int, list] = {}
        for i, t in enumerate(timestamps):
            by_timestamp.setdefault(t, []).append(video[f"{name}-{i}"])
        repeated = [rows for rows in by_timestamp.values() if len(rows) > 1]
        assert repeated, "the fixture must repeat some timestamps"
        for rows in repeated:
            assert all(r == rows[0] for r in rows)


def test_two_frame_rates_select_different_frames_at_the_same_boundary(lossless_run):
    """1000 ms is frame 25 at 25 fps but frame 29 at 29.97 fps (frame 30 starts at 1001 ms)."""
    assert selected_frame(1000, Fraction(25), 60) == 25
    assert (selected_frame(1000, NTSC, 60), selected_frame(1001, NTSC, 60)) == (29, 30)
    out, _ = lossless_run
    # The twins of 1000 and 1001 ms on the 29.97 fps clip read different PNGs and both match their video rows.
    i1000, i1001 = TIMESTAMPS["clip2997"].index(1000), TIMESTAMPS["clip2997"].index(1001)
    video, png = twin_rows(out, "label_stats", LABEL_STATS_COLUMNS)
    assert png[f"clip2997-{i1000}"] != png[f"clip2997-{i1001}"], "frames 29 and 30 must differ for this test to mean anything"
    assert video[f"clip2997-{i1000}"] == png[f"clip2997-{i1000}"] and video[f"clip2997-{i1001}"] == png[f"clip2997-{i1001}"]


# --- errors are findings; the run goes on ------------------------------------------------------------------

def test_bad_videos_and_timestamps_are_error_findings_on_their_frame(lossless_run):
    out, _ = lossless_run
    for frame_id, _, _, _, code, path in ERROR_FRAMES:
        issues = query(f"SELECT code, path, message FROM {table(out, 'issues')} WHERE frame_id = '{frame_id}' AND severity = 'error'")
        assert [(c, p) for c, p, _ in issues] == [(code, path)], frame_id
        assert issues[0][2], frame_id
        assert query(f"SELECT status FROM {table(out, 'masks')} WHERE frame_id = '{frame_id}'") == [(code,)]
        assert query(f"SELECT valid, n_errors FROM {table(out, 'frames')} WHERE frame_id = '{frame_id}'") == [(False, 1)]
        assert query(f"SELECT count(*) FROM {table(out, 'label_stats')} WHERE frame_id = '{frame_id}'") == [(0,)]


def test_frames_beside_bad_ones_stay_valid(lossless_run):
    out, _ = lossless_run
    n_good = 2 * sum(len(t) for t in TIMESTAMPS.values()) + len(LONG_TIMESTAMPS) + 1  # + NO_TIMESTAMP_FRAME
    assert query(f"SELECT count(*) FROM {table(out, 'frames')} WHERE valid AND frame_id NOT LIKE 'err-%'") == [(n_good,)]
    assert query(f"SELECT count(*) FROM {table(out, 'frames')}") == [(n_good + len(ERROR_FRAMES),)]


def test_a_mask_without_timestamp_is_the_frame_at_0_ms(lossless_run):
    out, _ = lossless_run
    columns = "rgb, pixel_count, bbox_x0, bbox_y0, bbox_x1, bbox_y1, centroid_x, centroid_y"
    at_zero = query(f"SELECT {columns} FROM {table(out, 'label_stats')} WHERE frame_id = 'v-clip25-0' ORDER BY rgb")
    assert TIMESTAMPS["clip25"][0] == 0 and at_zero
    assert query(f"SELECT {columns} FROM {table(out, 'label_stats')} WHERE frame_id = '{NO_TIMESTAMP_FRAME}' ORDER BY rgb") == at_zero


# --- decode once per time segment -----------------------------------------------------------------------------

def test_each_video_is_opened_once_per_time_segment(lossless_run):
    out, opens = lossless_run
    segments: dict[str, set[int]] = {}
    references = [(f"{n}.mp4", t) for n, ts in TIMESTAMPS.items() for t in ts]
    references += [(f"{LONG_VIDEO}.mp4", t) for t in LONG_TIMESTAMPS]
    references += [(uri, t) for _, uri, t, _, _, _ in ERROR_FRAMES if uri != "missing.mp4"]
    for uri, timestamp in references:
        if timestamp >= 0:  # a negative timestamp is refused before the video is opened
            segments.setdefault(uri, set()).add(timestamp // SEGMENT_MS)
    # clip25.mp4 serves its 17 twins, 2 error frames and the frame without a timestamp (segment 0) from
    # one open; the 20 s video's 9 frames need one open per segment.
    assert segments["clip25.mp4"] == {0} and len(segments[f"{LONG_VIDEO}.mp4"]) == 4
    assert dict(opens) == {uri: len(s) for uri, s in segments.items()}
    long_rows = query(f"SELECT count(*) FROM {table(out, 'masks')} WHERE frame_id LIKE 'long-%' AND status = 'ok'")
    assert long_rows == [(len(LONG_TIMESTAMPS),)]


def test_long_video_frames_across_segments_select_the_right_frame(lossless_run):
    """Each segment's group seeks to its own start: the frame chosen is still the rule's."""
    out, _ = lossless_run
    masks = moving_blob_masks(LONG_FRAMES, WIDTH, HEIGHT, blobs=4, seed=3)
    rows = query(f"""SELECT frame_id, rgb, pixel_count FROM {table(out, 'label_stats')} WHERE frame_id LIKE 'long-%'""")
    got = {(fid, tuple(rgb)): n for fid, rgb, n in rows}
    for i, timestamp in enumerate(LONG_TIMESTAMPS):
        mask = masks[selected_frame(timestamp, Fraction(LONG_FPS), LONG_FRAMES)]
        for rgb in BLOB_COLOURS:
            code = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
            assert got[(f"long-{i}", rgb)] == int(np.count_nonzero(mask == code)), (timestamp, rgb)


# --- lossy H.264 with --colour-tolerance ------------------------------------------------------------------------

# Bounds measured on exactly these masks (64x48, 4 blobs 8-21 px wide, H.264 yuv420p crf 18, x264 preset
# ultrafast; docs/VIDEO.md has the numbers and the 720p ones). Blobs this small are mostly edge, and 4:2:0 chroma
# smears every edge: per colour, summed over the video, counts stay within TOLERANT_COLOUR_BOUND of the truth at
# tolerance 32 (measured up to 23%), all pixels together within TOLERANT_TOTAL_BOUND (measured 3.2%); exact
# matching (tolerance 0) loses at least EXACT_MIN_LOSS of every blob colour (measured 99-100%: RGB->YUV->RGB
# moves even flat colours by a few levels).
TOLERANT_COLOUR_BOUND = 0.25
TOLERANT_TOTAL_BOUND = 0.05
EXACT_MIN_LOSS = 0.9


@pytest.fixture(scope="module")
def lossy_runs(tmp_path_factory) -> tuple[list[np.ndarray], dict[int, Path]]:
    folder = tmp_path_factory.mktemp("lossy-run")
    masks = moving_blob_masks(25, WIDTH, HEIGHT, blobs=4, seed=5)
    write_h264_video(folder / "lossy.mp4", masks, crf=18, fps=25)
    frames = [frame_record(f"f-{k}", "lossy.mp4", 40 * k + 20, colours=(PALETTE[0], *BLOB_COLOURS)) for k in range(len(masks))]
    write_shards(folder, frames, shards=2, seed=3)
    outputs = {}
    for tolerance in (0, 32):
        outputs[tolerance] = beside(folder, f"out-{tolerance}")
        assert run_cli("run", "--input", str(folder / "shard-*.jsonl"), "--output", str(outputs[tolerance]),
                       "--colour-tolerance", str(tolerance), "--quiet") == 0
    return masks, outputs


def lossy_counts(out: Path) -> dict[tuple[int, tuple], tuple[int, int]]:
    rows = query(f"SELECT frame_id, rgb, pixel_count, tolerance_pixels FROM {table(out, 'label_stats')}")
    return {(int(fid[2:]), tuple(rgb)): (n, tol) for fid, rgb, n, tol in rows}


def test_lossy_h264_counts_with_tolerance_stay_within_the_documented_bounds(lossy_runs):
    masks, outputs = lossy_runs
    colours = (PALETTE[0], *BLOB_COLOURS)
    codes = [(r << 16) | (g << 8) | b for r, g, b in colours]
    truth = {rgb: sum(int(np.count_nonzero(mask == code)) for mask in masks) for rgb, code in zip(colours, codes)}
    exact, tolerant = lossy_counts(outputs[0]), lossy_counts(outputs[32])
    assert exact.keys() == tolerant.keys() == {(k, rgb) for k in range(len(masks)) for rgb in colours}
    for key, (n_exact, exact_tolerance_pixels) in exact.items():
        n_tolerant, tolerance_pixels = tolerant[key]
        # tolerance 0 matches exactly; a tolerance only adds pixels, and tolerance_pixels counts exactly those
        assert exact_tolerance_pixels == 0 and n_tolerant - n_exact == tolerance_pixels >= 0, key
    for rgb in colours:
        n_exact = sum(exact[(k, rgb)][0] for k in range(len(masks)))
        n_tolerant = sum(tolerant[(k, rgb)][0] for k in range(len(masks)))
        assert abs(n_tolerant - truth[rgb]) <= TOLERANT_COLOUR_BOUND * truth[rgb], (rgb, n_tolerant, truth[rgb])
        if rgb in BLOB_COLOURS:
            assert n_exact <= (1 - EXACT_MIN_LOSS) * truth[rgb], (rgb, n_exact, truth[rgb])
    total_tolerant = sum(n for n, _ in tolerant.values())
    assert abs(total_tolerant - sum(truth.values())) <= TOLERANT_TOTAL_BOUND * sum(truth.values())
