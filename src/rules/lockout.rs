//! The lockout guard: `up` refuses a plan that would cut off the SSH session it is run from, or
//! any established SSH connection, unless `--force`. The addresses to keep: the client of
//! `SSH_CONNECTION`, and the peer of every established connection to the SSH port (asked of
//! the kernel by `sockdiag`, else read from /proc/net/tcp and tcp6), since `sudo` may strip the
//! environment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::types::Role;
use ipnet::IpNet;

use crate::plan::{Family, FamilyPlan, InputPolicy, Plan};
use crate::rules;

/// The SSH clients to keep: from `SSH_CONNECTION` and the peers of established connections to
/// the SSH port.
pub fn ssh_clients(ssh_connection: Option<&str>, established: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = ssh_connection
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .into_iter()
        .collect();
    out.extend(established);
    out.sort();
    out.dedup();
    out
}

/// Peers of established connections to a local port, from /proc/net/tcp and tcp6.
pub fn proc_peers(tcp: &str, tcp6: &str, port: u16) -> Vec<IpAddr> {
    let mut out = established_peers(tcp, port);
    out.extend(established_peers(tcp6, port));
    out
}

fn established_peers(table: &str, port: u16) -> Vec<IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st ...; 01 is ESTABLISHED.
            let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
            let local_port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            if *state != "01" || local_port != port {
                return None;
            }
            hex_addr(remote.rsplit_once(':')?.0)
        })
        .map(unmap)
        .collect()
}

