"""transforms.storage.Target: one URL with its storage options, instead of (url, storage_options) pairs.

It must pickle as its two fields only (never a filesystem instance: Dataflow and Dask ship it to workers),
never show a secret in its repr, and reach local disk, memory://, S3 (moto) and GCS (the emulator) with
endpoints and credentials given in the options alone (the environment pointing nowhere).
"""
from __future__ import annotations

import json
import pickle

import pytest

from tests.servers import FAKE_AWS_KEY_ID, FAKE_AWS_SECRET, S3_REGION, forget_cached_filesystems, gcs_emulator, moto_s3  # noqa: F401 - fixtures
from transforms.storage import Target, redact_options

SECRET = "tgt-secret-value-0123456789"
OPTIONS = {"key": "AKIATARGETKEY", "secret": SECRET, "token": SECRET + "tok",
           "client_kwargs": {"endpoint_url": f"http://user:{SECRET}pw@127.0.0.1:9000", "aws_secret_access_key": SECRET,
                             "region_name": "eu-west-1"},
           "anon": False, "requester_pays": True}


def test_repr_and_str_show_no_secret_but_what_helps():
    t = Target(f"s3://u:{SECRET}url@bucket/out", OPTIONS)
    for shown in (repr(t), str(t), repr([t]), f"{t}", repr(redact_options(OPTIONS))):
        assert SECRET not in shown, shown
    text = repr(t)
    assert "s3://***@bucket/out" in text and "127.0.0.1:9000" in text and "eu-west-1" in text and "requester_pays" in text
    assert text.count("***") >= 5  # key, secret, token, the endpoint's user-info, aws_secret_access_key
    assert "AKIATARGETKEY" not in text  # 'key' is a credential name too
    assert repr(Target("/data/out")) == "Target('/data/out')"


def test_job_options_repr_hides_storage_options():
    from pipelines.options import JobOptions

    job = JobOptions(command="convert", inputs=("in/*.jsonl",), output="s3://b/out", storage_options={"secret": SECRET})
    assert SECRET not in repr(job) and SECRET not in json.dumps(job.parameters())
    assert job.target == Target("s3://b/out", {"secret": SECRET})
    assert job.at("s3://b/labels.json").storage_options == {"secret": SECRET}


def test_pickles_as_url_and_options_only_even_after_use(tmp_path):
    from apache_beam.internal import pickler

    t = Target(str(tmp_path / "out"), {"auto_mkdir": True})
    t.join("x").makedirs()
    assert t.fs is not None and "_located" in t.__dict__  # the filesystem was made and is cached here
    for dumps, loads in ((pickle.dumps, pickle.loads), (pickler.dumps, pickler.loads)):
        data = dumps(t)
        back = loads(data)
        assert back == t and back.url == t.url and back.storage_options == {"auto_mkdir": True}
        assert "_located" not in back.__dict__  # made again, lazily, in the process that uses it
    assert b"LocalFileSystem" not in pickle.dumps(t) and b"fsspec" not in pickle.dumps(t)
    assert pickle.loads(pickle.dumps(t)).join("x").isdir()


def test_the_options_are_its_own_copy():
    options = {"anon": True}
    t = Target("memory://a", options)
    options["anon"] = False
    assert t.storage_options == {"anon": True}
    with pytest.raises(Exception):
        t.url = "elsewhere"  # frozen
    assert Target.of(t) is t and Target.of("memory://a") == Target("memory://a")
    with pytest.raises(TypeError):
        Target.of(t, {"anon": False})  # a Target carries its own options: no silent override


@pytest.mark.parametrize("url, local, kind", [
    ("/abs/out", True, "local"), ("rel/out", True, "local"), ("file:///abs/out", True, "local"),
    ("s3://b/k", False, "s3"), ("s3a://b/k", False, "s3"), ("gs://b/k", False, "gs"), ("gcs://b/k", False, "gs"),
    ("memory://x/y", False, "other"),
])
def test_where_it_is(url, local, kind):
    t = Target(url)
    assert (t.is_local, t.kind) == (local, kind)


