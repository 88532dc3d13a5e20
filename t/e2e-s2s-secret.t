#!/bin/bash
# e2e-s2s-secret.t: federation with a pre-shared secret (s2s.peers[]
# secret_file, policy "secret"; doc/federation.md). Two sandboxes, a.test on
# 127.0.0.11 and b.test on 127.0.0.12 (as t/e2e-s2s-dialback.t), each listing the
# other with the same secret (--peer-secret): alice and bob message each
# other both ways, each xedge logs SCRAM-SHA-256-PLUS (the secret's SCRAM-SHA-256
# bound to the TLS session) inbound and outbound and no
# dialback. Then b.test comes back with a wrong secret: its stream to a.test
# is refused (both logs say so, no dialback tried), and bob still logs in
# on his xedge.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 19

[ -r "$XE_TOP_SRCDIR/contrib/prosody/mod_xedge_s2s.lua" ] ||
	bail "contrib/prosody/mod_xedge_s2s.lua (the backends' s2s glue) is missing"

XE_SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-e2e.XXXXXX") || bail "mktemp failed"
export XE_SANDBOX_DIR
s2s_cleanup() {
	local rc=$?
	for s in a b b2; do
		if [ "$_tap_failed" -gt 0 ] || [ $rc -ne 0 ]; then
			[ -f "$XE_SANDBOX_DIR/$s/xedge.log" ] &&
				diag "xedge of $s:" "$(grep -v 'health-check' "$XE_SANDBOX_DIR/$s/xedge.log" | tail -n 40 | sed 's/^/  /')"
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
SECRET=$XE_SANDBOX_DIR/peer.secret
WRONG=$XE_SANDBOX_DIR/wrong.secret
(umask 077 && openssl rand -hex 32 >"$SECRET" && openssl rand -hex 32 >"$WRONG") ||
	bail "cannot make the secrets"
up() { # up DIR DOMAIN ADDR PEER-DOMAIN PEER-ADDR USER SECRET-FILE
	timeout -k 5 90 "$SANDBOX" up "$XE_SANDBOX_DIR/$1" --domain "$2" --address "$3" \
		--base-port "$base" --s2s-port $((base + 20)) --peer "$4=$5:$((base + 20))" \
		--peer-secret "$4=$7" --user "$6" \
		--conf 'lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 0; };' \
		>"$XE_SANDBOX_DIR/$1.out" 2>"$XE_SANDBOX_DIR/$1.err"
}
for try in 1 2 3; do
	base=$(pick_base_port) || bail "no free port range found"
	up a a.test 127.0.0.11 b.test 127.0.0.12 "alice@a.test=$APW" "$SECRET" &&
		up b b.test 127.0.0.12 a.test 127.0.0.11 "bob@b.test=$BPW" "$SECRET" && break
	diag "sandboxes did not start (try $try):" "$(tail -n 15 "$XE_SANDBOX_DIR"/*.err | sed 's/^/  /')"
	for s in a b; do
		[ -d "$XE_SANDBOX_DIR/$s" ] && timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/$s" >/dev/null 2>&1
		rm -rf "${XE_SANDBOX_DIR:?}/$s"
	done
	[ $try = 3 ] && bail "the two sandboxes did not start"
done
ALOG=$XE_SANDBOX_DIR/a/xedge.log
BLOG=$XE_SANDBOX_DIR/b/xedge.log
grep -q "policy = \"secret\"; secret_file = \"$SECRET\"" "$XE_SANDBOX_DIR/a/xedge.conf"
ok $? "a.test's xedge.conf lists b.test with the secret (--peer-secret)"

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
OUT=$(timeout -k 2 60 "$PY" "$XMPP_CLIENT" --server "127.0.0.11:$base" \
	--cafile "$XE_SANDBOX_DIR/a/cert.pem" --timeout 40 --jid alice@a.test --password "$APW" \
	--resource alice --wait-file "$READY" --send-to bob@b.test --body "$A2B" \
	--expect-body "$B2A" --expect-from bob@b.test 2>"$XE_SANDBOX_DIR/alice.err")
RC=$?
wait "$bob_pid"
bob_rc=$?
diag "alice:" "$(printf '%s\n' "$OUT" | sed 's/^/  /')" "bob:" "$(sed 's/^/  /' "$XE_SANDBOX_DIR/bob.out")"
is "$RC" 0 "alice@a.test: sent to bob@b.test, got his answer"
is "$bob_rc" 0 "bob@b.test: got alice's message, answered"
like "$(cat "$XE_SANDBOX_DIR/bob.out")" "^RECEIVED from=alice@a.test/alice to=bob@b.test(/bob)? body=$A2B\$" \
	"bob received alice's message across the federation"

grep -q 'event=s2s-auth mech=SCRAM-SHA-256-PLUS .*remote=a.test local=b.test' "$BLOG" &&
	grep -q 'event=s2s-out .*local=a.test remote=b.test mech=SCRAM-SHA-256-PLUS' "$ALOG"
ok $? "a.test -> b.test: authenticated by SCRAM-SHA-256-PLUS with the secret (bound to TLS; both logs)"
grep -q 'event=s2s-auth mech=SCRAM-SHA-256-PLUS .*remote=b.test local=a.test' "$ALOG" &&
	grep -q 'event=s2s-out .*local=b.test remote=a.test mech=SCRAM-SHA-256-PLUS' "$BLOG"
ok $? "b.test -> a.test: authenticated by SCRAM-SHA-256-PLUS with the secret (bound to TLS; both logs)"
! grep -Eq 'mech=dialback|event=s2s-verify' "$ALOG" "$BLOG"
ok $? "no dialback either way"

# the operator's view of a.test: xedgectl s2s list, the metrics
ACTL=$(sed -n 's/^XEDGECTL=//p' "$XE_SANDBOX_DIR/a.out")
AMET=$(sed -n 's/^XEDGE_METRICS=//p' "$XE_SANDBOX_DIR/a.out")
metrics() { "$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"; }
LIST=$($ACTL s2s list 2>&1)
diag "a.test: xedgectl s2s list:" "$(printf '%s\n' "$LIST" | sed 's/^/  /')"
like "$LIST" "s2s id=[0-9]+ direction=in kind=in local=a.test remote=b.test peer=[^ ]+ state=ready mech=SCRAM-SHA-256-PLUS since=[0-9]+ age_s=[0-9]+ bytes=[1-9]" \
	"s2s list: b.test's stream in, by SCRAM-SHA-256-PLUS, with bytes"
like "$LIST" "direction=out kind=out local=a.test remote=b.test peer=127.0.0.12:[0-9]+ state=ready mech=SCRAM-SHA-256-PLUS" \
	"s2s list: the stream out to b.test, by SCRAM-SHA-256-PLUS"
$ACTL s2s list --json | "$PY" -c 'import json, sys; l = json.load(sys.stdin); sys.exit(0 if any(s["direction"] == "out" and s["mech"] == "SCRAM-SHA-256-PLUS" for s in l) else 1)'
ok $? "s2s list --json: a JSON array of the streams"
M=$(metrics "$AMET")
like "$M" 'xedge_s2s_auth_in_total\{mechanism="SCRAM-SHA-256-PLUS",result="success"\} [1-9]' \
	"metrics: inbound authentications by mechanism and result"
like "$M" 'xedge_s2s_auth_out_total\{mechanism="SCRAM-SHA-256-PLUS",result="success"\} [1-9]' \
	"metrics: outbound authentications by mechanism and result"
like "$M" 'xedge_s2s_streams_total\{kind="in"\} [1-9]' "metrics: s2s streams opened, by kind"
like "$M" 'xedge_s2s_streams\{kind="out",state="ready"\} 1' "metrics: open s2s streams, by kind and state"

# b.test again, with a wrong secret for a.test (same ports; a.test unchanged)
timeout 30 "$SANDBOX" down "$XE_SANDBOX_DIR/b" >/dev/null 2>&1
up b2 b.test 127.0.0.12 a.test 127.0.0.11 "bob@b.test=$BPW" "$WRONG" ||
	bail "b.test did not come back: $(tail -n 15 "$XE_SANDBOX_DIR/b2.err")"
B2LOG=$XE_SANDBOX_DIR/b2/xedge.log
AMARK=$(wc -l <"$ALOG")
OUT=$(timeout -k 2 40 "$PY" "$XMPP_CLIENT" --server "127.0.0.12:$base" \
	--cafile "$XE_SANDBOX_DIR/b2/cert.pem" --timeout 20 --jid bob@b.test --password "$BPW" \
	--resource bob2 --send-to alice@a.test --body "$(unique_token refused)" --hold 1 2>&1)
is "$?" 0 "b.test with the wrong secret: bob still logs in on his xedge (and sends)"
for _ in $(seq 1 100); do
	grep -q 'event=s2s-auth-failed kind=s2s-out mech=SCRAM-SHA-256-PLUS .*remote=a.test' "$B2LOG" && break
	sleep 0.2
done
tail -n +$((AMARK + 1)) "$ALOG" |
	grep -q 'event=s2s-auth-failed mech=SCRAM-SHA-256-PLUS .*remote=b.test local=a.test reason=not-authorized'
ok $? "a.test: b.test's wrong secret refused (event=s2s-auth-failed mech=SCRAM-SHA-256-PLUS)"
grep -q 'event=s2s-auth-failed kind=s2s-out mech=SCRAM-SHA-256-PLUS .*remote=a.test reason=not-authorized' "$B2LOG"
ok $? "b.test: its authentication refused, logged"
! grep -Eq 'event=s2s-out .*remote=a.test mech=|mech=dialback' "$B2LOG" &&
	! tail -n +$((AMARK + 1)) "$ALOG" | grep -q 'event=s2s-auth .*remote=b.test'
ok $? "no federation: no dialback tried, nothing authenticated"
like "$(metrics "$AMET")" 'xedge_s2s_auth_in_total\{mechanism="SCRAM-SHA-256-PLUS",result="not-authorized"\} [1-9]' \
	"metrics: the refused attempt counted"