/// The kernel prints addresses as 32-bit words in host (little-endian) order.
fn hex_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| {
        u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
            .ok()
            .map(u32::swap_bytes)
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_be_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// An IPv4 client of an IPv6 socket shows as ::ffff:a.b.c.d.
fn unmap(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `plan` could stop new SSH connections from any client at all. Where it cannot (the
/// default server plan), `up` need not ask the kernel for the SSH connections, a walk of its
/// whole connection hash table.
pub fn may_cut_off(plan: &Plan) -> bool {
    match plan.role {
        Role::Client => true,
        Role::Server => plan.families.iter().any(|fp| {
            (fp.policy == InputPolicy::Drop && (plan.ssh_port.is_none() || fp.admin.is_some()))
                || spoof_dropped(fp).next().is_some()
        }),
    }
}

/// The anti-spoofed networks that may hold a client reaching this host another way: those
/// a peer's AllowedIPs add. A client in the interface's own Address network comes through the
/// tunnel, or the tunnel's own route has cut it off already.
fn spoof_dropped(fp: &FamilyPlan) -> impl Iterator<Item = &IpNet> {
    fp.anti_spoofed()
        .filter(|n| !fp.addresses.iter().any(|a| a.trunc().contains(*n)))
}

/// Why `plan` would stop new SSH connections from `client`, if it would. `via` is the
/// interface this host reaches the client through (its route), if known: a client in a tunnel
/// network is cut off by the anti-spoofing drop unless it comes through the tunnel.
pub fn cut_off(plan: &Plan, client: IpAddr, via: Option<&str>) -> Option<String> {
    let family = if client.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let fp = plan.families.iter().find(|f| f.family == family)?;
    match plan.role {
        Role::Server => {
            if via != Some(plan.iface.as_str())
                && let Some(net) = spoof_dropped(fp).find(|n| n.contains(&client))
            {
                return Some(format!(
                    "it is in the tunnel network {net}, whose sources are dropped on every other interface, and this host reaches it through {}",
                    via.unwrap_or("no route")
                ));
            }
            if fp.policy != InputPolicy::Drop {
                return None;
            }
            match (&plan.ssh_port, &fp.admin) {
                (None, _) => Some("--ssh-port none closes SSH".into()),
                (Some(_), Some(nets)) if !nets.iter().any(|n| n.contains(&client)) => {
                    Some("it is in no --admin network".into())
                }
                _ => None,
            }
        }
        Role::Client => {
            let lan = plan.allow_lan
                && rules::lan_ranges(family, false)
                    .iter()
                    .any(|n| n.contains(&client));
            (!lan).then(|| "the kill switch lets nothing in or out but the tunnel (and, with --allow-lan, the LAN)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Options;

    #[test]
    fn finds_ssh_clients() {
        let tcp = "  sl  local_address rem_address   st tx_queue\n\
                   0: 0100007F:0016 00000000:0000 0A 00000000:00000000\n\
                   1: 020071CB:0016 050200C0:D431 01 00000000:00000000\n\
                   2: 020071CB:1F90 060200C0:D431 01 00000000:00000000\n";
        let tcp6 = "  sl  local_address rem_address st\n\
                    0: 0000000000000000FFFF0000020071CB:0016 0000000000000000FFFF0000070200C0:D431 01 x\n\
                    1: B80D0120000000000000000002000000:0016 B80D0120000000000000000009000000:1234 01 x\n";
        let got = ssh_clients(
            Some("198.51.100.4 5555 203.0.113.2 22"),
            &proc_peers(tcp, tcp6, 22),
        );
        let want: Vec<IpAddr> = ["192.0.2.5", "192.0.2.7", "198.51.100.4", "2001:db8::9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(ssh_clients(None, &proc_peers("", "", 22)).is_empty());
    }

    fn plan(opts: Options) -> Plan {
        let conf = "[Interface]\nAddress = 10.6.0.1/24\nListenPort = 1\n";
        crate::plan::for_test(conf, &opts, &crate::plan::HostFacts::example()).unwrap()
    }

    /// A peer routes public networks (here 192.0.2.0/24, where the admin's SSH comes from
    /// through eth0): their sources are dropped on eth0, so `up` must refuse. Through the
    /// tunnel itself the same client is fine.
    #[test]
    fn an_anti_spoofing_drop_that_hits_an_ssh_client_is_a_lockout() {
        let conf = "[Interface]\nAddress = 10.6.0.1/32\nListenPort = 1\n[Peer]\nAllowedIPs = 10.6.0.2/32, 192.0.2.0/24\n";
        let p = crate::plan::for_test(
            conf,
            &Options::default(),
            &crate::plan::HostFacts::example(),
        )
        .unwrap();
        assert!(may_cut_off(&p));
        let me: IpAddr = "192.0.2.5".parse().unwrap();
        let why = cut_off(&p, me, Some("eth0")).unwrap();
        assert!(
            why.contains("192.0.2.0/24") && why.contains("eth0"),
            "{why}"
        );
        assert_eq!(cut_off(&p, me, Some("wg0")), None);
        assert_eq!(
            cut_off(&p, "198.51.100.1".parse().unwrap(), Some("eth0")),
            None
        );
        // Private tunnel networks alone: no need to ask the kernel for SSH connections.
        assert!(!may_cut_off(&plan(Options::default())));
    }

    #[test]
    fn judges_what_a_plan_cuts_off() {
        let me: IpAddr = "192.0.2.5".parse().unwrap();
        let cut_off = |p: &Plan, c| cut_off(p, c, Some("eth0"));
        assert_eq!(cut_off(&plan(Options::default()), me), None);
        let admin = Options {
            admin: vec!["198.51.100.0/24".parse().unwrap()],
            ..Options::default()
        };
        assert!(cut_off(&plan(admin), me).unwrap().contains("--admin"));
        let mine = Options {
            admin: vec!["192.0.2.0/24".parse().unwrap()],
            ..Options::default()
        };
        assert_eq!(cut_off(&plan(mine), me), None);
        let none = Options {
            ssh_port: Some(None),
            ..Options::default()
        };
        assert!(cut_off(&plan(none), me).is_some());
        let client = Options {
            role: Some(Role::Client),
            allow_lan: true,
            ..Options::default()
        };
        assert!(cut_off(&plan(client.clone()), me).is_some());
        assert_eq!(cut_off(&plan(client), "192.168.1.9".parse().unwrap()), None);
    }

    /// `may_cut_off` is false only where `cut_off` spares every client.
    #[test]
    fn may_cut_off_agrees_with_cut_off() {
        let clients: Vec<IpAddr> = ["192.0.2.5", "198.51.100.9", "192.168.1.9", "10.6.0.2"]
            .iter()
            .chain(["2001:db8::9", "fd00::1", "fe80::1"].iter())
            .map(|a| a.parse().unwrap())
            .collect();
        let admin = vec!["198.51.100.0/24".parse().unwrap()];
        let cases = [
            Options::default(),
            Options {
                admin: admin.clone(),
                ..Options::default()
            },
            Options {
                ssh_port: Some(None),
                ..Options::default()
            },
            Options {
                role: Some(Role::Client),
                ..Options::default()
            },
            Options {
                role: Some(Role::Client),
                allow_lan: true,
                ..Options::default()
            },
        ];
        let mut seen = [false; 2];
        for opts in cases {
            let p = plan(opts);
            let any = clients
                .iter()
                .any(|c| cut_off(&p, *c, Some("eth0")).is_some());
            assert_eq!(may_cut_off(&p), any, "{:?} {:?}", p.role, p.ssh_port);
            seen[usize::from(any)] = true;
        }
        assert_eq!(seen, [true, true], "both answers are exercised");
    }
}
