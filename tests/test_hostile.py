"""Hostile inputs, round 2: lying shards, policy bypasses, unbounded reads and storage failures.

Each case of issue 12 is here, end to end through the CLI where the run as a whole is the point (it
must finish, publish, and account for every record), and on the plain functions otherwise. Every
server is a loopback one started by the test; every wait is bounded.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import zstandard

from tests.conftest import REPO, beside, frames_with_mask_uris, query, run_cli, table
from tests.servers import HostileHttp, Route, free_port, hostile_http  # noqa: F401 - fixtures
from transforms.reading import ReadLimits, RecordChunk, iter_shard
from transforms.sample import write_sample
from transforms.steps import validate_chunk
from transforms.storage import ReadProblem, Target, credentials_problem, read_mask
from transforms.uris import UriPolicy

FRAMES = 40


def frame_lines(n: int = FRAMES) -> list[bytes]:
    return [orjson.dumps({"id": f"f{i}", "sources": [{"id": "cam", "uri": f"img/{i}.jpg"}], "rois": [],
                          "meta": {"pad": "x" * 300}}) for i in range(n)]


# --- 1. compressed shards: damage is shard_unreadable with how far it got, records before it kept ------

def _zstd_cut_at_block(data: bytes) -> bytes:
    """A zstd stream flushed after half the records and then cut: complete blocks, no frame end."""
    half = data.index(b"\n", len(data) // 2) + 1
    c = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    return c.compress(data[:half]) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


def _flip_near_end(blob: bytes, back: int) -> bytes:
    b = bytearray(blob)
    b[-back] ^= 0xFF
    return bytes(b)


DAMAGED = {
    "cut-at-block.jsonl.zst": lambda d: _zstd_cut_at_block(d),
    "cut-mid-block.jsonl.zst": lambda d: zstandard.ZstdCompressor().compress(d)[:-40],
    "bad-checksum.jsonl.zst": lambda d: _flip_near_end(zstandard.ZstdCompressor(write_checksum=True).compress(d), 2),
    "cut.jsonl.gz": lambda d: gzip.compress(d)[:-60],
    "bad-crc.jsonl.gz": lambda d: _flip_near_end(gzip.compress(d), 6),
    "cut.jsonl.xz": lambda d: lzma.compress(d)[:-60],
    "cut.jsonl.bz2": lambda d: bz2.compress(d)[:-60],
    "cut.json.zst": None,  # a .json array, cut: elements before the damage are kept
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_compressed_shard_is_unreadable_with_how_far_it_got(tmp_path, name):
    lines = frame_lines()
    if name.endswith(".json.zst"):
        data = b"[" + b",".join(lines) + b"]"
        blob = _zstd_cut_at_block(data.replace(b"},{", b"},\n{"))
    else:
        blob = DAMAGED[name](b"\n".join(lines) + b"\n")
    path = tmp_path / name
    path.write_bytes(blob)
    records = list(iter_shard(str(path)))
    kept = [r for r in records if r.problem is None]
    problems = [r.problem for r in records if r.problem is not None]
    assert problems, "damage must never pass silently"
    assert [orjson.loads(r.data)["id"] for r in kept] == [f"f{i}" for i in range(len(kept))]  # in order, nothing invented
    if "bad-c" in name:  # the checksum is checked at the end: every record was read, and the shard is still damaged
        assert len(kept) <= len(lines)
    else:
        assert len(kept) < len(lines)
    if name.endswith(".json.zst"):
        assert problems[-1].code in ("shard_unreadable", "json_invalid")
    else:
        assert [p.code for p in problems] == ["shard_unreadable"]
        assert f"{len(kept)} records" in problems[0].message and "bytes read before the damage" in problems[0].message


def test_a_complete_multi_frame_zstd_shard_reads_whole(tmp_path):
    data = b"\n".join(frame_lines()) + b"\n"
    half = data.index(b"\n", len(data) // 2) + 1
    c = zstandard.ZstdCompressor(write_checksum=True)
    (tmp_path / "two-frames.jsonl.zst").write_bytes(c.compress(data[:half]) + c.compress(data[half:]))
    (tmp_path / "suffix.jsonl.zstd").write_bytes(c.compress(data))
    for name in ("two-frames.jsonl.zst", "suffix.jsonl.zstd"):
        records = list(iter_shard(str(tmp_path / name)))
        assert len(records) == FRAMES and all(r.problem is None for r in records)


def test_garbage_and_truncated_zst_beside_good_shards_do_not_stop_the_run(tmp_path):
    good = b"\n".join(frame_lines()) + b"\n"
    (tmp_path / "a-good.jsonl").write_bytes(good)
    (tmp_path / "b-garbage.jsonl.zst").write_bytes(os.urandom(4000))
    (tmp_path / "c-cut.jsonl.zst").write_bytes(_zstd_cut_at_block(good))
    out = beside(tmp_path)
    assert run_cli("validate", "--input", str(tmp_path / "*.jsonl*"), "--output", str(out), "--quiet", "--no-decode") == 1
    codes = query(f"SELECT regexp_extract(shard, '[^/]*$'), code FROM {table(out, 'issues')} "
                  "WHERE code = 'shard_unreadable' ORDER BY 1")
    assert codes == [("b-garbage.jsonl.zst", "shard_unreadable"), ("c-cut.jsonl.zst", "shard_unreadable")]
    frames = query(f"SELECT regexp_extract(shard, '[^/]*$'), count(*) FROM {table(out, 'frames')} GROUP BY 1 ORDER BY 1")
    assert frames[0] == ("a-good.jsonl", FRAMES) and frames[1][0] == "c-cut.jsonl.zst" and 0 < frames[1][1] < FRAMES


# --- 3. .json arrays are streamed: a bad element is one issue row with its index and byte offset ----------

BAD_ELEMENTS = {
    "nan": (b'{"id": "bad", "sources": [], "rois": [], "v": NaN}', "json_nan_or_infinity"),
    "lone-surrogate": (b'{"id": "\\ud800", "sources": [], "rois": []}', "json_invalid_utf8"),
    "1e400": (b'{"id": "bad", "sources": [], "rois": [], "v": 1e400}', "json_nan_or_infinity"),
    "not-json": (b'{"id": "bad", "sources": [}', "json_invalid"),
    "junk-after": (b'{"id": "bad", "sources": [], "rois": []} junk', "json_invalid"),
}


@pytest.mark.parametrize("fast_limit", [8 * 1024 * 1024, 1024], ids=["small-document", "streamed"])
@pytest.mark.parametrize("case", sorted(BAD_ELEMENTS))
def test_one_bad_element_of_a_json_array_is_one_issue_the_others_are_kept(case, fast_limit):
    raw, code = BAD_ELEMENTS[case]
    elements = frame_lines(1000)
    elements[500] = raw
    doc = b"[\n" + b",\n".join(elements) + b"\n]\n"
    offset = doc.index(raw)
    chunk = RecordChunk("s.json", list(_records_of(doc, ReadLimits(fast_document_bytes=fast_limit))))
    validated = validate_chunk(chunk)
    ids = [f.id for f in validated.frames]
    assert len(ids) == 999 and "f499" in ids and "f501" in ids and "bad" not in ids
    issues = [row for row in validated.problems]
    assert [(row[1], row[4]) for row in issues] == [(501, code)]
    assert f"byte offset {offset:,}" in issues[0][6]


def _records_of(doc: bytes, limits: ReadLimits):
    import io

    from transforms.reading import _json_document_records

    return _json_document_records(io.BufferedReader(io.BytesIO(doc)), limits)


def test_a_truncated_json_array_keeps_the_elements_before_the_cut(tmp_path):
    elements = frame_lines(1000)
    doc = b"[" + b",".join(elements) + b"]"
    cut = doc.index(elements[500]) + 25
    (tmp_path / "cut.json").write_bytes(doc[:cut])
    records = list(iter_shard(str(tmp_path / "cut.json")))
    assert sum(r.problem is None for r in records) == 500
    [problem] = [r for r in records if r.problem]
    assert problem.line == 501 and problem.offset == doc.index(elements[500]) and "truncated" in problem.problem.message


def _plain_env() -> dict[str, str]:
    """The environment without the malloc tuning an earlier in-process CLI run may have set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.slow
