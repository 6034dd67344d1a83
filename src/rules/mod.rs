//! The firewall as data and as text: the rule model and the names of our chains, the chains a
//! plan gets, and the renderers that turn them into iptables-restore and nft scripts. Pure: a
//! plan goes in, text comes out; listings read back are parsed here too, but never fetched.

mod chains;
mod client;
pub mod foreign;
pub mod forwarding;
mod forwards;
mod groups;
pub mod iptables;
pub mod listing;
pub mod lockout;
pub mod model;
pub mod names;
mod nat64;
pub mod nft;
mod parts;
pub mod residue;
mod server;

pub use chains::{Member, desired, fresh, iface_chains, shared_chains};
pub use model::{COUNTED, Chain, Table};
pub use names::{ChainId, Kind};
pub use parts::{lan_ranges, local_ranges, nat64_local_ranges};

use std::fmt;
use std::str::FromStr;

use crate::plan::{Family, Plan};

use iptables::Variant;

/// The kernel interface an interface's rules are programmed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables(Variant),
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Iptables(v) => v.name(),
            Backend::Nft => "nft",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "nft" => Ok(Backend::Nft),
            s => Variant::parse(s)
                .map(Backend::Iptables)
                .ok_or_else(|| format!("\"{s}\" is not a backend")),
        }
    }
}

/// The rules of the interface's chain `name`, as iptables-restore writes them: what tests
/// compare.
#[cfg(test)]
pub(crate) fn chain_text(plan: &Plan, fp: &crate::plan::FamilyPlan, name: &str) -> Vec<String> {
    let chains = iface_chains(plan, fp);
    let chain = chains.iter().find(|c| c.id.to_string() == name);
    let chain = chain.unwrap_or_else(|| panic!("no chain {name}"));
    chain
        .rules
        .iter()
        .map(|r| iptables::render_rule(r, fp.family))
        .collect()
}

/// What `plan` shows: the scripts `up` would run on a host where nothing of ours is installed.
pub fn show(backend: Backend, plan: &Plan) -> String {
    match backend {
        Backend::Iptables(v) => plan
            .families
            .iter()
            .map(|fp| {
                format!(
                    "[#] {} --noflush <<'EOF'\n{}EOF\n",
                    v.restore(fp.family),
                    iptables::render_fresh(plan, fp)
                )
            })
            .collect(),
        Backend::Nft => {
            let want: Vec<(Family, Chain)> = plan
                .families
                .iter()
                .flat_map(|fp| fresh(plan, fp).into_iter().map(|c| (fp.family, c)))
                .collect();
            let script = nft::transaction(&want, &[], &nft::Live::default()).unwrap_or_default();
            format!("[#] nft -f - <<'EOF'\n{script}EOF\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_by_name() {
        for name in ["nft", "iptables-nft", "iptables-legacy"] {
            let b: Backend = name.parse().unwrap();
            assert_eq!(b.name(), name);
            assert_eq!(b.to_string(), name);
        }
        assert!("pf".parse::<Backend>().is_err());
    }
}
