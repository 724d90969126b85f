//! `portal_core._rust.shares`: shares of MPC wallet keys, the key generation
//! and reshare sessions, eject. Secrets stay inside the Rust objects; only
//! public messages, public points and (on request) serialized shares and
//! ejected keys cross into Python.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use portal_crypto::shares::{self as sh, Curve, Expected, Kind, Role, Session};

use crate::buffers::input;
use crate::errors::to_py;

fn curve(name: &str) -> PyResult<Curve> {
    Curve::from_name(name).map_err(to_py)
}

fn role(name: &str) -> PyResult<Role> {
    Role::from_name(name).map_err(to_py)
}

fn kind(name: &str) -> PyResult<Kind> {
    Kind::from_name(name).map_err(to_py)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `repr()` of a Python str, so reprs quote ids as Python does.
fn q(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map_or_else(|_| format!("{s:?}"), |r| r.to_string())
}

/// One party's share of a wallet key (secp256k1 or ed25519).
///
/// The scalar never leaves Rust except through `to_secret_bytes()`; `repr`
/// shows only public fields.
#[pyclass(frozen, module = "portal_core._rust.shares", name = "Share")]
pub struct PyShare(sh::Share);

#[pymethods]
impl PyShare {
    #[getter]
    fn curve(&self) -> &'static str {
        self.0.curve().name()
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind().name()
    }

    #[getter]
    fn role(&self) -> &'static str {
        self.0.role().name()
    }

    #[getter]
    fn share_id(&self) -> &str {
        self.0.id()
    }

    #[getter]
    fn public_share<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.public_share())
    }

    #[getter]
    fn peer_public_share<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.peer_public_share())
    }

    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.public_key())
    }

    #[getter]
    fn address(&self) -> String {
        self.0.address()
    }

    /// The serialized share, scalar included: only for sealing.
    fn to_secret_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.to_secret_bytes())
    }

    /// Decodes and verifies a serialized share; checks each expected field given.
    #[staticmethod]
    #[pyo3(signature = (data, *, curve=None, kind=None, role=None, share_id=None, public_share=None, public_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_secret_bytes(
        data: &Bound<'_, PyAny>,
        curve: Option<&str>,
        kind: Option<&str>,
        role: Option<&str>,
        share_id: Option<&str>,
        public_share: Option<&Bound<'_, PyAny>>,
        public_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let data = input(data, "data")?;
        let public_share = public_share.map(|b| input(b, "public_share")).transpose()?;
        let public_key = public_key.map(|b| input(b, "public_key")).transpose()?;
        let want = Expected {
            curve: curve.map(self::curve).transpose()?,
            kind: kind.map(self::kind).transpose()?,
            role: role.map(self::role).transpose()?,
            id: share_id,
            public_share: public_share.as_ref().map(|b| b.as_slice()),
            public_key: public_key.as_ref().map(|b| b.as_slice()),
        };
        let share = sh::Share::from_secret_bytes(data.as_slice()).map_err(to_py)?;
        share.check(&want).map_err(to_py)?;
        Ok(PyShare(share))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Share(curve='{}', kind='{}', role='{}', share_id={}, public_share='{}')",
            self.0.curve().name(),
            self.0.kind().name(),
            self.0.role().name(),
            q(py, self.0.id()),
            hex(&self.0.public_share()),
        )
    }
}

/// The steps shared by `KeyGen` and `Reshare`.
fn suspend<'py>(s: &Session, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
    // The Python copy cannot be wiped (bytes are immutable); the Rust one is, when dropped.
    Ok(PyBytes::new(py, &s.suspend().map_err(to_py)?))
}

fn commit<'py>(s: &mut Session, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &s.commit().map_err(to_py)?))
}

fn reveal<'py>(
    s: &mut Session,
    py: Python<'py>,
    peer_commitment: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let msg = input(peer_commitment, "peer_commitment")?;
    Ok(PyBytes::new(py, &s.reveal(msg.as_slice()).map_err(to_py)?))
}

fn finish(s: &mut Session, peer_reveal: &Bound<'_, PyAny>) -> PyResult<PyShare> {
    let msg = input(peer_reveal, "peer_reveal")?;
    s.finish(msg.as_slice()).map(PyShare).map_err(to_py)
}

fn session_repr(py: Python<'_>, name: &str, s: &Session) -> String {
    format!(
        "{name}(curve='{}', role='{}', session_id={})",
        s.curve().name(),
        s.role().name(),
        q(py, s.session_id())
    )
}

/// The methods both protocol classes share (one party's side of a session):
/// the curve/role/session getters, the three protocol steps and a redacted
/// repr. `$new` is the class's own constructor.
macro_rules! session_class {
    ($ty:ident, $name:literal, $doc:literal, { $($new:tt)* }) => {
        #[doc = $doc]
        #[pyclass(module = "portal_core._rust.shares", name = $name)]
        pub struct $ty(Session);

        #[pymethods]
        impl $ty {
            $($new)*

            #[getter]
            fn curve(&self) -> &'static str {
                self.0.curve().name()
            }

            #[getter]
            fn role(&self) -> &'static str {
                self.0.role().name()
            }

            #[getter]
            fn session_id(&self) -> &str {
                self.0.session_id()
            }

            fn suspend<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                suspend(&self.0, py)
            }

            fn commit<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                commit(&mut self.0, py)
            }

            fn reveal<'py>(
                &mut self,
                py: Python<'py>,
                peer_commitment: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyBytes>> {
                reveal(&mut self.0, py, peer_commitment)
            }

            fn finish(&mut self, peer_reveal: &Bound<'_, PyAny>) -> PyResult<PyShare> {
                finish(&mut self.0, peer_reveal)
            }

            fn __repr__(&self, py: Python<'_>) -> String {
                session_repr(py, $name, &self.0)
            }
        }
    };
}

