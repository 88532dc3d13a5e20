#!/bin/bash
# shellcheck disable=SC2153 # XEDGE_LOG_K and the others come from sandbox_up
# e2e-cluster.t: two xedge nodes sharing their users through a real
# PostgreSQL 15 (each node's LMDB store a replica), HAProxy 2.6 in front in
# TCP mode sending PROXY v2 (xedge-sandbox --store postgresql --nodes 2).
# A change made with xedgectl reaches both nodes within a second; both pick
# the same backend for a user; node 1 stopped, logins through the balancer
# land on node 2; PostgreSQL stopped, logins go on from the replicas, a
# registration is refused with a clear error, and after the restart the
# replicas catch up; a node started while the database is down serves its
# replica if it has one and refuses to start without one.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/pg.sh"

plan 39

PROBE="$XE_TOP_SRCDIR/t/lib/register_probe.py"
probe() { _run_tool "$PROBE" "$@"; }
PW="pw-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "mallory@example.test=m-$PW" \
	--store postgresql --nodes 2 --backends 3 --enable register --log-level info \
	--conf 'lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 3; lockout_time = 60; };' \
	--conf 'sasl2 = { enabled = true; };'
sandbox_need XEDGE_C2S_1 XEDGE_C2S_2 XEDGE_PID_2 XEDGE_CONF_2 XEDGE_LOG_2 XEDGE_HAPROXY_PID XEDGE_PG_PID XEDGE_PG_PORT

# the replicas, read-only, as LMDB stores alone (what the node's Cyrus reads)
replica_confs
pg_sandbox
login() { # login NODE|lb JID PASSWORD: sets RC/RESULT
	local s=$XEDGE_C2S
	[ "$1" = lb ] || { local v=XEDGE_C2S_$1; s=${!v}; }
	client --server "$s" --jid "$2" --password "$3" --timeout 8
}

login 1 alice@example.test "$PW"
is "$(result RESULT)" ok "a user added with xedgectl logs in on node 1"
login 2 alice@example.test "$PW"
is "$(result RESULT)" ok "... and on node 2"
login lb alice@example.test "$PW"
is "$(result RESULT)" ok "... and through HAProxy (PROXY v2)"

has_bob() { replica "$1" user show bob@example.test >/dev/null; }
printf 'bob-1\n' | ctl user add bob@example.test >/dev/null 2>&1
ms=$(until_both has_bob)
ok $? "user add: in both replicas after ${ms} ms"
ok "$([ "$ms" -lt 1000 ] && echo 0 || echo 1)" "... within a second (${ms} ms)"
login 1 bob@example.test bob-1
a=$(result RESULT)
login 2 bob@example.test bob-1
is "$a/$(result RESULT)" ok/ok "the new user logs in on both nodes"
b1=$(grep 'event=session' "$XEDGE_LOG_1" | grep 'jid=bob@example.test ' | tail -n 1 | sed -n 's/.* backend=\([^ ]*\).*/\1/p')
b2=$(grep 'event=session' "$XEDGE_LOG_2" | grep 'jid=bob@example.test ' | tail -n 1 | sed -n 's/.* backend=\([^ ]*\).*/\1/p')
ok "$([ -n "$b1" ] && [ "$b1" = "$b2" ] && echo 0 || echo 1)" "the same backend from both nodes ($b1, $b2)"

pw_changed() { replica "$1" user show bob@example.test | grep -q "^modified: $new_mod"; }
printf 'bob-2\n' | ctl user passwd bob@example.test >/dev/null 2>&1
new_mod=$(ctl user show bob@example.test | sed -n 's/^modified: //p')
ms=$(until_both pw_changed)
ok $? "user passwd: in both replicas after ${ms} ms"
login 2 bob@example.test bob-2
a=$(result RESULT)
login 2 bob@example.test bob-1
is "$a/$(result condition)" "ok/not-authorized" "node 2: the new password logs in, the old one fails"

disabled() { replica "$1" user show bob@example.test | grep -q '^disabled: yes'; }
ctl user disable bob@example.test >/dev/null 2>&1
ms=$(until_both disabled)
ok $? "user disable: in both replicas after ${ms} ms"
login 1 bob@example.test bob-2
a=$(result RESULT)
login 2 bob@example.test bob-2
is "$a/$(result RESULT)" "failure/failure" "the disabled user is refused on both nodes"

