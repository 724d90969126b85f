//! Resealing: moving envelopes to another key inside the core.
//!
//! A key-rotation job (the KMS's `rewrap`) must move stored envelopes from an
//! old key to a new one without the plaintext ever reaching the caller's
//! language runtime, where it could not be wiped. These functions open and
//! seal in one step; the plaintext lives only in a zeroize-on-drop buffer.

use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::aead::TAG_LEN;
use crate::{BatchError, Error, Result};

use super::batch::{open_many, seal_many};
use super::data_key::check_key;
use super::format::{check_key_id, parse, plaintext_len, Context};
use super::seal::{open_into, seal_into};
use super::CHUNK;

/// Length of `sealed` once resealed under a key named `new_key_id` (the
/// plaintext and context keep their lengths; only the key id changes).
///
/// # Errors
/// As [`parse`]; [`Error::InvalidArgument`] for a key id over 255 bytes.
pub fn resealed_len(sealed: &[u8], new_key_id: &str) -> Result<usize> {
    check_key_id(new_key_id)?;
    let h = parse(sealed)?;
    Ok(sealed.len() - h.key_id.len() + new_key_id.len())
}

/// Opens `sealed` under `old_key` with the context stored in its header, and
/// seals the same plaintext and context under `new_key` (fresh salt, key id
/// `new_key_id`) into `out` (exactly [`resealed_len`] bytes).
///
/// The stored context is authenticated by the old envelope's tag, so the new
/// envelope binds exactly the context the old one did.
///
/// # Errors
/// As [`open_into`] for the old envelope (`InvalidTag` for a wrong key or any
/// tampering) and [`seal_into`] for the new one.
pub fn reseal_into(
    old_key: &[u8],
    sealed: &[u8],
    new_key: &[u8],
    new_key_id: &str,
    out: &mut [u8],
) -> Result<()> {
    check_key(old_key)?;
    check_key(new_key)?;
    check_key_id(new_key_id)?;
    let h = parse(sealed)?;
    let context = Context::new(&h.context_pairs()?)?;
    let mut plaintext = Zeroizing::new(vec![0u8; h.body.len() - TAG_LEN]);
    open_into(old_key, sealed, &context, &mut plaintext)?;
    seal_into(new_key, &plaintext, &context, new_key_id, out)
}

/// Items resealed together: bounds the plaintext held (in zeroize-on-drop
/// buffers) by one [`reseal_many`] call at a time.
const RESEAL_BATCH: usize = 4 * CHUNK;

/// [`reseal_into`] for many envelopes on all cores: each slice of
/// [`RESEAL_BATCH`] items is opened with [`open_many`] (one key derivation
/// per salt shared by a batch) and sealed again with [`seal_many`] (one fresh
/// salt per chunk). All or nothing: on any failure the error names the first
/// failing index and the outputs are unspecified (they never hold plaintext).
///
/// # Errors
/// [`BatchError`] for the first failing item; a wrong key or key id, or
/// mismatched counts, are reported at index 0.
pub fn reseal_many(
    old_key: &[u8],
    sealed: &[&[u8]],
    new_key: &[u8],
    new_key_id: &str,
    outs: &mut [&mut [u8]],
) -> core::result::Result<(), BatchError> {
    let whole = |e| BatchError::new(0, e);
    check_key(old_key).map_err(whole)?;
    check_key(new_key).map_err(whole)?;
    check_key_id(new_key_id).map_err(whole)?;
    if outs.len() != sealed.len() {
        return Err(whole(Error::arg("one output buffer per item is required")));
    }
    for (base, (items, outs)) in sealed
        .chunks(RESEAL_BATCH)
        .zip(outs.chunks_mut(RESEAL_BATCH))
        .enumerate()
        .map(|(n, pair)| (n * RESEAL_BATCH, pair))
    {
        let at = |e: BatchError| e.offset(base);
        // The context stored in each header, authenticated by open_many below.
        let contexts = items
            .par_iter()
            .enumerate()
            .map(|(i, s)| {
                parse(s)
                    .and_then(|h| Context::new(&h.context_pairs()?))
                    .map_err(|e| BatchError::new(i, e))
            })
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(at)?;
        let mut plain = items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                plaintext_len(s)
                    .map(|n| Zeroizing::new(vec![0u8; n]))
                    .map_err(|e| BatchError::new(i, e))
            })
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(at)?;
        let mut views: Vec<&mut [u8]> = plain.iter_mut().map(|p| p.as_mut_slice()).collect();
        open_many(old_key, items, &contexts, &mut views).map_err(at)?;
        let plaintexts: Vec<&[u8]> = plain.iter().map(|p| p.as_slice()).collect();
        seal_many(new_key, &plaintexts, &contexts, new_key_id, outs)
            .map_err(|e| BatchError::new(base, e))?;
    }
    Ok(())
}
