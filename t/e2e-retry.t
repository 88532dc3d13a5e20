#!/bin/bash
# e2e-retry.t: pools[].retries. With health checks off (so that nothing but
# the retry can save a login), a stopped server's logins go to another
# server of the pool: every login of a round-robin pool succeeds, each one
# that hit the dead server after one retry (event=backend-retry); with
# retries = 0 those fail; a sticky pool with on_down = "error" never moves a
# user (the server holds the user's data), with on_down = "next" it moves
# them to the next server in hash order.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 9

PW="retry-$RANDOM-$RANDOM"
N=10
args=()
users=()
for i in $(seq 1 $N); do
	users+=("r$i@example.test")
	args+=(--user "r$i@example.test=$PW")
done
sandbox_up --backends 2 "${args[@]}"
CHECK="$XE_TOP_SRCDIR/t/lib/backends_check.py"
CONF0="$XE_SANDBOX_DIR_SB/xedge.conf.orig"
cp "$XEDGE_CONF" "$CONF0"
NOCHECKS='health = { interval = 0; };'

pool_settings() {
	# allow_split: these pools of independent Prosody servers test the policies
	sed "s|{ name = \"main\";|{ name = \"main\"; allow_split = true; $1|" "$CONF0" >"$XEDGE_CONF"
	local out
	out=$(ctl reload 2>&1) || bail "reload with '$1' refused: $out"
	MARK=$(wc -l <"$XEDGE_LOG")
}
logins() {
	LOGIN=$(timeout 120 "$PY" "$CHECK" login "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "$@" 2>&1)
	diag "$LOGIN"
	OKS=$(printf '%s\n' "$LOGIN" | grep -c ' ok$')
	FAILS=$(printf '%s\n' "$LOGIN" | grep -c 'error=remote-connection-failed')
}
since() { tail -n +"$((MARK + 1))" "$XEDGE_LOG"; }

# prosody-1 goes away
kill -TERM "$(printf '%s\n' $BACKEND_PIDS | sed -n 2p)"
sleep 0.5

pool_settings "policy = \"round-robin\"; retries = 1; $NOCHECKS"
logins "${users[@]}"
is "$OKS" "$N" "round-robin, retries = 1, prosody-1 stopped: all $N logins succeed"
r=$(since | grep -c 'event=backend-retry .*failed=prosody-1 attempt=2')
ok "$([ "$r" -ge 3 ] && echo 0 || echo 1)" "... $r of them after a retry (event=backend-retry failed=prosody-1)"
is "$(since | grep 'event=session ' | grep -vc 'backend=prosody-0$')" 0 "... all on prosody-0"

pool_settings "policy = \"round-robin\"; retries = 0; $NOCHECKS"
logins "${users[@]}"
ok "$([ "$FAILS" -ge 3 ] && [ $((OKS + FAILS)) -eq "$N" ] && echo 0 || echo 1)" \
	"retries = 0: the logins sent to prosody-1 fail ($FAILS), the others succeed ($OKS)"
is "$(since | grep -c 'event=backend-retry')" 0 "... with no retry"

pool_settings "retries = 1; $NOCHECKS"
logins "${users[@]}"
sticky_fails=$FAILS
ok "$([ "$FAILS" -ge 1 ] && [ $((OKS + FAILS)) -eq "$N" ] && echo 0 || echo 1)" \
	"sticky, on_down = error: users whose server is prosody-1 fail ($FAILS), the others log in ($OKS)"
is "$(since | grep -c 'event=backend-retry')" 0 "... never moved to another server"

pool_settings "on_down = \"next\"; retries = 1; $NOCHECKS"
logins "${users[@]}"
is "$OKS" "$N" "sticky, on_down = next: every user logs in"
is "$(since | grep -c 'event=backend-retry .*failed=prosody-1')" "$sticky_fails" \
	"... the $sticky_fails users of prosody-1 after one retry each"
