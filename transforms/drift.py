"""Drift between two runs' labels: plain functions on per-label profiles, and the findings they raise.

A ``LabelProfile`` is what one run knows about one label (its colours merged): masks declaring it,
masks where it has pixels, pixels, pixel-fraction summaries, a 20-bin histogram of its pixel fraction
over the masks where it is present, and the mask-shape means and histograms (components and holes per
mask where present, in ``SHAPE_BIN_EDGES`` bins; the largest component's share of the label's pixels
in 10 equal bins) when the run measured them. Profiles
come from this run's label accumulators, from the ``history`` table of an earlier run, or (older
outputs) from its ``label_summary`` / ``label_stats`` (``transforms.history`` reads them).

What ``compare_profiles`` computes, always (the values are recorded whether or not a threshold is set):

- the label distribution p(label) = masks_present / sum of masks_present over labels (presence-based:
  a class table declared on every mask does not make every label "frequent"); a label missing from
  one run has share 0 there. Between the two distributions:
  - ``linf``: max over labels of |p - q| (as TensorFlow Data Validation measures categorical drift);
  - ``js``: the Jensen-Shannon divergence in bits (log base 2, so 0 <= js <= 1; 0 log 0 = 0);
  - ``psi``: the population stability index sum (p - q) ln(p / q), each share of 0 replaced by
    ``PSI_EPSILON`` (1e-4) first so an empty cell counts as a large but finite shift.
  If one run has no present label at all, js is 1 (disjoint supports) and linf the other's largest share.
- per label: the change of its share, of its presence rate (masks_present / masks), the JS divergence
  of its pixel-fraction histograms (``fraction_js``; None when either run has no present mask or no
  histogram), the JS divergence of its components, holes and largest-component-share histograms
  (``components_js``, ``holes_js``, ``largest_share_js``; ``shape_js`` the largest of them; None when
  either run did not measure shapes), and
  the change of the shape means when both runs have them; ``label_js`` is the largest ``fraction_js``,
  ``shape_js`` (run level) the largest per-label ``shape_js``.
- labels that appeared (present now, not in the baseline), vanished, or changed colours.

``check_thresholds`` compares the values with ``--max-drift`` thresholds; ``drift_findings`` turns a
result into ``issues`` rows (a breach is an error whose code contains ``drift``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transforms.findings import Finding
from transforms.flattening import finding_row
from transforms.schema import IssueRow

LabelKey = tuple[str, ...]
Colour = tuple[int, int, int]

HIST_BINS = 20  # pixel-fraction histogram: 20 equal bins on [0, 1]
SHAPE_BIN_EDGES = (0, 1, 2, 3, 4, 5, 8, 16, 32, 64, 128, 256)  # components/holes histograms: lower bin edges, the last open
SHAPE_BINS_TEXT = ", ".join(str(a) if b == a + 1 else f"{a}-{b - 1}" for a, b in zip(SHAPE_BIN_EDGES, SHAPE_BIN_EDGES[1:])) + f", {SHAPE_BIN_EDGES[-1]}+"
PSI_EPSILON = 1e-4  # an empty cell's share in PSI
METRICS = ("linf", "js", "psi", "label_js", "shape_js")
METRIC_LIMITS = {"linf": 1.0, "js": 1.0, "psi": math.inf, "label_js": 1.0, "shape_js": 1.0}
METRIC_NAMES = {
    "linf": "L-infinity distance of the label distributions",
    "js": "Jensen-Shannon divergence (bits) of the label distributions",
    "psi": "population stability index of the label distributions",
    "label_js": "largest Jensen-Shannon divergence (bits) of a label's pixel-fraction histograms",
    "shape_js": "largest Jensen-Shannon divergence (bits) of a label's components, holes or largest-component-share histograms",
}
BREACH_CODES = {"linf": "drift_distribution_exceeded", "js": "drift_js_exceeded", "psi": "drift_psi_exceeded",
                "label_js": "drift_label_js_exceeded", "shape_js": "drift_shape_js_exceeded"}
MAX_LABEL_ROWS = 50  # per-label rows kept in summary.json (largest moves first); history keeps them all
TOP_MOVED = 5  # labels named in a breach's message


class DriftInputError(ValueError):
    """An output cannot be compared (no label tables): the message says how to produce one that can."""


@dataclass(frozen=True)
class LabelProfile:
    labels: LabelKey
    colours: tuple[Colour, ...] = ()
    frames: int = 0
    masks: int = 0
    masks_present: int = 0
    total_pixels: int = 0
    pixel_fraction_mean: float | None = None
    pixel_fraction_p50: float | None = None
    pixel_fraction_p95: float | None = None
    components_mean: float | None = None
    holes_mean: float | None = None
    fraction_hist: tuple[int, ...] | None = None  # HIST_BINS counts over masks where present; None: unknown
    components_hist: tuple[int, ...] | None = None  # summary.SHAPE_BIN_EDGES counts over masks where present and measured
    holes_hist: tuple[int, ...] | None = None
    largest_share_hist: tuple[int, ...] | None = None  # SHARE_BINS counts of the largest component's share, same masks

    @property
    def presence_rate(self) -> float | None:
        return self.masks_present / self.masks if self.masks else None


@dataclass(frozen=True)
class RunProfile:
    """One run's labels as drift compares them (``slices``: the same per slice, keyed (key, value))."""

    labels: dict[LabelKey, LabelProfile]
    run_id: str | None = None
    source: str = "history"  # where the profiles were read: history, label_summary, label_stats, this run
    slices: dict[tuple[str, str | None], dict[LabelKey, LabelProfile]] = field(default_factory=dict)


