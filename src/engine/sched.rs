//! Which subflow carries the LAN host's data. The SEND table of seed paper §3.3 maps the
//! host's bytes to (subflow, subflow sequence number), so that a retransmission keeps its
//! subflow and mapping. New data goes on the single active subflow (the paper's sender; a
//! subflow the server made a backup with MP_PRIO is left), or, with `scheduler weighted`
//! (explicit mode), on the subflow that delivers it soonest given what is queued there and its
//! measured delivery rate: both uplinks stay busy, their rates add up, and the bytes arrive
//! nearly in order.

use std::collections::VecDeque;

use super::conn::{Conn, SubState, SEG};
use crate::wire::seq::{seq_gt, seq_lt};

/// SEND table entries kept per connection (older ones are acknowledged at the data level).
pub const SEND_ENTRIES: usize = 4096;

/// A run of the LAN host's bytes sent contiguously on one subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendEntry {
    /// The host's sequence number of the first byte (a FIN counts as a byte).
    pub cseq: u32,
    pub len: u32,
    pub sub: u8,
    /// Absolute subflow sequence number of the first byte.
    pub ssn: u32,
}

#[derive(Clone, Debug, Default)]
pub struct SendState {
    pub entries: VecDeque<SendEntry>,
    /// The host's highest sequence number sent so far (end of the last entry).
    pub c_max: Option<u32>,
}

/// A piece of a LAN segment with the subflow it goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Offset into the segment (a FIN is at `len` of the payload).
    pub off: u32,
    pub len: u32,
    pub sub: u8,
    pub ssn: u32,
}

impl SendState {
    /// Forget what the peer acknowledged at the data level (host sequence numbers below `cack`).
    pub fn trim(&mut self, cack: u32) {
        while let Some(e) = self.entries.front_mut() {
            let end = e.cseq.wrapping_add(e.len);
            if !seq_gt(end, cack) {
                self.entries.pop_front();
            } else {
                if seq_lt(e.cseq, cack) {
                    let d = cack.wrapping_sub(e.cseq);
                    e.cseq = cack;
                    e.ssn = e.ssn.wrapping_add(d);
                    e.len -= d;
                }
                break;
            }
        }
    }

    /// The pieces of the host's bytes `[seq, seq+len)` that were sent before, with their
    /// subflow and subflow sequence number; written to `out`, returns the count and how many
    /// bytes from `seq` they cover (contiguously from the start).
    pub fn lookup(&self, seq: u32, len: u32, out: &mut [Piece]) -> usize {
        let mut n = 0;
        for e in &self.entries {
            let (s, t) = (e.cseq, e.cseq.wrapping_add(e.len));
            let (a, b) = (seq, seq.wrapping_add(len));
            let lo = if seq_gt(s, a) { s } else { a };
            let hi = if seq_lt(t, b) { t } else { b };
            if !seq_lt(lo, hi) {
                continue;
            }
            if n == out.len() {
                break;
            }
            out[n] = Piece {
                off: lo.wrapping_sub(seq),
                len: hi.wrapping_sub(lo),
                sub: e.sub,
                ssn: e.ssn.wrapping_add(lo.wrapping_sub(s)),
            };
            n += 1;
        }
        n
    }

    /// Record new bytes sent on `sub`; false when the table is full.
    pub fn record(&mut self, cseq: u32, len: u32, sub: u8, ssn: u32) -> bool {
        if let Some(l) = self.entries.back_mut() {
            if l.sub == sub
                && l.cseq.wrapping_add(l.len) == cseq
                && l.ssn.wrapping_add(l.len) == ssn
            {
                l.len += len;
                self.c_max = Some(cseq.wrapping_add(len));
                return true;
            }
        }
        if self.entries.len() >= SEND_ENTRIES {
            return false;
        }
        self.entries.push_back(SendEntry {
            cseq,
            len,
            sub,
            ssn,
        });
        self.c_max = Some(cseq.wrapping_add(len));
        true
    }

