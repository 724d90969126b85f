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

Every slot belongs to an owner, the caller who enrolled it, and every call names its
caller. A caller who is not the slot's owner is told the slot does not exist, and changes
nothing: the owner is part of the store's lookup in the very transaction that spends the
try, so a stranger who learns a slot id (it is in the cipher text's header and in the
logs) cannot spend its tries and destroy the secret. The owner is also bound into the
sealed record's KMS context, so rewriting the owner column does not hand the slot over:
the record then no longer opens. Records written before owners existed (owner ``""``)
are claimed by the first caller who presents the right access key.

``params``: an opaque public value the client stores with the record at enrolment (a
digest of its Argon2id salt and costs) and reads back with :meth:`PinVault.status`, to
check a cipher text's header before it derives anything from the PIN.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from portal_core import kdf
from portal_core.enclave._common import check_slot, check_user, open_sealed
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
from portal_core.kms import KeyedSealingKms

__all__ = ["DEFAULT_MAX_TRIES", "MAX_PARAMS_LEN", "MAX_TRIES_LIMIT", "PinVault", "VaultStatus"]

log = logging.getLogger("portal_core.enclave")

DEFAULT_MAX_TRIES = 10
MAX_TRIES_LIMIT = 255  # as SVR2's max_tries (1..255)
MAX_PARAMS_LEN = 256
SECRET_LEN = 32
_MIN_ACCESS_KEY = 16
_MAX_ACCESS_KEY = 64
_RECORD_VERSION = 1
_PURPOSE = "portal-core enclave pin vault"
_VERIFIER_INFO = b"portal-core enclave vault v1: access-key verifier"


@dataclass(frozen=True)
class VaultStatus:
    """What may be said about a slot to its owner without its access key. ``params``: the
    public value stored at enrolment (kept by ``replace``)."""

    slot: str
    tries_left: int
    max_tries: int
    destroyed: bool
    params: bytes


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


def _params(value: Any) -> bytes:
    if isinstance(value, str):
        raise TypeError("params must be bytes, not str")
    try:
        params = bytes(memoryview(value).cast("B"))
    except TypeError:
        raise TypeError(f"params must be bytes, not {type(value).__name__}") from None
    if len(params) > MAX_PARAMS_LEN:
        raise ValueError(f"params must be 0 to {MAX_PARAMS_LEN} bytes, not {len(params)}")
    return params


def _owner(owner: object) -> str:
    return check_user(owner, what="the vault owner")


def _not_found(slot: str, owner: str) -> VaultSlotNotFound:
    # One message for a slot that does not exist and for another owner's slot: a caller
    # cannot tell them apart.
    return VaultSlotNotFound(
        f"vault slot {slot!r} has no record of owner {owner!r} (never enrolled by this "
        "owner, or deleted)"
    )


