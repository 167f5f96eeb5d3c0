"""Real storage servers on 127.0.0.1 for tests: moto's S3 server, the GCS emulator, and a fault proxy.

The servers run in threads of the test process (session-scoped: each starts once, in well under a
second). The pipeline finds them the way it finds any S3-compatible store or GCS emulator in
production: through ``AWS_ENDPOINT_URL`` and ``STORAGE_EMULATOR_HOST``, with no code change.

``FaultProxy`` sits in front of a server. It forwards every request, records what was asked for (so a
test can prove that nothing was read), fails every Nth request with 500, 503 or a connection reset
(bounded and deterministic), and answers chosen keys with a real S3 ``AccessDenied`` 403.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

# Read by gcsfs when it is imported: without it gcsfs probes each bucket's type over gRPC/TLS and the
# first write against the emulator takes ~100 s (NOTES.md). Set before anything imports gcsfs.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

FAKE_AWS_KEY_ID = "AKIAFRAMEBEAMTESTKEY"
FAKE_AWS_SECRET = "framebeam-test-secret-do-not-log"
S3_REGION = "us-east-1"
_AWS_ENV_TO_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forget_cached_filesystems() -> None:
    """fsspec caches one client per storage options; endpoints come from the environment, which is not
    part of that key, so a test that changes the endpoint must drop the cached clients."""
    import fsspec

    for protocol in ("s3", "gs"):
        try:
            fsspec.get_filesystem_class(protocol).clear_instance_cache()
        except (ImportError, ValueError):
            pass


# --- S3: moto ---------------------------------------------------------------------------------------


@dataclass
class MotoS3:
    endpoint: str
    server: object

    def reset(self) -> None:
        """Delete every bucket and object (moto's own reset endpoint)."""
        conn = http.client.HTTPConnection(urlsplit(self.endpoint).netloc, timeout=10)
        conn.request("POST", "/moto-api/reset")
        conn.getresponse().read()
        conn.close()

    def filesystem(self):
        """An s3fs client talking to moto directly (not through a proxy): for setting data up."""
        import s3fs

        return s3fs.S3FileSystem(key=FAKE_AWS_KEY_ID, secret=FAKE_AWS_SECRET, skip_instance_cache=True,
                                 use_listings_cache=False, client_kwargs={"endpoint_url": self.endpoint})


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    pytest.importorskip("moto.server", reason="moto[server] is not installed: pip install 'moto[server]' to run the S3 tests")
    pytest.importorskip("s3fs", reason="s3fs is not installed: pip install s3fs to run the S3 tests")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(f"http://127.0.0.1:{port}", server)
    finally:
        server.stop()


def point_s3_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """The standard AWS variables, as a user of MinIO/R2/Ceph would set them."""
    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET)
    # Not region_name in client_kwargs: moto then refuses bucket creation (NOTES.md).
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe off-box
    forget_cached_filesystems()


@pytest.fixture
def s3(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    """moto, emptied, with the environment pointing the pipeline at it."""
    moto_s3.reset()
    point_s3_at(monkeypatch, moto_s3.endpoint)
    yield moto_s3
    forget_cached_filesystems()


# --- GCS: gcp-storage-emulator -----------------------------------------------------------------------


@dataclass
class GcsEmulator:
    endpoint: str
    server: object

    def filesystem(self):
        import gcsfs.core

        # The plain class: the experimental one probes buckets over gRPC (see the top of this module).
        return gcsfs.core.GCSFileSystem(endpoint_url=self.endpoint, token="anon", skip_instance_cache=True,
                                        use_listings_cache=False)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    pytest.importorskip("gcp_storage_emulator.server", reason="gcp-storage-emulator is not installed: pip install gcp-storage-emulator to run the GCS tests")
    pytest.importorskip("gcsfs", reason="gcsfs is not installed: pip install gcsfs to run the GCS tests")
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield GcsEmulator(f"http://127.0.0.1:{port}", server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_proxy(gcs_emulator: GcsEmulator) -> Iterator[FaultProxy]:
    """In front of the emulator: it answers gcsfs's moveTo with 501, which gcsfs retries for ~33 s per
    file before falling back to copy+delete; the proxy refuses it at once (400) so the fallback is used."""
    proxy = FaultProxy(gcs_emulator.endpoint, plan=FaultPlan(unsupported="/moveTo/", gcs_preconditions=True)).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def gcs(gcs_emulator: GcsEmulator, gcs_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator]:
    """The emulator with the environment pointing the pipeline at it (anonymous, no metadata-server probe)."""
    import fsspec
    import gcsfs.core

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_proxy.endpoint)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    # If gcsfs was imported before this module set GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT, its registered
    # class is the probing one: register the plain class for this test.
    previous = fsspec.get_filesystem_class("gs")
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
    forget_cached_filesystems()
    yield gcs_emulator
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, previous, clobber=True)
    forget_cached_filesystems()


