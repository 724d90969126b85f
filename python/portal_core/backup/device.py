"""Where the device keeps its signing shares: :class:`DeviceStore`, the interface (a
keychain or keystore on a phone), with :class:`FileDevice`, durable files of mode 0600, and
:class:`MemoryDevice`, for tests (losing the object is losing the device).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from portal_core.backup.errors import DeviceStoreError
from portal_core.backup.files import FILE_NAME, remove_private, write_private

__all__ = ["DeviceStore", "DeviceStoreError", "FileDevice", "MemoryDevice"]


class DeviceStore(Protocol):
    """Where the device keeps its serialized signing shares. ``save`` replaces every share
    of the client at once."""

    def load(self, client_id: str) -> dict[str, bytes]: ...

    def save(self, client_id: str, shares: Mapping[str, bytes]) -> None: ...

    def clear(self, client_id: str) -> None: ...


class FileDevice:
    """A :class:`DeviceStore` in a directory (created mode 0700 when first written): one
    file per client, ``<client id>.device``, mode 0600, replaced atomically and durably, so
    a restart keeps the wallet and a crash leaves the old shares or the new ones.

    Format: ``b"PCDV"``, a version byte (1), then UTF-8 JSON ``{"<CURVE>": "<base64 of the
    serialized share>"}``. The shares are the device's secrets: the file is what a phone's
    keychain holds, and deserves the same care (an encrypted volume, a backup exclusion).
    """

    MAGIC = b"PCDV\x01"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileDevice({str(self.directory)!r})"

    def _path(self, client_id: str) -> Path:
        if not isinstance(client_id, str) or not FILE_NAME.fullmatch(client_id):
            raise ValueError(f"client id {client_id!r} cannot name a device file")
        return self.directory / f"{client_id}.device"

    def load(self, client_id: str) -> dict[str, bytes]:
        path = self._path(client_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        if not data.startswith(self.MAGIC):
            raise DeviceStoreError(f"{str(path)!r} is not a portal-core device file")
        try:
            entries = json.loads(data[len(self.MAGIC) :].decode("utf-8"))
            return {c: base64.b64decode(v, validate=True) for c, v in entries.items()}
        except (ValueError, AttributeError, TypeError, binascii.Error):
            raise DeviceStoreError(f"the device file {str(path)!r} is damaged") from None

    def save(self, client_id: str, shares: Mapping[str, bytes]) -> None:
        path = self._path(client_id)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = {c: base64.b64encode(bytes(v)).decode("ascii") for c, v in shares.items()}
        write_private(path, self.MAGIC + json.dumps(body, sort_keys=True).encode("utf-8"))

    def clear(self, client_id: str) -> None:
        remove_private(self._path(client_id))


class MemoryDevice:
    """A :class:`DeviceStore` in memory: losing the object is losing the device."""

    def __init__(self) -> None:
        self._shares: dict[str, dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        held = {cid: sorted(s) for cid, s in self._shares.items()}
        return f"MemoryDevice({held})"

    def load(self, client_id: str) -> dict[str, bytes]:
        with self._lock:
            return dict(self._shares.get(client_id, {}))

    def save(self, client_id: str, shares: Mapping[str, bytes]) -> None:
        with self._lock:
            self._shares[client_id] = {c: bytes(s) for c, s in shares.items()}

    def clear(self, client_id: str) -> None:
        with self._lock:
            self._shares.pop(client_id, None)
