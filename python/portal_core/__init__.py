"""portal-core: backup and recovery for MPC wallets on a hardware-accelerated crypto core."""

from __future__ import annotations

import sys

from portal_core import _rust, aead, envelope, exceptions, kdf, shares
from portal_core._rust import cpu_features

# The core's submodules are attributes of the extension module; registered under their dotted
# names as well, ``import portal_core._rust.aead`` works, as the stubs (one .pyi per
# submodule in python/portal_core/_rust/) and mypy.stubtest take it to.
for _name in ("aead", "envelope", "kdf", "shares"):
    sys.modules.setdefault(f"{_rust.__name__}.{_name}", getattr(_rust, _name))
del _name

__all__ = ["DISTRIBUTION", "aead", "cpu_features", "envelope", "exceptions", "kdf", "shares"]
__version__ = "0.1.0"
# The name to install this package by (`pip install portal-core-mpc`); the import name is
# `portal_core`. (`portal-core` on the package index is an unrelated project.)
DISTRIBUTION = "portal-core-mpc"
