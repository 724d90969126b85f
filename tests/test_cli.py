"""The console script, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("portal-core")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "portal_core.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def test_demo_json_reports_a_working_core():
    proc = _run("demo", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    feats = out["cpu_features"]
    assert feats["arch"] and isinstance(feats["aes"], bool) and feats["backend"]
    env = out["envelope"]
    assert env["opened"] is True
    assert env["inspect"]["key_id"] == "demo-key"
    assert env["inspect"]["context"]["curve"] == "SECP256K1"
    assert out["password_key_bytes"] == 32
    timings = out["timings_seconds"]
    assert len(timings) >= 4 and all(t > 0 for t in timings.values())


def test_demo_text_names_each_step():
    proc = _run("demo")
    assert proc.returncode == 0, proc.stderr
    for needle in ("CPU features", "backend", "Sealed", "Argon2id", "Timings"):
        assert needle in proc.stdout


@pytest.mark.parametrize("args", [[], ["nonsense"]])
def test_bad_usage_exits_with_usage(args):
    proc = _run(*args)
    assert proc.returncode == 2
    assert "usage" in proc.stderr
