//! Authenticated encryption: AES-GCM (SP 800-38D), AES-GCM-SIV (RFC 8452),
//! ChaCha20-Poly1305 (RFC 8439), XChaCha20-Poly1305, AES-CCM (RFC 3610),
//! AES-OCB3 (RFC 7253) through [`Aead`], and AES-SIV (RFC 5297), whose
//! associated data is a list of items, through [`AesSiv`].
//!
//! AES-GCM, AES-GCM-SIV (128/256-bit keys) and the ChaCha suites run on
//! AWS-LC's `EVP_AEAD` (the BoringSSL interface): interleaved AES-NI/VAES +
//! (V)PCLMULQDQ assembly on x86-64, AES+PMULL on ARMv8, chosen at run time.
//! The `EVP_AEAD` calls are out-of-place, so `*_into` APIs write straight
//! into the caller's buffer with no extra copy. AES-GCM accepts any
//! non-empty nonce length (SP 800-38D §7.1: nonces other than 96 bits go
//! through GHASH).
//!
//! AES-192-GCM-SIV, AES-CCM, AES-OCB3 and AES-SIV run on RustCrypto's
//! crates over the `aes` crate (AES-NI when the CPU has it): AWS-LC has no
//! 192-bit GCM-SIV, CCM only for AES-128 with a few fixed sizes, and no OCB
//! or SIV. They copy the input into the output buffer and work in place.
//!
//! Output layout is `ciphertext || tag` with a 16-byte tag, except AES-CCM,
//! whose tag length (4 to 16 bytes, even) is chosen with the key, and
//! AES-SIV, whose output is `SIV || ciphertext`.

mod aes_ccm;
mod any_aes;
mod ocb;
mod siv;

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use zeroize::Zeroize;

use crate::awslc::{EvpAead, EvpAlgorithm};
use crate::{Error, Result};

pub use siv::{AesSiv, MAX_AD_ITEMS as SIV_MAX_AD_ITEMS, SIV_LEN};

/// Length of every tag this module makes, except AES-CCM's shorter ones.
pub const TAG_LEN: usize = 16;

/// The AEAD algorithms offered through [`Aead`].
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
    /// AES-CCM with a 128-, 192- or 256-bit key, a 7- to 13-byte nonce and a
    /// 4- to 16-byte tag (even), chosen with [`Aead::with_tag_len`].
    AesCcm,
    /// AES-OCB3 with a 128-, 192- or 256-bit key and a 12- to 15-byte nonce.
    AesOcb3,
}

