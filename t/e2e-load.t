#!/bin/bash
# e2e-load.t: the load generator (contrib/bench/xedge-load) against the
# sandbox: 100 sessions (STARTTLS + SCRAM-SHA-256 + bind, from two source
# addresses) all log in and their messages all come back; Direct TLS + PLAIN
# too; a wrong password is counted as an auth failure. This checks the tool,
# not the speed (that is `make bench`, BENCHMARKS.md). Then the bench
# scripts' option parsing, and a half-minute contrib/bench/costs soak (its
# own sandbox): its churn, wrong passwords, FAST logins and inline
# resumptions all as expected.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 24

LOAD="$XE_TOP_BUILDDIR/contrib/bench/xedge-load"
[ -x "$LOAD" ] || bail "$LOAD not built"

# all the load comes from two addresses: lift the per-address limits
sandbox_up --log-level info \
	--conf 'limits = { max_connections_per_address = 0; connection_rate_per_address = 0; };'

PW="load-$RANDOM-$RANDOM"
for i in $(seq 0 99); do
	printf '{"jid":"load%d@example.test","password":"%s"}\n' "$i" "$PW"
done >"$XE_SANDBOX_DIR/users.json"
$XEDGECTL user import "$XE_SANDBOX_DIR/users.json" >"$XE_SANDBOX_DIR/import.out" 2>&1 \
	|| bail "xedgectl user import failed: $(cat "$XE_SANDBOX_DIR/import.out")"

val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | tail -n 1; }

# load ARGS...: sets OUT (stdout) and RC
load() {
	OUT=$(timeout -k 5 90 "$LOAD" --host "${XEDGE_C2S%:*}" --domain "$XEDGE_DOMAIN" \
		--cafile "$XEDGE_CERT" --user-format 'load%u' --password "$PW" --duration 60 \
		--login-timeout 30 "$@" 2>"$XE_SANDBOX_DIR/load.err")
	RC=$?
	diag "$(grep -E '^(LOGINS_OK|LOGINS_PER_S|LOGIN_P99_MS|MSG_SENT|MSG_RECEIVED|MSG_RTT_P99_US|ERRORS)=' <<<"$OUT" | tr '\n' ' ')"
	[ "$RC" = 0 ] || diag "$(tail -n 5 "$XE_SANDBOX_DIR/load.err")"
}

load --port "${XEDGE_C2S##*:}" --tls starttls --mech SCRAM-SHA-256 --sessions 100 \
	--concurrency 25 --sources 2 --hold 0.5 --msg-rate 400 --msg-duration 1 --msg-pairs
is "$RC" 0 "STARTTLS + SCRAM-SHA-256: exit status 0"
is "$(val LOGINS_OK)" 100 "all 100 sessions logged in"
is "$(val SESSIONS_HELD)" 100 "all 100 held until the end"
is "$(val ERRORS)" 0 "no errors"
sent=$(val MSG_SENT)
ok "$([ "${sent:-0}" -ge 200 ] && echo 0 || echo 1)" "messages were sent ($sent)"
is "$(val MSG_RECEIVED)" "$sent" "every message came back"
like "$(val MSG_RTT_P99_US)" '^[1-9][0-9]*$' "a round-trip p99 is reported"
like "$(printf '%s\n' "$OUT" | grep -c '^PHASE=')" '^3$' "the three phases are announced"

load --port "${XEDGE_DIRECT_TLS##*:}" --tls direct --mech PLAIN --sessions 20 \
	--msg-rate 100 --msg-duration 0.5
is "$RC/$(val LOGINS_OK)/$(val ERRORS)" "0/20/0" "Direct TLS + PLAIN: 20 sessions, no errors"
ok "$([ "$(val MSG_RECEIVED)" = "$(val MSG_SENT)" ] && [ "$(val MSG_SENT)" -gt 0 ] && echo 0 || echo 1)" \
	"Direct TLS: the messages came back"

