"""Joining each ROI to its mask source, and collecting each mask's declared colours.

The rules, in FORMAT.md's order:

1. ``schema``: ``roi.mask.id`` is the id of a mask in ``sources[s].masks`` for a source ``s`` listed in
   ``roi.sources`` (all sources of the frame when the ROI lists none). ``roi.label`` holds the class.
2. ``seed_example``: the seed document's Example 1 the other way round: ``roi.label`` names the mask,
   ``roi.mask.id`` names the class. Accepted with a ``seed_join_rule`` warning.
3. ``mask_labels``: frames whose ROIs carry no ``mask`` at all take their colours from the
   version-level table given with ``--mask-labels`` (``{"_all_": [{"value": [r,g,b], "labels": [...]}]}``,
   or keyed by mask id).

An ROI with a ``mask`` that joins by neither of the first two rules is a ``roi_mask_unjoined`` error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from transforms.findings import Finding
from transforms.validation import Frame

SCHEMA_RULE = "schema"
SEED_RULE = "seed_example"
TABLE_RULE = "mask_labels"


class Declaration(NamedTuple):
    """One colour declared for one mask."""

    rgb: tuple[int, int, int]
    labels: tuple[str, ...]
    roi_index: int | None  # None when it comes from the --mask-labels table
    # The flat polys of the ROIs declaring the colour (one per ROI), for pixels_outside_roi; None when
    # any of them has none (then nobody says where the colour's pixels belong) or from --mask-labels.
    polys: tuple[tuple[float, ...], ...] | None = None


class RoiJoin(NamedTuple):
    mask_source_id: str | None
    rule: str | None
    class_labels: list[str] | None


@dataclass(frozen=True)
class MaskLabels:
    """ClearML's version-level colour -> labels table (``mask_labels``)."""

    by_mask: dict[str, tuple[Declaration, ...]]

    def for_mask(self, mask_id: str | None) -> tuple[Declaration, ...]:
        return self.by_mask.get(mask_id or "", ()) or self.by_mask.get("_all_", ())

    @classmethod
    def from_json(cls, data: bytes) -> "MaskLabels":
        """Parse the table; raises ValueError with a fixable message when its shape is wrong."""
        doc = orjson.loads(data)
        if isinstance(doc, dict) and "mask_labels" in doc:
            doc = doc["mask_labels"]
        if not isinstance(doc, dict):
            raise ValueError('--mask-labels must hold an object like {"_all_": [{"value": [r, g, b], "labels": ["car"]}]}')
        by_mask = {}
        for key, entries in doc.items():
            if not isinstance(entries, list):
                raise ValueError(f"--mask-labels[{key!r}] must be a list of {{value, labels}} objects")
            decls = []
            for i, e in enumerate(entries):
                value = e.get("value") if isinstance(e, dict) else None
                labels = e.get("labels") if isinstance(e, dict) else None
                if not (isinstance(value, list) and len(value) == 3 and all(type(x) is int and 0 <= x <= 255 for x in value)):
                    raise ValueError(f"--mask-labels[{key!r}][{i}].value must be 3 integers in 0..255, got {value!r}")
                if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
                    raise ValueError(f"--mask-labels[{key!r}][{i}].labels must be a list of strings, got {labels!r}")
                decls.append(Declaration(tuple(value), tuple(labels), None))
            by_mask[str(key)] = tuple(decls)
        return cls(by_mask)

    @classmethod
    def load(cls, path: str, storage_options: dict[str, Any] | None = None) -> "MaskLabels":
        from transforms.storage import read_bytes

        return cls.from_json(read_bytes(path, storage_options))


@dataclass(slots=True)
class JoinedFrame:
    frame: Frame
    roi_joins: list[RoiJoin]                       # parallel to frame.doc.rois
    declarations: dict[tuple[int, int], list[Declaration]]  # (source index, mask index) -> colours
    mask_rules: dict[tuple[int, int], str]         # how each mask got its colours


def _candidate_masks(frame: Frame, source_ids: list[str] | None) -> dict[str, tuple[int, int]]:
    """mask id -> (source index, mask index) over the sources an ROI names (all when it names none)."""
    wanted = None if not source_ids else set(source_ids)
    out: dict[str, tuple[int, int]] = {}
    for si, s in enumerate(frame.doc.sources):
        if wanted is None or s.id in wanted:
            for mi, m in enumerate(s.masks):
                if m.id is not None:
                    out.setdefault(m.id, (si, mi))
    return out


