#!/bin/bash
# e2e-s2s-direct-tls.t: federation over Direct TLS (XEP-0368), both ways,
# between xedge + Prosody for a.test (127.0.0.11; an s2s_direct_tls listener,
# xedge-sandbox --s2s-direct-tls-port) and a plain Prosody 0.12 for c.test
# (127.0.0.13; s2s_direct_tls_ports). No static routes: the DNS server of the
# test (t/lib/dns.sh) has _xmpps-server._tcp SRV records (priority 0) for
# the Direct TLS ports, and _xmpp-server._tcp ones (priority 10) for closed
# ports, so that a fallback to STARTTLS fails the test. Dialback after TLS
# (neither trusts the other's certificate). c.test's Direct TLS port is
# Prosody's ALPN-routing one (plain_prosody.sh --alpn): its own
# s2s_direct_tls port selects no ALPN, so the check that xedge offers
# xmpp-server would see nothing there.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, C_* are set by fed_ports, fed_sandbox

plan 11

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ca c.test
fed_ports a
fed_ports c
A_S2SD=$((A_BASE + 7)) A_CLOSED=$((A_BASE + 8))
C_C2S=$C_BASE C_S2S=$((C_BASE + 5)) C_S2SD=$((C_BASE + 6)) C_CLOSED=$((C_BASE + 7))
fed_dns "srvs:a.test=a.test:$A_S2SD" "--srv-host=_xmpp-server._tcp.a.test,a.test,$A_CLOSED,10" \
	a:a.test=127.0.0.11 \
	"srvs:c.test=c.test:$C_S2SD" "--srv-host=_xmpp-server._tcp.c.test,c.test,$C_CLOSED,10" \
	a:c.test=127.0.0.13
fed_plain c --domain c.test --address 127.0.0.13 --c2s-port "$C_C2S" --s2s-port "$C_S2S" \
	--s2s-direct-tls-port "$C_S2SD" --alpn --cert "$FED_CA/c.test.pem" --key "$FED_CA/c.test.key" \
	--dns "$FED_DNS" --user "carol=$PW"
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --dns "$FED_DNS" --s2s-direct-tls-port "$A_S2SD"
is "$A_XEDGE_S2S_DIRECT_TLS" "127.0.0.11:$A_S2SD" "the sandbox prints its s2s_direct_tls listener"

fed_chat alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" carol@c.test "$PW" "127.0.0.13:$C_C2S" "$FED_CA/ca.pem"
is "$RC/$(result RESULT)" 0/ok "alice@a.test (xedge) and carol@c.test (plain Prosody) message each other"
like "$OUT" '^RECEIVED to=carol@c.test from=alice@a.test/' "a.test -> c.test arrived (xedge's outbound side)"
like "$OUT" '^RECEIVED to=alice@a.test from=carol@c.test/' "c.test -> a.test arrived (xedge's inbound side)"

sleep 0.5
L=$A_XEDGE_LOG
# inbound: c.test's Prosody came in on the s2s_direct_tls listener, with ALPN
like "$(count_lines "$L" 'event=s2s-in .*remote=c\.test local=a\.test tls=direct')" '^[1-9]' \
	"c.test -> a.test: the inbound stream came in with Direct TLS"
is "$(count_lines "$L" 'event=s2s-in .*tls=starttls')" 0 "no inbound stream came in with STARTTLS"
like "$(count_lines "$L" 'event=tls kind=s2s-in .*alpn=xmpp-server')" '^[1-9]' \
	"c.test -> a.test: ALPN xmpp-server (Prosody asked for it, xedge chose it)"
# outbound: xedge found c.test's _xmpps-server record and used Direct TLS
is "$(count_lines "$L" "event=s2s-out peer=127\.0\.0\.13:$C_S2SD local=a\.test remote=c\.test mech=dialback tls=direct")" 1 \
	"a.test -> c.test: xedge's outbound stream went out with Direct TLS (then dialback)"
like "$(count_lines "$L" "event=tls kind=s2s-out peer=127\.0\.0\.13:$C_S2SD .*alpn=xmpp-server")" '^[1-9]' \
	"a.test -> c.test: ALPN xmpp-server (xedge asked for it, Prosody chose it)"
like "$(grep -c 'Routing incoming connection to s2s.* based on ALPN "xmpp-server"' "$C_DIR/prosody.log")" '^[1-9]' \
	"c.test's Prosody: the connections from xedge were routed to s2s by ALPN xmpp-server"
grep -q 'query\[SRV\] _xmpps-server\._tcp\.a\.test' "$FED_DIR/dns/dnsmasq.log" &&
	grep -q 'query\[SRV\] _xmpps-server\._tcp\.c\.test' "$FED_DIR/dns/dnsmasq.log"
ok $? "both sides looked the other up by _xmpps-server SRV"
