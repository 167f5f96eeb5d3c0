"""Joining each ROI to its mask source, and collecting each mask's declared colours.

The rules, in FORMAT.md's order:

1. ``schema``: ``roi.mask.id`` is the id of a mask in ``sources[s].masks`` for a source ``s`` listed in
   ``roi.sources`` (all sources of the frame when the ROI lists none). ``roi.label`` holds the class.
2. ``seed_example``: the seed document's Example 1 the other way round: ``roi.label`` names the mask,
   ``roi.mask.id`` names the class. Accepted with a ``seed_join_rule`` warning.
3. ``mask_labels``: frames whose ROIs carry no ``mask`` at all take their colours from the
   dataset's class table given with ``--mask-labels`` (ClearML's ``{"_all_": [{"value": [r,g,b], "labels": [...]}]}``
   or keyed by mask id, a ``{"Name": [r, g, b]}`` map, or CamVid's ``label_colors.txt``: see ``ACCEPTED_FORMS``).

The two kinds of declaration stay apart: an ROI's colour claims the class is in the mask; the table's
colours only say the class may appear (see ``Declaration``).

An ROI with a ``mask`` that joins by neither of the first two rules is a ``roi_mask_unjoined`` error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from transforms.findings import Finding
from transforms.validation import Frame, json_text

if TYPE_CHECKING:
    from transforms.storage import Target

SCHEMA_RULE = "schema"
SEED_RULE = "seed_example"


class Declaration(NamedTuple):
    """One colour declared for one mask: by an ROI of the frame ("this mask has a car", ``roi_index``
    set) or by the dataset's class table ("cars may appear", ``roi_index`` None, ``table_key`` = the
    table entry it came from: ``_all_`` or a mask id)."""

    rgb: tuple[int, int, int]
    labels: tuple[str, ...]
    roi_index: int | None  # None when it comes from the --mask-labels table
    table_key: str | None = None
    # The flat polys of the ROIs declaring the colour (one per ROI), for pixels_outside_roi; None when
    # any of them has none (then nobody says where the colour's pixels belong) or from --mask-labels.
    polys: tuple[tuple[float, ...], ...] | None = None


class RoiJoin(NamedTuple):
    mask_source_id: str | None
    rule: str | None
    class_labels: list[str] | None


ACCEPTED_FORMS = """--mask-labels accepts:
  ClearML's version table: {"_all_": [{"value": [r, g, b], "labels": ["car"]}, ...]} (or keyed by mask id,
    optionally inside {"mask_labels": ...})
  a JSON map of class to colour: {"car": [r, g, b], "road": "#804080", ...}
  CamVid's label_colors.txt: one class per line, "r g b Name" (spaces or tabs; "#rrggbb Name" also works)"""

_HEX = re.compile(r"#([0-9a-fA-F]{6})")


def parse_colour(value: Any) -> tuple[int, int, int] | None:
    """[r, g, b] with integers in 0..255, or "#rrggbb"; None for anything else."""
    if isinstance(value, str):
        m = _HEX.fullmatch(value.strip())
        return (int(m[1][0:2], 16), int(m[1][2:4], 16), int(m[1][4:6], 16)) if m else None
    if isinstance(value, list) and len(value) == 3 and all(type(x) is int and 0 <= x <= 255 for x in value):
        return (value[0], value[1], value[2])
    return None


