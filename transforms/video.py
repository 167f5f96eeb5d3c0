"""Video masks: pick the mask frame for each timestamp of a mask video, in one decoding pass.

A ``video/mp4`` (or WebM/Matroska) mask holds one mask per video frame; a frame's mask entry names
the frame by ``timestamp`` (ms into the video). ``decode_video_frames`` opens the video once,
decodes it forward once and serves every requested timestamp from that single pass, converting
to RGB only the frames that some timestamp selects. The result is the same ``packed`` array that
image masks produce: shape (height, width), dtype uint32, value ``r << 16 | g << 8 | b``.

Frame rule
----------
A timestamp ``t`` (ms) selects the **last frame whose presentation time is <= t**. A frame's
presentation time is ``(pts - stream.start_time) * time_base`` in ms, kept as an exact Fraction:
``float`` arithmetic would put 29.97 fps frames on the wrong side of a boundary.

* 25 fps: frame k starts at 40k ms. t=0..39 -> frame 0, t=79 -> frame 1, t=80 -> frame 2.
* 29.97 fps (30000/1001): frame k starts at k * 1001/30 = k * 33.3667 ms.
  t=33 -> frame 0, t=34 -> frame 1, t=66 -> frame 1, t=67 -> frame 2.
* The last frame covers up to and including its end (pts + duration, or + one frame interval if
  the container gives no duration). Later timestamps, negative timestamps and timestamps before
  the first frame are ``video_timestamp_out_of_range``.
* Matroska/WebM store times in whole ms (time base 1/1000), so there a 29.97 fps frame starts at
  round(k * 33.3667) ms: the rule holds on the times the file stores, not on the nominal rate.

Errors never raise out of ``decode_video_frames``: each timestamp gets a result, with an
``error_code`` from ``transforms.findings.CODES``:

* ``video_timestamp_out_of_range``: negative, before the first frame or past the end.
* ``video_corrupt``: the bytes do not open as a video, the video has no video stream, or decoding
  failed. If decoding fails midway, timestamps already served stay served; the rest get this code
  (a timestamp is served once the frame after its frame has decoded, so the one frame before the
  failure is not served either).
  A video that ends before the duration its header declares (a truncated Matroska file decodes
  "cleanly" up to the cut) gives this code for timestamps inside the missing part.
* ``mask_too_large``: the frame has more than ``max_pixels`` pixels (refused before decoding).

Hot keys: a worker that serves only the timestamps in [a, b) of a long video passes
``start_ms=a``; the video is then seeked once, to the keyframe at or before ``a``, and decoded
forward from there. The frame chosen is the same as without the seek (the keyframe is never after
``a``; if a container index puts it after, we fall back to decoding from the start).

Security: a ``str`` source is opened as a local file by Python, never handed to FFmpeg as a URL
(FFmpeg would follow ``http://``, ``file:`` and playlist protocols), and only the demuxers in
``ALLOWED_DEMUXERS`` may open the bytes (an HLS playlist disguised as ``.mp4`` would otherwise
read other files).
"""
from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

VIDEO_TIMESTAMP_OUT_OF_RANGE = "video_timestamp_out_of_range"
VIDEO_CORRUPT = "video_corrupt"
MASK_TOO_LARGE = "mask_too_large"

# FFmpeg demuxer names (matched against each name in e.g. "mov,mp4,m4a,3gp,3g2,mj2").
ALLOWED_DEMUXERS = ("mov", "matroska", "webm", "avi")

_MS_PER_SECOND = 1000


class VideoDecodeError(Exception):
    """A mask video cannot be used. ``code`` is a findings code (``video_corrupt`` unless stated)."""

    def __init__(self, message: str, code: str = VIDEO_CORRUPT) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VideoFrameResult:
    """The mask frame selected for one timestamp, or why there is none.

    ``packed`` is read-only and may be the same array object for timestamps that select the
    same frame: copy it before changing it.
    """

    timestamp_ms: int
    packed: np.ndarray | None  # (h, w) uint32 r<<16|g<<8|b, or None with an error
    frame_pts_ms: float | None  # presentation time of the frame chosen (ms from the stream start)
    error_code: str | None  # video_timestamp_out_of_range | video_corrupt | mask_too_large | None
    error_message: str | None

    @property
    def ok(self) -> bool:
        return self.error_code is None


