//! Zero-copy access to Python buffers, and bytes objects filled in place.

use std::os::raw::c_char;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Inputs at least this long are processed with the GIL released
/// (the threshold hashlib uses); shorter ones are faster without the switch.
pub const DETACH_MIN: usize = 2048;

/// A read-only view of a bytes-like argument: `bytes` directly, anything else
/// (bytearray, memoryview, numpy uint8, mmap...) through the buffer protocol.
pub enum Input<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyBuffer<u8>),
}

impl Input<'_> {
    /// The bytes. For a mutable exporter another thread could write them
    /// while the GIL is released; that is the caller's race, as with hashlib.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Input::Bytes(b) => b.as_bytes(),
            // SAFETY: the buffer is C-contiguous (checked at extraction) and
            // stays exported (so not resized or freed) while `self` lives.
            Input::Buffer(b) => unsafe {
                std::slice::from_raw_parts(b.buf_ptr() as *const u8, b.len_bytes())
            },
        }
    }

    /// The shape of the exported buffer (`[len]` for bytes).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Input::Bytes(b) => vec![b.as_bytes().len()],
            Input::Buffer(b) => b.shape().to_vec(),
        }
    }
}

fn type_error(ob: &Bound<'_, PyAny>, what: &str) -> PyErr {
    let ty = ob
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{what} must be a bytes-like object, not {ty}"))
}

/// Extracts a bytes-like argument named `what` (for the error message).
pub fn input<'py>(ob: &Bound<'py, PyAny>, what: &str) -> PyResult<Input<'py>> {
    if let Ok(b) = ob.cast::<PyBytes>() {
        return Ok(Input::Bytes(b.clone()));
    }
    let buf = PyBuffer::<u8>::get(ob).map_err(|_| type_error(ob, what))?;
    if !buf.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a C-contiguous buffer"
        )));
    }
    Ok(Input::Buffer(buf))
}

/// Like [`input`], with `None` read as empty.
pub fn optional_input<'py>(
    ob: Option<&Bound<'py, PyAny>>,
    what: &str,
) -> PyResult<Option<Input<'py>>> {
    match ob {
        Some(o) if !o.is_none() => input(o, what).map(Some),
        _ => Ok(None),
    }
}

/// A caller's writable, C-contiguous buffer (bytearray, memoryview, numpy...).
pub struct Output(PyBuffer<u8>);

impl Output {
    pub fn extract(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let buf = PyBuffer::<u8>::get(ob).map_err(|_| type_error(ob, what))?;
        if buf.readonly() {
            return Err(PyTypeError::new_err(format!(
                "{what} must be a writable buffer"
            )));
        }
        if !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "{what} must be a C-contiguous buffer"
            )));
        }
        Ok(Output(buf))
    }

    pub fn len(&self) -> usize {
        self.0.len_bytes()
    }

    /// Whether `input` shares any memory with this buffer.
    pub fn overlaps(&self, input: &[u8]) -> bool {
        let (a, b) = (self.0.buf_ptr() as usize, input.as_ptr() as usize);
        a < b + input.len() && b < a + self.len()
    }

    /// The writable bytes.
    #[allow(clippy::mut_from_ref)]
    pub fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: writable and C-contiguous (checked at extraction), pinned
        // while `self` lives; callers copy any overlapping input first, so no
        // Rust shared slice aliases this one.
        unsafe { std::slice::from_raw_parts_mut(self.0.buf_ptr() as *mut u8, self.len()) }
    }
}

/// A caller's output for a batch: a writable, C-contiguous 2-D uint8 buffer
/// (a numpy array, or a memoryview cast to two dimensions), one row per item.
pub struct RowsOut {
    buf: Output,
    rows: usize,
    width: usize,
}

