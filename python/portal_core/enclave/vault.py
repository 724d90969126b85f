"""``PinVault``: a guess-limited secret per slot, after Signal's Secure Value Recovery
(SVR2; docs/vault.md).

The client stretches the PIN with Argon2id into an encryption key and an access key
(:func:`portal_core.enclave.pin.stretch_pin`) and sends only the access key. The vault
keeps, per slot, a random 32-byte secret and a verifier of the access key, sealed together
under an HSM KEK (the KMS) with the slot bound as context, and beside them a tries
counter. The right access key releases the secret; a wrong one spends a try; when the last
try is wrong, the sealed secret is deleted from the store. The client derives its backup
key from the encryption key *and* the secret, so the cipher text alone is useless to an
offline attacker: every guess has to go through the vault.

Every try is spent before it is evaluated: :meth:`EnclaveStore.vault_take_try`
decrements the counter in a serialised write transaction (``BEGIN IMMEDIATE`` on SQLite)
and commits it, synced to disk, and only then does the vault open the record and compare.
Concurrent guesses, from threads or processes, are serialised by that transaction, so they
cannot exceed the limit; a crash (or a dropped connection) at any point after it still
counts the try, so no one can retry until lucky by cutting the answer off.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal_core import kdf
from portal_core.enclave._common import SealingKms, check_slot, open_sealed
from portal_core.enclave.errors import (
    SealedRecordInvalid,
    SecretDestroyed,
    VaultError,
    VaultSlotExists,
    VaultSlotNotFound,
    WrongAccessKey,
)
from portal_core.enclave.records import VaultRecord
from portal_core.enclave.store import EnclaveStore

__all__ = ["DEFAULT_MAX_TRIES", "MAX_TRIES_LIMIT", "PinVault", "VaultStatus"]

log = logging.getLogger("portal_core.enclave")

DEFAULT_MAX_TRIES = 10
MAX_TRIES_LIMIT = 255  # as SVR2's max_tries (1..255)
SECRET_LEN = 32
_MIN_ACCESS_KEY = 16
_MAX_ACCESS_KEY = 64
_RECORD_VERSION = 1
_PURPOSE = "portal-core enclave pin vault"
_VERIFIER_INFO = b"portal-core enclave vault v1: access-key verifier"


@dataclass(frozen=True)
class VaultStatus:
    """What may be said about a slot without its access key."""

    slot: str
    tries_left: int
    max_tries: int
    destroyed: bool


def _access_key(value: Any) -> bytes:
    try:
        key = bytes(memoryview(value).cast("B"))
    except TypeError:
        raise TypeError(
            f"the access key must be a bytes-like object, not {type(value).__name__}"
        ) from None
    if not _MIN_ACCESS_KEY <= len(key) <= _MAX_ACCESS_KEY:
        raise ValueError(
            f"the access key must be {_MIN_ACCESS_KEY} to {_MAX_ACCESS_KEY} bytes (the "
            "Argon2id access half), not a PIN"
        )
    return key


class PinVault:
    """Guess-limited secrets (implements the backup flows'
    :class:`~portal_core.backup.password.GuessLimitedVault`).

    ``kms``: seals the records (the KEK ``key_name`` must exist in it). ``store``: an
    :class:`~portal_core.enclave.store.EnclaveStore`. ``max_tries``: the default limit
    (1 to 255). ``clock``: seconds since the epoch. ``checkpoint``: called with
    ``"try-committed"`` once a try is durably spent and before it is evaluated, and with
    ``"answer-ready"`` just before the answer is returned or raised; tests make it raise
    to show that a crash there still counts the try.

    Thread-safe, and safe across processes sharing the store.
    """

    def __init__(
        self,
        kms: SealingKms,
        store: EnclaveStore,
        *,
        key_name: str = "enclave-vault",
        max_tries: int = DEFAULT_MAX_TRIES,
        clock: Callable[[], float] = time.time,
        checkpoint: Callable[[str], None] | None = None,
    ) -> None:
        self.max_tries = self._check_max_tries(max_tries)
        self.key_name = key_name
        self._kms = kms
        self._store = store
        self._clock = clock
        self._checkpoint = checkpoint or (lambda _step: None)

    def __repr__(self) -> str:
        return f"PinVault(key_name={self.key_name!r}, max_tries={self.max_tries})"

    @staticmethod
    def _check_max_tries(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("max_tries must be an int")
        if not 1 <= value <= MAX_TRIES_LIMIT:
            raise ValueError(f"max_tries must be 1 to {MAX_TRIES_LIMIT}")
        return value

    @staticmethod
    def _context(slot: str, generation: int) -> dict[str, str]:
        return {"purpose": _PURPOSE, "slot": slot, "generation": str(generation)}

    @staticmethod
    def _verifier(slot: str, access_key: bytes) -> bytes:
        # Bound to the slot, so a verifier copied between records does not match there.
        return kdf.hkdf_sha256(access_key, salt=slot.encode("utf-8"), info=_VERIFIER_INFO)

    def _seal(self, slot: str, generation: int, secret: bytes, access_key: bytes) -> bytes:
        # The verifier is sealed with the secret rather than stored beside it: whoever
        # copies the store cannot test PIN guesses against it offline without the HSM.
        plaintext = bytes([_RECORD_VERSION]) + secret + self._verifier(slot, access_key)
        return self._kms.seal(self.key_name, plaintext, context=self._context(slot, generation))

    def _evaluate(self, record: VaultRecord, access_key: bytes) -> bytes | None:
        """The secret if ``access_key`` is right, else None (constant-time comparison)."""
        assert record.sealed is not None
        plaintext = open_sealed(
            self._kms,
            record.sealed,
            self._context(record.slot, record.generation),
            f"vault record of slot {record.slot!r}",
        )
        if len(plaintext) != 1 + SECRET_LEN + 32 or plaintext[0] != _RECORD_VERSION:
            raise SealedRecordInvalid(
                f"the vault record of slot {record.slot!r} has an unknown layout"
            )
        secret, verifier = plaintext[1 : 1 + SECRET_LEN], plaintext[1 + SECRET_LEN :]
        if hmac.compare_digest(verifier, self._verifier(record.slot, access_key)):
            return secret
        return None

    # -- the GuessLimitedVault interface -------------------------------------------------

    def enroll(self, slot: str, access_key: Any, *, max_tries: int | None = None) -> bytes:
        """Creates the slot's random 32-byte secret, released for ``access_key`` at most
        ``max_tries`` wrong guesses in a row; returns it.

        Raises:
            VaultSlotExists: the slot has a record (live or destroyed): a record is never
                overwritten without its access key (see :meth:`replace`).
            TypeError / ValueError: a bad slot, access key or limit.
        """
        check_slot(slot)
        access = _access_key(access_key)
        limit = self.max_tries if max_tries is None else self._check_max_tries(max_tries)
        secret = secrets.token_bytes(SECRET_LEN)
        now = self._clock()
        record = VaultRecord(
            slot=slot,
            sealed=self._seal(slot, 1, secret, access),
            tries_left=limit,
            max_tries=limit,
            generation=1,
            created_at=now,
            updated_at=now,
        )
        if not self._store.vault_create(record):
            raise VaultSlotExists(
                f"vault slot {slot!r} already has a record: it cannot be enrolled again (use "
                "replace() with its current PIN, or delete() it first, which destroys the "
                "secret it holds)"
            )
        log.debug("vault slot %r enrolled (%d tries)", slot, limit)
        return secret

    def release(self, slot: str, access_key: Any) -> bytes:
        """The slot's secret, for the right access key. Every call spends a try first; a
        right key restores the tries, a wrong one keeps it spent, and the last wrong one
        destroys the secret.

        Raises:
            WrongAccessKey: wrong access key (a ``DecryptFailed``); ``tries_left`` says how
                many remain.
            SecretDestroyed: no tries were left, or this was the last and it was wrong (a
                ``NoValidBackup``).
            VaultSlotNotFound: no record for the slot (a ``NoValidBackup``).
            SealedRecordInvalid: the record was altered or moved.
            portal_core.kms errors: the HSM failed (the try stays spent).
        """
        return self._release(check_slot(slot), _access_key(access_key))[0]

    def _release(self, slot: str, access: bytes) -> tuple[bytes, int]:
        record = self._store.vault_take_try(slot, self._clock())
        if record is None:
            raise VaultSlotNotFound(
                f"vault slot {slot!r} has no record (never enrolled, or deleted)"
            )
        if record.destroyed:
            raise SecretDestroyed(
                f"the vault secret of slot {slot!r} is destroyed: all {record.max_tries} tries "
                "were used, and what it protected cannot be recovered"
            )
        # From here on the try is durably spent, whatever happens next.
        self._checkpoint("try-committed")
        secret = self._evaluate(record, access)
        now = self._clock()
        if secret is not None:
            if not self._store.vault_reset_tries(slot, record.generation, now):
                current = self._store.vault_get(slot)
                if current is None or current.destroyed:
                    raise SecretDestroyed(
                        f"the vault secret of slot {slot!r} was destroyed while this try was "
                        "checked (its tries ran out)"
                    )
                raise VaultError(
                    f"the vault record of slot {slot!r} was replaced while this try was "
                    "checked: try again"
                )
            self._checkpoint("answer-ready")
            return secret, record.generation
        if record.tries_left == 0:
            self._store.vault_destroy(slot, record.generation, now)
            log.warning("vault slot %r: last try wrong, secret destroyed", slot)
            self._checkpoint("answer-ready")
            raise SecretDestroyed(
                f"wrong PIN or password, and it was the last of {record.max_tries} tries: the "
                f"vault secret of slot {slot!r} is destroyed, and what it protected cannot be "
                "recovered",
                last_try=True,
            )
        log.info("vault slot %r: wrong try, %d left", slot, record.tries_left)
        self._checkpoint("answer-ready")
        raise WrongAccessKey(slot, record.tries_left)

    def delete(self, slot: str) -> None:
        """Destroys the slot's record (secret and tombstone); no error if there is none."""
        if self._store.vault_delete(check_slot(slot)):
            log.debug("vault slot %r deleted", slot)

    # -- beyond the interface -------------------------------------------------------------

    def replace(
        self,
        slot: str,
        old_access_key: Any,
        new_access_key: Any,
        *,
        max_tries: int | None = None,
    ) -> bytes:
        """A PIN change: checks ``old_access_key`` exactly as :meth:`release` does (it
        spends a try), then replaces the secret with a new one released for
        ``new_access_key``; returns the new secret.

        Raises:
            As :meth:`release`; VaultError if the record changed concurrently.
        """
        check_slot(slot)
        old = _access_key(old_access_key)
        new = _access_key(new_access_key)
        limit = self.max_tries if max_tries is None else self._check_max_tries(max_tries)
        _, generation = self._release(slot, old)
        secret = secrets.token_bytes(SECRET_LEN)
        sealed = self._seal(slot, generation + 1, secret, new)
        if not self._store.vault_replace(slot, generation, sealed, limit, self._clock()):
            raise VaultError(
                f"the vault record of slot {slot!r} changed during the replacement: try again"
            )
        return secret

    def status(self, slot: str) -> VaultStatus:
        """Tries left and whether the secret is destroyed (no access key needed).

        Raises:
            VaultSlotNotFound: no record for the slot.
        """
        record = self._store.vault_get(check_slot(slot))
        if record is None:
            raise VaultSlotNotFound(f"vault slot {slot!r} has no record")
        return VaultStatus(slot, record.tries_left, record.max_tries, record.destroyed)
