//! The engine against a scripted MPTCP server in virtual time: packets are built by hand,
//! the engine's output is parsed back and checked field by field.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mpconv::engine::{Dest, Engine, EngineConfig, Side, UplinkConfig, UplinkState, Verdict};
use mpconv::wire::crypto;
use mpconv::wire::mptcp::{Dss, Mapping, MpCapable, MpJoin, MptcpOption, MPC_H};
use mpconv::wire::packet::{write_tcp, IpTcp, TcpSpec, ACK, FIN, PSH, RST, SYN};
use mpconv::wire::tcpopt::{OptWriter, TcpOptions};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const UP0: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 2);
const UP1: Ipv4Addr = Ipv4Addr::new(100, 64, 2, 2);
const SERVER_KEY: u64 = 0x1122_3344_5566_7788;

fn engine() -> Engine {
    engine_with_backup(false)
}

/// Two uplinks; the second ("lte") a backup uplink when `lte_backup`.
fn engine_with_backup(lte_backup: bool) -> Engine {
    let up = |name: &str, a| UplinkConfig {
        name: name.into(),
        addr4: Some(a),
        addr6: None,
        mtu: 1500,
        backup: lte_backup && name == "lte",
    };
    Engine::new(EngineConfig {
        uplinks: vec![up("dsl", UP0), up("lte", UP1)],
        max_connections: 4,
        seed: [3; 32],
        ..EngineConfig::default()
    })
}

struct Pkt {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    opts: OptWriter,
    payload: Vec<u8>,
}

fn build(p: &Pkt) -> Vec<u8> {
    build_win(p, 1000)
}

fn build_win(p: &Pkt, window: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let spec = TcpSpec {
        src: IpAddr::V4(p.src.0),
        dst: IpAddr::V4(p.dst.0),
        sport: p.src.1,
        dport: p.dst.1,
        seq: p.seq,
        ack: p.ack,
        flags: p.flags,
        window,
        ttl: 64,
        tos: 0,
        ip_id: 1,
        df: true,
        flow: 0,
    };
    let n = write_tcp(&mut buf, &spec, p.opts.as_bytes(), &p.payload, None).unwrap();
    buf.truncate(n);
    buf
}

fn drain(e: &mut Engine) -> Vec<(Dest, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some((d, b)) = e.poll_transmit() {
        v.push((d, b.to_vec()));
    }
    v
}

fn mptcp_opts(pkt: &[u8]) -> Vec<MptcpOption> {
    let p = IpTcp::parse(pkt).unwrap();
    let o = TcpOptions::parse(p.options(pkt));
    o.mptcp[..o.mptcp_n]
        .iter()
        .map(|x| MptcpOption::parse(x).unwrap())
        .collect()
}

fn opt(o: MptcpOption) -> OptWriter {
    let mut w = OptWriter::new();
    let mut b = [0u8; 40];
    let n = o.emit(&mut b).unwrap();
    assert!(w.raw(&b[..n]));
    w
}

/// Client SYN → MP_CAPABLE SYN on uplink 0; server SYN/ACK with its key → SYN/ACK to the
/// client. Returns the engine, the router's port on uplink 0 and the router's key.
fn handshake() -> (Engine, u16, u64) {
    handshake_on(engine())
}

fn handshake_on(e: Engine) -> (Engine, u16, u64) {
    handshake_scaled(e, None)
}

/// [`handshake_on`], both SYNs with window scale `ws` when given.
fn handshake_scaled(e: Engine, ws: Option<u8>) -> (Engine, u16, u64) {
    handshake_opts(e, ws, false)
}

