//! The protocols end to end, with both parties in-process, on both curves.

use super::*;
use crate::Error;

const CURVES: [Curve; 2] = [Curve::Secp256k1, Curve::Ed25519];

/// Runs one session between a client and a custodian; returns their shares.
fn run(mut client: Session, mut custodian: Session) -> Result<(Share, Share)> {
    let (cc, cs) = (client.commit()?, custodian.commit()?);
    let (rc, rs) = (client.reveal(&cs)?, custodian.reveal(&cc)?);
    Ok((client.finish(&rs)?, custodian.finish(&rc)?))
}

fn keygen(curve: Curve, wallet: &str) -> (Share, Share) {
    run(
        Session::keygen(curve, Role::Client, "kg-1", wallet).unwrap(),
        Session::keygen(curve, Role::Custodian, "kg-1", wallet).unwrap(),
    )
    .unwrap()
}

fn reshare(pair: &(Share, Share), session: &str, kind: Kind, id: &str) -> Result<(Share, Share)> {
    run(
        Session::reshare(&pair.0, session, kind, id)?,
        Session::reshare(&pair.1, session, kind, id)?,
    )
}

fn message_of(e: Result<impl Sized>) -> String {
    match e {
        Err(Error::InvalidShare(m)) => m,
        Err(other) => panic!("expected InvalidShare, got {other:?}"),
        Ok(_) => panic!("expected InvalidShare, got success"),
    }
}

#[test]
fn keygen_gives_a_pair_both_parties_agree_on() {
    for curve in CURVES {
        let (c, s) = keygen(curve, "wallet-1");
        assert_eq!(c.public_key(), s.public_key());
        assert_eq!(c.peer_public_share(), s.public_share());
        assert_eq!(s.peer_public_share(), c.public_share());
        assert_ne!(c.public_share(), s.public_share());
        assert_eq!(
            (c.kind(), c.role(), c.id()),
            (Kind::Signing, Role::Client, "wallet-1")
        );
        assert_eq!(s.role(), Role::Custodian);
        check_public_shares(curve, &c.public_key(), &c.public_share(), &s.public_share()).unwrap();
        let key = eject(&c, &s).unwrap();
        assert_eq!(key.public_key, c.public_key());
        assert_eq!(key.address, c.address());
    }
}

#[test]
fn two_keygens_give_different_wallets() {
    for curve in CURVES {
        assert_ne!(
            keygen(curve, "w").0.public_key(),
            keygen(curve, "w").0.public_key()
        );
    }
}

/// Replaces the public share inside a reveal message with another valid point.
fn swap_public_share(reveal: &[u8], curve: Curve, replacement: &[u8]) -> Vec<u8> {
    let p = curve.point_len();
    let proof = p + 32;
    let seed = if reveal[6] == Protocol::Reshare as u8 {
        32
    } else {
        0
    };
    let at = reveal.len() - seed - proof - p;
    let mut out = reveal.to_vec();
    out[at..at + p].copy_from_slice(replacement);
    out
}

#[test]
fn a_party_cannot_change_its_public_share_after_committing() {
    for curve in CURVES {
        let mut client = Session::keygen(curve, Role::Client, "kg", "w").unwrap();
        let mut custodian = Session::keygen(curve, Role::Custodian, "kg", "w").unwrap();
        let (cc, cs) = (client.commit().unwrap(), custodian.commit().unwrap());
        let _rc = client.reveal(&cs).unwrap();
        let rs = custodian.reveal(&cc).unwrap();
        // The custodian, having seen the client's share, swaps its own for another.
        let other = keygen(curve, "x").1.public_share();
        let forged = swap_public_share(&rs, curve, &other);
        let msg = message_of(client.finish(&forged));
        assert!(msg.contains("does not open its commitment"), "{msg}");
        // The session is over: the honest reveal is not accepted afterwards.
        assert!(matches!(client.finish(&rs), Err(Error::InvalidArgument(_))));
    }
}

