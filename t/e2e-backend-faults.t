#!/bin/bash
# e2e-backend-faults.t: a backend that refuses the identity assertion, one
# that accepts TCP and never answers, and one that dies in the middle of a
# session. Each time the client gets a <stream:error/> (not a hang, not a
# bare close), xedge logs why, and keeps serving.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 16

PW="faults-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB
BACKEND_PORT=$(sed -n 's/.*name = "prosody-0"; address = "[^"]*"; port = \([0-9]*\);.*/\1/p' "$XEDGE_CONF")


# 1. The backend refuses the assertion: xedge signs with another secret.
openssl rand -hex 32 >"$SB/other.secret"
sed "s#secret_file = \"$SB/secret\"#secret_file = \"$SB/other.secret\"#" "$XEDGE_CONF" >"$SB/refused.conf"
xedge_restart "$SB/refused.conf"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
like "$OUT" 'remote-connection-failed' "backend refuses the assertion: client gets <remote-connection-failed/>"
grep -q 'event=backend-failed .*reason="backend refused the identity assertion: not-authorized"' "$XEDGE_LOG"
ok $? "xedge logs that the backend refused the assertion"
grep -q 'xedge auth rejected\|rejected' "$SB/prosody-0/prosody.log"
ok $? "Prosody logged the rejected assertion"

# 2. A backend that accepts TCP and never says a word.
SILENT_PORT=$(pick_base_port)
"$PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
conns = []; end = time.time() + 60
s.settimeout(1)
while time.time() < end:
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
' "$SILENT_PORT" &
SILENT_PID=$!
XEDGE_PIDS="$XEDGE_PIDS,$SILENT_PID"
sleep 0.3
sed "s/port = $BACKEND_PORT;/port = $SILENT_PORT;/" "$XEDGE_CONF" >"$SB/silent.conf"
printf 'timeouts = { backend_connect = 2; backend_handshake = 2; };\n' >>"$SB/silent.conf"
xedge_restart "$SB/silent.conf"
t0=$(date +%s%N)
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256 --timeout 15
t1=$(date +%s%N)
like "$OUT" 'remote-connection-failed' "silent backend: client gets <remote-connection-failed/>"
ms=$(((t1 - t0) / 1000000))
ok "$([ "$ms" -ge 1500 ] && [ "$ms" -lt 6000 ] && echo 0 || echo 1)" \
	"... after the 2 s handshake timeout, not before and not much later (${ms} ms)"
grep -q 'reason="backend did not answer in time"' "$XEDGE_LOG"
ok $? "xedge logs the timeout"
kill "$SILENT_PID" 2>/dev/null

# 2b. A backend that answers with garbage.
GARBAGE_PORT=$(pick_base_port)
"$PY" -c '
import os, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); s.settimeout(1)
end = time.time() + 60
while time.time() < end:
    try: c = s.accept()[0]
    except socket.timeout: continue
    try: c.sendall(b"\x16\x03\x01garbage<<<&&&" + os.urandom(512)); time.sleep(0.2); c.close()
    except OSError: pass
' "$GARBAGE_PORT" &
GARBAGE_PID=$!
XEDGE_PIDS="$XEDGE_PIDS,$GARBAGE_PID"
sleep 0.3
sed "s/port = $BACKEND_PORT;/port = $GARBAGE_PORT;/" "$XEDGE_CONF" >"$SB/garbage.conf"
xedge_restart "$SB/garbage.conf"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
like "$OUT" 'remote-connection-failed' "backend sending garbage: client gets <remote-connection-failed/>"
grep -q 'event=backend-failed .*reason="backend sent bad XML' "$XEDGE_LOG"
ok $? "xedge logs that the backend sent bad XML"
kill "$GARBAGE_PID" 2>/dev/null

# 3. The backend dies (SIGKILL) in the middle of a session.
xedge_restart "$XEDGE_CONF"
rm -f "$SB/ready"
timeout 40 "$PY" "$XMPP_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" \
	--jid alice@example.test --password "$PW" --resource held --hold 25 \
	--ready-file "$SB/ready" --timeout 10 >"$SB/held.out" 2>&1 &
HELD=$!
for _ in $(seq 1 200); do [ -s "$SB/ready" ] && break; sleep 0.05; done
ok "$([ -s "$SB/ready" ] && echo 0 || echo 1)" "a session is up through xedge"
t0=$(date +%s%N)
kill -KILL "${XEDGE_BACKEND_PIDS%%,*}"
wait "$HELD"
t1=$(date +%s%N)
diag "$(cat "$SB/held.out")"
like "$(grep '^RESULT=' "$SB/held.out")" '^RESULT=stream-error condition=remote-connection-failed' \
	"backend killed mid-session: the client gets <remote-connection-failed/>"
ms=$(((t1 - t0) / 1000000))
ok "$([ "$ms" -lt 5000 ] && echo 0 || echo 1)" "... at once (${ms} ms), not at the end of its 25 s hold"
grep -q 'event=backend-lost' "$XEDGE_LOG"
ok $? "xedge logs the lost backend"

# xedge itself is fine and still answers
kill -0 "$XEDGE_PID"
ok $? "xedge is still running"
raw --jid alice@example.test --password wrong --mech SCRAM-SHA-256
like "$OUT" 'not-authorized' "xedge still negotiates TLS and SASL"
raw --jid alice@example.test --password "$PW" --mech PLAIN
like "$OUT" 'remote-connection-failed' "and a login now reports the dead backend"
ok "$(grep -c 'event=backend-failed' "$XEDGE_LOG" | awk '{print ($1 >= 4) ? 0 : 1}')" "every failure was logged"
