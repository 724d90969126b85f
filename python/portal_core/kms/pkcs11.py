"""``Pkcs11Kms``: key-encryption keys in a PKCS#11 HSM, sealing at the core's speed.

Key hierarchy (docs/kms.md has the full picture, the blob format and the threat model)::

    KEK "name" version N         AES-256 in the HSM: sensitive, non-extractable, private
      └─ wraps, in the HSM       a random 32-byte intermediate key (blob prefix as AAD)
           └─ HKDF-SHA256         envelope key, bound to the blob prefix
                └─ core envelope  per-message key from a random salt, key-committing,
                                  caller's context as authenticated data

This module is the facade; the work is done by its neighbours:

================  ===========================================================================
``pool``          sessions, login and recovery (``_module``: the module itself, via cffi)
``layout``        the objects in the token: KEK and policy templates, labels, reading them
``mechanisms``    wrapping an intermediate key under a KEK, per vendor profile (``profiles``)
``hierarchy``     which intermediate key seals and which opens a blob (``cache``)
``batch``         many blobs per call, on all cores
``selftest``      ``self_test``; ``environment``: ``from_env``
================  ===========================================================================
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from portal_core import envelope
from portal_core.exceptions import InvalidEnvelope, InvalidTag
from portal_core.kms import batch, blob, layout
from portal_core.kms.blob import Header, check_name, header_len
from portal_core.kms.cache import KeyCache
from portal_core.kms.contract import Context, DataKey, KeyInfo
from portal_core.kms.environment import settings_from_env
from portal_core.kms.errors import KeyAlreadyExists, KeyNotFound, MalformedBlob
from portal_core.kms.hierarchy import KeyHierarchy
from portal_core.kms.layout import KeyVersions
from portal_core.kms.mechanisms import Mechanisms
from portal_core.kms.pool import Pin, PooledSession, SessionPool
from portal_core.kms.profiles import Profile, get_profile
from portal_core.kms.selftest import run_self_test

if TYPE_CHECKING:  # collections.abc.Buffer is new in 3.12; typing_extensions is no dependency
    from typing_extensions import Buffer

__all__ = ["DataKey", "KeyInfo", "Pkcs11Kms", "Pkcs11Options"]

log = logging.getLogger("portal_core.kms")

_instances: weakref.WeakSet[Pkcs11Kms] = weakref.WeakSet()


class Pkcs11Options(TypedDict, total=False):
    """The keyword arguments of the :class:`Pkcs11Kms` constructor, for ``from_env``."""

    profile: str | Profile
    pool_size: int | None
    cache_size: int
    cache_ttl: float
    key_max_uses: int
    key_max_age: float
    metadata_ttl: float
    acquire_timeout: float


class Pkcs11Kms:
    """Named, versioned AES-256 key-encryption keys in a PKCS#11 token.

    Provides :class:`~portal_core.kms.contract.SealingKms`,
    :class:`~portal_core.kms.contract.KeyAdmin` and
    :class:`~portal_core.kms.contract.KeyedSealingKms`.

    Safe to share between threads (and to use after ``fork``). Arguments:

    ``module``: path of the PKCS#11 library; ``token_label``: the token's label; ``pin``: the
    user PIN (kept out of every repr, log line and error). ``profile``: a name from
    :data:`portal_core.kms.profiles.PROFILES` or a :class:`Profile`. ``pool_size``: sessions
    opened at most (default: twice the CPU count, at most 8). ``cache_size`` / ``cache_ttl``:
    how many unwrapped intermediate keys stay in memory and for how many seconds.
    ``key_max_uses`` / ``key_max_age``: when the intermediate key used for new seals is
    replaced. ``metadata_ttl``: how stale this process's view of versions and retirements made
    by *other* processes may be (changes made through this object apply at once).
    ``acquire_timeout``: seconds to wait for a free session.

    Raises:
        HsmConfigError: no such module or token, or an unknown profile.
        HsmAuthError: the token refused the PIN.
        HsmUnavailable: the HSM failed.
        ValueError / TypeError: a bad argument.
    """

    def __init__(
        self,
        module: str,
        token_label: str,
        pin: str,
        *,
        profile: str | Profile = "softhsm",
        pool_size: int | None = None,
        cache_size: int = 1024,
        cache_ttl: float = 300.0,
        key_max_uses: int = 1_000_000,
        key_max_age: float = 300.0,
        metadata_ttl: float = 10.0,
        acquire_timeout: float = 30.0,
    ) -> None:
        self.profile = get_profile(profile)
        if pool_size is None:
            pool_size = min(8, 2 * (os.cpu_count() or 1))
        if self.profile.max_sessions is not None:
            pool_size = min(pool_size, self.profile.max_sessions)
        for arg, count in (("pool_size", pool_size), ("key_max_uses", key_max_uses)):
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"{arg} must be a positive int")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError("cache_size must be an int >= 0")
        for arg, seconds in (
            ("cache_ttl", cache_ttl),
            ("key_max_age", key_max_age),
            ("metadata_ttl", metadata_ttl),
            ("acquire_timeout", acquire_timeout),
        ):
            if not isinstance(seconds, int | float) or seconds < 0:
                raise ValueError(f"{arg} must be a number >= 0")
        self.module = module
        self.token_label = token_label
        self.key_max_uses = key_max_uses
        self.key_max_age = float(key_max_age)
        self.metadata_ttl = float(metadata_ttl)
        self._pool = SessionPool(
            module, token_label, Pin(pin), size=pool_size, timeout=float(acquire_timeout)
        )
        self._mechanisms = Mechanisms(self.profile)
        self._hierarchy = KeyHierarchy(
            self._pool,
            self._mechanisms,
            KeyCache(cache_size, float(cache_ttl)),
            token_label=token_label,
            key_max_uses=key_max_uses,
            key_max_age=self.key_max_age,
            metadata_ttl=self.metadata_ttl,
        )
        _instances.add(self)
        # Connect now, so a wrong module, token or PIN fails here and not at the first seal.
        with self._pool.acquire():
            pass

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Unpack[Pkcs11Options]
    ) -> Pkcs11Kms:
        """A KMS configured from the environment (what ``portal-core hsm init`` writes to
        ``.hsm/env``).

        ``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``, and the PIN in ``PKCS11_USER_PIN`` or in the
        file named by ``PKCS11_USER_PIN_FILE``; optional ``PORTAL_KMS_PROFILE`` and
        ``PORTAL_KMS_POOL_SIZE``. ``options`` are passed to the constructor. SoftHSM2 reads
        ``SOFTHSM2_CONF`` from the process environment itself.

        Raises:
            HsmConfigError: a variable is missing or the PIN file is unreadable; and as the
                constructor.
        """
        env = os.environ if environ is None else environ
        module, token_label, pin, settings = settings_from_env(env, options)
        return cls(module, token_label, pin, **settings)

    def __repr__(self) -> str:
        return (
            f"Pkcs11Kms(module={self.module!r}, token_label={self.token_label!r}, "
            f"profile={self.profile.name!r}, pool_size={self._pool.size})"
        )

    def __reduce__(self) -> Any:
        raise TypeError("Pkcs11Kms holds a PIN and HSM sessions; it cannot be pickled")

    def close(self) -> None:
        """Closes the sessions and logs out. Calls after this raise ``HsmUnavailable``."""
        self._pool.close()
        self._hierarchy.clear()

    def __enter__(self) -> Pkcs11Kms:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Borrows a logged-in python-pkcs11 session from the pool, for operations this class
        does not offer. Do not close it or log out; use it from one thread at a time.
        """
        with self._pool.acquire() as ps:
            yield ps.session

    def stats(self) -> dict[str, int]:
        """Counters: HSM calls, the most HSM calls in flight at once, cache hits and misses,
        intermediate keys wrapped and unwrapped, sessions opened and recovered, logins, forks.
        """
        cache = self._hierarchy.cache
        out = dict(self._pool.stats)
        out.update(self._hierarchy.counters)
        out["cache_hits"] = cache.hits
        out["cache_misses"] = cache.misses
        out["cached_keys"] = len(cache)
        out["sessions_open"] = self._pool.open_sessions()
        return out

    # -- key administration (KeyAdmin) --------------------------------------------------

    def _missing(self, name: str) -> KeyNotFound:
        return KeyNotFound(f"no key named {name!r} in token {self.token_label!r}")

    def create_key(self, name: str) -> int:
        """Creates version 1 of a new KEK named ``name`` inside the token; returns 1.

        Raises:
            KeyAlreadyExists: the token already holds a version of ``name``.
            ValueError / TypeError: an invalid name.
            HsmUnavailable / HsmConfigError: the HSM failed or refused the template.
        """
        check_name(name)
        pool = self._pool

        def create(ps: PooledSession) -> KeyVersions:
            view, policies = layout.read_versions(pool, ps, name)
            if view.versions:
                raise KeyAlreadyExists(f"key {name!r} already exists (versions {view.versions})")
            if not policies:
                layout.write_policy(ps, name, 1, [])
            self._generate(ps, name, 1)
            return layout.read_versions(pool, ps, name)[0]

        with self._hierarchy.name_lock(name), _machine_lock(self.module, self.token_label, name):
            self._hierarchy.changed(name, pool.run(create, f"creating key {name!r}"))
        return 1

    def ensure_key(self, name: str) -> KeyInfo:
        """The key ``name``, after creating its version 1 if the token holds none.

        Another process creating the same key at the same moment is not an error: whoever
        creates it, this returns it (``KeyAlreadyExists`` from the race is absorbed).

        Raises:
            As :meth:`create_key`, except ``KeyAlreadyExists``.
        """
        try:
            return self.describe(name)
        except KeyNotFound:
            pass
        try:
            self.create_key(name)
        except KeyAlreadyExists:
            log.debug("key %r was created by another process first", name)
        return self.describe(name)

    def _generate(self, ps: PooledSession, name: str, version: int) -> None:
        capabilities = self._mechanisms.sealing.capabilities
        layout.generate_kek(ps, name, version, capabilities, self.token_label)

    def rotate(self, name: str) -> int:
        """Creates the next version of ``name``; new seals use it, old versions still open.

        Returns the new version number.

        Raises:
            KeyNotFound: no key named ``name``.
        """
        check_name(name)
        pool = self._pool

        def rotate(ps: PooledSession) -> KeyVersions:
            view, _ = layout.read_versions(pool, ps, name)
            if not view.versions:
                raise self._missing(name)
            self._generate(ps, name, view.newest + 1)
            return layout.read_versions(pool, ps, name)[0]

        with self._hierarchy.name_lock(name), _machine_lock(self.module, self.token_label, name):
            view = pool.run(rotate, f"rotating key {name!r}")
            self._hierarchy.changed(name, view, rotated=True)
        return view.newest

    def versions(self, name: str) -> list[int]:
        """The versions of ``name`` the token holds, oldest first (read from the token).

        Raises:
            KeyNotFound: no key named ``name``.
        """
        return list(self._hierarchy.versions_of(check_name(name), fresh=True).versions)

    def describe(self, name: str) -> KeyInfo:
        """Versions, newest version and minimum decryption version of ``name``.

        Raises:
            KeyNotFound: no key named ``name``.
        """
        view = self._hierarchy.versions_of(check_name(name), fresh=True)
        return KeyInfo(name, view.versions, view.newest, view.min_decryption_version)

    def list_keys(self) -> list[KeyInfo]:
        """Every KEK this KMS created in the token, by name."""
        out = []
        for name in self._pool.run(layout.key_names, "listing keys"):
            try:
                out.append(self.describe(name))
            except KeyNotFound:
                continue  # a policy left by an interrupted create_key: no key yet
        return out

    def set_min_decryption_version(self, name: str, version: int) -> None:
        """Blobs sealed under versions below ``version`` stop opening (``KeyVersionRetired``).

        Takes effect at once in this process, and within ``metadata_ttl`` seconds in others.
        Lowering it again is allowed while the versions still exist.

        Raises:
            KeyNotFound: no key named ``name``.
            ValueError: ``version`` above the newest version or below the oldest one held.
        """
        check_name(name)
        if not isinstance(version, int) or isinstance(version, bool):
            raise TypeError("version must be an int")
        pool = self._pool

        def update(ps: PooledSession) -> KeyVersions:
            view, policies = layout.read_versions(pool, ps, name)
            if not view.versions:
                raise self._missing(name)
            if not view.versions[0] <= version <= view.newest:
                raise ValueError(
                    f"min_decryption_version of {name!r} must be between {view.versions[0]} "
                    f"and {view.newest}, not {version}"
                )
            if version != view.min_decryption_version:
                layout.write_policy(ps, name, version, policies)
            return layout.read_versions(pool, ps, name)[0]

        with self._hierarchy.name_lock(name):
            self._hierarchy.changed(name, pool.run(update, f"retiring versions of {name!r}"))
            self._hierarchy.drop_cached(name, lambda v: v < version)
        log.info("key %r: versions below %d retired", name, version)

    def destroy_version(self, name: str, version: int) -> None:
        """Destroys a retired version's key in the token. Irreversible: its blobs are lost.

        Raises:
            KeyNotFound: no such key or version.
            ValueError: the version is not retired (below the minimum decryption version).
        """
        check_name(name)
        pool = self._pool

        def destroy(ps: PooledSession) -> KeyVersions:
            view, _ = layout.read_versions(pool, ps, name)
            if version not in view.versions:
                raise KeyNotFound(f"the token holds no version {version} of key {name!r}")
            if version >= view.min_decryption_version:
                raise ValueError(
                    f"version {version} of {name!r} still decrypts: retire it first with "
                    f"set_min_decryption_version({name!r}, {version + 1})"
                )
            layout.destroy_kek(pool, ps, name, version)
            return layout.read_versions(pool, ps, name)[0]

        with self._hierarchy.name_lock(name):
            self._hierarchy.changed(name, pool.run(destroy, f"destroying {name!r} v{version}"))
            self._hierarchy.drop_cached(name, lambda v: v == version)
        log.info("key %r: version %d destroyed", name, version)

    # -- sealing and opening (SealingKms) -----------------------------------------------

    def seal(self, name: str, plaintext: Buffer, *, context: Context) -> bytes:
        """Seals ``plaintext`` under the newest version of KEK ``name``, binding ``context``.

        The blob names the key and version, carries the HSM-wrapped intermediate key and a
        core envelope (docs/kms.md). ``context`` (e.g. wallet id, curve, party) is stored in
        clear and must be presented again to open.

        Raises:
            KeyNotFound: no key named ``name``.
            HsmUnavailable / HsmConfigError: the HSM failed (only when a new intermediate key
                is wrapped).
            TypeError / ValueError: as :func:`portal_core.envelope.seal`.
        """
        cur, _ = self._hierarchy.sealing_key(check_name(name), 1)
        return cur.header + envelope.seal(cur.key, plaintext, context=context, key_id=cur.key_id)

    def seal_many(
        self, name: str, plaintexts: Iterable[Buffer], *, context: Context | Sequence[Context]
    ) -> list[bytes]:
        """:meth:`seal` for a batch: a sequence of bytes-like objects or a 2-D uint8 numpy
        array (one item per row); ``context`` is one for all or a list of one per item. The
        envelopes are sealed on all cores with the GIL released.

        Raises:
            As :meth:`seal`; ValueError for a context list of the wrong length.
        """
        return batch.seal_many(self._hierarchy, check_name(name), plaintexts, context)

    def open(self, sealed: Buffer, *, context: Context) -> bytes:
        """Opens a blob made by :meth:`seal` with the same ``context``.

        Raises:
            portal_core.exceptions.InvalidTag: tampered, wrong context, or wrong token (the
                subclasses ``MalformedBlob`` and ``BlobKeyNotFound`` say more).
            KeyVersionRetired: the blob's key version is retired.
            HsmUnavailable: the HSM failed while unwrapping its intermediate key.
        """
        view = memoryview(sealed).cast("B")
        end = header_len(view)
        entry = self._hierarchy.opening_key(bytes(view[:end]))
        try:
            return envelope.open(entry.key, view[end:], context=context)
        except InvalidTag:
            raise
        except InvalidEnvelope as e:
            raise MalformedBlob(f"KMS blob holds a malformed envelope: {e}") from None

    def open_many(
        self, sealed: Iterable[Buffer], *, context: Context | Sequence[Context]
    ) -> list[bytes]:
        """Opens a batch of blobs (any mix of keys and versions) on all cores.

        ``context`` is one for all or a list of one per item. All or nothing: if any item
        fails, the call raises (naming a failing item) and returns no plaintext.

        Raises:
            As :meth:`open`; ValueError for a context list of the wrong length.
        """
        return batch.open_many(self._hierarchy, sealed, context)

    def rewrap(self, sealed: Buffer) -> bytes:
        """Moves a blob to the newest version of its key; the plaintext never leaves the core.

        The context stored in the blob is authenticated by the old envelope and bound again
        by the new one, so no context is needed here.

        Raises:
            As :meth:`open`.
        """
        return self.rewrap_many([sealed])[0]

    def rewrap_many(self, sealed: Iterable[Buffer]) -> list[bytes]:
        """:meth:`rewrap` for a batch (all or nothing), on all cores: one HSM unwrap per
        distinct intermediate key in the batch, not per blob.

        Raises:
            As :meth:`open_many`.
        """
        return batch.rewrap_many(self._hierarchy, sealed)

    def generate_data_key(self, name: str, context: Context) -> DataKey:
        """A fresh random 32-byte data key, and the same key sealed under KEK ``name`` with
        ``context`` bound, for callers that encrypt large data themselves.

        Raises:
            As :meth:`seal`.
        """
        plaintext = os.urandom(32)
        wrapped = self.seal(name, plaintext, context=context)
        header = Header.parse(wrapped[: header_len(wrapped)])
        return DataKey(plaintext, wrapped, header.key_name, header.key_version)

    def decrypt_data_key(self, wrapped: Buffer, context: Context) -> bytes:
        """The data key inside ``wrapped`` (from :meth:`generate_data_key`), same ``context``.

        Raises:
            As :meth:`open`.
        """
        return self.open(wrapped, context=context)

    # -- checks -------------------------------------------------------------------------

    def self_test(self) -> dict[str, Any]:
        """Checks that the HSM behaves as the profile says, on a throwaway session key.

        Generates a non-token KEK with the production template, checks that its value cannot
        be read, wraps and unwraps an intermediate key through the profile's mechanism
        (including the IV handling), checks that a tampered wrap is refused, and destroys
        the key. Nothing is stored in the token.

        Raises:
            HsmConfigError: the HSM does not behave as the profile expects.
            HsmUnavailable / HsmAuthError: as any call.
        """
        return run_self_test(self._pool, self._mechanisms, self.token_label)

    @staticmethod
    def inspect(sealed: Buffer) -> blob.BlobInfo:
        """Key name, version, wrap mechanism, context and length of a blob; no HSM needed.

        Raises:
            MalformedBlob: not a well-formed KMS blob.
        """
        return blob.inspect(sealed)

    def _reset_after_fork(self) -> None:
        self._hierarchy.reset_after_fork()


def _after_fork_in_child() -> None:
    for kms in list(_instances):
        kms._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


# Seconds a process waits for another on this machine to finish creating or rotating a key.
_MACHINE_LOCK_TIMEOUT_S = 30.0


@contextmanager
def _machine_lock(module: str, token_label: str, name: str) -> Iterator[None]:
    """Serialises key creation and rotation of ``name`` between the processes of this
    machine (the workers of one service starting at once): PKCS#11 has no "create unless it
    exists", so two processes that both find no key would each make one. An exclusive lock
    on a file named from the module, the token and the key (no secret in it), waited for at
    most :data:`_MACHINE_LOCK_TIMEOUT_S`. Processes on other machines sharing a network HSM
    are not covered: create keys there before starting them (``portal-core keys create``).

    Raises:
        HsmUnavailable: the lock was not released in time.
    """
    from portal_core.kms.errors import HsmUnavailable

    digest = hashlib.sha256(f"{module}\0{token_label}\0{name}".encode()).hexdigest()[:24]
    path = os.path.join(tempfile.gettempdir(), f"portal-core-kms-{digest}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + _MACHINE_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HsmUnavailable(
                        f"another process held the lock on key {name!r} for over "
                        f"{_MACHINE_LOCK_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing releases the lock
