//! One party's share on one curve, and its versioned serialization.
//!
//! Format version 1 (documented with vectors in `docs/shares.md`):
//!
//! ```text
//! "PS" | version u8 = 1 | curve u8 | kind u8 | role u8
//! | id_len u8 (1..=255) | id (UTF-8)
//! | scalar [32] | public_share [P] | public_key [P]
//! ```
//!
//! `P` is 33 for secp256k1 (SEC 1 §2.3.3 compressed) and 32 for ed25519
//! (RFC 8032 §5.1.2). Decoding refuses anything but the exact length, a
//! canonical non-zero scalar, and a public share equal to `scalar·G`.

use zeroize::Zeroizing;

use super::group::{Group, Secret};
use super::{invalid, Curve, Kind, Role};
use crate::codec::Reader;
use crate::{Error, Result};

/// The two magic bytes that start every serialized share.
pub const MAGIC: &[u8; 2] = b"PS";
/// The only share format version so far.
pub const VERSION: u8 = 1;
/// Fixed bytes before the id: magic, version, curve, kind, role, id length.
pub const HEADER_LEN: usize = 2 + 1 + 1 + 1 + 1 + 1;

/// A share of the wallet key on curve `G`, held by one party.
pub struct CurveShare<G: Group> {
    pub kind: Kind,
    pub role: Role,
    /// The wallet id (signing shares) or the backup pair id (backup shares).
    pub id: String,
    pub(crate) secret: Secret<G>,
    /// `X_i = x_i·G`.
    pub public_share: G::Point,
    /// The wallet's public key `X = X_client + X_custodian`.
    pub public_key: G::Point,
}

impl<G: Group> CurveShare<G> {
    /// The other party's public share, `X - X_i`.
    pub fn peer_public_share(&self) -> G::Point {
        self.public_key - self.public_share
    }

    pub fn encoded_public_share(&self) -> Vec<u8> {
        G::encode(&self.public_share)
    }

    pub fn encoded_peer_public_share(&self) -> Vec<u8> {
        G::encode(&self.peer_public_share())
    }

    pub fn encoded_public_key(&self) -> Vec<u8> {
        G::encode(&self.public_key)
    }

    /// The wallet's address on this curve's chain.
    pub fn address(&self) -> String {
        G::address(&self.public_key)
    }

    /// The serialized share, scalar included (for sealing).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            HEADER_LEN + self.id.len() + 32 + 2 * G::POINT_LEN,
        ));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[
            VERSION,
            G::CURVE.id(),
            self.kind.id(),
            self.role.id(),
            // Ids are checked to fit when the share is made.
            self.id.len() as u8,
        ]);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(G::scalar_to_bytes(self.secret.get()).as_ref());
        out.extend_from_slice(&G::encode(&self.public_share));
        out.extend_from_slice(&G::encode(&self.public_key));
        out
    }

    /// Decodes a share whose header (checked by [`parse_header`]) names `G`.
    pub fn decode(h: &Header<'_>) -> Result<Self> {
        let body = h.body;
        if body.len() != 32 + 2 * G::POINT_LEN {
            return Err(invalid(format!(
                "a {} share has {} bytes after its id, got {}{}",
                G::CURVE.name(),
                32 + 2 * G::POINT_LEN,
                body.len(),
                if body.len() < 32 + 2 * G::POINT_LEN {
                    " (truncated)"
                } else {
                    " (trailing bytes)"
                }
            )));
        }
        // The length is checked above, so none of these reads can fail.
        let truncated = || invalid("share is truncated");
        let mut r = Reader::new(body);
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(r.array::<32>().map_err(|_| truncated())?);
        let secret = G::scalar_from_canonical(&scalar)
            .map(Secret::<G>::new)
            .ok_or_else(|| invalid("share scalar is not canonical (not below the group order)"))?;
        if G::scalar_is_zero(secret.get()) {
            return Err(invalid("share scalar is zero"));
        }
        let point = |bytes: &[u8], what: &str| {
            G::decode(bytes).ok_or_else(|| {
                invalid(format!(
                    "share {what} is not a valid {} point",
                    G::CURVE.name()
                ))
            })
        };
        let public_share = point(
            r.take(G::POINT_LEN).map_err(|_| truncated())?,
            "public share",
        )?;
        let public_key = point(r.take(G::POINT_LEN).map_err(|_| truncated())?, "public key")?;
        if secret.public() != public_share {
            return Err(invalid("share public share does not match its scalar"));
        }
        if public_share == public_key {
            // X = X_i would make the other party's share zero.
            return Err(invalid("share public share equals the public key"));
        }
        Ok(CurveShare {
            kind: h.kind,
            role: h.role,
            id: h.id.to_owned(),
            secret,
            public_share,
            public_key,
        })
    }
}

impl<G: Group> core::fmt::Debug for CurveShare<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CurveShare")
            .field("curve", &G::CURVE)
            .field("kind", &self.kind)
            .field("role", &self.role)
            .field("id", &self.id)
            .field("scalar", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The public fields of a serialized share, and the bytes after its id.
pub struct Header<'a> {
    pub curve: Curve,
    pub kind: Kind,
    pub role: Role,
    pub id: &'a str,
    pub body: &'a [u8],
}

/// Parses magic, version, curve, kind, role and id.
///
/// # Errors
/// [`Error::InvalidShare`] naming the first field that is wrong.
pub fn parse_header(b: &[u8]) -> Result<Header<'_>> {
    let truncated = || {
        invalid(format!(
            "share is {} bytes, shorter than its {HEADER_LEN}-byte header (truncated)",
            b.len()
        ))
    };
    // A share shorter than its fixed header is reported as such, whatever it holds.
    if b.len() < HEADER_LEN {
        return Err(truncated());
    }
    let mut r = Reader::new(b);
    if r.take(MAGIC.len()).map_err(|_| truncated())? != MAGIC {
        return Err(invalid("not a serialized share (bad magic)"));
    }
    let version = r.u8().map_err(|_| truncated())?;
    if version != VERSION {
        return Err(invalid(format!(
            "unsupported share format version {version} (this build reads version {VERSION})"
        )));
    }
    let curve = r.u8().map_err(|_| truncated())?;
    let curve =
        Curve::from_id(curve).ok_or_else(|| invalid(format!("unknown curve id {curve}")))?;
    let kind = r.u8().map_err(|_| truncated())?;
    let kind = Kind::from_id(kind).ok_or_else(|| invalid(format!("unknown share kind {kind}")))?;
    let role = r.u8().map_err(|_| truncated())?;
    let role = Role::from_id(role).ok_or_else(|| invalid(format!("unknown role {role}")))?;
    let id_len = usize::from(r.u8().map_err(|_| truncated())?);
    if id_len == 0 {
        return Err(invalid("share id is empty"));
    }
    let id = r
        .take(id_len)
        .map_err(|_| invalid("share is truncated inside its id"))?;
    let id = std::str::from_utf8(id).map_err(|_| invalid("share id is not UTF-8"))?;
    Ok(Header {
        curve,
        kind,
        role,
        id,
        body: r.rest(),
    })
}

/// Checks an id for the formats: 1 to 255 bytes of UTF-8.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `what`.
pub fn check_id(id: &str, what: &str) -> Result<()> {
    if id.is_empty() || id.len() > 255 {
        return Err(Error::arg(format!(
            "{what} must be 1 to 255 bytes of UTF-8, got {} bytes",
            id.len()
        )));
    }
    Ok(())
}
