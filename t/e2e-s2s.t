#!/bin/bash
# e2e-s2s.t: federation through xedge (doc/federation.md). Two sandboxes,
# a.test on 127.0.0.11 and b.test on 127.0.0.12, each an xedge in front of
# its own Prosody, routed to each other (--peer): alice@a.test and
# bob@b.test, each logged in through their own xedge, message each other
# both ways; both xedge logs show dialback verified in each direction.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 9

[ -r "$XE_TOP_SRCDIR/contrib/prosody/mod_xedge_s2s.lua" ] ||
	bail "contrib/prosody/mod_xedge_s2s.lua (the backends' s2s glue) is missing"

XE_SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-e2e.XXXXXX") || bail "mktemp failed"
export XE_SANDBOX_DIR
s2s_cleanup() {
	local rc=$?
	for s in a b; do
		if [ "$_tap_failed" -gt 0 ] || [ $rc -ne 0 ]; then
			[ -f "$XE_SANDBOX_DIR/$s/xedge.log" ] &&
				diag "xedge of $s.test:" "$(grep -v 'health-check' "$XE_SANDBOX_DIR/$s/xedge.log" | tail -n 40 | sed 's/^/  /')"
		fi
		[ -d "$XE_SANDBOX_DIR/$s" ] && timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/$s" >/dev/null 2>&1
	done
	[ -n "${XE_KEEP_SANDBOX:-}" ] || rm -rf "$XE_SANDBOX_DIR"
	[ "$_tap_failed" -gt 0 ] && [ $rc -eq 0 ] && rc=1
	[ "$_tap_n" -ne "$_tap_planned" ] && [ $rc -eq 0 ] && rc=1
	exit $rc
}
trap s2s_cleanup EXIT
trap 'exit 130' INT TERM

APW="alice-$RANDOM-$RANDOM"
BPW="bob-$RANDOM-$RANDOM"
# the same ports on both addresses; s2s on base+20 (s2s_backend base+21)
up() { # up S ADDR PEER-DOMAIN PEER-ADDR USER
	timeout -k 5 90 "$SANDBOX" up "$XE_SANDBOX_DIR/$1" --domain "$1.test" --address "$2" \
		--base-port "$base" --s2s-port $((base + 20)) --peer "$3=$4:$((base + 20))" \
		--user "$5" --conf 'lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 0; };' \
		>"$XE_SANDBOX_DIR/$1.out" 2>"$XE_SANDBOX_DIR/$1.err"
}
for try in 1 2 3; do
	base=$(pick_base_port) || bail "no free port range found"
	up a 127.0.0.11 b.test 127.0.0.12 "alice@a.test=$APW" &&
		up b 127.0.0.12 a.test 127.0.0.11 "bob@b.test=$BPW" && break
	diag "sandboxes did not start (try $try):" "$(tail -n 15 "$XE_SANDBOX_DIR"/*.err | sed 's/^/  /')"
	for s in a b; do
		[ -d "$XE_SANDBOX_DIR/$s" ] && timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/$s" >/dev/null 2>&1
		rm -rf "${XE_SANDBOX_DIR:?}/$s"
	done
	[ $try = 3 ] && bail "the two sandboxes did not start"
done
ALOG=$XE_SANDBOX_DIR/a/xedge.log
BLOG=$XE_SANDBOX_DIR/b/xedge.log
like "$(cat "$XE_SANDBOX_DIR/a.out")" "XEDGE_S2S=127.0.0.11:$((base + 20))" "a.test: XEDGE_S2S printed"
like "$(cat "$XE_SANDBOX_DIR/b.out")" "XEDGE_S2S_BACKEND=127.0.0.12:$((base + 21))" \
	"b.test: XEDGE_S2S_BACKEND printed"

# bob: online at b.test, waits for alice's message, answers it
READY=$XE_SANDBOX_DIR/bob.ready
A2B=$(unique_token a2b)
B2A=$(unique_token b2a)
timeout -k 2 60 "$PY" "$XMPP_CLIENT" --server "127.0.0.12:$base" --cafile "$XE_SANDBOX_DIR/b/cert.pem" \
	--timeout 40 --jid bob@b.test --password "$BPW" --resource bob \
	--ready-file "$READY" --expect-body "$A2B" --expect-from alice@a.test \
	--send-to alice@a.test --body "$B2A" --reply-after-expect --hold 1 \
	>"$XE_SANDBOX_DIR/bob.out" 2>"$XE_SANDBOX_DIR/bob.err" &
bob_pid=$!
# alice: at a.test, once bob is online: sends, waits for the answer
OUT=$(timeout -k 2 60 "$PY" "$XMPP_CLIENT" --server "127.0.0.11:$base" \
	--cafile "$XE_SANDBOX_DIR/a/cert.pem" --timeout 40 --jid alice@a.test --password "$APW" \
	--resource alice --wait-file "$READY" --send-to bob@b.test --body "$A2B" \
	--expect-body "$B2A" --expect-from bob@b.test 2>"$XE_SANDBOX_DIR/alice.err")
RC=$?
wait "$bob_pid"
bob_rc=$?
BOB_OUT=$(cat "$XE_SANDBOX_DIR/bob.out")
diag "alice:" "$(printf '%s\n' "$OUT" | sed 's/^/  /')" "bob:" "$(sed 's/^/  /' "$XE_SANDBOX_DIR/bob.out")"

is "$RC" 0 "alice@a.test: sent to bob@b.test, got his answer"
is "$bob_rc" 0 "bob@b.test: got alice's message, answered"
like "$BOB_OUT" "^RECEIVED from=alice@a.test/alice to=bob@b.test(/bob)? body=$A2B\$" \
	"bob received alice's message across the federation"
like "$OUT" "^RECEIVED from=bob@b.test/bob to=alice@a.test(/alice)? body=$B2A\$" \
	"alice received bob's answer across the federation"

# dialback, verified in each direction (b.test asks a.test, and back)
grep -q 'event=s2s-auth mech=dialback .*remote=a.test local=b.test' "$BLOG"
ok $? "b.test's xedge: a.test authenticated by dialback"
grep -q 'event=s2s-verify .*remote=b.test local=a.test result=valid' "$ALOG"
ok $? "a.test's xedge: b.test's db:verify answered valid"
grep -q 'event=s2s-auth mech=dialback .*remote=b.test local=a.test' "$ALOG" &&
	grep -q 'event=s2s-verify .*remote=a.test local=b.test result=valid' "$BLOG"
ok $? "and the other way: a.test authenticated b.test, verified by b.test's xedge"
