"""Tenants, API keys and the audit trail: each test an attack where one applies.

Keys stored only as hashes, one tenant's key refused for another, a client key refused for
another client, revoked and rotated-away keys refused, every kind of bad key refused alike
(and audited without its secret), the constant-time comparison, and concurrent creation.
"""

from __future__ import annotations

import base64
import hmac
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal_core.exceptions import PortalError
from portal_core.store import (
    ApiKeyRecord,
    AuditEntry,
    ClientRecord,
    KeyKind,
    SqliteStore,
    StoreError,
    TenantStore,
)
from portal_core.tenants import (
    AuditKind,
    AuthenticationFailed,
    IssuedKey,
    LastAdminKey,
    NotAuthorized,
    Principal,
    TenantExists,
    Tenants,
    UnknownClient,
    UnknownKey,
    UnknownTenant,
    hash_secret,
    require_admin,
    require_client,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "custodian.db", timeout=10.0) as s:
        yield s


@pytest.fixture
def tenants(store: SqliteStore) -> Tenants:
    return Tenants(store, clock=Clock())


def secret_of(key: IssuedKey) -> str:
    return key.api_key.split("_", 3)[3]


def flip(api_key: str, index: int = -5) -> str:
    """The key with one secret character changed (still well-formed)."""
    chars = list(api_key)
    chars[index] = "A" if chars[index] != "A" else "B"
    return "".join(chars)


# -- the key format ------------------------------------------------------------------------


def test_a_key_has_its_kind_a_public_id_and_a_256_bit_secret(tenants):
    created = tenants.create_tenant("Acme")
    admin = created.admin_key
    assert re.fullmatch(r"pc_adm_[0-9a-f]{32}_[A-Za-z0-9_-]{43}", admin.api_key)
    assert admin.api_key.split("_", 3)[2] == admin.key_id
    assert len(base64.urlsafe_b64decode(secret_of(admin) + "=")) == 32
    client = tenants.create_client(created.tenant_id).client_key
    assert client.api_key.startswith(f"pc_cli_{client.key_id}_")
    assert client.kind is KeyKind.CLIENT


def test_no_repr_or_str_shows_a_secret(tenants, store):
    created = tenants.create_tenant("Acme")
    made = tenants.create_client(created.tenant_id)
    principal = tenants.authenticate(made.client_key.api_key)
    record = store.api_key(made.client_key.key_id)
    for obj in (created, created.admin_key, made, made.client_key, principal, record, tenants):
        for text in (repr(obj), str(obj)):
            assert secret_of(created.admin_key) not in text
            assert secret_of(made.client_key) not in text
            assert "secret_hash" not in text
    # The id is public, and useful in a repr.
    assert made.client_key.key_id in repr(made.client_key)


# -- stored only as hashes -----------------------------------------------------------------


def test_keys_are_stored_only_as_hashes(tmp_path):
    path = tmp_path / "custodian.db"
    issued: list[IssuedKey] = []
    with SqliteStore(path) as store:
        tenants = Tenants(store, clock=Clock())
        created = tenants.create_tenant("Acme")
        issued.append(created.admin_key)
        issued.append(tenants.create_admin_key(created.tenant_id))
        made = tenants.create_client(created.tenant_id)
        issued.append(made.client_key)
        issued.append(tenants.rotate_client_key(created.tenant_id, made.client_id))
        with pytest.raises(AuthenticationFailed):
            tenants.authenticate(flip(issued[0].api_key))
        for key in issued:
            record = store.api_key(key.key_id)
            assert record is not None
            assert record.secret_hash == hash_secret(key.kind, key.key_id, secret_of(key))
    # Every byte SQLite wrote: the database, and any WAL left beside it.
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("custodian.db"))
    assert len(raw) > 0
    for key in issued:
        secret = secret_of(key)
        assert secret.encode() not in raw
        assert base64.urlsafe_b64decode(secret + "=") not in raw
        assert key.api_key.encode() not in raw
        assert key.key_id.encode() in raw  # the id is stored, so the search does work


