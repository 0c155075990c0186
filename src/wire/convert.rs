//! RFC 8803 (0-RTT TCP Convert Protocol) messages: parse and emit.
//!
//! A Convert message is what a client puts at the start of its byte stream (ideally in the SYN,
//! TFO-style) towards a Transport Converter, and what the converter puts at the start of its
//! reply stream. Layout (RFC 8803 §4.1, "Convert Fixed Header" figure):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Version    |  Total Length |         Magic Number          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Version 1; Total Length counts 32-bit words *including* the fixed header (so at most
//! 255 × 4 = 1020 bytes); Magic Number 0x2263. Then TLVs (RFC 8803 §4.2, "Convert TLV"
//! figure): Type (8 bits), Length (8 bits, in 32-bit words including Type and Length), Value,
//! zero-padded to a 32-bit boundary.
//!
//! TLVs handled here, each with the figure it follows:
//! * Info (1) — Type, Length = 1, Unassigned (16 bits);
//! * Connect (10) — Type, Length, Remote Peer Port (16), Remote Peer IP Address (128; IPv4 as
//!   the IPv4-mapped `::ffff:a.b.c.d`), TCP Options (variable, padded);
//! * Extended TCP Header (20) — Type, Length, Unassigned (16), Returned Extended TCP header;
//! * Supported TCP Extensions (21) — Type, Length, Unassigned (16), one byte per TCP option
//!   Kind, padded with zeros;
//! * Cookie (22) — Type, Length, Zero (16), Opaque Data;
//! * Error (30) — Type, Length, Error Code (8), Value (variable, padded).
//!
//! The parser ([`parse`]) is zero-copy, bounds-checked everywhere and never panics; it
//! validates the whole message up front so that iterating over [`Message::tlvs`] cannot fail.
//! The emitter ([`Builder`]) writes into a caller-provided buffer (no heap) with exact lengths.
//!
//! **Cookies (mpconv's choice).** RFC 8803 leaves the content of the Cookie TLV to the
//! converter. mpconv's clients and concentrator share a secret; the Cookie TLV's Opaque Data is
//! the first 16 bytes of `HMAC-SHA256(secret, connect_tlv)`, where `connect_tlv` is the
//! complete Connect TLV exactly as it appears on the wire (Type, Length, port, address, TCP
//! options and padding). The Cookie TLV is therefore 20 bytes (Length 5). It binds the cookie
//! to one destination; it is not a replay protection (an on-path observer can reuse it for the
//! same destination), which is why the concentrator also filters clients by source prefix.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The only Convert version (RFC 8803 §4.1).
pub const VERSION: u8 = 1;
/// Magic Number of the fixed header (RFC 8803 §4.1).
pub const MAGIC: u16 = 0x2263;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 4;
/// Largest message: Total Length is 8 bits of 32-bit words.
pub const MAX_LEN: usize = 255 * 4;
/// Size of an mpconv cookie (the truncated HMAC).
pub const COOKIE_LEN: usize = 16;
/// Port used by Tessares' client library and the Wireshark dissector (RFC 8803 registers the
/// service name "convert" but, as far as mpconv knows, no fixed port).
pub const DEFAULT_PORT: u16 = 5124;

/// TLV types (RFC 8803 §7, "Convert TLVs" registry).
pub mod tlv {
    pub const INFO: u8 = 1;
    pub const CONNECT: u8 = 10;
    pub const EXT_TCP_HEADER: u8 = 20;
    pub const SUPPORTED_EXT: u8 = 21;
    pub const COOKIE: u8 = 22;
    pub const ERROR: u8 = 30;
}

/// Error codes of the Error TLV (RFC 8803 §4.2.7 and the "Convert Errors" registry).
pub mod code {
    /// Message validation and processing errors (0–31).
    pub const UNSUPPORTED_VERSION: u8 = 0;
    pub const MALFORMED_MESSAGE: u8 = 1;
    pub const UNSUPPORTED_MESSAGE: u8 = 2;
    pub const MISSING_COOKIE: u8 = 3;
    /// Client-side errors (32–63).
    pub const NOT_AUTHORIZED: u8 = 32;
    pub const UNSUPPORTED_TCP_OPTION: u8 = 33;
    /// Transport Converter-side errors (64–95).
    pub const RESOURCE_EXCEEDED: u8 = 64;
    pub const NETWORK_FAILURE: u8 = 65;
    /// Errors caused by the destination server (96–127).
    pub const CONNECTION_RESET: u8 = 96;
    pub const DESTINATION_UNREACHABLE: u8 = 97;
}

