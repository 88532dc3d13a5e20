#!/bin/bash
# t/pkg/deb-test.sh: the Debian packages, as an operator gets them.
#
# As root on a Debian 12 machine with the build and test dependencies
# (contrib/bootstrap deps, plus debhelper and lintian):
#   1. builds the packages (dpkg-buildpackage -us -uc -b) in a copy of the
#      tree, and runs lintian on them (errors and warnings fail);
#   2. installs them with dpkg -i, and checks the files, the xedge system
#      user, /var/lib/xedge, the conffile, the service enabled but not
#      started, and that the packaged xedge -t accepts the packaged
#      configuration, which listens on loopback only;
#   3. starts the packaged daemon as the xedge user on loopback (a test
#      configuration, ports below 32768) in front of a test Prosody loading
#      the packaged mod_auth_xedge, adds a user with the packaged xedgectl,
#      and logs them in with slixmpp;
#   4. purges the packages and checks that nothing is left behind (the
#      files under /etc, /usr, /lib and /var/lib are as before, and the user
#      and group are gone).
# Whatever happens, the packages are purged at the end, so dpkg is left as
# it was found: the script refuses to start when an xedge package or user
# is already there. Output: TAP. Takes about a minute.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PKGS=(xedge xedge-prosody xedge-extauth)
PY=/usr/bin/python3
n=0
failed=0
work=
xedge_pid=
prosody_pid=
guard=

ok() { # ok STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
bail() {
	echo "Bail out! $*"
	exit 1
}

installed() { # any of our packages known to dpkg (even half-installed)?
	local p st
	for p in "${PKGS[@]}"; do
		st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) || continue
		[ "${st:1:1}" != "n" ] && return 0
	done
	return 1
}

stop_pid() {
	local p=$1 end=$((SECONDS + 10))
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null || return 0
	while kill -0 "$p" 2>/dev/null; do
		[ $SECONDS -ge $end ] && { kill -KILL "$p" 2>/dev/null; break; }
		sleep 0.05
	done
}

