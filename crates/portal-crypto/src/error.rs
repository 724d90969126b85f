//! The crate's one error type.
//!
//! Caller misuse (wrong lengths, bad parameters) is kept apart from bad
//! untrusted input (a failed tag, a malformed envelope). No variant ever
//! carries key material: messages name what was wrong, never the value.

use thiserror::Error as ThisError;

/// Every failure of portal-crypto.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// Authentication failed: wrong key, wrong nonce, wrong associated data
    /// or tampered ciphertext. Deliberately carries nothing.
    #[error("authentication failed")]
    InvalidTag,
    /// A sealed envelope that cannot be parsed or whose version/suite is unknown.
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    /// A share, or a share-protocol message, failed verification: malformed,
    /// truncated, wrong curve, non-canonical scalar, a public share that does
    /// not match, a commitment that does not open, a proof that fails.
    /// Messages name the check, never a scalar.
    #[error("invalid share: {0}")]
    InvalidShare(String),
    /// An argument of the wrong length or value (the caller's mistake).
    #[error("{0}")]
    InvalidArgument(String),
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    pub(crate) fn arg(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

/// The failure of a batch call (`envelope::open_many`, `envelope::reseal_many`):
/// the first failing item and why it failed.
///
/// A failure that concerns the whole call rather than one item (a wrong key,
/// mismatched counts) fails every item, so it is reported at index 0.
/// `Display` names the item and the error, never any input bytes.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[error("item {index}: {error}")]
pub struct BatchError {
    /// The position of the failing item in the batch.
    pub index: usize,
    /// Why it failed.
    #[source]
    pub error: Error,
}

impl BatchError {
    /// The failure of item `index`.
    pub fn new(index: usize, error: Error) -> Self {
        BatchError { index, error }
    }

    /// The same failure, with its index moved by `base` (a sub-batch's item
    /// numbers back into the whole batch's).
    #[must_use]
    pub fn offset(self, base: usize) -> Self {
        BatchError {
            index: base + self.index,
            error: self.error,
        }
    }
}
