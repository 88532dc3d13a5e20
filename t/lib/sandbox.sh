# t/lib/sandbox.sh: sourced by the end-to-end tests (bash).
#
# Gives: TAP helpers (plan, ok, is, like, diag, bail), a sandbox (real Prosody
# backends + xedge, started by contrib/sandbox/xedge-sandbox on free loopback
# ports, stopped and removed on exit), and wrappers around the test clients.
#
#   . "${XE_TOP_SRCDIR:-.}/t/lib/sandbox.sh"
#   plan 3
#   sandbox_up --user alice@example.test=secret
#   client --jid alice@example.test --password secret --mech PLAIN
#   is "$RC" 0 "login"; is "$(result mech)" PLAIN "mechanism"
#
# Never skips: if the sandbox cannot start, the test says "Bail out!" and
# exits non-zero.

# shellcheck disable=SC2034 # OUT, RC, RESULT are for the tests that source this
set -u

XE_TOP_SRCDIR=${XE_TOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
XE_TOP_BUILDDIR=${XE_TOP_BUILDDIR:-$XE_TOP_SRCDIR}
export XE_TOP_SRCDIR XE_TOP_BUILDDIR
export XEDGE_BUILDDIR=${XEDGE_BUILDDIR:-$XE_TOP_BUILDDIR}

PY=/usr/bin/python3 # the python3 on PATH may lack Debian's slixmpp
XMPP_CLIENT="$XE_TOP_SRCDIR/t/lib/xmpp_client.py"
RAW_CLIENT="$XE_TOP_SRCDIR/t/lib/raw_client.py"
SANDBOX=${XE_SANDBOX:-"$XE_TOP_SRCDIR/contrib/sandbox/xedge-sandbox"}
XE_DOMAIN_DEFAULT=example.test

# ---------------------------------------------------------------- TAP
_tap_n=0
_tap_failed=0
_tap_planned=

plan() {
	_tap_planned=$1
	echo "1..$1"
}

diag() {
	local line
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/# /'
	done
}

ok() { # ok CONDITION_STATUS DESCRIPTION   (status 0 = pass)
	local st=$1
	shift
	_tap_n=$((_tap_n + 1))
	if [ "$st" -eq 0 ]; then
		echo "ok $_tap_n - $*"
	else
		_tap_failed=$((_tap_failed + 1))
		echo "not ok $_tap_n - $*"
	fi
	return "$st"
}

is() { # is GOT EXPECTED DESCRIPTION
	local got=$1 exp=$2
	shift 2
	if [ "$got" = "$exp" ]; then
		ok 0 "$*"
	else
		ok 1 "$*"
		diag "  got:      '$got'" "  expected: '$exp'"
		return 1
	fi
}

like() { # like GOT EXTENDED_REGEX DESCRIPTION
	local got=$1 re=$2
	shift 2
	if printf '%s\n' "$got" | grep -Eq -- "$re"; then
		ok 0 "$*"
	else
		ok 1 "$*"
		diag "  got:         '$got'" "  expected to match: /$re/"
		return 1
	fi
}

unlike() { # unlike GOT EXTENDED_REGEX DESCRIPTION
	local got=$1 re=$2
	shift 2
	if printf '%s\n' "$got" | grep -Eq -- "$re"; then
		ok 1 "$*"
		diag "  got:             '$got'" "  expected not to match: /$re/"
		return 1
	else
		ok 0 "$*"
	fi
}

bail() {
	echo "Bail out! $*"
	exit 1
}

# rss_is_honest: call before sandbox_up in a test that bounds xedge's RSS.
# Under AddressSanitizer (the sanitizer pass of CI) freed blocks wait in its
# quarantine, so RSS would measure that rather than xedge's own memory: run
# this test's xedge without a quarantine.
rss_is_honest() {
	if ldd "$XE_TOP_BUILDDIR/src/xedge" 2>/dev/null | grep -q libasan; then
		export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
	fi
}

# xedge_restart CONF: replace the sandbox's xedge by one running CONF (on the
# same ports, so every client helper keeps working); stopped by the cleanup.
xedge_restart() {
	kill -TERM "$XEDGE_PID" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$XEDGE_PID" 2>/dev/null || break; sleep 0.05; done
	"$XE_TOP_BUILDDIR/src/xedge" -c "$1" >>"$XEDGE_LOG" 2>&1 &
	XEDGE_PID=$!
	XEDGE_PIDS="$XEDGE_PID,$XEDGE_PIDS"
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${XEDGE_C2S%:*}/${XEDGE_C2S##*:}") 2>/dev/null && return 0
		kill -0 "$XEDGE_PID" 2>/dev/null || break
		sleep 0.05
	done
	diag "$(tail -n 5 "$XEDGE_LOG")"
	bail "xedge did not start on $1"
}

# ---------------------------------------------------------------- clients
# client ARGS...      slixmpp client (t/lib/xmpp_client.py)
# raw ARGS...         byte-level client (t/lib/raw_client.py)
# Both default to the sandbox's STARTTLS port and CA; they set OUT (stdout),
# RC (exit status), RESULT (the RESULT= line), and show the output as diag.
# --server / --mode / --timeout given in ARGS override the defaults.
_run_tool() {
	local tool=$1
	shift
	local server=$XEDGE_C2S mode=starttls timeout=10
	local args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--server) server=$2; shift 2 ;;
		--mode) mode=$2; shift 2 ;;
		--timeout) timeout=$2; shift 2 ;;
		*) args+=("$1"); shift ;;
		esac
	done
	if [ "$mode" = direct ] && [ "$server" = "$XEDGE_C2S" ]; then
		server=$XEDGE_DIRECT_TLS
	fi
	local to=${timeout%.*}
	OUT=$(timeout -k 2 $((to + 10)) "$PY" "$tool" --server "$server" --mode "$mode" \
		--timeout "$timeout" --cafile "$XEDGE_CERT" "${args[@]}" 2>"$XE_SANDBOX_DIR/client.err")
	RC=$?
	RESULT=$(printf '%s\n' "$OUT" | grep '^RESULT=' | tail -n 1)
	diag "$(basename "$tool") ${args[*]}" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	if [ -s "$XE_SANDBOX_DIR/client.err" ]; then
		diag "  stderr:" "$(tail -n 20 "$XE_SANDBOX_DIR/client.err" | sed 's/^/    /')"
	fi
	return 0
}
client() { _run_tool "$XMPP_CLIENT" "$@"; }
raw() { _run_tool "$RAW_CLIENT" "$@"; }

