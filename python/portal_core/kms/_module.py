"""One PKCS#11 module per process, initialised with OS locking.

python-pkcs11 (0.10) initialises a module with ``C_Initialize(NULL)``. PKCS#11 then allows the
module to assume a single thread, and SoftHSM2 drops its internal mutexes: two threads on two
sessions corrupt its state and crash the process. The fix is ``C_Initialize`` with
``CK_C_INITIALIZE_ARGS{flags = CKF_OS_LOCKING_OK}`` (PKCS#11 v2.40 section 5.4), which
python-pkcs11 cannot pass. So after python-pkcs11 has loaded the module (``dlopen`` hands
ctypes the same instance), this module calls ``C_Finalize(NULL)`` and then ``C_Initialize``
with OS locking through the module's own function list. python-pkcs11 keeps believing the
module is initialised (it is), keeps every function pointer it resolved, and finalises it at
exit as before.

The same re-initialisation runs in a forked child: PKCS#11 sessions and handles do not survive
``fork`` and the child must initialise the module again (section 6.7.7).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from pkcs11.exceptions import PKCS11Error

from portal_core.kms.errors import HsmConfigError

__all__ = ["Module", "load"]

log = logging.getLogger("portal_core.kms")

CKF_OS_LOCKING_OK = 0x00000002
CKR_OK = 0x00000000
CKR_CANT_LOCK = 0x0000000A
CKR_CRYPTOKI_NOT_INITIALIZED = 0x00000190

_CK_RV = ctypes.c_ulong  # CK_ULONG: unsigned long on the Unix ABIs PKCS#11 modules use


class _CK_VERSION(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _CK_C_INITIALIZE_ARGS(ctypes.Structure):
    _fields_ = (
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    )


class _CK_SESSION_INFO(ctypes.Structure):
    _fields_ = (
        ("slotID", ctypes.c_ulong),
        ("state", ctypes.c_ulong),
        ("flags", ctypes.c_ulong),
        ("ulDeviceError", ctypes.c_ulong),
    )


_UNUSED = ctypes.c_void_p  # entries this module never calls

# CKS_RO_USER_FUNCTIONS and CKS_RW_USER_FUNCTIONS: a session that sees private objects.
_USER_STATES = (1, 3)


class _CK_FUNCTION_LIST_HEAD(ctypes.Structure):
    """CK_FUNCTION_LIST (PKCS#11 v2.40 section 5.2) up to C_GetSessionInfo: the calls
    python-pkcs11 does not offer. The table's order is fixed by the standard."""

    _fields_ = (
        ("version", _CK_VERSION),
        ("C_Initialize", ctypes.CFUNCTYPE(_CK_RV, ctypes.c_void_p)),
        ("C_Finalize", ctypes.CFUNCTYPE(_CK_RV, ctypes.c_void_p)),
        ("C_GetInfo", _UNUSED),
        ("C_GetFunctionList", _UNUSED),
        ("C_GetSlotList", _UNUSED),
        ("C_GetSlotInfo", _UNUSED),
        ("C_GetTokenInfo", _UNUSED),
        ("C_GetMechanismList", _UNUSED),
        ("C_GetMechanismInfo", _UNUSED),
        ("C_InitToken", _UNUSED),
        ("C_InitPIN", _UNUSED),
        ("C_SetPIN", _UNUSED),
        ("C_OpenSession", _UNUSED),
        ("C_CloseSession", _UNUSED),
        ("C_CloseAllSessions", _UNUSED),
        (
            "C_GetSessionInfo",
            ctypes.CFUNCTYPE(_CK_RV, ctypes.c_ulong, ctypes.POINTER(_CK_SESSION_INFO)),
        ),
    )


@dataclass(eq=False)
class Module:
    """A loaded module: python-pkcs11's ``lib`` plus the process it was initialised in."""

    path: str
    lib: Any  # python-pkcs11's ``pkcs11._pkcs11.lib``
    pid: int
    generation: int = 0
    _functions: _CK_FUNCTION_LIST_HEAD | None = field(default=None, repr=False)

    def _function_list(self) -> _CK_FUNCTION_LIST_HEAD:
        if self._functions is None:
            so = ctypes.CDLL(self.path)
            get_list = so.C_GetFunctionList
            get_list.restype = _CK_RV
            get_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_CK_FUNCTION_LIST_HEAD)),)
            table = ctypes.POINTER(_CK_FUNCTION_LIST_HEAD)()
            rv = get_list(ctypes.byref(table))
            if rv != CKR_OK or not table:
                raise HsmConfigError(f"C_GetFunctionList of {self.path} failed (CKR 0x{rv:x})")
            self._functions = table.contents
        return self._functions

    def logged_in(self, session_handle: int) -> bool | None:
        """Whether the session sees private objects (the user is logged in); None if the
        session handle is no longer valid.

        A session that lost its login finds no private object: without this check a lost
        login would read as "no such key".
        """
        info = _CK_SESSION_INFO()
        rv = self._function_list().C_GetSessionInfo(session_handle, ctypes.byref(info))
        if rv != CKR_OK:
            return None
        return info.state in _USER_STATES

    def initialise_with_os_locking(self) -> None:
        """Finalises the module and initialises it again with CKF_OS_LOCKING_OK.

        Callers hold the registry lock and no session of this module is in use.
        """
        functions = self._function_list()
        rv = functions.C_Finalize(None)
        if rv not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
            raise HsmConfigError(f"C_Finalize of {self.path} failed (CKR 0x{rv:x})")
        args = _CK_C_INITIALIZE_ARGS(flags=CKF_OS_LOCKING_OK)
        rv = functions.C_Initialize(ctypes.byref(args))
        if rv == CKR_CANT_LOCK:
            raise HsmConfigError(
                f"{self.path} cannot use operating-system locking; portal_core.kms needs a "
                "thread-safe module"
            )
        if rv != CKR_OK:
            raise HsmConfigError(
                f"C_Initialize with OS locking of {self.path} failed (CKR 0x{rv:x})"
            )
        self.pid = os.getpid()
        self.generation += 1
        log.debug("PKCS#11 module %s initialised with OS locking (pid %d)", self.path, self.pid)


_lock = threading.Lock()
_modules: dict[str, Module] = {}


def load(path: str) -> Module:
    """The module at ``path``, loaded once per process and initialised with OS locking.

    Raises:
        HsmConfigError: no such file, not a PKCS#11 module, or it cannot initialise.
    """
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise HsmConfigError(f"PKCS#11 module {path!r} does not exist")
    with _lock:
        module = _modules.get(real)
        if module is None:
            try:
                lib = _loaded_by_python_pkcs11(real) or pkcs11.lib(real)
            except PKCS11Error as e:
                raise HsmConfigError(
                    f"cannot load PKCS#11 module {real}: {type(e).__name__} {e}".rstrip()
                ) from None
            module = Module(path=real, lib=lib, pid=os.getpid())
            module.initialise_with_os_locking()
            _modules[real] = module
        elif module.pid != os.getpid():
            log.debug("fork detected: re-initialising %s in pid %d", real, os.getpid())
            module.initialise_with_os_locking()
        return module


def _loaded_by_python_pkcs11(real: str) -> Any:
    """python-pkcs11's ``lib`` for this file if it already loaded it, under any path.

    python-pkcs11 caches libraries by the path string it was given; asking it again under
    another spelling of the same file (a symlink) would call C_Initialize a second time and
    fail with CKR_CRYPTOKI_ALREADY_INITIALIZED.
    """
    for so, lib in getattr(pkcs11, "_loaded", {}).items():
        if os.path.realpath(so) == real:
            return lib
    return None


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
