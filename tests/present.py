"""``present(value)``: a value the test knows is there, checked and narrowed from ``T | None``.

The stores' getters return ``Record | None``; a test reading a field of a record it has just
written calls ``present(store.vault_get(slot)).tries_left``, which fails on None with a
message rather than an AttributeError, and lets mypy check the field.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    assert value is not None, "expected a value, found None"
    return value
