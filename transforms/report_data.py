"""Reading a published output for ``report.html``: tables and summary.json -> the report's data.

Tables can hold 1e9 rows, so each section reads only the columns it needs: label_summary whole (one
row per label and colour), label_stats as a sample of at most ``MAX_SAMPLE_ROWS`` rows (whole row
groups spread over the files; the page says when it sampled), frames row group by row group with the
``n_errors`` statistics used to skip groups that cannot hold a worse frame, and issues until every
code has its examples. Nothing here writes HTML (``transforms.report`` does).
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from PIL import Image

from transforms.decoding import DecodeDeadline, MaskDecodeError, decode_mask_bytes
from transforms.report_charts import Distribution
from transforms.storage import DEFAULT_MAX_MASK_BYTES, ReadProblem, Target, read_mask
from transforms.uris import UriPolicy, redact_uri

MAX_SAMPLE_ROWS = 1_000_000  # label_stats rows read for distributions
MAX_ISSUE_ROWS_SCANNED = 5_000_000  # issues rows read looking for examples
EXAMPLES_PER_CODE = 5
WORST_FRAMES = 10
PREVIEW_MAX_WIDTH = 320

# ---------------------------------------------------------------- reading the output


@dataclass(frozen=True)
class OutputFolder:
    """An output folder through fsspec, with the tables its summary.json says were published."""

    target: Target
    summary: dict[str, Any]

    @property
    def fs(self):
        return self.target.fs

    @property
    def root(self) -> str:
        return self.target.path

    @classmethod
    def open(cls, output: Target | str) -> "OutputFolder":
        target = Target.of(output)
        summary = target.join("summary.json")
        if not summary.exists():
            raise FileNotFoundError(
                f"{redact_uri(target.url)} has no summary.json: point at the folder given as --output to a finished "
                "framebeam run (it is written last, with _SUCCESS)."
            )
        return cls(target, orjson.loads(summary.read_bytes()))

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
    """Up to ``per_code`` issues rows per code, each at a different shard:line, reading issues only until every code
    has its examples (a code with fewer distinct places than its count keeps scanning to the row limit)."""
    wanted = {code: min(per_code, n) for code, n in counts.items()}
    found: dict[str, list[Example]] = defaultdict(list)
    seen: dict[str, set[tuple[str | None, int | None]]] = defaultdict(set)
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
                    shard, line = batch.column("shard")[i].as_py(), batch.column("line")[i].as_py()
                    if shard is not None and (shard, line) in seen[code]:
                        continue  # one example per place: a frame with ten absent colours is one place to look
                    seen[code].add((shard, line))
                    found[code].append(Example(shard, line, batch.column("frame_id")[i].as_py(), batch.column("message")[i].as_py()))
    return FindingExamples(dict(found), scanned, True)


class LabelRow(NamedTuple):
    labels: tuple[str, ...]
    colours: list[tuple[int, int, int]]
    frames: int  # frames where present
    masks_present: int
    pixel_fraction_p50: float | None  # over all decoded masks (0 where absent)
    pixel_fraction_p95: float | None
    masks_declared: int = 0
    total_pixels: int = 0


def label_rows(folder: OutputFolder) -> list[LabelRow] | None:
    """One row per label (its colours merged), most present first; None when label_summary was not written."""
    files = folder.files("label_summary")
    if not files:
        return None
    table = read_whole(folder, files, ["labels", "rgb", "frames_present", "masks_present", "masks_declared", "total_pixels",
                                       "pixel_fraction_p50", "pixel_fraction_p95"])
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in table.to_pylist():
        key = tuple(row["labels"] or ())
        m = merged.setdefault(key, {"colours": [], "frames": 0, "present": 0, "declared": 0, "pixels": 0,
                                    "p50": row["pixel_fraction_p50"], "p95": row["pixel_fraction_p95"], "top": -1})
        m["colours"].append(tuple(row["rgb"]))
        m["frames"] += row["frames_present"]
        m["present"] += row["masks_present"]
        m["declared"] += row["masks_declared"]
        m["pixels"] += row["total_pixels"]
        if row["masks_present"] > m["top"]:  # quantiles of the label's most present colour
            m["top"], m["p50"], m["p95"] = row["masks_present"], row["pixel_fraction_p50"], row["pixel_fraction_p95"]
    rows = [LabelRow(k, m["colours"], m["frames"], m["present"], m["p50"], m["p95"], m["declared"], m["pixels"])
            for k, m in merged.items()]
    return sorted(rows, key=lambda r: (-r.masks_present, -r.frames, -r.total_pixels, r.labels))


def label_stats_sample(folder: OutputFolder) -> SampledTable | None:
    files = folder.files("label_stats")
    if not files:
        return None
    return read_sample(folder, files, ["labels", "pixel_fraction", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"],
                       max_rows=MAX_SAMPLE_ROWS)


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


# ---------------------------------------------------------------- shape quality

FRAGMENT_LABELS = 10
FRAGMENT_CROP_MAX = 240  # the worst example's crop is shown at most this many pixels wide or high


class FragmentRow(NamedTuple):
    labels: tuple[str, ...]
    rgb: tuple[int, int, int]
    masks_present: int
    components_mean: float
    components_p95: int | None
    holes_mean: float | None
    holes_p95: int | None


def fragment_rows(folder: OutputFolder, k: int = FRAGMENT_LABELS) -> list[FragmentRow] | None:
    """The k (labels, colour) with the most components per mask on average (then p95); None when the
    output has no shape columns (written before them, or with --no-shape-stats)."""
    files = folder.files("label_summary")
    if not files:
        return None
    names = set(folder.parquet(files[0]).schema_arrow.names)
    if "components_mean" not in names:
        return None
    table = read_whole(folder, files, ["labels", "rgb", "masks_present", "components_mean", "components_p95", "holes_mean", "holes_p95"])
    rows = [FragmentRow(tuple(r["labels"] or ()), tuple(r["rgb"]), r["masks_present"], r["components_mean"], r["components_p95"],
                        r["holes_mean"], r["holes_p95"])
            for r in table.to_pylist() if r["components_mean"] is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: (-r.components_mean, -(r.components_p95 or 0), r.labels, r.rgb))
    return rows[:k]


@dataclass(frozen=True)
class WorstFragments:
    """The label_stats row with the most components, and its crop drawn small."""

    frame_id: str | None
    shard: str
    line: int
    labels: tuple[str, ...]
    rgb: tuple[int, int, int]
    components: int
    holes: int | None
    smallest: int | None
    bbox: tuple[int, int, int, int]
    png: bytes | None  # the crop (the label's pixels in its colour), None when the crops table has none
    width: int
    height: int


def worst_fragmented(folder: OutputFolder) -> WorstFragments | None:
    """The (mask, label) with most components, skipping row groups whose max ``components`` cannot beat it."""
    best: tuple[int, str, int] | None = None  # (components, path, row group)
    best_index = -1
    for path in folder.files("label_stats"):
        pf = folder.parquet(path)
        if "components" not in pf.schema_arrow.names:
            return None
        for i in range(pf.metadata.num_row_groups):
            group_max = _max_statistic(pf.metadata, i, "components")
            if group_max is None or (best is not None and group_max <= best[0]):
                continue
            values = pf.read_row_group(i, columns=["components"]).column("components")
            top = pc.max(values).as_py()
            if top is not None and (best is None or top > best[0]):
                best = (top, path, i)
                best_index = int(pc.index(values, top).as_py())
    if best is None or best[0] <= 1:
        return None
    columns = ["frame_id", "shard", "line", "source_id", "mask_id", "labels", "rgb", "components", "holes",
               "smallest_component_pixels", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]
    row = folder.parquet(best[1]).read_row_group(best[2], columns=columns).slice(best_index, 1).to_pylist()[0]
    bbox = (row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"])
    png, width, height = _fragment_crop(folder, row, bbox)
    return WorstFragments(row["frame_id"], row["shard"], row["line"], tuple(row["labels"] or ()), tuple(row["rgb"]),
                          row["components"], row["holes"], row["smallest_component_pixels"], bbox, png, width, height)


def _fragment_crop(folder: OutputFolder, row: Mapping[str, Any], bbox: tuple[int, int, int, int]) -> tuple[bytes | None, int, int]:
    """The row's crop from the crops table, reduced so that every speck stays visible (a block is
    drawn when any of its pixels is the label's), the label in its colour on a light background."""
    from pycocotools import mask as coco_mask

    where = (ds.field("shard") == row["shard"]) & (ds.field("line") == row["line"]) & (ds.field("bbox_x0") == bbox[0])
    where &= (ds.field("bbox_y0") == bbox[1]) & (ds.field("bbox_x1") == bbox[2]) & (ds.field("bbox_y1") == bbox[3])
    crops = filtered_rows(folder, folder.files("crops"), ["source_id", "mask_id", "rgb", "rle_counts"], where).to_pylist()
    match = [c for c in crops if c["rgb"] == row["rgb"] and c["source_id"] == row["source_id"] and c["mask_id"] == row["mask_id"]]
    if not match:
        return None, 0, 0
    x0, y0, x1, y1 = bbox
    h, w = y1 - y0, x1 - x0
    crop = coco_mask.decode({"size": [h, w], "counts": match[0]["rle_counts"].encode("ascii")}).astype(bool)
    step = max(1, math.ceil(max(h, w) / FRAGMENT_CROP_MAX))
    if step > 1:
        padded = np.zeros((math.ceil(h / step) * step, math.ceil(w / step) * step), dtype=bool)
        padded[:h, :w] = crop
        crop = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step).any(axis=(1, 3))
    rgb = np.full(crop.shape + (3,), 236, dtype=np.uint8)
    rgb[crop] = row["rgb"]
    image = Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue(), image.width, image.height


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


def mask_preview(folder: OutputFolder) -> MaskPreview | str:
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
            data = read_mask(row["resolved_uri"], policy=policy, storage_options=folder.target.storage_options, max_bytes=max_bytes, deadline=deadline)
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


def label_name(labels: Iterable[str] | None) -> str:
    labels = list(labels or ())
    return ", ".join(labels) if labels else "(no label)"