/// [`handshake_scaled`], both SYNs with SACK permitted when `sack`.
fn handshake_opts(mut e: Engine, ws: Option<u8>, sack: bool) -> (Engine, u16, u64) {
    let mut syn = build(&Pkt {
        src: (CLIENT, 40000),
        dst: (SERVER, 80),
        seq: 1000,
        ack: 0,
        flags: SYN,
        opts: {
            let mut w = OptWriter::new();
            w.mss(1460);
            if let Some(ws) = ws {
                w.wscale(ws);
            }
            if sack {
                w.sack_perm();
            }
            w
        },
        payload: vec![],
    });
    assert_eq!(e.handle(0, Side::Lan, &mut syn), Verdict::Drop);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Dest::Uplink(0));
    let p = IpTcp::parse(&out[0].1).unwrap();
    assert_eq!(p.src, IpAddr::V4(UP0));
    assert_eq!(p.seq, 1000);
    assert!(matches!(
        mptcp_opts(&out[0].1)[..],
        [MptcpOption::MpCapable(MpCapable {
            version: 1,
            sender_key: None,
            ..
        })]
    ));
    let port = p.sport;
    let mss = TcpOptions::parse(p.options(&out[0].1)).mss.unwrap();
    assert!(mss <= 1460);

    let mut synack = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP0, port),
        seq: 5000,
        ack: 1001,
        flags: SYN | ACK,
        opts: {
            let mut w = opt(MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags: MPC_H,
                sender_key: Some(SERVER_KEY),
                receiver_key: None,
                data_len: None,
                checksum: None,
            }));
            w.mss(1460);
            if let Some(ws) = ws {
                w.wscale(ws);
            }
            if sack {
                w.sack_perm();
            }
            w
        },
        payload: vec![],
    });
    assert_eq!(e.handle(1, Side::Uplink(0), &mut synack), Verdict::Drop);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Dest::Lan);
    let p = IpTcp::parse(&out[0].1).unwrap();
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (IpAddr::V4(SERVER), 80, IpAddr::V4(CLIENT), 40000)
    );
    assert_eq!((p.seq, p.ack, p.flags), (5000, 1001, SYN | ACK));
    let mss = TcpOptions::parse(p.options(&out[0].1)).mss.unwrap();
    assert!(mss <= 1460 - 24, "MSS clamped for our options: {mss}");
    assert!(mptcp_opts(&out[0].1).is_empty());

    // The third ACK carries both keys.
    let mut ack = build(&Pkt {
        src: (CLIENT, 40000),
        dst: (SERVER, 80),
        seq: 1001,
        ack: 5001,
        flags: ACK,
        opts: OptWriter::new(),
        payload: vec![],
    });
    e.handle(2, Side::Lan, &mut ack);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    let key = match mptcp_opts(&out[0].1)[..] {
        [MptcpOption::MpCapable(MpCapable {
            sender_key: Some(k),
            receiver_key: Some(r),
            ..
        })] => {
            assert_eq!(r, SERVER_KEY);
            k
        }
        ref o => panic!("third ACK options {o:?}"),
    };
    (e, port, key)
}

#[test]
fn handshake_converts() {
    let (e, _, _) = handshake();
    assert_eq!(e.counters().mp_capable_syn_tx, 1);
    assert_eq!(e.counters().mp_capable_synack_rx, 1);
    assert_eq!(e.status().connections.len(), 1);
}

#[test]
fn fallback_without_mp_capable() {
    let mut e = engine();
    let mut syn = build(&Pkt {
        src: (CLIENT, 40001),
        dst: (SERVER, 80),
        seq: 7,
        ack: 0,
        flags: SYN,
        opts: OptWriter::new(),
        payload: vec![],
    });
    e.handle(0, Side::Lan, &mut syn);
    let port = IpTcp::parse(&drain(&mut e)[0].1).unwrap().sport;
    let mut synack = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP0, port),
        seq: 99,
        ack: 8,
        flags: SYN | ACK,
        opts: OptWriter::new(),
        payload: vec![],
    });
    e.handle(1, Side::Uplink(0), &mut synack);
    drain(&mut e);
    // Data from the client is translated only, byte for byte, with a valid checksum.
    let mut data = build(&Pkt {
        src: (CLIENT, 40001),
        dst: (SERVER, 80),
        seq: 8,
        ack: 100,
        flags: ACK | PSH,
        opts: OptWriter::new(),
        payload: b"hello".to_vec(),
    });
    e.handle(2, Side::Lan, &mut data);
    let out = drain(&mut e);
    let p = IpTcp::parse(&out[0].1).unwrap();
    assert_eq!(
        (p.src, p.sport, p.seq, p.ack),
        (IpAddr::V4(UP0), port, 8, 100)
    );
    assert_eq!(p.payload(&out[0].1), b"hello");
    let eth = etherparse::SlicedPacket::from_ip(&out[0].1).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = eth.net else {
        panic!()
    };
    let Some(etherparse::TransportSlice::Tcp(tcp)) = eth.transport else {
        panic!()
    };
    assert_eq!(
        tcp.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
            .unwrap(),
        tcp.checksum()
    );
    assert_eq!(e.counters().conn_fallback, 1);
}

/// A DSS with a 64-bit DATA_ACK and mapping.
fn dss(data_ack: u64, dsn: u64, ssn: u32, len: u16) -> OptWriter {
    opt(MptcpOption::Dss(Dss {
        data_fin: false,
        data_ack: Some(data_ack),
        ack64: true,
        mapping: Some(Mapping {
            dsn,
            dsn64: true,
            ssn,
            len,
            checksum: None,
        }),
    }))
}

