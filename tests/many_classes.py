"""A dataset with a big class table (ADE20K-sized: 150 classes) for report and summary tests and benches.

Masks are Pillow-drawn random polygons (many edges, not smooth blobs) over a background class. Class i
is drawn in a mask with probability ~ 1/(i+1) (a Zipf-like long tail, as real datasets have), and the
last ``never`` classes are in the table but drawn nowhere. Returns the ground truth the run must report.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw


@dataclass
class ManyClasses:
    frames: Path  # frames.jsonl (no ROIs: colours come from the table)
    table: Path  # colors.json, {"Name": [r, g, b]}
    names: list[str]
    masks_present: dict[str, int]  # class -> masks where it has at least one pixel


def class_colours(n: int, seed: int = 7) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    seen: set[tuple[int, int, int]] = set()
    while len(seen) < n:
        seen.add((rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    return sorted(seen)


def write_many_classes(directory: Path, *, classes: int = 150, masks: int = 120, never: int = 6, size: tuple[int, int] = (96, 72),
                       seed: int = 11) -> ManyClasses:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    colours = class_colours(classes, seed)
    # Long, realistic names (ADE20K's are like "chest of drawers, chest, bureau, dresser").
    names = ["background"] + [f"class {i:03d} " + rng.choice(["car", "chest of drawers, chest, bureau, dresser", "pole",
                                                             "traffic light, traffic signal, stoplight", "sky", "x"])
                              for i in range(1, classes)]
    drawable = classes - never
    present = {n: 0 for n in names}
    frames = []
    w, h = size
    for m in range(masks):
        image = Image.new("RGB", size, colours[0])
        draw = ImageDraw.Draw(image)
        for i in range(1, drawable):
            if rng.random() < min(1.0, 1.5 / (i + 1)) or m == i % masks:  # every drawable class at least once
                cx, cy, r = rng.randrange(w), rng.randrange(h), rng.randint(3, max(4, w // 4))
                points = [(cx + rng.randint(-r, r), cy + rng.randint(-r, r)) for _ in range(rng.randint(3, 9))]
                draw.polygon(points, fill=colours[i])
        path = directory / f"m{m:04d}.png"
        image.save(path)
        drawn = {c for _, c in image.getcolors(maxcolors=classes + 1)}
        for i, c in enumerate(colours):
            if c in drawn:
                present[names[i]] += 1
        frames.append({"id": f"f{m}", "sources": [{"id": "img", "uri": "unused.jpg", "masks": [{"id": "00", "uri": path.name}]}],
                       "rois": []})
    (directory / "frames.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    (directory / "colors.json").write_text(json.dumps(dict(zip(names, map(list, colours)))))
    return ManyClasses(directory / "frames.jsonl", directory / "colors.json", names, present)
