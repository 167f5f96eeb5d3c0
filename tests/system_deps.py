"""System packages some tests need (Debian's chromium for the report test): installed when we may.

Run as ``python -m tests.system_deps``. As root on Debian it apt-installs what is missing; otherwise
it prints what is missing and the tests that need it skip, saying why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

DEBIAN_PACKAGES = {"chromium": "/usr/bin/chromium"}


def main() -> int:
    missing = [pkg for pkg, path in DEBIAN_PACKAGES.items() if not os.path.exists(path)]
    if not missing:
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"system_deps: missing {', '.join(missing)} (not root or no apt-get): the tests needing them will skip", file=sys.stderr)
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env, timeout=1200)
    except (subprocess.SubprocessError, OSError) as e:
        # A mirror being down must not stop the suite: the tests that need the package skip and say why.
        print(f"system_deps: could not install {', '.join(missing)} ({e}): the tests needing them will skip", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
