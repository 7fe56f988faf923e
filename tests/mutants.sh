#!/bin/sh
# Mutation testing (not in CI: hours on a small machine). Runs cargo-mutants over the
# protocol parsers, the directory, the server loop and the relay, with the unit tests and
# the integration suite, and prints caught/missed counts. Missed mutants are listed in
# mutants.out/missed.txt.
# Usage: tests/mutants.sh [FILE...]   (default: src/protocol src/directory src/server src/relay.rs)
# Environment, to fit a small machine (defaults: every test, 300 s per mutant):
#   MMP_MUTANTS_TEST_ARGS  args for cargo test, e.g. "--lib" or "--lib --test integration"
#   MMP_MUTANTS_FILTERS    test-name filters (any may match), e.g. "relay regress_"
#   MMP_MUTANTS_TIMEOUT    seconds per cargo command
#   MMP_MUTANTS_OUT        output directory (default target/mutants)
#   MMP_MUTANTS_EXTRA      more cargo-mutants options, e.g. "--shard 1/3 -F pattern"
# Mutants are tested in place (the worktree's target/ is reused; cargo-mutants restores
# each file): do not edit the sources while it runs.
# Needs: cargo install cargo-mutants
set -eu
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || { echo "cargo install cargo-mutants" >&2; exit 2; }
files=${*:-"src/protocol src/directory src/server src/relay.rs"}
args=""
for f in $files; do
    if [ -d "$f" ]; then
        args="$args --file $f/**/*.rs --file $f/*.rs"
    else
        args="$args --file $f"
    fi
done
out_dir=${MMP_MUTANTS_OUT:-target/mutants}
# As cargo arguments (not --cargo-test-arg): the build of each mutant is then limited to
# the same targets, instead of rebuilding every test binary to run only some.
for a in ${MMP_MUTANTS_TEST_ARGS:-}; do
    args="$args --cargo-arg=$a"
done
# One job (in place implies it): the integration suite starts its own slapd, stores and
# Postfix per run.
# shellcheck disable=SC2086
cargo mutants --in-place --output "$out_dir" --no-shuffle --timeout "${MMP_MUTANTS_TIMEOUT:-300}" \
    ${MMP_MUTANTS_EXTRA:-} $args -- -- --test-threads=2 ${MMP_MUTANTS_FILTERS:-} || true
out=$out_dir/mutants.out
caught=$(cat "$out/caught.txt" 2>/dev/null | wc -l)
missed=$(cat "$out/missed.txt" 2>/dev/null | wc -l)
timeout=$(cat "$out/timeout.txt" 2>/dev/null | wc -l)
unviable=$(cat "$out/unviable.txt" 2>/dev/null | wc -l)
printf '%-10s %8s\n' caught "$caught" missed "$missed" timeout "$timeout" unviable "$unviable"
# Per file: caught missed timeout unviable.
for k in caught missed timeout unviable; do
    sed "s/^\([^:]*\):.*/\1 $k/" "$out/$k.txt" 2>/dev/null
done | awk '{n[$1" "$2]++; f[$1]=1}
    END {printf "%-36s %7s %7s %7s %8s\n", "file", "caught", "missed", "timeout", "unviable";
         for (x in f) printf "%-36s %7d %7d %7d %8d\n", x, n[x" caught"], n[x" missed"], n[x" timeout"], n[x" unviable"]}'
[ "$missed" -eq 0 ] || { echo "missed mutants:"; cat "$out/missed.txt"; }
