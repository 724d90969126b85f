"""The /v1 API on a real service (two uvicorn workers on 127.0.0.1): authentication, tenant
and client isolation for every endpoint, the admin's calls, the enclave's endpoints, and
the problem-document contract as the client SDK sees it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backup_helpers import FAST
from enclave_fixtures import assertion, register
from http_world import RunningService, running_service
from portal_core.backup import MemoryDevice, WalletClient
from portal_core.client import HttpAdmin, HttpCustodian, HttpPasskeyEnclave, HttpVault
from portal_core.exceptions import NoValidBackup, PortalError, WalletNotFound
from portal_core.http_api import ENDPOINTS, Endpoint
from portal_core.store import KeyKind
from portal_core.tenants import AuthenticationFailed, NotAuthorized
from portal_core.webhooks import FailedWebhook
from server_helpers import Receiver, receiver_fixture  # noqa: F401 - a fixture
from webauthn_authenticator import SoftAuthenticator

BOGUS_KEY = "pc_cli_" + "0" * 32 + "_" + "A" * 43


@dataclass
class Party:
    """A client of a tenant with a wallet, a completed CUSTOM backup, an open backup
    session, a vault slot and a passkey-held key."""

    client_id: str
    api_key: str
    key_id: str
    wallet: WalletClient
    backup_id: str
    session_id: str
    slot: str
    key_dir: str


@dataclass
class Setup:
    service: RunningService
    victim: Party
    neighbour: Party  # the same tenant, another client
    stranger_admin_key: str  # another tenant's admin
    stranger: Party  # another tenant's client


def _party(service: RunningService, admin_key: str, tmp: Path, name: str) -> Party:
    made = HttpAdmin(service.base_url, admin_key).create_client_with_key()
    api = HttpCustodian(service.base_url, made.client_api_key)
    key_dir = str(tmp / name)
    wallet = WalletClient(
        api, made.client_id, device=MemoryDevice(), custom_key_dir=key_dir, argon2=FAST
    )
    wallet.create_wallet()
    backup_id = wallet.backup_wallet("CUSTOM").backup_id
    session = api.begin_recovery(made.client_id, backup_id)  # left open: a live session
    vault = HttpVault(service.base_url, made.client_api_key, operator="custodian-op")
    slot = f"{name}-slot"
    vault.enroll(slot, b"k" * 32, owner=made.client_id, max_tries=5, params=b"p")
    enclave = HttpPasskeyEnclave(service.base_url, made.client_api_key)
    auth = SoftAuthenticator()
    register(enclave, auth, made.client_id)
    response, _ = assertion(enclave, auth, made.client_id, "write", slot=slot)
    enclave.finish_login_write(made.client_id, response, b"K" * 32, slot=slot)
    return Party(
        made.client_id,
        made.client_api_key,
        made.key_id,
        wallet,
        backup_id,
        session.session_id,
        slot,
        key_dir,
    )


@pytest.fixture(scope="module")
def setup(http_service: RunningService, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    tmp = tmp_path_factory.mktemp("api")
    _, stranger_admin = http_service.new_tenant(f"stranger-{tmp.name}")
    return Setup(
        http_service,
        _party(http_service, http_service.admin_key, tmp, "victim"),
        _party(http_service, http_service.admin_key, tmp, "neighbour"),
        stranger_admin,
        _party(http_service, stranger_admin, tmp, "stranger"),
    )


def _state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit trail, the rate-limit counters and the
    idempotency keys (the bookkeeping of refusals and requests)."""
    with sqlite3.connect(db) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in ("audit_events", "sqlite_sequence", "rate_limits", "idempotency_keys")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


# The victim's ids each path parameter takes, and a well-formed body per endpoint.
def _path(e: Endpoint, victim: Party) -> str:
    values = {
        "session_id": victim.session_id,
        "backup_id": victim.backup_id,
        "client_id": victim.client_id,
        "key_id": victim.key_id,
        "slot": victim.slot,
    }
    return e.path.format_map(values)


