"""A thread-safe pool of PKCS#11 sessions on one token, behind one long-lived login.

PKCS#11 allows one operation at a time per session, and object handles belong to the session
that found them; so each thread borrows its own session, and each session caches its own key
handles. Login is per process and token: one *anchor* session holds it for the pool's life
(python-pkcs11 logs out when a logged-in session closes, which would log out every session).

Recovery, each retried once and only when the failed call cannot have run:
  * a closed or invalid session is discarded and the call runs on a fresh one;
  * an invalid object handle empties that session's handle cache (the key is found again);
  * a lost login (another session logged out) logs in again;
  * a removed token or device reconnects on the next call;
  * a fork is detected by pid: the child re-initialises the module and logs in again.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pkcs11 import exceptions as p11

from portal_core.kms import _module, softhsm
from portal_core.kms.errors import HsmAuthError, HsmConfigError, HsmUnavailable, KmsError

__all__ = ["Pin", "PooledSession", "SessionPool", "translate"]

log = logging.getLogger("portal_core.kms")
T = TypeVar("T")

_AUTH_ERRORS = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinExpired,
    p11.PinLocked,
    p11.UserPinNotInitialized,
    p11.UserNotLoggedIn,
)
_CONFIG_ERRORS = (
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.FunctionNotSupported,
    p11.TemplateIncomplete,
    p11.TemplateInconsistent,
    p11.AttributeTypeInvalid,
    p11.AttributeValueInvalid,
    p11.KeyTypeInconsistent,
    p11.KeySizeRange,
    p11.TokenWriteProtected,
    p11.SessionReadOnly,
    p11.NoSuchToken,
    p11.MultipleTokensReturned,
)
# Errors that prove the call never ran: retrying it cannot do anything twice.
_STALE_SESSION = (p11.SessionHandleInvalid, p11.SessionClosed)
_STALE_HANDLE = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)
_GONE = (p11.TokenNotPresent, p11.DeviceRemoved)


def translate(e: p11.PKCS11Error, what: str = "HSM call") -> KmsError:
    """The KMS error for a python-pkcs11 error (its class name, never any argument)."""
    name = type(e).__name__
    if isinstance(e, _AUTH_ERRORS):
        return HsmAuthError(f"{what}: the token refused the login ({name})")
    if isinstance(e, _CONFIG_ERRORS):
        return HsmConfigError(f"{what}: the HSM does not support the request ({name})")
    return HsmUnavailable(f"{what} failed ({name})")


class Pin:
    """Holds a PIN so that no repr, str, log line, traceback or pickle ever shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError("the PIN must be a non-empty str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Pin(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a PIN cannot be pickled")


class PooledSession:
    """A borrowed session and its key-handle cache (handles are only valid in this session)."""

    __slots__ = ("broken", "generation", "keys", "session")

    def __init__(self, session: Any, generation: int) -> None:
        self.session = session
        self.generation = generation
        self.keys: dict[Any, Any] = {}
        self.broken = False


_pools: weakref.WeakSet[SessionPool] = weakref.WeakSet()
# The PIN each (module, token) login of this process was made with.
_logins: dict[tuple[str, str], Pin] = {}
_logins_lock = threading.Lock()


