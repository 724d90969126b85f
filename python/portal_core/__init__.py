"""portal-core: backup and recovery for MPC wallets on a hardware-accelerated crypto core."""

from __future__ import annotations

from portal_core import aead, envelope, exceptions, kdf, shares
from portal_core._rust import cpu_features

__all__ = ["DISTRIBUTION", "aead", "cpu_features", "envelope", "exceptions", "kdf", "shares"]
__version__ = "0.1.0"
# The name to install this package by (`pip install portal-core-mpc`); the import name is
# `portal_core`. (`portal-core` on the package index is an unrelated project.)
DISTRIBUTION = "portal-core-mpc"
