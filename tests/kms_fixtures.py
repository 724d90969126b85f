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
        why = f"SoftHSM2 is missing and this user cannot install it: {proc.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    assert proc.returncode == 0, proc.stderr
    env = read_env(directory / "env")
    os.environ["SOFTHSM2_CONF"] = env["SOFTHSM2_CONF"]
    # A second token, another operator's HSM, made now: SoftHSM2 sees only the tokens that
    # exist when the module is first initialised.
    vault_env = {**env, "PKCS11_TOKEN_LABEL": VAULT_TOKEN, "PKCS11_USER_PIN": uuid.uuid4().hex}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            VAULT_TOKEN,
            "--so-pin",
            uuid.uuid4().hex,
            "--pin",
            vault_env["PKCS11_USER_PIN"],
        ],
        env={**os.environ, "SOFTHSM2_CONF": env["SOFTHSM2_CONF"]},
        capture_output=True,
        timeout=60,
        check=True,
    )
    _VAULT_ENV.update(vault_env)
    return env


VAULT_TOKEN = "portal-core-other-operator"
_VAULT_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def other_kms(hsm_env: dict[str, str]) -> Iterator[object]:
    """A ``Pkcs11Kms`` on a second token of its own PIN: the HSM of another operator, whose
    keys the session's ``kms`` cannot use."""
    from portal_core.kms import Pkcs11Kms

    with Pkcs11Kms.from_env(_VAULT_ENV) as instance:
        yield instance


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
