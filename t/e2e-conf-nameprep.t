#!/bin/bash
# e2e-conf-nameprep.t: the domain names of xedge.conf are folded through
# nameprep at load, as a JID's domain is (src/core/jidprep.c): a domain
# configured in fullwidth capitals (ＥＸＡＭＰＬＥ.test, whose nameprep form is
# example.test) serves the clients that send example.test or EXAMPLE.TEST
# (or ｅｘａｍｐｌｅ.test: the lookup folds a non-ASCII name too), and
# xedgectl finds its users under any form of the name. Before, the
# configured name was only lowered in ASCII and no client matched it.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 7

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
xedge_alive
ok $? "xedge is still running"
