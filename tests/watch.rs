//! The watcher (`wgfw-hook watch`, started by `up`), per backend, with a veth standing in for
//! the tunnel: it repairs a wiped firewall by itself (on notifications; iptables-legacy by its
//! poll), is counted in `status`, is one per interface, leaves the firewall in place when
//! killed, is started again by the next `up`, is stopped by `down` before anything goes, and
//! removes a server's firewall when the interface goes without `down` (a client's kill switch
//! stays). End-to-end proof next to the real neighbours is `tests/e2e/neighbours.sh`.

mod common;

use common::{BACKENDS, SETUP, assert_lines, in_netns, text};

/// Shell helpers: `$W` is the binary itself (not the tests' `--no-watch` wrapper).
const HELPERS: &str = r#"
W="$WGFW_BIN"
# wait_for CODE [TENTHS]: until CODE succeeds, at most TENTHS tenths of a second (default 100).
wait_for() { local i; for i in $(seq 1 "${2:-100}"); do eval "$1" && return 0; sleep 0.1; done; return 1; }
watcher_pid() { "$W" status wg0 2>/dev/null | sed -n 's/^  watcher: pid \([0-9]*\),.*/\1/p'; }
alive() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q ' watch wg0'; }
# wipe: what a neighbour's reload does to the backend's rules.
wipe() {
  case $1 in
    nft) nft flush ruleset ;;
    iptables-*) for t in filter mangle nat raw; do for x in iptables ip6tables; do "$x-${1#iptables-}" -t $t -F; done; done ;;
  esac
}
"#;

fn script(backend: &str, body: &str) -> String {
    format!("{SETUP}{HELPERS}\nB={backend}\n{body}")
}

/// Runs the script on every backend at once; each must print every one of `wants`.
fn on_every_backend(body: &str, wants: &[&str]) {
    std::thread::scope(|s| {
        let runs: Vec<_> = BACKENDS
            .iter()
            .map(|b| s.spawn(move || (b, text(&in_netns(&script(b, body)).stdout))))
            .collect();
        for r in runs {
            let (backend, stdout) = r.join().unwrap();
            for want in wants {
                assert!(
                    stdout.lines().any(|l| l == *want),
                    "{backend}: {want} missing: {stdout}"
                );
            }
        }
    });
}

#[test]
fn the_watcher_repairs_a_wiped_firewall_and_stops_with_down() {
    on_every_backend(
        r#"
snapshot > /tmp/before.$$
"$W" up wg0 --config "$conf" --backend $B 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]' && echo STARTED
pid=$(watcher_pid)
"$W" up wg0 --config "$conf" --backend $B 2>/dev/null
[ "$(watcher_pid)" = "$pid" ] && alive $pid && echo ONE-WATCHER
wipe $B
# iptables-legacy: its tables' sizes are asked every 250 ms.
wait_for '"$W" check wg0 >/dev/null 2>&1' 150 && echo REPAIRED
# A wipe of iptables-nft's tables is eight commits: a repair may land between them.
repairs() { "$W" status wg0 | sed -n 's/^  watcher: pid [0-9]*, since .*, \([1-9][0-9]*\) repairs\{0,1\}, the last at .* after .*/\1/p'; }
# Counted once the watcher has written its account, a moment after the commit.
sleep 0.5; n=$(repairs)
[ -n "$n" ] && echo COUNTED
kill -HUP $pid; sleep 0.5
alive $pid && [ "$(repairs)" = "$n" ] && echo HUP-NOTHING-TO-DO
kill -9 $pid; wait_for '! alive $pid'
"$W" status wg0 | grep -q '^  watcher: none runs' && echo NONE-RUNS
"$W" check wg0 >/dev/null 2>&1 && echo STILL-IN-PLACE
"$W" up wg0 --config "$conf" --backend $B 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ] && [ "$(watcher_pid)" != "$pid" ]' && echo STARTED-AGAIN
pid=$(watcher_pid)
"$W" down wg0 2>/dev/null
alive $pid || echo DOWN-STOPPED-IT
snapshot | diff /tmp/before.$$ - >/dev/null && echo SAME-AFTER-DOWN
rm -f /tmp/before.$$
"#,
        &[
            "STARTED",
            "ONE-WATCHER",
            "REPAIRED",
            "COUNTED",
            "HUP-NOTHING-TO-DO",
            "NONE-RUNS",
            "STILL-IN-PLACE",
            "STARTED-AGAIN",
            "DOWN-STOPPED-IT",
            "SAME-AFTER-DOWN",
        ],
    );
}

