#!/bin/bash
# e2e-websocket.t: XMPP over WebSocket (RFC 7395) at the edge, with real
# clients (doc/websocket.md). The sandbox's "websocket" listener (wss, the
# sandbox's certificate, trusted with NODE_EXTRA_CA_CERTS): xmpp.js
# (@xmpp/client over the ws package) and strophe.js (in Node) log in with
# SCRAM, send a message to a slixmpp user on xedge's TCP listener (an echo
# bot) and get its answer back through xedge; strophe's one spelling of
# the server's <close/>; host-meta; the hostile cases (the HTTP errors,
# unmasked, binary, 1 MiB, bad UTF-8, two stanzas in one frame, half a
# stanza, a slow Upgrade, many idle upgraded connections from one address,
# a client that never reads) with a TCP user served throughout; then the
# two web clients again through ejabberd and jabberd2.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 55

JSDIR="$XE_TOP_SRCDIR/t/lib/web"
MODULES=${WEB_MODULES:-$JSDIR/node_modules}
PROBE="$XE_TOP_SRCDIR/t/lib/ws_probe.py"
command -v node >/dev/null || bail "node is not installed (contrib/bootstrap deps installs it)"
for m in @xmpp/client ws strophe.js @xmldom/xmldom; do
	[ -f "$MODULES/$m/package.json" ] ||
		bail "$m is not installed in $MODULES: run contrib/bootstrap deps (npm ci in t/lib/web)"
done

PA="a-$RANDOM-$RANDOM" PB="b-$RANDOM-$RANDOM" PC="c-$RANDOM-$RANDOM"
USERS=(--user "alice@example.test=$PA" --user "bob@example.test=$PB" --user "carol@example.test=$PC")

