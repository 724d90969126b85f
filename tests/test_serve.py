"""``portal-core serve``: its settings (precedence, strict validation, no secret in a
message), the embedded default (a private SoftHSM2 token and store under the data
directory, made once however many processes start at once), and the real command: two
uvicorn workers on a free 127.0.0.1 port, TLS, and SIGTERM."""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cli_runner import run_cli
from portal_core.backup.custodian import DEFAULT_KEY_NAME
from portal_core.kms import softhsm
from portal_core.server.config import ConfigError, Settings, load_settings
from portal_core.server.runtime import LOCK_FILE, open_service, start_lock
from server_helpers import STOP_TIMEOUT_S, free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
PIN = "S3cret-pin-0123456789"  # a PIN-like value that must never reach a message
WAIT_S = 60  # every subprocess wait


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any HSM or PORTAL_* setting: a child started
    with it uses the embedded token under its data directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PKCS11_", "PORTAL_")) and k != "SOFTHSM2_CONF"
    }
    return {**env, **extra}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_toml(tmp_path: Path, text: str, name: str = "portal.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- precedence --------------------------------------------------------------------------


def test_cli_beats_environment_beats_file_beats_default(tmp_path):
    config = write_toml(
        tmp_path,
        'host = "10.0.0.1"\nport = 9001\nworkers = 3\noperator = "file-op"\n'
        'data_dir = "rel"\nlock_ttl = 30\n[vault]\nenabled = true\nmax_tries = 5\n',
    )
    env = {"PORTAL_PORT": "9002", "PORTAL_WORKERS": "4", "PORTAL_VAULT_MAX_TRIES": "7"}
    s = load_settings({"config": str(config), "port": "9003", "operator": None}, env)
    assert s.port == 9003 and s.sources["port"] == "--port"  # all three gave it
    assert s.workers == 4 and s.sources["workers"] == "PORTAL_WORKERS"  # env and file
    assert s.vault_max_tries == 7  # env over [vault] max_tries
    assert (s.host, s.operator, s.lock_ttl, s.vault) == ("10.0.0.1", "file-op", 30.0, True)
    assert s.sources["host"] == f"host in {config}"
    assert s.data_dir == str(tmp_path / "rel")  # relative to the file, not the cwd
    assert s.log_level == "info" and s.blocking_threads == 16 and s.max_body_bytes == 262144
    assert "log_level" not in s.sources and s.source("log_level") == "log_level (the default)"


def test_config_option_beats_portal_config(tmp_path):
    by_option = write_toml(tmp_path, 'data_dir = "a"\nport = 9100\n', "option.toml")
    by_env = write_toml(tmp_path, 'data_dir = "b"\nport = 9200\nworkers = 2\n', "env.toml")
    s = load_settings({"config": str(by_option)}, {"PORTAL_CONFIG": str(by_env)})
    assert (s.port, s.workers, s.data_dir) == (9100, 1, str(tmp_path / "a"))
    s = load_settings({}, {"PORTAL_CONFIG": str(by_env)})
    assert (s.port, s.workers) == (9200, 2)


def test_defaults(tmp_path):
    s = load_settings({"data_dir": str(tmp_path)}, {})
    assert s == Settings(data_dir=str(tmp_path))
    assert (s.host, s.port, s.workers, s.operator) == ("127.0.0.1", 8400, 1, "custodian")
    assert s.kms == "embedded" and not s.vault and s.passkey_rp_id is None
    assert s.tls_cert is None and s.tls_key is None


def test_passkey_defaults_follow_the_rp_id(tmp_path):
    s = load_settings({"data_dir": str(tmp_path)}, {"PORTAL_PASSKEY_RP_ID": "example.com"})
    assert s.passkey_rp_name == "example.com"
    assert s.passkey_origins == ("https://example.com",)
    s = load_settings(
        {"data_dir": str(tmp_path)},
        {
            "PORTAL_PASSKEY_RP_ID": "example.com",
            "PORTAL_PASSKEY_ORIGINS": "https://example.com, https://app.example.com",
        },
    )
    assert s.passkey_origins == ("https://example.com", "https://app.example.com")


def test_the_workers_read_back_the_same_settings(tmp_path):
    cert, key = self_signed(tmp_path)
    config = write_toml(
        tmp_path,
        'data_dir = "d"\neject_window = 12.5\n[vault]\nenabled = true\n'
        '[passkey]\nrp_id = "example.com"\norigins = ["https://example.com"]\n',
    )
    s = load_settings(
        {"config": str(config), "workers": "2", "tls_cert": str(cert), "tls_key": str(key)},
        {"PORTAL_LOG_LEVEL": "WARNING"},
    )
    exported = s.environ()
    assert all(name.startswith("PORTAL_") for name in exported)
    assert load_settings({}, exported) == s  # what `serve` hands each worker


# -- validation --------------------------------------------------------------------------

# (options, environment, config file, what the message must say)
INVALID = {
    "port too high (option)": ({"port": "70000"}, {}, "", "port (--port) must be 1 to 65535"),
    "port zero (env)": ({}, {"PORTAL_PORT": "0"}, "", "port (PORTAL_PORT) must be 1 to 65535"),
    "port not a number": ({}, {"PORTAL_PORT": "http"}, "", "port (PORTAL_PORT) must be an int"),
    "port a string (file)": ({}, {}, 'port = "8400"', "port (port in {f}) must be an integer"),
    "workers zero (file)": ({}, {}, "workers = 0", "workers (workers in {f}) must be at least 1"),
    "workers a boolean": ({}, {}, "workers = true", "must be an integer, not a boolean"),
    "workers negative": ({"workers": "-2"}, {}, "", "workers (--workers) must be at least 1"),
    "unknown key": ({}, {}, "prot = 8400", "unknown setting 'prot' in {f}"),
    "unknown key in a table": ({}, {}, "[vault]\ntries = 3", "unknown setting 'vault.tries'"),
    "a table as a value": ({}, {}, "vault = true", "vault in {f} must be a table"),
    "vault flag a string": ({}, {}, '[vault]\nenabled = "yes"', "vault (vault.enabled in {f})"),
    "vault flag a word": ({}, {"PORTAL_VAULT": "maybe"}, "", "vault (PORTAL_VAULT) must be one"),
    "max tries": ({}, {"PORTAL_VAULT_MAX_TRIES": "256"}, "", "vault_max_tries (PORTAL_VAULT_"),
    "empty operator": ({"operator": ""}, {}, "", "operator (--operator)"),
    "operator with a newline": ({}, {"PORTAL_OPERATOR": "a\nb"}, "", "operator (PORTAL_OPE"),
    "log level": ({}, {"PORTAL_LOG_LEVEL": "loud"}, "", "log_level (PORTAL_LOG_LEVEL) must be"),
    "eject window": ({}, {}, "eject_window = -1", "eject_window (eject_window in {f}) must"),
    "lock ttl nan": ({}, {"PORTAL_LOCK_TTL": "nan"}, "", "lock_ttl (PORTAL_LOCK_TTL) must be"),
    "body cap": ({}, {"PORTAL_MAX_BODY_BYTES": "0"}, "", "max_body_bytes (PORTAL_MAX_BODY_BYT"),
    "cert without key": ({"tls_cert": "CERT"}, {}, "", "tls_cert (--tls-cert) is set but tls_"),
    "key without cert": ({}, {"PORTAL_TLS_KEY": "KEY"}, "", "tls_key (PORTAL_TLS_KEY) is set"),
    "cert missing": (
        {"tls_cert": "MISSING", "tls_key": "KEY"},
        {},
        "",
        "tls_cert (--tls-cert): {m} is not a readable file",
    ),
    "origins alone": (
        {},
        {"PORTAL_PASSKEY_ORIGINS": "https://a.example"},
        "",
        "passkey_origins (PORTAL_PASSKEY_ORIGINS) is set but passkey_rp_id is not",
    ),
    "not TOML": ({}, {}, "port = = 1", "the config file {f} (from --config) is not valid TOML"),
}


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_each_invalid_setting_is_a_config_error_naming_it_and_its_source(tmp_path, case):
    options, env, text, expected = case
    cert, _ = self_signed(tmp_path)
    files = {"CERT": str(cert), "KEY": str(cert), "MISSING": str(tmp_path / "nope.pem")}
    options = {k: files.get(v, v) for k, v in options.items()}
    env = {k: files.get(v, v) for k, v in env.items()}
    config = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings({"data_dir": str(tmp_path), "config": str(config), **options}, env)
    assert expected.format(f=config, m=files["MISSING"]) in str(err.value)


def test_a_missing_data_dir_or_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="data_dir is not set: give --data-dir"):
        load_settings({}, {})
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match=r"nowhere.toml \(from PORTAL_CONFIG\) cannot be read"):
        load_settings({}, {"PORTAL_CONFIG": str(missing)})