_BODIES: dict[str, Any] = {
    "begin_keygen": {"curves": ["SECP256K1"]},
    "begin_backup": {"method": "CUSTOM"},
    "exchange_commitments": {"messages": {"SECP256K1": "AAAA"}},
    "exchange_reveals": {"messages": {"SECP256K1": "AAAA"}},
    "update_backup_status": {"status": "completed"},
    "store_cipher_text": {"cipher_text": "AAAA"},
    "release_eject_shares": {},  # backup_id filled in
    "begin_recovery": {},  # backup_id filled in
    "vault_enroll": {"access_key": "a2traw", "max_tries": 3},
    "vault_release": {"access_key": "a2traw"},
    "passkey_finish_registration": {"response": {"id": "x"}},
    "passkey_begin_login": {"operation": "read", "slot": "victim-slot"},
    "passkey_finish_read": {"response": {"id": "x"}},
    "passkey_finish_write": {"response": {"id": "x"}, "key": "S0tL"},
    "set_webhooks": {"base_url": "https://integrator.example", "secret": "s" * 40},
}


def _body(e: Endpoint, victim: Party) -> Any:
    if e.request is None:
        return None
    body = dict(_BODIES.get(e.name, {}))
    if e.name in ("release_eject_shares", "begin_recovery"):
        body["backup_id"] = victim.backup_id
    return body


def _code(r: httpx.Response) -> str | None:
    return r.json().get("code") if r.content else None


# Ids nobody has: what another client's ids must look like to a caller.
NOBODY = Party(
    "no-client",
    BOGUS_KEY,
    "0" * 32,
    None,  # type: ignore[arg-type] # no wallet: nothing of it may appear anywhere
    "no-backup",
    "no-session",
    "no-slot",
    "",
)


