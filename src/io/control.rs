//! The control socket: a Unix stream socket on which a client writes one line, `status`,
//! `status json` or `handover UPLINK`, and reads the reply until EOF. Replies are rendered from an
//! [`engine::Status`](crate::engine::Status) plus the I/O counters; the JSON is written by hand
//! (no serde) with [`json_str`] escaping.
//!
//! The daemon serves one client at a time from its packet loop, so every socket operation has a
//! short timeout: a slow client costs the packet path at most a fraction of a second.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::net::ResolvedUplink;
use crate::engine::Status;

/// A request read from a client of a socket that only reports (the concentrator's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status { json: bool },
}

/// Parse one request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["status"] => Ok(Request::Status { json: false }),
        ["status", "json"] => Ok(Request::Status { json: true }),
        _ => Err(format!(
            "unknown request '{}' (expected 'status' or 'status json')",
            line.trim()
        )),
    }
}

/// A request to the converter daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Status {
        json: bool,
    },
    /// Move every connection's traffic to this uplink (by name); the reply is one JSON line,
    /// [`handover_reply`].
    Handover {
        uplink: String,
    },
}

/// Parse one request line to the daemon.
pub fn parse_command(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["handover", name] => Ok(Command::Handover {
            uplink: (*name).to_string(),
        }),
        _ => match parse_request(line) {
            Ok(Request::Status { json }) => Ok(Command::Status { json }),
            Err(_) => Err(format!(
                "unknown request '{}' (expected 'status', 'status json' or 'handover UPLINK')",
                line.trim()
            )),
        },
    }
}

/// The reply to `handover`: `{"ok":true,"uplink":"NAME","connections":N}` or
/// `{"error":"MESSAGE"}`, one line.
pub fn handover_reply(res: Result<(&str, usize), String>) -> String {
    match res {
        Ok((name, n)) => format!(
            "{{\"ok\":true,\"uplink\":{},\"connections\":{n}}}\n",
            json_str(name)
        ),
        Err(e) => format!("{{\"error\":{}}}\n", json_str(&e)),
    }
}

/// The index of the uplink called `name`, or an error naming the known ones.
pub fn find_uplink(ups: &[ResolvedUplink], name: &str) -> Result<u8, String> {
    match ups.iter().position(|u| u.name == name) {
        Some(i) => u8::try_from(i).map_err(|_| format!("uplink '{name}': index out of range")),
        None => {
            let known: Vec<&str> = ups.iter().map(|u| u.name.as_str()).collect();
            Err(format!(
                "unknown uplink '{name}' (known: {})",
                known.join(", ")
            ))
        }
    }
}

/// Health of an uplink as the daemon's tracker sees it, for the status replies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthStatus {
    pub state: crate::engine::UplinkState,
    pub backup: bool,
    /// `icmp`, `tcp`, `dns` or `none` (also `none` when it has no usable target).
    pub probe: &'static str,
    /// Smoothed probe RTT in µs (0 = no answer yet).
    pub rtt_us: u64,
    /// Loss over the last probes, 0.0..=1.0.
    pub loss: f32,
}

impl Default for HealthStatus {
    fn default() -> Self {
        HealthStatus {
            state: crate::engine::UplinkState::Up,
            backup: false,
            probe: "none",
            rtt_us: 0,
            loss: 0.0,
        }
    }
}

fn health_of(h: &[HealthStatus], i: usize) -> HealthStatus {
    h.get(i).copied().unwrap_or_default()
}

/// A loss fraction for JSON: finite, in 0..=1, at most 3 decimals.
fn json_fraction(v: f32) -> String {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

/// Counters of the I/O layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Packets received from the NFQUEUE.
    pub queued: u64,
    /// Verdicts accept (unchanged or rewritten).
    pub accepted: u64,
    /// Verdicts drop.
    pub dropped: u64,
    /// Packets sent on the raw sockets.
    pub sent: u64,
    /// Failed raw-socket sends.
    pub send_errors: u64,
    /// Packets the kernel dropped on our queue (`queue_dropped + user_dropped`).
    pub queue_drops: u64,
}

