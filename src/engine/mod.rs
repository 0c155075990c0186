//! The converter: a sans-IO engine that turns a LAN host's TCP connection into an MPTCP v1
//! connection across the configured uplinks (seed paper 001 §3, RFC 8684).
//!
//! Contract:
//! - [`Engine::handle`] takes one IP packet (bytes), the side it came from and the current time,
//!   and returns a [`Verdict`] for that packet. Packets to send are queued inside the engine and
//!   drained with [`Engine::poll_transmit`]; [`Engine::poll_timeout`] tells when
//!   [`Engine::handle_timeout`] must be called next.
//! - It never reads a clock, never touches a socket and never panics on input from the network:
//!   malformed input becomes a verdict and a counter.
//! - No heap allocation per packet: the connection table and the transmit ring are sized at start.
//!
//! Addressing model (see README "How it works"): every WAN-side subflow is originated by the
//! router itself (source = uplink address, source port from `port_range`), so the engine does the
//! address translation itself and its packets bypass conntrack. LAN packets of a converted
//! connection are dropped and re-emitted as subflow packets; subflow packets from the server are
//! dropped and re-emitted towards the LAN host.

use crate::wire::mptcp::MptcpOption;
use crate::wire::packet::{ACK, FIN, RST, SYN};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

mod conn;
mod counters;
mod emit;
mod lan;
mod rng;
mod sched;
mod table;
mod wan;

use crate::wire::{
    self, crypto, packet, packet::IpTcp, packet::TcpSpec, tcpopt::OptWriter, tcpopt::TcpOptions,
};
use conn::{Conn, ConnState, Subflow};

pub use counters::Counters;

/// Time in microseconds from an arbitrary origin chosen by the caller (monotonic).
pub type Micros = u64;

/// Where a packet came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// From a LAN host (queued on a LAN interface).
    Lan,
    /// From the uplink with this index in [`EngineConfig::uplinks`] (addressed to the uplink's
    /// address and a port in `port_range`).
    Uplink(u8),
}

/// What to do with the packet given to [`Engine::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it pass unchanged (not a converted connection).
    Accept,
    /// Let it pass with the bytes rewritten in place; the new length is given.
    AcceptRewritten(usize),
    /// Drop it (it was consumed, and whatever it became is queued for transmission).
    Drop,
}

/// Where a queued packet must be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Towards the LAN host (routed by the main table).
    Lan,
    /// Out of the uplink with this index (policy-routed by that uplink's mark).
    Uplink(u8),
}

/// One uplink as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkConfig {
    pub name: String,
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
    pub mtu: u16,
    /// A backup uplink: its subflows carry the backup flag (MP_JOIN B bit) and no data while a
    /// non-backup uplink is up.
    pub backup: bool,
}

/// Health of an uplink as told by [`Engine::set_uplink_state`] (link events and probes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UplinkState {
    /// Working (the default until told otherwise).
    #[default]
    Up,
    /// Working, but with loss or delay well above its usual: traffic is moved away from it
    /// (make-before-break) when another uplink is up.
    Degraded,
    /// Not working: no new subflows, its traffic moved to the others at once.
    Down,
}

impl UplinkState {
    pub fn name(self) -> &'static str {
        match self {
            UplinkState::Up => "up",
            UplinkState::Degraded => "degraded",
            UplinkState::Down => "down",
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Uplinks in configuration order; the first carries the initial subflow.
    pub uplinks: Vec<UplinkConfig>,
    /// Maximum number of converted connections; beyond it new connections pass unconverted.
    pub max_connections: usize,
    /// Ask for DSS checksums (MP_CAPABLE flag A).
    pub checksum: bool,
    /// Source ports of the router's subflows (inclusive). Must not overlap the NAT's range.
    pub port_range: (u16, u16),
    /// A connection with no packet for this long is forgotten.
    pub idle_timeout: Micros,
    /// Seed for keys, nonces, ISNs and ports.
    pub seed: [u8; 32],
    /// Explicit (off-path) mode: every connection goes to this concentrator (RFC 8803).
    pub explicit: Option<ExplicitConfig>,
    /// Destination prefixes (address, length) never converted.
    pub exclude: Vec<(IpAddr, u8)>,
    /// Destination ports never converted.
    pub exclude_ports: Vec<u16>,
}

/// Explicit mode: the concentrator and how to talk to it.
#[derive(Clone, Debug)]
pub struct ExplicitConfig {
    pub concentrator: SocketAddr,
    /// Shared secret for the Convert message's Cookie TLV.
    pub secret: Option<Vec<u8>>,
    /// Spread the LAN hosts' data over all subflows (the concentrator reorders at the data
    /// level); otherwise it goes on the initial subflow.
    pub weighted: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            uplinks: Vec::new(),
            max_connections: 4096,
            checksum: false,
            port_range: (61000, 65535),
            idle_timeout: 7_440_000_000, // 2 h 4 min, as conntrack's established timeout
            seed: [0; 32],
            explicit: None,
            exclude: Vec::new(),
            exclude_ports: Vec::new(),
        }
    }
}

/// Whether `ip` is inside `prefix`.
fn in_prefix(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// Destinations a concentrator must never be asked for: they are local to the LAN or to the
/// ISP (private, shared, loopback, link-local, multicast).
fn is_local_destination(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || in_prefix(ip, (IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10))
        }
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || in_prefix(
                    ip,
                    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
                )
                || in_prefix(
                    ip,
                    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
                )
        }
    }
}

