#!/bin/bash
# e2e-s2s-jabberd2.t: federation with jabberd2 2.7 (issue 21). Two real
# jabberd2 servers as peers (t/lib/fed_jabberd2.sh: router, sm, s2s; the
# sm's echo module answers a message to DOMAIN/echo), and two xedges with
# Prosody behind them; everything resolves through the test DNS server.
#   j.test: jabberd2 without a certificate: pre-1.0 dialback streams
#           (no version, no to, no from);
#   k.test: jabberd2 with a certificate: STARTTLS and dialback;
#   a.test: xedge with s2s.require_encryption = false (item 1);
#   b.test: xedge with the default (require_encryption = true).
# Reloads: a.test starts with s2s.dns_servers pointing where no DNS server
# answers, then reloads the right one (item 5); b.test reloads
# require_encryption = false and then federates with j.test; a.test reloads
# timeouts.s2s_idle = 1.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, B_*, J_*, K_* are set by the fed_* helpers

plan 28

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ports a
fed_ports b
J_S2S=$(pick_base_port) || bail "no free port"
K_S2S=$(pick_base_port) || bail "no free port"
fed_ca k.test
cat "$FED_CA/k.test.pem" "$FED_CA/k.test.key" >"$FED_DIR/k.pem"
fed_dns srv:a.test=xa.a.test:"$A_S2S" a:xa.a.test=127.0.0.11 \
	srv:b.test=xb.b.test:"$B_S2S" a:xb.b.test=127.0.0.12 \
	srv:j.test=xj.j.test:"$J_S2S" a:xj.j.test=127.0.0.13 \
	srv:k.test=xk.k.test:"$K_S2S" a:xk.k.test=127.0.0.14
fed_jabberd2 j --domain j.test --address 127.0.0.13 --s2s-port "$J_S2S" --dns "$FED_DNS"
fed_jabberd2 k --domain k.test --address 127.0.0.14 --s2s-port "$K_S2S" --dns "$FED_DNS" --pem "$FED_DIR/k.pem"
# (nothing listens on port 9 of 127.0.0.10: the queries are refused)
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --dns 127.0.0.10:9 \
	--conf 's2s = { require_encryption = false; };'
fed_sandbox b b.test 127.0.0.12 --user "bob@b.test=$PW" --dns "$FED_DNS"

# --- s2s.dns_servers on reload
fed_send alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" --to nobody@j.test
like "$(printf '%s\n' "$OUT" | grep '^BOUNCE')" 'text=.*DNS:_the_DNS_servers_failed_for_j\.test' \
	"a.test's first DNS server does not answer: a message to j.test bounces, saying so"
sed -i "s|dns_servers = \"127.0.0.10:9\";|dns_servers = \"$FED_DNS\";|" "$A_XEDGE_CONF"
grep -q "dns_servers = \"$FED_DNS\"" "$A_XEDGE_CONF" || bail "cannot edit $A_XEDGE_CONF"
out=$($A_XEDGECTL reload 2>&1)
like "$out" 'reload result=ok' "s2s.dns_servers changed: xedgectl reload ok"
like "$(grep 'event=s2s-resolver ' "$A_XEDGE_LOG" | tail -n 1)" "servers=\"$FED_DNS\"" \
	"... xedge made a resolver for the new servers"

# --- j.test (no certificate, pre-1.0 streams) and a.test (encryption not required)
fed_send alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" --echo j.test/echo
is "$RC" 0 "a.test <-> j.test (jabberd2 without a certificate): a message there and its echo back"
like "$(grep 'event=s2s-in ' "$A_XEDGE_LOG" | grep 'peer=127.0.0.13' | head -n 1)" 'tls=none legacy=yes' \
	"... j.test's stream to a.test is a pre-1.0 one (no version), accepted"
like "$(grep 'event=s2s-auth mech=dialback' "$A_XEDGE_LOG" | head -n 1)" 'remote=j.test local=a.test' \
	"... j.test authenticated with dialback, its domains taken from the db:result"
like "$(grep 'event=s2s-verify ' "$A_XEDGE_LOG" | head -n 1)" 'remote=j.test local=a.test result=valid' \
	"... and j.test's verification of a.test's key on a pre-1.0 stream answered valid"
grep -q "incoming route 'j.test/a.test' is now valid" "$J_DIR/logs/s2s.log"
ok $? "... jabberd2 took a.test's dialback as valid"

# --- j.test and b.test (encryption required, the default)
t0=$(now_ms)
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --to nobody@j.test
t1=$(now_ms)
is "$RC" 0 "b.test -> j.test with encryption required: the message bounces"
ok $((t1 - t0 > 8000)) "... promptly ($((t1 - t0)) ms)"
like "$(printf '%s\n' "$OUT" | grep '^BOUNCE')" 'text=.*encryption_is_required' \
	"... and the bounce says that j.test offers no STARTTLS and encryption is required"