/// After [`handshake`]: server data with a DSS (100 bytes at SSN 1) confirms our key, the join
/// SYN goes out on uplink 1, the server's SYN/ACK (ISN 9000) is verified and answered.
/// Returns the join's source port and our ISN on it.
fn confirm_and_join(e: &mut Engine, port: u16, key: u64) -> (u16, u32) {
    let (_, server_idsn) = crypto::token_idsn(SERVER_KEY);
    let (_, local_idsn) = crypto::token_idsn(key);
    let dss = |dsn, ssn, len| dss(local_idsn + 1, dsn, ssn, len);
    // Server data on the initial subflow with a DSS: this confirms our key, so the join starts.
    let mut d0 = initial_data(port, 5001, dss(server_idsn + 1, 1, 100), 1);
    e.handle(3, Side::Uplink(0), &mut d0);
    let out = drain(e);
    let to_client: Vec<_> = out.iter().filter(|o| o.0 == Dest::Lan).collect();
    let joins: Vec<_> = out.iter().filter(|o| o.0 == Dest::Uplink(1)).collect();
    assert_eq!(to_client.len(), 1);
    let p = IpTcp::parse(&to_client[0].1).unwrap();
    assert_eq!((p.seq, p.payload_len), (5001, 100));
    assert_eq!(joins.len(), 1, "join SYN on the second uplink");
    let jp = IpTcp::parse(&joins[0].1).unwrap();
    assert_eq!(jp.src, IpAddr::V4(UP1));
    let (token, nonce) = match mptcp_opts(&joins[0].1)[..] {
        [MptcpOption::MpJoin(MpJoin::Syn { token, nonce, .. })] => (token, nonce),
        ref o => panic!("{o:?}"),
    };
    assert_eq!(token, crypto::token_idsn(SERVER_KEY).0);

    // Server's join SYN/ACK with the right HMAC → third ACK with the 160-bit HMAC.
    let snonce = 0xabcdef01u32;
    let h = crypto::join_hmac(SERVER_KEY, key, snonce, nonce);
    let mut h8 = [0u8; 8];
    h8.copy_from_slice(&h[..8]);
    let mut jsa = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP1, jp.sport),
        seq: 9000,
        ack: jp.seq + 1,
        flags: SYN | ACK,
        opts: opt(MptcpOption::MpJoin(MpJoin::SynAck {
            backup: false,
            addr_id: 0,
            hmac: u64::from_be_bytes(h8),
            nonce: snonce,
        })),
        payload: vec![],
    });
    e.handle(4, Side::Uplink(1), &mut jsa);
    let out = drain(e);
    assert_eq!(out.len(), 1);
    let want = crypto::join_hmac(key, SERVER_KEY, nonce, snonce);
    match mptcp_opts(&out[0].1)[..] {
        [MptcpOption::MpJoin(MpJoin::Ack { hmac })] => assert_eq!(hmac[..], want[..20]),
        ref o => panic!("{o:?}"),
    }
    assert_eq!(e.counters().mp_join_synack_rx, 1);
    (jp.sport, jp.seq)
}

