//! Authenticated encryption: AES-GCM (SP 800-38D), AES-GCM-SIV (RFC 8452),
//! ChaCha20-Poly1305 (RFC 8439) and XChaCha20-Poly1305.
//!
//! Every suite but AES-192-GCM-SIV runs on AWS-LC's `EVP_AEAD` (the
//! BoringSSL interface): interleaved AES-NI/VAES + (V)PCLMULQDQ assembly on
//! x86-64, AES+PMULL on ARMv8, chosen at run time. The `EVP_AEAD` calls are
//! out-of-place, so `*_into` APIs write straight into the caller's buffer
//! with no extra copy. AES-GCM accepts any non-empty nonce length
//! (SP 800-38D §7.1: nonces other than 96 bits go through GHASH).
//!
//! Output layout is the common one: `ciphertext || tag`, 16-byte tag.

use core::ptr;

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aws_lc_sys as lc;
use zeroize::Zeroize;

use crate::{Error, Result};

/// Length of every tag this module makes.
pub const TAG_LEN: usize = 16;

/// The AEAD algorithms offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// AES-GCM with a 128-, 192- or 256-bit key.
    AesGcm,
    /// AES-GCM-SIV (nonce-misuse resistant) with a 128-, 192- or 256-bit key.
    AesGcmSiv,
    /// ChaCha20-Poly1305 (RFC 8439), 256-bit key, 96-bit nonce.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305, 256-bit key, 192-bit nonce.
    XChaCha20Poly1305,
}

impl Algorithm {
    /// The name used in error messages (matches the Python class).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::AesGcm => "AESGCM",
            Algorithm::AesGcmSiv => "AESGCMSIV",
            Algorithm::ChaCha20Poly1305 => "ChaCha20Poly1305",
            Algorithm::XChaCha20Poly1305 => "XChaCha20Poly1305",
        }
    }

    /// Accepted key lengths in bytes.
    pub fn key_lens(self) -> &'static [usize] {
        match self {
            Algorithm::AesGcm | Algorithm::AesGcmSiv => &[16, 24, 32],
            Algorithm::ChaCha20Poly1305 | Algorithm::XChaCha20Poly1305 => &[32],
        }
    }

    /// Checks a nonce length, with the same bounds as `cryptography`'s classes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted lengths.
    pub fn check_nonce_len(self, len: usize) -> Result<()> {
        let ok = match self {
            Algorithm::AesGcm => (8..=128).contains(&len),
            Algorithm::AesGcmSiv | Algorithm::ChaCha20Poly1305 => len == 12,
            Algorithm::XChaCha20Poly1305 => len == 24,
        };
        if ok {
            return Ok(());
        }
        Err(Error::arg(match self {
            Algorithm::AesGcm => "Nonce must be between 8 and 128 bytes",
            Algorithm::XChaCha20Poly1305 => "Nonce must be 24 bytes",
            _ => "Nonce must be 12 bytes",
        }))
    }

    fn key_error(self) -> Error {
        Error::arg(match self {
            Algorithm::AesGcm => "AESGCM key must be 128, 192, or 256 bits.",
            Algorithm::AesGcmSiv => "AES-GCM-SIV key must be 128, 192 or 256 bits.",
            Algorithm::ChaCha20Poly1305 => "ChaCha20Poly1305 key must be 32 bytes.",
            Algorithm::XChaCha20Poly1305 => "XChaCha20Poly1305 key must be 32 bytes.",
        })
    }

    fn evp(self, key_len: usize) -> Option<*const lc::EVP_AEAD> {
        // SAFETY: the EVP_aead_* functions return pointers to static tables.
        unsafe {
            Some(match (self, key_len) {
                (Algorithm::AesGcm, 16) => lc::EVP_aead_aes_128_gcm(),
                (Algorithm::AesGcm, 24) => lc::EVP_aead_aes_192_gcm(),
                (Algorithm::AesGcm, 32) => lc::EVP_aead_aes_256_gcm(),
                (Algorithm::AesGcmSiv, 16) => lc::EVP_aead_aes_128_gcm_siv(),
                (Algorithm::AesGcmSiv, 32) => lc::EVP_aead_aes_256_gcm_siv(),
                (Algorithm::ChaCha20Poly1305, 32) => lc::EVP_aead_chacha20_poly1305(),
                (Algorithm::XChaCha20Poly1305, 32) => lc::EVP_aead_xchacha20_poly1305(),
                _ => return None,
            })
        }
    }
}

