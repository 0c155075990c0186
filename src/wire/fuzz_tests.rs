//! Robustness: ~100k pseudo-randomly mutated and truncated buffers through
//! every parser must never panic, and whatever parses must re-emit
//! consistently.

use super::mptcp::MptcpOption;
use super::packet::{write_tcp, IpTcp, TcpSpec, ACK, SYN};
use super::tcpopt::{find_mss_offset, TcpOptions};

/// A small deterministic generator for the fuzz-style loops of the wire tests.
pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(out: &mut [[u8; 128]; 4]) -> [usize; 4] {
    let v4 = TcpSpec {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        sport: 1,
        dport: 2,
        seq: 3,
        ack: 4,
        flags: SYN | ACK,
        window: 5,
        ttl: 6,
        tos: 7,
        ip_id: 8,
        df: true,
        flow: 9,
    };
    let v6 = TcpSpec {
        src: "::1".parse().unwrap(),
        dst: "::2".parse().unwrap(),
        ..v4
    };
    let opts_a: &[u8] = &[
        2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7, 30, 12, 0x01, 0x81, 1, 2, 3,
        4, 5, 6, 7, 8,
    ];
    let opts_b: &[u8] = &[
        1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 30, 20, 0x20, 0x0f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
        1, 0, 0, 0, 9, 0x12, 0x34,
    ];
    let mut lens = [0; 4];
    for (i, (spec, opts)) in [(v4, opts_a), (v6, opts_b), (v4, opts_b), (v6, opts_a)]
        .iter()
        .enumerate()
    {
        lens[i] = write_tcp(&mut out[i], spec, opts, b"payload!x", None).unwrap();
    }
    lens
}

fn exercise(buf: &[u8]) -> u32 {
    let mut acc = 0u32;
    if let Ok(p) = IpTcp::parse(buf) {
        acc = acc.wrapping_add(p.payload_sum(buf));
        acc = acc.wrapping_add(p.payload(buf).len() as u32);
        let o = p.options(buf);
        acc = acc.wrapping_add(find_mss_offset(o).unwrap_or(0) as u32);
        acc = acc.wrapping_add(exercise_opts(o));
    }
    // Also treat the raw bytes as an option block and as one MPTCP option.
    acc = acc.wrapping_add(exercise_opts(buf.get(..40.min(buf.len())).unwrap_or(&[])));
    acc.wrapping_add(exercise_mptcp(buf.get(..40.min(buf.len())).unwrap_or(&[])))
}

fn exercise_opts(o: &[u8]) -> u32 {
    let t = TcpOptions::parse(o);
    let mut acc = t.sack_n as u32 + t.malformed as u32;
    for m in t.mptcp_opts() {
        acc = acc.wrapping_add(exercise_mptcp(m));
    }
    acc
}

fn exercise_mptcp(m: &[u8]) -> u32 {
    match MptcpOption::parse(m) {
        Ok(opt) => {
            let mut out = [0u8; 40];
            let n = opt.emit(&mut out).expect("parsed options fit 40 bytes");
            assert_eq!(n, opt.len());
            // Emit canonicalises reserved bits; the value must survive.
            assert_eq!(MptcpOption::parse(&out[..n]), Ok(opt));
            n as u32
        }
        Err(_) => 0,
    }
}

#[test]
fn mutated_buffers_never_panic() {
    let mut store = [[0u8; 128]; 4];
    let lens = seeds(&mut store);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut sink = 0u32;
    for iter in 0..100_000 {
        let k = iter % 4;
        let mut b = store[k];
        let mut n = lens[k];
        // A few byte mutations, biased towards the header/option area.
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(n.min(80));
            let v = rng.next() as u8;
            match rng.below(4) {
                0 => b[at] = v,
                1 => b[at] ^= 1 << (v & 7),
                2 => b[at] = [0, 1, 2, 30, 0xff, 40][v as usize % 6],
                _ => b[at] = b[at].wrapping_add(v & 3),
            }
        }
        if rng.below(4) == 0 {
            n = rng.below(n + 1);
        }
        sink = sink.wrapping_add(exercise(&b[..n]));
        // Random MPTCP-shaped option: kind 30, consistent length, random subtype.
        let mut m = [0u8; 40];
        for x in m.iter_mut() {
            *x = rng.next() as u8;
        }
        let len = rng.below(41);
        m[0] = 30;
        m[1] = len as u8;
        sink = sink.wrapping_add(exercise_mptcp(&m[..len]));
        sink = sink.wrapping_add(exercise_opts(&m[..len]));
    }
    assert_ne!(sink, 0);
}
