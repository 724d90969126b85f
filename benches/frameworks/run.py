"""Measures the candidate ASGI frameworks for portal_core.server (issue 10).

For each framework (Starlette, FastAPI, Litestar; and ``portal``: the shipped
``portal_core.server`` app, Starlette with our middleware and JSON logs; set
``PORTAL_BENCH_NO_LOG=1`` to leave its log line out), starts ``uvicorn --workers 1 --loop
uvloop --http httptools`` on a free 127.0.0.1 port, then drives each endpoint of ``apps.py`` with
``wrk -t1 -c64 -d5s`` (``GET /ping``, ``POST /echo`` with a 1 KiB base64url field), three
runs each, and reports the median requests per second and median latency. Also records
whether each framework generates an OpenAPI 3.1 document, and its ``openapi`` version.

    .venv/bin/python benches/frameworks/run.py [--runs 3] [--duration 5] [--json out.json]

Bounded in time: every wait has a deadline (server start 20 s, each wrk run its duration
plus 30 s), and each server is stopped even when a run fails. Takes about
4 apps x 2 endpoints x runs x duration seconds (120 s by default), plus start-up.
Needs ``wrk`` (Debian: ``apt-get install wrk``) and the frameworks (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("starlette", "fastapi", "litestar", "portal")
START_TIMEOUT_S = 20.0
ECHO_BODY = json.dumps(
    {"data": base64.urlsafe_b64encode(os.urandom(1024)).rstrip(b"=").decode("ascii")}
)


class BenchError(RuntimeError):
    """A server did not start, or wrk failed or printed nothing we can read."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> dict[str, float]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", out)
    if rps is None or lat is None:
        raise BenchError(f"cannot read wrk's output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "latency_ms": float(lat.group(1)) * _UNITS[lat.group(2)],
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def run_wrk(url: str, duration_s: int, lua: Path | None) -> dict[str, float]:
    cmd = ["wrk", "-t1", "-c64", f"-d{duration_s}s", "--latency"]
    if lua is not None:
        cmd += ["-s", str(lua)]
    cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def openapi_info(name: str, base: str) -> dict[str, Any]:
    """What the framework generates by itself (Starlette generates none)."""
    path = {"fastapi": "/openapi.json", "litestar": "/schema/openapi.json"}.get(name)
    if path is None:
        return {"generated": False, "version": None}
    try:
        with urllib.request.urlopen(base + path, timeout=5.0) as r:
            doc = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        return {"generated": False, "version": None, "error": str(e)}
    return {"generated": True, "version": doc.get("openapi"), "paths": sorted(doc["paths"])}


def bench_framework(name: str, runs: int, duration_s: int, lua: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), f"apps:{name}_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(base + "/ping", proc, START_TIMEOUT_S)
        result: dict[str, Any] = {"openapi": openapi_info(name, base)}
        for endpoint, path, script in (("ping", "/ping", None), ("echo", "/echo", lua)):
            samples = [run_wrk(base + path, duration_s, script) for _ in range(runs)]
            result[endpoint] = {
                "rps_runs": [s["rps"] for s in samples],
                "rps_median": statistics.median(s["rps"] for s in samples),
                "latency_ms_median": statistics.median(s["latency_ms"] for s in samples),
                "non_2xx": sum(s["non_2xx"] for s in samples),
            }
        return result
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--only", choices=FRAMEWORKS, action="append")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "wrk": f"-t1 -c64 -d{args.duration}s, {args.runs} runs, medians",
    }
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "echo.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(ECHO_BODY)}\n"
        )
        for name in args.only or FRAMEWORKS:
            results[name] = bench_framework(name, args.runs, args.duration, lua)
            ping, echo = results[name]["ping"], results[name]["echo"]
            print(
                f"{name:10s} ping {ping['rps_median']:8.0f} req/s "
                f"({ping['latency_ms_median']:.2f} ms)   echo {echo['rps_median']:8.0f} req/s "
                f"({echo['latency_ms_median']:.2f} ms)   openapi: "
                f"{results[name]['openapi'].get('version')}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
