#!/usr/bin/env bash
# Does what deploy/Dockerfile's Python layer does, without Docker: a fresh Python 3.11 venv in a temp
# dir, the same pip commands with the same pins (deploy/requirements.txt), then pip check and an
# import of the launcher's entry point. For CI:  bash deploy/check_python_layer.sh
#
# Differences from the image, on purpose: the base is a bare venv, not Beam's SDK image (which has
# more packages preinstalled; `pip check` in the Docker build covers those), and packages come from
# this machine's pip configuration (index, find-links).
set -euo pipefail

PYTHON="${PYTHON:-python3.11}"          # the image's interpreter version
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEEP_VENV="${KEEP_VENV:-0}"              # 1: leave the venv behind and print its path

command -v "$PYTHON" >/dev/null || { echo "check_python_layer: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 2; }
WORK="$(mktemp -d -t framebeam-layer.XXXXXX)"
[[ "$KEEP_VENV" == 1 ]] || trap 'rm -rf "$WORK"' EXIT
started=$SECONDS

# The Dockerfile copies deploy/requirements.txt, pyproject.toml, README.md, pipelines/ and transforms/
# into /template; copying the same files keeps stray local files (venvs, caches) out of the build.
mkdir -p "$WORK/template/deploy"
cp "$REPO/deploy/requirements.txt" "$WORK/template/deploy/"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$WORK/template/"
cp -r "$REPO/pipelines" "$REPO/transforms" "$WORK/template/"
find "$WORK/template" -name __pycache__ -prune -exec rm -rf {} +

"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
cd "$WORK/template"
# --- the Dockerfile's Python layer (same commands; tests/test_deploy.py keeps them in step) ---
"$PY" -m pip install --no-cache-dir -r deploy/requirements.txt
"$PY" -m pip install --no-cache-dir --no-deps .
"$PY" -m pip check
# --- end of the layer ---
cd /
# The launcher imports this; workers import the transforms through the pickled DoFns.
"$PY" -c "import pipelines.flex_template, pipelines.assemble, transforms.masks, transforms.video, apache_beam.runners.dataflow.internal.apiclient"
# The Dockerfile's warm-up of the numba kernel cache (compiles every kernel signature: ~10-20 s).
NUMBA_CACHE_DIR="$WORK/numba-cache" NUMBA_CPU_NAME=generic "$PY" -c "from transforms.warmup import warm; warm()"
# Every installed distribution must be pinned at exactly that version (names compared canonically).
"$PY" - "$REPO/deploy/requirements.txt" <<'PYCODE'
import sys
from importlib import metadata
from packaging.utils import canonicalize_name
pinned = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, _, version = line.partition("==")
        pinned[canonicalize_name(name)] = version
installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
ignored = {"pip", "setuptools", "wheel", "framebeam"}
stray = sorted(f"{n}=={v}" for n, v in installed.items() if n not in ignored and pinned.get(n) != v)
absent = sorted(n for n in pinned if n not in installed)
if stray or absent:
    print("check_python_layer: the venv differs from deploy/requirements.txt "
          "(regenerate it with .venv/bin/python deploy/freeze_requirements.py):", file=sys.stderr)
    for line in stray:
        print(f"  installed, not pinned at this version: {line}", file=sys.stderr)
    for name in absent:
        print(f"  pinned, not installed: {name}", file=sys.stderr)
    sys.exit(1)
PYCODE
echo "check_python_layer: ok, $(grep -c "==" "$REPO/deploy/requirements.txt") pins installed and consistent in $((SECONDS - started)) s"
[[ "$KEEP_VENV" != 1 ]] || echo "venv kept at $WORK/venv"
