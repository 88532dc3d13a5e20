#!/bin/bash
# e2e-phone-ejabberd.t: a phone's day through xedge with the sandbox's
# ejabberd as Debian ships it (plus mod_mam): stream management with
# resumption across a cut connection, across xedge's graceful restart and,
# refused cleanly with a fallback that loses nothing, across a backend
# restart; carbons, an archive query, client state indication, blocking.
# slixmpp clients (t/lib/phone_day.py); every check is on XMPP behaviour.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/phone.sh"

plan 10

PHONE_PW="ph-$RANDOM-$RANDOM"
PHONE_JID=alice@example.test
PHONE_FRIEND=bob@example.test
sandbox_up --backends ejabberd --user "$PHONE_JID=$PHONE_PW" --user "$PHONE_FRIEND=$PHONE_PW" \
	--conf 'timeouts = { shutdown_grace = 1; };'

phone features
like "$(offers)" '^sm=1 csi=1 carbons=1 mam=1 blocking=1 vcard=1 pep=1 ' \
	"after login through xedge: stream management, CSI, carbons, MAM, blocking, vCard, PEP"

phone resume --expect resumed
is "$RESULT" "RESULT=ok resumed=yes got=3" \
	"connection cut, three messages meanwhile: resumed on a new connection, each delivered once"

phone resume --expect resumed --no-cut --between "$SANDBOX restart-xedge $XE_SANDBOX_DIR_SB"
is "$RESULT" "RESULT=ok resumed=yes got=3" \
	"xedge restarted gracefully (<system-shutdown/>): the phone resumes through the new xedge, nothing lost"
like "$(printf '%s\n' "$OUT" | grep '^ENDED')" '^ENDED by the server condition=system-shutdown$' \
	"... after the grace period its session ended with <system-shutdown/>"
XEDGE_PID=$(sed -n 's/^\([0-9]*\) xedge$/\1/p' "$XE_SANDBOX_DIR_SB/pids")
XEDGE_PIDS="$XEDGE_PID,$XEDGE_PIDS"
xedge_alive
ok $? "... the new xedge runs (pid $XEDGE_PID)"

phone resume --expect fresh --between "$SANDBOX restart-backend $XE_SANDBOX_DIR_SB ejabberd-0"
is "$RESULT" "RESULT=ok resumed=no got=3" \
	"backend restarted: resumption refused, a new session, the three messages from offline storage, once"
XEDGE_PIDS="$XEDGE_PIDS,$(sed -n 's/^\([0-9]*\) ejabberd-0$/\1/p' "$XE_SANDBOX_DIR_SB/pids")"

phone carbons
is "$RESULT" "RESULT=ok" "carbons: the second client sees what the first receives and sends"

phone mam
like "$RESULT" '^RESULT=ok archived=[0-9]+$' "an archive query finds the messages both ways"

phone csi
is "$RESULT" "RESULT=ok" "CSI: a chat state is held while inactive, delivered on active"

phone blocking
is "$RESULT" "RESULT=ok" "blocking: a blocked contact's message is not delivered; unblocked, it is"
