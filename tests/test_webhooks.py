"""The self-managed webhooks over HTTP (portal_core.webhooks, portal_core.server.receiver):
the v1 signature and its replay window; the reference receiver as a real uvicorn process;
whole self-managed backups and recoveries through it on the session's SoftHSM token;
receivers that stall, fail, lie or hold another secret; the tenants' sealed webhook
configuration."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse, Response

from backup_helpers import (
    PASSWORD,
    Clock,
    self_managed_world_fixture,  # noqa: F401 - a fixture
)
from portal_core.backup import PairStatus
from portal_core.exceptions import (
    FailedWebhook,
    NoValidBackup,
    PortalError,
    ShareVerificationFailed,
)
from portal_core.server.receiver import SECRET_ENV, ReceiverStore, create_receiver_app
from portal_core.store import SqliteStore, TenantWebhookRecord
from portal_core.tenants import AuditKind, NotAuthorized, Tenants, UnknownTenant
from portal_core.webhooks import (
    DEFAULT_TIMEOUT_S,
    SECRET_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HttpIntegratorStore,
    TenantWebhooks,
    WebhookConfig,
    WebhookSignatureInvalid,
    check_secret,
    new_secret,
    sign,
    signed_headers,
    verify,
)
from portal_core.wire import b64url_encode
from server_helpers import (
    free_port,
    receiver_fixture,  # noqa: F401 - a fixture
    serve_in_thread,
)

SECRET = "s3cret-webhook-key-for-the-tests-only-0123456789"
BODY = b'{"clientId":"c1","backupMethod":"PASSWORD-SECP256K1","pairId":"p1","nonce":"00"}'
NOW = 1_800_000_000
STALL_S = 3.0  # how long a stalling receiver holds a request; the tests' timeout is 1 s
SHORT_TIMEOUT_S = 1.0


# -- the signature -------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_the_timestamp_and_the_exact_body():
    mac = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, NOW) == f"v1={mac}"
    headers = signed_headers(SECRET, BODY, NOW)
    assert headers == {
        SECRET_HEADER: SECRET,
        TIMESTAMP_HEADER: str(NOW),
        SIGNATURE_HEADER: f"v1={mac}",
    }
    verified = verify(SECRET, headers, BODY, now=NOW + 299)
    assert verified.timestamp == NOW and verified.signature == f"v1={mac}"
    # Header names are case-insensitive, as HTTP's are.
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify(SECRET, lower, BODY, now=NOW) == verified


def test_a_wrong_secret_is_refused():
    other = new_secret()
    with pytest.raises(WebhookSignatureInvalid, match=SECRET_HEADER):
        verify(SECRET, signed_headers(other, BODY, NOW), BODY, now=NOW)
    # The right secret header over a signature made with another secret.
    forged = {**signed_headers(SECRET, BODY, NOW), SIGNATURE_HEADER: sign(other, BODY, NOW)}
    with pytest.raises(WebhookSignatureInvalid, match=SIGNATURE_HEADER):
        verify(SECRET, forged, BODY, now=NOW)


@pytest.mark.parametrize(
    "altered",
    [BODY.replace(b"p1", b"p2"), BODY + b" ", BODY[:-1], b""],
    ids=["another pair", "a byte added", "a byte cut", "empty"],
)
def test_an_altered_body_is_refused(altered):
    with pytest.raises(WebhookSignatureInvalid, match="not the body's"):
        verify(SECRET, signed_headers(SECRET, BODY, NOW), altered, now=NOW)


def test_a_timestamp_outside_the_window_is_refused():
    headers = signed_headers(SECRET, BODY, NOW)
    for now in (NOW + 300, NOW - 300):
        verify(SECRET, headers, BODY, now=now)  # the window's edges
    for now in (NOW + 301, NOW - 301, NOW + 86_400):
        with pytest.raises(WebhookSignatureInvalid, match="outside the 300 s window"):
            verify(SECRET, headers, BODY, now=now)
    with pytest.raises(WebhookSignatureInvalid, match="outside the 30 s window"):
        verify(SECRET, headers, BODY, now=NOW + 31, window_s=30)


def test_a_signature_moved_to_a_fresh_timestamp_is_refused():
    stale = signed_headers(SECRET, BODY, NOW - 3600)
    moved = {**stale, TIMESTAMP_HEADER: str(NOW)}
    with pytest.raises(WebhookSignatureInvalid, match="not the body's"):
        verify(SECRET, moved, BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "value", "match"),
    [
        (SECRET_HEADER, None, SECRET_HEADER),
        (TIMESTAMP_HEADER, None, "seconds since the epoch"),
        (TIMESTAMP_HEADER, "1.8e9", "seconds since the epoch"),
        (TIMESTAMP_HEADER, "-1800000000", "seconds since the epoch"),
        (TIMESTAMP_HEADER, "9" * 40, "seconds since the epoch"),
        (SIGNATURE_HEADER, None, SIGNATURE_HEADER),
        (SIGNATURE_HEADER, "v2=" + "0" * 64, SIGNATURE_HEADER),
    ],
)
def test_missing_or_malformed_headers_are_refused(header, value, match):
    headers = signed_headers(SECRET, BODY, NOW)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(WebhookSignatureInvalid, match=match):
        verify(SECRET, headers, BODY, now=NOW)


def test_the_secret_and_the_signature_are_compared_in_constant_time(monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr("portal_core.webhooks.hmac.compare_digest", recording)
    headers = signed_headers(SECRET, BODY, NOW)
    verify(SECRET, headers, BODY, now=NOW)
    assert compared == [
        (SECRET.encode(), SECRET.encode()),
        (headers[SIGNATURE_HEADER].encode(), headers[SIGNATURE_HEADER].encode()),
    ]


def test_new_secrets_are_256_bits_and_weak_ones_are_refused_without_being_quoted():
    made = {new_secret() for _ in range(100)}
    assert len(made) == 100
    assert all(len(s) == 43 and check_secret(s) == s.encode() for s in made)
    for weak in ("short-secret", "x" * 31, "a secret with spaces in it, long enough!!", "é" * 40):
        with pytest.raises(ValueError, match="new_secret") as e:
            WebhookConfig("https://integrator.example", weak)
        assert weak not in str(e.value)


def test_a_webhook_url_is_https_unless_loopback():
    secret = new_secret()
    assert WebhookConfig("https://hooks.example/portal/", secret).base_url == (
        "https://hooks.example/portal"
    )
    for url in ("http://127.0.0.1:8400", "http://[::1]:8400", "http://localhost:8400"):
        assert WebhookConfig(url, secret).base_url == url
    refused = [
        "http://hooks.example",
        "http://10.0.0.1",
        "ftp://hooks.example",
        "https://user:pw@hooks.example",
        "https://hooks.example/?token=x",
        "https://hooks.example/#x",
        "https://hooks.example:99999",
        "hooks.example",
        "https://\x00",  # a host that is no DNS name nor address
        "https://-hooks.example",
        "https://hooks.example/a b",
        "https://hooks.example/\u00e9",
    ]
    for url in refused:
        with pytest.raises(ValueError):
            WebhookConfig(url, secret)
    config = WebhookConfig("https://hooks.example", secret)
    assert secret not in repr(config) and secret not in str(config)


# -- the sender alone (answers played by a transport) --------------------------------------


def mock_store(handler, **kw: Any) -> HttpIntegratorStore:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return HttpIntegratorStore("https://hooks.example/portal", SECRET, client=client, **kw)


def test_the_default_timeout_is_10_s_for_every_phase():
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(204)

    assert DEFAULT_TIMEOUT_S == 10.0
    mock_store(handler).store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    assert seen == [{"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}]
    with HttpIntegratorStore("https://hooks.example", SECRET) as own:
        assert own.timeout_s == 10.0
        assert own._client.timeout.read == 10.0


def test_requests_are_signed_json_with_a_nonce():
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    store = mock_store(handler, clock=lambda: NOW)
    store.store("c1", "PASSWORD-SECP256K1", "p1", b"\xffsealed")
    store.store("c1", "PASSWORD-SECP256K1", "p1", b"\xffsealed")
    first, second = requests
    assert first.url == "https://hooks.example/portal/backup"
    assert first.headers["content-type"] == "application/json"
    body = json.loads(first.content)
    assert body.pop("nonce") != json.loads(second.content)["nonce"]
    assert body == {
        "clientId": "c1",
        "backupMethod": "PASSWORD-SECP256K1",
        "pairId": "p1",
        "share": b64url_encode(b"\xffsealed"),
    }
    verify(SECRET, first.headers, first.content, now=NOW)
    # The same share at the same second: two different signatures, so no false replay.
    assert first.headers[SIGNATURE_HEADER] != second.headers[SIGNATURE_HEADER]


def test_a_redirect_is_not_followed():
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(307, headers={"Location": "https://elsewhere.example/backup"})

    with pytest.raises(FailedWebhook, match="HTTP 307"):
        mock_store(handler).store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    assert hosts == ["hooks.example"]  # the secret went nowhere else


@pytest.mark.parametrize(
    ("status", "content", "error", "match"),
    [
        (200, b"not json", FailedWebhook, "answered without a share"),
        (200, b'{"share": 5}', FailedWebhook, "answered without a share"),
        (200, b'{"share": "a+b/"}', FailedWebhook, "answered without a share"),
        (200, b"[]", FailedWebhook, "answered without a share"),
        (200, b'{"share": "' + b"A" * 70_000 + b'"}', FailedWebhook, "more than 65536 bytes"),
        (404, b'{"code": "NOT_FOUND"}', FailedWebhook, "HTTP 404"),
        (404, b"", FailedWebhook, "HTTP 404"),
        (500, b"", FailedWebhook, "HTTP 500"),
        (401, b"", FailedWebhook, "refused \\(HTTP 401\\).*webhook secret"),
        (404, b'{"code": "NO_VALID_BACKUP"}', NoValidBackup, "holds no PASSWORD-SECP256K1"),
    ],
)
def test_fetch_answers_that_are_not_a_share(status, content, error, match):
    store = mock_store(lambda request: httpx.Response(status, content=content))
    with pytest.raises(error, match=match) as e:
        store.fetch("c1", "PASSWORD-SECP256K1", "p1")
    assert SECRET not in str(e.value)
    assert e.type is NoValidBackup or "POST https://hooks.example/portal/backup/fetch" in str(
        e.value
    )


def test_a_refused_connection_is_a_failed_webhook():
    store = HttpIntegratorStore(f"http://127.0.0.1:{free_port()}", SECRET)
    with store, pytest.raises(FailedWebhook, match=r"ConnectError.*base URL") as e:
        store.store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    assert SECRET not in str(e.value)


# -- the reference receiver, a real uvicorn process ------------------------------------------


def test_the_receiver_stores_fetches_and_deletes(receiver):
    store = receiver.store()
    store.store("c1", "PASSWORD-SECP256K1", "p1", b"sealed one")
    store.store("c1", "PASSWORD-ED25519", "p2", b"sealed two")
    store.store("c2", "PASSWORD-SECP256K1", "p1", b"another client's")
    assert store.fetch("c1", "PASSWORD-SECP256K1", "p1") == b"sealed one"
    assert store.fetch("c2", "PASSWORD-SECP256K1", "p1") == b"another client's"
    store.store("c1", "PASSWORD-SECP256K1", "p1", b"sealed again")  # the same key: replaced
    assert store.fetch("c1", "PASSWORD-SECP256K1", "p1") == b"sealed again"
    assert receiver.shares() == 3
    store.delete("c1", "PASSWORD-SECP256K1", "p1")
    store.delete("c1", "PASSWORD-SECP256K1", "p1")  # deleting what is gone is no error
    with pytest.raises(NoValidBackup):
        store.fetch("c1", "PASSWORD-SECP256K1", "p1")
    with pytest.raises(NoValidBackup):
        store.fetch("c9", "GDRIVE-ED25519", "p9")
    assert receiver.shares() == 2
    assert stat.S_IMODE(os.stat(receiver.db).st_mode) == 0o600


def test_the_receiver_refuses_another_secret_with_401(receiver):
    wrong = new_secret()
    with pytest.raises(FailedWebhook, match=r"refused \(HTTP 401\)") as e:
        receiver.store(wrong).store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    assert wrong not in str(e.value) and receiver.secret not in str(e.value)
    # Nothing signed at all, and the right secret header over a forged signature.
    body = BODY
    forged = {
        **signed_headers(receiver.secret, body, int(time.time())),
        SIGNATURE_HEADER: sign(wrong, body, int(time.time())),
    }
    for headers in ({}, forged):
        r = httpx.post(receiver.base + "/backup/fetch", content=body, headers=headers, timeout=5)
        assert r.status_code == 401
        assert r.json()["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert receiver.shares() == 0


def test_the_receiver_refuses_a_stale_or_altered_request(receiver):
    late = receiver.store(clock=lambda: time.time() - 600)
    with pytest.raises(FailedWebhook, match="401"):
        late.store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    body = json.dumps(
        {"clientId": "c1", "backupMethod": "PASSWORD-SECP256K1", "pairId": "p1", "share": "AA"}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        **signed_headers(receiver.secret, body, int(time.time())),
    }
    altered = body.replace(b'"AA"', b'"AB"')
    r = httpx.post(receiver.base + "/backup", content=altered, headers=headers, timeout=5)
    assert r.status_code == 401 and "not the body's" in r.json()["detail"]
    assert receiver.shares() == 0


def test_a_replayed_request_is_refused(receiver):
    """The attack: a captured, genuine delete, replayed after the share was stored again."""
    store = receiver.store()

    def signed(path: str, fields: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
        body = json.dumps(fields).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(receiver.secret, body, int(time.time())),
        }
        return receiver.base + path, body, headers

    key = {"clientId": "c1", "backupMethod": "PASSWORD-SECP256K1", "pairId": "p1"}
    store.store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    url, body, headers = signed("/backup/delete", {**key, "nonce": "n1"})
    assert httpx.post(url, content=body, headers=headers, timeout=5).status_code == 204
    store.store("c1", "PASSWORD-SECP256K1", "p1", b"sealed")
    replay = httpx.post(url, content=body, headers=headers, timeout=5)
    assert replay.status_code == 401 and "seen already" in replay.json()["detail"]
    assert store.fetch("c1", "PASSWORD-SECP256K1", "p1") == b"sealed"


def test_seen_signatures_are_forgotten_once_out_of_the_window(tmp_path):
    with ReceiverStore(tmp_path / "r.db") as db:
        assert db.first_sight("v1=aa", NOW + 300, NOW)
        assert not db.first_sight("v1=aa", NOW + 300, NOW + 299)
        assert db.first_sight("v1=bb", NOW + 600, NOW + 299)
        # Once past its expiry the row goes (verify() refuses such a timestamp anyway).
        assert db.first_sight("v1=aa", NOW + 1000, NOW + 301)
        rows = db.query("SELECT signature FROM seen_signatures ORDER BY signature")
        assert [r["signature"] for r in rows] == ["v1=aa", "v1=bb"]


def test_the_receiver_takes_its_secret_from_the_environment_only(tmp_path):
    run = [sys.executable, "-m", "portal_core.server.receiver", "--db", str(tmp_path / "r.db")]
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    missing = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and SECRET_ENV in missing.stderr
    secret = new_secret()
    as_argument = subprocess.run(
        [*run, "--secret", secret], env=env, capture_output=True, text=True, timeout=60
    )
    assert as_argument.returncode == 2 and "unrecognized arguments" in as_argument.stderr
    weak = subprocess.run(
        run, env={**env, SECRET_ENV: "too-short"}, capture_output=True, text=True, timeout=60
    )
    assert weak.returncode == 2 and "too-short" not in weak.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was made


# -- self-managed backups and recoveries over HTTP -------------------------------------------


def completed_backups(custodian: Any, client_id: str) -> set[str]:
    return {
        p.backup_id
        for p in custodian.list_backup_pairs(client_id)
        if p.status == PairStatus.COMPLETED
    }


def test_a_self_managed_backup_and_recovery_through_the_receiver(self_managed_world, receiver):
    w = self_managed_world
    w.integrator = receiver.store()
    custodian, phone = w.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PASSWORD)
    assert result.status == PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY
    assert receiver.shares() == 2  # stored, read back and checked, one per curve
    phone.stored_client_backup_share(True, "PASSWORD")
    assert completed_backups(custodian, phone.client_id) == {result.backup_id}
    custodian.check_backup(phone.client_id, result.backup_id)  # fetched and checked again

    fresh = w.client(custodian, phone.client_id)
    assert phone.addresses() == fresh.recover_wallet(
        "PASSWORD", cipher_text=result.cipher_text, password=PASSWORD
    )

    # A second backup replaces the first, at the custodian and at the receiver.
    second = fresh.backup_wallet("PASSWORD", password=PASSWORD)
    assert receiver.shares() == 4
    fresh.stored_client_backup_share(True, "PASSWORD")
    assert receiver.shares() == 2
    assert completed_backups(custodian, phone.client_id) == {second.backup_id}


class Switch:
    """The reference receiver behind a switch: honest, or misbehaving on one endpoint
    (``mode``: ``stall``, ``error``, or ``other share``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.mode: str | None = None
        self.path = ""
        self.other_share = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.mode is None or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        response: Response
        if self.mode == "stall":
            await asyncio.sleep(STALL_S)
            response = Response(status_code=204)
        elif self.mode == "error":
            response = Response(b"internal error", 500)
        else:
            response = JSONResponse({"share": b64url_encode(self.other_share)})
        await response(scope, receive, send)


@pytest.fixture
def switched(tmp_path: Path) -> Iterator[tuple[Switch, str, str]]:
    secret = new_secret()
    switch = Switch(create_receiver_app(secret, tmp_path / "receiver.db"))
    with serve_in_thread(switch) as base:
        yield switch, base, secret


@pytest.mark.parametrize(
    ("mode", "path", "phase", "error"),
    [
        ("stall", "/backup/fetch", "backup", FailedWebhook),
        ("stall", "/backup", "backup", FailedWebhook),
        ("error", "/backup", "backup", FailedWebhook),
        ("other share", "/backup/fetch", "backup", ShareVerificationFailed),
        ("stall", "/backup/fetch", "complete", FailedWebhook),
        ("error", "/backup/fetch", "complete", FailedWebhook),
        ("other share", "/backup/fetch", "complete", ShareVerificationFailed),
    ],
)
def test_a_failing_receiver_leaves_the_previous_backup_usable(
    self_managed_world, switched, mode, path, phase, error
):
    w = self_managed_world
    switch, base, secret = switched
    integrator = HttpIntegratorStore(base, secret, timeout_s=SHORT_TIMEOUT_S)
    w.integrator = integrator
    with integrator:
        custodian, phone = w.new_wallet()
        first = phone.backup_wallet("PASSWORD", password=PASSWORD)
        phone.stored_client_backup_share(True, "PASSWORD")
        pair = custodian.list_backup_pairs(phone.client_id)[0]
        switch.other_share = integrator.fetch(
            phone.client_id, f"{pair.method}-{pair.curve}", pair.pair_id
        )

        switch.mode, switch.path = mode, path
        started = time.monotonic()
        with pytest.raises(error) as e:
            if phase == "backup":
                phone.backup_wallet("PASSWORD", password=PASSWORD)
            else:
                switch.mode = None
                phone.backup_wallet("PASSWORD", password=PASSWORD)
                switch.mode = mode
                started = time.monotonic()
                phone.stored_client_backup_share(True, "PASSWORD")
        elapsed = time.monotonic() - started
        if mode == "stall":  # the timeout, not an error sooner, and not much later
            assert SHORT_TIMEOUT_S * 0.9 <= elapsed < SHORT_TIMEOUT_S + 3, elapsed
            assert "did not answer within 1 s" in str(e.value)
        assert secret not in str(e.value)

        # The second backup did not complete; the first is still the completed one.
        assert completed_backups(custodian, phone.client_id) == {first.backup_id}
        pending = {
            p.backup_id
            for p in custodian.list_backup_pairs(phone.client_id)
            if p.backup_id != first.backup_id
        }
        assert len(pending) == (1 if phase == "complete" else 0)
        switch.mode = None
        fresh = w.client(custodian, phone.client_id)
        assert phone.addresses() == fresh.recover_wallet(
            "PASSWORD", cipher_text=first.cipher_text, password=PASSWORD
        )


def test_a_receiver_with_another_secret_fails_the_backup(self_managed_world, receiver):
    w = self_managed_world
    w.integrator = receiver.store(new_secret())
    custodian, phone = w.new_wallet()
    with pytest.raises(FailedWebhook, match=r"refused \(HTTP 401\)"):
        phone.backup_wallet("PASSWORD", password=PASSWORD)
    assert custodian.list_backup_pairs(phone.client_id) == []
    assert receiver.shares() == 0
    assert '"status":401' in receiver.log.read_text()  # the receiver logged the refusals


def test_the_secret_is_in_no_log_repr_or_error(self_managed_world, receiver, switched, caplog):
    caplog.set_level(logging.DEBUG)
    w = self_managed_world
    honest = receiver.store()
    w.integrator = honest
    custodian, phone = w.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PASSWORD)
    phone.stored_client_backup_share(True, "PASSWORD")
    errors: list[PortalError] = []
    switch, base, other_secret = switched
    switch.mode, switch.path = "stall", "/backup"
    with HttpIntegratorStore(base, other_secret, timeout_s=SHORT_TIMEOUT_S) as stalled:
        for integrator in (receiver.store(new_secret()), stalled):
            w.integrator = integrator
            with pytest.raises(FailedWebhook) as e:
                integrator.store(phone.client_id, "PASSWORD-ED25519", "p", b"x")
            errors.append(e.value)
        texts = [
            caplog.text,
            receiver.log.read_text(),
            *(f"{e!r} {e}" for e in errors),
            repr(honest),
            repr(stalled),
            repr(custodian),
            repr(WebhookConfig(receiver.base, receiver.secret)),
            repr(result),
        ]
    assert "POST" in caplog.text  # the requests were logged, without their headers
    for text in texts:
        for secret in (receiver.secret, other_secret):
            assert secret not in text
            assert b64url_encode(secret.encode()) not in text


