"""The client SDK: :class:`Portal` (a device's wallet over HTTP) and the custodian's API over
HTTP (:mod:`portal_core.client.http`).

Needs the ``client`` extra (httpx).
"""

from __future__ import annotations

from portal_core.client.http import (
    ApiError,
    HttpAdmin,
    HttpCustodian,
    HttpPasskeyEnclave,
    HttpVault,
    InvalidRequest,
    MalformedResponse,
    ServiceUnavailable,
    Transport,
)
from portal_core.client.portal import AsyncPortal, Portal

__all__ = [
    "ApiError",
    "AsyncPortal",
    "HttpAdmin",
    "HttpCustodian",
    "HttpPasskeyEnclave",
    "HttpVault",
    "InvalidRequest",
    "MalformedResponse",
    "Portal",
    "ServiceUnavailable",
    "Transport",
]