impl Algorithm {
    /// The name used in error messages (matches the Python class).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::AesGcm => "AESGCM",
            Algorithm::AesGcmSiv => "AESGCMSIV",
            Algorithm::ChaCha20Poly1305 => "ChaCha20Poly1305",
            Algorithm::XChaCha20Poly1305 => "XChaCha20Poly1305",
            Algorithm::AesCcm => "AESCCM",
            Algorithm::AesOcb3 => "AESOCB3",
        }
    }

    /// Accepted key lengths in bytes.
    pub fn key_lens(self) -> &'static [usize] {
        match self {
            Algorithm::AesGcm | Algorithm::AesGcmSiv | Algorithm::AesCcm | Algorithm::AesOcb3 => {
                &[16, 24, 32]
            }
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
            Algorithm::AesCcm => (7..=13).contains(&len),
            Algorithm::AesOcb3 => (12..=15).contains(&len),
        };
        if ok {
            return Ok(());
        }
        Err(Error::arg(match self {
            Algorithm::AesGcm => "Nonce must be between 8 and 128 bytes",
            Algorithm::XChaCha20Poly1305 => "Nonce must be 24 bytes",
            Algorithm::AesCcm => "Nonce must be between 7 and 13 bytes",
            Algorithm::AesOcb3 => "Nonce must be between 12 and 15 bytes",
            Algorithm::AesGcmSiv | Algorithm::ChaCha20Poly1305 => "Nonce must be 12 bytes",
        }))
    }

    /// Checks a tag length: 4 to 16 bytes and even for AES-CCM (RFC 3610
    /// §2), 16 bytes for the others.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (`cryptography`'s wording) for any other length.
    pub fn check_tag_len(self, len: usize) -> Result<()> {
        let ok = match self {
            Algorithm::AesCcm => (4..=16).contains(&len) && len % 2 == 0,
            _ => len == TAG_LEN,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::arg("Invalid tag_length"))
        }
    }

    fn key_error(self) -> Error {
        Error::arg(match self {
            Algorithm::AesGcm => "AESGCM key must be 128, 192, or 256 bits.",
            Algorithm::AesGcmSiv => "AES-GCM-SIV key must be 128, 192 or 256 bits.",
            Algorithm::ChaCha20Poly1305 => "ChaCha20Poly1305 key must be 32 bytes.",
            Algorithm::XChaCha20Poly1305 => "XChaCha20Poly1305 key must be 32 bytes.",
            Algorithm::AesCcm => "AESCCM key must be 128, 192, or 256 bits.",
            Algorithm::AesOcb3 => "AESOCB3 key must be 128, 192, or 256 bits.",
        })
    }

    /// The AWS-LC table for this algorithm and key length, when it has one.
    fn evp(self, key_len: usize) -> Option<EvpAlgorithm> {
        Some(match (self, key_len) {
            (Algorithm::AesGcm, 16) => EvpAlgorithm::Aes128Gcm,
            (Algorithm::AesGcm, 24) => EvpAlgorithm::Aes192Gcm,
            (Algorithm::AesGcm, 32) => EvpAlgorithm::Aes256Gcm,
            (Algorithm::AesGcmSiv, 16) => EvpAlgorithm::Aes128GcmSiv,
            (Algorithm::AesGcmSiv, 32) => EvpAlgorithm::Aes256GcmSiv,
            (Algorithm::ChaCha20Poly1305, 32) => EvpAlgorithm::ChaCha20Poly1305,
            (Algorithm::XChaCha20Poly1305, 32) => EvpAlgorithm::XChaCha20Poly1305,
            _ => return None,
        })
    }
}

enum Engine {
    Evp(EvpAead),
    /// AES-192-GCM-SIV, which AWS-LC does not offer.
    Siv192(Box<aes_gcm_siv::AesGcmSiv<aes::Aes192>>),
    Ccm(Box<any_aes::AnyAes>),
    Ocb3(Box<ocb::OcbKeys>),
}

/// A keyed AEAD, ready for any number of encryptions and decryptions, from
/// any number of threads at once.
pub struct Aead {
    alg: Algorithm,
    tag_len: usize,
    engine: Engine,
}

impl core::fmt::Debug for Aead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material, not even derived state.
        f.debug_struct("Aead")
            .field("alg", &self.alg)
            .field("tag_len", &self.tag_len)
            .finish_non_exhaustive()
    }
}

impl Aead {
    /// Expands `key` for `alg`, with 16-byte tags.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key length does not fit `alg`.
    pub fn new(alg: Algorithm, key: &[u8]) -> Result<Self> {
        Self::with_tag_len(alg, key, TAG_LEN)
    }

