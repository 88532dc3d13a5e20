#!/bin/bash
# e2e-pool-route.t: one domain over three real Prosody servers
# (doc/pool-routing.md). Twelve users, four homed on each server by the
# rendezvous hash (the names were chosen for that; xedgectl user where and
# xedge's own choice at login both check it). Through xedge's routing
# listener and contrib/prosody's mod_xedge_pool: every ordered pair
# exchanges messages to the bare and to the full JID; presence
# subscriptions across servers end in "both" with presence seen; a message
# to an offline user on another server is stored at their home only and
# delivered at their next login; a vCard and a PEP item of a user on
# another server are read; a MUC room on prosody-0 (a component of the
# pool) has occupants from all three servers; a pin moves a user's home
# without a restart; a user moved (pin, contrib/prosody/prosody-move-user)
# keeps roster and offline messages (a pin reaches the glues as a small
# delta of the map, within a second); with 105,553 pins the map reaches
# each glue whole, in parts, a pin beyond the first 100,000 routes, and
# a pin moved or a user deleted then costs a delta of a few hundred bytes;
# the home server stopped: the sender gets recipient-unavailable at once,
# nothing is stored elsewhere and nothing already stored is lost; a link
# that sends a stanza back to xedge is refused (no loop), as is a link
# without the secret. xedge -t refuses route = true with a policy that
# would split a user over servers, or with on_down = "next", and
# least-conn or round-robin over Prosody servers without allow_split.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/route.sh"

plan 79

PW="route-$RANDOM-$RANDOM"
# homes by the rendezvous hash of the bare JID over prosody-0..2
ON0="r10 r12 r13 r15"
ON1="r11 r17 r19 r1"
ON2="r14 r16 r22 r23"
args=()
all=()
for u in $ON0 $ON1 $ON2; do
	args+=(--user "$u@example.test=$PW")
	all+=("$u@example.test")
done
RP=$(pick_free_port) || bail "no free port for the routing listener"
sandbox_up --backends 3 --route-port "$RP" "${args[@]}"
SB=$XE_SANDBOX_DIR_SB
RC_ARGS=(--server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --password "$PW" --timeout 15)
rc_run() { timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/route_check.py" "${RC_ARGS[@]}" "$@" 2>&1; }
metric() { curl -s --max-time 5 "$XEDGE_METRICS" | grep -F "$1" | awk '{print $2}' | head -n 1; }
offline_file() { echo "$SB/$1/data/example%2etest/offline/$2.list"; }

# --- the links ---------------------------------------------------------------
for _ in $(seq 1 100); do
	[ "$(grep -c 'event=route-link-up' "$XEDGE_LOG")" -ge 3 ] && break
	sleep 0.1
done
is "$(grep -c 'event=route-link-up' "$XEDGE_LOG")" 3 "the three Prosody servers' routing links are up"

# --- homes -------------------------------------------------------------------
wrong=$(homes_wrong ctl example.test)
is "${wrong:-none}" none "xedgectl user where: four users homed on each server"

# --- every ordered pair -------------------------------------------------------
OUT=$(rc_run matrix "${all[@]}")
like "$OUT" "RESULT=ok got=264 want=264" "every ordered pair of the 12 users exchanged messages, bare and full JID (264)" ||
	diag "$OUT"
wrong=""
for k in 0 1 2; do
	v=ON$k
	for u in ${!v}; do
		grep -q "event=session .*jid=$u@example.test .*backend=prosody-$k\$" "$XEDGE_LOG" || wrong+=" $u"
	done
done
is "${wrong:-none}" none "each user's session was on its home (the glue and xedge agree)"
pairs_ok=0
for f in 0 1 2; do
	for t in 0 1 2; do
		[ $f = $t ] && continue
		n=$(metric "xedge_routed_stanzas_total{from=\"prosody-$f\",to=\"prosody-$t\"}")
		[ "${n:-0}" -ge 32 ] && pairs_ok=$((pairs_ok + 1))
	done
done
is "$pairs_ok" 6 "xedge_routed_stanzas_total counts at least 32 messages for each of the 6 ordered pairs of servers"

# --- presence subscriptions ---------------------------------------------------
OUT=$(rc_run subscribe r10@example.test r11@example.test r17@example.test r14@example.test \
	r16@example.test r12@example.test)
like "$OUT" "RESULT=ok" "subscriptions across servers (0-1, 1-2, 2-0) end in both, presence seen both ways" ||
	diag "$OUT"
is "$(printf '%s\n' "$OUT" | grep -c 'a_sub=both b_sub=both a_saw_b=1 b_saw_a=1')" 3 "... all three pairs"

# --- offline messages, stored at the home only -----------------------------------
OUT=$(rc_run send off-1 r13@example.test r19@example.test r22@example.test)
like "$OUT" "RESULT=ok errors=0" "r13 (prosody-0) messages r19 (prosody-1) and r22 (prosody-2), both offline" || diag "$OUT"
ok "$([ -s "$(offline_file prosody-1 r19)" ] && [ -s "$(offline_file prosody-2 r22)" ] && echo 0 || echo 1)" \
	"each message is kept by the recipient's home"
ok "$([ ! -e "$(offline_file prosody-0 r19)" ] && [ ! -e "$(offline_file prosody-0 r22)" ] &&
	[ ! -e "$(offline_file prosody-1 r22)" ] && [ ! -e "$(offline_file prosody-2 r19)" ] && echo 0 || echo 1)" \
	"... and by no other server"
