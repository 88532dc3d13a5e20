#!/bin/bash
# shellcheck disable=SC2153 # XEDGE_LOG_K and the others come from sandbox_up
# e2e-pg-tokens.t: FAST tokens and the change log of several nodes, with a
# real PostgreSQL 15 and two xedge nodes (xedge-sandbox --store postgresql
# --nodes 2). Until the login's SASL2/FAST glue, tokens are issued and
# checked by t/lib/token_node: the daemon's own replica (pgsync_io) and token
# store (tokens_io) on a loop, as a third node with a replica of its own.
# A token issued there is in both nodes' LMDB replicas within a second and
# works from another replica; xedgectl user tokens list|revoke work against
# the database; a password change (xedgectl, or the user's own XEP-0077 on
# node 1) and a disable revoke it on every node; the database down, an issue
# fails with a clear error and a verification goes on from the replica, and
# its write reaches the database once it is back; the change log is
# compacted and pruned, and a node that fell behind the pruning resyncs
# (a user deleted meanwhile gone from its replica), at run time or at its
# start; passwd --kick and
# disable run against node 1 end a live session on node 2.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/pg.sh"

plan 38

PROBE="$XE_TOP_SRCDIR/t/lib/register_probe.py"
probe() { _run_tool "$PROBE" "$@"; }
TN_BIN=$XE_TOP_BUILDDIR/t/lib/token_node
[ -x "$TN_BIN" ] || bail "t/lib/token_node is not built (make check builds it)"
PW="pw-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW" \
	--user "carol@example.test=$PW" --user "dan@example.test=$PW" \
	--user "gone@example.test=$PW" \
	--store postgresql --nodes 2 --backends 1 --enable register --log-level info
sandbox_need XEDGE_C2S_1 XEDGE_C2S_2 XEDGE_PID_2 XEDGE_CONF_1 XEDGE_CONF_2 XEDGE_LOG_2 XEDGE_PG_PID XEDGE_PG_PORT
SB=$XE_SANDBOX_DIR_SB
replica_confs
pg_sandbox
# TN NAME ARGS: the token node NAME (its own replica) with node 1's database
TN() { timeout 40 "$TN_BIN" "$XEDGE_CONF_1" "$XE_SANDBOX_DIR/tn-$1" "${@:2}" 2>>"$XE_SANDBOX_DIR/tn.err"; }
has_tok() { replica "$1" user tokens list "$JID" | grep -q "^$UA "; }
no_tok() { ! replica "$1" user tokens list "$JID" | grep -q "^$UA "; }

# issued on one node: in both replicas within a second, and working elsewhere
JID=alice@example.test UA=ua-alice-1
out=$(TN a issue "$JID" "$UA")
like "$out" "^ISSUED token=xe1-" "a token issued by a node (its write sent to the database)"
TOK=$(sed -n 's/^ISSUED token=\([^ ]*\).*/\1/p' <<<"$out")
is "$(pg_sql "select count(*) from xe_tokens where jid = '$JID' and ua = '$UA'")" 1 "... a row in xe_tokens"
ms=$(until_both has_tok)
ok $? "... in both nodes' LMDB replicas after ${ms} ms"
ok "$([ "$ms" -lt 1000 ] && echo 0 || echo 1)" "... within a second (${ms} ms)"
is "$(TN b verify "$JID" "$UA" "$TOK" 1)" "VERIFY ok" "the token works from another node's replica"
is "$(pg_sql "select rec like '%cur HT-SHA-256-NONE % 1 %' from xe_tokens where jid = '$JID'")" t \
	"... and its count (1) is in the database"
is "$(TN a verify "$JID" "$UA" "$TOK" 1)" "VERIFY fail detail=replayed count" \
	"the same count on the first node: refused (the count was replicated)"
out=$(ctl user tokens list "$JID")
like "$out" "$UA +cur +HT-SHA-256-NONE" "xedgectl user tokens list reads the database"
# (a fixed string: the token is base64, whose + and / a regex would read)
ok "$(printf '%s\n' "$out" | grep -qF -- "$TOK" && echo 1 || echo 0)" "... and never prints the token"

# xedgectl revoke against the database: gone from both replicas
out=$(ctl user tokens revoke "$JID" "$UA")
like "$out" "revoked the tokens of $JID for user agent $UA" "xedgectl user tokens revoke JID UA"
ms=$(until_both no_tok)
ok $? "... gone from both replicas after ${ms} ms"
is "$(TN b verify "$JID" "$UA" "$TOK" 2)" "VERIFY fail detail=no such token" "... and refused"

