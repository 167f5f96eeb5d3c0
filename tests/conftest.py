"""Shared fixtures: where ../shared is, and running the real CLI in-process."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]

# The storage clients probe cloud metadata servers when they find no credentials: botocore asks EC2's
# IMDS (169.254.169.254) and google-auth pings the GCE metadata server. Tests never do (docs/STORAGE.md).
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["NO_GCE_CHECK"] = "true"

# The fast inner loop (`pytest -m "not slow"`) runs each property test on a tenth of its examples; the
# whole suite (CI, the README's command) runs them all. Set by pytest_configure, read at collection.
FAST_LOOP = False


def pytest_configure(config) -> None:
    global FAST_LOOP
    FAST_LOOP = "not slow" in (config.getoption("markexpr", "") or "")


def examples(n: int) -> int:
    """Hypothesis ``max_examples`` for a property test: ``n`` in the whole suite, n/10 (at least 10) in the fast loop."""
    return max(10, n // 10) if FAST_LOOP else n



@pytest.fixture(autouse=True)
def _fresh_storage_memory():
    """Endpoints found unreachable and credential look-ups are remembered per process: not across tests."""
    from transforms.storage import forget_unreachable

    forget_unreachable()
    yield
    forget_unreachable()

# Fast in-process runner for most tests; `parallel_flags` exercises worker processes (pickling).
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
PARALLEL = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def shared_dir() -> Path | None:
    path = Path(os.environ.get("FRAMEBEAM_SHARED", REPO.parent / "shared"))
    return path if path.is_dir() else None


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is not beside the repo (set FRAMEBEAM_SHARED to run this test)")
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The bundled sample dataset, written once per test module (outputs go ``beside`` it)."""
    from transforms.sample import write_sample

    directory = tmp_path_factory.mktemp("sample")
    write_sample(str(directory))
    return directory


def frames_with_mask_uris(template: dict, uris: dict[str, str]) -> str:
    """JSON Lines text: ``template`` once per (frame id, mask URI), its first source's first mask at that URI."""
    import json

    lines = []
    for frame_id, uri in uris.items():
        frame = json.loads(json.dumps(template))
        frame["id"] = frame_id
        frame["sources"][0]["masks"][0]["uri"] = uri
        lines.append(json.dumps(frame))
    return "\n".join(lines) + "\n"


def beside(folder: Path, name: str = "out") -> Path:
    """An output folder next to ``folder``, not inside it: framebeam refuses an OUTPUT that lies inside
    the folder of its input shards or masks (a run must not write where it reads)."""
    return folder.parent / f"{folder.name}-{name}"


def run_cli(*args: str, parallel: bool = False) -> int:
    from pipelines.cli import main

    return main([*args, *(PARALLEL if parallel else IN_MEMORY)])


def query(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def table(output: Path, name: str) -> str:
    """A DuckDB FROM clause for one output table."""
    return f"read_parquet('{output}/{name}/*.parquet')"
