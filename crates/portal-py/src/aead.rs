//! `portal_core._rust.aead`: AESGCM, AESGCMSIV, ChaCha20Poly1305 and
//! XChaCha20Poly1305, call-compatible with `cryptography`'s AEAD classes.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use portal_crypto::aead::{Aead, Algorithm, TAG_LEN};
use portal_crypto::rand;

use crate::buffers::{
    detach_from, input, integer_arg, maybe_detach, new_bytes, optional_input, Output,
};
use crate::errors::to_py;
use zeroize::Zeroizing;

fn new_aead(alg: Algorithm, key: &Bound<'_, PyAny>) -> PyResult<Aead> {
    let key = input(key, "key")?;
    Aead::new(alg, key.as_slice()).map_err(to_py)
}

fn generate_key(
    py: Python<'_>,
    alg: Algorithm,
    bit_length: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyBytes>> {
    let bytes = match bit_length {
        // The ChaCha classes take no bit length: their one key size.
        None => 32,
        Some(b) => {
            // Any integer is a bit length, merely a wrong one when out of range
            // (-128, 2**70); only non-integers (None included) are TypeErrors.
            let bits = integer_arg(b, "bit_length")?.and_then(|b| usize::try_from(b).ok());
            match bits.filter(|&b| b % 8 == 0 && alg.key_lens().contains(&(b / 8))) {
                Some(bits) => bits / 8,
                None => return Err(PyValueError::new_err("bit_length must be 128, 192, or 256")),
            }
        }
    };
    let key = new_bytes(py, bytes, |b| rand::fill(b).map_err(to_py))?;
    Ok(key.unbind())
}

fn encrypt<'py>(
    aead: &Aead,
    py: Python<'py>,
    nonce: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    aad: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (nonce, data) = (input(nonce, "nonce")?, input(data, "data")?);
    let aad = optional_input(aad, "associated_data")?;
    let (n, d) = (nonce.as_slice(), data.as_slice());
    let a = aad.as_ref().map_or(&[][..], |a| a.as_slice());
    aead.algorithm().check_nonce_len(n.len()).map_err(to_py)?;
    new_bytes(py, d.len() + TAG_LEN, |out| {
        maybe_detach(py, d.len(), || aead.seal_into(n, d, a, out)).map_err(to_py)
    })
}

fn decrypt<'py>(
    aead: &Aead,
    py: Python<'py>,
    nonce: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    aad: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (nonce, data) = (input(nonce, "nonce")?, input(data, "data")?);
    let aad = optional_input(aad, "associated_data")?;
    let (n, d) = (nonce.as_slice(), data.as_slice());
    let a = aad.as_ref().map_or(&[][..], |a| a.as_slice());
    aead.algorithm().check_nonce_len(n.len()).map_err(to_py)?;
    let pt_len = Aead::plaintext_len(d.len()).map_err(to_py)?;
    new_bytes(py, pt_len, |out| {
        maybe_detach(py, d.len(), || aead.open_into(n, d, a, out)).map_err(to_py)
    })
}

