#!/usr/bin/env bash
# Tests the Ansible role packaging/ansible/roles/wgfw_hook against a real WireGuard interface
# (wireguard-go, brought up by wg-quick) in a network namespace, with /etc/wgfw and /etc/wireguard
# on tmpfs in a private mount namespace, so the machine's own are never touched.
#
#   usage: bash tests/ansible/run.sh PACKAGE.deb
#
#   1 the interface is up without the hook, the package not installed; the play installs the
#     package file, writes /etc/wgfw/IF.conf (0600 in a 0700 directory), puts PostUp/PreDown into
#     [Interface] (other lines kept), installs the firewall with `up --rollback` and confirms it:
#     the allowed service is in the ruleset, and still there after the rollback time
#   2 the same play again: changed=0
#   3 new settings and a verification that fails between `up --rollback` and `confirm`: the play
#     fails, the new rules are there at first, and after the rollback time the old firewall is
#     back by itself; the settings file is the old one again
#   4 wg-quick down runs the hook's PreDown: the hook's table goes
#
# The package is installed on the machine (by the role, as on a real host); the caller
# (tests/ansible.rs) purges it afterwards.

set -Eeuo pipefail

DEB=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[[ -f $DEB ]] || { echo "usage: $0 PACKAGE.deb" >&2; exit 2; }
DEB=$(realpath -e -- "$DEB")
[[ $EUID -eq 0 ]] || { echo "must run as root (creates namespaces, installs the package)" >&2; exit 2; }
for tool in ansible-playbook ip wg wg-quick wireguard-go nft unshare dpkg-query; do
	command -v "$tool" >/dev/null || { echo "missing prerequisite: $tool" >&2; exit 2; }
done
[[ -d /etc/wireguard ]] || { echo "/etc/wireguard is missing (wireguard-tools installs it)" >&2; exit 2; }

# shellcheck source=tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"

# The outer half: /etc/wgfw must exist as a mount point; then the test runs in a mount namespace
# of its own, which takes its tmpfs mounts along when it ends.
if [[ -z ${WGFW_ANSIBLE_INNER:-} ]]; then
	ensure_etc_wgfw
	rc=0
	WGFW_ANSIBLE_INNER=1 unshare --mount --propagation private -- bash "$0" "$DEB" || rc=$?
	remove_etc_wgfw /nonexistent
	exit "$rc"
fi

mount -t tmpfs -o mode=0755 wgfw-ansible-etc-wgfw /etc/wgfw
mount -t tmpfs -o mode=0700 wgfw-ansible-etc-wireguard /etc/wireguard

E2E_PREFIX="wgfwa-$$"
IF=wga$$
NS=$E2E_PREFIX-srv
ROLLBACK=6
if [[ -S /var/run/wireguard/$IF.sock ]] && socat -u /dev/null "UNIX-CONNECT:/var/run/wireguard/$IF.sock" 2>/dev/null; then
	echo "a wireguard-go for some '$IF' is running (its control socket path is shared by all namespaces); cannot run now" >&2
	exit 2
fi
setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
# Ansible's own files go to the scratch directory, not to /root/.ansible.
export ANSIBLE_HOME=$E2E_TMP/ansible ANSIBLE_LOCAL_TEMP=$E2E_TMP/ansible/tmp \
	ANSIBLE_REMOTE_TEMP=$E2E_TMP/ansible/tmp ANSIBLE_ROLES_PATH=$ROOT/packaging/ansible/roles \
	ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_CONFIG=$E2E_TMP/ansible.cfg
: >"$ANSIBLE_CONFIG" # no ansible.cfg of the machine's or the working directory's
trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$NS" "$@"; }

echo "wgfw-hook Ansible role, interface $IF, package $DEB"
echo "ansible: $(ansible-playbook --version | sed -n 1p)"

step "a namespace with an uplink and $IF up (wg-quick, no hook yet)"
ns_add "$NS"
srv ip link add eth0 type veth peer name eth1
srv ip link set eth0 up
srv ip link set eth1 up
srv ip addr add 203.0.113.2/24 dev eth0
srv ip route add default via 203.0.113.1
WGCONF=/etc/wireguard/$IF.conf
cat >"$WGCONF" <<CONF
# the operator's own comment
[Interface]
Address = 10.77.0.1/24
ListenPort = 51820
PrivateKey = $(wg genkey)
PostUp = echo operator-up %i

[Peer]
PublicKey = $(wg genkey | wg pubkey)
AllowedIPs = 10.77.0.2/32
CONF
chmod 600 "$WGCONF"
E2E_CLEANUP_HOOKS+=("ip netns exec '$NS' wg-quick down '$IF'")
assert_ok "wg-quick up $IF" srv wg-quick up "$IF"
assert_eq "the package is not installed yet" "" "$(dpkg-query -W -f='${Status}' wgfw-hook 2>/dev/null | grep 'ok installed' || true)"

# play NAME VARS_JSON: runs the role in the namespace; sets PLAY_RC, PLAY_OUT, RECAP.
play() {
	local vars=$E2E_TMP/vars-$1.json
	printf '%s\n' "$2" >"$vars"
	PLAY_OUT=$(srv ansible-playbook -v -c local -i localhost, -e "@$vars" "$HERE/play.yml" 2>&1) && PLAY_RC=0 || PLAY_RC=$?
	RECAP=$(grep -E '^localhost +:' <<<"$PLAY_OUT" || true)
	printf '%s\n' "$PLAY_OUT" | sed 's/^/    | /'
}

