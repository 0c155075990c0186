//! One converted connection and its subflows, with the mapping tables of seed paper §3.3.
//!
//! Sequence spaces (paper §3.3): the LAN host's own TCP space towards the server is kept as is
//! on the initial subflow (its ISN is the subflow's ISN, so client data maps 1:1 and a
//! retransmission keeps its subflow and mapping). The server's data arrives on any subflow with
//! DSS mappings; it is shown to the LAN host in a TCP space that is the data-level space shifted
//! by a constant, so every subflow's bytes land where they belong in the host's stream.

use std::cell::Cell;
use std::net::SocketAddr;

use super::Micros;

/// Subflows per connection: the initial one plus one join per other uplink.
pub const MAX_SUBFLOWS: usize = 8;
/// Received ranges remembered per subflow until the LAN host acknowledges them. A range ends
/// where the server's scheduler switched subflows, so a large window in flight over several
/// subflows needs many. The table grows on demand (rarely: capacity is kept) up to this bound.
pub const RECV_ENTRIES: usize = 4096;
/// Entries looked at when computing a subflow's SACK blocks.
pub const SACK_SCAN: usize = 64;
/// Initial capacity of a subflow's RECV table.
const RECV_INITIAL: usize = 16;
/// A typical segment, for the weighted scheduler's in-flight allowance.
pub const SEG: u32 = 1400;
/// Initial in-flight allowance of a subflow (RFC 6928's ten segments).
pub const INITIAL_CWND: u32 = 10 * SEG;
/// Shortest interval of a delivery-rate sample (longer when the RTT is).
pub const RATE_INTERVAL: Micros = 20_000;
/// Server mappings remembered per subflow.
pub const MAP_ENTRIES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// SYN with MP_CAPABLE sent, waiting for the SYN/ACK.
    SynSent,
    /// The server speaks MPTCP: converted for the whole life of the connection.
    Mptcp,
    /// Plain TCP: only addresses and ports are translated.
    Fallback,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState {
    /// Join SYN sent.
    SynSent,
    /// Join SYN/ACK verified and third ACK sent, waiting for the server's ACK (RFC 8684 §3.2).
    AckSent,
    Established,
    /// Reset or closed: kept only until the connection goes.
    Closed,
}

/// A range of server bytes received on a subflow and forwarded to the LAN host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvEntry {
    /// Absolute subflow sequence number of the first byte.
    pub ssn: u32,
    /// Data sequence number of the first byte.
    pub dsn: u64,
    pub len: u32,
}

/// A server mapping (RFC 8684 §3.3.1), subflow sequence numbers absolute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapEntry {
    pub ssn: u32,
    pub dsn: u64,
    pub len: u32,
}

/// SSN-ordered ranges received on one subflow and not yet acknowledged on it.
#[derive(Clone, Debug)]
pub struct RecvTable {
    e: Vec<RecvEntry>,
}

impl Default for RecvTable {
    fn default() -> Self {
        RecvTable {
            e: Vec::with_capacity(RECV_INITIAL),
        }
    }
}

use crate::wire::seq::{seq_gt, seq_le, seq_lt};

impl RecvTable {
    #[cfg(test)]
    pub fn entries(&self) -> &[RecvEntry] {
        &self.e
    }

    pub fn is_empty(&self) -> bool {
        self.e.is_empty()
    }

    /// Record `len` bytes at `ssn` mapped to `dsn`, merging with neighbours. Bytes below
    /// `acked` (already acknowledged on the subflow) or already recorded (a retransmission: a
    /// subflow byte keeps its data sequence number, RFC 8684 §3.3) are skipped. Returns false
    /// when the table has no room (the caller drops the segment; the server retransmits it).
    pub fn insert(&mut self, acked: u32, mut ssn: u32, mut dsn: u64, mut len: u32) -> bool {
        if seq_lt(ssn, acked) {
            let skip = acked.wrapping_sub(ssn);
            if skip >= len {
                return true;
            }
            ssn = acked;
            dsn += skip as u64;
            len -= skip;
        }
        if len == 0 {
            return true;
        }
        // In-order arrival, the common case: append after the last entry.
        if self
            .e
            .last()
            .is_none_or(|l| seq_le(l.ssn.wrapping_add(l.len), ssn))
        {
            let i = self.e.len();
            return self.put(i, RecvEntry { ssn, dsn, len });
        }
        while len > 0 {
            // The first entry that ends after ssn.
            let i = self
                .e
                .iter()
                .position(|e| seq_gt(e.ssn.wrapping_add(e.len), ssn))
                .unwrap_or(self.e.len());
            let step = if i < self.e.len() && seq_le(self.e[i].ssn, ssn) {
                // Already recorded: skip the covered part.
                self.e[i]
                    .ssn
                    .wrapping_add(self.e[i].len)
                    .wrapping_sub(ssn)
                    .min(len)
            } else {
                let gap = if i < self.e.len() {
                    self.e[i].ssn.wrapping_sub(ssn).min(len)
                } else {
                    len
                };
                if !self.put(i, RecvEntry { ssn, dsn, len: gap }) {
                    return false;
                }
                gap
            };
            ssn = ssn.wrapping_add(step);
            dsn += step as u64;
            len -= step;
        }
        true
    }

