#!/bin/bash
# e2e-phone-prosody.t: a phone's day through xedge, with the sandbox's Prosody
# as operators run it (Debian's default modules plus mam): stream management
# with resumption across a cut connection, across a backend restart (refused
# cleanly, the phone falls back to a new session and loses nothing) and
# across xedge's graceful restart; carbons between two clients of one user,
# an archive query, client state indication, blocking; the phone's own
# password change, answered by xedge (account_management), not by the backend. The clients are slixmpp
# (t/lib/phone_day.py); every check is on XMPP behaviour.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/phone.sh"

plan 13

PHONE_PW="ph-$RANDOM-$RANDOM"
PHONE_JID=alice@example.test
PHONE_FRIEND=bob@example.test
sandbox_up --user "$PHONE_JID=$PHONE_PW" --user "$PHONE_FRIEND=$PHONE_PW" \
	--conf 'timeouts = { shutdown_grace = 1; };'

phone features
like "$(offers)" '^sm=1 csi=1 carbons=1 mam=1 blocking=1 vcard=1 pep=1 private=1 ping=1$' \
	"after login through xedge: stream management, CSI, carbons, MAM, blocking, vCard, PEP, private storage, ping"

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

phone resume --expect fresh --between "$SANDBOX restart-backend $XE_SANDBOX_DIR_SB prosody-0"
is "$RESULT" "RESULT=ok resumed=no got=3" \
	"backend restarted: resumption refused, a new session, the three messages from offline storage, once"

phone carbons
is "$RESULT" "RESULT=ok" "carbons: the second client sees what the first receives and sends"

phone mam
like "$RESULT" '^RESULT=ok archived=[0-9]+$' "an archive query finds the messages both ways"

phone csi
is "$RESULT" "RESULT=ok" "CSI: a chat state is held while inactive, delivered on active"

phone blocking
is "$RESULT" "RESULT=ok" "blocking: a blocked contact's message is not delivered; unblocked, it is"

# The phone's "change password": xedge answers it (account_management, on
# by default), since behind xedge the backend holds no passwords: the new
# password works at the next login and the old one no longer does
client --jid "$PHONE_JID" --password "$PHONE_PW" --change-password "new-$PHONE_PW"
like "$(printf '%s\n' "$OUT" | grep '^PASSWD')" '^PASSWD result=ok' \
	"the phone's own password change is answered by xedge"
client --jid "$PHONE_JID" --password "new-$PHONE_PW"
is "$(result RESULT)" ok "... the new password logs in"
client --jid "$PHONE_JID" --password "$PHONE_PW"
is "$(result RESULT)" failure "... the old one no longer does"
