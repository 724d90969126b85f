//! SHA-256 on x86-64 SHA-NI with the state kept in registers: HMAC from
//! the key's states to the digest, two independent compressions at once (an
//! HMAC key's inner and outer states), and the PBKDF2-HMAC-SHA256 iteration.
//!
//! HMAC here is short messages (HKDF's are one or two blocks), so a call
//! costs a few compressions in a row, each waiting for the one before: any
//! conversion or round trip through memory on the way adds directly.
//!
//! One PBKDF2 iteration is `U' = H_outer(H_inner(U))`, two SHA-256 compressions of
//! a block whose last 32 bytes are constant padding (RFC 8018 §5.2 with
//! FIPS 180-4 §5.1.1). The chain is strictly sequential, so the cost is the
//! latency of 2 x 32 `sha256rnds2`. Everything else is kept off that path:
//! the state never leaves the ABEF/CDGH register form SHA-NI uses, a digest
//! becomes the next message words with two shuffles instead of a byte-order
//! round trip through memory, and the padding words are constants.

use core::arch::x86_64::*;

use super::hmac::HmacKey;

/// Whether this CPU has the instructions this module is compiled for.
fn available() -> bool {
    is_x86_feature_detected!("sha") && is_x86_feature_detected!("sse4.1")
}

/// Proof that this CPU has SHA-NI and SSE4.1: made only by [`ShaNi::detect`],
/// so its safe methods may call the `target_feature` functions below.
#[derive(Clone, Copy)]
pub(super) struct ShaNi(());

impl ShaNi {
    /// The token, when the CPU has the instructions.
    pub(super) fn detect() -> Option<Self> {
        available().then_some(ShaNi(()))
    }

    /// HMAC-SHA256 of the concatenation of `parts` (see [`mac`]).
    pub(super) fn mac(self, key: &HmacKey, parts: &[&[u8]], out: &mut [u8; 32]) {
        // SAFETY: `self` exists only once `available()` said the CPU has every
        // feature `mac` is compiled for.
        unsafe { mac(key, parts, out) }
    }

    /// Two interleaved compressions (see [`compress2`]).
    pub(super) fn compress2(
        self,
        a: &mut [u32; 8],
        a_block: &[u8; 64],
        b: &mut [u32; 8],
        b_block: &[u8; 64],
    ) {
        // SAFETY: `self` proves the CPU features, as in `mac`.
        unsafe { compress2(a, a_block, b, b_block) }
    }

    /// The PBKDF2 chain (see [`xor_chain`]).
    pub(super) fn xor_chain(self, key: &HmacKey, u1: &[u32; 8], rounds: u32) -> [u32; 8] {
        // SAFETY: `self` proves the CPU features, as in `mac`.
        unsafe { xor_chain(key, u1, rounds) }
    }
}

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// A SHA-256 chaining value in SHA-NI's layout: `abef` holds words
/// (a, b, e, f) and `cdgh` (c, d, g, h), highest lane first.
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

/// Words a..h into SHA-NI's layout.
///
/// # Safety
/// The CPU must have SSE2, SSSE3, SSE4.1: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
unsafe fn load(w: &[u32; 8]) -> State {
    // SAFETY: 32 bytes, two unaligned 16-byte loads.
    let (dcba, hgfe) = unsafe {
        (
            _mm_loadu_si128(w.as_ptr().cast()),
            _mm_loadu_si128(w.as_ptr().add(4).cast()),
        )
    };
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    State {
        abef: _mm_alignr_epi8(cdab, efgh, 8),
        cdgh: _mm_blend_epi16(efgh, cdab, 0xF0),
    }
}

/// SHA-NI's layout back to words a..h.
///
/// # Safety
/// The CPU must have SSE2: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn store(s: State) -> [u32; 8] {
    let mut w = [0u32; 8];
    let [abcd, efgh] = message(s);
    // SAFETY: 32 bytes, two unaligned 16-byte stores.
    unsafe {
        _mm_storeu_si128(w.as_mut_ptr().cast(), abcd);
        _mm_storeu_si128(w.as_mut_ptr().add(4).cast(), efgh);
    }
    w
}

/// The digest bytes of `s` (words big-endian, FIPS 180-4 §6.2.2 step 4).
///
/// # Safety
/// The CPU must have SSE2, SSSE3: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
unsafe fn store_digest(s: State, out: &mut [u8; 32]) {
    let [abcd, efgh] = message(s);
    // SAFETY: 32 bytes, two unaligned 16-byte stores.
    unsafe {
        _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi8(abcd, bswap32()));
        _mm_storeu_si128(
            out.as_mut_ptr().add(16).cast(),
            _mm_shuffle_epi8(efgh, bswap32()),
        );
    }
}

