//! Reads the facts a plan needs from the running system: default routes, the live interface,
//! current sysctls, the live ruleset. Read-only: nothing here changes the host.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::types::{IfaceName, Port};
use crate::config::wgconf::{Peer, WgConfig};
use crate::plan::ledger::Key;
use crate::plan::{Family, HostFacts};
use crate::system::cmd;
use crate::system::{sysctl, uapi};

use super::os::os;

pub(crate) fn gather(iface: &IfaceName, wan: Option<&IfaceName>, need_port: bool) -> HostFacts {
    let mut facts = HostFacts {
        ipv6_enabled: ipv6_enabled(),
        ..HostFacts::default()
    };
    if let Some(dev) = default_dev_v4(&read("/proc/net/route")) {
        facts.default_dev.insert(Family::V4, dev);
    }
    if let Some(dev) = default_dev_v6(&read("/proc/net/ipv6_route")) {
        facts.default_dev.insert(Family::V6, dev);
    }
    facts.live_mtu = live_mtu(iface);
    if need_port && facts.live_mtu.is_some() {
        facts.live_port = wg_show(iface, "listen-port").and_then(|o| o.trim().parse::<Port>().ok());
    }
    let mut devs: Vec<String> = vec!["all".into(), "default".into(), iface.to_string()];
    devs.extend(facts.default_dev.values().map(ToString::to_string));
    devs.extend(wan.map(ToString::to_string));
    for dev in devs {
        for key in [
            format!("net/ipv4/conf/{dev}/rp_filter"),
            format!("net/ipv6/conf/{dev}/accept_ra"),
        ] {
            let key = Key::new(key);
            if let Ok(v) = sysctl::read(&key) {
                facts.sysctl.insert(key, v);
            }
        }
    }
    facts
}

/// Client role: the peers' endpoints as `wg show IFACE endpoints` reports them; failing that,
/// the config's `Endpoint`s, names resolved only then. Also says where they came from.
pub(crate) fn endpoints(iface: &IfaceName, conf: &WgConfig) -> (Vec<SocketAddr>, Vec<String>) {
    let live: Vec<SocketAddr> = wg_show(iface, "endpoints")
        .map(|o| parse_endpoints(&o))
        .unwrap_or_default();
    if !live.is_empty() {
        return (live, Vec::new());
    }
    let mut found = Vec::new();
    let mut notes = Vec::new();
    for peer in &conf.peers {
        let Some(ep) = &peer.endpoint else { continue };
        match ep.parse::<SocketAddr>() {
            Ok(a) => found.push(a),
            Err(_) => match ep.to_socket_addrs() {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    notes.push(format!("Endpoint {ep} resolves to {}", list(&addrs)));
                    found.extend(addrs);
                }
                Err(e) => notes.push(format!(
                    "{}:{}: Endpoint {ep} does not resolve ({e}): no way out to it",
                    conf.path.display(),
                    peer.line
                )),
            },
        }
    }
    found.sort();
    found.dedup();
    (found, notes)
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

thread_local! {
    /// The question `ask_peers` put, until `live_peers` reads its answer.
    static ASKED: RefCell<Option<(IfaceName, Option<uapi::Asked>)>> = const { RefCell::new(None) };
}

/// Asks the live interface for its peers now and reads the answer in `live_peers`: a userspace
/// WireGuard works it out (`uapi` says how long) while the hook reads the wg-quick config and
/// the ruleset, instead of after.
pub(crate) fn ask_peers(iface: &IfaceName) {
    let asked = os().uapi_ask(iface);
    ASKED.with(|a| *a.borrow_mut() = Some((iface.clone(), asked)));
}

/// The live interface's peers and their AllowedIPs: a userspace WireGuard's own socket's,
/// else `wg show IFACE allowed-ips`; `None` where the interface or `wg` is not there, and
/// where the daemon did not answer in time or answered too much (`uapi::DEADLINE`, `CAP`):
/// then, with a warning, the plan follows the config (a firewall from the config beats no
/// tunnel), and that daemon is not asked again, not even through `wg`.
pub(crate) fn live_peers(iface: &IfaceName) -> Option<Vec<(String, Vec<IpNet>)>> {
    let early = ASKED.with(|a| a.borrow_mut().take_if(|(i, _)| i == iface));
    let asked = match early {
        Some((_, asked)) => asked,
        None => os().uapi_ask(iface),
    };
    let peers = live_peers_asked(iface, asked);
    if let Some(p) = &peers {
        READ.with(|r| *r.borrow_mut() = Some((iface.clone(), p.clone())));
    }
    peers
}

