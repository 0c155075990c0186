//! The daemon: set up (devices, NFQUEUE, raw sockets, routing, firewall, control socket), run
//! the packet loop around the sans-IO [`Engine`], and take everything down again on SIGINT or
//! SIGTERM.
//!
//! Packet path, per queued packet: read the clock, pick the [`Side`] from the input interface,
//! copy the payload into a scratch buffer allocated once, [`Engine::handle`] it, send the verdict
//! and drain [`Engine::poll_transmit`] onto the raw sockets. Nothing on our side allocates per
//! packet. (nfq 0.2.5 itself reuses its receive buffer and verdict buffer while every message is
//! verdicted before the next `recv`, which this loop does; its `Message` is a plain struct.)
//!
//! Why a copy rather than `Message::get_payload_mut`: nfq marks the payload as modified as soon
//! as `get_payload_mut` is called and then sends the whole payload back with every verdict, even
//! an unchanged accept, which makes the kernel copy it again into the skb and drop its checksum
//! state. One memcpy into the scratch buffer is cheaper; the payload goes back only for
//! [`Verdict::AcceptRewritten`].

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::control::{self, Command, ControlServer, HealthStatus, IoCounters};
use super::net::{self, ResolvedUplink};
use super::netlink::{self, Netlink};
use super::probe::{self, Prober};
use super::{firewall, routes, sys};
use crate::config::{Config, Mode, UplinkHealth};
use crate::engine::{
    Dest, Engine, EngineConfig, ExplicitConfig, Side, UplinkConfig, UplinkState, Verdict,
};
use crate::health::{Health, HealthConfig, Reason, Transition};

/// Receive buffer of the NFQUEUE netlink socket (the default overflows under load).
const QUEUE_RCVBUF: u32 = 8 << 20;
/// Send buffer of each raw socket.
const RAW_SNDBUF: u32 = 1 << 20;
/// Kernel queue length.
const QUEUE_MAXLEN: u32 = 4096;
/// Packets handled per wake-up at most.
const RECV_BUDGET: u32 = 4096;
/// Minimum time between two warnings of the same kind.
const WARN_INTERVAL_US: u64 = 10_000_000;

/// A warning printed at most every [`WARN_INTERVAL_US`], with the count of those suppressed.
#[derive(Default)]
struct RateLimited {
    last: Option<u64>,
    suppressed: u64,
}

impl RateLimited {
    fn warn(&mut self, now: u64, msg: impl FnOnce() -> String) {
        if self
            .last
            .is_some_and(|t| now.saturating_sub(t) < WARN_INTERVAL_US)
        {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            log::warn!("{} (and {} more like it)", msg(), self.suppressed);
        } else {
            log::warn!("{}", msg());
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// The raw sockets, one per destination and IP version.
struct Transmitter {
    /// Index 0: towards the LAN; 1 + i: out of uplink i. Each: [IPv4, IPv6].
    socks: Vec<[Option<OwnedFd>; 2]>,
    warn: RateLimited,
}

fn open_raw(v6: bool, mark: u32, dev: Option<&str>) -> Result<OwnedFd, String> {
    let what = format!(
        "raw IPv{} socket{}",
        if v6 { 6 } else { 4 },
        dev.map(|d| format!(" for {d}")).unwrap_or_default()
    );
    let fd = sys::raw_socket(v6).map_err(|e| format!("cannot open {what}: {e}"))?;
    sys::set_mark(fd.as_raw_fd(), mark).map_err(|e| format!("{what}: SO_MARK: {e}"))?;
    if let Some(d) = dev {
        sys::bind_to_device(fd.as_raw_fd(), d)
            .map_err(|e| format!("{what}: SO_BINDTODEVICE: {e}"))?;
    }
    if let Err(e) = sys::set_sndbuf_force(fd.as_raw_fd(), RAW_SNDBUF) {
        log::debug!("{what}: SO_SNDBUFFORCE: {e}");
    }
    Ok(fd)
}

impl Transmitter {
    fn new(cfg: &Config, ups: &[ResolvedUplink]) -> Result<Transmitter, String> {
        let lan6 = match open_raw(true, cfg.mark, None) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("{e}; IPv6 towards the LAN is disabled");
                None
            }
        };
        let mut socks = vec![[Some(open_raw(false, cfg.mark, None)?), lan6]];
        for (i, u) in ups.iter().enumerate() {
            let mark = routes::uplink_mark(cfg, i);
            let v4 = match u.addr4 {
                Some(_) => Some(open_raw(false, mark, Some(&u.device))?),
                None => None,
            };
            let v6 = match u.addr6 {
                Some(_) => Some(open_raw(true, mark, Some(&u.device))?),
                None => None,
            };
            socks.push([v4, v6]);
        }
        Ok(Transmitter {
            socks,
            warn: RateLimited::default(),
        })
    }

    /// Send one packet; the destination address is read from its IP header.
    fn send(&mut self, now: u64, dest: Dest, pkt: &[u8], io: &mut IoCounters) {
        let idx = match dest {
            Dest::Lan => 0,
            Dest::Uplink(i) => 1 + i as usize,
        };
        let version = pkt.first().map_or(0, |b| b >> 4);
        let fd = |v: usize| -> Option<RawFd> {
            self.socks
                .get(idx)
                .and_then(|s| s[v].as_ref())
                .map(|f| f.as_raw_fd())
        };
        let res = match version {
            4 if pkt.len() >= 20 => match fd(0) {
                Some(fd) => {
                    let dst = std::net::Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
                    sys::sendto_v4(fd, pkt, dst)
                }
                None => Err(std::io::ErrorKind::Unsupported.into()),
            },
            6 if pkt.len() >= 40 => match fd(1) {
                Some(fd) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&pkt[24..40]);
                    sys::sendto_v6(fd, pkt, a.into())
                }
                None => Err(std::io::ErrorKind::Unsupported.into()),
            },
            _ => Err(std::io::ErrorKind::InvalidData.into()),
        };
        match res {
            Ok(_) => io.sent += 1,
            Err(e) => {
                io.send_errors += 1;
                self.warn.warn(now, || {
                    format!("send of {} bytes towards {dest:?} failed: {e}", pkt.len())
                });
            }
        }
    }
}