    fn put(&mut self, i: usize, e: RecvEntry) -> bool {
        // Merge with the previous entry when contiguous in both spaces.
        if i > 0 {
            let p = self.e[i - 1];
            if p.ssn.wrapping_add(p.len) == e.ssn && p.dsn + p.len as u64 == e.dsn {
                self.e[i - 1].len += e.len;
                self.merge_at(i - 1);
                return true;
            }
        }
        if self.e.len() == RECV_ENTRIES {
            return false;
        }
        self.e.insert(i, e);
        self.merge_at(i);
        true
    }

    /// Merge entry i with its successor when they are contiguous in both spaces.
    fn merge_at(&mut self, i: usize) {
        if i + 1 < self.e.len() {
            let (a, b) = (self.e[i], self.e[i + 1]);
            if a.ssn.wrapping_add(a.len) == b.ssn && a.dsn + a.len as u64 == b.dsn {
                self.e[i].len += b.len;
                self.e.remove(i + 1);
            }
        }
    }

    /// ACK projection (paper §3.5): the LAN host holds everything below data sequence number
    /// `dack` and the data-level ranges `dsacks` (its SACK blocks). The block that contains the
    /// subflow's previous ACK yields its new ACK: from `acked`, advance over the contiguous
    /// entries whose bytes the host holds, into the first that it holds only in part. Data that
    /// arrived early on a fast subflow is thus acknowledged on that subflow although the host
    /// still waits for a slower one (no spurious retransmissions); the data-level ACK stays the
    /// host's own. Acknowledged bytes leave the table.
    ///
    /// Returns the new ACK.
    pub fn advance(&mut self, acked: u32, dack: u64, dsacks: &[(u64, u64)]) -> u32 {
        let mut ack = acked;
        let mut drop = 0;
        while drop < self.e.len() {
            let e = self.e[drop];
            if e.ssn != ack {
                break;
            }
            let held = held_prefix(e.dsn, e.dsn + e.len as u64, dack, dsacks);
            if held == e.len {
                ack = e.ssn.wrapping_add(e.len);
                drop += 1;
                continue;
            }
            if held > 0 {
                ack = e.ssn.wrapping_add(held);
                self.e[drop] = RecvEntry {
                    ssn: ack,
                    dsn: e.dsn + held as u64,
                    len: e.len - held,
                };
            }
            break;
        }
        if drop > 0 {
            self.e.drain(..drop);
        }
        ack
    }

    /// Whether what keeps this subflow's ACK at `acked` lies at or beyond `edge`, the right
    /// edge of the LAN host's window (data level): the host drops those bytes, so the subflow
    /// cannot move until the hole below the edge is filled — and a sender that queues its
    /// data-level retransmissions behind them (Linux re-sends lost data only on a subflow with
    /// nothing outstanding) never fills it there. Call after [`RecvTable::advance`].
    pub fn blocked_beyond(&self, acked: u32, edge: u64) -> bool {
        self.e
            .first()
            .is_some_and(|f| f.ssn == acked && f.dsn >= edge)
    }

    /// The SSN ranges of this subflow that the LAN host holds although the subflow's cumulative
    /// ACK cannot cover them yet: entries (or parts) whose DSN range is below `dack` or inside
    /// one of the host's SACK blocks `dsacks` (data-level). Written to `out`, returns the count.
    /// Only the first [`SACK_SCAN`] entries are looked at (SACK blocks are hints, and the
    /// table can be long); when the host reported no SACK blocks and the table starts at the
    /// subflow's ACK `acked`, nothing below `dack` can be left and the scan is skipped.
    pub fn sack_blocks(
        &self,
        acked: u32,
        dack: u64,
        dsacks: &[(u64, u64)],
        out: &mut [(u32, u32)],
    ) -> usize {
        let mut n = 0;
        match self.e.first() {
            None => return 0,
            Some(f) if dsacks.is_empty() && f.ssn == acked && f.dsn >= dack => return 0,
            _ => {}
        }
        for e in self.e.iter().take(SACK_SCAN) {
            let (s, t) = (e.dsn, e.dsn + e.len as u64);
            let mut emit = |lo: u64, hi: u64, n: &mut usize| {
                if lo >= hi {
                    return;
                }
                let a = e.ssn.wrapping_add((lo - s) as u32);
                let b = e.ssn.wrapping_add((hi - s) as u32);
                if *n > 0 && out[*n - 1].1 == a {
                    out[*n - 1].1 = b;
                } else if *n < out.len() {
                    out[*n] = (a, b);
                    *n += 1;
                }
            };
            emit(s, t.min(dack), &mut n);
            for &(l, r) in dsacks {
                emit(s.max(l).max(dack), t.min(r), &mut n);
            }
        }
        n
    }
}