/// The peers the last plan was made with (`live_peers`), taken: a watcher compares its poll's
/// answers with what the firewall was built from, not with its own last answer.
pub(crate) fn take_peers_read(iface: &IfaceName) -> Option<Vec<(String, Vec<IpNet>)>> {
    READ.with(|r| r.borrow_mut().take_if(|(i, _)| i == iface))
        .map(|(_, peers)| peers)
}

fn live_peers_asked(
    iface: &IfaceName,
    asked: Option<uapi::Asked>,
) -> Option<Vec<(String, Vec<IpNet>)>> {
    match asked.map(uapi::Asked::answer) {
        Some(Ok(text)) => {
            if let Some(peers) = uapi::parse_peers(&text) {
                return Some(peers);
            }
        }
        // `wg show` would ask the same daemon: the config it is.
        Some(Err(why)) => {
            SILENT.with(|s| s.borrow_mut().insert(iface.clone()));
            crate::errln!(
                "wgfw-hook: warning: {why}: the peers' rules follow the config's AllowedIPs (run \"wgfw-hook up {iface}\" again once it answers)"
            );
            return None;
        }
        None => {}
    }
    let out = wg_show(iface, "allowed-ips")?;
    Some(parse_allowed_ips(&out))
}

/// The live listen port and peers, asked afresh and quietly, for a watcher's poll: None where
/// they cannot be read now (a daemon that does not answer is asked again next time).
pub(crate) fn device_now(iface: &IfaceName) -> Option<(Option<Port>, uapi::Peers)> {
    match os().uapi_ask(iface).map(uapi::Asked::answer) {
        Some(Ok(text)) => uapi::parse_device(&text),
        Some(Err(_)) => None,
        None => {
            let dump = cmd::run("wg", &["show", iface.as_str(), "dump"], None)
                .ok()
                .filter(|o| o.ok)?;
            let conf = parse_live(iface, "", &dump.stdout);
            let peers = conf.peers.into_iter();
            Some((
                conf.listen_port,
                peers
                    .map(|p| (p.public_key.unwrap_or_default(), p.allowed_ips))
                    .collect(),
            ))
        }
    }
}

/// Forgets that the interface's daemon did not answer, so that the next plan asks it again: a
/// watcher lives longer than one silence.
pub(crate) fn forget_silence(iface: &IfaceName) {
    SILENT.with(|s| s.borrow_mut().remove(iface));
}

thread_local! {
    /// The peers `live_peers` last read, and of which interface (`take_peers_read`).
    static READ: RefCell<Option<(IfaceName, uapi::Peers)>> = const { RefCell::new(None) };
    /// The interfaces whose userspace WireGuard did not answer (`live_peers`): not asked again,
    /// neither on its socket nor through `wg`, which asks that same socket.
    static SILENT: RefCell<BTreeSet<IfaceName>> = const { RefCell::new(BTreeSet::new()) };
}

/// What `wg show IFACE WHAT` prints; None where it fails, or where the interface's daemon
/// did not answer before.
fn wg_show(iface: &IfaceName, what: &str) -> Option<String> {
    if SILENT.with(|s| s.borrow().contains(iface)) {
        return None;
    }
    cmd::run("wg", &["show", iface.as_str(), what], None)
        .ok()
        .filter(|o| o.ok)
        .map(|o| o.stdout)
}

/// `PUBLIC-KEY<TAB>NET NET...`, or `(none)` for a peer without AllowedIPs.
fn parse_allowed_ips(text: &str) -> Vec<(String, Vec<IpNet>)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?.to_string();
            Some((key, words.filter_map(|w| w.parse().ok()).collect()))
        })
        .collect()
}

