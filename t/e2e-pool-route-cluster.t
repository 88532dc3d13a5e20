#!/bin/bash
# shellcheck disable=SC2153 # XEDGE_LOG_K and the others come from sandbox_up
# e2e-pool-route-cluster.t: one domain over three real Prosody servers
# (doc/pool-routing.md) behind two xedge nodes sharing their users through
# a real PostgreSQL 15 (xedge-sandbox --store postgresql --nodes 2
# --route-port N). Each glue (contrib/prosody/mod_xedge_pool) links to the
# routing listeners of both nodes. Six users, two homed on each server
# (xedgectl user where says so), logged in through both nodes: every
# ordered pair exchanges messages, bare and full JID, and the stanzas take
# node 1 (the first link up of each glue's list). A pin made with node 1's
# xedgectl reaches the glues over node 2's links too (PostgreSQL's change
# log, node 2's replica, node 2's map). Node 1 stopped (by its pid): every
# glue logs its link to node 1 down and routes through node 2; users logged
# in on node 2 still reach each other across servers; a pin made with node
# 2's xedgectl moves a user's home in the glues, and a message follows it.
# Node 1 started again: every glue's link to it comes back and the stanzas
# take it again. Before that, node 1 hung (SIGSTOP: no connection closes):
# each glue (pinging a link quiet for 2 s, dead 2 s later: --route-ping 2:2)
# logs its link to node 1 dead within those seconds and routes through node
# 2; after SIGCONT the links come back. At the end a Prosody hung: both
# nodes close its links, silent for three of its ping intervals. Last,
# prosody-2 linked to node 2 only: what node 1 cannot route to it comes
# back to the senders' glues, which send it through node 2; node 2
# stopped too, the sender gets recipient-unavailable from its glue.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/route.sh"

plan 42

PW="rc-$RANDOM-$RANDOM"
# homes by the rendezvous hash over prosody-0..2 (checked below)
ON0="r10 r12 r15"
ON1="r11 r17 r19"
ON2="r14 r16 r22"
args=()
for u in $ON0 $ON1 $ON2; do args+=(--user "$u@example.test=$PW"); done
# the routing ports: two in a row (node 2's is node 1's + 1)
RP=$(pick_free_port 2) || bail "no free ports for the routing listeners"
sandbox_up --store postgresql --nodes 2 --backends 3 --route-port "$RP" --route-ping 2:2 --log-level debug "${args[@]}"
sandbox_need XEDGE_C2S_1 XEDGE_C2S_2 XEDGE_PID_1 XEDGE_CONF_1 XEDGE_CONF_2 XEDGE_LOG_1 XEDGE_LOG_2 \
	XEDGE_METRICS_1 XEDGE_METRICS_2 XEDGE_ROUTE_1 XEDGE_ROUTE_2
