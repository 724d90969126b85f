"""Structured logs: one JSON object per line, one line per request.

A request's line holds its id, method, path (never the query string), status, duration and
the client's address; never a header value other than the request id, never a body. The
request id is the caller's ``X-Request-Id`` when it is well formed (1 to 128 characters of
``A-Z a-z 0-9 . _ : -``, starting with a letter or digit), a fresh one otherwise; the
response echoes it in ``X-Request-Id``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = [
    "LOGGER_NAME",
    "JsonFormatter",
    "configure_logging",
    "new_request_id",
    "valid_request_id",
]

LOGGER_NAME = "portal_core.server"

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

# The attributes every LogRecord has: anything else was passed in ``extra=`` and is logged.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def valid_request_id(value: str | None) -> bool:
    """Whether a caller's request id is one to keep (see the module's note)."""
    return value is not None and _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh request id: 128 random bits in hex."""
    return secrets.token_hex(16)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
    ``msg``, the fields passed in ``extra=``, and ``exc_type`` / ``exc`` (the traceback)
    when the record carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Sends the server's logs (logger ``portal_core.server``) to ``stream`` (stderr by
    default) as JSON lines. Idempotent: a second call replaces the handler it added."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_portal_core_json", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._portal_core_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