/// Open and configure the NFQUEUE; also return its netlink socket's descriptor for poll().
///
/// nfq 0.2.5's `Queue` does not expose its descriptor (no `AsRawFd`), so we find it the only
/// way left: the socket descriptors that appear in `/proc/self/fd` across `Queue::open`, and
/// among them the one whose SO_DOMAIN/SO_PROTOCOL say NETLINK_NETFILTER. The daemon has a single
/// thread, so nothing else opens a socket meanwhile.
fn open_queue(num: u16) -> Result<(nfq::Queue, RawFd), String> {
    let before = sys::open_socket_fds();
    let mut q = nfq::Queue::open()
        .map_err(|e| format!("cannot open the NFQUEUE netlink socket: {e} (root needed)"))?;
    let new: Vec<RawFd> = sys::open_socket_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    let fd = sys::find_netfilter_socket(&new)
        .ok_or("cannot find the descriptor of the NFQUEUE netlink socket")?;
    q.bind(num).map_err(|e| {
        format!("cannot bind NFQUEUE {num}: {e} (is another program using this queue?)")
    })?;
    let e = |what: &str, e: std::io::Error| format!("NFQUEUE {num}: {what}: {e}");
    q.set_copy_range(num, 65535)
        .map_err(|x| e("copy range", x))?;
    q.set_queue_max_len(num, QUEUE_MAXLEN)
        .map_err(|x| e("queue length", x))?;
    q.set_fail_open(num, false).map_err(|x| e("fail-open", x))?;
    if let Err(x) = sys::set_rcvbuf_force(fd, QUEUE_RCVBUF) {
        log::warn!("NFQUEUE {num}: cannot enlarge the receive buffer: {x}");
    }
    q.set_nonblocking(true);
    Ok((q, fd))
}

fn engine_config(
    cfg: &Config,
    ups: &[ResolvedUplink],
    health: &[UplinkHealth],
) -> Result<EngineConfig, String> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("cannot get random bytes: {e}"))?;
    Ok(EngineConfig {
        uplinks: ups
            .iter()
            .enumerate()
            .map(|(i, u)| UplinkConfig {
                name: u.name.clone(),
                addr4: u.addr4,
                addr6: u.addr6,
                mtu: u.mtu,
                backup: health.get(i).is_some_and(|h| h.backup),
            })
            .collect(),
        max_connections: cfg.max_connections,
        checksum: cfg.checksum,
        port_range: cfg.port_range,
        idle_timeout: u64::from(cfg.idle_timeout) * 1_000_000,
        seed,
        explicit: match (cfg.mode, cfg.concentrator) {
            (Mode::Explicit, Some(c)) => Some(ExplicitConfig {
                concentrator: c,
                secret: cfg.secret.as_ref().map(|s| s.as_bytes().to_vec()),
                weighted: cfg.scheduler == crate::config::Scheduler::Weighted,
            }),
            (Mode::Explicit, None) => return Err("explicit mode needs option concentrator".into()),
            (Mode::Implicit, _) => None,
        },
        exclude: cfg.exclude.iter().map(|p| (p.addr, p.len)).collect(),
        exclude_ports: cfg.exclude_port.clone(),
    })
}

