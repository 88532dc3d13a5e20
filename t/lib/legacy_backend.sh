# t/lib/legacy_backend.sh: the end-to-end checks shared by t/e2e-ejabberd.t and
# t/e2e-jabberd2.t (sourced after t/lib/sandbox.sh):
#   legacy_backend_tests KIND GLUE_LOG
# KIND: the sandbox's backend kind; GLUE_LOG: where, inside the backend's
# directory, the glue's (xedge-extauth's) stderr lands.
LEGACY_BACKEND_PLAN=12

legacy_backend_tests() {
	local kind=$1 glue_log=$2
	local APW="alice-$RANDOM-$RANDOM" BPW="bob-$RANDOM-$RANDOM"
	sandbox_up --backends "$kind:1" --user "alice@example.test=$APW" --user "bob@example.test=$BPW"
	like "$XEDGE_BACKENDS" "^$kind-0=127\\.0\\.0\\.1:[0-9]+\$" "XEDGE_BACKENDS names the one $kind server"
	local bdir=$XE_SANDBOX_DIR_SB/$kind-0

	# --- two users online, messages both ways through the backend ---------
	local READY=$XE_SANDBOX_DIR/bob.ready A2B B2A bob_pid bob_rc
	A2B=$(unique_token a2b)
	B2A=$(unique_token b2a)
	timeout -k 2 40 "$PY" "$XMPP_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --timeout 20 \
		--jid bob@example.test --password "$BPW" --resource bob \
		--ready-file "$READY" --expect-body "$A2B" --expect-from alice@example.test \
		--send-to alice@example.test --body "$B2A" --reply-after-expect --hold 1 \
		>"$XE_SANDBOX_DIR/bob.out" 2>"$XE_SANDBOX_DIR/bob.err" &
	bob_pid=$!
	client --timeout 20 --jid alice@example.test --password "$APW" --resource alice \
		--wait-file "$READY" --send-to bob@example.test --body "$A2B" \
		--expect-body "$B2A" --expect-from bob@example.test
	wait "$bob_pid"
	bob_rc=$?
	diag "bob:" "$(sed 's/^/  /' "$XE_SANDBOX_DIR/bob.out" "$XE_SANDBOX_DIR/bob.err")"
	is "$RC" 0 "alice: logged in through xedge, bound, sent to bob, got his answer"
	is "$bob_rc" 0 "bob: logged in, got alice's message, answered"
	like "$(cat "$XE_SANDBOX_DIR/bob.out")" "^RECEIVED from=alice@example.test/alice to=bob@example.test(/bob)? body=$A2B\$" \
		"bob received alice's message from her full JID, routed by $kind"
	like "$(grep 'event=session' "$XEDGE_LOG" | grep 'jid=alice@example.test ')" "backend=$kind-0( |\$)" \
		"xedge logged alice's session on $kind-0"

	# --- the roster is the backend's --------------------------------------
	client --jid alice@example.test --password "$APW" --roster-add carol@example.test --roster-name Carol
	is "$RC" 0 "alice adds carol to her roster"
	client --jid alice@example.test --password "$APW" --roster
	like "$OUT" '^ROSTER=(.*,)?carol@example.test(,.*)?$' "a new session finds carol in the roster stored by $kind"

	# --- straight to the backend: forged, expired, replayed ... refused ---
	local out rc
	# let the sessions above end in the backend first (jabberd2 2.7 keys
	# sessions by file descriptor: contrib/jabberd2/README.md)
	sleep 0.5
	out=$(timeout 60 "$PY" "$XE_TOP_SRCDIR/t/lib/backend-auth-check.py" --sandbox "$XE_SANDBOX_DIR_SB" \
		--backend "$kind-0" 2>&1)
	rc=$?
	diag "backend-auth-check.py --backend $kind-0:" "$(printf '%s\n' "$out" | sed 's/^/  /')"
	is "$rc" 0 "$kind's port: a valid assertion logs in; replayed, forged, expired, other-user, other-secret, s2s, too-long and plain passwords are refused"
	is "$(printf '%s\n' "$out" | grep -c '^ok ')" 13 "... all 13 checks ran"
	local glue
	glue=$(cat "$bdir/$glue_log" 2>/dev/null)
	like "$glue" "event=refused jid=alice@example.test reason=expired" "the glue's refusals reach $kind's log, with the reason"
	ok "$(printf '%s\n' "$glue" | grep -q 'xe1:' && echo 1 || echo 0)" "no assertion in $kind's log of the glue"
	xedge_alive
	ok $? "xedge is still running"
}
