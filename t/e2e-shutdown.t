#!/bin/bash
# e2e-shutdown.t: the running daemon seen and steered through its control
# socket (xedgectl session list|kick, stats), and the graceful shutdown: on
# SIGTERM xedge stops accepting at once, lets its sessions go on for
# timeouts.shutdown_grace, then ends each with <system-shutdown/> placed
# between two of the backend's stanzas (a client being flooded with large
# messages gets well-formed XML to the end; one whose stanza the backend
# stops sending halfway, through t/lib/split_relay.py in front of Prosody,
# gets the rest of it first), and exits 0.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 23

PW="sd-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW" \
	--user "carol@example.test=$PW" --conf 'timeouts = { shutdown_grace = 2; };'
SB=$XE_SANDBOX_DIR_SB
# xedge as our own child, so that its exit status can be read
xedge_restart "$XEDGE_CONF"
for _ in $(seq 1 100); do [ -S "$XEDGE_CONTROL" ] && break; sleep 0.05; done

# hold NAME JID RESOURCE: a session that stays online (raw_client --hold)
hold() {
	"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --jid "$2" \
		--password "$PW" --mech PLAIN --resource "$3" --hold 40 --timeout 60 \
		>"$SB/$1.out" 2>"$SB/$1.err" &
	eval "${1}_pid=\$!"
}
ready() { for _ in $(seq 1 200); do grep -q '^READY' "$SB/$1.out" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
closed() { sed -n 's/^CLOSE how=\([^ ]*\).*/\1/p' "$SB/$1.out"; }

hold a1 alice@example.test r1
hold b1 bob@example.test r1
hold c1 carol@example.test r1
ready a1 && ready b1 && ready c1
ok $? "three sessions are up"

out=$(ctl session list)
is "$(printf '%s\n' "$out" | grep -c 'state=spliced')" 3 "session list: three spliced sessions" || diag "$out"
like "$(printf '%s\n' "$out" | grep 'jid=bob@example.test ')" \
	'^session id=[0-9]+ jid=bob@example\.test peer=127\.0\.0\.1:[0-9]+ listener=starttls transport=tcp state=spliced tls=TLSv1\.[23] mech=PLAIN backend=prosody-0 since=[0-9]+ age_s=[0-9]+ bytes_up=[1-9][0-9]* bytes_down=[1-9][0-9]*$' \
	"... each with its id, JID, peer, TLS, mechanism, backend, age and bytes"
n=$(ctl session list --json | "$PY" -c 'import json,sys; print(len([s for s in json.load(sys.stdin) if s["state"] == "spliced" and "@" in s["jid"]]))')
is "$n" 3 "session list --json: a JSON array of the same"
like "$(ctl stats)" '^stats connections=3 negotiating=0 backend=0 spliced=3 closing=0 ' "stats: three connections, all spliced"

# kick by id
bob_id=$(printf '%s\n' "$out" | sed -n 's/^session id=\([0-9]*\) jid=bob@example\.test .*/\1/p')
out=$(ctl session kick "$bob_id")
is "$?/$out" "0/kicked=1" "session kick ID: one session ended"
wait "$b1_pid"
is "$(closed b1)" "stream-error:policy-violation" "... bob got <policy-violation/>"
ctl session kick nobody@example.test >/dev/null 2>&1
is "$?" 1 "session kick of a JID with no session: exit 1"
like "$(grep 'event=kick ' "$XEDGE_LOG")" "jid=bob@example\.test id=$bob_id" "the kick is logged"

# carol is flooded with large messages by dave while xedge shuts down
"$PY" - "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "$XE_TOP_SRCDIR/t/lib" >"$SB/flood.out" 2>&1 <<'PYEOF' &
import sys, time
sys.path.insert(0, sys.argv[4])
import raw_client
server, cafile, pw = sys.argv[1:4]
s = raw_client.Session('alice@example.test', server, 'starttls', cafile, False, 30, log=lambda _l: None)
s.connect()
assert s.auth('PLAIN', pw)[0] == 'success'
s.restart_and_bind('flood')
body = 'x' * 150000
n = 0
end = time.monotonic() + 8
try:
    while time.monotonic() < end:
        s.send("<message to='carol@example.test/r1' type='chat'><body>%d %s</body></message>" % (n, body))
        n += 1
except Exception as e:
    print('SENDER stopped after %d: %r' % (n, e))
print('SENT %d' % n)
PYEOF
flood=$!
sleep 1
t0=$(now_ms)
kill -TERM "$XEDGE_PID"
# the worker logs event=shutdown right after it has closed its listener: wait
# for that line (bounded) rather than a fixed time, which a slow build (the
# sanitizers' pass under load) overran
for _ in $(seq 1 100); do grep -q 'event=shutdown grace_ms=' "$XEDGE_LOG" && break; sleep 0.05; done
grep -q 'event=shutdown grace_ms=' "$XEDGE_LOG" || diag "no event=shutdown line 5 s after the SIGTERM"
(exec 3<>"/dev/tcp/${XEDGE_C2S%:*}/${XEDGE_C2S##*:}") 2>/dev/null
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "SIGTERM: new connections are refused at once ($(($(now_ms) - t0)) ms after the signal)"
kill -0 "$a1_pid" 2>/dev/null && ! grep -q '^CLOSE' "$SB/a1.out"
ok $? "... while the open sessions go on during the grace period"
wait "$XEDGE_PID"
st=$?
t1=$(now_ms)
is "$st" 0 "xedge exits 0"
ms=$((t1 - t0))
ok "$([ "$ms" -ge 1900 ] && [ "$ms" -lt 9000 ] && echo 0 || echo 1)" "... after the 2 s grace and the closes (${ms} ms)"
wait "$a1_pid" "$c1_pid" "$flood"
is "$(closed a1)" "stream-error:system-shutdown" "alice got <system-shutdown/>"
is "$(closed c1)" "stream-error:system-shutdown" "carol, flooded with 150 KB messages, got <system-shutdown/> as well-formed XML"
got=$(sed -n 's/^CLOSE .* stanzas=\([0-9]*\)$/\1/p' "$SB/c1.out")
ok "$([ "${got:-0}" -gt 5 ] && echo 0 || echo 1)" "... after ${got:-0} messages, some of them during the grace period"
diag "$(cat "$SB/flood.out")"
like "$(cat "$XEDGE_LOG")" 'event=shutdown grace_ms=2000 connections=' "the shutdown is logged"
like "$(cat "$XEDGE_LOG")" 'event=stopped' "... and the end"

# --- a stanza cut in the middle by the backend ----------------------------------
BPORT=$(sed -n 's/.*name = "prosody-0"; address = "[^"]*"; port = \([0-9]*\);.*/\1/p' "$XEDGE_CONF")
RPORT=$(pick_base_port)
"$PY" "$XE_TOP_SRCDIR/t/lib/split_relay.py" "$RPORT" "$BPORT" CUT-HERE 1.5 60 >"$SB/relay.out" 2>&1 &
relay=$!
for _ in $(seq 1 100); do grep -q READY "$SB/relay.out" && break; sleep 0.05; done
sed -e "s/port = $BPORT;/port = $RPORT;/" -e 's/shutdown_grace = 2;/shutdown_grace = 0;/' "$XEDGE_CONF" >"$SB/relay.conf"
xedge_restart "$SB/relay.conf"
hold c2 carol@example.test r2
ready c2 || bail "carol did not log in through the relay: $(cat "$SB/c2.out")"
"$PY" - "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "$XE_TOP_SRCDIR/t/lib" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[4])
import raw_client
s = raw_client.Session('alice@example.test', sys.argv[1], 'starttls', sys.argv[2], False, 30, log=lambda _l: None)
s.connect()
assert s.auth('PLAIN', sys.argv[3])[0] == 'success'
s.restart_and_bind('cut')
s.send("<message to='carol@example.test/r2' type='chat'><body>first half CUT-HERE second half</body></message>")
s.close()
PYEOF
for _ in $(seq 1 100); do grep -q SPLIT "$SB/relay.out" && break; sleep 0.02; done
grep -q SPLIT "$SB/relay.out"
ok $? "the backend's message to carol stops in the middle (split_relay)"
t0=$(now_ms)
kill -TERM "$XEDGE_PID"
wait "$XEDGE_PID"
is "$?" 0 "SIGTERM (no grace): xedge exits 0"
wait "$c2_pid"
t1=$(now_ms)
is "$(closed c2)" "stream-error:system-shutdown" "carol gets <system-shutdown/> as well-formed XML"
is "$(sed -n 's/^CLOSE .* stanzas=\([0-9]*\)$/\1/p' "$SB/c2.out")" 1 "... right after the whole message, which xedge waited for"
ok "$([ $((t1 - t0)) -ge 1000 ] && echo 0 || echo 1)" "... about 1.5 s later, when its end came ($((t1 - t0)) ms)"
kill "$relay" 2>/dev/null