OUT=$(rc_run receive off-1 r19@example.test r22@example.test)
like "$OUT" "RESULT=ok" "both get it at their next login" || diag "$OUT"

# --- vCard and PEP of a user on another server ----------------------------------
OUT=$(rc_run vcard "nick-$RANDOM" r15@example.test r1@example.test r23@example.test)
like "$OUT" "RESULT=ok" "a vCard published on prosody-0 is read from prosody-1 and prosody-2" || diag "$OUT"
# (the sandbox's Prosody keeps a vCard in its vcard store, or, with
# mod_vcard_legacy as Debian has it, in the vcard4 PEP node's store)
vcard_files() { find "$SB/$1/data/example%2etest" -path '*vcard*' -name 'r15.*' -size +0 2>/dev/null | wc -l; }
ok "$([ "$(vcard_files prosody-0)" -gt 0 ] && [ "$(vcard_files prosody-1)" = 0 ] &&
	[ "$(vcard_files prosody-2)" = 0 ] && echo 0 || echo 1)" "... kept at its home only"
OUT=$(rc_run pep "urn:xedge:test:$RANDOM" r15@example.test r1@example.test r23@example.test)
like "$OUT" "RESULT=ok" "a PEP item published on prosody-0 is read from prosody-1 and prosody-2" || diag "$OUT"

# --- a MUC room on one server (a component of the pool) ---------------------------
OUT=$(rc_run muc "room-$RANDOM@conference.example.test" r12@example.test r11@example.test r14@example.test \
	r13@example.test r17@example.test r16@example.test)
like "$OUT" "RESULT=ok" "a room of conference.example.test (on prosody-0): occupants from all three servers join, chat, message privately, leave" ||
	diag "$OUT"
n=$(metric 'xedge_routed_stanzas_total{from="prosody-2",to="prosody-0"}')
ok "$([ "${n:-0}" -ge 40 ] && echo 0 || echo 1)" "... their stanzas for the room went to prosody-0 through xedge ($n from prosody-2)"

# --- the pins are read again only after a write to the store ----------------------
# (a read walks every user of the pool's domains: 140 ms for 100,000 users,
# in the thread pool, and only when the store's generation moved)
n0=$(grep -c 'event=route-pins-read' "$XEDGE_LOG")
sleep 2.5
is "$(grep -c 'event=route-pins-read' "$XEDGE_LOG")" "$n0" "nothing written for 2.5 s: the pins are not read again"

