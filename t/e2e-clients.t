#!/bin/bash
# e2e-clients.t: another real client, go-sendxmpp (Go, go-xmpp: PLAIN under
# TLS, a line break before its restarted stream), over STARTTLS and Direct
# TLS; slixmpp, online through xedge too, receives what it sends.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 7

command -v go-sendxmpp >/dev/null || bail "go-sendxmpp is not installed (apt-get install go-sendxmpp)"
PW="cl-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB

# send_and_receive MODE: bob waits online (slixmpp); alice sends with go-sendxmpp
send_and_receive() {
	local mode=$1 body="via go-sendxmpp $1 $RANDOM" flags=() server=$XEDGE_C2S
	if [ "$mode" = direct ]; then
		flags=(-t)
		server=$XEDGE_DIRECT_TLS
	fi
	rm -f "$SB/bob.ready"
	timeout 40 "$PY" "$XMPP_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" \
		--jid bob@example.test --password "$PW" --resource "bob-$mode" \
		--ready-file "$SB/bob.ready" --expect-body "$body" --timeout 30 >"$SB/bob.out" 2>&1 &
	local bob=$!
	for _ in $(seq 1 200); do [ -s "$SB/bob.ready" ] && break; sleep 0.05; done
	SSL_CERT_FILE=$XEDGE_CERT timeout 30 go-sendxmpp "${flags[@]}" -u alice@example.test -p "$PW" \
		-j "$server" bob@example.test <<<"$body" >"$SB/gs.out" 2>&1
	GS_RC=$?
	wait "$bob"
	BOB_RC=$?
	diag "go-sendxmpp ($mode): rc=$GS_RC $(cat "$SB/gs.out")" "bob: $(cat "$SB/bob.out")"
}

send_and_receive starttls
is "$GS_RC" 0 "go-sendxmpp logs in over STARTTLS (certificate verified) and sends"
is "$BOB_RC" 0 "bob (slixmpp) receives its message through xedge and Prosody"
send_and_receive direct
is "$GS_RC" 0 "go-sendxmpp over Direct TLS"
is "$BOB_RC" 0 "bob receives that one too"
is "$(grep -c 'event=session .*jid=alice@example.test mech=PLAIN' "$XEDGE_LOG")" 2 \
	"xedge logged both go-sendxmpp sessions (PLAIN under TLS)"
! grep -q 'event=starttls-injection' "$XEDGE_LOG"
ok $? "a line break after <starttls/> is not taken for an injection"
xedge_alive
ok $? "xedge is still running"
