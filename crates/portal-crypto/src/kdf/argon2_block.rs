//! Argon2's memory block and its compression function G (RFC 9106 §3.5,
//! §3.6): a portable version and an AVX2 one, chosen once per call.
//!
//! G(X, Y): R = X ^ Y, viewed as an 8x8 matrix of 16-byte registers; the
//! BLAKE2b-based permutation P is applied to each row, then to each column,
//! and the result is XORed with R again.

/// Words in a 1 KiB block.
pub(super) const WORDS: usize = 128;

/// One 1 KiB Argon2 block, cache-line aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Block(pub(super) [u64; WORDS]);

impl Block {
    pub(super) const ZERO: Block = Block([0; WORDS]);
}

/// `*dst = G(*x, *y)`, or `*dst ^= G(*x, *y)` when `xor` (every pass after
/// the first in version 0x13, RFC 9106 §3.2 step 6).
///
/// # Safety
/// `x` and `y` point at initialised blocks; `dst` is valid for writes, is
/// initialised when `xor`, and overlaps neither `x` nor `y`.
pub(super) type CompressFn =
    unsafe fn(x: *const Block, y: *const Block, dst: *mut Block, xor: bool);

/// The fastest G this CPU runs.
pub(super) fn select() -> CompressFn {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        return avx2::compress;
    }
    portable::compress
}

mod portable {
    use super::{Block, WORDS};