ans=$(timeout 10 "$PY" - "${B_XEDGE_S2S%:*}" "${B_XEDGE_S2S##*:}" <<'PYEOF'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
          b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>")
data = b''
while b'</stream:stream>' not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode(errors='replace'))
PYEOF
)
like "$ans" '<policy-violation .*encryption is required here: a stream without version=(&apos;|.)1\.0(&apos;|.) \(pre-XMPP-1\.0\)' \
	"a pre-1.0 stream to b.test is refused: <policy-violation/> saying that encryption is required"
like "$(grep 'event=s2s-refused' "$B_XEDGE_LOG" | head -n 1)" 'reason=legacy-stream' \
	"... logged as event=s2s-refused reason=legacy-stream"

# --- s2s.require_encryption on reload
cp "$B_XEDGE_CONF" "$FED_DIR/b.conf.orig"
sed -i 's|^s2s = {$|s2s = { require_encryption = false;|' "$B_XEDGE_CONF"
grep -q '^s2s = { require_encryption = false;' "$B_XEDGE_CONF" || bail "cannot edit $B_XEDGE_CONF"
out=$($B_XEDGECTL reload 2>&1)
like "$out" 'reload result=ok' "b.test reloads s2s.require_encryption = false"
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --echo j.test/echo
is "$RC" 0 "... and then federates with j.test: a message there and its echo back"
cp "$FED_DIR/b.conf.orig" "$B_XEDGE_CONF"
out=$($B_XEDGECTL reload 2>&1)
like "$out" 'reload result=ok' "... back to the default by another reload"

# --- k.test (a certificate: STARTTLS, dialback) and b.test
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --echo k.test/echo
is "$RC" 0 "b.test <-> k.test (jabberd2 with a certificate): a message there and its echo back"
like "$(grep 'event=s2s-out ' "$B_XEDGE_LOG" | grep 'remote=k.test' | head -n 1)" 'mech=dialback tls=starttls' \
	"... b.test's stream to k.test: STARTTLS, then dialback"
like "$(grep 'event=s2s-in ' "$B_XEDGE_LOG" | grep 'peer=127.0.0.14' | head -n 1)" 'remote=k.test local=b.test tls=starttls' \
	"... k.test's stream to b.test: STARTTLS"
like "$(grep 'event=s2s-auth mech=dialback' "$B_XEDGE_LOG" | grep 'remote=k.test' | head -n 1)" 'peer=127.0.0.14 remote=k.test local=b.test' \
	"... then dialback"
is "$(grep -c 'event=s2s-out .*legacy\|event=s2s-legacy' "$B_XEDGE_LOG")" 0 "... XMPP 1.0 streams, not legacy ones"

# --- timeouts.s2s_idle on reload: a.test's new streams (to k.test) end
# after 1 s without traffic
printf 'timeouts = { s2s_idle = 1; };\n' >>"$A_XEDGE_CONF"
out=$($A_XEDGECTL reload 2>&1)
like "$out" 'reload result=ok' "a.test reloads timeouts.s2s_idle = 1"
fed_send alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" --echo k.test/echo
is "$RC" 0 "... a.test <-> k.test: a message there and its echo back"
t0=$(now_ms)
for _ in $(seq 1 100); do
	grep -q 'event=s2s-timeout kind=s2s-out .*remote=k.test stage=idle' "$A_XEDGE_LOG" && break
	sleep 0.1
done
t1=$(now_ms)
grep -q 'event=s2s-timeout kind=s2s-out .*remote=k.test stage=idle' "$A_XEDGE_LOG"
ok $? "... and a.test's stream to k.test ends when idle, after $((t1 - t0)) ms (the default is 600 s)"

# --- k.test's s2s shuts down: <system-shutdown/> on its streams, no answer
mark=$(wc -l <"$B_XEDGE_LOG")
"$FED_JABBERD2" stop-s2s "$K_DIR"
for _ in $(seq 1 50); do
	tail -n +$((mark + 1)) "$B_XEDGE_LOG" | grep -q 'event=s2s-close kind=s2s-in' && break
	sleep 0.1
done
since=$(tail -n +$((mark + 1)) "$B_XEDGE_LOG")
like "$(printf '%s\n' "$since" | grep 'event=s2s-peer-error kind=s2s-in' | head -n 1)" 'condition=system-shutdown' \
	"k.test's shutdown: b.test logs its <system-shutdown/> on the incoming stream"
like "$(printf '%s\n' "$since" | grep 'event=s2s-peer-error kind=s2s-out' | head -n 1)" 'remote=k.test condition=system-shutdown' \
	"... and on the outgoing one"
is "$(printf '%s\n' "$since" | grep -c 'event=stream-error')" 0 \
	"... b.test answers no stream error (no unsupported-stanza-type)"
is "$(grep -c 'unsupported-stanza-type\|not-well-formed' "$K_DIR/logs/s2s.log")" 0 \
	"... nor does jabberd2 log one from b.test"
