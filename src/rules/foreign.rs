//! Other firewall managers' drops that our own chains cannot override. An accept in one table
//! is not final for another: a packet that our table accepts is still dropped by Docker's
//! FORWARD policy in iptables' own table, or by firewalld's reject in its nftables table. Where
//! such a drop would block the tunnel, the hook adds accepts of its own there, first in that
//! chain and marked `wgfw:IFACE`, and takes them away again on `down`. They accept only the
//! tunnel's traffic, which our own table still judges: its drops are final everywhere.
//!
//! The manager's own tools keep reading their tables: iptables rules stay plain iptables
//! (written with that flavour's restore), firewalld's get plain nft rules. Pure: which accepts
//! go where; `backend::foreign` reads the other managers' tables and puts the accepts in.

use std::collections::BTreeMap;

use crate::config::types::{IfaceName, Proto, Role};
use crate::plan::{Family, Plan};

use super::Table;
use super::iptables::{self, Live, Variant};
use super::listing::Listing;
use super::model::{Match, Ports, Rule, Verdict, rule};
use super::names::is_ufw_chain;
use super::nft;
use super::nft::TABLE;

/// Where an accept goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// A built-in chain of an iptables flavour's filter table that we do not program.
    Iptables {
        variant: Variant,
        family: Family,
        chain: String,
    },
    /// A chain of a native nftables table of another manager (firewalld's).
    Nft { table: String, chain: String },
}

impl Place {
    pub fn encode(&self) -> String {
        match self {
            Place::Iptables {
                variant,
                family,
                chain,
            } => {
                let f = match family {
                    Family::V4 => "4",
                    Family::V6 => "6",
                };
                format!("iptables\t{}\t{f}\t{chain}", variant.name())
            }
            Place::Nft { table, chain } => format!("nft\t{table}\t{chain}"),
        }
    }

    pub fn decode(line: &str) -> Option<Place> {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["iptables", v, fam, chain] => Some(Place::Iptables {
                variant: Variant::parse(v)?,
                family: if *fam == "6" { Family::V6 } else { Family::V4 },
                chain: chain.to_string(),
            }),
            ["nft", table, chain] => Some(Place::Nft {
                table: table.to_string(),
                chain: chain.to_string(),
            }),
            _ => None,
        }
    }

    /// A rule as this place's own tools write it: iptables rules stay plain iptables,
    /// firewalld's get plain nft rules.
    pub fn render(&self, rule: &Rule) -> String {
        match self {
            Place::Iptables { family, .. } => iptables::render_rule(rule, *family),
            // The accepts match no address: the same in any family's table.
            Place::Nft { .. } => nft::render_rule(rule, Family::V4),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Place::Iptables {
                variant,
                family,
                chain,
            } => format!("{} {family} {chain}", variant.name()),
            Place::Nft { table, chain } => format!("nft {table} {chain}"),
        }
    }
}

/// What the other managers have, read before a change.
#[derive(Debug, Default)]
pub struct View {
    pub iptables: Vec<(Variant, Family, Live)>,
    /// `nft list chains` (tables, chains, base chains' hooks and policies).
    pub nft_overview: Listing,
}

pub fn mark(iface: &IfaceName) -> String {
    format!("wgfw:{iface}")
}

