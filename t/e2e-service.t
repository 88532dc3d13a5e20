#!/bin/bash
# e2e-service.t: running as a service. xedge switches to an unprivileged
# user after binding its ports and loading its keys and store (user/group),
# tells systemd when it is ready and when it stops (sd_notify, Type=notify),
# and logs to syslog or the journal (log_to), one line per event. The
# syslog and journal sockets are this test's own, mounted over /dev/log and
# /run/systemd/journal in a private mount namespace (unshare -m: as root).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 15

[ "$(id -u)" = 0 ] || bail "this test switches users and mounts: run it as root"
command -v unshare >/dev/null || bail "unshare (util-linux) is missing"
SINK="$XE_TOP_SRCDIR/t/lib/dgram_sink.py"
PW="svc-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW"
T=$XE_SANDBOX_DIR
XEDGE="$XE_TOP_BUILDDIR/src/xedge"

# conf_with TEXT...: the sandbox's configuration plus TEXT, as a new file
conf_with() {
	local f
	f=$(mktemp "$T/conf.XXXXXX")
	cat "$XEDGE_CONF" >"$f"
	printf '%s\n' "$@" >>"$f"
	echo "$f"
}
# sink PATH OUT: start a datagram sink; SINK_PID
sink() {
	"$PY" "$SINK" "$1" "$2" 60 &
	SINK_PID=$!
	for _ in $(seq 1 100); do [ -e "$1.ready" ] && return 0; sleep 0.05; done
	bail "the datagram sink did not start at $1"
}
# wait_port: until xedge accepts on its STARTTLS port (or 5 s)
wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${XEDGE_C2S%:*}/${XEDGE_C2S##*:}") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
stop_xedge() { # stop_xedge PID: SIGTERM, wait; XSTATUS
	kill -TERM "$1" 2>/dev/null
	wait "$1"
	XSTATUS=$?
}
kill -TERM "$XEDGE_PID"
for _ in $(seq 1 100); do kill -0 "$XEDGE_PID" 2>/dev/null || break; sleep 0.05; done

# ---- privilege drop ----------------------------------------------------------
nobody_gid=$(getent group nogroup | cut -d: -f3)
"$XEDGE" -c "$(conf_with 'user = "nobody";' 'group = "nogroup";')" >>"$XEDGE_LOG" 2>&1 &
XEDGE_PID=$!
XEDGE_PIDS="$XEDGE_PID,$XEDGE_PIDS"
wait_port || bail "xedge (user = nobody) did not start: $(tail -n 5 "$XEDGE_LOG")"
is "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$XEDGE_PID/status")" "65534 65534 65534 65534" \
	"user = \"nobody\": every uid of xedge is nobody's after start"
is "$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$XEDGE_PID/status")" \
	"$nobody_gid $nobody_gid $nobody_gid $nobody_gid" "group = \"nogroup\": every gid too"
is "$(awk '/^CapEff:/ {print $2}' "/proc/$XEDGE_PID/status")" "0000000000000000" "... and no capability is left"
client --jid alice@example.test --password "$PW"
is "$RC" 0 "an unprivileged xedge still serves logins (store, keys and ports kept)"
grep -q "event=privileges user=nobody uid=65534 gid=$nobody_gid" "$XEDGE_LOG"
ok $? "the switch is logged"
stop_xedge "$XEDGE_PID"
is "$XSTATUS" 0 "SIGTERM: exit 0"

out=$("$XEDGE" -c "$(conf_with 'user = "no-such-user-xe";')" 2>&1)
rc=$?
is "$rc" 1 "user = an unknown user: xedge refuses to start (exit 1)"
like "$out" "user no-such-user-xe: no such user" "... and says why"

