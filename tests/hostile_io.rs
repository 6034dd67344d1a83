//! The hook turned against its host (issue 23), end to end: output nobody reads, records that
//! point elsewhere, programs and daemons that never answer. Each test runs in network and
//! mount namespaces of its own, with a private /run (`common::PRELUDE`).

mod common;

use common::{assert_has, assert_one_error, per_backend, run_isolated as run};

/// `closed`: makes fd 8 the write end of a pipe whose reader is gone, as `wg-quick up wg0 2>&1
/// | head` leaves it after ten lines; every write to it fails with EPIPE.
const CLOSED_PIPE: &str = r#"
mkfifo $T/fifo; exec 7<>$T/fifo 8>$T/fifo 7<&-
closed() { local rc=0; "$BIN" "$@" >&8 2>&8 || rc=$?; echo "$1 rc=$rc"; }
"#;

/// What breaks the installed firewall, per backend: a flushed ruleset and forwarding off.
fn drift(backend: &str) -> String {
    let flush = match backend.strip_prefix("iptables-") {
        Some(v) => format!("iptables-{v} -F WGFW-INPUT; ip6tables-{v} -F WGFW-INPUT"),
        None => "nft flush table inet wgfw".into(),
    };
    format!("{{ {flush}; sysctl -qw net.ipv4.ip_forward=0; }} || true")
}

#[test]
fn a_closed_pipe_interrupts_no_change() {
    // `up`, `check --repair` and `down` with stdout and stderr on a closed pipe (and `-v`, so
    // that the log writes there too) each finish their change: the same firewall and sysctls
    // as an `up` whose output was read, repaired after a flush, then everything as before.
    per_backend(|backend| {
        let stdout = run(&format!(
            "{CLOSED_PIPE}\nsnapshot > $T/before\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null; snapshot > $T/up\n\
             \"$BIN\" down wg0 2>/dev/null; snapshot | diff $T/before - >/dev/null && echo BASELINE\n\
             closed up wg0 --config \"$conf\" --backend {backend} -v\n\
             snapshot | diff $T/up - && echo UP-COMPLETE\n\
             {drift}\nsnapshot | diff $T/up - >/dev/null || echo DRIFTED\n\
             closed check wg0 --repair -v\n\
             snapshot | diff $T/up - && echo REPAIRED\n\
             closed status; closed plan wg0 --config \"$conf\" --backend {backend}\n\
             closed down wg0 -v\n\
             snapshot | diff $T/before - && echo DOWN-SAME\nstate_left",
            drift = drift(backend)
        ));
        assert_has(
            &stdout,
            &[
                "BASELINE",
                "up rc=0",
                "UP-COMPLETE",
                "DRIFTED",
                "check rc=0",
                "REPAIRED",
                "status rc=0",
                "plan rc=0",
                "down rc=0",
                "DOWN-SAME",
            ],
        );
        assert!(!stdout.contains("STATE-LEFT"), "{backend}: {stdout}");
    });
}

/// Every run of the hook bounded (a FIFO must not hang the test), and a root-owned file that
/// the records must never reach.
const BOUNDED: &str = r#"
printf '#!/bin/sh\nexec timeout 60 %s "$@"\n' "$BIN" > $T/bin; chmod 755 $T/bin; BIN=$T/bin
echo "root's own" > $T/victim
# listing: the records' directory as it is (owner, mode, type of each entry).
listing() { find /run/wgfw -printf '%p %u %m %y\n' 2>/dev/null | sort; }
"#;

#[test]
fn a_run_directory_another_user_could_write_is_refused_and_left_alone() {
    let cases = [
        (
            "mkdir -m 700 /run/wgfw; chown 1000 /run/wgfw",
            "/run/wgfw: owned by user 1000, not root: remove it (rm -r /run/wgfw) and run again",
        ),
        (
            "mkdir -m 777 /run/wgfw",
            "/run/wgfw: other users may write it (mode 0777): remove it (rm -r /run/wgfw) and run again",
        ),
        (
            "mkdir $T/elsewhere; ln -s $T/elsewhere /run/wgfw",
            "/run/wgfw: a symbolic link, not a directory: remove it (rm /run/wgfw) and run again",
        ),
        (
            "mkdir -m 700 /run/wgfw; ln -s $T/victim /run/wgfw/lock",
            "/run/wgfw/lock: a symbolic link: remove it (rm /run/wgfw/lock) and run again",
        ),
        (
            "mkdir -m 700 /run/wgfw; mkfifo -m 600 /run/wgfw/lock",
            "/run/wgfw/lock: a FIFO, not a regular file: remove it (rm /run/wgfw/lock) and run again",
        ),
    ];
    for (plant, want) in cases {
        // `up` refuses with one line and changes nothing, not even the directory; `down`
        // warns, removes nothing and exits 0.
        let stdout = run(&format!(
            "{BOUNDED}{plant}\nlisting > $T/was; snapshot > $T/before\n\
             attempt up wg0 --config \"$conf\"\n\
             snapshot | diff $T/before - && echo SAME\nlisting | diff $T/was - && echo DIR-SAME\n\
             rc=0; \"$BIN\" down wg0 2>$T/down || rc=$?; echo \"down rc=$rc\"; sed 's/^/DOWN: /' $T/down\n\
             rc=0; \"$BIN\" status >/dev/null 2>&1 || rc=$?; echo \"status rc=$rc\"\n\
             listing | diff $T/was - && echo STILL-SAME; cat $T/victim"
        ));
        assert_one_error(&stdout, 1, want);
        assert_has(
            &stdout,
            &[
                "SAME\n",
                "DIR-SAME",
                "down rc=0",
                &format!("DOWN: wgfw-hook: wg0: warning: {want} (nothing was removed)"),
                "status rc=1",
                "STILL-SAME",
                "root's own",
            ],
        );
    }
}

