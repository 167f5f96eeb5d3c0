"""The report's trends section: the history an OUTPUT keeps across runs, drawn small.

Read from the ``history`` and ``history_runs`` tables only (counts and summaries, never raw records),
so the page about 30 runs of a 150-class table stays small: a strip of per-run verdicts with their
error and warning counts, the drift values of every run as sparklines, and small multiples of the
labels whose share moved most across the runs kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow.compute as pc

from transforms.markup import Markup, h, join
from transforms.report_charts import css_colour
from transforms.report_data import OutputFolder, read_whole

MAX_TREND_LABELS = 12
RECENT_RUNS = 10
RUN_COLUMNS = ["run_id", "published_at", "command", "passed", "errors", "warnings", "drift_linf", "drift_js", "drift_psi",
               "drift_label_js", "drift_shape_js", "drift_breaches"]


class RunPoint(NamedTuple):
    run_id: str
    published_at: str | None
    command: str | None
    passed: bool | None
    errors: int
    warnings: int
    drift_linf: float | None
    drift_js: float | None
    drift_psi: float | None
    drift_label_js: float | None
    drift_shape_js: float | None
    drift_breaches: list[str]


class LabelTrend(NamedTuple):
    labels: tuple[str, ...]
    colour: tuple[int, int, int]
    shares: list[float | None]  # per run, oldest first; None: the run has no label rows
    fraction_js: list[float | None]
    movement: float  # sum of |share change| between consecutive runs


@dataclass(frozen=True)
class Trends:
    runs: list[RunPoint]
    labels: list[LabelTrend]  # the labels that moved most, most first
    labels_total: int


def read_trends(folder: OutputFolder, max_labels: int = MAX_TREND_LABELS) -> Trends | None:
    """The runs kept in the output's history and the labels that moved most; None without history tables."""
    run_files = folder.files("history_runs")
    if not run_files:
        return None
    # A report of an output whose last run was written before a column existed reads it as null.
    columns = [c for c in RUN_COLUMNS if c in folder.parquet(run_files[0]).schema_arrow.names]
    table = read_whole(folder, run_files, columns)
    runs = sorted((RunPoint(**{**dict.fromkeys(RUN_COLUMNS), **r, "errors": r["errors"] or 0, "warnings": r["warnings"] or 0,
                               "drift_breaches": r["drift_breaches"] or []}) for r in table.to_pylist()),
                  key=lambda r: (r.published_at or "", r.run_id))
    order = {r.run_id: i for i, r in enumerate(runs)}
    history = read_whole(folder, folder.files("history"), ["run_id", "slice_key", "labels", "colours", "label_share", "fraction_js"])
    if history.num_rows:
        history = history.filter(pc.is_null(history.column("slice_key")))
    shares: dict[tuple[str, ...], list[float | None]] = {}
    js: dict[tuple[str, ...], list[float | None]] = {}
    colours: dict[tuple[str, ...], tuple[int, int, int]] = {}
    with_labels = set()
    for row in history.to_pylist():
        i = order.get(row["run_id"])
        if i is None:
            continue
        key = tuple(row["labels"] or ())
        with_labels.add(i)
        shares.setdefault(key, [None] * len(runs))[i] = row["label_share"] or 0.0
        js.setdefault(key, [None] * len(runs))[i] = row["fraction_js"]
        if row["colours"]:
            colours[key] = tuple(row["colours"][0])
    trends = []
    for key, series in shares.items():
        # A run with label rows but none for this label had it at share 0.
        filled = [v if v is not None else (0.0 if i in with_labels else None) for i, v in enumerate(series)]
        known = [v for v in filled if v is not None]
        movement = sum(abs(b - a) for a, b in zip(known, known[1:]))
        trends.append(LabelTrend(key, colours.get(key, (128, 128, 128)), filled, js[key], movement))
    trends.sort(key=lambda t: (-t.movement, t.labels))
    return Trends(runs, trends[:max_labels], len(trends))


