"""Bounded, expiring in-memory caches of intermediate keys, and single-flight HSM calls.

Python ``bytes`` cannot be wiped, so an evicted key is dropped, not zeroed: it stays in freed
memory until reused. The bounds below limit how many keys a memory dump can show and for how
long each was usable; docs/kms.md spells out what that exposure means.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Intermediate", "KeyCache", "SingleFlight"]

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Intermediate:
    """An intermediate key in memory, ready to seal or open envelopes.

    ``key`` is the envelope key derived from the intermediate key (docs/kms.md), never the
    intermediate key itself; ``header`` is the KMS header every blob under it starts with.
    """

    key_name: str
    key_version: int
    header: bytes
    key: bytes = field(repr=False)
    key_id: str
    created: float
    uses: int = 0


class KeyCache:
    """LRU of header -> :class:`Intermediate`, at most ``max_entries``, each for ``ttl`` s."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[bytes, tuple[float, Intermediate]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, header: bytes) -> Intermediate | None:
        now = time.monotonic()
        with self._lock:
            item = self._entries.get(header)
            if item is None or item[0] <= now:
                if item is not None:
                    del self._entries[header]
                self.misses += 1
                return None
            self._entries.move_to_end(header)
            self.hits += 1
            return item[1]

    def put(self, entry: Intermediate) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[entry.header] = (time.monotonic() + self.ttl, entry)
            self._entries.move_to_end(entry.header)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def purge(self, drop: Callable[[Intermediate], bool]) -> int:
        """Drops every entry for which ``drop`` is true; returns how many."""
        with self._lock:
            doomed = [h for h, (_, e) in self._entries.items() if drop(e)]
            for h in doomed:
                del self._entries[h]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()


class _Call(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Runs one call per key at a time; concurrent callers of the same key share its outcome.

    Without it, N threads missing the cache on the same blob header would make N identical
    HSM unwraps.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call[T]] = {}

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = _Call()
        assert call is not None
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result  # type: ignore[return-value]
        try:
            call.result = fn()
            return call.result
        except BaseException as e:
            call.error = e
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._calls = {}