/// The kernel's range of local ports for the router's own connections.
const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// `port_range` must stay clear of the kernel's local ports: every segment to a port of the
/// range that is not one of our subflows is answered with a reset, so the router's own
/// connections (opkg, DNS over TCP, ...) would be cut.
fn check_port_range(cfg: &Config) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(LOCAL_PORT_RANGE) else {
        log::warn!("cannot read {LOCAL_PORT_RANGE}: port_range not checked against it");
        return Ok(());
    };
    let (lo, hi) = cfg.port_range;
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    match overlap_with_local(&text, (lo, hi)) {
        Some((klo, khi)) => Err(format!(
            "{}: option port_range '{lo}-{hi}' overlaps the kernel's local ports {klo}-{khi} \
             ({LOCAL_PORT_RANGE}): the router's own connections would be taken for stray \
             subflows and reset; choose ports above {khi} (default 61000-65535) or narrow \
             net.ipv4.ip_local_port_range",
            cfg.path.display()
        )),
        None => Ok(()),
    }
}

/// The kernel's local port range from the text of `ip_local_port_range` ("LO\tHI\n") when
/// it overlaps `range`.
fn overlap_with_local(text: &str, range: (u16, u16)) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(|w| w.parse::<u16>().ok());
    let (Some(Some(klo)), Some(Some(khi))) = (it.next(), it.next()) else {
        return None;
    };
    (range.0 <= khi && klo <= range.1).then_some((klo, khi))
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Implicit => "implicit",
        Mode::Explicit => "explicit",
    }
}

/// Everything the packet loop works on.
struct Daemon {
    engine: Engine,
    queue: nfq::Queue,
    tx: Transmitter,
    /// (ifindex, side) of every LAN device and uplink.
    sides: Vec<(u32, Side)>,
    scratch: Vec<u8>,
    io: IoCounters,
    recv_warn: RateLimited,
    verdict_warn: RateLimited,
}

impl Daemon {
    fn side(&self, ifindex: u32) -> Option<Side> {
        self.sides
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map(|(_, s)| *s)
    }

    fn drain_transmits(&mut self, now: u64) {
        while let Some((dest, pkt)) = self.engine.poll_transmit() {
            self.tx.send(now, dest, pkt, &mut self.io);
        }
    }

    fn run_timers(&mut self) {
        let now = sys::monotonic_us();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
            self.drain_transmits(now);
        }
    }

    /// Handle queued packets until the socket has none left, or [`RECV_BUDGET`] of them (then
    /// poll() returns at once, after signals and the control socket had their turn).
    fn receive_all(&mut self) {
        let mut n: u32 = 0;
        while n < RECV_BUDGET {
            let mut msg = match self.queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let now = sys::monotonic_us();
                    self.recv_warn.warn(now, || format!("NFQUEUE receive: {e}"));
                    break;
                }
            };
            let now = sys::monotonic_us();
            self.io.queued += 1;
            let verdict = match self.side(msg.get_indev()) {
                None => Verdict::Accept,
                Some(side) => {
                    let payload = msg.get_payload();
                    let len = payload.len();
                    if len > self.scratch.len() {
                        Verdict::Accept
                    } else {
                        self.scratch[..len].copy_from_slice(payload);
                        match self.engine.handle(now, side, &mut self.scratch[..len]) {
                            Verdict::AcceptRewritten(m) if m == len => {
                                msg.get_payload_mut().copy_from_slice(&self.scratch[..len]);
                                Verdict::AcceptRewritten(m)
                            }
                            Verdict::AcceptRewritten(m) if m < len => {
                                // Rare (the engine shrank the packet): nfq needs an owned Vec.
                                msg.set_payload(self.scratch[..m].to_vec());
                                Verdict::AcceptRewritten(m)
                            }
                            // A length beyond the packet cannot have been written: keep it.
                            Verdict::AcceptRewritten(_) => Verdict::Accept,
                            v => v,
                        }
                    }
                }
            };
            msg.set_verdict(match verdict {
                Verdict::Drop => {
                    self.io.dropped += 1;
                    nfq::Verdict::Drop
                }
                _ => {
                    self.io.accepted += 1;
                    nfq::Verdict::Accept
                }
            });
            if let Err(e) = self.queue.verdict(msg) {
                self.verdict_warn
                    .warn(now, || format!("NFQUEUE verdict: {e}"));
            }
            self.drain_transmits(now);
            n = n.wrapping_add(1);
            if n % 64 == 0 {
                self.run_timers();
            }
        }
    }
}

