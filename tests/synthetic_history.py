"""A synthetic history for report tests and bench/report_bench.py: N runs of a K-class table whose label
shares drift (a random walk, a few classes jumping), built with the same functions a run uses."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from transforms.drift import HIST_BINS, SHAPE_BIN_EDGES, LabelProfile, check_thresholds, compare_profiles, summary_view
from transforms.history import history_runs_row, history_tables, label_rows
from transforms.schema import HISTORY, HISTORY_RUNS

EVIL_LABEL = "<script>alert('trend')</script>"


def synthetic_history(runs: int = 30, classes: int = 150, masks: int = 2_000, seed: int = 11) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    names = [EVIL_LABEL] + [f"class-{i:03d}" for i in range(1, classes)]
    rate = rng.uniform(0.01, 0.9, classes)
    shape = rng.dirichlet(np.ones(len(SHAPE_BIN_EDGES)), classes)  # per class, its components-per-mask distribution
    tables = (HISTORY.empty_table(), HISTORY_RUNS.empty_table())
    previous = None
    for r in range(runs):
        rate = np.clip(rate * np.exp(rng.normal(0, 0.08, classes)), 0.0, 1.0)
        if r % 7 == 6:
            rate[rng.integers(0, classes, 3)] *= 0.2  # a few classes drop out of some nights
        present = rng.binomial(masks, rate)
        shape = shape * np.exp(rng.normal(0, 0.1, shape.shape))
        shape /= shape.sum(axis=1, keepdims=True)
        profiles = {}
        for i, name in enumerate(names):
            hist = rng.multinomial(int(present[i]), np.full(HIST_BINS, 1 / HIST_BINS)) if present[i] else np.zeros(HIST_BINS, int)
            colour = (int(i * 37 % 256), int(i * 91 % 256), int(i * 13 % 256))
            components = rng.multinomial(int(present[i]), shape[i])
            holes = rng.multinomial(int(present[i]), shape[i][::-1])
            profiles[(name,)] = LabelProfile((name,), (colour,), masks, masks, int(present[i]), int(present[i]) * 5_000,
                                             0.05, 0.04, 0.2, 3.0, 1.0, fraction_hist=tuple(int(x) for x in hist),
                                             components_hist=tuple(int(x) for x in components), holes_hist=tuple(int(x) for x in holes),
                                             largest_share_hist=tuple(int(x) for x in rng.multinomial(int(present[i]), np.full(10, 0.1))))
        drift = None
        if previous is not None:
            result = compare_profiles(profiles, previous)
            result["breaches"] = check_thresholds(result, {"js": 0.01})
            drift = {"baseline": "previous", "baseline_run_id": f"run-{r - 1:03d}", **summary_view(result)}
            rows = label_rows(profiles, result, f"run-{r - 1:03d}")
        else:
            rows = label_rows(profiles, None, None)
        errors = int(rng.poisson(3))
        summary = {"command": "validate", "passed": errors == 0 and not (drift and drift["breaches"]), "reasons": [],
                   "findings": {"error": errors, "warning": int(rng.poisson(20))}, "findings_by_code": {},
                   "frames": masks, "valid_frames": masks - errors, "records": masks, "masks": {"decoded": masks}}
        run = {"run_id": f"run-{r:03d}", "started_at": f"2026-11-{r + 1:02d}T01:00:00+00:00",
               "published_at": f"2026-11-{r + 1:02d}T01:30:00+00:00"}
        tables = history_tables(tables, run, rows, history_runs_row(summary, drift, int((present > 0).sum())), keep=runs)
        previous = profiles
    return tables
