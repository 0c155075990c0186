//! Packets from the LAN host: its SYN becomes an MP_CAPABLE SYN on the first uplink; on a
//! converted connection each segment becomes a segment of the initial subflow with a DSS
//! option, and its ACK is projected onto every subflow that contributed (paper §3.4–3.5).

use std::net::SocketAddr;

use super::conn::{Conn, ConnState, SubState, Subflow};
use super::emit;
use super::{sched, Ctx, Dest, Verdict};
use crate::wire::mptcp::{Dss, Mapping, MpCapable, MptcpOption, MPC_A, MPC_H};
use crate::wire::packet::{IpTcp, ACK, FIN, PSH, RST, SYN};
use crate::wire::tcpopt::{OptWriter, TcpOptions};
use crate::wire::{checksum, seq};

/// Bytes the converter may add to a LAN host's segment: MP_CAPABLE with data and checksum (24),
/// which is also more than a DSS with 32-bit DATA_ACK, 32-bit DSN and checksum (20).
pub const OPTION_OVERHEAD: u16 = 24;

/// The MP_CAPABLE SYN for a new connection (also its retransmissions), built from what the
/// LAN host offered in its SYN.
pub fn syn(ctx: &mut Ctx, conn: &Conn, window: u16, ttl: u8) -> bool {
    let Some(sub) = conn.sub(0) else { return false };
    let mut w = OptWriter::new();
    w.mss(
        conn.c_mss
            .min(ctx.mss_limit(sub.uplink, conn.remote.is_ipv6())),
    );
    if conn.c_sack {
        w.sack_perm();
    }
    if conn.c_ts {
        w.ts(conn.c_ts_recent, 0);
    }
    if let Some(ws) = conn.c_wscale {
        w.wscale(ws);
    }
    let flags = MPC_H | if ctx.cfg.checksum { MPC_A } else { 0 };
    emit::mptcp(
        &mut w,
        &MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags,
            sender_key: None,
            receiver_key: None,
            data_len: None,
            checksum: None,
        }),
    );
    ctx.counters.mp_capable_syn_tx += 1;
    let mut spec = ctx.spec_forged(conn, sub, conn.c_isn, 0, SYN);
    spec.window = window;
    spec.ttl = ttl.saturating_sub(1).max(1);
    // Explicit mode: the Convert request rides in the SYN, TFO-style (RFC 8803 §4).
    let (data, sum) = match &conn.convert {
        Some(c) => (&c.req[..c.req_len as usize], None),
        None => (&[][..], Some(0)),
    };
    emit::segment(
        ctx.tx,
        ctx.counters,
        Dest::Uplink(sub.uplink),
        &spec,
        &w,
        data,
        sum,
    )
}

/// Explicit mode, when the concentrator did not take the Convert request in the SYN: send it
/// as the first data of the initial subflow (RFC 8803 §4: the request then comes right after
/// the handshake), with the keys (MP_CAPABLE, implicit mapping DSN IDSN+1 ↔ SSN 1) until the
/// concentrator confirmed them.
pub fn send_request(ctx: &mut Ctx, conn: &mut Conn) {
    let (Some(c), Some(sub)) = (&conn.convert, conn.sub(0)) else {
        return;
    };
    let req = &c.req[..c.req_len as usize];
    let mut w = OptWriter::new();
    if conn.ts {
        w.ts(conn.c_ts_recent, conn.ecr_for(sub));
    }
    let psum = checksum::sum(req, 0);
    let dsn = conn.local_idsn.wrapping_add(1);
    let csum = conn.csum.then(|| dss_csum(dsn, 1, req.len() as u16, psum));
    let seq = conn.c_isn.wrapping_add(1);
    let (dack, win) = conn.advertise(sub, seq, sub.rcv_ack, conn.data_ack_sent);
    let opt = if conn.confirmed {
        MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: Some(dack & 0xffff_ffff),
            ack64: false,
            mapping: Some(Mapping {
                dsn: dsn & 0xffff_ffff,
                dsn64: false,
                ssn: 1,
                len: req.len() as u16,
                checksum: csum,
            }),
        })
    } else {
        MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags: MPC_H | if conn.csum { MPC_A } else { 0 },
            sender_key: Some(conn.local_key),
            receiver_key: Some(conn.remote_key),
            data_len: Some(req.len() as u16),
            checksum: csum,
        })
    };
    emit::mptcp(&mut w, &opt);
    let mut spec = ctx.spec_forged(conn, sub, seq, sub.rcv_ack, ACK | PSH);
    spec.window = win;
    emit::segment(
        ctx.tx,
        ctx.counters,
        Dest::Uplink(sub.uplink),
        &spec,
        &w,
        req,
        Some(psum),
    );
    if let Some(c) = conn.convert.as_mut() {
        c.req_sent = Some(ctx.now);
    }
}

