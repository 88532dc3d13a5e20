#!/bin/bash
# e2e-register.t: in-band registration (XEP-0077), off by default. When a
# domain has `register = true;`, a client creates its account on the stream
# (LMDB, SCRAM secrets), logs in on the same stream, and later changes its
# password or removes the account: those requests are answered by xedge,
# whose post-authentication parser forwards every other stanza unchanged.
# Byte-level checks use t/lib/register_probe.py; the last part does the same
# with a real client, slixmpp's xep_0077 plugin (t/lib/xmpp_client.py).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 37

PROBE="$XE_TOP_SRCDIR/t/lib/register_probe.py"
probe() { _run_tool "$PROBE" "$@"; }
line() { printf '%s\n' "$OUT" | grep "^$1 " | head -n 1; }
PW="pw-$RANDOM-$RANDOM"

sandbox_up --user "alice@example.test=$PW"
raw --jid alice@example.test --password "$PW" --no-bind
is "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls' | grep -c register)" 0 \
	"by default registration is not offered"
probe register bob@example.test "$PW"
is "$(result condition)" "not-authorized" "... and a registration request is refused (<not-authorized/>)"
sandbox_down

sandbox_up --user "alice@example.test=$PW" --enable register \
	--conf 'limits = { registrations_per_address = 4; max_stanza_postauth = 65536; };'
raw --jid alice@example.test --password "$PW" --no-bind
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" ',register' \
	"--enable register: offered after STARTTLS"
is "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=pre-tls' | grep -c register)" 0 "... not before TLS"
probe register bob@example.test "bob-$PW" --login
is "$(line FORM)" "FORM fields=instructions+username+password" "the form: instructions, username, password"
is "$(line REGISTER)" "REGISTER result=ok" "a new user registers"
is "$(line LOGIN | cut -d' ' -f2)" "result=ok" "... logs in with SCRAM-SHA-256 on the same stream"
is "$(line MESSAGE)" "MESSAGE result=ok" "... and a message goes through the backend and back"
ctl user show bob@example.test >/dev/null 2>&1
ok $? "the user is in the store (xedgectl user show)"
probe register bob@example.test "other-$PW"
is "$(line REGISTER)" "REGISTER result=error type=cancel condition=conflict" "an existing username: 409 <conflict/>"
probe register 'b d@example.test' "x-$PW"
is "$(line REGISTER)" "REGISTER result=error type=modify condition=not-acceptable" "an invalid username: 406 <not-acceptable/>"
# four registrations per address and hour: bob, the conflict, and two more
probe register carol@example.test "c-$PW"
probe register dave@example.test "d-$PW"
is "$(line REGISTER)" "REGISTER result=ok" "the fourth registration from one address is accepted"
probe register erin@example.test "e-$PW"
is "$(line REGISTER)" "REGISTER result=error type=wait condition=policy-violation" \
	"the fifth registration from one address is refused (wait, <policy-violation/>)"
diag "time of one registration (PBKDF2 of three SCRAM hashes and the LMDB write, on the loop):" \
	"$(grep -o 'event=register .*result=ok duration_ms=[0-9.]*' "$XEDGE_LOG" | sed 's/.*user=\([^ ]*\).*duration_ms=/\1 /')"

# after authentication: xedge answers the requests, the rest flows unchanged
probe echo alice@example.test "$PW" --timeout 15
is "$(line ECHO)" "ECHO sent=20 received=20 intact=20 answers=5/5" \
	"both directions flow while register is on: messages to self intact, xedge's answers in between"
# an idle session's filter gives its parser back (XE_REGSPLICE_REST_MS, 2 s)
# and makes a new one for the next stanza: a keepalive, a message and a
# request after the rest are handled as before (issue 18)
mark=$(wc -l <"$XEDGE_LOG")
OUT=$(timeout 60 "$PY" - "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "$XE_TOP_SRCDIR/t/lib" 2>"$XE_SANDBOX_DIR/client.err" <<'PYEOF'
import sys, time
sys.path.insert(0, sys.argv[4])
import register_probe as rp
s = rp.Session('alice@example.test', sys.argv[1], 'starttls', sys.argv[2], False, 10.0, False)
s.connect()
rp.login(s, sys.argv[3], 'idle')
for i in range(2):
    time.sleep(3.5)
    s.send(' ')
    time.sleep(0.3)
    ok = rp.message_to_self(s, 'after a rest %d' % i)
    s.send("<iq type='get' id='g%d'><query xmlns='jabber:iq:register'/></iq>" % i)
    el = rp.wait_iq(s, 'g%d' % i)
    reg = el.find('{jabber:iq:register}query/{jabber:iq:register}registered') is not None
    print('REST%d message=%s registered=%s' % (i, 'ok' if ok else 'mismatch', 'yes' if reg else 'no'), flush=True)
s.close()
PYEOF
)
diag "idle probe:" "$OUT" "$(tail -n 5 "$XE_SANDBOX_DIR/client.err")"
is "$(printf '%s\n' "$OUT" | grep '^REST' | tr '\n' ' ')" "REST0 message=ok registered=yes REST1 message=ok registered=yes " \
	"after the filter's parser rested, twice: a message goes through intact, a request is answered by xedge"
