//! The fuzz harness of wgfw-hook, shared by the libFuzzer targets (`fuzz_targets/`) and by
//! `replay`, which feeds the inputs they found to the real `iptables-restore --test` and `nft -c`.
//!
//! Each reader (wg-quick config, settings file, command line) gets arbitrary bytes. Whatever it
//! accepts is planned on the example host and rendered for every backend: the iptables restore
//! script of each family and the nft script. Any panic is a bug; so is a script that breaks the
//! structural invariants checked here, which say that nothing read from the input can smuggle
//! a line, a rule, a chain or a quoted string of its own into a ruleset: every line is one of
//! the forms we generate, every rule names only our chains, and every token of a rule is an
//! option we use with a value of the shape it must have.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use wgfw_hook::config::cli::{self, Invocation, Options};
use wgfw_hook::config::networkd;
use wgfw_hook::config::settings;
use wgfw_hook::config::types::IfaceName;
use wgfw_hook::config::wgconf::{self, WgConfig};
use wgfw_hook::plan::{self, Family, HostFacts, Purpose};
use wgfw_hook::rules::iptables;
use wgfw_hook::rules::nft;
use wgfw_hook::rules::{self, Backend};
use wgfw_hook::rules::{COUNTED, ChainId};

/// A rendered script, with what must accept it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Script {
    /// An `iptables-restore --noflush` script (the same for iptables-nft and -legacy).
    Iptables(Family, String),
    /// An `nft -f` script.
    Nft(String),
}

/// The config the settings and command-line targets plan with: dual stack, a peer with an
/// endpoint (so a client's kill switch has a way out).
pub const BASE_CONFIG: &str = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n\
    [Peer]\nPublicKey = abc=\nAllowedIPs = 10.66.0.2/32, fd66::2/128\nEndpoint = 192.0.2.7:51820\n\
    [Peer]\nPublicKey = def=\nAllowedIPs = 10.66.0.3/32\nEndpoint = [2001:db8::7]:4500\n";

/// The options a fuzzed wg-quick config is planned with: each role, with and without the
/// options that add rules.
const OPTION_SETS: &[&[&str]] = &[
    &[],
    &[
        "--nat6",
        "--peer-to-peer",
        "--admin",
        "192.0.2.0/24",
        "--admin",
        "2001:db8::/48",
        "--allow",
        "tcp/443",
        "--lan",
        "192.168.1.0/24",
        "--policy",
        "accept",
    ],
    &["--role", "client", "--allow-lan", "--allow", "udp/53"],
    &["--role", "client", "--no-nat", "--no-log"],
];

/// Target `wgconf`: the bytes as a wg-quick config file.
pub fn wgconf(data: &[u8]) -> Vec<Script> {
    // As `wgconf::read` reads a file.
    let text = String::from_utf8_lossy(data);
    let Ok(conf) = wgconf::parse(Path::new("wg0.conf"), &text) else {
        return Vec::new();
    };
    // `up` records the config as `render` writes it and plans from it again later.
    let mut again = wgconf::parse(Path::new("wg0.conf"), &wgconf::render(&conf))
        .unwrap_or_else(|e| panic!("the rendered config does not read back: {e}"));
    for (a, b) in again.peers.iter_mut().zip(&conf.peers) {
        a.line = b.line;
    }
    assert_eq!(again, conf, "the rendered config reads back otherwise");
    let iface: IfaceName = "wg0".parse().expect("a valid name");
    OPTION_SETS
        .iter()
        .flat_map(|args| render_all(&iface, &conf, &options(args)))
        .collect()
}

