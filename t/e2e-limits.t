#!/bin/bash
# e2e-limits.t: what a stranger can make xedge hold, and what one stranger
# costs everybody else. While hostile clients run from 127.0.0.1, a logged-in
# user (the canary, from 127.0.0.2) keeps exchanging messages through xedge;
# it must lose nothing and stay fast.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 33

rss_is_honest
PW="lim-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW" \
	--conf 'limits = { max_connections_per_address = 50; connection_rate_per_address = 0; max_sasl_bytes = 2048; };' \
	--conf 'timeouts = { preauth_idle = 4; auth = 6; };'
SB=$XE_SANDBOX_DIR_SB
H="$XE_TOP_SRCDIR/t/lib/hostile.py"
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$XEDGE_PID/status"; }
hostile() { OUT=$(timeout 120 "$PY" "$H" "$XEDGE_C2S" "$@" 2>&1); diag "$OUT"; }

# the canary, from another address
timeout 300 "$PY" "$XE_TOP_SRCDIR/t/lib/canary.py" "$XEDGE_C2S" "$XEDGE_CERT" \
	alice@example.test "$PW" 127.0.0.2 "$SB/canary.stop" "$SB/canary.out" >"$SB/canary.err" 2>&1 &
CANARY=$!
for _ in $(seq 1 200); do grep -q READY "$SB/canary.out" 2>/dev/null && break; sleep 0.05; done
grep -q READY "$SB/canary.out" 2>/dev/null
ok $? "the canary is logged in from 127.0.0.2"
rss0=$(rss)

# 5,000 idle unauthenticated connections from one address
hostile idle-flood 5000 8
is "$(val HELD)" 50 "idle flood: xedge holds exactly max_connections_per_address=50 of them"
is "$(val CLOSED_AT_ONCE)" "$(($(val ATTEMPTED) - 50))" \
	"idle flood: the other $(($(val ATTEMPTED) - 50)) of $(val ATTEMPTED) are closed at once"
is "$(val HELD_ENDED)" 50 "idle flood: the held ones are ended after preauth_idle"
is "$(val HELD_ERRORS)" "connection-timeout:50" "idle flood: each with <connection-timeout/>"
grep -q 'event=connection-refused reason=max_connections_per_address address=127.0.0.1' "$XEDGE_LOG"
ok $? "idle flood: refusals are logged (once a second at most)"
refusal_lines=$(grep -c 'event=connection-refused' "$XEDGE_LOG")
ok "$([ "$refusal_lines" -le 20 ] && echo 0 || echo 1)" "idle flood: ... in $refusal_lines lines, not thousands"
rss1=$(rss)
ok "$([ $((rss1 - rss0)) -lt 32768 ] && echo 0 || echo 1)" "idle flood: xedge's RSS grew by $((rss1 - rss0)) KiB (bound 32 MiB)"

# a client sending one byte a second
hostile slow-client
is "$(val ERROR)" "connection-timeout" "slow client: <connection-timeout/>"
is "$(val TEXT)" "authentication_took_too_long" "slow client: ended by the authentication deadline"
ok "$(awk -v t="$(val ENDED_AFTER_S)" 'BEGIN {exit !(t >= 5 && t < 10)}' && echo 0 || echo 1)" \
	"slow client: after ~6 s ($(val ENDED_AFTER_S) s), not before, not much later"

# a thousand failed logins
hostile failed-logins 1000 bob@example.test "$XEDGE_CERT"
is "$(val ATTEMPTS)" 1000 "a thousand failed logins ($(val ELAPSED_S) s)"
is "$(val RESULTS)" "not-authorized:1000" "each answered <not-authorized/>"

# oversized and malformed input before authentication
hostile stanza $((10 * 1024 * 1024))
is "$(val ERROR)" "policy-violation" "a 10 MiB element before authentication: <policy-violation/>"
is "$(val CLOSED)" "yes" "... and the stream is closed"
hostile nesting 100
is "$(val ERROR)" "policy-violation" "100 nested elements: <policy-violation/>"
hostile bytes 3c61003e
is "$(val ERROR)" "not-well-formed" "a NUL byte: <not-well-formed/>"
hostile bytes 3cc3283e
is "$(val ERROR)" "not-well-formed" "invalid UTF-8 in a name: <not-well-formed/>"
hostile bytes 3c613e3c623e
ok "$([ "$(val CLOSED)" = no ] || [ "$(val ERROR)" = connection-timeout ] && echo 0 || echo 1)" \
	"unclosed tags: nothing to answer until the idle timeout ($(val ERROR))"
OUT=$(timeout 60 "$PY" "$H" "$XEDGE_DIRECT_TLS" tls-garbage 2>&1)
is "$(val CLOSED)" "yes" "random bytes to the Direct TLS port: closed"
OUT=$(timeout 60 "$PY" "$H" "$XEDGE_DIRECT_TLS" tls-garbage 2>&1)
is "$(val CLOSED)" "yes" "... again (no state left behind)"

# a 10 MiB stanza after authentication (limits.max_stanza_postauth, 256 KiB)
hostile postauth-stanza "$XEDGE_CERT" bob@example.test "$PW" $((10 * 1024 * 1024))
is "$(val ERROR)/$(val CLOSED)" "policy-violation/yes" "a 10 MiB stanza after authentication: <policy-violation/>, closed"
like "$(grep 'event=limit ' "$XEDGE_LOG" | tail -n 1)" 'jid=bob@example\.test limit=max_stanza_postauth bytes=' \
	"... logged as event=limit"

# bad SASL framing (through the raw client, which speaks TLS)
hostile sasl-bad-base64 "$XEDGE_CERT"
is "$(val FAILURE)" "incorrect-encoding" "bad base64 in <auth/>: <incorrect-encoding/>"
hostile sasl-bad-mechanism "$XEDGE_CERT"
is "$(val FAILURE)" "invalid-mechanism" "a mechanism name outside RFC 4422's alphabet: <invalid-mechanism/>"
grep 'event=auth-failed' "$XEDGE_LOG" | grep -q 'user=root'
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "... and what it carried did not reach the log as fields"
hostile sasl-oversized "$XEDGE_CERT" 4096
is "$(val FAILURE)" "malformed-request" "a SASL message over max_sasl_bytes (2048): <malformed-request/>"

# after all that
xedge_alive
ok $? "xedge is still running"
client --jid bob@example.test --password "$PW"
is "$RC" 0 "a normal login from 127.0.0.1 works again"
touch "$SB/canary.stop"
wait "$CANARY"
diag "canary: $(tr '\n' ' ' <"$SB/canary.out")" "$(cat "$SB/canary.err")"
cval() { sed -n "s/^$1=//p" "$SB/canary.out"; }
is "$(cval ERROR)" "none" "the canary's session survived everything"
ok "$([ "$(cval SENT)" -ge 20 ] && [ "$(cval SENT)" = "$(cval RECEIVED)" ] && echo 0 || echo 1)" \
	"the canary got every one of its $(cval SENT) messages back"
ok "$(awk -v t="$(cval MAX_RTT_MS)" 'BEGIN {exit !(t > 0 && t < 2000)}' && echo 0 || echo 1)" \
	"the canary's slowest round trip: $(cval MAX_RTT_MS) ms (median $(cval P50_RTT_MS) ms; bound 2 s)"
rss2=$(rss)
ok "$([ $((rss2 - rss0)) -lt 32768 ] && echo 0 || echo 1)" "in the end xedge's RSS is $((rss2 - rss0)) KiB above the start (bound 32 MiB)"
