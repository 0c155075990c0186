//! TCP options: a parsed view and a block builder (RFC 9293 §3.1/§3.2,
//! RFC 7323 window scale and timestamps, RFC 2018 SACK, RFC 7413 fast open,
//! RFC 8684 MPTCP kind 30).
//!
//! Walk rules ([`TcpOptions::parse`]): EOL (0) ends the list; NOP (1) is one
//! byte; any other kind needs a length byte `>= 2` that stays inside the
//! block.  A broken length stops the walk and sets `malformed` (options parsed
//! so far are kept).  A known kind with the wrong length for that kind (e.g.
//! MSS with length 3) is skipped, sets `malformed`, and the walk goes on since
//! its framing is intact (an MPTCP option shorter than 3 bytes is kept in
//! `mptcp` but also sets `malformed`).  Duplicates: the first occurrence wins, except MPTCP
//! options, of which the first four are kept in order.

/// TCP option kind of every MPTCP option (RFC 8684 §3).
pub const KIND_MPTCP: u8 = 30;
pub const KIND_EOL: u8 = 0;
pub const KIND_NOP: u8 = 1;
pub const KIND_MSS: u8 = 2;
pub const KIND_WSCALE: u8 = 3;
pub const KIND_SACK_PERM: u8 = 4;
pub const KIND_SACK: u8 = 5;
pub const KIND_TS: u8 = 8;
pub const KIND_FASTOPEN: u8 = 34;

/// Maximum size of a TCP option block (data offset 15 → 60 − 20).
pub const MAX_OPTIONS: usize = 40;

/// Parsed view of a TCP option block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions<'a> {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    /// (TSval, TSecr)
    pub ts: Option<(u32, u32)>,
    /// SACK blocks (left, right); `sack_n` are valid.
    pub sack: [(u32, u32); 4],
    pub sack_n: usize,
    /// Raw MPTCP options (whole option incl. kind and length); `mptcp_n` are valid.
    pub mptcp: [&'a [u8]; 4],
    pub mptcp_n: usize,
    /// Kind 34 (TCP Fast Open) present.
    pub fastopen: bool,
    pub malformed: bool,
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

impl<'a> TcpOptions<'a> {
    /// Walks an option block (see the module docs for the rules).
    pub fn parse(opts: &'a [u8]) -> TcpOptions<'a> {
        let mut o = TcpOptions {
            mss: None,
            wscale: None,
            sack_perm: false,
            ts: None,
            sack: [(0, 0); 4],
            sack_n: 0,
            mptcp: [&[]; 4],
            mptcp_n: 0,
            fastopen: false,
            malformed: false,
        };
        let mut i = 0;
        while let Some(&kind) = opts.get(i) {
            match kind {
                KIND_EOL => break,
                KIND_NOP => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = match opts.get(i + 1) {
                Some(&l) if l >= 2 => l as usize,
                _ => {
                    o.malformed = true;
                    break;
                }
            };
            let Some(opt) = opts.get(i..i + len) else {
                o.malformed = true;
                break;
            };
            let ok = match (kind, len) {
                (KIND_MSS, 4) => {
                    if o.mss.is_none() {
                        o.mss = Some(u16::from_be_bytes([opt[2], opt[3]]));
                    }
                    true
                }
                (KIND_WSCALE, 3) => {
                    o.wscale = o.wscale.or(Some(opt[2]));
                    true
                }
                (KIND_SACK_PERM, 2) => {
                    o.sack_perm = true;
                    true
                }
                (KIND_TS, 10) => {
                    o.ts = o.ts.or(Some((be32(opt, 2), be32(opt, 6))));
                    true
                }
                (KIND_SACK, l) if l >= 10 && (l - 2) % 8 == 0 => {
                    if o.sack_n == 0 {
                        for (k, slot) in o.sack.iter_mut().enumerate().take((l - 2) / 8) {
                            *slot = (be32(opt, 2 + 8 * k), be32(opt, 6 + 8 * k));
                            o.sack_n = k + 1;
                        }
                    }
                    true
                }
                (KIND_MSS | KIND_WSCALE | KIND_SACK_PERM | KIND_TS | KIND_SACK, _) => false,
                (KIND_MPTCP, l) => {
                    if let Some(slot) = o.mptcp.get_mut(o.mptcp_n) {
                        *slot = opt;
                        o.mptcp_n += 1;
                    }
                    l >= 3
                }
                (KIND_FASTOPEN, _) => {
                    o.fastopen = true;
                    true
                }
                _ => true,
            };
            if !ok {
                o.malformed = true;
            }
            i += len;
        }
        o
    }

    /// The valid SACK blocks.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        self.sack.get(..self.sack_n).unwrap_or(&[])
    }

    /// The MPTCP options found (at most 4).
    pub fn mptcp_opts(&self) -> &[&'a [u8]] {
        self.mptcp.get(..self.mptcp_n).unwrap_or(&[])
    }
}

/// Offset of the 2-byte MSS value inside `opts` (for in-place clamping).
pub fn find_mss_offset(opts: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        match *opts.get(i)? {
            KIND_EOL => return None,
            KIND_NOP => i += 1,
            kind => {
                let len = *opts.get(i + 1)? as usize;
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == KIND_MSS && len == 4 {
                    return Some(i + 2);
                }
                i += len;
            }
        }
    }
}

/// Builds an option block of at most 40 bytes.  A push that would not fit
/// returns `false` (or 0) and writes nothing.  The block is not padded; the
/// packet writer pads it to a multiple of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptWriter {
    buf: [u8; MAX_OPTIONS],
    len: usize,
}