/// An AWS-LC `EVP_AEAD_CTX` holding an expanded key.
///
/// Heap-allocated by AWS-LC (its state is alignment-sensitive and must not
/// move) and freed, key schedule cleansed, on drop.
struct EvpCtx(ptr::NonNull<lc::EVP_AEAD_CTX>);

// SAFETY: after EVP_AEAD_CTX_new the context is only read by seal/open, which
// AWS-LC documents as safe to call concurrently on one context.
unsafe impl Send for EvpCtx {}
// SAFETY: as above; no method takes the context mutably.
unsafe impl Sync for EvpCtx {}

impl Drop for EvpCtx {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_AEAD_CTX_new and is freed once;
        // EVP_AEAD_CTX_free cleanses the key schedule.
        unsafe { lc::EVP_AEAD_CTX_free(self.0.as_ptr()) }
    }
}

enum Engine {
    Evp(EvpCtx),
    /// AES-192-GCM-SIV, which AWS-LC does not offer.
    Siv192(Box<aes_gcm_siv::AesGcmSiv<aes::Aes192>>),
}

/// A keyed AEAD, ready for any number of encryptions and decryptions, from
/// any number of threads at once.
pub struct Aead {
    alg: Algorithm,
    engine: Engine,
}

impl core::fmt::Debug for Aead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material, not even derived state.
        f.debug_struct("Aead")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Aead {
    /// Expands `key` for `alg`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key length does not fit `alg`.
    pub fn new(alg: Algorithm, key: &[u8]) -> Result<Self> {
        if !alg.key_lens().contains(&key.len()) {
            return Err(alg.key_error());
        }
        let engine = match alg.evp(key.len()) {
            Some(evp) => {
                // SAFETY: `evp` is a static table; `key` is valid for
                // `key.len()` bytes; the default tag length is 16.
                let raw = unsafe { lc::EVP_AEAD_CTX_new(evp, key.as_ptr(), key.len(), TAG_LEN) };
                let ctx = ptr::NonNull::new(raw).ok_or_else(|| {
                    clear_errors();
                    Error::arg("the AEAD could not be keyed")
                })?;
                Engine::Evp(EvpCtx(ctx))
            }
            None => Engine::Siv192(Box::new(
                aes_gcm_siv::AesGcmSiv::new_from_slice(key).map_err(|_| alg.key_error())?,
            )),
        };
        Ok(Aead { alg, engine })
    }

    /// The algorithm this key is for.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Encrypts `plaintext` into `out`, which must be exactly
    /// `plaintext.len() + TAG_LEN` bytes: `ciphertext || tag`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong nonce or output length.
    pub fn seal_into(
        &self,
        nonce: &[u8],
        plaintext: &[u8],
        aad: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.alg.check_nonce_len(nonce.len())?;
        if out.len() != plaintext.len() + TAG_LEN {
            return Err(Error::arg(format!(
                "buffer must be {} bytes",
                plaintext.len() + TAG_LEN
            )));
        }
        match &self.engine {
            Engine::Evp(ctx) => {
                let mut written = 0usize;
                // SAFETY: all pointers are valid for the lengths passed; `out`
                // has room for `max_out_len` bytes; inputs may not alias `out`
                // (Rust borrow rules guarantee it).
                let ok = unsafe {
                    lc::EVP_AEAD_CTX_seal(
                        ctx.0.as_ptr(),
                        out.as_mut_ptr(),
                        &mut written,
                        out.len(),
                        nonce.as_ptr(),
                        nonce.len(),
                        plaintext.as_ptr(),
                        plaintext.len(),
                        aad.as_ptr(),
                        aad.len(),
                    )
                };
                if ok != 1 || written != out.len() {
                    clear_errors();
                    out.zeroize();
                    return Err(Error::arg("input too long for this AEAD"));
                }
            }
            Engine::Siv192(siv) => {
                let (body, tag) = out.split_at_mut(plaintext.len());
                body.copy_from_slice(plaintext);
                let t = siv
                    .encrypt_in_place_detached(nonce.into(), aad, body)
                    .map_err(|_| Error::arg("input too long for this AEAD"))?;
                tag.copy_from_slice(&t);
            }
        }
        Ok(())
    }

    /// Encrypts into a new vector: `ciphertext || tag`.
    ///
    /// # Errors
    /// As [`Aead::seal_into`].
    pub fn seal(&self, nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        self.seal_into(nonce, plaintext, aad, &mut out)?;
        Ok(out)
    }

    /// The plaintext length of a `ciphertext || tag` input, or `InvalidTag`
    /// when it is shorter than a tag (as `cryptography` does).
    ///
    /// # Errors
    /// [`Error::InvalidTag`] for inputs shorter than [`TAG_LEN`].
    pub fn plaintext_len(sealed_len: usize) -> Result<usize> {
        sealed_len.checked_sub(TAG_LEN).ok_or(Error::InvalidTag)
    }

    /// Decrypts and authenticates `sealed` (`ciphertext || tag`) into `out`,
    /// which must be exactly `sealed.len() - TAG_LEN` bytes.
    ///
    /// On failure `out` is zeroed: no unauthenticated plaintext survives.
    ///
    /// # Errors
    /// [`Error::InvalidTag`] if authentication fails; [`Error::InvalidArgument`]
    /// for a wrong nonce or output length.
    pub fn open_into(&self, nonce: &[u8], sealed: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        self.alg.check_nonce_len(nonce.len())?;
        let pt_len = Self::plaintext_len(sealed.len())?;
        if out.len() != pt_len {
            return Err(Error::arg(format!("buffer must be {pt_len} bytes")));
        }
        let ok = match &self.engine {
            Engine::Evp(ctx) => {
                let mut written = 0usize;
                // SAFETY: pointers valid for the lengths passed; `out` holds
                // `pt_len` bytes, which is all AWS-LC writes.
                let rc = unsafe {
                    lc::EVP_AEAD_CTX_open(
                        ctx.0.as_ptr(),
                        out.as_mut_ptr(),
                        &mut written,
                        out.len(),
                        nonce.as_ptr(),
                        nonce.len(),
                        sealed.as_ptr(),
                        sealed.len(),
                        aad.as_ptr(),
                        aad.len(),
                    )
                };
                rc == 1 && written == pt_len
            }
            Engine::Siv192(siv) => {
                let (body, tag) = sealed.split_at(pt_len);
                out.copy_from_slice(body);
                siv.decrypt_in_place_detached(nonce.into(), aad, out, tag.into())
                    .is_ok()
            }
        };
        if !ok {
            clear_errors();
            // AWS-LC may leave unauthenticated plaintext in `out`.
            out.zeroize();
            return Err(Error::InvalidTag);
        }
        Ok(())
    }

    /// Decrypts into a new vector.
    ///
    /// # Errors
    /// As [`Aead::open_into`].
    pub fn open(&self, nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        // A wrong nonce length is the caller's mistake whatever the input:
        // report it before a too-short input's InvalidTag, as open_into does.
        self.alg.check_nonce_len(nonce.len())?;
        let mut out = vec![0u8; Self::plaintext_len(sealed.len())?];
        self.open_into(nonce, sealed, aad, &mut out)?;
        Ok(out)
    }
}