/// Whether the Convert request still waits for the concentrator's acknowledgement (it was
/// not taken in the SYN).
pub fn request_pending(conn: &Conn) -> bool {
    conn.convert.as_ref().is_some_and(|c| !c.req_in_syn) && conn.data_acked < conn.c_base()
}

/// What the caller must do after [`packet`].
#[derive(Default)]
pub struct After {
    pub remove: bool,
}

/// A packet of an existing connection from the LAN host.
pub fn packet(ctx: &mut Ctx, conn: &mut Conn, pkt: &[u8], p: &IpTcp) -> (Verdict, After) {
    conn.last_seen = ctx.now;
    let mut after = After::default();
    match conn.state {
        ConnState::SynSent => {
            if p.flags & (SYN | ACK) == SYN {
                if let Some((val, _)) = TcpOptions::parse(p.options(pkt)).ts {
                    conn.c_ts_recent = val;
                }
                syn(ctx, conn, p.window, p.ttl);
            } else if p.flags & RST != 0 {
                after.remove = true;
            }
        }
        ConnState::Fallback => {
            if let Some(sub) = conn.sub(0) {
                let Some(src) = ctx.uplink_addr(sub.uplink, p.v6) else {
                    return (Verdict::Drop, after);
                };
                let src = SocketAddr::new(src, sub.port);
                emit::translate(
                    ctx.tx,
                    ctx.counters,
                    Dest::Uplink(sub.uplink),
                    pkt,
                    p,
                    src,
                    conn.server,
                );
            }
            note_close(ctx, conn, p, true);
            after.remove = p.flags & RST != 0;
        }
        ConnState::Mptcp => {
            if p.flags & RST != 0 {
                fastclose_all(ctx, conn);
                after.remove = true;
            } else if p.flags & SYN == 0 {
                converted(ctx, conn, pkt, p);
                note_close(ctx, conn, p, true);
            }
        }
    }
    (Verdict::Drop, after)
}

/// Track FINs for the linger timer (both directions closed → forget soon).
pub fn note_close(ctx: &mut Ctx, conn: &mut Conn, p: &IpTcp, from_lan: bool) {
    if p.flags & FIN != 0 {
        if from_lan {
            conn.c_fin = Some(p.seq.wrapping_add(p.payload_len as u32));
            // Its FIN again (our ACK of it was lost): it needs that ACK once more.
            conn.c_fin_acked = false;
        } else if conn.state == ConnState::Fallback {
            conn.s_data_fin = Some(0);
        }
    }
    if conn.c_fin.is_some() && conn.s_data_fin.is_some() && conn.linger.is_none() {
        conn.linger = Some(ctx.now + super::LINGER);
    }
}

/// Reset every subflow with MP_FASTCLOSE and MP_TCPRST: the LAN host reset its connection, or
/// we give it up (RFC 8684 §3.5: v1 sends MP_FASTCLOSE on a RST).
pub fn fastclose_all(ctx: &mut Ctx, conn: &Conn) {
    for sub in conn.subs() {
        if sub.state == SubState::Closed || sub.state == SubState::SynSent {
            continue;
        }
        let mut w = OptWriter::new();
        emit::mptcp(
            &mut w,
            &MptcpOption::MpFastclose {
                key: conn.remote_key,
            },
        );
        emit::mptcp(
            &mut w,
            &MptcpOption::MpTcpRst {
                reason: 0,
                transient: false,
            },
        );
        ctx.control(conn, sub, sub.snd_nxt, sub.rcv_ack, RST | ACK, None, &w);
        ctx.counters.mp_fastclose_tx += 1;
        ctx.counters.mp_rst_tx += 1;
    }
}