# ---------------------------------------------------------------- distributions and divergences


def label_distribution(profiles: Iterable[LabelProfile]) -> dict[LabelKey, float]:
    """p(label) = masks_present / sum of masks_present; labels never present are left out (empty when none is)."""
    present = {p.labels: p.masks_present for p in profiles if p.masks_present > 0}
    total = sum(present.values())
    return {k: n / total for k, n in present.items()} if total else {}


def linf_distance(current: Mapping[Any, float], baseline: Mapping[Any, float]) -> tuple[float, Any]:
    """max over keys of |current - baseline| (a missing key counts 0), and the key where it is largest."""
    worst_key, worst = None, 0.0
    for key in sorted(set(current) | set(baseline)):
        diff = abs(current.get(key, 0.0) - baseline.get(key, 0.0))
        if diff > worst:
            worst_key, worst = key, diff
    return worst, worst_key


def _xlog2(x: float, m: float) -> float:
    return x * math.log2(x / m) if x > 0 else 0.0


def js_terms(p: Sequence[float], q: Sequence[float]) -> list[float]:
    """Each cell's share of the Jensen-Shannon divergence (bits) of two distributions given as aligned shares."""
    terms = []
    for a, b in zip(p, q):
        m = (a + b) / 2
        terms.append(0.5 * _xlog2(a, m) + 0.5 * _xlog2(b, m) if m > 0 else 0.0)
    return terms


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits of two distributions (aligned shares, each summing to 1), in [0, 1]."""
    return min(1.0, max(0.0, math.fsum(js_terms(p, q))))


def psi_terms(p: Sequence[float], q: Sequence[float], epsilon: float = PSI_EPSILON) -> list[float]:
    """(p - q) ln(p / q) per cell, a share of 0 replaced by ``epsilon``."""
    return [(max(a, epsilon) - max(b, epsilon)) * math.log(max(a, epsilon) / max(b, epsilon)) for a, b in zip(p, q)]


def normalised(counts: Sequence[int]) -> list[float] | None:
    total = sum(counts)
    return [c / total for c in counts] if total else None


def histogram_js(current: Sequence[int] | None, baseline: Sequence[int] | None) -> float | None:
    """JS divergence (bits) of two count histograms; None when either is unknown or empty."""
    if current is None or baseline is None:
        return None
    p, q = normalised(current), normalised(baseline)
    if p is None or q is None:
        return None
    return js_divergence(p, q)


def _change(current: float | None, baseline: float | None) -> float | None:
    return None if current is None or baseline is None else current - baseline


def _larger(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _worst(per_label: Sequence[Mapping[str, Any]], column: str) -> tuple[float | None, list[str] | None]:
    """The largest ``column`` over labels and the label holding it (ties: the first by name); no label when it is 0."""
    value, labels = min(((r[column], r["labels"]) for r in per_label if r[column] is not None),
                        key=lambda t: (-t[0], t[1]), default=(None, None))
    return value, (labels if value else None)


# ---------------------------------------------------------------- comparing two runs


def compare_profiles(current: Mapping[LabelKey, LabelProfile], baseline: Mapping[LabelKey, LabelProfile]) -> dict[str, Any]:
    """Every drift value between two runs' label profiles (JSON-able; ``per_label`` holds every label)."""
    p, q = label_distribution(current.values()), label_distribution(baseline.values())
    keys = sorted(set(p) | set(q) | set(current) | set(baseline))
    ps, qs = [p.get(k, 0.0) for k in keys], [q.get(k, 0.0) for k in keys]
    js_cells, psi_cells = js_terms(ps, qs), psi_terms(ps, qs)
    if p and q:
        linf, _ = linf_distance(p, q)
        js = js_divergence(ps, qs)
    elif p or q:  # one run has no present label at all: the supports are disjoint
        linf, js = max((p or q).values()), 1.0
    else:
        linf = js = 0.0
    psi = math.fsum(psi_cells) if (p or q) else 0.0
    per_label = []
    for i, key in enumerate(keys):
        cur, base = current.get(key), baseline.get(key)
        row = {
            "labels": list(key),
            "baseline_share": qs[i],
            "current_share": ps[i],
            "share_change": ps[i] - qs[i],
            "js_term": js_cells[i],
            "psi_term": psi_cells[i] if (p or q) else 0.0,
            "baseline_presence_rate": base.presence_rate if base else None,
            "current_presence_rate": cur.presence_rate if cur else None,
            "presence_rate_change": _change(cur.presence_rate if cur else None, base.presence_rate if base else None),
            "fraction_js": histogram_js(cur.fraction_hist if cur else None, base.fraction_hist if base else None),
            "components_js": histogram_js(cur.components_hist if cur else None, base.components_hist if base else None),
            "holes_js": histogram_js(cur.holes_hist if cur else None, base.holes_hist if base else None),
            "largest_share_js": histogram_js(cur.largest_share_hist if cur else None, base.largest_share_hist if base else None),
            "components_mean_change": _change(cur.components_mean if cur else None, base.components_mean if base else None),
            "holes_mean_change": _change(cur.holes_mean if cur else None, base.holes_mean if base else None),
        }
        row["shape_js"] = _larger(row["components_js"], row["holes_js"], row["largest_share_js"])
        per_label.append(row)
    label_js, label_js_labels = _worst(per_label, "fraction_js")
    shape_js, shape_js_labels = _worst(per_label, "shape_js")
    _, worst = linf_distance(p, q)
    present_now = {k for k, v in current.items() if v.masks_present > 0}
    present_before = {k for k, v in baseline.items() if v.masks_present > 0}
    colour_changed = [
        {"labels": list(k), "baseline_colours": _colours(baseline[k].colours), "current_colours": _colours(current[k].colours)}
        for k in sorted(set(current) & set(baseline))
        if current[k].colours and baseline[k].colours and set(current[k].colours) != set(baseline[k].colours)
    ]
    shapes = [r for r in per_label if r["components_mean_change"] is not None or r["holes_mean_change"] is not None
              or r["shape_js"] is not None]
    return {
        "label_distribution": {
            "measure": "p(label) = masks_present / sum of masks_present over labels",
            "linf": linf,
            "js": js,
            "psi": psi,
            "psi_epsilon": PSI_EPSILON,
            "largest_shift_labels": list(worst) if worst is not None else None,
            "labels_compared": len(keys),
            "masks_present": {"current": sum(v.masks_present for v in current.values()),
                              "baseline": sum(v.masks_present for v in baseline.values())},
        },
        "label_js": label_js,
        "label_js_labels": list(label_js_labels) if label_js_labels is not None else None,
        "shape_js": shape_js,
        "shape_js_labels": list(shape_js_labels) if shape_js_labels is not None else None,
        "shape_bins": f"components and holes per mask where present: {SHAPE_BINS_TEXT}; largest component's share of "
                      "the label's pixels: 10 equal bins on [0, 1]",
        "shape_columns": bool(shapes),
        "labels_appeared": [{"labels": list(k), "masks_present": current[k].masks_present, "colours": _colours(current[k].colours)}
                            for k in sorted(present_now - present_before)],
        "labels_vanished": [{"labels": list(k), "masks_present": baseline[k].masks_present, "colours": _colours(baseline[k].colours)}
                            for k in sorted(present_before - present_now)],
        "colour_changed": colour_changed,
        "per_label": per_label,
    }


