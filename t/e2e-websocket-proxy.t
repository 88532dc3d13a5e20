#!/bin/bash
# e2e-websocket-proxy.t: plain ws behind a real TLS-terminating reverse
# proxy. HAProxy 2.6 in mode http terminates wss with a test certificate of
# its own (IP:127.0.0.1, trusted with NODE_EXTRA_CA_CERTS) and forwards the
# WebSocket to xedge's plain ws listeners on 127.0.0.1 (tls = false;
# encrypted = true; trusted_proxies 127.0.0.1): (a) with option forwardfor
# (X-Forwarded-For), (b) with send-proxy-v2 on the server line (PROXY v2).
# For each, xmpp.js bound to its own loopback address (127.0.0.7): a SCRAM
# login through HAProxy; xedge's log and xedgectl session list show
# 127.0.0.7, not HAProxy's 127.0.0.1, also when the client writes an
# X-Forwarded-For of its own; no -PLUS mechanism offered (the TLS is
# HAProxy's: no channel binding); max_connections_per_address = 2 counts
# the forwarded address (a third connection from 127.0.0.7 through HAProxy
# refused while 127.0.0.8 gets in; 12 clients from 12 addresses at once
# all get in under connection_burst_per_address 6: HAProxy's address is not
# the one counted); and a client straight to the plain ws port from
# 127.0.0.9 (not a trusted proxy) refused.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 26

JSDIR="$XE_TOP_SRCDIR/t/lib/web"
MODULES=${WEB_MODULES:-$JSDIR/node_modules}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || bail "haproxy is not installed (contrib/bootstrap deps installs it)"
command -v node >/dev/null || bail "node is not installed (contrib/bootstrap deps installs it)"
for m in @xmpp/client ws; do
	[ -f "$MODULES/$m/package.json" ] ||
		bail "$m is not installed in $MODULES: run contrib/bootstrap deps (npm ci in t/lib/web)"
done

PA="a-$RANDOM-$RANDOM"
WSPORT=$(pick_free_port) || bail "no free port"
sandbox_up --user "alice@example.test=$PA" --websocket-port "$WSPORT" \
	--conf 'limits = { max_connections_per_address = 2; connection_rate_per_address = 1; connection_burst_per_address = 6; };'
SB=$XE_SANDBOX_DIR_SB
mkdir -p "$SB/web" && cp "$JSDIR"/xmppjs_ws.mjs "$SB/web/" && ln -s "$MODULES" "$SB/web/node_modules" ||
	bail "cannot set up $SB/web"

# two plain ws listeners for HAProxy: X-Forwarded-For, and the PROXY protocol
XFF=$(pick_free_port) || bail "no free port"
PP=$(pick_free_port) || bail "no free port"
W=$XEDGE_WEBSOCKET
sed "s#host_meta_url = \"$W\"; }#host_meta_url = \"$W\"; },\n  { kind = \"websocket\"; address = \"127.0.0.1\"; port = $XFF; tls = false; encrypted = true; trusted_proxies = [ \"127.0.0.1\" ]; },\n  { kind = \"websocket\"; address = \"127.0.0.1\"; port = $PP; tls = false; encrypted = true; trusted_proxies = [ \"127.0.0.1\" ]; proxy_protocol = true; proxy_from = [ \"127.0.0.1\" ]; }#" \
	"$XEDGE_CONF" >"$SB/plain.conf"
grep -q "port = $PP; tls = false" "$SB/plain.conf" || bail "cannot add the plain listeners to $XEDGE_CONF"
xedge_restart "$SB/plain.conf"

# HAProxy's certificate: its own, not xedge's
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:TRUE \
	-keyout "$SB/haproxy.key" -out "$SB/haproxy.crt" >/dev/null 2>&1 || bail "openssl req failed"
cat "$SB/haproxy.crt" "$SB/haproxy.key" >"$SB/haproxy.pem"
HXFF=$(pick_free_port) || bail "no free port"
HPP=$(pick_free_port) || bail "no free port"
cat >"$SB/haproxy.cfg" <<CFG
global
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h

