"""The worker image's Python layer installs as the Dockerfile does it, without Docker (issue 5).

Runs deploy/check_python_layer.sh: a fresh Python 3.11 venv, the Dockerfile's pip commands with the
pins of deploy/requirements.txt, pip check, and the launcher's imports. It downloads the pinned
wheels from the package index, so it takes a minute or two.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_dockerfile_python_layer_installs_with_its_pins():
    if shutil.which("python3.11") is None:
        pytest.skip("python3.11 (the image's interpreter) is not on PATH")
    result = subprocess.run(["bash", str(REPO / "deploy" / "check_python_layer.sh")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-4000:] + "\n" + result.stderr[-4000:])