def test_no_message_holds_a_secret(tmp_path):
    # A PIN put in the config file by mistake: the key is named, its value never.
    for text in (f'pin = "{PIN}"', f'[passkey]\nuser_pin = "{PIN}"', f'PKCS11_USER_PIN = "{PIN}"'):
        config = write_toml(tmp_path, text)
        with pytest.raises(ConfigError, match="unknown setting") as err:
            load_settings({"data_dir": str(tmp_path), "config": str(config)}, {})
        assert PIN not in str(err.value)
    # The PKCS#11 environment is checked as the KMS reads it, and only variables are named.
    incomplete = [
        ({"PKCS11_USER_PIN": PIN}, "PKCS11_MODULE, PKCS11_TOKEN_LABEL"),
        ({"PKCS11_MODULE": "m.so", "PKCS11_USER_PIN": PIN}, "PKCS11_TOKEN_LABEL"),
        ({"PKCS11_MODULE": "m.so", "PKCS11_TOKEN_LABEL": "t"}, "PKCS11_USER_PIN"),
        ({"PKCS11_USER_PIN_FILE": str(tmp_path / "no-pin")}, "PKCS11_USER_PIN_FILE"),
    ]
    for env, named in incomplete:
        with pytest.raises(ConfigError, match="PKCS11_") as err:
            load_settings({"data_dir": str(tmp_path)}, env)
        assert named in str(err.value) and PIN not in str(err.value)
        assert "unset every PKCS11_* variable" in str(err.value)


