"""portal_core.kms: the PIN stays secret; configuration errors; stale sessions and handles;
fork; restart; vendor profiles. On a real SoftHSM2 token."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from portal_core.exceptions import InvalidTag
from portal_core.kms import (
    PROFILES,
    HsmAuthError,
    HsmConfigError,
    HsmUnavailable,
    KeyNotFound,
    Pkcs11Kms,
    get_profile,
)
from portal_core.kms.pkcs11 import Pkcs11Options
from portal_core.kms.pool import _pools

CTX = {"wallet": "wallet-1", "party": "custodian"}


def _args(env: dict[str, str]) -> tuple[str, str, str]:
    return env["PKCS11_MODULE"], env["PKCS11_TOKEN_LABEL"], env["PKCS11_USER_PIN"]


# -- the PIN ----------------------------------------------------------------------------


def test_pin_never_appears_in_reprs_logs_errors_or_pickles(hsm_env, caplog):
    pin = hsm_env["PKCS11_USER_PIN"]
    caplog.set_level(logging.DEBUG, logger="portal_core.kms")
    module, label, _ = _args(hsm_env)
    with Pkcs11Kms(module, label, pin) as kms:
        name = f"pin-{os.getpid()}"
        kms.create_key(name)
        sealed = kms.seal(name, b"x", context=CTX)
        kms.rotate(name)
        kms.rewrap(sealed)
        texts = [repr(kms), str(kms), repr(vars(kms)), repr(kms._pool), str(kms.stats())]
        texts += [repr(v) for v in vars(kms._pool).values()]
        with pytest.raises(TypeError):
            pickle.dumps(kms)
        with pytest.raises(TypeError):
            pickle.dumps(kms._pool._pin)
        try:
            kms.open(sealed, context={})
        except InvalidTag:
            texts.append(traceback.format_exc())
        # While this process is logged in, a wrong PIN is refused all the same.
        with pytest.raises(HsmAuthError, match="different PIN") as joined:
            Pkcs11Kms(module, label, pin[::-1])
        texts.append("".join(traceback.format_exception(joined.value)))
    texts.append(caplog.text)
    assert caplog.text  # the operations above did log
    for text in texts:
        assert pin not in text
        assert pin[::-1] not in text


def test_a_wrong_pin_is_refused_by_the_token(hsm_env):
    # In a fresh process, so that no login of this test session is in place.
    script = textwrap.dedent(
        """
        import os, traceback
        from portal_core.kms import HsmAuthError, Pkcs11Kms
        pin = os.environ["PKCS11_USER_PIN"][::-1]
        try:
            Pkcs11Kms(os.environ["PKCS11_MODULE"], os.environ["PKCS11_TOKEN_LABEL"], pin)
        except HsmAuthError as e:
            print(str(e))
            print(traceback.format_exc())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **hsm_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused the login (PinIncorrect)" in proc.stdout
    pin = hsm_env["PKCS11_USER_PIN"]
    assert pin not in proc.stdout + proc.stderr
    assert pin[::-1] not in proc.stdout + proc.stderr


