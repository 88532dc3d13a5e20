#!/bin/bash
# e2e-s2s-plain.t: xedge + Prosody for a.test (127.0.0.11) federating with a
# plain, unproxied Prosody 0.12 for c.test (127.0.0.13; its own TLS and SASL,
# t/lib/plain_prosody.sh), both ways, with dialback (neither trusts the
# other's certificate). Neither has a static route: both find the other
# through a DNS server of the test (dnsmasq, t/lib/dns.sh: SRV
# _xmpp-server._tcp + A records): xedge with --dns (c-ares), Prosody with
# its libunbound forwarded to it.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, B_*, C_* are set by fed_ports, fed_sandbox

plan 10

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ca c.test
fed_ports a
fed_ports c
C_C2S=$C_BASE C_S2S=$((C_BASE + 5))
fed_dns "srv:a.test=a.test:$A_S2S" a:a.test=127.0.0.11 "srv:c.test=c.test:$C_S2S" a:c.test=127.0.0.13
fed_plain c --domain c.test --address 127.0.0.13 --c2s-port "$C_C2S" --s2s-port "$C_S2S" \
	--cert "$FED_CA/c.test.pem" --key "$FED_CA/c.test.key" --dns "$FED_DNS" --user "carol=$PW"
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --dns "$FED_DNS"

XEDGE_C2S=127.0.0.13:$C_C2S XEDGE_CERT=$FED_CA/ca.pem client --jid carol@c.test --password "$PW"
is "$RC/$(result RESULT)" 0/ok "the plain Prosody for c.test works alone: carol logs in to it directly"

fed_chat alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" carol@c.test "$PW" "127.0.0.13:$C_C2S" "$FED_CA/ca.pem"
is "$RC/$(result RESULT)" 0/ok "alice@a.test (xedge) and carol@c.test (plain Prosody) message each other"
like "$OUT" '^RECEIVED to=carol@c.test from=alice@a.test/' "a.test -> c.test arrived (xedge's outbound side)"
like "$OUT" '^RECEIVED to=alice@a.test from=carol@c.test/' "c.test -> a.test arrived (xedge's inbound side)"

sleep 0.5
# c.test -> a.test: xedge authenticated c.test with dialback (asking c.test's Prosody)
is "$(count_lines "$A_XEDGE_LOG" 'event=s2s-auth .*mech=dialback.*remote=c\.test')" 1 \
	"c.test -> a.test: xedge authenticated c.test once, with dialback"
# a.test -> c.test: c.test's Prosody asked xedge (a.test's authoritative server)
is "$(count_lines "$A_XEDGE_LOG" 'event=s2s-verify .*remote=c\.test local=a\.test result=valid')" 1 \
	"a.test -> c.test: xedge answered c.test's db:verify: valid"
like "$(grep -c 'connection a\.test->c\.test is now authenticated for a\.test' "$C_DIR/prosody.log")" '^[1-9]' \
	"c.test's Prosody: the inbound stream from a.test is authenticated"
like "$(grep -c 'connection c\.test->a\.test is now authenticated for a\.test' "$C_DIR/prosody.log")" '^[1-9]' \
	"c.test's Prosody: its outbound stream to a.test (xedge) is authenticated"
like "$(grep -c 'query\[SRV\] _xmpp-server\._tcp\.c\.test' "$FED_DIR/dns/dnsmasq.log")" '^[1-9]' \
	"xedge looked c.test up in DNS (SRV)"
like "$(grep -c 'query\[SRV\] _xmpp-server\._tcp\.a\.test' "$FED_DIR/dns/dnsmasq.log")" '^[1-9]' \
	"c.test's Prosody looked a.test up in DNS (SRV)"
