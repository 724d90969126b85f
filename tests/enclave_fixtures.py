"""Shared set-up of the enclave tests: a store in a temporary file, a clock the tests move,
a passkey enclave and a PIN vault on the session's SoftHSM token (``kms`` fixture), and
helpers that run a ceremony with the software authenticator.

Test modules import the fixtures they use (``from enclave_fixtures import
enclave_fixture``); a fixture's name is the one without ``_fixture``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal_core.enclave import (
    DEFAULT_SLOT,
    CredentialInfo,
    LoginOperation,
    PasskeyEnclave,
    PinVault,
    SqliteEnclaveStore,
)
from portal_core.enclave.prf import split_prf_output
from portal_core.kms.contract import KeyedSealingKms
from webauthn_authenticator import SoftAuthenticator

RP_ID = "example.com"
ORIGIN = "https://example.com"
# An Android app's origin: base64url of the SHA-256 of its signing certificate.
ANDROID_ORIGIN = "android:apk-key-hash:Mz4TDZe3NRIi2T9BKGbP2u2ZBZVcIOEsEyLb-J9MP0U"
# Who runs the tests' vaults.
OPERATOR = "custodian-test"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="enclave_db")
def enclave_db_fixture(tmp_path: Path) -> Path:
    return tmp_path / "enclave.db"


@pytest.fixture(name="enclave_store")
def enclave_store_fixture(enclave_db: Path) -> Iterator[SqliteEnclaveStore]:
    with SqliteEnclaveStore(enclave_db, timeout=60.0) as store:
        yield store


@pytest.fixture(name="enclave")
def enclave_fixture(
    kms: KeyedSealingKms, key_name: str, enclave_store: SqliteEnclaveStore, clock: Clock
) -> PasskeyEnclave:
    return PasskeyEnclave(
        kms,
        enclave_store,
        rp_id=RP_ID,
        rp_name="Example",
        origins=[ORIGIN, ANDROID_ORIGIN],
        key_name=key_name,
        clock=clock,
    )


@pytest.fixture(name="vault")
def vault_fixture(
    kms: KeyedSealingKms, key_name: str, enclave_store: SqliteEnclaveStore, clock: Clock
) -> PinVault:
    return PinVault(
        kms, enclave_store, operator=OPERATOR, key_name=key_name, max_tries=10, clock=clock
    )


@pytest.fixture(name="authenticator")
def authenticator_fixture() -> SoftAuthenticator:
    return SoftAuthenticator()


def register(
    enclave: PasskeyEnclave, auth: SoftAuthenticator, user: str, **overrides: Any
) -> CredentialInfo:
    """Registers a new passkey of ``auth`` for ``user``."""
    options = enclave.begin_registration(user)
    response, _ = split_prf_output(auth.create(options, **overrides))
    return enclave.finish_registration(user, response)


def assertion(
    enclave: PasskeyEnclave,
    auth: SoftAuthenticator,
    user: str,
    operation: LoginOperation | str,
    *,
    slot: str = DEFAULT_SLOT,
    **overrides: Any,
) -> tuple[dict[str, Any], bytes | None]:
    """A fresh login challenge for ``operation`` on ``slot``, answered by ``auth``: the
    response a client sends (PRF output removed) and the PRF output it keeps."""
    options = enclave.begin_login(user, operation=operation, slot=slot)
    return split_prf_output(auth.get(options, **overrides))


# -- work done in other processes (spawned: module-level functions) ----------------------------


def guess_in_process(
    hsm_env: dict[str, str],
    db_path: str,
    key_name: str,
    slot: str,
    owner: str,
    access_keys: list[bytes],
    start_at: float,
) -> list[str]:
    """Guesses ``access_keys`` against ``owner``'s ``slot`` from a process of its own (its
    own HSM login and store connection), starting at ``start_at``; the outcome of each
    guess."""
    import os
    import time

    from portal_core.enclave import SecretDestroyed, WrongAccessKey
    from portal_core.kms import Pkcs11Kms

    os.environ["SOFTHSM2_CONF"] = hsm_env["SOFTHSM2_CONF"]
    outcomes = []
    with Pkcs11Kms.from_env(hsm_env) as kms, SqliteEnclaveStore(db_path, timeout=60) as store:
        vault = PinVault(kms, store, operator=OPERATOR, key_name=key_name)
        time.sleep(max(0.0, start_at - time.time()))
        for access_key in access_keys:
            try:
                vault.release(slot, access_key, owner=owner)
                outcomes.append("released")
            except WrongAccessKey:
                outcomes.append("wrong")
            except SecretDestroyed as e:
                outcomes.append("destroyed-last" if e.last_try else "destroyed")
    return outcomes


def crash_in_process(
    hsm_env: dict[str, str],
    db_path: str,
    key_name: str,
    slot: str,
    owner: str,
    access_key: bytes,
    step: str,
) -> None:
    """Tries ``access_key`` and kills the process at checkpoint ``step`` (no cleanup, no
    answer), as a crash or a killed server would."""
    import os

    from portal_core.kms import Pkcs11Kms

    os.environ["SOFTHSM2_CONF"] = hsm_env["SOFTHSM2_CONF"]

    def die(name: str) -> None:
        if name == step:
            os._exit(17)

    kms = Pkcs11Kms.from_env(hsm_env)
    store = SqliteEnclaveStore(db_path, timeout=60)
    vault = PinVault(kms, store, operator=OPERATOR, key_name=key_name, checkpoint=die)
    vault.release(slot, access_key, owner=owner)
    os._exit(0)  # not reached when the checkpoint fires
