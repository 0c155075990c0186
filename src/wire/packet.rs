//! Zero-copy IPv4/IPv6 + TCP parsing, and a packet writer.
//!
//! [`IpTcp::parse`] validates only what is needed to locate the TCP header,
//! options and payload safely; it does **not** verify the IPv4 header checksum
//! or the TCP checksum (the kernel has checked them before NFQUEUE delivery).
//! The IP length field (IPv4 total length, IPv6 payload length) decides where
//! the packet ends; bytes of `buf` beyond it (link padding) are ignored.
//!
//! [`IpTcp::payload_sum`] derives the payload's ones' complement sum from the
//! stored TCP checksum without touching the payload: because the stored field
//! makes `pseudo + header(incl. field) + payload` fold to 0xFFFF (RFC 9293
//! §3.1), `payload ≡ -(pseudo + header)`.  It is only right if the received
//! checksum was valid (not CHECKSUM_PARTIAL from local offload).  The TCP
//! header is a multiple of 4 bytes, so the payload starts on an even offset
//! and its (zero-padded) odd tail sums identically either way.

use super::checksum;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

const PROTO_TCP: u8 = 6;
const TCP_MIN: usize = 20;

/// Why a buffer is not a packet we handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer is shorter than the headers or the IP length field says.
    Truncated,
    /// Not TCP (or IPv6 with extension headers before TCP).
    NotTcp,
    /// IP version neither 4 nor 6.
    BadVersion,
    /// Inconsistent header fields (IHL < 5, total length < IHL, data offset < 5 or past the end).
    BadHeader,
    /// An IPv4 fragment (MF set or non-zero fragment offset).
    Fragment,
}

