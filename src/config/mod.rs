//! UCI configuration (`/etc/config/mpconv`) → typed, validated [`Config`].
//!
//! Errors name the file, the line, the section and the key. Imports nothing from `io` or `engine`.
//!
//! The file has exactly one `config mpconv` section (conventionally named `main`; anonymous is
//! allowed) and up to [`MAX_UPLINKS`] named `config uplink 'NAME'` sections. Unknown section
//! types and unknown options are errors, so that a typo cannot pass silently, except the
//! options listed in [`RESERVED`], which are accepted and ignored (with a warning).
//!
//! The generic UCI syntax (quoting, `'\''`, comments, continuation lines) is handled by the
//! private `uci` module, which follows libuci.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub mod concentrator;
#[cfg(test)]
mod tests;
mod uci;

use uci::{Section, Value};

/// Options accepted and ignored because later versions will use them: `(section type, option)`.
///
/// - `uplink`: `weight` (scheduler weight).
pub const RESERVED: &[(&str, &str)] = &[("uplink", "weight")];

/// The most enabled `config uplink` sections a file may have.
pub const MAX_UPLINKS: usize = 8;

/// Options of `config mpconv`, as listed in messages.
const MPCONV_KEYS: &[&str] = &[
    "enabled",
    "mode",
    "lan",
    "queue",
    "socket",
    "max_connections",
    "checksum",
    "port_range",
    "idle_timeout",
    "firewall",
    "mark",
    "table",
    "log_level",
    "concentrator",
    "secret",
    "scheduler",
    "exclude",
    "exclude_port",
];

/// Options of `config uplink`, as listed in messages.
const UPLINK_KEYS: &[&str] = &[
    "device",
    "interface",
    "gateway",
    "gateway6",
    "mtu",
    "disabled",
    "backup",
    "probe",
    "probe_target",
    "probe_interval",
    "probe_timeout",
    "probe_down",
    "probe_up",
];

/// The most `list probe_target` entries of one uplink.
pub const MAX_PROBE_TARGETS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On-path: talk MPTCP straight to servers that speak it, fall back to TCP otherwise.
    Implicit,
    /// Off-path: every connection goes to a concentrator (RFC 8803).
    Explicit,
}

/// Which subflows carry the LAN hosts' data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// One active subflow (seed paper 001): the initial one.
    Single,
    /// All established subflows, by their measured delivery rate (explicit mode only: the
    /// concentrator reorders at the data level).
    Weighted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirewallBackend {
    /// nftables if the kernel has the `queue` expression, else iptables.
    Auto,
    Iptables,
    Nftables,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uplink {
    /// The UCI section name (`config uplink 'dsl'` → "dsl").
    pub name: String,
    /// Linux network device (`option device`). At least one of `device` and `interface` is
    /// set; with only `interface`, the device is netifd's `l3_device` at start.
    pub device: Option<String>,
    /// netifd interface behind the uplink (`option interface 'wan'`, the name in
    /// /etc/config/network). At start, whatever is not given explicitly comes from netifd
    /// (`ubus call network.interface.NAME status`, see `io::netifd`): the device (its
    /// `l3_device`), the addresses (always: there is no address option) and the gateways
    /// (its default routes). The daemon follows the device's link and addresses itself
    /// (netlink); the hotplug hook restarts it when an address it uses is gone.
    pub interface: Option<String>,
    /// Next hop for IPv4 (`option gateway`), if any (with `interface`: else netifd's).
    pub gateway: Option<IpAddr>,
    /// Next hop for IPv6 (`option gateway6`), if any (with `interface`: else netifd's).
    pub gateway6: Option<IpAddr>,
    /// MTU override (`option mtu`); otherwise the device's MTU is read at start.
    pub mtu: Option<u16>,
    /// Line of the section header, for messages.
    pub line: usize,
    /// `backup` and the probe options.
    pub health: UplinkHealth,
}

/// How an uplink's health is probed (`option probe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// ICMP / ICMPv6 echo requests (the default).
    Icmp,
    /// A TCP connection attempt to `IP:PORT` (port 443 by default): SYN/ACK or RST answers.
    Tcp,
    /// A DNS query over UDP to `IP:PORT` (port 53 by default): any reply answers.
    Dns,
    /// No probes: link and address events only.
    None,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Icmp => "icmp",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Dns => "dns",
            ProbeKind::None => "none",
        }
    }

    /// The port a target gets when it names none (0 for ICMP, which has none).
    pub fn default_port(self) -> u16 {
        match self {
            ProbeKind::Tcp => 443,
            ProbeKind::Dns => 53,
            ProbeKind::Icmp | ProbeKind::None => 0,
        }
    }
}

