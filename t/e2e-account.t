#!/bin/bash
# e2e-account.t: managing a user manages the account's live sessions, on
# each backend kind (Prosody, ejabberd, jabberd2; each user pinned to one):
# `xedgectl user disable` and `user del` end the user's spliced session
# within a second with <not-authorized/> and a text that says why, and the
# session is gone from xedge (and so from the backend); `user passwd` keeps
# the sessions unless --kick; `user expire now` keeps them and refuses the
# next login. Every change made with xedgectl is in the daemon's log as
# event=admin action=... jid=... uid=... (the control socket's peer) and
# counted (xedge_admin_actions_total); with xedge stopped the change is made
# all the same and xedgectl says that it could not tell it.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

KINDS="prosody ejabberd jabberd2"
plan 51

PW="acct-$RANDOM-$RANDOM"
args=()
for k in $KINDS; do
	args+=(--user "d-$k@example.test=$PW" --user "r-$k@example.test=$PW")
done
args+=(--user "p@example.test=$PW" --user "e@example.test=$PW")
sandbox_up --backends prosody:1,ejabberd:1,jabberd2:1 "${args[@]}"
SB=$XE_SANDBOX_DIR_SB
for k in $KINDS; do
	ctl user pin "d-$k@example.test" "$k-0" && ctl user pin "r-$k@example.test" "$k-0" ||
		bail "cannot pin the users to $k-0"
done

