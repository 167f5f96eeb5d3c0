"""``report.html``: what a person reads after a nightly validation, in one self-contained page.

The page is built from the published tables and summary.json only (so it can be rebuilt for any old
output): ``transforms.report_data`` reads them, ``transforms.report_charts`` draws inline SVG (no
scripts, no fonts, no network) and this module lays out the page. All markup goes through
``transforms.markup``, which escapes every value unless it is markup already: labels, frame ids,
shard names and messages are user data and may be ``<script>``.
"""
from __future__ import annotations

import base64
import math
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow.compute as pc

from transforms.findings import CODES
from transforms.markup import Markup, h, join
from transforms.report_charts import (Distribution, axis_ticks, css_colour, nice_ceiling, short, svg_axis, svg_bar_cell, svg_box_cell,
                                      svg_histogram)
from transforms.report_data import (FRAGMENT_CROP_MAX, PREVIEW_MAX_WIDTH, LabelRow, OutputFolder, SampledTable, codes_of_frames, distributions,
                                    finding_examples, fragment_rows, group_by_label, label_name, label_rows, label_stats_sample,
                                    mask_preview, worst_fragmented, worst_frames)
from transforms.report_trends import RECENT_RUNS, TRENDS_CSS, Trends, read_trends, svg_run_strip, svg_sparkline
from transforms.storage import Target
from transforms.uris import redact, redact_uri

REPORT_FILE = "report.html"
NO_DECODE = "Not available: this output has no mask decoding tables (it was written by `convert` or with --no-decode). Run `framebeam run` to get them."


def _location(shard: str | None, line: int | None) -> str:
    if shard is None:
        return "dataset"
    return f"{posixpath.basename(shard.rstrip('/')) or shard}:{line}" if line is not None else shard


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> Markup:
    """Cells are escaped unless they are Markup."""
    head = join(h("<th>{}</th>", x) for x in headers)
    body = join(h("<tr>{}</tr>", join(h("<td>{}</td>", c) for c in r)) for r in rows)
    return h('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', cls, head, body)


def _section(section_id: str, title: str, body: Markup, note: str = "") -> Markup:
    note_html = h('<p class="note">{}</p>', note) if note else ""
    return h('<section id="{}"><h2>{}</h2>{}{}</section>', section_id, title, note_html, body)


def _missing(reason: str) -> Markup:
    return h('<p class="missing">{}</p>', reason)


def _headline(summary: Mapping[str, Any]) -> Markup:
    frames = int(summary.get("frames") or 0)
    valid = int(summary.get("valid_frames") or 0)
    findings = summary.get("findings") or {}
    errors, warnings = int(findings.get("error") or 0), int(findings.get("warning") or 0)
    info = int(findings.get("info") or 0)
    valid_pct = f"{valid / frames:.1%}" if frames else "–"
    verdict = ""
    passed = summary.get("passed")
    if isinstance(passed, bool):
        verdict = h('<div class="verdict {}">{}</div>', "pass" if passed else "fail", "PASSED" if passed else "FAILED")
    tiles = [("frames", f"{frames:,}"), ("valid", valid_pct), ("errors", f"{errors:,}"), ("warnings", f"{warnings:,}"),
             ("info", f"{info:,}")]
    tiles_html = join(h('<div class="tile {name}"><div class="num">{}</div><div class="lbl">{name}</div></div>', v, name=name)
                      for name, v in tiles)
    meta = join((
        f"framebeam {summary.get('command', '')}".strip(),
        f"started {summary.get('started_at', '?')}",
        f"published {summary.get('published_at', '?')}",
    ), " · ")
    return h('<header id="headline">{}<div class="tiles">{}</div><p class="meta">{}</p></header>', verdict, tiles_html, meta)


