"""Drift against a baseline: how this run's labels differ from an earlier run's outputs.

Three checks, on per-label counts of frames where the label is present (has pixels) and colours, read
from ``label_summary`` (or, for an output without one, derived from ``label_stats``):

- labels that appeared (only in this run) or vanished (only in the baseline);
- labels whose set of colours changed;
- label-distribution shift: the L-infinity distance between the two label frequency distributions
  (each label's frames divided by the sum over labels), as TensorFlow Data Validation measures drift
  for categorical features. Labels present in only one run count with frequency 0 in the other.

``compare_runs`` returns a JSON-able dict (for summary.json and the report); ``drift_findings`` turns
it into ``issues`` rows.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.findings import Finding
from transforms.flattening import finding_row
from transforms.uris import redact_uri

LabelKey = tuple[str, ...]
Colour = tuple[int, int, int]

# How many per-label rows the result keeps (largest shifts first): enough for a report, small for JSON.
MAX_LABEL_ROWS = 50


class DriftInputError(ValueError):
    """An output cannot be compared (no label tables): the message says how to produce one that can."""


@dataclass
class LabelCounts:
    """Frames per label and the colours each label is drawn in, for one run's output."""

    frames: dict[LabelKey, int] = field(default_factory=dict)
    colours: dict[LabelKey, set[Colour]] = field(default_factory=dict)
    source_table: str = "label_summary"


# ---------------------------------------------------------------- reading


def label_counts_from_summary(table: pa.Table) -> LabelCounts:
    """Counts from label_summary rows (one per labels+colour): a label's frames add up over its colours.

    Presence: ``frames_present`` (an output written before presence columns existed has only ``frames``,
    the frames declaring the label). A class declared but never present is not in the distribution."""
    column = "frames_present" if "frames_present" in table.column_names else "frames"
    counts = LabelCounts(defaultdict(int), defaultdict(set), "label_summary")
    for labels, rgb, frames in zip(table.column("labels").to_pylist(), table.column("rgb").to_pylist(),
                                   table.column(column).to_pylist()):
        if not labels or not frames:
            continue  # a colour declared without labels is no class to compare; one never present is not in the run
        key = tuple(labels)
        counts.frames[key] += frames
        counts.colours[key].add(tuple(rgb))
    return LabelCounts(dict(counts.frames), dict(counts.colours), "label_summary")


def label_counts_from_stats(table: pa.Table) -> LabelCounts:
    """Counts from label_stats rows, matching label_summary's meaning: distinct (frame, colour) per label
    among rows with pixels (presence)."""
    seen: dict[LabelKey, set[tuple[str, int, Colour]]] = defaultdict(set)
    colours: dict[LabelKey, set[Colour]] = defaultdict(set)
    pixels = table.column("pixel_count").to_pylist() if "pixel_count" in table.column_names else [1] * table.num_rows
    for labels, rgb, shard, line, n in zip(table.column("labels").to_pylist(), table.column("rgb").to_pylist(),
                                           table.column("shard").to_pylist(), table.column("line").to_pylist(), pixels):
        if not labels or not n:
            continue
        key, colour = tuple(labels), tuple(rgb)
        seen[key].add((shard, line, colour))
        colours[key].add(colour)
    return LabelCounts({k: len(v) for k, v in seen.items()}, dict(colours), "label_stats")


def read_label_counts(output: str, storage_options: dict[str, Any] | None = None) -> LabelCounts:
    """Label counts of a published output folder; DriftInputError when it has no label tables."""
    fs, root = fsspec.core.url_to_fs(output, **(storage_options or {}))
    listed = _published_tables(fs, root)
    for table_name, columns, convert in (
        ("label_summary", ["labels", "rgb", "frames_present", "frames"], label_counts_from_summary),
        # label_stats can be huge; only an output without label_summary (an older run) needs it.
        ("label_stats", ["labels", "rgb", "shard", "line", "pixel_count"], label_counts_from_stats),
    ):
        if listed is not None and table_name not in listed:
            continue
        files = sorted(fs.glob(f"{root.rstrip('/')}/{table_name}/*.parquet"))
        if files:
            return convert(_read_files(fs, files, columns))
    raise DriftInputError(
        f"{redact_uri(output)} has no label_summary or label_stats table, so its labels cannot be compared: "
        "give an output written by `framebeam run` (or `validate` without --no-decode), and check the path "
        "points at the output folder (the one holding summary.json)."
    )


def _published_tables(fs, root: str) -> set[str] | None:
    """Tables summary.json lists (stale folders from an earlier run in the same place are ignored)."""
    path = f"{root.rstrip('/')}/summary.json"
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        tables = orjson.loads(f.read()).get("tables")
    return set(tables) if isinstance(tables, dict) else None


def _read_files(fs, files: list[str], columns: list[str]) -> pa.Table:
    parts = []
    for path in files:
        with fs.open(path, "rb") as f:
            present = set(pq.read_schema(f).names)
            f.seek(0)
            parts.append(pq.read_table(f, columns=[c for c in columns if c in present]))  # older outputs lack newer columns
    return pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})


# ---------------------------------------------------------------- comparing


def frequency_distribution(frames: Mapping[LabelKey, int]) -> dict[LabelKey, float]:
    """Each label's share of all label occurrences (sums to 1; empty when there are none)."""
    total = sum(frames.values())
    return {k: n / total for k, n in frames.items()} if total else {}


