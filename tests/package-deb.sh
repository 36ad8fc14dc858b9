#!/usr/bin/env bash
# Build target/debian/fixer_<version>_<arch>.deb with cargo-deb: the binary,
# fixer(1) and a page per command, bash/zsh/fish completions, the shipped
# playbooks and templates, and the docs (docs/packaging.md).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh build
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
cargo build --release --locked
rm -rf target/assets
mkdir -p target/assets/man target/assets/completions
fixer=target/release/fixer
"$fixer" man --dir target/assets/man
"$fixer" completions bash >target/assets/completions/fixer.bash
"$fixer" completions zsh >target/assets/completions/_fixer
"$fixer" completions fish >target/assets/completions/fixer.fish
cargo deb --no-build
ls -1 target/debian/*.deb
