//! The concentrator's configuration: one `config concentrator` section in its own UCI file
//! (e.g. /etc/config/mpconv-concentrator), read with the same UCI parser and reported with the
//! same `FILE:LINE: section …, option '…': …` messages as the router daemon's file.
//!
//! ```text
//! config concentrator 'main'
//!     option listen '0.0.0.0:5124'
//!     list allow '192.0.2.0/24'
//!     list allow '2001:db8:1::/48'
//!     option secret 'a long shared secret'
//!     list deny_dest '10.0.0.0/8'
//!     list endpoint '198.51.100.2'
//! ```
//!
//! Safe defaults: without `allow` the concentrator refuses to start (it would be an open
//! proxy); `option allow_any '1'` accepts every client but then requires `secret`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::uci::{self, Value};
use super::{boolean, label_of, log_level, number, secret, socket, ConfigError, Sec};

/// Default listening address. RFC 8803 registers the service name "convert" without a fixed
/// port; 5124 is the port of Tessares' client library and Wireshark dissector.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5124";
pub const DEFAULT_SOCKET: &str = "/var/run/mpconv-concentrator.sock";

const KEYS: &[&str] = &[
    "listen",
    "allow",
    "allow_any",
    "secret",
    "socket",
    "max_connections",
    "per_client",
    "idle_timeout",
    "connect_timeout",
    "deny_dest",
    "endpoint",
    "log_level",
];

/// An address prefix `ADDR/LEN` (a bare address is a host prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(v: &str) -> Result<Prefix, String> {
        let what = "is not a prefix ADDR/LEN (e.g. '192.0.2.0/24' or '2001:db8::/32')";
        let (a, l) = match v.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (v, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| what.to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => number(l, 0, max).map_err(|_| what.to_string())?,
        };
        let p = Prefix {
            addr: addr.to_canonical(),
            len: len as u8,
        };
        if p.addr.is_ipv4() != addr.is_ipv4() {
            // ::ffff:a.b.c.d/LEN: only meaningful as an IPv4 prefix.
            return Err("is an IPv4-mapped address: write the IPv4 prefix instead".into());
        }
        if p.network() != p.addr {
            return Err(format!(
                "has host bits set (the network is {}/{len})",
                p.network()
            ));
        }
        Ok(p)
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Prefix {
                    addr: ip,
                    len: self.len,
                }
                .network()
                    == self.addr
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcentratorConfig {
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// Client prefixes allowed (empty only with `allow_any`).
    pub allow: Vec<Prefix>,
    pub allow_any: bool,
    /// Shared secret for mpconv cookies; when set, a valid Cookie TLV is required.
    pub secret: Option<String>,
    pub socket: PathBuf,
    pub max_connections: usize,
    pub per_client: usize,
    /// Seconds without traffic before a relayed connection is closed.
    pub idle_timeout: u32,
    /// Seconds to wait for the destination (and for the client's Convert message).
    pub connect_timeout: u32,
    /// Extra denied destinations (loopback, own addresses, link-local, multicast, broadcast
    /// and unspecified are always denied).
    pub deny_dest: Vec<Prefix>,
    /// Local addresses announced with `ip mptcp endpoint add ADDR signal`.
    pub endpoints: Vec<IpAddr>,
    pub log_level: log::LevelFilter,
}

pub fn load(path: &Path) -> Result<ConcentratorConfig, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse(path, &String::from_utf8_lossy(&bytes))
}

pub fn parse(path: &Path, text: &str) -> Result<ConcentratorConfig, ConfigError> {
    let file = path.display().to_string();
    let at = |line: usize, msg: String| ConfigError(format!("{file}:{line}: {msg}"));
    let pkg = uci::parse(text).map_err(|e| at(e.line, e.msg))?;
    let mut found: Option<Sec<'_>> = None;
    for s in &pkg.sections {
        if s.stype != "concentrator" {
            return Err(at(
                s.line,
                format!(
                    "section {}: unknown section type '{}' (known: concentrator)",
                    label_of(s, 0),
                    s.stype
                ),
            ));
        }
        if let Some(first) = &found {
            return Err(at(
                s.line,
                format!(
                    "second 'config concentrator' section (the first is at line {}); exactly \
                     one is allowed",
                    first.sec.line
                ),
            ));
        }
        found = Some(Sec {
            file: &file,
            sec: s,
            label: label_of(s, 0),
        });
    }
    let Some(sec) = found else {
        return Err(ConfigError(format!(
            "{file}: no 'config concentrator' section (expected one, e.g. `config concentrator \
             'main'`)"
        )));
    };
    sec.concentrator(path)
}