class PinVault:
    """Guess-limited secrets, each owned by the caller who enrolled it (the backup flows'
    :class:`~portal_core.backup.password.GuessLimitedVault`).

    ``kms``: seals the records under the KEK ``key_name`` (created on first start if
    missing). ``store``: an :class:`~portal_core.enclave.store.EnclaveStore`.
    ``operator``: the configured identity of whoever runs this vault (1 to 256 printable
    characters), kept as :attr:`operator`; the backup flows compare it with the parties
    that keep the backup.
    ``max_tries``: the default limit (1 to 255). ``clock``: seconds since the epoch.
    ``checkpoint``: called with ``"try-committed"`` once a try is durably spent and before
    it is evaluated, and with ``"answer-ready"`` just before the answer is returned or
    raised; tests make it raise to show that a crash there still counts the try.

    Every call names its caller (``owner``, checked like a user id): a slot answers only
    the owner who enrolled it, and looks missing to everyone else.

    Thread-safe, and safe across processes sharing the store.
    """

    def __init__(
        self,
        kms: KeyedSealingKms,
        store: EnclaveStore,
        *,
        operator: str,
        key_name: str = "enclave-vault",
        max_tries: int = DEFAULT_MAX_TRIES,
        clock: Callable[[], float] = time.time,
        checkpoint: Callable[[str], None] | None = None,
    ) -> None:
        self.operator = check_user(operator, what="the vault operator")
        self.max_tries = self._check_max_tries(max_tries)
        self.key_name = key_name
        self._kms = kms
        # One rule for every sealing component: its key-encryption key is created on first
        # start (and a second process creating it at once is no error).
        kms.ensure_key(key_name)
        self._store = store
        self._clock = clock
        self._checkpoint = checkpoint or (lambda _step: None)

    def __repr__(self) -> str:
        return (
            f"PinVault(operator={self.operator!r}, key_name={self.key_name!r}, "
            f"max_tries={self.max_tries})"
        )

    @staticmethod
    def _check_max_tries(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("max_tries must be an int")
        if not 1 <= value <= MAX_TRIES_LIMIT:
            raise ValueError(f"max_tries must be 1 to {MAX_TRIES_LIMIT}")
        return value

    @staticmethod
    def _context(slot: str, generation: int, owner: str) -> dict[str, str]:
        context = {"purpose": _PURPOSE, "slot": slot, "generation": str(generation)}
        # A record written before owners existed was sealed without one; every record
        # sealed since has its owner bound, so a rewritten owner column does not open.
        if owner:
            context["owner"] = owner
        return context

    @staticmethod
    def _verifier(slot: str, access_key: bytes) -> bytes:
        # Bound to the slot, so a verifier copied between records does not match there.
        return kdf.hkdf_sha256(access_key, salt=slot.encode("utf-8"), info=_VERIFIER_INFO)

    def _seal(
        self, slot: str, generation: int, owner: str, secret: bytes, access_key: bytes
    ) -> bytes:
        # The verifier is sealed with the secret rather than stored beside it: whoever
        # copies the store cannot test PIN guesses against it offline without the HSM.
        plaintext = bytes([_RECORD_VERSION]) + secret + self._verifier(slot, access_key)
        return self._kms.seal(
            self.key_name, plaintext, context=self._context(slot, generation, owner)
        )

    def _evaluate(self, record: VaultRecord, access_key: bytes) -> bytes | None:
        """The secret if ``access_key`` is right, else None (constant-time comparison)."""
        assert record.sealed is not None
        plaintext = open_sealed(
            self._kms,
            record.sealed,
            self._context(record.slot, record.generation, record.owner),
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

    def enroll(
        self,
        slot: str,
        access_key: Any,
        *,
        owner: str,
        max_tries: int | None = None,
        params: Any = b"",
    ) -> bytes:
        """Creates the slot's random 32-byte secret for ``owner``, released for
        ``access_key`` at most ``max_tries`` wrong guesses in a row; returns it.
        ``params`` (0 to 256 bytes, public) is stored with the record and returned by
        :meth:`status`.

        Raises:
            VaultSlotExists: the slot has a record (live or destroyed, whoever owns it): a
                record is never overwritten without its access key (see :meth:`replace`).
            TypeError / ValueError: a bad slot, owner, access key, limit or params.
        """
        check_slot(slot)
        _owner(owner)
        access = _access_key(access_key)
        limit = self.max_tries if max_tries is None else self._check_max_tries(max_tries)
        public = _params(params)
        secret = secrets.token_bytes(SECRET_LEN)
        now = self._clock()
        record = VaultRecord(
            slot=slot,
            owner=owner,
            sealed=self._seal(slot, 1, owner, secret, access),
            tries_left=limit,
            max_tries=limit,
            generation=1,
            created_at=now,
            updated_at=now,
            params=public,
        )
        if not self._store.vault_create(record):
            raise VaultSlotExists(
                f"vault slot {slot!r} already has a record: it cannot be enrolled again (use "
                "replace() with its current PIN, or delete() it first, which destroys the "
                "secret it holds)"
            )
        log.debug("vault slot %r enrolled (%d tries)", slot, limit)
        return secret

    def release(self, slot: str, access_key: Any, *, owner: str) -> bytes:
        """The slot's secret, for its owner and the right access key. Every call by the
        owner spends a try first; a right key restores the tries, a wrong one keeps it
        spent, and the last wrong one destroys the secret. A call by anyone else spends
        nothing and finds no slot.

        A record written before owners existed is open to every caller until the first
        right access key: that call makes its caller the owner.

        Raises:
            WrongAccessKey: wrong access key (a ``DecryptFailed``); ``tries_left`` says how
                many remain.
            SecretDestroyed: no tries were left, or this was the last and it was wrong (a
                ``NoValidBackup``).
            VaultSlotNotFound: no record of ``owner`` for the slot: none, or another
                owner's (a ``NoValidBackup``); nothing was spent.
            SealedRecordInvalid: the record was altered or moved (its owner rewritten,
                among others).
            portal_core.kms errors: the HSM failed (the try stays spent).
        """
        check_slot(slot)
        _owner(owner)
        return self._release(slot, _access_key(access_key), owner)[0]

    def _release(self, slot: str, access: bytes, owner: str) -> tuple[bytes, int]:
        """The secret and the generation of the record it is now in."""
        record = self._store.vault_take_try(slot, owner, self._clock())
        if record is None:
            raise _not_found(slot, owner)
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
            generation = record.generation
            if not record.owner:
                # An unclaimed record, from before owners existed: the first right access
                # key makes its caller the owner. Same secret, sealed again with the owner
                # bound, at the next generation (compare-and-set on the one checked).
                sealed = self._seal(slot, generation + 1, owner, secret, access)
                if not self._store.vault_claim(slot, owner, generation, sealed, now):
                    self._changed_during_try(slot, owner)
                generation += 1
                log.info("vault slot %r: claimed by its first right access key", slot)
            elif not self._store.vault_reset_tries(slot, generation, now):
                self._changed_during_try(slot, owner)
            self._checkpoint("answer-ready")
            return secret, generation
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

    def _changed_during_try(self, slot: str, owner: str) -> NoReturn:
        """Raises the error for a right guess whose record moved on before the tries could
        be restored (or the record claimed)."""
        current = self._store.vault_get(slot)
        if current is None or current.destroyed:
            raise SecretDestroyed(
                f"the vault secret of slot {slot!r} was destroyed while this try was "
                "checked (its tries ran out, or it was deleted)"
            )
        if current.owner not in (owner, ""):
            # Claimed by another caller in the meantime: from now on, not this caller's.
            raise _not_found(slot, owner)
        raise VaultError(
            f"the vault record of slot {slot!r} was replaced while this try was checked: try again"
        )

    def delete(self, slot: str, *, owner: str) -> None:
        """Destroys ``owner``'s record of the slot (secret and tombstone). No error if
        there is none, and none if the slot is another owner's, which stays as it is: the
        two look the same to the caller."""
        check_slot(slot)
        if self._store.vault_delete(slot, _owner(owner)):
            log.debug("vault slot %r deleted", slot)

    # -- beyond the interface -------------------------------------------------------------

    def replace(
        self,
        slot: str,
        old_access_key: Any,
        new_access_key: Any,
        *,
        owner: str,
        max_tries: int | None = None,
    ) -> bytes:
        """A PIN change: checks ``old_access_key`` exactly as :meth:`release` does (it
        spends a try, and claims an unclaimed record), then replaces the secret with a new
        one released for ``new_access_key``; returns the new secret. The record keeps its
        owner and its params.

        Raises:
            As :meth:`release`; VaultError if the record changed concurrently.
        """
        check_slot(slot)
        _owner(owner)
        old = _access_key(old_access_key)
        new = _access_key(new_access_key)
        limit = self.max_tries if max_tries is None else self._check_max_tries(max_tries)
        _, generation = self._release(slot, old, owner)
        secret = secrets.token_bytes(SECRET_LEN)
        sealed = self._seal(slot, generation + 1, owner, secret, new)
        if not self._store.vault_replace(slot, owner, generation, sealed, limit, self._clock()):
            raise VaultError(
                f"the vault record of slot {slot!r} changed during the replacement: try again"
            )
        return secret

    def status(self, slot: str, *, owner: str) -> VaultStatus:
        """Tries left, the limit, whether the secret is destroyed, and the params stored
        at enrolment (no access key needed, nothing spent).

        Raises:
            VaultSlotNotFound: no record of ``owner`` for the slot (none, or another
                owner's).
        """
        check_slot(slot)
        _owner(owner)
        record = self._store.vault_get(slot)
        if record is None or record.owner not in (owner, ""):
            raise _not_found(slot, owner)
        return VaultStatus(
            slot, record.tries_left, record.max_tries, record.destroyed, bytes(record.params)
        )
