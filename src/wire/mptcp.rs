//! MPTCP options (RFC 8684 §3, TCP option kind 30), parse and emit.
//!
//! Every option starts `kind=30, length, subtype<<4 | low nibble`.  Parsing
//! requires the length byte to equal the slice length and accepts only the
//! lengths RFC 8684 defines for the subtype (as Linux does, see
//! net/mptcp/options.c); anything else is [`Malformed`].  Reserved bits are
//! ignored on parse and written as zero on emit, so a round trip is byte-exact
//! for every well-formed option with zero reserved bits.
//!
//! Subtypes and lengths:
//! * 0 MP_CAPABLE §3.1: 4 (SYN), 12 (SYN/ACK: sender key), 20 (ACK: both
//!   keys), 22 (first data: + data-level length), 24 (+ DSS checksum).
//! * 1 MP_JOIN §3.2: 12 (SYN: token, nonce), 16 (SYN/ACK: 64-bit truncated
//!   HMAC, nonce), 24 (ACK: 160-bit HMAC).
//! * 2 DSS §3.3: 4 + DATA_ACK (0/4/8) + mapping (DSN 4/8 + SSN 4 + len 2) +
//!   checksum 2 when negotiated; checksum presence follows from the length.
//! * 3 ADD_ADDR §3.4.1: id + IPv4/IPv6 + optional port + 8-byte HMAC unless
//!   echo (E bit): 16/18/28/30, echo 8/10/20/22.  Family follows from length.
//! * 4 REMOVE_ADDR §3.4.2: 3 + n ids (n >= 1).
//! * 5 MP_PRIO §3.3.8: 3 (RFC 8684 dropped the RFC 6824 address id; Linux
//!   accepts only 3).
//! * 6 MP_FAIL §3.7: 12.  7 MP_FASTCLOSE §3.5: 12.  8 MP_TCPRST §3.6: 4.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const SUB_MP_CAPABLE: u8 = 0;
pub const SUB_MP_JOIN: u8 = 1;
pub const SUB_DSS: u8 = 2;
pub const SUB_ADD_ADDR: u8 = 3;
pub const SUB_REMOVE_ADDR: u8 = 4;
pub const SUB_MP_PRIO: u8 = 5;
pub const SUB_MP_FAIL: u8 = 6;
pub const SUB_MP_FASTCLOSE: u8 = 7;
pub const SUB_MP_TCPRST: u8 = 8;

/// MP_CAPABLE flag A: checksum required.
pub const MPC_A: u8 = 0x80;
/// MP_CAPABLE flag B: extensibility.
pub const MPC_B: u8 = 0x40;
/// MP_CAPABLE flag C: do not join to the initial address.
pub const MPC_C: u8 = 0x20;
/// MP_CAPABLE flag H: HMAC-SHA256.
pub const MPC_H: u8 = 0x01;

/// DSS flags (byte 3).
pub const DSS_F: u8 = 0x10;
pub const DSS_M_64: u8 = 0x08;
pub const DSS_M: u8 = 0x04;
pub const DSS_A_64: u8 = 0x02;
pub const DSS_A: u8 = 0x01;

/// MP_CAPABLE (§3.1).  The form emitted follows from which fields are set:
/// `data_len` → 22 (+2 with `checksum`), else `receiver_key` → 20, else
/// `sender_key` → 12, else 4.  Missing keys in a longer form are written as 0;
/// `checksum` without `data_len` is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpCapable {
    pub version: u8,
    pub flags: u8,
    pub sender_key: Option<u64>,
    pub receiver_key: Option<u64>,
    pub data_len: Option<u16>,
    pub checksum: Option<u16>,
}

/// MP_JOIN (§3.2); the variant is chosen by the option length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpJoin {
    Syn {
        backup: bool,
        addr_id: u8,
        token: u32,
        nonce: u32,
    },
    /// `hmac`: the leftmost 64 bits of the HMAC.
    SynAck {
        backup: bool,
        addr_id: u8,
        hmac: u64,
        nonce: u32,
    },
    /// `hmac`: the leftmost 160 bits of the HMAC.
    Ack { hmac: [u8; 20] },
}

/// DSS (§3.3).  `ack64`/`dsn64` pick the 8-octet encodings; when a 4-octet
/// form is used the value holds (and emit writes) the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dss {
    pub data_fin: bool,
    pub data_ack: Option<u64>,
    pub ack64: bool,
    pub mapping: Option<Mapping>,
}

/// A DSS mapping (§3.3.1).  `ssn` is relative to the subflow ISN; `len == 0`
/// is the infinite mapping (§3.3.1, fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub dsn: u64,
    pub dsn64: bool,
    pub ssn: u32,
    pub len: u16,
    pub checksum: Option<u16>,
}

