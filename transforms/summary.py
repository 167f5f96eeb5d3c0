"""Dataset-level label statistics (``label_summary``) and the checks Datumaro runs on one machine,
as Beam combiners whose accumulators are small enough to merge anywhere, in any order.

Counts are about presence. A class table (``--mask-labels``) declares every class for every mask it
covers, but a mask without a class gets no ``label_stats`` row and sends no event for it: cost follows
what is in the masks, not the size of the table. What is needed about the absent ones comes from two
run-level counts (``RunCounts``): how many masks were decoded, and how many of them (and of their
frames) took their colours from each table entry. So per class:

- ``masks_present`` / ``frames_present``: masks (frames) where it has at least one pixel;
- ``masks_declared`` / ``frames_declared``: decoded masks (frames) for which an ROI or the table declared it;
- pixel-fraction mean, min, max and quantiles over *all decoded masks of the run*, a mask without the
  class counting as 0. The zeros are never sent: they are the run's decoded masks minus the masks where
  the class is present.

Quantiles follow numpy's ``quantile(..., method="lower")``: exact while a class is present in at most
``EXACT_VALUES`` masks (its fractions are kept), else from a ``BINS``-bin histogram of the non-zero
fractions (bin midpoint, clamped to the observed range: error <= 0.5 / BINS). A quantile that falls on
a mask without the class is exactly 0.0.

Components and holes (the shape columns) are small integers: their mean and p95 are over the masks
where the class is present and measured, and the p95 is exact, from a count per distinct value
(``ValueCounts``): d distinct values need a sum of at least d(d-1)/2, so d stays below
sqrt(2 x total) + 1 (~4,500 for a total of 10 million). The same counts give the shape histograms
drift compares (``SHAPE_BIN_EDGES``), exactly; with them, the largest component's share of the class's
pixels in the mask, counted in ``SHARE_BINS`` equal bins (integer arithmetic: exact).

Per label (``label_distributions``), its colours' accumulators are merged: exact value lists and
histograms add up, so the label's pixel-fraction quantiles, histogram and shape histograms are those
of the union of its colours' masks. A mask holding two colours of one label is in both colours'
accumulators (they keep no mask identity), so it counts once per colour there: exact whenever no mask
holds two colours of the label (a label drawn in other colours in other frames, the common case).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import apache_beam as beam
import numpy as np

from transforms.drift import SHAPE_BIN_EDGES
from transforms.findings import Finding
from transforms.flattening import finding_row
from transforms.schema import IssueRow, LabelSummaryRow

if TYPE_CHECKING:
    from transforms.joining import MaskLabels

BINS = 1000
EXACT_VALUES = 256  # per class, the non-zero fractions kept for exact quantiles of rare classes
FRACTION_SCALE = 10**15  # pixel fractions are summed as integers: the same mean whatever the combine order
IMBALANCE_RATIO = 50  # as Datumaro's segmentation validator

LabelKey = tuple[tuple[str, ...], tuple[int, int, int]]


def quantile_lower(q: float, n: int) -> int:
    """The 0-based rank numpy's quantile(method="lower") picks among ``n`` sorted values."""
    return int(math.floor(q * (n - 1)))


SHARE_BINS = 10  # largest component / pixels of the class in the mask: bin k holds k/10 <= share < (k+1)/10, 1.0 in the last


