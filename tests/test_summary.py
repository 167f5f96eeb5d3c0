"""The label-summary combiners driven without a pipeline: create, add, merge, extract, in any order.

Events are what the decode step sends: a ``MaskEvent`` per label_stats row (colours present, and
ROI-declared colours with 0 pixels), a ``FrameEvent`` per frame and colour with a row, and run-level
events counting decoded masks (``MasksDecoded``, ``FrameTables``). A class-table colour absent from a mask sends nothing.
"""
from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.joining import MaskLabels
from transforms.summary import (
    BINS,
    EXACT_VALUES,
    FrameEvent,
    FrameTables,
    LabelAccumulator,
    LabelSummaryFn,
    MaskEvent,
    MasksDecoded,
    RunCounts,
    RunCountsFn,
    ValueCounts,
    label_summary_rows,
    resolve_labels,
    summary_findings,
)

def summarise(events, run_events=(), mask_labels: MaskLabels | None = None):
    """What the pipeline's combiners compute (LabelSummaryFn, RunCountsFn, then resolve_labels), without Beam."""
    accs: dict = defaultdict(LabelAccumulator)
    for key, event in events:
        accs[key].add(event)
    run = RunCounts()
    for event in run_events:
        run.add(event)
    return resolve_labels(accs.items(), run, mask_labels)


KEY = (("car",), (1, 2, 3))
TABLE = MaskLabels.parse(b'{"car": [1, 2, 3]}')


def mask_event(fraction: float, roi: bool = False) -> MaskEvent:
    pixels = int(round(fraction * 10_000))
    return MaskEvent(pixels / 10_000, pixels, (0, 0, 10, 5) if pixels else None, roi)


def table_run(n_masks: int) -> list[MasksDecoded | FrameTables]:
    return [MasksDecoded("_all_", n_masks)] + [FrameTables(("_all_",))] * n_masks


def combine(fn, events: list, rng: random.Random, parts: int):
    """Events spread over ``parts`` accumulators in a random order, merged in a random tree."""
    rng.shuffle(events)
    accs = [fn.create_accumulator() for _ in range(parts)]
    for e in events:
        fn.add_input(accs[rng.randrange(parts)], e)
    while len(accs) > 1:
        rng.shuffle(accs)
        k = rng.randint(2, len(accs))
        accs = [fn.merge_accumulators(accs[:k])] + accs[k:]
    return fn.extract_output(accs[0])


def fractions_of(n_masks: int, present: int, rng: random.Random) -> np.ndarray:
    """The class's fraction in every one of ``n_masks`` masks: ``present`` of them non-zero."""
    values = np.zeros(n_masks)
    values[:present] = [max(1, round(rng.random() ** 3 * 10_000)) / 10_000 for _ in range(present)]
    return values


@pytest.mark.parametrize("n_masks,present", [(100, 4), (100, 96), (1000, 3), (1000, 700), (5000, 2600), (7, 7), (300, 0)])
def test_quantiles_match_numpy_over_all_masks_whatever_the_merge_order(n_masks: int, present: int) -> None:
    rng = random.Random(n_masks * 31 + present)
    values = fractions_of(n_masks, present, rng)
    events = [mask_event(v) for v in values if v]  # absent masks send nothing
    results = set()
    for seed in range(4):
        acc = combine(LabelSummaryFn(), list(events), random.Random(seed), parts=1 + seed * 3)
        run = combine(RunCountsFn(), table_run(n_masks), random.Random(seed), parts=2)
        (s,) = resolve_labels([(KEY, acc)], run, TABLE)
        results.add(s)
    assert len(results) == 1, "the result depends on the merge order"
    s = results.pop()
    for q, got in ((0.5, s.pixel_fraction_p50), (0.95, s.pixel_fraction_p95)):
        want = float(np.quantile(values, q, method="lower"))
        if want == 0.0:
            assert got == 0.0  # exactly, when the quantile mask lacks the class
        elif present <= EXACT_VALUES:
            assert got == want
        else:
            assert abs(got - want) <= 0.5 / BINS + 1e-12
    assert s.masks_present == present and s.masks_declared == n_masks and s.frames_declared == n_masks
    assert s.pixel_fraction_mean == pytest.approx(values.mean(), abs=1e-12)
    assert s.pixel_fraction_min == values.min() and s.pixel_fraction_max == values.max()