/// ADD_ADDR (§3.4.1).  `hmac` is `Some` iff `!echo` on parse; emit writes
/// the HMAC (0 if `None`) iff `!echo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddAddr {
    pub echo: bool,
    pub addr_id: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub hmac: Option<u64>,
}

/// Any MPTCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MptcpOption {
    MpCapable(MpCapable),
    MpJoin(MpJoin),
    Dss(Dss),
    AddAddr(AddAddr),
    /// Parse keeps the first 8 ids of a longer list; emit writes `n` (<= 8).
    RemoveAddr {
        ids: [u8; 8],
        n: u8,
    },
    MpPrio {
        backup: bool,
    },
    MpFail {
        dsn: u64,
    },
    /// `key`: the receiver's key (§3.5).
    MpFastclose {
        key: u64,
    },
    /// `transient`: the T flag; other flags (U, V, W) are dropped.
    MpTcpRst {
        reason: u8,
        transient: bool,
    },
}

/// The option is not a valid RFC 8684 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Subtype (high nibble of the third byte) of a raw MPTCP option.
pub fn subtype(opt: &[u8]) -> Option<u8> {
    opt.get(2).map(|b| b >> 4)
}

/// Big-endian reader over a fixed slice; all reads are checked.
struct Rd<'a>(&'a [u8], usize);

impl Rd<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let s = self.0.get(self.1..self.1 + N).ok_or(Malformed)?;
        self.1 += N;
        s.try_into().map_err(|_| Malformed)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

/// Writer over the first `len` bytes of the output buffer.
struct Wr<'a>(&'a mut [u8], usize);

impl Wr<'_> {
    fn put(&mut self, b: &[u8]) {
        // Callers size the buffer from `len()` first; a mismatch just truncates.
        if let Some(d) = self.0.get_mut(self.1..self.1 + b.len()) {
            d.copy_from_slice(b);
        }
        self.1 += b.len();
    }
}

fn parse_addr_len(body: usize) -> Option<(bool, bool)> {
    // (v6, port) from the length of address + optional port.
    match body {
        4 => Some((false, false)),
        6 => Some((false, true)),
        16 => Some((true, false)),
        18 => Some((true, true)),
        _ => None,
    }
}

