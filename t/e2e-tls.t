#!/bin/bash
# e2e-tls.t: TLS sessions and parameters on the c2s and s2s listeners, with a
# client of the test's own (t/lib/tls_probe.py: Python's ssl, a session
# offered again on the next connection).
#  - resumption on a domain with client_ca (it failed with internal_error):
#    TLS 1.3 and 1.2, STARTTLS and Direct TLS, with and without a client
#    certificate; SASL EXTERNAL on the resumed session;
#  - a session of example.test does not resume under other.test (its own
#    client_ca, EXTERNAL listed): full handshake, other.test's certificate,
#    no EXTERNAL carried across;
#  - a TLS 1.2 client with only CBC suites is refused; tls.ciphers (reload)
#    lets it in, a domain's own tls group applies to that domain only, a bad
#    list is refused by the reload (naming the setting) and the running
#    configuration goes on;
#  - the same on the s2s listeners (STARTTLS and Direct TLS, a peer
#    certificate from a test CA in s2s.trust_anchors);
#  - a peer's SASL with its secret (SCRAM-*-PLUS, tls-server-end-point), and
#    its secret_file and mechanisms changed by a reload.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 72

PROBE="$XE_TOP_SRCDIR/t/lib/tls_probe.py"
PW="tls-$RANDOM-$RANDOM"
CBC="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA"

# the s2s listeners' ports: a free range of their own
S2S_BASE=$(pick_base_port) || bail "no free port range"
S2S=$((S2S_BASE + 5)) S2SD=$((S2S_BASE + 7))

sandbox_up --user "alice@example.test=$PW" --enable external \
	--s2s-port "$S2S" --s2s-direct-tls-port "$S2SD"
SB=$XE_SANDBOX_DIR_SB
# a test CA for the s2s peer's certificate: s2s.trust_anchors (from part 2)
CA=$XE_SANDBOX_DIR/ca
"$XE_TOP_SRCDIR/t/lib/testca.sh" "$CA" peer.test >/dev/null 2>&1 || bail "testca.sh failed"
[ -n "${XEDGE_CLIENT_CERT:-}" ] && [ -n "${XEDGE_S2S:-}" ] && [ -n "${XEDGE_S2S_DIRECT_TLS:-}" ] ||
	bail "the sandbox printed no client certificate or s2s listeners"