def _findings_section(folder: OutputFolder) -> Markup:
    by_code = folder.summary.get("findings_by_code") or {}
    counts = {code: int(info.get("count") or 0) for code, info in by_code.items()}
    if not counts:
        return _section("findings", "Findings by code", Markup('<p class="ok">No findings.</p>'))
    examples = finding_examples(folder, counts)
    rows = []
    rank = {"error": 0, "warning": 1, "info": 2}  # info last: counted, never failing
    for code, n in sorted(counts.items(), key=lambda kv: (rank.get(by_code[kv[0]].get("severity"), 1), -kv[1], kv[0])):
        severity = by_code[code].get("severity") or (CODES[code].severity if code in CODES else "?")
        found = examples.by_code.get(code, [])
        places = [e for e in found if e.shard is not None]
        where = join((h('<span class="loc" title="{}">{}</span>', e.frame_id or "", _location(e.shard, e.line)) for e in places),
                     ", ") or Markup('<span class="dim">dataset-level</span>')
        message = h('<div class="msg">{}</div>', short(found[0].message, 300)) if found else ""
        meaning = CODES[code].meaning if code in CODES else ""
        rows.append((h('<span class="sev {0}">{0}</span>', severity), h("<code>{}</code>", code), f"{n:,}",
                     h('<div class="meaning">{}</div>{}', meaning, message), where))
    note = "" if examples.complete else f"Examples come from the first {examples.rows_scanned:,} issues rows."
    return _section("findings", "Findings by code",
                    _table(["severity", "code", "count", "what it means / first message", "examples (shard:line)"], rows, "findings"),
                    note)


def _classes_note(labels: list[LabelRow], decoded: int) -> str:
    present = sum(1 for r in labels if r.masks_present)
    never = len(labels) - present
    return (f"{present:,} of {len(labels):,} declared classes have pixels in at least one of the {decoded:,} decoded masks, "
            "ranked by the masks they are present in, then by pixels. Bars in the class's own colour. "
            + (f"{never:,} never present: listed below the table." if never else "Every declared class is present somewhere."))


def _labels_section(labels: list[LabelRow] | None, sample: SampledTable | None, decoded: int) -> Markup:
    """Every class with pixels, one row each (the table scrolls, nothing is cut), then the classes never present."""
    title = "Classes by presence"
    if labels is None:
        return _section("labels", title, _missing(NO_DECODE))
    if not labels:
        return _section("labels", title, _missing("No labelled colours were declared for any decoded mask."))
    present = [r for r in labels if r.masks_present]
    never = [r for r in labels if not r.masks_present]
    top = decoded or max((r.masks_present for r in present), default=1)
    boxes, sampled = _where_present(present, sample)
    highest = max((b.high for b in boxes.values()), default=0.01) or 0.01
    step = nice_ceiling(highest / 4)
    axis_max = min(1.0, math.ceil(highest / step - 1e-9) * step)  # ends on a tick
    presence_axis = svg_axis([(v / top, f"{v:,.0f}") for v in axis_ticks(top, whole=True)])
    fraction_ticks = axis_ticks(axis_max)
    digits = 0 if len(fraction_ticks) < 2 or fraction_ticks[1] >= 0.01 else 1 if fraction_ticks[1] >= 0.001 else 2
    fraction_axis = svg_axis([(v / axis_max, f"{v:.{digits}%}") for v in fraction_ticks])
    rows = []
    for i, r in enumerate(present, 1):
        name = label_name(r.labels)
        colour = r.colours[0]
        tip = f"{name}: present in {r.masks_present:,} of {top:,} decoded masks ({r.frames:,} frames), declared for {r.masks_declared:,}"
        rows.append(h('<tr><td class="num">{}</td><td class="name">{}{}{}</td><td>{}</td><td class="num">{}</td>'
                      '<td class="num">{}</td><td>{}</td><td class="num">{}</td></tr>',
                      i, _swatch(colour), name, h(' <span class="dim">({} colours)</span>', len(r.colours)) if len(r.colours) > 1 else "",
                      svg_bar_cell(r.masks_present, top, colour, tip), f"{r.masks_present:,}", f"{r.frames:,}",
                      svg_box_cell(boxes.get(r.labels), axis_max), _p50_p95(r)))
    head = h('<thead><tr><th>#</th><th>class</th><th class="axis">masks with pixels, of {:,} decoded{}</th><th>masks</th>'
             '<th>frames</th><th class="axis">share of the mask\'s pixels where present{}</th>'
             '<th title="over all decoded masks, 0 where the class is absent">median / p95<br>all masks</th></tr></thead>',
             top, presence_axis, fraction_axis)
    scroll = " scroll" if len(present) > 25 else ""
    table = h('<div class="classes{}"><table id="label-frequency" class="classes">{}<tbody>{}</tbody></table></div>',
              scroll, head, join(rows))
    note = _classes_note(labels, decoded) + " Box plots: " + sampled
    if scroll:
        note += f" The table scrolls: all {len(present):,} present classes are in it."
    return _section("labels", title, join((table, _never_present(never))), note)


