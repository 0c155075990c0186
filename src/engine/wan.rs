//! Packets from the servers, on any subflow: the SYN/ACK decides between MPTCP and plain TCP;
//! join handshakes are verified and completed; data is forwarded to the LAN host at once at the
//! place its DSS mapping gives it in the data stream (multipath reception, paper §3.3).

use super::conn::{Conn, ConnState, MapEntry, SubState};
use super::emit;
use super::lan::{self, OPTION_OVERHEAD};
use super::sched;
use super::{Ctx, Dest, Verdict};
use crate::wire::crypto;
use crate::wire::mptcp::{AddAddr, MpJoin, MptcpOption, MPC_A};
use crate::wire::packet::{IpTcp, TcpSpec, ACK, FIN, PSH, RST, SYN};
use crate::wire::seq;
use crate::wire::tcpopt::{OptWriter, TcpOptions};

/// What the caller must do after [`packet`].
#[derive(Default)]
pub struct After {
    pub remove: bool,
    /// The server confirmed our key: open the joins now.
    pub start_joins: bool,
    /// Forget this subflow (a join that failed).
    pub drop_sub: bool,
    /// A join became established: the subflows' priorities may have to change.
    pub joined: bool,
}

pub fn packet(ctx: &mut Ctx, conn: &mut Conn, si: u8, pkt: &[u8], p: &IpTcp) -> (Verdict, After) {
    let mut after = After::default();
    conn.last_seen = ctx.now;
    let opts = TcpOptions::parse(p.options(pkt));
    if opts.malformed {
        ctx.counters.opt_malformed += 1;
    }
    match conn.state {
        ConnState::SynSent => {
            if si == 0 && p.flags & (SYN | ACK) == SYN | ACK {
                after.remove = !synack(ctx, conn, &opts, p);
            } else if si == 0 && p.flags & (SYN | ACK | RST) == ACK {
                // An ACK to our SYN: the server still holds an old connection on this 4-tuple
                // in TIME-WAIT. Reset it with the sequence number it expects, as a TCP in
                // SYN-SENT does (RFC 9293 §3.10.7.3), and send the SYN again.
                if let Some(s0) = conn.sub(0) {
                    ctx.control(conn, s0, p.ack, 0, RST, None, &OptWriter::new());
                    lan::syn(ctx, conn, conn.c_win, 64);
                }
            } else if p.flags & RST != 0 {
                to_client_translated(ctx, conn, pkt, p);
                after.remove = true;
            }
        }
        ConnState::Fallback => {
            to_client_translated(ctx, conn, pkt, p);
            lan::note_close(ctx, conn, p, false);
            after.remove = p.flags & RST != 0;
        }
        ConnState::Mptcp => mptcp(ctx, conn, si, pkt, p, &opts, &mut after),
    }
    (Verdict::Drop, after)
}

fn to_client_translated(ctx: &mut Ctx, conn: &Conn, pkt: &[u8], p: &IpTcp) {
    emit::translate(
        ctx.tx,
        ctx.counters,
        Dest::Lan,
        pkt,
        p,
        conn.server,
        conn.client,
    );
}