# -- the tenants' webhooks -------------------------------------------------------------------


@pytest.fixture
def tenant_store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "custodian.db") as store:
        yield store


def admin_of(tenants: Tenants, name: str) -> tuple[str, Any]:
    created = tenants.create_tenant(name)
    return created.tenant_id, tenants.authenticate(created.admin_key.api_key)


def test_a_tenants_webhook_is_stored_sealed_and_round_trips(tenant_store, kms, key_name, tmp_path):
    tenants = Tenants(tenant_store, clock=Clock())
    tenant_id, admin = admin_of(tenants, "Acme")
    webhooks = TenantWebhooks(tenant_store, kms, key_name=key_name, clock=Clock())
    config = WebhookConfig("https://hooks.acme.example/portal", new_secret())
    assert webhooks.get(tenant_id) is None
    webhooks.configure(tenant_id, config, by=admin)
    assert webhooks.get(tenant_id, by=admin) == config
    assert webhooks.get(tenant_id) == config  # the operator

    record = tenant_store.tenant_webhook(tenant_id)
    assert record is not None and record.base_url == config.base_url
    assert config.secret.encode() not in record.sealed_secret
    assert config.secret not in repr(record) and config.secret not in repr(webhooks)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("custodian"))
    assert config.base_url.encode() in raw  # the search does work
    assert config.secret.encode() not in raw

    (event,) = [
        e for e in tenants.audit_events(tenant_id) if e.kind == AuditKind.WEBHOOK_CONFIGURED
    ]
    assert event.detail == {"by": admin.key_id, "base_url": config.base_url}
    assert config.secret not in json.dumps(event.detail)

    replaced = WebhookConfig("https://hooks2.acme.example", new_secret())
    webhooks.configure(tenant_id, replaced)
    assert webhooks.get(tenant_id) == replaced
    assert webhooks.remove(tenant_id, by=admin)
    assert not webhooks.remove(tenant_id, by=admin)
    assert webhooks.get(tenant_id) is None
    kinds = [e.kind for e in tenants.audit_events(tenant_id)]
    assert kinds.count(AuditKind.WEBHOOK_CONFIGURED) == 2
    assert kinds.count(AuditKind.WEBHOOK_REMOVED) == 1
    with pytest.raises(UnknownTenant):
        webhooks.configure("no-such-tenant", config)


