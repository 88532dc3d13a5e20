#!/bin/bash
# e2e-conf-nameprep.t: the domain names of xedge.conf are folded through
# nameprep at load, as a JID's domain is (src/core/jidprep.c): a domain
# configured in fullwidth capitals (ＥＸＡＭＰＬＥ.test, whose nameprep form is
# example.test) serves the clients that send example.test or EXAMPLE.TEST
# (or ｅｘａｍｐｌｅ.test: the lookup folds a non-ASCII name too), and
# xedgectl finds its users under any form of the name. Before, the
# configured name was only lowered in ASCII and no client matched it. A
# domain written with A-labels (XN--BCHER-KVA.test) is bücher.test, and
# Direct TLS finds its certificate by the SNI's A-labels.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 9

PW="np-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB
cp "$XEDGE_CONF" "$SB/ascii.conf"
sed -i 's/name = "example.test";/name = "ＥＸＡＭＰＬＥ.test";/' "$XEDGE_CONF"
is "$(grep -c 'name = "ＥＸＡＭＰＬＥ.test";' "$XEDGE_CONF")" 1 "the domain is configured in fullwidth capitals"
xedge_restart "$XEDGE_CONF"

raw --jid "alice@example.test" --password "$PW" --mech SCRAM-SHA-256
like "$RESULT" "^RESULT=ok" "a client of example.test logs in (its backend serves example.test)"
raw --jid "alice@EXAMPLE.TEST" --password "$PW" --mech SCRAM-SHA-256
like "$RESULT" "^RESULT=ok .*jid=alice@example.test/" "... and one that writes EXAMPLE.TEST, bound as alice@example.test"
out=$(ctl user where "alice@ＥＸＡＭＰＬＥ.test" 2>&1)
like "$(echo $out)" "home: " "xedgectl finds alice under the configured form of the name" || diag "$out"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed 's/name = "ＥＸＡＭＰＬＥ.test";/name = "ex\xee\x80\x80ample.test";/' "$XEDGE_CONF") 2>&1)
like "$out" "name: 'ex.+ample.test' is not a domain name a JID can have \(nameprep: a character the profile prohibits\)" \
	"xedge -t refuses a name that fails nameprep, saying why"
OUT=$(timeout 30 "$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --insecure --jid "alice@ｅｘａｍｐｌｅ.test" \
	--password "$PW" --mech SCRAM-SHA-256 2>&1)
diag "$OUT"
like "$(printf '%s\n' "$OUT" | grep '^RESULT=')" "^RESULT=ok .*jid=alice@example.test/" \
	"a client that writes the domain in fullwidth letters (to='ｅｘａｍｐｌｅ.test') is served as example.test"

# an internationalized domain written with its A-label in the
# configuration (XN--BCHER-KVA.test: bücher.test), with its own
# certificate (for xn--bcher-kva.test, as certificates name it): Direct TLS
# picks it by the SNI (A-labels), STARTTLS by the stream's to (Unicode)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=xn--bcher-kva.test -addext subjectAltName=DNS:xn--bcher-kva.test -addext basicConstraints=critical,CA:TRUE \
	-keyout "$SB/idn.key" -out "$SB/idn.pem" >/dev/null 2>&1
# (second in the list: the first domain's certificate is Direct TLS's default)
awk -v sb="$SB" '
	/^domains = \(/ { in_d = 1 }
	in_d && /^\);/ { print "  , { name = \"XN--BCHER-KVA.test\"; certificate = \"" sb "/idn.pem\"; key = \"" sb "/idn.key\"; pool = \"main\"; }"; in_d = 0 }
	{ print }' "$XEDGE_CONF" >"$SB/idn.conf"
xedge_restart "$SB/idn.conf"
for mode in direct starttls; do
	srv=$XEDGE_C2S
	[ $mode = direct ] && srv=$XEDGE_DIRECT_TLS
	OUT=$(timeout 30 "$PY" "$RAW_CLIENT" --server "$srv" --mode $mode --cafile "$SB/idn.pem" \
		--jid "bob@bücher.test" --password x --mech SCRAM-SHA-256 2>&1)
	diag "$OUT"
	like "$(echo $OUT)" "TLS version=.*not-authorized" \
		"bücher.test ($mode): its certificate verifies (chosen by the SNI xn--bcher-kva.test or by to='bücher.test'), and an unknown user is refused"
done

xedge_alive
ok $? "xedge is still running"