class SessionPool:
    """Up to ``size`` sessions on the token labelled ``token_label`` of module ``path``."""

    def __init__(self, path: str, token_label: str, pin: Pin, *, size: int, timeout: float) -> None:
        self.path = path
        self.token_label = token_label
        self._pin = pin
        self.size = size
        self.timeout = timeout
        self._init_state()
        self.stats = {
            "hsm_calls": 0,
            "hsm_max_in_flight": 0,
            "sessions_opened": 0,
            "sessions_recovered": 0,
            "handles_recovered": 0,
            "logins": 0,
            "forks_detected": 0,
        }
        _pools.add(self)

    def _init_state(self) -> None:
        self._cond = threading.Condition()
        self._stats_lock = threading.Lock()
        self._idle: list[PooledSession] = []
        self._open = 0
        self._module: _module.Module | None = None
        self._token: Any = None
        self._anchor: Any = None
        self._old_anchors: list[Any] = []
        self._generation = -1
        self._pid = os.getpid()
        self._closed = False
        self._in_flight = 0

    def __repr__(self) -> str:
        return (
            f"SessionPool(path={self.path!r}, token_label={self.token_label!r}, "
            f"size={self.size}, open={self._open})"
        )

    # -- connecting ---------------------------------------------------------------------

    def _connect_locked(self) -> None:
        """Loads the module, finds the token and logs in, unless already done."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        module = self._module
        if module is None or module.pid != os.getpid():
            module = _module.load(self.path)
        if self._anchor is not None and module.generation == self._generation:
            return
        # Sessions of an earlier generation died with it (re-initialised after a fork, or
        # reconnecting after the token went away): drop them without a call.
        self._idle.clear()
        try:
            self._token = module.lib.get_token(token_label=self.token_label)
        except p11.NoSuchToken:
            hint = ""
            if "softhsm" in self.path.lower():
                hint = (
                    " (SoftHSM2 finds its tokens in the directory its SOFTHSM2_CONF names: "
                    f"{softhsm.INIT_HINT})"
                )
            raise HsmConfigError(
                f"no token labelled {self.token_label!r} in {self.path}{hint}"
            ) from None
        except p11.MultipleTokensReturned:
            raise HsmConfigError(
                f"more than one token is labelled {self.token_label!r} in {self.path}"
            ) from None
        except p11.PKCS11Error as e:
            raise translate(e, "finding the token") from None
        self._module = module
        self._generation = module.generation
        self._anchor = None
        self._login_locked()

    def _login_locked(self) -> None:
        # Login belongs to the process, not to a session or a pool: a second C_Login fails
        # with CKR_USER_ALREADY_LOGGED_IN before the token looks at the PIN. So a pool that
        # joins an existing login checks its PIN against the one that login used; should
        # the owner log out, this pool sees UserNotLoggedIn and logs in itself.
        key = (self.path, self.token_label)
        with _logins_lock:
            holder = _logins.get(key)
        if holder is not None and self._anchor is None:
            self._check_same_pin(holder)
            anchor = self._token.open(rw=True)
        else:
            try:
                anchor = self._token.open(rw=True, user_pin=self._pin.reveal())
            except p11.UserAlreadyLoggedIn:
                if holder is not None:
                    self._check_same_pin(holder)
                anchor = self._token.open(rw=True)
            except p11.PKCS11Error as e:
                raise translate(e, f"logging in to token {self.token_label!r}") from None
            else:
                with _logins_lock:
                    _logins[key] = self._pin
        if self._anchor is not None:
            # Closing the old anchor through python-pkcs11 would log out again; keep it open
            # until close().
            self._old_anchors.append(self._anchor)
        self._anchor = anchor
        self._count("logins")
        log.debug("logged in to token %r", self.token_label)

    def _check_same_pin(self, holder: Pin) -> None:
        if not hmac.compare_digest(holder.reveal().encode(), self._pin.reveal().encode()):
            raise HsmAuthError(
                f"logging in to token {self.token_label!r}: the token refused the login (this "
                "process is logged in to it with a different PIN)"
            )

    def _relogin(self) -> None:
        with self._cond:
            self._login_locked()

    def _disconnect(self) -> None:
        with self._cond:
            self._anchor = None
            self._generation = -1
            self._idle.clear()

    def _reset_after_fork(self) -> None:
        """Forgets every session (they belong to the parent) so the child starts afresh."""
        closed = self._closed
        self._init_state()
        self._closed = closed
        self.stats["forks_detected"] += 1

    # -- borrowing ----------------------------------------------------------------------

    def _checkout(self) -> PooledSession:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                if self._closed:
                    raise HsmUnavailable("the KMS is closed")
                self._connect_locked()
                if self._idle:
                    return self._idle.pop()
                if self._open < self.size:
                    self._open += 1
                    token, generation = self._token, self._generation
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise HsmUnavailable(
                        f"no HSM session became free within {self.timeout} s "
                        f"(pool_size={self.size})"
                    )
                self._cond.wait(remaining)
        try:
            session = token.open(rw=True)
        except p11.PKCS11Error as e:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise translate(e, "opening a session") from None
        self._count("sessions_opened")
        return PooledSession(session, generation)

    def _checkin(self, ps: PooledSession) -> None:
        with self._cond:
            keep = not (ps.broken or self._closed or ps.generation != self._generation)
            if keep:
                self._idle.append(ps)
            else:
                self._open -= 1
            self._cond.notify()
        if not keep and ps.generation == self._generation:
            _close_quietly(ps.session)

    @contextmanager
    def acquire(self) -> Iterator[PooledSession]:
        """Borrows a session for the duration of the ``with`` block."""
        ps = self._checkout()
        try:
            yield ps
        finally:
            self._checkin(ps)

    def run(self, fn: Callable[[PooledSession], T], what: str = "HSM call") -> T:
        """Runs ``fn`` on a borrowed session, recovering stale state (module docstring).

        Each kind of recovery is tried once per call; they can chain (a lost login first
        shows as an invalid handle, then as a key that cannot be found).

        Raises:
            HsmUnavailable, HsmAuthError, HsmConfigError: as :func:`translate`.
        """
        recovered: set[str] = set()
        kind: str
        last: p11.PKCS11Error  # the stale-state error to recover from (or to raise)
        while True:
            with self.acquire() as ps:
                self._enter()
                try:
                    return fn(ps)
                except _STALE_SESSION as e:
                    kind, last = "session", e
                    ps.broken = True
                except _STALE_HANDLE as e:
                    kind, last = "handle", e
                    ps.keys.clear()
                except p11.UserNotLoggedIn as e:
                    kind, last = "login", e
                except _GONE as e:
                    kind, last = "token", e
                    ps.broken = True
                except p11.PKCS11Error as e:
                    raise translate(e, what) from None
                finally:
                    self._leave()
            if kind in recovered:
                raise translate(last, what) from None
            recovered.add(kind)
            log.debug("%s: recovering from %s", what, type(last).__name__)
            if kind == "session":
                self._count("sessions_recovered")
            elif kind == "handle":
                self._count("handles_recovered")
            elif kind == "login":
                self._relogin()
            else:
                self._disconnect()

    def check_login(self, ps: PooledSession) -> None:
        """Raises UserNotLoggedIn (which :meth:`run` recovers from) if ``ps`` lost the login.

        Call it when a search for a private object came back empty.
        """
        module = self._module
        if module is not None and module.logged_in(ps.session.handle) is False:
            raise p11.UserNotLoggedIn()

    def _enter(self) -> None:
        with self._stats_lock:
            self._in_flight += 1
            self.stats["hsm_calls"] += 1
            if self._in_flight > self.stats["hsm_max_in_flight"]:
                self.stats["hsm_max_in_flight"] = self._in_flight

    def _leave(self) -> None:
        with self._stats_lock:
            self._in_flight -= 1

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    def open_sessions(self) -> int:
        return self._open

    def close(self) -> None:
        """Closes every idle session, then the login. Sessions in use close when returned."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            anchors = [*self._old_anchors, self._anchor]
            self._old_anchors, self._anchor = [], None
            self._open -= len(idle)
            mine = self._pid == os.getpid()
        if not mine:
            return
        with _logins_lock:
            if _logins.get((self.path, self.token_label)) is self._pin:
                del _logins[(self.path, self.token_label)]
        for ps in idle:
            _close_quietly(ps.session)
        for anchor in anchors:
            if anchor is not None:
                _close_quietly(anchor)


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except p11.PKCS11Error as e:
        log.debug("closing a session failed (%s); it is dropped", type(e).__name__)


def _after_fork_in_child() -> None:
    global _logins_lock
    _logins_lock = threading.Lock()
    _logins.clear()  # the child starts logged out
    for pool in list(_pools):
        pool._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
