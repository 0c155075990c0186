//! Netfilter rules that bring the packets to the daemon and keep its own packets out of
//! conntrack and NAT. Two backends with the same effect:
//!
//! - iptables/ip6tables: own chains `MPCONV_PRE` and `MPCONV_OUT` in the `raw` table, jumped to
//!   from the first position of PREROUTING and OUTPUT;
//! - nftables: an own `table inet mpconv` with raw-priority prerouting and output chains (needs
//!   the kernel's nft `queue` expression, kmod-nft-queue on OpenWrt).
//!
//! In prerouting, TCP from a LAN device to a non-local address, and TCP to an uplink's address
//! and a port of `port_range`, go to the NFQUEUE (with bypass, so traffic flows when the daemon is
//! not running). In output, packets whose mark is the daemon's (`mark/0xffffff00`) are not
//! tracked. The rendering functions are pure and tested; [`install`] applies them with an undo
//! list.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cmd::{self, argv, Argv, Installed, Step, Undo};
use super::net::ResolvedUplink;
use crate::config::{Config, FirewallBackend};

pub const CHAIN_PRE: &str = "MPCONV_PRE";
pub const CHAIN_OUT: &str = "MPCONV_OUT";
pub const NFT_TABLE: &str = "mpconv";
/// The part of the mark that identifies the daemon's packets (uplinks use the low byte).
pub const MARK_MASK: u32 = 0xffff_ff00;

/// The backend actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
        }
    }
}

/// What the rules must match, independent of the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwSpec {
    pub queue: u16,
    pub mark: u32,
    pub lans: Vec<String>,
    /// (device, IPv4 address, IPv6 address) per uplink.
    pub uplinks: Vec<(String, Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    pub port_range: (u16, u16),
}

impl FwSpec {
    pub fn new(cfg: &Config, ups: &[ResolvedUplink]) -> FwSpec {
        FwSpec {
            queue: cfg.queue,
            mark: cfg.mark,
            lans: cfg.lan.clone(),
            uplinks: ups
                .iter()
                .map(|u| (u.device.clone(), u.addr4, u.addr6))
                .collect(),
            port_range: cfg.port_range,
        }
    }

    fn has_v4(&self) -> bool {
        self.uplinks.iter().any(|u| u.1.is_some())
    }

    fn has_v6(&self) -> bool {
        self.uplinks.iter().any(|u| u.2.is_some())
    }
}

fn ipt(bin: &str, rest: &[&str]) -> Argv {
    let mut a = argv(&[bin, "-w", "-t", "raw"]);
    a.extend(argv(rest));
    a
}

