#!/bin/bash
# e2e-websocket-browser.t: a real browser through xedge's websocket
# listener. Converse.js 14 (npm, t/lib/web) in Debian's headless chromium,
# driven by puppeteer-core (no browser download), trusting the sandbox's
# certificate by its key only (--ignore-certificate-errors-spki-list); the
# page is served from loopback. It logs in over wss, sends a message that a
# slixmpp user on xedge's TCP listener receives, and shows that user's
# answer; then again with the wss URL found through XEP-0156 host-meta.
# On failure the screenshot, the page's console and the WebSocket frames
# (CDP) stay in the test's log directory (t/e2e-websocket-browser.out/).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 11

JSDIR="$XE_TOP_SRCDIR/t/lib/web"
MODULES=${WEB_MODULES:-$JSDIR/node_modules}
[ -x /usr/bin/chromium ] || bail "Debian's chromium is not installed (contrib/bootstrap deps)"
command -v node >/dev/null || bail "node is not installed (contrib/bootstrap deps installs it)"
for m in puppeteer-core converse.js; do
	[ -f "$MODULES/$m/package.json" ] ||
		bail "$m is not installed in $MODULES: run contrib/bootstrap deps (npm ci in t/lib/web)"
done
KEEP="$XE_TOP_BUILDDIR/t/e2e-websocket-browser.out"
rm -rf "$KEEP"

PA="a-$RANDOM-$RANDOM" PB="b-$RANDOM-$RANDOM"
WSPORT=$(pick_free_port) || bail "no free port"
sandbox_up --user "alice@example.test=$PA" --user "bob@example.test=$PB" --websocket-port "$WSPORT"
SB=$XE_SANDBOX_DIR_SB
mkdir -p "$SB/web" "$SB/out" && cp "$JSDIR"/converse.html "$JSDIR"/converse_test.mjs "$SB/web/" &&
	ln -s "$MODULES" "$SB/web/node_modules" || bail "cannot set up $SB/web"
SPKI=$(openssl x509 -in "$XEDGE_CERT" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | base64)

# the page, from loopback (module scripts from file:// are refused)
HTTPPORT=$(pick_free_port) || bail "no free port"
"$PY" -m http.server "$HTTPPORT" --bind 127.0.0.1 --directory "$SB/web" >"$SB/http.log" 2>&1 &
HTTP_PID=$!
"$PY" "$JSDIR/echo_bot.py" bob@example.test "$PB" "$XEDGE_C2S" "$XEDGE_CERT" 300 >"$SB/bot.log" 2>&1 &
BOT_PID=$!
trap 'kill $HTTP_PID $BOT_PID 2>/dev/null; _sandbox_cleanup' EXIT
for _ in $(seq 1 100); do grep -q READY "$SB/bot.log" && (exec 3<>"/dev/tcp/127.0.0.1/$HTTPPORT") 2>/dev/null && break; sleep 0.1; done
grep -q READY "$SB/bot.log" || bail "the echo bot did not log in: $(cat "$SB/bot.log")"

# converse NAME [env...]: run the driver; OUT, RC; the evidence kept on failure
converse() {
	local name=$1
	shift
	mkdir -p "$SB/out/$name"
	OUT=$(cd "$SB/web" && env PAGE="http://127.0.0.1:$HTTPPORT/converse.html" WS="$XEDGE_WEBSOCKET" \
		JID=alice@example.test PW="$PA" PEER=bob@example.test SPKI="$SPKI" "$@" \
		timeout -k 5 100 node converse_test.mjs "$SB/out/$name" 2>"$SB/out/$name/stderr")
	RC=$?
	diag "converse $name (rc $RC)" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	if [ "$RC" != 0 ]; then
		mkdir -p "$KEEP" && cp -r "$SB/out/$name" "$KEEP/" && rm -rf "$KEEP/$name"/profile-*
		diag "  kept: $KEEP/$name (failed.png, console.log, ws.json)" \
			"$(tail -n 15 "$SB/out/$name/stderr" "$SB/out/$name/console.log" 2>/dev/null | sed 's/^/    /')"
	fi
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -n 1; }

LOG_MARK=$(wc -l <"$XEDGE_LOG")
converse direct
is "$(val LOGGED_IN) $(val ECHO) $(val RESULT)" "1 ok ok" \
	"Converse.js in chromium over wss: logged in, its message's echo from a TCP user is in the chat"
body=$(val SENT)
grep -qF "GOT alice@example.test/" "$SB/bot.log" && grep -qF "$body" "$SB/bot.log"
ok $? "... the slixmpp user on xedge's TCP listener received it"
is "$(val LOGGED_OUT)" 1 "... and it logged out"
like "$(log_since)" 'event=auth-ok .*jid=alice@example\.test' "... xedge logged the login"
like "$(log_since)" 'event=tls .*alpn=http/1\.1' "... over TLS with ALPN http/1.1 (the browser's)"
grep -Eiq '"sec-websocket-protocol": ?"xmpp"' "$SB/out/direct/ws.json"
ok $? "... the browser's handshake answer carried the xmpp subprotocol (CDP)"

converse discover DISCOVER=1
is "$(val LOGGED_IN) $(val ECHO) $(val RESULT)" "1 ok ok" \
	"without websocket_url: the wss URL from XEP-0156 host-meta, then the same chat"
like "$(log_since)" 'event=host-meta' "... xedge served host-meta"

# the browser's trust is real: with another key's hash it does not log in,
# and the driver leaves its screenshot
converse untrusted SPKI="$(printf 'another key' | openssl dgst -sha256 -binary | base64)" LOGIN_MS=8000
is "$(val RESULT) $(val LOGGED_IN)" "error " "a browser that does not trust the certificate: no login"
[ -s "$SB/out/untrusted/failed.png" ]
ok $? "... and the driver kept a screenshot of the failure"
rm -rf "$KEEP/untrusted"

xedge_alive
ok $? "xedge is still running"
