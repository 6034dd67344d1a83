//! The binary as a user meets it: help, usage and config errors, and how it fails. Each test
//! that could touch the kernel runs in a network namespace of its own (`unshare -n`, and `-m`
//! where it changes mounts), which the kernel deletes when the test's shell exits. Root is
//! required (the README's test command runs as root); a missing prerequisite fails the test.

mod common;

use common::{BIN, SETUP, assert_one_line_error, in_netns, text};
use std::process::{Command, Output};

fn hook(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

#[test]
fn help_and_version() {
    let out = hook(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "up IFACE",
        "down IFACE",
        "plan IFACE",
        "PostUp  = wgfw-hook up %i",
        "--handshake-limit",
        "/etc/wgfw/IFACE.conf",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let out = hook(&["--version"]);
    assert_eq!(
        text(&out.stdout),
        format!("wgfw-hook {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    assert_one_line_error(&hook(&[]), 2, "no command given");
    assert_one_line_error(
        &hook(&["up", "wg0;reboot"]),
        2,
        "not a valid interface name",
    );
    assert_one_line_error(
        &hook(&["up", "wg0", "--bogus"]),
        2,
        "invalid option '--bogus'",
    );
    assert_one_line_error(
        &hook(&["plan", "wg0", "--config", "/nonexistent/wg0.conf"]),
        2,
        "/nonexistent/wg0.conf: no such wg-quick config",
    );
    // No config and no interface: what plan cannot know yet, said so.
    assert_one_line_error(
        &hook(&["plan", "wgnone9", "--config", "none"]),
        2,
        "wgnone9: --config none: there is no live WireGuard interface to read the tunnel from",
    );
    assert_one_line_error(
        &hook(&["plan", "wgnone9"]),
        2,
        "/etc/wireguard/wgnone9.conf: no such wg-quick config, and no live WireGuard interface wgnone9 to read instead",
    );
    assert_one_line_error(
        &hook(&["up", "wg0", "--forward", "tcp/8443=10.66.0.2:443,hairpin"]),
        2,
        "\"hairpin\" is not an option of a forward (keep-source, from-lan, from-peers)",
    );
    assert_one_line_error(
        &hook(&["plan", "wg0", "--nat64", "2001:db8:64::/60"]),
        2,
        "--nat64: \"2001:db8:64::/60\" is not a NAT64 prefix: RFC 6052 allows /32, /40, /48, /56, /64 or /96",
    );
}

#[test]
fn config_errors_name_file_and_line() {
    let dir = std::env::temp_dir().join(format!("wgfw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("wg0.conf");
    std::fs::write(
        &conf,
        "[Interface]\nListenPort = 51820\nAddress = 10.0.0.300/24\n",
    )
    .unwrap();
    let out = hook(&["plan", "wg0", "--config", conf.to_str().unwrap()]);
    assert_one_line_error(
        &out,
        2,
        &format!(
            "{}:3: Address \"10.0.0.300/24\" is not an IP network",
            conf.display()
        ),
    );
    // A good config: the plan says where it read the tunnel and the options from.
    std::fs::write(
        &conf,
        "[Interface]\nListenPort = 51820\nAddress = 10.0.0.1/24\n",
    )
    .unwrap();
    let out = hook(&["plan", "wg0", "--config", conf.to_str().unwrap()]);
    let want = format!(
        "# note: the tunnel's addresses, port and peers are read from {}; options: the command line\n",
        conf.display()
    );
    assert!(text(&out.stdout).contains(&want), "{}", text(&out.stdout));
    // Odd configs never panic: each is a clean plan or a clean error.
    let odd = [
        "",
        "[Interface]",
        "[Interface]\nAddress =",
        "[Interface]\nAddress = ::/0\nListenPort = 1",
        "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 65535\nMTU = 576",
        "\0\u{feff}[Peer]\nAllowedIPs = 0.0.0.0/0",
        "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 1\n[Peer]\nAllowedIPs = 0.0.0.0/0, ::/0",
    ];
    for o in odd {
        std::fs::write(&conf, o).unwrap();
        let out = hook(&["plan", "wg0", "--config", conf.to_str().unwrap()]);
        assert!(matches!(out.status.code(), Some(0 | 2)), "{o:?}: {out:?}");
        assert!(!text(&out.stderr).contains("panicked"), "{o:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plan_needs_no_root() {
    let dir = std::env::temp_dir().join(format!("wgfw-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("wg0.conf");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wg0.conf"),
        &conf,
    )
    .unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX", dir.to_str().unwrap()])
        .status()
        .unwrap();
    let bin_copy = dir.join("wgfw-hook");
    std::fs::copy(BIN, &bin_copy).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin_copy.to_str().unwrap(),
            "plan",
            "wg0",
            "--config",
        ])
        .arg(&conf)
        .output()
        .expect("setpriv (util-linux) is needed");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{out:?}");
    let plan = text(&out.stdout);
    // On a host without iptables rules, auto picks the native nft backend.
    assert!(
        plan.contains("backend nft (no iptables rules on this host)"),
        "{plan}"
    );
    assert!(
        plan.contains("WGFW-wg0-NAT-v4 ip saddr 10.66.0.0/24 oifname"),
        "{plan}"
    );
    assert!(
        plan.contains("[#] sysctl -q net.ipv4.ip_forward=1")
            || plan.contains("# net.ipv4.ip_forward is already 1")
    );
}

/// `auto` picks iptables-nft where another program made a chain in its tables (told by the
/// nftables overview, without reading the rules) or put rules in a built-in chain (told by
/// iptables-nft-save), and nft where neither is so.
#[test]
fn auto_follows_what_the_host_already_uses() {
    let out = in_netns(&format!(
        "{SETUP}\nplan() {{ \"$BIN\" plan wg0 --config \"$conf\" | sed -n \"s/^# listen port.*, backend \\([a-z-]*\\) (.*/$1: \\1/p\"; }}\n\
         plan empty\n\
         ip6tables-nft -N DOCKER-USER; plan chain\n\
         ip6tables-nft -X DOCKER-USER; nft flush ruleset; plan flushed\n\
         iptables-nft -A INPUT -s 192.0.2.9 -j ACCEPT; plan rule"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for (case, backend) in [
        ("empty", "nft"),
        ("chain", "iptables-nft"),
        ("flushed", "nft"),
        ("rule", "iptables-nft"),
    ] {
        assert!(
            stdout.contains(&format!("{case}: {backend}\n")),
            "{case}: {stdout}"
        );
    }
}

#[test]
fn down_without_up_and_nothing_to_remove_exits_0() {
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\n\"$BIN\" down wg0\n\"$BIN\" down wg0\nsnapshot | diff /tmp/before.$$ - && echo SAME; rm /tmp/before.$$"
    ));
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("SAME"));
}

#[test]
fn read_only_run_changes_nothing() {
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\nmount -t tmpfs -o ro tmpfs /run\nset +e\n\"$BIN\" up wg0 --config \"$conf\" 2>/tmp/err.$$; echo \"rc=$?\"\nset -e\n\
         snapshot | diff /tmp/before.$$ - && echo SAME; cat /tmp/err.$$; rm /tmp/before.$$ /tmp/err.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert!(stdout.contains("SAME"), "{stdout}");
    assert!(stdout.contains("cannot create /run/wgfw"), "{stdout}");
}

#[test]
fn a_refused_ipv6_half_undoes_the_ipv4_half() {
    // ip6tables-legacy-restore is replaced, in this mount namespace only, by one that fails.
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\n\
         stub ip6tables-legacy-restore 'echo \"ip6tables-restore: line 7 failed\" >&2; exit 1'\n\
         set +e; \"$BIN\" up wg0 --config \"$conf\" --backend iptables-legacy 2>/tmp/err.$$; echo \"rc=$?\"; set -e\n\
         umount /usr/sbin\n\
         snapshot | diff /tmp/before.$$ - && echo SAME\n\
         find /run/wgfw -maxdepth 1 -name \"netns-$(stat -L -c %i /proc/self/ns/net).*\" -newer /tmp/before.$$ | grep . && echo STATE-LEFT\n\
         cat /tmp/err.$$; rm /tmp/before.$$ /tmp/err.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert!(
        stdout.contains("SAME"),
        "rules or sysctls changed: {stdout}"
    );
    assert!(!stdout.contains("STATE-LEFT"), "{stdout}");
    assert!(
        stdout.contains("refused the IPv6 rules: ip6tables-restore: line 7 failed"),
        "{stdout}"
    );
}

#[test]
fn up_twice_equals_once_and_down_restores_everything() {
    for backend in ["iptables-nft", "iptables-legacy"] {
        let out = in_netns(&format!(
            "{SETUP}\niptables-{v} -A INPUT -s 192.0.2.99 -j ACCEPT; ip6tables-{v} -N FOREIGN; iptables-{v} -t nat -A POSTROUTING -o eth0 -s 192.0.2.0/24 -j MASQUERADE\n\
             snapshot > /tmp/before.$$\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend {backend}\n\
             snapshot > /tmp/once.$$\n\
             \"$BIN\" up wg0 --config \"$conf\"\n\
             snapshot | diff /tmp/once.$$ - && echo TWICE-SAME\n\
             iptables-{v}-save | grep -cE -- '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) -j WGFW-' | sed 's/^/JUMPS=/'\n\
             \"$BIN\" down wg0\n\
             snapshot | diff /tmp/before.$$ - && echo DOWN-SAME\n\
             find /run/wgfw -maxdepth 1 -name \"netns-$(stat -L -c %i /proc/self/ns/net).*\" -newer /tmp/before.$$ | grep . && echo STATE-LEFT\n\
             rm /tmp/before.$$ /tmp/once.$$",
            v = backend.trim_start_matches("iptables-"),
        ));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{backend}: {stdout}");
        assert!(stdout.contains("TWICE-SAME"), "{backend}: {stdout}");
        assert!(stdout.contains("DOWN-SAME"), "{backend}: {stdout}");
        assert!(!stdout.contains("STATE-LEFT"), "{backend}: {stdout}");
        // From the built-in chains, once each: raw PREROUTING, mangle FORWARD, nat POSTROUTING,
        // filter FORWARD, and filter INPUT to the shared chain.
        assert!(stdout.contains("JUMPS=5"), "{backend}: {stdout}");
    }
}

/// The last `down` with iptables takes the jumps to our chains to be as `up` put them, and
/// our chains to be those the nftables overview (iptables-nft) or the record (legacy) names,
/// without reading the rules. Here they are not: a jump doubled, one deleted, and another
/// program's chain jumping to ours. The restore built on the assumption is refused, and the one
/// built from the rules read after it removes everything.
#[test]
fn down_removes_everything_when_our_jumps_were_moved() {
    for v in ["nft", "legacy"] {
        let out = in_netns(&format!(
            "{SETUP}\niptables-{v} -N FOREIGN; iptables-{v} -A FOREIGN -s 192.0.2.99 -j ACCEPT\n\
             snapshot > /tmp/before.$$\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend iptables-{v}\n\
             iptables-{v} -t mangle -A INPUT -j WGFW-INPUT\n\
             iptables-{v} -t mangle -D FORWARD -j WGFW-wg0-MSS\n\
             iptables-{v} -A FOREIGN -j WGFW-wg0-FWD\n\
             ip6tables-{v} -t mangle -A INPUT -j WGFW-INPUT\n\
             \"$BIN\" down wg0 -v\n\
             iptables-{v} -D FOREIGN -j WGFW-wg0-FWD 2>/dev/null && echo FOREIGN-JUMP-LEFT\n\
             snapshot | diff /tmp/before.$$ - && echo DOWN-SAME\n\
             rm /tmp/before.$$"
        ));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{v}: {stdout}{stderr}");
        assert!(stdout.contains("DOWN-SAME"), "{v}: {stdout}");
        assert!(!stdout.contains("FOREIGN-JUMP-LEFT"), "{v}: {stdout}");
        // Both families fell back to reading their rules, and said so at -v.
        assert_eq!(
            stderr.matches("reading the IPv").count(),
            2,
            "{v}: {stderr}"
        );
        assert!(!stderr.contains("warning"), "{v}: {stderr}");
    }
}

/// Where nothing was moved, the last `down` reads no rules to remove its own (and still leaves
/// nothing). Only once they are gone, before it switches forwarding off, does it read what is
/// left: other tools' forwarding rules (`plan::reliance`).
#[test]
fn the_last_down_reads_no_rules() {
    for v in ["nft", "legacy"] {
        let out = in_netns(&format!(
            "{SETUP}\niptables-{v} -A INPUT -s 192.0.2.99 -j ACCEPT\n\
             snapshot > /tmp/before.$$\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend iptables-{v}\n\
             \"$BIN\" down wg0 -vv 2>&1 | awk '/running .*-restore/ {{ r = NR }} /running .*-save/ {{ s[++n] = NR }} \
               END {{ b = 0; for (i = 1; i <= n; i++) if (s[i] < r) b++; print \"SAVES=\" b }}'\n\
             snapshot | diff /tmp/before.$$ - && echo DOWN-SAME\n\
             rm /tmp/before.$$"
        ));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{v}: {stdout}");
        assert!(stdout.contains("SAVES=0"), "{v}: {stdout}");
        assert!(stdout.contains("DOWN-SAME"), "{v}: {stdout}");
    }
}

#[test]
fn a_second_up_revalidates_and_replaces_atomically() {
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\n\"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft\nsnapshot > /tmp/once.$$\n\
         bad=$(mktemp); printf '[Interface]\\nAddress = 10.66.0.300/24\\nListenPort = 51820\\n' > \"$bad\"\n\
         set +e; \"$BIN\" up wg0 --config \"$bad\"; echo \"bad-rc=$?\"; set -e\n\
         snapshot | diff /tmp/once.$$ - && echo KEPT\n\
         \"$BIN\" up wg0 --config \"$conf\" --no-nat\n\
         iptables-nft-save -t nat | grep -c WGFW | sed 's/^/NAT=/' || true\n\
         iptables-nft-save -t filter | grep -c 'WGFW-wg0-FWD' | sed 's/^/FWD=/'\n\
         \"$BIN\" down wg0\nsnapshot | diff /tmp/before.$$ - && echo DOWN-SAME\nrm /tmp/before.$$ /tmp/once.$$ \"$bad\""
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("bad-rc=2") && stdout.contains("KEPT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("NAT=0") && !stdout.contains("FWD=0"),
        "{stdout}"
    );
    assert!(stdout.contains("DOWN-SAME"), "{stdout}");
}

#[test]
fn tunnels_going_up_and_down_together_share_and_restore() {
    // Four tunnels at once, twice: the lock serialises them, the shared chain serves all, and
    // the last one down puts forwarding back.
    let out = in_netns(&format!(
        "{SETUP}\nfor i in 1 2 3; do ip link add wg$i type veth peer name wgpeer$i; ip link set wg$i up;\n\
           printf \"[Interface]\\nAddress = 10.7$i.0.1/24\\nListenPort = 5182$i\\n\" > /tmp/wg$i.$$; done\n\
         snapshot > /tmp/before.$$\n\
         for round in 1 2; do\n\
           pids=(); \"$BIN\" up wg0 --config \"$conf\" --backend iptables-legacy 2>/dev/null & pids+=($!)\n\
           for i in 1 2 3; do \"$BIN\" up wg$i --config /tmp/wg$i.$$ --backend iptables-legacy 2>/dev/null & pids+=($!); done\n\
           for p in \"${{pids[@]}}\"; do wait $p; done\n\
           echo \"round $round jumps=$(iptables-legacy-save -t mangle | grep -c -- '-A WGFW-INPUT -j WGFW-wg[0-3]-IN')\"\n\
           echo \"round $round input=$(iptables-legacy-save -t mangle | grep -c -- '-A INPUT -j WGFW-INPUT')\"\n\
           echo \"round $round forward=$(cat /proc/sys/net/ipv4/ip_forward)\"\n\
           pids=(); for i in 0 1 2 3; do \"$BIN\" down wg$i 2>/dev/null & pids+=($!); done\n\
           for p in \"${{pids[@]}}\"; do wait $p; done\n\
         done\n\
         snapshot | diff /tmp/before.$$ - && echo DOWN-SAME\nrm /tmp/before.$$ /tmp/wg?.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for round in [1, 2] {
        assert!(
            stdout.contains(&format!("round {round} jumps=4")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("round {round} input=1")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("round {round} forward=1")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("DOWN-SAME"), "{stdout}");
}

#[test]
fn down_after_the_link_is_gone_still_cleans_up() {
    // A tunnel that died without PreDown (wireguard-go killed, link deleted): `down` later
    // removes the rules and restores what it can, and exits 0.
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot | grep -v -e '\\.wg0\\.' -e '\\.wgpeer\\.' > /tmp/before.$$\n\"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft\n\
         ip link del wg0\n\"$BIN\" down wg0; echo \"rc=$?\"\n\
         snapshot | diff /tmp/before.$$ - && echo DOWN-SAME\nrm /tmp/before.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("rc=0") && stdout.contains("DOWN-SAME"),
        "{stdout}"
    );
}

#[test]
fn a_missing_iptables_is_one_clear_line_and_changes_nothing() {
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\nmount --bind \"$(mktemp -d)\" /usr/sbin\n\
         set +e; \"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft 2>/tmp/err.$$; echo \"rc=$?\"; set -e\n\
         umount /usr/sbin\nsnapshot | diff /tmp/before.$$ - && echo SAME\necho \"lines=$(wc -l < /tmp/err.$$)\"; cat /tmp/err.$$\nrm /tmp/before.$$ /tmp/err.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("rc=1") && stdout.contains("SAME") && stdout.contains("lines=1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("iptables-nft-save is not installed"),
        "{stdout}"
    );
}

#[test]
fn client_lockdown_keeps_the_kill_switch_until_release() {
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\n\
         printf '[Interface]\\nAddress = 10.66.0.2/32\\n[Peer]\\nEndpoint = 203.0.113.9:51820\\nAllowedIPs = 0.0.0.0/0, ::/0\\n' > \"$conf\"\n\
         \"$BIN\" up wg0 --config \"$conf\" --role client --lockdown --backend iptables-legacy\n\
         \"$BIN\" down wg0\n\"$BIN\" status\n\
         iptables-legacy-save -t filter | grep -c -- '-A OUTPUT -j WGFW-wg0-OUT' | sed 's/^/KEPT=/'\n\
         \"$BIN\" release wg0\n\"$BIN\" release wg0; echo \"again=$?\"\n\"$BIN\" status\n\
         snapshot | diff /tmp/before.$$ - && echo RELEASED\nrm /tmp/before.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("KEPT=1"), "{stdout}");
    assert!(stdout.contains("kept after down (--lockdown)"), "{stdout}");
    assert!(
        stdout.contains("again=0") && stdout.contains("RELEASED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no interface is managed by wgfw-hook here"),
        "{stdout}"
    );
}

#[test]
fn down_without_records_removes_rules_restored_at_boot() {
    // netfilter-persistent saved the rules while the tunnel was up and restored them at boot;
    // /run is empty. `up` adopts them without duplicates; `down` removes them, either way.
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\n\"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft\n\
         iptables-nft-save > /tmp/v4.$$; ip6tables-nft-save > /tmp/v6.$$\n\
         \"$BIN\" down wg0\n\
         iptables-nft-restore < /tmp/v4.$$; ip6tables-nft-restore < /tmp/v6.$$\n\
         \"$BIN\" up wg0 --config \"$conf\"\n\
         iptables-nft-save | grep -c -- '-A INPUT -j WGFW-INPUT' | sed 's/^/ADOPTED=/'\n\
         \"$BIN\" down wg0\n\
         iptables-nft-restore < /tmp/v4.$$; ip6tables-nft-restore < /tmp/v6.$$\n\
         \"$BIN\" down wg0\n\
         (iptables-nft-save; ip6tables-nft-save) | grep -c WGFW | sed 's/^/LEFT=/' || true\nrm /tmp/before.$$ /tmp/v4.$$ /tmp/v6.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ADOPTED=1"), "{stdout}");
    // The tables the boot-time restore made stay: they were there before the hook ran.
    assert!(stdout.contains("LEFT=0"), "{stdout}");
}

/// `PostUp = wgfw-hook up %i` gives no option at all: `check` and `check --repair` still find
/// what `up` used (an empty options record used to read as none).
#[test]
fn check_works_after_an_up_without_options() {
    let out = in_netns(&format!(
        "{SETUP}\n\"$BIN\" up wg0 --config \"$conf\" 2>/dev/null\n\
         \"$BIN\" check wg0; echo \"check=$?\"\n\"$BIN\" check wg0 --repair >/dev/null; echo \"repair=$?\"\n\
         \"$BIN\" down wg0 2>/dev/null"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for want in ["wg0: as installed\ncheck=0", "repair=0"] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
}

#[test]
fn check_sees_drift_and_repair_puts_it_back() {
    for (backend, break_it) in [
        (
            "iptables-nft",
            "iptables-nft -F WGFW-wg0-FWD; ip6tables-nft -t mangle -D INPUT -j WGFW-INPUT",
        ),
        ("iptables-legacy", "iptables-legacy -t mangle -F WGFW-INPUT"),
        ("nft", "nft delete table inet wgfw"),
    ] {
        let out = in_netns(&format!(
            "{SETUP}\nsnapshot > /tmp/before.$$\n\"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null\n\
             \"$BIN\" check wg0; echo \"clean=$?\"\n\
             {break_it}\nsysctl -qw net.ipv4.ip_forward=0\n\
             set +e; \"$BIN\" check wg0; echo \"drift=$?\"\n\
             \"$BIN\" check wg0 --repair 2>/dev/null; echo \"repair=$?\"\n\
             \"$BIN\" check wg0; echo \"after=$?\"; set -e\n\
             \"$BIN\" down wg0 2>/dev/null\nsnapshot | diff /tmp/before.$$ - && echo DOWN-SAME\nrm /tmp/before.$$"
        ));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{backend}: {stdout}");
        for want in [
            "wg0: as installed\nclean=0",
            "drift=1",
            "sysctl net.ipv4.ip_forward is 0, 1 was set",
            "repaired\nrepair=0",
            "after=0",
            "DOWN-SAME",
        ] {
            assert!(stdout.contains(want), "{backend}: {want:?} not in {stdout}");
        }
    }
}

#[test]
fn the_systemd_check_units_verify() {
    // The units name /usr/bin/wgfw-hook; verify a copy that names the binary just built.
    let dir = std::env::temp_dir().join(format!("wgfw-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd");
    for unit in [
        "wgfw-hook-check@.service",
        "wgfw-hook-check@.timer",
        "wgfw-hook@.service",
    ] {
        let text = std::fs::read_to_string(src.join(unit))
            .unwrap()
            .replace("/usr/bin/wgfw-hook", BIN);
        std::fs::write(dir.join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args([
            "verify",
            "wgfw-hook-check@wg0.service",
            "wgfw-hook-check@wg0.timer",
            "wgfw-hook@wg0.service",
        ])
        .current_dir(&dir)
        .output()
        .expect("systemd-analyze (systemd) is needed");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    // wg-quick@.service (wireguard-tools') with the drop-in that reconciles on reload.
    let dropin = "wg-quick@.service.d/wgfw-hook.conf";
    std::fs::create_dir_all(dir.join("wg-quick@.service.d")).unwrap();
    let text_of = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(
        dir.join(dropin),
        text_of(&src.join(dropin)).replace("/usr/bin/wgfw-hook", BIN),
    )
    .unwrap();
    std::fs::write(
        dir.join("wg-quick@.service"),
        text_of(std::path::Path::new(
            "/lib/systemd/system/wg-quick@.service",
        )),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "wg-quick@wg0.service"])
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .current_dir(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rollback_puts_back_the_previous_firewall_unless_confirmed() {
    // wait_same FILE: polls (at most 10 s) until the live state equals FILE's snapshot.
    let wait = "wait_same() { for i in $(seq 1 50); do snapshot | diff -q \"$1\" - >/dev/null && return 0; sleep 0.2; done; return 1; }";
    let out = in_netns(&format!(
        "{SETUP}\n{wait}\nsnapshot > /tmp/none.$$\n\
         \"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft --rollback 1 2>/dev/null\n\
         wait_same /tmp/none.$$ && echo FIRST-REVERTED\n\
         \"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft 2>/dev/null\nsnapshot > /tmp/old.$$\n\
         \"$BIN\" up wg0 --config \"$conf\" --no-nat --rollback 1 2>/tmp/err.$$\ngrep -o 'comes back in 1 s' /tmp/err.$$\n\
         snapshot | diff -q /tmp/old.$$ - >/dev/null || echo CHANGED\n\
         wait_same /tmp/old.$$ && echo REVERTED\n\
         \"$BIN\" up wg0 --config \"$conf\" --no-nat --rollback 1 2>/dev/null\n\"$BIN\" confirm wg0\nsnapshot > /tmp/new.$$\nsleep 2\n\
         snapshot | diff -q /tmp/new.$$ - >/dev/null && echo KEPT\n\"$BIN\" confirm wg0\n\
         \"$BIN\" down wg0 2>/dev/null\nsnapshot | diff /tmp/none.$$ - && echo DOWN-SAME\nrm -f /tmp/none.$$ /tmp/old.$$ /tmp/new.$$ /tmp/err.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for want in [
        "FIRST-REVERTED",
        "comes back in 1 s",
        "CHANGED",
        "REVERTED",
        "wg0: kept",
        "KEPT",
        "no rollback pending",
        "DOWN-SAME",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
}

#[test]
fn the_lockout_guard_keeps_the_ssh_client_in() {
    let out = in_netns(&format!(
        "{SETUP}\nsnapshot > /tmp/before.$$\nexport SSH_CONNECTION='192.0.2.5 51000 203.0.113.2 22'\n\
         set +e; \"$BIN\" up wg0 --config \"$conf\" --admin 198.51.100.0/24 --backend iptables-legacy 2>/tmp/err.$$; echo \"rc=$?\"; set -e\n\
         cat /tmp/err.$$\nsnapshot | diff /tmp/before.$$ - && echo UNCHANGED\n\
         \"$BIN\" up wg0 --config \"$conf\" --admin 192.0.2.0/24 --backend iptables-legacy 2>/dev/null && echo ADMIN-OK\n\
         \"$BIN\" up wg0 --config \"$conf\" --admin 198.51.100.0/24 --force 2>/dev/null && echo FORCED\n\
         \"$BIN\" down wg0 2>/dev/null\nrm /tmp/before.$$ /tmp/err.$$"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("rc=2") && stdout.contains("UNCHANGED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would lock out the SSH client 192.0.2.5 (it is in no --admin network)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ADMIN-OK") && stdout.contains("FORCED"),
        "{stdout}"
    );
}

#[test]
fn check_sees_a_flushed_ruleset_and_a_firewalld_reload() {
    let firewalld = "nft add table inet firewalld; \
        nft add chain inet firewalld filter_INPUT '{ type filter hook input priority filter + 10; policy accept; }'; \
        nft add chain inet firewalld filter_FORWARD '{ type filter hook forward priority filter + 10; policy accept; }'; \
        nft add rule inet firewalld filter_INPUT reject with icmpx admin-prohibited; \
        nft add rule inet firewalld filter_FORWARD reject with icmpx admin-prohibited";
    let out = in_netns(&format!(
        "{SETUP}\n{firewalld}\n\"$BIN\" up wg0 --config \"$conf\" --backend nft 2>/dev/null\n\"$BIN\" check wg0 >/dev/null; echo \"clean=$?\"\n\
         # A firewalld reload: its table built again from scratch, without our accepts.\n\
         nft delete table inet firewalld; {firewalld}\n\
         set +e; \"$BIN\" check wg0; echo \"reload=$?\"\n\"$BIN\" check wg0 --repair >/dev/null 2>&1; echo \"repair=$?\"\n\
         nft list table inet firewalld | grep -c 'wgfw:wg0' | sed 's/^/MARKED=/'\n\
         nft flush ruleset\n\"$BIN\" check wg0; echo \"flushed=$?\"\n\"$BIN\" check wg0 --repair >/dev/null 2>&1; echo \"repair2=$?\"; set -e\n\
         \"$BIN\" down wg0 2>/dev/null"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for want in [
        "clean=0",
        "of our",
        "in nft inet firewalld filter_INPUT are there",
        "reload=1",
        "repair=0",
        "table inet wgfw is gone",
        "flushed=1",
        "repair2=0",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
    assert!(!stdout.contains("MARKED=0"), "{stdout}");
}

/// ufw owns input (policy DROP): our accepts for the tunnel stand right before its default
/// deny, after its own rules, so its reload (its jump first again) changes nothing of ours. A
/// rule someone appends after them would not hold for the tunnel's traffic: `check` says so,
/// `--repair` puts them last again.
#[test]
fn check_sees_a_rule_appended_after_our_accepts() {
    let out = in_netns(&format!(
        "{SETUP}\niptables-nft -N ufw-before-input; iptables-nft -A ufw-before-input -p tcp --dport 80 -j ACCEPT\n\
         iptables-nft -A INPUT -j ufw-before-input; iptables-nft -P INPUT DROP\n\
         \"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft 2>/dev/null\n\"$BIN\" check wg0 >/dev/null; echo \"clean=$?\"\n\
         # ufw reload: its jump comes back first in INPUT.\n\
         iptables-nft -D INPUT -j ufw-before-input; iptables-nft -I INPUT 1 -j ufw-before-input\n\
         \"$BIN\" check wg0 >/dev/null; echo \"reload=$?\"\n\
         iptables-nft -A INPUT -s 198.51.100.9 -j DROP\n\
         set +e; \"$BIN\" check wg0; echo \"appended=$?\"\n\"$BIN\" check wg0 --repair >/dev/null 2>&1; echo \"repair=$?\"; set -e\n\
         iptables-nft -S INPUT | sed -n '2p;3p'\n\"$BIN\" down wg0 2>/dev/null\n\
         iptables-nft -S INPUT | grep -c wgfw | sed 's/^/LEFT=/' || true"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for want in [
        "clean=0",
        "reload=0",
        "wg0: our accepts in iptables-nft IPv4 INPUT are no longer right before its default deny",
        "appended=1",
        "repair=0",
        "-A INPUT -j ufw-before-input\n-A INPUT -s 198.51.100.9/32 -j DROP",
        "LEFT=0",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
}

#[test]
fn the_man_page_renders_without_warnings_and_bash_completion_parses() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("man")
        .args([
            "--warnings",
            "-E",
            "UTF-8",
            "-l",
            &format!("{root}/man/wgfw-hook.8"),
        ])
        .env("MANWIDTH", "80")
        .output()
        .expect("man (man-db) is needed");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("wgfw-hook up IFACE"));
    let out = Command::new("bash")
        .args(["-n", &format!("{root}/completions/wgfw-hook.bash")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Without SSH_CONNECTION (sudo may strip it), the guard finds the SSH client among the
/// established connections to port 22, which it asks the kernel for (sock_diag), IPv4 and IPv6.
#[test]
fn the_lockout_guard_finds_established_ssh_connections() {
    let out = in_netns(&format!(
        "{SETUP}\nip link set lo up; ip addr add 192.0.2.5/32 dev lo; ip addr add 2001:db8:5::5/128 dev lo nodad\n\
         ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad\n\
         socat -u TCP4-LISTEN:22,bind=203.0.113.2,reuseaddr SYSTEM:'sleep 4' &\n\
         socat -u TCP6-LISTEN:22,bind=[2001:db8:1::2],reuseaddr SYSTEM:'sleep 4' &\n\
         sleep 0.3\n\
         socat -u SYSTEM:'sleep 4' TCP:203.0.113.2:22,bind=192.0.2.5 & c4=$!\n\
         socat -u SYSTEM:'sleep 4' TCP6:[2001:db8:1::2]:22,bind=[2001:db8:5::5] & c6=$!\n\
         sleep 0.3\n\
         set +e; \"$BIN\" up wg0 --config \"$conf\" --admin 198.51.100.0/24 --backend iptables-legacy; echo \"rc=$?\"\n\
         kill $c4; wait $c4 2>/dev/null; sleep 0.2\n\
         \"$BIN\" up wg0 --config \"$conf\" --admin 198.51.100.0/24 --admin 2001:db8:9::/48 --backend iptables-legacy; echo \"rc=$?\"\n\
         kill $c6; wait $c6 2>/dev/null; sleep 0.2\n\
         \"$BIN\" up wg0 --config \"$conf\" --admin 198.51.100.0/24 --backend iptables-legacy 2>/dev/null; echo \"rc=$?\"; set -e\n\
         \"$BIN\" down wg0 2>/dev/null\nkill $(jobs -p) 2>/dev/null || true"
    ));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let rcs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(rcs, ["rc=2", "rc=2", "rc=0"], "{stdout}{stderr}");
    assert!(
        stderr.contains("would lock out the SSH client 192.0.2.5"),
        "{stderr}"
    );
    assert!(
        stderr.contains("would lock out the SSH client 2001:db8:5::5"),
        "{stderr}"
    );
}

/// A temporary directory for one test, owned by root and not writable by others (the trust
/// check looks at every directory above a config).
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgfw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `wgfw-hook plan wg0 --config DIR/wg0.conf ARGS` with `settings` as
/// /etc/wgfw/wg0.conf, which exists only in the mount namespace of the run (an overlay of
/// /etc, as in tests/faults.rs). Returns the exit code and what it printed on stderr.
fn plan_with_settings(dir: &std::path::Path, settings: &[u8], args: &str) -> (String, Vec<u8>) {
    plan_with_settings_after(dir, settings, "", args)
}

/// `plan_with_settings`, with the shell lines `prep` run after the settings file is in place.
fn plan_with_settings_after(
    dir: &std::path::Path,
    settings: &[u8],
    prep: &str,
    args: &str,
) -> (String, Vec<u8>) {
    std::fs::write(dir.join("settings"), settings).unwrap();
    let d = dir.display();
    let out = in_netns(&format!(
        "mount -t tmpfs tmpfs /mnt; mkdir /mnt/upper /mnt/work\n\
         mount -t overlay overlay -o lowerdir=/etc,upperdir=/mnt/upper,workdir=/mnt/work /etc\n\
         mkdir -p /etc/wgfw; cp {d}/settings /etc/wgfw/wg0.conf; chmod 600 /etc/wgfw/wg0.conf\n\
         {prep}\nset +e; \"$BIN\" plan wg0 --config {d}/wg0.conf {args} >/dev/null 2>{d}/err; echo \"rc=$?\""
    ));
    let rc = text(&out.stdout).trim().to_string();
    (rc, std::fs::read(dir.join("err")).unwrap())
}

/// Bytes a terminal acts on: C0 controls (but the line's end), DEL, and C1 controls in UTF-8.
fn raw_controls(err: &[u8]) -> bool {
    let body = err.strip_suffix(b"\n").unwrap_or(err);
    body.iter().any(|&b| b < 0x20 || b == 0x7f)
        || body
            .windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

#[test]
fn errors_never_echo_control_characters() {
    let dir = scratch("ctl");
    let conf = dir.join("wg0.conf");
    std::fs::write(
        &conf,
        "[Interface]\nAddress = 10.0.0.1/24\x1b[2J\nListenPort = 1\n",
    )
    .unwrap();
    let missing = dir.join("no\x1b]0;owned\x07such.conf");
    let c = conf.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["plan", "wg0", "--config", c],
        &["plan", "wg0", "--config", missing.to_str().unwrap()],
        &["plan", "wg\x1b[2J0"],
        &["pl\ran", "wg0"],
        &["plan", "wg0", "extra\u{9b}"],
        &["plan", "wg0", "--policy", "\x1b[31mdrop"],
        &["plan", "wg0", "--no-log=\x1b[2J"],
        &[
            "plan",
            "wg0",
            "--config",
            c,
            "--forward",
            "tcp/1=10.0.0.2,\x1bx",
        ],
    ];
    for args in cases {
        let out = hook(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            !raw_controls(&out.stderr),
            "{args:?}: {:?}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr).lines().count(), 1, "{args:?}");
    }
    std::fs::write(
        &conf,
        "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 1\n",
    )
    .unwrap();
    for settings in [
        &b"[peer cr\rdrop]\n"[..],
        b"wan = eth0\x1b[2J\n",
        b"\x1b]0;title\x07 = 1\n",
    ] {
        let (rc, err) = plan_with_settings(&dir, settings, "");
        assert_eq!(rc, "rc=2", "{settings:?}: {}", text(&err));
        assert!(!raw_controls(&err), "{settings:?}: {:?}", text(&err));
        assert!(
            text(&err).contains("/etc/wgfw/wg0.conf:1: "),
            "{}",
            text(&err)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `rollback = N` in the settings file would take the firewall away N seconds after every
/// `up`, the one at boot too: refused like `force`, with its line.
#[test]
fn rollback_in_the_settings_file_is_refused() {
    let dir = scratch("rollback");
    std::fs::write(
        dir.join("wg0.conf"),
        "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 1\n",
    )
    .unwrap();
    let (rc, err) = plan_with_settings(&dir, b"no-log = yes\nrollback = 120\n", "");
    assert_eq!(rc, "rc=2", "{}", text(&err));
    assert_eq!(
        text(&err),
        "wgfw-hook: wg0: /etc/wgfw/wg0.conf:2: \"rollback\" is for the command line only: the settings file is read by every up, the one at boot too\n"
    );
    // On the command line it is what it always was.
    let (rc, err) = plan_with_settings(&dir, b"no-log = yes\n", "--rollback 120");
    assert_eq!(rc, "rc=0", "{}", text(&err));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// In the settings file a later line no longer hides a wrong earlier one: a single-valued key
/// given twice is refused with both lines; lists add up.
#[test]
fn a_repeated_setting_is_refused_with_both_lines() {
    let dir = scratch("repeat");
    std::fs::write(
        dir.join("wg0.conf"),
        "[Interface]\nAddress = 10.66.0.1/24\nListenPort = 51820\n\
         [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.66.0.2/32\n\
         [Peer]\nPublicKey = Hk3bN1b1K8pWJ1b1XUq9I7Ih0w5b9X1gZ5s0oY6mQmk=\nAllowedIPs = 10.66.0.3/32\n",
    )
    .unwrap();
    let sections = "[peer laptop]\npeer = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
                    peer-to-peer = nosuchsection\npeer-to-peer = guests\n\
                    [group guests]\npeer = Hk3bN1b1K8pWJ1b1XUq9I7Ih0w5b9X1gZ5s0oY6mQmk=\n";
    let (rc, err) = plan_with_settings(&dir, sections.as_bytes(), "");
    assert_eq!(rc, "rc=2", "{}", text(&err));
    assert_eq!(
        text(&err),
        "wgfw-hook: wg0: /etc/wgfw/wg0.conf:4: \"peer-to-peer\" is given again in [peer laptop] (first on line 3): only peer, lan and allow may repeat\n"
    );
    let (rc, err) = plan_with_settings(
        &dir,
        b"policy = drop\nlan = 192.168.1.0/24\npolicy = accept\n",
        "",
    );
    assert_eq!(rc, "rc=2", "{}", text(&err));
    assert!(
        text(&err).contains("/etc/wgfw/wg0.conf:3: \"policy\" is given again (first on line 1)"),
        "{}",
        text(&err)
    );
    let (rc, err) = plan_with_settings(&dir, b"lan = 192.168.1.0/24\nlan = 192.168.2.0/24\n", "");
    assert_eq!(rc, "rc=0", "{}", text(&err));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A config or settings file is read only when no user but root could have written it or
/// put another in its place: its mode, its group, its ACL, every directory above it up to /
/// (a sticky one only with the entry in it root's), and the target of a symbolic link with
/// the directories above that; a FIFO or a directory in its place is refused at once.
#[test]
fn files_others_could_write_or_replace_are_refused() {
    let dir = scratch("trust");
    let d = dir.display().to_string();
    // (setup in a directory of its own, the config's path there, what the error says).
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "chgrp 100 wg0.conf; chmod 664 wg0.conf",
            "wg0.conf",
            Some(
                "/wg0.conf: group 100 may write it, and it configures root's firewall: chmod g-w ",
            ),
        ),
        ("chgrp 0 wg0.conf; chmod 664 wg0.conf", "wg0.conf", None),
        (
            "setfacl -m u:1000:rw wg0.conf",
            "wg0.conf",
            Some(
                "/wg0.conf: its ACL lets user 1000 write it, and it configures root's firewall: setfacl -b ",
            ),
        ),
        (
            "setfacl -m g:100:rw wg0.conf",
            "wg0.conf",
            Some("/wg0.conf: its ACL lets group 100 write it"),
        ),
        ("setfacl -m u:1000:rw,m::r wg0.conf", "wg0.conf", None),
        ("setfacl -m u:0:rw,g:0:rw wg0.conf", "wg0.conf", None),
        (
            "mkdir d; mv wg0.conf d/; chmod 777 d",
            "d/wg0.conf",
            Some("/d: every user may write it and so replace "),
        ),
        (
            "mkdir d; mv wg0.conf d/; chown 1000 d",
            "d/wg0.conf",
            Some("/d: owned by user 1000, who could replace "),
        ),
        (
            "mkdir d; mv wg0.conf d/; chgrp 100 d; chmod 775 d",
            "d/wg0.conf",
            Some("/d: group 100 may write it and so replace "),
        ),
        (
            "mkdir d; mv wg0.conf d/; setfacl -m u:1000:rwx d",
            "d/wg0.conf",
            Some("/d: its ACL lets user 1000 write it and so replace "),
        ),
        (
            "chgrp 100 .; chmod 775 .",
            "wg0.conf",
            Some(": group 100 may write it and so replace "),
        ),
        ("mkdir d; mv wg0.conf d/; chmod 1777 d", "d/wg0.conf", None),
        (
            "mkdir d; chmod 1777 d; ln -s ../wg0.conf d/link.conf; chown -h 1000 d/link.conf",
            "d/link.conf",
            Some("/d/link.conf: owned by user 1000, who could replace "),
        ),
        (
            "mkdir d; chmod 1777 d; mkdir d/e; chown 1000 d/e; mv wg0.conf d/e/",
            "d/e/wg0.conf",
            Some("/d/e: owned by user 1000, who could replace "),
        ),
        (
            "mkdir real; mv wg0.conf real/; ln -s real/wg0.conf link.conf",
            "link.conf",
            None,
        ),
        (
            "mkdir real; mv wg0.conf real/; ln -s $PWD/real/../real/./wg0.conf link.conf",
            "link.conf",
            None,
        ),
        (
            "mkdir real; mv wg0.conf real/; chmod 777 real; ln -s real/wg0.conf link.conf",
            "link.conf",
            Some("/real: every user may write it and so replace "),
        ),
        (
            "ln -s loop.conf loop.conf",
            "loop.conf",
            Some("/loop.conf: too many symbolic links"),
        ),
        (
            "mkfifo fifo.conf",
            "fifo.conf",
            Some("/fifo.conf: a FIFO, not a regular file"),
        ),
        (
            "mkdir dir.conf",
            "dir.conf",
            Some("/dir.conf: a directory, not a regular file"),
        ),
    ];
    let mut failed = Vec::new();
    for (i, (setup, path, want)) in cases.iter().enumerate() {
        let sub = dir.join(i.to_string());
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("wg0.conf"),
            "[Interface]\nAddress = 10.66.0.1/24\nListenPort = 51820\n",
        )
        .unwrap();
        let ok = Command::new("sh")
            .args(["-ec", &format!("chmod 600 wg0.conf; {setup}")])
            .current_dir(&sub)
            .status()
            .unwrap();
        assert!(ok.success(), "{setup}");
        // Bounded: before this check a FIFO made plan wait for a writer forever.
        let out = Command::new("timeout")
            .args(["-k", "1", "20", BIN, "plan", "wg0", "--config"])
            .arg(sub.join(path))
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        let good = match want {
            None => out.status.success(),
            Some(w) => out.status.code() == Some(2) && err.lines().count() == 1 && err.contains(w),
        };
        if !good {
            failed.push(format!("{setup}: {:?} {err}", out.status.code()));
        }
    }
    // A user's `plan` still reads the user's own file in the user's own directory, even where
    // the user's own group may write it.
    let mine = dir.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(
        mine.join("wg0.conf"),
        "[Interface]\nAddress = 10.66.0.1/24\nListenPort = 51820\n",
    )
    .unwrap();
    std::fs::copy(BIN, mine.join("wgfw-hook")).unwrap();
    let ok = Command::new("sh")
        .args([
            "-ec",
            "chown -R 65534:65534 .; chmod 775 .; chmod 664 wg0.conf; chmod 755 wgfw-hook",
        ])
        .current_dir(&mine)
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(mine.join("wgfw-hook"))
        .args(["plan", "wg0", "--config"])
        .arg(mine.join("wg0.conf"))
        .output()
        .unwrap();
    if !out.status.success() {
        failed.push(format!("a user's own file: {}", text(&out.stderr)));
    }
    // The settings file, and the directory above it.
    std::fs::write(
        dir.join("wg0.conf"),
        "[Interface]\nAddress = 10.66.0.1/24\nListenPort = 51820\n",
    )
    .unwrap();
    for (prep, want) in [
        (
            "chgrp 100 /etc/wgfw/wg0.conf; chmod 664 /etc/wgfw/wg0.conf",
            "/etc/wgfw/wg0.conf: group 100 may write it",
        ),
        (
            "chmod 777 /etc/wgfw",
            "/etc/wgfw: every user may write it and so replace /etc/wgfw/wg0.conf",
        ),
    ] {
        let (rc, err) = plan_with_settings_after(&dir, b"no-log = yes\n", prep, "");
        if rc != "rc=2" || !text(&err).contains(want) {
            failed.push(format!("{prep}: {rc} {}", text(&err)));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failed.is_empty(), "in {d}:\n{}", failed.join("\n"));
}

/// `plan` with at most 1 GiB of address space: what is refused is refused before it is built.
fn bounded(args: &[&str]) -> Output {
    Command::new("sh")
        .args([
            "-c",
            "ulimit -v 1048576; exec timeout -k 1 60 \"$@\"",
            "sh",
            BIN,
        ])
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

/// A million AllowedIPs made two million rules and 900 MB without a word. Every input has a
/// limit far above real use, refused in one line naming the file and line, in little memory.
#[test]
fn input_beyond_the_limits_is_refused_in_one_line() {
    let dir = scratch("limits");
    let conf = dir.join("wg0.conf");
    let c = conf.to_str().unwrap();
    let head = "[Interface]\nAddress = 10.0.0.1/32\nListenPort = 51820\n";
    let allowed: Vec<String> = (0..1_000_000)
        .map(|i| format!("10.{}.{}.{}/32", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    let cases: Vec<(String, Vec<&str>, String)> = vec![
        (
            format!(
                "{head}[Peer]\nPublicKey = {key}\nAllowedIPs = {}\n",
                allowed.join(", ")
            ),
            vec![],
            format!("{c}:6: more than 100000 AllowedIPs networks of one peer: wgfw-hook's limit"),
        ),
        (
            format!(
                "{head}{}",
                "[Peer]\nAllowedIPs = 10.9.0.1/32\n".repeat(100_001)
            ),
            vec![],
            format!("{c}:200004: more than 100000 [Peer] sections: wgfw-hook's limit"),
        ),
        (
            format!(
                "{head}{}",
                "[Peer]\nAllowedIPs = 10.9.0.1/32\n".repeat(100_000)
            ),
            vec![
                "--lan",
                "192.168.1.0/24",
                "--lan",
                "192.168.2.0/24",
                "--lan",
                "192.168.3.0/24",
                "--lan",
                "192.168.4.0/24",
                "--lan",
                "192.168.5.0/24",
            ],
            "more than 500000 rules pairing networks (500005: 100001 tunnel networks".into(),
        ),
    ];
    for (text, extra, want) in &cases {
        std::fs::write(&conf, text).unwrap();
        let mut args = vec!["plan", "wg0", "--config", c];
        args.extend(extra);
        let out = bounded(&args);
        assert_one_line_error(&out, 2, want);
    }
    // Its size is known before a byte is read: a sparse file is refused at once.
    std::fs::File::create(&conf)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    assert_one_line_error(
        &bounded(&["plan", "wg0", "--config", c]),
        2,
        &format!("{c}: more than 67108864 bytes: wgfw-hook's limit"),
    );
    let mut args = vec!["plan", "wg0"];
    args.extend(std::iter::repeat_n(["--admin", "192.0.2.1"], 1_001).flatten());
    assert_one_line_error(&hook(&args), 2, "--admin: more than 1000 admin entries");
    // The settings file's sections.
    std::fs::write(&conf, head).unwrap();
    let sections: String = (0..100_001).map(|i| format!("[group g{i}]\n")).collect();
    let (rc, err) = plan_with_settings(&dir, sections.as_bytes(), "");
    assert_eq!(rc, "rc=2");
    assert!(
        text(&err).starts_with("wgfw-hook: wg0: /etc/wgfw/wg0.conf:100001: more than 100000 [peer] and [group] sections"),
        "{}",
        text(&err)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// No wg-quick config and no live interface: `plan` reads the tunnel from systemd-networkd's
/// files as networkd will create it (the `.netdev` that names it, the first `.network` that
/// matches it, drop-ins, masks). Every directory networkd reads is the script's own: overlays
/// of /etc and /run in its mount namespace, empty tmpfs over the others; the host's are never
/// written.
#[test]
fn plan_reads_a_tunnel_networkd_has_not_created_yet() {
    let dir = scratch("networkd");
    let d = dir.display();
    let out = in_netns(&format!(
        r#"mount -t tmpfs tmpfs /mnt; mkdir -p /mnt/etc/upper /mnt/etc/work /mnt/run/upper /mnt/run/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=/mnt/etc/upper,workdir=/mnt/etc/work /etc
mount -t overlay overlay -o lowerdir=/run,upperdir=/mnt/run/upper,workdir=/mnt/run/work /run
for n in /usr/local/lib/systemd/network /usr/lib/systemd/network; do
  if [ -d $n ]; then mount -t tmpfs tmpfs $n; fi
done
mkdir -p /etc/systemd/network /run/systemd/network
mount -t tmpfs tmpfs /etc/systemd/network; mount -t tmpfs tmpfs /run/systemd/network
E=/etc/systemd/network R=/run/systemd/network
# Masked in /etc: never read.
printf '[NetDev]\nName=wgnd0\nKind=wireguard\n[WireGuard]\nListenPort=1111\n' >$R/40-wgnd0.netdev
ln -s /dev/null $E/40-wgnd0.netdev
# Not WireGuard.
printf '[NetDev]\nName=wgnd0\nKind=bridge\n' >$R/45-wgnd0.netdev
cat >$E/50-wgnd0.netdev <<X
[NetDev]
Name=wgnd0
Kind=wireguard
[WireGuard]
ListenPort=51820
PrivateKeyFile=$E/wgnd0.key
[WireGuardPeer]
PublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=
AllowedIPs=10.66.0.2/32
[WireGuardPeer]
PublicKey=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2=
AllowedIPs=10.66.0.3/32,fd66::3/128
X
printf '[Match]\nName=eth* en*\n[Network]\nAddress=10.98.0.1/24\n' >$E/10-eth.network
printf '[Match]\nName=wgnd0\n[Network]\nAddress=10.66.0.1/24\n' >$E/50-wgnd0.network
# Shadowed by /etc's file of the same name.
printf '[Match]\nName=wgnd0\n[Network]\nAddress=10.97.0.1/24\n' >$R/50-wgnd0.network
mkdir $R/50-wgnd0.network.d
printf '[Address]\nAddress=fd66::1/64\n' >$R/50-wgnd0.network.d/v6.conf
# Matches too, but comes later: networkd applies the first.
printf '[Match]\nName=wg*\n[Network]\nAddress=10.99.0.1/24\n' >$E/60-wg.network
set +e
"$BIN" plan wgnd0 --backend nft >{d}/ok.out 2>{d}/ok.err; echo "ok=$?"
# A host address: the peers' AllowedIPs are the tunnel networks.
rm -r $R/50-wgnd0.network.d; printf '[Match]\nName=wgnd0\n[Network]\nAddress=10.66.0.1/32\n' >$E/50-wgnd0.network
"$BIN" plan wgnd0 --backend nft >{d}/peers.out 2>/dev/null; echo "peers=$?"
# No .network gives an address.
mv $E/50-wgnd0.network $E/60-wg.network $E/10-eth.network /mnt/; rm $R/50-wgnd0.network
"$BIN" plan wgnd0 >/dev/null 2>{d}/noaddr.err; echo "noaddr=$?"
mv /mnt/50-wgnd0.network $E/
# A value networkd's file gets wrong.
sed -i 's|^AllowedIPs=10.66.0.2/32$|AllowedIPs=10.66.0.2/33|' $E/50-wgnd0.netdev
"$BIN" plan wgnd0 >/dev/null 2>{d}/bad.err; echo "bad=$?"
# A file another user could write never becomes the firewall.
sed -i 's|/33$|/32|' $E/50-wgnd0.netdev; chmod o+w $E/50-wgnd0.netdev
"$BIN" plan wgnd0 >/dev/null 2>{d}/trust.err; echo "trust=$?"
# No .netdev: the error says what was looked for.
rm $E/50-wgnd0.netdev
"$BIN" plan wgnd0 >/dev/null 2>{d}/none.err; echo "none=$?"
"#
    ));
    let read = |f: &str| text(&std::fs::read(dir.join(f)).unwrap());
    let stdout = text(&out.stdout);
    for rc in ["ok=0", "peers=0", "noaddr=2", "bad=2", "trust=2", "none=2"] {
        assert!(stdout.lines().any(|l| l == rc), "{rc}: {stdout}");
    }
    let plan = read("ok.out");
    for want in [
        "# listen port 51820, MTU 1420, backend nft",
        "# IPv4: address 10.66.0.1/24; tunnel 10.66.0.0/24;",
        "# IPv6: address fd66::1/64; tunnel fd66::/64;",
        "# note: the tunnel's addresses, port and peers are read from /etc/systemd/network/50-wgnd0.netdev, 50-wgnd0.network and /run/systemd/network/50-wgnd0.network.d/v6.conf (wgnd0 is not up yet); options: the command line",
        "udp dport 51820",
    ] {
        assert!(plan.contains(want), "{want:?} not in\n{plan}");
    }
    for never in ["1111", "10.97.0.1", "10.98.0.1", "10.99.0.1"] {
        assert!(!plan.contains(never), "{never} in\n{plan}");
    }
    let peers = read("peers.out");
    assert!(
        peers.contains("# IPv4: address 10.66.0.1/32; tunnel 10.66.0.2/31;"),
        "{peers}"
    );
    let one_line = |f: &str, want: &str| {
        let err = read(f);
        assert_eq!(err.lines().count(), 1, "{f}: {err}");
        assert!(err.contains(want), "{f}: {err:?} should say {want:?}");
    };
    one_line(
        "noaddr.err",
        "/etc/systemd/network/50-wgnd0.netdev creates wgnd0, but no .network matches it to give it an Address=",
    );
    one_line(
        "bad.err",
        "/etc/systemd/network/50-wgnd0.netdev:9: AllowedIPs \"10.66.0.2/33\" is not an IP network",
    );
    one_line(
        "trust.err",
        "/etc/systemd/network/50-wgnd0.netdev: every user may write it",
    );
    one_line(
        "none.err",
        "/etc/wireguard/wgnd0.conf: no such wg-quick config, and no live WireGuard interface wgnd0 to read instead, nor a systemd-networkd .netdev that creates it",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
