//! The order of the commands' steps, and of their undo, checked against a recording fake of the
//! system (`system::fake`): no root, no kernel. The end-to-end and fault tests check the same
//! commands against the real thing.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::cli::Options;
use crate::config::types::{BackendChoice, IfaceName};
use crate::config::wgconf::{self, WgConfig};
use crate::system::fake::{Call, Fake};
use crate::system::os::Replaced;
use crate::system::state::Store;

use super::check::{check_in, repair};
use super::down::remove;
use super::install::{Guard, install};
use super::rollback::go_back;

/// A dual-stack server host: nft installed, eth0 and wg0 up, every sysctl at its default.
fn host() -> Rc<Fake> {
    host_with(&["nft"])
}

/// `host()` with these programs installed.
fn host_with(programs: &[&str]) -> Rc<Fake> {
    let fake = Fake::new(programs, Some(1420));
    for dev in ["all", "default", "lo", "eth0", "wg0"] {
        for (key, v) in [
            ("rp_filter", "0"),
            ("accept_redirects", "1"),
            ("send_redirects", "1"),
            ("forwarding", "0"),
        ] {
            fake.sysctl(&format!("net/ipv4/conf/{dev}/{key}"), v);
        }
        for (key, v) in [
            ("forwarding", "0"),
            ("accept_redirects", "1"),
            ("accept_ra", "1"),
        ] {
            fake.sysctl(&format!("net/ipv6/conf/{dev}/{key}"), v);
        }
    }
    fake.sysctl("net/ipv4/ip_forward", "0");
    fake.sysctl("net/ipv4/tcp_syncookies", "1");
    fake.file("/proc/net/route", "");
    fake.file("/proc/net/ipv6_route", "");
    fake
}

/// A record store of the test's own, removed when it ends.
struct TempStore {
    root: PathBuf,
    store: Option<Store>,
}

impl TempStore {
    fn new(name: &str) -> TempStore {
        let root = std::env::temp_dir().join(format!("wgfw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open_in(&root, "netns").expect("a store in the temp dir");
        TempStore {
            root,
            store: Some(store),
        }
    }

    fn get(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    /// The record files left, by name.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("netns"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        self.store = None;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The host of `host()` in the system's place, and a store of the test's own.
fn setup(name: &str) -> (Rc<Fake>, Replaced, TempStore) {
    let fake = host();
    let os = fake.install();
    (fake, os, TempStore::new(name))
}

fn wg0() -> IfaceName {
    "wg0".parse().unwrap()
}

fn options() -> Options {
    Options {
        backend: Some(BackendChoice::Nft),
        wan: "eth0".parse().ok(),
        ..Options::default()
    }
}

fn config() -> WgConfig {
    let text = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n";
    wgconf::parse(Path::new("/etc/wireguard/wg0.conf"), text).unwrap()
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

fn runs(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Run { .. }))
        .map(Call::line)
        .collect()
}

fn sysctl_writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Sysctl(kv) => Some(kv.clone()),
            Call::Run { .. } => None,
        })
        .collect()
}

/// What the n-th `nft -f -` of the calls was fed.
fn script(calls: &[Call], n: usize) -> String {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Run { line, input } if line == "nft -f -" => Some(input.clone()),
            _ => None,
        })
        .nth(n)
        .unwrap_or_else(|| panic!("no nft -f number {n} in {:?}", lines(calls)))
}

/// `nft list chains` as it shows the table an `nft -f` script built.
fn overview_after(script: &str) -> String {
    let mut s = String::from("table inet wgfw {\n");
    for name in script
        .lines()
        .filter_map(|l| l.strip_prefix("add chain inet wgfw "))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
    {
        s.push_str(&format!("\tchain {name} {{\n\t}}\n"));
    }
    s.push_str("}\n");
    s
}

/// `setup`, then `up`, with the fake's `nft list chains` showing the table that built: the
/// sysctls from before it are returned too.
fn installed(name: &str) -> (Rc<Fake>, Replaced, TempStore, Sysctls) {
    let (fake, os, store) = setup(name);
    let original = fake.sysctls();
    let (_, overview) = up(&fake, store.get());
    fake.answer("nft list chains", &overview);
    (fake, os, store, original)
}

type Sysctls = std::collections::BTreeMap<PathBuf, String>;

