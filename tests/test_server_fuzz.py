"""Property-based fuzzing of the HTTP API from its OpenAPI document (schemathesis), against
a real service (two uvicorn workers on 127.0.0.1, :func:`http_world.running_service`).

Every operation of the document gets generated requests, valid and invalid by the
document (schemathesis' coverage cases, then random ones): once with a key of the kind its
``x-api-key-kind`` names, once with no key or a key that must be refused. Every response
must be one the document describes (a documented status, its content type, its body
schema; errors are ``application/problem+json`` ``Problem`` documents), none a 5xx, and
no body may hold a traceback or an API key (but the one a key-issuing call just issued).

Path ids and some body fields are now and then swapped for real or valid values: a client
with a wallet, a completed backup, an open session, an eject window and a vault slot; a
spare client and its key for the admin's calls; an access key and webhook settings of a
valid form. So generated requests also reach past "not found" and "invalid" into the flows
(a wrong access key's ``tries_left``, a destroyed secret, a tenant's webhooks, ...).

Bounded and repeatable: the coverage cases and EXAMPLES random requests per operation and
test, drawn derandomized (Hypothesis' fixed seed, no example database), each request
bounded by REQUEST_TIMEOUT_S.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from backup_helpers import CUSTODIAN_OPERATOR, FAST
from http_world import RunningService, running_service
from portal_core.backup import MemoryDevice, WalletClient
from portal_core.client import HttpCustodian, HttpVault
from portal_core.server.openapi import build_openapi
from portal_core.wire import b64url_encode

try:
    import schemathesis
    from schemathesis.specs.openapi import checks as spec

    MISSING = ""
except ImportError as e:  # pragma: no cover - requirements-dev.txt installs it
    MISSING = f"schemathesis is not installed ({e}): pip install -r requirements-dev.txt"


REQUEST_TIMEOUT_S = 30.0
EXAMPLES = 100  # random requests per operation and test, besides the coverage cases
DOCUMENT = build_openapi()

# An API key anywhere in a text (the format of portal_core.tenants).
_API_KEY = re.compile(r"pc_(?:adm|cli)_[0-9a-f]{32}_[A-Za-z0-9_-]{43}")
# The successful answers that carry the key they issue, and where.
_ISSUED = {
    "create_client": "client_api_key",
    "rotate_client_key": "client_api_key",
    "create_admin_key": "admin_api_key",
}


@dataclass
class World:
    """The fuzzed service, the keys it is called with, and real or valid values the fuzzer
    may use instead of generated ones (by field name)."""

    service: RunningService
    client_key: str
    revoked_key: str
    known: dict[str, list[str]]

    def key_for(self, kind: str) -> str:
        return self.client_key if kind == "client" else self.service.admin_key


_WORLD: list[World] = []  # the module's world, for the generation hooks (set by `world`)


@pytest.fixture(scope="module")
def world(hsm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A service of its own (the fuzzer makes clients and keys, and may end what it finds),
    with a client that has a wallet, a completed CUSTOM backup, an open recovery session,
    an eject window and a vault slot of three tries, a spare client, and a revoked admin
    key."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with running_service(
        hsm_env, tmp / "service", operator=CUSTODIAN_OPERATOR, auth_limit=1_000_000
    ) as service:
        admin = service.admin()
        made = admin.create_client_with_key()
        spare = admin.create_client_with_key()
        revoked = admin.create_admin_key()
        admin.revoke_key(revoked.key_id)
        api = HttpCustodian(service.base_url, made.client_api_key)
        vault = HttpVault(service.base_url, made.client_api_key, operator=CUSTODIAN_OPERATOR)
        try:
            wallet = WalletClient(
                api, made.client_id, device=MemoryDevice(), custom_key_dir=str(tmp), argon2=FAST
            )
            wallet.create_wallet()
            backup_id = wallet.backup_wallet("CUSTOM").backup_id
            session_id = api.begin_recovery(made.client_id, backup_id).session_id
            admin.authorize_eject(made.client_id)
            vault.enroll("fuzz-slot", b"k" * 32, owner=made.client_id, max_tries=3, params=b"")
        finally:
            for opened in (api, vault, admin):
                opened.close()
        known = {
            "backup_id": [backup_id],
            "session_id": [session_id],
            # The admin's calls name the spare client only: a key rotation there must not
            # revoke the key the client's calls are made with.
            "client_id": [spare.client_id],
            "key_id": [spare.key_id],
            "slot": ["fuzz-slot", "default"],
            # A wrong access key of a valid length: releases reach the slot's tries.
            "access_key": [b64url_encode(b"w" * 32)],
            # Valid webhook settings, on a loopback port nothing listens on: no flow runs
            # after set_webhooks (the document's order), and remove_webhooks follows it.
            "base_url": ["https://127.0.0.1:9"],
            "secret": ["s" * 40],
        }
        _WORLD.append(World(service, made.client_api_key, revoked.admin_api_key, known))
        try:
            yield _WORLD[0]
        finally:
            _WORLD.clear()


# The known values' fields the document constrains further than "a string" (a value is
# swapped only where the generated one is valid).
_PATTERNS = {"access_key": re.compile(DOCUMENT["components"]["schemas"]["Base64Url"]["pattern"])}
# Operations given no real values: vault_delete comes before vault_release in the
# document, and would leave it no slot to spend tries on.
_NOT_SWAPPED = {"vault_delete"}


def _swap_known(context: Any, values: Any) -> st.SearchStrategy[Any]:
    """``values`` (path parameters or a body) as generated, or with some of them swapped
    for the world's real ones. Only a value the document accepts there is swapped, so that
    a request generated to be invalid stays invalid."""
    known = _WORLD[0].known if _WORLD else {}
    operation_id = context.operation.definition.raw.get("operationId")
    if not isinstance(values, dict) or operation_id in _NOT_SWAPPED:
        return st.just(values)

    def valid(k: str, v: Any) -> bool:
        return isinstance(v, str) and (k not in _PATTERNS or bool(_PATTERNS[k].search(v)))

    return st.fixed_dictionaries(
        {
            k: st.sampled_from([*known[k], v]) if k in known and valid(k, v) else st.just(v)
            for k, v in values.items()
        }
    )


def _stand_in(test: Callable[..., None]) -> Callable[..., None]:
    """A fuzz test without schemathesis: it fails in CI (which installs it), else skips."""

    def missing() -> None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)

    missing.__name__ = test.__name__
    return missing


def _fuzzed(**given: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The decorators of a fuzz test: every operation of DOCUMENT, ``given`` as further
    Hypothesis arguments, the run's bounds."""
    if MISSING:
        return _stand_in
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config())
    # The keys are the test's to choose (no generated Authorization header).
    schema.config.generation.update(with_security_parameters=False)
    schema.hook("flatmap_path_parameters")(_swap_known)
    schema.hook("flatmap_body")(_swap_known)
    bounds = settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,  # each request is bounded instead (REQUEST_TIMEOUT_S)
        suppress_health_check=list(HealthCheck),
    )

    def wrap(test: Callable[..., None]) -> Callable[..., None]:
        inner = schema.given(**given)(test) if given else test
        return schema.parametrize()(bounds(inner))  # type: ignore[no-any-return]

    return wrap


