#!/usr/bin/env bash
# Every check fixer has: formatting, lints, unit and integration tests.
# Installs what a fresh Debian machine lacks first (tests/deps.sh). Under CI=true a tool that
# cannot be installed fails the run; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/deps.sh test
command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found: install Rust (rustup)" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --all-targets --all-features --locked -- -D warnings
# No doc-tests: the last runner line CI reads is the integration suite.
cargo test --locked --features failpoints --lib --bins --tests
