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

use crate::config::types::{IfaceName, Role};
use crate::plan::{Family, Plan};

use super::Table;
use super::iptables::{Live, Variant};
use super::listing::Listing;
use super::names::is_ufw_chain;
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

/// The accepts `plan` needs in other managers' chains, per place, as rule text of that place's
/// own syntax (without the mark, which `apply` adds).
pub fn needed(plan: &Plan, view: &View) -> BTreeMap<Place, Vec<String>> {
    let i = &plan.iface;
    let mut out: BTreeMap<Place, Vec<String>> = BTreeMap::new();
    let input_needs = |ipt: bool| -> Vec<String> {
        if plan.role != Role::Server {
            return Vec::new();
        }
        let mut r = vec![if ipt {
            format!("-i {i}")
        } else {
            format!("iifname \"{i}\"")
        }];
        if let Some(p) = plan.port {
            r.push(if ipt {
                format!("-p udp -m udp --dport {p}")
            } else {
                format!("udp dport {p}")
            });
        }
        for s in &plan.allow {
            let proto = s.proto.as_str();
            let ports = if s.first == s.last {
                s.first.to_string()
            } else {
                format!("{}:{}", s.first, s.last)
            };
            r.push(if ipt {
                format!("-p {proto} -m {proto} --dport {ports}")
            } else {
                format!("{proto} dport {}", ports.replace(':', "-"))
            });
        }
        r
    };
    for (v, family, live) in &view.iptables {
        if !plan.families.iter().any(|f| f.family == *family) {
            continue;
        }
        let policy = |chain: &str| {
            live.policies
                .get(&(Table::Filter, chain.to_string()))
                .map(String::as_str)
        };
        let ufw = live.chains.iter().any(|(_, c)| is_ufw_chain(c));
        if policy("FORWARD").is_some_and(|p| p != "ACCEPT") || ufw {
            let place = Place::Iptables {
                variant: *v,
                family: *family,
                chain: "FORWARD".into(),
            };
            out.insert(place, vec![format!("-i {i}"), format!("-o {i}")]);
        }
        if policy("INPUT").is_some_and(|p| p != "ACCEPT") || ufw {
            let needs = input_needs(true);
            if !needs.is_empty() {
                out.insert(
                    Place::Iptables {
                        variant: *v,
                        family: *family,
                        chain: "INPUT".into(),
                    },
                    needs,
                );
            }
        }
    }
    for (table, chain, hook) in nft_drops(&view.nft_overview) {
        let rules = match hook {
            "forward" => vec![format!("iifname \"{i}\""), format!("oifname \"{i}\"")],
            _ => input_needs(false),
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
        assert_eq!(n[&fwd], vec!["-i wg0", "-o wg0"]);
        assert_eq!(n.len(), 1, "input is Docker's to leave alone");
        let ufw = iptables_view(
            Variant::Legacy,
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:ufw-user-input - [0:0]\nCOMMIT\n",
        );
        let n = needed(&server_plan(), &ufw);
        let input = iptables_place(Variant::Legacy, "INPUT");
        assert_eq!(
            n[&input],
            vec![
                "-i wg0",
                "-p udp -m udp --dport 51820",
                "-p tcp -m tcp --dport 443"
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
        assert_eq!(
            n[&input],
            vec!["iifname \"wg0\"", "udp dport 51820", "tcp dport 443"]
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
