#!/bin/bash
# e2e-ws-nginx.t: the README's nginx example, for real. The nginx lines
# and the xedge listener are read from the README itself (only the ports,
# the paths and the host name substituted), so that the example and the
# test cannot drift apart. nginx (Debian's nginx-light) terminates wss on
# 127.0.0.1 with a certificate from t/lib/testca.sh (for "localhost",
# trusted with NODE_EXTRA_CA_CERTS and --cafile), its pid file and logs in
# the test's directory, stopped by its pid; it forwards to xedge's plain ws
# listener (tls = false; encrypted; trusted_proxies 127.0.0.1).
# xmpp.js bound to 127.0.0.7 logs in through nginx with SCRAM and exchanges
# a message with a slixmpp user on xedge's TCP listener (an echo bot);
# xedge's log and xedgectl session list name 127.0.0.7 (X-Forwarded-For
# from $proxy_add_x_forwarded_for), not nginx's 127.0.0.1, also when the
# client writes an X-Forwarded-For of its own; no -PLUS mechanism (the TLS
# is nginx's); the 101 through nginx carries Sec-WebSocket-Protocol: xmpp;
# host-meta through the README's second location lists the wss URL; the
# client's close (xmpp.stop()) ends the backend session (xedge's
# event=close, the session list, Prosody's log). The idle timeout: the
# README's proxy_read_timeout (900 s) is checked to be in the example and
# above nginx's default (60 s); xedge itself sends no pings (it answers
# them), so what keeps a session through nginx is the client's traffic:
# the same location with proxy_read_timeout 3s (a second server, the
# test's own) cuts a session silent for 5 s, and keeps one that sends a
# WebSocket ping each second (xedge's pong is the upstream traffic nginx's
# timer waits for). About 40 s.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 27

JSDIR="$XE_TOP_SRCDIR/t/lib/web"
MODULES=${WEB_MODULES:-$JSDIR/node_modules}
PROBE="$XE_TOP_SRCDIR/t/lib/ws_probe.py"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || bail "nginx is not installed (contrib/bootstrap deps installs nginx-light)"
command -v node >/dev/null || bail "node is not installed (contrib/bootstrap deps installs it)"
for m in @xmpp/client ws; do
	[ -f "$MODULES/$m/package.json" ] ||
		bail "$m is not installed in $MODULES: run contrib/bootstrap deps (npm ci in t/lib/web)"
done

