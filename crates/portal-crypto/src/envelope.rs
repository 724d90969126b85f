//! The sealed envelope: the one format every stored secret of portal-core uses.
//!
//! Byte layout (version 1, suite 1; all integers big-endian), documented with
//! test vectors in `docs/envelope.md`:
//!
//! ```text
//! "PC" | version u8 = 1 | suite u8 = 1
//! | key_id_len u8 | key_id (UTF-8)
//! | context_len u16 | context (canonical, below)
//! | salt [32] | commitment [32]
//! | ciphertext | tag [16]
//! ```
//!
//! Suite 1: `HKDF-SHA256(ikm = key, salt, info = INFO)` gives 64 bytes: a
//! one-time AES-256-GCM data key, then a 32-byte key commitment stored in the
//! header (the AWS Encryption SDK's committing design). The data key encrypts
//! exactly one message, so the nonce is fixed at zero and the 2^32-message
//! limit of random 96-bit GCM nonces does not apply: keys collide only when
//! 256-bit random salts do. The whole header is the GCM associated data, so
//! key id, context and commitment are all authenticated.
//!
//! Context: `count u16`, then per pair sorted by key bytes `klen u16 | key |
//! vlen u16 | value`. It is stored in clear (it names things, it is not
//! secret); opening requires the caller to present the same context.

use rayon::prelude::*;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::aead::{Aead, Algorithm, TAG_LEN};
use crate::{kdf, rand, Error, Result};

/// The two magic bytes that start every envelope.
pub const MAGIC: &[u8; 2] = b"PC";
/// The only format version so far.
pub const VERSION: u8 = 1;
/// Suite 1: HKDF-SHA256 key commitment + AES-256-GCM.
pub const SUITE_AES256GCM_HKDF_COMMIT: u8 = 1;
/// Envelope keys are 256-bit.
pub const KEY_LEN: usize = 32;
pub const SALT_LEN: usize = 32;
pub const COMMIT_LEN: usize = 32;
/// HKDF info for suite 1.
pub const INFO: &[u8] = b"portal-core envelope v1 suite 1: data key || commitment";
const NONCE: [u8; 12] = [0u8; 12];
/// Fixed header bytes besides key id and context: magic, version, suite,
/// key id length, context length, salt, commitment.
const FIXED_LEN: usize = 2 + 1 + 1 + 1 + 2 + SALT_LEN + COMMIT_LEN;

/// An encryption context in canonical form (sorted pairs, encoded once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    encoded: Vec<u8>,
}

impl Context {
    /// Canonicalises `pairs` (any order; keys must be distinct).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for duplicate keys or an encoding over 65535 bytes.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self> {
        let mut sorted: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Error::arg("context keys must be distinct"));
        }
        let too_long = || Error::arg("context must encode to at most 65535 bytes");
        let mut encoded = Vec::new();
        put_u16(&mut encoded, sorted.len()).map_err(|_| too_long())?;
        for (k, v) in sorted {
            for s in [k, v] {
                put_u16(&mut encoded, s.len()).map_err(|_| too_long())?;
                encoded.extend_from_slice(s.as_bytes());
            }
        }
        if encoded.len() > u16::MAX as usize {
            return Err(too_long());
        }
        Ok(Context { encoded })
    }

    /// The empty context.
    pub fn default_empty() -> Self {
        Context::new::<&str, &str>(&[]).expect("the empty context always encodes")
    }

    /// The canonical encoding (as stored in the header).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Decodes a stored context.
    fn decode(mut b: &[u8]) -> Result<Vec<(String, String)>> {
        let bad = || Error::InvalidEnvelope("malformed context".into());
        let n = take_u16(&mut b).ok_or_else(bad)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let mut strings = [String::new(), String::new()];
            for s in &mut strings {
                let len = take_u16(&mut b).ok_or_else(bad)?;
                let raw = take(&mut b, len).ok_or_else(bad)?;
                *s = std::str::from_utf8(raw).map_err(|_| bad())?.to_owned();
            }
            let [k, v] = strings;
            pairs.push((k, v));
        }
        if !b.is_empty() {
            return Err(bad());
        }
        Ok(pairs)
    }
}

/// A parsed envelope, borrowing from the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub version: u8,
    pub suite: u8,
    pub key_id: &'a str,
    /// The canonical context encoding as stored.
    pub context: &'a [u8],
    pub salt: &'a [u8],
    pub commitment: &'a [u8],
    /// Everything before the ciphertext: the associated data.
    pub header: &'a [u8],
    /// `ciphertext || tag`.
    pub body: &'a [u8],
}

