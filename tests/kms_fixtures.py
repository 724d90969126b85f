"""Fixtures of the KMS tests, on a real SoftHSM2 token (registered by tests/conftest.py).

The token is made by ``hsm/setup.sh`` in a temporary directory, once per test session, so
tests never touch the developer's own ``.hsm/`` token and its keys.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


@pytest.fixture(scope="session")
def hsm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The env of a fresh SoftHSM2 token (SOFTHSM2_CONF, PKCS11_MODULE, label, PIN).

    Also sets SOFTHSM2_CONF in this process: SoftHSM2 reads it once, when the module is first
    initialised, so every KMS in this test session uses this token.
    """
    directory = tmp_path_factory.mktemp("hsm")
    proc = subprocess.run(
        ["bash", str(ROOT / "hsm" / "setup.sh"), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode == 3:
        pytest.skip(f"SoftHSM2 is missing and this user cannot install it: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    env = read_env(directory / "env")
    os.environ["SOFTHSM2_CONF"] = env["SOFTHSM2_CONF"]
    return env


@pytest.fixture(scope="session")
def kms(hsm_env: dict[str, str]) -> Iterator[object]:
    """A ``Pkcs11Kms`` shared by the tests of the session (each test uses its own key names)."""
    from portal_core.kms import Pkcs11Kms

    with Pkcs11Kms.from_env(hsm_env) as instance:
        yield instance


@pytest.fixture
def key_name(kms: object) -> str:
    """A new key, created for this test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    kms.create_key(name)  # type: ignore[attr-defined]
    return name