/// A wipe by hand is many commits (a table and family at a time): the ones that land while the
/// watcher repairs after the first must not pass for its own. Before that was so, iptables-nft
/// was left half repaired after most wipes (nat and raw until the 5-minute look). `check`
/// triggers nothing, so a wipe not repaired whole stays so well beyond the wait.
#[test]
fn every_commit_of_a_wipe_is_repaired() {
    on_every_backend(
        r#"
"$W" up wg0 --config "$conf" --backend $B 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]' && echo STARTED
whole=0
for i in $(seq 1 12); do
  # Commits a few milliseconds apart, as a neighbour's reload makes them, straddle the looks.
  if [ $B = nft ]; then wipe $B; else
    for t in filter mangle nat raw; do for x in iptables ip6tables; do "$x-${B#iptables-}" -t $t -F; sleep 0.0$((i % 3 + 1)); done; done
  fi
  wait_for '"$W" check wg0 >/dev/null 2>&1' 50 || { "$W" check wg0 >&2 || true; break; }
  whole=$i
done
[ "$whole" = 12 ] && echo WHOLE-AFTER-EVERY-WIPE
"$W" status wg0 | grep -q 'holding off' || echo NOT-HELD-OFF
"$W" down wg0 2>/dev/null
"#,
        &["STARTED", "WHOLE-AFTER-EVERY-WIPE", "NOT-HELD-OFF"],
    );
}

#[test]
fn an_interface_gone_without_down_takes_a_servers_firewall_but_not_a_kill_switch() {
    let out = in_netns(&script(
        "nft",
        r#"
snapshot | grep -v -e '\.wg0\.' -e '\.wgpeer\.' > /tmp/before.$$
"$W" up wg0 --config "$conf" --backend nft 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]'; pid=$(watcher_pid)
ip link del wg0
wait_for '! alive $pid' && echo SERVER-WATCHER-EXITED
"$W" status wg0 | grep -q 'nothing installed' && echo SERVER-REMOVED
snapshot | grep -v -e '\.wg0\.' -e '\.wgpeer\.' | diff /tmp/before.$$ - >/dev/null && echo SERVER-SAME
ip link add wg0 type veth peer name wgpeer; ip link set wg0 up
"$W" up wg0 --config "$conf" --backend nft --role client 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]'; pid=$(watcher_pid)
ip link del wg0
wait_for '! alive $pid' && echo CLIENT-WATCHER-EXITED
"$W" status wg0 | grep -q 'kill switch in place, tunnel gone' && echo KILL-SWITCH-STAYS
"$W" release wg0 2>/dev/null
snapshot | grep -v -e '\.wg0\.' -e '\.wgpeer\.' | diff /tmp/before.$$ - >/dev/null && echo RELEASED-SAME
rm -f /tmp/before.$$
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "SERVER-WATCHER-EXITED",
            "SERVER-REMOVED",
            "SERVER-SAME",
            "CLIENT-WATCHER-EXITED",
            "KILL-SWITCH-STAYS",
            "RELEASED-SAME",
        ],
    );
}

#[test]
fn a_second_watcher_is_refused_and_no_watch_starts_none() {
    let out = in_netns(&script(
        "nft",
        r#"
"$W" up wg0 --config "$conf" --backend nft --no-watch 2>/dev/null
sleep 0.3; "$W" status wg0 | grep -q '^  watcher: none runs' && echo NO-WATCH
"$W" watch wg0 >/dev/null 2>/tmp/watch-err.$$ & first=$!
wait_for '[ -n "$(watcher_pid)" ]' && echo WATCHING
set +e; "$W" watch wg0 2>/tmp/err.$$; echo "rc=$?"; set -e
grep -q 'a watcher for wg0 runs already' /tmp/err.$$ && echo REFUSED
kill -TERM $first; wait $first; echo "term-rc=$?"
"$W" check wg0 >/dev/null 2>&1 && echo STAYS-AFTER-TERM
cat /tmp/watch-err.$$ >&2; "$W" down wg0 2>/dev/null; rm -f /tmp/err.$$ /tmp/watch-err.$$
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "NO-WATCH",
            "WATCHING",
            "rc=2",
            "REFUSED",
            "term-rc=0",
            "STAYS-AFTER-TERM",
        ],
    );
}

