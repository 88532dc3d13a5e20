#!/bin/bash
# e2e-domains.t: two domains on one xedge, each with its own certificate
# (chosen by the stream's `to` on STARTTLS, by SNI on Direct TLS) and its
# own list of SASL mechanisms (domains[].mechanisms overrides sasl.mechanisms).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 6

PW="dom-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=other.test -addext subjectAltName=DNS:other.test -addext basicConstraints=critical,CA:TRUE \
	-keyout "$SB/other.key" -out "$SB/other.pem" >/dev/null 2>&1
awk -v sb="$SB" '
	/^domains = \(/ { print; getline; print "  { name = \"other.test\"; certificate = \"" sb "/other.pem\"; key = \"" sb "/other.key\"; pool = \"main\";"; print "    mechanisms = [ \"SCRAM-SHA-256\", \"DIGEST-MD5\" ]; },"; print; next }
	{ print }' "$XEDGE_CONF" >"$SB/two.conf"
xedge_restart "$SB/two.conf"

raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" 'mechanisms:SCRAM-SHA-256-PLUS\+SCRAM-SHA-1-PLUS\+SCRAM-SHA-256\+SCRAM-SHA-1\+PLAIN' \
	"example.test: the sasl group's mechanisms"
is "$RC" 0 "example.test: login"
OUT=$(timeout 30 "$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$SB/other.pem" \
	--jid bob@other.test --password x --mech SCRAM-SHA-256 2>&1)
diag "$OUT"
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" 'list=mechanisms:SCRAM-SHA-256\+DIGEST-MD5$' \
	"other.test: its own list (and no channel binding types: no -PLUS)"
like "$OUT" 'TLS version=' "other.test: its own certificate verifies for other.test (STARTTLS, by 'to')"
OUT=$(timeout 30 "$PY" "$RAW_CLIENT" --server "$XEDGE_DIRECT_TLS" --mode direct --cafile "$SB/other.pem" \
	--jid bob@other.test --password x --mech SCRAM-SHA-256 2>&1)
diag "$OUT"
like "$OUT" 'TLS version=' "other.test over Direct TLS: its certificate, by SNI"
like "$OUT" 'not-authorized' "... and an unknown user there gets <not-authorized/>"