/// The health options of a `config uplink` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkHealth {
    /// `option backup` (default 0): a backup uplink (RFC 8684 backup flag on its subflows; no
    /// data while a non-backup uplink is up).
    pub backup: bool,
    /// `option probe`: icmp | tcp | dns | none (default icmp).
    pub probe: ProbeKind,
    /// `list probe_target`: `IP`, `IP:PORT` or `[IPv6]:PORT` (port: tcp 443, dns 53; none for
    /// icmp, stored as 0). Empty (or `probe 'none'`): no probes, link events only.
    pub probe_targets: Vec<std::net::SocketAddr>,
    /// `option probe_interval` in seconds, decimals allowed (default 1, 0.1..=3600), as ms.
    pub probe_interval_ms: u32,
    /// `option probe_timeout` in seconds (default 2, 0.1..=60): the longest a probe is waited
    /// for (its RTO's upper bound), as ms.
    pub probe_timeout_ms: u32,
    /// `option probe_down`: unanswered probes in a row before the uplink is down (default 3,
    /// 1..=100).
    pub probe_down: u8,
    /// `option probe_up`: answered probes in a row before it is up again (default 2, 1..=100).
    pub probe_up: u8,
}

impl Default for UplinkHealth {
    fn default() -> Self {
        UplinkHealth {
            backup: false,
            probe: ProbeKind::Icmp,
            probe_targets: Vec::new(),
            probe_interval_ms: 1000,
            probe_timeout_ms: 2000,
            probe_down: 3,
            probe_up: 2,
        }
    }
}

impl UplinkHealth {
    /// Whether probes are sent at all.
    pub fn probing(&self) -> bool {
        self.probe != ProbeKind::None && !self.probe_targets.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `option enabled` (default 1). When 0, `lan` and the uplinks may be absent (everything
    /// present is still validated), so that a default file can ship disabled.
    pub enabled: bool,
    /// `option mode` (default implicit).
    pub mode: Mode,
    /// `list lan`: LAN devices whose TCP traffic is converted (at least one when enabled). A
    /// single `option lan 'br-lan eth3'` with space-separated devices is accepted too.
    pub lan: Vec<String>,
    /// `option queue`: NFQUEUE number (default 0).
    pub queue: u16,
    /// `option socket`: control socket path (default /var/run/mpconv.sock).
    pub socket: PathBuf,
    /// `option max_connections` (default 4096, 1..=65536).
    pub max_connections: usize,
    /// `option checksum`: request DSS checksums (default 0).
    pub checksum: bool,
    /// `option port_range 'LO-HI'`: source ports of the router's subflows (default 61000-65535).
    pub port_range: (u16, u16),
    /// `option idle_timeout` in seconds (default 7440).
    pub idle_timeout: u32,
    /// `option firewall`: auto | iptables | nftables (default auto).
    pub firewall: FirewallBackend,
    /// `option mark`: base firewall mark; uplink i uses mark + 1 + i, injected LAN packets mark
    /// (default 0x6d70000, must leave room for the uplinks).
    pub mark: u32,
    /// `option table`: first routing table number; uplink i uses table + i (default 6170).
    pub table: u32,
    /// `option log_level`: error | warn | info | debug | trace (default info).
    pub log_level: log::LevelFilter,
    /// `option concentrator 'ADDR[:PORT]'` (port 5124 by default; IPv6 as `[ADDR]:PORT`):
    /// required in explicit mode.
    pub concentrator: Option<std::net::SocketAddr>,
    /// `option secret`: shared with the concentrator (at least 16 characters), proves the
    /// router to it in the Convert message's Cookie TLV.
    pub secret: Option<String>,
    /// `option scheduler`: single | weighted (default weighted in explicit mode, single in
    /// implicit mode, where only single is allowed).
    pub scheduler: Scheduler,
    /// `list exclude`: destination prefixes never converted (explicit mode adds the
    /// concentrator and private, loopback and link-local prefixes itself).
    pub exclude: Vec<concentrator::Prefix>,
    /// `list exclude_port`: destination ports never converted.
    pub exclude_port: Vec<u16>,
    /// `config uplink` sections in file order (at least one when enabled, at most
    /// [`MAX_UPLINKS`]; the first carries the initial subflow). Sections with `option disabled
    /// '1'` are validated (but need no `device` or `interface`) and left out.
    pub uplinks: Vec<Uplink>,
}

/// A configuration error, already phrased for a person:
/// `FILE:LINE: section 'NAME' (TYPE), option 'KEY': …` (anonymous sections are named
/// `@TYPE[N]` as `uci show` does; errors about the whole file are `FILE: …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Read and validate a configuration file.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    // libuci reads bytes; invalid UTF-8 can only end up in values, which are then rejected.
    parse(path, &String::from_utf8_lossy(&bytes))
}

/// Validate configuration text (`path` is only used in messages and stored in the result).
pub fn parse(path: &std::path::Path, text: &str) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let at = |line: usize, msg: String| ConfigError(format!("{file}:{line}: {msg}"));
    let pkg = uci::parse(text).map_err(|e| at(e.line, e.msg))?;

