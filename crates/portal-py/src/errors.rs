//! One mapping from portal-crypto's error to Python exceptions.
//!
//! The exception classes are Python classes in `portal_core.exceptions`,
//! imported here, so `except portal_core.exceptions.InvalidTag` catches
//! what Rust raises.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use portal_crypto::Error;

pyo3::import_exception!(portal_core.exceptions, InvalidTag);
pyo3::import_exception!(portal_core.exceptions, InvalidEnvelope);
pyo3::import_exception!(portal_core.exceptions, InvalidShare);

/// Converts a core error; authentication failures carry no message.
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidTag => InvalidTag::new_err(()),
        Error::InvalidEnvelope(msg) => InvalidEnvelope::new_err(msg),
        Error::InvalidShare(msg) => InvalidShare::new_err(msg),
        Error::InvalidArgument(msg) => PyValueError::new_err(msg),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