#[test]
fn tampered_proof_is_refused() {
    for curve in CURVES {
        let mut client = Session::keygen(curve, Role::Client, "kg", "w").unwrap();
        let mut custodian = Session::keygen(curve, Role::Custodian, "kg", "w").unwrap();
        let (cc, cs) = (client.commit().unwrap(), custodian.commit().unwrap());
        client.reveal(&cs).unwrap();
        let mut rs = custodian.reveal(&cc).unwrap();
        // The last byte of the proof's s (the commitment does not cover the proof).
        let n = rs.len();
        rs[n - 2] ^= 0x01;
        let msg = message_of(client.finish(&rs));
        assert!(msg.contains("proof of knowledge"), "{msg}");
    }
}

#[test]
fn reflected_commitment_and_reveal_are_refused() {
    for curve in CURVES {
        let mut client = Session::keygen(curve, Role::Client, "kg", "w").unwrap();
        let cc = client.commit().unwrap();
        let msg = message_of(client.reveal(&cc));
        assert!(msg.contains("not from the custodian"), "{msg}");
        // With the sender byte rewritten, the echo is still caught.
        let mut client = Session::keygen(curve, Role::Client, "kg", "w").unwrap();
        let mut echo = client.commit().unwrap();
        echo[5] = Role::Custodian.id();
        assert!(message_of(client.reveal(&echo)).contains("own"));
    }
}

#[test]
fn sessions_must_agree_on_their_parameters() {
    for curve in CURVES {
        let mut client = Session::keygen(curve, Role::Client, "kg-a", "w").unwrap();
        let mut other = Session::keygen(curve, Role::Custodian, "kg-b", "w").unwrap();
        client.commit().unwrap();
        let msg = message_of(client.reveal(&other.commit().unwrap()));
        assert!(msg.contains("session"), "{msg}");

        let mut client = Session::keygen(curve, Role::Client, "kg", "w-1").unwrap();
        let mut other = Session::keygen(curve, Role::Custodian, "kg", "w-2").unwrap();
        client.commit().unwrap();
        let msg = message_of(client.reveal(&other.commit().unwrap()));
        assert!(msg.contains("new share's id"), "{msg}");
    }
    let mut client = Session::keygen(Curve::Secp256k1, Role::Client, "kg", "w").unwrap();
    let mut other = Session::keygen(Curve::Ed25519, Role::Custodian, "kg", "w").unwrap();
    client.commit().unwrap();
    let msg = message_of(client.reveal(&other.commit().unwrap()));
    assert!(msg.contains("ED25519"), "{msg}");
}

