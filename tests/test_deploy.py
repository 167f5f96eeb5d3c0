"""What can be checked of the Dataflow deployment without Google, Docker or the network.

* The pipeline built for DataflowRunner (through the Flex Template entry point) goes through
  Dataflow's own job translation with Beam's ``--dry_run``: runner API proto, Dataflow overrides,
  the Dataflow ``Job`` and its ``Environment`` (worker image, pipeline options) - and nothing is sent.
* Every pickled function in that proto unpickles (what a worker does first).
* deploy/metadata.json lists exactly the CLI's flags; the Dockerfile installs deploy/requirements.txt,
  whose pins satisfy pyproject.toml.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROJECT_ID, REGION, BUCKET = "framebeam-test", "europe-west4", "framebeam-test-bucket"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT_ID}/framebeam/framebeam:test"
STEP_LABELS = {"ReadFrames", "Validate", "JoinMasks", "DecodeMasks", "WriteTables"}
FRAME = {
    "id": "f1",
    "sources": [{"id": "s1", "uri": "gs://b/img.png", "width": 4, "height": 4,
                 "masks": [{"id": "m1", "uri": "gs://b/m.png"}]}],
    "rois": [{"label": ["car"], "mask": {"id": "m1", "value": [255, 0, 0]}, "sources": ["s1"]}],
}


@pytest.fixture(scope="module")
def no_network():
    """Record (and refuse) every name lookup or connection to a host other than this one."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def local(host) -> bool:
        return host in ("localhost", "127.0.0.1", "::1", None) or str(host).startswith("/")

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            attempts.append(f"lookup {host}")
            raise OSError(f"test_deploy: no network (lookup of {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if not local(host):
            attempts.append(f"connect {address}")
            raise OSError(f"test_deploy: no network (connect to {address})")
        return real_connect(sock, address)

    mp = pytest.MonkeyPatch()
    mp.setenv("NO_GCE_CHECK", "true")  # google-auth must not probe the metadata server
    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    mp.setattr(socket.socket, "connect", connect)
    yield attempts
    mp.undo()


@pytest.fixture(scope="module")
def dry_run_job(tmp_path_factory, no_network):
    """Launch `run` through the Flex Template entry point with Dataflow's dry run: translated, not submitted."""
    pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient", reason="needs apache-beam[gcp]")
    from pipelines.flex_template import launch

    data = tmp_path_factory.mktemp("frames")
    (data / "frames.jsonl").write_text(json.dumps(FRAME) + "\n")
    argv = [
        "--command=run", f"--input={data}/*.jsonl", f"--output=gs://{BUCKET}/out", "--crop_png=true",
        f"--allow_uri_prefix=gs://{BUCKET}/masks/,gs://b/", "--colour_tolerance=3",
        "--runner=DataflowRunner", f"--project={PROJECT_ID}", f"--region={REGION}",
        f"--temp_location=gs://{BUCKET}/tmp", f"--sdk_container_image={IMAGE}", "--dry_run=True",
    ]
    result = launch(argv)
    assert no_network == [], f"the dry run touched the network: {no_network}"
    return result.job


@pytest.mark.slow
def test_dataflow_dry_run_translates_the_whole_pipeline(dry_run_job):
    from apache_beam.portability import common_urns

    pipeline = dry_run_job.proto_pipeline
    top_level = {t.unique_name for t in pipeline.components.transforms.values() if "/" not in t.unique_name}
    assert STEP_LABELS <= top_level, f"stable step labels missing from the Dataflow graph: {STEP_LABELS - top_level}"
    environments = list(pipeline.components.environments.values())
    assert [e.urn for e in environments] == [common_urns.environments.DOCKER.urn]
    assert IMAGE.encode() in environments[0].payload, "workers must run the launcher's image (--sdk_container_image)"
    assert dry_run_job.proto.name and dry_run_job.proto.type_.name == "JOB_TYPE_BATCH"


@pytest.mark.slow
def test_dataflow_job_environment_carries_the_options(dry_run_job, no_network):
    """Dataflow's Environment (what create_job sends) builds from the dry-run job without staging anything."""
    from apache_beam.runners.dataflow.internal import apiclient

    environment = apiclient.Environment(
        packages=[], options=dry_run_job.options,
        environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url=f"gs://{BUCKET}/staging/pipeline.pb",
        proto_pipeline=dry_run_job.proto_pipeline,
    ).proto
    options = environment.sdk_pipeline_options["options"]
    assert options["project"] == PROJECT_ID and options["region"] == REGION
    assert options["sdk_container_image"] == IMAGE
    assert f"{BUCKET}/tmp/" in environment.temp_storage_prefix
    assert no_network == []


def _pickled_payloads(pipeline):
    """(transform, urn, bytes) of every pickled Python function in a runner API pipeline."""
    from apache_beam.portability import common_urns, python_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    pickled = {python_urns.PICKLED_DOFN_INFO, python_urns.PICKLED_COMBINE_FN, python_urns.PICKLED_TRANSFORM,
               python_urns.PICKLED_WINDOWFN}
    combines = {common_urns.composites.COMBINE_PER_KEY.urn, common_urns.composites.COMBINE_GLOBALLY.urn,
                common_urns.combine_components.COMBINE_GROUPED_VALUES.urn,
                common_urns.combine_components.COMBINE_PER_KEY_PRECOMBINE.urn,
                common_urns.combine_components.COMBINE_PER_KEY_MERGE_ACCUMULATORS.urn,
                common_urns.combine_components.COMBINE_PER_KEY_EXTRACT_OUTPUTS.urn}
    for transform in pipeline.components.transforms.values():
        spec = transform.spec
        if spec.urn == common_urns.primitives.PAR_DO.urn:
            fn = beam_runner_api_pb2.ParDoPayload.FromString(spec.payload).do_fn
        elif spec.urn in combines:
            fn = beam_runner_api_pb2.CombinePayload.FromString(spec.payload).combine_fn
        else:
            fn = spec
        if fn.urn in pickled:  # others (e.g. beam:dofn:python_key_with_none:v1) are built in, not pickled
            yield transform.unique_name, fn.urn, fn.payload
    for strategy in pipeline.components.windowing_strategies.values():
        if strategy.window_fn.urn in pickled:
            yield "windowing strategy", strategy.window_fn.urn, strategy.window_fn.payload


@pytest.mark.slow
def test_every_pickled_function_in_the_dataflow_graph_unpickles(dry_run_job):
    from apache_beam.internal import pickler
    from apache_beam.portability import python_urns

    payloads = list(_pickled_payloads(dry_run_job.proto_pipeline))
    names = {name.split("/")[0] for name, _, _ in payloads}
    assert STEP_LABELS <= names, f"no pickled functions found under {STEP_LABELS - names}"
    dofns = 0
    for name, urn, data in payloads:
        value = pickler.loads(data)
        assert value is not None, f"{name}: {urn} unpickled to None"
        if urn == python_urns.PICKLED_DOFN_INFO:
            dofns += 1
            pickler.loads(pickler.dumps(value))  # and survives a second trip (Dataflow may re-serialise)
    assert dofns >= 20, f"only {dofns} DoFns found: was the graph translated?"


# --- Flex Template parameters <-> CLI flags -----------------------------------------------------------

def _cli_flags_for(commands: tuple[str, ...]) -> set[str]:
    """Long flags of the CLI's sub-commands, read straight from argparse (independent of flex_template)."""
    import argparse

    from pipelines.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {s for c in commands for a in subparsers[c]._actions for s in a.option_strings
            if s.startswith("--") and s != "--help"}


def _metadata() -> dict:
    return json.loads((DEPLOY / "metadata.json").read_text())


def test_metadata_parameters_are_exactly_the_cli_flags_of_run_and_validate():
    names = [p["name"] for p in _metadata()["parameters"]]
    assert len(names) == len(set(names)), "a parameter is listed twice in deploy/metadata.json"
    as_flags = {"--" + n.replace("_", "-") for n in names if n != "command"}
    cli = _cli_flags_for(("run", "validate"))
    assert as_flags - cli == set(), "deploy/metadata.json lists parameters the CLI no longer has: remove them"
    assert cli - as_flags == set(), "CLI flags missing from deploy/metadata.json: add them (name with underscores)"
    assert "command" in names


def test_metadata_parameters_are_complete_and_their_regexes_compile():
    from pipelines.cli import build_parser
    from pipelines.flex_template import job_flags

    flags = job_flags(build_parser())
    for p in _metadata()["parameters"]:
        assert p["label"] and p["helpText"], f"{p['name']}: label and helpText are shown in the Console"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p["name"]), f"{p['name']}: use lower_snake_case"
        for regex in p.get("regexes", []):
            re.compile(regex)
        if p["name"] in flags and not flags[p["name"]].takes_value:
            assert p["regexes"] == ["^(true|false)$"], f"{p['name']} is a switch: its value is true or false"
    required = {p["name"] for p in _metadata()["parameters"] if not p["isOptional"]}
    assert required == {"command", "input", "output"}


