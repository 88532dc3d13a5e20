# t/lib/fed.sh: sourced by the federation tests (t/e2e-s2s-*.t), after
# t/lib/sandbox.sh (its TAP helpers). Several servers in one test: xedge
# sandboxes for a.test and b.test on their own loopback addresses, a plain
# Prosody (t/lib/plain_prosody.sh), a DNS server (t/lib/dns.sh), a test CA
# (t/lib/testca.sh); everything is stopped by PID and removed on exit.
#
#   . "${XE_TOP_SRCDIR:-...}/t/lib/sandbox.sh"; . "$XE_TOP_SRCDIR/t/lib/fed.sh"
#   fed_init
#   fed_ports a; fed_ports b                  # A_BASE, A_S2S; B_BASE, B_S2S
#   fed_sandbox a a.test 127.0.0.11 --user alice@a.test=pw --peer b.test=127.0.0.12:$B_S2S
#   fed_sandbox b b.test 127.0.0.12 --user bob@b.test=pw --peer a.test=127.0.0.11:$A_S2S
#   fed_chat alice@a.test pw a bob@b.test pw b
#   is "$RC" 0 "messages both ways"
#
# fed_sandbox NAME DOMAIN ADDR ARGS...: xedge-sandbox up FED_DIR/NAME with
# --s2s-port NAME_S2S (from fed_ports), and sets NAME_XEDGE_* (upper-case
# NAME: A_XEDGE_C2S, A_XEDGE_LOG, A_XEDGE_CERT, A_XEDGE_S2S, ...) from the
# lines it prints, and NAME_DIR, NAME_CAFILE (the CA file clients trust: its
# XEDGE_CERT, or FED_CA/ca.pem when --cert is given).
# shellcheck disable=SC2034 # the variables are for the tests

FED_TESTCA="$XE_TOP_SRCDIR/t/lib/testca.sh"
FED_DNS_SH="$XE_TOP_SRCDIR/t/lib/dns.sh"
FED_PLAIN="$XE_TOP_SRCDIR/t/lib/plain_prosody.sh"
FED_CHAT="$XE_TOP_SRCDIR/t/lib/fed_chat.py"
FED_SEND="$XE_TOP_SRCDIR/t/lib/fed_send.py"
FED_JABBERD2="$XE_TOP_SRCDIR/t/lib/fed_jabberd2.sh"
FED_EJABBERD="$XE_TOP_SRCDIR/t/lib/fed_ejabberd.sh"
S2S_PEER="$XE_TOP_SRCDIR/t/lib/s2s_peer.py"
_fed_sandboxes=()
_fed_plains=()
_fed_jabberd2s=()
_fed_ejabberds=()
_fed_pids=()
_fed_dns=

_fed_cleanup() {
	local rc=$? s f
	if [ "$_tap_failed" -gt 0 ] || [ $rc -ne 0 ]; then
		for s in "${_fed_sandboxes[@]}"; do
			f=$FED_DIR/$s/xedge.log
			[ -f "$f" ] && diag "last lines of $s's xedge log ($f):" "$(tail -n 40 "$f" | sed 's/^/  /')"
			f=$FED_DIR/$s/prosody-0/prosody.log
			[ -f "$f" ] && diag "$s's backend Prosody, its s2s lines ($f):" \
				"$(grep -E 's2s|xedge|dialback' "$f" | tail -n 20 | sed 's/^/  /')"
		done
	fi
	for s in "${_fed_pids[@]}"; do
		kill -0 "$s" 2>/dev/null && kill -TERM "$s" 2>/dev/null
	done
	for s in "${_fed_sandboxes[@]}"; do
		[ -e "$FED_DIR/$s/pids" ] && timeout 30 "$SANDBOX" down "$FED_DIR/$s" >/dev/null 2>&1
	done
	for s in "${_fed_ejabberds[@]}"; do
		[ -e "$FED_DIR/$s/session" ] && "$FED_EJABBERD" stop "$FED_DIR/$s" >/dev/null 2>&1
	done
	for s in "${_fed_jabberd2s[@]}"; do
		[ -e "$FED_DIR/$s/pids" ] && "$FED_JABBERD2" stop "$FED_DIR/$s" >/dev/null 2>&1
	done
	for s in "${_fed_plains[@]}"; do
		[ -e "$FED_DIR/$s/pid" ] && "$FED_PLAIN" stop "$FED_DIR/$s" >/dev/null 2>&1
	done
	[ -n "$_fed_dns" ] && [ -e "$FED_DIR/dns/dnsmasq.pid" ] && "$FED_DNS_SH" stop "$FED_DIR/dns" >/dev/null 2>&1
	(exit $rc)
	_sandbox_cleanup # TAP accounting, removes XE_SANDBOX_DIR (= FED_DIR), exits
}

