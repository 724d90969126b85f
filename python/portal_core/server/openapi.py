"""The server's OpenAPI 3.1 document, kept by hand (Starlette generates none).

:func:`build_openapi` is the one source: the app serves it at ``/openapi.json``, and
``docs/openapi.json`` is a copy for readers and SDK generators, rewritten with

    python -m portal_core.server openapi > docs/openapi.json

``tests/test_server_openapi.py`` fails when the copy, the served document and the app's
routes disagree. The problem codes come from :mod:`portal_core.server.problems`, so the
document lists every code with its status and exception class (``x-problem-codes``).
"""

from __future__ import annotations

from typing import Any

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


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the endpoints :func:`~portal_core.server.create_app`
    serves itself."""
    errors = {"default": {"$ref": "#/components/responses/Problem"}}
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
        },
        "components": {
            "schemas": {
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
