//! The iptables/ip6tables backend: renders a plan into chains of its own, and chains into one
//! `iptables-restore --noflush` script per family, computed against the live ruleset so that it
//! only touches what is ours: our chains are created or flushed, our jumps are put first in the
//! built-in chains once, and chains we no longer need are emptied and deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::plan::{Family, FamilyPlan, InputPolicy, Plan};
use crate::types::{IfaceName, Rate, RateUnit, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Nft,
    Legacy,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Nft => "iptables-nft",
            Variant::Legacy => "iptables-legacy",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "iptables-nft" => Some(Variant::Nft),
            "iptables-legacy" => Some(Variant::Legacy),
            _ => None,
        }
    }

    fn program(self, family: Family, what: &str) -> String {
        let ip = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let v = match self {
            Variant::Nft => "nft",
            Variant::Legacy => "legacy",
        };
        format!("{ip}-{v}-{what}")
    }

    pub fn save(self, family: Family) -> String {
        self.program(family, "save")
    }

    pub fn restore(self, family: Family) -> String {
        self.program(family, "restore")
    }
}

/// Tables in the order a packet meets them, which is also the order scripts list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Raw,
    Mangle,
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Raw, Table::Mangle, Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Mangle => "mangle",
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    fn parse(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub table: Table,
    pub name: String,
    /// The built-in chain that jumps here first, if any.
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

/// The chain every managed interface shares: host input's common head, one jump per
/// interface, and the default deny. It exists while any interface is managed.
pub const SHARED_INPUT: &str = "WGFW-INPUT";

/// The names of the chains one interface may own, whatever its options.
pub fn own_chains(iface: &IfaceName) -> Vec<(Table, String)> {
    vec![
        (Table::Raw, format!("WGFW-{iface}-PRE")),
        (Table::Mangle, format!("WGFW-{iface}-MSS")),
        (Table::Nat, format!("WGFW-{iface}-NAT")),
        (Table::Filter, format!("WGFW-{iface}-IN")),
        (Table::Filter, format!("WGFW-{iface}-FWD")),
        (Table::Filter, format!("WGFW-{iface}-DROP")),
        (Table::Filter, format!("WGFW-{iface}-OUT")),
        (Table::Filter, format!("WGFW-{iface}-REJECT")),
    ]
}

fn own(iface: &IfaceName, suffix: &str) -> String {
    format!("WGFW-{iface}-{suffix}")
}

/// Networks that peers may not reach through the server by default (anti-pivot).
pub fn local_ranges(family: Family) -> &'static [&'static str] {
    match family {
        Family::V4 => &[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
        ],
        Family::V6 => &["fc00::/7", "fe80::/10"],
    }
}

/// Log lines are limited so that a flood cannot fill the disk.
const LOG_LIMIT: &str = "-m limit --limit 5/min --limit-burst 10";
const SSH_LIMIT: Rate = Rate {
    count: 10,
    unit: RateUnit::Minute,
};
const SSH_BURST: u32 = 10;

/// Networks a client keeps reachable outside the tunnel with `--allow-lan`: the private and
/// link-local ranges, and (as destinations) multicast and broadcast.
pub fn lan_ranges(family: Family, destination: bool) -> Vec<&'static str> {
    let mut r = match family {
        Family::V4 => vec![
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
        ],
        Family::V6 => vec!["fc00::/7", "fe80::/10"],
    };
    if destination {
        r.extend(match family {
            Family::V4 => ["224.0.0.0/4", "255.255.255.255/32"].as_slice(),
            Family::V6 => ["ff00::/8"].as_slice(),
        });
    }
    r
}

/// One interface's chains for one family.
pub fn iface_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    match plan.role {
        Role::Server => server_chains(plan, fp),
        Role::Client => client_chains(plan, fp),
    }
}

fn mss_chain(i: &IfaceName, fp: &FamilyPlan) -> Chain {
    // TCP through the tunnel must fit its MTU both ways, whatever MTU the peer has.
    let clamp = format!(
        "-p tcp -m tcp --tcp-flags SYN,RST SYN -m tcpmss --mss {}:65535 -j TCPMSS --set-mss {}",
        fp.mss + 1,
        fp.mss
    );
    Chain {
        table: Table::Mangle,
        name: own(i, "MSS"),
        hook: Some("FORWARD"),
        rules: vec![format!("-o {i} {clamp}"), format!("-i {i} {clamp}")],
    }
}