/// A read-only picture of the engine for `mpconv status` (allocates; not on the packet path).
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub uplinks: Vec<UplinkStatus>,
    pub connections: Vec<ConnStatus>,
    pub counters: Counters,
}

#[derive(Clone, Debug, Default)]
pub struct UplinkStatus {
    pub name: String,
    /// Established subflows on this uplink.
    pub subflows: usize,
    /// Bytes (IP packets) the converter received from and sent to this uplink.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The same as rates over the last second, in bit/s.
    pub rx_bps: u64,
    pub tx_bps: u64,
    /// The lowest smoothed RTT of our data among its subflows (µs; 0 = not measured).
    pub srtt_us: u64,
    /// As last told by [`Engine::set_uplink_state`].
    pub state: UplinkState,
    pub backup: bool,
}

/// Per-uplink byte counters and the rates derived from them once a second.
#[derive(Clone, Copy, Debug, Default)]
struct Traffic {
    rx: u64,
    tx: u64,
    rx_bps: u64,
    tx_bps: u64,
    mark: (u64, u64),
}

#[derive(Clone, Debug)]
pub struct ConnStatus {
    pub client: std::net::SocketAddr,
    pub server: std::net::SocketAddr,
    /// "syn-sent", "established", "fallback", "closing", …
    pub state: &'static str,
    pub subflows: Vec<SubflowStatus>,
}

#[derive(Clone, Debug)]
pub struct SubflowStatus {
    pub uplink: u8,
    pub local_port: u16,
    pub state: &'static str,
    /// A backup subflow: the server asked for it (MP_PRIO), or we did (backup or degraded
    /// uplink, handover).
    pub backup: bool,
    /// Smoothed RTT of our data on this subflow (µs; 0 = not measured: no data sent on it).
    pub srtt_us: u64,
    /// Our bytes in flight on it.
    pub inflight: u32,
}

/// Largest packet the engine emits or accepts for conversion.
pub const MAX_PACKET: usize = 2048;

/// How long a closed connection is remembered (late retransmissions, last ACKs).
const LINGER: Micros = 10_000_000;
/// Join SYN retransmission: first timeout, doubled per try, and tries.
const JOIN_SYN_RTO: Micros = 1_000_000;
const JOIN_SYN_TRIES: u8 = 4;
/// Join third-ACK retransmission until the server acknowledges it (RFC 8684 §3.2).
const JOIN_ACK_RTO: Micros = 500_000;
const JOIN_ACK_TRIES: u8 = 6;
/// A connection whose SYN/ACK never came is forgotten after this.
const SYN_TIMEOUT: Micros = 75_000_000;
/// Retransmission of a Convert request sent as data.
const REQUEST_RTO: Micros = 1_000_000;
/// Housekeeping period (expiry, join timers).
const SWEEP: Micros = 100_000;
/// How long the LAN host may wait for a hole, with room in its window, before subflows that
/// bytes beyond that window block are reset (see [`Engine::unblock`]).
const HOLE_STALL: Micros = 1_000_000;
/// MP_TCPRST reason "too much outstanding data" (RFC 8684 §3.6).
const MPTCP_RST_EXCESSIVE: u8 = 4;

/// The converter. See the module documentation for the contract.
pub struct Engine {
    cfg: EngineConfig,
    counters: Counters,
    tx: TxRing,
    table: table::Table,
    rng: rng::Rng,
    ip_id: u16,
    next_sweep: Micros,
    warned_full: bool,
    traffic: Vec<Traffic>,
    /// Health of each uplink (index as in the configuration).
    uplink_state: Vec<UplinkState>,
    /// The uplink `handover` moved the traffic to, if any.
    preferred: Option<u8>,
    /// Time of the latest call (for work done outside `handle`).
    now: Micros,
    rate_since: Micros,
}

/// What the packet handlers borrow from the engine besides the connection.
pub(crate) struct Ctx<'a> {
    pub tx: &'a mut TxRing,
    pub counters: &'a mut Counters,
    pub cfg: &'a EngineConfig,
    pub rng: &'a mut rng::Rng,
    pub ip_id: &'a mut u16,
    pub now: Micros,
}