/// The SYN/ACK of the initial subflow: MP_CAPABLE → converted; none → plain TCP (RFC 8684
/// §3.7). Either way the LAN host gets a SYN/ACK with the server's sequence numbers.
/// Returns false when the connection cannot go on (explicit mode without MPTCP).
fn synack(ctx: &mut Ctx, conn: &mut Conn, opts: &TcpOptions, p: &IpTcp) -> bool {
    let mpc = opts.mptcp[..opts.mptcp_n]
        .iter()
        .find_map(|o| match MptcpOption::parse(o) {
            Ok(MptcpOption::MpCapable(m)) if m.version == 1 => m.sender_key.map(|k| (k, m.flags)),
            _ => None,
        });
    conn.s_isn = p.seq;
    conn.ts = conn.c_ts && opts.ts.is_some();
    conn.sack = conn.c_sack && opts.sack_perm;
    let ws = if conn.c_wscale.is_some() {
        opts.wscale
    } else {
        None
    };
    conn.s_wscale = ws.unwrap_or(0);
    // Both SYNs had a scale: the host's windows are scaled from now on (RFC 7323 §2.2).
    conn.c_scale = ws.and(conn.c_wscale).unwrap_or(0);
    let mut mss = opts.mss.unwrap_or(536).min(ctx.mss_limit(0, p.v6));
    match mpc {
        Some((key, flags)) => {
            conn.state = ConnState::Mptcp;
            conn.remote_key = key;
            let (token, idsn) = crypto::token_idsn(key);
            conn.remote_token = token;
            conn.remote_idsn = idsn;
            conn.csum = ctx.cfg.checksum || flags & MPC_A != 0;
            conn.data_ack_sent = idsn.wrapping_add(1);
            ctx.counters.mp_capable_synack_rx += 1;
            ctx.counters.conn_converted += 1;
            mss = mss.saturating_sub(OPTION_OVERHEAD).max(256);
        }
        None if conn.convert.is_some() => {
            // The concentrator always speaks MPTCP: MPTCP options were stripped on the way.
            // Relaying the Convert protocol over plain TCP is not supported: refuse promptly.
            ctx.counters.mp_capable_fallback_synack += 1;
            log::warn!(
                "{} → {}: the concentrator {} answered without MP_CAPABLE (a middlebox strips MPTCP?); connection reset",
                conn.client,
                conn.server,
                conn.remote
            );
            if let Some(s0) = conn.sub(0) {
                ctx.control(conn, s0, p.ack, 0, RST, None, &OptWriter::new());
            }
            conn.c_ack = conn.s_isn.wrapping_add(1);
            reset_client(ctx, conn, p.ttl);
            return false;
        }
        None => {
            conn.state = ConnState::Fallback;
            ctx.counters.mp_capable_fallback_synack += 1;
            ctx.counters.conn_fallback += 1;
        }
    }
    // Explicit mode: did the concentrator take the Convert request in our SYN?
    let c_isn = conn.c_isn;
    let c_shift = conn.c_shift;
    if let Some(c) = conn.convert.as_mut() {
        c.req_in_syn = p.ack == c_isn.wrapping_add(1).wrapping_add(c_shift);
        if c.req_in_syn {
            conn.c_dshift = 0;
        }
    }
    let s_wscale = conn.s_wscale;
    let first = conn.c_isn.wrapping_add(1).wrapping_add(conn.c_shift);
    if let Some(sub) = conn.sub_mut(0) {
        // Our next byte on the subflow, and what the server has (the SYN, and the Convert
        // request if it rode in the SYN).
        sub.snd_nxt = first;
        sub.snd_una = p.ack;
        sub.state = SubState::Established;
        sub.risn = p.seq;
        sub.rcv_ack = p.seq.wrapping_add(1);
        sub.wscale = s_wscale;
        if let Some((val, _)) = opts.ts {
            sub.ts_recent = val;
            sub.ts_left = val;
        }
    }
    let mut w = OptWriter::new();
    w.mss(mss);
    if conn.sack {
        w.sack_perm();
    }
    if let (true, Some((val, ecr))) = (conn.ts, opts.ts) {
        conn.ts_to_client = val;
        w.ts(val, ecr);
    }
    if let Some(ws) = ws {
        w.wscale(ws);
    }
    let spec = ctx.spec_to_client(
        conn,
        p.seq,
        conn.c_isn.wrapping_add(1),
        SYN | ACK,
        p.window,
        p.ttl,
    );
    emit::segment(ctx.tx, ctx.counters, Dest::Lan, &spec, &w, &[], Some(0));
    true
}

