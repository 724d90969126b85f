//! The two-party exchange behind key generation and resharing: commit,
//! reveal, finish. Each party's secret stays in its own [`Exchange`]; only
//! the messages of [`super::message`] leave it.
//!
//! Per party i (client or custodian), with a fresh 32-byte `nonce_i`:
//!
//! 1. commit: `C_i = SHA-256(T("commit", session, role_i, nonce_i, X_i, seed_i))`
//!    where `X_i = x_i·G` (keygen: a fresh random `x_i`; reshare: the party's
//!    current share) and `seed_i` is 32 random bytes (reshare only).
//! 2. reveal, only once the peer's commitment is in hand: `nonce_i`, `X_i`,
//!    `seed_i`, and a Schnorr proof of knowledge of `x_i` bound to the
//!    session, the role and both commitments.
//! 3. finish: check the peer's reveal opens its commitment, the proof
//!    verifies, and (reshare) that `X_peer == X - X_i`; then
//!    * keygen: `X = X_client + X_custodian`, the new share is `x_i`;
//!    * reshare: `d = H(T("reshare-delta", session, C_client, C_custodian,
//!      seed_client, seed_custodian))`, the client's new share is `x_c + d`,
//!      the custodian's `x_s - d`, and `B_client + B_custodian == X` is checked.
//!
//! Why neither party can steer the result: a commitment is binding, so a
//! party cannot change `X_i` or `seed_i` after seeing the peer's values; it
//! is hiding (fresh 256-bit nonce), so the peer's values are chosen without
//! knowledge of them. The proof of knowledge alone already rules out the
//! rogue-key choice `X_i = T - X_peer`, whose discrete log the attacker
//! does not know. In a reshare the delta is a hash of both seeds, so it is
//! uniform if either party is honest.
//!
//! Suspended state (a party in state New as bytes, [`Exchange::suspend`] /
//! [`Exchange::resume`]; secret: seal it):
//!
//! ```text
//! state := "PT" | version u8 = 1 | curve u8 | role u8 | params (as in messages)
//!          | scalar [32] | nonce [32] | [ reshare only: seed [32] ]
//! ```
//!
//! The session digest, the public share `x_i·G`, the reshare's public key
//! (read from the params) and the commitment are recomputed on resume, so a
//! resumed party commits to exactly what the suspended one would have.

use zeroize::Zeroizing;

use super::group::{Group, Secret};
use super::message::{self, Input, Params, Protocol, Step};
use super::share::{check_id, CurveShare};
use super::transcript::{digests_equal, Proof, Transcript, HASH_LEN};
use super::{invalid, Kind, Role};
use crate::codec::{CodecError, Reader};
use crate::{rand, Error, Result};

/// The two magic bytes that start a suspended party ("party state").
pub const STATE_MAGIC: &[u8; 2] = b"PT";
/// The only suspended-state format version so far.
pub const STATE_VERSION: u8 = 1;
/// Fixed bytes before the parameters: magic, version, curve, role.
const STATE_HEADER_LEN: usize = 2 + 1 + 1 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Committed,
    Revealed,
    Done,
    Failed,
}

/// One party's side of a key generation or reshare session.
pub struct Exchange<G: Group> {
    role: Role,
    params: Params,
    /// SHA-256 of the curve and encoded parameters: what every hash binds.
    session: [u8; HASH_LEN],
    secret: Option<Secret<G>>,
    public: G::Point,
    /// Reshare only: the wallet's public key.
    public_key: Option<G::Point>,
    nonce: [u8; HASH_LEN],
    /// Reshare only: this party's contribution to the delta.
    seed: Option<Zeroizing<[u8; HASH_LEN]>>,
    commitment: [u8; HASH_LEN],
    peer_commitment: Option<[u8; HASH_LEN]>,
    state: State,
}

