#!/bin/bash
# e2e-backend-down.t: when the backend Prosody is gone, a client that
# authenticates gets a <stream:error/> quickly (never a hang), and xedge stays
# up and keeps answering.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 12

APW="alice-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$APW"

client --jid alice@example.test --password "$APW"
is "$RC" 0 "with the backend up, alice logs in"

# Stop every backend by pid and wait until they are gone.
for p in $BACKEND_PIDS; do kill -TERM "$p" 2>/dev/null; done
gone=1
for _ in $(seq 1 100); do
	gone=1
	for p in $BACKEND_PIDS; do kill -0 "$p" 2>/dev/null && gone=0; done
	[ $gone = 1 ] && break
	sleep 0.1
done
if [ $gone = 0 ]; then
	for p in $BACKEND_PIDS; do kill -KILL "$p" 2>/dev/null; done
	sleep 0.5
fi
ok 0 "backend(s) stopped (pids $BACKEND_PIDS)"

COND_RE='^(remote-connection-failed|remote-server-timeout|service-unavailable|internal-server-error|connection-timeout|host-unknown)$'

t0=$(now_ms)
raw --timeout 15 --jid alice@example.test --password "$APW"
t1=$(now_ms)
ms=$((t1 - t0))
is "$(result RESULT)" stream-error "raw client: login with the backend down ends in a <stream:error/>"
like "$(result condition)" "$COND_RE" "condition says the backend is unreachable ($(result condition))"
[ "$ms" -lt 8000 ]; ok $? "error within 8 s (took ${ms} ms)"
is "$(printf '%s\n' "$OUT" | grep -c '^SASL .*result=failure')" 0 \
	"the client's credentials were not blamed (no SASL <failure/>)"

t0=$(now_ms)
client --timeout 15 --jid alice@example.test --password "$APW" --mech SCRAM-SHA-1-PLUS
t1=$(now_ms)
ms=$((t1 - t0))
is "$(result RESULT)" stream-error "slixmpp: login with the backend down gets a <stream:error/>"
like "$(result condition)" "$COND_RE" "slixmpp saw condition $(result condition)"
[ "$ms" -lt 8000 ]; ok $? "slixmpp: error within 8 s (took ${ms} ms)"

xedge_alive
ok $? "xedge is still running"
# Still accepting and answering: TLS, features and SASL do not need a backend.
raw --jid alice@example.test --password wrong-pw
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"xedge still accepts connections and answers SASL (wrong password -> not-authorized)"
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" 'mechanisms:SCRAM-SHA-256' \
	"... with its full TLS + features exchange"