/// One uplink's health: its tracker, its probes, and what messages need.
struct Watched {
    name: String,
    device: String,
    ifindex: u32,
    addr4: Option<std::net::Ipv4Addr>,
    addr6: Option<std::net::Ipv6Addr>,
    backup: bool,
    health: Health,
    prober: Prober,
    next_id: u16,
    /// The `ip route replace` commands of the uplink's own table: run again when the link or
    /// address comes back (an admin-down device or a removed address takes its routes along).
    routes: Vec<super::cmd::Argv>,
    /// Its device was deleted and created again under a new ifindex (warned once).
    recreated: bool,
}

impl Watched {
    fn new(
        cfg: &Config,
        i: usize,
        u: &ResolvedUplink,
        h: &UplinkHealth,
        now: u64,
    ) -> (Watched, Vec<String>) {
        let (prober, warnings) = Prober::new(cfg, i, u, h);
        let hc = HealthConfig {
            probing: prober.active(),
            interval: u64::from(h.probe_interval_ms) * 1000,
            timeout: u64::from(h.probe_timeout_ms) * 1000,
            down_after: h.probe_down,
            up_after: h.probe_up,
        };
        let link_up = netlink::link_up_now(&u.device);
        // The addresses were found on the device (or given by netifd) just now.
        let health = Health::new(hc, now, link_up, true);
        (
            Watched {
                name: u.name.clone(),
                device: u.device.clone(),
                ifindex: u.ifindex,
                addr4: u.addr4,
                addr6: u.addr6,
                backup: h.backup,
                health,
                prober,
                next_id: (now as u16) ^ 0x5a5a,
                routes: Vec::new(),
                recreated: false,
            },
            warnings,
        )
    }

    /// Whether `a` is the address the uplink's health follows: its IPv4 address, or its IPv6
    /// address when it has no IPv4 one. (On a dual-stack uplink an IPv6 address that comes and
    /// goes, as with SLAAC renumbering, is logged but does not take the uplink down.)
    fn is_mine(&self, a: std::net::IpAddr) -> bool {
        match a {
            std::net::IpAddr::V4(a) => self.addr4 == Some(a),
            std::net::IpAddr::V6(a) => self.addr4.is_none() && self.addr6 == Some(a),
        }
    }

    fn is_other(&self, a: std::net::IpAddr) -> bool {
        matches!(a, std::net::IpAddr::V6(a) if self.addr4.is_some() && self.addr6 == Some(a))
    }

    fn addr_text(&self) -> String {
        match (self.addr4, self.addr6) {
            (Some(a), Some(b)) => format!("{a} / {b}"),
            (Some(a), None) => a.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => "-".into(),
        }
    }

    /// Why a transition happened, for the log.
    fn why(&self, t: &Transition) -> String {
        let h = &self.health;
        let ms = |us: u64| us as f64 / 1000.0;
        let (lost, n) = h.loss_counts();
        match t.reason {
            Reason::LinkDown => format!("link down on {}", self.device),
            Reason::AddressGone => format!(
                "address {} gone from {}",
                self.addr4
                    .map_or_else(|| self.addr_text(), |a| a.to_string()),
                self.device
            ),
            Reason::LinkUp => format!("link up on {} with {}", self.device, self.addr_text()),
            Reason::ProbesUnanswered(k) => {
                format!("{k} probes to {} unanswered", self.prober.targets_text())
            }
            Reason::ProbesAnswered(k) => format!(
                "{k} probes to {} answered, rtt {:.1} ms",
                self.prober.targets_text(),
                ms(h.last_rtt())
            ),
            Reason::Loss => format!(
                "{lost} of the last {n} probes to {} lost, rtt {:.1} ms",
                self.prober.targets_text(),
                ms(h.srtt())
            ),
            Reason::Rtt => format!(
                "probe rtt {:.1} ms, its usual {:.1} ms",
                ms(h.srtt()),
                ms(h.baseline())
            ),
            Reason::Recovered => format!(
                "{lost} of the last {n} probes lost, rtt {:.1} ms",
                ms(h.srtt())
            ),
        }
    }