# --- a pin moves the home without a restart --------------------------------------
# (a delta of the map: the pin alone, not the map whole)
d0=$(metric 'xedge_route_map_sends_total{kind="delta"}')
f0=$(metric 'xedge_route_map_sends_total{kind="full"}')
t0=$(now_ms)
out=$(ctl user pin r10@example.test prosody-1 2>&1)
ok $? "xedgectl user pin r10 (homed on prosody-0) prosody-1" || diag "$out"
out=$(ctl user where r10@example.test)
like "$(echo $out)" "home: prosody-1 pinned: prosody-1" "user where: home prosody-1, pinned" || diag "$out"
for _ in $(seq 1 100); do
	grep -q 'pool map: 3 servers, 1 pins' "$SB/prosody-2/prosody.log" && break
	sleep 0.02
done
dt=$(($(now_ms) - t0))
like "$(grep 'pool map' "$SB/prosody-2/prosody.log" | tail -n 1)" "1 pins \\(from [^)]*\\) \\(delta, generation [0-9]+: 1 pinned, 0 unpinned\\)" \
	"the pin reached the glue without a restart, as a delta"
ok "$([ "$dt" -le 1500 ] && echo 0 || echo 1)" "... within the second of the store's refresh, and its read ($dt ms from the pin)"
is "$(($(metric 'xedge_route_map_sends_total{kind="delta"}') - ${d0:-0}))/$(($(metric 'xedge_route_map_sends_total{kind="full"}') - ${f0:-0}))" \
	"3/0" "xedge_route_map_sends_total: a delta to each of the 3 links, no map whole"
like "$(grep 'event=route-map-changed pool=main' "$XEDGE_LOG" | tail -n 1)" "kind=delta bytes=[0-9]{2,3}$" \
	"... logged (event=route-map-changed kind=delta) with its size"
ok "$([ "$(grep -c 'event=route-pins-read pool=main' "$XEDGE_LOG")" -gt "$n0" ] && echo 0 || echo 1)" \
	"... the pin (a write to the store) had them read again"
OUT=$(rc_run send pin-1 r14@example.test r10@example.test)
ok "$([ -s "$(offline_file prosody-1 r10)" ] && [ ! -e "$(offline_file prosody-0 r10)" ] && echo 0 || echo 1)" \
	"a message to the offline r10 is kept at its new home, not its old one"
OUT=$(rc_run receive pin-1 r10@example.test)
like "$OUT" "RESULT=ok" "r10 gets it at login (its session goes to the pinned server)" || diag "$OUT"
# a reload sends the map whole (servers, weights or components may have
# changed), one generation on
g0=$(grep 'pool map: 3 servers' "$SB/prosody-1/prosody.log" | tail -n 1 | sed -n 's/.*generation \([0-9]*\).*/\1/p')
f0=$(metric 'xedge_route_map_sends_total{kind="full"}')
out=$(ctl reload 2>&1)
ok $? "xedgectl reload" || diag "$out"
for _ in $(seq 1 100); do
	grep -q "pool map: 3 servers, 1 pins (from [^)]*) (full, generation $((g0 + 1)))" "$SB/prosody-1/prosody.log" && break
	sleep 0.05
done
like "$(grep 'pool map: 3 servers' "$SB/prosody-1/prosody.log" | tail -n 1)" "1 pins \\(from [^)]*\\) \\(full, generation $((g0 + 1))\\)" \
	"... the glue gets the map whole, generation $g0 -> $((g0 + 1))"
is "$(($(metric 'xedge_route_map_sends_total{kind="full"}') - ${f0:-0}))" 3 "... to each of the 3 links"

# --- a user moved: pin, then their data follows --------------------------------
OUT=$(rc_run send move-1 r13@example.test r12@example.test)
[ -s "$(offline_file prosody-0 r12)" ] || diag "no offline message for r12 on prosody-0 before the move"
out=$(ctl user pin r12@example.test prosody-2 2>&1)
ok $? "xedgectl user pin r12 (homed on prosody-0, subscribed to r16) prosody-2" || diag "$out"
for _ in $(seq 1 50); do
	grep -q 'pool map: 3 servers, 2 pins' "$SB/prosody-0/prosody.log" && break
	sleep 0.1