def test_a_json_bomb_is_streamed_in_bounded_memory(tmp_path):
    """~60 MB of '[{},{},...]' in ~60 KB of gzip: parsed whole that is ~1.3 GB of Python dicts."""
    path = tmp_path / "bomb.json.gz"
    n = 20_000_000
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b"[")
        for _ in range(n // 1_000_000):
            f.write(b"{}," * 1_000_000)
        f.write(b"{}]")
    assert path.stat().st_size < 200_000
    script = (
        "import resource, sys\n"
        "from transforms.reading import iter_shard\n"
        "n = sum(1 for _ in iter_shard(sys.argv[1]))\n"
        "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                         env=_plain_env(), check=True).stdout.split()
    records, peak_mib = int(out[0]), int(out[1])
    assert records == n + 1
    # Held whole, 20M dicts are >= 1.3 GiB; streamed, the reader peaked at 53 MiB alone, but 341-720 MiB inside a
    # busy suite (not explained yet): the bound only has to tell streamed from held.
    assert peak_mib < 1024, f"peak {peak_mib} MiB: the document was held, not streamed"


# --- 4. the URI policy is checked on what is really read ------------------------------------------------

def _frames_with_masks(tmp_path: Path, uris: dict[str, str]) -> Path:
    sample = tmp_path / "sample"
    write_sample(str(sample))
    template = json.loads((sample / "frames-0000.jsonl").read_text().splitlines()[0])
    shard = tmp_path / "shards" / "frames.jsonl"
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_text(frames_with_mask_uris(template, uris))
    return shard


def _sample_png(tmp_path: Path) -> bytes:
    sample = tmp_path / "sample"
    if not sample.exists():
        write_sample(str(sample))
    return (sample / "masks/scene-0000.png").read_bytes()


def _codes(out: Path) -> dict[str, list[str]]:
    return dict(query(f"SELECT frame_id, list(code ORDER BY code) FROM {table(out, 'issues')} "
                      "WHERE frame_id IS NOT NULL AND severity = 'error' GROUP BY frame_id"))


def test_redirects_and_dot_segments_never_reach_outside_the_prefix(tmp_path, hostile_http):
    png = _sample_png(tmp_path)
    # The "secret" the attacker wants: same server, outside the prefix; and a second server, elsewhere.
    elsewhere = HostileHttp()
    from http.server import ThreadingHTTPServer
    import threading

    from tests.servers import _hostile_handler

    other = ThreadingHTTPServer(("127.0.0.1", 0), _hostile_handler(elsewhere))
    elsewhere.port = other.server_address[1]
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        elsewhere.routes["/x.png"] = Route(body=png)
        hostile_http.routes.update({
            "/ok/mask.png": Route(body=png),
            "/ok/redirect.png": Route(status=302, location=f"{elsewhere.base}/x.png"),
            "/ok/redirect-inside.png": Route(status=301, location="/ok/mask.png"),
            "/secret/x.png": Route(body=png),
        })
        base = hostile_http.base
        shard = _frames_with_masks(tmp_path, {
            "ok": f"{base}/ok/mask.png",
            "redirect": f"{base}/ok/redirect.png",
            "redirect-inside": f"{base}/ok/redirect-inside.png",
            "dots": f"{base}/ok/../secret/x.png",
            "encoded-dots": f"{base}/ok/%2e%2e/secret/x.png",
            "mixed-dots": f"{base}/ok/.%2E/secret/x.png",
            "encoded-slash": f"{base}/ok/..%2fsecret/x.png",
        })
        out = beside(tmp_path)
        assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet", "--allow-http",
                       "--allow-uri-prefix", f"{base}/ok") == 0
        codes = _codes(out)
        assert "ok" not in codes
        assert codes["redirect"] == ["mask_unreadable"] and codes["redirect-inside"] == ["mask_unreadable"]
        for name in ("dots", "encoded-dots", "mixed-dots", "encoded-slash"):
            assert codes[name] == ["uri_not_allowed"], name
        assert elsewhere.paths_requested() == []  # decoding and the report's preview alike
        assert all(p.startswith("/ok/") for p in hostile_http.paths_requested())
        message = query(f"SELECT message FROM {table(out, 'issues')} WHERE frame_id = 'redirect'")[0][0]
        assert "redirect" in message and "not followed" in message
    finally:
        other.shutdown()
        other.server_close()


@pytest.mark.slow
def test_the_report_preview_reads_through_the_checked_reader(tmp_path, hostile_http):
    """A mask decoded in the run whose URL now redirects elsewhere: the report must not follow it."""
    png = _sample_png(tmp_path)
    hostile_http.routes["/ok/mask.png"] = Route(body=png)
    shard = _frames_with_masks(tmp_path, {"ok": f"{hostile_http.base}/ok/mask.png"})
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet", "--allow-http") == 0
    from transforms.report import render_report

    hostile_http.routes["/ok/mask.png"] = Route(status=302, location="http://127.0.0.1:9/stolen.png")
    hostile_http.requests.clear()
    page = render_report(str(out))
    assert hostile_http.paths_requested() == ["/ok/mask.png"]  # asked once, the redirect not followed
    assert "redirects are not followed" in page


def test_a_symlink_out_of_an_allowed_folder_is_not_read(tmp_path):
    png = _sample_png(tmp_path)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.png").write_bytes(png)
    outside = tmp_path / "outside.png"
    outside.write_bytes(png)
    (allowed / "link.png").symlink_to(outside)
    (allowed / "passwd.png").symlink_to("/etc/passwd")
    (allowed / "sub").symlink_to(tmp_path)  # a folder link: allowed/sub/outside.png
    policy = UriPolicy((str(allowed),))
    assert read_mask(str(allowed / "ok.png"), policy=policy) == png
    for name in ("link.png", "passwd.png", "sub/outside.png"):
        with pytest.raises(ReadProblem) as e:
            read_mask(str(allowed / name), policy=policy)
        assert e.value.code == "uri_not_allowed" and "symlinks followed" in e.value.message
    # A symlink that stays inside the allowed folder is fine.
    (allowed / "alias.png").symlink_to(allowed / "ok.png")
    assert read_mask(str(allowed / "alias.png"), policy=policy) == png


# --- 5. bounded reads: regular files only, a byte cap, a time budget --------------------------------------

@pytest.mark.slow
def test_fifo_device_and_sparse_files_are_findings_not_hangs(tmp_path):
    png = _sample_png(tmp_path)
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "ok.png").write_bytes(png)
    os.mkfifo(masks / "fifo.png")
    (masks / "zero.png").symlink_to("/dev/zero")
    with open(masks / "sparse.png", "wb") as f:
        f.truncate(30 * 1024 ** 3)  # 30 GB, no blocks on disk
    (masks / "dir.png").mkdir()
    shard = _frames_with_masks(tmp_path, {
        "ok": str(masks / "ok.png"), "fifo": str(masks / "fifo.png"), "zero": str(masks / "zero.png"),
        "sparse": str(masks / "sparse.png"), "dir": str(masks / "dir.png"),
        "long-name": str(masks / ("x" * 300 + ".png")),  # longer than any file name may be: ENAMETOOLONG
    })
    out = beside(tmp_path)
    started = time.monotonic()
    assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet") == 0
    assert time.monotonic() - started < 180  # a hang would be forever; a busy 2-core machine is slow
    codes = _codes(out)
    assert "ok" not in codes
    assert codes["fifo"] == ["mask_unreadable"] and codes["zero"] == ["mask_unreadable"] and codes["dir"] == ["mask_unreadable"]
    assert codes["sparse"] == ["mask_file_too_large"]
    assert codes["long-name"] == ["mask_unreadable"]
    messages = dict(query(f"SELECT frame_id, message FROM {table(out, 'issues')} WHERE frame_id IN ('fifo', 'zero')"))
    assert "a FIFO" in messages["fifo"] and "character device" in messages["zero"]


