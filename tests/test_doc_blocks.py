"""Every Python block of README.md and docs/*.md runs, so the documentation stays true.

The blocks of one file run in order in one fresh interpreter, as a reader would type them
into one session, in a scratch directory, with a SoftHSM2 token of their own in the
environment (``PKCS11_*``, made by ``hsm/setup.sh``, so one file's keys never meet
another's). A block preceded by ``<!-- doc-test: skip REASON -->`` is not
run; the reason is required and printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kms_fixtures import read_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"(?:<!-- doc-test: (?P<directive>[^\n]*?) -->\n)?^```python\n(?P<code>.*?)^```", re.S | re.M
)


def blocks(path: Path) -> tuple[list[str], list[str]]:
    """The blocks of ``path`` to run, and the reasons of those skipped."""
    run, skipped = [], []
    for m in _BLOCK.finditer(path.read_text(encoding="utf-8")):
        directive = (m["directive"] or "").strip()
        if directive.startswith("skip"):
            reason = directive[len("skip") :].strip()
            assert reason, f"{path.name}: a skipped block must say why"
            skipped.append(reason)
        else:
            assert not directive, f"{path.name}: unknown doc-test directive {directive!r}"
            run.append(m["code"])
    return run, skipped


def _token(directory: Path) -> dict[str, str]:
    subprocess.run(
        ["bash", str(ROOT / "hsm" / "setup.sh"), str(directory)],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return read_env(directory / "env")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_the_python_blocks_run(path: Path, hsm_env: dict[str, str], tmp_path: Path) -> None:
    run, skipped = blocks(path)
    for reason in skipped:
        print(f"{path.name}: block skipped: {reason}")
    if not run:
        pytest.skip(f"{path.name} has no Python block to run")
    script = "\n\n".join(run)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env={**os.environ, **_token(tmp_path / "hsm")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{path.name}:\n{proc.stderr[-3000:]}"


def test_the_readme_has_blocks_to_run() -> None:
    run, skipped = blocks(ROOT / "README.md")
    assert len(run) >= 6 and not skipped


def test_the_readme_lists_every_public_error_class() -> None:
    import portal_core.backup.errors
    import portal_core.enclave
    import portal_core.exceptions
    import portal_core.kms
    import portal_core.store
    import portal_core.tenants
    from portal_core.exceptions import PortalError

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    modules = (
        portal_core.exceptions,
        portal_core.backup.errors,
        portal_core.kms,
        portal_core.enclave,
        portal_core.store,
        portal_core.tenants,
    )
    public = {
        name
        for module in modules
        for name in module.__all__
        if isinstance(getattr(module, name), type)
        and issubclass(getattr(module, name), PortalError)
    }
    assert len(public) >= 40
    missing = sorted(name for name in public if f"`{name}`" not in readme)
    assert not missing, f"README.md does not list {missing}"
