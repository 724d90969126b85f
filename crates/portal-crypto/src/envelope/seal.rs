//! Sealing and opening one message, each under its own fresh salt.

use crate::aead::TAG_LEN;
use crate::{rand, Error, Result};

use super::data_key::{check_key, DataKey};
use super::format::{check_key_id, parse_for_open, plaintext_len, sealed_len, Context};

/// Seals `plaintext` into `out` (exactly [`sealed_len`] bytes) with a fresh
/// random salt.
///
/// # Errors
/// [`Error::InvalidArgument`] for a wrong key, key id or output length.
pub fn seal_into(
    key: &[u8],
    plaintext: &[u8],
    context: &Context,
    key_id: &str,
    out: &mut [u8],
) -> Result<()> {
    check_key(key)?;
    check_key_id(key_id)?;
    DataKey::fresh(key, rand::fill)?.seal_item(0, plaintext, context, key_id, out)
}

/// Seals `plaintext` into a new vector.
///
/// # Errors
/// As [`seal_into`].
pub fn seal(key: &[u8], plaintext: &[u8], context: &Context, key_id: &str) -> Result<Vec<u8>> {
    let mut out = vec![0u8; sealed_len(key_id, context, plaintext.len())];
    seal_into(key, plaintext, context, key_id, &mut out)?;
    Ok(out)
}

/// Opens one envelope, reusing `cache` when it holds the data key of the
/// same salt (items sealed in one batch chunk share it).
///
/// # Errors
/// As [`open_into`].
pub(super) fn open_cached(
    key: &[u8],
    sealed: &[u8],
    context: &Context,
    out: &mut [u8],
    cache: &mut Option<DataKey>,
) -> Result<()> {
    // The stored context is decoded only when it differs from the caller's
    // (a malformed one is an invalid envelope, as `parse` reports it): equal
    // bytes are the caller's canonical encoding, valid by construction. This
    // spares a batch a decode of every item's context.
    let h = parse_for_open(sealed)?;
    let same_context = h.context == context.encoded();
    if !same_context {
        Context::decode(h.context)?;
    }
    let pt_len = h.body.len() - TAG_LEN;
    if out.len() != pt_len {
        return Err(Error::arg(format!(
            "output must be {pt_len} bytes (the plaintext length), not {}",
            out.len()
        )));
    }
    // The context is authenticated as part of the header; a different one
    // could never verify, so refuse it as a failed tag without more work.
    if !same_context {
        return Err(Error::InvalidTag);
    }
    let dk = match cache {
        Some(dk) if dk.salt.as_slice() == h.salt => dk,
        _ => cache.insert(DataKey::derive(key, h.salt)?),
    };
    dk.open_item(&h, out)
}

/// Opens `sealed` into `out` (exactly its plaintext length), checking the
/// key commitment, the tag, and that `context` is the one it was sealed with.
/// On any failure `out` holds no plaintext.
///
/// # Errors
/// [`Error::InvalidEnvelope`] if it does not parse; [`Error::InvalidTag`] for
/// a wrong key, a wrong context or any tampering; [`Error::InvalidArgument`]
/// for a wrong key or output length.
pub fn open_into(key: &[u8], sealed: &[u8], context: &Context, out: &mut [u8]) -> Result<()> {
    check_key(key)?;
    open_cached(key, sealed, context, out, &mut None)
}

/// Opens `sealed` into a new vector.
///
/// # Errors
/// As [`open_into`].
pub fn open(key: &[u8], sealed: &[u8], context: &Context) -> Result<Vec<u8>> {
    let mut out = vec![0u8; plaintext_len(sealed)?];
    open_into(key, sealed, context, &mut out)?;
    Ok(out)
}
