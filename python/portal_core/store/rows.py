"""Records from database rows: the one mapping every store uses, in place of a hand-written
function per table.

A record type is a frozen dataclass whose field names are the column names of its table.
:func:`record_from_row` reads each field's column from a row by name and applies the
field's converter, if one is given, for values SQL cannot hold as they are (an enum kept
as its text, a tuple kept as a JSON list, a bool kept as INTEGER 0 or 1).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

__all__ = ["record_from_row"]

R = TypeVar("R")


class Row(Protocol):
    """A row whose columns can be read by name: ``sqlite3.Row``, or a mapping such as a
    PostgreSQL driver's dict rows."""

    def __getitem__(self, key: str, /) -> Any: ...


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass: no record can be built from a row")
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


def record_from_row(
    cls: type[R], row: Row | Mapping[str, Any], **converters: Callable[[Any], Any]
) -> R:
    """Builds a ``cls`` from ``row``, each field from the column of the same name.

    Every field must have its column in the row; columns no field names (one added by a
    later migration, say) are left out. ``converters`` maps a field name to a function of
    the column's value; a NULL is never passed to it and stays None.

        record_from_row(PairRecord, row, status=PairStatus)

    Raises:
        TypeError: ``cls`` is not a dataclass, a converter names no field of it, or the
            row has no column for one of its fields (a query out of step with the record).
    """
    # As a plain ``type``: functools.cache's stubs do not count ``type[R]`` as Hashable.
    record_type: type = cls
    names = _field_names(record_type)
    for name in converters:
        if name not in names:
            raise TypeError(f"{cls.__name__} has no field {name!r} to convert")
    values: dict[str, Any] = {}
    for name in names:
        try:
            value = row[name]
        except (IndexError, KeyError):  # sqlite3.Row raises IndexError, a mapping KeyError
            raise TypeError(f"the row has no column {name!r} for {cls.__name__}") from None
        convert = converters.get(name)
        values[name] = value if convert is None or value is None else convert(value)
    return cls(**values)