vars() { # vars ALLOW [VERIFY]
	printf '{"wgfw_hook_iface": "%s", "wgfw_hook_package_file": "%s", "wgfw_hook_rollback": %d,
	  "wgfw_hook_settings": {"allow": ["%s"], "ssh-port": 22, "no-nat": true, "no-log": false},
	  "wgfw_hook_verify": "%s"}' "$IF" "$DEB" "$ROLLBACK" "$1" "${2:-}"
}
rules() { srv nft list ruleset 2>/dev/null | normalize_nft; }

settings_for() { # settings_for ALLOW: the settings file the role must write
	printf '# Ansible managed\n# wgfw-hook settings for %s: `name = value`, the long options'"'"' names.\n' "$IF"
	printf 'allow = %s\nno-nat = yes\nssh-port = 22\n' "$1"
}

step "1: the role installs, configures, hooks in, applies and confirms"
play first "$(vars tcp/8443)"
assert_eq "the play succeeds" 0 "$PLAY_RC"
[[ $PLAY_RC -eq 0 ]] || { summary; exit 1; } # the rest would only repeat it
assert_match "it changed things, failed nothing" 'changed=[1-9][0-9]* .*failed=0 ' "$RECAP"
assert_eq "the package is installed" "install ok installed" "$(dpkg-query -W -f='${Status}' wgfw-hook 2>&1)"
assert_eq "its binary runs" "wgfw-hook $(dpkg-query -W -f='${Version}' wgfw-hook)" "$(/usr/bin/wgfw-hook --version 2>&1)"
assert_eq "/etc/wgfw is root's, 0700" "700 root root" "$(stat -c '%a %U %G' /etc/wgfw)"
assert_eq "the settings file is root's, 0600" "600 root root" "$(stat -c '%a %U %G' "/etc/wgfw/$IF.conf")"
settings_for tcp/8443 >"$E2E_TMP/want-8443"
assert_same_file "the settings file holds the settings" "$E2E_TMP/want-8443" "/etc/wgfw/$IF.conf"
assert_eq "PostUp = wgfw-hook up %i, once" 1 "$(grep -cx 'PostUp = wgfw-hook up %i' "$WGCONF")"
assert_eq "PreDown = wgfw-hook down %i, once" 1 "$(grep -cx 'PreDown = wgfw-hook down %i' "$WGCONF")"
assert_eq "both in [Interface], before [Peer]" "PostUp = wgfw-hook up %i|PreDown = wgfw-hook down %i" \
	"$(awk '/^\[Peer\]/ { exit } /wgfw-hook/ { printf "%s%s", sep, $0; sep = "|" }' "$WGCONF")"
assert_eq "the operator's lines stay" 3 "$(grep -cxE '# the operator.s own comment|PostUp = echo operator-up %i|AllowedIPs = 10.77.0.2/32' "$WGCONF")"
assert_eq "the wg-quick config stays 0600" 600 "$(stat -c %a "$WGCONF")"
assert_match "the allowed service is in the ruleset" 'dport 8443 ' "$(rules)"
assert_match "the change was confirmed" 'TASK \[wgfw_hook : Confirm the change\]' "$PLAY_OUT"
sleep $((ROLLBACK + 2))
assert_match "the change stays past the rollback time" 'dport 8443 ' "$(rules)"
assert_ok "wgfw-hook check: as installed" srv wgfw-hook check "$IF"
assert_eq "no copies of old settings left" "$IF.conf" "$(ls /etc/wgfw)"
rules >"$E2E_TMP/rules-8443"

step "2: the same play again changes nothing"
play again "$(vars tcp/8443)"
assert_eq "the play succeeds" 0 "$PLAY_RC"
assert_match "changed=0" 'changed=0 .*failed=0 ' "$RECAP"
rules >"$E2E_TMP/rules-again"
assert_same_file "the ruleset is the same" "$E2E_TMP/rules-8443" "$E2E_TMP/rules-again"

step "3: a change that is not confirmed goes back by itself"
# The verification sees the new firewall, and fails.
play unconfirmed "$(vars tcp/9443 "sh -c 'nft list ruleset >$E2E_TMP/rules-unconfirmed; false'")"
assert_fails "the play fails" test "$PLAY_RC" -eq 0
assert_match "it says the change was not confirmed" 'was not confirmed' "$PLAY_OUT"
assert_no_match "confirm did not run" 'TASK \[wgfw_hook : Confirm the change\]' "$PLAY_OUT"
assert_match "the new rules were in before confirm was due" 'dport 9443 ' "$(cat "$E2E_TMP/rules-unconfirmed" 2>&1)"
assert_same_file "the previous settings are back at once" "$E2E_TMP/want-8443" "/etc/wgfw/$IF.conf"
wait_for $((ROLLBACK + 5)) bash -c "ip netns exec '$NS' nft list ruleset | grep -q 'dport 8443 '" || true
sleep 1
rules >"$E2E_TMP/rules-reverted"
assert_same_file "after the rollback time the previous firewall is back" "$E2E_TMP/rules-8443" "$E2E_TMP/rules-reverted"
assert_ok "wgfw-hook check: as installed" srv wgfw-hook check "$IF"
assert_eq "no copies of old settings left" "$IF.conf" "$(ls /etc/wgfw)"

step "4: wg-quick down runs PreDown"
assert_ok "wg-quick down $IF" srv wg-quick down "$IF"
assert_no_match "the hook's table is gone" 'table inet wgfw' "$(rules)"

summary