fn allow_rules(plan: &Plan) -> Vec<String> {
    plan.allow
        .iter()
        .map(|s| {
            let proto = s.proto.as_str();
            let ports = if s.first == s.last {
                s.first.to_string()
            } else {
                format!("{}:{}", s.first, s.last)
            };
            format!("-p {proto} -m {proto} --dport {ports} -j ACCEPT")
        })
        .collect()
}

/// The kill switch: nothing leaves but through the tunnel, to the peers' endpoints, and the
/// few things a network needs (DHCP, neighbour discovery), plus the LAN with --allow-lan.
/// Everything else is rejected, so that applications fail at once instead of hanging. The
/// rules name the tunnel interface: when it dies, nothing matches them and all is rejected.
fn client_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let i = &plan.iface;
    let reject = own(i, "REJECT");
    let chain = |table, suffix: &str, hook, rules| Chain {
        table,
        name: own(i, suffix),
        hook,
        rules,
    };
    let mut chains = vec![mss_chain(i, fp)];
    if fp.masquerade {
        let rules = vec![format!(
            "-o {i} -m addrtype ! --src-type LOCAL -j MASQUERADE"
        )];
        chains.push(chain(Table::Nat, "NAT", Some("POSTROUTING"), rules));
    }

    let mut rules = Vec::new();
    if fp.policy == InputPolicy::Accept {
        rules.push(format!("-i {i} -j ACCEPT"));
    }
    if plan.allow_lan {
        rules.extend(
            lan_ranges(fp.family, false)
                .iter()
                .map(|r| format!("-s {r} -j ACCEPT")),
        );
    }
    rules.extend(allow_rules(plan));
    chains.push(chain(Table::Filter, "IN", None, rules));

    let mut rules = vec!["-o lo -j ACCEPT".to_string(), format!("-o {i} -j ACCEPT")];
    for e in &fp.endpoints {
        let host = if e.is_ipv4() { 32 } else { 128 };
        rules.push(format!(
            "-d {}/{host} -p udp -m udp --dport {} -j ACCEPT",
            e.ip(),
            e.port()
        ));
    }
    match fp.family {
        Family::V4 => rules.push("-p udp -m udp --sport 68 --dport 67 -j ACCEPT".into()),
        Family::V6 => {
            rules.push("-p udp -m udp --sport 546 --dport 547 -j ACCEPT".into());
            for t in [133, 135, 136, 143] {
                rules.push(format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT"));
            }
        }
    }
    if plan.allow_lan {
        rules.extend(
            lan_ranges(fp.family, true)
                .iter()
                .map(|r| format!("-d {r} -j ACCEPT")),
        );
    }
    rules.push(format!("-j {reject}"));
    chains.push(chain(Table::Filter, "OUT", Some("OUTPUT"), rules));

    let mut rules = vec![
        format!("-o {i} -j ACCEPT"),
        format!("-i {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
    ];
    if plan.allow_lan {
        rules.extend(
            lan_ranges(fp.family, true)
                .iter()
                .map(|r| format!("-d {r} ! -i {i} -j ACCEPT")),
        );
    }
    rules.push(format!("-j {reject}"));
    chains.push(chain(Table::Filter, "FWD", Some("FORWARD"), rules));

    let mut rules = Vec::new();
    if plan.log {
        rules.push(format!("{LOG_LIMIT} -j LOG --log-prefix \"wgfw-{i}: \""));
    }
    rules.push("-p tcp -j REJECT --reject-with tcp-reset".to_string());
    rules.push(match fp.family {
        Family::V4 => "-j REJECT --reject-with icmp-admin-prohibited".to_string(),
        Family::V6 => "-j REJECT --reject-with icmp6-adm-prohibited".to_string(),
    });
    chains.push(chain(Table::Filter, "REJECT", None, rules));
    chains
}

fn server_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let i = &plan.iface;
    let [pre, nat, input, fwd, drop] = ["PRE", "NAT", "IN", "FWD", "DROP"].map(|s| own(i, s));
    let mut chains = Vec::new();
    let chain = |table, name: &String, hook, rules| Chain {
        table,
        name: name.clone(),
        hook,
        rules,
    };

    // Tunnel sources that arrive on any other interface are spoofed.
    if !fp.tunnel_nets.is_empty() {
        let mut rules = vec![format!("-i {i} -j RETURN"), "-i lo -j RETURN".to_string()];
        rules.extend(fp.tunnel_nets.iter().map(|n| format!("-s {n} -j DROP")));
        chains.push(chain(Table::Raw, &pre, Some("PREROUTING"), rules));
    }

    chains.push(mss_chain(i, fp));

    // Peers leave masqueraded, so the internet and the LAN hosts need no route back; traffic
    // between peers never is.
    if fp.masquerade {
        let mut rules = Vec::new();
        for n in &fp.tunnel_nets {
            if let (true, Some(wan)) = (fp.internet, &fp.wan) {
                rules.push(format!("-s {n} -o {wan} -j MASQUERADE"));
            }
            rules.extend(
                fp.lans
                    .iter()
                    .map(|lan| format!("-s {n} -d {lan} ! -o {i} -j MASQUERADE")),
            );
        }
        if !rules.is_empty() {
            chains.push(chain(Table::Nat, &nat, Some("POSTROUTING"), rules));
        }
    }

    let mut rules = Vec::new();
    let port = plan
        .port
        .map(|p| p.to_string())
        .unwrap_or_else(|| "LISTEN-PORT".into());
    let udp = format!("-p udp -m udp --dport {port}");
    let new = "-m conntrack --ctstate NEW";
    let limit = hashlimit(
        i,
        "h",
        fp.family,
        plan.handshake_limit,
        plan.handshake_burst,
    );
    rules.push(format!("{udp} {new} {limit} -j ACCEPT"));
    rules.push(format!("{udp} {new} -j {drop}"));
    rules.push(format!("-i {i} -j ACCEPT"));
    if let (Some(port), false) = (plan.ssh_port, fp.policy == InputPolicy::Defer) {
        let tcp = format!("-p tcp -m tcp --dport {port}");
        let limit = hashlimit(i, "s", fp.family, SSH_LIMIT, SSH_BURST);
        match &fp.admin {
            None => rules.push(format!("{tcp} {new} {limit} -j ACCEPT")),
            Some(nets) => rules.extend(
                nets.iter()
                    .map(|n| format!("-s {n} {tcp} {new} {limit} -j ACCEPT")),
            ),
        }
        rules.push(format!("{tcp} {new} -j {drop}"));
    }
    rules.extend(allow_rules(plan));
    chains.push(chain(Table::Filter, &input, None, rules));

    let mut rules = vec![
        format!("-o {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-i {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-i {i} -m conntrack --ctstate INVALID -j {drop}"),
        // Peers are isolated from each other unless --peer-to-peer.
        format!(
            "-i {i} -o {i} -j {}",
            if plan.peer_to_peer {
                "ACCEPT"
            } else {
                drop.as_str()
            }
        ),
    ];
    for lan in &fp.lans {
        rules.push(format!("-d {lan} -i {i} -j ACCEPT"));
        rules.push(format!("-s {lan} -o {i} -j ACCEPT"));
    }
    // Anti-pivot: the internet, yes; the networks around this host, no.
    rules.extend(
        local_ranges(fp.family)
            .iter()
            .map(|r| format!("-d {r} -i {i} -j {drop}")),
    );
    if let (true, Some(wan)) = (fp.internet, &fp.wan) {
        rules.push(format!("-i {i} -o {wan} -j ACCEPT"));
    }
    rules.push(format!("-i {i} -j {drop}"));
    rules.push(format!("-o {i} -j {drop}"));
    chains.push(chain(Table::Filter, &fwd, Some("FORWARD"), rules));

    let mut rules = Vec::new();
    if plan.log {
        rules.push(format!("{LOG_LIMIT} -j LOG --log-prefix \"wgfw-{i}: \""));
    }
    rules.push("-j DROP".to_string());
    chains.push(chain(Table::Filter, &drop, None, rules));
    chains
}

