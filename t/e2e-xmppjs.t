#!/bin/bash
# e2e-xmppjs.t: a real client on xmpp.js (@xmpp/client, Node; t/lib/xmppjs,
# installed by `contrib/bootstrap deps` with npm ci) against the sandbox, over
# STARTTLS with the certificate verified (NODE_EXTRA_CA_CERTS): SCRAM-SHA-1
# (xedge restarted offering it alone), ANONYMOUS (offered alone),
# and a wrong password. Each
# login also pings the server and gets its own message back through the
# backend.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 13

# node_modules is not distributed: make distcheck points XMPPJS_MODULES at
# the one of the tree it was run from
JSDIR="$XE_TOP_SRCDIR/t/lib/xmppjs"
MODULES=${XMPPJS_MODULES:-$JSDIR/node_modules}
command -v node >/dev/null || bail "node is not installed (contrib/bootstrap deps installs it)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)' ||
	bail "xmpp.js 0.14 needs Node.js 20.10 or later; this is $(node --version)"
[ -f "$MODULES/@xmpp/client/package.json" ] ||
	bail "xmpp.js is not installed in $MODULES: run contrib/bootstrap deps (npm ci in t/lib/xmppjs)"

PW="js-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --enable anonymous
SB=$XE_SANDBOX_DIR_SB
# run the script from a copy beside a link to node_modules: ES modules are
# found from the script's own directory only (NODE_PATH does not apply)
mkdir -p "$SB/xmppjs" && cp "$JSDIR/client.mjs" "$SB/xmppjs/" && ln -s "$MODULES" "$SB/xmppjs/node_modules" ||
	bail "cannot set up $SB/xmppjs"

# offer MECH... and log_since: t/lib/sandbox.sh. (A SCRAM mechanism alone once
# made Cyrus SASL 2.1.28's sasl_listmech overflow its buffer, seen under
# AddressSanitizer here: xedge no longer calls it; offering one guards that.)

# xmppjs ARGS...: run the client; OUT, RC, ELAPSED_MS
xmppjs() {
	local t0
	t0=$(now_ms)
	OUT=$(NODE_EXTRA_CA_CERTS=$XEDGE_CERT timeout -k 2 30 node "$SB/xmppjs/client.mjs" \
		--server "$XEDGE_C2S" --domain example.test --timeout 15 "$@" 2>"$SB/xmppjs.err")
	RC=$?
	ELAPSED_MS=$(($(now_ms) - t0))
	diag "xmppjs $* (${ELAPSED_MS} ms)" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	[ -s "$SB/xmppjs.err" ] && diag "  stderr:" "$(tail -n 20 "$SB/xmppjs.err" | sed 's/^/    /')"
	return 0
}
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p"; }

offer SCRAM-SHA-1
xmppjs --username alice --password "$PW" --resource js
is "$(val RESULT) $(val PING) $(val MESSAGE) $(val SECURED)" "ok ok ok 1" \
	"SCRAM-SHA-1 over STARTTLS: login, ping and a message to itself through the backend"
is "$(val JID)" "alice@example.test/js" "... bound as alice@example.test/js"
is "$(val MECH)" "SCRAM-SHA-1" "... xmpp.js used SCRAM-SHA-1"
like "$(log_since)" 'event=auth-ok .*jid=alice@example\.test mech=SCRAM-SHA-1' "... and xedge logged mech=SCRAM-SHA-1"

xmppjs --username alice --password "wrong-$PW"
is "$(val RESULT) $(val CONDITION)" "failure not-authorized" "a wrong password: a SASL <failure/> with <not-authorized/>"
ok "$([ "$RC" = 1 ] && [ "$ELAPSED_MS" -lt 8000 ] && echo 0 || echo 1)" "... at once, not a hang (exit 1 in ${ELAPSED_MS} ms)"
like "$(log_since)" 'event=auth-failed .*user=alice@example\.test mech=SCRAM-SHA-1 condition=not-authorized' \
	"... logged by xedge as auth-failed"

offer ANONYMOUS
xmppjs --anonymous --resource anon
is "$(val RESULT) $(val PING) $(val MESSAGE) $(val SECURED)" "ok ok ok 1" \
	"ANONYMOUS: login, ping and a message to itself through the backend"
like "$(val JID)" '^anon-[0-9a-f]{16}@example\.test/anon$' "... bound as a temporary anon-...@example.test JID"
is "$(val MECH)" "ANONYMOUS" "... xmpp.js used ANONYMOUS"
jid=$(val JID)
like "$(log_since)" "event=auth-ok .*jid=${jid%/*} mech=ANONYMOUS" "... and xedge logged that JID with mech=ANONYMOUS"
grep -q "xedge assertion accepted for ${jid%/*}.*(anonymous)" "$SB/prosody-0/prosody.log"
ok $? "... and the backend admitted it as anonymous"

xedge_alive
ok $? "xedge is still running"
