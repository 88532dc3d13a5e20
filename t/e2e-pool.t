#!/bin/bash
# e2e-pool.t: a pool of two real Prosody backends. Every user lands on the
# backend that weighted rendezvous hashing of the bare JID names (computed
# here independently, from the documented formula), every time, and the
# users spread over both backends. A user the operator pins to a server
# (xedgectl user pin) goes there instead, until the pin is removed.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

N=24
plan 10

PW="pool-$RANDOM-$RANDOM"
args=()
users=()
for i in $(seq 1 $N); do
	users+=("user$i@example.test")
	args+=(--user "user$i@example.test=$PW")
done
sandbox_up --backends 2 "${args[@]}"

OUT=$(timeout 120 "$PY" "$XE_TOP_SRCDIR/t/lib/pool_check.py" "$XEDGE_C2S" "$XEDGE_CERT" "$PW" \
	"$XEDGE_LOG" prosody-0,prosody-1 "${users[@]}" 2>&1)
diag "$OUT"
lines=$(printf '%s\n' "$OUT" | grep -c '^USER ')
is "$lines" "$N" "all $N users logged in twice"
same=$(printf '%s\n' "$OUT" | awk '/^USER / && $3 != "first=-" && substr($3, 7) == substr($4, 8) {n++} END {print n + 0}')
is "$same" "$N" "each user's second session went to the same backend as the first"
match=$(printf '%s\n' "$OUT" | awk '/^USER / && substr($3, 7) == substr($5, 10) {n++} END {print n + 0}')
is "$match" "$N" "each backend is the one rendezvous hashing names"
on0=$(printf '%s\n' "$OUT" | grep -c 'first=prosody-0 ')
on1=$(printf '%s\n' "$OUT" | grep -c 'first=prosody-1 ')
ok "$([ "$on0" -ge 4 ] && [ "$on1" -ge 4 ] && echo 0 || echo 1)" \
	"users spread over both backends ($on0 on prosody-0, $on1 on prosody-1)"
# --- pins ---------------------------------------------------------------------
hashed=$(printf '%s\n' "$OUT" | awk '$2 == "user1@example.test" {print substr($3, 7)}')
other=prosody-0
[ "$hashed" = prosody-0 ] && other=prosody-1
out=$(ctl user pin user1@example.test "$other" 2>&1)
ok $? "xedgectl user pin user1 $other (its hash choice is $hashed)" || diag "$out"
client --jid user1@example.test --password "$PW" --resource pinned
like "$(grep 'event=session .*jid=user1@example.test ' "$XEDGE_LOG" | tail -n 1)" "backend=$other\$" \
	"the pinned user goes to $other"
out=$(ctl user pin user1@example.test prosody-9 2>&1)
is "$?/$out" "1/xedgectl: user pin: pool main of example.test has no server named 'prosody-9'" \
	"a pin to a server the pool does not have is refused"
ctl user pin user1@example.test --none >/dev/null 2>&1
client --jid user1@example.test --password "$PW" --resource unpinned
like "$(grep 'event=session .*jid=user1@example.test ' "$XEDGE_LOG" | tail -n 1)" "backend=$hashed\$" \
	"pin --none: back to the hash choice ($hashed)"
like "$(ctl user show user1@example.test)" "pin: \(none\)" "... and show says (none)"

xedge_alive
ok $? "xedge is still running"
