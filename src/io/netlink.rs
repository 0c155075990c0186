//! Link and address events from the kernel: an rtnetlink socket subscribed to `RTMGRP_LINK`,
//! `RTMGRP_IPV4_IFADDR` and `RTMGRP_IPV6_IFADDR`. A veth whose peer goes down, a cable pulled,
//! `ip link set DEV down`, an address removed: each arrives as a message within microseconds,
//! and becomes an [`Event`] for the uplink's health tracker.
//!
//! A link is *up* when it is administratively up and running (`IFF_UP` and `IFF_RUNNING`, i.e.
//! operstate up or unknown): NO-CARRIER and LOWERLAYERDOWN clear `IFF_RUNNING`.
//!
//! [`parse`] is pure (bytes → events) and tested with hand-built messages; [`Netlink`] owns the
//! socket (its `unsafe` lives in `sys`). When the kernel had to drop messages (ENOBUFS, the
//! socket's buffer overflowed) [`Netlink::read`] says so, and the daemon re-reads the state of
//! its uplinks from sysfs ([`link_up_now`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys::{self, rtnl};

/// What happened to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The link of `ifindex` is now up (running) or not (also: the device went away).
    Link {
        ifindex: u32,
        up: bool,
        /// The device's name (`IFLA_IFNAME`), if the message had one.
        name: DevName,
    },
    /// `addr` was added to `ifindex` or removed from it.
    Addr {
        ifindex: u32,
        addr: IpAddr,
        present: bool,
    },
}

/// A device name as carried in a message (at most 15 bytes), without allocating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevName {
    buf: [u8; 16],
    len: u8,
}

impl DevName {
    fn from_attr(data: &[u8]) -> DevName {
        let end = data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(data.len())
            .min(15);
        let mut buf = [0u8; 16];
        buf[..end].copy_from_slice(&data[..end]);
        DevName {
            buf,
            len: end as u8,
        }
    }

    /// Whether this is the device called `dev`.
    pub fn is(&self, dev: &str) -> bool {
        self.len > 0 && &self.buf[..usize::from(self.len)] == dev.as_bytes()
    }
}

const NLMSG_HDRLEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse one datagram of rtnetlink messages, calling `f` for every link or address event.
/// Malformed or truncated messages end the parse; unknown message types are skipped.
pub fn parse(buf: &[u8], mut f: impl FnMut(Event)) {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let (Some(len), Some(ty)) = (u32_at(buf, off), u16_at(buf, off + 4)) else {
            return;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return;
        }
        let body = &buf[off + NLMSG_HDRLEN..off + len];
        match ty {
            t if (t == rtnl::RTM_NEWLINK || t == rtnl::RTM_DELLINK)
                && body.len() >= IFINFOMSG_LEN =>
            {
                if let (Some(idx), Some(flags)) = (u32_at(body, 4), u32_at(body, 8)) {
                    let need = (rtnl::IFF_UP | rtnl::IFF_RUNNING) as u32;
                    let up = t == rtnl::RTM_NEWLINK && flags & need == need;
                    let name = link_name(&body[IFINFOMSG_LEN..]);
                    f(Event::Link {
                        ifindex: idx,
                        up,
                        name,
                    });
                }
            }
            t if t == rtnl::RTM_NEWADDR || t == rtnl::RTM_DELADDR => {
                if let Some(ev) = parse_addr(body, t == rtnl::RTM_NEWADDR) {
                    f(ev);
                }
            }
            t if t == rtnl::NLMSG_DONE as u16 || t == rtnl::NLMSG_ERROR as u16 => {}
            _ => {}
        }
        off += align4(len);
    }
}

/// The `IFLA_IFNAME` attribute among a link message's attributes.
fn link_name(attrs: &[u8]) -> DevName {
    let mut off = 0;
    while off + 4 <= attrs.len() {
        let (Some(alen), Some(aty)) = (u16_at(attrs, off), u16_at(attrs, off + 2)) else {
            break;
        };
        let alen = usize::from(alen);
        if alen < 4 || off + alen > attrs.len() {
            break;
        }
        if aty & 0x3fff == IFLA_IFNAME {
            return DevName::from_attr(&attrs[off + 4..off + alen]);
        }
        off += align4(alen);
    }
    DevName::default()
}

