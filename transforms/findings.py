"""Findings: what validation says about a record, a mask or the whole dataset.

Every finding has a stable snake_case ``code`` registered in ``CODES`` below (its severity and
what to do about it live there, once); docs/FINDINGS.md is generated from this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

ERROR = "error"
WARNING = "warning"
INFO = "info"  # counted and shown, never fails a run whatever --fail-on says (transforms/verdict.py)
RAW_TEXT_LIMIT = 64 * 1024  # issues.raw keeps this much of a record that could not be parsed (reading and validation)


class CodeInfo(NamedTuple):
    severity: str
    meaning: str


# code -> (severity, meaning). Stable: users filter and alert on these strings.
CODES: dict[str, CodeInfo] = {
    # Reading and parsing a record
    "shard_unreadable": CodeInfo(ERROR, "A shard could not be opened or read to its end (missing, permission, corrupt compression)."),
    "shard_empty": CodeInfo(WARNING, "A shard holds no records."),
    "json_invalid": CodeInfo(ERROR, "The record is not valid JSON."),
    "json_invalid_utf8": CodeInfo(ERROR, "The record is not valid UTF-8."),
    "json_nan_or_infinity": CodeInfo(ERROR, "The record uses NaN or Infinity, which JSON does not allow."),
    "json_too_deep": CodeInfo(ERROR, "The record nests deeper than --max-json-depth (default 64; orjson's own limit is 1024)."),
    "record_too_large": CodeInfo(ERROR, "The record is larger than --max-record-bytes; raw holds its start."),
    "record_not_object": CodeInfo(ERROR, "The record is valid JSON but not an object, so it cannot be a frame."),
    # Structure of a frame
    "missing_key": CodeInfo(ERROR, "A required key is absent."),
    "wrong_type": CodeInfo(ERROR, "A value has the wrong JSON type."),
    "invalid_value": CodeInfo(ERROR, "A value has the right type but is out of range (negative size, empty id, ...)."),
    "no_sources": CodeInfo(WARNING, "The frame's sources array is empty."),
    "mask_id_not_string": CodeInfo(WARNING, "A mask id is an integer (old docs); it is used as its decimal string."),
    "roi_labels_key": CodeInfo(WARNING, "An ROI uses 'labels' instead of the schema's 'label'; it is read as 'label'."),
    "poly_odd_length": CodeInfo(ERROR, "An ROI poly has an odd number of coordinates."),
    # References inside a frame
    "duplicate_source_id": CodeInfo(ERROR, "Two sources of one frame share an id."),
    "duplicate_mask_id": CodeInfo(ERROR, "Two masks of one source share an id (the SDK repeats '00' across the sources of a FrameGroup, which is fine)."),
    "unknown_roi_source": CodeInfo(ERROR, "An ROI names a source id the frame does not have."),
    "invalid_mask_value": CodeInfo(ERROR, "roi.mask.value is not exactly 3 integers in 0..255."),
    "mask_colour_conflict": CodeInfo(ERROR, "Two ROIs of one mask declare the same colour with different labels."),
    # Joining ROIs to masks
    "seed_join_rule": CodeInfo(WARNING, "The ROI joined by the seed document's Example-1 rule (label names the mask, mask.id names the class)."),
    "roi_mask_unjoined": CodeInfo(ERROR, "An ROI has a mask that joins to no mask of its sources by any rule."),
    "mask_without_labels": CodeInfo(WARNING, "A mask has no declared colours: no ROI joins it and no --mask-labels table covers it."),
    # Dataset-wide
    "duplicate_frame_id": CodeInfo(WARNING, "The same frame id occurs in more than one place (shard:line)."),
    # Reading and decoding masks
    "uri_not_allowed": CodeInfo(ERROR, "The mask URI is outside the allowed URI prefixes; nothing was read."),
    "mask_not_found": CodeInfo(ERROR, "The mask file does not exist."),
    "mask_unreadable": CodeInfo(ERROR, "The mask file could not be read (permission, storage error)."),
    "mask_empty_file": CodeInfo(ERROR, "The mask file has zero bytes."),
    "mask_corrupt": CodeInfo(ERROR, "The mask file is truncated or corrupt, or not an image format we decode."),
    "mask_too_large": CodeInfo(ERROR, "The mask has more pixels than --max-mask-pixels; refused before decoding."),
    "mask_unsupported_mode": CodeInfo(ERROR, "The mask's pixel format cannot be represented exactly as 8-bit RGB (16-bit, CMYK, ...)."),
    "mask_size_mismatch": CodeInfo(ERROR, "The mask's size differs from the declared width/height of its mask entry or source."),
    "mask_decode_timeout": CodeInfo(ERROR, "Reading and decoding the mask took (or would take) longer than --mask-decode-timeout seconds."),
    "mask_file_too_large": CodeInfo(ERROR, "The mask file has more bytes than --max-mask-bytes; the read stopped there."),
    "too_many_masks": CodeInfo(ERROR, "The frame references more masks than --max-masks-per-frame; those beyond the limit are not decoded."),
    "mask_colour_absent": CodeInfo(WARNING, "A colour an ROI declared for the mask has no pixels in it (classes of the --mask-labels table may be absent: they are never this warning)."),
    "mask_undeclared_pixels": CodeInfo(WARNING, "The mask has pixels in colours nobody declared (void, seams, a wrong class table)."),
    # Mask shape quality (docs/SHAPES.md)
    "mask_outside_roi": CodeInfo(WARNING, "More of a colour's pixels lie outside its ROI's poly than --max-outside-roi (default 0.5%) of them."),
    "mask_speckle": CodeInfo(INFO, "A label has components (8-connected) smaller than --min-component-pixels (default 4): specks, common in real annotations."),
    # Video masks
    "video_timestamp_out_of_range": CodeInfo(ERROR, "The mask timestamp is negative or past the end of the mask video."),
    "video_corrupt": CodeInfo(ERROR, "The mask video could not be opened or decoded."),
    # Dataset-level label checks
    "label_multiple_colours": CodeInfo(WARNING, "One label is drawn in different colours across frames."),
    "colour_multiple_labels": CodeInfo(WARNING, "One colour stands for different labels across frames."),
    "label_never_present": CodeInfo(WARNING, "A declared label (by an ROI or the --mask-labels table) has no pixel in any decoded mask of the run."),
    "label_few_samples": CodeInfo(WARNING, "A label is present (has pixels) in fewer frames than --min-label-frames, but in at least one."),
    "label_imbalance": CodeInfo(WARNING, "The most present label is present in over 50x more frames than the least present one."),
    # Drift against --baseline (`previous` or an earlier run's output)
    "drift_label_appeared": CodeInfo(WARNING, "A label has pixels in this run but had none in the baseline."),
    "drift_label_vanished": CodeInfo(WARNING, "A label had pixels in the baseline but has none in this run."),
    "drift_label_colour_changed": CodeInfo(WARNING, "A label's set of colours differs from the baseline's."),
    "drift_distribution_exceeded": CodeInfo(ERROR, "The L-infinity distance between this run's and the baseline's label distributions (masks where present per label) exceeds --max-drift [linf=]VALUE."),
    "drift_js_exceeded": CodeInfo(ERROR, "The Jensen-Shannon divergence (bits) between the label distributions exceeds --max-drift js=VALUE."),
    "drift_psi_exceeded": CodeInfo(ERROR, "The population stability index of the label distributions exceeds --max-drift psi=VALUE."),
    "drift_label_js_exceeded": CodeInfo(ERROR, "A label's pixel-fraction histogram moved more than --max-drift label_js=VALUE (Jensen-Shannon divergence, bits)."),
    "drift_shape_js_exceeded": CodeInfo(ERROR, "A label's histogram of components, holes or largest-component share per mask moved more than --max-drift shape_js=VALUE (Jensen-Shannon divergence, bits)."),
    "drift_slice_exceeded": CodeInfo(ERROR, "Within one --slice-by slice, a drift value exceeds its --max-drift threshold (the message names the slice and metric)."),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing validation found. ``path`` is a JSON pointer into the record ('' = the record)."""

    code: str
    path: str
    message: str

    @property
    def severity(self) -> str:
        return CODES[self.code].severity


def findings_markdown() -> str:
    """docs/FINDINGS.md, generated from CODES."""
    out = [
        "# Finding codes",
        "",
        "Generated from `transforms/findings.py` by `python -m transforms.findings > docs/FINDINGS.md`; do not edit by hand.",
        "Every row of the `issues` table has one of these codes. Codes are stable: alert and filter on them.",
        "Severities: `error` fails `validate` (and marks the frame invalid); `warning` fails it only with `--fail-on warning`;",
        "`info` is counted in `summary.json` and the report but never fails a run, whatever `--fail-on` says.",
        "",
        "| code | severity | meaning |",
        "| --- | --- | --- |",
    ]
    out += [f"| `{code}` | {info.severity} | {info.meaning} |" for code, info in CODES.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(findings_markdown(), end="")
