"""One run at a time per OUTPUT: a lease object ``OUTPUT/_LEASE``, created only when absent.

Local disk: ``open(O_CREAT | O_EXCL)``. gs://: an upload with ``ifGenerationMatch=0``; s3://: a PutObject
with ``If-None-Match: *`` (fsspec's ``mode="create"`` for both). The lease holds who took it (run id,
host, boot id, pid and the pid's start time) and when it expires; the holder renews it every
``ttl/4`` seconds and deletes it at the end.

A lease is stale when its run is dead: on the same host (same boot), its pid is gone or now belongs to
another process; anywhere, when it has not been renewed for ``ttl`` seconds. A stale lease is broken by
deleting exactly the version that was judged stale (object stores: a conditional delete on its
generation/ETag; local disk: under a short guard file), then taking a new one the normal way, so two
runs breaking the same stale lease cannot both win.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from transforms.storage import Target

LEASE_NAME = "_LEASE"
TTL_ENV = "FRAMEBEAM_LEASE_TTL_SECONDS"
DEFAULT_TTL_S = 120.0


class LeaseBusy(Exception):
    """Another live run holds the lease."""

    def __init__(self, holder: dict[str, Any]):
        super().__init__(describe_holder(holder))
        self.holder = holder


def describe_holder(holder: dict[str, Any]) -> str:
    return (f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on {holder.get('hostname', '?')}, "
            f"started {holder.get('started_at', '?')})")


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell a reused pid apart; None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def pid_alive(pid: int, start_time: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_time:
        now = process_start_time(pid)
        if now is not None and now != "" and now != start_time:
            return False  # the pid was reused by another process
    return True


def is_stale(holder: dict[str, Any], now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if float(holder.get("expires_at", 0)) < now:
        return True
    same_boot = holder.get("hostname") == socket.gethostname() and holder.get("boot_id") == _boot_id() and _boot_id()
    if same_boot and isinstance(holder.get("pid"), int):
        return not pid_alive(holder["pid"], holder.get("pid_start"))
    return False


# --- storage back-ends: create-if-absent, read with a version token, delete/replace-if-version --------

class _LocalStore:
    def __init__(self, path: str):
        self.path = path
        self.guard = path + ".guard"

    def create(self, data: bytes) -> object | None:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return data

    def read(self) -> tuple[bytes, object] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, data

    def _guarded(self, action) -> bool:
        deadline = time.monotonic() + 10
        while True:
            try:
                os.close(os.open(self.guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                break
            except FileExistsError:
                try:
                    if time.time() - os.stat(self.guard).st_mtime > 30:
                        os.remove(self.guard)  # a breaker died holding it (it holds it for milliseconds)
                        continue
                except FileNotFoundError:
                    continue
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        try:
            return action()
        finally:
            try:
                os.remove(self.guard)
            except FileNotFoundError:
                pass

    def delete_if(self, token: object) -> bool:
        def act() -> bool:
            current = self.read()
            if current is None or current[1] != token:
                return False
            os.remove(self.path)
            return True
        return self._guarded(act)

    def replace_if(self, token: object, data: bytes) -> object | None:
        def act():
            current = self.read()
            if current is None or current[1] != token:
                return None
            tmp = f"{self.path}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
            return data
        return self._guarded(act)


class _ObjectStore:
    """gs:// and s3:// through fsspec: create with mode="create"; tokens are generations / ETags."""

    def __init__(self, target: Target):
        self.fs, self.path, self.kind = target.fs, target.path, target.kind

    def create(self, data: bytes) -> object | None:
        try:
            self.fs.pipe_file(self.path, data, mode="create")
        except OSError as e:
            if _precondition_failed(e):
                return None
            raise
        current = self.read()
        return current[1] if current and current[0] == data else None

    def read(self) -> tuple[bytes, object] | None:
        self.fs.invalidate_cache(self.path)
        try:
            info = self.fs.info(self.path)
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        token = info.get("generation") or info.get("ETag") or info.get("etag")
        return data, (token, data)

    def delete_if(self, token: object) -> bool:
        version, data = token
        bucket, key = self.path.split("/", 1)
        try:
            if self.kind == "s3":
                self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=version)
            elif self.kind == "gs":
                self.fs.call("DELETE", "b/{}/o/{}", bucket, key, ifGenerationMatch=version)
            else:
                current = self.read()
                if current is None or current[1] != token:
                    return False
                self.fs.rm_file(self.path)
        except FileNotFoundError:
            return False
        except OSError as e:
            if _precondition_failed(e):
                return False
            raise
        self.fs.invalidate_cache(self.path)
        return True

    def replace_if(self, token: object, data: bytes) -> object | None:
        # Renewal: a lost race here only means someone broke our lease, which the next renewal reports.
        current = self.read()
        if current is None or current[1] != token:
            return None
        self.fs.pipe_file(self.path, data)
        now = self.read()
        return now[1] if now and now[0] == data else None


