//! The sysctl policy: which kernel settings each role needs, in the order they are written
//! (forwarding first). Pure: the values the host has now come in with `HostFacts`.

use super::ledger::{IP_FORWARD, IPV6_FORWARDING, Key, Write, w};
use super::model::{Family, HostFacts, Plan};

/// The settings of the server role, in the order they are written (forwarding first).
pub(super) fn server_writes(plan: &Plan, host: &HostFacts) -> Vec<Write> {
    let mut out = Vec::new();
    let current = |k: &str| host.sysctl.get(&Key::new(k)).map(String::as_str);
    let v4 = plan.families.iter().find(|f| f.family == Family::V4);
    let v6 = plan.families.iter().find(|f| f.family == Family::V6);
    let iface = plan.iface.as_str();

    if v4.is_some() {
        out.push(w(IP_FORWARD.into(), "1"));
    }
    let v6_forwarding = v6.is_some_and(|f| !f.tunnel_nets.is_empty());
    if v6_forwarding {
        out.push(w(IPV6_FORWARDING.into(), "1"));
        // A forwarding interface ignores router advertisements unless accept_ra is 2.
        if let Some(wan) = &v6.unwrap().wan {
            let key = format!("net/ipv6/conf/{wan}/accept_ra");
            if matches!(current(&key), Some("1" | "2")) {
                out.push(w(key, "2"));
            }
        }
    }
    if let Some(v4) = v4 {
        let devs = conf_devices(iface, v4.wan.as_ref().map(|w| w.as_str()));
        for dev in &devs {
            // Loose mode (2) stays: wg-quick's full-tunnel routing relies on it.
            let key = format!("net/ipv4/conf/{dev}/rp_filter");
            if current(&key) != Some("2") {
                out.push(w(key, "1"));
            }
        }
        for dev in &devs {
            out.push(w(format!("net/ipv4/conf/{dev}/accept_redirects"), "0"));
        }
        for dev in &devs {
            out.push(w(format!("net/ipv4/conf/{dev}/send_redirects"), "0"));
        }
    }
    if let Some(v6) = v6 {
        for dev in conf_devices(iface, v6.wan.as_ref().map(|w| w.as_str())) {
            out.push(w(format!("net/ipv6/conf/{dev}/accept_redirects"), "0"));
        }
    }
    if v4.is_some() {
        out.push(w("net/ipv4/tcp_syncookies".into(), "1"));
    }
    out
}

/// The settings of the client role: no ICMP redirects. Forwarding and reverse-path filtering
/// are left as they are: a router has forwarding on already, and wg-quick's full-tunnel
/// routing relies on the rp_filter and src_valid_mark it sets itself.
pub(super) fn client_writes(plan: &Plan) -> Vec<Write> {
    let mut out = Vec::new();
    for fp in &plan.families {
        let v = match fp.family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        for dev in conf_devices(plan.iface.as_str(), fp.wan.as_ref().map(|w| w.as_str())) {
            out.push(w(format!("net/{v}/conf/{dev}/accept_redirects"), "0"));
        }
    }
    out
}

fn conf_devices<'a>(iface: &'a str, wan: Option<&'a str>) -> Vec<&'a str> {
    let mut devs = vec!["all", "default"];
    devs.extend(wan);
    if !devs.contains(&iface) {
        devs.push(iface);
    }
    devs.dedup();
    devs
}
