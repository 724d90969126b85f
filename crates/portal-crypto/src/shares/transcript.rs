//! Hashing for the share protocols: domain-separated transcripts, hash
//! commitments and Schnorr proofs of knowledge.
//!
//! A transcript is a label then fields, each written as `len u32 BE || bytes`,
//! so no two different field lists hash alike. Commitments and digests are
//! SHA-256 of it; scalars (challenges, nonces, the reshare delta) are SHA-512
//! of it reduced modulo the group order (64 bytes, so within 2^-250 of uniform).

use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::group::{Group, Secret};
use crate::{rand, Result};

/// Every label starts with this, so no other hash in the project collides.
const DOMAIN: &str = "portal-core/shares/v1/";

/// Length of commitments, digests, nonces and seeds.
pub const HASH_LEN: usize = 32;

/// A domain-separated list of fields. It may hold secrets (the Schnorr nonce
/// derivation hashes the secret scalar), so it is wiped when dropped.
pub struct Transcript(Zeroizing<Vec<u8>>);

impl Transcript {
    pub fn new(label: &str) -> Self {
        let mut t = Transcript(Zeroizing::new(Vec::with_capacity(256)));
        t.field(format!("{DOMAIN}{label}").as_bytes());
        t
    }

    /// Appends one length-prefixed field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).expect("transcript fields are small");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    /// SHA-256 of the transcript.
    pub fn digest(&self) -> [u8; HASH_LEN] {
        Sha256::digest(self.0.as_slice()).into()
    }

    /// SHA-512 of the transcript reduced modulo the group order.
    pub fn scalar<G: Group>(&self) -> G::Scalar {
        let wide = Zeroizing::new(<[u8; 64]>::from(Sha512::digest(self.0.as_slice())));
        G::scalar_from_wide(&wide)
    }
}

/// Constant-time equality of two digests (commitment openings).
pub fn digests_equal(a: &[u8; HASH_LEN], b: &[u8; HASH_LEN]) -> bool {
    bool::from(a.ct_eq(b))
}

/// A non-interactive Schnorr proof of knowledge of `x` with `X = x·G`
/// (RFC 8235 §3, made non-interactive with the Fiat-Shamir transform of
/// RFC 8235 §3.3): the prover sends `R = k·G` and `s = k + c·x` where
/// `c = H(curve, context, X, R)`; the verifier checks `s·G == R + c·X`.
/// The curve id fixes G; `context` binds the proof to one session, one
/// role and both commitments, so a proof cannot be replayed or reflected.
pub struct Proof<G: Group> {
    pub r: G::Point,
    pub s: G::Scalar,
}

impl<G: Group> Proof<G> {
    /// Encoded length: `R || s`.
    pub const LEN: usize = G::POINT_LEN + 32;

    fn challenge(context: &[u8], x_pub: &G::Point, r: &G::Point) -> G::Scalar {
        Transcript::new("schnorr-challenge")
            .field(&[G::CURVE.id()])
            .field(context)
            .field(&G::encode(x_pub))
            .field(&G::encode(r))
            .scalar::<G>()
    }

    /// Proves knowledge of `x`. The nonce is hedged: derived from the
    /// secret, the statement and fresh randomness (as RFC 8032 §5.1.6
    /// derives it from the key, plus randomness), so neither a weak random
    /// generator nor a repeated statement alone can repeat it.
    pub fn prove(x: &Secret<G>, x_pub: &G::Point, context: &[u8]) -> Result<Self> {
        let mut fresh = Zeroizing::new([0u8; 32]);
        rand::fill(fresh.as_mut())?;
        let k = Secret::<G>::new(
            Transcript::new("schnorr-nonce")
                .field(&[G::CURVE.id()])
                .field(G::scalar_to_bytes(x.get()).as_ref())
                .field(fresh.as_ref())
                .field(context)
                .field(&G::encode(x_pub))
                .scalar::<G>(),
        );
        let r = k.public();
        let c = Self::challenge(context, x_pub, &r);
        let s = *k.get() + c * *x.get();
        Ok(Proof { r, s })
    }

    /// Whether this proves knowledge of the discrete log of `x_pub`.
    pub fn verify(&self, x_pub: &G::Point, context: &[u8]) -> bool {
        let c = Self::challenge(context, x_pub, &self.r);
        G::mul_base(&self.s) == self.r + G::mul(x_pub, &c)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = G::encode(&self.r);
        out.extend_from_slice(G::scalar_to_bytes(&self.s).as_ref());
        out
    }

    /// `None` unless `R` is a valid point and `s` a canonical scalar.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let (r, s) = bytes.split_at(G::POINT_LEN);
        let s: [u8; 32] = s.try_into().ok()?;
        Some(Proof {
            r: G::decode(r)?,
            s: G::scalar_from_canonical(&s)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ed25519::Ed25519, secp256k1::Secp256k1};
    use super::*;

    fn proof_round_trip<G: Group>() {
        let x = Secret::<G>::random().unwrap();
        let xp = x.public();
        let p = Proof::<G>::prove(&x, &xp, b"ctx").unwrap();
        let p = Proof::<G>::decode(&p.encode()).unwrap();
        assert!(p.verify(&xp, b"ctx"));
        assert!(!p.verify(&xp, b"other ctx"));
        let y = Secret::<G>::random().unwrap().public();
        assert!(!p.verify(&y, b"ctx"));
        let mut bytes = p.encode();
        let last = bytes.len() - 1;
        bytes[last - 8] ^= 1;
        assert!(Proof::<G>::decode(&bytes).is_none_or(|p| !p.verify(&xp, b"ctx")));
    }

    #[test]
    fn schnorr_proofs() {
        proof_round_trip::<Secp256k1>();
        proof_round_trip::<Ed25519>();
    }

    #[test]
    fn fields_are_length_prefixed() {
        let a = Transcript::new("t").field(b"ab").field(b"c").digest();
        let b = Transcript::new("t").field(b"a").field(b"bc").digest();
        assert_ne!(a, b);
    }
}