/// Target `networkd`: the bytes as a systemd-networkd `.netdev`, then after the first NUL
/// byte (if any) the `.network` that matches it: picked as `system::networkd` picks them, read,
/// planned like a wg-quick config, and recorded as `up` records it.
pub fn networkd(data: &[u8]) -> Vec<Script> {
    let (netdev, network) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (netdev, network) = (
        String::from_utf8_lossy(netdev),
        String::from_utf8_lossy(network),
    );
    let netdev = [networkd::Source {
        path: Path::new("/etc/systemd/network/50-wg0.netdev"),
        text: &netdev,
    }];
    let network = [networkd::Source {
        path: Path::new("/etc/systemd/network/50-wg0.network"),
        text: &network,
    }];
    let _ = networkd::netdev_creates(&netdev);
    let network: &[networkd::Source] = if networkd::network_matches(&network, "wg0") {
        &network
    } else {
        &[]
    };
    let Ok(conf) = networkd::parse(&netdev, network) else {
        return Vec::new();
    };
    // `up` records the tunnel as a wg-quick config and plans from that again later.
    let recorded = WgConfig {
        path: "wg0.conf".into(),
        networkd: None,
        ..conf.clone()
    };
    let mut again = wgconf::parse(Path::new("wg0.conf"), &wgconf::render(&conf))
        .unwrap_or_else(|e| panic!("the recorded tunnel does not read back: {e}"));
    for (a, b) in again.peers.iter_mut().zip(&conf.peers) {
        a.line = b.line;
    }
    assert_eq!(again, recorded, "the recorded tunnel reads back otherwise");
    let iface: IfaceName = "wg0".parse().expect("a valid name");
    OPTION_SETS
        .iter()
        .flat_map(|args| render_all(&iface, &conf, &options(args)))
        .collect()
}

/// Target `settings`: the bytes as a settings file `/etc/wgfw/IFACE.conf`.
pub fn settings(data: &[u8]) -> Vec<Script> {
    // `settings::read` refuses a file that is not UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return Vec::new();
    };
    let Ok(opts) = settings::parse(Path::new("/etc/wgfw/wg0.conf"), text) else {
        return Vec::new();
    };
    options_read_back(&opts);
    let iface: IfaceName = "wg0".parse().expect("a valid name");
    render_all(&iface, &base_config(), &opts)
}

/// Target `cli`: the bytes as the arguments after `wgfw-hook`, separated by NUL bytes (so any
/// argument, UTF-8 or not, can be expressed).
pub fn cli(data: &[u8]) -> Vec<Script> {
    let args = data
        .split(|b| *b == 0)
        .map(|a| OsString::from_vec(a.to_vec()));
    let Ok(Invocation::Run(args)) = cli::parse(args) else {
        return Vec::new();
    };
    let iface = args.iface.as_str();
    assert!(iface_ok(iface), "accepted interface name {iface:?}");
    if let Some(w) = &args.options.wan {
        assert!(iface_ok(w.as_str()), "accepted --wan {w:?}");
    }
    options_read_back(&args.options);
    render_all(&args.iface, &base_config(), &args.options)
}

fn base_config() -> WgConfig {
    wgconf::parse(Path::new("wg0.conf"), BASE_CONFIG).expect("the base config reads")
}

fn options(args: &[&str]) -> Options {
    let argv = ["plan", "wg0"].iter().chain(args).map(OsString::from);
    match cli::parse(argv) {
        Ok(Invocation::Run(a)) => a.options,
        other => panic!("the fixed options {args:?} do not parse: {other:?}"),
    }
}

/// `up` records the options in the settings file's syntax and reads them back to install the
/// same plan again: all but `config` and `rollback`, which are not recorded.
fn options_read_back(opts: &Options) {
    let text = opts.to_settings();
    let again = settings::parse(Path::new("recorded"), &text)
        .unwrap_or_else(|e| panic!("recorded options do not read back: {e}\n{text}"));
    let want = Options {
        config: None,
        rollback: None,
        ..opts.clone()
    };
    assert_eq!(again, want, "recorded options read back otherwise:\n{text}");
}

/// wg-quick's own rule for interface names, written out independently of `IfaceName`.
pub fn iface_ok(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=+.-".contains(&b))
}

