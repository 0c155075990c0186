//! The daemon's I/O (feature `daemon`): the only code that makes syscalls or runs programs.
//!
//! - [`sys`]: the `unsafe` libc wrappers (raw sockets, socket options, poll, signals, clock);
//! - [`net`]: devices → ifindex, addresses, gateways, MTU;
//! - [`netifd`]: an uplink's `interface` → device, addresses, gateways (`ubus call`);
//! - [`routes`]: policy routing per uplink (mark → table → default route);
//! - [`firewall`]: iptables or nftables rules (NFQUEUE in, notrack out);
//! - [`netlink`]: link and address events (rtnetlink) for the uplinks' health;
//! - [`probe`]: health probes (ICMP, TCP, DNS) out of each uplink;
//! - [`control`]: the control socket and its `status` and `handover` replies;
//! - [`daemon`]: [`run`], the NFQUEUE packet loop around the engine.

pub mod cmd;
pub mod control;
pub mod daemon;
pub mod firewall;
pub mod net;
pub mod netifd;
pub mod netlink;
pub mod probe;
pub mod routes;
pub mod sys;

pub use daemon::run;
