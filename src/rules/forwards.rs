//! Port forwards (`--forward`): the destination NAT that publishes a port of this host for a
//! service behind the tunnel (IPv4), the forward accept for exactly that flow, and the
//! masquerade that makes the reply come back through this host without the target changing
//! anything. IPv6 is not translated: an accept to the target's own address.
//!
//! From the WAN only, unless a forward asks for more (`from-lan`, `from-peers`): the DNAT
//! matches this host's own addresses, so those hosts reach it where the internet does.

use ipnet::IpNet;

use crate::config::forward::Forward;
use crate::plan::{Family, FamilyPlan, Plan};

use super::model::{Chain, Ct, Match, Ports, Rule, Verdict, rule};
use super::names::Kind;
use super::parts::{chain, log_limit};

/// The label `status` counts a forward's connections by.
fn label(f: &Forward) -> String {
    format!("forward {f}")
}

fn of_family<'a>(plan: &'a Plan, fp: &FamilyPlan) -> impl Iterator<Item = &'a Forward> {
    let v6 = fp.family == Family::V6;
    plan.forwards.iter().filter(move |f| f.to.is_ipv6() == v6)
}

fn dport(f: &Forward, ports: Ports) -> Match {
    Match::L4 {
        proto: f.public.proto,
        sport: None,
        dport: Some(ports),
        syn: false,
    }
}

fn public_ports(f: &Forward) -> Ports {
    Ports(f.public.first.get(), f.public.last.get())
}

fn target(f: &Forward) -> Vec<Match> {
    let (first, last) = f.to_ports();
    vec![Match::Dst(IpNet::from(f.to)), dport(f, Ports(first, last))]
}

/// Where a forward is reached from: the WAN, and what it asks for, as matches on the way in.
fn sources(plan: &Plan, fp: &FamilyPlan, f: &Forward) -> Vec<Match> {
    let mut from: Vec<Match> = fp.wan.iter().map(|w| Match::In(w.to_string())).collect();
    if f.from_lan {
        from.extend(
            super::groups::all_lans(plan, fp)
                .into_iter()
                .map(Match::Src),
        );
    }
    if f.from_peers {
        from.push(Match::In(plan.iface.to_string()));
    }
    from
}

/// nat PREROUTING: this host's public ports to the targets (IPv4).
pub(super) fn dnat(plan: &Plan, fp: &FamilyPlan) -> Option<Chain> {
    if fp.family != Family::V4 {
        return None;
    }
    let mut rules = Vec::new();
    for f in of_family(plan, fp) {
        let to = Verdict::Dnat {
            to: f.to,
            port: f.to_port.map(|p| p.get()),
        };
        for from in sources(plan, fp, f) {
            rules.push(rule(
                vec![from, dport(f, public_ports(f)), Match::DstLocal],
                to.clone(),
            ));
        }
    }
    (!rules.is_empty()).then(|| chain(&plan.iface, Kind::Dnat, rules))
}

/// FWD: exactly the forwarded flows, each new connection logged (limited) and counted. IPv4
/// needs this forward's DNAT to have happened (so a peer's address is never reached directly,
/// and forwards to one target count apart); IPv6 is reached directly, from where the forward
/// is reached.
pub(super) fn accepts(plan: &Plan, fp: &FamilyPlan) -> Vec<Rule> {
    let wg = Match::Out(plan.iface.to_string());
    let mut rules = Vec::new();
    for f in of_family(plan, fp) {
        let ways: Vec<(Option<Match>, Match)> = match fp.family {
            Family::V4 => vec![(None, Match::DnatFrom(public_ports(f)))],
            Family::V6 => sources(plan, fp, f)
                .into_iter()
                .map(|from| (Some(from), Match::Ct(Ct::New)))
                .collect(),
        };
        for (from, ct) in ways {
            let mut m: Vec<Match> = from.into_iter().collect();
            m.push(wg.clone());
            m.extend(target(f));
            m.push(ct);
            if plan.log {
                let mut logged = m.clone();
                logged.push(log_limit());
                rules.push(rule(logged, log(plan)));
            }
            rules.push(rule(m, Verdict::Accept).counted(label(f)));
        }
    }
    rules
}

