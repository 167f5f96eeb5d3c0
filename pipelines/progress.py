"""The live progress line of a local run: what the run is doing now, out of what total, and an ETA.

Worker processes add to their counters (``transforms.progress``) and rewrite ``<dir>/<pid>.json`` at
most once a second; this thread sums those files. A run that decodes masks spends most of its time
there, so once decoding has started the line counts masks decoded out of the masks planned (every mask
request the join step emitted: on the local runner all of them exist before the first is decoded, the
grouping step between them being a barrier) and the ETA comes from the decoding rate. Before that, and
for convert, it counts the input read. Lines go to stderr (rewritten in place on a terminal, every
5 s otherwise) and to the run's log.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson

log = logging.getLogger("framebeam.progress")


class Progress:
    """Sums the workers' progress files; prints a live line on a terminal, a log line every 5 s elsewhere."""

    def __init__(self, total_bytes: int | None, stream=None, interval: float | None = None, show: bool = True):
        self.total_bytes = total_bytes or None
        self.stream = stream or sys.stderr
        self.show = show  # False: the log only (--quiet)
        self.tty = self.show and self.stream.isatty()
        self.interval = interval or float(os.environ.get("FRAMEBEAM_PROGRESS_SECONDS", 0)) or (1.0 if self.tty else 5.0)
        self.directory = Path(tempfile.mkdtemp(prefix="framebeam-progress-"))
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="framebeam-progress", daemon=True)
        self._decode_started: tuple[float, int] | None = None

    def __enter__(self) -> "Progress":
        self._thread.start()  # the workers were given self.directory in the pipeline (tuning.WorkerSetup)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:  # the last count, for the log (and a pipe): the live line only saw the last poll
            text = self.line()
            log.info(text.removeprefix("framebeam: "))
            if self.show and not self.tty:
                self.stream.write(text + "\n")
                self.stream.flush()
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def totals(self) -> Counter:
        total: Counter = Counter()
        for path in self.directory.glob("*.json"):
            try:
                total.update(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue  # being replaced right now
        return total

    def line(self) -> str:
        t = self.totals()
        now = time.monotonic()
        elapsed = now - self.started
        if t["masks"] and self._decode_started is None:
            self._decode_started = (now, t["masks"])
        if t["masks"] and t["planned"]:
            return "framebeam: " + ", ".join(self._decoding(t, now) + [f"{t['frames']:,} frames", f"{t['findings']:,} findings",
                                                                       f"{elapsed:,.0f} s"])
        rate = t["records"] / elapsed if elapsed > 0 else 0.0
        parts = [f"{t['records']:,} records read", f"{rate:,.0f} records/s"]
        if self.total_bytes and t["bytes"]:
            done = min(t["bytes"] / self.total_bytes, 1.0)
            parts.insert(0, f"reading {done:.0%}")
            if not t["planned"] and done < 1.0:
                parts.append(f"ETA {elapsed * (1 - done) / done:,.0f} s")
        if t["planned"]:
            parts.append(f"{t['planned']:,} masks planned")
        parts += [f"{t['findings']:,} findings", f"{elapsed:,.0f} s"]
        return "framebeam: " + ", ".join(parts)

    def _decoding(self, t: Counter, now: float) -> list[str]:
        decoded, planned = min(t["masks"], t["planned"]), t["planned"]
        parts = [f"{decoded:,} of {planned:,} masks decoded ({decoded / planned:.0%})"]
        since, at_start = self._decode_started
        if now - since >= 1.0 and decoded > at_start:
            rate = (decoded - at_start) / (now - since)
            parts.append(f"{rate:,.1f} masks/s")
            parts.append(f"ETA {(planned - decoded) / rate:,.0f} s" if decoded < planned else "writing tables")
        return parts

    def _loop(self) -> None:
        last_logged = 0.0
        while not self._stop.wait(self.interval):
            text = self.line()
            if self.tty:
                self.stream.write("\r\033[K" + text[: shutil.get_terminal_size().columns - 1])
                self.stream.flush()
            elif self.show:
                self.stream.write(text + "\n")
                self.stream.flush()
            if time.monotonic() - last_logged >= 5.0:
                log.info(text.removeprefix("framebeam: "))
                last_logged = time.monotonic()
