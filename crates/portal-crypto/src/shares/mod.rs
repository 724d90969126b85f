//! Shares of MPC wallet keys: 2-of-2 additive sharing on secp256k1 and
//! ed25519, with distributed key generation, resharing (backup, recovery),
//! eject, and a versioned serialization. Protocols, formats and test vectors:
//! `docs/shares.md`.
//!
//! A wallet's private scalar is `x = x_client + x_custodian (mod order)`; its
//! public key is `X = x·G` and each party's public share is `X_i = x_i·G`.
//! A party's secret lives in a [`Share`] or a [`Session`] and leaves only
//! as [`Share::to_secret_bytes`] or [`Session::suspend`] (both for sealing)
//! or through [`eject`].
//!
//! * [`Session::keygen`]: a new wallet; neither party chooses `X` alone.
//! * [`Session::reshare`]: new shares of the same `x` under a new id: a backup
//!   (signing -> backup shares), a recovery (backup -> signing shares), or a
//!   refresh. The old shares stop pairing with the new ones.
//! * [`eject`]: `x` from a client and a custodian share of the same pairing.

mod ed25519;
mod eject;
mod exchange;
mod group;
mod message;
mod secp256k1;
mod share;
mod transcript;

#[cfg(test)]
mod tests;

use zeroize::Zeroizing;

pub use eject::Ejected;
pub use exchange::STATE_VERSION;
pub use message::Protocol;
pub use share::VERSION as FORMAT_VERSION;

use ed25519::Ed25519;
use exchange::Exchange;
use group::Group;
use secp256k1::Secp256k1;
use share::CurveShare;

use crate::{Error, Result};

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidShare(msg.into())
}

/// The two curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// secp256k1 (SEC 2 §2.4.1): Ethereum and other EVM chains.
    Secp256k1,
    /// edwards25519 (RFC 8032 §5.1): Solana.
    Ed25519,
}

impl Curve {
    /// The name used on the wire and in Python: `SECP256K1`, `ED25519`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::Secp256k1 => "SECP256K1",
            Curve::Ed25519 => "ED25519",
        }
    }

    /// Parses a name as [`Curve::name`] gives it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "SECP256K1" => Ok(Curve::Secp256k1),
            "ED25519" => Ok(Curve::Ed25519),
            _ => Err(Error::arg(format!(
                "curve must be 'SECP256K1' or 'ED25519', got {name:?}"
            ))),
        }
    }

    /// The byte that names the curve in formats.
    /// The curve's number in the binary formats.
    pub fn id(self) -> u8 {
        match self {
            Curve::Secp256k1 => 1,
            Curve::Ed25519 => 2,
        }
    }

    /// The curve of a number read from a binary format.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Curve::Secp256k1),
            2 => Some(Curve::Ed25519),
            _ => None,
        }
    }

    /// Length of an encoded point (public share or public key).
    pub fn point_len(self) -> usize {
        match self {
            Curve::Secp256k1 => Secp256k1::POINT_LEN,
            Curve::Ed25519 => Ed25519::POINT_LEN,
        }
    }
}

/// The two parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The user's device.
    Client,
    /// The custodian's backend.
    Custodian,
}

impl Role {
    /// The role's name, as the Python API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Custodian => "custodian",
        }
    }

    /// The role of a name (`client` or `custodian`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name other than `client` or `custodian`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "client" => Ok(Role::Client),
            "custodian" => Ok(Role::Custodian),
            _ => Err(Error::arg(format!(
                "role must be 'client' or 'custodian', got {name:?}"
            ))),
        }
    }

    /// The role's number in the binary formats.
    pub fn id(self) -> u8 {
        match self {
            Role::Client => 1,
            Role::Custodian => 2,
        }
    }

    /// The role of a number read from a binary format.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Role::Client),
            2 => Some(Role::Custodian),
            _ => None,
        }
    }

    /// The other party.
    pub fn peer(self) -> Self {
        match self {
            Role::Client => Role::Custodian,
            Role::Custodian => Role::Client,
        }
    }
}

/// What a share is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Held for signing; its id is the wallet id.
    Signing,
    /// Made by a backup, sealed away; its id is the backup pair id.
    Backup,
}

