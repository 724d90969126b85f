"""The custodian's ASGI app: :func:`create_app`.

The plumbing every endpoint shares, outermost first:

* request context (:class:`_RequestContext`, pure ASGI): the request id, the body-size
  cap, one JSON log line per request, and the last line of defence: an exception nothing
  else answered becomes ``500 INTERNAL`` with no detail (the traceback goes to the log);
* Starlette's exception handlers: a :class:`~portal_core.exceptions.PortalError` becomes its
  problem document (:mod:`portal_core.server.problems`), as do the HTTP layer's own problems
  and the router's 404 and 405;
* the routes: ``/healthz``, ``/readyz``, ``/openapi.json``, and those passed in.

Handlers do blocking work (store, HSM) through :func:`run_blocking`, in a bounded thread
pool, so the event loop keeps serving while it runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal_core.exceptions import PortalError
from portal_core.server.logs import (
    LOGGER_NAME,
    LogThread,
    configure_logging,
    log_fields,
    new_request_id,
)
from portal_core.server.logs import valid_request_id as _valid_request_id
from portal_core.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from portal_core.server.metrics import Metrics
from portal_core.server.openapi import build_openapi
from portal_core.server.problems import (
    PROBLEM_MEDIA_TYPE,
    ProblemError,
    dumps,
    error_code,
    portal_problem,
    problem_body,
)
from portal_core.server.wire import JsonResponse

__all__ = [
    "DEFAULT_BLOCKING_THREADS",
    "DEFAULT_MAX_BODY_BYTES",
    "BlockingRunner",
    "ReadinessCheck",
    "app_from_env",
    "checks",
    "create_app",
    "request_id",
    "run_blocking",
]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_BLOCKING_THREADS = 16
DEFAULT_READINESS_TIMEOUT_S = 5.0

# A readiness check: called in a worker thread, returns each component's state
# (``{"store": True, "hsm": False}``); ready when every one is True. Raising counts as not
# ready. :func:`checks` builds one from plain callables.
ReadinessCheck = Callable[[], Mapping[str, bool]]


class BlockingRunner:
    """Runs sync callables in worker threads, at most ``max_threads`` at a time (anyio's
    ``to_thread.run_sync`` with a capacity limiter of its own, so the server's blocking work
    cannot take every thread of the process's default pool, nor the other way round)."""

    def __init__(self, max_threads: int = DEFAULT_BLOCKING_THREADS) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Made on first use, inside the event loop that will use it.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_threads)
        return self._limiter

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread; its result, or its exception."""
        call = functools.partial(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self.limiter)


async def run_blocking(
    request: Request, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Runs a blocking call for a handler in the app's thread pool (:class:`BlockingRunner`)."""
    runner: BlockingRunner = request.app.state.blocking
    return await runner.run(fn, *args, **kwargs)


def request_id(request: Request) -> str:
    """The id of the request being served (also in the response's ``X-Request-Id``)."""
    return str(request.scope.get("state", {}).get("request_id", ""))


def checks(**components: Callable[[], object]) -> ReadinessCheck:
    """A readiness check from one callable per component: a component is up when its
    callable returns (whatever it returns), down when it raises. For example
    ``checks(store=lambda: store.schema_version, hsm=lambda: kms.describe(key_name))``."""
    log = logging.getLogger(LOGGER_NAME)

    def check() -> dict[str, bool]:
        states: dict[str, bool] = {}
        for name, probe in components.items():
            try:
                probe()
            except Exception as e:
                log.warning("readiness: %s is down", name, extra={"exc_type": type(e).__name__})
                states[name] = False
            else:
                states[name] = True
        return states

    return check


