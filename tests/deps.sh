#!/usr/bin/env bash
# Install what a fresh Debian machine lacks, as Debian packages.
#   tests/deps.sh build   what building fixer needs (a C compiler, OpenSSL headers)
#   tests/deps.sh test    that, plus every tool the tests drive for real
# Under CI=true nothing is ever skipped: a tool that cannot be installed fails.
set -euo pipefail
level=${1:-test}
case $level in build|test) ;; *) echo "usage: $0 [build|test]" >&2; exit 2 ;; esac

# command -> Debian package that provides it
declare -A NEEDED=(
  [cc]=gcc
  [pkg-config]=pkg-config  # ssh2 finds the system OpenSSL through it
)
if [ "$level" = test ]; then
NEEDED+=(
  [setpriv]=util-linux   # integration tests run fixer as an unprivileged user
  [chown]=coreutils
  [go]=golang-go         # go_mod_tidy and env are checked by the real go
  [git]=git              # git resources are read back by the real git
  [netplan]=netplan.io   # netplan files are validated by the real netplan
  [curl]=curl            # http probes run curl on the target
  [/usr/sbin/sshd]=openssh-server  # remote tests start sshd test hosts of their own
  [ssh-keygen]=openssh-client
  [ssh]=openssh-client
  [unshare]=util-linux   # each sshd test host has its own mount namespace
  [script]=bsdutils      # fixer fix asks on a terminal: script(1) gives it one
  [flock]=util-linux     # the lock on a remote target
  [sudo]=sudo            # --become on the sshd test hosts
  [chromium]=chromium    # fixer report --html is looked at in headless Chromium
  [systemd-analyze]=systemd  # fixer pull --install-timer units are checked by systemd-analyze verify
  [npm]=npm              # installs taplo, the TOML engine of editors, to check the schema
  [openssl]=openssl      # pull over https: the test's own certificate
  [python3]=python3      # pull over https: a TLS server in front of git http-backend
)
fi

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
# ssh2 links the system OpenSSL: its headers.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
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
pkg-config --exists openssl || { echo "error: OpenSSL headers (libssl-dev) still missing" >&2; exit 1; }

if [ "$level" = test ]; then
  # taplo (what Even Better TOML runs) checks the shipped playbooks against
  # `fixer schema`, as an editor would: tests/integration/schema.rs.
  taplo_dir=target/tools/taplo
  if [ ! -x "$taplo_dir/node_modules/.bin/taplo" ]; then
    echo "installing @taplo/cli into $taplo_dir"
    npm install --prefix "$taplo_dir" --no-audit --no-fund --silent @taplo/cli@0.7.0
  fi
  # (taplo 0.9 prints its version, then exits 1)
  case $("$taplo_dir/node_modules/.bin/taplo" --version 2>&1 || true) in
    taplo*) ;;
    *) echo "error: taplo in $taplo_dir does not run" >&2; exit 1 ;;
  esac
fi