def share_bin(largest: int, pixels: int) -> int:
    return min(SHARE_BINS * largest // pixels, SHARE_BINS - 1)


def shape_bin(value: int) -> int:
    """The shape-histogram bin of a count: 0, 1, 2, 3, 4, 5-7, 8-15, 16-31, 32-63, 64-127, 128-255, 256 and more."""
    return value if value < 5 else min(value.bit_length() + 2, len(SHAPE_BIN_EDGES) - 1)


class ValueCounts:
    """Exact, mergeable distribution of non-negative integers: count per distinct value."""

    __slots__ = ("counts", "total", "n")

    def __init__(self):
        self.counts: dict[int, int] = {}
        self.total = 0  # sum of the values
        self.n = 0      # how many values

    def add(self, value: int) -> None:
        self.counts[value] = self.counts.get(value, 0) + 1
        self.total += value
        self.n += 1

    def merge(self, other: "ValueCounts") -> None:
        for value, count in other.counts.items():
            self.counts[value] = self.counts.get(value, 0) + count
        self.total += other.total
        self.n += other.n

    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def quantile(self, percent: int) -> int | None:
        """The smallest value v with count(<= v) >= percent% of n (numpy's method='inverted_cdf')."""
        if not self.n:
            return None
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen * 100 >= percent * self.n:  # integers: exact
                return value
        raise AssertionError("counts do not add up to n")

    def histogram(self) -> tuple[int, ...] | None:
        """The counts in the SHAPE_BIN_EDGES bins (exact); None when there is no value."""
        if not self.n:
            return None
        out = [0] * len(SHAPE_BIN_EDGES)
        for value, count in self.counts.items():
            out[shape_bin(value)] += count
        return tuple(out)

    def bins(self, n: int) -> tuple[int, ...] | None:
        """The counts of the values 0 .. n-1 (values that are bin indexes already); None when there is no value."""
        return tuple(self.counts.get(k, 0) for k in range(n)) if self.n else None


class MaskEvent(NamedTuple):
    """What LabelAccumulator takes from one label_stats row: its colour in one mask (present colours, and
    ROI-declared colours with 0 pixels; a class-table colour absent from a mask sends nothing)."""

    fraction: float
    pixels: int
    bbox: tuple[int, int, int, int] | None  # (x0, y0, x1, y1); None without pixels
    roi_declared: bool
    components: int | None = None  # None when shapes were not measured
    holes: int | None = None
    largest: int | None = None  # pixels of the largest component (None when not measured)


class FrameEvent(NamedTuple):
    """Once per frame and colour with a label_stats row: present in any of the frame's masks, declared by an ROI."""

    present: bool
    roi_declared: bool


class MasksDecoded(NamedTuple):
    """For RunCounts: n decoded masks whose colours came from the class-table entry ``table_key`` (None: from ROIs)."""

    table_key: str | None
    n: int


class FrameTables(NamedTuple):
    """For RunCounts: a frame whose decoded masks took colours from these class-table entries (sorted)."""

    table_keys: tuple[str, ...]


class LabelAccumulator:
    """One (labels, colour): what its label_stats rows and frames say. Zeros are implicit (see module doc)."""

    __slots__ = ("roi_frames", "frames_present", "roi_masks", "present", "pixels", "fraction_sum",
                 "fraction_min", "fraction_max", "exact", "hist", "bbox_w", "bbox_h", "components", "holes", "largest_share")

    def __init__(self):
        self.roi_frames = self.frames_present = self.roi_masks = self.present = self.pixels = 0
        self.fraction_sum = 0  # in units of 1/FRACTION_SCALE: integer sums do not depend on merge order
        self.fraction_min = float("inf")  # of the non-zero fractions
        self.fraction_max = float("-inf")
        self.exact: list[float] | None = []  # the non-zero fractions while there are at most EXACT_VALUES
        self.hist: np.ndarray | None = None  # of the non-zero fractions, once there are more
        self.bbox_w = self.bbox_h = 0
        self.components = ValueCounts()  # over masks where present and measured
        self.holes = ValueCounts()
        self.largest_share = ValueCounts()  # share_bin of the largest component, same masks (when the event has it)

    def add(self, event: MaskEvent | FrameEvent) -> None:
        if type(event) is FrameEvent:
            self.frames_present += bool(event.present)
            self.roi_frames += bool(event.roi_declared)
            return
        self.roi_masks += bool(event.roi_declared)
        pixels, fraction = event.pixels, event.fraction
        if not pixels:
            return  # an ROI's colour with no pixels: declared, counted above; its 0 is implicit
        if event.components is not None:
            self.components.add(event.components)
            self.holes.add(event.holes)
            if event.largest is not None:
                self.largest_share.add(share_bin(event.largest, pixels))
        self.present += 1
        self.pixels += pixels
        self.fraction_sum += round(fraction * FRACTION_SCALE)
        self.fraction_min = min(self.fraction_min, fraction)
        self.fraction_max = max(self.fraction_max, fraction)
        if self.exact is not None:
            self.exact.append(fraction)
            if len(self.exact) > EXACT_VALUES:
                self._to_hist()
        else:
            self.hist[_bin(fraction)] += 1
        x0, y0, x1, y1 = event.bbox
        self.bbox_w += x1 - x0
        self.bbox_h += y1 - y0

    def _to_hist(self) -> None:
        if self.hist is None:
            self.hist = np.zeros(BINS, dtype=np.int64)
        if self.exact:
            np.add.at(self.hist, np.minimum((np.asarray(self.exact) * BINS).astype(np.int64), BINS - 1), 1)
        self.exact = None

    def merge(self, other: "LabelAccumulator") -> None:
        self.roi_frames += other.roi_frames
        self.frames_present += other.frames_present
        self.roi_masks += other.roi_masks
        self.present += other.present
        self.pixels += other.pixels
        self.fraction_sum += other.fraction_sum
        self.fraction_min = min(self.fraction_min, other.fraction_min)
        self.fraction_max = max(self.fraction_max, other.fraction_max)
        self.bbox_w += other.bbox_w
        self.bbox_h += other.bbox_h
        self.components.merge(other.components)
        self.holes.merge(other.holes)
        self.largest_share.merge(other.largest_share)
        # Exact values survive only while the union has at most EXACT_VALUES: that depends on the
        # total alone, so the result does not depend on the merge order.
        if self.exact is not None and other.exact is not None and len(self.exact) + len(other.exact) <= EXACT_VALUES:
            self.exact.extend(other.exact)
            return
        self._to_hist()
        if other.exact is not None:
            np.add.at(self.hist, np.minimum((np.asarray(other.exact, dtype=float) * BINS).astype(np.int64), BINS - 1), 1)
        else:
            self.hist += other.hist

    def quantile(self, q: float, masks: int) -> float | None:
        """numpy's quantile(method="lower") of the class's fraction over ``masks`` masks (0 where absent)."""
        if masks <= 0:
            return None
        rank = quantile_lower(q, masks) - (masks - self.present)  # among the non-zero fractions
        if rank < 0:
            return 0.0
        if self.exact is not None:
            return sorted(self.exact)[rank]
        index = int(np.searchsorted(np.cumsum(self.hist), rank + 1, side="left"))
        midpoint = (index + 0.5) / BINS
        return min(max(midpoint, self.fraction_min), self.fraction_max)  # exact at the ends


def _bin(fraction: float) -> int:
    return min(int(fraction * BINS), BINS - 1)


class _AccumulatorFn(beam.CombineFn):
    """A combiner over an accumulator class with ``add(event)`` and ``merge(other)``: the output is the accumulator."""

    accumulator: type

    def create_accumulator(self):
        return self.accumulator()

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


class LabelSummaryFn(_AccumulatorFn):
    accumulator = LabelAccumulator


class RunCounts:
    """Run-level counts: decoded masks, and masks/frames whose colours came from each table entry."""

    __slots__ = ("masks", "table_masks", "table_frames")

    def __init__(self):
        self.masks = 0
        self.table_masks: dict[str, int] = defaultdict(int)  # table key -> decoded masks it declared colours for
        self.table_frames: dict[tuple[str, ...], int] = defaultdict(int)  # sorted table keys of a frame -> frames

    def add(self, event: MasksDecoded | FrameTables) -> None:
        if type(event) is MasksDecoded:
            self.masks += event.n
            if event.table_key is not None:
                self.table_masks[event.table_key] += event.n
        else:
            self.table_frames[tuple(event.table_keys)] += 1

    def merge(self, other: "RunCounts") -> None:
        self.masks += other.masks
        for k, n in other.table_masks.items():
            self.table_masks[k] += n
        for k, n in other.table_frames.items():
            self.table_frames[k] += n


class RunCountsFn(_AccumulatorFn):
    accumulator = RunCounts


# One (labels, colour) of the run, counted by presence: a label_summary row, a summary.json entry. Its labels and
# rgb are tuples (classes are grouped and ranked by them); label_summary_rows makes them lists for the table.
LabelSummary = LabelSummaryRow


def rank_key(s: LabelSummary):
    """Most present first, then most pixels; ties by name and colour so the order is stable."""
    return (-s.masks_present, -s.frames_present, -s.total_pixels, s.labels, s.rgb)


def resolve_labels(items: Iterable[tuple[LabelKey, LabelAccumulator]], run: RunCounts,
                   mask_labels: "MaskLabels | None" = None) -> list[LabelSummary]:
    """Every declared (labels, colour) of the run, ranked by presence: the classes that sent events, plus
    the table's classes that were declared for decoded masks but never present (they sent none)."""
    accs: dict[LabelKey, LabelAccumulator] = dict(items)
    table_keys_of: dict[LabelKey, set[str]] = defaultdict(set)
    if mask_labels is not None:
        for key, decls in mask_labels.by_mask.items():
            if run.table_masks.get(key):
                for d in decls:
                    table_keys_of[(d.labels, d.rgb)].add(key)
    n = run.masks
    out = []
    for key in set(accs) | set(table_keys_of):
        a = accs.get(key) or LabelAccumulator()
        tables = table_keys_of.get(key, ())
        masks_declared = a.roi_masks + sum(run.table_masks.get(t, 0) for t in tables)
        frames_declared = a.roi_frames + sum(c for keys, c in run.table_frames.items() if tables and not tables.isdisjoint(keys))
        present = a.present
        out.append(LabelSummary(
            labels=tuple(key[0]), rgb=tuple(key[1]), masks_present=present, frames_present=a.frames_present,
            masks_declared=masks_declared, frames_declared=frames_declared, total_pixels=a.pixels,
            pixel_fraction_mean=a.fraction_sum / FRACTION_SCALE / n if n else None,
            pixel_fraction_min=(a.fraction_min if present >= n else 0.0) if n else None,
            pixel_fraction_max=(a.fraction_max if present else 0.0) if n else None,
            pixel_fraction_p50=a.quantile(0.5, n), pixel_fraction_p95=a.quantile(0.95, n),
            bbox_width_mean=a.bbox_w / present if present else None, bbox_height_mean=a.bbox_h / present if present else None,
            components_mean=a.components.mean(), components_p95=a.components.quantile(95),
            holes_mean=a.holes.mean(), holes_p95=a.holes.quantile(95),
        ))
    out.sort(key=rank_key)
    return out


def label_summary_rows(classes: Sequence[LabelSummary]) -> list[LabelSummaryRow]:
    """label_summary rows, most present first."""
    return [s._replace(labels=list(s.labels), rgb=list(s.rgb)) for s in classes]


def _by_label(classes: Iterable[LabelSummary]) -> dict[tuple[str, ...], list[LabelSummary]]:
    out: dict[tuple[str, ...], list[LabelSummary]] = defaultdict(list)
    for s in classes:
        if s.labels:
            out[s.labels].append(s)
    return out


def summary_findings(classes: Sequence[LabelSummary], min_label_frames: int) -> list[IssueRow]:
    """Dataset-level findings (no shard/line): colour/label inconsistencies, classes never present, rare
    and imbalanced classes (by presence)."""
    by_label = _by_label(classes)
    labels_of: dict[tuple[int, int, int], set] = defaultdict(set)
    for s in classes:
        if s.labels:
            labels_of[s.rgb].add(s.labels)
    out = []

    def add(code: str, message: str) -> None:
        out.append(finding_row(None, None, None, Finding(code, "", message)))

    for labels, rows in sorted(by_label.items()):
        if len(rows) > 1:
            add("label_multiple_colours", f"Label {list(labels)} is drawn in {len(rows)} colours across frames: "
                f"{sorted(list(s.rgb) for s in rows)[:10]}; use one colour per class in a dataset version.")
    for rgb, labelsets in sorted(labels_of.items()):
        if len(labelsets) > 1:
            add("colour_multiple_labels", f"Colour {list(rgb)} stands for {sorted(list(x) for x in labelsets)[:10]} in different frames; "
                "one colour should mean one class.")
    frames_of = {labels: sum(s.frames_present for s in rows) for labels, rows in by_label.items()}
    for labels, rows in sorted(by_label.items()):
        if frames_of[labels] == 0 and any(s.masks_declared for s in rows):
            declared = sum(s.masks_declared for s in rows)
            add("label_never_present", f"Label {list(labels)} (colour {', '.join(str(list(s.rgb)) for s in rows[:3])}) was declared for "
                f"{declared:,} decoded mask(s) but has no pixel in any of them; check its colour in the class table, or drop "
                "the class if this data cannot contain it.")
    for labels, n in sorted(frames_of.items()):
        if 0 < n < min_label_frames:
            add("label_few_samples", f"Label {list(labels)} is present in only {n} frame(s) (< --min-label-frames={min_label_frames}); "
                "collect more samples or merge the class.")
    present = {k: n for k, n in frames_of.items() if n}
    if len(present) >= 2:
        (most, hi), (least, lo) = max(present.items(), key=lambda kv: (kv[1], kv[0])), min(present.items(), key=lambda kv: (kv[1], kv[0]))
        if hi / lo > IMBALANCE_RATIO:
            add("label_imbalance", f"Label {list(most)} is present in {hi} frames, {list(least)} in {lo}: ratio {hi / lo:.0f} > "
                f"{IMBALANCE_RATIO}; rebalance the data or weight the loss.")
    return out


TOP_LABELS = 1000  # summary.json keeps the most present; `labels_omitted` says how many more there were


def label_totals(classes: Sequence[LabelSummary]) -> list[dict]:
    """Per-(labels, colour) counts for summary.json, most present first (at most TOP_LABELS)."""
    return [{"labels": list(s.labels), "rgb": list(s.rgb), "masks_present": s.masks_present, "frames_present": s.frames_present,
             "masks_declared": s.masks_declared, "frames_declared": s.frames_declared, "total_pixels": s.total_pixels}
            for s in classes[:TOP_LABELS]]


def fraction_hist(acc: LabelAccumulator, bins: int = 20) -> tuple[int, ...]:
    """The class's non-zero pixel fractions (masks where present) in ``bins`` equal bins on [0, 1]: bin k holds
    floor(BINS f) // (BINS / bins) = k, f = 1 in the last (the history table's and drift's histogram)."""
    if BINS % bins:
        raise ValueError(f"{BINS} bins do not split into {bins}")
    if acc.exact is not None:
        counts = np.bincount([_bin(f) * bins // BINS for f in acc.exact], minlength=bins)
    else:
        counts = acc.hist.reshape(bins, BINS // bins).sum(axis=1)
    return tuple(int(c) for c in counts)


class LabelDistributions(NamedTuple):
    """One label, its colours merged (see the module doc): what history and drift keep of its distributions."""

    fraction_hist: tuple[int, ...]  # 20 bins over masks where present (``fraction_hist``)
    components_hist: tuple[int, ...] | None  # SHAPE_BIN_EDGES bins over masks where present and measured; None: not measured
    holes_hist: tuple[int, ...] | None
    largest_share_hist: tuple[int, ...] | None  # SHARE_BINS bins of the largest component's share, same masks
    pixel_fraction_p50: float | None  # over the run's decoded masks, 0 where absent (as label_summary)
    pixel_fraction_p95: float | None


def label_distributions(items: Iterable[tuple[LabelKey, LabelAccumulator]], run: RunCounts | None) -> dict[tuple[str, ...], LabelDistributions]:
    """Per label (colours without labels are no class), its colours' accumulators merged: histograms and quantiles."""
    groups: dict[tuple[str, ...], list[LabelAccumulator]] = defaultdict(list)
    for (labels, _), acc in items:
        if labels:
            groups[tuple(labels)].append(acc)
    masks = run.masks if run is not None else 0
    out = {}
    for labels, accs in groups.items():
        if len(accs) == 1:
            acc = accs[0]
        else:
            acc = LabelAccumulator()  # merge() leaves its argument as it was: the colours' accumulators stay theirs
            for a in accs:
                acc.merge(a)
        out[labels] = LabelDistributions(fraction_hist(acc), acc.components.histogram(), acc.holes.histogram(),
                                         acc.largest_share.bins(SHARE_BINS),
                                         acc.quantile(0.5, masks), acc.quantile(0.95, masks))
    return out
