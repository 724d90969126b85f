"""Shares of MPC wallet keys (protocols, formats and vectors: docs/shares.md)."""

from typing import Self, final

from typing_extensions import Buffer

__all__ = [
    "BACKUP",
    "CLIENT",
    "CUSTODIAN",
    "ED25519",
    "FORMAT_VERSION",
    "SECP256K1",
    "SIGNING",
    "STATE_VERSION",
    "EjectedKey",
    "KeyGen",
    "Reshare",
    "Share",
    "address",
    "check_public_shares",
    "eject",
    "resume",
]

# Each class is a Rust type, @final: it cannot be subclassed (which also makes it a disjoint
# base). Its constructor is __new__ (PyO3's #[new]), not __init__.

SECP256K1: str
ED25519: str
CLIENT: str
CUSTODIAN: str
SIGNING: str
BACKUP: str
FORMAT_VERSION: int
STATE_VERSION: int

@final
class Share:
    """One party's share of a wallet key. Made by a session or ``from_secret_bytes``.

    The scalar stays in Rust (wiped when the object is freed); ``repr`` shows
    public fields only. Not picklable.
    """

    curve: str
    """``"SECP256K1"`` or ``"ED25519"``."""
    kind: str
    """``"signing"`` or ``"backup"``."""
    role: str
    """``"client"`` or ``"custodian"``."""
    share_id: str
    """The wallet id (signing share) or the backup pair id (backup share)."""
    public_share: bytes
    """This party's public share ``x_i·G`` (33-byte SEC 1 compressed / 32-byte RFC 8032)."""
    peer_public_share: bytes
    """The other party's public share, ``X - x_i·G``."""
    public_key: bytes
    """The wallet's public key ``X``."""
    address: str
    """The wallet's address: EIP-55 Ethereum (secp256k1) or base58 Solana (ed25519)."""

    def to_secret_bytes(self) -> bytes:
        """The serialized share, scalar included (format version 1): seal it, never log it."""
    @staticmethod
    def from_secret_bytes(
        data: Buffer,
        *,
        curve: str | None = None,
        kind: str | None = None,
        role: str | None = None,
        share_id: str | None = None,
        public_share: Buffer | None = None,
        public_key: Buffer | None = None,
    ) -> Share:
        """Decodes and verifies a serialized share, then checks every expected field given.

        Verifies the version, the curve, that the scalar is canonical and non-zero, and
        that the stored public share is ``scalar·G``.

        Raises:
            portal_core.exceptions.InvalidShare: malformed, truncated, unknown version or
                curve, bad scalar, mismatched public share, or an expected field differs.
            ValueError: an unknown curve, kind or role name.
            TypeError: ``data`` or an expected point is not a bytes-like object.
        """

@final
class KeyGen:
    """One party's side of the key generation of a new wallet.

    Three steps, each once, in order: ``commit()``, ``reveal(peer_commitment)``,
    ``finish(peer_reveal)``. Both parties must use the same curve, session id and
    wallet id. Any failed check ends the session (start a new one).
    """

    curve: str
    role: str
    session_id: str

    def __new__(cls, curve: str, role: str, session_id: str, *, wallet_id: str) -> Self:
        """Draws this party's share.

        Raises:
            ValueError: an unknown curve or role, or an id that is empty or over 255 bytes.
        """
    def suspend(self) -> bytes:
        """This party, before ``commit()``, as bytes :func:`resume` turns back into it.

        The bytes hold the party's secret (its new share scalar and its nonce): seal them
        (a KMS with a context naming the session), never log or store them in clear. A
        resumed party's ``commit()`` returns the same commitment, and its session runs on as
        this one would have. Format: docs/shares.md, "Suspended party state".

        Raises:
            ValueError: ``commit()`` has already run, or the session failed.
        """
    def commit(self) -> bytes:
        """Step 1: this party's commitment message, for the peer.

        Raises:
            ValueError: called out of order.
        """
    def reveal(self, peer_commitment: Buffer) -> bytes:
        """Step 2: takes the peer's commitment, returns this party's reveal message.

        Raises:
            portal_core.exceptions.InvalidShare: the message is malformed or belongs to
                another session, curve, id or party.
            ValueError: called out of order.
        """
    def finish(self, peer_reveal: Buffer) -> Share:
        """Step 3: checks the peer's reveal and returns this party's signing share.

        Raises:
            portal_core.exceptions.InvalidShare: the reveal does not open the peer's
                commitment, its proof of knowledge fails, or it is malformed.
            ValueError: called out of order.
        """

