"""framebeam run against Datumaro 1.13 ``datum stats`` on the CamVid masks (issue 14).

    nice -n 5 .venv/bin/python bench/datumaro_bench.py --datum /tmp/dmvenv/bin/datum [--masks 1000 5000] [--tiny 5]

Builds, from the 100 CamVid masks (label_colors.txt, colors.json), for each N:
  - a Datumaro CamVid-layout dataset (label_colors.txt, test.txt with lines ``/test/x.png /testannot/x.png``,
    testannot/ holding the masks repeated to N as hard links under new names; test/ holds the same links);
  - framebeam frames (one JSON Lines file) pointing at the same mask files, run with --mask-labels colors.json.
Then times, in the same run, each as a subprocess:
  - ``datum stats --image-stats false --ann-stats true`` on the dataset (annotation statistics only),
  - ``framebeam run --input frames.jsonl --mask-labels colors.json --output OUT --quiet`` (default runner:
    all cores at N; the tiny start-up run is given the same all-cores flags, since the default runner would
    run it in one process),
each for N masks and for a tiny dataset of --tiny masks (start-up). Per mask = (t(N) - t(tiny)) / (N - tiny), for
wall time and for CPU time (user + system of the tool and every process it started: framebeam's Beam workers
included). The CPU ratio does not depend on how busy the shared machine is; the wall ratio does (on 2 idle cores
it is about twice the CPU ratio when framebeam keeps both cores busy). --repeat R keeps each tool's fastest of R.
Outputs go to a temporary folder beside the inputs, never inside.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.options import ALL_CORES  # noqa: E402

SHARED = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
if not SHARED.exists():
    SHARED = Path("/work/shared")


def place(src: Path, dst: Path) -> None:
    """A hard link (a copy across file systems): Datumaro refuses symlinks that resolve outside the dataset."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build(root: Path, camvid: Path, n: int) -> tuple[Path, Path]:
    """Datumaro CamVid dataset and framebeam frames for n masks (hard links to the originals)."""
    import json

    sources = sorted(camvid.glob("*.png"))
    data = root / f"data{n}"
    ds = data / "camvid"
    (ds / "test").mkdir(parents=True)
    (ds / "testannot").mkdir()
    shutil.copy(camvid / "label_colors.txt", ds / "label_colors.txt")
    lines, frames = [], []
    for i in range(n):
        src = sources[i % len(sources)]
        name = f"{i:05d}_{src.stem}.png"
        place(src, ds / "testannot" / name)
        place(src, ds / "test" / name)  # Datumaro's items want an image path; image stats are off
        lines.append(f"/test/{name} /testannot/{name}\n")
        frames.append({"id": f"{i:05d}_{src.stem}",
                       "sources": [{"id": "img", "uri": f"test/{name}",
                                    "masks": [{"id": "00", "uri": str(ds / "testannot" / name)}]}],
                       "rois": []})
    (ds / "test.txt").write_text("".join(lines))
    inputs = data / "frames"
    inputs.mkdir()
    (inputs / "frames.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    return ds, inputs / "frames.jsonl"


class Timing(tuple):
    """(wall seconds, CPU seconds of the command and all its descendants)."""

    @property
    def wall(self) -> float:
        return self[0]

    @property
    def cpu(self) -> float:
        return self[1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> Timing:
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return Timing((seconds, _children_cpu() - cpu_before))


def fastest(repeat: int, run) -> Timing:
    return min((run() for _ in range(repeat)), key=lambda t: t.wall)


def datum_stats(datum: str, ds: Path, out_root: Path) -> Timing:
    # datum stats writes statistics.json into the current folder by default; run it from a folder beside the inputs
    out_root.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(out_root)
    try:
        return timed([datum, "stats", "--image-stats", "false", "--ann-stats", "true", f"{ds}:camvid"])
    finally:
        os.chdir(cwd)


def framebeam_run(frames: Path, colours: Path, output: Path, flags: tuple[str, ...] = ()) -> Timing:
    framebeam = Path(sys.executable).with_name("framebeam")
    shutil.rmtree(output, ignore_errors=True)
    return timed([str(framebeam), "run", "--input", str(frames), "--mask-labels", str(colours),
                  "--output", str(output), "--quiet", *flags])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datum", default="datum", help="the datum executable (Datumaro 1.13 with [cli])")
    ap.add_argument("--camvid", type=Path, default=SHARED / "data" / "real-masks" / "camvid")
    ap.add_argument("--masks", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--tiny", type=int, default=5, help="masks in the start-up run")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command; the fastest is kept")
    args = ap.parse_args()
    colours = args.camvid / "colors.json"
    version = subprocess.run([args.datum, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"datum: {version}; cores: {os.cpu_count()}; niceness: {os.nice(0)}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny_ds, tiny_frames = build(root, args.camvid, args.tiny)
        for n in args.masks:
            ds, frames = build(root, args.camvid, n)
            out = root / f"out{n}"  # beside data{n}, not inside it
            load_before = os.getloadavg()
            r = args.repeat
            t_dm_tiny = fastest(r, lambda: datum_stats(args.datum, tiny_ds, out / "datum-tiny"))
            t_dm = fastest(r, lambda: datum_stats(args.datum, ds, out / "datum"))
            # The default runner runs a tiny input in one process; its start-up is taken in the mode the N run
            # uses (all cores), and the one-process time is printed too.
            t_fb_tiny = fastest(r, lambda: framebeam_run(tiny_frames, colours, out / "framebeam-tiny", tuple(ALL_CORES)))
            t_fb_tiny_default = framebeam_run(tiny_frames, colours, out / "framebeam-tiny-default")
            t_fb = fastest(r, lambda: framebeam_run(frames, colours, out / "framebeam"))
            load_after = os.getloadavg()
            per = {name: ((big.wall - tiny.wall) / (n - args.tiny), (big.cpu - tiny.cpu) / (n - args.tiny))
                   for name, big, tiny in (("datum", t_dm, t_dm_tiny), ("framebeam", t_fb, t_fb_tiny))}
            print(f"N={n}: load average before {' '.join(f'{v:.2f}' for v in load_before)}, "
                  f"after {' '.join(f'{v:.2f}' for v in load_after)}")
            print(f"  datum stats:   {n} masks {t_dm.wall:.1f} s (CPU {t_dm.cpu:.1f} s), {args.tiny} masks "
                  f"{t_dm_tiny.wall:.1f} s (CPU {t_dm_tiny.cpu:.1f} s) (start-up), per mask "
                  f"{per['datum'][0] * 1000:.1f} ms wall, {per['datum'][1] * 1000:.1f} ms CPU")
            print(f"  framebeam run: {n} masks {t_fb.wall:.1f} s (CPU {t_fb.cpu:.1f} s), {args.tiny} masks "
                  f"{t_fb_tiny.wall:.1f} s (CPU {t_fb_tiny.cpu:.1f} s) (start-up, all cores; {t_fb_tiny_default.wall:.1f} s "
                  f"as the default runner runs it, in one process), per mask {per['framebeam'][0] * 1000:.2f} ms wall, "
                  f"{per['framebeam'][1] * 1000:.2f} ms CPU")
            print(f"  per-mask ratio (start-up subtracted): wall {per['datum'][0] / per['framebeam'][0]:.1f}x "
                  f"(goal >= 15x), CPU {per['datum'][1] / per['framebeam'][1]:.1f}x; "
                  f"end to end: wall {t_dm.wall / t_fb.wall:.1f}x", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(ds.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
