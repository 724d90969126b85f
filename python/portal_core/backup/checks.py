"""Loading a serialized share and checking it against what was recorded, on either side."""

from __future__ import annotations

from portal_core import shares
from portal_core.exceptions import InvalidShare, ShareVerificationFailed

__all__ = ["load_share"]


def load_share(
    data: bytes,
    *,
    what: str,
    curve: str,
    kind: str,
    role: str,
    share_id: str,
    public_share: bytes | None,
    public_key: bytes,
) -> shares.Share:
    """Decodes a share and checks it is the one recorded: its public share first (the check
    that catches a share of another wallet or pair even when it decodes and opens), then
    the public key, curve, kind, role and id.

    ``what`` names the share in messages (e.g. "the custodian's SECP256K1 backup share").

    Raises:
        ShareVerificationFailed: naming the first check that failed (never the scalar).
    """
    try:
        share = shares.Share.from_sealable(data)
    except InvalidShare as e:
        raise ShareVerificationFailed(f"{what} is not a valid share: {e}") from None
    if public_share is not None and share.public_share != public_share:
        raise ShareVerificationFailed(
            f"{what} does not match its recorded public share (a share of another wallet or "
            "pair, or an altered record)"
        )
    if share.public_key != public_key:
        raise ShareVerificationFailed(f"{what} is a share of another wallet (public key differs)")
    for field, want in (("curve", curve), ("kind", kind), ("role", role), ("share_id", share_id)):
        got = getattr(share, field)
        if got != want:
            raise ShareVerificationFailed(f"{what} has {field} {got!r}, expected {want!r}")
    return share
