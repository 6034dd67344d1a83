//! The plan: what `up` will install, derived from the wg-quick config, the options and a few
//! facts about the host. Pure, all of it: the facts are gathered by `system::host`, the sysctls
//! are read and written by `system::sysctl`.

mod derive;
mod forwards;
pub mod ledger;
mod model;
mod peers;
pub mod reliance;
mod sysctl;

#[cfg(test)]
pub use derive::for_test;
pub use derive::{
    DEFAULT_HANDSHAKE_BURST, DEFAULT_HANDSHAKE_LIMIT, DEFAULT_SSH_PORT, FALLBACK_MTU, derive,
};
pub use model::{
    Family, FamilyPlan, Group, HostFacts, InputPolicy, Nat, PeerView, Plan, Purpose, Reach,
    UNIQUE_LOCAL,
};
