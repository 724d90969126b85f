//! Many messages at once, on all cores: runs of [`CHUNK`] items share one
//! fresh salt (one key derivation per run) and are told apart by index.

use rayon::prelude::*;
use zeroize::Zeroize;

use crate::{rand, BatchError, Error, Result};

use super::data_key::{check_key, DataKey};
use super::format::{check_key_id, Context};
use super::seal::open_cached;
use super::CHUNK;

/// Seals many messages on all cores: `outs[i]` receives the envelope of
/// `plaintexts[i]` under `contexts[i]` (or `contexts[0]` when one context is
/// given for all). Each output must be exactly [`sealed_len`](super::sealed_len) bytes.
///
/// Each run of [`CHUNK`] items shares one fresh salt, so one key derivation
/// serves the run; the items are told apart by their index (their nonce).
///
/// # Errors
/// The first error met (wrong key, key id or lengths); outputs are then unspecified.
pub fn seal_many(
    key: &[u8],
    plaintexts: &[&[u8]],
    contexts: &[Context],
    key_id: &str,
    outs: &mut [&mut [u8]],
) -> Result<()> {
    check_key(key)?;
    check_key_id(key_id)?;
    check_batch(plaintexts.len(), contexts.len(), outs.len())?;
    outs.par_chunks_mut(CHUNK)
        .zip(plaintexts.par_chunks(CHUNK))
        .enumerate()
        .try_for_each(|(c, (outs, pts))| {
            let dk = DataKey::fresh(key, rand::fill)?;
            for (j, (out, pt)) in outs.iter_mut().zip(pts).enumerate() {
                let index = u32::try_from(j).map_err(|_| Error::arg("chunk index overflow"))?;
                dk.seal_item(index, pt, pick(contexts, c * CHUNK + j), key_id, out)?;
            }
            Ok(())
        })
}

/// Opens many envelopes on all cores: `outs[i]` receives the plaintext of
/// `sealed[i]`. If any item fails, every output is zeroed and the error
/// names the first failing index.
///
/// # Errors
/// [`BatchError`] for the first failing item, with the error of
/// [`open_into`](super::open_into); a wrong key or mismatched counts are
/// reported at index 0.
pub fn open_many(
    key: &[u8],
    sealed: &[&[u8]],
    contexts: &[Context],
    outs: &mut [&mut [u8]],
) -> core::result::Result<(), BatchError> {
    let whole = |e| BatchError::new(0, e);
    check_key(key).map_err(whole)?;
    check_batch(sealed.len(), contexts.len(), outs.len()).map_err(whole)?;
    let first_err = outs
        .par_chunks_mut(CHUNK)
        .zip(sealed.par_chunks(CHUNK))
        .enumerate()
        .filter_map(|(c, (outs, blobs))| {
            let mut cache = None;
            outs.iter_mut()
                .zip(blobs)
                .enumerate()
                .find_map(|(j, (out, s))| {
                    let i = c * CHUNK + j;
                    open_cached(key, s, pick(contexts, i), out, &mut cache)
                        .err()
                        .map(|e| BatchError::new(i, e))
                })
        })
        .min_by_key(|e| e.index);
    match first_err {
        None => Ok(()),
        Some(err) => {
            outs.par_iter_mut().for_each(|o| o.zeroize());
            Err(err)
        }
    }
}

/// The context of item `i` of a batch: the one context given for all, or the item's own.
pub fn pick(contexts: &[Context], i: usize) -> &Context {
    if contexts.len() == 1 {
        &contexts[0]
    } else {
        &contexts[i]
    }
}

fn check_batch(items: usize, contexts: usize, outs: usize) -> Result<()> {
    if contexts != 1 && contexts != items {
        return Err(Error::arg(format!(
            "got {contexts} contexts for {items} items: pass one context, or one per item"
        )));
    }
    if outs != items {
        return Err(Error::arg("one output buffer per item is required"));
    }
    Ok(())
}
