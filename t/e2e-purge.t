#!/bin/bash
# e2e-purge.t: `xedgectl user del` deletes the account at its home server
# too, on each backend kind (Prosody, ejabberd, jabberd2; users pinned): a
# user with a roster item, a vCard and an offline message is deleted, the
# running xedge purges the data (it logs in as the user and asks for the
# account's removal, XEP-0077 <remove/>, doc/assertion.md), and a new user
# of the same name finds none of it. With the backend down: the tombstone
# (user list --pending, with the attempts and the error), the refusal to
# re-create the name (and why), the purge once the backend is back, then
# the name is free. `user del --keep-data` keeps the data, as before. A
# user changes its own password and removes its own account without
# registration on the domain (account_management, on by default): the
# removal ends the user's other sessions and purges as user del does.
# The race: a purge re-reads its tombstone right before <remove/> (a relay
# holds the backend's bind result for 5 s, meanwhile the name is given up and
# created again): it abandons, and the new account's data stays. Several at
# once: a backend that accepts and never answers holds its own purge for
# 10 s, while another backend's purge completes.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

KINDS="prosody ejabberd jabberd2"
plan 56

PW="purge-$RANDOM-$RANDOM"
args=()
for k in $KINDS; do
	args+=(--user "u-$k@example.test=$PW" --user "s-$k@example.test=$PW")
done
args+=(--user "d@example.test=$PW" --user "k@example.test=$PW" --user "o@example.test=$PW")
args+=(--user "r@example.test=$PW" --user "x@example.test=$PW" --user "y@example.test=$PW")
sandbox_up --backends prosody:1,ejabberd:1,jabberd2:1 "${args[@]}"
SB=$XE_SANDBOX_DIR_SB
DATA="$XE_TOP_SRCDIR/t/lib/account_data.py"
for k in $KINDS; do
	ctl user pin "u-$k@example.test" "$k-0" && ctl user pin "s-$k@example.test" "$k-0" ||
		bail "cannot pin the users to $k-0"
done
ctl user pin d@example.test prosody-0 && ctl user pin k@example.test prosody-0 &&
	ctl user pin o@example.test prosody-0 || bail "pin"

# data MODE JID ARGS...: account_data.py through xedge; the output line
data() {
	local mode=$1 jid=$2
	shift 2
	timeout 40 "$PY" "$DATA" "$mode" --jid "$jid" --password "$PW" --server "$XEDGE_C2S" \
		--cafile "$XEDGE_CERT" "$@" 2>>"$SB/data.err"
}
# purged JID: wait (10 s at most) for the purge of JID to be confirmed
purged() {
	for _ in $(seq 1 100); do
		grep -q "event=purge jid=$1 .*result=ok" "$XEDGE_LOG" && return 0
		sleep 0.1
	done
	return 1
}

for k in $KINDS; do
	u="u-$k@example.test"
	is "$(data seed "$u" --contact "c@example.test" --token "FN-$k")" "SEED ok" "$k: a roster item and a vCard set"
	data send "s-$k@example.test" --to "$u" --token "m1-$k" >/dev/null
	is "$(data check "$u" --presence)" "CHECK roster=1 vcard=FN-$k offline=1" \
		"$k: the backend keeps them, and an offline message"
	data send "s-$k@example.test" --to "$u" --token "m2-$k" >/dev/null
	out=$(ctl user del "$u")
	is "$?/$out" "0/ended=0" "$k: user del"
	purged "$u"
	ok $? "$k: ... the purge at $k-0 is confirmed (event=purge result=ok)"
	like "$(grep "event=purge jid=$u " "$XEDGE_LOG")" "server=$k-0 result=ok attempts=1" "$k: ... at the pin's server, first time"
	is "$(ctl user list --pending)" "" "$k: ... no tombstone left"
	printf '%s\n' "$PW" | ctl user add "$u" && ctl user pin "$u" "$k-0"
	is "$(data check "$u" --presence)" "CHECK roster=0 vcard=- offline=0" \
		"$k: a new user of the same name finds no roster item, no vCard, no offline message"
done

# --keep-data: the old deletion
is "$(data seed k@example.test --contact c@example.test --token FN-k)" "SEED ok" "keep-data: a vCard and a roster item"
ctl user del --keep-data k@example.test >/dev/null
is "$?/$(ctl user list --pending)" "0/" "user del --keep-data: no tombstone"
printf '%s\n' "$PW" | ctl user add k@example.test && ctl user pin k@example.test prosody-0
is "$(data check k@example.test)" "CHECK roster=1 vcard=FN-k offline=0" "... and the data is still there for the next user of the name"