# (a) X-Forwarded-For
frontend wss_xff
    bind 127.0.0.1:$HXFF ssl crt $SB/haproxy.pem alpn http/1.1
    default_backend xedge_xff
backend xedge_xff
    option forwardfor
    server xedge 127.0.0.1:$XFF

# (b) the PROXY protocol (v2), no X-Forwarded-For
frontend wss_pp
    bind 127.0.0.1:$HPP ssl crt $SB/haproxy.pem alpn http/1.1
    default_backend xedge_pp
backend xedge_pp
    server xedge 127.0.0.1:$PP send-proxy-v2
CFG
"$HAPROXY" -c -f "$SB/haproxy.cfg" >"$SB/haproxy.check" 2>&1 || bail "haproxy -c: $(cat "$SB/haproxy.check")"
"$HAPROXY" -f "$SB/haproxy.cfg" -db </dev/null >"$SB/haproxy.log" 2>&1 &
HA_PID=$!
# stopped by its pid before the sandbox's own cleanup, which reads the
# test's exit status from $?
trap 'st=$?; kill "$HA_PID" 2>/dev/null; wait "$HA_PID" 2>/dev/null; (exit $st); _sandbox_cleanup' EXIT
for _ in $(seq 1 50); do
	[ "$(ss -Htln "( sport = :$HXFF or sport = :$HPP )" | wc -l)" -ge 2 ] && break
	kill -0 "$HA_PID" 2>/dev/null || bail "haproxy exited: $(cat "$SB/haproxy.log")"
	sleep 0.1
done