PW_GOOD=$PW
PW=wrong-password
load --port "${XEDGE_C2S##*:}" --sessions 5 --login-timeout 10
PW=$PW_GOOD
is "$RC/$(val LOGINS_OK)/$(val ERRORS_AUTH_FAILED)" "1/0/5" "a wrong password: exit 1, 5 auth failures counted"
is "$(val WHY_AUTH_FAILED)" "not-authorized" "why the logins failed: the SASL failure's condition"

# --help documents every option the tool parses
missing=$(grep -o 'ARG("--[a-z-]*")\|"--[a-z-]*")' "$XE_TOP_SRCDIR/contrib/bench/xedge-load.c" |
	grep -o -- '--[a-z-]*' | sort -u | while read -r o; do
		"$LOAD" --help | grep -q -- "$o" || echo "$o"
	done)
is "$missing" "" "--help documents every option"

# the bench scripts parse their options (no server is started: argument parsing only)
COSTS="$XE_TOP_SRCDIR/contrib/bench/costs"
is "$(XE_COSTS_PARSE_ONLY=1 "$COSTS" logins --inflight 1,4,16,40,100 --strace 1,40 2>&1)" \
	"MODE=logins" "costs logins: its options parse"
XE_COSTS_PARSE_ONLY=1 "$COSTS" soak --minutes 0 >/dev/null 2>&1
is "$?" "2" "costs soak --minutes 0: a usage error"
XE_COSTS_PARSE_ONLY=1 "$COSTS" pump --rates 1000,x >/dev/null 2>&1
is "$?" "2" "costs pump --rates 1000,x: a usage error"
is "$(XE_COSTS_PARSE_ONLY=1 "$COSTS" soak --fast 2 --no-extras 2>&1)" "MODE=soak" \
	"costs soak --fast 2 --no-extras: its options parse"
XE_COSTS_PARSE_ONLY=1 "$COSTS" soak --fast 99 >/dev/null 2>&1
is "$?" "2" "costs soak --fast 99: a usage error"

# a short soak (its own sandbox): every kind of login it makes succeeds,
# and each batch has its references (the TLS floor, the load client's CPU)
SOAK=$XE_SANDBOX_DIR/soak
XEDGE_BUILDDIR=$XE_TOP_BUILDDIR timeout -k 10 400 "$COSTS" soak --minutes 0.5 --rate 5 \
	--sample 5 --fast 1 --dir "$SOAK" >"$SOAK.out" 2>"$SOAK.err"
is "$?" 0 "costs soak --minutes 0.5: exit status 0"
[ -s "$SOAK.out" ] || diag "$(tail -n 5 "$SOAK.err")"
like "$(cat "$SOAK.out")" 'batches; xedge alive at the end' "costs soak: xedge alive at the end"
like "$(grep '^logins:' "$SOAK.out")" '^logins: [1-9][0-9]* succeeded, 0 failed; wrong passwords refused: ([1-9][0-9]*) of \1$' \
	"costs soak: the churn's logins all succeeded, every wrong password refused"
like "$(grep '^SASL2 + FAST' "$SOAK.out")" 'FAST logins: ([1-9][0-9]*) of \1; stream-management resumptions: ([1-9][0-9]*) of \2$' \
	"costs soak: every FAST login and every inline resumption succeeded"
bad=$(awk -F'\t' '/^batch\t/ { for (i = 1; i <= NF; i++) c[$i] = i; next }
	/^[0-9]/ { if (!($(c["floor_ms"]) > 0) || !($(c["client_ms_login"]) > 0) ||
		$(c["sessions"]) != 0 || $(c["lmdb_pages"]) !~ /^[1-9]/) print "batch " $1 }' "$SOAK/soak.tsv")
ok "$([ -z "$bad" ] && [ "$(grep -c '^[0-9]' "$SOAK/soak.tsv")" -ge 1 ] && echo 0 || echo 1)" \
	"costs soak: each batch has its floor, the client's CPU, no session left, LMDB pages ($bad)"
is "$(XE_PLOTS_PARSE_ONLY=1 "$XE_TOP_SRCDIR/contrib/bench/plots" /nonexistent)" "DIR=/nonexistent" \
	"plots: its argument parses"
