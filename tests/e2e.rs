//! End-to-end tests: real WireGuard tunnels (wireguard-go) in network namespaces, with the hook
//! run by wg-quick's PostUp/PreDown, checked with real packets. See tests/e2e/*.sh.
//!
//! These need root and the e2e prerequisites (installed by the project's test script); a missing
//! prerequisite is a failure, not a skip. Everything happens inside namespaces the script creates
//! and deletes; the machine's own network namespace is never changed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The scenarios share fixed names (wg0, /var/run/wireguard/wg0.sock): run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PREREQUISITES: &[&str] = &[
    "bash",
    "ip",
    "wg",
    "wg-quick",
    "wireguard-go",
    "iptables-nft",
    "ip6tables-nft",
    "iptables-nft-save",
    "ip6tables-nft-save",
    "iptables-legacy",
    "ip6tables-legacy",
    "iptables-legacy-save",
    "ip6tables-legacy-save",
    "nft",
    "tcpdump",
    "socat",
    "ping",
    "ss",
    "sysctl",
    "timeout",
    "python3",
    "fail2ban-server",
    "dockerd",
    "docker",
    "busybox",
    "ufw",
    "firewalld",
    "firewall-cmd",
    "dbus-daemon",
    "dpkg-deb",
    "run-parts",
];

fn search_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    // Tools like ip and iptables live in sbin, which a non-login environment may lack.
    format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

fn find_in(path: &str, tool: &str) -> Option<PathBuf> {
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(tool))
        .find(|candidate| candidate.is_file())
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn check_prerequisites(path: &str) {
    assert_eq!(
        effective_uid(),
        Some(0),
        "the e2e tests must run as root (they create network namespaces); \
         run `cargo test` as root"
    );
    let missing: Vec<&str> = PREREQUISITES
        .iter()
        .copied()
        .filter(|tool| find_in(path, tool).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "e2e prerequisites missing: {} (the project's test script must install them: \
         iproute2 wireguard-tools wireguard-go iptables nftables tcpdump socat iputils-ping fail2ban python3 docker.io busybox ufw firewalld dbus-daemon \
         debianutils, and download netfilter-persistent's .debs)",
        missing.join(", ")
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: wireguard-go cannot create interfaces"
    );
}

/// Runs `bash tests/e2e/SCRIPT.sh ARG`, streaming its output live, and panics when it fails.
fn run_scenario(name: &str, backend: &str) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = search_path();
    check_prerequisites(&path);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join(format!("tests/e2e/{name}.sh"));
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(backend)
        .current_dir(root)
        .env("PATH", &path)
        .env("WGFW_HOOK_BIN", env!("CARGO_BIN_EXE_wgfw-hook"))
        // The lockout guard reads it: the scenarios must not depend on how CI was started.
        .env_remove("SSH_CONNECTION")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("pipe"))
        .stderr(writer)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));

    // Stream every line to the real stderr (not captured by the test harness, so progress shows
    // live), and keep the FAIL lines and the summary for the panic message.
    let mut failures = Vec::new();
    let mut last_line = String::new();
    let mut stderr = std::io::stderr();
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap_or_else(|e| format!("<unreadable output: {e}>"));
        let _ = writeln!(stderr, "[e2e {name} {backend}] {line}");
        if line.trim_start().starts_with("FAIL:") {
            failures.push(line.trim().to_string());
        }
        if !line.trim().is_empty() {
            last_line = line;
        }
    }
    let status = child.wait().expect("wait for the e2e script");
    if !status.success() {
        panic!(
            "e2e {name} scenario with --backend {backend} failed ({status}); last line: {last_line}\n{}",
            failures.join("\n")
        );
    }
}

#[test]
fn e2e_server_iptables_nft() {
    run_scenario("server", "iptables-nft");
}

#[test]
fn e2e_server_nft() {
    run_scenario("server", "nft");
}

#[test]
fn e2e_server_iptables_legacy() {
    run_scenario("server", "iptables-legacy");
}

#[test]
fn e2e_forwarding_policy_iptables_nft() {
    run_scenario("forwarding", "iptables-nft");
}

#[test]
fn e2e_forwarding_policy_nft() {
    run_scenario("forwarding", "nft");
}

#[test]
fn e2e_forwarding_policy_iptables_legacy() {
    run_scenario("forwarding", "iptables-legacy");
}

#[test]
fn e2e_client_kill_switch_iptables_nft() {
    run_scenario("client", "iptables-nft");
}

#[test]
fn e2e_client_kill_switch_nft() {
    run_scenario("client", "nft");
}

#[test]
fn e2e_client_kill_switch_iptables_legacy() {
    run_scenario("client", "iptables-legacy");
}

#[test]
fn e2e_never_weakens_the_host_iptables_nft() {
    run_scenario("hostile", "iptables-nft");
}

#[test]
fn e2e_never_weakens_the_host_nft() {
    run_scenario("hostile", "nft");
}

#[test]
fn e2e_never_weakens_the_host_iptables_legacy() {
    run_scenario("hostile", "iptables-legacy");
}

/// The six real neighbours (dockerd, ufw, firewalld, fail2ban, netfilter-persistent,
/// nftables.service), each started before and after the tunnel, reloaded while it is up, and
/// the hook's firewall kept by its watcher: on the backend the hook picks, and on each.
#[test]
fn e2e_down_leaves_what_neighbours_came_to_rely_on() {
    run_scenario("neighbours", "auto");
}

#[test]
fn e2e_neighbours_nft() {
    run_scenario("neighbours", "nft");
}

#[test]
fn e2e_neighbours_iptables_nft() {
    run_scenario("neighbours", "iptables-nft");
}

/// ufw, dockerd, fail2ban and netfilter-persistent on iptables-legacy too (the run switches
/// Debian's `iptables` alternatives in a mount namespace of its own).
#[test]
fn e2e_neighbours_iptables_legacy() {
    run_scenario("neighbours", "iptables-legacy");
}

/// Debian's systemd as PID 1 of a throw-away container, Debian's wg-quick@.service with the
/// packages' drop-in: start does not wait for the watcher nor kill it, the watcher is in the
/// unit's control group and writes to its journal, reload repairs, stop leaves nothing.
#[test]
fn e2e_under_systemd() {
    for backend in ["nft", "iptables-nft", "iptables-legacy"] {
        run_scenario("systemd", backend);
    }
}

/// The project's wgfw-hook@.service under Debian's systemd, for a wireguard-go interface whose
/// addresses come from Debian's systemd-networkd (no wg-quick, no config file: the plan comes
/// from the live interface): started before the device, it installs once networkd gives the
/// address, follows an address change and a listen-port change, goes and comes back with the
/// device, and stop leaves nothing.
#[test]
fn e2e_networkd() {
    for backend in ["nft", "iptables-nft", "iptables-legacy"] {
        run_scenario("networkd", backend);
    }
}

/// firewalld 2.x owns its nftables table (a stand-in holding `flags owner` on a private bus,
/// Debian's 1.3.3 cannot): a server's tunnel gets in through its D-Bus API, down takes back
/// exactly that; a client's kill switch writes nothing into firewalld's table and still works;
/// without the API `up` is refused in one line before any change, for either role.
#[test]
fn e2e_firewalld_owning_its_table() {
    for backend in ["nft", "iptables-nft", "iptables-legacy"] {
        run_scenario("firewalld-owner", backend);
    }
}

#[test]
fn e2e_coexists_with_docker_ufw_and_firewalld() {
    run_scenario("coexist", "all");
}

#[test]
fn e2e_config_reader_agrees_with_wg_quick() {
    run_scenario("parser", "iptables-nft");
}
