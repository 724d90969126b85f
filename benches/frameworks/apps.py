"""The same two endpoints in each candidate framework, for ``run.py`` to measure.

* ``GET /ping``: a constant JSON object (the framework's floor: routing, response, headers).
* ``POST /echo``: a JSON body ``{"data": "<base64url, no padding>"}`` carrying 1 KiB; the
  handler decodes it strictly (a bad field is a 400) and answers the bytes re-encoded with
  their length: the shape of most custodian calls (a small JSON body of base64url fields).

Each framework is used the way its documentation recommends: Starlette by hand, FastAPI
with a pydantic model (so the OpenAPI document is generated), Litestar with a msgspec
Struct. Served by ``uvicorn --app-dir benches/frameworks apps:<name>`` (``starlette_app``,
``fastapi_app``, ``litestar_app``).
"""

import base64
import binascii
import json
import re
from typing import Any

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def decode_b64url(text: str) -> bytes:
    """Strict base64url without padding: any other character, or a length that no encoding
    gives (len % 4 == 1), or non-zero trailing bits, is refused with ValueError."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as e:
        raise ValueError("not base64url without padding") from e
    if encode_b64url(raw) != text:
        raise ValueError("non-canonical base64url (trailing bits set)")
    return raw


def encode_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _echo(payload: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), str):
        return 400, {"error": "data must be a string"}
    try:
        raw = decode_b64url(payload["data"])
    except ValueError as e:
        return 400, {"error": str(e)}
    return 200, {"data": encode_b64url(raw), "length": len(raw)}


# -- Starlette -----------------------------------------------------------------------------


def _make_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def echo(request: Request) -> JSONResponse:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "malformed JSON"}, status_code=400)
        status, body = _echo(payload)
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/ping", ping), Route("/echo", echo, methods=["POST"])])


# -- FastAPI -------------------------------------------------------------------------------


def _make_fastapi() -> Any:
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    class EchoIn(BaseModel):
        data: str

    class EchoOut(BaseModel):
        data: str
        length: int

    class Ping(BaseModel):
        ok: bool

    app = FastAPI()

    @app.get("/ping", response_model=Ping)
    async def ping() -> Ping:
        return Ping(ok=True)

    @app.post("/echo", response_model=EchoOut)
    async def echo(body: EchoIn) -> EchoOut:
        try:
            raw = decode_b64url(body.data)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from None
        return EchoOut(data=encode_b64url(raw), length=len(raw))

    return app


# -- Litestar ------------------------------------------------------------------------------


def _make_litestar() -> Any:
    import msgspec
    from litestar import Litestar, get, post
    from litestar.exceptions import HTTPException

    class EchoIn(msgspec.Struct):
        data: str

    class EchoOut(msgspec.Struct):
        data: str
        length: int

    @get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @post("/echo", status_code=200)
    async def echo(data: EchoIn) -> EchoOut:
        try:
            raw = decode_b64url(data.data)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from None
        return EchoOut(data=encode_b64url(raw), length=len(raw))

    return Litestar(route_handlers=[ping, echo], debug=False)


# -- portal_core.server (Starlette plus our plumbing) -----------------------------------------


def _make_portal() -> Any:
    """The shipped app: request ids, body cap, JSON access log (to /dev/null, so its cost is
    counted), problem documents, strict base64url; the same two endpoints as routes."""
    import os

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from portal_core.server import (
        JsonResponse,
        b64url_encode,
        bytes_field,
        configure_logging,
        create_app,
        read_json,
    )

    if os.environ.get("PORTAL_BENCH_NO_LOG") != "1":
        configure_logging(open(os.devnull, "w"))  # lives as long as the process

    async def ping(request: Request) -> Response:
        return JsonResponse({"ok": True})

    async def echo(request: Request) -> Response:
        raw = bytes_field(await read_json(request), "data")
        return JsonResponse({"data": b64url_encode(raw), "length": len(raw)})

    return create_app(routes=[Route("/ping", ping), Route("/echo", echo, methods=["POST"])])


FACTORIES = {
    "starlette": _make_starlette,
    "fastapi": _make_fastapi,
    "litestar": _make_litestar,
    "portal": _make_portal,
}


def __getattr__(name: str) -> Any:
    # Only the framework uvicorn asks for is imported and built.
    if name.endswith("_app") and name[: -len("_app")] in FACTORIES:
        return FACTORIES[name[: -len("_app")]]()
    raise AttributeError(name)