impl Header<'_> {
    /// The stored context as (key, value) pairs, sorted by key.
    ///
    /// # Errors
    /// [`Error::InvalidEnvelope`] if the stored context is malformed.
    pub fn context_pairs(&self) -> Result<Vec<(String, String)>> {
        Context::decode(self.context)
    }
}

/// Parses an envelope without any key (for `inspect` and before opening).
///
/// # Errors
/// [`Error::InvalidEnvelope`] for wrong magic, unknown version or suite,
/// truncation, or a malformed key id or context.
pub fn parse(sealed: &[u8]) -> Result<Header<'_>> {
    let bad = |why: &str| Error::InvalidEnvelope(why.into());
    let mut b = sealed;
    if take(&mut b, 2) != Some(MAGIC.as_slice()) {
        return Err(bad("not a portal-core envelope (bad magic)"));
    }
    let version = take_u8(&mut b).ok_or_else(|| bad("truncated header"))?;
    if version != VERSION {
        return Err(Error::InvalidEnvelope(format!(
            "unsupported envelope version {version}"
        )));
    }
    let suite = take_u8(&mut b).ok_or_else(|| bad("truncated header"))?;
    if suite != SUITE_AES256GCM_HKDF_COMMIT {
        return Err(Error::InvalidEnvelope(format!(
            "unsupported envelope suite {suite}"
        )));
    }
    let kid_len = take_u8(&mut b).ok_or_else(|| bad("truncated header"))? as usize;
    let key_id = take(&mut b, kid_len).ok_or_else(|| bad("truncated key id"))?;
    let key_id = std::str::from_utf8(key_id).map_err(|_| bad("key id is not UTF-8"))?;
    let ctx_len = take_u16(&mut b).ok_or_else(|| bad("truncated header"))?;
    let context = take(&mut b, ctx_len).ok_or_else(|| bad("truncated context"))?;
    Context::decode(context)?;
    let salt = take(&mut b, SALT_LEN).ok_or_else(|| bad("truncated salt"))?;
    let commitment = take(&mut b, COMMIT_LEN).ok_or_else(|| bad("truncated commitment"))?;
    if b.len() < TAG_LEN {
        return Err(bad("truncated ciphertext"));
    }
    let header_len = sealed.len() - b.len();
    Ok(Header {
        version,
        suite,
        key_id,
        context,
        salt,
        commitment,
        header: &sealed[..header_len],
        body: b,
    })
}

/// A readable name for a suite number.
pub fn suite_name(suite: u8) -> &'static str {
    match suite {
        SUITE_AES256GCM_HKDF_COMMIT => "AES-256-GCM+HKDF-SHA256-commit",
        _ => "unknown",
    }
}

/// Length of the envelope of a `plaintext_len`-byte message.
pub fn sealed_len(key_id: &str, context: &Context, plaintext_len: usize) -> usize {
    FIXED_LEN + key_id.len() + context.encoded.len() + plaintext_len + TAG_LEN
}

/// The plaintext length inside an envelope, after parsing its header.
///
/// # Errors
/// As [`parse`].
pub fn plaintext_len(sealed: &[u8]) -> Result<usize> {
    Ok(parse(sealed)?.body.len() - TAG_LEN)
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() != KEY_LEN {
        return Err(Error::arg("envelope key must be 32 bytes"));
    }
    Ok(())
}

fn check_key_id(key_id: &str) -> Result<()> {
    if key_id.len() > u8::MAX as usize {
        return Err(Error::arg("key_id must be at most 255 bytes of UTF-8"));
    }
    Ok(())
}

/// The one-time data key and the commitment for `salt` (suite 1).
fn derive(key: &[u8], salt: &[u8]) -> Result<(Aead, Zeroizing<[u8; COMMIT_LEN]>)> {
    let mut okm = Zeroizing::new([0u8; KEY_LEN + COMMIT_LEN]);
    kdf::hkdf_sha256(key, salt, INFO, okm.as_mut_slice())?;
    let aead = Aead::new(Algorithm::AesGcm, &okm[..KEY_LEN])?;
    let mut commit = Zeroizing::new([0u8; COMMIT_LEN]);
    commit.copy_from_slice(&okm[KEY_LEN..]);
    Ok((aead, commit))
}