# ---- sd_notify -----------------------------------------------------------------
sink "$T/notify.sock" "$T/notify.out"
NOTIFY_SOCKET="$T/notify.sock" "$XEDGE" -c "$XEDGE_CONF" >>"$XEDGE_LOG" 2>&1 &
XEDGE_PID=$!
XEDGE_PIDS="$XEDGE_PID,$XEDGE_PIDS"
for _ in $(seq 1 100); do grep -q READY=1 "$T/notify.out" 2>/dev/null && break; sleep 0.05; done
(exec 3<>"/dev/tcp/${XEDGE_C2S%:*}/${XEDGE_C2S##*:}") 2>/dev/null
ok $? "NOTIFY_SOCKET: READY=1 came, and by then xedge accepts connections"
kill -HUP "$XEDGE_PID" # systemctl reload (ExecReload)
for _ in $(seq 1 100); do [ "$(grep -c READY=1 "$T/notify.out")" -ge 2 ] && break; sleep 0.05; done
stop_xedge "$XEDGE_PID"
for _ in $(seq 1 40); do grep -q STOPPING=1 "$T/notify.out" && break; sleep 0.05; done
is "$(tr '\n' ' ' <"$T/notify.out")" "READY=1 RELOADING=1 READY=1 STOPPING=1 " \
	"READY=1 once, RELOADING=1 then READY=1 around a SIGHUP reload, then STOPPING=1 on SIGTERM"
is "$XSTATUS" 0 "... and exit 0"
kill "$SINK_PID" 2>/dev/null

# ---- syslog --------------------------------------------------------------------
# /dev/log inside the namespace is our sink; the rest of /dev is bound in
mkdir -p "$T/dev"
sink "$T/dev/log" "$T/syslog.out"
SYSLOG_CONF=$(conf_with 'log_to = "syslog";' 'syslog_facility = "local3";')
unshare -m bash -c '
	set -e
	for f in null zero random urandom; do touch "$1/dev/$f"; mount --bind "/dev/$f" "$1/dev/$f"; done
	mount --bind "$1/dev" /dev
	exec "$2" -c "$3"' - "$T" "$XEDGE" "$SYSLOG_CONF" >"$T/syslog.stderr" 2>&1 &
XPID=$!
XEDGE_PIDS="$XPID,$XEDGE_PIDS"
wait_port || bail "xedge (log_to = syslog) did not start: $(cat "$T/syslog.stderr")"
client --jid bob@example.test --password "$PW"
stop_xedge "$XPID"
for _ in $(seq 1 50); do grep -q 'event=auth-ok' "$T/syslog.out" 2>/dev/null && break; sleep 0.1; done
# local3 = 19: info is <158>
like "$(grep 'event=auth-ok' "$T/syslog.out")" "^<158>.*xedge\[[0-9]+\]: level=info event=auth-ok .*jid=bob@example\.test" \
	"log_to = syslog, facility local3: auth-ok reaches /dev/log as <158> (local3.info), tagged xedge[pid]"
like "$(grep -c 'event=' "$T/syslog.out")" '^[3-9]|^[1-9][0-9]' "... with the other events (started, session, stopping)"
is "$(grep -c 'event=' "$T/syslog.stderr")" 0 "... and none on stderr"
kill "$SINK_PID" 2>/dev/null

# ---- the journal ---------------------------------------------------------------
mkdir -p "$T/journal"
sink "$T/journal/socket" "$T/journal.out"
unshare -m bash -c '
	set -e
	mount -t tmpfs xedge-test-run /run
	mkdir -p /run/systemd/journal
	mount --bind "$1/journal" /run/systemd/journal
	exec "$2" -c "$3"' - "$T" "$XEDGE" "$(conf_with 'log_to = "journal";')" >"$T/journal.stderr" 2>&1 &
XPID=$!
XEDGE_PIDS="$XPID,$XEDGE_PIDS"
wait_port || bail "xedge (log_to = journal) did not start: $(cat "$T/journal.stderr")"
stop_xedge "$XPID"
# the sink writes what it received on its own time: wait for it (5 s at most)
for _ in $(seq 1 50); do grep -q 'event=started' "$T/journal.out" 2>/dev/null && break; sleep 0.1; done
like "$(grep 'event=started' "$T/journal.out")" "MESSAGE=level=info event=started .*\|PRIORITY=6\|SYSLOG_IDENTIFIER=xedge" \
	"log_to = journal: events reach the journal socket as MESSAGE, PRIORITY, SYSLOG_IDENTIFIER" ||
	diag "xedge's stderr (exit $XSTATUS):" "$(head -n 20 "$T/journal.stderr")" "the sink got:" "$(head -n 5 "$T/journal.out")"
kill "$SINK_PID" 2>/dev/null
