"""Exceptions raised by portal_core.

Messages never contain key material, plaintext, PINs or shares.
Wrong types raise ``TypeError`` and wrong lengths or values ``ValueError``,
as the standard library and ``cryptography`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cryptography.exceptions


class PortalError(Exception):
    """Base class of every portal_core error."""


class InvalidTag(PortalError, cryptography.exceptions.InvalidTag):
    """Authentication failed: wrong key, nonce, associated data or context, or tampering.

    Carries no detail about why, on purpose (batch calls name the failing item's index).
    Also a ``cryptography.exceptions.InvalidTag``: code moved over from ``cryptography``'s
    AEADs (``except InvalidTag:``) catches it unchanged.
    """


class InvalidEnvelope(PortalError):
    """A sealed envelope is malformed, truncated, or of an unsupported version or suite."""


class InvalidShare(PortalError):
    """A key share, or a share-protocol message, failed verification.

    Malformed, truncated, of an unknown version or curve, a scalar that is not
    canonical, a public share that does not match its scalar or does not pair
    with the other party's, a commitment that does not open, a proof that fails.
    The message names the check; it never holds a scalar.
    """


# Errors of the backup, recovery and eject flows (portal_core.backup, portal_core.store).
# Each message names the cause (a method, a wallet or pair id, a status); none names a
# password, key or share.


# The backup flows' errors live with their layer, in portal_core.backup.errors; they stay
# importable from here by the names code has always used. Imported last: that module
# derives from PortalError above (and the backup package loads nothing else on the way).
from portal_core.backup import errors as _flow_errors  # noqa: E402
from portal_core.backup.errors import *  # noqa: E402, F403

if TYPE_CHECKING:  # `as`: re-exported for the type checker, which does not run __getattr__
    from portal_core.webhooks import FailedWebhook as FailedWebhook

__all__ = ["InvalidEnvelope", "InvalidShare", "InvalidTag", "PortalError"]
__all__ += _flow_errors.__all__
__all__ += ["FailedWebhook"]


def __getattr__(name: str) -> Any:
    # The self-managed webhooks' error lives with them, in portal_core.webhooks, which needs
    # the store and the tenants: imported on first use, so that loading this module loads
    # neither (and no cycle through them).
    if name == "FailedWebhook":
        from portal_core.webhooks import FailedWebhook

        return FailedWebhook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
