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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `as`: re-exported for the type checker, which does not run __getattr__
    from portal_core.backup.api import (
        CurveKey as CurveKey,
    )
    from portal_core.backup.api import (
        CustodianAdmin as CustodianAdmin,
    )
    from portal_core.backup.api import (
        CustodianApi as CustodianApi,
    )
    from portal_core.backup.api import (
        IntegratorBackupStore as IntegratorBackupStore,
    )
    from portal_core.backup.api import (
        Keepers as Keepers,
    )
    from portal_core.backup.api import (
        MemoryIntegratorStore as MemoryIntegratorStore,
    )
    from portal_core.backup.api import (
        PairInfo as PairInfo,
    )
    from portal_core.backup.api import (
        SessionOffer as SessionOffer,
    )
    from portal_core.backup.api import (
        WalletInfo as WalletInfo,
    )
    from portal_core.backup.client import (
        BackupCheck as BackupCheck,
    )
    from portal_core.backup.client import (
        BackupResult as BackupResult,
    )
    from portal_core.backup.client import (
        MethodOptions as MethodOptions,
    )
    from portal_core.backup.client import (
        WalletClient as WalletClient,
    )
    from portal_core.backup.custodian import (
        EJECT_WINDOW_SECONDS as EJECT_WINDOW_SECONDS,
    )
    from portal_core.backup.custodian import (
        LocalCustodian as LocalCustodian,
    )
    from portal_core.backup.custodian import (
        SealingKms as SealingKms,
    )
    from portal_core.backup.device import (
        DeviceStore as DeviceStore,
    )
    from portal_core.backup.device import (
        FileDevice as FileDevice,
    )
    from portal_core.backup.device import (
        MemoryDevice as MemoryDevice,
    )
    from portal_core.backup.errors import (
        CustodianMismatch as CustodianMismatch,
    )
    from portal_core.backup.errors import (
        DecryptFailed as DecryptFailed,
    )
    from portal_core.backup.errors import (
        DeviceReplaced as DeviceReplaced,
    )
    from portal_core.backup.errors import (
        DeviceStoreError as DeviceStoreError,
    )
    from portal_core.backup.errors import (
        EjectNotAuthorized as EjectNotAuthorized,
    )
    from portal_core.backup.errors import (
        KdfParametersRefused as KdfParametersRefused,
    )
    from portal_core.backup.errors import (
        NoValidBackup as NoValidBackup,
    )
    from portal_core.backup.errors import (
        PasswordRequired as PasswordRequired,
    )
    from portal_core.backup.errors import (
        ShareVerificationFailed as ShareVerificationFailed,
    )
    from portal_core.backup.errors import (
        UnsupportedBackupMethod as UnsupportedBackupMethod,
    )
    from portal_core.backup.errors import (
        VaultNotIndependent as VaultNotIndependent,
    )
    from portal_core.backup.errors import (
        WalletAlreadyExists as WalletAlreadyExists,
    )
    from portal_core.backup.errors import (
        WalletModificationInProgress as WalletModificationInProgress,
    )
    from portal_core.backup.errors import (
        WalletNotFound as WalletNotFound,
    )
    from portal_core.backup.errors import (
        WeakPassword as WeakPassword,
    )
    from portal_core.backup.methods import (
        BACKUP_METHODS as BACKUP_METHODS,
    )
    from portal_core.backup.methods import (
        FileKeyStorage as FileKeyStorage,
    )
    from portal_core.backup.methods import (
        KeyBinding as KeyBinding,
    )
    from portal_core.backup.methods import (
        KeyProvider as KeyProvider,
    )
    from portal_core.backup.methods import (
        KeyStorage as KeyStorage,
    )
    from portal_core.backup.methods import (
        MethodKey as MethodKey,
    )
    from portal_core.backup.methods import (
        StorageFactory as StorageFactory,
    )
    from portal_core.backup.methods import (
        StoredKeyMethod as StoredKeyMethod,
    )
    from portal_core.backup.password import (
        OWASP_ARGON2 as OWASP_ARGON2,
    )
    from portal_core.backup.password import (
        Argon2Params as Argon2Params,
    )
    from portal_core.backup.password import (
        GuessLimitedVault as GuessLimitedVault,
    )
    from portal_core.backup.password import (
        PasswordMethod as PasswordMethod,
    )
    from portal_core.backup.password import (
        PasswordPolicy as PasswordPolicy,
    )
    from portal_core.backup.password import (
        common_passwords as common_passwords,
    )
    from portal_core.backup.progress import (
        BACKUP_ORDER as BACKUP_ORDER,
    )
    from portal_core.backup.progress import (
        EJECT_ORDER as EJECT_ORDER,
    )
    from portal_core.backup.progress import (
        KEYGEN_ORDER as KEYGEN_ORDER,
    )
    from portal_core.backup.progress import (
        RECOVERY_ORDER as RECOVERY_ORDER,
    )
    from portal_core.backup.progress import (
        VERIFY_ORDER as VERIFY_ORDER,
    )
    from portal_core.backup.progress import (
        ProgressCallback as ProgressCallback,
    )
    from portal_core.backup.progress import (
        Status as Status,
    )
    from portal_core.store.custodian_records import (
        PairStatus as PairStatus,
    )

