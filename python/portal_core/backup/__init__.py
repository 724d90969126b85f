"""Backup, recovery and eject of MPC wallets: the client and custodian flows.

    from portal_core.backup import LocalCustodian, WalletClient
    from portal_core.kms import Pkcs11Kms
    from portal_core.store import SqliteStore

    custodian = LocalCustodian(Pkcs11Kms.from_env(), SqliteStore("custodian.db"))
    client = WalletClient(custodian, custodian.create_client(), custom_key_dir="keys")
    client.create_wallet()
    client.backup_wallet("PASSWORD", password="correct horse battery staple")
    client.backup_wallet("CUSTOM")
    # ... the device is lost; a new one, same client id:
    WalletClient(custodian, client.client_id).recover_wallet("PASSWORD", password="...")

The client reaches the custodian only through :class:`CustodianApi` (one method per future
HTTP endpoint). Flows, records, statuses and the crash-consistency argument:
``docs/backup.md``.
"""

from __future__ import annotations

from portal_core.backup.api import (
    CurveKey,
    CustodianAdmin,
    CustodianApi,
    IntegratorBackupStore,
    Keepers,
    MemoryIntegratorStore,
    PairInfo,
    SessionOffer,
    WalletInfo,
)
from portal_core.backup.client import (
    BackupCheck,
    BackupResult,
    DeviceStore,
    MemoryDevice,
    WalletClient,
)
from portal_core.backup.custodian import EJECT_WINDOW_SECONDS, LocalCustodian, SealingKms
from portal_core.backup.methods import (
    BACKUP_METHODS,
    FileKeyStorage,
    KeyBinding,
    KeyProvider,
    KeyStorage,
    MethodKey,
    StorageFactory,
    StoredKeyMethod,
)
from portal_core.backup.password import (
    OWASP_ARGON2,
    Argon2Params,
    GuessLimitedVault,
    PasswordMethod,
    PasswordPolicy,
    common_passwords,
)
from portal_core.backup.progress import (
    BACKUP_ORDER,
    EJECT_ORDER,
    KEYGEN_ORDER,
    RECOVERY_ORDER,
    VERIFY_ORDER,
    ProgressCallback,
    Status,
)
from portal_core.store.records import PairStatus

__all__ = [
    "BACKUP_METHODS",
    "BACKUP_ORDER",
    "EJECT_ORDER",
    "EJECT_WINDOW_SECONDS",
    "KEYGEN_ORDER",
    "OWASP_ARGON2",
    "RECOVERY_ORDER",
    "VERIFY_ORDER",
    "Argon2Params",
    "BackupCheck",
    "BackupResult",
    "CurveKey",
    "CustodianAdmin",
    "CustodianApi",
    "DeviceStore",
    "FileKeyStorage",
    "GuessLimitedVault",
    "IntegratorBackupStore",
    "Keepers",
    "KeyBinding",
    "KeyProvider",
    "KeyStorage",
    "LocalCustodian",
    "MemoryDevice",
    "MemoryIntegratorStore",
    "MethodKey",
    "PairInfo",
    "PairStatus",
    "PasswordMethod",
    "PasswordPolicy",
    "ProgressCallback",
    "SealingKms",
    "SessionOffer",
    "Status",
    "StorageFactory",
    "StoredKeyMethod",
    "WalletClient",
    "WalletInfo",
    "common_passwords",
]
