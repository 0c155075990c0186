//! Internet checksum arithmetic (RFC 1071, incremental update per RFC 1624).
//!
//! Partial sums are carried as `u32` values that may be *unfolded* (carries
//! above bit 15 not yet added back).  Any function taking a partial sum accepts
//! any `u32`; [`fold`] reduces it to 16 bits (not complemented).  A stored
//! checksum field is the complement of the folded sum.
//!
//! Ones' complement has two zeros (0x0000 and 0xFFFF): compare partial sums
//! with [`sums_equal`], never with `==` on folded values.

use core::net::IpAddr;

/// Reduces `x` to at most 17 bits without changing its ones' complement value.
#[inline]
fn fold17(x: u32) -> u32 {
    (x & 0xffff) + (x >> 16)
}

/// Adds the 16-bit big-endian words of `data` (an odd last byte is padded with
/// a zero byte on its right) to the partial sum `init`.
///
/// The result is a partial sum (here always folded to `<= 0xFFFF`, but callers
/// must not rely on that).  Any length is safe; there is no overflow.
pub fn sum(data: &[u8], init: u32) -> u32 {
    let mut acc = fold(init) as u32;
    // 32768 words of at most 0xFFFF each plus a 16-bit start stay below 2^32.
    for chunk in data.chunks(0x10000) {
        let mut words = chunk.chunks_exact(2);
        for w in &mut words {
            acc += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        if let [last] = words.remainder() {
            acc += (*last as u32) << 8;
        }
        acc = fold(acc) as u32;
    }
    acc
}

/// Folds all carries back into 16 bits (end-around carry).  Not complemented.
#[inline]
pub fn fold(sum: u32) -> u16 {
    // The first fold leaves at most 0x1FFFE, the second at most 0xFFFF.
    fold17(fold17(sum)) as u16
}

/// Ones' complement addition of two partial sums.  The result is foldable
/// (at most 18 bits) and may itself be fed to any function here.
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    fold17(a) + fold17(b)
}

/// Ones' complement subtraction `a - b` (computed as `a + !b`).
#[inline]
pub fn sub(a: u32, b: u32) -> u32 {
    add(a, !fold(b) as u32)
}

/// True if two partial sums are equal in ones' complement arithmetic
/// (treats 0x0000 and 0xFFFF as the same value).
pub fn sums_equal(a: u32, b: u32) -> bool {
    let norm = |x: u32| match fold(x) {
        0xffff => 0,
        v => v,
    };
    norm(a) == norm(b)
}

/// Ones' complement value of an address' octets.
fn addr_sum(a: IpAddr, init: u32) -> u32 {
    match a {
        IpAddr::V4(v4) => sum(&v4.octets(), init),
        IpAddr::V6(v6) => sum(&v6.octets(), init),
    }
}

/// Partial sum of the TCP/UDP pseudo-header: RFC 9293 §3.1 (IPv4: src, dst,
/// zero, protocol, 16-bit length) or RFC 8200 §8.1 (IPv6: src, dst, 32-bit
/// length, zeros, next header).  Both layouts have the same ones' complement
/// value given the same fields, so one formula serves both.  `src` and `dst`
/// are expected to be of the same family (mixed input is summed as given).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u32 {
    let s = addr_sum(dst, addr_sum(src, 0));
    add(add(s, proto as u32), fold17(len))
}

/// RFC 1624 eqn. 3 incremental update of a stored (complemented) checksum
/// field when a 16-bit word changes from `old` to `new`:
/// `HC' = ~(~HC + ~m + m')`.
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    let s = add(add(!csum as u32, !old as u32), new as u32);
    !fold(s)
}

/// [`update_u16`] for a 32-bit field (two aligned 16-bit words).
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(csum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 numerical example: 00 01 f2 03 f4 f5 f6 f7 -> ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        // Odd length: trailing byte padded on the right.
        assert_eq!(fold(sum(&[0x12], 0)), 0x1200);
        assert_eq!(fold(sum(&[0xab, 0xcd, 0x12], 0)), 0xbdcd);
    }

    #[test]
    fn big_inputs_do_not_overflow() {
        let d = [0xffu8; 70000];
        assert!(sums_equal(sum(&d, 0xffff_ffff), 0xffff));
        let d = [0x80u8; 65535];
        let expect = (0..32767u32).fold(0u32, |a, _| add(a, 0x8080));
        assert!(sums_equal(sum(&d, 0), add(expect, 0x8000)));
    }

    #[test]
    fn fold_add_sub() {
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0), 0);
        assert!(sums_equal(0, 0xffff));
        assert!(sums_equal(add(0x1234, 0xf000), 0x0235));
        assert!(sums_equal(sub(add(0x1234, 0x5678), 0x5678), 0x1234));
        assert!(sums_equal(sub(0x1234, 0x1234), 0));
        assert!(sums_equal(add(u32::MAX, u32::MAX), add(0xffff, 0xffff)));
    }

    #[test]
    fn pseudo_header_layouts() {
        let s4 = Ipv4Addr::new(192, 168, 1, 2);
        let d4 = Ipv4Addr::new(10, 0, 0, 1);
        let mut ph = [0u8; 12];
        ph[0..4].copy_from_slice(&s4.octets());
        ph[4..8].copy_from_slice(&d4.octets());
        ph[9] = 6;
        ph[10..12].copy_from_slice(&1234u16.to_be_bytes());
        assert!(sums_equal(
            pseudo_header(s4.into(), d4.into(), 6, 1234),
            sum(&ph, 0)
        ));
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::abcd:1".parse().unwrap();
        let mut ph = [0u8; 40];
        ph[0..16].copy_from_slice(&s6.octets());
        ph[16..32].copy_from_slice(&d6.octets());
        ph[32..36].copy_from_slice(&70000u32.to_be_bytes());
        ph[39] = 6;
        assert!(sums_equal(
            pseudo_header(s6.into(), d6.into(), 6, 70000),
            sum(&ph, 0)
        ));
    }

    #[test]
    fn incremental_matches_full() {
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let mut d = [0u8; 24];
            for b in d.iter_mut() {
                *b = next() as u8;
            }
            // Field 4..6 is the checksum, compute it over the rest.
            d[4] = 0;
            d[5] = 0;
            let c = !fold(sum(&d, 0));
            d[4..6].copy_from_slice(&c.to_be_bytes());
            // Change a u16 at 10..12 and a u32 at 12..16.
            let o16 = u16::from_be_bytes([d[10], d[11]]);
            let o32 = u32::from_be_bytes([d[12], d[13], d[14], d[15]]);
            let (n16, n32) = (next() as u16, next());
            d[10..12].copy_from_slice(&n16.to_be_bytes());
            d[12..16].copy_from_slice(&n32.to_be_bytes());
            let inc = update_u32(update_u16(c, o16, n16), o32, n32);
            d[4] = 0;
            d[5] = 0;
            let full = !fold(sum(&d, 0));
            assert!(sums_equal(inc as u32, full as u32), "{inc:04x} {full:04x}");
            // And the updated packet verifies.
            d[4..6].copy_from_slice(&inc.to_be_bytes());
            assert!(sums_equal(sum(&d, 0), 0xffff));
        }
    }
}