/// Reads `wg show IFACE endpoints`: `PUBLIC-KEY<TAB>ADDRESS:PORT` or `(none)`.
fn parse_endpoints(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.split('\t').nth(1)?.trim().parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the interface exists in this network namespace. (/proc/sys/net follows the
/// caller's namespace; /sys/class/net follows the namespace /sys was mounted in.)
pub(crate) fn iface_exists(iface: &IfaceName) -> bool {
    os().exists(&Path::new("/proc/sys/net/ipv4/conf").join(iface.as_str()))
}

/// The interface's index in this network namespace (SIOCGIFINDEX, like the MTU below).
pub(crate) fn ifindex(iface: &IfaceName) -> Option<u32> {
    crate::system::os::ifindex(iface.as_str())
}

/// The interface's MTU, asked of the kernel with SIOCGIFMTU on a socket made here: like
/// /proc/sys/net it follows the caller's network namespace, and it starts no process.
pub(crate) fn live_mtu(iface: &IfaceName) -> Option<u32> {
    if !iface_exists(iface) {
        return None;
    }
    os().mtu(iface)
}

/// Whether the interface is there with an address of its own (scope global), as `ip` shows it.
pub(crate) fn has_global_address(iface: &IfaceName) -> bool {
    iface_exists(iface)
        && cmd::run(
            "ip",
            &[
                "-o",
                "address",
                "show",
                "dev",
                iface.as_str(),
                "scope",
                "global",
            ],
            None,
        )
        .is_ok_and(|o| o.ok && !o.stdout.trim().is_empty())
}

/// What the live interface shows, as a config: its global addresses, listen port, MTU and the
/// peers' allowed IPs. `None` when the interface is not up.
pub(crate) fn live_config(iface: &IfaceName) -> Option<WgConfig> {
    let mtu = live_mtu(iface)?;
    let addrs = cmd::run(
        "ip",
        &["-o", "address", "show", "dev", iface.as_str()],
        None,
    )
    .ok()
    .filter(|o| o.ok)?;
    let dump = wg_show(iface, "dump")?;
    let mut conf = parse_live(iface, &addrs.stdout, &dump);
    conf.mtu = Some(mtu);
    Some(conf)
}

/// Builds a config from `ip -o address show dev IFACE` and `wg show IFACE dump`.
pub(crate) fn parse_live(iface: &IfaceName, addrs: &str, dump: &str) -> WgConfig {
    let mut conf = WgConfig {
        path: format!("(live interface {iface})").into(),
        live: true,
        ..WgConfig::default()
    };
    for line in addrs.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // 2: wg0    inet 10.66.0.1/24 scope global wg0 ...
        if let Some(i) = f.iter().position(|w| *w == "inet" || *w == "inet6") {
            let global = f.windows(2).any(|w| w == ["scope", "global"]);
            if let (true, Some(Ok(net))) = (global, f.get(i + 1).map(|a| a.parse::<ipnet::IpNet>()))
            {
                conf.addresses.push(net);
            }
        }
    }
    let mut lines = dump.lines();
    // private-key public-key listen-port fwmark
    if let Some(first) = lines.next() {
        conf.listen_port = first
            .split('\t')
            .nth(2)
            .and_then(|p| p.parse::<Port>().ok());
    }
    for (n, line) in lines.enumerate() {
        // public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive
        let f: Vec<&str> = line.split('\t').collect();
        let allowed_ips = f
            .get(3)
            .map(|a| a.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        conf.peers.push(Peer {
            line: n + 2,
            public_key: f.first().map(|k| k.to_string()),
            endpoint: f.get(2).filter(|e| **e != "(none)").map(|e| e.to_string()),
            allowed_ips,
        });
    }
    conf
}

fn read(path: &str) -> String {
    os().read(Path::new(path)).unwrap_or_default()
}

/// Whether this kernel has IPv6.
pub(crate) fn ipv6_enabled() -> bool {
    os().exists(Path::new("/proc/sys/net/ipv6"))
}

/// The device of the IPv4 default route with the lowest metric, from /proc/net/route.
pub(crate) fn default_dev_v4(table: &str) -> Option<IfaceName> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000")
                .then(|| Some((f[6].parse::<u64>().ok()?, f[0].parse::<IfaceName>().ok()?)))?
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, dev)| dev)
}

/// The device of the IPv6 default route with the lowest metric, from /proc/net/ipv6_route,
/// skipping the kernel's unreachable routes on lo.
pub(crate) fn default_dev_v6(table: &str) -> Option<IfaceName> {
    const RTF_REJECT: u32 = 0x0200;
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // dest plen src splen nexthop metric refcnt use flags dev
            if f.len() < 10 || f[0] != "00000000000000000000000000000000" || f[1] != "00" {
                return None;
            }
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            if flags & RTF_REJECT != 0 || f[9] == "lo" {
                return None;
            }
            Some((
                u32::from_str_radix(f[5], 16).ok()?,
                f[9].parse::<IfaceName>().ok()?,
            ))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, dev)| dev)
}

