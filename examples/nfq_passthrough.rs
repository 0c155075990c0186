//! A bare NFQUEUE passthrough: the baseline that `scripts/bench` compares `mpconv run` with.
//!
//! It binds one queue, and accepts every queued packet unchanged (one verdict per packet, the
//! payload is not sent back), configured like the daemon's queue: copy range 65535, kernel queue
//! length 4096, fail-open off (a full queue drops, as with the daemon), an 8 MiB receive buffer
//! (`SO_RCVBUFFORCE`), non-blocking receive with at most 4096 packets per wake-up. So the
//! difference between this and the daemon is the daemon's own work per packet (parsing,
//! conversion, raw-socket transmits), not the cost of NFQUEUE itself.
//!
//! ```text
//! nfq_passthrough [QUEUE [SECONDS]]     (defaults: queue 0, 600 s)
//! ```
//!
//! Needs root (CAP_NET_ADMIN) and a rule that queues packets to QUEUE, for example
//! `iptables -t raw -A PREROUTING -i lan0 -p tcp -j NFQUEUE --queue-num 0`. Prints `READY`
//! once bound, and `packets N bytes B seconds S` when it ends: on SIGINT, SIGTERM or SIGHUP, or
//! after SECONDS. Exit status 0, or 1 when the queue could not be set up.
//!
//! Uses the crate's `io::sys` helpers (feature `daemon`, on by default) for the signal
//! self-pipe, `poll`, and to find the queue's descriptor, so this file has no `unsafe`.
//! Build: `cargo build --release --example nfq_passthrough`.

use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mpconv::io::sys;

/// Same values as the daemon (`src/io/daemon.rs`).
const QUEUE_RCVBUF: u32 = 8 << 20;
const QUEUE_MAXLEN: u32 = 4096;
const RECV_BUDGET: u32 = 4096;
const COPY_RANGE: u16 = 65535;

struct Args {
    queue: u16,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let queue = match it.next() {
        Some(s) => s.parse().map_err(|_| format!("bad queue number {s:?}"))?,
        None => 0,
    };
    let seconds = match it.next() {
        Some(s) => s.parse().map_err(|_| format!("bad seconds {s:?}"))?,
        None => 600,
    };
    if it.next().is_some() {
        return Err("usage: nfq_passthrough [QUEUE [SECONDS]]".into());
    }
    Ok(Args { queue, seconds })
}

fn open_queue(num: u16) -> Result<(nfq::Queue, RawFd), String> {
    let before = sys::open_socket_fds();
    let mut q = nfq::Queue::open().map_err(|e| format!("cannot open NFQUEUE socket: {e}"))?;
    let new: Vec<RawFd> = sys::open_socket_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    let fd = sys::find_netfilter_socket(&new).ok_or("cannot find the NFQUEUE descriptor")?;
    q.bind(num)
        .map_err(|e| format!("cannot bind NFQUEUE {num}: {e}"))?;
    q.set_copy_range(num, COPY_RANGE)
        .map_err(|e| format!("copy range: {e}"))?;
    q.set_queue_max_len(num, QUEUE_MAXLEN)
        .map_err(|e| format!("queue length: {e}"))?;
    q.set_fail_open(num, false)
        .map_err(|e| format!("fail-open: {e}"))?;
    if let Err(e) = sys::set_rcvbuf_force(fd, QUEUE_RCVBUF) {
        eprintln!("nfq_passthrough: cannot enlarge the receive buffer: {e}");
    }
    q.set_nonblocking(true);
    Ok((q, fd))
}

#[derive(Default)]
struct Counts {
    packets: u64,
    bytes: u64,
    verdict_errors: u64,
    recv_errors: u64,
}

/// Accept everything that is queued, up to [`RECV_BUDGET`] packets.
fn drain(q: &mut nfq::Queue, c: &mut Counts) {
    for _ in 0..RECV_BUDGET {
        let mut msg = match q.recv() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.recv_errors += 1;
                return;
            }
        };
        c.packets += 1;
        c.bytes += msg.get_payload().len() as u64;
        msg.set_verdict(nfq::Verdict::Accept);
        if q.verdict(msg).is_err() {
            c.verdict_errors += 1;
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let signals = sys::install_signal_pipe().map_err(|e| format!("signal handlers: {e}"))?;
    let (mut q, qfd) = open_queue(args.queue)?;
    println!("READY");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut c = Counts::default();
    let mut pfds = [sys::poll_in(qfd), sys::poll_in(signals.as_raw_fd())];
    let mut stop = false;
    while !stop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait_ms = (deadline - now).as_millis().clamp(1, 1000) as i32;
        for p in pfds.iter_mut() {
            p.revents = 0;
        }
        sys::poll(&mut pfds, wait_ms).map_err(|e| format!("poll: {e}"))?;
        if sys::readable(&pfds[1]) {
            let mut b = [0u8; 64];
            while matches!(sys::read(signals.as_raw_fd(), &mut b), Ok(n) if n > 0) {}
        }
        let sigs = sys::take_signals();
        if sigs & (1 << sys::SIGINT | 1 << sys::SIGTERM | 1 << sys::SIGHUP) != 0 {
            stop = true;
        }
        if sys::readable(&pfds[0]) {
            drain(&mut q, &mut c);
        }
    }
    println!(
        "packets {} bytes {} seconds {:.1} recv_errors {} verdict_errors {}",
        c.packets,
        c.bytes,
        start.elapsed().as_secs_f64(),
        c.recv_errors,
        c.verdict_errors
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nfq_passthrough: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nfq_passthrough: {e}");
            ExitCode::FAILURE
        }
    }
}