/// Items of a list option (an `option` with spaces counts as a list, as `lan` does).
pub(super) fn items<'a>(sec: &Sec<'a>, key: &str) -> Vec<(&'a str, usize)> {
    match sec.sec.options.iter().find(|o| o.name == key) {
        None => Vec::new(),
        Some(o) => match &o.value {
            Value::Single(v) => v.split_whitespace().map(|d| (d, o.line)).collect(),
            Value::List(items) => items.iter().map(|(v, l)| (v.as_str(), *l)).collect(),
        },
    }
}

pub(super) fn prefixes(sec: &Sec<'_>, key: &str) -> Result<Vec<Prefix>, ConfigError> {
    let mut out: Vec<Prefix> = Vec::new();
    for (v, line) in items(sec, key) {
        let p = Prefix::parse(v)
            .map_err(|w| sec.opt_err(line, key, format!("{} {w}", super::quoted(v))))?;
        if out.contains(&p) {
            return Err(sec.opt_err(line, key, format!("'{p}' is listed twice")));
        }
        out.push(p);
    }
    Ok(out)
}

impl Sec<'_> {
    fn concentrator(&self, path: &Path) -> Result<ConcentratorConfig, ConfigError> {
        self.check_keys(KEYS)?;
        let allow = prefixes(self, "allow")?;
        let allow_any = self.get("allow_any", boolean)?.unwrap_or(false);
        let secret = self.get("secret", secret)?;
        if allow.is_empty() && !allow_any {
            return Err(self.opt_err(
                self.sec.line,
                "allow",
                "missing: list the client prefixes that may use the concentrator (e.g. `list \
                 allow '192.0.2.0/24'`); without it the concentrator would be an open proxy \
                 (`option allow_any '1'` with a `secret` accepts any client that knows the \
                 secret)"
                    .into(),
            ));
        }
        if allow_any && !allow.is_empty() {
            return Err(self.opt_err(
                self.line_of("allow_any"),
                "allow_any",
                "contradicts the 'allow' list: use one or the other".into(),
            ));
        }
        if allow_any && secret.is_none() {
            return Err(self.opt_err(
                self.line_of("allow_any"),
                "allow_any",
                "requires option 'secret' (any client, no secret = an open proxy)".into(),
            ));
        }
        let mut endpoints: Vec<IpAddr> = Vec::new();
        for (v, line) in items(self, "endpoint") {
            let a: IpAddr = v.parse().map_err(|_| {
                self.opt_err(
                    line,
                    "endpoint",
                    format!("{} is not an IP address", super::quoted(v)),
                )
            })?;
            let a = a.to_canonical();
            let bad = a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
            if bad {
                return Err(self.opt_err(
                    line,
                    "endpoint",
                    format!("'{a}' is not a usable local address"),
                ));
            }
            if endpoints.contains(&a) {
                return Err(self.opt_err(line, "endpoint", format!("'{a}' is listed twice")));
            }
            endpoints.push(a);
        }
        let num = |key: &str, lo: u64, hi: u64, default: u64| -> Result<u64, ConfigError> {
            Ok(self.get(key, |v| number(v, lo, hi))?.unwrap_or(default))
        };
        let max_connections = num("max_connections", 1, 65536, 1024)? as usize;
        let per_client = num("per_client", 1, 65536, 64)? as usize;
        if per_client > max_connections {
            return Err(self.opt_err(
                self.line_of("per_client"),
                "per_client",
                format!("{per_client} is more than max_connections ({max_connections})"),
            ));
        }
        Ok(ConcentratorConfig {
            path: path.to_path_buf(),
            listen: self
                .get("listen", |v| {
                    v.parse::<SocketAddr>()
                        .map_err(|_| {
                            "is not ADDR:PORT (e.g. '0.0.0.0:5124' or '[::]:5124')".to_string()
                        })
                        .and_then(|a| {
                            if a.port() == 0 {
                                Err("needs a nonzero port".to_string())
                            } else {
                                Ok(a)
                            }
                        })
                })?
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            allow,
            allow_any,
            secret,
            socket: self
                .get("socket", socket)?
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            max_connections,
            per_client,
            idle_timeout: num("idle_timeout", 10, 86400, 300)? as u32,
            connect_timeout: num("connect_timeout", 1, 300, 10)? as u32,
            deny_dest: prefixes(self, "deny_dest")?,
            endpoints,
            log_level: self
                .get("log_level", log_level)?
                .unwrap_or(log::LevelFilter::Info),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<ConcentratorConfig, String> {
        parse(Path::new("/etc/config/c"), text).map_err(|e| e.0)
    }

    #[test]
    fn defaults() {
        let c = p("config concentrator 'main'\n\tlist allow '192.0.2.0/24'\n").unwrap();
        assert_eq!(c.listen, "0.0.0.0:5124".parse().unwrap());
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            (
                c.max_connections,
                c.per_client,
                c.idle_timeout,
                c.connect_timeout
            ),
            (1024, 64, 300, 10)
        );
        assert_eq!(c.secret, None);
        assert!(c.allow[0].contains("192.0.2.77".parse().unwrap()));
        assert!(c.allow[0].contains("::ffff:192.0.2.77".parse().unwrap()));
        assert!(!c.allow[0].contains("192.0.3.1".parse().unwrap()));
    }

    #[test]
    fn full() {
        let c = p("config concentrator 'main'
    option listen '[::]:6000'
    list allow '2001:db8::/32'
    list allow '10.0.0.1'
    option secret 'sixteen chars ok'
    option max_connections '10'
    option per_client '2'
    option idle_timeout '60'
    option connect_timeout '3'
    list deny_dest '172.16.0.0/12'
    list endpoint '198.51.100.2'
    option log_level 'debug'
")
        .unwrap();
        assert_eq!(c.listen, "[::]:6000".parse().unwrap());
        assert_eq!(c.allow.len(), 2);
        assert_eq!(c.allow[1].len, 32);
        assert_eq!(c.secret.as_deref(), Some("sixteen chars ok"));
        assert_eq!(c.deny_dest[0].to_string(), "172.16.0.0/12");
        assert_eq!(c.endpoints, vec!["198.51.100.2".parse::<IpAddr>().unwrap()]);
        assert!(c.allow[0].contains("2001:db8:1::5".parse().unwrap()));
        assert!(!c.allow[0].contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn errors() {
        let e = p("config concentrator 'main'\n").unwrap_err();
        assert!(
            e.starts_with(
                "/etc/config/c:1: section 'main' (concentrator), option 'allow': missing"
            ),
            "{e}"
        );
        let e = p("config concentrator 'main'\n  option allow_any '1'\n").unwrap_err();
        assert!(
            e.contains(
                ":2: section 'main' (concentrator), option 'allow_any': requires option 'secret'"
            ),
            "{e}"
        );
        assert!(p("config concentrator 'main'\n option allow_any 1\n option secret 'xxxxxxxxxxxxxxxxxx'\n").is_ok());
        let e = p("config concentrator 'main'\n list allow '10.0.0.1/8'\n").unwrap_err();
        assert!(
            e.contains(
                ":2: section 'main' (concentrator), option 'allow': '10.0.0.1/8' has host bits set"
            ),
            "{e}"
        );
        let e = p("config concentrator 'main'\n list allow '10.0.0.0/8'\n option listn 'x'\n")
            .unwrap_err();
        assert!(
            e.contains(":3:") && e.contains("did you mean 'listen'?"),
            "{e}"
        );
        let e =
            p("config concentrator 'main'\n list allow '10.0.0.0/8'\n option listen '1.2.3.4'\n")
                .unwrap_err();
        assert!(
            e.contains("option 'listen': '1.2.3.4' is not ADDR:PORT"),
            "{e}"
        );
        let e = p("config concentrator 'main'\n list allow '10.0.0.0/8'\n option secret 'short'\n")
            .unwrap_err();
        assert!(
            e.contains("option 'secret'") && e.contains("too short"),
            "{e}"
        );
        // Characters count, as on the router: 15 two-byte characters are too few.
        let e = p(&format!(
            "config concentrator 'main'\n list allow '10.0.0.0/8'\n option secret '{}'\n",
            "é".repeat(15)
        ))
        .unwrap_err();
        assert!(e.contains("too short"), "{e}");
        let e = p(
            "config concentrator 'main'\n list allow '10.0.0.0/8'\n list endpoint '127.0.0.1'\n",
        )
        .unwrap_err();
        assert!(
            e.contains("option 'endpoint': '127.0.0.1' is not a usable"),
            "{e}"
        );
        let e = p("config mpconv 'main'\n").unwrap_err();
        assert!(
            e.contains(":1: section 'main' (mpconv): unknown section type"),
            "{e}"
        );
        let e = p("config concentrator 'a'\n list allow '10.0.0.0/8'\nconfig concentrator 'b'\n")
            .unwrap_err();
        assert!(e.contains(":3: second 'config concentrator'"), "{e}");
        let e = p("config concentrator 'main'\n list allow '10.0.0.0/8'\n option per_client '99'\n option max_connections '10'\n").unwrap_err();
        assert!(e.contains(":3:") && e.contains("per_client"), "{e}");
        let e = p("").unwrap_err();
        assert!(e.contains("no 'config concentrator' section"), "{e}");
    }
}