impl Kind {
    /// The kind's name, as the Python API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Signing => "signing",
            Kind::Backup => "backup",
        }
    }

    /// The kind of a name (`signing` or `backup`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name other than `signing` or `backup`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "signing" => Ok(Kind::Signing),
            "backup" => Ok(Kind::Backup),
            _ => Err(Error::arg(format!(
                "kind must be 'signing' or 'backup', got {name:?}"
            ))),
        }
    }

    /// The kind's number in the binary formats.
    pub fn id(self) -> u8 {
        match self {
            Kind::Signing => 1,
            Kind::Backup => 2,
        }
    }

    /// The kind of a number read from a binary format.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Kind::Signing),
            2 => Some(Kind::Backup),
            _ => None,
        }
    }
}

/// Runs `$body` with `$v` bound to the per-curve value inside `$e`.
macro_rules! on_curve {
    ($ty:ident, $e:expr, $v:ident => $body:expr) => {
        match $e {
            $ty::Secp256k1($v) => $body,
            $ty::Ed25519($v) => $body,
        }
    };
}

/// One party's share of a wallet key. `Debug` never shows the scalar.
pub enum Share {
    /// A share of a secp256k1 key.
    Secp256k1(CurveShare<Secp256k1>),
    /// A share of an ed25519 key.
    Ed25519(CurveShare<Ed25519>),
}

/// What a caller expects of a share it loads: every field given is checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Expected<'a> {
    /// The curve it must be on.
    pub curve: Option<Curve>,
    /// What it must be for.
    pub kind: Option<Kind>,
    /// Whose it must be.
    pub role: Option<Role>,
    /// Its wallet or backup pair id.
    pub id: Option<&'a str>,
    /// Its encoded public share.
    pub public_share: Option<&'a [u8]>,
    /// The encoded public key of its wallet.
    pub public_key: Option<&'a [u8]>,
}

impl Share {
    /// The curve of the share.
    pub fn curve(&self) -> Curve {
        match self {
            Share::Secp256k1(_) => Curve::Secp256k1,
            Share::Ed25519(_) => Curve::Ed25519,
        }
    }

    /// What the share is for.
    pub fn kind(&self) -> Kind {
        on_curve!(Share, self, s => s.kind)
    }

    /// The party holding the share.
    pub fn role(&self) -> Role {
        on_curve!(Share, self, s => s.role)
    }

    /// The wallet id (signing share) or backup pair id (backup share).
    pub fn id(&self) -> &str {
        on_curve!(Share, self, s => &s.id)
    }

    /// This party's public share `X_i = x_i·G`, encoded.
    pub fn public_share(&self) -> Vec<u8> {
        on_curve!(Share, self, s => s.encoded_public_share())
    }

    /// The other party's public share `X - X_i`, encoded.
    pub fn peer_public_share(&self) -> Vec<u8> {
        on_curve!(Share, self, s => s.encoded_peer_public_share())
    }

    /// The wallet's public key `X`, encoded.
    pub fn public_key(&self) -> Vec<u8> {
        on_curve!(Share, self, s => s.encoded_public_key())
    }

    /// The wallet's address (EIP-55 Ethereum / base58 Solana).
    pub fn address(&self) -> String {
        on_curve!(Share, self, s => s.address())
    }

    /// The serialized share, scalar included, to be sealed (format version 1).
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        on_curve!(Share, self, s => s.encode())
    }

    /// Decodes and verifies a serialized share.
    ///
    /// # Errors
    /// [`Error::InvalidShare`]: malformed, truncated, unknown version or
    /// curve, non-canonical or zero scalar, or a public share other than
    /// `scalar·G`. The message never holds the scalar.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self> {
        let h = share::parse_header(bytes)?;
        Ok(match h.curve {
            Curve::Secp256k1 => Share::Secp256k1(CurveShare::decode(&h)?),
            Curve::Ed25519 => Share::Ed25519(CurveShare::decode(&h)?),
        })
    }

    /// Checks every field of `want` that is set.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] naming the first field that differs.
    pub fn check(&self, want: &Expected<'_>) -> Result<()> {
        let differs = |what: &str, got: &str, want: &str| {
            Err(invalid(format!("share {what} is {got}, expected {want}")))
        };
        if let Some(c) = want.curve.filter(|&c| c != self.curve()) {
            return differs("curve", self.curve().name(), c.name());
        }
        if let Some(k) = want.kind.filter(|&k| k != self.kind()) {
            return differs("kind", self.kind().name(), k.name());
        }
        if let Some(r) = want.role.filter(|&r| r != self.role()) {
            return differs("role", self.role().name(), r.name());
        }
        if let Some(id) = want.id.filter(|&id| id != self.id()) {
            return differs("id", &format!("{:?}", self.id()), &format!("{id:?}"));
        }
        if want.public_share.is_some_and(|p| p != self.public_share()) {
            return Err(invalid("share public share differs from the recorded one"));
        }
        if want.public_key.is_some_and(|p| p != self.public_key()) {
            return Err(invalid(
                "share public key differs from the wallet's (a share of another wallet)",
            ));
        }
        Ok(())
    }
}