def _p50_p95(r: LabelRow) -> str:
    if r.pixel_fraction_p50 is None:
        return "–"
    return f"{r.pixel_fraction_p50:.2%} / {r.pixel_fraction_p95:.2%}"


def _never_present(never: list[LabelRow]) -> Markup:
    if not never:
        return Markup("")
    items = join(h('<li>{}{} <span class="dim">(declared for {:,} masks)</span></li>', _swatch(r.colours[0]), label_name(r.labels),
                   r.masks_declared) for r in never)
    return h('<div id="never-present"><h3>Never present ({})</h3><p class="note">Declared (by ROIs or the class table) but without '
             'a pixel in any decoded mask: check their colours, or drop them from the table '
             '(<code>label_never_present</code>).</p><ul class="never">{}</ul></div>', len(never), items)


def _where_present(present: list[LabelRow], sample: SampledTable | None) -> tuple[dict[tuple[str, ...], Distribution], str]:
    """Each class's pixel fractions in the masks where it has pixels (the label_stats sample's non-zero rows)."""
    if sample is None or sample.table.num_rows == 0:
        return {}, "no label_stats rows."
    table = sample.table
    fraction = table.column("pixel_fraction").to_numpy(zero_copy_only=False).astype(float)
    keep = fraction > 0
    labels = [lab for lab, k in zip(table.column("labels").to_pylist(), keep) if k]
    by_label = group_by_label(labels, fraction[keep])
    boxes = {}
    for r in present:
        if r.labels in by_label:
            (box,) = distributions(by_label, {r.labels: r.colours[0]}, [r.labels])
            boxes[r.labels] = box
    sampled = (f"from a sample of {table.num_rows:,} of {sample.total_rows:,} label_stats rows (whole row groups spread over the table)."
               if sample.sampled else f"from all {table.num_rows:,} label_stats rows.")
    return boxes, f"share of the mask's pixels in each mask where the class is present (whiskers min-max, box quartiles), {sampled}"


def _label_sections(labels: list[LabelRow] | None, sample: SampledTable | None, decoded: int = 0) -> Markup:
    """The classes ranked by presence (with their pixel fractions), bbox sizes below."""
    return join((_labels_section(labels, sample, decoded), _bbox_section(labels, sample)))


def _bbox_section(labels: list[LabelRow] | None, sample: SampledTable | None) -> Markup:
    if labels is None or sample is None:
        return _section("bbox-sizes", "Bounding-box sizes", _missing(NO_DECODE))
    table = sample.table
    sampled = (f"From a sample of {table.num_rows:,} of {sample.total_rows:,} label_stats rows (whole row groups spread "
               "over the table)." if sample.sampled else f"From all {table.num_rows:,} label_stats rows.")
    order = [r.labels for r in labels if r.masks_present]
    colours = {r.labels: r.colours[0] for r in labels}
    present = pc.is_valid(table.column("bbox_x0"))
    boxed = table.filter(present)
    widths = (pc.subtract(boxed.column("bbox_x1"), boxed.column("bbox_x0"))).to_numpy(zero_copy_only=False).astype(float)
    heights = (pc.subtract(boxed.column("bbox_y1"), boxed.column("bbox_y0"))).to_numpy(zero_copy_only=False).astype(float)
    if widths.size == 0:
        return _section("bbox-sizes", "Bounding-box sizes", _missing("No label colour had any pixels, so there are no boxes."))
    boxed_labels = boxed.column("labels").to_pylist()
    by_w, by_h = group_by_label(boxed_labels, widths), group_by_label(boxed_labels, heights)
    rows = [(h("{}{}", _swatch(colours.get(k, (128, 128, 128))), label_name(k)), f"{by_w[k].size:,}",
             f"{np.median(by_w[k]):,.0f} × {np.median(by_h[k]):,.0f}",
             f"{np.quantile(by_w[k], 0.05):,.0f} × {np.quantile(by_h[k], 0.05):,.0f}",
             f"{by_w[k].max():,.0f} × {by_h[k].max():,.0f}") for k in order if k in by_w]
    charts = h('<div class="row">{}{}</div>', svg_histogram(widths, chart_id="bbox-width", title="bbox width"),
               svg_histogram(heights, chart_id="bbox-height", title="bbox height"))
    scroll = " scroll" if len(rows) > 25 else ""
    body = charts + h('<div class="classes{}">{}</div>', scroll,
                      _table(["class", "masks with pixels", "median w × h", "5th pct w × h", "max w × h"], rows, "compact"))
    return _section("bbox-sizes", "Bounding-box sizes", Markup(body),
                    "Bounding box of each class's pixels in each mask where it is present, in pixels; classes in the order above. " + sampled)