cleanup() {
	local rc=$?
	stop_pid "$xedge_pid"
	stop_pid "$prosody_pid"
	if installed; then
		diag "purging the packages left installed"
		dpkg --purge "${PKGS[@]}" >/dev/null 2>&1 || diag "dpkg --purge failed: dpkg --audit: $(dpkg --audit 2>&1)"
	fi
	[ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
	[ -n "$work" ] && [ -z "${XE_KEEP_PKG_TEST:-}" ] && rm -rf "$work"
	[ $failed -gt 0 ] && [ $rc -eq 0 ] && rc=1
	exit $rc
}

[ "$(id -u)" = 0 ] || bail "run as root (it installs and purges packages)"
for c in dpkg-buildpackage dh lintian prosody lua5.4 openssl setpriv runuser; do
	command -v "$c" >/dev/null || bail "$c is not installed (apt-get install debhelper lintian dpkg-dev prosody lua5.4)"
done
$PY -c 'import slixmpp' 2>/dev/null || bail "python3-slixmpp is not installed"
installed && bail "an xedge package is installed already: this test would remove it"
getent passwd xedge >/dev/null && bail "a user xedge exists already: this test would remove it"
getent group xedge >/dev/null && bail "a group xedge exists already: this test would remove it"
[ -e /etc/xedge ] && bail "/etc/xedge exists already"
[ -e /var/lib/xedge ] && bail "/var/lib/xedge exists already"

trap cleanup EXIT
trap 'exit 130' INT TERM
work=$(mktemp -d "${TMPDIR:-/tmp}/xedge-deb.XXXXXX") || bail "mktemp failed"
chmod 755 "$work" # the xedge user reads its test configuration here

echo "1..25"

# ---- 1. build -------------------------------------------------------------
mkdir -p "$work/src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && { git ls-files -z; find debian -type f -print0; } | sort -zu | tar --null -T - -cf -) |
		tar -xf - -C "$work/src"
else
	cp -a "$top/." "$work/src/"
fi
(cd "$work/src" && timeout 900 dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1
rc=$?
ok $rc "dpkg-buildpackage -us -uc -b (the unit tests run in dh_auto_test)"
[ $rc = 0 ] || { diag "$(tail -n 40 "$work/build.log")"; bail "the packages did not build"; }
debs=()
for p in "${PKGS[@]}"; do
	f=$(ls "$work"/"${p}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$f" ] || bail "no ${p}_*.deb was built"
	debs+=("$f")
done
lint=$(lintian --allow-root --fail-on error,warning "${debs[@]}" 2>&1)
ok $? "lintian: no error or warning (overrides in debian/*.lintian-overrides)"
[ -n "$lint" ] && diag "$lint"

# ---- 2. install -----------------------------------------------------------
snapshot() { # the files and directories an install could touch
	find /etc /usr /lib /var/lib -xdev \
		\( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/ucf -o -path /var/lib/man-db \
		-o -path /var/lib/systemd/deb-systemd-helper-enabled/.placeholder -o -path '/tmp' \) -prune \
		-o -print 2>/dev/null | sort
}
snapshot >"$work/before"
# no service may start while dpkg runs (the packaged one is not started anyway)
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	guard=1
fi
out=$(DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}" 2>&1)
r=$?
ok $r "dpkg -i of the three packages"
[ $r = 0 ] || { diag "$out"; bail "dpkg -i failed"; }

missing=
for f in /usr/sbin/xedge /usr/sbin/xedgectl /usr/libexec/xedge/xedge-extauth \
	/lib/systemd/system/xedge.service /etc/logrotate.d/xedge /etc/xedge/xedge.conf \
	/usr/share/man/man8/xedge.8.gz /usr/share/man/man8/xedgectl.8.gz /usr/share/man/man5/xedge.conf.5.gz \
	/usr/share/man/man8/xedge-extauth.8.gz /usr/share/xedge/prosody/mod_auth_xedge.lua \
	/usr/share/xedge/prosody/xedge_assertion.lib.lua /usr/share/xedge/prosody/mod_xedge_s2s.lua \
	/usr/share/doc/xedge/examples/xedge.conf.sample; do
	[ -e "$f" ] || missing="$missing $f"
done
ok "$([ -z "$missing" ] && echo 0 || echo 1)" "the daemon, xedgectl, the glue, man pages, unit, logrotate and conffile are installed"
[ -z "$missing" ] || diag "missing:$missing"
grep -q '^ExecStart=/usr/sbin/xedge -c /etc/xedge/xedge.conf$' /lib/systemd/system/xedge.service
ok $? "... the unit runs /usr/sbin/xedge"

pw=$(getent passwd xedge)
uid=$(printf '%s' "$pw" | cut -d: -f3)
[ -n "$pw" ] && [ "$uid" -lt 1000 ] && [ "$(printf '%s' "$pw" | cut -d: -f7)" = /usr/sbin/nologin ] &&
	[ "$(printf '%s' "$pw" | cut -d: -f6)" = /var/lib/xedge ]
ok $? "the xedge system user (uid $uid, home /var/lib/xedge, no shell)"
[ "$(stat -c '%U:%G %a' /var/lib/xedge 2>/dev/null)" = "xedge:xedge 700" ]
ok $? "/var/lib/xedge: xedge:xedge 0700"
[ "$(stat -c '%U:%G %a' /etc/xedge/assertion.secret 2>/dev/null)" = "root:xedge 640" ] &&
	[ "$(stat -c '%U:%G %a' /etc/xedge/localhost.key 2>/dev/null)" = "root:xedge 640" ] &&
	[ "$(tr -d '\n' </etc/xedge/assertion.secret | wc -c)" -ge 32 ]
ok $? "the assertion secret and the key made at install: root:xedge 0640"
dpkg-query -W -f='${Conffiles}\n' xedge | grep -q '^ /etc/xedge/xedge.conf [0-9a-f]\{32\}$'
ok $? "/etc/xedge/xedge.conf is a conffile"
out=$(runuser -u xedge -- /usr/sbin/xedge -t 2>&1)
ok $? "the packaged xedge -t accepts the packaged configuration (its default path, as the xedge user)"
[ -z "$out" ] || diag "$out"
addrs=$(sed -n 's/.*address *= *"\([^"]*\)".*/\1/p' /etc/xedge/xedge.conf | sort -u | tr '\n' ' ')
is_loop=0
for a in $addrs; do case $a in 127.*) ;; *) is_loop=1 ;; esac; done
ok $is_loop "... which listens on loopback only ($addrs)"
[ -L /etc/systemd/system/multi-user.target.wants/xedge.service ]
ok $? "the service is enabled"
! pgrep -u xedge >/dev/null
ok $? "... and not started"

# ---- 3. run ---------------------------------------------------------------
pick_ports() {
	local b k free
	for _ in $(seq 1 50); do
		b=$((20000 + RANDOM % 12000))
		free=1
		for k in 0 1 2; do
			ss -Htan "( sport = :$((b + k)) )" 2>/dev/null | grep -q . && { free=0; break; }
		done
		[ $free = 1 ] && { echo "$b"; return 0; }
	done
	return 1
}
base=$(pick_ports) || bail "no free ports"
c2s=$base backend=$((base + 2))
(umask 077 && openssl rand -hex 32 >"$work/secret")
chgrp xedge "$work/secret" && chmod 640 "$work/secret"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=example.test" \
	-addext "subjectAltName=DNS:example.test" -addext "basicConstraints=critical,CA:TRUE" \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || bail "openssl req failed"
