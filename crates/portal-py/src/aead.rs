//! `portal_core._rust.aead`: AESGCM, AESGCMSIV, ChaCha20Poly1305,
//! XChaCha20Poly1305, AESCCM, AESOCB3 and AESSIV, call-compatible with
//! `cryptography`'s AEAD classes.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use portal_crypto::aead::{Aead, AesSiv, Algorithm, SIV_LEN, TAG_LEN};
use portal_crypto::rand;

use crate::buffers::{
    detach_from, input, integer_arg, maybe_detach, new_bytes, optional_input, Input, Output,
};
use crate::errors::to_py;
use zeroize::Zeroizing;

/// Keys `alg`; `tag_length` (AESCCM only) is `None` or an integer, 16 by default.
fn new_aead(
    alg: Algorithm,
    key: &Bound<'_, PyAny>,
    tag_length: Option<&Bound<'_, PyAny>>,
) -> PyResult<Aead> {
    let key = input(key, "key")?;
    let tag_len = match tag_length.filter(|t| !t.is_none()) {
        None => TAG_LEN,
        // An integer out of range is merely a wrong length (ValueError below).
        Some(t) => integer_arg(t, "tag_length")?
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
    };
    Aead::with_tag_len(alg, key.as_slice(), tag_len).map_err(to_py)
}