def test_the_hash_binds_kind_and_id():
    secret = "A" * 43
    h = hash_secret(KeyKind.ADMIN, "0" * 32, secret)
    assert h != hash_secret(KeyKind.CLIENT, "0" * 32, secret)
    assert h != hash_secret(KeyKind.ADMIN, "1" + "0" * 31, secret)
    assert len(h) == 32


# -- tenants ---------------------------------------------------------------------------------


def test_a_tenant_name_is_unique_without_case(tenants):
    tenants.create_tenant("Acme")
    with pytest.raises(TenantExists, match="already exists"):
        tenants.create_tenant("ACME")
    assert isinstance(TenantExists("x"), StoreError)


@pytest.mark.parametrize("name", ["", " Acme", "Acme ", "a\nb", "x" * 101, "tab\there"])
def test_a_bad_tenant_name_is_refused(tenants, name):
    with pytest.raises(ValueError, match="tenant name"):
        tenants.create_tenant(name)


def test_operations_on_a_missing_tenant_or_client_are_refused(tenants):
    created = tenants.create_tenant("Acme")
    with pytest.raises(UnknownTenant):
        tenants.create_client("no-such-tenant")
    with pytest.raises(UnknownTenant):
        tenants.create_admin_key("no-such-tenant")
    with pytest.raises(UnknownClient):
        tenants.rotate_client_key(created.tenant_id, "no-such-client")
    with pytest.raises(UnknownKey):
        tenants.revoke_key(created.tenant_id, "0" * 32)


# -- authentication and authorisation ---------------------------------------------------------


def test_a_genuine_key_gives_its_principal(tenants):
    created = tenants.create_tenant("Acme")
    admin = tenants.authenticate(created.admin_key.api_key)
    assert admin == Principal(created.tenant_id, KeyKind.ADMIN, None, created.admin_key.key_id)
    made = tenants.create_client(created.tenant_id, by=admin)
    client = tenants.authenticate(made.client_key.api_key)
    assert client == Principal(
        created.tenant_id, KeyKind.CLIENT, made.client_id, made.client_key.key_id
    )
    require_admin(admin, created.tenant_id)
    require_client(client, made.client_id)
    tenants.require_tenant_client(admin, made.client_id)
    tenants.require_tenant_client(client, made.client_id)


def test_a_key_of_tenant_a_cannot_act_for_tenant_b(tenants, store):
    a = tenants.create_tenant("A")
    b = tenants.create_tenant("B")
    b_client = tenants.create_client(b.tenant_id)
    a_admin = tenants.authenticate(a.admin_key.api_key)
    with pytest.raises(NotAuthorized):
        require_admin(a_admin, b.tenant_id)
    with pytest.raises(NotAuthorized):
        tenants.require_tenant_client(a_admin, b_client.client_id)
    with pytest.raises(NotAuthorized):
        tenants.create_client(b.tenant_id, by=a_admin)
    with pytest.raises(NotAuthorized):
        tenants.create_admin_key(b.tenant_id, by=a_admin)
    with pytest.raises(NotAuthorized):
        tenants.rotate_client_key(b.tenant_id, b_client.client_id, by=a_admin)
    with pytest.raises(NotAuthorized):
        tenants.revoke_key(b.tenant_id, b.admin_key.key_id, by=a_admin)
    with pytest.raises(NotAuthorized):
        tenants.audit_events(b.tenant_id, by=a_admin)
    # Naming its own tenant does not reach B's keys or clients either.
    with pytest.raises(UnknownKey):
        tenants.revoke_key(a.tenant_id, b_client.client_key.key_id, by=a_admin)
    with pytest.raises(UnknownClient):
        tenants.rotate_client_key(a.tenant_id, b_client.client_id, by=a_admin)
    # B is untouched.
    assert tenants.authenticate(b_client.client_key.api_key).tenant_id == b.tenant_id
    assert tenants.authenticate(b.admin_key.api_key).tenant_id == b.tenant_id