# hold NAME JID: a session that stays online (raw_client --hold)
hold() {
	"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --jid "$2" \
		--password "$PW" --mech PLAIN --resource "$1" --hold 40 --timeout 60 \
		>"$SB/$1.out" 2>"$SB/$1.err" &
	eval "${1//-/_}_pid=\$!"
}
ready() { for _ in $(seq 1 300); do grep -q '^READY' "$SB/$1.out" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# closed_within NAME TENTHS: the session's CLOSE line came within TENTHS/10 s
closed_within() {
	for _ in $(seq 1 "$2"); do grep -q '^CLOSE ' "$SB/$1.out" && return 0; sleep 0.1; done
	grep -q '^CLOSE ' "$SB/$1.out"
}
closed() { sed -n 's/^CLOSE how=\([^ ]*\).*/\1/p' "$SB/$1.out"; }
close_text() { sed -n 's/^CLOSE-TEXT text=//p' "$SB/$1.out"; }
in_list() { ctl session list | grep -c "jid=$1 .*state=spliced"; }
metric() {
	"$PY" - "$XEDGE_METRICS" "$1" <<'PYEOF'
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
print(next((l.split()[-1] for l in body.splitlines() if l.startswith(sys.argv[2] + ' ')), '-'))
PYEOF
}
UID_=$(id -u)

for k in $KINDS; do
	# disable
	hold "d-$k" "d-$k@example.test"
	ready "d-$k" || diag "$(cat "$SB/d-$k.out" "$SB/d-$k.err")"
	is "$(in_list "d-$k@example.test")" 1 "$k: d-$k's session is spliced"
	out=$(ctl user disable "d-$k@example.test")
	is "$?/$out" "0/ended=1" "$k: user disable: exit 0, ended=1"
	closed_within "d-$k" 10
	ok $? "$k: ... the client's stream ended within a second"
	is "$(closed "d-$k")/$(close_text "d-$k")" "stream-error:not-authorized/the_account_was_disabled" \
		"$k: ... with <not-authorized/> and 'the account was disabled'"
	is "$(in_list "d-$k@example.test")" 0 "$k: ... and the session is gone"
	# delete
	hold "r-$k" "r-$k@example.test"
	ready "r-$k" || diag "$(cat "$SB/r-$k.out" "$SB/r-$k.err")"
	out=$(ctl user del --keep-data "r-$k@example.test")
	is "$?/$out" "0/ended=1" "$k: user del: exit 0, ended=1"
	closed_within "r-$k" 10
	ok $? "$k: ... the client's stream ended within a second"
	is "$(closed "r-$k")/$(close_text "r-$k")" "stream-error:not-authorized/the_account_was_removed" \
		"$k: ... with <not-authorized/> and 'the account was removed'"
	is "$(in_list "r-$k@example.test")" 0 "$k: ... and the session is gone"
done

like "$(grep 'event=account-end ' "$XEDGE_LOG" | grep -c 'reason=disabled')" '^3$' \
	"event=account-end logged for each disabled session"
is "$(metric 'xedge_account_sessions_ended_total{reason="disabled"}')/$(metric 'xedge_account_sessions_ended_total{reason="removed"}')" \
	"3/3" "xedge_account_sessions_ended_total by reason"
like "$(grep 'event=admin action=user-disable ' "$XEDGE_LOG" | grep 'jid=d-prosody@example.test')" \
	"uid=$UID_ pid=[0-9]+ end=disabled ended=1" "the audit trail: user-disable, who asked (uid), what it ended"
like "$(grep 'event=admin action=user-del ' "$XEDGE_LOG" | grep 'jid=r-jabberd2@example.test')" \
	"uid=$UID_ .*ended=1" "the audit trail: user-del"
like "$(grep 'event=admin action=user-pin ' "$XEDGE_LOG" | grep 'jid=d-ejabberd@example.test')" \
	"uid=$UID_ pid=[0-9]+ pin=ejabberd-0" "the audit trail: user-pin, with the server"

# passwd keeps the sessions; --kick ends them
hold p1 p@example.test
ready p1
printf '%s\n' "$PW" | ctl user passwd p@example.test >/dev/null
sleep 0.3
is "$(in_list p@example.test)" 1 "user passwd: the session goes on"
out=$(printf '%s\n' "$PW" | ctl user passwd --kick p@example.test)
is "$?/$out" "0/ended=1" "user passwd --kick: ended=1"
closed_within p1 10
is "$(closed p1)/$(close_text p1)" "stream-error:not-authorized/the_account's_password_was_changed" \
	"... <not-authorized/>, 'the account's password was changed'"
raw --jid p@example.test --password "$PW" --mech PLAIN
is "$(result RESULT)" ok "... and the new password logs in"

# expire now: the session stays, the next login is refused
hold e1 e@example.test
ready e1
out=$(ctl user expire e@example.test now)
is "$?/$out" "0/" "user expire now: exit 0, nothing ended"
sleep 0.3
is "$(in_list e@example.test)" 1 "... the session goes on"
raw --jid e@example.test --password "$PW" --mech PLAIN
is "$(result RESULT)/$(result condition)" "failure/credentials-expired" "... the next login gets <credentials-expired/>"
like "$(grep 'event=admin action=user-expire ' "$XEDGE_LOG")" "jid=e@example.test uid=$UID_ pid=[0-9]+ expires=[1-9][0-9]*" \
	"the audit trail: user-expire"

# the other changes: add, enable, import, session kick, lockout clear, drain
printf '%s\n' "$PW" | ctl user add n@example.test >/dev/null
ctl user enable d-prosody@example.test
printf '{"jid":"i@example.test","password":"%s"}\n' "$PW" | ctl user import 2>/dev/null
ctl session kick e@example.test >/dev/null
ctl lockout clear --all >/dev/null
ctl backend drain prosody-0 >/dev/null
ctl backend undrain prosody-0 >/dev/null
log=$(grep 'event=admin ' "$XEDGE_LOG")
like "$log" "action=user-add jid=n@example.test uid=$UID_ " "the audit trail: user-add"
like "$log" "action=user-enable jid=d-prosody@example.test uid=$UID_ " "the audit trail: user-enable"
like "$log" "action=user-import jid=- uid=$UID_ pid=[0-9]+ added=1 replaced=0 kept=0 failed=0" "the audit trail: user-import, with its counts"
like "$log" "action=session-kick jid=e@example.test uid=$UID_ pid=[0-9]+ kicked=1" "the audit trail: session-kick"
like "$log" "action=lockout-clear jid=- uid=$UID_ pid=[0-9]+ key=--all cleared=" "the audit trail: lockout-clear"
like "$log" "action=backend-drain jid=- uid=$UID_ pid=[0-9]+ server=prosody-0 servers=1" "the audit trail: backend-drain"
is "$(metric 'xedge_admin_actions_total{action="user-disable"}')/$(metric 'xedge_admin_actions_total{action="backend-undrain"}')" \
	"3/1" "xedge_admin_actions_total by action"

# the control socket refuses what is not an action
out=$(printf 'admin user-bogus x@example.test\n' | timeout 5 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.recv(4096).decode().strip())' "$XEDGE_CONTROL")
is "$out" "error unknown action" "admin with an unknown action: refused"

# xedge stopped: the change is made, and xedgectl says it could not tell
kill -TERM "$XEDGE_PID"
for _ in $(seq 1 100); do kill -0 "$XEDGE_PID" 2>/dev/null || break; sleep 0.05; done
ctl user disable n@example.test >"$SB/down.out" 2>"$SB/down.err"
is "$?" 0 "xedge stopped: user disable still exits 0"
like "$(cat "$SB/down.err")" "the change is made in the user store, but xedge was not told .*live sessions go on" \
	"... and says that xedge was not told"
like "$(ctl user show n@example.test)" "disabled: yes" "... the user is disabled in the store"