/// Seals `plaintext` into `out` (exactly [`sealed_len`] bytes) with a fresh
/// random salt.
///
/// # Errors
/// [`Error::InvalidArgument`] for a wrong key, key id or output length.
pub fn seal_into(key: &[u8], plaintext: &[u8], context: &Context, key_id: &str, out: &mut [u8]) -> Result<()> {
    seal_with(key, plaintext, context, key_id, out, rand::fill)
}

/// [`seal_into`] with the salt written by `make_salt`. Private: a repeated
/// salt under one key repeats the data key and nonce. Tests use it to
/// reproduce the published vectors.
fn seal_with(
    key: &[u8],
    plaintext: &[u8],
    context: &Context,
    key_id: &str,
    out: &mut [u8],
    make_salt: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<()> {
    check_key(key)?;
    check_key_id(key_id)?;
    let want = sealed_len(key_id, context, plaintext.len());
    if out.len() != want {
        return Err(Error::arg(format!("buffer must be {want} bytes")));
    }
    let header_len = want - plaintext.len() - TAG_LEN;
    let (header, body) = out.split_at_mut(header_len);
    let mut w = Writer(header);
    w.put(MAGIC);
    w.put(&[VERSION, SUITE_AES256GCM_HKDF_COMMIT, key_id.len() as u8]);
    w.put(key_id.as_bytes());
    w.put(&(context.encoded.len() as u16).to_be_bytes());
    w.put(&context.encoded);
    let salt = w.take(SALT_LEN);
    make_salt(salt)?;
    let (aead, commit) = derive(key, salt)?;
    w.take(COMMIT_LEN).copy_from_slice(commit.as_slice());
    aead.seal_into(&NONCE, plaintext, header, body)
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
    let h = parse(sealed)?;
    let pt_len = h.body.len() - TAG_LEN;
    if out.len() != pt_len {
        return Err(Error::arg(format!("buffer must be {pt_len} bytes")));
    }
    // The context is authenticated as part of the header; a different one
    // could never verify, so refuse it as a failed tag without more work.
    if h.context != context.encoded.as_slice() {
        return Err(Error::InvalidTag);
    }
    let (aead, commit) = derive(key, h.salt)?;
    if !bool::from(commit.as_slice().ct_eq(h.commitment)) {
        return Err(Error::InvalidTag);
    }
    aead.open_into(&NONCE, h.body, h.header, out)
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

/// Seals many messages on all cores: `outs[i]` receives the envelope of
/// `plaintexts[i]` under `contexts[i]` (or `contexts[0]` when one context is
/// given for all). Each output must be exactly [`sealed_len`] bytes.
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
    check_batch(plaintexts.len(), contexts.len(), outs.len())?;
    outs.par_iter_mut()
        .zip(plaintexts.par_iter())
        .enumerate()
        .with_min_len(64)
        .try_for_each(|(i, (out, pt))| seal_into(key, pt, pick(contexts, i), key_id, out))
}

/// Opens many envelopes on all cores: `outs[i]` receives the plaintext of
/// `sealed[i]`. If any item fails, every output is zeroed and the error
/// names the first failing index.
///
/// # Errors
/// `(index, error)` for the first failing item, as [`open_into`].
pub fn open_many(
    key: &[u8],
    sealed: &[&[u8]],
    contexts: &[Context],
    outs: &mut [&mut [u8]],
) -> core::result::Result<(), (usize, Error)> {
    check_key(key).map_err(|e| (0, e))?;
    check_batch(sealed.len(), contexts.len(), outs.len()).map_err(|e| (0, e))?;
    let first_err = outs
        .par_iter_mut()
        .zip(sealed.par_iter())
        .enumerate()
        .with_min_len(64)
        .filter_map(|(i, (out, s))| {
            open_into(key, s, pick(contexts, i), out)
                .err()
                .map(|e| (i, e))
        })
        .min_by_key(|(i, _)| *i);
    match first_err {
        None => Ok(()),
        Some(err) => {
            outs.par_iter_mut()
                .for_each(|o| zeroize::Zeroize::zeroize(&mut **o));
            Err(err)
        }
    }
}

fn pick(contexts: &[Context], i: usize) -> &Context {
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

struct Writer<'a>(&'a mut [u8]);

impl<'a> Writer<'a> {
    fn take(&mut self, n: usize) -> &'a mut [u8] {
        let (head, tail) = core::mem::take(&mut self.0).split_at_mut(n);
        self.0 = tail;
        head
    }
    fn put(&mut self, bytes: &[u8]) {
        self.take(bytes.len()).copy_from_slice(bytes);
    }
}

