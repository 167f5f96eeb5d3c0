"""A run's life in the launcher: signals, worker processes, the log file, failures in one or two lines.

Ctrl-C (SIGINT) reaches the whole process group, so every Beam worker process used to print a
KeyboardInterrupt traceback. Before anything starts, the launcher sets SIGINT to "ignore" and also
blocks it: the worker processes Beam starts (through ``sh -c``, which clears the signal mask but must
keep ignored signals ignored) inherit "ignore" and Python installs no KeyboardInterrupt handler in
them, while in the launcher a blocked signal is never discarded, even when ignored (Linux), so it
stays pending for the watcher thread. The watcher takes SIGINT (``sigtimedwait``) and
SIGTERM (through ``signal.set_wakeup_fd``, so it is seen at once whatever the main thread is doing),
then stops the run: in-process writers stop, worker processes started by this run are killed, the
run's own folder is removed unless it was published, the lease is released, one line is printed, and
the launcher exits 130 (SIGINT) or 143 (SIGTERM).
"""
from __future__ import annotations

import errno
import logging
import os
import select
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143   # 128 + SIGTERM

log = logging.getLogger("framebeam")
SIGNALLED = threading.Event()  # a signal is being handled: the process is about to exit


def wait_if_signalled() -> None:
    """Called by the main thread when its pipeline failed: a failure caused by Ctrl-C or SIGTERM killing
    the workers is the signal's to report, so wait for the watcher thread to end the process."""
    if SIGNALLED.is_set():
        time.sleep(60)


# --- processes -----------------------------------------------------------------------------------------

def descendants(pid: int | None = None) -> set[int]:
    """Every process below ``pid`` (default: this one), from /proc (psutil where there is no /proc)."""
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        try:
            import psutil

            return {p.pid for p in psutil.Process(pid).children(recursive=True)}
        except Exception:  # noqa: BLE001 - nothing to enumerate with
            return set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def kill_processes(pids: set[int], timeout_s: float = 5.0) -> None:
    """SIGKILL ``pids`` (shallowest first) and wait (up to ``timeout_s``) until they are gone.

    Beam starts each worker through ``sh -c``: the launcher is made a child subreaper (see
    ``Interrupts``), so a worker whose shell died first is re-parented here and reaped below, not left
    a zombie of init; killing the shell before its child also keeps it from printing "Killed"."""
    def depth(pid: int) -> int:
        d, p = 0, pid
        while p in pids and d < 64:
            p, d = _parent(p), d + 1
        return d
    for pid in sorted(pids, key=depth):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout_s
    remaining = set(pids)
    while remaining and time.monotonic() < deadline:
        _reap()
        remaining = {p for p in remaining if _running(p) or _is_our_zombie(p)}
        if remaining:
            time.sleep(0.01)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _is_our_zombie(pid: int) -> bool:
    return _parent(pid) == os.getpid()