# result KEY [LINE]: the value of KEY=... in the RESULT line (or LINE).
result() {
	local line=${2-$RESULT}
	case $1 in
	RESULT) printf '%s\n' "$line" | sed -n 's/^RESULT=\([^ ]*\).*/\1/p' ;;
	*) printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1 ;;
	esac
}

# ctl ARGS... [<<<password]: run xedgectl against the sandbox's config.
ctl() {
	# shellcheck disable=SC2086 # XEDGECTL is a command line
	timeout 30 $XEDGECTL "$@"
}
# wait_purged: until no deleted user waits for its purge (10 s at most):
# a name deleted with `user del` is free again once the daemon purged its
# data at the backend, which under load takes more than the next command
wait_purged() {
	local _
	for _ in $(seq 1 100); do
		[ -z "$(ctl user list --pending 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	return 1
}

# user_add JID PASSWORD
user_add() {
	printf '%s\n' "$2" | ctl user add "$1"
}

# users_import PREFIX COUNT PASSWORD: the users PREFIX0..PREFIX<COUNT-1> of
# the sandbox's domain, all with PASSWORD, in one xedgectl user import (as a
# load test wants them; bails out if the import fails)
users_import() {
	local i f="$XE_SANDBOX_DIR/users-$1.json"
	for i in $(seq 0 $(($2 - 1))); do
		printf '{"jid":"%s%d@%s","password":"%s"}\n' "$1" "$i" "$XEDGE_DOMAIN" "$3"
	done >"$f"
	# shellcheck disable=SC2086 # XEDGECTL is a command line
	$XEDGECTL user import "$f" >"$f.out" 2>&1 || bail "xedgectl user import failed: $(cat "$f.out")"
}

# ---------------------------------------------------------------- sandbox
_port_free() { # _port_free PORT: nothing bound to 127.0.0.1:PORT in any state
	! ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .
}

# pick_base_port: the first of 15 free ports in a row (xedge-sandbox --base-port)
pick_base_port() { pick_free_port 15; }

# pick_free_port [N]: one free port below 32768, e.g. for sandbox_up
# --websocket-port; with N, the first of N free ports in a row
pick_free_port() {
	local n k free
	for _ in $(seq 1 50); do
		# below 32768, the kernel's ephemeral range (32768-60999): a listener
		# there can collide with the port of an outgoing connection (xedge's
		# to its backends, a client's); base+99 stays below it too
		n=$((12000 + (RANDOM * 32768 + RANDOM) % 19900))
		free=1
		for k in $(seq 0 $((${1:-1} - 1))); do
			_port_free $((n + k)) || { free=0; break; }
		done
		[ $free = 1 ] && { echo "$n"; return 0; }
	done
	return 1
}

_sandbox_cleanup() {
	local rc=$?
	if [ -n "${XE_SANDBOX_DIR:-}" ] && [ -d "$XE_SANDBOX_DIR" ]; then
		if [ "$_tap_failed" -gt 0 ] || [ $rc -ne 0 ]; then
			if [ -n "${XEDGE_LOG:-}" ] && [ -f "$XEDGE_LOG" ]; then
				diag "last lines of xedge's log ($XEDGE_LOG):"
				diag "$(tail -n 60 "$XEDGE_LOG" | sed 's/^/  /')"
			fi
		fi
		[ -d "$XE_SANDBOX_DIR/sb" ] && timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/sb" >/dev/null 2>&1
		# whatever is left of the pids we were given: stop it by pid
		local p
		for p in $(printf '%s' "${XEDGE_PIDS:-}" | tr ',' ' '); do
			kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
		done
		if [ -n "${XE_KEEP_SANDBOX:-}" ]; then
			diag "sandbox kept in $XE_SANDBOX_DIR"
		else
			rm -rf "$XE_SANDBOX_DIR"
		fi
	fi
	if [ -n "$_tap_planned" ] && [ "$_tap_n" -ne "$_tap_planned" ]; then
		diag "planned $_tap_planned tests but ran $_tap_n"
		[ $rc -eq 0 ] && rc=1
	fi
	[ "$_tap_failed" -gt 0 ] && [ $rc -eq 0 ] && rc=1
	exit $rc
}

# sandbox_down: stop the sandbox (by pid) and remove it, so that a test can
# bring up another one with other options. The EXIT trap stays.
sandbox_down() {
	[ -n "${XE_SANDBOX_DIR:-}" ] && [ -d "$XE_SANDBOX_DIR" ] || return 0
	[ -d "$XE_SANDBOX_DIR/sb" ] && timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/sb" >/dev/null 2>&1
	local p
	for p in $(printf '%s' "${XEDGE_PIDS:-}" | tr ',' ' '); do
		kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
	done
	[ -n "${XE_KEEP_SANDBOX:-}" ] || rm -rf "$XE_SANDBOX_DIR"
	unset XE_SANDBOX_DIR XE_SANDBOX_DIR_SB XEDGE_PIDS XEDGE_PID XEDGE_LOG XEDGE_C2S XEDGE_DIRECT_TLS
}

# sandbox_up [xedge-sandbox up options...]: start, export XEDGE_* variables.
sandbox_up() {
	[ -x "$SANDBOX" ] || bail "no sandbox script at $SANDBOX"
	[ -n "${XE_SANDBOX:-}" ] || [ -x "$XE_TOP_BUILDDIR/src/xedge" ] || bail "xedge not built in $XE_TOP_BUILDDIR/src"
	XE_SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-e2e.XXXXXX") || bail "mktemp failed"
	export XE_SANDBOX_DIR
	trap _sandbox_cleanup EXIT
	trap 'exit 130' INT TERM
	local base tries=0 rc a lockout_given=0
	# The tests fail logins from 127.0.0.1 on purpose, many times: unless a
	# test sets the brute-force protection itself, it is off (delays and
	# lockouts would slow or refuse the next tests' logins).
	for a in "$@"; do
		case $a in *lockout*=*) lockout_given=1 ;; esac
	done
	if [ $lockout_given = 0 ]; then
		set -- "$@" --conf 'lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 0; };'
	fi
	while :; do
		tries=$((tries + 1))
		base=$(pick_base_port) || bail "no free port range found"
		timeout -k 5 90 "$SANDBOX" up "$XE_SANDBOX_DIR/sb" --domain "${XE_DOMAIN:-$XE_DOMAIN_DEFAULT}" \
			--base-port "$base" --address 127.0.0.1 "$@" \
			>"$XE_SANDBOX_DIR/up.out" 2>"$XE_SANDBOX_DIR/up.err"
		rc=$?
		[ $rc -eq 0 ] && break
		# A port taken between our check and the bind: try another range once or twice.
		if [ $tries -lt 3 ] && grep -qi 'already in use\|EADDRINUSE' "$XE_SANDBOX_DIR/up.err" "$XE_SANDBOX_DIR/sb"/*.log 2>/dev/null; then
			timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/sb" >/dev/null 2>&1
			rm -rf "$XE_SANDBOX_DIR/sb"
			continue
		fi
		diag "xedge-sandbox up failed (status $rc):" "$(sed 's/^/  /' "$XE_SANDBOX_DIR/up.err" | tail -n 40)" \
			"$(sed 's/^/  /' "$XE_SANDBOX_DIR/up.out" | tail -n 20)"
		local f
		for f in "$XE_SANDBOX_DIR"/sb/*.log "$XE_SANDBOX_DIR"/sb/*/*.log; do
			[ -f "$f" ] && diag "--- $f" "$(tail -n 20 "$f" | sed 's/^/  /')"
		done
		bail "sandbox did not start (xedge-sandbox up: status $rc)"
	done
	XE_SANDBOX_DIR_SB="$XE_SANDBOX_DIR/sb"
	local line key val
	while IFS= read -r line; do
		case $line in
		XEDGE*=*) ;;
		*) continue ;;
		esac
		key=${line%%=*}
		val=${line#*=}
		case $key in *[!A-Z0-9_]*) continue ;; esac
		case $val in
		\"*\" | \'*\') eval "val=$val" ;;
		esac
		printf -v "$key" '%s' "$val"
		export "${key?}"
	done <"$XE_SANDBOX_DIR/up.out"
	for key in XEDGE_CONF XEDGE_C2S XEDGE_DIRECT_TLS XEDGE_DOMAIN XEDGE_CERT XEDGECTL XEDGE_PIDS XEDGE_BACKEND_PIDS; do
		[ -n "${!key:-}" ] || bail "xedge-sandbox up printed no $key (output: $(tr '\n' ' ' <"$XE_SANDBOX_DIR/up.out"))"
	done
	XEDGE_PID=${XEDGE_PIDS%%,*}
	BACKEND_PIDS=$(printf '%s' "$XEDGE_BACKEND_PIDS" | tr ',' ' ')
	export XEDGE_PID XE_SANDBOX_DIR_SB BACKEND_PIDS
	kill -0 "$XEDGE_PID" 2>/dev/null || bail "xedge (pid $XEDGE_PID) is not running after sandbox up"
	diag "sandbox: c2s=$XEDGE_C2S direct=$XEDGE_DIRECT_TLS domain=$XEDGE_DOMAIN xedge pid=$XEDGE_PID backends=$XEDGE_BACKEND_PIDS"
}

