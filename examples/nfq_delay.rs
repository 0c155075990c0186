//! An NFQUEUE delayer: the test bed's stand-in for netem's `delay` (this kernel has no netem).
//!
//! It binds one queue and holds every queued packet for a fixed time before it gives the
//! accept verdict. Packets leave in the order they came (one FIFO, the same delay for all), so
//! nothing is reordered. Only the packet's metadata is copied to user space (copy mode "meta"),
//! GSO packets are queued whole, and the payload is never sent back: the cost per packet is two
//! small netlink messages, whatever the packet's size.
//!
//! ```text
//! nfq_delay QUEUE DELAY_MS [SECONDS]     (default: run until signalled, at most 24 h)
//! ```
//!
//! Needs root (CAP_NET_ADMIN) and rules that queue packets to QUEUE, for example
//! `iptables -t mangle -A PREROUTING -i cpe -j NFQUEUE --queue-num 10` (without
//! `--queue-bypass`, a dead delayer then stops the traffic instead of silently removing the
//! delay). Prints `READY` once bound, and on exit (SIGINT, SIGTERM, SIGHUP or after SECONDS)
//! accepts whatever it still holds and prints
//! `packets N seconds S max_held H late_max_us L recv_errors R verdict_errors V` (`max_held`:
//! most packets held at once; `late_max_us`: the latest a verdict came after its due time).
//! Exit status 0, 1 when the queue could not be set up, 2 on bad arguments.
//!
//! Sizing: the kernel queue holds the delayed packets, so its length is 65536 (30 Mbit/s of
//! 1500-byte packets held 100 ms is 250 packets); the netlink receive buffer is 16 MiB
//! (`SO_RCVBUFFORCE`) so that a burst does not overflow it while the process sleeps. Watch the
//! drop columns of `/proc/net/netfilter/nfnetlink_queue` (queue dropped, user dropped).
//!
//! Uses the crate's `io::sys` helpers (feature `daemon`) for the signal self-pipe, `poll` and
//! to find the queue's descriptor, so this file has no `unsafe`.
//! Build: `cargo build --release --features daemon --examples`.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mpconv::io::sys;

const QUEUE_RCVBUF: u32 = 16 << 20;
const QUEUE_MAXLEN: u32 = 65536;
/// At most this many packets are taken from the socket per wake-up, so that due verdicts are
/// not held up by a long burst.
const RECV_BUDGET: u32 = 1024;
/// The signals that end the delayer (bits of `sys::take_signals`).
const STOP_SIGNALS: u32 = 1 << sys::SIGINT | 1 << sys::SIGTERM | 1 << sys::SIGHUP;

struct Args {
    queue: u16,
    delay: Duration,
    seconds: u64,
}

const USAGE: &str = "usage: nfq_delay QUEUE DELAY_MS [SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let queue = match it.next() {
        Some(s) => s.parse().map_err(|_| format!("bad queue number {s:?}"))?,
        None => return Err(USAGE.into()),
    };
    let delay_ms: f64 = match it.next() {
        Some(s) => s.parse().map_err(|_| format!("bad delay {s:?}"))?,
        None => return Err(USAGE.into()),
    };
    if !(0.0..=10_000.0).contains(&delay_ms) {
        return Err(format!("delay {delay_ms} ms out of range 0..=10000"));
    }
    let seconds = match it.next() {
        Some(s) => s.parse().map_err(|_| format!("bad seconds {s:?}"))?,
        None => 86_400,
    };
    if it.next().is_some() {
        return Err(USAGE.into());
    }
    Ok(Args {
        queue,
        delay: Duration::from_micros((delay_ms * 1000.0).round() as u64),
        seconds,
    })
}

