"""Load benchmark of the custodian's HTTP service (issue 10): complete backups and recoveries
per second over HTTP with concurrent devices, beside the same flows in-process (the ceiling)
and a trivial endpoint of the same server (the floor).

    .venv/bin/python benches/service_load.py [--runs 3] [--duration 3] [--clients 1,16,64]
        [--workers 1,2,3] [--grid-workers 2] [--json out.json] [--markdown]
    .venv/bin/python benches/service_load.py --profile [--try thread-queue,...] [--cprofile]

The server is a real ``portal-core serve --data-dir D --workers N`` on a free 127.0.0.1
port, ``D`` a temporary directory (the embedded SoftHSM2 token is made there on first
start), with its default settings; its tenant is made with ``portal-core tenants create
NAME --data-dir D --json`` and its clients with ``POST /v1/custodians/me/clients``, each
with a wallet and a completed CUSTOM backup before anything is timed. The load generator
is this process: one thread per simulated device, each with its own
:class:`~portal_core.client.HttpCustodian` (one kept-alive connection) under a
:class:`~portal_core.backup.WalletClient` whose CUSTOM key lives in memory (no Argon2id,
no key file written on the device). A backup is ``backup_wallet("CUSTOM")`` to its end
(the custodian keeps the cipher text; the backup is ``completed``), a recovery
``recover_wallet("CUSTOM")``. Each phase runs one flow (or ``GET /healthz``) on every
device of a concurrency at once, untimed for ``--warmup`` seconds, then timed for
``--duration``; a flow started before the deadline is finished and counted.

Per phase: flows per second (flows done / seconds from the start to the last one's end),
p50 and p99 of one flow's latency, the server's CPU (utime + stime of ``portal-core
serve`` and its workers, ``/proc/<pid>/stat``) and this process's CPU (``os.times``), each
per flow, and from the service's ``/metrics`` the HTTP requests and KMS calls per flow.

* Worker counts (``--workers``): every one at the largest concurrency; the whole grid of
  concurrencies at ``--grid-workers``.
* The ceiling: the same flows in a child process with no HTTP, threads over the one
  :class:`~portal_core.backup.LocalCustodian` a worker builds
  (:func:`~portal_core.server.runtime.open_service`, its own token).
* The floor: ``GET /healthz`` from the same kind of generator (and from ``wrk -t1``, when
  installed, whose own cost is far lower).
* The generator: the threads above, against asyncio (one event loop thread, an
  ``httpx.AsyncClient`` per device; a device's flow still runs in its thread and sends each
  request through the loop), for backups and for ``/healthz`` (there, tasks on the loop).

Every figure is the median over the runs (``--runs``, interleaved) with its min-max.

``--profile`` starts the same service with timers in each worker (KMS seals and opens,
SQLite write transactions and reads, API-key checks, each request's handler) and reads each
worker thread's CPU from ``/proc/<pid>/task``, runs backups and recoveries at the largest
concurrency, and prints per flow the calls, CPU and wall time of each part and its share
of the server's CPU; ``--cprofile`` adds cProfile on the event loops (their most expensive
functions; it slows them down). ``--try NAMES`` also starts the service with candidate
changes to the store applied in its workers (:func:`apply_patches`), their runs interleaved
with the plain one's, to measure a change without editing the package.

Bounded in time: a server gets 60 s to answer ``/healthz`` (the first start makes the token),
each phase its duration plus 60 s, each child 60 s to stop, and is stopped (SIGTERM, then
SIGKILL to its process group) even when a run fails. About 6 minutes with the defaults on
2 cores. Servers listen on 127.0.0.1 only. Benchmarks never gate: the exit status is 0
unless a server cannot be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from portal_core.server.demo import free_port, stop_process

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # report.py's tables
sys.path.insert(0, str(ROOT / "tests"))  # DictStorage: a key storage in memory

START_TIMEOUT_S = 60.0  # a first start makes the token and the keys
STOP_TIMEOUT_S = 60.0
GRACE_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
TENANT = "bench"
FLOWS = ("backup", "recovery")
PLURAL = {"backup": "backups", "recovery": "recoveries"}
# The targets at 64 concurrent clients on 2 cores.
TARGET_RATE = {"backup": 200.0, "recovery": 300.0}
TARGET_P99_MS = 250.0
TARGET_RATIO = 0.5


class BenchError(RuntimeError):
    """A server did not start or stop, a command failed, or a phase hung."""


# -- processes --------------------------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` (or ``/proc/<pid>/task/<tid>/stat``: a thread's)
    after the command name (field 3 on)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def cpu_seconds(pids: Sequence[int | str]) -> float:
    """utime + stime (fields 14 and 15 of ``/proc/<pid>/stat``) summed over ``pids``."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, STOP_TIMEOUT_S)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything naming an HSM or a service setting (a server uses
    the embedded token of its data directory and the defaults), plus ``extra``."""
    drop = ("PKCS11_", "SOFTHSM2_", "PORTAL_", "PROMETHEUS_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, **extra}


def portal_core(*args: str) -> str:
    """``portal-core args``: its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "portal_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=GRACE_S,
        env=clean_env(),
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"portal-core {args[0]} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def parse_metrics(text: str) -> dict[str, float]:
    """From ``/metrics``: requests per endpoint (``http:<endpoint>``) and KMS calls per
    operation (``kms:<operation>``), summed over the workers and statuses."""
    wanted = {
        "portal_http_requests_total": ("http:", "endpoint"),
        "portal_kms_call_duration_seconds_count": ("kms:", "operation"),
    }
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, brace, rest = line.partition("{")
        if name not in wanted or not brace:
            continue
        labels, _, value = rest.rpartition("} ")
        prefix, label = wanted[name]
        found = dict(part.split("=", 1) for part in labels.split(","))
        key = prefix + found[label].strip('"')
        out[key] = out.get(key, 0.0) + float(value)
    return out


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    admin_key: str = field(repr=False)

    def cpu(self) -> float:
        """The CPU seconds of the server's processes (those alive now: the phase's)."""
        return cpu_seconds(process_tree(self.proc.pid))

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            return parse_metrics(r.read().decode())


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(base + "/healthz", timeout=1.0) as r:
                if r.status == 200:
                    return
        time.sleep(0.1)
    raise BenchError(f"/healthz did not answer within {START_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def running_server(
    data: Path, workers: int, *, profiled: bool = False, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``portal-core serve`` (``profiled``: with :func:`profiled_app` in each worker) on a
    free 127.0.0.1 port over ``data``, and a tenant made with ``portal-core tenants create``;
    stopped on exit. Its output goes to ``<data>.log``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(HERE / "service_load.py"), "--serve-profiled"]
    if not profiled:
        command = [sys.executable, "-m", "portal_core.cli"]
    command += ["serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    log_path = data.with_suffix(".log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or clean_env(),
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        wait_healthy(base, proc, log_path)
        made = json.loads(
            portal_core("tenants", "create", TENANT, "--data-dir", str(data), "--json")
        )
        yield Server(base, proc, made["admin_api_key"])
    finally:
        stop(proc)


# -- the simulated devices --------------------------------------------------------------------


class Device:
    """One client's device: a :class:`WalletClient` over ``api`` (an ``HttpCustodian``, or
    the custodian itself in-process), its CUSTOM key in memory."""

    def __init__(self, api: Any, client_id: str, api_key: str = "") -> None:
        from backup_helpers import DictStorage
        from portal_core.backup import MemoryDevice, WalletClient

        keys: dict[str, bytes] = {}
        self.api, self.api_key = api, api_key
        self.wallet = WalletClient(
            api,
            client_id,
            device=MemoryDevice(),
            storages={"CUSTOM": lambda slot: DictStorage(keys, slot)},
        )

    def prepare(self) -> None:
        """A wallet and a completed CUSTOM backup (what a recovery needs)."""
        self.wallet.create_wallet()
        self.wallet.backup_wallet("CUSTOM")

    def backup(self) -> None:
        self.wallet.backup_wallet("CUSTOM")

    def recovery(self) -> None:
        self.wallet.recover_wallet("CUSTOM")


def http_devices(server: Server, n: int) -> list[Device]:
    """``n`` clients of the tenant, each a device with a wallet and a completed backup."""
    from portal_core.client import HttpAdmin, HttpCustodian

    admin = HttpAdmin(server.base, server.admin_key)
    try:
        made = [admin.create_client_with_key() for _ in range(n)]
    finally:
        admin.close()
    devices = [
        Device(HttpCustodian(server.base, m.client_api_key), m.client_id, m.client_api_key)
        for m in made
    ]
    prepare(devices)
    return devices


def prepare(devices: Sequence[Device]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(Device.prepare, devices))


class LoopClient:
    """What :class:`~portal_core.client.http.Transport` needs of an httpx client
    (``request``, ``close``), served by an ``httpx.AsyncClient`` on a shared event loop: the
    calling thread waits for the loop to do its request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        import httpx

        from portal_core.client.http import DEFAULT_TIMEOUT_S

        async def make() -> httpx.AsyncClient:
            return httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_S)

        self.loop = loop
        self.client = asyncio.run_coroutine_threadsafe(make(), loop).result(GRACE_S)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        call = self.client.request(method, url, **kwargs)
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(GRACE_S)


@contextlib.contextmanager
def through_loop(devices: Sequence[Device]) -> Iterator[None]:
    """The devices' requests go through one event loop (a thread of its own) while inside."""
    from portal_core.client.http import Transport

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()
    saved = [d.api.transport for d in devices]
    clients = [LoopClient(loop) for _ in devices]
    try:
        for d, c in zip(devices, clients, strict=True):
            d.api.transport = Transport(saved[0].base_url, d.api_key, client=c)  # type: ignore[arg-type]
        yield
    finally:
        for d, old in zip(devices, saved, strict=True):
            d.api.transport = old
        for c in clients:
            c.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=GRACE_S)
        loop.close()


