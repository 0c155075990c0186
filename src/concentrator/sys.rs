//! The concentrator's only `unsafe` code: safe wrappers for the libc calls std does not offer
//! (an `IPPROTO_MPTCP` listener with TCP Fast Open, `accept4`, a non-blocking `connect` with
//! `TCP_MAXSEG`, `SO_ERROR`, the state in `TCP_INFO`, `pipe2`, `splice`, `RLIMIT_NOFILE`).
//! Every wrapper checks sizes itself and turns `-1` into [`std::io::Error::last_os_error`].

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::io::sys::{check, setsockopt_int};

/// `IPPROTO_MPTCP` (Linux 5.6+).
pub const IPPROTO_MPTCP: libc::c_int = 262;
/// `TCP_FASTOPEN_NO_COOKIE` (Linux 4.15+).
pub const TCP_FASTOPEN_NO_COOKIE: libc::c_int = 34;

/// A sockaddr buffer big enough for IPv4 and IPv6.
fn to_sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage (which is designed for it).
            unsafe {
                std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin);
            }
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe {
                std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6);
            }
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                0,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn new_socket(v6: bool, proto: libc::c_int) -> io::Result<OwnedFd> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain syscall with integer arguments; the result is a new fd we own.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking MPTCP listener on `addr` with TCP Fast Open (`tfo_qlen` pending TFO
/// requests at most) and, if `no_cookie`, `TCP_FASTOPEN_NO_COOKIE` (SYN data accepted without
/// a TFO cookie).
pub fn mptcp_listener(
    addr: &SocketAddr,
    backlog: i32,
    tfo_qlen: i32,
    no_cookie: bool,
) -> io::Result<OwnedFd> {
    let fd = new_socket(addr.is_ipv6(), IPPROTO_MPTCP)?;
    let raw = fd.as_raw_fd();
    setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if addr.is_ipv6() {
        // Dual stack when listening on [::].
        let _ = setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0);
    }
    if tfo_qlen > 0 {
        setsockopt_int(raw, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, tfo_qlen)?;
        if no_cookie {
            setsockopt_int(raw, libc::IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, 1)?;
        }
    }
    let (ss, len) = to_sockaddr(addr);
    // SAFETY: `ss` holds a valid sockaddr of length `len`.
    check(unsafe { libc::bind(raw, &ss as *const _ as *const libc::sockaddr, len) })?;
    // SAFETY: plain syscall on a socket we own.
    check(unsafe { libc::listen(raw, backlog) })?;
    Ok(fd)
}

/// `accept4` (non-blocking, close-on-exec): the new socket and the peer's address.
pub fn accept(listener: RawFd) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` and `len` are valid for writes and `len` holds the size of `ss`.
    let fd = check(unsafe {
        libc::accept4(
            listener,
            &mut ss as *mut _ as *mut libc::sockaddr,
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by accept4() and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = from_sockaddr(&ss)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown address family"))?;
    Ok((owned, peer))
}

/// Start a non-blocking plain-TCP connect to `dst`; `mss` sets `TCP_MAXSEG` first. Returns
/// the socket; completion is seen as writability, then [`take_error`].
pub fn tcp_connect(dst: &SocketAddr, mss: Option<u16>) -> io::Result<OwnedFd> {
    let fd = new_socket(dst.is_ipv6(), libc::IPPROTO_TCP)?;
    if let Some(m) = mss {
        setsockopt_int(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            libc::c_int::from(m),
        )?;
    }
    let (ss, len) = to_sockaddr(dst);
    // SAFETY: `ss` holds a valid sockaddr of length `len`.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &ss as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(fd)
}

/// `SO_ERROR`: the pending error of a socket (0 = none).
pub fn take_error(fd: RawFd) -> io::Result<i32> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` and `len` are valid for writes and `len` holds the size of `val`.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut val as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(val)
}

/// A non-blocking pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Capacity of a pipe in bytes (`F_GETPIPE_SZ`).
pub fn pipe_capacity(fd: RawFd) -> usize {
    // SAFETY: plain fcntl query on an fd we were given.
    let n = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// `splice(2)` up to `len` bytes from `from` to `to` (one of them a pipe), non-blocking.
/// `Ok(0)` means end of file on `from`.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets (both fds are streams); the kernel checks the descriptors.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Raise the soft `RLIMIT_NOFILE` to at least `want` (bounded by the hard limit); returns the
/// resulting soft limit.
#[allow(clippy::useless_conversion)] // rlim_t is 32 bits on some 32-bit targets
pub fn raise_nofile(want: u64) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return 1024;
    }
    let cur = u64::from(rl.rlim_cur);
    if cur >= want {
        return cur;
    }
    let new = libc::rlimit {
        rlim_cur: libc::rlim_t::try_from(want.min(u64::from(rl.rlim_max))).unwrap_or(rl.rlim_max),
        rlim_max: rl.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
        u64::from(new.rlim_cur)
    } else {
        cur
    }
}

/// `tcpi_state` value of a TCP socket whose handshake is not complete yet (a TCP Fast Open
/// child is accepted in this state, before the client's third ACK).
pub const TCP_SYN_RECV: u8 = 3;

/// `tcpi_state` of a socket (`TCP_INFO`, first byte only). On an MPTCP socket the kernel
/// answers for its first subflow.
pub fn tcp_state(fd: RawFd) -> io::Result<u8> {
    // Only the first field is wanted: the kernel copies min(len, sizeof(struct tcp_info)).
    let mut state = [0u8; 8];
    let mut len = state.len() as libc::socklen_t;
    // SAFETY: `state` and `len` are valid for writes and `len` holds the size of `state`.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            state.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    })?;
    if len < 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "short TCP_INFO"));
    }
    Ok(state[0])
}
