#!/bin/bash
# e2e-prosody-direct.t: the direct login between xedge and Prosody
# (contrib/prosody/mod_auth_xedge.lua, doc/assertion.md "Direct login"): the
# glue offers <auth xmlns='urn:xedge:auth:0'/>, xedge sends its identity
# assertion in it and gets the authenticated session's features on the same
# stream, without SASL or a stream restart. A client logs in through xedge
# that way; straight to Prosody's port, the direct login accepts a valid
# assertion and refuses forged, expired, replayed and other ones
# (t/lib/backend-auth-check.py --direct), and SASL PLAIN still works there.
# The server's kind ("prosody") has xedge send the direct login with its
# stream header; a Prosody that does not offer it (xedge_direct_auth =
# false) costs one more try, waiting for the features, and its next logins
# get PLAIN sent ahead.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 15
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

plain_before=$(grep -c "Received\\[c2s_unauthed\\]: <auth .*urn:ietf:params:xml:ns:xmpp-sasl" "$PLOG")
sed -i '1i xedge_direct_auth = false' "$XE_SANDBOX_DIR_SB/prosody-0/prosody.cfg.lua"
"$SANDBOX" restart-backend "$XE_SANDBOX_DIR_SB" prosody-0 >/dev/null 2>&1
ok $? "prosody-0 restarted without the direct login"
LOG_MARK=$(wc -l <"$XEDGE_LOG")
client --jid alice@example.test --password "$APW" --resource plain1 --roster
is "$RC" 0 "alice logs in all the same: the direct login sent ahead was not offered"
is "$(log_since | grep 'event=backend-failed' | grep -c 'does not offer the direct login')/$(log_since | grep -c 'event=backend-retry')" 1/1 \
	"... xedge told it once and tried once more, waiting for the features"
client --jid alice@example.test --password "$APW" --resource plain2 --roster
is "$RC" 0 "alice's next login"
is "$(log_since | grep -c 'event=backend-failed')/$(log_since | grep -c 'event=session .*jid=alice@example.test ')" 1/2 \
	"... with no failure: PLAIN sent ahead, as the server offered"
ok "$([ "$(grep -c "Received\\[c2s_unauthed\\]: <auth .*urn:ietf:params:xml:ns:xmpp-sasl" "$PLOG")" -ge $((plain_before + 2)) ] && echo 0 || echo 1)" \
	"Prosody got SASL PLAIN from xedge for both logins"
xedge_alive
ok $? "xedge is still running"