fed_init() {
	FED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-s2s.XXXXXX") || bail "mktemp failed"
	XE_SANDBOX_DIR=$FED_DIR
	export XE_SANDBOX_DIR FED_DIR
	trap _fed_cleanup EXIT
	trap 'exit 130' INT TERM
}

# fed_track PID: a background helper of the test, stopped (by PID) on exit
fed_track() { _fed_pids+=("$1"); }

# fed_ca DOMAIN...: the test CA (FED_CA/ca.pem) and DOMAIN.pem/.key for each
fed_ca() {
	FED_CA=$FED_DIR/ca
	"$FED_TESTCA" "$FED_CA" "$@" >/dev/null 2>"$FED_DIR/testca.err" ||
		bail "testca.sh failed: $(tail -n 5 "$FED_DIR/testca.err")"
}

# fed_ports NAME: NAME_BASE (a free range base..base+14, and base+40, the
# backend Prosody's s2s port) and NAME_S2S = base+5 (the s2s listener; the
# sandbox puts s2s_backend on base+6)
_fed_base() {
	local base
	for _ in $(seq 1 20); do
		base=$(pick_base_port) || return 1
		_port_free $((base + 40)) && { echo "$base"; return 0; }
	done
	return 1
}
fed_ports() {
	local up base
	up=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
	base=$(_fed_base) || bail "no free port range found"
	printf -v "${up}_BASE" '%s' "$base"
	printf -v "${up}_S2S" '%s' $((base + 5))
}

# fed_sandbox NAME DOMAIN ADDR ARGS...: see the top of this file
fed_sandbox() {
	local name=$1 domain=$2 addr=$3 up dir line key val rc a cafile=""
	shift 3
	[ -x "$SANDBOX" ] || bail "no sandbox script at $SANDBOX"
	[ -n "${XE_SANDBOX:-}" ] || [ -x "$XE_TOP_BUILDDIR/src/xedge" ] || bail "xedge not built in $XE_TOP_BUILDDIR/src"
	up=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
	local base=${up}_BASE s2s=${up}_S2S
	[ -n "${!base:-}" ] || fed_ports "$name"
	dir=$FED_DIR/$name
	for a in "$@"; do [ "$a" = --cert ] && cafile=$FED_CA/ca.pem; done
	_fed_sandboxes+=("$name")
	local try
	for try in 1 2 3; do
		timeout -k 5 90 "$SANDBOX" up "$dir" --domain "$domain" --address "$addr" --base-port "${!base}" \
			--s2s-port "${!s2s}" --conf 'lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 0; };' \
			"$@" >"$FED_DIR/$name.up.out" 2>"$FED_DIR/$name.up.err"
		rc=$?
		[ $rc -eq 0 ] && break
		# a port taken between the check and the bind: another base (the
		# s2s port, which peers may already know, stays)
		grep -qi 'already in use\|EADDRINUSE' "$FED_DIR/$name.up.err" "$dir"/*.log "$dir"/*/*.log \
			"$dir"/*/console.out 2>/dev/null || break
		[ $try = 3 ] && break
		timeout 30 "$SANDBOX" down "$dir" >/dev/null 2>&1
		rm -rf "$dir"
		printf -v "${up}_BASE" '%s' "$(_fed_base)"
	done
	if [ $rc -ne 0 ]; then
		diag "xedge-sandbox up $name ($domain on $addr) failed (status $rc):" \
			"$(tail -n 30 "$FED_DIR/$name.up.err" | sed 's/^/  /')"
		local f
		for f in "$dir"/*.log "$dir"/*/*.log; do
			[ -f "$f" ] && diag "--- $f" "$(tail -n 15 "$f" | sed 's/^/  /')"
		done
		bail "sandbox $name did not start"
	fi
	while IFS= read -r line; do
		case $line in XEDGE*=*) ;; *) continue ;; esac
		key=${line%%=*}
		val=${line#*=}
		case $key in *[!A-Z0-9_]*) continue ;; esac
		printf -v "${up}_$key" '%s' "$val"
	done <"$FED_DIR/$name.up.out"
	printf -v "${up}_DIR" '%s' "$dir"
	key=${up}_XEDGE_CERT
	printf -v "${up}_CAFILE" '%s' "${cafile:-${!key:-}}"
	for key in XEDGE_C2S XEDGE_LOG XEDGE_S2S; do
		val=${up}_$key
		[ -n "${!val:-}" ] || bail "xedge-sandbox up $name printed no $key (output: $(tr '\n' ' ' <"$FED_DIR/$name.up.out"))"
	done
	val=${up}_XEDGE_S2S
	diag "sandbox $name: $domain c2s=$(v=${up}_XEDGE_C2S; echo "${!v}") s2s=${!val} dir=$dir"
}

