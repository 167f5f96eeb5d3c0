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


@pytest.mark.slow
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


# --- the one redaction function: every form a credential is written in ----------------------------------

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from transforms.uris import redact, strip_userinfo  # noqa: E402
import threading  # noqa: E402
from http.server import ThreadingHTTPServer  # noqa: E402

from tests.servers import HostileHttp, Route, _hostile_handler  # noqa: E402


@pytest.mark.parametrize("text, secret", [
    ("s3://AKIAX:s3cr3t@bucket/k.png", "s3cr3t"),
    ("https://user:pa#ss@host/x.png", "pa#ss"),
    ("https://user:pass word@host/x.png", "pass word"),
    ("s3://KEY:SE/CRET@bucket/k.png", "SE/CRET"),
    ("https://user:p@ss@host/x", "p@ss"),
    ('{"uri": "https:\\/\\/user:pw5ecret@host\\/x"}', "pw5ecret"),
    ('{"uri": "https:\\u002f\\u002fuser:pw5ecret@host/x"}', "pw5ecret"),
    ("https%3A%2F%2Fuser%3Apw5ecret%40host%2Fx", "pw5ecret"),
    ("https://h/x?password=hunter22&a=1", "hunter22"),
    ("https://h/x?passwd=hunter22", "hunter22"), ("https://h/x?pwd=hunter22", "hunter22"),
    ("https://h/x?secret=hunter22", "hunter22"), ("https://h/x?token=hunter22", "hunter22"),
    ("https://h/x?api_key=hunter22", "hunter22"), ("https://h/x?apikey=hunter22", "hunter22"),
    ("https://h/x?access_token=hunter22", "hunter22"), ("https://h/x?key=hunter22", "hunter22"),
    ("https://h/x?signature=hunter22", "hunter22"), ("https://h/x?sig=hunter22", "hunter22"),
    ("https://h/x?X-Amz-Signature=hunter22", "hunter22"), ("https://h/x?X-Amz-Credential=AKIA%2Fx", "AKIA"),
    ("https://h/x?X-Goog-Signature=hunter22", "hunter22"), ("https://h/x?client_secret=hunter22", "hunter22"),
    ("https://h/x?a=1&amp;token=hunter22", "hunter22"),  # HTML-escaped, as in the report
    ("error: password=hunter22 was refused", "hunter22"),
    ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
    ("two: s3://A:one1one@b/k and s3://B:two2two@c/k", "two2two"),
])
def test_redact_removes_every_form(text, secret):
    redacted = redact(text)
    assert secret not in redacted and "***" in redacted


@pytest.mark.parametrize("text", [
    "https://cdn.example.com/img@2x.png", "http://host:8080/a@b.png", "s3://bucket/masks/a.png",
    "no credentials here", '{"a": 1, "b": [1, 2]}', "x=1&y=2",
])
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


# The linear scans in uris against the regexes they replace (which are quadratic on long runs), on text
# drawn from the characters those regexes care about.
_REDACTION_ALPHABET = st.sampled_from(list("ab3dfsuyAFKD019:/\\%=@&#\"'<> .-_\n") + [
    "://", ":\\/\\/", "%3a%2F%2F", "\\u003a\\u002f\\u002f", "s3", "https", "%3d", "\\u003D", "\\U003d", "%40",
    "\\u0040", "\\u0026", "%26", "password", "pwd", "token", "api-key", "Sig", "auth", "key", "KEY", "k\u212ay",
    "\u017fig", "\u00e9", "Bearer ", "x-amz-signature"])