impl IoCounters {
    pub fn iter(&self) -> [(&'static str, u64); 6] {
        [
            ("queued", self.queued),
            ("accepted", self.accepted),
            ("dropped", self.dropped),
            ("sent", self.sent),
            ("send_errors", self.send_errors),
            ("queue_drops", self.queue_drops),
        ]
    }
}

/// `queue_dropped + user_dropped` of `queue` in `/proc/net/netfilter/nfnetlink_queue` text
/// (columns: queue, portid, total, copy mode, copy range, queue dropped, user dropped, id, 1).
pub fn parse_queue_drops(text: &str, queue: u16) -> Option<u64> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 7 || f[0].parse::<u16>().ok()? != queue {
            return None;
        }
        Some(f[5].parse::<u64>().ok()? + f[6].parse::<u64>().ok()?)
    })
}

/// [`parse_queue_drops`] of the live file (0 when unreadable).
pub fn read_queue_drops(queue: u16) -> u64 {
    std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue")
        .ok()
        .and_then(|t| parse_queue_drops(&t, queue))
        .unwrap_or(0)
}

/// A JSON string literal for `s`.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| json_str(&v.to_string()))
}

fn uplink_name(ups: &[ResolvedUplink], i: u8) -> String {
    ups.get(i as usize)
        .map_or_else(|| format!("#{i}"), |u| u.name.clone())
}

fn uplink_of(st: &Status, i: usize) -> crate::engine::UplinkStatus {
    st.uplinks.get(i).cloned().unwrap_or_default()
}

/// The `status json` reply (one line).
pub fn render_json(
    mode: &str,
    ups: &[ResolvedUplink],
    health: &[HealthStatus],
    st: &Status,
    io: &IoCounters,
) -> String {
    let mut s = String::new();
    let _ = write!(s, "{{\"mode\":{},\"uplinks\":[", json_str(mode));
    for (i, u) in ups.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let e = uplink_of(st, i);
        let h = health_of(health, i);
        let _ = write!(
            s,
            "{{\"name\":{},\"device\":{},\"addr4\":{},\"addr6\":{},\"mtu\":{},\"subflows\":{},\"rx_bytes\":{},\"tx_bytes\":{},\"rx_bps\":{},\"tx_bps\":{},\"srtt_us\":{},\"state\":{},\"backup\":{},\"probe\":{},\"probe_rtt_us\":{},\"probe_loss\":{}}}",
            json_str(&u.name),
            json_str(&u.device),
            json_opt(u.addr4),
            json_opt(u.addr6),
            u.mtu,
            e.subflows,
            e.rx_bytes,
            e.tx_bytes,
            e.rx_bps,
            e.tx_bps,
            e.srtt_us,
            json_str(h.state.name()),
            h.backup,
            json_str(h.probe),
            h.rtt_us,
            json_fraction(h.loss)
        );
    }
    s.push_str("],\"connections\":[");
    for (i, c) in st.connections.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"client\":{},\"server\":{},\"state\":{},\"subflows\":[",
            json_str(&c.client.to_string()),
            json_str(&c.server.to_string()),
            json_str(c.state)
        );
        for (j, f) in c.subflows.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"uplink\":{},\"port\":{},\"state\":{},\"backup\":{},\"srtt_us\":{},\"inflight\":{}}}",
                json_str(&uplink_name(ups, f.uplink)),
                f.local_port,
                json_str(f.state),
                f.backup,
                f.srtt_us,
                f.inflight
            );
        }
        s.push_str("]}");
    }
    s.push_str("],\"counters\":{");
    for (i, (name, v)) in st.counters.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}:{v}", json_str(name));
    }
    s.push_str("},\"io\":{");
    for (i, (name, v)) in io.iter().into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}:{v}", json_str(name));
    }
    s.push_str("}}\n");
    s
}