/// A per-source limit. Its kernel table is named from everything that shapes it, so that a
/// changed limit gets a fresh table (the kernel keeps a table's first settings while any rule
/// uses it) and each tunnel counts on its own. Names may have 15 characters.
fn hashlimit(iface: &IfaceName, tag: &str, family: Family, rate: Rate, burst: u32) -> String {
    let per = match rate.unit {
        RateUnit::Second => "sec",
        RateUnit::Minute => "min",
    };
    // IPv6 users get a /64 each: counting single addresses would let one host use millions.
    let mask = if family == Family::V6 {
        " --hashlimit-srcmask 64"
    } else {
        ""
    };
    let shape = format!("{iface}/{tag}/{}/{per}/{burst}/{mask}", rate.count);
    let name = format!("wgfw{:08x}{tag}", fnv1a(shape.as_bytes()));
    format!(
        "-m hashlimit --hashlimit-upto {}/{per} --hashlimit-burst {burst} --hashlimit-mode srcip --hashlimit-name {name}{mask}",
        rate.count
    )
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// One managed interface as the shared chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub iface: IfaceName,
    pub policy: InputPolicy,
    pub log: bool,
}

/// The shared input chain for the interfaces managed in one family (none: no chain).
pub fn shared_chains(family: Family, members: &[Member]) -> Vec<Chain> {
    if members.is_empty() {
        return Vec::new();
    }
    let mut rules = vec![
        "-i lo -j ACCEPT".to_string(),
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
        "-m conntrack --ctstate INVALID -j DROP".to_string(),
    ];
    rules.extend(members.iter().map(|m| format!("-j WGFW-{}-IN", m.iface)));
    match family {
        Family::V4 => {
            for t in [3, 11, 12] {
                rules.push(format!("-p icmp -m icmp --icmp-type {t} -j ACCEPT"));
            }
            rules.push(
                "-p icmp -m icmp --icmp-type 8 -m limit --limit 10/sec --limit-burst 20 -j ACCEPT"
                    .into(),
            );
        }
        Family::V6 => {
            // Errors (packet-too-big above all) and neighbour discovery keep IPv6 working.
            for t in [1, 2, 3, 4] {
                rules.push(format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT"));
            }
            for t in [133, 134, 135, 136] {
                rules.push(format!(
                    "-p ipv6-icmp -m icmp6 --icmpv6-type {t} -m hl --hl-eq 255 -j ACCEPT"
                ));
            }
            for t in [130, 131, 132, 143] {
                rules.push(format!(
                    "-s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT"
                ));
            }
            rules.push("-p ipv6-icmp -m icmp6 --icmpv6-type 128 -m limit --limit 10/sec --limit-burst 20 -j ACCEPT".into());
            // DHCPv6 replies come from a link-local server and match no connection.
            rules.push(
                "-s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT".into(),
            );
        }
    }
    if members.iter().any(|m| m.policy == InputPolicy::Drop) {
        if members
            .iter()
            .any(|m| m.policy == InputPolicy::Drop && m.log)
        {
            rules.push(format!("{LOG_LIMIT} -j LOG --log-prefix \"wgfw-input: \""));
        }
        rules.push("-j DROP".to_string());
    }
    vec![Chain {
        table: Table::Filter,
        name: SHARED_INPUT.to_string(),
        hook: Some("INPUT"),
        rules,
    }]
}

/// What `iptables-save` shows of one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Every chain, user-defined or built-in, per table.
    pub chains: BTreeSet<(Table, String)>,
    /// Built-in chains' policies.
    pub policies: BTreeMap<(Table, String), String>,
    /// The rules of every chain, in order, as `iptables-save` prints them after `-A CHAIN `.
    pub rules: BTreeMap<(Table, String), Vec<String>>,
}