def test_paths_joins_and_urls(tmp_path):
    t = Target(str(tmp_path / "out") + "/")
    assert t.path == str(tmp_path / "out") and t.join("a", "b").url == str(tmp_path / "out" / "a" / "b")
    assert t.sub("a", "b") == str(tmp_path / "out" / "a" / "b") and t.url_of(t.sub("a")) == str(tmp_path / "out" / "a")
    rel = Target("relative/dir")
    assert rel.path.startswith("/") and rel.path.endswith("/relative/dir")  # made absolute, as fsspec does
    m = Target("memory://bucket/out", {"skip_instance_cache": False})
    assert m.path == "/bucket/out" and m.join("t", "p.parquet").url == "memory://bucket/out/t/p.parquet"
    assert m.url_of(m.sub("t")) == "memory:///bucket/out/t"
    assert m.at("memory://other").storage_options == m.storage_options


@pytest.mark.parametrize("root", ["local", "memory"])
def test_files_and_folders(root, tmp_path):
    base = Target(str(tmp_path / "t")) if root == "local" else Target(f"memory://target-test-{tmp_path.name}")
    folder = base.join("sub")
    folder.makedirs()
    assert folder.isdir() or root == "memory"  # memory:// folders exist once they hold something
    f = folder.join("a.txt")
    assert not f.exists()
    f.write_bytes(b"hello")
    assert f.exists() and f.read_bytes() == b"hello" and f.size() == 5
    with folder.join("b.bin").open("wb") as out:
        out.write(b"xy")
    assert [p.rsplit("/", 1)[1] for p in folder.glob("*")] == ["a.txt", "b.bin"]
    assert sorted(p.rsplit("/", 1)[1] for p in folder.ls()) == ["a.txt", "b.bin"]
    f.rm()
    assert not f.exists()
    folder.rm(recursive=True)
    assert not folder.join("b.bin").exists()


