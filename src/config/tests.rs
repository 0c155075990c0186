use super::*;

const FILE: &str = "/etc/config/mpconv";

fn p(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new(FILE), text)
}

fn ok(text: &str) -> Config {
    match p(text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}\n--- text:\n{text}"),
    }
}

fn fails(text: &str) -> String {
    match p(text) {
        Ok(c) => panic!("unexpectedly valid: {c:?}\n--- text:\n{text}"),
        Err(e) => e.0,
    }
}

/// Minimal valid file; line 3 is `list lan`, line 5 the uplink header.
const BASE: &str = "config mpconv 'main'\n\
                    \toption enabled '1'\n\
                    \tlist lan 'br-lan'\n\
                    \n\
                    config uplink 'dsl'\n\
                    \toption device 'eth1'\n";

/// BASE with one more line in the mpconv section (at line 4).
fn with_main(line: &str) -> String {
    format!(
        "config mpconv 'main'\n\toption enabled '1'\n\tlist lan 'br-lan'\n\t{line}\n\n\
         config uplink 'dsl'\n\toption device 'eth1'\n"
    )
}

/// BASE with one more line in the uplink section (at line 7).
fn with_uplink(line: &str) -> String {
    format!("{BASE}\t{line}\n")
}

fn main_err(line: &str, key: &str) -> String {
    let e = fails(&with_main(line));
    let prefix = format!("{FILE}:4: section 'main' (mpconv), option '{key}': ");
    assert!(e.starts_with(&prefix), "{e:?} should start with {prefix:?}");
    e
}

fn uplink_err(line: &str, key: &str) -> String {
    let e = fails(&with_uplink(line));
    let prefix = format!("{FILE}:7: section 'dsl' (uplink), option '{key}': ");
    assert!(e.starts_with(&prefix), "{e:?} should start with {prefix:?}");
    e
}

#[test]
fn defaults() {
    let c = ok(BASE);
    assert_eq!(c.path, PathBuf::from(FILE));
    assert!(c.enabled);
    assert_eq!(c.mode, Mode::Implicit);
    assert_eq!(c.lan, vec!["br-lan".to_string()]);
    assert_eq!(c.queue, 0);
    assert_eq!(c.socket, PathBuf::from("/var/run/mpconv.sock"));
    assert_eq!(c.max_connections, 4096);
    assert!(!c.checksum);
    assert_eq!(c.port_range, (61000, 65535));
    assert_eq!(c.idle_timeout, 7440);
    assert_eq!(c.firewall, FirewallBackend::Auto);
    assert_eq!(c.mark, 0x6d7_0000);
    assert_eq!(c.table, 6170);
    assert_eq!(c.log_level, log::LevelFilter::Info);
    assert_eq!(
        c.uplinks,
        vec![Uplink {
            name: "dsl".into(),
            device: Some("eth1".into()),
            interface: None,
            gateway: None,
            gateway6: None,
            mtu: None,
            line: 5,
            health: Default::default(),
        }]
    );
    // enabled defaults to 1 when absent.
    assert!(ok("config mpconv\nlist lan br-lan\nconfig uplink a\noption device eth1\n").enabled);
}

#[test]
fn every_key() {
    let c = ok("package mpconv\n\
                config mpconv 'main'\n\
                \toption enabled 'yes'\n\
                \toption mode 'explicit'\n\
                \tlist lan 'br-lan'\n\
                \tlist lan 'br-guest'\n\
                \toption queue '65535'\n\
                \toption socket '/tmp/m.sock'\n\
                \toption max_connections '65536'\n\
                \toption checksum 'on'\n\
                \toption port_range '1024-1087'\n\
                \toption idle_timeout '86400'\n\
                \toption firewall 'nftables'\n\
                \toption mark '0x100'\n\
                \toption table '4294967000'\n\
                \toption log_level 'trace'\n\
                \toption concentrator '192.0.2.1'\n\
                \toption secret 'sixteen-chars-ok'\n\
                \toption scheduler 'single'\n\
                \tlist exclude '198.51.100.0/24'\n\
                \tlist exclude '2001:db8::/32'\n\
                \tlist exclude_port '25'\n\
                config uplink 'dsl'\n\
                \toption device 'pppoe-wan'\n\
                \toption gateway '192.0.2.254'\n\
                \toption gateway6 'fe80::1'\n\
                \toption mtu '1492'\n\
                \toption interface 'wan'\n\
                \toption backup '0'\n\
                \toption weight '3'\n\
                \toption probe 'tcp'\n\
                config uplink 'lte'\n\
                \toption device 'wwan0'\n\
                \toption mtu '576'\n\
                config uplink 'spare'\n\
                \toption device 'eth9'\n\
                \toption disabled '1'\n");
    assert!(c.enabled);
    assert_eq!(c.mode, Mode::Explicit);
    assert_eq!(c.lan, vec!["br-lan".to_string(), "br-guest".to_string()]);
    assert_eq!(c.queue, 65535);
    assert_eq!(c.socket, PathBuf::from("/tmp/m.sock"));
    assert_eq!(c.max_connections, 65536);
    assert!(c.checksum);
    assert_eq!(c.port_range, (1024, 1087));
    assert_eq!(c.idle_timeout, 86400);
    assert_eq!(c.firewall, FirewallBackend::Nftables);
    assert_eq!(c.mark, 0x100);
    assert_eq!(c.table, 4_294_967_000);
    assert_eq!(c.log_level, log::LevelFilter::Trace);
    assert_eq!(c.concentrator, Some("192.0.2.1:5124".parse().unwrap()));
    assert_eq!(c.secret.as_deref(), Some("sixteen-chars-ok"));
    assert_eq!(c.scheduler, Scheduler::Single);
    assert_eq!(c.exclude.len(), 2);
    assert_eq!(c.exclude_port, vec![25]);
    assert_eq!(c.uplinks.len(), 2);
    let dsl = &c.uplinks[0];
    assert_eq!(dsl.name, "dsl");
    assert_eq!(dsl.device.as_deref(), Some("pppoe-wan"));
    assert_eq!(dsl.interface.as_deref(), Some("wan"));
    assert_eq!(dsl.gateway, Some("192.0.2.254".parse().unwrap()));
    assert_eq!(dsl.gateway6, Some("fe80::1".parse().unwrap()));
    assert_eq!(dsl.mtu, Some(1492));
    assert_eq!(dsl.line, 23);
    assert_eq!(c.uplinks[1].name, "lte");
    assert_eq!(c.uplinks[1].mtu, Some(576));
    assert_eq!(c.uplinks[1].line, 32);
}

