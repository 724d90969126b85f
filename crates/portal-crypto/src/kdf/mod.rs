//! Key derivation: HKDF-SHA256 (RFC 5869), PBKDF2-HMAC-SHA256 (RFC 8018)
//! and Argon2id (RFC 9106), one module each.
//!
//! All three are built here on two hash primitives, SHA-256's compression
//! function (`sha2`, which runs on SHA-NI or the ARMv8 SHA-2 instructions)
//! and BLAKE2b (`blake2`). Owning the loops is what makes them fast: HMAC
//! keys are absorbed once, the PBKDF2 iteration runs two compressions in
//! registers, and Argon2's block function is written for AVX2 with its lanes
//! on threads.

// Argon2's lanes run on threads that share one block memory: each writes its
// own segment while reading blocks the others finished, an access pattern the
// borrow checker cannot express, so it goes through raw pointers.
#[allow(unsafe_code)]
mod argon2;
// The AVX2 block function: intrinsics and `target_feature` functions.
#[allow(unsafe_code)]
mod argon2_block;
mod hkdf;
mod hmac;
mod pbkdf2;
// SHA-256 on SHA-NI: intrinsics and `target_feature` functions, behind a
// token that proves the CPU has them.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod sha_ni;

pub use argon2::{argon2id, Argon2Params};
pub use hkdf::{hkdf_sha256, HKDF_MAX_LEN};
pub use pbkdf2::pbkdf2_hmac_sha256;

/// SHA-256 output length, the HKDF/PBKDF2 block.
pub const SHA256_LEN: usize = 32;