/// What an Error TLV's code means (RFC 8803's table; unassigned codes by their range).
pub fn error_meaning(code: u8) -> &'static str {
    match code {
        code::UNSUPPORTED_VERSION => "Unsupported Version",
        code::MALFORMED_MESSAGE => "Malformed Message",
        code::UNSUPPORTED_MESSAGE => "Unsupported Message",
        code::MISSING_COOKIE => "Missing Cookie",
        code::NOT_AUTHORIZED => "Not Authorized",
        code::UNSUPPORTED_TCP_OPTION => "Unsupported TCP Option",
        code::RESOURCE_EXCEEDED => "Resource Exceeded",
        code::NETWORK_FAILURE => "Network Failure",
        code::CONNECTION_RESET => "Connection Reset",
        code::DESTINATION_UNREACHABLE => "Destination Unreachable",
        4..=31 => "unassigned message validation error",
        34..=63 => "unassigned client-side error",
        66..=95 => "unassigned converter-side error",
        98..=127 => "unassigned server-side error",
        128..=191 => "unassigned (specification required range)",
        _ => "private use",
    }
}

/// Why bytes are not a (complete) Convert message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed: at least this many in total.
    Incomplete { need: usize },
    /// Version other than 1.
    UnsupportedVersion(u8),
    /// Magic Number other than 0x2263.
    BadMagic(u16),
    /// Total Length 0 (shorter than the fixed header itself).
    BadTotalLength(u8),
    /// A TLV with Length 0, or one that runs past Total Length (`offset` of its Type byte).
    BadTlvLength { offset: usize },
    /// A TLV shorter than its type's fixed part.
    TlvTooShort { offset: usize, kind: u8 },
    /// The Cookie TLV's Zero field is not zero.
    NonzeroField { offset: usize },
}

impl ParseError {
    /// The Error TLV code a converter answers this with (None for `Incomplete`).
    pub fn error_code(&self) -> Option<u8> {
        match self {
            ParseError::Incomplete { .. } => None,
            ParseError::UnsupportedVersion(_) => Some(code::UNSUPPORTED_VERSION),
            _ => Some(code::MALFORMED_MESSAGE),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Incomplete { need } => write!(f, "incomplete: {need} bytes needed"),
            ParseError::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            ParseError::BadMagic(m) => write!(f, "bad magic number {m:#06x}"),
            ParseError::BadTotalLength(l) => write!(f, "bad total length {l}"),
            ParseError::BadTlvLength { offset } => write!(f, "bad TLV length at offset {offset}"),
            ParseError::TlvTooShort { offset, kind } => {
                write!(f, "TLV type {kind} at offset {offset} too short")
            }
            ParseError::NonzeroField { offset } => {
                write!(f, "nonzero reserved field in TLV at offset {offset}")
            }
        }
    }
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    /// Total Length in bytes (words × 4).
    pub total_len: usize,
    pub magic: u16,
}

/// Parse and check the fixed header (`buf` may hold only its first 4 bytes).
pub fn parse_header(buf: &[u8]) -> Result<Header, ParseError> {
    let (Some(&version), Some(&words), Some(&m0), Some(&m1)) =
        (buf.first(), buf.get(1), buf.get(2), buf.get(3))
    else {
        return Err(ParseError::Incomplete { need: HEADER_LEN });
    };
    if version != VERSION {
        return Err(ParseError::UnsupportedVersion(version));
    }
    let magic = u16::from_be_bytes([m0, m1]);
    if magic != MAGIC {
        return Err(ParseError::BadMagic(magic));
    }
    if words == 0 {
        return Err(ParseError::BadTotalLength(words));
    }
    Ok(Header {
        version,
        total_len: usize::from(words) * 4,
        magic,
    })
}

/// Minimum size in bytes of each known TLV type (its fixed part, rounded up to a word).
fn min_tlv_len(kind: u8) -> usize {
    match kind {
        tlv::CONNECT => 20,
        _ => 4,
    }
}

/// A validated Convert message borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
}

