"""The custodian, in-process: :class:`LocalCustodian` implements :class:`CustodianApi` and
:class:`CustodianAdmin` over a KMS (custodian shares sealed under an HSM key) and a store.

What it holds: its signing share per curve and its backup share per pair, each sealed under
the KMS with a context naming wallet, party, curve, kind and share or pair id (so a sealed
share moved to another record does not open); the public shares of both parties; the
client's cipher text in custodian-managed mode. What it never holds: the client's shares or
the key that seals the client's cipher text.

Every new custodian share is sealed, opened again and checked against its public share
before a record of it is written; every share the custodian uses is opened and checked
against its recorded public share first. A backup becomes ``completed`` only in one store
transaction that also deletes the backup it replaces.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portal_core import shares
from portal_core.backup.api import (
    CurveKey,
    IntegratorBackupStore,
    Keepers,
    PairInfo,
    SessionOffer,
    WalletInfo,
)
from portal_core.backup.checks import load_backup_share, load_share
from portal_core.backup.errors import (
    EjectNotAuthorized,
    NoValidBackup,
    ShareVerificationFailed,
    WalletAlreadyExists,
    WalletModificationInProgress,
    WalletNotFound,
)
from portal_core.backup.methods import check_method
from portal_core.backup.progress import Checkpoint
from portal_core.exceptions import InvalidEnvelope, InvalidShare, InvalidTag
from portal_core.kms import KeyedSealingKms, SealingKms
from portal_core.store import (
    CURVES,
    BackupMode,
    BackupRecord,
    CustodianStore,
    PairRecord,
    PairStatus,
    SigningShareRecord,
    WalletRecord,
)

__all__ = ["EJECT_WINDOW_SECONDS", "LocalCustodian", "SealingKms"]

log = logging.getLogger("portal_core.backup")

EJECT_WINDOW_SECONDS = 300.0
DEFAULT_KEY_NAME = "custodian-shares"
_MAX_CIPHER_TEXT = 64 * 1024


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _Session:
    session_id: str
    client_id: str
    wallet_id: str
    operation: str  # "key generation", "backup" or "recovery"
    parties: dict[str, Any] = field(repr=False)
    share_ids: dict[str, str]
    expires_at: float
    method: str | None = None
    generations: dict[str, int] = field(default_factory=dict)
    stage: str = "commit"
    client_commitments: dict[str, bytes] = field(default_factory=dict, repr=False)
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False)


class LocalCustodian:
    """The custodian's side of every flow, in-process.

    ``kms``: seals custodian shares (a ``Pkcs11Kms``); ``key_name``: its KEK (created if
    missing). ``store``: the records. ``integrator``: set for self-managed mode, where the
    integrator keeps the cipher text and the custodian's (sealed) backup shares.
    ``clock``: seconds since the epoch (tests move it). ``eject_window``: seconds an eject
    authorisation lasts. ``lock_ttl``: seconds after which an abandoned session's wallet
    lock can be taken over (a crashed client must not lock a wallet forever).
    ``checkpoint``: called with a step name at each step (tests crash there).
    ``operator``: the identity of whoever runs this custodian (its HSM and store), and
    ``integrator_operator`` that of the integrator in self-managed mode: clients refuse a
    PIN behind a vault run by either, or when either is not named (:class:`Keepers`).

    Thread-safe: share one instance between threads.
    """

    def __init__(
        self,
        kms: KeyedSealingKms,
        store: CustodianStore,
        *,
        key_name: str = DEFAULT_KEY_NAME,
        integrator: IntegratorBackupStore | None = None,
        clock: Callable[[], float] = time.time,
        eject_window: float = EJECT_WINDOW_SECONDS,
        lock_ttl: float = 600.0,
        checkpoint: Checkpoint | None = None,
        operator: str | None = None,
        integrator_operator: str | None = None,
    ) -> None:
        self.kms = kms
        self.operator = operator
        self.integrator_operator = integrator_operator
        self.store = store
        self.key_name = key_name
        self.integrator = integrator
        self.clock = clock
        self.eject_window = float(eject_window)
        self.lock_ttl = float(lock_ttl)
        self._checkpoint = checkpoint or (lambda _name: None)
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self._ensure_key()

    def __repr__(self) -> str:
        mode = "self-managed" if self.integrator else "custodian-managed"
        return (
            f"LocalCustodian(key_name={self.key_name!r}, operator={self.operator!r}, {mode}, "
            f"store={self.store!r})"
        )

    @property
    def mode(self) -> BackupMode:
        return BackupMode.SELF if self.integrator is not None else BackupMode.CUSTODIAN

    def _ensure_key(self) -> None:
        # Creates the KEK on first start; another process creating it at once is no error.
        self.kms.ensure_key(self.key_name)

    # -- sealing -------------------------------------------------------------------------

    @staticmethod
    def _signing_context(wallet_id: str, curve: str, share_id: str) -> dict[str, str]:
        return {
            "wallet": wallet_id,
            "party": "custodian",
            "curve": curve,
            "kind": "signing",
            "share": share_id,
        }

    @staticmethod
    def _backup_context(wallet_id: str, curve: str, pair_id: str) -> dict[str, str]:
        return {
            "wallet": wallet_id,
            "party": "custodian",
            "curve": curve,
            "kind": "backup",
            "pair": pair_id,
        }

    def _open(self, sealed: bytes, context: dict[str, str], what: str) -> bytes:
        try:
            return self.kms.open(sealed, context=context)
        except (InvalidTag, InvalidEnvelope):
            raise ShareVerificationFailed(
                f"{what} does not open under its KMS context (altered, or moved from another "
                "record)"
            ) from None

    def _seal_checked(
        self, share: shares.Share, context: dict[str, str], what: str, public_share: bytes
    ) -> bytes:
        """Seals a new share and proves the sealed form opens to it before anything records it."""
        sealed = self.kms.seal(self.key_name, share.to_secret_bytes(), context=context)
        load_share(
            self._open(sealed, context, what),
            what=what,
            curve=share.curve,
            kind=share.kind,
            role=shares.CUSTODIAN,
            share_id=share.share_id,
            public_share=public_share,
            public_key=share.public_key,
        )
        return sealed

    def _signing_share(self, record: SigningShareRecord) -> shares.Share:
        what = f"the custodian's {record.curve} signing share"
        context = self._signing_context(record.wallet_id, record.curve, record.share_id)
        return load_share(
            self._open(record.sealed_share, context, what),
            what=what,
            curve=record.curve,
            kind=shares.SIGNING,
            role=shares.CUSTODIAN,
            share_id=record.wallet_id,
            public_share=record.custodian_public_share,
            public_key=record.public_key,
        )

    @staticmethod
    def _webhook_method(pair: PairRecord) -> str:
        return f"{pair.method}-{pair.curve}"

    def _sealed_backup_share(self, client_id: str, pair: PairRecord, mode: BackupMode) -> bytes:
        if mode is BackupMode.CUSTODIAN:
            if pair.sealed_custodian_share is None:
                raise NoValidBackup(f"pair {pair.pair_id!r} has no custodian share")
            return pair.sealed_custodian_share
        if self.integrator is None:
            raise NoValidBackup(
                f"pair {pair.pair_id!r} is self-managed, and no integrator is configured"
            )
        return self.integrator.fetch(client_id, self._webhook_method(pair), pair.pair_id)

    def _backup_share(self, client_id: str, pair: PairRecord, mode: BackupMode) -> shares.Share:
        what = f"the custodian's {pair.curve} backup share of pair {pair.pair_id!r}"
        context = self._backup_context(pair.wallet_id, pair.curve, pair.pair_id)
        sealed = self._sealed_backup_share(client_id, pair, mode)
        return load_backup_share(
            self._open(sealed, context, what), pair, role=shares.CUSTODIAN, what=what
        )

    # -- lookups -------------------------------------------------------------------------

    def _wallet(self, client_id: str) -> WalletRecord:
        wallet = self.store.wallet_for_client(client_id)
        if wallet is None:
            if self.store.get_client(client_id) is None:
                raise WalletNotFound(f"no client {client_id!r} at this custodian")
            raise WalletNotFound(f"client {client_id!r} has no wallet yet")
        return wallet

    def _backup(self, client_id: str, backup_id: str) -> tuple[WalletRecord, BackupRecord]:
        wallet = self._wallet(client_id)
        backup = self.store.get_backup(backup_id)
        if backup is None or backup.wallet_id != wallet.wallet_id:
            raise NoValidBackup(
                f"no backup {backup_id!r} of this wallet (never made, replaced or discarded)"
            )
        return wallet, backup

    def _completed(
        self, client_id: str, backup_id: str
    ) -> tuple[WalletRecord, BackupRecord, list[PairRecord]]:
        wallet, backup = self._backup(client_id, backup_id)
        pairs = self.store.backup_pairs(backup_id)
        if not pairs or any(p.status is not PairStatus.COMPLETED for p in pairs):
            status = pairs[0].status if pairs else "missing"
            raise NoValidBackup(f"backup {backup_id!r} is not completed (status {status})")
        return wallet, backup, pairs

    # -- admin ---------------------------------------------------------------------------

    def create_client(self) -> str:
        client_id = _new_id()
        self.store.add_client(client_id, self.clock())
        return client_id

    def authorize_eject(self, client_id: str) -> float:
        wallet = self._wallet(client_id)
        now = self.clock()
        expires = now + self.eject_window
        self.store.authorize_eject(wallet.wallet_id, now, expires)
        log.info("eject of wallet %s authorised until %.0f", wallet.wallet_id, expires)
        return expires

    # -- queries -------------------------------------------------------------------------

    def get_wallet(self, client_id: str) -> WalletInfo:
        wallet = self._wallet(client_id)
        curves = {
            curve: CurveKey(
                curve, r.public_key, shares.address(curve, r.public_key), r.client_public_share
            )
            for curve, r in self.store.signing_shares(wallet.wallet_id).items()
        }
        keeper = self.operator if self.mode is BackupMode.CUSTODIAN else self.integrator_operator
        return WalletInfo(
            client_id,
            wallet.wallet_id,
            curves,
            wallet.ejected_at is not None,
            Keepers(self.operator, keeper),
        )

    def list_backup_pairs(self, client_id: str) -> list[PairInfo]:
        wallet = self._wallet(client_id)
        modes: dict[str, BackupMode] = {}
        out = []
        for p in self.store.wallet_pairs(wallet.wallet_id):
            if p.backup_id not in modes:
                b = self.store.get_backup(p.backup_id)
                modes[p.backup_id] = b.mode if b else BackupMode.CUSTODIAN
            out.append(
                PairInfo(
                    pair_id=p.pair_id,
                    backup_id=p.backup_id,
                    method=p.method,
                    curve=p.curve,
                    status=str(p.status),
                    custodian_keeps_cipher_text=modes[p.backup_id] is BackupMode.CUSTODIAN,
                    public_key=p.public_key,
                    client_public_share=p.client_public_share,
                    custodian_public_share=p.custodian_public_share,
                    created_at=p.created_at,
                    completed_at=p.completed_at,
                )
            )
        return out

    # -- sessions ------------------------------------------------------------------------

    def _start_session(
        self,
        client_id: str,
        wallet_id: str,
        operation: str,
        lock_label: str,
        setup: Callable[[str], tuple[dict[str, Any], dict[str, str], dict[str, Any]]],
    ) -> SessionOffer:
        """Locks the wallet for ``operation`` and opens its protocol session.

        ``setup(session_id)`` builds the custodian's parties, the new share ids per curve and
        any further session fields, under the lock; if it fails, the lock is released.
        """
        session_id = _new_id()
        self._lock(client_id, session_id, lock_label)
        try:
            parties, share_ids, extra = setup(session_id)
        except Exception:
            self.store.release_lock(client_id, session_id)
            raise
        session = _Session(
            session_id,
            client_id,
            wallet_id,
            operation,
            parties,
            share_ids,
            self.clock() + self.lock_ttl,
            **extra,
        )
        now = self.clock()
        with self._sessions_lock:
            # Sessions a client abandoned hold secrets in memory: drop them once expired
            # (their locks expire with them).
            for sid in [k for k, v in self._sessions.items() if v.expires_at < now]:
                del self._sessions[sid]
            self._sessions[session_id] = session
        log.info("%s session %s opened for wallet %s", operation, session_id, wallet_id)
        return SessionOffer(
            session_id=session_id,
            operation=operation,
            wallet_id=wallet_id,
            share_ids=dict(share_ids),
            backup_id=session_id if operation == "backup" else None,
            custodian_keeps_cipher_text=self.mode is BackupMode.CUSTODIAN,
        )

    def _lock(self, client_id: str, owner: str, operation: str) -> None:
        self.store.acquire_lock(client_id, owner, operation, self.clock(), self.lock_ttl)

    def begin_keygen(self, client_id: str, curves: Sequence[str]) -> SessionOffer:
        if self.store.get_client(client_id) is None:
            raise WalletNotFound(f"no client {client_id!r} at this custodian")
        if self.store.wallet_for_client(client_id) is not None:
            raise WalletAlreadyExists(f"client {client_id!r} already has a wallet")
        curves = list(curves)
        if not curves or len(set(curves)) != len(curves) or not set(curves) <= set(CURVES):
            raise ValueError(f"curves must be distinct names from {CURVES}, got {curves!r}")
        wallet_id = _new_id()

        def setup(session_id: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
            parties = {
                c: shares.KeyGen(c, shares.CUSTODIAN, session_id, wallet_id=wallet_id)
                for c in curves
            }
            return parties, {c: wallet_id for c in curves}, {}

        return self._start_session(client_id, wallet_id, "key generation", "key generation", setup)

    def begin_backup(self, client_id: str, method: str) -> SessionOffer:
        check_method(method)
        wallet = self._wallet(client_id)

        def setup(session_id: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
            records = self.store.signing_shares(wallet.wallet_id)
            pair_ids = {c: _new_id() for c in records}
            parties = {
                c: shares.Reshare(
                    self._signing_share(r),
                    session_id,
                    new_kind=shares.BACKUP,
                    new_share_id=pair_ids[c],
                )
                for c, r in records.items()
            }
            return parties, pair_ids, {"method": method}

        return self._start_session(client_id, wallet.wallet_id, "backup", f"{method} backup", setup)

    def begin_recovery(self, client_id: str, backup_id: str) -> SessionOffer:
        wallet, backup, pairs = self._completed(client_id, backup_id)

        def setup(session_id: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
            signing = self.store.signing_shares(wallet.wallet_id)
            parties = {
                p.curve: shares.Reshare(
                    self._backup_share(client_id, p, backup.mode),
                    session_id,
                    new_kind=shares.SIGNING,
                    new_share_id=wallet.wallet_id,
                )
                for p in pairs
            }
            extra = {
                "method": backup.method,
                "generations": {c: r.generation for c, r in signing.items()},
            }
            return parties, {c: wallet.wallet_id for c in parties}, extra

        return self._start_session(
            client_id, wallet.wallet_id, "recovery", f"{backup.method} recovery", setup
        )

    def _session(self, client_id: str, session_id: str, stage: str) -> _Session:
        with self._sessions_lock:
            session = self._sessions.get(session_id)
        if session is None or session.client_id != client_id:
            raise WalletModificationInProgress(
                f"session {session_id!r} is unknown or has ended: start the operation again"
            )
        if self.clock() > session.expires_at:
            self._end(session)
            raise WalletModificationInProgress(f"session {session_id!r} expired: start again")
        if session.stage != stage:
            raise ValueError(f"session {session_id!r} is at step {session.stage!r}, not {stage!r}")
        return session

    def _end(self, session: _Session) -> None:
        """Ends a failed session: forgets it, discards its unfinished backup, unlocks."""
        with self._sessions_lock:
            self._sessions.pop(session.session_id, None)
        if session.operation == "backup":
            self._discard(session.client_id, session.session_id)
        self.store.release_lock(session.client_id, session.session_id)

    def _discard(self, client_id: str, backup_id: str) -> bool:
        """Deletes the client's backup unless it completed; True unless it had completed."""
        backup = self.store.get_backup(backup_id)
        wallet = self.store.wallet_for_client(client_id)
        if backup is None or wallet is None or backup.wallet_id != wallet.wallet_id:
            return True  # nothing of this client's to discard
        removed = self.store.delete_backup(backup_id)
        if backup.mode is BackupMode.SELF:
            self._integrator_delete(client_id, removed)
        return bool(removed)

    def _integrator_delete(self, client_id: str, pairs: Sequence[PairRecord]) -> None:
        if self.integrator is None:
            return
        for p in pairs:
            try:
                self.integrator.delete(client_id, self._webhook_method(p), p.pair_id)
            except Exception as e:  # a sealed orphan at the integrator is harmless; say so
                log.warning(
                    "could not delete pair %s at the integrator: %s", p.pair_id, type(e).__name__
                )

    @staticmethod
    def _same_curves(session: _Session, messages: Mapping[str, bytes]) -> None:
        if set(messages) != set(session.parties):
            raise ValueError(
                f"expected one message per curve {sorted(session.parties)}, got {sorted(messages)}"
            )

    def exchange_commitments(
        self, client_id: str, session_id: str, commitments: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        session = self._session(client_id, session_id, "commit")
        self._same_curves(session, commitments)
        if not session.busy.acquire(blocking=False):
            raise WalletModificationInProgress(f"session {session_id!r} is busy")
        try:
            out = {c: party.commit() for c, party in session.parties.items()}
            session.client_commitments = {c: bytes(m) for c, m in commitments.items()}
            session.stage = "reveal"
            return out
        except Exception:
            self._end(session)
            raise
        finally:
            session.busy.release()

    def exchange_reveals(
        self, client_id: str, session_id: str, reveals: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        session = self._session(client_id, session_id, "reveal")
        self._same_curves(session, reveals)
        if not session.busy.acquire(blocking=False):
            raise WalletModificationInProgress(f"session {session_id!r} is busy")
        try:
            try:
                out = {
                    c: party.reveal(session.client_commitments[c])
                    for c, party in session.parties.items()
                }
                new = {c: party.finish(reveals[c]) for c, party in session.parties.items()}
            except InvalidShare as e:
                self._end(session)
                raise ShareVerificationFailed(
                    f"the client's message failed verification: {e}"
                ) from None
            self._checkpoint(f"custodian.{session.operation.replace(' ', '_')}.finished")
            try:
                if session.operation == "key generation":
                    self._record_wallet(session, new)
                elif session.operation == "backup":
                    self._record_backup(session, new)
                else:
                    self._record_recovery(session, new)
            except Exception:
                self._end(session)
                raise
            with self._sessions_lock:
                self._sessions.pop(session_id, None)
            session.stage = "done"
            return out
        finally:
            session.busy.release()

    def _signing_records(
        self,
        session: _Session,
        new: dict[str, shares.Share],
        adjective: str,
        now: float,
        generation: Callable[[str], int],
    ) -> list[SigningShareRecord]:
        """The records of new custodian signing shares, each sealed and checked to open."""
        records = []
        for curve, share in new.items():
            share_id = _new_id()
            ctx = self._signing_context(session.wallet_id, curve, share_id)
            what = f"the {adjective} {curve} signing share"
            records.append(
                SigningShareRecord(
                    wallet_id=session.wallet_id,
                    curve=curve,
                    share_id=share_id,
                    public_key=share.public_key,
                    client_public_share=share.peer_public_share,
                    custodian_public_share=share.public_share,
                    sealed_share=self._seal_checked(share, ctx, what, share.public_share),
                    generation=generation(curve),
                    updated_at=now,
                )
            )
        return records

    def _record_wallet(self, session: _Session, new: dict[str, shares.Share]) -> None:
        now = self.clock()
        records = self._signing_records(session, new, "new", now, lambda _curve: 1)
        self._checkpoint("custodian.key_generation.sealed")
        wallet = WalletRecord(session.wallet_id, session.client_id, now)
        self.store.add_wallet(wallet, records, lock=(session.client_id, session.session_id))
        log.info("wallet %s created with curves %s", session.wallet_id, ",".join(sorted(new)))

    def _record_backup(self, session: _Session, new: dict[str, shares.Share]) -> None:
        assert session.method is not None
        now = self.clock()
        mode = self.mode
        pairs = []
        for curve, share in new.items():
            pair_id = session.share_ids[curve]
            ctx = self._backup_context(session.wallet_id, curve, pair_id)
            what = f"the new {curve} custodian backup share"
            sealed = self._seal_checked(share, ctx, what, share.public_share)
            pair = PairRecord(
                pair_id=pair_id,
                backup_id=session.session_id,
                wallet_id=session.wallet_id,
                method=session.method,
                curve=curve,
                status=PairStatus.INCOMPLETE,
                public_key=share.public_key,
                client_public_share=share.peer_public_share,
                custodian_public_share=share.public_share,
                sealed_custodian_share=sealed if mode is BackupMode.CUSTODIAN else None,
                created_at=now,
            )
            if mode is BackupMode.SELF:
                assert self.integrator is not None
                # Handed to the integrator, then read back and checked: the record below is
                # written only once the integrator demonstrably holds a share that opens.
                self.integrator.store(
                    session.client_id, self._webhook_method(pair), pair_id, sealed
                )
                self._checkpoint("custodian.backup.sent_to_integrator")
                self._backup_share(session.client_id, pair, mode)
            pairs.append(pair)
        self._checkpoint("custodian.backup.sealed")
        backup = BackupRecord(session.session_id, session.wallet_id, session.method, mode, now)
        stale = self.store.add_backup(backup, pairs, lock=(session.client_id, session.session_id))
        self._integrator_delete(session.client_id, stale)
        log.info(
            "backup %s (%s) recorded for wallet %s",
            backup.backup_id,
            backup.method,
            backup.wallet_id,
        )

    def _record_recovery(self, session: _Session, new: dict[str, shares.Share]) -> None:
        now = self.clock()
        records = self._signing_records(
            session, new, "recovered", now, lambda curve: session.generations.get(curve, 0) + 1
        )
        self._checkpoint("custodian.recovery.sealed")
        self.store.replace_signing_shares(
            session.wallet_id, records, lock=(session.client_id, session.session_id)
        )
        log.info("wallet %s recovered from a %s backup", session.wallet_id, session.method)

    def abort(self, client_id: str, session_id: str) -> bool:
        self._wallet_or_client(client_id)
        with self._sessions_lock:
            session = self._sessions.get(session_id)
            if session is not None and session.client_id != client_id:
                session = None  # another client's session: not this caller's to end
            elif session is not None:
                del self._sessions[session_id]
        # Also after a restart (no session in memory): the lock row and the backup, whose id
        # is the session id, are in the store.
        discarded = True
        if session is None or session.operation == "backup":
            discarded = self._discard(client_id, session_id)
        self.store.release_lock(client_id, session_id)
        return discarded

    def _wallet_or_client(self, client_id: str) -> None:
        if self.store.get_client(client_id) is None:
            raise WalletNotFound(f"no client {client_id!r} at this custodian")

    # -- backup statuses, cipher texts ---------------------------------------------------

    def update_backup_status(self, client_id: str, backup_id: str, status: str) -> None:
        wallet, backup = self._backup(client_id, backup_id)
        status = PairStatus(status)
        lock = (client_id, backup_id)
        if status is PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY:
            # Self-managed: the client's part ends here (the integrator stores the cipher
            # text later and reports it), so the wallet is unlocked now.
            release = lock if backup.mode is BackupMode.SELF else None
            self.store.set_backup_status(
                backup_id, status, expect={PairStatus.INCOMPLETE}, release=release
            )
        elif status is PairStatus.STORED_CLIENT_BACKUP_SHARE:
            if backup.mode is not BackupMode.SELF:
                raise ValueError(
                    "custodian-managed backups reach STORED_CLIENT_BACKUP_SHARE by "
                    "store_cipher_text()"
                )
            self.store.set_backup_status(
                backup_id, status, expect={PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY}
            )
        elif status is PairStatus.COMPLETED:
            self._complete(client_id, wallet, backup)
        else:
            raise ValueError(f"a client cannot set status {status}")
        self._checkpoint(f"custodian.status.{status}")

    def _complete(self, client_id: str, wallet: WalletRecord, backup: BackupRecord) -> None:
        pairs = self.store.backup_pairs(backup.backup_id)
        # The last check before the backup counts: every custodian share of it opens and
        # matches its record. A failure here leaves the previous backup in place.
        for p in pairs:
            self._backup_share(client_id, p, backup.mode)
        self._checkpoint("custodian.complete.checked")
        replaced = self.store.complete_backup(
            backup.backup_id, self.clock(), release=(client_id, backup.backup_id)
        )
        self._checkpoint("custodian.complete.committed")
        if backup.mode is BackupMode.SELF:
            self._integrator_delete(client_id, replaced)
        log.info(
            "backup %s (%s) of wallet %s completed; replaced %d pairs",
            backup.backup_id,
            backup.method,
            wallet.wallet_id,
            len(replaced),
        )

    def store_cipher_text(self, client_id: str, backup_id: str, cipher_text: bytes) -> None:
        from portal_core import envelope

        _, backup = self._backup(client_id, backup_id)
        if backup.mode is not BackupMode.CUSTODIAN:
            raise ValueError("in self-managed mode the integrator keeps the cipher text")
        if (
            not isinstance(cipher_text, bytes | bytearray)
            or not 0 < len(cipher_text) <= _MAX_CIPHER_TEXT
        ):
            raise ValueError(f"a cipher text is 1 to {_MAX_CIPHER_TEXT} bytes")
        # The custodian cannot open it, but it can refuse one whose (clear) header names
        # another wallet or backup: a client bug caught here is not discovered at recovery.
        try:
            ctx = envelope.inspect(cipher_text)["context"]
        except InvalidEnvelope:
            raise ValueError("the cipher text is not a sealed envelope") from None
        if ctx.get("wallet") != backup.wallet_id or ctx.get("backup") != backup_id:
            raise ValueError(f"the cipher text is not the one of backup {backup_id!r}")
        self.store.store_cipher_text(backup_id, bytes(cipher_text), self.clock())

    def get_cipher_text(self, client_id: str, backup_id: str) -> bytes:
        _, backup = self._backup(client_id, backup_id)
        if backup.mode is not BackupMode.CUSTODIAN:
            raise NoValidBackup(
                f"backup {backup_id!r} is self-managed: the integrator keeps its cipher text"
            )
        ct = self.store.cipher_text(backup_id)
        if ct is None:
            raise NoValidBackup(f"backup {backup_id!r} has no cipher text at the custodian")
        return ct

    def discard_backup(self, client_id: str, backup_id: str) -> None:
        self._backup(client_id, backup_id)
        if not self._discard(client_id, backup_id):
            raise NoValidBackup(f"backup {backup_id!r} is completed: it is not discarded")
        self.store.release_lock(client_id, backup_id)

    def check_backup(self, client_id: str, backup_id: str) -> None:
        _, backup, pairs = self._completed(client_id, backup_id)
        for p in pairs:
            self._backup_share(client_id, p, backup.mode)

    # -- eject ---------------------------------------------------------------------------

    def release_eject_shares(self, client_id: str, backup_id: str) -> dict[str, bytes]:
        wallet, backup, pairs = self._completed(client_id, backup_id)
        window = self.store.take_eject_window(wallet.wallet_id)
        now = self.clock()
        if window is None:
            raise EjectNotAuthorized(
                f"eject of wallet {wallet.wallet_id!r} is not authorised: the custodian must "
                f"authorise it first (an authorisation lasts {self.eject_window:.0f} s and "
                "serves one eject)"
            )
        if now >= window.expires_at:
            raise EjectNotAuthorized(
                f"the eject authorisation of wallet {wallet.wallet_id!r} expired "
                f"{now - window.expires_at:.0f} s ago: ask the custodian to authorise it again"
            )
        out = {
            p.curve: self._backup_share(client_id, p, backup.mode).to_secret_bytes() for p in pairs
        }
        self.store.mark_ejected(wallet.wallet_id, now)
        log.info("custodian backup shares of wallet %s released for eject", wallet.wallet_id)
        return out