def _send(base: str, e: Endpoint, victim: Party, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = _body(e, victim)
    return httpx.request(
        e.method,
        base + _path(e, victim),
        headers=headers,
        json=body if body is not None else None,
        timeout=30.0,
    )


# Client endpoints whose path names one of the victim's own things: another client's key
# must be refused there. (The others act on the caller's own wallet: nothing to cross.)
_NAMES_A_THING = {e.name for e in ENDPOINTS if "{" in e.path}


def _leaks(response: httpx.Response, victim: Party) -> list[str]:
    """The victim's values found in a response: its key, wallet id or addresses."""
    values = [
        victim.api_key,
        victim.wallet._wallet().wallet_id,
        *victim.wallet.addresses().values(),
    ]
    return [v for v in values if v in response.text]


@pytest.mark.parametrize("e", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_every_endpoint_refuses_whoever_it_is_not_for(setup: Setup, e: Endpoint) -> None:
    base, victim = setup.service.base_url, setup.victim
    before = _state(setup.service.db)
    wrong_kind = setup.service.admin_key if e.auth is KeyKind.CLIENT else victim.api_key
    attempts: dict[str, tuple[str | None, int, str]] = {
        "no key": (None, 401, "AUTHENTICATION_REQUIRED"),
        "unknown key": (BOGUS_KEY, 401, "AUTHENTICATION_FAILED"),
        "revoked or made-up secret": (victim.api_key[:-4] + "AAAA", 401, "AUTHENTICATION_FAILED"),
        "the other kind of key": (wrong_kind, 403, "NOT_AUTHORIZED"),
    }
    if e.auth is KeyKind.ADMIN and "{client_id}" in e.path:
        attempts["another tenant's admin"] = (setup.stranger_admin_key, 403, "NOT_AUTHORIZED")
    for who, (key, status, code) in attempts.items():
        r = _send(base, e, victim, key)
        assert (r.status_code, r.json().get("code")) == (status, code), (who, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert not _leaks(r, victim), who
    if e.auth is KeyKind.CLIENT and e.name in _NAMES_A_THING:
        # Another client naming the victim's things gets exactly the answer it gets for
        # things that do not exist: nothing tells it they are there.
        for who, party in (("neighbour", setup.neighbour), ("stranger", setup.stranger)):
            r = _send(base, e, victim, party.api_key)
            nobody = _send(base, e, NOBODY, party.api_key)
            assert (r.status_code, _code(r)) == (nobody.status_code, _code(nobody)), (who, r.text)
            # (A DELETE of nothing succeeds, as deletes are idempotent; the store check
            # below shows it removed nothing.)
            assert r.status_code >= 400 or e.method == "DELETE", (who, r.text)
            assert not _leaks(r, victim), who
    if e.name == "revoke_key":  # the victim's key id with another tenant's admin key
        r = _send(base, e, victim, setup.stranger_admin_key)
        assert r.status_code == 404 and r.json()["code"] == "API_KEY_NOT_FOUND", r.text
    assert _state(setup.service.db) == before, "a refused call changed the store"


def test_the_victim_is_still_whole(setup: Setup) -> None:
    """After every refused attempt, the victim's backup recovers and its vault slot still
    has all its tries."""
    victim = setup.victim
    api = HttpCustodian(setup.service.base_url, victim.api_key)
    api.abort(victim.client_id, victim.session_id)
    addresses = victim.wallet.addresses()
    fresh = WalletClient(
        api, victim.client_id, device=MemoryDevice(), custom_key_dir=victim.key_dir, argon2=FAST
    )
    assert fresh.recover_wallet("CUSTOM") == addresses
    vault = HttpVault(setup.service.base_url, victim.api_key, operator="custodian-op")
    status = vault.status(victim.slot, owner=victim.client_id)
    assert status.tries_left == 5 and status.params == b"p"
    assert vault.release(victim.slot, b"k" * 32, owner=victim.client_id)


# -- the admin's calls -----------------------------------------------------------------------


def test_admin_makes_clients_rotates_and_revokes_keys_and_reads_its_audit(
    setup: Setup,
) -> None:
    base = setup.service.base_url
    admin = HttpAdmin(base, setup.service.admin_key)
    made = admin.create_client_with_key()
    assert made.client_api_key.startswith("pc_cli_") and made.client_api_key not in repr(made)
    assert HttpCustodian(base, made.client_api_key).whoami().client_id == made.client_id
    rotated = admin.rotate_client_key(made.client_id)
    with pytest.raises(AuthenticationFailed):
        HttpCustodian(base, made.client_api_key).whoami()
    assert HttpCustodian(base, rotated.client_api_key).whoami().client_id == made.client_id
    assert admin.revoke_key(rotated.key_id) is True
    with pytest.raises(AuthenticationFailed):
        HttpCustodian(base, rotated.client_api_key).whoami()

    second = admin.create_admin_key()
    assert HttpAdmin(base, second.admin_api_key).revoke_key(second.key_id) is True

    kinds = [e.kind for e in admin.audit_events(limit=1000).events]
    for kind in ("client.created", "client_key.rotated", "client_key.revoked", "auth.failed"):
        assert kind in kinds, kind
    # Another tenant's admin reads only its own trail.
    theirs = HttpAdmin(base, setup.stranger_admin_key).audit_events(limit=1000).events
    assert made.client_id not in json.dumps([e.subject for e in theirs])


def test_eject_authorised_by_the_admin_and_used_are_audited(setup: Setup, tmp_path: Path) -> None:
    base = setup.service.base_url
    admin = HttpAdmin(base, setup.service.admin_key)
    made = admin.create_client_with_key()
    phone = WalletClient(
        HttpCustodian(base, made.client_api_key),
        made.client_id,
        device=MemoryDevice(),
        custom_key_dir=str(tmp_path),
        argon2=FAST,
    )
    phone.create_wallet()
    phone.backup_wallet("CUSTOM")
    with pytest.raises(Exception, match="not authorised"):
        phone.eject_private_keys("CUSTOM")
    with pytest.raises(NotAuthorized):
        HttpAdmin(base, setup.stranger_admin_key).authorize_eject(made.client_id)
    admin.authorize_eject(made.client_id)
    assert set(phone.eject_private_keys("CUSTOM")) == {"SECP256K1", "ED25519"}
    events = [(e.kind, e.subject) for e in admin.audit_events(limit=1000).events]
    assert ("eject.authorized", made.client_id) in events
    assert ("eject.used", made.client_id) in events


# -- the enclave -------------------------------------------------------------------------------


def test_vault_over_http_counts_guesses_and_destroys_the_secret(setup: Setup) -> None:
    base = setup.service.base_url
    made = HttpAdmin(base, setup.service.admin_key).create_client_with_key()
    vault = HttpVault(base, made.client_api_key, operator="custodian-op")
    secret = vault.enroll("s1", b"a" * 32, owner=made.client_id, max_tries=2, params=b"")
    assert vault.release("s1", b"a" * 32, owner=made.client_id) == secret
    with pytest.raises(Exception, match="1 tr") as wrong:
        vault.release("s1", b"b" * 32, owner=made.client_id)
    assert getattr(wrong.value, "tries_left", None) == 1
    with pytest.raises(NoValidBackup):
        vault.release("s1", b"b" * 32, owner=made.client_id)
    assert vault.status("s1", owner=made.client_id).destroyed
    events = HttpAdmin(base, setup.service.admin_key).audit_events(limit=1000).events
    assert ("vault.secret_destroyed", made.client_id) in [(e.kind, e.subject) for e in events]


def test_passkey_over_http_reads_back_what_it_wrote(setup: Setup) -> None:
    base = setup.service.base_url
    made = HttpAdmin(base, setup.service.admin_key).create_client_with_key()
    enclave = HttpPasskeyEnclave(base, made.client_api_key)
    auth = SoftAuthenticator()
    assert not enclave.has_credentials(made.client_id)
    info = register(enclave, auth, made.client_id)
    assert info.prf_enabled and enclave.has_credentials(made.client_id)
    response, _ = assertion(enclave, auth, made.client_id, "write")
    enclave.finish_login_write(made.client_id, response, b"Z" * 32)
    response, _ = assertion(enclave, auth, made.client_id, "read")
    assert enclave.finish_login_read(made.client_id, response) == b"Z" * 32
    # The same assertion again: its challenge is spent.
    with pytest.raises(Exception, match="unknown or already used"):
        enclave.finish_login_read(made.client_id, response)


# -- problems as the SDK sees them ---------------------------------------------------------------


def test_typed_errors_come_back_as_their_classes(setup: Setup) -> None:
    base = setup.service.base_url
    made = HttpAdmin(base, setup.service.admin_key).create_client_with_key()
    api = HttpCustodian(base, made.client_api_key)
    with pytest.raises(WalletNotFound, match="has no wallet yet") as e:
        api.get_wallet(made.client_id)
    assert e.value.code == "WALLET_NOT_FOUND" and e.value.status == 404  # type: ignore[attr-defined]
    assert e.value.request_id  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="another client"):
        api.get_wallet("someone-else")


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("begin_backup", {}),
        ("begin_backup", {"method": 7}),
        ("begin_keygen", {"curves": "SECP256K1"}),
        ("store_cipher_text", {"cipher_text": "not base64!"}),
        ("vault_enroll", {"access_key": "AA=="}),
    ],
)
def test_malformed_bodies_are_400_and_store_nothing(
    setup: Setup, name: str, body: dict[str, Any]
) -> None:
    e = next(x for x in ENDPOINTS if x.name == name)
    before = _state(setup.service.db)
    r = httpx.request(
        e.method,
        setup.service.base_url + _path(e, setup.neighbour),
        headers={"Authorization": f"Bearer {setup.neighbour.api_key}"},
        json=body,
        timeout=30.0,
    )
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", r.text
    assert "Traceback" not in r.text
    assert _state(setup.service.db) == before


