//! The sealed envelope: the one format every stored secret of portal-core uses.
//!
//! Byte layout (version 1, suite 1; all integers big-endian), documented with
//! test vectors in `docs/envelope.md`:
//!
//! ```text
//! "PC" | version u8 = 1 | suite u8 = 1
//! | key_id_len u8 | key_id (UTF-8)
//! | context_len u16 | context (canonical, below)
//! | salt [32] | commitment [32] | index u32
//! | ciphertext | tag [16]
//! ```
//!
//! Suite 1: `HKDF-SHA256(ikm = key, salt, info = INFO)` gives 64 bytes: an
//! AES-256-GCM data key, then a 32-byte key commitment stored in the header
//! (the AWS Encryption SDK's committing design). Every salt is fresh and
//! random; a data key seals one message, or the items of one batch chunk
//! (at most [`CHUNK`]), each under its own nonce `0^64 || index`. So the
//! 2^32-message limit of random 96-bit GCM nonces never applies to the
//! caller's key: data keys repeat only when 256-bit random salts collide.
//! The whole header is the GCM associated data, so key id, context,
//! commitment and index are all authenticated.
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
/// Items of one batch that share a salt (and so a data key and commitment).
pub const CHUNK: usize = 512;
/// Fixed header bytes besides key id and context: magic, version, suite,
/// key id length, context length, salt, commitment, index.
const FIXED_LEN: usize = 2 + 1 + 1 + 1 + 2 + SALT_LEN + COMMIT_LEN + 4;

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
    fn decode(b: &[u8]) -> Result<Vec<(&str, &str)>> {
        let bad = || Error::InvalidEnvelope("malformed context".into());
        let mut rest = b;
        let n = take_u16(&mut rest).ok_or_else(bad)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let mut field = || -> Result<&str> {
                let len = take_u16(&mut rest).ok_or_else(bad)?;
                let raw = take(&mut rest, len).ok_or_else(bad)?;
                std::str::from_utf8(raw).map_err(|_| bad())
            };
            let (k, v) = (field()?, field()?);
            pairs.push((k, v));
        }
        if !rest.is_empty() {
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
    /// The item's index under its salt (its GCM nonce).
    pub index: u32,
    /// Everything before the ciphertext: the associated data.
    pub header: &'a [u8],
    /// `ciphertext || tag`.
    pub body: &'a [u8],
}

