#!/bin/bash
# e2e-workers.t: workers = 2. Each worker thread has its own loop and its
# own listening sockets (SO_REUSEPORT): 40 logins spread over both (the
# log's worker= field, xedgectl session list); FAST is offered and tokens
# issued on both, a token issued on one logs in on the other; session list, kick and stats
# see every worker; a SIGHUP reload with sessions open on both drops none and
# the next clients get the new certificate; SIGTERM ends the sessions of both
# workers with <system-shutdown/> and xedge exits 0; the per-address limit is
# one count for all workers (max_connections_per_address = 5: the 6th is
# refused whichever worker takes it).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 25

PW="wk-$RANDOM-$RANDOM"
sandbox_up --user "u1@example.test=$PW" --user "u2@example.test=$PW" \
	--user "k@example.test=$PW" --user "h@example.test=$PW" \
	--conf 'workers = 2;' \
	--conf 'limits = { max_connections_per_address = 0; connection_rate_per_address = 0; };' \
	--conf 'timeouts = { shutdown_grace = 1; };' --conf 'sasl2 = { enabled = true; };'
SB=$XE_SANDBOX_DIR_SB
MANY="$XE_TOP_SRCDIR/t/lib/many_sessions.py"
xedge_restart "$XEDGE_CONF" # our own child: its exit status is read at the end
for _ in $(seq 1 100); do [ -S "$XEDGE_CONTROL" ] && break; sleep 0.05; done
like "$(grep 'event=workers ' "$XEDGE_LOG" | tail -n 1)" 'workers=2' "xedge starts 2 workers"

# ---- FAST on every worker: each worker's loop has its own token store
# instance over the same LMDB store. Password logins asking for a token,
# one at a time, until both workers have issued some (the log's worker=
# field of each login's auth-ok line says which); then each token logs in
# until a login lands on the other worker.
s2() { _run_tool "$XE_TOP_SRCDIR/t/lib/sasl2_client.py" "$@"; }
v() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | tail -n 1; }
# last_worker MARK: the worker= of the last auth-ok logged after line MARK
last_worker() { tail -n +"$(($1 + 1))" "$XEDGE_LOG" | grep 'event=auth-ok' | tail -n 1 | sed -n 's/.* worker=\([0-9]\) .*/\1/p'; }
U1=u1@example.test
declare -a tw
n=0 offered=0 issued=0
while [ $n -lt 40 ]; do
	m=$(wc -l <"$XEDGE_LOG")
	s2 --jid "$U1" --password "$PW" --ua-id "ua-w$n" --request-token HT-SHA-256-NONE --token-out "$SB/tok-$n"
	tw[$n]=$(last_worker "$m")
	[ -n "$(v FAST_MECHS)" ] && offered=$((offered + 1))
	[ -s "$SB/tok-$n" ] && [ "$(v AUTH)" = success ] && issued=$((issued + 1))
	n=$((n + 1))
	[ $n -ge 6 ] && printf '%s\n' "${tw[@]}" | grep -qx 0 && printf '%s\n' "${tw[@]}" | grep -qx 1 && break
done
diag "token logins by worker: ${tw[*]}"
is "$(printf '%s\n' "${tw[@]}" | sort -u | tr -d '\n')" 01 "password logins asking for a FAST token landed on both workers ($n)"
is "$offered/$issued" "$n/$n" "... every one was offered FAST and issued a token, on either worker"
cross=""
fastok=0 tries=0
for i in $(seq 0 $((n - 1))); do
	for _ in $(seq 1 12); do
		m=$(wc -l <"$XEDGE_LOG")
		s2 --jid "$U1" --token "@$SB/tok-$i" --ua-id "ua-w$i"
		tries=$((tries + 1))
		[ "$(v AUTH)/$(v MECH)" = success/HT-SHA-256-NONE ] && fastok=$((fastok + 1))
		w=$(last_worker "$m")
		if [ -n "$w" ] && [ "$w" != "${tw[$i]}" ]; then
			cross="$cross ${tw[$i]}>$w"
			break
		fi
	done
done
diag "tokens used on the other worker (issued>used):$cross"
is "$fastok" "$tries" "every FAST token login succeeded, on whichever worker ($tries)"
is "$(printf '%s\n' $cross | sort -u | tr -d '\n')" "0>11>0" \
	"a token issued on worker 0 logs in on worker 1, and one issued on worker 1 on worker 0"