#[test]
fn multipath_reception_and_ack_projection() {
    let (mut e, port, key) = handshake();
    let (_, server_idsn) = crypto::token_idsn(SERVER_KEY);
    let (_, local_idsn) = crypto::token_idsn(key);
    let dss = |dsn, ssn, len| dss(local_idsn + 1, dsn, ssn, len);
    let (jport, jisn) = confirm_and_join(&mut e, port, key);

    // Server data on the join (DSN 200..300 after a gap 100..200 still in flight on subflow 0).
    let mut j1 = join_data(jport, jisn, dss(server_idsn + 201, 1, 100));
    e.handle(5, Side::Uplink(1), &mut j1);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    let p = IpTcp::parse(&out[0].1).unwrap();
    assert_eq!(
        p.seq,
        5001 + 200,
        "placed by its DSN in the client's stream"
    );
    assert_eq!(e.counters().mp_join_ack_rx, 1);

    // The client ACKs 5101 (first 100 bytes) and SACKs 5201..5301.
    let mut sack = OptWriter::new();
    sack.sack(&[(5201, 5301)]);
    let mut ca = build(&Pkt {
        src: (CLIENT, 40000),
        dst: (SERVER, 80),
        seq: 1001,
        ack: 5101,
        flags: ACK,
        opts: sack,
        payload: vec![],
    });
    e.handle(6, Side::Lan, &mut ca);
    let out = drain(&mut e);
    let on0: Vec<_> = out.iter().filter(|o| o.0 == Dest::Uplink(0)).collect();
    let on1: Vec<_> = out.iter().filter(|o| o.0 == Dest::Uplink(1)).collect();
    assert_eq!(on0.len(), 1);
    let p0 = IpTcp::parse(&on0[0].1).unwrap();
    assert_eq!(p0.ack, 5101, "subflow 0 delivered 100 bytes");
    // The host holds subflow 1's bytes (it SACKs them): the block containing subflow 1's
    // previous ACK projects to its new ACK (paper §3.5), so the server does not retransmit
    // them, while the data-level ACK stays at what the host acknowledged cumulatively.
    assert_eq!(on1.len(), 1);
    let p1 = IpTcp::parse(&on1[0].1).unwrap();
    assert_eq!(p1.ack, 9101);
    for o in [&on0[0].1, &on1[0].1] {
        let d = mptcp_opts(o);
        assert!(
            d.iter().any(|x| matches!(x, MptcpOption::Dss(Dss { data_ack: Some(a), .. }) if *a as u32 == (server_idsn + 101) as u32)),
            "{d:?}"
        );
    }
    // The client now has everything up to 5301 (subflow 0 fills the hole).
    let mut d1 = initial_data(port, 5101, dss(server_idsn + 101, 101, 100), 3);
    e.handle(7, Side::Uplink(0), &mut d1);
    drain(&mut e);
    let mut ca = build(&Pkt {
        src: (CLIENT, 40000),
        dst: (SERVER, 80),
        seq: 1001,
        ack: 5301,
        flags: ACK,
        opts: OptWriter::new(),
        payload: vec![],
    });
    e.handle(8, Side::Lan, &mut ca);
    let out = drain(&mut e);
    let a0 = out
        .iter()
        .find(|o| o.0 == Dest::Uplink(0))
        .map(|o| IpTcp::parse(&o.1).unwrap().ack);
    let a1 = out
        .iter()
        .find(|o| o.0 == Dest::Uplink(1))
        .map(|o| IpTcp::parse(&o.1).unwrap().ack);
    assert_eq!(a0, Some(5201));
    assert_eq!(a1, None, "subflow 1 contributed nothing new: no ACK for it");
    // Every ACK carries the data-level ACK.
    for o in &out {
        let d = mptcp_opts(&o.1);
        assert!(d.iter().any(|x| matches!(x, MptcpOption::Dss(Dss { data_ack: Some(a), .. }) if *a as u32 == (server_idsn + 301) as u32)), "{d:?}");
    }
    let _ = FIN;
    let _ = SocketAddr::new(IpAddr::V4(CLIENT), 0);
}

#[test]
fn mp_prio_backup_moves_the_hosts_data() {
    let (mut e, port, key) = handshake();
    let (_, local_idsn) = crypto::token_idsn(key);
    let (jport, jisn) = confirm_and_join(&mut e, port, key);
    let client = |seq: u32, data: &[u8]| Pkt {
        src: (CLIENT, 40000),
        dst: (SERVER, 80),
        seq,
        ack: 5101,
        flags: ACK | PSH,
        opts: OptWriter::new(),
        payload: data.to_vec(),
    };
    // The join's first ACK from the server establishes it.
    let mut a = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP1, jport),
        seq: 9001,
        ack: jisn + 1,
        flags: ACK,
        opts: opt(MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: Some(local_idsn + 1),
            ack64: true,
            mapping: None,
        })),
        payload: vec![],
    });
    e.handle(5, Side::Uplink(1), &mut a);
    drain(&mut e);
    // Host data while the initial subflow is active: on uplink 0.
    e.handle(6, Side::Lan, &mut build(&client(1001, &[7; 50])));
    let out = drain(&mut e);
    assert!(out
        .iter()
        .all(|o| o.0 != Dest::Uplink(1) || IpTcp::parse(&o.1).unwrap().payload_len == 0));
    let d0: Vec<_> = out.iter().filter(|o| o.0 == Dest::Uplink(0)).collect();
    assert_eq!(IpTcp::parse(&d0[0].1).unwrap().payload_len, 50);
    // The server makes the initial subflow a backup (MP_PRIO on it, RFC 8684 §3.3.8).
    let mut prio = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP0, port),
        seq: 5101,
        ack: 1001,
        flags: ACK,
        opts: opt(MptcpOption::MpPrio { backup: true }),
        payload: vec![],
    });
    e.handle(7, Side::Uplink(0), &mut prio);
    drain(&mut e);
    assert_eq!(e.counters().mp_prio_rx, 1);
    // New host data now goes on the join, with a mapping to its DSN and the join's SSN 1.
    e.handle(8, Side::Lan, &mut build(&client(1051, &[8; 60])));
    let out = drain(&mut e);
    let on1: Vec<_> = out.iter().filter(|o| o.0 == Dest::Uplink(1)).collect();
    assert_eq!(on1.len(), 1, "{out:?}");
    let p1 = IpTcp::parse(&on1[0].1).unwrap();
    assert_eq!((p1.seq, p1.payload_len), (jisn + 1, 60));
    match mptcp_opts(&on1[0].1)[..] {
        [MptcpOption::Dss(Dss {
            mapping: Some(m), ..
        })] => {
            assert_eq!(
                (m.dsn as u32, m.ssn, m.len),
                ((local_idsn + 51) as u32, 1, 60)
            );
        }
        ref o => panic!("{o:?}"),
    }
    // A retransmission of the first bytes keeps its subflow and mapping (paper §3.3).
    e.handle(9, Side::Lan, &mut build(&client(1001, &[7; 50])));
    let out = drain(&mut e);
    let r: Vec<_> = out
        .iter()
        .filter(|o| IpTcp::parse(&o.1).unwrap().payload_len > 0)
        .collect();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, Dest::Uplink(0));
    assert_eq!(IpTcp::parse(&r[0].1).unwrap().seq, 1001);
}