def answer_is_sound(ctx: Any, response: Any, case: Any) -> None:
    """Beyond the document's schemas: a success has the status the operation names (not
    just any under ``default``); an error's problem document has the response's status
    and a code the document lists with that status; no body holds a traceback, nor an API
    key (but a key-issuing call's new key)."""
    status, text = response.status_code, response.text
    operation = case.operation.definition.raw
    if status < 400 and operation.get("x-api-key-kind"):
        if str(status) not in operation["responses"]:
            raise AssertionError(f"{status} is not the operation's success status")
    if status >= 400:
        problem = json.loads(text)
        listed = DOCUMENT["x-problem-codes"][problem["code"]]["status"]
        if not problem["status"] == listed == status:
            raise AssertionError(f"{problem['code']} (listed as {listed}) answered as {status}")
    if "Traceback" in text:
        raise AssertionError("a traceback in the response body")
    issued = _ISSUED.get(operation.get("operationId", ""))
    if issued and status < 300:
        text = text.replace(json.loads(text)[issued], "")
    if _API_KEY.search(text):
        raise AssertionError("an API key in the response body")


def _checks() -> list[Any]:
    return [
        schemathesis.checks.not_a_server_error,
        spec.status_code_conformance,
        spec.content_type_conformance,
        spec.response_schema_conformance,
        spec.negative_data_rejection,
        spec.unsupported_method,
        spec.allow_header_conformance,
        answer_is_sound,
    ]