fn mptcp(
    ctx: &mut Ctx,
    conn: &mut Conn,
    si: u8,
    pkt: &[u8],
    p: &IpTcp,
    opts: &TcpOptions,
    after: &mut After,
) {
    let Some(state) = conn.sub(si).map(|s| s.state) else {
        return;
    };
    if p.flags & RST != 0 {
        let fastclose = opts.mptcp[..opts.mptcp_n]
            .iter()
            .any(|o| matches!(MptcpOption::parse(o), Ok(MptcpOption::MpFastclose { .. })));
        if fastclose {
            ctx.counters.mp_fastclose_rx += 1;
        }
        let reason = opts.mptcp[..opts.mptcp_n]
            .iter()
            .find_map(|o| match MptcpOption::parse(o) {
                Ok(MptcpOption::MpTcpRst { reason, .. }) => Some(reason),
                _ => None,
            });
        // A RST without MP_FASTCLOSE closes only its subflow (RFC 8684 §3.3.6, §3.6): the
        // connection goes on over the others while one is established.
        let others = conn.subs.iter().enumerate().any(|(i, s)| {
            i != si as usize && s.as_ref().is_some_and(|s| s.state == SubState::Established)
        });
        if fastclose || !others {
            // The connection is gone: reset the LAN host, and the joins.
            reset_client(ctx, conn, p.ttl);
            reset_joins(ctx, conn);
            after.remove = true;
        } else {
            // After both DATA_FINs a peer may reset what is left: not news.
            let level = if conn.linger.is_some() {
                log::Level::Debug
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "{} → {}: subflow on uplink {} reset by the peer (MP_TCPRST reason {:?}); going on over the others",
                conn.client,
                conn.server,
                conn.sub(si).map_or(0, |s| s.uplink),
                reason
            );
            ctx.counters.subflow_reset_rx += 1;
            after.drop_sub = true;
        }
        return;
    }
    if state == SubState::SynSent {
        if p.flags & (SYN | ACK) == SYN | ACK {
            join_synack(ctx, conn, si, opts, p, after);
        }
        return;
    }
    if p.flags & SYN != 0 {
        // A retransmitted SYN/ACK: our ACK was lost. Answer it again.
        if si == 0 {
            return;
        }
        if let Some(sub) = conn.sub(si) {
            join_third_ack(ctx, conn, sub);
        }
        return;
    }
    if state == SubState::AckSent {
        if let Some(sub) = conn.sub_mut(si) {
            sub.state = SubState::Established;
            sub.timer = None;
        }
        ctx.counters.mp_join_ack_rx += 1;
        after.joined = true;
    }
    if let (Some(sub), Some((val, _))) = (conn.sub_mut(si), opts.ts) {
        sub.ts_recent = val;
        if seq::seq_le(p.seq, sub.rcv_ack) && seq::seq_ge(val, sub.ts_left) {
            sub.ts_left = val;
        }
    }
    let now = ctx.now;
    let mut sub_acked = false;
    if let Some(sub) = conn.sub_mut(si).filter(|_| p.flags & ACK != 0) {
        sub_acked = sub.on_ack(p.ack, now, opts.sack_blocks());
    }

    // MPTCP options of this segment.
    let mut mapping = None;
    let mut data_fin = false;
    let mut data_ack_moved = false;
    let mut had_dss = false;
    for o in &opts.mptcp[..opts.mptcp_n] {
        let Ok(opt) = MptcpOption::parse(o) else {
            ctx.counters.opt_malformed += 1;
            continue;
        };
        match opt {
            MptcpOption::Dss(d) => {
                had_dss = true;
                if let Some(a) = d.data_ack {
                    let a = if d.ack64 {
                        a
                    } else {
                        seq::expand32(conn.data_acked, a as u32)
                    };
                    if a > conn.data_acked {
                        conn.data_acked = a;
                        data_ack_moved = true;
                    }
                }
                if let Some(m) = d.mapping {
                    let dsn = if m.dsn64 {
                        m.dsn
                    } else {
                        seq::expand32(conn.data_ack_sent, m.dsn as u32)
                    };
                    if m.len == 0 {
                        ctx.counters.infinite_map_rx += 1;
                    } else {
                        mapping = Some((dsn, m.ssn, m.len));
                    }
                }
                data_fin |= d.data_fin;
            }
            MptcpOption::AddAddr(a) if !a.echo => add_addr(ctx, conn, si, &a),
            MptcpOption::RemoveAddr { .. } => ctx.counters.rm_addr += 1,
            MptcpOption::MpPrio { backup } => {
                ctx.counters.mp_prio_rx += 1;
                if let Some(sub) = conn.sub_mut(si) {
                    sub.backup = backup;
                }
            }
            MptcpOption::MpFail { .. } => ctx.counters.mp_fail_rx += 1,
            _ => {}
        }
    }
    if conn.sub(si).is_some_and(|s| s.sacked_n > 0) {
        lan::plug_orphans(ctx, conn, si);
    }
    if had_dss && !conn.confirmed {
        conn.confirmed = true;
        // Explicit mode: joins only once the concentrator accepted (a refused connection is
        // closed by it, and a join then only delays its Error reply).
        after.start_joins = conn.convert.as_ref().is_none_or(|c| c.reply_done);
    }
    if had_dss {
        ctx.counters.dss_rx += (p.payload_len > 0) as u64;
    }

    let Some(sub) = conn.sub_mut(si) else { return };
    if let Some((dsn, ssn, len)) = mapping {
        if ssn == 0 && data_fin && len == 1 {
            // DATA_FIN without data (RFC 8684 §3.3.3).
        } else {
            sub.maps.add(MapEntry {
                ssn: sub.risn.wrapping_add(ssn),
                dsn,
                len: len as u32,
            });
        }
        if data_fin {
            let fin_dsn = dsn + len as u64 - 1;
            if conn.s_data_fin.is_none() {
                ctx.counters.data_fin_rx += 1;
            }
            conn.s_data_fin = Some(fin_dsn);
        }
    }
    let Some(sub) = conn.sub_mut(si) else { return };
    if p.flags & FIN != 0 {
        sub.fin = Some(p.seq.wrapping_add(p.payload_len as u32));
    }

    let payload = p.payload(pkt);
    if !payload.is_empty() {
        let Some((dsn, covered)) = sub.maps.lookup(p.seq) else {
            ctx.counters.dss_no_mapping += 1;
            return;
        };
        let n = payload.len().min(covered as usize);
        // Explicit mode: the concentrator's reply comes first in its stream and is not the
        // LAN host's (RFC 8803 §4).
        let mut skip = 0;
        if conn.convert.as_ref().is_some_and(|c| !c.reply_done) {
            match take_reply(conn, dsn, &payload[..n]) {
                Reply::OutOfOrder => return, // not recorded: the server sends it again
                Reply::More(k) => skip = k,
                Reply::Done(k) => {
                    skip = k;
                    after.start_joins = conn.confirmed;
                    if let Some((code, meaning)) = reply_error(conn) {
                        log::info!(
                            "{} → {}: the concentrator refused: error {code} ({meaning}); the LAN host is reset",
                            conn.client,
                            conn.server
                        );
                        refused(ctx, conn, p.ttl, after);
                        return;
                    }
                }
                Reply::Bad => {
                    log::warn!(
                        "{} → {}: the concentrator's reply is not a Convert message; the LAN host is reset",
                        conn.client,
                        conn.server
                    );
                    refused(ctx, conn, p.ttl, after);
                    return;
                }
            }
        }
        if let Some(sub) = conn.sub(si) {
            conn.widened(sub, dsn);
        }
        let Some(sub) = conn.sub_mut(si) else { return };
        if !sub.recv.insert(sub.rcv_ack, p.seq, dsn, n as u32) {
            ctx.counters.recv_table_full += 1;
            return;
        }
        if skip > 0 && conn.convert.as_ref().is_some_and(|c| c.reply_done) {
            // Acknowledge the reply ourselves: the LAN host never sees it.
            let base = conn.remote_idsn.wrapping_add(1) + conn.s_shift as u64;
            if base > conn.data_ack_sent {
                conn.data_ack_sent = base;
            }
            if let Some(sub) = conn.sub_mut(si) {
                sub.rcv_ack = sub.recv.advance(sub.rcv_ack, base, &[]);
            }
            if let Some(sub) = conn.sub(si) {
                lan::pure_ack(ctx, conn, sub, base, &[], false);
            }
        }
        if skip < n {
            let (data, psum) = if n == payload.len() && skip == 0 {
                (payload, Some(p.payload_sum(pkt)))
            } else {
                (&payload[skip..n], None)
            };
            let start = dsn + skip as u64;
            let fin = conn.s_data_fin == Some(start + data.len() as u64);
            data_to_client(ctx, conn, si, start, data, psum, fin, p, false);
        }
    } else if let Some(fd) = conn.s_data_fin.filter(|_| data_fin) {
        // A bare DATA_FIN: the LAN host gets a FIN at its place in the stream.
        data_to_client(ctx, conn, si, fd, &[], Some(0), true, p, false);
    } else if data_ack_moved
        || !conn.weighted && si == sched::active(conn) && p.window != 0
        || opts.sack_n > 0
        || conn.weighted && sub_acked
    {
        // A pure ACK: the LAN host needs the data-level ACK progress, window updates, and
        // (with SACK) what the peer holds on the subflows beyond the data-level ACK.
        data_to_client(ctx, conn, si, 0, &[], Some(0), false, p, true);
    }

    // A server FIN on a subflow with everything delivered: acknowledge it now (joins also
    // close their side).
    let dack = conn.data_ack_sent;
    let Some(sub) = conn.sub(si) else { return };
    if p.flags & FIN != 0 && sub.recv.is_empty() && Some(sub.rcv_ack) == sub.fin {
        let our_fin = !sub.fin_sent;
        if let Some(s) = conn.sub_mut(si) {
            s.rcv_ack = s.rcv_ack.wrapping_add(1);
        }
        if let Some(sub) = conn.sub(si) {
            lan::pure_ack(ctx, conn, sub, dack, &[], our_fin);
        }
        if our_fin {
            if let Some(s) = conn.sub_mut(si) {
                s.fin_sent = true;
                s.snd_nxt = s.snd_nxt.wrapping_add(1);
            }
        }
    }
}