# sandbox_need VAR...: bail out unless xedge-sandbox up printed each VAR (the
# ones of a cluster, XEDGE_C2S_2 and the like)
sandbox_need() {
	local k
	for k in "$@"; do
		[ -n "${!k:-}" ] || bail "xedge-sandbox printed no $k"
	done
}

# offer MECH...: restart the sandbox's xedge (same ports, same backends)
# offering only these SASL mechanisms (its config must have a sasl line, as
# --enable writes one); log_since: xedge's log since the last offer.
offer() {
	local list="" m f="$XE_SANDBOX_DIR_SB/offer-$1.conf"
	for m in "$@"; do list+="${list:+, }\"$m\""; done
	sed "s/^sasl = .*/sasl = { mechanisms = [ $list ]; };/" "$XEDGE_CONF" >"$f"
	grep -qF "sasl = { mechanisms = [ $list ]; };" "$f" || bail "no sasl line in $XEDGE_CONF"
	xedge_restart "$f"
	LOG_MARK=$(wc -l <"$XEDGE_LOG")
}
log_since() { tail -n +$((LOG_MARK + 1)) "$XEDGE_LOG"; }

# xedge_alive: status 0 if the xedge process still runs.
xedge_alive() { kill -0 "$XEDGE_PID" 2>/dev/null; }

# now_ms: monotonic-enough wall clock in milliseconds.
now_ms() { date +%s%3N; }

# unique_token: a message body no earlier run can have produced.
unique_token() { echo "$1-$$-$(date +%s%N)"; }