# Each public name and the module that defines it. They are loaded on first use, so that the
# layers below the flows (the store, the enclave) can raise the flows' errors
# (portal_core.backup.errors) without importing the flows themselves.
_EXPORTS = {
    "CurveKey": "portal_core.backup.api",
    "CustodianAdmin": "portal_core.backup.api",
    "CustodianApi": "portal_core.backup.api",
    "IntegratorBackupStore": "portal_core.backup.api",
    "Keepers": "portal_core.backup.api",
    "MemoryIntegratorStore": "portal_core.backup.api",
    "PairInfo": "portal_core.backup.api",
    "SessionOffer": "portal_core.backup.api",
    "WalletInfo": "portal_core.backup.api",
    "BackupCheck": "portal_core.backup.client",
    "BackupResult": "portal_core.backup.client",
    "MethodOptions": "portal_core.backup.client",
    "WalletClient": "portal_core.backup.client",
    "EJECT_WINDOW_SECONDS": "portal_core.backup.custodian",
    "LocalCustodian": "portal_core.backup.custodian",
    "SealingKms": "portal_core.backup.custodian",
    "DeviceStore": "portal_core.backup.device",
    "FileDevice": "portal_core.backup.device",
    "MemoryDevice": "portal_core.backup.device",
    "CustodianMismatch": "portal_core.backup.errors",
    "DecryptFailed": "portal_core.backup.errors",
    "DeviceReplaced": "portal_core.backup.errors",
    "DeviceStoreError": "portal_core.backup.errors",
    "EjectNotAuthorized": "portal_core.backup.errors",
    "KdfParametersRefused": "portal_core.backup.errors",
    "NoValidBackup": "portal_core.backup.errors",
    "PasswordRequired": "portal_core.backup.errors",
    "ShareVerificationFailed": "portal_core.backup.errors",
    "UnsupportedBackupMethod": "portal_core.backup.errors",
    "VaultNotIndependent": "portal_core.backup.errors",
    "WalletAlreadyExists": "portal_core.backup.errors",
    "WalletModificationInProgress": "portal_core.backup.errors",
    "WalletNotFound": "portal_core.backup.errors",
    "WeakPassword": "portal_core.backup.errors",
    "BACKUP_METHODS": "portal_core.backup.methods",
    "FileKeyStorage": "portal_core.backup.methods",
    "KeyBinding": "portal_core.backup.methods",
    "KeyProvider": "portal_core.backup.methods",
    "KeyStorage": "portal_core.backup.methods",
    "MethodKey": "portal_core.backup.methods",
    "StorageFactory": "portal_core.backup.methods",
    "StoredKeyMethod": "portal_core.backup.methods",
    "Argon2Params": "portal_core.backup.password",
    "GuessLimitedVault": "portal_core.backup.password",
    "OWASP_ARGON2": "portal_core.backup.password",
    "PasswordMethod": "portal_core.backup.password",
    "PasswordPolicy": "portal_core.backup.password",
    "common_passwords": "portal_core.backup.password",
    "BACKUP_ORDER": "portal_core.backup.progress",
    "EJECT_ORDER": "portal_core.backup.progress",
    "KEYGEN_ORDER": "portal_core.backup.progress",
    "ProgressCallback": "portal_core.backup.progress",
    "RECOVERY_ORDER": "portal_core.backup.progress",
    "Status": "portal_core.backup.progress",
    "VERIFY_ORDER": "portal_core.backup.progress",
    "PairStatus": "portal_core.store.custodian_records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'portal_core.backup' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
