//! What the last transaction left of our part of the table, kept as text beside the records:
//! each chain's rules, each set's declaration and elements, and the ruleset's generation right
//! after the commit. While the generation is the same (`system::nftgen`), nobody has changed
//! the ruleset since, so the table is exactly this: a change that only adds or deletes
//! elements (a peer added with `wg set`) is written as those elements alone, without listing
//! the table (150 ms at 10,000 peers) or rebuilding it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::types::IfaceName;
use crate::plan::Family;
use crate::rules::model::Chain;

use super::names::{TABLE, chain_name, iface_stem};
use super::{render_split, sets};

/// Our chains and sets, as a transaction writes them: the record without its generation, one
/// line per chain, rule, set and element, chains and sets by name and each set's elements
/// sorted. Kept as the text itself: at 10,000 peers a record holds 30,000 elements, and
/// comparing two sorted texts line by line costs a fraction of building maps of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shape {
    body: String,
}

impl Shape {
    pub fn of(desired: &[(Family, Chain)]) -> Shape {
        let mut chains: Vec<(String, Family, &Chain)> = desired
            .iter()
            .map(|(f, c)| (chain_name(&c.id, *f), *f, c))
            .collect();
        chains.sort_by(|a, b| a.0.cmp(&b.0));
        let mut body = String::new();
        for (name, family, c) in &chains {
            let _ = writeln!(body, "chain {name}");
            for r in c.rules.iter().flat_map(|r| render_split(r, *family)) {
                let _ = writeln!(body, "rule {r}");
            }
        }
        let mut sets = sets(desired);
        sets.dedup_by(|later, first| later.name == first.name);
        for s in sets {
            let _ = writeln!(body, "set {} {} {}", s.name, s.kind, s.decl);
            match s.elements {
                None => body.push_str("kernel\n"),
                Some(mut elements) => {
                    elements.sort_unstable();
                    elements.dedup();
                    for e in elements {
                        body.push_str("element ");
                        body.push_str(&e);
                        body.push('\n');
                    }
                }
            }
        }
        Shape { body }
    }

    /// The record: the generation, then the shape's lines.
    pub fn record(&self, generation: u32) -> String {
        format!("generation {generation}\n{}", self.body)
    }

    /// The chains and sets whose names begin with `stem`, each with its lines (its own first).
    fn blocks(&self, stem: &str) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut current: Option<&str> = None;
        for line in self.body.lines() {
            if let Some(rest) = line
                .strip_prefix("chain ")
                .or_else(|| line.strip_prefix("set "))
            {
                let name = rest.split(' ').next().unwrap_or(rest);
                current = name.starts_with(stem).then_some(name);
            }
            if let Some(name) = current {
                out.entry(name).or_default().push(line);
            }
        }
        out
    }

    /// The generation a record was written at, read without parsing the rest.
    pub fn generation_of(text: &str) -> Option<u32> {
        text.lines()
            .next()?
            .strip_prefix("generation ")?
            .parse()
            .ok()
    }

    /// A record read back, with its generation; None for anything it did not write.
    pub fn parse(text: &str) -> Option<(u32, Shape)> {
        let generation = Shape::generation_of(text)?;
        let (_, body) = text.split_once('\n')?;
        let (mut in_chain, mut in_set) = (false, false);
        for line in body.lines() {
            let word = line.split_once(' ').map_or(line, |(w, _)| w);
            match word {
                "chain" => (in_chain, in_set) = (true, false),
                "set" if line.splitn(3, ' ').count() == 3 => (in_chain, in_set) = (false, true),
                "rule" if in_chain => {}
                "element" | "kernel" if in_set => {}
                _ => return None,
            }
        }
        let body = body.to_string();
        Some((generation, Shape { body }))
    }
}

