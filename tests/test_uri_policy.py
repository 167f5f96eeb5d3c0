"""The mask URI policy: --allow-uri-prefix limits reads, other protocols are refused, and a refused URI is
never read — proved with files whose access time would move and a proxy that records every request."""
from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import fsspec
import pytest

from tests.conftest import beside, frames_with_mask_uris, query, run_cli
from tests.servers import FaultProxy, moto_s3, s3_proxy, s3_through_proxy  # noqa: F401 - fixtures
from transforms.sample import write_sample
from transforms.uris import UriPolicy, resolve_uri

DAY = 24 * 3600


@pytest.mark.parametrize("uri, prefixes, allow_http, allowed", [
    ("/data/masks/a.png", ("/data/masks",), False, True),
    ("/data/masks-private/a.png", ("/data/masks",), False, False),  # prefix boundary
    ("/data/masks/a.png", ("file:///data/masks/",), False, True),
    ("s3://bucket/masks/a.png", ("s3://bucket/masks",), False, True),
    ("s3://bucket-other/masks/a.png", ("s3://bucket",), False, False),
    ("gs://b/m/a.png", (), False, True),
    ("https://host/a.png", (), False, False),
    ("https://host/a.png", (), True, True),
    ("memory://a.png", (), False, False),
    ("zip://a.png::file:///tmp/x.zip", (), False, False),
    ("ftp://host/a.png", (), True, False),
])
def test_policy_check(uri, prefixes, allow_http, allowed):
    assert (UriPolicy(prefixes, allow_http).check(uri) is None) == allowed


def test_relative_uris_resolve_against_the_shard_folder_and_traversal_is_collapsed():
    assert resolve_uri("masks/a.png", "s3://b/data/part-0.jsonl") == "s3://b/data/masks/a.png"
    assert resolve_uri("../../etc/passwd", "/srv/data/shards/p.jsonl") == "/srv/etc/passwd"
    assert resolve_uri("file:///data/masks/../../etc/passwd", "/x/p.jsonl") == "/etc/passwd"


def _age(path: Path) -> None:
    """atime two days ago and before mtime: with relatime any read moves it to now."""
    now = time.time()
    os.utime(path, (now - 3 * DAY, now - 2 * DAY))


def access_times_update(aged: Path) -> bool:
    """Reading an aged file moves its atime here (relatime, strictatime), not on noatime mounts."""
    before = aged.stat().st_atime
    aged.read_bytes()
    return aged.stat().st_atime != before


@pytest.fixture
def hostile_dataset(tmp_path: Path, s3_through_proxy: FaultProxy) -> dict:
    """A shard whose frames point at URIs the policy must refuse, each at a real, readable target."""
    sample = tmp_path / "sample"
    write_sample(str(sample))
    template = json.loads((sample / "frames-0000.jsonl").read_text().splitlines()[0])
    png = (sample / "masks/scene-0000.png").read_bytes()
    data = tmp_path / "data"
    (data / "shards").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "masks/ok.png").write_bytes(png)
    (data / "masks-private").mkdir()
    canaries = {"private": data / "masks-private/a.png", "traversal": tmp_path / "canary.png", "zip": tmp_path / "masks.zip"}
    canaries["private"].write_bytes(png)
    canaries["traversal"].write_bytes(png)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.png", png)
    canaries["zip"].write_bytes(buf.getvalue())
    fsspec.filesystem("memory").pipe("/framebeam-policy/a.png", png)
    proxy = s3_through_proxy.endpoint
    uris = {
        "allowed": "../masks/ok.png",
        "etc-passwd": "file:///etc/passwd",
        "traversal": "../../canary.png",
        "prefix-boundary": str(canaries["private"]),
        "other-bucket": "s3://other-bucket/a.png",
        "zip-chain": f"zip://a.png::file://{canaries['zip']}",
        "memory": "memory://framebeam-policy/a.png",
        "http": f"{proxy}/other-bucket/a.png",
        "https": "https://example.com/a.png",
    }
    (data / "shards/frames.jsonl").write_text(frames_with_mask_uris(template, uris))
    control = tmp_path / "control.png"
    control.write_bytes(png)
    for path in [*canaries.values(), control]:
        _age(path)
    return {"data": data, "canaries": canaries, "control": control, "proxy": s3_through_proxy}


def test_uris_outside_the_policy_give_uri_not_allowed_and_nothing_is_read(hostile_dataset, tmp_path):
    data, proxy = hostile_dataset["data"], hostile_dataset["proxy"]
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(data / "shards/frames.jsonl"), "--output", str(out), "--quiet",
                   "--allow-uri-prefix", str(data / "masks")) == 0
    findings = dict(query(f"SELECT frame_id, list(code ORDER BY code) FROM read_parquet('{out}/issues/*.parquet') "
                          "WHERE frame_id IS NOT NULL GROUP BY frame_id"))
    refused = {"etc-passwd", "traversal", "prefix-boundary", "other-bucket", "zip-chain", "memory", "http", "https"}
    assert findings == {name: ["uri_not_allowed"] for name in refused}
    statuses = dict(query(f"SELECT frame_id, status FROM read_parquet('{out}/masks/*.parquet')"))
    assert statuses["allowed"] == "ok"

    # Nothing was read: not a single request reached the (S3 and HTTP) server ...
    assert proxy.paths_requested() == []
    # ... and no local target was opened (a read moves an aged atime on this relatime mount).
    if not access_times_update(hostile_dataset["control"]):
        pytest.skip("this file system does not update access times (noatime): cannot prove local files were not read")
    for name, path in hostile_dataset["canaries"].items():
        assert path.stat().st_atime < time.time() - DAY, f"{name}: {path} was read although its URI is refused"


@pytest.mark.slow
def test_http_is_read_only_with_allow_http(hostile_dataset, tmp_path):
    """The same http URI, now allowed: the request reaches the server (so the proof above can fail)."""
    data, proxy = hostile_dataset["data"], hostile_dataset["proxy"]
    out = beside(tmp_path)
    assert run_cli("run", "--input", str(data / "shards/frames.jsonl"), "--output", str(out), "--quiet",
                   "--allow-http") == 0
    assert "/other-bucket/a.png" in proxy.paths_requested()
    code = query(f"SELECT code FROM read_parquet('{out}/issues/*.parquet') WHERE frame_id = 'http'")
    assert code == [("mask_not_found",)]
    # Without prefixes local paths are readable: the traversal target was read this time, and its atime shows it.
    if access_times_update(hostile_dataset["control"]):
        assert hostile_dataset["canaries"]["traversal"].stat().st_atime > time.time() - DAY
