"""``portal-core hsm`` and ``portal-core keys``, run as a user runs them, on SoftHSM2."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from cli_runner import run_cli
from portal_core.kms import KeyVersionRetired

CTX = {"wallet": "wallet-cli", "party": "custodian"}


@pytest.fixture
def name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def test_hsm_init_makes_a_usable_token_and_keeps_it(tmp_path):
    directory = tmp_path / "token"
    first = run_cli("hsm", "init", str(directory))
    assert first.returncode == 0, first.stderr
    assert "initialised" in first.stdout and str(directory / "env") in first.stdout
    env_text = (directory / "env").read_text()
    for var in ("SOFTHSM2_CONF", "PKCS11_MODULE", "PKCS11_TOKEN_LABEL", "PKCS11_USER_PIN"):
        assert f"export {var}=" in env_text
    assert oct((directory / "env").stat().st_mode & 0o777) == "0o600"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    created = run_cli("keys", "create", "survivor", "--hsm-dir", str(directory))
    assert created.returncode == 0, created.stderr
    again = run_cli("hsm", "init", str(directory))
    assert again.returncode == 0 and "already initialised" in again.stdout
    listed = run_cli("keys", "list", "--json", "--hsm-dir", str(directory))
    assert [k["name"] for k in json.loads(listed.stdout)] == ["survivor"]
    check = run_cli("hsm", "check", "--hsm-dir", str(directory))
    assert check.returncode == 0, check.stderr
    assert "HSM check passed" in check.stdout


def test_the_default_token_dir_is_dot_hsm_in_the_working_directory(tmp_path):
    assert run_cli("hsm", "init", cwd=tmp_path).returncode == 0
    assert (tmp_path / ".hsm" / "env").is_file()
    listed = run_cli("keys", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "no keys" in listed.stdout


def test_create_rotate_list_retire(hsm_env, name):
    assert run_cli("keys", "create", name, env=hsm_env).returncode == 0
    duplicate = run_cli("keys", "create", name, env=hsm_env)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    rotated = run_cli("keys", "rotate", name, env=hsm_env)
    assert rotated.returncode == 0 and "version 2" in rotated.stdout
    listed = run_cli("keys", "list", name, "--json", env=hsm_env)
    assert json.loads(listed.stdout) == [
        {"name": name, "versions": [1, 2], "newest": 2, "min_decryption_version": 1}
    ]
    text = run_cli("keys", "list", env=hsm_env).stdout
    assert name in text and "MIN DECRYPT" in text
    retired = run_cli("keys", "retire", name, "1", env=hsm_env)
    assert retired.returncode == 0, retired.stderr
    unconfirmed = run_cli("keys", "retire", name, "1", "--destroy", env=hsm_env)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    destroyed = run_cli("keys", "retire", name, "1", "--destroy", "--yes", env=hsm_env)
    assert destroyed.returncode == 0 and "version 1 destroyed" in destroyed.stdout
    listed = run_cli("keys", "list", name, "--json", env=hsm_env)
    assert json.loads(listed.stdout)[0]["versions"] == [2]
    too_far = run_cli("keys", "retire", name, "2", env=hsm_env)
    assert too_far.returncode == 1 and "between" in too_far.stderr


def test_retire_is_bounded_by_the_newest_version_and_refuses_zero(hsm_env, kms, name):
    kms.create_key(name)
    only = run_cli("keys", "retire", name, "1", env=hsm_env)
    assert only.returncode == 1 and f"keys rotate {name}" in only.stderr
    kms.rotate(name)
    newest = run_cli("keys", "retire", name, "2", env=hsm_env)
    assert newest.returncode == 1
    assert "newest version" in newest.stderr and "between 1 and 1" in newest.stderr
    assert "not 3" not in newest.stderr  # the old message spoke of the internal bound
    beyond = run_cli("keys", "retire", name, "7", env=hsm_env)
    assert beyond.returncode == 1 and "no version 7" in beyond.stderr
    zero = run_cli("keys", "retire", name, "0", env=hsm_env)
    assert zero.returncode == 1 and "1 or more" in zero.stderr
    negative = run_cli("keys", "retire", name, "-1", env=hsm_env)
    assert negative.returncode != 0
    # None of the refused calls changed anything; the one valid version still works.
    assert kms.describe(name).min_decryption_version == 1
    assert run_cli("keys", "retire", name, "1", env=hsm_env).returncode == 0
    assert kms.describe(name).min_decryption_version == 2
    # Retiring moves the bar up only: a lower version does not bring retired ones back.
    kms.rotate(name)
    assert run_cli("keys", "retire", name, "2", env=hsm_env).returncode == 0
    back = run_cli("keys", "retire", name, "1", env=hsm_env)
    assert back.returncode == 1 and "retired already" in back.stderr
    assert kms.describe(name).min_decryption_version == 3


def test_rewrap_leaves_blobs_at_the_newest_version_alone(hsm_env, kms, tmp_path, name):
    kms.create_key(name)
    old = [tmp_path / f"old-{i}.bin" for i in range(3)]
    for path, blob in zip(old, kms.seal_many(name, [b"a", b"b", b"c"], context=CTX), strict=True):
        path.write_bytes(blob)
    kms.rotate(name)
    current = [tmp_path / f"new-{i}.bin" for i in range(2)]
    for path, blob in zip(current, kms.seal_many(name, [b"d", b"e"], context=CTX), strict=True):
        path.write_bytes(blob)
    before = {p: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in current}
    run = run_cli("keys", "rewrap", str(tmp_path), "--no-progress", env=hsm_env)
    assert run.returncode == 0, run.stderr
    assert "rewrapped 3 of 5" in run.stdout and f"{name}: v1 -> v2: 3" in run.stdout
    assert "already at the newest version, left as they were: 2" in run.stdout
    for path in current:  # not rewritten: same bytes, same file
        assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before[path]
    assert {kms.inspect(p.read_bytes()).key_version for p in old} == {2}
    again = run_cli("keys", "rewrap", str(tmp_path), "--no-progress", env=hsm_env)
    assert again.returncode == 0 and "rewrapped 0 of 5" in again.stdout


def test_rewrap_syncs_its_own_files_and_directories_not_the_machine(
    hsm_env, kms, tmp_path, name, monkeypatch
):
    from portal_core import cli

    kms.create_key(name)
    store = tmp_path / "store"
    (store / "nested").mkdir(parents=True)
    stale = [store / "a.bin", store / "b.bin", store / "nested" / "c.bin"]
    for path, blob in zip(stale, kms.seal_many(name, [b"1", b"2", b"3"], context=CTX), strict=True):
        path.write_bytes(blob)
    kms.rotate(name)
    (store / "nested" / "current.bin").write_bytes(kms.seal(name, b"4", context=CTX))

    def machine_wide_sync() -> None:
        raise AssertionError("keys rewrap must not call os.sync()")

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the synced files")
    monkeypatch.setattr(os, "sync", machine_wide_sync)
    monkeypatch.setattr(os, "fsync", fsync)
    for var, value in hsm_env.items():
        monkeypatch.setenv(var, value)
    assert cli.main(["keys", "rewrap", str(store), "--no-progress"]) == 0
    monkeypatch.undo()
    temps = sorted(p for p in synced if p.endswith(".rewrap-tmp"))
    assert temps == sorted(str(p.with_name(f".{p.name}.rewrap-tmp")) for p in stale)
    assert sorted(p for p in synced if not p.endswith(".rewrap-tmp")) == sorted(
        [str(store), str(store / "nested")]
    )
    assert {kms.inspect(p.read_bytes()).key_version for p in stale} == {2}


def test_every_positional_argument_has_help():
    import argparse

    from portal_core.kms import commands as kms_cli

    parser = argparse.ArgumentParser(prog="portal-core")
    kms_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    seen: dict[str, str] = {}
    parsers: dict[str, argparse.ArgumentParser] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        parsers[path] = p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{path} {sub_name}")
            elif not action.option_strings:
                seen[f"{path} {action.dest}"] = action.help or ""

    walk(parser, "portal-core")
    # hsm init DIR; keys create, rotate and list NAME; retire NAME VERSION; rewrap PATH...
    assert len(seen) == 7, seen
    assert all(seen.values()), [where for where, text in seen.items() if not text]
    assert "newest" in seen["portal-core keys retire version"]
    assert "newest" in parsers["portal-core keys retire"].format_help()
    retire = parser.parse_args(["keys", "retire", "k", "1"])
    assert (retire.command, retire.action, retire.name, retire.version) == (
        "keys",
        "retire",
        "k",
        1,
    )


def test_rewrap_moves_a_directory_of_blobs_with_a_progress_bar(hsm_env, kms, tmp_path, name):
    kms.create_key(name)
    shares = [os.urandom(100) for _ in range(300)]
    store = tmp_path / "store"
    (store / "nested").mkdir(parents=True)
    paths = [store / ("nested" if i % 2 else "") / f"share-{i}.bin" for i in range(300)]
    for path, blob in zip(paths, kms.seal_many(name, shares, context=CTX), strict=True):
        path.write_bytes(blob)
    assert run_cli("keys", "rotate", name, env=hsm_env).returncode == 0
    moved = run_cli("keys", "rewrap", str(store), "--batch", "64", "--progress", env=hsm_env)
    assert moved.returncode == 0, moved.stderr
    assert "rewrapped 300 of 300" in moved.stdout and f"{name}: v1 -> v2: 300" in moved.stdout
    assert "rewrap [" in moved.stderr and "300/300 blobs" in moved.stderr
    blobs = [p.read_bytes() for p in paths]
    assert {kms.inspect(b).key_version for b in blobs} == {2}
    assert kms.open_many(blobs, context=CTX) == shares
    assert not list(store.rglob("*.rewrap-tmp"))
    # After retiring v1 the store still opens: nothing was left behind on v1.
    kms.set_min_decryption_version(name, 2)
    assert kms.open(blobs[0], context=CTX) == shares[0]


def test_rewrap_reports_bad_files_and_moves_the_rest(hsm_env, kms, tmp_path, name):
    kms.create_key(name)
    good = tmp_path / "good.bin"
    old = kms.seal(name, b"share", context=CTX)
    good.write_bytes(old)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a blob")
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(old[:-1] + bytes([old[-1] ^ 1]))
    kms.rotate(name)
    run = run_cli("keys", "rewrap", str(tmp_path), "--no-progress", env=hsm_env)
    assert run.returncode == 1
    assert "rewrapped 1 of 3" in run.stdout and "rewrap [" not in run.stderr
    assert "bad.bin: MalformedBlob" in run.stderr and "tampered.bin: InvalidTag" in run.stderr
    assert bad.read_bytes() == b"not a blob"  # failures are left exactly as they were
    assert tampered.read_bytes() == old[:-1] + bytes([old[-1] ^ 1])
    assert kms.inspect(good.read_bytes()).key_version == 2
    kms.set_min_decryption_version(name, 2)
    with pytest.raises(KeyVersionRetired):
        kms.open(old, context=CTX)
    assert kms.open(good.read_bytes(), context=CTX) == b"share"


def test_errors_are_messages_not_tracebacks_and_never_show_the_pin(hsm_env, name):
    pin = hsm_env["PKCS11_USER_PIN"]
    missing = run_cli("keys", "rotate", name, env=hsm_env)
    assert missing.returncode == 1 and "no key named" in missing.stderr
    assert "Traceback" not in missing.stderr
    wrong_pin = run_cli("keys", "list", env={**hsm_env, "PKCS11_USER_PIN": pin[::-1]})
    assert wrong_pin.returncode == 1 and "refused the login" in wrong_pin.stderr
    unset = run_cli("keys", "list", cwd=Path("/"))
    assert unset.returncode == 1 and "PKCS11_MODULE" in unset.stderr
    bad_path = run_cli("keys", "rewrap", "/nonexistent/store", env=hsm_env)
    assert bad_path.returncode == 1 and "no such file" in bad_path.stderr
    for run in (missing, wrong_pin, unset, bad_path):
        assert pin not in run.stdout + run.stderr
        assert pin[::-1] not in run.stdout + run.stderr


@pytest.mark.parametrize("args", [["keys"], ["hsm"], ["keys", "retire", "k"], ["keys", "shred"]])
def test_bad_usage_exits_with_usage(args):
    run = run_cli(*args)
    assert run.returncode == 2 and "usage" in run.stderr


def test_setup_script_keeps_its_token_and_recovers_an_interrupted_run(tmp_path):
    setup = [
        "bash",
        str(Path(__file__).resolve().parent.parent / "hsm" / "setup.sh"),
        str(tmp_path),
    ]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            setup, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )

    assert run().returncode == 0
    env = (tmp_path / "env").read_text()
    created = run_cli("keys", "create", "kept", "--hsm-dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    again = run()
    assert again.returncode == 0 and "ready" in again.stderr
    assert (tmp_path / "env").read_text() == env  # same token, same PIN
    assert "kept" in run_cli("keys", "list", "--hsm-dir", str(tmp_path)).stdout
    # A run interrupted before writing env leaves a token nobody knows the PIN of.
    (tmp_path / "env").unlink()
    fresh = run()
    assert fresh.returncode == 0 and "interrupted run" in fresh.stderr
    assert (tmp_path / "env").read_text() != env
    assert "no keys" in run_cli("keys", "list", "--hsm-dir", str(tmp_path)).stdout
