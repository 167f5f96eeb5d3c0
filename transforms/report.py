"""``report.html``: what a person reads after a nightly validation, in one self-contained page.

The page is built from the published tables and summary.json only (so it can be rebuilt for any old
output), with inline SVG charts drawn by the small helpers below: no scripts, no fonts, no network.
Every string that comes from the data (frame ids, labels, shard names, messages) goes through
``html.escape``: labels are user data and may be ``<script>``.

Tables can hold 1e9 rows, so each section reads only the columns it needs: label_summary whole (one
row per label and colour), label_stats as a sample of at most ``MAX_SAMPLE_ROWS`` rows (whole row
groups spread over the files; the page says when it sampled), frames row group by row group with the
``n_errors`` statistics used to skip groups that cannot hold a worse frame, and issues until every
code has its examples.
"""
from __future__ import annotations

import base64
import html
import io
import math
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from PIL import Image

from transforms.decoding import DecodeDeadline, MaskDecodeError, decode_mask_bytes
from transforms.findings import CODES
from transforms.storage import DEFAULT_MAX_MASK_BYTES, ReadProblem, read_mask
from transforms.uris import UriPolicy, redact, redact_uri

REPORT_FILE = "report.html"
MAX_SAMPLE_ROWS = 1_000_000  # label_stats rows read for distributions
MAX_ISSUE_ROWS_SCANNED = 5_000_000  # issues rows read looking for examples
EXAMPLES_PER_CODE = 5
WORST_FRAMES = 10
MAX_CHART_LABELS = 25
PREVIEW_MAX_WIDTH = 320


# ---------------------------------------------------------------- reading the output


@dataclass(frozen=True)
class OutputFolder:
    """An output folder through fsspec, with the tables its summary.json says were published."""

    fs: Any
    root: str
    summary: dict[str, Any]

    @classmethod
    def open(cls, output: str, storage_options: dict[str, Any] | None = None) -> "OutputFolder":
        fs, root = fsspec.core.url_to_fs(output, **(storage_options or {}))
        root = root.rstrip("/")
        summary_path = f"{root}/summary.json"
        if not fs.exists(summary_path):
            raise FileNotFoundError(
                f"{redact_uri(output)} has no summary.json: point at the folder given as --output to a finished "
                "framebeam run (it is written last, with _SUCCESS)."
            )
        with fs.open(summary_path, "rb") as f:
            return cls(fs, root, orjson.loads(f.read()))

    def files(self, table: str) -> list[str]:
        """The table's Parquet files; [] when this run did not publish it (e.g. decode tables after convert)."""
        listed = self.summary.get("tables")
        if isinstance(listed, dict) and table not in listed:
            return []  # a folder left by an earlier run in the same place is not this run's
        return sorted(self.fs.glob(f"{self.root}/{table}/*.parquet"))

    def parquet(self, path: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open(path, "rb"))


class RowGroup(NamedTuple):
    path: str
    index: int
    rows: int


def row_groups(folder: OutputFolder, files: Sequence[str]) -> list[RowGroup]:
    out = []
    for path in files:
        meta = folder.parquet(path).metadata
        out.extend(RowGroup(path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups))
    return out


@dataclass(frozen=True)
class SampledTable:
    table: pa.Table
    total_rows: int

    @property
    def sampled(self) -> bool:
        return self.table.num_rows < self.total_rows


def pick_row_groups(groups: Sequence[RowGroup], max_rows: int) -> list[RowGroup]:
    """Whole row groups spread evenly over the table (not the first ones: those hold the first shards)."""
    total = sum(g.rows for g in groups)
    if total <= max_rows:
        return list(groups)
    mean_rows = total / len(groups)
    wanted = max(1, min(len(groups), math.ceil(max_rows / mean_rows)))
    indexes = np.unique(np.linspace(0, len(groups) - 1, wanted).round().astype(int))
    return [groups[i] for i in indexes]


def read_sample(folder: OutputFolder, files: Sequence[str], columns: Sequence[str], max_rows: int = MAX_SAMPLE_ROWS) -> SampledTable:
    groups = row_groups(folder, files)
    parts = []
    for g in pick_row_groups(groups, max_rows):
        parts.append(folder.parquet(g.path).read_row_group(g.index, columns=list(columns)))
    table = pa.concat_tables(parts) if parts else pa.table({c: pa.array([]) for c in columns})
    return SampledTable(table.slice(0, max_rows), sum(g.rows for g in groups))


def read_whole(folder: OutputFolder, files: Sequence[str], columns: Sequence[str]) -> pa.Table:
    parts = [folder.parquet(p).read(columns=list(columns)) for p in files]
    return pa.concat_tables(parts) if parts else pa.table({c: pa.array([]) for c in columns})


