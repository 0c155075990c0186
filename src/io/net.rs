//! Resolving the configured devices at start: interface index, addresses, gateways and MTU.
//!
//! An uplink with `option interface 'NAME'` is first looked up in netifd ([`super::netifd`]):
//! its device (unless `option device` is given), its addresses, and its gateways (unless
//! `option gateway`/`gateway6` are given) come from there; the merge is the pure [`pick`].
//! Otherwise addresses come from `ip -o addr show dev DEV` (one line per address), parsed by
//! the pure [`parse_ip_addr`], and the gateways are the configured ones. The MTU is
//! `option mtu`, else the device's.
//!
//! All of it is read once, at start. The uplinks follow changes because the daemon is
//! restarted on them: procd interface triggers for uplinks with `option interface`
//! (/etc/init.d/mpconv), the hotplug hook /etc/hotplug.d/iface/95-mpconv for the others.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cmd;
use super::netifd;
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
    /// Next hop of the uplink's IPv4 default route (configured, else netifd's), if any.
    pub gateway: Option<Ipv4Addr>,
    /// Next hop of the uplink's IPv6 default route (configured, else netifd's), if any.
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u16,
}

/// What an uplink's configuration and netifd's answer add up to, before the system is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picked {
    pub device: String,
    /// How the device was found, for messages: `device 'eth1'` or `device 'wwan0' (from netifd
    /// interface 'wwan')`.
    pub what: String,
    /// The addresses, when netifd gave them (else they are read from the device).
    pub addrs: Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    pub gateway: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
}

