#!/usr/bin/env bash
# Fuzzes the readers of wgfw-hook (wg-quick config, systemd-networkd's files, settings file,
# command line) with cargo-fuzz (libFuzzer), SECONDS per target (default 60, or
# $WGFW_FUZZ_SECONDS), then replays every input found (and the committed hostile seeds)
# through the real iptables-restore --test (iptables-nft and iptables-legacy, both families)
# and nft -c, in a network namespace of its own. Exits non-zero on any crash, hang, broken
# invariant or refused ruleset; a crash's input is left in fuzz/artifacts/TARGET/.
#
# Usage: sudo tests/fuzz.sh [SECONDS]
# Needs root (unshare -n), cargo, a C++ compiler (libFuzzer), iptables and nftables. Installs
# cargo-fuzz when missing. Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take
# the instrumentation flags cargo-fuzz passes. No sanitizer: the code under test is safe Rust,
# and without ASan the targets run about 4 times faster.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-${WGFW_FUZZ_SECONDS:-60}}
case $secs in
  '' | *[!0-9]* | 0) echo "tests/fuzz.sh: SECONDS must be a positive number, not \"$secs\"" >&2; exit 2 ;;
esac
targets=(wgconf networkd settings cli)
# The fuzz crate keeps its own target directory (fuzz/target), whatever the caller's.
unset CARGO_TARGET_DIR

die() { echo "tests/fuzz.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root: the replay checks rulesets in a network namespace of its own (unshare -n)"
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
for prog in unshare c++ nft iptables-nft-restore ip6tables-nft-restore iptables-legacy-restore ip6tables-legacy-restore; do
  command -v "$prog" >/dev/null || die "$prog is missing: apt-get install iptables nftables util-linux g++"
done
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "[+] cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

cd fuzz
export RUSTC_BOOTSTRAP=1
# The harness's own tests first: a checker that no longer knows a rule we now generate fails
# here, on the fixed inputs, in seconds and with its name.
echo "[+] the harness's own tests"
cargo test --release --locked --no-default-features --lib
echo "[+] building the fuzz targets and the replay"
for t in "${targets[@]}"; do
  cargo fuzz build --sanitizer none "$t"
done
cargo build --release --locked --no-default-features --bin replay
replay=target/release/replay

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "[+] fuzzing $t for ${secs}s"
  # New inputs go to corpus/$t (kept between runs, not committed); seeds/$t is read only.
  # An input taking over 10 seconds is a hang, and a failure.
  log=$(mktemp)
  if ! cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    rm -f "$log"
    die "$t: the fuzzer found a crash, hang or broken invariant (input in fuzz/artifacts/$t/)"
  fi
  grep -E '^(#[0-9]+.*DONE|stat::average_exec_per_sec)' "$log" || true
  rm -f "$log"
  # Keeps only inputs that add coverage, so that the replay stays short as runs add up.
  cargo fuzz cmin --sanitizer none "$t" "corpus/$t" >/dev/null 2>&1 || die "$t: cargo fuzz cmin failed"
done

status=0
for t in "${targets[@]}"; do
  echo "[+] replaying $t through iptables-restore --test and nft -c (unshare -n)"
  unshare -n "$replay" "$t" "corpus/$t" "seeds/$t" || status=1
done
[ "$status" = 0 ] || die "a ruleset was refused or an input panicked (see above)"
echo "[+] fuzz: no crash, every accepted input's rulesets pass the real checkers"
