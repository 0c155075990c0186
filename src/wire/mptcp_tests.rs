//! Tests for `mptcp`: byte vectors per subtype and length, round trips,
//! wrong-length rejection.

use super::*;

/// parse → compare → emit → byte-exact.
fn rt(bytes: &[u8], expect: MptcpOption) {
    let p = MptcpOption::parse(bytes).unwrap_or_else(|_| panic!("parse {bytes:02x?}"));
    assert_eq!(p, expect, "{bytes:02x?}");
    assert_eq!(p.len(), bytes.len());
    let mut out = [0xeeu8; 40];
    assert_eq!(p.emit(&mut out), Some(bytes.len()));
    assert_eq!(&out[..bytes.len()], bytes);
    assert_eq!(p.emit(&mut out[..bytes.len() - 1]), None);
    assert_eq!(subtype(bytes), Some(bytes[2] >> 4));
}

const K1: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const K2: [u8; 8] = [0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01];

fn cat(parts: &[&[u8]]) -> ([u8; 40], usize) {
    let mut b = [0u8; 40];
    let mut n = 0;
    for p in parts {
        b[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    }
    b[1] = n as u8;
    (b, n)
}

#[test]
fn mp_capable_all_forms() {
    let base = MpCapable {
        version: 1,
        flags: MPC_A | MPC_H,
        sender_key: None,
        receiver_key: None,
        data_len: None,
        checksum: None,
    };
    rt(&[30, 4, 0x01, 0x81], MptcpOption::MpCapable(base));
    let (b, n) = cat(&[&[30, 0, 0x01, 0x01], &K1]);
    let c12 = MpCapable {
        flags: MPC_H,
        sender_key: Some(0x1122_3344_5566_7788),
        ..base
    };
    rt(&b[..n], MptcpOption::MpCapable(c12));
    let (b, n) = cat(&[&[30, 0, 0x01, 0x21], &K1, &K2]);
    let c20 = MpCapable {
        flags: MPC_C | MPC_H,
        receiver_key: Some(0x99aa_bbcc_ddee_ff01),
        ..c12
    };
    rt(&b[..n], MptcpOption::MpCapable(c20));
    let (b, n) = cat(&[&[30, 0, 0x01, 0x21], &K1, &K2, &[0x05, 0xdc]]);
    let c22 = MpCapable {
        data_len: Some(1500),
        ..c20
    };
    rt(&b[..n], MptcpOption::MpCapable(c22));
    let (b, n) = cat(&[&[30, 0, 0x01, 0xa1], &K1, &K2, &[0x05, 0xdc, 0xbe, 0xef]]);
    let c24 = MpCapable {
        flags: MPC_A | MPC_C | MPC_H,
        checksum: Some(0xbeef),
        ..c22
    };
    rt(&b[..n], MptcpOption::MpCapable(c24));
}

#[test]
fn mp_join_all_forms() {
    rt(
        &[30, 12, 0x11, 7, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4],
        MptcpOption::MpJoin(MpJoin::Syn {
            backup: true,
            addr_id: 7,
            token: 0xdead_beef,
            nonce: 0x0102_0304,
        }),
    );
    let (b, n) = cat(&[&[30, 0, 0x10, 0], &K1, &[9, 8, 7, 6]]);
    rt(
        &b[..n],
        MptcpOption::MpJoin(MpJoin::SynAck {
            backup: false,
            addr_id: 0,
            hmac: 0x1122_3344_5566_7788,
            nonce: 0x0908_0706,
        }),
    );
    let mut h = [0u8; 20];
    for (i, x) in h.iter_mut().enumerate() {
        *x = i as u8 * 3;
    }
    let (b, n) = cat(&[&[30, 0, 0x10, 0], &h]);
    rt(&b[..n], MptcpOption::MpJoin(MpJoin::Ack { hmac: h }));
}

#[test]
fn dss_all_forms() {
    let a4 = [0, 0, 0x10, 0];
    let a8 = [0, 0, 0, 1, 0, 0, 0x10, 0];
    let d4 = [0xaa, 0xbb, 0xcc, 0xdd];
    let d8 = [0, 0, 0, 2, 0xaa, 0xbb, 0xcc, 0xdd];
    let map = [0, 0, 0, 1, 0x05, 0xa0]; // ssn 1, len 1440
    let ck = [0x12, 0x34];
    for &(has_ack, ack64) in &[(false, false), (true, false), (true, true)] {
        for &(has_map, dsn64, csum) in &[
            (false, false, false),
            (true, false, false),
            (true, false, true),
            (true, true, false),
            (true, true, true),
        ] {
            for fin in [false, true] {
                let mut flags = 0u8;
                let mut parts: [&[u8]; 6] = [&[], &[], &[], &[], &[], &[]];
                if fin {
                    flags |= DSS_F;
                }
                if has_ack {
                    flags |= DSS_A | if ack64 { DSS_A_64 } else { 0 };
                    parts[1] = if ack64 { &a8 } else { &a4 };
                }
                if has_map {
                    flags |= DSS_M | if dsn64 { DSS_M_64 } else { 0 };
                    parts[2] = if dsn64 { &d8 } else { &d4 };
                    parts[3] = &map;
                    if csum {
                        parts[4] = &ck;
                    }
                }
                let hdr = [30, 0, 0x20, flags];
                parts[0] = &hdr;
                let (b, n) = cat(&parts);
                let expect = Dss {
                    data_fin: fin,
                    data_ack: has_ack.then_some(if ack64 { 0x1_0000_1000 } else { 0x1000 }),
                    ack64: has_ack && ack64,
                    mapping: has_map.then_some(Mapping {
                        dsn: if dsn64 { 0x2_aabb_ccdd } else { 0xaabb_ccdd },
                        dsn64,
                        ssn: 1,
                        len: 1440,
                        checksum: csum.then_some(0x1234),
                    }),
                };
                rt(&b[..n], MptcpOption::Dss(expect));
                // Off-by-two lengths are rejected (checksum only with a mapping).
                let mut bad = b;
                bad[1] = n as u8 + 2;
                if !has_map || csum {
                    assert_eq!(MptcpOption::parse(&bad[..n + 2]), Err(Malformed));
                }
                if n > 4 {
                    bad[1] = n as u8 - 1;
                    assert_eq!(MptcpOption::parse(&bad[..n - 1]), Err(Malformed));
                }
            }
        }
    }
    // Infinite mapping: len 0 with a checksum.
    rt(
        &[30, 16, 0x20, 0x04, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0xab, 0xcd],
        MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: None,
            ack64: false,
            mapping: Some(Mapping {
                dsn: 9,
                dsn64: false,
                ssn: 0,
                len: 0,
                checksum: Some(0xabcd),
            }),
        }),
    );
}