    /// Expands `key` for `alg` with `tag_len`-byte tags (only AES-CCM offers
    /// lengths other than 16).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key or tag length does not fit `alg`.
    pub fn with_tag_len(alg: Algorithm, key: &[u8], tag_len: usize) -> Result<Self> {
        if !alg.key_lens().contains(&key.len()) {
            return Err(alg.key_error());
        }
        alg.check_tag_len(tag_len)?;
        let engine = match (alg, alg.evp(key.len())) {
            (_, Some(evp)) => Engine::Evp(
                EvpAead::new(evp, key, tag_len)
                    .ok_or_else(|| Error::arg("the AEAD could not be keyed"))?,
            ),
            (Algorithm::AesGcmSiv, None) => Engine::Siv192(Box::new(
                aes_gcm_siv::AesGcmSiv::new_from_slice(key).map_err(|_| alg.key_error())?,
            )),
            (Algorithm::AesCcm, None) => Engine::Ccm(Box::new(
                any_aes::AnyAes::new(key).ok_or_else(|| alg.key_error())?,
            )),
            (Algorithm::AesOcb3, None) => {
                let aes = any_aes::AnyAes::new(key).ok_or_else(|| alg.key_error())?;
                Engine::Ocb3(Box::new(ocb::OcbKeys::new(&aes)))
            }
            _ => return Err(alg.key_error()),
        };
        Ok(Aead {
            alg,
            tag_len,
            engine,
        })
    }

    /// The algorithm this key is for.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The length of this key's tags in bytes.
    pub fn tag_len(&self) -> usize {
        self.tag_len
    }

    /// The plaintext length of a `ciphertext || tag` input, or `InvalidTag`
    /// when it is shorter than a tag (as `cryptography` does).
    ///
    /// # Errors
    /// [`Error::InvalidTag`] for inputs shorter than [`Aead::tag_len`].
    pub fn plaintext_len(&self, sealed_len: usize) -> Result<usize> {
        sealed_len
            .checked_sub(self.tag_len)
            .ok_or(Error::InvalidTag)
    }

    /// Whether a `len`-byte message fits the length field of AES-CCM with
    /// this nonce length (always true for the other algorithms).
    fn fits(&self, nonce_len: usize, len: usize) -> bool {
        match self.alg {
            Algorithm::AesCcm => u64::try_from(len).is_ok_and(|n| n <= aes_ccm::max_len(nonce_len)),
            _ => true,
        }
    }

    /// Encrypts `plaintext` into `out`, which must be exactly
    /// `plaintext.len() + tag_len` bytes: `ciphertext || tag`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong nonce or output length, or a
    /// message too long for the algorithm (for AES-CCM, for the nonce length).
    pub fn seal_into(
        &self,
        nonce: &[u8],
        plaintext: &[u8],
        aad: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.alg.check_nonce_len(nonce.len())?;
        let want = plaintext.len() + self.tag_len;
        if out.len() != want {
            return Err(Error::arg(format!("buffer must be {want} bytes")));
        }
        if !self.fits(nonce.len(), plaintext.len()) {
            return Err(Error::arg("Data too long for nonce"));
        }
        let ok = match &self.engine {
            Engine::Evp(ctx) => ctx.seal(nonce, plaintext, aad, out),
            Engine::Siv192(siv) => {
                let (body, tag) = out.split_at_mut(plaintext.len());
                body.copy_from_slice(plaintext);
                match siv.encrypt_in_place_detached(nonce.into(), aad, body) {
                    Ok(t) => {
                        tag.copy_from_slice(&t);
                        true
                    }
                    Err(_) => false,
                }
            }
            Engine::Ccm(aes) => {
                let (body, tag) = out.split_at_mut(plaintext.len());
                body.copy_from_slice(plaintext);
                aes_ccm::seal(aes, nonce, aad, body, tag)
            }
            Engine::Ocb3(keys) => {
                let (body, tag) = out.split_at_mut(plaintext.len());
                body.copy_from_slice(plaintext);
                keys.seal(nonce, aad, body, tag)
            }
        };
        if !ok {
            out.zeroize();
            return Err(Error::arg("input too long for this AEAD"));
        }
        Ok(())
    }

