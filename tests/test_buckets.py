"""Buckets end to end: `framebeam run` reads frames and masks from S3 (moto) and GCS (the emulator), writes
every table back to the bucket, and gets the same tables as from local disk — also through a proxy that
fails requests (retried) and answers 403/404 for single masks (findings on those records)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import query, run_cli
from tests.servers import (  # noqa: F401 - fixtures
    FaultPlan,
    FaultProxy,
    gcs,
    gcs_emulator,
    gcs_proxy,
    moto_s3,
    s3,
    s3_proxy,
    s3_through_proxy,
)
from transforms.schema import HISTORY_TABLES, SLICE_TABLES, TABLES

# Tables a plain `run` writes whose rows do not depend on when it ran (history rows carry run ids and times:
# tests/test_history.py compares them between local disk and buckets).
RUN_TABLES = [t for t in TABLES if t not in HISTORY_TABLES + SLICE_TABLES]
from transforms.writing import SUCCESS_MARKER, SUMMARY_FILE

BUCKET = "framebeam-data"
# Storage clients word a failed read differently ("[Errno 2] No such file..." vs "bucket/key"): keep the
# finding's own words and the exception type, drop the client's text.
_STORAGE_ERROR_TEXT = re.compile(r"^(Cannot read mask(?: video)? \S+: \w+): .*$", re.S)


def normalise(value: Any, roots: tuple[str, ...]) -> Any:
    """A table value with the data's location replaced by '<root>' (URIs and shard names differ by prefix),
    floats to 12 significant digits."""
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<root>")
        return _STORAGE_ERROR_TEXT.sub(r"\1", value)
    if isinstance(value, float):
        # label_summary means are sums in combine order, which differs between runners (last bits only).
        return float(f"{value:.12g}")
    if isinstance(value, (list, tuple)):
        return [normalise(v, roots) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v, roots) for k, v in value.items()}
    return value


def read_tables(output: Path, roots: tuple[str, ...]) -> dict[str, list[str]]:
    """Every table as sorted, normalised rows (row order is not part of the contract)."""
    tables = {}
    for name in RUN_TABLES:
        rows = query(f"SELECT * FROM read_parquet('{output}/{name}/*.parquet')")
        tables[name] = sorted(repr(normalise(list(r), roots)) for r in rows)
    return tables


def assert_same_tables(got: dict[str, list[str]], expected: dict[str, list[str]]) -> None:
    for name in expected:
        missing = sorted(set(expected[name]) - set(got[name]))[:3]
        extra = sorted(set(got[name]) - set(expected[name]))[:3]
        assert got[name] == expected[name], f"{name} differs; only local: {missing}; only in the bucket: {extra}"


def download(fs, remote: str, local: Path) -> Path:
    fs.get(remote.rstrip("/") + "/", str(local), recursive=True)
    return local


def upload_sample(fs, local: Path, remote: str) -> None:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.pipe(f"{remote}/{path.relative_to(local).as_posix()}", path.read_bytes())


@pytest.fixture(scope="module")
def local_tables(sample: Path, tmp_path_factory) -> dict[str, list[str]]:
    out = tmp_path_factory.mktemp("local-out")
    assert run_cli("run", "--input", f"{sample}/frames-*", "--mask-labels", f"{sample}/mask_labels.json",
                   "--output", str(out), "--quiet") == 0
    tables = read_tables(out, (str(sample),))
    assert all(tables[t] for t in ("frames", "masks", "label_stats", "crops", "issues")), "the sample should fill every table"
    return tables


def run_in_bucket(scheme: str, data: str, out: str, *extra: str, parallel: bool = False) -> int:
    return run_cli("run", "--input", f"{scheme}://{data}/frames-*", "--mask-labels", f"{scheme}://{data}/mask_labels.json",
                   "--output", f"{scheme}://{out}", "--quiet", *extra, parallel=parallel)


def published_run(fs, out: str) -> str:
    """The bucket folder holding the published tables: object stores have no rename, so ``_SUCCESS``
    (written last) names the run's folder; every table and summary.json must be there."""
    marker = json.loads(fs.cat(f"{out}/{SUCCESS_MARKER}"))
    run = f"{out}/{marker['run_folder']}" if marker.get("run_folder") else out
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(run, detail=False)}
    assert set(RUN_TABLES) | set(HISTORY_TABLES) | {SUMMARY_FILE, SUCCESS_MARKER} <= names, names
    for table_name in RUN_TABLES + list(HISTORY_TABLES):
        assert fs.glob(f"{run}/{table_name}/*.parquet"), f"{table_name} has no Parquet file in the bucket"
    return run