/// The `status` reply for people.
pub fn render_text(
    mode: &str,
    ups: &[ResolvedUplink],
    health: &[HealthStatus],
    st: &Status,
    io: &IoCounters,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "mode {mode}");
    let _ = writeln!(s, "uplinks:");
    for (i, u) in ups.iter().enumerate() {
        let _ = write!(s, "  {}: dev {}", u.name, u.device);
        if let Some(a) = u.addr4 {
            let _ = write!(s, " addr {a}");
        }
        if let Some(a) = u.addr6 {
            let _ = write!(s, " addr6 {a}");
        }
        let e = uplink_of(st, i);
        let _ = writeln!(
            s,
            " mtu {} subflows {} rx {} B ({} bit/s) tx {} B ({} bit/s) srtt {:.1} ms",
            u.mtu,
            e.subflows,
            e.rx_bytes,
            e.rx_bps,
            e.tx_bytes,
            e.tx_bps,
            e.srtt_us as f64 / 1000.0
        );
        let h = health_of(health, i);
        let _ = write!(
            s,
            "    state {}{} probe {}",
            h.state.name(),
            if h.backup { " (backup)" } else { "" },
            h.probe
        );
        if h.probe != "none" {
            if h.rtt_us == 0 {
                let _ = write!(s, " rtt - loss {:.0} %", h.loss * 100.0);
            } else {
                let _ = write!(
                    s,
                    " rtt {:.1} ms loss {:.0} %",
                    h.rtt_us as f64 / 1000.0,
                    h.loss * 100.0
                );
            }
        }
        s.push('\n');
    }
    let _ = writeln!(s, "connections: {}", st.connections.len());
    for c in &st.connections {
        let _ = writeln!(s, "  {} -> {} {}", c.client, c.server, c.state);
        for f in &c.subflows {
            let _ = writeln!(
                s,
                "    {}:{} {}{} srtt {:.1} ms in flight {} B",
                uplink_name(ups, f.uplink),
                f.local_port,
                f.state,
                if f.backup { " backup" } else { "" },
                f.srtt_us as f64 / 1000.0,
                f.inflight
            );
        }
    }
    let _ = writeln!(s, "counters:");
    for (name, v) in st.counters.iter().filter(|(_, v)| *v != 0) {
        let _ = writeln!(s, "{name} {v}");
    }
    let _ = writeln!(s, "io:");
    for (name, v) in io.iter().into_iter().filter(|(_, v)| *v != 0) {
        let _ = writeln!(s, "{name} {v}");
    }
    s
}

/// How long the daemon waits for a client's request line.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the daemon spends writing one reply at most.
const WRITE_BUDGET: Duration = Duration::from_millis(500);

