#!/bin/bash
# e2e-s2s-peers.t: the federation tests' own tools, against real servers
# and without xedge, so that a failure of the xedge tests is xedge's: two
# plain Prosody 0.12 servers (t/lib/plain_prosody.sh) for b.test and c.test
# find each other through the test's DNS server (t/lib/dns.sh), authenticate
# with SASL EXTERNAL using the test CA's certificates (t/lib/testca.sh), and
# their users message each other (t/lib/fed_chat.py); the hostile peer
# (t/lib/s2s_peer.py) reads Prosody's answers to a forged db:result and to a
# db:verify for an unknown stream id.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"

plan 8

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ca b.test c.test
fed_ports b
fed_ports c
fed_dns "srv:b.test=b.test:$B_S2S" a:b.test=127.0.0.12 "srv:c.test=c.test:$C_S2S" a:c.test=127.0.0.13
for s in b:12 c:13; do
	n=${s#*:} s=${s%:*}
	base=$(v=${s^^}_BASE; echo "${!v}") s2s=$(v=${s^^}_S2S; echo "${!v}")
	fed_plain "$s" --domain "$s.test" --address "127.0.0.$n" --c2s-port "$base" --s2s-port "$s2s" \
		--cert "$FED_CA/$s.test.pem" --key "$FED_CA/$s.test.key" --trust "$FED_CA/ca.pem" \
		--dns "$FED_DNS" --user "u$s=$PW"
done

XEDGE_C2S=127.0.0.13:$C_BASE XEDGE_CERT=$FED_CA/ca.pem client --jid uc@c.test --password "$PW"
is "$RC/$(result RESULT)" 0/ok "a user logs in to the plain Prosody (its own TLS, the test CA)"

fed_chat ub@b.test "$PW" "127.0.0.12:$B_BASE" "$FED_CA/ca.pem" uc@c.test "$PW" "127.0.0.13:$C_BASE" "$FED_CA/ca.pem"
is "$RC/$(result RESULT)" 0/ok "users of two plain Prosody servers message each other"
like "$(grep -c 'query\[SRV\] _xmpp-server\._tcp\.c\.test' "$FED_DIR/dns/dnsmasq.log")" '^[1-9]' \
	"Prosody found its peer through the test's DNS server"
like "$(grep -c 'Accepting SASL EXTERNAL identity from b\.test' "$C_DIR/prosody.log")" '^[1-9]' \
	"c.test accepted b.test's certificate for SASL EXTERNAL"
like "$(grep -c 'Accepting SASL EXTERNAL identity from c\.test' "$B_DIR/prosody.log")" '^[1-9]' \
	"b.test accepted c.test's certificate for SASL EXTERNAL"

P=(--server "127.0.0.13:$C_S2S" --to c.test --from b.test --cafile "$FED_CA/ca.pem" --wait 2)
s2s_peer "${P[@]}" result
like "$OUT" '^DB_RESULT type=invalid from=c\.test to=b\.test' "forged db:result: Prosody says invalid (after asking b.test)"
s2s_peer "${P[@]}" --stream-id nosuchid verify
like "$OUT" '^DB_VERIFY type=invalid id=nosuchid' "db:verify for an unknown stream id: Prosody says invalid"
s2s_peer "${P[@]}" --cert "$FED_CA/b.test.pem" --key "$FED_CA/b.test.key" none
like "$OUT" '^SASL mech=EXTERNAL result=success' "the hostile peer authenticates with EXTERNAL as b.test"