done
OUT=$(rc_run send move-2 r13@example.test r12@example.test) # after the pin: kept at the new home
out=$("$XE_TOP_SRCDIR/contrib/prosody/prosody-move-user" "$SB/prosody-0/data" "$SB/prosody-2/data" example.test r12 2>&1)
ok $? "prosody-move-user moves r12's data from prosody-0 to prosody-2" || diag "$out"
ok "$([ -s "$SB/prosody-2/data/example%2etest/roster/r12.dat" ] && [ -s "$(offline_file prosody-2 r12)" ] &&
	[ ! -e "$SB/prosody-0/data/example%2etest/roster/r12.dat" ] && [ ! -e "$(offline_file prosody-0 r12)" ] &&
	echo 0 || echo 1)" "... its roster and offline messages are on prosody-2 only" || diag "$out"
ok "$(grep -q move-1 "$(offline_file prosody-2 r12)" && grep -q move-2 "$(offline_file prosody-2 r12)" && echo 0 || echo 1)" \
	"... the old offline messages joined the one that came after the pin"
OUT=$(rc_run moved move-1 r16@example.test r12@example.test)
like "$OUT" "MOVED jid=r12@example.test body=1 contact=r16@example.test sub=both" \
	"r12 logs in on prosody-2: the offline message and the subscription with r16 are there" || diag "$OUT"
like "$(grep 'event=session .*jid=r12@example.test ' "$XEDGE_LOG" | tail -n 1)" "backend=prosody-2\$" "... and its session is on prosody-2"

# --- the home down ------------------------------------------------------------
OUT=$(rc_run send pre-down r13@example.test r23@example.test)
[ -s "$(offline_file prosody-2 r23)" ] || diag "no offline message for r23 on prosody-2 before the stop"
stop_server "$SB" prosody-2 "$XEDGE_LOG"
like "$(grep 'event=route-link-down' "$XEDGE_LOG" | tail -n 1)" "server=prosody-2" "prosody-2 stopped: its link is down"
t0=$(now_ms)
OUT=$(rc_run send down-1 r13@example.test r22@example.test)
t1=$(now_ms)
like "$OUT" "ERROR to=r13@example.test from=r22@example.test condition=recipient-unavailable type=wait" \
	"a message for a user homed there: the sender gets recipient-unavailable (wait)" || diag "$OUT"
ok "$([ $((t1 - t0)) -lt 8000 ] && echo 0 || echo 1)" "... at once (the run took $((t1 - t0)) ms, 2 s of it waiting)"
ok "$([ ! -e "$(offline_file prosody-0 r22)" ] && [ ! -e "$(offline_file prosody-1 r22)" ] && echo 0 || echo 1)" \
	"... and no other server keeps it"
is "$(metric 'xedge_route_refused_total{from="prosody-0",reason="home-down"}')" 1 "counted: xedge_route_refused_total{reason=home-down}"

# --- a hostile link -------------------------------------------------------------
OUT=$(timeout 30 "$PY" "$XE_TOP_SRCDIR/t/lib/route_link.py" "$XEDGE_ROUTE" example.test prosody-1 \
	"$SB/secret" bad-auth 10 2>&1)
is "$OUT" "AUTH=failure" "a link without the pool's secret is refused" || diag "$OUT"
timeout 30 "$PY" "$XE_TOP_SRCDIR/t/lib/route_link.py" "$XEDGE_ROUTE" example.test prosody-2 \
	"$SB/secret" echo 20 >"$XE_SANDBOX_DIR/hostile.out" 2>&1 &
hpid=$!
for _ in $(seq 1 100); do
	grep -q '^MAP' "$XE_SANDBOX_DIR/hostile.out" && break
	sleep 0.1
done
OUT=$(rc_run send loop-1 r13@example.test r22@example.test)
wait "$hpid"
OUT=$(cat "$XE_SANDBOX_DIR/hostile.out")
like "$OUT" "ROUTED-IN to=r22@example.test" "a link claiming prosody-2 gets r22's message" || diag "$OUT"
like "$OUT" "REFUSED to=loop@remote.test/x condition=service-unavailable" \
	"... and sending it back to xedge is refused: the stanza does not loop" || diag "$OUT"
