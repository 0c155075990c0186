//! Tests for `packet` (kept apart to keep packet.rs short).

use super::*;
use crate::wire::checksum::{fold, sum, sums_equal};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

fn spec4() -> TcpSpec {
    TcpSpec {
        src: "192.0.2.1".parse().unwrap(),
        dst: "198.51.100.7".parse().unwrap(),
        sport: 40000,
        dport: 443,
        seq: 0xdead_beef,
        ack: 0x0102_0304,
        flags: SYN | ACK,
        window: 64240,
        ttl: 63,
        tos: 0x10,
        ip_id: 0x4242,
        df: true,
        flow: 0,
    }
}

fn spec6() -> TcpSpec {
    TcpSpec {
        src: "2001:db8::1".parse().unwrap(),
        dst: "2001:db8:ffff::2".parse().unwrap(),
        flow: 0xabcde,
        tos: 0xb8,
        ..spec4()
    }
}

const OPTS: [u8; 7] = [2, 4, 0x05, 0xb4, 1, 3, 3]; // MSS 1460, NOP, WS (3 bytes, needs padding)

/// Full check through etherparse: IPv4 header checksum, TCP checksum, fields.
fn check_etherparse(buf: &[u8], spec: &TcpSpec, payload: &[u8]) {
    let sp = SlicedPacket::from_ip(buf).expect("etherparse parses it");
    let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
        panic!("no tcp")
    };
    assert_eq!(tcp.source_port(), spec.sport);
    assert_eq!(tcp.destination_port(), spec.dport);
    assert_eq!(tcp.sequence_number(), spec.seq);
    assert_eq!(tcp.acknowledgment_number(), spec.ack);
    assert_eq!(tcp.window_size(), spec.window);
    assert_eq!(tcp.payload(), payload);
    assert_eq!(&tcp.options()[..OPTS.len()], &OPTS);
    match sp.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            assert_eq!(h.ttl(), spec.ttl);
            assert_eq!(h.identification(), spec.ip_id);
            assert_eq!(h.dont_fragment(), spec.df);
            let c = tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap();
            assert_eq!(c, tcp.checksum());
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            assert_eq!(h.hop_limit(), spec.ttl);
            assert_eq!(h.flow_label().value(), spec.flow);
            assert_eq!(h.traffic_class(), spec.tos);
            let c = tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap();
            assert_eq!(c, tcp.checksum());
        }
        None => panic!("no ip"),
    }
}

fn roundtrip(spec: &TcpSpec, payload: &[u8], with_sum: bool) {
    let mut buf = [0u8; 1600];
    let ps = with_sum.then(|| sum(payload, 0));
    let n = write_tcp(&mut buf, spec, &OPTS, payload, ps).unwrap();
    let pkt = &buf[..n];
    check_etherparse(pkt, spec, payload);
    let p = IpTcp::parse(pkt).unwrap();
    assert_eq!(p.v6, spec.src.is_ipv6());
    assert_eq!((p.src, p.dst), (spec.src, spec.dst));
    assert_eq!(
        (p.sport, p.dport, p.seq, p.ack),
        (spec.sport, spec.dport, spec.seq, spec.ack)
    );
    assert_eq!(
        (p.flags, p.window, p.ttl, p.tos),
        (spec.flags, spec.window, spec.ttl, spec.tos)
    );
    assert_eq!(p.tcp_hlen, 28);
    assert_eq!(p.options(pkt), &[2, 4, 0x05, 0xb4, 1, 3, 3, 0]);
    assert_eq!(p.payload(pkt), payload);
    assert_eq!(p.payload_len, payload.len());
    if p.v6 {
        assert_eq!((p.flow, p.ip_id, p.df), (spec.flow, 0, false));
    } else {
        assert_eq!((p.flow, p.ip_id, p.df), (0, spec.ip_id, spec.df));
    }
    assert!(sums_equal(p.payload_sum(pkt), sum(payload, 0)));
    // Trailing link padding is ignored.
    let mut padded = [0u8; 1700];
    padded[..n].copy_from_slice(pkt);
    let q = IpTcp::parse(&padded[..n + 9]).unwrap();
    assert_eq!(q, p);
}

#[test]
fn write_parse_v4_v6_all_lengths() {
    let mut payload = [0u8; 301];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    for len in [0usize, 1, 2, 3, 4, 17, 300, 301] {
        for with_sum in [false, true] {
            roundtrip(&spec4(), &payload[..len], with_sum);
            roundtrip(&spec6(), &payload[..len], with_sum);
        }
    }
    // A payload summing to ones' complement zero (both representations).
    roundtrip(&spec4(), &[0xff, 0xff], false);
    roundtrip(&spec4(), &[0, 0, 0], false);
}

#[test]
fn write_limits() {
    let mut buf = [0u8; 100];
    assert_eq!(write_tcp(&mut buf, &spec4(), &[1; 41], &[], None), None);
    assert_eq!(write_tcp(&mut buf, &spec4(), &[1; 40], &[], None), Some(80));
    assert_eq!(
        write_tcp(&mut buf, &spec4(), &[1; 40], &[0; 20], None),
        Some(100)
    );
    assert_eq!(
        write_tcp(&mut buf, &spec4(), &[1; 40], &[0; 21], None),
        None
    );
    assert_eq!(
        write_tcp(&mut buf[..99], &spec6(), &[1; 40], &[], None),
        None
    );
    let mut mixed = spec4();
    mixed.dst = spec6().dst;
    assert_eq!(write_tcp(&mut buf, &mixed, &[], &[], None), None);
    assert_eq!(headers_len(&spec6(), 3), Some(64));
}

