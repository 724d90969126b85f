"""The console script, as a user runs it: the crypto-core demo, and the wallet demo on SoftHSM."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from typing import Any

import pytest

import portal_core
from cli_runner import run_cli
from portal_core.backup.custodian import DEFAULT_KEY_NAME
from portal_core.backup.demo import DEMO_KEY_NAME
from portal_core.kms import KeyNotFound

BACKUP = [
    "Reading share",
    "Generating share",
    "Parsing share",
    "Encrypting share",
    "Storing share",
    "Done",
]
RECOVERY = [
    "Reading share",
    "Decrypting share",
    "Parsing share",
    "Generating share",
    "Storing share",
    "Done",
]


def _check_core(out: dict[str, Any]) -> None:
    feats = out["cpu_features"]
    assert feats["arch"] and isinstance(feats["aes"], bool) and feats["backend"]
    env = out["envelope"]
    assert env["opened"] is True
    assert env["inspect"]["key_id"] == "demo-key"
    assert env["inspect"]["context"]["curve"] == "SECP256K1"
    assert out["password_key_bytes"] == 32
    timings = out["timings_seconds"]
    assert len(timings) >= 4 and all(t > 0 for t in timings.values())


def test_demo_core_json_reports_a_working_core(tmp_path):
    proc = run_cli("demo", "--core", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    _check_core(out)
    assert "wallet" not in out


def test_demo_core_text_names_each_step(tmp_path):
    proc = run_cli("demo", "--core", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for needle in ("CPU features", "backend", "Sealed", "Argon2id", "Timings"):
        assert needle in proc.stdout
    assert "Wallet demo" not in proc.stdout


def test_demo_json_runs_a_wallets_life_on_the_hsm(hsm_env, kms, tmp_path):
    proc = run_cli("demo", "--json", env=hsm_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The demo keeps to a key of its own: the production key name stays untouched in
    # whatever token the environment points at.
    assert kms.describe(DEMO_KEY_NAME)
    with pytest.raises(KeyNotFound):
        kms.describe(DEFAULT_KEY_NAME)
    out = json.loads(proc.stdout)
    _check_core(out)
    wallet = out["wallet"]
    addresses = wallet["addresses"]
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", addresses["SECP256K1"])
    assert 32 <= len(addresses["ED25519"]) <= 44
    assert wallet["argon2"] == {"time_cost": 2, "memory_kib": 19 * 1024, "lanes": 1}
    steps = {s["step"]: s for s in wallet["steps"]}
    assert all(s["seconds"] > 0 for s in wallet["steps"])

    for name in ("back up with PASSWORD (Argon2id)", "back up with CUSTOM (key file)"):
        step = steps[name]
        assert [e["status"] for e in step["progress"]] == BACKUP
        assert step["result"]["status"] == "completed"
        assert set(step["result"]["pair_ids"]) == {"SECP256K1", "ED25519"}
    assert steps["back up with CUSTOM (key file)"]["result"]["key_file_mode"] == "0o600"
    status = steps["backup status"]["result"]
    assert status["available_recovery_methods"] == ["CUSTOM", "PASSWORD"]
    assert status["is_wallet_recoverable"] is True

    for name in ("lose the device; recover with PASSWORD", "recover with CUSTOM on another device"):
        step = steps[name]
        assert [e["status"] for e in step["progress"]] == RECOVERY
        assert step["result"] == {"addresses": addresses, "addresses_match": True}
    assert steps["the lost device is told it was replaced"]["result"]["error"] == ("DeviceReplaced")
    assert steps["a wrong password is refused"]["result"]["error"] == "DecryptFailed"
    assert steps["eject without authorisation is refused"]["result"]["error"] == (
        "EjectNotAuthorized"
    )
    assert steps["the custodian authorises eject"]["result"]["window_seconds"] == 300
    ejected = steps["eject the private keys (PASSWORD backup)"]["result"]
    assert {c: e["address"] for c, e in ejected.items()} == addresses
    assert all(e["matches_wallet"] for e in ejected.values())
    # The keys are described, never printed.
    assert not re.search(r"\b[0-9a-f]{64}\b", proc.stdout)
    assert "correct horse battery staple" not in proc.stdout


def test_demo_text_prints_each_step_with_progress_and_timing(hsm_env, tmp_path):
    proc = run_cli("demo", env=hsm_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for needle in (
        "CPU features",
        "Wallet demo",
        "back up with PASSWORD",
        "back up with CUSTOM",
        "recover with PASSWORD",
        "recover with CUSTOM",
        "addresses_match: True",
        "eject the private keys",
        "progress: Reading share +",
        "All steps:",
    ):
        assert needle in text, needle
    assert re.search(r"eject the private keys .* +\d+\.\d ms", text)


def test_demo_without_an_hsm_says_how_to_get_one(tmp_path):
    proc = run_cli(
        "demo", "--json", env={"SOFTHSM2_CONF": str(tmp_path / "none.conf")}, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "needs an HSM token" in proc.stderr and "--core" in proc.stderr


@pytest.mark.parametrize("args", [[], ["nonsense"]])
def test_bad_usage_exits_with_usage(args):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"portal-core {portal_core.__version__} (portal-core-mpc)"


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path):
    # `portal-core demo --core --json | head -c 1`: the reader closes the pipe before the
    # demo writes its output.
    exe = shutil.which("portal-core")
    cmd = [exe] if exe else [sys.executable, "-m", "portal_core.cli"]
    proc = subprocess.Popen(
        [*cmd, "demo", "--core", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    try:
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_every_positional_argument_says_what_it_is():
    for command in (["keys", "create"], ["keys", "retire"], ["keys", "rewrap"], ["hsm", "init"]):
        proc = run_cli(*command, "--help")
        assert proc.returncode == 0
        positionals = proc.stdout.split("positional arguments:")[1].split("options:")[0]
        lines = [line.strip() for line in positionals.strip().splitlines()]
        assert lines and all(len(line.split(None, 1)) == 2 for line in lines), positionals


# -- tenants ---------------------------------------------------------------------------------


def test_tenants_create_prints_a_working_admin_key_and_refuses_a_duplicate(tmp_path):
    from portal_core.store import KeyKind, SqliteStore
    from portal_core.tenants import Tenants

    data = tmp_path / "data"
    proc = run_cli("tenants", "create", "Acme", "--data-dir", str(data), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"tenant_id", "admin_api_key"}
    assert re.fullmatch(r"pc_adm_[0-9a-f]{32}_[A-Za-z0-9_-]{43}", out["admin_api_key"])
    db = data / "custodian.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700

    again = run_cli("tenants", "create", "acme", "--data-dir", str(data), "--json", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout == ""
    assert "already exists" in again.stderr and "Traceback" not in again.stderr

    with SqliteStore(db) as store:
        principal = Tenants(store).authenticate(out["admin_api_key"])
        assert principal.tenant_id == out["tenant_id"]
        assert principal.kind is KeyKind.ADMIN
        assert len(store.query("SELECT * FROM tenants")) == 1
    secret = out["admin_api_key"].split("_", 3)[3]
    assert secret.encode() not in b"".join(
        p.read_bytes() for p in data.iterdir() if p.name.startswith("custodian.db")
    )


def test_tenants_create_text_output_and_a_bad_name(tmp_path):
    proc = run_cli("tenants", "create", "Beta", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "shown this once" in proc.stdout
    assert re.search(r"^pc_adm_[0-9a-f]{32}_\S{43}$", proc.stdout, re.M)
    bad = run_cli("tenants", "create", " spaced", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 1 and "tenant name" in bad.stderr
    missing = run_cli("tenants", "create", "X", cwd=tmp_path)
    assert missing.returncode == 2 and "--data-dir" in missing.stderr


def test_demo_over_http_runs_a_wallets_life_and_stops_its_servers(tmp_path):
    """``make run``: the service and the receiver as real servers, the SDK against them."""
    import httpx

    proc = run_cli("demo", "--http", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for needle in (
        "create the wallet",
        "back up with PASSWORD",
        "Encrypting share",
        "self-managed CUSTOM backup",
        "recover on a new device with CUSTOM",
        "eject",
        "(not printed)",
    ):
        assert needle in proc.stdout, needle
    assert "pc_adm_" not in proc.stdout and "pc_cli_" not in proc.stdout
    summary = run_cli("demo", "--http", "--json", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    out = json.loads(summary.stdout)
    assert set(out["addresses"]) == {"SECP256K1", "ED25519"}
    for server in (out["service"], out["receiver"]):  # stopped at the end
        with pytest.raises(httpx.ConnectError):
            httpx.get(server + "/healthz", timeout=2)
