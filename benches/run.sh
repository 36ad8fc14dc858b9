#!/usr/bin/env bash
# Every benchmark, then a bounded fuzzing run; each writes its page under
# docs/ and docs/benchmarks.md is reassembled from them.
#
#   benches/run.sh                    everything (about 1.5 h on 2 cores)
#   benches/run.sh compare incident   some benches (compare incident fleet apply diff memory diagnose)
#   FUZZ_SECONDS=300 benches/run.sh   longer fuzzing (default 60 s per target;
#                                     0 skips it)
#
# Run it on an otherwise idle machine, as root (fleet starts sshd test hosts
# in mount namespaces). Installs the tools the benches drive (tests/deps.sh),
# ansible-core and pyinfra in target/bench-venv (from PyPI), and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh test

benches=${*:-compare incident fleet apply diff memory diagnose}
for b in $benches; do
  echo "== cargo bench --bench $b"
  FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench "$b"
done

seconds=${FUZZ_SECONDS:-60}
[ "$seconds" -gt 0 ] || exit 0
status=0
FUZZ_SECONDS=$seconds fuzz/run.sh | tee target/fuzz-summary.txt || status=$?
{
  echo "# Fuzzing: the last bounded run"
  echo
  echo "Each cargo-fuzz target for $seconds s on this machine, from its seeds,"
  echo "its saved findings and its corpus so far ($(nproc) cores; see"
  echo "[fuzzing.md](fuzzing.md) for what each checks and what they found)."
  echo "Reproduce: \`FUZZ_SECONDS=$seconds fuzz/run.sh\`."
  echo
  echo '```'
  sed -n '/^[a-z_]*: \(ok\|FOUND\) after/p' target/fuzz-summary.txt
  echo '```'
} >docs/benchmarks-fuzz.md
# Reassemble docs/benchmarks.md with the fuzzing page (no bench reruns).
FIXER_BENCH_REASSEMBLE_ONLY=1 cargo bench --bench apply
exit "$status"