/// Parse a complete message from the start of `buf` (bytes after Total Length are left to
/// the caller: they are application data).
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    let h = parse_header(buf)?;
    let Some(bytes) = buf.get(..h.total_len) else {
        return Err(ParseError::Incomplete { need: h.total_len });
    };
    let mut off = HEADER_LEN;
    while off < bytes.len() {
        let (Some(&kind), Some(&words)) = (bytes.get(off), bytes.get(off + 1)) else {
            return Err(ParseError::BadTlvLength { offset: off });
        };
        let len = usize::from(words) * 4;
        if len == 0 || off + len > bytes.len() {
            return Err(ParseError::BadTlvLength { offset: off });
        }
        if len < min_tlv_len(kind) {
            return Err(ParseError::TlvTooShort { offset: off, kind });
        }
        if kind == tlv::COOKIE && bytes.get(off + 2..off + 4) != Some(&[0, 0][..]) {
            return Err(ParseError::NonzeroField { offset: off });
        }
        off += len;
    }
    Ok(Message { bytes })
}

impl<'a> Message<'a> {
    /// The whole message (header and TLVs), `Total Length` bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a message holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The TLVs in order.
    pub fn tlvs(&self) -> TlvIter<'a> {
        TlvIter {
            bytes: self.bytes,
            off: HEADER_LEN,
        }
    }

    /// The first TLV of `kind`.
    pub fn find(&self, kind: u8) -> Option<RawTlv<'a>> {
        self.tlvs().find(|t| t.kind == kind)
    }

    /// The first Connect TLV, decoded.
    pub fn connect(&self) -> Option<Connect<'a>> {
        self.find(tlv::CONNECT).and_then(|t| t.connect())
    }

    /// The first Error TLV: (code, value).
    pub fn error(&self) -> Option<(u8, &'a [u8])> {
        self.find(tlv::ERROR).and_then(|t| t.error())
    }
}

/// One TLV as it is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawTlv<'a> {
    pub kind: u8,
    /// Offset of its Type byte in the message.
    pub offset: usize,
    /// The whole TLV: Type, Length, Value and padding.
    pub bytes: &'a [u8],
}

impl<'a> RawTlv<'a> {
    /// The bytes after Type and Length.
    pub fn value(&self) -> &'a [u8] {
        self.bytes.get(2..).unwrap_or(&[])
    }

    /// Decoded Connect TLV (None if this is not one).
    pub fn connect(&self) -> Option<Connect<'a>> {
        if self.kind != tlv::CONNECT {
            return None;
        }
        let port = u16::from_be_bytes([*self.bytes.get(2)?, *self.bytes.get(3)?]);
        let a: [u8; 16] = self.bytes.get(4..20)?.try_into().ok()?;
        Some(Connect {
            port,
            addr: Ipv6Addr::from(a),
            options: self.bytes.get(20..).unwrap_or(&[]),
        })
    }

    /// (Error Code, Value) of an Error TLV.
    pub fn error(&self) -> Option<(u8, &'a [u8])> {
        if self.kind != tlv::ERROR {
            return None;
        }
        Some((*self.bytes.get(2)?, self.bytes.get(3..).unwrap_or(&[])))
    }

    /// Opaque Data of a Cookie TLV, or the payload after the 16-bit Unassigned field of the
    /// Info, Extended TCP Header and Supported TCP Extensions TLVs.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(4..).unwrap_or(&[])
    }
}

/// The decoded Connect TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    pub port: u16,
    /// As on the wire (IPv4 as `::ffff:a.b.c.d`).
    pub addr: Ipv6Addr,
    /// TCP options (with their zero padding).
    pub options: &'a [u8],
}

impl Connect<'_> {
    /// The destination, IPv4-mapped addresses turned into IPv4.
    pub fn ip(&self) -> IpAddr {
        match self.addr.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(self.addr),
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

/// Iterator over the TLVs of a validated [`Message`].
#[derive(Clone, Debug)]
pub struct TlvIter<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = RawTlv<'a>;

    fn next(&mut self) -> Option<RawTlv<'a>> {
        let kind = *self.bytes.get(self.off)?;
        let len = usize::from(*self.bytes.get(self.off + 1)?) * 4;
        // `parse` guarantees len > 0 and in bounds; stay safe regardless.
        let bytes = self
            .bytes
            .get(self.off..self.off + len)
            .filter(|_| len > 0)?;
        let t = RawTlv {
            kind,
            offset: self.off,
            bytes,
        };
        self.off += len;
        Some(t)
    }
}

