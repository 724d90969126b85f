"""No key, PIN, access key, vault secret or PRF output in any log line, error message or
repr the enclave produces, over successful flows and every kind of refusal."""

from __future__ import annotations

import base64
import logging
import os
import time

import pytest

from enclave_fixtures import (  # noqa: F401 - fixtures
    assertion,
    clock_fixture,
    enclave_db_fixture,
    enclave_fixture,
    enclave_store_fixture,
    register,
    vault_fixture,
)
from portal_core.enclave import (
    KeyMode,
    PasskeyEnclave,
    PasskeyKeyStorage,
    PinVault,
    VaultRecord,
    stretch_pin,
)
from portal_core.enclave.prf import unwrap_key
from portal_core.exceptions import PortalError
from webauthn_authenticator import SoftAuthenticator, b64url

FAST = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}


def forms(secret: bytes | str) -> set[str]:
    """The ways a secret could show up in text."""
    if isinstance(secret, str):
        return {secret}
    return {
        secret.hex(),
        b64url(secret),
        base64.b64encode(secret).decode(),
        repr(secret)[2:-1],
    }


def test_nothing_secret_escapes(
    enclave: PasskeyEnclave, vault: PinVault, enclave_store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="portal_core")
    key = os.urandom(32)
    pin = "482193"
    parts = stretch_pin(pin, b"s" * 16, **FAST)
    secrets_: list[bytes | str] = [key, pin, parts.access_key, parts.encryption_key]
    errors: list[PortalError] = []
    shown: list[object] = [enclave, vault, parts]

    def refused(call, *args, **kwargs) -> None:
        with pytest.raises(PortalError) as info:
            call(*args, **kwargs)
        errors.append(info.value)

    # Passkeys, server mode: register, write, read, and refusals around them.
    device = SoftAuthenticator()
    shown.append(register(enclave, device, "alice"))
    response, prf_output = assertion(enclave, device, "alice", "write")
    assert prf_output is not None
    secrets_.append(prf_output)
    enclave.finish_login_write("alice", response, key)
    refused(enclave.finish_login_read, "alice", response)  # reused challenge
    for overrides in ({"origin": "https://evil.example"}, {"uv": False}, {"sign_count": 0}):
        response, _ = assertion(enclave, device, "alice", "read", **overrides)
        refused(enclave.finish_login_read, "alice", response)
    refused(
        enclave.finish_login_read,
        "alice",
        device.get(enclave.begin_login("alice", operation="read")),
    )
    # An assertion made for a write, presented to read.
    response, _ = assertion(enclave, device, "alice", "write")
    refused(enclave.finish_login_read, "alice", response)
    response, _ = assertion(enclave, device, "alice", "read")
    assert enclave.finish_login_read("alice", response) == key
    (credential,) = enclave_store.list_credentials("alice")
    shown += [credential, enclave_store.get_key("alice", credential.credential_id, "default")]

    # Passkeys, PRF mode.
    storage = PasskeyKeyStorage(enclave, device, "alice", "w.prf", mode=KeyMode.PRF)
    storage.write(key)
    assert storage.read() == key
    shown.append(storage)
    refused(unwrap_key, os.urandom(32), b"not wrapped", user="alice", credential_id=b"c", slot="s")

    # The vault: enroll, wrong guesses, destruction, and after.
    secret = vault.enroll("w.pin", parts.access_key, owner="alice", max_tries=3, params=b"p")
    secrets_.append(secret)
    wrong = stretch_pin("000000", b"s" * 16, **FAST).access_key
    for _ in range(3):
        refused(vault.release, "w.pin", wrong, owner="alice")
    refused(vault.release, "w.pin", parts.access_key, owner="alice")
    refused(vault.enroll, "w.pin", parts.access_key, owner="alice")
    shown += [vault.status("w.pin", owner="alice"), enclave_store.vault_get("w.pin")]
    # A record from before owners existed, claimed by its first right access key; another
    # caller is refused before and after.
    legacy = os.urandom(32)
    secrets_.append(legacy)
    now = time.time()
    sealed = vault._seal("w.old", 1, "", legacy, parts.access_key)
    assert enclave_store.vault_create(VaultRecord("w.old", "", sealed, 3, 3, 1, now, now))
    refused(vault.release, "w.old", wrong, owner="mallory")
    assert vault.release("w.old", parts.access_key, owner="alice") == legacy
    refused(vault.release, "w.old", parts.access_key, owner="mallory")
    refused(vault.status, "w.old", owner="mallory")
    shown.append(enclave_store.vault_get("w.old"))

    texts = [record.getMessage() for record in caplog.records]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(obj) for obj in shown]
    # The test sees what it checks: log lines of each kind, and errors of each kind.
    assert any("registered" in t for t in texts)
    assert any("wrong try" in t for t in texts)
    assert any("secret destroyed" in t for t in texts)
    assert any("claimed" in t for t in texts)
    assert any("issued to write" in t for t in texts)
    assert len(errors) == 15
    for secret_value in secrets_:
        for form in forms(secret_value):
            for text in texts:
                assert form not in text, f"a secret appears in: {text[:80]}"