def _call(world: World, case: Any, key: str | None, scheme: str = "Bearer") -> Any:
    headers = {"Authorization": f"{scheme} {key}"} if key is not None else {}
    response = case.call(
        base_url=world.service.base_url, headers=headers, timeout=REQUEST_TIMEOUT_S
    )
    case.validate_response(response, checks=_checks(), headers=headers)
    return response


def _kind(case: Any) -> str | None:
    kind: str | None = case.operation.definition.raw.get("x-api-key-kind")
    return kind


def test_the_fuzzed_document_is_the_served_one(world: World) -> None:
    served = httpx.get(world.service.base_url + "/openapi.json", timeout=REQUEST_TIMEOUT_S)
    assert served.json() == json.loads(json.dumps(DOCUMENT))


@_fuzzed()
def test_every_operation_with_its_key(world: World, case: Any) -> None:
    kind = _kind(case)
    _call(world, case, world.key_for(kind) if kind else None)


# What each refused credential must be answered with, once the request gets to the key.
_REFUSALS = {
    "no key": (401, "AUTHENTICATION_REQUIRED"),
    "not a bearer key": (401, "AUTHENTICATION_REQUIRED"),
    "malformed": (401, "AUTHENTICATION_FAILED"),
    "unknown": (401, "AUTHENTICATION_FAILED"),
    "wrong secret": (401, "AUTHENTICATION_FAILED"),
    "revoked": (401, "AUTHENTICATION_FAILED"),
    "the other kind": (403, "NOT_AUTHORIZED"),
}
# What a request may be refused with before its key is looked at: the router's answers (no
# route for the path or the method), then the body's and headers' checks.
_ROUTER = {"no such endpoint", "the endpoint does not take this method"}
_BEFORE_THE_KEY = {
    "MALFORMED_JSON",
    "INVALID_REQUEST",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
}


def _credential(world: World, kind: str, refusal: str) -> tuple[str | None, str]:
    """The Authorization header's key and scheme for one kind of refused credential."""
    own = world.key_for(kind)
    return {
        "no key": (None, "Bearer"),
        "not a bearer key": (own, "Basic"),
        "malformed": ("pc_cli_not-a-key", "Bearer"),
        "unknown": ("pc_cli_" + "0" * 32 + "_" + "A" * 43, "Bearer"),
        "wrong secret": (own[:-4] + ("AAAA" if not own.endswith("AAAA") else "BBBB"), "Bearer"),
        "revoked": (world.revoked_key, "Bearer"),
        "the other kind": (world.key_for("admin" if kind == "client" else "client"), "Bearer"),
    }[refusal]


@_fuzzed(refusal=st.sampled_from(sorted(_REFUSALS)))
def test_every_operation_refuses_a_bad_key(world: World, case: Any, refusal: str) -> None:
    kind = _kind(case)
    if kind is None:  # /healthz, /readyz, /metrics, /openapi.json take no key
        _call(world, case, None)
        return
    key, scheme = _credential(world, kind, refusal)
    response = _call(world, case, key, scheme)
    problem = response.json()
    answer = (response.status_code, problem["code"])
    if answer == _REFUSALS[refusal] or problem.get("detail") in _ROUTER:
        return
    # The key is looked at first, unless it is a bearer key (then the body is read first).
    assert key is not None and scheme == "Bearer", answer
    assert problem["code"] in _BEFORE_THE_KEY, answer
