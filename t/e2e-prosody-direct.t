#!/bin/bash
# e2e-prosody-direct.t: the direct login between xedge and Prosody
# (contrib/prosody/mod_auth_xedge.lua, doc/assertion.md "Direct login"): the
# glue offers <auth xmlns='urn:xedge:auth:0'/>, xedge sends its identity
# assertion in it and gets the authenticated session's features on the same
# stream, without SASL or a stream restart. A client logs in through xedge
# that way; straight to Prosody's port, the direct login accepts a valid
# assertion and refuses forged, expired, replayed and other ones
# (t/lib/backend-auth-check.py --direct), and SASL PLAIN still works there.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 9
APW="alice-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$APW"
PLOG=$XE_SANDBOX_DIR_SB/prosody-0/prosody.log

client --jid alice@example.test --password "$APW" --resource direct --roster
is "$RC" 0 "alice logs in through xedge, binds and reads her roster"
like "$(grep 'event=session' "$XEDGE_LOG" | grep 'jid=alice@example.test ')" "backend=prosody-0( |\$)" \
	"xedge logged alice's session on prosody-0"
# (Prosody logs the top tag's attributes in no fixed order)
like "$(grep "Received\\[c2s_unauthed\\]: <auth " "$PLOG" | grep "user='alice'" | grep -c "xmlns='urn:xedge:auth:0'")" '^[1-9][0-9]*$' \
	"xedge logged in to Prosody with the direct login"
is "$(grep -c "Received\\[c2s_unauthed\\]: <auth .*urn:ietf:params:xml:ns:xmpp-sasl" "$PLOG")" 0 \
	"... and not with SASL"

out=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/backend-auth-check.py" --sandbox "$XE_SANDBOX_DIR_SB" \
	--backend prosody-0 --direct --user bob 2>&1)
rc=$?
diag "backend-auth-check.py --direct:" "$(printf '%s\n' "$out" | sed 's/^/  /')"
is "$rc" 0 "Prosody's port, direct login: a valid assertion logs in and binds; replayed, forged, expired, other-user, other-secret, s2s, too-long and plain passwords are refused"
is "$(printf '%s\n' "$out" | grep -c '^ok ')" 15 "... all 15 checks ran"

out=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/backend-auth-check.py" --sandbox "$XE_SANDBOX_DIR_SB" \
	--backend prosody-0 --user carol 2>&1)
rc=$?
diag "backend-auth-check.py (SASL PLAIN):" "$(printf '%s\n' "$out" | sed 's/^/  /')"
is "$rc" 0 "Prosody's port, SASL PLAIN (what xedge falls back to): the same checks pass"
ok "$(grep -q 'xe1:' "$PLOG" && echo 1 || echo 0)" "no assertion in Prosody's log"
xedge_alive
ok $? "xedge is still running"