/// Why a message could not be emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The output buffer is too small.
    BufferTooSmall,
    /// The message or a TLV would exceed 1020 bytes.
    TooLong,
}

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EmitError::BufferTooSmall => "output buffer too small",
            EmitError::TooLong => "Convert message longer than 1020 bytes",
        })
    }
}

/// Writes a Convert message into a caller's buffer: header first, TLVs appended, Total Length
/// filled in by [`Builder::finish`].
#[derive(Debug)]
pub struct Builder<'b> {
    buf: &'b mut [u8],
    len: usize,
}

fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl<'b> Builder<'b> {
    pub fn new(buf: &'b mut [u8]) -> Result<Builder<'b>, EmitError> {
        let h = buf.get_mut(..HEADER_LEN).ok_or(EmitError::BufferTooSmall)?;
        h.copy_from_slice(&[VERSION, 0, (MAGIC >> 8) as u8, MAGIC as u8]);
        Ok(Builder {
            buf,
            len: HEADER_LEN,
        })
    }

    /// Append a TLV whose value (after Type and Length) is the concatenation of `parts`,
    /// zero-padded to a word.
    fn tlv(&mut self, kind: u8, parts: &[&[u8]]) -> Result<&mut Self, EmitError> {
        let raw = 2 + parts.iter().map(|p| p.len()).sum::<usize>();
        let len = padded(raw);
        if self.len + len > MAX_LEN {
            return Err(EmitError::TooLong);
        }
        let out = self
            .buf
            .get_mut(self.len..self.len + len)
            .ok_or(EmitError::BufferTooSmall)?;
        out.fill(0);
        out[0] = kind;
        out[1] = (len / 4) as u8;
        let mut at = 2;
        for p in parts {
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.len += len;
        Ok(self)
    }

    /// Info TLV (Length 1, Unassigned zero).
    pub fn info(&mut self) -> Result<&mut Self, EmitError> {
        self.tlv(tlv::INFO, &[&[0, 0]])
    }

    /// Connect TLV towards `dst` (IPv4 written as IPv4-mapped), with `options` (raw TCP
    /// options, padded with zeros here).
    pub fn connect(&mut self, dst: SocketAddr, options: &[u8]) -> Result<&mut Self, EmitError> {
        let a = match dst.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        self.tlv(
            tlv::CONNECT,
            &[&dst.port().to_be_bytes(), &a.octets(), options],
        )
    }

    /// Extended TCP Header TLV carrying `header` (a returned TCP header / its options).
    pub fn ext_tcp_header(&mut self, header: &[u8]) -> Result<&mut Self, EmitError> {
        self.tlv(tlv::EXT_TCP_HEADER, &[&[0, 0], header])
    }

    /// Supported TCP Extensions TLV listing option `kinds`.
    pub fn supported_ext(&mut self, kinds: &[u8]) -> Result<&mut Self, EmitError> {
        self.tlv(tlv::SUPPORTED_EXT, &[&[0, 0], kinds])
    }

    /// Cookie TLV with `opaque` data.
    pub fn cookie(&mut self, opaque: &[u8]) -> Result<&mut Self, EmitError> {
        self.tlv(tlv::COOKIE, &[&[0, 0], opaque])
    }

    /// Error TLV. An empty `value` is written as one zero byte (the TLV is one word).
    pub fn error(&mut self, code: u8, value: &[u8]) -> Result<&mut Self, EmitError> {
        self.tlv(tlv::ERROR, &[&[code], value])
    }

    /// The bytes written from `start` on (e.g. the TLV just appended, for [`cookie_for`]).
    pub fn last_tlv(&self, start: usize) -> &[u8] {
        self.buf.get(start..self.len).unwrap_or(&[])
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (the header is always there).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fill in Total Length; returns the message length in bytes.
    pub fn finish(self) -> usize {
        // `tlv` keeps len <= MAX_LEN, so words fits 8 bits.
        self.buf[1] = (self.len / 4) as u8;
        self.len
    }
}

/// A complete error reply: header + one Error TLV.
pub fn emit_error(buf: &mut [u8], code: u8, value: &[u8]) -> Result<usize, EmitError> {
    let mut b = Builder::new(buf)?;
    b.error(code, value)?;
    Ok(b.finish())
}

/// Malformed/Unsupported Message error value per RFC 8803: the received message "shifted by
/// one byte to keep the original alignment" — one zero byte then the message, cut to what fits
/// in a 1020-byte reply.
pub fn emit_error_echo(buf: &mut [u8], code: u8, received: &[u8]) -> Result<usize, EmitError> {
    // Header 4 + TLV header 2 + code 1 + shift 1 = 8 bytes before the echo.
    let room = MAX_LEN - 8;
    let echo = received.get(..room.min(received.len())).unwrap_or(&[]);
    let mut b = Builder::new(buf)?;
    b.tlv(tlv::ERROR, &[&[code, 0], echo])?;
    Ok(b.finish())
}

/// mpconv's cookie for a Connect TLV (see the module documentation).
pub fn cookie_for(secret: &[u8], connect_tlv: &[u8]) -> [u8; COOKIE_LEN] {
    let h = super::crypto::hmac_sha256(secret, connect_tlv);
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(&h[..COOKIE_LEN]);
    c
}

/// Result of checking a message's cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieCheck {
    Valid,
    /// No Cookie TLV (or no Connect TLV to authenticate).
    Missing,
    Invalid,
}

/// Check the first Cookie TLV of `msg` against the first Connect TLV (constant-time compare).
pub fn check_cookie(secret: &[u8], msg: &Message<'_>) -> CookieCheck {
    let (Some(conn), Some(cookie)) = (msg.find(tlv::CONNECT), msg.find(tlv::COOKIE)) else {
        return CookieCheck::Missing;
    };
    let want = cookie_for(secret, conn.bytes);
    let got = cookie.payload();
    if got.len() != COOKIE_LEN {
        return CookieCheck::Invalid;
    }
    let diff = want.iter().zip(got).fold(0u8, |d, (a, b)| d | (a ^ b));
    if diff == 0 {
        CookieCheck::Valid
    } else {
        CookieCheck::Invalid
    }
}

/// A client request: header, Connect TLV to `dst` with `options`, and the mpconv cookie when
/// `secret` is given. Returns the length.
pub fn emit_request(
    buf: &mut [u8],
    dst: SocketAddr,
    options: &[u8],
    secret: Option<&[u8]>,
) -> Result<usize, EmitError> {
    let mut b = Builder::new(buf)?;
    let start = b.len();
    b.connect(dst, options)?;
    if let Some(s) = secret {
        let c = cookie_for(s, b.last_tlv(start));
        b.cookie(&c)?;
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8803 §4.1 fixed-header figure: Version 1, Total Length 1 word, Magic 0x2263 — the
    /// whole success reply of a converter that has nothing else to say.
    const HEADER_ONLY: [u8; 4] = [0x01, 0x01, 0x22, 0x63];

    /// Fixed header + Connect TLV (§4.2.2 figure) to 192.0.2.1:80, no TCP options:
    /// Type 10, Length 5 words, port, then ::ffff:192.0.2.1.
    const CONNECT_V4: [u8; 24] = [
        0x01, 0x06, 0x22, 0x63, // header, 6 words
        0x0a, 0x05, 0x00, 0x50, // Connect, 5 words, port 80
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1,
    ];

    fn connect_v6_mss() -> Vec<u8> {
        // Connect TLV with one MSS option (kind 2, len 4, 1460): 24 bytes = 6 words.
        let mut m = vec![0x01, 0x07, 0x22, 0x63, 0x0a, 0x06, 0x01, 0xbb];
        m.extend_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&[0x02, 0x04, 0x05, 0xb4]);
        m
    }

    #[test]
    fn header_only() {
        let m = parse(&HEADER_ONLY).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m.tlvs().count(), 0);
        let mut buf = [0u8; 8];
        let b = Builder::new(&mut buf).unwrap();
        assert_eq!(b.finish(), 4);
        assert_eq!(buf[..4], HEADER_ONLY);
    }

    #[test]
    fn connect_v4_figure() {
        let m = parse(&CONNECT_V4).unwrap();
        let c = m.connect().unwrap();
        assert_eq!(c.socket_addr(), "192.0.2.1:80".parse().unwrap());
        assert!(c.options.is_empty());
        let mut buf = [0u8; 64];
        let n = emit_request(&mut buf, "192.0.2.1:80".parse().unwrap(), &[], None).unwrap();
        assert_eq!(&buf[..n], &CONNECT_V4);
    }

    #[test]
    fn connect_v6_with_options() {
        let bytes = connect_v6_mss();
        let m = parse(&bytes).unwrap();
        let c = m.connect().unwrap();
        assert_eq!(c.socket_addr(), "[2001:db8::5]:443".parse().unwrap());
        assert_eq!(c.options, &[2, 4, 5, 0xb4]);
        let mut buf = [0u8; 64];
        let n = emit_request(
            &mut buf,
            "[2001:db8::5]:443".parse().unwrap(),
            &[2, 4, 5, 0xb4],
            None,
        )
        .unwrap();
        assert_eq!(&buf[..n], &bytes[..]);
        // Options are zero-padded: 3 bytes of options still take one word.
        let n = emit_request(&mut buf, "[::2]:1".parse().unwrap(), &[1, 1, 1], None).unwrap();
        assert_eq!(n, 4 + 24);
        assert_eq!(buf[5], 6);
        assert_eq!(&buf[24..28], &[1, 1, 1, 0]);
    }

    #[test]
    fn error_tlv_figure() {
        // §4.2.7 Error TLV: Type 30, Length 1, Error Code 96 (Connection Reset), Value 0.
        let bytes = [0x01, 0x02, 0x22, 0x63, 0x1e, 0x01, 0x60, 0x00];
        let m = parse(&bytes).unwrap();
        assert_eq!(m.error(), Some((96, &[0u8][..])));
        let mut buf = [0u8; 16];
        assert_eq!(
            emit_error(&mut buf, code::CONNECTION_RESET, &[]).unwrap(),
            8
        );
        assert_eq!(buf[..8], bytes);
        // Unsupported Version carries the supported version.
        let n = emit_error(&mut buf, code::UNSUPPORTED_VERSION, &[VERSION]).unwrap();
        assert_eq!(&buf[..n], &[1, 2, 0x22, 0x63, 30, 1, 0, 1]);
    }

    #[test]
    fn error_echo_is_shifted_by_one_byte() {
        let mut buf = [0u8; MAX_LEN];
        let n = emit_error_echo(&mut buf, code::MALFORMED_MESSAGE, &CONNECT_V4).unwrap();
        assert_eq!(n, 8 + 24);
        assert_eq!(&buf[4..8], &[30, 7, 1, 0]);
        assert_eq!(&buf[8..n], &CONNECT_V4);
        // A huge echo is cut to fit 1020 bytes.
        let big = [0xaau8; 2000];
        let n = emit_error_echo(&mut buf, code::MALFORMED_MESSAGE, &big).unwrap();
        assert_eq!(n, MAX_LEN);
        assert_eq!(buf[1], 255);
        assert!(parse(&buf[..n]).is_ok());
    }

    #[test]
    fn info_cookie_supported_ext_figures() {
        // Info (§4.2.1): Type 1, Length 1, Unassigned. Supported TCP Extensions (§4.2.4):
        // Type 21, Length 2, Unassigned, kinds 2 3 4 8 30 + 3 zero bytes. Cookie (§4.2.5):
        // Type 22, Length 2, Zero, 4 bytes of opaque data.
        let bytes = [
            0x01, 0x06, 0x22, 0x63, // header
            0x01, 0x01, 0x00, 0x00, // Info
            0x15, 0x03, 0x00, 0x00, 2, 3, 4, 8, 30, 0, 0, 0, // Supported TCP Extensions
            0x16, 0x02, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, // Cookie
        ];
        let mut bytes = bytes.to_vec();
        bytes[1] = (bytes.len() / 4) as u8;
        let m = parse(&bytes).unwrap();
        let kinds: Vec<u8> = m.tlvs().map(|t| t.kind).collect();
        assert_eq!(kinds, [1, 21, 22]);
        assert_eq!(
            m.find(tlv::SUPPORTED_EXT).unwrap().payload(),
            &[2, 3, 4, 8, 30, 0, 0, 0]
        );
        assert_eq!(
            m.find(tlv::COOKIE).unwrap().payload(),
            &[0xde, 0xad, 0xbe, 0xef]
        );
        let mut buf = [0u8; 64];
        let mut b = Builder::new(&mut buf).unwrap();
        b.info().unwrap();
        b.supported_ext(&[2, 3, 4, 8, 30]).unwrap();
        b.cookie(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
        let n = b.finish();
        assert_eq!(&buf[..n], &bytes[..]);
    }

    #[test]
    fn ext_tcp_header_round_trip() {
        let mut buf = [0u8; 64];
        let mut b = Builder::new(&mut buf).unwrap();
        b.ext_tcp_header(&[2, 4, 5, 0xb4, 1, 3, 3, 7]).unwrap();
        let n = b.finish();
        assert_eq!(&buf[4..8], &[20, 3, 0, 0]);
        let m = parse(&buf[..n]).unwrap();
        let t = m.find(tlv::EXT_TCP_HEADER).unwrap();
        assert_eq!(t.payload(), &[2, 4, 5, 0xb4, 1, 3, 3, 7]);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse(&[1, 1, 0x22]),
            Err(ParseError::Incomplete { need: 4 })
        );
        assert_eq!(
            parse(&CONNECT_V4[..20]),
            Err(ParseError::Incomplete { need: 24 })
        );
        assert_eq!(
            parse(&[2, 1, 0x22, 0x63]),
            Err(ParseError::UnsupportedVersion(2))
        );
        assert_eq!(
            parse(&[1, 1, 0x22, 0x64]),
            Err(ParseError::BadMagic(0x2264))
        );
        assert_eq!(
            parse(&[1, 0, 0x22, 0x63]),
            Err(ParseError::BadTotalLength(0))
        );
        // TLV of length 0, TLV past Total Length, Connect shorter than 20 bytes.
        assert_eq!(
            parse(&[1, 2, 0x22, 0x63, 10, 0, 0, 0]),
            Err(ParseError::BadTlvLength { offset: 4 })
        );
        assert_eq!(
            parse(&[1, 2, 0x22, 0x63, 30, 2, 0, 0, 0, 0, 0, 0]),
            Err(ParseError::BadTlvLength { offset: 4 })
        );
        assert_eq!(
            parse(&[1, 2, 0x22, 0x63, 10, 1, 0, 80]),
            Err(ParseError::TlvTooShort {
                offset: 4,
                kind: 10
            })
        );
        assert_eq!(
            parse(&[1, 2, 0x22, 0x63, 22, 1, 0, 1]),
            Err(ParseError::NonzeroField { offset: 4 })
        );
        assert_eq!(
            ParseError::BadMagic(0).error_code(),
            Some(code::MALFORMED_MESSAGE)
        );
        assert_eq!(
            ParseError::UnsupportedVersion(9).error_code(),
            Some(code::UNSUPPORTED_VERSION)
        );
        // Trailing bytes after Total Length are not part of the message.
        let mut with_data = CONNECT_V4.to_vec();
        with_data.extend_from_slice(b"GET / HTTP/1.0");
        assert_eq!(parse(&with_data).unwrap().len(), 24);
    }

    #[test]
    fn emit_limits() {
        let mut small = [0u8; 6];
        assert_eq!(
            Builder::new(&mut small[..3]).unwrap_err(),
            EmitError::BufferTooSmall
        );
        let mut b = Builder::new(&mut small).unwrap();
        assert_eq!(b.info().unwrap_err(), EmitError::BufferTooSmall);
        let mut big = [0u8; 4096];
        let mut b = Builder::new(&mut big).unwrap();
        assert_eq!(b.cookie(&[0; 1100]).unwrap_err(), EmitError::TooLong);
        for _ in 0..254 {
            b.info().unwrap();
        }
        assert_eq!(b.info().unwrap_err(), EmitError::TooLong);
        assert_eq!(b.finish(), MAX_LEN);
        assert_eq!(big[1], 255);
    }

    #[test]
    fn cookies() {
        let secret = b"0123456789abcdef-shared";
        let dst: SocketAddr = "198.51.100.7:443".parse().unwrap();
        let mut buf = [0u8; 128];
        let n = emit_request(&mut buf, dst, &[], Some(secret)).unwrap();
        assert_eq!(n, 4 + 20 + 20);
        let m = parse(&buf[..n]).unwrap();
        assert_eq!(check_cookie(secret, &m), CookieCheck::Valid);
        assert_eq!(check_cookie(b"another secret!!", &m), CookieCheck::Invalid);
        // The cookie is HMAC-SHA256(secret, Connect TLV bytes) truncated to 16 bytes.
        let conn = m.find(tlv::CONNECT).unwrap();
        let h = crate::wire::crypto::hmac_sha256(secret, conn.bytes);
        assert_eq!(m.find(tlv::COOKIE).unwrap().payload(), &h[..16]);
        // Another destination with the same cookie fails.
        let mut other = buf;
        other[7] ^= 1; // port
        let m2 = parse(&other[..n]).unwrap();
        assert_eq!(check_cookie(secret, &m2), CookieCheck::Invalid);
        let m3 = parse(&CONNECT_V4).unwrap();
        assert_eq!(check_cookie(secret, &m3), CookieCheck::Missing);
    }

    #[test]
    fn meanings() {
        assert_eq!(error_meaning(0), "Unsupported Version");
        assert_eq!(error_meaning(1), "Malformed Message");
        assert_eq!(error_meaning(2), "Unsupported Message");
        assert_eq!(error_meaning(3), "Missing Cookie");
        assert_eq!(error_meaning(32), "Not Authorized");
        assert_eq!(error_meaning(33), "Unsupported TCP Option");
        assert_eq!(error_meaning(64), "Resource Exceeded");
        assert_eq!(error_meaning(65), "Network Failure");
        assert_eq!(error_meaning(96), "Connection Reset");
        assert_eq!(error_meaning(97), "Destination Unreachable");
        assert_eq!(error_meaning(5), "unassigned message validation error");
        assert_eq!(error_meaning(200), "private use");
    }

    use crate::wire::fuzz_tests::XorShift;

    #[test]
    fn fuzz_mutated_messages() {
        let mut seeds: Vec<Vec<u8>> =
            vec![HEADER_ONLY.to_vec(), CONNECT_V4.to_vec(), connect_v6_mss()];
        let mut buf = [0u8; MAX_LEN];
        let n = emit_request(
            &mut buf,
            "[2001:db8::1]:80".parse().unwrap(),
            &[1, 1, 2],
            Some(b"k"),
        )
        .unwrap();
        seeds.push(buf[..n].to_vec());
        let n = emit_error_echo(&mut buf, code::MALFORMED_MESSAGE, &CONNECT_V4).unwrap();
        seeds.push(buf[..n].to_vec());
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..50_000 {
            let mut m = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(5) {
                    0 if !m.is_empty() => {
                        let i = rng.below(m.len());
                        m[i] = rng.next() as u8;
                    }
                    1 => m.truncate(rng.below(m.len() + 1)),
                    2 => m.push(rng.next() as u8),
                    3 if m.len() > 1 => {
                        // Plausible header so that mutations reach the TLV walk.
                        m[0] = 1;
                        m[1] = (m.len() / 4) as u8;
                        if m.len() > 3 {
                            m[2] = 0x22;
                            m[3] = 0x63;
                        }
                    }
                    _ => {
                        let i = rng.below(m.len() + 1);
                        m.insert(i, rng.next() as u8);
                    }
                }
            }
            let _ = parse_header(&m);
            if let Ok(msg) = parse(&m) {
                parsed += 1;
                // Everything that parses walks consistently and re-emits to the same bytes.
                let mut total = HEADER_LEN;
                let mut out = [0u8; MAX_LEN];
                let mut b = Builder::new(&mut out).unwrap();
                for t in msg.tlvs() {
                    total += t.bytes.len();
                    assert!(!t.bytes.is_empty() && t.bytes.len() % 4 == 0);
                    let _ = (t.connect(), t.error(), t.payload(), t.value());
                    let v = t.value();
                    // Re-emit the raw value (already padded) under the same type.
                    b.tlv(t.kind, &[v]).unwrap();
                }
                assert_eq!(total, msg.len());
                let n = b.finish();
                assert_eq!(&out[..n], msg.bytes());
                let _ = msg.connect().map(|c| c.socket_addr());
                let _ = check_cookie(b"k", &msg);
            }
        }
        assert!(parsed > 1000, "only {parsed} mutated messages parsed");
    }
}
