//! The one byte reader and writer of the crate's binary formats: the sealed
//! envelope's header (`envelope::format`), the share protocol's messages
//! (`shares::message`) and serialized shares (`shares::share`).
//!
//! Every read is length-checked and every write is bounded, so no format
//! does its own offset arithmetic. Integers are big-endian. A "prefixed"
//! field is its length (`u8` or `u16`) followed by that many bytes. Errors
//! say only what went wrong structurally; each format maps them to its own
//! message, naming the field.

/// What went wrong reading or writing a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodecError {
    /// A read ran past the end of the input.
    Truncated,
    /// A write ran past the end of a fixed-size output.
    Full,
    /// A field is longer than its length prefix can count.
    TooLong,
}

/// Reads fields off the front of a byte string.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { input, rest: input }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes, as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], CodecError> {
        self.take(N)?.try_into().map_err(|_| CodecError::Truncated)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        self.array::<1>().map(|b| b[0])
    }

    /// A big-endian `u16`.
    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        self.array().map(|b| u16::from_be_bytes(*b))
    }

    /// A big-endian `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        self.array().map(|b| u32::from_be_bytes(*b))
    }

    /// A field prefixed by its length as a `u8`.
    pub(crate) fn prefixed8(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A field prefixed by its length as a big-endian `u16`.
    pub(crate) fn prefixed16(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Everything not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The bytes read so far.
    pub(crate) fn consumed(&self) -> &'a [u8] {
        let read = self.input.len() - self.rest.len();
        &self.input[..read]
    }
}

/// Where encoded fields go: a growing `Vec<u8>`, or a [`SliceWriter`] over a
/// buffer sized beforehand.
pub(crate) trait Write {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError>;

    /// Appends one byte.
    fn put_u8(&mut self, v: u8) -> Result<(), CodecError> {
        self.put(&[v])
    }

    /// Appends a big-endian `u16`.
    fn put_u16(&mut self, v: u16) -> Result<(), CodecError> {
        self.put(&v.to_be_bytes())
    }

    /// Appends a big-endian `u32`.
    fn put_u32(&mut self, v: u32) -> Result<(), CodecError> {
        self.put(&v.to_be_bytes())
    }

    /// Appends `bytes` prefixed by its length as a `u8`.
    fn put_prefixed8(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let n = u8::try_from(bytes.len()).map_err(|_| CodecError::TooLong)?;
        self.put_u8(n)?;
        self.put(bytes)
    }

    /// Appends `bytes` prefixed by its length as a big-endian `u16`.
    fn put_prefixed16(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let n = u16::try_from(bytes.len()).map_err(|_| CodecError::TooLong)?;
        self.put_u16(n)?;
        self.put(bytes)
    }
}

impl Write for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Writes fields into a fixed buffer, front to back; refuses to run past its end.
pub(crate) struct SliceWriter<'a> {
    rest: &'a mut [u8],
}

impl<'a> SliceWriter<'a> {
    /// A writer at the start of `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { rest: buf }
    }

    /// Bytes not written yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }
}

impl Write for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        if bytes.len() > self.rest.len() {
            return Err(CodecError::Full);
        }
        let (head, tail) = core::mem::take(&mut self.rest).split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        self.rest = tail;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_writes_wrote() {
        let mut v = Vec::new();
        v.put_u8(7).unwrap();
        v.put_u16(0x0102).unwrap();
        v.put_u32(0x0304_0506).unwrap();
        v.put_prefixed8(b"ab").unwrap();
        v.put_prefixed16(b"cde").unwrap();
        v.put(&[9; 4]).unwrap();
        assert_eq!(hex::encode(&v), "07010203040506026162000363646509090909");

        let mut r = Reader::new(&v);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u32(), Ok(0x0304_0506));
        assert_eq!(r.prefixed8(), Ok(&b"ab"[..]));
        assert_eq!(r.prefixed16(), Ok(&b"cde"[..]));
        assert_eq!(r.consumed().len(), v.len() - 4);
        assert_eq!(r.array::<4>(), Ok(&[9; 4]));
        assert!(r.rest().is_empty());
        assert_eq!(r.u8(), Err(CodecError::Truncated));
    }

    #[test]
    fn truncated_reads_fail() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(r.prefixed16(), Err(CodecError::Truncated));
        assert_eq!(Reader::new(&[1]).u16(), Err(CodecError::Truncated));
        assert_eq!(Reader::new(&[]).take(1), Err(CodecError::Truncated));
        assert_eq!(Reader::new(&[3]).take(0), Ok(&[][..]));
    }

    #[test]
    fn bounded_writes() {
        let mut buf = [0u8; 5];
        let mut w = SliceWriter::new(&mut buf);
        w.put_u32(1).unwrap();
        assert_eq!(w.put_u16(2), Err(CodecError::Full));
        assert_eq!(w.remaining(), 1);
        w.put_u8(3).unwrap();
        assert_eq!(w.remaining(), 0);
        assert_eq!(buf, [0, 0, 0, 1, 3]);
        let mut v = Vec::new();
        assert_eq!(v.put_prefixed8(&[0; 256]), Err(CodecError::TooLong));
        assert_eq!(v.put_prefixed16(&[0; 65536]), Err(CodecError::TooLong));
        assert!(v.is_empty());
    }
}