impl RowsOut {
    /// Checks `ob` as `what`: TypeError for anything that is not a writable
    /// uint8 buffer, ValueError for one that is not 2-D and C-contiguous.
    pub fn extract(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let buf = PyBuffer::<u8>::get(ob).map_err(|_| rows_type_error(ob, what))?;
        if buf.readonly() {
            return Err(PyTypeError::new_err(format!(
                "{what} must be writable (this one is read-only)"
            )));
        }
        let (rows, width) = match buf.shape() {
            [rows, width] => (*rows, *width),
            shape => {
                return Err(PyValueError::new_err(format!(
                    "{what} must be a 2-D array (one row per item), not {}-D",
                    shape.len()
                )))
            }
        };
        if !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "{what} must be C-contiguous (a strided view cannot be written in place)"
            )));
        }
        Ok(RowsOut {
            buf: Output(buf),
            rows,
            width,
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The length of every row in bytes.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether any of `inputs` shares memory with this buffer.
    pub fn overlaps_any<'a>(&self, mut inputs: impl Iterator<Item = &'a [u8]>) -> bool {
        inputs.any(|i| !i.is_empty() && self.buf.overlaps(i))
    }

    /// The whole buffer, writable.
    fn bytes(&mut self) -> &mut [u8] {
        if self.buf.len() == 0 {
            return &mut [];
        }
        self.buf.as_mut_slice()
    }

    /// The rows, each writable. The caller must not read any input that
    /// shares memory with them ([`RowsOut::overlaps_any`] first).
    pub fn split_rows(&mut self) -> Vec<&mut [u8]> {
        if self.width == 0 {
            return (0..self.rows).map(|_| <&mut [u8]>::default()).collect();
        }
        let width = self.width;
        self.bytes().chunks_exact_mut(width).collect()
    }

    /// Overwrites every byte with zero.
    pub fn zero(&mut self) {
        self.bytes().fill(0);
    }
}

fn rows_type_error(ob: &Bound<'_, PyAny>, what: &str) -> PyErr {
    let dtype = ob
        .getattr("dtype")
        .and_then(|d| d.str().map(|s| s.to_string()));
    match dtype {
        Ok(dtype) => PyTypeError::new_err(format!("{what} must have dtype uint8, not {dtype}")),
        Err(_) => {
            let ty = ob
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!(
                "{what} must be a writable 2-D uint8 array, not {ty}"
            ))
        }
    }
}

/// An integer argument: `Some(v)` when it fits `u64`, `None` when it is an
/// integer out of that range (negative, or huge: the caller's ValueError), and
/// TypeError for anything that is not an integer.
pub fn integer_arg(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<u64>> {
    if !ob.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!("{what} must be an integer")));
    }
    Ok(ob.extract::<u64>().ok())
}

/// Reads `ob` as bytes, copying it when it overlaps `out` so the two never alias.
pub fn detach_from<'a>(data: &'a [u8], out: &Output, copy: &'a mut Vec<u8>) -> &'a [u8] {
    if out.overlaps(data) {
        copy.extend_from_slice(data);
        copy.as_slice()
    } else {
        data
    }
}

/// Runs `f` with the GIL released when `len` is large enough to be worth it.
pub fn maybe_detach<T: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> T + Send) -> T {
    if len >= DETACH_MIN {
        py.detach(f)
    } else {
        f()
    }
}

/// A new `bytes` of `len` bytes, written in place by `fill` (no zero-fill,
/// no copy). The object is not visible to Python until `fill` succeeds.
pub fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyBytes>> {
    let len_ssize = isize::try_from(len).map_err(|_| PyValueError::new_err("output too large"))?;
    // SAFETY: a NULL source asks CPython for an uninitialised bytes object of
    // `len` bytes that we own (new reference) and may write before sharing.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(std::ptr::null(), len_ssize),
        )?
    };
    // SAFETY: `obj` is a bytes object; PyBytes_AsString points at its `len`
    // bytes, exclusively ours until we return it.
    let buf = unsafe {
        let p = ffi::PyBytes_AsString(obj.as_ptr()) as *mut c_char as *mut u8;
        std::slice::from_raw_parts_mut(p, len)
    };
    fill(buf)?;
    // SAFETY: created as a bytes object above.
    Ok(unsafe { obj.cast_into_unchecked::<PyBytes>() })
}

/// New `bytes` objects of the given lengths, written in place by `fill`
/// (which may release the GIL: the objects are not shared until it returns).
pub fn new_bytes_many<'py>(
    py: Python<'py>,
    lens: impl IntoIterator<Item = usize>,
    fill: impl FnOnce(&mut [&mut [u8]]) -> PyResult<()>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let mut objs = Vec::new();
    let mut slices = Vec::new();
    for len in lens {
        let mut slot: Option<&mut [u8]> = None;
        objs.push(new_bytes(py, len, |b| {
            // SAFETY: each object's buffer is distinct and exclusively ours
            // until `objs` is returned; the slice does not outlive `objs`.
            slot = Some(unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr(), b.len()) });
            Ok(())
        })?);
        slices.extend(slot);
    }
    fill(&mut slices)?;
    Ok(objs)
}
