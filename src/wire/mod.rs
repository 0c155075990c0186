//! Wire formats: everything that touches packet bytes.
//!
//! Contract for the whole module (it parses packets from the Internet):
//! * never panics on any input bytes — every access is bounds-checked;
//! * no heap allocation on parse/emit paths;
//! * endian-independent (all multi-byte fields via `from_be_bytes`/`to_be_bytes`)
//!   and fine on 32-bit CPUs.
//!
//! Sub-modules:
//! * [`checksum`] — Internet ones' complement arithmetic (RFC 1071, RFC 1624);
//! * [`packet`] — zero-copy IPv4/IPv6 + TCP parse and a header writer;
//! * [`tcpopt`] — TCP option walk and option block builder (RFC 9293, 7323, 2018);
//! * [`mptcp`] — every RFC 8684 MPTCP option subtype, parse and emit;
//! * [`crypto`] — RFC 8684 key → token/IDSN and the HMACs;
//! * [`seq`] — 32-bit sequence arithmetic and 32→64-bit expansion.

pub mod checksum;
pub mod convert;
pub mod crypto;
pub mod mptcp;
pub mod packet;
pub mod seq;
pub mod tcpopt;

#[cfg(test)]
mod fuzz_tests;
