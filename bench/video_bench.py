"""Video mask benchmark: decode cost of decode_video_frames, and how lossy H.264 moves mask colours.

Run from the repository root:  .venv/bin/python bench/video_bench.py [--frames 300] [--lossy-frames 30]

Part 1 makes a 1280x720 lossless mask video (libx264rgb, qp=0, 8 colour blobs moving) and times
  (a) a plain sequential PyAV pass converting every frame to rgb24,
  (b) decode_video_frames serving one timestamp per frame (rgb24 + packing to uint32 included).
Part 2 encodes the same kind of masks as H.264 yuv420p at several crf values and prints the
per-channel colour error and how per-colour pixel counts move when each pixel is assigned to the
nearest declared colour within a tolerance N (Chebyshev distance: max per-channel difference <= N).
With ../shared/data/real-masks/camvid present it repeats part 2 on real CamVid masks.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.videos import PALETTE, iter_moving_blob_masks, unpack_rgb, write_h264_video, write_lossless_video  # noqa: E402
from transforms.video import decode_video_frames, pack_rgb24  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 25
CRFS = (0, 10, 18, 23, 28)
TOLERANCES = (0, 8, 16, 32, 64)


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Fastest wall time of ``repeats`` runs, in seconds (the machine is shared and noisy)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def plain_decode(video: Path, convert: bool, pack: bool = False) -> int:
    frames = 0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if convert:
                rgb = frame.to_ndarray(format="rgb24")
                if pack:
                    pack_rgb24(rgb)
            frames += 1
    return frames


def served_decode(video: Path, timestamps: Sequence[int]) -> int:
    served = 0
    for result in decode_video_frames(str(video), timestamps):
        assert result.ok, result.error_message
        served += 1
    return served


def bench_decode(workdir: Path, frames: int, repeats: int) -> None:
    started = time.perf_counter()
    video = write_lossless_video(workdir / "blobs.mp4", iter_moving_blob_masks(frames, WIDTH, HEIGHT, blobs=8), fps=FPS)
    print(f"wrote {frames} frames {WIDTH}x{HEIGHT} libx264rgb qp=0: {video.stat().st_size / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s")
    every_frame = [1000 * k // FPS for k in range(frames)]
    every_fifth = every_frame[::5]
    rows = [
        ("decode only (no conversion)", lambda: plain_decode(video, convert=False)),
        ("(a) decode + rgb24 every frame", lambda: plain_decode(video, convert=True)),
        ("    decode + rgb24 + pack every frame", lambda: plain_decode(video, convert=True, pack=True)),
        ("(b) decode_video_frames, all timestamps", lambda: served_decode(video, every_frame)),
        ("    decode_video_frames, every 5th frame", lambda: served_decode(video, every_fifth)),
    ]
    times = {name: best_of(repeats, run) for name, run in rows}
    print(f"\nbest of {repeats}, {frames} frames:")
    for name, seconds in times.items():
        print(f"  {name:<42} {seconds:7.3f} s  {1000 * seconds / frames:6.2f} ms/frame")
    ratio = times["(b) decode_video_frames, all timestamps"] / times["(a) decode + rgb24 every frame"]
    print(f"  ratio (b)/(a) = {ratio:.2f}")


def nearest_colours(rgb: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct colour of ``rgb``: its pixel count, nearest palette index and distance.

    Distance is Chebyshev (max per-channel difference), so "within N" means every channel moved
    by at most N. Working on distinct colours (a few thousand) instead of pixels keeps this fast.
    """
    colours, counts = np.unique(pack_rgb24(rgb).ravel(), return_counts=True)
    distinct = unpack_rgb(colours).astype(np.int16)
    distance = np.abs(distinct[:, None, :] - palette[None, :, :].astype(np.int16)).max(axis=2)
    nearest = distance.argmin(axis=1)
    return counts, nearest, distance[np.arange(len(nearest)), nearest]


def counts_within(assignment: tuple[np.ndarray, np.ndarray, np.ndarray], palette_size: int, tolerance: int) -> np.ndarray:
    """Pixels per palette colour within ``tolerance``; the last entry counts the rest (undeclared)."""
    counts, nearest, distance = assignment
    label = np.where(distance <= tolerance, nearest, palette_size)
    return np.bincount(label, weights=counts, minlength=palette_size + 1)


