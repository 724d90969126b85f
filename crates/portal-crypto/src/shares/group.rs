//! The little group interface the share protocols need, implemented for
//! secp256k1 (`k256`) and edwards25519 (`curve25519-dalek`), both constant-time.
//!
//! Scalars are integers modulo the prime order of the base point (n for
//! secp256k1, L for ed25519); points are elements of the prime-order group.
//! Decoding a point accepts only the canonical encoding of a non-identity
//! point of that group, so every public value the protocols handle is one.

use core::ops::{Add, Mul, Neg, Sub};

use zeroize::{Zeroize, Zeroizing};

use super::Curve;
use crate::{rand, Result};

/// A prime-order group with a fixed generator G.
pub trait Group: Sized + Send + Sync + 'static {
    /// The curve's identifier in formats and messages.
    const CURVE: Curve;
    /// Length of an encoded point.
    const POINT_LEN: usize;
    /// An integer modulo the group order (wiped with [`Zeroize`]).
    type Scalar: Copy
        + Send
        + Sync
        + Zeroize
        + Add<Output = Self::Scalar>
        + Sub<Output = Self::Scalar>
        + Mul<Output = Self::Scalar>
        + Neg<Output = Self::Scalar>;
    /// A group element.
    type Point: Copy
        + Send
        + Sync
        + PartialEq
        + Add<Output = Self::Point>
        + Sub<Output = Self::Point>;

    /// The scalar whose 32-byte encoding is `bytes`, or `None` if `bytes` is
    /// not the canonical encoding of an integer below the group order.
    fn scalar_from_canonical(bytes: &[u8; 32]) -> Option<Self::Scalar>;
    /// A 64-byte integer reduced modulo the order: for uniform input the
    /// result is within 2^-250 of uniform on either curve.
    fn scalar_from_wide(bytes: &[u8; 64]) -> Self::Scalar;
    /// The canonical 32-byte encoding of `s`.
    fn scalar_to_bytes(s: &Self::Scalar) -> Zeroizing<[u8; 32]>;
    /// Whether `s` is zero (constant-time).
    fn scalar_is_zero(s: &Self::Scalar) -> bool;

    /// `s·G`, constant-time in `s`.
    fn mul_base(s: &Self::Scalar) -> Self::Point;
    /// `s·P` (used with public scalars only: verification).
    fn mul(p: &Self::Point, s: &Self::Scalar) -> Self::Point;
    /// Whether `p` is the identity.
    fn is_identity(p: &Self::Point) -> bool;
    /// The canonical encoding of `p` (`POINT_LEN` bytes).
    fn encode(p: &Self::Point) -> Vec<u8>;
    /// Decodes a canonical encoding of a non-identity point of the
    /// prime-order group; `None` for anything else.
    fn decode(bytes: &[u8]) -> Option<Self::Point>;
    /// The wallet address of public key `p` on this curve's chain.
    fn address(p: &Self::Point) -> String;
    /// The private key `x` in the form eject returns it.
    fn private_key_string(x: &Self::Scalar) -> Zeroizing<String>;
}

/// A secret scalar, wiped when dropped. Copies made by arithmetic on the
/// stack are not tracked; the named secrets are.
pub struct Secret<G: Group>(G::Scalar);

impl<G: Group> Secret<G> {
    pub fn new(s: G::Scalar) -> Self {
        Secret(s)
    }

    pub fn get(&self) -> &G::Scalar {
        &self.0
    }

    /// A uniformly random non-zero scalar: 64 random bytes reduced modulo the
    /// order (the wide reduction of FIPS 186-5 A.2.1 / RFC 9380 §5.2).
    pub fn random() -> Result<Self> {
        let mut wide = Zeroizing::new([0u8; 64]);
        loop {
            rand::fill(wide.as_mut())?;
            let s = Secret(G::scalar_from_wide(&wide));
            // Zero comes up with probability about 2^-252: never, but a zero
            // share would make its public share the identity, which every
            // decoder refuses, so draw again rather than emit one.
            if !G::scalar_is_zero(s.get()) {
                return Ok(s);
            }
        }
    }

    pub fn public(&self) -> G::Point {
        G::mul_base(&self.0)
    }
}

impl<G: Group> Clone for Secret<G> {
    fn clone(&self) -> Self {
        Secret(self.0)
    }
}

impl<G: Group> Drop for Secret<G> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<G: Group> core::fmt::Debug for Secret<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
