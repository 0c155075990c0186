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

use std::net::{Ipv4Addr, Ipv6Addr};

mod conn;
mod counters;
mod table;

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
}

/// Largest packet the engine emits or accepts for conversion.
pub const MAX_PACKET: usize = 2048;

/// The converter. See the module documentation for the contract.
pub struct Engine {
    cfg: EngineConfig,
    counters: Counters,
    tx: TxRing,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            tx: TxRing::new(256),
            counters: Counters::default(),
            cfg,
        }
    }

    /// Handle one IP packet (IPv4 or IPv6, starting at the IP header).
    pub fn handle(&mut self, now: Micros, from: Side, packet: &mut [u8]) -> Verdict {
        let _ = (now, from, packet);
        Verdict::Accept
    }

    /// The next packet to send, if any. Call until it returns `None` after every `handle*`.
    pub fn poll_transmit(&mut self) -> Option<(Dest, &[u8])> {
        self.tx.pop()
    }

    /// When [`Engine::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Micros> {
        None
    }

    /// Run the timers due at `now` (retransmissions, expiry).
    pub fn handle_timeout(&mut self, now: Micros) {
        let _ = now;
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A picture of the engine for `mpconv status`.
    pub fn status(&self) -> Status {
        Status {
            uplinks: self
                .cfg
                .uplinks
                .iter()
                .map(|u| UplinkStatus {
                    name: u.name.clone(),
                    subflows: 0,
                })
                .collect(),
            connections: Vec::new(),
            counters: self.counters.clone(),
        }
    }
}

/// A fixed ring of packet buffers, allocated once.
struct TxRing {
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
    #[allow(dead_code)]
    fn slot(&mut self) -> Option<&mut [u8; MAX_PACKET]> {
        if self.len == self.bufs.len() {
            return None;
        }
        let i = (self.head + self.len) % self.bufs.len();
        Some(&mut self.bufs[i])
    }

    /// Commit the packet written into [`TxRing::slot`].
    #[allow(dead_code)]
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
