"""Progress counters from the workers: Beam counters everywhere, plus a local file for a live line.

On Dataflow the counters show on the job page (namespace ``framebeam``). On the local runner the
launcher cannot read Beam counters until a stage ends, so it passes a folder in the pipeline
(``tuning.WorkerSetup.progress_dir``, handed to ``use`` by the DoFns' set-up) and each worker process
also keeps its totals in ``<dir>/<pid>.json`` (rewritten at most once a second), which
``pipelines.progress`` sums into the live line.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter

import orjson
from apache_beam.metrics import Metrics

NAMESPACE = "framebeam"
KINDS = ("records", "bytes", "frames", "planned", "masks", "findings")  # planned: masks to decode; masks: decoded

_totals: Counter = Counter()
_lock = threading.Lock()
_last_write = 0.0
_directory: str | None = None  # the run the totals belong to
_current: str | None = None  # the folder of the run this process works for (None: no live line)
_counters = {kind: Metrics.counter(NAMESPACE, kind) for kind in KINDS}


def use(directory: str | None) -> None:
    """The progress folder of the run this process now works for (None: counters only)."""
    global _current
    _current = directory


def current() -> str | None:
    return _current


def note(**amounts: int) -> None:
    """Add to the progress counters, e.g. ``note(records=1000, bytes=4_000_000)``."""
    global _last_write
    for kind, n in amounts.items():
        if n:
            _counters[kind].inc(n)
    directory = _current
    if not directory:
        return
    global _directory
    with _lock:
        if directory != _directory:  # a new run in this process (in-process runner): its own totals, written at once
            _totals.clear()
            _directory, _last_write = directory, 0.0
        _totals.update(amounts)
        now = time.monotonic()
        if now - _last_write < 1.0:
            return
        _last_write = now
        snapshot = dict(_totals)
    flush(directory, snapshot)


def flush(directory: str | None = None, snapshot: dict | None = None) -> None:
    directory = directory or _current
    if not directory:
        return
    if snapshot is None:
        with _lock:
            snapshot = dict(_totals)
    path = os.path.join(directory, f"{os.getpid()}.json")
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(snapshot))
        os.replace(tmp, path)
    except OSError:
        pass  # progress is best effort: never fail a bundle over it