/// The accepts `plan` needs in other managers' chains, per place, in the rule model and
/// marked `wgfw:IFACE`: each place renders them in its own syntax (`Place::render`).
pub fn needed(plan: &Plan, view: &View) -> BTreeMap<Place, Vec<Rule>> {
    let i = &plan.iface;
    let accept = |m: Match| Rule {
        mark: Some(mark(i)),
        ..rule(vec![m], Verdict::Accept)
    };
    let dport = |proto, first: u16, last: u16| Match::L4 {
        proto,
        sport: None,
        dport: Some(Ports(first, last)),
        syn: false,
    };
    let forward = || {
        vec![
            accept(Match::In(i.to_string())),
            accept(Match::Out(i.to_string())),
        ]
    };
    // The WireGuard port, traffic from the tunnel and the `--allow` services; a client's kill
    // switch takes nothing in.
    let input = || -> Vec<Rule> {
        if plan.role != Role::Server {
            return Vec::new();
        }
        let mut r = vec![accept(Match::In(i.to_string()))];
        r.extend(
            plan.port
                .map(|p| accept(dport(Proto::Udp, p.get(), p.get()))),
        );
        r.extend(
            plan.allow
                .iter()
                .map(|s| accept(dport(s.proto, s.first.get(), s.last.get()))),
        );
        r
    };
    let mut out: BTreeMap<Place, Vec<Rule>> = BTreeMap::new();
    for (v, family, live) in &view.iptables {
        if !plan.families.iter().any(|f| f.family == *family) {
            continue;
        }
        let place = |chain: &str| Place::Iptables {
            variant: *v,
            family: *family,
            chain: chain.into(),
        };
        let drops = |chain: &str| {
            live.policies
                .get(&(Table::Filter, chain.to_string()))
                .is_some_and(|p| p != "ACCEPT")
        };
        let ufw = live.chains.iter().any(|(_, c)| is_ufw_chain(c));
        if drops("FORWARD") || ufw {
            out.insert(place("FORWARD"), forward());
        }
        if (drops("INPUT") || ufw) && plan.role == Role::Server {
            out.insert(place("INPUT"), input());
        }
    }
    for (table, chain, hook) in nft_drops(&view.nft_overview) {
        let rules = match hook {
            "forward" => forward(),
            _ => input(),
        };
        if !rules.is_empty() {
            out.insert(Place::Nft { table, chain }, rules);
        }
    }
    out
}

/// Tables iptables-nft manages: their drops are handled as iptables rules.
pub const IPTABLES_TABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

/// Native nftables chains that would drop the tunnel's traffic: firewalld's input and forward
/// chains (they end in a reject), and any other table's input or forward base chain whose
/// policy is drop. Returns (table, chain, hook) with hook "input" or "forward".
fn nft_drops(ruleset: &Listing) -> Vec<(String, String, &'static str)> {
    let mut found = Vec::new();
    for t in &ruleset.tables {
        let id = t.id();
        let iptables =
            (t.family == "ip" || t.family == "ip6") && IPTABLES_TABLES.contains(&t.name.as_str());
        for c in &t.chains {
            let hook = if id == "inet firewalld" {
                match c.name.as_str() {
                    "filter_INPUT" => Some("input"),
                    "filter_FORWARD" => Some("forward"),
                    _ => None,
                }
            } else if id == TABLE || iptables {
                None
            } else {
                let drops = c.base.as_ref().is_some_and(|b| {
                    b.decl.starts_with("type filter hook") && b.policy.as_deref() == Some("drop")
                });
                match c.hook() {
                    Some("input") if drops => Some("input"),
                    Some("forward") if drops => Some("forward"),
                    _ => None,
                }
            };
            if let Some(hook) = hook {
                found.push((id.clone(), c.name.clone(), hook));
            }
        }
    }
    found
}

pub fn encode(places: &[Place]) -> String {
    places.iter().map(|p| p.encode() + "\n").collect()
}

pub fn decode(text: &str) -> Vec<Place> {
    text.lines().filter_map(Place::decode).collect()
}