def set_child_subreaper(on: bool) -> None:
    """Linux: orphaned descendants are re-parented to this process (so it can reap them), not to init."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1 if on else 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


# --- signals -------------------------------------------------------------------------------------------

class Interrupts:
    """Install before anything starts threads or processes; ``on_signal(signum)`` runs on the watcher
    thread and must end the process (os._exit). ``close()`` restores everything (in-process callers)."""

    def __init__(self, on_signal: Callable[[int], None]):
        self.on_signal = on_signal
        self.active = threading.current_thread() is threading.main_thread()
        self._stop = threading.Event()

    def __enter__(self) -> "Interrupts":
        if not self.active:
            return self
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        self._old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._old_term = signal.signal(signal.SIGTERM, lambda *_: None)  # the C handler writes the wakeup fd
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._wfd, False)
        self._old_wakeup = signal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)
        set_child_subreaper(True)
        self._old_hook = threading.excepthook
        threading.excepthook = _thread_exception_to_log
        self._thread = threading.Thread(target=self._watch, name="framebeam-signals", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._rfd], [], [], 0.2)
            if ready:
                data = os.read(self._rfd, 64)
                if signal.SIGTERM in data:
                    SIGNALLED.set()
                    self.on_signal(signal.SIGTERM)
            if signal.sigtimedwait({signal.SIGINT}, 0) is not None:
                SIGNALLED.set()
                self.on_signal(signal.SIGINT)

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self.active:
            return
        self.active = False
        self._stop.set()
        self._thread.join(timeout=2)
        threading.excepthook = self._old_hook
        set_child_subreaper(False)
        signal.set_wakeup_fd(self._old_wakeup)
        signal.signal(signal.SIGTERM, self._old_term)
        signal.signal(signal.SIGINT, self._old_int)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        os.close(self._rfd)
        os.close(self._wfd)


def _thread_exception_to_log(args) -> None:
    """Beam's helper threads report a failure by raising too (e.g. a worker killed by Ctrl-C); the
    pipeline's own exception carries it to the user, so these tracebacks go to the log only."""
    if args.exc_type is SystemExit:
        return
    log.warning("in thread %s", getattr(args.thread, "name", "?"), exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


# --- failures in one or two lines ----------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    kind: str      # disk_full | permission | storage | not_ours | other
    message: str   # one line, no traceback


_PATTERNS = (
    ("disk_full", ("No space left on device", "[Errno 28]", "ENOSPC", "Disk quota exceeded", "[Errno 122]")),
    ("permission", ("Read-only file system", "[Errno 30]", "Permission denied", "[Errno 13]", "PermissionError",
                    "AccessDenied", "Access Denied", "403 Forbidden", "Forbidden")),
    ("not_ours", ("NotOurs",)),
    ("storage", ("EndpointConnectionError", "ConnectionRefused", "Connection refused", "NoSuchBucket", "ServiceUnavailable",
                 "HttpError", "ClientError", "Could not connect", "ReadTimeout", "ConnectTimeout")),
)


def classify_failure(exc: BaseException, output: str) -> Failure:
    """What went wrong, from the exception and its chain (Beam's worker failures arrive as text)."""
    from transforms.uris import redact_text

    texts, e = [], exc
    while e is not None and len(texts) < 10:
        texts.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = "\n".join(texts)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        kind = "disk_full"
    elif isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        kind = "permission"
    else:
        kind = next((k for k, needles in _PATTERNS if any(n in text for n in needles)), "other")
    last = _last_error_line(redact_text(text))
    messages = {
        "disk_full": f"no space left on the device while writing {output}: free space (or choose another --output) and run again",
        "permission": f"permission denied ({last}): check the permissions of {output} and of the inputs, or the credentials",
        "not_ours": f"{output} holds a file framebeam did not write where it publishes ({last})",
        "storage": f"storage error ({last}): check the bucket, the endpoint and the credentials, then run again",
        "other": f"the run failed ({last})",
    }
    return Failure(kind, messages[kind])


def _last_error_line(text: str) -> str:
    """The most telling line: the last 'SomethingError: ...' line of a (worker's) traceback."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.split(":", 1)[0].replace(".", "").isidentifier()
              and ln.split(":", 1)[0].endswith(("Error", "Exception", "NotOurs", "Interrupt")) and ":" in ln]
    line = errors[-1] if errors else (lines[0] if lines else "")
    return line[:300]


# --- the run's log file ---------------------------------------------------------------------------------

class RunLog:
    """``OUTPUT/_logs/<run_id>.log`` on local disk (a temporary file for object stores, copied there at
    the end): framebeam's and Beam's warnings, progress lines, and a failure's full traceback. With
    ``debug``, everything also goes to stderr; otherwise stderr gets only framebeam's own lines."""

    KEEP = 20

    def __init__(self, output: "Target | str", run_id: str, debug: bool):
        from transforms.storage import Target  # imported here: the CLI imports this module before any work

        self.output, self.run_id, self.debug = Target.of(output), run_id, debug
        self.path: str | None = None
        self.final_path: str | None = None
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> "RunLog":
        from transforms.ownership import LOGS_DIR

        self.local = self.output.is_local
        try:
            if self.local:
                folder = os.path.join(self.output.path, LOGS_DIR)
                os.makedirs(folder, exist_ok=True)
                self._prune(folder)
                self.path = self.final_path = os.path.join(folder, f"{self.run_id}.log")
            else:
                self.path = os.path.join(tempfile.gettempdir(), f"framebeam-{self.run_id}.log")
                self.final_path = f"{self.output.url.rstrip('/')}/{LOGS_DIR}/{self.run_id}.log"
            handler: logging.Handler = logging.FileHandler(self.path, delay=False)
        except OSError:
            self.path = os.path.join(tempfile.gettempdir(), f"framebeam-{self.run_id}.log")
            self.final_path = self.path
            handler = logging.FileHandler(self.path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger()
        self._old = (root.level, logging.raiseExceptions, log.level)
        logging.raiseExceptions = False  # a full disk must not print "--- Logging error ---" blocks
        root.setLevel(logging.WARNING)
        log.setLevel(logging.INFO)
        root.addHandler(handler)
        self._handlers.append(handler)
        if self.debug:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.addHandler(stream)
            self._handlers.append(stream)
        return self

    def _prune(self, folder: str) -> None:
        logs = sorted((e for e in os.scandir(folder) if e.name.endswith(".log")), key=lambda e: e.stat().st_mtime)
        for entry in logs[: max(len(logs) - self.KEEP + 1, 0)]:
            try:
                os.remove(entry.path)
            except OSError:
                pass

    def failure(self, exc: BaseException) -> str:
        """Write the traceback; returns where it is (the fallback temporary file when OUTPUT is full)."""
        text = "".join(traceback.format_exception(exc))
        log.error("the run failed:\n%s", text)
        for h in self._handlers:
            h.flush()
        if self.path and self._written(text):
            return self.final_path or self.path
        fallback = os.path.join(tempfile.gettempdir(), f"framebeam-{self.run_id}.log")
        try:
            with open(fallback, "a") as f:
                f.write(text)
            self.final_path = fallback
            return fallback
        except OSError:
            return "(nowhere: no space to write it; run again with --debug)"

    def _written(self, text: str) -> bool:
        try:
            with open(self.path, "rb") as f:
                f.seek(max(os.path.getsize(self.path) - len(text.encode()) - 4096, 0))
                return text.strip().splitlines()[-1].encode() in f.read()
        except OSError:
            return False

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        for h in self._handlers:
            root.removeHandler(h)
            h.close()
        root.setLevel(self._old[0])
        logging.raiseExceptions = self._old[1]
        log.setLevel(self._old[2])
        if not self.local and self.path and self.final_path != self.path and os.path.exists(self.path):
            try:
                final = self.output.at(self.final_path)
                final.fs.put_file(self.path, final.path)
                os.remove(self.path)
            except Exception:  # noqa: BLE001 - the log stays in the temporary folder
                self.final_path = self.path
