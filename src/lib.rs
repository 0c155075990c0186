//! mpconv: a lightweight TCP⇄MPTCP (RFC 8684 v1) converter for home routers.
//!
//! Layers, with one dependency direction: [`wire`] ← [`engine`] ← `io` (daemon feature) ← main.
//! [`config`] turns UCI text into typed configuration and depends on nothing else here.

#[cfg(feature = "daemon")]
pub mod concentrator;
pub mod config;
pub mod engine;
pub mod health;
#[cfg(feature = "daemon")]
pub mod io;
pub mod wire;
