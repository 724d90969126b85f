//! Randomness: AWS-LC's `RAND_bytes`, a per-thread CTR-DRBG on AES-NI seeded
//! and periodically reseeded from the operating system (getrandom(2)).
//! Fast enough to draw a fresh salt per sealed message in batch loops.

use aws_lc_sys as lc;

use crate::{Error, Result};

/// Fills `buf` with cryptographically secure random bytes.
///
/// # Errors
/// [`Error::Random`] if the generator fails (it does not on a booted Linux).
pub fn fill(buf: &mut [u8]) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let ok = unsafe { lc::RAND_bytes(buf.as_mut_ptr(), buf.len()) };
    if ok == 1 {
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
