"""The server's OpenAPI 3.1 document, kept by hand (Starlette generates none).

:func:`build_openapi` is the one source: the app serves it at ``/openapi.json``, and
``docs/openapi.json`` is a copy for readers and SDK generators, rewritten with

    python -m portal_core.server openapi > docs/openapi.json

``tests/test_server_app.py`` fails when the copy, the served document and the app's
routes disagree. The problem codes come from :mod:`portal_core.server.problems`, so the
document lists every code with its status and exception class (``x-problem-codes``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

from portal_core.http_api import ENDPOINTS, Endpoint
from portal_core.server.problems import (
    ERROR_CODES,
    HTTP_CODES,
    PROBLEM_MEDIA_TYPE,
    RESERVED_CODES,
)

__all__ = ["API_VERSION", "build_openapi", "problem_codes"]

# The version of the HTTP API (not of the package): bumped when the API changes.
API_VERSION = "0.1.0"


def problem_codes() -> dict[str, dict[str, Any]]:
    """Every problem code: its HTTP status and, for typed errors, the exception class."""
    out: dict[str, dict[str, Any]] = {}
    for cls, entry in ERROR_CODES.items():
        out[entry.code] = {"status": entry.status, "exception": f"{cls.__module__}.{cls.__name__}"}
    for code, status in RESERVED_CODES.items():
        out[code] = {"status": status, "reserved": True}
    for code, status in HTTP_CODES.items():
        out[code] = {"status": status}
    return dict(sorted(out.items()))


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _schema(tp: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a body type (see :mod:`portal_core.wire`); dataclasses go into
    ``schemas`` and are referenced."""
    if tp is Any:
        return {}
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        return {"anyOf": [_schema(o, schemas) for o in options] + [{"type": "null"}]}
    if origin in (dict, Mapping):
        _, item = typing.get_args(tp)
        return {"type": "object", "additionalProperties": _schema(item, schemas)}
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": _schema(item, schemas)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in schemas:
            schemas[name] = {}  # placeholder: recursion stops here
            hints = typing.get_type_hints(tp)
            fields = dataclasses.fields(tp)
            schemas[name] = {
                "type": "object",
                "required": [
                    f.name
                    for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                ],
                "properties": {f.name: _schema(hints[f.name], schemas) for f in fields},
            }
            if tp.__doc__ and not tp.__doc__.startswith(f"{name}("):
                schemas[name]["description"] = " ".join(tp.__doc__.split())
        return {"$ref": f"#/components/schemas/{name}"}
    simple = {
        bytes: {"$ref": "#/components/schemas/Base64Url"},
        str: {"type": "string"},
        int: {"type": "integer"},
        float: {"type": "number"},
        bool: {"type": "boolean"},
        dict: {"type": "object"},
    }
    return dict(simple[tp])


# Query parameters, by endpoint: name -> JSON Schema type.
_QUERY: Mapping[str, Mapping[str, str]] = {"audit_events": {"since": "number", "limit": "integer"}}

# The header a replayable write may carry (the syntax portal_core.server.routes checks).
_IDEMPOTENCY_KEY: Mapping[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A retry with the same key (and the same request) gets the first answer "
    "again instead of doing the work twice; the same key for another request is refused "
    "(IDEMPOTENCY_KEY_REUSED). Kept per API key, 24 h by default.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$"},
}


def _operation(e: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_params(e.path)
    ] + [
        {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
        for name, kind in _QUERY.get(e.name, {}).items()
    ]
    if e.replayable:
        params.append(dict(_IDEMPOTENCY_KEY))
    op: dict[str, Any] = {
        "operationId": e.name,
        "summary": e.summary,
        "security": [{"apiKey": []}],
        "x-api-key-kind": str(e.auth),
    }
    if params:
        op["parameters"] = params
    if e.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(e.request, schemas)}},
        }
    if e.response is None:
        ok: dict[str, Any] = {"description": "Done."}
    else:
        ok = {
            "description": "Done.",
            "content": {"application/json": {"schema": _schema(e.response, schemas)}},
        }
    op["responses"] = {str(e.status): ok, "default": {"$ref": "#/components/responses/Problem"}}
    return op


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _api_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, schemas)
    return paths


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document: the endpoints :func:`~portal_core.server.create_app` serves
    itself and the ``/v1`` API (:data:`~portal_core.http_api.ENDPOINTS`), whose body schemas
    are derived from the body classes' annotations."""
    errors = {"default": {"$ref": "#/components/responses/Problem"}}
    schemas: dict[str, Any] = {}
    api_paths = _api_paths(schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "portal-core custodian",
            "version": API_VERSION,
            "description": (
                "The custodian's HTTP API. JSON bodies; bytes as base64url without padding, "
                "decoded strictly. Every error is an RFC 9457 problem document "
                "(application/problem+json) with a stable `code`."
            ),
        },
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process serves requests.",
                    "responses": {"200": _json("Alive.", "Health"), **errors},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the store and the HSM are reachable.",
                    "responses": {
                        "200": _json("Ready.", "Readiness"),
                        "503": _problem("Not ready (code NOT_READY); `checks` says what is down."),
                        **errors,
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text exposition format).",
                    "responses": {
                        "200": {
                            "description": "Requests, latencies, KMS calls and flows.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **errors,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **errors,
                    },
                }
            },
            **api_paths,
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: a client key (pc_cli_...) for /v1/clients, "
                    "/v1/sessions and /v1/enclave; an admin key (pc_adm_...) for "
                    "/v1/custodians/me. `x-api-key-kind` names the kind each operation takes.",
                },
            },
            "schemas": {
                **schemas,
                "Base64Url": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-]*$",
                    "contentEncoding": "base64url",
                    "description": "Bytes, base64url without padding (RFC 4648 §5); "
                    "non-canonical encodings are refused.",
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"const": "ok"}},
                },
                "Readiness": {
                    "type": "object",
                    "required": ["status", "checks"],
                    "properties": {
                        "status": {"const": "ready"},
                        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
                    },
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details, with a stable `code`.",
                    "required": ["type", "title", "status", "code"],
                    "properties": {
                        "type": {"type": "string", "format": "uri-reference"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {
                            "type": "string",
                            "description": "What went wrong; only on 4xx responses.",
                        },
                        "code": {"type": "string", "enum": sorted(problem_codes())},
                        "request_id": {"type": "string"},
                        "checks": {
                            "type": "object",
                            "additionalProperties": {"type": "boolean"},
                            "description": "NOT_READY: each component's state.",
                        },
                        "tries_left": {
                            "type": "integer",
                            "description": "WRONG_ACCESS_KEY: tries before the secret is "
                            "destroyed.",
                        },
                    },
                },
            },
            "responses": {"Problem": _problem("An error (RFC 9457 problem document).")},
        },
        "x-problem-codes": problem_codes(),
    }
