//! What the hook shows a person: the text `plan` prints. Pure: it formats a plan, nothing more.

use std::collections::BTreeMap;

use crate::backend::{self, Backend};
use crate::config::types::Role;
use crate::plan::ledger::Key;
use crate::plan::{FamilyPlan, InputPolicy, Plan};

/// What `plan` prints: a header of facts, one restore script per family, the sysctl writes.
pub fn plan(plan: &Plan, backend: Backend, why: &str, current: &BTreeMap<Key, String>) -> String {
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
    for n in &plan.notes {
        s.push_str(&format!("# note: {n}\n"));
    }
    s.push_str(&backend::show(backend, plan));
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
    let nat = if fp.masquerade {
        "masquerade"
    } else {
        "routed"
    };
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
    let nat = if fp.masquerade {
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

/// Enough JSON for `status --json`, without a dependency for it.
pub enum Json {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn render(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Num(n) => n.to_string(),
            Json::Str(s) => quote(s),
            Json::Array(items) => format!(
                "[{}]",
                items.iter().map(Json::render).collect::<Vec<_>>().join(",")
            ),
            Json::Object(fields) => format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", quote(k), v.render()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole of `status --json`.
pub fn status_json(conntrack: Option<(u64, u64)>, interfaces: &[Json]) -> String {
    let ct = match conntrack {
        Some((n, max)) => Json::Object(vec![("entries", Json::Num(n)), ("max", Json::Num(max))]),
        None => Json::Null,
    };
    let items: Vec<String> = interfaces.iter().map(Json::render).collect();
    format!(
        "{{\"conntrack\":{},\"interfaces\":[{}]}}",
        ct.render(),
        items.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_escaped() {
        let j = Json::Object(vec![
            ("a\"b", Json::Str("x\\y\n".into())),
            ("n", Json::Null),
            ("l", Json::Array(vec![Json::Num(1), Json::Bool(true)])),
        ]);
        assert_eq!(j.render(), r#"{"a\"b":"x\\y\u000a","n":null,"l":[1,true]}"#);
        assert_eq!(
            status_json(None, &[]),
            r#"{"conntrack":null,"interfaces":[]}"#
        );
    }
}
