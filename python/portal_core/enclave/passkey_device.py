"""The device's side of passkey-gated keys: a key storage for the ``PASSKEY`` backup method.

Two seams, each one interface:

* :class:`PasskeyEnclaveApi`: the only way the device reaches the enclave; each method is
  one future HTTP endpoint (named in its docstring), ``user`` standing for the caller's
  session. :class:`~portal_core.enclave.passkey.PasskeyEnclave` implements it in-process.
  What crosses it: WebAuthn options and responses (public, signed values) and the key, in
  ``SERVER`` mode, or only the device-wrapped key in ``PRF`` mode. The PRF output never
  crosses it: :func:`~portal_core.enclave.prf.split_prf_output` removes it first.
* :class:`PasskeyDevice`: the platform's WebAuthn client (``navigator.credentials`` in a
  browser, the platform APIs in an app), which shows the user the passkey prompt.

:class:`PasskeyKeyStorage` offers the backup flows' storage interface (``read()``,
``write(key)``, ``delete()``, ``validate_operations()``) over both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from portal_core.enclave._common import DEFAULT_SLOT, check_slot, check_user
from portal_core.enclave.errors import PrfUnavailable
from portal_core.enclave.passkey import CredentialInfo, PasskeyEnclave
from portal_core.enclave.prf import split_prf_output, unwrap_key, wrap_key
from portal_core.enclave.records import KeyMode, LoginOperation

__all__ = [
    "PasskeyDevice",
    "PasskeyEnclaveApi",
    "PasskeyKeyStorage",
    "passkey_storage",
]


@runtime_checkable
class PasskeyEnclaveApi(Protocol):
    """The device's interface to the enclave (one method per HTTP endpoint)."""

    def begin_registration(self, user: str) -> dict[str, Any]:
        """``POST /v1/enclave/passkeys/registration``: creation options."""
        ...

    def finish_registration(self, user: str, response: Any) -> CredentialInfo:
        """``PUT /v1/enclave/passkeys/registration``: registers the new passkey."""
        ...

    def begin_login(
        self, user: str, *, operation: LoginOperation | str, slot: str = ...
    ) -> dict[str, Any]:
        """``POST /v1/enclave/passkeys/login`` (with the operation, ``read`` or ``write``,
        and the slot): request options for one login, whose assertion only that operation
        on that slot accepts."""
        ...

    def finish_login_read(self, user: str, response: Any, *, slot: str = ...) -> bytes:
        """``POST /v1/enclave/keys/{slot}/read``: the key (or wrapped key) for the assertion."""
        ...

    def finish_login_write(
        self, user: str, response: Any, key: Any, *, slot: str = ..., mode: KeyMode | str = ...
    ) -> None:
        """``PUT /v1/enclave/keys/{slot}``: stores the key (or wrapped key)."""
        ...

    def has_credentials(self, user: str) -> bool:
        """``GET /v1/enclave/passkeys``: whether the user has a passkey."""
        ...

    def delete_key(self, user: str, *, slot: str = ...) -> int:
        """``DELETE /v1/enclave/keys/{slot}``."""
        ...


@runtime_checkable
class PasskeyDevice(Protocol):
    """The platform's WebAuthn client. Both calls prompt the user and return the
    credential's ``toJSON()`` form (WebAuthn L3 §5.1), ``clientExtensionResults`` included
    (with the PRF output when one was evaluated)."""

    def create(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``navigator.credentials.create({publicKey: options})``."""
        ...

    def get(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``navigator.credentials.get({publicKey: options})``."""
        ...


class PasskeyKeyStorage:
    """One key slot held by the enclave behind the user's passkey.

    ``mode``: ``SERVER`` (the enclave holds the key) or ``PRF`` (the device wraps it
    under its passkey's PRF output first; the enclave holds the wrapped value only).
    Every ``read`` and ``write`` is one passkey prompt.
    """

    def __init__(
        self,
        enclave: PasskeyEnclaveApi,
        device: PasskeyDevice,
        user: str,
        slot: str = DEFAULT_SLOT,
        *,
        mode: KeyMode | str = KeyMode.SERVER,
    ) -> None:
        self.enclave = enclave
        self.device = device
        self.user = check_user(user)
        self.slot = check_slot(slot)
        self.mode = KeyMode(mode)

    def __repr__(self) -> str:
        return (
            f"PasskeyKeyStorage(user={self.user!r}, slot={self.slot!r}, mode={self.mode.value!r})"
        )

    def register(self) -> CredentialInfo:
        """Creates and registers a new passkey for the user (one prompt)."""
        options = self.enclave.begin_registration(self.user)
        response, _ = split_prf_output(self.device.create(options))
        return self.enclave.finish_registration(self.user, response)

    def _login(self, operation: LoginOperation) -> tuple[dict[str, Any], bytes, bytes | None]:
        """One assertion, for ``operation`` on this slot: the response to send, its
        credential id, and the PRF output (kept here)."""
        options = self.enclave.begin_login(self.user, operation=operation, slot=self.slot)
        response, prf_output = split_prf_output(self.device.get(options))
        credential_id = PasskeyEnclave.credential_id_of(response)
        if self.mode is KeyMode.PRF and prf_output is None:
            raise PrfUnavailable(
                "PRF mode needs the passkey's PRF output, and the authenticator returned "
                "none: use an authenticator with the prf (hmac-secret) extension, or SERVER mode"
            )
        return response, credential_id, prf_output

    def validate_operations(self) -> bool:
        """Registers a passkey if the user has none, so that a backup fails here, before
        any share work, if the user cannot create one. Errors propagate with their cause."""
        if not self.enclave.has_credentials(self.user):
            self.register()
        return True

    def read(self) -> bytes:
        """The key (one passkey prompt).

        Raises:
            NoValidBackup subclasses (KeyNotStored, NoCredentials); the enclave's refusals;
            DecryptFailed: a PRF-wrapped key that does not open with this passkey.
        """
        response, credential_id, prf_output = self._login(LoginOperation.READ)
        value = self.enclave.finish_login_read(self.user, response, slot=self.slot)
        if self.mode is KeyMode.SERVER:
            return value
        assert prf_output is not None
        return unwrap_key(
            prf_output, value, user=self.user, credential_id=credential_id, slot=self.slot
        )

    def write(self, key: bytes) -> None:
        """Stores the key (one passkey prompt; wrapped on the device first in PRF mode)."""
        response, credential_id, prf_output = self._login(LoginOperation.WRITE)
        value = key
        if self.mode is KeyMode.PRF:
            assert prf_output is not None
            value = wrap_key(
                prf_output, key, user=self.user, credential_id=credential_id, slot=self.slot
            )
        self.enclave.finish_login_write(self.user, response, value, slot=self.slot, mode=self.mode)

    def delete(self) -> None:
        self.enclave.delete_key(self.user, slot=self.slot)


def passkey_storage(
    enclave: PasskeyEnclaveApi,
    device: PasskeyDevice,
    user: str,
    *,
    mode: KeyMode | str = KeyMode.SERVER,
) -> Callable[[str], PasskeyKeyStorage]:
    """A storage factory (one :class:`PasskeyKeyStorage` per key slot) for the backup
    flows: ``WalletClient(..., storages={"PASSKEY": passkey_storage(...)})``."""
    check_user(user)
    mode = KeyMode(mode)

    def make(slot: str) -> PasskeyKeyStorage:
        return PasskeyKeyStorage(enclave, device, user, slot, mode=mode)

    return make
