"""Runs the ``portal-core`` console script as a user would, for the CLI tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("portal-core")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "portal_core.cli", *args]
    # Only the HSM the test names: none of the developer's PKCS11_* settings leak in.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PKCS11_")}
    full_env.update(env or {})
    return subprocess.run(
        cmd,
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
