"""``Pkcs11Kms``: key-encryption keys in a PKCS#11 HSM, sealing at the core's speed.

Key hierarchy (docs/kms.md has the full picture, the blob format and the threat model)::

    KEK "name" version N         AES-256 in the HSM: sensitive, non-extractable, private
      └─ wraps, in the HSM       a random 32-byte intermediate key (blob prefix as AAD)
           └─ HKDF-SHA256         envelope key, bound to the blob prefix
                └─ core envelope  per-message key from a random salt, key-committing,
                                  caller's context as authenticated data

One HSM call wraps an intermediate key that then seals up to ``key_max_uses`` blobs for at
most ``key_max_age`` seconds; one HSM call unwraps it for every blob that carries it (cached
for ``cache_ttl`` seconds, at most ``cache_size`` keys). Every blob carries its KEK name,
version and wrapped intermediate key, so nothing else needs storing and blobs open after a
restart.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from portal_core import envelope
from portal_core.exceptions import InvalidEnvelope, InvalidTag
from portal_core.kms import blob
from portal_core.kms.blob import Header, check_name, header_len, key_id
from portal_core.kms.cache import Intermediate, KeyCache, SingleFlight
from portal_core.kms.errors import (
    BlobKeyNotFound,
    HsmConfigError,
    KeyAlreadyExists,
    KeyNotFound,
    KeyVersionRetired,
    MalformedBlob,
)
from portal_core.kms.pool import Pin, PooledSession, SessionPool
from portal_core.kms.profiles import Profile, get_profile

__all__ = ["DataKey", "KeyInfo", "Pkcs11Kms"]

log = logging.getLogger("portal_core.kms")

Context = Mapping[str, str] | None

# How KMS objects are named in the token. Key names never contain ":" (check_name), so the
# labels parse back unambiguously.
_APPLICATION = "portal-core kms"
_KEK_ID_PREFIX = b"portal-kek:"


def _kek_label(name: str, version: int) -> str:
    return f"portal-kek:{name}:v{version}"


def _policy_label(name: str) -> str:
    return f"portal-kek-policy:{name}"


class _CK_GCM_PARAMS(ctypes.Structure):
    """PKCS#11 v2.40 CK_GCM_PARAMS, passed raw so the HSM may write the IV it generates."""

    _fields_ = (
        ("pIv", ctypes.c_void_p),
        ("ulIvLen", ctypes.c_ulong),
        ("ulIvBits", ctypes.c_ulong),
        ("pAAD", ctypes.c_void_p),
        ("ulAADLen", ctypes.c_ulong),
        ("ulTagBits", ctypes.c_ulong),
    )


def _mechanism(number: int) -> Mechanism:
    """python-pkcs11 accepts only ``Mechanism`` members; vendor numbers get a stand-in member."""
    try:
        return Mechanism(number)
    except ValueError:
        member = int.__new__(Mechanism, number)
        member._name_ = f"VENDOR_{number:#x}"
        member._value_ = number
        return member


@dataclass(frozen=True)
class KeyInfo:
    """A KEK's versions as the token holds them."""

    name: str
    versions: tuple[int, ...]
    newest: int
    min_decryption_version: int


class DataKey:
    """A fresh 32-byte data key and the same key sealed under a KEK.

    Store ``wrapped``; use ``plaintext`` and drop it. The repr never shows the key.
    """

    __slots__ = ("key_name", "key_version", "plaintext", "wrapped")

    def __init__(self, plaintext: bytes, wrapped: bytes, key_name: str, key_version: int) -> None:
        self.plaintext = plaintext
        self.wrapped = wrapped
        self.key_name = key_name
        self.key_version = key_version

    def __repr__(self) -> str:
        return (
            f"DataKey(key_name={self.key_name!r}, key_version={self.key_version}, "
            f"plaintext=<{len(self.plaintext)} bytes redacted>, "
            f"wrapped=<{len(self.wrapped)} bytes>)"
        )


@dataclass(slots=True)
class _Meta:
    versions: tuple[int, ...]
    min_decryption_version: int
    fetched: float

    @property
    def newest(self) -> int:
        return self.versions[-1]


_instances: weakref.WeakSet[Pkcs11Kms] = weakref.WeakSet()

# Distinct headers matched by scanning a batch before parsing the rest one by one.
_SCANNED_HEADERS = 8
# Seconds between two refreshes of a key's versions forced by a blob naming a newer version.
_FORCED_REFRESH = 1.0


