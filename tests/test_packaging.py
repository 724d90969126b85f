"""`pip install .` builds an abi3 wheel that works in a fresh virtualenv, as users install it."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=60,
    )
    (whl,) = out.glob("portal_core_mpc-*.whl")  # named after the distribution, portal-core-mpc
    return whl


def test_wheel_is_abi3_and_ships_types(wheel):
    assert "-abi3-" in wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("portal_core/_rust") and n.endswith(".so") for n in names)
    for needed in ("portal_core/py.typed", "portal_core/_rust/envelope.pyi", "portal_core/cli.py"):
        assert needed in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
    assert parser["console_scripts"]["portal-core"] == "portal_core.cli:main"


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    # With its dependencies, as a user installs it (pip's cache, or the package index).
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=60,
    )
    proc = subprocess.run(
        [bin_dir / "portal-core", "demo", "--core", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,  # away from the source tree, so the installed package is what runs
    )
    assert json.loads(proc.stdout)["envelope"]["opened"] is True
