//! Everything that touches the running system: programs run, /proc read and written, sockets
//! asked, records kept under /run/wgfw. The only layer below the commands that has effects.

pub mod cmd;
pub mod host;
pub mod sockdiag;
pub mod state;
pub mod sys;
pub mod sysctl;
pub mod xtables;
