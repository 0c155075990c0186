//! Asking OpenWrt's netifd about an interface (`option interface 'wan'` of an uplink).
//!
//! [`query`] runs `ubus call network.interface.NAME status` (the `ubus` command line tool, on
//! every OpenWrt; the environment variable `MPCONV_UBUS` names another program, for tests) and
//! [`parse_status`] reads its JSON with the small reader below (no serde). The fields used are
//! those of netifd's `netifd_handle_status` (ubus.c):
//!
//! - `up` (bool): the interface is up; when it is not, nothing else is trusted;
//! - `l3_device` (only present while up; e.g. `pppoe-wan`, `wwan0`), else `device`;
//! - `ipv4-address[0].address`, `ipv6-address[0].address`;
//! - `route[]`: the first entry with `target` `0.0.0.0` and `mask` 0 gives the IPv4 gateway
//!   (`nexthop`), the first with `::`/0 the IPv6 one; an unspecified nexthop (a device route,
//!   as on PPP) gives none.
//!
//! Everything else (`ipv6-prefix-assignment`, `data`, `inactive`, …) is skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

/// What netifd says about an interface that is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceStatus {
    /// `l3_device`, else `device`.
    pub device: Option<String>,
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
    /// Next hop of the IPv4 default route, if it has one.
    pub gateway: Option<Ipv4Addr>,
    /// Next hop of the IPv6 default route, if it has one.
    pub gateway6: Option<Ipv6Addr>,
}

/// Why an interface could not be used; [`Error::describe`] words it for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `up` is false (or absent).
    Down,
    /// ubus ran and failed (netifd has no such interface: "Command failed: Not found").
    Unknown(String),
    /// ubus could not be run at all.
    NoUbus(String),
    /// The answer is not the JSON object netifd sends.
    BadReply(String),
}

impl Error {
    /// `netifd interface 'wan' is down` and the like.
    pub fn describe(&self, iface: &str) -> String {
        match self {
            Error::Down => format!("netifd interface '{iface}' is down"),
            Error::Unknown(e) => format!("netifd interface '{iface}' unknown (ubus: {e})"),
            Error::NoUbus(e) => {
                format!("netifd interface '{iface}' cannot be queried (ubus: {e})")
            }
            Error::BadReply(e) => {
                format!("netifd interface '{iface}': unexpected reply from ubus ({e})")
            }
        }
    }
}

/// The program to run: `$MPCONV_UBUS`, else `ubus`.
fn ubus_program() -> String {
    std::env::var("MPCONV_UBUS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ubus".into())
}

/// Ask netifd for `iface` (`ubus call network.interface.IFACE status`).
pub fn query(iface: &str) -> Result<IfaceStatus, Error> {
    query_with(&ubus_program(), iface)
}

/// [`query`] with the program given.
fn query_with(prog: &str, iface: &str) -> Result<IfaceStatus, Error> {
    let object = format!("network.interface.{iface}");
    log::debug!("exec: {prog} call {object} status");
    let out = Command::new(prog)
        .args(["call", &object, "status"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::NoUbus(format!("cannot run {prog}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        return Err(Error::Unknown(if err.is_empty() {
            format!("{prog} exited with {}", out.status)
        } else {
            err.chars().take(200).collect()
        }));
    }
    parse_status(&String::from_utf8_lossy(&out.stdout))
}

