//! The hook turned against its host (issue 23), end to end: output nobody reads, records that
//! point elsewhere, programs and daemons that never answer. Each test runs in network and
//! mount namespaces of its own, with a private /run (`common::PRELUDE`).

mod common;

use common::{assert_has, per_backend, run_isolated as run};

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
