//! Key derivation: HKDF-SHA256 (RFC 5869), PBKDF2-HMAC-SHA256 (RFC 8018)
//! and Argon2id (RFC 9106).

use aws_lc_sys as lc;

use crate::{Error, Result};

/// SHA-256 output length, the HKDF/PBKDF2 block.
pub const SHA256_LEN: usize = 32;
/// RFC 5869 §2.3: at most 255 blocks of output.
pub const HKDF_MAX_LEN: usize = 255 * SHA256_LEN;

/// HKDF-SHA256 into `out` (RFC 5869). An empty `salt` means the RFC's
/// default of `HashLen` zero bytes (HMAC pads keys with zeros, so the two agree).
///
/// # Errors
/// [`Error::InvalidArgument`] if `out` is empty or longer than [`HKDF_MAX_LEN`].
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    if out.is_empty() || out.len() > HKDF_MAX_LEN {
        return Err(Error::arg(format!(
            "HKDF-SHA256 length must be between 1 and {HKDF_MAX_LEN} bytes"
        )));
    }
    // SAFETY: every pointer is valid for the length passed with it.
    let ok = unsafe {
        lc::HKDF(
            out.as_mut_ptr(),
            out.len(),
            lc::EVP_sha256(),
            ikm.as_ptr(),
            ikm.len(),
            salt.as_ptr(),
            salt.len(),
            info.as_ptr(),
            info.len(),
        )
    };
    if ok != 1 {
        // SAFETY: clears only this thread's error queue.
        unsafe { lc::ERR_clear_error() };
        return Err(Error::arg("HKDF failed"));
    }
    Ok(())
}

/// PBKDF2-HMAC-SHA256 into `out` (RFC 8018 §5.2).
///
/// # Errors
/// [`Error::InvalidArgument`] for zero iterations or an empty output.
pub fn pbkdf2_hmac_sha256(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) -> Result<()> {
    if iterations == 0 {
        return Err(Error::arg("iterations must be at least 1"));
    }
    if out.is_empty() {
        return Err(Error::arg("length must be at least 1"));
    }
    // SAFETY: every pointer is valid for the length passed with it.
    let ok = unsafe {
        lc::PKCS5_PBKDF2_HMAC(
            password.as_ptr().cast(),
            password.len(),
            salt.as_ptr(),
            salt.len(),
            iterations,
            lc::EVP_sha256(),
            out.len(),
            out.as_mut_ptr(),
        )
    };
    if ok != 1 {
        // SAFETY: clears only this thread's error queue.
        unsafe { lc::ERR_clear_error() };
        return Err(Error::arg("PBKDF2 failed"));
    }
    Ok(())
}

/// Argon2id parameters (RFC 9106 §3.1): passes, memory in KiB, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub time_cost: u32,
    pub memory_cost: u32,
    pub parallelism: u32,
}

/// Argon2id (version 0x13) into `out`; lanes run on threads.
///
/// # Errors
/// [`Error::InvalidArgument`] for parameters RFC 9106 does not allow.
pub fn argon2id(password: &[u8], salt: &[u8], p: Argon2Params, out: &mut [u8]) -> Result<()> {
    let params = argon2::Params::new(p.memory_cost, p.time_cost, p.parallelism, Some(out.len()))
        .map_err(|e| Error::arg(format!("invalid Argon2id parameters: {e}")))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, salt, out)
        .map_err(|e| Error::arg(format!("Argon2id failed: {e}")))
}