impl Default for OptWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl OptWriter {
    pub fn new() -> Self {
        OptWriter {
            buf: [0; MAX_OPTIONS],
            len: 0,
        }
    }

    /// Appends raw bytes (any option, already encoded).
    pub fn raw(&mut self, opt: &[u8]) -> bool {
        match self.buf.get_mut(self.len..self.len + opt.len()) {
            Some(dst) => {
                dst.copy_from_slice(opt);
                self.len += opt.len();
                true
            }
            None => false,
        }
    }

    /// MSS: 4 bytes.
    pub fn mss(&mut self, v: u16) -> bool {
        let b = v.to_be_bytes();
        self.raw(&[KIND_MSS, 4, b[0], b[1]])
    }

    /// NOP + window scale (4 bytes).
    pub fn wscale(&mut self, v: u8) -> bool {
        self.raw(&[KIND_NOP, KIND_WSCALE, 3, v])
    }

    /// SACK permitted: 2 bytes, unpadded (the caller pairs it, e.g. before TS).
    pub fn sack_perm(&mut self) -> bool {
        self.raw(&[KIND_SACK_PERM, 2])
    }

    /// NOP NOP + timestamps (12 bytes).
    pub fn ts(&mut self, val: u32, ecr: u32) -> bool {
        let mut b = [KIND_NOP, KIND_NOP, KIND_TS, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        b[4..8].copy_from_slice(&val.to_be_bytes());
        b[8..12].copy_from_slice(&ecr.to_be_bytes());
        self.raw(&b)
    }

    /// NOP NOP + SACK with as many of `blocks` (max 4) as fit; returns the
    /// number of blocks written (0: nothing written).
    pub fn sack(&mut self, blocks: &[(u32, u32)]) -> usize {
        let fit = self.room().saturating_sub(4) / 8;
        let n = blocks.len().min(fit).min(4);
        if n == 0 {
            return 0;
        }
        let mut b = [0u8; 36];
        b[0] = KIND_NOP;
        b[1] = KIND_NOP;
        b[2] = KIND_SACK;
        b[3] = (2 + 8 * n) as u8;
        for (k, &(l, r)) in blocks.iter().take(n).enumerate() {
            b[4 + 8 * k..8 + 8 * k].copy_from_slice(&l.to_be_bytes());
            b[8 + 8 * k..12 + 8 * k].copy_from_slice(&r.to_be_bytes());
        }
        if self.raw(&b[..4 + 8 * n]) {
            n
        } else {
            0
        }
    }

    pub fn nop(&mut self) -> bool {
        self.raw(&[KIND_NOP])
    }

    /// Bytes still free.
    pub fn room(&self) -> usize {
        MAX_OPTIONS - self.len
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_typical_syn() {
        // MSS 1460, SACK_PERM, TS, NOP, WS 7, MP_CAPABLE v1 (len 4).
        let b = [
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0x9c, 0x27, 0x24, 0, 0, 0, 1, 1, 3, 3, 7, 30, 4, 0x01,
            0x81,
        ];
        let o = TcpOptions::parse(&b);
        assert!(!o.malformed);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_perm);
        assert_eq!(o.ts, Some((0x009c_2724, 1)));
        assert_eq!(o.wscale, Some(7));
        assert_eq!(o.mptcp_opts(), &[&b[20..24]]);
        assert!(!o.fastopen);
        assert_eq!(find_mss_offset(&b), Some(2));
        assert_eq!(find_mss_offset(&b[4..]), None);
        assert_eq!(find_mss_offset(&[1, 1, 2, 4, 0, 1]), Some(4));
    }

    #[test]
    fn parse_sack_eol_and_garbage() {
        let b = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 99, 99,
        ];
        let o = TcpOptions::parse(&b);
        assert_eq!(o.sack_blocks(), &[(1, 2), (3, 4)]);
        assert!(!o.malformed); // bytes after EOL are ignored
                               // Bad framing stops the walk, keeps what was parsed.
        let o = TcpOptions::parse(&[2, 4, 1, 0, 8, 11, 0]);
        assert_eq!(o.mss, Some(256));
        assert!(o.malformed && o.ts.is_none());
        assert!(TcpOptions::parse(&[3]).malformed);
        assert!(TcpOptions::parse(&[3, 1, 3, 3, 3]).malformed);
        // Wrong length for a known kind: skipped, walk goes on.
        let o = TcpOptions::parse(&[2, 3, 0, 3, 3, 9, 34, 2]);
        assert!(o.malformed && o.mss.is_none());
        assert_eq!(o.wscale, Some(9));
        assert!(o.fastopen);
        // More than four MPTCP options: first four kept.
        let mut m = [0u8; 20];
        for (k, c) in m.chunks_mut(4).enumerate() {
            c.copy_from_slice(&[30, 4, 0x01, k as u8]);
        }
        let o = TcpOptions::parse(&m);
        assert_eq!(o.mptcp_n, 4);
        assert_eq!(o.mptcp[3], &[30, 4, 1, 3]);
    }