    /// The BLAKE2b G function with Argon2's multiplication (RFC 9106 §3.6):
    /// `a + b` becomes `a + b + 2 * trunc(a) * trunc(b)`.
    #[inline(always)]
    fn gb(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize) {
        let f = |x: u64, y: u64| {
            x.wrapping_add(y).wrapping_add(
                2u64.wrapping_mul(x & 0xffff_ffff)
                    .wrapping_mul(y & 0xffff_ffff),
            )
        };
        v[a] = f(v[a], v[b]);
        v[d] = (v[d] ^ v[a]).rotate_right(32);
        v[c] = f(v[c], v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(24);
        v[a] = f(v[a], v[b]);
        v[d] = (v[d] ^ v[a]).rotate_right(16);
        v[c] = f(v[c], v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(63);
    }

    /// P on the 16 words at `idx` of `q`: one BLAKE2b round, columns then diagonals.
    #[inline(always)]
    fn p(q: &mut [u64; WORDS], idx: [usize; 16]) {
        let mut v: [u64; 16] = core::array::from_fn(|i| q[idx[i]]);
        gb(&mut v, 0, 4, 8, 12);
        gb(&mut v, 1, 5, 9, 13);
        gb(&mut v, 2, 6, 10, 14);
        gb(&mut v, 3, 7, 11, 15);
        gb(&mut v, 0, 5, 10, 15);
        gb(&mut v, 1, 6, 11, 12);
        gb(&mut v, 2, 7, 8, 13);
        gb(&mut v, 3, 4, 9, 14);
        for (i, &j) in idx.iter().enumerate() {
            q[j] = v[i];
        }
    }

    /// See [`super::CompressFn`].
    ///
    /// # Safety
    /// As [`super::CompressFn`]: `x` and `y` point at initialised blocks, `dst`
    /// is valid for writes (initialised when `xor`) and overlaps neither.
    pub(super) unsafe fn compress(x: *const Block, y: *const Block, dst: *mut Block, xor: bool) {
        // SAFETY: the caller guarantees both blocks are initialised.
        let (x, y) = unsafe { (&*x, &*y) };
        let r: [u64; WORDS] = core::array::from_fn(|i| x.0[i] ^ y.0[i]);
        let mut q = r;
        // Rows: registers 8i..8i+7, i.e. words 16i..16i+15.
        for row in 0..8 {
            p(&mut q, core::array::from_fn(|k| 16 * row + k));
        }
        // Columns: registers c, c+8, ..., c+56, i.e. word pairs 2c + 16k.
        for col in 0..8 {
            p(
                &mut q,
                core::array::from_fn(|k| 2 * col + 16 * (k / 2) + k % 2),
            );
        }
        let mut out: [u64; WORDS] = core::array::from_fn(|i| q[i] ^ r[i]);
        if xor {
            // SAFETY: the caller guarantees `dst` is initialised when `xor`.
            let old = unsafe { &*dst };
            out.iter_mut().zip(&old.0).for_each(|(o, d)| *o ^= d);
        }
        // SAFETY: `dst` is valid for writes and overlaps neither input.
        unsafe { dst.write(Block(out)) };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! G on AVX2: a 256-bit register holds four words, so the block is 32
    //! registers. A row of P is four of them (A, B, C, D), and its diagonal
    //! step rotates B, C, D across lanes. A pair of columns is eight of them
    //! laid out as two independent 128-bit halves, and its diagonal step
    //! only shifts words within each half (`alignr`), as BLAKE2b on SSE does.
    //! G is a long chain of dependent steps (multiply, add, xor, rotate), so
    //! all rows, then all columns, are computed step by step side by side.

    use core::arch::x86_64::*;

    use super::Block;

    /// `a + b + 2 * trunc(a) * trunc(b)` per 64-bit lane (RFC 9106 §3.6).
    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn fbla(a: __m256i, b: __m256i) -> __m256i {
        let m = _mm256_mul_epu32(a, b);
        _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(m, m))
    }

    /// The four rotations of GB, as byte shuffles where they are whole bytes.
    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn ror32(x: __m256i) -> __m256i {
        _mm256_shuffle_epi32(x, 0b10_11_00_01)
    }

    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn ror24(x: __m256i) -> __m256i {
        let m = _mm256_setr_epi8(
            3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, //
            3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10,
        );
        _mm256_shuffle_epi8(x, m)
    }

    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn ror16(x: __m256i) -> __m256i {
        let m = _mm256_setr_epi8(
            2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, //
            2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,
        );
        _mm256_shuffle_epi8(x, m)
    }

    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn ror63(x: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_srli_epi64(x, 63), _mm256_add_epi64(x, x))
    }

    /// GB on independent sets of (a, b, c, d) quadruples, step by step
    /// across the sets: one set alone is a chain of dependent operations, and
    /// the CPU keeps its units busy only when it sees independent work next
    /// to it. A macro, so that it is always expanded in place.
    macro_rules! gb {
        ($v:expr) => {
            for s in $v.iter_mut() {
                s[0] = fbla(s[0], s[1]);
            }
            for s in $v.iter_mut() {
                s[3] = ror32(_mm256_xor_si256(s[3], s[0]));
            }
            for s in $v.iter_mut() {
                s[2] = fbla(s[2], s[3]);
            }
            for s in $v.iter_mut() {
                s[1] = ror24(_mm256_xor_si256(s[1], s[2]));
            }
            for s in $v.iter_mut() {
                s[0] = fbla(s[0], s[1]);
            }
            for s in $v.iter_mut() {
                s[3] = ror16(_mm256_xor_si256(s[3], s[0]));
            }
            for s in $v.iter_mut() {
                s[2] = fbla(s[2], s[3]);
            }
            for s in $v.iter_mut() {
                s[1] = ror63(_mm256_xor_si256(s[1], s[2]));
            }
        };
    }

    /// P on all eight rows at once (row i is registers 4i..4i+3: A = v0..v3,
    /// B = v4..v7, C = v8..v11, D = v12..v15). Eight independent chains
    /// give the CPU enough parallel work; the registers spill to the stack,
    /// which costs less than the waiting it saves.
    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn p_rows(q: &mut [__m256i; 32]) {
        let mut v: [[__m256i; 4]; 8] =
            core::array::from_fn(|r| [q[4 * r], q[4 * r + 1], q[4 * r + 2], q[4 * r + 3]]);
        gb!(v);
        // Diagonals (v0, v5, v10, v15), ...: rotate B, C, D left by 1, 2, 3 lanes.
        for s in v.iter_mut() {
            s[1] = _mm256_permute4x64_epi64(s[1], 0b00_11_10_01);
            s[2] = _mm256_permute4x64_epi64(s[2], 0b01_00_11_10);
            s[3] = _mm256_permute4x64_epi64(s[3], 0b10_01_00_11);
        }
        gb!(v);
        for (r, s) in v.iter().enumerate() {
            q[4 * r] = s[0];
            q[4 * r + 1] = _mm256_permute4x64_epi64(s[1], 0b10_01_00_11);
            q[4 * r + 2] = _mm256_permute4x64_epi64(s[2], 0b01_00_11_10);
            q[4 * r + 3] = _mm256_permute4x64_epi64(s[3], 0b00_11_10_01);
        }
    }

    /// P on all eight columns at once, as four pairs (2j, 2j+1) held in the
    /// low and high 128-bit halves of registers j + 4k, which hold words
    /// (v_2k, v_2k+1) of both columns: A0 = (v0, v1), A1 = (v2, v3),
    /// B0 = (v4, v5), ..., D1 = (v14, v15) per half.
    ///
    /// # Safety
    /// The CPU must have AVX2: the function is compiled for those instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn p_columns(q: &mut [__m256i; 32]) {
        // Sets 2j and 2j+1 are the (A0, B0, C0, D0) and (A1, B1, C1, D1) of pair j.
        let mut v: [[__m256i; 4]; 8] = core::array::from_fn(|s| {
            let c = s / 2 + 4 * (s % 2);
            [q[c], q[c + 8], q[c + 16], q[c + 24]]
        });
        gb!(v);
        // Diagonals: B0 = (v5, v6), B1 = (v7, v4), C0 and C1 swap,
        // D0 = (v15, v12), D1 = (v13, v14). alignr(x, y, 8) = (y.hi, x.lo).
        for p in v.chunks_exact_mut(2) {
            let ([_, b0, c0, d0], [_, b1, c1, d1]) = (p[0], p[1]);
            p[0][1] = _mm256_alignr_epi8(b1, b0, 8);
            p[1][1] = _mm256_alignr_epi8(b0, b1, 8);
            p[0][2] = c1;
            p[1][2] = c0;
            p[0][3] = _mm256_alignr_epi8(d0, d1, 8);
            p[1][3] = _mm256_alignr_epi8(d1, d0, 8);
        }
        gb!(v);
        for (j, p) in v.chunks_exact(2).enumerate() {
            let ([a0, b0, c0, d0], [a1, b1, c1, d1]) = (p[0], p[1]);
            q[j] = a0;
            q[j + 4] = a1;
            q[j + 8] = _mm256_alignr_epi8(b0, b1, 8);
            q[j + 12] = _mm256_alignr_epi8(b1, b0, 8);
            q[j + 16] = c1;
            q[j + 20] = c0;
            q[j + 24] = _mm256_alignr_epi8(d1, d0, 8);
            q[j + 28] = _mm256_alignr_epi8(d0, d1, 8);
        }
    }

