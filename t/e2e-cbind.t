#!/bin/bash
# e2e-cbind.t: SCRAM-*-PLUS with channel binding. tls-exporter (RFC 9266) and
# tls-server-end-point (RFC 5929; an EC certificate signed with SHA-256 and
# an RSA one signed with SHA-384) over TLS 1.3 and 1.2 with a small client
# built by the tests (t/lib/xcbclient: OpenSSL and Cyrus SASL's client side),
# tls-unique over TLS 1.2 with slixmpp,
# the types advertised per XEP-0440, a binding that does not match, and the
# downgrade ("y": the client supports binding but thinks the server does not).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 39

XCB="$XE_TOP_BUILDDIR/t/lib/xcbclient"
[ -x "$XCB" ] || bail "t/lib/xcbclient is not built (make check builds it)"
PW="cb-$RANDOM-$RANDOM"

xcb() { # xcb MECH [options] -> OUT, RC
	OUT=$(timeout 30 "$XCB" "${XEDGE_C2S%:*}" "${XEDGE_C2S##*:}" example.test alice "$PW" \
		"$@" --cafile "$XEDGE_CERT" 2>&1)
	RC=$?
	diag "xcbclient $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
cb_types() { printf '%s\n' "$OUT" | sed -n 's/^CB_TYPE=//p' | tr '\n' ' ' | sed 's/ $//'; }

# ---- the default configuration: -PLUS offered
sandbox_up --user "alice@example.test=$PW"

xcb SCRAM-SHA-256-PLUS --cb tls-exporter
is "$RC" 0 "SCRAM-SHA-256-PLUS with tls-exporter over TLS 1.3"
like "$OUT" 'RESULT=ok .*tls=TLSv1\.3 jid=alice@example.test/xcb' "... bound, through the backend"
is "$(cb_types)" "tls-exporter tls-server-end-point" "TLS 1.3: the advertised binding types are tls-exporter and tls-server-end-point (XEP-0440)"
xcb SCRAM-SHA-1-PLUS --cb tls-exporter
is "$RC" 0 "SCRAM-SHA-1-PLUS with tls-exporter"
xcb SCRAM-SHA-256-PLUS --cb tls-exporter --corrupt-cb
is "$RC" 1 "a binding that does not match fails"
like "$OUT" 'RESULT=failure condition=not-authorized' "... with <not-authorized/>"
grep -q 'detail=.*Channel bindings mismatch' "$XEDGE_LOG"
ok $? "... and the log says why"

xcb SCRAM-SHA-256-PLUS --cb tls-exporter --tls12
is "$RC" 0 "tls-exporter over TLS 1.2 (with the extended master secret)"
is "$(cb_types)" "tls-unique tls-exporter tls-server-end-point" "TLS 1.2: tls-unique, tls-exporter and tls-server-end-point advertised"
xcb SCRAM-SHA-256-PLUS --cb tls-unique --tls12
is "$RC" 0 "tls-unique over TLS 1.2"
xcb SCRAM-SHA-256-PLUS --cb tls-unique --tls12 --corrupt-cb
like "$OUT" 'condition=not-authorized' "tls-unique that does not match: <not-authorized/>"

# tls-server-end-point: the hash of the (EC, ecdsa-with-SHA256) certificate
end_point() { # end_point WHAT MD LEN [xcb options]
	local what=$1 md=$2 len=$3
	shift 3
	xcb SCRAM-SHA-256-PLUS --cb tls-server-end-point "$@"
	is "$RC" 0 "$what: SCRAM-SHA-256-PLUS with tls-server-end-point"
	like "$OUT" "END_POINT md=$md len=$len" "... the $md hash of the certificate"
	xcb SCRAM-SHA-256-PLUS --cb tls-server-end-point --corrupt-cb "$@"
	like "$OUT" 'RESULT=failure condition=not-authorized' "$what: a wrong hash gets <not-authorized/>"
}
end_point "EC certificate, TLS 1.3" SHA256 32
end_point "EC certificate, TLS 1.2" SHA256 32 --tls12

client --jid alice@example.test --password "$PW" --tls12 --resource s12
is "$RC" 0 "slixmpp over TLS 1.2 logs in"
is "$(result mech)" "SCRAM-SHA-256-PLUS" "... with SCRAM-SHA-256-PLUS (tls-unique) by itself"
client --jid alice@example.test --password "$PW" --resource s13
is "$(result mech)" "SCRAM-SHA-256-PLUS" "slixmpp over TLS 1.3: SCRAM-SHA-256-PLUS (it sends tls-unique; accepted by default)"
client --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
like "$RESULT" 'condition=not-authorized' "slixmpp forced onto SCRAM-SHA-256 says 'y' while -PLUS is offered: refused (downgrade)"
grep -q 'detail=.*client incorrectly assumed server had no channel binding' "$XEDGE_LOG"
ok $? "... and the log says so"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
is "$RC" 0 "a client without binding support ('n') still logs in with SCRAM-SHA-256"

# ---- an RSA certificate signed with SHA-384: a SHA-384 end-point hash
openssl req -x509 -newkey rsa:2048 -sha384 -nodes -days 2 -subj /CN=example.test \
	-addext subjectAltName=DNS:example.test -addext basicConstraints=critical,CA:TRUE \
	-keyout "$XE_SANDBOX_DIR/rsa.key" -out "$XE_SANDBOX_DIR/rsa.pem" >/dev/null 2>&1 ||
	bail "cannot make an RSA certificate"
cp "$XE_SANDBOX_DIR/rsa.key" "$XE_SANDBOX_DIR/rsa.pem" "$XE_SANDBOX_DIR_SB/"
RSA=$XE_SANDBOX_DIR_SB
sed "s#certificate = \"[^\"]*\"#certificate = \"$RSA/rsa.pem\"#; s#key = \"[^\"]*\"#key = \"$RSA/rsa.key\"#" \
	"$XEDGE_CONF" >"$RSA/rsa.conf"
xedge_restart "$RSA/rsa.conf"
XEDGE_CERT=$RSA/rsa.pem
end_point "RSA certificate, TLS 1.3" SHA384 48
end_point "RSA certificate, TLS 1.2" SHA384 48 --tls12
sandbox_down

# ---- tls13_tls_unique = false: only the RFC 9266 binding on TLS 1.3
sandbox_up --user "alice@example.test=$PW" --conf 'sasl = { tls13_tls_unique = false; };'
xcb SCRAM-SHA-256-PLUS --cb tls-exporter
is "$RC" 0 "tls13_tls_unique = false: tls-exporter still works"
xcb SCRAM-SHA-256-PLUS --cb tls-unique
like "$OUT" 'condition=not-authorized' "... and tls-unique over TLS 1.3 is refused"
client --jid alice@example.test --password "$PW"
like "$RESULT" 'condition=not-authorized' "... so slixmpp over TLS 1.3 cannot log in"
client --jid alice@example.test --password "$PW" --tls12
is "$RC" 0 "... but slixmpp over TLS 1.2 can"
sandbox_down

# ---- no -PLUS in the configuration: nothing to downgrade from
sandbox_up --user "alice@example.test=$PW" \
	--conf 'sasl = { mechanisms = [ "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN" ]; };'
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" 'list=mechanisms:SCRAM-SHA-256\+SCRAM-SHA-1\+PLAIN$' \
	"without -PLUS configured: no -PLUS offered, no binding types advertised"
client --jid alice@example.test --password "$PW" --resource y
is "$RC" 0 "slixmpp's 'y' is then right, and it logs in"
is "$(result mech)" "SCRAM-SHA-256" "... with SCRAM-SHA-256"
xcb SCRAM-SHA-256-PLUS --cb tls-exporter
ok "$([ "$RC" -ne 0 ] && echo 0 || echo 1)" "a -PLUS mechanism that is not offered is refused"
like "$OUT" 'condition=invalid-mechanism|RESULT=error' "... (invalid-mechanism, or the client gives up)"
xedge_alive
ok $? "xedge is still running"
