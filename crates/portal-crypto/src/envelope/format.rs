//! The envelope's byte layout: the canonical context, the header, and their
//! parsing and validation (see the module documentation of `envelope`).

use crate::aead::TAG_LEN;
use crate::codec::{CodecError, Reader, SliceWriter, Write};
use crate::{Error, Result};

use super::{COMMIT_LEN, MAGIC, SALT_LEN, SUITE_AES256GCM_HKDF_COMMIT, VERSION};

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
        let count = u16::try_from(sorted.len()).map_err(|_| too_long())?;
        encoded.put_u16(count).map_err(|_| too_long())?;
        for (k, v) in sorted {
            for s in [k, v] {
                encoded
                    .put_prefixed16(s.as_bytes())
                    .map_err(|_| too_long())?;
            }
        }
        if encoded.len() > usize::from(u16::MAX) {
            return Err(too_long());
        }
        Ok(Context { encoded })
    }

    /// The empty context.
    pub fn default_empty() -> Self {
        // A count of zero pairs.
        Context {
            encoded: vec![0, 0],
        }
    }

    /// The canonical encoding (as stored in the header).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Decodes a stored context.
    ///
    /// # Errors
    /// [`Error::InvalidEnvelope`] if it is malformed.
    pub(super) fn decode(b: &[u8]) -> Result<Vec<(&str, &str)>> {
        fn malformed() -> Error {
            Error::InvalidEnvelope("malformed context".into())
        }
        fn field<'a>(r: &mut Reader<'a>) -> Result<&'a str> {
            let raw = r.prefixed16().map_err(|_| malformed())?;
            std::str::from_utf8(raw).map_err(|_| malformed())
        }
        let mut r = Reader::new(b);
        let n = usize::from(r.u16().map_err(|_| malformed())?);
        // Each pair takes at least four bytes: do not trust the count for the allocation.
        let mut pairs = Vec::with_capacity(n.min(b.len() / 4));
        for _ in 0..n {
            let k = field(&mut r)?;
            let v = field(&mut r)?;
            pairs.push((k, v));
        }
        if !r.rest().is_empty() {
            return Err(malformed());
        }
        Ok(pairs)
    }
}

/// A parsed envelope, borrowing from the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The format version ([`VERSION`]).
    pub version: u8,
    /// The suite number ([`SUITE_AES256GCM_HKDF_COMMIT`]).
    pub suite: u8,
    /// The name of the key it was sealed under (not secret).
    pub key_id: &'a str,
    /// The canonical context encoding as stored.
    pub context: &'a [u8],
    /// The salt its data key was derived with.
    pub salt: &'a [u8],
    /// The key commitment.
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
    parse_with(sealed, true)
}

/// As [`parse`], without decoding the stored context: for opening, which
/// compares it with the caller's canonical context byte for byte (equal
/// bytes are valid by construction) and decodes it only when they differ.
///
/// # Errors
/// As [`parse`], except for a malformed context.
pub(super) fn parse_for_open(sealed: &[u8]) -> Result<Header<'_>> {
    parse_with(sealed, false)
}

