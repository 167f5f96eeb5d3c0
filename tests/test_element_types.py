"""Element types survive any runner: steps declare what they produce, and Beam's runtime type check
holds them to it on a whole run; the runner-neutral plumbing (transforms.portable) keeps every element.

The Dask cluster runs are in tests/test_dask_runner.py; the runner flags are checked here.
"""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.options import DASK_PARTITIONS, DASK_RUNNER, beam_options, runner_of, spread_buckets, unknown_beam_flags, uses_dask
from tests.conftest import IN_MEMORY, query, run_cli, table
from transforms.flattening import TableRows
from transforms.portable import MAIN, Gather, Spread, Tagged, only, tag_outputs
from transforms.sample import write_sample


def in_memory() -> beam.Pipeline:
    return beam.Pipeline(options=beam_options(IN_MEMORY))


@pytest.mark.slow
def test_runtime_type_check_passes_a_whole_run_and_changes_no_row(tmp_path):
    write_sample(str(tmp_path / "data"))
    args = ["run", "--input", f"{tmp_path}/data/frames-*", "--mask-labels", f"{tmp_path}/data/mask_labels.json", "--quiet"]
    assert run_cli(*args, "--output", str(tmp_path / "plain")) == 0
    assert run_cli(*args, "--output", str(tmp_path / "checked"), "--runtime_type_check") == 0
    for name in ("frames", "issues", "masks", "label_stats", "label_summary", "crops", "rois", "sources"):
        a, b = table(tmp_path / "plain", name), table(tmp_path / "checked", name)
        assert query(f"SELECT count(*) FROM {a}") == query(f"SELECT count(*) FROM {b}")
        assert query(f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}") == [], name


def test_runtime_type_check_catches_a_branch_declared_with_the_wrong_type():
    """The check the run above passes is live: a branch declared as TableRows that carries a str fails."""
    p = beam.Pipeline(options=beam_options([*IN_MEMORY, "--runtime_type_check"]))
    _ = p | beam.Create([Tagged(MAIN, "not rows")]).with_output_types(Tagged) | only(MAIN, TableRows)
    with pytest.raises(Exception, match="(?i)type"):
        p.run().wait_until_finish()


def test_tag_outputs_and_only_split_a_steps_outputs_by_branch():
    outputs = list(tag_outputs([TableRows("frames", []), beam.pvalue.TaggedOutput("ids", (1, b"x")), TableRows("issues", [])]))
    assert outputs == [Tagged(MAIN, TableRows("frames", [])), Tagged("ids", (1, b"x")), Tagged(MAIN, TableRows("issues", []))]
    with in_memory() as p:
        tagged = p | beam.Create(outputs).with_output_types(Tagged)
        assert_that(tagged | "Rows" >> only(MAIN, TableRows), equal_to([TableRows("frames", []), TableRows("issues", [])]), label="Rows")
        assert_that(tagged | "Ids" >> only("ids", tuple), equal_to([(1, b"x")]), label="Ids")


def test_spread_keeps_every_element_once():
    elements = [f"part-{i}" for i in range(300)]
    with in_memory() as p:
        spread = p | beam.Create(elements) | Spread(lambda s: int(s.split("-")[1]) * 7919, str, buckets=5)
        assert_that(spread, equal_to(elements))


def test_gather_gives_one_element_even_when_every_branch_is_empty():
    with in_memory() as p:
        empty = p | "Empty" >> beam.Create([]).with_output_types(int)
        some = p | "Some" >> beam.Create([3, 1, 2])
        gathered = {"empty": empty, "some": some} | Gather() | beam.Map(lambda g: (sorted(g), g["empty"], sorted(g["some"])))
        assert_that(gathered, equal_to([(["empty", "some"], [], [1, 2, 3])]))
        alone = {"nothing": p | "Nothing" >> beam.Create([]).with_output_types(int)} | "Alone" >> Gather()
        assert_that(alone, equal_to([{"nothing": []}]), label="Alone")


@pytest.mark.parametrize("flags", [
    ["--runner", "DaskRunner"],
    ["--runner=DaskRunner", "--dask_client_address", "tcp://127.0.0.1:1"],
    ["--runner", DASK_RUNNER, "--dask_client_address=tcp://127.0.0.1:1", "--dask_connection_timeout", "5"],
    ["--dask_client_address", "tcp://127.0.0.1:1", "--runner", "dask"],
])
def test_dask_runner_and_its_flags_are_accepted(flags):
    pytest.importorskip("distributed")
    assert uses_dask(flags) and runner_of(flags) == DASK_RUNNER
    assert unknown_beam_flags(flags) == []
    options = beam_options(flags)
    assert options.get_all_options()["runner"] == DASK_RUNNER
    assert options.get_all_options()["npartitions"] == DASK_PARTITIONS == spread_buckets(options)


def test_dask_partitions_given_by_the_user_win_and_set_the_spread():
    pytest.importorskip("distributed")
    options = beam_options(["--runner", "DaskRunner", "--dask_npartitions", "12"])
    assert options.get_all_options()["npartitions"] == 12 and spread_buckets(options) == 12
    sized = beam_options(["--runner", "DaskRunner", "--dask_partition_size", "3"])
    assert sized.get_all_options()["npartitions"] is None and spread_buckets(sized) == DASK_PARTITIONS


def test_other_runners_keep_their_flags_and_the_wide_spread():
    assert not uses_dask(["--runner", "DataflowRunner"]) and runner_of([]) is None
    assert unknown_beam_flags(["--dask_typo_flag", "x"]) != []  # still refused once the Dask flags are known
    assert spread_buckets(beam_options(IN_MEMORY)) == 64