    if let Some((name, line)) = &pkg.name {
        if name != "mpconv" {
            return Err(at(
                *line,
                format!("package '{name}': this file configures package 'mpconv'"),
            ));
        }
    }

    // Sections: names unique (libuci would silently merge them), types known.
    let mut main: Option<Sec<'_>> = None;
    let mut uplink_secs = Vec::new();
    let mut counts = [0usize; 2];
    let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for s in &pkg.sections {
        let kind = match s.stype.as_str() {
            "mpconv" => 0,
            "uplink" => 1,
            other => {
                return Err(at(
                    s.line,
                    format!(
                        "section {}: unknown section type '{other}' (known: mpconv, uplink)",
                        label_of(s, 0)
                    ),
                ))
            }
        };
        let sec = Sec {
            file: &file,
            sec: s,
            label: label_of(s, counts[kind]),
        };
        counts[kind] += 1;
        if let Some(name) = &s.name {
            if let Some(first) = names.insert(name, s.line) {
                return Err(sec.err(
                    s.line,
                    format!(
                        "the name '{name}' is already used by the section at line {first} \
                         (section names must be unique)"
                    ),
                ));
            }
        }
        if kind == 0 {
            if let Some(first) = &main {
                return Err(sec.err(
                    s.line,
                    format!(
                        "second 'config mpconv' section (the first is at line {}); exactly one \
                         is allowed",
                        first.sec.line
                    ),
                ));
            }
            main = Some(sec);
        } else {
            uplink_secs.push(sec);
        }
    }
    let Some(main) = main else {
        return Err(ConfigError(format!(
            "{file}: no 'config mpconv' section (expected exactly one, e.g. `config mpconv 'main'`)"
        )));
    };

    let mut config = main.mpconv(path)?;

    for sec in &uplink_secs {
        let Some(uplink) = sec.uplink()? else {
            continue;
        };
        for key in ["device", "interface"] {
            let value = |u: &Uplink| match key {
                "device" => u.device.clone(),
                _ => u.interface.clone(),
            };
            let Some(mine) = value(&uplink) else {
                continue;
            };
            if let Some(other) = config
                .uplinks
                .iter()
                .find(|u| value(u).as_ref() == Some(&mine))
            {
                return Err(sec.opt_err(
                    sec.line_of(key),
                    key,
                    format!(
                        "'{mine}' is already used by uplink '{}' (line {})",
                        other.name, other.line
                    ),
                ));
            }
        }
        if let Some(dev) = uplink.device.as_ref().filter(|d| config.lan.contains(d)) {
            return Err(sec.opt_err(
                sec.line_of("device"),
                "device",
                format!("'{dev}' is also listed in 'lan'"),
            ));
        }
        if config.uplinks.len() >= MAX_UPLINKS {
            return Err(sec.err(
                sec.sec.line,
                format!("too many uplinks (at most {MAX_UPLINKS} may be enabled)"),
            ));
        }
        config.uplinks.push(uplink);
    }