/// The transaction from `old` to `new` when only elements differ, and the one that takes it
/// back: deletions first, so that an element whose verdict changed is deleted and added
/// again. None when anything else differs (a rule, a chain, a set's declaration), or where
/// a record's elements are not in order (it was not ours).
pub fn element_change(old: &Shape, new: &Shape) -> Option<(String, String)> {
    let element = |l: &&str| l.starts_with("element ");
    let (mut was, mut now) = (old.body.lines().peekable(), new.body.lines().peekable());
    let (mut forward, mut back) = (String::new(), String::new());
    let mut set: Option<&str> = None;
    loop {
        // Both sides' next elements, merged in order, until either side's set ends.
        let (mut gone, mut came): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        let (mut last_was, mut last_now) = ("", "");
        loop {
            let (a, b) = (
                was.peek().copied().filter(element),
                now.peek().copied().filter(element),
            );
            let take_a = match (a, b) {
                (None, None) => break,
                (Some(a), Some(b)) if a == b => {
                    (last_was, last_now) = (a, b);
                    was.next();
                    now.next();
                    continue;
                }
                (Some(a), Some(b)) => a < b,
                (a, _) => a.is_some(),
            };
            if take_a {
                let a = was.next()?;
                (a > last_was).then_some(())?;
                last_was = a;
                gone.push(&a["element ".len()..]);
            } else {
                let b = now.next()?;
                (b > last_now).then_some(())?;
                last_now = b;
                came.push(&b["element ".len()..]);
            }
        }
        if !gone.is_empty() || !came.is_empty() {
            let set = set.take()?;
            write_elements(&mut forward, set, &gone, &came);
            write_elements(&mut back, set, &came, &gone);
        }
        match (was.next(), now.next()) {
            (None, None) => return Some((forward, back)),
            (Some(a), Some(b)) if a == b => {
                set = a
                    .strip_prefix("set ")
                    .and_then(|r| r.split_once(' '))
                    .map(|(n, _)| n)
            }
            _ => return None,
        }
    }
}

/// How `iface`'s own chains, sets and maps in `new` (the plan now) differ from `old` (what the
/// last transaction installed), in words: the live peers changed without `up` (`wg set`, `wg
/// syncconf`), which brings or takes a group's chain and changes the maps' elements; the
/// live table's chains alone cannot tell that. Others' parts are theirs to tell: their
/// records describe them as they are now.
pub fn drift(old: &Shape, new: &Shape, iface: &IfaceName) -> Vec<String> {
    let stem = iface_stem(iface);
    let (was, now) = (old.blocks(&stem), new.blocks(&stem));
    let mut out = Vec::new();
    for (name, lines) in &now {
        match was.get(name) {
            None => out.push(format!("{name} is not there")),
            Some(before) if before == lines => {}
            Some(before) if lines.first() == before.first() && lines[0].starts_with("set ") => {
                let (b, n) = (elements(before), elements(lines));
                let lacks: Vec<&str> = n.iter().filter(|e| !b.contains(e)).copied().collect();
                let extra: Vec<&str> = b.iter().filter(|e| !n.contains(e)).copied().collect();
                if !lacks.is_empty() {
                    out.push(format!("{name} lacks {{ {} }}", lacks.join(", ")));
                }
                if !extra.is_empty() {
                    out.push(format!(
                        "{name} still holds {{ {} }}, which no live peer has",
                        extra.join(", ")
                    ));
                }
            }
            Some(_) => out.push(format!("{name} differs from the plan")),
        }
    }
    for name in was.keys().filter(|n| !now.contains_key(*n)) {
        out.push(format!("{name} is there, not in the plan"));
    }
    out
}

fn elements<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("element "))
        .collect()
}