def test_a_full_pkcs11_environment_selects_that_hsm_and_keeps_its_pin_out(tmp_path, hsm_env):
    s = load_settings({"data_dir": str(tmp_path)}, hsm_env)
    assert s.kms == "pkcs11"
    pin = hsm_env["PKCS11_USER_PIN"]
    assert pin not in repr(s) and pin not in json.dumps(s.environ())


# -- opening the service -----------------------------------------------------------------


def test_refused_passkey_settings_name_their_sources(tmp_path, hsm_env):
    settings = load_settings(
        {"data_dir": str(tmp_path)},
        {
            **hsm_env,
            "PORTAL_PASSKEY_RP_ID": "example.com",
            "PORTAL_PASSKEY_ORIGINS": "http://evil.example",
        },
    )
    with pytest.raises(ConfigError) as err:
        open_service(settings, hsm_env)
    assert "passkey_origins (PORTAL_PASSKEY_ORIGINS)" in str(err.value)
    assert "plain http is allowed for localhost only" in str(err.value)


def test_the_start_lock_waits_a_bounded_time(tmp_path):
    with start_lock(str(tmp_path)):
        # Another holder (a second open file, as another process would have) gives up.
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=r"still locked after 0\.3 s"):
            with start_lock(str(tmp_path), timeout=0.3):
                pass
        assert 0.3 <= time.monotonic() - t0 < 5
    with start_lock(str(tmp_path), timeout=0.3):  # free again
        fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert mode(tmp_path / LOCK_FILE) == 0o600