/// Convert one segment of an MPTCP connection (paper §3.3 forwarding, §3.4–3.5 ACKs).
fn converted(ctx: &mut Ctx, conn: &mut Conn, pkt: &[u8], p: &IpTcp) {
    let opts = TcpOptions::parse(p.options(pkt));
    if let Some((val, ecr)) = opts.ts {
        conn.c_ts_recent = val;
        conn.c_tsecr = ecr;
    }
    if request_pending(conn) && conn.convert.as_ref().is_some_and(|c| c.req_sent.is_none()) {
        send_request(ctx, conn);
    }
    conn.c_win = p.window;
    let payload = p.payload(pkt);
    let fin = p.flags & FIN != 0;

    // The LAN host's cumulative ACK and SACK blocks, in data sequence numbers.
    let dack = if p.flags & ACK != 0 {
        conn.dsn_of_tsn(p.ack)
    } else {
        conn.data_ack_sent
    };
    let dup = payload.is_empty() && !fin && p.ack == conn.c_ack;
    conn.c_ack = p.ack;
    if p.flags & ACK != 0 {
        conn.c_edge = Some(dack + ((p.window as u64) << conn.c_scale));
    }
    if dack > conn.data_ack_sent {
        conn.data_ack_sent = dack;
        conn.dack_at = ctx.now;
    }
    let mut dsacks = [(0u64, 0u64); 4];
    let nds = opts.sack_n.min(4);
    for (d, &(l, r)) in dsacks.iter_mut().zip(opts.sack[..nds].iter()) {
        *d = (conn.dsn_of_tsn(l), conn.dsn_of_tsn(r));
    }
    let dsacks = &dsacks[..nds];
    // Project onto every subflow (paper §3.5).
    let mut acks = [0u32; super::conn::MAX_SUBFLOWS];
    let mut advanced = [false; super::conn::MAX_SUBFLOWS];
    for (i, sub) in conn.subs.iter_mut().enumerate() {
        let Some(sub) = sub else { continue };
        if matches!(sub.state, SubState::SynSent | SubState::Closed) {
            continue;
        }
        // A host without SACK repeats its ACK when bytes above a hole arrive: everything
        // forwarded on the subflows is then taken as held (the LAN does not lose it), so the
        // server's subflows empty and it sends the missing data again — Linux re-sends lost
        // data only on a subflow with nothing outstanding. The data-level ACK stays the
        // host's own: what it misses is still sent again at the data level.
        let mut ack = if dup && !conn.sack {
            sub.recv.advance(sub.rcv_ack, u64::MAX, &[])
        } else {
            sub.recv.advance(sub.rcv_ack, dack, dsacks)
        };
        if sub.recv.is_empty() && sub.fin == Some(ack) {
            ack = ack.wrapping_add(1);
        }
        advanced[i] = ack != sub.rcv_ack;
        sub.rcv_ack = ack;
        acks[i] = ack;
    }

    let psum = p.payload_sum(pkt);
    let tsval = opts.ts.map(|t| t.0).unwrap_or(conn.c_ts_recent);
    let dlen = payload.len() as u32 + fin as u32;
    let mut sent_on = [false; super::conn::MAX_SUBFLOWS];
    if dlen > 0 {
        // New bytes go on the subflow the scheduler picks, bytes sent before where they went
        // (paper §3.3 SEND table).
        let mut pieces = [sched::Piece {
            off: 0,
            len: 0,
            sub: 0,
            ssn: 0,
        }; 8];
        let n = plan_pieces(ctx, conn, p.seq, dlen, &mut pieces);
        for pc in &pieces[..n] {
            let start = pc.off as usize;
            let end = (pc.off + pc.len) as usize;
            let fin_here = fin && end > payload.len();
            let data = &payload[start.min(payload.len())..end.min(payload.len())];
            let sum = if data.len() == payload.len() {
                psum
            } else {
                checksum::sum(data, 0)
            };
            let rel = conn.rel_ssn(pc.sub, pc.ssn);
            let seq = p.seq.wrapping_add(pc.off);
            let seg = Seg {
                sseq: pc.ssn,
                rel,
                cseq: seq,
                data,
                psum: sum,
                fin: fin_here,
            };
            emit_on(
                ctx,
                conn,
                pc.sub,
                &seg,
                dack,
                dsacks,
                acks[pc.sub as usize],
                p,
                tsval,
            );
            sent_on[pc.sub as usize] = true;
            if fin_here {
                if let Some(s) = conn.sub_mut(pc.sub) {
                    s.fin_sent = true;
                }
            }
        }
    } else if let Some((ai, sa)) = ack_subflow(conn) {
        // A pure ACK goes on the initial subflow (or the active one when it is gone), at its
        // next sequence number.
        let sseq = sa.snd_nxt;
        let seg = Seg {
            sseq,
            rel: conn.ssn_rel(sseq),
            cseq: p.seq,
            data: payload,
            psum,
            fin,
        };
        emit_on(
            ctx,
            conn,
            ai,
            &seg,
            dack,
            dsacks,
            acks[ai as usize],
            p,
            tsval,
        );
        sent_on[ai as usize] = true;
    }

    // The other subflows: a pure ACK on each one whose ACK advanced (it contributed to the
    // increment), and the duplicate ACKs with SACK to those with data outstanding (§3.4).
    for i in 0..super::conn::MAX_SUBFLOWS {
        if sent_on[i] {
            continue;
        }
        let Some(sub) = conn.sub(i as u8) else {
            continue;
        };
        if sub.state != SubState::Established {
            continue;
        }
        let mut blocks = [(0u32, 0u32); 4];
        let n = if conn.sack {
            sub.recv.sack_blocks(sub.rcv_ack, dack, dsacks, &mut blocks)
        } else {
            0
        };
        if !(advanced[i] || dup && !sub.recv.is_empty() || n > 0 && payload.is_empty()) {
            continue;
        }
        let fin_now = !sub.fin_sent && sub.fin.map(|f| f.wrapping_add(1)) == Some(acks[i]);
        pure_ack(ctx, conn, sub, dack, &blocks[..n], fin_now);
        if fin_now {
            if let Some(sub) = conn.sub_mut(i as u8) {
                sub.fin_sent = true;
                sub.snd_nxt = sub.snd_nxt.wrapping_add(1);
            }
        }
    }
}