/// The byte shuffle that swaps each 32-bit lane's byte order.
///
/// # Safety
/// The CPU must have SSE2: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn bswap32() -> __m128i {
    _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3)
}

/// The digest of `s` as message words W0..3 and W4..7, lane 0 first: the
/// digest bytes are the words big-endian and SHA-256 reads message words
/// big-endian, so no byte swap is needed, only a regrouping.
///
/// # Safety
/// The CPU must have SSE2: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn message(s: State) -> [__m128i; 2] {
    // unpackhi gives (b, a, d, c) from lane 0 up; swapping pairs gives (a, b, c, d).
    let abcd = _mm_shuffle_epi32(_mm_unpackhi_epi64(s.abef, s.cdgh), 0xB1);
    let efgh = _mm_shuffle_epi32(_mm_unpacklo_epi64(s.abef, s.cdgh), 0xB1);
    [abcd, efgh]
}

/// Four rounds (FIPS 180-4 §6.2.2 step 3) with message words `w`, from `r`.
///
/// # Safety
/// The CPU must have SHA, SSE2: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sha,sse2")]
unsafe fn rounds4(s: &mut State, w: __m128i, r: usize) {
    // SAFETY: `r` is at most 60, four words inside `K`.
    let wk = _mm_add_epi32(w, unsafe { _mm_loadu_si128(K.as_ptr().add(r).cast()) });
    s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, wk);
    s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32(wk, 0x0E));
}

/// The next four schedule words from the previous sixteen (FIPS 180-4
/// §6.2.2 step 1): `W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]`.
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
unsafe fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
    _mm_sha256msg2_epu32(t, w3)
}

/// The feed-forward of the chaining value (FIPS 180-4 §6.2.2 step 4).
///
/// # Safety
/// The CPU must have SSE2: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn add(s: State, init: State) -> State {
    State {
        abef: _mm_add_epi32(s.abef, init.abef),
        cdgh: _mm_add_epi32(s.cdgh, init.cdgh),
    }
}

/// SHA-256 compressions (FIPS 180-4 §6.2.2) of schedule words `w0..w3`
/// into each state `s`, unrolled so that the words stay in registers. With
/// two states their rounds interleave: a compression is a chain of
/// dependent `sha256rnds2`, and a second, independent one fills its gaps.
macro_rules! compress {
    ($(($s:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident)),+) => {
        let init = [$($s),+];
        $(rounds4(&mut $s, $w0, 0);)+
        $(rounds4(&mut $s, $w1, 4);)+
        $(rounds4(&mut $s, $w2, 8);)+
        $(rounds4(&mut $s, $w3, 12);)+
        for r in [16, 32, 48] {
            $($w0 = schedule($w0, $w1, $w2, $w3); rounds4(&mut $s, $w0, r);)+
            $($w1 = schedule($w1, $w2, $w3, $w0); rounds4(&mut $s, $w1, r + 4);)+
            $($w2 = schedule($w2, $w3, $w0, $w1); rounds4(&mut $s, $w2, r + 8);)+
            $($w3 = schedule($w3, $w0, $w1, $w2); rounds4(&mut $s, $w3, r + 12);)+
        }
        let mut _i = 0;
        $($s = add($s, init[_i]); _i += 1;)+
    };
}

/// One SHA-256 compression of the block with schedule words `w` into `s`.
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3, SSE4.1: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress(mut s: State, [mut w0, mut w1, mut w2, mut w3]: [__m128i; 4]) -> State {
    compress!((s, w0, w1, w2, w3));
    s
}

/// `U_1 ^ U_2 ^ ... ^ U_{1+rounds}` with `U_{j+1} = HMAC(key, U_j)`, all as
/// hash words (RFC 8018 §5.2 step 3).
///
/// # Safety
/// The CPU must have SHA-NI and SSE4.1 ([`available`]).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn xor_chain(key: &HmacKey, u1: &[u32; 8], rounds: u32) -> [u32; 8] {
    let [pad_lo, pad_hi] = digest_padding();
    let (inner, outer) = (load(&key.inner), load(&key.outer));
    let mut u = load(u1);
    let mut t = u;
    for _ in 0..rounds {
        let [m0, m1] = message(u);
        let h = compress(inner, [m0, m1, pad_lo, pad_hi]);
        let [m0, m1] = message(h);
        u = compress(outer, [m0, m1, pad_lo, pad_hi]);
        t.abef = _mm_xor_si128(t.abef, u.abef);
        t.cdgh = _mm_xor_si128(t.cdgh, u.cdgh);
    }
    store(t)
}