# ---- the README's example ----------------------------------------------------
# the nginx block: from "# nginx: wss://" to the blank line; then the
# "# xedge.conf" block after it
README_NGX=$(awk '/^    # nginx: wss:\/\//{on=1} on && /^$/{exit} on{sub(/^    /, ""); print}' "$XE_TOP_SRCDIR/README")
README_XE=$(awk '/^    # nginx: wss:\/\//{seen=1} seen && /^    # xedge.conf$/{on=1; next}
	on && /^$/{exit} on{sub(/^    /, ""); print}' "$XE_TOP_SRCDIR/README")
[ -n "$README_NGX" ] && [ -n "$README_XE" ] || bail "no nginx example (# nginx: wss://... then # xedge.conf) in the README"
diag "README's nginx example:" "$README_NGX" "README's xedge listener:" "$README_XE"
RT=$(printf '%s\n' "$README_NGX" | sed -n 's/^ *proxy_read_timeout \([0-9]*\)s;.*/\1/p' | head -n 1)
ok "$([ -n "$RT" ] && [ "$RT" -gt 60 ] && echo 0 || echo 1)" \
	"the README's example sets proxy_read_timeout (${RT:-none} s) above nginx's default 60 s"
# its upstream port (5280): the same in both blocks
UP=$(printf '%s\n' "$README_NGX" | sed -n 's#.*proxy_pass http://127\.0\.0\.1:\([0-9]*\);.*#\1#p' | sort -u)
printf '%s\n' "$README_XE" | grep -q "port = $UP;"
ok $? "the README's nginx example forwards to the port of its xedge listener (${UP:-none})"

PA="a-$RANDOM-$RANDOM" PB="b-$RANDOM-$RANDOM"
WSPORT=$(pick_free_port) || bail "no free port"
sandbox_up --user "alice@example.test=$PA" --user "bob@example.test=$PB" --websocket-port "$WSPORT"
SB=$XE_SANDBOX_DIR_SB
NG=$SB/nginx
mkdir -p "$NG" "$SB/web" && cp "$JSDIR"/xmppjs_ws.mjs "$SB/web/" && ln -s "$MODULES" "$SB/web/node_modules" ||
	bail "cannot set up $SB/web and $NG"

PLAIN=$(pick_free_port) || bail "no free port"
NPORT=$(pick_free_port) || bail "no free port"
SHORT=$(pick_free_port) || bail "no free port"
[ "$PLAIN" != "$NPORT" ] && [ "$NPORT" != "$SHORT" ] && [ "$PLAIN" != "$SHORT" ] || bail "the same port twice"
URL="wss://localhost:$NPORT/xmpp-websocket"

# xedge: the README's listener beside the sandbox's, its port and URL ours
LISTENER=$(printf '%s\n' "$README_XE" | sed "s/port = $UP;/port = $PLAIN;/; s#wss://[^\"]*#$URL#" | tr '\n' ' ' |
	sed 's/ *$//; s/  */ /g')
W=$XEDGE_WEBSOCKET
sed "s#host_meta_url = \"$W\"; }#host_meta_url = \"$W\"; },\n  $LISTENER#" "$XEDGE_CONF" >"$SB/nginx.conf.xedge"
grep -q "port = $PLAIN; tls = false" "$SB/nginx.conf.xedge" || bail "cannot add the README's listener to $XEDGE_CONF"
xedge_restart "$SB/nginx.conf.xedge"

# nginx: a certificate from the test CA; the README's locations in a server
# block of ours (the listen and ssl lines are what the README leaves out)
"$XE_TOP_SRCDIR/t/lib/testca.sh" "$NG" --no-xmppaddr localhost >/dev/null || bail "testca.sh failed"
LOCS=$(printf '%s\n' "$README_NGX" | sed "s#127\.0\.0\.1:$UP#127.0.0.1:$PLAIN#g" | sed 's/^/        /')
SHORT_LOCS=$(printf '%s\n' "$LOCS" | sed 's/proxy_read_timeout [0-9]*s;/proxy_read_timeout 3s;/')
printf '%s\n' "$SHORT_LOCS" | grep -q 'proxy_read_timeout 3s;' || bail "no proxy_read_timeout line to shorten"
cat >"$NG/nginx.conf" <<CFG
# t/e2e-ws-nginx.t: an unprivileged configuration, everything in $NG
daemon off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log info;
events { worker_connections 256; }
http {
    access_log $NG/access.log;
    client_body_temp_path $NG/body;
    proxy_temp_path $NG/proxy;
    fastcgi_temp_path $NG/fastcgi;
    uwsgi_temp_path $NG/uwsgi;
    scgi_temp_path $NG/scgi;
    ssl_certificate $NG/localhost.pem;
    ssl_certificate_key $NG/localhost.key;

    # the README's example
    server {
        listen 127.0.0.1:$NPORT ssl;
        server_name localhost;
$LOCS
    }

    # the test's own: the same with proxy_read_timeout 3s
    server {
        listen 127.0.0.1:$SHORT ssl;
        server_name localhost;
$SHORT_LOCS
    }
}
CFG
"$NGINX" -t -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" >"$NG/check.out" 2>&1 ||
	bail "nginx -t: $(cat "$NG/check.out")"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" </dev/null >"$NG/nginx.out" 2>&1 &
NGX_PID=$!
# stopped by its pid before the sandbox's own cleanup, which reads the
# test's exit status from $?; nginx given 5 s to stop, then killed; the
# test's own clients too (set below)
BOT_PID= HELD=
ngx_stop() {
	kill "$NGX_PID" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$NGX_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$NGX_PID" 2>/dev/null
	wait "$NGX_PID" 2>/dev/null
}
trap 'st=$?; ngx_stop; [ -n "$BOT_PID$HELD" ] && kill $BOT_PID $HELD 2>/dev/null; (exit $st); _sandbox_cleanup' EXIT
listening=0
for _ in $(seq 1 50); do
	[ "$(ss -Htln "( sport = :$NPORT or sport = :$SHORT )" | wc -l)" -ge 2 ] && { listening=1; break; }
	kill -0 "$NGX_PID" 2>/dev/null || bail "nginx exited: $(cat "$NG/nginx.out" "$NG/error.log")"
	sleep 0.1
done
[ "$listening" = 1 ] || bail "nginx is not listening on $NPORT and $SHORT after 5 s: $(cat "$NG/error.log")"
is "$(cat "$NG/nginx.pid" 2>/dev/null)" "$NGX_PID" "nginx runs from the test's directory (its pid file there)"

"$PY" "$JSDIR/echo_bot.py" bob@example.test "$PB" "$XEDGE_C2S" "$XEDGE_CERT" 120 >"$SB/bot.log" 2>&1 &
BOT_PID=$!
for _ in $(seq 1 100); do grep -q READY "$SB/bot.log" && break; sleep 0.1; done
grep -q READY "$SB/bot.log" || bail "the echo bot did not log in: $(cat "$SB/bot.log")"

# xmppjs ARGS...: xmpp.js as alice from 127.0.0.7 through nginx; OUT, RC.
# (--dns-result-order: "localhost" to 127.0.0.1 first where it also names ::1)
xmppjs() {
	OUT=$(cd "$SB/web" && NODE_EXTRA_CA_CERTS=$NG/ca.pem NODE_OPTIONS=--dns-result-order=ipv4first \
		timeout -k 2 25 node xmppjs_ws.mjs --service "$URL" --domain example.test --username alice \
		--password "$PA" --timeout 20 --local-address 127.0.0.7 "$@" 2>"$SB/xmppjs.err")
	RC=$?
	diag "xmppjs $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$SB/xmppjs.err" ] && diag "  stderr:" "$(tail -n 5 "$SB/xmppjs.err" | sed 's/^/    /')"
	return 0
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -n 1; }
# probe URL CASE [options]: the raw client (t/lib/ws_probe.py); OUT
probe() {
	local url=$1 c=$2
	shift 2
	OUT=$(timeout -k 2 30 "$PY" "$PROBE" --url "$url" --cafile "$NG/ca.pem" "$@" "$c" 2>&1)
	diag "probe $c $*" "$(printf '%s\n' "$OUT" | cut -c1-200 | sed 's/^/  /')"
}

