//! Every call into AWS-LC (through `aws-lc-sys`), behind safe functions.
//!
//! This is one of the few modules allowed `unsafe` code (see `lib.rs`): a C
//! library cannot be called without it. Each function here checks or
//! guarantees what AWS-LC needs (valid pointers with their lengths, contexts
//! that live as long as they are used, freed once) so that the rest of the
//! crate calls AWS-LC without `unsafe` of its own.

use core::ptr::NonNull;

use aws_lc_sys as lc;

/// The `EVP_AEAD` tables of AWS-LC that the crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EvpAlgorithm {
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
    Aes128GcmSiv,
    Aes256GcmSiv,
    ChaCha20Poly1305,
    XChaCha20Poly1305,
}

impl EvpAlgorithm {
    fn table(self) -> *const lc::EVP_AEAD {
        // SAFETY: the EVP_aead_* functions take no arguments and return
        // pointers to static, immutable tables that live for the whole program.
        unsafe {
            match self {
                EvpAlgorithm::Aes128Gcm => lc::EVP_aead_aes_128_gcm(),
                EvpAlgorithm::Aes192Gcm => lc::EVP_aead_aes_192_gcm(),
                EvpAlgorithm::Aes256Gcm => lc::EVP_aead_aes_256_gcm(),
                EvpAlgorithm::Aes128GcmSiv => lc::EVP_aead_aes_128_gcm_siv(),
                EvpAlgorithm::Aes256GcmSiv => lc::EVP_aead_aes_256_gcm_siv(),
                EvpAlgorithm::ChaCha20Poly1305 => lc::EVP_aead_chacha20_poly1305(),
                EvpAlgorithm::XChaCha20Poly1305 => lc::EVP_aead_xchacha20_poly1305(),
            }
        }
    }
}

/// An AWS-LC `EVP_AEAD_CTX` holding an expanded key.
///
/// Heap-allocated by AWS-LC (its state is alignment-sensitive and must not
/// move) and freed, key schedule cleansed, on drop.
pub(crate) struct EvpAead(NonNull<lc::EVP_AEAD_CTX>);

// SAFETY: after EVP_AEAD_CTX_new the context is only read by seal and open,
// which AWS-LC documents as safe to call concurrently on one context; the
// pointer is owned by this value alone, so moving it to another thread is fine.
unsafe impl Send for EvpAead {}
// SAFETY: as above; no method takes the context mutably.
unsafe impl Sync for EvpAead {}

impl Drop for EvpAead {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_AEAD_CTX_new, is owned by this
        // value only and is freed here once; EVP_AEAD_CTX_free cleanses the
        // key schedule before freeing.
        unsafe { lc::EVP_AEAD_CTX_free(self.0.as_ptr()) }
    }
}

impl EvpAead {
    /// Expands `key` for `alg` with `tag_len`-byte tags; `None` when AWS-LC
    /// refuses (a key length the table does not take).
    pub(crate) fn new(alg: EvpAlgorithm, key: &[u8], tag_len: usize) -> Option<Self> {
        // SAFETY: the table is static (see `table`); `key` is valid for reads
        // of `key.len()` bytes and AWS-LC copies what it needs before returning.
        let raw = unsafe { lc::EVP_AEAD_CTX_new(alg.table(), key.as_ptr(), key.len(), tag_len) };
        let ctx = NonNull::new(raw).map(EvpAead);
        if ctx.is_none() {
            clear_errors();
        }
        ctx
    }

