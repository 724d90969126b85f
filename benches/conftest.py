"""Shared pieces of the portal-versus-peer benchmarks.

Each comparison is one pytest-benchmark group holding exactly two benchmarks,
tagged ``extra_info["side"]`` = ``"portal"`` and ``"peer"``. The portal side also
carries the required ratio (peer median / portal median) as ``target``, or None
for an informative group. ``benches/report.py`` pairs the two by group.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# The tests' helpers (the SoftHSM2 token fixture, the software authenticator) serve here too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
# One SoftHSM2 token for the whole run: the module reads SOFTHSM2_CONF once per process, so
# every benchmark file that needs an HSM must share it.
from kms_fixtures import hsm_env  # noqa: F401

SIDES = ("portal", "peer")


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> str:
    """Runs a test once per side: ``"portal"`` then ``"peer"``."""
    return request.param


@pytest.fixture
def tag(benchmark, side: str) -> Callable[..., None]:
    """Records side, peer name and (portal only) target in the benchmark's extra info."""

    def record(peer_name: str, target: float | None = None) -> None:
        benchmark.extra_info["side"] = side
        benchmark.extra_info["peer_name"] = peer_name
        if side == "portal":
            benchmark.extra_info["target"] = None if target is None else float(target)

    return record
