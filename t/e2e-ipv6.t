#!/bin/bash
# e2e-ipv6.t: the listeners on IPv6 (::1): STARTTLS and Direct TLS logins,
# with the backend on IPv6 too.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 6

PW="v6-$RANDOM-$RANDOM"
sandbox_up --address ::1 --user "alice@example.test=$PW"
like "$XEDGE_C2S" '^::1:[0-9]+$' "sandbox listens on ::1 ($XEDGE_C2S)"

client --jid alice@example.test --password "$PW" --resource v6
is "$RC" 0 "STARTTLS login over IPv6"
is "$(result jid)" "alice@example.test/v6" "bound over IPv6"
client --mode direct --jid alice@example.test --password "$PW" --resource v6d
is "$RC" 0 "Direct TLS login over IPv6"
is "$(result alpn)" "xmpp-client" "Direct TLS over IPv6: ALPN xmpp-client"
grep -q 'event=session peer=\[::1\]' "$XEDGE_LOG"
ok $? "xedge logs the IPv6 peer address"
