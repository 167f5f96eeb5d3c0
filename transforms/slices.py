"""Label statistics per slice (``--slice-by KEY``): so a shift in one camera or one site is not averaged away.

A slice key is ``source_id`` (the source whose mask it is), ``context_id`` (the frame's sequence or
video) or ``meta.<path>`` (a value in the frame's ``meta``, dotted path, e.g. ``meta.site`` or
``meta.camera.name``). Each decoded mask's label events are keyed by (key, value, labels, colour) and
combined with the same accumulator as ``label_summary``; a frame counts once per slice and label.
A frame or source without the value falls in the slice whose value is null.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

FRAME_KEYS = ("context_id",)
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


def slice_events(frame_values: Iterable[tuple[tuple[str, str | None], ...]], masks: Iterable[tuple], keys: Sequence[str]):
    """Label events keyed by (key, value, labels, rgb) for one frame: ``frame_values`` (one element: the frame's
    values; none when the frame was not planned for decoding) and its decoded masks' (source_id, label key, event)."""
    values = dict(next(iter(frame_values), ()))
    seen: set = set()
    for source_id, label_key, event in masks:
        labels, rgb = label_key
        for key in keys:
            value = source_id if key == "source_id" else values.get(key)
            out_key = (key, value, tuple(labels), tuple(rgb))
            yield out_key, event
            if out_key not in seen:
                seen.add(out_key)
                yield out_key, ("frame",)


def group_slice_items(items: Iterable[tuple[tuple, Any]]) -> dict[SliceKey, list]:
    """((key, value, labels, rgb), accumulator) items -> {(key, value): [((labels, rgb), accumulator)]}."""
    out: dict[SliceKey, list] = defaultdict(list)
    for (key, value, labels, rgb), acc in items:
        out[(key, value)].append(((labels, rgb), acc))
    return dict(out)


def slice_summary_rows(grouped: Mapping[SliceKey, Sequence]) -> list[tuple]:
    """``label_summary_by_slice`` rows: the slice's key and value, then label_summary's columns."""
    from transforms.summary import label_summary_rows

    rows = []
    for (key, value), items in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or "")):
        rows.extend((key, value, *row) for row in label_summary_rows(items))
    return rows