/// Forward server data (or a pure ACK / FIN when `data` is empty) to the LAN host.
#[allow(clippy::too_many_arguments)]
fn data_to_client(
    ctx: &mut Ctx,
    conn: &mut Conn,
    si: u8,
    dsn: u64,
    data: &[u8],
    psum: Option<u32>,
    fin: bool,
    p: &IpTcp,
    sack: bool,
) {
    let ack = conn.cseq_of_dsn(conn.data_acked);
    if data.is_empty() && !fin && conn.c_fin.is_some_and(|f| ack == f.wrapping_add(1)) {
        // The peer acknowledged the host's FIN (often on every subflow): tell it once.
        if conn.c_fin_acked {
            return;
        }
        conn.c_fin_acked = true;
    }
    let Some(sub) = conn.sub(si) else { return };
    let seq = if data.is_empty() && !fin {
        conn.tsn_of_dsn(conn.data_ack_sent.max(dsn))
    } else {
        conn.tsn_of_dsn(dsn)
    };
    // The window is shared at the data level; rescale from this subflow's scale to the one the
    // LAN host was told.
    let win = ((p.window as u32) << sub.wscale) >> conn.s_wscale;
    let win = win.min(0xffff) as u16;
    let mut w = OptWriter::new();
    if conn.ts {
        let tsval = sub.ts_recent.wrapping_add(sub.ts_off);
        let tsval = if seq::seq_lt(tsval, conn.ts_to_client) {
            conn.ts_to_client
        } else {
            tsval
        };
        w.ts(tsval, conn.c_ts_recent);
        conn.ts_to_client = tsval;
    }
    // Only while some subflow reports a loss (SACK blocks from the peer): then the LAN host
    // must learn which of its bytes are missing, and that the others arrived. Otherwise the
    // data-level ACK alone, so that the paths' different delays do not look like losses.
    let lossy = conn
        .subs()
        .any(|s| s.state == SubState::Established && s.sacked_n > 0);
    if conn.sack && sack && data.is_empty() && lossy {
        // What the peer holds beyond the data-level ACK, through the SEND table.
        let mut b = [(0u32, 0u32); 4];
        let room = if conn.ts { 3 } else { 4 };
        let n = conn.send.as_ref().map_or(0, |send| {
            send.held_blocks(
                ack,
                |i| {
                    conn.sub(i)
                        .filter(|s| s.state == SubState::Established)
                        .map(|s| (s.snd_una, s.sacked()))
                },
                &mut b[..room],
            )
        });
        w.sack(&b[..n]);
    }
    let mut flags = ACK | if data.is_empty() { 0 } else { p.flags & PSH };
    if fin {
        flags |= FIN;
    }
    let spec = ctx.spec_to_client(conn, seq, ack, flags, win, p.ttl);
    emit::segment(ctx.tx, ctx.counters, Dest::Lan, &spec, &w, data, psum);
}

