//! What the integration tests share: the binary under test, a fresh network and mount namespace
//! to run a script in, and a shell prelude (`SETUP`) with a stand-in tunnel and `snapshot`.

#![allow(dead_code)] // each test crate uses its own part

use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_wgfw-hook");

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a bash script in fresh network and mount namespaces, with `$BIN` set. The kernel
/// deletes both when the script's shell exits, with every mount made inside.
pub fn in_netns(script: &str) -> Output {
    let uid = text(&Command::new("id").arg("-u").output().unwrap().stdout);
    assert_eq!(
        uid.trim(),
        "0",
        "these tests need root (run the README's test command as root)"
    );
    let out = Command::new("unshare")
        .args(["--mount", "--net", "bash", "-euo", "pipefail", "-c", script])
        .env("BIN", BIN)
        // The lockout guard reads it: tests must not depend on how this one was started.
        .env_remove("SSH_CONNECTION")
        .output()
        .expect("unshare (util-linux) is needed");
    eprintln!(
        "--- script ({}) stdout:\n{}--- script stderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub fn assert_one_line_error(out: &Output, code: i32, want: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(want), "{err:?} should say {want:?}");
    assert!(!err.contains("panicked"));
}

/// Panics unless `stdout` contains every one of `wants`.
pub fn assert_has(stdout: &str, wants: &[&str]) {
    for want in wants {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
}

/// A veth pair stands in for the tunnel: enough for rules and sysctls, no WireGuard needed.
/// `snapshot` prints everything `up` may change; `stub PROG CODE` makes /usr/sbin/PROG run the
/// sh CODE instead and `hide PROG` removes it, in this mount namespace only (the real programs
/// stay under /mnt/real).
pub const SETUP: &str = r#"
ip link add wg0 type veth peer name wgpeer
ip link add eth0 type veth peer name ethpeer
ip link set wg0 up; ip link set eth0 up
ip addr add 203.0.113.2/24 dev eth0
ip route add default via 203.0.113.1
conf=$(mktemp); printf '[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n' > "$conf"
snapshot() {
  for t in iptables-nft-save ip6tables-nft-save; do
    $t | { grep -v '^#' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
  done
  # A legacy table, once used, cannot be removed: only rules, user chains and policies count.
  for t in iptables-legacy-save ip6tables-legacy-save; do
    $t | { grep -v -e '^#' -e '^\*' -e '^COMMIT' -e '^:[A-Z]* ACCEPT' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
  done
  nft list ruleset
  { sysctl -a 2>/dev/null || true; } | grep -E '^net\.(ipv4|ipv6)\.' | { grep -v -e nf_conntrack -e '\.stable_secret' || true; }
}
fake_sbin() {
  [ -z "${FAKE_SBIN:-}" ] || return 0; FAKE_SBIN=1
  mount -t tmpfs tmpfs /mnt; mkdir /mnt/real /mnt/fake
  mount --bind /usr/sbin /mnt/real; cp -a /usr/sbin/. /mnt/fake/; mount --bind /mnt/fake /usr/sbin
}
stub() { fake_sbin; rm -f "/mnt/fake/$1"; printf '#!/bin/sh\n%s\n' "$2" > "/mnt/fake/$1"; chmod 755 "/mnt/fake/$1"; }
hide() { fake_sbin; rm "/mnt/fake/$1"; }
"#;
