//! Per-peer policy resolved: each `[peer]`/`[group]` section's reach with the interface's
//! settings filled in, the interface's peers with their AllowedIPs (the live interface's when
//! known), and which tunnel sources belong to which group.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::cli::Options;
use crate::config::peers::{PeerReach, Section};
use crate::config::types::IfaceName;
use crate::config::wgconf::WgConfig;

use super::model::{Family, Group, HostFacts, PeerView, Reach};

/// The groups and the peers, with notes on keys that name no peer.
pub(super) fn resolve(
    iface: &IfaceName,
    conf: &WgConfig,
    opts: &Options,
    host: &HostFacts,
    notes: &mut Vec<String>,
) -> (Vec<Group>, Vec<PeerView>) {
    let sections = &opts.sections;
    let groups: Vec<Group> = sections.iter().map(|s| group(s, sections, opts)).collect();
    let listed: Vec<(&str, &[IpNet])> = match &host.live_peers {
        Some(live) => live
            .iter()
            .map(|(k, n)| (k.as_str(), n.as_slice()))
            .collect(),
        None => conf
            .peers
            .iter()
            .filter_map(|p| Some((p.public_key.as_deref()?, p.allowed_ips.as_slice())))
            .collect(),
    };
    // Sized first: collecting from flat_map would grow it a dozen times at 10,000 peers.
    let mut section_of: HashMap<&str, usize> =
        HashMap::with_capacity(groups.iter().map(|g| g.peers.len()).sum());
    section_of.extend(
        groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.peers.iter().map(move |k| (k.as_str(), i))),
    );
    let peers: Vec<PeerView> = listed
        .into_iter()
        .map(|(key, nets)| PeerView {
            group: section_of.get(key).copied(),
            key: key.to_string(),
            nets: nets.iter().map(IpNet::trunc).collect(),
        })
        .collect();
    let present: HashSet<&str> = peers.iter().map(|p| p.key.as_str()).collect();
    for (s, g) in sections.iter().zip(&groups) {
        for k in &g.peers {
            if !present.contains(k.as_str()) {
                notes.push(format!(
                    "[{} {}]: {k} is not a peer of {iface}: nothing to match until it is one (then run up again)",
                    s.kind(),
                    s.name
                ));
            }
        }
    }
    (groups, peers)
}

fn group(s: &Section, all: &[Section], opts: &Options) -> Group {
    let reach = match &s.peer_to_peer {
        None if opts.peer_to_peer => Reach::All,
        None => Reach::None,
        Some((PeerReach::None, _)) => Reach::None,
        Some((PeerReach::All, _)) => Reach::All,
        Some((PeerReach::Named(names), _)) => Reach::Groups(
            names
                .iter()
                .filter_map(|n| all.iter().position(|o| &o.name == n))
                .collect(),
        ),
    };
    Group {
        name: s.name.clone(),
        peers: s.peers.iter().map(|(k, _)| k.clone()).collect(),
        lan: s.lan.clone().unwrap_or_else(|| opts.lan.clone()),
        internet: !s.no_internet.unwrap_or(opts.no_internet),
        reach,
        host: s.allow.clone(),
        // A peer may use every service of this host, SSH too, unless its section says less.
        ssh: s.admin.unwrap_or(s.allow.is_none()),
        admin: s.admin == Some(true),
    }
}

/// The tunnel sources of one family that belong to a group, disjoint: where one peer's
/// AllowedIPs hold another's, the more specific ones are carved out, as WireGuard routes them.
pub(super) fn owned(peers: &[PeerView], family: Family) -> Vec<(IpNet, usize)> {
    let nets: Vec<(IpNet, Option<usize>)> = peers
        .iter()
        .flat_map(|p| p.nets.iter().map(|n| (*n, p.group)))
        .filter(|(n, _)| Family::of(n) == family)
        .collect();
    if !nets.iter().any(|(_, g)| g.is_some()) {
        return Vec::new();
    }
    // By network, then prefix; of equal networks the first listed stays. The keys as numbers,
    // computed once: at 10,000 peers, sorting by IpNet cost 5 ms of an `up`.
    let mut order: Vec<(u128, u8, usize)> = nets
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (bits(n.network()), n.prefix_len(), i))
        .collect();
    order.sort_unstable();
    order.dedup_by(|later, first| (later.0, later.1) == (first.0, first.1));
    let nets: Vec<(IpNet, Option<usize>)> = order.iter().map(|(.., i)| nets[*i]).collect();
    let mut out = Vec::new();
    for (i, (net, owner)) in nets.iter().enumerate() {
        let Some(g) = owner else { continue };
        // Sorted so: the networks inside this one come right after it.
        let holes: Vec<IpNet> = nets[i + 1..]
            .iter()
            .map(|(n, _)| *n)
            .take_while(|n| net.contains(n))
            .collect();
        carve(*net, &holes, &mut |piece| out.push((piece, *g)));
    }
    out
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `net` without `holes` (all inside it), as the fewest networks.
fn carve(net: IpNet, holes: &[IpNet], out: &mut dyn FnMut(IpNet)) {
    if holes.is_empty() {
        return out(net);
    }
    if holes.iter().any(|h| h.contains(&net)) {
        return;
    }
    let Ok(halves) = net.subnets(net.prefix_len() + 1) else {
        return;
    };
    for half in halves {
        let inside: Vec<IpNet> = holes
            .iter()
            .filter(|h| half.contains(*h) || h.contains(&half))
            .copied()
            .collect();
        carve(half, &inside, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(group: Option<usize>, nets: &[&str]) -> PeerView {
        PeerView {
            key: String::new(),
            group,
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn the_most_specific_allowed_ips_decide() {
        let peers = [
            view(Some(0), &["10.66.0.0/24", "fd66::/64"]),
            view(None, &["10.66.0.5/32"]),
            view(Some(1), &["10.66.0.6/32"]),
            view(Some(1), &["192.168.7.0/24"]),
        ];
        let v4 = owned(&peers, Family::V4);
        let nets = |g: usize| -> Vec<String> {
            v4.iter()
                .filter(|(_, o)| *o == g)
                .map(|(n, _)| n.to_string())
                .collect()
        };
        assert_eq!(nets(1), ["10.66.0.6/32", "192.168.7.0/24"]);
        let zero = nets(0);
        assert!(!zero.contains(&"10.66.0.0/24".to_string()));
        assert!(zero.contains(&"10.66.0.4/32".to_string()));
        assert!(zero.contains(&"10.66.0.128/25".to_string()));
        // .5 (no section) and .6 (group 1) are carved out; everything else of the /24 stays.
        let covered: u32 = zero
            .iter()
            .map(|n| 1 << (32 - n.parse::<IpNet>().unwrap().prefix_len()))
            .sum();
        assert_eq!(covered, 254);
        assert_eq!(
            owned(&peers, Family::V6),
            [("fd66::/64".parse().unwrap(), 0)]
        );
        assert!(owned(&[view(None, &["10.0.0.1/32"])], Family::V4).is_empty());
    }

    #[test]
    fn carving_many_peers_out_of_everything_is_quick() {
        let mut peers = vec![view(Some(0), &["0.0.0.0/0"])];
        for i in 0..10_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a42_0000 + i);
            peers.push(view(None, &[&format!("{a}/32")]));
        }
        let v4 = owned(&peers, Family::V4);
        assert!(v4.len() < 10_000 * 32);
        assert!(
            !v4.iter()
                .any(|(n, _)| n.contains(&"10.66.0.1".parse::<std::net::IpAddr>().unwrap()))
        );
    }
}
