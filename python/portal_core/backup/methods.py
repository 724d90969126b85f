"""Backup methods: where the key that seals the client's backup document comes from.

Two kinds, as in the seed system:

* **Stored-key methods** (``CUSTOM``, and later ``GDRIVE``, ``ICLOUD``, ``PASSKEY``): a fresh
  random 256-bit key per backup, kept by a :class:`KeyStorage` with the seed system's
  interface ``read()``, ``write(key)``, ``delete()``, ``validate_operations()``.
* **Derived-key methods** (``PASSWORD``, :mod:`portal_core.backup.password`): the key is
  derived from what the user knows; its public parameters travel in the cipher text.

Each backup gets its own key *slot* (``<wallet id>.<backup id>``): a new backup never
overwrites the key of the completed one it is replacing, so a crash half-way leaves the old
backup openable. The flows delete the old slot only after the new backup completed.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from portal_core.backup.api import Keepers
from portal_core.backup.errors import NoValidBackup, UnsupportedBackupMethod
from portal_core.backup.files import FILE_NAME, remove_private, write_private
from portal_core.store.custodian_records import BACKUP_METHODS

__all__ = [
    "BACKUP_METHODS",
    "FileKeyStorage",
    "KeyBinding",
    "KeyProvider",
    "KeyStorage",
    "MethodKey",
    "StorageFactory",
    "StoredKeyMethod",
    "check_method",
    "not_configured",
]

KEY_LEN = 32

# Why each method that this build cannot serve by itself is unavailable.
_NOT_CONFIGURED = {
    "PASSKEY": "it needs the passkey enclave (a key released after a WebAuthn assertion): "
    "register_storage('PASSKEY', portal_core.enclave.passkey_storage(enclave, device, user))",
    "GDRIVE": "it needs a Google Drive key storage, which is not configured on this client",
    "ICLOUD": "it needs an iCloud key-value key storage (iOS only), which is not configured "
    "on this client",
    "CUSTOM": "it needs a key storage: pass key_dir=<directory> or storage=<factory>, or "
    "register one with register_storage('CUSTOM', ...)",
}


def check_method(method: object) -> str:
    """The method name, if it is one of :data:`BACKUP_METHODS`.

    Raises:
        UnsupportedBackupMethod: any other value.
    """
    if not isinstance(method, str) or method not in BACKUP_METHODS:
        raise UnsupportedBackupMethod(
            f"unknown backup method {method!r}: expected one of {', '.join(BACKUP_METHODS)}"
        )
    return method


def not_configured(method: str) -> UnsupportedBackupMethod:
    """The error for a known method that this client has no storage for."""
    return UnsupportedBackupMethod(
        f"{method} backups are not configured: {_NOT_CONFIGURED[method]}"
    )


@dataclass(frozen=True)
class KeyBinding:
    """What a backup key belongs to: bound into the cipher text and naming the key's slot.
    ``keepers``: who keeps the backup's halves (known when the backup is made; a method
    that leans on a third party, the PIN vault, checks that party is neither)."""

    client_id: str
    wallet_id: str
    backup_id: str
    method: str
    keepers: Keepers = field(default=Keepers(), compare=False)

    @property
    def slot(self) -> str:
        slot = f"{self.wallet_id}.{self.backup_id}"
        if not FILE_NAME.fullmatch(slot):
            raise ValueError(
                f"ids {self.wallet_id!r} and {self.backup_id!r} do not form a key slot"
            )
        return slot


@dataclass
class MethodKey:
    """A backup key and the public parameters stored beside the cipher text."""

    key: bytearray = field(repr=False)
    params: dict[str, str]

    def wipe(self) -> None:
        # Best effort: Python may hold other copies, but this one at least goes.
        self.key[:] = bytes(len(self.key))


@runtime_checkable
class KeyStorage(Protocol):
    """The seed system's storage interface: one key, in one place the user controls."""

    def validate_operations(self) -> bool:
        """Whether the storage can write, read and delete (checked before any share work)."""
        ...

    def read(self) -> bytes:
        """The key. Raises NoValidBackup if it is not there."""
        ...

    def write(self, key: bytes) -> None:
        """Stores the key durably (all of it, or nothing). Raises OSError/PortalError on failure."""
        ...

    def delete(self) -> None:
        """Removes the key; no error if it is already gone."""
        ...


# Makes the storage of one key slot.
StorageFactory = Callable[[str], KeyStorage]


