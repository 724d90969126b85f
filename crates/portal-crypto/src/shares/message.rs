//! The public messages the two parties exchange (one-to-one with the
//! future HTTP endpoints), in a versioned binary form.
//!
//! ```text
//! message := "PM" | version u8 = 1 | step u8 | curve u8 | sender role u8 | params | body
//! params  := protocol u8 | session_id str8 | new_kind u8 | new_id str8
//!            [ reshare only: public_key [P] | input_kind u8 | input_id str8 ]
//! str8    := len u8 | UTF-8 bytes
//! step 1 (commit) body := commitment [32]
//! step 2 (reveal) body := nonce [32] | public_share [P] | proof R [P] | proof s [32]
//!                         [ reshare only: seed [32] ]
//! ```
//!
//! Every message repeats the session parameters in clear, so a receiver that
//! disagrees with its peer says which parameter differs instead of failing
//! later at a hash check. None of them is secret.

use super::{invalid, Curve, Kind, Role};
use crate::codec::{CodecError, Reader, Write};
use crate::{Error, Result};

/// The two magic bytes that start every protocol message.
pub const MAGIC: &[u8; 2] = b"PM";
/// The only message format version so far.
pub const VERSION: u8 = 1;
/// Fixed bytes before the parameters: magic, version, step, curve, sender.
const HEADER_LEN: usize = 2 + 1 + 1 + 1 + 1;

/// Which protocol a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Distributed key generation: a new wallet.
    KeyGen = 1,
    /// Re-randomisation of an existing sharing: backup, recovery, refresh.
    Reshare = 2,
}

/// The two steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Commit = 1,
    Reveal = 2,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Commit => "commitment",
            Step::Reveal => "reveal",
        }
    }
}

/// What a reshare starts from.
pub struct Input {
    pub public_key: Vec<u8>,
    pub kind: Kind,
    pub id: String,
}

/// The parameters both parties must agree on.
pub struct Params {
    pub protocol: Protocol,
    pub session_id: String,
    pub new_kind: Kind,
    pub new_id: String,
    pub input: Option<Input>,
}

impl Params {
    /// The parameters as every message repeats them (`params` above).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an id over 255 bytes (sessions check
    /// their ids when they are made, so this does not happen).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let too_long = |_: CodecError| Error::arg("ids must be at most 255 bytes");
        let mut out = Vec::new();
        out.put_u8(self.protocol as u8).map_err(too_long)?;
        out.put_prefixed8(self.session_id.as_bytes())
            .map_err(too_long)?;
        out.put_u8(self.new_kind.id()).map_err(too_long)?;
        out.put_prefixed8(self.new_id.as_bytes())
            .map_err(too_long)?;
        if let Some(input) = &self.input {
            out.put(&input.public_key).map_err(too_long)?;
            out.put_u8(input.kind.id()).map_err(too_long)?;
            out.put_prefixed8(input.id.as_bytes()).map_err(too_long)?;
        }
        Ok(out)
    }
}

impl Params {
    /// Reads parameters as [`Params::encode`] writes them, for a curve whose
    /// points are `point_len` bytes (the reshare's public key is read as
    /// bytes; the caller decodes it as a point). Used by suspended states
    /// (`exchange`), never by message parsing, which compares field by field.
    ///
    /// # Errors
    /// [`Error::InvalidShare`]: truncated, an unknown protocol or kind, an
    /// empty or non-UTF-8 id, or a key generation whose new share is not a
    /// signing share.
    pub fn decode(r: &mut Reader<'_>, point_len: usize) -> Result<Self> {
        let protocol = match r.u8().map_err(params_truncated)? {
            1 => Protocol::KeyGen,
            2 => Protocol::Reshare,
            other => return Err(invalid(format!("unknown protocol {other}"))),
        };
        let session_id = id8(r, "session id")?;
        let new_kind = kind(r.u8().map_err(params_truncated)?)?;
        let new_id = id8(r, "new share id")?;
        let input = match protocol {
            Protocol::KeyGen => {
                if new_kind != Kind::Signing {
                    return Err(invalid("a key generation makes signing shares only"));
                }
                None
            }
            Protocol::Reshare => Some(Input {
                public_key: r.take(point_len).map_err(params_truncated)?.to_vec(),
                kind: kind(r.u8().map_err(params_truncated)?)?,
                id: id8(r, "input share id")?,
            }),
        };
        Ok(Params {
            protocol,
            session_id,
            new_kind,
            new_id,
            input,
        })
    }
}

/// The error of every read past the end of encoded parameters.
fn params_truncated(_: CodecError) -> Error {
    invalid("the session parameters are truncated")
}

fn kind(id: u8) -> Result<Kind> {
    Kind::from_id(id).ok_or_else(|| invalid(format!("unknown share kind {id}")))
}

