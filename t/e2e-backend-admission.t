#!/bin/bash
# e2e-backend-admission.t: admission control of backend logins (issue 18,
# the reconnect storm) with a real Prosody: with pools[].max_pending_logins
# = 4, 200 concurrent logins all succeed, the metrics never show more than
# 4 logins in progress at the server, some waited in its queue, and the
# server is never marked down; with Prosody stopped (SIGSTOP) and
# max_queued_logins = 2, logins beyond the queue get <resource-constraint/>
# at once and a log line, a held session is unharmed, and clients that
# disconnect while queued leave the queue (the gauges back to 0); a login
# queued until the client's login deadline gets <connection-timeout/>.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 21

LOAD="$XE_TOP_BUILDDIR/contrib/bench/xedge-load"
[ -x "$LOAD" ] || bail "$LOAD not built"

sandbox_up --log-level info \
	--conf 'limits = { max_connections_per_address = 0; connection_rate_per_address = 0; };'
SB=$XE_SANDBOX_DIR
PW="adm-$RANDOM-$RANDOM"
users_import adm 200 "$PW"
PROSODY_PID=${XEDGE_BACKEND_PIDS%%,*}

# conf_caps PENDING QUEUED: the sandbox's configuration with these caps
conf_caps() {
	sed "s#secret_file = \"\\([^\"]*\\)\";#secret_file = \"\\1\"; max_pending_logins = $1; max_queued_logins = $2;#" \
		"$XEDGE_CONF" >"$SB/caps-$1-$2.conf"
	grep -q "max_pending_logins = $1;" "$SB/caps-$1-$2.conf" || bail "cannot set the caps"
	xedge_restart "$SB/caps-$1-$2.conf"
}
gauge() { # gauge NAME: its value for prosody-0 (empty: none)
	curl -s --max-time 2 "$XEDGE_METRICS" | sed -n "s/^$1{pool=\"main\",backend=\"prosody-0\"} //p"
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | tail -n 1; }

# 1. 200 concurrent logins through a cap of 4.
conf_caps 4 4096
LOG_MARK=$(wc -l <"$XEDGE_LOG")
(
	while :; do
		curl -s --max-time 2 "$XEDGE_METRICS" \
			| grep -E '^xedge_backend_(pending|queued)_logins\{pool="main",backend="prosody-0"\}'
		sleep 0.02
	done
) >"$SB/samples" 2>/dev/null &
SAMPLER=$!
OUT=$(timeout -k 5 120 "$LOAD" --host "${XEDGE_C2S%:*}" --port "${XEDGE_C2S##*:}" \
	--domain "$XEDGE_DOMAIN" --cafile "$XEDGE_CERT" --tls starttls --mech PLAIN \
	--user-format 'adm%u' --password "$PW" --sessions 200 --concurrency 200 \
	--login-timeout 60 --duration 90 2>"$SB/load.err")
RC=$?
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
diag "$(grep -E '^(LOGINS_OK|LOGINS_PER_S|LOGIN_P99_MS|ERRORS)=' <<<"$OUT" | tr '\n' ' ')"
is "$RC/$(val LOGINS_OK)/$(val ERRORS)" "0/200/0" "200 concurrent logins through max_pending_logins = 4: all succeed"
peak_p=$(sed -n 's/^xedge_backend_pending_logins{[^}]*} //p' "$SB/samples" | sort -n | tail -n 1)
peak_q=$(sed -n 's/^xedge_backend_queued_logins{[^}]*} //p' "$SB/samples" | sort -n | tail -n 1)
n_samples=$(grep -c pending "$SB/samples")
diag "samples=$n_samples peak pending=$peak_p peak queued=$peak_q"
ok "$([ "${n_samples:-0}" -ge 5 ] && echo 0 || echo 1)" "the metrics were sampled during the run ($n_samples)"
ok "$([ -n "$peak_p" ] && [ "$peak_p" -le 4 ] && [ "$peak_p" -ge 1 ] && echo 0 || echo 1)" \
	"the pending gauge never exceeded 4 (peak $peak_p)"
ok "$([ -n "$peak_q" ] && [ "$peak_q" -ge 1 ] && echo 0 || echo 1)" \
	"logins waited in the queue (peak $peak_q)"
log_since | grep -q 'event=backend-down'
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "the server was never marked down"
log_since | grep -q 'event=backend-failed'
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "no backend login failed"
is "$(gauge xedge_backend_up)" 1 "xedge_backend_up is 1"
is "$(gauge xedge_backend_pending_logins)/$(gauge xedge_backend_queued_logins)" "0/0" \
	"after the run: nothing pending, nothing queued"

# 2. The queue's bound: Prosody stopped, 1 login in progress, 2 queued,
# the rest refused at once.
conf_caps 1 2
LOG_MARK=$(wc -l <"$XEDGE_LOG")
# a session that runs before and during the overflow
timeout -k 5 60 "$LOAD" --host "${XEDGE_C2S%:*}" --port "${XEDGE_C2S##*:}" \
	--domain "$XEDGE_DOMAIN" --cafile "$XEDGE_CERT" --tls starttls --mech PLAIN \
	--user-format 'adm%u' --user-offset 199 --password "$PW" --sessions 1 --hold 15 \
	--msg-rate 0 --duration 40 >"$SB/held.out" 2>"$SB/held.err" &