def test_rare_class_median_is_zero_not_a_bin_midpoint() -> None:
    # CamVid's Animal: in 4 of 100 masks. The 1,000-bin histogram used to say 0.0005.
    events = [mask_event(f) for f in (0.0003, 0.0011, 0.0002, 0.004)]
    (s,) = summarise([(KEY, e) for e in events], table_run(100), TABLE)
    assert s.pixel_fraction_p50 == s.pixel_fraction_p95 == s.pixel_fraction_min == 0.0  # 96 zeros: p95 is rank 94
    (s,) = summarise([(KEY, e) for e in events], table_run(20), TABLE)
    values = [0.0] * 16 + [0.0003, 0.0011, 0.0002, 0.004]
    assert (s.pixel_fraction_p50, s.pixel_fraction_p95) == (0.0, float(np.quantile(values, 0.95, method="lower"))) == (0.0, 0.0011)


def test_roi_declared_zero_rows_count_as_declared_not_present() -> None:
    # ROIs declare car in 10 masks; 3 hold it. 20 masks were decoded in all.
    events = [(KEY, mask_event(0.5 if i < 3 else 0.0, roi=True)) for i in range(10)]
    events += [(KEY, FrameEvent(i < 3, True)) for i in range(10)]
    (s,) = summarise(events, [MasksDecoded(None, 20)])
    assert (s.masks_present, s.frames_present, s.masks_declared, s.frames_declared) == (3, 3, 10, 10)
    assert s.pixel_fraction_p50 == 0.0 and s.pixel_fraction_max == 0.5
    assert s.pixel_fraction_mean == pytest.approx(1.5 / 20)


def test_table_classes_without_pixels_still_get_a_row_and_are_ranked_last() -> None:
    table = MaskLabels.parse(b'{"road": [128, 64, 128], "car": [64, 0, 128], "train": [192, 64, 128]}')
    road, car, train = ((("road",), (128, 64, 128)), (("car",), (64, 0, 128)), (("train",), (192, 64, 128)))
    events = [(road, mask_event(0.4)) for _ in range(10)] + [(road, FrameEvent(True, False))] * 10
    events += [(car, mask_event(0.01)) for _ in range(2)] + [(car, FrameEvent(True, False))] * 2
    classes = summarise(events, table_run(10), table)
    assert [(s.labels, s.masks_present, s.masks_declared, s.frames_declared) for s in classes] == [
        (("road",), 10, 10, 10), (("car",), 2, 10, 10), (("train",), 0, 10, 10)]
    row = label_summary_rows(classes)[2]
    assert list(row[:7]) == [["train"], [192, 64, 128], 0, 0, 10, 10, 0]
    codes = [(r.code, r.message) for r in summary_findings(classes, min_label_frames=5)]
    assert [c for c, _ in codes] == ["label_never_present", "label_few_samples"]
    assert "'train'" in codes[0][1] and "'car'" in codes[1][1]


def test_table_counts_follow_the_entry_each_mask_used() -> None:
    # Masks with id "00" use that entry, the rest "_all_": declarations count per entry.
    table = MaskLabels.parse(b'{"_all_": [{"value": [1, 1, 1], "labels": ["sky"]}], '
                             b'"00": [{"value": [2, 2, 2], "labels": ["car"]}, {"value": [1, 1, 1], "labels": ["sky"]}]}')
    run = [MasksDecoded("_all_", 5), MasksDecoded("00", 3), MasksDecoded(None, 2)]
    run += [FrameTables(("_all_",))] * 4 + [FrameTables(("00", "_all_"))] + [FrameTables(("00",))] * 2
    classes = {s.labels: s for s in summarise([], run, table)}
    assert (classes[("sky",)].masks_declared, classes[("sky",)].frames_declared) == (8, 7)
    assert (classes[("car",)].masks_declared, classes[("car",)].frames_declared) == (3, 3)
    assert classes[("car",)].pixel_fraction_p50 == 0.0  # over all 10 decoded masks


def test_run_counts_merge_in_any_order() -> None:
    events = [MasksDecoded(random.Random(i).choice(["_all_", "00", None]), i % 4) for i in range(200)]
    events += [FrameTables(tuple(sorted({"_all_", "00"} if i % 3 else {"_all_"}))) for i in range(50)]
    results = []
    for seed in range(3):
        r = combine(RunCountsFn(), list(events), random.Random(seed), parts=5)
        results.append((r.masks, dict(r.table_masks), dict(r.table_frames)))
    assert results[0] == results[1] == results[2]
    assert results[0][0] == sum(e.n for e in events if isinstance(e, MasksDecoded))


