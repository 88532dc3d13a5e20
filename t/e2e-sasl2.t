#!/bin/bash
# e2e-sasl2.t: SASL2 (XEP-0388), Bind2 (XEP-0386), FAST (XEP-0484) and
# inline stream resumption at the edge, at the protocol level
# (t/lib/sasl2_client.py over real TLS), in front of Prosody (smacks,
# carbons), then ejabberd, then jabberd2 (no carbons, no stream management:
# left out of <inline>). Every check is on what the client sees or on the
# backend's behaviour: a carbon copy arrives at a second resource, an <r/>
# is answered with the right h, messages sent while the TCP connection was
# cut arrive once each after an inline resume.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 89

# What turns SASL2 and FAST on for the domain (doc/sasl2.md proposes
# fast.token_lifetime and fast.rotate_after; the switch's name is the
# wiring's choice): edit here when it lands.
SASL2_CONF=${SASL2_CONF:-'sasl2 = { enabled = true; };'}
# ... and, appended to that configuration (so not set in SASL2_CONF: a
# setting given twice is an error), a token lifetime short enough to see a
# token expire
FAST_SHORT_CONF=${FAST_SHORT_CONF:-'fast = { token_lifetime = 3; rotate_after = 1; };'}

PW="s2-$RANDOM-$RANDOM"
A=alice@example.test
B=bob@example.test

