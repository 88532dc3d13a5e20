# t/lib/spread.sh: the body of t/e2e-spread.t and t/e2e-spread-jabberd2.t,
# sourced after sandbox.sh with KIND set (ejabberd or jabberd2): 300 users
# over a sticky pool of two Prosody and one KIND with weights 2:1:1.
# shellcheck shell=bash
plan 7

N=300
PW="spread-$RANDOM-$RANDOM"
sandbox_up --backends "prosody:2,$KIND:1" --user "u0@example.test=$PW" \
	--conf 'limits = { connection_rate_per_address = 0; max_connections_per_address = 0; };'
SB=$XE_SANDBOX_DIR_SB
CHECK="$XE_TOP_SRCDIR/t/lib/backends_check.py"

# the other users: u0's exported SCRAM secrets under other names (SCRAM's
# secrets do not depend on the name), in one import
line=$(ctl user export example.test | grep '"u0@example.test"')
[ -n "$line" ] || bail "no export line for u0"
users=(u0@example.test)
for i in $(seq 1 $((N - 1))); do
	printf '%s\n' "${line//\"u0@example.test\"/\"u$i@example.test\"}"
	users+=("u$i@example.test")
done >"$SB/users.jsonl"
out=$(ctl user import "$SB/users.jsonl" 2>&1)
ok $? "$((N - 1)) more users imported ($out)"

# weights 2:1:1
sed -i 's/\(name = "prosody-0";.*\)weight = 1;/\1weight = 2;/' "$XEDGE_CONF"
grep -q 'name = "prosody-0";.*weight = 2;' "$XEDGE_CONF" || bail "could not set prosody-0's weight"
out=$(ctl reload 2>&1) || bail "reload refused: $out"

t0=$(now_ms)
OUT=$(timeout 120 "$PY" "$CHECK" spread "$XEDGE_C2S" "$XEDGE_CERT" "$PW" "$XEDGE_LOG" \
	"prosody-0=2,prosody-1=1,$KIND-0=1" "${users[@]}" 2>&1)
diag "$OUT" "$N logins in $(($(now_ms) - t0)) ms"
is "$(printf '%s\n' "$OUT" | sed -n 's/^FAILED //p')" 0 "all $N users logged in"
is "$(printf '%s\n' "$OUT" | sed -n 's/^MISMATCH //p')" 0 "each landed on its weighted hash choice"
bad=$(printf '%s\n' "$OUT" | awk -v n=$N '/^COUNT / { e = $4 * n; d = $3 - e; if (d < 0) d = -d; if (d > 0.15 * e) print $2 "=" $3 "(expected " e ")" }')
is "$bad" "" "the spread follows the weights 2:1:1 within 15% ($(printf '%s\n' "$OUT" | awk '/^COUNT / {printf "%s=%s ", $2, $3}'))"

# a second xedge on the same configuration (its own ports and log)
P2=$(pick_base_port)
sed -e "s/port = ${XEDGE_C2S##*:};/port = $P2;/" -e "s/port = ${XEDGE_DIRECT_TLS##*:};/port = $((P2 + 1));/" \
	-e "s|control.sock|control2.sock|" -e '/^metrics = /d' "$XEDGE_CONF" >"$SB/second.conf"
"$XE_TOP_BUILDDIR/src/xedge" -c "$SB/second.conf" >"$SB/second.log" 2>&1 &
X2=$!
XEDGE_PIDS="$XEDGE_PIDS,$X2"
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$P2") 2>/dev/null && break
	kill -0 "$X2" 2>/dev/null || break
	sleep 0.05
done
OUT2=$(timeout 60 "$PY" "$CHECK" spread "127.0.0.1:$P2" "$XEDGE_CERT" "$PW" "$SB/second.log" \
	"prosody-0=2,prosody-1=1,$KIND-0=1" "${users[@]:0:60}" 2>&1)
diag "$OUT2"
is "$(printf '%s\n' "$OUT2" | sed -n 's/^FAILED //p')/$(printf '%s\n' "$OUT2" | sed -n 's/^MISMATCH //p')" "0/0" \
	"a second xedge process: 60 users land on the same servers"
kill -TERM "$X2"
wait "$X2" 2>/dev/null
xedge_alive
ok $? "xedge is still running"
ok "$([ "$(grep -c "event=backend pool=main backend=$KIND-0 kind=$KIND " "$XEDGE_LOG")" -ge 1 ] && echo 0 || echo 1)" \
	"the $KIND server's kind is logged"
