//! portal-crypto: the cryptography of portal-core, on the CPU's crypto instructions.
//!
//! Pure Rust, no Python: the `portal-py` crate binds it as `portal_core._rust`.
//! One module per primitive, mirrored at every layer of the project.

pub mod aead;
pub mod cpu;
pub mod envelope;
mod error;
pub mod kdf;
pub mod rand;
pub mod shares;

pub use error::{Error, Result};
