"""History that survives runs: the ``history`` and ``history_runs`` tables, carried forward run to run.

Publishing a run removes the folders of earlier runs, so what a nightly job is judged on over weeks
lives in two small tables written with every run: ``history`` (one row per run and label, and per
run, slice and label with --slice-by) and ``history_runs`` (one row per run: verdict, finding counts,
drift values). Each run reads them from the previous complete run of the same OUTPUT, keeps the last
``--keep-history`` runs (its own included) and writes them into its own run folder before
``_SUCCESS``, like every other table: a run killed before publishing leaves the previous history
whole, and a published run always has the history up to itself. No raw records are kept: a label's
row holds counts, summaries, a 20-bin pixel-fraction histogram and 12-bin components and holes
histograms, which is all drift needs, so
``--baseline previous`` compares with the previous run's history rows, not with its (removed) tables.

The same profiles are read from an output given as ``--baseline DIR``: its history rows when it has
them, else (outputs written before history existed) its ``label_summary`` (no histograms: label_js
is then not computed) or, without that, its ``label_stats``.
"""
from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.drift import (
    HIST_BINS,
    DriftInputError,
    LabelKey,
    LabelProfile,
    RunProfile,
    check_thresholds,
    compare_profiles,
    drift_findings,
    label_distribution,
    summary_view,
)
from transforms.flattening import rows_to_table
from transforms.schema import HISTORY, HISTORY_RUNS, HistoryRow, HistoryRunRow
from transforms.storage import Target
from transforms.uris import redact_uri

MAX_SLICES = 100  # per-slice drift entries kept in summary.json (all slices are in history and label_summary_by_slice)
PREVIOUS = "previous"  # --baseline previous
SUCCESS_MARKER = "_SUCCESS"
RUN_COLUMNS = ("run_id", "started_at", "published_at")


# ---------------------------------------------------------------- this run's profiles


def label_profiles(classes: Iterable[Any], dists: Mapping[LabelKey, Any] | None = None) -> dict[LabelKey, LabelProfile]:
    """Per label (its colours merged) profiles from the run's ``summary.LabelSummary`` classes and their
    ``summary.LabelDistributions`` (``summary.label_distributions``: histograms and quantiles of the merged
    colours). Counts add up over colours; the pixel-fraction mean too (each is over all decoded masks of the run).
    A label with no distributions (declared, never present) has empty histograms and its colours' quantiles."""
    groups: dict[LabelKey, list] = defaultdict(list)
    for s in classes:
        if s.labels:  # a colour declared without labels is no class
            groups[tuple(s.labels)].append(s)
    dists = dists or {}
    profiles = {}
    for labels, group in sorted(groups.items()):
        top = max(group, key=lambda s: (s.masks_present, s.total_pixels))
        dist = dists.get(labels)
        means = [s.pixel_fraction_mean for s in group if s.pixel_fraction_mean is not None]
        profiles[labels] = LabelProfile(
            labels=labels,
            colours=tuple(sorted(tuple(s.rgb) for s in group)),
            frames=sum(s.frames_present for s in group),
            masks=sum(s.masks_declared for s in group),
            masks_present=sum(s.masks_present for s in group),
            total_pixels=sum(s.total_pixels for s in group),
            pixel_fraction_mean=sum(means) if means else None,
            pixel_fraction_p50=dist.pixel_fraction_p50 if dist else top.pixel_fraction_p50,
            pixel_fraction_p95=dist.pixel_fraction_p95 if dist else top.pixel_fraction_p95,
            components_mean=_weighted([s._asdict() for s in group], "components_mean", "masks_present"),
            holes_mean=_weighted([s._asdict() for s in group], "holes_mean", "masks_present"),
            fraction_hist=tuple(dist.fraction_hist) if dist else (0,) * HIST_BINS,
            components_hist=dist.components_hist if dist else None,
            holes_hist=dist.holes_hist if dist else None,
            largest_share_hist=dist.largest_share_hist if dist else None,
        )
    return profiles


