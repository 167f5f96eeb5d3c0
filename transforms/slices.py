"""Label statistics per slice (``--slice-by KEY``): so a shift in one camera or one site is not averaged away.

A slice key is ``source_id`` (the source whose mask it is), ``context_id`` (the frame's sequence or
video) or ``meta.<path>`` (a value in the frame's ``meta``, dotted path, e.g. ``meta.site`` or
``meta.camera.name``). Each decoded mask's label events are keyed by (key, value, labels, colour) and
combined with the same accumulator as ``label_summary``; a frame counts once per slice and label.
A frame or source without the value falls in the slice whose value is null.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import orjson

from transforms.schema import LabelSummaryBySliceRow
from transforms.summary import FrameEvent, FrameTables, MasksDecoded

SliceKey = tuple[str, str | None]  # (key, value)


def parse_slice_key(text: str) -> str:
    """``source_id``, ``context_id`` or ``meta.<path>``; ValueError otherwise."""
    key = text.strip()
    if key in ("source_id", "context_id"):
        return key
    if key.startswith("meta.") and all(part for part in key[5:].split(".")):
        return key
    raise ValueError(f"unknown slice key {text!r}: use source_id, context_id or meta.<path> (a value in the frame's meta, "
                     "e.g. meta.site or meta.camera.name)")


def meta_value(meta_text: str | None, path: str) -> str | None:
    """The value at a dotted ``path`` in a meta JSON object, as text (strings as they are, other values as
    JSON); None when it is absent or null."""
    if not meta_text:
        return None
    try:
        value: Any = orjson.loads(meta_text)
    except orjson.JSONDecodeError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None:
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def frame_slice_values(context_id: str | None, meta_text: str | None, keys: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    """The frame-level slice values of one frame (``source_id`` is per mask: not here)."""
    out = []
    for key in keys:
        if key == "context_id":
            out.append((key, context_id))
        elif key.startswith("meta."):
            out.append((key, meta_value(meta_text, key[5:])))
    return tuple(out)


SLICE_RUN_EVENTS = "slice_run_events"  # ((key, value), summary.RunCounts event): decoded masks and table use per slice


class SliceSummary(NamedTuple):
    """One slice of the run: its classes counted as label_summary counts them, and their histograms."""

    key: str
    value: str | None
    classes: list  # summary.LabelSummary, most present first
    hists: dict  # labels -> summary.LabelDistributions (colours merged): histograms and quantiles


def slice_events(frame_values: Iterable[tuple[tuple[str, str | None], ...]], masks: Iterable[tuple], keys: Sequence[str]):
    """One frame's events per slice. ``frame_values``: one element, the frame's values (none when the frame was
    not planned for decoding); ``masks``: its decoded masks' (source_id, table key, decoded, [(label key, event)]).

    Main output: ((key, value, labels, rgb), event) as summary.LabelAccumulator takes them (mask events, then one
    frame event per slice and label); tagged SLICE_RUN_EVENTS: ((key, value), event) as summary.RunCounts takes them.
    """
    values = dict(next(iter(frame_values), ()))
    flags: dict[tuple, list[bool]] = {}
    tables: dict[tuple, set] = defaultdict(set)
    for source_id, table_key, decoded, events in masks:
        for key in keys:
            value = source_id if key == "source_id" else values.get(key)
            if decoded:
                yield beam.pvalue.TaggedOutput(SLICE_RUN_EVENTS, ((key, value), MasksDecoded(table_key=table_key, n=1)))
                if table_key is not None:
                    tables[(key, value)].add(table_key)
            for (labels, rgb), event in events:
                out_key = (key, value, tuple(labels), tuple(rgb))
                yield out_key, event
                f = flags.setdefault(out_key, [False, False])
                f[0] |= bool(event.pixels)  # present
                f[1] |= bool(event.roi_declared)
    for out_key, (present, roi) in flags.items():
        yield out_key, FrameEvent(present=present, roi_declared=roi)
    for slice_key, table_keys in tables.items():
        yield beam.pvalue.TaggedOutput(SLICE_RUN_EVENTS, (slice_key, FrameTables(table_keys=tuple(sorted(table_keys)))))


def resolve_slices(accs: Iterable[tuple[tuple, Any]], runs: Iterable[tuple[tuple, Any]], mask_labels=None) -> list[SliceSummary]:
    """Every slice's classes, resolved like the run's (summary.resolve_labels) with the slice's own counts."""
    from transforms.summary import RunCounts, label_distributions, resolve_labels

    by_slice: dict[SliceKey, list] = defaultdict(list)
    for (key, value, labels, rgb), acc in accs:
        by_slice[(key, value)].append(((labels, rgb), acc))
    counts = dict(runs)
    out = []
    for slice_key in sorted(set(by_slice) | set(counts), key=lambda k: (k[0], k[1] is None, k[1] or "")):
        items = by_slice.get(slice_key, [])
        run = counts.get(slice_key) or RunCounts()
        classes = resolve_labels(items, run, mask_labels)
        out.append(SliceSummary(slice_key[0], slice_key[1], classes, label_distributions(items, run)))
    return out


def slice_summary_rows(slices: Sequence[SliceSummary]) -> list[LabelSummaryBySliceRow]:
    """``label_summary_by_slice`` rows: the slice's key and value, then label_summary's columns."""
    from transforms.summary import label_summary_rows

    return [LabelSummaryBySliceRow(slice_key=s.key, slice_value=s.value, **row._asdict())
            for s in slices for row in label_summary_rows(s.classes)]
