"""`framebeam run` on frames whose masks are one video, against one plain decode pass plus the statistics, in one run.

    .venv/bin/python bench/video_run_bench.py [--frames 300] [--shards 4] [--workers 0] [--repeat 1] [--data DIR]

Writes a --frames-frame 1280x720 lossless mask video (libx264rgb qp=0, 25 fps, 8 colour blobs moving
over an undeclared black background) and --frames frames in --shards shuffled JSON Lines shards, frame k
referencing the video at 40k + 20 ms (the middle of video frame k) and declaring the 8 colours as ROIs.
Then times, in the same run so machine load hits all of them:

  (a) one sequential PyAV pass over the video, ``frame.to_ndarray(format="rgb24")`` on every frame;
  (b) the same frames' statistics: packing to uint32 (``transforms.video.pack_rgb24``) and
      ``transforms.statistics.analyse_mask(packed, colours, rle=True)`` on each decoded frame;
  (c) ``framebeam run`` as a subprocess, end to end: process start, Beam start-up, parsing, validation,
      joining, grouping by (video, 5 s segment), decoding each segment once, statistics, COCO RLE crops,
      Parquet writes and publish.

Prints run / (a + b). Goal (issue 4): <= 2 -- no per-frame re-decoding. (a) and (b) run with the malloc
settings framebeam's workers give themselves (transforms/tuning.py), so both sides allocate alike. --data DIR keeps the inputs between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.videos import PALETTE, iter_moving_blob_masks, write_lossless_video  # noqa: E402
from transforms.statistics import analyse_mask  # noqa: E402
from transforms.video import pack_rgb24  # noqa: E402

WIDTH, HEIGHT, FPS, BLOBS = 1280, 720, 25, 8
COLOURS = [PALETTE[1 + i % (len(PALETTE) - 1)] for i in range(BLOBS)]  # the colours iter_moving_blob_masks draws
VIDEO_NAME = "masks.mp4"


def write_inputs(directory: Path, frames: int, shards: int) -> None:
    """The mask video and the frame shards (skipped when a previous run left them in ``directory``)."""
    video = directory / VIDEO_NAME
    if not video.exists():
        started = time.perf_counter()
        write_lossless_video(video, iter_moving_blob_masks(frames, WIDTH, HEIGHT, blobs=BLOBS), fps=FPS)
        print(f"wrote {frames} frames {WIDTH}x{HEIGHT} libx264rgb qp=0: {video.stat().st_size / 1e6:.1f} MB "
              f"in {time.perf_counter() - started:.1f} s")
    records = [frame_record(k) for k in range(frames)]
    random.Random(0).shuffle(records)
    for old in directory.glob("frames-*.jsonl"):
        old.unlink()
    for index in range(shards):
        (directory / f"frames-{index}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[index::shards]))


def frame_record(k: int) -> dict:
    timestamp = 1000 * k // FPS + 1000 // (2 * FPS)  # the middle of video frame k
    return {
        "id": f"frame-{k:05d}",
        "timestamp": timestamp,
        "sources": [{
            "id": "cam", "uri": f"images/cam-{k:05d}.jpg", "content_type": "image/jpeg", "width": WIDTH, "height": HEIGHT,
            "timestamp": 0,
            "masks": [{"id": "00", "uri": VIDEO_NAME, "content_type": "video/mp4", "timestamp": timestamp, "width": WIDTH, "height": HEIGHT}],
        }],
        "rois": [{"label": [f"class-{i}"], "sources": ["cam"], "meta": {"_type": "mask"}, "mask": {"id": "00", "value": list(rgb)}}
                 for i, rgb in enumerate(COLOURS)],
    }


def decode_and_measure(video: Path) -> tuple[float, float, int]:
    """Seconds spent in (a) the decode pass with rgb24 conversion and (b) packing + statistics; frames seen."""
    decode_s = stats_s = 0.0
    frames = 0
    with av.open(str(video)) as container:
        decoded = container.decode(video=0)
        while True:
            started = time.perf_counter()
            frame = next(decoded, None)
            if frame is None:
                decode_s += time.perf_counter() - started
                break
            rgb = frame.to_ndarray(format="rgb24")
            decoded_at = time.perf_counter()
            analyse_mask(pack_rgb24(rgb), COLOURS, 0, rle=True)
            stats_s += time.perf_counter() - decoded_at
            decode_s += decoded_at - started
            frames += 1
    return decode_s, stats_s, frames


def framebeam_run(directory: Path, output: Path, workers: int) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", "--input", f"{directory}/frames-*.jsonl", "--output", str(output), "--quiet",
                    f"--direct_num_workers={workers}"], check=True)
    return time.perf_counter() - started


def check_output(output: Path, frames: int) -> None:
    """The run really measured every frame's mask (a fast run that skipped work would prove nothing)."""
    ok = duckdb.sql(f"SELECT count(*) FROM read_parquet('{output}/masks/*.parquet') WHERE status = 'ok'").fetchall()[0][0]
    stats = duckdb.sql(f"SELECT count(*) FROM read_parquet('{output}/label_stats/*.parquet')").fetchall()[0][0]
    if ok != frames or stats != frames * len(COLOURS):
        raise SystemExit(f"framebeam run measured {ok} of {frames} masks ({stats} label_stats rows): look at {output}/issues")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames, and video frames (one each)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0, help="Beam workers, 0 = all cores")
    ap.add_argument("--repeat", type=int, default=1, help="repeat the timings (each repeat prints its own ratio)")
    ap.add_argument("--data", type=Path, help="keep the generated inputs here between runs")
    args = ap.parse_args()
    from transforms.tuning import WorkerSetup

    # framebeam's workers get malloc tuning in their set-up (transforms/tuning.py): give (a) + (b) the same,
    # or the baseline pays page faults the run does not.
    WorkerSetup(malloc=True).apply()
    print(f"PyAV {av.__version__}, {os.cpu_count()} cores, {args.frames} frames -> one {args.frames}-frame {WIDTH}x{HEIGHT} "
          f"video, {len(COLOURS)} colours, {args.shards} shards, workers={args.workers or 'all cores'}")
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-video-run-bench-"))
    data = args.data or tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    try:
        write_inputs(data, args.frames, args.shards)
        for _ in range(args.repeat):
            decode_s, stats_s, decoded = decode_and_measure(data / VIDEO_NAME)
            assert decoded == args.frames, f"the video has {decoded} frames, expected {args.frames}"
            run_s = framebeam_run(data, tmp / "out", args.workers)
            check_output(tmp / "out", args.frames)
            baseline = decode_s + stats_s
            print(f"(a) PyAV decode pass + rgb24  : {decode_s:6.2f} s  {1000 * decode_s / decoded:6.1f} ms/frame")
            print(f"(b) pack + analyse_mask(rle)  : {stats_s:6.2f} s  {1000 * stats_s / decoded:6.1f} ms/frame")
            print(f"(c) framebeam run (subprocess): {run_s:6.2f} s  {1000 * run_s / decoded:6.1f} ms/frame")
            print(f"    ratio run / (a + b) = {run_s / baseline:.2f}   (goal <= 2)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
