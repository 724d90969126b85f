"""The compiled core (``portal_core._rust``). Import the public modules instead."""

from typing import TypedDict

from . import aead as aead
from . import envelope as envelope
from . import kdf as kdf
from . import shares as shares

__all__ = ["aead", "cpu_features", "envelope", "kdf", "shares"]

class CpuFeatures(TypedDict, total=False):
    arch: str
    aes: bool
    pclmulqdq: bool
    pmull: bool
    avx2: bool
    avx512f: bool
    vaes: bool
    sha: bool
    backend: str

def cpu_features() -> CpuFeatures:
    """The CPU features the core uses, and the AES-GCM code path chosen at run time.

    Keys: ``arch``; booleans ``aes``, ``pclmulqdq`` (``pmull`` on aarch64), ``avx2``,
    ``avx512f``, ``vaes`` (VAES with VPCLMULQDQ), ``sha``; and ``backend``, naming the path.
    """
