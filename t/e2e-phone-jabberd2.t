#!/bin/bash
# e2e-phone-jabberd2.t: a phone's day through xedge with the sandbox's
# jabberd2 as Debian ships it: it offers no stream management, carbons,
# archive or client state indication (the phone must do without, and xedge
# adds none of them), and blocking (XEP-0191, mod_privacy) works through
# xedge. slixmpp clients (t/lib/phone_day.py).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/phone.sh"

plan 3

PHONE_PW="ph-$RANDOM-$RANDOM"
PHONE_JID=alice@example.test
PHONE_FRIEND=bob@example.test
sandbox_up --backends jabberd2 --user "$PHONE_JID=$PHONE_PW" --user "$PHONE_FRIEND=$PHONE_PW"

phone features
is "$RESULT" "RESULT=ok" "login through xedge, the features probed"
like "$(offers)" '^sm=0 csi=0 carbons=0 mam=0 blocking=1 vcard=1 ' \
	"jabberd2 offers blocking and vCard, and no stream management, CSI, carbons or MAM"

phone blocking
is "$RESULT" "RESULT=ok" "blocking: a blocked contact's message is not delivered; unblocked, it is"