# a password change with xedgectl revokes them on every node
JID=bob@example.test UA=ua-bob
out=$(TN a issue "$JID" "$UA")
TOK=$(sed -n 's/^ISSUED token=\([^ ]*\).*/\1/p' <<<"$out")
until_both has_tok >/dev/null
out=$(printf 'bob-2\n' | ctl user passwd "$JID" 2>&1)
like "$out" "revoked the FAST tokens of $JID: 1 client" "user passwd: the tokens revoked ($out)"
is "$(pg_sql "select count(*) from xe_tokens where jid = '$JID'")" 0 "... in the database"
ms=$(until_both no_tok)
ok $? "... and in both replicas after ${ms} ms"

# the user's own password change (XEP-0077) on node 1: the daemon revokes
# them, the database and node 2 follow
JID=carol@example.test UA=ua-carol
TN a issue "$JID" "$UA" >/dev/null
until_both has_tok >/dev/null
probe passwd "$JID" "$PW" carol-2 --server "$XEDGE_C2S_1"
is "$(printf '%s\n' "$OUT" | grep '^PASSWD ')" "PASSWD result=ok" "carol changes her password on node 1"
ms=$(until_both no_tok)
ok $? "... her tokens gone from both replicas after ${ms} ms"
like "$(grep 'event=register-password' "$XEDGE_LOG_1" | grep "jid=$JID")" "tokens_revoked=1" \
	"... node 1 logged the revocation"

# disable revokes them too
JID=dan@example.test UA=ua-dan
TN a issue "$JID" "$UA" >/dev/null
until_both has_tok >/dev/null
ctl user disable "$JID" >/dev/null 2>&1
ms=$(until_both no_tok)
ok $? "user disable: the tokens gone from both replicas after ${ms} ms"

# the database down: an issue fails clearly, a token login goes on from the
# replica, and its write reaches the database once it is back
JID=alice@example.test UA=ua-alice-2
out=$(TN a issue "$JID" "$UA")
TOK=$(sed -n 's/^ISSUED token=\([^ ]*\).*/\1/p' <<<"$out")
until_both has_tok >/dev/null
pg_stop
out=$(TOKEN_NODE_WAIT=3 TN a issue "$JID" ua-alice-3)
is "$?" 1 "the database down: an issue fails"
like "$out" "REFUSED rc=-7 error=the user database is unreachable" "... with a clear error ($out)"
TOKEN_NODE_WAIT=30 TN a verify "$JID" "$UA" "$TOK" 5 >"$XE_SANDBOX_DIR/tn-verify.out" &
tn_pid=$!
for _ in $(seq 1 100); do [ -s "$XE_SANDBOX_DIR/tn-verify.out" ] && break; sleep 0.05; done
is "$(cat "$XE_SANDBOX_DIR/tn-verify.out")" "VERIFY ok" "... a token login still succeeds from the replica"
pg_up "$SB" "$XEDGE_PG_PORT"
XEDGE_PIDS="$XEDGE_PIDS,$PG_PID"
wait "$tn_pid"
is "$?" 0 "the database back: the verification's write was sent"
is "$(pg_sql "select rec like '%cur HT-SHA-256-NONE % 5 %' from xe_tokens where jid = '$JID' and ua = '$UA'")" t \
	"... its count (5) is in the database: nothing lost"