class MaskLabelsError(ValueError):
    """A --mask-labels table that cannot be read; the message shows the accepted forms."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}\n{ACCEPTED_FORMS}")


@dataclass(frozen=True)
class MaskLabels:
    """The dataset's class table (colour -> labels) for masks no ROI declares colours for.

    Kept per key: ``_all_`` (every mask) or a mask id (masks with that id; ``_all_`` for the rest).
    Several classes drawn in one colour (Cityscapes draws license plate like car) become one declaration
    with all their labels: a mask cannot tell them apart.
    """

    by_mask: dict[str, tuple[Declaration, ...]]

    def for_mask(self, mask_id: str | None) -> tuple[Declaration, ...]:
        return self.by_mask.get(mask_id or "", ()) or self.by_mask.get("_all_", ())

    @classmethod
    def from_json(cls, data: bytes) -> "MaskLabels":
        """Any accepted form (the name is historical); raises MaskLabelsError showing the forms."""
        return cls.parse(data)

    @classmethod
    def parse(cls, data: bytes) -> "MaskLabels":
        """Parse a table in any accepted form (see ACCEPTED_FORMS); MaskLabelsError when it is none of them."""
        text = data.decode("utf-8-sig", errors="replace").strip()
        if not text:
            raise MaskLabelsError("the file is empty")
        if text[0] in "{[":
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                raise MaskLabelsError(f"the file starts like JSON but is not valid JSON ({e})") from None
            return cls._from_doc(doc)
        return cls._from_text(text)

    @classmethod
    def _from_doc(cls, doc: Any) -> "MaskLabels":
        if isinstance(doc, dict) and "mask_labels" in doc:
            doc = doc["mask_labels"]
        if not isinstance(doc, dict) or not doc:
            raise MaskLabelsError(f"a JSON table must be a non-empty object, got {_brief(doc)}")
        if all(isinstance(v, list) and all(isinstance(e, dict) for e in v) for v in doc.values()):
            return cls._from_clearml(doc)
        pairs = []
        for name, value in doc.items():
            rgb = parse_colour(value)
            if rgb is None:
                raise MaskLabelsError(f"class {name!r} has colour {_brief(value)}: a colour is [r, g, b] (integers 0..255) "
                                      "or \"#rrggbb\"; a ClearML table holds lists of {\"value\", \"labels\"} objects")
            pairs.append((rgb, (str(name),)))
        return cls({"_all_": _merge_colours(pairs, "_all_")})

    @classmethod
    def _from_clearml(cls, doc: dict) -> "MaskLabels":
        by_mask = {}
        for key, entries in doc.items():
            pairs = []
            for i, e in enumerate(entries):
                rgb = parse_colour(e.get("value"))
                labels = e.get("labels")
                if rgb is None:
                    raise MaskLabelsError(f"[{key!r}][{i}].value must be [r, g, b] (integers 0..255) or \"#rrggbb\", "
                                          f"got {_brief(e.get('value'))}")
                if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
                    raise MaskLabelsError(f"[{key!r}][{i}].labels must be a list of strings, got {_brief(labels)}")
                pairs.append((rgb, tuple(labels)))
            by_mask[str(key)] = _merge_colours(pairs, str(key))
        return cls(by_mask)

    @classmethod
    def _from_text(cls, text: str) -> "MaskLabels":
        pairs = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            m = re.fullmatch(r"(\d+)\s+(\d+)\s+(\d+)\s+(\S.*)", line) or re.fullmatch(r"(#[0-9a-fA-F]{6})\s+(\S.*)", line)
            if m is None:
                if line.startswith(("#", "//")):
                    continue  # a comment
                raise MaskLabelsError(f"line {n} is not \"r g b Name\": {line[:80]!r}")
            if len(m.groups()) == 2:
                rgb = parse_colour(m[1])
            else:
                rgb = parse_colour([int(m[1]), int(m[2]), int(m[3])])
                if rgb is None:
                    raise MaskLabelsError(f"line {n}: colour values must be 0..255: {line[:80]!r}")
            pairs.append((rgb, (m[m.lastindex].strip(),)))
        if not pairs:
            raise MaskLabelsError("the file holds no \"r g b Name\" line")
        return cls({"_all_": _merge_colours(pairs, "_all_")})

    @classmethod
    def load(cls, place: "Target | str") -> "MaskLabels":
        from transforms.storage import read_bytes

        return cls.parse(read_bytes(place))

    def classes(self) -> int:
        return sum(len(d) for d in self.by_mask.values())


def _merge_colours(pairs: list[tuple[tuple[int, int, int], tuple[str, ...]]], key: str) -> tuple[Declaration, ...]:
    """One declaration per colour, in first-seen order; classes sharing a colour share its declaration."""
    by_rgb: dict[tuple[int, int, int], list[str]] = {}
    for rgb, labels in pairs:
        merged = by_rgb.setdefault(rgb, [])
        merged.extend(lab for lab in labels if lab not in merged)
    return tuple(Declaration(rgb, tuple(labels), None, key) for rgb, labels in by_rgb.items())


def _brief(value: Any) -> str:
    text = json_text(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(slots=True)
class JoinedFrame:
    frame: Frame
    roi_joins: list[RoiJoin]                       # parallel to frame.doc.rois
    declarations: dict[tuple[int, int], list[Declaration]]  # (source index, mask index) -> colours


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
    joined: set[tuple[int, int]] = set()  # masks some ROI joined (with or without a colour)
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
        joined.add(key)
        if roi.mask.value is not None:
            polys = (tuple(roi.poly),) if roi.poly else None
            decls.setdefault(key, []).append(Declaration(tuple(roi.mask.value), tuple(class_labels), ri, polys=polys))

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
            elif key not in joined:
                findings.append(Finding(
                    "mask_without_labels", f"/sources/{si}/masks/{mi}",
                    f"Mask {m.id!r} has no declared colours: no ROI joins it"
                    + (" and --mask-labels does not cover it." if mask_labels else "; pass the dataset version's table with --mask-labels FILE."),
                ))
    return JoinedFrame(frame, joins, decls)


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
