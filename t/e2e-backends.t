#!/bin/bash
# e2e-backends.t: pool policies, health checks and draining on two real
# Prosody backends. least-conn spreads sessions evenly, round-robin
# alternates; in a sticky pool a stopped server is marked down by the health
# checks within interval x fall (xedgectl backend list, metrics), its users
# get <remote-connection-failed/> (on_down = "error") or the next server in
# hash order (on_down = "next") while the other server's users are
# untouched; a drained server gets no new sessions and keeps its open ones;
# undrain brings it back; the restarted server comes back up.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 26

PW="backends-$RANDOM-$RANDOM"
N=20
args=()
users=()
for i in $(seq 1 $N); do
	users+=("u$i@example.test")
	args+=(--user "u$i@example.test=$PW")
done
sandbox_up --backends 2 "${args[@]}"
CHECK="$XE_TOP_SRCDIR/t/lib/backends_check.py"
CONF0="$XE_SANDBOX_DIR_SB/xedge.conf.orig"
cp "$XEDGE_CONF" "$CONF0"

# pool_settings TEXT: the sandbox's pool with TEXT added, then a reload
pool_settings() {
	# allow_split: these pools of independent Prosody servers test the policies
	sed "s|{ name = \"main\";|{ name = \"main\"; allow_split = true; $1|" "$CONF0" >"$XEDGE_CONF"
	local out
	out=$(ctl reload 2>&1) || bail "reload with '$1' refused: $out"
}
# logins USERS...: log them in (all held open until the last), LOGIN = the
# answer lines
logins() {
	LOGIN=$(timeout 120 "$PY" "$CHECK" login "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "$@" 2>&1)
	diag "$LOGIN"
}
# backend_of JID: the backend of JID's last session in xedge's log
backend_of() {
	grep "event=session .*jid=$1 " "$XEDGE_LOG" | tail -n 1 | sed -n 's/.*backend=\([^ ]*\).*/\1/p'
}
# metric SERIES: its value on the metrics endpoint
metric() {
	"$PY" - "$XEDGE_METRICS" "$1" <<'PYEOF'
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
print(next((l.split()[-1] for l in body.splitlines() if l.startswith(sys.argv[2] + ' ')), '-'))
PYEOF
}
HEALTH='health = { interval = 1; timeout = 1; fall = 2; rise = 1; };'

# --- least-conn -----------------------------------------------------------------
pool_settings "policy = \"least-conn\"; $HEALTH"
mark=$(wc -l <"$XEDGE_LOG")
logins "${users[@]}"
is "$(printf '%s\n' "$LOGIN" | grep -c ' ok$')" "$N" "least-conn: all $N users logged in"
on0=$(tail -n +"$mark" "$XEDGE_LOG" | grep -c 'event=session .*backend=prosody-0$')
on1=$(tail -n +"$mark" "$XEDGE_LOG" | grep -c 'event=session .*backend=prosody-1$')
ok "$([ $((on0 - on1)) -le 4 ] && [ $((on1 - on0)) -le 4 ] && echo 0 || echo 1)" \
	"least-conn: the $N sessions spread evenly ($on0 on prosody-0, $on1 on prosody-1)"

pool_settings "policy = \"round-robin\"; $HEALTH"
mark=$(wc -l <"$XEDGE_LOG")
logins "${users[@]:0:8}"
seq=$(tail -n +"$mark" "$XEDGE_LOG" | sed -n 's/.*event=session .*backend=prosody-\([01]\)$/\1/p' | tr -d '\n')
like "$seq" '^(01010101|10101010)$' "round-robin: 8 logins alternate ($seq)"

LIST=$(ctl backend list)
diag "$LIST"
like "$LIST" 'backend name=prosody-0 pool=main kind=prosody address=127\.0\.0\.1 port=[0-9]+ weight=1 state=up health=up sessions=0' \
	"backend list: prosody-0, its kind, address, state and sessions"
like "$LIST" 'backend name=prosody-1 pool=main kind=prosody .* state=up ' "backend list: prosody-1 up"
JSON=$(ctl backend list --json)
is "$(printf '%s' "$JSON" | "$PY" -c 'import json,sys; print(",".join(b["name"] + ":" + b["state"] for b in json.load(sys.stdin)))')" \
	"prosody-0:up,prosody-1:up" "backend list --json"
is "$(metric 'xedge_backend_up{pool="main",backend="prosody-1"}')" 1 "metrics: prosody-1 up"

# --- sticky: a server goes down -------------------------------------------------------
pool_settings "$HEALTH"
HASH=$("$PY" "$CHECK" hash prosody-0,prosody-1 "${users[@]}")
mapfile -t U0 < <(printf '%s\n' "$HASH" | awk '$3 == "prosody-0" {print $2}')
mapfile -t U1 < <(printf '%s\n' "$HASH" | awk '$3 == "prosody-1" {print $2}')
[ ${#U0[@]} -ge 3 ] && [ ${#U1[@]} -ge 3 ] || bail "too few users per server (${#U0[@]}, ${#U1[@]})"
P1=$(printf '%s' "$XEDGE_BACKEND_PIDS" | cut -d, -f2)
t0=$(now_ms)
kill -TERM "$P1"
state=""
for _ in $(seq 1 80); do
	state=$(ctl backend list | sed -n 's/^backend name=prosody-1 .* state=\([a-z]*\) .*/\1/p')
	[ "$state" = down ] && break
	sleep 0.1
done
ms=$(($(now_ms) - t0))
is "$state" down "prosody-1 stopped: down in backend list"
ok "$([ $ms -le 4500 ] && echo 0 || echo 1)" "... within interval x fall + slack (${ms} ms <= 4500)"
is "$(metric 'xedge_backend_up{pool="main",backend="prosody-1"}')" 0 "metrics: xedge_backend_up of prosody-1 is 0"
grep -q 'event=backend-down pool=main backend=prosody-1 reason=' "$XEDGE_LOG"
ok $? "xedge logs event=backend-down"

logins "${U1[0]}" "${U1[1]}" "${U0[0]}" "${U0[1]}"
like "$LOGIN" "USER ${U1[0]} error=remote-connection-failed text=the_server_that_holds_this_account_is_unavailable" \
	"on_down error: a user of prosody-1 gets <remote-connection-failed/>, saying its server is unavailable"
like "$LOGIN" "USER ${U1[1]} error=remote-connection-failed" "... and another"
is "$(printf '%s\n' "$LOGIN" | grep -c "^USER ${U0[0]} ok\$\|^USER ${U0[1]} ok\$")" 2 \
	"prosody-0's users log in untouched"

pool_settings "on_down = \"next\"; $HEALTH"
logins "${U1[0]}" "${U1[1]}"
is "$(printf '%s\n' "$LOGIN" | grep -c ' ok$')" 2 "on_down next: prosody-1's users log in"
is "$(backend_of "${U1[0]}")/$(backend_of "${U1[1]}")" "prosody-0/prosody-0" "... on prosody-0, the next in their hash order"

# --- draining -------------------------------------------------------------------------
pool_settings "$HEALTH"
FLAG="$XE_SANDBOX_DIR_SB/ping.flag"
rm -f "$FLAG"
timeout 60 "$PY" "$CHECK" keep "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "${U0[0]}" "$FLAG" >"$XE_SANDBOX_DIR_SB/keep.out" 2>&1 &
KEEP=$!
for _ in $(seq 1 100); do grep -q READY "$XE_SANDBOX_DIR_SB/keep.out" && break; sleep 0.1; done
grep -q READY "$XE_SANDBOX_DIR_SB/keep.out" || bail "the kept session did not log in: $(cat "$XE_SANDBOX_DIR_SB/keep.out")"
out=$(ctl backend drain prosody-0 2>&1)
is "$?/$out" "0/draining=1" "backend drain prosody-0"
like "$(ctl backend list)" 'backend name=prosody-0 .* state=draining health=up sessions=1' \
	"backend list: prosody-0 draining, with its open session"
logins "${U0[1]}"
like "$LOGIN" "USER ${U0[1]} error=remote-connection-failed" "a new login of a prosody-0 user: as on_down says (error)"
touch "$FLAG"
wait "$KEEP"
is "$(grep '^PING' "$XE_SANDBOX_DIR_SB/keep.out")" "PING ok" "the session open on the draining server keeps working (ping)"
out=$(ctl backend undrain prosody-0 2>&1)
is "$?/$out" "0/undrained=1" "backend undrain prosody-0"
logins "${U0[1]}"
is "$(printf '%s\n' "$LOGIN" | grep -c ' ok$')/$(backend_of "${U0[1]}")" "1/prosody-0" "... its users log in on it again"
out=$(ctl backend drain prosody-9 2>&1)
is "$?/$out" "1/xedgectl: xedge: error no backend server of that name" "drain: an unknown server is an error"

# --- the stopped server comes back ---------------------------------------------------
"${PROSODY:-prosody}" -F --config "$XE_SANDBOX_DIR_SB/prosody-1/prosody.cfg.lua" </dev/null >>"$XE_SANDBOX_DIR_SB/prosody-1/console.out" 2>&1 &
XEDGE_PIDS="$XEDGE_PIDS,$!"
state=""
for _ in $(seq 1 100); do
	state=$(ctl backend list | sed -n 's/^backend name=prosody-1 .* state=\([a-z]*\) .*/\1/p')
	[ "$state" = up ] && break
	sleep 0.1
done
is "$state" up "prosody-1 restarted: up again in backend list"
grep -q 'event=backend-up pool=main backend=prosody-1 ' "$XEDGE_LOG"
ok $? "xedge logs event=backend-up"
logins "${U1[2]}"
is "$(printf '%s\n' "$LOGIN" | grep -c ' ok$')/$(backend_of "${U1[2]}")" "1/prosody-1" "its users log in on it again"
