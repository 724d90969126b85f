"""The reference receiver of the custodian's webhooks (self-managed mode): a small ASGI app
an integrator can run as it is, or read as the protocol in code (``docs/webhooks.md``).

    export PORTAL_WEBHOOK_SECRET=...   # portal_core.webhooks.new_secret()
    python -m portal_core.server.receiver --host 127.0.0.1 --port 8400 --db receiver.db

Each request, in order:

1. **Checked** (:func:`portal_core.webhooks.verify`), before its body is parsed: the
   ``X-Webhook-Secret`` header, the timestamp within 300 s of this clock, the signature over
   the exact body, each compared in constant time. Refused: ``401``.
2. **Not a replay.** The signature is recorded in the database until it ages out of the
   window; one seen before is refused (``401``), also by another worker on the same file.
3. **Parsed**: a JSON object with ``clientId``, ``backupMethod``, ``pairId`` (and ``share``
   for a store), else ``400``.
4. **Served**: ``/backup`` stores the share under (client, method, pair), replacing one of
   the same key (``204``); ``/backup/fetch`` answers ``{"share": ...}``, or ``404`` with code
   ``NO_VALID_BACKUP``; ``/backup/delete`` removes it, if there is one (``204``).

The shares arrive sealed under the custodian's KMS: this receiver can neither open nor check
them, and needs not; the custodian opens and checks each one it reads back. They are kept in
a SQLite file made mode 0600 (:class:`~portal_core.store.database.SqliteDatabase`).

The secret is read from the environment variable ``PORTAL_WEBHOOK_SECRET``, never from the
command line: a command line is readable by every user of the machine (``ps``,
``/proc/<pid>/cmdline``) and is kept in shell histories and process accounting, whereas a
process's environment is readable only by its own user.

The app also serves the plumbing of :func:`~portal_core.server.create_app` (``/healthz``,
``/readyz``, JSON request logs, a body cap, problem documents).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portal_core.server.app import checks, create_app, request_id, run_blocking
from portal_core.server.logs import LOGGER_NAME, configure_logging
from portal_core.server.problems import PROBLEM_MEDIA_TYPE, ProblemError, dumps, problem_body
from portal_core.server.wire import JsonResponse, bytes_field, read_json
from portal_core.store import Migration, StoreError
from portal_core.store.database import SqliteDatabase
from portal_core.webhooks import (
    DEFAULT_WINDOW_S,
    PATHS,
    WebhookSignatureInvalid,
    check_secret,
    verify,
)
from portal_core.wire import b64url_encode

__all__ = ["SECRET_ENV", "ReceiverStore", "create_receiver_app", "main"]

SECRET_ENV = "PORTAL_WEBHOOK_SECRET"  # noqa: S105 - the name of the variable, not a secret
_MAX_ID_CHARS = 200
_MAX_SHARE_BYTES = 64 * 1024
_KEY_FIELDS = ("clientId", "backupMethod", "pairId")

log = logging.getLogger(f"{LOGGER_NAME}.receiver")

_MIGRATIONS = (
    Migration(
        1,
        "shares by client, method and pair; the signatures seen inside the replay window",
        (
            """CREATE TABLE shares (
                client_id      TEXT NOT NULL,
                backup_method  TEXT NOT NULL,
                pair_id        TEXT NOT NULL,
                share          BLOB NOT NULL,
                stored_at      REAL NOT NULL,
                PRIMARY KEY (client_id, backup_method, pair_id)
            ) STRICT""",
            # expires_at: the request's timestamp plus the window; after it, verify() refuses
            # the request as stale anyway, so the row can go.
            """CREATE TABLE seen_signatures (
                signature   TEXT PRIMARY KEY,
                expires_at  REAL NOT NULL
            ) STRICT""",
            "CREATE INDEX seen_signatures_expiry ON seen_signatures (expires_at)",
        ),
    ),
)

Key = tuple[str, str, str]


class ReceiverStore(SqliteDatabase):
    """The receiver's SQLite file: the shares, and the signatures seen."""

    what = "webhook receiver database"
    version_table = "receiver_schema_version"
    error = StoreError

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        super().__init__(path, timeout=timeout, migrations=_MIGRATIONS)

    def first_sight(self, signature: str, expires_at: float, now: float) -> bool:
        """Records ``signature`` until ``expires_at``; False if it was recorded already (a
        replay). Forgets the signatures that have aged out."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM seen_signatures WHERE expires_at < ?", (now,))
            cur = conn.execute(
                "INSERT OR IGNORE INTO seen_signatures (signature, expires_at) VALUES (?, ?)",
                (signature, expires_at),
            )
            return cur.rowcount == 1

    def put(self, key: Key, share: bytes, now: float) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO shares "
                "(client_id, backup_method, pair_id, share, stored_at) VALUES (?, ?, ?, ?, ?)",
                (*key, share, now),
            )

    def get(self, key: Key) -> bytes | None:
        row = self.query_one(
            "SELECT share FROM shares WHERE client_id = ? AND backup_method = ? AND pair_id = ?",
            key,
        )
        return None if row is None else bytes(row["share"])

    def remove(self, key: Key) -> None:
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM shares WHERE client_id = ? AND backup_method = ? AND pair_id = ?",
                key,
            )


def _problem(status: int, code: str, detail: str, request: Request) -> Response:
    body = problem_body(status, code, detail, request_id(request))
    return Response(dumps(body), status, media_type=PROBLEM_MEDIA_TYPE)


def _key(body: Mapping[str, Any]) -> Key:
    values = []
    for name in _KEY_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ID_CHARS:
            raise ProblemError(
                "INVALID_REQUEST", f"field {name!r} must be a string of 1 to {_MAX_ID_CHARS} chars"
            )
        values.append(value)
    return values[0], values[1], values[2]


def create_receiver_app(
    secret: str,
    db_path: str | os.PathLike[str],
    *,
    window_s: float = DEFAULT_WINDOW_S,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The receiver's ASGI app over the SQLite file ``db_path`` (created 0600 if missing).

    ``secret``: the webhook secret the custodian was configured with for this integrator.
    ``window_s``: how far a request's timestamp may be from ``clock`` (seconds since the
    epoch), and how long its signature is remembered.

    Raises:
        ValueError: ``secret`` is not a usable secret (the message does not quote it).
        StoreError: the database cannot be opened.
    """
    check_secret(secret)
    store = ReceiverStore(db_path)

    def handler(
        serve: Callable[[Request, Key, Mapping[str, Any]], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            now = clock()
            try:
                verified = verify(secret, request.headers, raw, now=now, window_s=window_s)
                expires = verified.timestamp + window_s
                if not await run_blocking(
                    request, store.first_sight, verified.signature, expires, now
                ):
                    raise WebhookSignatureInvalid("this signature was seen already: a replay")
            except WebhookSignatureInvalid as e:
                log.warning("webhook refused: %s", e, extra={"request_id": request_id(request)})
                return _problem(401, "WEBHOOK_SIGNATURE_INVALID", str(e), request)
            body = await read_json(request)
            key = _key(body)
            response = await serve(request, key, body)
            log.info(
                "%s %s pair %s",
                request.url.path,
                key[1],
                key[2],
                extra={"request_id": request_id(request)},
            )
            return response

        return endpoint

    async def store_share(request: Request, key: Key, body: Mapping[str, Any]) -> Response:
        share = bytes_field(body, "share", max_bytes=_MAX_SHARE_BYTES)
        await run_blocking(request, store.put, key, share, clock())
        return Response(status_code=204)

    async def fetch_share(request: Request, key: Key, body: Mapping[str, Any]) -> Response:
        share = await run_blocking(request, store.get, key)
        if share is None:
            return _problem(404, "NO_VALID_BACKUP", "no share is stored for that pair", request)
        return JsonResponse({"share": b64url_encode(share)})

    async def delete_share(request: Request, key: Key, body: Mapping[str, Any]) -> Response:
        await run_blocking(request, store.remove, key)
        return Response(status_code=204)

    serves = {"store": store_share, "fetch": fetch_share, "delete": delete_share}
    routes = [
        Route(PATHS[name], handler(serve), methods=["POST"]) for name, serve in serves.items()
    ]
    return create_app(routes=routes, readiness=checks(store=lambda: store.schema_version))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m portal_core.server.receiver``: serves the receiver with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="python -m portal_core.server.receiver",
        description=(
            "The reference receiver of the custodian's webhooks (self-managed mode). The "
            f"secret is read from the environment variable {SECRET_ENV}."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8400, help="port to listen on")
    parser.add_argument("--db", required=True, help="the SQLite file of the shares")
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_ENV, "")
    try:
        app = create_receiver_app(secret, args.db)
    except ValueError as e:
        print(f"{SECRET_ENV}: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(e, file=sys.stderr)
        return 2
    import uvicorn

    configure_logging()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
