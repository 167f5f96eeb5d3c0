"""The label-summary combiner driven without a pipeline: create, add, merge, extract."""
from __future__ import annotations

import random

import pytest

from transforms.summary import LabelSummaryFn, label_summary_rows, summarise, summary_findings

KEY = (("car",), (1, 2, 3))


def events(n: int, seed: int = 3) -> list[tuple]:
    rng = random.Random(seed)
    out = [(KEY, ("frame",)) for _ in range(n)]
    for _ in range(n):
        fraction = rng.random()
        out.append((KEY, ("mask", fraction, int(fraction * 1000), (0, 0, 10, 5) if fraction else None)))
    return out


def test_merged_accumulators_equal_one_pass_whatever_the_order():
    fn = LabelSummaryFn()
    evs = [e for _, e in events(500)]
    one_pass = label_summary_rows(summarise((KEY, e) for e in evs))
    for seed in range(3):
        random.Random(seed).shuffle(evs)
        parts = [fn.create_accumulator() for _ in range(7)]
        for i, e in enumerate(evs):
            fn.add_input(parts[i % 7], e)
        merged = fn.extract_output(fn.merge_accumulators(parts))
        assert label_summary_rows([(KEY, merged)]) == one_pass  # exactly: the means are summed as integers


def test_rows_and_quantiles():
    ((labels, rgb, frames, masks, present, pixels, mean, lo, hi, p50, p95, bw, bh),) = label_summary_rows(summarise(events(1000)))
    assert (labels, rgb, frames, masks) == (["car"], [1, 2, 3], 1000, 1000)
    assert lo <= p50 <= p95 <= hi
    assert p50 == pytest.approx(0.5, abs=0.05) and p95 == pytest.approx(0.95, abs=0.03)
    assert (bw, bh) == (10, 5)


def test_dataset_level_findings():
    items = summarise([((("car",), (1, 1, 1)), ("frame",))] * 100 + [((("car",), (2, 2, 2)), ("frame",))]
                      + [((("bus",), (1, 1, 1)), ("frame",))])
    codes = {row.code for row in summary_findings(items, min_label_frames=5)}
    assert codes == {"label_multiple_colours", "colour_multiple_labels", "label_few_samples", "label_imbalance"}
