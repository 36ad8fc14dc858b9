#!/usr/bin/env bash
# Every check fixer has: formatting, lints, unit and integration tests.
# Installs what a fresh Debian machine lacks first. Under CI=true a tool that
# cannot be installed fails the run; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A NEEDED=(
  [cc]=gcc
  [setpriv]=util-linux   # integration tests run fixer as an unprivileged user
  [chown]=coreutils
  [go]=golang-go         # go_mod_tidy and env are checked by the real go
  [git]=git              # git resources are read back by the real git
  [netplan]=netplan.io   # netplan files are validated by the real netplan
  [curl]=curl            # http probes run curl on the target
)

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "error: missing ${missing[*]}; install them (apt-get install ${missing[*]}) and re-run" >&2
    exit 1
  fi
fi
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "error: $cmd still missing" >&2; exit 1; }
done
command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found: install Rust (rustup)" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# No doc-tests: the last runner line CI reads is the integration suite.
cargo test --locked --lib --bins --tests
