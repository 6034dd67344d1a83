//! What the last transaction left of our part of the table, kept as text beside the records:
//! each chain's rules, each set's declaration and elements, and the ruleset's generation right
//! after the commit. While the generation is the same (`system::nftgen`), nobody has changed
//! the ruleset since, so the table is exactly this: a change that only adds or deletes
//! elements (a peer added with `wg set`) is written as those elements alone, without listing
//! the table (150 ms at 10,000 peers) or rebuilding it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::plan::Family;
use crate::rules::model::Chain;

use super::names::{TABLE, chain_name};
use super::{render_split, sets};

/// Our chains and sets, as a transaction writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shape {
    chains: BTreeMap<String, Vec<String>>,
    /// Name to kind (`set`, `map`) and declaration, and the elements (`None`: the kernel's).
    sets: BTreeMap<String, (String, Option<BTreeSet<String>>)>,
}

impl Shape {
    pub fn of(desired: &[(Family, Chain)]) -> Shape {
        let chains = desired
            .iter()
            .map(|(f, c)| {
                let rules = c.rules.iter().flat_map(|r| render_split(r, *f));
                (chain_name(&c.id, *f), rules.collect())
            })
            .collect();
        let sets = sets(desired)
            .into_iter()
            .map(|s| {
                let head = format!("{} {}", s.kind, s.decl);
                (s.name, (head, s.elements.map(|e| e.into_iter().collect())))
            })
            .collect();
        Shape { chains, sets }
    }

    /// The record: the generation, then one line per chain, rule, set and element.
    pub fn record(&self, generation: u32) -> String {
        let mut s = format!("generation {generation}\n");
        for (name, rules) in &self.chains {
            let _ = writeln!(s, "chain {name}");
            for r in rules {
                let _ = writeln!(s, "rule {r}");
            }
        }
        for (name, (head, elements)) in &self.sets {
            let _ = writeln!(s, "set {name} {head}");
            match elements {
                None => s.push_str("kernel\n"),
                Some(e) => e.iter().for_each(|e| {
                    let _ = writeln!(s, "element {e}");
                }),
            }
        }
        s
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
        let lines = text.lines().skip(1);
        let mut shape = Shape::default();
        let (mut chain, mut set): (Option<String>, Option<String>) = (None, None);
        for line in lines {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "chain" => {
                    shape.chains.insert(rest.to_string(), Vec::new());
                    (chain, set) = (Some(rest.to_string()), None);
                }
                "rule" => shape
                    .chains
                    .get_mut(chain.as_ref()?)?
                    .push(rest.to_string()),
                "set" => {
                    let (name, head) = rest.split_once(' ')?;
                    shape
                        .sets
                        .insert(name.to_string(), (head.to_string(), Some(BTreeSet::new())));
                    (chain, set) = (None, Some(name.to_string()));
                }
                "element" => {
                    let (_, elements) = shape.sets.get_mut(set.as_ref()?)?;
                    elements.as_mut()?.insert(rest.to_string());
                }
                "kernel" => shape.sets.get_mut(set.as_ref()?)?.1 = None,
                _ => return None,
            }
        }
        Some((generation, shape))
    }
}

/// The transaction from `old` to `new` when only elements differ, and the one that takes it
/// back: deletions first, so that an element whose verdict changed is deleted and added
/// again. None when anything else differs (a rule, a chain, a set's declaration).
pub fn element_change(old: &Shape, new: &Shape) -> Option<(String, String)> {
    if old.chains != new.chains
        || old.sets.len() != new.sets.len()
        || old
            .sets
            .iter()
            .zip(&new.sets)
            .any(|((a, (ha, _)), (b, (hb, _)))| a != b || ha != hb)
    {
        return None;
    }
    let (mut forward, mut back) = (String::new(), String::new());
    for (name, (_, elements)) in &new.sets {
        let (Some(now), Some(was)) = (elements, &old.sets[name].1) else {
            continue;
        };
        let gone: Vec<&String> = was.difference(now).collect();
        let came: Vec<&String> = now.difference(was).collect();
        write_elements(&mut forward, name, &gone, &came);
        write_elements(&mut back, name, &came, &gone);
    }
    Some((forward, back))
}

/// `delete element` for `gone` (by key: a map's element without its verdict), then `add
/// element` for `came`.
fn write_elements(s: &mut String, set: &str, gone: &[&String], came: &[&String]) {
    let key = |e: &&String| {
        e.split_once(" : ")
            .map_or(e.as_str(), |(k, _)| k)
            .to_string()
    };
    if !gone.is_empty() {
        let keys: Vec<String> = gone.iter().map(key).collect();
        let _ = writeln!(s, "delete element {TABLE} {set} {{ {} }}", keys.join(", "));
    }
    if !came.is_empty() {
        let all: Vec<&str> = came.iter().map(|e| e.as_str()).collect();
        let _ = writeln!(s, "add element {TABLE} {set} {{ {} }}", all.join(", "));
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
}
