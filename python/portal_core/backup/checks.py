"""Loading a serialized share and checking it against what was recorded, on either side."""

from __future__ import annotations

from typing import Protocol

from portal_core import shares
from portal_core.backup.errors import ShareVerificationFailed
from portal_core.exceptions import InvalidShare

__all__ = ["RecordedPair", "load_backup_share", "load_share"]


class RecordedPair(Protocol):
    """What either side recorded of a backup share pair (the custodian's record, or the
    client's view of it)."""

    @property
    def pair_id(self) -> str: ...

    @property
    def curve(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    @property
    def client_public_share(self) -> bytes: ...

    @property
    def custodian_public_share(self) -> bytes: ...


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
        share = shares.Share.from_secret_bytes(data)
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


def load_backup_share(data: bytes, pair: RecordedPair, *, role: str, what: str) -> shares.Share:
    """Decodes ``role``'s backup share of a recorded pair and checks it against the record
    (as :func:`load_share`), and that the pair's two public shares add up to the wallet key.

    Raises:
        ShareVerificationFailed: naming the first check that failed (never the scalar).
    """
    share = load_share(
        data,
        what=what,
        curve=pair.curve,
        kind=shares.BACKUP,
        role=role,
        share_id=pair.pair_id,
        public_share=(
            pair.client_public_share if role == shares.CLIENT else pair.custodian_public_share
        ),
        public_key=pair.public_key,
    )
    try:
        shares.check_public_shares(
            pair.curve, pair.public_key, pair.client_public_share, pair.custodian_public_share
        )
    except InvalidShare as e:
        raise ShareVerificationFailed(f"the {pair.curve} pair {pair.pair_id!r}: {e}") from None
    return share
