"""JSON on the wire, shared by the server, the client SDK and the webhooks (no web framework
imported here, so the client and the webhook sender import it without the server's).

Bytes travel as base64url (RFC 4648 §5) without padding, decoded strictly
(:func:`b64url_decode`): one encoding for every JSON body portal-core sends or reads.
:func:`to_wire` turns the API's frozen dataclasses (:mod:`portal_core.backup.api`,
:mod:`portal_core.http_api`) into JSON values; :func:`from_wire` reads them back into the
class, checking every field's type against the class's annotations, so a malformed body is
refused naming the field rather than failing later somewhere else. Unknown fields are
ignored (a newer peer may add some); missing fields without a default are refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

__all__ = ["b64url_decode", "b64url_encode", "from_wire", "to_wire"]

T = TypeVar("T")

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """base64url (RFC 4648 §5) without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of a base64url string without padding, decoded strictly: only the
    base64url alphabet, no padding, no whitespace, a length an encoding can have, and zero
    unused trailing bits (so every byte string has exactly one accepted encoding).

    Raises ValueError otherwise.
    """
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url: only A-Z a-z 0-9 - _ without padding are allowed")
    if len(text) % 4 == 1:
        raise ValueError("not base64url: a length no encoding has")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as e:  # pragma: no cover - the checks above leave none
        raise ValueError("not base64url") from e
    if b64url_encode(raw) != text:
        raise ValueError("not canonical base64url: unused trailing bits are set")
    return raw


def to_wire(value: Any) -> Any:
    """``value`` as a JSON value: dataclasses as objects, bytes as base64url, mappings and
    sequences element by element; str, int, float, bool and None as they are."""
    if isinstance(value, bytes | bytearray | memoryview):
        return b64url_encode(bytes(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"{type(value).__name__} has no wire form")


def from_wire(cls: type[T], value: Any, what: str = "value") -> T:
    """``value`` (parsed JSON) as an instance of the dataclass ``cls``.

    Raises ValueError naming the first field that is missing or of the wrong type (never
    quoting its value).
    """
    return typing.cast(T, _read(cls, value, what))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls)
    return found


def _read(tp: Any, value: Any, where: str) -> Any:
    if tp is Any:  # free-form (an audit event's detail, WebAuthn JSON): as it is
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        (inner,) = [o for o in typing.get_args(tp) if o is not type(None)]
        return _read(inner, value, where)
    if origin in (dict, Mapping):
        key_type, item_type = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object")
        return {
            _read(key_type, k, f"{where} key"): _read(item_type, v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ValueError(f"{where} must be an array")
        return [_read(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object")
        hints = _hints(tp)  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _read(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}.{f.name} is missing")
        return tp(**kwargs)  # type: ignore[operator]
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bytes:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a base64url string")
        try:
            return b64url_decode(value)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    if tp is dict:  # a free-form JSON object
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object")
        return value
    checks: dict[Any, tuple[type | tuple[type, ...], str]] = {
        bool: (bool, "true or false"),
        int: (int, "an integer"),
        float: ((int, float), "a number"),
        str: (str, "a string"),
    }
    if tp not in checks:  # pragma: no cover - not a type of the API
        raise TypeError(f"no wire form for {tp!r}")
    allowed, name = checks[tp]
    if not isinstance(value, allowed) or (tp is not bool and isinstance(value, bool)):
        raise ValueError(f"{where} must be {name}")
    return float(typing.cast(float, value)) if tp is float else value