impl<G: Group> core::fmt::Debug for Exchange<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Exchange")
            .field("curve", &G::CURVE)
            .field("role", &self.role)
            .field("protocol", &self.params.protocol)
            .field("session_id", &self.params.session_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn random32() -> Result<[u8; HASH_LEN]> {
    let mut b = [0u8; HASH_LEN];
    rand::fill(&mut b)?;
    Ok(b)
}

impl<G: Group> Exchange<G> {
    fn start(
        role: Role,
        params: Params,
        secret: Secret<G>,
        public_key: Option<G::Point>,
    ) -> Result<Self> {
        let nonce = random32()?;
        let seed = match params.protocol {
            Protocol::KeyGen => None,
            Protocol::Reshare => Some(Zeroizing::new(random32()?)),
        };
        Self::assemble(role, params, secret, public_key, nonce, seed)
    }

    /// A party in state New from its parts: the session digest, public
    /// share and commitment are computed here, from the parts alone.
    fn assemble(
        role: Role,
        params: Params,
        secret: Secret<G>,
        public_key: Option<G::Point>,
        nonce: [u8; HASH_LEN],
        seed: Option<Zeroizing<[u8; HASH_LEN]>>,
    ) -> Result<Self> {
        check_id(&params.session_id, "session_id")?;
        check_id(&params.new_id, "the new share's id")?;
        let session = Transcript::new("session")
            .field(&[G::CURVE.id()])
            .field(&params.encode()?)
            .digest();
        let public = secret.public();
        let commitment = commitment::<G>(
            &session,
            role,
            &nonce,
            &public,
            seed.as_deref().map(|s| &s[..]),
        );
        Ok(Exchange {
            role,
            params,
            session,
            secret: Some(secret),
            public,
            public_key,
            nonce,
            seed,
            commitment,
            peer_commitment: None,
            state: State::New,
        })
    }

    /// Key generation for a new wallet: this party draws its share.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or over-long id.
    pub fn keygen(role: Role, session_id: &str, wallet_id: &str) -> Result<Self> {
        let params = Params {
            protocol: Protocol::KeyGen,
            session_id: session_id.to_owned(),
            new_kind: Kind::Signing,
            new_id: wallet_id.to_owned(),
            input: None,
        };
        Self::start(role, params, Secret::random()?, None)
    }

    /// A reshare of `share` into a new share of kind `new_kind` and id `new_id`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or over-long id.
    pub fn reshare(
        share: &CurveShare<G>,
        session_id: &str,
        new_kind: Kind,
        new_id: &str,
    ) -> Result<Self> {
        let params = Params {
            protocol: Protocol::Reshare,
            session_id: session_id.to_owned(),
            new_kind,
            new_id: new_id.to_owned(),
            input: Some(Input {
                public_key: G::encode(&share.public_key),
                kind: share.kind,
                id: share.id.clone(),
            }),
        };
        Self::start(
            share.role,
            params,
            share.secret.clone(),
            Some(share.public_key),
        )
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn protocol(&self) -> Protocol {
        self.params.protocol
    }

    pub fn session_id(&self) -> &str {
        &self.params.session_id
    }

    /// This party, before [`Exchange::commit`], as bytes (the format is in
    /// this module's documentation and in `docs/shares.md`):
    /// everything [`Exchange::resume`] needs to rebuild it, secret scalar,
    /// nonce and seed included. Seal it; never log it.
    ///
    /// Only state New can be suspended: a committed party's next step
    /// depends on what it has answered since, which this format does not hold.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] in any state but New.
    pub fn suspend(&self) -> Result<Zeroizing<Vec<u8>>> {
        if self.state != State::New {
            return Err(Error::arg(
                "suspend() cannot run now: only a party in its initial state \
                 (before commit()) can be suspended",
            ));
        }
        let secret = self.secret.as_ref().expect("held in state New");
        let params = self.params.encode()?;
        let seed_len = if self.seed.is_some() { HASH_LEN } else { 0 };
        let mut out = Zeroizing::new(Vec::with_capacity(
            STATE_HEADER_LEN + params.len() + 32 + HASH_LEN + seed_len,
        ));
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&[STATE_VERSION, G::CURVE.id(), self.role.id()]);
        out.extend_from_slice(&params);
        out.extend_from_slice(G::scalar_to_bytes(secret.get()).as_ref());
        out.extend_from_slice(&self.nonce);
        if let Some(seed) = &self.seed {
            out.extend_from_slice(seed.as_ref());
        }
        Ok(out)
    }

    /// Rebuilds a party suspended by [`Exchange::suspend`], in state New: its
    /// [`Exchange::commit`] returns the commitment the suspended party would have.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] for anything but the exact encoding of a
    /// suspended party on curve `G`: short or long input, bad magic, unknown
    /// version, another curve, an unknown role, protocol or kind, an empty
    /// or non-UTF-8 id, a reshare's public key that is not a valid point, a
    /// scalar that is zero or not below the group order, or (reshare) a
    /// public share equal to the public key. The message never holds the scalar.
    pub fn resume(bytes: &[u8]) -> Result<Self> {
        let truncated = |_: CodecError| invalid("suspended party state is truncated");
        let mut r = Reader::new(bytes);
        if r.take(STATE_MAGIC.len()).map_err(truncated)? != STATE_MAGIC {
            return Err(invalid("not a suspended party state (bad magic)"));
        }
        let version = r.u8().map_err(truncated)?;
        if version != STATE_VERSION {
            return Err(invalid(format!(
                "unsupported party state version {version} (this build reads version {STATE_VERSION})"
            )));
        }
        let curve = r.u8().map_err(truncated)?;
        if curve != G::CURVE.id() {
            return Err(invalid(match super::Curve::from_id(curve) {
                None => format!("unknown curve id {curve}"),
                Some(c) => format!("party state is for {}, not {}", c.name(), G::CURVE.name()),
            }));
        }
        let role = r.u8().map_err(truncated)?;
        let role = Role::from_id(role).ok_or_else(|| invalid(format!("unknown role {role}")))?;
        let params = Params::decode(&mut r, G::POINT_LEN)?;
        let public_key = match &params.input {
            None => None,
            Some(input) => Some(G::decode(&input.public_key).ok_or_else(|| {
                invalid(format!(
                    "the reshared wallet's public key is not a valid {} point",
                    G::CURVE.name()
                ))
            })?),
        };
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(r.array::<32>().map_err(truncated)?);
        let secret = G::scalar_from_canonical(&scalar)
            .map(Secret::<G>::new)
            .ok_or_else(|| invalid("party scalar is not canonical (not below the group order)"))?;
        if G::scalar_is_zero(secret.get()) {
            return Err(invalid("party scalar is zero"));
        }
        if public_key.is_some_and(|x| x == secret.public()) {
            // As for a serialized share: X = X_i would make the peer's share zero.
            return Err(invalid("party public share equals the public key"));
        }
        let nonce = *r.array::<HASH_LEN>().map_err(truncated)?;
        let seed = match params.protocol {
            Protocol::KeyGen => None,
            Protocol::Reshare => Some(Zeroizing::new(*r.array::<HASH_LEN>().map_err(truncated)?)),
        };
        if !r.rest().is_empty() {
            return Err(invalid(format!(
                "party state has {} trailing bytes",
                r.rest().len()
            )));
        }
        // Ids are str8 fields, so at most 255 bytes; decode refused empty ones.
        Self::assemble(role, params, secret, public_key, nonce, seed)
            .map_err(|e| invalid(e.to_string()))
    }

    /// Step 1: this party's commitment message.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if called twice or after the session ended.
    pub fn commit(&mut self) -> Result<Vec<u8>> {
        self.expect(State::New, "commit()")?;
        self.state = State::Committed;
        Ok(message::encode(
            Step::Commit,
            G::CURVE,
            self.role,
            &self.params.encode()?,
            &self.commitment,
        ))
    }

    /// Step 2: takes the peer's commitment and returns this party's reveal.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] if the peer's message does not fit this
    /// session (the session is then over); [`Error::InvalidArgument`] out of order.
    pub fn reveal(&mut self, peer_commitment: &[u8]) -> Result<Vec<u8>> {
        self.expect(State::Committed, "reveal()")?;
        let peer = self.guard(|s| {
            let body = message::parse(
                peer_commitment,
                Step::Commit,
                G::CURVE,
                s.role,
                &s.params,
                HASH_LEN,
            )?;
            let c: [u8; HASH_LEN] = body.try_into().expect("length checked");
            if digests_equal(&c, &s.commitment) {
                // Only a party replaying this one's own commitment gets here
                // (the sender role is checked): refuse the echo.
                return Err(invalid("the peer's commitment is this party's own"));
            }
            Ok(c)
        })?;
        self.peer_commitment = Some(peer);
        let secret = self.secret.as_ref().expect("held until finish");
        let proof = Proof::<G>::prove(secret, &self.public, &self.proof_context(self.role))?;
        let mut body = self.nonce.to_vec();
        body.extend_from_slice(&G::encode(&self.public));
        body.extend_from_slice(&proof.encode());
        if let Some(seed) = &self.seed {
            body.extend_from_slice(seed.as_ref());
        }
        self.state = State::Revealed;
        Ok(message::encode(
            Step::Reveal,
            G::CURVE,
            self.role,
            &self.params.encode()?,
            &body,
        ))
    }

    /// Step 3: checks the peer's reveal and returns this party's new share.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] if the reveal does not open the peer's
    /// commitment, its proof fails, or its public share does not pair with
    /// this party's (the session is then over); [`Error::InvalidArgument`] out of order.
    pub fn finish(&mut self, peer_reveal: &[u8]) -> Result<CurveShare<G>> {
        self.expect(State::Revealed, "finish()")?;
        let share = self.guard(|s| s.finish_inner(peer_reveal))?;
        self.state = State::Done;
        Ok(share)
    }

    fn finish_inner(&mut self, peer_reveal: &[u8]) -> Result<CurveShare<G>> {
        let peer_role = self.role.peer();
        let seed_len = if self.seed.is_some() { HASH_LEN } else { 0 };
        let body_len = HASH_LEN + G::POINT_LEN + Proof::<G>::LEN + seed_len;
        let body = message::parse(
            peer_reveal,
            Step::Reveal,
            G::CURVE,
            self.role,
            &self.params,
            body_len,
        )?;
        let (nonce, rest) = body.split_at(HASH_LEN);
        let (x_peer, rest) = rest.split_at(G::POINT_LEN);
        let (proof, peer_seed) = rest.split_at(Proof::<G>::LEN);
        let x_peer = G::decode(x_peer)
            .ok_or_else(|| invalid("the peer's public share is not a valid point"))?;
        if let Some(x) = self.public_key {
            // Reshare: both shares must be the two halves of the same key.
            if self.public + x_peer != x {
                return Err(invalid(
                    "the peer's public share does not pair with this party's: \
                     X_client + X_custodian != X (shares of different pairs or wallets)",
                ));
            }
        }
        let peer_seed = (!peer_seed.is_empty()).then_some(peer_seed);
        let opened = commitment::<G>(
            &self.session,
            peer_role,
            nonce.try_into().expect("length checked"),
            &x_peer,
            peer_seed,
        );
        let peer_commitment = self.peer_commitment.expect("set by reveal");
        if !digests_equal(&opened, &peer_commitment) {
            return Err(invalid(
                "the peer's reveal does not open its commitment: its public share or \
                 seed changed after it committed",
            ));
        }
        let proof = Proof::<G>::decode(proof)
            .ok_or_else(|| invalid("the peer's proof of knowledge is malformed"))?;
        if !proof.verify(&x_peer, &self.proof_context(peer_role)) {
            return Err(invalid(
                "the peer's proof of knowledge of its share does not verify",
            ));
        }
        let secret = self.secret.take().expect("held until finish");
        match (self.public_key, peer_seed) {
            (None, None) => self.finish_keygen(secret, x_peer),
            (Some(x), Some(peer_seed)) => self.finish_reshare(secret, x, x_peer, peer_seed),
            _ => unreachable!("keygen has no public key and no seed; reshare has both"),
        }
    }

    fn finish_keygen(&self, secret: Secret<G>, x_peer: G::Point) -> Result<CurveShare<G>> {
        let x = self.public + x_peer;
        if G::is_identity(&x) {
            return Err(invalid("the joint public key is the identity"));
        }
        Ok(CurveShare {
            kind: Kind::Signing,
            role: self.role,
            id: self.params.new_id.clone(),
            secret,
            public_share: self.public,
            public_key: x,
        })
    }

    fn finish_reshare(
        &self,
        secret: Secret<G>,
        x: G::Point,
        x_peer: G::Point,
        peer_seed: &[u8],
    ) -> Result<CurveShare<G>> {
        let own_seed = self.seed.as_ref().expect("reshare has a seed");
        let peer_commitment = self.peer_commitment.expect("set by reveal");
        let (c_client, c_custodian, s_client, s_custodian) = match self.role {
            Role::Client => (
                &self.commitment,
                &peer_commitment,
                own_seed.as_ref(),
                peer_seed,
            ),
            Role::Custodian => (
                &peer_commitment,
                &self.commitment,
                peer_seed,
                own_seed.as_ref(),
            ),
        };
        let d = Secret::<G>::new(
            Transcript::new("reshare-delta")
                .field(&self.session)
                .field(c_client)
                .field(c_custodian)
                .field(s_client)
                .field(s_custodian)
                .scalar::<G>(),
        );
        let d_pub = d.public();
        // b_client = x_client + d, b_custodian = x_custodian - d: the sum is kept.
        let (new_secret, new_public, new_peer) = match self.role {
            Role::Client => (
                Secret::<G>::new(*secret.get() + *d.get()),
                self.public + d_pub,
                x_peer - d_pub,
            ),
            Role::Custodian => (
                Secret::<G>::new(*secret.get() - *d.get()),
                self.public - d_pub,
                x_peer + d_pub,
            ),
        };
        if G::is_identity(&new_public) || G::is_identity(&new_peer) {
            // Probability about 2^-252: retrying with a new session is the answer.
            return Err(invalid("a new share came out zero: run a new session"));
        }
        if new_secret.public() != new_public || new_public + new_peer != x {
            return Err(invalid(
                "new public shares do not add up to the public key: B_client + B_custodian != X",
            ));
        }
        Ok(CurveShare {
            kind: self.params.new_kind,
            role: self.role,
            id: self.params.new_id.clone(),
            secret: new_secret,
            public_share: new_public,
            public_key: x,
        })
    }

    /// The proof context for `role`: session, role, both commitments.
    fn proof_context(&self, role: Role) -> [u8; HASH_LEN] {
        let peer = self.peer_commitment.expect("set by reveal");
        let (c_client, c_custodian) = match self.role {
            Role::Client => (&self.commitment, &peer),
            Role::Custodian => (&peer, &self.commitment),
        };
        Transcript::new("proof-context")
            .field(&self.session)
            .field(&[role.id()])
            .field(c_client)
            .field(c_custodian)
            .digest()
    }

    fn expect(&self, want: State, call: &str) -> Result<()> {
        if self.state == want {
            return Ok(());
        }
        let why = match self.state {
            State::Failed => "this session failed verification; start a new one",
            State::Done => "this session has finished",
            _ => "the steps run once each, in order: commit(), reveal(), finish()",
        };
        Err(Error::arg(format!("{call} cannot run now: {why}")))
    }

    /// Runs a verification step; on failure the session is over and its
    /// secret wiped, so a peer gets one attempt per session.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let out = f(self);
        if out.is_err() {
            self.state = State::Failed;
            self.secret = None;
            self.seed = None;
        }
        out
    }
}

