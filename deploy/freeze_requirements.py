"""Write deploy/requirements.txt: exact pins of what framebeam[gcp,video] needs at run time.

    .venv/bin/python deploy/freeze_requirements.py            # rewrite deploy/requirements.txt
    .venv/bin/python deploy/freeze_requirements.py --check    # exit 1 if the file is stale

The pins come from the dev venv (a filtered ``pip freeze``): framebeam's dependencies with the
``gcp`` and ``video`` extras, followed transitively through the installed packages' metadata, so the
image runs the versions the tests ran. A dev-venv version that breaks a requirement of the closure
(e.g. s3fs 0.4.2 when pyproject asks for s3fs>=2024.6) is not pinned blindly: that package and what
only it pulled in are resolved by pip (``pip install --dry-run --report``) with every other pin held
as a constraint, and the file says which pins did not come from the venv.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from collections import deque
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "deploy" / "requirements.txt"
EXTRAS = ("gcp", "video")
PROJECT = "framebeam"


@dataclass(frozen=True)
class Closure:
    pins: dict[str, str]  # canonical name -> installed version, every requirement on it satisfied
    conflicts: dict[str, str]  # canonical name -> why the installed version cannot be pinned


def root_requirements(pyproject: Path = REPO / "pyproject.toml", extras: tuple[str, ...] = EXTRAS) -> list[Requirement]:
    """framebeam's dependencies plus those of the given extras, as pyproject.toml declares them."""
    project = tomllib.loads(pyproject.read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def installed_closure(roots: list[Requirement]) -> Closure:
    """Follow requirements through the installed distributions of this interpreter's environment."""
    wanted: dict[str, list[Requirement]] = {}
    extras_of: dict[str, set[str]] = {}
    queue = deque((r, frozenset()) for r in roots)
    pins: dict[str, str] = {}
    missing: dict[str, str] = {}
    while queue:
        req, parent_extras = queue.popleft()
        if not _applies(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        if name == PROJECT:
            continue  # framebeam[all]-style self references: the extras are already in the roots
        wanted.setdefault(name, []).append(req)
        new_extras = set(req.extras) - extras_of.get(name, set())
        if name in pins and not new_extras:
            continue
        extras_of.setdefault(name, set()).update(req.extras)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing[name] = f"{req} is not installed in {sys.prefix}: run .venv/bin/pip install -e '.[{','.join(EXTRAS)}]'"
            continue
        pins[name] = dist.version
        for text in dist.requires or []:
            queue.append((Requirement(text), frozenset(extras_of[name])))
    conflicts = dict(missing)
    for name, version in pins.items():
        broken = [str(r) for r in wanted[name] if r.specifier and not r.specifier.contains(version, prereleases=True)]
        if broken:
            conflicts[name] = f"installed {name}=={version} does not satisfy {', '.join(broken)}"
    return Closure({n: v for n, v in pins.items() if n not in conflicts}, conflicts)


def resolve_with_pip(roots: list[Requirement], held: dict[str, str]) -> dict[str, str]:
    """Let pip resolve the roots with ``held`` pins as constraints (needs the package index)."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp, "constraints.txt")
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(held.items())))
        report = Path(tmp, "report.json")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "-c", str(constraints), *map(str, roots)]
        subprocess.run(cmd, check=True)
        installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


def drop_only_reachable_through(closure: Closure, roots: list[Requirement]) -> dict[str, str]:
    """Pins still reachable from the roots without passing through a conflicting package.

    What only a conflicting package pulled in (s3fs 0.4.2's boto3/botocore) must not be held: the
    resolver needs to choose it afresh for the package's new version.
    """
    reachable: dict[str, set[str]] = {}  # name -> extras followed so far
    queue = deque((r, frozenset()) for r in roots)
    while queue:
        req, parent_extras = queue.popleft()
        name = canonicalize_name(req.name)
        if not _applies(req, parent_extras) or name in closure.conflicts or name not in closure.pins:
            continue
        if name in reachable and set(req.extras) <= reachable[name]:
            continue
        reachable.setdefault(name, set()).update(req.extras)
        for text in metadata.distribution(req.name).requires or []:
            queue.append((Requirement(text), frozenset(reachable[name])))
    return {n: v for n, v in closure.pins.items() if n in reachable}


def render(pins: dict[str, str], from_venv: dict[str, str], notes: dict[str, str]) -> str:
    lines = [
        f"# Runtime pins for {PROJECT}[{','.join(EXTRAS)}] (Dataflow image: launcher and workers).",
        "# Generated from the dev venv; do not edit by hand. Regenerate after changing .venv or pyproject.toml:",
        "#   .venv/bin/python deploy/freeze_requirements.py",
        "# Check it in CI without Docker: bash deploy/check_python_layer.sh",
    ]
    for name, why in sorted(notes.items()):
        lines.append(f"# {name}: not the dev venv's version ({why}); resolved by pip")
    for name, version in sorted(pins.items()):
        marker = "" if from_venv.get(name) == version else "  # resolved, not from the dev venv"
        lines.append(f"{name}=={version}{marker}")
    return "\n".join(lines) + "\n"


def freeze() -> str:
    roots = root_requirements()
    closure = installed_closure(roots)
    if not closure.conflicts:
        return render(closure.pins, closure.pins, {})
    held = drop_only_reachable_through(closure, roots)
    resolved = resolve_with_pip(roots, held)
    return render(resolved, closure.pins, closure.conflicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if deploy/requirements.txt differs from a fresh freeze.")
    args = parser.parse_args(argv)
    text = freeze()
    if args.check:
        if REQUIREMENTS.exists() and REQUIREMENTS.read_text() == text:
            return 0
        print(f"{REQUIREMENTS} is stale: run .venv/bin/python deploy/freeze_requirements.py", file=sys.stderr)
        return 1
    REQUIREMENTS.write_text(text)
    pins = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    print(f"wrote {REQUIREMENTS}: {pins} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