# One process's start on the embedded default, as a worker makes it: argv is the data
# directory, "seal" or "open", a blob file, and optionally a file to wait for first.
START = """
import json, os, sys, time
from portal_core.server.config import load_settings
from portal_core.server.runtime import open_service

os.umask(0)  # the files are private whatever the umask
data, action, blob = sys.argv[1:4]
if len(sys.argv) > 4:  # start together with the others
    deadline = time.monotonic() + 30
    while not os.path.exists(sys.argv[4]):
        assert time.monotonic() < deadline, "no go"
        time.sleep(0.01)
service = open_service(load_settings({"data_dir": data}))
try:
    context = {"probe": "serve"}
    if action == "seal":
        with open(blob, "wb") as f:
            f.write(service.kms.seal("custodian-shares", b"first start", context=context))
        opened = None
    else:
        with open(blob, "rb") as f:
            opened = service.kms.open(f.read(), context=context).decode()
    out = {
        "keys": {k.name: list(k.versions) for k in service.kms.list_keys()},
        "opened": opened,
        "ready": service.readiness(),
        "operator": service.custodian().operator,
        "vault": service.vault and service.vault.operator,
        "passkey": service.passkey and service.passkey.rp_id,
    }
finally:
    service.close()
try:
    service.store.query("SELECT 1")
except Exception as e:
    out["closed"] = "closed" in str(e)
print(json.dumps(out))
"""


def start(data: Path, action: str, blob: Path, *go: Path, **env: str) -> subprocess.Popen[str]:
    """START in a child process, with no HSM in its environment but what ``env`` adds."""
    return subprocess.Popen(
        [sys.executable, "-c", START, str(data), action, str(blob), *map(str, go)],
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    try:
        out, err = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out), out + err


def tokens(data: Path) -> list[str]:
    """The labels of the initialised tokens in the embedded SoftHSM2 configuration under
    ``data`` (SoftHSM2 also shows a free slot, with no label)."""
    out = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env={**clean_env(), "SOFTHSM2_CONF": str(data / "hsm" / "softhsm2.conf")},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=True,
    ).stdout
    labels = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Label:" in line]
    return [label for label in labels if label]


def test_first_start_makes_a_private_token_and_store_and_the_next_reuses_them(tmp_path, hsm_env):
    # hsm_env: only to skip (or fail under CI) where SoftHSM2 is missing.
    data, blob = tmp_path / "data", tmp_path / "blob"
    first, output = finish(start(data, "seal", blob))
    assert first["ready"] == {"store": True, "hsm": True}
    assert first["keys"] == {DEFAULT_KEY_NAME: [1]}
    assert first["closed"] is True and first["operator"] == "custodian"
    assert first["vault"] is None and first["passkey"] is None
    hsm = data / "hsm"
    for directory in (data, hsm):
        assert mode(directory) == 0o700, directory
    for name in ("hsm/env", "hsm/so-pin", "hsm/softhsm2.conf", "custodian.db", LOCK_FILE):
        assert mode(data / name) == 0o600, name
    token = softhsm.read_env_file(hsm / "env")
    assert token["PKCS11_TOKEN_LABEL"] == softhsm.TOKEN_LABEL
    assert token["PKCS11_USER_PIN"] not in output  # made, kept in the file, never printed
    env_file = (hsm / "env").read_bytes()

    second, output = finish(start(data, "open", blob))
    assert second["opened"] == "first start"  # the same key-encryption key
    assert second["keys"] == first["keys"]  # no second version, no other key
    assert (hsm / "env").read_bytes() == env_file  # the same token and PIN
    assert tokens(data) == [softhsm.TOKEN_LABEL]
    assert token["PKCS11_USER_PIN"] not in output