# many NAME USERS COUNT: COUNT sessions held by one process until $SB/NAME.go
many() {
	rm -f "$SB/$1.go"
	"$PY" "$MANY" hold --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --users "$2" \
		--password "$PW" --count "$3" --workers 8 --trigger "$SB/$1.go" --timeout 100 \
		>"$SB/$1.out" 2>"$SB/$1.err" &
	eval "${1}_pid=\$!"
	for _ in $(seq 1 1200); do grep -q '^READY' "$SB/$1.out" && break; sleep 0.05; done
}
up() { sed -n 's/^READY //p' "$SB/$1.out"; }
# on_worker K: the spliced sessions of worker K in the session list
on_worker() { ctl session list | grep 'state=spliced' | grep -c " worker=$1\$"; }

many a u1@example.test,u2@example.test 40
is "$(up a)" 40 "40 logins (many_sessions.py)" ||
	diag "$(head -n 5 "$SB/a.out" "$SB/a.err")"
w0=$(grep 'event=session ' "$XEDGE_LOG" | grep -c 'level=info worker=0 ')
w1=$(grep 'event=session ' "$XEDGE_LOG" | grep -c 'level=info worker=1 ')
diag "logins by worker (log): worker 0: $w0, worker 1: $w1"
ok "$([ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] && [ $((w0 + w1)) -ge 40 ] && echo 0 || echo 1)" \
	"the logins are spread over both workers (log: $w0 and $w1)"
s0=$(on_worker 0)
s1=$(on_worker 1)
ok "$([ "$s0" -gt 0 ] && [ "$s1" -gt 0 ] && [ $((s0 + s1)) -eq 40 ] && echo 0 || echo 1)" \
	"session list: the 40 sessions, each with its worker ($s0 and $s1)"
like "$(ctl stats)" '^stats connections=40 .*spliced=40 .* workers=2$' "stats: the connections of both workers"
like "$(curl -s "$XEDGE_METRICS")" 'xedge_connections\{listener="starttls",state="spliced"\} 40' \
	"metrics: the connections of both workers, summed"

# kick, across workers
many k k@example.test 10
is "$(up k)" 10 "10 sessions of k@example.test"
kw=$(ctl session list | grep 'jid=k@example.test ' | sed -n 's/.* worker=\([0-9]\)$/\1/p' | sort -u | tr -d '\n')
diag "k@example.test's sessions are on workers: $kw"
id1=$(ctl session list | grep 'jid=k@example.test ' | grep ' worker=1$' | head -n 1 | sed -n 's/^session id=\([0-9]*\) .*/\1/p')
id0=$(ctl session list | grep 'jid=k@example.test ' | grep ' worker=0$' | head -n 1 | sed -n 's/^session id=\([0-9]*\) .*/\1/p')
n=0
for id in $id0 $id1; do
	[ "$(ctl session kick "$id")" = "kicked=1" ] && n=$((n + 1))
done
is "$n" "$(echo $id0 $id1 | wc -w)" "session kick ID works on either worker (ids: $id0 $id1)"
for _ in $(seq 1 100); do
	[ "$(ctl session list | grep -c 'jid=k@example.test ')" -eq $((10 - n)) ] && break
	sleep 0.05
done
out=$(ctl session kick k@example.test)
is "$out" "kicked=$((10 - n))" "session kick JID ends the user's sessions on every worker"
for _ in $(seq 1 100); do ctl session list | grep -q 'jid=k@example.test ' || break; sleep 0.05; done
ctl session list | grep -q 'jid=k@example.test '
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "... they are gone from the session list"
touch "$SB/k.go"

# SIGHUP reload with the 40 sessions open on both workers
fp() { "$PY" "$MANY" fingerprint --server "$XEDGE_C2S" --mode starttls --timeout 10; }
(cd "$SB" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout key2.pem -out cert2.pem -days 2 -subj "/CN=$XEDGE_DOMAIN" \
	-addext "subjectAltName=DNS:$XEDGE_DOMAIN" -addext "basicConstraints=critical,CA:TRUE" \
	>openssl2.out 2>&1) || bail "openssl failed: $(cat "$SB/openssl2.out")"