#[test]
fn garbage_never_panics() {
    let (mut e, port, _) = handshake();
    let base = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP0, port),
        seq: 5001,
        ack: 1001,
        flags: ACK,
        opts: opt(MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: Some(1),
            ack64: false,
            mapping: Some(Mapping {
                dsn: 1,
                dsn64: false,
                ssn: 1,
                len: 10,
                checksum: None,
            }),
        })),
        payload: vec![9; 10],
    });
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..50_000u64 {
        let mut b = base.clone();
        for _ in 0..(x % 4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x as usize) % b.len();
            b[j] = (x >> 32) as u8;
        }
        let side = if i % 3 == 0 {
            Side::Lan
        } else {
            Side::Uplink((i % 2) as u8)
        };
        e.handle(10 + i, side, &mut b);
        drain(&mut e);
        if i % 1000 == 0 {
            e.handle_timeout(10 + i * 1000);
        }
    }
}

/// The join's first ACK from the server (it establishes the join).
/// 100 bytes of `byte` from the server on the initial subflow at `seq`, with DSS `dss`.
fn initial_data(port: u16, seq: u32, dss: OptWriter, byte: u8) -> Vec<u8> {
    build(&Pkt {
        src: (SERVER, 80),
        dst: (UP0, port),
        seq,
        ack: 1001,
        flags: ACK,
        opts: dss,
        payload: vec![byte; 100],
    })
}

/// The server's first 100 bytes on the join (subflow bytes 1..101), with DSS `dss`.
fn join_data(jport: u16, jisn: u32, dss: OptWriter) -> Vec<u8> {
    build(&Pkt {
        src: (SERVER, 80),
        dst: (UP1, jport),
        seq: 9001,
        ack: jisn + 1,
        flags: ACK,
        opts: dss,
        payload: vec![2; 100],
    })
}

fn establish_join(e: &mut Engine, jport: u16, jisn: u32, key: u64) {
    let (_, local_idsn) = crypto::token_idsn(key);
    let mut a = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP1, jport),
        seq: 9001,
        ack: jisn + 1,
        flags: ACK,
        opts: opt(MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: Some(local_idsn + 1),
            ack64: true,
            mapping: None,
        })),
        payload: vec![],
    });
    e.handle(5, Side::Uplink(1), &mut a);
}

fn host_data(seq: u32, len: usize) -> Vec<u8> {
    build(&Pkt {
        src: (CLIENT, 40000),
        dst: (SERVER, 80),
        seq,
        ack: 5101,
        flags: ACK | PSH,
        opts: OptWriter::new(),
        payload: vec![9; len],
    })
}

/// The uplinks of the packets with payload in `out`.
fn data_dests(out: &[(Dest, Vec<u8>)]) -> Vec<Dest> {
    out.iter()
        .filter(|o| IpTcp::parse(&o.1).unwrap().payload_len > 0)
        .map(|o| o.0)
        .collect()
}