fn commitment<G: Group>(
    session: &[u8; HASH_LEN],
    role: Role,
    nonce: &[u8; HASH_LEN],
    public: &G::Point,
    seed: Option<&[u8]>,
) -> [u8; HASH_LEN] {
    Transcript::new("commit")
        .field(session)
        .field(&[role.id()])
        .field(nonce)
        .field(&G::encode(public))
        .field(seed.unwrap_or_default())
        .digest()
}

#[cfg(test)]
mod tests {
    use super::super::{ed25519::Ed25519, secp256k1::Secp256k1};
    use super::*;

    /// A rogue custodian that (somehow) learns the client's public share
    /// before committing picks `X_r = T - X_c` so that `X = T`, a key it
    /// knows. Its commitment then opens, but it cannot prove knowledge of
    /// the discrete log of `X_r`: the proof check refuses it.
    fn rogue_key_is_refused<G: Group>() {
        let mut client = Exchange::<G>::keygen(Role::Client, "kg", "w").unwrap();
        let mut honest = Exchange::<G>::keygen(Role::Custodian, "kg", "w").unwrap();
        let cc = client.commit().unwrap();
        let t = Secret::<G>::random().unwrap();
        let rogue_public = t.public() - client.public;
        let nonce = [7u8; HASH_LEN];
        let rogue_commitment = commitment::<G>(
            &client.session,
            Role::Custodian,
            &nonce,
            &rogue_public,
            None,
        );
        // The honest custodian's messages, with the rogue's values swapped in.
        let mut commit_msg = honest.commit().unwrap();
        let n = commit_msg.len();
        commit_msg[n - HASH_LEN..].copy_from_slice(&rogue_commitment);
        client.reveal(&commit_msg).unwrap();
        let honest_reveal = honest.reveal(&cc).unwrap();
        let header = honest_reveal.len() - (HASH_LEN + G::POINT_LEN + Proof::<G>::LEN);
        // Its best proof: one for T, whose discrete log it knows.
        let proof = Proof::<G>::prove(&t, &t.public(), b"").unwrap();
        let mut forged = honest_reveal[..header].to_vec();
        forged.extend_from_slice(&nonce);
        forged.extend_from_slice(&G::encode(&rogue_public));
        forged.extend_from_slice(&proof.encode());
        let err = client.finish(&forged).unwrap_err().to_string();
        assert!(err.contains("proof of knowledge"), "{err}");
    }

    #[test]
    fn rogue_key_attack_fails_on_the_proof() {
        rogue_key_is_refused::<Secp256k1>();
        rogue_key_is_refused::<Ed25519>();
    }
}
