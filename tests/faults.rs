//! Faults injected end to end (issue 8): backend programs that fail half way or are missing, a
//! sysctl that cannot be written, `up` killed at random points, tunnels racing each other, a
//! stuck lock, rules restored at boot, untrusted files and a hostile environment. Each test runs
//! in network and mount namespaces of its own, with a private /run (its own lock and records);
//! after each fault, the firewall and every sysctl are as they were, or fully as planned.

mod common;

use common::{BACKENDS, assert_has, assert_one_error, per_backend, run_isolated as run};

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

/// Per backend, the units a change is atomic in (`$UNITS`), and `unit U` printing one. nft: one
/// table for both families. iptables-*-restore commits each table at its `COMMIT` line, so a
/// family's change is atomic per table only (a kill between two commits leaves some tables
/// changed, which `down` removes).
fn units_of(backend: &str) -> String {
    match backend.strip_prefix("iptables-") {
        Some(v) => format!(
            "unit() {{ case ${{1%%.*}} in v4) iptables-{v}-save -t ${{1#*.}};; v6) ip6tables-{v}-save -t ${{1#*.}};; esac 2>/dev/null \
               | {{ grep -v '^#' || true; }} | sed 's/\\[[0-9]*:[0-9]*\\]//'; }}\n\
             UNITS=$(for f in v4 v6; do for t in raw mangle nat filter; do echo $f.$t; done; done)"
        ),
        None => "unit() { nft list ruleset; }\nUNITS=both".into(),
    }
}

#[test]
fn up_killed_at_random_points_is_all_or_nothing_and_down_restores() {
    // `up` (with whatever it runs, as a service manager kills it) gets SIGKILL after a random
    // delay between 0 and the length of a whole `up`. Each unit of atomicity (see `units_of`)
    // must then be as before or fully the plan, and `down` must leave everything as before.
    const ROUNDS: u32 = 100;
    per_backend(|backend| {
        let stdout = run(&format!(
            "{fams}\n\
             snapshot > $T/before\n\
             s=$(date +%s%N); \"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null; ms=$(( ($(date +%s%N) - s) / 1000000 ))\n\
             for f in $UNITS; do unit $f > $T/full.$f; done; \"$BIN\" down wg0 2>/dev/null\n\
             # After a first use: the legacy tables stay loaded, empty.\n\
             for f in $UNITS; do unit $f > $T/before.$f; done\n\
             [ $ms -lt 1000 ] || ms=999; echo \"up-ms=$ms\"\n\
             for r in $(seq 1 {ROUNDS}); do\n\
               setsid \"$BIN\" up wg0 --config \"$conf\" --backend {backend} >/dev/null 2>&1 & pid=$!\n\
               sleep \"$(printf '0.%03d' $((RANDOM % (ms + 1))))\"\n\
               kill -9 -- -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true\n\
               for f in $UNITS; do\n\
                 unit $f > $T/now\n\
                 if cmp -s $T/now $T/before.$f; then echo \"$f untouched\"\n\
                 elif cmp -s $T/now $T/full.$f; then echo \"$f full\"\n\
                 else echo \"PARTIAL round $r $f\"; cp $T/now $T/partial.$r.$f; fi\n\
               done\n\
               \"$BIN\" down wg0 2>/dev/null || echo \"DOWN-FAILED round $r\"\n\
               snapshot > $T/after; cmp -s $T/before $T/after || {{ echo \"LEFT round $r\"; cp $T/after $T/left.$r; }}\n\
               state_left\n\
             done | sort | uniq -c\n\
             for p in $T/partial.* $T/left.*; do [ -e $p ] || continue; echo \"--- $p\"; case $p in *partial*) diff $T/full.${{p##*.}} $p;; *) diff $T/before $p;; esac || true; done",
            fams = units_of(backend),
        ));
        for bad in ["PARTIAL", "LEFT", "DOWN-FAILED", "STATE-LEFT"] {
            assert!(!stdout.contains(bad), "{backend}: {stdout}");
        }
        // The kills fell both before and after the change.
        assert!(
            stdout.contains(" untouched\n") && stdout.contains(" full\n"),
            "{backend}: {stdout}"
        );
    });
}