#[test]
fn add_addr_all_forms() {
    let v4 = [192, 0, 2, 9];
    let v6: [u8; 16] = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets();
    let port = [0x1f, 0x90];
    for echo in [false, true] {
        for addr in [&v4[..], &v6[..]] {
            for with_port in [false, true] {
                let hdr = [30, 0, 0x30 | echo as u8, 5];
                let (b, n) = cat(&[
                    &hdr,
                    addr,
                    if with_port { &port } else { &[] },
                    if echo { &[] } else { &K2 },
                ]);
                let ip = if addr.len() == 4 {
                    IpAddr::V4(Ipv4Addr::from(v4))
                } else {
                    IpAddr::V6(Ipv6Addr::from(v6))
                };
                let expect = AddAddr {
                    echo,
                    addr_id: 5,
                    addr: ip,
                    port: with_port.then_some(8080),
                    hmac: (!echo).then_some(0x99aa_bbcc_ddee_ff01),
                };
                let want = match (echo, addr.len(), with_port) {
                    (false, 4, false) => 16,
                    (false, 4, true) => 18,
                    (false, _, false) => 28,
                    (false, _, true) => 30,
                    (true, 4, false) => 8,
                    (true, 4, true) => 10,
                    (true, _, false) => 20,
                    (true, _, true) => 22,
                };
                assert_eq!(n, want);
                rt(&b[..n], MptcpOption::AddAddr(expect));
            }
        }
    }
}