def filtered_rows(folder: OutputFolder, files: Sequence[str], columns: Sequence[str], where: ds.Expression) -> pa.Table:
    """Rows matching ``where``; Parquet statistics let pyarrow skip row groups that cannot match."""
    if not files:
        return pa.table({c: pa.array([]) for c in columns})
    return ds.dataset(list(files), filesystem=folder.fs, format="parquet").to_table(columns=list(columns), filter=where)


def _max_statistic(meta: pq.FileMetaData, group: int, column: str) -> int | None:
    names = meta.schema.names
    if column not in names:
        return None
    stats = meta.row_group(group).column(names.index(column)).statistics
    return stats.max if stats is not None and stats.has_min_max else None


# ---------------------------------------------------------------- the sections' data


class FrameRef(NamedTuple):
    frame_id: str | None
    shard: str | None
    line: int | None
    errors: int
    warnings: int


def worst_frames(folder: OutputFolder, k: int = WORST_FRAMES) -> list[FrameRef]:
    """The k frames with most errors (then warnings), skipping row groups whose max n_errors cannot compete."""
    best: list[FrameRef] = []
    for path in folder.files("frames"):
        pf = folder.parquet(path)
        for i in range(pf.metadata.num_row_groups):
            floor = best[-1].errors if len(best) >= k else 0
            group_max = _max_statistic(pf.metadata, i, "n_errors")
            if group_max is not None and (group_max == 0 or (len(best) >= k and group_max < floor)):
                continue
            counts = pf.read_row_group(i, columns=["n_errors", "n_warnings"])
            errors = counts.column("n_errors").to_numpy(zero_copy_only=False)
            warnings = counts.column("n_warnings").to_numpy(zero_copy_only=False)
            candidates = np.flatnonzero((errors > 0) & (errors >= floor))
            if candidates.size == 0:
                continue
            # Most errors first, then most warnings; keep k per group at most.
            order = candidates[np.lexsort((-warnings[candidates], -errors[candidates]))][:k]
            ids = pf.read_row_group(i, columns=["frame_id", "shard", "line"]).take(pa.array(order))
            for row, e, w in zip(ids.to_pylist(), errors[order], warnings[order]):
                best.append(FrameRef(row["frame_id"], row["shard"], row["line"], int(e), int(w)))
            best.sort(key=lambda f: (-f.errors, -f.warnings))
            del best[k:]
    return best


def codes_of_frames(folder: OutputFolder, frames: Sequence[FrameRef]) -> dict[tuple[str, int], list[str]]:
    """(shard, line) -> distinct finding codes, for a few frames."""
    if not frames:
        return {}
    where = None
    for f in frames:
        term = (ds.field("shard") == f.shard) & (ds.field("line") == f.line)
        where = term if where is None else where | term
    rows = filtered_rows(folder, folder.files("issues"), ["shard", "line", "code"], where)
    out: dict[tuple[str, int], list[str]] = defaultdict(list)
    for row in rows.to_pylist():
        codes = out[(row["shard"], row["line"])]
        if row["code"] not in codes:
            codes.append(row["code"])
    return out


class Example(NamedTuple):
    shard: str | None
    line: int | None
    frame_id: str | None
    message: str


@dataclass(frozen=True)
class FindingExamples:
    by_code: dict[str, list[Example]]
    rows_scanned: int
    complete: bool  # False when the scan stopped at MAX_ISSUE_ROWS_SCANNED


def finding_examples(folder: OutputFolder, counts: Mapping[str, int], per_code: int = EXAMPLES_PER_CODE,
                     max_rows: int = MAX_ISSUE_ROWS_SCANNED) -> FindingExamples:
    """Up to ``per_code`` issues rows per code, reading issues only until every code has its examples."""
    wanted = {code: min(per_code, n) for code, n in counts.items()}
    found: dict[str, list[Example]] = defaultdict(list)
    scanned = 0
    columns = ["shard", "line", "frame_id", "code", "message"]

    def satisfied() -> bool:
        return bool(wanted) and all(len(found[c]) >= n for c, n in wanted.items())

    for path in folder.files("issues"):
        pf = folder.parquet(path)
        for batch in pf.iter_batches(batch_size=65_536, columns=columns):
            if satisfied() or scanned >= max_rows:
                return FindingExamples(dict(found), scanned, satisfied() or scanned < max_rows)
            scanned += batch.num_rows
            codes = batch.column("code").to_pylist()
            for i, code in enumerate(codes):
                if len(found[code]) < wanted.get(code, per_code):
                    found[code].append(Example(batch.column("shard")[i].as_py(), batch.column("line")[i].as_py(),
                                               batch.column("frame_id")[i].as_py(), batch.column("message")[i].as_py()))
    return FindingExamples(dict(found), scanned, True)


class LabelRow(NamedTuple):
    labels: tuple[str, ...]
    colours: list[tuple[int, int, int]]
    frames: int
    masks_present: int
    pixel_fraction_p50: float | None
    pixel_fraction_p95: float | None