SB=$XE_SANDBOX_DIR_SB
R1=$XEDGE_ROUTE_1
R2=$XEDGE_ROUTE_2
plog() { echo "$SB/prosody-$1/prosody.log"; }
# mark: from here on, count_all and wait_all look at the glues' new lines
MARK=(0 0 0)
mark() { for k in 0 1 2; do MARK[k]=$(wc -l <"$(plog "$k")"); done; }
since() { tail -n +"$((MARK[$1] + 1))" "$(plog "$1")"; }
# count_all PATTERN: the three glues' log lines since the mark matching
# PATTERN, as "a b c"
count_all() { for k in 0 1 2; do since "$k" | grep -cF -- "$1"; done | tr '\n' ' ' | sed 's/ $//'; }
# wait_all PATTERN N [TENTHS]: until each glue has logged PATTERN N times
# since the mark
wait_all() {
	local k ok
	for _ in $(seq 1 "${3:-100}"); do
		ok=1
		for k in 0 1 2; do [ "$(since "$k" | grep -cF -- "$1")" -ge "$2" ] || ok=0; done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	return 1
}
ctl2() { timeout 30 "$XE_TOP_BUILDDIR/src/xedgectl" -c "$XEDGE_CONF_2" "$@"; }
offline_file() { echo "$SB/$1/data/example%2etest/offline/$2.list"; }
# routed NODE: the stanzas that node routed between servers (all pairs)
routed() {
	local v=XEDGE_METRICS_$1
	curl -s --max-time 5 "${!v}" | awk '/^xedge_routed_stanzas_total\{from="prosody/ {n += $2} END {print n + 0}'
}
# via NODE JID...: --via options to log JIDs in through NODE
via() {
	local v=XEDGE_C2S_$1 j
	shift
	for j in "$@"; do printf -- '--via\n%s@example.test=%s\n' "$j" "${!v}"; done
}
RC_ARGS=(--server "$XEDGE_C2S_1" --cafile "$XEDGE_CERT" --password "$PW" --timeout 15)
rc_run() { timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/route_check.py" "${RC_ARGS[@]}" "$@" 2>&1; }
mapfile -t VIA1 < <(via 1 r10 r11 r14)
mapfile -t VIA2 < <(via 2 r12 r17 r16 r19)

# --- the links: every glue to both nodes ---------------------------------------
for _ in $(seq 1 100); do
	[ "$(grep -c 'event=route-link-up' "$XEDGE_LOG_1")/$(grep -c 'event=route-link-up' "$XEDGE_LOG_2")" = 3/3 ] && break
	sleep 0.1
done
is "$(grep -c 'event=route-link-up' "$XEDGE_LOG_1")/$(grep -c 'event=route-link-up' "$XEDGE_LOG_2")" 3/3 \
	"each node has the routing links of the three servers"
wait_all "xedge routing link up ($R2)" 1
is "$(count_all "xedge routing link up ($R1)")/$(count_all "xedge routing link up ($R2)")" "1 1 1/1 1 1" \
	"each glue logs its link to node 1 ($R1) and to node 2 ($R2) up"
# (while only its link to node 2 is up, a glue sends through node 2)
is "$(for k in 0 1 2; do grep -F "xedge routing: stanzas go through" "$(plog "$k")" | tail -n 1 |
	grep -cF "through $R1"; done | tr '\n' ' ')" "1 1 1 " "... and sends through node 1, the first of its list"

# --- homes --------------------------------------------------------------------
wrong=$(homes_wrong ctl example.test)
is "${wrong:-none}" none "xedgectl user where: three users homed on each server"

# --- both nodes up: logins through both ---------------------------------------
OUT=$(rc_run "${VIA1[@]}" "${VIA2[@]}" matrix r10@example.test r11@example.test r14@example.test \
	r12@example.test r17@example.test r16@example.test)
like "$OUT" "RESULT=ok got=60 want=60" \
	"six users on three servers, logged in through both nodes: every ordered pair's messages arrive, bare and full JID (60)" ||
	diag "$OUT"
wrong=""
for u in r10 r11 r14; do grep -q "event=session .*jid=$u@example.test " "$XEDGE_LOG_1" || wrong+=" $u"; done
for u in r12 r17 r16; do grep -q "event=session .*jid=$u@example.test " "$XEDGE_LOG_2" || wrong+=" $u"; done
is "${wrong:-none}" none "... r10, r11, r14 logged in on node 1, r12, r17, r16 on node 2"
n1=$(routed 1)
n2=$(routed 2)
ok "$([ "$n1" -ge 48 ] && [ "$n2" = 0 ] && echo 0 || echo 1)" \
	"the 48 messages across servers took node 1, the glues' first link ($n1 routed by node 1, $n2 by node 2)"

# --- a pin on node 1 reaches the glues through node 2 too -----------------------
mark
out=$(ctl user pin r15@example.test prosody-2 2>&1)
ok $? "xedgectl (node 1) user pin r15 (homed on prosody-0) prosody-2" || diag "$out"
wait_all "pool map: 3 servers, 1 pins (from $R2)" 1 50
wait_all "pool map: 3 servers, 1 pins (from $R1)" 1 50
is "$(count_all "pool map: 3 servers, 1 pins (from $R1)")/$(count_all "pool map: 3 servers, 1 pins (from $R2)")" \
	"1 1 1/1 1 1" "each glue gets the new map from node 1 and from node 2 (the pin replicated through PostgreSQL)"
