//! Building the packets the engine sends: fresh segments for subflows and the LAN host, and
//! address translation for connections that stayed plain TCP. Payload bytes are copied once and
//! never summed again: their checksum contribution comes from the packet they arrived in.

use std::net::SocketAddr;

use super::{Counters, Dest, TxRing};
use crate::wire::checksum;
use crate::wire::mptcp::MptcpOption;
use crate::wire::packet::{write_tcp, IpTcp, TcpSpec};
use crate::wire::tcpopt::OptWriter;

/// Queue one TCP segment. Returns false (and counts) when it could not be queued.
pub fn segment(
    tx: &mut TxRing,
    counters: &mut Counters,
    dest: Dest,
    spec: &TcpSpec,
    opts: &OptWriter,
    payload: &[u8],
    payload_sum: Option<u32>,
) -> bool {
    let Some(buf) = tx.slot() else {
        counters.tx_ring_full += 1;
        return false;
    };
    match write_tcp(buf, spec, opts.as_bytes(), payload, payload_sum) {
        Some(n) => {
            tx.commit(dest, n);
            true
        }
        None => {
            counters.pkt_malformed += 1;
            false
        }
    }
}

/// Append an MPTCP option; false when it does not fit.
pub fn mptcp(w: &mut OptWriter, o: &MptcpOption) -> bool {
    let mut b = [0u8; 40];
    match o.emit(&mut b) {
        Some(n) => w.raw(&b[..n]),
        None => false,
    }
}

fn addr_sum(a: SocketAddr) -> u32 {
    let s = match a.ip() {
        std::net::IpAddr::V4(v) => checksum::sum(&v.octets(), 0),
        std::net::IpAddr::V6(v) => checksum::sum(&v.octets(), 0),
    };
    checksum::add(s, a.port() as u32)
}

fn put_addr(b: &mut [u8], a: std::net::IpAddr) {
    match a {
        std::net::IpAddr::V4(v) => b.copy_from_slice(&v.octets()),
        std::net::IpAddr::V6(v) => b.copy_from_slice(&v.octets()),
    }
}

/// Queue a copy of `pkt` with new endpoints (`src`, `dst`) and the TTL decremented, checksums
/// updated incrementally (RFC 1624). For connections that stayed plain TCP.
pub fn translate(
    tx: &mut TxRing,
    counters: &mut Counters,
    dest: Dest,
    pkt: &[u8],
    p: &IpTcp,
    src: SocketAddr,
    dst: SocketAddr,
) -> bool {
    let len = p.payload_off + p.payload_len;
    let Some(buf) = tx.slot() else {
        counters.tx_ring_full += 1;
        return false;
    };
    if len > buf.len() || len > pkt.len() || src.is_ipv4() == p.v6 || dst.is_ipv4() == p.v6 {
        counters.pkt_malformed += 1;
        return false;
    }
    let out = &mut buf[..len];
    out.copy_from_slice(&pkt[..len]);
    let old = checksum::add(
        addr_sum(SocketAddr::new(p.src, p.sport)),
        addr_sum(SocketAddr::new(p.dst, p.dport)),
    );
    let new = checksum::add(addr_sum(src), addr_sum(dst));
    let h = p.ip_hlen;
    if p.v6 {
        put_addr(&mut out[8..24], src.ip());
        put_addr(&mut out[24..40], dst.ip());
        out[7] = out[7].saturating_sub(1);
    } else {
        put_addr(&mut out[12..16], src.ip());
        put_addr(&mut out[16..20], dst.ip());
        out[8] = out[8].saturating_sub(1);
        out[10] = 0;
        out[11] = 0;
        let c = !checksum::fold(checksum::sum(&out[..h], 0));
        out[10..12].copy_from_slice(&c.to_be_bytes());
    }
    out[h..h + 2].copy_from_slice(&src.port().to_be_bytes());
    out[h + 2..h + 4].copy_from_slice(&dst.port().to_be_bytes());
    let s = checksum::add(!p.csum as u32, new);
    let s = checksum::sub(s, checksum::fold(old) as u32);
    let c = !checksum::fold(s);
    out[h + 16..h + 18].copy_from_slice(&c.to_be_bytes());
    tx.commit(dest, len);
    true
}
