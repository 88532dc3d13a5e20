#!/bin/bash
# e2e-load.t: the load generator (contrib/bench/xedge-load) against the
# sandbox: 100 sessions (STARTTLS + SCRAM-SHA-256 + bind, from two source
# addresses) all log in and their messages all come back; Direct TLS + PLAIN
# too; a wrong password is counted as an auth failure; the re-login mode
# (SASL2 + a FAST token, then TLS resumption + FAST: --fast, --relogin),
# across a restart of xedge with tls.ticket_key_file (the reconnect storm),
# and a revoked token's re-login listed as failed. This checks the tool,
# not the speed (that is `make bench`, BENCHMARKS.md). Then the bench
# scripts' option parsing, and a half-minute contrib/bench/costs soak (its
# own sandbox): its churn, wrong passwords, FAST logins and inline
# resumptions all as expected.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 34

LOAD="$XE_TOP_BUILDDIR/contrib/bench/xedge-load"
[ -x "$LOAD" ] || bail "$LOAD not built"

# all the load comes from two addresses: lift the per-address limits
sandbox_up --log-level info --conf 'sasl2 = { enabled = true; };' \
	--conf 'limits = { max_connections_per_address = 0; connection_rate_per_address = 0; };'

PW="load-$RANDOM-$RANDOM"
users_import load 100 "$PW"

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

# ---- re-logins: SASL2 SCRAM with a token request, then resumption + FAST
DT=(--port "${XEDGE_DIRECT_TLS##*:}" --tls direct --mech SCRAM-SHA-256)
load "${DT[@]}" --fast HT-SHA-256-NONE --sessions 20 --concurrency 10 --close-after-login \
	--relogin 0.2
is "$RC/$(val FIRST_LOGINS_OK)/$(val LOGINS_OK)/$(val ERRORS)" "0/20/20/0" \
	"--fast HT-SHA-256-NONE --relogin: 20 first logins, 20 re-logins, no errors"
is "$(val RELOGINS_RESUMED)" 20 "every re-login resumed its TLS session"
is "$(grep -c "event=auth-ok.*mech=HT-SHA-256-NONE path=fast" "$XEDGE_LOG")" 20 "xedge logged 20 FAST logins"
load "${DT[@]}" --fast HT-SHA-256-EXPR --sessions 5 --close-after-login --relogin 0.1
is "$RC/$(val LOGINS_OK)/$(val RELOGINS_RESUMED)" "0/5/5" \
	"HT-SHA-256-EXPR (the exporter binding): 5 re-logins, resumed"

# bgload ARGS...: xedge-load in the background (its pid in BG), until hold_done
bgload() {
	"$LOAD" --host "${XEDGE_C2S%:*}" --domain "$XEDGE_DOMAIN" --cafile "$XEDGE_CERT" \
		--user-format 'load%u' --password "$PW" --duration 60 --login-timeout 20 "$@" \
		>"$XE_SANDBOX_DIR/bg.out" 2>"$XE_SANDBOX_DIR/bg.err" &
	BG=$!
	for _ in $(seq 1 300); do
		grep -q '^PHASE=hold_done' "$XE_SANDBOX_DIR/bg.out" && return 0
		kill -0 "$BG" 2>/dev/null || break
		sleep 0.1
	done
	diag "$(tail -n 5 "$XE_SANDBOX_DIR/bg.err")"
	return 1
}
bgwait() {
	kill -USR1 "$BG"
	wait "$BG"
	RC=$?
	OUT=$(cat "$XE_SANDBOX_DIR/bg.out")
	diag "$(grep -E '^(LOGINS_OK|RELOGINS_RESUMED|SESSIONS_LOST|ERRORS)=' <<<"$OUT" | tr '\n' ' ')"
}

# the storm: sessions held (Bind2), xedge restarted with the same ticket keys
(umask 077 && openssl rand 80 >"$XE_SANDBOX_DIR/tk")
{ cat "$XEDGE_CONF"; echo "tls = { ticket_key_file = \"$XE_SANDBOX_DIR/tk\"; };"; } \
	>"$XE_SANDBOX_DIR/keys.conf"
xedge_restart "$XE_SANDBOX_DIR/keys.conf"
bgload "${DT[@]}" --fast HT-SHA-256-NONE --bind2 --sessions 30 --relogin signal
is "$?" 0 "30 sessions logged in with Bind2 and held"
xedge_restart "$XE_SANDBOX_DIR/keys.conf"
bgwait
is "$RC/$(val SESSIONS_LOST)/$(val LOGINS_OK)/$(val ERRORS)" "0/30/30/0" \
	"after the restart: the 30 closed by it are not failures, and all 30 are back"
is "$(val RELOGINS_RESUMED)" 30 "every reconnect resumed (tls.ticket_key_file kept the keys)"

# a failed re-login is counted and listed with why: three users' tokens revoked
bgload "${DT[@]}" --fast HT-SHA-256-NONE --sessions 10 --close-after-login --relogin signal
is "$?" 0 "10 first logins"
for i in 0 1 2; do $XEDGECTL user tokens revoke "load$i@example.test" >/dev/null 2>&1; done
bgwait
is "$RC/$(val FIRST_LOGINS_OK)/$(val LOGINS_OK)/$(val ERRORS_AUTH_FAILED)" "1/10/7/3" \
	"revoked tokens: exit 1, 7 re-logins, 3 auth failures"
is "$(grep -c '^RELOGIN_FAIL=session [012]: auth_failed: not-authorized' <<<"$OUT")" 3 \
	"each failed re-login listed with its reason"

# --help documents every option the tool parses
missing=$(grep -o 'ARG("--[a-z-]*")\|"--[a-z-]*")' "$XE_TOP_SRCDIR/contrib/bench/xedge-load-opts.c" |
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