/// Schedule words W8..W15 of a block holding a 32-byte digest after a
/// 64-byte key block: 0x80, zeros, and the bit length 768 (FIPS 180-4 §5.1.1).
///
/// # Safety
/// The CPU must have SSE2: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn digest_padding() -> [__m128i; 2] {
    [
        _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32),
        _mm_set_epi32(768, 0, 0, 0),
    ]
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`, into
/// `out`. The inner state stays in registers from the first block to the
/// outer compression, whose message is the inner digest straight from them.
///
/// # Safety
/// The CPU must have SHA-NI and SSE4.1 ([`available`]).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn mac(key: &HmacKey, parts: &[&[u8]], out: &mut [u8; 32]) {
    let mut s = load(&key.inner);
    let mut buf = [0u8; 64];
    let mut n = 0;
    // The key block is already absorbed.
    let mut total = 64u64;
    for part in parts {
        let mut p = *part;
        total += p.len() as u64;
        if n > 0 {
            let take = (64 - n).min(p.len());
            buf[n..n + take].copy_from_slice(&p[..take]);
            n += take;
            p = &p[take..];
            if n < 64 {
                continue;
            }
            s = compress(s, load_block(&buf));
        }
        let mut blocks = p.chunks_exact(64);
        for b in &mut blocks {
            s = compress(s, load_block(b.try_into().expect("one block")));
        }
        let rest = blocks.remainder();
        buf[..rest.len()].copy_from_slice(rest);
        n = rest.len();
    }
    // FIPS 180-4 §5.1.1: 0x80, zeros, the 64-bit bit length.
    buf[n] = 0x80;
    buf[n + 1..].fill(0);
    if n >= 56 {
        s = compress(s, load_block(&buf));
        buf.fill(0);
    }
    buf[56..].copy_from_slice(&(total * 8).to_be_bytes());
    s = compress(s, load_block(&buf));
    super::hmac::wipe(&mut buf);
    let [m0, m1] = message(s);
    let [p0, p1] = digest_padding();
    store_digest(compress(load(&key.outer), [m0, m1, p0, p1]), out);
}

/// A message block as schedule words W0..W15 (big-endian, FIPS 180-4 §5.2.1).
///
/// # Safety
/// The CPU must have SSE2, SSSE3: the function is compiled for those instructions.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
unsafe fn load_block(block: &[u8; 64]) -> [__m128i; 4] {
    let (p, swap) = (block.as_ptr(), bswap32());
    // SAFETY: `block` is 64 bytes, four unaligned 16-byte loads.
    unsafe {
        [
            _mm_shuffle_epi8(_mm_loadu_si128(p.cast()), swap),
            _mm_shuffle_epi8(_mm_loadu_si128(p.add(16).cast()), swap),
            _mm_shuffle_epi8(_mm_loadu_si128(p.add(32).cast()), swap),
            _mm_shuffle_epi8(_mm_loadu_si128(p.add(48).cast()), swap),
        ]
    }
}

/// Compresses `a_block` into `a` and `b_block` into `b`, interleaved: the
/// two chains are independent, so together they take well under twice the
/// time of one. An HMAC key's inner and outer states (RFC 2104 §2) are such
/// a pair.
///
/// # Safety
/// The CPU must have SHA-NI and SSE4.1 ([`available`]).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress2(a: &mut [u32; 8], a_block: &[u8; 64], b: &mut [u32; 8], b_block: &[u8; 64]) {
    let (mut sa, mut sb) = (load(a), load(b));
    let [mut a0, mut a1, mut a2, mut a3] = load_block(a_block);
    let [mut b0, mut b1, mut b2, mut b3] = load_block(b_block);
    compress!((sa, a0, a1, a2, a3), (sb, b0, b1, b2, b3));
    *a = store(sa);
    *b = store(sb);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        if !available() {
            return;
        }
        let w = [1, 2, 3, 4, 5, 6, 7, 8];
        // SAFETY: checked `available` above.
        let (back, msg) = unsafe {
            let s = load(&w);
            let [lo, hi] = message(s);
            let mut m = [0u32; 8];
            _mm_storeu_si128(m.as_mut_ptr().cast(), lo);
            _mm_storeu_si128(m.as_mut_ptr().add(4).cast(), hi);
            (store(s), m)
        };
        assert_eq!(back, w);
        assert_eq!(msg, w);
    }

    #[test]
    fn compress2_matches_sha2() {
        if !available() {
            return;
        }
        let blocks: [[u8; 64]; 2] = [
            core::array::from_fn(|i| i as u8),
            core::array::from_fn(|i| 3 * i as u8),
        ];
        let (mut a, mut b) = ([1u32, 2, 3, 4, 5, 6, 7, 8], [9u32; 8]);
        let (mut want_a, mut want_b) = (a, b);
        sha2::block_api::compress256(&mut want_a, &blocks[..1]);
        sha2::block_api::compress256(&mut want_b, &blocks[1..]);
        // SAFETY: checked `available` above.
        unsafe { compress2(&mut a, &blocks[0], &mut b, &blocks[1]) };
        assert_eq!((a, b), (want_a, want_b));
    }
}
