#!/bin/bash
# e2e-login.t: log in through xedge (real Prosody behind it) with each SASL
# mechanism over STARTTLS, and over Direct TLS (ALPN xmpp-client).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 28

PW="login-$RANDOM-$RANDOM-pw"
sandbox_up --user "alice@example.test=$PW" --user "Straße@example.test=$PW"

# Before TLS only STARTTLS is offered (TLS required, no SASL in the clear);
# after TLS the configured mechanisms, strongest first.
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-256 --resource raw
is "$RC" 0 "raw STARTTLS + SCRAM-SHA-256 login (server signature verified) + bind"
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=pre-tls')" '^FEATURES stage=pre-tls list=starttls$' \
	"only <starttls/> before TLS"
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-tls')" 'list=mechanisms:SCRAM-SHA-256-PLUS\+SCRAM-SHA-1-PLUS\+SCRAM-SHA-256\+SCRAM-SHA-1\+PLAIN,sasl-channel-binding:tls-exporter\+tls-server-end-point$' \
	"after STARTTLS (TLS 1.3): the -PLUS variants, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN; binding types tls-exporter, tls-server-end-point (XEP-0440)"
like "$(printf '%s\n' "$OUT" | grep '^FEATURES stage=post-auth')" '(^|[=,])bind(,|$)' \
	"restarted stream (from the backend) offers resource binding"
is "$(result jid)" "alice@example.test/raw" "raw client bound alice@example.test/raw"

# The raw client does not bind ("n" in its GS2 header): plain SCRAM.
raw --jid alice@example.test --password "$PW" --mech SCRAM-SHA-1 --resource raw1
is "$RC" 0 "raw STARTTLS + SCRAM-SHA-1 login (no channel binding) + bind"

# slixmpp binds whenever it can ("y" when no -PLUS is offered): it is given
# the -PLUS variants (over TLS 1.3 it sends tls-unique, accepted for clients
# that predate RFC 9266, see sasl.tls13_tls_unique).
for mech in SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS PLAIN; do
	client --jid alice@example.test --password "$PW" --mech "$mech" --resource "r-$mech"
	is "$RC" 0 "STARTTLS login with $mech"
	is "$(result mech)" "$mech" "$mech was the mechanism used"
	like "$(result tls)" '^TLSv1\.[23]$' "$mech: TLS 1.2+ ($(result tls))"
	is "$(result jid)" "alice@example.test/r-$mech" "$mech: session bound as alice@example.test/r-$mech"
done

# Direct TLS: slixmpp picks the strongest mechanism offered by itself.
client --mode direct --jid alice@example.test --password "$PW" --resource direct
is "$RC" 0 "Direct TLS login"
is "$(result mech)" "SCRAM-SHA-256-PLUS" "Direct TLS: default choice is SCRAM-SHA-256-PLUS"
is "$(result alpn)" "xmpp-client" "Direct TLS: ALPN xmpp-client negotiated"
is "$(result jid)" "alice@example.test/direct" "Direct TLS: bound alice@example.test/direct"

# Names through nodeprep, as Prosody prepares them: the user added as
# Straße is strasse@example.test, and logs in by any form of the name (the
# raw client sends the name as given); a name that fails nodeprep is a
# malformed request, not a wrong password.
raw --jid "STRASSE@example.test" --password "$PW" --mech PLAIN --resource np1
is "$RC" 0 "PLAIN as STRASSE@example.test (the user added as Straße)"
is "$(result jid)" "strasse@example.test/np1" "... bound as strasse@example.test, the prepared name"
raw --jid "Straße@example.test" --password "$PW" --mech SCRAM-SHA-256 --resource np2
is "$RC" 0 "SCRAM-SHA-256 as Straße@example.test"
is "$(result jid)" "strasse@example.test/np2" "... the same user"
raw --jid "a＠b@example.test" --password "$PW" --mech PLAIN --no-bind
is "$RC" 1 "PLAIN as a＠b (a fullwidth @: nodeprep prohibits it): refused"
like "$(printf '%s\n' "$OUT" | grep '^SASL n=1')" 'condition=malformed-request' "... with <malformed-request/>"