# -- the SDK ---------------------------------------------------------------------------------


def test_portal_runs_a_wallet_life_over_http(setup: Setup, tmp_path: Path) -> None:
    from portal_core.backup import BACKUP_ORDER, RECOVERY_ORDER
    from portal_core.client import Portal

    base = setup.service.base_url
    made = HttpAdmin(base, setup.service.admin_key).create_client_with_key()
    options: dict[str, Any] = {"custom_key_dir": str(tmp_path / "keys"), "argon2": FAST}
    with Portal(
        api_key=made.client_api_key, api_host=base, device_dir=str(tmp_path / "a"), **options
    ) as phone:
        assert phone.client_id == made.client_id and made.client_api_key not in repr(phone)
        phone.create_wallet()
        events: list[dict[str, Any]] = []
        phone.backup_wallet("CUSTOM", progress=events.append)
        assert [e["status"] for e in events] == [s.value for s in BACKUP_ORDER]
        assert phone.available_recovery_methods() == ["CUSTOM"] and phone.is_wallet_recoverable()
        addresses = phone.addresses()
    with Portal(
        api_key=made.client_api_key, api_host=base, device_dir=str(tmp_path / "b"), **options
    ) as new_phone:
        events = []
        assert new_phone.recover_wallet("CUSTOM", progress=events.append) == addresses
        assert [e["status"] for e in events] == [s.value for s in RECOVERY_ORDER]
    with pytest.raises(AuthenticationFailed):
        Portal(api_key=BOGUS_KEY, api_host=base, device_dir=str(tmp_path / "c"))