rests=$(tail -n +$((mark + 1)) "$XEDGE_LOG" | grep -c 'event=register-rest .*jid=alice@example.test')
[ "$rests" -ge 2 ]
ok $? "... and it did rest after each idle time (debug log: $rests)"
probe passwd bob@example.test "bob-$PW" "new-$PW"
is "$(line PASSWD)" "PASSWD result=ok" "a logged-in user changes the password"
raw --jid bob@example.test --password "bob-$PW" --no-bind
is "$(result condition)" "not-authorized" "... then the old password fails"
raw --jid bob@example.test --password "new-$PW" --no-bind
is "$(result RESULT)" "ok" "... and the new one works"
probe remove carol@example.test "c-$PW"
is "$(line REMOVE)" "REMOVE result=ok" "a logged-in user removes the account"
is "$(line CLOSE)" "CLOSE how=stream-error:not-authorized" "... and the stream ends"
raw --jid carol@example.test --password "c-$PW" --no-bind
is "$(result condition)" "not-authorized" "... then the login fails"
ctl user show carol@example.test >/dev/null 2>&1
is $? 1 "... and the user is gone from the store"
grep -q 'xedge assertion accepted for carol' "$XE_SANDBOX_DIR_SB/prosody-0/prosody.log"
ok $? "(carol had a session on the backend before)"
plog="$XE_SANDBOX_DIR_SB/prosody-0/prosody.log"
grep -q "Received\[c2s\]: <message .*id='e19'" "$plog" && ! grep -q "Received\[c2s\]: <iq .*id='\(g0\|pw1\|rm1\)'" "$plog"
ok $? "the backend got the messages but none of the registration requests"
probe big alice@example.test "$PW" 70000
is "$(line CLOSE)" "CLOSE how=stream-error:policy-violation" \
	"a stanza over limits.max_stanza_postauth: <policy-violation/>"
probe big alice@example.test "$PW" 60000
is "$(line CLOSE)" "CLOSE how=none" "... one under it goes through"
xedge_alive
ok $? "xedge is still running"

# a real client: slixmpp's xep_0077 plugin (a fresh sandbox: its own quota)
sandbox_down
sandbox_up --user "alice@example.test=$PW" --enable register
client --jid frank@example.test --password "f-$PW" --register
is "$(line REGISTER)" "REGISTER result=ok" "slixmpp registers a new user (xep_0077)"
is "$(result RESULT) $(result mech)" "ok SCRAM-SHA-256-PLUS" "... and logs in on the same stream (SCRAM-SHA-256-PLUS)"
client --jid frank@example.test --password "g-$PW" --register
is "$(line REGISTER)" "REGISTER result=error type=cancel condition=conflict" \
	"slixmpp registering the same name again: <conflict/>"
client --jid frank@example.test --password "f-$PW" --change-password "n-$PW"
is "$(line PASSWD)" "PASSWD result=ok" "slixmpp changes its password after login"
client --jid frank@example.test --password "f-$PW"
is "$(result condition)" "not-authorized" "... then slixmpp's login with the old one fails"
client --jid frank@example.test --password "n-$PW"
is "$(result RESULT)" "ok" "... and with the new one works"
client --jid frank@example.test --password "n-$PW" --unregister
is "$(line UNREGISTER)" "UNREGISTER result=ok" "slixmpp removes its account"
is "$(result close)" "stream-error:not-authorized" "... and the stream ends with <not-authorized/>"
client --jid frank@example.test --password "n-$PW"
is "$(result condition)" "not-authorized" "... then its login fails"
