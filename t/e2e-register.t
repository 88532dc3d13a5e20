#!/bin/bash
# e2e-register.t: in-band registration (XEP-0077), off by default. When a
# domain has `register = true;`, a client creates its account on the stream
# (LMDB, SCRAM secrets), logs in on the same stream, and later changes its
# password or removes the account: those requests are answered by xedge,
# whose post-authentication parser forwards every other stanza unchanged.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 13

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
	--conf 'limits = { registrations_per_address = 4; };'
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
