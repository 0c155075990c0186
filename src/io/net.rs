//! Resolving the configured devices at start: interface index, addresses and MTU.
//!
//! Addresses come from `ip -o addr show dev DEV` (one line per address), parsed by the pure
//! [`parse_ip_addr`].

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cmd;
use super::sys;
use crate::config;

/// An uplink as found on the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUplink {
    pub name: String,
    pub device: String,
    pub ifindex: u32,
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
    pub mtu: u16,
}

/// A LAN device as found on the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedLan {
    pub device: String,
    pub ifindex: u32,
}

/// The first global IPv4 and IPv6 address in `ip -o addr show` output. Deprecated and
/// DAD-failed IPv6 addresses are skipped; a tentative one is taken (raw sockets do not need the
/// address to be usable by the kernel).
pub fn parse_ip_addr(text: &str) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let mut v4 = None;
    let mut v6 = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = words.iter().position(|w| *w == "inet" || *w == "inet6") else {
            continue;
        };
        let Some(addr) = words.get(pos + 1) else {
            continue;
        };
        let addr = addr.split('/').next().unwrap_or("");
        let rest = &words[pos + 2..];
        let global = rest.windows(2).any(|w| w[0] == "scope" && w[1] == "global");
        if !global || rest.iter().any(|w| *w == "deprecated" || *w == "dadfailed") {
            continue;
        }
        if words[pos] == "inet" {
            if v4.is_none() {
                v4 = addr.parse().ok();
            }
        } else if v6.is_none() {
            v6 = addr.parse().ok();
        }
    }
    (v4, v6)
}

/// Parse the content of `/sys/class/net/DEV/mtu`.
pub fn parse_mtu(text: &str) -> Option<u16> {
    let v: u32 = text.trim().parse().ok()?;
    Some(v.min(u16::MAX as u32) as u16)
}

fn uplink_error(u: &config::Uplink, cfg: &config::Config, what: &str) -> String {
    format!(
        "{}:{}: uplink '{}': device '{}' {}",
        cfg.path.display(),
        u.line,
        u.name,
        u.device,
        what
    )
}

/// Resolve every uplink of `cfg`.
pub fn resolve_uplinks(cfg: &config::Config) -> Result<Vec<ResolvedUplink>, String> {
    let mut out = Vec::new();
    for u in &cfg.uplinks {
        let ifindex =
            sys::if_nametoindex(&u.device).ok_or_else(|| uplink_error(u, cfg, "does not exist"))?;
        let text = cmd::run(
            &cmd::argv(&["ip", "-o", "addr", "show", "dev", &u.device]),
            None,
        )
        .map_err(|e| uplink_error(u, cfg, &format!("cannot be read: {e}")))?;
        let (addr4, addr6) = parse_ip_addr(&text);
        if addr4.is_none() && addr6.is_none() {
            return Err(uplink_error(u, cfg, "has no global IPv4 or IPv6 address"));
        }
        let mtu = match u.mtu {
            Some(m) => m,
            None => {
                let path = format!("/sys/class/net/{}/mtu", u.device);
                std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| parse_mtu(&t))
                    .ok_or_else(|| uplink_error(u, cfg, &format!("has no readable {path}")))?
            }
        };
        out.push(ResolvedUplink {
            name: u.name.clone(),
            device: u.device.clone(),
            ifindex,
            addr4,
            addr6,
            mtu,
        });
    }
    Ok(out)
}

/// Resolve every LAN device of `cfg`.
pub fn resolve_lans(cfg: &config::Config) -> Result<Vec<ResolvedLan>, String> {
    cfg.lan
        .iter()
        .map(|dev| {
            sys::if_nametoindex(dev)
                .map(|ifindex| ResolvedLan {
                    device: dev.clone(),
                    ifindex,
                })
                .ok_or_else(|| {
                    format!(
                        "{}: list lan: device '{dev}' does not exist",
                        cfg.path.display()
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_o_addr() {
        let text = "\
4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever
4: eth0    inet6 fe80::fc:ff:fe00:1/64 scope link \\       valid_lft forever preferred_lft forever
4: eth0    inet6 2001:db8::1/64 scope global deprecated dynamic \\       valid_lft 10sec preferred_lft 0sec
4: eth0    inet6 fd00::2/64 scope global nodad \\       valid_lft forever preferred_lft forever
4: eth0    inet 192.0.2.3/24 brd 192.0.2.255 scope global secondary eth0\\       valid_lft forever preferred_lft forever
";
        assert_eq!(
            parse_ip_addr(text),
            (
                Some("192.0.2.2".parse().unwrap()),
                Some("fd00::2".parse().unwrap())
            )
        );
    }

    #[test]
    fn parses_ppp_peer_and_host_scope() {
        let text = "\
7: pppoe-wan    inet 100.64.1.2 peer 10.0.0.1/32 scope global pppoe-wan\\       valid_lft forever preferred_lft forever
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
";
        assert_eq!(
            parse_ip_addr(text),
            (Some("100.64.1.2".parse().unwrap()), None)
        );
        assert_eq!(parse_ip_addr(""), (None, None));
    }

    #[test]
    fn parses_mtu() {
        assert_eq!(parse_mtu("1500\n"), Some(1500));
        assert_eq!(parse_mtu("65536\n"), Some(65535));
        assert_eq!(parse_mtu("x"), None);
    }
}
