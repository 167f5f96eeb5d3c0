"""Mask requests: which masks of a joined frame get decoded, and how requests are grouped.

A ``MaskRequest`` is one mask of one frame with everything needed to decode it and write its rows.
Joining (``transforms.steps``) plans them; decoding (``transforms.masks``) groups and analyses them.
Both import this module, neither imports the other.
"""
from __future__ import annotations

from typing import NamedTuple

from transforms.content_types import infer_content_type, is_video_type
from transforms.findings import Finding
from transforms.flattening import declared_size, mask_row
from transforms.joining import Declaration, JoinedFrame
from transforms.schema import MaskRow
from transforms.uris import resolve_uri, strip_userinfo

FrameKey = tuple[str, int]  # (shard, line)


class MaskRequest(NamedTuple):
    """One mask of one frame, with everything needed to decode it and write its rows."""

    frame_key: FrameKey
    frame_id: str
    source_id: str | None
    mask_id: str | None
    path: str                      # JSON pointer of the mask entry, for findings
    read_uri: str                  # resolved, without user-info: what is read
    is_video: bool
    timestamp: int | None
    declared_size: tuple[int | None, int | None]
    declarations: tuple[Declaration, ...]
    row: MaskRow                   # its masks row before decoding (status not_decoded)


def too_many_masks(frame, max_masks: int) -> Finding | None:
    """The error for a frame referencing more than ``max_masks`` masks (those beyond are not decoded)."""
    n = sum(len(s.masks) for s in frame.doc.sources)
    if n <= max_masks:
        return None
    return Finding("too_many_masks", "/sources", f"The frame references {n:,} masks, more than --max-masks-per-frame={max_masks:,}; "
                                                 f"only the first {max_masks:,} (in source order) are decoded. Split the frame, or raise the limit.")


def plan_masks(joined: JoinedFrame, max_masks: int | None = None) -> tuple[list[MaskRequest], list[MaskRow]]:
    """A request for each mask of the frame to decode, and the masks rows of those not decoded.

    Not decoded: masks beyond the first ``max_masks`` (status ``too_many_masks``, see ``too_many_masks``)
    and masks without a uri (``not_decoded``: validation reported it). Every mask entry keeps its row.
    """
    f = joined.frame
    requests: list[MaskRequest] = []
    undecoded_rows: list[MaskRow] = []
    seen = 0
    for si, s in enumerate(f.doc.sources):
        for mi, m in enumerate(s.masks):
            seen += 1
            over_limit = max_masks is not None and seen > max_masks
            if over_limit or not m.uri:
                status = "too_many_masks" if over_limit else "not_decoded"
                undecoded_rows.append(mask_row(joined, si, mi, status))
                continue
            resolved = resolve_uri(m.uri, f.shard)
            ctype = infer_content_type(m.uri, m.content_type)
            requests.append(MaskRequest(
                frame_key=(f.shard, f.line), frame_id=f.id, source_id=s.id, mask_id=m.id,
                path=f"/sources/{si}/masks/{mi}", read_uri=strip_userinfo(resolved),
                is_video=is_video_type(ctype), timestamp=m.timestamp,
                declared_size=declared_size(s, m),
                declarations=tuple(joined.declarations.get((si, mi), ())),
                row=mask_row(joined, si, mi),
            ))
    return requests, undecoded_rows


def group_key(req: MaskRequest, segment_ms: int) -> str:
    """Requests sharing a key share one read and decode: the URI, plus the time segment for videos.

    A missing mask timestamp means 0 here as in ``masks._analyse_video``, so it shares segment 0's decode.
    Negative timestamps get segments below 0: groups that fail without decoding.
    """
    if req.is_video:
        timestamp = req.timestamp if req.timestamp is not None else 0
        return f"{req.read_uri}\x00{timestamp // segment_ms}"
    return req.read_uri