/// Installs on `fake`; returns the calls and what the table then looks like.
fn up(fake: &Fake, store: &Store) -> (Vec<Call>, String) {
    install(&wg0(), &options(), &config(), store, Guard::Off).expect("up");
    let calls = fake.take();
    let overview = overview_after(&script(&calls, 0));
    (calls, overview)
}

#[test]
fn up_reads_applies_once_then_writes_sysctls_forwarding_first() {
    let (fake, _os, store) = setup("up");
    let (calls, _) = up(&fake, store.get());
    // Before forwarding is switched on: what forwards already (it will not keep it on at down).
    assert_eq!(
        runs(&calls),
        ["nft list chains", "nft -f -", "nft list ruleset"]
    );
    assert!(script(&calls, 0).starts_with("add table inet wgfw\n"));
    // The rules first, then the sysctls, forwarding leading (it rewrites the others).
    let first_write = calls.iter().position(|c| matches!(c, Call::Sysctl(_)));
    assert_eq!(first_write, Some(3), "{:?}", lines(&calls));
    let writes = sysctl_writes(&calls);
    assert_eq!(
        writes[..2],
        ["net/ipv4/ip_forward=1", "net/ipv6/conf/all/forwarding=1"]
    );
    assert!(writes.contains(&"net/ipv6/conf/eth0/accept_ra=2".to_string()));
    assert!(
        !writes
            .iter()
            .any(|w| w.starts_with("net/ipv4/tcp_syncookies")),
        "a sysctl already as wanted is not written"
    );
    assert_eq!(
        store.files(),
        ["sysctl", "wg0.options", "wg0.state", "wg0.wgconf"]
    );
}

#[test]
fn down_removes_the_table_then_restores_forwarding_first_and_forgets() {
    let (fake, _os, store, original) = installed("down");
    remove(store.get(), &wg0()).expect("down");
    let calls = fake.take();
    // The ruleset is read (after our table is gone) to see whether anything else forwards.
    assert_eq!(
        runs(&calls),
        ["nft list chains", "nft -f -", "nft list ruleset"]
    );
    assert_eq!(script(&calls, 0), "delete table inet wgfw\n");
    let writes = sysctl_writes(&calls);
    assert_eq!(writes[0], "net/ipv4/ip_forward=0", "{writes:?}");
    assert_eq!(fake.sysctls(), original, "every sysctl as it was");
    assert!(store.files().is_empty(), "{:?}", store.files());
}

#[test]
fn down_leaves_forwarding_on_while_another_program_forwards() {
    let (fake, _os, store, original) = installed("docker");
    // Docker, started after the tunnel, accepts what its bridge forwards.
    fake.answer(
        "nft list ruleset",
        "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname \"docker0\" oifname != \"docker0\" counter packets 0 bytes 0 accept\n\t}\n}\n",
    );
    remove(store.get(), &wg0()).expect("down");
    let calls = fake.take();
    let writes = sysctl_writes(&calls);
    assert!(
        !writes.iter().any(|w| w.starts_with("net/ipv4/ip_forward")
            || w.starts_with("net/ipv4/conf/eth0/forwarding")),
        "{writes:?}"
    );
    // IPv6 forwarding (nothing forwards IPv6) goes back with every other setting. (The fake
    // does not spread a switch to the interfaces' own keys, as the kernel does.)
    let mut want = original.clone();
    want.insert(
        Path::new("/proc/sys/net/ipv4/ip_forward").into(),
        "1\n".into(),
    );
    assert_eq!(fake.sysctls(), want);
    // Nothing is kept in the records: the setting is the other program's now.
    assert!(store.files().is_empty(), "{:?}", store.files());
}

#[test]
fn what_forwarded_already_before_up_does_not_keep_forwarding_on() {
    let (fake, _os, store) = setup("dockerfirst");
    let original = fake.sysctls();
    // Forwarding off although Docker's rules are there (an admin switched it off): `up`
    // switches it on, and `down` puts the admin's value back.
    fake.answer(
        "nft list ruleset",
        "table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr 172.17.0.0/16 oifname != \"docker0\" counter packets 0 bytes 0 masquerade\n\t}\n}\n",
    );
    let (_, overview) = up(&fake, store.get());
    fake.answer("nft list chains", &overview);
    remove(store.get(), &wg0()).expect("down");
    assert_eq!(fake.sysctls(), original);
}