/// The join's SYN/ACK: check the server's HMAC (RFC 8684 §3.2), then send the third ACK.
fn join_synack(
    ctx: &mut Ctx,
    conn: &mut Conn,
    si: u8,
    opts: &TcpOptions,
    p: &IpTcp,
    after: &mut After,
) {
    let join = opts.mptcp[..opts.mptcp_n]
        .iter()
        .find_map(|o| match MptcpOption::parse(o) {
            Ok(MptcpOption::MpJoin(MpJoin::SynAck {
                hmac,
                nonce,
                backup,
                ..
            })) => Some((hmac, nonce, backup)),
            _ => None,
        });
    let (local_key, remote_key) = (conn.local_key, conn.remote_key);
    let ts0 = conn.sub(0).map(|s| s.ts_recent).unwrap_or(0);
    let scaled = conn.c_wscale.is_some();
    let Some(sub) = conn.sub_mut(si) else { return };
    let Some((hmac, rnonce, _backup)) = join else {
        ctx.counters.mp_join_synack_missing += 1;
        reset_sub(ctx, conn, si, p.seq.wrapping_add(1));
        after.drop_sub = true;
        return;
    };
    let full = crypto::join_hmac(remote_key, local_key, rnonce, sub.nonce);
    let mut want = [0u8; 8];
    want.copy_from_slice(&full[..8]);
    if u64::from_be_bytes(want) != hmac {
        ctx.counters.mp_join_synack_hmac_failure += 1;
        reset_sub(ctx, conn, si, p.seq.wrapping_add(1));
        after.drop_sub = true;
        return;
    }
    ctx.counters.mp_join_synack_rx += 1;
    sub.rnonce = rnonce;
    sub.risn = p.seq;
    sub.rcv_ack = p.seq.wrapping_add(1);
    sub.wscale = if scaled { opts.wscale.unwrap_or(0) } else { 0 };
    if let Some((val, _)) = opts.ts {
        sub.ts_recent = val;
        sub.ts_left = val;
        // Show the LAN host this subflow's timestamps on the initial subflow's clock.
        sub.ts_off = ts0.wrapping_sub(val);
    }
    sub.state = SubState::AckSent;
    sub.tries = 0;
    sub.timer = Some(ctx.now + super::JOIN_ACK_RTO);
    if let Some(sub) = conn.sub(si) {
        join_third_ack(ctx, conn, sub);
    }
}