fn parse_with(sealed: &[u8], check_context: bool) -> Result<Header<'_>> {
    let bad = |why: &str| Error::InvalidEnvelope(why.into());
    let mut r = Reader::new(sealed);
    if r.take(MAGIC.len()) != Ok(MAGIC.as_slice()) {
        return Err(bad("not a portal-core envelope (bad magic)"));
    }
    let version = r.u8().map_err(|_| bad("truncated header"))?;
    if version != VERSION {
        return Err(Error::InvalidEnvelope(format!(
            "unsupported envelope version {version}"
        )));
    }
    let suite = r.u8().map_err(|_| bad("truncated header"))?;
    if suite != SUITE_AES256GCM_HKDF_COMMIT {
        return Err(Error::InvalidEnvelope(format!(
            "unsupported envelope suite {suite}"
        )));
    }
    let kid_len = r.u8().map_err(|_| bad("truncated header"))?;
    let key_id = r
        .take(usize::from(kid_len))
        .map_err(|_| bad("truncated key id"))?;
    let key_id = std::str::from_utf8(key_id).map_err(|_| bad("key id is not UTF-8"))?;
    let ctx_len = r.u16().map_err(|_| bad("truncated header"))?;
    let context = r
        .take(usize::from(ctx_len))
        .map_err(|_| bad("truncated context"))?;
    if check_context {
        Context::decode(context)?;
    }
    let salt = r.take(SALT_LEN).map_err(|_| bad("truncated salt"))?;
    let commitment = r
        .take(COMMIT_LEN)
        .map_err(|_| bad("truncated commitment"))?;
    let index = r.u32().map_err(|_| bad("truncated index"))?;
    let (header, body) = (r.consumed(), r.rest());
    if body.len() < TAG_LEN {
        return Err(bad("truncated ciphertext"));
    }
    Ok(Header {
        version,
        suite,
        key_id,
        context,
        salt,
        commitment,
        index,
        header,
        body,
    })
}

/// Writes the header of one item into `out`, which must be exactly its length.
///
/// # Errors
/// [`Error::InvalidArgument`] for a key id over 255 bytes or a wrong length.
pub(super) fn write_header(
    out: &mut [u8],
    key_id: &str,
    context: &Context,
    salt: &[u8; SALT_LEN],
    commitment: &[u8; COMMIT_LEN],
    index: u32,
) -> Result<()> {
    fn fields(
        w: &mut SliceWriter<'_>,
        key_id: &str,
        context: &Context,
        salt: &[u8],
        commitment: &[u8],
        index: u32,
    ) -> core::result::Result<(), CodecError> {
        w.put(MAGIC)?;
        w.put_u8(VERSION)?;
        w.put_u8(SUITE_AES256GCM_HKDF_COMMIT)?;
        w.put_prefixed8(key_id.as_bytes())?;
        w.put_prefixed16(&context.encoded)?;
        w.put(salt)?;
        w.put(commitment)?;
        w.put_u32(index)
    }
    let mut w = SliceWriter::new(out);
    match fields(&mut w, key_id, context, salt, commitment, index) {
        Err(CodecError::TooLong) => Err(key_id_error()),
        Err(_) => Err(Error::arg("envelope header does not fit its buffer")),
        Ok(()) if w.remaining() != 0 => Err(Error::arg("envelope header does not fill its buffer")),
        Ok(()) => Ok(()),
    }
}

/// A readable name for a suite number.
pub fn suite_name(suite: u8) -> &'static str {
    match suite {
        SUITE_AES256GCM_HKDF_COMMIT => "AES-256-GCM+HKDF-SHA256-commit",
        _ => "unknown",
    }
}

/// Length of the header of an envelope sealed under `key_id` with `context`.
pub(super) fn header_len(key_id: &str, context: &Context) -> usize {
    FIXED_LEN + key_id.len() + context.encoded.len()
}

/// Length of the envelope of a `plaintext_len`-byte message.
pub fn sealed_len(key_id: &str, context: &Context, plaintext_len: usize) -> usize {
    header_len(key_id, context) + plaintext_len + TAG_LEN
}

/// The plaintext length inside an envelope, after parsing its header.
///
/// # Errors
/// As [`parse`].
pub fn plaintext_len(sealed: &[u8]) -> Result<usize> {
    Ok(parse(sealed)?.body.len() - TAG_LEN)
}

fn key_id_error() -> Error {
    Error::arg("key_id must be at most 255 bytes of UTF-8")
}

/// Checks that a key id fits its one-byte length.
///
/// # Errors
/// [`Error::InvalidArgument`] for a key id over 255 bytes.
pub fn check_key_id(key_id: &str) -> Result<()> {
    if key_id.len() > usize::from(u8::MAX) {
        return Err(key_id_error());
    }
    Ok(())
}