def _header_of(item: bytes | bytearray, index: int) -> bytes:
    try:
        return bytes(item[: header_len(item)])
    except MalformedBlob as e:
        e.add_note(f"batch item {index}")
        raise


class Pkcs11Kms:
    """Named, versioned AES-256 key-encryption keys in a PKCS#11 token.

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
        for arg, value in (("pool_size", pool_size), ("key_max_uses", key_max_uses)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError("cache_size must be an int >= 0")
        for arg, value in (
            ("cache_ttl", cache_ttl),
            ("key_max_age", key_max_age),
            ("metadata_ttl", metadata_ttl),
            ("acquire_timeout", acquire_timeout),
        ):
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{arg} must be a number >= 0")
        self.module = module
        self.token_label = token_label
        self.key_max_uses = key_max_uses
        self.key_max_age = float(key_max_age)
        self.metadata_ttl = float(metadata_ttl)
        self._pool = SessionPool(
            module, token_label, Pin(pin), size=pool_size, timeout=float(acquire_timeout)
        )
        self._cache = KeyCache(cache_size, float(cache_ttl))
        self._init_state()
        self._counters = {"intermediate_keys_wrapped": 0, "intermediate_keys_unwrapped": 0}
        _instances.add(self)
        # Connect now, so a wrong module, token or PIN fails here and not at the first seal.
        with self._pool.acquire():
            pass

    def _init_state(self) -> None:
        self._flight: SingleFlight[Any] = SingleFlight()
        self._current: dict[str, Intermediate] = {}
        self._meta: dict[str, _Meta] = {}
        self._forced: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._counters_lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Pkcs11Kms:
        """A KMS configured from the environment (what ``hsm/setup.sh`` writes to ``.hsm/env``).

        ``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``, and the PIN in ``PKCS11_USER_PIN`` or in the
        file named by ``PKCS11_USER_PIN_FILE``; optional ``PORTAL_KMS_PROFILE`` and
        ``PORTAL_KMS_POOL_SIZE``. ``options`` are passed to the constructor. SoftHSM2 reads
        ``SOFTHSM2_CONF`` from the process environment itself.

        Raises:
            HsmConfigError: a variable is missing or the PIN file is unreadable; and as the
                constructor.
        """
        env = os.environ if environ is None else environ
        missing = [v for v in ("PKCS11_MODULE", "PKCS11_TOKEN_LABEL") if not env.get(v)]
        pin = env.get("PKCS11_USER_PIN")
        if not pin and env.get("PKCS11_USER_PIN_FILE"):
            try:
                with open(env["PKCS11_USER_PIN_FILE"], encoding="utf-8") as f:
                    pin = f.read().strip()
            except OSError as e:
                raise HsmConfigError(
                    f"cannot read PKCS11_USER_PIN_FILE: {e.strerror or type(e).__name__}"
                ) from None
        if not pin:
            missing.append("PKCS11_USER_PIN (or PKCS11_USER_PIN_FILE)")
        if missing:
            raise HsmConfigError(
                "missing environment: " + ", ".join(missing) + " (for SoftHSM2: run "
                "hsm/setup.sh, then `. .hsm/env`)"
            )
        if "profile" not in options and env.get("PORTAL_KMS_PROFILE"):
            options["profile"] = env["PORTAL_KMS_PROFILE"]
        if "pool_size" not in options and env.get("PORTAL_KMS_POOL_SIZE"):
            try:
                options["pool_size"] = int(env["PORTAL_KMS_POOL_SIZE"])
            except ValueError:
                raise HsmConfigError("PORTAL_KMS_POOL_SIZE must be an integer") from None
        return cls(env["PKCS11_MODULE"], env["PKCS11_TOKEN_LABEL"], pin, **options)

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
        self._cache.clear()
        self._current.clear()

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
        out = dict(self._pool.stats)
        out.update(self._counters)
        out["cache_hits"] = self._cache.hits
        out["cache_misses"] = self._cache.misses
        out["cached_keys"] = len(self._cache)
        out["sessions_open"] = self._pool.open_sessions()
        return out

    def _count(self, what: str) -> None:
        with self._counters_lock:
            self._counters[what] += 1

    def _name_lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = threading.Lock()
            return lock

    # -- token objects ------------------------------------------------------------------

    def _kek(self, ps: PooledSession, name: str, version: int) -> Any:
        """The KEK object of ``name`` version ``version``, cached per session."""
        handle = ps.keys.get((name, version))
        if handle is None:
            try:
                handle = ps.session.get_key(
                    object_class=ObjectClass.SECRET_KEY,
                    key_type=KeyType.AES,
                    label=_kek_label(name, version),
                )
            except p11.NoSuchKey:
                self._pool.check_login(ps)
                raise KeyNotFound(f"the token holds no version {version} of key {name!r}") from None
            except p11.MultipleObjectsReturned:
                raise HsmConfigError(
                    f"the token holds two objects labelled {_kek_label(name, version)!r} "
                    "(concurrent rotations?): destroy the one created last"
                ) from None
            ps.keys[(name, version)] = handle
        return handle

    def _read_meta(self, ps: PooledSession, name: str) -> tuple[_Meta, list[Any]]:
        """Versions and minimum decryption version of ``name`` read from the token, and the
        policy objects found (for rewriting)."""
        versions = []
        for obj in ps.session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: _KEK_ID_PREFIX + name.encode()}
        ):
            label = obj[Attribute.LABEL]
            prefix = f"portal-kek:{name}:v"
            if (
                isinstance(label, str)
                and label.startswith(prefix)
                and label[len(prefix) :].isdigit()
            ):
                versions.append(int(label[len(prefix) :]))
        policies = list(
            ps.session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.APPLICATION: _APPLICATION,
                    Attribute.LABEL: _policy_label(name),
                }
            )
        )
        minimum = 1
        best = (-1, 1)
        for obj in policies:
            try:
                doc = json.loads(bytes(obj[Attribute.VALUE]))
                entry = (int(doc["seq"]), int(doc["min_decryption_version"]))
            except (ValueError, KeyError, TypeError):
                raise HsmConfigError(f"unreadable policy object for key {name!r}") from None
            best = max(best, entry)
        minimum = best[1]
        if not versions and not policies:
            self._pool.check_login(ps)
        meta = _Meta(tuple(sorted(set(versions))), minimum, time.monotonic())
        return meta, policies

    def _write_policy(
        self, ps: PooledSession, name: str, min_version: int, existing: list[Any]
    ) -> None:
        """Records the minimum decryption version. CKA_VALUE of a data object cannot change,
        so a new object with a higher sequence number replaces the old ones; readers take the
        highest, so a crash between the two steps leaves the new value in force."""
        seq = 0
        for obj in existing:
            try:
                seq = max(seq, int(json.loads(bytes(obj[Attribute.VALUE]))["seq"]))
            except (ValueError, KeyError, TypeError):
                continue
        value = json.dumps({"seq": seq + 1, "min_decryption_version": min_version}).encode()
        ps.session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.MODIFIABLE: False,
                Attribute.APPLICATION: _APPLICATION,
                Attribute.LABEL: _policy_label(name),
                Attribute.VALUE: value,
            }
        )
        for obj in existing:
            obj.destroy()

    def _generate_kek(self, ps: PooledSession, name: str, version: int) -> None:
        if self.profile.wrap == "aes-gcm":
            capabilities = MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
        else:
            capabilities = MechanismFlag.WRAP | MechanismFlag.UNWRAP
        ps.session.generate_key(
            KeyType.AES,
            256,
            id=_KEK_ID_PREFIX + name.encode(),
            label=_kek_label(name, version),
            store=True,
            capabilities=capabilities,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.MODIFIABLE: False,
                Attribute.DERIVE: False,
            },
        )
        log.info("created key %r version %d in token %r", name, version, self.token_label)

    def _meta_for(self, name: str, *, fresh: bool = False) -> _Meta:
        """This process's view of ``name`` (at most ``metadata_ttl`` s old unless ``fresh``).

        Raises:
            KeyNotFound: the token holds no version of ``name``.
        """
        meta = self._meta.get(name)
        if fresh or meta is None or time.monotonic() - meta.fetched >= self.metadata_ttl:
            meta = self._flight.run(("meta", name), lambda: self._refresh_meta(name))
        if not meta.versions:
            raise KeyNotFound(f"no key named {name!r} in token {self.token_label!r}")
        return meta

    def _refresh_meta(self, name: str) -> _Meta:
        meta, _ = self._pool.run(lambda ps: self._read_meta(ps, name), "reading key versions")
        self._meta[name] = meta
        return meta

    # -- key management -----------------------------------------------------------------

    def create_key(self, name: str) -> int:
        """Creates version 1 of a new KEK named ``name`` inside the token; returns 1.

        Raises:
            KeyAlreadyExists: the token already holds a version of ``name``.
            ValueError / TypeError: an invalid name.
            HsmUnavailable / HsmConfigError: the HSM failed or refused the template.
        """
        check_name(name)

        def create(ps: PooledSession) -> _Meta:
            meta, policies = self._read_meta(ps, name)
            if meta.versions:
                raise KeyAlreadyExists(f"key {name!r} already exists (versions {meta.versions})")
            if not policies:
                self._write_policy(ps, name, 1, [])
            self._generate_kek(ps, name, 1)
            return self._read_meta(ps, name)[0]

        with self._name_lock(name):
            self._meta[name] = self._pool.run(create, f"creating key {name!r}")
        return 1

    def rotate(self, name: str) -> int:
        """Creates the next version of ``name``; new seals use it, old versions still open.

        Returns the new version number.

        Raises:
            KeyNotFound: no key named ``name``.
        """
        check_name(name)

        def rotate(ps: PooledSession) -> _Meta:
            meta, _ = self._read_meta(ps, name)
            if not meta.versions:
                raise KeyNotFound(f"no key named {name!r} in token {self.token_label!r}")
            self._generate_kek(ps, name, meta.newest + 1)
            return self._read_meta(ps, name)[0]

        with self._name_lock(name):
            meta = self._pool.run(rotate, f"rotating key {name!r}")
            self._meta[name] = meta
            self._current.pop(name, None)
        return meta.newest

    def versions(self, name: str) -> list[int]:
        """The versions of ``name`` the token holds, oldest first (read from the token).

        Raises:
            KeyNotFound: no key named ``name``.
        """
        return list(self._meta_for(check_name(name), fresh=True).versions)

    def describe(self, name: str) -> KeyInfo:
        """Versions, newest version and minimum decryption version of ``name``.

        Raises:
            KeyNotFound: no key named ``name``.
        """
        meta = self._meta_for(check_name(name), fresh=True)
        return KeyInfo(name, meta.versions, meta.newest, meta.min_decryption_version)

    def list_keys(self) -> list[KeyInfo]:
        """Every KEK this KMS created in the token, by name."""

        def names(ps: PooledSession) -> list[str]:
            found = set()
            for obj in ps.session.get_objects(
                {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: _APPLICATION}
            ):
                label = obj[Attribute.LABEL]
                if isinstance(label, str) and label.startswith("portal-kek-policy:"):
                    found.add(label.removeprefix("portal-kek-policy:"))
            return sorted(found)

        out = []
        for name in self._pool.run(names, "listing keys"):
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

        def update(ps: PooledSession) -> _Meta:
            meta, policies = self._read_meta(ps, name)
            if not meta.versions:
                raise KeyNotFound(f"no key named {name!r} in token {self.token_label!r}")
            if not meta.versions[0] <= version <= meta.newest:
                raise ValueError(
                    f"min_decryption_version of {name!r} must be between {meta.versions[0]} "
                    f"and {meta.newest}, not {version}"
                )
            if version != meta.min_decryption_version:
                self._write_policy(ps, name, version, policies)
            return self._read_meta(ps, name)[0]

        with self._name_lock(name):
            self._meta[name] = self._pool.run(update, f"retiring versions of {name!r}")
            self._cache.purge(lambda e: e.key_name == name and e.key_version < version)
        log.info("key %r: versions below %d retired", name, version)

    def destroy_version(self, name: str, version: int) -> None:
        """Destroys a retired version's key in the token. Irreversible: its blobs are lost.

        Raises:
            KeyNotFound: no such key or version.
            ValueError: the version is not retired (below the minimum decryption version).
        """
        check_name(name)

        def destroy(ps: PooledSession) -> _Meta:
            meta, _ = self._read_meta(ps, name)
            if version not in meta.versions:
                raise KeyNotFound(f"the token holds no version {version} of key {name!r}")
            if version >= meta.min_decryption_version:
                raise ValueError(
                    f"version {version} of {name!r} still decrypts: retire it first with "
                    f"set_min_decryption_version({name!r}, {version + 1})"
                )
            self._kek(ps, name, version).destroy()
            ps.keys.pop((name, version), None)
            return self._read_meta(ps, name)[0]

        with self._name_lock(name):
            self._meta[name] = self._pool.run(destroy, f"destroying {name!r} v{version}")
            self._cache.purge(lambda e: e.key_name == name and e.key_version == version)
        log.info("key %r: version %d destroyed", name, version)

    # -- the HSM operations behind the hierarchy ---------------------------------------

    def _gcm(self, kek: Any, encrypt: bool, data: bytes, aad: bytes, iv: bytes) -> bytes:
        """C_Encrypt / C_Decrypt with CKM_AES_GCM and raw CK_GCM_PARAMS (the IV buffer must be
        writable: some HSMs write the IV they generate into it)."""
        iv_buf = ctypes.create_string_buffer(iv, len(iv))
        aad_buf = ctypes.create_string_buffer(aad, len(aad))
        params = _CK_GCM_PARAMS(
            ctypes.addressof(iv_buf), len(iv), len(iv) * 8, ctypes.addressof(aad_buf), len(aad), 128
        )
        mechanism = _mechanism(self.profile.gcm_mechanism)
        op = kek.encrypt if encrypt else kek.decrypt
        out = op(data, mechanism=mechanism, mechanism_param=bytes(params))
        if encrypt:
            return iv_buf.raw + out
        return out

    def _wrap(self, ps: PooledSession, kek: Any, prefix: bytes, intermediate: bytes) -> bytes:
        p = self.profile
        if p.wrap == "aes-kwp":
            return self._kwp_wrap(ps, kek, intermediate)
        iv_len = p.gcm_iv_len
        iv = os.urandom(iv_len) if p.gcm_iv == "host" else bytes(iv_len)
        result = self._gcm(kek, True, intermediate, prefix, iv)
        iv, out = result[:iv_len], result[iv_len:]
        want = len(intermediate) + blob.GCM_TAG_LEN
        if p.gcm_iv == "hsm-appended":
            if len(out) != want + iv_len:
                raise HsmConfigError(
                    f"profile {p.name!r} expects the HSM to append a {iv_len}-byte IV to AES-GCM "
                    f"output; got {len(out)} bytes for {len(intermediate)} (wrong profile?)"
                )
            out, iv = out[:want], out[want:]
        if len(out) != want:
            raise HsmConfigError(f"AES-GCM returned {len(out)} bytes, expected {want}")
        if p.gcm_iv != "host" and iv == bytes(iv_len):
            raise HsmConfigError(
                f"profile {p.name!r} expects the HSM to generate the AES-GCM IV, but it used the "
                "all-zero placeholder (wrong profile?)"
            )
        return blob.gcm_wrapped(iv, out)

    def _kwp_wrap(self, ps: PooledSession, kek: Any, intermediate: bytes) -> bytes:
        # C_WrapKey takes a key object: import the intermediate key as a short-lived,
        # extractable session object, wrap it, destroy it.
        temp = ps.session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: intermediate,
                Attribute.TOKEN: False,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.ENCRYPT: False,
                Attribute.DECRYPT: False,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
            }
        )
        try:
            return kek.wrap_key(temp, mechanism=_mechanism(self.profile.kwp_mechanism))
        finally:
            temp.destroy()

    def _unwrap(self, ps: PooledSession, kek: Any, header: Header) -> bytes:
        try:
            if header.wrap == blob.WRAP_AES_GCM:
                iv, ciphertext = blob.gcm_unwrapped(header.wrapped)
                intermediate = self._gcm(kek, False, ciphertext, header.prefix, iv)
            else:
                obj = kek.unwrap_key(
                    ObjectClass.SECRET_KEY,
                    KeyType.AES,
                    header.wrapped,
                    mechanism=_mechanism(self.profile.kwp_mechanism),
                    store=False,
                    capabilities=MechanismFlag(0),
                    template={
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: False,
                        Attribute.EXTRACTABLE: True,
                    },
                )
                try:
                    intermediate = bytes(obj[Attribute.VALUE])
                finally:
                    obj.destroy()
        except p11.PKCS11Error as e:
            if type(e).__name__ in self.profile.tag_failures:
                raise InvalidTag() from None
            raise
        if len(intermediate) != blob.INTERMEDIATE_KEY_LEN:
            raise InvalidTag()
        return intermediate

    def _sealing_key(self, name: str, want: int) -> tuple[Intermediate, int]:
        """The intermediate key new seals of ``name`` use, with ``take`` <= ``want`` uses
        reserved on it. A new one is wrapped in the HSM when the current one is for an older
        version, too old, or used up."""
        with self._name_lock(name):
            meta = self._meta_for(name)
            cur = self._current.get(name)
            if (
                cur is None
                or cur.key_version != meta.newest
                or cur.uses >= self.key_max_uses
                or time.monotonic() - cur.created >= self.key_max_age
            ):
                cur = self._new_intermediate(name, meta.newest)
                self._current[name] = cur
            take = min(want, self.key_max_uses - cur.uses)
            cur.uses += take
            return cur, take

    def _new_intermediate(self, name: str, version: int) -> Intermediate:
        wrap = blob.WRAP_AES_GCM if self.profile.wrap == "aes-gcm" else blob.WRAP_AES_KWP
        prefix = blob.make_prefix(name, version, wrap)
        intermediate = os.urandom(blob.INTERMEDIATE_KEY_LEN)
        try:
            wrapped = self._pool.run(
                lambda ps: self._wrap(ps, self._kek(ps, name, version), prefix, intermediate),
                f"wrapping an intermediate key under {name!r} v{version}",
            )
        except KeyNotFound:
            # Destroyed by another process since this one read the versions.
            self._meta.pop(name, None)
            raise
        entry = Intermediate(
            key_name=name,
            key_version=version,
            header=blob.make_header(prefix, wrapped),
            key=blob.envelope_key(intermediate, prefix),
            key_id=key_id(name, version),
            created=time.monotonic(),
        )
        self._cache.put(entry)
        self._count("intermediate_keys_wrapped")
        return entry

    def _check_version(self, name: str, version: int) -> None:
        try:
            meta = self._meta_for(name)
            now = time.monotonic()
            if version > meta.newest and now - self._forced.get(name, -1e9) >= _FORCED_REFRESH:
                # Rotated by another process? Asked at most once a second per key, so blobs
                # naming made-up versions cannot turn into a stream of HSM calls.
                self._forced[name] = now
                meta = self._meta_for(name, fresh=True)
        except KeyNotFound:
            raise BlobKeyNotFound(
                f"blob names key {name!r}, which token {self.token_label!r} does not hold"
            ) from None
        if version < meta.min_decryption_version:
            raise KeyVersionRetired(name, version, meta.min_decryption_version)
        if version not in meta.versions:
            raise BlobKeyNotFound(
                f"blob names version {version} of key {name!r}, which the token does not hold"
            )

    def _opening_key(self, raw_header: bytes) -> Intermediate:
        """The intermediate key of a blob header: from the cache, else unwrapped in the HSM."""
        entry = self._cache.get(raw_header)
        if entry is not None:
            self._check_version(entry.key_name, entry.key_version)
            return entry
        header = Header.parse(raw_header)
        self._check_version(header.key_name, header.key_version)
        return self._flight.run(raw_header, lambda: self._unwrap_intermediate(header))

    def _unwrap_intermediate(self, header: Header) -> Intermediate:
        def unwrap(ps: PooledSession) -> bytes:
            try:
                kek = self._kek(ps, header.key_name, header.key_version)
            except KeyNotFound as e:
                raise BlobKeyNotFound(str(e)) from None
            return self._unwrap(ps, kek, header)

        intermediate = self._pool.run(unwrap, "unwrapping an intermediate key")
        entry = Intermediate(
            key_name=header.key_name,
            key_version=header.key_version,
            header=header.raw,
            key=blob.envelope_key(intermediate, header.prefix),
            key_id=header.key_id,
            created=time.monotonic(),
        )
        self._cache.put(entry)
        self._count("intermediate_keys_unwrapped")
        return entry

    # -- sealing and opening ------------------------------------------------------------

    def seal(self, name: str, plaintext: Any, *, context: Context) -> bytes:
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
        cur, _ = self._sealing_key(check_name(name), 1)
        return cur.header + envelope.seal(cur.key, plaintext, context=context, key_id=cur.key_id)

    def seal_many(
        self, name: str, plaintexts: Any, *, context: Context | Sequence[Context]
    ) -> list[bytes]:
        """:meth:`seal` for a batch: a sequence of bytes-like objects or a 2-D uint8 numpy
        array (one item per row); ``context`` is one for all or a list of one per item. The
        envelopes are sealed on all cores with the GIL released.

        Raises:
            As :meth:`seal`; ValueError for a context list of the wrong length.
        """
        check_name(name)
        items = plaintexts if hasattr(plaintexts, "__getitem__") else list(plaintexts)
        n = len(items)
        per_item = isinstance(context, list)
        if per_item and len(context) != n:
            raise ValueError(f"got {len(context)} contexts for {n} items")
        out: list[bytes] = []
        pos = 0
        while pos < n:
            cur, take = self._sealing_key(name, n - pos)
            ctx = context[pos : pos + take] if per_item else context
            out.extend(
                envelope.seal_many(
                    cur.key,
                    items[pos : pos + take],
                    context=ctx,
                    key_id=cur.key_id,
                    prefix=cur.header,
                )
            )
            pos += take
        return out

    def open(self, sealed: Any, *, context: Context) -> bytes:
        """Opens a blob made by :meth:`seal` with the same ``context``.

        Raises:
            portal_core.exceptions.InvalidTag: tampered, wrong context, or wrong token (the
                subclasses ``MalformedBlob`` and ``BlobKeyNotFound`` say more).
            KeyVersionRetired: the blob's key version is retired.
            HsmUnavailable: the HSM failed while unwrapping its intermediate key.
        """
        view = memoryview(sealed).cast("B")
        end = header_len(view)
        entry = self._opening_key(bytes(view[:end]))
        try:
            return envelope.open(entry.key, view[end:], context=context)
        except InvalidTag:
            raise
        except InvalidEnvelope as e:
            raise MalformedBlob(f"KMS blob holds a malformed envelope: {e}") from None

    @staticmethod
    def _group(sealed: Any) -> tuple[list[Any], dict[bytes, list[int]]]:
        """The blobs of a batch, grouped by header (that is, by intermediate key).

        A batch usually holds a few intermediate keys, so each header found is matched
        against the remaining blobs with ``startswith``, in C, rather than parsing every
        header in Python; past a few distinct headers the rest are parsed one by one. A
        header is self-delimiting, so a blob that starts with a header has that header.
        """
        items = [b if isinstance(b, bytes | bytearray) else bytes(b) for b in sealed]
        groups: dict[bytes, list[int]] = {}
        pending = list(range(len(items)))
        while pending:
            if len(groups) >= _SCANNED_HEADERS:
                for i in pending:
                    groups.setdefault(_header_of(items[i], i), []).append(i)
                break
            header = _header_of(items[pending[0]], pending[0])
            same = [i for i in pending if items[i].startswith(header)]
            groups[header] = same
            if len(same) == len(pending):
                break
            pending = [i for i in pending if not items[i].startswith(header)]
        return items, groups

    def _batch_key(self, header: bytes, first: int) -> Intermediate:
        try:
            return self._opening_key(header)
        except Exception as e:
            e.add_note(f"batch item {first}")
            raise

    def _first_failure(self, attempt: Any, indices: list[int]) -> Exception:
        """After a batch failed in the core: which item, as the error to raise."""
        for i in indices:
            try:
                attempt(i)
            except InvalidTag:
                return InvalidTag(f"item {i} failed authentication")
            except InvalidEnvelope as e:
                return MalformedBlob(f"item {i}: KMS blob holds a malformed envelope: {e}")
        return InvalidTag(f"an item among {indices[:5]}... failed authentication")

    def open_many(self, sealed: Any, *, context: Context | Sequence[Context]) -> list[bytes]:
        """Opens a batch of blobs (any mix of keys and versions) on all cores.

        ``context`` is one for all or a list of one per item. All or nothing: if any item
        fails, the call raises (naming a failing item) and returns no plaintext.

        Raises:
            As :meth:`open`; ValueError for a context list of the wrong length.
        """
        items, groups = self._group(sealed)
        n = len(items)
        per_item = isinstance(context, list)
        if per_item and len(context) != n:
            raise ValueError(f"got {len(context)} contexts for {n} items")
        out: list[Any] = [None] * n
        for header, indices in groups.items():
            entry = self._batch_key(header, indices[0])
            ctx = [context[i] for i in indices] if per_item else context
            batch = items if len(indices) == n else [items[i] for i in indices]
            try:
                opened = envelope.open_many(entry.key, batch, context=ctx, skip=len(header))
            except (InvalidTag, InvalidEnvelope):

                def attempt(i: int, key: bytes = entry.key, skip: int = len(header)) -> None:
                    ctx_i = context[i] if per_item else context
                    envelope.open(key, memoryview(items[i])[skip:], context=ctx_i)

                raise self._first_failure(attempt, indices) from None
            if len(indices) == n:
                return opened
            for i, plaintext in zip(indices, opened, strict=True):
                out[i] = plaintext
        return out

    def rewrap(self, sealed: Any) -> bytes:
        """Moves a blob to the newest version of its key; the plaintext never leaves the core.

        The context stored in the blob is authenticated by the old envelope and bound again
        by the new one, so no context is needed here.

        Raises:
            As :meth:`open`.
        """
        return self.rewrap_many([sealed])[0]

    def rewrap_many(self, sealed: Any) -> list[bytes]:
        """:meth:`rewrap` for a batch (all or nothing), on all cores: one HSM unwrap per
        distinct intermediate key in the batch, not per blob.

        Raises:
            As :meth:`open_many`.
        """
        items, groups = self._group(sealed)
        out: list[Any] = [None] * len(items)
        for header, indices in groups.items():
            old = self._batch_key(header, indices[0])
            pos = 0
            while pos < len(indices):
                cur, take = self._sealing_key(old.key_name, len(indices) - pos)
                chunk = indices[pos : pos + take]
                try:
                    moved = envelope.reseal_many(
                        old.key,
                        [items[i] for i in chunk],
                        cur.key,
                        key_id=cur.key_id,
                        skip=len(header),
                        prefix=cur.header,
                    )
                except (InvalidTag, InvalidEnvelope):

                    def attempt(i: int, key: bytes = old.key, skip: int = len(header)) -> None:
                        envelope.reseal(key, memoryview(items[i])[skip:], key)

                    raise self._first_failure(attempt, chunk) from None
                for i, blob_ in zip(chunk, moved, strict=True):
                    out[i] = blob_
                pos += take
        return out

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

    def decrypt_data_key(self, wrapped: Any, context: Context) -> bytes:
        """The data key inside ``wrapped`` (from :meth:`generate_data_key`), same ``context``.

        Raises:
            As :meth:`open`.
        """
        return self.open(wrapped, context=context)

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
        wrap = blob.WRAP_AES_GCM if self.profile.wrap == "aes-gcm" else blob.WRAP_AES_KWP
        prefix = blob.make_prefix("self-test", 1, wrap)
        intermediate = os.urandom(blob.INTERMEDIATE_KEY_LEN)

        def check(ps: PooledSession) -> dict[str, Any]:
            capabilities = (
                MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
                if wrap == blob.WRAP_AES_GCM
                else MechanismFlag.WRAP | MechanismFlag.UNWRAP
            )
            kek = ps.session.generate_key(
                KeyType.AES,
                256,
                label="portal-kms-self-test",
                store=False,
                capabilities=capabilities,
                template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
            try:
                try:
                    kek[Attribute.VALUE]
                    raise HsmConfigError("the HSM let a sensitive key's value be read")
                except p11.AttributeSensitive:
                    pass
                wrapped = self._wrap(ps, kek, prefix, intermediate)
                header = Header.parse(blob.make_header(prefix, wrapped))
                if self._unwrap(ps, kek, header) != intermediate:
                    raise HsmConfigError("unwrapping returned a different key")
                tampered = bytearray(wrapped)
                tampered[-1] ^= 1
                try:
                    self._unwrap(ps, kek, Header.parse(blob.make_header(prefix, bytes(tampered))))
                    raise HsmConfigError("the HSM unwrapped a tampered key")
                except InvalidTag:
                    pass
            finally:
                kek.destroy()
            return {
                "profile": self.profile.name,
                "profile_tested_by_project": self.profile.tested,
                "wrap": blob.WRAP_NAMES[wrap],
                "gcm_iv": self.profile.gcm_iv if wrap == blob.WRAP_AES_GCM else None,
                "wrapped_key_bytes": len(wrapped),
                "library": self._pool.path,
                "token_label": self.token_label,
            }

        return self._pool.run(check, "self-test")

    @staticmethod
    def inspect(sealed: Any) -> blob.BlobInfo:
        """Key name, version, wrap mechanism, context and length of a blob; no HSM needed.

        Raises:
            MalformedBlob: not a well-formed KMS blob.
        """
        return blob.inspect(sealed)

    def _reset_after_fork(self) -> None:
        # Locks held by other threads at fork time would stay held in the child, and the
        # intermediate keys in use count their seals per process: start both afresh.
        self._init_state()
        self._cache.reset_after_fork()
        self._cache.clear()


def _after_fork_in_child() -> None:
    for kms in list(_instances):
        kms._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
