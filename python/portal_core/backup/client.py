"""The client (the user's device): :class:`WalletClient` runs the backup, recovery and eject
flows, talking to the custodian only through a :class:`~portal_core.backup.api.CustodianApi`.

What it holds: its signing share per curve (in a :class:`DeviceStore`), and during a flow its
backup shares and the method's key. What it sends: protocol messages, statuses, and the
cipher text (sealed under the method's key, which never leaves the client).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from portal_core import envelope, shares
from portal_core.backup import document
from portal_core.backup.api import CustodianApi, PairInfo, SessionOffer, WalletInfo
from portal_core.backup.checks import load_backup_share, load_share
from portal_core.backup.device import DeviceStore
from portal_core.backup.errors import (
    CustodianMismatch,
    DecryptFailed,
    DeviceReplaced,
    NoValidBackup,
    ShareVerificationFailed,
    WalletAlreadyExists,
    WalletNotFound,
)
from portal_core.backup.methods import (
    BACKUP_METHODS,
    FileKeyStorage,
    KeyBinding,
    KeyProvider,
    StorageFactory,
    StoredKeyMethod,
    check_method,
    not_configured,
)
from portal_core.backup.password import (
    Argon2Params,
    GuessLimitedVault,
    PasswordMethod,
    PasswordPolicy,
)
from portal_core.backup.progress import (
    BACKUP_ORDER,
    EJECT_ORDER,
    KEYGEN_ORDER,
    RECOVERY_ORDER,
    VERIFY_ORDER,
    Checkpoint,
    Progress,
    ProgressCallback,
    Status,
)
from portal_core.exceptions import InvalidShare, InvalidTag, PortalError
from portal_core.store.custodian_records import CURVES, PairStatus

__all__ = ["BackupCheck", "BackupResult", "MethodOptions", "WalletClient"]

log = logging.getLogger("portal_core.backup")


class MethodOptions(TypedDict, total=False):
    """What a flow call may say about its method (``backup_wallet(method, **options)``).

    ``password``: PASSWORD's password or PIN; ``argon2``, ``policy``, ``vault``: PASSWORD's
    costs, policy and guess-limited vault for this call (else the client's). ``key_dir``:
    CUSTOM's key directory; ``storage``: a key-storage factory for a stored-key method
    (else the one registered). Any other name is a ``TypeError``.
    """

    password: str
    argon2: Argon2Params
    policy: PasswordPolicy
    vault: GuessLimitedVault
    key_dir: str
    storage: StorageFactory


_PASSWORD_OPTIONS = frozenset({"password", "policy", "argon2", "vault"})
# CUSTOM alone has a default storage, a key file per slot in ``key_dir``.
_STORED_KEY_OPTIONS = {
    m: frozenset({"storage", "key_dir"} if m == "CUSTOM" else {"storage"})
    for m in BACKUP_METHODS
    if m != "PASSWORD"
}


@dataclass(frozen=True)
class BackupResult:
    """What ``backup_wallet`` returns. ``status`` is ``completed``, or in self-managed mode
    ``STORED_CLIENT_BACKUP_SHARE_KEY`` until ``stored_client_backup_share(True, method)``."""

    method: str
    backup_id: str
    pair_ids: dict[str, str]
    cipher_text: bytes = field(repr=False)
    custodian_keeps_cipher_text: bool
    status: str


@dataclass(frozen=True)
class BackupCheck:
    """What ``verify_backup`` checked: the backup opens and its shares match their records."""

    method: str
    backup_id: str
    pair_ids: dict[str, str]
    addresses: dict[str, str]


@dataclass
class _Opened:
    binding: KeyBinding
    pairs: dict[str, PairInfo]
    shares: dict[str, shares.Share] = field(repr=False)


class WalletClient:
    """One client's device: create, back up, recover, eject, and the backup queries.

    ``custodian``: the only way to the custodian. ``device``: where signing shares live
    (default: in memory). ``storages``: a key-storage factory per stored-key method
    (``CUSTOM``, later ``GDRIVE``...); ``custom_key_dir``: a directory for ``CUSTOM`` key
    files. ``password_policy``, ``argon2``, ``vault``: defaults for ``PASSWORD``.
    ``checkpoint``: called with a step name at each step (tests crash there).

    Not thread-safe: one flow at a time per instance (the custodian refuses concurrent
    modifications of a wallet anyway).
    """

    def __init__(
        self,
        custodian: CustodianApi,
        client_id: str,
        *,
        device: DeviceStore,
        storages: Mapping[str, StorageFactory] | None = None,
        custom_key_dir: str | None = None,
        password_policy: PasswordPolicy | None = None,
        argon2: Argon2Params | None = None,
        vault: GuessLimitedVault | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.custodian = custodian
        self.client_id = client_id
        self.device: DeviceStore = device
        self._storages: dict[str, StorageFactory] = {}
        for method, factory in (storages or {}).items():
            self.register_storage(method, factory)
        if custom_key_dir is not None:
            self.register_storage("CUSTOM", FileKeyStorage.in_directory(custom_key_dir))
        self.password_policy = password_policy or PasswordPolicy()
        self.argon2 = argon2
        self.vault = vault
        self._checkpoint = checkpoint or (lambda _name: None)

    def __repr__(self) -> str:
        return f"WalletClient(client_id={self.client_id!r}, storages={sorted(self._storages)})"

    # -- configuration -------------------------------------------------------------------

    def register_storage(self, method: str, factory: StorageFactory) -> None:
        """Registers the key storage of a stored-key method (one storage per key slot)."""
        if check_method(method) == "PASSWORD":
            raise ValueError("PASSWORD derives its key; it has no key storage")
        self._storages[method] = factory

    def _provider(self, method: str, config: MethodOptions) -> KeyProvider:
        check_method(method)
        allowed = _PASSWORD_OPTIONS if method == "PASSWORD" else _STORED_KEY_OPTIONS[method]
        unexpected = set(config) - allowed
        if unexpected:
            raise TypeError(
                f"unexpected configuration for {method}: {', '.join(sorted(unexpected))}"
            )
        if method == "PASSWORD":
            return PasswordMethod(
                config.get("password"),
                policy=config.get("policy", self.password_policy),
                argon2=config.get("argon2", self.argon2),
                vault=config.get("vault", self.vault),
            )
        factory = config.get("storage")
        key_dir = config.get("key_dir")
        if factory is None and key_dir is not None:
            factory = FileKeyStorage.in_directory(key_dir)
        factory = factory or self._storages.get(method)
        if factory is None:
            raise not_configured(method)
        return StoredKeyMethod(method, factory)

    # -- helpers -------------------------------------------------------------------------

    def _wallet(self) -> WalletInfo:
        return self._wallet_and_shares()[0]

    def _wallet_and_shares(
        self, *, check_device: bool = True
    ) -> tuple[WalletInfo, dict[str, shares.Share]]:
        """The custodian's record of the wallet, checked against what this device knows for
        itself: every address derives from its public key, and, when the device holds the
        wallet's signing shares (returned too, else empty; not read if ``check_device`` is
        false), every public key is the one they carry and every share the one the
        custodian pairs with.

        Raises:
            CustodianMismatch: the record fails a check (whoever wrote the custodian's
                database, or the link, changed it).
            DeviceReplaced: a recovery on another device replaced this device's shares.
        """
        wallet = self.custodian.get_wallet(self.client_id)
        for curve, key in wallet.curves.items():
            try:
                derived = shares.address(curve, key.public_key)
            except (InvalidShare, ValueError):
                derived = None
            if key.curve != curve or derived != key.address:
                raise CustodianMismatch(
                    f"the custodian's {curve} address does not derive from the public key it "
                    "gives for the wallet"
                )
        stored = self.device.load(self.client_id) if check_device else {}
        return wallet, (self._signing_shares(wallet, stored) if stored else {})

    def _held_wallet(self) -> tuple[WalletInfo, dict[str, shares.Share]]:
        """As :meth:`_wallet_and_shares`, for a device that must hold the wallet's shares.

        Raises:
            WalletNotFound: it holds none. CustodianMismatch: as there.
        """
        wallet, signing = self._wallet_and_shares()
        if not signing:
            raise WalletNotFound(
                "this device holds no signing share of the wallet: create or recover it first"
            )
        return wallet, signing

    def _signing_shares(
        self, wallet: WalletInfo, stored: Mapping[str, bytes]
    ) -> dict[str, shares.Share]:
        if set(stored) != set(wallet.curves):
            raise WalletNotFound(
                f"this device holds shares for {sorted(stored)}, the wallet has "
                f"{sorted(wallet.curves)}: recover the wallet"
            )
        try:
            held = {
                c: load_share(
                    data,
                    what=f"this device's {c} signing share",
                    curve=c,
                    kind=shares.SIGNING,
                    role=shares.CLIENT,
                    share_id=wallet.wallet_id,
                    public_share=None,
                    public_key=wallet.curves[c].public_key,
                )
                for c, data in stored.items()
            }
        except ShareVerificationFailed as e:
            raise CustodianMismatch(
                f"the custodian's record of this client's wallet does not match the shares on "
                f"this device: {e}"
            ) from None
        for c, share in held.items():
            recorded = wallet.curves[c].client_public_share
            if recorded and share.public_share != recorded:
                raise DeviceReplaced(
                    f"this device's {c} share of the wallet was replaced by a recovery on "
                    "another device, and the custodian no longer pairs with it: recover the "
                    "wallet on this device (recover_wallet) to use it here again"
                )
        return held

    def _run_session(
        self, offer: SessionOffer, parties: Mapping[str, Any]
    ) -> dict[str, shares.Share]:
        """Commit, reveal, finish against the custodian; the custodian finishes (and records
        its new shares) before the client does."""
        op = offer.operation.replace(" ", "_")
        try:
            commits = {c: p.commit() for c, p in parties.items()}
            theirs = self.custodian.exchange_commitments(self.client_id, offer.session_id, commits)
            reveals = {c: p.reveal(theirs[c]) for c, p in parties.items()}
            self._checkpoint(f"client.{op}.committed")
            their_reveals = self.custodian.exchange_reveals(
                self.client_id, offer.session_id, reveals
            )
            self._checkpoint(f"client.{op}.custodian_finished")
            return {c: p.finish(their_reveals[c]) for c, p in parties.items()}
        except InvalidShare as e:
            raise ShareVerificationFailed(
                f"the custodian's {offer.operation} message failed verification: {e}"
            ) from None
        except KeyError as e:
            raise ShareVerificationFailed(f"the custodian sent no message for curve {e}") from None

    def _abort(
        self, session_id: str, provider: KeyProvider | None, binding: KeyBinding | None
    ) -> None:
        """Best effort after a failure: the custodian drops the session and its unfinished
        backup; the new key slot goes too, but only once the custodian confirms its backup
        did not complete (deleting the key of a completed backup would lose it)."""
        try:
            discarded = self.custodian.abort(self.client_id, session_id)
        except Exception as e:
            log.warning("could not abort session %s: %s", session_id, type(e).__name__)
            return
        if discarded and provider is not None and binding is not None:
            try:
                provider.discard_key(binding)
            except Exception as e:
                log.warning(
                    "could not delete the key of backup %s: %s", binding.backup_id, type(e).__name__
                )

    def _pairs(self, wallet: WalletInfo) -> list[PairInfo]:
        """The custodian's backup pairs of the wallet, each checked to be of the wallet's key
        (its public shares add up to it) before any of them is counted or used.

        Raises:
            CustodianMismatch: a pair fails the check.
        """
        pairs = self.custodian.list_backup_pairs(self.client_id)
        for pair in pairs:
            key = wallet.curves.get(pair.curve)
            try:
                if key is None or pair.public_key != key.public_key:
                    raise InvalidShare("it is a pair of another wallet's key")
                shares.check_public_shares(
                    pair.curve,
                    pair.public_key,
                    pair.client_public_share,
                    pair.custodian_public_share,
                )
            except InvalidShare as e:
                raise CustodianMismatch(
                    f"the custodian's backup pair {pair.pair_id!r} ({pair.curve}) fails its "
                    f"check: {e}"
                ) from None
        return pairs

    @staticmethod
    def _completed_backup(pairs: Sequence[PairInfo], method: str) -> str | None:
        ids = {
            p.backup_id for p in pairs if p.method == method and p.status == PairStatus.COMPLETED
        }
        if len(ids) > 1:
            raise NoValidBackup(f"the custodian reports {len(ids)} completed {method} backups")
        return next(iter(ids), None)

    def _fetch_cipher_text(self, method: str, pairs: Sequence[PairInfo]) -> bytes:
        backup_id = self._completed_backup(pairs, method)
        if backup_id is None:
            raise NoValidBackup(f"this wallet has no completed {method} backup")
        if not next(p for p in pairs if p.backup_id == backup_id).custodian_keeps_cipher_text:
            raise NoValidBackup(
                f"the {method} backup is self-managed: pass the cipher text the integrator stored"
            )
        return self.custodian.get_cipher_text(self.client_id, backup_id)

    def _open_backup(
        self,
        provider: KeyProvider,
        wallet: WalletInfo,
        method: str,
        cipher_text: bytes,
        pairs: Sequence[PairInfo],
        *,
        completed: bool,
    ) -> _Opened:
        """Opens a cipher text and checks every share in it against its recorded pair."""
        info = document.read_info(cipher_text)
        if info.wallet_id != wallet.wallet_id or info.client_id != self.client_id:
            raise DecryptFailed(
                f"the cipher text is a backup of wallet {info.wallet_id!r} of client "
                f"{info.client_id!r}, not of this client's wallet {wallet.wallet_id!r}"
            )
        if info.method != method:
            raise DecryptFailed(f"the cipher text is a {info.method} backup, not {method}")
        mine = {p.curve: p for p in pairs if p.backup_id == info.backup_id}
        if not mine:
            raise NoValidBackup(
                f"the cipher text's backup {info.backup_id!r} is no longer at the custodian "
                f"(replaced by a newer {method} backup, or discarded)"
            )
        if completed and any(p.status != PairStatus.COMPLETED for p in mine.values()):
            raise NoValidBackup(f"the cipher text's backup {info.backup_id!r} never completed")
        if {c: p.pair_id for c, p in mine.items()} != info.pair_ids:
            raise DecryptFailed("the cipher text's pair ids differ from the custodian's record")
        binding = info.binding()
        key = provider.recover_key(binding, info.context)
        try:
            plaintext = bytearray(envelope.open(bytes(key), cipher_text, context=info.context))
        except InvalidTag:
            cause = (
                "wrong password" if method == "PASSWORD" else f"not the key of this {method} backup"
            )
            raise DecryptFailed(
                f"the backup did not decrypt: {cause}, or the cipher text was altered"
            ) from None
        finally:
            key[:] = bytes(len(key))
        try:
            entries = document.decode(plaintext, binding)
        finally:
            plaintext[:] = bytes(len(plaintext))
        if set(entries) != set(mine):
            raise ShareVerificationFailed(
                f"the backup holds shares for {sorted(entries)}, its pairs are {sorted(mine)}"
            )
        opened: dict[str, shares.Share] = {}
        for curve, (pair_id, data) in entries.items():
            pair = mine[curve]
            if pair.pair_id != pair_id or curve not in wallet.curves:
                raise ShareVerificationFailed(f"the {curve} share of the backup names another pair")
            if pair.public_key != wallet.curves[curve].public_key:
                raise ShareVerificationFailed(f"the {curve} pair is of another wallet")
            opened[curve] = load_backup_share(
                data, pair, role=shares.CLIENT, what=f"the client's {curve} backup share"
            )
        return _Opened(binding, mine, opened)

    def _discard_old_key(
        self, provider: KeyProvider | None, wallet_id: str, method: str, backup_id: str | None
    ) -> None:
        if provider is None or backup_id is None:
            return
        try:
            provider.discard_key(KeyBinding(self.client_id, wallet_id, backup_id, method))
            self._checkpoint("client.backup.old_key_discarded")
        except (PortalError, OSError) as e:
            # The old backup is already deleted at the custodian: its key opens nothing.
            log.warning(
                "could not delete the key of replaced backup %s: %s", backup_id, type(e).__name__
            )

    # -- key generation ------------------------------------------------------------------

    def create_wallet(
        self, curves: Sequence[str] = CURVES, *, progress: ProgressCallback | None = None
    ) -> dict[str, str]:
        """Generates a new wallet with the custodian; returns its address per curve.

        Raises:
            WalletAlreadyExists: this device or the custodian already has a wallet.
            ShareVerificationFailed: the custodian's messages failed verification.
        """
        if self.device.load(self.client_id):
            raise WalletAlreadyExists("this device already holds a wallet's signing shares")
        p = Progress(progress, KEYGEN_ORDER)
        p.step(Status.GENERATING)
        offer = self.custodian.begin_keygen(self.client_id, list(curves))
        try:
            parties = {
                c: shares.KeyGen(c, shares.CLIENT, offer.session_id, wallet_id=offer.wallet_id)
                for c in curves
            }
            new = self._run_session(offer, parties)
        except Exception:
            self._abort(offer.session_id, None, None)
            raise
        p.step(Status.STORING)
        self.device.save(self.client_id, {c: s.to_secret_bytes() for c, s in new.items()})
        p.done()
        return {c: s.address for c, s in new.items()}

    def addresses(self) -> dict[str, str]:
        """The wallet's address per curve (EIP-55 Ethereum, base58 Solana), derived on this
        device from the public key its own shares carry, after the custodian's record was
        checked against them.

        Raises:
            WalletNotFound: this device holds no share of the wallet (create or recover it).
            CustodianMismatch: the custodian's record of the wallet is not this device's.
        """
        return {c: s.address for c, s in self._held_wallet()[1].items()}

    # -- backup --------------------------------------------------------------------------

    def backup_wallet(
        self,
        method: str,
        *,
        progress: ProgressCallback | None = None,
        **config: Unpack[MethodOptions],
    ) -> BackupResult:
        """Backs the wallet up with ``method``: a new backup share pair per curve, the client's
        shares in one document sealed with the method's key, the custodian's under its KMS.

        ``config``: ``password=`` (and optionally ``argon2=``, ``policy=``, ``vault=``) for
        PASSWORD; ``key_dir=`` or ``storage=`` for CUSTOM (unless registered).

        In custodian-managed mode the backup is completed on return (and replaces the
        method's previous one). In self-managed mode the caller stores ``cipher_text`` and
        then calls :meth:`stored_client_backup_share`.

        Raises:
            UnsupportedBackupMethod, PasswordRequired, WeakPassword: before any share work.
            WalletNotFound: no wallet, or no signing share on this device.
            WalletModificationInProgress: another backup or recovery of the wallet runs.
            ShareVerificationFailed: a share or message failed a check.
        """
        provider = self._provider(method, config)
        p = Progress(progress, BACKUP_ORDER)
        p.step(Status.READING)
        wallet, signing = self._held_wallet()
        provider.validate_operations(new=True, keepers=wallet.keepers)
        old_backup = self._completed_backup(self._pairs(wallet), method)
        self._checkpoint("client.backup.read")

        p.step(Status.GENERATING)
        offer = self.custodian.begin_backup(self.client_id, method)
        if offer.backup_id is None or set(offer.share_ids) != set(wallet.curves):
            # A backup of fewer curves would complete and leave a curve unrecoverable.
            self._abort(offer.session_id, None, None)
            raise CustodianMismatch(
                f"the custodian offered a backup of {sorted(offer.share_ids)} without a backup "
                f"id or for other curves than the wallet's {sorted(wallet.curves)}"
            )
        binding = KeyBinding(
            self.client_id, wallet.wallet_id, offer.backup_id, method, wallet.keepers
        )
        try:
            parties = {
                c: shares.Reshare(
                    signing[c],
                    offer.session_id,
                    new_kind=shares.BACKUP,
                    new_share_id=offer.share_ids[c],
                )
                for c in offer.share_ids
            }
            backup_shares = self._run_session(offer, parties)
            self._checkpoint("client.backup.reshared")

            p.step(Status.PARSING)
            doc = document.encode(
                binding,
                {c: (offer.share_ids[c], s.to_secret_bytes()) for c, s in backup_shares.items()},
            )

            p.step(Status.ENCRYPTING)
            method_key = provider.new_key(binding)
            try:
                ctx = document.cipher_context(binding, offer.share_ids, method_key.params)
                cipher_text = envelope.seal(bytes(method_key.key), doc, context=ctx, key_id=method)
                doc[:] = bytes(len(doc))
                self._checkpoint("client.backup.encrypted")

                p.step(Status.STORING)
                # The key goes to this backup's own slot: the previous backup's key is untouched.
                provider.persist_key(binding, method_key)
            finally:
                method_key.wipe()
            self._checkpoint("client.backup.key_stored")
            self.custodian.update_backup_status(
                self.client_id, offer.backup_id, PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY
            )
            self._checkpoint("client.backup.key_status")
            if offer.custodian_keeps_cipher_text:
                self.custodian.store_cipher_text(self.client_id, offer.backup_id, cipher_text)
                self._checkpoint("client.backup.cipher_text_stored")
                stored = self.custodian.get_cipher_text(self.client_id, offer.backup_id)
            else:
                stored = cipher_text
            # Before anything may call this backup complete: the key read back from where the
            # method keeps it opens the cipher text as stored, and every share in it matches
            # the pair the custodian recorded.
            self._open_backup(
                provider, wallet, method, stored, self._pairs(wallet), completed=False
            )
            self._checkpoint("client.backup.verified")
            status = PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY
            if offer.custodian_keeps_cipher_text:
                self.custodian.update_backup_status(
                    self.client_id, offer.backup_id, PairStatus.COMPLETED
                )
                status = PairStatus.COMPLETED
                self._checkpoint("client.backup.completed")
        except Exception:
            self._abort(offer.session_id, provider, binding)
            raise
        if status is PairStatus.COMPLETED and old_backup != offer.backup_id:
            self._discard_old_key(provider, wallet.wallet_id, method, old_backup)
        p.done()
        return BackupResult(
            method=method,
            backup_id=offer.backup_id,
            pair_ids=dict(offer.share_ids),
            cipher_text=cipher_text,
            custodian_keeps_cipher_text=offer.custodian_keeps_cipher_text,
            status=str(status),
        )

    def stored_client_backup_share(
        self, success: bool, method: str, **config: Unpack[MethodOptions]
    ) -> None:
        """Self-managed mode: the integrator reports whether it stored the cipher text of
        the method's pending backup. ``True`` completes the backup (replacing the previous
        one); ``False`` discards it.

        Raises:
            NoValidBackup: no self-managed backup of the method waits for its cipher text.
        """
        check_method(method)
        wallet = self._wallet()
        pairs = self._pairs(wallet)
        pending = sorted(
            (
                p
                for p in pairs
                if p.method == method
                and not p.custodian_keeps_cipher_text
                and p.status == PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY
            ),
            key=lambda p: p.created_at,
        )
        if not pending:
            raise NoValidBackup(f"no self-managed {method} backup waits for its cipher text")
        backup_id = pending[-1].backup_id
        old_backup = self._completed_backup(pairs, method)
        try:
            provider: KeyProvider | None = self._provider(method, config)
        except PortalError:
            provider = None  # keys of abandoned or replaced backups then stay behind, unusable
        if success:
            self.custodian.update_backup_status(
                self.client_id, backup_id, PairStatus.STORED_CLIENT_BACKUP_SHARE
            )
            self.custodian.update_backup_status(self.client_id, backup_id, PairStatus.COMPLETED)
            self._discard_old_key(provider, wallet.wallet_id, method, old_backup)
        else:
            self.custodian.discard_backup(self.client_id, backup_id)
            self._discard_old_key(provider, wallet.wallet_id, method, backup_id)

    # -- recovery ------------------------------------------------------------------------

    def recover_wallet(
        self,
        method: str,
        *,
        cipher_text: bytes | None = None,
        progress: ProgressCallback | None = None,
        **config: Unpack[MethodOptions],
    ) -> dict[str, str]:
        """Recovers the wallet onto this device from a completed backup: new signing shares
        for both parties (the previous device's share stops pairing). Returns the addresses.

        ``cipher_text``: required in self-managed mode; fetched from the custodian otherwise.

        Raises:
            NoValidBackup: no completed backup of the method, or the cipher text's backup
                was replaced.
            DecryptFailed: wrong password or key, altered cipher text, another wallet's.
            ShareVerificationFailed: a share does not match its recorded public share.
            WalletModificationInProgress: another backup or recovery runs.
        """
        # The device's own shares are not checked: recovering is what a replaced device does.
        p, wallet, opened = self._read_backup(
            method, cipher_text, progress, RECOVERY_ORDER, config, check_device=False
        )
        self._checkpoint("client.recovery.opened")

        p.step(Status.GENERATING)
        offer = self.custodian.begin_recovery(self.client_id, opened.binding.backup_id)
        try:
            parties = {
                c: shares.Reshare(
                    s, offer.session_id, new_kind=shares.SIGNING, new_share_id=wallet.wallet_id
                )
                for c, s in opened.shares.items()
            }
            new = self._run_session(offer, parties)
        except Exception:
            self._abort(offer.session_id, None, None)
            raise
        self._checkpoint("client.recovery.reshared")

        p.step(Status.STORING)
        self.device.save(self.client_id, {c: s.to_secret_bytes() for c, s in new.items()})
        p.done()
        return {c: s.address for c, s in new.items()}

    def _read_backup(
        self,
        method: str,
        cipher_text: bytes | None,
        progress: ProgressCallback | None,
        order: Sequence[Status],
        config: MethodOptions,
        *,
        check_device: bool = True,
    ) -> tuple[Progress, WalletInfo, _Opened]:
        """The first steps of recovery, verification and eject: read the method's key, fetch
        the cipher text (Portal-managed) and open the completed backup, checking every share.
        Reports Reading, Decrypting and Parsing; returns the progress, wallet and opened backup.
        """
        provider = self._provider(method, config)
        p = Progress(progress, order)
        p.step(Status.READING)
        provider.validate_operations(new=False)
        wallet = self._wallet_and_shares(check_device=check_device)[0]
        pairs = self._pairs(wallet)
        if cipher_text is None:
            cipher_text = self._fetch_cipher_text(method, pairs)
        p.step(Status.DECRYPTING)
        opened = self._open_backup(provider, wallet, method, cipher_text, pairs, completed=True)
        p.step(Status.PARSING)
        return p, wallet, opened

    # -- queries -------------------------------------------------------------------------

    def _completed_methods(self, curve: str | None) -> list[str]:
        return sorted(
            {
                p.method
                for p in self._pairs(self._wallet())
                if p.status == PairStatus.COMPLETED and (curve is None or p.curve == curve)
            }
        )

    def is_wallet_backed_up(self, curve: str | None = None) -> bool:
        """Whether a completed backup exists (of ``curve``'s share, if given)."""
        return bool(self._completed_methods(curve))

    def available_recovery_methods(self, curve: str | None = None) -> list[str]:
        """The methods with a completed backup (of ``curve``'s share, if given)."""
        return self._completed_methods(curve)

    def is_wallet_recoverable(self, curve: str | None = None) -> bool:
        """Whether one completed backup covers every curve of the wallet (or ``curve``)."""
        wallet = self._wallet()
        curves = {curve} if curve else set(wallet.curves)
        covered: dict[str, set[str]] = {}
        for p in self._pairs(wallet):
            if p.status == PairStatus.COMPLETED:
                covered.setdefault(p.backup_id, set()).add(p.curve)
        return any(curves <= c for c in covered.values())

    # -- backup check and eject ----------------------------------------------------------

    def verify_backup(
        self,
        method: str,
        *,
        cipher_text: bytes | None = None,
        progress: ProgressCallback | None = None,
        **config: Unpack[MethodOptions],
    ) -> BackupCheck:
        """Opens the method's completed backup with its key and checks every share against its
        recorded public share, on both sides; nothing is reshared or changed.

        Raises: as :meth:`recover_wallet`, besides WalletModificationInProgress.
        """
        p, _, opened = self._read_backup(method, cipher_text, progress, VERIFY_ORDER, config)
        self.custodian.check_backup(self.client_id, opened.binding.backup_id)
        p.done()
        return BackupCheck(
            method=method,
            backup_id=opened.binding.backup_id,
            pair_ids={c: pr.pair_id for c, pr in opened.pairs.items()},
            addresses={c: s.address for c, s in opened.shares.items()},
        )

    def eject_private_keys(
        self,
        method: str,
        *,
        cipher_text: bytes | None = None,
        progress: ProgressCallback | None = None,
        **config: Unpack[MethodOptions],
    ) -> dict[str, shares.EjectedKey]:
        """The wallet's private keys, from the method's completed backup and the custodian's
        backup shares, which it releases only inside its eject authorisation window.

        Each key is checked against the wallet's public key; secp256k1 keys come as hex,
        ed25519 keys as a base58 scalar (``EjectedKey.private_key``; its repr hides it).

        Raises:
            EjectNotAuthorized: outside the custodian's authorisation window.
            NoValidBackup, DecryptFailed, ShareVerificationFailed: as :meth:`recover_wallet`.
        """
        p, _, opened = self._read_backup(method, cipher_text, progress, EJECT_ORDER, config)

        p.step(Status.RECOVERING_BACKUP)
        released = self.custodian.release_eject_shares(self.client_id, opened.binding.backup_id)
        if set(released) != set(opened.shares):
            raise ShareVerificationFailed("the custodian released shares for other curves")
        out: dict[str, shares.EjectedKey] = {}
        for curve, data in released.items():
            pair = opened.pairs[curve]
            theirs = load_backup_share(
                data, pair, role=shares.CUSTODIAN, what=f"the custodian's {curve} backup share"
            )
            try:
                key = shares.eject(opened.shares[curve], theirs)
            except InvalidShare as e:
                raise ShareVerificationFailed(f"the {curve} shares do not combine: {e}") from None
            # Against the key in the client's own backup share (authenticated by the method's
            # key), not an address the custodian supplies.
            if key.address != opened.shares[curve].address:
                raise ShareVerificationFailed(f"the ejected {curve} key is not the wallet's")
            out[curve] = key
        p.done()
        return out