def test_three_processes_starting_at_once_make_one_token_and_one_of_each_key(tmp_path, hsm_env):
    data, go = tmp_path / "data", tmp_path / "go"
    procs = [start(data, "seal", tmp_path / f"blob{i}", go, PORTAL_VAULT="on") for i in range(3)]
    go.touch()
    results = [finish(proc)[0] for proc in procs]
    want = {DEFAULT_KEY_NAME: [1], "enclave-vault": [1]}
    assert all(r["keys"] == want and r["ready"] == {"store": True, "hsm": True} for r in results)
    assert tokens(data) == [softhsm.TOKEN_LABEL]
    for i in range(3):  # each process's seal opens in a later one: one key, shared
        assert finish(start(data, "open", tmp_path / f"blob{i}"))[0]["opened"] == "first start"


def test_the_hsm_named_by_pkcs11_variables_replaces_the_embedded_token(tmp_path, hsm_env):
    # A token of this test's own: the service makes the custodian's key in it.
    env_file, _ = softhsm.init_token_dir(tmp_path / "other-hsm")
    token = softhsm.read_env_file(env_file)
    data = tmp_path / "data"
    enclave = {"PORTAL_VAULT": "on", "PORTAL_PASSKEY_RP_ID": "example.com"}
    env = {**token, **enclave, "PORTAL_OPERATOR": "vault-operator-2"}
    out, output = finish(start(data, "seal", tmp_path / "blob", **env))
    assert out["ready"] == {"store": True, "hsm": True} and out["closed"] is True
    assert set(out["keys"]) == {DEFAULT_KEY_NAME, "enclave-vault", "enclave-passkey"}
    assert out["operator"] == out["vault"] == "vault-operator-2"
    assert out["passkey"] == "example.com"
    assert not (data / "hsm").exists()  # no embedded token made
    assert mode(data) == 0o700 and mode(data / "custodian.db") == 0o600
    assert token["PKCS11_USER_PIN"] not in output


# -- the command -------------------------------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def serve(tmp_path: Path, data: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    """``portal-core serve`` on 127.0.0.1:``port``, its output in ``tmp_path/serve.log``."""
    cmd = [
        sys.executable, "-m", "portal_core.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(data), *args,
    ]  # fmt: skip
    with open(tmp_path / "serve.log", "wb") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env=clean_env(),
            start_new_session=True,
        )


def stopped_by_sigterm(proc: subprocess.Popen[bytes]) -> float:
    """Stops the server; returns how long SIGTERM took (the SIGKILL fallback fails). One
    worker's uvicorn raises SIGTERM again after its graceful shutdown, so that its status
    says why it ended; the supervisor of several exits 0."""
    t0 = time.monotonic()
    stop(proc)
    assert proc.returncode in (0, -signal.SIGTERM), f"status {proc.returncode}: not SIGTERM"
    return time.monotonic() - t0


def test_serve_with_two_workers_after_tenants_create(tmp_path, hsm_env):
    data, port = tmp_path / "data", free_port()
    created = run_cli("tenants", "create", "Acme", "--data-dir", str(data), "--json")
    assert created.returncode == 0, created.stderr
    base = f"http://127.0.0.1:{port}"
    proc = serve(tmp_path, data, port, "--workers", "2")
    try:
        wait_healthy(base, proc)
        with httpx.Client(base_url=base, timeout=10.0) as client:
            for _ in range(4):  # on whichever worker answers
                ready = client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json() == {"status": "ready", "checks": {"store": True, "hsm": True}}
            assert client.get("/openapi.json").status_code == 200
            # The admin key from the command line makes a client over HTTP, whose key works.
            admin_key = json.loads(created.stdout)["admin_api_key"]
            made = client.post(
                "/v1/custodians/me/clients", headers={"Authorization": f"Bearer {admin_key}"}
            )
            assert made.status_code == 201, made.text
            assert set(made.json()) == {"client_id", "key_id", "client_api_key"}
            me = client.get(
                "/v1/clients/me",
                headers={"Authorization": f"Bearer {made.json()['client_api_key']}"},
            )
            assert me.json()["client_id"] == made.json()["client_id"]
            # Both workers' counts, from whichever answers the scrape.
            for _ in range(4):
                text = client.get("/metrics").text
                assert 'endpoint="create_client",method="POST",status="201"' in text, text
        # The store stays usable by the command line while the service runs.
        again = run_cli("tenants", "create", "Beta", "--data-dir", str(data), "--json")
        assert again.returncode == 0, again.stderr
    finally:
        took = stopped_by_sigterm(proc)
    assert took < STOP_TIMEOUT_S
    log = (tmp_path / "serve.log").read_text()
    assert log.count("Application startup complete") == 2, log  # two workers
    assert log.count("Application shutdown complete") == 2, log
    # Every worker's shutdown closed its store: SQLite removes the WAL with the last
    # connection.
    assert not (data / "custodian.db-wal").exists()
    pin = softhsm.read_env_file(data / "hsm" / "env")["PKCS11_USER_PIN"]
    assert pin not in log
    admin_key = json.loads(created.stdout)["admin_api_key"]
    assert admin_key.split("_", 3)[3] not in log