/// The subflow that carries the LAN host's pure ACKs: the initial one while it is up, else
/// the active one.
pub fn ack_subflow(conn: &Conn) -> Option<(u8, &Subflow)> {
    let i = match conn.sub(0) {
        Some(s) if s.state != SubState::Closed => 0,
        _ => sched::active(conn),
    };
    conn.sub(i)
        .filter(|s| s.state != SubState::Closed)
        .map(|s| (i, s))
}

/// One piece of a LAN host's segment, placed on a subflow.
struct Seg<'a> {
    /// Absolute and relative (as DSS mappings carry it) subflow sequence number.
    sseq: u32,
    rel: u32,
    /// The host's sequence number of its first byte.
    cseq: u32,
    data: &'a [u8],
    psum: u32,
    fin: bool,
}

/// Send `seg` on subflow `si` with the keys (until confirmed, RFC 8684 §3.1) or a DSS mapping,
/// the data-level ACK, and the subflow's projected ACK and SACK blocks.
#[allow(clippy::too_many_arguments)]
fn emit_on(
    ctx: &mut Ctx,
    conn: &Conn,
    si: u8,
    seg: &Seg,
    dack: u64,
    dsacks: &[(u64, u64)],
    ack: u32,
    p: &IpTcp,
    tsval: u32,
) {
    let Some(sub) = conn.sub(si) else { return };
    let mut w = OptWriter::new();
    if conn.ts {
        w.ts(tsval, conn.ecr_for(sub));
    }
    let (payload, fin) = (seg.data, seg.fin);
    let dlen = payload.len() as u32 + fin as u32;
    let (adv_dack, win) = conn.advertise(sub, seg.sseq, ack, dack);
    if !conn.confirmed && !fin && si == 0 && (payload.is_empty() || seg.rel == 1) {
        // Keys until the server's first DSS: on pure ACKs the 20-byte form, on the first data
        // the 22/24-byte form, which maps DSN IDSN+1 to SSN 1.
        let (data_len, csum) = if payload.is_empty() {
            (None, None)
        } else {
            let dsn = conn.local_idsn.wrapping_add(1);
            let c = conn
                .csum
                .then(|| dss_csum(dsn, 1, payload.len() as u16, seg.psum));
            (Some(payload.len() as u16), c)
        };
        let flags = MPC_H | if conn.csum { MPC_A } else { 0 };
        emit::mptcp(
            &mut w,
            &MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags,
                sender_key: Some(conn.local_key),
                receiver_key: Some(conn.remote_key),
                data_len,
                checksum: csum,
            }),
        );
    } else {
        let mapping = (dlen > 0).then(|| {
            let dsn = conn.dsn_of_cseq(seg.cseq);
            // A DATA_FIN alone has subflow sequence number 0 (RFC 8684 §3.3.3).
            let ssn = if payload.is_empty() { 0 } else { seg.rel };
            Mapping {
                dsn: dsn & 0xffff_ffff,
                dsn64: false,
                ssn,
                len: dlen as u16,
                checksum: conn.csum.then(|| dss_csum(dsn, ssn, dlen as u16, seg.psum)),
            }
        });
        emit::mptcp(
            &mut w,
            &MptcpOption::Dss(Dss {
                data_fin: fin,
                data_ack: Some(adv_dack & 0xffff_ffff),
                ack64: false,
                mapping,
            }),
        );
    }
    if conn.sack {
        let mut blocks = [(0u32, 0u32); 4];
        let n = sub.recv.sack_blocks(sub.rcv_ack, dack, dsacks, &mut blocks);
        w.sack(&blocks[..n]);
    }
    let flags = (p.flags & !FIN) | if fin { FIN } else { 0 };
    let spec = ctx.spec_to_server(conn, sub, seg.sseq, ack, flags, win, p);
    let dest = Dest::Uplink(sub.uplink);
    emit::segment(
        ctx.tx,
        ctx.counters,
        dest,
        &spec,
        &w,
        payload,
        Some(seg.psum),
    );
}