#[test]
fn an_edit_is_planned_anew_and_a_broken_one_changes_nothing() {
    let out = in_netns(&script(
        "nft",
        r#"
mount -t tmpfs tmpfs /mnt; mkdir /mnt/upper /mnt/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=/mnt/upper,workdir=/mnt/work /etc
mkdir -p /etc/wgfw; rm -f /etc/wgfw/wg0.conf
"$W" up wg0 --config "$conf" --backend nft 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]' && echo STARTED
port() { nft list table inet wgfw | grep -c "udp dport $1 " || true; }
[ "$(port 51820)" -gt 0 ] && echo PORT-51820
sed -i 's/^ListenPort = 51820$/ListenPort = 51821/' "$conf"
wait_for '[ "$(port 51821)" -gt 0 ] && [ "$(port 51820)" = 0 ]' && echo CONFIG-EDIT-APPLIED
printf 'allow = tcp/8443\n' > /etc/wgfw/wg0.conf; chmod 600 /etc/wgfw/wg0.conf
wait_for 'nft list table inet wgfw | grep -q "tcp dport 8443 "' && echo SETTINGS-EDIT-APPLIED
nft list table inet wgfw > /tmp/good.$$
sed -i 's#^Address = .*#Address = 10.66.0.300/24#' "$conf"
sleep 1.5
nft list table inet wgfw | diff -q /tmp/good.$$ - >/dev/null && echo BROKEN-EDIT-CHANGES-NOTHING
"$W" status wg0 | grep -q "last error: $conf:2: " && echo BROKEN-EDIT-SAID
"$W" check wg0 >/dev/null 2>&1 && echo STILL-AS-INSTALLED
"$W" down wg0 2>/dev/null; rm -f /tmp/good.$$
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "STARTED",
            "PORT-51820",
            "CONFIG-EDIT-APPLIED",
            "SETTINGS-EDIT-APPLIED",
            "BROKEN-EDIT-CHANGES-NOTHING",
            "BROKEN-EDIT-SAID",
            "STILL-AS-INSTALLED",
        ],
    );
}

/// A repair the system refuses (here its restore program fails while the firewall is wiped;
/// in life a table deleted under it, as firewalld's reload guard is) is tried again within
/// moments, not at the next whole look (iptables-legacy 30 s, nft 5 min): the kill switch or
/// the server's rules come back as soon as the system lets them.
#[test]
fn a_refused_repair_is_tried_again() {
    on_every_backend(
        r#"
"$W" up wg0 --config "$conf" --backend $B 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]' && echo STARTED
case $B in nft) prog=nft ;; *) prog=$B-restore ;; esac
whole() { case $B in nft) /mnt/real/nft list table inet wgfw >/dev/null 2>&1 ;; *) "$W" check wg0 >/dev/null 2>&1 ;; esac; }
stub "$prog" 'echo "refused for the test" >&2; exit 1'
# The watcher keeps its programs started beforehand (system::warm): the first wipe may be
# repaired by ones started before the stub; the second meets the stub's.
for i in 1 2; do
  case $B in nft) /mnt/real/nft flush ruleset ;; *) wipe $B ;; esac
  sleep 0.5
done
wait_for '"$W" status wg0 | grep -q "last error: .*refused for the test"' && echo REFUSED
whole || echo NOT-REPAIRED-WHILE-REFUSED
rm -f "/mnt/fake/$prog"; cp -a "/mnt/real/$prog" "/mnt/fake/$prog"
wait_for whole 80 && echo REPAIRED-SOON-AFTER
wait_for '! "$W" status wg0 | grep -q "last error"' 30 && echo ERROR-CLEARED
"$W" down wg0 2>/dev/null
"#,
        &[
            "STARTED",
            "REFUSED",
            "NOT-REPAIRED-WHILE-REFUSED",
            "REPAIRED-SOON-AFTER",
            "ERROR-CLEARED",
        ],
    );
}

