//! wgfw-hook as a library: the pure steps (read config, derive a plan, render) and the apply step.
//! The binary in `main.rs` only wires the command line to `commands`; the fuzz targets in `fuzz/`
//! drive the readers and renderers directly.

pub mod backend;
pub mod commands;
pub mod config;
pub mod error;
pub mod plan;
pub mod rules;
pub mod system;
