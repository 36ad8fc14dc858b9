#!/bin/sh
# Run every fuzz target (or those named) for a bounded time each:
#
#   fuzz/run.sh                      # each target 60 s
#   FUZZ_SECONDS=600 fuzz/run.sh diagnose
#
# Not part of CI (it needs the nightly toolchain and libFuzzer). Installs
# cargo-fuzz when it is missing. A target's corpus grows in
# fuzz/corpus/<target> (not committed), seeded from fuzz/seeds/<target>,
# fuzz/regressions/<target> and, for playbook_load and diagnose, the
# shipped playbooks and the diagnose test logs. A failing input lands in
# fuzz/artifacts/<target>/; see docs/fuzzing.md for what to do with it.
# Exits non-zero when any target found something.
set -eu

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
all="playbook_load template env_edit gitconfig diagnose"
targets=${*:-$all}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi
cargo +nightly fuzz build

mkdir -p fuzz/logs
failed=""
summary=""
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    dirs="fuzz/corpus/$t"
    for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
        [ -d "$d" ] && dirs="$dirs $d"
    done
    case $t in
        playbook_load) dirs="$dirs playbooks" ;;
        diagnose) dirs="$dirs tests/data/diagnose" ;;
    esac
    dict=""
    [ -f "fuzz/dicts/$t.dict" ] && dict="-dict=fuzz/dicts/$t.dict"
    echo "== $t: $seconds s"
    start=$(date +%s)
    # -timeout: one input taking longer is a hang, a finding like a crash.
    # shellcheck disable=SC2086
    if cargo +nightly fuzz run "$t" $dirs -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 $dict >"fuzz/logs/$t.log" 2>&1; then
        status=ok
    else
        status=FOUND
        failed="$failed $t"
    fi
    took=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/logs/$t.log" | tail -n 1)
    line="$t: $status after ${runs:-?} execs, ${took} s (log: fuzz/logs/$t.log)"
    echo "$line"
    summary="$summary$line
"
done

printf '\n%s' "$summary"
if [ -n "$failed" ]; then
    echo "found something in:$failed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