/// A random key of `bit_length` bits, one of `key_lens` (bytes), or of the
/// one length when the class takes no bit length (`None`).
fn generate_key(
    py: Python<'_>,
    key_lens: &[usize],
    bit_length: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyBytes>> {
    let bytes = match bit_length {
        // The ChaCha classes take no bit length: their one key size.
        None => 32,
        Some(b) => {
            // Any integer is a bit length, merely a wrong one when out of range
            // (-128, 2**70); only non-integers (None included) are TypeErrors.
            let bits = integer_arg(b, "bit_length")?.and_then(|b| usize::try_from(b).ok());
            match bits.filter(|&b| b % 8 == 0 && key_lens.contains(&(b / 8))) {
                Some(bits) => bits / 8,
                None => {
                    // cryptography's wording: "bit_length must be 128, 192, or 256".
                    let bits: Vec<String> = key_lens.iter().map(|n| (n * 8).to_string()).collect();
                    let listed = match bits.split_last() {
                        Some((last, rest)) if !rest.is_empty() => {
                            format!("{}, or {last}", rest.join(", "))
                        }
                        _ => bits.concat(),
                    };
                    return Err(PyValueError::new_err(format!(
                        "bit_length must be {listed}"
                    )));
                }
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
    new_bytes(py, d.len() + aead.tag_len(), |out| {
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
    let pt_len = aead.plaintext_len(d.len()).map_err(to_py)?;
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
        d.len() + aead.tag_len()
    } else {
        aead.plaintext_len(d.len()).map_err(to_py)?
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
        aead_class!(@class $rust, $py, $alg, $doc, gen = $($bits)?, new = {
            #[new]
            fn new(key: &Bound<'_, PyAny>) -> PyResult<Self> {
                new_aead($alg, key, None).map(Self)
            }
        });
    };
    ($rust:ident, $py:literal, $alg:expr, $doc:literal, gen = $($bits:ident)?, tag_length) => {
        aead_class!(@class $rust, $py, $alg, $doc, gen = $($bits)?, new = {
            #[new]
            #[pyo3(signature = (key, tag_length=None))]
            fn new(key: &Bound<'_, PyAny>, tag_length: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
                new_aead($alg, key, tag_length).map(Self)
            }
        });
    };
    (@class $rust:ident, $py:literal, $alg:expr, $doc:literal, gen = $($bits:ident)?, new = { $($new:tt)* }) => {
        #[doc = $doc]
        #[pyclass(name = $py, module = "portal_core.aead", frozen)]
        pub struct $rust(Aead);

        #[pymethods]
        impl $rust {
            $($new)*

            #[staticmethod]
            #[pyo3(signature = ($($bits)?))]
            fn generate_key(py: Python<'_>, $($bits: &Bound<'_, PyAny>)?) -> PyResult<Py<PyBytes>> {
                #[allow(unused_mut, unused_assignments)]
                let mut bits = None;
                $(bits = Some($bits);)?
                generate_key(py, $alg.key_lens(), bits)
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

aead_class!(
    AesCcm,
    "AESCCM",
    Algorithm::AesCcm,
    "AES-CCM (RFC 3610) with a 128/192/256-bit key, 7- to 13-byte nonces and a \
     4- to 16-byte tag (even, 16 by default).",
    gen = bit_length,
    tag_length
);
aead_class!(
    AesOcb3,
    "AESOCB3",
    Algorithm::AesOcb3,
    "AES-OCB3 (RFC 7253) with a 128/192/256-bit key and 12- to 15-byte nonces.",
    gen = bit_length
);

/// AESSIV's `associated_data`: `None`, or a list of bytes-like items.
fn ad_items<'py>(ob: Option<&Bound<'py, PyAny>>) -> PyResult<Vec<Input<'py>>> {
    let Some(ob) = ob.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    let list = ob.cast::<PyList>().map_err(|_| {
        let ty = ob
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        PyTypeError::new_err(format!("'{ty}' object is not an instance of 'list'"))
    })?;
    list.iter()
        .map(|item| input(&item, "associated_data items"))
        .collect()
}

/// AES-SIV (RFC 5297) with a 256/384/512-bit key and a list of associated
/// data items; deterministic, output `SIV || ciphertext`.
#[pyclass(name = "AESSIV", module = "portal_core.aead", frozen)]
pub struct AesSivClass(AesSiv);

impl AesSivClass {
    /// `encrypt_into` / `decrypt_into`: `seal` selects the direction.
    fn write_to_buffer(
        &self,
        py: Python<'_>,
        seal: bool,
        data: &Bound<'_, PyAny>,
        associated_data: Option<&Bound<'_, PyAny>>,
        buf: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let data = input(data, "data")?;
        let items = ad_items(associated_data)?;
        let out = Output::extract(buf, "buf")?;
        // Every input sharing memory with `buf` is copied first (S2V reads
        // the associated data after decrypting into `buf`); the copies may
        // hold plaintext and are wiped when dropped.
        let mut d_copy = Zeroizing::new(Vec::new());
        let d = detach_from(data.as_slice(), &out, &mut d_copy);
        let mut ad_copies: Vec<Zeroizing<Vec<u8>>> =
            items.iter().map(|_| Zeroizing::new(Vec::new())).collect();
        let ad: Vec<&[u8]> = items
            .iter()
            .zip(ad_copies.iter_mut())
            .map(|(item, copy)| detach_from(item.as_slice(), &out, copy))
            .collect();
        let want = if seal {
            d.len() + SIV_LEN
        } else {
            AesSiv::plaintext_len(d.len()).map_err(to_py)?
        };
        if out.len() != want {
            return Err(PyValueError::new_err(format!(
                "buffer must be {want} bytes"
            )));
        }
        let dst = out.as_mut_slice();
        let total = d.len() + ad.iter().map(|a| a.len()).sum::<usize>();
        maybe_detach(py, total, || {
            if seal {
                self.0.seal_into(&ad, d, dst)
            } else {
                self.0.open_into(&ad, d, dst)
            }
        })
        .map_err(to_py)?;
        Ok(want)
    }
}

#[pymethods]
impl AesSivClass {
    #[new]
    fn new(key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key = input(key, "key")?;
        AesSiv::new(key.as_slice()).map(Self).map_err(to_py)
    }

    #[staticmethod]
    #[pyo3(signature = (bit_length))]
    fn generate_key(py: Python<'_>, bit_length: &Bound<'_, PyAny>) -> PyResult<Py<PyBytes>> {
        generate_key(py, &AesSiv::KEY_LENS, Some(bit_length))
    }

    #[pyo3(signature = (data, associated_data))]
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = input(data, "data")?;
        let items = ad_items(associated_data)?;
        let ad: Vec<&[u8]> = items.iter().map(Input::as_slice).collect();
        let d = data.as_slice();
        let total = d.len() + ad.iter().map(|a| a.len()).sum::<usize>();
        new_bytes(py, d.len() + SIV_LEN, |out| {
            maybe_detach(py, total, || self.0.seal_into(&ad, d, out)).map_err(to_py)
        })
    }

    #[pyo3(signature = (data, associated_data))]
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = input(data, "data")?;
        let items = ad_items(associated_data)?;
        let ad: Vec<&[u8]> = items.iter().map(Input::as_slice).collect();
        let d = data.as_slice();
        let pt_len = AesSiv::plaintext_len(d.len()).map_err(to_py)?;
        let total = d.len() + ad.iter().map(|a| a.len()).sum::<usize>();
        new_bytes(py, pt_len, |out| {
            maybe_detach(py, total, || self.0.open_into(&ad, d, out)).map_err(to_py)
        })
    }

    #[pyo3(signature = (data, associated_data, buf))]
    fn encrypt_into(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        associated_data: Option<&Bound<'_, PyAny>>,
        buf: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        self.write_to_buffer(py, true, data, associated_data, buf)
    }

    #[pyo3(signature = (data, associated_data, buf))]
    fn decrypt_into(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        associated_data: Option<&Bound<'_, PyAny>>,
        buf: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        self.write_to_buffer(py, false, data, associated_data, buf)
    }

    fn __repr__(&self) -> &'static str {
        "<portal_core.aead.AESSIV (key hidden)>"
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AesGcm>()?;
    m.add_class::<AesGcmSiv>()?;
    m.add_class::<ChaCha20Poly1305>()?;
    m.add_class::<XChaCha20Poly1305>()?;
    m.add_class::<AesCcm>()?;
    m.add_class::<AesOcb3>()?;
    m.add_class::<AesSivClass>()?;
    Ok(())
}