#[test]
fn down_leaves_what_sysctl_d_asks_for_without_reading_the_ruleset() {
    let (fake, _os, store, original) = installed("sysctld");
    fake.file("/etc/sysctl.d/90-router.conf", "net.ipv4.ip_forward = 1\n");
    fake.file(
        "/etc/sysctl.d/91-ipv6.conf",
        "net.ipv6.conf.all.forwarding = 1\n",
    );
    remove(store.get(), &wg0()).expect("down");
    let calls = fake.take();
    assert_eq!(runs(&calls), ["nft list chains", "nft -f -"]);
    let now = fake.sysctls();
    assert_eq!(now[Path::new("/proc/sys/net/ipv4/ip_forward")], "1\n");
    assert_eq!(
        now[Path::new("/proc/sys/net/ipv6/conf/all/forwarding")],
        "1\n"
    );
    // The rest goes back.
    for k in [
        "net/ipv4/conf/all/rp_filter",
        "net/ipv4/tcp_syncookies",
        "net/ipv4/conf/wg0/send_redirects",
    ] {
        let p = Path::new("/proc/sys").join(k);
        assert_eq!(now[&p], original[&p], "{k}");
    }
}

#[test]
fn a_failed_sysctl_write_unwinds_the_writes_in_reverse_then_the_rules() {
    let (fake, _os, store) = setup("failsysctl");
    let original = fake.sysctls();
    fake.refuse_write("net/ipv4/conf/all/send_redirects=0");
    fake.answer("nft list table inet wgfw", "table inet wgfw {\n}\n");
    let e = install(&wg0(), &options(), &config(), store.get(), Guard::Off).unwrap_err();
    assert!(e.to_string().contains("send_redirects"), "{e}");
    let calls = fake.take();
    let all = lines(&calls);
    let failed = all
        .iter()
        .position(|l| l == "sysctl net/ipv4/conf/all/send_redirects=0")
        .expect("the refused write");
    // Before the failure: the rules, what forwards already, then the writes; after it: those
    // writes undone newest first, then the rules (listed, then deleted whole).
    assert_eq!(all[2], "nft list ruleset", "{all:?}");
    let done: Vec<&String> = all[3..failed].iter().collect();
    // Nothing else forwards (the ruleset, read once, says so): everything goes back.
    assert_eq!(all[failed + 1], "nft list ruleset", "{all:?}");
    let undone: Vec<String> = all[failed + 2..all.len() - 2].to_vec();
    let expected: Vec<String> = done
        .iter()
        .rev()
        .map(|l| {
            let key = l.trim_start_matches("sysctl ").split('=').next().unwrap();
            let was = original[&Path::new("/proc/sys").join(key)].trim();
            format!("sysctl {key}={was}")
        })
        .collect();
    assert_eq!(undone, expected, "{all:?}");
    assert_eq!(
        all[all.len() - 2..],
        ["nft list table inet wgfw", "nft -f -"]
    );
    assert_eq!(script(&calls, 1), "delete table inet wgfw\n");
    assert_eq!(fake.sysctls(), original);
    assert!(store.files().is_empty(), "{:?}", store.files());
}

#[test]
fn a_refused_accept_in_another_managers_chain_unwinds_before_any_sysctl() {
    let (fake, _os, store) = setup("failforeign");
    fake.answer(
        "nft list chains",
        "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n}\n",
    );
    fake.answer("nft list table inet wgfw", "table inet wgfw {\n}\n");
    fake.answer(
        "nft -a list chain inet firewalld filter_INPUT",
        "table inet firewalld {\n\tchain filter_INPUT { # handle 3\n\t\tjump filter_INPUT_ZONES # handle 4\n\t\treject with icmpx admin-prohibited # handle 5\n\t}\n}\n",
    );
    // Right before firewalld's final reject, after its zones' own denies.
    fake.refuse_script("insert rule inet firewalld filter_INPUT position 5 ");
    install(&wg0(), &options(), &config(), store.get(), Guard::Off).unwrap_err();
    let calls = fake.take();
    let list_accepts = "nft -a list chain inet firewalld filter_INPUT";
    assert_eq!(
        runs(&calls),
        [
            "nft list chains",
            // firewalld's API does not answer: whether its table is its own (it is not).
            "nft -t list table inet firewalld",
            "nft -f -",
            list_accepts,
            "nft -f -",
            // Undo, newest first: our accepts (none made it), then our table.
            list_accepts,
            "nft list table inet wgfw",
            "nft -f -",
        ]
    );
    assert!(script(&calls, 1).contains("comment \"wgfw:wg0\""));
    assert_eq!(script(&calls, 2), "delete table inet wgfw\n");
    assert!(sysctl_writes(&calls).is_empty());
    assert!(store.files().is_empty(), "{:?}", store.files());
}

