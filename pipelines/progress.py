"""The live progress line of a local run (records read, masks decoded, findings, rate, ETA)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson

from transforms.progress import ENV_DIR


class Progress:
    """Sums the workers' progress files; prints a live line on a terminal, a log line every 5 s elsewhere."""

    def __init__(self, total_bytes: int | None, stream=None, interval: float | None = None):
        self.total_bytes = total_bytes or None
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval or float(os.environ.get("FRAMEBEAM_PROGRESS_SECONDS", 0)) or (1.0 if self.tty else 5.0)
        self.directory = Path(tempfile.mkdtemp(prefix="framebeam-progress-"))
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="framebeam-progress", daemon=True)

    def __enter__(self) -> "Progress":
        os.environ[ENV_DIR] = str(self.directory)  # inherited by the runner's worker processes
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        os.environ.pop(ENV_DIR, None)
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
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
        elapsed = time.monotonic() - self.started
        rate = t["records"] / elapsed if elapsed > 0 else 0.0
        parts = [f"{t['records']:,} records", f"{t['masks']:,} masks decoded", f"{t['findings']:,} findings",
                 f"{rate:,.0f} records/s", f"{elapsed:,.0f} s"]
        if self.total_bytes and t["bytes"]:
            done = min(t["bytes"] / self.total_bytes, 1.0)
            eta = elapsed * (1 - done) / done if done else 0
            parts.append(f"{done:.0%} read, ETA {eta:,.0f} s")
        return "framebeam: " + ", ".join(parts)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            text = self.line()
            if self.tty:
                self.stream.write("\r\033[K" + text[: shutil.get_terminal_size().columns - 1])
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