# --- Fault-injecting proxy ---------------------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
FAULTS = ("500", "503", "reset")

_S3_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
    b"<RequestId>FRAMEBEAMTEST</RequestId><HostId>proxy</HostId></Error>"
)


@dataclass
class FaultPlan:
    """Fail request number N, 2N, 3N, ... (counting every request) up to ``max_failures`` times, cycling
    through ``faults``. Deterministic: the same run sees the same number and kinds of faults."""

    fail_every: int = 0
    max_failures: int = 0
    faults: tuple[str, ...] = FAULTS
    forbidden_paths: frozenset[str] = frozenset()  # request paths ("/bucket/key") answered with S3's 403
    forbidden_part: str | None = None  # request paths containing this are answered with S3's 403 too
    # Request paths containing this are answered 400 at once: for API calls the upstream emulator lacks and
    # answers 501, which clients retry for half a minute before they fall back.
    unsupported: str | None = None
    # The GCS emulator ignores ifGenerationMatch (a second create with ifGenerationMatch=0 succeeds, a
    # delete with a wrong generation deletes); real GCS answers 412. With this on, the proxy checks the
    # object's generation upstream and answers 412 itself, as GCS would.
    gcs_preconditions: bool = False


@dataclass
class FaultProxy:
    upstream: str
    endpoint: str = ""
    plan: FaultPlan = field(default_factory=FaultPlan)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request seen
    injected: list[tuple[str, str, str]] = field(default_factory=list)  # (fault, method, path)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    precondition_lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(_ForwardingHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def arm(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan
            self.requests.clear()
            self.injected.clear()

    def decide(self, method: str, path: str) -> str | None:
        """Record the request; the fault to inject, if any."""
        with self._lock:
            self.requests.append((method, path))
            plan = self.plan
            if urlsplit(path).path in plan.forbidden_paths or (plan.forbidden_part and plan.forbidden_part in path):
                fault = "403"
            elif plan.unsupported and plan.unsupported in path:
                return "400"
            elif plan.fail_every and len(self.injected) < plan.max_failures and len(self.requests) % plan.fail_every == 0:
                fault = plan.faults[len(self.injected) % len(plan.faults)]
            else:
                return None
            self.injected.append((fault, method, path))
            return fault

    def paths_requested(self) -> list[str]:
        with self._lock:
            return [urlsplit(p).path for _, p in self.requests]


