#!/bin/bash
# e2e-s2s-ejabberd.t: federation with ejabberd 23.01 (issue 21). One real
# ejabberd, e.test (t/lib/fed_ejabberd.sh: s2s with STARTTLS, dialback and
# SASL EXTERNAL; mod_ping answers a ping to e.test, a round trip over both
# directions of federation), a test CA, the test DNS server, and three
# xedges with Prosody behind them:
#   c.test: a self-signed certificate: dialback both ways over STARTTLS;
#   b.test: a test CA certificate without xmppAddr: EXTERNAL both ways;
#   a.test: a test CA certificate with an xmppAddr, which ejabberd 23.01
#           fails on (its inbound process crashes with badarg in p1_xmpp's
#           xmpp_stream_pkix:get_cert_domains and the connection drops during SASL
#           EXTERNAL): xedge retries once with dialback only and remembers
#           e.test, so that its next stream goes to dialback at once (item 4).
# Then b.test reloads s2s.trust_anchors without the test CA: its next
# streams with e.test use dialback (item 5).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, B_*, C_*, E_* are set by the fed_* helpers

plan 21

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ports a
fed_ports b
fed_ports c
E_S2S=$(pick_base_port) || bail "no free port"
fed_ca a.test
fed_ca --no-xmppaddr b.test e.test
cat "$FED_CA/e.test.pem" "$FED_CA/e.test.key" >"$FED_DIR/e.pem"
# ejabberd resolves SRV targets through libc: IP literals for the domains
# it looks up; xedge resolves e.test's target by name
fed_dns srv:a.test=127.0.0.11:"$A_S2S" srv:b.test=127.0.0.12:"$B_S2S" srv:c.test=127.0.0.13:"$C_S2S" \
	srv:e.test=xe.e.test:"$E_S2S" a:xe.e.test=127.0.0.15
fed_ejabberd e --domain e.test --address 127.0.0.15 --s2s-port "$E_S2S" --dns "$FED_DNS" \
	--pem "$FED_DIR/e.pem" --ca "$FED_CA/ca.pem"
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --dns "$FED_DNS" \
	--cert "$FED_CA/a.test.pem" --key "$FED_CA/a.test.key" --trust "$FED_CA/ca.pem" \
	--conf 'timeouts = { s2s_idle = 3; };'
fed_sandbox b b.test 127.0.0.12 --user "bob@b.test=$PW" --dns "$FED_DNS" \
	--cert "$FED_CA/b.test.pem" --key "$FED_CA/b.test.key" --trust "$FED_CA/ca.pem" \
	--conf 'timeouts = { s2s_idle = 3; };'
fed_sandbox c c.test 127.0.0.13 --user "carol@c.test=$PW" --dns "$FED_DNS"
ELOG=$E_DIR/logs/ejabberd.log

# --- c.test: dialback both ways over STARTTLS
fed_send carol@c.test "$PW" "$C_XEDGE_C2S" "$C_CAFILE" --ping e.test
is "$RC" 0 "c.test <-> e.test (self-signed): a ping to ejabberd and its answer"
like "$(grep 'event=s2s-out ' "$C_XEDGE_LOG" | grep 'remote=e.test' | head -n 1)" 'mech=dialback tls=starttls' \
	"... c.test's stream to e.test: STARTTLS, then dialback"
like "$(grep 'event=s2s-auth ' "$C_XEDGE_LOG" | grep 'remote=e.test' | head -n 1)" 'mech=dialback' \
	"... e.test's stream to c.test: dialback"
grep -q 'Accepted outbound s2s dialback authentication e.test -> c.test' "$ELOG"
ok $? "... ejabberd: its stream to c.test accepted with dialback"
grep -q 'Accepted inbound s2s dialback authentication c.test -> e.test' "$ELOG"
ok $? "... ejabberd: c.test's stream accepted with dialback (its key verified)"

# --- b.test: SASL EXTERNAL both ways (no xmppAddr)
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --ping e.test
is "$RC" 0 "b.test <-> e.test (test CA, no xmppAddr): a ping and its answer"
like "$(grep 'event=s2s-out ' "$B_XEDGE_LOG" | grep 'remote=e.test' | head -n 1)" 'mech=external tls=starttls' \
	"... b.test's stream to e.test: SASL EXTERNAL"