/// iptables/ip6tables steps (chains filled first, jumps inserted last), and the commands that
/// remove leftovers of an earlier run.
pub fn iptables_plan(spec: &FwSpec) -> (Vec<Step>, Vec<Argv>) {
    let mut steps = Vec::new();
    let mut stale = Vec::new();
    let q = spec.queue.to_string();
    let ports = format!("{}:{}", spec.port_range.0, spec.port_range.1);
    let mark = format!("{:#x}/{:#x}", spec.mark & MARK_MASK, MARK_MASK);
    for (bin, present) in [("iptables", spec.has_v4()), ("ip6tables", spec.has_v6())] {
        stale.push(ipt(bin, &["-D", "PREROUTING", "-j", CHAIN_PRE]));
        stale.push(ipt(bin, &["-D", "OUTPUT", "-j", CHAIN_OUT]));
        for chain in [CHAIN_PRE, CHAIN_OUT] {
            stale.push(ipt(bin, &["-F", chain]));
            stale.push(ipt(bin, &["-X", chain]));
        }
        if !present {
            continue;
        }
        let nfq = ["-j", "NFQUEUE", "--queue-num", &q, "--queue-bypass"];
        for chain in [CHAIN_PRE, CHAIN_OUT] {
            steps.push(Step::new(
                ipt(bin, &["-N", chain]),
                vec![ipt(bin, &["-F", chain]), ipt(bin, &["-X", chain])],
            ));
        }
        // Rules inside our chains go with the chain (flushed on undo).
        for lan in &spec.lans {
            let mut a = ipt(
                bin,
                &[
                    "-A",
                    CHAIN_PRE,
                    "-i",
                    lan,
                    "-p",
                    "tcp",
                    "-m",
                    "addrtype",
                    "!",
                    "--dst-type",
                    "LOCAL",
                ],
            );
            a.extend(argv(&nfq));
            steps.push(Step::new(a, vec![]));
        }
        for (dev, a4, a6) in &spec.uplinks {
            let addr = if bin == "iptables" {
                a4.map(|a| a.to_string())
            } else {
                a6.map(|a| a.to_string())
            };
            let Some(addr) = addr else { continue };
            let mut a = ipt(
                bin,
                &[
                    "-A", CHAIN_PRE, "-i", dev, "-p", "tcp", "-d", &addr, "--dport", &ports,
                ],
            );
            a.extend(argv(&nfq));
            steps.push(Step::new(a, vec![]));
        }
        steps.push(Step::new(
            ipt(
                bin,
                &[
                    "-A",
                    CHAIN_OUT,
                    "-m",
                    "mark",
                    "--mark",
                    &mark,
                    "-j",
                    "CT",
                    "--notrack",
                ],
            ),
            vec![],
        ));
        for (hook, chain) in [("PREROUTING", CHAIN_PRE), ("OUTPUT", CHAIN_OUT)] {
            steps.push(Step::new(
                ipt(bin, &["-I", hook, "1", "-j", chain]),
                vec![ipt(bin, &["-D", hook, "-j", chain])],
            ));
        }
    }
    (steps, stale)
}

/// The nftables ruleset (one transaction; it replaces an existing `table inet mpconv`).
pub fn nft_render(spec: &FwSpec) -> String {
    use std::fmt::Write;
    let q = spec.queue;
    let (lo, hi) = spec.port_range;
    let mut s = String::new();
    // Declaring then deleting the table makes the transaction replace any leftover.
    let _ = writeln!(s, "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}");
    let _ = writeln!(s, "table inet {NFT_TABLE} {{");
    let _ = writeln!(s, "\tchain prerouting {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook prerouting priority raw; policy accept;"
    );
    let family = match (spec.has_v4(), spec.has_v6()) {
        (true, false) => "meta nfproto ipv4 ",
        (false, true) => "meta nfproto ipv6 ",
        _ => "",
    };
    for lan in &spec.lans {
        let _ = writeln!(
            s,
            "\t\tiifname \"{lan}\" {family}meta l4proto tcp fib daddr type != local queue num {q} bypass"
        );
    }
    for (dev, a4, a6) in &spec.uplinks {
        if let Some(a) = a4 {
            let _ = writeln!(
                s,
                "\t\tiifname \"{dev}\" ip daddr {a} tcp dport {lo}-{hi} queue num {q} bypass"
            );
        }
        if let Some(a) = a6 {
            let _ = writeln!(
                s,
                "\t\tiifname \"{dev}\" ip6 daddr {a} tcp dport {lo}-{hi} queue num {q} bypass"
            );
        }
    }
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "\tchain output {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook output priority raw; policy accept;"
    );
    let _ = writeln!(
        s,
        "\t\tmeta mark & {MARK_MASK:#010x} == {:#010x} notrack",
        spec.mark & MARK_MASK
    );
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "}}");
    s
}

/// A table that only the kernel's nft `queue` expression can load (for `nft -c`).
pub fn nft_probe_text(queue: u16) -> String {
    format!(
        "table inet {NFT_TABLE}_probe {{\n\tchain c {{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tmeta l4proto tcp queue num {queue} bypass\n\t}}\n}}\n"
    )
}

/// nftables steps and leftovers to remove.
pub fn nft_plan(spec: &FwSpec) -> (Vec<Step>, Vec<Argv>) {
    let delete = argv(&["nft", "delete", "table", "inet", NFT_TABLE]);
    let step = Step {
        apply: argv(&["nft", "-f", "-"]),
        input: Some(nft_render(spec)),
        undo: vec![delete.clone()],
    };
    (vec![step], vec![delete])
}