def label_rows(folder: OutputFolder) -> list[LabelRow] | None:
    """One row per label (its colours merged), most frames first; None when label_summary was not written."""
    files = folder.files("label_summary")
    if not files:
        return None
    table = read_whole(folder, files, ["labels", "rgb", "frames", "masks_present", "pixel_fraction_p50", "pixel_fraction_p95"])
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in table.to_pylist():
        key = tuple(row["labels"] or ())
        m = merged.setdefault(key, {"colours": [], "frames": 0, "present": 0, "p50": row["pixel_fraction_p50"],
                                    "p95": row["pixel_fraction_p95"], "top": -1})
        m["colours"].append(tuple(row["rgb"]))
        m["frames"] += row["frames"]
        m["present"] += row["masks_present"]
        if row["frames"] > m["top"]:  # quantiles of the label's most common colour
            m["top"], m["p50"], m["p95"] = row["frames"], row["pixel_fraction_p50"], row["pixel_fraction_p95"]
    rows = [LabelRow(k, m["colours"], m["frames"], m["present"], m["p50"], m["p95"]) for k, m in merged.items()]
    return sorted(rows, key=lambda r: (-r.frames, r.labels))


def label_stats_sample(folder: OutputFolder) -> SampledTable | None:
    files = folder.files("label_stats")
    if not files:
        return None
    return read_sample(folder, files, ["labels", "pixel_fraction", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"],
                       max_rows=MAX_SAMPLE_ROWS)


class Distribution(NamedTuple):
    name: str
    colour: tuple[int, int, int]
    low: float
    q1: float
    median: float
    q3: float
    high: float
    n: int


def distributions(values_by_label: Mapping[tuple[str, ...], np.ndarray], colours: Mapping[tuple[str, ...], tuple[int, int, int]],
                  order: Sequence[tuple[str, ...]]) -> list[Distribution]:
    out = []
    for key in order:
        values = values_by_label.get(key)
        if values is None or values.size == 0:
            continue
        low, q1, median, q3, high = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
        out.append(Distribution(label_name(key), colours.get(key, (128, 128, 128)), float(low), float(q1), float(median),
                                float(q3), float(high), int(values.size)))
    return out


def group_by_label(labels: Sequence[Sequence[str] | None], values: np.ndarray) -> dict[tuple[str, ...], np.ndarray]:
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, labs in enumerate(labels):
        index[tuple(labs or ())].append(i)
    return {k: values[np.asarray(v)] for k, v in index.items()}


# ---------------------------------------------------------------- mask preview


@dataclass(frozen=True)
class MaskPreview:
    png: bytes
    width: int
    height: int
    frame_id: str | None
    shard: str
    line: int
    uri: str
    legend: list[tuple[tuple[int, int, int], str, float | None]]  # colour, name, pixel fraction in this mask


def choose_preview_mask(folder: OutputFolder, max_rows: int = 200_000) -> list[dict[str, Any]]:
    """Decoded still-image masks from the start of the masks table, most declared colours first."""
    columns = ["frame_id", "shard", "line", "source_id", "mask_id", "resolved_uri", "content_type", "status",
               "n_declared_colours", "width", "height", "top_undeclared"]
    candidates: list[dict[str, Any]] = []
    scanned = 0
    for path in folder.files("masks"):
        for batch in folder.parquet(path).iter_batches(batch_size=16_384, columns=columns):
            scanned += batch.num_rows
            ok = pc.and_(pc.equal(batch.column("status"), "ok"),
                         pc.starts_with(pc.fill_null(batch.column("content_type"), ""), "image/"))
            candidates.extend(r for r in batch.filter(ok).to_pylist() if r["resolved_uri"])
            if len(candidates) >= 50 or scanned >= max_rows:
                break
        if len(candidates) >= 50 or scanned >= max_rows:
            break
    candidates.sort(key=lambda r: -(r["n_declared_colours"] or 0))
    return candidates


def mask_preview(folder: OutputFolder, storage_options: dict[str, Any] | None = None) -> MaskPreview | str:
    """The preview, or why there is none (a sentence for the page)."""
    if not folder.files("masks"):
        return "No masks table in this output."
    params = folder.summary.get("parameters") or {}
    # Mask URIs come from the frames: read only what the run itself was allowed to read.
    policy = UriPolicy(tuple(params.get("allow_uri_prefixes") or ()), bool(params.get("allow_http")))
    max_pixels = int(params.get("max_mask_pixels") or 100_000_000)
    problems = []
    max_bytes = int(params.get("max_mask_bytes") or DEFAULT_MAX_MASK_BYTES)
    timeout = float(params.get("mask_decode_timeout") or 60.0)
    for row in choose_preview_mask(folder)[:3]:
        # The same checked reader as the run: policy on what is really read, no redirects, bounded.
        try:
            deadline = DecodeDeadline(timeout)
            data = read_mask(row["resolved_uri"], policy=policy, storage_options=storage_options, max_bytes=max_bytes, deadline=deadline)
            decoded = decode_mask_bytes(data, max_pixels=max_pixels, deadline=deadline)
        except (ReadProblem, MaskDecodeError) as e:
            problems.append(f"{redact_uri(row['resolved_uri'])}: {e.message}")
            continue
        return MaskPreview(*_downscaled_png(decoded.packed), row["frame_id"], row["shard"], row["line"],
                           row["resolved_uri"], _legend(folder, row))
    if problems:
        return "No mask could be previewed: " + "; ".join(problems)
    return "No decoded still-image mask (status ok, image/*) in this output, so there is nothing to preview."


def _downscaled_png(packed: np.ndarray) -> tuple[bytes, int, int]:
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if image.width > PREVIEW_MAX_WIDTH:
        height = max(1, round(image.height * PREVIEW_MAX_WIDTH / image.width))
        image = image.resize((PREVIEW_MAX_WIDTH, height), Image.Resampling.NEAREST)  # NEAREST keeps colours exact
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue(), image.width, image.height


def _legend(folder: OutputFolder, mask: Mapping[str, Any]) -> list[tuple[tuple[int, int, int], str, float | None]]:
    where = (ds.field("shard") == mask["shard"]) & (ds.field("line") == mask["line"])
    where &= ds.field("source_id").is_null() if mask["source_id"] is None else ds.field("source_id") == mask["source_id"]
    where &= ds.field("mask_id").is_null() if mask["mask_id"] is None else ds.field("mask_id") == mask["mask_id"]
    rows = filtered_rows(folder, folder.files("label_stats"), ["labels", "rgb", "pixel_fraction"], where).to_pylist()
    legend = [(tuple(r["rgb"]), label_name(r["labels"]), r["pixel_fraction"])
              for r in sorted(rows, key=lambda r: -r["pixel_fraction"])]
    mask_pixels = (mask["width"] or 0) * (mask["height"] or 0)
    for item in mask["top_undeclared"] or []:
        legend.append((tuple(item["rgb"]), "undeclared", item["pixels"] / mask_pixels if mask_pixels else None))
    return legend


# ---------------------------------------------------------------- SVG helpers


class Bar(NamedTuple):
    name: str
    value: float
    colour: tuple[int, int, int]
    note: str = ""  # tooltip text beyond name and value


def css_colour(rgb: Sequence[int]) -> str:
    r, g, b = (min(255, max(0, int(c))) for c in rgb)
    return f"rgb({r},{g},{b})"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= x (axis maxima people can read)."""
    if x <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(x))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= x * (1 - 1e-12):
            return step * power
    return 10 * power


def svg_bar_chart(bars: Sequence[Bar], *, chart_id: str, value_format: str = "{:,.0f}", width: int = 540) -> str:
    """Horizontal bars, one row per item, filled with the item's own colour."""
    row, name_w, value_w = 20, 170, 80
    plot_w = width - name_w - value_w
    top = max((b.value for b in bars), default=0) or 1
    height = row * len(bars) + 6
    parts = [f'<svg id="{_e(chart_id)}" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, b in enumerate(bars):
        y = 3 + i * row
        w = max(1.0, plot_w * b.value / top) if b.value > 0 else 0
        value = value_format.format(b.value)
        parts.append(
            f'<g><title>{_e(b.name)}: {_e(value)}{_e(" — " + b.note) if b.note else ""}</title>'
            f'<text x="{name_w - 6}" y="{y + 14}" text-anchor="end" class="tick">{_e(_short(b.name, 26))}</text>'
            f'<rect class="bar" x="{name_w}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" fill="{css_colour(b.colour)}"/>'
            f'<text x="{name_w + w + 5:.1f}" y="{y + 14}" class="value">{_e(value)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_box_plots(boxes: Sequence[Distribution], *, chart_id: str, width: int = 540, percent: bool = True) -> str:
    """One horizontal box plot per row: whiskers at min/max, box at the quartiles, a line at the median."""
    row, name_w, right = 22, 170, 20
    plot_w = width - name_w - right
    axis_max = nice_ceiling(max((b.high for b in boxes), default=1.0))
    height = row * len(boxes) + 30

    def x(v: float) -> float:
        return name_w + plot_w * v / axis_max

    parts = [f'<svg id="{_e(chart_id)}" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, b in enumerate(boxes):
        y = 4 + i * row
        mid = y + row / 2 - 2
        fmt = (lambda v: f"{v:.2%}") if percent else (lambda v: f"{v:,.1f}")
        parts.append(
            f'<g class="box"><title>{_e(b.name)} (n={b.n:,}): min {fmt(b.low)}, quartiles {fmt(b.q1)} / {fmt(b.median)} / '
            f'{fmt(b.q3)}, max {fmt(b.high)}</title>'
            f'<text x="{name_w - 6}" y="{mid + 4}" text-anchor="end" class="tick">{_e(_short(b.name, 26))}</text>'
            f'<line x1="{x(b.low):.1f}" x2="{x(b.high):.1f}" y1="{mid}" y2="{mid}" class="whisker"/>'
            f'<rect x="{x(b.q1):.1f}" y="{y + 3}" width="{max(1.5, x(b.q3) - x(b.q1)):.1f}" height="{row - 10}" '
            f'fill="{css_colour(b.colour)}" class="iqr"/>'
            f'<line x1="{x(b.median):.1f}" x2="{x(b.median):.1f}" y1="{y + 1}" y2="{y + row - 5}" class="median"/></g>'
        )
    axis_y = 4 + len(boxes) * row
    parts.append(f'<line x1="{name_w}" x2="{name_w + plot_w}" y1="{axis_y}" y2="{axis_y}" class="axis"/>')
    for k in range(5):
        v = axis_max * k / 4
        label = f"{v:.1%}" if percent else f"{v:,.0f}"
        parts.append(f'<text x="{x(v):.1f}" y="{axis_y + 16}" text-anchor="middle" class="tick">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_histogram(values: np.ndarray, *, chart_id: str, title: str, bins: int = 24, width: int = 420) -> str:
    """Counts of ``values`` in equal-width bins from 0 to a round maximum."""
    height, left, bottom = 170, 44, 34
    plot_w, plot_h = width - left - 10, height - bottom - 22
    top = nice_ceiling(float(values.max()) if values.size else 1.0)
    counts, edges = np.histogram(values, bins=bins, range=(0, top))
    peak = int(counts.max()) if counts.size and counts.max() > 0 else 1
    bar_w = plot_w / bins
    parts = [f'<svg id="{_e(chart_id)}" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<text x="{left}" y="13" class="title">{_e(title)}</text>']
    for i, n in enumerate(counts):
        h = plot_h * n / peak
        parts.append(f'<rect class="bar" x="{left + i * bar_w + 0.5:.1f}" y="{22 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                     f'height="{h:.1f}"><title>{edges[i]:,.0f}–{edges[i + 1]:,.0f} px: {int(n):,}</title></rect>')
    base = 22 + plot_h
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" class="axis"/>')
    for k in range(5):
        v = top * k / 4
        parts.append(f'<text x="{left + plot_w * k / 4:.1f}" y="{base + 15}" text-anchor="middle" class="tick">{v:,.0f}</text>')
    parts.append(f'<text x="{left - 4}" y="30" text-anchor="end" class="tick">{peak:,}</text>'
                 f'<text x="{left - 4}" y="{base}" text-anchor="end" class="tick">0</text>'
                 f'<text x="{left + plot_w / 2:.1f}" y="{height - 2}" text-anchor="middle" class="tick">pixels</text></svg>')
    return "".join(parts)


# ---------------------------------------------------------------- HTML


def label_name(labels: Iterable[str] | None) -> str:
    labels = list(labels or ())
    return ", ".join(labels) if labels else "(no label)"


def _location(shard: str | None, line: int | None) -> str:
    if shard is None:
        return "dataset"
    return f"{posixpath.basename(shard.rstrip('/')) or shard}:{line}" if line is not None else shard


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """``rows`` hold HTML that is already escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(section_id: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{note_html}{body}</section>'


def _missing(reason: str) -> str:
    return f'<p class="missing">{_e(reason)}</p>'


NO_DECODE = "Not available: this output has no mask decoding tables (it was written by `convert` or with --no-decode). Run `framebeam run` to get them."


def _headline(summary: Mapping[str, Any]) -> str:
    frames = int(summary.get("frames") or 0)
    valid = int(summary.get("valid_frames") or 0)
    findings = summary.get("findings") or {}
    errors, warnings = int(findings.get("error") or 0), int(findings.get("warning") or 0)
    valid_pct = f"{valid / frames:.1%}" if frames else "–"
    verdict = ""
    passed = summary.get("passed")
    if isinstance(passed, bool):
        verdict = f'<div class="verdict {"pass" if passed else "fail"}">{"PASSED" if passed else "FAILED"}</div>'
    tiles = [("frames", f"{frames:,}"), ("valid", valid_pct), ("errors", f"{errors:,}"), ("warnings", f"{warnings:,}")]
    tiles_html = "".join(f'<div class="tile {name}"><div class="num">{_e(v)}</div><div class="lbl">{name}</div></div>'
                         for name, v in tiles)
    meta = " · ".join(_e(x) for x in (
        f"framebeam {summary.get('command', '')}".strip(),
        f"started {summary.get('started_at', '?')}",
        f"published {summary.get('published_at', '?')}",
    ))
    return f'<header id="headline">{verdict}<div class="tiles">{tiles_html}</div><p class="meta">{meta}</p></header>'


def _findings_section(folder: OutputFolder) -> str:
    by_code = folder.summary.get("findings_by_code") or {}
    counts = {code: int(info.get("count") or 0) for code, info in by_code.items()}
    if not counts:
        return _section("findings", "Findings by code", '<p class="ok">No findings.</p>')
    examples = finding_examples(folder, counts)
    rows = []
    for code, n in sorted(counts.items(), key=lambda kv: (by_code[kv[0]].get("severity") != "error", -kv[1], kv[0])):
        severity = by_code[code].get("severity") or (CODES[code].severity if code in CODES else "?")
        found = examples.by_code.get(code, [])
        places = [e for e in found if e.shard is not None]
        where = ", ".join(
            f'<span class="loc" title="{_e(e.frame_id or "")}">{_e(_location(e.shard, e.line))}</span>' for e in places
        ) or '<span class="dim">dataset-level</span>'
        message = f'<div class="msg">{_e(_short(found[0].message, 300))}</div>' if found else ""
        meaning = CODES[code].meaning if code in CODES else ""
        rows.append((f'<span class="sev {_e(severity)}">{_e(severity)}</span>', f"<code>{_e(code)}</code>", f"{n:,}",
                     f'<div class="meaning">{_e(meaning)}</div>{message}', where))
    note = "" if examples.complete else _e(f"Examples come from the first {examples.rows_scanned:,} issues rows.")
    return _section("findings", "Findings by code",
                    _table(["severity", "code", "count", "what it means / first message", "examples (shard:line)"], rows, "findings"),
                    note)


def _labels_section(labels: list[LabelRow] | None) -> str:
    if labels is None:
        return _section("labels", "Label frequency", _missing(NO_DECODE))
    if not labels:
        return _section("labels", "Label frequency", _missing("No labelled colours were declared for any decoded mask."))
    shown = labels[:MAX_CHART_LABELS]
    bars = [Bar(label_name(r.labels), r.frames, r.colours[0],
                f"{len(r.colours)} colours" if len(r.colours) > 1 else f"colour {list(r.colours[0])}") for r in shown]
    note = "Frames in which each label was declared for a decoded mask, bars in the label's own colour."
    if len(labels) > len(shown):
        note += f" Top {len(shown)} of {len(labels):,} labels."
    return _section("labels", "Label frequency", svg_bar_chart(bars, chart_id="label-frequency"), _e(note))


def _label_sections(labels: list[LabelRow] | None, sample: SampledTable | None) -> str:
    """Frequency and pixel fractions side by side (same labels, same order), bbox sizes below."""
    pixel, bbox = _distribution_sections(labels, sample)
    return f'<div class="pair">{_labels_section(labels)}{pixel}</div>{bbox}'


def _distribution_sections(labels: list[LabelRow] | None, sample: SampledTable | None) -> tuple[str, str]:
    if labels is None or sample is None:
        return (_section("pixel-fractions", "Pixel fraction per label", _missing(NO_DECODE)),
                _section("bbox-sizes", "Bounding-box sizes", _missing(NO_DECODE)))
    table = sample.table
    sampled = (f"From a sample of {table.num_rows:,} of {sample.total_rows:,} label_stats rows (whole row groups spread "
               "over the table)." if sample.sampled else f"From all {table.num_rows:,} label_stats rows.")
    label_list = table.column("labels").to_pylist()
    order = [r.labels for r in labels[:MAX_CHART_LABELS]]
    colours = {r.labels: r.colours[0] for r in labels}
    fractions = group_by_label(label_list, table.column("pixel_fraction").to_numpy(zero_copy_only=False).astype(float))
    boxes = distributions(fractions, colours, order)
    pixel_body = svg_box_plots(boxes, chart_id="pixel-fraction") if boxes else _missing("No label_stats rows.")
    pixel = _section("pixel-fractions", "Pixel fraction per label", pixel_body,
                     _e("Share of the mask's pixels in the label's colour, per mask: whiskers at min and max, box from the "
                        "25th to the 75th percentile, line at the median. " + sampled))

    present = pc.is_valid(table.column("bbox_x0"))
    boxed = table.filter(present)
    widths = (pc.subtract(boxed.column("bbox_x1"), boxed.column("bbox_x0"))).to_numpy(zero_copy_only=False).astype(float)
    heights = (pc.subtract(boxed.column("bbox_y1"), boxed.column("bbox_y0"))).to_numpy(zero_copy_only=False).astype(float)
    if widths.size == 0:
        return pixel, _section("bbox-sizes", "Bounding-box sizes", _missing("No label colour had any pixels, so there are no boxes."))
    boxed_labels = boxed.column("labels").to_pylist()
    by_w, by_h = group_by_label(boxed_labels, widths), group_by_label(boxed_labels, heights)
    rows = [(_swatch(colours.get(k, (128, 128, 128))) + _e(label_name(k)), f"{by_w[k].size:,}",
             f"{np.median(by_w[k]):,.0f} × {np.median(by_h[k]):,.0f}",
             f"{np.quantile(by_w[k], 0.05):,.0f} × {np.quantile(by_h[k], 0.05):,.0f}",
             f"{by_w[k].max():,.0f} × {by_h[k].max():,.0f}") for k in order if k in by_w]
    charts = (f'<div class="row">{svg_histogram(widths, chart_id="bbox-width", title="bbox width")}'
              f'{svg_histogram(heights, chart_id="bbox-height", title="bbox height")}</div>')
    body = charts + _table(["label", "masks with pixels", "median w × h", "5th pct w × h", "max w × h"], rows, "compact")
    return pixel, _section("bbox-sizes", "Bounding-box sizes", body,
                            _e("Bounding box of each label's pixels in each mask, in pixels. " + sampled))


def _swatch(rgb: Sequence[int]) -> str:
    return f'<span class="swatch" style="background:{css_colour(rgb)}"></span>'


def _worst_section(folder: OutputFolder) -> str:
    if not folder.files("frames"):
        return _section("worst-frames", "Worst frames", _missing("No frames table in this output."))
    frames = worst_frames(folder)
    if not frames:
        return _section("worst-frames", "Worst frames", '<p class="ok">No frame has an error.</p>')
    codes = codes_of_frames(folder, frames)
    rows = [(f"<code>{_e(f.frame_id or '')}</code>", f'<span title="{_e(f.shard or "")}">{_e(_location(f.shard, f.line))}</span>',
             f"{f.errors:,}", f"{f.warnings:,}", ", ".join(f"<code>{_e(c)}</code>" for c in codes.get((f.shard, f.line), [])))
            for f in frames]
    return _section("worst-frames", "Worst frames", _table(["frame id", "shard:line", "errors", "warnings", "codes"], rows),
                    _e(f"The {len(frames)} frames with most errors (then warnings)."))


def _preview_section(folder: OutputFolder, storage_options: dict[str, Any] | None) -> str:
    preview = mask_preview(folder, storage_options)
    if isinstance(preview, str):
        return _section("mask-preview", "Mask preview", _missing(preview))
    img = base64.b64encode(preview.png).decode("ascii")
    legend = "".join(
        f'<li>{_swatch(rgb)}<span class="{"undeclared" if name == "undeclared" else ""}">{_e(name)}</span> '
        f'<span class="dim">{_e(list(rgb))}{_e(f" · {frac:.1%}") if frac is not None else ""}</span></li>'
        for rgb, name, frac in preview.legend
    )
    scale = max(1, PREVIEW_MAX_WIDTH // preview.width)  # small masks shown enlarged, pixels kept sharp
    body = (f'<div class="preview"><img alt="mask preview" width="{preview.width * scale}" height="{preview.height * scale}" '
            f'src="data:image/png;base64,{img}"/><ul class="legend">{legend}</ul></div>')
    note = _e(f"{preview.uri} — frame {preview.frame_id} ({_location(preview.shard, preview.line)}), declared colours "
              "with their share of the mask's pixels" + ("; undeclared colours marked." if any(n == "undeclared" for _, n, _ in preview.legend) else "."))
    return _section("mask-preview", "Mask preview", body, note)


def _drift_section(drift: Mapping[str, Any] | None) -> str:
    if not drift:
        return ""
    dist = drift.get("distribution") or {}
    exceeded = dist.get("exceeded")
    verdict = "" if exceeded is None else (
        f'<span class="sev {"error" if exceeded else "ok"}">{"exceeds" if exceeded else "within"} --max-drift {_e(dist.get("max_drift"))}</span>')
    lines = [f'<p>L-infinity distance between label frequency distributions: <b>{float(dist.get("distance") or 0):.4f}</b> {verdict}</p>']

    def label_list(items: Sequence[Mapping[str, Any]], what: str) -> str:
        if not items:
            return f"<li>No label {what}.</li>"
        return "".join(f"<li>{_swatch((item.get('colours') or [[128, 128, 128]])[0])}{_e(label_name(item['labels']))} "
                       f"<span class='dim'>({int(item['frames']):,} frames)</span> {what}</li>" for item in items[:30])

    changed = "".join(f"<li>{_e(label_name(c['labels']))}: {''.join(_swatch(x) for x in c['baseline_colours'])} → "
                      f"{''.join(_swatch(x) for x in c['current_colours'])} <span class='dim'>{_e(c['baseline_colours'])} → "
                      f"{_e(c['current_colours'])}</span></li>" for c in drift.get("colour_changed", [])[:30]) or "<li>No colour changed.</li>"
    lines.append(f"<ul>{label_list(drift.get('labels_appeared', []), 'appeared')}"
                 f"{label_list(drift.get('labels_vanished', []), 'vanished')}{changed}</ul>")
    rows = [(_e(label_name(r["labels"])), f"{r['baseline_fraction']:.2%}", f"{r['current_fraction']:.2%}",
             f"{r['difference']:+.2%}") for r in (dist.get("per_label") or [])[:10]]
    if rows:
        lines.append(_table(["label", "baseline", "this run", "shift"], rows, "compact"))
    return _section("drift", "Drift against the baseline", "".join(lines), _e(f"Baseline: {drift.get('baseline', '?')}"))


def _run_section(summary: Mapping[str, Any]) -> str:
    tables = summary.get("tables") or {}
    table_rows = [(f"<code>{_e(k)}</code>", f"{int(v):,}") for k, v in sorted(tables.items())]
    params = [(f"<code>{_e(k)}</code>", _e(orjson.dumps(v).decode())) for k, v in sorted((summary.get("parameters") or {}).items())]
    versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted((summary.get("versions") or {}).items()))
    body = (f'<div class="row"><div>{_table(["table", "rows"], table_rows, "compact")}</div>'
            f'<div>{_table(["parameter", "value"], params, "compact")}</div></div><p class="dim">{versions}</p>')
    return _section("run", "Run", body)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;background:#f4f5f7;margin:0}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:0 0 6px}
section,header{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 18px;margin:0 0 14px}
.tiles{display:flex;gap:12px;flex-wrap:wrap}.tile{min-width:130px;padding:8px 14px;border-radius:6px;background:#f0f2f5}
.tile .num{font-size:26px;font-weight:600}.tile .lbl{color:#5a6270;text-transform:uppercase;font-size:11px;letter-spacing:.05em}
.tile.errors .num{color:#b3261e}.tile.warnings .num{color:#a15c00}
.verdict{float:right;font-size:22px;font-weight:700;padding:10px 18px;border-radius:6px;color:#fff}
.verdict.pass{background:#1e7b34}.verdict.fail{background:#b3261e}
.meta,.note,.dim{color:#5a6270}.note{margin:0 0 8px;font-size:13px}.missing{color:#7a5200;background:#fff6e0;padding:8px;border-radius:4px}
.ok{color:#1e7b34}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{color:#5a6270;font-weight:600}table.compact{width:auto}
.sev{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;color:#fff;background:#888}
.sev.error{background:#b3261e}.sev.warning{background:#c77700}.sev.ok{background:#1e7b34}
.msg{color:#5a6270;font-size:12px;margin-top:2px;word-break:break-word}.loc{white-space:nowrap}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}table.findings td:nth-child(2) code{white-space:nowrap;word-break:normal}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:14px}.pair>section{min-width:0}
.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
svg.chart{display:block;margin:4px 0}svg .tick{font-size:11px;fill:#5a6270}svg .value{font-size:11px;fill:#1d2330}
svg .title{font-size:12px;font-weight:600;fill:#1d2330}svg .bar{stroke:#0003;stroke-width:.5}svg rect.bar:not([fill]){fill:#4a78b5}
svg .axis{stroke:#9aa1ad}svg .whisker{stroke:#555;stroke-width:1.2}svg .iqr{stroke:#333;stroke-width:.8}svg .median{stroke:#000;stroke-width:2}
.swatch{display:inline-block;width:14px;height:14px;border:1px solid #0004;border-radius:2px;margin-right:6px;vertical-align:-2px}
.preview{display:flex;gap:20px;align-items:flex-start}.preview img{image-rendering:pixelated;border:1px solid #ccd}
.legend{list-style:none;margin:0;padding:0}.legend li{margin:2px 0}.undeclared{font-style:italic;color:#7a5200}
"""


def render_report(output: str, storage_options: dict[str, Any] | None = None, *, drift: dict[str, Any] | None = None,
                  title_output: str | None = None) -> str:
    """The report page (HTML text) for a published output folder; ``drift`` defaults to summary.json's.
    ``title_output`` names the output in the title when ``output`` is a run folder inside it."""
    folder = OutputFolder.open(output, storage_options)
    summary = folder.summary
    labels = label_rows(folder)
    sample = label_stats_sample(folder)
    body = "".join((
        _headline(summary),
        _drift_section(drift if drift is not None else summary.get("drift")),
        _findings_section(folder),
        _label_sections(labels, sample),
        _worst_section(folder),
        _preview_section(folder, storage_options),
        _run_section(summary),
    ))
    title = f"framebeam report — {redact_uri(title_output or output)}"
    return redact(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>'
            f'<body><main><h1>{_e(title)}</h1>{body}</main></body></html>')


def write_report(output: str, storage_options: dict[str, Any] | None = None, *, drift: dict[str, Any] | None = None,
                 title_output: str | None = None) -> str:
    """Render the report and write it to OUTPUT/report.html; returns that path."""
    text = render_report(output, storage_options, drift=drift, title_output=title_output)
    fs, root = fsspec.core.url_to_fs(output, **(storage_options or {}))
    path = f"{root.rstrip('/')}/{REPORT_FILE}"
    with fs.open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    return f"{output.rstrip('/')}/{REPORT_FILE}"
