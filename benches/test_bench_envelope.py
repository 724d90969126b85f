"""portal_core.envelope's batches: against a Python loop over cryptography's AESGCM, and
against themselves, cold and warm, beside the AES-GCM work they do.

The pairs (portal beside its peer, as in the other files). The peer seals each share with
``aead.encrypt(os.urandom(12), share, aad)``, the ``AESGCM`` object built once before the
loop as a careful user would, a fresh random nonce per share, and the encoded context as
associated data; ``peer_seal_into`` writes nonce and ciphertext into a preallocated array
with ``encrypt_into``. Portal seals the whole batch in one call. The formats differ
(portal's envelope is key-committing, with a fresh data key per 512 items), so the check
before timing is that what portal sealed opens to the same shares, and that the peer's
output decrypts.

The batch table (``extra_info["side"]`` = ``"batch"`` or ``"work"``; ``report.py`` prints it
apart). Each batch API (list, array, into) for seal and open, timed:

- warm: pytest-benchmark in this process, after a warm-up round;
- cold: the first call of a fresh process. ``benches/cold_start.py`` runs once per sample
  and times the call inside the child (imports and inputs are made before its timer);
  pytest-benchmark's own figures for these are whole child processes and are not used: the
  child's timings are in ``extra_info["samples"]``;

beside the AES-GCM work itself: ``portal_core.aead.AESGCM.encrypt_into`` (``decrypt_into``
for open) of the same 102,400,000 bytes in one call, on one core, into a buffer already
written; and the same split in two halves on two threads (both cores, as the batches use).
Two parts of a cold call's cost are also timed alone in fresh processes: the first random
bytes of a process, and fresh memory of the output's size (``cold_start.py`` says how).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cryptography
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cold_start import CONTEXT, COUNT, KEY, SHARE_LEN, sealed_width
from portal_core import aead, envelope

# The peer binds the same context as associated data, encoded once (~60 bytes).
AAD = json.dumps(CONTEXT, sort_keys=True, separators=(",", ":")).encode()
PEER_LOOP = f"cryptography {cryptography.__version__} AESGCM built once, loop, os.urandom nonce"
PEER_ONE = f"cryptography {cryptography.__version__} AESGCM built once, os.urandom(12) nonce"
# A peer round over 100k shares takes about half a second: a few rounds suffice.
ROUNDS = 11
WARM_ROUNDS = 21
COLD_RUNS = 15
CHILD = Path(__file__).resolve().parent / "cold_start.py"
NONCE = bytes(12)


@pytest.fixture(scope="module")
def shares() -> list[bytes]:
    return [os.urandom(SHARE_LEN) for _ in range(COUNT)]


@pytest.fixture(scope="module")
def rows(shares: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(shares), dtype=np.uint8).reshape(COUNT, SHARE_LEN)


@pytest.fixture(scope="module")
def sealed_rows(rows: np.ndarray) -> np.ndarray:
    return envelope.seal_many_array(KEY, rows, context=CONTEXT)


def peer_seal_many(aesgcm: AESGCM, shares, aad: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for share in shares:
        nonce = os.urandom(12)
        out.append((nonce, aesgcm.encrypt(nonce, share, aad)))
    return out


def peer_open_many(aesgcm: AESGCM, sealed: list[tuple[bytes, bytes]], aad: bytes) -> list[bytes]:
    return [aesgcm.decrypt(nonce, ct, aad) for nonce, ct in sealed]


def peer_seal_into(aesgcm: AESGCM, rows: np.ndarray, aad: bytes, out: np.ndarray) -> None:
    """Each row of ``out``: a fresh nonce, then the ciphertext and tag of the share."""
    src, dst = memoryview(rows.reshape(-1)), memoryview(out.reshape(-1))
    n, w = rows.shape[1], out.shape[1]
    for i in range(rows.shape[0]):
        nonce = os.urandom(12)
        at = i * w
        dst[at : at + 12] = nonce
        aesgcm.encrypt_into(nonce, src[i * n : (i + 1) * n], aad, dst[at + 12 : at + w])


def run(benchmark, fn, *args) -> object:
    return benchmark.pedantic(fn, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)


# -- portal beside its peer --------------------------------------------------------------------


@pytest.mark.benchmark(group="envelope-seal_many-100k-1KiB")
def test_seal_many(benchmark, side, tag, shares):
    tag(PEER_LOOP, 6.0)
    if side == "portal":
        sealed = envelope.seal_many(KEY, shares, context=CONTEXT)
        assert envelope.open_many(KEY, sealed, context=CONTEXT) == shares
        run(benchmark, lambda: envelope.seal_many(KEY, shares, context=CONTEXT))
    else:
        aesgcm = AESGCM(KEY)
        sealed = peer_seal_many(aesgcm, shares[:100], AAD)
        assert peer_open_many(aesgcm, sealed, AAD) == shares[:100]
        run(benchmark, peer_seal_many, aesgcm, shares, AAD)


@pytest.mark.benchmark(group="envelope-open_many-100k-1KiB")
def test_open_many(benchmark, side, tag, shares):
    tag(PEER_LOOP.replace("os.urandom nonce", "stored nonce"))
    if side == "portal":
        sealed = envelope.seal_many(KEY, shares, context=CONTEXT)
        assert envelope.open_many(KEY, sealed, context=CONTEXT) == shares
        run(benchmark, lambda: envelope.open_many(KEY, sealed, context=CONTEXT))
    else:
        aesgcm = AESGCM(KEY)
        sealed = peer_seal_many(aesgcm, shares, AAD)
        assert peer_open_many(aesgcm, sealed[:100], AAD) == shares[:100]
        run(benchmark, peer_open_many, aesgcm, sealed, AAD)


@pytest.mark.benchmark(group="envelope-seal_many-numpy-100k-1KiB")
def test_seal_many_numpy(benchmark, side, tag, shares, rows):
    tag(PEER_LOOP.replace("loop", "loop over rows"))
    if side == "portal":
        sealed = envelope.seal_many(KEY, rows, context=CONTEXT)
        assert envelope.open_many(KEY, sealed, context=CONTEXT) == shares
        run(benchmark, lambda: envelope.seal_many(KEY, rows, context=CONTEXT))
    else:
        aesgcm = AESGCM(KEY)
        sealed = peer_seal_many(aesgcm, rows[:100], AAD)
        assert peer_open_many(aesgcm, sealed, AAD) == shares[:100]
        run(benchmark, peer_seal_many, aesgcm, rows, AAD)


@pytest.mark.benchmark(group="envelope-seal_many_into-100k-1KiB")
def test_seal_many_into(benchmark, side, tag, shares, rows):
    tag(PEER_LOOP.replace("loop", "loop of encrypt_into"))
    if side == "portal":
        out = np.zeros((COUNT, sealed_width()), np.uint8)
        envelope.seal_many_into(KEY, rows, out, context=CONTEXT)
        assert envelope.open_many(KEY, out[:100], context=CONTEXT) == shares[:100]
        run(benchmark, lambda: envelope.seal_many_into(KEY, rows, out, context=CONTEXT))
    else:
        aesgcm = AESGCM(KEY)
        out = np.zeros((COUNT, 12 + SHARE_LEN + 16), np.uint8)
        peer_seal_into(aesgcm, rows[:100], AAD, out[:100])
        assert [aesgcm.decrypt(bytes(r[:12]), bytes(r[12:]), AAD) for r in out[:100]] == shares[
            :100
        ]
        run(benchmark, peer_seal_into, aesgcm, rows, AAD, out)


@pytest.mark.benchmark(group="envelope-seal-1KiB")
def test_seal(benchmark, side, tag, shares):
    share = shares[0]
    tag(PEER_ONE)
    if side == "portal":
        sealed = envelope.seal(KEY, share, context=CONTEXT)
        assert envelope.open(KEY, sealed, context=CONTEXT) == share
        benchmark(lambda: envelope.seal(KEY, share, context=CONTEXT))
    else:
        aesgcm = AESGCM(KEY)
        [(nonce, ct)] = peer_seal_many(aesgcm, [share], AAD)
        assert aesgcm.decrypt(nonce, ct, AAD) == share
        benchmark(lambda: aesgcm.encrypt(os.urandom(12), share, AAD))


# -- the batch table: each API warm and cold, beside the AES-GCM work ----------------------------

# The parts of a cold call's cost, alone (benches/cold_start.py): cold only, no warm side.
PARTS = {
    ("seal", "rng"): "first random bytes of the process",
    ("seal", "memory"): "np.empty + fill of the output",
    ("open", "memory"): "np.empty + fill of the output",
}
CALLS = {
    ("seal", "list"): "seal_many",
    ("seal", "array"): "seal_many_array",
    ("seal", "into"): "seal_many_into",
    ("open", "list"): "open_many",
    ("open", "array"): "open_many_array",
    ("open", "into"): "open_many_into",
}


def batch_info(benchmark, op: str, api: str, mode: str, out: str = "") -> None:
    call = CALLS.get((op, api)) or PARTS[op, api]
    benchmark.extra_info.update(
        {"side": "batch", "op": op, "api": api, "call": call, "mode": mode, "out": out}
    )


def batch_case(op: str, api: str, mode: str, out: str = ""):
    group = f"envelope-batch-{op}-{api}-{mode}" + (f"-{out}" if out else "")
    return pytest.param(op, api, out, marks=pytest.mark.benchmark(group=group), id=group)


@pytest.mark.parametrize(("op", "api", "out"), [batch_case(op, api, "warm") for op, api in CALLS])
def test_batch_warm(benchmark, op, api, out, shares, rows, sealed_rows):
    batch_info(benchmark, op, api, "warm")
    items = {"list": shares, "array": rows, "into": rows}[api]
    if op == "open":
        items = [r.tobytes() for r in sealed_rows] if api == "list" else sealed_rows
    if api == "into":
        dst = np.zeros((COUNT, sealed_width() if op == "seal" else SHARE_LEN), np.uint8)
        fn = envelope.seal_many_into if op == "seal" else envelope.open_many_into

        def call():
            return fn(KEY, items, dst, context=CONTEXT)

    else:
        many = {
            ("seal", "list"): envelope.seal_many,
            ("seal", "array"): envelope.seal_many_array,
            ("open", "list"): envelope.open_many,
            ("open", "array"): envelope.open_many_array,
        }[op, api]

        def call():
            return many(KEY, items, context=CONTEXT)

    result = call()
    if op == "open":
        opened = dst if api == "into" else result
        assert [bytes(r) for r in opened[:: COUNT // 50]] == shares[:: COUNT // 50]
    else:
        sealed = dst if api == "into" else result
        assert (
            envelope.open_many(KEY, sealed[:: COUNT // 50], context=CONTEXT)
            == shares[:: COUNT // 50]
        )
    benchmark.pedantic(call, rounds=WARM_ROUNDS, iterations=1, warmup_rounds=1)


@pytest.fixture(scope="module")
def sealed_file(tmp_path_factory, sealed_rows) -> Path:
    path = tmp_path_factory.mktemp("cold") / "sealed.npy"
    np.save(path, sealed_rows)
    return path


COLD_CASES = [
    *(batch_case(op, api, "cold") for op, api in PARTS),
    *(batch_case(op, api, "cold") for op, api in CALLS if api != "into"),
    *(
        batch_case(op, "into", "cold", out)
        for op in ("seal", "open")
        for out in ("fresh", "touched")
    ),
]


@pytest.mark.parametrize(("op", "api", "out"), COLD_CASES)
def test_batch_cold(benchmark, op, api, out, sealed_file):
    samples: list[dict[str, float]] = []
    assert (
        sealed_width()
        == envelope.seal_many_array(KEY, [bytes(SHARE_LEN)], context=CONTEXT).shape[1]
    )

    def one_child() -> None:
        argv = [sys.executable, str(CHILD), op, api, out or "-", str(sealed_file)]
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(one_child, rounds=COLD_RUNS, iterations=1, warmup_rounds=0)
    batch_info(benchmark, op, api, "cold", out)
    benchmark.extra_info["samples"] = [s["seconds"] for s in samples]
    benchmark.extra_info["minor_faults"] = [s["minor_faults"] for s in samples]


def work_case(op: str, threads: int):
    group = f"envelope-batch-aesgcm-{op}-{threads}-thread{'s' if threads > 1 else ''}"
    return pytest.param(op, threads, marks=pytest.mark.benchmark(group=group), id=group)


@pytest.mark.parametrize(
    ("op", "threads"), [work_case(op, n) for op in ("seal", "open") for n in (1, 2)]
)
def test_aesgcm_work(benchmark, op, threads, rows):
    """The AES-GCM of the batch's 102,400,000 bytes: one call, or two halves on two threads."""
    cipher = aead.AESGCM(os.urandom(32))
    size = COUNT * SHARE_LEN // threads
    parts = [rows.reshape(-1)[i * size : (i + 1) * size] for i in range(threads)]
    if op == "open":
        parts = [np.frombuffer(cipher.encrypt(NONCE, p, None), np.uint8) for p in parts]
    shift = 16 if op == "seal" else -16
    outs = [np.zeros(len(p) + shift, np.uint8) for p in parts]
    into = cipher.encrypt_into if op == "seal" else cipher.decrypt_into
    for p, o in zip(parts, outs, strict=True):
        into(NONCE, p, None, o)
    assert op == "seal" or np.array_equal(np.concatenate(outs), rows.reshape(-1))
    with ThreadPoolExecutor(threads) as pool:

        def call() -> None:
            if threads == 1:
                into(NONCE, parts[0], None, outs[0])
            else:
                list(pool.map(into, [NONCE] * threads, parts, [None] * threads, outs))

        benchmark.pedantic(call, rounds=WARM_ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        {
            "side": "work",
            "op": op,
            "threads": threads,
            "call": f"AESGCM.{into.__name__}",
            "bytes": COUNT * SHARE_LEN,
        }
    )
