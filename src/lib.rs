//! wgfw-hook as a library: the pure steps (read config, derive a plan, render) and the apply step.
//! The binary in `main.rs` only wires the command line to `hook`; the fuzz targets in `fuzz/`
//! drive the readers and renderers directly.

pub mod cli;
pub mod cmd;
pub mod error;
pub mod firewall;
pub mod foreign;
pub mod hook;
pub mod host;
pub mod iptables;
pub mod lockout;
pub mod nft;
pub mod plan;
pub mod report;
pub mod residue;
pub mod ruleset;
pub mod settings;
pub mod sockdiag;
pub mod state;
pub mod sys;
pub mod sysctl;
pub mod trust;
pub mod types;
pub mod wgconf;
pub mod xtables;

#[cfg(test)]
mod golden;