def _precondition_failed(e: BaseException) -> bool:
    """A conditional request refused (HTTP 412): s3fs raises OSError(EINVAL, "...pre-conditions..."),
    gcsfs FileExistsError or an HttpError with 412."""
    text = str(e)
    return isinstance(e, FileExistsError) or any(s in text for s in ("PreconditionFailed", "pre-conditions", "412", "conditionNotMet"))


def _store(output: Target):
    lease = output.join(LEASE_NAME)
    return _LocalStore(lease.path) if lease.is_local else _ObjectStore(lease)


@dataclass
class Lease:
    """A held lease; ``release()`` (or leaving the ``with`` block) gives it up."""

    output: str
    run_id: str
    ttl_s: float
    _store: Any
    _token: object
    _record: dict
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None
    lost: bool = False

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def start_renewing(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="framebeam-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            self.renew()

    def renew(self) -> None:
        record = {**self._record, "expires_at": time.time() + self.ttl_s, "renewed_at": time.time()}
        try:
            token = self._store.replace_if(self._token, orjson.dumps(record))
        except Exception:  # noqa: BLE001 - storage hiccup: try again next time (the TTL allows 3 misses)
            return
        if token is None:
            self.lost = True
        else:
            self._token, self._record = token, record

    def release(self) -> None:
        if self._stop is not None:
            self._stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
            self._stop = None
        try:
            self._store.delete_if(self._token)
        except Exception:  # noqa: BLE001 - an unreleased lease expires (or its dead pid is noticed)
            pass


def default_ttl() -> float:
    try:
        return float(os.environ.get(TTL_ENV, "") or DEFAULT_TTL_S)
    except ValueError:
        return DEFAULT_TTL_S


def acquire(output: Target | str, run_id: str, wait_s: float = 0.0,
            ttl_s: float | None = None, on_wait=None) -> Lease:
    """Take OUTPUT's lease, breaking a stale one; wait up to ``wait_s`` for a live one to go.

    Raises LeaseBusy (another live run holds it) or the storage's error (cannot write there).
    ``on_wait(holder)`` is called once when it starts waiting."""
    ttl = ttl_s or default_ttl()
    output = Target.of(output)
    store = _store(output)
    deadline = time.monotonic() + max(wait_s, 0.0)
    told = False
    while True:
        pid = os.getpid()
        record = {"run_id": run_id, "hostname": socket.gethostname(), "boot_id": _boot_id(), "pid": pid,
                  "pid_start": process_start_time(pid) or "", "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "expires_at": time.time() + ttl}
        token = store.create(orjson.dumps(record))
        if token is not None:
            return Lease(output.url, run_id, ttl, store, token, record)
        current = store.read()
        if current is None:
            continue  # released meanwhile: try again at once
        data, version = current
        try:
            holder = orjson.loads(data)
            if not isinstance(holder, dict):
                raise ValueError
        except ValueError:
            holder = {}
        if not holder or is_stale(holder):
            # A half-written lease (a crash between create and write) or a dead run's: break exactly that version.
            if not holder and _age_s(store) < 10:
                holder = {"run_id": "?"}  # just being written: treat as live for a moment
            else:
                store.delete_if(version)
                continue
        if time.monotonic() >= deadline:
            raise LeaseBusy(holder)
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))


def _age_s(store) -> float:
    if isinstance(store, _LocalStore):
        try:
            return time.time() - os.stat(store.path).st_mtime
        except OSError:
            return 0.0
    return 1e9
