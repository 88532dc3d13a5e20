#!/bin/bash
# e2e-sha512.t: SCRAM-SHA-512 when the operator enables it: offered first,
# chosen by slixmpp by itself, and the right secret is checked (a wrong
# password fails).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 6

PW="s512-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" \
	--conf 'sasl = { mechanisms = [ "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN" ]; };'

raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-512 --resource r512
is "$RC" 0 "raw client: SCRAM-SHA-512 login (server signature verified) and bind"
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" 'list=mechanisms:SCRAM-SHA-512\+SCRAM-SHA-256\+SCRAM-SHA-1\+PLAIN$' \
	"offered in the configured order, SCRAM-SHA-512 first"
client --jid alice@example.test --password "$PW" --resource slix512
is "$RC" 0 "slixmpp logs in"
is "$(result mech)" "SCRAM-SHA-512" "... choosing SCRAM-SHA-512 by itself"
client --jid alice@example.test --password wrong --mech SCRAM-SHA-512
like "$RESULT" 'condition=not-authorized' "SCRAM-SHA-512 with a wrong password: <not-authorized/>"
grep -q 'event=auth-ok .*jid=alice@example.test mech=SCRAM-SHA-512' "$XEDGE_LOG"
ok $? "xedge logs the mechanism"
