#!/bin/bash
# e2e-failures.t: SASL failures through xedge: retry on the same stream,
# unknown user indistinguishable from a wrong password, disabled accounts,
# expired passwords, and the stream closed after max_attempts (3) failures.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 42

APW="alice-$RANDOM-$RANDOM"
CPW="carol-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$APW" --user "carol@example.test=$CPW"

# --- wrong password, then the right one, on the same stream --------------
client --jid alice@example.test --password wrong-pw --retry-password "$APW" --mech SCRAM-SHA-256-PLUS
is "$RC" 0 "slixmpp: wrong password then right one on the same stream: logged in"
like "$OUT" '^ATTEMPT n=1 result=failure condition=not-authorized ' "first attempt: <not-authorized/>"
is "$(result attempts)" 2 "two SASL attempts"
is "$(result connections)" 1 "one TCP connection (no reconnect)"

client --jid alice@example.test --password wrong-pw --retry-password "$APW" --mech PLAIN
is "$RC" 0 "PLAIN: wrong then right on the same stream: logged in"

raw --jid alice@example.test --password wrong-pw --password "$APW" --mech SCRAM-SHA-1
is "$RC" 0 "raw SCRAM-SHA-1: wrong then right on one stream: logged in and bound"
like "$OUT" '^SASL n=1 mech=SCRAM-SHA-1 result=failure condition=not-authorized ' "raw: first attempt not-authorized"

# --- unknown user == wrong password ---------------------------------------
for mech in SCRAM-SHA-256 PLAIN; do
	raw --jid alice@example.test --password wrong-pw --mech "$mech"
	wrong_line=$(printf '%s\n' "$OUT" | grep '^SASL n=1 ')
	wrong_rc=$RC
	raw --jid nosuchuser@example.test --password wrong-pw --mech "$mech"
	unknown_line=$(printf '%s\n' "$OUT" | grep '^SASL n=1 ')
	is "$wrong_rc/$(result condition "$wrong_line")" "1/not-authorized" "$mech: wrong password -> <not-authorized/>"
	is "$RC/$(result condition "$unknown_line")" "1/not-authorized" "$mech: unknown user -> <not-authorized/>"
	# Same number of challenges (a SCRAM server must fake a salt for unknown
	# users) and byte-identical <failure/> elements.
	is "$unknown_line" "$wrong_line" "$mech: unknown user's answer identical to wrong password's"
done
client --jid nosuchuser@example.test --password wrong-pw
is "$(result RESULT)/$(result condition)" "failure/not-authorized" "slixmpp: unknown user -> not-authorized"

# --- disabled account --------------------------------------------------------
out=$(ctl user disable carol@example.test 2>&1)
ok $? "xedgectl user disable carol@example.test" || diag "$out"
client --jid carol@example.test --password "$CPW" --mech SCRAM-SHA-256-PLUS
is "$(result RESULT)/$(result condition)" "failure/account-disabled" \
	"disabled user, right password (SCRAM-SHA-256-PLUS): <account-disabled/>"
client --jid carol@example.test --password "$CPW" --mech PLAIN
is "$(result RESULT)/$(result condition)" "failure/account-disabled" \
	"disabled user, right password (PLAIN): <account-disabled/>"
client --jid carol@example.test --password wrong-pw --mech SCRAM-SHA-256-PLUS
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"disabled user, wrong password: <not-authorized/> (nothing revealed)"
out=$(ctl user enable carol@example.test 2>&1)
ok $? "xedgectl user enable carol@example.test" || diag "$out"
client --jid carol@example.test --password "$CPW"
is "$RC" 0 "enabled again: carol logs in"

# --- expired password ---------------------------------------------------------
out=$(ctl user expire carol@example.test +30 2>&1 && ctl user show carol@example.test 2>&1)
like "$out" '^password expires: [0-9]{4}-[0-9]{2}-[0-9]{2}T' "xedgectl user expire +30: show gives the date" || diag "$out"
client --jid carol@example.test --password "$CPW"
is "$RC" 0 "a password that expires in 30 days still works"
out=$(ctl user expire carol@example.test now 2>&1 && ctl user list --expired 2>&1)
is "$out" "carol@example.test (expired)" "expire now: list --expired shows only carol, marked"
client --jid carol@example.test --password "$CPW" --mech SCRAM-SHA-256-PLUS
is "$(result RESULT)/$(result condition)" "failure/credentials-expired" \
	"expired password, right password (SCRAM-SHA-256-PLUS): <credentials-expired/>"
