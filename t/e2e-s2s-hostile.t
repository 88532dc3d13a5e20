#!/bin/bash
# e2e-s2s-hostile.t: a hostile server-to-server peer (t/lib/s2s_peer.py)
# against xedge's s2s listener for a.test. Each case gets its defined error
# (doc/federation.md, Errors), nothing of it reaches the backend Prosody
# (its debug log never shows the stanzas' ids), and alice, logged in on
# another connection (t/lib/canary.py), keeps exchanging messages unharmed.
#   0. a stream header without from: the usual features
#   1. a forged db:result for c.test (a real peer: a plain Prosody, which
#      xedge asks through its static route): type='invalid', <not-authorized/>
#      and one to a domain not served here: type='error', <item-not-found/>
#   2. a db:verify for an unknown stream id: type='invalid'
#   3. a stanza on a stream authenticated for nothing: <not-authorized/>
#      (RFC 6120 4.9.3.12: stanzas before the stream is authenticated); a
#      stanza from a domain not authenticated on a stream authenticated
#      (SASL EXTERNAL) for c.test: <invalid-from/> (c.test's own stanza on
#      it does reach the backend); one to a domain not authenticated on the
#      stream: <host-unknown/>.
#   4. a remote server (t/lib/s2s_remote.py) that sends a stanza back on
#      xedge's outbound stream to it (one-way): it never reaches the backend.
#   5. a local process on xedge's s2s_backend listener (loopback, as the
#      backends) claiming a.test with a made-up key, then with an assertion
#      signed by another secret: type='invalid' each time, nothing federated
#      (it once got type='valid' and xedge sent its message to c.test).
#   6. limits.max_stanza_s2s lowered by a reload: c.test's next stanza over
#      it gets <policy-violation/>.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, B_*, C_* are set by fed_ports, fed_sandbox

plan 35

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ca c.test d.test
fed_ports a
fed_ports c
fed_ports d
fed_plain c --domain c.test --address 127.0.0.13 --c2s-port "$C_BASE" --s2s-port "$C_S2S" \
	--cert "$FED_CA/c.test.pem" --key "$FED_CA/c.test.key" --user "carol=$PW"
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --user "bob@a.test=$PW" \
	--peer "c.test=127.0.0.13:$C_S2S" --peer "d.test=127.0.0.14:$D_S2S" --trust "$FED_CA/ca.pem"
BLOG=$A_DIR/prosody-0/prosody.log
[ -f "$BLOG" ] || bail "no backend log at $BLOG"
PEER=(--server "$A_XEDGE_S2S" --to a.test --cafile "$A_CAFILE")
tag=$$-$RANDOM

timeout 300 "$PY" "$XE_TOP_SRCDIR/t/lib/canary.py" "$A_XEDGE_C2S" "$A_CAFILE" \
	alice@a.test "$PW" 127.0.0.2 "$FED_DIR/canary.stop" "$FED_DIR/canary.out" >"$FED_DIR/canary.err" 2>&1 &
CANARY=$!
fed_track "$CANARY"
for _ in $(seq 1 200); do grep -q READY "$FED_DIR/canary.out" 2>/dev/null && break; sleep 0.05; done
grep -q READY "$FED_DIR/canary.out" 2>/dev/null
ok $? "alice (the canary) is logged in to a.test on another connection"

# 0. a stream header without from (RFC 6120 4.7.1 allows it; it crashed
# xedge once): STARTTLS and features as usual
s2s_peer "${PEER[@]}" --from '' --wait 1 none
like "$OUT" '^FEATURES stage=post-tls list=.*dialback' "a stream without from: STARTTLS, then features with dialback"

# 1. forged db:result for a real peer domain
s2s_peer "${PEER[@]}" --from c.test --wait 15 result
like "$OUT" '^DB_RESULT type=invalid from=a\.test to=c\.test' "forged db:result for c.test: <db:result type='invalid'/>"
like "$OUT" '^STREAM_ERROR condition=not-authorized' "forged db:result: then <stream:error><not-authorized/>"
like "$OUT" '^CLOSE how=stream-error:not-authorized' "forged db:result: the stream is closed"
like "$(count_lines "$A_XEDGE_LOG" 'event=s2s-auth-failed.*mech=dialback')" '^[1-9]' "forged db:result: logged event=s2s-auth-failed mech=dialback"
like "$(grep -cE 'Received\[s2sin[^]]*\]: <(db:)?verify' "$C_DIR/prosody.log")" '^[1-9]' \
	"forged db:result: xedge asked c.test's Prosody (its authoritative server) with db:verify"