/// Weighted mode: where the bytes `[seq, seq+len)` of the LAN host go. Bytes sent before keep
/// their subflow and subflow sequence number; new bytes go on the subflow [`sched::choose`]
/// picks, which advances its `snd_nxt` and may start an RTT sample. Bytes the peer has already
/// acknowledged at the data level are left out.
fn plan_pieces(
    ctx: &mut Ctx,
    conn: &mut Conn,
    seq: u32,
    len: u32,
    out: &mut [sched::Piece],
) -> usize {
    let Some(mut send) = conn.send.take() else {
        return 0;
    };
    let cack = conn.cseq_of_dsn(conn.data_acked);
    send.trim(cack);
    let mut n = send.lookup(seq, len, out);
    // Bytes sent on a subflow that is gone go again on a live one ("or on the active
    // subflow when the original is gone", paper §3.3): treat them as not yet sent.
    let mut k = 0;
    for i in 0..n {
        let live = conn
            .sub(out[i].sub)
            .is_some_and(|s| s.state == SubState::Established);
        if live {
            out[k] = out[i];
            k += 1;
        }
    }
    n = k;
    // Uncovered parts (new bytes, or a hole the host fills late) get a subflow now.
    out[..n].sort_unstable_by_key(|pc| pc.off);
    let mut pos = 0u32;
    let mut gaps = [(0u32, 0u32); 8];
    let mut ng = 0;
    for pc in &out[..n] {
        if pc.off > pos && ng < gaps.len() {
            gaps[ng] = (pos, pc.off - pos);
            ng += 1;
        }
        pos = pos.max(pc.off + pc.len);
    }
    if pos < len && ng < gaps.len() {
        gaps[ng] = (pos, len - pos);
        ng += 1;
    }
    for &(off, glen) in &gaps[..ng] {
        let c = seq.wrapping_add(off);
        let (off, glen) = if seq::seq_lt(c, cack) {
            let skip = cack.wrapping_sub(c).min(glen);
            (off + skip, glen - skip)
        } else {
            (off, glen)
        };
        if glen == 0 || n == out.len() {
            continue;
        }
        let si = sched::choose(conn, glen);
        // No established subflow (every uplink down): nothing goes out, the host sends the
        // bytes again later.
        let Some(sub) = conn
            .sub_mut(si)
            .filter(|s| s.state == SubState::Established)
        else {
            continue;
        };
        let ssn = sub.snd_nxt;
        sub.snd_nxt = ssn.wrapping_add(glen);
        if sub.rtt_probe.is_none() {
            sub.rtt_probe = Some((sub.snd_nxt, ctx.now));
        }
        if !send.record(seq.wrapping_add(off), glen, si, ssn) {
            ctx.counters.send_table_full += 1;
        }
        out[n] = sched::Piece {
            off,
            len: glen,
            sub: si,
            ssn,
        };
        n += 1;
    }
    conn.send = Some(send);
    n
}