/// Read the reply of `ubus call network.interface.NAME status`.
pub fn parse_status(text: &str) -> Result<IfaceStatus, Error> {
    let v = parse_json(text).map_err(Error::BadReply)?;
    if !matches!(v, Json::Object(_)) {
        return Err(Error::BadReply("not a JSON object".into()));
    }
    if v.get("up").and_then(Json::as_bool) != Some(true) {
        return Err(Error::Down);
    }
    let device = ["l3_device", "device"]
        .iter()
        .filter_map(|k| v.get(k).and_then(Json::as_str))
        .find(|d| !d.is_empty())
        .map(str::to_string);
    let first_addr = |key: &str| {
        v.get(key)
            .and_then(Json::as_array)
            .and_then(|a| a.first())
            .and_then(|e| e.get("address"))
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    let addr4 = match first_addr("ipv4-address") {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let addr6 = match first_addr("ipv6-address") {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let mut gateway = None;
    let mut gateway6 = None;
    for r in v.get("route").and_then(Json::as_array).unwrap_or(&[]) {
        let target = r.get("target").and_then(Json::as_str);
        let mask = r.get("mask").and_then(Json::as_f64);
        let hop = r.get("nexthop").and_then(Json::as_str);
        let (Some(target), Some(mask), Some(hop)) = (target, mask, hop) else {
            continue;
        };
        if mask != 0.0 {
            continue;
        }
        match (target.parse::<IpAddr>(), hop.parse::<IpAddr>()) {
            (Ok(IpAddr::V4(t)), Ok(IpAddr::V4(h)))
                if t.is_unspecified() && !h.is_unspecified() && gateway.is_none() =>
            {
                gateway = Some(h);
            }
            (Ok(IpAddr::V6(t)), Ok(IpAddr::V6(h)))
                if t.is_unspecified() && !h.is_unspecified() && gateway6.is_none() =>
            {
                gateway6 = Some(h);
            }
            _ => {}
        }
    }
    Ok(IfaceStatus {
        device,
        addr4,
        addr6,
        gateway,
        gateway6,
    })
}

/// A JSON value. Objects keep their members in order (netifd sends no duplicates; the first
/// one wins).
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Deepest nesting accepted (netifd's replies nest 4 levels).
const MAX_DEPTH: usize = 64;
/// Largest reply accepted (a busy interface's status is a few KiB).
const MAX_LEN: usize = 1 << 20;

/// Parse one JSON document (RFC 8259; surrounding whitespace allowed). Errors say what and where.
fn parse_json(text: &str) -> Result<Json, String> {
    if text.len() > MAX_LEN {
        return Err(format!("reply of {} bytes is too long", text.len()));
    }
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        if self.i >= self.s.len() {
            format!("JSON: {what} at the end")
        } else {
            format!("JSON: {what} at byte {}", self.i)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') if self.eat(b"true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Json::Null),
            _ => Err(self.err("expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Json::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a member name"));
            }
            let k = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth + 1)?;
            members.push((k, v));
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(Json::Object(members));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(Json::Array(items));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("bad \\u escape"))?;
        let n = u32::from_str_radix(digits, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) && self.eat(b"\\u") {
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.err("bad surrogate pair"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            // A lone surrogate becomes U+FFFD rather than an error.
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return Err(self.err("control character in string")),
                _ => out.push(c),
            }
        }
        // The input is a &str and escapes were encoded as UTF-8, so this cannot fail; stay
        // lossless-or-lossy rather than panic.
        Ok(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i > s
        };
        if !digits(self) {
            return Err(self.err("bad number"));
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(self.err("bad number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(self.err("bad number"));
            }
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map(Json::Number)
            .ok_or_else(|| self.err("bad number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DHCP on the WAN port (`proto dhcp`, `ubus call network.interface.wan status` on 23.05),
    /// with a source-specific host route to the gateway before the default route.
    const DHCP_WAN: &str = r#"{
	"up": true,
	"pending": false,
	"available": true,
	"autostart": true,
	"dynamic": false,
	"uptime": 110308,
	"l3_device": "eth1",
	"proto": "dhcp",
	"device": "eth1",
	"metric": 0,
	"dns_metric": 0,
	"delegation": true,
	"ipv4-address": [
		{
			"address": "192.168.100.23",
			"mask": 24
		}
	],
	"ipv6-address": [
		
	],
	"ipv6-prefix": [
		
	],
	"ipv6-prefix-assignment": [
		
	],
	"route": [
		{
			"target": "192.168.100.1",
			"mask": 32,
			"nexthop": "0.0.0.0",
			"source": "192.168.100.23\/32"
		},
		{
			"target": "0.0.0.0",
			"mask": 0,
			"nexthop": "192.168.100.1",
			"source": "192.168.100.23\/32"
		}
	],
	"dns-server": [
		"192.168.100.1"
	],
	"dns-search": [
		"lan"
	],
	"neighbors": [
		
	],
	"inactive": {
		"ipv4-address": [
			
		],
		"ipv6-address": [
			
		],
		"route": [
			
		],
		"dns-server": [
			
		],
		"dns-search": [
			
		],
		"neighbors": [
			
		]
	},
	"data": {
		"leasetime": 86400
	}
}
"#;

    /// PPPoE (`proto pppoe` on eth0.7): the layer-3 device is `pppoe-wan`, the address is a
    /// /32 with a point-to-point peer, the default route is a device route (nexthop 0.0.0.0),
    /// IPv6 came in through `ipv6 auto` on the same interface with a router-given default.
    const PPPOE_WAN: &str = r#"{"up":true,"pending":false,"available":true,"autostart":true,"dynamic":false,"uptime":5021,"l3_device":"pppoe-wan","proto":"pppoe","device":"eth0.7","updated":["addresses","routes"],"metric":0,"dns_metric":0,"delegation":true,"ipv4-address":[{"address":"100.64.17.42","mask":32,"ptpaddress":"100.64.0.1"}],"ipv6-address":[{"address":"2001:db8:100::5a1","mask":64,"preferred":3541,"valid":7141}],"ipv6-prefix":[{"address":"2001:db8:2200::","mask":56,"preferred":3541,"valid":7141,"class":"wan_6","assigned":{"lan":{"address":"2001:db8:2200::","mask":64}}}],"ipv6-prefix-assignment":[],"route":[{"target":"0.0.0.0","mask":0,"nexthop":"0.0.0.0","source":"0.0.0.0\/0"},{"target":"::","mask":0,"nexthop":"fe80::1","metric":512,"valid":1791,"source":"2001:db8:2200::\/56"}],"dns-server":["198.51.100.53","2001:db8:53::1"],"dns-search":[],"neighbors":[],"inactive":{"ipv4-address":[],"ipv6-address":[],"route":[],"dns-server":[],"dns-search":[],"neighbors":[]},"data":{"ipv6cp":true,"ppp_ifname":"pppoe-wan","note":"caf\u00e9 \ud83d\ude80 \"q\" \\ \/"}}"#;

    /// An LTE modem through `proto qmi` (interface `wwan`, device `/dev/cdc-wdm0` hidden, so no
    /// `device`): l3_device `wwan0`, CGNAT IPv4 with a gateway, an IPv6 address and a prefix
    /// assignment (nested objects that must be skipped), numbers in exponent form.
    const LTE_QMI: &str = r#"
{
	"up": true,
	"pending": false,
	"available": true,
	"autostart": true,
	"dynamic": false,
	"uptime": 3.6e3,
	"l3_device": "wwan0",
	"proto": "qmi",
	"metric": 10,
	"dns_metric": 0,
	"delegation": true,
	"ipv4-address": [ { "address": "10.145.33.7", "mask": 29 } ],
	"ipv6-address": [ { "address": "2a02:db8:4:1::2b", "mask": 64, "preferred": -1, "valid": -1 } ],
	"ipv6-prefix": [ ],
	"ipv6-prefix-assignment": [
		{
			"address": "2a02:db8:4:77::",
			"mask": 64,
			"preferred": 4294967295,
			"valid": 4294967295,
			"local-address": { "address": "2a02:db8:4:77::1", "mask": 64 }
		}
	],
	"route": [
		{ "target": "10.145.33.0", "mask": 29, "nexthop": "0.0.0.0", "source": "0.0.0.0/0" },
		{ "target": "0.0.0.0", "mask": 0, "nexthop": "10.145.33.1", "metric": 10, "source": "0.0.0.0/0" },
		{ "target": "::", "mask": 0, "nexthop": "2a02:db8:4:1::1", "metric": 10, "source": "::/0" },
		{ "target": "0.0.0.0", "mask": 0, "nexthop": "10.145.33.6", "source": "0.0.0.0/0" }
	],
	"dns-server": [ "10.145.0.53" ],
	"dns-search": [ ],
	"inactive": { "ipv4-address": [ ], "ipv6-address": [ ], "route": [ { "target": "0.0.0.0", "mask": 0, "nexthop": "192.0.2.1" } ], "dns-server": [ ], "dns-search": [ ] },
	"data": { "zone": null, "modes": [ "lte", "umts" ], "signal": { "rssi": -67.5, "ok": false } }
}
"#;

    /// An interface netifd knows but that is down (e.g. the modem is unplugged): no
    /// `l3_device`, no addresses, and an error list.
    const DOWN: &str = r#"{
	"up": false,
	"pending": false,
	"available": false,
	"autostart": true,
	"dynamic": false,
	"proto": "qmi",
	"data": {
		
	},
	"errors": [
		{
			"subsystem": "qmi",
			"code": "NO_DEVICE"
		}
	]
}"#;

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn dhcp_wan() {
        assert_eq!(
            parse_status(DHCP_WAN).unwrap(),
            IfaceStatus {
                device: Some("eth1".into()),
                addr4: Some(ip4("192.168.100.23")),
                addr6: None,
                gateway: Some(ip4("192.168.100.1")),
                gateway6: None,
            }
        );
    }

    #[test]
    fn pppoe_wan() {
        assert_eq!(
            parse_status(PPPOE_WAN).unwrap(),
            IfaceStatus {
                device: Some("pppoe-wan".into()),
                addr4: Some(ip4("100.64.17.42")),
                addr6: Some(ip6("2001:db8:100::5a1")),
                gateway: None,
                gateway6: Some(ip6("fe80::1")),
            }
        );
        let v = parse_json(PPPOE_WAN).unwrap();
        assert_eq!(
            v.get("data")
                .and_then(|d| d.get("note"))
                .and_then(Json::as_str),
            Some("café \u{1f680} \"q\" \\ /")
        );
    }

    #[test]
    fn lte_qmi() {
        assert_eq!(
            parse_status(LTE_QMI).unwrap(),
            IfaceStatus {
                device: Some("wwan0".into()),
                addr4: Some(ip4("10.145.33.7")),
                addr6: Some(ip6("2a02:db8:4:1::2b")),
                gateway: Some(ip4("10.145.33.1")),
                gateway6: Some(ip6("2a02:db8:4:1::1")),
            }
        );
    }

    #[test]
    fn down() {
        assert_eq!(parse_status(DOWN), Err(Error::Down));
        assert_eq!(parse_status("{}"), Err(Error::Down));
        assert_eq!(parse_status(r#"{"up": 1}"#), Err(Error::Down));
        assert_eq!(
            Error::Down.describe("wwan"),
            "netifd interface 'wwan' is down"
        );
        assert_eq!(
            Error::Unknown("Command failed: Not found".into()).describe("wwan"),
            "netifd interface 'wwan' unknown (ubus: Command failed: Not found)"
        );
    }

    #[test]
    fn device_falls_back_and_odd_entries_are_skipped() {
        let s = parse_status(
            r#"{"up":true,"device":"eth2","ipv4-address":[{"mask":24},"x"],
                "ipv6-address":[{"address":"192.0.2.1"}],
                "route":[{"target":"0.0.0.0","mask":8,"nexthop":"192.0.2.254"},
                         {"target":"0.0.0.0","mask":0},
                         {"target":"::","mask":0,"nexthop":"192.0.2.9"},
                         {"target":"0.0.0.0","mask":0,"nexthop":"192.0.2.1"}]}"#,
        )
        .unwrap();
        assert_eq!(s.device.as_deref(), Some("eth2"));
        assert_eq!((s.addr4, s.addr6), (None, None));
        assert_eq!((s.gateway, s.gateway6), (Some(ip4("192.0.2.1")), None));
        let s = parse_status(r#"{"up":true,"l3_device":"","device":"eth3"}"#).unwrap();
        assert_eq!(s.device.as_deref(), Some("eth3"));
        assert_eq!(parse_status(r#"{"up":true}"#).unwrap().device, None);
    }

    #[test]
    fn bad_replies() {
        for (text, want) in [
            ("", "expected a value at the end"),
            ("[true]", "not a JSON object"),
            ("{\"up\":true", "expected ',' or '}' at the end"),
            ("{\"up\":tru}", "expected a value at byte 6"),
            ("{\"up\":true} x", "trailing characters at byte 12"),
            ("{\"a\":\"\\x\"}", "bad escape"),
            ("{\"a\":\"\\u12\"}", "bad \\u escape"),
            ("{\"a\":\"\n\"}", "control character"),
            ("{\"a\":01x}", "expected ',' or '}'"),
            ("{\"a\":-}", "bad number"),
            ("{\"a\":1.}", "bad number"),
            ("{\"a\" 1}", "expected ':'"),
            ("{1:1}", "expected a member name"),
            ("{\"a\":[1 2]}", "expected ',' or ']'"),
        ] {
            match parse_status(text) {
                Err(Error::BadReply(e)) => assert!(e.contains(want), "{text:?}: {e}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_json(&deep), Err(e) if e.contains("too deep")));
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_LEN));
        assert!(matches!(parse_json(&long), Err(e) if e.contains("too long")));
    }

    #[test]
    fn json_values() {
        let v =
            parse_json(" {\"a\":[null,true,false,-1.5e2,\"\\ud800\"],\"a\":2,\"b\":{}} ").unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Json::Array(vec![
                Json::Null,
                Json::Bool(true),
                Json::Bool(false),
                Json::Number(-150.0),
                Json::String("\u{fffd}".into()),
            ]))
        );
        assert_eq!(v.get("b"), Some(&Json::Object(Vec::new())));
        assert_eq!(v.get("c"), None);
    }

    #[test]
    fn query_runs_the_ubus_program() {
        let dir = std::env::temp_dir().join(format!("mpconv-netifd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("ubus");
        std::fs::write(
            &script,
            "#!/bin/sh\n\
             [ \"$1 $3\" = 'call status' ] || { echo \"usage: $*\" >&2; exit 2; }\n\
             case \"$2\" in\n\
             network.interface.wan) echo '{\"up\":true,\"l3_device\":\"up1\",\"ipv4-address\":[{\"address\":\"100.64.1.2\",\"mask\":24}],\"route\":[{\"target\":\"0.0.0.0\",\"mask\":0,\"nexthop\":\"100.64.1.1\"}]}' ;;\n\
             network.interface.down) echo '{\"up\":false}' ;;\n\
             *) echo 'Command failed: Not found' >&2; exit 4 ;;\n\
             esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prog = script.to_str().unwrap();
        let wan = query_with(prog, "wan");
        let down = query_with(prog, "down");
        let nope = query_with(prog, "nope");
        let missing = query_with(dir.join("missing").to_str().unwrap(), "wan");
        let _ = std::fs::remove_dir_all(&dir);

        let wan = wan.unwrap();
        assert_eq!(wan.device.as_deref(), Some("up1"));
        assert_eq!(wan.gateway, Some(ip4("100.64.1.1")));
        assert_eq!(down, Err(Error::Down));
        assert_eq!(
            nope.unwrap_err().describe("nope"),
            "netifd interface 'nope' unknown (ubus: Command failed: Not found)"
        );
        assert!(
            matches!(&missing, Err(Error::NoUbus(e)) if e.contains("cannot run")),
            "{missing:?}"
        );
    }
}
