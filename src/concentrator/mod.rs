//! The concentrator: an off-path Transport Converter (RFC 8803). Clients (mpconv routers, or
//! anything speaking the Convert protocol) open an MPTCP connection to it with a Convert
//! message at the start of the stream (in the SYN with TCP Fast Open, or right after); the
//! concentrator checks it, opens a plain TCP connection to the destination named in the
//! Connect TLV, answers with a Convert message (or an Error TLV and closes) and then relays
//! bytes both ways with `splice(2)` through one pipe per direction.
//!
//! One thread, one `poll(2)` loop, non-blocking sockets, bounded resources: at most
//! `max_connections` connections (`per_client` per client address), a handshake deadline
//! (`connect_timeout` for the Convert message and again for the destination), an idle timeout
//! for relays, a short linger after an Error reply.
//!
//! TCP Fast Open: the listener enables TFO and sets `TCP_FASTOPEN_NO_COOKIE`, so a client's
//! SYN data is accepted without a TFO cookie round trip (that is what makes the protocol
//! 0-RTT). This is safe enough here because the data in a SYN is only a Convert request: the
//! client's source prefix is checked at accept time, a request is authenticated (Cookie TLV)
//! before any outgoing connection is made, and the TFO queue length bounds pending requests.
//! The netns sysctl `net.ipv4.tcp_fastopen` gets its server bit (0x2) if it lacks it (restored
//! at exit); the per-socket option replaces the global "no cookie" bit 0x200.
//!
//! A TFO connection is accepted as soon as its SYN arrives, before the client's third ACK,
//! so the request may well be handled (and an Error reply written) while the client's first
//! subflow is still in SYN_RECV. The MPTCP socket takes such a write into its send queue, but
//! the kernel only transmits on established subflows, and nothing pushes the queue out when
//! that subflow completes its handshake unless a later packet from the client carries a
//! DATA_ACK (an MPTCP v1 client's third ACK and first data carry MP_CAPABLE, not DSS: Linux
//! and mpconv's router alike). The reply and DATA_FIN then sat there until the client gave up,
//! and a join meanwhile found the connection shut down and was reset. So nothing is written
//! to a client (nor its write side shut) until its first subflow has left SYN_RECV; such
//! connections are re-checked every [`CLIENT_RECHECK_US`].

pub mod sys;

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::config::concentrator::{ConcentratorConfig, Prefix};
use crate::io::control::{self, ControlServer, Request};
use crate::io::{cmd, sys as iosys};
use crate::wire::convert::{self, code, CookieCheck, ParseError};

/// Pending TFO requests accepted by the listener.
const TFO_QLEN: i32 = 256;
/// How long a rejected client gets to read its Error reply.
const LINGER_US: u64 = 2_000_000;
/// At most one log line per rejection reason per this interval.
const LOG_INTERVAL_US: u64 = 10_000_000;
/// How often a client whose first subflow is still in SYN_RECV is re-checked while a reply
/// waits for it.
const CLIENT_RECHECK_US: u64 = 5_000;
/// Own addresses are re-read this often.
const ADDR_REFRESH_US: u64 = 30_000_000;
/// TCP option kinds the concentrator supports towards the destination (Supported TCP
/// Extensions TLV): MSS, window scale, SACK permitted, timestamps; and MPTCP on the client leg.
const SUPPORTED_EXT: [u8; 5] = [2, 3, 4, 8, 30];

/// Why a client got no relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    NotAllowed,
    PerClient,
    Capacity,
    Malformed,
    UnsupportedVersion,
    UnsupportedMessage,
    MissingCookie,
    BadCookie,
    DeniedDest,
    UnsupportedOption,
    Refused,
    Unreachable,
    Timeout,
    NetworkFailure,
    Handshake,
}

const REASONS: [Reason; 15] = [
    Reason::NotAllowed,
    Reason::PerClient,
    Reason::Capacity,
    Reason::Malformed,
    Reason::UnsupportedVersion,
    Reason::UnsupportedMessage,
    Reason::MissingCookie,
    Reason::BadCookie,
    Reason::DeniedDest,
    Reason::UnsupportedOption,
    Reason::Refused,
    Reason::Unreachable,
    Reason::Timeout,
    Reason::NetworkFailure,
    Reason::Handshake,
];