    fn link_ok(&self) -> bool {
        self.health.link_up() && self.health.addr_present()
    }

    /// When link and address just came back (`was` = before the event), put the uplink's
    /// routes back (idempotent `ip route replace`; failures are logged).
    fn restore_routes(&self, was: bool) {
        if was || !self.link_ok() {
            return;
        }
        for r in &self.routes {
            if let Err(e) = super::cmd::run_logged(r, None) {
                log::debug!("uplink {}: {e}", self.name);
            }
        }
    }

    fn status(&self) -> HealthStatus {
        HealthStatus {
            state: self.health.state(),
            backup: self.backup,
            probe: if self.prober.active() {
                self.prober.kind().name()
            } else {
                "none"
            },
            rtt_us: self.health.srtt(),
            loss: self.health.loss(),
        }
    }
}

/// The health side of the daemon: netlink events, probes, trackers, and the engine told of
/// every change.
struct Watch {
    uplinks: Vec<Watched>,
    netlink: Netlink,
}

/// Log a transition once and tell the engine.
fn report(w: &Watched, engine: &mut Engine, now: u64, i: usize, t: Option<Transition>) {
    let Some(t) = t else { return };
    let msg = format!(
        "uplink {}: {} -> {} ({})",
        w.name,
        t.from.name(),
        t.to.name(),
        w.why(&t)
    );
    if t.to == UplinkState::Up {
        log::info!("{msg}");
    } else {
        log::warn!("{msg}");
    }
    engine.set_uplink_state(now, i as u8, t.to);
}

impl Watch {
    fn apply(&mut self, engine: &mut Engine, now: u64, i: usize, t: Option<Transition>) {
        if let Some(w) = self.uplinks.get(i) {
            report(w, engine, now, i, t);
        }
    }

    /// The earliest deadline of the trackers.
    fn poll_timeout(&self) -> Option<u64> {
        self.uplinks
            .iter()
            .filter_map(|w| w.health.poll_timeout())
            .min()
    }

    /// Read the netlink socket and feed the trackers.
    fn on_netlink(&mut self, engine: &mut Engine) {
        let now = sys::monotonic_us();
        let ups = &mut self.uplinks;
        let res = self.netlink.read(|ev| match ev {
            netlink::Event::Link { ifindex, up, name } => {
                for w in ups.iter_mut() {
                    if w.ifindex != ifindex && name.is(&w.device) && !w.recreated {
                        // Its raw sockets, queue rules and routes were set up for the old
                        // device: only a restart picks up the new one.
                        w.recreated = true;
                        log::warn!(
                            "uplink {}: device {} was created again (ifindex {} -> {ifindex}); \
                             the uplink stays down until mpconv is restarted",
                            w.name,
                            w.device,
                            w.ifindex
                        );
                    }
                }
                for (i, w) in ups.iter_mut().enumerate() {
                    if w.ifindex == ifindex {
                        log::debug!("uplink {}: link {}", w.name, if up { "up" } else { "down" });
                        let was = w.link_ok();
                        let t = w.health.link(now, up);
                        report(w, engine, now, i, t);
                        w.restore_routes(was);
                    }
                }
            }
            netlink::Event::Addr {
                ifindex,
                addr,
                present,
            } => {
                for (i, w) in ups.iter_mut().enumerate() {
                    if w.ifindex == ifindex && w.is_other(addr) {
                        log::info!(
                            "uplink {}: IPv6 address {addr} {} (the state follows its IPv4 address)",
                            w.name,
                            if present { "back" } else { "gone" }
                        );
                    }
                    if w.ifindex == ifindex && w.is_mine(addr) {
                        log::debug!(
                            "uplink {}: address {addr} {}",
                            w.name,
                            if present { "added" } else { "removed" }
                        );
                        let was = w.link_ok();
                        let t = w.health.address(now, present);
                        report(w, engine, now, i, t);
                        w.restore_routes(was);
                    }
                }
            }
        });
        if res == netlink::ReadResult::Overflow {
            log::warn!("rtnetlink: events were lost (ENOBUFS); reading the uplinks' state again");
            for (i, w) in self.uplinks.iter_mut().enumerate() {
                let was = w.link_ok();
                let up = netlink::link_up_now(&w.device);
                let t = w.health.link(now, up);
                report(w, engine, now, i, t);
                let present = match (w.addr4, w.addr6) {
                    (Some(a), _) => addresses_present(&w.device, Some(a), None),
                    (None, b) => addresses_present(&w.device, None, b),
                };
                let t = w.health.address(now, present);
                report(w, engine, now, i, t);
                w.restore_routes(was);
            }
        }
    }