#[test]
fn headers_in_place() {
    let mut buf = [0u8; 200];
    let h = headers_len(&spec6(), OPTS.len()).unwrap();
    let payload = b"hello, world!";
    buf[h..h + payload.len()].copy_from_slice(payload);
    let n = write_tcp_headers(&mut buf, &spec6(), &OPTS, payload.len(), sum(payload, 0)).unwrap();
    check_etherparse(&buf[..n], &spec6(), payload);
}

/// A real-looking SYN captured by hand: 60-byte IPv4 SYN with MSS/SACK/TS/WS.
const SYN_V4: [u8; 60] = [
    0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x68,
    0xc0, 0xa8, 0x00, 0x01, // IP (checksum filled in by the test)
    0xa4, 0x10, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0,
    0x00, 0x00, 0x00, 0x00, // TCP
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x9c, 0x27, 0x24, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07, // options
];

#[test]
fn parse_fixed_syn_and_errors() {
    let mut b = SYN_V4;
    let c = !fold(sum(&b[..20], 0));
    b[10..12].copy_from_slice(&c.to_be_bytes());
    let p = IpTcp::parse(&b).unwrap();
    assert_eq!(
        (p.sport, p.dport, p.seq, p.flags),
        (0xa410, 80, 0x1234_5678, SYN)
    );
    assert_eq!(
        (p.ip_hlen, p.tcp_hlen, p.payload_len, p.window),
        (20, 40, 0, 0xfaf0)
    );
    assert_eq!((p.ip_id, p.ttl, p.df), (0x1c46, 64, true));
    assert_eq!(p.options(&b).len(), 20);
    use ParseError::*;
    assert_eq!(IpTcp::parse(&[]), Err(Truncated));
    assert_eq!(IpTcp::parse(&b[..59]), Err(Truncated));
    let mut x = b;
    x[0] = 0x55;
    assert_eq!(IpTcp::parse(&x), Err(BadVersion));
    x[0] = 0x44;
    assert_eq!(IpTcp::parse(&x), Err(BadHeader));
    let mut x = b;
    x[9] = 17;
    assert_eq!(IpTcp::parse(&x), Err(NotTcp));
    let mut x = b;
    x[6] = 0x20; // MF
    assert_eq!(IpTcp::parse(&x), Err(Fragment));
    x[6] = 0x40;
    x[7] = 1; // offset 8
    assert_eq!(IpTcp::parse(&x), Err(Fragment));
    let mut x = b;
    x[32] = 0x40; // data offset 4
    assert_eq!(IpTcp::parse(&x), Err(BadHeader));
    x[32] = 0xb0; // 44 bytes > 40 available
    assert_eq!(IpTcp::parse(&x), Err(BadHeader));
    let mut x = b;
    x[3] = 0x28; // total 40: TCP header would end past the packet
    assert_eq!(IpTcp::parse(&x), Err(BadHeader));
    x[3] = 0x24; // total 36: no room for the fixed TCP header
    assert_eq!(IpTcp::parse(&x), Err(Truncated));
    x[3] = 0x10; // total < ihl
    assert_eq!(IpTcp::parse(&x), Err(BadHeader));
    // IPv6 with a hop-by-hop header is not handled.
    let mut buf = [0u8; 100];
    let n = write_tcp(&mut buf, &spec6(), &[], &[], None).unwrap();
    assert_eq!(IpTcp::parse(&buf[..n]).map(|p| p.v6), Ok(true));
    buf[6] = 0;
    assert_eq!(IpTcp::parse(&buf[..n]), Err(NotTcp));
    buf[6] = 6;
    assert_eq!(IpTcp::parse(&buf[..n - 1]), Err(Truncated));
}

#[test]
fn parses_etherparse_built_packets() {
    use etherparse::PacketBuilder;
    for len in [0usize, 1, 2, 5, 64, 99] {
        let payload: [u8; 99] = core::array::from_fn(|i| (i as u8).wrapping_mul(91) ^ 0xc3);
        let payload = &payload[..len];
        let b4 = PacketBuilder::ipv4([10, 1, 2, 3], [172, 16, 0, 9], 20)
            .tcp(1234, 80, 777, 4000)
            .ack(999)
            .psh();
        let b6 = PacketBuilder::ipv6([0x20; 16], [0xfe; 16], 33)
            .tcp(1234, 80, 777, 4000)
            .syn();
        let mut v4 = Vec::new();
        b4.write(&mut v4, payload).unwrap();
        let mut v6 = Vec::new();
        b6.write(&mut v6, payload).unwrap();
        for (pkt, ttl) in [(&v4, 20), (&v6, 33)] {
            let p = IpTcp::parse(pkt).unwrap();
            assert_eq!(
                (p.sport, p.dport, p.seq, p.window, p.ttl),
                (1234, 80, 777, 4000, ttl)
            );
            assert_eq!(p.payload(pkt), payload);
            assert!(sums_equal(p.payload_sum(pkt), sum(payload, 0)));
        }
        assert_eq!(IpTcp::parse(&v4).unwrap().flags, ACK | PSH);
        assert_eq!(IpTcp::parse(&v6).unwrap().flags, SYN);
    }
}