impl<'a> Header<'a> {
    /// The stored context as (key, value) pairs, sorted by key.
    ///
    /// # Errors
    /// [`Error::InvalidEnvelope`] if the stored context is malformed.
    pub fn context_pairs(&self) -> Result<Vec<(&'a str, &'a str)>> {
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
    let index = take(&mut b, 4).ok_or_else(|| bad("truncated index"))?;
    let index = u32::from_be_bytes([index[0], index[1], index[2], index[3]]);
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
        index,
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

/// A data key ready for use: the AES-256-GCM key and the commitment derived
/// from the caller's key and one salt (suite 1).
struct DataKey {
    salt: [u8; SALT_LEN],
    aead: Aead,
    commit: Zeroizing<[u8; COMMIT_LEN]>,
}

impl DataKey {
    fn derive(key: &[u8], salt: &[u8]) -> Result<Self> {
        let mut okm = Zeroizing::new([0u8; KEY_LEN + COMMIT_LEN]);
        kdf::hkdf_sha256(key, salt, INFO, okm.as_mut_slice())?;
        let aead = Aead::new(Algorithm::AesGcm, &okm[..KEY_LEN])?;
        let mut commit = Zeroizing::new([0u8; COMMIT_LEN]);
        commit.copy_from_slice(&okm[KEY_LEN..]);
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(DataKey {
            salt: s,
            aead,
            commit,
        })
    }

    /// Draws a fresh salt with `make_salt` and derives its data key.
    fn fresh(key: &[u8], make_salt: impl FnOnce(&mut [u8]) -> Result<()>) -> Result<Self> {
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

    /// Writes the envelope of item `index` into `out` (exactly [`sealed_len`]).
    fn seal_item(
        &self,
        index: u32,
        plaintext: &[u8],
        context: &Context,
        key_id: &str,
        out: &mut [u8],
    ) -> Result<()> {
        let want = sealed_len(key_id, context, plaintext.len());
        if out.len() != want {
            return Err(Error::arg(format!("buffer must be {want} bytes")));
        }
        let (header, body) = out.split_at_mut(want - plaintext.len() - TAG_LEN);
        let mut w = Writer(header);
        w.put(MAGIC);
        w.put(&[VERSION, SUITE_AES256GCM_HKDF_COMMIT, key_id.len() as u8]);
        w.put(key_id.as_bytes());
        w.put(&(context.encoded.len() as u16).to_be_bytes());
        w.put(&context.encoded);
        w.put(&self.salt);
        w.put(self.commit.as_slice());
        w.put(&index.to_be_bytes());
        self.aead
            .seal_into(&Self::nonce(index), plaintext, header, body)
    }

    /// Opens a parsed envelope whose salt is this key's.
    fn open_item(&self, h: &Header<'_>, out: &mut [u8]) -> Result<()> {
        if !bool::from(self.commit.as_slice().ct_eq(h.commitment)) {
            return Err(Error::InvalidTag);
        }
        self.aead
            .open_into(&Self::nonce(h.index), h.body, h.header, out)
    }
}

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

/// Opens one parsed envelope, reusing `cache` when it holds the data key of
/// the same salt (items sealed in one batch chunk share it).
fn open_cached(
    key: &[u8],
    sealed: &[u8],
    context: &Context,
    out: &mut [u8],
    cache: &mut Option<DataKey>,
) -> Result<()> {
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
    let dk = match cache {
        Some(dk) if dk.salt == h.salt => dk,
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

/// Seals many messages on all cores: `outs[i]` receives the envelope of
/// `plaintexts[i]` under `contexts[i]` (or `contexts[0]` when one context is
/// given for all). Each output must be exactly [`sealed_len`] bytes.
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
                dk.seal_item(j as u32, pt, pick(contexts, c * CHUNK + j), key_id, out)?;
            }
            Ok(())
        })
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
                        .map(|e| (i, e))
                })
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
            let index = v["index"].as_u64().unwrap() as u32;
            DataKey::derive(&key, &salt)
                .unwrap()
                .seal_item(index, &pt, &ctx, kid, &mut out)
                .unwrap();
            assert_eq!(
                hex::encode(&out),
                hex::encode(&sealed),
                "vector {}",
                v["name"]
            );
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
            vec![("curve", "SECP256K1"), ("wallet", "w1")]
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
        let msgs: Vec<Vec<u8>> = (0..(CHUNK as u32 * 2 + 300))
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
        // One salt per chunk, items told apart by index; a new chunk, a new salt.
        let (a, b) = (parse(&bufs[0]).unwrap(), parse(&bufs[CHUNK - 1]).unwrap());
        assert_eq!((a.salt, a.index, b.index), (b.salt, 0, CHUNK as u32 - 1));
        let next = parse(&bufs[CHUNK]).unwrap();
        assert_ne!(next.salt, a.salt);
        assert_eq!(next.index, 0);
        bufs[CHUNK + 5][80] ^= 1;
        bufs[200][80] ^= 1;
        let sealed: Vec<&[u8]> = bufs.iter().map(|b| b.as_slice()).collect();
        let mut plain: Vec<Vec<u8>> = msgs.iter().map(|m| vec![0; m.len()]).collect();
        let mut outs: Vec<&mut [u8]> = plain.iter_mut().map(|b| b.as_mut_slice()).collect();
        let err = open_many(&key, &sealed, &c, &mut outs).unwrap_err();
        assert_eq!(err, (200, Error::InvalidTag));
        assert!(plain.iter().all(|p| p.iter().all(|&b| b == 0)));
    }
}