fn open_queue(num: u16) -> Result<(nfq::Queue, RawFd), String> {
    let before = sys::open_socket_fds();
    let mut q = nfq::Queue::open().map_err(|e| format!("cannot open NFQUEUE socket: {e}"))?;
    let new: Vec<RawFd> = sys::open_socket_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    let fd = sys::find_netfilter_socket(&new).ok_or("cannot find the NFQUEUE descriptor")?;
    sys::set_rcvbuf_force(fd, QUEUE_RCVBUF)
        .map_err(|e| format!("cannot enlarge the receive buffer: {e}"))?;
    q.bind(num)
        .map_err(|e| format!("cannot bind NFQUEUE {num}: {e}"))?;
    // Range 0: metadata only (the verdict needs the packet id, nothing else).
    q.set_copy_range(num, 0)
        .map_err(|e| format!("copy range: {e}"))?;
    q.set_queue_max_len(num, QUEUE_MAXLEN)
        .map_err(|e| format!("queue length: {e}"))?;
    q.set_fail_open(num, false)
        .map_err(|e| format!("fail-open: {e}"))?;
    q.set_recv_gso(num, true)
        .map_err(|e| format!("GSO flag: {e}"))?;
    q.set_nonblocking(true);
    Ok((q, fd))
}

#[derive(Default)]
struct Counts {
    packets: u64,
    max_held: usize,
    late_max: Duration,
    verdict_errors: u64,
    recv_errors: u64,
}

struct Delayer {
    q: nfq::Queue,
    delay: Duration,
    held: VecDeque<(Instant, nfq::Message)>,
    c: Counts,
}

impl Delayer {
    /// Take what is queued (up to [`RECV_BUDGET`] packets) and stamp it with its release time.
    fn take(&mut self) {
        for _ in 0..RECV_BUDGET {
            match self.q.recv() {
                Ok(mut msg) => {
                    self.c.packets += 1;
                    msg.set_verdict(nfq::Verdict::Accept);
                    self.held.push_back((Instant::now() + self.delay, msg));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // ENOBUFS (the socket overflowed) or a truncated message: counted, and
                    // the kernel's own drop counters say what was lost.
                    self.c.recv_errors += 1;
                    break;
                }
            }
        }
        self.c.max_held = self.c.max_held.max(self.held.len());
    }

    /// Accept every packet whose time has come (all of them when `all`).
    fn release(&mut self, now: Instant, all: bool) {
        while let Some((due, _)) = self.held.front() {
            if !all && *due > now {
                break;
            }
            let late = now.saturating_duration_since(*due);
            if !all && late > self.c.late_max {
                self.c.late_max = late;
            }
            let (_, msg) = self.held.pop_front().expect("front exists");
            if self.q.verdict(msg).is_err() {
                self.c.verdict_errors += 1;
            }
        }
    }

    /// Milliseconds `poll` may sleep: until the oldest held packet is due (rounded up), at
    /// most until `deadline`, at most 1 s.
    fn wait_ms(&self, now: Instant, deadline: Instant) -> i32 {
        let until = match self.held.front() {
            Some((due, _)) => (*due).min(deadline),
            None => deadline,
        };
        let d = until.saturating_duration_since(now);
        d.as_micros().div_ceil(1000).min(1000) as i32
    }
}

fn run(args: &Args) -> Result<(), String> {
    let signals = sys::install_signal_pipe().map_err(|e| format!("signal handlers: {e}"))?;
    let (q, qfd) = open_queue(args.queue)?;
    let mut d = Delayer {
        q,
        delay: args.delay,
        held: VecDeque::with_capacity(4096),
        c: Counts::default(),
    };
    println!("READY");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut pfds = [sys::poll_in(qfd), sys::poll_in(signals.as_raw_fd())];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        for p in pfds.iter_mut() {
            p.revents = 0;
        }
        sys::poll(&mut pfds, d.wait_ms(now, deadline)).map_err(|e| format!("poll: {e}"))?;
        if sys::readable(&pfds[1]) {
            let mut b = [0u8; 64];
            while matches!(sys::read(signals.as_raw_fd(), &mut b), Ok(n) if n > 0) {}
        }
        if sys::take_signals() & STOP_SIGNALS != 0 {
            break;
        }
        if sys::readable(&pfds[0]) {
            d.take();
        }
        d.release(Instant::now(), false);
    }
    // Nothing is left hanging in the kernel's queue: what is still held goes now.
    d.take();
    d.release(Instant::now(), true);
    let _ = d.q.unbind(args.queue);
    let c = &d.c;
    println!(
        "packets {} seconds {:.1} max_held {} late_max_us {} recv_errors {} verdict_errors {}",
        c.packets,
        start.elapsed().as_secs_f64(),
        c.max_held,
        c.late_max.as_micros(),
        c.recv_errors,
        c.verdict_errors
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nfq_delay: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nfq_delay: {e}");
            ExitCode::FAILURE
        }
    }
}