@final
class Reshare:
    """One party's side of a reshare: new shares of the same key under ``new_share_id``.

    Backup: from signing shares, ``new_kind="backup"``, a new pair id. Recovery: from
    backup shares, ``new_kind="signing"``, the wallet id. Both parties reshare shares of
    the same pairing with the same session id, kind and id. Steps as :class:`KeyGen`.
    """

    curve: str
    role: str
    session_id: str

    def __new__(cls, share: Share, session_id: str, *, new_kind: str, new_share_id: str) -> Self:
        """Copies ``share``'s secret into the session (``share`` stays usable).

        Raises:
            ValueError: an unknown kind, or an id that is empty or over 255 bytes.
        """
    def suspend(self) -> bytes:
        """This party, before ``commit()``, as bytes :func:`resume` turns back into it.

        The bytes hold the party's secret (the share scalar it reshares, its nonce and its
        reshare seed): seal them (a KMS with a context naming the session), never log or
        store them in clear. A resumed party's ``commit()`` returns the same commitment, and
        its session runs on as this one would have. Format: docs/shares.md, "Suspended party
        state".

        Raises:
            ValueError: ``commit()`` has already run, or the session failed.
        """
    def commit(self) -> bytes:
        """Step 1: this party's commitment message, for the peer.

        Raises:
            ValueError: called out of order.
        """
    def reveal(self, peer_commitment: Buffer) -> bytes:
        """Step 2: takes the peer's commitment, returns this party's reveal message.

        Raises:
            portal_core.exceptions.InvalidShare: the message is malformed, or the peer
                reshares a share of another wallet, pair or kind, or another session.
            ValueError: called out of order.
        """
    def finish(self, peer_reveal: Buffer) -> Share:
        """Step 3: checks the peer's reveal and returns this party's new share.

        Checks that the peer's public share pairs with this one (``X_c + X_s == X``),
        that the reveal opens its commitment and that its proof verifies, and that
        the new public shares add up to ``X``.

        Raises:
            portal_core.exceptions.InvalidShare: any of those checks failed.
            ValueError: called out of order.
        """

@final
class EjectedKey:
    """A wallet's private key, reconstructed by :func:`eject`. ``repr`` never shows it."""

    curve: str
    private_key: str
    """secp256k1: 64 lowercase hex digits. ed25519: base58 of the 32-byte little-endian
    scalar (a scalar, not an RFC 8032 seed: see docs/shares.md)."""
    public_key: bytes
    address: str

def resume(state: Buffer) -> KeyGen | Reshare:
    """The party a ``suspend()`` wrote, in its initial state: a :class:`KeyGen` or a
    :class:`Reshare`, as its protocol says.

    The session digest, public share and commitment are recomputed from ``state``, so
    ``resume(p.suspend()).commit() == p.commit()``.

    Raises:
        portal_core.exceptions.InvalidShare: ``state`` is not exactly a suspended party:
            truncated or trailing bytes, bad magic, unknown version, curve, role, protocol
            or kind, an empty or non-UTF-8 id, an invalid point, a zero or non-canonical
            scalar. The message never holds the scalar.
        TypeError: ``state`` is not a bytes-like object.
    """

def eject(client_share: Share, custodian_share: Share) -> EjectedKey:
    """``x = x_client + x_custodian``, checked: ``x·G`` must be the wallet's public key.

    Both shares must be of one pairing: both signing shares of the wallet, or both
    backup shares of one pair.

    Raises:
        portal_core.exceptions.InvalidShare: different curves, kinds, ids or wallets,
            the wrong order, or shares that do not pair.
        TypeError: an argument is not a :class:`Share`.
    """

def address(curve: str, public_key: Buffer) -> str:
    """The address of an encoded public key: EIP-55 (secp256k1, SEC 1 compressed or
    uncompressed) or base58 (ed25519).

    Raises:
        portal_core.exceptions.InvalidShare: not a valid public key on ``curve``.
        ValueError: an unknown curve.
    """

def check_public_shares(
    curve: str, public_key: Buffer, client_public_share: Buffer, custodian_public_share: Buffer
) -> None:
    """Checks recorded public shares: valid points with ``client + custodian == public_key``.

    Raises:
        portal_core.exceptions.InvalidShare: a point is invalid or the sum differs.
        ValueError: an unknown curve.
    """
