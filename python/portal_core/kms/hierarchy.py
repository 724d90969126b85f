"""The intermediate-key hierarchy under the token's KEKs (docs/kms.md, "The key hierarchy").

One HSM call wraps an intermediate key that then seals up to ``key_max_uses`` blobs for at
most ``key_max_age`` seconds; one HSM call unwraps it for every blob that carries it (kept
in :class:`~portal_core.kms.cache.KeyCache`). :class:`KeyHierarchy` decides which
intermediate key new seals of a KEK use, finds (or unwraps) the one of a blob, and keeps this
process's view of each KEK's versions and retirement, at most ``metadata_ttl`` seconds old.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from portal_core.kms import blob, layout
from portal_core.kms.blob import Header, key_id
from portal_core.kms.cache import Intermediate, KeyCache, SingleFlight
from portal_core.kms.errors import BlobKeyNotFound, KeyNotFound, KeyVersionRetired
from portal_core.kms.layout import KeyVersions
from portal_core.kms.mechanisms import Mechanisms
from portal_core.kms.pool import PooledSession, SessionPool

__all__ = ["KeyHierarchy"]

# Seconds between two refreshes of a key's versions forced by a blob naming a newer version.
_FORCED_REFRESH = 1.0


class KeyHierarchy:
    """Intermediate keys of the KEKs in one token, for one :class:`Pkcs11Kms`.

    Thread-safe. ``name_lock(name)`` serialises what changes a KEK (the facade's key
    administration takes it too), so a rotation and the choice of a sealing key never
    interleave.
    """

    def __init__(
        self,
        pool: SessionPool,
        mechanisms: Mechanisms,
        cache: KeyCache,
        *,
        token_label: str,
        key_max_uses: int,
        key_max_age: float,
        metadata_ttl: float,
    ) -> None:
        self.pool = pool
        self.mechanisms = mechanisms
        self.cache = cache
        self.token_label = token_label
        self.key_max_uses = key_max_uses
        self.key_max_age = key_max_age
        self.metadata_ttl = metadata_ttl
        self.counters = {"intermediate_keys_wrapped": 0, "intermediate_keys_unwrapped": 0}
        self._init_state()

    def _init_state(self) -> None:
        # One in-flight call per key: a KEK's versions read from the token, and the
        # unwrapping of a blob header's intermediate key.
        self._versions_flight: SingleFlight[KeyVersions] = SingleFlight()
        self._unwrap_flight: SingleFlight[Intermediate] = SingleFlight()
        self._current: dict[str, Intermediate] = {}
        self._versions: dict[str, KeyVersions] = {}
        self._forced: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._counters_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyHierarchy(token_label={self.token_label!r}, keys_seen={len(self._versions)})"

    def _count(self, what: str) -> None:
        with self._counters_lock:
            self.counters[what] += 1

    def name_lock(self, name: str) -> threading.Lock:
        """The lock of KEK ``name`` in this process."""
        with self._locks_guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = threading.Lock()
            return lock

    # -- this process's view of versions and retirement --------------------------------

    def versions_of(self, name: str, *, fresh: bool = False) -> KeyVersions:
        """This process's view of ``name`` (at most ``metadata_ttl`` s old unless ``fresh``).

        Raises:
            KeyNotFound: the token holds no version of ``name``.
        """
        view = self._versions.get(name)
        if fresh or view is None or time.monotonic() - view.fetched >= self.metadata_ttl:
            view = self._versions_flight.run(name, lambda: self._refresh(name))
        if not view.versions:
            raise KeyNotFound(f"no key named {name!r} in token {self.token_label!r}")
        return view

    def _refresh(self, name: str) -> KeyVersions:
        view, _ = self.pool.run(
            lambda ps: layout.read_versions(self.pool, ps, name), "reading key versions"
        )
        self._versions[name] = view
        return view

    def changed(self, name: str, view: KeyVersions, *, rotated: bool = False) -> None:
        """Records ``view`` read back after this process changed KEK ``name``; after a
        rotation, new seals stop using the current intermediate key."""
        self._versions[name] = view
        if rotated:
            self._current.pop(name, None)

    def drop_cached(self, name: str, versions: Callable[[int], bool]) -> None:
        """Drops the cached intermediate keys of ``name`` whose KEK version ``versions``
        selects."""
        self.cache.purge(lambda e: e.key_name == name and versions(e.key_version))

    def _check_version(self, name: str, version: int) -> None:
        try:
            view = self.versions_of(name)
            now = time.monotonic()
            if version > view.newest and now - self._forced.get(name, -1e9) >= _FORCED_REFRESH:
                # Rotated by another process? Asked at most once a second per key, so blobs
                # naming made-up versions cannot turn into a stream of HSM calls.
                self._forced[name] = now
                view = self.versions_of(name, fresh=True)
        except KeyNotFound:
            raise BlobKeyNotFound(
                f"blob names key {name!r}, which token {self.token_label!r} does not hold"
            ) from None
        if version < view.min_decryption_version:
            raise KeyVersionRetired(name, version, view.min_decryption_version)
        if version not in view.versions:
            raise BlobKeyNotFound(
                f"blob names version {version} of key {name!r}, which the token does not hold"
            )

    # -- sealing: the current intermediate key of a KEK ---------------------------------

    def sealing_key(self, name: str, want: int) -> tuple[Intermediate, int]:
        """The intermediate key new seals of ``name`` use, with ``take`` <= ``want`` uses
        reserved on it. A new one is wrapped in the HSM when the current one is for an older
        version, too old, or used up."""
        with self.name_lock(name):
            view = self.versions_of(name)
            cur = self._current.get(name)
            if (
                cur is None
                or cur.key_version != view.newest
                or cur.uses >= self.key_max_uses
                or time.monotonic() - cur.created >= self.key_max_age
            ):
                cur = self._new_intermediate(name, view.newest)
                self._current[name] = cur
            take = min(want, self.key_max_uses - cur.uses)
            cur.uses += take
            return cur, take

    def _new_intermediate(self, name: str, version: int) -> Intermediate:
        mechanisms = self.mechanisms
        prefix = blob.make_prefix(name, version, mechanisms.sealing.blob_id)
        intermediate = os.urandom(blob.INTERMEDIATE_KEY_LEN)

        def wrap(ps: PooledSession) -> bytes:
            kek = layout.find_kek(self.pool, ps, name, version)
            return mechanisms.wrap(ps, kek, prefix, intermediate)

        try:
            wrapped = self.pool.run(wrap, f"wrapping an intermediate key under {name!r} v{version}")
        except KeyNotFound:
            # Destroyed by another process since this one read the versions.
            self._versions.pop(name, None)
            raise
        entry = Intermediate(
            key_name=name,
            key_version=version,
            header=blob.make_header(prefix, wrapped),
            key=blob.envelope_key(intermediate, prefix),
            key_id=key_id(name, version),
            created=time.monotonic(),
        )
        self.cache.put(entry)
        self._count("intermediate_keys_wrapped")
        return entry

    # -- opening: the intermediate key of a blob ---------------------------------------

    def opening_key(self, raw_header: bytes) -> Intermediate:
        """The intermediate key of a blob header: from the cache, else unwrapped in the HSM
        (one call however many threads ask for the same header at once).

        Raises:
            MalformedBlob, BlobKeyNotFound, KeyVersionRetired, InvalidTag, HsmUnavailable.
        """
        entry = self.cache.get(raw_header)
        if entry is not None:
            self._check_version(entry.key_name, entry.key_version)
            return entry
        header = Header.parse(raw_header)
        self._check_version(header.key_name, header.key_version)
        return self._unwrap_flight.run(raw_header, lambda: self._unwrap_intermediate(header))

    def _unwrap_intermediate(self, header: Header) -> Intermediate:
        def unwrap(ps: PooledSession) -> bytes:
            try:
                kek = layout.find_kek(self.pool, ps, header.key_name, header.key_version)
            except KeyNotFound as e:
                raise BlobKeyNotFound(str(e)) from None
            return self.mechanisms.unwrap(ps, kek, header)

        intermediate = self.pool.run(unwrap, "unwrapping an intermediate key")
        entry = Intermediate(
            key_name=header.key_name,
            key_version=header.key_version,
            header=header.raw,
            key=blob.envelope_key(intermediate, header.prefix),
            key_id=header.key_id,
            created=time.monotonic(),
        )
        self.cache.put(entry)
        self._count("intermediate_keys_unwrapped")
        return entry

    # -- life cycle ---------------------------------------------------------------------

    def clear(self) -> None:
        """Forgets every intermediate key in memory."""
        self.cache.clear()
        self._current.clear()

    def reset_after_fork(self) -> None:
        # Locks held by other threads at fork time would stay held in the child, and the
        # intermediate keys in use count their seals per process: start both afresh.
        self._init_state()
        self.cache.reset_after_fork()
        self.cache.clear()