/// Plans on the example host (its listen port known, the config's literal endpoints as the
/// peers') and renders every backend's script, each checked for structure.
pub fn render_all(iface: &IfaceName, conf: &WgConfig, opts: &Options) -> Vec<Script> {
    let host = HostFacts {
        live_port: wgfw_hook::config::types::Port::new(51820),
        endpoints: conf
            .peers
            .iter()
            .filter_map(|p| p.endpoint.as_ref()?.parse::<SocketAddr>().ok())
            .collect(),
        ..HostFacts::example()
    };
    let Ok(plan) = plan::derive(iface, conf, opts, &host, Purpose::Install) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for fp in &plan.families {
        let script = iptables::render_fresh(&plan, fp);
        check_iptables(iface, &script);
        out.push(Script::Iptables(fp.family, script));
    }
    // `plan` shows the nft script wrapped as a here-document.
    let shown = rules::show(Backend::Nft, &plan);
    let script = shown
        .strip_prefix("[#] nft -f - <<'EOF'\n")
        .and_then(|s| s.strip_suffix("EOF\n"))
        .unwrap_or_else(|| panic!("unexpected nft plan:\n{shown}"));
    check_nft(iface, script);
    out.push(Script::Nft(script.to_string()));
    out
}

fn fail(what: &str, line: &str, script: &str) -> ! {
    panic!("{what}: {line:?}\n--- script:\n{script}")
}

/// Splits a rule into tokens as the restore parsers do: on spaces, a double-quoted string
/// being one token (quotes kept). Nothing else of a shell's or nft's syntax may appear.
fn tokens(rule: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = rule;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(' ') {
            rest = r;
            continue;
        }
        let end = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.find('"')? + 2
        } else {
            rest.find(' ').unwrap_or(rest.len())
        };
        let tok = &rest[..end];
        let bad = |c: char| c.is_control() || "\\'`$;#".contains(c) || !c.is_ascii();
        if tok.chars().any(bad) || (!tok.starts_with('"') && tok.contains('"')) {
            return None;
        }
        out.push(tok);
        rest = &rest[end..];
    }
    Some(out)
}

fn is_u32(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.parse::<u32>().is_ok()
}

fn is_range(s: &str, sep: char) -> bool {
    match s.split_once(sep) {
        Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
        None => s.parse::<u16>().is_ok(),
    }
}

fn is_rate(s: &str, units: &[&str]) -> bool {
    s.split_once('/')
        .is_some_and(|(n, u)| is_u32(n) && units.contains(&u))
}

/// A per-source limit's kernel table: `wgfw`, a hash, a tag (at most 15 characters).
fn is_limit_name(s: &str) -> bool {
    s.len() <= 15
        && s.strip_prefix("wgfw").is_some_and(|r| {
            r.len() > 8
                && r[..8].bytes().all(|b| b.is_ascii_hexdigit())
                && r[8..].bytes().all(|b| b.is_ascii_lowercase())
        })
}

/// A LOG prefix: ours names the interface or the shared input chain.
fn is_log_prefix(s: &str, iface: &IfaceName) -> bool {
    s == format!("\"wgfw-{iface}: \"") || s == "\"wgfw-input: \""
}

fn ipt_chains(iface: &IfaceName) -> Vec<String> {
    ChainId::all_with_shared(iface)
        .iter()
        .map(ToString::to_string)
        .collect()
}

