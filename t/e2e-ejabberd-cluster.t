#!/bin/bash
# e2e-ejabberd-cluster.t: a two-node ejabberd 23.01 cluster behind xedge
# (doc/pool-routing.md, "Policies"): ejabberd routes between its nodes by
# itself, so the pool needs no routing, and least-conn (allowed over
# servers of kind "ejabberd") spreads the sessions over both nodes. The
# sandbox starts the cluster (--ejabberd-cluster: one cookie, ejabberd-1
# joins ejabberd-0); four users, two on each node, exchange messages to the
# bare and the full JID, every ordered pair.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 5

PW="ejc-$RANDOM-$RANDOM"
users=(u1@example.test u2@example.test u3@example.test u4@example.test)
args=()
for u in "${users[@]}"; do args+=(--user "$u=$PW"); done
sandbox_up --backends ejabberd:2 --ejabberd-cluster "${args[@]}"
SB=$XE_SANDBOX_DIR_SB
E0=$SB/ejabberd-0
nodes=$(timeout 30 "${EJABBERDCTL:-ejabberdctl}" --config-dir "$E0" --ctl-config "$E0/ejabberdctl.cfg" \
	--spool "$E0/spool" --logs "$E0/logs" list_cluster 2>&1)
is "$(printf '%s\n' "$nodes" | grep -c '^xedge_sb_')" 2 "ejabberd-0's cluster has two nodes" || diag "$nodes"
like "$(grep 'policy' "$XEDGE_CONF")" 'least-conn' "the pool's policy is least-conn"
# ejabberd replicates a new session to the other node asynchronously: the
# messages wait half a second after the logins
OUT=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/route_check.py" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" \
	--password "$PW" --timeout 15 --settle 0.5 matrix "${users[@]}" 2>&1)
like "$OUT" "RESULT=ok got=24 want=24" "every ordered pair of the four users exchanged messages, bare and full JID" ||
	diag "$OUT"
n0=$(grep -c 'event=session .*backend=ejabberd-0$' "$XEDGE_LOG")
n1=$(grep -c 'event=session .*backend=ejabberd-1$' "$XEDGE_LOG")
is "$n0/$n1" 2/2 "least-conn put two sessions on each node"
xedge_alive
ok $? "xedge is still running"
