"""PRF mode and the device-side key storage: the key wrapped on the device under the
passkey's PRF output, the enclave holding only the wrapped value, the PRF output never
sent to it."""

from __future__ import annotations

import json
import os
from typing import Any, TypedDict

import pytest

from enclave_fixtures import (  # noqa: F401 - fixtures
    assertion,
    authenticator_fixture,
    clock_fixture,
    enclave_db_fixture,
    enclave_fixture,
    enclave_store_fixture,
    register,
)
from portal_core import envelope
from portal_core.enclave import (
    KeyMode,
    KeyNotStored,
    PasskeyEnclave,
    PasskeyKeyStorage,
    PrfUnavailable,
    passkey_storage,
)
from portal_core.enclave.prf import PRF_KEY_ID, split_prf_output, unwrap_key, wrap_key
from portal_core.exceptions import DecryptFailed
from webauthn_authenticator import SoftAuthenticator, b64url, prf_eval

KEY = os.urandom(32)


class Ids(TypedDict):
    """What a PRF-wrapped key is bound to (the keyword arguments of wrap_key/unwrap_key)."""

    user: str
    credential_id: bytes
    slot: str


IDS: Ids = {"user": "alice", "credential_id": b"cred", "slot": "w.b"}


class Recording:
    """The enclave behind a recorder of everything the device sends it (as a network tap
    on the future HTTP API would see it)."""

    def __init__(self, enclave: PasskeyEnclave) -> None:
        self.enclave = enclave
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.enclave, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.sent.append(json.dumps([name, args, kwargs], default=lambda b: bytes(b).hex()))
            return method(*args, **kwargs)

        return call


# -- the helpers --------------------------------------------------------------------------------


def test_wrap_and_unwrap() -> None:
    prf = os.urandom(32)
    wrapped = wrap_key(prf, KEY, **IDS)
    assert envelope.inspect(wrapped)["key_id"] == PRF_KEY_ID
    assert KEY not in wrapped
    assert unwrap_key(prf, wrapped, **IDS) == KEY
    with pytest.raises(DecryptFailed):
        unwrap_key(os.urandom(32), wrapped, **IDS)
    others: list[Ids] = [
        {**IDS, "user": "bob"},
        {**IDS, "credential_id": b"other"},
        {**IDS, "slot": "w.c"},
    ]
    for ids in others:
        with pytest.raises(DecryptFailed):
            unwrap_key(prf, wrapped, **ids)
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(DecryptFailed):
        unwrap_key(prf, bytes(tampered), **IDS)
    with pytest.raises(ValueError, match="at least 32"):
        wrap_key(b"short", KEY, **IDS)


def test_split_prf_output() -> None:
    output = os.urandom(32)
    response: dict[str, Any] = {
        "id": "x",
        "clientExtensionResults": {
            "prf": {"enabled": True, "results": {"first": b64url(output)}},
            "hmacGetSecret": {"output1": "zz"},
            "credProps": {"rk": True},
        },
    }
    sendable, kept = split_prf_output(response)
    assert kept == output
    assert sendable["clientExtensionResults"] == {
        "prf": {"enabled": True},
        "credProps": {"rk": True},
    }
    assert response["clientExtensionResults"]["prf"]["results"]  # the input is left as it was
    assert split_prf_output({"id": "x"}) == ({"id": "x"}, None)


# -- PRF mode through the enclave ---------------------------------------------------------------


def test_prf_mode_round_trip(enclave: PasskeyEnclave, enclave_store) -> None:
    device = SoftAuthenticator()
    tap = Recording(enclave)
    storage = PasskeyKeyStorage(tap, device, "alice", "w1.b1", mode=KeyMode.PRF)
    assert storage.validate_operations()  # registers the passkey
    storage.write(KEY)
    assert storage.read() == KEY
    # Each login was begun for what it was spent on: the write, then the read, of its slot.
    logins = [json.loads(c) for c in tap.sent if json.loads(c)[0] == "begin_login"]
    assert logins == [
        ["begin_login", ["alice"], {"operation": "write", "slot": "w1.b1"}],
        ["begin_login", ["alice"], {"operation": "read", "slot": "w1.b1"}],
    ]
    # The PRF output was computed on the device, the same for every login...
    (credential,) = enclave_store.list_credentials("alice")
    output = prf_eval(device.credentials[credential.credential_id].cred_random, credential.prf_salt)
    assert device.last_prf_output == output
    # ...and never sent: not in any call to the enclave, not in the store.
    sent = "\n".join(tap.sent)
    assert output.hex() not in sent and b64url(output) not in sent
    assert KEY.hex() not in sent and b64url(KEY) not in sent
    data = open(enclave_store.path, "rb").read() + open(f"{enclave_store.path}-wal", "rb").read()
    assert output not in data and KEY not in data
    record = enclave_store.get_key("alice", credential.credential_id, "w1.b1")
    assert record.mode is KeyMode.PRF


def test_prf_mode_without_prf_support(enclave: PasskeyEnclave, enclave_store) -> None:
    device = SoftAuthenticator(prf=False)
    storage = PasskeyKeyStorage(enclave, device, "alice", "w1.b1", mode="prf")
    storage.register()
    assert not enclave.credentials("alice")[0].prf_enabled
    with pytest.raises(PrfUnavailable, match="PRF output"):
        storage.write(KEY)
    (credential,) = enclave_store.list_credentials("alice")
    assert enclave_store.get_key("alice", credential.credential_id, "w1.b1") is None


def test_prf_output_differs_per_credential(enclave: PasskeyEnclave) -> None:
    phone, laptop = SoftAuthenticator(), SoftAuthenticator()
    register(enclave, phone, "alice")
    register(enclave, laptop, "alice")
    _, first = assertion(enclave, phone, "alice", "read")
    _, again = assertion(enclave, phone, "alice", "read")
    _, other = assertion(enclave, laptop, "alice", "read")
    assert first == again
    assert first is not None and other is not None and first != other


# -- server mode through the storage ---------------------------------------------------------------


def test_server_mode_storage(enclave: PasskeyEnclave) -> None:
    device = SoftAuthenticator()
    make = passkey_storage(enclave, device, "alice")
    storage = make("w1.b1")
    assert storage.validate_operations()
    assert storage.validate_operations()  # the second check registers nothing new
    assert len(enclave.credentials("alice")) == 1
    storage.write(KEY)
    assert make("w1.b1").read() == KEY
    with pytest.raises(KeyNotStored):
        make("w1.b2").read()
    storage.delete()
    storage.delete()  # already gone: no error
    with pytest.raises(KeyNotStored):
        storage.read()
    assert "alice" in repr(storage) and KEY.hex() not in repr(storage)
