"""The label-summary combiner driven without a pipeline: create, add, merge, extract."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.summary import LabelSummaryFn, ValueCounts, label_summary_rows, summarise, summary_findings

KEY = (("car",), (1, 2, 3))


def events(n: int, seed: int = 3) -> list[tuple]:
    rng = random.Random(seed)
    out = [(KEY, ("frame",)) for _ in range(n)]
    for _ in range(n):
        fraction = rng.random()
        shapes = (rng.choice([1, 1, 2, 3, 7, 40]), rng.choice([0, 0, 0, 1, 5])) if fraction else (None, None)
        out.append((KEY, ("mask", fraction, int(fraction * 1000), (0, 0, 10, 5) if fraction else None, *shapes)))
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
    ((labels, rgb, frames, masks, present, pixels, mean, lo, hi, p50, p95, bw, bh, *_),) = label_summary_rows(summarise(events(1000)))
    assert (labels, rgb, frames, masks) == (["car"], [1, 2, 3], 1000, 1000)
    assert lo <= p50 <= p95 <= hi
    assert p50 == pytest.approx(0.5, abs=0.05) and p95 == pytest.approx(0.95, abs=0.03)
    assert (bw, bh) == (10, 5)


def test_components_and_holes_mean_and_exact_p95():
    evs = events(777, seed=11)
    ((*_, c_mean, c_p95, h_mean, h_p95),) = label_summary_rows(summarise(evs))
    components = [e[4] for _, e in evs if e[0] == "mask" and e[4] is not None]
    holes = [e[5] for _, e in evs if e[0] == "mask" and e[5] is not None]
    assert c_mean == pytest.approx(np.mean(components)) and h_mean == pytest.approx(np.mean(holes))
    assert c_p95 == int(np.quantile(components, 0.95, method="inverted_cdf"))
    assert h_p95 == int(np.quantile(holes, 0.95, method="inverted_cdf"))


@given(st.lists(st.integers(0, 60), min_size=1, max_size=300), st.integers(1, 99))
def test_value_counts_quantile_is_numpys_inverted_cdf(values, percent):
    counts = ValueCounts()
    half = ValueCounts()
    for i, v in enumerate(values):
        (counts if i % 2 else half).add(v)
    counts.merge(half)
    assert counts.quantile(percent) == int(np.quantile(values, percent / 100, method="inverted_cdf"))


def test_unmeasured_shapes_give_nulls():
    evs = [(KEY, ("frame",)), (KEY, ("mask", 0.5, 10, (0, 0, 2, 5), None, None)), (KEY, ("mask", 0.5, 10, (0, 0, 2, 5)))]
    ((*_, c_mean, c_p95, h_mean, h_p95),) = label_summary_rows(summarise(evs))
    assert (c_mean, c_p95, h_mean, h_p95) == (None, None, None, None)


def test_dataset_level_findings():
    items = summarise([((("car",), (1, 1, 1)), ("frame",))] * 100 + [((("car",), (2, 2, 2)), ("frame",))]
                      + [((("bus",), (1, 1, 1)), ("frame",))])
    codes = {row[4] for row in summary_findings(items, min_label_frames=5)}
    assert codes == {"label_multiple_colours", "colour_multiple_labels", "label_few_samples", "label_imbalance"}