/// How many bytes from `s` (up to `t`) the LAN host holds, given its cumulative ACK `dack` and
/// its SACK blocks (data sequence numbers).
fn held_prefix(s: u64, t: u64, dack: u64, dsacks: &[(u64, u64)]) -> u32 {
    let mut pos = s;
    loop {
        let next = if pos < dack {
            dack
        } else if let Some(&(_, r)) = dsacks.iter().find(|&&(l, r)| l <= pos && pos < r) {
            r
        } else {
            break;
        };
        pos = next.min(t);
        if pos >= t {
            break;
        }
    }
    (pos - s) as u32
}

/// Recent server mappings of one subflow (a mapping may cover many segments).
#[derive(Clone, Debug, Default)]
pub struct MapCache {
    e: [MapEntry; MAP_ENTRIES],
    n: usize,
    next: usize,
}

impl MapCache {
    pub fn add(&mut self, m: MapEntry) {
        if let Some(x) = self.e[..self.n].iter_mut().find(|x| x.ssn == m.ssn) {
            *x = m;
            return;
        }
        if self.n < MAP_ENTRIES {
            self.e[self.n] = m;
            self.n += 1;
        } else {
            self.e[self.next] = m;
            self.next = (self.next + 1) % MAP_ENTRIES;
        }
    }

    /// The DSN of subflow byte `ssn` and how many bytes from there the mapping covers.
    pub fn lookup(&self, ssn: u32) -> Option<(u64, u32)> {
        self.e[..self.n].iter().find_map(|m| {
            let off = ssn.wrapping_sub(m.ssn);
            (off < m.len).then(|| (m.dsn + off as u64, m.len - off))
        })
    }
}

/// What the server's TCP holds as our window on one subflow, as far as we can tell (see
/// [`Conn::advertise`]). Cells: the segment builders see the subflow through shared borrows.
#[derive(Clone, Debug, Default)]
pub struct WinAdv {
    /// Something was advertised, and the highest subflow ACK and sequence number sent since.
    known: Cell<bool>,
    ack: Cell<u32>,
    seq: Cell<u32>,
    /// Upper bound of the server's window for the subflow, bytes.
    held: Cell<u64>,
}

#[derive(Clone, Debug)]
pub struct Subflow {
    pub uplink: u8,
    /// The router's source port.
    pub port: u16,
    pub state: SubState,
    /// Our ISN on this subflow (for the initial subflow: the LAN host's ISN).
    pub isn: u32,
    /// The server's ISN on this subflow.
    pub risn: u32,
    /// Next sequence number we send (joins carry no data in this version).
    pub snd_nxt: u32,
    /// The subflow ACK we last sent (absolute server SSN).
    pub rcv_ack: u32,
    /// Server bytes received here, not yet acknowledged on this subflow.
    pub recv: RecvTable,
    pub maps: MapCache,
    /// Server's FIN on this subflow (absolute sequence number of the FIN), if seen.
    pub fin: Option<u32>,
    /// We sent our FIN on this subflow (joins answer the server's FIN with theirs).
    pub fin_sent: bool,
    /// Last TSval from the server on this subflow, and our offset to the LAN host's clock view.
    pub ts_recent: u32,
    pub ts_off: u32,
    /// RFC 7323 §4.3 TS.Recent: the TSval of the latest server segment that reached our ACK
    /// point on this subflow (a retransmission filling a hole, the first segment after a pause).
    pub ts_left: u32,
    /// Our window as the server holds it on this subflow.
    pub adv: WinAdv,
    /// Server's window scale on this subflow.
    pub wscale: u8,
    /// The server made this subflow a backup (MP_PRIO or the B bit of its join).
    pub backup: bool,
    /// We made it one (MP_JOIN B bit or our MP_PRIO): a backup or degraded uplink, or a
    /// handover to another uplink. Our data avoids it while another subflow is up.
    pub local_backup: bool,
    /// The address ID it carries (0 for the initial subflow).
    pub addr_id: u8,
    pub nonce: u32,
    pub rnonce: u32,
    /// Highest ACK the server sent on this subflow (our bytes it has), when we send data here.
    pub snd_una: u32,
    /// The SACK blocks of the server's latest ACK on this subflow (our bytes it holds above
    /// `snd_una`).
    pub sacked: [(u32, u32); 4],
    pub sacked_n: u8,
    /// The last orphaned hole filled here (its start) and when (see `lan::plug_orphans`).
    pub plugged: Option<(u32, Micros)>,
    /// Round-trip time: smoothed, lowest seen, and the sample in flight (end of the bytes
    /// timed, when they were sent). Zero while unknown.
    pub srtt: Micros,
    pub min_rtt: Micros,
    pub rtt_probe: Option<(u32, Micros)>,
    /// Weighted scheduler: how many of our bytes this subflow may have in flight, a simple
    /// Reno-like estimate (grows with ACKs, halves when the server reports a loss with SACK),
    /// and the end of the current loss recovery.
    pub cwnd: u32,
    pub ssthresh: u32,
    pub recover: Option<u32>,
    /// Delivery rate of our bytes on this subflow (bytes/s; 0 = not measured yet): bytes
    /// acknowledged per sampling interval, the highest recent sample (decaying).
    pub rate: u64,
    pub dlv_bytes: u32,
    pub dlv_start: Micros,
    /// Retransmission timer for the join handshake, and tries so far.
    pub timer: Option<Micros>,
    pub tries: u8,
}

