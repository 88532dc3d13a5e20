#!/bin/bash
# e2e-metrics.t: the Prometheus endpoint (metrics group). After a known
# sequence of logins the counters say exactly what happened: logins by
# mechanism and result, TLS handshakes by version, bytes each way, the login
# duration histogram; the gauges show an open session where it is (listener,
# state, backend). Anything but GET /metrics gets the right HTTP error, and a
# bad metrics group is refused by xedge -t.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 21

PW="m-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB
[ -n "${XEDGE_METRICS:-}" ] || bail "the sandbox printed no XEDGE_METRICS"

# scrape [PATH [METHOD]]: sets M (the body), HTTP_STATUS and CTYPE
scrape() {
	local out
	out=$("$PY" - "$XEDGE_METRICS" "${1:-}" "${2:-GET}" <<'PYEOF'
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
c.request(sys.argv[3], sys.argv[2] or u.path)
r = c.getresponse()
print(r.status, r.getheader("Content-Type"))
sys.stdout.write(r.read().decode())
PYEOF
	)
	HTTP_STATUS=$(printf '%s\n' "$out" | head -n 1 | cut -d' ' -f1)
	CTYPE=$(printf '%s\n' "$out" | head -n 1 | cut -d' ' -f2-)
	M=$(printf '%s\n' "$out" | tail -n +2)
}
# value SERIES: the value of one series (name{labels}) in $M, or 0
value() {
	local v
	v=$(printf '%s\n' "$M" | grep -F -- "$1 " | head -n 1 | awk '{print $NF}')
	echo "${v:-0}"
}

scrape
is "$HTTP_STATUS" 200 "GET /metrics: 200"
like "$CTYPE" '^text/plain; version=0\.0\.4' "... in the Prometheus text format 0.0.4"
like "$M" '# TYPE xedge_logins_total counter' "... with TYPE lines"
is "$(value 'xedge_logins_total{mechanism="SCRAM-SHA-256-PLUS",result="success",transport="tcp"}')" 0 "nothing counted before the first login"
accepted0=$(value 'xedge_connections_accepted_total{listener="starttls"}') # the sandbox's readiness probe

# the known sequence: 2 logins with SCRAM-SHA-256-PLUS, 1 with PLAIN, 1 wrong
# password (SCRAM-SHA-256-PLUS), all over TLS 1.3
client --jid alice@example.test --password "$PW"
client --jid bob@example.test --password "$PW"
client --jid alice@example.test --password "$PW" --mech PLAIN
client --jid alice@example.test --password "wrong-$PW"
is "$(result condition)" "not-authorized" "(the wrong password failed)"

scrape
is "$(value 'xedge_logins_total{mechanism="SCRAM-SHA-256-PLUS",result="success",transport="tcp"}')" 2 "logins: 2 SCRAM-SHA-256-PLUS successes"
is "$(value 'xedge_logins_total{mechanism="PLAIN",result="success",transport="tcp"}')" 1 "... 1 PLAIN success"
is "$(value 'xedge_logins_total{mechanism="SCRAM-SHA-256-PLUS",result="not-authorized",transport="tcp"}')" 1 "... 1 SCRAM-SHA-256-PLUS not-authorized"
is "$(value 'xedge_tls_handshakes_total{version="TLSv1.3"}')" 4 "TLS handshakes: 4 in TLS 1.3"
is "$(($(value 'xedge_connections_accepted_total{listener="starttls"}') - accepted0))" 4 "connections accepted on the STARTTLS listener: 4 more"
is "$(value 'xedge_login_duration_seconds_count')" 3 "login duration histogram: 3 sessions"
is "$(value 'xedge_login_duration_seconds_bucket{le="+Inf"}')" 3 "... +Inf bucket = count"
up=$(value 'xedge_bytes_total{direction="up"}') down=$(value 'xedge_bytes_total{direction="down"}')
ok "$([ "$up" -gt 0 ] && [ "$down" -gt "$up" ] && echo 0 || echo 1)" "bytes each way counted (up $up, down $down)"

# an open session shows in the gauges
rm -f "$SB/bob.ready"
timeout 30 "$PY" "$XMPP_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" \
	--jid bob@example.test --password "$PW" --resource held --ready-file "$SB/bob.ready" \
	--hold 15 --timeout 25 >"$SB/bob.out" 2>&1 &
bob=$!
for _ in $(seq 1 200); do [ -s "$SB/bob.ready" ] && break; sleep 0.05; done
scrape
is "$(value 'xedge_connections{listener="starttls",state="spliced"}')" 1 "an open session: 1 spliced connection on the STARTTLS listener"
is "$(value 'xedge_backend_sessions{pool="main",backend="prosody-0"}')" 1 "... 1 session on backend prosody-0"
kill "$bob" 2>/dev/null
wait "$bob" 2>/dev/null
for _ in $(seq 1 100); do
	scrape
	[ "$(value 'xedge_connections{listener="starttls",state="spliced"}')" = 0 ] && break
	sleep 0.05
done
is "$(value 'xedge_connections{listener="starttls",state="spliced"}')" 0 "... gone when it closes"

# HTTP errors
scrape /nope
is "$HTTP_STATUS" 404 "GET /nope: 404"
scrape /metrics POST
is "$HTTP_STATUS" 405 "POST /metrics: 405"
status=$("$PY" - "$XEDGE_METRICS" <<'PYEOF'
import socket, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
s = socket.create_connection((u.hostname, u.port), timeout=5)
s.sendall(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 8000 + b"\r\n\r\n")
print(s.recv(100).split(b" ")[1].decode())
PYEOF
)
is "$status" 431 "a request with 8 KB of headers: 431"
xedge_alive
ok $? "xedge is still running"

# configuration errors
sed 's/^metrics = .*/metrics = { address = "localhost"; port = 9105; };/' "$XEDGE_CONF" >"$SB/bad.conf"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c "$SB/bad.conf" 2>&1)
like "$out" "bad\\.conf:[0-9]+: metrics\\.address: .localhost. is not a numeric" "xedge -t: a metrics address that is not numeric is refused" || diag "$out"