/// The interface the main routing table sends `addr` to (the longest prefix, then the lowest
/// metric), from /proc/net/route and /proc/net/ipv6_route.
pub(crate) fn route_dev(addr: IpAddr) -> Option<IfaceName> {
    let table = match addr {
        IpAddr::V4(_) => routes_v4(&read("/proc/net/route")),
        IpAddr::V6(_) => routes_v6(&read("/proc/net/ipv6_route")),
    };
    best_route(table, addr)
}

fn best_route(table: Vec<Route>, addr: IpAddr) -> Option<IfaceName> {
    table
        .into_iter()
        .filter(|r| r.dest.contains(&addr))
        .max_by_key(|r| (r.dest.prefix_len(), std::cmp::Reverse(r.metric)))
        .map(|r| r.dev)
}

/// The main table's routes that matter to the `--lan` networks: those that hold one (default
/// routes too) and those inside one, one per destination (the lowest metric's).
pub(crate) fn lan_routes(lans: &[IpNet]) -> Vec<(IpNet, IfaceName)> {
    if lans.is_empty() {
        return Vec::new();
    }
    let mut all = routes_v4(&read("/proc/net/route"));
    all.extend(routes_v6(&read("/proc/net/ipv6_route")));
    overlapping(all, lans)
}

fn overlapping(mut routes: Vec<Route>, lans: &[IpNet]) -> Vec<(IpNet, IfaceName)> {
    routes.retain(|r| {
        r.dev.as_str() != "lo"
            && lans
                .iter()
                .any(|l| l.contains(&r.dest) || r.dest.contains(l))
    });
    routes.sort_by_key(|r| (r.dest, r.metric));
    routes.dedup_by_key(|r| r.dest);
    routes.into_iter().map(|r| (r.dest, r.dev)).collect()
}

/// The families each device routes networks of (IPv6 link-local and multicast, and host
/// routes, not counted): what makes a bridge or a tunnel a router (`plan::reliance`).
pub(crate) fn routed_families() -> BTreeMap<String, BTreeSet<Family>> {
    let mut out: BTreeMap<String, BTreeSet<Family>> = BTreeMap::new();
    for r in routes_v4(&read("/proc/net/route")) {
        out.entry(r.dev.to_string()).or_default().insert(Family::V4);
    }
    for r in routes_v6(&read("/proc/net/ipv6_route")) {
        let IpNet::V6(net) = r.dest else { continue };
        let first = net.addr().segments()[0];
        if net.prefix_len() < 128 && first & 0xffc0 != 0xfe80 && first & 0xff00 != 0xff00 {
            out.entry(r.dev.to_string()).or_default().insert(Family::V6);
        }
    }
    out
}

/// A route of the main table.
struct Route {
    dest: IpNet,
    metric: u32,
    dev: IfaceName,
}

/// /proc/net/route: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, the
/// addresses as words in host order.
fn routes_v4(table: &str) -> Vec<Route> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::swap_bytes);
            let mask = word(f.get(7)?)?;
            let dest = Ipv4Net::with_netmask(Ipv4Addr::from(word(f[1])?), mask.into()).ok()?;
            Some(Route {
                dest: IpNet::V4(dest.trunc()),
                metric: f[6].parse().ok()?,
                dev: f[0].parse().ok()?,
            })
        })
        .collect()
}

