//! Policy routing: packets the daemon sends out of uplink `i` carry the mark `mark + 1 + i`;
//! a rule sends that mark to table `table + i`, whose default route leaves through the uplink.
//!
//! [`plan`] is pure (argv vectors); [`install`] applies it with an undo list.

use std::net::IpAddr;

use super::cmd::{self, argv, Argv, Installed, Step};
use super::net::ResolvedUplink;
use crate::config::Config;

/// Priority of the rule of uplink 0; uplink `i` uses `RULE_PRIORITY_BASE + i`.
pub const RULE_PRIORITY_BASE: u32 = 9000;

/// The firewall mark of packets sent out of uplink `i`.
pub fn uplink_mark(cfg: &Config, i: usize) -> u32 {
    cfg.mark.wrapping_add(1 + i as u32)
}

/// The routing table of uplink `i`.
pub fn uplink_table(cfg: &Config, i: usize) -> u32 {
    cfg.table + i as u32
}

/// The default route of one family in one table.
fn route(family: &str, gw: Option<IpAddr>, dev: &str, table: u32) -> Step {
    let t = table.to_string();
    let mut a = argv(&["ip", family, "route", "replace", "default"]);
    if let Some(gw) = gw {
        a.extend(argv(&["via", &gw.to_string()]));
    }
    a.extend(argv(&["dev", dev, "table", &t]));
    Step::new(
        a,
        vec![argv(&[
            "ip", family, "route", "del", "default", "table", &t,
        ])],
    )
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

/// The steps that install policy routing for `ups`, and the commands that remove leftovers of a
/// crashed earlier run (rules with our priorities).
pub fn plan(cfg: &Config, ups: &[ResolvedUplink]) -> (Vec<Step>, Vec<Argv>) {
    let mut steps = Vec::new();
    let mut stale = Vec::new();
    for (i, u) in ups.iter().enumerate() {
        let mark = uplink_mark(cfg, i);
        let table = uplink_table(cfg, i);
        let prio = RULE_PRIORITY_BASE + i as u32;
        // The gateways as resolved (configured, else netifd's: see net::pick).
        let families = [
            ("-4", u.addr4.is_some(), u.gateway.map(IpAddr::V4)),
            ("-6", u.addr6.is_some(), u.gateway6.map(IpAddr::V6)),
        ];
        for (fam, present, gw) in families {
            stale.push(rule(fam, "del", mark, table, prio));
            if !present {
                continue;
            }
            steps.push(route(fam, gw, &u.device, table));
            steps.push(Step::new(
                rule(fam, "add", mark, table, prio),
                vec![rule(fam, "del", mark, table, prio)],
            ));
        }
    }
    (steps, stale)
}

/// Install policy routing; the result undoes it when dropped.
pub fn install(cfg: &Config, ups: &[ResolvedUplink]) -> Result<Installed, String> {
    let (steps, stale) = plan(cfg, ups);
    cmd::remove_stale(&stale);
    Installed::apply("routing", Vec::new(), steps)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{FirewallBackend, Mode, Uplink};

    pub(crate) fn config() -> Config {
        Config {
            path: "/etc/config/mpconv".into(),
            enabled: true,
            mode: Mode::Implicit,
            lan: vec!["br-lan".into()],
            queue: 3,
            socket: "/var/run/mpconv.sock".into(),
            max_connections: 4096,
            checksum: false,
            port_range: (61000, 65535),
            idle_timeout: 7440,
            firewall: FirewallBackend::Auto,
            mark: 0x6d70000,
            table: 6170,
            log_level: log::LevelFilter::Info,
            concentrator: None,
            secret: None,
            scheduler: crate::config::Scheduler::Single,
            exclude: Vec::new(),
            exclude_port: Vec::new(),
            uplinks: vec![
                Uplink {
                    name: "dsl".into(),
                    device: Some("up1".into()),
                    interface: None,
                    gateway: Some("100.64.1.1".parse().unwrap()),
                    gateway6: Some("fe80::1".parse().unwrap()),
                    mtu: None,
                    line: 12,
                    health: Default::default(),
                },
                Uplink {
                    name: "lte".into(),
                    device: Some("up2".into()),
                    interface: Some("wwan".into()),
                    gateway: None,
                    gateway6: None,
                    mtu: Some(1400),
                    line: 18,
                    health: Default::default(),
                },
            ],
        }
    }

    pub(crate) fn uplinks() -> Vec<ResolvedUplink> {
        vec![
            ResolvedUplink {
                name: "dsl".into(),
                device: "up1".into(),
                ifindex: 5,
                addr4: Some("100.64.1.2".parse().unwrap()),
                addr6: Some("2001:db8::2".parse().unwrap()),
                gateway: Some("100.64.1.1".parse().unwrap()),
                gateway6: Some("fe80::1".parse().unwrap()),
                mtu: 1500,
            },
            ResolvedUplink {
                name: "lte".into(),
                device: "up2".into(),
                ifindex: 6,
                addr4: Some("10.0.2.2".parse().unwrap()),
                addr6: None,
                gateway: None,
                gateway6: None,
                mtu: 1400,
            },
        ]
    }

    fn joined(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.apply.join(" ")).collect()
    }

    #[test]
    fn plans_routes_and_rules() {
        let (steps, stale) = plan(&config(), &uplinks());
        assert_eq!(
            joined(&steps),
            [
                "ip -4 route replace default via 100.64.1.1 dev up1 table 6170",
                "ip -4 rule add fwmark 0x6d70001 lookup 6170 priority 9000",
                "ip -6 route replace default via fe80::1 dev up1 table 6170",
                "ip -6 rule add fwmark 0x6d70001 lookup 6170 priority 9000",
                "ip -4 route replace default dev up2 table 6171",
                "ip -4 rule add fwmark 0x6d70002 lookup 6171 priority 9001",
            ]
        );
        assert_eq!(
            steps[0].undo,
            vec![argv(&[
                "ip", "-4", "route", "del", "default", "table", "6170"
            ])]
        );
        assert_eq!(
            steps[3].undo[0].join(" "),
            "ip -6 rule del fwmark 0x6d70001 lookup 6170 priority 9000"
        );
        assert_eq!(stale.len(), 4);
    }
}