#[test]
fn value_variants() {
    let c = |l: &str| ok(&with_main(l));
    assert_eq!(c("option mode implicit").mode, Mode::Implicit);
    assert_eq!(
        c("option firewall iptables").firewall,
        FirewallBackend::Iptables
    );
    assert_eq!(c("option firewall auto").firewall, FirewallBackend::Auto);
    assert_eq!(c("option mark 114753536").mark, 0x6d7_0000);
    assert_eq!(c("option mark 0XFFFFFF00").mark, 0xffff_ff00);
    assert_eq!(c("option table 1").table, 1);
    assert_eq!(c("option table 256").table, 256);
    assert_eq!(c("option table 252").table, 252); // one uplink: uses 252 only
    assert_eq!(c("option queue 0").queue, 0);
    assert_eq!(c("option max_connections 1").max_connections, 1);
    assert_eq!(c("option idle_timeout 10").idle_timeout, 10);
    assert_eq!(c("option port_range 1024-65535").port_range, (1024, 65535));
    assert_eq!(
        c("option socket ''").socket,
        PathBuf::from("/var/run/mpconv.sock")
    );
    for (v, want) in [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("true", true),
        ("enabled", true),
        ("0", false),
        ("no", false),
        ("off", false),
        ("false", false),
        ("disabled", false),
    ] {
        assert_eq!(c(&format!("option checksum '{v}'")).checksum, want, "{v}");
    }
    for (v, want) in [
        ("error", log::LevelFilter::Error),
        ("warn", log::LevelFilter::Warn),
        ("info", log::LevelFilter::Info),
        ("debug", log::LevelFilter::Debug),
        ("trace", log::LevelFilter::Trace),
    ] {
        assert_eq!(c(&format!("option log_level {v}")).log_level, want);
    }
    // lan as a space-separated option, and list after option (libuci turns it into a list).
    assert_eq!(c("list lan 'eth3'").lan, vec!["br-lan", "eth3"]);
    let t = "config mpconv\n option lan 'br-lan  eth3'\nconfig uplink u\n option device eth1\n";
    assert_eq!(ok(t).lan, vec!["br-lan", "eth3"]);
    // Later `option` replaces an earlier one, as libuci does.
    assert_eq!(
        ok(&format!("{BASE}\toption device 'eth2'\n")).uplinks[0]
            .device
            .as_deref(),
        Some("eth2")
    );
}