impl Subflow {
    /// Account for the server's ACK on this subflow: bytes in flight, an RTT sample, and the
    /// in-flight allowance (`loss`: the ACK carried SACK blocks, a segment is missing).
    pub fn on_ack(&mut self, ack: u32, now: Micros, sacks: &[(u32, u32)]) -> bool {
        let loss = !sacks.is_empty();
        let mut n = 0;
        for &(l, r) in sacks {
            if seq_gt(r, ack) && seq_le(r, self.snd_nxt) && seq_lt(l, r) && n < self.sacked.len() {
                self.sacked[n] = (l, r);
                n += 1;
            }
        }
        self.sacked_n = n as u8;
        let mut acked = 0;
        if seq_gt(ack, self.snd_una) && seq_le(ack, self.snd_nxt) {
            acked = ack.wrapping_sub(self.snd_una);
            self.snd_una = ack;
        }
        if self.recover.is_some_and(|r| !seq_lt(self.snd_una, r)) {
            self.recover = None;
        }
        if loss && self.recover.is_none() {
            let inflight = self.snd_nxt.wrapping_sub(self.snd_una);
            self.ssthresh = (inflight / 2).max(2 * SEG);
            self.cwnd = self.ssthresh;
            self.recover = Some(self.snd_nxt);
        } else if acked > 0 && self.recover.is_none() {
            self.cwnd = if self.cwnd < self.ssthresh {
                self.cwnd.saturating_add(acked)
            } else {
                self.cwnd.saturating_add(
                    (SEG as u64 * acked as u64 / self.cwnd.max(1) as u64).max(1) as u32,
                )
            };
        }
        if acked > 0 {
            if self.dlv_start == 0 {
                self.dlv_start = now;
            }
            self.dlv_bytes = self.dlv_bytes.saturating_add(acked);
            let dt = now.saturating_sub(self.dlv_start);
            if dt >= RATE_INTERVAL.max(self.min_rtt) {
                let sample = self.dlv_bytes as u64 * 1_000_000 / dt;
                self.rate = sample.max(self.rate - self.rate / 4);
                self.dlv_bytes = 0;
                self.dlv_start = now;
            }
        }
        if let Some((end, t)) = self.rtt_probe {
            if !seq_lt(self.snd_una, end) {
                let sample = now.saturating_sub(t).max(1);
                // A fast-moving average: the scheduler reacts to queues building up.
                self.srtt = if self.srtt == 0 {
                    sample
                } else {
                    (self.srtt + sample) / 2
                };
                if self.min_rtt == 0 || sample < self.min_rtt {
                    self.min_rtt = sample;
                }
                self.rtt_probe = None;
            }
        }
        acked > 0
    }

    /// Our bytes on their way: sent, neither acknowledged nor reported held (SACK).
    pub fn outstanding(&self) -> u32 {
        let sacked: u32 = self.sacked().iter().map(|&(l, r)| r.wrapping_sub(l)).sum();
        self.snd_nxt
            .wrapping_sub(self.snd_una)
            .saturating_sub(sacked)
    }

    /// A backup subflow, by the server's choice or ours.
    pub fn is_backup(&self) -> bool {
        self.backup || self.local_backup
    }

    /// The server's latest SACK blocks on this subflow.
    pub fn sacked(&self) -> &[(u32, u32)] {
        &self.sacked[..self.sacked_n as usize]
    }

    pub fn new(uplink: u8, port: u16, isn: u32) -> Subflow {
        Subflow {
            uplink,
            port,
            state: SubState::SynSent,
            isn,
            risn: 0,
            snd_nxt: isn.wrapping_add(1),
            rcv_ack: 0,
            recv: RecvTable::default(),
            maps: MapCache::default(),
            fin: None,
            fin_sent: false,
            ts_recent: 0,
            ts_left: 0,
            adv: WinAdv::default(),
            ts_off: 0,
            wscale: 0,
            backup: false,
            local_backup: false,
            addr_id: 0,
            snd_una: isn.wrapping_add(1),
            sacked: [(0, 0); 4],
            sacked_n: 0,
            plugged: None,
            srtt: 0,
            min_rtt: 0,
            rtt_probe: None,
            cwnd: INITIAL_CWND,
            ssthresh: u32::MAX,
            recover: None,
            rate: 0,
            dlv_bytes: 0,
            dlv_start: 0,
            nonce: 0,
            rnonce: 0,
            timer: None,
            tries: 0,
        }
    }
}