def test_serve_over_tls(tmp_path, hsm_env, monkeypatch):
    cert, key = self_signed(tmp_path)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    proc = serve(tmp_path, tmp_path / "data", port, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # wait_healthy's client trusts it
        wait_healthy(base, proc)
        trusting = ssl.create_default_context(cafile=str(cert))
        r = httpx.get(base + "/readyz", verify=trusting, timeout=10.0)
        assert r.status_code == 200 and r.json()["checks"] == {"store": True, "hsm": True}
        default = ssl.create_default_context(cafile=certifi.where())
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(base + "/healthz", verify=default, trust_env=False, timeout=10.0)
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5.0)
    finally:
        took = stopped_by_sigterm(proc)
    assert took < STOP_TIMEOUT_S
    log = (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in log
    assert not (tmp_path / "data" / "custodian.db-wal").exists()


# -- a PostgreSQL store ------------------------------------------------------------------


def test_the_store_setting_takes_a_postgresql_url_and_never_quotes_it(tmp_path):
    url = f"postgresql://portal:{PIN}@db.internal:5432/custody"
    s = load_settings({"data_dir": str(tmp_path), "store": url}, {})
    assert s.store == url and s.sources["store"] == "--store"
    assert PIN not in repr(s) and load_settings({}, s.environ()).store == url
    assert load_settings({"data_dir": str(tmp_path)}, {"PORTAL_STORE": "postgres://h/d"}).store
    config = write_toml(tmp_path, 'store = "postgresql:///custody?host=/run/postgresql"')
    assert load_settings({"data_dir": str(tmp_path), "config": str(config)}, {}).store
    assert load_settings({"data_dir": str(tmp_path)}, {}).store is None  # SQLite
    for bad, why in (
        (f"mysql://portal:{PIN}@db/custody", "has another scheme"),
        (f"portal:{PIN}@db/custody", "has another scheme"),
        (f"postgresql://portal:{PIN}@db.internal", "names no database"),
        (f"postgresql://portal:{PIN}@[db/custody", "does not parse"),
    ):
        with pytest.raises(ConfigError) as err:
            load_settings({"data_dir": str(tmp_path)}, {"PORTAL_STORE": bad})
        assert str(err.value).startswith("store (PORTAL_STORE) must be a postgresql:// or ")
        assert why in str(err.value) and PIN not in str(err.value)


def test_serve_with_two_workers_on_a_postgresql_store(tmp_path, hsm_env, pg_dsn):
    from backup_helpers import FAST
    from pg_cluster import DSN_VARIABLE, as_url, fresh_database
    from portal_core.client import HttpAdmin, Portal
    from portal_core.store.postgres import PostgresStore
    from portal_core.tenants import Tenants

    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    with fresh_database(pg_dsn, migrated=False) as dsn:
        # A password in the URL (the throwaway cluster trusts its users and ignores it): it
        # must reach no log line.
        url = as_url(dsn if os.environ.get(DSN_VARIABLE) else f"{dsn} password={PIN}")
        vault_on = write_toml(tmp_path, "[vault]\nenabled = true\n")  # the enclave's tables too
        proc = serve(
            tmp_path, data, port, "--workers", "2", "--store", url, "--config", str(vault_on)
        )
        try:
            wait_healthy(base, proc)
            with httpx.Client(base_url=base, timeout=10.0) as client:
                for _ in range(4):  # on whichever worker answers
                    assert client.get("/readyz").json()["checks"] == {"store": True, "hsm": True}
            # The command line makes the tenant in the database the service uses.
            created = run_cli("tenants", "create", "Acme", "--store", url, "--json")
            assert created.returncode == 0, created.stderr
            admin_key = json.loads(created.stdout)["admin_api_key"]
            with PostgresStore(dsn, pool_size=1) as store:
                assert Tenants(store).authenticate(admin_key).kind == "admin"
            made = HttpAdmin(base, admin_key).create_client_with_key()
            options: dict[str, Any] = {"custom_key_dir": str(tmp_path / "keys"), "argon2": FAST}
            with Portal(
                api_key=made.client_api_key,
                api_host=base,
                device_dir=str(tmp_path / "a"),
                **options,
            ) as phone:
                phone.create_wallet()
                phone.backup_wallet("CUSTOM")
                assert phone.available_recovery_methods() == ["CUSTOM"]
                addresses = phone.addresses()
            with Portal(
                api_key=made.client_api_key,
                api_host=base,
                device_dir=str(tmp_path / "b"),
                **options,
            ) as new_phone:
                assert new_phone.recover_wallet("CUSTOM") == addresses
            with PostgresStore(dsn, pool_size=1) as store:  # the records are in PostgreSQL
                wallet = store.wallet_for_client(made.client_id)
                assert wallet is not None
                assert store.completed_backup(wallet.wallet_id, "CUSTOM") is not None
                assert store.get_lock(made.client_id) is None
                assert store.expired_sessions(float("inf")) == []  # every session ended
                (enclave,) = store.query("SELECT MAX(version) AS v FROM enclave_schema_version")
                assert enclave["v"] == 2
        finally:
            took = stopped_by_sigterm(proc)
    assert took < STOP_TIMEOUT_S
    assert not (data / "custodian.db").exists()  # nothing went to SQLite
    log = (tmp_path / "serve.log").read_text()
    assert log.count("Application startup complete") == 2, log
    assert PIN not in log and made.client_api_key.split("_", 3)[3] not in log


def test_serve_refuses_bad_settings_before_starting(tmp_path):
    for args, named in (
        (["--port", "99999"], "port (--port) must be 1 to 65535"),
        (["--tls-cert", "cert.pem"], "tls_cert (--tls-cert) is set but tls_key is not"),
        (["--workers", "zero"], "workers (--workers) must be an integer"),
        (["--store", f"sqlite://{PIN}"], "store (--store) must be a postgresql:// or"),
    ):
        proc = run_cli("serve", "--data-dir", str(tmp_path / "data"), *args, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert named in proc.stderr and "Traceback" not in proc.stderr
        assert PIN not in proc.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made
    no_dir = run_cli("serve", cwd=tmp_path, env={"PORTAL_PORT": "8400"})
    assert no_dir.returncode == 1 and "data_dir is not set" in no_dir.stderr


def test_tenants_create_refuses_a_store_that_is_no_postgresql_url_without_quoting_it():
    secret = "hunter2-" + PIN
    refused = run_cli("tenants", "create", "Acme", "--store", f"mysql://u:{secret}@h/db")
    assert refused.returncode == 1 and "postgresql://" in refused.stderr
    assert secret not in refused.stderr + refused.stdout
    both = run_cli("tenants", "create", "Acme", "--store", "postgresql://h/db", "--data-dir", "d")
    assert both.returncode == 2 and "not allowed with" in both.stderr