class _ForwardingHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect from S3

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()  # always consumed, so a failed request leaves the connection clean
        fault = self.owner.decide(self.command, self.path)
        if fault == "reset":
            # SO_LINGER 0: close() sends RST, which the client sees as "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if fault == "400":
            self._answer(400, b'{"error": {"code": 400, "message": "not implemented by the emulator"}}', "application/json")
            return
        if fault in ("500", "503", "403"):
            status = int(fault)
            payload = _S3_ACCESS_DENIED if status == 403 else (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                + (b"InternalError" if status == 500 else b"ServiceUnavailable")
                + b"</Code><Message>injected by the test proxy</Message></Error>")
            self._answer(status, payload, "application/xml")
            return
        if self.owner.plan.gcs_preconditions and "ifGenerationMatch=" in self.path:
            with self.owner.precondition_lock:  # check and act as one step, like the real service
                if _gcs_generation(self.owner.upstream, self.path, body) != parse_qs(urlsplit(self.path).query)["ifGenerationMatch"][0]:
                    self._answer(412, b'{"error": {"code": 412, "message": "conditionNotMet"}}', "application/json")
                    return
                self._forward(body)
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        upstream = urlsplit(self.owner.upstream)
        conn = http.client.HTTPConnection(upstream.netloc, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        # A HEAD answer's Content-Length is the object's size, not this (empty) body's.
        length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


def _gcs_generation(upstream: str, path: str, body: bytes) -> str:
    """The current generation of the object a GCS JSON-API request names ("0": no such object)."""
    parts = urlsplit(path)
    query = parse_qs(parts.query)
    m = re.match(r"^(?:/upload)?/storage/v1/b/([^/]+)/o(?:/(.+))?$", parts.path)
    if not m:
        return "0"
    bucket, name = m.group(1), unquote(m.group(2) or "")
    if not name:
        name = (query.get("name") or [""])[0]
    if not name:  # a multipart upload names the object in its JSON part
        found = re.search(rb'"name"\s*:\s*"((?:[^"\\]|\\.)*)"', body)
        name = json.loads(b'"' + found.group(1) + b'"') if found else ""
    conn = http.client.HTTPConnection(urlsplit(upstream).netloc, timeout=30)
    try:
        conn.request("GET", f"/storage/v1/b/{bucket}/o/{quote(name, safe='')}")
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return str(json.loads(data).get("generation", "0")) if resp.status == 200 else "0"


@pytest.fixture(scope="session")
def s3_proxy(moto_s3: MotoS3) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_s3.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def s3_through_proxy(moto_s3: MotoS3, s3_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """moto, emptied, with the pipeline's endpoint the proxy (disarmed: it forwards everything)."""
    moto_s3.reset()
    s3_proxy.arm(FaultPlan())
    point_s3_at(monkeypatch, s3_proxy.endpoint)
    yield s3_proxy
    s3_proxy.arm(FaultPlan())
    forget_cached_filesystems()


# --- a hostile HTTP server: redirects, error statuses, endless and trickling bodies ------------------


@dataclass
class Route:
    """What the server answers for one path: a status (with a body), a redirect, or a body sent
    endlessly or one byte per ``trickle_s`` seconds (both bounded by ``max_seconds``)."""

    status: int = 200
    body: bytes = b""
    location: str | None = None
    endless: bool = False
    trickle_s: float | None = None
    fail_first: int = 0  # answer 503 this many times first
    max_seconds: float = 20.0


@dataclass
class HostileHttp:
    """A loopback HTTP server whose routes a test sets; records every path requested."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    port: int = 0
    server: object = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths_requested(self) -> list[str]:
        return list(self.requests)


def _hostile_handler(state: HostileHttp):
    import time as _time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            state.requests.append(self.path)
            route = state.routes.get(self.path.split("?", 1)[0])
            if route is None:
                return self._answer(404, b"not found")
            if route.fail_first > 0:
                route.fail_first -= 1
                return self._answer(503, b"busy")
            if route.location is not None:
                self.send_response(route.status)
                self.send_header("Location", route.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.endless or route.trickle_s is not None:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Connection", "close")
                self.end_headers()
                started = _time.monotonic()
                chunk = b"\x00" * (64 * 1024) if route.endless else b"\x89"
                try:
                    while _time.monotonic() - started < route.max_seconds:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if route.trickle_s:
                            _time.sleep(route.trickle_s)
                except OSError:
                    pass  # the client hung up: what a bounded reader does
                self.close_connection = True
                return
            self._answer(route.status, route.body)

        def _answer(self, status: int, body: bytes):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def hostile_http() -> Iterator[HostileHttp]:
    state = HostileHttp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _hostile_handler(state))
    server.daemon_threads = True
    state.port, state.server = server.server_address[1], server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