fn put_u16(v: &mut Vec<u8>, n: usize) -> core::result::Result<(), ()> {
    let n = u16::try_from(n).map_err(|_| ())?;
    v.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Some(head)
}

fn take_u8(b: &mut &[u8]) -> Option<u8> {
    take(b, 1).map(|s| s[0])
}

fn take_u16(b: &mut &[u8]) -> Option<usize> {
    take(b, 2).map(|s| u16::from_be_bytes([s[0], s[1]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vectors (docs/envelope.md), made by an independent
    /// implementation of the format: reproduce them byte for byte.
    #[test]
    fn published_vectors() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/envelope_v1.json")).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 3);
        for v in vectors {
            let hx = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
            let pairs: Vec<(String, String)> = v["context"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let ctx = Context::new(&pairs).unwrap();
            let (key, pt, salt, sealed) = (hx("key"), hx("plaintext"), hx("salt"), hx("sealed"));
            let kid = v["key_id"].as_str().unwrap();
            let mut out = vec![0u8; sealed_len(kid, &ctx, pt.len())];
            seal_with(&key, &pt, &ctx, kid, &mut out, |s| {
                s.copy_from_slice(&salt);
                Ok(())
            })
            .unwrap();
            assert_eq!(hex::encode(&out), hex::encode(&sealed), "vector {}", v["name"]);
            assert_eq!(open(&key, &sealed, &ctx).unwrap(), pt);
        }
    }

    fn ctx() -> Context {
        Context::new(&[("wallet", "w1"), ("curve", "SECP256K1")]).unwrap()
    }

    #[test]
    fn round_trip_and_inspect() {
        let key = [9u8; 32];
        let sealed = seal(&key, b"share", &ctx(), "kek-1").unwrap();
        let h = parse(&sealed).unwrap();
        assert_eq!((h.version, h.suite, h.key_id), (1, 1, "kek-1"));
        assert_eq!(
            h.context_pairs().unwrap(),
            vec![
                ("curve".into(), "SECP256K1".into()),
                ("wallet".into(), "w1".into())
            ]
        );
        assert_eq!(open(&key, &sealed, &ctx()).unwrap(), b"share");
    }

    #[test]
    fn context_order_does_not_matter() {
        let a = Context::new(&[("a", "1"), ("b", "2")]).unwrap();
        let b = Context::new(&[("b", "2"), ("a", "1")]).unwrap();
        assert_eq!(a, b);
        assert!(Context::new(&[("a", "1"), ("a", "2")]).is_err());
    }

    #[test]
    fn wrong_key_context_or_any_flipped_bit_fails() {
        let key = [1u8; 32];
        let sealed = seal(&key, b"share bytes", &ctx(), "k").unwrap();
        assert_eq!(open(&[2u8; 32], &sealed, &ctx()), Err(Error::InvalidTag));
        let other = Context::new(&[("wallet", "w2"), ("curve", "SECP256K1")]).unwrap();
        assert_eq!(open(&key, &sealed, &other), Err(Error::InvalidTag));
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut t = sealed.clone();
                t[i] ^= 1 << bit;
                assert!(
                    open(&key, &t, &ctx()).is_err(),
                    "flip at byte {i} bit {bit} opened"
                );
            }
        }
    }

    #[test]
    fn batch_matches_single_and_reports_index() {
        let key = [3u8; 32];
        let msgs: Vec<Vec<u8>> = (0..300u32)
            .map(|i| i.to_be_bytes().repeat(i as usize % 7 + 1))
            .collect();
        let pts: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let c = [ctx()];
        let mut bufs: Vec<Vec<u8>> = pts
            .iter()
            .map(|p| vec![0; sealed_len("k", &c[0], p.len())])
            .collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        seal_many(&key, &pts, &c, "k", &mut outs).unwrap();
        for (b, m) in bufs.iter().zip(&msgs) {
            assert_eq!(&open(&key, b, &c[0]).unwrap(), m);
        }
        bufs[200][80] ^= 1;
        let sealed: Vec<&[u8]> = bufs.iter().map(|b| b.as_slice()).collect();
        let mut plain: Vec<Vec<u8>> = msgs.iter().map(|m| vec![0; m.len()]).collect();
        let mut outs: Vec<&mut [u8]> = plain.iter_mut().map(|b| b.as_mut_slice()).collect();
        let err = open_many(&key, &sealed, &c, &mut outs).unwrap_err();
        assert_eq!(err, (200, Error::InvalidTag));
        assert!(plain.iter().all(|p| p.iter().all(|&b| b == 0)));
    }
}
