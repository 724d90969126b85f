"""The design notes stay true to the tests: the "who can learn what" table is one table,
the same in docs/backup.md and docs/vault.md, and every test it cites as showing a row
exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"<!-- who-can-learn-what.*?-->\n(.*?)<!-- /who-can-learn-what -->", re.S)


def _table(doc: str) -> str:
    found: list[str] = _BLOCK.findall((ROOT / "docs" / doc).read_text(encoding="utf-8"))
    assert len(found) == 1, f"docs/{doc} must hold the who-can-learn-what table once"
    return found[0]


def test_the_who_can_learn_what_table_is_one_table():
    assert _table("backup.md") == _table("vault.md")


def test_every_test_the_table_cites_exists():
    cited = set(re.findall(r"`(test_\w+)`", _table("backup.md")))
    assert len(cited) >= 8
    defined = {
        name
        for path in (ROOT / "tests").glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)
    }
    assert cited <= defined, sorted(cited - defined)


def test_the_server_page_lists_every_endpoint():
    from portal_core.http_api import ENDPOINTS

    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    missing = [f"{e.method} {e.path}" for e in ENDPOINTS if f"`{e.method} {e.path}`" not in text]
    assert not missing, f"docs/server.md does not list: {missing}"
