//! Argon2id, version 0x13 (RFC 9106).
//!
//! The memory is `p` lanes of `q` blocks; each pass fills every lane in four
//! slices, and the `p` segments of one slice are computed in parallel on the
//! thread pool (§3.4: a segment only reads blocks of other lanes outside the
//! current slice). The call touches no shared state, so a binding can
//! release its interpreter lock around all of it.
//!
//! Speed comes from the block function (`argon2_block`) and from the memory:
//! huge pages turn tens of thousands of page faults and TLB misses on the
//! random reads of §3.4.1 into a few dozen.

use blake2::digest::block_api::{UpdateCore, VariableOutputCore};
use blake2::digest::block_buffer::LazyBuffer;
use blake2::Blake2bVarCore;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::argon2_block::{select, Block, CompressFn, WORDS};
use crate::{Error, Result};

/// Argon2id parameters (RFC 9106 §3.1): passes, memory in KiB, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Passes over the memory (`t`).
    pub time_cost: u32,
    /// Memory in KiB (`m`).
    pub memory_cost: u32,
    /// Lanes, run on as many threads (`p`).
    pub parallelism: u32,
}

/// RFC 9106 §3.1: the limits on each input.
const MAX_LANES: u32 = (1 << 24) - 1;
const MIN_SALT_LEN: usize = 8;
const MIN_OUT_LEN: usize = 4;
/// Version 0x13 and type 2 (Argon2id), as hashed into H0 (§3.2).
const VERSION: u32 = 0x13;
const TYPE_ID: u32 = 2;
/// Slices per pass (§3.4).
const SYNC_POINTS: usize = 4;
/// Bytes of one block.
const BLOCK_LEN: usize = WORDS * 8;
/// The x86-64 and common aarch64 transparent huge page size.
const HUGE_PAGE: usize = 2 << 20;

impl Argon2Params {
    /// Checks the parameters against RFC 9106 §3.1 for a salt of `salt_len`
    /// and a tag of `out_len` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter that is out of range.
    pub fn validate(&self, pwd_len: usize, salt_len: usize, out_len: usize) -> Result<()> {
        let p = self.parallelism;
        if p == 0 || p > MAX_LANES {
            return Err(Error::arg(format!(
                "Argon2id parallelism must be between 1 and {MAX_LANES}"
            )));
        }
        if u64::from(self.memory_cost) < 8 * u64::from(p) {
            return Err(Error::arg(format!(
                "Argon2id memory_cost must be at least 8 KiB per lane ({} KiB for parallelism {p})",
                8 * u64::from(p)
            )));
        }
        if self.time_cost == 0 {
            return Err(Error::arg("Argon2id time_cost must be at least 1"));
        }
        let fits = |n: usize| u32::try_from(n).is_ok();
        if salt_len < MIN_SALT_LEN || !fits(salt_len) {
            return Err(Error::arg(format!(
                "Argon2id salt must be between {MIN_SALT_LEN} and {} bytes",
                u32::MAX
            )));
        }
        if out_len < MIN_OUT_LEN || !fits(out_len) {
            return Err(Error::arg(format!(
                "Argon2id output length must be between {MIN_OUT_LEN} and {} bytes",
                u32::MAX
            )));
        }
        if !fits(pwd_len) {
            return Err(Error::arg(format!(
                "Argon2id password must be at most {} bytes",
                u32::MAX
            )));
        }
        Ok(())
    }
}

/// Argon2id (version 0x13) into `out`; lanes run on threads.
///
/// # Errors
/// [`Error::InvalidArgument`] for parameters RFC 9106 does not allow (see
/// [`Argon2Params::validate`]) or memory that cannot be allocated.
pub fn argon2id(password: &[u8], salt: &[u8], p: Argon2Params, out: &mut [u8]) -> Result<()> {
    argon2id_keyed(password, salt, &[], &[], p, out)
}

