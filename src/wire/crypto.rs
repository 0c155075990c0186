//! RFC 8684 cryptography (HMAC-SHA256 variant, MP_CAPABLE flag H).
//!
//! All keys and nonces are big-endian on the wire and inside the hashes.
//! * §3.1: token = most significant 32 bits of SHA-256(key); IDSN = least
//!   significant 64 bits of the same digest.
//! * §3.2: MP_JOIN HMAC = HMAC(Key_A‖Key_B, R_A‖R_B) for messages sent by A
//!   (SYN/ACK sender B uses Key_B‖Key_A, R_B‖R_A); SYN/ACK carries the
//!   leftmost 64 bits, the third ACK the leftmost 160 bits.
//! * §3.4.1: ADD_ADDR HMAC = rightmost 64 bits of HMAC(Key_sender‖Key_receiver,
//!   Address ID‖Address‖Port), where Port is 2 bytes and 0 when absent (as
//!   Linux computes it).
//!
//! No heap allocation: `sha2`/`hmac` operate on stack state.

use core::net::IpAddr;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// (token, IDSN) of a 64-bit key (§3.1).
pub fn token_idsn(key: u64) -> (u32, u64) {
    let d: [u8; 32] = Sha256::digest(key.to_be_bytes()).into();
    let token = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let idsn = u64::from_be_bytes([d[24], d[25], d[26], d[27], d[28], d[29], d[30], d[31]]);
    (token, idsn)
}

/// HMAC-SHA256 over one message (RFC 2104).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    hmac_parts(key, &[msg])
}

fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error arm is unreachable in practice.
    let Ok(mut m) = <HmacSha256 as Mac>::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn key_pair(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

/// MP_JOIN HMAC (§3.2) as computed by the sender of the message it
/// authenticates: HMAC(Key_local‖Key_remote, R_local‖R_remote).
pub fn join_hmac(key_local: u64, key_remote: u64, nonce_local: u32, nonce_remote: u32) -> [u8; 32] {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&nonce_local.to_be_bytes());
    msg[4..].copy_from_slice(&nonce_remote.to_be_bytes());
    hmac_sha256(&key_pair(key_local, key_remote), &msg)
}