    if config.enabled {
        if config.lan.is_empty() {
            return Err(main.opt_err(
                main.sec.line,
                "lan",
                "missing: list at least one LAN device (e.g. `list lan 'br-lan'`), or set \
                 `option enabled '0'`"
                    .into(),
            ));
        }
        if config.uplinks.is_empty() {
            return Err(main.err(
                main.sec.line,
                "no enabled 'config uplink' section: add at least one (e.g. `config uplink \
                 'wan'` with `option device 'eth1'` or `option interface 'wan'`), or set \
                 `option enabled '0'`"
                    .into(),
            ));
        }
    }

    // Routing tables table..table+uplinks must avoid the kernel's default/main/local.
    let first = u64::from(config.table);
    let last = first + config.uplinks.len().saturating_sub(1) as u64;
    for (reserved, what) in [(253u64, "default"), (254, "main"), (255, "local")] {
        if (first..=last).contains(&reserved) {
            let line = main.line_of("table");
            return Err(main.opt_err(
                line,
                "table",
                format!(
                    "'{}' with {} uplink(s) uses tables {first}..={last}, which includes {reserved} \
                     (the kernel's '{what}' table); pick another number",
                    config.table,
                    config.uplinks.len()
                ),
            ));
        }
    }
    Ok(config)
}

/// How a section is named in messages: `'main' (mpconv)`, or `'@uplink[2]' (uplink)` when
/// anonymous (`index` counts the sections of its type, as `uci show` does).
fn label_of(s: &Section, index: usize) -> String {
    match &s.name {
        Some(n) => format!("'{n}' ({})", s.stype),
        None => format!("'@{}[{index}]' ({})", s.stype, s.stype),
    }
}

/// A section being validated, with what messages need.
struct Sec<'a> {
    file: &'a str,
    sec: &'a Section,
    label: String,
}

