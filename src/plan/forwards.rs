//! Port forwards judged against the tunnel and this host: each target must be behind the
//! tunnel (in a tunnel network or a peer's AllowedIPs), and no forward may take the tunnel's
//! own port, SSH, or another forward's port. A refusal names where the forward was written.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::forward::Forward;
use crate::config::types::{Port, Proto};
use crate::error::{Error, Result};

use super::model::{Family, FamilyPlan, PeerView};

/// The server's forwards, each checked; those of a family without rules are left out (noted).
pub(super) fn check(
    forwards: &[Forward],
    families: &[FamilyPlan],
    peers: &[PeerView],
    ports: (Option<Port>, Option<Port>),
    notes: &mut Vec<String>,
) -> Result<Vec<Forward>> {
    let (listen, ssh) = ports;
    let mut out: Vec<Forward> = Vec::new();
    for f in forwards {
        let refuse = |why: String| Error::usage(format!("{} {f}: {why}", f.origin));
        let family = Family::of(&IpNet::from(f.to));
        let Some(fp) = families.iter().find(|fp| fp.family == family) else {
            notes.push(format!("forward {f}: no {family} rules here: left out"));
            continue;
        };
        if fp.addresses.iter().any(|a| a.addr() == f.to) {
            return Err(refuse(format!(
                "{} is this host's own address: open a service of this host with --allow",
                f.to
            )));
        }
        // A peer whose AllowedIPs are everything routes the world: that is no address behind it.
        let behind = fp.tunnel_nets.iter().chain(
            peers
                .iter()
                .flat_map(|p| &p.nets)
                .filter(|n| n.prefix_len() > 0),
        );
        if !behind.clone().any(|n| n.contains(&f.to)) {
            return Err(refuse(format!(
                "{} is not behind the tunnel (no tunnel network or peer's AllowedIPs holds it): forward to a peer's address",
                f.to
            )));
        }
        let holds = |proto: Proto, p: Option<Port>| {
            f.public.proto == proto
                && p.is_some_and(|p| (f.public.first..=f.public.last).contains(&p))
        };
        if holds(Proto::Udp, listen) {
            return Err(refuse(format!(
                "udp/{} is the tunnel's own ListenPort: publish another port",
                listen.map_or(0, Port::get)
            )));
        }
        if holds(Proto::Tcp, ssh) {
            return Err(refuse(format!(
                "tcp/{} is this host's SSH port: forwarding it would cut SSH off; publish another port",
                ssh.map_or(0, Port::get)
            )));
        }
        if let Some(other) = out.iter().find(|o| {
            o.public.proto == f.public.proto
                && o.to.is_ipv6() == f.to.is_ipv6()
                && o.public.first <= f.public.last
                && f.public.first <= o.public.last
        }) {
            return Err(refuse(format!(
                "{} is forwarded already ({} {other})",
                f.public, other.origin
            )));
        }
        if let IpAddr::V6(a) = f.to {
            if a.is_unicast_link_local() {
                return Err(refuse(format!(
                    "{a} is link-local: it is reached on its link only"
                )));
            }
            if a.is_unique_local() {
                notes.push(format!(
                    "forward {f}: {a} is a unique local address: only networks that route it to this host reach it"
                ));
            }
        }
        if fp.wan.is_none() {
            notes.push(format!(
                "forward {f}: no {family} WAN (no default route, no --wan): the internet does not reach it"
            ));
        }
        out.push(f.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::cli::Options;
    use crate::plan::{HostFacts, for_test};

    const CONF: &str = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64, 2001:db8:66::1/64\nListenPort = 51820\n\
                        [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.66.0.2/32, 192.168.50.0/24\n";

    fn plan(forwards: &[&str]) -> Result<crate::plan::Plan, String> {
        let opts = Options {
            forward: forwards.iter().map(|f| f.parse().unwrap()).collect(),
            ..Options::default()
        };
        for_test(CONF, &opts, &HostFacts::example()).map_err(|e| e.to_string())
    }

    #[test]
    fn targets_behind_the_tunnel_pass() {
        let p = plan(&[
            "tcp/8443=10.66.0.2:443",
            "tcp/8444=192.168.50.7:443",
            "tcp/443=[2001:db8:66::2]",
            "tcp/8443=[fd66::2]",
            "udp/27015:27030=10.66.0.9",
        ])
        .unwrap();
        assert_eq!(p.forwards.len(), 5);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("fd66::2 is a unique local address")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn refusals_name_the_forward_and_say_why() {
        for (f, why) in [
            (
                "tcp/8443=192.0.2.7:443",
                "192.0.2.7 is not behind the tunnel",
            ),
            (
                "tcp/8443=10.66.0.1:443",
                "10.66.0.1 is this host's own address",
            ),
            (
                "udp/51000:52000=10.66.0.2",
                "udp/51820 is the tunnel's own ListenPort",
            ),
            ("tcp/22=10.66.0.2", "tcp/22 is this host's SSH port"),
            ("tcp/443=[fe80::2]", "fe80::2 is not behind the tunnel"),
        ] {
            let e = plan(&[f]).unwrap_err();
            assert!(e.starts_with(&format!("--forward {f}")), "{e}");
            assert!(e.contains(why), "{e}");
        }
        let e = plan(&["tcp/8000:8100=10.66.0.2", "tcp/8100=10.66.0.3,keep-source"]).unwrap_err();
        assert_eq!(
            e,
            "--forward tcp/8100=10.66.0.3,keep-source: tcp/8100 is forwarded already (--forward tcp/8000:8100=10.66.0.2)"
        );
        // The same port in the other family is another forward.
        assert!(plan(&["tcp/443=10.66.0.2", "tcp/443=[2001:db8:66::2]"]).is_ok());
    }
}
