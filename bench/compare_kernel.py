"""The kernel's analyses against another statistics module's, mask by mask: stats, RLE and PNG crops identical.

    git show 649d596:transforms/statistics.py > /tmp/statistics_before_kernel.py     # per-colour numpy code
    .venv/bin/python bench/compare_kernel.py --baseline /tmp/statistics_before_kernel.py [--synthetic 20]

Masks: the sample dataset's (framebeam sample), every real mask in ../shared/data/real-masks (with its
folder's colors.json), and --synthetic masks of each bench set (bench/synthetic_masks.py: blobs and
polygons with 8 colours, polygons with 20 of a 150-colour table). Each mask is analysed at tolerance 0
and 3 with RLE and PNG crops by the baseline module (on decode_mask_bytes' pixels, as before the kernel)
and by the kernel (open_mask + analyse_mask: the fused PNG path); any difference is printed and makes
the exit status 1. The baseline module must be self-contained (the pre-kernel statistics.py is).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_masks import CITYSCAPES_8, blob_labels, class_table, polygon_labels, present_colours, rgb_png  # noqa: E402
from transforms.decoding import decode_mask_bytes, open_mask  # noqa: E402
from transforms.statistics import analyse_mask  # noqa: E402

SHARED = Path(os.environ.get("FRAMEBEAM_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def masks(n_synthetic: int):
    """(name, bytes, colours) for every mask compared."""
    from transforms.sample import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        write_sample(tmp)
        table = json.loads((Path(tmp) / "mask_labels.json").read_text())
        entries = table.get("_all_", []) if isinstance(table, dict) else []
        colours = [tuple(e["value"]) for e in entries] or [(0, 0, 0)]
        for path in sorted((Path(tmp) / "masks").rglob("*")):
            if path.is_file():
                yield f"sample/{path.name}", path.read_bytes(), colours
    for folder in ("camvid", "dubai_aerial", "voc"):
        root = SHARED / "data" / "real-masks" / folder
        colours = [tuple(v) for v in json.loads((root / "colors.json").read_text()).values()]
        for path in sorted(root.glob("*.png")):
            yield f"{folder}/{path.name}", path.read_bytes(), colours
    table150 = class_table(150)
    for seed in range(n_synthetic):
        yield f"blobs/{seed}", rgb_png(blob_labels(seed), CITYSCAPES_8, seam=(0, 0, 1), seed=seed), CITYSCAPES_8
        yield f"polygons/{seed}", rgb_png(polygon_labels(seed), CITYSCAPES_8, seam=(0, 0, 1), seed=seed), CITYSCAPES_8
        yield (f"table150/{seed}", rgb_png(polygon_labels(seed, n_labels=20), present_colours(seed, table150, 20), seam=(0, 0, 1), seed=seed),
               table150)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="a statistics.py to compare with")
    ap.add_argument("--synthetic", type=int, default=20)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("baseline_statistics", args.baseline)
    baseline = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = baseline
    spec.loader.exec_module(baseline)
    compared = different = 0
    for name, data, colours in masks(args.synthetic):
        try:
            packed = decode_mask_bytes(data).packed
        except Exception as error:  # noqa: BLE001 - the sample holds broken masks on purpose
            try:
                analyse_mask(open_mask(data), colours)
            except Exception as kernel_error:  # noqa: BLE001
                same = type(kernel_error) is type(error) and getattr(kernel_error, "code", None) == getattr(error, "code", None)
                print(f"{name}: both refuse ({getattr(error, 'code', error)})" if same else f"{name}: DIFFERENT refusal")
                different += not same
            else:
                print(f"{name}: DIFFERENT: the kernel accepts what decode_mask_bytes refuses")
                different += 1
            continue
        for tolerance in (0, 3):
            old = baseline.analyse_mask(packed, colours, tolerance, rle=True, png=True)
            new = analyse_mask(open_mask(data), colours, tolerance, rle=True, png=True)
            compared += 1
            # asdict: the two modules' dataclasses are different classes, so compare their fields
            if (asdict(old.stats), old.crops_rle, old.crops_png) != (asdict(new.stats), new.crops_rle, new.crops_png):
                different += 1
                print(f"{name} tolerance {tolerance}: DIFFERENT")
    print(f"{compared} analyses compared (masks x tolerance 0, 3; stats, RLE and PNG crops): {different} different")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