#[test]
fn uplink_down_moves_traffic_and_comes_back() {
    let (mut e, port, key) = handshake();
    let (jport, jisn) = confirm_and_join(&mut e, port, key);
    establish_join(&mut e, jport, jisn, key);
    drain(&mut e);
    // The initial subflow's uplink dies: REMOVE_ADDR of address ID 0 on the join, nothing
    // on the dead uplink.
    e.set_uplink_state(10, 0, UplinkState::Down);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, Dest::Uplink(1));
    match mptcp_opts(&out[0].1)[..] {
        [MptcpOption::Dss(_), MptcpOption::RemoveAddr { ids, n: 1 }] => assert_eq!(ids[0], 0),
        ref o => panic!("{o:?}"),
    }
    assert_eq!(e.counters().rm_addr_tx, 1);
    // The host's data, new and retransmitted, goes on the join now.
    e.handle(11, Side::Lan, &mut host_data(1001, 100));
    assert_eq!(data_dests(&drain(&mut e)), vec![Dest::Uplink(1)]);
    let st = e.status();
    assert_eq!(st.uplinks[0].state, UplinkState::Down);
    assert_eq!(st.connections[0].subflows[0].state, "closed");
    // A new connection starts on the working uplink.
    let mut syn = build(&Pkt {
        src: (CLIENT, 40001),
        dst: (SERVER, 80),
        seq: 7000,
        ack: 0,
        flags: SYN,
        opts: OptWriter::new(),
        payload: vec![],
    });
    e.handle(12, Side::Lan, &mut syn);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Dest::Uplink(1));
    // The uplink comes back: the first connection opens a subflow on it again, with a new
    // address ID (its uplink index + 1).
    e.set_uplink_state(13, 0, UplinkState::Up);
    let out = drain(&mut e);
    let joins: Vec<_> = out
        .iter()
        .filter(|o| {
            o.0 == Dest::Uplink(0)
                && matches!(
                    mptcp_opts(&o.1)[..],
                    [MptcpOption::MpJoin(MpJoin::Syn { .. })]
                )
        })
        .collect();
    assert_eq!(joins.len(), 1, "{out:?}");
    match mptcp_opts(&joins[0].1)[..] {
        [MptcpOption::MpJoin(MpJoin::Syn {
            addr_id, backup, ..
        })] => assert_eq!((addr_id, backup), (1, false)),
        ref o => panic!("{o:?}"),
    }
    assert_eq!(e.counters().subflow_reopened, 1);
    // The server still retransmits on the closed initial subflow now that the line is back:
    // it gets a reset (RFC 9293 §3.10.7.1: seq = its ACK) and re-sends that data elsewhere.
    let mut stray = build(&Pkt {
        src: (SERVER, 80),
        dst: (UP0, port),
        seq: 5001,
        ack: 1001,
        flags: ACK,
        opts: dss(1001, 1, 1, 10),
        payload: vec![7; 10],
    });
    assert_eq!(e.handle(14, Side::Uplink(0), &mut stray), Verdict::Drop);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, Dest::Uplink(0));
    let r = IpTcp::parse(&out[0].1).unwrap();
    assert_eq!(
        (r.src, r.sport, r.dst, r.dport),
        (IpAddr::V4(UP0), port, IpAddr::V4(SERVER), 80)
    );
    assert_eq!((r.flags, r.seq, r.payload_len), (RST, 1001, 0));
    // A SYN to that port is answered RST|ACK acknowledging it; a reset is never answered.
    let bare = |seq, flags| {
        build(&Pkt {
            src: (SERVER, 80),
            dst: (UP0, port),
            seq,
            ack: 0,
            flags,
            opts: OptWriter::new(),
            payload: vec![],
        })
    };
    e.handle(15, Side::Uplink(0), &mut bare(77, SYN));
    let out = drain(&mut e);
    let r = IpTcp::parse(&out[0].1).unwrap();
    assert_eq!((r.flags, r.seq, r.ack), (RST | ACK, 0, 78));
    e.handle(16, Side::Uplink(0), &mut bare(5001, RST));
    assert!(drain(&mut e).is_empty());
    assert_eq!(
        (e.counters().pkt_unknown, e.counters().stray_rst_tx),
        (3, 2)
    );
}

#[test]
fn backup_uplink_and_handover() {
    let (mut e, port, key) = handshake_on(engine_with_backup(true));
    // The join on the backup uplink carries the B bit.
    let (_, local_idsn) = crypto::token_idsn(key);
    let _ = local_idsn;
    let (jport, jisn) = confirm_and_join(&mut e, port, key);
    establish_join(&mut e, jport, jisn, key);
    drain(&mut e);
    assert!(e.status().connections[0].subflows[1].backup);
    e.handle(6, Side::Lan, &mut host_data(1001, 100));
    assert_eq!(data_dests(&drain(&mut e)), vec![Dest::Uplink(0)]);
    // Make-before-break to the backup uplink: MP_PRIO(backup) on the initial subflow,
    // MP_PRIO(regular) on the join; the data follows.
    assert_eq!(e.handover(7, 1), Ok(1));
    let out = drain(&mut e);
    let prio: Vec<(Dest, bool)> = out
        .iter()
        .filter_map(|o| {
            mptcp_opts(&o.1).iter().find_map(|m| match m {
                MptcpOption::MpPrio { backup } => Some((o.0, *backup)),
                _ => None,
            })
        })
        .collect();
    assert_eq!(prio.len(), 2, "{out:?}");
    assert!(prio.contains(&(Dest::Uplink(0), true)));
    assert!(prio.contains(&(Dest::Uplink(1), false)));
    e.handle(8, Side::Lan, &mut host_data(1101, 100));
    assert_eq!(data_dests(&drain(&mut e)), vec![Dest::Uplink(1)]);
    // The target dies: the initial subflow is made regular again and carries the data.
    e.set_uplink_state(9, 1, UplinkState::Down);
    let out = drain(&mut e);
    assert!(out.iter().any(|o| o.0 == Dest::Uplink(0)
        && mptcp_opts(&o.1)
            .iter()
            .any(|m| matches!(m, MptcpOption::MpPrio { backup: false }))));
    e.handle(10, Side::Lan, &mut host_data(1201, 100));
    assert_eq!(data_dests(&drain(&mut e)), vec![Dest::Uplink(0)]);
    assert_eq!(e.handover(11, 1), Err("uplink 'lte' is down".into()));
}

