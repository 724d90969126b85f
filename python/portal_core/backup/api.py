"""The seams between the parties: what crosses them, and nothing more.

* :class:`CustodianApi`: the **only** way the client reaches the custodian. Each method is
  one future HTTP endpoint (named in its docstring); ``client_id`` stands for the client's
  credentials. Nothing the custodian must not see crosses it: the client sends protocol
  messages (commitments, reveals: public values), statuses, and a cipher text sealed under
  a key the custodian never has. Nothing the client must not see comes back: the custodian's
  shares stay in its store and its KMS, except on an authorised eject, whose purpose is to
  hand the key to the user.
* :class:`CustodianAdmin`: what the integrator's backend asks of the custodian (new clients,
  eject authorisation); never called by the client.
* :class:`IntegratorBackupStore`: the integrator's webhooks in self-managed mode, called by
  the custodian (``POST /backup``, ``POST /backup/fetch``, ``POST /backup/delete``, with an
  ``X-Webhook-Secret`` header and a 10 s timeout once over HTTP).

Values are plain frozen dataclasses of ``str``, ``bytes`` (base64 in JSON) and numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from portal_core.backup.errors import NoValidBackup

__all__ = [
    "CurveKey",
    "CustodianAdmin",
    "CustodianApi",
    "IntegratorBackupStore",
    "Keepers",
    "MemoryIntegratorStore",
    "PairInfo",
    "SessionOffer",
    "WalletInfo",
]


@dataclass(frozen=True)
class CurveKey:
    """A curve of the wallet: its public key and address, and the public share of the
    client's signing share the custodian pairs with (a device holding another share was
    replaced by a recovery elsewhere)."""

    curve: str
    public_key: bytes
    address: str
    client_public_share: bytes = b""


@dataclass(frozen=True)
class Keepers:
    """Who keeps a backup's two halves, by the operator identity each party is configured
    with (``None``: not configured). ``custodian``: keeps the custodian's backup shares
    (its HSM key opens them). ``cipher_text``: keeps the client's cipher text, the custodian
    itself, or the integrator in self-managed mode (which also holds the custodian's sealed
    shares).

    A guess-limited vault protects a PIN only if its operator is neither keeper: an operator
    holding both the vault's verifier and the cipher text tests every PIN offline.
    """

    custodian: str | None = None
    cipher_text: str | None = None

    def independent_of(self, operator: str) -> bool:
        """Whether ``operator`` is named and is neither keeper, both keepers being named."""
        named = self.custodian is not None and self.cipher_text is not None
        return named and bool(operator) and operator not in (self.custodian, self.cipher_text)


@dataclass(frozen=True)
class WalletInfo:
    """The custodian's view of a wallet. The device checks what it can of it (public keys
    against its own shares, addresses against the public keys) before it uses or shows it."""

    client_id: str
    wallet_id: str
    curves: dict[str, CurveKey]
    ejected: bool = False
    keepers: Keepers = Keepers()


@dataclass(frozen=True)
class PairInfo:
    """A backup share pair as the client may see it: ids, status and public points."""

    pair_id: str
    backup_id: str
    method: str
    curve: str
    status: str
    custodian_keeps_cipher_text: bool
    public_key: bytes
    client_public_share: bytes
    custodian_public_share: bytes
    created_at: float
    completed_at: float | None


@dataclass(frozen=True)
class SessionOffer:
    """The custodian's side of a new key generation, backup or recovery session.

    ``share_ids``: the id of the new share per curve (the pair ids of a backup; the wallet
    id for key generation and recovery). For a backup, ``backup_id == session_id``.
    """

    session_id: str
    operation: str
    wallet_id: str
    share_ids: dict[str, str]
    backup_id: str | None = None
    custodian_keeps_cipher_text: bool = True


@runtime_checkable
class CustodianApi(Protocol):
    """The client's interface to the custodian (one method per HTTP endpoint).

    Raises (any method): WalletNotFound for an unknown client or a client without a wallet
    (except :meth:`begin_keygen`), and the errors each method names.
    """

    def get_wallet(self, client_id: str) -> WalletInfo:
        """``GET /v1/clients/me/wallet``: the wallet's id, public keys and addresses, and
        who keeps its backups (:class:`Keepers`)."""
        ...

    def begin_keygen(self, client_id: str, curves: Sequence[str]) -> SessionOffer:
        """``POST /v1/clients/me/wallet``: starts key generation of a new wallet.

        Raises: WalletAlreadyExists; WalletModificationInProgress.
        """
        ...

    def begin_backup(self, client_id: str, method: str) -> SessionOffer:
        """``POST /v1/clients/me/backups``: starts a backup (a reshare into backup shares).

        Takes the wallet's modification lock until the backup completes or is aborted.
        Raises: UnsupportedBackupMethod; WalletModificationInProgress.
        """
        ...

    def begin_recovery(self, client_id: str, backup_id: str) -> SessionOffer:
        """``POST /v1/clients/me/recoveries``: starts a recovery from a completed backup.

        Raises: NoValidBackup; WalletModificationInProgress; ShareVerificationFailed (the
        custodian's backup share does not open or match its record).
        """
        ...

    def exchange_commitments(
        self, client_id: str, session_id: str, commitments: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        """``POST /v1/sessions/{id}/commitments``: the client's commitment per curve in, the
        custodian's out.

        Raises: ShareVerificationFailed (a message does not fit the session);
        WalletModificationInProgress (the session is unknown or expired).
        """
        ...

    def exchange_reveals(
        self, client_id: str, session_id: str, reveals: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        """``POST /v1/sessions/{id}/reveals``: the client's reveal per curve in, the
        custodian's out. The custodian checks the client's reveals, then durably records
        its new shares before answering.

        Raises: ShareVerificationFailed; WalletModificationInProgress.
        """
        ...

    def abort(self, client_id: str, session_id: str) -> bool:
        """``DELETE /v1/sessions/{id}``: ends a session the client cannot finish: releases
        its lock and discards its backup if not completed. Returns False if the session's
        backup had already completed (then nothing was discarded)."""
        ...

    def update_backup_status(self, client_id: str, backup_id: str, status: str) -> None:
        """``PATCH /v1/clients/me/backups/{id}``: ``STORED_CLIENT_BACKUP_SHARE_KEY`` (the
        key is stored), ``STORED_CLIENT_BACKUP_SHARE`` (self-managed: the integrator stored
        the cipher text) or ``completed`` (checked, then the method's previous backup is
        replaced).

        Raises: NoValidBackup (no such backup, or not at the status before); ValueError.
        """
        ...

    def store_cipher_text(self, client_id: str, backup_id: str, cipher_text: bytes) -> None:
        """``PUT /v1/clients/me/backups/{id}/cipher-text`` (custodian-managed mode).

        Raises: NoValidBackup; ValueError (self-managed mode, or not this backup's).
        """
        ...

    def get_cipher_text(self, client_id: str, backup_id: str) -> bytes:
        """``GET /v1/clients/me/backups/{id}/cipher-text`` (custodian-managed mode).

        Raises: NoValidBackup.
        """
        ...

    def list_backup_pairs(self, client_id: str) -> list[PairInfo]:
        """``GET /v1/clients/me/backup-share-pairs``: every pair, every status."""
        ...

    def discard_backup(self, client_id: str, backup_id: str) -> None:
        """``DELETE /v1/clients/me/backups/{id}``: drops a backup that is not completed.

        Raises: NoValidBackup (it is completed).
        """
        ...

    def check_backup(self, client_id: str, backup_id: str) -> None:
        """``POST /v1/clients/me/backups/{id}/check``: the custodian opens its backup shares
        and checks them against their recorded public shares; nothing is reshared.

        Raises: NoValidBackup; ShareVerificationFailed.
        """
        ...

    def release_eject_shares(self, client_id: str, backup_id: str) -> dict[str, bytes]:
        """``POST /v1/clients/me/eject``: inside an eject window, the custodian's backup shares
        of a completed backup (serialized, per curve). Uses up the window.

        Raises: EjectNotAuthorized; NoValidBackup; ShareVerificationFailed.
        """
        ...


@runtime_checkable
class CustodianAdmin(Protocol):
    """The integrator's backend's interface to the custodian."""

    def create_client(self) -> str:
        """``POST /v1/custodians/me/clients``: a new client id."""
        ...

    def authorize_eject(self, client_id: str) -> float:
        """``POST /v1/custodians/me/clients/{id}/prepare-eject``: opens the wallet's eject
        window (5 minutes); returns when it closes (seconds since the epoch).

        Raises: WalletNotFound.
        """
        ...


@runtime_checkable
class IntegratorBackupStore(Protocol):
    """The integrator's webhooks that keep the custodian's backup shares (self-managed).

    ``backup_method`` is spelled as in the seed system: ``"<METHOD>-<CURVE>"``. Shares are
    kept per ``pair_id``: the one of a new backup must not overwrite the completed backup's
    until the custodian deletes that one. The share arrives sealed under the custodian's KMS.
    """

    def store(self, client_id: str, backup_method: str, pair_id: str, share: bytes) -> None: ...

    def fetch(self, client_id: str, backup_method: str, pair_id: str) -> bytes:
        """Raises NoValidBackup if the integrator has no such share."""
        ...

    def delete(self, client_id: str, backup_method: str, pair_id: str) -> None: ...


class MemoryIntegratorStore:
    """An in-process :class:`IntegratorBackupStore` (tests and the demo)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryIntegratorStore({len(self._items)} shares)"

    def __len__(self) -> int:
        return len(self._items)

    def store(self, client_id: str, backup_method: str, pair_id: str, share: bytes) -> None:
        with self._lock:
            self._items[(client_id, backup_method, pair_id)] = bytes(share)

    def fetch(self, client_id: str, backup_method: str, pair_id: str) -> bytes:
        with self._lock:
            try:
                return self._items[(client_id, backup_method, pair_id)]
            except KeyError:
                raise NoValidBackup(
                    f"the integrator holds no {backup_method} share for pair {pair_id!r}"
                ) from None

    def delete(self, client_id: str, backup_method: str, pair_id: str) -> None:
        with self._lock:
            self._items.pop((client_id, backup_method, pair_id), None)