const BUILTIN: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// The structure of a fresh `iptables-restore --noflush` script: tables of chain declarations,
/// appends to our chains and inserts of jumps to them, each table committed.
pub fn check_iptables(iface: &IfaceName, script: &str) {
    let ours = ipt_chains(iface);
    let mut table: Option<&str> = None;
    for line in script.split('\n') {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            [t] if t.starts_with('*') => {
                if table.is_some() || rules::Table::parse(&t[1..]).is_none() {
                    fail("misplaced or unknown table", line, script);
                }
                table = Some(*t);
            }
            ["COMMIT"] if table.is_some() => table = None,
            [c, "-", "[0:0]"] if table.is_some() => {
                if !c
                    .strip_prefix(':')
                    .is_some_and(|n| ours.iter().any(|o| o == n))
                {
                    fail("declares a chain not ours", line, script);
                }
            }
            ["-I", hook, "1", "-j", c] if table.is_some() => {
                if !BUILTIN.contains(hook) || !ours.iter().any(|o| o == c) {
                    fail("inserts a jump that is not ours", line, script);
                }
            }
            ["-A", c, ..] if table.is_some() => {
                if !ours.iter().any(|o| o == c) {
                    fail("appends to a chain not ours", line, script);
                }
                let rule = &line[4 + c.len()..];
                if let Err(why) = check_ipt_rule(iface, &ours, rule) {
                    fail(&why, line, script);
                }
            }
            [""] if table.is_none() => {}
            _ => fail("a line of no known form", line, script),
        }
    }
    if table.is_some() || !script.ends_with("COMMIT\n") {
        fail("a table left open", "", script);
    }
}

/// One rule: options we use, each with a value of its shape, and exactly one target.
fn check_ipt_rule(iface: &IfaceName, ours: &[String], rule: &str) -> Result<(), String> {
    let toks = tokens(rule).ok_or("a rule with quotes, escapes or odd characters")?;
    let mut jumps = 0;
    let mut i = 0;
    while i < toks.len() {
        let opt = toks[i];
        if opt == "!" {
            match toks.get(i + 1) {
                Some(&("-i" | "-o" | "--src-type")) => {
                    i += 1;
                    continue;
                }
                // The loopback guard: all but what a DNAT rule (Docker's) sent to 127.0.0.1.
                Some(&"--ctstate") if toks.get(i + 2) == Some(&"DNAT") => {
                    i += 3;
                    continue;
                }
                _ => return Err("a negation of something we never negate".into()),
            }
        }
        let arg = |n: usize| toks.get(i + n).copied().unwrap_or("");
        let v = arg(1);
        let ok = match opt {
            "-s" | "-d" => v.parse::<ipnet::IpNet>().is_ok(),
            // A trailing + would make it a wildcard.
            "-i" | "-o" => iface_ok(v) && !v.ends_with('+'),
            "-p" => ["tcp", "udp", "icmp", "ipv6-icmp"].contains(&v),
            "-m" => [
                "tcp",
                "udp",
                "icmp",
                "icmp6",
                "hl",
                "conntrack",
                "limit",
                "hashlimit",
                "tcpmss",
                "addrtype",
            ]
            .contains(&v),
            "--sport" | "--dport" => is_range(v, ':'),
            "--tcp-flags" => v == "SYN,RST" && arg(2) == "SYN",
            "--icmp-type" | "--icmpv6-type" => v.parse::<u8>().is_ok(),
            "--hl-eq" => v == "255",
            "--ctstate" => ["NEW", "RELATED,ESTABLISHED", "RELATED", "INVALID"].contains(&v),
            "--limit" | "--hashlimit-upto" => is_rate(v, &["sec", "min"]),
            "--limit-burst" | "--hashlimit-burst" | "--set-mss" => is_u32(v),
            "--hashlimit-mode" => v == "srcip",
            "--hashlimit-name" => is_limit_name(v),
            "--hashlimit-srcmask" => v.parse::<u8>().is_ok_and(|m| m <= 128),
            "--hashlimit-htable-size" | "--hashlimit-htable-max" | "--hashlimit-htable-expire" => {
                is_u32(v)
            }
            "--mss" => is_range(v, ':'),
            "--src-type" => v == "LOCAL",
            "--log-prefix" => is_log_prefix(v, iface) && v.len() - 2 <= 29,
            "--reject-with" => {
                ["tcp-reset", "icmp-admin-prohibited", "icmp6-adm-prohibited"].contains(&v)
            }
            "-j" => {
                jumps += 1;
                [
                    "ACCEPT",
                    "DROP",
                    "RETURN",
                    "LOG",
                    "REJECT",
                    "MASQUERADE",
                    "TCPMSS",
                ]
                .contains(&v)
                    || ours.iter().any(|o| o == v)
            }
            _ => return Err(format!("an option we never use: {opt:?}")),
        };
        if !ok {
            return Err(format!("{opt} with a value not of its shape: {v:?}"));
        }
        i += if opt == "--tcp-flags" { 3 } else { 2 };
    }
    if jumps != 1 {
        return Err(format!("{jumps} targets in one rule"));
    }
    Ok(())
}