# a lockout earned on node 1 holds on node 2 (the per-address limits stay
# per node: address_threshold is off here)
for i in 1 2 3; do login 1 mallory@example.test "wrong-$i"; done
locked() { pg_sql "select failures || ' ' || (locked_until > now()) from xe_lockouts where jid = 'mallory@example.test'"; }
for _ in $(seq 1 100); do [ "$(locked)" = "3 true" ] && break; sleep 0.02; done
is "$(locked)" "3 true" "three failures on node 1: the account is locked in the database"
for _ in $(seq 1 100); do grep -q 'event=lockout.*mallory.*source=database' "$XEDGE_LOG_2" && break; sleep 0.02; done
raw --server "$XEDGE_C2S_2" --jid mallory@example.test --password "m-$PW"
is "$(result RESULT)/$(result condition)" "failure/not-authorized" \
	"node 2 refuses the right password while the account is locked"
like "$OUT" "<text[^>]*>too many failed login attempts" "... saying why"
like "$(grep 'event=lockout' "$XEDGE_LOG_2")" "key=mallory@example.test.*source=database" "node 2 logged the lockout it learnt"

# a deleted user's data is purged at the backend by one node, not by both
ctl user del mallory@example.test >/dev/null 2>&1
tombs() { pg_sql "select count(*) from xe_tombstones where jid = 'mallory@example.test'"; }
for _ in $(seq 1 150); do [ "$(tombs)" = 0 ] && break; sleep 0.05; done
is "$(tombs)" 0 "user del: the purge is confirmed and the tombstone gone from the database"
is "$(cat "$XEDGE_LOG_1" "$XEDGE_LOG_2" | grep -c 'event=purge-start jid=mallory@example.test')" 1 \
	"... one node purged it (the one holding the purge lock)"
is "$(cat "$XEDGE_LOG_1" "$XEDGE_LOG_2" | grep -c 'event=database purges=here')" 1 "one node holds the purge lock"

# a registration on node 2 is on node 1 within a second
probe register carol@example.test carol-1 --server "$XEDGE_C2S_2"
is "$(printf '%s\n' "$OUT" | grep '^REGISTER ')" "REGISTER result=ok" "a registration on node 2"
has_carol() { replica "$1" user show carol@example.test >/dev/null; }
ms=$(until_both has_carol)
ok $? "... in the database and both replicas after ${ms} ms"
login 1 carol@example.test carol-1
is "$(result RESULT)" ok "... the user logs in on node 1"

# a user's own password change (XEP-0077) on node 1 holds on node 2
probe passwd carol@example.test carol-1 carol-2 --server "$XEDGE_C2S_1"
is "$(printf '%s\n' "$OUT" | grep '^PASSWD ')" "PASSWD result=ok" "carol changes her password on node 1"
carol2() { login 2 carol@example.test carol-2; [ "$(result RESULT)" = ok ]; }
for _ in $(seq 1 20); do carol2 && break; sleep 0.05; done
is "$(result RESULT)" ok "... and logs in with it on node 2"

# a FAST token (XEP-0484) issued on node 1 logs in on node 2, once the
# database has carried it to node 2's replica (a real SASL2 client)
s2() { _run_tool "$XE_TOP_SRCDIR/t/lib/sasl2_client.py" "$@"; }
v() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | tail -n 1; }
TOK=$XE_SANDBOX_DIR/fast-token
s2 --server "$XEDGE_C2S_1" --jid alice@example.test --password "$PW" --ua-id ua-cluster \
	--request-token HT-SHA-256-NONE --token-out "$TOK"
is "$(v AUTH)/$([ -s "$TOK" ] && echo token)" "success/token" "SASL2 on node 1: a FAST token issued"
for _ in $(seq 1 50); do
	s2 --server "$XEDGE_C2S_2" --jid alice@example.test --token "@$TOK" --ua-id ua-cluster
	[ "$(v AUTH)" = success ] && break
	sleep 0.05
done
is "$(v MECH)/$(v AUTH)" "HT-SHA-256-NONE/success" "... the token logs in on node 2"
s2 --server "$XEDGE_C2S_2" --jid alice@example.test --token "@$TOK" --ua-id other-client
is "$(v AUTH)/$(v FAILURE)" "failure/not-authorized" "... but not for another client's user-agent id"

