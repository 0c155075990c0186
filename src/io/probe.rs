//! Health probes through one uplink: ICMP echo, TCP connect or DNS query, to the uplink's
//! `list probe_target` addresses in turn.
//!
//! **Leaving by the right uplink.** Every probe socket is bound to the uplink's device
//! (`SO_BINDTODEVICE`) and address, and carries a firewall mark that a rule of ours sends to the
//! uplink's routing table (the one `routes` fills with the uplink's default route), so probes
//! leave through their uplink whatever the main table says.
//!
//! **Why not the uplink's own mark.** The daemon's `mark/0xffffff00` packets are taken out of
//! conntrack in raw OUTPUT (`firewall`): right for the converter's raw-socket subflows, whose
//! answers are queued in raw PREROUTING before conntrack, but an untracked probe's answer
//! (echo reply, SYN/ACK or RST, DNS reply) reaches the router's INPUT chain as INVALID or NEW
//! and an fw4-like firewall drops it. So probes carry [`probe_mark`]: the uplink's mark with
//! bit 31 flipped, outside the notrack match, and [`routing_plan`] adds one `ip rule` per uplink
//! and family (priority [`PROBE_RULE_PRIORITY_BASE`] + i) to the uplink's table. They are then
//! ordinary tracked router traffic: answers are ESTABLISHED. Nothing of theirs is queued: the
//! queue rules take only TCP to the uplink's address *and* a port of `port_range`, and a TCP
//! probe's source port is checked to be outside that range (or the socket is opened again).
//!
//! Kinds:
//! - `icmp`: a raw ICMP/ICMPv6 socket per target, connected to it (the kernel then delivers
//!   only that source's ICMP); echo id = [`Prober`]'s identifier, sequence = probe id.
//! - `tcp`: a new non-blocking socket per probe; the connect's outcome answers: connected
//!   (SYN/ACK) or refused (RST) both prove the path; other errors fail the probe. Closed with
//!   `SO_LINGER` 0 (a RST, no FIN handshake left behind).
//! - `dns`: a UDP socket per target, connected; a query for the root's NS records with the probe
//!   id as DNS id; any reply with that id answers (an ICMP port unreachable too: the path works).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use super::cmd::{self, argv, Argv, Installed, Step};
use super::net::ResolvedUplink;
use super::{routes, sys};
use crate::config::{Config, ProbeKind, UplinkHealth};

/// Flipped in an uplink's mark to get its probes' mark (see the module docs).
pub const PROBE_MARK_FLIP: u32 = 0x8000_0000;
/// Priority of the probe rule of uplink 0; uplink `i` uses `PROBE_RULE_PRIORITY_BASE + i`.
pub const PROBE_RULE_PRIORITY_BASE: u32 = 9100;
/// TCP probes in flight per uplink at most.
const MAX_TCP: usize = 8;

/// The firewall mark of uplink `i`'s probes.
pub fn probe_mark(cfg: &Config, i: usize) -> u32 {
    routes::uplink_mark(cfg, i) ^ PROBE_MARK_FLIP
}

fn rule(family: &str, verb: &str, mark: u32, table: u32, prio: u32) -> Argv {
    argv(&[
        "ip",
        family,
        "rule",
        verb,
        "fwmark",
        &format!("{mark:#x}"),
        "lookup",
        &table.to_string(),
        "priority",
        &prio.to_string(),
    ])
}

/// The `ip rule`s that route the probes of the uplinks that probe (`health[i].probing()`) by
/// their uplink's table, and the commands that remove leftovers of an earlier run.
pub fn routing_plan(
    cfg: &Config,
    ups: &[ResolvedUplink],
    health: &[UplinkHealth],
) -> (Vec<Step>, Vec<Argv>) {
    let mut steps = Vec::new();
    let mut stale = Vec::new();
    for (i, u) in ups.iter().enumerate() {
        let mark = probe_mark(cfg, i);
        let table = routes::uplink_table(cfg, i);
        let prio = PROBE_RULE_PRIORITY_BASE + i as u32;
        let probing = health.get(i).is_some_and(|h| h.probing());
        for (fam, present) in [("-4", u.addr4.is_some()), ("-6", u.addr6.is_some())] {
            stale.push(rule(fam, "del", mark, table, prio));
            if probing && present {
                steps.push(Step::new(
                    rule(fam, "add", mark, table, prio),
                    vec![rule(fam, "del", mark, table, prio)],
                ));
            }
        }
    }
    (steps, stale)
}

