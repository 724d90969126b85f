"""Structured logs: one JSON object per line, one line per request.

A request's line holds its id, method, path (never the query string), status, duration and
the client's address; never a header value other than the request id, never a body. The
request id is the caller's ``X-Request-Id`` when it is well formed (1 to 128 characters of
``A-Z a-z 0-9 . _ : -``, starting with a letter or digit), a fresh one otherwise; the
response echoes it in ``X-Request-Id``.

Off the event loop: while the app runs (its lifespan), :class:`LogThread` moves the
logger's handlers to a :class:`logging.handlers.QueueListener` thread and puts a
:class:`PlainQueueHandler` in their place. The loop's thread only makes the record and puts
a dict of its plain fields (strings, numbers, booleans, ``None``) on the queue: never the
``args``, an exception object or its traceback (whose frames hold the request's headers and
body); a traceback travels as text (``exc``). The thread formats and writes.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import re
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO, Any, ClassVar

__all__ = [
    "LOGGER_NAME",
    "JsonFormatter",
    "LogThread",
    "PlainQueueHandler",
    "configure_logging",
    "log_fields",
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

    def __init__(self) -> None:
        super().__init__()
        self._encoder = json.JSONEncoder(default=str, separators=(",", ":"))
        self._second = -1
        self._second_text = ""

    def _ts(self, created: float) -> str:
        # As datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"), with the
        # date and time to the second (which change once a second) reused.
        second, micros = divmod(round(created * 1_000_000), 1_000_000)
        if second != self._second:
            text = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")
            self._second, self._second_text = second, text[: -len("+00:00")]
        return f"{self._second_text}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._ts(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key[0] != "_":
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        return self._encoder.encode(out)


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


_PLAIN = (str, int, float, bool, type(None))
_START: float = getattr(logging, "_startTime", time.time())
_FORMATTER = logging.Formatter()  # for tracebacks only


def plain_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields as a dict of plain values, for the queue: the message merged
    with its arguments, ``exc_type`` and ``exc`` (the traceback's text) for an exception,
    other values as they are when plain, as ``str(value)`` otherwise."""
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in ("msg", "args", "exc_info", "exc_text", "stack_info", "message"):
            continue
        out[key] = value if type(value) in _PLAIN else str(value)
    out["msg"] = record.getMessage()
    if record.exc_info and record.exc_info[0] is not None:
        out["exc_type"] = record.exc_info[0].__name__
        out["exc"] = out["exc_text"] = _FORMATTER.formatException(record.exc_info)
    if record.stack_info:
        out["stack"] = str(record.stack_info)
    return out


class PlainQueueHandler(logging.handlers.QueueHandler):
    """Puts :func:`plain_fields` of each record on the queue (see the module's note)."""

    def put_fields(self, fields: dict[str, Any]) -> None:
        """Queues fields that are plain already (:func:`log_fields`)."""
        self.queue.put_nowait(fields)

    def prepare(self, record: logging.LogRecord) -> Any:
        return plain_fields(record)


class _Listener(logging.handlers.QueueListener):
    """Rebuilds each record from its plain fields, in the listener's thread: the fields of
    a default record (process, thread...), then the queued ones over them."""

    def __init__(self, q: queue.SimpleQueue[Any], *handlers: logging.Handler) -> None:
        super().__init__(q, *handlers, respect_handler_level=True)
        self._defaults = dict(logging.makeLogRecord({}).__dict__)

    def prepare(self, record: Any) -> logging.LogRecord:
        fields: dict[str, Any] = record
        out = logging.LogRecord.__new__(logging.LogRecord)
        out.__dict__.update(self._defaults)
        out.__dict__.update(fields)
        if "relativeCreated" not in fields:
            out.relativeCreated = (out.created - _START) * 1000
        return out


_Running = tuple[int, PlainQueueHandler, _Listener, list[logging.Handler]]


class LogThread:
    """Formats and writes a logger's records in a thread of their own while started.

    :meth:`start` moves the logger's handlers to a :class:`~logging.handlers.QueueListener`
    thread (named ``portal-core-log``) and puts a :class:`PlainQueueHandler` in their place;
    :meth:`stop` puts them back, then lets the thread write what is queued (at most
    ``timeout_s`` seconds) and end. Counted: several apps may share a logger; the thread runs
    from the first start to the last stop. A logger without handlers is left alone.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _active: ClassVar[dict[str, _Running]] = {}

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def start(self) -> None:
        name = self.logger.name
        with self._lock:
            if name in self._active:
                count, front, listener, handlers = self._active[name]
                self._active[name] = (count + 1, front, listener, handlers)
                return
            handlers = list(self.logger.handlers)
            if not handlers:
                return
            q: queue.SimpleQueue[Any] = queue.SimpleQueue()
            front = PlainQueueHandler(q)
            listener = _Listener(q, *handlers)
            listener.start()
            assert listener._thread is not None
            listener._thread.name = "portal-core-log"
            for h in handlers:
                self.logger.removeHandler(h)
            self.logger.addHandler(front)
            self._active[name] = (1, front, listener, handlers)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Whether the thread (if this was the last start) ended within ``timeout_s``."""
        name = self.logger.name
        with self._lock:
            if name not in self._active:
                return True
            count, front, listener, handlers = self._active[name]
            if count > 1:
                self._active[name] = (count - 1, front, listener, handlers)
                return True
            del self._active[name]
            self.logger.removeHandler(front)
            for h in handlers:
                self.logger.addHandler(h)
        thread = listener._thread
        if thread is None:
            return True
        listener.enqueue_sentinel()
        thread.join(timeout_s)
        listener._thread = None
        return not thread.is_alive()

    @classmethod
    def queue_for(cls, logger: logging.Logger) -> PlainQueueHandler | None:
        """The handler that queues ``logger``'s records while a thread writes them."""
        entry = cls._active.get(logger.name)  # a dict read: atomic, no lock on the hot path
        return entry[1] if entry is not None else None


def log_fields(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """``logger.log(level, msg, extra=fields)`` for plain ``fields``, cheaper on the caller's
    thread when a :class:`LogThread` runs for ``logger`` and it has no filters of its own:
    then no record is made here, the plain fields go on the queue as they are and the
    thread makes the record (so its ``funcName``, ``lineno`` and thread are not the
    caller's; the JSON line does not show them)."""
    front = LogThread.queue_for(logger)
    if front is None or logger.filters or front.filters:
        logger.log(level, msg, extra=fields)
        return
    if not logger.isEnabledFor(level):
        return
    now = time.time()
    fields["name"] = logger.name
    fields["msg"] = msg
    fields["levelno"] = level
    fields["levelname"] = logging.getLevelName(level)
    fields["created"] = now
    fields["msecs"] = (now - int(now)) * 1000
    front.put_fields(fields)