    #[test]
    fn writer() {
        let mut w = OptWriter::new();
        assert!(w.is_empty());
        assert!(w.mss(1400) && w.sack_perm() && w.ts(5, 6) && w.wscale(7));
        assert_eq!(w.len(), 22);
        assert_eq!(
            w.as_bytes(),
            &[2, 4, 5, 120, 4, 2, 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 3, 3, 7]
        );
        let o = TcpOptions::parse(w.as_bytes());
        assert_eq!(
            (o.mss, o.wscale, o.ts, o.sack_perm),
            (Some(1400), Some(7), Some((5, 6)), true)
        );
        // 18 bytes left: NOP NOP + 1 block (12) fits, 2 blocks (20) do not.
        assert_eq!(w.sack(&[(1, 2), (3, 4), (5, 6)]), 1);
        assert_eq!(w.room(), 6);
        assert!(!w.raw(&[0; 7]));
        assert_eq!(w.len(), 34);
        assert!(w.raw(&[1; 6]) && w.room() == 0 && !w.nop());
        let mut w = OptWriter::new();
        assert_eq!(w.sack(&[(1, 2); 6]), 4);
        assert_eq!(w.len(), 36);
        assert_eq!(TcpOptions::parse(w.as_bytes()).sack_n, 4);
        assert_eq!(w.sack(&[(1, 2)]), 0);
        assert!(!w.ts(0, 0) && w.mss(1) && w.len() == 40);
    }
}
