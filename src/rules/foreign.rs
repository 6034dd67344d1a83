//! Other firewall managers' drops that our own chains cannot override. An accept in one table
//! is not final for another: a packet that our table accepts is still dropped by Docker's
//! FORWARD policy in iptables' own table, by firewalld's reject in its nftables table, or (host
//! input being judged in mangle) by ufw's default deny in filter INPUT. Where such a default
//! deny would block the tunnel, the hook adds accepts of its own there, marked `wgfw:IFACE`,
//! and takes them away again on `down`. They accept only the tunnel's traffic, which our own
//! table still judges: its drops are final everywhere.
//!
//! They go right before the default deny (`anchor`), after every other rule of the chain: a
//! fail2ban ban, an admin's blocklist or ufw's `deny from` come first and still hold, whoever
//! put them there first. Only the deny that ends the chain (its policy, an unconditional drop
//! or reject, the logging of what it drops) comes after them.
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
    /// The iptables flavour our own chains are in, if any: there our own FORWARD chain decides
    /// first, and only filter INPUT (host input being judged in mangle) may need accepts.
    pub own: Option<Variant>,
    /// `nft list chains` (tables, chains, base chains' hooks and policies).
    pub nft_overview: Listing,
    /// firewalld runs and answers on D-Bus (its default zone): nothing goes into its table,
    /// which firewalld 2.x refuses to others and drops at every reload. A server's tunnel is
    /// let in through its API (`firewalld_wish`); what a client forwards is firewalld's to
    /// allow (`firewalld_forward_note`).
    pub firewalld_api: Option<String>,
}

/// firewalld's table, as nft names it.
pub const FIREWALLD_TABLE: &str = "inet firewalld";

/// The table firewalld holds only while it reloads (everything but established traffic
/// dropped) and in panic mode (everything dropped): its drops are firewalld's on purpose, and
/// it is gone again within the reload. Nothing of ours goes there: an accept would open a
/// panicking host, and one added during a reload fails when the table goes under it.
pub const FIREWALLD_POLICY_TABLE: &str = "inet firewalld_policy_drop";

/// The zone a server's tunnel interface is put in: its ingress accepted, to this host and
/// forwarded (but not new connections from other zones to the peers). Our own table still
/// judges that traffic, and its drops are final.
pub const TUNNEL_ZONE: &str = "trusted";

/// What a server's tunnel asks of firewalld through its API: the interface in `TUNNEL_ZONE`,
/// and the WireGuard port and the `--allow` services open in the WAN's zone (ports as
/// firewalld writes them: `51820`, `8000-8100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneWish {
    pub iface: IfaceName,
    pub wan: Option<IfaceName>,
    pub ports: Vec<(String, Proto)>,
}