/// Install [`routing_plan`]; the result removes the rules when dropped.
pub fn install_routing(
    cfg: &Config,
    ups: &[ResolvedUplink],
    health: &[UplinkHealth],
) -> Result<Installed, String> {
    let (steps, stale) = routing_plan(cfg, ups, health);
    cmd::remove_stale(&stale);
    Installed::apply("probe routing", Vec::new(), steps)
}

/// The result of a probe, by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered(u16),
    Failed(u16),
}

/// One ICMP echo request (type 8 for IPv4, 128 for IPv6), checksummed for IPv4 (the kernel
/// fills ICMPv6's).
pub fn echo_request(v6: bool, ident: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = if v6 { 128 } else { 8 };
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"mpconv\0\0");
    if !v6 {
        let c = !crate::wire::checksum::fold(crate::wire::checksum::sum(&p, 0));
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The sequence number of an echo reply to `ident` in what a raw ICMP socket received (IPv4:
/// with its IP header; IPv6: the ICMPv6 message alone).
pub fn echo_reply_seq(v6: bool, pkt: &[u8], ident: u16) -> Option<u16> {
    let icmp = if v6 {
        pkt
    } else {
        let ihl = usize::from(pkt.first()? & 0x0f) * 4;
        if pkt.first()? >> 4 != 4 || ihl < 20 {
            return None;
        }
        pkt.get(ihl..)?
    };
    let want = if v6 { 129 } else { 0 };
    if icmp.len() < 8 || icmp[0] != want || icmp[1] != 0 {
        return None;
    }
    (u16::from_be_bytes([icmp[4], icmp[5]]) == ident)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// A DNS query (RD set) for the root's NS records with id `id`.
pub fn dns_query(id: u16) -> [u8; 17] {
    let mut q = [0u8; 17];
    q[0..2].copy_from_slice(&id.to_be_bytes());
    q[2] = 0x01; // RD
    q[5] = 1; // QDCOUNT
              // QNAME: the root (one zero byte at 12), QTYPE NS (2), QCLASS IN (1).
    q[14] = 2;
    q[16] = 1;
    q
}

/// The id of a DNS response (QR set), any RCODE.
pub fn dns_reply_id(pkt: &[u8]) -> Option<u16> {
    (pkt.len() >= 12 && pkt[2] & 0x80 != 0).then(|| u16::from_be_bytes([pkt[0], pkt[1]]))
}

struct TcpProbe {
    id: u16,
    fd: OwnedFd,
}

/// The probes of one uplink.
pub struct Prober {
    kind: ProbeKind,
    device: String,
    mark: u32,
    src4: Option<Ipv4Addr>,
    src6: Option<Ipv6Addr>,
    /// The targets this uplink can reach (family with a source address).
    targets: Vec<SocketAddr>,
    next: usize,
    /// ICMP and DNS: one socket per target (opened when first needed, again after an error),
    /// with the last probe id sent on it.
    socks: Vec<Option<OwnedFd>>,
    last_id: Vec<Option<u16>>,
    tcp: Vec<TcpProbe>,
    ident: u16,
    port_range: (u16, u16),
    buf: [u8; 1500],
}

impl Prober {
    /// The prober of uplink `i`; targets of a family the uplink has no address for are left
    /// out (and named in the returned warnings).
    pub fn new(
        cfg: &Config,
        i: usize,
        up: &ResolvedUplink,
        h: &UplinkHealth,
    ) -> (Prober, Vec<String>) {
        let mut warnings = Vec::new();
        let targets: Vec<SocketAddr> = if h.probing() {
            h.probe_targets
                .iter()
                .copied()
                .filter(|t| {
                    let ok = match t.ip() {
                        IpAddr::V4(_) => up.addr4.is_some(),
                        IpAddr::V6(_) => up.addr6.is_some(),
                    };
                    if !ok {
                        warnings.push(format!(
                            "uplink {}: probe target {} left out: the uplink has no IPv{} address",
                            up.name,
                            target_text(h.probe, *t),
                            if t.is_ipv4() { 4 } else { 6 }
                        ));
                    }
                    ok
                })
                .collect()
        } else {
            Vec::new()
        };
        let n = targets.len();
        let p = Prober {
            kind: h.probe,
            device: up.device.clone(),
            mark: probe_mark(cfg, i),
            src4: up.addr4,
            src6: up.addr6,
            targets,
            next: 0,
            socks: (0..n).map(|_| None).collect(),
            last_id: vec![None; n],
            tcp: Vec::with_capacity(MAX_TCP),
            ident: (std::process::id() as u16) ^ ((i as u16) << 12),
            port_range: cfg.port_range,
            buf: [0; 1500],
        };
        (p, warnings)
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// Whether there is anything to probe.
    pub fn active(&self) -> bool {
        self.kind != ProbeKind::None && !self.targets.is_empty()
    }

    pub fn targets(&self) -> &[SocketAddr] {
        &self.targets
    }

    /// The targets as text for messages (`192.0.2.1, [2001:db8::1]:53`).
    pub fn targets_text(&self) -> String {
        let v: Vec<String> = self
            .targets
            .iter()
            .map(|t| target_text(self.kind, *t))
            .collect();
        v.join(", ")
    }

    fn source(&self, t: &SocketAddr) -> Option<SocketAddr> {
        match t.ip() {
            IpAddr::V4(_) => self.src4.map(|a| SocketAddr::new(IpAddr::V4(a), 0)),
            IpAddr::V6(_) => self.src6.map(|a| SocketAddr::new(IpAddr::V6(a), 0)),
        }
    }

    /// A socket of `ty`/`proto` for `target`: marked, bound to the device and the uplink's
    /// address (and, for TCP, to a port outside `port_range`).
    fn open(&self, target: &SocketAddr, ty: i32, proto: i32) -> std::io::Result<OwnedFd> {
        let src = self
            .source(target)
            .ok_or(std::io::ErrorKind::AddrNotAvailable)?;
        for _ in 0..4 {
            let domain = if target.is_ipv4() {
                sys::AF_INET
            } else {
                sys::AF_INET6
            };
            let fd = sys::socket(domain, ty, proto)?;
            let raw = fd.as_raw_fd();
            sys::set_mark(raw, self.mark)?;
            sys::bind_to_device(raw, &self.device)?;
            sys::bind(raw, &src)?;
            if ty == sys::SOCK_STREAM {
                let port = sys::local_port(raw)?;
                if (self.port_range.0..=self.port_range.1).contains(&port) {
                    // Its answers would be queued as the converter's: take another port.
                    continue;
                }
                sys::set_linger_zero(raw)?;
            }
            return Ok(fd);
        }
        Err(std::io::ErrorKind::AddrInUse.into())
    }

    /// Send probe `id` to the next target; returns that target, or an error (the probe failed).
    pub fn send(&mut self, id: u16) -> Result<SocketAddr, (SocketAddr, std::io::Error)> {
        let Some(&target) = self.targets.get(self.next % self.targets.len().max(1)) else {
            return Err((
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                std::io::ErrorKind::NotFound.into(),
            ));
        };
        let ti = self.next % self.targets.len();
        self.next = (self.next + 1) % self.targets.len();
        let res = match self.kind {
            ProbeKind::Icmp | ProbeKind::Dns => self.send_dgram(ti, target, id),
            ProbeKind::Tcp => self.send_tcp(target, id),
            ProbeKind::None => Err(std::io::ErrorKind::Unsupported.into()),
        };
        res.map(|()| target).map_err(|e| (target, e))
    }

    fn send_dgram(&mut self, ti: usize, target: SocketAddr, id: u16) -> std::io::Result<()> {
        if self.socks[ti].is_none() {
            let (ty, proto) = match (self.kind, target.is_ipv4()) {
                (ProbeKind::Icmp, true) => (sys::SOCK_RAW, sys::IPPROTO_ICMP),
                (ProbeKind::Icmp, false) => (sys::SOCK_RAW, sys::IPPROTO_ICMPV6),
                _ => (sys::SOCK_DGRAM, 0),
            };
            let fd = self.open(&target, ty, proto)?;
            sys::connect(fd.as_raw_fd(), &target)?;
            self.socks[ti] = Some(fd);
        }
        let Some(fd) = self.socks[ti].as_ref().map(|f| f.as_raw_fd()) else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        let res = match self.kind {
            ProbeKind::Icmp => sys::send(fd, &echo_request(target.is_ipv6(), self.ident, id)),
            _ => sys::send(fd, &dns_query(id)),
        };
        match res {
            Ok(_) => {
                self.last_id[ti] = Some(id);
                Ok(())
            }
            Err(e) => {
                // Open it again next time (the address or route may have changed).
                self.socks[ti] = None;
                Err(e)
            }
        }
    }

    fn send_tcp(&mut self, target: SocketAddr, id: u16) -> std::io::Result<()> {
        self.tcp.retain(|t| t.id != id);
        if self.tcp.len() >= MAX_TCP {
            self.tcp.remove(0);
        }
        let fd = self.open(&target, sys::SOCK_STREAM, sys::IPPROTO_TCP)?;
        match sys::connect(fd.as_raw_fd(), &target) {
            Ok(_) => {
                self.tcp.push(TcpProbe { id, fd });
                Ok(())
            }
            // A RST that came back at once (local target) counts as an answer later, in
            // service(): keep the socket; its SO_ERROR says ECONNREFUSED.
            Err(e) if e.raw_os_error() == Some(sys::ECONNREFUSED) => {
                self.tcp.push(TcpProbe { id, fd });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Keep only the TCP attempts whose probe is still awaited (the others timed out: their
    /// sockets are closed).
    pub fn retain(&mut self, mut awaited: impl FnMut(u16) -> bool) {
        self.tcp.retain(|t| awaited(t.id));
    }

    /// How many entries [`Prober::register`] adds.
    pub fn registered(&self) -> usize {
        self.socks.iter().flatten().count() + self.tcp.len()
    }

    /// Append what to poll for: the datagram sockets (input), the TCP attempts (output).
    /// [`Prober::service`] must get the same entries back, in the same order.
    pub fn register(&self, pfds: &mut Vec<sys::PollFd>) {
        for s in self.socks.iter().flatten() {
            pfds.push(sys::poll_in(s.as_raw_fd()));
        }
        for t in &self.tcp {
            pfds.push(sys::poll_out(t.fd.as_raw_fd()));
        }
    }

    /// Handle what poll reported on the entries [`Prober::register`] added.
    pub fn service(&mut self, pfds: &[sys::PollFd], mut f: impl FnMut(Outcome)) {
        let mut k = 0;
        for ti in 0..self.socks.len() {
            let Some(fd) = self.socks[ti].as_ref().map(|s| s.as_raw_fd()) else {
                continue;
            };
            let ready = pfds.get(k).is_some_and(sys::readable);
            k += 1;
            if !ready {
                continue;
            }
            let v6 = self.targets.get(ti).is_some_and(|t| t.is_ipv6());
            for _ in 0..64 {
                match sys::recv(fd, &mut self.buf) {
                    Ok(n) => {
                        let pkt = &self.buf[..n.min(self.buf.len())];
                        let id = match self.kind {
                            ProbeKind::Icmp => echo_reply_seq(v6, pkt, self.ident),
                            _ => dns_reply_id(pkt),
                        };
                        if let Some(id) = id {
                            f(Outcome::Answered(id));
                        }
                    }
                    // A DNS target that answers with ICMP port unreachable is reachable.
                    Err(e) if e.raw_os_error() == Some(sys::ECONNREFUSED) => {
                        if let Some(id) = self.last_id[ti] {
                            f(Outcome::Answered(id));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("probe socket on {}: {e}", self.device);
                        break;
                    }
                }
            }
        }
        let mut i = 0;
        while i < self.tcp.len() {
            let ready = pfds.get(k).is_some_and(sys::writable);
            k += 1;
            if !ready {
                i += 1;
                continue;
            }
            let t = self.tcp.remove(i);
            match sys::so_error(t.fd.as_raw_fd()) {
                Ok(0) => f(Outcome::Answered(t.id)),
                Ok(e) if e == sys::ECONNREFUSED => f(Outcome::Answered(t.id)),
                Ok(e) => {
                    log::debug!(
                        "tcp probe {} on {}: {}",
                        t.id,
                        self.device,
                        std::io::Error::from_raw_os_error(e)
                    );
                    f(Outcome::Failed(t.id));
                }
                Err(_) => f(Outcome::Failed(t.id)),
            }
        }
    }
}

/// A target as written in the configuration: `IP` for ICMP, `IP:PORT` / `[IPv6]:PORT` else.
pub fn target_text(kind: ProbeKind, t: SocketAddr) -> String {
    match kind {
        ProbeKind::Icmp | ProbeKind::None => t.ip().to_string(),
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::routes::tests::{config, uplinks};

    #[test]
    fn marks_avoid_the_notrack_match() {
        let cfg = config();
        for i in 0..2 {
            let m = probe_mark(&cfg, i);
            assert_ne!(
                m & crate::io::firewall::MARK_MASK,
                cfg.mark & crate::io::firewall::MARK_MASK
            );
            assert_eq!(m ^ PROBE_MARK_FLIP, routes::uplink_mark(&cfg, i));
        }
        assert_eq!(probe_mark(&cfg, 0), 0x86d7_0001);
    }

    #[test]
    fn routing_rules_only_for_probing_uplinks() {
        let cfg = config();
        let probing = UplinkHealth {
            probe_targets: vec!["192.0.2.1:0".parse().unwrap()],
            ..Default::default()
        };
        let (steps, stale) = routing_plan(
            &cfg,
            &uplinks(),
            &[probing.clone(), UplinkHealth::default()],
        );
        let applied: Vec<String> = steps.iter().map(|s| s.apply.join(" ")).collect();
        assert_eq!(
            applied,
            [
                "ip -4 rule add fwmark 0x86d70001 lookup 6170 priority 9100",
                "ip -6 rule add fwmark 0x86d70001 lookup 6170 priority 9100",
            ]
        );
        assert_eq!(
            steps[0].undo[0].join(" "),
            "ip -4 rule del fwmark 0x86d70001 lookup 6170 priority 9100"
        );
        assert_eq!(
            stale.len(),
            4,
            "both families of both uplinks are cleaned up"
        );
        let (steps, _) = routing_plan(&cfg, &uplinks(), &[probing.clone(), probing]);
        assert_eq!(steps.len(), 3, "lte has no IPv6 address");
        assert_eq!(
            steps[2].apply.join(" "),
            "ip -4 rule add fwmark 0x86d70002 lookup 6171 priority 9101"
        );
    }

    #[test]
    fn icmp_messages() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(&p[..8], &[8, 0, p[2], p[3], 0x12, 0x34, 0, 7]);
        assert_eq!(
            crate::wire::checksum::fold(crate::wire::checksum::sum(&p, 0)),
            0xffff,
            "valid checksum"
        );
        assert_eq!(echo_request(true, 1, 2)[0], 128);
        // An IPv4 reply with a 20-byte header.
        let mut r = vec![0x45u8];
        r.extend_from_slice(&[0; 19]);
        r.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 9]);
        assert_eq!(echo_reply_seq(false, &r, 0x1234), Some(9));
        assert_eq!(echo_reply_seq(false, &r, 0x1235), None, "someone else's");
        r[20] = 8;
        assert_eq!(echo_reply_seq(false, &r, 0x1234), None, "a request");
        let v6 = [129u8, 0, 0, 0, 0x12, 0x34, 1, 2];
        assert_eq!(echo_reply_seq(true, &v6, 0x1234), Some(0x102));
        for n in 0..r.len() {
            let _ = echo_reply_seq(false, &r[..n], 0x1234);
            let _ = echo_reply_seq(true, &r[..n], 0x1234);
        }
        assert_eq!(echo_reply_seq(false, &[0x65; 30], 0), None, "not IPv4");
    }

    #[test]
    fn dns_messages() {
        let q = dns_query(0xbeef);
        assert_eq!(q, [0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]);
        assert_eq!(dns_reply_id(&q), None, "a query is no answer");
        let mut r = q;
        r[2] |= 0x80;
        r[3] = 0x05; // REFUSED still answers
        assert_eq!(dns_reply_id(&r), Some(0xbeef));
        assert_eq!(dns_reply_id(&r[..11]), None);
    }

    #[test]
    fn prober_targets_follow_the_uplink_addresses() {
        let cfg = config();
        let ups = uplinks();
        let h = UplinkHealth {
            probe: ProbeKind::Tcp,
            probe_targets: vec![
                "192.0.2.1:443".parse().unwrap(),
                "[2001:db8::1]:443".parse().unwrap(),
            ],
            ..Default::default()
        };
        let (p, w) = Prober::new(&cfg, 1, &ups[1], &h);
        assert_eq!(p.targets(), &["192.0.2.1:443".parse().unwrap()]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("[2001:db8::1]:443 left out"), "{w:?}");
        assert!(p.active());
        let (p, w) = Prober::new(&cfg, 0, &ups[0], &h);
        assert_eq!(p.targets().len(), 2);
        assert!(w.is_empty());
        assert_eq!(p.targets_text(), "192.0.2.1:443, [2001:db8::1]:443");
        let none = UplinkHealth {
            probe: ProbeKind::None,
            ..h
        };
        assert!(!Prober::new(&cfg, 0, &ups[0], &none).0.active());
        assert_eq!(
            target_text(ProbeKind::Icmp, "192.0.2.1:0".parse().unwrap()),
            "192.0.2.1"
        );
    }
}