# fed_dns RECORD...: dnsmasq (t/lib/dns.sh records) on 127.0.0.10:PORT; FED_DNS=ADDR:PORT
fed_dns() {
	local port
	for _ in $(seq 1 20); do
		port=$(pick_base_port) || bail "no free port found"
		ss -Huan "( sport = :$port )" 2>/dev/null | grep -q . || break
	done
	_fed_dns=1
	"$FED_DNS_SH" start "$FED_DIR/dns" 127.0.0.10 "$port" "$@" >/dev/null 2>"$FED_DIR/dns.err" ||
		bail "dns.sh failed: $(tail -n 5 "$FED_DIR/dns.err")"
	FED_DNS=127.0.0.10:$port
}

# fed_plain NAME ARGS...: plain_prosody.sh start FED_DIR/NAME ARGS...; NAME_DIR
fed_plain() {
	local name=$1 up
	shift
	up=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
	_fed_plains+=("$name")
	"$FED_PLAIN" start "$FED_DIR/$name" "$@" >/dev/null 2>"$FED_DIR/$name.err" ||
		bail "plain Prosody $name did not start: $(tail -n 15 "$FED_DIR/$name.err")"
	printf -v "${up}_DIR" '%s' "$FED_DIR/$name"
}

# fed_jabberd2 NAME ARGS...: fed_jabberd2.sh start FED_DIR/NAME ARGS... (a
# plain jabberd2 as a peer; stopped on exit); NAME_DIR
fed_jabberd2() {
	local name=$1 up
	shift
	up=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
	_fed_jabberd2s+=("$name")
	"$FED_JABBERD2" start "$FED_DIR/$name" "$@" >/dev/null 2>"$FED_DIR/$name.err" ||
		bail "jabberd2 $name did not start: $(tail -n 15 "$FED_DIR/$name.err")"
	printf -v "${up}_DIR" '%s' "$FED_DIR/$name"
}

# fed_ejabberd NAME ARGS...: fed_ejabberd.sh start FED_DIR/NAME ARGS... (a
# plain ejabberd as a peer; stopped on exit); NAME_DIR
fed_ejabberd() {
	local name=$1 up
	shift
	up=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
	_fed_ejabberds+=("$name")
	"$FED_EJABBERD" start "$FED_DIR/$name" "$@" >/dev/null 2>"$FED_DIR/$name.err" ||
		bail "ejabberd $name did not start: $(tail -n 15 "$FED_DIR/$name.err")"
	printf -v "${up}_DIR" '%s' "$FED_DIR/$name"
}

# fed_send JID PW SERVER CAFILE ARGS...: fed_send.py (--to JID: a bounce
# expected, --echo JID: an echo); sets OUT, RC
fed_send() {
	OUT=$(timeout -k 2 60 "$PY" "$FED_SEND" --jid "$1" --password "$2" --server "$3" \
		--cafile "$4" "${@:5}" 2>"$FED_DIR/send.err")
	RC=$?
	diag "fed_send.py ${*:5}" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$FED_DIR/send.err" ] && diag "  stderr:" "$(tail -n 10 "$FED_DIR/send.err" | sed 's/^/    /')"
	return 0
}

# fed_chat JID_A PW_A SERVER_A CAFILE_A JID_B PW_B SERVER_B CAFILE_B [TIMEOUT]:
# fed_chat.py; sets OUT, RC, RESULT
fed_chat() {
	local t=${9:-20}
	OUT=$(timeout -k 2 $((${t%.*} + 20)) "$PY" "$FED_CHAT" --a "$1" --a-password "$2" --a-server "$3" \
		--a-cafile "$4" --b "$5" --b-password "$6" --b-server "$7" --b-cafile "$8" --timeout "$t" \
		2>"$FED_DIR/chat.err")
	RC=$?
	RESULT=$(printf '%s\n' "$OUT" | grep '^RESULT=' | tail -n 1)
	diag "fed_chat $1 <-> $5" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$FED_DIR/chat.err" ] && diag "  stderr:" "$(tail -n 10 "$FED_DIR/chat.err" | sed 's/^/    /')"
	return 0
}

# s2s_peer ARGS...: t/lib/s2s_peer.py; sets OUT, RC
s2s_peer() {
	OUT=$(timeout -k 2 60 "$PY" "$S2S_PEER" "$@" 2>"$FED_DIR/peer.err")
	RC=$?
	diag "s2s_peer.py ${*: -1}" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$FED_DIR/peer.err" ] && diag "  stderr:" "$(tail -n 10 "$FED_DIR/peer.err" | sed 's/^/    /')"
	return 0
}

# count_lines FILE REGEX: how many lines of FILE match (grep -E)
count_lines() { grep -cE -- "$2" "$1" 2>/dev/null || true; }