session_class!(
    KeyGen,
    "KeyGen",
    "One party's side of the distributed key generation of a new wallet.",
    {
        #[new]
        #[pyo3(signature = (curve, role, session_id, *, wallet_id))]
        fn new(curve: &str, role: &str, session_id: &str, wallet_id: &str) -> PyResult<Self> {
            let s = Session::keygen(
                self::curve(curve)?,
                self::role(role)?,
                session_id,
                wallet_id,
            );
            s.map(KeyGen).map_err(to_py)
        }
    }
);

session_class!(
    Reshare,
    "Reshare",
    "One party's side of a reshare: backup, recovery or refresh.",
    {
        #[new]
        #[pyo3(signature = (share, session_id, *, new_kind, new_share_id))]
        fn new(
            share: PyRef<'_, PyShare>,
            session_id: &str,
            new_kind: &str,
            new_share_id: &str,
        ) -> PyResult<Self> {
            Session::reshare(&share.0, session_id, kind(new_kind)?, new_share_id)
                .map(Reshare)
                .map_err(to_py)
        }
    }
);

/// The party a `suspend()` wrote, in its initial state: a `KeyGen` or a `Reshare`.
#[pyfunction]
fn resume<'py>(py: Python<'py>, state: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let state = input(state, "state")?;
    let session = Session::resume(state.as_slice()).map_err(to_py)?;
    Ok(match session.protocol() {
        sh::Protocol::KeyGen => Bound::new(py, KeyGen(session))?.into_any(),
        sh::Protocol::Reshare => Bound::new(py, Reshare(session))?.into_any(),
    })
}

/// A wallet's private key, reconstructed by `eject`. `repr` never shows it.
#[pyclass(frozen, module = "portal_core._rust.shares", name = "EjectedKey")]
pub struct EjectedKey(sh::Ejected);

#[pymethods]
impl EjectedKey {
    #[getter]
    fn curve(&self) -> &'static str {
        self.0.curve.name()
    }

    #[getter]
    fn private_key(&self) -> &str {
        self.0.private_key.as_str()
    }

    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.public_key)
    }

    #[getter]
    fn address(&self) -> &str {
        &self.0.address
    }

    fn __repr__(&self) -> String {
        format!(
            "EjectedKey(curve='{}', address='{}', private_key=<redacted>)",
            self.0.curve.name(),
            self.0.address
        )
    }
}

/// Combines the client's and the custodian's shares of one pairing into the
/// private key, checked against the wallet's public key.
#[pyfunction]
fn eject(
    client_share: PyRef<'_, PyShare>,
    custodian_share: PyRef<'_, PyShare>,
) -> PyResult<EjectedKey> {
    sh::eject(&client_share.0, &custodian_share.0)
        .map(EjectedKey)
        .map_err(to_py)
}

/// The address of an encoded public key on `curve`.
#[pyfunction]
fn address(curve: &str, public_key: &Bound<'_, PyAny>) -> PyResult<String> {
    let pk = input(public_key, "public_key")?;
    sh::address(self::curve(curve)?, pk.as_slice()).map_err(to_py)
}

/// Checks `client_public_share + custodian_public_share == public_key`.
#[pyfunction]
fn check_public_shares(
    curve: &str,
    public_key: &Bound<'_, PyAny>,
    client_public_share: &Bound<'_, PyAny>,
    custodian_public_share: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let pk = input(public_key, "public_key")?;
    let c = input(client_public_share, "client_public_share")?;
    let s = input(custodian_public_share, "custodian_public_share")?;
    sh::check_public_shares(
        self::curve(curve)?,
        pk.as_slice(),
        c.as_slice(),
        s.as_slice(),
    )
    .map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShare>()?;
    m.add_class::<KeyGen>()?;
    m.add_class::<Reshare>()?;
    m.add_class::<EjectedKey>()?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(eject, m)?)?;
    m.add_function(wrap_pyfunction!(address, m)?)?;
    m.add_function(wrap_pyfunction!(check_public_shares, m)?)?;
    m.add("SECP256K1", Curve::Secp256k1.name())?;
    m.add("ED25519", Curve::Ed25519.name())?;
    m.add("CLIENT", Role::Client.name())?;
    m.add("CUSTODIAN", Role::Custodian.name())?;
    m.add("SIGNING", Kind::Signing.name())?;
    m.add("BACKUP", Kind::Backup.name())?;
    m.add("FORMAT_VERSION", sh::FORMAT_VERSION)?;
    m.add("STATE_VERSION", sh::STATE_VERSION)?;
    Ok(())
}