def test_the_store_refuses_a_client_key_under_another_tenant(tenants, store):
    a = tenants.create_tenant("A")
    b = tenants.create_tenant("B")
    b_client = tenants.create_client(b.tenant_id)
    forged = ApiKeyRecord(
        "f" * 32, a.tenant_id, b_client.client_id, KeyKind.CLIENT, b"\0" * 32, 1.0
    )
    # Past the service's checks, straight at the store: the composite foreign key holds.
    with pytest.raises(UnknownClient):
        store.replace_client_key(forged, 2.0, [])
    with pytest.raises(StoreError), store.transaction() as conn:
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, client_id, kind, secret_hash, created_at)"
            " VALUES (?, ?, ?, 'client', ?, 1.0)",
            (forged.key_id, a.tenant_id, b_client.client_id, b"\0" * 32),
        )


def test_a_client_key_cannot_reach_another_client_or_act_as_admin(tenants):
    created = tenants.create_tenant("Acme")
    one = tenants.create_client(created.tenant_id)
    two = tenants.create_client(created.tenant_id)
    p1 = tenants.authenticate(one.client_key.api_key)
    with pytest.raises(NotAuthorized):
        require_client(p1, two.client_id)
    with pytest.raises(NotAuthorized):
        tenants.require_tenant_client(p1, two.client_id)
    with pytest.raises(NotAuthorized):
        require_admin(p1, created.tenant_id)
    with pytest.raises(NotAuthorized):
        tenants.create_client(created.tenant_id, by=p1)
    # An admin key is not a client key either.
    admin = tenants.authenticate(created.admin_key.api_key)
    with pytest.raises(NotAuthorized):
        require_client(admin, one.client_id)


def test_a_client_without_a_tenant_is_reached_by_no_key(tenants, store):
    # LocalCustodian's path (and every client from before tenants): no tenant.
    record = store.add_client("legacy-client", 1.0)
    assert record == ClientRecord("legacy-client", 1.0)
    assert store.get_client("legacy-client") == ClientRecord("legacy-client", 1.0, None)
    created = tenants.create_tenant("Acme")
    admin = tenants.authenticate(created.admin_key.api_key)
    with pytest.raises(NotAuthorized):
        tenants.require_tenant_client(admin, "legacy-client")
    with pytest.raises(NotAuthorized):
        tenants.require_tenant_client(admin, "no-such-client")
    with pytest.raises(UnknownClient):
        tenants.rotate_client_key(created.tenant_id, "legacy-client")


def test_revoked_and_rotated_away_keys_fail(tenants, store):
    created = tenants.create_tenant("Acme")
    made = tenants.create_client(created.tenant_id)
    old = made.client_key
    new = tenants.rotate_client_key(created.tenant_id, made.client_id)
    with pytest.raises(AuthenticationFailed):
        tenants.authenticate(old.api_key)
    assert tenants.authenticate(new.api_key).client_id == made.client_id
    live = [k for k in store.tenant_api_keys(created.tenant_id) if k.revoked_at is None]
    assert {k.key_id for k in live} == {created.admin_key.key_id, new.key_id}

    assert tenants.revoke_key(created.tenant_id, new.key_id) is True
    assert tenants.revoke_key(created.tenant_id, new.key_id) is False  # already revoked
    with pytest.raises(AuthenticationFailed):
        tenants.authenticate(new.api_key)

    second = tenants.create_admin_key(created.tenant_id)
    assert tenants.revoke_key(created.tenant_id, created.admin_key.key_id) is True
    with pytest.raises(AuthenticationFailed):
        tenants.authenticate(created.admin_key.api_key)
    assert tenants.authenticate(second.api_key).kind is KeyKind.ADMIN


