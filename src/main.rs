//! `mpconv`: the command line. `run` starts the daemon in the foreground, `status` asks a
//! running daemon, `handover` moves its traffic to one uplink, `check` validates a
//! configuration, `version` prints the version.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use mpconv::config::{self, Config, FirewallBackend, Mode};

const DEFAULT_SOCKET: &str = "/var/run/mpconv.sock";

/// mpconv: a TCP-to-MPTCP (RFC 8684 v1) converter for home routers. LAN hosts' TCP connections
/// are turned into MPTCP connections spread over the configured uplinks.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Run(RunCmd),
    Status(StatusCmd),
    Handover(HandoverCmd),
    Check(CheckCmd),
    Version(VersionCmd),
    Concentrator(ConcentratorCmd),
}

/// Run the converter in the foreground (logs go to stderr) until SIGINT or SIGTERM. Installs
/// its routing rules, firewall rules and control socket at start and removes them at exit.
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct RunCmd {
    /// the UCI configuration file (for example /etc/config/mpconv)
    #[argh(option, short = 'c')]
    config: PathBuf,
    /// log at debug level, whatever option log_level says
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// Show the state of the running daemon: uplinks, converted connections and their subflows,
/// counters.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
struct StatusCmd {
    /// the daemon's control socket (default /var/run/mpconv.sock, or the one set in --config)
    #[argh(option, short = 's')]
    socket: Option<PathBuf>,
    /// read the control socket path from this configuration file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// print the status as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Move the traffic of every converted connection to one uplink (make-before-break: MP_PRIO
/// marks the other subflows backup, nothing is lost). Exit status 0 when the daemon did it, 1
/// if not (unknown uplink, daemon not running, refused).
#[derive(FromArgs)]
#[argh(subcommand, name = "handover")]
struct HandoverCmd {
    /// the uplink to move to: the name of its `config uplink` section (e.g. wan)
    #[argh(positional)]
    uplink: String,
    /// the daemon's control socket (default /var/run/mpconv.sock, or the one set in --config)
    #[argh(option, short = 's')]
    socket: Option<PathBuf>,
    /// read the control socket path from this configuration file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// print exactly one JSON object: {"ok":true,"uplink":NAME,"connections":N} or
    /// {"error":MESSAGE} (also when the daemon cannot be reached)
    #[argh(switch)]
    json: bool,
}

/// Validate a configuration file and print a summary of it; exit status 0 if it is valid, 1 if
/// not.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct CheckCmd {
    /// the UCI configuration file to check
    #[argh(option, short = 'c')]
    config: PathBuf,
}

/// Run the concentrator (an RFC 8803 Transport Converter, off-path mode) in the foreground
/// until SIGINT or SIGTERM. It accepts MPTCP connections that start with a Convert message
/// (ideally in the SYN, via TCP Fast Open), checks the client's prefix (list allow), its
/// cookie (option secret) and the destination, connects to the destination by plain TCP and
/// relays both ways. `mpconv status -s SOCKET` queries it.
#[derive(FromArgs)]
#[argh(subcommand, name = "concentrator")]
struct ConcentratorCmd {
    /// the UCI file with one `config concentrator` section (e.g.
    /// /etc/config/mpconv-concentrator)
    #[argh(option, short = 'c')]
    config: PathBuf,
    /// log at debug level, whatever option log_level says
    #[argh(switch, short = 'v')]
    verbose: bool,
}

fn cmd_concentrator(c: ConcentratorCmd) -> Result<(), String> {
    let cfg = config::concentrator::load(&c.config).map_err(|e| e.to_string())?;
    let level = if c.verbose {
        log::LevelFilter::Debug.max(cfg.log_level)
    } else {
        cfg.log_level
    };
    init_logging(level);
    log::info!(
        "{} concentrator starting with {}",
        version(),
        c.config.display()
    );
    mpconv::concentrator::run(cfg, c.verbose)
}

/// Print the version (also: mpconv --version).
#[derive(FromArgs)]
#[argh(subcommand, name = "version")]
struct VersionCmd {}

fn version() -> String {
    format!("mpconv {}", env!("CARGO_PKG_VERSION"))
}

fn init_logging(level: log::LevelFilter) {
    let cfg = simplelog::ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, cfg, std::io::stderr());
}

fn cmd_run(c: RunCmd) -> Result<(), String> {
    let cfg = config::load(&c.config).map_err(|e| e.to_string())?;
    let level = if c.verbose {
        log::LevelFilter::Debug.max(cfg.log_level)
    } else {
        cfg.log_level
    };
    init_logging(level);
    log::info!("{} starting with {}", version(), c.config.display());
    mpconv::io::run(cfg, c.verbose)
}

