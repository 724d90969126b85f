"""One PKCS#11 module per process, initialised with OS locking.

python-pkcs11 (0.10) initialises a module with ``C_Initialize(NULL)``. PKCS#11 then allows the
module to assume a single thread, and SoftHSM2 drops its internal mutexes: two threads on two
sessions corrupt its state and crash the process. The fix is ``C_Initialize`` with
``CK_C_INITIALIZE_ARGS{flags = CKF_OS_LOCKING_OK}`` (PKCS#11 v2.40 section 5.4), which
python-pkcs11 cannot pass. So after python-pkcs11 has loaded the module (``dlopen`` hands
cffi the same instance), this module calls ``C_Finalize(NULL)`` and then ``C_Initialize``
with OS locking through the module's own function list. python-pkcs11 keeps believing the
module is initialised (it is), keeps every function pointer it resolved, and finalises it at
exit as before.

The same re-initialisation runs in a forked child: PKCS#11 sessions and handles do not survive
``fork`` and the child must initialise the module again (section 6.7.7).

The calls go through cffi in ABI mode: ``ffi.dlopen`` of the module's file and the declarations
of :mod:`portal_core.kms._cryptoki`, as the standard writes them.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from pkcs11.exceptions import PKCS11Error

from portal_core.kms import softhsm
from portal_core.kms._cryptoki import (
    CKF_OS_LOCKING_OK,
    CKR_CANT_LOCK,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_OK,
    CKS_RO_USER_FUNCTIONS,
    CKS_RW_USER_FUNCTIONS,
    ffi,
)
from portal_core.kms.errors import HsmConfigError

__all__ = ["Module", "load"]

log = logging.getLogger("portal_core.kms")

# Session states in which the session sees private objects (the user is logged in).
_USER_STATES = (CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS)


@dataclass(eq=False)
class Module:
    """A loaded module: python-pkcs11's ``lib`` plus the process it was initialised in."""

    path: str
    lib: Any  # python-pkcs11's ``pkcs11._pkcs11.lib``
    pid: int
    generation: int = 0
    # The cffi library (kept so the file stays open) and its CK_FUNCTION_LIST.
    _so: Any = field(default=None, repr=False)
    _functions: Any = field(default=None, repr=False)

    def _function_list(self) -> Any:
        """The module's ``CK_FUNCTION_LIST``, from its ``C_GetFunctionList``. ``dlopen`` of the
        same file returns the instance python-pkcs11 loaded, so these are its functions."""
        if self._functions is None:
            try:
                # Any: the library's functions and the structs' fields come from the C
                # declarations handed to cffi at run time, which types-cffi cannot see.
                so: Any = ffi.dlopen(self.path)
                get_list = so.C_GetFunctionList
            except (OSError, AttributeError) as e:
                raise HsmConfigError(
                    f"{self.path} is not a PKCS#11 module ({type(e).__name__})"
                ) from None
            table = ffi.new("CK_FUNCTION_LIST_PTR *")
            rv = get_list(table)
            if rv != CKR_OK or table[0] == ffi.NULL:
                raise HsmConfigError(f"C_GetFunctionList of {self.path} failed (CKR 0x{rv:x})")
            self._so, self._functions = so, table[0]
        return self._functions

    def logged_in(self, session_handle: int) -> bool | None:
        """Whether the session sees private objects (the user is logged in); None if the
        session handle is no longer valid.

        A session that lost its login finds no private object: without this check a lost
        login would read as "no such key".
        """
        info: Any = ffi.new("CK_SESSION_INFO *")  # a CK_SESSION_INFO: fields as declared in C
        rv = self._function_list().C_GetSessionInfo(session_handle, info)
        if rv != CKR_OK:
            return None
        return info.state in _USER_STATES

    def initialise_with_os_locking(self) -> None:
        """Finalises the module and initialises it again with CKF_OS_LOCKING_OK.

        Callers hold the registry lock and no session of this module is in use.
        """
        functions = self._function_list()
        rv = functions.C_Finalize(ffi.NULL)
        if rv not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
            raise HsmConfigError(f"C_Finalize of {self.path} failed (CKR 0x{rv:x})")
        # No mutex callbacks (NULL) and CKF_OS_LOCKING_OK: the module uses the OS's locks.
        args = ffi.new("CK_C_INITIALIZE_ARGS *", {"flags": CKF_OS_LOCKING_OK})
        rv = functions.C_Initialize(args)
        if rv == CKR_CANT_LOCK:
            raise HsmConfigError(
                f"{self.path} cannot use operating-system locking; portal_core.kms needs a "
                "thread-safe module"
            )
        if rv != CKR_OK:
            raise HsmConfigError(
                f"C_Initialize with OS locking of {self.path} failed (CKR 0x{rv:x})"
                + _init_hint(self.path)
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
                    + _init_hint(real)
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


def _init_hint(path: str) -> str:
    """What to check when a module fails to initialise: for SoftHSM2, its configuration file
    (a missing SOFTHSM2_CONF or token directory makes C_Initialize fail with a bare
    CKR_GENERAL_ERROR)."""
    if "softhsm" not in os.path.basename(path).lower():
        return ""
    return ": " + softhsm.explain_init_failure()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