/// A pure ACK on a join subflow carrying the data-level ACK (and our FIN when the server
/// closed the subflow and everything on it has been delivered).
pub fn pure_ack(
    ctx: &mut Ctx,
    conn: &Conn,
    sub: &Subflow,
    dack: u64,
    sacks: &[(u32, u32)],
    fin: bool,
) {
    let mut w = OptWriter::new();
    if conn.ts {
        w.ts(conn.c_ts_recent, conn.ecr_for(sub));
    }
    let (dack, win) = conn.advertise(sub, sub.snd_nxt, sub.rcv_ack, dack);
    emit::mptcp(
        &mut w,
        &MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: Some(dack & 0xffff_ffff),
            ack64: false,
            mapping: None,
        }),
    );
    w.sack(sacks);
    let flags = ACK | if fin { FIN } else { 0 };
    ctx.control(conn, sub, sub.snd_nxt, sub.rcv_ack, flags, Some(win), &w);
}

/// Zeros for [`plug_orphans`].
static FILLER: [u8; PLUG_SEG as usize] = [0; PLUG_SEG as usize];
/// Largest filler segment, and filler segments per call.
const PLUG_SEG: u32 = 1200;
const PLUG_MAX: usize = 16;

/// A hole in subflow `si`'s sequence space that no byte of the LAN host's maps to any more
/// (its bytes were sent there, lost, and then acknowledged at the data level through another
/// subflow — typically around an uplink's death — so the host never sends them again) would
/// stall the subflow for good: the peer passes a subflow's data on only in order. Such a hole
/// (below the first SACK block the peer sent on the subflow) is filled with zeros mapped to
/// data sequence numbers the peer has already acknowledged, which it takes on the subflow and
/// drops as old data (RFC 8684 §3.3: data is delivered once, by its DSN). At most once per
/// RTT for the same hole.
pub fn plug_orphans(ctx: &mut Ctx, conn: &mut Conn, si: u8) {
    let now = ctx.now;
    let Some(sub) = conn.sub(si).filter(|s| s.state == SubState::Established) else {
        return;
    };
    let lo = sub.snd_una;
    let Some(hi) = sub
        .sacked()
        .iter()
        .map(|&(l, _)| l)
        .filter(|&l| seq::seq_gt(l, lo))
        .min_by_key(|&l| l.wrapping_sub(lo))
    else {
        return;
    };
    let wait = (2 * sub.srtt).max(50_000);
    if sub
        .plugged
        .is_some_and(|(at, t)| at == lo && now.saturating_sub(t) < wait)
    {
        return;
    }
    // The parts of [lo, hi) that no SEND entry of this subflow covers (its entries are in
    // ascending subflow sequence order).
    let mut holes = [(0u32, 0u32); PLUG_MAX];
    let mut n = 0;
    let mut pos = lo;
    if let Some(send) = &conn.send {
        for e in send.entries.iter().filter(|e| e.sub == si) {
            let (a, b) = (e.ssn, e.ssn.wrapping_add(e.len));
            if !seq::seq_gt(b, pos) {
                continue;
            }
            if !seq::seq_lt(a, hi) {
                break;
            }
            if seq::seq_lt(pos, a) && n < holes.len() {
                holes[n] = (pos, a);
                n += 1;
            }
            pos = b;
        }
    }
    if seq::seq_lt(pos, hi) && n < holes.len() {
        holes[n] = (pos, hi);
        n += 1;
    }
    if n == 0 {
        return;
    }
    let total: u64 = holes[..n]
        .iter()
        .map(|&(a, b)| b.wrapping_sub(a) as u64)
        .sum();
    let Some(base) = conn
        .data_acked
        .checked_sub(total)
        .filter(|&b| b >= conn.c_base())
    else {
        return;
    };
    let mut dsn = base;
    let mut sent = 0;
    'outer: for &(a, b) in &holes[..n] {
        let mut ssn = a;
        while seq::seq_lt(ssn, b) {
            if sent == PLUG_MAX {
                break 'outer;
            }
            let len = b.wrapping_sub(ssn).min(PLUG_SEG);
            let Some(sub) = conn.sub(si) else { return };
            let rel = conn.rel_ssn(si, ssn);
            let mut w = OptWriter::new();
            if conn.ts {
                w.ts(conn.c_ts_recent, conn.ecr_for(sub));
            }
            let (dack, win) = conn.advertise(sub, ssn, sub.rcv_ack, conn.data_ack_sent);
            emit::mptcp(
                &mut w,
                &MptcpOption::Dss(Dss {
                    data_fin: false,
                    data_ack: Some(dack & 0xffff_ffff),
                    ack64: false,
                    mapping: Some(Mapping {
                        dsn: dsn & 0xffff_ffff,
                        dsn64: false,
                        ssn: rel,
                        len: len as u16,
                        checksum: conn.csum.then(|| dss_csum(dsn, rel, len as u16, 0)),
                    }),
                }),
            );
            let mut spec = ctx.spec_forged(conn, sub, ssn, sub.rcv_ack, ACK);
            spec.window = win;
            emit::segment(
                ctx.tx,
                ctx.counters,
                Dest::Uplink(sub.uplink),
                &spec,
                &w,
                &FILLER[..len as usize],
                Some(0),
            );
            ctx.counters.subflow_hole_plugged += 1;
            ssn = ssn.wrapping_add(len);
            dsn += len as u64;
            sent += 1;
        }
    }
    if let Some(s) = conn.sub_mut(si) {
        s.plugged = Some((lo, now));
    }
}

/// DSS checksum (RFC 8684 §3.3.1): pseudo-header of 64-bit DSN, 32-bit relative SSN, 16-bit
/// data-level length and 16 zero bits, plus the payload (its sum is given).
pub fn dss_csum(dsn: u64, ssn: u32, len: u16, payload_sum: u32) -> u16 {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&dsn.to_be_bytes());
    h[8..12].copy_from_slice(&ssn.to_be_bytes());
    h[12..14].copy_from_slice(&len.to_be_bytes());
    !checksum::fold(checksum::sum(&h, payload_sum))
}

/// A new subflow record for a join.
pub fn new_join(ctx: &mut Ctx, uplink: u8, port: u16) -> Subflow {
    let mut s = Subflow::new(uplink, port, ctx.rng.u32());
    s.nonce = ctx.rng.u32();
    s
}