def test_the_last_live_admin_key_is_not_revoked(tenants):
    created = tenants.create_tenant("Acme")
    with pytest.raises(LastAdminKey, match="last live admin key"):
        tenants.revoke_key(created.tenant_id, created.admin_key.key_id)
    assert tenants.authenticate(created.admin_key.api_key).kind is KeyKind.ADMIN


def test_a_client_has_at_most_one_live_key_in_the_store(tenants, store):
    created = tenants.create_tenant("Acme")
    made = tenants.create_client(created.tenant_id)
    with pytest.raises(StoreError), store.transaction() as conn:
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, client_id, kind, secret_hash, created_at)"
            " VALUES (?, ?, ?, 'client', ?, 1.0)",
            ("e" * 32, created.tenant_id, made.client_id, b"\0" * 32),
        )


def _bad_keys(tenants: Tenants) -> dict[str, tuple[str, str | None, str | None]]:
    """name -> (presented key, key id the audit should name, tenant it should be filed under)."""
    created = tenants.create_tenant("Acme")
    made = tenants.create_client(created.tenant_id)
    key = made.client_key
    admin = created.admin_key
    revoked = tenants.create_admin_key(created.tenant_id)
    tenants.revoke_key(created.tenant_id, revoked.key_id)
    t = created.tenant_id
    return {
        "empty": ("", None, None),
        "garbage": ("not a key at all", None, None),
        "prefix only": ("pc_cli_", None, None),
        "huge": ("pc_cli_" + "a" * 10_000, None, None),
        "truncated": (key.api_key[:-1], key.key_id, t),
        "secret cut off": (key.api_key[: key.api_key.rindex("_") + 1], key.key_id, t),
        "extra character": (key.api_key + "A", key.key_id, t),
        "flipped secret byte": (flip(key.api_key), key.key_id, t),
        "flipped first secret byte": (flip(key.api_key, 40), key.key_id, t),
        "unknown key id": (f"pc_cli_{'ab' * 16}_{secret_of(key)}", "ab" * 16, None),
        "admin secret under the client tag": (
            admin.api_key.replace("pc_adm_", "pc_cli_"),
            admin.key_id,
            t,
        ),
        "another key's secret": (
            f"pc_cli_{key.key_id}_{secret_of(admin)}",
            key.key_id,
            t,
        ),
        "revoked": (revoked.api_key, revoked.key_id, t),
        "upper-case id": (key.api_key.replace(key.key_id, key.key_id.upper()), None, None),
    }


def test_every_bad_key_fails_alike_and_is_audited_without_its_secret(tenants, store):
    bad = _bad_keys(tenants)
    tenant_id = store.tenant_by_name("Acme").tenant_id
    messages = set()
    for name, (presented, key_id, filed_under) in bad.items():
        before_t = len(store.audit_events(tenant_id, limit=1000))
        before_u = len(store.unattributed_audit_events(limit=1000))
        with pytest.raises(AuthenticationFailed) as info:
            tenants.authenticate(presented)
        assert type(info.value) is AuthenticationFailed, name
        assert isinstance(info.value, PortalError)
        messages.add(str(info.value))
        events = (
            store.audit_events(tenant_id, limit=1000)[before_t:]
            if filed_under
            else store.unattributed_audit_events(limit=1000)[before_u:]
        )
        assert len(events) == 1, name
        (event,) = events
        assert event.kind == AuditKind.AUTHENTICATION_FAILED
        assert event.subject == key_id, name
        secret = presented.split("_", 3)[3] if presented.count("_") >= 3 else presented
        text = repr(event) + str(dict(event.detail))
        if secret:
            assert secret not in text, name
        assert presented not in text or not presented, name
    # One message for every failure: nothing says which part was wrong.
    assert messages == {"the API key was not accepted"}


def test_a_non_string_key_fails_alike(tenants):
    with pytest.raises(AuthenticationFailed, match=r"^the API key was not accepted$"):
        tenants.authenticate(b"pc_cli_" + b"0" * 32)


