//! `portal_core._rust.envelope`: the sealed format, one at a time or in
//! batches on all cores with the GIL released.

use pyo3::exceptions::{PyImportError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use rayon::prelude::*;

use portal_crypto::envelope::{self as env, Context};

use crate::buffers::{input, new_bytes, new_bytes_many, optional_input, Input, RowsOut};
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

// The array forms: every output is a row of one contiguous 2-D uint8 array,
// either made here (`*_array`, one allocation for the whole batch) or the
// caller's (`*_into`, no allocation at all). The list forms above make one
// `bytes` object per item, and in a fresh process, or after the heap was
// trimmed, the page faults of those allocations cost more than the AES-GCM.

/// The length of item `i`'s row: `prefix`, then its envelope.
fn sealed_row_len(pt: &[u8], ctxs: &[Context], i: usize, kid: &str, pre: &[u8]) -> usize {
    pre.len() + env::sealed_len(kid, env::pick(ctxs, i), pt.len())
}

/// Refuses an `out` without exactly one row per item.
fn check_rows(out: &RowsOut, items: usize) -> PyResult<()> {
    if out.rows() != items {
        return Err(PyValueError::new_err(format!(
            "out has {} rows for {items} items: it needs one row per item",
            out.rows()
        )));
    }
    Ok(())
}

/// Refuses an `out` that shares memory with any input: it is written while
/// they are read.
fn check_no_alias<'a>(out: &RowsOut, inputs: impl Iterator<Item = &'a [u8]>) -> PyResult<()> {
    if out.overlaps_any(inputs) {
        return Err(PyValueError::new_err(
            "out must not share memory with the key, the items or the prefix",
        ));
    }
    Ok(())
}

/// A new uninitialised `numpy.ndarray` of `rows` x `width` uint8.
fn new_rows<'py>(py: Python<'py>, rows: usize, width: usize) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy").map_err(|_| {
        PyImportError::new_err(
            "seal_many_array and open_many_array return numpy arrays: install numpy",
        )
    })?;
    np.getattr("empty")?
        .call1(((rows, width), np.getattr("uint8")?))
}

/// Seals `pts` into the rows of `out` (each row: `pre`, then the envelope)
/// on all cores with the GIL released. Argument errors are found before
/// anything is written; a failure while sealing leaves `out` zeroed.
fn seal_rows(
    py: Python<'_>,
    key: &[u8],
    pts: &[&[u8]],
    ctxs: &[Context],
    kid: &str,
    pre: &[u8],
    out: &mut RowsOut,
) -> PyResult<()> {
    env::check_key(key).map_err(to_py)?;
    env::check_key_id(kid).map_err(to_py)?;
    check_rows(out, pts.len())?;
    let width = out.width();
    if let Some((i, want)) = pts
        .iter()
        .enumerate()
        .map(|(i, p)| (i, sealed_row_len(p, ctxs, i, kid, pre)))
        .find(|(_, want)| *want != width)
    {
        return Err(PyValueError::new_err(format!(
            "out rows are {width} bytes but item {i} seals to {want}: every item must fill its row"
        )));
    }
    check_no_alias(out, [key, pre].into_iter().chain(pts.iter().copied()))?;
    let sealed = {
        let rows = out.split_rows();
        py.detach(|| {
            // The prefixes are written on all cores too: in fresh memory the
            // first write to each page is a page fault, best taken in parallel.
            let mut bodies: Vec<&mut [u8]> = rows
                .into_par_iter()
                .map(|row| {
                    let (head, body) = row.split_at_mut(pre.len());
                    head.copy_from_slice(pre);
                    body
                })
                .collect();
            env::seal_many(key, pts, ctxs, kid, &mut bodies)
        })
    };
    sealed.map_err(|e| {
        out.zero();
        to_py(e)
    })
}

/// Opens `blobs` into the rows of `out` on all cores with the GIL released.
/// Argument errors are found before anything is written; if any item fails,
/// `out` is zeroed and the error names the first failing item.
fn open_rows(
    py: Python<'_>,
    key: &[u8],
    blobs: &[&[u8]],
    ctxs: &[Context],
    out: &mut RowsOut,
) -> PyResult<()> {
    env::check_key(key).map_err(to_py)?;
    check_rows(out, blobs.len())?;
    // Item 0's length is checked here, so that the usual mistake (a wrong row
    // length) is an argument error; every other item's is checked while
    // opening, on all cores, as a failure of that item.
    if let Some(Ok(len)) = blobs.first().map(|b| env::plaintext_len(b)) {
        if len != out.width() {
            return Err(PyValueError::new_err(format!(
                "out rows are {} bytes but item 0 opens to {len}: every item must fill its row",
                out.width()
            )));
        }
    }
    check_no_alias(out, std::iter::once(key).chain(blobs.iter().copied()))?;
    let opened = {
        let mut rows = out.split_rows();
        py.detach(|| env::open_many(key, blobs, ctxs, &mut rows))
    };
    opened.map_err(|e| {
        out.zero();
        to_py(e)
    })
}

