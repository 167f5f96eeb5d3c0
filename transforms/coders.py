"""Beam coders for the chunks that flow between steps.

Beam samples the size of elements passing between fused steps and, for a pickled type, measures a
sample by pickling it whole: for chunks of 1,000 parsed frames that cost more than the validation
itself (5 s per 20,000 frames, measured with bench/convert_bench.py). These coders still pickle
when a chunk really crosses a stage boundary, but estimate its size from counts.
"""
from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam
import pyarrow as pa


class ChunkCoder(beam.coders.Coder):
    """Pickle for transport; a cheap size estimate for Beam's sampled size metrics."""

    BYTES_PER_ITEM = 2_000  # a typical frame as parsed objects

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: Any) -> int:
        if type(value).__name__ == "Tagged":  # transforms.portable.Tagged: a branch tag around a chunk
            return 16 + self.estimate_size(value[1])
        items = value[1] if isinstance(value, tuple) and len(value) > 1 else None
        if isinstance(items, list):
            return 64 + self.BYTES_PER_ITEM * len(items)
        if isinstance(items, pa.Table):  # TableRows of sources and rois
            return 64 + items.get_total_buffer_size()
        return 64

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))