# -- one timed phase ----------------------------------------------------------------------------


@dataclass
class Phase:
    """One timed phase: ``flows`` done in ``seconds`` with their latencies; the CPU seconds
    of the server (None in-process) and of this process meanwhile; ``/metrics`` deltas."""

    flows: int
    seconds: float
    latencies: list[float] = field(repr=False)
    server_cpu: float | None
    generator_cpu: float
    errors: int
    counts: dict[str, float] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        """The latency below which a share ``q`` of the flows finished (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def summary(self) -> dict[str, Any]:
        n = max(self.flows, 1)
        return {
            "rate": self.flows / self.seconds if self.seconds > 0 else 0.0,
            "p50_ms": self.percentile(0.50) * 1e3,
            "p99_ms": self.percentile(0.99) * 1e3,
            "server_cpu_ms": None if self.server_cpu is None else self.server_cpu / n * 1e3,
            "generator_cpu_ms": self.generator_cpu / n * 1e3,
            "flows": self.flows,
            "errors": self.errors,
            "per_flow": {k: round(v / n, 2) for k, v in sorted(self.counts.items())},
        }


class _Clock:
    """The snapshots that open and close a timed phase."""

    def __init__(self, server: Server | None) -> None:
        self.server = server
        self.t0 = 0.0

    def start(self) -> None:
        s = self.server
        self.metrics = s.metrics() if s else {}
        self.server_cpu = s.cpu() if s else 0.0
        self.own = own_cpu_seconds()
        self.t0 = time.perf_counter()

    def phase(self, latencies: list[float], last_end: float, errors: int) -> Phase:
        own = own_cpu_seconds() - self.own
        s = self.server
        counts: dict[str, float] = {}
        if s is not None:
            after = s.metrics()
            counts = {k: v - self.metrics.get(k, 0.0) for k, v in after.items()}
            counts = {k: v for k, v in counts.items() if v and not k.endswith("metrics_text")}
        return Phase(
            flows=len(latencies) - errors,
            seconds=last_end - self.t0,
            latencies=latencies,
            server_cpu=None if s is None else s.cpu() - self.server_cpu,
            generator_cpu=own,
            errors=errors,
            counts=counts,
        )


def drive(
    jobs: Sequence[Callable[[], None]], duration: float, warmup: float, server: Server | None
) -> Phase:
    """Each job in a loop in a thread of its own: ``warmup`` seconds untimed, then the timed
    part (the threads start it together)."""
    clock = _Clock(server)
    latencies: list[list[float]] = [[] for _ in jobs]
    ends = [0.0] * len(jobs)
    errors: list[BaseException] = []
    crashed: list[BaseException] = []
    barrier = threading.Barrier(len(jobs), action=clock.start)

    def loop(i: int, job: Callable[[], None]) -> None:
        try:
            timed(i, job)
        except BaseException as e:  # a broken barrier, a failed snapshot: the phase is void
            crashed.append(e)
            barrier.abort()

    def timed(i: int, job: Callable[[], None]) -> None:
        warm_until = time.perf_counter() + warmup
        while time.perf_counter() < warm_until:
            try:
                job()
            except Exception as e:  # reported, not counted: the timed part has not begun
                print(f"  a warm-up flow failed: {e!r}", file=sys.stderr)
        barrier.wait(timeout=GRACE_S)
        deadline, t0 = clock.t0 + duration, time.perf_counter()
        while t0 < deadline:
            try:
                job()
            except Exception as e:
                errors.append(e)
            ends[i] = time.perf_counter()
            latencies[i].append(ends[i] - t0)
            t0 = ends[i]

    threads = [threading.Thread(target=loop, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warmup + duration + GRACE_S)
        if t.is_alive():
            raise BenchError("a load thread did not finish within its grace time")
    if crashed:
        raise BenchError(f"a load thread failed: {crashed[0]!r}")
    if errors:
        print(f"  {len(errors)} failed; the first: {errors[0]!r}", file=sys.stderr)
    return clock.phase([x for xs in latencies for x in xs], max(ends), len(errors))


def healthz_threads(server: Server, n: int, duration: float, warmup: float) -> Phase:
    """``GET /healthz`` in a loop from ``n`` threads, an ``httpx.Client`` each."""
    import httpx

    clients = [httpx.Client(base_url=server.base, timeout=10.0) for _ in range(n)]
    try:
        jobs = [lambda c=c: c.get("/healthz").raise_for_status() for c in clients]
        return drive(jobs, duration, warmup, server)
    finally:
        for c in clients:
            c.close()


def healthz_tasks(server: Server, n: int, duration: float, warmup: float) -> Phase:
    """``GET /healthz`` in a loop from ``n`` tasks on one event loop, an
    ``httpx.AsyncClient`` each."""
    import httpx

    clock = _Clock(server)

    async def run() -> Phase:
        clients = [httpx.AsyncClient(base_url=server.base, timeout=10.0) for _ in range(n)]
        latencies: list[float] = []
        ends = [0.0]
        errors: list[BaseException] = []
        arrived, go = asyncio.Semaphore(0), asyncio.Event()

        async def one(c: httpx.AsyncClient) -> None:
            warm_until = time.perf_counter() + warmup
            while time.perf_counter() < warm_until:
                (await c.get("/healthz")).raise_for_status()
            arrived.release()
            await go.wait()
            deadline, t0 = clock.t0 + duration, time.perf_counter()
            while t0 < deadline:
                try:
                    (await c.get("/healthz")).raise_for_status()
                except Exception as e:
                    errors.append(e)
                t1 = time.perf_counter()
                latencies.append(t1 - t0)
                ends[0] = max(ends[0], t1)
                t0 = t1

        try:
            tasks = [asyncio.create_task(one(c)) for c in clients]
            for _ in clients:
                await arrived.acquire()
            await asyncio.to_thread(clock.start)  # blocking snapshots off the loop
            go.set()
            await asyncio.wait_for(asyncio.gather(*tasks), warmup + duration + GRACE_S)
        finally:
            for c in clients:
                await c.aclose()
        return clock.phase(latencies, ends[0], len(errors))

    return asyncio.run(run())


def wrk_healthz(server: Server, n: int, duration: float) -> dict[str, Any] | None:
    """``wrk -t1 -cN`` on ``/healthz`` (None without wrk): requests per second, with the
    server's CPU per request."""
    if shutil.which("wrk") is None:
        return None
    sys.path.insert(0, str(HERE / "frameworks"))
    from run import parse_wrk  # benches/frameworks/run.py

    cpu0 = server.cpu()
    seconds = max(1, round(duration))
    cmd = ["wrk", "-t1", f"-c{n}", f"-d{seconds}s", server.base + "/healthz"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + GRACE_S, check=False
    )
    if done.returncode != 0:
        return None
    rps = parse_wrk(done.stdout)["rps"]
    return {"rate": rps, "server_cpu_ms": (server.cpu() - cpu0) / (rps * seconds) * 1e3}


