//! Eject: the two halves of a pairing combined into the wallet's private key,
//! checked against the public key, in the form wallets import.

use zeroize::Zeroizing;

use super::group::{Group, Secret};
use super::share::CurveShare;
use super::{invalid, Curve, Role};
use crate::Result;

/// A reconstructed private key. `Debug` never shows the key.
pub struct Ejected {
    /// The curve of the key.
    pub curve: Curve,
    /// secp256k1: 64 lowercase hex digits; ed25519: base58 of the 32-byte
    /// little-endian scalar (see `docs/shares.md`).
    pub private_key: Zeroizing<String>,
    /// The encoded public key (SEC 1 compressed / RFC 8032 compressed).
    pub public_key: Vec<u8>,
    /// EIP-55 Ethereum address / base58 Solana address.
    pub address: String,
}

impl core::fmt::Debug for Ejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ejected")
            .field("curve", &self.curve)
            .field("address", &self.address)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Checks that `client` and `custodian` are the two halves of one pairing.
///
/// # Errors
/// [`crate::Error::InvalidShare`] naming what does not match.
pub fn check_pair<G: Group>(client: &CurveShare<G>, custodian: &CurveShare<G>) -> Result<()> {
    if client.role != Role::Client || custodian.role != Role::Custodian {
        return Err(invalid(
            "pass the client's share first and the custodian's second",
        ));
    }
    if client.kind != custodian.kind {
        return Err(invalid(format!(
            "a {} share does not combine with a {} share",
            client.kind.name(),
            custodian.kind.name()
        )));
    }
    if client.public_key != custodian.public_key {
        return Err(invalid(
            "the shares are for different public keys (different wallets)",
        ));
    }
    if client.id != custodian.id {
        return Err(invalid(format!(
            "the shares have different ids ({:?} and {:?}): shares of different pairs do not combine",
            client.id, custodian.id
        )));
    }
    if client.public_share + custodian.public_share != client.public_key {
        return Err(invalid(
            "the shares do not pair: X_client + X_custodian != X (an old share, or a share of another pair)",
        ));
    }
    Ok(())
}

/// `x = x_client + x_custodian`, checked: `x·G == X`.
///
/// # Errors
/// As [`check_pair`], or if the sum does not give the public key.
pub fn eject<G: Group>(client: &CurveShare<G>, custodian: &CurveShare<G>) -> Result<Ejected> {
    check_pair(client, custodian)?;
    let x = Secret::<G>::new(*client.secret.get() + *custodian.secret.get());
    if x.public() != client.public_key {
        return Err(invalid("the combined key does not match the public key"));
    }
    Ok(Ejected {
        curve: G::CURVE,
        private_key: G::private_key_string(x.get()),
        public_key: G::encode(&client.public_key),
        address: G::address(&client.public_key),
    })
}