/// Whether `nft` exists and the kernel accepts a table using the `queue` expression.
pub fn nft_queue_supported(queue: u16) -> bool {
    cmd::exists("nft")
        && cmd::run(
            &argv(&["nft", "-c", "-f", "-"]),
            Some(&nft_probe_text(queue)),
        )
        .is_ok()
}

/// The backend for `wanted`: Auto picks nftables only when the kernel has its queue expression.
pub fn choose(wanted: FirewallBackend, queue: u16) -> Backend {
    match wanted {
        FirewallBackend::Iptables => Backend::Iptables,
        FirewallBackend::Nftables => Backend::Nftables,
        FirewallBackend::Auto => {
            if nft_queue_supported(queue) {
                Backend::Nftables
            } else {
                Backend::Iptables
            }
        }
    }
}

/// Device names go into nft strings and iptables argv: keep them to what Linux tools print.
fn check_ifname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "device name '{name}' is not usable in firewall rules"
        ))
    }
}

/// Whether `bin` is iptables-nft and its nftables table `FAMILY raw` does not exist yet (so
/// that our rules would create it and leave it behind).
fn raw_table_created_by_us(bin: &str, family: &str) -> bool {
    let nft_variant = cmd::run(&argv(&[bin, "-V"]), None).is_ok_and(|v| v.contains("nf_tables"));
    nft_variant
        && cmd::exists("nft")
        && cmd::run(&argv(&["nft", "list", "table", family, "raw"]), None).is_err()
}

