//! `portal_core._rust.kdf`: HKDF-SHA256, PBKDF2-HMAC-SHA256, Argon2id.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use portal_crypto::kdf;

use crate::buffers::{input, integer_arg, new_bytes, optional_input};
use crate::errors::to_py;

/// An integer argument of at least `min` that fits u32: TypeError for a
/// non-integer, ValueError for one out of range (never OverflowError).
fn integer(ob: &Bound<'_, PyAny>, what: &str, min: u32) -> PyResult<u32> {
    integer_arg(ob, what)?
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v >= min)
        .ok_or_else(|| {
            PyValueError::new_err(format!("{what} must be between {min} and {}", u32::MAX))
        })
}

/// A positive integer argument.
fn positive(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<u32> {
    integer(ob, what, 1)
}

/// HKDF-SHA256 (RFC 5869); `salt=None` means HashLen zero bytes.
#[pyfunction]
#[pyo3(signature = (ikm, *, salt=None, info=None, length=None))]
fn hkdf_sha256<'py>(
    py: Python<'py>,
    ikm: &Bound<'py, PyAny>,
    salt: Option<&Bound<'py, PyAny>>,
    info: Option<&Bound<'py, PyAny>>,
    length: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let ikm = input(ikm, "ikm")?;
    let salt = optional_input(salt, "salt")?;
    let info = optional_input(info, "info")?;
    let length = length.map_or(Ok(32), |l| positive(l, "length"))? as usize;
    let (s, i) = (
        salt.as_ref().map_or(&[][..], |s| s.as_slice()),
        info.as_ref().map_or(&[][..], |i| i.as_slice()),
    );
    new_bytes(py, length.min(kdf::HKDF_MAX_LEN + 1), |out| {
        kdf::hkdf_sha256(ikm.as_slice(), s, i, out).map_err(to_py)
    })
}

/// PBKDF2-HMAC-SHA256 (RFC 8018), GIL released.
#[pyfunction]
#[pyo3(signature = (password, salt, iterations, length=None))]
fn pbkdf2_hmac_sha256<'py>(
    py: Python<'py>,
    password: &Bound<'py, PyAny>,
    salt: &Bound<'py, PyAny>,
    iterations: &Bound<'py, PyAny>,
    length: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (pw, salt) = (input(password, "password")?, input(salt, "salt")?);
    let iterations = positive(iterations, "iterations")?;
    let length = length.map_or(Ok(32), |l| positive(l, "length"))? as usize;
    let (p, s) = (pw.as_slice(), salt.as_slice());
    new_bytes(py, length, |out| {
        py.detach(|| kdf::pbkdf2_hmac_sha256(p, s, iterations, out))
            .map_err(to_py)
    })
}

/// Argon2id v1.3 (RFC 9106), memory in KiB; lanes on threads, GIL released.
#[pyfunction]
#[pyo3(signature = (password, salt, *, time_cost, memory_cost, parallelism, length=None))]
#[allow(clippy::too_many_arguments)]
fn argon2id<'py>(
    py: Python<'py>,
    password: &Bound<'py, PyAny>,
    salt: &Bound<'py, PyAny>,
    time_cost: &Bound<'py, PyAny>,
    memory_cost: &Bound<'py, PyAny>,
    parallelism: &Bound<'py, PyAny>,
    length: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (pw, salt) = (input(password, "password")?, input(salt, "salt")?);
    // Zero passes through, for the core's message on what RFC 9106 allows.
    let params = kdf::Argon2Params {
        time_cost: integer(time_cost, "time_cost", 0)?,
        memory_cost: integer(memory_cost, "memory_cost", 0)?,
        parallelism: integer(parallelism, "parallelism", 0)?,
    };
    let length = length.map_or(Ok(32), |l| integer(l, "length", 0))? as usize;
    let (p, s) = (pw.as_slice(), salt.as_slice());
    // Checked before the output is allocated.
    params.validate(p.len(), s.len(), length).map_err(to_py)?;
    new_bytes(py, length, |out| {
        py.detach(|| kdf::argon2id(p, s, params, out))
            .map_err(to_py)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hkdf_sha256, m)?)?;
    m.add_function(wrap_pyfunction!(pbkdf2_hmac_sha256, m)?)?;
    m.add_function(wrap_pyfunction!(argon2id, m)?)?;
    Ok(())
}