def _swatch(rgb: Sequence[int]) -> Markup:
    return h('<span class="swatch" style="background:{}"></span>', css_colour(rgb))


def _shapes_section(folder: OutputFolder) -> Markup:
    """The labels with the most fragments per mask, and the worst (mask, label) drawn small."""
    title = "Fragments and holes"
    rows = fragment_rows(folder)
    if rows is None:
        reason = NO_DECODE if not folder.files("label_summary") else (
            "No shape columns in this output (written with --no-shape-stats, or by a framebeam without them).")
        return _section("shapes", title, _missing(reason))
    by_code = folder.summary.get("findings_by_code") or {}
    specks = int((by_code.get("mask_speckle") or {}).get("count") or 0)
    outside = int((by_code.get("mask_outside_roi") or {}).get("count") or 0)
    params = folder.summary.get("parameters") or {}
    table = _table(["class", "masks with pixels", "components mean", "p95", "holes mean", "p95"], [
        (h("{}{}", _swatch(r.rgb), label_name(r.labels)), f"{r.masks_present:,}", f"{r.components_mean:,.1f}",
         f"{r.components_p95:,}" if r.components_p95 is not None else "–",
         f"{r.holes_mean:,.1f}" if r.holes_mean is not None else "–", f"{r.holes_p95:,}" if r.holes_p95 is not None else "–")
        for r in rows], "compact")
    worst = worst_fragmented(folder)
    example: Markup | str = ""
    if worst is not None:
        x0, y0, x1, y1 = worst.bbox
        caption = h('<p><b>Most fragmented:</b> {}{} in frame <code>{}</code> ({}): {:,} components, {} hole(s), smallest {} '
                    'pixel(s); its box x {}..{}, y {}..{} (every component drawn, however small).</p>', _swatch(worst.rgb), label_name(worst.labels), worst.frame_id or "",
                    _location(worst.shard, worst.line), worst.components, "?" if worst.holes is None else f"{worst.holes:,}",
                    "?" if worst.smallest is None else f"{worst.smallest:,}", x0, x1 - 1, y0, y1 - 1)
        image = ""
        if worst.png is not None:
            scale = max(1, FRAGMENT_CROP_MAX // max(worst.width, worst.height))  # small crops enlarged, pixels kept sharp
            image = h('<img class="crop" alt="crop of the most fragmented label" width="{}" height="{}" src="data:image/png;base64,{}"/>',
                      worst.width * scale, worst.height * scale, base64.b64encode(worst.png).decode("ascii"))
        example = h('<div class="fragments">{}{}</div>', caption, image)
    note = (f"Per mask where the class is present: 8-connected components and enclosed holes (docs/SHAPES.md); the "
            f"{len(rows)} classes with the most components on average. {specks:,} mask_speckle finding(s) (components under "
            f"{params.get('min_component_pixels', 4)} pixels, info), {outside:,} mask_outside_roi warning(s).")
    return _section("shapes", title, join((table, example)), note)


def _worst_section(folder: OutputFolder) -> Markup:
    if not folder.files("frames"):
        return _section("worst-frames", "Worst frames", _missing("No frames table in this output."))
    frames = worst_frames(folder)
    if not frames:
        return _section("worst-frames", "Worst frames", Markup('<p class="ok">No frame has an error.</p>'))
    codes = codes_of_frames(folder, frames)
    rows = [(h("<code>{}</code>", f.frame_id or ""), h('<span title="{}">{}</span>', f.shard or "", _location(f.shard, f.line)),
             f"{f.errors:,}", f"{f.warnings:,}", join((h("<code>{}</code>", c) for c in codes.get((f.shard, f.line), [])), ", "))
            for f in frames]
    return _section("worst-frames", "Worst frames", _table(["frame id", "shard:line", "errors", "warnings", "codes"], rows),
                    f"The {len(frames)} frames with most errors (then warnings).")


def _preview_section(folder: OutputFolder) -> Markup:
    preview = mask_preview(folder)
    if isinstance(preview, str):
        return _section("mask-preview", "Mask preview", _missing(preview))
    img = base64.b64encode(preview.png).decode("ascii")
    legend = join(
        h('<li>{}<span class="{}">{}</span> <span class="dim">{}{}</span></li>', _swatch(rgb),
          "undeclared" if name == "undeclared" else "", name, list(rgb), f" · {frac:.1%}" if frac is not None else "")
        for rgb, name, frac in preview.legend
    )
    scale = max(1, PREVIEW_MAX_WIDTH // preview.width)  # small masks shown enlarged, pixels kept sharp
    body = h('<div class="preview"><img alt="mask preview" width="{}" height="{}" src="data:image/png;base64,{}"/>'
             '<ul class="legend">{}</ul></div>', preview.width * scale, preview.height * scale, img, legend)
    note = (f"{preview.uri} — frame {preview.frame_id} ({_location(preview.shard, preview.line)}), declared colours "
            "with their share of the mask's pixels" + ("; undeclared colours marked." if any(n == "undeclared" for _, n, _ in preview.legend) else "."))
    return _section("mask-preview", "Mask preview", body, note)


def _drift_section(drift: Mapping[str, Any] | None) -> Markup:
    if not drift:
        return Markup("")
    dist = drift.get("label_distribution") or {}
    thresholds = drift.get("thresholds") or {}
    breached = {b["metric"] for b in drift.get("breaches") or ()}

    def value(metric: str, v: Any) -> Markup:
        text = h("<b>{}</b>", "—" if v is None else f"{float(v):.4f}")
        if metric not in thresholds:
            return text
        over = metric in breached
        return h('{} <span class="sev {}">{} --max-drift {}={}</span>', text, "error" if over else "ok",
                 "exceeds" if over else "within", metric, thresholds[metric])

    worst_label = f" ({label_name(drift['label_js_labels'])})" if drift.get("label_js_labels") and drift.get("label_js") else ""
    worst_shape = f" ({label_name(drift['shape_js_labels'])})" if drift.get("shape_js_labels") and drift.get("shape_js") else ""
    values = [("linf", "L-infinity distance of the label distributions", dist.get("linf")),
              ("js", "Jensen-Shannon divergence of the label distributions (bits)", dist.get("js")),
              ("psi", f"population stability index (empty cells at {dist.get('psi_epsilon', 1e-4):g})", dist.get("psi")),
              ("label_js", "largest pixel-fraction JS divergence of one label" + worst_label, drift.get("label_js")),
              ("shape_js", "largest components, holes or largest-component-share JS divergence of one label" + worst_shape, drift.get("shape_js"))]
    lines = [_table(["drift value", "this run"], [(h("{} <code>{}</code>", name, m), value(m, v)) for m, name, v in values], "compact")]

    def label_list(items: Sequence[Mapping[str, Any]], what: str) -> Markup:
        if not items:
            return h("<li>No label {}.</li>", what)
        return join(h("<li>{}{} <span class='dim'>({:,} masks where present)</span> {}</li>",
                      _swatch((item.get("colours") or [[128, 128, 128]])[0]), label_name(item["labels"]),
                      int(item["masks_present"]), what) for item in items[:30])

    changed = join(h("<li>{}: {} → {} <span class='dim'>{} → {}</span></li>", label_name(c["labels"]),
                     join(_swatch(x) for x in c["baseline_colours"]), join(_swatch(x) for x in c["current_colours"]),
                     c["baseline_colours"], c["current_colours"])
                   for c in drift.get("colour_changed", [])[:30]) or Markup("<li>No colour changed.</li>")
    lines.append(h("<ul>{}{}{}</ul>", label_list(drift.get("labels_appeared", []), "appeared"),
                   label_list(drift.get("labels_vanished", []), "vanished"), changed))

    def pct(v: float | None, signed: bool = False) -> str:
        return "—" if v is None else (f"{v:+.2%}" if signed else f"{v:.2%}")

    rows = [(label_name(r["labels"]), pct(r["baseline_share"]), pct(r["current_share"]), pct(r["share_change"], True),
             pct(r.get("presence_rate_change"), True), _fmt(r.get("fraction_js"), ".3f"), _fmt(r.get("components_js"), ".3f"),
             _fmt(r.get("holes_js"), ".3f"))
            for r in (drift.get("per_label") or [])[:10]]
    if rows:
        lines.append(_table(["label", "baseline share", "this run", "shift", "presence rate change", "pixel-fraction JS",
                             "components JS", "holes JS"], rows, "compact"))
    shaped = sorted((r for r in drift.get("per_label") or () if r.get("shape_js")), key=lambda r: (-r["shape_js"], r["labels"]))[:10]
    if shaped:
        lines.append(h("<h3>Shapes that moved most</h3>{}", _table(
            ["label", "components JS", "holes JS", "largest-component share JS", "components mean change", "holes mean change"],
            [(label_name(r["labels"]), _fmt(r.get("components_js"), ".3f"), _fmt(r.get("holes_js"), ".3f"),
              _fmt(r.get("largest_share_js"), ".3f"),
              _fmt(r.get("components_mean_change"), "+.2f"), _fmt(r.get("holes_mean_change"), "+.2f")) for r in shaped], "compact")))
    slices = [s for s in drift.get("slices") or () if s.get("baseline")]
    if slices:
        slice_rows = [(f"{s['slice_key']}={s['slice_value']}", f"{s['linf']:.4f}", f"{s['js']:.4f}", f"{s['psi']:.4f}",
                       _fmt(s.get("shape_js")),
                       ", ".join(label_name(m["labels"]) for m in s.get("moved_most", [])[:3]) or "—",
                       ", ".join(b["metric"] for b in s.get("breaches", ())) or "—")
                      for s in sorted(slices, key=lambda s: -s["js"])[:20]]
        lines.append(_table(["slice", "L-inf", "JS", "PSI", "shape JS", "moved most", "over threshold"], slice_rows, "compact"))
    note = (f"Baseline: {drift.get('baseline', '?')}. Label share p(label) = masks where the label is present / all such "
            "masks over labels; shares are compared across the two runs, and each label's pixel-fraction histogram (20 bins) "
            "and, when shapes were measured, its histograms of components and holes per mask (12 bins: 0-4, then doubling) "
            "and of its largest component's share of its pixels (10 bins).")
    return _section("drift", "Drift against the baseline", join(lines), note)


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def _trends_section(trends: Trends | None) -> Markup:
    if trends is None:
        return _section("trends", "Trends across runs", _missing(
            "This output has no history tables (it was written before framebeam kept history): the next run into it starts them."))
    runs = trends.runs
    parts = [svg_run_strip(runs)]
    drift_rows = []
    for metric, name in (("drift_linf", "L-infinity"), ("drift_js", "Jensen-Shannon (bits)"), ("drift_psi", "PSI"),
                         ("drift_label_js", "largest label pixel-fraction JS"), ("drift_shape_js", "largest label shape JS")):
        values = [getattr(r, metric) for r in runs]
        if any(v is not None for v in values):
            drift_rows.append((name, svg_sparkline(values, chart_id=f"trend-{metric.replace('_', '-')}"),
                               _fmt(values[-1]), _fmt(max(v for v in values if v is not None))))
    if drift_rows:
        parts.append(h("<h3>Drift of each run against its baseline</h3>{}",
                       _table(["value", "per run (oldest left)", "this run", "largest kept"], drift_rows, "compact")))
    if trends.labels:
        cells = []
        for i, t in enumerate(trends.labels):
            shares = [v for v in t.shares if v is not None]
            js = [v for v in t.fraction_js if v is not None]
            cells.append(h('<div class="multiple"><div class="name" title="{}">{}{}</div>{}<div class="dim">share {} → {}{}</div></div>',
                           label_name(t.labels), _swatch(t.colour), short(label_name(t.labels), 28),
                           svg_sparkline(t.shares, chart_id=f"trend-label-{i}", colour=t.colour),
                           _fmt(shares[0], ".1%") if shares else "—", _fmt(shares[-1], ".1%") if shares else "—",
                           f"; pixel-fraction JS up to {max(js):.3f}" if js else ""))
        parts.append(h('<h3>Labels whose share moved most</h3><div class="multiples">{}</div>', join(cells)))

    def verdict(passed: bool | None) -> Markup | str:
        return "—" if passed is None else h('<span class="sev {}">{}</span>', "ok" if passed else "error", "passed" if passed else "failed")

    recent = [(r.run_id, r.published_at or "—", verdict(r.passed), f"{r.errors:,}", f"{r.warnings:,}", _fmt(r.drift_linf),
               _fmt(r.drift_js), _fmt(r.drift_psi), ", ".join(r.drift_breaches) or "—") for r in reversed(runs[-RECENT_RUNS:])]
    parts.append(_table(["run", "published", "verdict", "errors", "warnings", "L-inf", "JS", "PSI", "over threshold"], recent, "compact"))
    failed = sum(1 for r in runs if r.passed is False)
    note = (f"{len(runs)} run(s) kept in this output's history, {failed} failed; the strip shows each run's verdict over its "
            "error (red) and warning (amber) counts. Labels are ranked by how much their share (masks where present / all "
            f"present masks) moved from run to run: top {len(trends.labels)} of {trends.labels_total}.")
    return _section("trends", "Trends across runs", join(parts), note)


def _run_section(summary: Mapping[str, Any]) -> Markup:
    tables = summary.get("tables") or {}
    table_rows = [(h("<code>{}</code>", k), f"{int(v):,}") for k, v in sorted(tables.items())]
    params = [(h("<code>{}</code>", k), orjson.dumps(v).decode()) for k, v in sorted((summary.get("parameters") or {}).items())]
    versions = join((f"{k} {v}" for k, v in sorted((summary.get("versions") or {}).items())), ", ")
    body = h('<div class="row"><div>{}</div><div>{}</div></div><p class="dim">{}</p>',
             _table(["table", "rows"], table_rows, "compact"), _table(["parameter", "value"], params, "compact"), versions)
    return _section("run", "Run", body)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;background:#f4f5f7;margin:0}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:0 0 6px}
section,header{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 18px;margin:0 0 14px}
.tiles{display:flex;gap:12px;flex-wrap:wrap}.tile{min-width:130px;padding:8px 14px;border-radius:6px;background:#f0f2f5}
.tile .num{font-size:26px;font-weight:600}.tile .lbl{color:#5a6270;text-transform:uppercase;font-size:11px;letter-spacing:.05em}
.tile.errors .num{color:#b3261e}.tile.warnings .num{color:#a15c00}.tile.info .num{color:#2f5f9e}
.verdict{float:right;font-size:22px;font-weight:700;padding:10px 18px;border-radius:6px;color:#fff}
.verdict.pass{background:#1e7b34}.verdict.fail{background:#b3261e}
.meta,.note,.dim{color:#5a6270}.note{margin:0 0 8px;font-size:13px}.missing{color:#7a5200;background:#fff6e0;padding:8px;border-radius:4px}
.ok{color:#1e7b34}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{color:#5a6270;font-weight:600}table.compact{width:auto}
.sev{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;color:#fff;background:#888}
.sev.error{background:#b3261e}.sev.warning{background:#c77700}.sev.info{background:#2f5f9e}.sev.ok{background:#1e7b34}
.fragments img.crop{image-rendering:pixelated;border:1px solid #ccd;max-width:100%}
.msg{color:#5a6270;font-size:12px;margin-top:2px;word-break:break-word}.loc{white-space:nowrap}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}table.findings td:nth-child(2) code{white-space:nowrap;word-break:normal}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:14px}.pair>section{min-width:0}
.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
svg.chart{display:block;margin:4px 0}svg .tick{font-size:11px;fill:#5a6270}svg .value{font-size:11px;fill:#1d2330}
svg .title{font-size:12px;font-weight:600;fill:#1d2330}svg .bar{stroke:#0003;stroke-width:.5}svg rect.bar:not([fill]){fill:#4a78b5}
svg .axis{stroke:#9aa1ad}svg .whisker{stroke:#555;stroke-width:1.2}svg .iqr{stroke:#333;stroke-width:.8}svg .median{stroke:#000;stroke-width:2}
.swatch{display:inline-block;width:14px;height:14px;border:1px solid #0004;border-radius:2px;margin-right:6px;vertical-align:-2px}
.preview{display:flex;gap:20px;align-items:flex-start}.preview img{image-rendering:pixelated;border:1px solid #ccd}
.classes.scroll{max-height:640px;overflow-y:auto;border:1px solid #eceef2;border-radius:4px}
table.classes{width:100%}table.classes th{position:sticky;top:0;background:#fff;z-index:1;vertical-align:bottom;box-shadow:0 1px 0 #dde1e7}
table.classes td{padding:2px 8px;vertical-align:middle}table.classes th.axis{text-align:center;font-weight:400;font-size:12px}table.classes td.name{overflow-wrap:anywhere;min-width:110px}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
svg.cell,svg.axis-cell{display:block;overflow:visible}svg .track{fill:#f0f2f5}
h3{font-size:14px;margin:12px 0 4px}ul.never{columns:3 240px;margin:0;padding:0;list-style:none}ul.never li{break-inside:avoid;margin:0 0 3px}
.legend{list-style:none;margin:0;padding:0}.legend li{margin:2px 0}.undeclared{font-style:italic;color:#7a5200}
"""



def render_report(output: Target | str, *, drift: dict[str, Any] | None = None, title_output: str | None = None) -> str:
    """The report page (HTML text) for a published output folder (masks previewed with its storage options);
    ``drift`` defaults to summary.json's. ``title_output`` names the output in the title when ``output`` is a run
    folder inside it."""
    folder = OutputFolder.open(output)
    summary = folder.summary
    labels = label_rows(folder)
    sample = label_stats_sample(folder)
    body = join((
        _headline(summary),
        _drift_section(drift if drift is not None else summary.get("drift")),
        _trends_section(read_trends(folder)),
        _findings_section(folder),
        _label_sections(labels, sample, int((summary.get("masks") or {}).get("decoded") or 0)),
        _shapes_section(folder),
        _worst_section(folder),
        _preview_section(folder),
        _run_section(summary),
    ))
    title = f"framebeam report — {redact_uri(title_output or folder.target.url)}"
    return redact(str(h('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                 '<meta name="viewport" content="width=device-width,initial-scale=1"><style>{css}</style></head>'
                 '<body><main><h1>{title}</h1>{body}</main></body></html>', title=title, css=Markup(_CSS + TRENDS_CSS), body=body)))  # the one redaction, over the whole page


def write_report(output: Target | str, *, drift: dict[str, Any] | None = None, title_output: str | None = None) -> str:
    """Render the report and write it to OUTPUT/report.html; returns that path."""
    output = Target.of(output)
    text = render_report(output, drift=drift, title_output=title_output)
    output.join(REPORT_FILE).write_bytes(text.encode("utf-8"))
    return f"{output.url.rstrip('/')}/{REPORT_FILE}"
