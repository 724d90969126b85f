"""The custodian's HTTP service (issue 10): an ASGI app on Starlette, served by uvicorn.

    from portal_core.server import create_app, checks
    app = create_app(readiness=checks(store=lambda: store.schema_version))

    uvicorn --factory portal_core.server:app_from_env --workers 2 --no-access-log

Needs the ``server`` extra (``pip install 'portal-core-mpc[server]'``). The choice of
framework, the wire format and the error codes: ``docs/server.md``; the API:
``docs/openapi.json``.
"""

from __future__ import annotations

from portal_core.server.app import (
    DEFAULT_BLOCKING_THREADS,
    DEFAULT_MAX_BODY_BYTES,
    BlockingRunner,
    ReadinessCheck,
    app_from_env,
    checks,
    create_app,
    request_id,
    run_blocking,
)
from portal_core.server.logs import JsonFormatter, configure_logging
from portal_core.server.openapi import build_openapi
from portal_core.server.problems import (
    ERROR_CODES,
    EXCEPTION_FOR_CODE,
    HTTP_CODES,
    PROBLEM_MEDIA_TYPE,
    RESERVED_CODES,
    ErrorCode,
    ProblemError,
    error_code,
    exception_from_problem,
)
from portal_core.server.wire import (
    JsonResponse,
    b64url_decode,
    b64url_encode,
    bytes_field,
    read_json,
)

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