def test_the_comparison_is_constant_time_and_runs_for_unknown_ids_too(tenants, monkeypatch):
    created = tenants.create_tenant("Acme")
    key = created.admin_key
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    # tenants reads hmac.compare_digest at each call, so patching the module reaches it.
    monkeypatch.setattr(hmac, "compare_digest", recording)
    tenants.authenticate(key.api_key)
    assert calls[-1][0] == calls[-1][1] == hash_secret(KeyKind.ADMIN, key.key_id, secret_of(key))

    presented = [
        flip(key.api_key),  # known id, wrong secret
        f"pc_adm_{'cd' * 16}_{secret_of(key)}",  # unknown id
        "garbage",  # no id at all
    ]
    for bad in presented:
        calls.clear()
        with pytest.raises(AuthenticationFailed):
            tenants.authenticate(bad)
        # Exactly one 32-byte comparison whatever failed: an unknown id against the dummy.
        assert len(calls) == 1
        assert len(calls[0][0]) == len(calls[0][1]) == 32
    stored = tenants.store.api_key(key.key_id).secret_hash
    assert calls[0][0] != stored


def test_the_authentication_lookup_goes_through_the_store_once_per_key(tenants, monkeypatch):
    created = tenants.create_tenant("Acme")
    seen: list[str] = []
    real = tenants.store.api_key

    def counting(key_id):
        seen.append(key_id)
        return real(key_id)

    monkeypatch.setattr(tenants.store, "api_key", counting)
    tenants.authenticate(created.admin_key.api_key)
    assert seen == [created.admin_key.key_id]
    seen.clear()
    with pytest.raises(AuthenticationFailed):
        tenants.authenticate(f"pc_adm_{'cd' * 16}_{secret_of(created.admin_key)}")
    assert seen[0] == "cd" * 16  # an unknown id is looked up like a known one


# -- the audit trail -------------------------------------------------------------------------


def test_the_audit_trail_records_each_change_per_tenant(tenants, store):
    a = tenants.create_tenant("A")
    b = tenants.create_tenant("B")
    admin = tenants.authenticate(a.admin_key.api_key)
    second = tenants.create_admin_key(a.tenant_id, by=admin)
    made = tenants.create_client(a.tenant_id, by=admin)
    rotated = tenants.rotate_client_key(a.tenant_id, made.client_id, by=admin)
    tenants.revoke_key(a.tenant_id, rotated.key_id, by=admin)
    tenants.revoke_key(a.tenant_id, second.key_id, by=admin)
    tenants.create_client(b.tenant_id)

    events = tenants.audit_events(a.tenant_id, by=admin)
    assert [(e.kind, e.subject) for e in events] == [
        (AuditKind.TENANT_CREATED, a.tenant_id),
        (AuditKind.ADMIN_KEY_CREATED, a.admin_key.key_id),
        (AuditKind.ADMIN_KEY_CREATED, second.key_id),
        (AuditKind.CLIENT_CREATED, made.client_id),
        (AuditKind.CLIENT_KEY_ROTATED, made.client_id),
        (AuditKind.CLIENT_KEY_REVOKED, rotated.key_id),
        (AuditKind.ADMIN_KEY_REVOKED, second.key_id),
    ]
    assert all(e.tenant_id == a.tenant_id for e in events)
    assert events[2].detail == {"by": admin.key_id}
    assert events[3].detail == {"by": admin.key_id, "key_id": made.client_key.key_id}
    assert events[4].detail == {"by": admin.key_id, "key_id": rotated.key_id}
    assert events[5].detail == {"by": admin.key_id, "client_id": made.client_id}
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    # Never another tenant's.
    b_events = tenants.audit_events(b.tenant_id)
    assert {e.kind for e in b_events} == {
        AuditKind.TENANT_CREATED,
        AuditKind.ADMIN_KEY_CREATED,
        AuditKind.CLIENT_CREATED,
    }
    assert not {e.event_id for e in b_events} & {e.event_id for e in events}
    # No secret anywhere in the trail.
    everything = repr(events + b_events)
    for key in (a.admin_key, second, made.client_key, rotated, b.admin_key):
        assert secret_of(key) not in everything


