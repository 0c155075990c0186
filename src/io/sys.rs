//! The only `unsafe` code of mpconv: small safe wrappers around the libc calls the daemon needs
//! (raw sockets, socket options, `sendto`, `poll`, signals, the monotonic clock, interface
//! indexes). Every function here checks its arguments' sizes itself and turns `-1` into
//! [`std::io::Error::last_os_error`].

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

pub(crate) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A raw socket that sends whole IP packets (header included): `AF_INET`/`AF_INET6`,
/// `SOCK_RAW`, `IPPROTO_RAW` (which implies `IP_HDRINCL`; for IPv6 Linux does the same).
/// Non-blocking and close-on-exec.
pub fn raw_socket(v6: bool) -> io::Result<OwnedFd> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain syscall with integer arguments; the result is a new fd we own.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a valid c_int whose size is passed alongside.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` and `len` are valid for writes and `len` holds the size of `val`.
    check(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut val as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(val)
}

/// `SO_MARK`: the firewall mark of every packet sent on the socket (needs CAP_NET_ADMIN).
pub fn set_mark(fd: RawFd, mark: u32) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int)
}

/// `SO_SNDBUFFORCE` (ignores `net.core.wmem_max`; needs CAP_NET_ADMIN).
pub fn set_sndbuf_force(fd: RawFd, bytes: u32) -> io::Result<()> {
    setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        bytes as libc::c_int,
    )
}

/// `SO_RCVBUFFORCE` (ignores `net.core.rmem_max`; needs CAP_NET_ADMIN).
pub fn set_rcvbuf_force(fd: RawFd, bytes: u32) -> io::Result<()> {
    setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        bytes as libc::c_int,
    )
}

/// `SO_BINDTODEVICE`: send only through this device.
pub fn bind_to_device(fd: RawFd, dev: &str) -> io::Result<()> {
    let name = CString::new(dev).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let bytes = name.as_bytes_with_nul();
    // SAFETY: `bytes` is a valid buffer of the given length for the duration of the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr() as *const libc::c_void,
            bytes.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `(SO_DOMAIN, SO_PROTOCOL)` of a socket.
pub fn socket_domain_protocol(fd: RawFd) -> io::Result<(i32, i32)> {
    Ok((
        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?,
        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?,
    ))
}

/// Send one IPv4 packet (header included) to `dst`, without blocking.
pub fn sendto_v4(fd: RawFd, packet: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(dst.octets()),
    };
    sendto_raw(fd, packet, &sa)
}

/// Send one IPv6 packet (header included) to `dst`, without blocking.
pub fn sendto_v6(fd: RawFd, packet: &[u8], dst: Ipv6Addr) -> io::Result<usize> {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr = libc::in6_addr {
        s6_addr: dst.octets(),
    };
    sendto_raw(fd, packet, &sa)
}

/// `sendto` with `sa`, a `sockaddr_in` or `sockaddr_in6`, without blocking.
fn sendto_raw<T>(fd: RawFd, packet: &[u8], sa: &T) -> io::Result<usize> {
    // SAFETY: `packet` and `sa` are valid for reads of the lengths passed, and `T` is one of
    // the sockaddr types (the callers above), whose family field comes first.
    let n = unsafe {
        libc::sendto(
            fd,
            packet.as_ptr() as *const libc::c_void,
            packet.len(),
            libc::MSG_DONTWAIT,
            sa as *const T as *const libc::sockaddr,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One entry for [`poll`].
pub type PollFd = libc::pollfd;

/// A [`PollFd`] waiting for input on `fd`.
pub fn poll_in(fd: RawFd) -> PollFd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Whether [`poll`] reported input (or an error/hang-up, which a read will then report).
pub fn readable(p: &PollFd) -> bool {
    p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0
}

/// `poll(2)`; `timeout_ms < 0` waits forever. EINTR is returned as `Ok(0)`.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a valid, writable slice of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}

/// Microseconds of `CLOCK_MONOTONIC`.
pub fn monotonic_us() -> u64 {
    // SAFETY: timespec is plain old data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1000
}

/// `if_nametoindex(3)`: `None` when there is no such device.
pub fn if_nametoindex(dev: &str) -> Option<u32> {
    let name = CString::new(dev).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Non-blocking `read(2)` into `buf` (used to drain the signal pipe).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

// ---- signals: a self-pipe -------------------------------------------------------------------

/// Write end of the self-pipe, -1 when not installed.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);
/// Bit `1 << signo` for every signal received since the last [`take_signals`].
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    // Only async-signal-safe operations: an atomic OR and a write(2) that may fail harmlessly.
    if (0..32).contains(&signo) {
        SIGNALS.fetch_or(1 << signo, Ordering::SeqCst);
    }
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = 0u8;
        // SAFETY: writing one byte from a valid stack location; errors (full pipe) are ignored.
        unsafe { libc::write(fd, &b as *const u8 as *const libc::c_void, 1) };
    }
}

/// The signals the daemon reacts to.
pub const HANDLED_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Install handlers for SIGINT, SIGTERM and SIGHUP that record the signal and wake up
/// [`poll`] through a self-pipe. Returns the read end (non-blocking) to poll on.
/// SIGPIPE is ignored (the control socket reports EPIPE instead).
pub fn install_signal_pipe() -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created and are owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The write end lives as long as the process (the handler may run at any time).
    SIGNAL_PIPE.store(
        std::mem::ManuallyDrop::new(wr).as_raw_fd(),
        Ordering::SeqCst,
    );
    for sig in HANDLED_SIGNALS {
        let handler: extern "C" fn(libc::c_int) = on_signal;
        set_handler(sig, handler as libc::sighandler_t)?;
    }
    set_handler(libc::SIGPIPE, libc::SIG_IGN)?;
    Ok(rd)
}

fn set_handler(sig: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: sigaction is plain old data; all-zero is a valid (empty) value.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is fully initialised; the handler only does async-signal-safe work.
    check(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) }).map(drop)
}

/// The signals received since the last call, as a bit set (`1 << signo`).
pub fn take_signals() -> u32 {
    SIGNALS.swap(0, Ordering::SeqCst)
}

/// Signal numbers, for the bit set of [`take_signals`].
pub use libc::{SIGHUP, SIGINT, SIGTERM};

/// Open file descriptors of this process that are sockets (from `/proc/self/fd`).
pub fn open_socket_fds() -> Vec<RawFd> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else {
                continue;
            };
            if let Ok(target) = std::fs::read_link(e.path()) {
                if target.to_string_lossy().starts_with("socket:") {
                    out.push(fd);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// The `NETLINK_NETFILTER` socket among `candidates`, if exactly one is.
pub fn find_netfilter_socket(candidates: &[RawFd]) -> Option<RawFd> {
    let mut found = candidates.iter().copied().filter(|&fd| {
        matches!(socket_domain_protocol(fd), Ok((d, p)) if d == libc::AF_NETLINK && p == libc::NETLINK_NETFILTER)
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

pub use libc::{EAGAIN, EINTR};

// ---- ordinary sockets for the health probes, and rtnetlink -----------------------------------

/// `socket(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` added to `ty`.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; the result is a new fd we own.
    let fd = check(unsafe {
        libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto)
    })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub use libc::{
    AF_INET, AF_INET6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM,
};

/// A `sockaddr_in` or `sockaddr_in6` for `sa`, in a `sockaddr_storage`, with its length.
fn sockaddr_of(sa: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match sa {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr type.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// `bind(2)` to an IP address and port.
pub fn bind(fd: RawFd, sa: &std::net::SocketAddr) -> io::Result<()> {
    let (ss, len) = sockaddr_of(sa);
    // SAFETY: `ss` holds a valid sockaddr of `len` bytes.
    check(unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) }).map(drop)
}

/// Non-blocking `connect(2)`: `Ok(true)` when connected at once, `Ok(false)` while in progress
/// (EINPROGRESS; poll for output, then read [`so_error`]).
pub fn connect(fd: RawFd, sa: &std::net::SocketAddr) -> io::Result<bool> {
    let (ss, len) = sockaddr_of(sa);
    // SAFETY: `ss` holds a valid sockaddr of `len` bytes.
    match check(unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The local port of a bound socket.
pub fn local_port(fd: RawFd) -> io::Result<u16> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` and `len` are valid for writes and `len` holds the size of `ss`.
    check(unsafe { libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) })?;
    let port = match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET).
            let sin = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) };
            u16::from_be(sin.sin_port)
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6).
            let sin6 = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in6) };
            u16::from_be(sin6.sin6_port)
        }
        _ => return Err(io::ErrorKind::Unsupported.into()),
    };
    Ok(port)
}

