//! The envelope's tests: the published vectors, tampering, batches, resealing.

use super::data_key::DataKey;
use super::*;
use crate::{BatchError, Error, Result};

mod single {
    use super::*;

    /// The published vectors (docs/envelope.md), made by an independent
    /// implementation of the format: reproduce them byte for byte.
    #[test]
    fn published_vectors() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../../tests/vectors/envelope_v1.json"))
                .unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 3);
        for v in vectors {
            let hx = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
            let pairs: Vec<(String, String)> = v["context"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let ctx = Context::new(&pairs).unwrap();
            let (key, pt, salt, sealed) = (hx("key"), hx("plaintext"), hx("salt"), hx("sealed"));
            let kid = v["key_id"].as_str().unwrap();
            let mut out = vec![0u8; sealed_len(kid, &ctx, pt.len())];
            let index = v["index"].as_u64().unwrap() as u32;
            DataKey::derive(&key, &salt)
                .unwrap()
                .seal_item(index, &pt, &ctx, kid, &mut out)
                .unwrap();
            assert_eq!(
                hex::encode(&out),
                hex::encode(&sealed),
                "vector {}",
                v["name"]
            );
            assert_eq!(open(&key, &sealed, &ctx).unwrap(), pt);
        }
    }

    fn ctx() -> Context {
        Context::new(&[("wallet", "w1"), ("curve", "SECP256K1")]).unwrap()
    }

    #[test]
    fn round_trip_and_inspect() {
        let key = [9u8; 32];
        let sealed = seal(&key, b"share", &ctx(), "kek-1").unwrap();
        let h = parse(&sealed).unwrap();
        assert_eq!((h.version, h.suite, h.key_id), (1, 1, "kek-1"));
        assert_eq!(
            h.context_pairs().unwrap(),
            vec![("curve", "SECP256K1"), ("wallet", "w1")]
        );
        assert_eq!(open(&key, &sealed, &ctx()).unwrap(), b"share");
    }

    #[test]
    fn context_order_does_not_matter() {
        let a = Context::new(&[("a", "1"), ("b", "2")]).unwrap();
        let b = Context::new(&[("b", "2"), ("a", "1")]).unwrap();
        assert_eq!(a, b);
        assert!(Context::new(&[("a", "1"), ("a", "2")]).is_err());
    }

    #[test]
    fn wrong_key_context_or_any_flipped_bit_fails() {
        let key = [1u8; 32];
        let sealed = seal(&key, b"share bytes", &ctx(), "k").unwrap();
        assert_eq!(open(&[2u8; 32], &sealed, &ctx()), Err(Error::InvalidTag));
        let other = Context::new(&[("wallet", "w2"), ("curve", "SECP256K1")]).unwrap();
        assert_eq!(open(&key, &sealed, &other), Err(Error::InvalidTag));
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut t = sealed.clone();
                t[i] ^= 1 << bit;
                assert!(
                    open(&key, &t, &ctx()).is_err(),
                    "flip at byte {i} bit {bit} opened"
                );
            }
        }
    }

    /// Opening decodes the stored context only when it differs from the
    /// caller's: a malformed one is still an invalid envelope, a well-formed
    /// other one a failed tag, and neither opens.
    #[test]
    fn stored_context_is_checked_when_it_differs() {
        let key = [4u8; 32];
        let sealed = seal(&key, b"share", &ctx(), "k").unwrap();
        let at = parse(&sealed).unwrap().header.len() - 32 - 32 - 4 - ctx().encoded().len();
        // The pair count says three pairs where there are two: malformed.
        let mut bad = sealed.clone();
        bad[at + 1] = 3;
        assert!(matches!(parse(&bad), Err(Error::InvalidEnvelope(_))));
        assert!(matches!(
            open(&key, &bad, &ctx()),
            Err(Error::InvalidEnvelope(_))
        ));
        // A well-formed context of the same length, other than the caller's.
        let other = Context::new(&[("wallet", "w2"), ("curve", "SECP256K1")]).unwrap();
        let mut swapped = sealed.clone();
        swapped[at..at + other.encoded().len()].copy_from_slice(other.encoded());
        assert!(parse(&swapped).is_ok());
        assert_eq!(open(&key, &swapped, &ctx()), Err(Error::InvalidTag));
        assert_eq!(open(&key, &swapped, &other), Err(Error::InvalidTag));
    }

    #[test]
    fn a_wrong_output_length_is_refused_with_both_lengths() {
        let key = [5u8; 32];
        let sealed = seal(&key, b"share", &ctx(), "k").unwrap();
        let mut out = [0u8; 4];
        assert_eq!(
            open_into(&key, &sealed, &ctx(), &mut out),
            Err(Error::arg(
                "output must be 5 bytes (the plaintext length), not 4"
            ))
        );
        let mut out = vec![0u8; sealed.len() + 1];
        let err = seal_into(&key, b"share", &ctx(), "k", &mut out).unwrap_err();
        assert!(err.to_string().contains("the envelope length"), "{err}");
        assert!(check_key(&[0u8; 31]).is_err() && check_key(&key).is_ok());
        assert!(check_key_id(&"k".repeat(256)).is_err() && check_key_id("k").is_ok());
    }

    #[test]
    fn batch_matches_single_and_reports_index() {
        let key = [3u8; 32];
        let msgs: Vec<Vec<u8>> = (0..(CHUNK as u32 * 2 + 300))
            .map(|i| i.to_be_bytes().repeat(i as usize % 7 + 1))
            .collect();
        let pts: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let c = [ctx()];
        let mut bufs: Vec<Vec<u8>> = pts
            .iter()
            .map(|p| vec![0; sealed_len("k", &c[0], p.len())])
            .collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        seal_many(&key, &pts, &c, "k", &mut outs).unwrap();
        for (b, m) in bufs.iter().zip(&msgs) {
            assert_eq!(&open(&key, b, &c[0]).unwrap(), m);
        }
        // One salt per chunk, items told apart by index; a new chunk, a new salt.
        let (a, b) = (parse(&bufs[0]).unwrap(), parse(&bufs[CHUNK - 1]).unwrap());
        assert_eq!((a.salt, a.index, b.index), (b.salt, 0, CHUNK as u32 - 1));
        let next = parse(&bufs[CHUNK]).unwrap();
        assert_ne!(next.salt, a.salt);
        assert_eq!(next.index, 0);
        bufs[CHUNK + 5][80] ^= 1;
        bufs[200][80] ^= 1;
        let sealed: Vec<&[u8]> = bufs.iter().map(|b| b.as_slice()).collect();
        let mut plain: Vec<Vec<u8>> = msgs.iter().map(|m| vec![0; m.len()]).collect();
        let mut outs: Vec<&mut [u8]> = plain.iter_mut().map(|b| b.as_mut_slice()).collect();
        let err = open_many(&key, &sealed, &c, &mut outs).unwrap_err();
        assert_eq!(err, BatchError::new(200, Error::InvalidTag));
        assert_eq!(err.to_string(), "item 200: authentication failed");
        assert!(plain.iter().all(|p| p.iter().all(|&b| b == 0)));
    }
}

