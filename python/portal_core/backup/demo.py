"""The wallet part of ``portal-core demo``: every flow end to end on a real HSM token.

Creates a wallet on both curves, backs it up with PASSWORD and CUSTOM, loses the device,
recovers with each method on a new one, checks the addresses, and ejects after the
custodian's authorisation, recording each step's progress statuses and timings. Nothing
secret is recorded: ejected keys are described (format, and that they match the wallet),
never shown.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portal_core import envelope
from portal_core.backup.client import WalletClient
from portal_core.backup.custodian import LocalCustodian
from portal_core.backup.device import FileDevice
from portal_core.backup.errors import DecryptFailed, DeviceReplaced, EjectNotAuthorized
from portal_core.backup.password import OWASP_ARGON2, Argon2Params
from portal_core.exceptions import PortalError
from portal_core.kms import KeyedSealingKms
from portal_core.store import SqliteStore

__all__ = ["DEMO_KEY_NAME", "DEMO_PASSWORD", "format_text", "run"]

# The demo's own key-encryption key: never the production key name (custodian-shares) of
# whatever token the environment points at.
DEMO_KEY_NAME = "portal-core-demo-shares"

# A demo password that passes the policy (long, not on the common list). Not a secret: it
# protects a throwaway wallet in a temporary directory.
DEMO_PASSWORD = "correct horse battery staple"  # noqa: S105


class DemoFailed(PortalError):
    """A demo step did not give the result it exists to show."""


class _Steps:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def run(
        self, name: str, fn: Callable[[Callable[[dict[str, object]], None]], dict[str, Any]]
    ) -> dict[str, Any]:
        events: list[dict[str, Any]] = []
        t0 = time.perf_counter()

        def progress(event: dict[str, object]) -> None:
            events.append({**event, "at_seconds": time.perf_counter() - t0})

        result = fn(progress)
        self.steps.append(
            {
                "step": name,
                "seconds": time.perf_counter() - t0,
                "progress": events,
                "result": result,
            }
        )
        return result


def _expect_error(kind: type[PortalError], fn: Callable[[], object]) -> dict[str, Any]:
    try:
        fn()
    except kind as e:
        return {"refused": True, "error": type(e).__name__, "message": str(e)}
    raise DemoFailed(f"expected {kind.__name__}, and the call succeeded")


def run(
    kms: KeyedSealingKms,
    *,
    argon2: Argon2Params = OWASP_ARGON2,
    key_name: str = DEMO_KEY_NAME,
    workdir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Runs the wallet demo; returns a JSON-able record of every step.

    Raises:
        DemoFailed: a step did not show what it should (e.g. recovered addresses differ).
        PortalError: a flow failed.
    """
    with tempfile.TemporaryDirectory(prefix="portal-demo-", dir=workdir) as tmp:
        store = SqliteStore(Path(tmp) / "custodian.db")
        try:
            return _run(kms, store, Path(tmp), argon2, key_name)
        finally:
            store.close()