/// nat POSTROUTING: the target sees this host as the client, so its reply comes back here
/// whatever its routes; `keep-source` forwards are left alone.
pub(super) fn masquerades(plan: &Plan, fp: &FamilyPlan) -> Vec<Rule> {
    if fp.family != Family::V4 {
        return Vec::new();
    }
    of_family(plan, fp)
        .filter(|f| !f.keep_source)
        .map(|f| {
            let mut m = vec![Match::Out(plan.iface.to_string())];
            m.extend(target(f));
            m.push(Match::DnatFrom(public_ports(f)));
            rule(m, Verdict::Masquerade)
        })
        .collect()
}

fn log(plan: &Plan) -> Verdict {
    Verdict::Log(format!("wgfw-{} fwd: ", plan.iface))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Options;
    use crate::plan::{HostFacts, for_test};
    use crate::rules::iptables::render_rule;

    fn plan(forwards: &[&str], lan: &[&str]) -> Plan {
        let opts = Options {
            forward: forwards.iter().map(|f| f.parse().unwrap()).collect(),
            lan: lan.iter().map(|n| n.parse().unwrap()).collect(),
            ..Options::default()
        };
        let conf = "[Interface]\nAddress = 10.66.0.1/24, 2001:db8:66::1/64\nListenPort = 51820\n";
        for_test(conf, &opts, &HostFacts::example()).unwrap()
    }

    fn text(rules: &[Rule], family: Family) -> Vec<String> {
        rules.iter().map(|r| render_rule(r, family)).collect()
    }

    #[test]
    fn a_forward_is_one_flow_from_the_wan() {
        let p = plan(&["tcp/8443=10.66.0.2:443"], &[]);
        let v4 = &p.families[0];
        let chain = dnat(&p, v4).unwrap();
        assert_eq!(
            text(&chain.rules, Family::V4),
            [
                "-i eth0 -p tcp -m tcp --dport 8443 -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.66.0.2:443"
            ]
        );
        assert_eq!(
            text(&accepts(&p, v4), Family::V4),
            [
                "-d 10.66.0.2/32 -o wg0 -p tcp -m tcp --dport 443 -m conntrack --ctstate DNAT --ctorigdstport 8443 -m limit --limit 5/min --limit-burst 10 -j LOG --log-prefix \"wgfw-wg0 fwd: \"",
                "-d 10.66.0.2/32 -o wg0 -p tcp -m tcp --dport 443 -m conntrack --ctstate DNAT --ctorigdstport 8443 -j ACCEPT",
            ]
        );
        assert_eq!(
            text(&masquerades(&p, v4), Family::V4),
            [
                "-d 10.66.0.2/32 -o wg0 -p tcp -m tcp --dport 443 -m conntrack --ctstate DNAT --ctorigdstport 8443 -j MASQUERADE"
            ]
        );
        assert_eq!(
            accepts(&p, v4)[1].counts.as_deref(),
            Some("forward tcp/8443=10.66.0.2:443")
        );
        // Nothing of it in IPv6.
        let v6 = &p.families[1];
        assert!(dnat(&p, v6).is_none() && accepts(&p, v6).is_empty());
    }

    #[test]
    fn hairpin_and_source_keeping_are_asked_for() {
        let p = plan(
            &["udp/27015:27030=10.66.0.3,keep-source,from-lan,from-peers"],
            &["192.168.1.0/24"],
        );
        let v4 = &p.families[0];
        assert_eq!(
            text(&dnat(&p, v4).unwrap().rules, Family::V4),
            [
                "-i eth0 -p udp -m udp --dport 27015:27030 -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.66.0.3",
                "-s 192.168.1.0/24 -p udp -m udp --dport 27015:27030 -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.66.0.3",
                "-i wg0 -p udp -m udp --dport 27015:27030 -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.66.0.3",
            ]
        );
        assert!(masquerades(&p, v4).is_empty());
    }

    #[test]
    fn ipv6_is_an_accept_to_the_peers_own_address() {
        let p = plan(&["tcp/443=[2001:db8:66::2],from-peers"], &[]);
        let v6 = &p.families[1];
        assert!(dnat(&p, v6).is_none() && masquerades(&p, v6).is_empty());
        let accepts: Vec<String> = text(&accepts(&p, v6), Family::V6)
            .into_iter()
            .filter(|r| r.ends_with("ACCEPT"))
            .collect();
        assert_eq!(
            accepts,
            [
                "-d 2001:db8:66::2/128 -i eth0 -o wg0 -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT",
                "-d 2001:db8:66::2/128 -i wg0 -o wg0 -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT",
            ]
        );
    }
}
