#!/usr/bin/env bash
# Runs every test of wgfw-hook: unit tests, golden files, the real iptables-restore check of the
# golden rulesets, and the end-to-end tests that bring up real WireGuard tunnels (wireguard-go)
# with wg-quick in network namespaces. Installs what they need on Debian; must run as root,
# because the end-to-end tests create network namespaces (never touching the host's own).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "tests/run-all.sh: run as root: the end-to-end tests create network namespaces" >&2
  exit 1
fi

packages=(iptables nftables wireguard-tools wireguard-go iproute2 iputils-ping tcpdump socat
          netcat-openbsd conntrack util-linux procps systemd man-db dpkg-dev debhelper lintian git
          rpm rpmlint makepkg pacman-package-manager libarchive-tools ansible-core g++ acl
          fail2ban python3 python3-dbus python3-gi docker.io busybox ufw firewalld dbus-daemon dbus
          debianutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[+] installing ${missing[*]}"
  # No service may start on this host (fail2ban would, in the machine's own namespace): the
  # tests run each program in namespaces of their own.
  prc=/usr/sbin/policy-rc.d
  made_prc=
  if [ ! -e "$prc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc" && made_prc=1
  fi
  apt-get update -qq
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ -z "$made_prc" ] || rm -f "$prc"
  [ "$rc" = 0 ] || { echo "tests/run-all.sh: apt-get install failed (exit $rc)" >&2; exit 1; }
fi

# netfilter-persistent runs in the tests from its two .debs, unpacked, never installed:
# Debian's ufw Breaks it (tests/neighbours/netfilter-persistent.sh).
np_debs=/var/cache/neighbours/netfilter-persistent/debs
if ! compgen -G "$np_debs/netfilter-persistent_*.deb" >/dev/null ||
   ! compgen -G "$np_debs/iptables-persistent_*.deb" >/dev/null; then
  echo "[+] downloading netfilter-persistent and iptables-persistent (not installing them)"
  mkdir -p "$np_debs"
  ( cd "$np_debs" && { apt-get download -qq -o APT::Sandbox::User=root netfilter-persistent iptables-persistent 2>/dev/null ||
      { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root netfilter-persistent iptables-persistent; }; } ) ||
    { echo "tests/run-all.sh: apt-get download netfilter-persistent iptables-persistent failed" >&2; exit 1; }
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "tests/run-all.sh: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

echo "[+] cargo test (unit, golden, restore --test, faults, packages, end-to-end)"
cargo test --locked -- --test-threads=1

echo "[+] fuzzing: ${WGFW_FUZZ_SECONDS:-60} s per target, then every ruleset through the real restore --test and nft -c"
tests/fuzz.sh "${WGFW_FUZZ_SECONDS:-60}"
