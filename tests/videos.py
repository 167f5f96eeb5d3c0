"""Test helpers: write mask videos from known masks with PyAV, and make known masks to write.

Lossless: ``libx264rgb`` with qp=0 (MP4), ``ffv1`` (Matroska), VP9 lossless in GBR (WebM): frames
decode back pixel-identical. Lossy: ``libx264`` yuv420p at a given crf, as users' tools produce.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# name -> (container format, codec, pix_fmt, codec options). All exact for RGB masks.
LOSSLESS_CODECS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "mp4_x264rgb": ("mp4", "libx264rgb", "rgb24", {"qp": "0"}),
    "mkv_ffv1": ("matroska", "ffv1", "bgr0", {}),
    "webm_vp9": ("webm", "libvpx-vp9", "gbrp", {"lossless": "1", "deadline": "realtime", "cpu-used": "8"}),
}


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(h, w) uint32 r<<16|g<<8|b -> (h, w, 3) uint8 RGB."""
    packed = np.asarray(packed, dtype=np.uint32)
    return np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=-1).astype(np.uint8)


def as_rgb(mask: np.ndarray) -> np.ndarray:
    """Accept a packed (h, w) uint32 mask or an (h, w, 3) uint8 RGB mask; return RGB."""
    return unpack_rgb(mask) if mask.ndim == 2 else np.ascontiguousarray(mask, dtype=np.uint8)


def write_video(
    path: Path,
    masks: Iterable[np.ndarray],
    *,
    fps: Fraction | int = 25,
    container_format: str = "mp4",
    codec: str = "libx264rgb",
    pix_fmt: str = "rgb24",
    options: dict[str, str] | None = None,
    keyframe_interval: int | None = None,
) -> Path:
    """Encode masks (packed or RGB, all the same size) as a video, one mask per frame, at ``fps``.

    ``masks`` may be a generator: frames are encoded as they come, so long videos fit in memory.
    """
    first = next(iter(masks))
    masks = itertools.chain([first], masks) if not isinstance(masks, Sequence) else masks
    height, width = first.shape[:2]
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = dict(options or {})
        if keyframe_interval is not None:
            stream.codec_context.gop_size = keyframe_interval
        for mask in masks:
            for packet in stream.encode(av.VideoFrame.from_ndarray(as_rgb(mask), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_lossless_video(path: Path, masks: Iterable[np.ndarray], *, fps: Fraction | int = 25, kind: str = "mp4_x264rgb", keyframe_interval: int | None = None) -> Path:
    container_format, codec, pix_fmt, options = LOSSLESS_CODECS[kind]
    return write_video(path, masks, fps=fps, container_format=container_format, codec=codec, pix_fmt=pix_fmt, options=options, keyframe_interval=keyframe_interval)


def write_h264_video(path: Path, masks: Iterable[np.ndarray], *, crf: int, fps: Fraction | int = 25, preset: str = "ultrafast") -> Path:
    """Lossy H.264 4:2:0 (what most tools write): colours move, most at edges."""
    return write_video(path, masks, fps=fps, codec="libx264", pix_fmt="yuv420p", options={"crf": str(crf), "preset": preset})


PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (128, 64, 128),
    (220, 20, 60),
    (0, 0, 142),
    (107, 142, 35),
    (250, 170, 30),
    (70, 130, 180),
    (255, 255, 255),
    (152, 251, 152),
)


def moving_blob_masks(count: int, width: int = 64, height: int = 48, blobs: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``count`` packed masks: rectangles of PALETTE colours moving over a black background.

    Every frame differs from its neighbours, so the frame a timestamp selects is identifiable.
    """
    return list(iter_moving_blob_masks(count, width, height, blobs, seed))


def iter_moving_blob_masks(count: int, width: int, height: int, blobs: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The masks of ``moving_blob_masks``, one at a time (a 300-frame 720p list would take 1 GB)."""
    rng = np.random.default_rng(seed)
    colours = [PALETTE[1 + i % (len(PALETTE) - 1)] for i in range(blobs)]
    sizes = rng.integers([max(2, width // 8), max(2, height // 8)], [max(3, width // 3), max(3, height // 3)], size=(blobs, 2))
    origins = rng.integers(0, [width, height], size=(blobs, 2))
    velocities = rng.integers(1, 4, size=(blobs, 2)) * rng.choice([-1, 1], size=(blobs, 2))
    for k in range(count):
        rgb = np.zeros((height, width, 3), np.uint8)
        for colour, (w, h), origin, velocity in zip(colours, sizes, origins, velocities):
            x, y = (origin + k * velocity) % [width, height]
            rgb[y : y + h, x : x + w] = colour
        yield (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def frame_stamped_masks(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Packed masks whose frame index k is written in them (a full-frame colour k, k, 255 - k)."""
    return [np.full((height, width), (k << 16) | (k << 8) | (255 - k), np.uint32) for k in range(count)]
