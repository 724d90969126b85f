//! PBKDF2-HMAC-SHA256 (RFC 8018 §5.2).
//!
//! The work is `iterations` chained HMACs of a 32-byte message. With the
//! password's HMAC states absorbed once, each is exactly two SHA-256
//! compressions (inner and outer), and the chain is strictly sequential, so
//! its speed is the latency of those compressions: on x86-64 with SHA-NI the
//! whole chain stays in registers (`sha_ni`). Output blocks are
//! independent and run on threads when more than one is asked for.

use rayon::prelude::*;
use sha2::block_api::compress256;
use zeroize::Zeroizing;

use super::hmac::{digest_block, load_be, store_be, HmacKey};
use super::SHA256_LEN;
use crate::{Error, Result};

/// RFC 8018 §5.2 step 1: at most `(2^32 - 1) * hLen` bytes of output.
const MAX_LEN: u64 = u32::MAX as u64 * SHA256_LEN as u64;

/// PBKDF2-HMAC-SHA256 into `out` (RFC 8018 §5.2).
///
/// # Errors
/// [`Error::InvalidArgument`] for zero iterations, an empty output or one
/// longer than RFC 8018 allows.
pub fn pbkdf2_hmac_sha256(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) -> Result<()> {
    if iterations == 0 {
        return Err(Error::arg("iterations must be at least 1"));
    }
    if out.is_empty() || out.len() as u64 > MAX_LEN {
        return Err(Error::arg(format!(
            "length must be between 1 and {MAX_LEN}"
        )));
    }
    let key = HmacKey::new(password);
    let block = |(i, chunk): (usize, &mut [u8])| {
        // Block indices start at 1 and fit u32 (checked against MAX_LEN).
        let t = f(&key, salt, iterations, i as u32 + 1);
        chunk.copy_from_slice(&t[..chunk.len()]);
    };
    if out.len() <= SHA256_LEN {
        block((0, out));
    } else {
        out.par_chunks_mut(SHA256_LEN).enumerate().for_each(block);
    }
    Ok(())
}

/// RFC 8018 §5.2 step 3: `F(P, S, c, i) = U_1 ^ U_2 ^ ... ^ U_c` with
/// `U_1 = PRF(P, S || INT(i))` and `U_j = PRF(P, U_{j-1})`.
fn f(key: &HmacKey, salt: &[u8], c: u32, i: u32) -> Zeroizing<[u8; SHA256_LEN]> {
    let mut u1_bytes = Zeroizing::new([0u8; SHA256_LEN]);
    key.mac(&[salt, &i.to_be_bytes()], &mut u1_bytes);
    let u1 = Zeroizing::new(load_be(&u1_bytes));
    let t = xor_chain(key, &u1, c - 1);
    let mut out = Zeroizing::new([0u8; SHA256_LEN]);
    store_be(&t, &mut out);
    out
}

/// `U_1 ^ ... ^ U_{1+rounds}` from `U_1`, all as hash words.
fn xor_chain(key: &HmacKey, u1: &[u32; 8], rounds: u32) -> Zeroizing<[u32; 8]> {
    #[cfg(target_arch = "x86_64")]
    if let Some(ni) = super::sha_ni::ShaNi::detect() {
        return Zeroizing::new(ni.xor_chain(key, u1, rounds));
    }
    xor_chain_portable(key, u1, rounds)
}

