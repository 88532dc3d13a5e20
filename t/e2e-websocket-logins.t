#!/bin/bash
# e2e-websocket-logins.t: every login path over XMPP over WebSocket, and
# plain ws behind a trusted reverse proxy. With t/lib/ws_probe.py (a
# stdlib RFC 6455/7395 client): over wss, SCRAM-SHA-256-PLUS with channel
# binding (tls-server-end-point, xedge's own TLS), SCRAM-SHA-1, PLAIN,
# ANONYMOUS, EXTERNAL (a client certificate), in-band registration then a
# login, a wrong password (and the lockout counting it); then a plain
# ws listener (tls = false; encrypted; trusted_proxies 127.0.0.1; an
# Origin allow-list): the client's address from X-Forwarded-For in the
# log and the session list, no -PLUS offered (the TLS is the proxy's), a
# source outside trusted_proxies closed, a foreign Origin refused (403);
# and wss behind a PROXY protocol sender.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 23

PROBE="$XE_TOP_SRCDIR/t/lib/ws_probe.py"
PA="a-$RANDOM-$RANDOM"
WSPORT=$(pick_free_port) || bail "no free port"
sandbox_up --user "alice@example.test=$PA" --enable anonymous,external,register --websocket-port "$WSPORT" \
	--conf 'lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 3; };'
SB=$XE_SANDBOX_DIR_SB

# probe URL CASE [options]: OUT
probe() {
	local url=$1 c=$2
	shift 2
	OUT=$(timeout -k 2 30 "$PY" "$PROBE" --url "$url" --cafile "$XEDGE_CERT" "$@" "$c" 2>&1)
	diag "probe $c $*" "$(printf '%s\n' "$OUT" | grep -v '^H=' | cut -c1-200 | sed 's/^/  /')"
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -n 1; }
W=$XEDGE_WEBSOCKET

LOG_MARK=$(wc -l <"$XEDGE_LOG")
probe "$W" login --jid alice@example.test --password "$PA" --mech SCRAM-SHA-256-PLUS
like "$(val MECHS)" 'SCRAM-SHA-256-PLUS' "wss: the -PLUS mechanisms are offered (xedge's own TLS)"
is "$(val LOGIN) $(val PING)" "ok ok" "wss: SCRAM-SHA-256-PLUS with tls-server-end-point: logged in, a ping through the backend"
like "$(log_since)" 'event=auth-ok .*jid=alice@example\.test mech=SCRAM-SHA-256-PLUS' "... xedge logged SCRAM-SHA-256-PLUS"
probe "$W" login --jid alice@example.test --password "$PA" --mech SCRAM-SHA-1
is "$(val LOGIN) $(val PING)" "ok ok" "wss: SCRAM-SHA-1"
probe "$W" login --jid alice@example.test --password "$PA" --mech PLAIN
is "$(val LOGIN) $(val PING)" "ok ok" "wss: PLAIN"
probe "$W" login --mech ANONYMOUS
is "$(val LOGIN) $(val PING)" "ok ok" "wss: ANONYMOUS"
like "$(val JID)" '^anon-[0-9a-f]+@example\.test/probe$' "... bound to a temporary JID"
probe "$W" login --jid alice@example.test --mech EXTERNAL --cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY"
is "$(val LOGIN) $(val PING)" "ok ok" "wss: EXTERNAL with a client certificate (xedge's own TLS)"
like "$(val JID)" '^alice@example\.test/' "... as the certificate's JID"
NEWPW="n-$RANDOM-$RANDOM"
probe "$W" login --jid "dave$RANDOM@example.test" --password "$NEWPW" --mech SCRAM-SHA-1 --register
is "$(val REGISTER) $(val LOGIN) $(val PING)" "ok ok ok" "wss: in-band registration (XEP-0077), then a login with the new account"
for i in 1 2 3; do
	probe "$W" login --jid alice@example.test --password "wrong-$i" --mech SCRAM-SHA-1