#[test]
fn quoting_in_values() {
    let dev = |v: &str| {
        ok(&with_uplink(&format!("option device {v}"))).uplinks[0]
            .device
            .clone()
            .unwrap()
    };
    assert_eq!(dev("eth2"), "eth2");
    assert_eq!(dev("\"eth2\""), "eth2");
    assert_eq!(dev("'et''h2'"), "eth2");
    assert_eq!(dev(r"'eth'\''2'"), "eth'2");
    assert_eq!(dev(r#""eth\"2""#), "eth\"2");
    assert_eq!(dev(r"eth\2"), "eth2");
    assert_eq!(dev("eth2 # the modem"), "eth2");
    assert_eq!(dev("'eth2'# glued comment"), "eth2");
    assert_eq!(dev("et\\\nh2"), "eth2");
}

#[test]
fn comments_anonymous_and_layout() {
    let c = ok("# comment\n\
                \n\
                config mpconv # anonymous\n\
                \t# list lan 'ignored'\n\
                \tlist lan br-lan; option queue 7 # two commands\n\
                c uplink 'a'\n\
                \to device eth1\n\
                # config uplink 'b'\n");
    assert_eq!(c.queue, 7);
    assert_eq!(c.lan, vec!["br-lan"]);
    assert_eq!(c.uplinks.len(), 1);
    assert_eq!(c.uplinks[0].line, 6);
    // Anonymous mpconv sections are named @mpconv[0] in messages.
    let e = fails("config mpconv\n\toption queue x\n");
    assert_eq!(
        e,
        format!("{FILE}:2: section '@mpconv[0]' (mpconv), option 'queue': 'x' is not a number in 0..=65535")
    );
}

#[test]
fn disabled_file_needs_no_uplinks() {
    let c = ok("config mpconv 'main'\n\toption enabled '0'\n");
    assert!(!c.enabled);
    assert!(c.lan.is_empty());
    assert!(c.uplinks.is_empty());
    // ...but what is there is still checked.
    let e = fails("config mpconv 'main'\n\toption enabled '0'\n\toption queue '-1'\n");
    assert!(e.starts_with(&format!(
        "{FILE}:3: section 'main' (mpconv), option 'queue'"
    )));
    // A disabled uplink needs no device; it is validated, then left out.
    let c = ok(&format!(
        "{BASE}config uplink 'x'\n\toption disabled 1\n\toption mtu 1400\n"
    ));
    assert_eq!(c.uplinks.len(), 1);
    let e = fails(&format!(
        "{BASE}config uplink 'x'\n\toption disabled 1\n\toption mtu 1\n"
    ));
    assert!(
        e.starts_with(&format!("{FILE}:9: section 'x' (uplink), option 'mtu'")),
        "{e}"
    );
}

#[test]
fn shipped_file() {
    const SHIPPED: &str = include_str!("../../openwrt/mpconv/files/mpconv.config");
    let c = ok(SHIPPED);
    assert!(!c.enabled);
    assert!(c.uplinks.is_empty());
    assert_eq!(c.lan, vec!["br-lan"]);
    assert_eq!(
        c,
        Config {
            path: c.path.clone(),
            enabled: false,
            ..ok(BASE)
        }
        .with_no_uplinks()
    );

    // Uncommenting the examples and enabling it gives a working file; so does uncommenting
    // every option in the mpconv section (they are the defaults).
    let mut text = String::new();
    for l in SHIPPED.lines() {
        let l = match l.strip_prefix('#') {
            Some(r) if r.starts_with("config") || r.starts_with('\t') => r.to_string(),
            _ => l
                .strip_prefix("\t#option")
                .map_or(l.to_string(), |r| format!("\toption{r}")),
        };
        // The explicit-mode options are documented too: uncommented, they need that mode.
        text.push_str(
            &l.replace("option enabled '0'", "option enabled '1'")
                .replace("option mode 'implicit'", "option mode 'explicit'"),
        );
        text.push('\n');
    }
    let c = ok(&text);
    assert!(c.enabled);
    assert_eq!(
        c.uplinks
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        vec!["wan", "wwan0"]
    );
    assert_eq!(c.uplinks[0].gateway6, None);
    assert_eq!(c.uplinks[1].device.as_deref(), Some("wwan0"));
    let defaults = ok(BASE);
    assert_eq!(c.port_range, defaults.port_range);
    assert_eq!(c.mark, defaults.mark);
    assert_eq!(c.table, defaults.table);
    assert_eq!(c.socket, defaults.socket);
}

impl Config {
    fn with_no_uplinks(mut self) -> Self {
        self.uplinks.clear();
        self
    }
}

#[test]
fn bad_values_name_file_line_section_key() {
    let e = main_err("option queue '70000'", "queue");
    assert_eq!(
        e,
        format!("{FILE}:4: section 'main' (mpconv), option 'queue': '70000' is not a number in 0..=65535")
    );
    for (line, key, text) in [
        ("option enabled maybe", "enabled", "is not a boolean"),
        ("option mode 'onpath'", "mode", "is not a mode"),
        ("option queue '+5'", "queue", "is not a number"),
        ("option queue ' 5'", "queue", "is not a number"),
        ("option socket 'relative.sock'", "socket", "absolute"),
        ("option max_connections 0", "max_connections", "1..=65536"),
        (
            "option max_connections 65537",
            "max_connections",
            "1..=65536",
        ),
        (
            "option max_connections 99999999999999999999999",
            "max_connections",
            "number",
        ),
        ("option checksum 2", "checksum", "boolean"),
        ("option port_range '1023-2000'", "port_range", "1024 <= LO"),
        ("option port_range '2000-1999'", "port_range", "LO <= HI"),
        (
            "option port_range '2000-2062'",
            "port_range",
            "63 ports; at least 64",
        ),
        ("option port_range '2000'", "port_range", "'LO-HI'"),
        (
            "option port_range '2000-70000'",
            "port_range",
            "HI <= 65535",
        ),
        ("option idle_timeout 9", "idle_timeout", "10..=86400"),
        ("option idle_timeout 86401", "idle_timeout", "10..=86400"),
        (
            "option firewall nft",
            "firewall",
            "auto, iptables or nftables",
        ),
        ("option mark 0", "mark", "nonzero"),
        ("option mark 0x6d70001", "mark", "low 8 bits zero"),
        ("option mark 0x100000000", "mark", "32-bit"),
        ("option mark 0x", "mark", "is not a mark"),
        ("option mark -256", "mark", "is not a mark"),
        ("option table 0", "table", "1..=4294967000"),
        ("option table 4294967001", "table", "1..=4294967000"),
        (
            "option table 253",
            "table",
            "(the kernel's 'default' table)",
        ),
        ("option table 254", "table", "'main'"),
        ("option table 255", "table", "'local'"),
        (
            "option log_level verbose",
            "log_level",
            "is not a log level",
        ),
        ("list queue 1", "queue", "use `option`, not `list`"),
        ("list lan 'br-lan'", "lan", "'br-lan' is listed twice"),
        (
            "list lan 'a/b'",
            "lan",
            "'a/b' is not a network device name",
        ),
        ("list lan ''", "lan", "'' is not a network device name"),
        (
            "list lan 'averyveryverylongname'",
            "lan",
            "not a network device name",
        ),
        (
            "option gatway x",
            "gatway",
            "unknown option (known: enabled, mode, lan,",
        ),
    ] {
        let e = main_err(line, key);
        assert!(e.contains(text), "{e:?} should contain {text:?}");
    }
    for (line, key, text) in [
        (
            "option gateway '10.0.0.300'",
            "gateway",
            "'10.0.0.300' is not an IPv4 address",
        ),
        (
            "option gateway 'fe80::1'",
            "gateway",
            "is not an IPv4 address",
        ),
        (
            "option gateway '0.0.0.0'",
            "gateway",
            "not a usable gateway",
        ),
        (
            "option gateway '224.0.0.1'",
            "gateway",
            "not a usable gateway",
        ),
        (
            "option gateway6 '192.0.2.1'",
            "gateway6",
            "is not an IPv6 address",
        ),
        ("option gateway6 'fe80::1%eth1'", "gateway6", "%zone"),
        (
            "option gateway6 'ff02::1'",
            "gateway6",
            "not a usable gateway",
        ),
        ("option mtu 575", "mtu", "576..=9000"),
        ("option mtu 9001", "mtu", "576..=9000"),
        ("option disabled 2", "disabled", "boolean"),
        (
            "option device 'eth 1'",
            "device",
            "not a network device name",
        ),
        ("list device 'eth2'", "device", "use `option`"),
        (
            "option secret x",
            "secret",
            "unknown option (known: device, interface, gateway, gateway6, mtu, disabled, backup, probe, probe_target, probe_interval, probe_timeout, probe_down, probe_up)",
        ),
        ("option gatway 1.2.3.4", "gatway", "did you mean 'gateway'?"),
        (
            "option interface 'wan-2'",
            "interface",
            "'wan-2' is not a netifd interface name (1 to 15 letters, digits or _",
        ),
        ("list interface 'wan'", "interface", "use `option`"),
        (
            "option interfaces 'wan'",
            "interfaces",
            "did you mean 'interface'?",
        ),
    ] {
        let e = uplink_err(line, key);
        assert!(e.contains(text), "{e:?} should contain {text:?}");
    }
    let e = uplink_err("option gatway '192.168.1.1'", "gatway");
    assert_eq!(
        e,
        format!(
            "{FILE}:7: section 'dsl' (uplink), option 'gatway': unknown option (known: device, \
             interface, gateway, gateway6, mtu, disabled, backup, probe, probe_target, \
             probe_interval, probe_timeout, probe_down, probe_up; did you mean 'gateway'?)"
        )
    );
}

#[test]
fn table_range_counts_uplinks() {
    let two = |table: &str| {
        p(&format!(
            "config mpconv\n list lan br-lan\n option table {table}\n\
             config uplink a\n option device eth1\nconfig uplink b\n option device eth2\n"
        ))
    };
    assert!(two("251").is_ok());
    let e = two("252").unwrap_err().0;
    assert_eq!(
        e,
        format!(
            "{FILE}:3: section '@mpconv[0]' (mpconv), option 'table': '252' with 2 uplink(s) uses \
             tables 252..=253, which includes 253 (the kernel's 'default' table); pick another number"
        )
    );
    assert!(two("256").is_ok());
}

#[test]
fn structural_errors() {
    let e = fails("");
    assert_eq!(
        e,
        format!("{FILE}: no 'config mpconv' section (expected exactly one, e.g. `config mpconv 'main'`)")
    );
    let e = fails(&format!("{BASE}config mpconv 'other'\n"));
    assert!(
        e.starts_with(&format!("{FILE}:7: section 'other' (mpconv): second 'config mpconv' section (the first is at line 1)")),
        "{e}"
    );
    let e = fails(&format!("{BASE}config upLink 'x'\n"));
    assert_eq!(
        e,
        format!(
            "{FILE}:7: section 'x' (upLink): unknown section type 'upLink' (known: mpconv, uplink)"
        )
    );
    let e = fails(&format!(
        "{BASE}config uplink 'dsl'\n\toption device 'eth2'\n"
    ));
    assert!(
        e.starts_with(&format!("{FILE}:7: section 'dsl' (uplink): the name 'dsl' is already used by the section at line 5")),
        "{e}"
    );
    let e = fails(&format!(
        "{BASE}config uplink 'main'\n\toption device 'eth2'\n"
    ));
    assert!(e.contains("line 1"), "{e}");
    let e = fails(&format!(
        "{BASE}config uplink 'lte'\n\toption device 'eth1'\n"
    ));
    assert_eq!(
        e,
        format!("{FILE}:8: section 'lte' (uplink), option 'device': 'eth1' is already used by uplink 'dsl' (line 5)")
    );
    // A disabled uplink does not claim its device.
    ok(&format!(
        "{BASE}config uplink 'lte'\n\toption device 'eth1'\n\toption disabled 1\n"
    ));
    let e = fails(&format!(
        "{BASE}config uplink 'lan'\n\toption device 'br-lan'\n"
    ));
    assert!(
        e.contains("option 'device': 'br-lan' is also listed in 'lan'"),
        "{e}"
    );
    let e = fails(&format!("{BASE}config uplink\n\toption device 'eth2'\n"));
    assert_eq!(
        e,
        format!("{FILE}:7: section '@uplink[1]' (uplink): uplink sections must be named (`config uplink 'NAME'`)")
    );
    let e = fails(&format!("{BASE}config uplink 'lte'\n\toption mtu 1500\n"));
    assert!(
        e.starts_with(&format!(
            "{FILE}:7: section 'lte' (uplink), option 'device': missing (required"
        )),
        "{e}"
    );
    let e = fails("config mpconv 'main'\n\tlist lan br-lan\n");
    assert!(
        e.starts_with(&format!(
            "{FILE}:1: section 'main' (mpconv): no enabled 'config uplink' section"
        )),
        "{e}"
    );
    let e = fails("config mpconv 'main'\nconfig uplink a\n\toption device eth1\n");
    assert!(
        e.starts_with(&format!(
            "{FILE}:1: section 'main' (mpconv), option 'lan': missing"
        )),
        "{e}"
    );
    let e = fails(&format!("{BASE}\toption disabled 1\n"));
    assert!(e.contains("no enabled 'config uplink'"), "{e}");

    let mut eight = String::from("config mpconv\n list lan br-lan\n");
    for i in 0..8 {
        eight.push_str(&format!("config uplink u{i}\n option device eth{i}\n"));
    }
    assert_eq!(ok(&eight).uplinks.len(), 8);
    let nine = format!("{eight}config uplink u8\n option device eth8\n");
    assert_eq!(
        fails(&nine),
        format!("{FILE}:19: section 'u8' (uplink): too many uplinks (at most 8 may be enabled)")
    );
    assert!(ok(&format!("{nine} option disabled 1\n")).uplinks.len() == 8);

    let e = fails(&format!("package network\n{BASE}"));
    assert_eq!(
        e,
        format!("{FILE}:1: package 'network': this file configures package 'mpconv'")
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    for (text, line, what) in [
        (
            "option lan br-lan\n",
            1,
            "'option' before the first section",
        ),
        (
            "config mpconv 'main'\n\tlist lan 'br-lan\n",
            2,
            "unterminated ' quote",
        ),
        (
            "config mpconv\n\n\toption queue \"1\n",
            3,
            "unterminated \" quote",
        ),
        (
            "config mpconv 'my-main'\n",
            1,
            "invalid section name 'my-main'",
        ),
        (
            "config mpconv\n\toption queue 1 2\n",
            2,
            "too many arguments at '2'",
        ),
        (
            "config mpconv\n\toption lan br-lan eth3\n",
            2,
            "quote values that contain spaces",
        ),
        (
            "config mpconv\n\toptions queue 1\n",
            2,
            "invalid command 'options'",
        ),
        (
            "config mpconv\n\toption 'qu eue' 1\n",
            2,
            "invalid option name",
        ),
        ("config\n", 1, "section type missing"),
    ] {
        let e = fails(text);
        let prefix = format!("{FILE}:{line}: ");
        assert!(e.starts_with(&prefix), "{e:?} should start with {prefix:?}");
        assert!(e.contains(what), "{e:?} should contain {what:?}");
    }
}

#[test]
fn load_reads_files() {
    let dir = std::env::temp_dir().join(format!("mpconv-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mpconv");
    std::fs::write(&path, BASE).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.path, path);
    std::fs::remove_file(&path).unwrap();
    let e = load(&path).unwrap_err().0;
    assert!(
        e.starts_with(&format!("{}: cannot read:", path.display())),
        "{e}"
    );
    let _ = std::fs::remove_dir(&dir);
}

/// Mutated versions of a valid file must give a result or an error naming the file, never a
/// panic.
#[test]
fn fuzz_never_panics() {
    const SEED: &str = include_str!("../../openwrt/mpconv/files/mpconv.config");
    let seeds: Vec<Vec<char>> = [
        SEED.to_string(),
        format!(
            "{BASE}\toption gateway '192.0.2.1'\n\toption gateway6 \"fe80::1\"\n\
             config uplink 'b'\n\toption device 'e'\\''x'\n\toption mtu 1400 # c\n\
             config mpconv\n\tlist lan a; list lan b\n\toption port_range 61000-65535\n\
             \toption mark 0x100\n\toption table 252\n"
        ),
    ]
    .iter()
    .map(|s| s.chars().collect())
    .collect();
    const ALPHABET: &[char] = &[
        '\'', '"', '\\', '#', ';', '\n', '\r', '\t', ' ', '-', '0', '1', '9', 'x', 'a', 'é', '\0',
        ':', '/', '%', '.',
    ];
    const WORDS: &[&str] = &[
        "config ", "option ", "list ", "package ", "uplink", "mpconv", "'\\''", "device",
        "enabled", "lan", "table", "mark", "disabled", "0x", "65536", "253",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0usize;
    for round in 0..20_000usize {
        let mut text = seeds[round % seeds.len()].clone();
        let edits = 1 + next() % 6;
        for _ in 0..edits {
            let len = text.len();
            let at = if len == 0 { 0 } else { (next() as usize) % len };
            match next() % 6 {
                0 if len > 0 => {
                    text.remove(at);
                }
                1 => text.insert(at, ALPHABET[(next() as usize) % ALPHABET.len()]),
                2 => {
                    let w = WORDS[(next() as usize) % WORDS.len()];
                    for (i, c) in w.chars().enumerate() {
                        text.insert(at + i, c);
                    }
                }
                3 if len > 0 => {
                    let end = (at + 1 + (next() as usize) % 40).min(len);
                    let span: Vec<char> = text[at..end].to_vec();
                    let to = (next() as usize) % (len + 1);
                    for (i, c) in span.into_iter().enumerate() {
                        text.insert(to + i, c);
                    }
                }
                4 if len > 0 => {
                    let end = (at + 1 + (next() as usize) % 20).min(len);
                    text.drain(at..end);
                }
                _ if len > 0 => text[at] = ALPHABET[(next() as usize) % ALPHABET.len()],
                _ => {}
            }
        }
        let text: String = text.into_iter().collect();
        match p(&text) {
            Ok(_) => parsed += 1,
            Err(e) => assert!(e.0.starts_with(&format!("{FILE}:")), "{e}"),
        }
    }
    // The mutations are not all fatal: some still parse.
    assert!(parsed > 100, "only {parsed} mutated files parsed");
}

#[test]
fn explicit_mode_keys() {
    let c = ok(&with_main(
        "option mode explicit\n\toption concentrator '[2001:db8::10]:6000'",
    ));
    assert_eq!(c.concentrator, Some("[2001:db8::10]:6000".parse().unwrap()));
    assert_eq!(
        c.scheduler,
        Scheduler::Weighted,
        "explicit mode defaults to weighted"
    );
    let e = fails(&with_main("option mode explicit"));
    assert!(
        e.contains("option 'concentrator': is required in explicit mode"),
        "{e}"
    );
    let e = fails(&with_main(
        "option mode explicit\n\toption concentrator 'vps.example'",
    ));
    assert!(
        e.contains("option 'concentrator': 'vps.example' is not ADDR[:PORT]"),
        "{e}"
    );
    let e = fails(&with_main(
        "option mode explicit\n\toption concentrator '192.0.2.1:5124'\n\toption secret 'short'",
    ));
    assert!(e.contains("option 'secret': 'short' is too short"), "{e}");
    let e = fails(&with_main("option scheduler weighted"));
    assert!(
        e.contains("option 'scheduler': 'weighted' needs explicit mode"),
        "{e}"
    );
    let e = fails(&with_main("list exclude_port '0'"));
    assert!(
        e.contains("option 'exclude_port': '0' is not a number in 1..=65535"),
        "{e}"
    );
    let e = fails(&with_main("list exclude '10.0.0.1/8'"));
    assert!(
        e.contains("option 'exclude': '10.0.0.1/8' has host bits set"),
        "{e}"
    );
}

#[test]
fn uplink_interface() {
    // `interface` alone: device, addresses and gateways come from netifd at start.
    let text = "config mpconv 'main'\n\tlist lan 'br-lan'\n\n\
                config uplink 'dsl'\n\toption interface 'wan'\n\n\
                config uplink 'lte'\n\toption interface 'wwan_4'\n\toption device 'wwan0'\n\
                \toption gateway '10.0.0.1'\n";
    let c = ok(text);
    assert_eq!(
        c.uplinks[0],
        Uplink {
            name: "dsl".into(),
            device: None,
            interface: Some("wan".into()),
            gateway: None,
            gateway6: None,
            mtu: None,
            line: 4,
            health: Default::default(),
        }
    );
    assert_eq!(c.uplinks[1].interface.as_deref(), Some("wwan_4"));
    assert_eq!(c.uplinks[1].device.as_deref(), Some("wwan0"));
    assert_eq!(c.uplinks[1].gateway, Some("10.0.0.1".parse().unwrap()));
    assert!(!RESERVED.contains(&("uplink", "interface")));

    for v in ["wan", "WAN6", "wwan_4", "a", "_", "abcdefghijklmno"] {
        let c = ok(&with_uplink(&format!("option interface '{v}'")));
        assert_eq!(c.uplinks[0].interface.as_deref(), Some(v));
        assert_eq!(c.uplinks[0].device.as_deref(), Some("eth1"));
    }
    // (An empty value is no option at all, as in libuci.)
    for v in [
        "abcdefghijklmnop",
        "wan.2",
        "wan 2",
        "w/an",
        "wän",
        "wan\\x",
    ] {
        let e = uplink_err(&format!("option interface '{v}'"), "interface");
        assert!(e.contains("is not a netifd interface name"), "{v:?}: {e}");
    }
    assert_eq!(
        uplink_err("option interface 'wan-2'", "interface"),
        format!(
            "{FILE}:7: section 'dsl' (uplink), option 'interface': 'wan-2' is not a netifd \
             interface name (1 to 15 letters, digits or _, as in /etc/config/network, e.g. 'wan')"
        )
    );

    // Two uplinks cannot follow the same interface.
    let e = fails(&format!(
        "{BASE}\toption interface 'wan'\nconfig uplink 'lte'\n\toption interface 'wan'\n"
    ));
    assert_eq!(
        e,
        format!("{FILE}:9: section 'lte' (uplink), option 'interface': 'wan' is already used by uplink 'dsl' (line 5)")
    );
    // Uplinks with only an interface do not clash on their (unknown) devices.
    let two = "config mpconv\n list lan br-lan\nconfig uplink a\n option interface wan\n\
               config uplink b\n option interface wwan\n";
    assert_eq!(ok(two).uplinks.len(), 2);
    // Neither device nor interface.
    let e = fails(&format!(
        "{BASE}config uplink 'lte'\n\toption gateway '10.0.0.1'\n"
    ));
    assert_eq!(
        e,
        format!(
            "{FILE}:7: section 'lte' (uplink), option 'device': missing (required: the Linux \
             network device, e.g. `option device 'eth1'`, or the netifd interface, e.g. `option \
             interface 'wan'`)"
        )
    );
    // A disabled placeholder needs neither, but a bad interface name is still an error.
    ok(&format!(
        "{BASE}config uplink 'spare'\n\toption disabled '1'\n"
    ));
    let e = fails(&format!(
        "{BASE}config uplink 'spare'\n\toption interface 'a.b'\n\toption disabled '1'\n"
    ));
    assert!(e.contains("option 'interface': 'a.b' is not"), "{e}");
    // A disabled uplink does not claim its interface.
    ok(&format!(
        "{BASE}\toption interface 'wan'\nconfig uplink 'x'\n\toption interface 'wan'\n\toption disabled 1\n"
    ));
}

fn full(text: &str) -> Config {
    match parse(Path::new(FILE), text) {
        Ok(l) => l,
        Err(e) => panic!("unexpected error: {e}\n--- text:\n{text}"),
    }
}

fn health_of(line: &str) -> UplinkHealth {
    let l = full(&with_uplink(line));
    assert_eq!(l.uplinks.len(), 1);
    l.uplinks[0].health.clone()
}

#[test]
fn health_defaults() {
    let l = full(BASE);
    let h = &l.uplinks[0].health;
    assert_eq!(*h, UplinkHealth::default());
    assert!(!h.backup);
    assert_eq!(h.probe, ProbeKind::Icmp);
    assert!(h.probe_targets.is_empty());
    assert!(!h.probing(), "no targets: link events only");
    assert_eq!(
        (
            h.probe_interval_ms,
            h.probe_timeout_ms,
            h.probe_down,
            h.probe_up
        ),
        (1000, 2000, 3, 2)
    );
    assert!(!RESERVED.contains(&("uplink", "backup")));
    assert!(!RESERVED.contains(&("uplink", "probe")));
}

#[test]
fn health_every_key() {
    let text = format!(
        "{BASE}\toption backup '1'\n\toption probe 'dns'\n\tlist probe_target '192.0.2.1'\n\
         \tlist probe_target '[2001:db8::1]:5353'\n\tlist probe_target '2001:db8::2'\n\
         \toption probe_interval '0.25'\n\toption probe_timeout '1.5'\n\
         \toption probe_down '5'\n\toption probe_up '4'\n\
         config uplink 'lte'\n\toption device 'wwan0'\n\toption probe 'none'\n\
         \tlist probe_target '192.0.2.9'\n\
         config uplink 'off'\n\toption disabled '1'\n\toption backup '1'\n"
    );
    let l = full(&text);
    assert_eq!(l.uplinks.len(), 2, "disabled uplinks have no entry");
    let h = &l.uplinks[0].health;
    assert!(h.backup);
    assert_eq!(h.probe, ProbeKind::Dns);
    assert_eq!(
        h.probe_targets,
        vec![
            "192.0.2.1:53".parse().unwrap(),
            "[2001:db8::1]:5353".parse().unwrap(),
            "[2001:db8::2]:53".parse().unwrap()
        ]
    );
    assert_eq!((h.probe_interval_ms, h.probe_timeout_ms), (250, 1500));
    assert_eq!((h.probe_down, h.probe_up), (5, 4));
    assert!(h.probing());
    assert_eq!(l.uplinks[1].health.probe, ProbeKind::None);
    assert!(
        !l.uplinks[1].health.probing(),
        "probe 'none' ignores its targets"
    );
}

#[test]
fn health_values() {
    assert!(health_of("option backup 'yes'").backup);
    assert!(!health_of("option backup 'off'").backup);
    for (v, k) in [
        ("icmp", ProbeKind::Icmp),
        ("tcp", ProbeKind::Tcp),
        ("dns", ProbeKind::Dns),
        ("none", ProbeKind::None),
    ] {
        assert_eq!(health_of(&format!("option probe '{v}'")).probe, k);
        assert_eq!(k.name(), v);
    }
    // Default ports by kind; ICMP targets have none.
    let t = |kind: &str, target: &str| {
        let l = full(&format!(
            "{BASE}\toption probe '{kind}'\n\tlist probe_target '{target}'\n"
        ));
        l.uplinks[0].health.probe_targets[0]
    };
    assert_eq!(t("tcp", "192.0.2.1"), "192.0.2.1:443".parse().unwrap());
    assert_eq!(t("tcp", "192.0.2.1:80"), "192.0.2.1:80".parse().unwrap());
    assert_eq!(t("dns", "192.0.2.1"), "192.0.2.1:53".parse().unwrap());
    assert_eq!(t("icmp", "192.0.2.1"), "192.0.2.1:0".parse().unwrap());
    assert_eq!(t("icmp", "2001:db8::1"), "[2001:db8::1]:0".parse().unwrap());
    assert_eq!(
        t("icmp", "[2001:db8::1]"),
        "[2001:db8::1]:0".parse().unwrap()
    );
    assert_eq!(
        t("tcp", "[2001:db8::1]"),
        "[2001:db8::1]:443".parse().unwrap()
    );
    assert_eq!(
        t("icmp", "::ffff:192.0.2.7"),
        "192.0.2.7:0".parse().unwrap()
    );
    // A single option with the kind's default (icmp).
    assert_eq!(
        health_of("option probe_target '192.0.2.1'").probe_targets,
        vec!["192.0.2.1:0".parse().unwrap()]
    );
    let s = |v: &str| health_of(&format!("option probe_interval '{v}'")).probe_interval_ms;
    assert_eq!(s("1"), 1000);
    assert_eq!(s("0.1"), 100);
    assert_eq!(s(".5"), 500);
    assert_eq!(s("2.5"), 2500);
    assert_eq!(s("1.125"), 1125);
    assert_eq!(s("3600"), 3_600_000);
    let to = |v: &str| health_of(&format!("option probe_timeout '{v}'")).probe_timeout_ms;
    assert_eq!(to("0.1"), 100);
    assert_eq!(to("60"), 60_000);
    assert_eq!(health_of("option probe_down '1'").probe_down, 1);
    assert_eq!(health_of("option probe_down '100'").probe_down, 100);
    assert_eq!(health_of("option probe_up '1'").probe_up, 1);
    assert_eq!(health_of("option probe_up '100'").probe_up, 100);
}

#[test]
fn health_bad_values() {
    let e = uplink_err("option backup 'maybe'", "backup");
    assert!(e.contains("'maybe' is not a boolean"), "{e}");
    assert_eq!(
        uplink_err("option probe 'ping'", "probe"),
        format!(
            "{FILE}:7: section 'dsl' (uplink), option 'probe': 'ping' is not a probe kind \
             (icmp, tcp, dns or none)"
        )
    );
    for v in [
        "example.net",
        "192.0.2.1:",
        "192.0.2.300",
        "[192.0.2.1]",
        "[2001:db8::1",
        "2001:db8::1]",
        "192.0.2.1:65536",
        "192.0.2.1/32",
    ] {
        let e = uplink_err(&format!("option probe_target '{v}'"), "probe_target");
        assert!(e.contains("is not a probe target"), "{v}: {e}");
    }
    for v in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1"] {
        let e = uplink_err(&format!("list probe_target '{v}'"), "probe_target");
        assert!(e.contains("is not a usable probe target"), "{v}: {e}");
    }
    let e = uplink_err("list probe_target '192.0.2.1:80'", "probe_target");
    assert!(e.contains("icmp probes take none"), "{e}");
    let e = fails(&format!(
        "{BASE}\toption probe 'tcp'\n\tlist probe_target '192.0.2.1:0'\n"
    ));
    assert!(
        e.contains(":8: section 'dsl' (uplink), option 'probe_target': '192.0.2.1:0' has port 0"),
        "{e}"
    );
    // Twice (443 is tcp's default port: the same target).
    let e = fails(&format!(
        "{BASE}\toption probe 'tcp'\n\tlist probe_target '192.0.2.1'\n\tlist probe_target '192.0.2.1:443'\n"
    ));
    assert!(
        e.contains(
            ":9: section 'dsl' (uplink), option 'probe_target': '192.0.2.1:443' is listed twice"
        ),
        "{e}"
    );
    let mut many = BASE.to_string();
    for i in 1..=9 {
        many.push_str(&format!("\tlist probe_target '192.0.2.{i}'\n"));
    }
    let e = fails(&many);
    assert!(
        e.contains(
            ":15: section 'dsl' (uplink), option 'probe_target': too many targets (at most 8)"
        ),
        "{e}"
    );
    for v in [
        "0", "0.05", "3601", "1.0001", "1.", "-1", "1,5", "abc", "1e3", " 1", ".",
    ] {
        let e = uplink_err(&format!("option probe_interval '{v}'"), "probe_interval");
        assert!(
            e.contains("is not a number of seconds in 0.1..=3600"),
            "{v}: {e}"
        );
    }
    for v in ["0", "61", "0.099", "x"] {
        let e = uplink_err(&format!("option probe_timeout '{v}'"), "probe_timeout");
        assert!(
            e.contains("is not a number of seconds in 0.1..=60"),
            "{v}: {e}"
        );
    }
    for key in ["probe_down", "probe_up"] {
        for v in ["0", "101", "-1", "2.5", "many"] {
            let e = uplink_err(&format!("option {key} '{v}'"), key);
            assert!(e.contains("is not a number in 1..=100"), "{key} {v}: {e}");
        }
    }
    // Lists where single values belong.
    let e = uplink_err("list probe 'icmp'", "probe");
    assert!(e.contains("takes a single value"), "{e}");
    // A disabled uplink's health options are checked too.
    let e = fails(&format!(
        "{BASE}config uplink 'spare'\n\toption disabled '1'\n\toption probe_up '0'\n"
    ));
    assert!(
        e.contains(":9: section 'spare' (uplink), option 'probe_up':"),
        "{e}"
    );
}