impl core::fmt::Debug for Share {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Share")
            .field("curve", &self.curve())
            .field("kind", &self.kind())
            .field("role", &self.role())
            .field("id", &self.id())
            .field("scalar", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One party's side of a key generation or reshare. Three steps, each run
/// once, in order: [`Session::commit`], [`Session::reveal`] (with the peer's
/// commitment), [`Session::finish`] (with the peer's reveal).
#[derive(Debug)]
pub enum Session {
    /// A session on secp256k1.
    Secp256k1(Exchange<Secp256k1>),
    /// A session on ed25519.
    Ed25519(Exchange<Ed25519>),
}

impl Session {
    /// Key generation of a new wallet's signing share for `role`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an id that is empty or over 255 bytes.
    pub fn keygen(curve: Curve, role: Role, session_id: &str, wallet_id: &str) -> Result<Self> {
        Ok(match curve {
            Curve::Secp256k1 => Session::Secp256k1(Exchange::keygen(role, session_id, wallet_id)?),
            Curve::Ed25519 => Session::Ed25519(Exchange::keygen(role, session_id, wallet_id)?),
        })
    }

    /// A reshare of `share` into a new `new_kind` share with id `new_id`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an id that is empty or over 255 bytes.
    pub fn reshare(share: &Share, session_id: &str, new_kind: Kind, new_id: &str) -> Result<Self> {
        Ok(match share {
            Share::Secp256k1(s) => {
                Session::Secp256k1(Exchange::reshare(s, session_id, new_kind, new_id)?)
            }
            Share::Ed25519(s) => {
                Session::Ed25519(Exchange::reshare(s, session_id, new_kind, new_id)?)
            }
        })
    }

    /// The curve of the session.
    pub fn curve(&self) -> Curve {
        match self {
            Session::Secp256k1(_) => Curve::Secp256k1,
            Session::Ed25519(_) => Curve::Ed25519,
        }
    }

    /// This party's role.
    pub fn role(&self) -> Role {
        on_curve!(Session, self, s => s.role())
    }

    /// Key generation or reshare.
    pub fn protocol(&self) -> Protocol {
        on_curve!(Session, self, s => s.protocol())
    }

    /// The id both parties gave the session.
    pub fn session_id(&self) -> &str {
        on_curve!(Session, self, s => s.session_id())
    }

    /// This party, before [`Session::commit`], as bytes that
    /// [`Session::resume`] turns back into it: so a service can keep a
    /// session outside its memory between requests (sealed: the bytes hold
    /// the party's secret scalar, nonce and reshare seed). Format:
    /// `docs/shares.md`, "Suspended party state".
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] once [`Session::commit`] has run (or the
    /// session failed): only a party in its initial state is suspended.
    pub fn suspend(&self) -> Result<Zeroizing<Vec<u8>>> {
        on_curve!(Session, self, s => s.suspend())
    }

    /// The party [`Session::suspend`] wrote, in its initial state: its
    /// [`Session::commit`] returns the same commitment, and the session runs
    /// on as the suspended party would have. The session digest, the public
    /// share and the commitment are recomputed from the bytes.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] for anything but the exact encoding of a
    /// suspended party: truncated or trailing bytes, bad magic, unknown
    /// version, curve, role, protocol or kind, an empty or non-UTF-8 id, a
    /// point in the parameters that is not valid, a zero or non-canonical
    /// scalar. The message never holds the scalar.
    pub fn resume(bytes: &[u8]) -> Result<Self> {
        // magic (2) and version (1) are checked by the curve's decoder.
        match bytes.get(3).copied().map(Curve::from_id) {
            Some(Some(Curve::Secp256k1)) => Ok(Session::Secp256k1(Exchange::resume(bytes)?)),
            Some(Some(Curve::Ed25519)) => Ok(Session::Ed25519(Exchange::resume(bytes)?)),
            // Either decoder names what is wrong first (bad magic, truncation, the curve).
            _ => Exchange::<Secp256k1>::resume(bytes).map(Session::Secp256k1),
        }
    }

    /// Step 1: this party's commitment.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] out of order.
    pub fn commit(&mut self) -> Result<Vec<u8>> {
        on_curve!(Session, self, s => s.commit())
    }

    /// Step 2: the peer's commitment in, this party's reveal out.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] for a message that does not fit the session;
    /// [`Error::InvalidArgument`] out of order.
    pub fn reveal(&mut self, peer_commitment: &[u8]) -> Result<Vec<u8>> {
        on_curve!(Session, self, s => s.reveal(peer_commitment))
    }

    /// Step 3: the peer's reveal in, this party's new share out.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] if the peer's reveal fails any check;
    /// [`Error::InvalidArgument`] out of order.
    pub fn finish(&mut self, peer_reveal: &[u8]) -> Result<Share> {
        Ok(match self {
            Session::Secp256k1(s) => Share::Secp256k1(s.finish(peer_reveal)?),
            Session::Ed25519(s) => Share::Ed25519(s.finish(peer_reveal)?),
        })
    }
}

/// The wallet's private key from the client's and the custodian's shares of
/// one pairing (both signing shares, or both backup shares of one pair),
/// checked against the public key.
///
/// # Errors
/// [`Error::InvalidShare`] if the shares are on different curves, of
/// different kinds, ids or wallets, in the wrong order, or do not pair.
pub fn eject(client: &Share, custodian: &Share) -> Result<Ejected> {
    match (client, custodian) {
        (Share::Secp256k1(c), Share::Secp256k1(s)) => eject::eject(c, s),
        (Share::Ed25519(c), Share::Ed25519(s)) => eject::eject(c, s),
        _ => Err(invalid(format!(
            "the shares are on different curves ({} and {})",
            client.curve().name(),
            custodian.curve().name()
        ))),
    }
}

/// The address of an encoded public key: EIP-55 for secp256k1 (SEC 1
/// compressed or uncompressed input), base58 for ed25519.
///
/// # Errors
/// [`Error::InvalidShare`] if `public_key` is not a valid point of `curve`.
pub fn address(curve: Curve, public_key: &[u8]) -> Result<String> {
    let bad = || invalid(format!("not a valid {} public key", curve.name()));
    match curve {
        Curve::Secp256k1 => secp256k1::decode_sec1(public_key)
            .map(|p| secp256k1::ethereum_address(&p))
            .ok_or_else(bad),
        Curve::Ed25519 => Ed25519::decode(public_key)
            .map(|p| Ed25519::address(&p))
            .ok_or_else(bad),
    }
}

/// Checks recorded public shares before they are stored or used:
/// both are valid points and `client_share + custodian_share == public_key`.
///
/// # Errors
/// [`Error::InvalidShare`] naming which check failed.
pub fn check_public_shares(
    curve: Curve,
    public_key: &[u8],
    client_share: &[u8],
    custodian_share: &[u8],
) -> Result<()> {
    match curve {
        Curve::Secp256k1 => check_points::<Secp256k1>(public_key, client_share, custodian_share),
        Curve::Ed25519 => check_points::<Ed25519>(public_key, client_share, custodian_share),
    }
}

fn check_points<G: Group>(x: &[u8], c: &[u8], s: &[u8]) -> Result<()> {
    let point = |b: &[u8], what: &str| {
        G::decode(b)
            .ok_or_else(|| invalid(format!("{what} is not a valid {} point", G::CURVE.name())))
    };
    let (x, c, s) = (
        point(x, "public key")?,
        point(c, "client public share")?,
        point(s, "custodian public share")?,
    );
    if c + s != x {
        return Err(invalid(
            "public shares do not add up to the public key: X_client + X_custodian != X",
        ));
    }
    Ok(())
}