    /// Seals `plaintext` into `out` (`ciphertext || tag`). True when AWS-LC
    /// wrote exactly `out.len()` bytes.
    pub(crate) fn seal(&self, nonce: &[u8], plaintext: &[u8], aad: &[u8], out: &mut [u8]) -> bool {
        let mut written = 0usize;
        // SAFETY: the context is live (owned by `self`); every pointer is
        // valid for the length passed with it, `out` for writes of
        // `out.len()` bytes, which is the most AWS-LC writes. The inputs are
        // shared borrows and `out` a unique one, so they do not overlap.
        let rc = unsafe {
            lc::EVP_AEAD_CTX_seal(
                self.0.as_ptr(),
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
        let ok = rc == 1 && written == out.len();
        if !ok {
            clear_errors();
        }
        ok
    }

    /// Opens `sealed` (`ciphertext || tag`) into `out`. True when the tag
    /// verified and AWS-LC wrote exactly `out.len()` bytes; on false, `out`
    /// may hold unauthenticated bytes the caller must wipe.
    pub(crate) fn open(&self, nonce: &[u8], sealed: &[u8], aad: &[u8], out: &mut [u8]) -> bool {
        let mut written = 0usize;
        // SAFETY: the context is live; every pointer is valid for the length
        // passed with it, `out` for writes of `out.len()` bytes (AWS-LC writes
        // at most that, the plaintext length). Inputs and `out` do not overlap
        // (shared versus unique borrows).
        let rc = unsafe {
            lc::EVP_AEAD_CTX_open(
                self.0.as_ptr(),
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
        let ok = rc == 1 && written == out.len();
        if !ok {
            clear_errors();
        }
        ok
    }
}

/// Fills `buf` from AWS-LC's `RAND_bytes`. False if the generator failed.
pub(crate) fn rand_bytes(buf: &mut [u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, all that
    // RAND_bytes writes.
    let ok = unsafe { lc::RAND_bytes(buf.as_mut_ptr(), buf.len()) } == 1;
    if !ok {
        clear_errors();
    }
    ok
}

/// Drops AWS-LC's thread-local error queue after a failed call, so failures
/// do not pile up in long-lived threads.
fn clear_errors() {
    // SAFETY: takes no arguments and touches only the calling thread's queue.
    unsafe { lc::ERR_clear_error() }
}

/// AWS-LC's own HKDF-SHA256 and PBKDF2-HMAC-SHA256: the peers the KDF tests
/// compare the crate's implementations with.
#[cfg(test)]
pub(crate) mod peers {
    use super::lc;

    /// HKDF-SHA256 into `out`; false if AWS-LC refused.
    pub(crate) fn hkdf_sha256(out: &mut [u8], ikm: &[u8], salt: &[u8], info: &[u8]) -> bool {
        // SAFETY: every pointer is valid for the length passed with it, `out`
        // for writes; EVP_sha256 returns a static table.
        unsafe {
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
            ) == 1
        }
    }

    /// PBKDF2-HMAC-SHA256 into `out`; false if AWS-LC refused.
    pub(crate) fn pbkdf2_hmac_sha256(out: &mut [u8], pw: &[u8], salt: &[u8], c: u32) -> bool {
        // SAFETY: every pointer is valid for the length passed with it, `out`
        // for writes; EVP_sha256 returns a static table.
        unsafe {
            lc::PKCS5_PBKDF2_HMAC(
                pw.as_ptr().cast(),
                pw.len(),
                salt.as_ptr(),
                salt.len(),
                c,
                lc::EVP_sha256(),
                out.len(),
                out.as_mut_ptr(),
            ) == 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_key_and_failed_open_report_false() {
        assert!(EvpAead::new(EvpAlgorithm::Aes128Gcm, &[0u8; 20], 16).is_none());
        let Some(ctx) = EvpAead::new(EvpAlgorithm::Aes128Gcm, &[1u8; 16], 16) else {
            panic!("a 16-byte key is an AES-128 key");
        };
        let mut out = [0u8; 4];
        assert!(!ctx.open(&[0u8; 12], &[0u8; 20], b"", &mut out));
        let mut sealed = [0u8; 20];
        assert!(ctx.seal(&[0u8; 12], b"abcd", b"", &mut sealed));
        assert!(ctx.open(&[0u8; 12], &sealed, b"", &mut out));
        assert_eq!(&out, b"abcd");
    }
}