/// [`xor_chain`] on `sha2`'s compression function (any CPU).
fn xor_chain_portable(key: &HmacKey, u1: &[u32; 8], rounds: u32) -> Zeroizing<[u32; 8]> {
    let mut t = Zeroizing::new(*u1);
    let mut u = Zeroizing::new(*u1);
    // The message block: 32 bytes of U, then constant padding.
    let mut block = Zeroizing::new(digest_block());
    for _ in 0..rounds {
        let mut msg = Zeroizing::new([0u8; SHA256_LEN]);
        store_be(&u, &mut msg);
        block[..SHA256_LEN].copy_from_slice(&*msg);
        *u = key.inner;
        compress256(&mut u, core::slice::from_ref(&*block));
        store_be(&u, &mut msg);
        block[..SHA256_LEN].copy_from_slice(&*msg);
        *u = key.outer;
        compress256(&mut u, core::slice::from_ref(&*block));
        for (t, u) in t.iter_mut().zip(u.iter()) {
            *t ^= u;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(pw: &[u8], salt: &[u8], c: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        pbkdf2_hmac_sha256(pw, salt, c, &mut out).unwrap();
        out
    }

    /// The RFC 6070 inputs with HMAC-SHA256 (as published in RFC 7914 §11
    /// and the widely used SHA-256 companion set).
    #[test]
    fn published_vectors() {
        let cases: [(&[u8], &[u8], u32, &str); 6] = [
            (b"password", b"salt", 1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
            (b"password", b"salt", 2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"),
            (b"password", b"salt", 4096, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"),
            (
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9",
            ),
            (b"pass\0word", b"sa\0lt", 4096, "89b69d0516f829893c696226650a8687"),
            (
                b"passwd",
                b"salt",
                1,
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
            ),
        ];
        for (pw, salt, c, dk) in cases {
            assert_eq!(
                hex::encode(derive(pw, salt, c, dk.len() / 2)),
                dk,
                "c = {c}"
            );
        }
    }

    /// The register-resident chain against the portable one, and both
    /// against an HMAC-per-iteration reading of RFC 8018.
    #[test]
    fn chains_agree() {
        for pw in [&b""[..], b"pw", &[7u8; 64], &[9u8; 100]] {
            let key = HmacKey::new(pw);
            let mut u = [0u8; 32];
            key.mac(&[b"salt", &1u32.to_be_bytes()], &mut u);
            let u1 = load_be(&u);
            let mut naive = u;
            for _ in 0..50 {
                let prev = u;
                key.mac(&[&prev], &mut u);
                naive.iter_mut().zip(&u).for_each(|(t, u)| *t ^= u);
            }
            let mut want = [0u8; 32];
            store_be(&xor_chain_portable(&key, &u1, 50), &mut want);
            assert_eq!(want, naive);
            store_be(&xor_chain(&key, &u1, 50), &mut want);
            assert_eq!(want, naive);
        }
    }

    /// Against AWS-LC's PKCS5_PBKDF2_HMAC over passwords around the HMAC
    /// block size, salts, iteration counts and multi-block lengths.
    #[test]
    fn matches_peer() {
        for (n, &(pw_len, salt_len, c, len)) in [
            (0, 0, 1, 1),
            (8, 16, 2, 32),
            (63, 8, 3, 33),
            (64, 32, 10, 64),
            (65, 1, 100, 100),
            (200, 64, 1000, 32 * 20),
        ]
        .iter()
        .enumerate()
        {
            let pw: Vec<u8> = (0..pw_len).map(|i| (i * 31 + n) as u8).collect();
            let salt: Vec<u8> = (0..salt_len).map(|i| (i * 7 + n) as u8).collect();
            let mut peer = vec![0u8; len];
            assert!(crate::awslc::peers::pbkdf2_hmac_sha256(
                &mut peer, &pw, &salt, c
            ));
            assert_eq!(derive(&pw, &salt, c, len), peer, "case {n}");
        }
    }

    #[test]
    fn multi_block_outputs_are_prefixes() {
        let long = derive(b"pw", b"salt", 3, 32 * 9 + 5);
        for len in [1, 32, 33, 64, 65, 200] {
            assert_eq!(derive(b"pw", b"salt", 3, len), long[..len]);
        }
    }

    #[test]
    fn rejects() {
        assert!(pbkdf2_hmac_sha256(b"p", b"s", 0, &mut [0u8; 32]).is_err());
        assert!(pbkdf2_hmac_sha256(b"p", b"s", 1, &mut []).is_err());
    }
}