/// Leftmost 64 bits of an HMAC, as carried by the MP_JOIN SYN/ACK (§3.2).
pub fn hmac_trunc64(h: &[u8; 32]) -> u64 {
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// Leftmost 160 bits of an HMAC, as carried by the MP_JOIN third ACK (§3.2).
pub fn hmac_trunc160(h: &[u8; 32]) -> [u8; 20] {
    let mut o = [0u8; 20];
    o.copy_from_slice(&h[..20]);
    o
}

/// ADD_ADDR truncated HMAC (§3.4.1), computed by the option's sender:
/// `key_local` is the sender's key, `key_remote` the receiver's.
pub fn add_addr_hmac(
    key_local: u64,
    key_remote: u64,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> u64 {
    let port = port.unwrap_or(0).to_be_bytes();
    let k = key_pair(key_local, key_remote);
    let h = match addr {
        IpAddr::V4(a) => hmac_parts(&k, &[&[addr_id], &a.octets(), &port]),
        IpAddr::V6(a) => hmac_parts(&k, &[&[addr_id], &a.octets(), &port]),
    };
    u64::from_be_bytes([h[24], h[25], h[26], h[27], h[28], h[29], h[30], h[31]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut o = [0u8; 32];
        for (i, b) in o.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        o
    }

    /// Linux net/mptcp/crypto_test.c: key and msg strings are used as raw
    /// ASCII bytes (16-byte key = Key_A‖Key_B, 8-byte msg = R_A‖R_B).
    const KERNEL: [(&str, &str, &str); 3] = [
        (
            "0b0b0b0b0b0b0b0b",
            "48692054",
            "8385e24fb4235ac37556b6b886db106284a1da671699f46db1f235ec622dcafa",
        ),
        (
            "aaaaaaaaaaaaaaaa",
            "dddddddd",
            "2c5e219164ff1dca1c4a92318d847bb6b9d44492984e1eb71aff9022f71046e9",
        ),
        (
            "0102030405060708",
            "cdcdcdcd",
            "e73b9ba9969969cefb04aa0d6df18ec2fcc075b6f23b4d8c4da736a5dbbc6e7d",
        ),
    ];

    #[test]
    fn kernel_hmac_vectors() {
        for (key, msg, want) in KERNEL {
            let (k, m) = (key.as_bytes(), msg.as_bytes());
            assert_eq!(hmac_sha256(k, m), hex32(want));
            let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap());
            let be32 = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
            let h = join_hmac(be64(&k[..8]), be64(&k[8..]), be32(&m[..4]), be32(&m[4..]));
            assert_eq!(h, hex32(want));
        }
        let h = hex32(KERNEL[0].2);
        assert_eq!(hmac_trunc64(&h), 0x8385_e24f_b423_5ac3);
        assert_eq!(hmac_trunc160(&h)[16..], [0x84, 0xa1, 0xda, 0x67]);
    }

    #[test]
    fn rfc4231_case2() {
        // RFC 4231 test case 2 (generic HMAC-SHA256 sanity check).
        let h = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            h,
            hex32("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn token_and_idsn() {
        // Fixed vectors derived with coreutils sha256sum over the 8 key bytes.
        // printf '\x01\x02\x03\x04\x05\x06\x07\x08' | sha256sum
        //   66840dda154e8a113c31dd0ad32f7f3a366a80e8136979d8f5a101d3d29d6f72
        assert_eq!(
            token_idsn(0x0102_0304_0506_0708),
            (0x6684_0dda, 0xf5a1_01d3_d29d_6f72)
        );
        // printf '\xff\xee\xdd\xcc\xbb\xaa\x99\x88' | sha256sum
        //   48426debe8874f23aa2347fab54079049f6a0273398c533a268ae6708c071be3
        assert_eq!(
            token_idsn(0xffee_ddcc_bbaa_9988),
            (0x4842_6deb, 0x268a_e670_8c07_1be3)
        );
        // Cross-check against the digest for a few more keys.
        for key in [0u64, 1, u64::MAX, 0x8000_0000_0000_0001] {
            let d: [u8; 32] = Sha256::digest(key.to_be_bytes()).into();
            let (t, i) = token_idsn(key);
            assert_eq!(t.to_be_bytes(), d[..4]);
            assert_eq!(i.to_be_bytes(), d[24..]);
        }
    }

    #[test]
    fn add_addr() {
        // Derived with Python hmac/hashlib: rightmost 8 bytes of
        // HMAC(be64(k1)‖be64(k2), id‖addr‖be16(port or 0)).
        let (k1, k2) = (0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        let a4: IpAddr = "192.0.2.9".parse().unwrap();
        let a6: IpAddr = "2001:db8::9".parse().unwrap();
        assert_eq!(add_addr_hmac(k1, k2, 5, a4, None), 0xef95_3aa1_8662_cdde);
        assert_eq!(
            add_addr_hmac(k1, k2, 5, a6, Some(8080)),
            0x8f95_907d_1b42_df39
        );
        // Port 0 and no port hash the same; the key order matters.
        assert_eq!(
            add_addr_hmac(k1, k2, 5, a4, Some(0)),
            add_addr_hmac(k1, k2, 5, a4, None)
        );
        assert_ne!(
            add_addr_hmac(k2, k1, 5, a4, None),
            add_addr_hmac(k1, k2, 5, a4, None)
        );
        // Same as the generic HMAC over the assembled message.
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&u64::to_be_bytes(k1));
        k[8..].copy_from_slice(&u64::to_be_bytes(k2));
        let h = hmac_sha256(&k, &[5, 192, 0, 2, 9, 0, 0]);
        assert_eq!(
            u64::from_be_bytes(h[24..].try_into().unwrap()),
            0xef95_3aa1_8662_cdde
        );
    }
}