/// The DATA_ACK (low 32 bits) and window of a segment.
fn data_ack_and_window(pkt: &[u8]) -> (u32, u16) {
    let p = IpTcp::parse(pkt).unwrap();
    let a = mptcp_opts(pkt)
        .iter()
        .find_map(|o| match o {
            MptcpOption::Dss(Dss {
                data_ack: Some(a), ..
            }) => Some(*a as u32),
            _ => None,
        })
        .expect("a DATA_ACK");
    (a, p.window)
}

#[test]
fn a_subflow_that_does_not_move_keeps_the_servers_window_edge() {
    let (mut e, port, key) = handshake();
    let (_, server_idsn) = crypto::token_idsn(SERVER_KEY);
    let (_, local_idsn) = crypto::token_idsn(key);
    let (jport, jisn) = confirm_and_join(&mut e, port, key);
    establish_join(&mut e, jport, jisn, key);
    drain(&mut e);
    let d0 = (server_idsn + 1) as u32;
    // The host has the first 100 bytes (from subflow 0); its window ends at 100 + 1000.
    let out = host_ack_at(&mut e, 6, 5101, 1000);
    let on0 = out.iter().find(|o| o.0 == Dest::Uplink(0)).unwrap();
    assert_eq!(data_ack_and_window(&on0.1), (d0 + 100, 1000));
    // 100 bytes on the join; the host takes them without reading: same edge, window 900.
    let mut j = join_data(jport, jisn, dss(local_idsn + 1, server_idsn + 101, 1, 100));
    e.handle(7, Side::Uplink(1), &mut j);
    drain(&mut e);
    let out = host_ack_at(&mut e, 8, 5201, 900);
    let on0 = out.iter().find(|o| o.0 == Dest::Uplink(0)).unwrap();
    let on1 = out.iter().find(|o| o.0 == Dest::Uplink(1)).unwrap();
    // The join moved on (its 100 bytes are delivered): the latest DATA_ACK, window 900.
    assert_eq!(IpTcp::parse(&on1.1).unwrap().ack, 9101);
    assert_eq!(data_ack_and_window(&on1.1), (d0 + 200, 900));
    // Subflow 0 did not: its server keeps the window of 1000 it holds and would add it to
    // a DATA_ACK of 200 (an edge 100 bytes beyond the host's). It gets the DATA_ACK that
    // window belongs to.
    assert_eq!(IpTcp::parse(&on0.1).unwrap().ack, 5101);
    assert_eq!(data_ack_and_window(&on0.1), (d0 + 100, 1000));
}

#[test]
fn a_join_syn_carries_the_hosts_window_unscaled() {
    // Scale 7: the host's window field of 1000 is 128 000 bytes, which a SYN (never scaled,
    // RFC 7323 §2.2) can only say as 65 535.
    let (mut e, port, key) = handshake_scaled(engine(), Some(7));
    let (_, server_idsn) = crypto::token_idsn(SERVER_KEY);
    let (_, local_idsn) = crypto::token_idsn(key);
    let mut d0 = initial_data(port, 5001, dss(local_idsn + 1, server_idsn + 1, 1, 100), 1);
    e.handle(3, Side::Uplink(0), &mut d0);
    let out = drain(&mut e);
    let join = out
        .iter()
        .find(|o| o.0 == Dest::Uplink(1))
        .expect("join SYN");
    let p = IpTcp::parse(&join.1).unwrap();
    assert_eq!(p.flags, SYN);
    assert_eq!(p.window, 0xffff);
}