_REDACTION_TEXT = st.lists(_REDACTION_ALPHABET, max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(_REDACTION_TEXT)
def test_linear_scans_find_what_the_regexes_found(text):
    import re

    from transforms import uris

    assert uris.scheme_separators(text) == [m.span() for m in re.finditer(uris._SCHEME_SEP, text)]
    reference = re.compile(r"(?<![\w.\-])(" + uris._SECRET_NAME + uris._SECRET_EQUALS + ")" + uris._SECRET_VALUE,
                           re.IGNORECASE)
    assert uris._secret_params_sub(text) == reference.sub(lambda m: m.group(1) + uris.MASK, text)


@pytest.mark.parametrize("text", ["a" * 200_000 + "@", "s3://" + "a" * 200_000 + "@b/c", "password" * 25_000 + "=x",
                                  "password" * 25_000 + "&k=v", ("ab1" * 30 + "@") * 5_000])
def test_redaction_is_linear_on_long_runs(text):
    # The regexes they replace took 30 s on 100 KB of letters before an '@' and 3 s on 64 KB of 'password...='.
    # 200 KB must be well under a second even on a loaded machine (measured: a few ms).
    import time

    started = time.process_time()
    redact(text)
    assert time.process_time() - started < 2.0


@pytest.mark.parametrize("uri, read", [
    ("s3://KEY:SE/CRET@bucket/k.png", "s3://bucket/k.png"),
    ("https://user:pa#ss@host/x.png", "https://host/x.png"),
    ("https://user:p w@host/x.png", "https://host/x.png"),
    ("http://host:8080/a@b.png", "http://host:8080/a@b.png"),
    ("https://cdn/img@2x.png", "https://cdn/img@2x.png"),
])
def test_strip_userinfo_reads_the_object_not_the_password(uri, read):
    assert strip_userinfo(uri) == read


# Hypothesis also draws strings it finds in our source ("undeclared_pixels", a column name): such a "secret" is in
# every output without leaking, so each secret starts with a marker no output holds by itself.
_SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#/ @!$%^*()-_+", min_size=10, max_size=24) \
    .filter(lambda s: s.strip() == s and len(set(s)) > 5).map(lambda s: "Zq7" + s)
_FORMS = st.sampled_from([
    "https://user:{s}@host.example/x.png", "s3://AKIA:{s}@bucket/k.png", "gs://u:{s}@b/k.png",
    "https://host.example/x.png?password={s}", "https://host.example/x.png?api_key={s}",
    "https://host.example/x.png?a=1&token={s}", "https://host.example/x.png?X-Amz-Signature={s}",
    "ftp://u:{s}@files/x",
])
_FIELDS = st.sampled_from(["id", "context_id", "meta", "extra", "source_id", "source_uri", "preview", "mask_uri", "mask_id",
                           "label", "roi_id", "broken"])


def _place(frame: dict, field: str, text: str) -> dict | str:
    src = frame["sources"][0]
    if field == "id":
        frame["id"] = frame["id"] + " " + text
    elif field == "context_id":
        frame["context_id"] = text
    elif field == "meta":
        frame["meta"] = {"note": "see " + text}
    elif field == "extra":
        frame["saved_from"] = text
    elif field == "source_id":
        src["id"] = text
        for roi in frame["rois"]:
            roi["sources"] = [text]
    elif field == "source_uri":
        src["uri"] = text
    elif field == "preview":
        src["preview"] = {"uri": text}
    elif field == "mask_uri":
        src["masks"][0]["uri"] = text
    elif field == "mask_id":
        src["masks"][0]["id"] = text
    elif field == "label":
        for roi in frame["rois"]:
            roi["label"] = [text]
    elif field == "roi_id":
        frame["rois"][0]["id"] = text
    elif field == "broken":  # not JSON: issues.raw keeps it (JSON-escaped slashes included)
        return json.dumps(frame).replace("/", "\\/")[:-3]
    return frame


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(placements=st.lists(st.tuples(_FIELDS, _FORMS, _SECRET), min_size=4, max_size=10))
@example(placements=[("id", "https://user:{s}@host.example/x.png", "Zq700000123@/")] * 4)  # '@/' in the --mask-labels password
def test_random_secrets_in_random_fields_reach_no_output_byte_and_no_log(placements, tmp_path_factory, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    root = tmp_path_factory.mktemp("prop")
    write_sample(str(root / "sample"))
    template = json.loads((root / "sample/frames-0000.jsonl").read_text().splitlines()[0])
    lines, secrets = [], []
    for i, (field, form, secret) in enumerate(placements):
        frame = json.loads(json.dumps(template))
        frame["id"] = f"f{i}"
        placed = _place(frame, field, form.format(s=secret))
        lines.append(placed if isinstance(placed, str) else json.dumps(placed))
        secrets.append(secret)
    shard = root / "data" / "frames.jsonl"
    shard.parent.mkdir()
    shard.write_text("\n".join(lines) + "\n")
    (root / "data/masks").mkdir()
    (root / "data/masks/scene-0000.png").write_bytes((root / "sample/masks/scene-0000.png").read_bytes())
    out = root / "out"
    labels = HostileHttp(routes={"/mask_labels.json": Route(body=b'{"_all_": []}')})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _hostile_handler(labels))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # --mask-labels with user-info (a password with '/' and '#' in it) and a token: read, never shown. An '@' in
        # the password must be percent-encoded (RFC 3986): raw, "user:a@/@host" is a URL with no host, so none here.
        password = secrets[0].replace("@", "")
        secrets.append(password)
        labels_url = f"http://user:{password}@127.0.0.1:{server.server_address[1]}/mask_labels.json?token={secrets[-2]}"
        capfd.readouterr()
        status = run_cli("run", "--input", str(shard), "--output", str(out), "--allow-http", "--mask-labels", labels_url)
        stdout, stderr = capfd.readouterr()
    finally:
        server.shutdown()
        server.server_close()
    assert status == 0, stderr[-2000:]
    texts = output_texts(out)
    assert any(p.endswith("report.html") for p in texts) and any(p.endswith("summary.json") for p in texts)
    texts["<stdout>"], texts["<stderr>"], texts["<logs>"] = stdout, stderr, caplog.text
    assert "***" in "\n".join(texts.values())  # the secrets were there, and redacted
    leaks = [(secret, where) for secret in secrets for where, text in texts.items() if secret in text]
    assert leaks == []


def test_the_sink_redacts_crops_labels_but_leaves_their_rle_strings_whole():
    # A COCO RLE string is made of the characters '0'..'o': ';KEY=Y...' and '@' occur in them (this one is
    # from 2,000 random characters) and were once rewritten as ';KEY=***', which no decoder reads back.
    from transforms.flattening import rows_to_table
    from transforms.schema import CropRow
    from transforms.writing import redact_table

    rle = "3KYTk8Z^o^=>]i@?KEY=YFmXVW:6aJ"
    row = CropRow(frame_id="f", shard="s3://AKIAX:s3cr3tKey@bucket/shard.json", line=1, source_id="src",
                  mask_id="m", roi_index=None, labels=["car?token=hunter22"], rgb=[1, 2, 3],
                  bbox_x0=0, bbox_y0=0, bbox_x1=1, bbox_y1=1, rle_counts=rle, png=None)
    written = redact_table(rows_to_table("crops", [row])).to_pylist()[0]
    assert written["rle_counts"] == rle
    assert "s3cr3tKey" not in written["shard"] and "hunter22" not in written["labels"][0]
