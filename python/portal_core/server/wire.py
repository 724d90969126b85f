"""The wire format: JSON bodies, bytes as base64url without padding, decoded strictly.

Handlers read a request with :func:`read_json` and take bytes out of it with
:func:`bytes_field`; both raise :class:`~portal_core.server.problems.ProblemError`, which
the app answers as a problem document (415 for a body that is not JSON, 400 for malformed
JSON or a bad field). The body-size cap is enforced before the body reaches them
(:mod:`portal_core.server.app`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal_core.server.problems import ProblemError, dumps
from portal_core.wire import b64url_decode, b64url_encode

__all__ = [
    "JsonResponse",
    "b64url_decode",
    "b64url_encode",
    "bytes_field",
    "read_json",
]


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object.

    Raises ProblemError: ``UNSUPPORTED_MEDIA_TYPE`` (415) unless the content type is
    ``application/json`` (or ``application/*+json``); ``MALFORMED_JSON`` (400) for a body
    that is not UTF-8 JSON (``NaN`` and ``Infinity`` included) or not an object;
    ``PAYLOAD_TOO_LARGE`` (413) from the app's body cap while reading.
    """
    content_type = request.headers.get("content-type", "")
    if not _is_json_media_type(content_type):
        raise ProblemError(
            "UNSUPPORTED_MEDIA_TYPE",
            "the request body must be application/json",
            headers={"Accept": "application/json"},
        )
    body = await request.body()
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProblemError("MALFORMED_JSON", "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ProblemError("MALFORMED_JSON", "the request body must be a JSON object")
    return value


def bytes_field(body: Mapping[str, Any], name: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of ``body[name]``, a base64url string without padding.

    Raises ProblemError ``INVALID_REQUEST`` (400) naming the field when it is missing, not a
    string, not strict base64url, or longer than ``max_bytes`` once decoded. The field's
    value is never quoted back.
    """
    value = body.get(name)
    if not isinstance(value, str):
        raise ProblemError("INVALID_REQUEST", f"field {name!r} must be a base64url string")
    try:
        raw = b64url_decode(value)
    except ValueError as e:
        raise ProblemError("INVALID_REQUEST", f"field {name!r}: {e}") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise ProblemError("INVALID_REQUEST", f"field {name!r} exceeds {max_bytes} bytes")
    return raw


class JsonResponse(Response):
    """A JSON response encoded as every response of the server is (compact UTF-8)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
