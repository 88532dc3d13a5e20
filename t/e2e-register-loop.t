#!/bin/bash
# e2e-register-loop.t: in-band registration's work (the PBKDF2 of the SCRAM
# secrets and the store's LMDB write) runs in libuv's thread pool, not on
# the loop. With sasl.scram_iterations at its maximum (one registration
# takes about a second of CPU), a burst of registrations on other streams
# leaves a logged-in user's message round trip fast (on the loop it waited
# for at least one whole registration); more than 16 jobs under way are
# answered <resource-constraint/> (wait); a password change runs the same
# way; a connection that closes while its job runs (its auth timeout
# fires) drops the answer and xedge goes on; what a client sends behind
# its request goes on after the answer, in order (compression is not
# offered where registration is on: xedge -t refuses both on one domain).
# All counted in xedge_register_jobs_total{op,result}. One worker: every
# stream on one loop.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 15

PROBE="$XE_TOP_SRCDIR/t/lib/register_probe.py"
probe() { _run_tool "$PROBE" "$@"; }
line() { printf '%s\n' "$OUT" | grep "^$1 " | head -n 1; }
val() { line "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
metric() { # metric SERIES: its value (0 when absent)
	local v
	v=$(curl -s --max-time 5 "$XEDGE_METRICS" | awk -v n="$1" '$1 == n {print $2; exit}')
	echo "${v:-0}"
}
PW="pw-$RANDOM-$RANDOM"

sandbox_up --user "alice@example.test=$PW" --enable register \
	--conf 'workers = 1; limits = { registrations_per_address = 100; }; sasl = { scram_iterations = 1000000; };' \
	--conf 'timeouts = { auth = 300; preauth_idle = 300; };' # (a loaded or sanitizer run is slow)

# 1. six registrations at once, and a message round trip meanwhile
probe burst alice@example.test "$PW" 6 --timeout 150
is "$(val BURST ok)/$(val BURST other)/$(val BURST message)" "6/0/ok" \
	"six registrations at once (1000000 iterations): all created"
ping=$(val BURST ping_ms) fastest=$(val BURST fastest_ms)
diag "message round trip ${ping:-?} ms while the jobs ran; registrations took ${fastest:-?} to $(val BURST slowest_ms) ms"
[ -n "$ping" ] && [ -n "$fastest" ] && [ "$ping" -lt 1000 ] && [ $((ping * 2)) -lt "$fastest" ]
ok $? "the loop stays responsive: the message's round trip (${ping:-?} ms) is under half the fastest registration (${fastest:-?} ms)"
is "$(metric 'xedge_register_jobs_total{op="register",result="ok"}')" 6 \
	"each ran as a job in the thread pool (xedge_register_jobs_total ok 6)"
is "$(metric xedge_register_jobs)" 0 "... and none is under way after (xedge_register_jobs 0)"
is "$(ctl user list 2>/dev/null | grep -c '^burst[0-9]*-[0-9]*@example.test')" 6 "the six accounts are in the store"

# 2. beyond 16 jobs under way: <resource-constraint/> (100000 iterations:
# jobs of about 0.1 s, still far longer than sending twenty requests)
SB=$XE_SANDBOX_DIR_SB
sed 's/scram_iterations *= *1000000/scram_iterations = 100000/' "$XEDGE_CONF" >"$SB/fewer.conf"
grep -q 'scram_iterations = 100000' "$SB/fewer.conf" || bail "no scram_iterations in $XEDGE_CONF"
xedge_restart "$SB/fewer.conf"
probe burst alice@example.test "$PW" 20 --timeout 150
ok_n=$(val BURST ok) busy=$(val BURST busy)
is "$((ok_n + busy))/$(val BURST other)" "20/0" "twenty at once: each created or refused busy (ok=$ok_n busy=$busy)"
[ "${busy:-0}" -ge 1 ] && [ "${ok_n:-0}" -le 16 ]
ok $? "... at most 16 jobs under way, the rest answered <resource-constraint/> (wait)"
is "$(metric 'xedge_register_jobs_total{op="register",result="busy"}')" "$busy" \
	"... counted as busy"

# 3. a password change is a job too
probe passwd alice@example.test "$PW" "new-$PW" --after 5 --timeout 30
is "$(line PASSWD)" "PASSWD result=ok" "a logged-in user changes the password"
is "$(line AFTER)" "AFTER in_order=yes" "... the messages sent behind the request go on after it, in order"
is "$(metric 'xedge_register_jobs_total{op="password",result="ok"}')" 1 "... in the thread pool"
grep -q 'event=register-password .*result=ok' "$XEDGE_LOG"
ok $? "... logged as before (event=register-password result=ok)"

# 4. connections that close while their jobs run: an auth timeout of 1 s
# and four registrations at once (each job longer than that)
sed 's/auth = 300;/auth = 1;/' "$XEDGE_CONF" >"$SB/short.conf"
grep -q 'auth = 1;' "$SB/short.conf" || bail "no timeouts.auth in $XEDGE_CONF"
xedge_restart "$SB/short.conf"
pids=""
for i in 1 2 3 4; do
	(probe register "late$i@example.test" "pw-late$i" --timeout 20
	 printf '%s\n' "$RESULT" >"$XE_SANDBOX_DIR/late$i.out") &
	pids="$pids $!"
done
wait $pids # (not xedge, a child too)
for _ in $(seq 1 300); do
	grep -q 'event=register-job op=register result=dropped' "$XEDGE_LOG" && break
	sleep 0.1
done
diag "the four clients got: $(cat "$XE_SANDBOX_DIR"/late*.out | tr '\n' ';')"
grep -q 'event=register-job op=register result=dropped' "$XEDGE_LOG"
ok $? "connections closed during their jobs: the jobs end in the pool, their answers dropped"
[ "$(metric 'xedge_register_jobs_total{op="register",result="dropped"}')" -ge 1 ]
ok $? "... counted as dropped"
xedge_alive
ok $? "xedge is still running"
