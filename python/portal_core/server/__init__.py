"""The custodian's HTTP service (issue 10): an ASGI app on Starlette, served by uvicorn.

    from portal_core.server import create_app, checks
    app = create_app(readiness=checks(store=lambda: store.schema_version))

    uvicorn --factory portal_core.server:app_from_env --workers 2 --no-access-log

Needs the ``server`` extra (``pip install 'portal-core-mpc[server]'``); names are imported
on first use, so the client SDK reads :mod:`portal_core.server.problems` without it. The
choice of framework, the wire format and the error codes: ``docs/server.md``; the API:
``docs/openapi.json``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `as`: re-exported for the type checker, which does not run __getattr__
    from portal_core.server.app import DEFAULT_BLOCKING_THREADS as DEFAULT_BLOCKING_THREADS
    from portal_core.server.app import DEFAULT_MAX_BODY_BYTES as DEFAULT_MAX_BODY_BYTES
    from portal_core.server.app import BlockingRunner as BlockingRunner
    from portal_core.server.app import ReadinessCheck as ReadinessCheck
    from portal_core.server.app import app_from_env as app_from_env
    from portal_core.server.app import checks as checks
    from portal_core.server.app import create_app as create_app
    from portal_core.server.app import request_id as request_id
    from portal_core.server.app import run_blocking as run_blocking
    from portal_core.server.logs import JsonFormatter as JsonFormatter
    from portal_core.server.logs import configure_logging as configure_logging
    from portal_core.server.openapi import build_openapi as build_openapi
    from portal_core.server.problems import ERROR_CODES as ERROR_CODES
    from portal_core.server.problems import EXCEPTION_FOR_CODE as EXCEPTION_FOR_CODE
    from portal_core.server.problems import HTTP_CODES as HTTP_CODES
    from portal_core.server.problems import PROBLEM_MEDIA_TYPE as PROBLEM_MEDIA_TYPE
    from portal_core.server.problems import RESERVED_CODES as RESERVED_CODES
    from portal_core.server.problems import ErrorCode as ErrorCode
    from portal_core.server.problems import ProblemError as ProblemError
    from portal_core.server.problems import error_code as error_code
    from portal_core.server.problems import exception_from_problem as exception_from_problem
    from portal_core.server.wire import JsonResponse as JsonResponse
    from portal_core.server.wire import b64url_decode as b64url_decode
    from portal_core.server.wire import b64url_encode as b64url_encode
    from portal_core.server.wire import bytes_field as bytes_field
    from portal_core.server.wire import read_json as read_json

_EXPORTS: dict[str, str] = {
    "DEFAULT_BLOCKING_THREADS": "portal_core.server.app",
    "DEFAULT_MAX_BODY_BYTES": "portal_core.server.app",
    "BlockingRunner": "portal_core.server.app",
    "ReadinessCheck": "portal_core.server.app",
    "app_from_env": "portal_core.server.app",
    "checks": "portal_core.server.app",
    "create_app": "portal_core.server.app",
    "request_id": "portal_core.server.app",
    "run_blocking": "portal_core.server.app",
    "JsonFormatter": "portal_core.server.logs",
    "configure_logging": "portal_core.server.logs",
    "build_openapi": "portal_core.server.openapi",
    "ERROR_CODES": "portal_core.server.problems",
    "EXCEPTION_FOR_CODE": "portal_core.server.problems",
    "HTTP_CODES": "portal_core.server.problems",
    "PROBLEM_MEDIA_TYPE": "portal_core.server.problems",
    "RESERVED_CODES": "portal_core.server.problems",
    "ErrorCode": "portal_core.server.problems",
    "ProblemError": "portal_core.server.problems",
    "error_code": "portal_core.server.problems",
    "exception_from_problem": "portal_core.server.problems",
    "JsonResponse": "portal_core.server.wire",
    "b64url_decode": "portal_core.server.wire",
    "b64url_encode": "portal_core.server.wire",
    "bytes_field": "portal_core.server.wire",
    "read_json": "portal_core.server.wire",
}

__all__ = [
    "DEFAULT_BLOCKING_THREADS",
    "DEFAULT_MAX_BODY_BYTES",
    "ERROR_CODES",
    "EXCEPTION_FOR_CODE",
    "HTTP_CODES",
    "PROBLEM_MEDIA_TYPE",
    "RESERVED_CODES",
    "BlockingRunner",
    "ErrorCode",
    "JsonFormatter",
    "JsonResponse",
    "ProblemError",
    "ReadinessCheck",
    "app_from_env",
    "b64url_decode",
    "b64url_encode",
    "build_openapi",
    "bytes_field",
    "checks",
    "configure_logging",
    "create_app",
    "error_code",
    "exception_from_problem",
    "read_json",
    "request_id",
    "run_blocking",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'portal_core.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
