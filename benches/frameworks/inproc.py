"""In-process cost per request of ``GET /ping`` (no sockets, no server): calls each app's
ASGI callable directly in a loop on one event loop and prints microseconds per request.

    .venv/bin/python benches/frameworks/inproc.py [--n 20000] [--repeat 5]

``starlette``: the plain Starlette ping of ``apps.py``; ``portal``: the shipped app as
``run.py`` serves it (JSON log to /dev/null, lifespan run, so its log thread is up);
``portal-nolog``: the same without a log handler. The best of ``--repeat`` rounds is
reported (the machine is noisy; the minimum is the least disturbed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/ping",
    "raw_path": b"/ping",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8080),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    pass


async def _lifespan(app: Any, event: str) -> asyncio.Task[None] | None:
    """Starts the app's lifespan; returns the task to finish with ``shutdown``."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    msg = await asyncio.wait_for(outbox.get(), timeout=10)
    assert msg["type"] == "lifespan.startup.complete", msg
    app._bench_lifespan = (task, inbox, outbox)
    return task


async def _shutdown(app: Any) -> None:
    task, inbox, outbox = app._bench_lifespan
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(outbox.get(), timeout=10)
    await asyncio.wait_for(task, timeout=10)


async def measure(app: Any, n: int, repeat: int) -> float:
    await _lifespan(app, "startup")
    try:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(n):
                await app(dict(SCOPE), _receive, _send)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        return best
    finally:
        await _shutdown(app)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=("starlette", "portal", "portal-nolog"), action="append")
    args = ap.parse_args()
    for name in args.only or ("starlette", "portal", "portal-nolog"):
        if name == "portal-nolog":
            os.environ["PORTAL_BENCH_NO_LOG"] = "1"
            import logging

            from portal_core.server.logs import LOGGER_NAME

            logging.getLogger(LOGGER_NAME).handlers.clear()
        app = apps.FACTORIES[name.removesuffix("-nolog")]()
        us = asyncio.run(measure(app, args.n, args.repeat))
        print(f"{name:14s} {us:7.2f} us/request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