new_fp=$(openssl x509 -in "$SB/cert2.pem" -outform DER | sha256sum | cut -d' ' -f1)
cp "$XEDGE_CONF" "$SB/orig.conf"
sed -e "s|$SB/cert.pem|$SB/cert2.pem|" -e "s|$SB/key.pem|$SB/key2.pem|" "$SB/orig.conf" >"$XEDGE_CONF"
kill -HUP "$XEDGE_PID"
for _ in $(seq 1 100); do grep -q 'event=reload result=ok generation=2' "$XEDGE_LOG" && break; sleep 0.05; done
ok "$(grep -q 'event=reload result=ok generation=2' "$XEDGE_LOG"; echo $?)" "SIGHUP: reloaded (generation 2)"
good=0
for _ in $(seq 1 8); do [ "$(fp)" = "$new_fp" ] && good=$((good + 1)); done
is "$good" 8 "the next 8 clients (on both workers) are shown the new certificate"
raw --jid u1@example.test --password "$PW" --mech PLAIN --cafile "$SB/cert2.pem" --resource newcert >/dev/null
is "$RC" 0 "a client that trusts only the new certificate logs in"
touch "$SB/a.go"
wait "$a_pid"
is "$?/$(sed -n 's/^ALIVE //p' "$SB/a.out")" "0/40/40" "the 40 sessions opened before the reload all answer a ping" ||
	diag "$(grep DEAD "$SB/a.out" | head -n 5)"

# SIGTERM with sessions on both workers: holders (raw_client --hold), one at
# a time until both workers have some
hold() {
	"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$SB/cert2.pem" --jid h@example.test \
		--password "$PW" --mech PLAIN --resource "$1" --hold 40 --timeout 60 \
		>"$SB/$1.out" 2>"$SB/$1.err" &
	for _ in $(seq 1 200); do grep -q '^READY' "$SB/$1.out" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
holders=()
for i in $(seq 1 24); do
	hold "h$i" && holders+=("h$i")
	[ ${#holders[@]} -ge 4 ] && [ "$(on_worker 0)" -gt 0 ] && [ "$(on_worker 1)" -gt 0 ] && break
done
ok "$([ "$(on_worker 0)" -gt 0 ] && [ "$(on_worker 1)" -gt 0 ] && echo 0 || echo 1)" \
	"${#holders[@]} sessions held, on both workers ($(on_worker 0) and $(on_worker 1))"
l0=$(wc -l <"$XEDGE_LOG")
kill -TERM "$XEDGE_PID"
wait "$XEDGE_PID"
is "$?" 0 "SIGTERM: xedge exits 0 once both workers have ended their sessions"
sleep 0.2
n=0
for h in "${holders[@]}"; do
	[ "$(sed -n 's/^CLOSE how=\([^ ]*\).*/\1/p' "$SB/$h.out")" = "stream-error:system-shutdown" ] && n=$((n + 1))
done
is "$n" "${#holders[@]}" "every held session got <system-shutdown/>"
is "$(tail -n +"$l0" "$XEDGE_LOG" | grep 'event=shutdown grace_ms=1000 ' | sed -n 's/.* worker=\([0-9]\) .*/\1/p' | sort | tr -d '\n')" 01 \
	"each worker logs its shutdown"
like "$(tail -n 3 "$XEDGE_LOG")" 'event=stopped' "... and xedge its end"

# the per-address limit is one count for both workers
sed -e 's/max_connections_per_address = 0;/max_connections_per_address = 5;/' \
	-e 's/timeouts = {/timeouts = { preauth_idle = 2;/' "$XEDGE_CONF" >"$SB/limit.conf"
grep -q 'max_connections_per_address = 5;' "$SB/limit.conf" || bail "limit.conf"
xedge_restart "$SB/limit.conf"
OUT=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/hostile.py" "$XEDGE_C2S" idle-flood 20 6 2>&1)
diag "$OUT"
is "$(printf '%s\n' "$OUT" | sed -n 's/^HELD=//p')" 5 \
	"20 connections from one address over 2 workers: 5 held (max_connections_per_address = 5)"
is "$(printf '%s\n' "$OUT" | sed -n 's/^CLOSED_AT_ONCE=//p')" 15 "... the other 15 refused at once"
diag "refusals logged by worker: $(grep 'event=connection-refused reason=max_connections_per_address' "$XEDGE_LOG" | sed -n 's/.* worker=\([0-9]\) .*/\1/p' | sort | uniq -c | tr '\n' ' ')"