impl Sec<'_> {
    fn err(&self, line: usize, msg: String) -> ConfigError {
        ConfigError(format!(
            "{}:{line}: section {}: {msg}",
            self.file, self.label
        ))
    }

    fn opt_err(&self, line: usize, key: &str, msg: String) -> ConfigError {
        ConfigError(format!(
            "{}:{line}: section {}, option '{key}': {msg}",
            self.file, self.label
        ))
    }

    /// The line of an option, or of the section header when it is absent.
    fn line_of(&self, key: &str) -> usize {
        self.sec
            .options
            .iter()
            .find(|o| o.name == key)
            .map_or(self.sec.line, |o| o.line)
    }

    /// Rejects unknown options, warns about reserved ones.
    fn check_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        for o in &self.sec.options {
            if known.contains(&o.name.as_str()) {
                continue;
            }
            if RESERVED.contains(&(self.sec.stype.as_str(), o.name.as_str())) {
                log::warn!(
                    "{}:{}: section {}, option '{}': reserved for a later version, ignored",
                    self.file,
                    o.line,
                    self.label,
                    o.name
                );
                continue;
            }
            let mut msg = format!("unknown option (known: {}", known.join(", "));
            if let Some(s) = known.iter().find(|k| similar(k, &o.name)) {
                msg = format!("{msg}; did you mean '{s}'?)");
            } else {
                msg.push(')');
            }
            return Err(self.opt_err(o.line, &o.name, msg));
        }
        Ok(())
    }

    /// A single-valued option: its value and line, if set.
    fn single(&self, key: &str) -> Result<Option<(&str, usize)>, ConfigError> {
        match self.sec.options.iter().find(|o| o.name == key) {
            None => Ok(None),
            Some(o) => match &o.value {
                Value::Single(v) => Ok(Some((v.as_str(), o.line))),
                Value::List(_) => Err(self.opt_err(
                    o.line,
                    key,
                    "takes a single value: use `option`, not `list`".into(),
                )),
            },
        }
    }

    /// A single-valued option converted by `conv`, which says what it expected on failure.
    fn get<T>(
        &self,
        key: &str,
        conv: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.single(key)? {
            None => Ok(None),
            Some((v, line)) => conv(v)
                .map(Some)
                .map_err(|what| self.opt_err(line, key, format!("{} {what}", quoted(v)))),
        }
    }

    fn mpconv(&self, path: &Path) -> Result<Config, ConfigError> {
        self.check_keys(MPCONV_KEYS)?;
        let mut lan: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        if let Some(o) = self.sec.options.iter().find(|o| o.name == "lan") {
            let items: Vec<(&str, usize)> = match &o.value {
                Value::Single(v) => v.split_whitespace().map(|d| (d, o.line)).collect(),
                Value::List(items) => items.iter().map(|(v, l)| (v.as_str(), *l)).collect(),
            };
            for (dev, line) in items {
                device(dev)
                    .map_err(|w| self.opt_err(line, "lan", format!("{} {w}", quoted(dev))))?;
                if !seen.insert(dev) {
                    return Err(self.opt_err(line, "lan", format!("'{dev}' is listed twice")));
                }
                lan.push(dev.to_string());
            }
        }
        let mode = self
            .get("mode", |v| match v {
                "implicit" => Ok(Mode::Implicit),
                "explicit" => Ok(Mode::Explicit),
                _ => Err("is not a mode (implicit or explicit)".into()),
            })?
            .unwrap_or(Mode::Implicit);
        let concentrator = self.get("concentrator", host_port)?;
        if mode == Mode::Explicit
            && concentrator.is_none()
            && self.get("enabled", boolean)? != Some(false)
        {
            return Err(self.opt_err(
                self.line_of("mode"),
                "concentrator",
                "is required in explicit mode (e.g. option concentrator '192.0.2.10:5124')".into(),
            ));
        }
        let secret = self.get("secret", secret)?;
        let scheduler = self
            .get("scheduler", |v| match v {
                "single" => Ok(Scheduler::Single),
                "weighted" => Ok(Scheduler::Weighted),
                _ => Err("is not a scheduler (single or weighted)".into()),
            })?
            .unwrap_or(if mode == Mode::Explicit {
                Scheduler::Weighted
            } else {
                Scheduler::Single
            });
        if mode == Mode::Implicit && scheduler == Scheduler::Weighted {
            return Err(self.opt_err(
                self.line_of("scheduler"),
                "scheduler",
                "'weighted' needs explicit mode: a server without a concentrator would see data out of order on its subflows only if it reorders at the data level, which mpconv cannot rely on; use 'single'".into(),
            ));
        }
        let mut exclude_port = Vec::new();
        for (v, line) in concentrator::items(self, "exclude_port") {
            let p = number(v, 1, 65535)
                .map_err(|w| self.opt_err(line, "exclude_port", format!("{} {w}", quoted(v))))?;
            exclude_port.push(p as u16);
        }
        Ok(Config {
            path: path.to_path_buf(),
            enabled: self.get("enabled", boolean)?.unwrap_or(true),
            mode,
            lan,
            queue: self
                .get("queue", |v| number(v, 0, 65535))?
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(0),
            socket: self
                .get("socket", socket)?
                .unwrap_or_else(|| PathBuf::from("/var/run/mpconv.sock")),
            max_connections: self
                .get("max_connections", |v| number(v, 1, 65536))?
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(4096),
            checksum: self.get("checksum", boolean)?.unwrap_or(false),
            port_range: self
                .get("port_range", port_range)?
                .unwrap_or((61000, 65535)),
            idle_timeout: self
                .get("idle_timeout", |v| number(v, 10, 86400))?
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(7440),
            firewall: self
                .get("firewall", |v| match v {
                    "auto" => Ok(FirewallBackend::Auto),
                    "iptables" => Ok(FirewallBackend::Iptables),
                    "nftables" => Ok(FirewallBackend::Nftables),
                    _ => Err("is not a firewall backend (auto, iptables or nftables)".into()),
                })?
                .unwrap_or(FirewallBackend::Auto),
            mark: self.get("mark", mark)?.unwrap_or(0x06d7_0000),
            table: self
                .get("table", |v| number(v, 1, 4_294_967_000))?
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(6170),
            log_level: self
                .get("log_level", log_level)?
                .unwrap_or(log::LevelFilter::Info),
            concentrator,
            secret,
            scheduler,
            exclude: concentrator::prefixes(self, "exclude")?,
            exclude_port,
            uplinks: Vec::new(),
        })
    }

    /// The uplink, or `None` if it is disabled.
    fn uplink(&self) -> Result<Option<Uplink>, ConfigError> {
        self.check_keys(UPLINK_KEYS)?;
        let Some(name) = self.sec.name.clone() else {
            return Err(self.err(
                self.sec.line,
                "uplink sections must be named (`config uplink 'NAME'`)".into(),
            ));
        };
        let disabled = self.get("disabled", boolean)?.unwrap_or(false);
        let device = self.get("device", |v| device(v).map(|()| v.to_string()))?;
        let interface = self.get("interface", |v| interface(v).map(|()| v.to_string()))?;
        if device.is_none() && interface.is_none() || disabled {
            if disabled {
                // Still check the rest, but a disabled placeholder needs no device.
                self.get("gateway", gateway4)?;
                self.get("gateway6", gateway6)?;
                self.get("mtu", |v| number(v, 576, 9000))?;
                self.health()?;
                return Ok(None);
            }
            return Err(self.opt_err(
                self.sec.line,
                "device",
                "missing (required: the Linux network device, e.g. `option device 'eth1'`, \
                 or the netifd interface, e.g. `option interface 'wan'`)"
                    .into(),
            ));
        }
        let uplink = Uplink {
            name,
            device,
            interface,
            gateway: self.get("gateway", gateway4)?.map(IpAddr::V4),
            gateway6: self.get("gateway6", gateway6)?.map(IpAddr::V6),
            mtu: self
                .get("mtu", |v| number(v, 576, 9000))?
                .and_then(|n| u16::try_from(n).ok()),
            line: self.sec.line,
            health: self.health()?,
        };
        Ok(if disabled { None } else { Some(uplink) })
    }
}