    /// Probe answers, timeouts, and the probes that are due.
    fn run(&mut self, engine: &mut Engine, pfds: &[sys::PollFd], first: usize) {
        let now = sys::monotonic_us();
        let mut k = first;
        for i in 0..self.uplinks.len() {
            let mut changes: [Option<Transition>; 8] = [None; 8];
            let mut nchg = 0;
            let w = &mut self.uplinks[i];
            let n = w.prober.registered();
            let slice = pfds.get(k..k + n).unwrap_or(&[]);
            k += n;
            let health = &mut w.health;
            let name = &w.name;
            w.prober.service(slice, |o| {
                log::trace!("uplink {name}: probe {o:?} at {now}");
                let t = match o {
                    probe::Outcome::Answered(id) => health.probe_answered(now, id),
                    probe::Outcome::Failed(id) => health.probe_failed(now, id),
                };
                if t.is_some() && nchg < changes.len() {
                    changes[nchg] = t;
                    nchg += 1;
                }
            });
            for t in changes.iter_mut().take(nchg) {
                let t = t.take();
                self.apply(engine, now, i, t);
            }
            let w = &mut self.uplinks[i];
            let t = w.health.handle_timeout(now);
            if let Some(t) = &t {
                log::trace!("uplink {}: probes timed out: {t:?}", w.name);
            }
            let health = &w.health;
            w.prober.retain(|id| health.is_outstanding(id));
            self.apply(engine, now, i, t);
            let w = &mut self.uplinks[i];
            if w.health.probe_due(now) {
                let id = w.next_id;
                w.next_id = w.next_id.wrapping_add(1);
                let t = w.health.probe_sent(now, id);
                report(w, engine, now, i, t);
                let w = &mut self.uplinks[i];
                match w.prober.send(id) {
                    Ok(_) => log::trace!("uplink {}: probe {id} sent at {now}", w.name),
                    Err((target, e)) => {
                        log::debug!(
                            "uplink {}: probe to {} not sent: {e}",
                            w.name,
                            probe::target_text(w.prober.kind(), target)
                        );
                        let t = w.health.probe_failed(now, id);
                        report(w, engine, now, i, t);
                    }
                }
            }
        }
    }

    fn status(&self) -> Vec<HealthStatus> {
        self.uplinks.iter().map(Watched::status).collect()
    }
}

/// Whether the device still has the uplink's addresses (after lost netlink events).
fn addresses_present(
    dev: &str,
    a4: Option<std::net::Ipv4Addr>,
    a6: Option<std::net::Ipv6Addr>,
) -> bool {
    let Ok(text) = super::cmd::run(
        &super::cmd::argv(&["ip", "-o", "addr", "show", "dev", dev]),
        None,
    ) else {
        return false;
    };
    let has = |a: String| text.contains(&format!(" {a}/"));
    a4.is_none_or(|a| has(a.to_string())) && a6.is_none_or(|a| has(a.to_string()))
}

fn summary(engine: &Engine, io: &IoCounters) -> String {
    let mut s: Vec<String> = io.iter().iter().map(|(k, v)| format!("{k} {v}")).collect();
    s.extend(
        engine
            .counters()
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k} {v}")),
    );
    s.join(", ")
}

