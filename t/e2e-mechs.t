#!/bin/bash
# e2e-mechs.t: every mechanism xedge knows, offered together and each used
# to log in (the offer once stopped at eight: EXTERNAL was configured and
# never offered); the one table (xedge -M) that the configuration, the
# sandbox and the documentation follow; and the gs2 flag of SCRAM against
# the mechanism named (RFC 5802 section 6): a -PLUS mechanism without
# binding is <malformed-request/>, "y" while -PLUS is offered is a
# downgrade, <not-authorized/>; both counted and logged as failures.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 29

XCB="$XE_TOP_BUILDDIR/t/lib/xcbclient"
[ -x "$XCB" ] || bail "t/lib/xcbclient is not built (make check builds it)"
PW="mx-$RANDOM-$RANDOM"
PROBE="$XE_TOP_SRCDIR/t/lib/external_probe.py"
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p"; }
xcb() { # xcb MECH [options]: Cyrus' client with tls-exporter over TLS 1.3
	OUT=$(timeout 30 "$XCB" "${XEDGE_C2S%:*}" "${XEDGE_C2S##*:}" example.test alice "$PW" \
		"$@" --cafile "$XEDGE_CERT" 2>&1)
	RC=$?
	diag "xcbclient $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
metric() { curl -s --max-time 5 "$XEDGE_METRICS" | grep -F "$1" | awk '{print $2}'; }

# ---- the table
table=$("$XE_TOP_BUILDDIR/src/xedge" -M)
ok $? "xedge -M lists the mechanisms"
names=$(printf '%s\n' "$table" | awk '{print $1}')
is "$(printf '%s\n' "$names" | wc -l)" 11 "... eleven of them"
missing=""
for m in $names; do
	for f in doc/xedge.conf.5 etc/xedge.conf.sample README; do
		grep -q -- "$m" "$XE_TOP_SRCDIR/$f" || missing+=" $m:$f"
	done
done
is "$missing" "" "every one is documented in xedge.conf(5), the sample and the README"

# ---- all of them at once
sandbox_up --user "alice@example.test=$PW" --enable anonymous,digest-md5,cram-md5,external,scram-sha-512
out=$(printf '%s\n' "$PW" | ctl user add --legacy-mechs bob@example.test 2>&1)
ok $? "a user with the legacy mechanisms (bob)" || diag "$out"

OUT=$(timeout 30 "$PY" "$PROBE" "$XEDGE_C2S" "$XEDGE_CERT" example.test \
	--cert "$XEDGE_CLIENT_CERT" --key "$XEDGE_CLIENT_KEY" 2>&1)
diag "$OUT"
offered=$(val MECHS | tr ',' '\n' | sort | tr '\n' ' ')
is "$offered" "$(printf '%s\n' "$names" | sort | tr '\n' ' ')" \
	"with a client certificate, all eleven are offered together"
is "$(val MECHS)" "SCRAM-SHA-512-PLUS,SCRAM-SHA-512,SCRAM-SHA-256-PLUS,SCRAM-SHA-1-PLUS,SCRAM-SHA-256,SCRAM-SHA-1,PLAIN,ANONYMOUS,DIGEST-MD5,CRAM-MD5,EXTERNAL" \
	"... in the configured order"

for m in SCRAM-SHA-512-PLUS SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS; do
	xcb "$m" --cb tls-exporter
	like "$OUT" 'RESULT=ok .*jid=alice@example.test/' "$m (tls-exporter) logs in"
done
for m in SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 PLAIN; do
	raw --jid alice@example.test --password "$PW" --mech "$m" --resource "r-$m"
	is "$RC" 0 "$m logs in"
done
for m in DIGEST-MD5 CRAM-MD5; do
	client --jid bob@example.test --password "$PW" --mech "$m" --resource "r-$m"
	is "$(result mech)" "$m" "$m logs in (bob, with a plaintext-equivalent)"
done
client --jid example.test --password unused --mech ANONYMOUS --resource anon
like "$(result jid)" '^anon-[0-9a-f]{16}@example\.test/anon$' "ANONYMOUS logs in"
client --jid alice@example.test --password unused --mech EXTERNAL \
	--certfile "$XEDGE_CLIENT_CERT" --keyfile "$XEDGE_CLIENT_KEY" --resource cert
is "$(result jid)" "alice@example.test/cert" "EXTERNAL logs in, offered beside the ten others"
n=0
for m in $names; do
	grep -q "event=auth-ok .* mech=$m\$" "$XEDGE_LOG" && n=$((n + 1))
done
is "$n" 11 "xedge logged a login with each of the eleven"

# ---- the gs2 flag against the mechanism (RFC 5802 section 6)
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256-PLUS --gs2 n
like "$RESULT" 'RESULT=failure condition=malformed-request' \
	"SCRAM-SHA-256-PLUS with gs2 flag 'n' (nothing bound): <malformed-request/>"
is "$(printf '%s\n' "$OUT" | grep -c '^SASL .*steps=0')" 1 "... at once, before any challenge"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-1-PLUS --gs2 y
like "$RESULT" 'RESULT=failure condition=malformed-request' "SCRAM-SHA-1-PLUS with gs2 flag 'y': <malformed-request/>"
grep -q "event=auth-failed .*mech=SCRAM-SHA-256-PLUS condition=malformed-request .*without channel binding" "$XEDGE_LOG"
ok $? "... logged as a failed login, with the reason"
is "$(metric 'xedge_logins_total{mechanism="SCRAM-SHA-256-PLUS",result="malformed-request",transport="tcp"}')" 1 \
	"... counted as a failure of SCRAM-SHA-256-PLUS"
is "$(metric 'xedge_logins_total{mechanism="SCRAM-SHA-256-PLUS",result="success",transport="tcp"}')" 1 \
	"... and not as a -PLUS login (the one success is the bound one above)"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256 --gs2 y
like "$RESULT" 'RESULT=failure condition=not-authorized' \
	"SCRAM-SHA-256 with 'y' while -PLUS is offered: <not-authorized/> (a downgrade)"
is "$(printf '%s\n' "$OUT" | grep -c '^SASL .*steps=0')" 1 "... at once, before any challenge"
grep -q "event=auth-failed .*mech=SCRAM-SHA-256 condition=not-authorized .*downgrade" "$XEDGE_LOG"
ok $? "... logged as a downgrade"
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256 --gs2 n
is "$RC" 0 "SCRAM-SHA-256 with 'n' (a client without binding) still logs in"
sandbox_down

# ---- no -PLUS on offer: "y" is the client's right guess
sandbox_up --user "alice@example.test=$PW" \
	--conf 'sasl = { mechanisms = [ "SCRAM-SHA-256", "PLAIN" ]; };'
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256 --gs2 y
is "$RC" 0 "without -PLUS on offer, SCRAM-SHA-256 with 'y' logs in"
sandbox_down

