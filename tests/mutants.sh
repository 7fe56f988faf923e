#!/bin/sh
# Mutation testing (not in CI: hours on a small machine). Runs cargo-mutants over the
# protocol parsers, the directory, the server loop and the relay, with the unit tests and
# the integration suite, and prints caught/missed counts. Missed mutants are listed in
# mutants.out/missed.txt.
# Usage: tests/mutants.sh [FILE...]   (default: src/protocol src/directory src/server src/relay.rs)
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
# One job: the integration suite starts its own slapd, stores and Postfix per run.
# shellcheck disable=SC2086
cargo mutants --output target/mutants --no-shuffle -j 1 --timeout 300 $args -- --test-threads 2 || true
out=target/mutants/mutants.out
caught=$(wc -l <"$out/caught.txt" 2>/dev/null || echo 0)
missed=$(wc -l <"$out/missed.txt" 2>/dev/null || echo 0)
timeout=$(wc -l <"$out/timeout.txt" 2>/dev/null || echo 0)
unviable=$(wc -l <"$out/unviable.txt" 2>/dev/null || echo 0)
printf '%-10s %8s\n' caught "$caught" missed "$missed" timeout "$timeout" unviable "$unviable"
[ "$missed" -eq 0 ] || { echo "missed mutants:"; cat "$out/missed.txt"; }
