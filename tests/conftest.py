"""Shared test set-up: the tests folder is importable (vector loaders, reference code)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def wycheproof_terminal_summary(terminalreporter) -> None:
    """Prints, per Wycheproof file run, how many cases ran and how many were skipped and why."""
    from wycheproof import summary_lines

    lines = summary_lines()
    if lines:
        terminalreporter.section("Wycheproof vectors")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_terminal_summary(terminalreporter) -> None:
    wycheproof_terminal_summary(terminalreporter)


# The SoftHSM2 token of the KMS tests (tests/test_kms*.py, tests/test_cli_kms.py).
# The custodian as a real HTTP service (tests/http_world.py), started once per session.
from http_world import http_service  # noqa: E402, F401
from kms_fixtures import hsm_env, key_name, kms, other_kms  # noqa: E402, F401

# PostgreSQL (tests/pg_cluster.py): a throwaway cluster per session, and the store backends.
from pg_cluster import backend, new_backend, pg_dsn  # noqa: E402, F401