#[test]
fn a_repair_undone_again_and_again_is_not_fought() {
    let out = in_netns(&script(
        "nft",
        r#"
"$W" up wg0 --config "$conf" --backend nft 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]' && echo STARTED
repairs() { "$W" status wg0 | sed -n 's/^  watcher: .*, \([0-9]*\) repairs\{0,1\}.*/\1/p'; }
# Something undoes the repair as soon as it is made, until the watcher holds off: five bursts
# of repairs (those within 2 s of the last counted are one), some 10 s.
for i in $(seq 1 300); do
  "$W" status wg0 | grep -q 'holding off' && break
  wait_for '"$W" check wg0 >/dev/null 2>&1' 30 || break
  nft flush ruleset
done
sleep 1
"$W" status wg0 | grep -q 'holding off until .*: something undoes the repair again and again (last: the ruleset changed' && echo HOLDS-OFF
[ "$(repairs)" -ge 5 ] && echo EVERY-REPAIR-COUNTED
"$W" status --json wg0 | grep -q '"holding_off":{"time":' && echo JSON-SAYS-SO
"$W" check wg0 >/dev/null 2>&1 || echo NOT-REPAIRED-WHILE-HOLDING-OFF
# The wait ends (10 s): repaired once more.
wait_for '"$W" check wg0 >/dev/null 2>&1' 150 && echo REPAIRED-AFTER-THE-WAIT
"$W" down wg0 2>/dev/null
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "STARTED",
            "HOLDS-OFF",
            "EVERY-REPAIR-COUNTED",
            "JSON-SAYS-SO",
            "NOT-REPAIRED-WHILE-HOLDING-OFF",
            "REPAIRED-AFTER-THE-WAIT",
        ],
    );
}

/// Held off, a kill switch would leak for minutes: a client's is repaired each time, and the
/// fight is said (in `status` too) instead.
#[test]
fn a_kill_switch_undone_again_and_again_is_repaired_each_time() {
    let out = in_netns(&script(
        "nft",
        r#"
"$W" up wg0 --config "$conf" --backend nft --role client 2>/dev/null
wait_for '[ -n "$(watcher_pid)" ]' && echo STARTED
# As in the server's fight above, past the point where a server's watcher holds off.
fought=0
for i in $(seq 1 300); do
  "$W" status wg0 | grep -q 'undoes the kill switch again and again (last: the ruleset changed.*): repaired each time' && { fought=1; break; }
  wait_for '"$W" check wg0 >/dev/null 2>&1' 30 || break
  nft flush ruleset
done
[ $fought = 1 ] && echo SAID-SO
"$W" status --json wg0 | grep -q '"fighting":{"time":' && echo JSON-SAYS-SO
"$W" status wg0 | grep -q 'holding off' || echo NOT-HELD-OFF
for i in 1 2 3; do
  nft flush ruleset
  wait_for '"$W" check wg0 >/dev/null 2>&1' 50 || break
  [ $i = 3 ] && echo STILL-REPAIRED
done
"$W" down wg0 2>/dev/null
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "STARTED",
            "SAID-SO",
            "JSON-SAYS-SO",
            "NOT-HELD-OFF",
            "STILL-REPAIRED",
        ],
    );
}