like "$(grep 'event=route-refused from=prosody-2' "$XEDGE_LOG" | tail -n 1)" "jid=r22@example.test reason=loop" \
	"... logged as a loop"
is "$(metric 'xedge_route_refused_total{from="prosody-2",reason="loop"}')" 1 "... and counted"
like "$(grep 'event=route-refused from=prosody-2' "$XEDGE_LOG" | grep -v reason=loop | tail -n 1)" \
	"jid=r22@example.test reason=forged-from" \
	"sent back unchanged, with r13's from (a user of prosody-0): dropped as forged"
is "$(metric 'xedge_route_refused_total{from="prosody-2",reason="forged-from"}')" 1 "... and counted"
ok "$(grep -q '^REFUSED to=r13' "$XE_SANDBOX_DIR/hostile.out" && echo 1 || echo 0)" \
	"... without an error to the forged sender"

# a link that sends refusals as fast as it writes: a few log lines a second
OUT=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/route_link.py" "$XEDGE_ROUTE" example.test prosody-2 \
	"$SB/secret" flood 30 2>&1)
like "$OUT" "FLOODED" "2001 stanzas refused on one link" || diag "$OUT"
n=$(grep -c 'event=route-refused from=prosody-2 .*reason=bad-address' "$XEDGE_LOG")
ok "$([ "$n" -le 60 ] && echo 0 || echo 1)" "... logged at most 10 a second ($n lines)"
for _ in $(seq 1 50); do # written at the next second's refusal or when the link closes
	grep -q 'event=route-refused-suppressed from=prosody-2' "$XEDGE_LOG" && break
	sleep 0.1
done
like "$(grep 'event=route-refused-suppressed from=prosody-2' "$XEDGE_LOG" | tail -n 1)" "count=[0-9]+" \
	"... the rest summed up in one line"
is "$(metric 'xedge_route_refused_total{from="prosody-2",reason="bad-address"}')" 2001 "... and all counted"

# a link that reads nothing: xedge stops reading it rather than keep its
# errors without end (XE_ROUTE_MAX_QUEUE, 4 MiB)
OUT=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/route_link.py" "$XEDGE_ROUTE" example.test prosody-2 \
	"$SB/secret" deaf 30 2>&1)
like "$OUT" "BLOCKED sent=" "a glue that reads nothing: xedge stops reading from it (60 MB of errors)" || diag "$OUT"
like "$(grep 'event=route-link-paused' "$XEDGE_LOG" | tail -n 1)" "server=prosody-2 .*queued=[0-9]+" "... logged"

# map deltas piling up for a glue that reads nothing: past 256 KiB
# (XE_ROUTE_MAX_DELTAS) they are dropped and the map goes whole (or, the
# link's queue over 4 MiB, the link is closed); the other glues apply them
# all. Fifteen imports of 400 pinned users each: deltas of about 20 KB.
# xedge reads the pins once a second, so on a loaded machine two or three
# imports may make one delta; one over 64 KiB (XE_ROUTE_MAX_DELTA, four
# imports at once) would go as the map whole and never pile up, hence the
# small imports and the wait for each one's delta.
"$PY" "$XE_TOP_SRCDIR/t/lib/route_link.py" "$XEDGE_ROUTE" example.test prosody-2 "$SB/secret" hold 120 \
	>"$SB/hold.out" 2>&1 &
HP=$!
for _ in $(seq 1 200); do grep -q HOLDING "$SB/hold.out" && break; sleep 0.1; done
is "$(grep -c HOLDING "$SB/hold.out")" 1 "a glue that reads nothing holds its link open" || diag "$(cat "$SB/hold.out")"
NIMPORT=15 PERIMPORT=400
NEXTRA=$((NIMPORT * PERIMPORT))
ctl user export example.test | grep -F "\"jid\":\"r23@example.test\"" | "$PY" -c '
import json, sys
u = json.loads(sys.stdin.readline())
s = {"SCRAM-SHA-256": u["scram"]["SCRAM-SHA-256"]}
for r in range(int(sys.argv[2])):
    with open("%s/extra-%d.jsonl" % (sys.argv[1], r), "w") as f:
        for i in range(int(sys.argv[3])):
            f.write(json.dumps({"jid": "d%02d%04d@example.test" % (r, i), "pin": "prosody-0", "scram": s}) + "\n")
