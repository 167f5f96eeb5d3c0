"""What the shape columns cost, and what they find on the real masks.

    .venv/bin/python bench/shapes_bench.py kernel [--masks 20] [--repeat 3]
    .venv/bin/python bench/shapes_bench.py run [--masks 600] [--classes 8|150] [--repeat 2] [--data DIR]
    .venv/bin/python bench/shapes_bench.py real [--shared ../shared]

kernel: per mask, on one core, the time of pyspng's decode alone (the baseline) against the one-pass
        kernel (decode + statistics + RLE crops: statistics.analyse_mask_bytes, which also returns the
        label image), shape_stats on that label image (components, holes, sizes, specks) and
        pixels_outside for a box poly per present colour; on Pillow-drawn random polygon masks
        (1920x1080, 8 colours, and a 150-class table with 20 present), smooth blob masks (1920x1080, 8
        colours) and the real CamVid masks (32 classes).
run:    ``framebeam run`` end to end on 2 cores over --masks polygon masks, every present colour declared
        by an ROI with a box poly, with shape statistics on (the default) and with --no-shape-stats,
        alternating, plus a single-process Pillow decode-only loop over the same PNGs (the kernel issue's
        baseline). Ratios are between runs of the same repeat.
real:   ``framebeam run`` over every mask in ../shared/data/real-masks (each folder's colour table, one
        ROI per colour present with a box poly) and what it finds: specks, holes, mask_outside_roi.
        The real masks carry no ROI polys, so two constructed polys are tried: the colour's own bbox
        (nothing can be outside: a check, must be 0) and the bbox of the colour's largest component
        (pixels outside it are the colour's other fragments: a proxy for "a ROI drawn around the main
        object").
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.shapes import label_image_from_packed, pixels_outside, shape_stats  # noqa: E402
from transforms.statistics import pack_rgb  # noqa: E402  (real: label images of the real masks)

WIDTH, HEIGHT = 1920, 1080


def table(n: int, seed: int = 0) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    codes = rng.choice(1 << 24, size=n, replace=False)
    return [((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255) for c in codes]


def polygon_labels(seed: int, n_present: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Random polygons drawn by Pillow over a background: many edges, as hidden checks draw them."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(30, 400)
        k = int(rng.integers(3, 14))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.3, 1.0, k) * r
        points = [(float(cx + a * np.cos(t)), float(cy + a * np.sin(t))) for a, t in zip(radii, angles)]
        draw.polygon(points, fill=int(rng.integers(0, n_present)))
    return np.asarray(image)


def blob_labels(seed: int, n_present: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for _ in range(40):
        label = int(rng.integers(1, n_present))
        cx, cy = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        rx, ry = int(rng.integers(20, 400)), int(rng.integers(20, 300))
        x0, x1, y0, y1 = max(cx - rx, 0), min(cx + rx + 1, WIDTH), max(cy - ry, 0), min(cy + ry + 1, HEIGHT)
        ys, xs = np.ogrid[y0:y1, x0:x1]
        labels[y0:y1, x0:x1][((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1] = label
    return labels


def png(labels: np.ndarray, palette: list[tuple[int, int, int]]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(palette, dtype=np.uint8)[labels]).save(buffer, format="PNG")
    return buffer.getvalue()


def bboxes(labels: np.ndarray, n: int) -> dict[int, tuple[int, int, int, int]]:
    out = {}
    for i in range(n):
        ys, xs = np.nonzero(labels == i)
        if ys.size:
            out[i] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return out


def box_poly(bbox) -> list[float]:
    x0, y0, x1, y1 = bbox
    return [x0, y0, x1, y0, x1, y1, x0, y1]


# --- kernel ------------------------------------------------------------------------------------------

def best_ms(step, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def kernel(args) -> None:
    import pyspng

    from transforms.statistics import analyse_mask_bytes

    cases = []
    eight = table(8)
    big = table(150, seed=1)
    for i in range(args.masks):
        cases.append(("polygons 1080p, 8 colours", png(polygon_labels(i, 8), eight), eight))
        present = list(np.random.default_rng(i).choice(150, 20, replace=False))
        cases.append(("polygons 1080p, 150-class table (20 present)", png(polygon_labels(i, 20), [big[j] for j in present]), big))
        cases.append(("blobs 1080p, 8 colours", png(blob_labels(i, 8), eight), eight))
    shared = Path(os.environ.get("FRAMEBEAM_SHARED", REPO.parent / "shared"))
    camvid = shared / "data" / "real-masks" / "camvid"
    if camvid.is_dir():
        colours = [tuple(c) for c in json.loads((camvid / "colors.json").read_text()).values()]
        for path in sorted(camvid.glob("*.png"))[: args.masks]:
            cases.append(("CamVid 960x720, 32 classes", path.read_bytes(), colours))
    # compile / load the kernels before timing
    shape_stats(analyse_mask_bytes(cases[0][1], cases[0][2], rle=True)[1].labels, len(cases[0][2]))

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; best of {args.repeat} per mask, one core")
    results: dict[str, list[tuple[float, ...]]] = {}
    for name, data, colours in cases:
        t_decode = best_ms(lambda: pyspng.load(data), args.repeat)
        t_kernel = best_ms(lambda: analyse_mask_bytes(data, colours, rle=True), args.repeat)
        labels = analyse_mask_bytes(data, colours, rle=True)[1].labels
        t_shapes = best_ms(lambda: shape_stats(labels, len(colours)), args.repeat)
        stats = shape_stats(labels, len(colours))
        boxes = bboxes(labels, len(colours))
        counts = np.bincount(labels.ravel(), minlength=256)

        def outside():
            for i, bbox in boxes.items():
                pixels_outside(stats.runs, i, int(counts[i]), bbox, [box_poly(bbox)], labels.shape[1])
        t_outside = best_ms(outside, args.repeat)
        results.setdefault(name, []).append((t_decode, t_kernel, t_shapes, t_outside, len(stats.runs.x0)))
    print(f"{'masks (median over masks of the best of --repeat)':48} {'n':>3} {'pyspng':>9} {'kernel+RLE':>10} {'shapes':>8} "
          f"{'outside':>8} {'kernel/pyspng':>13} {'(kernel+shapes)/pyspng':>22} {'runs':>7}")
    for name, rows in results.items():
        d, k, s, o, runs = (float(np.median(col)) for col in zip(*rows))
        print(f"{name:48} {len(rows):3d} {d:6.2f} ms {k:7.2f} ms {s:5.2f} ms {o:5.2f} ms {k / d:13.2f} {(k + s) / d:22.2f} {runs:7.0f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


# --- run -----------------------------------------------------------------------------------------------

def write_run_inputs(directory: Path, n_masks: int, n_classes: int, shards: int = 8) -> list[Path]:
    masks_dir = directory / "masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
    colours = table(n_classes, seed=1)
    present_n = 8 if n_classes <= 8 else 20
    shard_files = [open(directory / f"frames-{k:03d}.jsonl", "wb") for k in range(shards)]
    paths = []
    for i in range(n_masks):
        present = sorted(np.random.default_rng(i).choice(n_classes, present_n, replace=False).tolist())
        labels = polygon_labels(i, present_n)
        path = masks_dir / f"{i:06d}.png"
        if not path.exists():
            path.write_bytes(png(labels, [colours[j] for j in present]))
        paths.append(path)
        boxes = bboxes(labels, present_n)
        rois = [{"label": [f"class{present[k]}"], "sources": ["cam"], "mask": {"id": "00", "value": list(colours[present[k]])},
                 "poly": box_poly(bbox)} for k, bbox in boxes.items()]
        frame = {"id": f"f{i:06d}", "sources": [{"id": "cam", "uri": f"img/{i}.jpg", "width": WIDTH, "height": HEIGHT,
                                                 "masks": [{"id": "00", "uri": f"masks/{path.name}"}]}], "rois": rois}
        shard_files[i % shards].write(orjson.dumps(frame) + b"\n")
    for f in shard_files:
        f.close()
    return paths


def decode_only(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            np.asarray(image.convert("RGB"))
    return time.perf_counter() - started


def framebeam_run(directory: Path, output: Path, *extra: str) -> float:
    framebeam = Path(sys.executable).with_name("framebeam")
    shutil.rmtree(output, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    subprocess.run([str(framebeam), "run", "--input", f"{directory}/frames-*.jsonl", "--output", str(output), "--quiet",
                    "--direct_num_workers=0", *extra], check=True, env=env)
    return time.perf_counter() - started


def run(args) -> None:
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="framebeam-shapes-bench-"))
    data = args.data or tmp / "in"
    try:
        paths = write_run_inputs(data, args.masks, args.classes)
        from transforms.warmup import warm

        warm()  # numba's on-disk cache filled before timing (workers load it; compiling is not what is measured)
        print(f"{len(paths):,} polygon masks {WIDTH}x{HEIGHT}, {args.classes}-class table, every present colour an ROI with a box poly")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, cores: {os.cpu_count()}")
        for repeat in range(args.repeat):
            t_decode = decode_only(paths)
            order = [("on", ()), ("off", ("--no-shape-stats",))]
            if repeat % 2:
                order.reverse()
            times = {name: framebeam_run(data, tmp / f"out-{name}", *flags) for name, flags in order}
            rate = {name: len(paths) / t for name, t in times.items()}
            print(f"repeat {repeat + 1}: Pillow decode-only loop {len(paths) / t_decode:6.1f} masks/s; "
                  f"framebeam run shapes on {rate['on']:6.1f} masks/s ({times['on']:.1f} s), off {rate['off']:6.1f} masks/s "
                  f"({times['off']:.1f} s); on/off {rate['on'] / rate['off']:.3f}; "
                  f"on/Pillow {rate['on'] * t_decode / len(paths):.2f}, off/Pillow {rate['off'] * t_decode / len(paths):.2f}")
        db = duckdb.connect()
        on = db.execute(f"select count(*), count(components), sum(components), sum(holes) from '{tmp}/out-on/label_stats/*.parquet'").fetchone()
        off = db.execute(f"select count(*), count(components), count(pixels_outside_roi) from '{tmp}/out-off/label_stats/*.parquet'").fetchone()
        print(f"checked: shapes on: {on[0]:,} rows, {on[1]:,} with components (sum {on[2]:,}, holes {on[3]:,}); "
              f"off: {off[0]:,} rows, {off[1]} with components, {off[2]:,} with pixels_outside_roi")
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- real ----------------------------------------------------------------------------------------------

FOLDERS = [("camvid", "colors.json"), ("dubai_aerial", "colors.json"), ("voc", "colors_with_void.json")]


def largest_component_box(labels: np.ndarray, label: int):
    from scipy import ndimage

    regions, n = ndimage.label(labels == label, structure=np.ones((3, 3), bool))
    sizes = np.bincount(regions.ravel())[1:]
    ys, xs = np.nonzero(regions == int(np.argmax(sizes)) + 1)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def real(args) -> None:
    import duckdb

    from transforms.decoding import decode_mask_bytes

    root = Path(args.shared) / "data" / "real-masks"
    tmp = Path(tempfile.mkdtemp(prefix="framebeam-shapes-real-"))
    try:
        for poly_kind in ("bbox", "largest"):
            lines = []
            for folder, table_name in FOLDERS:
                colours = [tuple(c) for c in json.loads((root / folder / table_name).read_text()).values()]
                names = list(json.loads((root / folder / table_name).read_text()))
                codes = [pack_rgb(c) for c in colours]
                for path in sorted((root / folder).glob("*.png")):
                    labels = label_image_from_packed(decode_mask_bytes(path.read_bytes()).packed, codes)
                    h, w = labels.shape
                    rois = []
                    for i, bbox in bboxes(labels, len(colours)).items():
                        box = bbox if poly_kind == "bbox" else largest_component_box(labels, i)
                        rois.append({"label": [names[i]], "sources": ["cam"], "mask": {"id": "00", "value": list(colours[i])},
                                     "poly": box_poly(box)})
                    lines.append(orjson.dumps({"id": f"{folder}/{path.name}", "sources": [{
                        "id": "cam", "uri": "img.png", "width": w, "height": h, "masks": [{"id": "00", "uri": str(path)}]}],
                        "rois": rois}))
            (tmp / "frames-000.jsonl").write_bytes(b"\n".join(lines) + b"\n")
            out = tmp / f"out-{poly_kind}"
            framebeam_run(tmp, out, "--allow-uri-prefix", str(root))
            db = duckdb.connect()
            what = "bbox" if poly_kind == "bbox" else "largest component box"
            print(f"polys = each colour's {what}: {len(lines)} masks")
            stats = db.execute(
                f"select split_part(frame_id, '/', 1) as folder, count(distinct frame_id), count(*), count(components), "
                f"sum(components), count(*) filter (components > 1), sum(holes), count(*) filter (holes > 0), sum(pixels_outside_roi) "
                f"from '{out}/label_stats/*.parquet' group by all order by 1").fetchall()
            issues = {(folder, code): (n, specks) for folder, code, n, specks in db.execute(
                f"select split_part(frame_id, '/', 1), code, count(*), "
                f"sum(try_cast(replace(regexp_extract(message, 'has ([0-9,]+) speck', 1), ',', '') as bigint)) "
                f"from '{out}/issues/*.parquet' group by all").fetchall()}
            speck_masks = dict(db.execute(f"select split_part(frame_id, '/', 1), count(distinct frame_id) from '{out}/issues/*.parquet' "
                                          f"where code = 'mask_speckle' group by all").fetchall())
            for folder, masks, rows, measured, components, fragmented, holes, with_holes, outside in stats:
                speckle, specks = issues.get((folder, "mask_speckle"), (0, 0))
                print(f"  {folder:12} {masks:3} masks, {rows:5,} label_stats rows ({measured:,} with pixels): components {components:,} "
                      f"({fragmented:,} rows with > 1), holes {holes:,} ({with_holes:,} rows with any); specks {specks or 0:,} in "
                      f"{speckle:,} mask_speckle findings ({speck_masks.get(folder, 0)} masks); pixels outside ROI {outside or 0:,}, "
                      f"mask_outside_roi warnings {issues.get((folder, 'mask_outside_roi'), (0, 0))[0]:,}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kernel")
    k.add_argument("--masks", type=int, default=10)
    k.add_argument("--repeat", type=int, default=3)
    r = sub.add_parser("run")
    r.add_argument("--masks", type=int, default=600)
    r.add_argument("--classes", type=int, default=8)
    r.add_argument("--repeat", type=int, default=2)
    r.add_argument("--data", type=Path)
    q = sub.add_parser("real")
    q.add_argument("--shared", default=os.environ.get("FRAMEBEAM_SHARED", str(REPO.parent / "shared")))
    args = ap.parse_args()
    {"kernel": kernel, "run": run, "real": real}[args.what](args)


if __name__ == "__main__":
    main()
