"""Secrets never leave the run: credentials in mask and source URIs, signed URLs, the environment and
--storage-options appear in no output byte (every Parquet value, summary.json, _SUCCESS, the report) and in
no line of stdout, stderr or the logs."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from tests.servers import FAKE_AWS_SECRET, FaultProxy, moto_s3, s3_proxy, s3_through_proxy  # noqa: F401 - fixtures
from transforms.sample import write_sample

BUCKET = "framebeam-secrets"
URI_KEY_ID, URI_SECRET = "AKIAEXAMPLE", "s3cr3tv4lue"
HTTP_PASSWORD = "pa55word"
SIGNATURE = "5ec7e75165a7e2e0c0ffee0123456789abcdef"
SIGNED_CREDENTIAL = "AKIAPRESIGNEDKEY"
OPTIONS_KEY_ID, OPTIONS_SECRET = "AKIASTORAGEOPTIONS", "st0rage-0pt10ns-secret"
SECRETS = (URI_KEY_ID, URI_SECRET, HTTP_PASSWORD, SIGNATURE, SIGNED_CREDENTIAL, OPTIONS_SECRET, FAKE_AWS_SECRET)


def every_text(value: Any) -> list[str]:
    """Every value of a Parquet row as text (bytes both as UTF-8 and as Latin-1, so no byte escapes)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (str(k), *every_text(v))]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in every_text(v)]
    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace"), value.decode("latin-1")]
    return [str(value)]


def output_texts(root: Path) -> dict[str, str]:
    """path -> all of its text: Parquet files decompressed and stringified value by value, others raw."""
    texts = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            texts[str(path)] = "\n".join(t for row in rows for t in every_text(row))
        else:
            texts[str(path)] = path.read_bytes().decode("latin-1")
    return texts


@pytest.fixture
def secret_frames(s3_through_proxy: FaultProxy, moto_s3, tmp_path: Path) -> str:
    sample = tmp_path / "sample"
    write_sample(str(sample))
    template = json.loads((sample / "frames-0000.jsonl").read_text().splitlines()[0])
    mask_uris = {
        "uri-credentials": f"s3://{URI_KEY_ID}:{URI_SECRET}@bucket/k.png",
        "http-credentials": f"https://user:{HTTP_PASSWORD}@host/x.png",
        "presigned": (f"https://bucket.s3.amazonaws.com/k.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={SIGNED_CREDENTIAL}"
                      f"%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=3600&X-Amz-Signature={SIGNATURE}"),
        "relative-ok": "masks/scene-0000.png",
    }
    lines = []
    for frame_id, uri in mask_uris.items():
        f = json.loads(json.dumps(template))
        f["id"] = frame_id
        f["sources"][0]["masks"][0]["uri"] = uri
        f["sources"][0]["uri"] = f"s3://{URI_KEY_ID}:{URI_SECRET}@bucket/images/{frame_id}.jpg"
        f["sources"][0]["preview"] = {"uri": f"https://user:{HTTP_PASSWORD}@host/preview/{frame_id}.jpg"}
        lines.append(json.dumps(f))
    # A record that is not JSON: issues.raw keeps its text, credentials included unless redacted.
    lines.append(f'{{"id": "broken", "sources": [{{"uri": "s3://{URI_KEY_ID}:{URI_SECRET}@bucket/b.png"')
    fs = moto_s3.filesystem()
    fs.mkdir(BUCKET)
    fs.pipe(f"{BUCKET}/data/frames.jsonl", ("\n".join(lines) + "\n").encode())
    fs.pipe(f"{BUCKET}/data/masks/scene-0000.png", (sample / "masks/scene-0000.png").read_bytes())
    return f"s3://{BUCKET}/data/frames.jsonl"


def test_no_secret_reaches_any_output_or_log(secret_frames, moto_s3, tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    options = json.dumps({"key": OPTIONS_KEY_ID, "secret": OPTIONS_SECRET})
    status = run_cli("run", "--input", secret_frames, "--output", f"s3://{BUCKET}/out", "--storage-options", options)
    out, err = capfd.readouterr()
    assert status == 0, err[-2000:]

    local = tmp_path / "out"
    moto_s3.filesystem().get(f"{BUCKET}/out/", str(local), recursive=True)
    texts = output_texts(local)
    assert any(p.endswith(".parquet") for p in texts) and any(p.endswith("_SUCCESS") for p in texts)
    texts["<stdout>"], texts["<stderr>"], texts["<logs>"] = out, err, caplog.text
    # The run really saw the URIs (redacted), so the search below is looking in the right places.
    everything = "\n".join(texts.values())
    assert "s3://***@bucket/k.png" in everything and "X-Amz-Signature=***" in everything
    leaks = [(secret, where) for secret in SECRETS for where, text in texts.items() if secret in text]
    assert leaks == []