def pack_rgb24(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (h, w) uint32 ``r << 16 | g << 8 | b``."""
    packed = rgb[..., 0].astype(np.uint32) << 16
    packed |= rgb[..., 1].astype(np.uint32) << 8
    packed |= rgb[..., 2]
    return packed


def decode_video_frames(
    source: BinaryIO | str,
    timestamps_ms: Iterable[int],
    *,
    start_ms: int | None = None,
    max_pixels: int = 100_000_000,
) -> Iterator[VideoFrameResult]:
    """Yield one result per distinct timestamp, in ascending timestamp order, from one decoding pass.

    ``source`` is a local path or a seekable binary file object (left open). ``start_ms`` is a
    hint that no timestamp below it is wanted: the video is seeked once to the keyframe before
    ``min(start_ms, smallest timestamp)`` instead of decoded from its start. Bad bytes never raise;
    they give results with an ``error_code`` (see the module docstring).
    """
    wanted = sorted(set(_checked_timestamps(timestamps_ms)))
    pending: deque[int] = deque(wanted)
    while pending and pending[0] < 0:
        yield _error(pending.popleft(), VIDEO_TIMESTAMP_OUT_OF_RANGE, "Timestamp is negative; mask timestamps are ms from the video start.")
    if not pending:
        return
    try:
        own_file = open(source, "rb") if isinstance(source, (str, os.PathLike)) else None
    except OSError as exc:
        yield from _fail_all(pending, VIDEO_CORRUPT, f"Cannot open the mask video: {exc}.")
        return
    try:
        yield from _serve(own_file if own_file is not None else source, pending, start_ms, max_pixels)
    finally:
        if own_file is not None:
            own_file.close()


def _checked_timestamps(timestamps_ms: Iterable[int]) -> Iterator[int]:
    for timestamp in timestamps_ms:
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, np.integer)):
            raise TypeError(
                f"Mask timestamps must be integers (ms), got {timestamp!r}; validate frames before decoding masks."
            )
        yield int(timestamp)


class _Timeline:
    """Exact ms positions of one video stream's frames."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        if stream.time_base is None:
            raise VideoDecodeError("The video stream has no time base; re-mux the mask video into MP4 (ffmpeg -i IN -c copy OUT.mp4).")
        self.time_base = Fraction(stream.time_base)
        self.start_pts = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        self.frame_interval_ms = Fraction(_MS_PER_SECOND) / Fraction(rate) if rate else None

    def ms(self, pts: int) -> Fraction:
        return (pts - self.start_pts) * self.time_base * _MS_PER_SECOND

    def pts(self, ms: Fraction) -> int:
        return self.start_pts + math.floor(ms / _MS_PER_SECOND / self.time_base)


def _declared_end_ms(container: av.container.InputContainer, stream: av.video.stream.VideoStream, timeline: _Timeline) -> Fraction | None:
    if stream.duration:
        return stream.duration * timeline.time_base * _MS_PER_SECOND
    # The container's duration covers all streams: only trust it when the video is the only one.
    if container.duration and len(container.streams) == 1:  # in av.time_base units (µs)
        return Fraction(container.duration, av.time_base) * _MS_PER_SECOND
    return None


def _serve(file: BinaryIO, pending: deque[int], start_ms: int | None, max_pixels: int) -> Iterator[VideoFrameResult]:
    try:
        container = av.open(file, options={"format_whitelist": ",".join(ALLOWED_DEMUXERS)})
    except (av.FFmpegError, OSError, ValueError) as exc:
        yield from _fail_all(pending, VIDEO_CORRUPT, f"The mask file does not open as a video ({exc}); check it is a MP4/WebM/Matroska file.")
        return
    with container:
        try:
            if not container.streams.video:
                raise VideoDecodeError("The mask file has no video stream; video masks need one.")
            stream = container.streams.video[0]
            timeline = _Timeline(stream)
            _check_size(stream.codec_context.width, stream.codec_context.height, max_pixels)
            seek_ms = None if start_ms is None else min(Fraction(start_ms), Fraction(pending[0]))
            frames = _decoded_frames(container, stream, timeline, seek_ms)
            yield from _serve_frames(frames, pending, timeline, max_pixels, _declared_end_ms(container, stream, timeline))
        except VideoDecodeError as exc:
            yield from _fail_all(pending, exc.code, str(exc))
        except (av.FFmpegError, OSError, ValueError) as exc:
            yield from _fail_all(pending, VIDEO_CORRUPT, f"Decoding the mask video failed ({exc}); the file is corrupt or truncated.")


def _decoded_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, timeline: _Timeline, seek_ms: Fraction | None
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order, from the keyframe at or before ``seek_ms`` (or the start)."""
    if seek_ms is not None and seek_ms > 0:
        container.seek(timeline.pts(seek_ms), stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is not None and first.pts is not None and timeline.ms(first.pts) <= seek_ms:
            yield first
            yield from frames
            return
        # The container's index put us after seek_ms (or at the end): decode from the start.
        container.seek(timeline.start_pts, stream=stream, backward=True, any_frame=False)
    yield from container.decode(stream)


def _serve_frames(
    frames: Iterator[av.VideoFrame],
    pending: deque[int],
    timeline: _Timeline,
    max_pixels: int,
    declared_end_ms: Fraction | None,
) -> Iterator[VideoFrameResult]:
    """Serve pending timestamps as frames go by: a timestamp is decided once a later frame starts."""
    held: av.VideoFrame | None = None
    held_start_ms = previous_start_ms = Fraction(0)
    held_packed: np.ndarray | None = None
    for frame in frames:
        if frame.pts is None:
            raise VideoDecodeError("A video frame has no presentation time; re-mux the mask video into MP4 (ffmpeg -i IN -c copy OUT.mp4).")
        _check_size(frame.width, frame.height, max_pixels)
        frame_start_ms = timeline.ms(frame.pts)
        while pending and pending[0] < frame_start_ms:
            timestamp = pending.popleft()
            if held is None:
                yield _error(timestamp, VIDEO_TIMESTAMP_OUT_OF_RANGE, f"Timestamp is before the first video frame, at {float(frame_start_ms):.3f} ms.")
                continue
            if held_packed is None:
                held_packed = _packed(held)
            yield VideoFrameResult(timestamp, held_packed, float(held_start_ms), None, None)
        if not pending:
            return  # everything served: no need to decode the rest
        previous_start_ms, held_start_ms = held_start_ms, frame_start_ms
        held, held_packed = frame, None
    if held is None:
        yield from _fail_all(pending, VIDEO_CORRUPT, "The mask video has no decodable frames.")
        return
    end_ms = held_start_ms + _duration_ms(held, timeline, held_start_ms - previous_start_ms)
    while pending and pending[0] <= end_ms:
        if held_packed is None:
            held_packed = _packed(held)
        yield VideoFrameResult(pending.popleft(), held_packed, float(held_start_ms), None, None)
    # A file cut short decodes without error up to the cut; its header still knows the full length.
    truncated_until = declared_end_ms if declared_end_ms is not None and declared_end_ms > end_ms + 1 else end_ms
    while pending and pending[0] <= truncated_until:
        yield _error(
            pending.popleft(),
            VIDEO_CORRUPT,
            f"The video's frames end at {float(end_ms):.3f} ms but its header says {float(truncated_until):.3f} ms: the file is truncated.",
        )
    yield from _fail_all(pending, VIDEO_TIMESTAMP_OUT_OF_RANGE, f"Timestamp is past the end of the video at {float(end_ms):.3f} ms.")


def _duration_ms(frame: av.VideoFrame, timeline: _Timeline, gap_to_previous_ms: Fraction) -> Fraction:
    """How long the last frame is shown: its own duration, else one frame interval."""
    if frame.duration:
        return frame.duration * timeline.time_base * _MS_PER_SECOND
    if timeline.frame_interval_ms is not None:
        return timeline.frame_interval_ms
    return gap_to_previous_ms


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoDecodeError(
            f"The mask video's frames are {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}; raise --max-mask-pixels if such masks are expected.",
            code=MASK_TOO_LARGE,
        )


def _packed(frame: av.VideoFrame) -> np.ndarray:
    # PyAV 18 turns planar gbrp (lossless RGB H.264/VP9) into rgb24 at memcpy speed; the
    # packing costs more than the conversion (bench/video_bench.py).
    packed = pack_rgb24(frame.to_ndarray(format="rgb24"))
    packed.flags.writeable = False  # shared by every timestamp that selects this frame
    return packed


def _error(timestamp_ms: int, code: str, message: str) -> VideoFrameResult:
    return VideoFrameResult(timestamp_ms, None, None, code, message)


def _fail_all(pending: deque[int], code: str, message: str) -> Iterator[VideoFrameResult]:
    while pending:
        yield _error(pending.popleft(), code, message)