#[test]
fn the_watcher_keeps_no_deleted_namespace_alive() {
    let out = in_netns(&script(
        "nft",
        r#"
# A /run/netns of this mount namespace alone: what `ip netns add` makes there goes with it,
# also when the script fails half way.
mkdir -p /run/netns; mount -t tmpfs wgfw-test /run/netns
ns=wgfw-watchns-$$
ip netns add $ns
in_ns() { ip netns exec $ns "$@"; }
in_ns ip link add wg0 type veth peer name wgpeer; in_ns ip link set wg0 up
in_ns "$W" up wg0 --config "$conf" --backend nft 2>/dev/null
ns_pid() { in_ns "$W" status wg0 2>/dev/null | sed -n 's/^  watcher: pid \([0-9]*\),.*/\1/p'; }
wait_for '[ -n "$(ns_pid)" ]' && echo STARTED
pid=$(ns_pid); ino=$(stat -L -c %i /run/netns/$ns)
# The processes in the namespace, but the programs the watcher keeps waiting (its children).
holders() {
  local p n=0
  for p in /proc/[0-9]*; do
    [ "$(readlink $p/ns/net 2>/dev/null)" = "net:[$ino]" ] || continue
    [ "$(sed 's/.*) [A-Za-z] \([0-9]*\) .*/\1/' $p/stat 2>/dev/null)" = "$pid" ] || n=$((n+1))
  done
  echo $n
}
# Held by another process as well (wireguard-go, say): the watcher stays with it.
ip netns exec $ns sleep 60 & holder=$!
wait_for '[ "$(holders)" = 2 ]'
ip netns del $ns
sleep 1
alive $pid && echo STAYS-WHILE-HELD
nsenter --net=/proc/$holder/ns/net ip link del wg0
wait_for '! alive $pid' && echo EXITS-WITH-THE-INTERFACE
kill $holder; wait $holder 2>/dev/null || true
# Held by nothing but the watcher: it lets go when the namespace is deleted.
ip netns add $ns
in_ns ip link add wg0 type veth peer name wgpeer; in_ns ip link set wg0 up
in_ns "$W" up wg0 --config "$conf" --backend nft 2>/dev/null
wait_for '[ -n "$(ns_pid)" ]'
pid=$(ns_pid); ino=$(stat -L -c %i /run/netns/$ns)
ip netns del $ns
wait_for '! alive $pid' 30 && echo EXITS-WHEN-DELETED
wait_for '[ "$(holders)" = 0 ]' && echo NAMESPACE-FREED
# Whatever failed above: no watcher left holding the namespace, no records of it.
for p in $pid ${holder:-}; do kill -9 $p 2>/dev/null || true; done
rm -rf /run/wgfw/netns-$ino.*
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "STARTED",
            "STAYS-WHILE-HELD",
            "EXITS-WITH-THE-INTERFACE",
            "EXITS-WHEN-DELETED",
            "NAMESPACE-FREED",
        ],
    );
}

#[test]
fn follow_waits_for_the_interface_and_its_addresses_and_outlives_it() {
    let out = in_netns(&script(
        "nft",
        r#"
ip link del wg0
"$W" watch wg0 --follow --config "$conf" --backend nft >/dev/null 2>/tmp/follow.$$ & f=$!
table() { nft list table inet wgfw >/dev/null 2>&1; }
sleep 0.7
alive $f && ! table && echo WAITS-FOR-THE-INTERFACE
ip link add wg0 type veth peer name wgpeer; ip link set wg0 up
sleep 0.7
alive $f && ! table && echo WAITS-FOR-ITS-ADDRESSES
ip addr add 10.66.0.1/24 dev wg0
wait_for 'table && "$W" check wg0 >/dev/null 2>&1' && echo INSTALLED
[ "$(watcher_pid)" = "$f" ] && echo STATUS-NAMES-IT
ip link del wg0
wait_for '! table' && alive $f && echo REMOVED-AND-WAITS
"$W" status wg0 | grep -q 'nothing installed' && echo NOTHING-INSTALLED
ip link add wg0 type veth peer name wgpeer; ip link set wg0 up; ip addr add 10.66.0.1/24 dev wg0
wait_for 'table && "$W" check wg0 >/dev/null 2>&1' && [ "$(watcher_pid)" = "$f" ] && echo INSTALLED-AGAIN
kill -TERM $f; wait $f; echo "term-rc=$?"
"$W" down wg0 2>/dev/null
table || echo DOWN-TAKES-IT
cat /tmp/follow.$$ >&2; rm -f /tmp/follow.$$
"#,
    ));
    let stdout = text(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "WAITS-FOR-THE-INTERFACE",
            "WAITS-FOR-ITS-ADDRESSES",
            "INSTALLED",
            "STATUS-NAMES-IT",
            "REMOVED-AND-WAITS",
            "NOTHING-INSTALLED",
            "INSTALLED-AGAIN",
            "term-rc=0",
            "DOWN-TAKES-IT",
        ],
    );
}
