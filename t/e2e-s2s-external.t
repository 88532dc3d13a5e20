#!/bin/bash
# e2e-s2s-external.t: federation through two xedges with certificates from
# one test CA (t/lib/testca.sh: SAN DNS and xmppAddr = the domain), which
# both trust (--trust): each direction is authenticated with SASL EXTERNAL
# (XEP-0178), and no dialback happens at all.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, B_*, C_* are set by fed_ports, fed_sandbox

plan 9

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ca a.test b.test
fed_ports a
fed_ports b
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --peer "b.test=127.0.0.12:$B_S2S" \
	--cert "$FED_CA/a.test.pem" --key "$FED_CA/a.test.key" --trust "$FED_CA/ca.pem"
fed_sandbox b b.test 127.0.0.12 --user "bob@b.test=$PW" --peer "a.test=127.0.0.11:$A_S2S" \
	--cert "$FED_CA/b.test.pem" --key "$FED_CA/b.test.key" --trust "$FED_CA/ca.pem"

fed_chat alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE"
is "$RC/$(result RESULT)" 0/ok "alice@a.test and bob@b.test message each other (clients check the test CA's certificates)"

sleep 0.5
for d in a:b b:a; do
	recv=${d%%:*} send=${d#*:}
	rlog=$(v=${recv^^}_XEDGE_LOG; echo "${!v}")
	is "$(count_lines "$rlog" "event=s2s-auth .*mech=(EXTERNAL|external).*remote=$send\.test")" 1 \
		"$send.test -> $recv.test: $recv.test's xedge authenticated $send.test with EXTERNAL"
	like "$(count_lines "$rlog" "event=s2s-auth .*mech=dialback")" '^0$' \
		"$send.test -> $recv.test: no dialback on $recv.test's side"
	slog=$(v=${send^^}_XEDGE_LOG; echo "${!v}")
	is "$(count_lines "$slog" "event=s2s-out .*local=$send\.test remote=$recv\.test mech=(EXTERNAL|external)")" 1 \
		"$send.test -> $recv.test: $send.test's xedge has one outbound stream, authenticated with EXTERNAL"
done
logs=$(cat "$A_XEDGE_LOG" "$B_XEDGE_LOG")
is "$(printf '%s\n' "$logs" | grep -cE 'event=s2s-verify')" 0 "no db:verify anywhere (no dialback)"
is "$(printf '%s\n' "$logs" | grep -cE 'event=s2s-auth-failed')" 0 "no failed authentication"
