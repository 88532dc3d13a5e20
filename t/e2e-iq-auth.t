#!/bin/bash
# e2e-iq-auth.t: non-SASL authentication (XEP-0078, jabber:iq:auth), off by
# default; with the domain's iq_auth on (sandbox --enable iq-auth): the
# fields, plaintext (checked as PLAIN is) and digest (only for a user with
# the legacy secret), the XEP's errors, failures counted as SASL's, and the
# resource bound at the real Prosody backend by xedge, proved by a ping and a
# message to the bound full JID coming back through the splice.
#
# The real client: slixmpp 1.8.3's xep_0078 plugin cannot log in as shipped
# against a server that also offers SASL (it defers to <mechanisms/>), nor
# against any server (its authenticate() does not await Iq.send()), and
# slixmpp holds its iqs back until the session starts; t/lib/xmpp_client.py
# --iq-auth works around all three and otherwise runs the plugin's steps and
# stanzas (see its docstring). The plugin answers with a digest whenever the
# server lists <digest/>, and xedge lists it for every user (no user
# enumeration), so slixmpp logs in only as a user with the legacy secret;
# the byte-level client (t/lib/raw_client.py --iq-auth) is the stand-in for
# the plaintext form.
#
# A resource conflict (409) is not provoked here: Prosody resolves it by
# replacing the old session; the backend's bind errors are passed on as the
# unit test t/unit/backend.c shows, and here with a resource Prosody will not
# bind as asked.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 28

PW="iq-$RANDOM-$RANDOM"
LPW="leg-$RANDOM-$RANDOM"
field() { printf '%s\n' "$OUT" | sed -n "s/^$1 //p" | head -n 1; }

# ---- (a) by default: not offered, and an attempt is refused as before
sandbox_up --user "alice@example.test=$PW"
raw --jid alice@example.test --password "$PW" --iq-auth plain --resource r1
like "$OUT" 'IQAUTH offered=no' "by default the iq-auth feature is not offered"
is "$(result RESULT)" "stream-error" "... and an iq-auth set before SASL is refused as any element is"
is "$(result condition)" "not-authorized" "... with <not-authorized/> (authenticate first)"
sandbox_down

# ---- (b) enabled
sandbox_up --user "alice@example.test=$PW" --enable iq-auth
like "$(cat "$XEDGE_CONF")" 'iq_auth = true;' "sandbox --enable iq-auth: iq_auth = true on the domain"
raw --jid alice@example.test --password "$PW" --iq-auth plain --resource r1
like "$OUT" 'FEATURES stage=post-tls list=mechanisms:[^ ]*,auth' \
	"after TLS, <auth xmlns='http://jabber.org/features/iq-auth'/> next to the mechanisms"
like "$OUT" 'IQAUTH get type=result fields=username\+password\+digest\+resource ' \
	"get: the fields username, password, digest, resource"
is "$(result RESULT)" "ok" "set with the password: the iq result"
is "$(field ECHO)" "ping=ok message=ok jid=alice@example.test/r1" \
	"a ping and a message to alice@example.test/r1 come back through Prosody"
like "$(grep 'event=session ' "$XEDGE_LOG" | tail -n 1)" 'jid=alice@example.test mech=iq-auth ' \
	"logged: event=session ... mech=iq-auth"
FIELDS_ALICE=$(printf '%s\n' "$OUT" | sed -n 's/^IQAUTH get type=result fields=\([^ ]*\) .*/\1/p')
raw --jid nobody@example.test --password x --iq-auth plain --resource r1
is "$(printf '%s\n' "$OUT" | sed -n 's/^IQAUTH get type=result fields=\([^ ]*\) .*/\1/p')" "$FIELDS_ALICE" \
	"get for an unknown user: the same fields (no user enumeration)"
is "$(result condition)/$(result code)" "not-authorized/401" "... and its set fails with 401 not-authorized"