impl Sec<'_> {
    /// The health options (`backup`, `probe*`) of an uplink section.
    fn health(&self) -> Result<UplinkHealth, ConfigError> {
        let d = UplinkHealth::default();
        let probe = self
            .get("probe", |v| match v {
                "icmp" => Ok(ProbeKind::Icmp),
                "tcp" => Ok(ProbeKind::Tcp),
                "dns" => Ok(ProbeKind::Dns),
                "none" => Ok(ProbeKind::None),
                _ => Err("is not a probe kind (icmp, tcp, dns or none)".into()),
            })?
            .unwrap_or(d.probe);
        let mut probe_targets = Vec::new();
        for (v, line) in concentrator::items(self, "probe_target") {
            let t = probe_target(v, probe)
                .map_err(|w| self.opt_err(line, "probe_target", format!("{} {w}", quoted(v))))?;
            if probe_targets.contains(&t) {
                return Err(self.opt_err(
                    line,
                    "probe_target",
                    format!("{} is listed twice", quoted(v)),
                ));
            }
            if probe_targets.len() >= MAX_PROBE_TARGETS {
                return Err(self.opt_err(
                    line,
                    "probe_target",
                    format!("too many targets (at most {MAX_PROBE_TARGETS})"),
                ));
            }
            probe_targets.push(t);
        }
        let probe_interval_ms = self
            .get("probe_interval", |v| seconds(v, 100, 3_600_000))?
            .unwrap_or(d.probe_interval_ms);
        let probe_timeout_ms = self
            .get("probe_timeout", |v| seconds(v, 100, 60_000))?
            .unwrap_or(d.probe_timeout_ms);
        let count = |v: &str| number(v, 1, 100).map(|n| n as u8);
        Ok(UplinkHealth {
            backup: self.get("backup", boolean)?.unwrap_or(d.backup),
            probe,
            probe_targets,
            probe_interval_ms,
            probe_timeout_ms,
            probe_down: self.get("probe_down", count)?.unwrap_or(d.probe_down),
            probe_up: self.get("probe_up", count)?.unwrap_or(d.probe_up),
        })
    }
}

