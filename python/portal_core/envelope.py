"""The sealed envelope every stored secret uses (format: ``docs/envelope.md``).

Key-committing (an envelope opens under exactly one key), a fresh data key per
message (safe far beyond 2**32 messages per key), and a ``context`` of
``dict[str, str]`` bound as authenticated data: opening with another context fails.
The context and key id are stored in clear; they name things, they are not secret.

Batches: ``seal_many``/``open_many`` return one ``bytes`` per item. For large batches of
equal-length items, ``seal_many_array``/``open_many_array`` return one 2-D uint8 numpy
array instead (one allocation, not one per item), and ``seal_many_into``/``open_many_into``
write into the caller's preallocated array (no allocation at all). Allocating a fresh
``bytes`` object per item costs more than the AES-GCM itself in a fresh process.
"""

from __future__ import annotations

from portal_core._rust import envelope as _env

seal = _env.seal
open = _env.open
inspect = _env.inspect
seal_many = _env.seal_many
open_many = _env.open_many
seal_many_array = _env.seal_many_array
open_many_array = _env.open_many_array
seal_many_into = _env.seal_many_into
open_many_into = _env.open_many_into
reseal = _env.reseal
reseal_many = _env.reseal_many
KEY_LEN: int = _env.KEY_LEN
VERSION: int = _env.VERSION

__all__ = [
    "KEY_LEN",
    "VERSION",
    "inspect",
    "open",
    "open_many",
    "open_many_array",
    "open_many_into",
    "reseal",
    "reseal_many",
    "seal",
    "seal_many",
    "seal_many_array",
    "seal_many_into",
]