def test_presence_drives_few_samples_and_imbalance() -> None:
    many, rare = (("road",), (1, 1, 1)), (("bridge",), (2, 2, 2))
    events = [(many, FrameEvent(True, True))] * 120 + [(many, mask_event(0.3, roi=True))] * 120
    # bridge is declared by ROIs in 120 frames, present in 2: declarations no longer hide rarity.
    events += [(rare, FrameEvent(i < 2, True)) for i in range(120)] + [(rare, mask_event(0.01 if i < 2 else 0.0, roi=True)) for i in range(120)]
    codes = {r.code for r in summary_findings(summarise(events, [MasksDecoded(None, 120)]), min_label_frames=5)}
    assert codes == {"label_few_samples", "label_imbalance"}


def test_colour_and_label_inconsistencies() -> None:
    items = [((("car",), (1, 1, 1)), FrameEvent(True, True))] * 100 + [((("car",), (2, 2, 2)), FrameEvent(True, True))] * 10
    items += [((("bus",), (1, 1, 1)), FrameEvent(True, True))] * 10
    codes = {row.code for row in summary_findings(summarise(items, [MasksDecoded(None, 120)]), min_label_frames=5)}
    assert codes == {"label_multiple_colours", "colour_multiple_labels"}


def test_accumulator_state_is_bounded_for_common_classes() -> None:
    fn = LabelSummaryFn()
    acc = fn.create_accumulator()
    for i in range(10_000):
        fn.add_input(acc, mask_event((i % 997 + 1) / 1000))
    assert acc.exact is None and acc.hist.size == BINS


def test_empty_run() -> None:
    assert summarise([], [], None) == []
    assert RunCounts().masks == 0


# --- components and holes (shape columns) ---------------------------------------------------------------

def shape_events(n: int, seed: int) -> list[tuple[tuple, MaskEvent]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pixels = rng.choice([0, 0, 5, 100, 2000])
        shapes = (rng.choice([1, 1, 2, 3, 7, 40]), rng.choice([0, 0, 0, 1, 5])) if pixels else (None, None)
        out.append((KEY, MaskEvent(pixels / 10_000, pixels, (0, 0, 10, 5) if pixels else None, True, *shapes)))
    return out


def test_components_and_holes_mean_and_exact_p95_whatever_the_merge_order() -> None:
    evs = shape_events(777, seed=11)
    components = [e.components for _, e in evs if e.pixels]
    holes = [e.holes for _, e in evs if e.pixels]
    results = set()
    for seed in range(3):
        acc = combine(LabelSummaryFn(), [e for _, e in evs], random.Random(seed), parts=1 + 2 * seed)
        (s,) = resolve_labels([(KEY, acc)], RunCounts())
        results.add((s.components_mean, s.components_p95, s.holes_mean, s.holes_p95))
    assert len(results) == 1
    c_mean, c_p95, h_mean, h_p95 = results.pop()
    assert c_mean == pytest.approx(np.mean(components)) and h_mean == pytest.approx(np.mean(holes))
    assert c_p95 == int(np.quantile(components, 0.95, method="inverted_cdf"))
    assert h_p95 == int(np.quantile(holes, 0.95, method="inverted_cdf"))
    row = label_summary_rows([s for s in summarise(evs)])[0]
    assert list(row[-4:]) == [c_mean, c_p95, h_mean, h_p95]


@given(st.lists(st.integers(0, 60), min_size=1, max_size=300), st.integers(1, 99))
def test_value_counts_quantile_is_numpys_inverted_cdf(values, percent) -> None:
    counts, half = ValueCounts(), ValueCounts()
    for i, v in enumerate(values):
        (counts if i % 2 else half).add(v)
    counts.merge(half)
    assert counts.quantile(percent) == int(np.quantile(values, percent / 100, method="inverted_cdf"))


def test_unmeasured_shapes_give_nulls() -> None:
    evs = [(KEY, MaskEvent(0.5, 10, (0, 0, 2, 5), True, None, None)), (KEY, MaskEvent(0.5, 10, (0, 0, 2, 5), True))]
    (s,) = summarise(evs)
    assert (s.components_mean, s.components_p95, s.holes_mean, s.holes_p95) == (None, None, None, None)