like "$(grep 'event=s2s-auth ' "$B_XEDGE_LOG" | grep 'remote=e.test' | head -n 1)" 'mech=external' \
	"... e.test's stream to b.test: SASL EXTERNAL"
grep -qi 'Accepted inbound s2s EXTERNAL authentication b.test -> e.test' "$ELOG"
ok $? "... ejabberd: b.test's EXTERNAL accepted"

# --- a.test: an xmppAddr certificate; EXTERNAL dropped, dialback retried
fed_send alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" --ping e.test
is "$RC" 0 "a.test <-> e.test (an xmppAddr in a.test's certificate): the ping is answered"
like "$(grep 'event=s2s-external-dropped' "$A_XEDGE_LOG" | head -n 1)" 'remote=e.test action=retry-dialback' \
	"... xedge saw e.test drop the stream during EXTERNAL and retried with dialback"
like "$(grep 'event=s2s-out ' "$A_XEDGE_LOG" | grep 'remote=e.test' | head -n 1)" 'mech=dialback' \
	"... the retry authenticated with dialback"
# crash_lines: lines of ejabberd's logs that name the crash
crash_lines() { cat "$E_DIR"/logs/*.log | grep -c 'xmpp_stream_pkix,get_cert_domains'; }
crashes=$(crash_lines)
ok $((crashes == 0)) "... ejabberd logged its crash (badarg in xmpp_stream_pkix:get_cert_domains: $crashes lines)"
# the idle stream closes (s2s_idle = 3 s); the next one goes to dialback at once
for _ in $(seq 1 100); do
	grep -q 'event=s2s-close kind=s2s-out .*remote=e.test' "$A_XEDGE_LOG" && break
	sleep 0.1
done
n0=$(crash_lines)
fed_send alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" --ping e.test
is "$RC" 0 "a.test's next stream to e.test: the ping is answered"
like "$(grep 'event=s2s-external-skipped' "$A_XEDGE_LOG" | head -n 1)" 'remote=e.test reason=dropped-before' \
	"... xedge went to dialback at once (e.test remembered)"
is "$(grep -c 'event=s2s-external-dropped' "$A_XEDGE_LOG")" 1 "... without another EXTERNAL attempt"
n1=$(crash_lines)
is "$n1" "$n0" "... and ejabberd did not crash again"

# --- s2s.trust_anchors on reload: b.test no longer trusts the test CA
sed -i "s|trust_anchors = \"$FED_CA/ca.pem\";|trust_anchors = \"$C_XEDGE_CERT\";|" "$B_XEDGE_CONF"
grep -q "trust_anchors = \"$C_XEDGE_CERT\";" "$B_XEDGE_CONF" || bail "cannot edit $B_XEDGE_CONF"
out=$($B_XEDGECTL reload 2>&1)
like "$out" 'reload result=ok' "b.test reloads s2s.trust_anchors without the test CA"
# its streams with e.test end when idle (s2s_idle = 3 s)
for _ in $(seq 1 100); do
	[ "$(grep -c 'event=s2s-close kind=s2s-\(in\|out\) .*remote=e.test' "$B_XEDGE_LOG")" -ge 2 ] && break
	sleep 0.1
done
mark=$(wc -l <"$B_XEDGE_LOG")
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --ping e.test
is "$RC" 0 "... a ping to e.test is still answered"
since=$(tail -n +$((mark + 1)) "$B_XEDGE_LOG")
like "$(printf '%s\n' "$since" | grep 'event=s2s-out ' | grep 'remote=e.test' | head -n 1)" 'mech=dialback' \
	"... b.test's new stream to e.test: dialback (e.test's certificate no longer verifies)"
like "$(printf '%s\n' "$since" | grep 'event=s2s-auth ' | grep 'remote=e.test' | head -n 1)" 'mech=dialback' \
	"... e.test's new stream to b.test: dialback (no EXTERNAL offered)"