# ---- (c) errors and digest
raw --jid alice@example.test --password wrong --password "$PW" --iq-auth plain --resource r2
is "$(field 'IQAUTH n=1' | cut -d' ' -f1-3)" "result=error condition=not-authorized code=401" \
	"a wrong password: 401 not-authorized"
is "$(result RESULT)/$(result attempts)" "ok/2" "... then the right one on the same stream works"
like "$(grep 'event=auth-failed' "$XEDGE_LOG" | grep 'mech=iq-auth' | tail -n 1)" \
	'user=alice@example.test mech=iq-auth condition=not-authorized attempt=1 detail="wrong password"' \
	"the failure is logged as SASL's are (event=auth-failed ... mech=iq-auth)"
raw --jid alice@example.test --password "$PW" --iq-auth plain --resource ''
is "$(result condition)/$(result code)" "not-acceptable/406" "no resource: 406 not-acceptable"
raw --jid alice@example.test --password w1 --password w2 --password w3 --iq-auth plain --resource r3 \
	--expect-close 3
like "$OUT" 'CLOSE how=stream-error:not-authorized' \
	"sasl.max_attempts (3) failed sets: the stream is closed with <not-authorized/>"

out=$(printf '%s\n' "$LPW" | ctl user add --legacy-mechs bob@example.test 2>&1)
ok $? "xedgectl user add --legacy-mechs bob@example.test" || diag "$out"
raw --jid bob@example.test --password "$LPW" --iq-auth digest --resource d1
is "$(result RESULT)/$(field ECHO)" "ok/ping=ok message=ok jid=bob@example.test/d1" \
	"digest for a user with the legacy secret: logged in, ping and message come back"
raw --jid alice@example.test --password "$PW" --iq-auth digest --resource d2
is "$(result condition)/$(result code)" "not-authorized/401" \
	"digest for a user without it: 401, as a wrong password"
raw --jid bob@example.test --password "$LPW" --iq-auth plain --resource p1 --pipeline
is "$(result RESULT)/$(field ECHO)" "ok/ping=ok message=ok jid=bob@example.test/p1" \
	"a ping sent in the same write as the set reaches the backend after the bind"

ctl user disable alice@example.test >/dev/null 2>&1
raw --jid alice@example.test --password "$PW" --iq-auth plain --resource r4
is "$(result condition)/$(result code)" "not-allowed/405" "a disabled account is refused (with the right password)"
ctl user enable alice@example.test >/dev/null 2>&1
ctl user expire alice@example.test now >/dev/null 2>&1
raw --jid alice@example.test --password "$PW" --iq-auth plain --resource r4
is "$(result condition)/$(result code)" "not-allowed/405" "an expired password is refused (with the right password)"
ctl user expire alice@example.test never >/dev/null 2>&1

raw --jid alice@example.test --password "$PW" --iq-auth plain --resource "$(printf 'a\tb')" --expect-close 3
is "$(result condition)/$(result code)" "not-acceptable/406" \
	"a resource Prosody does not bind as asked: the client's iq gets 406"
like "$OUT" 'CLOSE how=stream-end' "... and the stream is closed cleanly"
like "$(grep 'event=bind-failed' "$XEDGE_LOG" | tail -n 1)" 'jid=alice@example.test backend=prosody-0 condition=not-acceptable' \
	"... logged as event=bind-failed"

# ---- (d) slixmpp's xep_0078 plugin
TOKEN=$(unique_token slx)
client --jid bob@example.test --password "$LPW" --iq-auth --resource slx \
	--send-to bob@example.test/slx --body "$TOKEN" --expect-body "$TOKEN"
is "$(result RESULT)/$(result mech)/$(result jid)" "ok/iq-auth-digest/bob@example.test/slx" \
	"slixmpp (xep_0078) logs in with the digest and gets its own message back"
client --jid alice@example.test --password "$PW" --iq-auth --resource slx
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"slixmpp as a user without the legacy secret: it sends a digest, refused"

xedge_alive
ok $? "xedge is still running"
