"""Shared set-up of the backup tests: a custodian on the session's SoftHSM token, clients,
a clock the tests move, a fake guess-limited vault, and a crash hook.

Test modules import the fixtures they use from here (``from backup_helpers import
world_fixture``); a fixture's name is the one without ``_fixture``.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from http_world import HttpCustodianFacade, RunningService
from portal_core.backup import (
    Argon2Params,
    LocalCustodian,
    MemoryDevice,
    MemoryIntegratorStore,
    WalletClient,
)
from portal_core.exceptions import DecryptFailed, NoValidBackup
from portal_core.store import SqliteStore

# Small Argon2id costs keep the suite fast; the defaults (OWASP's) are tested on their own.
FAST = Argon2Params(time_cost=1, memory_cost=64, parallelism=1)
PASSWORD = "plover quartz cabinet 7"
OTHER_PASSWORD = "marble heron lantern 4"
# The operator identities the test custodians are configured with.
CUSTODIAN_OPERATOR = "custodian-op"
INTEGRATOR_OPERATOR = "integrator-op"


class Crash(BaseException):
    """The process dying at a step: a BaseException, so ``except Exception`` cleanup (which a
    real crash would never run) does not run either."""


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CrashAt:
    """A checkpoint hook that records every step and raises :class:`Crash` at step ``n``
    (1-based; 0 never)."""

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.names: list[str] = []

    def __call__(self, name: str) -> None:
        self.names.append(name)
        if len(self.names) == self.n:
            raise Crash(name)


@dataclass(frozen=True)
class FakeSlot:
    tries_left: int
    params: bytes


class FakeVault:
    """An in-memory guess-limited vault with the enclave's interface (slots owned by their
    client, params recorded at enrolment), run by ``operator``: enough to exercise the seam.
    ``released`` counts the access keys it was sent."""

    def __init__(self, operator: str = "vault-op") -> None:
        self.operator = operator
        self.slots: dict[str, dict[str, Any]] = {}
        self.released: list[bytes] = []
        self.lock = threading.Lock()

    def enroll(
        self, slot: str, access_key: bytes, *, owner: str, max_tries: int, params: bytes
    ) -> bytes:
        secret = uuid.uuid4().bytes * 2
        with self.lock:
            self.slots[slot] = {
                "access": bytes(access_key),
                "secret": secret,
                "tries": max_tries,
                "owner": owner,
                "params": bytes(params),
            }
        return secret

    def _entry(self, slot: str, owner: str) -> dict[str, Any]:
        entry = self.slots.get(slot)
        if entry is None or entry["owner"] != owner:
            raise NoValidBackup(f"no vault secret for {slot!r}")
        return entry

    def release(self, slot: str, access_key: bytes, *, owner: str) -> bytes:
        with self.lock:
            entry = self._entry(slot, owner)
            self.released.append(bytes(access_key))
            if not hmac.compare_digest(entry["access"], bytes(access_key)):
                entry["tries"] -= 1
                if entry["tries"] <= 0:
                    del self.slots[slot]
                    raise NoValidBackup("too many wrong PINs: the vault secret is destroyed")
                raise DecryptFailed(f"wrong PIN: {entry['tries']} tries left")
            secret: bytes = entry["secret"]
            return secret

    def status(self, slot: str, *, owner: str) -> FakeSlot:
        with self.lock:
            entry = self._entry(slot, owner)
            return FakeSlot(entry["tries"], entry["params"])

    def delete(self, slot: str, *, owner: str) -> None:
        with self.lock:
            if slot in self.slots and self.slots[slot]["owner"] == owner:
                del self.slots[slot]


class DictStorage:
    """A key storage with the seed interface, keyed by slot, in memory (stands in for a
    cloud storage registered for a method)."""

    def __init__(self, items: dict[str, bytes], slot: str) -> None:
        self.items, self.slot = items, slot

    def validate_operations(self) -> bool:
        return True

    def read(self) -> bytes:
        try:
            return self.items[self.slot]
        except KeyError:
            raise NoValidBackup(f"no key in slot {self.slot!r}") from None

    def write(self, key: bytes) -> None:
        self.items[self.slot] = bytes(key)

    def delete(self) -> None:
        self.items.pop(self.slot, None)


class World:
    """One custodian database and key directory; custodians and clients made over them, as
    many times as a test needs (a restart is a new custodian over the same store file)."""

    def __init__(
        self,
        kms: Any,
        tmp: Path,
        *,
        self_managed: bool = False,
        http: RunningService | None = None,
    ) -> None:
        self.kms = kms
        # Over HTTP (``http``): custodian() is the service, reached with real API keys.
        self.http = HttpCustodianFacade(http) if http is not None else None
        self.tmp = tmp
        self.db = tmp / "custodian.db"
        self.key_dir = tmp / "keys"
        self.key_dir.mkdir(parents=True, exist_ok=True)
        self.key_name = (
            self.http.key_name if self.http is not None else f"backup-test-{uuid.uuid4().hex[:10]}"
        )
        self.clock = Clock()
        self.integrator = MemoryIntegratorStore() if self_managed else None
        self.stores: list[SqliteStore] = []

    def custodian(
        self, checkpoint: Callable[[str], None] | None = None, **kw: Any
    ) -> LocalCustodian:
        if self.http is not None:
            assert checkpoint is None and not kw, "a service process takes no test hooks"
            return self.http  # type: ignore[return-value] # the same calls, over HTTP
        store = SqliteStore(self.db, checkpoint=checkpoint)
        self.stores.append(store)
        kw.setdefault("operator", CUSTODIAN_OPERATOR)
        if self.integrator is not None:
            kw.setdefault("integrator_operator", INTEGRATOR_OPERATOR)
        return LocalCustodian(
            self.kms,
            store,
            key_name=self.key_name,
            integrator=self.integrator,
            clock=self.clock,
            checkpoint=checkpoint,
            **kw,
        )

    def client(
        self,
        custodian: LocalCustodian,
        client_id: str,
        device: MemoryDevice | None = None,
        **kw: Any,
    ) -> WalletClient:
        kw.setdefault("argon2", FAST)
        api = custodian.api(client_id) if isinstance(custodian, HttpCustodianFacade) else custodian
        return WalletClient(
            api,
            client_id,
            device=device if device is not None else MemoryDevice(),
            custom_key_dir=str(self.key_dir),
            **kw,
        )

    def new_wallet(
        self, custodian: LocalCustodian | None = None
    ) -> tuple[LocalCustodian, WalletClient]:
        custodian = custodian or self.custodian()
        client = self.client(custodian, custodian.create_client())
        client.create_wallet()
        return custodian, client

    def close(self) -> None:
        for s in self.stores:
            s.close()
        if self.http is not None:
            self.http.close()


@pytest.fixture(name="world")
def world_fixture(request: pytest.FixtureRequest, kms: Any, tmp_path: Path) -> Iterator[World]:
    """An in-process custodian's world; with :data:`local_and_http`, also the custodian as a
    real HTTP service (two worker processes)."""
    mode = getattr(request, "param", "local")
    http = request.getfixturevalue("http_service") if mode == "http" else None
    w = World(kms, tmp_path, http=http)
    yield w
    w.close()


# The flow suite runs once in-process and once over HTTP: a test marked with this gets a
# ``world`` of each kind (tests that move the custodian's clock or crash it stay in-process).
local_and_http = pytest.mark.parametrize("world", ["local", "http"], indirect=True)


@pytest.fixture(name="self_managed_world")
def self_managed_world_fixture(kms: Any, tmp_path: Path) -> Iterator[World]:
    w = World(kms, tmp_path, self_managed=True)
    yield w
    w.close()
