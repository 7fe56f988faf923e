#!/usr/bin/env bash
# mmp demo on a fresh Debian machine (run as root):
#   - installs slapd, ldap-utils, Dovecot (imapd, pop3d), Postfix (+ libsasl2-modules), python3
#     and curl if missing;
#   - builds mmp (cargo build --release);
#   - starts, under a fresh temp dir, a private slapd on 127.0.0.1 and two private Dovecot
#     stores on 127.0.0.2 and 127.0.0.3 (same IMAP and POP3 ports), a private Postfix on
#     127.0.0.1 (never Debian's own service), writes a legacy Sun MMP config dir, and starts mmp
#     in the foreground mode (-f) in the background;
#   - logs in THROUGH mmp with a real client (python3 imaplib, and curl if present) for a user on
#     each store and lists the mailboxes and the first Subject;
#   - lists a mailbox over POP3 through mmp (python3 poplib), and sends a message through mmp's
#     SMTP proxy (python3 smtplib, AUTH) to the private Postfix and reads it back from its Maildir
#     (skipped, with a note, when this mmp build does not run the POP3/SMTP proxies yet);
#   - prints how to connect by hand.
# Usage: demo/demo.sh [--keep]
#   --keep  leave everything running until Ctrl-C (then stop it all).
#   MMP_BIN=/path/to/mmp demo/demo.sh   uses that binary instead of building one.
# Without --keep everything it started is stopped (by PID) when the script ends, whatever happens.
# Idempotent: every run uses a new temp dir and free ports; nothing outside it is changed except
# the packages above. Every wait is bounded.
set -euo pipefail

KEEP=0
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and Dovecot stores started as root)"
export PATH="$PATH:/usr/sbin:/sbin"