/// The base chains of `inet wgfw`, as `nft.rs` declares them.
const NFT_BASE: &[&str] = &[
    "prerouting_raw",
    "forward_mangle",
    "postrouting_nat",
    "input",
    "forward",
    "output",
];

/// The structure of a fresh nft script: the table `inet wgfw`, its base chains, the limit
/// sets, our chains (created, flushed, filled) and the base chains' jumps to them.
pub fn check_nft(iface: &IfaceName, script: &str) {
    let ours: Vec<String> = ChainId::all_with_shared(iface)
        .iter()
        .flat_map(|id| Family::BOTH.map(|f| nft::chain_name(id, f)))
        .collect();
    let chain_ok = |n: &str| ours.iter().any(|o| o == n) || NFT_BASE.contains(&n);
    let table = format!("{} ", nft::TABLE);
    for line in script.split('\n') {
        let ok = if line.is_empty() || line == format!("add table {}", nft::TABLE) {
            true
        } else if let Some(rest) = line
            .strip_prefix("add chain ")
            .and_then(|r| r.strip_prefix(&table))
        {
            match rest.split_once(' ') {
                None => chain_ok(rest),
                Some((name, decl)) => {
                    NFT_BASE.contains(&name)
                        && {
                            let d = decl
                                .strip_prefix("{ type ")
                                .and_then(|d| d.strip_suffix("; policy accept; }"));
                            d.is_some_and(|d| {
                            let w: Vec<&str> = d.split(' ').collect();
                            matches!(w.as_slice(), [ "filter" | "nat", "hook", h, "priority", p]
                                if name.starts_with(h) && ["raw", "mangle", "srcnat", "filter"].contains(p))
                        })
                        }
                }
            }
        } else if let Some(rest) = line
            .strip_prefix("flush chain ")
            .and_then(|r| r.strip_prefix(&table))
        {
            chain_ok(rest)
        } else if let Some(rest) = line
            .strip_prefix("add set ")
            .and_then(|r| r.strip_prefix(&table))
        {
            rest.split_once(' ').is_some_and(|(name, decl)| {
                is_limit_name(name)
                    && ["ipv4_addr", "ipv6_addr"].iter().any(|t| {
                        decl.strip_prefix(&format!("{{ type {t}; size "))
                            .and_then(|d| d.split_once("; flags dynamic, timeout; timeout "))
                            .and_then(|(size, d)| Some((size, d.strip_suffix("s; }")?)))
                            .is_some_and(|(size, secs)| is_u32(size) && is_u32(secs))
                    })
            })
        } else if let Some(rest) = line
            .strip_prefix("add rule ")
            .and_then(|r| r.strip_prefix(&table))
        {
            match rest.split_once(' ') {
                Some((name, body)) if chain_ok(name) => match check_nft_rule(iface, &ours, body) {
                    Ok(()) => true,
                    Err(why) => fail(&why, line, script),
                },
                _ => false,
            }
        } else {
            false
        };
        if !ok {
            fail("a line of no known form", line, script);
        }
    }
}