def test_another_tenant_cannot_read_or_set_a_tenants_webhook(tenant_store, kms, key_name):
    tenants = Tenants(tenant_store)
    acme, acme_admin = admin_of(tenants, "Acme")
    evil, evil_admin = admin_of(tenants, "Evil")
    client_key = tenants.create_client(acme).client_key
    acme_client = tenants.authenticate(client_key.api_key)
    webhooks = TenantWebhooks(tenant_store, kms, key_name=key_name)
    config = WebhookConfig("https://hooks.acme.example", new_secret())
    webhooks.configure(acme, config, by=acme_admin)

    for stranger in (evil_admin, acme_client):
        with pytest.raises(NotAuthorized):
            webhooks.get(acme, by=stranger)
        with pytest.raises(NotAuthorized):
            webhooks.configure(
                acme, WebhookConfig("https://evil.example", new_secret()), by=stranger
            )
        with pytest.raises(NotAuthorized):
            webhooks.remove(acme, by=stranger)
    assert webhooks.get(acme) == config

    # The database's owner copies Acme's sealed secret into Evil's row: it does not open there.
    record = tenant_store.tenant_webhook(acme)
    assert record is not None
    moved = TenantWebhookRecord(evil, "https://evil.example", record.sealed_secret, 0.0)
    tenant_store.set_tenant_webhook(moved, [])
    with pytest.raises(FailedWebhook, match="does not open") as e:
        webhooks.get(evil, by=evil_admin)
    assert config.secret not in str(e.value)
