"""Dataset-level label statistics (``label_summary``) and the checks Datumaro runs on one machine,
here as a Beam combiner: per (labels, colour) an accumulator small enough to merge anywhere.

Quantiles come from a fixed 1,000-bin histogram of pixel fractions (error below 0.001), so the
accumulator has a bounded size however many masks a label has.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from transforms.findings import Finding
from transforms.flattening import finding_row
from transforms.schema import IssueRow, LabelSummaryRow

BINS = 1000
FRACTION_SCALE = 10**15  # pixel fractions are summed as integers: the same mean whatever the combine order
IMBALANCE_RATIO = 50  # as Datumaro's segmentation validator

LabelKey = tuple[tuple[str, ...], tuple[int, int, int]]


class LabelAccumulator:
    __slots__ = ("frames", "masks", "present", "pixels", "fraction_sum", "fraction_min", "fraction_max",
                 "hist", "bbox_w", "bbox_h")

    def __init__(self):
        self.frames = self.masks = self.present = self.pixels = 0
        self.fraction_sum = 0  # in units of 1/FRACTION_SCALE: integer sums do not depend on merge order
        self.fraction_min = float("inf")
        self.fraction_max = float("-inf")
        self.hist = np.zeros(BINS + 1, dtype=np.int64)
        self.bbox_w = self.bbox_h = 0

    def add(self, event: tuple) -> None:
        """('frame',) once per frame; ('mask', fraction, pixels, (x0, y0, x1, y1)) once per decoded mask."""
        if event[0] == "frame":
            self.frames += 1
            return
        _, fraction, pixels, bbox = event
        self.masks += 1
        self.pixels += pixels
        self.fraction_sum += round(fraction * FRACTION_SCALE)
        self.fraction_min = min(self.fraction_min, fraction)
        self.fraction_max = max(self.fraction_max, fraction)
        self.hist[min(int(fraction * BINS), BINS)] += 1
        if pixels:
            self.present += 1
            x0, y0, x1, y1 = bbox
            self.bbox_w += x1 - x0
            self.bbox_h += y1 - y0

    def merge(self, other: "LabelAccumulator") -> None:
        self.frames += other.frames
        self.masks += other.masks
        self.present += other.present
        self.pixels += other.pixels
        self.fraction_sum += other.fraction_sum
        self.fraction_min = min(self.fraction_min, other.fraction_min)
        self.fraction_max = max(self.fraction_max, other.fraction_max)
        self.hist += other.hist
        self.bbox_w += other.bbox_w
        self.bbox_h += other.bbox_h

    def quantile(self, q: float) -> float | None:
        if not self.masks:
            return None
        target = q * self.masks
        index = int(np.searchsorted(np.cumsum(self.hist), target, side="left"))
        midpoint = (index + 0.5) / BINS
        return min(max(midpoint, self.fraction_min), self.fraction_max)  # exact at the ends


class LabelSummaryFn(beam.CombineFn):
    def create_accumulator(self):
        return LabelAccumulator()

    def add_input(self, acc, event):
        acc.add(event)
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        first = next(accs)
        for a in accs:
            first.merge(a)
        return first

    def extract_output(self, acc):
        return acc


def summarise(events: Iterable[tuple[LabelKey, tuple]]) -> list[tuple[LabelKey, LabelAccumulator]]:
    """The combiner without Beam (tests, small runs)."""
    accs: dict[LabelKey, LabelAccumulator] = defaultdict(LabelAccumulator)
    for key, event in events:
        accs[key].add(event)
    return list(accs.items())


def label_summary_rows(items: Sequence[tuple[LabelKey, LabelAccumulator]]) -> list[LabelSummaryRow]:
    rows = []
    for (labels, rgb), a in sorted(items, key=lambda kv: (-kv[1].frames, kv[0])):
        rows.append(LabelSummaryRow(
            labels=list(labels), rgb=list(rgb), frames=a.frames, masks=a.masks, masks_present=a.present, total_pixels=a.pixels,
            pixel_fraction_mean=a.fraction_sum / FRACTION_SCALE / a.masks if a.masks else None,
            pixel_fraction_min=a.fraction_min if a.masks else None, pixel_fraction_max=a.fraction_max if a.masks else None,
            pixel_fraction_p50=a.quantile(0.5), pixel_fraction_p95=a.quantile(0.95),
            bbox_width_mean=a.bbox_w / a.present if a.present else None,
            bbox_height_mean=a.bbox_h / a.present if a.present else None,
        ))
    return rows


def summary_findings(items: Sequence[tuple[LabelKey, LabelAccumulator]], min_label_frames: int) -> list[IssueRow]:
    """Dataset-level findings (no shard/line): colour/label inconsistencies, rare and imbalanced labels."""
    colours_of: dict[tuple[str, ...], set] = defaultdict(set)
    labels_of: dict[tuple[int, int, int], set] = defaultdict(set)
    frames_of: dict[tuple[str, ...], int] = defaultdict(int)
    for (labels, rgb), a in items:
        if not labels:
            continue
        colours_of[labels].add(rgb)
        labels_of[rgb].add(labels)
        frames_of[labels] += a.frames
    out = []

    def add(code: str, message: str) -> None:
        out.append(finding_row(None, None, None, Finding(code, "", message)))

    for labels, colours in sorted(colours_of.items()):
        if len(colours) > 1:
            add("label_multiple_colours", f"Label {list(labels)} is drawn in {len(colours)} colours across frames: "
                f"{sorted(list(c) for c in colours)[:10]}; use one colour per class in a dataset version.")
    for rgb, labelsets in sorted(labels_of.items()):
        if len(labelsets) > 1:
            add("colour_multiple_labels", f"Colour {list(rgb)} stands for {sorted(list(x) for x in labelsets)[:10]} in different frames; "
                "one colour should mean one class.")
    for labels, n in sorted(frames_of.items()):
        if n < min_label_frames:
            add("label_few_samples", f"Label {list(labels)} occurs in only {n} frame(s) (< --min-label-frames={min_label_frames}); "
                "collect more samples or merge the class.")
    if len(frames_of) >= 2:
        (most, hi), (least, lo) = max(frames_of.items(), key=lambda kv: kv[1]), min(frames_of.items(), key=lambda kv: kv[1])
        if lo and hi / lo > IMBALANCE_RATIO:
            add("label_imbalance", f"Label {list(most)} occurs in {hi} frames, {list(least)} in {lo}: ratio {hi / lo:.0f} > "
                f"{IMBALANCE_RATIO}; rebalance the data or weight the loss.")
    return out


TOP_LABELS = 100


def label_totals(items: Sequence[tuple[LabelKey, LabelAccumulator]]) -> list[dict]:
    """Per-label totals for summary.json (most frames first, at most TOP_LABELS)."""
    rows = sorted(items, key=lambda kv: (-kv[1].frames, kv[0]))[:TOP_LABELS]
    return [{"labels": list(labels), "rgb": list(rgb), "frames": a.frames, "masks": a.masks, "total_pixels": a.pixels}
            for (labels, rgb), a in rows]


def label_counts(items: Sequence[tuple[LabelKey, LabelAccumulator]]):
    """This run's frames per label and colours per label, as drift compares them."""
    from transforms.drift import LabelCounts

    frames: dict[tuple[str, ...], int] = defaultdict(int)
    colours: dict[tuple[str, ...], set] = defaultdict(set)
    for (labels, rgb), a in items:
        if labels:
            frames[labels] += a.frames
            colours[labels].add(tuple(rgb))
    return LabelCounts(dict(frames), dict(colours), "label_summary")