impl Reason {
    fn name(self) -> &'static str {
        match self {
            Reason::NotAllowed => "not_allowed",
            Reason::PerClient => "per_client_limit",
            Reason::Capacity => "max_connections",
            Reason::Malformed => "malformed",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::UnsupportedMessage => "unsupported_message",
            Reason::MissingCookie => "missing_cookie",
            Reason::BadCookie => "bad_cookie",
            Reason::DeniedDest => "denied_destination",
            Reason::UnsupportedOption => "unsupported_tcp_option",
            Reason::Refused => "destination_refused",
            Reason::Unreachable => "destination_unreachable",
            Reason::Timeout => "destination_timeout",
            Reason::NetworkFailure => "network_failure",
            Reason::Handshake => "handshake_timeout",
        }
    }
    fn index(self) -> usize {
        REASONS.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Rejection counters with rate-limited logging.
#[derive(Default)]
struct Rejections {
    total: [u64; REASONS.len()],
    unlogged: [u32; REASONS.len()],
    last_log: [Option<u64>; REASONS.len()],
}

impl Rejections {
    fn record(&mut self, r: Reason, now: u64, detail: &str) {
        let i = r.index();
        self.total[i] += 1;
        let due = self.last_log[i].is_none_or(|t| now.saturating_sub(t) >= LOG_INTERVAL_US);
        if due {
            let more = std::mem::take(&mut self.unlogged[i]);
            if more > 0 {
                log::info!(
                    "rejected ({}): {detail} (and {more} more in the last 10 s)",
                    r.name()
                );
            } else {
                log::info!("rejected ({}): {detail}", r.name());
            }
            self.last_log[i] = Some(now);
        } else {
            self.unlogged[i] += 1;
        }
    }

    fn flush(&mut self, now: u64) {
        for r in REASONS {
            let i = r.index();
            if self.unlogged[i] > 0
                && self.last_log[i].is_some_and(|t| now.saturating_sub(t) >= LOG_INTERVAL_US)
            {
                log::info!(
                    "rejected ({}): {} more in the last 10 s",
                    r.name(),
                    self.unlogged[i]
                );
                self.unlogged[i] = 0;
                self.last_log[i] = Some(now);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the Convert message.
    Reading,
    /// Connecting to the destination.
    Connecting,
    Relaying,
    /// Error reply queued; discard input until EOF or the linger deadline.
    Draining,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Reading => "reading",
            State::Connecting => "connecting",
            State::Relaying => "relaying",
            State::Draining => "closing",
        }
    }
}

/// One direction of a relay: src → pipe → dst.
#[derive(Default)]
struct Dir {
    pipe: Option<(OwnedFd, OwnedFd)>,
    cap: usize,
    in_pipe: usize,
    /// The last splice into the pipe would have blocked although bytes were in it: its slots
    /// may be full (a slot holds one segment, however small), so `src` is not polled until
    /// some bytes left the pipe (else a readable `src` spins the loop).
    pipe_full: bool,
    /// Bytes read in user space that go before the spliced ones.
    pending: Vec<u8>,
    eof: bool,
    shut: bool,
    bytes: u64,
}

struct Conn {
    client: TcpStream,
    peer: SocketAddr,
    server: Option<TcpStream>,
    dst: Option<SocketAddr>,
    state: State,
    buf: Vec<u8>,
    want_info: bool,
    deadline: u64,
    last_active: u64,
    since: u64,
    /// client → server.
    up: Dir,
    /// server → client.
    down: Dir,
    /// The client's first subflow has completed its handshake: writes to it get sent (see
    /// the module documentation). Cached once true.
    client_ready: bool,
    done: bool,
}

#[derive(Default)]
struct Counters {
    accepted: u64,
    relayed: u64,
    closed: u64,
    idle_closed: u64,
    relay_errors: u64,
    bytes_up: u64,
    bytes_down: u64,
    info_replies: u64,
}

struct Concentrator {
    cfg: ConcentratorConfig,
    listener: OwnedFd,
    conns: Vec<Conn>,
    own: Vec<IpAddr>,
    own_read: u64,
    rej: Rejections,
    ctr: Counters,
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Addresses of this network namespace (`ip -o addr show`).
fn own_addresses() -> Vec<IpAddr> {
    let Ok(out) = cmd::run(&cmd::argv(&["ip", "-o", "addr", "show"]), None) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for line in out.lines() {
        let mut w = line.split_whitespace();
        while let Some(t) = w.next() {
            if t == "inet" || t == "inet6" {
                if let Some(a) = w.next().and_then(|a| a.split('/').next()) {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        v.push(ip);
                    }
                }
            }
        }
    }
    v
}

/// Why a destination is refused: `Some(true)` = malformed (RFC 8803's example for loopback,
/// multicast and broadcast), `Some(false)` = not authorized (policy), `None` = allowed.
fn dest_denied(ip: IpAddr, port: u16, own: &[IpAddr], deny: &[Prefix]) -> Option<bool> {
    let ip = ip.to_canonical();
    let malformed = port == 0
        || ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(a) if a.is_broadcast() || a.octets()[0] == 0);
    if malformed {
        return Some(true);
    }
    let link_local = match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local || own.contains(&ip) || deny.iter().any(|p| p.contains(ip)) {
        return Some(false);
    }
    None
}

/// Check the TCP options of a Connect TLV: `Ok(mss)` or `Err(Some(unsupported kinds))`,
/// `Err(None)` when the option block is malformed.
fn check_options(opts: &[u8]) -> Result<Option<u16>, Option<Vec<u8>>> {
    let mut mss = None;
    let mut bad = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).ok_or(None)?);
                if len < 2 || i + len > opts.len() {
                    return Err(None);
                }
                match kind {
                    2 if len == 4 => mss = Some(u16::from_be_bytes([opts[i + 2], opts[i + 3]])),
                    3 | 4 | 8 => {}
                    k => bad.push(k),
                }
                i += len;
            }
        }
    }
    if bad.is_empty() {
        Ok(mss)
    } else {
        Err(Some(bad))
    }
}