# ---------------------------------------------------------------- SVG


def svg_run_strip(runs: Sequence[RunPoint], *, chart_id: str = "run-history", width: int = 720) -> Markup:
    """One column per run, oldest left: a verdict cell (green passed, red failed) over bars of its error
    (red) and warning (amber) findings, scaled to the largest count."""
    n = max(len(runs), 1)
    cell = (width - 40) / n
    bars_h, top = 60, 22
    peak = max((max(r.errors, r.warnings) for r in runs), default=0) or 1
    parts = [h('<svg id="{}" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">',
               chart_id, width, top + bars_h + 20, width, top + bars_h + 20)]
    for i, r in enumerate(runs):
        x = 36 + i * cell
        colour = "#888" if r.passed is None else ("#1e7b34" if r.passed else "#b3261e")
        verdict = "no verdict" if r.passed is None else ("passed" if r.passed else "failed")
        breaches = f"; over threshold: {', '.join(r.drift_breaches)}" if r.drift_breaches else ""
        tip = f"{r.run_id} ({r.command or '?'}, {r.published_at or '?'}): {verdict}, {r.errors:,} errors, {r.warnings:,} warnings{breaches}"
        w = max(cell - 2, 1)
        eh, wh = bars_h * r.errors / peak, bars_h * r.warnings / peak
        parts.append(h('<g class="run"><title>{}</title><rect class="verdict-cell" x="{:.1f}" y="2" width="{:.1f}" height="14" fill="{}"/>'
                       '<rect class="bar errors" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#b3261e"/>'
                       '<rect class="bar warnings" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#c77700"/></g>',
                       tip, x, w, colour, x, top + bars_h - eh, w / 2, eh, x + w / 2, top + bars_h - wh, w / 2, wh))
    parts.append(h('<text x="32" y="{}" text-anchor="end" class="tick">{:,}</text><text x="32" y="{}" text-anchor="end" class="tick">0</text>'
                   '<line x1="36" x2="{}" y1="{}" y2="{}" class="axis"/><text x="36" y="{}" class="tick">oldest</text>'
                   '<text x="{}" y="{}" text-anchor="end" class="tick">this run</text></svg>',
                   top + 8, peak, top + bars_h, width - 4, top + bars_h, top + bars_h, top + bars_h + 15, width - 4, top + bars_h + 15))
    return join(parts)


def svg_sparkline(values: Sequence[float | None], *, chart_id: str, colour: Sequence[int] = (74, 120, 181), width: int = 180,
                  height: int = 34, top: float | None = None) -> Markup:
    """A line through the known values (gaps where None), the last one marked; scaled 0..max (or ``top``)."""
    n = len(values)
    peak = top if top is not None else max((v for v in values if v is not None), default=0.0)
    peak = peak or 1.0

    def xy(i: int, v: float) -> tuple[float, float]:
        x = 2 + (width - 6) * (i / (n - 1) if n > 1 else 0.5)
        return x, height - 3 - (height - 6) * min(v, peak) / peak

    segments, current = [], []
    for i, v in enumerate(values):
        if v is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(xy(i, v))
    if current:
        segments.append(current)
    stroke = css_colour(colour)
    lines = join(h('<polyline class="spark" fill="none" stroke="{}" stroke-width="1.5" points="{}"/>', stroke,
                   " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)) for seg in segments if len(seg) > 1)
    last = next(((i, v) for i, v in reversed(list(enumerate(values))) if v is not None), None)
    dot = h('<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>', *xy(*last), stroke) if last else Markup("")
    return h('<svg id="{}" class="chart sparkline" role="img" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" '
             'viewBox="0 0 {} {}"><line x1="2" x2="{}" y1="{}" y2="{}" class="axis"/>{}{}</svg>',
             chart_id, width, height, width, height, width - 4, height - 3, height - 3, lines, dot)


TRENDS_CSS = """
.multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px 16px}
.multiple .name{font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}h3{font-size:14px;margin:10px 0 4px}
"""