impl MptcpOption {
    /// Parses one whole MPTCP option (`opt[0] == 30`, `opt[1] == opt.len()`).
    pub fn parse(opt: &[u8]) -> Result<MptcpOption, Malformed> {
        let (&kind, &len, &b2) = match opt {
            [k, l, b, ..] => (k, l, b),
            _ => return Err(Malformed),
        };
        if kind != crate::wire::tcpopt::KIND_MPTCP || len as usize != opt.len() {
            return Err(Malformed);
        }
        let n = opt.len();
        let lo = b2 & 0x0f;
        let mut r = Rd(opt, 3);
        Ok(match b2 >> 4 {
            SUB_MP_CAPABLE => {
                if !matches!(n, 4 | 12 | 20 | 22 | 24) {
                    return Err(Malformed);
                }
                let flags = r.u8()?;
                let sender_key = if n >= 12 { Some(r.u64()?) } else { None };
                let receiver_key = if n >= 20 { Some(r.u64()?) } else { None };
                let data_len = if n >= 22 { Some(r.u16()?) } else { None };
                let checksum = if n >= 24 { Some(r.u16()?) } else { None };
                MptcpOption::MpCapable(MpCapable {
                    version: lo,
                    flags,
                    sender_key,
                    receiver_key,
                    data_len,
                    checksum,
                })
            }
            SUB_MP_JOIN => {
                let backup = lo & 0x01 != 0;
                MptcpOption::MpJoin(match n {
                    12 => MpJoin::Syn {
                        backup,
                        addr_id: r.u8()?,
                        token: r.u32()?,
                        nonce: r.u32()?,
                    },
                    16 => MpJoin::SynAck {
                        backup,
                        addr_id: r.u8()?,
                        hmac: r.u64()?,
                        nonce: r.u32()?,
                    },
                    24 => {
                        r.u8()?;
                        MpJoin::Ack { hmac: r.take()? }
                    }
                    _ => return Err(Malformed),
                })
            }
            SUB_DSS => {
                let flags = r.u8()?;
                let has_ack = flags & DSS_A != 0;
                let has_map = flags & DSS_M != 0;
                // `a` is meaningless without `A` (§3.3); keep it only with a DATA_ACK.
                let ack64 = has_ack && flags & DSS_A_64 != 0;
                let dsn64 = flags & DSS_M_64 != 0;
                let ack_len = match (has_ack, ack64) {
                    (false, _) => 0,
                    (true, false) => 4,
                    (true, true) => 8,
                };
                let map_len = match (has_map, dsn64) {
                    (false, _) => 0,
                    (true, false) => 10,
                    (true, true) => 14,
                };
                let expected = 4 + ack_len + map_len;
                let csum = if n == expected {
                    false
                } else if has_map && n == expected + 2 {
                    true
                } else {
                    return Err(Malformed);
                };
                let data_ack = match ack_len {
                    0 => None,
                    4 => Some(r.u32()? as u64),
                    _ => Some(r.u64()?),
                };
                let mapping = if has_map {
                    Some(Mapping {
                        dsn: if dsn64 { r.u64()? } else { r.u32()? as u64 },
                        dsn64,
                        ssn: r.u32()?,
                        len: r.u16()?,
                        checksum: if csum { Some(r.u16()?) } else { None },
                    })
                } else {
                    None
                };
                MptcpOption::Dss(Dss {
                    data_fin: flags & DSS_F != 0,
                    data_ack,
                    ack64,
                    mapping,
                })
            }
            SUB_ADD_ADDR => {
                let echo = lo & 0x01 != 0;
                let body = n.checked_sub(if echo { 4 } else { 12 }).ok_or(Malformed)?;
                let (v6, has_port) = parse_addr_len(body).ok_or(Malformed)?;
                let addr_id = r.u8()?;
                let addr = if v6 {
                    IpAddr::V6(Ipv6Addr::from(r.take::<16>()?))
                } else {
                    IpAddr::V4(Ipv4Addr::from(r.take::<4>()?))
                };
                let port = if has_port { Some(r.u16()?) } else { None };
                let hmac = if echo { None } else { Some(r.u64()?) };
                MptcpOption::AddAddr(AddAddr {
                    echo,
                    addr_id,
                    addr,
                    port,
                    hmac,
                })
            }
            SUB_REMOVE_ADDR => {
                let list = opt.get(3..).ok_or(Malformed)?;
                if list.is_empty() {
                    return Err(Malformed);
                }
                let mut ids = [0u8; 8];
                let k = list.len().min(8);
                ids[..k].copy_from_slice(&list[..k]);
                MptcpOption::RemoveAddr { ids, n: k as u8 }
            }
            SUB_MP_PRIO if n == 3 => MptcpOption::MpPrio {
                backup: lo & 0x01 != 0,
            },
            SUB_MP_FAIL if n == 12 => {
                r.u8()?;
                MptcpOption::MpFail { dsn: r.u64()? }
            }
            SUB_MP_FASTCLOSE if n == 12 => {
                r.u8()?;
                MptcpOption::MpFastclose { key: r.u64()? }
            }
            SUB_MP_TCPRST if n == 4 => MptcpOption::MpTcpRst {
                reason: r.u8()?,
                transient: lo & 0x01 != 0,
            },
            _ => return Err(Malformed),
        })
    }

    /// Number of bytes [`emit`](Self::emit) writes.
    pub fn len(&self) -> usize {
        match self {
            MptcpOption::MpCapable(c) => match (c.data_len, c.checksum) {
                (Some(_), Some(_)) => 24,
                (Some(_), None) => 22,
                _ if c.receiver_key.is_some() => 20,
                _ if c.sender_key.is_some() => 12,
                _ => 4,
            },
            MptcpOption::MpJoin(MpJoin::Syn { .. }) => 12,
            MptcpOption::MpJoin(MpJoin::SynAck { .. }) => 16,
            MptcpOption::MpJoin(MpJoin::Ack { .. }) => 24,
            MptcpOption::Dss(d) => {
                let ack = match (d.data_ack, d.ack64) {
                    (None, _) => 0,
                    (Some(_), false) => 4,
                    (Some(_), true) => 8,
                };
                let map = match d.mapping {
                    None => 0,
                    Some(m) => {
                        (if m.dsn64 { 14 } else { 10 }) + if m.checksum.is_some() { 2 } else { 0 }
                    }
                };
                4 + ack + map
            }
            MptcpOption::AddAddr(a) => {
                let addr = if a.addr.is_ipv6() { 16 } else { 4 };
                let port = if a.port.is_some() { 2 } else { 0 };
                let hmac = if a.echo { 0 } else { 8 };
                4 + addr + port + hmac
            }
            MptcpOption::RemoveAddr { n, .. } => 3 + (*n).min(8) as usize,
            MptcpOption::MpPrio { .. } => 3,
            MptcpOption::MpFail { .. } | MptcpOption::MpFastclose { .. } => 12,
            MptcpOption::MpTcpRst { .. } => 4,
        }
    }

