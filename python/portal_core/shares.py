"""Shares of MPC wallet keys: 2-of-2 additive sharing on secp256k1 and ed25519.

A wallet's private scalar is ``x = x_client + x_custodian`` (mod the group order),
its public key ``X = x·G``. Each party holds its share in a :class:`Share`, whose
scalar stays in Rust: it crosses into Python only as ``Share.to_secret_bytes()`` (to be
sealed with :mod:`portal_core.envelope`) or as an :class:`EjectedKey`.

The two parties run sessions that exchange public ``bytes`` messages only, in three
steps that map one-to-one onto HTTP calls::

    client, custodian = KeyGen(SECP256K1, CLIENT, sid, wallet_id="w-1"), KeyGen(...)
    c1, s1 = client.commit(), custodian.commit()          # commitments
    c2, s2 = client.reveal(s1), custodian.reveal(c1)      # reveals (after the peer's commitment)
    client_share, custodian_share = client.finish(s2), custodian.finish(c2)

:class:`Reshare` runs the same three steps to make new shares of the same key:
a backup (``new_kind=BACKUP``, a new pair id), a recovery (``new_kind=SIGNING`` from
backup shares), or a refresh. :func:`eject` combines a client and a custodian share.

A party not yet committed can be suspended to bytes and resumed, in another process if
need be (``state = party.suspend()`` ... ``party = resume(state)``): the custodian keeps
its sessions that way, sealed, in its store. The bytes hold the party's secret.
Protocols, formats and test vectors: ``docs/shares.md``.
"""

from __future__ import annotations

from typing import Protocol

from portal_core._rust import shares as _shares

Share = _shares.Share
KeyGen = _shares.KeyGen
Reshare = _shares.Reshare
EjectedKey = _shares.EjectedKey
eject = _shares.eject
address = _shares.address
check_public_shares = _shares.check_public_shares
resume = _shares.resume

SECP256K1: str = _shares.SECP256K1
ED25519: str = _shares.ED25519
CURVES: tuple[str, ...] = (SECP256K1, ED25519)
CLIENT: str = _shares.CLIENT
CUSTODIAN: str = _shares.CUSTODIAN
SIGNING: str = _shares.SIGNING
BACKUP: str = _shares.BACKUP
FORMAT_VERSION: int = _shares.FORMAT_VERSION
STATE_VERSION: int = _shares.STATE_VERSION


class _Party(Protocol):
    def commit(self) -> bytes: ...
    def reveal(self, peer_commitment: bytes) -> bytes: ...
    def finish(self, peer_reveal: bytes) -> Share: ...


def run_local(client: _Party, custodian: _Party) -> tuple[Share, Share]:
    """Runs one session between two in-process parties: ``(client_share, custodian_share)``.

    The parties see nothing but each other's messages, exactly as over a network.

    Raises:
        portal_core.exceptions.InvalidShare: a message failed verification.
        ValueError: a session object was already used.
    """
    c1, s1 = client.commit(), custodian.commit()
    c2, s2 = client.reveal(s1), custodian.reveal(c1)
    return client.finish(s2), custodian.finish(c2)


__all__ = [
    "BACKUP",
    "CLIENT",
    "CURVES",
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
    "run_local",
]
