#!/bin/bash
# e2e-proxy.t: the PROXY protocol. In: both listeners take PROXY v1/v2 from
# 127.0.0.1 only (xedge-sandbox --proxy-from); the address a header carries
# is the client's for the log and the per-address limits; other sources are
# refused, bad headers closed. Out: a pool with proxy_protocol sends a v2
# header to its server (t/lib/proxy_relay.py in front of Prosody reads it).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 28

PW="px-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --proxy-from 127.0.0.1,10.0.0.0/8 \
	--conf 'limits = { max_connections_per_address = 2; connection_rate_per_address = 0; };' \
	--conf 'timeouts = { tls_handshake = 2; };'
SB=$XE_SANDBOX_DIR_SB
logged() { grep -c -- "$1" "$XEDGE_LOG"; }
# a connection that sends BYTES (printf format) and reads until closed
send_bytes() {
	"$PY" - "$XEDGE_C2S" "$1" <<'PYEOF'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(sys.argv[2].encode('latin-1').decode('unicode_escape').encode('latin-1'))
try:
    got = s.recv(4096)
    print('CLOSED' if got == b'' else 'DATA %r' % got[:80])
except OSError as e:
    print('CLOSED %s' % e)
PYEOF
}

# --- in: a trusted proxy -------------------------------------------------------
# a connection that never sends its header: closed after tls_handshake (2 s)
"$PY" -c "import socket,sys,time; s=socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.settimeout(8); t=time.monotonic(); s.recv(1); print('SILENT closed after %.1f' % (time.monotonic()-t))" \
	"${XEDGE_C2S##*:}" >"$SB/silent.out" 2>&1 &
silent=$!

raw --jid alice@example.test --password "$PW" --mech PLAIN --proxy v1 --proxy-src 203.0.113.7:4242
is "$(result RESULT)" ok "v1 from a trusted proxy: alice logs in (STARTTLS, SASL PLAIN)"
like "$(cat "$XEDGE_LOG")" 'event=proxy peer=203\.0\.113\.7:4242 via=127\.0\.0\.1:[0-9]+ version=1' \
	"v1: the carried address is the peer, the proxy is via="
like "$(cat "$XEDGE_LOG")" 'event=session peer=203\.0\.113\.7:4242 jid=alice@example\.test' \
	"v1: the session is logged with the carried address"

raw --jid alice@example.test --password "$PW" --proxy v2 --proxy-src 203.0.113.8:4343
is "$(result RESULT)" ok "v2 from a trusted proxy: alice logs in (SCRAM)"
like "$(cat "$XEDGE_LOG")" 'event=auth-ok peer=203\.0\.113\.8:4343 jid=alice@example\.test' \
	"v2: authentication is logged with the carried address"

raw --mode direct --jid alice@example.test --password "$PW" --proxy v2 --proxy-src '[2001:db8::5]:5555'
is "$(result RESULT)" ok "v2 (IPv6) before the TLS ClientHello on the Direct TLS listener"
like "$(cat "$XEDGE_LOG")" 'event=session peer=\[2001:db8::5\]:5555 jid=alice@example\.test' \
	"Direct TLS: the session is logged with the carried IPv6 address"

# the per-address limit applies to the carried address, not the proxy's
hold() { # hold NAME SRC: a logged-in client staying online
	"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --jid alice@example.test \
		--password "$PW" --mech PLAIN --resource "$1" --proxy v2 --proxy-src "$2" --hold 30 \
		>"$SB/$1.out" 2>&1 &
	eval "${1}_pid=\$!"
}
ready() { for _ in $(seq 1 200); do grep -q '^READY' "$SB/$1.out" && return 0; sleep 0.05; done; return 1; }
hold s1 203.0.113.9:1001
hold s2 203.0.113.9:1002
hold d1 198.51.100.1:2001
hold d2 198.51.100.2:2002
hold d3 198.51.100.3:2003
n=0
for h in s1 s2 d1 d2 d3; do ready $h && n=$((n + 1)); done
is "$n" 5 "five clients online through one proxy: two carry 203.0.113.9, three carry distinct addresses"
raw --jid alice@example.test --password "$PW" --proxy v2 --proxy-src 203.0.113.9:1003
is "$(result RESULT)" closed "a third client carrying 203.0.113.9 is refused (max_connections_per_address = 2)"
ok "$([ "$(logged 'event=connection-refused reason=max_connections_per_address address=203.0.113.9 ')" -ge 1 ] && echo 0 || echo 1)" \
	"... logged with the carried address"
