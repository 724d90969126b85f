"""The interface the enclave's persistence implements (SQLite here; others may follow).

Two operations carry the enclave's security and must be atomic in any implementation:

* :meth:`EnclaveStore.take_challenge` reads and deletes a challenge in one step, so two
  concurrent finishes of the same ceremony cannot both obtain it (single use).
* :meth:`EnclaveStore.vault_take_try` decrements a vault record's tries counter, durably,
  in one serialised transaction, *before* the caller evaluates the try: concurrent wrong
  guesses cannot exceed the limit, and a crash after it still counts the try. The record's
  owner is checked in that same transaction: a caller who does not own the slot finds
  nothing, and spends nothing.

Times are passed in by the caller (seconds since the epoch): the store has no clock, so
tests can move time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from portal_core.enclave.records import (
    ChallengeRecord,
    CredentialRecord,
    KeyRecord,
    UserRecord,
    VaultRecord,
)

__all__ = ["EnclaveStore"]


@runtime_checkable
class EnclaveStore(Protocol):
    """Durable enclave records: users, credentials, challenges, passkey-gated keys and
    vault records.

    Raises (every method): :class:`~portal_core.enclave.errors.EnclaveStoreError` when the
    database fails.
    """

    @property
    def schema_version(self) -> int:
        """The enclave schema version the store is at."""
        ...

    def close(self) -> None:
        """Closes the connections; further calls raise ``EnclaveStoreError``."""
        ...

    # -- users ----------------------------------------------------------------------------

    def ensure_user(self, user_id: str, user_handle: bytes, now: float) -> UserRecord:
        """The user's record, created with ``user_handle`` if it does not exist yet (an
        existing user keeps the handle it has)."""
        ...

    def get_user(self, user_id: str) -> UserRecord | None: ...

    # -- challenges -----------------------------------------------------------------------

    def add_challenge(self, record: ChallengeRecord, *, purge_before: float) -> None:
        """Stores a new challenge, and deletes every challenge that expired before
        ``purge_before``."""
        ...

    def take_challenge(self, challenge_hash: bytes) -> ChallengeRecord | None:
        """Atomically returns and deletes the challenge, or returns None if there is none
        (never issued, or already taken). Expiry is the caller's check."""
        ...

    # -- credentials ----------------------------------------------------------------------

    def add_credential(self, record: CredentialRecord) -> None:
        """Stores a new credential.

        Raises:
            CredentialAlreadyRegistered: the credential id is registered (to anyone).
        """
        ...

    def get_credential(self, credential_id: bytes) -> CredentialRecord | None: ...

    def list_credentials(self, user_id: str) -> Sequence[CredentialRecord]: ...

    def update_sign_count(
        self, credential_id: bytes, *, expected: int, new: int, backed_up: bool, now: float
    ) -> bool:
        """Sets the counter to ``new`` if it still is ``expected`` (compare-and-set);
        False if another use changed it first."""
        ...

    def delete_credential(self, user_id: str, credential_id: bytes) -> bool:
        """Deletes the user's credential and every key stored under it."""
        ...

    # -- passkey-gated keys ---------------------------------------------------------------

    def put_key(self, record: KeyRecord) -> None:
        """Stores the key, replacing the one with the same user, credential and slot."""
        ...

    def get_key(self, user_id: str, credential_id: bytes, slot: str) -> KeyRecord | None: ...

    def delete_keys(self, user_id: str, slot: str) -> int:
        """Deletes the user's keys in ``slot`` (under every credential); how many."""
        ...

    # -- the guess-limited vault ----------------------------------------------------------
    #
    # ``owner`` arguments: a record matches its owner, and a record written before owners
    # existed (owner ``""``, not yet claimed) matches every owner.

    def vault_create(self, record: VaultRecord) -> bool:
        """Stores a new record (owner and params included); False (and nothing changed) if
        the slot has one, whoever owns it."""
        ...

    def vault_get(self, slot: str) -> VaultRecord | None:
        """The slot's record, whoever owns it (the caller checks the owner)."""
        ...

    def vault_take_try(self, slot: str, owner: str, now: float) -> VaultRecord | None:
        """Spends one try of ``owner``'s record, durably, before the caller evaluates it.

        In one serialised write transaction: no record of ``owner`` (none at all, or
        another owner's) -> None, and nothing changed; a destroyed record -> it,
        unchanged; a record with no tries left -> its secret is destroyed and the
        destroyed record returned; otherwise ``tries_left`` is decremented and the record
        as it is after the decrement is returned. The transaction is committed (and
        synced) before this returns.
        """
        ...

    def vault_reset_tries(self, slot: str, generation: int, now: float) -> bool:
        """Restores ``tries_left`` to ``max_tries`` after a right guess, if the record is
        still at ``generation`` and not destroyed; False otherwise."""
        ...

    def vault_claim(
        self, slot: str, owner: str, generation: int, sealed: bytes, now: float
    ) -> bool:
        """Gives an unclaimed record (owner ``""``) to ``owner`` after a right guess: sets
        the owner, replaces the blob with ``sealed`` (the same secret, sealed for
        ``generation + 1`` with the owner bound), bumps the generation and restores the
        tries, if the record is still unclaimed, at ``generation`` and not destroyed;
        False otherwise."""
        ...

    def vault_destroy(self, slot: str, generation: int, now: float) -> bool:
        """Deletes the sealed secret (the row keeps only its counters, as a tombstone) if
        the record is at ``generation``; False otherwise."""
        ...

    def vault_replace(
        self, slot: str, owner: str, generation: int, sealed: bytes, max_tries: int, now: float
    ) -> bool:
        """Replaces the secret of ``owner``'s live record at ``generation`` with ``sealed``
        (made for ``generation + 1``) and a full tries counter, keeping its params; False
        if the record moved on or is not ``owner``'s."""
        ...

    def vault_delete(self, slot: str, owner: str) -> bool:
        """Deletes ``owner``'s record, secret and tombstone alike; whether there was one
        (another owner's record is left as it is)."""
        ...