def test_metadata_regexes_accept_good_values_and_refuse_bad_ones():
    regexes = {p["name"]: [re.compile(r) for r in p.get("regexes", [])] for p in _metadata()["parameters"]}

    def ok(name: str, value: str) -> bool:
        return all(r.search(value) for r in regexes[name])

    assert ok("command", "validate") and not ok("command", "sample")
    assert ok("input", "gs://b/frames/*.jsonl.gz,s3://c/more/*.jsonl") and not ok("input", "frames.jsonl")
    assert ok("colour_tolerance", "255") and not ok("colour_tolerance", "256")
    assert ok("max_errors", "0") and not ok("max_record_bytes", "0")
    assert ok("crop_png", "true") and not ok("crop_png", "yes please")


def test_template_arguments_become_the_cli_command_line():
    from pipelines.cli import build_parser
    from pipelines.flex_template import cli_argv_from_template, job_flags

    flags = job_flags(build_parser())
    argv = cli_argv_from_template(
        ["--command=validate", "--input=gs://b/a/*.jsonl, gs://b/b/*.jsonl", "--output=gs://b/out",
         "--no_decode=true", "--crop_png=false", "--max_errors=3", "--project=p1", "--job_name=nightly"],
        flags,
    )
    assert argv == ["validate", "--input", "gs://b/a/*.jsonl", "--input", "gs://b/b/*.jsonl", "--output", "gs://b/out",
                    "--no-decode", "--max-errors", "3", "--project=p1", "--job_name=nightly", "--runner=DataflowRunner"]
    args, beam_flags = build_parser().parse_known_args(argv)
    assert args.inputs == ["gs://b/a/*.jsonl", "gs://b/b/*.jsonl"] and args.no_decode and args.max_errors == 3
    assert beam_flags == ["--project=p1", "--job_name=nightly", "--runner=DataflowRunner"]


