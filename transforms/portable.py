"""Beam plumbing that every runner executes the same way.

The local FnApiRunner forgives a lot that other runners need not: Beam 2.77's DaskRunner (read in
apache_beam/runners/dask/) hands every consumer of a multi-output ParDo *all* of its outputs, drops
what ``DoFn.finish_bundle`` emits, recomputes a side input's whole upstream graph inside the task that
reads it, treats ``Reshuffle`` as a no-op and keeps a Dask bag's partition count through a GroupByKey
(so a pipeline that starts from one ``Create`` element runs on one worker). The steps below avoid all
five with plain Beam primitives, so the pipeline has one shape on every runner:

- ``Tagged`` + ``select``: one output per ParDo; each branch is a filter on the tag, typed where it is made.
- ``Spread``: a GroupByKey over numbered buckets, padded with one element per bucket from a ``Create``
  (on Dask, the padding's partitions are what spread the work over the workers).
- ``Gather``: named branches -> one dict, through a GroupByKey instead of side inputs.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import typehints

from transforms.coders import ChunkCoder

MAIN = "main"
SPREAD_BUCKETS = 64  # parallelism a Spread allows; Dask runs one task per bucket-partition


class Tagged(NamedTuple):
    """An element of one named branch of a step's output (instead of Beam's TaggedOutput)."""

    tag: str
    value: Any


beam.coders.registry.register_coder(Tagged, ChunkCoder)


def tag_outputs(outputs: Iterable[Any]) -> Iterator[Tagged]:
    """A step's outputs (values and ``TaggedOutput``s) as ``Tagged`` elements; untagged ones are MAIN."""
    for out in outputs:
        if isinstance(out, beam.pvalue.TaggedOutput):
            yield Tagged(out.tag, out.value)
        else:
            yield Tagged(MAIN, out)


def select(item: Tagged, tag: str) -> list[Any]:
    return [item.value] if item.tag == tag else []


def only(tag: str, element_type: Any) -> beam.PTransform:
    """The ``tag`` branch of a PCollection of ``Tagged``, declared as ``element_type``."""
    return beam.FlatMap(lambda item: select(item, tag)).with_input_types(Tagged).with_output_types(element_type)


class Spread(beam.PTransform):
    """Like ``beam.Reshuffle``: elements spread over workers, on every runner.

    ``bucket_of`` maps an element to an int (a deterministic hash: a retried task must bucket the
    same way). Each of ``buckets`` buckets also gets one padding element from a ``Create``, dropped
    after the grouping: on Dask the grouped bag inherits the padding's partitions (one per bucket when
    the runner's Create makes one partition per element, which framebeam asks for).
    """

    def __init__(self, bucket_of: Callable[[Any], int], element_type: Any = Any, buckets: int = SPREAD_BUCKETS):
        super().__init__()
        self.bucket_of = bucket_of
        self.element_type = element_type
        self.buckets = buckets

    def expand(self, pcoll):
        bucket_of, buckets = self.bucket_of, self.buckets
        keyed = pcoll | "KeyByBucket" >> beam.Map(lambda x: (bucket_of(x) % buckets, x)).with_output_types(
            typehints.Tuple[int, self.element_type])
        padding = (
            pcoll.pipeline
            | "Buckets" >> beam.Create(list(range(buckets)))
            | "Pad" >> beam.Map(lambda b: (b, None)).with_output_types(typehints.Tuple[int, None])
        )
        return (
            (keyed, padding)
            | "WithPadding" >> beam.Flatten()
            | "GroupByBucket" >> beam.GroupByKey()
            | "Ungroup" >> beam.FlatMap(lambda kv: [x for x in kv[1] if x is not None]).with_output_types(self.element_type)
        )


GATHER_KEY = "all"


class Gather(beam.PTransform):
    """Named PCollections -> exactly one element ``{name: [elements]}`` (lists empty when a branch is).

    Used where a step needs everything at once (publish, the label summary) instead of side inputs
    and ``CombineGlobally``'s default, which is itself a side input.
    """

    def expand(self, branches: dict[str, beam.PCollection]):
        names = sorted(branches)
        tagged = [
            branches[name] | f"Tag{_camel(name)}" >> beam.Map(lambda v, name: (GATHER_KEY, (name, v)), name)
            .with_output_types(typehints.Tuple[str, typehints.Tuple[str, Any]])
            for name in names
        ]
        first = next(iter(branches.values()))
        once = (first.pipeline | "Once" >> beam.Create([None])
                | "Start" >> beam.Map(lambda _: (GATHER_KEY, ("", None))).with_output_types(typehints.Tuple[str, typehints.Tuple[str, Any]]))
        return (
            (once, *tagged)
            | "AllBranches" >> beam.Flatten()
            | "GroupAll" >> beam.GroupByKey()
            | "ByName" >> beam.Map(_by_name, names).with_output_types(dict[str, list])
        )


def _by_name(kv: tuple[str, Iterable[tuple[str, Any]]], names: list[str]) -> dict[str, list]:
    out: dict[str, list] = {name: [] for name in names}
    for name, value in kv[1]:
        if name:
            out[name].append(value)
    return out


def _camel(name: str) -> str:
    return name.title().replace("_", "")
