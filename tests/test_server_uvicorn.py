"""portal_core.server under a real uvicorn (2 workers, uvloop and httptools) on a free
127.0.0.1 port: it starts, serves /healthz, /openapi.json and problem documents, logs JSON
lines, and is always stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

# `as`: also re-exported from here, where tests/http_world.py imports them.
from server_helpers import free_port as free_port
from server_helpers import stop as stop
from server_helpers import wait_healthy as wait_healthy

ROOT = Path(__file__).resolve().parent.parent


def test_uvicorn_two_workers(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "portal_core.server:app_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    try:
        wait_healthy(base, proc)
        with httpx.Client(base_url=base, timeout=5.0) as client:
            doc = client.get("/openapi.json")
            assert doc.status_code == 200
            on_disk = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
            assert doc.json() == on_disk

            r = client.get("/v1/no-such-thing", headers={"X-Request-Id": "uvicorn-test-1"})
            assert r.status_code == 404
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["x-request-id"] == "uvicorn-test-1"
            body = r.json()
            assert body["code"] == "NOT_FOUND" and body["request_id"] == "uvicorn-test-1"

            r = client.post("/healthz", content=b"{}")
            assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"

            big = client.post(
                "/healthz",
                content=b"x" * (300 * 1024),
                headers={"content-type": "application/json"},
            )
            assert big.status_code == 413 and big.json()["code"] == "PAYLOAD_TOO_LARGE"
    finally:
        stop(proc)
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    requests = [x for x in lines if x.get("msg") == "request"]
    assert any(x["request_id"] == "uvicorn-test-1" and x["status"] == 404 for x in requests)
