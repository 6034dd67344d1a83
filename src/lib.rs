//! wgfw-hook as a library: the pure steps (read config, derive a plan, render) and the apply
//! step. The binary in `main.rs` wires the command line to `commands`; the fuzz targets in
//! `fuzz/` drive the readers and renderers directly. docs/ARCHITECTURE.md draws the map.
//!
//! The layers, from the edge in:
//!
//! - `config`: the command line, the settings file and the wg-quick config, read and validated.
//! - `plan`: what `up` will install for one interface, derived from config and host facts.
//! - `rules`: the rule model and our chains' names, the chains a plan gets, the iptables and
//!   nft renderers, and the readers of what they list back.
//! - `system`: programs, /proc, sockets and the records under /run/wgfw: all I/O.
//! - `backend`: the apply step per backend: read, apply all or nothing, undo, remove.
//! - `commands`: one file per command, wiring the layers.
//!
//! The nevers:
//!
//! - `config`, `plan` and `rules` never import `system`, `backend` or `commands`: they are
//!   pure, and unit-tested without root (`tests/layers.rs` holds them to it).
//! - `system` and `backend` never import `commands`.
//! - Only `main` uses `commands`, and no two modules import each other around a circle.

#![warn(unreachable_pub)]
// Output goes through `system::out`, which no closed pipe can interrupt (test code may print).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

pub mod commands;
pub mod config;
pub mod error;
pub mod plan;
pub mod rules;

pub(crate) mod backend;
pub(crate) mod system;

/// The few system readers that `main` and the integration tests call directly.
pub use system::host::{children_peak_rss_kib, peak_rss_kib};
pub use system::sys::keep_freed_memory;
pub use system::xtables;

/// What `out!`, `outln!` and `errln!` expand to (`system::out`).
#[doc(hidden)]
pub use system::out::{to_stderr, to_stdout};
