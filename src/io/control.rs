//! The control socket: a Unix stream socket on which a client writes one line, `status` or
//! `status json`, and reads the reply until EOF. Replies are rendered from an
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

/// A request read from a client.
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
pub fn render_json(mode: &str, ups: &[ResolvedUplink], st: &Status, io: &IoCounters) -> String {
    let mut s = String::new();
    let _ = write!(s, "{{\"mode\":{},\"uplinks\":[", json_str(mode));
    for (i, u) in ups.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let e = uplink_of(st, i);
        let _ = write!(
            s,
            "{{\"name\":{},\"device\":{},\"addr4\":{},\"addr6\":{},\"mtu\":{},\"subflows\":{},\"rx_bytes\":{},\"tx_bytes\":{},\"rx_bps\":{},\"tx_bps\":{},\"srtt_us\":{}}}",
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
            e.srtt_us
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
pub fn render_text(mode: &str, ups: &[ResolvedUplink], st: &Status, io: &IoCounters) -> String {
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
    pub fn serve(mut stream: UnixStream, reply: impl FnOnce(Request) -> String) {
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
        let text = match parse_request(line) {
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

    #[test]
    fn renders_json() {
        let io = IoCounters {
            queued: 5,
            sent: 4,
            ..Default::default()
        };
        let j = render_json("implicit", &uplinks(), &status(), &io);
        assert!(j.starts_with(
            "{\"mode\":\"implicit\",\"uplinks\":[{\"name\":\"dsl\",\"device\":\"up1\",\"addr4\":\"100.64.1.2\",\"addr6\":\"2001:db8::2\",\"mtu\":1500,\"subflows\":1,\"rx_bytes\":0,\"tx_bytes\":0,\"rx_bps\":0,\"tx_bps\":0,\"srtt_us\":0},{\"name\":\"lte\",\"device\":\"up2\",\"addr4\":\"10.0.2.2\",\"addr6\":null,\"mtu\":1400,\"subflows\":0,\"rx_bytes\":0,\"tx_bytes\":0,\"rx_bps\":0,\"tx_bps\":0,\"srtt_us\":0}],"
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
        let t = render_text("implicit", &uplinks(), &status(), &IoCounters::default());
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