impl Conn {
    fn new(client: TcpStream, peer: SocketAddr, now: u64, timeout: u64) -> Conn {
        Conn {
            client,
            peer,
            server: None,
            dst: None,
            state: State::Reading,
            buf: Vec::with_capacity(convert::MAX_LEN),
            want_info: false,
            deadline: now + timeout,
            last_active: now,
            since: now,
            up: Dir::default(),
            down: Dir::default(),
            client_ready: false,
            done: false,
        }
    }

    /// Whether writing to the client now gets the bytes sent: false while its first subflow
    /// is in SYN_RECV (a TFO connection accepted before the third ACK).
    fn client_writable(&mut self) -> bool {
        if !self.client_ready {
            match sys::tcp_state(self.client.as_raw_fd()) {
                Ok(sys::TCP_SYN_RECV) => return false,
                // Established or later, or no answer (then do not wait forever).
                _ => self.client_ready = true,
            }
        }
        true
    }

    /// Output for the client waits only for its handshake (re-checked on a timer, since the
    /// MPTCP socket reports no event when its first subflow becomes established).
    fn waits_for_client(&self) -> bool {
        !self.client_ready && matches!(self.state, State::Draining | State::Relaying)
    }

    /// Queue an error reply and start draining.
    fn reject(&mut self, now: u64, code: u8, value: &[u8], echo: bool) {
        let mut out = [0u8; convert::MAX_LEN];
        let n = if echo {
            convert::emit_error_echo(&mut out, code, value)
        } else {
            convert::emit_error(&mut out, code, value)
        }
        .unwrap_or(0);
        self.down.pending = out[..n].to_vec();
        self.server = None;
        self.state = State::Draining;
        self.deadline = now + LINGER_US;
        self.flush_drain();
    }