raw --jid alice@example.test --password "$PW" --proxy v1 --proxy-src 198.51.100.4:2004
is "$(result RESULT)" ok "... while a sixth, carrying another address, logs in"
kill "$s1_pid" "$s2_pid" "$d1_pid" "$d2_pid" "$d3_pid" 2>/dev/null
wait "$s1_pid" "$s2_pid" "$d1_pid" "$d2_pid" "$d3_pid" 2>/dev/null

# LOCAL (a health check) keeps the proxy's own address
out=$(send_bytes '\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00<?xml version="1.0"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="example.test" version="1.0">')
like "$out" "^DATA .*stream:stream" "v2 LOCAL then a stream header: xedge answers"
like "$(cat "$XEDGE_LOG")" 'event=proxy peer=127\.0\.0\.1:[0-9]+ via=127\.0\.0\.1:[0-9]+ version=2 addresses=none' \
	"... with the proxy's own address kept"

# --- in: bad headers, untrusted sources ------------------------------------------
out=$(send_bytes '<?xml version="1.0"?><stream:stream to="example.test">')
like "$out" '^CLOSED' "no PROXY header from the trusted proxy: closed"
like "$(cat "$XEDGE_LOG")" 'event=proxy-failed peer=127\.0\.0\.1:[0-9]+ reason="not a PROXY protocol header"' \
	"... logged"
out=$(send_bytes 'PROXY TCP4 203.0.113.7 127.0.0.1 99999 5222\r\n')
like "$out" '^CLOSED' "a v1 header with a bad port: closed"
like "$(cat "$XEDGE_LOG")" 'event=proxy-failed .*reason="v1: a port' "... logged with the reason"
out=$(send_bytes '\r\n\r\n\x00\r\nQUIT\n\x21\x11\x08\x00')
like "$out" '^CLOSED' "a v2 header announcing 2 KiB (max_proxy_header 512): closed"
like "$(cat "$XEDGE_LOG")" 'event=proxy-failed .*reason="v2: the header is longer than the configured maximum"' \
	"... logged"

raw --source 127.0.0.2 --jid alice@example.test --password "$PW" --proxy v2 --proxy-src 203.0.113.7:4242
is "$(result RESULT)" closed "a PROXY header from an untrusted source (127.0.0.2) is not believed: refused"
like "$(cat "$XEDGE_LOG")" 'event=proxy-refused peer=127\.0\.0\.2:[0-9]+' "... logged event=proxy-refused"

wait "$silent"
like "$(cat "$SB/silent.out")" '^SILENT closed after (1\.[5-9]|2\.[0-9]|3\.[0-9])' \
	"a trusted connection that sends no header is closed after tls_handshake (2 s): $(cat "$SB/silent.out")"
like "$(cat "$XEDGE_LOG")" 'event=timeout peer=127\.0\.0\.1:[0-9]+ phase=proxy' "... logged"

# --- out: a pool that sends PROXY v2 ---------------------------------------------
BPORT=$(sed -n 's/.*name = "prosody-0"; address = "[^"]*"; port = \([0-9]*\);.*/\1/p' "$XEDGE_CONF")
RPORT=$(pick_base_port)
"$PY" "$XE_TOP_SRCDIR/t/lib/proxy_relay.py" "$RPORT" "$BPORT" 60 >"$SB/relay.out" 2>&1 &
relay=$!
for _ in $(seq 1 100); do grep -q READY "$SB/relay.out" && break; sleep 0.05; done
sed -e "s/port = $BPORT;/port = $RPORT;/" -e 's/{ name = "main";/{ name = "main"; proxy_protocol = true;/' \
	"$XEDGE_CONF" >"$SB/relay.conf"
grep -q 'name = "main"; proxy_protocol = true;' "$SB/relay.conf" || bail "could not write relay.conf"
xedge_restart "$SB/relay.conf"
token=$(unique_token px)
raw --jid alice@example.test --password "$PW" --proxy v2 --proxy-src 203.0.113.77:7777 --send-self "$token"
is "$(result RESULT)" ok "through a pool with proxy_protocol: alice logs in"
like "$OUT" "ECHO body=$token" "... and her message comes back through the backend"
like "$(cat "$SB/relay.out")" "PROXY version=2 command=PROXY src=203\.0\.113\.77:7777 dst=127\.0\.0\.1:${XEDGE_C2S##*:}" \
	"the backend's connection starts with PROXY v2 carrying the client's address"
ok "$(grep -q '^BAD' "$SB/relay.out" && echo 1 || echo 0)" "... and no connection came without one"
kill "$relay" 2>/dev/null

xedge_alive
ok $? "xedge is alive"
