//! Randomness: AWS-LC's `RAND_bytes`, a per-thread CTR-DRBG on AES-NI seeded
//! and periodically reseeded from the operating system (getrandom(2)).
//! Fast enough to draw a fresh salt per sealed message in batch loops.

use crate::{awslc, Error, Result};

/// Fills `buf` with cryptographically secure random bytes.
///
/// # Errors
/// [`Error::Random`] if the generator fails (it does not on a booted Linux).
pub fn fill(buf: &mut [u8]) -> Result<()> {
    if awslc::rand_bytes(buf) {
        Ok(())
    } else {
        Err(Error::Random("RAND_bytes failed".into()))
    }
}

/// A fresh random buffer of `len` bytes (for keys and salts).
///
/// # Errors
/// As [`fill`].
pub fn bytes(len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    fill(&mut v)?;
    Ok(v)
}