/// `encrypt_into` / `decrypt_into`: `seal` selects the direction.
fn into_buffer(
    aead: &Aead,
    py: Python<'_>,
    seal: bool,
    args: [&Bound<'_, PyAny>; 3],
    aad: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    let [nonce, data, buf] = args;
    let (nonce, data) = (input(nonce, "nonce")?, input(data, "data")?);
    let aad = optional_input(aad, "associated_data")?;
    let out = Output::extract(buf, "buf")?;
    // Every input sharing memory with `buf` is copied first, not only `data`:
    // the output is written while the nonce and AAD may still be read (GCM-SIV
    // authenticates the AAD after decrypting into `buf`), and a shared slice
    // may not alias the mutable one.
    // The copies may hold plaintext: they are wiped when dropped.
    let (mut n_copy, mut d_copy, mut a_copy) = <[Zeroizing<Vec<u8>>; 3]>::default().into();
    let n = detach_from(nonce.as_slice(), &out, &mut n_copy);
    let d = detach_from(data.as_slice(), &out, &mut d_copy);
    let a = detach_from(
        aad.as_ref().map_or(&[][..], |a| a.as_slice()),
        &out,
        &mut a_copy,
    );
    aead.algorithm().check_nonce_len(n.len()).map_err(to_py)?;
    let want = if seal {
        d.len() + TAG_LEN
    } else {
        Aead::plaintext_len(d.len()).map_err(to_py)?
    };
    if out.len() != want {
        return Err(PyValueError::new_err(format!(
            "buffer must be {want} bytes"
        )));
    }
    let dst = out.as_mut_slice();
    maybe_detach(py, d.len(), || {
        if seal {
            aead.seal_into(n, d, a, dst)
        } else {
            aead.open_into(n, d, a, dst)
        }
    })
    .map_err(to_py)?;
    Ok(want)
}

macro_rules! aead_class {
    ($rust:ident, $py:literal, $alg:expr, $doc:literal, gen = $($bits:ident)?) => {
        #[doc = $doc]
        #[pyclass(name = $py, module = "portal_core.aead", frozen)]
        pub struct $rust(Aead);

        #[pymethods]
        impl $rust {
            #[new]
            fn new(key: &Bound<'_, PyAny>) -> PyResult<Self> {
                new_aead($alg, key).map(Self)
            }

            #[staticmethod]
            #[pyo3(signature = ($($bits)?))]
            fn generate_key(py: Python<'_>, $($bits: &Bound<'_, PyAny>)?) -> PyResult<Py<PyBytes>> {
                #[allow(unused_mut, unused_assignments)]
                let mut bits = None;
                $(bits = Some($bits);)?
                generate_key(py, $alg, bits)
            }

            #[pyo3(signature = (nonce, data, associated_data))]
            fn encrypt<'py>(
                &self,
                py: Python<'py>,
                nonce: &Bound<'py, PyAny>,
                data: &Bound<'py, PyAny>,
                associated_data: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyBytes>> {
                encrypt(&self.0, py, nonce, data, associated_data)
            }

            #[pyo3(signature = (nonce, data, associated_data))]
            fn decrypt<'py>(
                &self,
                py: Python<'py>,
                nonce: &Bound<'py, PyAny>,
                data: &Bound<'py, PyAny>,
                associated_data: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyBytes>> {
                decrypt(&self.0, py, nonce, data, associated_data)
            }

            #[pyo3(signature = (nonce, data, associated_data, buf))]
            fn encrypt_into(
                &self,
                py: Python<'_>,
                nonce: &Bound<'_, PyAny>,
                data: &Bound<'_, PyAny>,
                associated_data: Option<&Bound<'_, PyAny>>,
                buf: &Bound<'_, PyAny>,
            ) -> PyResult<usize> {
                into_buffer(&self.0, py, true, [nonce, data, buf], associated_data)
            }

            #[pyo3(signature = (nonce, data, associated_data, buf))]
            fn decrypt_into(
                &self,
                py: Python<'_>,
                nonce: &Bound<'_, PyAny>,
                data: &Bound<'_, PyAny>,
                associated_data: Option<&Bound<'_, PyAny>>,
                buf: &Bound<'_, PyAny>,
            ) -> PyResult<usize> {
                into_buffer(&self.0, py, false, [nonce, data, buf], associated_data)
            }

            fn __repr__(&self) -> &'static str {
                concat!("<portal_core.aead.", $py, " (key hidden)>")
            }
        }
    };
}

aead_class!(
    AesGcm,
    "AESGCM",
    Algorithm::AesGcm,
    "AES-GCM (SP 800-38D) with a 128/192/256-bit key; nonces of 8 to 128 bytes.",
    gen = bit_length
);
aead_class!(
    AesGcmSiv,
    "AESGCMSIV",
    Algorithm::AesGcmSiv,
    "AES-GCM-SIV (RFC 8452) with a 128/192/256-bit key and a 12-byte nonce.",
    gen = bit_length
);
aead_class!(ChaCha20Poly1305, "ChaCha20Poly1305", Algorithm::ChaCha20Poly1305,
    "ChaCha20-Poly1305 (RFC 8439): 32-byte key, 12-byte nonce.",
    gen = );
aead_class!(XChaCha20Poly1305, "XChaCha20Poly1305", Algorithm::XChaCha20Poly1305,
    "XChaCha20-Poly1305: 32-byte key, 24-byte nonce (safe to draw at random).",
    gen = );

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AesGcm>()?;
    m.add_class::<AesGcmSiv>()?;
    m.add_class::<ChaCha20Poly1305>()?;
    m.add_class::<XChaCha20Poly1305>()?;
    Ok(())
}
