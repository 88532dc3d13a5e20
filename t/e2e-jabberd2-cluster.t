#!/bin/bash
# e2e-jabberd2-cluster.t: one jabberd2 2.7 server of several processes
# behind xedge (doc/pool-routing.md, "jabberd2"): one router, two session
# managers that bind the domain with multi="to" (the router sends each
# stanza to the sm the hash of its recipient's bare JID picks) on one SQLite
# database, and two c2s, the pool's servers, under least-conn (allowed since
# both declare jabberd2_router, the same router). The sandbox starts it
# (--backends jabberd2:2 --jabberd2-cluster). Four users, two on each sm
# (chosen with the router's hash, and checked in the sms' logs): every
# ordered pair exchanges messages (bare and full JID); a user's two sessions,
# one on each c2s, see each other; subscriptions across
# the sms end in "both", with presence seen; a message to an offline user of
# the other sm is kept and delivered at the next login. xedge -t refuses
# least-conn over jabberd2 servers that do not declare one router.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 16

[ -r "${JABBERD2_SQLITE_SCHEMA:-/usr/share/doc/jabberd2/db-setup.sqlite.gz}" ] ||
	bail "jabberd2's SQLite schema (/usr/share/doc/jabberd2/db-setup.sqlite.gz) is missing"

# jabberd2's router (router/router.c, _router_process): SHA-1 of the bare
# JID, the XOR of the 2nd to 4th 32-bit words (native order), >> 2, modulo
# the number of sms bound, in the order they bound
sm_of() {
	"$PY" -c 'import hashlib, struct, sys
w = struct.unpack("=5I", hashlib.sha1(sys.argv[1].encode()).digest())
print(((w[1] ^ w[2] ^ w[3]) >> 2) % 2)' "$1"
}
grp0=() grp1=()
for i in $(seq 1 40); do
	j=jc$i@example.test
	if [ "$(sm_of "$j")" = 0 ]; then
		[ ${#grp0[@]} -lt 2 ] && grp0+=("$j")
	else
		[ ${#grp1[@]} -lt 2 ] && grp1+=("$j")
	fi
	[ ${#grp0[@]} = 2 ] && [ ${#grp1[@]} = 2 ] && break
done
# the pairs of "subscribe" are (1st, 2nd) and (3rd, 4th): across the sms
users=("${grp0[0]}" "${grp1[0]}" "${grp0[1]}" "${grp1[1]}")

PW="jdc-$RANDOM-$RANDOM"
args=()
for u in "${users[@]}"; do args+=(--user "$u=$PW"); done
sandbox_up --backends jabberd2:2 --jabberd2-cluster "${args[@]}"
SB=$XE_SANDBOX_DIR_SB
J0=$SB/jabberd2-0
J1=$SB/jabberd2-1

like "$(cat "$J0/logs/router.log")" "\[example.test\]:2 online" \
	"the router has two sms bound to example.test (multi)" || diag "$(tail -n 20 "$J0/logs/router.log")"
like "$(grep -E 'policy|jabberd2_router' "$XEDGE_CONF" | tr '\n' ' ')" \
	'least-conn.*jabberd2-0.*jabberd2_router = "127.0.0.1:[0-9]+".*jabberd2-1.*jabberd2_router' \
	"the pool is least-conn over the two c2s, each declaring the router"

rc_run() {
	timeout 90 "$PY" "$XE_TOP_SRCDIR/t/lib/route_check.py" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" \
		--password "$PW" --timeout 15 "$@" 2>&1
}

OUT=$(rc_run matrix "${users[@]}")
like "$OUT" "RESULT=ok got=24 want=24" "every ordered pair of the four users exchanged messages, bare and full JID" ||
	diag "$OUT"

# which sm served each user: its "session started" lines
sm_users() { grep -o 'session started: jid=[^/]*' "$1/logs/sm.log" | sed 's/.*jid=//' | sort -u | tr '\n' ' '; }
# the sm that bound first is the router's index 0
first_sm=$(grep -o '\[example.test\] online (bound to [^,]*, port [0-9]*' "$J0/logs/router.log" | head -n 1)
first_port=${first_sm##* }
sm0_port=$(grep -o '\[sm-0\] online (bound to [^,]*, port [0-9]*' "$J0/logs/router.log" | head -n 1)
sm0_port=${sm0_port##* }
if [ "$first_port" = "$sm0_port" ]; then a=$J0 b=$J1; else a=$J1 b=$J0; fi
want0=$(printf '%s\n' "${grp0[@]}" | sort | tr '\n' ' ')
want1=$(printf '%s\n' "${grp1[@]}" | sort | tr '\n' ' ')
is "$(sm_users "$a")/$(sm_users "$b")" "$want0/$want1" \
	"the router put two users on each sm, as the hash of the bare JID says"
n0=$(grep -c 'event=session .*backend=jabberd2-0$' "$XEDGE_LOG")
n1=$(grep -c 'event=session .*backend=jabberd2-1$' "$XEDGE_LOG")
is "$n0/$n1" 2/2 "least-conn put two sessions on each c2s"

# least-conn spreads one user's sessions over the c2s: they still meet on
# the user's sm (what xedge -t guards: independent servers would split them)
for u in "${users[0]}" "${users[1]}"; do
	LOG_MARK=$(wc -l <"$XEDGE_LOG")
	OUT=$(rc_run twins "$u")
	where=$(log_since | grep "event=session .*jid=$u " | grep -o 'backend=[^ ]*' | sort | tr '\n' ' ')
	like "$(printf %s "$OUT" | tr "\n" " ") $where" "TWINS jid=$u saw=2/2 got=2/2.*backend=jabberd2-0 backend=jabberd2-1" \
		"$u's two sessions, one on each c2s, see each other's presence and messages" || diag "$OUT $where"
done

OUT=$(rc_run subscribe "${users[@]}")
like "$OUT" "PAIR a=${users[0]} b=${users[1]} a_sub=both b_sub=both a_saw_b=1 b_saw_a=1" \
	"a subscription between users of the two sms ends in both, presence seen" || diag "$OUT"
like "$OUT" "PAIR a=${users[2]} b=${users[3]} a_sub=both b_sub=both a_saw_b=1 b_saw_a=1" \
	"... the other pair too" || diag "$OUT"

BODY=$(unique_token jdc-offline)
OUT=$(rc_run send "$BODY" "${users[0]}" "${users[1]}" "${users[3]}")
like "$OUT" "RESULT=ok errors=0" "messages to offline users of the other sm are accepted, no error" || diag "$OUT"
OUT=$(rc_run receive "$BODY" "${users[1]}" "${users[3]}")
like "$OUT" "RESULT=ok" "both get them at their next login" || diag "$OUT"
# every user's sessions (several logins, through either c2s) all started on
# the user's one sm
is "$(sm_users "$a")/$(sm_users "$b")" "$want0/$want1" "every session of a user, through either c2s, was on the user's sm"

# --- xedge -t ------------------------------------------------------------------
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c "$XEDGE_CONF" 2>&1)
like "$out" "is valid" "xedge -t: least-conn over the c2s of one jabberd2 router is accepted" || diag "$out"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/ jabberd2_router = "[^"]*";//' "$XEDGE_CONF") 2>&1)
like "$out" "policy: pool 'main': least-conn would split one user's sessions over independent servers: server 'jabberd2-0' is a jabberd2 server without jabberd2_router" \
	"xedge -t: least-conn over independent jabberd2 servers is refused, saying why" || diag "$out"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed '/"jabberd2-1"/s/jabberd2_router = "[^"]*"/jabberd2_router = "127.0.0.2:5347"/' "$XEDGE_CONF") 2>&1)
like "$out" "server 'jabberd2-1' is a jabberd2 server of another router than 'jabberd2-0'" \
	"xedge -t: ... and over the c2s of two jabberd2 routers" || diag "$out"

xedge_alive
ok $? "xedge is still running"