/// `delete element` for `gone` (by key: a map's element without its verdict), then `add
/// element` for `came`.
fn write_elements(s: &mut String, set: &str, gone: &[&str], came: &[&str]) {
    if !gone.is_empty() {
        let keys: Vec<&str> = gone
            .iter()
            .map(|e| e.split_once(" : ").map_or(*e, |(k, _)| k))
            .collect();
        let _ = writeln!(s, "delete element {TABLE} {set} {{ {} }}", keys.join(", "));
    }
    if !came.is_empty() {
        let _ = writeln!(s, "add element {TABLE} {set} {{ {} }}", came.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Options;
    use crate::plan::{HostFacts, for_test};

    const KEYS: [&str; 3] = [
        "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
        "h9+mBOOUaKvJFVQMBTLzwoW8H9UqNkuoLs3r57ncdn0=",
        "4qh9ej64x1OZIK63ovoHaIhjG+QxMflkQbXYLoxpJi8=",
    ];

    fn shape(peers: usize, guests: &str) -> Shape {
        let mut conf =
            "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 1\n".to_string();
        for (i, k) in KEYS.iter().take(peers).enumerate() {
            conf.push_str(&format!(
                "[Peer]\nPublicKey = {k}\nAllowedIPs = 10.66.0.{}/32, fd66::{}/128\n",
                i + 2,
                i + 2
            ));
        }
        let settings = format!(
            "[group family]\npeer = {}\n[group guests]\npeer = {guests}\nlan = none\nallow = udp/53\n",
            KEYS[0]
        );
        let opts: Options =
            crate::config::settings::parse(std::path::Path::new("s"), &settings).unwrap();
        let plan = for_test(&conf, &opts, &HostFacts::example()).unwrap();
        let want: Vec<(Family, Chain)> = plan
            .families
            .iter()
            .flat_map(|fp| {
                crate::rules::fresh(&plan, fp)
                    .into_iter()
                    .map(|c| (fp.family, c))
            })
            .collect();
        Shape::of(&want)
    }

    #[test]
    fn records_read_back() {
        let s = shape(3, &format!("{}, {}", KEYS[1], KEYS[2]));
        assert_eq!(Shape::parse(&s.record(42)), Some((42, s.clone())));
        for bad in [
            "",
            "generation x\n",
            "generation 1\nrule before any chain\n",
            "generation 1\nfoo\n",
            "generation 1\nelement before any set\n",
            "generation 1\nchain c\nelement in a chain\n",
        ] {
            assert_eq!(Shape::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_peer_added_is_its_elements_alone() {
        let guests = format!("{}, {}", KEYS[1], KEYS[2]);
        let (old, new) = (shape(2, &guests), shape(3, &guests));
        let (forward, back) = element_change(&old, &new).unwrap();
        assert_eq!(
            forward,
            "add element inet wgfw WGFW-wg0-HOSTS-A-v4 { 10.66.0.4 : jump WGFW-wg0-H2-v4 }\n\
             add element inet wgfw WGFW-wg0-HOSTS-A-v6 { fd66::4 : jump WGFW-wg0-H2-v6 }\n\
             add element inet wgfw WGFW-wg0-PEERS-A-v4 { 10.66.0.4 : jump WGFW-wg0-P2-v4 }\n\
             add element inet wgfw WGFW-wg0-PEERS-A-v6 { fd66::4 : jump WGFW-wg0-P2-v6 }\n"
        );
        assert_eq!(
            back,
            "delete element inet wgfw WGFW-wg0-HOSTS-A-v4 { 10.66.0.4 }\n\
             delete element inet wgfw WGFW-wg0-HOSTS-A-v6 { fd66::4 }\n\
             delete element inet wgfw WGFW-wg0-PEERS-A-v4 { 10.66.0.4 }\n\
             delete element inet wgfw WGFW-wg0-PEERS-A-v6 { fd66::4 }\n"
        );
        assert_eq!(
            element_change(&new, &new),
            Some((String::new(), String::new()))
        );
        // The first peer of a section brings its chains along: not elements alone.
        assert_eq!(element_change(&shape(1, &guests), &shape(2, &guests)), None);
    }

    fn body(text: &str) -> Shape {
        Shape::parse(&format!("generation 1\n{text}")).unwrap().1
    }

    #[test]
    fn elements_are_merged_set_by_set() {
        let old = body(
            "chain c\nrule r\nset m map type x : verdict;\nelement a : jump P1\nelement b : jump P1\n\
             set s set type x;\nelement z\nset t set type x;\nkernel\n",
        );
        let new = body(
            "chain c\nrule r\nset m map type x : verdict;\nelement a : jump P2\nelement c : jump P1\n\
             set s set type x;\nelement y\nelement z\nset t set type x;\nkernel\n",
        );
        let (forward, back) = element_change(&old, &new).unwrap();
        assert_eq!(
            forward,
            "delete element inet wgfw m { a, b }\nadd element inet wgfw m { a : jump P2, c : jump P1 }\n\
             add element inet wgfw s { y }\n"
        );
        assert_eq!(
            back,
            "delete element inet wgfw m { a, c }\nadd element inet wgfw m { a : jump P1, b : jump P1 }\n\
             delete element inet wgfw s { y }\n"
        );
        // Anything but elements differs: no element change.
        let other_rule =
            body("chain c\nrule q\nset m map type x : verdict;\nelement a : jump P1\n");
        assert_eq!(element_change(&old, &other_rule), None);
        // A record whose elements are out of order was not written by us.
        let unsorted = body(
            "chain c\nrule r\nset m map type x : verdict;\nelement b : jump P1\nelement a : jump P1\n",
        );
        let sorted = body("chain c\nrule r\nset m map type x : verdict;\nelement a : jump P1\n");
        assert_eq!(element_change(&unsorted, &sorted), None);
    }

    #[test]
    fn drift_names_the_interfaces_own_chains_and_sets_alone() {
        let wg0: IfaceName = "wg0".parse().unwrap();
        let old = body(
            "chain WGFW-wg0-P1-v4\nrule accept\nchain WGFW-wg0-P2-v4\nrule drop\n\
             set WGFW-wg0-PEERS-A-v4 map type x : verdict;\nelement 10.66.0.2 : jump WGFW-wg0-P1-v4\n\
             set WGFW-wg1-PEERS-A-v4 map type x : verdict;\nelement 10.77.0.2 : jump WGFW-wg1-P1-v4\n",
        );
        // The laptop (P1) gone, its address given to a guest (P2).
        let new = body(
            "chain WGFW-wg0-P2-v4\nrule drop\n\
             set WGFW-wg0-PEERS-A-v4 map type x : verdict;\nelement 10.66.0.2 : jump WGFW-wg0-P2-v4\n\
             set WGFW-wg1-PEERS-A-v4 map type x : verdict;\n",
        );
        assert_eq!(
            drift(&old, &new, &wg0),
            [
                "WGFW-wg0-PEERS-A-v4 lacks { 10.66.0.2 : jump WGFW-wg0-P2-v4 }",
                "WGFW-wg0-PEERS-A-v4 still holds { 10.66.0.2 : jump WGFW-wg0-P1-v4 }, which no live peer has",
                "WGFW-wg0-P1-v4 is there, not in the plan",
            ]
        );
        assert!(drift(&old, &old, &wg0).is_empty());
        let changed_rule = body(
            "chain WGFW-wg0-P1-v4\nrule drop\nchain WGFW-wg0-P2-v4\nrule drop\n\
             set WGFW-wg0-PEERS-A-v4 map type x : verdict;\nelement 10.66.0.2 : jump WGFW-wg0-P1-v4\n",
        );
        assert_eq!(
            drift(&old, &changed_rule, &wg0),
            ["WGFW-wg0-P1-v4 differs from the plan"]
        );
        // wg1's own change is wg1's to tell.
        let wg1_only = body(
            "chain WGFW-wg0-P1-v4\nrule accept\nchain WGFW-wg0-P2-v4\nrule drop\n\
             set WGFW-wg0-PEERS-A-v4 map type x : verdict;\nelement 10.66.0.2 : jump WGFW-wg0-P1-v4\n",
        );
        assert!(drift(&old, &wg1_only, &wg0).is_empty());
    }
}
