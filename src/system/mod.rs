//! Everything that touches the running system: programs run, /proc read and written, sockets
//! asked, records kept under /run/wgfw. The only layer below the commands that has effects.

pub(crate) mod cmd;
pub(crate) mod dir;
pub(crate) mod events;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod firewalld;
pub(crate) mod host;
pub(crate) mod netns;
pub(crate) mod networkd;
pub(crate) mod nftgen;
pub(crate) mod os;
pub(crate) mod out;
pub(crate) mod reliance;
pub(crate) mod sockdiag;
pub(crate) mod state;
pub(crate) mod sys;
pub(crate) mod sysctl;
pub(crate) mod uapi;
pub(crate) mod warm;
pub mod xtables;