@pytest.mark.parametrize("argv, message", [
    (["--input=gs://b/x", "--output=gs://b/o"], "command"),
    (["--command=sample", "--input=gs://b/x"], "command"),
    (["--command=run", "--crop_png=maybe"], "true or false"),
])
def test_bad_template_arguments_say_how_to_fix_them(argv, message):
    from pipelines.cli import build_parser
    from pipelines.flex_template import FlexParameterError, cli_argv_from_template, job_flags

    with pytest.raises(FlexParameterError, match=message):
        cli_argv_from_template(argv, job_flags(build_parser()))


# --- image: Dockerfile, pins, the Python layer check ---------------------------------------------------

def _pins() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"deploy/requirements.txt: {line!r} is not an exact == pin"
            pins[canonicalize_name(name)] = version
    return pins


def test_pins_satisfy_pyproject_dependency_ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["gcp"] + project["optional-dependencies"]["video"]
    pins = _pins()
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned: run .venv/bin/python deploy/freeze_requirements.py"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} breaks pyproject's {req}: upgrade it in .venv, then rerun deploy/freeze_requirements.py")


def test_dockerfile_installs_the_pins_with_the_same_commands_as_the_ci_check():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    run_lines = [line.strip(" &\\") for line in dockerfile.replace("&&", "\n").splitlines()]
    docker_pip = [line.removeprefix("RUN ").strip() for line in run_lines if " -m pip " in line]
    assert "python -m pip install --no-cache-dir -r deploy/requirements.txt" in docker_pip
    assert re.search(r"^FROM apache/beam_python3\.11_sdk:\$\{BEAM_VERSION\}$", dockerfile, re.M)
    assert "ARG BEAM_VERSION=2.77.0" in dockerfile and _pins()["apache-beam"] == "2.77.0"
    assert "python_template_launcher" in dockerfile and "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/pipelines/flex_template.py" in dockerfile
    check = (DEPLOY / "check_python_layer.sh").read_text()
    check_pip = [line.strip().replace('"$PY"', "python") for line in check.splitlines() if '"$PY" -m pip ' in line]
    assert docker_pip == check_pip, "deploy/Dockerfile and deploy/check_python_layer.sh must run the same pip commands"


def test_installed_closure_reports_a_pin_that_breaks_a_requirement():
    """freeze_requirements refuses to pin a dev-venv version that breaks a declared range."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("freeze_requirements", DEPLOY / "freeze_requirements.py")
    freeze = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = freeze  # its dataclasses look their module up by name
    try:
        spec.loader.exec_module(freeze)
    finally:
        del sys.modules[spec.name]
    closure = freeze.installed_closure([Requirement("packaging<1"), Requirement("pyarrow>=1")])
    assert "packaging" in closure.conflicts and "does not satisfy packaging<1" in closure.conflicts["packaging"]
    assert "pyarrow" in closure.pins and "packaging" not in closure.pins


def test_airflow_dag_is_valid_python():
    import ast

    tree = ast.parse((DEPLOY / "airflow_dag.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "BeamRunPythonPipelineOperator" in names


def test_shell_scripts_are_strict():
    for script in ("build_and_launch.sh", "check_python_layer.sh"):
        text = (DEPLOY / script).read_text()
        assert "set -euo pipefail" in text, f"deploy/{script}: add set -euo pipefail"
        assert os.access(DEPLOY / script, os.X_OK), f"deploy/{script}: chmod +x"


def test_dockerfile_ships_the_mask_kernel_compiled():
    """The image warms numba's cache (generic CPU, a fixed writable folder) after installing framebeam; the
    CI layer check does the same warm-up (tests/test_kernel.py checks a warmed cache needs no compile)."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "NUMBA_CACHE_DIR=/opt/framebeam/numba-cache" in dockerfile and "NUMBA_CPU_NAME=generic" in dockerfile
    install = dockerfile.index("python -m pip install --no-cache-dir --no-deps .")
    assert dockerfile.index('from transforms.warmup import warm; warm()') > install
    assert "chmod -R a+rwX /opt/framebeam/numba-cache" in dockerfile
    assert "from transforms.warmup import warm; warm()" in (DEPLOY / "check_python_layer.sh").read_text()
