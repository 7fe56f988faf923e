#!/bin/sh
# The soak (not in CI): tests/soak.sh MINUTES
# Runs mmp (release build) for MINUTES with churning IMAP/POP3/SMTP sessions, up to
# MMP_SOAK_SESSIONS (2000) held IMAP sessions and MMP_SOAK_TRICKLE (500) clients that send
# a byte a second, while its own slapd is stopped and started, a store is killed and
# restarted and another frozen (SIGSTOP) and thawed; prints a table of the figures and
# fails when they are off (driver: the soak case in tests/integration/soak.rs).
# Needs root, slapd, Dovecot and Postfix as the integration suite does.
set -eu
minutes=${1:?usage: tests/soak.sh MINUTES}
cd "$(dirname "$0")/.."
# The held sessions, the trickling clients and mmp's store connections need descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# mmp is the release build; the driver (the integration harness) need not be, and a debug
# build of it is what the integration suite already compiled.
cargo build --release --bin mmp
MMP_BIN="$PWD/target/release/mmp" MMP_SOAK_MINUTES="$minutes" \
    cargo test --test integration -- --nocapture --exact soak_churn_under_directory_and_store_faults