#[test]
fn small_options() {
    rt(
        &[30, 4, 0x40, 3],
        MptcpOption::RemoveAddr {
            ids: [3, 0, 0, 0, 0, 0, 0, 0],
            n: 1,
        },
    );
    rt(
        &[30, 11, 0x40, 1, 2, 3, 4, 5, 6, 7, 8],
        MptcpOption::RemoveAddr {
            ids: [1, 2, 3, 4, 5, 6, 7, 8],
            n: 8,
        },
    );
    // Longer lists keep the first 8.
    let long = [30, 13, 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert_eq!(
        MptcpOption::parse(&long),
        Ok(MptcpOption::RemoveAddr {
            ids: [1, 2, 3, 4, 5, 6, 7, 8],
            n: 8
        })
    );
    assert_eq!(MptcpOption::parse(&[30, 3, 0x40]), Err(Malformed));
    rt(&[30, 3, 0x51], MptcpOption::MpPrio { backup: true });
    rt(&[30, 3, 0x50], MptcpOption::MpPrio { backup: false });
    assert_eq!(MptcpOption::parse(&[30, 4, 0x51, 1]), Err(Malformed));
    let (b, n) = cat(&[&[30, 0, 0x60, 0], &K1]);
    rt(
        &b[..n],
        MptcpOption::MpFail {
            dsn: 0x1122_3344_5566_7788,
        },
    );
    let (b, n) = cat(&[&[30, 0, 0x70, 0], &K2]);
    rt(
        &b[..n],
        MptcpOption::MpFastclose {
            key: 0x99aa_bbcc_ddee_ff01,
        },
    );
    rt(
        &[30, 4, 0x81, 4],
        MptcpOption::MpTcpRst {
            reason: 4,
            transient: true,
        },
    );
    rt(
        &[30, 4, 0x80, 0],
        MptcpOption::MpTcpRst {
            reason: 0,
            transient: false,
        },
    );
}

#[test]
fn wrong_lengths_rejected() {
    let allowed: [(u8, &[usize]); 9] = [
        (0x01, &[4, 12, 20, 22, 24]),
        (0x10, &[12, 16, 24]),
        (0x20, &[4]), // flags 0: only the bare DSS
        (0x30, &[16, 18, 28, 30]),
        (
            0x40,
            &[
                4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
            ],
        ),
        (0x50, &[3]),
        (0x60, &[12]),
        (0x70, &[12]),
        (0x80, &[4]),
    ];
    for (b2, ok) in allowed {
        for n in 0..=40usize {
            let mut b = [0u8; 40];
            b[0] = 30;
            b[1] = n as u8;
            b[2] = b2;
            let r = MptcpOption::parse(&b[..n]);
            assert_eq!(r.is_ok(), ok.contains(&n), "b2 {b2:02x} len {n}");
            // The length byte must equal the slice length.
            if n >= 3 {
                b[1] = n as u8 + 1;
                assert_eq!(MptcpOption::parse(&b[..n]), Err(Malformed));
            }
        }
    }
    // ADD_ADDR echo lengths.
    for n in 0..=40usize {
        let mut b = [0u8; 40];
        b[..3].copy_from_slice(&[30, n as u8, 0x31]);
        let ok = [8, 10, 20, 22].contains(&n);
        assert_eq!(MptcpOption::parse(&b[..n]).is_ok(), ok, "echo len {n}");
    }
    // Other kinds and unknown subtypes.
    assert_eq!(MptcpOption::parse(&[29, 4, 0x01, 0x81]), Err(Malformed));
    assert_eq!(MptcpOption::parse(&[30, 4, 0x91, 0x81]), Err(Malformed));
    assert_eq!(MptcpOption::parse(&[30, 4, 0xf1, 0x81]), Err(Malformed));
    assert_eq!(subtype(&[30, 2]), None);
}