/// The join's third ACK with the 160-bit HMAC; repeated until the server acknowledges it.
pub fn join_third_ack(ctx: &mut Ctx, conn: &Conn, sub: &super::conn::Subflow) {
    let full = crypto::join_hmac(conn.local_key, conn.remote_key, sub.nonce, sub.rnonce);
    let mut hmac = [0u8; 20];
    hmac.copy_from_slice(&full[..20]);
    let mut w = OptWriter::new();
    if conn.ts {
        w.ts(conn.c_ts_recent, sub.ts_recent);
    }
    emit::mptcp(&mut w, &MptcpOption::MpJoin(MpJoin::Ack { hmac }));
    let win = conn.window_on(sub, sub.snd_nxt, sub.rcv_ack);
    ctx.control(conn, sub, sub.snd_nxt, sub.rcv_ack, ACK, Some(win), &w);
}

/// ADD_ADDR from the server: check its HMAC and echo it (RFC 8684 §3.4.1). We do not join
/// announced addresses in this version.
fn add_addr(ctx: &mut Ctx, conn: &Conn, si: u8, a: &AddAddr) {
    let want = crypto::add_addr_hmac(conn.remote_key, conn.local_key, a.addr_id, a.addr, a.port);
    if a.hmac != Some(want) {
        ctx.counters.add_addr_hmac_failure += 1;
        return;
    }
    ctx.counters.add_addr += 1;
    let Some(sub) = conn.sub(si) else { return };
    let mut w = OptWriter::new();
    if conn.ts {
        w.ts(conn.c_ts_recent, sub.ts_recent);
    }
    let echo = AddAddr {
        echo: true,
        hmac: None,
        ..*a
    };
    emit::mptcp(&mut w, &MptcpOption::AddAddr(echo));
    let win = conn.window_on(sub, sub.snd_nxt, sub.rcv_ack);
    if ctx.control(conn, sub, sub.snd_nxt, sub.rcv_ack, ACK, Some(win), &w) {
        ctx.counters.echo_add += 1;
    }
}