def _s3_env_points_nowhere(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    forget_cached_filesystems()


@pytest.mark.slow
def test_s3_with_endpoint_and_credentials_in_the_options_only(moto_s3, monkeypatch):
    moto_s3.reset()
    _s3_env_points_nowhere(monkeypatch)
    options = {"key": FAKE_AWS_KEY_ID, "secret": FAKE_AWS_SECRET, "client_kwargs": {"endpoint_url": moto_s3.endpoint}}
    moto_s3.filesystem().mkdir("target-bucket")
    t = Target("s3://target-bucket/out", options)
    assert t.kind == "s3" and not t.is_local and FAKE_AWS_SECRET not in repr(t)
    back = pickle.loads(pickle.dumps(t))  # as a worker gets it
    back.join("x", "a.bin").write_bytes(b"abc")
    assert t.join("x", "a.bin").exists() and t.join("x", "a.bin").read_bytes() == b"abc"
    assert [p.rsplit("/", 1)[1] for p in t.join("x").glob("*.bin")] == ["a.bin"]
    assert t.url_of(t.join("x").ls()[0]) == "s3://target-bucket/out/x/a.bin"
    t.join("x").rm(recursive=True)
    assert not t.join("x", "a.bin").exists()
    forget_cached_filesystems()


@pytest.mark.slow
def test_a_run_into_s3_takes_everything_from_the_options(moto_s3, monkeypatch, tmp_path, capsys):
    """convert into s3:// with the endpoint and credentials only in --storage-options: check, claim, lease,
    write, publish, history, the report and `framebeam tables` all reach the bucket through the one Target."""
    from tests.conftest import run_cli
    from transforms.sample import write_sample
    from transforms.writing import read_summary, table_globs

    moto_s3.reset()
    _s3_env_points_nowhere(monkeypatch)
    moto_s3.filesystem().mkdir("target-run")
    write_sample(tmp_path / "sample")
    options = {"key": FAKE_AWS_KEY_ID, "secret": FAKE_AWS_SECRET, "client_kwargs": {"endpoint_url": moto_s3.endpoint}}
    out = "s3://target-run/out"
    assert run_cli("convert", "--input", str(tmp_path / "sample" / "frames-*"), "--output", out,
                   "--storage-options", json.dumps(options)) == 0
    target = Target(out, options)
    summary = read_summary(target)
    assert summary["tables"]["frames"] > 0
    files = moto_s3.filesystem().find("target-run/out")
    assert any(f.endswith("/report.html") for f in files) and any("/history/" in f for f in files)
    assert any("/_logs/" in f for f in files) and "target-run/out/_FRAMEBEAM_OUTPUT" in files
    assert not moto_s3.filesystem().exists("target-run/out/_LEASE")  # released
    globs = table_globs(target)
    assert globs["frames"].startswith(f"{out}/_runs/{summary['run_id']}/frames/")
    capsys.readouterr()
    from pipelines.cli import main

    assert main(["tables", out, "--storage-options", json.dumps(options)]) == 0
    assert f"frames\t{globs['frames']}" in capsys.readouterr().out
    forget_cached_filesystems()


@pytest.mark.slow
def test_gcs_with_the_endpoint_in_the_options_only(gcs_emulator, monkeypatch):
    import fsspec
    import gcsfs.core

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    previous = fsspec.get_filesystem_class("gs")
    for protocol in ("gs", "gcs"):  # the plain class, as tests.servers.gcs does
        fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
    try:
        gcs_emulator.filesystem().mkdir("target-gcs")
        t = Target("gs://target-gcs/out", {"endpoint_url": gcs_emulator.endpoint, "token": "anon"})
        assert t.kind == "gs" and repr(t) == f"Target('gs://target-gcs/out', storage_options={{'endpoint_url': '{gcs_emulator.endpoint}', 'token': '***'}})"
        back = pickle.loads(pickle.dumps(t))
        back.join("a.json").write_bytes(b"{}")
        assert t.join("a.json").exists() and t.join("a.json").read_bytes() == b"{}"
        assert [p.rsplit("/", 1)[1] for p in t.glob("*.json")] == ["a.json"]
        t.join("a.json").rm()
        assert not t.join("a.json").exists()
    finally:
        for protocol in ("gs", "gcs"):
            fsspec.register_implementation(protocol, previous, clobber=True)
        forget_cached_filesystems()


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.slow)])
def test_input_globs_with_question_marks_and_brackets(where, tmp_path, request):
    # fsspec globs only patterns with '*': 'frames-0?.jsonl' was once read as a file of that name.
    from transforms.reading import expand_input

    names = ["frames-00.jsonl", "frames-01.jsonl", "frames-02.jsonl", "frames-[1].jsonl", "other.jsonl"]
    if where == "local":
        root = Target(str(tmp_path))
    else:
        moto_s3 = request.getfixturevalue("moto_s3")
        moto_s3.reset()
        moto_s3.filesystem().mkdir("glob-bucket")
        root = Target("s3://glob-bucket/in", {"key": FAKE_AWS_KEY_ID, "secret": FAKE_AWS_SECRET,
                                              "client_kwargs": {"endpoint_url": moto_s3.endpoint}})
    for name in names:
        root.join(name).write_bytes(b"{}\n")

    def names_of(pattern: str) -> list[str]:
        return [u.rsplit("/", 1)[1] for u in expand_input(root.at(root.url + "/" + pattern))]

    assert names_of("frames-0?.jsonl") == ["frames-00.jsonl", "frames-01.jsonl", "frames-02.jsonl"]
    assert names_of("frames-0[02].jsonl") == ["frames-00.jsonl", "frames-02.jsonl"]
    assert names_of("frames-*.jsonl") == ["frames-00.jsonl", "frames-01.jsonl", "frames-02.jsonl", "frames-[1].jsonl"]
    assert names_of("frames-[1].jsonl") == ["frames-[1].jsonl"]  # a file of that very name is itself
    assert names_of("frames-9?.jsonl") == []
    if where == "s3":
        forget_cached_filesystems()