# ---- a login and a message through nginx --------------------------------------
LOG_MARK=$(wc -l <"$XEDGE_LOG")
xmppjs --resource ngx-1 --peer bob@example.test
is "$(val RESULT) $(val ECHO) $(val SECURED)" "ok ok 1" \
	"xmpp.js over wss through nginx to the plain ws listener: logged in, its message to a TCP user came back"
like "$(val MECH)" '^SCRAM-SHA-' "... with SCRAM ($(val MECH))"
M=$(val MECHS)
ok "$(printf '%s' "$M" | grep -q 'SCRAM-SHA-1' && ! printf '%s' "$M" | grep -q PLUS && echo 0 || echo 1)" \
	"... SCRAM offered, no -PLUS mechanism: no channel binding through the proxy ($M)"
grep -q "^GOT alice@example.test/ngx-1 ws-" "$SB/bot.log"
ok $? "... the slixmpp user on the TCP listener got the message"
is "$(val CLOSE_CODE)" 1000 "... xmpp.stop(): the close frame 1000 back through nginx"
like "$(log_since)" 'event=auth-ok peer=127\.0\.0\.7:[0-9]+ jid=alice@example\.test' \
	"xedge logged the client's address (127.0.0.7, from X-Forwarded-For), not nginx's"
like "$(log_since)" "event=websocket-forwarded peer=127\.0\.0\.7:[0-9]+ via=127\.0\.0\.1:" \
	"... forwarded by nginx (127.0.0.1)"