/// A SACK connection with an established join that has 100 server bytes at data offset 1000
/// (the host misses 0..1000): the engine, the initial subflow's port, server_idsn, local_idsn.
fn blocked_join() -> (Engine, u16, u64, u64) {
    // With SACK (without, the engine takes a repeated ACK for all forwarded bytes held).
    let (mut e, port, key) = handshake_opts(engine(), None, true);
    let (_, server_idsn) = crypto::token_idsn(SERVER_KEY);
    let (_, local_idsn) = crypto::token_idsn(key);
    let (jport, jisn) = confirm_and_join(&mut e, port, key);
    establish_join(&mut e, jport, jisn, key);
    drain(&mut e);
    let mut j = join_data(jport, jisn, dss(local_idsn + 1, server_idsn + 1001, 1, 100));
    e.handle(6, Side::Uplink(1), &mut j);
    drain(&mut e);
    (e, port, server_idsn, local_idsn)
}

/// The LAN host acknowledges nothing of the server's data, with window `win`.
fn host_ack(e: &mut Engine, t: u64, win: u16) {
    host_ack_at(e, t, 5001, win);
}

/// The LAN host acknowledges the server's bytes up to `ack` (its sequence space), with
/// window `win`: what the engine sends.
fn host_ack_at(e: &mut Engine, t: u64, ack: u32, win: u16) -> Vec<(Dest, Vec<u8>)> {
    let mut a = build_win(
        &Pkt {
            src: (CLIENT, 40000),
            dst: (SERVER, 80),
            seq: 1001,
            ack,
            flags: ACK,
            opts: OptWriter::new(),
            payload: vec![],
        },
        win,
    );
    e.handle(t, Side::Lan, &mut a);
    drain(e)
}

/// The resets in `out`, with their MPTCP options.
fn resets(out: &[(Dest, Vec<u8>)]) -> Vec<(Dest, Vec<MptcpOption>)> {
    out.iter()
        .filter(|o| IpTcp::parse(&o.1).unwrap().flags & RST != 0)
        .map(|o| (o.0, mptcp_opts(&o.1)))
        .collect()
}

const STALL_RST: MptcpOption = MptcpOption::MpTcpRst {
    reason: 4,
    transient: true,
};

#[test]
fn a_subflow_blocked_beyond_the_hosts_window_is_reset_and_opened_again() {
    let (mut e, _, _, _) = blocked_join();
    // Its window ends at 500: it drops the join's bytes, and the join cannot move. Not
    // before the host has waited a second...
    host_ack(&mut e, 7, 500);
    e.handle_timeout(900_000);
    assert_eq!(resets(&drain(&mut e)), vec![]);
    // ...nor while its window covers them (2000 here): it will take them.
    host_ack(&mut e, 950_000, 2000);
    e.handle_timeout(1_100_000);
    assert_eq!(resets(&drain(&mut e)), vec![]);
    host_ack(&mut e, 1_150_000, 500);
    e.handle_timeout(1_200_000);
    // ...then the join is reset, and opened again on its uplink.
    let out = drain(&mut e);
    assert_eq!(resets(&out), vec![(Dest::Uplink(1), vec![STALL_RST])]);
    let syn = out
        .iter()
        .find(|o| IpTcp::parse(&o.1).unwrap().flags == SYN)
        .expect("a new join");
    assert_eq!(syn.0, Dest::Uplink(1));
    assert!(matches!(
        mptcp_opts(&syn.1)[..],
        [MptcpOption::MpJoin(MpJoin::Syn { .. })]
    ));
    assert_eq!(e.counters().subflow_stall_reset, 1);
    assert_eq!(e.counters().subflow_reopened, 1);
    // The initial subflow, which nothing blocks, lives on; no second reset a sweep later.
    e.handle_timeout(1_300_000);
    assert_eq!(resets(&drain(&mut e)), vec![]);
}

#[test]
fn when_every_subflow_is_blocked_the_one_with_the_hosts_acks_is_kept() {
    let (mut e, port, server_idsn, local_idsn) = blocked_join();
    // The host has the initial subflow's first 100 bytes; then that subflow gets 100 at data
    // offset 1200, and the host's window ends at 500: both subflows are blocked.
    host_ack_at(&mut e, 7, 5101, 400);
    let mut d = initial_data(
        port,
        5101,
        dss(local_idsn + 1, server_idsn + 1201, 101, 100),
        3,
    );
    e.handle(8, Side::Uplink(0), &mut d);
    drain(&mut e);
    host_ack_at(&mut e, 9, 5101, 400);
    // The initial subflow carries the host's ACKs: it is kept, the join is reset.
    e.handle_timeout(1_100_000);
    assert_eq!(
        resets(&drain(&mut e)),
        vec![(Dest::Uplink(1), vec![STALL_RST])]
    );
    assert_eq!(e.counters().subflow_stall_reset, 1);
}
