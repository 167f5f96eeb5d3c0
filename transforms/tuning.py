"""Worker set-up: the one place framebeam changes process-wide state (GC, malloc, numba's cache folder).

``WorkerSetup`` travels inside the DoFns that parse, join, decode and write chunks; their ``setup()``
calls ``apply()``, so it runs in every worker process of every runner (the local runner's worker
processes, Dataflow, Dask) before the first element, and in nothing else. It is idempotent: the
process-wide settings are made once per process, whatever the number of DoFns.

* the garbage collector's young-generation threshold (``gc_threshold``), raised for chunk work;
* glibc malloc (``mallopt``) for jobs that decode masks: mmap and trim thresholds, arena count;
* the run's progress folder (``transforms.progress``), passed in the pipeline, not the environment.

What each setting buys is measured in docs/PERFORMANCE.md ("worker tuning"), with the command.

The launcher (the process that built the pipeline, recorded as host and pid) is not given the malloc
settings: they are for the workers' mask buffers, and the launcher may be someone's program calling
the CLI. When the runner runs the steps inside the launcher (small local jobs), the GC threshold is
raised there too; the CLI puts it back afterwards (``restored()``).

``FRAMEBEAM_TUNING`` (read where the pipeline is built, for benchmarks) changes them: ``off`` for none,
or a comma-separated list of ``NAME`` (leave that one alone) or ``NAME=INT`` (that value), the names
being ``gc``, ``mmap``, ``trim``, ``arena``; e.g. ``FRAMEBEAM_TUNING=gc,arena=2``.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger("framebeam.tuning")

CHUNK_GC_THRESHOLD = 200_000
MMAP_THRESHOLD = 1 << 30  # larger than any mask buffer: big buffers come from the heap, not fresh mmaps
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes a C int: ~2 GiB, i.e. freed heap memory is kept
ARENA_MAX = 0  # 0: glibc's default (8 per core); measured in docs/PERFORMANCE.md, not worth setting

# mallopt parameters (glibc's malloc.h) and the environment variables glibc reads for them at start-up:
# a value set there (by the user, or deploy/Dockerfile) wins over ours.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MALLOC_ENV = {"trim": "MALLOC_TRIM_THRESHOLD_", "mmap": "MALLOC_MMAP_THRESHOLD_", "arena": "MALLOC_ARENA_MAX"}
SETTINGS = ("gc", "mmap", "trim", "arena")
ENV_SWITCH = "FRAMEBEAM_TUNING"

_lock = threading.Lock()
_done: set[str] = set()  # the process-wide settings already made in this process


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process is given before its first element (picklable: it is part of the DoFns)."""

    gc_threshold: int = CHUNK_GC_THRESHOLD  # 0: leave the collector alone
    malloc: bool = False  # glibc malloc tuning: for jobs that decode masks
    mmap_threshold: int = MMAP_THRESHOLD
    trim_threshold: int = TRIM_THRESHOLD
    arena_max: int = ARENA_MAX
    progress_dir: str | None = None  # where a local run's launcher sums the workers' progress files
    launcher: tuple[str, int] | None = None  # (host, pid) of the process that built the pipeline

    @classmethod
    def for_job(cls, decode: bool, progress_dir: str | None = None, switch: str | None = None) -> "WorkerSetup":
        """The set-up for a job built in this process (the launcher); ``switch`` as FRAMEBEAM_TUNING."""
        setup = cls(malloc=decode, progress_dir=progress_dir, launcher=(socket.gethostname(), os.getpid()))
        switch = (os.environ.get(ENV_SWITCH, "") if switch is None else switch).strip()
        entries = SETTINGS if switch == "off" else [s.strip() for s in switch.split(",") if s.strip()]
        values = {}
        for entry in entries:
            name, _, value = entry.partition("=")
            if name not in SETTINGS or (value and not value.isdigit()):
                raise ValueError(f"{ENV_SWITCH}: {entry!r}? Use 'off', or a comma-separated list of NAME (off) or NAME=INT "
                                 f"with NAME among {', '.join(SETTINGS)}")
            values[name] = int(value or 0)
        fields = {"gc": "gc_threshold", "mmap": "mmap_threshold", "trim": "trim_threshold", "arena": "arena_max"}
        return replace(setup, **{fields[name]: value for name, value in values.items()})

    def in_launcher(self) -> bool:
        return self.launcher == (socket.gethostname(), os.getpid())

    def apply(self) -> dict[str, int]:
        """Make this process's settings (each once per process); returns what this call set."""
        from transforms import progress

        progress.use(self.progress_dir)
        made: dict[str, int] = {}
        with _lock:
            if self.gc_threshold and "gc" not in _done:
                threshold, *older = gc.get_threshold()
                if 0 < threshold < self.gc_threshold:  # a collector someone disabled (0) stays disabled
                    gc.set_threshold(self.gc_threshold, *older)
                    made["gc"] = self.gc_threshold
                _done.add("gc")
            if self.malloc and not self.in_launcher():
                wanted = {"mmap": (M_MMAP_THRESHOLD, self.mmap_threshold), "trim": (M_TRIM_THRESHOLD, self.trim_threshold),
                          "arena": (M_ARENA_MAX, self.arena_max)}
                for name, (param, value) in wanted.items():
                    if value and name not in _done and not os.environ.get(MALLOC_ENV[name]):
                        if _mallopt(param, value):
                            made[name] = value
                        _done.add(name)
        if made:
            log.debug("worker tuning: %s", made)
        return made


def _mallopt(param: int, value: int) -> bool:
    """glibc's mallopt; False (nothing done) elsewhere (musl, macOS) or when glibc refuses the value."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(param, value) == 1


@contextmanager
def restored() -> Iterator[None]:
    """Put back what ``apply()`` may change in this process (the GC threshold, the progress folder) at exit:
    the CLI runs jobs inside its caller's process, and small local jobs run their steps there too."""
    from transforms import progress

    threshold = gc.get_threshold()
    directory = progress.current()
    with _lock:
        done = set(_done)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        progress.use(directory)
        with _lock:
            _done.clear()
            _done.update(done)


def numba_cache_dir() -> str | None:
    """Where numba keeps the kernels' compiled code: beside transforms/ when writable (numba's default),
    else a per-user cache folder. numba's own fallback when ``__pycache__`` is not writable is ~/.cache,
    which may be unwritable too on a locked-down worker (then every process would compile again: ~5 s).
    An explicit NUMBA_CACHE_DIR wins."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    here = Path(__file__).resolve().parent
    pycache = here / "__pycache__"
    if os.access(pycache if pycache.exists() else here, os.W_OK):
        return None
    fallback = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "framebeam-numba"
    try:
        fallback.mkdir(parents=True, exist_ok=True)
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"framebeam-numba-{os.getuid()}"
        fallback.mkdir(parents=True, exist_ok=True)
    return str(fallback)


def use_numba_cache() -> str | None:
    """Point numba's cache at ``numba_cache_dir()``; call before decorating the kernels (numba fixes a
    function's cache folder when it is decorated). numba's config, not the environment: numba re-reads
    NUMBA_* variables only when one changes, and nothing here changes them."""
    directory = numba_cache_dir()
    if directory:
        import numba

        numba.config.CACHE_DIR = directory
    return directory