like "$(grep 'event=route-map-changed' "$XEDGE_LOG_2" | tail -n 1)" "pool=main" "... node 2 logged its map changed"

# --- node 1 hangs (SIGSTOP): the glues' pings find its links dead ---------------
mark
n2a=$(routed 2)
t0=$(now_ms)
kill -STOP "$XEDGE_PID_1"
wait_all "xedge routing link dead ($R1): no answer to a ping" 1 100
dt=$(($(now_ms) - t0))
is "$(count_all "xedge routing link dead ($R1): no answer to a ping")" "1 1 1" \
	"node 1 hung (SIGSTOP, pid $XEDGE_PID_1): each glue logs its link to node 1 dead (after $dt ms)"
ok "$([ "$dt" -le 7000 ] && echo 0 || echo 1)" \
	"... within the ping interval and timeout (2 s + 2 s, a tick and a second's slack: $dt ms <= 7000)"
wait_all "xedge routing: stanzas go through $R2" 1 30
is "$(count_all "xedge routing: stanzas go through $R2")" "1 1 1" "... and sends through node 2"
OUT=$(rc_run "${VIA2[@]}" matrix r12@example.test r17@example.test r16@example.test)
like "$OUT" "RESULT=ok got=12 want=12" \
	"node 1 hung: r12, r17, r16 (one on each server, on node 2) reach each other across servers (12)" ||
	diag "$OUT"
n2b=$(routed 2)
ok "$([ $((n2b - n2a)) -ge 8 ] && echo 0 || echo 1)" "... through node 2 ($((n2b - n2a)) stanzas routed by node 2)"
mark
t0=$(now_ms)
kill -CONT "$XEDGE_PID_1"
wait_all "xedge routing link up ($R1)" 1 450
is "$(count_all "xedge routing link up ($R1)")" "1 1 1" \
	"node 1 resumed (SIGCONT): each glue logs its link to node 1 up again ($(($(now_ms) - t0)) ms later)"
wait_all "xedge routing: stanzas go through $R1" 1 50
is "$(count_all "xedge routing: stanzas go through $R1")" "1 1 1" "... and sends through node 1 again"

# --- node 1 stops ----------------------------------------------------------------
mark
t0=$(now_ms)
kill -TERM "$XEDGE_PID_1"
for _ in $(seq 1 200); do kill -0 "$XEDGE_PID_1" 2>/dev/null || break; sleep 0.05; done
ok "$(kill -0 "$XEDGE_PID_1" 2>/dev/null && echo 1 || echo 0)" "node 1 stopped (pid $XEDGE_PID_1)"
wait_all "xedge routing link down ($R1)" 1
is "$(count_all "xedge routing link down ($R1)")" "1 1 1" "each glue logs its link to node 1 down"
wait_all "xedge routing: stanzas go through $R2" 1
is "$(count_all "xedge routing: stanzas go through $R2")" "1 1 1" \
	"... and sends through node 2 ($(($(now_ms) - t0)) ms after the SIGTERM to node 1)"
is "$(count_all "xedge routing link down ($R2)")" "0 0 0" "... its link to node 2 stayed up"
OUT=$(rc_run "${VIA2[@]}" matrix r12@example.test r17@example.test r16@example.test)
like "$OUT" "RESULT=ok got=12 want=12" \
	"node 1 down: r12, r17, r16 (one on each server) logged in on node 2 reach each other, bare and full JID (12)" ||
	diag "$OUT"
n2b=$(routed 2)
ok "$([ "$n2b" -ge 12 ] && echo 0 || echo 1)" "... through node 2 ($n2b stanzas routed by node 2)"
is "$(count_all "refused (no link up)")" "0 0 0" "no glue refused a stanza for want of a link"