/// Run the daemon in the foreground until SIGINT or SIGTERM. Everything installed is removed
/// again on return, also on errors during start. `health` holds the health options of
/// `cfg.uplinks`, index for index (missing entries: the defaults).
pub fn run(cfg: Config, verbose: bool) -> Result<(), String> {
    if !cfg.enabled {
        log::info!(
            "disabled in {} (option enabled '0'); nothing to do",
            cfg.path.display()
        );
        return Ok(());
    }
    let ups = net::resolve_uplinks(&cfg)?;
    let lans = net::resolve_lans(&cfg)?;
    if ups.len() > 255 || (cfg.mark & 0xff) as usize + ups.len() > 0xff {
        return Err(format!(
            "{}: option mark {:#x} leaves no room for {} uplink marks (mark + 1 + i must keep the bits of {:#x})",
            cfg.path.display(),
            cfg.mark,
            ups.len(),
            firewall::MARK_MASK
        ));
    }
    check_port_range(&cfg)?;
    let mut sides: Vec<(u32, Side)> = lans.iter().map(|l| (l.ifindex, Side::Lan)).collect();
    for (i, u) in ups.iter().enumerate() {
        if sides.iter().any(|(x, _)| *x == u.ifindex) {
            return Err(format!(
                "{}: device '{}' is used twice (LAN and uplink, or two uplinks)",
                cfg.path.display(),
                u.device
            ));
        }
        sides.push((u.ifindex, Side::Uplink(i as u8)));
    }
    // resolve_uplinks keeps the configuration's order (or fails).
    let health: Vec<UplinkHealth> = cfg.uplinks.iter().map(|u| u.health.clone()).collect();
    let mut engine = Engine::new(engine_config(&cfg, &ups, &health)?);
    let netlink = Netlink::open()?;
    let start = sys::monotonic_us();
    let mut watched = Vec::new();
    for (i, u) in ups.iter().enumerate() {
        let (w, warnings) = Watched::new(&cfg, i, u, &health[i], start);
        for m in warnings {
            log::warn!("{m}");
        }
        engine.set_uplink_state(start, i as u8, w.health.state());
        watched.push(w);
    }
    let (route_steps, _) = routes::plan(&cfg, &ups);
    for w in watched.iter_mut() {
        w.routes = route_steps
            .iter()
            .filter(|st| {
                st.apply.get(2).is_some_and(|a| a == "route")
                    && st
                        .apply
                        .windows(2)
                        .any(|p| p[0] == "dev" && p[1] == w.device)
            })
            .map(|st| st.apply.clone())
            .collect();
    }
    let mut watch = Watch {
        uplinks: watched,
        netlink,
    };
    let tx = Transmitter::new(&cfg, &ups)?;
    let signals = sys::install_signal_pipe().map_err(|e| format!("signal handlers: {e}"))?;
    let (queue, qfd) = open_queue(cfg.queue)?;
    let mut d = Daemon {
        engine,
        queue,
        tx,
        sides,
        scratch: vec![0; 65536],
        io: IoCounters::default(),
        recv_warn: RateLimited::default(),
        verdict_warn: RateLimited::default(),
    };
    // Declared in install order, so an early return drops (undoes) them in reverse.
    let routing = routes::install(&cfg, &ups)?;
    let probe_routing = probe::install_routing(&cfg, &ups, &health)?;
    let (backend, fw) = firewall::install(&cfg, &ups)?;
    let ctl = ControlServer::bind(&cfg.socket)?;

    for (i, u) in ups.iter().enumerate() {
        let mut addrs = String::new();
        if let Some(a) = u.addr4 {
            addrs.push_str(&format!(" addr {a}"));
        }
        if let Some(a) = u.addr6 {
            addrs.push_str(&format!(" addr6 {a}"));
        }
        log::info!(
            "uplink {}: dev {}{} mtu {} table {} mark {:#x}{}",
            u.name,
            u.device,
            addrs,
            u.mtu,
            routes::uplink_table(&cfg, i),
            routes::uplink_mark(&cfg, i),
            if health[i].backup { " backup" } else { "" }
        );
        let w = &watch.uplinks[i];
        let h = w.health.config();
        let probes = if w.prober.active() {
            format!(
                "{} probes to {} every {:.3} s (timeout up to {:.3} s, down after {}, up after {})",
                w.prober.kind().name(),
                w.prober.targets_text(),
                h.interval as f64 / 1e6,
                h.timeout as f64 / 1e6,
                h.down_after,
                h.up_after
            )
        } else {
            "no probes (link events only)".to_string()
        };
        let state = w.health.state();
        let link = if w.health.link_up() {
            "link up"
        } else {
            "link down"
        };
        if state == UplinkState::Up {
            log::info!("uplink {}: {} ({link}), {probes}", u.name, state.name());
        } else {
            log::warn!("uplink {}: {} ({link}), {probes}", u.name, state.name());
        }
    }
    let lan_names: Vec<&str> = lans.iter().map(|l| l.device.as_str()).collect();
    log::info!(
        "ready: {} mode, lan {}, queue {}, firewall {}, control socket {}",
        mode_name(cfg.mode),
        lan_names.join(" "),
        cfg.queue,
        backend.name(),
        cfg.socket.display()
    );
    if verbose {
        log::debug!(
            "port range {}-{}, max connections {}, idle timeout {} s, checksum {}",
            cfg.port_range.0,
            cfg.port_range.1,
            cfg.max_connections,
            cfg.idle_timeout,
            cfg.checksum
        );
    }

    let mode = mode_name(cfg.mode);
    // Fixed entries first, then each uplink's probe sockets (rebuilt every round into the same
    // vector: no allocation once it has grown).
    const FIXED: usize = 4;
    let mut pfds: Vec<sys::PollFd> = Vec::with_capacity(FIXED + 4 * ups.len());
    let stop = (1u32 << sys::SIGINT) | (1u32 << sys::SIGTERM);
    loop {
        let now = sys::monotonic_us();
        let deadline = match (d.engine.poll_timeout(), watch.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout_ms = match deadline {
            Some(t) if t <= now => 0,
            Some(t) => ((t - now).div_ceil(1000)).min(60_000) as i32,
            None => 60_000,
        };
        pfds.clear();
        pfds.push(sys::poll_in(qfd));
        pfds.push(sys::poll_in(ctl.fd()));
        pfds.push(sys::poll_in(signals.as_raw_fd()));
        pfds.push(sys::poll_in(watch.netlink.fd()));
        for w in &watch.uplinks {
            w.prober.register(&mut pfds);
        }
        if let Err(e) = sys::poll(&mut pfds, timeout_ms) {
            return Err(format!("poll: {e}"));
        }
        if sys::readable(&pfds[2]) {
            let mut b = [0u8; 64];
            while matches!(sys::read(signals.as_raw_fd(), &mut b), Ok(n) if n > 0) {}
        }
        let sigs = sys::take_signals();
        if sigs & stop != 0 {
            let name = if sigs & (1 << sys::SIGTERM) != 0 {
                "SIGTERM"
            } else {
                "SIGINT"
            };
            log::info!("{name}: shutting down");
            break;
        }
        if sigs & (1 << sys::SIGHUP) != 0 {
            log::info!(
                "SIGHUP: configuration reload is not supported; restart mpconv to apply changes"
            );
        }
        // Link events first: a dead uplink is known before its packets are handled.
        if sys::readable(&pfds[3]) {
            watch.on_netlink(&mut d.engine);
            d.drain_transmits(sys::monotonic_us());
        }
        if sys::readable(&pfds[0]) {
            d.receive_all();
        }
        watch.run(&mut d.engine, &pfds, FIXED);
        d.drain_transmits(sys::monotonic_us());
        d.run_timers();
        if sys::readable(&pfds[1]) {
            while let Some(stream) = ctl.accept() {
                ControlServer::serve_commands(stream, |req| match req {
                    Command::Status { json } => {
                        let mut io = d.io.clone();
                        io.queue_drops = control::read_queue_drops(cfg.queue);
                        let st = d.engine.status();
                        let hs = watch.status();
                        if json {
                            control::render_json(mode, &ups, &hs, &st, &io)
                        } else {
                            control::render_text(mode, &ups, &hs, &st, &io)
                        }
                    }
                    Command::Handover { uplink } => {
                        let now = sys::monotonic_us();
                        let res = control::find_uplink(&ups, &uplink)
                            .and_then(|i| d.engine.handover(now, i).map(|n| (uplink.as_str(), n)));
                        match &res {
                            Ok((name, n)) => {
                                log::info!("handover to uplink {name}: {n} connections moved")
                            }
                            Err(e) => log::info!("handover to '{uplink}' refused: {e}"),
                        }
                        let reply = control::handover_reply(res);
                        d.drain_transmits(now);
                        reply
                    }
                });
            }
        }
    }

    drop(ctl);
    drop(fw);
    drop(probe_routing);
    drop(routing);
    if let Err(e) = d.queue.unbind(cfg.queue) {
        log::debug!("NFQUEUE unbind: {e}");
    }
    d.io.queue_drops = control::read_queue_drops(cfg.queue);
    log::info!("stopped: {}", summary(&d.engine, &d.io));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::overlap_with_local;

    #[test]
    fn port_range_against_the_kernels_local_ports() {
        let k = "32768\t60999\n";
        assert_eq!(overlap_with_local(k, (61000, 65535)), None);
        assert_eq!(overlap_with_local(k, (60999, 65535)), Some((32768, 60999)));
        assert_eq!(overlap_with_local(k, (1024, 32768)), Some((32768, 60999)));
        assert_eq!(overlap_with_local(k, (1024, 32767)), None);
        assert_eq!(overlap_with_local("garbage", (1, 2)), None);
        assert_eq!(overlap_with_local("", (1, 2)), None);
    }
}
