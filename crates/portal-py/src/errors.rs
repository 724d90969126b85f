//! The one mapping from portal-crypto's errors to Python exceptions.
//!
//! The exception classes are Python classes in `portal_core.exceptions`,
//! imported here, so `except portal_core.exceptions.InvalidTag` catches
//! what Rust raises (and, as that module makes `InvalidTag` a subclass of
//! `cryptography.exceptions.InvalidTag`, so does `except` on that class).
//!
//! Both error types go through [`to_py`]: a [`portal_crypto::Error`] maps to
//! its exception as is; a [`BatchError`] maps to the same exception with a
//! message naming the failing item (an index is not secret).

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use portal_crypto::{BatchError, Error};

pyo3::import_exception!(portal_core.exceptions, InvalidTag);
pyo3::import_exception!(portal_core.exceptions, InvalidEnvelope);
pyo3::import_exception!(portal_core.exceptions, InvalidShare);

/// A core failure that becomes a Python exception.
pub trait IntoPyErr {
    /// The exception to raise.
    fn into_py_err(self) -> PyErr;
}

impl IntoPyErr for Error {
    fn into_py_err(self) -> PyErr {
        raise(self, None)
    }
}

impl IntoPyErr for BatchError {
    fn into_py_err(self) -> PyErr {
        raise(self.error, Some(self.index))
    }
}

/// Converts a core error, for `.map_err(to_py)`.
pub fn to_py(e: impl IntoPyErr) -> PyErr {
    e.into_py_err()
}

/// The exception of `e`, its message prefixed with `item N: ` when it is a
/// batch item's. An authentication failure carries no message at all, or
/// only the item's index.
fn raise(e: Error, item: Option<usize>) -> PyErr {
    let msg = |m: String| match item {
        Some(i) => format!("item {i}: {m}"),
        None => m,
    };
    match e {
        Error::InvalidTag => match item {
            Some(i) => InvalidTag::new_err(format!("item {i} failed authentication")),
            None => InvalidTag::new_err(()),
        },
        Error::InvalidEnvelope(m) => InvalidEnvelope::new_err(msg(m)),
        Error::InvalidShare(m) => InvalidShare::new_err(msg(m)),
        Error::InvalidArgument(m) => PyValueError::new_err(msg(m)),
        other => PyRuntimeError::new_err(msg(other.to_string())),
    }
}
