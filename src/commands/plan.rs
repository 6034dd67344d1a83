//! `plan`: what `up` would do (rules, sysctls), printed as the commands it would run.
//! Changes nothing and needs no root: what only the live interface can say is named as such.

use std::collections::BTreeMap;

use crate::backend::{self, foreign};
use crate::config::cli::Args;
use crate::config::forward::Forward;
use crate::config::options::Options;
use crate::config::types::{BackendChoice, Role};
use crate::config::wgconf::WgConfig;
use crate::config::{quote, settings};
use crate::error::Result;
use crate::plan::ledger::Key;
use crate::plan::{self, Family, FamilyPlan, Group, InputPolicy, Nat, PeerView, Plan, Reach};
use crate::rules::foreign as places;
use crate::rules::{self, Backend};
use crate::system::{host, sysctl};

use super::{choose_backend, endpoints, live_peers, load};

/// Prints what `up` would do on this host if no wgfw rules were installed yet.
pub fn plan(args: &Args) -> Result<()> {
    let iface = &args.iface;
    let (opts, conf) = load(args)?;
    let (backend, why) = match opts.backend {
        None | Some(BackendChoice::Auto) => backend::auto(),
        Some(choice) => (
            choose_backend(Some(choice), None, &[])?.0,
            "--backend".to_string(),
        ),
    };
    let mut facts = host::gather(iface, opts.wan.as_ref(), conf.listen_port.is_none());
    facts.lan_routes = host::lan_routes(&opts.lan);
    live_peers(&mut facts, iface, &opts);
    let mut notes = endpoints(&mut facts, iface, &conf, &opts);
    let families = backend::families(facts.ipv6_enabled);
    let before = backend::read(backend, &families, false).ok();
    match &before {
        Some(before) => facts.input_owner = backend::input_owners(before),
        None => notes.push(
            "the live ruleset is not readable (not root?): input policy auto means drop here"
                .into(),
        ),
    }
    let view = foreign::read(backend, &families, before.as_ref());
    let mut plan = plan::derive(iface, &conf, &opts, &facts, plan::Purpose::Show)?;
    plan.notes
        .insert(0, sources(args, &conf, facts.live_peers.is_some()));
    plan.notes.extend(notes);
    for (place, rules) in places::needed(&plan, &view) {
        plan.notes.push(format!(
            "another manager drops there, so up puts accepts of its own right before the default deny of {}: {}",
            place.describe(),
            rules
                .iter()
                .map(|r| place.render(r))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if let Some(wish) = places::firewalld_wish(&plan, &view) {
        let ports: Vec<String> = wish
            .ports
            .iter()
            .map(|(p, proto)| format!("{p}/{}", proto.as_str()))
            .collect();
        plan.notes.push(format!(
            "firewalld runs: up asks it (its D-Bus API, runtime only, undone by down) to put {iface} in zone {} and to open {} in the zone of {}",
            places::TUNNEL_ZONE,
            join_or_none(&ports),
            wish.wan.as_ref().map_or("the WAN".to_string(), |w| w.to_string())
        ));
    }
    if let Some(note) = places::firewalld_forward_note(&plan, &view, forwarding()) {
        plan.notes.push(note);
    }
    if let Some(why) = places::refusal(&places::needed(&plan, &view), &view) {
        plan.notes.push(format!("up will fail: {why}"));
    }
    let current = sysctl::read_all(plan.sysctls.iter().map(|w| &w.key));
    crate::out!("{}", render(&plan, backend, &why, &current));
    Ok(())
}

/// Whether the host forwards IPv4 or IPv6 (a router's LAN into a client's tunnel); `None`
/// where neither can be read.
fn forwarding() -> Option<bool> {
    let on = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"]
        .map(|k| sysctl::read(&Key::new(k)).ok().map(|v| v != "0"));
    match on {
        [None, None] => None,
        [a, b] => Some(a == Some(true) || b == Some(true)),
    }
}

/// Where the plan's inputs came from: the tunnel's file or the live interface, and which
/// options were set where.
fn sources(args: &Args, conf: &WgConfig, live_peers: bool) -> String {
    let iface = &args.iface;
    let tunnel = if conf.live {
        format!("the live interface {iface} (there is no wg-quick config)")
    } else if let Some(files) = super::networkd_files(conf) {
        format!("{files} ({iface} is not up yet)")
    } else {
        quote::path(&conf.path)
    };
    let file = settings::path_for(iface);
    let set_in_file = settings::read(&file).is_ok_and(|o| o != Options::default());
    let options = match (args.options != Options::default(), set_in_file) {
        (true, true) => format!("the command line, then {}", file.display()),
        (true, false) => "the command line".to_string(),
        (false, true) => file.display().to_string(),
        (false, false) => "none set (the defaults)".to_string(),
    };
    let peers = if live_peers && !conf.live {
        format!(" (the peers' AllowedIPs as the live {iface} has them)")
    } else {
        String::new()
    };
    format!(
        "the tunnel's addresses, port and peers are read from {tunnel}{peers}; options: {options}"
    )
}

/// What `plan` prints: a header of facts, one restore script per family, the sysctl writes.
pub(super) fn render(
    plan: &Plan,
    backend: Backend,
    why: &str,
    current: &BTreeMap<Key, String>,
) -> String {
    let mut s = format!(
        "# wgfw-hook plan for {} ({} role)\n# listen port {}, MTU {}, backend {} ({why})\n",
        plan.iface,
        plan.role.as_str(),
        match (plan.port, plan.role) {
            (Some(p), _) => p.to_string(),
            (None, Role::Client) => "random".into(),
            (None, Role::Server) => "from the live interface".into(),
        },
        plan.mtu,
        backend.name()
    );
    for fp in &plan.families {
        s.push_str(&format!("# {}\n", describe(plan, fp)));
    }
    for p in plan.families.iter().flat_map(|fp| &fp.nat64) {
        s.push_str(&format!(
            "# NAT64 prefix {p}: peers reach the IPv4 internet through it, not the local ranges in it: {}\n",
            join_or_none(&rules::nat64_local_ranges(*p))
        ));
    }
    if !plan.groups.is_empty() {
        for p in &plan.peers {
            s.push_str(&format!("# {}\n", describe_peer(plan, p)));
        }
    }
    for f in &plan.forwards {
        s.push_str(&format!("# {}\n", describe_forward(plan, f)));
    }
    for n in &plan.notes {
        // A note may repeat the config's text (an Endpoint, a path).
        s.push_str(&format!("# note: {}\n", crate::config::quote::text(n)));
    }
    s.push_str(&rules::show(backend, plan));
    for w in &plan.sysctls {
        match current.get(&w.key) {
            Some(v) if *v == w.value => {
                s.push_str(&format!("# {} is already {}\n", w.key, w.value))
            }
            _ => s.push_str(&format!("[#] sysctl -q {}={}\n", w.key, w.value)),
        }
    }
    s
}

fn describe(plan: &Plan, fp: &FamilyPlan) -> String {
    if plan.role == Role::Client {
        return describe_client(plan, fp);
    }
    let nets: Vec<String> = fp.tunnel_nets.iter().map(ToString::to_string).collect();
    let nets = if nets.is_empty() {
        "none".to_string()
    } else {
        nets.join(" ")
    };
    let wan = fp
        .wan
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "none".into());
    let nat = nat_words(fp);
    let mut reach = Vec::new();
    if fp.internet {
        reach.push("internet".to_string());
    }
    reach.extend(fp.lans.iter().map(ToString::to_string));
    if plan.peer_to_peer {
        reach.push("each other".to_string());
    }
    let reach = if reach.is_empty() {
        "this host only".to_string()
    } else {
        format!("this host, {}", reach.join(", "))
    };
    let ssh = match (plan.ssh_port, &fp.admin) {
        _ if fp.policy == InputPolicy::Defer => "left to the other manager".to_string(),
        (None, _) => "closed".to_string(),
        (Some(p), None) => format!("{p} from anywhere"),
        (Some(_), Some(n)) if n.is_empty() => "closed".to_string(),
        (Some(p), Some(n)) => format!(
            "{p} from {}",
            n.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    let addrs: Vec<String> = fp.addresses.iter().map(ToString::to_string).collect();
    let addrs = if addrs.is_empty() {
        "none".to_string()
    } else {
        addrs.join(" ")
    };
    format!(
        "{}: address {addrs}; tunnel {nets}; WAN {wan}; peers reach {reach}; {nat}; input {}; SSH {ssh}; MSS {}",
        fp.family,
        fp.policy.as_str(),
        fp.mss
    )
}

/// Which tunnel networks leave masqueraded, and why.
fn nat_words(fp: &FamilyPlan) -> String {
    match (fp.nat, fp.family) {
        (Nat::Off, _) => "routed (--no-nat)".into(),
        (Nat::All, Family::V4) => "masquerade".into(),
        (Nat::All, Family::V6) => "masquerade (--nat6)".into(),
        (Nat::NotGlobal, _) if fp.tunnel_nets.is_empty() => "routed".into(),
        (Nat::NotGlobal, _) => {
            let masqueraded = fp.masqueraded();
            fp.tunnel_nets
                .iter()
                .map(|n| match masqueraded.iter().find(|m| n.contains(*m)) {
                    Some(m) if m == n => {
                        format!("{n} masqueraded (unique-local: nothing out there routes it back)")
                    }
                    Some(m) => format!("{n} routed, its part {m} masqueraded (unique-local)"),
                    None => format!("{n} routed (global; --nat6 masquerades it)"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// One port forward in one line: from where, and what the target sees.
fn describe_forward(plan: &Plan, f: &Forward) -> String {
    let fp = plan
        .families
        .iter()
        .find(|fp| (fp.family == Family::V6) == f.to.is_ipv6());
    let mut from: Vec<String> = fp
        .and_then(|fp| fp.wan.as_ref())
        .map(|w| format!("the WAN ({w})"))
        .into_iter()
        .collect();
    if f.from_lan {
        from.push("the LAN".into());
    }
    if f.from_peers {
        from.push("the peers".into());
    }
    let from = if from.is_empty() {
        "nowhere".to_string()
    } else {
        from.join(", ")
    };
    let seen = match (f.to.is_ipv6(), f.keep_source) {
        (true, _) => "routed, not translated",
        (false, true) => {
            "the client's address kept: the target must route replies back through the tunnel"
        }
        (false, false) => "masqueraded as this host: the target needs no change",
    };
    format!("forward {f}: from {from}; {seen}")
}

/// One peer's reach in one line: `peer laptop [xTIBA5rb] 10.66.0.2/32: this host (all), ...`.
pub(super) fn describe_peer(plan: &Plan, peer: &PeerView) -> String {
    let short = peer.key.get(..8).unwrap_or(&peer.key);
    let nets = join_or_none(&peer.nets);
    let Some(g) = peer.group.map(|i| &plan.groups[i]) else {
        return format!("peer (no section) [{short}] {nets}: the interface's policy");
    };
    format!("peer {} [{short}] {nets}: {}", g.name, reach(plan, g))
}

/// What a group's peers may reach, in words.
pub(super) fn reach(plan: &Plan, g: &Group) -> String {
    let mut parts = Vec::new();
    let ssh = if g.ssh { "" } else { " but SSH" };
    parts.push(match &g.host {
        None => format!("this host (all{ssh})"),
        Some(list) => {
            let mut items: Vec<String> = list.iter().map(ToString::to_string).collect();
            if g.ssh {
                items.insert(0, "SSH".into());
            }
            items.push("ping".into());
            format!("this host ({})", items.join(" "))
        }
    });
    if g.internet {
        parts.push("internet".into());
    }
    if !g.lan.is_empty() {
        parts.push(format!("LAN {}", join_or_none(&g.lan)));
    }
    if g.admin {
        parts.push("SSH on the LAN".into());
    }
    match &g.reach {
        Reach::None => {}
        Reach::All => parts.push("all peers".into()),
        Reach::Groups(ts) => parts.push(format!(
            "peers {}",
            ts.iter()
                .map(|t| plan.groups[*t].name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
    parts.join(", ")
}

fn describe_client(plan: &Plan, fp: &FamilyPlan) -> String {
    let addrs = join_or_none(&fp.addresses);
    let endpoints = join_or_none(&fp.endpoints);
    let lan = if plan.allow_lan {
        "LAN reachable"
    } else {
        "LAN only through the tunnel"
    };
    let tunnel_in = if fp.policy == InputPolicy::Accept {
        "accepted"
    } else {
        "only replies"
    };
    let nat = if fp.nat != Nat::Off {
        "masqueraded into the tunnel"
    } else {
        "routed into the tunnel"
    };
    let kept = if plan.lockdown {
        "; kept after down (--lockdown)"
    } else {
        ""
    };
    format!(
        "{}: address {addrs}; only the tunnel, and UDP to the endpoints {endpoints}; {lan}; input from the tunnel: {tunnel_in}; forwarded traffic {nat}; MSS {}{kept}",
        fp.family, fp.mss
    )
}

fn join_or_none<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
