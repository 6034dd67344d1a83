//! The one reader of what `nft list ...` prints (`ruleset`, `chains`, `table`, `chain`, with
//! or without `-a`): tables, their chains with base-chain declarations and rules, and whatever
//! else a table holds. Everything that looks at nftables reads it through this model.

/// A listing, tables in the order nft printed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// `ip`, `ip6`, `inet`...
    pub family: String,
    pub name: String,
    pub chains: Vec<Chain>,
    /// The table's sets (per-source limits and peers' addresses, in ours).
    pub sets: Vec<String>,
    /// The table's maps (which group's chain a peer's packet goes to, in ours).
    pub maps: Vec<String>,
    /// Whether it holds anything but chains (sets, maps, flowtables, objects).
    pub other: bool,
    /// Its flags (`owner`, `persist`, `dormant`), where the listing shows them: `list table`
    /// and `list ruleset` do, `list chains` does not.
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// A base chain's declaration (`type filter hook input priority filter; policy drop;`).
    pub base: Option<Base>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The declaration as printed.
    pub decl: String,
    /// `input`, `forward`...
    pub hook: String,
    /// `accept`, `drop`; none where the declaration names none.
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule as printed, without its handle.
    pub text: String,
    /// With `nft -a`: the handle that deletes it.
    pub handle: Option<u64>,
}

impl Listing {
    pub fn parse(text: &str) -> Listing {
        let mut out = Listing::default();
        let mut depth = 0usize;
        // The table being read: a listing of several `nft list chain` outputs names one table
        // several times, and they are one table.
        let mut table: Option<usize> = None;
        // Whether the current depth-1 block is a chain (its lines are then declarations and
        // rules); sets and other objects are skipped whole.
        let mut in_chain = false;
        for raw in text.lines() {
            let (line, handle) = split_handle(raw.trim());
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match depth {
                0 => {
                    // What follows the brace is a comment (`# handle 1 progname firewalld`).
                    table = line
                        .strip_prefix("table ")
                        .and_then(|r| r.split('{').next().unwrap_or(r).trim().split_once(' '))
                        .map(|(family, name)| out.entry(family, name));
                }
                1 => {
                    in_chain = false;
                    if let Some(t) = table.map(|i| &mut out.tables[i]) {
                        if let Some(name) = line.strip_prefix("chain ") {
                            // A chain listed again is read afresh: the later listing wins.
                            let name = block_name(name);
                            t.chains.retain(|c| c.name != name);
                            t.chains.push(Chain {
                                name,
                                ..Chain::default()
                            });
                            in_chain = true;
                        } else if let Some(flags) = line.strip_prefix("flags ") {
                            t.flags = flags.split(',').map(|f| f.trim().to_string()).collect();
                        } else if line != "}" {
                            if let Some(name) = line.strip_prefix("set ") {
                                t.sets.push(block_name(name));
                            } else if let Some(name) = line.strip_prefix("map ") {
                                t.maps.push(block_name(name));
                            }
                            t.other = true;
                        }
                    }
                }
                2 if in_chain && line != "}" => {
                    let t = table.map(|i| &mut out.tables[i]);
                    if let Some(c) = t.and_then(|t| t.chains.last_mut()) {
                        match Base::parse(line) {
                            Some(base) if c.base.is_none() && c.rules.is_empty() => {
                                c.base = Some(base)
                            }
                            _ => c.rules.push(Rule {
                                text: line.to_string(),
                                handle,
                            }),
                        }
                    }
                }
                _ => {}
            }
            depth += line.matches('{').count();
            depth = depth.saturating_sub(line.matches('}').count());
        }
        out
    }

    /// The index of the table, added where it is new.
    fn entry(&mut self, family: &str, name: &str) -> usize {
        match self
            .tables
            .iter()
            .position(|t| t.family == family && t.name == name)
        {
            Some(i) => i,
            None => {
                self.tables.push(Table {
                    family: family.to_string(),
                    name: name.to_string(),
                    ..Table::default()
                });
                self.tables.len() - 1
            }
        }
    }

    /// The table `family name` (`inet wgfw`).
    pub fn table(&self, id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.id() == id)
    }
}