HELD=$!
for _ in $(seq 1 100); do
	[ "$(curl -s --max-time 2 "$XEDGE_METRICS" | sed -n 's/^xedge_backend_sessions{pool="main",backend="prosody-0"} //p')" = 1 ] && break
	sleep 0.1
done
kill -STOP "$PROSODY_PID"
timeout -k 2 30 "$LOAD" --host "${XEDGE_C2S%:*}" --port "${XEDGE_C2S##*:}" \
	--domain "$XEDGE_DOMAIN" --cafile "$XEDGE_CERT" --tls starttls --mech PLAIN \
	--user-format 'adm%u' --password "$PW" --sessions 3 --concurrency 3 \
	--login-timeout 25 --duration 30 >"$SB/queued.out" 2>"$SB/queued.err" &
QUEUED=$!
for _ in $(seq 1 100); do
	[ "$(gauge xedge_backend_queued_logins)" = 2 ] && break
	sleep 0.1
done
is "$(gauge xedge_backend_pending_logins)/$(gauge xedge_backend_queued_logins)" "1/2" \
	"Prosody stopped: 1 login in progress, 2 queued"
raw --jid adm10@example.test --password "$PW" --mech PLAIN --timeout 10
is "$(result condition)" "resource-constraint" "a login beyond the queue: <resource-constraint/>"
like "$OUT" 'the.service.is.busy' "with a text that says why"
log_since | grep -q 'event=backend-queue-full .*backend=prosody-0 .*max_queued_logins=2'
ok $? "xedge logs event=backend-queue-full"
refused=$(curl -s "$XEDGE_METRICS" | sed -n 's/^xedge_backend_queue_refused_total{pool="main",backend="prosody-0"} //p')
is "$refused" 1 "xedge_backend_queue_refused_total counts it"
# the clients waiting in the queue go away
kill -TERM "$QUEUED" 2>/dev/null
wait "$QUEUED" 2>/dev/null
for _ in $(seq 1 50); do
	[ "$(gauge xedge_backend_queued_logins)" = 0 ] && break
	sleep 0.1
done
is "$(gauge xedge_backend_queued_logins)" 0 "clients that disconnected while queued left the queue (gauge 0)"
is "$(gauge xedge_backend_pending_logins)" 0 "and the one in progress gave its slot back"
kill -CONT "$PROSODY_PID"
ok "$(xedge_alive && echo 0 || echo 1)" "xedge is alive"
wait "$HELD" 2>/dev/null
grep -q '^SESSIONS_HELD=1' "$SB/held.out"
ok $? "the session that ran meanwhile was held to the end"
raw --jid adm11@example.test --password "$PW" --mech PLAIN --timeout 10
is "$(result RESULT)" "ok" "Prosody back: a new login succeeds"

# 3. A login queued until the client's login deadline (timeouts.auth 3 s):
# <connection-timeout/>, event=backend-queue-timeout, the queue empty again.
sed "s#secret_file = \"\([^\"]*\)\";#secret_file = \"\1\"; max_pending_logins = 1; max_queued_logins = 2;#" \
	"$XEDGE_CONF" >"$SB/deadline.conf"
printf 'timeouts = { auth = 3; backend_connect = 1; backend_handshake = 30; };\n' >>"$SB/deadline.conf"
xedge_restart "$SB/deadline.conf"
LOG_MARK=$(wc -l <"$XEDGE_LOG")
kill -STOP "$PROSODY_PID"
timeout -k 2 12 "$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --mode starttls --cafile "$XEDGE_CERT" \
	--jid adm20@example.test --password "$PW" --mech PLAIN --timeout 10 \
	>"$SB/first.out" 2>&1 &
FIRST=$!
for _ in $(seq 1 50); do
	[ "$(gauge xedge_backend_pending_logins)" = 1 ] && break
	sleep 0.1
done
raw --jid adm21@example.test --password "$PW" --mech PLAIN --timeout 10
is "$(result condition)" "connection-timeout" "a login queued until the login deadline: <connection-timeout/>"
log_since | grep -q 'event=backend-queue-timeout .*backend=prosody-0 .*waited_ms='
ok $? "xedge logs event=backend-queue-timeout"
kill "$FIRST" 2>/dev/null
wait "$FIRST" 2>/dev/null
kill -CONT "$PROSODY_PID"
for _ in $(seq 1 50); do
	[ "$(gauge xedge_backend_pending_logins)/$(gauge xedge_backend_queued_logins)" = 0/0 ] && break
	sleep 0.1
done
is "$(gauge xedge_backend_pending_logins)/$(gauge xedge_backend_queued_logins)" "0/0" \
	"then nothing pending, nothing queued"