' "$SB" "$NIMPORT" "$PERIMPORT"
nd0=$(grep -c ') (delta' "$SB/prosody-0/prosody.log")
nch0=$(grep -c 'event=route-map-changed pool=main' "$XEDGE_LOG")
for ((r = 0; r < NIMPORT; r++)); do
	nch=$(grep -c 'event=route-map-changed pool=main' "$XEDGE_LOG")
	# shellcheck disable=SC2086 # XEDGECTL is a command line
	timeout 60 $XEDGECTL user import <"$SB/extra-$r.jsonl" >/dev/null 2>&1
	for _ in $(seq 1 200); do
		[ "$(grep -c 'event=route-map-changed pool=main' "$XEDGE_LOG")" -gt "$nch" ] && break
		sleep 0.05
	done
done
for _ in $(seq 1 100); do
	grep -q 'event=route-map-deltas-dropped server=prosody-2' "$XEDGE_LOG" && break
	sleep 0.05
done
like "$(grep 'event=route-map-deltas-dropped' "$XEDGE_LOG" | tail -n 1)" "server=prosody-2 bytes=[0-9]{6}" \
	"the deltas for it passed 256 KiB: dropped, the map whole instead"
changes=$(grep 'event=route-map-changed pool=main' "$XEDGE_LOG" | tail -n +$((nch0 + 1)))
is "$(printf '%s\n' "$changes" | grep -c 'kind=full')" 0 \
	"... the imports were deltas, none the map whole ($(printf '%s\n' "$changes" | grep -c 'kind=delta') deltas for $NIMPORT imports)"
for _ in $(seq 1 100); do
	[ "$(($(grep -c ') (delta' "$SB/prosody-0/prosody.log") - nd0))" -ge 1 ] &&
		grep ') (delta' "$SB/prosody-0/prosody.log" | tail -n 1 | grep -qF ", $((NEXTRA + 2)) pins" && break
	sleep 0.1
done
like "$(grep ') (delta' "$SB/prosody-0/prosody.log" | tail -n 1)" ", $((NEXTRA + 2)) pins \\(from [^)]*\\) \\(delta" \
	"... which prosody-0's glue applied, all of them ($((NEXTRA + 2)) pins)"
kill "$HP" 2>/dev/null
wait "$HP" 2>/dev/null

# a glue that missed a delta asks for the whole map (<resync/>)
OUT=$(timeout 30 "$PY" "$XE_TOP_SRCDIR/t/lib/route_link.py" "$XEDGE_ROUTE" example.test prosody-2 \
	"$SB/secret" resync 10 2>&1)
g=$(printf '%s\n' "$OUT" | sed -n 's/^MAP gen=\([0-9]*\) pins=\([0-9]*\)$/\1 \2/p')
like "$OUT" "MAP-AGAIN gen=${g% *} pins=${g#* }" "a link's <resync/>: the whole map again, of the same generation (${g:-none})" ||
	diag "$OUT"
like "$(grep 'event=route-map-resync' "$XEDGE_LOG" | tail -n 1)" "server=prosody-2" "... logged"