# the user's own account management, without registration on the domain
# (account_management, on by default): a password change, then the removal,
# which does what user del does
client --jid o@example.test --password "$PW" --change-password "n-$PW"
is "$(printf '%s\n' "$OUT" | grep '^PASSWD ')" "PASSWD result=ok" "own account: a password change without register = true"
client --jid o@example.test --password "n-$PW"
is "$(result RESULT)" ok "... the new password logs in"
PW0=$PW
PW="n-$PW0"
is "$(data seed o@example.test --contact c@example.test --token FN-o)" "SEED ok" "own account: a vCard and a roster item"
"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --jid o@example.test \
	--password "$PW" --mech PLAIN --resource other --hold 30 --timeout 40 >"$SB/o.out" 2>&1 &
for _ in $(seq 1 100); do grep -q '^READY' "$SB/o.out" && break; sleep 0.05; done
client --jid o@example.test --password "$PW" --unregister
is "$(printf '%s\n' "$OUT" | grep '^UNREGISTER ')/$(result close)" "UNREGISTER result=ok/stream-error:not-authorized" \
	"own account: the removal, then <not-authorized/>"
for _ in $(seq 1 10); do grep -q '^CLOSE ' "$SB/o.out" && break; sleep 0.1; done
is "$(sed -n 's/^CLOSE how=\([^ ]*\).*/\1/p' "$SB/o.out")/$(sed -n 's/^CLOSE-TEXT text=//p' "$SB/o.out")" \
	"stream-error:not-authorized/the_account_was_removed" "... the user's other session ended within a second"
purged o@example.test
ok $? "... and the data at prosody-0 is purged, as by user del"
PW=$PW0
printf '%s\n' "$PW" | ctl user add o@example.test && ctl user pin o@example.test prosody-0
is "$(data check o@example.test)" "CHECK roster=0 vcard=- offline=0" "... a new o finds nothing of the old one"

# the backend down: the tombstone, the refusal, the purge when it is back
is "$(data seed d@example.test --contact c@example.test --token FN-d)" "SEED ok" "down: d has a vCard and a roster item on prosody-0"
ppid=$(printf '%s' "$XEDGE_BACKEND_PIDS" | cut -d, -f1)
kill -TERM "$ppid"
for _ in $(seq 1 100); do kill -0 "$ppid" 2>/dev/null || break; sleep 0.1; done
ok "$(kill -0 "$ppid" 2>/dev/null && echo 1 || echo 0)" "down: prosody-0 stopped"
out=$(ctl user del d@example.test)
is "$?/$out" "0/ended=0" "down: user del exits 0"
for _ in $(seq 1 50); do grep -q 'event=purge jid=d@example.test .*result=failed' "$XEDGE_LOG" && break; sleep 0.1; done
like "$(grep 'event=purge jid=d@example.test' "$XEDGE_LOG")" 'result=failed attempts=1 retry_s=5 error="cannot connect to the backend' \
	"down: the purge failed, logged, retried in 5 s"
like "$(ctl user list --pending)" '^d@example.test deleted=[0-9T:Z-]+ pin=prosody-0 attempts=[1-9] next=[0-9T:Z-]+ error="cannot connect to the backend' \
	"down: user list --pending shows the tombstone, attempts and error"
is "$(ctl user list | grep -c '^d@')" 0 "down: the user itself is gone (list)"
printf '%s\n' "$PW" | ctl user add d@example.test >"$SB/add.out" 2>"$SB/add.err"
is "$?" 1 "down: user add of the name: exit 1"
like "$(cat "$SB/add.err")" "user d@example.test was deleted and its data at the backend is not purged yet .*retries the purge.*user del --keep-data d@example.test" \
	"down: ... saying why, and how to finish or force it"
printf '{"jid":"d@example.test","password":"%s"}\n' "$PW" | ctl user import >/dev/null 2>"$SB/imp.err"
is "$?" 1 "down: user import of the name: refused too"
like "$(ctl user del d@example.test 2>&1)" "deleted already; the purge .* is pending" "down: user del again: says it is pending"
like "$(curl -s "$XEDGE_METRICS")" 'xedge_purges_total\{result="failed"\} [1-9]' "down: xedge_purges_total{result=failed}"
"${PROSODY:-prosody}" -F --config "$SB/prosody-0/prosody.cfg.lua" </dev/null >>"$SB/prosody-0/console.out" 2>&1 &
XEDGE_PIDS="$XEDGE_PIDS,$!"
for _ in $(seq 1 250); do
	grep -q "event=purge jid=d@example.test .*result=ok" "$XEDGE_LOG" && break
	sleep 0.1
done
like "$(grep 'event=purge jid=d@example.test .*result=ok' "$XEDGE_LOG")" "server=prosody-0 result=ok attempts=[2-9]" \
	"back up: the retried purge is confirmed"