#[test]
fn a_namespace_directory_another_user_owns_is_refused_until_it_is_roots_again() {
    let stdout = run(&format!(
        "{BOUNDED}snapshot > $T/before\n\
         \"$BIN\" up wg0 --config \"$conf\" 2>/dev/null; snapshot > $T/up\n\
         d=$(echo /run/wgfw/netns-*); chown 1000 $d; listing > $T/was\n\
         attempt up wg0 --config \"$conf\" --no-log\n\
         snapshot | diff $T/up - && echo SAME\n\
         rc=0; \"$BIN\" down wg0 2>$T/down || rc=$?; echo \"down rc=$rc\"; sed 's/^/DOWN: /' $T/down\n\
         snapshot | diff $T/up - >/dev/null && echo KEPT\nlisting | diff $T/was - && echo DIR-SAME\n\
         chown 0 $d; \"$BIN\" down wg0 2>/dev/null && snapshot | diff $T/before - && echo DOWN-SAME\nstate_left"
    ));
    assert_one_error(
        &stdout,
        1,
        "owned by user 1000, not root: remove it (rm -r /run/wgfw/netns-",
    );
    assert_has(
        &stdout,
        &[
            "SAME\n",
            "down rc=0",
            "DOWN: wgfw-hook: wg0: warning: /run/wgfw/netns-",
            "KEPT",
            "DIR-SAME",
            "DOWN-SAME",
        ],
    );
    assert!(!stdout.contains("STATE-LEFT"), "{stdout}");
}

#[test]
fn records_are_never_followed_nor_waited_for_nor_taken_for_other_files() {
    // In the namespace's own directory: links in place of the temporary files `up` writes
    // through, ledger lines naming files outside /proc/sys/net, and a FIFO in place of the
    // interface's record. Nothing is followed, written outside, or waited for.
    let stdout = run(&format!(
        "{BOUNDED}snapshot > $T/before\n\
         \"$BIN\" up wg0 --config \"$conf\" 2>/dev/null; snapshot > $T/up; d=$(echo /run/wgfw/netns-*)\n\
         ln -s $T/victim $d/..probe.tmp; ln -s $T/victim $d/.wg0.options.tmp; ln -s $T/victim $d/.sysctl.tmp\n\
         \"$BIN\" up wg0 --config \"$conf\" --no-log 2>/dev/null && echo UP-AGAIN; cat $T/victim\n\
         printf '%s\\tpwned\\twg0\\t\\nnet/../../..%s\\tpwned\\twg0\\t\\n' $T/victim $T/victim >> $d/sysctl\n\
         echo \"planted=$(grep -c pwned $d/sysctl)\"\n\
         rm $d/wg0.state; mkfifo -m 600 $d/wg0.state\n\
         rc=0; \"$BIN\" status >$T/status 2>&1 || rc=$?; echo \"status rc=$rc\"; sed 's/^/STATUS: /' $T/status\n\
         rc=0; \"$BIN\" down wg0 2>$T/down || rc=$?; echo \"down rc=$rc\"; grep -v '^\\[#\\]' $T/down | sed 's/^/DOWN: /'\n\
         snapshot | diff $T/before - && echo DOWN-SAME; cat $T/victim; state_left"
    ));
    assert_has(
        &stdout,
        &[
            "UP-AGAIN",
            "planted=2",
            "status rc=0",
            "STATUS: wgfw-hook: warning: /run/wgfw/netns-",
            "/wg0.state: a FIFO, not a record the hook wrote: ignored",
            "down rc=0",
            "DOWN-SAME",
        ],
    );
    assert_eq!(stdout.matches("root's own").count(), 2, "{stdout}");
    assert!(!stdout.contains("pwned"), "{stdout}");
    // The ledger's own line for wg0 was still restored (DOWN-SAME), the planted ones dropped.
    assert!(!stdout.contains("STATE-LEFT"), "{stdout}");
}