def _weighted(rows: Sequence[Mapping[str, Any]], column: str, weight: str) -> float | None:
    """The mean over a label's colours, weighted by each colour's ``weight`` column (None when no colour has it)."""
    pairs = [(r[column], r[weight]) for r in rows if r.get(column) is not None and r.get(weight)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


# ---------------------------------------------------------------- history rows


def label_rows(profiles: Mapping[LabelKey, LabelProfile], drift: Mapping[str, Any] | None, baseline_run_id: str | None,
               slice_key: str | None = None, slice_value: str | None = None) -> list[dict[str, Any]]:
    """``history`` rows of one run (or slice) without the run columns: profiles plus their drift values."""
    shares = label_distribution(profiles.values())
    per_label = {tuple(r["labels"]): r for r in (drift or {}).get("per_label", ())}
    rows = []
    for key, p in sorted(profiles.items()):
        if slice_key is not None and not p.masks_present:
            continue  # a slice keeps rows only for labels drawn in it: many slices x a big class table stays small
        d = per_label.get(key) or {}
        rows.append({
            "slice_key": slice_key, "slice_value": slice_value,
            "labels": list(key), "colours": [list(c) for c in p.colours],
            "frames_present": p.frames, "masks": p.masks, "masks_present": p.masks_present, "total_pixels": p.total_pixels,
            "label_share": shares.get(key, 0.0) if shares else None,
            "presence_rate": p.presence_rate,
            "pixel_fraction_mean": p.pixel_fraction_mean, "pixel_fraction_p50": p.pixel_fraction_p50,
            "pixel_fraction_p95": p.pixel_fraction_p95,
            "components_mean": p.components_mean, "holes_mean": p.holes_mean,
            "fraction_hist": list(p.fraction_hist) if p.fraction_hist is not None else None,
            "components_hist": list(p.components_hist) if p.components_hist is not None else None,
            "holes_hist": list(p.holes_hist) if p.holes_hist is not None else None,
            "largest_share_hist": list(p.largest_share_hist) if p.largest_share_hist is not None else None,
            "baseline_run_id": baseline_run_id if drift is not None else None,
            "share_change": d.get("share_change"), "presence_rate_change": d.get("presence_rate_change"),
            "fraction_js": d.get("fraction_js"), "components_js": d.get("components_js"), "holes_js": d.get("holes_js"),
            "largest_share_js": d.get("largest_share_js"),
            "components_mean_change": d.get("components_mean_change"),
            "holes_mean_change": d.get("holes_mean_change"),
        })
    return rows


def profiles_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[LabelKey, LabelProfile]:
    out = {}
    for r in rows:
        key = tuple(r["labels"] or ())
        out[key] = LabelProfile(
            labels=key, colours=tuple(tuple(c) for c in (r.get("colours") or ())), frames=r.get("frames_present") or 0,
            masks=r.get("masks") or 0, masks_present=r.get("masks_present") or 0, total_pixels=r.get("total_pixels") or 0,
            pixel_fraction_mean=r.get("pixel_fraction_mean"), pixel_fraction_p50=r.get("pixel_fraction_p50"),
            pixel_fraction_p95=r.get("pixel_fraction_p95"), components_mean=r.get("components_mean"),
            holes_mean=r.get("holes_mean"),
            fraction_hist=_tuple(r.get("fraction_hist")), components_hist=_tuple(r.get("components_hist")),
            holes_hist=_tuple(r.get("holes_hist")), largest_share_hist=_tuple(r.get("largest_share_hist")),
        )
    return out


def _tuple(values: Sequence[int] | None) -> tuple[int, ...] | None:
    return tuple(values) if values is not None else None


def run_profile_from_history(history: pa.Table, run_id: str) -> RunProfile | None:
    """A run's profile (whole run and slices) from history rows; None when it has no label rows."""
    rows = [r for r in history.to_pylist() if r["run_id"] == run_id]
    whole = [r for r in rows if r["slice_key"] is None]
    if not whole:
        return None
    slices: dict[tuple[str, str | None], list] = defaultdict(list)
    for r in rows:
        if r["slice_key"] is not None:
            slices[(r["slice_key"], r["slice_value"])].append(r)
    return RunProfile(profiles_from_rows(whole), run_id, "history", {k: profiles_from_rows(v) for k, v in slices.items()})


def history_runs_row(summary: Mapping[str, Any], drift: Mapping[str, Any] | None, labels_present: int | None) -> dict[str, Any]:
    """The ``history_runs`` row of a run, from its summary (before the run columns are final)."""
    findings = summary.get("findings") or {}
    by_code = summary.get("findings_by_code") or {}
    dist = (drift or {}).get("label_distribution") or {}
    breaches = [b["metric"] for b in (drift or {}).get("breaches", ())]
    for s in (drift or {}).get("slices", ()):
        breaches += [f"slice:{s['slice_key']}={s['slice_value']}:{b['metric']}" for b in s.get("breaches", ())]
    return {
        "command": summary.get("command"), "passed": summary.get("passed"), "reasons": list(summary.get("reasons") or []),
        "errors": int(findings.get("error", 0)), "warnings": int(findings.get("warning", 0)), "infos": findings.get("info"),
        "frames": summary.get("frames"), "valid_frames": summary.get("valid_frames"), "records": summary.get("records"),
        "masks_decoded": (summary.get("masks") or {}).get("decoded"), "labels_present": labels_present,
        "findings_by_code": [{"code": c, "severity": v.get("severity"), "count": v.get("count")} for c, v in sorted(by_code.items())],
        "baseline": (drift or {}).get("baseline"), "baseline_run_id": (drift or {}).get("baseline_run_id"),
        "drift_linf": dist.get("linf"), "drift_js": dist.get("js"), "drift_psi": dist.get("psi"),
        "drift_label_js": (drift or {}).get("label_js"), "drift_shape_js": (drift or {}).get("shape_js"), "drift_breaches": breaches,
    }


# ---------------------------------------------------------------- reading an output's tables


@dataclass(frozen=True)
class PublishedTables:
    """Where each table of an output's current complete run is (any layout framebeam has written)."""

    fs: Any
    root: str
    summary: dict[str, Any] | None
    files: dict[str, list[str]] | None  # None: no listing (an old layout): glob ROOT/<table>/*.parquet

    def paths(self, table: str) -> list[str]:
        if self.files is not None:
            return [posixpath.join(self.root, f) for f in self.files.get(table, [])]
        listed = (self.summary or {}).get("tables")
        if isinstance(listed, dict) and table not in listed:
            return []  # a folder left by an earlier run in the same place is not this run's
        return sorted(self.fs.glob(f"{self.root}/{table}/*.parquet"))

    def read(self, table: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        paths = self.paths(table)
        if not paths:
            return None
        parts = []
        for path in paths:
            with self.fs.open(path, "rb") as f:
                parts.append(pq.read_table(f, columns=list(columns) if columns else None))
        return pa.concat_tables(parts, promote_options="permissive")


def published_tables(output: Target | str) -> PublishedTables | None:
    """The current complete run of OUTPUT (through ``_SUCCESS``), or of a folder holding summary.json (a
    run folder, an older layout); None when there is neither."""
    output = Target.of(output)
    fs, root = output.fs, output.path
    for marker in (SUCCESS_MARKER, "summary.json"):
        path = f"{root}/{marker}"
        if fs.exists(path):
            with fs.open(path, "rb") as f:
                summary = orjson.loads(f.read())
            folder, files = summary.get("run_folder"), summary.get("files")
            if marker == SUCCESS_MARKER and folder and isinstance(files, dict):
                return PublishedTables(fs, f"{root}/{folder}", summary, files)
            return PublishedTables(fs, root, summary, None)
    if fs.isdir(root):
        return PublishedTables(fs, root, None, None)
    return None


def conform(table: pa.Table | None, schema: pa.Schema) -> pa.Table:
    """A table written by an earlier framebeam, in today's schema: columns by name, nulls for new ones."""
    if table is None or table.num_rows == 0:
        return schema.empty_table()
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_history(output: Target | str) -> tuple[pa.Table, pa.Table]:
    """(history, history_runs) of OUTPUT's current complete run; empty tables when it has none."""
    tables = published_tables(output)
    if tables is None or tables.summary is None:
        return HISTORY.empty_table(), HISTORY_RUNS.empty_table()
    return conform(tables.read("history"), HISTORY), conform(tables.read("history_runs"), HISTORY_RUNS)


def runs_in_order(history_runs: pa.Table) -> list[str]:
    """Run ids oldest first (by published_at, then run id)."""
    rows = history_runs.select(["run_id", "published_at"]).to_pylist()
    return [r["run_id"] for r in sorted(rows, key=lambda r: (r["published_at"] or "", r["run_id"]))]


# ---------------------------------------------------------------- baselines


@dataclass(frozen=True)
class Baseline:
    profile: RunProfile
    name: str  # for summary.json and messages (credentials removed)


def read_baseline(spec: str, output: Target | str) -> Baseline | None:
    """The run to compare with: ``previous`` (the latest earlier run of OUTPUT with label rows in its history;
    None when there is none) or an output folder (DriftInputError when it has no label tables, read with
    OUTPUT's storage options)."""
    output = Target.of(output)
    if spec == PREVIOUS:
        history, runs = read_history(output)
        with_labels = set(history.filter(pc.is_null(history.column("slice_key"))).column("run_id").to_pylist())
        for run_id in reversed(runs_in_order(runs)):
            if run_id in with_labels:
                profile = run_profile_from_history(history, run_id)
                return Baseline(profile, f"previous run {run_id}")
        tables = published_tables(output)
        if tables is not None and tables.summary is not None and (tables.paths("label_summary") or tables.paths("label_stats")):
            # An output published before history existed: its label tables are still there.
            return Baseline(_profile_from_tables(tables, output.url),
                            f"previous run {tables.summary.get('run_id') or redact_uri(output.url)}")
        return None
    tables = published_tables(output.at(spec))
    if tables is None:
        raise DriftInputError(f"{redact_uri(spec)} does not exist: give the output folder of an earlier `framebeam run` "
                              "(the one holding summary.json), or `previous`.")
    return Baseline(_profile_from_tables(tables, spec), redact_uri(spec))


def _profile_from_tables(tables: PublishedTables, name: str) -> RunProfile:
    run_id = (tables.summary or {}).get("run_id")
    if run_id:
        history = tables.read("history")
        if history is not None:
            profile = run_profile_from_history(conform(history, HISTORY), run_id)
            if profile is not None:
                return profile
    summary_table = tables.read("label_summary")
    if summary_table is not None:
        return RunProfile(_profiles_from_label_summary(summary_table), run_id, "label_summary")
    # label_stats can be huge; only an output without label_summary (an older run) needs it.
    stats = _read_label_stats(tables)
    if stats is not None:
        return RunProfile(_profiles_from_label_stats(stats), run_id, "label_stats")
    raise DriftInputError(
        f"{redact_uri(name)} has no history, label_summary or label_stats table, so its labels cannot be compared: "
        "give an output written by `framebeam run` (or `validate` without --no-decode), and check the path "
        "points at the output folder (the one holding summary.json)."
    )


def _profiles_from_label_summary(table: pa.Table) -> dict[LabelKey, LabelProfile]:
    """Profiles from label_summary rows: today's presence columns, or an older output's frames/masks."""
    groups: dict[LabelKey, list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        if row.get("labels"):
            groups[tuple(row["labels"])].append(row)

    def first(row: Mapping[str, Any], *names: str) -> int:
        return next((row[n] for n in names if row.get(n) is not None), 0)

    out = {}
    for key, rows in groups.items():
        top = max(rows, key=lambda r: first(r, "masks_present", "frames"))
        means = [r["pixel_fraction_mean"] for r in rows if r.get("pixel_fraction_mean") is not None]
        out[key] = LabelProfile(
            labels=key, colours=tuple(sorted(tuple(r["rgb"]) for r in rows)),
            frames=sum(first(r, "frames_present", "frames") for r in rows),
            masks=sum(first(r, "masks_declared", "masks") for r in rows), masks_present=sum(first(r, "masks_present", "frames") for r in rows),
            total_pixels=sum(first(r, "total_pixels") for r in rows),
            pixel_fraction_mean=sum(means) if means and "masks_declared" in rows[0] else _weighted(rows, "pixel_fraction_mean", "masks"),
            pixel_fraction_p50=top.get("pixel_fraction_p50"), pixel_fraction_p95=top.get("pixel_fraction_p95"),
            components_mean=_weighted(rows, "components_mean", "masks_present"),
            holes_mean=_weighted(rows, "holes_mean", "masks_present"),
        )
    return out


STATS_COLUMNS = ["labels", "rgb", "shard", "line", "pixel_count", "pixel_fraction"]


def _read_label_stats(tables: PublishedTables) -> pa.Table | None:
    """label_stats' columns drift needs; components and holes too when it has them (null columns when not)."""
    paths = tables.paths("label_stats")
    if not paths:
        return None
    with tables.fs.open(paths[0], "rb") as f:
        names = pq.read_schema(f).names
    return tables.read("label_stats", STATS_COLUMNS + [c for c in ("components", "holes", "largest_component_pixels") if c in names])


def _profiles_from_label_stats(table: pa.Table) -> dict[LabelKey, LabelProfile]:
    from transforms.summary import SHARE_BINS, ValueCounts, share_bin

    frames: dict[LabelKey, set] = defaultdict(set)
    colours: dict[LabelKey, set] = defaultdict(set)
    fractions: dict[LabelKey, list[float]] = defaultdict(list)
    pixels: dict[LabelKey, int] = defaultdict(int)
    shapes: dict[LabelKey, tuple[ValueCounts, ...]] = defaultdict(lambda: (ValueCounts(), ValueCounts(), ValueCounts()))
    n = table.num_rows

    def column(name: str) -> list:
        return table.column(name).to_pylist() if name in table.column_names else [None] * n

    columns = [table.column(c).to_pylist() for c in STATS_COLUMNS]
    for labels, rgb, shard, line, count, fraction, comp, hole, largest in zip(
            *columns, column("components"), column("holes"), column("largest_component_pixels")):
        if not labels:
            continue
        key = tuple(labels)
        frames[key].add((shard, line))
        colours[key].add(tuple(rgb))
        fractions[key].append(fraction)
        pixels[key] += count
        if count and comp is not None and hole is not None:
            shapes[key][0].add(comp)
            shapes[key][1].add(hole)
            if largest is not None:
                shapes[key][2].add(share_bin(largest, count))
    out = {}
    for key, values in fractions.items():
        f = np.asarray(values, dtype=float)
        present = f[f > 0]
        bins = np.minimum(np.floor(present * 1000).astype(np.int64), 1000) // 50
        hist = np.bincount(np.minimum(bins, HIST_BINS - 1), minlength=HIST_BINS)
        out[key] = LabelProfile(
            labels=key, colours=tuple(sorted(colours[key])), frames=len(frames[key]), masks=f.size,
            masks_present=int(present.size), total_pixels=pixels[key], pixel_fraction_mean=float(f.mean()),
            pixel_fraction_p50=float(np.quantile(f, 0.5)), pixel_fraction_p95=float(np.quantile(f, 0.95)),
            fraction_hist=tuple(int(c) for c in hist),
            components_mean=shapes[key][0].mean() if key in shapes else None,
            holes_mean=shapes[key][1].mean() if key in shapes else None,
            components_hist=shapes[key][0].histogram() if key in shapes else None,
            holes_hist=shapes[key][1].histogram() if key in shapes else None,
            largest_share_hist=shapes[key][2].bins(SHARE_BINS) if key in shapes else None,
        )
    return out


# ---------------------------------------------------------------- comparing this run


def compare_run(classes: Sequence, hists: Mapping | None, baseline_spec: str | None, output: Target | str,
                thresholds: Mapping[str, float], slices: Sequence = ()) -> dict[str, Any]:
    """This run's classes (summary.LabelSummary, with their histograms; ``slices``: slices.SliceSummary) against
    its baseline: {"history": rows, "drift": summary.json view or None, "issues": drift findings rows, "labels_present": n}."""
    current = RunProfile(label_profiles(classes, hists), None, "this run",
                         {(s.key, s.value): label_profiles(s.classes, s.hists) for s in slices})
    baseline = read_baseline(baseline_spec, output) if baseline_spec else None
    rows: list[dict[str, Any]] = []
    issues: list[tuple] = []
    drift = None
    if baseline is None:
        rows += label_rows(current.labels, None, None)
        for (key, value), profiles in sorted(current.slices.items(), key=_slice_order):
            rows += label_rows(profiles, None, None, key, value)
    else:
        result = compare_profiles(current.labels, baseline.profile.labels)
        result["breaches"] = check_thresholds(result, thresholds)
        rows += label_rows(current.labels, result, baseline.profile.run_id)
        slice_results = []
        for (key, value), profiles in sorted(current.slices.items(), key=_slice_order):
            base = baseline.profile.slices.get((key, value))
            if base is None:
                rows += label_rows(profiles, None, None, key, value)
                slice_results.append({"slice_key": key, "slice_value": value, "baseline": False})
                continue
            sliced = compare_profiles(profiles, base)
            sliced["breaches"] = check_thresholds(sliced, thresholds)
            rows += label_rows(profiles, sliced, baseline.profile.run_id, key, value)
            issues += drift_findings(sliced, baseline.name, f"{key}={value}")
            slice_results.append(_slice_view(key, value, sliced))
        issues = drift_findings(result, baseline.name) + issues
        drift = {"baseline": baseline.name, "baseline_run_id": baseline.profile.run_id, "baseline_source": baseline.profile.source,
                 "thresholds": dict(thresholds), **summary_view(result)}
        if current.slices:
            # The slices that moved most (breaches first); a high-cardinality key must not bloat summary.json.
            slice_results.sort(key=lambda r: (not r.get("breaches"), -(r.get("js") or 0.0), r["slice_key"], r["slice_value"] or ""))
            drift["slices"] = slice_results[:MAX_SLICES]
            drift["slices_compared"] = len(slice_results)
    return {"history": rows, "drift": drift, "issues": issues,
            "labels_present": sum(1 for p in current.labels.values() if p.masks_present > 0)}


def _slice_order(item) -> tuple:
    (key, value), _ = item
    return key, value is None, value or ""


def _slice_view(key: str, value: str | None, result: Mapping[str, Any]) -> dict[str, Any]:
    dist = result["label_distribution"]
    top = sorted((r for r in result["per_label"] if r["share_change"]), key=lambda r: (-abs(r["share_change"]), r["labels"]))[:5]
    return {"slice_key": key, "slice_value": value, "baseline": True, "linf": dist["linf"], "js": dist["js"], "psi": dist["psi"],
            "label_js": result["label_js"], "shape_js": result["shape_js"], "breaches": result["breaches"],
            "moved_most": [{"labels": r["labels"], "share_change": r["share_change"]} for r in top]}


# ---------------------------------------------------------------- writing with the run


def history_tables(previous: tuple[pa.Table, pa.Table], run: Mapping[str, Any], label_rows_: Sequence[Mapping[str, Any]],
                   runs_row: Mapping[str, Any], keep: int) -> tuple[pa.Table, pa.Table]:
    """The history tables a run publishes: the previous ones cut to the last ``keep - 1`` runs, plus this run's rows."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    history, runs = previous
    earlier = [r for r in runs_in_order(runs) if r != run["run_id"]]
    kept = pa.array(earlier[max(0, len(earlier) - (keep - 1)):] if keep > 1 else [], pa.string())
    history = history.filter(pc.is_in(history.column("run_id"), value_set=kept))
    runs = runs.filter(pc.is_in(runs.column("run_id"), value_set=kept))
    meta = {c: run.get(c) for c in RUN_COLUMNS}
    # Columns a row leaves out are null, as pyarrow's from_pylist would make them.
    new_history = rows_to_table("history", [HistoryRow(**(dict.fromkeys(HistoryRow._fields) | meta | r)) for r in label_rows_])
    new_runs = rows_to_table("history_runs", [HistoryRunRow(**(dict.fromkeys(HistoryRunRow._fields) | meta | runs_row))])
    return pa.concat_tables([history, new_history]), pa.concat_tables([runs, new_runs])


def write_history(output: Target | str, run_id: str, summary: dict[str, Any], compared: Mapping[str, Any] | None, keep: int) -> list:
    """Write the run's history tables into its incoming folder (published with the run); the WrittenFiles.

    Called just before publish. Nothing is written when the run folder is already complete (a retried publish).
    """
    from transforms import writing

    output = Target.of(output)
    if output.join(writing.RUNS_DIR, run_id, SUCCESS_MARKER).exists():
        return []
    compared = compared or {}
    run = {"run_id": run_id, "started_at": summary.get("started_at"), "published_at": summary.get("published_at")}
    history, runs = history_tables(read_history(output), run, compared.get("history", []),
                                   history_runs_row(summary, summary.get("drift"), compared.get("labels_present")), keep)
    staging = writing.staging_dir(output, run_id)
    return [writing.write_rows("history", history, staging), writing.write_rows("history_runs", runs, staging)]


# ---------------------------------------------------------------- Beam


@dataclass
class CompareLabels(beam.PTransform):
    """(the run's classes, their histograms, its slices) -> summary.json extras (per-label totals, drift), the drift findings' issues
    rows, and this run's history rows (for ``write_history`` at publish)."""

    baseline: str | None = None
    output: Target | str = ""
    thresholds: dict | None = None

    def __post_init__(self):
        super().__init__()
        self.output = Target.of(self.output)

    def expand(self, inputs):
        from transforms.flattening import TableRows
        from transforms.summary import TOP_LABELS, label_totals

        from transforms.portable import Gather

        label_items, label_hists, slice_items = inputs
        # Gathered into one element instead of side inputs, which not every runner supports well (transforms.portable).
        compared = (
            {"classes": label_items, "hists": label_hists, "slices": slice_items}
            | "GatherRun" >> Gather()
            | "CompareBaseline" >> beam.Map(
                lambda g, *args: compare_run(g["classes"][0] if g["classes"] else [], g["hists"][0] if g["hists"] else None, *args,
                                             slices=g["slices"][0] if g["slices"] else ()),
                self.baseline, self.output, dict(self.thresholds or {}))
        )
        extras = (
            label_items | "LabelTotals" >> beam.Map(lambda items: ("labels", label_totals(items))),
            label_items | "LabelsOmitted" >> beam.Map(lambda items: ("labels_omitted", max(0, len(items) - TOP_LABELS))),
            compared | "DriftSummary" >> beam.FlatMap(lambda c: [("drift", c["drift"])] if c["drift"] is not None else []),
        ) | "SummaryExtras" >> beam.Flatten()
        drift_rows = compared | "DriftFindings" >> beam.FlatMap(lambda c: [TableRows("issues", c["issues"])] if c["issues"] else [])
        history = compared | "HistoryRows" >> beam.Map(lambda c: {"history": c["history"], "labels_present": c["labels_present"]})
        return {"extras": extras, "drift_rows": drift_rows, "history": history}