    /// SACK blocks for the LAN host (its sequence numbers): the bytes above the data-level
    /// ACK `cack` that the peer holds on some subflow although the data level cannot
    /// acknowledge them yet — below that subflow's ACK, or inside the SACK blocks the peer
    /// last sent on it. `held(sub)` gives a subflow's ACK and SACK blocks (`None`: gone, it
    /// holds nothing). Data sent early on a fast subflow is so shown as delivered while a
    /// slower subflow's is still on its way, and the host's loss detection (RACK, RFC 6675)
    /// does not take the fast subflow's bytes for lost (the mirror of paper §3.5's ACK
    /// projection). The highest ranges come first (RFC 2018: the most recent). Only the first
    /// [`HELD_SCAN`] entries are looked at; returns the count written to `out`.
    pub fn held_blocks<'a>(
        &self,
        cack: u32,
        held: impl Fn(u8) -> Option<(u32, &'a [(u32, u32)])>,
        out: &mut [(u32, u32)],
    ) -> usize {
        // Maximal runs in ascending order, then the last `out.len()` of them, reversed.
        let mut runs = [(0u32, 0u32); 16];
        let mut n = 0usize;
        let mut push = |lo: u32, hi: u32, n: &mut usize| {
            if !seq_lt(lo, hi) {
                return;
            }
            if *n > 0 && runs[(*n - 1) % runs.len()].1 == lo {
                runs[(*n - 1) % runs.len()].1 = hi;
            } else {
                runs[*n % runs.len()] = (lo, hi);
                *n += 1;
            }
        };
        for e in self
            .entries
            .iter()
            .filter(|e| seq_gt(e.cseq.wrapping_add(e.len), cack))
            .take(HELD_SCAN)
        {
            let Some((una, sacks)) = held(e.sub) else {
                continue;
            };
            let (s, t) = (e.ssn, e.ssn.wrapping_add(e.len));
            let host = |x: u32| e.cseq.wrapping_add(x.wrapping_sub(s));
            // Below the subflow's ACK, then the SACKed parts in SSN order.
            let mut pos = s;
            let acked_end = if seq_lt(una, t) { una } else { t };
            if seq_lt(pos, acked_end) {
                push(host(pos), host(acked_end), &mut n);
                pos = acked_end;
            }
            while seq_lt(pos, t) {
                let next = sacks
                    .iter()
                    .filter(|&&(_, r)| seq_gt(r, pos))
                    .map(|&(l, r)| (if seq_gt(l, pos) { l } else { pos }, r))
                    .min_by_key(|&(l, _)| l.wrapping_sub(pos));
                let Some((l, r)) = next else { break };
                if !seq_lt(l, t) {
                    break;
                }
                let r = if seq_lt(r, t) { r } else { t };
                push(host(l), host(r), &mut n);
                pos = r;
            }
        }
        // Clip the lowest run at cack (an entry may start below it).
        let kept = n.min(runs.len());
        let first = n - kept;
        let mut k = 0;
        for i in (first..n).rev() {
            if k == out.len() {
                break;
            }
            let (lo, hi) = runs[i % runs.len()];
            let lo = if seq_lt(lo, cack) { cack } else { lo };
            if seq_lt(lo, hi) {
                out[k] = (lo, hi);
                k += 1;
            }
        }
        k
    }
}

/// SEND table entries looked at for the host's SACK blocks.
pub const HELD_SCAN: usize = 128;

/// The paper's single active subflow: the first established one that is not a backup — the
/// server did not make it one (MP_PRIO, RFC 8684 §3.3.8) and neither did we (backup uplink,
/// degraded uplink, handover) — the initial subflow while it can; a backup one only when there
/// is nothing else.
pub fn active(conn: &Conn) -> u8 {
    let mut fallback = None;
    for (i, s) in conn.subs.iter().enumerate() {
        let Some(s) = s else { continue };
        if s.state != SubState::Established {
            continue;
        }
        if !s.is_backup() {
            return i as u8;
        }
        fallback.get_or_insert(i as u8);
    }
    fallback.unwrap_or(0)
}

