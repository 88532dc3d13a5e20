#!/bin/bash
# e2e-pool-route-fed.t: federation with a domain spread over three Prosody
# servers (doc/pool-routing.md). a.test on 127.0.0.11: a sticky pool of
# three Prosody servers with route = true; b.test on 127.0.0.12: one
# Prosody; static routes to each other, dialback. bob@b.test and a user of
# a.test homed on each of the three servers message each other both ways:
# the remote domain's stanzas go from xedge straight to the recipient's
# home over its routing link (no hop through another server of the pool);
# the replies go out from the home through xedge's s2s_backend listener.
# Then the pool's MUC (conference.a.test, a component on prosody-0), served
# on a.test's s2s listener: bob joins a room with users homed on all three
# servers, and groupchat and private messages go both ways. Last, the home
# of a user stopped: a remote sender gets recipient-unavailable at once;
# the MUC's server stopped: remote-server-timeout, answered by xedge.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
. "$XE_TOP_SRCDIR/t/lib/route.sh"
# shellcheck disable=SC2153 # A_*, B_* are set by fed_ports, fed_sandbox

plan 21

PW="fedroute-$RANDOM-$RANDOM"
# homes on a.test by the rendezvous hash over prosody-0..2
HOMES="u3:prosody-0 u2:prosody-1 u1:prosody-2"
fed_init
fed_ports a
fed_ports b
args=()
for h in $HOMES; do args+=(--user "${h%%:*}@a.test=$PW"); done
fed_sandbox a a.test 127.0.0.11 --backends 3 --route-port $((A_BASE + 8)) "${args[@]}" \
	--peer "b.test=127.0.0.12:$B_S2S"
fed_sandbox b b.test 127.0.0.12 --user "bob@b.test=$PW" --peer "a.test=127.0.0.11:$A_S2S" \
	--peer "conference.a.test=127.0.0.11:$A_S2S"
for _ in $(seq 1 100); do
	[ "$(count_lines "$A_XEDGE_LOG" 'event=route-link-up')" -ge 3 ] && break
	sleep 0.1
done
is "$(count_lines "$A_XEDGE_LOG" 'event=route-link-up')" 3 "a.test: the three servers' routing links are up"

for h in $HOMES; do
	u=${h%%:*}
	home=${h#*:}
	where=$("$XE_TOP_BUILDDIR/src/xedgectl" -c "$A_DIR/xedge.conf" user where "$u@a.test" |
		sed -n 's/^home: //p')
	fed_chat "$u@a.test" "$PW" "$A_XEDGE_C2S" "$A_CAFILE" bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE"
	is "$RC/$(result RESULT)/$where" "0/ok/$home" "$u@a.test (homed on $home) and bob@b.test message each other"
done
metric() { curl -s --max-time 5 "$A_XEDGE_METRICS" | grep -F "$1" | awk '{print $2}' | head -n 1; }
# straight to the home: counted from "federation" to each home, and nothing
# went through prosody-0 (the server of the s2s link) to another server
f0=$(metric 'xedge_routed_stanzas_total{from="federation",to="prosody-0"}')
f1=$(metric 'xedge_routed_stanzas_total{from="federation",to="prosody-1"}')
f2=$(metric 'xedge_routed_stanzas_total{from="federation",to="prosody-2"}')
ok "$([ "${f0:-0}" -ge 1 ] && [ "${f1:-0}" -ge 1 ] && [ "${f2:-0}" -ge 1 ] && echo 0 || echo 1)" \
	"b.test's stanzas went from xedge straight to each recipient's home ($f0, $f1, $f2)"
n1=$(metric 'xedge_routed_stanzas_total{from="prosody-0",to="prosody-1"}')
n2=$(metric 'xedge_routed_stanzas_total{from="prosody-0",to="prosody-2"}')
is "${n1:-0}/${n2:-0}" "0/0" "... none took a hop through prosody-0 to prosody-1 or prosody-2"
ok "$(grep -q "routed out to" "$A_DIR/prosody-0/prosody.log" && echo 1 || echo 0)" \
	"... prosody-0 routed nothing out (its log)"
ok "$([ ! -e "$A_DIR/prosody-0/data/a%2etest/offline/u2.list" ] && [ ! -e "$A_DIR/prosody-0/data/a%2etest/offline/u1.list" ] &&
	echo 0 || echo 1)" "prosody-0 kept nothing for the users homed elsewhere"