#[test]
fn down_killed_at_random_points_is_finished_by_the_next_down() {
    // The last `down` removes what the record or the nftables overview names without reading
    // the rules. Killed half way, it leaves some tables done and some not, and the record
    // naming chains already gone; the next `down` must still leave everything as before.
    const ROUNDS: u32 = 50;
    per_backend(|backend| {
        let stdout = run(&format!(
            "snapshot > $T/before\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null\n\
             s=$(date +%s%N); \"$BIN\" down wg0 2>/dev/null; ms=$(( ($(date +%s%N) - s) / 1000000 ))\n\
             snapshot > $T/before\n\
             [ $ms -lt 1000 ] || ms=999; echo \"down-ms=$ms\"\n\
             for r in $(seq 1 {ROUNDS}); do\n\
               \"$BIN\" up wg0 --config \"$conf\" --backend {backend} >/dev/null 2>&1 || echo \"UP-FAILED round $r\"\n\
               setsid \"$BIN\" down wg0 >/dev/null 2>&1 & pid=$!\n\
               sleep \"$(printf '0.%03d' $((RANDOM % (ms + 1))))\"\n\
               kill -9 -- -$pid 2>/dev/null && echo killed || echo finished; wait $pid 2>/dev/null || true\n\
               \"$BIN\" down wg0 2>/dev/null || echo \"DOWN-FAILED round $r\"\n\
               snapshot > $T/after; cmp -s $T/before $T/after || {{ echo \"LEFT round $r\"; cp $T/after $T/left.$r; }}\n\
               state_left\n\
             done | sort | uniq -c\n\
             for p in $T/left.*; do [ -e $p ] || continue; echo \"--- $p\"; diff $T/before $p || true; done"
        ));
        for bad in ["LEFT", "DOWN-FAILED", "UP-FAILED", "STATE-LEFT"] {
            assert!(!stdout.contains(bad), "{backend}: {stdout}");
        }
        assert!(stdout.contains(" killed\n"), "{backend}: {stdout}");
    });
}

/// Five more stand-in tunnels, wg1 to wg5, with configs $T/wgN.conf; `each STEP ARGS...` runs
/// STEP for wg0 to wg5 at once (`up_` or `down_`, or `churn`: down, then up again) and waits
/// for all, saying which failed.
const SIX: &str = r#"
for i in 1 2 3 4 5; do
  ip link add wg$i type veth peer name wgpeer$i; ip link set wg$i up
  printf '[Interface]\nAddress = 10.7%s.0.1/24, fd7%s::1/64\nListenPort = 5182%s\n' $i $i $i > $T/wg$i.conf
done
up_() { "$BIN" up wg$1 --config $T/wg$1.conf "${@:2}" 2>/dev/null; }
down_() { "$BIN" down wg$1 2>/dev/null; }
churn() { down_ $1 && up_ "$@"; }
each() {
  local pids=() i
  for i in 0 1 2 3 4 5; do { $1 $i "${@:2}" || echo "FAILED $1 wg$i"; } & pids+=($!); done
  for i in "${pids[@]}"; do wait $i; done
}
"#;

#[test]
fn six_tunnels_racing_lose_and_duplicate_nothing() {
    // The reference: all six brought up one after the other. Then, five times: all up at once,
    // all down and up again at once, all down at once. Every `up` names the backend: without
    // it, an `up` that finds the other five down at that instant picks auto's, not the round's.
    per_backend(|backend| {
        let stdout = run(&format!(
            "{SIX}\nsnapshot > $T/before\n\
             for i in 0 1 2 3 4 5; do up_ $i --backend {backend}; done\n\
             snapshot | sort > $T/all; for i in 0 1 2 3 4 5; do down_ $i; done\n\
             for r in 1 2 3 4 5; do\n\
               each up_ --backend {backend}\n\
               snapshot | sort | cmp -s $T/all - || echo \"UP-DIFFERS round $r\"\n\
               echo \"forward=$(cat /proc/sys/net/ipv4/ip_forward)\"\n\
               each churn --backend {backend}\n\
               snapshot | sort | cmp -s $T/all - || {{ echo \"CHURN-DIFFERS round $r\"; snapshot | sort | {{ diff $T/all - || true; }} | head -40; }}\n\
               each down_\n\
               snapshot | cmp -s $T/before - || {{ echo \"LEFT round $r\"; snapshot | {{ diff $T/before - || true; }} | head -40; }}\n\
               state_left\n\
             done"
        ));
        for bad in ["FAILED", "DIFFERS", "LEFT", "forward=0"] {
            assert!(!stdout.contains(bad), "{backend}: {stdout}");
        }
        assert_eq!(
            stdout.matches("forward=1").count(),
            5,
            "{backend}: {stdout}"
        );
    });
}