/// Install the rules with the chosen backend; the result removes them when dropped.
pub fn install(cfg: &Config, ups: &[ResolvedUplink]) -> Result<(Backend, Installed), String> {
    let spec = FwSpec::new(cfg, ups);
    for dev in spec.lans.iter().chain(spec.uplinks.iter().map(|u| &u.0)) {
        check_ifname(dev)?;
    }
    let backend = choose(cfg.firewall, cfg.queue);
    let (steps, stale) = match backend {
        Backend::Iptables => iptables_plan(&spec),
        Backend::Nftables => nft_plan(&spec),
    };
    cmd::remove_stale(&stale);
    let mut first = Vec::new();
    if backend == Backend::Iptables {
        for (bin, save, family) in [
            ("iptables", "iptables-save", "ip"),
            ("ip6tables", "ip6tables-save", "ip6"),
        ] {
            if raw_table_created_by_us(bin, family) {
                first.push(Undo::DropEmptyRawTable { save, family });
            }
        }
    }
    let done = Installed::apply("firewall", first, steps)?;
    Ok((backend, done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::routes::tests::{config, uplinks};

    fn spec() -> FwSpec {
        FwSpec::new(&config(), &uplinks())
    }

    #[test]
    fn iptables_rules() {
        let (steps, stale) = iptables_plan(&spec());
        let got: Vec<String> = steps.iter().map(|s| s.apply.join(" ")).collect();
        let want = [
            "iptables -w -t raw -N MPCONV_PRE",
            "iptables -w -t raw -N MPCONV_OUT",
            "iptables -w -t raw -A MPCONV_PRE -i br-lan -p tcp -m addrtype ! --dst-type LOCAL -j NFQUEUE --queue-num 3 --queue-bypass",
            "iptables -w -t raw -A MPCONV_PRE -i up1 -p tcp -d 100.64.1.2 --dport 61000:65535 -j NFQUEUE --queue-num 3 --queue-bypass",
            "iptables -w -t raw -A MPCONV_PRE -i up2 -p tcp -d 10.0.2.2 --dport 61000:65535 -j NFQUEUE --queue-num 3 --queue-bypass",
            "iptables -w -t raw -A MPCONV_OUT -m mark --mark 0x6d70000/0xffffff00 -j CT --notrack",
            "iptables -w -t raw -I PREROUTING 1 -j MPCONV_PRE",
            "iptables -w -t raw -I OUTPUT 1 -j MPCONV_OUT",
            "ip6tables -w -t raw -N MPCONV_PRE",
            "ip6tables -w -t raw -N MPCONV_OUT",
            "ip6tables -w -t raw -A MPCONV_PRE -i br-lan -p tcp -m addrtype ! --dst-type LOCAL -j NFQUEUE --queue-num 3 --queue-bypass",
            "ip6tables -w -t raw -A MPCONV_PRE -i up1 -p tcp -d 2001:db8::2 --dport 61000:65535 -j NFQUEUE --queue-num 3 --queue-bypass",
            "ip6tables -w -t raw -A MPCONV_OUT -m mark --mark 0x6d70000/0xffffff00 -j CT --notrack",
            "ip6tables -w -t raw -I PREROUTING 1 -j MPCONV_PRE",
            "ip6tables -w -t raw -I OUTPUT 1 -j MPCONV_OUT",
        ];
        assert_eq!(got, want);
        assert_eq!(
            steps[0].undo,
            vec![
                argv(&["iptables", "-w", "-t", "raw", "-F", "MPCONV_PRE"]),
                argv(&["iptables", "-w", "-t", "raw", "-X", "MPCONV_PRE"]),
            ]
        );
        assert_eq!(
            steps[6].undo,
            vec![argv(&[
                "iptables",
                "-w",
                "-t",
                "raw",
                "-D",
                "PREROUTING",
                "-j",
                "MPCONV_PRE"
            ])]
        );
        assert_eq!(stale.len(), 12);
    }

    #[test]
    fn iptables_v4_only_skips_ip6tables() {
        let mut s = spec();
        s.uplinks.iter_mut().for_each(|u| u.2 = None);
        let (steps, _) = iptables_plan(&s);
        assert!(steps.iter().all(|s| s.apply[0] == "iptables"));
    }

    #[test]
    fn nft_text() {
        let want = "\
table inet mpconv
delete table inet mpconv
table inet mpconv {
\tchain prerouting {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiifname \"br-lan\" meta l4proto tcp fib daddr type != local queue num 3 bypass
\t\tiifname \"up1\" ip daddr 100.64.1.2 tcp dport 61000-65535 queue num 3 bypass
\t\tiifname \"up1\" ip6 daddr 2001:db8::2 tcp dport 61000-65535 queue num 3 bypass
\t\tiifname \"up2\" ip daddr 10.0.2.2 tcp dport 61000-65535 queue num 3 bypass
\t}
\tchain output {
\t\ttype filter hook output priority raw; policy accept;
\t\tmeta mark & 0xffffff00 == 0x06d70000 notrack
\t}
}
";
        assert_eq!(nft_render(&spec()), want);
        let mut s = spec();
        s.uplinks.iter_mut().for_each(|u| u.2 = None);
        assert!(nft_render(&s).contains("iifname \"br-lan\" meta nfproto ipv4 meta l4proto tcp"));
    }

    /// `nft -c` of the rendered text. The `queue` expression may be missing from the kernel
    /// (as on the CI machines): then the same text without the queue statements must pass.
    #[test]
    fn nft_check_rendered() {
        if !cmd::exists("nft") || crate::io::sys::euid() != 0 {
            println!("skipped: nft -c needs the nft binary and root");
            return;
        }
        let text = nft_render(&spec());
        let text = if nft_queue_supported(3) {
            text
        } else {
            println!("kernel lacks the nft queue expression: checking the rest of the ruleset");
            text.replace("queue num 3 bypass", "accept")
        };
        if let Err(e) = cmd::run(&argv(&["nft", "-c", "-f", "-"]), Some(&text)) {
            panic!("nft -c rejected the ruleset: {e}\n{text}");
        }
    }

    #[test]
    fn ifname_check() {
        assert!(check_ifname("pppoe-wan").is_ok());
        assert!(check_ifname("eth0.2").is_ok());
        assert!(check_ifname("a\"b").is_err());
        assert!(check_ifname("").is_err());
    }
}