chgrp xedge "$work/key.pem" && chmod 640 "$work/key.pem"
install -d -o xedge -g xedge -m 700 "$work/store"
sed -e "s|/var/lib/xedge/users|$work/store/users|" \
	-e "s|port = 5222;|port = $c2s;|; s|port = 5223;|port = $((c2s + 1));|" \
	-e "s|\"localhost\"|\"example.test\"|" -e "s|/etc/xedge/localhost.crt|$work/cert.pem|" \
	-e "s|/etc/xedge/localhost.key|$work/key.pem|" -e "s|/etc/xedge/assertion.secret|$work/secret|" \
	-e "s|port = 15222;|port = $backend;|" -e '/^control = {/,/^};/d' \
	/etc/xedge/xedge.conf >"$work/xedge.conf"
mkdir -p "$work/prosody/data"
cat >"$work/prosody/prosody.cfg.lua" <<EOF
-- the test backend: Prosody with the packaged mod_auth_xedge
run_as_root = true
pidfile = "$work/prosody/prosody.pid"
data_path = "$work/prosody/data"
plugin_paths = { "/usr/share/xedge/prosody" }
interfaces = { "127.0.0.1" }
c2s_ports = { $backend }
c2s_direct_tls_ports = { }
s2s_ports = { }
modules_disabled = { "s2s"; "offline" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "posix" }
authentication = "xedge"
xedge_secret_file = "$work/secret"
storage = "internal"
log = { { levels = { min = "debug" }, to = "file", filename = "$work/prosody/prosody.log" } }
VirtualHost "example.test"
EOF
mkdir -p "$work/prosody/certs"
prosody -F --config "$work/prosody/prosody.cfg.lua" </dev/null >"$work/prosody/console.out" 2>&1 &
prosody_pid=$!
wait_port() {
	local end=$((SECONDS + 20))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		[ $SECONDS -ge $end ] && return 1
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
}
wait_port "$backend" "$prosody_pid"
r=$?
ok $r "a test Prosody loads the packaged mod_auth_xedge from /usr/share/xedge/prosody"
[ $r = 0 ] || diag "$(tail -n 10 "$work/prosody/console.out" "$work/prosody/prosody.log" 2>/dev/null)"

printf 'pkg-test-pw\n' | runuser -u xedge -- /usr/sbin/xedgectl -c "$work/xedge.conf" user add alice@example.test
ok $? "the packaged xedgectl adds a user (as the xedge user)"
setpriv --reuid=xedge --regid=xedge --init-groups /usr/sbin/xedge -c "$work/xedge.conf" \
	</dev/null >"$work/xedge.log" 2>&1 &
xedge_pid=$!
wait_port "$c2s" "$xedge_pid"
r=$?
ok $r "the packaged xedge runs as the xedge user on 127.0.0.1:$c2s"
[ $r = 0 ] || diag "$(tail -n 10 "$work/xedge.log")"
[ "$(ps -o user= -p "$xedge_pid" 2>/dev/null)" = xedge ]
ok $? "... as xedge indeed"
out=$(timeout 30 "$PY" "$top/t/lib/xmpp_client.py" --server "127.0.0.1:$c2s" --cafile "$work/cert.pem" \
	--jid alice@example.test --password pkg-test-pw --timeout 10 2>&1 | grep '^RESULT=')
case $out in RESULT=ok*) r=0 ;; *) r=1 ;; esac
ok $r "alice logs in through the packaged xedge to Prosody ($out)"
[ $r = 0 ] || diag "$(tail -n 10 "$work/xedge.log" "$work/prosody/prosody.log")"
grep -q "alice@example.test" "$work/prosody/prosody.log"
ok $? "... and Prosody saw her session"
stop_pid "$xedge_pid"
xedge_pid=
stop_pid "$prosody_pid"
prosody_pid=
rm -rf "$work/store" # owned by xedge: gone before the user is

# ---- 4. purge -------------------------------------------------------------
files=$(dpkg -L "${PKGS[@]}" 2>/dev/null | sort -u)
out=$(dpkg --purge "${PKGS[@]}" 2>&1)
r=$?
ok $r "dpkg --purge of the three packages"
[ $r = 0 ] || diag "$out"
left=
for f in $files; do
	[ -d "$f" ] && continue # directories (and /lib, a link to one) are shared
	[ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
ok "$([ -z "$left" ] && echo 0 || echo 1)" "no packaged file is left"
[ -z "$left" ] || diag "left:$left"
! getent passwd xedge >/dev/null && ! getent group xedge >/dev/null
ok $? "the xedge user and group are gone"
[ ! -e /etc/xedge ] && [ ! -e /var/lib/xedge ] && [ ! -e /etc/systemd/system/multi-user.target.wants/xedge.service ]
ok $? "/etc/xedge, /var/lib/xedge and the service's enablement are gone"
[ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d && guard=
snapshot >"$work/after"
diff=$(diff "$work/before" "$work/after")
ok "$([ -z "$diff" ] && echo 0 || echo 1)" "/etc, /usr, /lib and /var/lib are as before the install"
[ -z "$diff" ] || diag "$diff"
installed
ok $((1 - $?)) "dpkg knows none of the packages any more"