#[test]
fn firewalld_s_owned_table_without_its_api_is_refused_before_any_change() {
    let (fake, _os, store) = setup("owned");
    fake.answer(
        "nft list chains",
        "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n}\n",
    );
    fake.answer(
        "nft -t list table inet firewalld",
        "table inet firewalld { # progname firewalld\n\tflags owner\n\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\treject with icmpx admin-prohibited\n\t}\n}\n",
    );
    let e = install(&wg0(), &options(), &config(), store.get(), Guard::Off).unwrap_err();
    assert!(
        e.to_string().contains("firewalld owns its nftables table"),
        "{e}"
    );
    let calls = fake.take();
    assert_eq!(
        runs(&calls),
        ["nft list chains", "nft -t list table inet firewalld"],
        "nothing changed, not even our own table"
    );
    assert!(sysctl_writes(&calls).is_empty());
    assert!(store.files().is_empty(), "{:?}", store.files());
}

#[test]
fn repair_installs_the_recorded_plan_from_its_own_reading_and_reads_again() {
    let (fake, _os, store) = setup("repair");
    up(&fake, store.get());
    // Another tool flushed the ruleset: our table is gone.
    let repaired = check_in(store.get(), &wg0(), true).expect("check --repair");
    let calls = fake.take();
    assert!(
        !repaired,
        "the fake keeps no table, so the second look still sees it gone"
    );
    assert_eq!(
        runs(&calls),
        ["nft list chains", "nft -f -", "nft list chains"],
        "the repair is made from the reading that found the drift"
    );
    assert!(script(&calls, 0).starts_with("add table inet wgfw\n"));
    assert!(
        sysctl_writes(&calls).is_empty(),
        "the sysctls were still as set"
    );
    // Without --repair, a look only.
    assert!(!check_in(store.get(), &wg0(), false).unwrap());
    assert_eq!(runs(&fake.take()), ["nft list chains"]);
    // The watcher's look: one reading, the repair; the next look sees whether it held.
    let drift = repair(store.get(), &wg0()).unwrap().expect("installed");
    assert_eq!(drift, ["table inet wgfw is gone"]);
    assert_eq!(runs(&fake.take()), ["nft list chains", "nft -f -"]);
}

#[test]
fn a_rollback_goes_back_to_the_plan_before_or_to_nothing() {
    // Nothing was installed before: the rollback removes it all.
    let (fake, _os, store, original) = installed("rollback");
    go_back(store.get(), &wg0(), "token=1-1\ndeadline=0\n").expect("revert");
    let calls = fake.take();
    assert_eq!(
        runs(&calls),
        ["nft list chains", "nft -f -", "nft list ruleset"]
    );
    assert_eq!(script(&calls, 0), "delete table inet wgfw\n");
    assert_eq!(fake.sysctls(), original);
    assert!(store.files().is_empty());
    // A plan was installed before: the rollback installs it again, as recorded.
    fake.answer("nft list chains", "");
    let before = format!(
        "token=1-1\ndeadline=0\n--- options\n{}--- wgconf\n{}",
        Options {
            no_nat: true,
            ..options()
        }
        .to_settings(),
        wgconf::render(&config())
    );
    go_back(store.get(), &wg0(), &before).expect("revert");
    let calls = fake.take();
    assert_eq!(runs(&calls)[..2], ["nft list chains", "nft -f -"]);
    assert!(
        !script(&calls, 0).contains("masquerade"),
        "the plan from before"
    );
    assert!(store.files().contains(&"wg0.state".to_string()));
}

