//! Sequence-number arithmetic.
//!
//! * 32-bit TCP sequence comparison modulo 2^32 (RFC 9293 §3.4): `a < b` iff
//!   `(a - b) mod 2^32` is "negative" as an `i32`.
//! * [`expand32`]: RFC 8684 §3.3.1 lets DSN and DATA_ACK travel as their low
//!   32 bits; the receiver reconstructs the 64-bit value closest to the last
//!   known one (same behaviour as the Linux kernel's `__mptcp_expand_seq`).

/// `a` is before `b`.
#[inline]
pub fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` is before or equal to `b`.
#[inline]
pub fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// `a` is after `b`.
#[inline]
pub fn seq_gt(a: u32, b: u32) -> bool {
    seq_lt(b, a)
}

/// `a` is after or equal to `b`.
#[inline]
pub fn seq_ge(a: u32, b: u32) -> bool {
    seq_le(b, a)
}

/// The 64-bit value nearest to `last` whose low 32 bits equal `v`.
/// A distance of exactly 2^31 is ambiguous; it resolves as the kernel's
/// two-branch test does (reproduced here).  Arithmetic wraps at 2^64.
#[inline]
pub fn expand32(last: u64, v: u32) -> u64 {
    let last32 = last as u32;
    let cur = (last & 0xffff_ffff_0000_0000).wrapping_add(v as u64);
    if v < last32 && seq_lt(last32, v) {
        cur.wrapping_add(1 << 32)
    } else if v > last32 && seq_gt(last32, v) {
        cur.wrapping_sub(1 << 32)
    } else {
        cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare() {
        assert!(seq_lt(1, 2));
        assert!(seq_lt(0xffff_fff0, 0x10));
        assert!(seq_gt(0x10, 0xffff_fff0));
        assert!(seq_le(5, 5) && seq_ge(5, 5));
        assert!(!seq_lt(5, 5) && !seq_gt(5, 5));
        assert!(seq_lt(0, 0x7fff_ffff));
        assert!(seq_gt(0, 0x8000_0001));
    }

    #[test]
    fn expand() {
        assert_eq!(expand32(0x1_0000_0010, 0x20), 0x1_0000_0020);
        assert_eq!(expand32(0x1_0000_0010, 0x08), 0x1_0000_0008);
        assert_eq!(expand32(0x1_ffff_fff0, 0x10), 0x2_0000_0010);
        assert_eq!(expand32(0x2_0000_0010, 0xffff_fff0), 0x1_ffff_fff0);
        assert_eq!(expand32(0, 5), 5);
        assert_eq!(expand32(5, 0xffff_fffe), u64::MAX - 1);
        // Nearest-value property (ties excluded), checked on random points.
        fn nearest(last: u64, v: u32) -> u64 {
            let d = v.wrapping_sub(last as u32) as i32;
            last.wrapping_add(d as i64 as u64)
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let last = x;
            let v = (x >> 17) as u32 ^ (x as u32).rotate_left(7);
            if v.wrapping_sub(last as u32) != 0x8000_0000 {
                assert_eq!(expand32(last, v), nearest(last, v));
            }
            assert_eq!(expand32(last, last as u32), last);
        }
    }
}