/// Argon2id with the optional secret key K and associated data X of §3.2
/// (the API above passes neither; the published vectors use both).
fn argon2id_keyed(
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
    p: Argon2Params,
    out: &mut [u8],
) -> Result<()> {
    p.validate(password.len(), salt.len(), out.len())?;
    if u32::try_from(secret.len().max(ad.len())).is_err() {
        return Err(Error::arg(
            "Argon2id secret and associated data must be at most 2^32 - 1 bytes",
        ));
    }
    let h0 = initial_hash(password, salt, secret, ad, &p, out.len());
    let g = Geometry::new(&p);
    let mem = Memory::new(g.blocks)?;
    let compress = select();

    // §3.2 steps 3-4: the first two blocks of every lane.
    let mut bytes = Zeroizing::new([0u8; BLOCK_LEN]);
    for lane in 0..g.lanes {
        for i in 0..2u32 {
            h_prime(
                &[&*h0, &i.to_le_bytes(), &(lane as u32).to_le_bytes()],
                &mut *bytes,
            );
            let mut block = Block::ZERO;
            for (w, b) in block.0.iter_mut().zip(bytes.chunks_exact(8)) {
                *w = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            }
            // SAFETY: index inside the allocation; nothing else runs yet.
            unsafe { mem.at(lane * g.lane_len + i as usize).write(block) };
            block.0.zeroize();
        }
    }

    // §3.2 steps 5-6: the passes, slice by slice, lanes in parallel.
    for pass in 0..g.passes {
        for slice in 0..SYNC_POINTS {
            let seg = |lane: usize| {
                // SAFETY: one task per lane for this (pass, slice), and the
                // slices run one after another: see `fill_segment`.
                unsafe { fill_segment(&mem, &g, compress, pass, slice, lane) }
            };
            if g.lanes == 1 {
                seg(0);
            } else {
                (0..g.lanes).into_par_iter().for_each(seg);
            }
        }
    }

    // §3.2 step 7: C = XOR of the last column; the tag is H'^T(C).
    let mut c = Zeroizing::new(Block::ZERO.0);
    for lane in 0..g.lanes {
        // SAFETY: every block has been written; no other thread runs.
        let last = unsafe { &*mem.at(lane * g.lane_len + g.lane_len - 1) };
        c.iter_mut().zip(&last.0).for_each(|(c, l)| *c ^= l);
    }
    for (b, w) in bytes.chunks_exact_mut(8).zip(c.iter()) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    h_prime(&[&*bytes], out);
    Ok(())
}

/// H0 (§3.2 step 1): BLAKE2b-512 over the parameters and inputs.
fn initial_hash(
    pwd: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
    p: &Argon2Params,
    out_len: usize,
) -> Zeroizing<[u8; 64]> {
    let le = |n: usize| (n as u32).to_le_bytes();
    let mut h0 = Zeroizing::new([0u8; 64]);
    blake2b(
        &[
            &p.parallelism.to_le_bytes(),
            &le(out_len),
            &p.memory_cost.to_le_bytes(),
            &p.time_cost.to_le_bytes(),
            &VERSION.to_le_bytes(),
            &TYPE_ID.to_le_bytes(),
            &le(pwd.len()),
            pwd,
            &le(salt.len()),
            salt,
            &le(secret.len()),
            secret,
            &le(ad.len()),
            ad,
        ],
        &mut *h0,
    );
    h0
}

/// BLAKE2b (RFC 7693) with an `out.len()`-byte digest (1..=64) of the
/// concatenation of `parts`.
fn blake2b(parts: &[&[u8]], out: &mut [u8]) {
    let mut core = Blake2bVarCore::new(out.len()).expect("BLAKE2b digests are 1 to 64 bytes");
    let mut buf = LazyBuffer::default();
    for part in parts {
        buf.digest_blocks(part, |blocks| core.update_blocks(blocks));
    }
    let mut full = Default::default();
    core.finalize_variable_core(&mut buf, &mut full);
    out.copy_from_slice(&full[..out.len()]);
    full.zeroize();
}

/// The variable-length hash H' (§3.3) of the concatenation of `parts`.
fn h_prime(parts: &[&[u8]], out: &mut [u8]) {
    let len = (out.len() as u32).to_le_bytes();
    let mut input: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    input.push(&len);
    input.extend_from_slice(parts);
    if out.len() <= 64 {
        blake2b(&input, out);
        return;
    }
    // V_1 = H^64(T || A); V_i = H^64(V_{i-1}); the output is the first 32
    // bytes of V_1..V_r, then V_{r+1} = H^(T-32r)(V_r) whole, r = ceil(T/32) - 2.
    let (mut v, mut next) = (Zeroizing::new([0u8; 64]), Zeroizing::new([0u8; 64]));
    blake2b(&input, &mut *v);
    let mut rest = out;
    while rest.len() > 64 {
        let (head, tail) = rest.split_at_mut(32);
        head.copy_from_slice(&v[..32]);
        rest = tail;
        let n = rest.len().min(64);
        blake2b(&[&*v], &mut next[..n]);
        core::mem::swap(&mut v, &mut next);
    }
    rest.copy_from_slice(&v[..rest.len()]);
}

/// The shape of the memory (§3.2 step 2).
struct Geometry {
    lanes: usize,
    /// Blocks per lane, `q`.
    lane_len: usize,
    /// Blocks per segment, `q / 4`.
    seg_len: usize,
    /// All blocks, `m' = 4p * floor(m / 4p)`.
    blocks: usize,
    passes: u32,
}