/// One nft rule: strings only where we quote an interface, a log prefix or a counter's label;
/// braces only around a per-source limit; one verdict, and jumps only to our chains.
fn check_nft_rule(iface: &IfaceName, ours: &[String], body: &str) -> Result<(), String> {
    let toks = tokens(body).ok_or("a rule with escapes or odd characters")?;
    let mut verdicts = 0;
    let mut depth = 0;
    for (i, tok) in toks.iter().enumerate() {
        let prev = if i > 0 { toks[i - 1] } else { "" };
        if tok.starts_with('"') {
            let inner = &tok[1..tok.len() - 1];
            let ok = match prev {
                "iifname" | "oifname" | "!=" => iface_ok(inner),
                "prefix" => is_log_prefix(tok, iface),
                "comment" => COUNTED.contains(&inner),
                _ => false,
            };
            if !ok {
                return Err(format!("a string where none belongs: {tok}"));
            }
            continue;
        }
        if !tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/,=!&|()<>@{}-".contains(&b))
        {
            return Err(format!("a token of odd characters: {tok:?}"));
        }
        match *tok {
            "{" if prev.starts_with('@') && toks[i.saturating_sub(2)] == "update" && depth == 0 => {
                depth = 1
            }
            "}" if depth == 1 => depth = 0,
            t if t.contains(['{', '}']) => return Err(format!("a brace out of place: {t}")),
            t if t.starts_with('@') && !(prev == "update" && is_limit_name(&t[1..])) => {
                return Err(format!("a set not ours: {t}"));
            }
            "accept" | "drop" | "return" | "reject" | "masquerade" | "goto" | "queue"
            | "continue" => verdicts += 1,
            "jump" => {
                verdicts += 1;
                let target = toks.get(i + 1).copied().unwrap_or("");
                if !ours.iter().any(|o| o == target) {
                    return Err(format!("a jump to a chain not ours: {target}"));
                }
            }
            "set" if prev == "size" => verdicts += 1,
            "log" => verdicts += 1,
            _ => {}
        }
    }
    if depth != 0 {
        return Err("an unclosed brace".into());
    }
    if verdicts != 1 {
        return Err(format!("{verdicts} verdicts in one rule"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_inputs_render_and_pass() {
        let base = BASE_CONFIG.as_bytes();
        assert_eq!(wgconf(base).len(), OPTION_SETS.len() * 3);
        assert_eq!(settings(b"role = client\nallow-lan\n").len(), 3);
        let nd = std::fs::read("seeds/networkd/server").unwrap();
        assert_eq!(networkd(&nd).len(), OPTION_SETS.len() * 3);
        assert_eq!(cli(b"up\0wg+0\0--nat6\0--wan\0-j").len(), 3);
    }

    #[test]
    fn the_checks_catch_smuggled_rules() {
        let i: IfaceName = "wg0".parse().unwrap();
        let ours = ipt_chains(&i);
        assert!(check_ipt_rule(&i, &ours, "-i wg0 -j ACCEPT").is_ok());
        for bad in [
            "-i wg0 -j ACCEPT -j DROP",
            "-i wg0\n-A INPUT -j ACCEPT",
            "-s 10.0.0.0/8 -j LOG --log-prefix \"x\" -j ACCEPT",
            "-i wg0 -m comment --comment x -j ACCEPT",
            "-i wg0 -j FORWARD",
            "-o eth+ -j ACCEPT",
            "-i \"wg0\" -j ACCEPT",
        ] {
            assert!(check_ipt_rule(&i, &ours, bad).is_err(), "{bad}");
        }
        assert!(check_nft_rule(&i, &ours, "iifname \"wg0\" accept").is_ok());
        for bad in [
            "iifname \"wg0\" accept; add rule inet filter input accept",
            "iifname \"wg0\" accept drop",
            "iifname \"w;0\" accept",
            "jump input",
            "iifname \"wg0\" } accept",
            "comment \"hi\" accept",
        ] {
            assert!(check_nft_rule(&i, &ours, bad).is_err(), "{bad}");
        }
    }
}