# (nginx logs an upgraded request when it ends the tunnel, which may come
# after the client saw the close: at most 5 s)
for _ in $(seq 1 50); do
	grep -q "^127\.0\.0\.7 .*\"GET /xmpp-websocket HTTP/1\.1\" 101 " "$NG/access.log" && break
	sleep 0.1
done
grep -q "^127\.0\.0\.7 .*\"GET /xmpp-websocket HTTP/1\.1\" 101 " "$NG/access.log"
ok $? "nginx's access log: the Upgrade from 127.0.0.7, answered 101"

# the handshake as a client sees it through nginx
probe "$URL" upgrade --source 127.0.0.8 --domain example.test --timeout 5
IDLE_OUT=$OUT # (5 s of silence after xedge's features: checked below)
is "$(val HTTP)" 101 "a raw Upgrade through nginx: 101"
like "$OUT" "^H=Sec-WebSocket-Protocol: xmpp\$" "... Sec-WebSocket-Protocol: xmpp negotiated through nginx"
like "$OUT" "^MSG=<open .*xmlns=['\"]urn:ietf:params:xml:ns:xmpp-framing['\"]" "... and xedge's <open/> comes back"
probe "$URL" hostmeta-json --timeout 1.5 # (nginx keeps the connection: the body, then 1.5 s)
like "$OUT" "\"href\":\"$URL\"" "host-meta.json through the README's second location lists $URL"
probe "$URL" hostmeta --timeout 1.5
like "$OUT" "href='$URL'" "... and host-meta (XRD)"

# ---- held: the session list, a forged X-Forwarded-For, the client's close -----
LOG_MARK=$(wc -l <"$XEDGE_LOG")
(
	xmppjs --resource ngx-held --hold 4 --header 'X-Forwarded-For: 203.0.113.66'
	printf '%s\n' "$OUT" >"$SB/held.out"
) >"$SB/held.diag" &
HELD=$!
for _ in $(seq 1 100); do
	ctl session list 2>/dev/null | grep -q 'jid=alice@example.test .*state=spliced' && break
	sleep 0.1
done
SL=$(ctl session list)
diag "$SL"
like "$(printf '%s\n' "$SL" | grep 'jid=alice@example.test ')" \
	'peer=127\.0\.0\.7:[0-9]+ .*transport=websocket state=spliced' \
	"xedgectl session list: the session through nginx from 127.0.0.7, transport=websocket"
is "$(printf '%s\n' "$SL" | grep -c '203\.0\.113\.66')" 0 "... an X-Forwarded-For the client wrote itself names no one"
wait "$HELD"
OUT=$(cat "$SB/held.out")
is "$(val RESULT) $(val CLOSE_CODE)" "ok 1000" "the held client closes (xmpp.stop(), close 1000)"
gone=1
for _ in $(seq 1 50); do
	SLN=$(ctl session list 2>/dev/null) && ! printf '%s\n' "$SLN" | grep -q 'jid=alice@example.test ' &&
		{ gone=0; break; }
	sleep 0.1
done
ok $gone "... its session is gone from xedgectl session list"
like "$(log_since)" 'event=close peer=127\.0\.0\.7:[0-9]+ jid=alice@example\.test backend=prosody-0 ' \
	"... xedge ended the session with its backend (event=close)"
for _ in $(seq 1 50); do
	grep -q 'c2s stream for alice@example.test/ngx-held closed' "$SB/prosody-0/prosody.log" 2>/dev/null && break
	sleep 0.1
