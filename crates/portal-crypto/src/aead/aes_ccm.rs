//! AES-CCM (RFC 3610, SP 800-38C) on RustCrypto's `ccm`, with the nonce
//! (7 to 13 bytes) and tag (4 to 16 bytes, even) chosen per call.
//!
//! `ccm` fixes both sizes in the type; the functions here pick the instance
//! from the lengths. Building one costs nothing: it borrows the expanded key.

use ccm::aead::generic_array::{ArrayLength, GenericArray};
use ccm::aead::AeadInPlace;
use ccm::consts::{U10, U11, U12, U13, U14, U16, U4, U6, U7, U8, U9};
use ccm::{Ccm, NonceSize, TagSize};

use super::any_aes::AnyAes;

/// The longest message CCM can count with a `nonce_len`-byte nonce: the
/// length field has `15 - nonce_len` bytes (RFC 3610 §2.1).
pub(super) fn max_len(nonce_len: usize) -> u64 {
    let l = 15usize.saturating_sub(nonce_len);
    if l >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * l)) - 1
    }
}

/// What one call does, for [`dispatch`].
enum Op<'a> {
    /// Encrypts the buffer in place and writes the tag.
    Seal { tag: &'a mut [u8] },
    /// Decrypts the buffer in place if `tag` verifies.
    Open { tag: &'a [u8] },
}

/// Runs `op` on the CCM instance for `M`-byte tags and `N`-byte nonces.
fn run<M, N>(aes: &AnyAes, nonce: &[u8], aad: &[u8], buf: &mut [u8], op: Op<'_>) -> bool
where
    M: ArrayLength<u8> + TagSize,
    N: ArrayLength<u8> + NonceSize,
{
    // The caller matched the lengths to M and N, so neither `from_slice` can panic.
    let ccm = Ccm::<&AnyAes, M, N>::from(aes);
    let nonce = GenericArray::from_slice(nonce);
    match op {
        Op::Seal { tag } => match ccm.encrypt_in_place_detached(nonce, aad, buf) {
            Ok(t) => {
                tag.copy_from_slice(&t);
                true
            }
            Err(_) => false,
        },
        Op::Open { tag } => ccm
            .decrypt_in_place_detached(nonce, aad, buf, GenericArray::from_slice(tag))
            .is_ok(),
    }
}

/// Picks the nonce size for tags of `M` bytes.
fn by_nonce<M>(aes: &AnyAes, nonce: &[u8], aad: &[u8], buf: &mut [u8], op: Op<'_>) -> bool
where
    M: ArrayLength<u8> + TagSize,
{
    match nonce.len() {
        7 => run::<M, U7>(aes, nonce, aad, buf, op),
        8 => run::<M, U8>(aes, nonce, aad, buf, op),
        9 => run::<M, U9>(aes, nonce, aad, buf, op),
        10 => run::<M, U10>(aes, nonce, aad, buf, op),
        11 => run::<M, U11>(aes, nonce, aad, buf, op),
        12 => run::<M, U12>(aes, nonce, aad, buf, op),
        13 => run::<M, U13>(aes, nonce, aad, buf, op),
        _ => false,
    }
}

/// Picks the instance for the tag length (`op`'s) and the nonce length.
fn dispatch(
    aes: &AnyAes,
    tag_len: usize,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    op: Op<'_>,
) -> bool {
    match tag_len {
        4 => by_nonce::<U4>(aes, nonce, aad, buf, op),
        6 => by_nonce::<U6>(aes, nonce, aad, buf, op),
        8 => by_nonce::<U8>(aes, nonce, aad, buf, op),
        10 => by_nonce::<U10>(aes, nonce, aad, buf, op),
        12 => by_nonce::<U12>(aes, nonce, aad, buf, op),
        14 => by_nonce::<U14>(aes, nonce, aad, buf, op),
        16 => by_nonce::<U16>(aes, nonce, aad, buf, op),
        _ => false,
    }
}

/// Encrypts `buf` in place and writes its tag (`tag.len()` bytes) into `tag`.
/// False for sizes CCM does not define or a message too long for the nonce.
pub(super) fn seal(aes: &AnyAes, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &mut [u8]) -> bool {
    dispatch(aes, tag.len(), nonce, aad, buf, Op::Seal { tag })
}

/// Decrypts `buf` in place when `tag` verifies. False otherwise, and then
/// `buf` may hold unauthenticated bytes the caller must wipe.
pub(super) fn open(aes: &AnyAes, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
    dispatch(aes, tag.len(), nonce, aad, buf, Op::Open { tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3610 §8, packet vector #1: AES-128, 13-byte nonce, 8-byte tag,
    /// the first 8 bytes of the packet as associated data.
    #[test]
    fn rfc3610_packet_vector_1() {
        let Some(aes) =
            AnyAes::new(&hex::decode("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf").unwrap_or_default())
        else {
            panic!("AES-128 key refused");
        };
        let nonce = hex::decode("00000003020100a0a1a2a3a4a5").unwrap_or_default();
        let packet = hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e")
            .unwrap_or_default();
        let (aad, msg) = packet.split_at(8);
        let mut buf = msg.to_vec();
        let mut tag = [0u8; 8];
        assert!(seal(&aes, &nonce, aad, &mut buf, &mut tag));
        assert_eq!(
            hex::encode([&buf[..], &tag[..]].concat()),
            "588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0"
        );
        assert!(open(&aes, &nonce, aad, &mut buf, &tag));
        assert_eq!(buf, msg);
        assert!(!seal(&aes, &nonce[..6], aad, &mut buf, &mut tag));
        assert!(!seal(&aes, &nonce, aad, &mut buf, &mut [0u8; 5]));
    }

    #[test]
    fn length_limit() {
        assert_eq!(max_len(13), 0xffff);
        assert_eq!(max_len(12), 0xff_ffff);
        assert_eq!(max_len(7), u64::MAX);
    }
}