def linf_distance(current: Mapping[LabelKey, float], baseline: Mapping[LabelKey, float]) -> tuple[float, LabelKey | None]:
    """max over labels of |current - baseline| (a missing label counts 0), and the label where it is largest."""
    worst_key, worst = None, 0.0
    for key in sorted(set(current) | set(baseline)):
        diff = abs(current.get(key, 0.0) - baseline.get(key, 0.0))
        if diff > worst:
            worst_key, worst = key, diff
    return worst, worst_key


def compare_label_counts(current: LabelCounts, baseline: LabelCounts, *, max_drift: float | None = None) -> dict[str, Any]:
    """The drift result (JSON-able) for two runs' label counts."""
    cur_freq = frequency_distribution(current.frames)
    base_freq = frequency_distribution(baseline.frames)
    distance, worst = linf_distance(cur_freq, base_freq)
    appeared = sorted(set(current.frames) - set(baseline.frames))
    vanished = sorted(set(baseline.frames) - set(current.frames))
    colour_changed = [
        {"labels": list(k), "baseline_colours": _colours(baseline.colours[k]), "current_colours": _colours(current.colours[k])}
        for k in sorted(set(current.colours) & set(baseline.colours))
        if current.colours[k] != baseline.colours[k]
    ]
    per_label = [
        {
            "labels": list(k),
            "baseline_frames": baseline.frames.get(k, 0),
            "current_frames": current.frames.get(k, 0),
            "baseline_fraction": base_freq.get(k, 0.0),
            "current_fraction": cur_freq.get(k, 0.0),
            "difference": cur_freq.get(k, 0.0) - base_freq.get(k, 0.0),
        }
        for k in set(cur_freq) | set(base_freq)
    ]
    per_label.sort(key=lambda row: (-abs(row["difference"]), row["labels"]))
    return {
        "labels_appeared": [{"labels": list(k), "frames": current.frames[k], "colours": _colours(current.colours.get(k, ()))} for k in appeared],
        "labels_vanished": [{"labels": list(k), "frames": baseline.frames[k], "colours": _colours(baseline.colours.get(k, ()))} for k in vanished],
        "colour_changed": colour_changed,
        "distribution": {
            "measure": "L-infinity distance between label frequency distributions (frames per label / sum over labels)",
            "distance": distance,
            "largest_shift_labels": list(worst) if worst is not None else None,
            "max_drift": max_drift,
            "exceeded": None if max_drift is None else distance > max_drift,
            "per_label": per_label[:MAX_LABEL_ROWS],
            "labels_compared": len(per_label),
        },
        "label_occurrences": {"current": sum(current.frames.values()), "baseline": sum(baseline.frames.values())},
        "source_tables": {"current": current.source_table, "baseline": baseline.source_table},
    }


def _colours(colours) -> list[list[int]]:
    return [list(c) for c in sorted(colours)]


def compare_runs(current: str, baseline: str, storage_options: dict[str, Any] | None = None, *,
                 max_drift: float | None = None) -> dict[str, Any]:
    """Compare two output folders' labels; DriftInputError when either has no label tables."""
    if max_drift is not None and not 0.0 <= max_drift <= 1.0:
        raise ValueError(f"max_drift must be between 0 and 1 (a difference of frequencies), got {max_drift}")
    result = compare_label_counts(read_label_counts(current, storage_options), read_label_counts(baseline, storage_options),
                                  max_drift=max_drift)
    return {"current": redact_uri(current), "baseline": redact_uri(baseline), **result}


# ---------------------------------------------------------------- findings


def drift_findings(result: Mapping[str, Any], max_drift: float | None = None) -> list[tuple]:
    """Dataset-level ``issues`` rows for a drift result; ``max_drift`` defaults to the one it was computed with."""
    if max_drift is None:
        max_drift = result["distribution"].get("max_drift")
    baseline = result.get("baseline", "the baseline")
    rows = []

    def add(code: str, message: str) -> None:
        rows.append(finding_row(None, None, None, Finding(code, "", message)))

    for item in result["labels_appeared"]:
        add("drift_label_appeared",
            f"Label {item['labels']} is in {item['frames']} frame(s) of this run but not in baseline {baseline}; "
            "if the class is new on purpose, make this run the new baseline, else check the class table (--mask-labels) "
            "and the annotation export.")
    for item in result["labels_vanished"]:
        add("drift_label_vanished",
            f"Label {item['labels']} was in {item['frames']} frame(s) of baseline {baseline} and is absent now; "
            "check whether frames are missing from --input or the class was renamed.")
    for item in result["colour_changed"]:
        add("drift_label_colour_changed",
            f"Label {item['labels']} was drawn in {item['baseline_colours']} in baseline {baseline}, now in "
            f"{item['current_colours']}; masks drawn in the old colour no longer count as this class: fix the colour "
            "table or re-export the masks.")
    dist = result["distribution"]
    if max_drift is not None and dist["distance"] > max_drift:
        worst = dist["largest_shift_labels"]
        row = next((r for r in dist["per_label"] if r["labels"] == worst), None)
        shift = f" ({row['baseline_fraction']:.1%} -> {row['current_fraction']:.1%} of label occurrences)" if row else ""
        add("drift_distribution_exceeded",
            f"Label distribution shifted by {dist['distance']:.4f} (L-infinity; largest for {worst}{shift}) "
            f"> --max-drift {max_drift} against baseline {baseline}; check the input selection, or raise --max-drift "
            "if the change is expected.")
    return rows