    /// See [`super::CompressFn`].
    ///
    /// # Safety
    /// As [`super::CompressFn`]: `x` and `y` point at initialised blocks, `dst`
    /// is valid for writes (initialised when `xor`) and overlaps neither. The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn compress(x: *const Block, y: *const Block, dst: *mut Block, xor: bool) {
        let (x, y, d) = (
            x.cast::<__m256i>(),
            y.cast::<__m256i>(),
            dst.cast::<__m256i>(),
        );
        let mut r = [_mm256_setzero_si256(); 32];
        for (i, r) in r.iter_mut().enumerate() {
            // SAFETY: both blocks are 32 registers long and initialised.
            *r = unsafe {
                _mm256_xor_si256(_mm256_loadu_si256(x.add(i)), _mm256_loadu_si256(y.add(i)))
            };
        }
        let mut q = r;
        p_rows(&mut q);
        p_columns(&mut q);
        for (i, (q, r)) in q.iter().zip(&r).enumerate() {
            let mut z = _mm256_xor_si256(*q, *r);
            // SAFETY: `dst` is 32 registers long, valid for writes and,
            // when `xor`, initialised.
            unsafe {
                if xor {
                    z = _mm256_xor_si256(z, _mm256_loadu_si256(d.add(i)));
                }
                _mm256_storeu_si256(d.add(i), z);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_block(seed: u64) -> Block {
        let mut s = seed;
        Block(core::array::from_fn(|_| {
            // SplitMix64: arbitrary, reproducible words.
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }))
    }

    fn run(f: CompressFn, x: &Block, y: &Block, old: &Block, xor: bool) -> Block {
        let mut dst = *old;
        // SAFETY: distinct, initialised blocks.
        unsafe { f(x, y, &mut dst, xor) };
        dst
    }

    /// Every backend against the portable one.
    #[test]
    fn backends_agree() {
        let f = select();
        for seed in 0..64 {
            let (x, y, old) = (
                pseudo_block(seed),
                pseudo_block(seed + 1000),
                pseudo_block(seed + 2000),
            );
            for xor in [false, true] {
                let want = run(portable::compress, &x, &y, &old, xor);
                assert_eq!(run(f, &x, &y, &old, xor).0, want.0, "seed {seed} xor {xor}");
            }
        }
    }
}