impl Table {
    /// `family name`, as nft commands name it.
    pub fn id(&self) -> String {
        format!("{} {}", self.family, self.name)
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

impl Chain {
    /// No rules, and no policy but accept: nothing would change if it were gone.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self
                .base
                .as_ref()
                .is_none_or(|b| b.policy.as_deref() == Some("accept"))
    }

    /// The policy of a base chain.
    pub fn policy(&self) -> Option<&str> {
        self.base.as_ref()?.policy.as_deref()
    }

    pub fn hook(&self) -> Option<&str> {
        self.base.as_ref().map(|b| b.hook.as_str())
    }
}

impl Base {
    fn parse(line: &str) -> Option<Base> {
        let rest = line.strip_prefix("type ")?;
        let hook = rest.split_once(" hook ")?.1.split_whitespace().next()?;
        let policy = rest
            .split_once("policy ")
            .map(|(_, p)| p.trim_end_matches(';').trim().to_string());
        Some(Base {
            decl: line.to_string(),
            hook: hook.trim_end_matches(';').to_string(),
            policy,
        })
    }
}

/// A line without the `# handle N` that `nft -a` appends, and that handle.
fn split_handle(line: &str) -> (&str, Option<u64>) {
    match line.rsplit_once("# handle ") {
        Some((head, h)) => match h.trim().parse() {
            Ok(n) => (head.trim_end(), Some(n)),
            Err(_) => (line, None),
        },
        None => (line, None),
    }
}

/// The name of a `chain NAME {` or `set NAME {` block, as nft prints it (quoted where it is
/// no plain identifier, so that it can be given back to nft as it is).
fn block_name(rest: &str) -> String {
    rest.trim_end_matches('{').trim().to_string()
}

/// A listing with a bit of everything: iptables-nft's tables (one with a comment line above),
/// a drop policy, a rule, a set with elements over two lines; the tests of every reader use it.
#[cfg(test)]
pub(crate) const RULESET: &str = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\n\
        \tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n\n\
        \tchain OUTPUT {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tcounter packets 0 bytes 0 accept\n\t}\n}\n\
        # Warning: table ip nat is managed by iptables-nft, do not touch!\n\
        table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n}\n\
        table inet mine {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.1,\n\t\t\t     192.0.2.2 }\n\t}\n\tchain c {\n\t\tip saddr @s drop\n\t}\n}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_chains_declarations_and_rules() {
        let l = Listing::parse(RULESET);
        let ids: Vec<String> = l.tables.iter().map(Table::id).collect();
        assert_eq!(ids, ["ip filter", "ip nat", "inet mine"]);
        let f = l.table("ip filter").unwrap();
        assert!(f.chain("INPUT").unwrap().is_empty());
        let fwd = f.chain("FORWARD").unwrap();
        assert!(!fwd.is_empty(), "a drop policy is not empty");
        assert_eq!((fwd.hook(), fwd.policy()), (Some("forward"), Some("drop")));
        let out = f.chain("OUTPUT").unwrap();
        assert_eq!(out.rules[0].text, "counter packets 0 bytes 0 accept");
        let mine = l.table("inet mine").unwrap();
        assert!(mine.other && mine.sets == ["s"]);
        assert_eq!(
            mine.chain("c").unwrap().rules.len(),
            1,
            "the set's lines are not rules"
        );
        assert!(!l.table("ip nat").unwrap().other);
    }

    #[test]
    fn reads_handles_and_the_overview() {
        let a = "table ip filter { # handle 3\n\tchain FORWARD { # handle 1\n\t\ttype filter hook forward priority filter; policy drop;\n\
                 \t\tiifname \"wg0\" accept comment \"wgfw:wg0\" # handle 7\n\t}\n}\n";
        let l = Listing::parse(a);
        let c = l.table("ip filter").unwrap().chain("FORWARD").unwrap();
        assert_eq!(c.policy(), Some("drop"));
        assert_eq!(c.rules[0].handle, Some(7));
        assert_eq!(
            c.rules[0].text,
            "iifname \"wg0\" accept comment \"wgfw:wg0\""
        );
        // `nft list chains` shows declarations, no rules.
        let overview = "table inet wgfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\tchain WGFW-wg0-IN-v4 {\n\t}\n}\n";
        let t = Listing::parse(overview);
        let names: Vec<&str> = t.tables[0].chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["input", "WGFW-wg0-IN-v4"]);
        assert_eq!(Listing::parse(""), Listing::default());
        // Listings of single chains, one after the other, add up to their table.
        let two = "table ip filter {\n\tchain A {\n\t}\n}\ntable ip filter {\n\tchain B {\n\t\taccept\n\t}\n}\n";
        let l = Listing::parse(two);
        assert_eq!(l.tables.len(), 1);
        assert_eq!(l.tables[0].chains.len(), 2);
        assert!(!l.tables[0].chain("B").unwrap().is_empty());
    }

    #[test]
    fn reads_table_flags_and_the_comment_after_the_brace() {
        // firewalld 2.x's table as `nft -a list table` prints it: owned, the owner named.
        let owned = "table inet firewalld { # handle 9 progname firewalld\n\tflags owner,persist\n\n\
                     \tchain filter_INPUT { # handle 1\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n}\n";
        let l = Listing::parse(owned);
        let t = l.table("inet firewalld").unwrap();
        assert_eq!(t.flags, ["owner", "persist"]);
        assert!(t.has_flag("owner") && !t.has_flag("dormant"));
        assert!(!t.other, "flags are no object of the table");
        assert_eq!(t.chain("filter_INPUT").unwrap().hook(), Some("input"));
        let plain = Listing::parse("table inet firewalld { # progname nft\n\tchain c {\n\t}\n}\n");
        assert!(plain.table("inet firewalld").unwrap().flags.is_empty());
    }
}