impl Live {
    pub fn parse(text: &str) -> Live {
        let mut live = Live::default();
        let mut table = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = Table::parse(name.trim());
            } else if let (Some(t), Some(decl)) = (table, line.strip_prefix(':')) {
                let mut parts = decl.split_whitespace();
                if let (Some(name), Some(policy)) = (parts.next(), parts.next()) {
                    live.chains.insert((t, name.to_string()));
                    if policy != "-" {
                        live.policies
                            .insert((t, name.to_string()), policy.to_string());
                    }
                }
            } else if let (Some(t), Some(rule)) = (table, line.strip_prefix("-A ")) {
                let (chain, rest) = rule.split_once(' ').unwrap_or((rule, ""));
                live.rules
                    .entry((t, chain.to_string()))
                    .or_default()
                    .push(rest.to_string());
            }
        }
        live
    }

    pub fn has_chain(&self, table: Table, name: &str) -> bool {
        self.chains.contains(&(table, name.to_string()))
    }

    fn rules_of(&self, table: Table, chain: &str) -> &[String] {
        self.rules
            .get(&(table, chain.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether anything but wgfw's own chains has rules (a host that already uses this backend).
    pub fn has_foreign_rules(&self) -> bool {
        self.rules.iter().any(|((_, chain), rules)| {
            !chain.starts_with("WGFW-") && rules.iter().any(|r| !r.contains("-j WGFW-"))
        })
    }
}

/// The restore script that makes the live ruleset hold `desired` and none of `remove`, or
/// `None` when there is nothing to do. Everything else in the ruleset is left alone.
pub fn transaction(desired: &[Chain], remove: &[(Table, String)], live: &Live) -> Option<String> {
    let mut script = String::new();
    for table in Table::ALL {
        let want: Vec<&Chain> = desired.iter().filter(|c| c.table == table).collect();
        let gone: Vec<&String> = remove
            .iter()
            .filter(|(t, n)| {
                *t == table && live.has_chain(*t, n) && !want.iter().any(|c| &c.name == n)
            })
            .map(|(_, n)| n)
            .collect();
        if want.is_empty() && gone.is_empty() {
            continue;
        }
        // A table whose chains already hold exactly the wanted rules, hooked first, is left
        // alone: re-filling it would only reset counters and cost a kernel round trip.
        let unchanged = gone.is_empty()
            && want.iter().all(|c| {
                live.has_chain(table, &c.name)
                    && live.rules_of(table, &c.name) == c.rules.as_slice()
                    && c.hook
                        .is_none_or(|h| jump_is_first_once(live, table, h, &c.name))
            });
        if unchanged {
            continue;
        }
        let mut body = String::new();
        // Declaring a chain creates it, or empties it when it exists.
        for c in &want {
            let _ = writeln!(body, ":{} - [0:0]", c.name);
        }
        let mut inserts = Vec::new();
        for c in &want {
            let Some(hook) = c.hook else { continue };
            let jump = format!("-j {}", c.name);
            if !jump_is_first_once(live, table, hook, &c.name) {
                for _ in live.rules_of(table, hook).iter().filter(|r| **r == jump) {
                    let _ = writeln!(body, "-D {hook} {jump}");
                }
                inserts.push(format!("-I {hook} 1 {jump}"));
            }
        }
        for name in &gone {
            let jump = format!("-j {name}");
            for (t, chain) in live.rules.keys() {
                if *t != table || chain.starts_with("WGFW-") {
                    continue;
                }
                for _ in live.rules_of(table, chain).iter().filter(|r| **r == jump) {
                    let _ = writeln!(body, "-D {chain} {jump}");
                }
            }
        }
        for name in &gone {
            let _ = writeln!(body, "-F {name}");
        }
        for name in &gone {
            let _ = writeln!(body, "-X {name}");
        }
        for c in &want {
            for r in &c.rules {
                let _ = writeln!(body, "-A {} {r}", c.name);
            }
        }
        for i in inserts {
            let _ = writeln!(body, "{i}");
        }
        let _ = write!(script, "*{}\n{body}COMMIT\n", table.name());
    }
    (!script.is_empty()).then_some(script)
}

/// Whether `hook` jumps to `chain` exactly once, among the wgfw jumps that lead it.
fn jump_is_first_once(live: &Live, table: Table, hook: &str, chain: &str) -> bool {
    let jump = format!("-j {chain}");
    let rules = live.rules_of(table, hook);
    let first = rules
        .iter()
        .take_while(|r| r.starts_with("-j WGFW-"))
        .any(|r| *r == jump);
    first && rules.iter().filter(|r| **r == jump).count() == 1
}

/// The whole ruleset of one interface and family as a restore script on an empty host, as
/// `plan` shows it.
pub fn render_fresh(plan: &Plan, fp: &FamilyPlan, others: &[Member]) -> String {
    let mut members = others.to_vec();
    members.push(Member {
        iface: plan.iface.clone(),
        policy: plan.tail_policy(fp),
        log: plan.log,
    });
    let mut desired = shared_chains(fp.family, &members);
    desired.extend(iface_chains(plan, fp));
    transaction(&desired, &[], &Live::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Options;
    use crate::plan::{self, HostFacts};
    use std::path::Path;

    fn plan_for(text: &str, opts: &Options) -> Plan {
        let host = HostFacts::example();
        let conf = crate::wgconf::parse(Path::new("wg0.conf"), text).unwrap();
        plan::derive(
            &"wg0".parse().unwrap(),
            &conf,
            opts,
            &host,
            plan::Purpose::Install,
        )
        .unwrap()
    }

    const DUAL: &str = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n";

    fn installed(plan: &Plan, fam: usize) -> Live {
        // What iptables-save would show after the fresh script: our chains with their rules.
        let fp = &plan.families[fam];
        let m = Member {
            iface: plan.iface.clone(),
            policy: fp.policy,
            log: plan.log,
        };
        let mut live = Live::default();
        for c in shared_chains(fp.family, &[m])
            .into_iter()
            .chain(iface_chains(plan, fp))
        {
            live.chains.insert((c.table, c.name.clone()));
            if let Some(h) = c.hook {
                live.rules
                    .entry((c.table, h.to_string()))
                    .or_default()
                    .push(format!("-j {}", c.name));
            }
            live.rules
                .insert((c.table, c.name.clone()), c.rules.clone());
        }
        live
    }

    #[test]
    fn fresh_install_declares_fills_and_hooks() {
        let p = plan_for(DUAL, &Options::default());
        let s = render_fresh(&p, &p.families[0], &[]);
        assert!(s.starts_with("*raw\n:WGFW-wg0-PRE - [0:0]\n"), "{s}");
        assert!(s.contains("-I PREROUTING 1 -j WGFW-wg0-PRE\nCOMMIT\n"));
        assert!(s.contains("-A WGFW-wg0-NAT -s 10.66.0.0/24 -o eth0 -j MASQUERADE\n"));
        assert!(s.contains("-A WGFW-INPUT -j WGFW-wg0-IN\n"));
        assert!(s.contains("-I INPUT 1 -j WGFW-INPUT\n"));
        assert!(!s.contains("-D "));
        let v6 = render_fresh(&p, &p.families[1], &[]);
        assert!(!v6.contains("*nat"), "no IPv6 NAT without --nat6");
        assert!(v6.contains("--hashlimit-srcmask 64"));
    }

    #[test]
    fn up_twice_changes_only_our_chains_and_keeps_jumps() {
        let p = plan_for(DUAL, &Options::default());
        let fp = &p.families[0];
        let live = installed(&p, 0);
        let m = Member {
            iface: p.iface.clone(),
            policy: fp.policy,
            log: p.log,
        };
        let mut desired = shared_chains(fp.family, &[m]);
        desired.extend(iface_chains(&p, fp));
        assert_eq!(transaction(&desired, &own_chains(&p.iface), &live), None);
        // A chain someone edited is filled again, without touching the jumps.
        let mut edited = live.clone();
        edited
            .rules
            .get_mut(&(Table::Filter, "WGFW-wg0-IN".to_string()))
            .unwrap()
            .pop();
        let s = transaction(&desired, &own_chains(&p.iface), &edited).unwrap();
        assert!(
            s.starts_with("*filter\n") && !s.contains("-D ") && !s.contains("-I "),
            "{s}"
        );
    }

    #[test]
    fn duplicated_or_displaced_jumps_are_put_back_first_once() {
        let p = plan_for(DUAL, &Options::default());
        let mut live = installed(&p, 0);
        let fwd = live
            .rules
            .get_mut(&(Table::Filter, "FORWARD".to_string()))
            .unwrap();
        fwd.insert(0, "-j DOCKER-USER".to_string());
        fwd.push("-j WGFW-wg0-FWD".to_string());
        let desired = iface_chains(&p, &p.families[0]);
        let s = transaction(&desired, &[], &live).unwrap();
        assert_eq!(s.matches("-D FORWARD -j WGFW-wg0-FWD\n").count(), 2, "{s}");
        assert_eq!(s.matches("-I FORWARD 1 -j WGFW-wg0-FWD\n").count(), 1);
    }

    #[test]
    fn removing_unhooks_empties_then_deletes() {
        let p = plan_for(DUAL, &Options::default());
        let live = installed(&p, 0);
        let mut remove = own_chains(&p.iface);
        remove.push((Table::Filter, SHARED_INPUT.to_string()));
        let s = transaction(&[], &remove, &live).unwrap();
        let filter = s.split("*filter\n").nth(1).unwrap();
        let first_x = filter.find("-X ").unwrap();
        assert!(filter.find("-D INPUT -j WGFW-INPUT").unwrap() < first_x);
        assert!(filter.rfind("-F ").unwrap() < first_x, "{filter}");
        assert!(!s.contains(":WGFW"), "{s}");
        // Nothing to remove from an empty host.
        assert_eq!(transaction(&[], &remove, &Live::default()), None);
    }

    #[test]
    fn a_changed_plan_drops_chains_it_no_longer_has() {
        let p = plan_for(DUAL, &Options::default());
        let live = installed(&p, 0);
        let no_nat = plan_for(
            DUAL,
            &Options {
                no_nat: true,
                ..Options::default()
            },
        );
        let desired = iface_chains(&no_nat, &no_nat.families[0]);
        let s = transaction(&desired, &own_chains(&p.iface), &live).unwrap();
        assert!(
            s.contains(
                "*nat\n-D POSTROUTING -j WGFW-wg0-NAT\n-F WGFW-wg0-NAT\n-X WGFW-wg0-NAT\nCOMMIT\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn shared_chain_serves_every_interface_and_denies_once() {
        let m = |i: &str, policy| Member {
            iface: i.parse().unwrap(),
            policy,
            log: true,
        };
        let c = shared_chains(
            Family::V4,
            &[m("wg0", InputPolicy::Drop), m("wg1", InputPolicy::Defer)],
        );
        let rules = &c[0].rules;
        assert_eq!(
            rules.iter().filter(|r| r.starts_with("-j WGFW-")).count(),
            2
        );
        assert_eq!(rules.last().unwrap(), "-j DROP");
        let c = shared_chains(Family::V4, &[m("wg1", InputPolicy::Defer)]);
        assert!(
            !c[0]
                .rules
                .iter()
                .any(|r| r.contains("DROP\"") || r == "-j DROP" || r.contains("LOG"))
        );
        assert!(shared_chains(Family::V4, &[]).is_empty());
    }

    #[test]
    fn hashlimit_names_fit_and_follow_the_settings() {
        let i: IfaceName = "abcdefghijklmno".parse().unwrap();
        let r = Rate {
            count: 30,
            unit: RateUnit::Minute,
        };
        let a = hashlimit(&i, "h", Family::V4, r, 5);
        let name = a.rsplit(' ').next().unwrap();
        assert!(name.len() <= 15, "{name}");
        assert_ne!(
            a,
            hashlimit(&i, "h", Family::V4, Rate { count: 31, ..r }, 5)
        );
    }

    #[test]
    fn parses_iptables_save() {
        let live = Live::parse(
            "# Generated\n*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [1:2]\n:WGFW-INPUT - [0:0]\n\
             -A INPUT -j WGFW-INPUT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
        );
        assert!(live.has_chain(Table::Filter, "WGFW-INPUT"));
        assert_eq!(live.policies[&(Table::Filter, "INPUT".to_string())], "DROP");
        assert_eq!(live.rules_of(Table::Filter, "INPUT").len(), 2);
        assert!(live.has_foreign_rules());
        assert!(
            !Live::parse("*filter\n:WGFW-INPUT - [0:0]\n-A INPUT -j WGFW-INPUT\nCOMMIT\n")
                .has_foreign_rules()
        );
    }
}
