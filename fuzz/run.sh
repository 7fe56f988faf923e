#!/bin/sh
# Runs every fuzz target for SECONDS each (one at a time: one core), then prints a table
# of target, execs, crashes. Crashes land in fuzz/artifacts/<target>/.
# Usage: fuzz/run.sh SECONDS [TARGET...]
set -u
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")" || exit 2
targets=${*:-$(cargo +nightly fuzz list)}
cargo +nightly fuzz build >/dev/null 2>&1 || { echo "build failed" >&2; exit 2; }
mkdir -p logs
table=""
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -n 1)
    after=$(ls "artifacts/$t" | wc -l)
    table="$table$(printf '%-18s %12s %8s' "$t" "${execs:-?}" $((after - before)))
"
done
printf '%-18s %12s %8s\n' target execs crashes
printf '%s' "$table"
