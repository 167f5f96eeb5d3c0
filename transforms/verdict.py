"""Whether a run passed: the thresholds a scheduler's exit status rests on."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def verdict(summary: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """{"passed": bool, "reasons": [...]} from a summary's counts and the run's thresholds.

    ``fail_on`` error counts error findings, warning counts warnings too; more than ``max_errors``
    of them fails; info findings never count, whatever ``fail_on`` says. ``max_error_rate`` fails
    when the share of invalid records (frames with an error, plus records that are no frame at all)
    exceeds it. A drift value beyond its --max-drift threshold fails on its own (it is also an error
    finding).
    """
    findings = summary["findings"]
    fail_on = parameters.get("fail_on", "error")
    # findings["info"] is deliberately absent from this sum.
    failing = findings["error"] + (findings["warning"] if fail_on == "warning" else 0)
    max_errors = parameters.get("max_errors", 0)
    reasons = []
    if failing > max_errors:
        what = "error and warning findings" if fail_on == "warning" else "error findings"
        reasons.append(f"{failing:,} {what} > --max-errors {max_errors:,}")
    rate_limit = parameters.get("max_error_rate")
    records = summary["records"]
    invalid = summary["invalid_records"]
    rate = invalid / records if records else 0.0
    if rate_limit is not None and rate > rate_limit:
        reasons.append(f"{rate:.2%} of records invalid > --max-error-rate {rate_limit:.2%}")
    # Drift thresholds are thresholds of their own: --max-errors does not excuse a breach.
    drift = summary.get("drift") or {}
    for b in drift.get("breaches", ()):
        reasons.append(f"label drift {b['metric']} {b['value']:.4f} > --max-drift {b['metric']}={b['threshold']:g}")
    for s in drift.get("slices", ()):
        for b in s.get("breaches", ()):
            reasons.append(f"label drift in slice {s['slice_key']}={s['slice_value']}: {b['metric']} {b['value']:.4f} "
                           f"> --max-drift {b['metric']}={b['threshold']:g}")
    return {"passed": not reasons, "reasons": reasons, "error_rate": rate, "failing_findings": failing}