def lossy_table(workdir: Path, name: str, masks: list[np.ndarray], palette: np.ndarray, preset: str) -> None:
    source_rgb = [unpack_rgb(m) if m.ndim == 2 else m for m in masks]
    source_counts = sum(counts_within(nearest_colours(rgb, palette), len(palette), 0) for rgb in source_rgb)
    assert source_counts[-1] == 0, "source masks must only use palette colours"
    height, width = source_rgb[0].shape[:2]
    print(f"\n{name}: {len(masks)} frames {width}x{height}, {len(palette)} colours, H.264 yuv420p preset {preset}")
    print("colour error per channel (|decoded - source|, all pixels and frames):")
    print(f"  {'crf':>4} {'max R/G/B':>13} {'p99':>4} {'p99.9':>5} {'changed px':>10}")
    moves: dict[int, list[str]] = {}
    for crf in CRFS:
        video = write_h264_video(workdir / f"{name}-crf{crf}.mp4", source_rgb, crf=crf, fps=FPS, preset=preset)
        timestamps = [1000 * k // FPS for k in range(len(masks))]
        decoded = [unpack_rgb(r.packed) for r in decode_video_frames(str(video), timestamps)]
        error = np.stack([np.abs(d.astype(np.int16) - s.astype(np.int16)) for d, s in zip(decoded, source_rgb)])
        per_pixel = error.max(axis=-1)
        channel_max = "/".join(str(int(error[..., c].max())) for c in range(3))
        print(
            f"  {crf:>4} {channel_max:>13} {int(np.percentile(error, 99)):>4} {int(np.percentile(error, 99.9)):>5} "
            f"{100 * np.count_nonzero(per_pixel) / per_pixel.size:>9.2f}%"
        )
        assignments = [nearest_colours(rgb, palette) for rgb in decoded]
        row = []
        for tolerance in TOLERANCES:
            counts = sum(counts_within(a, len(palette), tolerance) for a in assignments)
            present = source_counts[:-1] > 0
            relative = np.abs(counts[:-1][present] - source_counts[:-1][present]) / source_counts[:-1][present]
            undeclared = counts[-1] / counts.sum()
            row.append(f"{100 * relative.max():6.2f}% {100 * float(np.median(relative)):5.2f}% {100 * undeclared:6.2f}%")
        moves[crf] = row
    print("per-colour pixel count change after nearest-colour assignment within N (max | median over colours | undeclared px):")
    print("  " + f"{'crf':>4} " + " ".join(f"{'N=' + str(n):^22}" for n in TOLERANCES))
    for crf, row in moves.items():
        print("  " + f"{crf:>4} " + " ".join(f"{cell:^22}" for cell in row))


def camvid_masks(count: int) -> tuple[list[np.ndarray], np.ndarray] | None:
    from PIL import Image
    import json

    shared = Path(os.environ.get("FRAMEBEAM_SHARED") or Path(__file__).resolve().parents[2] / "shared")
    folder = shared / "data/real-masks/camvid"
    if not folder.is_dir():
        print(f"\n(no {folder}: skipping the real-mask table)")
        return None
    palette = np.array(sorted({tuple(v) for v in json.loads((folder / "colors.json").read_text()).values()}), np.uint8)
    # Consecutive files of one sequence (0016E5_*) are 1 s apart: closer to a video than random masks.
    paths = sorted(folder.glob("0016E5_*.png"))[:count]
    masks = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    used = np.unique(np.concatenate([unpack_rgb(pack_rgb24(m)).reshape(-1, 3) for m in masks]), axis=0)
    missing = {tuple(c) for c in used} - {tuple(c) for c in palette}
    palette = np.concatenate([palette, np.array(sorted(missing), np.uint8).reshape(-1, 3)])  # undeclared void etc.
    return masks, palette


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lossy-frames", type=int, default=30)
    parser.add_argument("--preset", default="medium", help="x264 preset for the lossy videos")
    parser.add_argument("--skip-decode", action="store_true", help="only the lossy colour tables")
    parser.add_argument("--skip-lossy", action="store_true", help="only the decode timings")
    args = parser.parse_args()
    print(f"PyAV {av.__version__}, FFmpeg {av.library_versions['libavcodec']} (libavcodec), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="video_bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_decode:
            bench_decode(workdir, args.frames, args.repeats)
        if args.skip_lossy:
            return
        blob_palette = np.array(PALETTE[:9], np.uint8)
        blobs = list(iter_moving_blob_masks(args.lossy_frames, WIDTH, HEIGHT, blobs=8))
        lossy_table(workdir, "blobs", blobs, blob_palette, args.preset)
        del blobs
        camvid = camvid_masks(8)
        if camvid is not None:
            lossy_table(workdir, "camvid", *camvid, args.preset)


if __name__ == "__main__":
    main()
