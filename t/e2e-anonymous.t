#!/bin/bash
# e2e-anonymous.t: SASL ANONYMOUS (RFC 4505), off by default. When enabled,
# the session gets a random temporary JID on the domain; the assertion marks
# it anonymous (purpose c2s-anonymous) and the Prosody glue admits it only
# when told to (xedge_allow_anonymous).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 10

PW="an-$RANDOM-$RANDOM"
anon() { client --jid example.test --password unused --mech ANONYMOUS "$@"; }

sandbox_up --user "alice@example.test=$PW"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
is "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls' | grep -c ANONYMOUS)" 0 \
	"by default ANONYMOUS is not offered"
sandbox_down

sandbox_up --user "alice@example.test=$PW" --enable anonymous
anon --resource a1
is "$RC" 0 "--enable anonymous: slixmpp logs in with ANONYMOUS"
like "$(result jid)" '^anon-[0-9a-f]{16}@example\.test/a1$' "... as a random temporary JID on the domain"
first=$(result jid)
anon --resource a2
like "$(result jid)" '^anon-[0-9a-f]{16}@example\.test/a2$' "a second anonymous session"
ok "$([ "${first%/*}" != "$(result jid | sed 's#/.*##')" ] && echo 0 || echo 1)" "... gets another JID"
grep -q 'xedge assertion accepted for anon-.*(anonymous)' "$XE_SANDBOX_DIR_SB/prosody-0/prosody.log"
ok $? "the backend saw the session marked anonymous"
client --jid alice@example.test --password "$PW"
is "$RC" 0 "users still log in as before"
sandbox_down

# xedge offers ANONYMOUS but the backend was not told to admit it
sandbox_up --user "alice@example.test=$PW" \
	--conf 'sasl = { mechanisms = [ "SCRAM-SHA-256", "ANONYMOUS" ]; };'
anon
is "$(result condition)" "remote-connection-failed" "a backend that does not admit anonymous sessions: <remote-connection-failed/>"
grep -q 'xedge assertion rejected for anon-.*wrong-purpose' "$XE_SANDBOX_DIR_SB/prosody-0/prosody.log"
ok $? "... its glue refused the anonymous assertion (wrong-purpose)"
xedge_alive
ok $? "xedge is still running"
