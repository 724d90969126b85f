//! `portal_core._rust.envelope`: the sealed format, one at a time or in
//! batches on all cores with the GIL released.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use portal_crypto::envelope::{self as env, Context};

use crate::buffers::{input, new_bytes, new_bytes_many, optional_input, Input};
use portal_crypto::BatchError;

use crate::errors::to_py;

/// Reads `None` or a `dict[str, str]`.
fn context(ob: Option<&Bound<'_, PyAny>>) -> PyResult<Context> {
    let Some(ob) = ob.filter(|o| !o.is_none()) else {
        return Ok(Context::default_empty());
    };
    let dict = ob
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err("context must be a dict[str, str] or None"))?;
    let mut pairs = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let (k, v): (String, String) = (k.extract(), v.extract())
            .pipe_ok()
            .ok_or_else(|| PyTypeError::new_err("context keys and values must be str"))?;
        pairs.push((k, v));
    }
    Context::new(&pairs).map_err(to_py)
}

trait PipeOk<A, B> {
    fn pipe_ok(self) -> Option<(A, B)>;
}
impl<A, B, E1, E2> PipeOk<A, B> for (Result<A, E1>, Result<B, E2>) {
    fn pipe_ok(self) -> Option<(A, B)> {
        Some((self.0.ok()?, self.1.ok()?))
    }
}

/// One context for all items (`None` or a dict) or a list of one per item.
fn contexts(ob: Option<&Bound<'_, PyAny>>, items: usize) -> PyResult<Vec<Context>> {
    match ob {
        Some(list) if list.is_instance_of::<PyList>() => {
            let list = list.cast::<PyList>()?;
            if list.len() != items {
                return Err(PyValueError::new_err(format!(
                    "got {} contexts for {items} items: pass one context, or one per item",
                    list.len()
                )));
            }
            list.iter().map(|c| context(Some(&c))).collect()
        }
        other => Ok(vec![context(other)?]),
    }
}

fn key_id(ob: Option<&str>) -> &str {
    ob.unwrap_or("")
}

/// Seals `plaintext` under a 32-byte key with a fresh salt.
#[pyfunction]
#[pyo3(signature = (key, plaintext, *, context=None, key_id=None))]
fn seal<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    plaintext: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    key_id: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (key, pt) = (input(key, "key")?, input(plaintext, "plaintext")?);
    let ctx = self::context(context)?;
    let kid = self::key_id(key_id);
    let len = env::sealed_len(kid, &ctx, pt.as_slice().len());
    new_bytes(py, len, |out| {
        env::seal_into(key.as_slice(), pt.as_slice(), &ctx, kid, out).map_err(to_py)
    })
}

/// Opens `sealed`: checks commitment, context and tag.
#[pyfunction]
#[pyo3(signature = (key, sealed, *, context=None))]
fn open<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    sealed: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (key, sealed) = (input(key, "key")?, input(sealed, "sealed")?);
    let ctx = self::context(context)?;
    let s = sealed.as_slice();
    let len = env::plaintext_len(s).map_err(to_py)?;
    new_bytes(py, len, |out| {
        env::open_into(key.as_slice(), s, &ctx, out).map_err(to_py)
    })
}

/// The header of `sealed`, read without a key.
#[pyfunction]
fn inspect<'py>(py: Python<'py>, sealed: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let sealed = input(sealed, "sealed")?;
    let h = env::parse(sealed.as_slice()).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("version", h.version)?;
    d.set_item("suite", env::suite_name(h.suite))?;
    d.set_item("key_id", h.key_id)?;
    let ctx = PyDict::new(py);
    for (k, v) in h.context_pairs().map_err(to_py)? {
        ctx.set_item(k, v)?;
    }
    d.set_item("context", ctx)?;
    d.set_item(
        "plaintext_length",
        h.body.len() - portal_crypto::aead::TAG_LEN,
    )?;
    Ok(d)
}

/// The items of a batch: a sequence of bytes-like objects, or the rows of a
/// 2-D C-contiguous uint8 buffer (a numpy array).
enum Batch<'py> {
    Items(Vec<Input<'py>>),
    Rows(Input<'py>, usize),
}

impl Batch<'_> {
    fn slices(&self) -> Vec<&[u8]> {
        match self {
            Batch::Items(v) => v.iter().map(Input::as_slice).collect(),
            Batch::Rows(buf, width) if *width == 0 => vec![&[][..]; buf.shape()[0]],
            Batch::Rows(buf, width) => buf.as_slice().chunks_exact(*width).collect(),
        }
    }
}

fn batch<'py>(ob: &Bound<'py, PyAny>, what: &str) -> PyResult<Batch<'py>> {
    if let Ok(buf) = input(ob, what) {
        let shape = buf.shape();
        return match shape.as_slice() {
            [_, width] => Ok(Batch::Rows(buf, *width)),
            _ => Err(PyValueError::new_err(format!(
                "{what} must be a sequence of bytes-like objects or a 2-D uint8 array"
            ))),
        };
    }
    let items = ob
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!("{what} must be a sequence of bytes-like objects"))
        })?
        .map(|item| input(&item?, what))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Batch::Items(items))
}