# --- the home back: nothing lost -------------------------------------------------
nup=$(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG")
nbu=$(grep -c 'event=backend-up pool=main backend=prosody-2' "$XEDGE_LOG")
(cd "$SB/prosody-2" && exec prosody -F --config "$SB/prosody-2/prosody.cfg.lua" </dev/null >>"$SB/prosody-2/console.out" 2>&1) &
P2=$!
XEDGE_PIDS="$XEDGE_PIDS,$P2" # stopped with the sandbox
# (its link up, and its health checks passed: logins wait for those, and
# take longer on a loaded machine)
for _ in $(seq 1 300); do
	[ "$(grep -c 'event=route-link-up pool=main server=prosody-2' "$XEDGE_LOG")" -gt "$nup" ] &&
		[ "$(grep -c 'event=backend-up pool=main backend=prosody-2' "$XEDGE_LOG")" -gt "$nbu" ] && break
	sleep 0.1
done
OUT=$(rc_run receive pre-down r23@example.test)
like "$OUT" "RESULT=ok" "prosody-2 back: r23 gets the message kept there before the stop" || diag "$OUT"

# --- more pins than one element holds: the map in parts --------------------------
# 100,050 users pinned (xedgectl user import, SCRAM records: no derivation),
# then r23 (homed on prosody-2 by the hash, and sorting after all of them)
# pinned to prosody-0: the map goes to the glues in parts of 256 KiB, every
# pin of it (once, 100,000 were sent and the rest dropped; and a map over
# 1 MiB was more than the glue's stanza limit). Last: every map change
# costs each glue a parse of about 5 MB from here on.
NFILL=100050
ctl user export example.test | grep -F "\"jid\":\"r23@example.test\"" | "$PY" -c '
import json, sys
u = json.loads(sys.stdin.readline())
s = {"SCRAM-SHA-256": u["scram"]["SCRAM-SHA-256"]}
for i in range(int(sys.argv[1])):
    print(json.dumps({"jid": "f%06d@example.test" % i, "pin": "prosody-1", "scram": s}))
' "$NFILL" >"$SB/fill.jsonl"
# xedge stopped meanwhile (else it would send each second's map while the
# import runs), with room in the store for them
kill -TERM "$XEDGE_PID"
for _ in $(seq 1 100); do kill -0 "$XEDGE_PID" 2>/dev/null || break; sleep 0.05; done
sed -i 's/map_size_mb = [0-9]*;/map_size_mb = 512;/' "$XEDGE_CONF"
t0=$(now_ms)
# shellcheck disable=SC2086 # XEDGECTL is a command line
timeout 120 $XEDGECTL user import <"$SB/fill.jsonl" >/dev/null 2>"$SB/fill.err"
is "$?/$(grep '^xedgectl: import:' "$SB/fill.err")" "0/xedgectl: import: $NFILL added, 0 replaced, 0 kept (already there), 0 failed" \
	"$NFILL users pinned to prosody-1 imported ($(($(now_ms) - t0)) ms)"
ctl user pin r23@example.test prosody-0 >/dev/null
ok $? "r23 (homed on prosody-2) pinned to prosody-0, after them in key order"
NPINS=$((NFILL + 3 + NEXTRA))
n2=$(wc -l <"$SB/prosody-2/prosody.log")
nlog=$(wc -l <"$XEDGE_LOG")
t0=$(now_ms)
xedge_restart "$XEDGE_CONF" || bail "xedge did not start again"
for k in 0 1 2; do
	for _ in $(seq 1 600); do
		grep -q "pool map: 3 servers, $NPINS pins" "$SB/prosody-$k/prosody.log" && break
		sleep 0.1
	done
done
got=""
for k in 0 1 2; do got+="$(grep -c "pool map: 3 servers, $NPINS pins" "$SB/prosody-$k/prosody.log" | sed 's/^[1-9][0-9]*$/y/')"; done
is "$got" "yyy" "each glue has the whole map: $NPINS pins ($(($(now_ms) - t0)) ms from xedge's start)"
is "$(grep -c 'event=route-pin-ignored' "$XEDGE_LOG")/$(tail -n +"$((n2 + 1))" "$SB/prosody-2/prosody.log" | grep -c 'bad XML')" \
	"0/0" "... no pin ignored by xedge, no bad XML at a glue"
# (the sessions after the restart wait for the backends' health checks)
for _ in $(seq 1 300); do
	[ "$(tail -n +"$((nlog + 1))" "$XEDGE_LOG" | grep -c 'event=backend-up pool=main')" -ge 3 ] && break
	sleep 0.1
done
OUT=$(rc_run send many-1 r14@example.test r23@example.test)
ok "$([ -s "$(offline_file prosody-0 r23)" ] && [ ! -s "$(offline_file prosody-2 r23)" ] && echo 0 || echo 1)" \
	"a message from r14 (prosody-2) to the offline r23 is kept at its pin, prosody-0 (the glue knew the pin)"
OUT=$(rc_run receive many-1 r23@example.test)
like "$OUT" "RESULT=ok" "r23 gets it at login on prosody-0" || diag "$OUT"
# a pin changed among them: a delta of a few hundred bytes to each link,
# not the 5 MB map again; a user deleted: its pin goes in a delta too
full_b=$(metric 'xedge_route_map_bytes_total{kind="full"}')
db0=$(metric 'xedge_route_map_bytes_total{kind="delta"}')
ctl user pin f000007@example.test prosody-2 >/dev/null
for _ in $(seq 1 100); do
	grep -q "pool map: 3 servers, $NPINS pins (from [^)]*) (delta, generation [0-9]*: 1 pinned" "$SB/prosody-0/prosody.log" && break
	sleep 0.05
done
db1=$(metric 'xedge_route_map_bytes_total{kind="delta"}')
is "$(grep -c "pool map: 3 servers, $NPINS pins (from [^)]*) (delta, generation [0-9]*: 1 pinned, 0 unpinned)" "$SB/prosody-0/prosody.log")" 1 \
	"with $NPINS pins, a pin moved: the glue applies a delta"
