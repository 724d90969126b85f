//! portal-crypto: the cryptography of portal-core, on the CPU's crypto instructions.
//!
//! Pure Rust, no Python: the `portal-py` crate binds it as `portal_core._rust`.
//! One module per primitive, mirrored at every layer of the project.
//!
//! `unsafe` code is denied here except in the modules that cannot do without
//! it, each marked `#[allow(unsafe_code)]` with the reason: `awslc` (every
//! call into AWS-LC), and in `kdf` the SIMD code (`sha_ni`, `argon2_block`)
//! and Argon2's shared block memory (`argon2`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod aead;
#[allow(unsafe_code)] // the calls into AWS-LC (C): see the module's documentation
mod awslc;
mod codec;
pub mod cpu;
pub mod envelope;
mod error;
pub mod kdf;
pub mod rand;
pub mod shares;

pub use error::{BatchError, Error, Result};