# up BACKENDS: a sandbox with a websocket listener; the web scripts beside a
# link to node_modules (ES modules are found from the script's directory);
# bob, the echo bot, on xedge's STARTTLS listener
rss_is_honest # (the never-reading client's RSS bound, under AddressSanitizer)
up() {
	local tries
	for tries in 1 2 3; do
		WSPORT=$(pick_free_port) || bail "no free port"
		sandbox_up "${USERS[@]}" --backends "$1" --websocket-port "$WSPORT" \
			--conf 'limits = { max_connections_per_address = 300; };' && break
	done
	[ -n "${XEDGE_WEBSOCKET:-}" ] || bail "the sandbox printed no XEDGE_WEBSOCKET"
	SB=$XE_SANDBOX_DIR_SB
	mkdir -p "$SB/web" && cp "$JSDIR"/*.mjs "$SB/web/" && ln -s "$MODULES" "$SB/web/node_modules" ||
		bail "cannot set up $SB/web"
	"$PY" "$JSDIR/echo_bot.py" bob@example.test "$PB" "$XEDGE_C2S" "$XEDGE_CERT" 300 >"$SB/bot.log" 2>&1 &
	BOT_PID=$!
	for _ in $(seq 1 100); do grep -q READY "$SB/bot.log" && break; sleep 0.1; done
	grep -q READY "$SB/bot.log" || bail "the echo bot did not log in: $(cat "$SB/bot.log")"
}
down() {
	kill "$BOT_PID" 2>/dev/null
	wait "$BOT_PID" 2>/dev/null
	sandbox_down
}

# xmppjs ARGS...: xmpp.js over wss; OUT, RC
xmppjs() {
	OUT=$(cd "$SB/web" && NODE_EXTRA_CA_CERTS=$XEDGE_CERT timeout -k 2 40 node xmppjs_ws.mjs \
		--service "$XEDGE_WEBSOCKET" --domain example.test --timeout 30 "$@" 2>"$SB/xmppjs.err")
	RC=$?
	diag "xmppjs $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$SB/xmppjs.err" ] && diag "  stderr:" "$(tail -n 20 "$SB/xmppjs.err" | sed 's/^/    /')"
	return 0
}
# strophe ARGS...: strophe.js over wss; OUT, RC
strophe() {
	OUT=$(cd "$SB/web" && NODE_EXTRA_CA_CERTS=$XEDGE_CERT timeout -k 2 40 node strophe_ws.mjs \
		--service "$XEDGE_WEBSOCKET" --timeout 30 "$@" 2>"$SB/strophe.err")
	RC=$?
	diag "strophe $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$SB/strophe.err" ] && diag "  stderr:" "$(tail -n 20 "$SB/strophe.err" | sed 's/^/    /')"
	return 0
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -n 1; }
# probe CASE [options]: the raw client; OUT
probe() {
	local c=$1
	shift
	OUT=$(timeout -k 2 60 "$PY" "$PROBE" --url "$XEDGE_WEBSOCKET" --cafile "$XEDGE_CERT" "$@" "$c" 2>&1)
	diag "probe $c $*" "$(printf '%s\n' "$OUT" | grep -v '^H=' | cut -c1-160 | sed 's/^/  /')"
}
# tcp_served: a TCP user (carol, slixmpp over STARTTLS) logs in and gets a
# message through bob's echo
tcp_served() {
	local tok="tcp-$RANDOM$RANDOM"
	client --jid carol@example.test --password "$PC" --cafile "$XEDGE_CERT" \
		--send-to bob@example.test --body "$tok" --expect-body "echo: $tok" --timeout 15 >/dev/null 2>&1
	[ "$RC" = 0 ]
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$XEDGE_PID/status"; }

# ---- 1. xmpp.js and strophe.js through Prosody ------------------------------
up prosody
LOG_MARK=$(wc -l <"$XEDGE_LOG")
xmppjs --username alice --password "$PA" --peer bob@example.test
is "$(val RESULT) $(val ECHO) $(val SECURED)" "ok ok 1" \
	"xmpp.js over wss: logged in, its message to a TCP user came back through xedge"
like "$(val MECH)" '^SCRAM-SHA-' "... with SCRAM ($(val MECH))"
is "$(val JID)" "alice@example.test/xmppjs-ws" "... bound as alice@example.test/xmppjs-ws"
is "$(val CLOSE_CODE)" 1000 "... xmpp.stop(): our <close/>, then the close frame 1000"
grep -q "^GOT alice@example.test/xmppjs-ws ws-" "$SB/bot.log"
ok $? "... the slixmpp user on the TCP listener got the message from the WebSocket user"
like "$(log_since)" 'event=auth-ok .*jid=alice@example\.test' "... xedge logged the login"
like "$(log_since)" 'event=websocket-upgrade' "... after the Upgrade"

# the session list shows the transport
xmppjs --username alice --password "$PA" --peer bob@example.test --hold 4 >/dev/null &
JSPID=$!
for _ in $(seq 1 100); do ctl session list 2>/dev/null | grep -q 'jid=alice@example.test.*state=spliced' && break; sleep 0.1; done
SL=$(ctl session list)
diag "$SL"
like "$(printf '%s\n' "$SL" | grep 'jid=alice@')" 'listener=websocket transport=websocket state=spliced' \
	"xedgectl session list: the WebSocket session says transport=websocket"
like "$(printf '%s\n' "$SL" | grep 'jid=bob@')" 'transport=tcp state=spliced' "... the TCP one transport=tcp"
wait "$JSPID"
M=$(curl -s "$XEDGE_METRICS")
like "$(printf '%s\n' "$M" | grep '^xedge_connections_accepted_total')" 'listener="websocket"} [1-9]' \
	"metrics: connections accepted on the websocket listener"
like "$(printf '%s\n' "$M" | grep '^xedge_logins_total')" 'transport="websocket"} [1-9]' \
	"metrics: logins by transport (websocket)"
like "$(printf '%s\n' "$M" | grep '^xedge_logins_total')" 'transport="tcp"} [1-9]' "... and tcp"

strophe --jid alice@example.test --password "$PA" --peer bob@example.test
is "$(val RESULT) $(val ECHO)" "ok ok" "strophe.js over wss: logged in, its message came back through xedge"
is "$(val SERVER_CLOSE) $(val DISCONNECTED)" "exact 1" \
	"... the server's <close/> in the one spelling strophe.js compares, and it disconnected on it"

# host-meta (XEP-0156)
probe hostmeta-json
is "$(val HTTP)" 200 "host-meta.json: 200"
like "$OUT" "^H=Access-Control-Allow-Origin: \*" "... with CORS"
like "$OUT" "\"href\":\"$XEDGE_WEBSOCKET\"" "... listing the WebSocket URL"
probe hostmeta
like "$OUT" "href='$XEDGE_WEBSOCKET'" "host-meta (XRD): the WebSocket URL"

# ---- 2. hostile --------------------------------------------------------------
probe otherproto
is "$(val HTTP)" 400 "another subprotocol than xmpp: 400"
probe noproto
is "$(val HTTP)" 400 "no subprotocol: 400"
probe badpath
is "$(val HTTP)" 404 "another path: 404"
probe plainget
is "$(val HTTP)" 426 "a plain GET: 426 Upgrade Required"
like "$OUT" "^H=Upgrade: websocket" "... saying Upgrade: websocket"
probe unmasked
is "$(val HTTP) $(val CLOSE)" "101 1002" "an unmasked client frame: close 1002"
probe binary
is "$(val CLOSE)" 1003 "a binary frame: close 1003"
probe bigframe
is "$(val CLOSE)" 1009 "a 1 MiB frame: close 1009 (message too big)"
probe badutf8
is "$(val CLOSE)" 1007 "bad UTF-8 in a text frame: close 1007"
probe two
like "$OUT" "MSG=<error xmlns='http://etherx.jabber.org/streams'><not-well-formed" \
	"two stanzas in one frame: <not-well-formed/>"
like "$OUT" 'MSG=<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />' "... then <close/>"
is "$(val CLOSE)" 1000 "... then the close frame"
probe half
like "$OUT" "MSG=<error xmlns='http://etherx.jabber.org/streams'><not-well-formed" \
	"half a stanza in a frame: <not-well-formed/>"
is "$(val CLOSE)" 1000 "... then <close/> and the close frame"
probe beforeopen
like "$OUT" "<bad-format" "a stanza before <open/>: <bad-format/>"
probe ping
is "$(val PONG)" hi "a ping: its pong"
tcp_served
ok $? "a TCP user is served after all that"

probe slow --slow 14
is "$(val HTTP)" 408 "a slow Upgrade (one byte at a time over 14 s): 408 at the Upgrade's timeout"
like "$(val SECONDS)" '^1[0-3]\.' "... after about 10 s ($(val SECONDS) s)"
like "$(log_since)" 'event=websocket-refused .*status=408' "... logged"

# many idle upgraded connections from one address: the per-address limit.
# From 127.0.0.2: the TCP users (127.0.0.1) are another address, else the
# flood's 299 and bob fill 127.0.0.1's 300 and carol is refused by right
RSS0=$(rss_kib)
timeout -k 2 120 "$PY" "$PROBE" --url "$XEDGE_WEBSOCKET" --cafile "$XEDGE_CERT" --count 1000 --hold 3 \
	--source 127.0.0.2 idle >"$SB/idle.out" 2>&1 &
IDLE=$!
sleep 2
tcp_served
st=$?
wait "$IDLE"
OUT=$(cat "$SB/idle.out")
diag "probe idle --count 1000 --hold 3 --source 127.0.0.2" "$(sed 's/^/  /' "$SB/idle.out")"
ok $st "1,000 idle upgraded connections tried from one address: a TCP user from another is served meanwhile"
up=$(val UPGRADED)
ok "$([ "${up:-0}" -gt 0 ] && [ "${up:-0}" -le 300 ] && echo 0 || echo 1)" \
	"... at most max_connections_per_address (300) of them upgraded ($up; refused $(val REFUSED))"
RSS1=$(rss_kib)
diag "xedge RSS: ${RSS0} KiB before, ${RSS1} KiB after"
like "$(log_since)" 'event=connection-refused reason=[a-z_]*per_address' \
	"... the per-address limits refused some"
ok "$([ $((RSS1 - RSS0)) -lt 204800 ] && echo 0 || echo 1)" "... xedge's RSS grew by less than 200 MiB ($((RSS1 - RSS0)) KiB)"

# a client that never reads: its messages to itself come back to it; the
# pump's hard cap ends it, others are served
probe noread --jid alice@example.test --password "$PA" --count 2000 --hold 1 &
NR=$!
sleep 1
tcp_served
ok $? "a WebSocket client that never reads: a TCP user is served meanwhile"
wait "$NR"
RSS2=$(rss_kib)
ok "$([ $((RSS2 - RSS1)) -lt 51200 ] && echo 0 || echo 1)" \
	"... xedge stays bounded: the water marks stop reading it (RSS grew by $((RSS2 - RSS1)) KiB)"
xedge_alive
ok $? "xedge is still running"

# ---- 3. the same clients through ejabberd and jabberd2 ----------------------
for kind in ejabberd jabberd2; do
	down
	up "$kind"
	LOG_MARK=$(wc -l <"$XEDGE_LOG")
	xmppjs --username alice --password "$PA" --peer bob@example.test
	is "$(val RESULT) $(val ECHO) $(val CLOSE_CODE)" "ok ok 1000" \
		"$kind: xmpp.js over wss: login, a message to a TCP user and back, the close"
	strophe --jid alice@example.test --password "$PA" --peer bob@example.test
	is "$(val RESULT) $(val ECHO) $(val SERVER_CLOSE)" "ok ok exact" \
		"$kind: strophe.js over wss: login, a message to a TCP user and back, <close/>"
	probe two
	like "$OUT" "<not-well-formed" "$kind: two stanzas in one frame: <not-well-formed/>"
	tcp_served
	ok $? "$kind: a TCP user is served"
	xedge_alive
	ok $? "$kind: xedge is still running"
done
down