/// Drops AWS-LC's thread-local error queue after a failed call, so failures
/// do not pile up in long-lived threads.
fn clear_errors() {
    // SAFETY: no arguments; touches only the calling thread's error queue.
    unsafe { lc::ERR_clear_error() }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SP 800-38D test case 16 (AES-256, 96-bit IV, with AAD), from the GCM spec.
    #[test]
    fn gcm_spec_vector() {
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let pt = hex::decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39").unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let ct = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
        let tag = "76fc6ece0f4e1768cddf8853bb2d551b";
        let a = Aead::new(Algorithm::AesGcm, &key).unwrap();
        let sealed = a.seal(&iv, &pt, &aad).unwrap();
        assert_eq!(hex::encode(&sealed), format!("{ct}{tag}"));
        assert_eq!(a.open(&iv, &sealed, &aad).unwrap(), pt);
    }

    #[test]
    fn failed_open_zeroes_output() {
        let a = Aead::new(Algorithm::AesGcm, &[7u8; 32]).unwrap();
        let mut sealed = a.seal(&[1u8; 12], b"secret share bytes", b"").unwrap();
        sealed[0] ^= 1;
        let mut out = vec![0xAAu8; sealed.len() - TAG_LEN];
        assert_eq!(
            a.open_into(&[1u8; 12], &sealed, b"", &mut out),
            Err(Error::InvalidTag)
        );
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(Aead::new(Algorithm::AesGcm, &[0u8; 20]).is_err());
        assert!(Aead::new(Algorithm::ChaCha20Poly1305, &[0u8; 16]).is_err());
        let a = Aead::new(Algorithm::ChaCha20Poly1305, &[0u8; 32]).unwrap();
        assert!(a.seal(&[0u8; 8], b"x", b"").is_err());
        assert_eq!(a.open(&[0u8; 12], &[0u8; 15], b""), Err(Error::InvalidTag));
    }
}