@pytest.mark.slow
def test_endless_and_trickling_http_bodies_are_cut_at_the_cap_or_the_budget(tmp_path, hostile_http):
    png = _sample_png(tmp_path)
    hostile_http.routes.update({
        "/ok.png": Route(body=png),
        "/endless.png": Route(endless=True, max_seconds=30),
        "/trickle.png": Route(trickle_s=0.5, max_seconds=30),
        "/big.png": Route(body=b"\x89PNG" + b"\x00" * 300_000),
    })
    base = hostile_http.base
    shard = _frames_with_masks(tmp_path, {n: f"{base}/{n}.png" for n in ("ok", "endless", "trickle", "big")})
    out = beside(tmp_path)
    started = time.monotonic()
    assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet", "--allow-http",
                   "--max-mask-bytes", "200000", "--mask-decode-timeout", "3") == 0
    assert time.monotonic() - started < 180  # bounded (a hang or per-object retries take far longer)
    codes = _codes(out)
    assert "ok" not in codes
    assert codes["endless"] == ["mask_file_too_large"] and codes["big"] == ["mask_file_too_large"]
    assert codes["trickle"] == ["mask_decode_timeout"]
    message = query(f"SELECT message FROM {table(out, 'issues')} WHERE frame_id = 'trickle'")[0][0]
    assert "reading the mask took over --mask-decode-timeout=3 s" in message


