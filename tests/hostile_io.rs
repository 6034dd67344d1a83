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

#[test]
fn a_program_that_does_not_answer_fails_its_step_in_time_and_is_undone() {
    // The first transaction of the run commits for real, then hangs (as a program stuck after
    // its commit does): killed at its deadline (30 s), its step fails and everything `up`
    // changed is put back. Later runs of the program are the real one: the next `up` (no
    // lock left behind) installs, and `down` leaves everything as before.
    per_backend(|backend| {
        let (prog, then) = match backend.strip_prefix("iptables-") {
            // The IPv6 half: the IPv4 half before it must come out again too.
            Some(v) => (format!("ip6tables-{v}-restore"), String::new()),
            None => (
                "nft".to_string(),
                "[ \"$1\" = -f ] || exec /mnt/real/nft \"$@\"; ".into(),
            ),
        };
        let stdout = run(&format!(
            "{BOUNDED}snapshot > $T/before\n\
             stub {prog} '{then}[ -e /run/t/hung ] && exec /mnt/real/{prog} \"$@\"; touch /run/t/hung; \
               /mnt/real/{prog} \"$@\"; exec sleep 100'\n\
             s=$(date +%s); attempt up wg0 --config \"$conf\" --backend {backend}; echo \"took=$(( $(date +%s) - s ))\"\n\
             [ -e /run/t/hung ] && echo HUNG\n\
             snapshot | diff $T/before - && echo SAME\nstate_left\n\
             \"$BIN\" up wg0 --config \"$conf\" --backend {backend} 2>/dev/null && echo UP-AFTER\n\
             \"$BIN\" down wg0 2>/dev/null; snapshot | diff $T/before - && echo DOWN-SAME"
        ));
        assert_one_error(&stdout, 1, &format!("{prog} did not answer within 30 s"));
        assert_has(&stdout, &["HUNG", "SAME\n", "UP-AFTER", "DOWN-SAME"]);
        assert!(!stdout.contains("STATE-LEFT"), "{backend}: {stdout}");
        let took: u64 = stdout
            .split_once("took=")
            .and_then(|(_, rest)| rest.lines().next()?.parse().ok())
            .unwrap();
        assert!((29..60).contains(&took), "{backend}: {took} s: {stdout}");
    });
}

/// `daemon SCRIPT`: a userspace WireGuard's socket for wg0 (a stand-in: socat), each
/// connection answered by the sh SCRIPT; `stop_daemon` ends it and what it runs.
const DAEMON: &str = r#"
S=/var/run/wireguard/wg0.sock; mkdir -p /var/run/wireguard
daemon() {
  printf '#!/bin/sh\necho $$ > /run/t/daemon.pid\n%s\n' "$1" > $T/daemon.sh; chmod 755 $T/daemon.sh
  rm -f $S; socat UNIX-LISTEN:$S,fork EXEC:$T/daemon.sh 2>/dev/null & echo $! > $T/socat.pid
  for i in $(seq 1 50); do [ -S $S ] && break; sleep 0.1; done
}
stop_daemon() {
  for p in $T/socat.pid $T/daemon.pid; do [ -e $p ] && { kill "$(cat $p)" 2>/dev/null || true; }; rm -f $p; done; rm -f $S
}
trap stop_daemon EXIT
"#;

#[test]
fn a_userspace_wireguard_that_hangs_drips_or_floods_costs_up_a_bounded_wait() {
    // With a port forward, `up` asks the live interface for its peers. A daemon that never
    // answers, one that drips a byte a second, one that sends 100 MB: each is given up on
    // within its deadline (5 s), with a warning, and never asked again through `wg` (which
    // would wait for the same daemon until its own deadline, 30 s). The firewall is the
    // config's, as without a daemon; memory stays far below the flood.
    let daemons = [
        ("silent", "exec sleep 60", "did not answer within 5 s"),
        (
            "drip",
            "for i in $(seq 1 60); do printf e; sleep 1; done",
            "did not answer within 5 s",
        ),
        (
            "flood",
            "yes allowed_ip=10.66.0.2/32 | head -c 100000000",
            "answered more than 64 MiB",
        ),
    ];
    let up = "\"$BIN\" up wg0 --config \"$conf\" --backend nft --forward tcp/8080=10.66.0.2";
    let mut script = format!(
        "{BOUNDED}{DAEMON}snapshot > $T/before\n{up} 2>/dev/null; snapshot > $T/config\n\
         \"$BIN\" down wg0 2>/dev/null\n"
    );
    for (name, body, _) in daemons {
        script.push_str(&format!(
            "daemon '{body}'\n\
             s=$(date +%s%N); rc=0; {up} -vv 2>$T/err || rc=$?\n\
             echo \"{name} rc=$rc took-ms=$(( ($(date +%s%N) - s) / 1000000 ))\"\n\
             grep -e 'warning' -e 'peak memory' $T/err | sed 's/^/{name}: /'\n\
             snapshot | diff $T/config - && echo \"{name} AS-CONFIG\"\n\
             stop_daemon; \"$BIN\" down wg0 2>/dev/null; snapshot | diff $T/before - && echo \"{name} DOWN-SAME\"\n"
        ));
    }
    let stdout = run(&script);
    for (name, _, why) in daemons {
        assert_has(
            &stdout,
            &[
                &format!("{name} rc=0 "),
                &format!(
                    "{name}: wgfw-hook: warning: /var/run/wireguard/wg0.sock {why}: the peers' rules follow the config's AllowedIPs"
                ),
                &format!("{name} AS-CONFIG"),
                &format!("{name} DOWN-SAME"),
            ],
        );
        let took: u64 = stdout
            .split_once(&format!("{name} rc=0 took-ms="))
            .and_then(|(_, rest)| rest.lines().next()?.parse().ok())
            .unwrap();
        assert!(took < 15_000, "{name}: {took} ms: {stdout}");
        let peak_kib: u64 = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{name}: ")))
            .find_map(|l| {
                l.split_once("peak memory ")?
                    .1
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no peak memory for {name}: {stdout}"));
        assert!(peak_kib < 200 << 10, "{name}: {peak_kib} KiB: {stdout}");
    }
}
