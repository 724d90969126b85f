//! Wycheproof AEAD vectors (AES-GCM, AES-GCM-SIV, ChaCha20-Poly1305,
//! XChaCha20-Poly1305) against [`Aead`], every file through [`run`].
//!
//! The files are read in place from `../../../shared/vectors/wycheproof`
//! relative to this crate, or from `$PORTAL_WYCHEPROOF_DIR`; when the folder
//! is absent the test says so and skips. A `valid` case must reproduce
//! `ct || tag` and open back to the message; an `invalid` case must fail with
//! `InvalidTag` (or `InvalidArgument` for parameters the API refuses) and leave
//! no output; an `acceptable` case (none in the current files) may be refused,
//! but if accepted must match. Parameters the API does not offer (tags other
//! than 128 bits, nonce lengths outside the bounds below) are counted as
//! skipped-unsupported, after checking that the API refuses them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use portal_crypto::aead::{Aead, Algorithm, TAG_LEN};
use portal_crypto::Error;
use serde_json::Value;

/// The files, and the least number of valid cases each must run (so a broken
/// loader or filter cannot pass by running nothing).
const FILES: [(&str, Algorithm, usize); 4] = [
    ("aes_gcm_test.json", Algorithm::AesGcm, 200),
    ("aes_gcm_siv_test.json", Algorithm::AesGcmSiv, 130),
    (
        "chacha20_poly1305_test.json",
        Algorithm::ChaCha20Poly1305,
        250,
    ),
    (
        "xchacha20_poly1305_test.json",
        Algorithm::XChaCha20Poly1305,
        240,
    ),
];

/// Nonce lengths the API offers (the bounds `cryptography`'s classes use),
/// written out here rather than taken from the code under test.
fn nonce_supported(alg: Algorithm, len: usize) -> bool {
    match alg {
        Algorithm::AesGcm => (8..=128).contains(&len),
        Algorithm::AesGcmSiv | Algorithm::ChaCha20Poly1305 => len == 12,
        Algorithm::XChaCha20Poly1305 => len == 24,
    }
}

fn key_supported(alg: Algorithm, len: usize) -> bool {
    match alg {
        Algorithm::AesGcm | Algorithm::AesGcmSiv => matches!(len, 16 | 24 | 32),
        Algorithm::ChaCha20Poly1305 | Algorithm::XChaCha20Poly1305 => len == 32,
    }
}

fn vectors_dir() -> PathBuf {
    match std::env::var_os("PORTAL_WYCHEPROOF_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/wycheproof"),
    }
}