/// Seals every item into one new 2-D uint8 numpy array, one envelope per row
/// (each after `prefix`); every item must seal to the same length.
#[pyfunction]
#[pyo3(signature = (key, plaintexts, *, context=None, key_id=None, prefix=None))]
fn seal_many_array<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    plaintexts: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    key_id: Option<&str>,
    prefix: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = input(key, "key")?;
    let items = batch(plaintexts, "plaintexts")?;
    let pts = items.slices();
    let ctxs = contexts(context, pts.len())?;
    let kid = self::key_id(key_id);
    let prefix = optional_input(prefix, "prefix")?;
    let pre = prefix.as_ref().map_or(&[][..], Input::as_slice);
    let mut lens = pts
        .iter()
        .enumerate()
        .map(|(i, p)| sealed_row_len(p, &ctxs, i, kid, pre));
    let width = match (lens.next(), &items) {
        (Some(first), _) => {
            if let Some((j, other)) = lens.enumerate().find(|(_, n)| *n != first) {
                return Err(PyValueError::new_err(format!(
                    "item 0 seals to {first} bytes but item {} to {other}: the rows of an \
                     array must be equal (seal_many takes items of any length)",
                    j + 1
                )));
            }
            first
        }
        // No items: rows of a known length still give the sealed width.
        (None, Batch::Rows(_, w)) => {
            let empty = Context::default_empty();
            pre.len() + env::sealed_len(kid, ctxs.first().unwrap_or(&empty), *w)
        }
        (None, Batch::Items(_)) => 0,
    };
    let array = new_rows(py, pts.len(), width)?;
    let mut out = RowsOut::extract(&array, "out")?;
    seal_rows(py, key.as_slice(), &pts, &ctxs, kid, pre, &mut out)?;
    drop(out);
    Ok(array)
}

/// Opens every envelope (after the first `skip` bytes of each item) into one
/// new 2-D uint8 numpy array, one plaintext per row; every plaintext must be
/// the same length. All or nothing, as `open_many`.
#[pyfunction]
#[pyo3(signature = (key, sealed, *, context=None, skip=0))]
fn open_many_array<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    sealed: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    skip: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let key = input(key, "key")?;
    let items = batch(sealed, "sealed")?;
    let blobs = skipped(items.slices(), skip)?;
    let ctxs = contexts(context, blobs.len())?;
    let width = match blobs.first() {
        Some(b) => env::plaintext_len(b).map_err(|e| to_py(BatchError::new(0, e)))?,
        None => 0,
    };
    let array = new_rows(py, blobs.len(), width)?;
    let mut out = RowsOut::extract(&array, "out")?;
    open_rows(py, key.as_slice(), &blobs, &ctxs, &mut out)?;
    drop(out);
    Ok(array)
}

/// Seals every item into the rows of the caller's 2-D uint8 array `out`
/// (one row per item, each `prefix` then the envelope); allocates nothing.
#[pyfunction]
#[pyo3(signature = (key, plaintexts, out, *, context=None, key_id=None, prefix=None))]
fn seal_many_into<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    plaintexts: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    key_id: Option<&str>,
    prefix: Option<&Bound<'py, PyAny>>,
) -> PyResult<()> {
    let key = input(key, "key")?;
    let items = batch(plaintexts, "plaintexts")?;
    let pts = items.slices();
    let ctxs = contexts(context, pts.len())?;
    let kid = self::key_id(key_id);
    let prefix = optional_input(prefix, "prefix")?;
    let pre = prefix.as_ref().map_or(&[][..], Input::as_slice);
    let mut out = RowsOut::extract(out, "out")?;
    seal_rows(py, key.as_slice(), &pts, &ctxs, kid, pre, &mut out)
}

/// Opens every envelope (after the first `skip` bytes of each item) into the
/// rows of the caller's 2-D uint8 array `out`; allocates nothing. All or
/// nothing: if any item fails, `out` is zeroed.
#[pyfunction]
#[pyo3(signature = (key, sealed, out, *, context=None, skip=0))]
fn open_many_into<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    sealed: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    skip: usize,
) -> PyResult<()> {
    let key = input(key, "key")?;
    let items = batch(sealed, "sealed")?;
    let blobs = skipped(items.slices(), skip)?;
    let ctxs = contexts(context, blobs.len())?;
    let mut out = RowsOut::extract(out, "out")?;
    open_rows(py, key.as_slice(), &blobs, &ctxs, &mut out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(seal, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(seal_many, m)?)?;
    m.add_function(wrap_pyfunction!(open_many, m)?)?;
    m.add_function(wrap_pyfunction!(seal_many_array, m)?)?;
    m.add_function(wrap_pyfunction!(open_many_array, m)?)?;
    m.add_function(wrap_pyfunction!(seal_many_into, m)?)?;
    m.add_function(wrap_pyfunction!(open_many_into, m)?)?;
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
