#!/bin/bash
# e2e-lockout.t: brute-force protection. Failed logins from one address are
# answered ever more slowly and then refused for a while, even with the right
# password; so are an account's, from any address; meanwhile other users log
# in at normal speed. xedgectl shows and clears the lockouts on the control
# socket. Clients look like different hosts by binding to 127.0.0.x.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 31

PW="lo-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "carol@example.test=$PW" --enable iq-auth \
	--conf 'lockout = { free_failures = 2; delay_ms = 500; max_delay_ms = 1000;
	          address_threshold = 5; account_threshold = 6; lockout_time = 120; window = 120; };' \
	--conf 'sasl = { max_attempts = 10; };'
SB=$XE_SANDBOX_DIR_SB
took() { printf '%s\n' "${2-$OUT}" | sed -n "s/^TIMING n=$1 took=//p"; }
# ge A B: A >= B (decimals)
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
refused_text='too many failed login attempts'

[ -S "${XEDGE_CONTROL:-}" ] || bail "the sandbox printed no XEDGE_CONTROL socket"

# --- baseline: alice from 127.0.0.3 --------------------------------------------
raw --jid alice@example.test --password "$PW" --source 127.0.0.3
is "$RC" 0 "baseline: alice logs in from 127.0.0.3"
base=$(result elapsed)

# --- an address: mallory (no such user) from 127.0.0.2 -------------------------
"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --timeout 20 \
	--jid mallory@example.test --source 127.0.0.2 \
	--password w1 --password w2 --password w3 --password w4 --password w5 \
	>"$SB/attack.out" 2>"$SB/attack.err" &
attacker=$!
sleep 1 # the attacker is in its delays now
raw --jid alice@example.test --password "$PW" --source 127.0.0.3
is "$RC" 0 "during the attack, alice logs in from 127.0.0.3"
during=$(result elapsed)
limit=$(awk -v b="$base" 'BEGIN { printf "%.3f", 3 * b + 0.25 }')
ge "$limit" "$during"
ok $? "... at normal speed (${during}s; baseline ${base}s, limit ${limit}s)"
wait $attacker
A=$(cat "$SB/attack.out")
diag "attacker:" "$(printf '%s\n' "$A" | grep -E '^(TIMING|RESULT)' | sed 's/^/  /')"
is "$(printf '%s\n' "$A" | grep -c '^SASL n=[0-9]* .*result=failure condition=not-authorized')" 5 \
	"the attacker's 5 attempts fail"
t1=$(took 1 "$A") t2=$(took 2 "$A") t3=$(took 3 "$A") t4=$(took 4 "$A")
ge 0.3 "$t2"
ok $? "the first failures are answered at once (${t1}s, ${t2}s)"
ge "$t3" 0.45
ok $? "the 3rd failure is held (${t3}s >= 0.5s delay)"
ge "$t4" 0.95
ok $? "the 4th is held longer (${t4}s >= 1s delay)"
like "$(cat "$XEDGE_LOG")" 'event=lockout kind=address key=127\.0\.0\.2 failures=5 duration_ms=120000' \
	"the log has event=lockout for the address"

raw --jid alice@example.test --password "$PW" --source 127.0.0.2
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"locked-out address: alice is refused even with the right password"
like "$OUT" "<text[^>]*>$refused_text" "... with a text saying why"
ge "$(took 1)" 0.95
ok $? "... and the refusal is held too ($(took 1)s)"
like "$(grep 'detail="locked out"' "$XEDGE_LOG")" 'user=alice@example\.test' \
	"the refused attempt is logged, no password checked"
raw --jid alice@example.test --password "$PW" --source 127.0.0.2 --iq-auth plain --resource r
is "$(result condition)/$(result code)" "not-authorized/401" \
	"locked-out address: so is her non-SASL login (iq-auth) from there"

# --- unknown and known users get the same delays -------------------------------
raw --jid alice@example.test --password x1 --password x2 --password x3 --source 127.0.0.7
k3=$(took 3)
ok "$(ge "$k3" 0.45 && ge "$(awk -v a="$t3" 'BEGIN { print a + 0.3 }')" "$k3"; echo $?)" \
	"a known user's 3rd failure is held like an unknown user's (${k3}s vs ${t3}s)"

# --- an account: carol from several addresses ----------------------------------
raw --jid carol@example.test --mech PLAIN --password c1 --password c2 --password c3 --source 127.0.0.4
is "$(result RESULT)" failure "carol: 3 failures from 127.0.0.4"
raw --jid carol@example.test --mech SCRAM-SHA-1 --password c4 --password c5 --password c6 --source 127.0.0.5
is "$(result RESULT)" failure "carol: 3 failures from 127.0.0.5"
ge "$(took 3)" 0.95
ok $? "... held by the account's count across addresses ($(took 3)s)"
like "$(cat "$XEDGE_LOG")" 'event=lockout kind=account key=carol@example\.test failures=6' \
	"the log has event=lockout for the account"
raw --jid carol@example.test --password "$PW" --source 127.0.0.6
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"locked-out account: carol is refused from a fresh address, right password"
like "$OUT" "<text[^>]*>$refused_text" "... with the text"
raw --jid alice@example.test --password "$PW" --source 127.0.0.6
is "$RC" 0 "alice logs in from that address"

# --- xedgectl lockout ------------------------------------------------------------
list=$(ctl lockout list)
ok $? "xedgectl lockout list" || diag "$list"
diag "$list"
like "$list" '^entry kind=address key=127\.0\.0\.2 failures=5 locked=yes remaining_ms=[0-9]+ lockouts=1$' \
	"list: the locked address"
like "$list" '^entry kind=account key=carol@example\.test failures=6 locked=yes ' "list: the locked account"
json=$(ctl lockout list --json)
is "$(printf '%s' "$json" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for e in d["entries"] if e["locked"]), d["stats"]["lockouts"])')" \
	"2 2" "list --json: two locked entries, two lockouts so far"

out=$(ctl lockout clear carol@example.test)
is "$?/$out" "0/cleared=1" "xedgectl lockout clear carol@example.test"
raw --jid carol@example.test --password "$PW" --source 127.0.0.6
is "$RC" 0 "carol logs in again"
ctl lockout clear nosuch@example.test >/dev/null 2>&1
is "$?" 1 "clear of an unknown key: exit status 1"
out=$(ctl lockout clear --all)
ok $? "xedgectl lockout clear --all ($out)"
raw --jid alice@example.test --password "$PW" --source 127.0.0.2
is "$RC" 0 "the address is free again: alice logs in from 127.0.0.2"
like "$(ctl lockout list)" '^stats entries=0 locked=0 ' "nothing locked any more"