/// The subflow that should carry `len` new bytes now: the one that delivers them soonest
/// (earliest completion first). On subflow i they arrive after what is already on its way
/// there has drained at its delivery rate, plus half its lowest RTT:
/// `(outstanding_i + len) / rate_i + min_rtt_i / 2`. The fast path is used until its queue
/// holds as much time as the slower path's, then both share so that their queues stay equal
/// in time: their rates add up, and bytes sent together arrive together (little reordering,
/// which the LAN host would take for losses). A subflow without a rate sample yet counts
/// its in-flight allowance per RTT. Backup subflows only when no other is established.
pub fn choose(conn: &Conn, len: u32) -> u8 {
    if !conn.weighted {
        return active(conn);
    }
    for backup in [false, true] {
        let mut best: Option<(u64, u8)> = None;
        for (i, s) in conn.subs.iter().enumerate() {
            let Some(s) = s else { continue };
            if s.state != SubState::Established || s.is_backup() != backup {
                continue;
            }
            let rtt = if s.min_rtt == 0 { 10_000 } else { s.min_rtt };
            let rate = if s.rate > 0 {
                s.rate
            } else {
                (s.cwnd.max(SEG) as u64 * 1_000_000 / s.srtt.max(rtt).max(1)).max(1)
            };
            let bytes = s.outstanding() as u64 + len as u64;
            let t = bytes * 1_000_000 / rate.max(1) + rtt / 2;
            if best.is_none_or(|(bt, _)| t < bt) {
                best = Some((t, i as u8));
            }
        }
        if let Some((_, i)) = best {
            return i;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::conn::Subflow;

    fn sub(rate: u64, min_rtt: u64, outstanding: u32) -> Subflow {
        let mut s = Subflow::new(0, 1, 1000);
        s.state = SubState::Established;
        s.rate = rate;
        s.min_rtt = min_rtt;
        s.snd_nxt = s.snd_una.wrapping_add(outstanding);
        s
    }

    #[test]
    fn earliest_completion_first() {
        // 20 and 10 Mbit/s (2.5 and 1.25 MB/s), 1 ms RTT each.
        let conn = |a: u32, b: u32| {
            let a0: std::net::SocketAddr = "10.0.0.1:1".parse().unwrap();
            let mut c = Conn::new(a0, a0, a0, 0);
            c.weighted = true;
            c.subs[0] = Some(sub(2_500_000, 1000, a));
            c.subs[1] = Some(sub(1_250_000, 1000, b));
            c
        };
        // Empty queues: the fast path.
        assert_eq!(choose(&conn(0, 0), 1400), 0);
        // The fast path holds 10 ms of data (25 KB), the slow one 4 ms (5 KB): the slow one.
        assert_eq!(choose(&conn(25_000, 5_000), 1400), 1);
        // Equal in time (20 KB vs 10 KB = 8 ms each): the fast one, by a hair (len/rate).
        assert_eq!(choose(&conn(20_000, 10_000), 1400), 0);
        // A backup subflow only when nothing else is established.
        let mut c = conn(1_000_000, 0);
        c.subs[1].as_mut().unwrap().local_backup = true;
        assert_eq!(choose(&c, 1400), 0);
        c.subs[0].as_mut().unwrap().state = SubState::Closed;
        assert_eq!(choose(&c, 1400), 1);
    }

    #[test]
    fn delivery_rate_sampled_and_decays() {
        let mut s = sub(0, 0, 0);
        s.snd_nxt = s.snd_una.wrapping_add(1_000_000);
        let una = s.snd_una;
        // 25 KB acked per 10 ms = 2.5 MB/s.
        for k in 1..=10u32 {
            s.on_ack(una.wrapping_add(k * 25_000), 10_000 * k as u64, &[]);
        }
        assert!((2_400_000..=2_600_000).contains(&s.rate), "{}", s.rate);
        // The path slows to a tenth: the estimate follows within a few samples.
        let una = s.snd_una;
        for k in 1..=40u32 {
            s.on_ack(
                una.wrapping_add(k * 2_500),
                100_000 + 10_000 * k as u64,
                &[],
            );
        }
        assert!(s.rate < 400_000, "{}", s.rate);
    }

    #[test]
    fn record_merge_lookup_trim() {
        let mut s = SendState::default();
        assert!(s.record(100, 50, 0, 1000));
        assert!(s.record(150, 50, 0, 1050));
        assert!(s.record(200, 50, 1, 7000));
        assert_eq!(s.entries.len(), 2);
        let mut out = [Piece {
            off: 0,
            len: 0,
            sub: 0,
            ssn: 0,
        }; 4];
        let n = s.lookup(180, 40, &mut out);
        assert_eq!(
            &out[..n],
            &[
                Piece {
                    off: 0,
                    len: 20,
                    sub: 0,
                    ssn: 1080
                },
                Piece {
                    off: 20,
                    len: 20,
                    sub: 1,
                    ssn: 7000
                }
            ]
        );
        // Subflow 1 SACKed 7010..7020; subflow 0 acked everything (1100).
        let mut r = [(0, 0); 4];
        let sacks1 = [(7010u32, 7020u32)];
        let n = s.held_blocks(
            100,
            |sub| match sub {
                0 => Some((1100, &[][..])),
                1 => Some((7000, &sacks1[..])),
                _ => None,
            },
            &mut r,
        );
        assert_eq!(&r[..n], &[(210, 220), (100, 200)]);
        s.trim(210);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(
            s.entries[0],
            SendEntry {
                cseq: 210,
                len: 40,
                sub: 1,
                ssn: 7010
            }
        );
    }
}
