"""The .pyi stubs stay true to the compiled module: same names, same parameters."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from portal_core import _rust

STUBS = Path(_rust.__file__).parent / "_rust"


def _stub_defs(path: Path) -> dict[str, ast.AST]:
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
    return [n for n in names if n != "self"]


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
            if mname == "__init__":
                assert _params(m) == _runtime_params(obj), fname
            else:
                assert _params(m) == _runtime_params(getattr(obj, mname)), f"{fname}.{mname}"


def _methods(module: str, node: ast.ClassDef, defs: dict) -> dict[str, ast.FunctionDef]:
    """The class's stub methods, with those of its stub base classes (nearest wins)."""
    methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
    for base in node.bases:
        base_node = defs.get(ast.unparse(base)) or _private_class(module, ast.unparse(base))
        for mname, m in _methods(module, base_node, defs).items():
            methods.setdefault(mname, m)
    return methods


def _private_class(module: str, name: str) -> ast.ClassDef:
    tree = ast.parse((STUBS / f"{module}.pyi").read_text("utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
