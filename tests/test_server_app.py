"""portal_core.server's plumbing, in process (httpx's ASGITransport): health and readiness,
the OpenAPI document and its copy in docs/, the wire format's refusals as problem documents,
request ids, logs without secrets, and blocking work kept off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from portal_core.server import (
    PROBLEM_MEDIA_TYPE,
    JsonFormatter,
    JsonResponse,
    b64url_decode,
    b64url_encode,
    build_openapi,
    bytes_field,
    checks,
    create_app,
    read_json,
    request_id,
    run_blocking,
)
from portal_core.server.logs import PlainQueueHandler

ROOT = Path(__file__).resolve().parent.parent


async def echo(request: Request):
    """A test endpoint shaped like the custodian's: a JSON body with a base64url field."""
    body = await read_json(request)
    data = bytes_field(body, "data")
    return JsonResponse({"data": b64url_encode(data), "length": len(data)})


def make_app(**kwargs: Any) -> Starlette:
    kwargs.setdefault("routes", [Route("/echo", echo, methods=["POST"])])
    return create_app(**kwargs)


async def request(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    return asyncio.run(asyncio.wait_for(request(app, method, path, **kwargs), timeout=30))


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == r.headers["x-request-id"]
    return body


# -- health, readiness -------------------------------------------------------------------


def test_healthz():
    r = call(make_app(), "GET", "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["content-type"] == "application/json"


def test_readyz_ready_without_a_check_and_with_a_passing_one():
    assert call(make_app(), "GET", "/readyz").json() == {"status": "ready", "checks": {}}
    app = make_app(readiness=checks(store=lambda: 3, hsm=lambda: None))
    r = call(app, "GET", "/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"store": True, "hsm": True}}


def test_readyz_names_what_is_down():
    def hsm_down() -> None:
        raise OSError("token 'custodian' not found at /usr/lib/softhsm")

    app = make_app(readiness=checks(store=lambda: 3, hsm=hsm_down))
    body = assert_problem(call(app, "GET", "/readyz"), 503, "NOT_READY")
    assert body["checks"] == {"store": True, "hsm": False}
    assert body["detail"] == "not ready: hsm is down"
    assert "softhsm" not in json.dumps(body)  # the cause stays in the server's log


def test_readyz_check_that_raises_or_hangs_is_not_ready():
    def broken() -> dict[str, bool]:
        raise RuntimeError("boom")

    assert_problem(call(make_app(readiness=broken), "GET", "/readyz"), 503, "NOT_READY")

    release = threading.Event()

    def hangs() -> dict[str, bool]:
        release.wait(10)
        return {"store": True}

    app = make_app(readiness=hangs, readiness_timeout_s=0.3)
    t0 = time.monotonic()
    try:
        body = assert_problem(call(app, "GET", "/readyz"), 503, "NOT_READY")
    finally:
        release.set()
    assert time.monotonic() - t0 < 5
    assert "0.3 s" in body["detail"]


# -- the OpenAPI document ----------------------------------------------------------------


def test_openapi_served_equals_docs_copy():
    served = call(make_app(), "GET", "/openapi.json").json()
    on_disk = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    regenerate = "python -m portal_core.server openapi > docs/openapi.json"
    assert on_disk == build_openapi(), f"docs/openapi.json is stale: {regenerate}"
    assert served == on_disk
    assert served["openapi"].startswith("3.1.")


def test_openapi_lists_exactly_the_apps_routes():
    from portal_core.server.metrics import Metrics
    from portal_core.server.routes import v1_routes

    app = create_app(routes=v1_routes(None), metrics=Metrics())  # type: ignore[arg-type]
    routes: dict[str, list[str]] = {}
    for route in app.routes:
        if isinstance(route, Route):
            routes[route.path] = sorted({*routes.get(route.path, ()), *(route.methods or ())})
            routes[route.path] = [m for m in routes[route.path] if m != "HEAD"]
    documented = {
        path: sorted(m.upper() for m in ops) for path, ops in build_openapi()["paths"].items()
    }
    assert routes == documented


def test_openapi_lists_every_problem_code():
    from portal_core.server import ERROR_CODES, HTTP_CODES, RESERVED_CODES

    doc = build_openapi()
    enum = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    codes = {e.code for e in ERROR_CODES.values()} | set(HTTP_CODES) | set(RESERVED_CODES)
    assert enum == codes == set(doc["x-problem-codes"])


# -- wire format ---------------------------------------------------------------------------


def test_echo_round_trips_bytes():
    data = bytes(range(256)) * 4
    r = call(make_app(), "POST", "/echo", json={"data": b64url_encode(data)})
    assert r.status_code == 200
    assert b64url_decode(r.json()["data"]) == data
    assert r.json()["length"] == 1024


@pytest.mark.parametrize(
    "text",
    [
        "AAE=",  # padding
        "AA+/",  # the standard alphabet
        "AA E",  # whitespace
        "A",  # a length no encoding has
        "AB",  # unused trailing bits set (canonical: "AA")
        "AAB",  # the same, 2 bytes
        "QUJD\n",  # a newline
        "ÄÖ",  # not ASCII
    ],
)
def test_bad_base64url_is_a_400(text):
    with pytest.raises(ValueError):
        b64url_decode(text)
    body = assert_problem(
        call(make_app(), "POST", "/echo", json={"data": text}), 400, "INVALID_REQUEST"
    )
    assert body["detail"].startswith("field 'data': not ")


def test_base64url_accepts_every_canonical_encoding():
    for n in range(0, 40):
        data = bytes(range(n))
        assert b64url_decode(b64url_encode(data)) == data
    assert b64url_decode("") == b""


@pytest.mark.parametrize("body", [{"data": 5}, {"other": "AA"}, {"data": None}])
def test_missing_or_mistyped_field_is_a_400(body):
    assert_problem(call(make_app(), "POST", "/echo", json=body), 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "content", [b"{", b"not json", b'{"data": NaN}', b"\xff\xfe", b"[1, 2]", b'"AA"', b""]
)
def test_malformed_json_is_a_400(content):
    r = call(
        make_app(), "POST", "/echo", content=content, headers={"content-type": "application/json"}
    )
    assert_problem(r, 400, "MALFORMED_JSON")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_a_415(content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = call(make_app(), "POST", "/echo", content=b'{"data": "AA"}', headers=headers)
    assert_problem(r, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_with_parameters_and_suffix_is_accepted():
    for ct in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = call(
            make_app(), "POST", "/echo", content=b'{"data": "AA"}', headers={"content-type": ct}
        )
        assert r.status_code == 200, ct


def test_body_over_the_cap_is_a_413():
    app = make_app(max_body_bytes=1024)
    big = {"data": b64url_encode(b"x" * 2048)}
    body = assert_problem(call(app, "POST", "/echo", json=big), 413, "PAYLOAD_TOO_LARGE")
    assert "1024 bytes" in body["detail"]
    # The default cap: 256 KiB.
    huge = {"data": b64url_encode(b"x" * 200_000)}
    assert_problem(call(make_app(), "POST", "/echo", json=huge), 413, "PAYLOAD_TOO_LARGE")
    small = {"data": b64url_encode(b"x" * 150_000)}
    assert call(make_app(), "POST", "/echo", json=small).status_code == 200


def test_streamed_body_over_the_cap_is_a_413():
    """A chunked body (no Content-Length) is counted as it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 512

    app = make_app(max_body_bytes=1024)
    r = call(app, "POST", "/echo", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413, "PAYLOAD_TOO_LARGE")


def test_bad_content_length_is_a_400():
    app = make_app()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        scope_headers = {"content-type": "application/json", "content-length": "-5"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            req = client.build_request("POST", "/echo", content=b'{"data": "AA"}')
            req.headers.update(scope_headers)
            return await client.send(req)

    assert_problem(asyncio.run(asyncio.wait_for(go(), 30)), 400, "INVALID_REQUEST")


def test_unknown_route_is_a_404_and_wrong_method_a_405():
    assert_problem(call(make_app(), "GET", "/v1/nothing-here"), 404, "NOT_FOUND")
    r = call(make_app(), "DELETE", "/healthz")
    assert_problem(r, 405, "METHOD_NOT_ALLOWED")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert_problem(call(make_app(), "GET", "/echo"), 405, "METHOD_NOT_ALLOWED")


# -- request ids ---------------------------------------------------------------------------


def test_request_id_is_echoed_when_well_formed_and_replaced_otherwise():
    async def whoami(request: Request):
        return JsonResponse({"request_id": request_id(request)})

    app = make_app(routes=[Route("/whoami", whoami)])
    r = call(app, "GET", "/whoami", headers={"X-Request-Id": "abc-123.x:y_z"})
    assert r.headers["x-request-id"] == "abc-123.x:y_z" == r.json()["request_id"]
    for bad in ("", "-leading", "a" * 129, "has space", "bad\u00e9", "a/b"):
        r = call(app, "GET", "/whoami", headers={"X-Request-Id": bad.encode("utf-8")})
        rid = r.headers["x-request-id"]
        assert rid != bad and len(rid) == 32 and rid == r.json()["request_id"]
    r1 = call(app, "GET", "/whoami")
    r2 = call(app, "GET", "/whoami")
    assert r1.headers["x-request-id"] != r2.headers["x-request-id"]


# -- logs ------------------------------------------------------------------------------------


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("portal_core.server")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_logs_are_json_lines_with_the_request(log_lines):
    r = call(make_app(), "GET", "/healthz?token=query-secret", headers={"X-Request-Id": "rq-7"})
    assert r.status_code == 200
    lines = log_lines()
    access = [line for line in lines if line["msg"] == "request"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "rq-7"
    assert line["method"] == "GET" and line["path"] == "/healthz" and line["status"] == 200
    assert line["level"] == "INFO" and line["logger"] == "portal_core.server"
    assert isinstance(line["duration_ms"], float)
    assert "query-secret" not in json.dumps(lines)


SECRET_TOKEN = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRET_FIELD = "the-share-is-0x1234deadbeef-never-log-it"


def test_no_secret_reaches_the_log(log_lines):
    """Neither the Authorization header nor the body is logged: not on success, not on a
    refusal, not when the handler fails."""

    async def fails(request: Request):
        await request.body()
        raise RuntimeError("handler failed")

    app = make_app(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/fails", fails, methods=["POST"])]
    )
    headers = {"Authorization": f"Bearer {SECRET_TOKEN}", "Cookie": f"session={SECRET_TOKEN}"}
    payload = {"data": b64url_encode(SECRET_FIELD.encode()), "secret": SECRET_FIELD}
    assert call(app, "POST", "/echo", json=payload, headers=headers).status_code == 200
    bad = {"data": SECRET_FIELD + "!", "secret": SECRET_FIELD}
    r = call(app, "POST", "/echo", json=bad, headers=headers)
    assert r.status_code == 400
    assert SECRET_FIELD not in r.text
    assert call(app, "POST", "/fails", json=payload, headers=headers).status_code == 500
    text = "\n".join(json.dumps(line) for line in log_lines())
    assert text  # something was logged
    encoded = b64url_encode(SECRET_FIELD.encode())
    for secret in (SECRET_TOKEN, SECRET_FIELD, encoded, "Bearer"):
        assert secret not in text
    statuses = [line["status"] for line in log_lines() if line["msg"] == "request"]
    assert statuses == [200, 400, 500]
    errors = [line for line in log_lines() if line["msg"] == "unhandled exception"]
    assert len(errors) == 1 and errors[0]["exc_type"] == "RuntimeError"


# -- blocking work ------------------------------------------------------------------------


def test_slow_sync_handler_does_not_stall_healthz():
    """A handler blocked in a sync call (run_blocking) leaves the loop free: /healthz answers
    while it waits, and the slow call then completes."""
    started = threading.Event()
    release = threading.Event()

    def slow_sync_work() -> str:
        started.set()
        if not release.wait(10):
            raise TimeoutError("never released")
        return "done"

    async def slow(request: Request):
        return JsonResponse({"result": await run_blocking(request, slow_sync_work)})

    app = make_app(routes=[Route("/slow", slow)])

    async def scenario() -> tuple[httpx.Response, httpx.Response, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            slow_call = asyncio.create_task(client.get("/slow"))
            deadline = time.monotonic() + 5
            while not started.is_set():  # the slow call is now blocking a worker thread
                assert time.monotonic() < deadline, "the slow handler never started"
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            health = await asyncio.wait_for(client.get("/healthz"), timeout=2)
            elapsed = time.monotonic() - t0
            assert not slow_call.done()
            release.set()
            return health, await asyncio.wait_for(slow_call, timeout=10), elapsed

    try:
        health, slow_r, elapsed = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    finally:
        release.set()
    assert health.status_code == 200
    assert elapsed < 1.0
    assert slow_r.status_code == 200 and slow_r.json() == {"result": "done"}


def test_blocking_pool_is_bounded():
    """At most ``blocking_threads`` sync calls run at once; the others wait their turn."""
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def handler(request: Request):
        await run_blocking(request, work)
        return JsonResponse({})

    app = make_app(routes=[Route("/work", handler)], blocking_threads=2)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            rs = await asyncio.gather(*(client.get("/work") for _ in range(8)))
            return [r.status_code for r in rs]

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=30)) == [200] * 8
    assert peak == 2


def test_create_app_refuses_bad_settings():
    with pytest.raises(ValueError):
        create_app(max_body_bytes=-1)
    with pytest.raises(ValueError):
        create_app(blocking_threads=0)
    with pytest.raises(ValueError):
        create_app(readiness_timeout_s=0)


# -- the log thread ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app, timeout_s: float = 5.0) -> AsyncIterator[None]:
    """Runs the app's ASGI lifespan around the block, as uvicorn does (bounded waits)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), timeout_s))["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        done = await asyncio.wait_for(outbox.get(), timeout_s)
        assert done["type"] == "lifespan.shutdown.complete", done
        await asyncio.wait_for(task, timeout_s)


class GatedHandler(logging.Handler):
    """Holds every record until ``gate`` is set (at most 10 s), then writes it as JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.gate = threading.Event()
        self.writer_threads: set[str] = set()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.gate.wait(10)
        self.writer_threads.add(threading.current_thread().name)
        self.lines.append(self.format(record))


def log_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "portal-core-log"]


def test_log_lines_are_written_by_a_thread_stopped_at_shutdown():
    """Under the lifespan the request's line is formatted and written by the log thread: a
    request completes while the handler is held; at shutdown the thread writes what is
    queued and ends, and the logger gets its handler back."""
    logger = logging.getLogger("portal_core.server")
    handler = GatedHandler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    app = make_app()
    headers = {"X-Request-Id": "rq-thread-1", "Authorization": f"Bearer {SECRET_TOKEN}"}
    payload = {"data": b64url_encode(SECRET_FIELD.encode())}

    async def scenario() -> None:
        async with lifespan(app):
            assert handler not in logger.handlers  # moved to the thread
            assert len(log_threads()) == 1
            r = await asyncio.wait_for(request(app, "GET", "/healthz", headers=headers), 5)
            assert r.status_code == 200
            r = await asyncio.wait_for(
                request(app, "POST", "/echo", json=payload, headers=headers), 5
            )
            assert r.status_code == 200
            assert handler.lines == []  # held in the thread: the requests did not wait
            handler.gate.set()
        assert handler in logger.handlers

    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    finally:
        handler.gate.set()
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    deadline = time.monotonic() + 5
    while log_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log_threads() == []  # stopped at shutdown
    assert handler.writer_threads == {"portal-core-log"}
    lines = [json.loads(line) for line in handler.lines]
    access = [line for line in lines if line["msg"] == "request"]
    assert [(x["request_id"], x["path"], x["status"]) for x in access] == [
        ("rq-thread-1", "/healthz", 200),
        ("rq-thread-1", "/echo", 200),
    ]
    assert all(x["level"] == "INFO" and isinstance(x["duration_ms"], float) for x in access)
    text = "\n".join(handler.lines)
    for secret in (SECRET_TOKEN, SECRET_FIELD, payload["data"], "Bearer"):
        assert secret not in text


def test_the_queue_carries_plain_fields_only():
    """What goes through the queue: plain values, the message already merged, a traceback
    as text; never an exception object, a traceback's frames or an arbitrary object."""

    class Body:
        def __str__(self) -> str:
            return "<body>"

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("portal_core.server").makeRecord(
            "portal_core.server", logging.ERROR, __file__, 1, "failed %s", ("x",),
            sys.exc_info(), extra={"request_id": "rq-1", "body": Body()},
        )  # fmt: skip
    fields = PlainQueueHandler(queue.SimpleQueue()).prepare(record)
    assert isinstance(fields, dict)
    assert all(type(v) in (str, int, float, bool, type(None)) for v in fields.values()), fields
    assert fields["msg"] == "failed x" and "args" not in fields and "exc_info" not in fields
    assert fields["body"] == "<body>" and fields["request_id"] == "rq-1"
    assert fields["exc_type"] == "ValueError" and "boom" in fields["exc"]
    line = json.loads(JsonFormatter().format(logging.makeLogRecord(fields)))
    assert line["msg"] == "failed x" and line["exc_type"] == "ValueError"