#[test]
fn steps_run_once_in_order() {
    let mut s = Session::keygen(Curve::Ed25519, Role::Client, "kg", "w").unwrap();
    assert!(matches!(s.reveal(b"x"), Err(Error::InvalidArgument(_))));
    assert!(matches!(s.finish(b"x"), Err(Error::InvalidArgument(_))));
    s.commit().unwrap();
    assert!(matches!(s.commit(), Err(Error::InvalidArgument(_))));
    assert!(matches!(s.reveal(b"garbage"), Err(Error::InvalidShare(_))));
    let e = s.reveal(b"garbage").unwrap_err();
    assert!(e.to_string().contains("failed verification"), "{e}");
    assert!(matches!(
        Session::keygen(Curve::Ed25519, Role::Client, "", "w"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Session::keygen(Curve::Ed25519, Role::Client, "s", &"w".repeat(256)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn backup_reshare_keeps_the_key_and_gives_fresh_shares() {
    for curve in CURVES {
        let signing = keygen(curve, "wallet-1");
        let backup = reshare(&signing, "bk-1", Kind::Backup, "pair-1").unwrap();
        let (bc, bs) = &backup;
        assert_eq!((bc.kind(), bc.id()), (Kind::Backup, "pair-1"));
        assert_eq!(bc.public_key(), signing.0.public_key());
        assert_eq!(bs.public_key(), signing.0.public_key());
        assert_ne!(bc.public_share(), signing.0.public_share());
        assert_ne!(bs.public_share(), signing.1.public_share());
        assert_eq!(bc.peer_public_share(), bs.public_share());
        check_public_shares(
            curve,
            &bc.public_key(),
            &bc.public_share(),
            &bs.public_share(),
        )
        .unwrap();
        // A second backup gives yet other shares.
        let again = reshare(&signing, "bk-2", Kind::Backup, "pair-2").unwrap();
        assert_ne!(again.0.public_share(), bc.public_share());
        // The backup pair and the signing pair eject to the same key.
        assert_eq!(
            *eject(bc, bs).unwrap().private_key,
            *eject(&signing.0, &signing.1).unwrap().private_key
        );
        // Shares of different backup pairs do not combine.
        let msg = message_of(eject(bc, &again.1));
        assert!(msg.contains("different ids"), "{msg}");
    }
}

#[test]
fn a_tampered_public_share_is_refused_in_a_reshare() {
    for curve in CURVES {
        let signing = keygen(curve, "wallet-1");
        let mut client = Session::reshare(&signing.0, "bk", Kind::Backup, "p").unwrap();
        let mut custodian = Session::reshare(&signing.1, "bk", Kind::Backup, "p").unwrap();
        let (cc, cs) = (client.commit().unwrap(), custodian.commit().unwrap());
        client.reveal(&cs).unwrap();
        let rs = custodian.reveal(&cc).unwrap();
        let other = keygen(curve, "x").1.public_share();
        let msg = message_of(client.finish(&swap_public_share(&rs, curve, &other)));
        assert!(msg.contains("does not pair"), "{msg}");
        // And the stored-record check refuses shares that do not add up.
        let msg = message_of(check_public_shares(
            curve,
            &signing.0.public_key(),
            &signing.0.public_share(),
            &other,
        ));
        assert!(msg.contains("do not add up"), "{msg}");
    }
}

#[test]
fn reshares_of_different_wallets_or_pairs_are_refused() {
    for curve in CURVES {
        let a = keygen(curve, "wallet-1");
        let b = keygen(curve, "wallet-1");
        // Custodian share of another wallet (same id): the public keys differ.
        let mut client = Session::reshare(&a.0, "rc", Kind::Signing, "wallet-1").unwrap();
        let mut custodian = Session::reshare(&b.1, "rc", Kind::Signing, "wallet-1").unwrap();
        client.commit().unwrap();
        let msg = message_of(client.reveal(&custodian.commit().unwrap()));
        assert!(msg.contains("different wallets"), "{msg}");
        // Backup shares of two pairs of one wallet.
        let p1 = reshare(&a, "bk-1", Kind::Backup, "pair-1").unwrap();
        let p2 = reshare(&a, "bk-2", Kind::Backup, "pair-2").unwrap();
        let mut client = Session::reshare(&p1.0, "rc", Kind::Signing, "wallet-1").unwrap();
        let mut custodian = Session::reshare(&p2.1, "rc", Kind::Signing, "wallet-1").unwrap();
        client.commit().unwrap();
        let msg = message_of(client.reveal(&custodian.commit().unwrap()));
        assert!(msg.contains("different pairs"), "{msg}");
    }
}

#[test]
fn recovery_makes_a_new_signing_pair_the_old_device_share_leaves() {
    for curve in CURVES {
        let signing = keygen(curve, "wallet-1");
        let backup = reshare(&signing, "bk", Kind::Backup, "pair-1").unwrap();
        let recovered = reshare(&backup, "rc", Kind::Signing, "wallet-1").unwrap();
        let (nc, ns) = &recovered;
        assert_eq!((nc.kind(), nc.id()), (Kind::Signing, "wallet-1"));
        assert_eq!(nc.public_key(), signing.0.public_key());
        assert_ne!(nc.public_share(), signing.0.public_share());
        // The lost device's share no longer pairs with the custodian's new one.
        let stale = check_public_shares(
            curve,
            &signing.0.public_key(),
            &signing.0.public_share(),
            &ns.public_share(),
        );
        assert!(message_of(stale).contains("do not add up"));
        let msg = message_of(eject(&signing.0, ns));
        assert!(msg.contains("do not pair"), "{msg}");
        assert_eq!(
            *eject(nc, ns).unwrap().private_key,
            *eject(&signing.0, &signing.1).unwrap().private_key
        );
    }
}

#[test]
fn eject_refuses_mixed_curves_and_wrong_order() {
    let k = keygen(Curve::Secp256k1, "w");
    let e = keygen(Curve::Ed25519, "w");
    assert!(message_of(eject(&k.0, &e.1)).contains("different curves"));
    assert!(message_of(eject(&k.1, &k.0)).contains("client's share first"));
}

#[test]
fn serialization_round_trips_and_verifies() {
    for curve in CURVES {
        let (c, s) = keygen(curve, "wallet-ü");
        for share in [&c, &s] {
            let bytes = share.to_secret_bytes();
            assert_eq!(
                bytes.len(),
                7 + "wallet-ü".len() + 32 + 2 * curve.point_len()
            );
            let back = Share::from_secret_bytes(&bytes).unwrap();
            assert_eq!(*back.to_secret_bytes(), *bytes);
            assert_eq!(back.public_share(), share.public_share());
            back.check(&Expected {
                curve: Some(curve),
                kind: Some(Kind::Signing),
                role: Some(share.role()),
                id: Some("wallet-ü"),
                public_share: Some(&share.public_share()),
                public_key: Some(&share.public_key()),
            })
            .unwrap();
            let msg = message_of(back.check(&Expected {
                id: Some("wallet-2"),
                ..Expected::default()
            }));
            assert!(msg.contains("id"), "{msg}");
        }
    }
}

/// The scalar bytes of a serialized share with an id of length `id_len`.
fn scalar_range(id_len: usize) -> core::ops::Range<usize> {
    7 + id_len..7 + id_len + 32
}

#[test]
fn bad_serializations_are_refused() {
    for curve in CURVES {
        let (c, s) = keygen(curve, "w");
        let good = c.to_secret_bytes().to_vec();
        let scalar = scalar_range(1);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 1].to_vec(), "truncated"),
            (good[..5].to_vec(), "truncated"),
            ([good.clone(), vec![0]].concat(), "trailing"),
            (
                {
                    let mut b = good.clone();
                    b[2] = 2;
                    b
                },
                "version 2",
            ),
            (
                {
                    let mut b = good.clone();
                    b[0] = b'X';
                    b
                },
                "magic",
            ),
            (
                {
                    let mut b = good.clone();
                    b[3] = 9;
                    b
                },
                "curve",
            ),
            (
                {
                    let mut b = good.clone();
                    b[3] = 3 - b[3];
                    b
                },
                "bytes after its id",
            ),
            (
                {
                    let mut b = good.clone();
                    b[scalar.clone()].fill(0xff);
                    b
                },
                "not canonical",
            ),
            (
                {
                    let mut b = good.clone();
                    b[scalar.clone()].fill(0);
                    b
                },
                "zero",
            ),
            (
                {
                    let mut b = good.clone();
                    b[scalar.clone()].copy_from_slice(&s.to_secret_bytes()[scalar.clone()]);
                    b
                },
                "does not match its scalar",
            ),
        ];
        for (bytes, want) in cases {
            let msg = message_of(Share::from_secret_bytes(&bytes));
            assert!(msg.contains(want), "{curve:?} {want}: {msg}");
        }
    }
}

#[test]
fn debug_never_shows_the_scalar() {
    for curve in CURVES {
        let (c, s) = keygen(curve, "w");
        let bytes = c.to_secret_bytes();
        let scalar_hex = hex::encode(&bytes[scalar_range(1)]);
        let key = eject(&c, &s).unwrap();
        for text in [format!("{c:?}"), format!("{key:?}")] {
            assert!(!text.contains(&scalar_hex), "{text}");
            assert!(!text.contains(key.private_key.as_str()), "{text}");
            assert!(text.contains("redacted"));
        }
        let session = Session::keygen(curve, Role::Client, "kg", "w").unwrap();
        let text = format!("{session:?}");
        assert!(text.contains("Client") && text.contains("\"kg\""), "{text}");
    }
}

#[test]
fn addresses_accept_both_sec1_forms() {
    use k256::elliptic_curve::sec1::ToSec1Point;
    let (c, _) = keygen(Curve::Secp256k1, "w");
    let compressed = c.public_key();
    let point = secp256k1::decode_sec1(&compressed).unwrap();
    let uncompressed = point.to_affine().to_sec1_point(false);
    assert_eq!(uncompressed.as_bytes().len(), 65);
    assert_eq!(address(Curve::Secp256k1, &compressed).unwrap(), c.address());
    assert_eq!(
        address(Curve::Secp256k1, uncompressed.as_bytes()).unwrap(),
        c.address()
    );
    assert!(message_of(address(Curve::Secp256k1, &[0u8; 33])).contains("SECP256K1"));
    assert!(message_of(address(Curve::Ed25519, &[0u8; 32])).contains("ED25519"));
}

/// The published vectors (docs/shares.md), made by an independent
/// implementation of the format: every pair decodes, re-encodes byte for
/// byte and ejects to the published key and address; every invalid
/// encoding is refused for the published reason.
#[test]
fn published_vectors() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../../tests/vectors/shares_v1.json")).unwrap();
    let pairs = doc["pairs"].as_array().unwrap();
    assert!(pairs.len() >= 6);
    for p in pairs {
        let hx = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
        let client = Share::from_secret_bytes(&hx(&p["client"]["encoded"])).unwrap();
        let custodian = Share::from_secret_bytes(&hx(&p["custodian"]["encoded"])).unwrap();
        for (share, party) in [(&client, "client"), (&custodian, "custodian")] {
            assert_eq!(*share.to_secret_bytes(), hx(&p[party]["encoded"]));
            assert_eq!(share.public_share(), hx(&p[party]["public_share"]));
            assert_eq!(share.public_key(), hx(&p["public_key"]));
            assert_eq!(share.curve().name(), p["curve"]);
            assert_eq!(share.id(), p["share_id"]);
        }
        let key = eject(&client, &custodian).unwrap();
        assert_eq!(
            key.private_key.as_str(),
            p["eject"]["private_key"],
            "{}",
            p["name"]
        );
        assert_eq!(key.address, p["eject"]["address"], "{}", p["name"]);
    }
    for v in doc["invalid"].as_array().unwrap() {
        let bytes = hex::decode(v["encoded"].as_str().unwrap()).unwrap();
        let msg = message_of(Share::from_secret_bytes(&bytes));
        assert!(
            msg.contains(v["error"].as_str().unwrap()),
            "{}: {msg}",
            v["name"]
        );
    }
}

// -- suspended parties -------------------------------------------------------

/// The custodian's parties of each protocol on `curve`, fresh (state New),
/// with the client's party each runs against.
fn fresh_parties(curve: Curve) -> Vec<(&'static str, Session, Session)> {
    let pair = keygen(curve, "wallet-s");
    let backup = reshare(&pair, "bk-s", Kind::Backup, "pair-s").unwrap();
    vec![
        (
            "keygen",
            Session::keygen(curve, Role::Client, "kg-s", "wallet-s").unwrap(),
            Session::keygen(curve, Role::Custodian, "kg-s", "wallet-s").unwrap(),
        ),
        (
            "backup",
            Session::reshare(&pair.0, "bk-2", Kind::Backup, "pair-2").unwrap(),
            Session::reshare(&pair.1, "bk-2", Kind::Backup, "pair-2").unwrap(),
        ),
        (
            "recovery",
            Session::reshare(&backup.0, "rc-s", Kind::Signing, "wallet-s").unwrap(),
            Session::reshare(&backup.1, "rc-s", Kind::Signing, "wallet-s").unwrap(),
        ),
    ]
}

/// Where the scalar sits in a suspended party: the last 64 bytes of a
/// keygen state are scalar and nonce, of a reshare state scalar, nonce, seed.
fn state_scalar(state: &[u8], protocol: Protocol) -> core::ops::Range<usize> {
    let tail = match protocol {
        Protocol::KeyGen => 64,
        Protocol::Reshare => 96,
    };
    state.len() - tail..state.len() - tail + 32
}

#[test]
fn a_resumed_party_commits_and_finishes_as_the_suspended_one() {
    for curve in CURVES {
        for (what, mut client, mut original) in fresh_parties(curve) {
            let state = original.suspend().unwrap();
            let mut resumed = Session::resume(&state).unwrap();
            assert_eq!(
                (resumed.curve(), resumed.role(), resumed.protocol()),
                (curve, Role::Custodian, original.protocol()),
                "{what}"
            );
            assert_eq!(resumed.session_id(), original.session_id());
            // Re-suspending gives the same bytes: nothing is drawn again.
            assert_eq!(*resumed.suspend().unwrap(), *state, "{curve:?} {what}");
            let mut twice = Session::resume(&state).unwrap();

            let cc = client.commit().unwrap();
            let cs = original.commit().unwrap();
            assert_eq!(resumed.commit().unwrap(), cs, "{curve:?} {what}");
            assert_eq!(twice.commit().unwrap(), cs, "{curve:?} {what}");
            let rc = client.reveal(&cs).unwrap();
            let rs_original = original.reveal(&cc).unwrap();
            let rs_resumed = resumed.reveal(&cc).unwrap();
            let from_original = original.finish(&rc).unwrap();
            let from_resumed = resumed.finish(&rc).unwrap();
            assert_eq!(
                *from_original.to_secret_bytes(),
                *from_resumed.to_secret_bytes(),
                "{curve:?} {what}"
            );
            // The client finishes against the resumed party's reveal too, and pairs.
            let client_share = client.finish(&rs_resumed).unwrap();
            eject(&client_share, &from_resumed).unwrap();
            drop(rs_original);
            // A resumed party still refuses its own commitment echoed back.
            twice
                .reveal(&cs)
                .expect_err("own commitment must be refused");
        }
    }
}

#[test]
fn only_a_party_in_its_initial_state_is_suspended() {
    let refused = |r: Result<zeroize::Zeroizing<Vec<u8>>>, when: &str| match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("suspend()"), "{when}: {m}"),
        other => panic!(
            "{when}: expected InvalidArgument, got {:?}",
            other.map(|_| ())
        ),
    };
    for curve in CURVES {
        for (what, mut client, mut custodian) in fresh_parties(curve) {
            let cc = client.commit().unwrap();
            let cs = custodian.commit().unwrap();
            refused(custodian.suspend(), &format!("{what} committed"));
            let rc = client.reveal(&cs).unwrap();
            custodian.reveal(&cc).unwrap();
            refused(custodian.suspend(), &format!("{what} revealed"));
            custodian.finish(&rc).unwrap();
            refused(custodian.suspend(), &format!("{what} done"));
            // A failed session neither.
            let (_, mut c2, mut s2) = fresh_parties(curve).remove(0);
            c2.commit().unwrap();
            s2.commit().unwrap();
            assert!(s2.reveal(b"garbage").is_err());
            refused(s2.suspend(), &format!("{what} failed"));
        }
    }
}