#[test]
fn a_held_lock_fails_up_after_a_bounded_wait() {
    // This shell holds the lock (as a stuck run would) on fd 9.
    let stdout = run(
        "snapshot > $T/before\nmkdir -m 700 /run/wgfw; exec 9>/run/wgfw/lock; flock -n 9\n\
         s=$(date +%s%N); attempt up wg0 --config \"$conf\"; echo \"waited-ms=$(( ($(date +%s%N) - s) / 1000000 ))\"\n\
         snapshot | diff $T/before - && echo SAME\nexec 9>&-\n\
         \"$BIN\" up wg0 --config \"$conf\" 2>/dev/null && echo UP-AFTER\n\"$BIN\" down wg0 2>/dev/null",
    );
    assert_one_error(
        &stdout,
        1,
        "another wgfw-hook has held /run/wgfw/lock for 10 s",
    );
    assert_has(&stdout, &["SAME", "UP-AFTER"]);
    let waited: u64 = stdout
        .split_once("waited-ms=")
        .and_then(|(_, rest)| rest.lines().next()?.parse().ok())
        .unwrap();
    assert!((10_000..13_000).contains(&waited), "{waited} ms: {stdout}");
}

#[test]
fn rules_restored_at_boot_are_adopted_without_duplicates_and_removed() {
    // netfilter-persistent saved the ruleset while the tunnel was up; at boot (an empty /run)
    // it comes back before the tunnel. `up` adopts it: the same rules, none twice. `down`
    // removes them, after an `up` or without one.
    per_backend(|backend| {
        // `rules`: every rule and our chains (a restore of a whole save also brings back the
        // empty built-in chains iptables-nft made, which are not ours to judge).
        let (save, restore, rules) = match backend.strip_prefix("iptables-") {
            Some(v) => (
                format!("iptables-{v}-save > $T/v4.save; ip6tables-{v}-save > $T/v6.save"),
                format!("iptables-{v}-restore < $T/v4.save; ip6tables-{v}-restore < $T/v6.save"),
                "rules() { snapshot | { grep -e '^-A ' -e '^:WGFW' || true; } | sort; }",
            ),
            None => (
                "nft list ruleset > $T/nft.save".to_string(),
                "nft -f $T/nft.save".to_string(),
                "rules() { nft list ruleset | sort; }",
            ),
        };
        let stdout = run(&format!(
            "{rules}\n\
             sysctls() {{ snapshot | grep '^net\\.'; }}\n\
             sysctls > $T/sysctls; rules > $T/none\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null\n{save}\nrules > $T/up\n\
             echo \"rules-up=$(grep -c . $T/up)\"\n\"$BIN\" down wg0 2>/dev/null\n\
             for how in up-then-down down-only; do\n\
               rm -rf /run/wgfw; {restore}\n\
               if [ $how = up-then-down ]; then\n\
                 \"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null\n\
                 echo \"rules-adopted=$(rules | grep -c .)\"; rules | diff $T/up - && echo ADOPTED-SAME\n\
               fi\n\
               \"$BIN\" down wg0 2>/dev/null\n\
               rules | diff $T/none - && echo \"$how: REMOVED\"\n\
               sysctls | diff $T/sysctls - && echo \"$how: SYSCTLS-SAME\"\n\
             done"
        ));
        assert_has(
            &stdout,
            &[
                "ADOPTED-SAME",
                "up-then-down: REMOVED",
                "up-then-down: SYSCTLS-SAME",
                "down-only: REMOVED",
                "down-only: SYSCTLS-SAME",
            ],
        );
        assert!(!stdout.contains("rules-up=0\n"), "{backend}: {stdout}");
    });
}

