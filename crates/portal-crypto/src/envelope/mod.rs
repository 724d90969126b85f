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
//!
//! The code is split by job: [`format`](self) (`format.rs`: the layout,
//! parsing and validation), `data_key.rs` (suite 1's key derivation and the
//! sealing and opening of one item), `seal.rs` (one message), `batch.rs`
//! (many messages on all cores) and `reseal.rs` (moving envelopes to a new
//! key inside the core).

mod batch;
mod data_key;
mod format;
mod reseal;
mod seal;
#[cfg(test)]
mod tests;

pub use batch::{open_many, pick, seal_many};
pub use data_key::check_key;
pub use format::{check_key_id, parse, plaintext_len, sealed_len, suite_name, Context, Header};
pub use reseal::{reseal_into, reseal_many, resealed_len};
pub use seal::{open, open_into, seal, seal_into};

/// The two magic bytes that start every envelope.
pub const MAGIC: &[u8; 2] = b"PC";
/// The only format version so far.
pub const VERSION: u8 = 1;
/// Suite 1: HKDF-SHA256 key commitment + AES-256-GCM.
pub const SUITE_AES256GCM_HKDF_COMMIT: u8 = 1;
/// Envelope keys are 256-bit.
pub const KEY_LEN: usize = 32;
/// Length of the random salt each data key is derived with.
pub const SALT_LEN: usize = 32;
/// Length of the key commitment stored in the header.
pub const COMMIT_LEN: usize = 32;
/// HKDF info for suite 1.
pub const INFO: &[u8] = b"portal-core envelope v1 suite 1: data key || commitment";
/// Items of one batch that share a salt (and so a data key and commitment).
pub const CHUNK: usize = 512;