def join_frame(frame: Frame, mask_labels: MaskLabels | None = None) -> JoinedFrame:
    """Join every ROI of a validated frame; findings are appended to ``frame.findings``."""
    findings = frame.findings
    joins: list[RoiJoin] = []
    decls: dict[tuple[int, int], list[Declaration]] = {}
    rules: dict[tuple[int, int], str] = {}
    seed_rois: list[int] = []
    any_roi_mask = False
    sources = frame.doc.sources
    candidates_by_sources: dict[tuple[str, ...], dict[str, tuple[int, int]]] = {}  # ROIs mostly name the same sources
    for ri, roi in enumerate(frame.doc.rois):
        labels = roi.label if roi.label is not None else roi.labels
        if roi.mask is None:
            joins.append(RoiJoin(None, None, labels))
            continue
        any_roi_mask = True
        mask_id = roi.mask.id
        named_sources = tuple(roi.sources or ())
        candidates = candidates_by_sources.get(named_sources)
        if candidates is None:
            candidates = candidates_by_sources[named_sources] = _candidate_masks(frame, roi.sources)
        key = candidates.get(mask_id) if mask_id is not None else None
        if key is not None:
            rule, class_labels = SCHEMA_RULE, labels or []
        else:
            named = [lab for lab in (labels or ()) if lab in candidates]
            if len(named) == 1 and mask_id:
                rule, class_labels, key = SEED_RULE, [mask_id], candidates[named[0]]
                seed_rois.append(ri)
            else:
                joins.append(RoiJoin(None, None, labels))
                known = sorted(candidates) or "none"
                findings.append(Finding(
                    "roi_mask_unjoined", f"/rois/{ri}/mask/id",
                    f"roi.mask.id {mask_id!r} names no mask of the ROI's sources (mask ids there: {known}); "
                    "set mask.id to the id of the mask image that holds this colour.",
                ))
                continue
        joins.append(RoiJoin(sources[key[0]].masks[key[1]].id, rule, class_labels))
        rules.setdefault(key, rule)
        if roi.mask.value is not None:
            polys = (tuple(roi.poly),) if roi.poly else None
            decls.setdefault(key, []).append(Declaration(tuple(roi.mask.value), tuple(class_labels), ri, polys))

    if seed_rois:
        findings.append(Finding(
            "seed_join_rule", f"/rois/{seed_rois[0]}",
            f"{len(seed_rois)} ROI(s) (indexes {seed_rois[:10]}) name their mask in 'label' and their class in 'mask.id', "
            "as the seed document's Example 1 (a documentation error ClearML later removed). They were joined that way; "
            "re-export with mask.id = the mask's id and label = the class.",
        ))

    for si, s in enumerate(sources):
        for mi, m in enumerate(s.masks):
            key = (si, mi)
            if key in decls:
                decls[key] = _dedupe(decls[key], f"/sources/{si}/masks/{mi}", findings)
                continue
            table = mask_labels.for_mask(m.id) if (mask_labels and not any_roi_mask) else ()
            if table:
                decls[key] = list(table)
                rules[key] = TABLE_RULE
            elif key not in rules:
                findings.append(Finding(
                    "mask_without_labels", f"/sources/{si}/masks/{mi}",
                    f"Mask {m.id!r} has no declared colours: no ROI joins it"
                    + (" and --mask-labels does not cover it." if mask_labels else "; pass the dataset version's table with --mask-labels FILE."),
                ))
    return JoinedFrame(frame, joins, decls, rules)


def _dedupe(declared: list[Declaration], path: str, findings: list[Finding]) -> list[Declaration]:
    """One declaration per colour; the same colour with different labels is a conflict.

    ROIs repeating a colour with the same labels (instances of one class in a semantic mask) become
    one declaration (the first ROI's index) holding all their polys.
    """
    by_rgb: dict[tuple[int, int, int], Declaration] = {}
    for d in declared:
        first = by_rgb.get(d.rgb)
        if first is None:
            by_rgb[d.rgb] = d
        elif set(first.labels) == set(d.labels):
            polys = first.polys + d.polys if first.polys is not None and d.polys is not None else None
            by_rgb[d.rgb] = first._replace(polys=polys)
        else:
            findings.append(Finding(
                "mask_colour_conflict", f"/rois/{d.roi_index}/mask/value",
                f"Colour {list(d.rgb)} of mask {path} is declared as {list(first.labels)} by ROI {first.roi_index} and as "
                f"{list(d.labels)} by ROI {d.roi_index}; one colour can stand for one class only in a mask.",
            ))
    return list(by_rgb.values())