# --- a pin on node 2 (node 1 down) moves a home in the glues --------------------
mark
out=$(ctl2 user pin r19@example.test prosody-0 2>&1)
ok $? "xedgectl (node 2) user pin r19 (homed on prosody-1) prosody-0" || diag "$out"
# (user where reads node 2's replica of the store, which takes the pin from
# PostgreSQL a moment after the pin's write: a few tries)
for _ in $(seq 1 50); do
	ctl2 user where r19@example.test | grep -q "^pinned: prosody-0" && break
	sleep 0.1
done
like "$(ctl2 user where r19@example.test | tr "\n" " ")" "home: prosody-0 pinned: prosody-0" "user where (node 2): home prosody-0, pinned"
wait_all "pool map: 3 servers, 2 pins (from $R2)" 1 50
is "$(count_all "pool map: 3 servers, 2 pins (from $R2)")" "1 1 1" "each glue gets the new map (2 pins) from node 2"
OUT=$(rc_run "${VIA2[@]}" send pin-2 r16@example.test r19@example.test)
ok "$([ -s "$(offline_file prosody-0 r19)" ] && [ ! -e "$(offline_file prosody-1 r19)" ] && echo 0 || echo 1)" \
	"a message from r16 (prosody-2) to the offline r19 is kept at its pin, prosody-0, not its old home" || diag "$OUT"
OUT=$(rc_run "${VIA2[@]}" receive pin-2 r19@example.test)
like "$OUT" "RESULT=ok" "r19 gets it at login through node 2" || diag "$OUT"
like "$(grep 'event=session .*jid=r19@example.test ' "$XEDGE_LOG_2" | tail -n 1)" "backend=prosody-0\$" \
	"... its session on prosody-0"

# --- node 1 back: the links come back ---------------------------------------------
nlog=$(wc -l <"$XEDGE_LOG_1")
mark
t0=$(now_ms)
"$XE_TOP_BUILDDIR/src/xedge" -c "$XEDGE_CONF_1" >>"$XEDGE_LOG_1" 2>&1 &
XEDGE_PID_1=$!
XEDGE_PIDS="$XEDGE_PID_1,$XEDGE_PIDS" # stopped with the sandbox
# (each glue retries with its backoff: 1 s doubling to 30 s)
wait_all "xedge routing link up ($R1)" 1 450
is "$(count_all "xedge routing link up ($R1)")" "1 1 1" \
	"node 1 started again: each glue logs its link to node 1 up again ($(($(now_ms) - t0)) ms after the start)"
wait_all "xedge routing: stanzas go through $R1" 1 50
is "$(count_all "xedge routing: stanzas go through $R1")" "1 1 1" "... and sends through node 1 again"
like "$(since 1 | grep 'pool map: 3 servers' | tail -n 1)" "2 pins \\(from $R1\\)" \
	"... node 1 sends the map with both pins (r19's was made while it was down)"
for _ in $(seq 1 100); do
	[ "$(tail -n +"$((nlog + 1))" "$XEDGE_LOG_1" | grep -c 'event=backend-up pool=main')" -ge 3 ] && break
	sleep 0.1
done
OUT=$(rc_run "${VIA1[@]}" "${VIA2[@]}" matrix r10@example.test r11@example.test r14@example.test \
	r12@example.test r17@example.test r16@example.test)
like "$OUT" "RESULT=ok got=60 want=60" "both nodes up again: every ordered pair's messages arrive (60)" || diag "$OUT"
n1=$(routed 1)
ok "$([ "$n1" -ge 48 ] && echo 0 || echo 1)" "... across servers through node 1 ($n1 routed by the restarted node 1)"

# --- a Prosody hangs (SIGSTOP): both nodes close its silent links ------------------
P2PID=$(printf '%s' "$XEDGE_BACKEND_PIDS" | cut -d, -f3)
grep -q 'prosody-2' "/proc/$P2PID/cmdline" 2>/dev/null || diag "pid $P2PID is not prosody-2's? $(tr '\0' ' ' <"/proc/$P2PID/cmdline")"
n1l=$(grep -c 'event=route-link-down server=prosody-2 .*silent for' "$XEDGE_LOG_1")
n2l=$(grep -c 'event=route-link-down server=prosody-2 .*silent for' "$XEDGE_LOG_2")
t0=$(now_ms)
kill -STOP "$P2PID"
for _ in $(seq 1 150); do
	[ "$(grep -c 'event=route-link-down server=prosody-2 .*silent for' "$XEDGE_LOG_1")" -gt "$n1l" ] &&
		[ "$(grep -c 'event=route-link-down server=prosody-2 .*silent for' "$XEDGE_LOG_2")" -gt "$n2l" ] && break
	sleep 0.1