mod resealing {
    use super::*;

    fn ctx() -> Context {
        Context::new(&[("wallet", "w9"), ("party", "custodian")]).unwrap()
    }

    fn reseal(old: &[u8], sealed: &[u8], new: &[u8], kid: &str) -> Result<Vec<u8>> {
        let mut out = vec![0u8; resealed_len(sealed, kid)?];
        reseal_into(old, sealed, new, kid, &mut out)?;
        Ok(out)
    }

    #[test]
    fn reseal_moves_to_the_new_key_and_keeps_the_context() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let sealed = seal(&old, b"custodian share", &ctx(), "kek/v1").unwrap();
        let moved = reseal(&old, &sealed, &new, "kek/v2").unwrap();
        let h = parse(&moved).unwrap();
        assert_eq!(h.key_id, "kek/v2");
        assert_eq!(h.context, ctx().encoded());
        assert_eq!(open(&new, &moved, &ctx()).unwrap(), b"custodian share");
        assert_eq!(open(&old, &moved, &ctx()), Err(Error::InvalidTag));
        let other = Context::new(&[("wallet", "w8"), ("party", "custodian")]).unwrap();
        assert_eq!(open(&new, &moved, &other), Err(Error::InvalidTag));
    }

    #[test]
    fn reseal_refuses_a_wrong_key_or_tampering() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let sealed = seal(&old, b"share", &ctx(), "k").unwrap();
        assert_eq!(
            reseal(&[3u8; 32], &sealed, &new, "k2"),
            Err(Error::InvalidTag)
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x40;
            assert!(
                reseal(&old, &t, &new, "k2").is_err(),
                "flip at byte {i} resealed"
            );
        }
        assert!(reseal(&old, &sealed, &[0u8; 31], "k2").is_err());
    }

    #[test]
    fn reseal_many_matches_one_at_a_time_and_names_the_failing_index() {
        let (old, new) = ([5u8; 32], [6u8; 32]);
        let msgs: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().repeat(9)).collect();
        let sealed: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| seal(&old, m, &ctx(), "a").unwrap())
            .collect();
        let views: Vec<&[u8]> = sealed.iter().map(|s| s.as_slice()).collect();
        let mut bufs: Vec<Vec<u8>> = views
            .iter()
            .map(|s| vec![0; resealed_len(s, "bb").unwrap()])
            .collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        reseal_many(&old, &views, &new, "bb", &mut outs).unwrap();
        for (b, m) in bufs.iter().zip(&msgs) {
            assert_eq!(&open(&new, b, &ctx()).unwrap(), m);
        }
        let mut broken = sealed.clone();
        let last = broken[150].len() - 1;
        broken[150][last] ^= 1;
        let views: Vec<&[u8]> = broken.iter().map(|s| s.as_slice()).collect();
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        assert_eq!(
            reseal_many(&old, &views, &new, "bb", &mut outs),
            Err(BatchError::new(150, Error::InvalidTag))
        );
    }
}