@pytest.mark.slow
def test_s3_run_reads_and_writes_the_bucket_and_equals_local(s3, sample, local_tables, tmp_path):
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    upload_sample(fs, sample, f"{BUCKET}/data")
    # Worker processes (pickled DoFns) must find the endpoint in the environment too.
    assert run_in_bucket("s3", f"{BUCKET}/data", f"{BUCKET}/out", parallel=True) == 0
    run = published_run(fs, f"{BUCKET}/out")
    got = read_tables(download(fs, run, tmp_path / "out"), (f"s3://{BUCKET}/data",))
    assert_same_tables(got, local_tables)
    summary = json.loads(fs.cat(f"{BUCKET}/out/{SUMMARY_FILE}"))
    assert summary["frames"] == 40


def test_s3_endpoint_from_the_service_specific_variable(s3, sample, tmp_path, monkeypatch):
    """AWS_ENDPOINT_URL_S3 alone (no AWS_ENDPOINT_URL) is honoured by the same clients."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    fs.pipe(f"{BUCKET}/data/frames-0000.jsonl", (sample / "frames-0000.jsonl").read_bytes())
    assert run_cli("convert", "--input", f"s3://{BUCKET}/data/frames-*", "--output", f"s3://{BUCKET}/conv", "--quiet") == 0
    assert fs.exists(f"{BUCKET}/conv/{SUCCESS_MARKER}")


@pytest.mark.slow
def test_gcs_run_reads_and_writes_the_bucket_and_equals_local(gcs, sample, local_tables, tmp_path):
    fs = gcs.filesystem()
    fs.mkdir(BUCKET)
    upload_sample(fs, sample, f"{BUCKET}/data")
    assert run_in_bucket("gs", f"{BUCKET}/data", f"{BUCKET}/out") == 0
    run = published_run(fs, f"{BUCKET}/out")
    got = read_tables(download(fs, run, tmp_path / "out"), (f"gs://{BUCKET}/data",))
    assert_same_tables(got, local_tables)


@pytest.mark.slow
def test_transient_faults_are_retried_and_tables_are_identical(s3_through_proxy: FaultProxy, moto_s3, sample, local_tables, tmp_path):
    fs = moto_s3.filesystem()  # set up directly against moto, not through the faults
    fs.mkdir(BUCKET)
    upload_sample(fs, sample, f"{BUCKET}/data")
    s3_through_proxy.arm(FaultPlan(fail_every=7, max_failures=12))
    assert run_in_bucket("s3", f"{BUCKET}/data", f"{BUCKET}/out") == 0
    injected = {fault for fault, _, _ in s3_through_proxy.injected}
    assert injected == {"500", "503", "reset"}, f"the proxy should have injected every kind of fault: {s3_through_proxy.injected}"
    assert len(s3_through_proxy.injected) == 12
    got = read_tables(download(fs, published_run(fs, f"{BUCKET}/out"), tmp_path / "out"), (f"s3://{BUCKET}/data",))
    assert_same_tables(got, local_tables)


@pytest.mark.slow
def test_403_and_404_masks_become_findings_and_the_run_goes_on(s3_through_proxy: FaultProxy, moto_s3, sample, tmp_path):
    fs = moto_s3.filesystem()
    fs.mkdir(BUCKET)
    upload_sample(fs, sample, f"{BUCKET}/data")
    first = json.loads((sample / "frames-0000.jsonl").read_text().splitlines()[0])
    extra = []
    for frame_id, mask in (("forbidden-frame", "masks/forbidden.png"), ("absent-frame", "masks/absent.png")):
        f = json.loads(json.dumps(first))
        f["id"] = frame_id
        f["sources"][0]["masks"][0]["uri"] = mask
        extra.append(json.dumps(f))
    fs.pipe(f"{BUCKET}/data/frames-extra.jsonl", ("\n".join(extra) + "\n").encode())
    fs.pipe(f"{BUCKET}/data/masks/forbidden.png", (sample / "masks/scene-0000.png").read_bytes())
    s3_through_proxy.arm(FaultPlan(forbidden_paths=frozenset({f"/{BUCKET}/data/masks/forbidden.png"})))

    assert run_in_bucket("s3", f"{BUCKET}/data", f"{BUCKET}/out") == 0
    out = download(fs, published_run(fs, f"{BUCKET}/out"), tmp_path / "out")
    findings = dict(query(f"SELECT frame_id, code FROM read_parquet('{out}/issues/*.parquet') WHERE frame_id LIKE '%-frame'"))
    assert findings == {"forbidden-frame": "mask_unreadable", "absent-frame": "mask_not_found"}
    statuses = dict(query(f"SELECT frame_id, valid FROM read_parquet('{out}/frames/*.parquet') WHERE frame_id LIKE '%-frame'"))
    assert statuses == {"forbidden-frame": False, "absent-frame": False}
    # The rest of the run went on: every other sample mask was decoded.
    decoded = query(f"SELECT count(*) FROM read_parquet('{out}/masks/*.parquet') WHERE status = 'ok'")[0][0]
    assert decoded >= 40
    assert any(fault == "403" for fault, _, _ in s3_through_proxy.injected)