# 1b. a db:result to a domain not served here
s2s_peer "${PEER[@]}" --from c.test --db-to zzz.test --wait 3 result
like "$OUT" '^DB_RESULT type=error from=zzz\.test to=c\.test' "db:result to a domain not served: type='error'"
like "$OUT" '^DB_ERROR condition=item-not-found' "... <item-not-found/>"

# 2. db:verify for an unknown stream id
s2s_peer "${PEER[@]}" --from c.test --wait 3 --stream-id "unknown-$tag" verify
like "$OUT" "^DB_VERIFY type=invalid id=unknown-$tag" "db:verify for an unknown stream id: type='invalid'"
like "$(count_lines "$A_XEDGE_LOG" 'event=s2s-verify .*result=invalid')" '^[1-9]' "db:verify: logged event=s2s-verify result=invalid"

# 3a. a stanza on a stream authenticated for nothing
s2s_peer "${PEER[@]}" --from c.test --wait 10 stanza \
	--stanza "<message from='carol@c.test' to='alice@a.test' type='chat' id='unauth-$tag'><body>x</body></message>"
like "$OUT" '^STREAM_ERROR condition=not-authorized' "a stanza on an unauthenticated stream: <not-authorized/>"
like "$OUT" '^CLOSE how=stream-error' "... and the stream is closed"

# 3b. authenticated for c.test (EXTERNAL: the test CA's certificate for
# c.test, trusted by a.test's xedge), a stanza from evil.test
s2s_peer "${PEER[@]}" --from c.test --cert "$FED_CA/c.test.pem" --key "$FED_CA/c.test.key" --wait 10 stanza \
	--good-stanza "<message from='carol@c.test' to='alice@a.test' type='chat' id='good-$tag'><body>hi</body></message>" \
	--stanza "<message from='mallory@evil.test' to='alice@a.test' type='chat' id='forged-$tag'><body>x</body></message>"
like "$OUT" '^SASL mech=EXTERNAL result=success' "the peer authenticated as c.test with SASL EXTERNAL"
like "$OUT" '^STREAM_ERROR condition=invalid-from' "a stanza from evil.test on c.test's stream: <invalid-from/>"
like "$(count_lines "$A_XEDGE_LOG" 'event=stream-error.*invalid-from')" '^[1-9]' "logged event=stream-error (invalid-from)"

# 3c. authenticated for c.test -> a.test, a stanza to another domain
s2s_peer "${PEER[@]}" --from c.test --cert "$FED_CA/c.test.pem" --key "$FED_CA/c.test.key" --wait 10 stanza \
	--stanza "<message from='carol@c.test' to='alice@zzz.test' type='chat' id='elsewhere-$tag'><body>x</body></message>"
like "$OUT" '^STREAM_ERROR condition=host-unknown' "a stanza to a domain not authenticated on the stream: <host-unknown/>"

# 4. xedge's outbound side: d.test (t/lib/s2s_remote.py) accepts xedge's
# dialback blindly, gets bob's message, and sends a stanza back on that
# outbound stream, which carries stanzas one way only
"$PY" "$XE_TOP_SRCDIR/t/lib/s2s_remote.py" --listen "127.0.0.14:$D_S2S" --domain d.test \
	--cert "$FED_CA/d.test.pem" --key "$FED_CA/d.test.key" --wait 2 --ready-file "$FED_DIR/remote.ready" \
	--inject "<message from='dave@d.test' to='bob@a.test' type='chat' id='back-$tag'><body>x</body></message>" \
	>"$FED_DIR/remote.out" 2>&1 &
REMOTE=$!
fed_track "$REMOTE"
for _ in $(seq 1 100); do [ -e "$FED_DIR/remote.ready" ] && break; sleep 0.05; done
XEDGE_C2S=$A_XEDGE_C2S XEDGE_CERT=$A_CAFILE client --jid bob@a.test --password "$PW" \
	--send-to dave@d.test --body "out-$tag" --hold 4