    fn flush_drain(&mut self) {
        if self.client_writable() {
            self.flush_reply();
        }
        let mut sink = [0u8; 4096];
        loop {
            match self.client.read(&mut sink) {
                Ok(0) => {
                    self.done = true;
                    return;
                }
                Ok(_) => {}
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
    }

    /// Write the queued reply, then shut the write side (only once it is all written).
    fn flush_reply(&mut self) {
        while !self.down.pending.is_empty() {
            match self.client.write(&self.down.pending) {
                Ok(0) => return,
                Ok(n) => {
                    self.down.pending.drain(..n);
                }
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
        if !self.down.shut {
            let _ = self.client.shutdown(Shutdown::Write);
            self.down.shut = true;
        }
    }

    fn detail(&self) -> String {
        match self.dst {
            Some(d) => format!("{} -> {d}", self.peer),
            None => self.peer.to_string(),
        }
    }
}

/// One relay direction step: pending bytes, then splice src → pipe → dst. Returns whether
/// anything moved; errors end the connection.
fn pump(dir: &mut Dir, src: RawFd, dst: &mut TcpStream) -> io::Result<bool> {
    let mut moved = false;
    while !dir.pending.is_empty() {
        match dst.write(&dir.pending) {
            Ok(n) => {
                dir.pending.drain(..n);
                dir.bytes += n as u64;
                moved = true;
            }
            Err(e) if would_block(&e) => return Ok(moved),
            Err(e) => return Err(e),
        }
    }
    let Some((r, w)) = &dir.pipe else {
        return Ok(moved);
    };
    let (r, w) = (r.as_raw_fd(), w.as_raw_fd());
    loop {
        let mut step = false;
        if !dir.eof && dir.in_pipe < dir.cap && !dir.pipe_full {
            match sys::splice(src, w, dir.cap - dir.in_pipe) {
                Ok(0) => dir.eof = true,
                Ok(n) => {
                    dir.in_pipe += n;
                    step = true;
                }
                Err(e) if would_block(&e) => dir.pipe_full = dir.in_pipe > 0,
                Err(e) => return Err(e),
            }
        }
        if dir.in_pipe > 0 {
            match sys::splice(r, dst.as_raw_fd(), dir.in_pipe) {
                Ok(n) => {
                    dir.in_pipe -= n;
                    dir.bytes += n as u64;
                    step |= n > 0;
                    dir.pipe_full &= n == 0;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        moved |= step;
        if !step {
            break;
        }
    }
    if dir.eof && dir.in_pipe == 0 && !dir.shut {
        let _ = dst.shutdown(Shutdown::Write);
        dir.shut = true;
    }
    Ok(moved)
}

fn new_dir_pipe(dir: &mut Dir) -> io::Result<()> {
    let (r, w) = sys::pipe()?;
    dir.cap = sys::pipe_capacity(w.as_raw_fd());
    dir.pipe = Some((r, w));
    Ok(())
}

impl Concentrator {
    fn secs(&self, s: u32) -> u64 {
        u64::from(s) * 1_000_000
    }

    fn accept_all(&mut self, now: u64) {
        for _ in 0..64 {
            let (fd, peer) = match sys::accept(self.listener.as_raw_fd()) {
                Ok(x) => x,
                Err(e) if would_block(&e) => return,
                Err(e) => {
                    log::warn!("accept: {e}");
                    return;
                }
            };
            self.ctr.accepted += 1;
            let client = TcpStream::from(fd);
            let timeout = self.secs(self.cfg.connect_timeout);
            let mut c = Conn::new(client, peer, now, timeout);
            let ip = peer.ip().to_canonical();
            if !self.cfg.allow_any && !self.cfg.allow.iter().any(|p| p.contains(ip)) {
                self.rej.record(Reason::NotAllowed, now, &c.detail());
                c.reject(now, code::NOT_AUTHORIZED, &[0], false);
            } else if self.conns.len() >= self.cfg.max_connections {
                self.rej.record(Reason::Capacity, now, &c.detail());
                c.reject(now, code::RESOURCE_EXCEEDED, &[0], false);
            } else if self
                .conns
                .iter()
                .filter(|o| o.peer.ip().to_canonical() == ip)
                .count()
                >= self.cfg.per_client
            {
                self.rej.record(Reason::PerClient, now, &c.detail());
                c.reject(now, code::RESOURCE_EXCEEDED, &[0], false);
            } else {
                self.read_request(&mut c, now);
            }
            if c.done {
                continue;
            }
            if self.conns.len() > self.cfg.max_connections + 64 {
                // Over capacity even for error replies: drop at once.
                continue;
            }
            self.conns.push(c);
        }
    }

    fn read_request(&mut self, c: &mut Conn, now: u64) {
        let mut tmp = [0u8; 2048];
        loop {
            match c.client.read(&mut tmp) {
                Ok(0) => {
                    c.done = true;
                    return;
                }
                Ok(n) => c.buf.extend_from_slice(&tmp[..n]),
                Err(e) if would_block(&e) => break,
                Err(_) => {
                    c.done = true;
                    return;
                }
            }
            if c.buf.len() >= convert::MAX_LEN {
                break;
            }
        }
        let buf = std::mem::take(&mut c.buf);
        match convert::parse(&buf) {
            Err(ParseError::Incomplete { .. }) => {
                c.buf = buf;
            }
            Err(ParseError::UnsupportedVersion(v)) => {
                self.rej.record(
                    Reason::UnsupportedVersion,
                    now,
                    &format!("{} (version {v})", c.detail()),
                );
                c.reject(now, code::UNSUPPORTED_VERSION, &[convert::VERSION], false);
            }
            Err(e) => {
                self.rej
                    .record(Reason::Malformed, now, &format!("{}: {e}", c.detail()));
                let total = convert::parse_header(&buf).map_or(buf.len(), |h| h.total_len);
                c.reject(
                    now,
                    code::MALFORMED_MESSAGE,
                    &buf[..total.min(buf.len())],
                    true,
                );
            }
            Ok(msg) => {
                let extra = buf[msg.len()..].to_vec();
                self.validate(c, &msg, now);
                if c.state == State::Connecting || c.state == State::Reading {
                    c.up.pending = extra;
                }
            }
        }
    }

    fn validate(&mut self, c: &mut Conn, msg: &convert::Message<'_>, now: u64) {
        use convert::tlv;
        for t in msg.tlvs() {
            if !matches!(t.kind, tlv::INFO | tlv::CONNECT | tlv::COOKIE) {
                self.rej.record(
                    Reason::UnsupportedMessage,
                    now,
                    &format!("{}: TLV type {}", c.detail(), t.kind),
                );
                c.reject(now, code::UNSUPPORTED_MESSAGE, msg.bytes(), true);
                return;
            }
        }
        c.want_info = msg.find(tlv::INFO).is_some();
        let Some(conn) = msg.connect() else {
            if c.want_info {
                // Info only: list what we support and close.
                self.ctr.info_replies += 1;
                let mut out = [0u8; 64];
                let mut n = 0;
                if let Ok(mut b) = convert::Builder::new(&mut out) {
                    if b.supported_ext(&SUPPORTED_EXT).is_ok() {
                        n = b.finish();
                    }
                }
                c.down.pending = out[..n].to_vec();
                c.state = State::Draining;
                c.deadline = now + LINGER_US;
                c.flush_drain();
                return;
            }
            self.rej.record(
                Reason::Malformed,
                now,
                &format!("{}: no Connect TLV", c.detail()),
            );
            c.reject(now, code::MALFORMED_MESSAGE, msg.bytes(), true);
            return;
        };
        c.dst = Some(conn.socket_addr());
        if let Some(secret) = &self.cfg.secret {
            match convert::check_cookie(secret.as_bytes(), msg) {
                CookieCheck::Valid => {}
                CookieCheck::Missing => {
                    self.rej.record(Reason::MissingCookie, now, &c.detail());
                    c.reject(now, code::MISSING_COOKIE, &[0], false);
                    return;
                }
                CookieCheck::Invalid => {
                    self.rej.record(Reason::BadCookie, now, &c.detail());
                    c.reject(now, code::NOT_AUTHORIZED, &[0], false);
                    return;
                }
            }
        }
        match dest_denied(conn.ip(), conn.port, &self.own, &self.cfg.deny_dest) {
            Some(true) => {
                self.rej.record(
                    Reason::Malformed,
                    now,
                    &format!("{}: invalid destination", c.detail()),
                );
                c.reject(now, code::MALFORMED_MESSAGE, msg.bytes(), true);
                return;
            }
            Some(false) => {
                self.rej.record(Reason::DeniedDest, now, &c.detail());
                c.reject(now, code::NOT_AUTHORIZED, &[0], false);
                return;
            }
            None => {}
        }
        let mss = match check_options(conn.options) {
            Ok(m) => m,
            Err(Some(kinds)) => {
                self.rej.record(
                    Reason::UnsupportedOption,
                    now,
                    &format!("{}: kinds {kinds:?}", c.detail()),
                );
                c.reject(now, code::UNSUPPORTED_TCP_OPTION, &kinds, false);
                return;
            }
            Err(None) => {
                self.rej.record(
                    Reason::Malformed,
                    now,
                    &format!("{}: bad TCP options", c.detail()),
                );
                c.reject(now, code::MALFORMED_MESSAGE, msg.bytes(), true);
                return;
            }
        };
        let dst = conn.socket_addr();
        match sys::tcp_connect(&dst, mss) {
            Ok(fd) => {
                c.server = Some(TcpStream::from(fd));
                c.state = State::Connecting;
                c.deadline = now + self.secs(self.cfg.connect_timeout);
                log::debug!("{}: connecting", c.detail());
            }
            Err(e) => self.connect_failed(c, e.raw_os_error().unwrap_or(0), now),
        }
    }

    fn connect_failed(&mut self, c: &mut Conn, errno: i32, now: u64) {
        let detail = format!("{}: {}", c.detail(), io::Error::from_raw_os_error(errno));
        match errno {
            libc::ECONNREFUSED | libc::ECONNRESET => {
                self.rej.record(Reason::Refused, now, &detail);
                c.reject(now, code::CONNECTION_RESET, &[0], false);
            }
            // Value: the ICMP code behind the error (0 net, 1 host unreachable).
            libc::ENETUNREACH => {
                self.rej.record(Reason::Unreachable, now, &detail);
                c.reject(now, code::DESTINATION_UNREACHABLE, &[0], false);
            }
            libc::EHOSTUNREACH => {
                self.rej.record(Reason::Unreachable, now, &detail);
                c.reject(now, code::DESTINATION_UNREACHABLE, &[1], false);
            }
            libc::ETIMEDOUT => {
                self.rej.record(Reason::Timeout, now, &detail);
                c.reject(now, code::NETWORK_FAILURE, &[0], false);
            }
            _ => {
                self.rej.record(Reason::NetworkFailure, now, &detail);
                c.reject(now, code::NETWORK_FAILURE, &[0], false);
            }
        }
    }

    fn connected(&mut self, c: &mut Conn, now: u64) {
        let mut out = [0u8; 64];
        let mut n = 0;
        if let Ok(mut b) = convert::Builder::new(&mut out) {
            if !c.want_info || b.supported_ext(&SUPPORTED_EXT).is_ok() {
                n = b.finish();
            }
        }
        let mut reply = out[..n].to_vec();
        reply.append(&mut c.down.pending);
        c.down.pending = reply;
        if new_dir_pipe(&mut c.up)
            .and(new_dir_pipe(&mut c.down))
            .is_err()
        {
            self.rej.record(
                Reason::NetworkFailure,
                now,
                &format!("{}: no pipe", c.detail()),
            );
            c.reject(now, code::RESOURCE_EXCEEDED, &[0], false);
            return;
        }
        c.state = State::Relaying;
        c.last_active = now;
        self.ctr.relayed += 1;
        log::debug!("{}: relaying", c.detail());
    }

    /// Make all possible progress on one connection.
    fn progress(&mut self, c: &mut Conn, revents_client: i16, revents_server: i16, now: u64) {
        match c.state {
            State::Reading => self.read_request(c, now),
            State::Connecting => {
                if revents_client & (libc::POLLERR | libc::POLLHUP) != 0 {
                    c.done = true;
                    return;
                }
                if revents_server != 0 {
                    let fd = c.server.as_ref().map_or(-1, |s| s.as_raw_fd());
                    match sys::take_error(fd) {
                        Ok(0) => self.connected(c, now),
                        Ok(e) => self.connect_failed(c, e, now),
                        Err(e) => self.connect_failed(c, e.raw_os_error().unwrap_or(0), now),
                    }
                    if c.state == State::Relaying {
                        self.relay(c, now);
                    }
                }
            }
            State::Relaying => self.relay(c, now),
            State::Draining => c.flush_drain(),
        }
    }

    fn relay(&mut self, c: &mut Conn, now: u64) {
        // Server → client waits until the client's handshake is complete.
        let client_ready = c.client_writable();
        let Some(server) = c.server.as_mut() else {
            c.done = true;
            return;
        };
        let cfd = c.client.as_raw_fd();
        let sfd = server.as_raw_fd();
        let before = (c.up.bytes, c.down.bytes);
        let r = pump(&mut c.up, cfd, server).and_then(|a| {
            let b = client_ready && pump(&mut c.down, sfd, &mut c.client)?;
            Ok(a || b)
        });
        self.ctr.bytes_up += c.up.bytes - before.0;
        self.ctr.bytes_down += c.down.bytes - before.1;
        match r {
            Ok(moved) => {
                if moved {
                    c.last_active = now;
                }
                if c.up.shut && c.down.shut {
                    c.done = true;
                }
            }
            Err(e) => {
                log::debug!("{}: relay ended: {e}", c.detail());
                self.ctr.relay_errors += 1;
                c.done = true;
            }
        }
    }

    fn interest(c: &Conn) -> (i16, i16) {
        let (mut ce, mut se) = (0i16, 0i16);
        match c.state {
            State::Reading => ce = libc::POLLIN,
            State::Connecting => se = libc::POLLOUT,
            State::Draining => {
                ce = libc::POLLIN;
                if c.client_ready && !c.down.pending.is_empty() {
                    ce |= libc::POLLOUT;
                }
            }
            State::Relaying => {
                if !c.up.eof && c.up.in_pipe < c.up.cap && !c.up.pipe_full {
                    ce |= libc::POLLIN;
                }
                // Nothing goes to the client before its handshake is complete.
                if c.client_ready && (!c.down.pending.is_empty() || c.down.in_pipe > 0) {
                    ce |= libc::POLLOUT;
                }
                if c.client_ready && !c.down.eof && c.down.in_pipe < c.down.cap && !c.down.pipe_full
                {
                    se |= libc::POLLIN;
                }
                if !c.up.pending.is_empty() || c.up.in_pipe > 0 {
                    se |= libc::POLLOUT;
                }
            }
        }
        (ce, se)
    }

    fn timeouts(&mut self, c: &mut Conn, now: u64) {
        match c.state {
            State::Reading if now >= c.deadline => {
                self.rej.record(
                    Reason::Handshake,
                    now,
                    &format!("{}: no Convert message", c.detail()),
                );
                c.reject(now, code::MALFORMED_MESSAGE, &c.buf.clone(), true);
            }
            State::Connecting if now >= c.deadline => {
                self.rej.record(
                    Reason::Timeout,
                    now,
                    &format!("{}: connect timeout", c.detail()),
                );
                c.reject(now, code::NETWORK_FAILURE, &[0], false);
            }
            State::Draining if now >= c.deadline => c.done = true,
            State::Relaying if now >= c.last_active + self.secs(self.cfg.idle_timeout) => {
                log::debug!("{}: idle, closed", c.detail());
                self.ctr.idle_closed += 1;
                c.done = true;
            }
            _ => {}
        }
    }

    fn next_deadline(&self, c: &Conn) -> u64 {
        match c.state {
            State::Relaying => c.last_active + self.secs(self.cfg.idle_timeout),
            _ => c.deadline,
        }
    }

    fn render(&self, json: bool) -> String {
        let mut s = String::new();
        let counters: [(&str, u64); 8] = [
            ("accepted", self.ctr.accepted),
            ("relayed", self.ctr.relayed),
            ("closed", self.ctr.closed),
            ("idle_closed", self.ctr.idle_closed),
            ("relay_errors", self.ctr.relay_errors),
            ("bytes_up", self.ctr.bytes_up),
            ("bytes_down", self.ctr.bytes_down),
            ("info_replies", self.ctr.info_replies),
        ];
        if json {
            let _ = write!(
                s,
                "{{\"mode\":\"concentrator\",\"listen\":{},\"max_connections\":{},\"per_client\":{},\"connections\":[",
                control::json_str(&self.cfg.listen.to_string()),
                self.cfg.max_connections,
                self.cfg.per_client
            );
            for (i, c) in self.conns.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    "{{\"client\":{},\"server\":{},\"state\":{},\"bytes_up\":{},\"bytes_down\":{}}}",
                    control::json_str(&c.peer.to_string()),
                    c.dst.map_or("null".to_string(), |d| control::json_str(&d.to_string())),
                    control::json_str(c.state.name()),
                    c.up.bytes,
                    c.down.bytes
                );
            }
            s.push_str("],\"counters\":{");
            for (i, (k, v)) in counters.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{}:{v}", control::json_str(k));
            }
            s.push_str("},\"rejections\":{");
            for (i, r) in REASONS.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    "{}:{}",
                    control::json_str(r.name()),
                    self.rej.total[r.index()]
                );
            }
            s.push_str("}}\n");
        } else {
            let _ = writeln!(s, "mode concentrator");
            let _ = writeln!(s, "listen {}", self.cfg.listen);
            let _ = writeln!(
                s,
                "connections: {} (max {}, per client {})",
                self.conns.len(),
                self.cfg.max_connections,
                self.cfg.per_client
            );
            let now = iosys::monotonic_us();
            for c in &self.conns {
                let _ = writeln!(
                    s,
                    "  {} -> {} {} {} s up {} down {}",
                    c.peer,
                    c.dst.map_or("?".to_string(), |d| d.to_string()),
                    c.state.name(),
                    now.saturating_sub(c.since) / 1_000_000,
                    c.up.bytes,
                    c.down.bytes
                );
            }
            let _ = writeln!(s, "counters:");
            for (k, v) in counters.iter().filter(|(_, v)| *v != 0) {
                let _ = writeln!(s, "{k} {v}");
            }
            let _ = writeln!(s, "rejections:");
            for r in REASONS {
                let n = self.rej.total[r.index()];
                if n != 0 {
                    let _ = writeln!(s, "{} {n}", r.name());
                }
            }
        }
        s
    }
}

/// Announced MPTCP endpoints, removed on drop.
struct Endpoints(Vec<(IpAddr, u32)>);

impl Endpoints {
    fn add(addrs: &[IpAddr]) -> Result<Endpoints, String> {
        let mut eps = Endpoints(Vec::new());
        for a in addrs {
            let s = a.to_string();
            cmd::run_logged(
                &cmd::argv(&["ip", "mptcp", "endpoint", "add", &s, "signal"]),
                None,
            )
            .map_err(|e| format!("cannot announce endpoint {s}: {e}"))?;
            let shown = cmd::run(&cmd::argv(&["ip", "mptcp", "endpoint", "show"]), None)?;
            let id = shown.lines().find_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.first() == Some(&s.as_str()))
                    .then(|| w.iter().position(|x| *x == "id").and_then(|i| w.get(i + 1)))
                    .flatten()
                    .and_then(|id| id.parse::<u32>().ok())
            });
            match id {
                Some(id) => {
                    log::info!("announcing {s} (MPTCP endpoint id {id}, signal)");
                    eps.0.push((*a, id));
                }
                None => {
                    log::warn!("endpoint {s} added but its id was not found; not removed at exit")
                }
            }
        }
        Ok(eps)
    }
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        for (a, id) in &self.0 {
            let id = id.to_string();
            if let Err(e) = cmd::run_logged(
                &cmd::argv(&["ip", "mptcp", "endpoint", "delete", "id", &id]),
                None,
            ) {
                log::warn!("cannot remove MPTCP endpoint {a}: {e}");
            }
        }
    }
}