probe() { # probe ARGS... -> OUT, RC; C1, C2: the CONN lines
	OUT=$(timeout 60 "$PY" "$PROBE" "$@" 2>&1)
	RC=$?
	C1=$(printf '%s\n' "$OUT" | grep '^CONN n=1 ')
	C2=$(printf '%s\n' "$OUT" | grep '^CONN n=2 ')
	diag "tls_probe $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
C2S=(--server "$XEDGE_C2S" --cafile "$XEDGE_CERT")
DTLS=(--server "$XEDGE_DIRECT_TLS" --mode direct --cafile "$XEDGE_CERT")
CERT=(--cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY" --external)

# ---- 1. resumption on a domain with client_ca
for mode in starttls direct; do
	for v in 1.3 1.2; do
		if [ $mode = starttls ]; then L=("${C2S[@]}"); else L=("${DTLS[@]}"); fi
		[ $v = 1.2 ] && L+=(--tls12)
		probe "${L[@]}" --domain example.test "${CERT[@]}"
		like "$C2" "result=ok version=TLSv$v reused=yes .*external=success" \
			"c2s $mode TLS $v, client certificate: the session resumes, and EXTERNAL works on it"
		probe "${L[@]}" --domain example.test
		like "$C1$C2" "reused=no.*CONN n=2 .*version=TLSv$v reused=yes" \
			"c2s $mode TLS $v, no client certificate: the session resumes"
	done
done
probe "${C2S[@]}" --domain example.test "${CERT[@]}" --tls12 --no-ticket
like "$C2" "result=ok version=TLSv1.2 reused=yes .*external=success" \
	"c2s TLS 1.2 without tickets: the session ID resumes (the server's cache), EXTERNAL works"
! grep -q 'session id context uninitialized' "$XEDGE_LOG"
ok $? "no 'session id context uninitialized' in the log"

# ---- 2. a second domain, other.test: its own certificate (RSA, signed with
# SHA-384), client_ca, EXTERNAL; and a peer, secret.test, with a secret
openssl req -x509 -newkey rsa:2048 -sha384 -nodes -days 2 \
	-subj /CN=other.test -addext subjectAltName=DNS:other.test -addext basicConstraints=critical,CA:TRUE \
	-keyout "$SB/other.key" -out "$SB/other.pem" >/dev/null 2>&1 || bail "openssl req failed"
# example.test stays the first domain (the default, without SNI)
awk -v sb="$SB" '
	/^domains = \(/ { d = 1 }
	d && /^\);/ { print "  , { name = \"other.test\"; certificate = \"" sb "/other.pem\"; key = \"" sb "/other.key\"; pool = \"main\";";
		print "    client_ca = \"" sb "/other.pem\"; mechanisms = [ \"SCRAM-SHA-256\", \"EXTERNAL\" ];"; print "  }"; d = 0 }
	{ print }' "$XEDGE_CONF" | sed "s#trust_anchors = \"[^\"]*\"#trust_anchors = \"$CA/ca.pem\"#" >"$SB/two.conf"
grep -q 'name = "other.test"' "$SB/two.conf" || bail "could not add other.test"
grep -q "trust_anchors = \"$CA/ca.pem\"" "$SB/two.conf" || bail "could not set s2s.trust_anchors"
openssl rand -hex 32 >"$SB/peer.secret"
sed -i "s#^  peers = (#  peers = ( { domain = \"secret.test\"; policy = \"secret\"; secret_file = \"$SB/peer.secret\"; }#" "$SB/two.conf"
grep -q 'domain = "secret.test"' "$SB/two.conf" || bail "could not add the peer secret.test"
xedge_restart "$SB/two.conf"
BOTH=(--cafile "$SB/other.pem")
for mode in starttls direct; do
	for v in 1.3 1.2; do
		if [ $mode = starttls ]; then L=("${C2S[@]}"); else L=("${DTLS[@]}"); fi
		[ $v = 1.2 ] && L+=(--tls12)
		probe "${L[@]}" "${BOTH[@]}" --domain example.test --domain2 other.test "${CERT[@]}"
		like "$C1" "result=ok .*reused=no .*external=success" "c2s $mode TLS $v: EXTERNAL on example.test"
		like "$C2" "domain=other.test result=ok version=TLSv$v reused=no .*cert=other.test" \
			"... its session is not resumed under other.test (full handshake, other.test's certificate)"
		unlike "$C2" "EXTERNAL|external=success" "... and no EXTERNAL carried across to other.test"
	done
done
probe "${DTLS[@]}" "${BOTH[@]}" --domain example.test --domain2 other.test "${CERT[@]}" --tls12 --no-ticket
like "$C2" "domain=other.test result=ok version=TLSv1.2 reused=no .*cert=other.test" \
	"Direct TLS 1.2 without tickets: example.test's session ID does not resume under other.test"
probe "${DTLS[@]}" "${BOTH[@]}" --domain other.test
like "$C2" "domain=other.test result=ok .*reused=yes .*cert=other.test" \
	"Direct TLS: other.test's own sessions resume under other.test (SNI)"

# ---- 2b. the s2s listeners: a peer certificate from the trust anchors' CA
# (s2s.trust_anchors: the client_ca of every domain there)
PEERC=(--ns server --from peer.test --cert "$CA/peer.test.pem" --key "$CA/peer.test.key")
for mode in starttls direct; do
	for v in 1.3 1.2; do
		if [ $mode = starttls ]; then L=(--server "$XEDGE_S2S"); else L=(--server "$XEDGE_S2S_DIRECT_TLS" --mode direct); fi
		L+=(--cafile "$XEDGE_CERT" "${BOTH[@]}")
		[ $v = 1.2 ] && L+=(--tls12)
		probe "${L[@]}" "${PEERC[@]}" --domain example.test
		like "$C2" "result=ok version=TLSv$v reused=yes .*mechanisms=[^ ]*EXTERNAL" \
			"s2s $mode TLS $v: the session resumes, the peer certificate still counts (EXTERNAL offered)"
		probe "${L[@]}" --ns server --from peer.test --domain example.test
		like "$C2" "result=ok version=TLSv$v reused=yes" "s2s $mode TLS $v, no peer certificate: resumes"
		probe "${L[@]}" "${PEERC[@]}" --domain example.test --domain2 other.test
		like "$C2" "domain=other.test result=ok version=TLSv$v reused=no .*cert=other.test" \
			"s2s $mode TLS $v: example.test's session does not resume under other.test"
	done
done
# ---- 2c. s2s SASL with the peer's secret: SCRAM-SHA-256-PLUS bound with
# tls-server-end-point (t/lib/s2s_scram.py: SCRAM by hand, the hash of the
# certificate it was shown), EC/SHA-256 (example.test), RSA/SHA-384 (other.test)
scram() { # scram ARGS... -> OUT, RC
	OUT=$(timeout 30 "$PY" "$XE_TOP_SRCDIR/t/lib/s2s_scram.py" --from secret.test \
		--secret-file "$SB/peer.secret" "$@" 2>&1)
	RC=$?
	FLAT="$RC/$(printf '%s' "$OUT" | tr '\n' ' ')"
	diag "s2s_scram $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
for v in 1.3 1.2; do
	T=()
	[ $v = 1.2 ] && T=(--tls12)
	scram --server "$XEDGE_S2S" --to example.test --cafile "$XEDGE_CERT" "${T[@]}"
	like "$OUT" "cb_types=[^ ]*tls-server-end-point" "s2s TLS $v: tls-server-end-point advertised (XEP-0440)"
	like "$FLAT" "^0/.*cert_hash=sha256.*RESULT=ok mech=SCRAM-SHA-256-PLUS cb=tls-server-end-point" \
		"s2s TLS $v, EC certificate: SCRAM-SHA-256-PLUS with tls-server-end-point (SHA-256)"
	scram --server "$XEDGE_S2S" --to example.test --cafile "$XEDGE_CERT" "${T[@]}" --corrupt-cb
	like "$FLAT" "^1/.*RESULT=failure condition=not-authorized" "... a wrong hash: <not-authorized/>"
	scram --server "$XEDGE_S2S_DIRECT_TLS" --mode direct --to other.test --cafile "$SB/other.pem" "${T[@]}"
	like "$FLAT" "^0/.*cert_hash=sha384.*RESULT=ok mech=SCRAM-SHA-256-PLUS" \
		"s2s Direct TLS $v, RSA certificate: tls-server-end-point (SHA-384)"
	scram --server "$XEDGE_S2S_DIRECT_TLS" --mode direct --to other.test --cafile "$SB/other.pem" "${T[@]}" --corrupt-cb
	like "$FLAT" "^1/.*RESULT=failure condition=not-authorized" "... a wrong hash: <not-authorized/>"
done
grep -q 'event=s2s-auth mech=SCRAM-SHA-256-PLUS .*remote=secret.test' "$XEDGE_LOG"
ok $? "xedge logs the peer's SCRAM-SHA-256-PLUS"

# ---- 2d. the peer's secret_file and mechanisms on reload
cp "$SB/two.conf" "$SB/two.pre"
openssl rand -hex 32 >"$SB/peer2.secret"
sed "s#secret_file = \"$SB/peer.secret\";#secret_file = \"$SB/peer2.secret\"; mechanisms = [ \"SCRAM-SHA-1\" ];#" \
	"$SB/two.pre" >"$SB/two.conf"
grep -q peer2.secret "$SB/two.conf" || bail "could not change the peer's secret_file"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "reload with another secret_file and mechanisms for secret.test: ok"
scram --server "$XEDGE_S2S" --to example.test --cafile "$XEDGE_CERT" --mech SCRAM-SHA-1-PLUS
like "$OUT" "FEATURES mechanisms=SCRAM-SHA-1-PLUS\+SCRAM-SHA-1( |$)" "... secret.test is offered the new mechanisms (SCRAM-SHA-1)"
like "$FLAT" "^1/.*RESULT=failure condition=not-authorized" "... the old secret: <not-authorized/>"
scram --server "$XEDGE_S2S" --to example.test --cafile "$XEDGE_CERT" --mech SCRAM-SHA-1-PLUS --secret-file "$SB/peer2.secret"
like "$FLAT" "^0/.*RESULT=ok mech=SCRAM-SHA-1-PLUS" "... the new secret: SCRAM-SHA-1-PLUS ok"
cp "$SB/two.pre" "$SB/two.conf"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "back to the first secret: ok"

# ---- 3. TLS 1.2 parameters
probe "${C2S[@]}" --domain example.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=tls-error" "a TLS 1.2 client with only CBC suites is refused (STARTTLS)"
probe "${DTLS[@]}" --domain example.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=tls-error" "... and on Direct TLS"
probe "${C2S[@]}" --domain example.test --tls12 --count 1
like "$C1" "result=ok version=TLSv1.2 .*cipher=ECDHE-ECDSA-(AES(128|256)-GCM|CHACHA20-POLY1305)" \
	"a default TLS 1.2 client gets ECDHE with an AEAD suite"

cp "$SB/two.conf" "$SB/two.orig"
{ cat "$SB/two.orig"; echo 'tls = { ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"; groups = "P-256:X25519"; };'; } >"$SB/two.conf"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "reload with tls.ciphers and tls.groups: ok"
probe "${C2S[@]}" --domain example.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=ok version=TLSv1.2 .*cipher=ECDHE-ECDSA-AES128-SHA " "tls.ciphers: the CBC client gets in now"
probe "${DTLS[@]}" "${BOTH[@]}" --domain other.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=ok .*cert=other.test" "... on other.test too (the top group is every domain's)"

awk '{ print } /client_ca = ".*other.pem"/ { print "    tls = { min_version = \"TLSv1.3\"; };" }' "$SB/two.orig" >"$SB/two.conf"
grep -q 'min_version = "TLSv1.3"' "$SB/two.conf" || bail "could not add other.test's tls group"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "reload with a tls group in other.test: ok"
probe "${DTLS[@]}" "${BOTH[@]}" --domain other.test --tls12 --count 1
like "$C1" "result=tls-error" "other.test's min_version TLSv1.3 refuses a TLS 1.2 client (SNI)"
probe "${C2S[@]}" "${BOTH[@]}" --domain other.test --tls12 --count 1
like "$C1" "result=tls-error" "... and on STARTTLS to other.test"
probe "${DTLS[@]}" "${BOTH[@]}" --domain other.test --count 1
like "$C1" "result=ok version=TLSv1.3" "... which takes TLS 1.3"
probe "${DTLS[@]}" --domain example.test --tls12 --count 1
like "$C1" "result=ok version=TLSv1.2" "example.test still takes TLS 1.2"
probe "${C2S[@]}" --domain example.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=tls-error" "... and without the top group, CBC is refused again"

cp "$SB/two.conf" "$SB/two.good"
{ cat "$SB/two.good"; echo 'tls = { ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA265"; };'; } >"$SB/two.conf"
out=$(ctl reload 2>&1)
rc=$?
is "$rc" 1 "a reload with an unknown suite in tls.ciphers is refused"
like "$out" "tls\.ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA265' names no TLS 1\.2 cipher suite" "... the error names the setting and the name"
probe "${DTLS[@]}" "${BOTH[@]}" --domain other.test --tls12 --count 1
like "$C1" "result=tls-error" "... and the running configuration goes on"
cp "$SB/two.good" "$SB/two.conf"

# ---- 4. the s2s listeners: TLS 1.2 parameters
probe --server "$XEDGE_S2S" --cafile "$XEDGE_CERT" --ns server --from peer.test --domain example.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=tls-error" "s2s: a TLS 1.2 peer with only CBC suites is refused (STARTTLS)"
probe --server "$XEDGE_S2S_DIRECT_TLS" --mode direct --cafile "$XEDGE_CERT" --ns server --from peer.test --domain example.test --tls12 --ciphers "$CBC" --count 1
like "$C1" "result=tls-error" "... and on Direct TLS"
probe --server "$XEDGE_S2S_DIRECT_TLS" --mode direct "${BOTH[@]}" --ns server --from peer.test --domain other.test --tls12 --count 1
like "$C1" "result=tls-error" "s2s: other.test's min_version TLSv1.3 holds there too"

! grep -q 'session id context uninitialized' "$XEDGE_LOG"
ok $? "no 'session id context uninitialized' in the log"
xedge_alive
ok $? "xedge is still running"