/// Writes to stderr even for a passing test: the harness captures
/// `eprintln!` but not direct writes, and the counts should always show.
fn report(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

enum Outcome {
    Valid,
    RejectedTag,
    RejectedParam,
    AcceptableRejected,
    /// What the API does not offer: ("nonce" | "key" | "tag", size in bits).
    Skipped(&'static str, usize),
}

fn field(t: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = t[name].as_str().ok_or(format!("no {name}"))?;
    hex::decode(text).map_err(|e| format!("{name}: {e}"))
}

/// Checks one case; `Err` says what went wrong.
fn check(alg: Algorithm, tag_bits: u64, t: &Value) -> Result<Outcome, String> {
    let result = t["result"].as_str().ok_or("no result")?;
    let (key, iv, aad, msg) = (
        field(t, "key")?,
        field(t, "iv")?,
        field(t, "aad")?,
        field(t, "msg")?,
    );
    let sealed = [field(t, "ct")?, field(t, "tag")?].concat();
    if tag_bits != 8 * TAG_LEN as u64 {
        return Ok(Outcome::Skipped("tag", tag_bits as usize));
    }
    if !key_supported(alg, key.len()) || !nonce_supported(alg, iv.len()) {
        // The API must refuse these as the caller's mistake, whatever the input.
        let refused = match Aead::new(alg, &key) {
            Err(Error::InvalidArgument(_)) => true,
            Err(e) => return Err(format!("key refused with {e:?}")),
            Ok(a) => {
                matches!(a.seal(&iv, &msg, &aad), Err(Error::InvalidArgument(_)))
                    && matches!(a.open(&iv, &sealed, &aad), Err(Error::InvalidArgument(_)))
            }
        };
        if !refused {
            return Err("unsupported parameters were not refused with InvalidArgument".into());
        }
        return Ok(match result {
            "invalid" => Outcome::RejectedParam,
            _ if key_supported(alg, key.len()) => Outcome::Skipped("nonce", 8 * iv.len()),
            _ => Outcome::Skipped("key", 8 * key.len()),
        });
    }
    let a = Aead::new(alg, &key).map_err(|e| format!("new: {e:?}"))?;

    if result == "invalid" {
        match a.open(&iv, &sealed, &aad) {
            Err(Error::InvalidTag) => {}
            Ok(_) => return Err("open returned output".into()),
            Err(e) => return Err(format!("open: {e:?}, not InvalidTag")),
        }
        let mut out = vec![0xA5u8; sealed.len().saturating_sub(TAG_LEN)];
        match a.open_into(&iv, &sealed, &aad, &mut out) {
            Err(Error::InvalidTag) => {}
            other => return Err(format!("open_into: {other:?}, not InvalidTag")),
        }
        if out.iter().any(|&b| b != 0) {
            return Err("a failed open_into left data in the buffer".into());
        }
        return Ok(Outcome::RejectedTag);
    }

    let reproduce = || -> Result<(), String> {
        let got = a
            .seal(&iv, &msg, &aad)
            .map_err(|e| format!("seal: {e:?}"))?;
        if got != sealed {
            return Err(format!("seal gave {}", hex::encode(&got)));
        }
        let mut out = vec![0u8; sealed.len()];
        a.seal_into(&iv, &msg, &aad, &mut out)
            .map_err(|e| format!("seal_into: {e:?}"))?;
        if out != sealed {
            return Err("seal_into output differs".into());
        }
        if a.open(&iv, &sealed, &aad)
            .map_err(|e| format!("open: {e:?}"))?
            != msg
        {
            return Err("open output differs".into());
        }
        Ok(())
    };
    match (reproduce(), result) {
        (Ok(()), _) => Ok(Outcome::Valid),
        (Err(_), "acceptable") => Ok(Outcome::AcceptableRejected),
        (Err(e), _) => Err(e),
    }
}

/// Runs every case of `file` with `alg`. `Ok` is the summary line; `Err` the
/// summary plus every failing tcId.
fn run(dir: &Path, file: &str, alg: Algorithm, min_valid: usize) -> Result<String, String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let (mut total, mut valid, mut tag, mut param, mut acc_rejected) = (0, 0, 0, 0, 0);
    let mut skipped = BTreeMap::<(&str, usize), usize>::new();
    let mut failures = Vec::new();
    for group in doc["testGroups"].as_array().ok_or("no testGroups")? {
        let tag_bits = group["tagSize"].as_u64().ok_or("no tagSize")?;
        for t in group["tests"].as_array().ok_or("no tests")? {
            total += 1;
            match check(alg, tag_bits, t) {
                Ok(Outcome::Valid) => valid += 1,
                Ok(Outcome::RejectedTag) => tag += 1,
                Ok(Outcome::RejectedParam) => param += 1,
                Ok(Outcome::AcceptableRejected) => acc_rejected += 1,
                Ok(Outcome::Skipped(what, bits)) => *skipped.entry((what, bits)).or_default() += 1,
                Err(e) => failures.push(format!(
                    "tcId {} ({}, {:?}): {e}",
                    t["tcId"],
                    t["result"].as_str().unwrap_or("?"),
                    t["comment"].as_str().unwrap_or("")
                )),
            }
        }
    }
    let n_skipped: usize = skipped.values().sum();
    let reasons: Vec<String> = skipped
        .iter()
        .map(|((what, bits), n)| format!("{n} {bits}-bit {what}"))
        .collect();
    let mut summary = format!(
        "{file}: {total} cases, {} run ({valid} valid reproduced, {tag} invalid rejected \
         (InvalidTag), {param} invalid rejected (InvalidArgument), {acc_rejected} acceptable \
         rejected), {n_skipped} skipped-unsupported",
        total - n_skipped,
    );
    if !reasons.is_empty() {
        summary += &format!(" ({})", reasons.join(", "));
    }
    if !failures.is_empty() {
        let n = failures.len();
        return Err(format!(
            "{summary}\n    {n} failed:\n    {}",
            failures.join("\n    ")
        ));
    }
    if doc["numberOfTests"].as_u64() != Some(total as u64) {
        return Err(format!(
            "{file}: read {total} cases, the file says {}",
            doc["numberOfTests"]
        ));
    }
    if valid < min_valid {
        return Err(format!(
            "{summary}\n    only {valid} valid cases ran, expected {min_valid}"
        ));
    }
    Ok(summary)
}

/// One test for the four files, so the counts print as one block.
#[test]
fn wycheproof_aead_vectors() {
    let dir = vectors_dir();
    if !dir.is_dir() {
        report(&format!(
            "skipping the Wycheproof AEAD vectors: {} not found (set PORTAL_WYCHEPROOF_DIR)",
            dir.display()
        ));
        return;
    }
    let results: Vec<Result<String, String>> = FILES
        .iter()
        .map(|&(file, alg, min_valid)| run(&dir, file, alg, min_valid))
        .collect();
    let lines: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(String::as_str, String::as_str))
        .collect();
    report(&format!(
        "\nWycheproof AEAD vectors\n  {}",
        lines.join("\n  ")
    ));
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