# passwd --kick and disable against node 1 end a live session on node 2
hold() { # hold NAME JID PASSWORD: a session on node 2 that stays online
	"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S_2" --cafile "$XEDGE_CERT" --jid "$2" \
		--password "$3" --mech PLAIN --resource "$1" --hold 40 --timeout 60 \
		>"$SB/$1.out" 2>"$SB/$1.err" &
}
ready() { for _ in $(seq 1 300); do grep -q '^READY' "$SB/$1.out" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
closed_within() {
	for _ in $(seq 1 "$2"); do grep -q '^CLOSE ' "$SB/$1.out" && return 0; sleep 0.1; done
	grep -q '^CLOSE ' "$SB/$1.out"
}
close_text() { sed -n 's/^CLOSE-TEXT text=//p' "$SB/$1.out"; }
# both nodes reconnected to the database (their backoff is up to 5 s)
for n in 1 2; do
	m=XEDGE_METRICS_$n
	for _ in $(seq 1 200); do curl -s "${!m}" | grep -q '^xedge_db_up 1' && break; sleep 0.05; done
done
hold k1 alice@example.test "$PW"
ready k1 || diag "$(cat "$SB/k1.out" "$SB/k1.err")"
printf '%s\n' "$PW" | ctl user passwd --kick alice@example.test >/dev/null 2>&1
closed_within k1 20
ok $? "passwd --kick against node 1: the session on node 2 ends"
is "$(close_text k1)" "the_account's_password_was_changed" "... saying why"
like "$(grep 'event=account-end' "$XEDGE_LOG_2" | tr '\n' ' ')" "jid=alice@example.test.*reason=password" \
	"... node 2 logged it"
hold k2 alice@example.test "$PW"
ready k2 || diag "$(cat "$SB/k2.out" "$SB/k2.err")"
ctl user disable alice@example.test >/dev/null 2>&1
closed_within k2 20
ok $? "disable against node 1: the session on node 2 ends"

# the change log: compaction and pruning; a node behind the pruning resyncs
JID=gone@example.test UA=ua-gone
TN a issue "$JID" "$UA" >/dev/null
until_both has_tok >/dev/null
n0=$(pg_sql "select count(*) from xe_changes")
kill -STOP "$XEDGE_PID_2"
ctl user del --keep-data gone@example.test >/dev/null 2>&1
printf 'zed-1\n' | ctl user add zed@example.test >/dev/null 2>&1 # the newest entry is never pruned
sleep 2.5
out=$(ctl db prune --retention 1)
n1=$(pg_sql "select count(*) from xe_changes")
ok "$([ "$n1" -lt "$n0" ] && echo 0 || echo 1)" "db prune: the log from $n0 to $n1 entries ($out)"
is "$(pg_sql "select count(*) from xe_changes where jid = 'gone@example.test'")" 0 \
	"... the deletion's entry pruned (older than the retention; node 2 not seen since)"
is "$(pg_sql "select count(*) from (select kind, jid from xe_changes group by kind, jid having count(*) > 1) x")" 0 \
	"... one entry per key left (compaction)"
kill -CONT "$XEDGE_PID_2"
for _ in $(seq 1 300); do grep -q 'event=replica state=resynced' "$XEDGE_LOG_2" && break; sleep 0.05; done
like "$(grep 'event=replica state=resync' "$XEDGE_LOG_2" | tr '\n' ' ')" "state=resync .*state=resynced .*removed=2" \
	"node 2, behind the pruning, resynced whole and removed what the log no longer names"
out=$(replica 2 user show gone@example.test)
like "$out" "no such user" "... the deleted user is gone from its replica"
is "$(pg_sql "select count(*) from xe_tokens where jid = '$JID'")/$(no_tok 2 && echo none)" "0/none" \
	"... and so is the token user del revoked (in the database, and swept from the replica)"
has_alice() { replica "$1" user show alice@example.test | grep -q '^disabled: yes'; }
ok "$(has_alice 2 && echo 0 || echo 1)" "... and what exists is still there"

# the same when the node was stopped: it resyncs at its start, before it
# listens
kill -TERM "$XEDGE_PID_2"
for _ in $(seq 1 200); do kill -0 "$XEDGE_PID_2" 2>/dev/null || break; sleep 0.05; done
ctl user del --keep-data zed@example.test >/dev/null 2>&1
printf 'yan-1\n' | ctl user add yan@example.test >/dev/null 2>&1
sleep 2.5
ctl db prune --retention 1 >/dev/null
is "$(pg_sql "select count(*) from xe_changes where jid = 'zed@example.test'")" 0 \
	"node 2 stopped: zed's deletion pruned"
"$XE_TOP_BUILDDIR/src/xedge" -c "$XEDGE_CONF_2" >>"$XEDGE_LOG_2" 2>&1 &
XEDGE_PID_2=$!
XEDGE_PIDS="$XEDGE_PID_2,$XEDGE_PIDS"
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${XEDGE_C2S_2%:*}/${XEDGE_C2S_2##*:}") 2>/dev/null && break; sleep 0.05; done
is "$(grep -c 'event=replica state=resynced' "$XEDGE_LOG_2")" 2 "node 2 restarted: resynced at its start"
out="$(replica 2 user show zed@example.test | head -n 1) | $(replica 2 user show yan@example.test | head -n 1)"
like "$out" "no such user.* [|] jid: yan@example.test" "... zed is gone from its replica, yan is in it ($out)"
