use pyo3::prelude::*;
use pyo3::types::PyDict;

use portal_crypto::cpu;

/// The CPU features the crypto core uses, and the AES-GCM path chosen.
#[pyfunction]
pub fn cpu_features(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let f = cpu::detect();
    let d = PyDict::new(py);
    d.set_item("arch", f.arch)?;
    d.set_item("aes", f.aes)?;
    // Same bit, named as each architecture names it.
    d.set_item(
        if f.arch == "aarch64" {
            "pmull"
        } else {
            "pclmulqdq"
        },
        f.clmul,
    )?;
    d.set_item("avx2", f.avx2)?;
    d.set_item("avx512f", f.avx512f)?;
    d.set_item("vaes", f.vaes)?;
    d.set_item("sha", f.sha)?;
    d.set_item("backend", cpu::gcm_backend(&f))?;
    Ok(d)
}