/// A parsed IPv4/IPv6 + TCP packet: plain fields and offsets, no borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpTcp {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Offset of the TCP header (= IP header length).
    pub ip_hlen: usize,
    /// TCP header length including options (data offset * 4).
    pub tcp_hlen: usize,
    pub payload_off: usize,
    pub payload_len: usize,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// The TCP flags byte (see [`FIN`] ... [`CWR`]).
    pub flags: u8,
    pub window: u16,
    pub csum: u16,
    pub urg: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 TOS or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// IPv6 flow label (0 for IPv4).
    pub flow: u32,
    /// IPv4 don't-fragment bit.
    pub df: bool,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl IpTcp {
    /// Parses an IPv4 or IPv6 packet carrying TCP.  See [`ParseError`].
    pub fn parse(buf: &[u8]) -> Result<IpTcp, ParseError> {
        use ParseError::*;
        let first = *buf.first().ok_or(Truncated)?;
        let mut p = IpTcp {
            v6: false,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip_hlen: 0,
            tcp_hlen: 0,
            payload_off: 0,
            payload_len: 0,
            sport: 0,
            dport: 0,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 0,
            csum: 0,
            urg: 0,
            ttl: 0,
            tos: 0,
            ip_id: 0,
            flow: 0,
            df: false,
        };
        let total = match first >> 4 {
            4 => {
                if buf.len() < 20 {
                    return Err(Truncated);
                }
                let ihl = ((first & 0x0f) as usize) * 4;
                if ihl < 20 {
                    return Err(BadHeader);
                }
                let total = be16(buf, 2).ok_or(Truncated)? as usize;
                if total < ihl {
                    return Err(BadHeader);
                }
                if total > buf.len() {
                    return Err(Truncated);
                }
                if *buf.get(9).ok_or(Truncated)? != PROTO_TCP {
                    return Err(NotTcp);
                }
                let frag = be16(buf, 6).ok_or(Truncated)?;
                if frag & 0x3fff != 0 {
                    return Err(Fragment);
                }
                p.df = frag & 0x4000 != 0;
                p.tos = *buf.get(1).ok_or(Truncated)?;
                p.ip_id = be16(buf, 4).ok_or(Truncated)?;
                p.ttl = *buf.get(8).ok_or(Truncated)?;
                p.src = IpAddr::V4(Ipv4Addr::from(arr::<4>(buf, 12).ok_or(Truncated)?));
                p.dst = IpAddr::V4(Ipv4Addr::from(arr::<4>(buf, 16).ok_or(Truncated)?));
                p.ip_hlen = ihl;
                total
            }
            6 => {
                if buf.len() < 40 {
                    return Err(Truncated);
                }
                let total = 40 + be16(buf, 4).ok_or(Truncated)? as usize;
                if total > buf.len() {
                    return Err(Truncated);
                }
                if *buf.get(6).ok_or(Truncated)? != PROTO_TCP {
                    return Err(NotTcp);
                }
                let w = be32(buf, 0).ok_or(Truncated)?;
                p.v6 = true;
                p.tos = (w >> 20) as u8;
                p.flow = w & 0x000f_ffff;
                p.ttl = *buf.get(7).ok_or(Truncated)?;
                p.src = IpAddr::V6(Ipv6Addr::from(arr::<16>(buf, 8).ok_or(Truncated)?));
                p.dst = IpAddr::V6(Ipv6Addr::from(arr::<16>(buf, 24).ok_or(Truncated)?));
                p.ip_hlen = 40;
                total
            }
            _ => return Err(BadVersion),
        };
        let t = p.ip_hlen;
        if t + TCP_MIN > total {
            return Err(Truncated);
        }
        let doff = ((*buf.get(t + 12).ok_or(Truncated)? >> 4) as usize) * 4;
        if doff < TCP_MIN || t + doff > total {
            return Err(BadHeader);
        }
        p.tcp_hlen = doff;
        p.payload_off = t + doff;
        p.payload_len = total - p.payload_off;
        p.sport = be16(buf, t).ok_or(Truncated)?;
        p.dport = be16(buf, t + 2).ok_or(Truncated)?;
        p.seq = be32(buf, t + 4).ok_or(Truncated)?;
        p.ack = be32(buf, t + 8).ok_or(Truncated)?;
        p.flags = *buf.get(t + 13).ok_or(Truncated)?;
        p.window = be16(buf, t + 14).ok_or(Truncated)?;
        p.csum = be16(buf, t + 16).ok_or(Truncated)?;
        p.urg = be16(buf, t + 18).ok_or(Truncated)?;
        Ok(p)
    }

    /// The TCP header bytes (including options).  Empty if `buf` is not the parsed buffer.
    pub fn tcp_header<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.ip_hlen..self.payload_off).unwrap_or(&[])
    }

    /// The TCP option bytes (possibly empty).
    pub fn options<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.ip_hlen.saturating_add(TCP_MIN)..self.payload_off)
            .unwrap_or(&[])
    }

    /// The TCP payload (IP length decides its end).
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.payload_off..self.payload_off.saturating_add(self.payload_len))
            .unwrap_or(&[])
    }

    /// Partial ones' complement sum of the payload, derived from the stored
    /// TCP checksum without reading the payload (see the module docs).
    /// Compare with [`checksum::sums_equal`].
    pub fn payload_sum(&self, buf: &[u8]) -> u32 {
        let tcp_len = self.tcp_hlen.saturating_add(self.payload_len) as u32;
        let ph = checksum::pseudo_header(self.src, self.dst, PROTO_TCP, tcp_len);
        let hdr = checksum::sum(self.tcp_header(buf), ph);
        !checksum::fold(hdr) as u32
    }
}

/// Fields of a packet to write with [`write_tcp`] (urgent pointer is always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSpec {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 only.
    pub ip_id: u16,
    /// IPv4 only.
    pub df: bool,
    /// IPv6 only (low 20 bits).
    pub flow: u32,
}

/// Length of the IP + TCP headers [`write_tcp`] would produce; `None` if the
/// addresses are of mixed families or `options_len > 40`.
pub fn headers_len(spec: &TcpSpec, options_len: usize) -> Option<usize> {
    if options_len > 40 {
        return None;
    }
    let ip = match (spec.src, spec.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => 20,
        (IpAddr::V6(_), IpAddr::V6(_)) => 40,
        _ => return None,
    };
    Some(ip + TCP_MIN + options_len.div_ceil(4) * 4)
}