impl Ctx<'_> {
    pub fn uplink_addr(&self, u: u8, v6: bool) -> Option<IpAddr> {
        let up = self.cfg.uplinks.get(u as usize)?;
        if v6 {
            up.addr6.map(IpAddr::V6)
        } else {
            up.addr4.map(IpAddr::V4)
        }
    }

    /// Largest MSS that fits every uplink's MTU (a LAN host's segment may go on any of them).
    pub fn mss_limit(&self, _u: u8, v6: bool) -> u16 {
        let mtu = self.cfg.uplinks.iter().map(|u| u.mtu).min().unwrap_or(1500);
        mtu.saturating_sub(if v6 { 60 } else { 40 })
    }

    fn next_id(&mut self) -> u16 {
        *self.ip_id = self.ip_id.wrapping_add(1);
        *self.ip_id
    }

    /// A segment of subflow `sub` towards the server, in the image of the LAN host's packet.
    #[allow(clippy::too_many_arguments)]
    pub fn spec_to_server(
        &mut self,
        conn: &Conn,
        sub: &Subflow,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        p: &IpTcp,
    ) -> TcpSpec {
        let mut s = self.spec_forged(conn, sub, seq, ack, flags);
        s.window = window;
        s.ttl = p.ttl.saturating_sub(1).max(1);
        s.tos = p.tos;
        s.flow = p.flow;
        s
    }

    /// A segment of subflow `sub` that the converter makes itself.
    pub fn spec_forged(
        &mut self,
        conn: &Conn,
        sub: &Subflow,
        seq: u32,
        ack: u32,
        flags: u8,
    ) -> TcpSpec {
        let v6 = conn.remote.is_ipv6();
        let src = self.uplink_addr(sub.uplink, v6).unwrap_or(if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        TcpSpec {
            src,
            dst: conn.remote.ip(),
            sport: sub.port,
            dport: conn.remote.port(),
            seq,
            ack,
            flags,
            // The window of a SYN is never scaled (RFC 7323 §2.2): a join's SYN carries the
            // host's window in bytes, as far as 16 bits go.
            window: if flags & SYN != 0 {
                ((conn.c_win as u32) << conn.c_scale).min(0xffff) as u16
            } else {
                conn.c_win
            },
            ttl: 64,
            tos: 0,
            ip_id: self.next_id(),
            df: true,
            flow: 0,
        }
    }

    /// Queue a segment without data that the converter makes itself on subflow `sub`, with
    /// the window field `win` (see [`Conn::advertise`]; SYNs and resets: the host's).
    #[allow(clippy::too_many_arguments)]
    pub fn control(
        &mut self,
        conn: &Conn,
        sub: &Subflow,
        seq: u32,
        ack: u32,
        flags: u8,
        win: Option<u16>,
        opts: &OptWriter,
    ) -> bool {
        let mut spec = self.spec_forged(conn, sub, seq, ack, flags);
        if let Some(win) = win {
            spec.window = win;
        }
        emit::segment(
            self.tx,
            self.counters,
            Dest::Uplink(sub.uplink),
            &spec,
            opts,
            &[],
            Some(0),
        )
    }

    /// A segment towards the LAN host, from the server's address.
    pub fn spec_to_client(
        &mut self,
        conn: &Conn,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        ttl: u8,
    ) -> TcpSpec {
        TcpSpec {
            src: conn.server.ip(),
            dst: conn.client.ip(),
            sport: conn.server.port(),
            dport: conn.client.port(),
            seq,
            ack,
            flags,
            window,
            ttl: ttl.saturating_sub(1).max(1),
            tos: 0,
            ip_id: self.next_id(),
            df: true,
            flow: 0,
        }
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let nup = cfg.uplinks.len().clamp(1, conn::MAX_SUBFLOWS);
        let range = if cfg.port_range.0 <= cfg.port_range.1 {
            cfg.port_range
        } else {
            (cfg.port_range.1, cfg.port_range.0)
        };
        let mut rng = rng::Rng::new(cfg.seed);
        Engine {
            tx: TxRing::new(256),
            counters: Counters::default(),
            table: table::Table::new(cfg.max_connections.max(1), nup, range, nup, &mut rng),
            rng,
            ip_id: 0,
            next_sweep: 0,
            warned_full: false,
            traffic: vec![Traffic::default(); nup],
            uplink_state: vec![UplinkState::Up; nup],
            preferred: None,
            now: 0,
            rate_since: 0,
            cfg,
        }
    }

    fn split(&mut self, now: Micros, slot: usize) -> Option<(&mut Conn, Ctx<'_>)> {
        let conn = self.table.get_mut(slot)?;
        Some((
            conn,
            Ctx {
                tx: &mut self.tx,
                counters: &mut self.counters,
                cfg: &self.cfg,
                rng: &mut self.rng,
                ip_id: &mut self.ip_id,
                now,
            },
        ))
    }

    /// Handle one IP packet (IPv4 or IPv6, starting at the IP header).
    pub fn handle(&mut self, now: Micros, from: Side, packet: &mut [u8]) -> Verdict {
        self.now = now;
        let p = match IpTcp::parse(packet) {
            Ok(p) => p,
            Err(_) => {
                self.counters.pkt_malformed += 1;
                // Not ours to judge on the LAN side; on an uplink it was addressed to our ports.
                return match from {
                    Side::Lan => Verdict::Accept,
                    Side::Uplink(_) => Verdict::Drop,
                };
            }
        };
        match from {
            Side::Lan => self.on_lan(now, packet, &p),
            Side::Uplink(u) => self.on_uplink(now, u, packet, &p),
        }
    }

    fn on_lan(&mut self, now: Micros, pkt: &[u8], p: &IpTcp) -> Verdict {
        let client = SocketAddr::new(p.src, p.sport);
        let server = SocketAddr::new(p.dst, p.dport);
        if let Some(slot) = self.table.find_client(client, server) {
            let Some((conn, mut ctx)) = self.split(now, slot) else {
                return Verdict::Accept;
            };
            let (v, after) = lan::packet(&mut ctx, conn, pkt, p);
            if after.remove {
                self.table.remove(slot);
            }
            return v;
        }
        if p.flags & (packet::SYN | packet::ACK | packet::RST) != packet::SYN {
            // Not a connection we converted (e.g. opened before we started): leave it alone.
            return Verdict::Accept;
        }
        self.new_connection(now, pkt, p, client, server)
    }

    /// Whether a new connection to `server` is left alone (passes unconverted).
    fn excluded(&self, server: SocketAddr) -> bool {
        if self.cfg.exclude_ports.contains(&server.port())
            || self.cfg.exclude.iter().any(|&p| in_prefix(server.ip(), p))
        {
            return true;
        }
        match &self.cfg.explicit {
            Some(x) => server.ip() == x.concentrator.ip() || is_local_destination(server.ip()),
            None => false,
        }
    }

    fn new_connection(
        &mut self,
        now: Micros,
        pkt: &[u8],
        p: &IpTcp,
        client: SocketAddr,
        server: SocketAddr,
    ) -> Verdict {
        if self.excluded(server) {
            return Verdict::Accept;
        }
        let remote = match &self.cfg.explicit {
            Some(x) => x.concentrator,
            None => server,
        };
        let v6 = remote.is_ipv6();
        let Some(u0) = self.initial_uplink(v6) else {
            return Verdict::Accept;
        };
        let opts = TcpOptions::parse(p.options(pkt));
        if opts.malformed {
            self.counters.opt_malformed += 1;
            return Verdict::Accept;
        }
        if self.table.is_full() {
            self.counters.conn_table_full += 1;
            if !self.warned_full {
                self.warned_full = true;
                log::warn!(
                    "connection table full ({} connections): new connections pass unconverted until some close",
                    self.cfg.max_connections
                );
            }
            return Verdict::Accept;
        }
        let Some(port) = self.table.alloc_port(u0) else {
            self.counters.conn_table_full += 1;
            return Verdict::Accept;
        };
        let local_key = self.rng.u64();
        let (_, local_idsn) = crypto::token_idsn(local_key);
        let mut sub0 = Subflow::new(u0, port, p.seq);
        sub0.state = conn::SubState::SynSent;
        let mut subs: [Option<Subflow>; conn::MAX_SUBFLOWS] = Default::default();
        subs[0] = Some(sub0);
        // Explicit mode: the Convert message that asks the concentrator for `server`.
        let mut convert = None;
        if let Some(x) = &self.cfg.explicit {
            let mut req = conn::ConvertState::default();
            match wire::convert::emit_request(&mut req.req, server, &[], x.secret.as_deref()) {
                Ok(n) => req.req_len = n as u8,
                Err(_) => {
                    self.counters.pkt_malformed += 1;
                    self.table.unbind_sub((u0, port));
                    return Verdict::Accept;
                }
            }
            convert = Some(Box::new(req));
        }
        let c_shift = convert.as_ref().map_or(0, |c| c.req_len as u32);
        let weighted = self.cfg.explicit.as_ref().is_some_and(|x| x.weighted);
        let mut c = Conn::new(client, server, remote, now);
        c.convert = convert;
        c.weighted = weighted;
        c.c_shift = c_shift;
        c.c_dshift = c_shift;
        c.c_isn = p.seq;
        c.c_mss = opts.mss.unwrap_or(536);
        c.c_wscale = opts.wscale;
        c.c_sack = opts.sack_perm;
        c.c_ts = opts.ts.is_some();
        c.c_ts_recent = opts.ts.map(|t| t.0).unwrap_or(0);
        c.local_key = local_key;
        c.local_idsn = local_idsn;
        c.csum = self.cfg.checksum;
        c.data_acked = local_idsn.wrapping_add(1);
        c.c_win = p.window;
        c.subs = subs;
        let Some(slot) = self.table.insert(c) else {
            self.table.unbind_sub((u0, port));
            return Verdict::Accept;
        };
        self.table.bind_sub((u0, port), slot, 0);
        if let Some((conn, mut ctx)) = self.split(now, slot) {
            lan::syn(&mut ctx, conn, p.window, p.ttl);
        }
        Verdict::Drop
    }

    fn on_uplink(&mut self, now: Micros, u: u8, pkt: &[u8], p: &IpTcp) -> Verdict {
        if let Some(t) = self.traffic.get_mut(u as usize) {
            t.rx += (p.payload_off + p.payload_len) as u64;
        }
        let Some((slot, si)) = self.table.find_sub((u, p.dport)) else {
            self.reset_stray(u, p);
            return Verdict::Drop;
        };
        let Some((conn, mut ctx)) = self.split(now, slot) else {
            return Verdict::Drop;
        };
        if conn.remote != SocketAddr::new(p.src, p.sport) {
            self.reset_stray(u, p);
            return Verdict::Drop;
        }
        let (v, after) = wan::packet(&mut ctx, conn, si, pkt, p);
        if after.remove {
            self.table.remove(slot);
        } else {
            if after.drop_sub {
                self.close_sub(slot, si);
            }
            if after.start_joins {
                self.start_joins(now, slot);
            }
            if after.joined || after.start_joins {
                self.reconcile(slot);
            }
        }
        v
    }

    /// A segment on one of our ports that no subflow has: typically a subflow we closed when
    /// its uplink went down, which the server still retransmits on once the line is back.
    /// Answer as a TCP without that connection does (RFC 9293 §3.10.7.1), so that the server
    /// closes it at once and sends its data again on the live subflows, rather than retrying
    /// it for minutes while its data-level window waits for those bytes.
    fn reset_stray(&mut self, u: u8, p: &IpTcp) {
        self.counters.pkt_unknown += 1;
        if p.flags & RST != 0 {
            return;
        }
        let (seq, ack, flags) = if p.flags & ACK != 0 {
            (p.ack, 0, RST)
        } else {
            let len =
                p.payload_len as u32 + (p.flags & SYN != 0) as u32 + (p.flags & FIN != 0) as u32;
            (0, p.seq.wrapping_add(len), RST | ACK)
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let spec = TcpSpec {
            src: p.dst,
            dst: p.src,
            sport: p.dport,
            dport: p.sport,
            seq,
            ack,
            flags,
            window: 0,
            ttl: 64,
            tos: 0,
            ip_id: self.ip_id,
            df: true,
            flow: 0,
        };
        if emit::segment(
            &mut self.tx,
            &mut self.counters,
            Dest::Uplink(u),
            &spec,
            &OptWriter::new(),
            &[],
            Some(0),
        ) {
            self.counters.stray_rst_tx += 1;
        }
    }

    /// The uplink of a new connection's initial subflow: the first that is up, not a backup
    /// and has an address of the family; else the first not down (a backup, or degraded).
    fn initial_uplink(&self, v6: bool) -> Option<u8> {
        let ok = |i: usize, u: &UplinkConfig| {
            (if v6 {
                u.addr6.is_some()
            } else {
                u.addr4.is_some()
            }) && self.uplink_state.get(i) != Some(&UplinkState::Down)
        };
        let up = |i: usize| self.uplink_state.get(i) == Some(&UplinkState::Up);
        let ups = self.cfg.uplinks.iter().enumerate();
        ups.clone()
            .find(|&(i, u)| ok(i, u) && up(i) && !u.backup)
            .or_else(|| ups.clone().find(|&(i, u)| ok(i, u) && !u.backup))
            .or_else(|| ups.clone().find(|&(i, u)| ok(i, u)))
            .map(|(i, _)| i as u8)
    }

    /// Whether subflows on uplink `u` should be backups now, for a connection that has an
    /// established subflow on the uplinks in `have`: the handover target when it is usable
    /// (everything else is a backup); else a backup uplink, or a degraded one, while the
    /// connection has a subflow on an uplink that is up and not a backup.
    fn want_backup(&self, u: u8, have: &[bool; conn::MAX_SUBFLOWS]) -> bool {
        let st = |i: usize| self.uplink_state.get(i).copied().unwrap_or_default();
        if let Some(p) = self.preferred.filter(|&p| {
            (p as usize) < have.len() && have[p as usize] && st(p as usize) != UplinkState::Down
        }) {
            return u != p;
        }
        let primary = (0..have.len().min(self.cfg.uplinks.len()))
            .any(|i| have[i] && st(i) == UplinkState::Up && !self.cfg.uplinks[i].backup);
        primary
            && (self.cfg.uplinks.get(u as usize).is_some_and(|c| c.backup)
                || st(u as usize) != UplinkState::Up)
    }

    /// Bring the backup flags we gave a connection's subflows in line with the uplinks'
    /// state, backup flags and the handover target: MP_PRIO on each subflow whose flag
    /// changes (RFC 8684 §3.3.8; in v1 it applies to the subflow it is sent on).
    fn reconcile(&mut self, slot: usize) {
        let mut have = [false; conn::MAX_SUBFLOWS];
        let Some(c) = self.table.get(slot) else {
            return;
        };
        if c.state != ConnState::Mptcp {
            return;
        }
        for s in c.subs() {
            if s.state == conn::SubState::Established && (s.uplink as usize) < have.len() {
                have[s.uplink as usize] = true;
            }
        }
        let mut want = [false; conn::MAX_SUBFLOWS];
        for (i, w) in want.iter_mut().enumerate() {
            *w = self.want_backup(i as u8, &have);
        }
        let now = self.now;
        let Some((conn, mut ctx)) = self.split(now, slot) else {
            return;
        };
        for i in 0..conn::MAX_SUBFLOWS as u8 {
            let Some(s) = conn.sub(i) else { continue };
            let wb = want.get(s.uplink as usize).copied().unwrap_or(false);
            if s.state != conn::SubState::Established || s.local_backup == wb {
                continue;
            }
            signal(&mut ctx, conn, s, MptcpOption::MpPrio { backup: wb });
            ctx.counters.mp_prio_tx += 1;
            if let Some(s) = conn.sub_mut(i) {
                s.local_backup = wb;
            }
        }
    }

    fn close_sub(&mut self, slot: usize, si: u8) {
        let Some(conn) = self.table.get_mut(slot) else {
            return;
        };
        let Some(sub) = conn.sub_mut(si) else { return };
        sub.state = conn::SubState::Closed;
        sub.timer = None;
        let key = (sub.uplink, sub.port);
        // Its bytes are sent again on a live subflow when the LAN host retransmits them, and
        // the slot may carry a new join later.
        if let Some(send) = conn.send.as_mut() {
            send.entries.retain(|e| e.sub != si);
        }
        self.table.unbind_sub(key);
    }

    /// A join on every uplink of the server's address family that is not down and has no
    /// subflow of this connection yet (RFC 8684 §3.2). Its address ID is the uplink's index
    /// plus one (0 is the initial subflow's); its B bit says whether we want it as a backup.
    fn start_joins(&mut self, now: Micros, slot: usize) {
        let (v6, mut have, mut established) = match self.table.get(slot) {
            Some(c) if c.state == ConnState::Mptcp && c.confirmed => {
                let mut have = [false; conn::MAX_SUBFLOWS];
                let mut est = [false; conn::MAX_SUBFLOWS];
                for s in c.subs().filter(|s| s.state != conn::SubState::Closed) {
                    if let Some(h) = have.get_mut(s.uplink as usize) {
                        *h = true;
                        est[s.uplink as usize] = s.state == conn::SubState::Established;
                    }
                }
                (c.remote.is_ipv6(), have, est)
            }
            _ => return,
        };
        let n = self.cfg.uplinks.len().min(conn::MAX_SUBFLOWS);
        for u in 0..n {
            let up = &self.cfg.uplinks[u];
            if have[u]
                || self.uplink_state[u] == UplinkState::Down
                || (v6 && up.addr6.is_none())
                || (!v6 && up.addr4.is_none())
            {
                continue;
            }
            // A free slot (never the initial subflow's).
            let Some(si) = self.table.get(slot).and_then(|c| {
                (1..conn::MAX_SUBFLOWS).find(|&i| {
                    c.subs[i]
                        .as_ref()
                        .is_none_or(|s| s.state == conn::SubState::Closed)
                })
            }) else {
                return;
            };
            let Some(port) = self.table.alloc_port(u as u8) else {
                continue;
            };
            if self
                .table
                .get(slot)
                .is_some_and(|c| c.subs().any(|s| s.uplink as usize == u))
            {
                self.counters.subflow_reopened += 1;
            }
            established[u] = true;
            let backup = self.want_backup(u as u8, &established);
            established[u] = false;
            let Some((conn, mut ctx)) = self.split(now, slot) else {
                return;
            };
            let mut sub = lan::new_join(&mut ctx, u as u8, port);
            sub.addr_id = u as u8 + 1;
            sub.local_backup = backup;
            sub.timer = Some(now + JOIN_SYN_RTO);
            join_syn(&mut ctx, conn, &sub);
            if let Some(send) = conn.send.as_mut() {
                send.entries.retain(|e| e.sub as usize != si);
            }
            conn.subs[si] = Some(sub);
            have[u] = true;
            self.table.bind_sub((u as u8, port), slot, si as u8);
        }
    }

    /// The next packet to send, if any. Call until it returns `None` after every `handle*`.
    pub fn poll_transmit(&mut self) -> Option<(Dest, &[u8])> {
        let (dest, pkt) = self.tx.pop()?;
        if let Dest::Uplink(u) = dest {
            if let Some(t) = self.traffic.get_mut(u as usize) {
                t.tx += pkt.len() as u64;
            }
        }
        Some((dest, pkt))
    }

    /// When [`Engine::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Micros> {
        (self.table.len() > 0).then_some(self.next_sweep)
    }

    /// Run the timers due at `now` (retransmissions, expiry).
    pub fn handle_timeout(&mut self, now: Micros) {
        self.now = now;
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP;
        let dt = now.saturating_sub(self.rate_since);
        if dt >= 1_000_000 {
            for t in &mut self.traffic {
                t.rx_bps = (t.rx - t.mark.0) * 8_000_000 / dt;
                t.tx_bps = (t.tx - t.mark.1) * 8_000_000 / dt;
                t.mark = (t.rx, t.tx);
            }
            self.rate_since = now;
        }
        for slot in 0..self.cfg.max_connections.max(1) {
            self.sweep_one(now, slot);
        }
    }

    fn sweep_one(&mut self, now: Micros, slot: usize) {
        let idle = self.cfg.idle_timeout;
        let Some((conn, mut ctx)) = self.split(now, slot) else {
            return;
        };
        let expired = match conn.state {
            ConnState::SynSent => now.saturating_sub(conn.last_seen) > SYN_TIMEOUT,
            _ => now.saturating_sub(conn.last_seen) > idle,
        };
        if expired || conn.linger.is_some_and(|t| now >= t) {
            if expired {
                ctx.counters.conn_expired += 1;
            }
            self.table.remove(slot);
            return;
        }
        // Explicit mode: the Convert request sent after the handshake, until acknowledged.
        if lan::request_pending(conn)
            && conn
                .convert
                .as_ref()
                .and_then(|c| c.req_sent)
                .is_some_and(|t| now.saturating_sub(t) >= REQUEST_RTO)
        {
            lan::send_request(&mut ctx, conn);
        }
        let mut dead = [false; conn::MAX_SUBFLOWS];
        #[allow(clippy::needless_range_loop)] // `conn` is borrowed again inside
        for i in 1..conn::MAX_SUBFLOWS {
            let Some(sub) = conn.sub(i as u8) else {
                continue;
            };
            let Some(t) = sub.timer else { continue };
            if now < t {
                continue;
            }
            match sub.state {
                conn::SubState::SynSent if sub.tries + 1 < JOIN_SYN_TRIES => {
                    join_syn(&mut ctx, conn, sub);
                    if let Some(s) = conn.sub_mut(i as u8) {
                        s.tries += 1;
                        s.timer = Some(now + (JOIN_SYN_RTO << s.tries));
                    }
                }
                conn::SubState::AckSent if sub.tries + 1 < JOIN_ACK_TRIES => {
                    wan::join_third_ack(&mut ctx, conn, sub);
                    if let Some(s) = conn.sub_mut(i as u8) {
                        s.tries += 1;
                        s.timer = Some(now + JOIN_ACK_RTO);
                    }
                }
                conn::SubState::SynSent | conn::SubState::AckSent => dead[i] = true,
                _ => {
                    if let Some(s) = conn.sub_mut(i as u8) {
                        s.timer = None;
                    }
                }
            }
        }
        for (i, d) in dead.iter().enumerate() {
            if *d {
                self.close_sub(slot, i as u8);
            }
        }
        self.unblock(now, slot);
    }

    /// A stall the LAN host cannot end by itself: it has waited [`HOLE_STALL`] for a hole
    /// with room in its window, and subflows are blocked by bytes beyond that window (a Linux
    /// server sends there now and then, see `Conn::advertise`; the host drops them). The
    /// server re-sends those bytes on their subflow for ever and queues the missing ones
    /// behind them (it re-sends lost data only on a subflow with nothing outstanding). Reset
    /// the blocked subflows (MP_TCPRST "too much outstanding data", transient) and open them
    /// again: closing a subflow, Linux sends everything the DATA_ACK does not cover again on
    /// the others, in order from the hole. One established subflow is always kept.
    fn unblock(&mut self, now: Micros, slot: usize) {
        let Some(c) = self.table.get(slot) else {
            return;
        };
        let Some(edge) = c.c_edge else { return };
        if c.state != ConnState::Mptcp || c.c_win == 0 || now.saturating_sub(c.dack_at) < HOLE_STALL
        {
            return;
        }
        let est = |s: &conn::Subflow| s.state == conn::SubState::Established;
        let mut stuck = [false; conn::MAX_SUBFLOWS];
        for (i, s) in c.subs.iter().enumerate() {
            stuck[i] = s
                .as_ref()
                .is_some_and(|s| est(s) && s.recv.blocked_beyond(s.rcv_ack, edge));
        }
        if !stuck.contains(&true) {
            return;
        }
        if c.subs
            .iter()
            .zip(stuck)
            .all(|(s, b)| b || !s.as_ref().is_some_and(est))
        {
            // Every established subflow is blocked: keep the one that carries the host's ACKs.
            let keep = lan::ack_subflow(c)
                .map(|(k, _)| k as usize)
                .filter(|&k| stuck[k])
                .or_else(|| stuck.iter().position(|&b| b));
            if let Some(k) = keep {
                stuck[k] = false;
            }
        }
        let Some((conn, mut ctx)) = self.split(now, slot) else {
            return;
        };
        // Wait as long again before the next reset.
        conn.dack_at = now;
        for (i, &b) in stuck.iter().enumerate() {
            let Some(sub) = conn.sub(i as u8).filter(|_| b) else {
                continue;
            };
            let mut w = OptWriter::new();
            let rst = MptcpOption::MpTcpRst {
                reason: MPTCP_RST_EXCESSIVE,
                transient: true,
            };
            emit::mptcp(&mut w, &rst);
            ctx.control(conn, sub, sub.snd_nxt, sub.rcv_ack, RST | ACK, None, &w);
            ctx.counters.mp_rst_tx += 1;
            ctx.counters.subflow_stall_reset += 1;
        }
        for (i, &b) in stuck.iter().enumerate() {
            if b {
                self.close_sub(slot, i as u8);
            }
        }
        self.start_joins(now, slot);
        self.reconcile(slot);
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The health of uplink `u` changed (link event or probes). Going down moves every
    /// connection's traffic off it at once (break-before-make): its subflows are closed,
    /// REMOVE_ADDR tells the peer on a working subflow, so that the peer sends again what was
    /// in flight on the dead path, and MP_PRIO makes a backup subflow a regular one when no
    /// other is left. Degraded makes its subflows backups while another uplink is up
    /// (make-before-break). Up again: connections open subflows on it again.
    pub fn set_uplink_state(&mut self, now: Micros, u: u8, state: UplinkState) {
        let Some(slot) = self.uplink_state.get_mut(u as usize) else {
            return;
        };
        if *slot == state {
            return;
        }
        let was = std::mem::replace(slot, state);
        self.now = now;
        for i in 0..self.cfg.max_connections.max(1) {
            let Some(c) = self.table.get(i) else { continue };
            if state == UplinkState::Down {
                if c.state == ConnState::SynSent && c.sub(0).is_some_and(|s| s.uplink == u) {
                    // Not converted yet: forget it, the host's next SYN starts over elsewhere.
                    self.table.remove(i);
                    continue;
                }
                if c.state == ConnState::Mptcp {
                    self.drop_uplink(now, i, u);
                }
            } else if was == UplinkState::Down {
                self.start_joins(now, i);
            }
            self.reconcile(i);
        }
    }

    /// Close connection `slot`'s subflows on uplink `u` (which is down) and tell the peer.
    fn drop_uplink(&mut self, now: Micros, slot: usize, u: u8) {
        let Some((conn, mut ctx)) = self.split(now, slot) else {
            return;
        };
        let mut ids = [0u8; 8];
        let mut n = 0;
        let mut dead = [false; conn::MAX_SUBFLOWS];
        for (i, s) in conn.subs.iter().enumerate() {
            let Some(s) = s else { continue };
            if s.uplink == u && s.state != conn::SubState::Closed {
                dead[i] = true;
                if s.state == conn::SubState::Established && n < ids.len() {
                    ids[n] = s.addr_id;
                    n += 1;
                }
            }
        }
        let live = conn.subs.iter().enumerate().find_map(|(i, s)| {
            s.as_ref()
                .filter(|s| !dead[i] && s.state == conn::SubState::Established)
                .map(|_| i as u8)
        });
        if let (Some(li), true) = (live, n > 0) {
            if let Some(ls) = conn.sub(li) {
                signal(
                    &mut ctx,
                    conn,
                    ls,
                    MptcpOption::RemoveAddr { ids, n: n as u8 },
                );
                ctx.counters.rm_addr_tx += 1;
            }
        }
        for (i, d) in dead.iter().enumerate() {
            if *d {
                self.close_sub(slot, i as u8);
            }
        }
    }

    /// Move every connection's traffic to uplink `to` (make-before-break): MP_PRIO makes the
    /// subflows on the other uplinks backups once the connection has an established subflow
    /// on `to` (a join is opened where it has none); new connections follow too. Returns how
    /// many connections have a subflow on `to` now.
    pub fn handover(&mut self, now: Micros, to: u8) -> Result<usize, String> {
        let Some(u) = self.cfg.uplinks.get(to as usize) else {
            return Err(format!("no uplink with index {to}"));
        };
        if self.uplink_state[to as usize] == UplinkState::Down {
            return Err(format!("uplink '{}' is down", u.name));
        }
        self.preferred = Some(to);
        self.now = now;
        let mut moved = 0;
        for i in 0..self.cfg.max_connections.max(1) {
            if self
                .table
                .get(i)
                .is_none_or(|c| c.state != ConnState::Mptcp)
            {
                continue;
            }
            self.start_joins(now, i);
            self.reconcile(i);
            if self.table.get(i).is_some_and(|c| {
                c.subs()
                    .any(|s| s.uplink == to && s.state != conn::SubState::Closed)
            }) {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// A picture of the engine for `mpconv status`.
    pub fn status(&self) -> Status {
        let mut uplinks: Vec<UplinkStatus> = self
            .cfg
            .uplinks
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let t = self.traffic.get(i).copied().unwrap_or_default();
                UplinkStatus {
                    name: u.name.clone(),
                    subflows: 0,
                    rx_bytes: t.rx,
                    tx_bytes: t.tx,
                    rx_bps: t.rx_bps,
                    tx_bps: t.tx_bps,
                    srtt_us: 0,
                    state: self.uplink_state.get(i).copied().unwrap_or_default(),
                    backup: u.backup,
                }
            })
            .collect();
        let mut connections = Vec::new();
        for (_, c) in self.table.iter() {
            let mut subflows = Vec::new();
            for s in c.subs() {
                if s.state == conn::SubState::Established {
                    if let Some(u) = uplinks.get_mut(s.uplink as usize) {
                        u.subflows += 1;
                        if s.srtt > 0 && (u.srtt_us == 0 || s.srtt < u.srtt_us) {
                            u.srtt_us = s.srtt;
                        }
                    }
                }
                subflows.push(SubflowStatus {
                    uplink: s.uplink,
                    local_port: s.port,
                    backup: s.is_backup(),
                    srtt_us: s.srtt,
                    inflight: s.snd_nxt.wrapping_sub(s.snd_una),
                    state: match s.state {
                        conn::SubState::SynSent => "syn-sent",
                        conn::SubState::AckSent => "ack-sent",
                        conn::SubState::Established => "established",
                        conn::SubState::Closed => "closed",
                    },
                });
            }
            connections.push(ConnStatus {
                client: c.client,
                server: c.server,
                state: match (c.state, c.linger.is_some()) {
                    (ConnState::SynSent, _) => "syn-sent",
                    (_, true) => "closing",
                    (ConnState::Mptcp, _) => "established",
                    (ConnState::Fallback, _) => "fallback",
                },
                subflows,
            });
        }
        Status {
            uplinks,
            connections,
            counters: self.counters.clone(),
        }
    }
}

/// The MP_JOIN SYN of a join subflow.
fn join_syn(ctx: &mut Ctx, conn: &Conn, sub: &Subflow) {
    let mut w = OptWriter::new();
    w.mss(
        conn.c_mss
            .min(ctx.mss_limit(sub.uplink, conn.remote.is_ipv6())),
    );
    if conn.sack {
        w.sack_perm();
    }
    if conn.ts {
        w.ts(conn.c_ts_recent, 0);
    }
    if let Some(ws) = conn.c_wscale {
        w.wscale(ws);
    }
    emit::mptcp(
        &mut w,
        &wire::mptcp::MptcpOption::MpJoin(wire::mptcp::MpJoin::Syn {
            backup: sub.local_backup,
            addr_id: sub.addr_id,
            token: conn.remote_token,
            nonce: sub.nonce,
        }),
    );
    ctx.counters.mp_join_syn_tx += 1;
    ctx.control(conn, sub, sub.isn, 0, packet::SYN, None, &w);
}

/// A pure ACK on subflow `sub` (with the data-level ACK) that carries `opt`: MP_PRIO on the
/// subflow it concerns, REMOVE_ADDR on any live one.
fn signal(ctx: &mut Ctx, conn: &Conn, sub: &Subflow, opt: MptcpOption) {
    let mut w = OptWriter::new();
    if conn.ts {
        w.ts(conn.c_ts_recent, conn.ecr_for(sub));
    }
    let (dack, win) = conn.advertise(sub, sub.snd_nxt, sub.rcv_ack, conn.data_ack_sent);
    emit::mptcp(
        &mut w,
        &MptcpOption::Dss(wire::mptcp::Dss {
            data_fin: false,
            data_ack: Some(dack & 0xffff_ffff),
            ack64: false,
            mapping: None,
        }),
    );
    emit::mptcp(&mut w, &opt);
    ctx.control(
        conn,
        sub,
        sub.snd_nxt,
        sub.rcv_ack,
        packet::ACK,
        Some(win),
        &w,
    );
}

/// A fixed ring of packet buffers, allocated once.
pub(crate) struct TxRing {
    bufs: Vec<[u8; MAX_PACKET]>,
    meta: Vec<(Dest, u16)>,
    head: usize,
    len: usize,
}

impl TxRing {
    fn new(n: usize) -> TxRing {
        TxRing {
            bufs: vec![[0; MAX_PACKET]; n],
            meta: vec![(Dest::Lan, 0); n],
            head: 0,
            len: 0,
        }
    }

    /// A free buffer to write the next packet into, or `None` when the ring is full.
    fn slot(&mut self) -> Option<&mut [u8; MAX_PACKET]> {
        if self.len == self.bufs.len() {
            return None;
        }
        let i = (self.head + self.len) % self.bufs.len();
        Some(&mut self.bufs[i])
    }

    /// Commit the packet written into [`TxRing::slot`].
    fn commit(&mut self, dest: Dest, len: usize) {
        let i = (self.head + self.len) % self.bufs.len();
        self.meta[i] = (dest, len as u16);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<(Dest, &[u8])> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % self.bufs.len();
        self.len -= 1;
        let (dest, len) = self.meta[i];
        Some((dest, &self.bufs[i][..len as usize]))
    }
}
