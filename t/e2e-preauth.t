#!/bin/bash
# e2e-preauth.t: what connections that never authenticate may hold. A cap
# of its own (limits.max_preauth_connections) holds while real users log in
# (an authenticated session does not count against it); a connection over
# it is closed at accept, counted and logged; after a large drop the heap
# is given back (malloc_trim); max_connections is clamped to what the
# descriptor limit serves, with a warning naming both numbers.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 22

rss_is_honest
PW="pa-$RANDOM-$RANDOM"
CAP=40
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW" \
	--conf "limits = { max_preauth_connections = $CAP; connection_rate_per_address = 0; };" \
	--conf 'timeouts = { preauth_idle = 120; auth = 120; };'
SB=$XE_SANDBOX_DIR_SB
metric() { curl -s --max-time 5 "$XEDGE_METRICS" | awk -v m="$1" '$1 == m {print $2}'; }
val() { printf '%s\n' "$LINE" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# alice logs in first and stays (slixmpp); later she messages herself
"$PY" "$XMPP_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --jid alice@example.test \
	--password "$PW" --resource stay --ready-file "$SB/alice.ready" --wait-file "$SB/alice.go" \
	--send-to alice@example.test/stay --body "still-here-$PW" --expect-body "still-here-$PW" \
	--timeout 90 >"$SB/alice.out" 2>"$SB/alice.err" &
ALICE=$!
for _ in $(seq 1 200); do [ -s "$SB/alice.ready" ] && break; sleep 0.05; done
[ -s "$SB/alice.ready" ]
ok $? "alice is logged in (slixmpp) and stays"

coproc HOLD { timeout 300 "$PY" "$XE_TOP_SRCDIR/t/lib/preauth_hold.py" "$XEDGE_C2S"; }
hold() { # hold COMMAND: one command to the holder, its answer in LINE
	LINE=""
	echo "$1" >&"${HOLD[1]}"
	read -r -t 60 LINE <&"${HOLD[0]}"
	diag "holder: $1 -> $LINE"
}

hold "open $((CAP - 1))"
is "$(val held)" "$((CAP - 1))" "$((CAP - 1)) idle unauthenticated connections are held"
is "$(metric xedge_preauth_connections)" "$((CAP - 1))" "... xedge_preauth_connections says so"
client --jid bob@example.test --password "$PW" --resource busy
is "$RC" 0 "bob logs in (slixmpp) with one pre-auth slot left"
hold "open 1"
is "$(val held)" 1 "one more is held: the authenticated sessions (alice's, bob's) do not count"
hold "open 3"
is "$(val closed)" 3 "over the cap ($CAP), new connections are closed at accept"
is "$(metric xedge_preauth_connections)" "$CAP" "... the pre-auth count stays at the cap"
is "$(metric 'xedge_connections_refused_total{reason="max_preauth_connections"}')" 3 \
	"... each counted (xedge_connections_refused_total, reason max_preauth_connections)"
grep -q 'event=connection-refused reason=max_preauth_connections address=127\.0\.0\.1:' "$XEDGE_LOG"
ok $? "... and logged (at most once a second)"
like "$(ctl stats)" " preauth=$CAP max_preauth_connections=$CAP " "stats: the pre-auth count and its cap"
client --jid bob@example.test --password "$PW" --resource refused --timeout 5
ok "$([ "$RC" -ne 0 ] && echo 0 || echo 1)" "a new login while the cap is full is refused"

touch "$SB/alice.go"
wait "$ALICE"
is "$?" 0 "alice's session, in place all along, still carries her messages"

trims0=$(metric xedge_heap_trims_total)
hold "close"
is "$(val n)" "$CAP" "the $CAP held connections close"
for _ in $(seq 1 100); do grep -q 'event=heap-trimmed' "$XEDGE_LOG" && break; sleep 0.1; done
like "$(grep 'event=heap-trimmed' "$XEDGE_LOG" | tail -n 1)" \
	"preauth_from=$CAP preauth_to=0 released=(yes|no) rss_before_kib=[0-9]+ rss_after_kib=[0-9]+ took_us=[0-9]+" \
	"after the drop the heap is given back (malloc_trim), logged with the RSS around it"
is "$(metric xedge_heap_trims_total)" "$((${trims0:-0} + 1))" "... counted once (xedge_heap_trims_total)"
is "$(metric xedge_preauth_connections)" 0 "the pre-auth count is back to 0"
client --jid bob@example.test --password "$PW" --resource again
is "$RC" 0 "bob logs in again"
hold "quit"

# ---- max_connections clamped to what the descriptor limit serves
grep -v max_preauth_connections "$XEDGE_CONF" >"$SB/low.conf"
printf 'limits = { connection_rate_per_address = 0; };\n' >>"$SB/low.conf"
kill -TERM "$XEDGE_PID" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$XEDGE_PID" 2>/dev/null || break; sleep 0.05; done
: >"$SB/low.log"
(ulimit -n 256 && exec "$XE_TOP_BUILDDIR/src/xedge" -c "$SB/low.conf") >>"$SB/low.log" 2>&1 &
XEDGE_PID=$!
XEDGE_PIDS="$XEDGE_PID,$XEDGE_PIDS"
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/${XEDGE_C2S%:*}/${XEDGE_C2S##*:}") 2>/dev/null && break
	sleep 0.05
done
warn=$(grep 'event=max-connections-clamped' "$SB/low.log")
like "$warn" 'when=start max_connections=100000 effective=[0-9]+ nofile=256 ' \
	"under ulimit -n 256: a warning at start naming max_connections and the descriptor limit"
eff=$(printf '%s\n' "$warn" | sed -n 's/.* effective=\([0-9]*\) .*/\1/p')
ok "$([ "${eff:-0}" -gt 0 ] && [ "${eff:-0}" -lt 128 ] && echo 0 || echo 1)" \
	"... the effective value ($eff) leaves two descriptors per session and a reserve"
is "$(metric xedge_effective_max_connections)" "$eff" "xedge_effective_max_connections is that value"
is "$(metric xedge_max_preauth_connections)" "$((eff / 2))" \
	"the pre-auth cap defaults to half of it ($((eff / 2)))"
coproc HOLD2 { timeout 120 "$PY" "$XE_TOP_SRCDIR/t/lib/preauth_hold.py" "$XEDGE_C2S"; }
LINE=""
echo "open $((eff / 2 + 2))" >&"${HOLD2[1]}"
read -r -t 60 LINE <&"${HOLD2[0]}"
diag "holder: open $((eff / 2 + 2)) -> $LINE"
is "$(val held) $(val closed)" "$((eff / 2)) 2" "... and it is in force: $((eff / 2)) held, 2 closed at accept"
echo quit >&"${HOLD2[1]}"