fn socket_path(socket: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, String> {
    Ok(match (socket, config) {
        (Some(s), _) => s,
        (None, Some(path)) => config::load(&path).map_err(|e| e.to_string())?.socket,
        (None, None) => PathBuf::from(DEFAULT_SOCKET),
    })
}

/// `handover`: with --json the daemon's reply line is printed as it is (and an error object is
/// made here when there is no reply); otherwise a sentence.
fn cmd_handover(c: HandoverCmd) -> ExitCode {
    use mpconv::io::control::json_str;
    let reply = socket_path(c.socket, c.config).and_then(|socket| {
        // One word, as the request line splits on whitespace.
        if c.uplink.is_empty()
            || c.uplink
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(format!(
                "'{}' is not an uplink name",
                c.uplink.escape_default()
            ));
        }
        mpconv::io::control::query(&socket, &format!("handover {}", c.uplink))
    });
    let (ok, line) = match reply {
        Ok(r) => {
            let r = r.trim().to_string();
            (r.starts_with("{\"ok\":true"), r)
        }
        Err(e) => (false, format!("{{\"error\":{}}}", json_str(&e))),
    };
    if c.json {
        println!("{line}");
    } else if ok {
        let n = json_field(&line, "connections").unwrap_or("?");
        println!("handover to {}: {n} connection(s) moved", c.uplink);
    } else {
        let msg = json_field(&line, "error").unwrap_or(&line);
        eprintln!(
            "mpconv: handover to {}: {}",
            c.uplink,
            msg.replace("\\\"", "\"")
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The raw text of `"key":VALUE` in a flat one-line JSON object (strings without their quotes,
/// escapes left as they are): enough for the replies printed above.
fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    if let Some(s) = rest.strip_prefix('"') {
        let mut esc = false;
        for (i, ch) in s.char_indices() {
            match ch {
                '\\' if !esc => esc = true,
                '"' if !esc => return Some(&s[..i]),
                _ => esc = false,
            }
        }
        None
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(&rest[..end])
    }
}

fn cmd_status(c: StatusCmd) -> Result<(), String> {
    let socket = socket_path(c.socket, c.config)?;
    let req = if c.json { "status json" } else { "status" };
    let reply = mpconv::io::control::query(&socket, req)?;
    print!("{reply}");
    Ok(())
}

fn summary(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{}: valid", cfg.path.display());
    let _ = writeln!(s, "enabled: {}", if cfg.enabled { "yes" } else { "no" });
    let mode = match cfg.mode {
        Mode::Implicit => "implicit",
        Mode::Explicit => "explicit",
    };
    let _ = writeln!(s, "mode: {mode}");
    let _ = writeln!(s, "lan: {}", cfg.lan.join(" "));
    for (i, u) in cfg.uplinks.iter().enumerate() {
        let _ = write!(s, "uplink {}:", u.name);
        if let Some(d) = &u.device {
            let _ = write!(s, " device {d}");
        }
        if let Some(g) = u.gateway {
            let _ = write!(s, " gateway {g}");
        }
        if let Some(g) = u.gateway6 {
            let _ = write!(s, " gateway6 {g}");
        }
        if let Some(m) = u.mtu {
            let _ = write!(s, " mtu {m}");
        }
        if let Some(i) = &u.interface {
            let _ = write!(s, " interface {i}");
        }
        let _ = writeln!(
            s,
            " table {} mark {:#x}",
            mpconv::io::routes::uplink_table(cfg, i),
            mpconv::io::routes::uplink_mark(cfg, i)
        );
    }
    let fw = match cfg.firewall {
        FirewallBackend::Auto => "auto",
        FirewallBackend::Iptables => "iptables",
        FirewallBackend::Nftables => "nftables",
    };
    let _ = writeln!(
        s,
        "queue {}, mark {:#x}, firewall {fw}, socket {}",
        cfg.queue,
        cfg.mark,
        cfg.socket.display()
    );
    let _ = writeln!(
        s,
        "ports {}-{}, max connections {}, idle timeout {} s, checksum {}, log level {}",
        cfg.port_range.0,
        cfg.port_range.1,
        cfg.max_connections,
        cfg.idle_timeout,
        if cfg.checksum { "on" } else { "off" },
        cfg.log_level
    );
    s
}

fn cmd_check(c: CheckCmd) -> Result<(), String> {
    let cfg = config::load(&c.config).map_err(|e| e.to_string())?;
    print!("{}", summary(&cfg));
    for u in &cfg.uplinks {
        print!("{}", health_summary(&u.name, &u.health));
    }
    Ok(())
}

fn health_summary(name: &str, h: &config::UplinkHealth) -> String {
    let mut s = format!("uplink {name}:");
    if h.backup {
        s.push_str(" backup,");
    }
    if h.probing() {
        let targets: Vec<String> = h
            .probe_targets
            .iter()
            .map(|t| mpconv::io::probe::target_text(h.probe, *t))
            .collect();
        s.push_str(&format!(
            " {} probes to {} every {} s, timeout {} s, down after {}, up after {}\n",
            h.probe.name(),
            targets.join(" "),
            f64::from(h.probe_interval_ms) / 1000.0,
            f64::from(h.probe_timeout_ms) / 1000.0,
            h.probe_down,
            h.probe_up
        ));
    } else {
        s.push_str(" no probes (link events only)\n");
    }
    s
}

fn main() -> ExitCode {
    // argh has no built-in --version.
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && (args[1] == "--version" || args[1] == "-V") {
        println!("{}", version());
        return ExitCode::SUCCESS;
    }
    let cli: Cli = argh::from_env();
    let res = match cli.cmd {
        Cmd::Run(c) => cmd_run(c),
        Cmd::Status(c) => cmd_status(c),
        Cmd::Handover(c) => return cmd_handover(c),
        Cmd::Check(c) => cmd_check(c),
        Cmd::Concentrator(c) => cmd_concentrator(c),
        Cmd::Version(_) => {
            println!("{}", version());
            Ok(())
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once `run` has set up logging, errors go to the log (stderr) only once.
            if log::max_level() >= log::LevelFilter::Error {
                log::error!("{e}");
            } else {
                eprintln!("mpconv: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
