"""Exceptions raised by portal_core.

Messages never contain key material, plaintext, PINs or shares.
Wrong types raise ``TypeError`` and wrong lengths or values ``ValueError``,
as the standard library and ``cryptography`` do.
"""

from __future__ import annotations

__all__ = ["InvalidEnvelope", "InvalidTag", "PortalError"]


class PortalError(Exception):
    """Base class of every portal_core error."""


class InvalidTag(PortalError):
    """Authentication failed: wrong key, nonce, associated data or context, or tampering.

    Carries no detail about why, on purpose (batch calls name the failing item's index).
    """


class InvalidEnvelope(PortalError):
    """A sealed envelope is malformed, truncated, or of an unsupported version or suite."""