class KeyProvider(Protocol):
    """What the flows need from a method (stored-key or derived-key)."""

    method: str

    def validate_operations(self, *, new: bool, keepers: Keepers | None = None) -> None:
        """Checks the method can work before any share work (``new``: for a new backup, whose
        halves ``keepers`` will keep).

        Raises:
            UnsupportedBackupMethod, PasswordRequired, WeakPassword: the method cannot be used.
        """
        ...

    def new_key(self, binding: KeyBinding) -> MethodKey:
        """A key for a new backup, with the parameters to store beside its cipher text."""
        ...

    def persist_key(self, binding: KeyBinding, key: MethodKey) -> None:
        """Makes the key durable where the method keeps it (a no-op for derived keys)."""
        ...

    def recover_key(self, binding: KeyBinding, params: Mapping[str, str]) -> bytearray:
        """The key of an existing backup, from its slot or from its parameters.

        Raises:
            NoValidBackup: the key is gone. DecryptFailed: bad parameters.
        """
        ...

    def discard_key(self, binding: KeyBinding) -> None:
        """Deletes what the method keeps for a backup that was replaced or abandoned."""
        ...


class StoredKeyMethod:
    """A stored-key method: a random 256-bit key per backup in a :class:`KeyStorage` slot."""

    def __init__(self, method: str, storages: StorageFactory) -> None:
        self.method = check_method(method)
        if method == "PASSWORD":
            raise ValueError("PASSWORD derives its key: use PasswordMethod")
        self._storages = storages

    def __repr__(self) -> str:
        return f"StoredKeyMethod({self.method!r})"

    def validate_operations(self, *, new: bool, keepers: Keepers | None = None) -> None:
        storage = self._storages("validate-operations")
        if not storage.validate_operations():
            raise UnsupportedBackupMethod(
                f"the {self.method} key storage {storage!r} failed its check (it could not "
                "write, read and delete a test key)"
            )

    def new_key(self, binding: KeyBinding) -> MethodKey:
        return MethodKey(bytearray(secrets.token_bytes(KEY_LEN)), {"key.slot": binding.slot})

    def persist_key(self, binding: KeyBinding, key: MethodKey) -> None:
        self._storages(binding.slot).write(bytes(key.key))

    def recover_key(self, binding: KeyBinding, params: Mapping[str, str]) -> bytearray:
        # The slot comes from the binding (ids the flows checked), never from the cipher
        # text's unauthenticated header: a forged header cannot point the read elsewhere.
        key = bytearray(self._storages(binding.slot).read())
        if len(key) != KEY_LEN:
            raise NoValidBackup(f"the {self.method} backup key is {len(key)} bytes, not {KEY_LEN}")
        return key

    def discard_key(self, binding: KeyBinding) -> None:
        self._storages(binding.slot).delete()


class FileKeyStorage:
    """A key in a local file: mode 0600, written atomically and durably.

    Written by :func:`~portal_core.backup.files.write_private` (a temporary file, fsynced,
    renamed over the key file, the directory fsynced): after a crash the file holds the old
    key or the new one, never a part. File format: ``b"PCBK"``, a version byte (1),
    the 32-byte key.
    """

    MAGIC = b"PCBK\x01"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileKeyStorage({str(self.path)!r})"

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str]) -> StorageFactory:
        """A factory of storages, one file per key slot in ``directory`` (created, mode 0700,
        when first used)."""
        base = Path(directory)

        def make(slot: str) -> FileKeyStorage:
            if not FILE_NAME.fullmatch(slot):
                raise ValueError(f"invalid key slot name {slot!r}")
            try:
                base.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError:
                pass  # validate_operations() reports a directory it cannot use
            return cls(base / f"{slot}.key")

        return make

    def write(self, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError(f"a backup key is {KEY_LEN} bytes, got {len(key)}")
        write_private(self.path, self.MAGIC + bytes(key))

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                data = f.read(len(self.MAGIC) + KEY_LEN + 1)
        except FileNotFoundError:
            raise NoValidBackup(f"the backup key file {str(self.path)!r} is missing") from None
        if len(data) != len(self.MAGIC) + KEY_LEN or not data.startswith(self.MAGIC):
            raise NoValidBackup(f"{str(self.path)!r} is not a portal-core backup key file")
        return data[len(self.MAGIC) :]

    def delete(self) -> None:
        remove_private(self.path)

    def validate_operations(self) -> bool:
        # A name of its own, so that checks running at once do not trip over each other.
        probe = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.probe")
        data = self.MAGIC + secrets.token_bytes(KEY_LEN)
        try:
            if not self.path.parent.is_dir():
                return False
            write_private(probe, data)
            ok = probe.read_bytes() == data and stat.S_IMODE(probe.stat().st_mode) == 0o600
            probe.unlink()
            return ok
        except OSError:
            probe.unlink(missing_ok=True)
            return False
