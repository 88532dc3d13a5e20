#!/bin/bash
# e2e-session.t: real sessions through xedge: two users exchange messages both
# ways, roster push/fetch reaches the backend's storage, and a user added with
# xedgectl while xedge runs can log in at once (and a password change too).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 17

APW="alice-$RANDOM-$RANDOM"
BPW="bob-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$APW" --user "bob@example.test=$BPW"

# --- messages both ways -------------------------------------------------
READY=$XE_SANDBOX_DIR/bob.ready
A2B=$(unique_token a2b)
B2A=$(unique_token b2a)
# bob: online, waits for alice's message, then answers it.
timeout -k 2 40 "$PY" "$XMPP_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --timeout 20 \
	--jid bob@example.test --password "$BPW" --resource bob \
	--ready-file "$READY" --expect-body "$A2B" --expect-from alice@example.test \
	--send-to alice@example.test --body "$B2A" --reply-after-expect --hold 1 \
	>"$XE_SANDBOX_DIR/bob.out" 2>"$XE_SANDBOX_DIR/bob.err" &
bob_pid=$!
# alice: waits until bob is online, sends, waits for the answer.
client --timeout 20 --jid alice@example.test --password "$APW" --resource alice \
	--wait-file "$READY" --send-to bob@example.test --body "$A2B" \
	--expect-body "$B2A" --expect-from bob@example.test
wait "$bob_pid"
bob_rc=$?
BOB_OUT=$(cat "$XE_SANDBOX_DIR/bob.out")
diag "bob:" "$(sed 's/^/  /' "$XE_SANDBOX_DIR/bob.out" "$XE_SANDBOX_DIR/bob.err")"

is "$RC" 0 "alice: logged in, sent to bob, got bob's answer"
is "$bob_rc" 0 "bob: logged in, got alice's message, answered"
like "$BOB_OUT" "^RECEIVED from=alice@example.test/alice to=bob@example.test(/bob)? body=$A2B\$" \
	"bob received alice's message, from alice's full JID"
like "$OUT" "^RECEIVED from=bob@example.test/bob to=alice@example.test(/alice)? body=$B2A\$" \
	"alice received bob's answer, from bob's full JID"

# --- roster -----------------------------------------------------------
client --jid alice@example.test --password "$APW" --roster-add carol@example.test --roster-name Carol
is "$RC" 0 "alice adds carol@example.test to her roster (roster set answered)"
like "$OUT" '^ROSTER_ITEM jid=carol@example.test name=Carol subscription=none$' \
	"the item is in the roster fetched in the same session"
client --jid alice@example.test --password "$APW" --roster
is "$RC" 0 "new session: roster fetch"
like "$OUT" '^ROSTER=(.*,)?carol@example.test(,.*)?$' "the item is still there (stored by the backend)"
client --jid bob@example.test --password "$BPW" --roster
is "$(printf '%s\n' "$OUT" | grep '^ROSTER=')" "ROSTER=-" "bob's roster is his own (empty)"

# --- users added / changed while xedge runs -----------------------------
DPW="dave-$RANDOM-$RANDOM"
out=$(user_add dave@example.test "$DPW" 2>&1)
ok $? "xedgectl user add dave@example.test (xedge running)" || diag "$out"
client --jid dave@example.test --password "$DPW"
is "$RC" 0 "dave logs in at once, without restarting xedge"
is "$(result attempts)" 1 "dave: first attempt succeeded"
like "$(ctl user list 2>&1)" 'dave@example.test' "xedgectl user list shows dave"

DPW2="dave2-$RANDOM-$RANDOM"
out=$(printf '%s\n' "$DPW2" | ctl user passwd dave@example.test 2>&1)
ok $? "xedgectl user passwd dave@example.test" || diag "$out"
client --jid dave@example.test --password "$DPW" --mech SCRAM-SHA-1-PLUS
is "$(result condition)" not-authorized "old password refused after passwd (SCRAM-SHA-1 secrets replaced)"
client --jid dave@example.test --password "$DPW2" --mech SCRAM-SHA-1-PLUS
is "$RC" 0 "new password accepted at once"

xedge_alive
ok $? "xedge still running"