# -- where the time goes: timers around the calls that matter -----------------------------------


class Timers:
    """Count, thread CPU and wall seconds per category, each call's own share only: time a
    timed call spends in another timed call (a KMS open inside the handler) is that one's."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # name -> [count, cpu, wall]
        self.threads: set[int] = set()  # the native ids of the threads that made timed calls
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        stack = self._local.__dict__.get("stack")
        if stack is None:
            stack = self._local.stack = []
            with self._lock:
                self.threads.add(threading.get_native_id())
        frame = [0.0, 0.0]  # the children's cpu and wall
        stack.append(frame)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
            stack.pop()
            if stack:
                stack[-1][0] += cpu
                stack[-1][1] += wall
            with self._lock:
                t = self.totals.setdefault(name, [0.0, 0.0, 0.0])
                t[0] += 1
                t[1] += cpu - frame[0]
                t[2] += wall - frame[1]

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        """Times every call of ``owner.attr`` (a function or a context manager's factory)."""
        inner = getattr(owner, attr)
        timers = self

        if attr == "transaction":

            @contextlib.contextmanager
            def managed(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with timers.timed(name), inner(*args, **kwargs) as value:
                    yield value

            setattr(owner, attr, managed)
            return

        def call(*args: Any, **kwargs: Any) -> Any:
            with timers.timed(name):
                return inner(*args, **kwargs)

        setattr(owner, attr, call)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            totals = {k: list(v) for k, v in self.totals.items()}
            return {"totals": totals, "threads": sorted(self.threads)}


def instrument(timers: Timers, *, server: bool) -> None:
    """Puts ``timers`` around the KMS's seals and opens, the store's transactions and reads,
    and (``server``) the API-key check and each request's work in its thread."""
    from portal_core.kms.pkcs11 import Pkcs11Kms
    from portal_core.store.database import SqliteDatabase

    timers.wrap(Pkcs11Kms, "seal", "KMS seal")
    timers.wrap(Pkcs11Kms, "open", "KMS open")
    timers.wrap(SqliteDatabase, "transaction", "SQLite write transaction (fsynced commit)")
    timers.wrap(SqliteDatabase, "query", "SQLite read")
    if server:
        from portal_core.server import routes
        from portal_core.tenants import Tenants

        timers.wrap(Tenants, "authenticate", "API-key check")
        timers.wrap(routes, "_invoke", "handler, the rest (custodian steps, shares, wire)")


PROFILE_DIR = "PORTAL_BENCH_PROFILE_DIR"
# Candidate changes to the store, tried in the profiled workers only (``--try NAME``), so a
# gain can be measured without editing the package: each is described in RESULTS-service.md.
PATCH = "PORTAL_BENCH_PATCH"
CPROFILE = "PORTAL_BENCH_CPROFILE"


def _writer_queue(*, across_processes: bool) -> None:
    """Writers queue on a lock before ``BEGIN IMMEDIATE`` instead of retrying in SQLite's
    busy handler, which sleeps 1 to 100 ms between tries whatever the holder does: this
    process's threads on a thread lock per database file, and (``across_processes``) the
    processes on ``flock`` of ``<db>.writers``, whose waiters the kernel wakes in turn."""
    import fcntl

    from portal_core.store.database import SqliteDatabase

    inner = SqliteDatabase.transaction
    locks: dict[str, tuple[threading.Lock, int]] = {}
    guard = threading.Lock()

    @contextlib.contextmanager
    def transaction(self: Any) -> Iterator[Any]:
        with guard:
            if self.path not in locks:
                fd = os.open(self.path + ".writers", os.O_RDWR | os.O_CREAT, 0o600)
                locks[self.path] = (threading.Lock(), fd)
            lock, fd = locks[self.path]
        with lock:
            if across_processes:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with inner(self) as conn:
                    yield conn
            finally:
                if across_processes:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    SqliteDatabase.transaction = transaction  # type: ignore[method-assign]


def _synchronous_normal(owner: Any, names: Sequence[str]) -> None:
    """``PRAGMA synchronous = NORMAL`` around ``owner``'s methods ``names``: their commits
    are not fsynced (made durable by the next FULL commit's fsync of the WAL)."""
    for name in names:
        inner = getattr(owner, name)

        def call(self: Any, *args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            conn = self._conn()
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                return _inner(self, *args, **kwargs)
            finally:
                conn.execute("PRAGMA synchronous = FULL")

        setattr(owner, name, call)


def apply_patches(names: str) -> None:
    """The candidate changes named (comma-separated): ``thread-queue`` and ``writer-queue``
    (:func:`_writer_queue` within a process, and across them too); ``bookkeeping-normal``
    (the idempotency keys' commits not fsynced); ``switch-interval`` (0.5 ms instead of
    5 ms: a thread that asks for the GIL, the event loop's after each socket write, gets
    it sooner); ``all-normal`` (no commit fsynced: a bound, not a candidate)."""
    from portal_core.store.database import SqliteDatabase
    from portal_core.store.request_sqlite import SqliteRequestTables

    for name in filter(None, names.split(",")):
        if name in ("thread-queue", "writer-queue"):
            _writer_queue(across_processes=name == "writer-queue")
        elif name == "bookkeeping-normal":
            idempotency = ("idempotency_begin", "idempotency_finish", "idempotency_forget")
            _synchronous_normal(SqliteRequestTables, idempotency)
        elif name == "switch-interval":  # the loop thread waits less for the GIL
            sys.setswitchinterval(0.0005)
        elif name == "all-normal":
            SqliteDatabase.pragmas = ("PRAGMA synchronous = NORMAL",)  # after FULL: wins
        else:
            raise BenchError(f"no such candidate change: {name!r}")


def profiled_app() -> Any:
    """The worker's app (``portal-core serve``'s factory) with the candidate changes of
    ``$PORTAL_BENCH_PATCH`` applied, :func:`instrument`'s timers (a thread writes their
    totals to ``$PORTAL_BENCH_PROFILE_DIR/<pid>.json`` every 0.1 s) and, with
    ``$PORTAL_BENCH_CPROFILE=1``, cProfile on the event loop (``<pid>.pstats``, written at
    the app's shutdown; it slows the loop down, hence a run of its own)."""
    from portal_core.server.runtime import app_from_settings_env

    apply_patches(os.environ.get(PATCH, ""))
    timers = Timers()
    instrument(timers, server=True)
    out = Path(os.environ[PROFILE_DIR]) / f"{os.getpid()}.json"

    def dump() -> None:
        while True:
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(timers.snapshot()))
            tmp.replace(out)
            time.sleep(0.1)

    threading.Thread(target=dump, name="bench-timers", daemon=True).start()
    app = app_from_settings_env()
    if os.environ.get(CPROFILE) != "1":
        return app
    save = profile_loop(out.with_suffix(".pstats"))
    inner = app.router.lifespan_context  # saved at shutdown: uvicorn ends by its signal

    @contextlib.asynccontextmanager
    async def lifespan(started: Any) -> Any:
        try:
            async with inner(started) as state:
                yield state
        finally:
            save()

    app.router.lifespan_context = lifespan
    return app


def profile_loop(out: Path) -> Callable[[], None]:
    """cProfile on this thread (the worker's event loop: HTTP parsing, routing, the
    middleware, bodies in and out); returns what writes its stats to ``out``."""
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()

    def save() -> None:
        profiler.disable()
        profiler.dump_stats(str(out))

    return save


def serve_profiled(argv: Sequence[str]) -> int:
    """``portal-core serve argv``, each worker running :func:`profiled_app`."""
    import uvicorn

    from portal_core import cli

    run = uvicorn.run

    def profiled_run(app: Any, **options: Any) -> None:
        run("service_load:profiled_app", app_dir=str(HERE), **options)

    uvicorn.run = profiled_run
    return cli.main(list(argv))


def read_timers(directory: Path) -> dict[str, list[float]]:
    """The workers' timer totals, summed, and their CPU seconds by thread (``/proc``): the
    event loop (the main thread), the request threads (those that made timed calls), all."""
    out: dict[str, list[float]] = {}
    for path in directory.glob("*.json"):
        pid, found = int(path.stem), json.loads(path.read_text())
        # The main thread timed calls too while the app was being built: it is the loop's.
        request = [f"{pid}/task/{tid}" for tid in found["threads"] if tid != pid]
        roles = {
            "cpu: event loop": [f"{pid}/task/{pid}"],
            "cpu: request threads": request,
            "cpu: process": [str(pid)],
        }
        cpu = {k: [0.0, cpu_seconds(v), 0.0] for k, v in roles.items()}
        for name, values in [*found["totals"].items(), *cpu.items()]:
            total = out.setdefault(name, [0.0, 0.0, 0.0])
            for i, v in enumerate(values):
                total[i] += v
    return out


# -- the experiments --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    clients: tuple[int, ...]
    workers: tuple[int, ...]
    grid_workers: int
    runs: int
    duration: float
    warmup: float

    @property
    def floor_duration(self) -> float:  # /healthz: many short requests, less time needed
        return max(1.0, self.duration / 2)


def record(
    kind: str, generator: str, workers: int | None, clients: int, flow: str, run: int, phase: Phase
) -> dict[str, Any]:
    return {
        "kind": kind,
        "generator": generator,
        "workers": workers,
        "clients": clients,
        "flow": flow,
        "run": run,
        **phase.summary(),
    }


def bench_http(tmp: Path, workers: int, plan: Plan) -> list[dict[str, Any]]:
    """One server of ``workers`` workers: the grid of concurrencies (only the largest
    unless ``workers`` is the grid's), and at the grid's count the other generators."""
    grid = workers == plan.grid_workers
    levels = plan.clients if grid else plan.clients[-1:]
    top = plan.clients[-1]
    out: list[dict[str, Any]] = []
    with running_server(tmp / f"service-{workers}w", workers) as server:
        devices = http_devices(server, top)
        try:
            for run in range(plan.runs):
                for n in levels:
                    for flow in FLOWS:
                        jobs = [getattr(d, flow) for d in devices[:n]]
                        phase = drive(jobs, plan.duration, plan.warmup, server)
                        out.append(record("http", "threads", workers, n, flow, run, phase))
                    phase = healthz_threads(server, n, plan.floor_duration, plan.warmup / 2)
                    out.append(record("floor", "threads", workers, n, "healthz", run, phase))
                if grid:
                    with through_loop(devices):
                        jobs = [d.backup for d in devices]
                        phase = drive(jobs, plan.duration, plan.warmup, server)
                    out.append(record("http", "asyncio", workers, top, "backup", run, phase))
                    phase = healthz_tasks(server, top, plan.floor_duration, plan.warmup / 2)
                    out.append(record("floor", "asyncio", workers, top, "healthz", run, phase))
                    found = wrk_healthz(server, top, plan.floor_duration)
                    if found is not None:
                        out.append(
                            {
                                "kind": "floor",
                                "generator": "wrk",
                                "workers": workers,
                                "clients": top,
                                "flow": "healthz",
                                "run": run,
                                **found,
                            }
                        )
                print(f"  {workers} worker(s): run {run + 1} of {plan.runs} done", file=sys.stderr)
        finally:
            for d in devices:
                d.api.close()
    return out


def bench_inproc(tmp: Path, plan: Plan) -> list[dict[str, Any]]:
    """The ceiling, in a child process (its own SoftHSM2 token; nothing else running)."""
    config = {**asdict(plan), "data": str(tmp / "inproc")}
    timeout = plan.runs * len(plan.clients) * 2 * (plan.duration + plan.warmup + GRACE_S)
    done = subprocess.run(
        [sys.executable, str(HERE / "service_load.py"), "--inproc-child", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"the in-process run failed ({done.returncode}): {done.stderr}")
    results: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return results


def inproc_child(config: dict[str, Any]) -> int:
    """``--inproc-child``: the flows of ``config`` (a :class:`Plan` and ``data``) over one
    LocalCustodian; prints the results as one JSON line."""
    from portal_core.server.config import Settings
    from portal_core.server.runtime import open_service

    plan = Plan(
        clients=tuple(config["clients"]),
        workers=tuple(config["workers"]),
        grid_workers=config["grid_workers"],
        runs=config["runs"],
        duration=config["duration"],
        warmup=config["warmup"],
    )
    service = open_service(Settings(data_dir=config["data"]))
    out = []
    try:
        custodian = service.custodian()
        devices = [Device(custodian, custodian.create_client()) for _ in range(plan.clients[-1])]
        prepare(devices)
        for run in range(plan.runs):
            for n in plan.clients:
                for flow in FLOWS:
                    phase = drive(
                        [getattr(d, flow) for d in devices[:n]], plan.duration, plan.warmup, None
                    )
                    out.append(record("inproc", "threads", None, n, flow, run, phase))
    finally:
        service.close()
    print(json.dumps(out))
    return 0


def bench_profile(tmp: Path, plan: Plan, tries: Sequence[str], *, cprofile: bool) -> dict[str, Any]:
    """The profiled service, once plain and once per candidate change in ``tries`` (all
    started first, their runs interleaved), at the largest concurrency; ``cprofile``: with
    cProfile on the event loops."""
    n = plan.clients[-1]
    variants = ["", *tries]
    out: dict[str, Any] = {"clients": n, "workers": plan.grid_workers, "variants": {}}
    with contextlib.ExitStack() as stack:
        servers = []
        for i, variant in enumerate(variants):
            timers = tmp / f"timers-{i}"
            timers.mkdir()
            env = clean_env(
                PORTAL_BENCH_PROFILE_DIR=str(timers),
                PORTAL_BENCH_PATCH=variant,
                PORTAL_BENCH_CPROFILE="1" if cprofile else "",
            )
            server = stack.enter_context(
                running_server(tmp / f"profiled-{i}", plan.grid_workers, profiled=True, env=env)
            )
            devices = http_devices(server, n)
            for d in devices:
                stack.callback(d.api.close)
            servers.append((variant, server, devices, timers))
        for run in range(plan.runs):
            for variant, server, devices, timers in servers:
                for flow in FLOWS:
                    jobs = [getattr(d, flow) for d in devices]
                    drive(jobs, plan.warmup, 0.0, None)  # untimed, then quiet for a snapshot
                    time.sleep(0.3)
                    before = read_timers(timers)
                    phase = drive(jobs, plan.duration, 0.0, server)
                    time.sleep(0.3)
                    after = read_timers(timers)
                    row = record("profile", "threads", plan.grid_workers, n, flow, run, phase)
                    row["timers"] = {
                        k: [
                            (v - before.get(k, [0.0] * 3)[i]) / max(phase.flows, 1)
                            for i, v in enumerate(vs)
                        ]
                        for k, vs in after.items()
                    }
                    out["variants"].setdefault(variant or "as is", []).append(row)
            print(f"  profile: run {run + 1} of {plan.runs} done", file=sys.stderr)
    out["loop"] = loop_profile(tmp / "timers-0")  # the servers have stopped: stats written
    return out


def loop_profile(directory: Path, top: int = 12) -> list[dict[str, Any]]:
    """The event loop's functions of most own time, over the plain server's whole life."""
    import pstats

    files = [str(p) for p in directory.glob("*.pstats")]
    if not files:
        return []
    stats = pstats.Stats(*files)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])
    idle = ("select", "poll", "run_once", "epoll")
    return [
        {
            "function": f"{Path(f).name}:{line}({name})",
            "calls": v[1],
            "own_s": v[2],
            "share": v[2] / total,
        }
        for (f, line, name), v in rows
        if not any(word in name for word in idle)
    ][:top]


# -- the report ---------------------------------------------------------------------------------


def _select(results: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in results if all(r.get(k) == v for k, v in match.items())]


def spread(values: Sequence[float | None], scale: float = 1.0) -> str:
    """``median (min-max)`` of the runs' values."""
    from report import number

    found = [v * scale for v in values if v is not None]
    if not found:
        return "-"
    median = str(number(statistics.median(found)))
    if len(found) == 1:
        return median
    return f"{median} ({number(min(found))}-{number(max(found))})"


def ratio_text(http: Sequence[float], local: Sequence[float]) -> str:
    """The ratio of the medians, and in brackets its range over the runs (the slowest HTTP
    run over the fastest in-process one to the reverse), as benches/report.py gives it."""
    if not http or not local or min(local) <= 0:
        return "-"
    ratio = statistics.median(http) / statistics.median(local)
    return f"{ratio:.2f}x ({min(http) / max(local):.2f}-{max(http) / min(local):.2f})"


def median_of(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    found = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(found) if found else None


def flow_lines(results: list[dict[str, Any]], plan: Plan) -> list[list[str]]:
    lines = []
    for flow in FLOWS:
        for n in plan.clients:
            http = _select(
                results,
                kind="http",
                generator="threads",
                workers=plan.grid_workers,
                clients=n,
                flow=flow,
            )
            local = _select(results, kind="inproc", clients=n, flow=flow)
            lines.append(
                [
                    flow,
                    str(n),
                    spread([r["rate"] for r in http]),
                    spread([r["p50_ms"] for r in http]),
                    spread([r["p99_ms"] for r in http]),
                    spread([r["server_cpu_ms"] for r in http]),
                    spread([r["generator_cpu_ms"] for r in http]),
                    spread([r["rate"] for r in local]),
                    spread([r["generator_cpu_ms"] for r in local]),
                    ratio_text([r["rate"] for r in http], [r["rate"] for r in local]),
                ]
            )
    return lines


FLOW_HEADER = [
    "flow",
    "clients",
    "HTTP flows/s",
    "p50 ms",
    "p99 ms",
    "server CPU ms/flow",
    "generator CPU ms/flow",
    "in-process flows/s",
    "in-process CPU ms/flow",
    "HTTP / in-process",
]


def floor_lines(results: list[dict[str, Any]], plan: Plan) -> list[list[str]]:
    lines = []
    for n in plan.clients:
        rows = _select(
            results, kind="floor", generator="threads", workers=plan.grid_workers, clients=n
        )
        lines.append(
            [
                str(n),
                "threads (httpx.Client)",
                spread([r["rate"] for r in rows]),
                spread([r["server_cpu_ms"] for r in rows], 1e3),
                spread([r["generator_cpu_ms"] for r in rows], 1e3),
            ]
        )
    top = plan.clients[-1]
    for generator, label in (("asyncio", "asyncio (httpx.AsyncClient)"), ("wrk", "wrk -t1")):
        rows = _select(results, kind="floor", generator=generator, clients=top)
        if rows:
            lines.append(
                [
                    str(top),
                    label,
                    spread([r["rate"] for r in rows]),
                    spread([r["server_cpu_ms"] for r in rows], 1e3),
                    spread([r.get("generator_cpu_ms") for r in rows], 1e3),
                ]
            )
    return lines


FLOOR_HEADER = [
    "clients",
    "generator",
    "/healthz req/s",
    "server CPU µs/req",
    "generator CPU µs/req",
]


def worker_lines(results: list[dict[str, Any]], plan: Plan) -> list[list[str]]:
    top, lines = plan.clients[-1], []
    for w in plan.workers:
        row = [str(w)]
        for flow in FLOWS:
            rows = _select(
                results, kind="http", generator="threads", workers=w, clients=top, flow=flow
            )
            row += [
                spread([r["rate"] for r in rows]),
                spread([r["p99_ms"] for r in rows]),
                spread([r["server_cpu_ms"] for r in rows]),
            ]
        floor = _select(results, kind="floor", generator="threads", workers=w, clients=top)
        lines.append([*row, spread([r["rate"] for r in floor])])
    return lines


WORKER_HEADER = [
    "workers",
    "backups/s",
    "p99 ms",
    "server CPU ms/backup",
    "recoveries/s",
    "p99 ms",
    "server CPU ms/recovery",
    "/healthz req/s",
]


def generator_lines(results: list[dict[str, Any]], plan: Plan) -> list[list[str]]:
    top, lines = plan.clients[-1], []
    for generator in ("threads", "asyncio"):
        flows = _select(
            results,
            kind="http",
            generator=generator,
            workers=plan.grid_workers,
            clients=top,
            flow="backup",
        )
        floor = _select(
            results, kind="floor", generator=generator, workers=plan.grid_workers, clients=top
        )
        lines.append(
            [
                generator,
                spread([r["rate"] for r in flows]),
                spread([r["generator_cpu_ms"] for r in flows]),
                spread([r["server_cpu_ms"] for r in flows]),
                spread([r["rate"] for r in floor]),
                spread([r["generator_cpu_ms"] for r in floor], 1e3),
            ]
        )
    return lines


GENERATOR_HEADER = [
    "generator",
    "backups/s",
    "generator CPU ms/backup",
    "server CPU ms/backup",
    "/healthz req/s",
    "generator CPU µs/req",
]


def request_lines(results: list[dict[str, Any]], plan: Plan) -> list[list[str]]:
    lines = []
    for flow in FLOWS:
        rows = _select(
            results, kind="http", generator="threads", workers=plan.grid_workers, flow=flow
        )
        keys = sorted({k for r in rows for k in r["per_flow"]})
        per = {k: statistics.median(r["per_flow"].get(k, 0.0) for r in rows) for k in keys}
        http = {k[5:]: v for k, v in per.items() if k.startswith("http:")}
        lines.append(
            [
                flow,
                f"{sum(http.values()):g}",
                ", ".join(f"{k} {v:g}" for k, v in http.items()),
                f"{per.get('kms:seal', 0):g}",
                f"{per.get('kms:open', 0):g}",
            ]
        )
    return lines


REQUEST_HEADER = ["flow", "HTTP requests", "by endpoint", "KMS seals", "KMS opens"]


def target_lines(results: list[dict[str, Any]], plan: Plan) -> list[str]:
    from report import number

    top, out = plan.clients[-1], []
    for flow in FLOWS:
        http = _select(
            results,
            kind="http",
            generator="threads",
            workers=plan.grid_workers,
            clients=top,
            flow=flow,
        )
        local = _select(results, kind="inproc", clients=top, flow=flow)
        rate, p99, ceiling = (
            median_of(http, "rate"),
            median_of(http, "p99_ms"),
            median_of(local, "rate"),
        )
        if rate is None or p99 is None:
            continue
        checks = [
            (
                f"{PLURAL[flow]}/s at {top} clients >= {TARGET_RATE[flow]:g}",
                rate,
                rate >= TARGET_RATE[flow],
                rate / TARGET_RATE[flow],
            ),
            (f"{flow} p99 <= {TARGET_P99_MS:g} ms", p99, p99 <= TARGET_P99_MS, TARGET_P99_MS / p99),
        ]
        if ceiling:
            ratio = rate / ceiling
            checks.append(
                (
                    f"{flow} HTTP / in-process >= {TARGET_RATIO:g}x",
                    ratio,
                    ratio >= TARGET_RATIO,
                    ratio / TARGET_RATIO,
                )
            )
        for text, value, met, share in checks:
            status = "met" if met else f"MISSED ({share:.0%} of target)"
            out.append(f"{text}: {number(value)}, {status}")
    return out


def breakdown(runs: Sequence[dict[str, Any]]) -> tuple[float, list[list[str]]]:
    """A profiled phase's server CPU per flow (ms, the workers') and its parts: each timed
    call's own thread CPU, then what the request threads, the event loop and the other
    threads spent besides (medians over ``runs``)."""
    from report import number

    def median(name: str, i: int) -> float:
        return float(statistics.median(r["timers"].get(name, [0.0] * 3)[i] for r in runs)) * 1e3

    process = median("cpu: process", 1)
    timed = sorted(k for r in runs for k in r["timers"] if not k.startswith("cpu: "))
    lines, in_calls = [], 0.0
    for name in dict.fromkeys(timed):
        cpu = median(name, 1)
        in_calls += cpu
        calls, wall = median(name, 0) / 1e3, median(name, 2)
        lines.append([name, number(calls), number(cpu), f"{cpu / process:.0%}", number(wall)])
    request, loop = median("cpu: request threads", 1), median("cpu: event loop", 1)
    for name, cpu in (
        ("request threads, outside those calls (thread pool hand-offs)", request - in_calls),
        ("event loop thread (HTTP, routing, middleware, JSON bodies)", loop),
        ("other threads (request log lines, timers' dump)", process - request - loop),
    ):
        lines.append([name, "-", number(cpu), f"{cpu / process:.0%}", "-"])
    return process, lines


def profile_text(profile: dict[str, Any], table: Callable[..., str]) -> str:
    from report import number

    parts = []
    rows = []
    for variant, runs in profile["variants"].items():
        for flow in FLOWS:
            mine = [r for r in runs if r["flow"] == flow]
            rows.append(
                [
                    variant,
                    flow,
                    spread([r["rate"] for r in mine]),
                    spread([r["p99_ms"] for r in mine]),
                    spread([r["server_cpu_ms"] for r in mine]),
                    spread([r["generator_cpu_ms"] for r in mine]),
                ]
            )
    on = "timers and cProfile" if profile.get("loop") else "timers"
    parts.append(
        f"profiled service ({profile['workers']} workers, {profile['clients']} clients; {on} "
        "on, so slower than the plain runs):"
    )
    parts.append(
        table(
            ["store", "flow", "flows/s", "p99 ms", "server CPU ms/flow", "generator CPU ms/flow"],
            rows,
            {2, 3, 4, 5},
        )
    )
    plain = profile["variants"]["as is"]
    for flow in FLOWS:
        mine = [r for r in plain if r["flow"] == flow]
        server, lines = breakdown(mine)
        http = sum(v for k, v in mine[0]["per_flow"].items() if k.startswith("http:"))
        parts.append(
            f"\nwhere the server's CPU goes per {flow} ({number(server)} ms in the workers, "
            f"{http:g} HTTP requests), medians over the runs:"
        )
        header = ["part", "calls/flow", "CPU ms/flow", "share of server CPU", "wall ms/flow"]
        parts.append(table(header, lines, {1, 2, 3, 4}))
    if profile.get("loop"):
        parts.append("\nthe event loop's functions of most own time (cProfile, whole run):")
        parts.append(
            table(
                ["function", "calls", "own s", "share of loop"],
                [
                    [r["function"], str(r["calls"]), number(r["own_s"]), f"{r['share']:.0%}"]
                    for r in profile["loop"]
                ],
                {1, 2, 3},
            )
        )
    return "\n".join(parts)


def print_report(
    results: list[dict[str, Any]], plan: Plan, markdown: bool, load: Sequence[float]
) -> None:
    from report import markdown_table, text_table

    table = markdown_table if markdown else text_table
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {plan.runs} runs of "
        f"{plan.duration:g} s per phase (after {plan.warmup:g} s untimed); median (min-max) "
        f"over the runs; load average at the end {load[0]:.1f}"
    )
    print(f"\nflows at {plan.grid_workers} workers (threads generator) and in-process:")
    print(table(FLOW_HEADER, flow_lines(results, plan), set(range(1, 10))))
    print("\nthe floor, GET /healthz of the same server:")
    print(table(FLOOR_HEADER, floor_lines(results, plan), {0, 2, 3, 4}))
    print(f"\nworker processes, at {plan.clients[-1]} clients:")
    print(table(WORKER_HEADER, worker_lines(results, plan), set(range(8))))
    print(f"\nthe load generator, at {plan.clients[-1]} clients:")
    print(table(GENERATOR_HEADER, generator_lines(results, plan), set(range(1, 6))))
    print("\nper flow, from /metrics (medians):")
    print(table(REQUEST_HEADER, request_lines(results, plan), {1, 3, 4}))
    print()
    for line in target_lines(results, plan):
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0, help="timed seconds per phase")
    ap.add_argument("--warmup", type=float, default=0.5, help="untimed seconds per phase")
    ap.add_argument("--clients", default="1,16,64", help="concurrencies, ascending")
    ap.add_argument("--workers", default="1,2,3", help="worker counts to try")
    ap.add_argument("--grid-workers", type=int, default=2, help="the count the grid runs at")
    ap.add_argument("--profile", action="store_true", help="where the time goes (see above)")
    ap.add_argument(
        "--try",
        dest="tries",
        default="",
        help="with --profile: candidate changes "
        "(thread-queue, writer-queue, bookkeeping-normal, switch-interval, all-normal; "
        "+ joins two)",
    )
    ap.add_argument(
        "--cprofile",
        action="store_true",
        help="with --profile: cProfile on the event loops too (which slows them down)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args(argv)
    plan = Plan(
        clients=tuple(sorted(int(c) for c in args.clients.split(","))),
        workers=tuple(int(w) for w in args.workers.split(",")),
        grid_workers=args.grid_workers,
        runs=args.runs,
        duration=args.duration,
        warmup=args.warmup,
    )
    with tempfile.TemporaryDirectory(prefix="portal-service-bench-") as name:
        tmp = Path(name)
        if args.profile:
            tries = [t.replace("+", ",") for t in args.tries.split(",") if t]
            profile = bench_profile(tmp, plan, tries, cprofile=args.cprofile)
            from report import markdown_table, text_table

            print(profile_text(profile, markdown_table if args.markdown else text_table))
            results: Any = profile
        else:
            workers = sorted(set(plan.workers) | {plan.grid_workers})
            results = [r for w in workers for r in bench_http(tmp, w, plan)]
            results += bench_inproc(tmp, plan)
            load = os.getloadavg()  # other work on the machine skews every figure
            print_report(results, plan, args.markdown, load)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"plan": asdict(plan), "load_average": os.getloadavg(), "results": results}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-profiled"]:
        sys.exit(serve_profiled(sys.argv[2:]))
    if sys.argv[1:2] == ["--inproc-child"]:
        sys.exit(inproc_child(json.loads(sys.argv[2])))
    sys.exit(main())