def test_the_audit_trail_pages_by_time_and_limit(tenants, store):
    created = tenants.create_tenant("Acme")
    for _ in range(5):
        tenants.create_client(created.tenant_id)
    events = store.audit_events(created.tenant_id)
    assert len(events) == 7
    assert store.audit_events(created.tenant_id, limit=3) == events[:3]
    later = store.audit_events(created.tenant_id, since=events[4].at)
    assert later == events[4:]
    with pytest.raises(ValueError, match="limit"):
        store.audit_events(created.tenant_id, limit=0)
    with pytest.raises(ValueError, match="limit"):
        store.audit_events(created.tenant_id, limit=1001)
    with pytest.raises(TypeError):
        store.audit_events(None)


def test_a_change_and_its_event_commit_together(tenants, store):
    created = tenants.create_tenant("Acme")
    made = tenants.create_client(created.tenant_id)
    before = store.audit_events(created.tenant_id)
    # The event fails to be written (detail that is not JSON): the rotation is undone.
    with pytest.raises(TypeError):
        store.replace_client_key(
            ApiKeyRecord(
                "9" * 32, created.tenant_id, made.client_id, KeyKind.CLIENT, b"\1" * 32, 5.0
            ),
            5.0,
            [AuditEntry(created.tenant_id, 5.0, "x", None, {"bad": object()})],
        )
    assert tenants.authenticate(made.client_key.api_key).client_id == made.client_id
    assert store.api_key("9" * 32) is None
    assert store.audit_events(created.tenant_id) == before


# -- the schema ------------------------------------------------------------------------------


def _plan(store: SqliteStore, sql: str, params: tuple[object, ...]) -> str:
    return " ".join(str(r[3]) for r in store.query(f"EXPLAIN QUERY PLAN {sql}", params))


def test_the_hot_lookups_use_indexes(store):
    key_plan = _plan(store, "SELECT * FROM api_keys WHERE key_id = ?", ("x",))
    assert "USING INDEX" in key_plan and "SCAN" not in key_plan
    audit_plan = _plan(
        store,
        "SELECT * FROM audit_events WHERE tenant_id = ? AND at >= ? ORDER BY at, event_id",
        ("t", 0.0),
    )
    assert "audit_events_tenant" in audit_plan and "TEMP B-TREE" not in audit_plan
    live_plan = _plan(
        store,
        "SELECT key_id FROM api_keys WHERE client_id = ? AND kind = 'client' "
        "AND revoked_at IS NULL",
        ("c",),
    )
    assert "api_keys_one_live_client_key" in live_plan
    clients_plan = _plan(store, "SELECT * FROM clients WHERE tenant_id = ?", ("t",))
    assert "clients_tenant" in clients_plan


def test_the_store_is_a_tenant_store(store):
    assert isinstance(store, TenantStore)


# -- threads -----------------------------------------------------------------------------------


def test_concurrent_client_creation_gives_distinct_clients_and_keys(tenants, store):
    created = tenants.create_tenant("Acme")
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8, timeout=10)

    def work() -> None:
        try:
            start.wait()
            for _ in range(5):
                made = tenants.create_client(created.tenant_id)
                with lock:
                    results.append((made.client_id, made.client_key.api_key))
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    assert not errors
    assert len(results) == 40
    assert len({c for c, _ in results}) == 40
    assert len({k for _, k in results}) == 40
    for client_id, api_key in results:
        assert tenants.authenticate(api_key).client_id == client_id
    conn = sqlite3.connect(store.path)
    try:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM clients WHERE tenant_id = ?", (created.tenant_id,)
        ).fetchone()
    finally:
        conn.close()
    assert n == 40
