#!/bin/bash
# e2e-external.t: SASL EXTERNAL with client certificates (XEP-0178 for c2s).
# The sandbox makes a test CA (the domain's client_ca) and a certificate for
# alice with her JID as xmppAddr; EXTERNAL is offered only to a client whose
# certificate verifies, and only the JIDs it names may be asserted.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 12

PW="ext-$RANDOM-$RANDOM"
PROBE="$XE_TOP_SRCDIR/t/lib/external_probe.py"
probe() { OUT=$(timeout 30 "$PY" "$PROBE" "$XEDGE_C2S" "$XEDGE_CERT" example.test "$@" 2>&1); diag "$OUT"; }
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p"; }

sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW" --enable external
ok "$([ -s "${XEDGE_CA:-}" ] && [ -s "${XEDGE_CLIENT_CERT:-}" ] && [ -s "${XEDGE_CLIENT_KEY:-}" ] && echo 0 || echo 1)" \
	"the sandbox printed XEDGE_CA, XEDGE_CLIENT_CERT, XEDGE_CLIENT_KEY"

client --jid alice@example.test --password unused --mech EXTERNAL \
	--certfile "$XEDGE_CLIENT_CERT" --keyfile "$XEDGE_CLIENT_KEY" --resource cert
is "$RC" 0 "slixmpp logs in with EXTERNAL and alice's certificate"
is "$(result jid)" "alice@example.test/cert" "... as alice"

probe --cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY"
like "$(val MECHS)" '(^|,)EXTERNAL(,|$)' "with a certificate from client_ca: EXTERNAL offered"
is "$(val RESULT)" "success" "... and no authzid: the certificate's JID"
probe --cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY" --authzid alice@example.test
is "$(val RESULT)" "success" "authzid = the certificate's JID: accepted"
probe --cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY" --authzid bob@example.test
is "$(val RESULT)" "failure:invalid-authzid" "authzid the certificate does not cover: <invalid-authzid/>"

probe
unlike=$(val MECHS | tr ',' '\n' | grep -c '^EXTERNAL$')
is "$unlike" 0 "without a client certificate: EXTERNAL not offered"

# a certificate for alice from another CA
SB=$XE_SANDBOX_DIR_SB
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=alice@example.test \
	-addext "subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:alice@example.test" \
	-keyout "$SB/rogue.key" -out "$SB/rogue.pem" >/dev/null 2>&1
probe --cert "$SB/rogue.pem" --key "$SB/rogue.key"
is "$(val MECHS | tr ',' '\n' | grep -c '^EXTERNAL$')" 0 "a certificate from another CA: EXTERNAL not offered"
like "$(val MECHS)" 'SCRAM-SHA-256' "... while the other mechanisms are"

ctl user disable alice@example.test >/dev/null 2>&1
probe --cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY"
is "$(val RESULT)" "failure:account-disabled" "a disabled account: <account-disabled/> even with its certificate"
xedge_alive
ok $? "xedge is still running"