/// Seconds with up to three decimals (`'1'`, `'0.5'`, `'2.25'`), as milliseconds in
/// `lo_ms..=hi_ms`.
fn seconds(v: &str, lo_ms: u32, hi_ms: u32) -> Result<u32, String> {
    let bad = || {
        format!(
            "is not a number of seconds in {}..={} (decimals allowed, e.g. '0.5')",
            f64::from(lo_ms) / 1000.0,
            f64::from(hi_ms) / 1000.0
        )
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty() && frac.is_empty()
        || int.len() > 7
        || frac.len() > 3
        || v.ends_with('.')
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut ms: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        ms += u32::from(b - b'0') * [100, 10, 1][i];
    }
    let total = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(ms))
        .ok_or_else(bad)?;
    if (lo_ms..=hi_ms).contains(&total) {
        Ok(total)
    } else {
        Err(bad())
    }
}

/// A probe target: `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`. ICMP takes no port (stored as
/// 0); tcp and dns default to [`ProbeKind::default_port`].
fn probe_target(v: &str, kind: ProbeKind) -> Result<std::net::SocketAddr, String> {
    use std::net::SocketAddr;
    let what = "is not a probe target (an IP address, 'IP:PORT' or '[IPv6]:PORT', e.g. \
                '192.0.2.1', '192.0.2.1:443' or '[2001:db8::1]:53')";
    let (ip, port) = if let Ok(sa) = v.parse::<SocketAddr>() {
        (sa.ip(), Some(sa.port()))
    } else if let Ok(ip) = v
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        if v.starts_with('[') != v.ends_with(']') || (v.starts_with('[') && ip.is_ipv4()) {
            return Err(what.into());
        }
        (ip, None)
    } else {
        return Err(what.into());
    };
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        a => a,
    };
    let unusable = match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    if unusable {
        return Err("is not a usable probe target (unspecified, broadcast or multicast)".into());
    }
    let port = match (kind, port) {
        (ProbeKind::Icmp, Some(_)) => {
            return Err(
                "has a port, but icmp probes take none (use option probe 'tcp' or \
                        'dns' to probe a port)"
                    .into(),
            )
        }
        (_, Some(0)) => return Err("has port 0".into()),
        (_, Some(p)) => p,
        (k, None) => k.default_port(),
    };
    Ok(SocketAddr::new(ip, port))
}

/// A value for a message, quoted and kept short.
fn quoted(v: &str) -> String {
    let mut out = String::from("'");
    for c in v.chars().take(60) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if v.chars().count() > 60 {
        out.push('…');
    }
    out.push('\'');
    out
}

/// A decimal number in `lo..=hi`.
fn number(v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let bad = || format!("is not a number in {lo}..={hi}");
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    v.parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(bad)
}

/// A shared secret (router and concentrator): at least 16 characters.
fn secret(v: &str) -> Result<String, String> {
    if v.chars().count() < 16 {
        Err("is too short: a secret has at least 16 characters".to_string())
    } else {
        Ok(v.to_string())
    }
}

/// A UCI boolean.
fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err("is not a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)".into()),
    }
}

/// A Linux network device name (the kernel's `dev_valid_name`).
fn device(v: &str) -> Result<(), String> {
    if v.is_empty()
        || v.len() > 15
        || v == "."
        || v == ".."
        || v.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(
            "is not a network device name (1 to 15 characters, no '/', ':' or spaces)".into(),
        );
    }
    Ok(())
}

/// A netifd interface name: a UCI section name (letters, digits, `_`) of at most 15 characters,
/// as LuCI allows for new interfaces (`and(uciname,maxlength(15))`). It becomes the ubus object
/// `network.interface.NAME`.
fn interface(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(
            "is not a netifd interface name (1 to 15 letters, digits or _, as in \
                    /etc/config/network, e.g. 'wan')"
                .into(),
        );
    }
    Ok(())
}