# s2 ARGS...: t/lib/sasl2_client.py through the sandbox's xedge (STARTTLS
# unless --mode direct), as raw and client do: sets OUT, RC, RESULT.
s2() { _run_tool "$XE_TOP_SRCDIR/t/lib/sasl2_client.py" "$@"; }
# v KEY: the last value of KEY in OUT; vs KEY: all of them, comma-joined
v() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | tail -n 1; }
vs() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | paste -sd, -; }
# s2_bg FILE ARGS...: the same client, to be run in the background (&),
# its output to FILE; bg_out FILE: OUT from FILE, shown as diag
s2_bg() {
	local f=$1
	shift
	timeout -k 2 60 "$PY" "$XE_TOP_SRCDIR/t/lib/sasl2_client.py" --server "$XEDGE_C2S" \
		--cafile "$XEDGE_CERT" "$@" >"$f" 2>&1
}
bg_out() {
	OUT=$(cat "$1" 2>/dev/null)
	diag "$(basename "$1"):" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
# wait_for FILE: up to 20 s
wait_for() {
	local _
	for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.1; done
	return 1
}

# ======================================================== Prosody behind
sandbox_up --user "$A=$PW" --user "$B=$PW" --conf "$SASL2_CONF" \
	--conf 'timeouts = { shutdown_grace = 1; };'
T=$XE_SANDBOX_DIR/s2
mkdir -p "$T"

# ---- the test client itself: its SCRAM and HT computations (RFC 5802/7677
# examples, t/unit/fast.c's vectors), and its three channel bindings
# accepted by Cyrus's SCRAM-PLUS over classic SASL: when a SASL2 -PLUS or
# HT-* line below fails, the client is not the suspect
like "$("$PY" "$XE_TOP_SRCDIR/t/lib/sasl2_client.py" --selftest | tail -n 1)" '^SELFTEST=ok$' \
	"sasl2_client.py --selftest: SCRAM and HT-SHA-256 vectors"
for cb in tls-exporter tls-server-end-point; do
	s2 --jid "$A" --sasl1 --try "SCRAM-SHA-256-PLUS:$PW" --cb-type "$cb"
	is "$(v AUTH)/$(v SERVER_SIG)" success/ok "classic SCRAM-SHA-256-PLUS with the client's $cb (TLS 1.3)"
done
s2 --jid "$A" --sasl1 --try "SCRAM-SHA-256-PLUS:$PW" --cb-type tls-unique --tls12
is "$(v AUTH)/$(v SERVER_SIG)" success/ok "classic SCRAM-SHA-256-PLUS with the client's tls-unique (TLS 1.2)"
# ... and its stream management, the classic way through xedge to Prosody's
# smacks: the counting the inline lines below rely on
s2 --jid "$A" --sasl1 --password "$PW" --sm --send-self 3 --ack
is "$(v SM)/$(v ACK)/$(v IN_H)/$(v END)" enabled/3/3/stream-end \
	"classic SM: <r/> after three stanzas answered with h=3; the client's own h accepted at the close"
rm -f "$T/c.ready" "$T/c.sm" "$T/c.go"
s2_bg "$T/c.out" --jid "$A" --sasl1 --password "$PW" --sm --tag c --presence --send-self 1 --ready-file "$T/c.ready" \
	--sm-save "$T/c.sm" --wait-file "$T/c.go" --cut --timeout 30 &
P=$!
wait_for "$T/c.sm"
PHONE=$(cat "$T/c.ready" 2>/dev/null)
s2 --jid "$B" --sasl1 --password "$PW" --send "$PHONE=cfly-$$"
sleep 0.5
: >"$T/c.go"
wait $P
s2 --jid "$A" --sasl1 --password "$PW" --resume-file "$T/c.sm" --sm --expect "cfly-$$" --read-for 2
is "$(v RESUMED)/$(v MSGS)/$(v RESULT)" yes/1/ok \
	"classic resume after a cut with a message in flight: it arrives once"

# ---- the feature
s2 --jid "$A" --features-only
is "$(v SASL2)" offered "SASL2 is offered beside the classic mechanisms"
is "$(v MECHS)" "$(v SASL1_MECHS)" "... with the same mechanisms"
is "$(v INLINE)" "bind2,sm,fast" "... inline: Bind2, SM resumption, FAST"
is "$(v BIND2_INLINE)" "carbons,csi,sm" "... Bind2 inline features: carbons, CSI, SM (Prosody can do them)"
is "$(v FAST_MECHS)" "HT-SHA-256-EXPR,HT-SHA-256-ENDP,HT-SHA-256-NONE" \
	"... FAST on TLS 1.3: the exporter, end point and NONE variants (no -UNIQ)"
s2 --jid "$A" --features-only --tls12
like "$(v FAST_MECHS)" 'HT-SHA-256-UNIQ' "on TLS 1.2 FAST offers HT-SHA-256-UNIQ"
like "$(v FAST_MECHS)" '^((HT-SHA-256-(UNIQ|ENDP|NONE)),?)+$' "... and not -EXPR"

# ---- SASL2 logins, each mechanism, the server signature checked
for m in SCRAM-SHA-256 SCRAM-SHA-1 SCRAM-SHA-256-PLUS PLAIN; do
	s2 --jid "$A" --try "$m:$PW" --ua-id ua-mechs
	is "$(v AUTH)/$(v SERVER_SIG)/$(v AUTHZID)" \
		"success/$([ "$m" = PLAIN ] && echo absent || echo ok)/$A" \
		"SASL2 $m: success, the server signature verified, the bare JID without Bind2"
done
like "$(v POSTFEATURES)" '(^|,)bind(,|$)' "without Bind2 the backend's post-login features follow, bind in them"
is "$RESULT" RESULT=ok "... and the client binds itself through the pump ($(v JID))"
s2 --jid "$A" --try "SCRAM-SHA-256-PLUS:$PW" --tls12
is "$(v AUTH)/$(v SERVER_SIG)" success/ok "SCRAM-SHA-256-PLUS with tls-unique on TLS 1.2"
s2 --jid "$A" --try "SCRAM-SHA-256-PLUS:$PW" --mode direct
is "$(v AUTH)/$(v SERVER_SIG)/$(v ALPN)" success/ok/xmpp-client "SASL2 over Direct TLS"

# ---- failure then success on one stream
s2 --jid "$A" --password "wrong-$PW" --password "$PW"
is "$(vs AUTH)/$(v FAILURE)" "failure,success/not-authorized" \
	"a wrong password: <failure><not-authorized/>, then the right one succeeds on the same stream"
LOG_MARK=$(wc -l <"$XEDGE_LOG")
s2 --jid "$A" --password "wrong-$PW"
is "$(v FAILURE)/$RC" "not-authorized/1" "a wrong password alone: the failure's condition"
like "$(log_since | grep 'event=auth-failed')" 'path=sasl2' "... logged as auth-failed with path=sasl2"

# ---- early <authenticate>: written right after the header, before the features
s2 --jid "$A" --try "SCRAM-SHA-256:$PW" --early --bind
is "$(v EARLY)/$(v AUTH)/$(v BOUND)" "sent/success/yes" \
	"<authenticate> written before the features were read: kept, answered, bound"
s2 --jid "$A" --try "PLAIN:$PW" --early --mode direct
is "$(v AUTH)" success "... the same over Direct TLS with PLAIN"

# ---- Bind2: resource, carbons (a carbon copy arrives), SM (the right h)
s2 --jid "$A" --password "$PW" --ua-id ua-one --bind --tag phone
R1=$(v RESOURCE)
like "$(v BOUND)/$(v AUTHZID)" "^yes/$A/phone\\.[0-9a-f]{12}\$" \
	"Bind2: bound inline, the full JID in <authorization-identifier>, resource TAG.SUFFIX"
s2 --jid "$A" --password "$PW" --ua-id ua-one --bind --tag phone
[ -n "$R1" ] && [ "$(v RESOURCE)" = "$R1" ]
ok $? "... the same user agent gets the same resource on the next login"
s2 --jid "$A" --password "$PW" --ua-id ua-two --bind --tag phone
like "$(v RESOURCE)" "^phone\\.[0-9a-f]{12}\$" "... another user agent: a resource of the same form"
[ "$(v RESOURCE)" != "$R1" ]
ok $? "... and another resource"
s2 --jid "$A" --password "$PW" --bind --send-self 1
is "$(v RESULT)" ok "Bind2 without a user agent: bound, a message to self comes back"

# carbons: B2 (carbons on, through Bind2) sees what B1 sends
rm -f "$T/b2.ready"
s2_bg "$T/b2.out" --jid "$A" --password "$PW" --ua-id ua-b2 --bind --tag b2 --carbons --presence \
	--ready-file "$T/b2.ready" --expect-carbon "sent:carbon-$$" --timeout 20 &
P=$!
wait_for "$T/b2.ready"
ok $? "a second client with carbons enabled inline is online"
s2 --jid "$A" --password "$PW" --ua-id ua-b1 --bind --tag b1 --presence --send "$B=carbon-$$"
wait $P
bg_out "$T/b2.out"
is "$(v CARBON)" "sent:carbon-$$" "Bind2 <enable xmlns='urn:xmpp:carbons:2'/>: the sent carbon arrives at the other resource"
# and without carbons asked, none
rm -f "$T/b3.ready"
s2_bg "$T/b3.out" --jid "$A" --password "$PW" --ua-id ua-b3 --bind --tag b3 --presence \
	--ready-file "$T/b3.ready" --read-for 4 --timeout 20 &
P=$!
wait_for "$T/b3.ready"
s2 --jid "$A" --password "$PW" --ua-id ua-b1 --bind --tag b1 --presence --send "$B=nocarbon-$$"
wait $P
bg_out "$T/b3.out"
is "$(v AUTH)/$(v CARBON)" "success/" "... without carbons asked, no carbon (the enable did it)"

# stream management enabled inline: an ack with the right h
s2 --jid "$A" --password "$PW" --ua-id ua-sm --bind --sm --send-self 3 --ack
is "$(v SM)/$(v SM_RESUME)/$(v SM_LOCATION)" "enabled/true/" \
	"Bind2 <enable resume='true'/>: <enabled/> in <bound/>, no backend location"
is "$(v ACK)" 3 "<r/> after three stanzas: the backend answers h=3 (nothing of the login counted)"
is "$(v IN_H)" 3 "... and the three came back"
s2 --jid "$A" --password "$PW" --ua-id ua-sm --bind --sm --inactive --presence --send-self 1 --ack
is "$(v ACK)/$(v AUTH)" 2/success "with CSI <inactive/> and presence: h=2 (presence and the message)"

# ---- xedgectl session list: the path and the user agent of a SASL2 login
rm -f "$T/ls.ready" "$T/ls.go"
LOG_MARK=$(wc -l <"$XEDGE_LOG")
s2_bg "$T/ls.out" --jid "$A" --password "$PW" --ua-id ua-list --software 'Test "Client"' --device phone \
	--bind --tag ls --ready-file "$T/ls.ready" --wait-file "$T/ls.go" --timeout 20 &
P=$!
wait_for "$T/ls.ready"
LIST=$(ctl session list 2>&1)
: >"$T/ls.go"
wait $P
like "$(printf '%s\n' "$LIST" | grep 'ua_id=ua-list')" ' path=sasl2 ua_id=ua-list ua="Test _Client_ / phone"$' \
	"xedgectl session list: a SASL2 session shows its path and user agent (quotes made safe)"
like "$(log_since | grep 'event=session .*jid=alice@example.test ' | tail -n 1)" ' path=sasl2 ' \
	"... and the session's log line names the path"
! printf '%s\n' "$LIST" | grep -v 'ua_id=' | grep -q 'path='
ok $? "... classic sessions' lines are as before"

# ---- inline resumption after a cut connection, messages in flight
rm -f "$T/ph.ready" "$T/ph.sm" "$T/ph.go"
s2_bg "$T/ph.out" --jid "$A" --password "$PW" --ua-id ua-phone --bind --tag ph --sm --presence --send-self 1 \
	--ready-file "$T/ph.ready" --sm-save "$T/ph.sm" --wait-file "$T/ph.go" --cut --timeout 30 &
P=$!
wait_for "$T/ph.sm"
ok $? "the phone: SM enabled inline, its first message handled, state saved"
PHONE=$(cat "$T/ph.ready" 2>/dev/null)
s2 --jid "$B" --password "$PW" --ua-id ua-friend --bind --send "$PHONE=fly-1-$$" --send "$PHONE=fly-2-$$"
sleep 0.5
: >"$T/ph.go"
wait $P
bg_out "$T/ph.out"
is "$(v END)" cut "... two messages in flight, then the TCP connection cut"
s2 --jid "$B" --password "$PW" --ua-id ua-friend --bind --send "$PHONE=after-$$"
s2 --jid "$A" --password "$PW" --ua-id ua-phone --resume-file "$T/ph.sm" --bind --tag ph --sm \
	--expect "fly-1-$$" --expect "fly-2-$$" --expect "after-$$" --read-for 2
is "$(v RESUMED)/$(v AUTH)" yes/success "inline <resume/> in <authenticate>: <resumed/> in <success>"
is "$(v RESULT)" ok "... the two in-flight messages and the one sent after the cut arrive"
is "$(v MSGS)" 3 "... each once, the one handled before the cut not again"
is "$(v BOUND)" no "... no new bind after a resumption"

# resume refused: the backend lost the session (restarted)
rm -f "$T/ph2.sm"
s2 --jid "$A" --password "$PW" --ua-id ua-phone --bind --tag ph --sm --presence --send-self 1 \
	--sm-save "$T/ph2.sm" --cut
"$SANDBOX" restart-backend "$XE_SANDBOX_DIR_SB" prosody-0 >/dev/null 2>&1
ok $? "prosody-0 restarted: the phone's session is gone"
s2 --jid "$B" --password "$PW" --bind --send "$A=offline-$$"
s2 --jid "$A" --password "$PW" --ua-id ua-phone --resume-file "$T/ph2.sm" --bind --tag ph --sm \
	--presence --expect "offline-$$"
is "$(v RESUMED)/$(v RESUME_FAILED)" no/item-not-found "resume refused: <failed><item-not-found/> in <success>"
is "$(v BOUND)/$(v SM)" yes/enabled "... Bind2 done on the same stream instead, SM enabled anew"
is "$(v RESULT)" ok "... and the message sent meanwhile arrives from offline storage"

# ---- FAST
s2 --jid "$A" --password "$PW" --ua-id ua-fast --request-token HT-SHA-256-NONE --token-out "$T/tok"
like "$(v TOKEN)" '.{16,}' "<request-token/>: a token in <success>"
like "$(v TOKEN_EXPIRY)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "... with its expiry"
LOG_MARK=$(wc -l <"$XEDGE_LOG")
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --bind
is "$(v MECH)/$(v AUTH)/$(v SERVER_SIG)/$(v BOUND)" HT-SHA-256-NONE/success/ok/yes \
	"HT-SHA-256-NONE login with the token; the Responder HMAC verified; bound"
like "$(log_since | grep 'event=auth-ok')" 'path=fast' "... xedge's log names the login path: path=fast"
for m in EXPR ENDP UNIQ; do
	tls=()
	[ $m = UNIQ ] && tls=(--tls12)
	s2 --jid "$A" --password "$PW" --ua-id "ua-$m" --request-token "HT-SHA-256-$m" --token-out "$T/tok-$m" "${tls[@]}"
	s2 --jid "$A" --token "@$T/tok-$m" --fast-mech "HT-SHA-256-$m" --ua-id "ua-$m" "${tls[@]}"
	is "$(v AUTH)/$(v SERVER_SIG)" success/ok "HT-SHA-256-$m: a token bound to the channel logs in"
done
s2 --jid "$A" --token "@$T/tok-EXPR" --fast-mech HT-SHA-256-NONE --ua-id ua-EXPR
is "$(v FAILURE)" not-authorized "a token requested for -EXPR used with -NONE is refused"

s2 --jid "$A" --token "wrong-token-$$" --ua-id ua-fast
is "$(v AUTH)/$(v FAILURE)" failure/not-authorized "a wrong token is refused"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-other
is "$(v FAILURE)" not-authorized "the right token with another user agent id is refused"
s2 --jid "$B" --token "@$T/tok" --ua-id ua-fast
is "$(v FAILURE)" not-authorized "alice's token used as bob is refused"
s2 --jid "$A" --token "wrong-$$" --password "$PW" --ua-id ua-fast
is "$(vs AUTH)" failure,success "a FAST failure, then the password on the same stream"

# the count rule (replay)
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --fast-count 5
is "$(v AUTH)" success "count=5 accepted"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --fast-count 5
is "$(v FAILURE)" not-authorized "count=5 again (a replay) is refused"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast
is "$(v AUTH)" failure "... and once a count was used, a login without one too"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --fast-count 6
is "$(v AUTH)" success "count=6 accepted"

# rotation: a new token goes to the next slot; the old works until the new is
# used (counts keep growing: whether the count is per token or per client,
# each use is a new one)
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --fast-count 7 --request-token HT-SHA-256-NONE --token-out "$T/tok2"
[ -s "$T/tok2" ] && ! cmp -s "$T/tok" "$T/tok2"
ok $? "a token login asking for another gets a new token"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --fast-count 8
is "$(v AUTH)" success "... the old one still works while the new is unused"
s2 --jid "$A" --token "@$T/tok2" --ua-id ua-fast --fast-count 10
is "$(v AUTH)" success "... the new one works"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --fast-count 11
is "$(v FAILURE)" not-authorized "... and once it was used, the old one is refused"

# invalidate
s2 --jid "$A" --token "@$T/tok2" --ua-id ua-fast --fast-count 12 --invalidate
is "$(v AUTH)" success "<fast invalidate='true'/>: this login succeeds"
s2 --jid "$A" --token "@$T/tok2" --ua-id ua-fast --fast-count 13
is "$(v FAILURE)" not-authorized "... the token is gone"

# revoked by xedgectl user tokens revoke
s2 --jid "$A" --password "$PW" --ua-id ua-rev --request-token HT-SHA-256-NONE --token-out "$T/tok-rev"
like "$(ctl user tokens list "$A" 2>&1)" 'ua-rev' "xedgectl user tokens list shows the client"
[ -s "$T/tok-rev" ] && ! ctl user tokens list "$A" 2>&1 | grep -qF "$(cat "$T/tok-rev")"
ok $? "... never the token"
ctl user tokens revoke "$A" ua-rev >/dev/null 2>&1
s2 --jid "$A" --token "@$T/tok-rev" --ua-id ua-rev
is "$(v FAILURE)" not-authorized "xedgectl user tokens revoke: the token is refused"

# revoked by a password change
s2 --jid "$A" --password "$PW" --ua-id ua-pw --request-token HT-SHA-256-NONE --token-out "$T/tok-pw"
printf '%s\n' "$PW" | ctl user passwd "$A" >/dev/null 2>&1
s2 --jid "$A" --token "@$T/tok-pw" --ua-id ua-pw
is "$(v FAILURE)" not-authorized "xedgectl user passwd (even to the same password): the token is refused"

# the login paths in the metrics (the sessions started so far: password
# SASL2 logins, token logins, the inline resumption)
M=$("$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$XEDGE_METRICS" 2>&1)
for p in sasl2 fast resume; do
	like "$(printf '%s\n' "$M" | grep -F "xedge_login_paths_total{path=\"$p\"} ")" ' [1-9][0-9]*$' \
		"metrics: xedge_login_paths_total{path=\"$p\"} counts the $p sessions"
done

# expired
sed -n p "$XEDGE_CONF" >"$T/short.conf" && printf '%s\n' "$FAST_SHORT_CONF" >>"$T/short.conf"
xedge_restart "$T/short.conf"
s2 --jid "$A" --password "$PW" --ua-id ua-exp --request-token HT-SHA-256-NONE --token-out "$T/tok-exp"
s2 --jid "$A" --token "@$T/tok-exp" --ua-id ua-exp
is "$(v AUTH)" success "a token with a 3 s lifetime works at once"
sleep 4
s2 --jid "$A" --token "@$T/tok-exp" --ua-id ua-exp
like "$(v FAILURE)" '^(not-authorized|credentials-expired)$' "... and is refused after 4 s"

sandbox_down

# ======================================================== ejabberd behind
sandbox_up --backends ejabberd --user "$A=$PW" --user "$B=$PW" --conf "$SASL2_CONF"
T=$XE_SANDBOX_DIR/s2
mkdir -p "$T"
s2 --jid "$A" --features-only
is "$(v INLINE)/$(v BIND2_INLINE)" "bind2,sm,fast/carbons,csi,sm" "ejabberd behind: Bind2 with carbons, CSI, SM; SM resumption; FAST"
s2 --jid "$A" --password "$PW" --ua-id ua-sm --bind --sm --send-self 2 --ack
is "$(v SM)/$(v ACK)" enabled/2 "ejabberd: SM enabled inline, <r/> answered with h=2"
rm -f "$T/b2.ready"
s2_bg "$T/b2.out" --jid "$A" --password "$PW" --ua-id ua-b2 --bind --carbons --presence \
	--ready-file "$T/b2.ready" --expect-carbon "sent:ej-carbon-$$" --timeout 20 &
P=$!
wait_for "$T/b2.ready"
s2 --jid "$A" --password "$PW" --ua-id ua-b1 --bind --presence --send "$B=ej-carbon-$$"
wait $P
bg_out "$T/b2.out"
is "$(v CARBON)" "sent:ej-carbon-$$" "ejabberd: the carbon copy arrives at the other resource"
rm -f "$T/ph.ready" "$T/ph.sm" "$T/ph.go"
s2_bg "$T/ph.out" --jid "$A" --password "$PW" --ua-id ua-phone --bind --sm --presence --send-self 1 \
	--ready-file "$T/ph.ready" --sm-save "$T/ph.sm" --wait-file "$T/ph.go" --cut --timeout 30 &
P=$!
wait_for "$T/ph.sm"
PHONE=$(cat "$T/ph.ready" 2>/dev/null)
s2 --jid "$B" --password "$PW" --bind --send "$PHONE=ej-fly-$$"
sleep 0.5
: >"$T/ph.go"
wait $P
s2 --jid "$A" --password "$PW" --ua-id ua-phone --resume-file "$T/ph.sm" --bind --sm \
	--expect "ej-fly-$$" --read-for 2
is "$(v RESUMED)/$(v MSGS)/$(v RESULT)" yes/1/ok "ejabberd: inline resume, the in-flight message once"
s2 --jid "$A" --password "$PW" --ua-id ua-fast --request-token HT-SHA-256-NONE --token-out "$T/tok"
s2 --jid "$A" --token "@$T/tok" --ua-id ua-fast --bind --send-self 1
is "$(v AUTH)/$(v RESULT)" success/ok "ejabberd: FAST token login, bound, a message round trip"

sandbox_down

# ======================================================== jabberd2 behind
sandbox_up --backends jabberd2 --user "$A=$PW" --conf "$SASL2_CONF"
s2 --jid "$A" --features-only
is "$(v INLINE)/$(v BIND2_INLINE)" "bind2,fast/-" \
	"jabberd2 behind: Bind2 without carbons or SM, no SM resumption (what the pool can do)"
s2 --jid "$A" --password "$PW" --ua-id ua-j --bind --sm --presence --send-self 1
is "$(v BOUND)/$(v SM)/$(v RESULT)" yes/failed/ok \
	"jabberd2: Bind2 binds (session opened for it), SM asked anyway: <failed/> in <bound/>; messages flow"