/// A non-empty `str8` id, owned.
fn id8(r: &mut Reader<'_>, what: &str) -> Result<String> {
    let id = std::str::from_utf8(r.prefixed8().map_err(params_truncated)?)
        .map_err(|_| invalid(format!("the {what} is not UTF-8")))?;
    if id.is_empty() {
        return Err(invalid(format!("the {what} is empty")));
    }
    Ok(id.to_owned())
}

/// The error of every read past the end of a message.
fn truncated(_: CodecError) -> Error {
    invalid("protocol message is truncated")
}

/// Reads a `str8` field: a length-prefixed UTF-8 id.
fn str8<'a>(r: &mut Reader<'a>) -> Result<&'a str> {
    std::str::from_utf8(r.prefixed8().map_err(truncated)?)
        .map_err(|_| invalid("protocol message holds an id that is not UTF-8"))
}

/// Builds a message.
pub fn encode(step: Step, curve: Curve, sender: Role, params: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + params.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, step as u8, curve.id(), sender.id()]);
    out.extend_from_slice(params);
    out.extend_from_slice(body);
    out
}

fn kind_name(id: u8) -> String {
    Kind::from_id(id).map_or_else(|| format!("unknown ({id})"), |k| k.name().to_owned())
}

/// Checks a peer's message against this party's view of the session and
/// returns its body.
///
/// # Errors
/// [`crate::Error::InvalidShare`] naming the first thing that differs.
pub fn parse<'a>(
    msg: &'a [u8],
    step: Step,
    curve: Curve,
    receiver: Role,
    params: &Params,
    body_len: usize,
) -> Result<&'a [u8]> {
    let mut r = Reader::new(msg);
    if r.take(MAGIC.len()).map_err(truncated)? != MAGIC {
        return Err(invalid("not a share protocol message (bad magic)"));
    }
    let version = r.u8().map_err(truncated)?;
    if version != VERSION {
        return Err(invalid(format!(
            "unsupported protocol message version {version} (this build speaks version {VERSION})"
        )));
    }
    let got = r.u8().map_err(truncated)?;
    if got != step as u8 {
        let name = match got {
            1 => Step::Commit.name(),
            2 => Step::Reveal.name(),
            _ => "unknown",
        };
        return Err(invalid(format!(
            "expected the peer's {}, got a {name} message",
            step.name()
        )));
    }
    let got = r.u8().map_err(truncated)?;
    if got != curve.id() {
        let name = Curve::from_id(got).map_or("an unknown curve", Curve::name);
        return Err(invalid(format!(
            "message is for {name}, this session is on {}",
            curve.name()
        )));
    }
    let sender = r.u8().map_err(truncated)?;
    if sender != receiver.peer().id() {
        return Err(invalid(format!(
            "message is not from the {} (each session has one client and one custodian)",
            receiver.peer().name()
        )));
    }
    let protocol = r.u8().map_err(truncated)?;
    if protocol != params.protocol as u8 {
        return Err(invalid(
            "message is for another protocol (key generation versus reshare)",
        ));
    }
    let session = str8(&mut r)?;
    if session != params.session_id {
        return Err(invalid(format!(
            "message belongs to session {session:?}, this is session {:?}",
            params.session_id
        )));
    }
    let new_kind = r.u8().map_err(truncated)?;
    if new_kind != params.new_kind.id() {
        return Err(invalid(format!(
            "the parties disagree on the new share's kind: peer {}, here {}",
            kind_name(new_kind),
            params.new_kind.name()
        )));
    }
    let new_id = str8(&mut r)?;
    if new_id != params.new_id {
        return Err(invalid(format!(
            "the parties disagree on the new share's id: peer {new_id:?}, here {:?}",
            params.new_id
        )));
    }
    if let Some(input) = &params.input {
        if r.take(input.public_key.len()).map_err(truncated)? != input.public_key.as_slice() {
            return Err(invalid(
                "the peer's share is for another public key: the shares belong to different wallets",
            ));
        }
        let kind = r.u8().map_err(truncated)?;
        if kind != input.kind.id() {
            return Err(invalid(format!(
                "the peer reshares a {} share, this party a {} share",
                kind_name(kind),
                input.kind.name()
            )));
        }
        let id = str8(&mut r)?;
        if id != input.id {
            return Err(invalid(format!(
                "the peer's share has id {id:?}, this party's {:?}: shares of different pairs do not combine",
                input.id
            )));
        }
    }
    let body = r.rest();
    if body.len() != body_len {
        return Err(invalid(format!(
            "protocol {} body is {} bytes, expected {body_len}",
            step.name(),
            body.len()
        )));
    }
    Ok(body)
}