fn socket(v: &str) -> Result<PathBuf, String> {
    // sun_path holds 108 bytes including the terminating NUL.
    if !v.starts_with('/') || v.len() > 107 || v.contains('\0') || v.ends_with('/') {
        return Err("is not an absolute socket path of at most 107 bytes".into());
    }
    Ok(PathBuf::from(v))
}

/// `LO-HI`: 1024 <= LO <= HI <= 65535, at least 64 ports.
fn port_range(v: &str) -> Result<(u16, u16), String> {
    let what = "is not a port range 'LO-HI' with 1024 <= LO <= HI <= 65535";
    let (lo, hi) = v.split_once('-').ok_or_else(|| what.to_string())?;
    let lo = number(lo, 1024, 65535).map_err(|_| what.to_string())?;
    let hi = number(hi, 1024, 65535).map_err(|_| what.to_string())?;
    if lo > hi {
        return Err(what.into());
    }
    let count = hi - lo + 1;
    if count < 64 {
        return Err(format!(
            "holds {count} ports; at least 64 are needed (e.g. '61000-65535')"
        ));
    }
    match (u16::try_from(lo), u16::try_from(hi)) {
        (Ok(lo), Ok(hi)) => Ok((lo, hi)),
        _ => Err(what.into()),
    }
}

/// Decimal or `0x` hex, nonzero, low 8 bits zero (uplink i uses mark + 1 + i).
/// `ADDR[:PORT]` or `[V6ADDR]:PORT`; the port defaults to 5124 (RFC 8803's converter).
fn host_port(v: &str) -> Result<std::net::SocketAddr, String> {
    let what =
        "is not ADDR[:PORT] (an IP address, e.g. '192.0.2.10:5124' or '[2001:db8::10]:5124')";
    if let Ok(sa) = v.parse::<std::net::SocketAddr>() {
        if sa.port() == 0 {
            return Err(what.into());
        }
        return Ok(sa);
    }
    let ip: IpAddr = v
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| what.to_string())?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(what.into());
    }
    Ok(std::net::SocketAddr::new(ip, 5124))
}

/// `option log_level` of both sections.
fn log_level(v: &str) -> Result<log::LevelFilter, String> {
    match v {
        "error" => Ok(log::LevelFilter::Error),
        "warn" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        "trace" => Ok(log::LevelFilter::Trace),
        _ => Err("is not a log level (error, warn, info, debug or trace)".into()),
    }
}

fn mark(v: &str) -> Result<u32, String> {
    let what = "is not a mark: a nonzero 32-bit number, decimal or 0x hex, with the low 8 bits \
                zero (e.g. 0x6d70000)";
    let n = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(what.into());
        }
        u32::from_str_radix(hex, 16).map_err(|_| what.to_string())?
    } else {
        let n = number(v, 1, u64::from(u32::MAX)).map_err(|_| what.to_string())?;
        u32::try_from(n).map_err(|_| what.to_string())?
    };
    if n == 0 || n & 0xff != 0 {
        return Err(what.into());
    }
    Ok(n)
}

fn gateway4(v: &str) -> Result<Ipv4Addr, String> {
    let a: Ipv4Addr = v
        .parse()
        .map_err(|_| "is not an IPv4 address (IPv6 goes in 'gateway6')".to_string())?;
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        return Err("is not a usable gateway address".into());
    }
    Ok(a)
}

fn gateway6(v: &str) -> Result<Ipv6Addr, String> {
    let a: Ipv6Addr = v.parse().map_err(|_| {
        "is not an IPv6 address (without a %zone; IPv4 goes in 'gateway')".to_string()
    })?;
    if a.is_unspecified() || a.is_multicast() || a.to_ipv4_mapped().is_some() {
        return Err("is not a usable gateway address".into());
    }
    Ok(a)
}

/// True if `a` and `b` differ by at most two edits (for "did you mean").
fn similar(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 2 || b.len() > 64 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().is_some_and(|&d| d <= 2)
}