done
dt=$(($(now_ms) - t0))
kill -CONT "$P2PID"
is "$(($(grep -c 'event=route-link-down server=prosody-2 .*silent for' "$XEDGE_LOG_1") - n1l))/$(($(grep -c 'event=route-link-down server=prosody-2 .*silent for' "$XEDGE_LOG_2") - n2l))" "1/1" \
	"prosody-2 hung (SIGSTOP, pid $P2PID): both nodes close its routing link, silent for three 2 s ping intervals ($dt ms)"
ok "$([ "$dt" -le 10000 ] && echo 0 || echo 1)" "... within 3 x 2 s and a few seconds' slack ($dt ms <= 10000)"

# --- a node without a link to the home: the glue tries the next node ----------------
# prosody-2's glue now links to node 2 only: node 1 cannot route to its
# users and gives the stanzas back (<unroutable/>); the senders' glues send
# them on through node 2
P2CFG="$SB/prosody-2/prosody.cfg.lua"
sed -i "s|^\( *xedge_pool_route = \).*|\1\"$R2\"|" "$P2CFG"
grep -q "xedge_pool_route = \"$R2\"" "$P2CFG" || diag "prosody-2's xedge_pool_route not changed: $(grep xedge_pool_route "$P2CFG")"
u1=$(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG_1")
u2=$(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG_2")
"$XE_TOP_SRCDIR/contrib/sandbox/xedge-sandbox" restart-backend "$SB" prosody-2 >/dev/null 2>&1 ||
	diag "restart-backend prosody-2 failed"
for _ in $(seq 1 300); do
	[ "$(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG_2")" -gt "$u2" ] && break
	sleep 0.1
done
sleep 1
is "$(($(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG_1") - u1))/$(($(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG_2") - u2))" "0/1" \
	"prosody-2 restarted with node 2's address only: linked to node 2, not to node 1"
mark
OUT=$(rc_run "${VIA2[@]}" matrix r12@example.test r17@example.test r16@example.test)
like "$OUT" "RESULT=ok got=12 want=12" \
	"r12 (prosody-0), r17 (prosody-1), r16 (prosody-2) reach each other: node 1 gives back what it cannot route, node 2 delivers it (12)" ||
	diag "$OUT"
n0u=$(since 0 | grep -cF "unroutable through $R1 (home-down): trying $R2")
n1u=$(since 1 | grep -cF "unroutable through $R1 (home-down): trying $R2")
ok "$([ "$n0u" -ge 2 ] && [ "$n1u" -ge 2 ] && echo 0 || echo 1)" \
	"... prosody-0's and prosody-1's glues got them back from node 1 and tried node 2 ($n0u, $n1u)"
# node 2 stopped too: no node can route to prosody-2; the glue answers the
# sender with the error xedge gave before (recipient-unavailable, wait)
kill -TERM "$XEDGE_PID_2"
for _ in $(seq 1 200); do kill -0 "$XEDGE_PID_2" 2>/dev/null || break; sleep 0.05; done
wait_all "xedge routing link down ($R2)" 1 50
mark
OUT=$(rc_run "${VIA1[@]}" send unr-2 r10@example.test r14@example.test)
like "$OUT" "ERROR to=r10@example.test from=r14@example.test condition=recipient-unavailable type=wait" \
	"node 2 down too: r10 (prosody-0) to r14 (prosody-2) gets recipient-unavailable (wait), as from xedge before" ||
	diag "$OUT"
like "$(since 0 | grep -F 'unroutable through' | tail -n 1)" "no other link to try: refused" \
	"... answered by prosody-0's glue once node 1 gave the stanza back and no link was left"