/// An `ifaddrmsg` and its attributes: IPv4 uses `IFA_LOCAL` (the interface's own address;
/// `IFA_ADDRESS` is the peer's on point-to-point links), IPv6 `IFA_ADDRESS`.
fn parse_addr(body: &[u8], present: bool) -> Option<Event> {
    if body.len() < IFADDRMSG_LEN {
        return None;
    }
    let family = i32::from(body[0]);
    let ifindex = u32_at(body, 4)?;
    let mut local = None;
    let mut address = None;
    let mut off = IFADDRMSG_LEN;
    while off + 4 <= body.len() {
        let alen = usize::from(u16_at(body, off)?);
        let aty = u16_at(body, off + 2)? & 0x3fff;
        if alen < 4 || off + alen > body.len() {
            break;
        }
        let data = &body[off + 4..off + alen];
        let ip = match (family, data.len()) {
            (sys::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (sys::AF_INET6, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                Some(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => None,
        };
        match aty {
            IFA_LOCAL => local = local.or(ip),
            IFA_ADDRESS => address = address.or(ip),
            _ => {}
        }
        off += align4(alen);
    }
    let addr = if family == sys::AF_INET {
        local.or(address)
    } else {
        address.or(local)
    }?;
    Some(Event::Addr {
        ifindex,
        addr,
        present,
    })
}

/// What [`Netlink::read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// Every pending message was handled.
    Drained,
    /// The kernel dropped messages (ENOBUFS): re-read the uplinks' state.
    Overflow,
}

/// The subscribed rtnetlink socket.
pub struct Netlink {
    fd: OwnedFd,
    buf: Vec<u8>,
}

/// The socket's receive buffer: link storms (many VLANs flapping) must not overflow it often.
const RCVBUF: u32 = 1 << 20;

impl Netlink {
    pub fn open() -> Result<Netlink, String> {
        let groups = rtnl::RTMGRP_LINK | rtnl::RTMGRP_IPV4_IFADDR | rtnl::RTMGRP_IPV6_IFADDR;
        let fd = sys::netlink_route_socket(groups as u32, RCVBUF)
            .map_err(|e| format!("cannot open the rtnetlink socket: {e}"))?;
        Ok(Netlink {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read every pending datagram and call `f` for each event (at most 256 datagrams per call,
    /// so that a storm cannot starve the packet path; poll() reports the rest).
    pub fn read(&mut self, mut f: impl FnMut(Event)) -> ReadResult {
        for _ in 0..256 {
            match sys::recv(self.fd.as_raw_fd(), &mut self.buf) {
                Ok(0) => break,
                Ok(n) => parse(&self.buf[..n.min(self.buf.len())], &mut f),
                Err(e) if e.raw_os_error() == Some(sys::ENOBUFS) => return ReadResult::Overflow,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("rtnetlink receive: {e}");
                    break;
                }
            }
        }
        ReadResult::Drained
    }
}

/// Whether `operstate` text (`/sys/class/net/DEV/operstate`) means the link can carry traffic:
/// `up`, or `unknown` (devices without carrier reporting: ppp, tun, some modems).
pub fn operstate_up(text: &str) -> bool {
    matches!(text.trim(), "up" | "unknown")
}

/// The link state of `dev` now, from sysfs (false when the device is gone).
pub fn link_up_now(dev: &str) -> bool {
    if dev.contains('/') || dev.is_empty() || dev == "." || dev == ".." {
        return false;
    }
    let admin_up = std::fs::read_to_string(format!("/sys/class/net/{dev}/flags"))
        .ok()
        .and_then(|t| u32::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & rtnl::IFF_UP as u32 != 0);
    admin_up
        && std::fs::read_to_string(format!("/sys/class/net/{dev}/operstate"))
            .is_ok_and(|t| operstate_up(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn ifinfo(index: u32, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8, 0, 1, 0]; // family, pad, type ARPHRD_ETHER
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&0xffff_ffffu32.to_ne_bytes()); // change
                                                            // an IFLA_IFNAME attribute, to be skipped
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&3u16.to_ne_bytes());
        b.extend_from_slice(b"up1\0");
        b
    }

    fn rta(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    fn ifaddr(family: u8, index: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![family, 24, 0, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        for a in attrs {
            b.extend_from_slice(a);
        }
        b
    }

    fn events(buf: &[u8]) -> Vec<Event> {
        let mut v = Vec::new();
        parse(buf, |e| v.push(e));
        v
    }

    const UP: u32 = (rtnl::IFF_UP | rtnl::IFF_RUNNING | rtnl::IFF_LOWER_UP) as u32;

    #[test]
    fn link_messages() {
        let mut buf = nlmsg(rtnl::RTM_NEWLINK, &ifinfo(5, UP));
        // NO-CARRIER: up but not running.
        buf.extend(nlmsg(rtnl::RTM_NEWLINK, &ifinfo(5, rtnl::IFF_UP as u32)));
        // admin down
        buf.extend(nlmsg(rtnl::RTM_NEWLINK, &ifinfo(6, 0)));
        buf.extend(nlmsg(rtnl::RTM_DELLINK, &ifinfo(7, UP)));
        let got: Vec<(u32, bool)> = events(&buf)
            .into_iter()
            .map(|e| match e {
                Event::Link { ifindex, up, name } => {
                    assert!(name.is("up1") && !name.is("up") && !name.is("up12"));
                    (ifindex, up)
                }
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(got, vec![(5, true), (5, false), (6, false), (7, false)]);
        // Without IFLA_IFNAME: no name.
        let mut bare = ifinfo(8, UP);
        bare.truncate(IFINFOMSG_LEN);
        match events(&nlmsg(rtnl::RTM_NEWLINK, &bare))[..] {
            [Event::Link { name, .. }] => assert!(!name.is("up1") && !name.is("")),
            ref e => panic!("{e:?}"),
        }
    }

    #[test]
    fn address_messages() {
        let v4 = ifaddr(
            sys::AF_INET as u8,
            5,
            &[
                rta(IFA_ADDRESS, &[10, 0, 0, 1]),
                rta(IFA_LOCAL, &[100, 64, 1, 2]),
            ],
        );
        let mut a6 = [0u8; 16];
        a6[0] = 0xfd;
        a6[15] = 2;
        let v6 = ifaddr(sys::AF_INET6 as u8, 6, &[rta(IFA_ADDRESS, &a6)]);
        let mut buf = nlmsg(rtnl::RTM_NEWADDR, &v4);
        buf.extend(nlmsg(rtnl::RTM_DELADDR, &v6));
        assert_eq!(
            events(&buf),
            vec![
                Event::Addr {
                    ifindex: 5,
                    addr: "100.64.1.2".parse().unwrap(),
                    present: true
                },
                Event::Addr {
                    ifindex: 6,
                    addr: "fd00::2".parse().unwrap(),
                    present: false
                },
            ]
        );
        // IPv4 without IFA_LOCAL: IFA_ADDRESS.
        let only = ifaddr(sys::AF_INET as u8, 5, &[rta(IFA_ADDRESS, &[192, 0, 2, 1])]);
        assert_eq!(
            events(&nlmsg(rtnl::RTM_NEWADDR, &only)),
            vec![Event::Addr {
                ifindex: 5,
                addr: "192.0.2.1".parse().unwrap(),
                present: true
            }]
        );
        // No address attribute: nothing.
        assert!(events(&nlmsg(rtnl::RTM_NEWADDR, &ifaddr(2, 5, &[]))).is_empty());
    }

    #[test]
    fn other_and_broken_messages() {
        let mut buf = nlmsg(rtnl::NLMSG_DONE as u16, &[0; 4]);
        buf.extend(nlmsg(24, &[0; 12])); // RTM_NEWROUTE: skipped
        buf.extend(nlmsg(rtnl::RTM_NEWLINK, &ifinfo(9, UP)));
        assert_eq!(events(&buf).len(), 1);
        // Truncations of every length never panic and never invent events.
        let full = nlmsg(rtnl::RTM_NEWLINK, &ifinfo(9, UP));
        for n in 0..full.len() {
            assert!(events(&full[..n]).is_empty(), "{n}");
        }
        // A length field below the header, or beyond the buffer.
        let mut bad = full.clone();
        bad[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(events(&bad).is_empty());
        bad[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(events(&bad).is_empty());
        // A short ifinfomsg, a broken attribute.
        assert!(events(&nlmsg(rtnl::RTM_NEWLINK, &[0; 8])).is_empty());
        let mut attr = rta(IFA_LOCAL, &[1, 2, 3, 4]);
        attr[0] = 200;
        assert!(events(&nlmsg(rtnl::RTM_NEWADDR, &ifaddr(2, 1, &[attr]))).is_empty());
        // Random bytes.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut b = vec![0u8; (x % 200) as usize];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *v = x as u8;
            }
            if b.len() >= 4 {
                let l = (x as usize % (b.len() + 1)) as u32;
                b[..4].copy_from_slice(&l.to_ne_bytes());
            }
            parse(&b, |_| {});
        }
    }

    #[test]
    fn operstates() {
        assert!(operstate_up("up\n"));
        assert!(operstate_up("unknown\n"));
        for s in [
            "down",
            "lowerlayerdown",
            "dormant",
            "notpresent",
            "testing",
            "",
        ] {
            assert!(!operstate_up(s), "{s}");
        }
        assert!(!link_up_now("../etc"));
        assert!(!link_up_now("no-such-dev0"));
    }
}
