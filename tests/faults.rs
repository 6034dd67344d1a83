//! Faults injected end to end (issue 8): backend programs that fail half way or are missing, a
//! sysctl that cannot be written, `up` killed at random points, tunnels racing each other, a
//! stuck lock, rules restored at boot, untrusted files and a hostile environment. Each test runs
//! in network and mount namespaces of its own, with a private /run (its own lock and records);
//! after each fault, the firewall and every sysctl are as they were, or fully as planned.

mod common;

use common::{SETUP, assert_has, in_netns, text};

/// `SETUP`, a private /run (its records and lock; scratch space in $T), and `attempt ARGS...`,
/// which runs the hook and prints `rc=N` and every line of its stderr that is not a `[#]` step
/// as `ERR: line`.
const PRELUDE: &str = r#"
mount -t tmpfs -o mode=755 tmpfs /run
T=/run/t; mkdir $T; mv "$conf" $T/wg0.conf; conf=$T/wg0.conf
attempt() {
  set +e; "$BIN" "$@" 2>$T/err; local rc=$?; set -e
  echo "rc=$rc"; { grep -v '^\[#\] ' $T/err || true; } | sed 's/^/ERR: /'
}
# state_left: prints what is recorded in /run/wgfw besides the lock.
state_left() { find /run/wgfw -mindepth 1 ! -name lock 2>/dev/null | sed 's/^/STATE-LEFT /'; }
"#;