def test_max_mask_bytes_is_documented_with_its_default():
    from pipelines.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "--max-mask-bytes" in help_text and "default 256 MiB" in help_text
    assert "--max-mask-bytes" in (REPO / "docs/STORAGE.md").read_text()


# --- 8. HTTP statuses map as docs/STORAGE.md says ----------------------------------------------------------

def test_http_statuses_map_to_codes(tmp_path, hostile_http):
    png = _sample_png(tmp_path)
    closed = free_port()
    hostile_http.routes.update({
        "/ok.png": Route(body=png),
        "/forbidden.png": Route(status=403, body=b"no"),
        "/unauthorised.png": Route(status=401, body=b"no"),
        "/gone.png": Route(status=410, body=b"gone"),
        "/error.png": Route(status=500, body=b"oops"),
        "/flaky.png": Route(body=png, fail_first=1),
    })
    base = hostile_http.base
    uris = {n: f"{base}/{n}.png" for n in ("ok", "forbidden", "unauthorised", "gone", "error", "flaky", "missing")}
    uris["refused"] = f"http://127.0.0.1:{closed}/x.png"
    shard = _frames_with_masks(tmp_path, uris)
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet", "--allow-http") == 0
    codes = _codes(out)
    assert codes == {"forbidden": ["mask_unreadable"], "unauthorised": ["mask_unreadable"], "gone": ["mask_not_found"],
                     "missing": ["mask_not_found"], "error": ["mask_unreadable"], "refused": ["mask_unreadable"]}
    assert hostile_http.paths_requested().count("/error.png") == 3  # retried, then a finding
    assert hostile_http.paths_requested().count("/flaky.png") == 2  # one 503, then read