/// Where nobody committed since our last change and only peers' addresses differ, `up` writes
/// those elements alone and lists nothing; any other commit, or a refused element, makes it
/// list the table and write it whole.
#[test]
fn a_change_of_peers_alone_is_written_as_their_elements() {
    const KEYS: [&str; 3] = [
        "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
        "h9+mBOOUaKvJFVQMBTLzwoW8H9UqNkuoLs3r57ncdn0=",
        "4qh9ej64x1OZIK63ovoHaIhjG+QxMflkQbXYLoxpJi8=",
    ];
    let (fake, _os, store) = setup("elements");
    fake.set_generation(7);
    let settings = format!("[group home]\npeer = {}\n", KEYS.join(", "));
    let opts = Options {
        backend: Some(BackendChoice::Nft),
        wan: "eth0".parse().ok(),
        ..crate::config::settings::parse(Path::new("s"), &settings).unwrap()
    };
    let conf = |peers: usize| {
        let mut text = "[Interface]\nAddress = 10.66.0.1/24\nListenPort = 51820\n".to_string();
        for (i, k) in KEYS.iter().take(peers).enumerate() {
            text.push_str(&format!(
                "[Peer]\nPublicKey = {k}\nAllowedIPs = 10.66.0.{}/32\n",
                i + 2
            ));
        }
        wgconf::parse(Path::new("/etc/wireguard/wg0.conf"), &text).unwrap()
    };
    let up = |peers: usize| {
        install(&wg0(), &opts, &conf(peers), store.get(), Guard::Off).expect("up");
        fake.take()
    };
    let calls = up(2);
    fake.answer("nft list chains", &overview_after(&script(&calls, 0)));
    let calls = up(3);
    assert_eq!(runs(&calls), ["nft list chains", "nft -f -"]);
    assert_eq!(
        script(&calls, 0),
        "add element inet wgfw WGFW-wg0-PEERS-A-v4 { 10.66.0.4 : jump WGFW-wg0-P1-v4 }\n"
    );
    // Nothing differs: nothing to write.
    assert_eq!(runs(&up(3)), ["nft list chains"]);
    // Another program's commit: the table is listed and written whole.
    fake.set_generation(100);
    let calls = up(2);
    assert_eq!(
        runs(&calls),
        ["nft list chains", "nft list table inet wgfw", "nft -f -"]
    );
    assert!(script(&calls, 0).starts_with("add table inet wgfw\n"));
    // A refused element (the record was wrong after all) falls back to the whole table.
    fake.refuse_script("{ 10.66.0.4 : jump");
    let calls = up(3);
    assert_eq!(
        runs(&calls),
        [
            "nft list chains",
            "nft -f -",
            "nft list table inet wgfw",
            "nft -f -"
        ]
    );
}

/// iptables-nft: the families' restores run side by side (one after the other in the fake), and
/// when one is refused both are put back: each may have committed.
#[test]
fn iptables_nft_restores_both_families_and_undoes_both_when_one_fails() {
    let fake = host_with(&[
        "nft",
        "iptables-nft-save",
        "ip6tables-nft-save",
        "iptables-nft-restore",
        "ip6tables-nft-restore",
    ]);
    let _os = fake.install();
    let store = TempStore::new("ipt-nft-both");
    let opts = Options {
        backend: Some(BackendChoice::IptablesNft),
        ..options()
    };
    install(&wg0(), &opts, &config(), store.get(), Guard::Off).expect("up");
    let restores = |calls: &[Call]| -> Vec<String> {
        runs(calls)
            .into_iter()
            .filter(|l| l.contains("-restore"))
            .collect()
    };
    let both = [
        "iptables-nft-restore --noflush --wait 10",
        "ip6tables-nft-restore --noflush --wait 10",
    ];
    assert_eq!(restores(&fake.take()), both);
    // The IPv6 restore refused: the IPv4 family, committed, is put back too.
    let store = TempStore::new("ipt-nft-undo");
    fake.refuse_script("--icmpv6-type 1 -j ACCEPT");
    install(&wg0(), &opts, &config(), store.get(), Guard::Off).unwrap_err();
    let calls = fake.take();
    let saves: Vec<String> = runs(&calls)
        .into_iter()
        .filter(|l| l.contains("-save"))
        .collect();
    assert!(
        saves.ends_with(&["ip6tables-nft-save".into(), "iptables-nft-save".into()]),
        "both families read again to be put back, newest first: {saves:?}"
    );
    assert!(store.files().is_empty(), "{:?}", store.files());
}