/// The handles of the rules of a chain listing (`nft -a`) that carry our mark.
pub fn handles_marked(listing: &Listing, mark: &str) -> Vec<u64> {
    let needle = format!("comment \"{mark}\"");
    listing
        .tables
        .iter()
        .flat_map(|t| &t.chains)
        .flat_map(|c| &c.rules)
        .filter(|r| r.text.contains(&needle))
        .filter_map(|r| r.handle)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::HostFacts;

    fn server_plan() -> Plan {
        let opts = crate::config::cli::Options {
            allow: vec!["tcp/443".parse().unwrap()],
            ..Default::default()
        };
        let conf = "[Interface]\nAddress = 10.6.0.1/24\nListenPort = 51820\n";
        crate::plan::for_test(conf, &opts, &HostFacts::example()).unwrap()
    }

    /// What the other managers have: one iptables flavour's family, or native tables.
    fn iptables_view(variant: Variant, save: &str) -> View {
        View {
            iptables: vec![(variant, Family::V4, Live::parse(save))],
            nft_overview: Listing::default(),
        }
    }

    fn nft_view(listing: &str) -> View {
        View {
            iptables: vec![],
            nft_overview: Listing::parse(listing),
        }
    }

    /// The accepts of a place, as that place writes them.
    fn rendered(n: &BTreeMap<Place, Vec<Rule>>, place: &Place) -> Vec<String> {
        n[place].iter().map(|r| place.render(r)).collect()
    }

    fn iptables_place(variant: Variant, chain: &str) -> Place {
        Place::Iptables {
            variant,
            family: Family::V4,
            chain: chain.into(),
        }
    }

    #[test]
    fn dockers_forward_drop_and_ufws_input_get_accepts() {
        let docker = iptables_view(
            Variant::Nft,
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n",
        );
        let n = needed(&server_plan(), &docker);
        let fwd = iptables_place(Variant::Nft, "FORWARD");
        let m = "-m comment --comment \"wgfw:wg0\" -j ACCEPT";
        assert_eq!(
            rendered(&n, &fwd),
            [format!("-i wg0 {m}"), format!("-o wg0 {m}")]
        );
        assert_eq!(n.len(), 1, "input is Docker's to leave alone");
        let ufw = iptables_view(
            Variant::Legacy,
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:ufw-user-input - [0:0]\nCOMMIT\n",
        );
        let n = needed(&server_plan(), &ufw);
        let input = iptables_place(Variant::Legacy, "INPUT");
        assert_eq!(
            rendered(&n, &input),
            [
                format!("-i wg0 {m}"),
                format!("-p udp -m udp --dport 51820 {m}"),
                format!("-p tcp -m tcp --dport 443 {m}")
            ]
        );
    }

    #[test]
    fn firewalld_gets_native_accepts() {
        let ruleset = "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n\tchain filter_FORWARD {\n\t}\n}\n";
        let n = needed(&server_plan(), &nft_view(ruleset));
        let input = Place::Nft {
            table: "inet firewalld".into(),
            chain: "filter_INPUT".into(),
        };
        let m = "accept comment \"wgfw:wg0\"";
        assert_eq!(
            rendered(&n, &input),
            [
                format!("iifname \"wg0\" {m}"),
                format!("udp dport 51820 {m}"),
                format!("tcp dport 443 {m}")
            ]
        );
        assert_eq!(n.len(), 2);
        assert!(needed(&server_plan(), &View::default()).is_empty());
        // Anyone's native base chain that drops by default, but not iptables-nft's own tables.
        let own = "table inet filter {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n\
                   table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n";
        let n = needed(&server_plan(), &nft_view(own));
        assert_eq!(
            n.keys().collect::<Vec<_>>(),
            vec![&Place::Nft {
                table: "inet filter".into(),
                chain: "forward".into()
            }]
        );
    }

    #[test]
    fn records_round_trip_and_handles_are_found() {
        let places = vec![
            Place::Iptables {
                variant: Variant::Legacy,
                family: Family::V6,
                chain: "FORWARD".into(),
            },
            Place::Nft {
                table: "inet firewalld".into(),
                chain: "filter_INPUT".into(),
            },
        ];
        assert_eq!(decode(&encode(&places)), places);
        let listing = "table inet firewalld { # handle 9\n\tchain filter_INPUT { # handle 3\n\
                       \t\tiifname \"wg0\" accept comment \"wgfw:wg0\" # handle 7\n\t\treject # handle 2\n\t}\n}\n";
        assert_eq!(
            handles_marked(&Listing::parse(listing), "wgfw:wg0"),
            vec![7]
        );
    }
}