pub fn firewalld_wish(plan: &Plan, view: &View) -> Option<ZoneWish> {
    if view.firewalld_api.is_none() || plan.role != Role::Server {
        return None;
    }
    let text = |first: u16, last: u16| {
        if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        }
    };
    let mut ports: Vec<(String, Proto)> = plan
        .port
        .map(|p| (text(p.get(), p.get()), Proto::Udp))
        .into_iter()
        .collect();
    ports.extend(
        plan.allow
            .iter()
            .map(|s| (text(s.first.get(), s.last.get()), s.proto)),
    );
    Some(ZoneWish {
        iface: plan.iface.clone(),
        wan: plan.families.iter().find_map(|f| f.wan.clone()),
        ports,
    })
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
                || live
                    .rules_of(Table::Filter, chain)
                    .last()
                    .is_some_and(|r| ends_in_deny(r))
        };
        let ufw = live.chains.iter().any(|(_, c)| is_ufw_chain(c));
        if (drops("FORWARD") || ufw) && view.own != Some(*v) {
            out.insert(place("FORWARD"), forward());
        }
        if (drops("INPUT") || ufw) && plan.role == Role::Server {
            out.insert(place("INPUT"), input());
        }
    }
    for (table, chain, hook) in nft_drops(&view.nft_overview) {
        // Where firewalld answers, its table is its own: a server goes through its API, and a
        // client's kill switch needs nothing there (what it forwards is firewalld's to allow).
        if table == FIREWALLD_TABLE && view.firewalld_api.is_some() {
            continue;
        }
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

/// Why `up` cannot put `wanted` in place, before it changes anything: firewalld 2.x owns its
/// table (`flags owner`, NftablesTableOwner=yes), so the kernel refuses our accepts there, and
/// its API, the way in, did not answer.
pub fn refusal(wanted: &BTreeMap<Place, Vec<Rule>>, view: &View) -> Option<String> {
    let owned = view
        .nft_overview
        .table(FIREWALLD_TABLE)
        .is_some_and(|t| t.has_flag("owner"));
    let into_it = wanted
        .keys()
        .any(|p| matches!(p, Place::Nft { table, .. } if table == FIREWALLD_TABLE));
    (owned && into_it && view.firewalld_api.is_none()).then(|| {
        "firewalld owns its nftables table (flags owner, NftablesTableOwner=yes), so nobody else may add rules to it, and its D-Bus API did not answer: start firewalld (systemctl start firewalld), or make the system bus reachable (DBUS_SYSTEM_BUS_ADDRESS)".to_string()
    })
}

/// A client where firewalld answers: firewalld decides what is forwarded into the tunnel
/// (a LAN behind a router), and only a permanent policy can allow it (`--new-policy` has no
/// runtime form), which is the operator's to make. `forwarding`: whether the host forwards
/// IPv4 or IPv6 (`None`: not known); a host that does not forwards nothing into the tunnel.
pub fn firewalld_forward_note(
    plan: &Plan,
    view: &View,
    forwarding: Option<bool>,
) -> Option<String> {
    let default_zone = view.firewalld_api.as_deref()?;
    if plan.role != Role::Client || forwarding == Some(false) {
        return None;
    }
    let i = &plan.iface;
    let policy = policy_name(i);
    let fc = |args: &str| format!("firewall-cmd --permanent {args}");
    let steps = [
        fc(&format!("--new-policy {policy}")),
        fc(&format!("--policy {policy} --add-ingress-zone LAN_ZONE")),
        fc(&format!(
            "--policy {policy} --add-egress-zone {default_zone}"
        )),
        fc(&format!("--policy {policy} --set-target ACCEPT")),
        "firewall-cmd --reload".to_string(),
    ];
    Some(format!(
        "firewalld decides what this host forwards into {i} (up writes nothing into its table): if a LAN is to use the tunnel through this host, allow it once with a permanent firewalld policy: {} (LAN_ZONE: the zone of the LAN's interface, firewall-cmd --get-zone-of-interface=IFACE; {default_zone}: the zone of {i}, the default zone unless {i} is put in another)",
        steps.join(" && ")
    ))
}

/// A firewalld policy's name for the tunnel: letters, digits, `-` and `_` only, and at most 17
/// characters (firewalld's limit before 2.4).
fn policy_name(iface: &IfaceName) -> String {
    const LONGEST: usize = 17;
    let plain: String = iface
        .as_str()
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    let name = format!("wgfw-lan-{plain}");
    if name.len() <= LONGEST {
        return name;
    }
    format!("wgfw-{plain}").chars().take(LONGEST).collect()
}

/// Tables iptables-nft manages: their drops are handled as iptables rules.
pub const IPTABLES_TABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

/// Native nftables chains that would drop the tunnel's traffic: firewalld's (its zones end in
/// a reject), and any other table's input or forward base chain whose policy is drop. Returns
/// (table, chain, hook) with hook "input" or "forward".
///
/// firewalld's base chains hand every packet to its zone's chain with a `goto`, which ends in
/// the zone's reject and never comes back: what follows the dispatch is never reached. Each
/// zone's chain jumps to `filter_INPUT_POLICIES_post` (`filter_FORWARD_POLICIES_post`) right
/// before that reject, after the zone's own deny and allow rules (a fail2ban ban made with
/// firewalld's rich rules among them): our accepts go there. firewalld before 0.9 has no
/// policy chains; there they stay in the base chain, as before.
fn nft_drops(ruleset: &Listing) -> Vec<(String, String, &'static str)> {
    let mut found = Vec::new();
    for t in &ruleset.tables {
        let id = t.id();
        let iptables =
            (t.family == "ip" || t.family == "ip6") && IPTABLES_TABLES.contains(&t.name.as_str());
        let has = |name: &str| t.chains.iter().any(|c| c.name == name);
        for c in &t.chains {
            let hook = if id == FIREWALLD_TABLE {
                let policies = |hook| has(&format!("filter_{}_POLICIES_post", hook_chain(hook)));
                match c.name.as_str() {
                    "filter_INPUT_POLICIES_post" => Some("input"),
                    "filter_FORWARD_POLICIES_post" => Some("forward"),
                    "filter_INPUT" if !policies("input") => Some("input"),
                    "filter_FORWARD" if !policies("forward") => Some("forward"),
                    _ => None,
                }
            } else if id == TABLE || id == FIREWALLD_POLICY_TABLE || iptables {
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

/// firewalld's name for a hook in its chains' names.
fn hook_chain(hook: &str) -> &'static str {
    if hook == "forward" {
        "FORWARD"
    } else {
        "INPUT"
    }
}

/// What a rule of a chain is to our accepts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// One of our accepts.
    Ours,
    /// Part of the default deny that ends the chain.
    Tail,
    /// Anything else: it comes before our accepts.
    Other,
}

/// Where our accepts go in a chain of these parts: the index, among the rules that are not
/// ours, of the first rule of the default deny that ends the chain (its length where the
/// policy is the deny).
pub fn anchor(parts: &[Part]) -> usize {
    let others: Vec<Part> = parts.iter().copied().filter(|p| *p != Part::Ours).collect();
    let tail = others
        .iter()
        .rev()
        .take_while(|p| **p == Part::Tail)
        .count();
    others.len() - tail
}

/// Whether our accepts stand together where `anchor` puts them.
pub fn in_place(parts: &[Part]) -> bool {
    let Some(first) = parts.iter().position(|p| *p == Part::Ours) else {
        return true;
    };
    let ours = parts.iter().filter(|p| **p == Part::Ours).count();
    parts[first..first + ours].iter().all(|p| *p == Part::Ours) && first == anchor(parts)
}

/// A rule of an iptables built-in chain, as `-save` prints it after `-A CHAIN `.
pub fn iptables_part(rule: &str, mark: &str) -> Part {
    if rule.contains(&format!("--comment \"{mark}\"")) {
        return Part::Ours;
    }
    let log = rule
        .split_once("-j LOG")
        .is_some_and(|(cond, _)| cond.is_empty() || cond.starts_with("-m limit "));
    if ends_in_deny(rule) || log || ufw_tail(rule.strip_prefix("-j ")) {
        Part::Tail
    } else {
        Part::Other
    }
}

/// Whether an iptables rule drops or rejects whatever reaches it.
fn ends_in_deny(rule: &str) -> bool {
    rule == "-j DROP" || rule == "-j REJECT" || rule.starts_with("-j REJECT --reject-with ")
}

/// ufw's chains that end its built-in chains: the logging of what it blocks, its rejects, its
/// tracking.
fn ufw_tail(jump: Option<&str>) -> bool {
    jump.and_then(|c| c.strip_prefix("ufw6-").or_else(|| c.strip_prefix("ufw-")))
        .is_some_and(|c| {
            ["after-logging-", "reject-", "track-"]
                .iter()
                .any(|p| c.starts_with(p))
        })
}

/// A rule of a native nftables chain, as `nft list` prints it.
pub fn nft_part(rule: &str, mark: &str) -> Part {
    if rule.contains(&format!("comment \"{mark}\"")) {
        return Part::Ours;
    }
    // Counters say nothing of what a rule does.
    let words: Vec<&str> = rule.split_whitespace().collect();
    let mut plain = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "counter" && words.get(i + 1) == Some(&"packets") {
            i += 5;
        } else if words[i] == "counter" {
            i += 1;
        } else {
            plain.push(words[i]);
            i += 1;
        }
    }
    // A verdict comes last: a rule that starts with one matches everything.
    let deny = matches!(plain.first(), Some(&"drop") | Some(&"reject"));
    let limit_words = if plain.first() == Some(&"limit") {
        plain
            .iter()
            .position(|w| *w == "packets")
            .map_or(0, |p| p + 1)
    } else {
        0
    };
    let log = plain.get(limit_words) == Some(&"log");
    let ufw = plain.len() == 2 && plain[0] == "jump" && ufw_tail(Some(plain[1]));
    if deny || log || ufw {
        Part::Tail
    } else {
        Part::Other
    }
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
            own: None,
            firewalld_api: None,
        }
    }

    fn nft_view(listing: &str) -> View {
        View {
            iptables: vec![],
            nft_overview: Listing::parse(listing),
            own: None,
            firewalld_api: None,
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
        // firewalld 0.9 and later: in the chains every zone jumps to before its reject.
        let with_policies = "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n\tchain filter_FORWARD {\n\t}\n\
                             \tchain filter_INPUT_POLICIES_post {\n\t}\n\tchain filter_FORWARD_POLICIES_post {\n\t}\n}\n";
        let n = needed(&server_plan(), &nft_view(with_policies));
        let chains: Vec<&str> = n
            .keys()
            .map(|p| match p {
                Place::Nft { chain, .. } => chain.as_str(),
                Place::Iptables { .. } => "",
            })
            .collect();
        assert_eq!(
            chains,
            ["filter_FORWARD_POLICIES_post", "filter_INPUT_POLICIES_post"]
        );
        assert!(needed(&server_plan(), &View::default()).is_empty());
        // firewalld's reload and panic guard is left alone, with or without its API.
        let reloading = format!(
            "{with_policies}table inet firewalld_policy_drop {{\n\tchain filter_input {{\n\t\ttype filter hook input priority filter + 9; policy drop;\n\t}}\n\tchain filter_forward {{\n\t\ttype filter hook forward priority filter + 9; policy drop;\n\t}}\n}}\n"
        );
        assert_eq!(needed(&server_plan(), &nft_view(&reloading)).len(), 2);
        // Where firewalld answers on D-Bus, a server's tunnel goes through its API instead:
        // the interface in trusted, the port and the services in the WAN's zone.
        let api = View {
            firewalld_api: Some("public".into()),
            ..nft_view(with_policies)
        };
        assert!(needed(&server_plan(), &api).is_empty());
        assert_eq!(
            firewalld_wish(&server_plan(), &api),
            Some(ZoneWish {
                iface: "wg0".parse().unwrap(),
                wan: Some("eth0".parse().unwrap()),
                ports: vec![("51820".into(), Proto::Udp), ("443".into(), Proto::Tcp)],
            })
        );
        assert_eq!(
            firewalld_wish(&server_plan(), &nft_view(with_policies)),
            None
        );
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

    fn client_plan(opts: crate::config::cli::Options) -> Plan {
        let conf = "[Interface]\nAddress = 10.66.0.2/32\n\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = 203.0.113.2:51820\nAllowedIPs = 0.0.0.0/0\n";
        let opts = crate::config::cli::Options {
            role: Some(Role::Client),
            ..opts
        };
        crate::plan::for_test(conf, &opts, &HostFacts::example()).unwrap()
    }

    /// firewalld 0.9 and later, as `nft list chains` shows it (no flags).
    const FIREWALLD_CHAINS: &str = "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n\
        \tchain filter_FORWARD {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n\t}\n\
        \tchain filter_INPUT_POLICIES_post {\n\t}\n\tchain filter_FORWARD_POLICIES_post {\n\t}\n}\n";

    #[test]
    fn a_client_writes_nothing_into_firewalld_s_table_where_its_api_answers() {
        let client = client_plan(Default::default());
        // firewalld 1.x without its API: the forward accepts go into its chain, as before.
        let fallback = needed(&client, &nft_view(FIREWALLD_CHAINS));
        let fwd = Place::Nft {
            table: FIREWALLD_TABLE.into(),
            chain: "filter_FORWARD_POLICIES_post".into(),
        };
        assert_eq!(fallback.keys().collect::<Vec<_>>(), vec![&fwd]);
        // With its API: nothing in its table, and nothing asked of the API either.
        let api = View {
            firewalld_api: Some("public".into()),
            ..nft_view(FIREWALLD_CHAINS)
        };
        assert!(needed(&client, &api).is_empty());
        assert_eq!(firewalld_wish(&client, &api), None);
        // Another manager's drop still gets its accepts.
        let other = format!(
            "{FIREWALLD_CHAINS}table inet filter {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy drop;\n\t}}\n}}\n"
        );
        let api = View {
            firewalld_api: Some("public".into()),
            ..nft_view(&other)
        };
        assert_eq!(
            needed(&client, &api).keys().collect::<Vec<_>>(),
            vec![&Place::Nft {
                table: "inet filter".into(),
                chain: "forward".into()
            }]
        );
    }

    #[test]
    fn a_forwarding_client_on_firewalld_is_told_how_to_allow_its_lan() {
        let client = client_plan(Default::default());
        let api = View {
            firewalld_api: Some("public".into()),
            ..nft_view(FIREWALLD_CHAINS)
        };
        let note = firewalld_forward_note(&client, &api, Some(true)).unwrap();
        assert!(
            note.starts_with("firewalld decides what this host forwards into wg0"),
            "{note}"
        );
        assert!(
            note.contains(
                "firewall-cmd --permanent --new-policy wgfw-lan-wg0 && firewall-cmd --permanent --policy wgfw-lan-wg0 --add-ingress-zone LAN_ZONE && firewall-cmd --permanent --policy wgfw-lan-wg0 --add-egress-zone public && firewall-cmd --permanent --policy wgfw-lan-wg0 --set-target ACCEPT && firewall-cmd --reload"
            ),
            "{note}"
        );
        // Forwarding not known: said all the same (the note is conditional).
        assert!(firewalld_forward_note(&client, &api, None).is_some());
        // A laptop that forwards nothing, a server, a host without firewalld's API: nothing.
        assert_eq!(firewalld_forward_note(&client, &api, Some(false)), None);
        assert_eq!(
            firewalld_forward_note(&server_plan(), &api, Some(true)),
            None
        );
        let no_api = nft_view(FIREWALLD_CHAINS);
        assert_eq!(firewalld_forward_note(&client, &no_api, Some(true)), None);
        // Policy names: firewalld's characters, 17 at most.
        assert_eq!(policy_name(&"wg0".parse().unwrap()), "wgfw-lan-wg0");
        assert_eq!(policy_name(&"wg.home".parse().unwrap()), "wgfw-lan-wg_home");
        assert_eq!(
            policy_name(&"wg-office-home1".parse().unwrap()),
            "wgfw-wg-office-ho"
        );
    }

    #[test]
    fn an_owned_firewalld_table_without_its_api_is_refused_before_any_change() {
        let owned = FIREWALLD_CHAINS.replacen(
            "table inet firewalld {\n",
            "table inet firewalld {\n\tflags owner\n",
            1,
        );
        let client = client_plan(Default::default());
        let view = nft_view(&owned);
        let wanted = needed(&client, &view);
        let why = refusal(&wanted, &view).unwrap();
        assert!(
            why.starts_with(
                "firewalld owns its nftables table (flags owner, NftablesTableOwner=yes)"
            ),
            "{why}"
        );
        assert!(refusal(&needed(&server_plan(), &view), &view).is_some());
        // Not owned (firewalld 1.x): the accepts go in. With the API: nothing goes there.
        let plain = nft_view(FIREWALLD_CHAINS);
        assert_eq!(refusal(&needed(&client, &plain), &plain), None);
        let api = View {
            firewalld_api: Some("public".into()),
            ..nft_view(&owned)
        };
        assert_eq!(refusal(&needed(&client, &api), &api), None);
        assert_eq!(refusal(&needed(&server_plan(), &api), &api), None);
    }

    #[test]
    fn our_own_flavour_gets_input_accepts_only_and_a_trailing_drop_counts() {
        // Host input lives in mangle: ufw's deny in filter INPUT needs our accepts there too,
        // but our own FORWARD chain already decides first in filter FORWARD.
        let mut ufw = iptables_view(
            Variant::Legacy,
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:ufw-user-input - [0:0]\nCOMMIT\n",
        );
        ufw.own = Some(Variant::Legacy);
        let n = needed(&server_plan(), &ufw);
        assert_eq!(
            n.keys().collect::<Vec<_>>(),
            vec![&iptables_place(Variant::Legacy, "INPUT")]
        );
        // A hand-made firewall: policy ACCEPT, but everything else dropped by the last rule.
        let hand = iptables_view(
            Variant::Nft,
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n",
        );
        assert!(needed(&server_plan(), &hand).contains_key(&iptables_place(Variant::Nft, "INPUT")));
    }

    #[test]
    fn accepts_go_after_every_ban_and_before_the_default_deny() {
        use Part::*;
        let m = "wgfw:wg0";
        let chain = [
            "-p tcp -m multiport --dports 22 -j f2b-sshd",
            "-s 198.51.100.7/32 -j DROP",
            "-j ufw-before-logging-input",
            "-j ufw-before-input",
            "-j ufw-after-input",
            "-j ufw-after-logging-input",
            "-j ufw-reject-input",
            "-j ufw-track-input",
        ];
        let parts: Vec<Part> = chain.iter().map(|r| iptables_part(r, m)).collect();
        assert_eq!(parts[..5], [Other; 5]);
        assert_eq!(parts[5..], [Tail; 3]);
        assert_eq!(anchor(&parts), 5);
        // Ours where they belong; then someone appends a ban after them.
        let mut placed = parts.clone();
        placed.splice(5..5, [Ours, Ours]);
        assert!(in_place(&placed));
        placed.insert(7, Other);
        assert!(!in_place(&placed) && anchor(&placed) == 6);
        // Scattered, or first (where older versions put them): not in place.
        assert!(!in_place(&[Ours, Other, Ours, Tail]));
        assert!(!in_place(&[Ours, Other]));
        assert!(in_place(&[Other, Ours]) && in_place(&[Other]));
        for tail in [
            "-j DROP",
            "-j REJECT --reject-with icmp-host-prohibited",
            "-m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix \"[UFW BLOCK] \"",
        ] {
            assert_eq!(iptables_part(tail, m), Tail, "{tail}");
        }
        for other in ["-p udp -j DROP", "-j ufw-user-input", "-i lo -j ACCEPT"] {
            assert_eq!(iptables_part(other, m), Other, "{other}");
        }
        let ours = "-i wg0 -m comment --comment \"wgfw:wg0\" -j ACCEPT";
        assert_eq!(iptables_part(ours, m), Ours);
        // The same chains as nft lists them (iptables-nft's tables, firewalld's).
        for (rule, part) in [
            (
                "counter packets 3 bytes 180 jump ufw-after-logging-input",
                Tail,
            ),
            (
                "limit rate 3/minute burst 10 packets counter packets 0 bytes 0 log prefix \"[UFW BLOCK] \"",
                Tail,
            ),
            ("counter packets 0 bytes 0 drop", Tail),
            ("reject with icmpx admin-prohibited", Tail),
            (
                "ip saddr 198.51.100.7 counter packets 0 bytes 0 drop",
                Other,
            ),
            ("tcp dport 22 ip saddr @addr-set-sshd reject", Other),
            ("jump filter_INPUT_ZONES", Other),
            ("iifname \"wg0\" accept comment \"wgfw:wg0\"", Ours),
        ] {
            assert_eq!(nft_part(rule, m), part, "{rule}");
        }
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