# --- the pool's MUC from another domain --------------------------------------------
ROOM="room-$RANDOM@conference.a.test"
OUT=$(timeout 90 /usr/bin/python3 "$XE_TOP_SRCDIR/t/lib/route_check.py" --server "$A_XEDGE_C2S" \
	--cafile "$A_CAFILE" --domain "b.test=$B_XEDGE_C2S=$B_CAFILE" --password "$PW" --timeout 30 \
	muc "$ROOM" bob@b.test u2@a.test u1@a.test u3@a.test 2>&1)
like "$OUT" "RESULT=ok" "bob@b.test joins $ROOM (on prosody-0) with users homed on all three servers: presence, groupchat, a private message, leave" ||
	diag "$OUT"
like "$OUT" "GROUPCHAT got=4 want=4" "... bob's groupchat message reached every occupant, bob too (back over federation)"
g=$(metric 'xedge_routed_stanzas_total{from="federation",to="prosody-0"}')
ok "$([ "${g:-0}" -gt "${f0:-0}" ] && echo 0 || echo 1)" \
	"... bob's stanzas for the room went from xedge to prosody-0, its server ($f0 -> $g)"
ok "$(grep -q 'event=s2s-auth mech=dialback .*remote=b.test local=conference.a.test' "$A_XEDGE_LOG" && echo 0 || echo 1)" \
	"... conference.a.test was served on a.test's s2s listener (b.test authenticated to it)"

n=$(cat "$A_XEDGE_LOG" "$B_XEDGE_LOG" | count_lines /dev/stdin 'event=route-refused|event=s2s-auth-failed')
is "$n" 0 "no refused routing and no failed authentication"
kill -0 "$(printf '%s' "$A_XEDGE_PIDS" | cut -d, -f1)" 2>/dev/null
ok $? "a.test's xedge is still running"

# --- the home down: the remote sender gets the error ---------------------------------
# (its link down, xedge passes the stanza to the s2s link's server, whose
# glue sends it back to xedge, which answers for the home)
stop_server "$A_DIR" prosody-2 "$A_XEDGE_LOG"
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --to u1@a.test --timeout 20
like "$OUT" "BOUNCE from=u1@a.test type=wait condition=recipient-unavailable" \
	"u1's home (prosody-2) stopped: bob@b.test gets <recipient-unavailable/> (wait)"
is "$(metric 'xedge_route_refused_total{from="prosody-0",reason="home-down"}')" 1 "... counted as home-down"
ok "$([ ! -e "$A_DIR/prosody-0/data/a%2etest/offline/u1.list" ] && [ ! -e "$A_DIR/prosody-1/data/a%2etest/offline/u1.list" ] &&
	echo 0 || echo 1)" "... and no other server keeps the message"


# --- the component's server down: the remote sender gets the error ----------------
# (no federation link reaches a component: xedge answers for it, on an
# outbound stream of its own from conference.a.test to b.test, with
# remote-server-timeout, type wait: the service the JID names is known but
# cannot be reached now)
stop_server "$A_DIR" prosody-0 "$A_XEDGE_LOG"
c0=$(metric 'xedge_route_refused_total{from="federation",reason="home-down"}')
fed_send bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE" --to "$ROOM" --ping conference.a.test --timeout 20
like "$OUT" "BOUNCE from=$ROOM type=wait condition=remote-server-timeout" \
	"the MUC's server (prosody-0) stopped: bob@b.test's message to the room gets <remote-server-timeout/> (wait)"
like "$OUT" "PING-FAILED from=conference.a.test condition=remote-server-timeout" "... and so does his ping of conference.a.test"
is "$(($(metric 'xedge_route_refused_total{from="federation",reason="home-down"}') - ${c0:-0}))" 2 "... both counted as home-down"
is "$(count_lines "$A_XEDGE_LOG" 'event=route-refused from=federation .*jid=conference.a.test reason=home-down error=sent')" 2 \
	"... and logged with the error sent"
