#!/bin/bash
# e2e-sasl2-xmppjs.t: a real modern client, xmpp.js 0.14 (@xmpp/client with
# its bundled @xmpp/sasl2, Bind2, FAST and @xmpp/sasl-ht-sha-256-none; node,
# t/lib/xmppjs/sasl2.mjs), through xedge: SASL2 + Bind2 with the password,
# a FAST token asked for and given, a second connection that logs in with
# HT-SHA-256-NONE (its password wrong, so only the token can have done it),
# messages both times through the backend and to a second user; in front
# of Prosody, ejabberd, and jabberd2 (Bind2 without the inline features
# jabberd2 cannot do).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 21

SASL2_CONF=${SASL2_CONF:-'sasl2 = { enabled = true; };'}
JSDIR="$XE_TOP_SRCDIR/t/lib/xmppjs"
MODULES=${XMPPJS_MODULES:-$JSDIR/node_modules}
command -v node >/dev/null || bail "node is not installed (contrib/bootstrap deps installs it)"
[ -f "$MODULES/@xmpp/client/package.json" ] ||
	bail "xmpp.js is not installed in $MODULES: run contrib/bootstrap deps (npm ci in t/lib/xmppjs)"
grep -q '"version": "0.14' "$MODULES/@xmpp/client/package.json" ||
	bail "this test is written for @xmpp/client 0.14 (its sasl2, bind2 and fast)"

PW="js2-$RANDOM-$RANDOM"
A=alice@example.test
B=bob@example.test

# xmppjs ARGS...: t/lib/xmppjs/sasl2.mjs from a copy beside node_modules
# (ES modules are found from the script's directory); OUT, RC
xmppjs() {
	local sb=$XE_SANDBOX_DIR_SB
	[ -f "$sb/xmppjs/sasl2.mjs" ] || { mkdir -p "$sb/xmppjs" && cp "$JSDIR/sasl2.mjs" "$sb/xmppjs/" &&
		ln -sfn "$MODULES" "$sb/xmppjs/node_modules"; } || bail "cannot set up $sb/xmppjs"
	OUT=$(NODE_EXTRA_CA_CERTS=$XEDGE_CERT timeout -k 2 40 node "$sb/xmppjs/sasl2.mjs" \
		--server "$XEDGE_C2S" --domain example.test --timeout 30 "$@" 2>"$sb/xmppjs.err")
	RC=$?
	diag "sasl2.mjs $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$sb/xmppjs.err" ] && diag "  stderr:" "$(tail -n 20 "$sb/xmppjs.err" | sed 's/^/    /')"
	return 0
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | tail -n 1; }

# one backend kind: 7 tests
run_block() { # NAME
	local name=$1 peer_out
	# bob waits for the message xmpp.js sends him on its token connection
	rm -f "$XE_SANDBOX_DIR/bob.ready"
	timeout -k 2 50 "$PY" "$XE_TOP_SRCDIR/t/lib/sasl2_client.py" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" \
		--jid "$B" --password "$PW" --bind --presence --ready-file "$XE_SANDBOX_DIR/bob.ready" \
		--read-for 40 --timeout 45 >"$XE_SANDBOX_DIR/bob.out" 2>&1 &
	local bob=$!
	for _ in $(seq 1 200); do [ -s "$XE_SANDBOX_DIR/bob.ready" ] && break; sleep 0.1; done
	xmppjs --username alice --password "$PW" --password2 "wrong-$PW" --resource js --peer "$B"
	is "$(val SASL2_1)/$(val MECH1)/$(val BIND2_1)" "1/SCRAM-SHA-1/1" \
		"$name: xmpp.js logs in with SASL2 <authenticate> (SCRAM-SHA-1) and Bind2"
	is "$(val REQUEST_TOKEN)/$(val TOKEN)/$(val TOKEN_MECH)" "1/1/HT-SHA-256-NONE" \
		"$name: ... asks for a FAST token and gets one for HT-SHA-256-NONE"
	like "$(val JID1)" "^$A/js" "$name: ... bound with its tag ($(val JID1))"
	is "$(val MESSAGE1)" ok "$name: ... a message to itself comes back through the backend"
	is "$(val SASL2_2)/$(val MECH2)" "1/HT-SHA-256-NONE" \
		"$name: the reconnection logs in with the token (its password is wrong)"
	is "$(val MESSAGE2)/$(val PEER)/$(val RESULT)" "ok/sent/ok" "$name: ... and exchanges messages"
	kill "$bob" 2>/dev/null
	wait "$bob" 2>/dev/null
	peer_out=$(cat "$XE_SANDBOX_DIR/bob.out")
	like "$peer_out" "^MSG=xmppjs-to-peer-" "$name: the other user gets the token connection's message"
}

sandbox_up --user "$A=$PW" --user "$B=$PW" --conf "$SASL2_CONF"
run_block Prosody
sandbox_down
sandbox_up --backends ejabberd --user "$A=$PW" --user "$B=$PW" --conf "$SASL2_CONF"
run_block ejabberd
sandbox_down
sandbox_up --backends jabberd2 --user "$A=$PW" --user "$B=$PW" --conf "$SASL2_CONF"
run_block jabberd2
