//! PyO3 bindings of portal-crypto, built as `portal_core._rust`.
//!
//! Argument extraction, GIL release, buffer handling and error mapping only:
//! no cryptography lives here.
//!
//! `unsafe` code is denied except in `buffers`, which reads Python buffers
//! in place and fills new `bytes` objects without zero-filling them first:
//! PyO3's safe views of a buffer are cells, not `&[u8]`, and its safe
//! `bytes` constructor zero-fills, which costs a full pass over large outputs.

use pyo3::prelude::*;

mod aead;
#[allow(unsafe_code)] // zero-copy buffers: see the crate documentation
mod buffers;
mod cpu;
mod envelope;
mod errors;
mod kdf;
mod shares;

/// Adds `child` to `parent` as attribute `name` (imported as
/// `from portal_core._rust import name`).
fn add_submodule(
    parent: &Bound<'_, PyModule>,
    name: &str,
    fill: fn(&Bound<'_, PyModule>) -> PyResult<()>,
) -> PyResult<()> {
    let child = PyModule::new(parent.py(), name)?;
    fill(&child)?;
    parent.add_submodule(&child)
}

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cpu::cpu_features, m)?)?;
    add_submodule(m, "aead", aead::register)?;
    add_submodule(m, "kdf", kdf::register)?;
    add_submodule(m, "envelope", envelope::register)?;
    add_submodule(m, "shares", shares::register)?;
    Ok(())
}