def _run(
    kms: KeyedSealingKms, store: SqliteStore, tmp: Path, argon2: Argon2Params, key_name: str
) -> dict[str, Any]:
    custodian = LocalCustodian(kms, store, key_name=key_name, operator="demo-custodian")
    client_id = custodian.create_client()
    key_dir = tmp / "keys"
    key_dir.mkdir(mode=0o700)
    steps = _Steps()

    devices = iter(range(1, 1000))

    def new_device() -> WalletClient:
        # Each device keeps its shares in its own directory: a new directory is a new phone.
        device = FileDevice(tmp / f"device-{next(devices)}")
        return WalletClient(
            custodian, client_id, device=device, custom_key_dir=str(key_dir), argon2=argon2
        )

    phone = new_device()
    addresses = steps.run(
        "create a wallet (SECP256K1 and ED25519)",
        lambda progress: phone.create_wallet(progress=progress),
    )

    def backup(method: str, **config: Any) -> Callable[[Any], dict[str, Any]]:
        def go(progress: Any) -> dict[str, Any]:
            r = phone.backup_wallet(method, progress=progress, **config)
            header = envelope.inspect(r.cipher_text)
            out: dict[str, Any] = {
                "backup_id": r.backup_id,
                "pair_ids": r.pair_ids,
                "status": r.status,
                "cipher_text_bytes": len(r.cipher_text),
                "cipher_text_header": sorted(header["context"]),
            }
            if method == "CUSTOM":
                (key_file,) = key_dir.glob(f"*{r.backup_id}.key")
                out["key_file_mode"] = oct(stat.S_IMODE(key_file.stat().st_mode))
            return out

        return go

    steps.run("back up with PASSWORD (Argon2id)", backup("PASSWORD", password=DEMO_PASSWORD))
    steps.run("back up with CUSTOM (key file)", backup("CUSTOM"))
    steps.run(
        "backup status",
        lambda _p: {
            "is_wallet_backed_up": phone.is_wallet_backed_up(),
            "available_recovery_methods": phone.available_recovery_methods(),
            "is_wallet_recoverable": phone.is_wallet_recoverable(),
            "pair_statuses": sorted(
                {
                    f"{p.method} {p.curve}: {p.status}"
                    for p in custodian.list_backup_pairs(client_id)
                }
            ),
        },
    )
    steps.run(
        "verify the PASSWORD backup (no reshare)",
        lambda progress: {
            "addresses": phone.verify_backup(
                "PASSWORD", progress=progress, password=DEMO_PASSWORD
            ).addresses
        },
    )

    # The device is lost: from here on only new devices (same client id) are used; the old
    # one reappears once, to show that it is told it was replaced by the recovery.
    lost = phone

    def recover(method: str, **config: Any) -> Callable[[Any], dict[str, Any]]:
        def go(progress: Any) -> dict[str, Any]:
            device = new_device()
            got = device.recover_wallet(method, progress=progress, **config)
            if got != addresses:
                raise DemoFailed(f"recovery with {method} gave other addresses: {got}")
            return {"addresses": got, "addresses_match": True}

        return go

    steps.run("lose the device; recover with PASSWORD", recover("PASSWORD", password=DEMO_PASSWORD))
    steps.run(
        "the lost device is told it was replaced",
        lambda _p: _expect_error(DeviceReplaced, lambda: lost.backup_wallet("CUSTOM")),
    )
    steps.run("recover with CUSTOM on another device", recover("CUSTOM"))
    steps.run(
        "a wrong password is refused",
        lambda _p: _expect_error(
            DecryptFailed,
            lambda: new_device().recover_wallet(
                "PASSWORD",
                password="wrong horse battery staple",  # noqa: S106 - a deliberately wrong one
            ),
        ),
    )
    steps.run(
        "eject without authorisation is refused",
        lambda _p: _expect_error(
            EjectNotAuthorized,
            lambda: new_device().eject_private_keys("PASSWORD", password=DEMO_PASSWORD),
        ),
    )
    steps.run(
        "the custodian authorises eject",
        lambda _p: {"window_seconds": round(custodian.authorize_eject(client_id) - time.time())},
    )

    def eject(progress: Any) -> dict[str, Any]:
        keys = new_device().eject_private_keys(
            "PASSWORD", progress=progress, password=DEMO_PASSWORD
        )
        out = {}
        for curve, key in sorted(keys.items()):
            if key.address != addresses[curve]:
                raise DemoFailed(f"the ejected {curve} key is for {key.address}")
            fmt = (
                f"hex, {len(key.private_key)} digits"
                if curve == "SECP256K1"
                else f"base58 scalar, {len(key.private_key)} characters"
            )
            out[curve] = {"address": key.address, "matches_wallet": True, "private_key": fmt}
        return out

    steps.run("eject the private keys (PASSWORD backup)", eject)
    return {
        "custodian_key": key_name,
        "argon2": {
            "time_cost": argon2.time_cost,
            "memory_kib": argon2.memory_cost,
            "lanes": argon2.parallelism,
        },
        "addresses": addresses,
        "steps": steps.steps,
        "total_seconds": sum(s["seconds"] for s in steps.steps),
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def _describe(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return [str(result)]
    lines = []
    for key, value in result.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items())
            lines.append(f"{key}: {inner}")
        elif isinstance(value, list) and len(", ".join(map(str, value))) > 72:
            lines.append(f"{key}:")
            lines.extend(f"  {v}" for v in value)
        elif isinstance(value, list):
            lines.append(f"{key}: {', '.join(map(str, value))}")
        else:
            lines.append(f"{key}: {value}")
    return lines


def format_text(record: dict[str, Any]) -> list[str]:
    """The demo record as lines of text."""
    a = record["argon2"]
    lines = [
        f"Wallet demo: custodian shares sealed under HSM key {record['custodian_key']!r}; "
        f"Argon2id m={a['memory_kib']} KiB t={a['time_cost']} p={a['lanes']}",
    ]
    for n, step in enumerate(record["steps"], 1):
        lines.append(f"\n{n:2}. {step['step']:44} {_ms(step['seconds'])}")
        if step["progress"]:
            marks = ", ".join(
                f"{e['status']} +{e['at_seconds'] * 1e3:.1f} ms" for e in step["progress"]
            )
            lines.append(f"    progress: {marks}")
        lines.extend(f"    {line}" for line in _describe(step["result"]))
    lines.append(f"\nAll steps: {_ms(record['total_seconds']).strip()}")
    return lines