is "$(ctl user list --pending)" "" "back up: the tombstone is gone"
printf '%s\n' "$PW" | ctl user add d@example.test && ctl user pin d@example.test prosody-0
is "$?" 0 "back up: the name can be created again"
is "$(data check d@example.test)" "CHECK roster=0 vcard=- offline=0" "back up: ... and the new d finds nothing of the old one"
like "$(curl -s "$XEDGE_METRICS")" 'xedge_purges_total\{result="ok"\} 5' "xedge_purges_total{result=ok}: 5"
like "$(grep 'event=admin action=user-del jid=d@example.test' "$XEDGE_LOG")" 'uid=[0-9]+ .*purge=pending end=removed ended=0' \
	"the audit trail: user-del, purge=pending"

# --- the race: given up and created again while the purge logs in ------------
# Two more servers in the pool: "slow" (split_relay.py in front of prosody-0,
# holding the bind result of the purge's resource for 5 s) and "deaf" (accepts,
# never answers).
BPORT=$(sed -n 's/.*name = "prosody-0"; address = "[^"]*"; port = \([0-9]*\);.*/\1/p' "$XEDGE_CONF")
RPORT=$(pick_base_port)
DPORT=$((RPORT + 1))
"$PY" "$XE_TOP_SRCDIR/t/lib/split_relay.py" "$RPORT" "$BPORT" "/xedge-purge<" 5 90 >"$SB/relay.out" 2>&1 &
XEDGE_PIDS="$XEDGE_PIDS,$!"
"$PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); print("READY", flush=True)
held = []
end = time.time() + 90
while time.time() < end:
    s.settimeout(end - time.time())
    try:
        held.append(s.accept()[0])
    except OSError:
        break
' "$DPORT" >"$SB/deaf.out" 2>&1 &
XEDGE_PIDS="$XEDGE_PIDS,$!"
for _ in $(seq 1 100); do grep -q READY "$SB/relay.out" && grep -q READY "$SB/deaf.out" && break; sleep 0.05; done
line=$(grep 'name = "prosody-0";' "$XEDGE_CONF")
slow=$(printf '%s' "$line" | sed -e 's/"prosody-0"/"slow"/' -e "s/port = $BPORT;/port = $RPORT;/" -e 's/ s2s_port = [0-9]*;//' -e 's/ *}[, ]*$/ },/')
deaf=$(printf '%s' "$line" | sed -e 's/"prosody-0"/"deaf"/' -e "s/port = $BPORT;/port = $DPORT;/" -e 's/ s2s_port = [0-9]*;//' -e 's/ *}[, ]*$/ },/')
cp "$XEDGE_CONF" "$SB/xedge.conf.orig"
awk -v a="$slow" -v b="$deaf" '/name = "prosody-0";/ { print a; print b } { print }' "$SB/xedge.conf.orig" >"$XEDGE_CONF"
xedge_restart "$XEDGE_CONF" || bail "xedge did not restart with the slow and deaf servers"
ctl user pin r@example.test slow && ctl user pin x@example.test deaf && ctl user pin y@example.test prosody-0 ||
	bail "cannot pin r, x, y: $(grep -c slow "$XEDGE_CONF")"

ctl user del r@example.test >/dev/null
for _ in $(seq 1 100); do grep -q SPLIT "$SB/relay.out" && break; sleep 0.05; done
grep -q SPLIT "$SB/relay.out"
ok $? "race: r's purge logged in at slow; its bind result is held"
ctl user del --keep-data r@example.test >/dev/null &&
	printf '%s\n' "$PW" | ctl user add r@example.test && ctl user pin r@example.test prosody-0
is "$?/$(ctl user list --pending | grep -c '^r@')" "0/0" "race: meanwhile the purge is given up and r created again"
is "$(data seed r@example.test --contact c@example.test --token FN-r2)" "SEED ok" "race: the new r sets a vCard and a roster item"
for _ in $(seq 1 100); do grep -q 'event=purge jid=r@example.test .*result=' "$XEDGE_LOG" && break; sleep 0.1; done
like "$(grep 'event=purge jid=r@example.test ' "$XEDGE_LOG")" 'server=slow result=abandoned reason="the tombstone is gone' \
	"race: the purge re-read the tombstone before <remove/> and abandoned"
is "$(data check r@example.test)" "CHECK roster=1 vcard=FN-r2 offline=0" "race: the new r's data is still there"

# --- several at once: the deaf backend holds only its own purge -------------
is "$(data seed y@example.test --contact c@example.test --token FN-y)" "SEED ok" "parallel: y has a vCard on prosody-0"
t0=$(now_ms)
ctl user del x@example.test >/dev/null
for _ in $(seq 1 40); do grep -q 'event=purge-start jid=x@example.test' "$XEDGE_LOG" && break; sleep 0.05; done
ctl user del y@example.test >/dev/null
purged y@example.test
ok $? "parallel: y's purge at prosody-0 is confirmed"
t1=$(now_ms)
is "$(grep -c 'event=purge jid=x@example.test ' "$XEDGE_LOG")/$((t1 - t0 < 8000))" "0/1" \
	"parallel: ... while x's at the deaf server still waits ($((t1 - t0)) ms)"