/// Writes IP header (IPv4: 20 bytes with computed header checksum; IPv6: 40
/// bytes) + TCP header + `options` (zero/EOL-padded to a multiple of 4) +
/// `payload` into `buf`.  The TCP checksum uses `payload_sum` if given (the
/// payload is then copied but not summed), else sums the payload.
///
/// Returns the total length, or `None` if `buf` is too small, `options` is
/// longer than 40 bytes, the addresses are of mixed families, or the packet
/// would exceed the IP length field.
pub fn write_tcp(
    buf: &mut [u8],
    spec: &TcpSpec,
    options: &[u8],
    payload: &[u8],
    payload_sum: Option<u32>,
) -> Option<usize> {
    let h = headers_len(spec, options.len())?;
    let total = h.checked_add(payload.len())?;
    buf.get_mut(h..total)?.copy_from_slice(payload);
    let ps = match payload_sum {
        Some(s) => s,
        None => checksum::sum(payload, 0),
    };
    write_tcp_headers(buf, spec, options, payload.len(), ps)
}

/// Like [`write_tcp`] but the payload (`payload_len` bytes whose partial sum
/// is `payload_sum`) is already in place at `buf[headers_len(..)..]`; only the
/// headers are written.  Lets the caller move the payload with `copy_within`.
pub fn write_tcp_headers(
    buf: &mut [u8],
    spec: &TcpSpec,
    options: &[u8],
    payload_len: usize,
    payload_sum: u32,
) -> Option<usize> {
    let h = headers_len(spec, options.len())?;
    let total = h.checked_add(payload_len)?;
    if total > buf.len() {
        return None;
    }
    let v6 = spec.src.is_ipv6();
    let ip_hlen = if v6 { 40 } else { 20 };
    let tcp_hlen = h - ip_hlen;
    let tcp_len = total - ip_hlen;
    let ip = buf.get_mut(..ip_hlen)?;
    match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let tl = u16::try_from(total).ok()?;
            ip[0] = 0x45;
            ip[1] = spec.tos;
            ip[2..4].copy_from_slice(&tl.to_be_bytes());
            ip[4..6].copy_from_slice(&spec.ip_id.to_be_bytes());
            ip[6..8].copy_from_slice(&(if spec.df { 0x4000u16 } else { 0 }).to_be_bytes());
            ip[8] = spec.ttl;
            ip[9] = PROTO_TCP;
            ip[10] = 0;
            ip[11] = 0;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = !checksum::fold(checksum::sum(ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pl = u16::try_from(tcp_len).ok()?;
            let w = (6u32 << 28) | ((spec.tos as u32) << 20) | (spec.flow & 0x000f_ffff);
            ip[0..4].copy_from_slice(&w.to_be_bytes());
            ip[4..6].copy_from_slice(&pl.to_be_bytes());
            ip[6] = PROTO_TCP;
            ip[7] = spec.ttl;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => return None,
    }
    let tcp = buf.get_mut(ip_hlen..h)?;
    tcp[0..2].copy_from_slice(&spec.sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&spec.dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&spec.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&spec.ack.to_be_bytes());
    tcp[12] = ((tcp_hlen / 4) as u8) << 4;
    tcp[13] = spec.flags;
    tcp[14..16].copy_from_slice(&spec.window.to_be_bytes());
    tcp[16..20].fill(0);
    let opt = tcp.get_mut(TCP_MIN..)?;
    opt.fill(0);
    opt.get_mut(..options.len())?.copy_from_slice(options);
    let ph = checksum::pseudo_header(spec.src, spec.dst, PROTO_TCP, tcp_len as u32);
    let s = checksum::add(checksum::sum(tcp, ph), payload_sum);
    let c = !checksum::fold(s);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
