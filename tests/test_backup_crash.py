"""Crash consistency: a crash at any step of a backup or recovery leaves the old completed
backup or the new one, never a completed pair that cannot be opened, and never a wallet
locked for good.

Each scenario is run once to list its steps (every checkpoint of the client, the custodian
and the store, in order), then once per step with a crash injected there; after each crash a
new custodian and client over the same store and key directory check the state. One more
test kills a real child process at two steps of the completing transaction.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from backup_helpers import OTHER_PASSWORD, PASSWORD, Crash, CrashAt, World
from portal_core.backup import MemoryDevice, MethodOptions
from portal_core.exceptions import DecryptFailed
from portal_core.store import PairStatus
from present import present

CURVES = {"SECP256K1", "ED25519"}
COMMIT_STEP = "store.complete_backup.marked"  # the last step inside the completing transaction


class Scenario:
    """A wallet with a completed PASSWORD and CUSTOM backup, and a device that holds it."""

    def __init__(self, kms: Any, tmp: Path, *, self_managed: bool = False) -> None:
        self.world = World(kms, tmp, self_managed=self_managed)
        custodian = self.world.custodian()
        self.client_id = custodian.create_client()
        self.device = MemoryDevice()
        phone = self.world.client(custodian, self.client_id, device=self.device)
        self.addresses = phone.create_wallet()
        self.old = {
            "PASSWORD": phone.backup_wallet("PASSWORD", password=PASSWORD),
            "CUSTOM": phone.backup_wallet("CUSTOM"),
        }
        self.new_cipher_text: bytes | None = None
        if self_managed:
            for method in self.old:
                phone.stored_client_backup_share(True, method)

    def attempt(self, hook: CrashAt, what: str) -> None:
        custodian = self.world.custodian(checkpoint=hook)
        phone = self.world.client(custodian, self.client_id, device=self.device, checkpoint=hook)
        if what == "recovery":
            fresh = self.world.client(custodian, self.client_id, checkpoint=hook)
            cipher_text = self._ct("PASSWORD", None)
            fresh.recover_wallet("PASSWORD", password=PASSWORD, cipher_text=cipher_text)
            return
        method = what
        config: MethodOptions = {"password": OTHER_PASSWORD} if method == "PASSWORD" else {}
        result = phone.backup_wallet(method, **config)
        self.new_cipher_text = result.cipher_text
        if not result.custodian_keeps_cipher_text:
            phone.stored_client_backup_share(True, method)

    def _ct(self, method: str, backup_id: str | None) -> bytes | None:
        """The cipher text to recover with: the custodian's (managed) or the integrator's."""
        if self.world.integrator is None:
            return None
        if backup_id is None or backup_id == self.old[method].backup_id:
            return self.old[method].cipher_text
        return self.new_cipher_text

    def check(self, *, new_method: str | None, expect_new: bool, where: str) -> None:
        """After a crash: restart, then every method has exactly one completed backup, the
        custodian's shares of it open and match, the client's open with the right key, and
        the wallet can be backed up again."""
        self.world.clock.advance(3600)  # past any lock the crash left behind
        custodian = self.world.custodian()
        wallet = present(custodian.store.wallet_for_client(self.client_id))
        for method in ("PASSWORD", "CUSTOM"):
            completed = [
                p
                for p in custodian.store.wallet_pairs(wallet.wallet_id)
                if p.method == method and p.status == PairStatus.COMPLETED
            ]
            assert {p.curve for p in completed} == CURVES, where
            (backup_id,) = {p.backup_id for p in completed}
            is_new = backup_id != self.old[method].backup_id
            assert is_new == (expect_new and method == new_method), (where, method)
            custodian.check_backup(self.client_id, backup_id)
            fresh = self.world.client(custodian, self.client_id)
            config: dict[str, Any] = {"cipher_text": self._ct(method, backup_id)}
            if method == "PASSWORD":
                right, wrong = (OTHER_PASSWORD, PASSWORD) if is_new else (PASSWORD, OTHER_PASSWORD)
                with pytest.raises(DecryptFailed):
                    fresh.recover_wallet(method, password=wrong, **config)
                config["password"] = right
            assert fresh.recover_wallet(method, **config) == self.addresses, (where, method)
        # Not wedged: a new backup goes through, and recovers.
        result = fresh.backup_wallet("CUSTOM")
        if not result.custodian_keeps_cipher_text:
            fresh.stored_client_backup_share(True, "CUSTOM")
        again = self.world.client(custodian, self.client_id)
        assert again.recover_wallet("CUSTOM", cipher_text=self._ct_of(result)) == self.addresses

    def _ct_of(self, result: Any) -> bytes | None:
        return None if result.custodian_keeps_cipher_text else result.cipher_text


def steps_of(kms: Any, tmp: Path, what: str, self_managed: bool) -> list[str]:
    scenario = Scenario(kms, tmp / "dry", self_managed=self_managed)
    hook = CrashAt(0)
    scenario.attempt(hook, what)
    scenario.world.close()
    return hook.names


@pytest.mark.parametrize(
    ("what", "self_managed"),
    [("PASSWORD", False), ("CUSTOM", False), ("CUSTOM", True), ("recovery", False)],
    ids=["password-backup", "custom-backup", "self-managed-backup", "recovery"],
)
def test_a_crash_at_any_step_leaves_a_consistent_store(kms, tmp_path, what, self_managed):
    steps = steps_of(kms, tmp_path, what, self_managed)
    assert len(steps) >= 8, steps  # the scenario really went through its steps
    if what != "recovery":
        assert COMMIT_STEP in steps and "client.backup.key_stored" in steps
    for n, name in enumerate(steps, 1):
        scenario = Scenario(kms, tmp_path / str(n), self_managed=self_managed)
        with pytest.raises(Crash):
            scenario.attempt(CrashAt(n), what)
        committed = what != "recovery" and n > steps.index(COMMIT_STEP) + 1
        scenario.check(
            new_method=None if what == "recovery" else what,
            expect_new=committed,
            where=f"crash at step {n} ({name})",
        )
        scenario.world.close()


# -- a real crash: the child process dies inside and right after the completing commit ------

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from portal_core.backup import Argon2Params, LocalCustodian, MemoryDevice, WalletClient
    from portal_core.kms import Pkcs11Kms
    from portal_core.store import SqliteStore

    args = json.loads(sys.argv[1])

    def die(name):
        if name == args["die_at"]:
            os._exit(77)  # no cleanup, no rollback, no flush: the process is gone

    kms = Pkcs11Kms.from_env(args["env"])
    store = SqliteStore(args["db"], checkpoint=die)
    custodian = LocalCustodian(
        kms, store, key_name=args["key_name"], checkpoint=die, clock=lambda: args["now"]
    )
    device = MemoryDevice()
    device.save(args["client_id"], {c: bytes.fromhex(s) for c, s in args["shares"].items()})
    client = WalletClient(
        custodian, args["client_id"], device=device, custom_key_dir=args["key_dir"],
        checkpoint=die,
    )
    client.backup_wallet("CUSTOM")
    sys.exit(0)
    """
)


@pytest.mark.parametrize(
    ("die_at", "expect_new"), [(COMMIT_STEP, False), ("custodian.complete.committed", True)]
)
def test_a_killed_process_leaves_the_old_or_the_new_backup(
    kms, hsm_env, tmp_path, die_at, expect_new
):
    scenario = Scenario(kms, tmp_path)
    for store in scenario.world.stores:
        store.close()
    args = {
        "env": hsm_env,
        "db": str(scenario.world.db),
        "key_dir": str(scenario.world.key_dir),
        "key_name": scenario.world.key_name,
        "client_id": scenario.client_id,
        "shares": {c: s.hex() for c, s in scenario.device.load(scenario.client_id).items()},
        "now": scenario.world.clock.now,
        "die_at": die_at,
    }
    env = {**os.environ, **hsm_env}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 77, proc.stderr
    scenario.world.stores = []
    scenario.check(new_method="CUSTOM", expect_new=expect_new, where=f"killed at {die_at}")
    scenario.world.close()