#[test]
fn bad_suspended_states_are_refused() {
    for curve in CURVES {
        for (what, _, custodian) in fresh_parties(curve) {
            let good = custodian.suspend().unwrap().to_vec();
            let scalar = state_scalar(&good, custodian.protocol());
            // Every truncation, and every trailing byte, is refused.
            for n in 0..good.len() {
                let msg = message_of(Session::resume(&good[..n]));
                assert!(
                    msg.contains("truncated") || msg.contains("empty"),
                    "{curve:?} {what} at {n}: {msg}"
                );
            }
            let mut long = good.clone();
            long.push(0);
            assert!(message_of(Session::resume(&long)).contains("trailing"));

            let with = |at: usize, b: u8| {
                let mut v = good.clone();
                v[at] = b;
                v
            };
            let with_scalar = |s: [u8; 32]| {
                let mut v = good.clone();
                v[scalar.clone()].copy_from_slice(&s);
                v
            };
            let mut cases: Vec<(Vec<u8>, &str)> = vec![
                (with(0, b'X'), "bad magic"),
                (with(2, 2), "version 2"),
                (with(3, 9), "unknown curve id 9"),
                (with(4, 0), "unknown role 0"),
                (with(5, 3), "unknown protocol 3"),
                (with_scalar([0xff; 32]), "not canonical"),
                (with_scalar([0; 32]), "zero"),
                (vec![], "truncated"),
            ];
            // The kind after the session id, and a non-UTF-8 session id.
            let sid_len = usize::from(good[6]);
            cases.push((with(7 + sid_len, 7), "unknown share kind 7"));
            cases.push((with(7, 0xff), "not UTF-8"));
            if custodian.protocol() == Protocol::KeyGen {
                cases.push((with(7 + sid_len, Kind::Backup.id()), "signing shares only"));
            } else {
                // The reshared key: after the new id, a point that does not decode.
                let new_id_len = usize::from(good[8 + sid_len]);
                let at = 9 + sid_len + new_id_len;
                let mut bad_point = good.clone();
                bad_point[at..at + curve.point_len()].fill(0xff);
                cases.push((bad_point, "not a valid"));
                // A scalar whose public share is the wallet's public key.
                let (own, _) = keygen(curve, "other");
                let own_bytes = own.to_secret_bytes();
                let s = own_bytes.len() - 32 - 2 * curve.point_len();
                let mut v = good.clone();
                v[scalar.clone()].copy_from_slice(&own_bytes[s..s + 32]);
                v[at..at + curve.point_len()].copy_from_slice(&own.public_share());
                cases.push((v, "equals the public key"));
            }
            if custodian.protocol() == Protocol::Reshare {
                // The other curve's byte: its points have other lengths. (A keygen
                // state holds no point, so only its scalar's range tells curves
                // apart: the KMS context that seals a state names its curve.)
                let other = if curve == Curve::Secp256k1 {
                    Curve::Ed25519
                } else {
                    Curve::Secp256k1
                };
                cases.push((with(3, other.id()), ""));
            }
            for (bytes, want) in cases {
                let msg = message_of(Session::resume(&bytes));
                assert!(msg.contains(want), "{curve:?} {what} {want:?}: {msg}");
                let scalar_hex = hex::encode(&good[scalar.clone()]);
                assert!(!msg.contains(&scalar_hex));
            }
        }
    }
}

#[test]
fn a_suspended_state_binds_its_nonce_and_seed() {
    for curve in CURVES {
        for (what, _, custodian) in fresh_parties(curve) {
            let good = custodian.suspend().unwrap().to_vec();
            let cs = Session::resume(&good).unwrap().commit().unwrap();
            // Any change to the nonce (or seed) is a different commitment.
            let last = good.len() - 1;
            let mut v = good.clone();
            v[last] ^= 1;
            let other = Session::resume(&v).unwrap().commit().unwrap();
            assert_ne!(other, cs, "{curve:?} {what}");
            let text = format!("{:?}", Session::resume(&good).unwrap());
            assert!(!text.contains(&hex::encode(&good[good.len() - 32..])));
        }
    }
}