#[test]
fn state_is_private_even_under_a_lax_umask() {
    // umask 000: what up writes is still 0600 in 0700 directories. (A world-writable /run/wgfw
    // left by someone is refused: hostile_io.rs.)
    let stdout = run("umask 000\n\
         \"$BIN\" up wg0 --config \"$conf\" --backend iptables-nft 2>/dev/null\n\
         find /run/wgfw -printf 'MODE %m %y %p\\n'\n\"$BIN\" down wg0 2>/dev/null");
    let modes: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("MODE "))
        .collect();
    // The lock, and the records: state, options, config, sysctls, tables from before.
    assert!(modes.len() >= 7, "{stdout}");
    for m in modes {
        assert!(
            m.starts_with("700 d ") || m.starts_with("600 f "),
            "{m}: {stdout}"
        );
    }
}

#[test]
fn files_other_users_could_write_are_refused() {
    // /etc is an overlay in this mount namespace: /etc/wgfw exists here only.
    let cases = [
        (
            "chmod 666 /etc/wgfw/wg0.conf",
            "/etc/wgfw/wg0.conf: every user may write it",
            "chmod o-w /etc/wgfw/wg0.conf",
        ),
        (
            "chown 65534 /etc/wgfw/wg0.conf",
            "/etc/wgfw/wg0.conf: owned by user 65534",
            "chown root /etc/wgfw/wg0.conf",
        ),
        (
            "chmod 606 $conf",
            "/run/t/wg0.conf: every user may write it",
            "chmod o-w /run/t/wg0.conf",
        ),
        (
            "chown 1000 $conf",
            "/run/t/wg0.conf: owned by user 1000",
            "chown root /run/t/wg0.conf",
        ),
    ];
    for (spoil, what, fix) in cases {
        let stdout = run(&format!(
            "mkdir $T/upper $T/work; mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/upper,workdir=$T/work /etc\n\
             mkdir -p /etc/wgfw; echo 'no-log = yes' > /etc/wgfw/wg0.conf; chmod 644 /etc/wgfw/wg0.conf\n\
             snapshot > $T/before\n{spoil}\n\
             attempt up wg0 --config \"$conf\" --backend nft\n\
             snapshot | diff $T/before - && echo SAME\nstate_left\n\
             chmod 600 $conf; chmod 644 /etc/wgfw/wg0.conf; chown 0 $conf /etc/wgfw/wg0.conf\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend nft 2>/dev/null && echo TRUSTED-UP; \"$BIN\" down wg0 2>/dev/null"
        ));
        assert_one_error(&stdout, 2, what);
        assert!(stdout.contains(fix), "{stdout}");
        assert_has(&stdout, &["SAME", "TRUSTED-UP"]);
        assert!(!stdout.contains("STATE-LEFT"), "{stdout}");
    }
    // A user's `plan` reads the user's own file, but not another user's.
    let stdout = run(
        "cp \"$BIN\" $T/wgfw-hook; cp \"$conf\" $T/mine.conf; cp \"$conf\" $T/theirs.conf\n\
         chown 65534 $T/mine.conf; chown 1000 $T/theirs.conf; chmod 644 $T/*.conf\n\
         for c in mine theirs; do\n\
           rc=0; setpriv --reuid=65534 --regid=65534 --clear-groups $T/wgfw-hook plan wg0 --config $T/$c.conf >/dev/null 2>$T/err || rc=$?\n\
           echo \"$c rc=$rc\"; cat $T/err\n\
         done",
    );
    assert_has(
        &stdout,
        &[
            "mine rc=0",
            "theirs rc=2\nwgfw-hook: wg0: /run/t/theirs.conf: owned by user 1000",
        ],
    );
}