ok "$([ $((db1 - ${db0:-0})) -gt 0 ] && [ $((db1 - ${db0:-0})) -le 600 ] && echo 0 || echo 1)" \
	"... $((db1 - ${db0:-0})) bytes to the 3 links (the map whole: $full_b bytes written so far)"
is "$(metric 'xedge_route_map_bytes_total{kind="full"}')" "$full_b" "... and no map whole"
out=$(ctl user del --keep-data f000009@example.test 2>&1)
ok $? "user del f000009 (pinned to prosody-1)" || diag "$out"
for _ in $(seq 1 100); do
	grep -q "pool map: 3 servers, $((NPINS - 1)) pins (from [^)]*) (delta, generation [0-9]*: 0 pinned, 1 unpinned)" "$SB/prosody-1/prosody.log" && break
	sleep 0.05
done
is "$(grep -c "pool map: 3 servers, $((NPINS - 1)) pins (from [^)]*) (delta, generation [0-9]*: 0 pinned, 1 unpinned)" "$SB/prosody-1/prosody.log")" 1 \
	"... a user deleted: its pin leaves the glue's map in a delta"
is "$(metric 'xedge_route_map_bytes_total{kind="full"}')" "$full_b" "... and no map whole"

# --- xedge -t ------------------------------------------------------------------
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/route = true;/route = true; policy = "least-conn";/' "$XEDGE_CONF") 2>&1)
like "$out" "route: pool 'main': route = true needs policy \"sticky\"" "xedge -t: route with least-conn is refused, saying why" ||
	diag "$out"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/route = true;/route = true; on_down = "next";/' "$XEDGE_CONF") 2>&1)
like "$out" "on_down: pool 'main': route = true needs on_down = \"error\"" "xedge -t: route with on_down = \"next\" is refused, saying why" ||
	diag "$out"

out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/server = "prosody-0"; } );/server = "prosody-7"; } );/' "$XEDGE_CONF") 2>&1)
like "$out" "server: pool 'main' has no server named 'prosody-7'" "xedge -t: a component on a server not in the pool is refused" ||
	diag "$out"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/route = true;/policy = "round-robin";/; /^routing = /d; /components = /d' "$XEDGE_CONF") 2>&1)
like "$out" "policy: pool 'main': round-robin would split one user's sessions over independent servers: server 'prosody-0' is a Prosody server" \
	"xedge -t: round-robin over Prosody servers is refused, saying why" || diag "$out"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/route = true;/policy = "least-conn"; allow_split = true;/; /^routing = /d; /components = /d' "$XEDGE_CONF") 2>&1)
like "$out" "is valid" "xedge -t: ... accepted with allow_split = true" || diag "$out"

xedge_alive
ok $? "xedge is still running"
