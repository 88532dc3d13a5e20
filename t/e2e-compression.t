#!/bin/bash
# e2e-compression.t: XEP-0138 stream compression (zlib), off by default (it
# shares a compression context between what an attacker can send and the
# session's secrets, as in CRIME/BREACH). When a domain enables it, it is
# offered after authentication: a client that compresses (t/lib/raw_client.py
# with Python's zlib) binds and gets a message back from Prosody; a client
# that does not is spliced as before; an unknown method gets
# <unsupported-method/>; corrupt data a stream error; a "zip bomb" is
# inflated in bounded chunks behind the pump's backpressure.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 19

PW="cz-$RANDOM-$RANDOM"
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$XEDGE_PID/status"; }
line() { printf '%s\n' "$OUT" | grep "^$1" | head -n 1; }
features() { line "FEATURES stage=$1" | sed 's/.* list=//' | tr ',' '\n'; } # one a line

rss_is_honest

sandbox_up --user "alice@example.test=$PW"
raw --jid alice@example.test --password "$PW" --no-bind
is "$RC" 0 "default: a login"
is "$(features post-auth | grep -c '^compression$')" 0 "by default no compression is offered after authentication"
sandbox_down

sandbox_up --user "alice@example.test=$PW" --enable compression
tok=$(unique_token z)
raw --jid alice@example.test --password "$PW" --compress zlib --send-self "$tok"
is "$RC" 0 "--enable compression: a compressing client's session"
is "$(features post-auth | head -n 1)" compression \
	"zlib is offered (first) in the features of the authenticated stream"
is "$(line COMPRESS)" "COMPRESS method=zlib result=compressed" "<compress/> with zlib: <compressed/>"
is "$(features post-compress | grep -c '^compression$')/$(features post-compress | grep -c '^bind$')" 0/1 \
	"the compressed stream is answered with the backend's features, without compression"
like "$(line ECHO)" "^ECHO body=$tok " "it binds, and its message to itself comes back through Prosody"
grep -q "event=session .*jid=alice@example.test .*compression=zlib" "$XEDGE_LOG"
ok $? "the session is logged as compressed"

tok=$(unique_token d)
raw --mode direct --jid alice@example.test --password "$PW" --compress zlib --send-self "$tok"
like "$(line ECHO)" "^ECHO body=$tok " "the same over Direct TLS"

tok=$(unique_token n)
raw --jid alice@example.test --password "$PW" --send-self "$tok"
like "$(line ECHO)" "^ECHO body=$tok " "a client that does not compress binds at once (its <iq/> goes to Prosody as it came)"
tok=$(unique_token s)
client --jid alice@example.test --password "$PW" --resource s1 \
	--send-to alice@example.test/s1 --body "$tok" --expect-body "$tok"
is "$RC" 0 "slixmpp, which does not compress, works as before on that domain"

tok=$(unique_token u)
raw --jid alice@example.test --password "$PW" --compress lzw --send-self "$tok"
is "$(line COMPRESS)" "COMPRESS method=lzw result=failure condition=unsupported-method" \
	"an unknown method: <failure><unsupported-method/></failure>"
like "$(line ECHO)" "^ECHO body=$tok " "... and the stream goes on uncompressed"

raw --jid alice@example.test --password "$PW" --compress zlib --send-garbage
like "$(line CLOSE)" '^CLOSE how=stream-error:undefined-condition ' \
	"bytes that are not zlib: <undefined-condition/> (XEP-0138 processing-failed)"
grep -q 'event=compression-error .*error="corrupt compressed data"' "$XEDGE_LOG"
ok $? "... logged"

# 10 MiB of white space in about 10 KiB: one read of the client. Inflated at
# once it would overrun the pump's hard cap (1 MiB) and end the session; in
# bounded chunks behind the backpressure it reaches Prosody, which skips it.
before=$(hwm)
tok=$(unique_token b)
raw --jid alice@example.test --password "$PW" --compress zlib --bomb 10 --send-self "$tok" --timeout 40
sent=$(line BOMB | sed -n 's/.* sent=\([0-9]*\).*/\1/p')
ok "$([ -n "$sent" ] && [ "$sent" -lt 65536 ] && echo 0 || echo 1)" "zip bomb: 10 MiB sent as ${sent:-?} bytes"
like "$(line ECHO)" "^ECHO body=$tok " "... the session survives it: a message after it comes back"
after=$(hwm)
growth=$((after - before))
ok "$([ "$growth" -lt 8192 ] && echo 0 || echo 1)" \
	"... xedge's peak RSS grew by $growth KiB (bound 8 MiB)"
xedge_alive
ok $? "xedge is alive"