/// Explicit mode (RFC 8803): the Convert request we prepend to the router's stream and the
/// concentrator's reply we strip from the front of its stream.
#[derive(Clone, Debug)]
pub struct ConvertState {
    pub req: [u8; 64],
    pub req_len: u8,
    /// The concentrator took the request in our SYN (TFO); otherwise it is sent as the first
    /// data segment, and again until acknowledged.
    pub req_in_syn: bool,
    /// When the request was last sent as data (for its retransmission).
    pub req_sent: Option<Micros>,
    /// The reply so far (its header and first TLVs; longer replies are skipped, not kept).
    pub reply: [u8; 128],
    pub reply_have: u16,
    /// Its total length, once the header is in; the reply is complete when `reply_done`.
    pub reply_len: Option<u16>,
    pub reply_done: bool,
}

impl Default for ConvertState {
    fn default() -> Self {
        ConvertState {
            req: [0; 64],
            req_len: 0,
            req_in_syn: false,
            req_sent: None,
            reply: [0; 128],
            reply_have: 0,
            reply_len: None,
            reply_done: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Conn {
    pub client: SocketAddr,
    /// The server the LAN host connected to (the source of what the host receives).
    pub server: SocketAddr,
    /// The peer of the subflows: the server itself, or the concentrator in explicit mode.
    pub remote: SocketAddr,
    /// Explicit mode only.
    pub convert: Option<Box<ConvertState>>,
    /// The SEND table (every MPTCP connection has one; `Option` only to lend it out).
    pub send: Option<Box<super::sched::SendState>>,
    /// Spread the host's data over all subflows (scheduler weighted) rather than the single
    /// active one.
    pub weighted: bool,
    /// Bytes the router put before the LAN host's data on the initial subflow (the Convert
    /// request)...
    pub c_shift: u32,
    /// ...and in its data-level stream: the same, except when the request rode in the SYN,
    /// whose data Linux maps just *below* IDSN+1 (net/mptcp/fastopen.c), so the data level
    /// starts at IDSN+1 all the same.
    pub c_dshift: u32,
    /// Bytes of the peer's stream before what the LAN host receives (the Convert reply).
    pub s_shift: u32,
    pub state: ConnState,
    pub last_seen: Micros,
    /// The LAN host's ISN; the initial subflow uses it too.
    pub c_isn: u32,
    /// The server's ISN as the LAN host sees it (= the initial subflow's server ISN).
    pub s_isn: u32,
    /// Options the LAN host offered in its SYN.
    pub c_mss: u16,
    pub c_wscale: Option<u8>,
    pub c_sack: bool,
    pub c_ts: bool,
    /// Negotiated end to end (both SYN and SYN/ACK had them).
    pub ts: bool,
    pub sack: bool,
    /// Window scale the LAN host was told (the initial subflow's server scale).
    pub s_wscale: u8,
    /// Scale of the LAN host's own windows (its offer, if the server's SYN/ACK had one too).
    pub c_scale: u8,
    /// Last TSval from the LAN host (echoed back to it), highest TSval sent to it.
    pub c_ts_recent: u32,
    /// Last TSecr from the LAN host: the server's clock (initial subflow's view) of the segment
    /// it acknowledges.
    pub c_tsecr: u32,
    pub ts_to_client: u32,
    pub local_key: u64,
    pub remote_key: u64,
    pub remote_token: u32,
    pub local_idsn: u64,
    pub remote_idsn: u64,
    /// DSS checksums in use (RFC 8684 §3.3.1).
    pub csum: bool,
    /// A DSS came from the server: our key is known to it, stop repeating MP_CAPABLE.
    pub confirmed: bool,
    /// Highest DATA_ACK from the server (our data), and the highest data level ACK we sent.
    pub data_acked: u64,
    pub data_ack_sent: u64,
    /// Last cumulative ACK from the LAN host (its TCP space).
    pub c_ack: u32,
    /// When the LAN host's data-level ACK last moved, or subflows were last reset because
    /// it did not (`Engine::unblock`).
    pub dack_at: Micros,
    /// Last window the LAN host advertised (unscaled value as on the wire).
    pub c_win: u16,
    /// The right edge of the LAN host's window (data level), once it acknowledged anything.
    pub c_edge: Option<u64>,
    /// Server's DATA_FIN (data sequence number of the FIN).
    pub s_data_fin: Option<u64>,
    /// The LAN host sent its FIN (sequence number of the FIN).
    pub c_fin: Option<u32>,
    /// The LAN host was told that its FIN arrived: it may be CLOSED now and would answer a
    /// second such ACK with a RST, so no other pure ACK follows.
    pub c_fin_acked: bool,
    /// When both sides are closed: forget the connection after this time.
    pub linger: Option<Micros>,
    pub subs: [Option<Subflow>; MAX_SUBFLOWS],
}

impl Conn {
    /// A connection from `client` to `server` whose subflows go to `remote`, in SYN-SENT,
    /// with nothing negotiated yet and no subflows.
    pub fn new(client: SocketAddr, server: SocketAddr, remote: SocketAddr, now: Micros) -> Conn {
        Conn {
            client,
            server,
            remote,
            convert: None,
            send: Some(Box::default()),
            weighted: false,
            c_shift: 0,
            c_dshift: 0,
            s_shift: 0,
            state: ConnState::SynSent,
            last_seen: now,
            c_isn: 0,
            s_isn: 0,
            c_mss: 536,
            c_wscale: None,
            c_sack: false,
            c_ts: false,
            ts: false,
            sack: false,
            s_wscale: 0,
            c_scale: 0,
            c_ts_recent: 0,
            c_tsecr: 0,
            ts_to_client: 0,
            local_key: 0,
            remote_key: 0,
            remote_token: 0,
            local_idsn: 0,
            remote_idsn: 0,
            csum: false,
            confirmed: false,
            data_acked: 0,
            data_ack_sent: 0,
            c_ack: 0,
            dack_at: now,
            c_win: 0,
            c_edge: None,
            s_data_fin: None,
            c_fin: None,
            c_fin_acked: false,
            linger: None,
            subs: Default::default(),
        }
    }

    pub fn subs(&self) -> impl Iterator<Item = &Subflow> {
        self.subs.iter().flatten()
    }

    pub fn sub(&self, i: u8) -> Option<&Subflow> {
        self.subs.get(i as usize).and_then(|s| s.as_ref())
    }

    pub fn sub_mut(&mut self, i: u8) -> Option<&mut Subflow> {
        self.subs.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    /// The TSecr for a segment on `sub`: the LAN host's echo moved to this subflow's clock, so
    /// the server measures the true round trip of the data acknowledged (RFC 7323 §4.1); before
    /// the host echoed anything, the subflow's latest TSval. While the host waits for a hole it
    /// echoes the segment before the hole, ever older; the subflow's own TS.Recent is then the
    /// later one, else a subflow acknowledging what the host holds beyond the hole would give
    /// its server round trips as long as the wait (and retransmission timeouts to match).
    pub fn ecr_for(&self, sub: &Subflow) -> u32 {
        if self.c_tsecr == 0 {
            return sub.ts_recent;
        }
        let host = self.c_tsecr.wrapping_sub(sub.ts_off);
        if crate::wire::seq::seq_gt(sub.ts_left, host) {
            sub.ts_left
        } else {
            host
        }
    }

    /// The DATA_ACK and the window field for a segment with sequence number `seq` and ACK
    /// `ack` on `sub`, when the data-level ACK is `dack`.
    ///
    /// The data-level window ends at DATA_ACK + window (RFC 8684 §3.3.5), but a TCP takes a
    /// subflow's window only from segments that move it on (SND.WL1/WL2, RFC 9293 §3.10.7.4;
    /// Linux lets a duplicate only widen it), and Linux adds the window it holds for the
    /// subflow to the DATA_ACK of every segment there, and widens that window to the
    /// data-level one when it sends on the subflow. Were the DATA_ACK of a segment that does
    /// not move the subflow on the latest, the server would place data beyond the LAN host's
    /// window, which the host drops. Such a segment carries instead the DATA_ACK that the
    /// window the server holds belongs to: DATA_ACK + window stays the host's edge. (Another
    /// subflow, or a later segment, carries the latest DATA_ACK.)
    pub fn advertise(&self, sub: &Subflow, seq: u32, ack: u32, dack: u64) -> (u64, u16) {
        let Some(edge) = self.c_edge else {
            return (dack, self.c_win);
        };
        let a = &sub.adv;
        let edge = edge.max(dack);
        let moves = !a.known.get()
            || crate::wire::seq::seq_gt(ack, a.ack.get())
            || crate::wire::seq::seq_gt(seq, a.seq.get());
        let d = if moves {
            dack
        } else {
            dack.min(edge.saturating_sub(a.held.get()))
        };
        let field = ((edge - d) >> self.c_scale).min(0xffff);
        let w = field << self.c_scale;
        if moves || w > a.held.get() {
            a.held.set(w);
        }
        if !a.known.get() || crate::wire::seq::seq_gt(ack, a.ack.get()) {
            a.ack.set(ack);
        }
        if !a.known.get() || crate::wire::seq::seq_gt(seq, a.seq.get()) {
            a.seq.set(seq);
        }
        a.known.set(true);
        (d, field as u16)
    }

    /// The window field for a segment without DATA_ACK (see [`Conn::advertise`]).
    pub fn window_on(&self, sub: &Subflow, seq: u32, ack: u32) -> u16 {
        self.advertise(sub, seq, ack, self.data_ack_sent).1
    }

    /// Server data at data sequence number `dsn` arrived on `sub`: sending it, the server
    /// widened its window for the subflow to its data-level edge (at most the host's).
    pub fn widened(&self, sub: &Subflow, dsn: u64) {
        if let Some(edge) = self.c_edge {
            let a = &sub.adv;
            a.held.set(a.held.get().max(edge.saturating_sub(dsn)));
        }
    }

    /// Data sequence number of the first byte the LAN host receives.
    fn s_base(&self) -> u64 {
        self.remote_idsn
            .wrapping_add(1)
            .wrapping_add(self.s_shift as u64)
    }

    /// Data sequence number of the first byte of the LAN host's own data.
    pub fn c_base(&self) -> u64 {
        self.local_idsn
            .wrapping_add(1)
            .wrapping_add(self.c_dshift as u64)
    }

    /// Data sequence number of the byte the LAN host numbers `tsn` in the server's stream.
    pub fn dsn_of_tsn(&self, tsn: u32) -> u64 {
        let off = tsn.wrapping_sub(self.s_isn.wrapping_add(1));
        crate::wire::seq::expand32(self.data_ack_sent.max(self.s_base()) - self.s_base(), off)
            .wrapping_add(self.s_base())
    }

    /// The LAN host's number for the server's data sequence number `dsn`.
    pub fn tsn_of_dsn(&self, dsn: u64) -> u32 {
        (dsn.wrapping_sub(self.s_base()) as u32).wrapping_add(self.s_isn.wrapping_add(1))
    }

    /// Data sequence number of the LAN host's byte `seq` (its own stream).
    pub fn dsn_of_cseq(&self, seq: u32) -> u64 {
        let off = seq.wrapping_sub(self.c_isn.wrapping_add(1));
        crate::wire::seq::expand32(self.data_acked.max(self.c_base()) - self.c_base(), off)
            .wrapping_add(self.c_base())
    }

    /// The LAN host's sequence number for our data sequence number `dsn` (an acknowledgement
    /// of the Convert request alone acknowledges nothing of the host's).
    pub fn cseq_of_dsn(&self, dsn: u64) -> u32 {
        let dsn = dsn.max(self.c_base());
        (dsn.wrapping_sub(self.c_base()) as u32).wrapping_add(self.c_isn.wrapping_add(1))
    }

    /// Subflow `si`'s sequence number `ssn` relative to its ISN, as DSS mappings carry it.
    pub fn rel_ssn(&self, si: u8, ssn: u32) -> u32 {
        if si == 0 {
            self.ssn_rel(ssn)
        } else {
            self.sub(si).map_or(0, |s| ssn.wrapping_sub(s.isn))
        }
    }

    /// The subflow sequence number relative to the initial subflow's ISN, as DSS mappings
    /// carry it. A Convert request in the SYN does not count: Linux moves its relative SSN 1
    /// past the SYN's data (net/mptcp/fastopen.c).
    pub fn ssn_rel(&self, sseq: u32) -> u32 {
        sseq.wrapping_sub(self.c_isn)
            .wrapping_sub(self.c_shift - self.c_dshift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_merges_and_projects() {
        let mut t = RecvTable::default();
        assert!(t.insert(1000, 1000, 5000, 100));
        assert!(t.insert(1000, 1100, 5100, 100));
        assert_eq!(t.entries().len(), 1);
        // Out of order on the subflow: a hole at 1200..1300.
        assert!(t.insert(1000, 1300, 5300, 100));
        assert_eq!(t.entries().len(), 2);
        // The host has everything below DSN 5400 (the hole came over another subflow).
        assert_eq!(t.advance(1000, 5150, &[]), 1150);
        assert_eq!(t.advance(1150, 5400, &[]), 1200);
        let mut out = [(0, 0); 4];
        let n = t.sack_blocks(1200, 5400, &[], &mut out);
        assert_eq!(&out[..n], &[(1300, 1400)]);
    }

    #[test]
    fn recv_ignores_retransmissions() {
        let mut t = RecvTable::default();
        assert!(t.insert(0, 0, 0, 100));
        assert!(t.insert(0, 50, 50, 100));
        assert_eq!(
            t.entries(),
            &[RecvEntry {
                ssn: 0,
                dsn: 0,
                len: 150
            }]
        );
        assert!(t.insert(0, 0, 0, 150));
        assert_eq!(t.entries().len(), 1);
        // Below the subflow ACK: nothing to record.
        assert!(t.insert(200, 100, 100, 50));
        assert_eq!(t.entries().len(), 1);
    }

    #[test]
    fn recv_fills_a_hole_between_entries() {
        let mut t = RecvTable::default();
        assert!(t.insert(0, 0, 0, 10));
        assert!(t.insert(0, 20, 20, 10));
        assert!(t.insert(0, 5, 5, 20)); // overlaps both
        assert_eq!(
            t.entries(),
            &[RecvEntry {
                ssn: 0,
                dsn: 0,
                len: 30
            }]
        );
    }

    #[test]
    fn recv_wraps_sequence_numbers() {
        let mut t = RecvTable::default();
        let s = u32::MAX - 50;
        assert!(t.insert(s, s, 1 << 40, 100));
        assert_eq!(t.advance(s, (1 << 40) + 100, &[]), s.wrapping_add(100));
        assert!(t.is_empty());
    }

    #[test]
    fn sack_projection_of_data_level_blocks() {
        let mut t = RecvTable::default();
        // Subflow carries DSN 100..200 and 300..400 at SSN 0..100 and 100..200.
        assert!(t.insert(0, 0, 100, 100));
        assert!(t.insert(0, 100, 300, 100));
        // Host acked below 50 (nothing of ours), SACKs 300..400.
        let mut out = [(0, 0); 4];
        let n = t.sack_blocks(0, 50, &[(300, 400)], &mut out);
        assert_eq!(&out[..n], &[(100, 200)]);
        assert_eq!(t.advance(0, 50, &[(300, 400)]), 0);
        // The host SACKs 100..200 too: the subflow's first range is held, its ACK advances
        // over both ranges although the data-level ACK is still 50.
        assert_eq!(t.advance(0, 50, &[(100, 200), (300, 400)]), 200);
        assert!(t.is_empty());
    }

    #[test]
    fn a_subflow_blocked_by_bytes_beyond_the_hosts_window() {
        let mut t = RecvTable::default();
        // SSN 0..200 carries DSN 1000..1200, SSN 200..300 DSN 1300..1400.
        assert!(t.insert(0, 0, 1000, 200));
        assert!(t.insert(0, 200, 1300, 100));
        // The host holds up to DSN 1050; its window ends at 1150: the subflow waits for bytes
        // the host can take.
        assert_eq!(t.advance(0, 1050, &[]), 50);
        assert!(!t.blocked_beyond(50, 1150));
        // Its window ends at 1050: what the subflow waits for is beyond it.
        assert!(t.blocked_beyond(50, 1050));
        // A hole on the subflow itself (SSN 50 lost on the path) is not that.
        let mut t = RecvTable::default();
        assert!(t.insert(0, 100, 2000, 100));
        assert!(!t.blocked_beyond(0, 1000));
        assert!(!RecvTable::default().blocked_beyond(0, 0));
    }

    fn conn_with_sub() -> (Conn, Subflow) {
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let mut c = Conn::new(a, a, a, 0);
        c.c_scale = 4;
        c.c_win = 100;
        (c, Subflow::new(0, 1, 0))
    }

    #[test]
    fn advertise_before_the_host_acknowledged_anything() {
        let (c, s) = conn_with_sub();
        assert_eq!(c.advertise(&s, 1, 1, 500), (500, 100));
    }

    #[test]
    fn a_segment_that_does_not_move_the_subflow_keeps_the_edge() {
        let (mut c, s) = conn_with_sub();
        // The host's window ends at DSN 10_000 + 1600; a segment that moves the subflow on
        // (a new ACK) carries the latest DATA_ACK and the window in 16-byte units.
        c.c_edge = Some(11_600);
        assert_eq!(c.advertise(&s, 1, 100, 10_000), (10_000, 100));
        // The host acknowledged 800 more bytes without reading (its edge stays), and this
        // subflow's ACK did not move: the server would keep the window of 1600 it holds, so
        // the DATA_ACK is the one that window belongs to.
        assert_eq!(c.advertise(&s, 1, 100, 10_800), (10_000, 100));
        // The host read: the edge moves by 3200, a wider window is taken from any segment.
        c.c_edge = Some(14_800);
        assert_eq!(c.advertise(&s, 1, 100, 10_800), (10_800, 250));
        // The subflow moves on: the latest DATA_ACK with the window from there.
        assert_eq!(c.advertise(&s, 1, 200, 12_000), (12_000, 175));
        // The host acknowledged more, the subflow did not move: as before.
        assert_eq!(c.advertise(&s, 1, 200, 12_800), (12_000, 175));
        // Server data at DSN 11_000 (sent again) arrived here: sending it, the server widened
        // its window for the subflow to the data-level edge, 3800 from there.
        c.widened(&s, 11_000);
        assert_eq!(c.advertise(&s, 1, 200, 12_800), (11_000, 237));
    }

    #[test]
    fn tsecr_is_the_later_of_the_hosts_echo_and_the_subflows_ts_recent() {
        let (mut c, mut s) = conn_with_sub();
        s.ts_off = 1000;
        s.ts_recent = 9000;
        s.ts_left = 5000;
        c.c_tsecr = 7000; // 6000 on this subflow's clock: later than its TS.Recent
        assert_eq!(c.ecr_for(&s), 6000);
        // The host keeps echoing the segment before a hole; a retransmission filled this
        // subflow's ACK point meanwhile.
        s.ts_left = 8500;
        assert_eq!(c.ecr_for(&s), 8500);
        c.c_tsecr = 0;
        assert_eq!(c.ecr_for(&s), 9000);
    }

    #[test]
    fn map_cache_lookup() {
        let mut m = MapCache::default();
        m.add(MapEntry {
            ssn: 10,
            dsn: 1000,
            len: 100,
        });
        assert_eq!(m.lookup(60), Some((1050, 50)));
        assert_eq!(m.lookup(110), None);
    }
}