/// The listening control socket; removes its path when dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Bind at `path`, replacing a stale socket, refusing when a daemon answers there.
    pub fn bind(path: &Path) -> Result<ControlServer, String> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{}: another mpconv is already running (its control socket answers)",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| format!("cannot create control socket {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control socket: {e}"))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accept one pending client, if any.
    pub fn accept(&self) -> Option<UnixStream> {
        match self.listener.accept() {
            Ok((s, _)) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => {
                log::debug!("control socket: accept: {e}");
                None
            }
        }
    }

    /// Read the request of `stream` (bounded in time) and write back what `reply` renders.
    pub fn serve(stream: UnixStream, reply: impl FnOnce(Request) -> String) {
        Self::serve_with(stream, parse_request, reply)
    }

    /// [`ControlServer::serve`] for the daemon's requests ([`Command`]).
    pub fn serve_commands(stream: UnixStream, reply: impl FnOnce(Command) -> String) {
        Self::serve_with(stream, parse_command, reply)
    }

    fn serve_with<R>(
        mut stream: UnixStream,
        parse: fn(&str) -> Result<R, String>,
        reply: impl FnOnce(R) -> String,
    ) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 256];
        let mut len = 0;
        while len < buf.len() && !buf[..len].contains(&b'\n') {
            match stream.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(_) => break,
            }
        }
        let line = String::from_utf8_lossy(&buf[..len]);
        let line = line.split('\n').next().unwrap_or("");
        let text = match parse(line) {
            Ok(req) => reply(req),
            Err(e) => format!("error: {e}\n"),
        };
        let deadline = Instant::now() + WRITE_BUDGET;
        let mut rest = text.as_bytes();
        while !rest.is_empty() && Instant::now() < deadline {
            match stream.write(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        if !rest.is_empty() {
            log::debug!(
                "control socket: reply cut short ({} bytes left)",
                rest.len()
            );
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Client side: send `request` to the daemon at `path` and return its reply.
pub fn query(path: &Path, request: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| {
        format!(
            "cannot reach mpconv at {}: {e}; is the daemon running?",
            path.display()
        )
    };
    let mut s = UnixStream::connect(path).map_err(fail)?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(fail)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(fail)?;
    if let Some(e) = out.strip_prefix("error: ") {
        return Err(format!("mpconv at {}: {}", path.display(), e.trim_end()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ConnStatus, Counters, SubflowStatus, UplinkStatus};
    use crate::io::routes::tests::uplinks;

    #[test]
    fn requests() {
        assert_eq!(
            parse_request("status\n"),
            Ok(Request::Status { json: false })
        );
        assert_eq!(
            parse_request(" status  json "),
            Ok(Request::Status { json: true })
        );
        assert!(parse_request("").is_err());
        assert!(parse_request("status xml").is_err());
        assert!(parse_request("stop").is_err());
    }

    #[test]
    fn escapes_json() {
        assert_eq!(json_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_str("x\ny\t\u{1}"), r#""x\ny\t\u0001""#);
        assert_eq!(json_str("é"), "\"é\"");
    }

    #[test]
    fn queue_drops() {
        let t = "    0  123     0 2 65535     0     0        0  1\n    3  456     2 2 65535     7     5      100  1\n";
        assert_eq!(parse_queue_drops(t, 3), Some(12));
        assert_eq!(parse_queue_drops(t, 0), Some(0));
        assert_eq!(parse_queue_drops(t, 9), None);
    }

    fn status() -> Status {
        let counters = Counters {
            mp_capable_syn_tx: 2,
            ..Default::default()
        };
        Status {
            uplinks: vec![
                UplinkStatus {
                    name: "dsl".into(),
                    subflows: 1,
                    ..Default::default()
                },
                UplinkStatus {
                    name: "lte".into(),
                    subflows: 0,
                    ..Default::default()
                },
            ],
            connections: vec![ConnStatus {
                client: "192.168.1.10:51000".parse().unwrap(),
                server: "[2001:db8::5]:443".parse().unwrap(),
                state: "established",
                subflows: vec![SubflowStatus {
                    uplink: 0,
                    local_port: 61234,
                    backup: false,
                    srtt_us: 0,
                    inflight: 0,
                    state: "established",
                }],
            }],
            counters,
        }
    }

    fn health() -> Vec<HealthStatus> {
        vec![
            HealthStatus {
                state: crate::engine::UplinkState::Degraded,
                backup: false,
                probe: "icmp",
                rtt_us: 12_500,
                loss: 0.3,
            },
            HealthStatus {
                state: crate::engine::UplinkState::Down,
                backup: true,
                probe: "none",
                rtt_us: 0,
                loss: 0.0,
            },
        ]
    }

    #[test]
    fn handover_requests_and_replies() {
        assert_eq!(
            parse_command("handover lte\n"),
            Ok(Command::Handover {
                uplink: "lte".into()
            })
        );
        assert_eq!(
            parse_command("status json"),
            Ok(Command::Status { json: true })
        );
        assert!(parse_command("handover").is_err());
        assert!(parse_command("handover a b").is_err());
        assert!(parse_command("stop")
            .unwrap_err()
            .contains("'handover UPLINK'"));
        assert!(
            parse_request("handover lte").is_err(),
            "not for the concentrator"
        );
        assert_eq!(
            handover_reply(Ok(("lte", 3))),
            "{\"ok\":true,\"uplink\":\"lte\",\"connections\":3}\n"
        );
        assert_eq!(
            handover_reply(Err("no \"such\" uplink".into())),
            "{\"error\":\"no \\\"such\\\" uplink\"}\n"
        );
        assert_eq!(find_uplink(&uplinks(), "lte"), Ok(1));
        assert_eq!(
            find_uplink(&uplinks(), "wifi"),
            Err("unknown uplink 'wifi' (known: dsl, lte)".into())
        );
    }

    #[test]
    fn fractions() {
        assert_eq!(json_fraction(0.0), "0.0");
        assert_eq!(json_fraction(1.0), "1.0");
        assert_eq!(json_fraction(0.5), "0.5");
        assert_eq!(json_fraction(1.0 / 3.0), "0.333");
        assert_eq!(json_fraction(f32::NAN), "0.0");
        assert_eq!(json_fraction(7.0), "1.0");
        assert_eq!(json_fraction(-1.0), "0.0");
    }

    #[test]
    fn renders_json() {
        let io = IoCounters {
            queued: 5,
            sent: 4,
            ..Default::default()
        };
        let j = render_json("implicit", &uplinks(), &health(), &status(), &io);
        assert!(j.starts_with(
            "{\"mode\":\"implicit\",\"uplinks\":[{\"name\":\"dsl\",\"device\":\"up1\",\"addr4\":\"100.64.1.2\",\"addr6\":\"2001:db8::2\",\"mtu\":1500,\"subflows\":1,\"rx_bytes\":0,\"tx_bytes\":0,\"rx_bps\":0,\"tx_bps\":0,\"srtt_us\":0,\"state\":\"degraded\",\"backup\":false,\"probe\":\"icmp\",\"probe_rtt_us\":12500,\"probe_loss\":0.3},{\"name\":\"lte\",\"device\":\"up2\",\"addr4\":\"10.0.2.2\",\"addr6\":null,\"mtu\":1400,\"subflows\":0,\"rx_bytes\":0,\"tx_bytes\":0,\"rx_bps\":0,\"tx_bps\":0,\"srtt_us\":0,\"state\":\"down\",\"backup\":true,\"probe\":\"none\",\"probe_rtt_us\":0,\"probe_loss\":0.0}],"
        ), "{j}");
        assert!(j.contains(
            "\"connections\":[{\"client\":\"192.168.1.10:51000\",\"server\":\"[2001:db8::5]:443\",\"state\":\"established\",\"subflows\":[{\"uplink\":\"dsl\",\"port\":61234,\"state\":\"established\",\"backup\":false,\"srtt_us\":0,\"inflight\":0}]}]"
        ), "{j}");
        assert!(j.contains("\"counters\":{\"MPCapableSYNTX\":2,\"MPCapableSYNACKRX\":0,"));
        assert!(j.ends_with(
            "\"io\":{\"queued\":5,\"accepted\":0,\"dropped\":0,\"sent\":4,\"send_errors\":0,\"queue_drops\":0}}\n"
        ));
        // Balanced braces and brackets (no string here contains any).
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
    }

    #[test]
    fn renders_text() {
        let t = render_text(
            "implicit",
            &uplinks(),
            &health(),
            &status(),
            &IoCounters::default(),
        );
        assert!(
            t.contains("\n    state degraded probe icmp rtt 12.5 ms loss 30 %\n"),
            "{t}"
        );
        assert!(t.contains("\n    state down (backup) probe none\n"), "{t}");
        assert!(
            t.contains("  dsl: dev up1 addr 100.64.1.2 addr6 2001:db8::2 mtu 1500 subflows 1 rx 0 B (0 bit/s) tx 0 B (0 bit/s) srtt 0.0 ms\n")
        );
        assert!(t.contains(
            "  192.168.1.10:51000 -> [2001:db8::5]:443 established\n    dsl:61234 established srtt 0.0 ms in flight 0 B\n"
        ));
        assert!(t.contains("counters:\nMPCapableSYNTX 2\nio:\n"));
        assert!(!t.contains("MPJoinSynTx"));
    }

    #[test]
    fn socket_round_trip() {
        let dir = std::env::temp_dir().join(format!("mpconv-ctl-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let server = ControlServer::bind(&path).unwrap();
        let p = path.clone();
        let client = std::thread::spawn(move || query(&p, "status json"));
        let mut stream = None;
        for _ in 0..200 {
            stream = server.accept();
            if stream.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        ControlServer::serve(stream.unwrap(), |r| format!("{r:?}\n"));
        assert_eq!(client.join().unwrap().unwrap(), "Status { json: true }\n");
        assert!(ControlServer::bind(&path).is_err(), "second daemon refused");
        drop(server);
        assert!(!path.exists());
        let e = query(&path, "status").unwrap_err();
        assert!(e.contains("is the daemon running?"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