def _colours(colours: Iterable[Sequence[int]]) -> list[list[int]]:
    return [list(c) for c in sorted(tuple(c) for c in colours)]


def moved_most(result: Mapping[str, Any], metric: str, n: int = TOP_MOVED) -> list[dict[str, Any]]:
    """The labels that contribute most to ``metric`` (largest first)."""
    value = {"linf": lambda r: abs(r["share_change"]), "js": lambda r: r["js_term"], "psi": lambda r: r["psi_term"],
             "label_js": lambda r: r["fraction_js"] or 0.0, "shape_js": lambda r: r["shape_js"] or 0.0}[metric]
    rows = sorted(result["per_label"], key=lambda r: (-value(r), r["labels"]))
    return [r for r in rows if value(r) > 0][:n]


def metric_value(result: Mapping[str, Any], metric: str) -> float | None:
    if metric in ("label_js", "shape_js"):
        return result.get(metric)
    return result["label_distribution"][metric]


def check_thresholds(result: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[dict[str, Any]]:
    """One breach per metric whose value exceeds its threshold: value, threshold and the labels that moved most."""
    breaches = []
    for metric in METRICS:
        if metric not in thresholds:
            continue
        value = metric_value(result, metric)
        if value is not None and value > thresholds[metric]:
            breaches.append({"metric": metric, "value": value, "threshold": thresholds[metric],
                             "labels": [_moved(r, metric) for r in moved_most(result, metric)]})
    return breaches


def _moved(row: Mapping[str, Any], metric: str) -> dict[str, Any]:
    out = {"labels": row["labels"], "baseline_share": row["baseline_share"], "current_share": row["current_share"]}
    if metric == "label_js":
        out["fraction_js"] = row["fraction_js"]
    if metric == "shape_js":
        out.update(components_js=row["components_js"], holes_js=row["holes_js"], largest_share_js=row["largest_share_js"])
    return out


def summary_view(result: Mapping[str, Any], max_rows: int = MAX_LABEL_ROWS) -> dict[str, Any]:
    """The result for summary.json: per-label rows limited to the largest moves (history keeps them all)."""
    rows = sorted(result["per_label"], key=lambda r: (-abs(r["share_change"]), -(r["fraction_js"] or 0.0), -(r["shape_js"] or 0.0), r["labels"]))
    return {**result, "per_label": rows[:max_rows]}


def parse_threshold(text: str) -> tuple[str, float]:
    """``VALUE`` (L-infinity) or ``METRIC=VALUE``; ValueError with what is allowed."""
    metric, sep, value = text.partition("=")
    if not sep:
        metric, value = "linf", text
    metric = metric.strip().lower()
    if metric not in METRICS:
        raise ValueError(f"unknown drift metric {metric!r}: use one of {', '.join(METRICS)} (METRIC=VALUE), or a bare VALUE for linf")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not 0.0 <= number <= METRIC_LIMITS[metric]:
        raise ValueError(f"{metric} must be between 0 and {METRIC_LIMITS[metric]:g}, got {value}")
    return metric, number


# ---------------------------------------------------------------- findings


def drift_findings(result: Mapping[str, Any], baseline: str = "the baseline", slice_name: str | None = None) -> list[IssueRow]:
    """Dataset-level ``issues`` rows for a drift result: appeared/vanished/recoloured labels and threshold breaches."""
    rows = []

    def add(code: str, message: str) -> None:
        rows.append(finding_row(None, None, None, Finding(code, "", message)))

    where = f" in slice {slice_name}" if slice_name else ""
    if slice_name is None:
        for item in result["labels_appeared"]:
            add("drift_label_appeared",
                f"Label {item['labels']} has pixels in {item['masks_present']} mask(s) of this run but in none of baseline {baseline}; "
                "if the class is new on purpose, this run becomes the next baseline; else check the class table (--mask-labels) "
                "and the annotation export.")
        for item in result["labels_vanished"]:
            add("drift_label_vanished",
                f"Label {item['labels']} had pixels in {item['masks_present']} mask(s) of baseline {baseline} and has none now; "
                "check whether frames are missing from --input or the class was renamed.")
        for item in result["colour_changed"]:
            add("drift_label_colour_changed",
                f"Label {item['labels']} was drawn in {item['baseline_colours']} in baseline {baseline}, now in "
                f"{item['current_colours']}; masks drawn in the old colour no longer count as this class: fix the colour "
                "table or re-export the masks.")
    for breach in result.get("breaches", ()):
        moved = ", ".join(_describe(m, breach["metric"]) for m in breach["labels"]) or "no single label"
        add("drift_slice_exceeded" if slice_name else BREACH_CODES[breach["metric"]],
            f"{METRIC_NAMES[breach['metric']]}{where} is {breach['value']:.4f} > --max-drift {breach['metric']}={breach['threshold']:g} "
            f"against baseline {baseline}; moved most: {moved}. Check the input selection, or raise the threshold if the change is expected.")
    return rows


def _describe(moved: Mapping[str, Any], metric: str) -> str:
    text = f"{moved['labels']} {moved['baseline_share']:.1%} -> {moved['current_share']:.1%}"
    if metric == "label_js" and moved.get("fraction_js") is not None:
        text = f"{moved['labels']} (pixel-fraction JS {moved['fraction_js']:.3f})"
    if metric == "shape_js":
        parts = [f"{name} JS {moved[key]:.3f}" for name, key in (("components", "components_js"), ("holes", "holes_js"),
                                                                  ("largest-component share", "largest_share_js"))
                 if moved.get(key) is not None]
        text = f"{moved['labels']} ({', '.join(parts)})"
    return text