/// The TFO server bit of `net.ipv4.tcp_fastopen`, restored on drop if we set it.
struct TfoSysctl(Option<String>);

const TFO_SYSCTL: &str = "/proc/sys/net/ipv4/tcp_fastopen";

impl TfoSysctl {
    fn enable() -> TfoSysctl {
        let Ok(old) = std::fs::read_to_string(TFO_SYSCTL) else {
            log::warn!("{TFO_SYSCTL} unreadable: TCP Fast Open may be off");
            return TfoSysctl(None);
        };
        let v: u32 = old.trim().parse().unwrap_or(0);
        if v & 0x2 != 0 {
            return TfoSysctl(None);
        }
        match std::fs::write(TFO_SYSCTL, format!("{}", v | 0x2)) {
            Ok(()) => {
                log::info!("net.ipv4.tcp_fastopen {v} -> {} (TFO server)", v | 0x2);
                TfoSysctl(Some(old.trim().to_string()))
            }
            Err(e) => {
                log::warn!("cannot enable the TFO server bit in {TFO_SYSCTL}: {e}; Convert messages then arrive after the handshake");
                TfoSysctl(None)
            }
        }
    }
}

impl Drop for TfoSysctl {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(TFO_SYSCTL, old);
        }
    }
}

/// Run the concentrator until SIGINT or SIGTERM.
pub fn run(cfg: ConcentratorConfig, verbose: bool) -> Result<(), String> {
    let _ = verbose;
    let sigpipe = iosys::install_signal_pipe().map_err(|e| format!("signals: {e}"))?;
    let want_fds = (cfg.max_connections as u64 + 64) * 6 + 64;
    let got = sys::raise_nofile(want_fds);
    if got < want_fds {
        log::warn!(
            "open files limited to {got}; max_connections {} needs about {want_fds}",
            cfg.max_connections
        );
    }
    let tfo = TfoSysctl::enable();
    let listener = sys::mptcp_listener(&cfg.listen, 1024, TFO_QLEN, true).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EPROTONOSUPPORT)
            || e.raw_os_error() == Some(libc::ENOPROTOOPT)
        {
            " (kernel without MPTCP, or net.mptcp.enabled = 0)"
        } else {
            ""
        };
        format!("cannot listen on {} with MPTCP: {e}{hint}", cfg.listen)
    })?;
    let control = ControlServer::bind(&cfg.socket)?;
    let endpoints = Endpoints::add(&cfg.endpoints)?;
    log::info!(
        "concentrator listening on {} (MPTCP, TFO), {} allowed prefix(es){}, control socket {}",
        cfg.listen,
        cfg.allow.len(),
        if cfg.secret.is_some() {
            ", cookie required"
        } else {
            ""
        },
        cfg.socket.display()
    );
    let now = iosys::monotonic_us();
    let mut st = Concentrator {
        cfg,
        listener,
        conns: Vec::new(),
        own: own_addresses(),
        own_read: now,
        rej: Rejections::default(),
        ctr: Counters::default(),
    };
    let mut fds: Vec<iosys::PollFd> = Vec::new();
    loop {
        let now = iosys::monotonic_us();
        fds.clear();
        fds.push(iosys::poll_in(sigpipe.as_raw_fd()));
        fds.push(iosys::poll_in(control.fd()));
        fds.push(iosys::poll_in(st.listener.as_raw_fd()));
        let mut wake = now + 1_000_000;
        for c in &st.conns {
            let (ce, se) = Concentrator::interest(c);
            fds.push(libc::pollfd {
                fd: c.client.as_raw_fd(),
                events: ce,
                revents: 0,
            });
            fds.push(libc::pollfd {
                fd: c.server.as_ref().map_or(-1, |s| s.as_raw_fd()),
                events: se,
                revents: 0,
            });
            wake = wake.min(st.next_deadline(c));
            if c.waits_for_client() {
                wake = wake.min(now + CLIENT_RECHECK_US);
            }
        }
        let timeout = (wake.saturating_sub(now) / 1000).min(1000) as i32;
        iosys::poll(&mut fds, timeout.max(1)).map_err(|e| format!("poll: {e}"))?;
        let now = iosys::monotonic_us();
        if iosys::readable(&fds[0]) {
            let mut b = [0u8; 64];
            let _ = iosys::read(sigpipe.as_raw_fd(), &mut b);
        }
        let sigs = iosys::take_signals();
        if sigs & ((1 << iosys::SIGINT) | (1 << iosys::SIGTERM)) != 0 {
            log::info!(
                "signal received, shutting down ({} connections)",
                st.conns.len()
            );
            break;
        }
        if iosys::readable(&fds[1]) {
            if let Some(stream) = control.accept() {
                ControlServer::serve(stream, |Request::Status { json }| st.render(json));
            }
        }
        // Existing connections first (their indexes match `fds`), then new ones.
        let mut conns = std::mem::take(&mut st.conns);
        for (i, c) in conns.iter_mut().enumerate() {
            let (cr, sr) = (fds[3 + 2 * i].revents, fds[4 + 2 * i].revents);
            if cr != 0 || sr != 0 || c.waits_for_client() {
                st.progress(c, cr, sr, now);
            }
            if !c.done {
                st.timeouts(c, now);
            }
        }
        let before = conns.len();
        conns.retain(|c| !c.done);
        st.ctr.closed += (before - conns.len()) as u64;
        st.conns = conns;
        if iosys::readable(&fds[2]) {
            st.accept_all(now);
        }
        st.rej.flush(now);
        if now.saturating_sub(st.own_read) >= ADDR_REFRESH_US {
            st.own = own_addresses();
            st.own_read = now;
        }
    }
    drop(st);
    drop(endpoints);
    drop(control);
    drop(tfo);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay direction whose destination does not take data and whose pipe is full by
    /// slots (many tiny segments) stops asking for its source: before, a readable source
    /// made every poll return at once (a busy loop seen when a client's uplink was cut).
    #[test]
    fn full_pipe_stops_polling_the_source() {
        use std::io::Write;
        use std::net::{TcpListener, TcpStream};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut writer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (src, _) = l.accept().unwrap();
        let mut dst = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_stalled_reader, _) = l.accept().unwrap();
        src.set_nonblocking(true).unwrap();
        dst.set_nonblocking(true).unwrap();
        // Fill dst's send path so that nothing more goes out.
        let junk = vec![0u8; 1 << 16];
        while dst.write(&junk).is_ok() {}
        // Tiny segments on src: each takes a pipe slot of its own.
        writer.set_nodelay(true).unwrap();
        let mut dir = Dir::default();
        new_dir_pipe(&mut dir).unwrap();
        for _ in 0..200 {
            writer.write_all(b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        while dst.write(&junk).is_ok() || dst.write(&junk[..1]).is_ok() {}
        for _ in 0..3 {
            pump(&mut dir, src.as_raw_fd(), &mut dst).unwrap();
        }
        assert!(dir.in_pipe > 0 && dir.in_pipe < dir.cap, "{}", dir.in_pipe);
        assert!(dir.pipe_full, "pipe full by slots not noticed");
    }

    #[test]
    fn destinations() {
        let own = ["192.0.2.1".parse().unwrap()];
        let deny = [Prefix::parse("10.0.0.0/8").unwrap()];
        let d = |a: &str, p| dest_denied(a.parse().unwrap(), p, &own, &deny);
        assert_eq!(d("127.0.0.1", 80), Some(true));
        assert_eq!(d("::ffff:127.0.0.1", 80), Some(true));
        assert_eq!(d("::1", 80), Some(true));
        assert_eq!(d("224.0.0.1", 80), Some(true));
        assert_eq!(d("255.255.255.255", 80), Some(true));
        assert_eq!(d("0.0.0.0", 80), Some(true));
        assert_eq!(d("198.51.100.1", 0), Some(true));
        assert_eq!(d("169.254.1.1", 80), Some(false));
        assert_eq!(d("fe80::1", 80), Some(false));
        assert_eq!(d("192.0.2.1", 80), Some(false));
        assert_eq!(d("::ffff:192.0.2.1", 80), Some(false));
        assert_eq!(d("10.1.2.3", 80), Some(false));
        assert_eq!(d("198.51.100.1", 80), None);
        assert_eq!(d("2001:db8::1", 443), None);
    }

    #[test]
    fn options() {
        assert_eq!(check_options(&[]), Ok(None));
        assert_eq!(check_options(&[2, 4, 5, 0xb4]), Ok(Some(1460)));
        assert_eq!(check_options(&[1, 1, 4, 2, 3, 3, 7, 0]), Ok(None));
        assert_eq!(
            check_options(&[30, 4, 0, 0, 34, 2]),
            Err(Some(vec![30, 34]))
        );
        assert_eq!(check_options(&[2, 9, 0, 0]), Err(None));
        assert_eq!(check_options(&[2]), Err(None));
    }

    #[test]
    fn rate_limited_log() {
        let mut r = Rejections::default();
        r.record(Reason::Malformed, 0, "a");
        r.record(Reason::Malformed, 1, "b");
        r.record(Reason::Malformed, 2, "c");
        assert_eq!(r.unlogged[Reason::Malformed.index()], 2);
        assert_eq!(r.total[Reason::Malformed.index()], 3);
        r.flush(LOG_INTERVAL_US);
        assert_eq!(r.unlogged[Reason::Malformed.index()], 0);
    }
}