/// Seals every item on all cores; returns one envelope per item, each
/// preceded by `prefix` when one is given.
#[pyfunction]
#[pyo3(signature = (key, plaintexts, *, context=None, key_id=None, prefix=None))]
fn seal_many<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    plaintexts: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    key_id: Option<&str>,
    prefix: Option<&Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let key = input(key, "key")?;
    let items = batch(plaintexts, "plaintexts")?;
    let pts = items.slices();
    let ctxs = contexts(context, pts.len())?;
    let kid = self::key_id(key_id);
    let prefix = optional_input(prefix, "prefix")?;
    let pre = prefix.as_ref().map_or(&[][..], Input::as_slice);
    let lens = pts
        .iter()
        .enumerate()
        .map(|(i, p)| pre.len() + env::sealed_len(kid, env::pick(&ctxs, i), p.len()));
    let k = key.as_slice();
    new_bytes_many(py, lens, |outs| {
        let mut bodies = after_prefix(outs, pre);
        py.detach(|| env::seal_many(k, &pts, &ctxs, kid, &mut bodies))
            .map_err(to_py)
    })
}

/// Writes `prefix` at the start of every output; returns the rest of each.
fn after_prefix<'a>(outs: &'a mut [&mut [u8]], prefix: &[u8]) -> Vec<&'a mut [u8]> {
    outs.iter_mut()
        .map(|out| {
            let (head, body) = out.split_at_mut(prefix.len());
            head.copy_from_slice(prefix);
            body
        })
        .collect()
}

/// The envelopes of a batch after skipping `skip` bytes of each item (a
/// caller's own header, which the envelope does not cover).
fn skipped(blobs: Vec<&[u8]>, skip: usize) -> PyResult<Vec<&[u8]>> {
    blobs
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            b.get(skip..).ok_or_else(|| {
                to_py(BatchError::new(
                    i,
                    portal_crypto::Error::InvalidEnvelope(format!("shorter than skip={skip}")),
                ))
            })
        })
        .collect()
}

/// Opens every envelope on all cores (after the first `skip` bytes of each
/// item); any failure raises and returns nothing.
#[pyfunction]
#[pyo3(signature = (key, sealed, *, context=None, skip=0))]
fn open_many<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    sealed: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    skip: usize,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let key = input(key, "key")?;
    let items = batch(sealed, "sealed")?;
    let blobs = skipped(items.slices(), skip)?;
    let ctxs = contexts(context, blobs.len())?;
    let lens = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| env::plaintext_len(b).map_err(|e| BatchError::new(i, e)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(to_py)?;
    let k = key.as_slice();
    new_bytes_many(py, lens, |outs| {
        py.detach(|| env::open_many(k, &blobs, &ctxs, outs))
            .map_err(to_py)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(seal, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(seal_many, m)?)?;
    m.add_function(wrap_pyfunction!(open_many, m)?)?;
    m.add_function(wrap_pyfunction!(reseal, m)?)?;
    m.add_function(wrap_pyfunction!(reseal_many, m)?)?;
    m.add("KEY_LEN", env::KEY_LEN)?;
    m.add("VERSION", env::VERSION)?;
    Ok(())
}

/// Moves one envelope to `new_key` without returning its plaintext.
#[pyfunction]
#[pyo3(signature = (old_key, sealed, new_key, *, key_id=None))]
fn reseal<'py>(
    py: Python<'py>,
    old_key: &Bound<'py, PyAny>,
    sealed: &Bound<'py, PyAny>,
    new_key: &Bound<'py, PyAny>,
    key_id: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (old, sealed) = (input(old_key, "old_key")?, input(sealed, "sealed")?);
    let new = input(new_key, "new_key")?;
    let kid = self::key_id(key_id);
    let s = sealed.as_slice();
    let len = env::resealed_len(s, kid).map_err(to_py)?;
    new_bytes(py, len, |out| {
        env::reseal_into(old.as_slice(), s, new.as_slice(), kid, out).map_err(to_py)
    })
}

/// Moves many envelopes to `new_key` on all cores (after the first `skip`
/// bytes of each item; each output preceded by `prefix`); any failure raises
/// and returns nothing.
#[pyfunction]
#[pyo3(signature = (old_key, sealed, new_key, *, key_id=None, skip=0, prefix=None))]
fn reseal_many<'py>(
    py: Python<'py>,
    old_key: &Bound<'py, PyAny>,
    sealed: &Bound<'py, PyAny>,
    new_key: &Bound<'py, PyAny>,
    key_id: Option<&str>,
    skip: usize,
    prefix: Option<&Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let (old, new) = (input(old_key, "old_key")?, input(new_key, "new_key")?);
    let items = batch(sealed, "sealed")?;
    let blobs = skipped(items.slices(), skip)?;
    let kid = self::key_id(key_id);
    let prefix = optional_input(prefix, "prefix")?;
    let pre = prefix.as_ref().map_or(&[][..], Input::as_slice);
    let lens = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            env::resealed_len(b, kid)
                .map(|n| pre.len() + n)
                .map_err(|e| BatchError::new(i, e))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(to_py)?;
    let (o, n) = (old.as_slice(), new.as_slice());
    new_bytes_many(py, lens, |outs| {
        let mut bodies = after_prefix(outs, pre);
        py.detach(|| env::reseal_many(o, &blobs, n, kid, &mut bodies))
            .map_err(to_py)
    })
}