done
is "$(val LOGIN) $(val CONDITION)" "failure not-authorized" "wss: a wrong password: <not-authorized/>"
probe "$W" login --jid alice@example.test --password "$PA" --mech SCRAM-SHA-1
is "$(val LOGIN)" "failure" "... three of them lock the account out, over WebSocket as over TCP"
like "$(log_since)" 'event=lockout kind=account key=alice@example\.test' "... logged"
ctl lockout clear --all >/dev/null 2>&1

# ---- plain ws behind a trusted proxy ------------------------------------------
PLAIN=$(pick_free_port) || bail "no free port"
PROXIED=$(pick_free_port) || bail "no free port"
sed "s#host_meta_url = \"$W\"; }#host_meta_url = \"$W\"; },\n  { kind = \"websocket\"; address = \"127.0.0.1\"; port = $PLAIN; tls = false; encrypted = true; trusted_proxies = [ \"127.0.0.1\" ]; origins = [ \"https://chat.example.test\" ]; },\n  { kind = \"websocket\"; address = \"127.0.0.1\"; port = $PROXIED; proxy_protocol = true; proxy_from = [ \"127.0.0.1\" ]; }#" \
	"$XEDGE_CONF" >"$SB/plain.conf"
grep -q "port = $PLAIN; tls = false" "$SB/plain.conf" || bail "cannot add the plain listener to $XEDGE_CONF"
xedge_restart "$SB/plain.conf"
LOG_MARK=$(wc -l <"$XEDGE_LOG")
P="ws://127.0.0.1:$PLAIN/xmpp-websocket"
timeout -k 2 30 "$PY" "$PROBE" --url "$P" --jid alice@example.test --password "$PA" --mech PLAIN \
	--forwarded-for 192.0.2.7 --hold 2 login >"$SB/plain.out" 2>&1 &
PP=$!
for _ in $(seq 1 50); do ctl session list 2>/dev/null | grep -q 'jid=alice@.*state=spliced' && break; sleep 0.1; done
SL=$(ctl session list)
wait "$PP"
OUT=$(cat "$SB/plain.out")
diag "probe login (plain ws, X-Forwarded-For: 192.0.2.7)" "$(grep -v '^H=' "$SB/plain.out" | sed 's/^/  /')" "$SL"
is "$(val LOGIN) $(val PING)" "ok ok" "plain ws from a trusted proxy (encrypted = true): PLAIN login and a ping"
unlike_plus=$(val MECHS)
ok "$(printf '%s' "$unlike_plus" | grep -q PLUS && echo 1 || echo 0)" \
	"... no -PLUS mechanism offered: the TLS is the proxy's ($unlike_plus)"
like "$(printf '%s\n' "$SL" | grep 'jid=alice@')" 'peer=192\.0\.2\.7:.*transport=websocket' \
	"... the client's address from X-Forwarded-For in the session list"
like "$(log_since)" 'event=auth-ok peer=192\.0\.2\.7' "... and in the log"
probe "$P" login --jid alice@example.test --password "$PA" --mech PLAIN --source 127.0.0.2
like "$(log_since)" 'connection-refused reason="plain ws from a source not in trusted_proxies"' \
	"plain ws from a source outside trusted_proxies: closed at once"
probe "$P" origin --origin https://evil.example
is "$(val HTTP)" 403 "a browser Origin outside origins: 403"
probe "$P" origin --origin https://chat.example.test
is "$(val HTTP)" 101 "... and one in the list: 101"
# wss behind an L4 balancer that sends the PROXY protocol
probe "wss://127.0.0.1:$PROXIED/xmpp-websocket" login --jid alice@example.test --password "$PA" \
	--mech SCRAM-SHA-256-PLUS --proxy-v1 198.51.100.9
is "$(val LOGIN) $(val PING)" "ok ok" "wss with the PROXY protocol: SCRAM-SHA-256-PLUS login and a ping"
like "$(log_since)" 'event=auth-ok peer=198\.51\.100\.9:40000 jid=alice@example\.test' \
	"... the client's address from the PROXY header"

xedge_alive
ok $? "xedge is still running"