def test_pin_from_a_file(hsm_env, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(hsm_env["PKCS11_USER_PIN"] + "\n")
    env = {k: v for k, v in hsm_env.items() if k != "PKCS11_USER_PIN"}
    with Pkcs11Kms.from_env({**env, "PKCS11_USER_PIN_FILE": str(pin_file)}) as kms:
        assert kms.list_keys() is not None
    with pytest.raises(HsmConfigError, match="PKCS11_USER_PIN_FILE"):
        Pkcs11Kms.from_env({**env, "PKCS11_USER_PIN_FILE": str(tmp_path / "nope")})


# -- configuration errors -----------------------------------------------------------------


def test_configuration_errors_are_typed_and_clear(hsm_env):
    module, label, pin = _args(hsm_env)
    with pytest.raises(HsmConfigError, match="PKCS11_MODULE") as missing:
        Pkcs11Kms.from_env({"PKCS11_TOKEN_LABEL": label, "PKCS11_USER_PIN": pin})
    assert pin not in str(missing.value)
    with pytest.raises(HsmConfigError, match="PKCS11_USER_PIN"):
        Pkcs11Kms.from_env({"PKCS11_MODULE": module, "PKCS11_TOKEN_LABEL": label})
    with pytest.raises(HsmConfigError, match="does not exist"):
        Pkcs11Kms("/nonexistent/libpkcs11.so", label, pin)
    with pytest.raises(HsmConfigError, match="cannot load"):
        Pkcs11Kms(sys.executable, label, pin)
    with pytest.raises(HsmConfigError, match="no token labelled 'no-such-token'"):
        Pkcs11Kms(module, "no-such-token", pin)
    with pytest.raises(HsmConfigError, match="unknown HSM profile 'thales'"):
        Pkcs11Kms(module, label, pin, profile="thales")
    with pytest.raises(HsmConfigError, match="PORTAL_KMS_POOL_SIZE"):
        Pkcs11Kms.from_env({**hsm_env, "PORTAL_KMS_POOL_SIZE": "many"})
    bad_options: list[Pkcs11Options] = [
        {"pool_size": 0},
        {"key_max_uses": 0},
        {"cache_size": -1},
        {"cache_ttl": -1},
    ]
    for bad in bad_options:
        with pytest.raises(ValueError):
            Pkcs11Kms(module, label, pin, **bad)
    with pytest.raises(TypeError):
        Pkcs11Kms(module, label, "")


def test_hints_name_portal_core_hsm_init_which_every_install_has(hsm_env, monkeypatch):
    from portal_core.kms import softhsm

    module, label, pin = _args(hsm_env)
    messages = []
    with pytest.raises(HsmConfigError) as missing:
        Pkcs11Kms.from_env({"PKCS11_TOKEN_LABEL": label, "PKCS11_USER_PIN": pin})
    messages.append(str(missing.value))
    with pytest.raises(HsmConfigError, match="no token labelled") as no_token:
        Pkcs11Kms(module, "no-such-token", pin)
    messages.append(str(no_token.value))
    monkeypatch.setattr(softhsm, "find_module", lambda: None)
    with pytest.raises(HsmConfigError, match=r"libsofthsm2\.so not found") as no_library:
        softhsm.init_token_dir("/nonexistent/never-created")
    messages.append(str(no_library.value))
    monkeypatch.setattr(shutil, "which", lambda _exe: None)  # the module softhsm calls
    with pytest.raises(HsmConfigError, match="softhsm2-util not found") as no_util:
        softhsm._token_exists(Path("/nonexistent/softhsm2.conf"))
    messages.append(str(no_util.value))
    for message in messages[:2]:
        assert "portal-core hsm init" in message, message
    for message in messages:
        # A pip install has neither the source tree's script nor its Makefile.
        assert "setup.sh" not in message and "make run" not in message, message
    assert "apt-get install softhsm2" in messages[2] and "apt-get install softhsm2" in messages[3]


def _kms_error_in_a_fresh_process(env: dict[str, str]) -> str:
    """The HsmConfigError a fresh process gets from ``Pkcs11Kms.from_env()`` (SoftHSM2 reads
    SOFTHSM2_CONF once, when the module first initialises)."""
    script = textwrap.dedent(
        """
        from portal_core.kms import HsmConfigError, Pkcs11Kms
        try:
            Pkcs11Kms.from_env()
        except HsmConfigError as e:
            print("HsmConfigError:", e)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert env["PKCS11_USER_PIN"] not in proc.stdout + proc.stderr
    return proc.stdout


def test_a_wrong_softhsm2_conf_is_a_config_error_that_says_what_to_do(hsm_env, tmp_path):
    missing_file = tmp_path / "nowhere" / "softhsm2.conf"
    out = _kms_error_in_a_fresh_process({**hsm_env, "SOFTHSM2_CONF": str(missing_file)})
    assert out.startswith("HsmConfigError:"), out
    assert f"SOFTHSM2_CONF names {missing_file}" in out and "portal-core hsm init" in out
    conf = tmp_path / "softhsm2.conf"
    gone = tmp_path / "deleted-tokens"
    conf.write_text(f"directories.tokendir = {gone}\nobjectstore.backend = file\n")
    out = _kms_error_in_a_fresh_process({**hsm_env, "SOFTHSM2_CONF": str(conf)})
    assert out.startswith("HsmConfigError:"), out
    assert f"token directory {gone}" in out and "SOFTHSM2_CONF" in out
    assert "portal-core hsm init" in out


def test_softhsm2_conf_diagnosis_covers_the_unset_and_incomplete_cases(tmp_path):
    from portal_core.kms import softhsm

    assert "SOFTHSM2_CONF is not set" in softhsm.explain_init_failure({})
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("log.level = ERROR\n")
    assert "sets no directories.tokendir" in softhsm.explain_init_failure(
        {"SOFTHSM2_CONF": str(conf)}
    )
    (tmp_path / "tokens").mkdir()
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\n")
    looks_fine = softhsm.explain_init_failure({"SOFTHSM2_CONF": str(conf)})
    assert "check that file" in looks_fine and "portal-core hsm init" in looks_fine


def test_a_closed_kms_says_so(hsm_env):
    kms = Pkcs11Kms.from_env(hsm_env)
    kms.close()
    with pytest.raises(HsmUnavailable, match="closed"):
        kms.list_keys()


def test_a_pool_that_stays_busy_times_out(hsm_env):
    with Pkcs11Kms.from_env(hsm_env, pool_size=1, acquire_timeout=0.2) as kms:
        with kms.session():
            with pytest.raises(HsmUnavailable, match="pool_size=1"):
                kms.list_keys()
        assert kms.list_keys() is not None  # free again


# -- stale state and recovery -------------------------------------------------------------


def test_a_session_closed_behind_the_pool_is_replaced(hsm_env, key_name):
    with Pkcs11Kms.from_env(hsm_env, pool_size=1, cache_size=0) as kms:
        sealed = kms.seal(key_name, b"share", context=CTX)
        with kms.session() as session:
            session.close()  # the pool does not know
        assert kms.open(sealed, context=CTX) == b"share"
        assert kms.stats()["sessions_recovered"] == 1


def test_a_stale_key_handle_is_found_again(hsm_env, key_name):
    with Pkcs11Kms.from_env(hsm_env, pool_size=1, cache_size=0) as kms:
        sealed = kms.seal(key_name, b"share", context=CTX)  # caches the handle of v1
        with kms.session() as session:
            # The key object is replaced by a copy (as a restore from backup would do):
            # the cached handle now points at nothing.
            original = session.get_key(
                object_class=ObjectClass.SECRET_KEY, label=f"portal-kek:{key_name}:v1"
            )
            original.copy({})
            original.destroy()
        assert kms.open(sealed, context=CTX) == b"share"
        assert kms.stats()["handles_recovered"] == 1


def test_a_lost_login_is_restored(hsm_env, key_name):
    with Pkcs11Kms.from_env(hsm_env, cache_size=0) as kms:
        sealed = kms.seal(key_name, b"share", context=CTX)
        logins = kms.stats()["logins"]
        # Log the process out of the token behind every KMS's back, as closing any
        # logged-in python-pkcs11 session does: the owner of the login is some pool's anchor
        # on this token (other tests' KMSs may be logged in to other tokens).
        (owner,) = [
            p
            for p in _pools
            if p._anchor is not None
            and p._anchor.user_type == 1
            and p.token_label == hsm_env["PKCS11_TOKEN_LABEL"]
        ]
        owner._anchor.close()
        assert kms.open(sealed, context=CTX) == b"share"  # the cached KEK handle: re-login
        assert kms.stats()["logins"] == logins + 1
        assert kms.versions(key_name) == [1]  # searches for private objects work again
    # Closing that KMS, which logged in again, logged the process out once more. Searching
    # while logged out finds nothing: that must read as a lost login, not as a missing key.
    with Pkcs11Kms.from_env(hsm_env, metadata_ttl=0) as other:
        assert other.versions(key_name) == [1]
        assert other.open(sealed, context=CTX) == b"share"


def _child(conn, sealed: bytes, name: str) -> None:
    # Runs in a forked child: the parent's KMS object, sessions and module came across fork.
    kms = _child.kms  # type: ignore[attr-defined]
    try:
        opened = kms.open(sealed, context=CTX)
        new = kms.seal(name, b"from the child", context=CTX)
        conn.send((opened, new, kms.stats()["forks_detected"]))
    except Exception as e:  # report to the parent instead of dying silently
        conn.send(e)
    finally:
        conn.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX-only")
def test_fork_is_detected_and_the_child_reinitialises(hsm_env, key_name):
    with Pkcs11Kms.from_env(hsm_env, cache_size=0) as kms:
        sealed = kms.seal(key_name, b"from the parent", context=CTX)
        _child.kms = kms  # type: ignore[attr-defined]
        ctx = multiprocessing.get_context("fork")
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child_end, sealed, key_name))
        proc.start()
        result = parent_end.recv()
        proc.join(60)
        assert proc.exitcode == 0
        assert not isinstance(result, Exception), result
        opened, new, forks = result
        assert opened == b"from the parent" and forks >= 1
        # The parent's sessions were untouched by the child's re-initialisation.
        assert kms.open(new, context=CTX) == b"from the child"
        assert kms.open(sealed, context=CTX) == b"from the parent"
        assert kms.stats()["forks_detected"] == 0


def test_keys_and_blobs_survive_a_restart(hsm_env, kms, key_name):
    sealed = kms.seal(key_name, b"sealed before the restart", context=CTX)
    kms.rotate(key_name)
    script = textwrap.dedent(
        f"""
        import sys
        from portal_core.kms import Pkcs11Kms
        ctx = {CTX!r}
        with Pkcs11Kms.from_env() as kms:
            assert kms.versions({key_name!r}) == [1, 2], kms.versions({key_name!r})
            assert kms.open(bytes.fromhex(sys.argv[1]), context=ctx) == b"sealed before the restart"
            print(kms.seal({key_name!r}, b"sealed by the new process", context=ctx).hex())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, sealed.hex()],
        env={**os.environ, **hsm_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    new = bytes.fromhex(proc.stdout.strip())
    assert kms.inspect(new).key_version == 2
    assert kms.open(new, context=CTX) == b"sealed by the new process"


def test_rotation_by_another_process_is_seen(hsm_env, kms, key_name):
    assert kms.inspect(kms.seal(key_name, b"x", context=CTX)).key_version == 1
    with Pkcs11Kms.from_env(hsm_env, metadata_ttl=0) as fresh:
        fresh.seal(key_name, b"x", context=CTX)
        kms.rotate(key_name)  # "another process": fresh's view is refreshed on every call
        assert fresh.inspect(fresh.seal(key_name, b"x", context=CTX)).key_version == 2
        # A v2 blob opens even where the rotation has not been seen yet.
        with Pkcs11Kms.from_env(hsm_env, metadata_ttl=3600) as stale:
            stale.versions(key_name)
            assert stale.open(fresh.seal(key_name, b"y", context=CTX), context=CTX) == b"y"


# -- vendor profiles ------------------------------------------------------------------------


def test_profiles_document_what_is_tested():
    assert {"softhsm", "softhsm-kwp", "cloudhsm", "luna"} <= set(PROFILES)
    assert PROFILES["softhsm"].tested and PROFILES["softhsm-kwp"].tested
    for name in ("cloudhsm", "luna"):
        profile = get_profile(name)
        assert not profile.tested and "Not run against" in profile.source
    assert PROFILES["cloudhsm"].kwp_mechanism == 0x8000216F
    assert PROFILES["luna"].kwp_mechanism == 0x210B
    assert get_profile(PROFILES["luna"]) is PROFILES["luna"]


def test_rfc5649_key_wrap_profile(hsm_env):
    with Pkcs11Kms.from_env(hsm_env, profile="softhsm-kwp", cache_size=0) as kms:
        name = f"kwp-{os.getpid()}"
        kms.create_key(name)
        sealed = kms.seal(name, b"share", context=CTX)
        assert kms.inspect(sealed).wrap == "aes-kwp"
        assert kms.open(sealed, context=CTX) == b"share"
        for i in range(len(sealed)):
            tampered = bytearray(sealed)
            tampered[i] ^= 0x04
            with pytest.raises(InvalidTag):
                kms.open(bytes(tampered), context=CTX)
        assert kms.self_test()["wrap"] == "aes-kwp"
        with kms.session() as session:
            kek = session.get_key(
                object_class=ObjectClass.SECRET_KEY, label=f"portal-kek:{name}:v1"
            )
            assert kek[Attribute.WRAP] and not kek[Attribute.ENCRYPT]
            assert kek[Attribute.KEY_TYPE] == KeyType.AES


def test_self_test_passes_on_softhsm(kms):
    report = kms.self_test()
    assert report["profile"] == "softhsm" and report["wrapped_key_bytes"] == 61


@pytest.mark.parametrize(("profile", "needle"), [("cloudhsm", "all-zero"), ("luna", "append")])
def test_hsm_generated_iv_profiles_refuse_an_hsm_that_does_not(hsm_env, key_name, profile, needle):
    # SoftHSM2 uses the IV it is given: a profile that expects the HSM to generate it must stop
    # rather than wrap keys under a fixed IV.
    with Pkcs11Kms.from_env(hsm_env, profile=profile) as kms:
        with pytest.raises(HsmConfigError, match=needle):
            kms.seal(key_name, b"share", context=CTX)
        with pytest.raises(HsmConfigError, match=needle):
            kms.self_test()


def test_a_blob_of_another_token_is_refused(hsm_env, kms, key_name):
    sealed = bytearray(kms.seal(key_name, b"share", context=CTX))
    other = key_name[:-1] + ("0" if key_name[-1] != "0" else "1")
    sealed[5 : 5 + len(key_name)] = other.encode()
    with pytest.raises(KeyNotFound):
        kms.open(bytes(sealed), context=CTX)
