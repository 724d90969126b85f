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

Protocol sessions (key generation, backup, recovery) live in the store, not in memory, so
any worker process serves any step of any session. ``begin_*`` takes the wallet lock, builds
the custodian's parties, suspends them before their commitment (``shares.KeyGen.suspend()``,
``Reshare.suspend()``: share scalar, nonce, seed), seals each under the KMS with a context
naming the session, client, wallet, curve and kind ``session`` (so a state moved to another
session does not open), and writes the session's row (``SessionRecord``); if the row cannot
be written the lock is released. Each later step reads the row, checks client, expiry and
stage, opens and resumes the parties (``shares.resume``: the commitment is the one fixed at
the start, whichever worker computes it), and moves the stage by compare-and-set in the
store: ``commit`` → ``reveal`` recording the client's commitments (a replay is refused),
``reveal`` → ``finishing`` before the reveal step runs (of two concurrent requests one alone
runs it). The record a session produces (wallet, backup, recovered shares) is written in
the same transaction that deletes the session's row, and only if the row is still there at
``finishing``: a session ended meanwhile (aborted, or expired and ended by another worker)
records nothing. Whoever deletes a row does the clean-up (unfinished backup discarded, lock
released), once. A session past its expiry (its lock's) is ended by whoever meets it, a
client's expired sessions when it opens a new one, and all of them by
:meth:`LocalCustodian.end_expired_sessions`. A worker killed mid-session leaves a row that
another worker continues (after ``exchange_commitments``) or that expires (after the
reveal step was claimed).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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
    SessionRecord,
    SessionStage,
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


# One party of the custodian's in a session (a KeyGen or a Reshare), and what a session's
# set-up returns: its parties and new share ids per curve, and further fields (method,
# generations).
_Party = shares.KeyGen | shares.Reshare
_Setup = tuple[dict[str, _Party], dict[str, str], dict[str, Any]]

_KEYGEN = "key generation"


class LocalCustodian:
    """The custodian's side of every flow, in-process.

    ``kms``: seals custodian shares (a ``Pkcs11Kms``); ``key_name``: its KEK (created if
    missing). ``store``: the records. ``integrator``: set for self-managed mode, where the
    integrator keeps the cipher text and the custodian's (sealed) backup shares.
    ``clock``: seconds since the epoch (tests move it). ``eject_window``: seconds an eject
    authorisation lasts. ``lock_ttl``: seconds after which an abandoned session's wallet
    lock can be taken over (a crashed client must not lock a wallet forever).
    ``checkpoint``: called with a step name at each step (tests crash there).
    ``events``: told each flow's outcome once it is recorded, ``"<flow>.completed"`` or
    ``"<flow>.failed"`` (flow: ``key_generation``, ``backup``, ``recovery``), for metrics;
    what it raises is logged and ignored.
    ``operator``: the identity of whoever runs this custodian (its HSM and store), and
    ``integrator_operator`` that of the integrator in self-managed mode: clients refuse a
    PIN behind a vault run by either, or when either is not named (:class:`Keepers`).

    Thread-safe: share one instance between threads. Stateless between calls: several
    instances (worker processes) over the same store and KMS key serve the steps of one
    session in any order of workers; a protocol session lives in the store, its parties
    sealed (see the module docstring).
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
        events: Callable[[str], None] | None = None,
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
        self._events = events
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

    @staticmethod
    def _session_context(
        session_id: str, client_id: str, wallet_id: str, operation: str, curve: str
    ) -> dict[str, str]:
        return {
            "session": session_id,
            "client": client_id,
            "wallet": wallet_id,
            "party": "custodian",
            "curve": curve,
            "kind": "session",
            "operation": operation,
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
        setup: Callable[[str], _Setup],
    ) -> SessionOffer:
        """Locks the wallet for ``operation`` and opens its protocol session in the store.

        ``setup(session_id)`` builds the custodian's parties, the new share ids per curve and
        any further session fields, under the lock. The parties are suspended, sealed under
        the KMS (context: session, client, wallet, curve) and written with the session's row;
        if any of that fails, the lock is released. The client's expired sessions are ended
        first.
        """
        now = self.clock()
        self._end_expired(now, client_id=client_id)
        session_id = _new_id()
        lock = self.store.acquire_lock(client_id, session_id, lock_label, now, self.lock_ttl)
        try:
            parties, share_ids, extra = setup(session_id)
            sealed = {
                curve: self.kms.seal(
                    self.key_name,
                    party.suspend(),
                    context=self._session_context(
                        session_id, client_id, wallet_id, operation, curve
                    ),
                )
                for curve, party in parties.items()
            }
            del parties  # the Rust objects wipe their secrets when freed
            session = SessionRecord(
                session_id=session_id,
                client_id=client_id,
                wallet_id=wallet_id,
                operation=operation,
                method=extra.get("method"),
                stage=SessionStage.COMMIT,
                share_ids=dict(share_ids),
                generations=dict(extra.get("generations", {})),
                sealed_states=sealed,
                client_commitments={},
                created_at=now,
                # The lock's expiry: the session and its lock end together.
                expires_at=lock.expires_at,
            )
            self.store.add_session(session, lock=(client_id, session_id))
        except Exception:
            self.store.release_lock(client_id, session_id)
            raise
        self._checkpoint("custodian.session.opened")
        log.info("%s session %s opened for wallet %s", operation, session_id, wallet_id)
        return SessionOffer(
            session_id=session_id,
            operation=operation,
            wallet_id=wallet_id,
            share_ids=dict(share_ids),
            backup_id=session_id if operation == "backup" else None,
            custodian_keeps_cipher_text=self.mode is BackupMode.CUSTODIAN,
        )

    def begin_keygen(self, client_id: str, curves: Sequence[str]) -> SessionOffer:
        if self.store.get_client(client_id) is None:
            raise WalletNotFound(f"no client {client_id!r} at this custodian")
        if self.store.wallet_for_client(client_id) is not None:
            raise WalletAlreadyExists(f"client {client_id!r} already has a wallet")
        curves = list(curves)
        if not curves or len(set(curves)) != len(curves) or not set(curves) <= set(CURVES):
            raise ValueError(f"curves must be distinct names from {CURVES}, got {curves!r}")
        wallet_id = _new_id()

        def setup(session_id: str) -> _Setup:
            parties: dict[str, _Party] = {
                c: shares.KeyGen(c, shares.CUSTODIAN, session_id, wallet_id=wallet_id)
                for c in curves
            }
            return parties, {c: wallet_id for c in curves}, {}

        return self._start_session(client_id, wallet_id, _KEYGEN, _KEYGEN, setup)

    def begin_backup(self, client_id: str, method: str) -> SessionOffer:
        check_method(method)
        wallet = self._wallet(client_id)

        def setup(session_id: str) -> _Setup:
            records = self.store.signing_shares(wallet.wallet_id)
            pair_ids = {c: _new_id() for c in records}
            parties: dict[str, _Party] = {
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

        def setup(session_id: str) -> _Setup:
            signing = self.store.signing_shares(wallet.wallet_id)
            parties: dict[str, _Party] = {
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

    def _session(self, client_id: str, session_id: str, stage: SessionStage) -> SessionRecord:
        """The client's session, read from the store, at ``stage``; an expired one is ended."""
        session = self.store.get_session(session_id)
        if session is None or session.client_id != client_id:
            raise WalletModificationInProgress(
                f"session {session_id!r} is unknown or has ended: start the operation again"
            )
        if self.clock() >= session.expires_at:
            self._end(session)
            raise WalletModificationInProgress(f"session {session_id!r} expired: start again")
        if session.stage is SessionStage.FINISHING:
            raise WalletModificationInProgress(
                f"session {session_id!r} is busy: another request is running its last step"
            )
        if session.stage is not stage:
            raise ValueError(
                f"session {session_id!r} is at step {session.stage.value!r}, not {stage.value!r}"
            )
        return session

    def _parties(self, session: SessionRecord) -> dict[str, _Party]:
        """The session's parties, opened from their sealed states and resumed (state New);
        a state that does not open or resume ends the session.

        Raises:
            ShareVerificationFailed: a sealed state does not open under its session's
                context (altered, or moved from another session), or does not resume to a
                custodian party of this session and curve.
        """
        want = shares.KeyGen if session.operation == _KEYGEN else shares.Reshare
        parties: dict[str, _Party] = {}
        try:
            for curve, sealed in sorted(session.sealed_states.items()):
                what = f"the custodian's {curve} party of session {session.session_id!r}"
                context = self._session_context(
                    session.session_id,
                    session.client_id,
                    session.wallet_id,
                    session.operation,
                    curve,
                )
                try:
                    party = shares.resume(self._open(sealed, context, what))
                except InvalidShare as e:
                    raise ShareVerificationFailed(f"{what} does not resume: {e}") from None
                if not isinstance(party, want) or (party.curve, party.role, party.session_id) != (
                    curve,
                    shares.CUSTODIAN,
                    session.session_id,
                ):
                    raise ShareVerificationFailed(f"{what} is the party of another session")
                parties[curve] = party
        except ShareVerificationFailed:
            self._end(session)
            raise
        return parties

    def _end(self, session: SessionRecord) -> None:
        """Ends a session: deletes its row and, if this call deleted it, discards its
        unfinished backup and releases its lock. Whoever deletes the row does the clean-up,
        once; a session whose row is already gone was ended (or finished) by another call."""
        if self.store.delete_session(session.session_id, client_id=session.client_id):
            self._clean_up(session)

    def _event(self, flow: str, outcome: str) -> None:
        if self._events is None:
            return
        try:
            self._events(f"{flow.replace(' ', '_')}.{outcome}")
        except Exception as e:  # metrics must not fail a flow
            log.warning("the events hook raised %s", type(e).__name__)

    def _clean_up(self, session: SessionRecord) -> None:
        self._event(session.operation, "failed")
        if session.operation == "backup":
            self._discard(session.client_id, session.session_id)
        self.store.release_lock(session.client_id, session.session_id)

    def _end_expired(self, now: float, *, client_id: str | None = None) -> int:
        if not self.store.expired_sessions(now, client_id=client_id):
            return 0  # the usual case, answered by a read (no write transaction)
        ended = self.store.delete_expired_sessions(now, client_id=client_id)
        for session in ended:
            log.info(
                "%s session %s of wallet %s expired at stage %s: ended",
                session.operation,
                session.session_id,
                session.wallet_id,
                session.stage,
            )
            self._clean_up(session)
        return len(ended)

    def end_expired_sessions(self) -> int:
        """Ends every expired session, of any client (its unfinished backup discarded, its
        lock released, its row deleted); returns how many. Sessions also end when a call
        meets them expired, and a client's when it starts a new one; this is for a periodic
        sweep of the sessions clients abandoned."""
        return self._end_expired(self.clock())

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
    def _same_curves(session: SessionRecord, messages: Mapping[str, bytes]) -> None:
        if set(messages) != set(session.sealed_states):
            raise ValueError(
                f"expected one message per curve {sorted(session.sealed_states)}, "
                f"got {sorted(messages)}"
            )

    def exchange_commitments(
        self, client_id: str, session_id: str, commitments: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        session = self._session(client_id, session_id, SessionStage.COMMIT)
        self._same_curves(session, commitments)
        parties = self._parties(session)
        try:
            # commit() in the initial state returns the commitment fixed when the session
            # opened: every worker answers this step with the same bytes.
            out = {c: party.commit() for c, party in parties.items()}
            received = {c: bytes(m) for c, m in commitments.items()}
        except Exception:
            self._end(session)
            raise
        # The step counts once: a replay, or the same request on two workers, loses here.
        if not self.store.advance_session(
            session_id,
            client_id=client_id,
            expect=SessionStage.COMMIT,
            stage=SessionStage.REVEAL,
            now=self.clock(),
            client_commitments=received,
        ):
            raise WalletModificationInProgress(
                f"session {session_id!r} has moved on (its commitments were exchanged by "
                "another request) or ended"
            )
        self._checkpoint("custodian.session.committed")
        return out

    def exchange_reveals(
        self, client_id: str, session_id: str, reveals: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        session = self._session(client_id, session_id, SessionStage.REVEAL)
        self._same_curves(session, reveals)
        # Claimed before any work: of two requests (on any workers), one alone reveals.
        if not self.store.advance_session(
            session_id,
            client_id=client_id,
            expect=SessionStage.REVEAL,
            stage=SessionStage.FINISHING,
            now=self.clock(),
        ):
            raise WalletModificationInProgress(
                f"session {session_id!r} is busy: another request is running its last step "
                "(or it ended)"
            )
        # From here on this call alone can finish the session: any failure ends it (a
        # transient one too), rather than leave the wallet locked until the session expires.
        try:
            parties = self._parties(session)
            out, new = {}, {}
            for c, party in parties.items():
                party.commit()
                out[c] = party.reveal(session.client_commitments[c])
            for c, party in parties.items():
                new[c] = party.finish(reveals[c])
        except InvalidShare as e:
            self._end(session)
            raise ShareVerificationFailed(
                f"the client's message failed verification: {e}"
            ) from None
        except Exception:
            self._end(session)
            raise
        self._checkpoint(f"custodian.{session.operation.replace(' ', '_')}.finished")
        try:
            # Each records the result and deletes the session's row in one transaction.
            if session.operation == _KEYGEN:
                self._record_wallet(session, new)
            elif session.operation == "backup":
                self._record_backup(session, new)
            else:
                self._record_recovery(session, new)
        except Exception:
            self._end(session)
            raise
        return out

    def _signing_records(
        self,
        session: SessionRecord,
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

    def _record_wallet(self, session: SessionRecord, new: dict[str, shares.Share]) -> None:
        now = self.clock()
        records = self._signing_records(session, new, "new", now, lambda _curve: 1)
        self._checkpoint("custodian.key_generation.sealed")
        wallet = WalletRecord(session.wallet_id, session.client_id, now)
        self.store.add_wallet(
            wallet,
            records,
            lock=(session.client_id, session.session_id),
            end_session=session.session_id,
        )
        self._event("key_generation", "completed")
        log.info("wallet %s created with curves %s", session.wallet_id, ",".join(sorted(new)))

    def _record_backup(self, session: SessionRecord, new: dict[str, shares.Share]) -> None:
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
        stale = self.store.add_backup(
            backup,
            pairs,
            lock=(session.client_id, session.session_id),
            end_session=session.session_id,
        )
        self._integrator_delete(session.client_id, stale)
        log.info(
            "backup %s (%s) recorded for wallet %s",
            backup.backup_id,
            backup.method,
            backup.wallet_id,
        )

    def _record_recovery(self, session: SessionRecord, new: dict[str, shares.Share]) -> None:
        now = self.clock()
        records = self._signing_records(
            session, new, "recovered", now, lambda curve: session.generations.get(curve, 0) + 1
        )
        self._checkpoint("custodian.recovery.sealed")
        self.store.replace_signing_shares(
            session.wallet_id,
            records,
            lock=(session.client_id, session.session_id),
            end_session=session.session_id,
        )
        self._event("recovery", "completed")
        log.info("wallet %s recovered from a %s backup", session.wallet_id, session.method)

    def abort(self, client_id: str, session_id: str) -> bool:
        self._wallet_or_client(client_id)
        # From the store alone, on any worker: the session's row (only this client's: another
        # client's session is not this caller's to end), the lock row and the backup, whose
        # id is the session id (a backup session's record outlives its row).
        session = self.store.delete_session(session_id, client_id=client_id)
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
        self._event("backup", "completed")
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