# --------------------------------------------------------------------------------------------
say "1. packages"
need=()
command -v slapd >/dev/null || need+=(slapd)
command -v ldapsearch >/dev/null || need+=(ldap-utils)
command -v dovecot >/dev/null || need+=(dovecot-core)
[ -e /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -e /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
command -v postfix >/dev/null || need+=(postfix)
ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1 || need+=(libsasl2-modules)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    slapd ldap-utils dovecot-core dovecot-imapd dovecot-pop3d python3 curl postfix libsasl2-modules
else
  echo "slapd, ldap-utils, dovecot-imapd, dovecot-pop3d, postfix, libsasl2-modules, python3, curl: already installed"
fi
[ -n "${MMP_BIN:-}" ] || command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"

# --------------------------------------------------------------------------------------------
if [ -n "${MMP_BIN:-}" ]; then
  say "2. using MMP_BIN=$MMP_BIN (no build)"
else
  say "2. build mmp (cargo build --release)"
  (cd "$REPO" && cargo build --release)
  MMP_BIN="$REPO/target/release/mmp"
fi
[ -x "$MMP_BIN" ] || die "no binary at $MMP_BIN"

# --------------------------------------------------------------------------------------------
D=$(mktemp -d /tmp/mmp-demo.XXXXXX)
chmod 755 "$D"
PIDS=()          # processes we started (children)
DOVECOT_CONFS=() # their master pid is in <base_dir>/master.pid
POSTFIX_ETC=""   # private Postfix config dir (stopped with postfix -c, then by master pid)
OK=0

stop_pid() { # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL
  local p=$1 i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$? p f
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  for f in "${DOVECOT_CONFS[@]}"; do
    p=$(cat "$(dirname "$f")/run/master.pid" 2>/dev/null || true)
    [ -n "$p" ] && stop_pid "$p"
  done
  if [ -n "$POSTFIX_ETC" ]; then
    p=$(tr -d ' ' < "$D/postfix/queue/pid/master.pid" 2>/dev/null || true)
    timeout 30 postfix -c "$POSTFIX_ETC" stop >/dev/null 2>&1 || true
    [ -n "$p" ] && stop_pid "$p"
  fi
  wait 2>/dev/null || true
  if [ "$OK" = 1 ] && { [ "$rc" = 0 ] || [ "$rc" = 130 ]; }; then
    rc=0; rm -rf "$D"; echo "demo: stopped everything, removed $D"
  else echo "demo: stopped everything; logs kept in $D (mmp.log, slapd.log, store*/dovecot.log, postfix/maillog)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # free_port IP...: a port free on every IP given
  python3 - "$@" <<'EOF'
import socket, sys
for _ in range(50):
    s = socket.socket(); s.bind((sys.argv[1], 0)); p = s.getsockname()[1]; others = []
    try:
        for ip in sys.argv[2:]:
            o = socket.socket(); o.bind((ip, p)); others.append(o)
    except OSError:
        continue
    print(p); break
EOF
}
wait_port() { # wait_port IP PORT SECONDS [PID]: until the port accepts (fails if PID dies)
  local ip=$1 port=$2 secs=$3 pid=${4:-} i
  for i in $(seq $((secs * 10))); do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if timeout 1 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Users: login id, password, mailHost
USERS=(
  "alice@a.test alice-Pw-41 127.0.0.2"
  "bob@a.test bob-Pw-42 127.0.0.3"
  "carol@b.test carol-Pw-43 127.0.0.3"
  "dave@b.test dave-Pw-44 127.0.0.2"
)
BIND_PW=bind-S3cret-77

# --------------------------------------------------------------------------------------------
say "3. slapd (o=isp, domains a.test and b.test) on 127.0.0.1"
LDAP_PORT=$(free_port 127.0.0.1)
mkdir -p "$D/ldap/db"
cat > "$D/ldap/mmp-demo.schema" <<'EOF'
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'inetUserStatus' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.2 NAME 'mailUserStatus' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'mmpTestUser' SUP top AUXILIARY
  MAY ( inetUserStatus $ mailUserStatus ) )
EOF
cat > "$D/ldap/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
include $D/ldap/mmp-demo.schema
pidfile $D/ldap/slapd.pid
argsfile $D/ldap/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "o=isp"
rootdn "cn=admin,o=isp"
rootpw $BIND_PW
directory $D/ldap/db
index objectClass,uid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
EOF
{
  printf 'dn: o=isp\nobjectClass: organization\no: isp\n\n'
  for dom in a.test b.test; do printf 'dn: ou=%s,o=isp\nobjectClass: organizationalUnit\nou: %s\n\n' $dom $dom; done
  for u in "${USERS[@]}"; do
    set -- $u; uid=$1 pw=$2 host=$3 local=${1%@*} dom=${1#*@}
    printf 'dn: cn=%s,ou=%s,o=isp\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\nobjectClass: mmpTestUser\ncn: %s\nsn: %s\nuid: %s\nmail: %s\nmailHost: %s\nuserPassword: %s\ninetUserStatus: active\n\n' \
      "$local" "$dom" "$local" "$local" "$uid" "$uid" "$host" "$pw"
  done
} > "$D/ldap/data.ldif"
slapadd -f "$D/ldap/slapd.conf" -l "$D/ldap/data.ldif" > "$D/slapd.log" 2>&1 || { cat "$D/slapd.log"; die "slapadd failed"; }
slapd -h "ldap://127.0.0.1:$LDAP_PORT/" -f "$D/ldap/slapd.conf" -d 0 >> "$D/slapd.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1 "$LDAP_PORT" 15 "${PIDS[-1]}" || { tail -20 "$D/slapd.log"; die "slapd did not start"; }
echo "slapd: ldap://127.0.0.1:$LDAP_PORT/o=isp (bind cn=admin,o=isp / $BIND_PW)"
ldapsearch -x -LLL -H "ldap://127.0.0.1:$LDAP_PORT" -D cn=admin,o=isp -w "$BIND_PW" -b o=isp '(uid=*)' uid mailHost | grep -E '^(uid|mailHost):' | paste - -

# --------------------------------------------------------------------------------------------
say "4. two Dovecot stores: store2 on 127.0.0.2, store3 on 127.0.0.3"
STORE_PORT=$(free_port 127.0.0.2 127.0.0.3)
POP_PORT=$(free_port 127.0.0.2 127.0.0.3)
[ "$POP_PORT" != "$STORE_PORT" ] || POP_PORT=$(free_port 127.0.0.2 127.0.0.3)
for n in 2 3; do
  S="$D/store$n"; mkdir -p "$S"
  : > "$S/passwd"
  for u in "${USERS[@]}"; do
    set -- $u; uid=$1 pw=$2
    echo "$uid:{PLAIN}$pw::::::" >> "$S/passwd"
    md="$S/home/$uid/Maildir"; mkdir -p "$md/cur" "$md/new" "$md/tmp"
    printf 'From: demo@a.test\r\nTo: %s\r\nSubject: Welcome %s, this is store%s\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nHello from store%s.\r\n' \
      "$uid" "$uid" "$n" "$n" > "$md/cur/1700000001.M1P1.store$n:2,S"
  done
  chown -R 8:8 "$S/home"
  cat > "$S/dovecot.conf" <<EOF
instance_name = mmp-demo-store$n-$$
base_dir = $S/run
state_dir = $S/state
log_path = $S/dovecot.log
listen = 127.0.0.$n
protocols = imap pop3
ssl = no
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 8
first_valid_gid = 8
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = $S/passwd
}
userdb {
  driver = static
  args = uid=8 gid=8 home=$S/home/%u
}
service imap-login {
  inet_listener imap {
    port = $STORE_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
protocol imap {
  mail_max_userip_connections = 100
}
service pop3-login {
  inet_listener pop3 {
    port = $POP_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
EOF
  DOVECOT_CONFS+=("$S/dovecot.conf")
  dovecot -c "$S/dovecot.conf" || die "dovecot store$n did not start (see $S/dovecot.log)"
  wait_port "127.0.0.$n" "$STORE_PORT" 20 || { tail -20 "$S/dovecot.log"; die "store$n not listening"; }
  # The first login of a fresh Dovecot takes seconds (auth start-up): do it now, bounded.
  timeout 60 python3 - "127.0.0.$n" "$STORE_PORT" alice@a.test alice-Pw-41 <<'EOF' || die "store$n: warm-up login failed"
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=30); m.login(sys.argv[3], sys.argv[4]); m.logout()
EOF
  wait_port "127.0.0.$n" "$POP_PORT" 20 || { tail -20 "$S/dovecot.log"; die "store$n: POP3 not listening"; }
  echo "store$n: imap://127.0.0.$n:$STORE_PORT pop://127.0.0.$n:$POP_PORT (pid $(cat "$S/run/master.pid"))"
done

# --------------------------------------------------------------------------------------------
say "4b. a private Postfix on 127.0.0.1 (the relay behind mmp's SMTP proxy)"
P="$D/postfix"; POSTFIX_PORT=$(free_port 127.0.0.1)
mkdir -p "$P/etc" "$P/queue" "$P/data" "$P/mail" "$P/sasl"
chown postfix "$P/data"; chown 65534:65534 "$P/mail"
printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s/sasl/sasldb2\nmech_list: PLAIN LOGIN\n' "$P" > "$P/sasl/smtpd.conf"
# Debian's master.cf with smtpd on 127.0.0.1:PORT and chroot off (the private queue has no chroot files).
awk -v port="$POSTFIX_PORT" '/^[ \t#]/ || NF < 8 { print; next }
  { if ($1 == "smtp" && $2 == "inet") $1 = "127.0.0.1:" port; $5 = "n"; print }' /etc/postfix/master.cf > "$P/etc/master.cf"
cat > "$P/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.test
mydestination =
# not 127.0.0.1: only the client address and login that mmp passes with XCLIENT may decide
mynetworks = 192.0.2.1/32
relay_domains =
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_sasl_authenticated_header = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $P/sasl
virtual_mailbox_domains = a.test b.test
virtual_transport = virtual
default_transport = virtual
virtual_mailbox_base = $P/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
maillog_file = $P/maillog
maillog_file_prefixes = /var, $P
alias_maps =
alias_database =
biff = no
EOF
POSTFIX_ETC="$P/etc"
timeout 60 postfix -c "$POSTFIX_ETC" start || { tail -20 "$P/maillog" 2>/dev/null; die "postfix did not start (try: script -qc 'postfix -c $POSTFIX_ETC check' /dev/null)"; }
wait_port 127.0.0.1 "$POSTFIX_PORT" 30 || { tail -20 "$P/maillog"; die "postfix not listening"; }
echo "postfix: smtp://127.0.0.1:$POSTFIX_PORT (master pid $(tr -d ' ' < "$P/queue/pid/master.pid"), Maildir $P/mail/inbox, log $P/maillog)"

# --------------------------------------------------------------------------------------------
say "5. legacy config dir and mmp"
MMP_PORT=$(free_port 127.0.0.1)
MMP_POP_PORT=$(free_port 127.0.0.1)
MMP_SMTP_PORT=$(free_port 127.0.0.1)
C="$D/mmp-config"; mkdir -p "$C"
write_aservice() { # write_aservice SERVICE...
  { echo "default:ServiceList $*"; echo "default:LogLevel 5"; echo "default:NumThreads 4"; } > "$C/AService.cfg"
}
write_aservice "ImapProxyAService@127.0.0.1:$MMP_PORT" "PopProxyAService@127.0.0.1:$MMP_POP_PORT" \
  "SmtpProxyAService@127.0.0.1:$MMP_SMTP_PORT"
cat > "$C/ImapProxyAService.cfg" <<EOF
default:LdapUrl "ldap://127.0.0.1:$LDAP_PORT/o=isp"
default:BindDN "cn=admin,o=isp"
default:BindPass $BIND_PW
default:SearchFormat (uid=%s)
default:HostedDomains no
default:DefaultDomain a.test
default:BacksidePort $STORE_PORT
default:ReplayFormat %s
default:Timeout 1800
default:Banner "mmp demo"
default:ServerDownAlert "your IMAP server appears to be temporarily out of service"
default:BacksideTimeout 3
default:LoginTimeout 60
EOF
cat > "$C/PopProxyAService.cfg" <<EOF
default:LdapUrl "ldap://127.0.0.1:$LDAP_PORT/o=isp"
default:BindDN "cn=admin,o=isp"
default:BindPass $BIND_PW
default:SearchFormat (uid=%s)
default:HostedDomains no
default:DefaultDomain a.test
default:BacksidePort $POP_PORT
default:ReplayFormat %s
default:Timeout 600
default:Banner "mmp demo"
default:ServerDownAlert "your POP server appears to be temporarily out of service"
default:BacksideTimeout 3
default:PreAuth yes
default:AuthService yes
default:AuthServiceTTL 900
EOF
cat > "$C/SmtpProxyAService.cfg" <<EOF
default:LdapUrl "ldap://127.0.0.1:$LDAP_PORT/o=isp"
default:BindDN "cn=admin,o=isp"
default:BindPass $BIND_PW
default:SearchFormat (uid=%s)
default:HostedDomains no
default:DefaultDomain a.test
default:SmtpRelays 127.0.0.1:$POSTFIX_PORT
default:MmpSmtpClientInfo xclient
default:Banner "mmp demo"
default:BacksideTimeout 3
EOF
POP_SMTP=1
if ! "$MMP_BIN" -t -c "$C" > "$D/mmp-check.txt" 2>&1; then
  if grep -q "does not run yet" "$D/mmp-check.txt"; then
    POP_SMTP=0
    echo "note: this mmp build does not run the POP3/SMTP proxies yet; the demo runs IMAP only:"
    sed 's/^/  /' "$D/mmp-check.txt"
    write_aservice "ImapProxyAService@127.0.0.1:$MMP_PORT"
  else
    cat "$D/mmp-check.txt"; die "mmp -t refused the config"
  fi
fi
echo "--- $C/AService.cfg"; cat "$C/AService.cfg"
echo "--- $C/ImapProxyAService.cfg"; cat "$C/ImapProxyAService.cfg"
if [ "$POP_SMTP" = 1 ]; then
  echo "--- $C/PopProxyAService.cfg"; cat "$C/PopProxyAService.cfg"
  echo "--- $C/SmtpProxyAService.cfg"; cat "$C/SmtpProxyAService.cfg"
fi
"$MMP_BIN" -t -c "$C" || die "mmp -t refused the config"
"$MMP_BIN" -f -c "$C" > "$D/mmp.log" 2>&1 &
PIDS+=($!)
MMP_PID=${PIDS[-1]}
wait_port 127.0.0.1 "$MMP_PORT" 10 "$MMP_PID" || { tail -30 "$D/mmp.log"; die "mmp did not start"; }
echo "mmp: imap://127.0.0.1:$MMP_PORT (pid $MMP_PID, log $D/mmp.log)"
if [ "$POP_SMTP" = 1 ]; then
  wait_port 127.0.0.1 "$MMP_POP_PORT" 10 "$MMP_PID" || { tail -30 "$D/mmp.log"; die "mmp POP3 not listening"; }
  wait_port 127.0.0.1 "$MMP_SMTP_PORT" 10 "$MMP_PID" || { tail -30 "$D/mmp.log"; die "mmp SMTP not listening"; }
  echo "mmp: pop://127.0.0.1:$MMP_POP_PORT smtp://127.0.0.1:$MMP_SMTP_PORT"
fi

# --------------------------------------------------------------------------------------------
say "6. a real client through mmp (python3 imaplib)"
for u in "alice alice-Pw-41" "carol@b.test carol-Pw-43" "bob@a.test bob-Pw-42"; do
  set -- $u
  echo "--- $1 (password $2)"
  timeout 30 python3 - 127.0.0.1 "$MMP_PORT" "$1" "$2" <<'EOF'
import imaplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port, timeout=15)
print("greeting:", m.welcome.decode())
print("login:   ", m.login(user, pw)[1][0].decode())
print("list:    ", [d.decode() for d in m.list()[1]])
n = m.select("INBOX")[1][0].decode()
subj = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1].decode().strip()
print("INBOX:   ", n, "message(s);", subj)
m.logout()
EOF
done
if command -v curl >/dev/null; then
  say "7. the same with curl"
  echo "\$ curl 'imap://127.0.0.1:$MMP_PORT/' --user 'dave@b.test:dave-Pw-44'"
  timeout 30 curl -sS "imap://127.0.0.1:$MMP_PORT/" --user 'dave@b.test:dave-Pw-44'
  echo "\$ curl 'imap://127.0.0.1:$MMP_PORT/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)' --user 'bob@a.test:bob-Pw-42'"
  timeout 30 curl -sS "imap://127.0.0.1:$MMP_PORT/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)" --user 'bob@a.test:bob-Pw-42'
fi

if [ "$POP_SMTP" = 1 ]; then
  say "8. POP3 through mmp (python3 poplib)"
  for u in "alice alice-Pw-41" "bob@a.test bob-Pw-42"; do
    set -- $u
    echo "--- $1 (password $2)"
    timeout 30 python3 - 127.0.0.1 "$MMP_POP_PORT" "$1" "$2" <<'EOF'
import poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = poplib.POP3(host, port, timeout=15)
print("greeting:", m.getwelcome().decode())
m.user(user); print("login:   ", m.pass_(pw).decode())
resp, listing, _ = m.list()
print("list:    ", resp.decode(), [l.decode() for l in listing])
subj = [l.decode() for l in m.top(1, 0)[1] if l.startswith(b"Subject:")]
print("message 1:", subj[0] if subj else "(no subject)")
m.quit()
EOF
  done

  say "9. a message through mmp's SMTP proxy to the private Postfix (python3 smtplib)"
  TOKEN="demo-$$-$RANDOM"
  timeout 30 python3 - 127.0.0.1 "$MMP_SMTP_PORT" alice@a.test alice-Pw-41 bob@a.test "$TOKEN" <<'EOF'
import smtplib, sys
host, port, user, pw, rcpt, token = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
s = smtplib.SMTP(host, port, timeout=15, source_address=("127.0.0.9", 0))
print("ehlo:    ", s.ehlo("demo.client.test")[0], "extensions:", sorted(s.esmtp_features))
print("auth:    ", s.login(user, pw))
msg = f"From: <{user}>\r\nTo: <{rcpt}>\r\nSubject: mmp demo {token}\r\n\r\nSent through mmp.\r\n"
print("sendmail: refused", s.sendmail(user, [rcpt], msg))
s.quit()
EOF
  echo "--- waiting for Postfix to deliver it into $P/mail/inbox"
  f=""
  for i in $(seq 100); do
    f=$(grep -l "mmp demo $TOKEN" "$P"/mail/inbox/new/* 2>/dev/null | head -1 || true)
    [ -n "$f" ] && break; sleep 0.2
  done
  [ -n "$f" ] || { tail -20 "$P/maillog"; die "the message did not arrive at Postfix"; }
  echo "--- $f (headers)"; sed '/^\r\?$/q' "$f"
  echo "--- maillog:"; grep -E 'sasl_username=|status=sent' "$P/maillog" | tail -3
fi

say "connect by hand"
cat <<EOF
mmp listens on 127.0.0.1:$MMP_PORT. Users (password): alice@a.test (alice-Pw-41) and dave@b.test
(dave-Pw-44) live on store2 = 127.0.0.2, bob@a.test (bob-Pw-42) and carol@b.test (carol-Pw-43) on
store3 = 127.0.0.3; a short id such as "alice" gets the DefaultDomain a.test.

  curl -v 'imap://127.0.0.1:$MMP_PORT/INBOX' --user 'alice@a.test:alice-Pw-41' -X 'FETCH 1 BODY[HEADER]'
  nc 127.0.0.1 $MMP_PORT        # or: telnet 127.0.0.1 $MMP_PORT ; then type:
      a LOGIN alice alice-Pw-41
      b SELECT INBOX
      c FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]
      d LOGOUT
  bash only:  exec 3<>/dev/tcp/127.0.0.1/$MMP_PORT; printf 'a LOGIN bob@a.test bob-Pw-42\r\nb LIST "" *\r\nc LOGOUT\r\n' >&3; timeout 5 cat <&3

mmp log: $D/mmp.log   config: $C
EOF
if [ "$POP_SMTP" = 1 ]; then
  cat <<EOF
POP3 through mmp: 127.0.0.1:$MMP_POP_PORT   (python3 -c "import poplib; m=poplib.POP3('127.0.0.1',$MMP_POP_PORT); m.user('alice'); m.pass_('alice-Pw-41'); print(m.list())")
SMTP through mmp: 127.0.0.1:$MMP_SMTP_PORT (AUTH PLAIN/LOGIN, relays to Postfix 127.0.0.1:$POSTFIX_PORT;
  delivered mail lands in $P/mail/inbox/new, Postfix log $P/maillog)
EOF
fi

OK=1
if [ "$KEEP" = 1 ]; then
  say "running; press Ctrl-C to stop everything"
  wait "$MMP_PID" || true
  echo "mmp exited; log tail:"; tail -20 "$D/mmp.log"
fi
