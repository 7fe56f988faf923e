#!/bin/sh
# Builds the Debian package with cargo-deb (which builds the release binary itself) and
# checks it: every file the package must install is in `dpkg-deb -c`, every sample under
# /etc is a conffile, the control area (`dpkg-deb -e`) has the maintainer scripts, and the
# postinst, run against a scratch root with stand-ins for adduser, getent, install, chown
# and chmod, creates the mmp system user and /var/log/mmp on a first installation and
# leaves both alone on an upgrade. Nothing is installed on this machine. Exits non-zero
# when anything is missing.
#
# Usage: tests/deb.sh [path/to/mmp.deb]   (without an argument: runs `cargo deb` first;
# needs `cargo install cargo-deb`). .ci/run runs it after `cargo test`.
set -eu

cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then
    deb=$1
else
    out=target/debian
    rm -f "$out"/mmp_*.deb
    start=$(date +%s)
    cargo deb --output "$out"
    echo "cargo deb: $(($(date +%s) - start)) s"
    deb=$(ls "$out"/mmp_*.deb)
fi
echo "checking $deb"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/files"
dpkg-deb -e "$deb" "$work/DEBIAN"
ctl=$work/DEBIAN

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
    /usr/share/doc/mmp/README.md \
    /usr/share/doc/mmp/LICENSE-MIT \
    /usr/share/doc/mmp/LICENSE-APACHE \
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
    grep -qx "$conf" "$ctl/conffiles" 2>/dev/null || missing "$conf in conffiles"
done

# The unit and the init script start the installed binary.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./lib/systemd/system/mmp.service ./etc/init.d/mmp
grep -q '^ExecStart=/usr/sbin/mmp ' "$work/lib/systemd/system/mmp.service" \
    || missing "ExecStart=/usr/sbin/mmp in mmp.service"
grep -q '/usr/sbin/mmp' "$work/etc/init.d/mmp" || missing "/usr/sbin/mmp in /etc/init.d/mmp"

for script in postinst postrm; do
    [ -x "$ctl/$script" ] || missing "$script (executable) in the control area"
    sh -n "$ctl/$script" || { echo "$script: syntax error" >&2; fail=1; }
done
if grep -v '^ *#' "$ctl/postinst" | grep -q 'systemctl enable\|deb-systemd-helper enable'; then
    echo "postinst enables the service; that is the administrator's choice" >&2
    fail=1
fi
grep -q '^Depends:.*adduser' "$ctl/control" || missing "adduser in Depends"

# Run the postinst against a scratch root: its paths rewritten, the commands that change
# the system replaced by stand-ins that log their arguments.
root=$work/root
bin=$work/bin
log=$work/calls
mkdir -p "$root/etc/mmp" "$root/var/log" "$bin"
for f in AService.cfg ImapProxyAService.cfg PopProxyAService.cfg SmtpProxyAService.cfg vdmap.cfg certmap.conf; do
    : >"$root/etc/mmp/$f"
done
sed -e "s#/var/log/mmp#$root/var/log/mmp#g" -e "s#/etc/mmp/#$root/etc/mmp/#g" \
    "$ctl/postinst" >"$work/postinst"
for cmd in adduser chown chmod; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$cmd" "$log" >"$bin/$cmd"
done
# getent passwd mmp: found once the stand-in adduser has run.
printf '#!/bin/sh\ngrep -q "^adduser " "%s" 2>/dev/null\n' "$log" >"$bin/getent"
printf '#!/bin/sh\necho "install $*" >>"%s"\nfor last; do :; done\nmkdir -p "$last"\n' \
    "$log" >"$bin/install"
chmod +x "$bin"/*
postinst() {
    : >"$log"
    PATH="$bin:$PATH" sh "$work/postinst" "$@" || { echo "postinst $* failed" >&2; fail=1; }
}
expect() {
    grep -qxF "$1" "$log" || { echo "postinst $2: no \"$1\" in:" >&2; cat "$log" >&2; fail=1; }
}
postinst configure
expect "adduser --system --group --no-create-home --home /nonexistent mmp" "(first install)"
expect "install -d -o mmp -g adm -m 0750 $root/var/log/mmp" "(first install)"
for f in ImapProxyAService.cfg PopProxyAService.cfg SmtpProxyAService.cfg vdmap.cfg; do
    expect "chown root:mmp $root/etc/mmp/$f" "(first install)"
    expect "chmod 0640 $root/etc/mmp/$f" "(first install)"
done
# An upgrade (the user and the log directory exist): nothing is created or changed.
echo "adduser (earlier installation)" >"$log"
cp "$log" "$work/calls.before"
PATH="$bin:$PATH" sh "$work/postinst" configure 0.0.9 || { echo "postinst upgrade failed" >&2; fail=1; }
if ! cmp -s "$log" "$work/calls.before"; then
    echo "postinst configure 0.0.9 (upgrade) changed something:" >&2
    cat "$log" >&2
    fail=1
fi

# The binary must not carry its debug info (the release profile strips it).
size=$(dpkg-deb -c "$deb" | awk '$6 == "./usr/sbin/mmp" {print $3}')
if [ "${size:-0}" -gt 20000000 ]; then
    echo "/usr/sbin/mmp is $size bytes: debug info was shipped" >&2
    fail=1
fi

[ $fail -eq 0 ] && echo "deb ok: $(grep -c . "$work/files") entries, /usr/sbin/mmp $size bytes"
exit $fail