wait "$REMOTE"
diag "s2s_remote.py:" "$(sed 's/^/  /' "$FED_DIR/remote.out")"
like "$(cat "$FED_DIR/remote.out")" "GOT <message .*from='bob@a\.test/[^']*'.*<body>out-$tag</body>" \
	"outbound: bob's message reached d.test through xedge (dialback)"
like "$(cat "$FED_DIR/remote.out")" '^SENT <message .*back-' "outbound: d.test sent a stanza back on xedge's outbound stream"

# 5. a local impostor on the s2s_backend listener
impostor() { # KEY: prints the answer to <db:result from=a.test to=c.test>KEY
	"$PY" - "$A_XEDGE_S2S_BACKEND" "$1" "$tag" <<'PYEOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
          b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
          b"from='a.test' to='c.test' version='1.0'>")
got, sent = b"", False
end = time.time() + 10
while time.time() < end:
    if not sent and b"</stream:features>" in got:
        s.sendall(b"<db:result from='a.test' to='c.test'>" + sys.argv[2].encode() + b"</db:result>"
                  b"<message from='ceo@a.test' to='carol@c.test' id='impostor-" + sys.argv[3].encode()
                  + b"'><body>x</body></message>")
        sent = True
    try:
        b = s.recv(4096)
    except socket.timeout:
        break
    if not b:
        break
    got += b
print(got.decode(errors="replace"))
PYEOF
}
OUT=$(impostor "made-up-key-$tag")
like "$OUT" "<db:result [^>]*type='invalid'" "s2s_backend: a made-up key from a local process: type='invalid'"
OUT=$(impostor "xe1:s2s-out:$(($(date +%s) + 30)):0123456789abcdef0123456789abcdef:$(printf '%064d' 0)")
like "$OUT" "<db:result [^>]*type='invalid'" "s2s_backend: an assertion with a bad signature: type='invalid'"
like "$(count_lines "$A_XEDGE_LOG" 'event=s2s-refused kind=s2s-backend .*reason=assertion')" '^2' \
	"both logged event=s2s-refused reason=assertion"

sleep 1 # whatever xedge would forward has reached the backend by now
is "$(grep -c "impostor-$tag" "$C_DIR/prosody.log")" 0 "the impostor's message never reached c.test"

like "$(grep -c "good-$tag" "$BLOG")" '^[1-9]' "c.test's own stanza reached the backend (the check below can see stanzas)"
for id in "unauth-$tag" "forged-$tag" "elsewhere-$tag" "back-$tag"; do
	is "$(grep -c "$id" "$BLOG")" 0 "stanza $id never reached the backend"
done
is "$(grep -c 'evil\.test' "$BLOG")" 0 "nothing about evil.test reached the backend"

# 6. limits.max_stanza_s2s on reload: c.test's 4000-byte message, under the
# default (256 KiB) a stanza like any other, is over the new 2048
echo 'limits = { max_stanza_s2s = 2048; };' >>"$A_XEDGE_CONF"
out=$($A_XEDGECTL reload 2>&1)
like "$out" 'reload result=ok' "reload: limits.max_stanza_s2s = 2048"
big=$(printf 'x%.0s' $(seq 1 4000))
s2s_peer "${PEER[@]}" --from c.test --cert "$FED_CA/c.test.pem" --key "$FED_CA/c.test.key" --wait 10 stanza \
	--stanza "<message from='carol@c.test' to='alice@a.test' type='chat' id='big-$tag'><body>$big</body></message>"
like "$OUT" '^STREAM_ERROR condition=policy-violation' "... a 4000-byte stanza from c.test: <policy-violation/>"
is "$(grep -c "big-$tag" "$BLOG")" 0 "... and it never reached the backend"

touch "$FED_DIR/canary.stop"
wait "$CANARY"
cval() { sed -n "s/^$1=//p" "$FED_DIR/canary.out"; }
diag "canary: $(tr '\n' ' ' <"$FED_DIR/canary.out")" "$(cat "$FED_DIR/canary.err")"
is "$(cval ERROR)" none "the canary's session survived every case"
ok "$([ "$(cval SENT)" -ge 5 ] && [ "$(cval SENT)" = "$(cval RECEIVED)" ] && echo 0 || echo 1)" \
	"the canary got every one of its $(cval SENT) messages back"
kill -0 "$A_XEDGE_PIDS" 2>/dev/null || kill -0 "${A_XEDGE_PIDS%%,*}" 2>/dev/null
ok $? "xedge is still running"
