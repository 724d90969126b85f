"""The .pyi stubs stay true to the compiled module (same names, same parameters), and they
make mypy refuse a str where bytes are due (``Buffer`` never degrading to ``Any``).

``make lint`` also runs ``mypy.stubtest`` on ``portal_core._rust``, which compares kinds and
defaults as well; these tests keep the core of it in the test suite.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from portal_core import _rust

STUBS = Path(_rust.__file__).parent / "_rust"

StubDef = ast.FunctionDef | ast.ClassDef


def _stub_defs(path: Path) -> dict[str, StubDef]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
        and not (
            isinstance(node, ast.ClassDef)
            and node.bases
            and ast.unparse(node.bases[0]) == "TypedDict"
        )
    }


def _params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return [n for n in names if n not in ("self", "cls")]


def _runtime_params(obj) -> list[str]:
    return [p for p in inspect.signature(obj).parameters if p != "self"]


@pytest.mark.parametrize("name", ["__init__", "aead", "kdf", "envelope", "shares"])
def test_stub_names_and_parameters_match(name):
    module = _rust if name == "__init__" else getattr(_rust, name)
    defs = _stub_defs(STUBS / f"{name}.pyi")
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and not inspect.ismodule(v)
    }
    assert set(defs) == public
    for fname, node in defs.items():
        obj = getattr(module, fname)
        if isinstance(node, ast.FunctionDef):
            assert _params(node) == _runtime_params(obj), fname
            continue
        methods = _methods(name, node, defs)
        for mname, m in methods.items():
            if mname in ("__new__", "__init__"):  # the constructor: the class's signature
                assert _params(m) == _runtime_params(obj), fname
            else:
                assert _params(m) == _runtime_params(getattr(obj, mname)), f"{fname}.{mname}"


def _methods(
    module: str, node: ast.ClassDef, defs: dict[str, StubDef]
) -> dict[str, ast.FunctionDef]:
    """The class's stub methods, with those of its stub base classes (nearest wins)."""
    methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
    for base in node.bases:
        base_node = defs.get(ast.unparse(base))
        if not isinstance(base_node, ast.ClassDef):
            base_node = _private_class(module, ast.unparse(base))
        for mname, m in _methods(module, base_node, defs).items():
            methods.setdefault(mname, m)
    return methods


def _private_class(module: str, name: str) -> ast.ClassDef:
    tree = ast.parse((STUBS / f"{module}.pyi").read_text("utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


# -- mypy refuses str for bytes ---------------------------------------------------------------

# Each line marked "# mistake" passes a str (or a list of str) where the API takes bytes-like
# objects; mypy must report it. Were ``Buffer`` to degrade to ``Any`` (as it did when the stubs
# took it from ``collections.abc``, which has no ``Buffer`` before Python 3.12), none would be.
# The unmarked lines are right and must pass: bytes, bytearray and memoryview all fit.
MISTAKES = textwrap.dedent(
    """\
    from portal_core import aead, envelope, kdf, shares
    from portal_core.kms.contract import SealingKms

    key = bytes(32)


    def use(kms: SealingKms, share: shares.Share) -> None:
        aead.AESGCM("str key")  # mistake
        envelope.seal("k", b"x", context={})  # mistake
        kdf.hkdf_sha256("ikm")  # mistake
        aead.AESGCM(key).encrypt("nonce", b"d", None)  # mistake
        aead.ChaCha20Poly1305(key).decrypt(bytes(12), "sealed", None)  # mistake
        aead.AESGCMSIV(key).encrypt(bytes(12), b"d", "associated data")  # mistake
        aead.AESSIV(bytes(64)).encrypt(b"d", ["associated data"])  # mistake
        kdf.pbkdf2_hmac_sha256("password", b"salt", 1000)  # mistake
        kdf.argon2id(b"pw", "saltsalt", time_cost=1, memory_cost=64, parallelism=1)  # mistake
        envelope.open(key, "sealed")  # mistake
        shares.Share.from_secret_bytes(share.to_secret_bytes().hex())  # mistake
        kms.seal("key-name", "plaintext", context=None)  # mistake
        kms.open("sealed", context={"wallet": "w"})  # mistake

        aead.AESGCM(bytearray(key)).encrypt(memoryview(bytes(12)), b"d", None)
        aead.AESSIV(bytes(64)).encrypt(b"d", [b"a", bytearray(b"b"), memoryview(b"c")])
        kdf.hkdf_sha256(memoryview(b"ikm"), salt=None, info=bytearray(b"info"))
        envelope.open(key, envelope.seal(key, bytearray(3), context={"a": "b"}), context=None)
        kms.open(kms.seal("key-name", memoryview(b"plaintext"), context=None), context=None)
    """
)


@pytest.mark.timeout(240)
def test_mypy_refuses_str_where_bytes_are_due(tmp_path: Path) -> None:
    source = tmp_path / "mistakes.py"
    source.write_text(MISTAKES, encoding="utf-8")
    config = tmp_path / "mypy.ini"
    # The package as installed in this environment; errors inside it are `make lint`'s
    # business (follow_imports = silent), only those of the file are wanted here.
    config.write_text(
        "[mypy]\n"
        "python_version = 3.11\n"
        "strict = True\n"
        "follow_imports = silent\n"
        f"cache_dir = {tmp_path / 'mypy-cache'}\n",
        encoding="utf-8",
    )
    stdout, stderr, status = mypy_api.run(
        [str(source), "--config-file", str(config), "--no-error-summary"]
    )
    assert status in (0, 1), stderr  # 2 would be a crash or a usage error
    errors: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        found = re.match(rf"{re.escape(str(source))}:(\d+): error: (.*)$", line)
        if found:
            errors.setdefault(int(found.group(1)), []).append(found.group(2))
    lines = MISTAKES.splitlines()
    marked = {n for n, text in enumerate(lines, start=1) if text.endswith("# mistake")}
    assert len(marked) >= 10
    for n in sorted(marked):
        # A mistake is refused because a str is not a Buffer, not for some other reason.
        assert any('"str"' in e and "Buffer" in e for e in errors.get(n, [])), (
            f"mypy accepts line {n}: {lines[n - 1].strip()}\n{stdout}"
        )
    unexpected = {n: e for n, e in errors.items() if n not in marked}
    assert not unexpected, f"mypy refuses right lines: {unexpected}\n{stdout}"
