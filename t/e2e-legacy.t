#!/bin/bash
# e2e-legacy.t: the legacy mechanisms, DIGEST-MD5 and CRAM-MD5, off by
# default; when enabled, only for a user on whom the operator kept a
# plaintext-equivalent (xedgectl --legacy-mechs). The seed's DIGEST-MD5
# login is replayed byte by byte (t/lib/digest_seed.py).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 18

PW="leg-$RANDOM-$RANDOM"
SEED="$XE_TOP_SRCDIR/t/lib/digest_seed.py"
seed() { OUT=$(timeout 30 "$PY" "$SEED" "$XEDGE_C2S" "$XEDGE_CERT" "$@" 2>&1); diag "$OUT"; }
verdict() { printf '%s\n' "$OUT" | sed -n 's/^VERDICT=//p'; }

# by default: not offered
sandbox_up --user "alice@example.test=$PW"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
unlike=$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls' | grep -c 'DIGEST-MD5\|CRAM-MD5')
is "$unlike" 0 "by default neither DIGEST-MD5 nor CRAM-MD5 is offered"
sandbox_down

sandbox_up --user "alice@example.test=$PW" \
	--conf 'sasl = { mechanisms = [ "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "DIGEST-MD5", "CRAM-MD5", "PLAIN" ]; };'
out=$(printf '%s\n' "$PW" | ctl user add --legacy-mechs bob@example.test 2>&1)
ok $? "xedgectl user add --legacy-mechs bob@example.test" || diag "$out"
like "$(ctl user show bob@example.test 2>&1)" '^legacy mechanisms: yes' "show: legacy mechanisms: yes"
like "$(ctl user show alice@example.test 2>&1)" '^legacy mechanisms: no' "show: alice has none"

seed bob@example.test "$PW"
is "$(verdict)" "ok" "the seed's DIGEST-MD5 exchange, steps 8-13, element by element"
like "$OUT" 'STEP 9 challenge: .*qop="auth".*charset=utf-8,algorithm=md5-sess' "step 9: qop, charset, algorithm as in the seed"
like "$OUT" 'STEP 11 challenge: rspauth=[0-9a-f]{32}$' "step 11: rspauth, which proves the server knows the password"
seed bob@example.test wrong-password
like "$(verdict)" '^fail:11:.*not-authorized' "a wrong password: <not-authorized/> instead of the second challenge"
seed alice@example.test "$PW"
like "$(verdict)" '^fail:11:.*not-authorized' "a user without legacy secrets cannot use DIGEST-MD5"
seed nobody@example.test "$PW"
like "$(verdict)" '^fail:11:.*not-authorized' "an unknown user fails at the same step"

client --jid bob@example.test --password "$PW" --mech DIGEST-MD5
is "$(result mech)" "DIGEST-MD5" "slixmpp logs in with DIGEST-MD5"
client --jid bob@example.test --password "$PW" --mech CRAM-MD5
is "$(result mech)" "CRAM-MD5" "slixmpp logs in with CRAM-MD5"
client --jid bob@example.test --password "$PW" --mech SCRAM-SHA-256-PLUS
is "$RC" 0 "bob still logs in with SCRAM"

NEW="new-$PW"
out=$(printf '%s\n' "$NEW" | ctl user passwd bob@example.test 2>&1)
seed bob@example.test "$NEW"
is "$(verdict)" "ok" "passwd keeps the legacy setting: DIGEST-MD5 with the new password"
out=$(printf '%s\n' "$NEW" | ctl user passwd --no-legacy-mechs bob@example.test 2>&1)
ok $? "xedgectl user passwd --no-legacy-mechs" || diag "$out"
seed bob@example.test "$NEW"
like "$(verdict)" '^fail:11:.*not-authorized' "... then DIGEST-MD5 no longer works for bob"
rec=$(mdb_dump -p -s users "$XE_SANDBOX_DIR_SB/users" 2>/dev/null | grep -A1 '^ bob@example.test$' | tail -1)
ok "$(case "$rec" in *SCRAM-SHA-256=*legacy-password* | *legacy-password*SCRAM* | "") echo 1 ;; *SCRAM-SHA-256=*) echo 0 ;; *) echo 1 ;; esac)" \
	"... and the store no longer holds his password (his record has SCRAM secrets only)"
client --jid bob@example.test --password "$NEW" --mech SCRAM-SHA-256-PLUS
is "$RC" 0 "... while SCRAM works with it"