/// /proc/net/ipv6_route: `dest plen src splen nexthop metric refcnt use flags dev`, without
/// the unreachable routes.
fn routes_v6(table: &str) -> Vec<Route> {
    const RTF_REJECT: u32 = 0x0200;
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || u32::from_str_radix(f[8], 16).ok()? & RTF_REJECT != 0 {
                return None;
            }
            let dest = Ipv6Addr::from(u128::from_str_radix(f[0], 16).ok()?);
            let len = u8::from_str_radix(f[1], 16).ok()?;
            Some(Route {
                dest: IpNet::V6(Ipv6Net::new(dest, len).ok()?.trunc()),
                metric: u32::from_str_radix(f[5], 16).ok()?,
                dev: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// Connection-tracking use: (entries, limit), when the kernel tracks connections here.
pub(crate) fn conntrack_use() -> Option<(u64, u64)> {
    let n = read("/proc/sys/net/netfilter/nf_conntrack_count")
        .trim()
        .parse()
        .ok()?;
    let max = read("/proc/sys/net/netfilter/nf_conntrack_max")
        .trim()
        .parse()
        .ok()?;
    Some((n, max))
}

/// Peers whose latest handshake is older than `max_age_secs` (or never happened), from
/// `wg show IFACE latest-handshakes`: (public key, seconds since, or None for never).
pub(crate) fn stale_peers(
    iface: &IfaceName,
    now: u64,
    max_age_secs: u64,
) -> Vec<(String, Option<u64>)> {
    wg_show(iface, "latest-handshakes")
        .map(|o| parse_stale(&o, now, max_age_secs))
        .unwrap_or_default()
}

fn parse_stale(text: &str, now: u64, max_age_secs: u64) -> Vec<(String, Option<u64>)> {
    text.lines()
        .filter_map(|l| {
            let (key, when) = l.split_once('\t')?;
            let when: u64 = when.trim().parse().ok()?;
            match when {
                0 => Some((key.to_string(), None)),
                t if now.saturating_sub(t) > max_age_secs => Some((key.to_string(), Some(now - t))),
                _ => None,
            }
        })
        .collect()
}

/// The largest peak resident memory of the programs this process ran and waited for (KiB).
pub fn children_peak_rss_kib() -> Option<u64> {
    // struct rusage: two timevals (32 bytes), then ru_maxrss (a long, in KiB).
    let mut usage = [0i64; 18];
    // SAFETY: the buffer is larger than struct rusage and writable.
    let rc = unsafe { getrusage(RUSAGE_CHILDREN, usage.as_mut_ptr().cast()) };
    (rc == 0).then(|| u64::try_from(usage[4]).unwrap_or(0))
}

const RUSAGE_CHILDREN: i32 = -1;

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut std::ffi::c_void) -> i32;
}

/// This process's peak resident memory (VmHWM), for `-vv` and the benchmark: the programs it
/// runs are not counted, unlike in a wait4(2) figure.
pub fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake::Fake;

    #[test]
    fn peers_asked_early_are_read_once_for_that_interface() {
        let fake = Fake::new(&["wg"], Some(1420));
        let _on = fake.install();
        fake.answer("wg show wg0 allowed-ips", "abc=\t10.66.0.2/32\n");
        let wg0: IfaceName = "wg0".parse().unwrap();
        ask_peers(&wg0);
        assert_eq!(fake.asked(), ["wg0"]);
        // The early question is the one answered (here: none, so `wg show` tells).
        let peers = live_peers(&wg0).unwrap();
        assert_eq!(
            peers,
            [("abc=".into(), vec!["10.66.0.2/32".parse().unwrap()])]
        );
        assert!(fake.asked().is_empty());
        // Answered once: a later read asks again, as does one for another interface.
        live_peers(&wg0);
        assert_eq!(fake.asked(), ["wg0"]);
        ask_peers(&"wg1".parse().unwrap());
        live_peers(&wg0);
        assert_eq!(fake.asked(), ["wg1", "wg0"]);
    }

    #[test]
    fn a_daemon_that_did_not_answer_is_not_asked_again_through_wg() {
        let fake = Fake::new(&["wg"], Some(1420));
        let _on = fake.install();
        fake.silence_daemon();
        fake.answer("wg show wg9 allowed-ips", "abc=\t10.66.0.2/32\n");
        let wg9: IfaceName = "wg9".parse().unwrap();
        ask_peers(&wg9);
        assert_eq!(live_peers(&wg9), None, "the config's AllowedIPs");
        assert!(stale_peers(&wg9, 0, 1).is_empty());
        assert!(fake.take().is_empty(), "no wg show for wg9");
        // Another interface is asked as before.
        stale_peers(&"wg8".parse().unwrap(), 0, 1);
        assert_eq!(fake.take().len(), 1);
    }

    #[test]
    fn finds_default_routes() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
                  eth0\t00000000\t017100CB\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  eth0\t007100CB\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_dev_v4(v4).unwrap().as_str(), "eth0");
        assert_eq!(default_dev_v4(""), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000100000000000000000001 00000400 00000001 00000000 00000003     eth0\n\
                  20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n";
        assert_eq!(default_dev_v6(v6).unwrap().as_str(), "eth0");
        assert_eq!(default_dev_v6(v6.lines().next().unwrap()), None);
        let wg = "wg0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = format!("{v4}{wg}");
        let dev =
            |a: &str| best_route(routes_v4(&routes), a.parse().unwrap()).map(|d| d.to_string());
        assert_eq!(dev("192.0.2.9").as_deref(), Some("wg0"));
        assert_eq!(
            dev("203.0.113.7").as_deref(),
            Some("eth0"),
            "its own network"
        );
        assert_eq!(
            dev("198.51.100.1").as_deref(),
            Some("eth0"),
            "the lowest metric's default"
        );
        let dev6 = |a: &str| best_route(routes_v6(v6), a.parse().unwrap()).map(|d| d.to_string());
        assert_eq!(dev6("2001:db8:1::5").as_deref(), Some("eth0"));
        assert_eq!(dev6("2001:db8:9::5").as_deref(), Some("eth0"));
    }

    #[test]
    fn finds_the_routes_of_the_lan_networks() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
                  eth0\t00000000\t017100CB\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  lan0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  lan1\t0009A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  fd000001000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     lan0\n";
        let mut routes = routes_v4(v4);
        routes.extend(routes_v6(v6));
        let lans: Vec<IpNet> = ["192.168.0.0/16", "fd00:1::/48"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let got: Vec<String> = overlapping(routes, &lans)
            .iter()
            .map(|(n, d)| format!("{n} {d}"))
            .collect();
        assert_eq!(
            got,
            [
                "0.0.0.0/0 eth0",
                "192.168.1.0/24 lan0",
                "192.168.9.0/24 lan1",
                "fd00:1::/64 lan0"
            ]
        );
    }

    #[test]
    fn reads_the_live_interface() {
        let addrs = "5: wg0    inet 10.66.0.1/24 scope global wg0\\       valid_lft forever preferred_lft forever\n\
                     5: wg0    inet6 fd66::1/64 scope global \\       valid_lft forever preferred_lft forever\n\
                     5: wg0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever\n";
        let dump = "cHJpdg==\tcHVi\t40123\toff\n\
                    a2V5MQ==\t(none)\t198.51.100.2:51820\t10.66.0.2/32,fd66::2/128\t0\t0\t0\toff\n\
                    a2V5Mg==\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";
        let c = parse_live(&"wg0".parse().unwrap(), addrs, dump);
        assert_eq!(c.addresses.len(), 2);
        assert_eq!(c.listen_port, Port::new(40123));
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[0].allowed_ips.len(), 2);
        assert_eq!(c.peers[0].endpoint.as_deref(), Some("198.51.100.2:51820"));
        assert!(c.peers[1].allowed_ips.is_empty() && c.peers[1].endpoint.is_none());
    }

    #[test]
    fn reads_allowed_ips() {
        let peers = parse_allowed_ips("AAAA=\t10.66.0.2/32 fd66::2/128\nBBBB=\t(none)\n");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].1.len(), 2);
        assert!(peers[1].1.is_empty());
    }

    #[test]
    fn reads_endpoints() {
        let e = parse_endpoints(
            "a2V5MQ==\t203.0.113.2:51820\nb\t(none)\nc\t[2001:db8::1]:443\nd\t203.0.113.2:51820\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].to_string(), "203.0.113.2:51820");
        assert_eq!(e[1].to_string(), "[2001:db8::1]:443");
        let conf = crate::config::wgconf::parse(
            Path::new("c.conf"),
            "[Peer]\nEndpoint = 198.51.100.9:51820\n[Peer]\nEndpoint = [2001:db8::9]:1\n",
        )
        .unwrap();
        let (found, notes) = endpoints(&"nonexistent-if".parse().unwrap(), &conf);
        assert_eq!((found.len(), notes.len()), (2, 0));
    }

    #[test]
    fn finds_stale_peers() {
        let now = 1_800_000_000;
        let text = format!("a=\t0\nb=\t{}\nc=\t{}\n", now - 60, now - 8 * 86_400);
        let stale = parse_stale(&text, now, 7 * 86_400);
        assert_eq!(
            stale,
            vec![
                ("a=".to_string(), None),
                ("c=".to_string(), Some(8 * 86_400))
            ]
        );
    }

    #[test]
    fn reads_the_mtu_of_loopback() {
        // Every network namespace has lo, with its MTU of 65536 unless someone changed it.
        let lo = "lo".parse::<IfaceName>().unwrap();
        let mtu = live_mtu(&lo).expect("SIOCGIFMTU on lo");
        assert!(mtu >= 1280, "{mtu}");
        assert_eq!(live_mtu(&"nosuch0".parse::<IfaceName>().unwrap()), None);
    }
}