/// `SO_ERROR`: the pending error of a socket (0 = none), e.g. of a non-blocking connect.
pub fn so_error(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)
}

/// `SO_LINGER` 0: close() resets the connection instead of a FIN handshake.
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid linger struct whose size is passed alongside.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Non-blocking `send(2)` on a connected socket.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Non-blocking `recv(2)`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A [`PollFd`] waiting until `fd` can be written (a connect finished).
pub fn poll_out(fd: RawFd) -> PollFd {
    libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    }
}

/// Whether [`poll`] reported `fd` writable (or an error/hang-up).
pub fn writable(p: &PollFd) -> bool {
    p.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

/// An rtnetlink socket (`NETLINK_ROUTE`, non-blocking) subscribed to the multicast `groups`
/// (`RTMGRP_*` bits), with a receive buffer of `rcvbuf` bytes (forced when allowed).
pub fn netlink_route_socket(groups: u32, rcvbuf: u32) -> io::Result<OwnedFd> {
    let fd = socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    if set_rcvbuf_force(fd.as_raw_fd(), rcvbuf).is_err() {
        let _ = setsockopt_int(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            rcvbuf as libc::c_int,
        );
    }
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = groups;
    // SAFETY: `sa` is a valid sockaddr_nl whose size is passed alongside.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// rtnetlink constants used by [`super::netlink`].
pub mod rtnl {
    pub use libc::{
        IFF_LOWER_UP, IFF_RUNNING, IFF_UP, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, RTMGRP_IPV4_IFADDR,
        RTMGRP_IPV6_IFADDR, RTMGRP_LINK, RTM_DELADDR, RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK,
    };
}

pub use libc::{ECONNREFUSED, ENOBUFS};