# --- 2. bad credentials and unreachable storage are findings; the run goes on ------------------------------

@pytest.mark.slow
def test_s3_without_credentials_is_found_once_with_the_chain_tried(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_EC2_METADATA_DISABLED":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    problem = credentials_problem(Target("s3://bucket/mask.png"))
    assert problem and "no AWS credentials" in problem and "env" in problem and "iam-role" in problem
    assert "AWS_EC2_METADATA_DISABLED=true" in problem
    assert credentials_problem(Target("s3://bucket/mask.png", {"anon": True})) is None
    png = _sample_png(tmp_path)
    (tmp_path / "ok.png").write_bytes(png)
    shard = _frames_with_masks(tmp_path, {"ok": str(tmp_path / "ok.png"), **{f"s3-{i}": f"s3://bucket/m{i}.png" for i in range(5)}})
    out = beside(tmp_path)
    started = time.monotonic()
    assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet") == 0
    assert time.monotonic() - started < 180  # bounded (a hang or per-object retries take far longer)
    codes = _codes(out)
    assert "ok" not in codes and all(codes[f"s3-{i}"] == ["mask_unreadable"] for i in range(5))
    message = query(f"SELECT any_value(message) FROM {table(out, 'issues')} WHERE frame_id = 's3-0'")[0][0]
    assert "no AWS credentials" in message


@pytest.mark.slow
def test_unreachable_gcs_is_a_finding_found_once(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens: no network
    from tests.servers import forget_cached_filesystems

    forget_cached_filesystems()
    png = _sample_png(tmp_path)
    (tmp_path / "ok.png").write_bytes(png)
    shard = _frames_with_masks(tmp_path, {"ok": str(tmp_path / "ok.png"), **{f"gs-{i}": f"gs://bucket/m{i}.png" for i in range(5)}})
    out = beside(tmp_path)
    started = time.monotonic()
    assert run_cli("run", "--input", str(shard), "--output", str(out), "--quiet") == 0
    assert time.monotonic() - started < 150  # not ~34 s of client retries for each of 5 objects
    codes = _codes(out)
    assert "ok" not in codes and all(codes[f"gs-{i}"] == ["mask_unreadable"] for i in range(5))
    forget_cached_filesystems()


def test_the_checked_reader_never_raises_anything_but_read_problem(tmp_path):
    cases = [str(tmp_path / ("y" * 5000)), "s3://", "gs://", "http://[::1", f"http://127.0.0.1:{free_port()}/x", "https://"]
    for uri in cases:
        try:
            read_mask(uri, policy=UriPolicy(allow_http=True))
        except ReadProblem as e:
            assert e.code in ("mask_not_found", "mask_unreadable", "uri_not_allowed"), (uri, e)


def test_a_port_that_refuses_is_remembered_by_the_worker(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}/a.png"
    for _ in range(2):
        with pytest.raises(ReadProblem) as e:
            read_mask(uri, policy=UriPolicy(allow_http=True))
        assert e.value.code == "mask_unreadable"
    assert "does not try it again" in e.value.message
    # the socket module is what refuses: nothing listens there
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# --- 7. buffered rows are flushed by bytes, not by row count ----------------------------------------------

def test_the_table_buffer_flushes_by_bytes_before_rows():
    from transforms.flattening import TableRows
    from transforms.writing import TableBuffer, estimate_rows_bytes

    crop = ("f", "s", 1, "cam", "00", 0, ["car"], [1, 2, 3], 0, 0, 10, 10, "x" * 100_000, None)
    assert 100_000 <= estimate_rows_bytes([crop] * 4) // 4 < 101_000
    buffer = TableBuffer(max_rows=150_000, max_bytes=1_000_000)
    added = 0
    while buffer.add(TableRows("crops", [crop])) is None:
        added += 1
        assert added < 50, "a row-count bound would hold 150,000 of these"
    assert 8 <= added <= 10
    assert len(buffer.take("crops")) == added + 1 and buffer.total_bytes == 0