client --jid carol@example.test --password "$CPW" --mech PLAIN
is "$(result RESULT)/$(result condition)" "failure/credentials-expired" \
	"expired password, right password (PLAIN): <credentials-expired/>"
client --jid carol@example.test --password wrong-pw --mech SCRAM-SHA-256-PLUS
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"expired password, wrong password: <not-authorized/> (nothing revealed)"
printf '%s\n' "$CPW" | ctl user passwd carol@example.test >/dev/null 2>&1
client --jid carol@example.test --password "$CPW"
is "$RC" 0 "a new password (passwd) clears the expiry: carol logs in"
ctl user expire carol@example.test 2030-13-01 >/dev/null 2>&1
is "$?" 2 "expire with a bad date: usage error (exit 2)"

# --- the store cannot be read ---------------------------------------------
# a record xedge cannot parse (written straight into LMDB, as a disk error or
# a future version would leave it): the right answer is a temporary failure,
# not "wrong password"
printf 'broken@example.test\nnot a record\n' | mdb_load -T -s users "$XE_SANDBOX_DIR_SB/users" 2>&1
ok $? "a corrupt record for broken@example.test is in the store (mdb_load)"
client --jid broken@example.test --password whatever --mech PLAIN
is "$(result RESULT)/$(result condition)" "failure/temporary-auth-failure" \
	"a user whose record cannot be read: <temporary-auth-failure/> (PLAIN)"
client --jid broken@example.test --password whatever --mech SCRAM-SHA-256-PLUS
is "$(result RESULT)/$(result condition)" "failure/temporary-auth-failure" \
	"... and with SCRAM-SHA-256-PLUS"
like "$(grep 'event=auth-failed .*user=broken@example.test' "$XEDGE_LOG" | tail -n 1)" 'condition=temporary-auth-failure' \
	"... logged"

# --- TLS first ---------------------------------------------------------------
OUT=$(timeout 20 "$PY" "$XE_TOP_SRCDIR/t/lib/hostile.py" "$XEDGE_C2S" auth-before-tls 2>&1)
is "$(printf '%s\n' "$OUT" | sed -n 's/^FAILURE=//p')" "encryption-required" \
	"<auth/> before STARTTLS: <failure><encryption-required/>"

# --- attempts are limited -----------------------------------------------------
# Two failures: the stream stays open for another try.
raw --jid alice@example.test --password w1 --password w2 --expect-close 2
is "$(printf '%s\n' "$OUT" | grep -c '^SASL n=[0-9]* .*result=failure condition=not-authorized')" 2 \
	"two failed attempts, both not-authorized"
like "$OUT" '^CLOSE how=none ' "after 2 failures the stream is still open"

# Three failures: the server closes the stream (max_attempts = 3).
raw --jid alice@example.test --password w1 --password w2 --password w3 --expect-close 5
is "$(printf '%s\n' "$OUT" | grep -c '^SASL n=[0-9]* .*result=failure condition=not-authorized')" 3 \
	"three failed attempts, all not-authorized"
like "$OUT" '^CLOSE how=(stream-end|eof|reset|stream-error:[a-z-]+) ' "after the 3rd failure xedge closes the stream"
after=$(printf '%s\n' "$OUT" | sed -n 's/^CLOSE how=[^ ]* after=\([0-9.]*\).*/\1/p')
like "$after" '^[0-3]\.' "... promptly (${after:-?} s after the 3rd failure)"

# A 4th attempt, even with the right password, is not accepted on that stream.
raw --jid alice@example.test --password w1 --password w2 --password w3 --password "$APW"
like "$(result RESULT)" '^(closed|stream-error)$' "4th attempt (right password) after 3 failures: stream gone, no login"
is "$(printf '%s\n' "$OUT" | grep -c 'result=success')" 0 "no SASL success after 3 failures"

# The account is not locked for new streams by this.
client --jid alice@example.test --password "$APW"
is "$RC" 0 "a new stream logs in fine"
xedge_alive
ok $? "xedge still running"