out=$(ctl cluster status)
like "$out" "node1 .* reachable" "cluster status: node 1 (${out//$'\n'/ | })"
like "$out" "node2 .* reachable" "cluster status: node 2"

# node 1 stops: the balancer's logins land on node 2
kill -TERM "$XEDGE_PID_1"
for _ in $(seq 1 200); do kill -0 "$XEDGE_PID_1" 2>/dev/null || break; sleep 0.05; done
before=$(grep -c 'event=session' "$XEDGE_LOG_2")
okn=0
for i in 1 2 3 4 5; do
	login lb alice@example.test "$PW"
	[ "$(result RESULT)" = ok ] && okn=$((okn + 1))
done
is "$okn" 5 "node 1 stopped: 5 logins of 5 through HAProxy succeed"
is "$(($(grep -c 'event=session' "$XEDGE_LOG_2") - before))" 5 "... all on node 2"

# PostgreSQL stops: logins go on from the replica, writes are refused
pg_stop
for _ in $(seq 1 100); do
	curl -s "$XEDGE_METRICS_2" | grep -q '^xedge_db_up 0' && break
	sleep 0.05
done
login 2 alice@example.test "$PW"
is "$(result RESULT)" ok "the database down: logins go on from node 2's replica"
probe register dave@example.test dave-1 --server "$XEDGE_C2S_2"
is "$(printf '%s\n' "$OUT" | grep '^REGISTER ')" "REGISTER result=error type=wait condition=service-unavailable" \
	"... a registration is refused: wait, <service-unavailable/>"
like "$(grep 'event=register' "$XEDGE_LOG_2" | tail -n 1)" "the user database is unreachable" "... and the log says why"
out=$(printf 'erin-1\n' | ctl user add erin@example.test 2>&1)
like "$out" "the user database is unreachable" "... xedgectl says so ($out)"

# a node started while the database is down: with a replica, it serves it;
# without one, it does not start
"$XE_TOP_BUILDDIR/src/xedge" -c "$XEDGE_CONF_1" >>"$XEDGE_LOG_1" 2>&1 &
XEDGE_PID_1=$!
XEDGE_PIDS="$XEDGE_PID_1,$XEDGE_PIDS"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${XEDGE_C2S_1%:*}/${XEDGE_C2S_1##*:}") 2>/dev/null && break; sleep 0.05; done
login 1 carol@example.test carol-2
is "$(result RESULT)" ok "node 1 restarted while the database is down: serves its replica"
mkdir -p "$XE_SANDBOX_DIR/node3"
# node 1's configuration with an empty replica (it must stop before it binds anything)
sed -e "s|$XE_SANDBOX_DIR_SB/users|$XE_SANDBOX_DIR/node3/users|" -e 's|node = "node1"|node = "node3"|' \
	"$XEDGE_CONF_1" >"$XE_SANDBOX_DIR/node3/xedge.conf"
out=$(timeout 20 "$XE_TOP_BUILDDIR/src/xedge" -c "$XE_SANDBOX_DIR/node3/xedge.conf" 2>&1)
rc=$?
ok "$([ $rc -ne 0 ] && echo 0 || echo 1)" "a node with an empty replica and no database does not start (status $rc)"
like "$out" "no replica yet" "... and says why ($out)"

# PostgreSQL back: the replicas catch up, nothing lost
pg_up "$XE_SANDBOX_DIR_SB" "$XEDGE_PG_PORT"
XEDGE_PIDS="$XEDGE_PIDS,$PG_PID"
printf 'frank-1\n' | ctl user add frank@example.test >/dev/null 2>&1
has_frank() { replica "$1" user show frank@example.test >/dev/null; }
ms=$(until_both has_frank)
ok $? "the database back: a user added then is in both replicas after ${ms} ms"
newest=$(pg_sql 'select max(seq) from xe_changes')
seqs=$(for n in 1 2; do v=XEDGE_METRICS_$n; curl -s "${!v}" | sed -n 's/^xedge_replica_seq //p'; done | tr '\n' ' ')
is "$seqs" "$newest $newest " "both replicas at the database's newest change ($newest)"
pg_stop