    /// Never zero-length; provided for API completeness.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the option into `buf`; `None` (nothing written) if too small.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let n = self.len();
        let out = buf.get_mut(..n)?;
        let mut w = Wr(out, 0);
        let head = |sub: u8, lo: u8| [crate::wire::tcpopt::KIND_MPTCP, n as u8, sub << 4 | lo];
        match *self {
            MptcpOption::MpCapable(c) => {
                w.put(&head(SUB_MP_CAPABLE, c.version & 0x0f));
                w.put(&[c.flags]);
                if n >= 12 {
                    w.put(&c.sender_key.unwrap_or(0).to_be_bytes());
                }
                if n >= 20 {
                    w.put(&c.receiver_key.unwrap_or(0).to_be_bytes());
                }
                if n >= 22 {
                    w.put(&c.data_len.unwrap_or(0).to_be_bytes());
                }
                if n >= 24 {
                    w.put(&c.checksum.unwrap_or(0).to_be_bytes());
                }
            }
            MptcpOption::MpJoin(j) => match j {
                MpJoin::Syn {
                    backup,
                    addr_id,
                    token,
                    nonce,
                } => {
                    w.put(&head(SUB_MP_JOIN, backup as u8));
                    w.put(&[addr_id]);
                    w.put(&token.to_be_bytes());
                    w.put(&nonce.to_be_bytes());
                }
                MpJoin::SynAck {
                    backup,
                    addr_id,
                    hmac,
                    nonce,
                } => {
                    w.put(&head(SUB_MP_JOIN, backup as u8));
                    w.put(&[addr_id]);
                    w.put(&hmac.to_be_bytes());
                    w.put(&nonce.to_be_bytes());
                }
                MpJoin::Ack { hmac } => {
                    w.put(&head(SUB_MP_JOIN, 0));
                    w.put(&[0]);
                    w.put(&hmac);
                }
            },
            MptcpOption::Dss(d) => {
                let mut flags = 0;
                if d.data_fin {
                    flags |= DSS_F;
                }
                if d.data_ack.is_some() {
                    flags |= DSS_A | if d.ack64 { DSS_A_64 } else { 0 };
                }
                if let Some(m) = d.mapping {
                    flags |= DSS_M | if m.dsn64 { DSS_M_64 } else { 0 };
                }
                w.put(&head(SUB_DSS, 0));
                w.put(&[flags]);
                if let Some(a) = d.data_ack {
                    if d.ack64 {
                        w.put(&a.to_be_bytes());
                    } else {
                        w.put(&(a as u32).to_be_bytes());
                    }
                }
                if let Some(m) = d.mapping {
                    if m.dsn64 {
                        w.put(&m.dsn.to_be_bytes());
                    } else {
                        w.put(&(m.dsn as u32).to_be_bytes());
                    }
                    w.put(&m.ssn.to_be_bytes());
                    w.put(&m.len.to_be_bytes());
                    if let Some(c) = m.checksum {
                        w.put(&c.to_be_bytes());
                    }
                }
            }
            MptcpOption::AddAddr(a) => {
                w.put(&head(SUB_ADD_ADDR, a.echo as u8));
                w.put(&[a.addr_id]);
                match a.addr {
                    IpAddr::V4(v4) => w.put(&v4.octets()),
                    IpAddr::V6(v6) => w.put(&v6.octets()),
                }
                if let Some(p) = a.port {
                    w.put(&p.to_be_bytes());
                }
                if !a.echo {
                    w.put(&a.hmac.unwrap_or(0).to_be_bytes());
                }
            }
            MptcpOption::RemoveAddr { ids, n: k } => {
                w.put(&head(SUB_REMOVE_ADDR, 0));
                w.put(ids.get(..(k as usize).min(8)).unwrap_or(&[]));
            }
            MptcpOption::MpPrio { backup } => w.put(&head(SUB_MP_PRIO, backup as u8)),
            MptcpOption::MpFail { dsn } => {
                w.put(&head(SUB_MP_FAIL, 0));
                w.put(&[0]);
                w.put(&dsn.to_be_bytes());
            }
            MptcpOption::MpFastclose { key } => {
                w.put(&head(SUB_MP_FASTCLOSE, 0));
                w.put(&[0]);
                w.put(&key.to_be_bytes());
            }
            MptcpOption::MpTcpRst { reason, transient } => {
                w.put(&head(SUB_MP_TCPRST, transient as u8));
                w.put(&[reason]);
            }
        }
        debug_assert_eq!(w.1, n);
        Some(n)
    }
}

#[cfg(test)]
#[path = "mptcp_tests.rs"]
mod tests;