def _problem_response(
    status: int,
    code: str,
    detail: str | None,
    rid: str | None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body = problem_body(status, code, detail, rid, extra)
    return Response(dumps(body), status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


class _RequestContext:
    """Request id, body cap, access log and the catch-all (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        logger: logging.Logger,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.log = logger
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given: str | None = None
        declared: str | None = None
        for key, value in scope["headers"]:  # one pass, no Headers object (names are lowercase)
            if key == b"x-request-id" and given is None:
                given = value.decode("latin-1")
            elif key == b"content-length" and declared is None:
                declared = value.decode("latin-1")
        rid = given if given is not None and _valid_request_id(given) else new_request_id()
        rid_header = (b"x-request-id", rid.encode("ascii"))
        scope.setdefault("state", {})["request_id"] = rid
        started = False
        status = 500
        received = 0
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"),
                    rid_header,
                ]
            await send(message)

        async def receive_capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise ProblemError("PAYLOAD_TOO_LARGE", self._too_large())
            return message

        try:
            early = self._check_length(declared, rid)
            if early is not None:
                await early(scope, receive, send_with_id)
            else:
                await self.app(scope, receive_capped, send_with_id)
        except Exception as exc:
            if started:  # nothing left to answer with: log it, let the server close
                self.log.error("exception after the response started", exc_info=exc,
                               extra={"request_id": rid})  # fmt: skip
                raise
            if isinstance(exc, ProblemError):  # raised outside the exception handlers
                response = _problem_response(exc.status, exc.code, exc.detail, rid, exc.headers)
            else:
                self.log.error("unhandled exception", exc_info=exc, extra={"request_id": rid})
                response = _problem_response(500, "INTERNAL", None, rid)
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            if self.metrics is not None:
                # The API's operation (set by its route), else the route's name.
                name = scope.get("portal.endpoint") or getattr(scope.get("route"), "name", None)
                name = name or "unmatched"
                self.metrics.observe_request(name, scope.get("method", ""), status, seconds)
            client = scope.get("client")
            log_fields(
                self.log,
                logging.INFO,
                "request",
                {
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": scope.get("path"),  # never the query string
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": client[0] if client else None,
                },
            )

    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_body_bytes} bytes"

    def _check_length(self, declared: str | None, rid: str) -> Response | None:
        if declared is None:
            return None
        if not declared.isdigit() or not declared.isascii():
            return _problem_response(400, "INVALID_REQUEST", "bad Content-Length", rid)
        if int(declared) > self.max_body_bytes:
            return _problem_response(413, "PAYLOAD_TOO_LARGE", self._too_large(), rid)
        return None


_HTTP_STATUS_CODES = {
    404: ("NOT_FOUND", "no such endpoint"),
    405: ("METHOD_NOT_ALLOWED", "the endpoint does not take this method"),
    413: ("PAYLOAD_TOO_LARGE", None),
    415: ("UNSUPPORTED_MEDIA_TYPE", None),
}


def _handlers(logger: logging.Logger) -> dict[Any, Any]:
    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        if status in _HTTP_STATUS_CODES:
            code, detail = _HTTP_STATUS_CODES[status]
        elif status >= 500:
            code, detail = "INTERNAL", None
        else:
            status, code, detail = 400, "INVALID_REQUEST", None
        return _problem_response(status, code, detail, request_id(request), exc.headers)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        rid = request_id(request)
        return _problem_response(exc.status, exc.code, exc.detail, rid, exc.headers, exc.extra)

    async def on_portal_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PortalError)
        rid = request_id(request)
        entry = error_code(exc)
        if entry.status >= 500:
            logger.error("typed error %s", entry.code, exc_info=exc, extra={"request_id": rid})
        else:
            logger.info("typed error %s", entry.code, extra={"request_id": rid})
        body = portal_problem(exc, rid)
        return Response(dumps(body), entry.status, media_type=PROBLEM_MEDIA_TYPE)

    return {
        HTTPException: on_http_exception,
        ProblemError: on_problem,
        PortalError: on_portal_error,
    }


def create_app(
    *,
    readiness: ReadinessCheck | None = None,
    routes: Sequence[BaseRoute] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    blocking_threads: int = DEFAULT_BLOCKING_THREADS,
    readiness_timeout_s: float = DEFAULT_READINESS_TIMEOUT_S,
    logger: logging.Logger | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The custodian's ASGI app.

    ``readiness``: the check ``/readyz`` runs (store and HSM reachable; see
    :data:`ReadinessCheck`, :func:`checks`); none: always ready. It runs in a thread of its
    own small pool, bounded by ``readiness_timeout_s`` (a check still running then counts as
    not ready). ``routes``: endpoints to serve besides the built-in ones. ``max_body_bytes``:
    larger request bodies are refused with 413. ``blocking_threads``: the size of the pool
    :func:`run_blocking` uses. ``logger``: where request lines go (``portal_core.server``).
    ``metrics``: counted per request and served at ``/metrics`` (none: no ``/metrics``).
    """
    if max_body_bytes < 0:
        raise ValueError("max_body_bytes must not be negative")
    if readiness_timeout_s <= 0:
        raise ValueError("readiness_timeout_s must be positive")
    log = logger or logging.getLogger(LOGGER_NAME)
    check = readiness or (lambda: {})
    readiness_pool = BlockingRunner(2)  # a stuck check must not take the handlers' threads
    openapi = build_openapi()

    async def healthz(request: Request) -> Response:
        return JsonResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        states: Mapping[str, bool] | None = None
        reason = "a readiness check failed"
        try:
            with anyio.fail_after(readiness_timeout_s):
                states = await anyio.to_thread.run_sync(
                    check, limiter=readiness_pool.limiter, abandon_on_cancel=True
                )
        except TimeoutError:
            reason = f"the readiness check took over {readiness_timeout_s:g} s"
            log.warning("readiness check timed out", extra={"request_id": request_id(request)})
        except Exception as e:
            log.warning(
                "readiness check raised",
                extra={"request_id": request_id(request), "exc_type": type(e).__name__},
            )
        if states is not None and all(states.values()):
            return JsonResponse({"status": "ready", "checks": dict(states)})
        extra: dict[str, Any] = {}
        if states is not None:
            down = sorted(name for name, up in states.items() if not up)
            reason = "not ready: " + ", ".join(down) + (" is" if len(down) == 1 else " are")
            reason += " down"
            extra["checks"] = {name: bool(up) for name, up in states.items()}
        return _problem_response(503, "NOT_READY", reason, request_id(request), None, extra)

    async def openapi_json(request: Request) -> Response:
        return JsonResponse(openapi)

    async def metrics_text(request: Request) -> Response:
        assert metrics is not None
        return Response(await anyio.to_thread.run_sync(metrics.render), 200,
                        media_type=METRICS_CONTENT_TYPE)  # fmt: skip

    log_thread = LogThread(log)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log_thread.start()
        try:
            yield
        finally:  # the thread writes what is queued, then ends (bounded: 5 s)
            await anyio.to_thread.run_sync(log_thread.stop)

    app = Starlette(
        debug=False,
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            *([Route("/metrics", metrics_text, methods=["GET"])] if metrics else []),
            *routes,
        ],
        middleware=[
            Middleware(_RequestContext, max_body_bytes=max_body_bytes, logger=log, metrics=metrics)
        ],
        exception_handlers=_handlers(log),
        lifespan=lifespan,
    )
    app.state.blocking = BlockingRunner(blocking_threads)
    return app


def app_from_env() -> Starlette:
    """The factory for ``uvicorn --factory portal_core.server:app_from_env``: JSON logs on
    stderr and the plumbing endpoints. (The custodian's endpoints come in the next slice.)"""
    configure_logging()
    return create_app()
