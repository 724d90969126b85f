"""PostgreSQL for the tests: the server ``PORTAL_PG_DSN`` names, or a throwaway cluster of
this test session, and the store backends the store contract tests run on.

``pg_dsn`` (session fixture): a DSN of a maintenance database on a server where the tests
may ``CREATE DATABASE``. With ``PORTAL_PG_DSN`` set, that server. Otherwise a cluster made
here: ``pg/setup.sh`` finds the server programs (installing Debian's package when run as
root), ``initdb`` makes a cluster in a temporary directory (owned by the ``postgres`` user
when run as root: initdb refuses root), ``pg_ctl`` starts it on a unix socket in that
directory and on a free 127.0.0.1 port, and stops it at the end of the session even when
tests fail (the fixture's finalizer, and an ``atexit`` backstop); the directory is then
removed. Durability is off (``fsync=off``): the cluster is thrown away. Without
PostgreSQL the tests that need it skip, saying why, or fail when ``CI=true``.

Each test gets databases of its own (:func:`fresh_database`): copies of a template, either
empty or migrated to the current schemas once per session (``CREATE DATABASE ...
TEMPLATE``: tens of milliseconds, against about a hundred and fifty to migrate), dropped
when the test ends.

``backend`` / ``new_backend`` (fixtures parametrised ``sqlite``, ``postgresql``): a
:class:`Backend` opening the stores under test on a database of the test's own, migrated
(``backend``; for SQLite a new file either way) or empty (``new_backend``, for the
migration tests); :func:`race` runs calls on it from threads released at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlencode

import pytest

if TYPE_CHECKING:
    from portal_core.enclave import SqliteEnclaveStore
    from portal_core.store import SqliteStore
    from portal_core.store.postgres import PostgresEnclaveStore, PostgresStore

ROOT = Path(__file__).resolve().parent.parent
DSN_VARIABLE = "PORTAL_PG_DSN"
WAIT_S = 30  # every wait on the server's programs, in seconds
_STARTS = 3  # a free port can be taken by another process before the server binds it
# Server settings of the throwaway cluster: nothing of it survives the run, so nothing is
# synced; enough connections for several services' pools at once.
_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300")


class Unavailable(Exception):
    """No PostgreSQL for the tests; the message says why and what to do."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> Path:
    """Where initdb and pg_ctl are (``pg/setup.sh`` installs them first as root)."""
    try:
        found = subprocess.run(
            ["bash", str(ROOT / "pg" / "setup.sh")],
            capture_output=True,
            text=True,
            timeout=600,  # an apt-get install on a fresh machine
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable("pg/setup.sh did not finish within 600 s") from None
    if found.returncode != 0:
        raise Unavailable(f"no PostgreSQL server programs: {found.stderr.strip()}")
    return Path(found.stdout.strip().splitlines()[-1])


@dataclass
class Cluster:
    """A throwaway cluster: ``start()`` makes and starts it, ``stop()`` stops it and removes
    its directory (safe to call twice, and from ``atexit``)."""

    bindir: Path
    root: Path = field(init=False)
    port: int = 0
    _user: str | None = field(default=None, init=False)

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def dsn(self) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # As root, the server's programs run as the postgres user (initdb refuses root).
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=WAIT_S + 10,
            stdin=subprocess.DEVNULL,
            user=self._user,
            cwd=self.root,
        )

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "pg.log").read_text(errors="replace")[-2000:]
        return ""

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="portal-pg-"))
        _running.append(self)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable(
                    "running as root, and there is no postgres user to run the server as"
                ) from None
            self._user = "postgres"
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        (self.root / "sock").mkdir()
        if self._user is not None:
            shutil.chown(self.root / "sock", self._user, self._user)
        made = self._run(
            "initdb", "-D", "data", "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        if made.returncode != 0:
            raise Unavailable(f"initdb failed: {made.stderr.strip()[-2000:]}")
        options = " ".join(f"-c {s}" for s in _SETTINGS)
        for _ in range(_STARTS):
            self.port = _free_port()
            started = self._run(
                "pg_ctl", "-D", "data", "-l", "pg.log", "-w", "-t", str(WAIT_S), "-o",
                f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1 {options}",
                "start",
            )  # fmt: skip
            if started.returncode == 0:
                return
        raise Unavailable(f"the throwaway cluster did not start: {self._log()}")

    def stop(self) -> None:
        if self not in _running:
            return
        _running.remove(self)
        if (self.root / "data" / "postmaster.pid").exists():
            stopped = self._run(
                "pg_ctl", "-D", "data", "-m", "fast", "-w", "-t", str(WAIT_S), "stop"
            )
            if stopped.returncode != 0:
                self._run(
                    "pg_ctl", "-D", "data", "-m", "immediate", "-w", "-t", str(WAIT_S), "stop"
                )
        shutil.rmtree(self.root, ignore_errors=True)


# Clusters started and not yet stopped: the atexit backstop stops them (a session that
# ends without running its finalizers, an interrupt).
_running: list[Cluster] = []


@atexit.register
def _stop_all() -> None:
    for cluster in list(_running):
        cluster.stop()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A maintenance database's DSN on a server where tests may create databases."""
    try:
        import psycopg
    except ImportError as e:
        _unavailable(f"{e} (pip install -r requirements-dev.txt)")
    given = os.environ.get(DSN_VARIABLE)
    if given:
        try:
            psycopg.connect(given, connect_timeout=WAIT_S).close()
        except psycopg.Error as e:
            _unavailable(f"{DSN_VARIABLE} names a server that refuses: {e}")
        yield given
        return
    try:
        cluster = Cluster(_bindir())
    except Unavailable as e:
        _unavailable(str(e))
    try:
        cluster.start()
    except Unavailable as e:
        cluster.stop()
        _unavailable(str(e))
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


# -- databases -------------------------------------------------------------------------------


def database_dsn(admin_dsn: str, name: str) -> str:
    """The DSN of database ``name`` on ``admin_dsn``'s server."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(admin_dsn, dbname=name)


def as_url(dsn: str) -> str:
    """``dsn`` as a ``postgresql://`` URL (what ``portal-core serve --store`` takes)."""
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    user, password = params.pop("user", ""), params.pop("password", "")
    dbname, host, port = params.pop("dbname", ""), params.pop("host", ""), params.pop("port", "")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    if host.startswith("/"):  # a socket directory goes in the query, with its port
        params.update({"host": host, **({"port": port} if port else {})})
        host = port = ""
    netloc = (auth + "@" if auth else "") + host + (":" + port if port else "")
    query = "?" + urlencode(params) if params else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{query}"


_templates: dict[str, str] = {}


def _execute(admin_dsn: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=WAIT_S) as conn:
        conn.execute(sql)


def _migrated_template(admin_dsn: str) -> str:
    """A database at the current schemas (custodian and enclave), made once per session."""
    if admin_dsn not in _templates:
        from portal_core.store.postgres import PostgresEnclaveStore, PostgresStore

        name = f"portal_template_{uuid.uuid4().hex[:12]}"
        _execute(admin_dsn, f"CREATE DATABASE {name} TEMPLATE template0")
        atexit.register(_drop, admin_dsn, name)  # for a server the session does not own
        dsn = database_dsn(admin_dsn, name)
        PostgresStore(dsn, pool_size=1).close()
        PostgresEnclaveStore(dsn, pool_size=1).close()
        _templates[admin_dsn] = name
    return _templates[admin_dsn]


def _drop(admin_dsn: str, name: str) -> None:
    with contextlib.suppress(Exception):  # the cluster may be gone already
        _execute(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def fresh_database(admin_dsn: str, *, migrated: bool = True) -> Iterator[str]:
    """A new database of its own (a copy of the migrated template, or empty), its DSN;
    dropped on exit, whatever connections are left to it."""
    name = f"portal_test_{uuid.uuid4().hex[:12]}"
    template = _migrated_template(admin_dsn) if migrated else "template0"
    _execute(admin_dsn, f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield database_dsn(admin_dsn, name)
    finally:
        _drop(admin_dsn, name)


# -- the store backends ----------------------------------------------------------------------

# What each engine's message says when a constraint refuses a row.
_VIOLATIONS = {
    "sqlite": {
        "unique": "UNIQUE constraint failed",
        "foreign key": "FOREIGN KEY constraint failed",
        "check": "CHECK constraint failed",
    },
    "postgresql": {
        "unique": "violates unique constraint",
        "foreign key": "violates foreign key constraint",
        "check": "violates check constraint",
    },
}


@dataclass
class Backend:
    """The stores of one engine on one database of the test's own. ``location``: the
    SQLite file, or the PostgreSQL DSN."""

    name: str
    location: str

    @property
    def migrations(self) -> tuple[Any, ...]:
        if self.name == "sqlite":
            from portal_core.store import MIGRATIONS
        else:
            from portal_core.store.postgres.migrations import MIGRATIONS
        return MIGRATIONS

    @property
    def enclave_migrations(self) -> tuple[Any, ...]:
        if self.name == "sqlite":
            from portal_core.store.enclave_migrations import ENCLAVE_MIGRATIONS
        else:
            from portal_core.store.postgres.migrations import ENCLAVE_MIGRATIONS
        return ENCLAVE_MIGRATIONS

    def custodian(self, **options: Any) -> SqliteStore | PostgresStore:
        """A custodian store (``checkpoint=``, ``migrations=``, ...) on the database."""
        if self.name == "sqlite":
            from portal_core.store import SqliteStore

            return SqliteStore(self.location, **options)
        from portal_core.store.postgres import PostgresStore

        return PostgresStore(self.location, **options)

    def enclave(self, **options: Any) -> SqliteEnclaveStore | PostgresEnclaveStore:
        """An enclave store on the same database."""
        if self.name == "sqlite":
            from portal_core.enclave import SqliteEnclaveStore

            return SqliteEnclaveStore(self.location, **options)
        from portal_core.store.postgres import PostgresEnclaveStore

        return PostgresEnclaveStore(self.location, **options)

    def violation(self, kind: str) -> str:
        """The text of this engine's message when a ``kind`` constraint refuses a row."""
        return _VIOLATIONS[self.name][kind]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Runs one statement on its own connection, committed (``?`` placeholders on
        both engines); its rows."""
        if self.name == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.location)) as conn, conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as pg:
            cur = pg.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def tables(self) -> set[str]:
        if self.name == "sqlite":
            rows = self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        return {r[0] for r in rows if not str(r[0]).startswith("sqlite_")}

    def columns(self, table: str) -> set[str]:
        if self.name == "sqlite":
            return {r[1] for r in self.execute(f"PRAGMA table_info({table})")}
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", (table,)
        )
        return {r[0] for r in rows}


def _backend(
    request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "custodian.db"))
        return
    admin = request.getfixturevalue("pg_dsn")
    with fresh_database(admin, migrated=migrated) as dsn:
        yield Backend("postgresql", dsn)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The stores of each engine, on a database of the test's own at the current schemas."""
    yield from _backend(request, tmp_path, migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """As ``backend``, on an empty database: the first store opened makes the schema."""
    yield from _backend(request, tmp_path, migrated=False)


def race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs ``work(i)`` in ``count`` threads released at once; their results (or the
    exceptions they raised), in thread order."""
    barrier = threading.Barrier(count, timeout=WAIT_S)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # returned, for the test to look at
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
        assert not t.is_alive(), "a thread is stuck"
    return results