# xmppjs URL SOURCE ARGS...: xmpp.js as alice from SOURCE; OUT, RC
xmppjs() {
	local url=$1 src=$2
	shift 2
	OUT=$(cd "$SB/web" && NODE_EXTRA_CA_CERTS=$SB/haproxy.crt timeout -k 2 20 node xmppjs_ws.mjs \
		--service "$url" --domain example.test --username alice --password "$PA" --timeout 15 \
		--local-address "$src" --resource "px-$RANDOM" "$@" 2>"$SB/xmppjs.err")
	RC=$?
	diag "xmppjs $url from $src $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$SB/xmppjs.err" ] && diag "  stderr:" "$(tail -n 5 "$SB/xmppjs.err" | sed 's/^/    /')"
	return 0
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -n 1; }
# sessions N: wait (at most 10 s) until alice has N spliced sessions
sessions() {
	for _ in $(seq 1 100); do
		[ "$(ctl session list 2>/dev/null | grep -c 'jid=alice@example.test.*state=spliced')" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# through NAME HAPROXY_PORT PLAIN_PORT: the checks for one way of forwarding
through() {
	local name=$1 url="wss://127.0.0.1:$2/xmpp-websocket" plain="ws://127.0.0.1:$3/xmpp-websocket"
	local h1 h2 ok3 m o1 o2
	LOG_MARK=$(wc -l <"$XEDGE_LOG")
	xmppjs "$url" 127.0.0.7
	is "$(val RESULT) $(val SECURED)" "ok 1" "$name: xmpp.js over wss through HAProxy to plain ws: logged in"
	like "$(val MECH)" '^SCRAM-SHA-' "... with SCRAM ($(val MECH))"
	m=$(val MECHS)
	ok "$(printf '%s' "$m" | grep -q 'SCRAM-SHA-1' && ! printf '%s' "$m" | grep -q PLUS && echo 0 || echo 1)" \
		"... SCRAM offered, no -PLUS mechanism: no channel binding through the proxy ($m)"
	like "$(log_since)" 'event=auth-ok peer=127\.0\.0\.7:[0-9]+ jid=alice@example\.test' \
		"... xedge logged the client's address (127.0.0.7), not HAProxy's"

	# held from 127.0.0.7: the session list; the second writes an
	# X-Forwarded-For of its own
	LOG_MARK=$(wc -l <"$XEDGE_LOG")
	xmppjs "$url" 127.0.0.7 --hold 4 >/dev/null &
	h1=$!
	xmppjs "$url" 127.0.0.7 --hold 4 --header 'X-Forwarded-For: 203.0.113.66' >/dev/null &
	h2=$!
	sessions 2
	SL=$(ctl session list)
	diag "$SL"
	is "$(printf '%s\n' "$SL" | grep -c 'jid=alice@example.test.* peer=127\.0\.0\.7:[0-9]* .*transport=websocket')" 2 \
		"... xedgectl session list: both held sessions from 127.0.0.7"
	unlike_spoof=$(printf '%s\n' "$SL" | grep -c '203\.0\.113\.66')
	is "$unlike_spoof" 0 "... an X-Forwarded-For the client wrote itself named no one"
	# the third from 127.0.0.7 is over max_connections_per_address (2); 127.0.0.8 is not
	xmppjs "$url" 127.0.0.7
	o1=$(val RESULT)
	xmppjs "$url" 127.0.0.8
	o2=$(val RESULT)
	is "$o1 $o2" "error ok" \
		"... max_connections_per_address 2: a third connection from 127.0.0.7 refused, 127.0.0.8 logs in"
	like "$(log_since)" 'event=connection-refused reason=[a-z_]*per_address address=127\.0\.0\.7' \
		"... refused for 127.0.0.7's count, not HAProxy's"
	wait "$h1" "$h2"

	# 12 clients at once, each from its own address (127.0.0.41-52), one
	# HAProxy: connection_burst_per_address (6) is each client's, not the
	# proxy's (the raw probe: 12 node processes would take seconds)
	local i n=0 pids=()
	for i in $(seq 41 52); do
		timeout -k 2 20 "$PY" "$XE_TOP_SRCDIR/t/lib/ws_probe.py" --url "$url" --cafile "$SB/haproxy.crt" \
			--jid alice@example.test --password "$PA" --mech SCRAM-SHA-1 --source "127.0.0.$i" \
			login >"$SB/burst.$i" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}" # (not a bare wait: HAProxy is a child too)
	for i in $(seq 41 52); do grep -q '^LOGIN=ok' "$SB/burst.$i" && n=$((n + 1)); done
	is "$n" 12 "... 12 clients from 12 addresses at once: all logged in (the rate limit's bucket is each client's, not HAProxy's)"
	[ "$n" = 12 ] || diag "$(grep -h '^LOGIN\|^HTTP\|^EOF\|rror' "$SB"/burst.* | sort | uniq -c)"

	# straight to the plain port from an address that is not a trusted proxy
	sleep 1 # (the refusal's log line: at most one a second)
	LOG_MARK=$(wc -l <"$XEDGE_LOG")
	xmppjs "$plain" 127.0.0.9
	is "$(val RESULT)" error "$name: xmpp.js straight to the plain ws port from 127.0.0.9: refused"
	like "$(log_since)" 'connection-refused reason="plain ws from a source not in trusted_proxies" peer=127\.0\.0\.9' \
		"... closed at accept: not in trusted_proxies"
}

through "X-Forwarded-For" "$HXFF" "$XFF"
grep -q '127\.0\.0\.7:[0-9]* \[.*wss_xff~* xedge_xff/xedge ' "$SB/haproxy.log"
ok $? "HAProxy's log shows the connections from 127.0.0.7 through wss_xff"
through "PROXY v2" "$HPP" "$PP"
grep -q '127\.0\.0\.7:[0-9]* \[.*wss_pp~* xedge_pp/xedge ' "$SB/haproxy.log"
ok $? "HAProxy's log shows the connections from 127.0.0.7 through wss_pp"

xedge_alive
ok $? "xedge is still running"
kill -0 "$HA_PID" 2>/dev/null
ok $? "HAProxy is still running"