fn run(script: &str) -> String {
    let out = in_netns(&format!("{SETUP}{PRELUDE}{script}"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "the script failed: {stdout}");
    stdout
}

/// The `ERR:` lines of the attempt that printed `rc=`, which must be `code`: asserts that
/// there is exactly one, that it names the interface and says `want`.
fn assert_one_error(stdout: &str, code: i32, want: &str) {
    let errors: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ERR: "))
        .collect();
    assert!(stdout.contains(&format!("rc={code}\n")), "{stdout}");
    assert_eq!(errors.len(), 1, "one error line expected: {stdout}");
    assert!(errors[0].starts_with("wgfw-hook: wg0: "), "{stdout}");
    assert!(errors[0].contains(want), "{want:?} not in {stdout}");
}

const BACKENDS: [&str; 3] = ["iptables-nft", "iptables-legacy", "nft"];

/// Runs `fault` (shell lines), then `up`: it must fail with one line saying `want` and change
/// nothing, and a `down` after it (the fault still there) must leave everything as it was too.
fn assert_fault_changes_nothing(backend: &str, fault: &str, want: &str) {
    let stdout = run(&format!(
        "{fault}\nsnapshot > $T/before\n\
         attempt up wg0 --config \"$conf\" --backend {backend}\n\
         snapshot | diff $T/before - && echo SAME\nstate_left\n\
         \"$BIN\" down wg0 2>/dev/null\nsnapshot | diff $T/before - && echo DOWN-SAME\nstate_left"
    ));
    assert_one_error(&stdout, 1, want);
    assert_has(&stdout, &["SAME", "DOWN-SAME"]);
    assert!(!stdout.contains("STATE-LEFT"), "{backend}: {stdout}");
}

/// Exits 1 with a complaint, as a restore refusing a rule does.
fn refuse(prog: &str) -> String {
    format!("stub {prog} 'cat >/dev/null; echo \"{prog}: line 9 failed\" >&2; exit 1'")
}

/// The first time, applies the script with the real program and exits 1 anyway: it committed,
/// then failed (killed after the commit, a lost netlink reply). Later runs are the real one.
fn commit_then_fail(prog: &str) -> String {
    format!(
        "stub {prog} '[ -e /run/t/failed ] && exec /mnt/real/{prog} \"$@\"; touch /run/t/failed; \
         /mnt/real/{prog} \"$@\"; echo \"{prog}: lost the reply\" >&2; exit 1'"
    )
}

#[test]
fn a_backend_failing_half_way_leaves_nothing() {
    for v in ["nft", "legacy"] {
        let backend = format!("iptables-{v}");
        let v6 = format!("ip6tables-{v}-restore");
        let v4 = format!("iptables-{v}-restore");
        // The IPv4 half goes in, the IPv6 half is refused: the IPv4 half comes out again.
        assert_fault_changes_nothing(
            &backend,
            &refuse(&v6),
            &format!("{v6} refused the IPv6 rules: {v6}: line 9 failed"),
        );
        assert_fault_changes_nothing(
            &backend,
            &refuse(&v4),
            &format!("{v4} refused the IPv4 rules: {v4}: line 9 failed"),
        );
        assert_fault_changes_nothing(
            &backend,
            &commit_then_fail(&v6),
            &format!("{v6} refused the IPv6 rules: {v6}: lost the reply"),
        );
        assert_fault_changes_nothing(
            &backend,
            &format!("hide {v6}"),
            &format!("{v6} is not installed"),
        );
    }
    // nft: both families in one transaction, refused, or committed and then reported failed.
    let nft_f = |then: &str| {
        format!(
            "stub nft '[ \"$1\" = -f ] || exec /mnt/real/nft \"$@\"; {then}; echo \"nft: Error: Could not process rule\" >&2; exit 1'"
        )
    };
    assert_fault_changes_nothing(
        "nft",
        &nft_f("cat >/dev/null"),
        "nft refused the rules: nft: Error: Could not process rule",
    );
    assert_fault_changes_nothing(
        "nft",
        &nft_f(
            "[ -e /run/t/failed ] && exec /mnt/real/nft \"$@\"; touch /run/t/failed; /mnt/real/nft \"$@\"",
        ),
        "nft refused the rules: nft: Error: Could not process rule",
    );
    // (The script's own `nft` runs the real one.)
    let hidden = "hide nft; nft() { /mnt/real/nft \"$@\"; }";
    assert_fault_changes_nothing("nft", hidden, "nft is not installed");
}

#[test]
fn a_failing_second_step_under_nft_takes_the_first_back() {
    // With firewalld's table there, `up` runs two nft transactions: its own table, then accepts
    // in firewalld's chains. The second is refused: the first must come out again, and
    // firewalld's table stay as it was.
    let firewalld = "nft add table inet firewalld; \
        nft add chain inet firewalld filter_INPUT '{ type filter hook input priority filter + 10; policy accept; }'; \
        nft add rule inet firewalld filter_INPUT reject with icmpx admin-prohibited";
    let second = "n=$(cat /run/t/n 2>/dev/null || echo 0); echo $((n + 1)) > /run/t/n; \
        [ \"$n\" = 1 ] || exec /mnt/real/nft \"$@\"; cat >/dev/null; echo \"nft: Error: No buffer space available\" >&2; exit 1";
    assert_fault_changes_nothing(
        "nft",
        &format!("{firewalld}\nstub nft '[ \"$1\" = -f ] || exec /mnt/real/nft \"$@\"; {second}'"),
        "nft refused our accepts: nft: Error: No buffer space available",
    );
}

#[test]
fn a_sysctl_that_cannot_be_written_changes_nothing() {
    // A read-only file bind-mounted over the key, holding its value: reads see no difference,
    // writes fail. Forwarding is written first (and spreads); wg0's IPv6 redirects last.
    for key in [
        "net/ipv6/conf/all/forwarding",
        "net/ipv6/conf/wg0/accept_redirects",
    ] {
        for backend in BACKENDS {
            let dotted = key.replace('/', ".");
            assert_fault_changes_nothing(
                backend,
                &format!(
                    "cat /proc/sys/{key} > $T/ro; mount --bind $T/ro /proc/sys/{key}; mount -o remount,bind,ro /proc/sys/{key}"
                ),
                &format!("cannot write sysctl {dotted}="),
            );
        }
    }
}

#[test]
fn no_environment_variable_redirects_which_programs_run() {
    // Fake programs first in PATH, and an empty extension directory for iptables: shown to work
    // on a plain shell, then ignored by the hook.
    let evil = "mkdir $T/evil $T/nolib\n\
        for p in iptables-nft-restore ip6tables-nft-restore iptables-nft-save ip6tables-nft-save \
                 iptables-legacy-restore ip6tables-legacy-restore iptables-legacy-save ip6tables-legacy-save \
                 iptables-restore ip6tables-restore iptables ip6tables nft sysctl ip wg; do\n\
          printf '#!/bin/sh\\ntouch /run/t/EVIL-RAN\\nexit 1\\n' > $T/evil/$p; chmod 755 $T/evil/$p\n\
        done\n\
        PATH=$T/evil:$PATH iptables-restore </dev/null || true\n\
        [ -e $T/EVIL-RAN ] && echo CONTROL-PATH; rm -f $T/EVIL-RAN\n\
        XTABLES_LIBDIR=$T/nolib iptables-nft -A INPUT -m conntrack --ctstate NEW -j ACCEPT 2>/dev/null || echo CONTROL-LIBDIR\n\
        hostile() { env PATH=$T/evil:$PATH XTABLES_LIBDIR=$T/nolib IPTABLES_LIB_DIR=$T/nolib LD_LIBRARY_PATH=$T/nolib \"$@\"; }";
    for backend in BACKENDS {
        let stdout = run(&format!(
            "snapshot > $T/before\n{evil}\n\
             hostile \"$BIN\" up wg0 --config \"$conf\" --backend {backend} && echo UP-OK\n\
             [ -e $T/EVIL-RAN ] && echo EVIL-RAN\n\
             (iptables-{v}-save; nft list ruleset) | grep -c 'WGFW-wg0-IN' | sed 's/^/IN=/'\n\
             hostile \"$BIN\" down wg0 && echo DOWN-OK\n[ -e $T/EVIL-RAN ] && echo EVIL-RAN\n\
             snapshot | diff $T/before - && echo DOWN-SAME",
            v = if backend == "iptables-legacy" {
                "legacy"
            } else {
                "nft"
            },
        ));
        assert_has(
            &stdout,
            &[
                "CONTROL-PATH",
                "CONTROL-LIBDIR",
                "UP-OK",
                "DOWN-OK",
                "DOWN-SAME",
            ],
        );
        assert!(!stdout.contains("EVIL-RAN"), "{backend}: {stdout}");
        assert!(!stdout.contains("IN=0"), "{backend}: {stdout}");
    }
}
