"""One cold sample: the first batch call of a fresh Python process, timed inside that process.

    python benches/cold_start.py OP API OUT SEALED

OP is ``seal`` or ``open``; API is ``list`` (``seal_many``/``open_many``), ``array``
(``seal_many_array``/``open_many_array``) or ``into`` (``seal_many_into``/``open_many_into``),
or one of two parts of a cold call's cost, alone: ``memory``, ``np.empty`` of the batch's
output size then ``fill(0)`` on one thread (the fresh memory a cold call writes its output
into), and ``rng`` (seal only), the process's first random bytes (``AESGCM.generate_key``:
AWS-LC sets up its entropy source on first use, and sealing draws a salt per 512 items).
OUT matters for ``into`` only: ``fresh`` allocates the output with ``np.empty`` just before
the call and leaves it untouched (a caller allocating for this one call), ``touched`` writes
it once before the call (a buffer kept from call to call). SEALED is a ``.npy`` file of the
envelopes to open (``open`` only; ``-`` otherwise), written by the benchmark before it starts
the children, so that nothing of the library has run in the child before the timed call.

The inputs are made before the timer starts; only the call is timed. Prints one JSON line:
``{"seconds": ..., "minor_faults": ...}`` (page faults taken during the call).

``benches/test_bench_envelope.py`` runs this once per sample; the constants below are the
batch both share.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable

import numpy as np

COUNT = 100_000
SHARE_LEN = 1024
CONTEXT = {"wallet": "wallet-0001", "curve": "SECP256K1", "party": "client"}
# A fixed key: the children must open what the parent sealed. A benchmark key, nothing more.
KEY = bytes(range(32))


def sealed_width() -> int:
    """The envelope length of a SHARE_LEN item under CONTEXT and no key id, from the format
    (docs/envelope.md), so that the child need not call the library before the timed call."""
    context = 2 + sum(2 + len(k) + 2 + len(v) for k, v in CONTEXT.items())
    header = 2 + 1 + 1 + 1 + 2 + context + 32 + 32 + 4  # magic .. key id length, context, salt ..
    return header + SHARE_LEN + 16


def plaintext_rows() -> np.ndarray:
    return np.frombuffer(os.urandom(COUNT * SHARE_LEN), dtype=np.uint8).reshape(COUNT, SHARE_LEN)


def the_call(op: str, api: str, out_state: str, sealed_path: str) -> Callable[[], object]:
    """The call to time, its inputs (and for ``into`` its output) already made."""
    from portal_core import envelope

    width = sealed_width() if op == "seal" else SHARE_LEN
    if api == "memory":
        return lambda: np.empty((COUNT, width), dtype=np.uint8).fill(0)
    if api == "rng":
        from portal_core.aead import AESGCM

        return lambda: AESGCM.generate_key(256)
    rows = plaintext_rows() if op == "seal" else np.load(sealed_path)
    items = [r.tobytes() for r in rows] if api == "list" else rows
    if api == "list":
        fn = envelope.seal_many if op == "seal" else envelope.open_many
        return lambda: fn(KEY, items, context=CONTEXT)
    if api == "array":
        fn = envelope.seal_many_array if op == "seal" else envelope.open_many_array
        return lambda: fn(KEY, items, context=CONTEXT)
    out = np.empty((COUNT, width), dtype=np.uint8)
    if out_state == "touched":
        out.fill(0)
    fn = envelope.seal_many_into if op == "seal" else envelope.open_many_into
    return lambda: fn(KEY, items, out, context=CONTEXT)


def main(argv: list[str]) -> int:
    op, api, out_state, sealed_path = argv
    call = the_call(op, api, out_state, sealed_path)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"seconds": seconds, "minor_faults": faults}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