fn reset_sub(ctx: &mut Ctx, conn: &Conn, si: u8, ack: u32) {
    let Some(sub) = conn.sub(si) else { return };
    let w = OptWriter::new();
    ctx.control(conn, sub, sub.snd_nxt, ack, RST | ACK, None, &w);
}

fn reset_joins(ctx: &mut Ctx, conn: &Conn) {
    for i in 1..super::conn::MAX_SUBFLOWS as u8 {
        if let Some(sub) = conn.sub(i) {
            if sub.state != SubState::Closed {
                reset_sub(ctx, conn, i, sub.rcv_ack);
            }
        }
    }
}

/// Reset the LAN host's connection, at the sequence number it expects next.
pub fn reset_client(ctx: &mut Ctx, conn: &Conn, ttl: u8) {
    let w = OptWriter::new();
    let seq = conn.c_ack;
    let spec: TcpSpec = ctx.spec_to_client(conn, seq, 0, RST, 0, ttl);
    emit::segment(ctx.tx, ctx.counters, Dest::Lan, &spec, &w, &[], Some(0));
}

/// Explicit mode: the concentrator refused (or garbled its reply): reset the LAN host and
/// close every subflow.
fn refused(ctx: &mut Ctx, conn: &Conn, ttl: u8, after: &mut After) {
    ctx.counters.convert_error += 1;
    reset_client(ctx, conn, ttl);
    lan::fastclose_all(ctx, conn);
    after.remove = true;
}

/// What [`take_reply`] made of a segment.
enum Reply {
    /// Reply bytes that do not follow what we have: drop the segment.
    OutOfOrder,
    /// The first `k` bytes were reply; more is to come.
    More(usize),
    /// The first `k` bytes completed the reply.
    Done(usize),
    /// Not a Convert message.
    Bad,
}

/// Take the part of `data` (at data sequence number `dsn`) that belongs to the concentrator's
/// reply.
fn take_reply(conn: &mut Conn, dsn: u64, data: &[u8]) -> Reply {
    let base = conn.remote_idsn.wrapping_add(1);
    let Some(c) = conn.convert.as_mut() else {
        return Reply::More(0);
    };
    let Some(off) = dsn.checked_sub(base) else {
        return Reply::More(0);
    };
    if off > c.reply_have as u64 {
        return Reply::OutOfOrder;
    }
    // Walk the reply bytes of this segment; those we have not seen yet are kept (the first
    // 128) and counted. The header (4 bytes) gives the reply's length.
    let mut k = 0usize;
    let mut pos = off;
    while k < data.len() && c.reply_len.is_none_or(|l| pos < l as u64) {
        if pos == c.reply_have as u64 {
            if let Some(b) = c.reply.get_mut(pos as usize) {
                *b = data[k];
            }
            c.reply_have = c.reply_have.saturating_add(1);
            if c.reply_len.is_none() && c.reply_have as usize == crate::wire::convert::HEADER_LEN {
                match crate::wire::convert::parse_header(&c.reply) {
                    Ok(h) => c.reply_len = Some(h.total_len as u16),
                    Err(_) => return Reply::Bad,
                }
            }
        }
        pos += 1;
        k += 1;
    }
    match c.reply_len {
        Some(l) if c.reply_have >= l => {
            c.reply_done = true;
            conn.s_shift = l as u32;
            Reply::Done(k)
        }
        _ => Reply::More(k),
    }
}

/// The Error TLV of a complete reply, with its meaning (RFC 8803 §5.2).
fn reply_error(conn: &Conn) -> Option<(u8, &'static str)> {
    let c = conn.convert.as_ref()?;
    let len = (c.reply_have as usize).min(c.reply.len());
    let msg = crate::wire::convert::parse(&c.reply[..len]).ok()?;
    msg.error()
        .map(|(code, _)| (code, crate::wire::convert::error_meaning(code)))
}