def drift_against(items: Sequence[tuple[LabelKey, LabelAccumulator]], baseline: str,
                  storage_options: dict | None = None, max_drift: float | None = None) -> dict:
    """This run's labels compared with an earlier run's output (see transforms.drift)."""
    from transforms.drift import compare_label_counts, read_label_counts
    from transforms.uris import redact_uri

    result = compare_label_counts(label_counts(items), read_label_counts(baseline, storage_options), max_drift=max_drift)
    return {"baseline": redact_uri(baseline), **result}


# --- Beam ------------------------------------------------------------------------------------------------

@dataclass
class CompareLabels(beam.PTransform):
    """The run's label items -> summary.json extras (per-label totals, drift against --baseline) and
    the drift findings' issues rows."""

    baseline: str | None = None
    storage_options: dict | None = None
    max_drift: float | None = None

    def __post_init__(self):
        super().__init__()

    def expand(self, label_items):
        from transforms.drift import drift_findings
        from transforms.flattening import TableRows

        extras = [label_items | "LabelTotals" >> beam.Map(lambda items: ("labels", label_totals(items)))]
        drift_rows = None
        if self.baseline:
            drift = label_items | "CompareBaseline" >> beam.Map(drift_against, self.baseline, self.storage_options, self.max_drift)
            drift_rows = drift | "DriftFindings" >> beam.Map(lambda result: TableRows("issues", drift_findings(result)))
            extras.append(drift | "DriftSummary" >> beam.Map(lambda result: ("drift", result)))
        return {"extras": tuple(extras) | "SummaryExtras" >> beam.Flatten(), "drift_rows": drift_rows}