def test_async_portal_runs_the_same_flows_without_blocking_the_loop(
    setup: Setup, tmp_path: Path
) -> None:
    import asyncio

    from portal_core.client import AsyncPortal

    base = setup.service.base_url
    made = HttpAdmin(base, setup.service.admin_key).create_client_with_key()

    async def life() -> tuple[dict[str, str], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        async with await AsyncPortal.connect(
            api_key=made.client_api_key,
            api_host=base,
            device_dir=str(tmp_path / "a"),
            custom_key_dir=str(tmp_path / "keys"),
            argon2=FAST,
        ) as phone:
            await phone.create_wallet()
            await phone.backup_wallet("CUSTOM")
            assert await phone.is_wallet_backed_up()
            addresses = await phone.addresses()
        task.cancel()
        return addresses, ticks

    addresses, ticks = asyncio.run(life())
    assert set(addresses) == {"SECP256K1", "ED25519"}
    assert ticks > 5  # the loop ran other work while the flows ran


def test_metrics_count_requests_flows_and_kms_calls_across_workers(setup: Setup) -> None:
    """Every worker's counts, whichever worker is scraped (the setup made backups)."""
    texts = [httpx.get(setup.service.base_url + "/metrics", timeout=10).text for _ in range(4)]
    for text in texts:
        lines = text.splitlines()
        assert any(
            line.startswith("portal_http_requests_total{")
            and 'endpoint="begin_backup"' in line
            and 'status="201"' in line
            for line in lines
        ), text[:2000]
        assert any(
            line.startswith("portal_flows_total{")
            and 'flow="backup"' in line
            and 'result="completed"' in line
            and float(line.rsplit(" ", 1)[1]) >= 3
            for line in lines
        )
        assert any(
            line.startswith("portal_kms_call_duration_seconds_count{") and "seal" in line
            for line in lines
        )
        assert BOGUS_KEY not in text and setup.victim.api_key not in text


# -- limits and retries ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_service(
    hsm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """A service with low limits: 3 guesses and 4 refused keys a minute."""
    with running_service(
        hsm_env,
        tmp_path_factory.mktemp("strict"),
        operator="custodian-op",
        guess_limit=3,
        auth_limit=4,
    ) as service:
        yield service


def test_guesses_are_limited_per_client_across_workers(strict_service: RunningService) -> None:
    admin = strict_service.admin()
    one, two = admin.create_client_with_key(), admin.create_client_with_key()
    base = strict_service.base_url
    results = []
    for _ in range(5):  # new connections: spread over both workers
        vault = HttpVault(base, one.client_api_key, operator="x", retries=0)
        try:
            vault.release("nothing", b"k" * 32, owner=one.client_id)
        except PortalError as e:
            results.append((e.status, e.code))  # type: ignore[attr-defined]
        vault.close()
    assert results[:3] == [(404, "VAULT_SLOT_NOT_FOUND")] * 3
    assert results[3:] == [(429, "RATE_LIMITED")] * 2
    r = httpx.post(
        f"{base}/v1/enclave/vault/nothing/release",
        headers={"Authorization": f"Bearer {one.client_api_key}"},
        json={"access_key": "a2traw"},
        timeout=10,
    )
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    # Another client's guesses are its own.
    with pytest.raises(NoValidBackup):
        HttpVault(base, two.client_api_key, operator="x").release(
            "nothing", b"k" * 32, owner=two.client_id
        )


def test_refused_keys_are_limited_per_address(strict_service: RunningService) -> None:
    admin = strict_service.admin()
    good = admin.create_client_with_key()
    statuses = [
        httpx.get(
            strict_service.base_url + "/v1/clients/me",
            headers={"Authorization": f"Bearer {BOGUS_KEY}"},
            timeout=10,
        ).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 4 + [429] * 2
    # Past the limit even a good key from that address waits: a guesser cannot tell a hit.
    r = httpx.get(
        strict_service.base_url + "/v1/clients/me",
        headers={"Authorization": f"Bearer {good.client_api_key}"},
        timeout=10,
    )
    assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED"


def test_a_replayed_write_gets_the_first_answer_not_a_second_session(setup: Setup) -> None:
    """A retry of begin_backup (its answer lost) with the same Idempotency-Key returns the
    same session, where a fresh request finds the wallet locked."""
    base, party = setup.service.base_url, setup.neighbour
    api = HttpCustodian(base, party.api_key)
    api.abort(party.client_id, party.session_id)  # the setup's open session
    headers = {"Authorization": f"Bearer {party.api_key}", "Idempotency-Key": "k" * 32}
    url = base + "/v1/clients/me/backups"
    first = httpx.post(url, headers=headers, json={"method": "CUSTOM"}, timeout=10)
    again = httpx.post(url, headers=headers, json={"method": "CUSTOM"}, timeout=10)
    assert first.status_code == again.status_code == 201, first.text
    assert first.json() == again.json()
    fresh = httpx.post(
        url, headers={**headers, "Idempotency-Key": "m" * 32}, json={"method": "CUSTOM"}
    )
    assert fresh.status_code == 409 and fresh.json()["code"] == "WALLET_MODIFICATION_IN_PROGRESS"
    other = httpx.post(url, headers=headers, json={"method": "PASSWORD"}, timeout=10)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert api.abort(party.client_id, first.json()["session_id"])
    # A key another client used names nothing for this one.
    mine = httpx.post(
        url,
        headers={"Authorization": f"Bearer {setup.stranger.api_key}", "Idempotency-Key": "k" * 32},
        json={"method": "CUSTOM"},
        timeout=10,
    )
    assert (
        mine.status_code in (201, 409)
        and mine.json().get("session_id") != first.json()["session_id"]
    )
    if mine.status_code == 201:
        HttpCustodian(base, setup.stranger.api_key).abort(
            setup.stranger.client_id, mine.json()["session_id"]
        )


# -- self-managed mode over HTTP ---------------------------------------------------------------


def test_self_managed_backup_through_the_reference_receiver(
    setup: Setup, receiver: Receiver, tmp_path: Path
) -> None:
    """A tenant that configures webhooks is self-managed: its clients' custodian shares go to
    the integrator's receiver (a real server), sealed, and come back for recovery."""
    base = setup.service.base_url
    tenant_id, admin_key = setup.service.new_tenant(f"integrator-{tmp_path.name}")
    admin = HttpAdmin(base, admin_key)
    assert admin.get_webhooks() is None
    admin.set_webhooks(receiver.base, receiver.secret)
    assert admin.get_webhooks() == receiver.base
    made = admin.create_client_with_key()
    phone = WalletClient(
        HttpCustodian(base, made.client_api_key),
        made.client_id,
        device=MemoryDevice(),
        custom_key_dir=str(tmp_path / "keys"),
        argon2=FAST,
    )
    phone.create_wallet()
    assert phone._wallet().keepers.cipher_text == f"integrator:{tenant_id}"
    result = phone.backup_wallet("CUSTOM")
    assert not result.custodian_keeps_cipher_text and receiver.shares() == 2
    phone.stored_client_backup_share(True, "CUSTOM")
    fresh = WalletClient(
        HttpCustodian(base, made.client_api_key),
        made.client_id,
        device=MemoryDevice(),
        custom_key_dir=str(tmp_path / "keys"),
    )
    addresses = phone.addresses()
    assert fresh.recover_wallet("CUSTOM", cipher_text=result.cipher_text) == addresses
    # The receiver gone: the custodian says the webhook failed, and nothing completes.
    admin.set_webhooks("http://127.0.0.1:9", receiver.secret)  # nothing listens there
    with pytest.raises(FailedWebhook) as failed:
        fresh.backup_wallet("CUSTOM")
    assert failed.value.code == "FAILED_WEBHOOK"  # type: ignore[attr-defined]
    assert receiver.secret not in str(failed.value)
    assert admin.remove_webhooks() is True
    kinds = [e.kind for e in admin.audit_events().events]
    assert "webhook.configured" in kinds and "webhook.removed" in kinds


def test_readiness_asks_the_hsm_one_thing_however_many_keys_it_holds(tmp_path: Path) -> None:
    """A readiness probe stays cheap: one read of the custodian key's versions, never a walk
    over every key in the token (which grows with it, and once took over the probe's 5 s)."""
    from portal_core.server.service import Service
    from portal_core.store import SqliteStore
    from portal_core.tenants import Tenants

    asked: list[str] = []

    class Hsm:
        def describe(self, name: str) -> None:
            asked.append(name)

        def list_keys(self) -> None:
            raise AssertionError("readiness listed every key")

    with SqliteStore(tmp_path / "s.db") as store:
        service = Service(
            store=store,
            kms=Hsm(),  # type: ignore[arg-type]
            tenants=Tenants(store),
            operator="op",
            custodian_options={"key_name": "shares-k"},
        )
        assert service.readiness() == {"store": True, "hsm": True}
    assert asked == ["shares-k"]


@pytest.mark.parametrize(
    "query", ["limit=1e400", "limit=" + "9" * 400, "limit=0", "limit=1.5", "since=nan", "since=inf"]
)
def test_audit_queries_out_of_range_are_400_not_500(setup: Setup, query: str) -> None:
    r = httpx.get(
        f"{setup.service.base_url}/v1/custodians/me/audit-events?{query}",
        headers={"Authorization": f"Bearer {setup.service.admin_key}"},
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", r.text


def test_a_wrong_method_is_405_listing_every_method_of_the_path(setup: Setup) -> None:
    from portal_core.http_api import ENDPOINTS

    methods: dict[str, set[str]] = {}
    for e in ENDPOINTS:
        methods.setdefault(e.path, set()).add(e.method)
    for path, allowed in methods.items():
        concrete = path.replace("{", "x").replace("}", "")
        r = httpx.request("OPTIONS", setup.service.base_url + concrete, timeout=10)
        assert r.status_code == 405, (path, r.text)
        listed = {m.strip() for m in r.headers["allow"].split(",")} - {"HEAD"}
        assert listed == allowed, path