impl Geometry {
    fn new(p: &Argon2Params) -> Self {
        let lanes = p.parallelism as usize;
        let seg_len = p.memory_cost as usize / (SYNC_POINTS * lanes);
        let lane_len = seg_len * SYNC_POINTS;
        Geometry {
            lanes,
            lane_len,
            seg_len,
            blocks: lane_len * lanes,
            passes: p.time_cost,
        }
    }
}

/// The blocks, shared by the lane threads through a raw pointer and wiped
/// before they are freed.
struct Memory {
    ptr: *mut Block,
    len: usize,
}

// SAFETY: the blocks are plain data; which thread touches which block is
// governed by Argon2's indexing rules (see `fill_segment`).
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Memory {
    /// Uninitialised memory for `len` blocks: Argon2 writes every block
    /// before reading it, so zero-filling would only cost time.
    fn new(len: usize) -> Result<Self> {
        let layout = Self::layout(len)?;
        // SAFETY: the layout is non-zero (at least 8 blocks, checked by validate).
        let ptr = unsafe { std::alloc::alloc(layout) }.cast::<Block>();
        if ptr.is_null() {
            return Err(Self::too_big());
        }
        #[cfg(target_os = "linux")]
        if layout.align() == HUGE_PAGE {
            // SAFETY: advice on memory this call owns; failure (no
            // transparent huge pages) leaves ordinary pages, so it is ignored.
            unsafe { libc::madvise(ptr.cast(), layout.size(), libc::MADV_HUGEPAGE) };
        }
        Ok(Memory { ptr, len })
    }

    /// Blocks are cache-line aligned; memory of a huge page or more is
    /// huge-page aligned, so that the kernel can back it with 2 MiB pages:
    /// 512 times fewer page faults and TLB misses on the random reads of §3.4.
    fn layout(len: usize) -> Result<std::alloc::Layout> {
        let size = len.checked_mul(BLOCK_LEN).ok_or_else(Self::too_big)?;
        let align = if size >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        std::alloc::Layout::from_size_align(size, align).map_err(|_| Self::too_big())
    }

    fn too_big() -> Error {
        Error::arg("Argon2id memory_cost is more than this machine can allocate")
    }

    /// A pointer to block `i`.
    ///
    /// # Safety
    /// `i < len`.
    unsafe fn at(&self, i: usize) -> *mut Block {
        debug_assert!(i < self.len);
        // SAFETY: in bounds, by the caller's promise.
        unsafe { self.ptr.add(i) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let layout = Self::layout(self.len).expect("checked in new");
        // SAFETY: `ptr` came from `alloc` with this layout; the wipe covers
        // the whole allocation (plain bytes, written or not) and
        // `black_box` keeps the compiler from dropping it as a dead store.
        unsafe {
            core::ptr::write_bytes(self.ptr, 0, self.len);
            std::hint::black_box(self.ptr);
            std::alloc::dealloc(self.ptr.cast(), layout);
        }
    }
}

/// Fills segment (`pass`, `slice`) of `lane` (§3.4).
///
/// # Safety
/// At most one call per lane runs at a time, and all calls running at once
/// share (`pass`, `slice`). Then this call writes only its own segment, and
/// reads only its own lane's earlier blocks and other lanes' blocks outside
/// the current slice (the reference set of §3.4.1.2), which no call writes.
unsafe fn fill_segment(
    mem: &Memory,
    g: &Geometry,
    compress: CompressFn,
    pass: u32,
    slice: usize,
    lane: usize,
) {
    // §3.4.1.3: Argon2id addresses data-independently in the first half of
    // the first pass, from blocks G(0, G(0, Z)) with a counter in Z.
    let independent = pass == 0 && slice < SYNC_POINTS / 2;
    let mut z = Block::ZERO;
    let mut addresses = Block::ZERO;
    if independent {
        z.0[..6].copy_from_slice(&[
            u64::from(pass),
            lane as u64,
            slice as u64,
            g.blocks as u64,
            u64::from(g.passes),
            u64::from(TYPE_ID),
        ]);
    }
    let next_addresses = |z: &mut Block, addresses: &mut Block| {
        z.0[6] += 1;
        let mut tmp = Block::ZERO;
        // SAFETY: distinct local blocks.
        unsafe {
            compress(&Block::ZERO, z, &mut tmp, false);
            compress(&Block::ZERO, &tmp, addresses, false);
        }
    };

    // The first two blocks of each lane are already there.
    let first = if pass == 0 && slice == 0 { 2 } else { 0 };
    if independent && first != 0 {
        next_addresses(&mut z, &mut addresses);
    }
    let lane_start = lane * g.lane_len;
    for index in first..g.seg_len {
        let cur = slice * g.seg_len + index;
        let prev = if cur == 0 { g.lane_len - 1 } else { cur - 1 };
        let (cur, prev) = (lane_start + cur, lane_start + prev);

        let rand = if independent {
            if index % WORDS == 0 {
                next_addresses(&mut z, &mut addresses);
            }
            addresses.0[index % WORDS]
        } else {
            // SAFETY: the previous block of this lane is written.
            unsafe { (*mem.at(prev)).0[0] }
        };
        let (j1, j2) = (rand & 0xffff_ffff, rand >> 32);

        // §3.4.1.1: the reference lane; the first slice stays in its lane.
        let ref_lane = if pass == 0 && slice == 0 {
            lane
        } else {
            (j2 % g.lanes as u64) as usize
        };
        // §3.4.1.2: the reference set is every finished block of the
        // reference lane outside the current slice (and, in this lane, the
        // blocks of this segment before the previous one).
        let same = ref_lane == lane;
        let finished = if pass == 0 {
            slice * g.seg_len
        } else {
            g.lane_len - g.seg_len
        };
        let area = if same {
            finished + index - 1
        } else {
            finished - usize::from(index == 0)
        };
        // The non-uniform mapping of J1 onto the set, counted back from its end.
        let x = (j1 * j1) >> 32;
        let y = (area as u64 * x) >> 32;
        let relative = area - 1 - y as usize;
        let start = if pass != 0 && slice != SYNC_POINTS - 1 {
            (slice + 1) * g.seg_len
        } else {
            0
        };
        let ref_index = ref_lane * g.lane_len + (start + relative) % g.lane_len;

        // SAFETY: `prev` and `ref_index` are written blocks that no thread
        // writes now, `cur` is this segment's and differs from both (the
        // reference set excludes the current and previous blocks).
        unsafe { compress(mem.at(prev), mem.at(ref_index), mem.at(cur), pass > 0) };
    }
    addresses.0.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: u32, m: u32, p: u32) -> Argon2Params {
        Argon2Params {
            time_cost: t,
            memory_cost: m,
            parallelism: p,
        }
    }

    /// RFC 9106 §5.3: Argon2id v0x13, t = 3, m = 32 KiB, p = 4, with a
    /// secret key and associated data.
    #[test]
    fn rfc9106_vector() {
        let mut out = [0u8; 32];
        let p = params(3, 32, 4);
        argon2id_keyed(&[1; 32], &[2; 16], &[3; 8], &[4; 12], p, &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    /// Against the RustCrypto implementation over a spread of parameters,
    /// including lanes, odd memory sizes, long tags (H' in several pieces)
    /// and segments longer than one address block.
    #[test]
    fn matches_peer() {
        let cases = [
            (1, 8, 1, 4),
            (1, 9, 1, 32),
            (2, 64, 2, 64),
            (1, 100, 3, 65),
            (3, 256, 4, 100),
            (2, 1024, 1, 1024),
            (1, 2048, 2, 33),
            (4, 4096, 8, 32),
        ];
        for (i, (t, m, p, len)) in cases.into_iter().enumerate() {
            let pwd: Vec<u8> = (0..i * 7).map(|b| b as u8).collect();
            let salt = [i as u8 + 1; 16];
            let mut ours = vec![0u8; len];
            argon2id(&pwd, &salt, params(t, m, p), &mut ours).unwrap();
            let peer = ::argon2::Argon2::new(
                ::argon2::Algorithm::Argon2id,
                ::argon2::Version::V0x13,
                ::argon2::Params::new(m, t, p, Some(len)).unwrap(),
            );
            let mut theirs = vec![0u8; len];
            peer.hash_password_into(&pwd, &salt, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "t={t} m={m} p={p} len={len}");
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let bad = |p: Argon2Params, salt: &[u8], len: usize| {
            let mut out = vec![0u8; len];
            match argon2id(b"pw", salt, p, &mut out) {
                Err(Error::InvalidArgument(msg)) => msg,
                other => panic!("expected InvalidArgument, got {other:?}"),
            }
        };
        let salt = [0u8; 16];
        assert!(bad(params(1, 64, 0), &salt, 32).contains("parallelism"));
        assert!(bad(params(1, 15, 2), &salt, 32).contains("memory_cost"));
        assert!(bad(params(0, 64, 1), &salt, 32).contains("time_cost"));
        assert!(bad(params(1, 64, 1), &salt[..7], 32).contains("salt"));
        assert!(bad(params(1, 64, 1), &salt, 3).contains("output length"));
        let mut out = [0u8; 4];
        argon2id(b"", &salt[..8], params(1, 16, 2), &mut out).unwrap();
    }
}