    /// Encrypts into a new vector: `ciphertext || tag`.
    ///
    /// # Errors
    /// As [`Aead::seal_into`].
    pub fn seal(&self, nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; plaintext.len() + self.tag_len];
        self.seal_into(nonce, plaintext, aad, &mut out)?;
        Ok(out)
    }

    /// Decrypts and authenticates `sealed` (`ciphertext || tag`) into `out`,
    /// which must be exactly `sealed.len() - tag_len` bytes.
    ///
    /// On failure `out` is zeroed: no unauthenticated plaintext survives.
    ///
    /// # Errors
    /// [`Error::InvalidTag`] if authentication fails (or, for AES-CCM, the
    /// input is too long for the nonce, as `cryptography` reports it);
    /// [`Error::InvalidArgument`] for a wrong nonce or output length.
    pub fn open_into(&self, nonce: &[u8], sealed: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        self.alg.check_nonce_len(nonce.len())?;
        let pt_len = self.plaintext_len(sealed.len())?;
        if out.len() != pt_len {
            return Err(Error::arg(format!("buffer must be {pt_len} bytes")));
        }
        let (body, tag) = sealed.split_at(pt_len);
        let ok = self.fits(nonce.len(), pt_len)
            && match &self.engine {
                Engine::Evp(ctx) => ctx.open(nonce, sealed, aad, out),
                Engine::Siv192(siv) => {
                    out.copy_from_slice(body);
                    siv.decrypt_in_place_detached(nonce.into(), aad, out, tag.into())
                        .is_ok()
                }
                Engine::Ccm(aes) => {
                    out.copy_from_slice(body);
                    aes_ccm::open(aes, nonce, aad, out, tag)
                }
                Engine::Ocb3(keys) => {
                    out.copy_from_slice(body);
                    keys.open(nonce, aad, out, tag)
                }
            };
        if !ok {
            // Every engine may leave unauthenticated plaintext in `out`.
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
        let mut out = vec![0u8; self.plaintext_len(sealed.len())?];
        self.open_into(nonce, sealed, aad, &mut out)?;
        Ok(out)
    }
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
        assert!(Aead::with_tag_len(Algorithm::AesGcm, &[0u8; 16], 12).is_err());
        for bad in [0, 2, 3, 5, 15, 17, 18] {
            assert!(Aead::with_tag_len(Algorithm::AesCcm, &[0u8; 16], bad).is_err());
        }
    }

    /// AES-CCM refuses a message its length field cannot count on sealing
    /// (`cryptography`'s ValueError) and reports it as a failed tag on opening.
    #[test]
    fn ccm_length_limit() {
        let a = Aead::with_tag_len(Algorithm::AesCcm, &[3u8; 16], 8).unwrap();
        let nonce = [1u8; 13];
        let max = vec![0u8; 0xffff];
        let sealed = a.seal(&nonce, &max, b"").unwrap();
        assert_eq!(a.open(&nonce, &sealed, b"").unwrap(), max);
        let over = vec![0u8; 0x1_0000];
        assert!(matches!(
            a.seal(&nonce, &over, b""),
            Err(Error::InvalidArgument(m)) if m == "Data too long for nonce"
        ));
        assert_eq!(
            a.open(&nonce, &vec![0u8; 0x1_0008], b""),
            Err(Error::InvalidTag)
        );
        assert!(a.seal(&nonce[..12], &over, b"").is_ok());
    }

    /// Every engine zeroes the output of a failed open.
    #[test]
    fn every_engine_zeroes_a_failed_open() {
        let cases = [
            (Algorithm::AesGcmSiv, 24, 12),
            (Algorithm::AesCcm, 16, 13),
            (Algorithm::AesCcm, 32, 7),
            (Algorithm::AesOcb3, 24, 15),
        ];
        for (alg, key_len, nonce_len) in cases {
            let a = Aead::new(alg, &vec![5u8; key_len]).unwrap();
            let nonce = vec![9u8; nonce_len];
            let mut sealed = a.seal(&nonce, &[0x77u8; 40], b"ad").unwrap();
            sealed[3] ^= 1;
            let mut out = vec![0xAAu8; 40];
            assert_eq!(
                a.open_into(&nonce, &sealed, b"ad", &mut out),
                Err(Error::InvalidTag),
                "{alg:?}"
            );
            assert!(out.iter().all(|&b| b == 0), "{alg:?}");
        }
    }
}
