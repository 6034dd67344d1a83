//! The edge: what the user gives (command line, settings file, wg-quick config), read and
//! validated into typed values. Nothing here looks at the running system but the files it is
//! told to read.

pub mod cli;
pub mod flags;
pub mod fnmatch;
pub mod forward;
pub mod limits;
pub mod networkd;
pub mod options;
pub mod peers;
pub mod quote;
pub mod settings;
pub mod trust;
pub mod types;
pub mod wgconf;