// ---------------------------------------------------------------------------
// Resealing: moving envelopes to another key inside the core.
//
// A key-rotation job (the KMS's `rewrap`) must move stored envelopes from an
// old key to a new one without the plaintext ever reaching the caller's
// language runtime, where it could not be wiped. These functions open and
// seal in one step; the plaintext lives only in a zeroize-on-drop buffer.
// ---------------------------------------------------------------------------

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
/// `(index, error)` for the first failing item.
pub fn reseal_many(
    old_key: &[u8],
    sealed: &[&[u8]],
    new_key: &[u8],
    new_key_id: &str,
    outs: &mut [&mut [u8]],
) -> core::result::Result<(), (usize, Error)> {
    check_key(old_key).map_err(|e| (0, e))?;
    check_key(new_key).map_err(|e| (0, e))?;
    check_key_id(new_key_id).map_err(|e| (0, e))?;
    if outs.len() != sealed.len() {
        return Err((0, Error::arg("one output buffer per item is required")));
    }
    for (base, (items, outs)) in sealed
        .chunks(RESEAL_BATCH)
        .zip(outs.chunks_mut(RESEAL_BATCH))
        .enumerate()
        .map(|(n, pair)| (n * RESEAL_BATCH, pair))
    {
        let at = |(i, e): (usize, Error)| (base + i, e);
        // The context stored in each header, authenticated by open_many below.
        let contexts = items
            .par_iter()
            .enumerate()
            .map(|(i, s)| {
                parse(s)
                    .and_then(|h| Context::new(&h.context_pairs()?))
                    .map_err(|e| (i, e))
            })
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(at)?;
        let mut plain = items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                plaintext_len(s)
                    .map(|n| Zeroizing::new(vec![0u8; n]))
                    .map_err(|e| (i, e))
            })
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(at)?;
        let mut views: Vec<&mut [u8]> = plain.iter_mut().map(|p| p.as_mut_slice()).collect();
        open_many(old_key, items, &contexts, &mut views).map_err(at)?;
        let plaintexts: Vec<&[u8]> = plain.iter().map(|p| p.as_slice()).collect();
        seal_many(new_key, &plaintexts, &contexts, new_key_id, outs).map_err(|e| (base, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod reseal_tests {
    use super::*;

    fn ctx() -> Context {
        Context::new(&[("wallet", "w9"), ("party", "custodian")]).unwrap()
    }

    fn reseal(old: &[u8], sealed: &[u8], new: &[u8], kid: &str) -> Result<Vec<u8>> {
        let mut out = vec![0u8; resealed_len(sealed, kid)?];
        reseal_into(old, sealed, new, kid, &mut out)?;
        Ok(out)
    }

    #[test]
    fn reseal_moves_to_the_new_key_and_keeps_the_context() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let sealed = seal(&old, b"custodian share", &ctx(), "kek/v1").unwrap();
        let moved = reseal(&old, &sealed, &new, "kek/v2").unwrap();
        let h = parse(&moved).unwrap();
        assert_eq!(h.key_id, "kek/v2");
        assert_eq!(h.context, ctx().encoded());
        assert_eq!(open(&new, &moved, &ctx()).unwrap(), b"custodian share");
        assert_eq!(open(&old, &moved, &ctx()), Err(Error::InvalidTag));
        let other = Context::new(&[("wallet", "w8"), ("party", "custodian")]).unwrap();
        assert_eq!(open(&new, &moved, &other), Err(Error::InvalidTag));
    }

    #[test]
    fn reseal_refuses_a_wrong_key_or_tampering() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let sealed = seal(&old, b"share", &ctx(), "k").unwrap();
        assert_eq!(
            reseal(&[3u8; 32], &sealed, &new, "k2"),
            Err(Error::InvalidTag)
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x40;
            assert!(
                reseal(&old, &t, &new, "k2").is_err(),
                "flip at byte {i} resealed"
            );
        }
        assert!(reseal(&old, &sealed, &[0u8; 31], "k2").is_err());
    }

    #[test]
    fn reseal_many_matches_one_at_a_time_and_names_the_failing_index() {
        let (old, new) = ([5u8; 32], [6u8; 32]);
        let msgs: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().repeat(9)).collect();
        let sealed: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| seal(&old, m, &ctx(), "a").unwrap())
            .collect();
        let views: Vec<&[u8]> = sealed.iter().map(|s| s.as_slice()).collect();
        let mut bufs: Vec<Vec<u8>> = views
            .iter()
            .map(|s| vec![0; resealed_len(s, "bb").unwrap()])
            .collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        reseal_many(&old, &views, &new, "bb", &mut outs).unwrap();
        for (b, m) in bufs.iter().zip(&msgs) {
            assert_eq!(&open(&new, b, &ctx()).unwrap(), m);
        }
        let mut broken = sealed.clone();
        let last = broken[150].len() - 1;
        broken[150][last] ^= 1;
        let views: Vec<&[u8]> = broken.iter().map(|s| s.as_slice()).collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        assert_eq!(
            reseal_many(&old, &views, &new, "bb", &mut outs),
            Err((150, Error::InvalidTag))
        );
    }
}