done
grep -q 'c2s stream for alice@example.test/ngx-held closed' "$SB/prosody-0/prosody.log" 2>/dev/null
ok $? "... and the backend (Prosody) closed the session"

# ---- idle: nginx's proxy_read_timeout, and what keeps a session through it ---
like "$IDLE_OUT" '^TIMEOUT=1$' "the README's example (proxy_read_timeout ${RT}s): a connection silent for 5 s is still open"
cat >"$SB/pinger.py" <<'PY'
# pinger.py HOST PORT CA SECONDS EVERY: a WebSocket through nginx, <open/>,
# then SECONDS of silence, or a ping frame each EVERY seconds (EVERY 0:
# none); then <close/>. Prints PONGS=n and CLOSE=code, or EOF_AFTER=s.
import base64, os, socket, ssl, struct, sys, time
host, port, ca, secs, every = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=10), server_hostname=host)
def frame(op, p):
    k = os.urandom(4)
    return bytes([0x80 | op, 0x80 | len(p)]) + k + bytes(x ^ k[i % 4] for i, x in enumerate(p))
s.sendall(('GET /xmpp-websocket HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
           'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n'
           % (host, port, base64.b64encode(os.urandom(16)).decode())).encode())
buf = b''
while b'\r\n\r\n' not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit('EOF before the answer')
    buf += d
head, _, buf = buf.partition(b'\r\n\r\n')
if not head.startswith(b'HTTP/1.1 101'):
    sys.exit('HTTP=%s' % head.split(b'\r\n')[0].decode())
t0, pongs, nxt = time.time(), 0, 0.0
s.sendall(frame(1, b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.test' version='1.0'/>"))
while True:
    now = time.time() - t0
    if now >= secs:
        s.sendall(frame(1, b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"))
        secs = 1e9
    elif every and now >= nxt:
        s.sendall(frame(9, b'keep'))
        nxt += every
    s.settimeout(0.2)
    try:
        d = s.recv(65536)
    except (socket.timeout, TimeoutError):
        continue
    except OSError:
        d = b''
    if not d:
        print('PONGS=%d' % pongs)
        print('EOF_AFTER=%.1f' % (time.time() - t0))
        break
    buf += d
    while len(buf) >= 2:  # (the server's frames: unmasked)
        op, n, off = buf[0] & 15, buf[1] & 127, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = struct.unpack('>H', buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = struct.unpack('>Q', buf[2:10])[0], 10
        if len(buf) < off + n:
            break
        p, buf = buf[off:off + n], buf[off + n:]
        pongs += op == 10
        if op == 8:
            print('PONGS=%d' % pongs)
            print('CLOSE=%d' % (struct.unpack('>H', p[:2])[0] if len(p) >= 2 else 1005))
            sys.exit(0)
PY
pinger() {
	OUT=$(timeout -k 2 20 "$PY" "$SB/pinger.py" localhost "$SHORT" "$NG/ca.pem" "$@" 2>&1)
	diag "pinger $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
pinger 5 0
E=$(val EOF_AFTER)
ok "$(awk -v e="${E:-99}" 'BEGIN { exit !(e >= 2.5 && e < 4.5) }' && echo 0 || echo 1)" \
	"the same with proxy_read_timeout 3s: a connection silent for 5 s is cut by nginx at ~3 s (${E:-not cut})"
pinger 5 1
P=$(val PONGS)
ok "$([ "${P:-0}" -ge 4 ] && [ "$(val CLOSE)" = 1000 ] && echo 0 || echo 1)" \
	"... one that sends a WebSocket ping each second: open past 3 s (${P:-no} pongs from xedge), then closed with 1000"

kill "$BOT_PID" 2>/dev/null
wait "$BOT_PID" 2>/dev/null
xedge_alive
ok $? "xedge is still running"
kill -0 "$NGX_PID" 2>/dev/null
ok $? "nginx is still running"
