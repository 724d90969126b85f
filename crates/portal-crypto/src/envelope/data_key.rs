//! Suite 1's data keys: derivation from the caller's key and a salt, and the
//! sealing and opening of one item under a data key.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::aead::{Aead, Algorithm, TAG_LEN};
use crate::{kdf, Error, Result};

use super::format::{header_len, write_header, Context, Header};
use super::{COMMIT_LEN, INFO, KEY_LEN, SALT_LEN};

/// Checks the length of an envelope key.
///
/// # Errors
/// [`Error::InvalidArgument`] unless it is [`KEY_LEN`] bytes.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.len() != KEY_LEN {
        return Err(Error::arg("envelope key must be 32 bytes"));
    }
    Ok(())
}

/// A data key ready for use: the AES-256-GCM key and the commitment derived
/// from the caller's key and one salt (suite 1).
pub(super) struct DataKey {
    pub(super) salt: [u8; SALT_LEN],
    aead: Aead,
    commit: Zeroizing<[u8; COMMIT_LEN]>,
}

impl DataKey {
    /// The data key and commitment of `key` under `salt`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a salt that is not [`SALT_LEN`] bytes.
    pub(super) fn derive(key: &[u8], salt: &[u8]) -> Result<Self> {
        let salt: [u8; SALT_LEN] = salt
            .try_into()
            .map_err(|_| Error::arg("envelope salt must be 32 bytes"))?;
        let mut okm = Zeroizing::new([0u8; KEY_LEN + COMMIT_LEN]);
        kdf::hkdf_sha256(key, &salt, INFO, okm.as_mut_slice())?;
        let (data_key, commitment) = okm.split_at(KEY_LEN);
        let aead = Aead::new(Algorithm::AesGcm, data_key)?;
        let mut commit = Zeroizing::new([0u8; COMMIT_LEN]);
        commit.copy_from_slice(commitment);
        Ok(DataKey { salt, aead, commit })
    }

    /// Draws a fresh salt with `make_salt` and derives its data key.
    ///
    /// # Errors
    /// What `make_salt` returns, or as [`DataKey::derive`].
    pub(super) fn fresh(
        key: &[u8],
        make_salt: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        make_salt(&mut salt)?;
        Self::derive(key, &salt)
    }

    /// The GCM nonce of item `index`: unique per item under one data key.
    fn nonce(index: u32) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&index.to_be_bytes());
        n
    }

    /// Writes the envelope of item `index` into `out` (exactly `sealed_len`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong output length or key id.
    pub(super) fn seal_item(
        &self,
        index: u32,
        plaintext: &[u8],
        context: &Context,
        key_id: &str,
        out: &mut [u8],
    ) -> Result<()> {
        let head = header_len(key_id, context);
        let want = head + plaintext.len() + TAG_LEN;
        if out.len() != want {
            return Err(Error::arg(format!(
                "output must be {want} bytes (the envelope length), not {}",
                out.len()
            )));
        }
        let (header, body) = out.split_at_mut(head);
        write_header(header, key_id, context, &self.salt, &self.commit, index)?;
        self.aead
            .seal_into(&Self::nonce(index), plaintext, header, body)
    }

    /// Opens a parsed envelope whose salt is this key's.
    ///
    /// # Errors
    /// [`Error::InvalidTag`] for a commitment or tag that does not verify.
    pub(super) fn open_item(&self, h: &Header<'_>, out: &mut [u8]) -> Result<()> {
        if !bool::from(self.commit.as_slice().ct_eq(h.commitment)) {
            return Err(Error::InvalidTag);
        }
        self.aead
            .open_into(&Self::nonce(h.index), h.body, h.header, out)
    }
}
