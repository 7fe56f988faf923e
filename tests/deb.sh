#!/bin/sh
# Builds the Debian package with cargo-deb and checks it: every file the package must
# install is in `dpkg-deb -c`, every sample under /etc is a conffile, and the maintainer
# script that creates the mmp user is there. Exits non-zero on the first thing missing.
#
# Usage: tests/deb.sh [path/to/mmp.deb]   (without an argument: runs `cargo deb` first;
# needs `cargo install cargo-deb`).
set -eu

cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then
    deb=$1
else
    out=target/debian
    rm -f "$out"/mmp_*.deb
    cargo deb --output "$out"
    deb=$(ls "$out"/mmp_*.deb)
fi
echo "checking $deb"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/files"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work"

fail=0
missing() {
    echo "MISSING: $1" >&2
    fail=1
}

for path in \
    /usr/sbin/mmp \
    /usr/share/man/man8/mmp.8.gz \
    /usr/share/man/man5/mmp.cfg.5.gz \
    /usr/share/man/man5/certmap.conf.5.gz \
    /etc/mmp/AService.cfg \
    /etc/mmp/ImapProxyAService.cfg \
    /etc/mmp/PopProxyAService.cfg \
    /etc/mmp/SmtpProxyAService.cfg \
    /etc/mmp/vdmap.cfg \
    /etc/mmp/certmap.conf \
    /lib/systemd/system/mmp.service \
    /etc/init.d/mmp \
    /etc/logrotate.d/mmp \
    /usr/share/doc/mmp/copyright; do
    grep -qx "$path" "$work/files" || missing "$path in dpkg-deb -c"
done

for conf in \
    /etc/mmp/AService.cfg \
    /etc/mmp/ImapProxyAService.cfg \
    /etc/mmp/PopProxyAService.cfg \
    /etc/mmp/SmtpProxyAService.cfg \
    /etc/mmp/vdmap.cfg \
    /etc/mmp/certmap.conf \
    /etc/init.d/mmp \
    /etc/logrotate.d/mmp; do
    grep -qx "$conf" "$work/conffiles" 2>/dev/null || missing "$conf in conffiles"
done

[ -x "$work/postinst" ] || missing "postinst"
grep -q 'adduser --system --group --no-create-home --home /nonexistent mmp' "$work/postinst" \
    || missing "adduser in postinst"
grep -q '/var/log/mmp' "$work/postinst" || missing "/var/log/mmp in postinst"
if grep -v '^ *#' "$work/postinst" | grep -q 'systemctl enable\|deb-systemd-helper enable'; then
    echo "postinst enables the service; that is the administrator's choice" >&2
    fail=1
fi
grep -q '^Depends:.*adduser' "$work/control" || missing "adduser in Depends"

# The binary must not carry its debug info (the release profile strips it).
size=$(dpkg-deb -c "$deb" | awk '$6 == "./usr/sbin/mmp" {print $3}')
if [ "${size:-0}" -gt 20000000 ]; then
    echo "/usr/sbin/mmp is $size bytes: debug info was shipped" >&2
    fail=1
fi

[ $fail -eq 0 ] && echo "deb ok: $(grep -c . "$work/files") entries, /usr/sbin/mmp $size bytes"
exit $fail