/// Merge an uplink's configuration with netifd's status of its `interface` (`None` when it has
/// none): explicit options win. Errors are the text after `uplink 'NAME': `.
pub fn pick(u: &config::Uplink, nf: Option<&netifd::IfaceStatus>) -> Result<Picked, String> {
    let v4 = |g: Option<std::net::IpAddr>| match g {
        Some(std::net::IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let v6 = |g: Option<std::net::IpAddr>| match g {
        Some(std::net::IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let iface = u.interface.as_deref().unwrap_or("");
    let (device, what) = match (&u.device, nf.and_then(|s| s.device.as_ref())) {
        (Some(d), _) => (d.clone(), format!("device '{d}'")),
        (None, Some(d)) => (
            d.clone(),
            format!("device '{d}' (from netifd interface '{iface}')"),
        ),
        (None, None) => {
            return Err(format!(
                "netifd interface '{iface}' has no device (set `option device`)"
            ))
        }
    };
    // A name from netifd is a kernel device name; still never let it build a path elsewhere.
    if device.is_empty() || device.len() > 15 || device.contains('/') || device == ".." {
        return Err(format!("{what} is not a network device name"));
    }
    let addrs = match nf {
        None => None,
        Some(s) if s.addr4.is_none() && s.addr6.is_none() => {
            return Err(format!(
                "netifd interface '{iface}' has no IPv4 or IPv6 address"
            ))
        }
        Some(s) => Some((s.addr4, s.addr6)),
    };
    Ok(Picked {
        device,
        what,
        addrs,
        gateway: v4(u.gateway).or(nf.and_then(|s| s.gateway)),
        gateway6: v6(u.gateway6).or(nf.and_then(|s| s.gateway6)),
    })
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

fn uplink_error(u: &config::Uplink, cfg: &config::Config, msg: &str) -> String {
    format!(
        "{}:{}: uplink '{}': {msg}",
        cfg.path.display(),
        u.line,
        u.name
    )
}

/// Resolve every uplink of `cfg` (asking netifd about those with `interface`).
pub fn resolve_uplinks(cfg: &config::Config) -> Result<Vec<ResolvedUplink>, String> {
    let mut out = Vec::new();
    for u in &cfg.uplinks {
        let nf = match &u.interface {
            Some(i) => {
                let st = netifd::query(i).map_err(|e| uplink_error(u, cfg, &e.describe(i)))?;
                log::debug!("uplink {}: netifd interface {i}: {st:?}", u.name);
                Some(st)
            }
            None => None,
        };
        let p = pick(u, nf.as_ref()).map_err(|e| uplink_error(u, cfg, &e))?;
        let what = &p.what;
        let ifindex = sys::if_nametoindex(&p.device)
            .ok_or_else(|| uplink_error(u, cfg, &format!("{what} does not exist")))?;
        let (addr4, addr6) = match p.addrs {
            Some(a) => a,
            None => {
                let text = cmd::run(
                    &cmd::argv(&["ip", "-o", "addr", "show", "dev", &p.device]),
                    None,
                )
                .map_err(|e| uplink_error(u, cfg, &format!("{what} cannot be read: {e}")))?;
                let (addr4, addr6) = parse_ip_addr(&text);
                if addr4.is_none() && addr6.is_none() {
                    return Err(uplink_error(
                        u,
                        cfg,
                        &format!("{what} has no global IPv4 or IPv6 address"),
                    ));
                }
                (addr4, addr6)
            }
        };
        let mtu = match u.mtu {
            Some(m) => m,
            None => {
                let path = format!("/sys/class/net/{}/mtu", p.device);
                std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| parse_mtu(&t))
                    .ok_or_else(|| {
                        uplink_error(u, cfg, &format!("{what} has no readable {path}"))
                    })?
            }
        };
        out.push(ResolvedUplink {
            name: u.name.clone(),
            device: p.device,
            ifindex,
            addr4,
            addr6,
            gateway: p.gateway,
            gateway6: p.gateway6,
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

    fn uplink(device: Option<&str>, interface: Option<&str>) -> config::Uplink {
        config::Uplink {
            name: "lte".into(),
            device: device.map(Into::into),
            interface: interface.map(Into::into),
            gateway: None,
            gateway6: None,
            mtu: None,
            line: 9,
            health: Default::default(),
        }
    }

    fn status() -> netifd::IfaceStatus {
        netifd::IfaceStatus {
            device: Some("wwan0".into()),
            addr4: Some("10.145.33.7".parse().unwrap()),
            addr6: None,
            gateway: Some("10.145.33.1".parse().unwrap()),
            gateway6: Some("fe80::1".parse().unwrap()),
        }
    }

    #[test]
    fn picks_from_netifd_unless_configured() {
        let st = status();
        let p = pick(&uplink(None, Some("wwan")), Some(&st)).unwrap();
        assert_eq!(
            p,
            Picked {
                device: "wwan0".into(),
                what: "device 'wwan0' (from netifd interface 'wwan')".into(),
                addrs: Some((st.addr4, None)),
                gateway: st.gateway,
                gateway6: st.gateway6,
            }
        );
        let mut u = uplink(Some("usb0"), Some("wwan"));
        u.gateway = Some("192.0.2.1".parse().unwrap());
        let p = pick(&u, Some(&st)).unwrap();
        assert_eq!(
            (p.device.as_str(), p.what.as_str()),
            ("usb0", "device 'usb0'")
        );
        assert_eq!(p.gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(p.gateway6, st.gateway6);
        assert_eq!(p.addrs, Some((st.addr4, None)));
        // Without interface: the configuration alone; addresses are read from the device.
        let p = pick(&uplink(Some("up2"), None), None).unwrap();
        assert_eq!((p.addrs, p.gateway, p.gateway6), (None, None, None));
    }

    #[test]
    fn pick_errors() {
        let mut st = status();
        st.addr4 = None;
        assert_eq!(
            pick(&uplink(None, Some("wwan")), Some(&st)),
            Err("netifd interface 'wwan' has no IPv4 or IPv6 address".into())
        );
        st.device = None;
        assert_eq!(
            pick(&uplink(None, Some("wwan")), Some(&st)),
            Err("netifd interface 'wwan' has no device (set `option device`)".into())
        );
        st.device = Some("../x".into());
        assert!(pick(&uplink(None, Some("wwan")), Some(&st))
            .unwrap_err()
            .contains("is not a network device name"));
    }

    #[test]
    fn parses_mtu() {
        assert_eq!(parse_mtu("1500\n"), Some(1500));
        assert_eq!(parse_mtu("65536\n"), Some(65535));
        assert_eq!(parse_mtu("x"), None);
    }
}
