#!/bin/bash
# e2e-stream.t: RFC 6120 stream handling at the edge, byte by byte: header
# checks, restricted XML, limits, TLS required, the STARTTLS command
# injection, and the restart at the exact byte after SASL (with pipelining).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 15

PW="stream-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW"
PROBE="$XE_TOP_SRCDIR/t/lib/stream_probe.py"

probe() { # probe CASE [ARGS] -> VERDICT
	local out
	out=$(timeout 30 "$PY" "$PROBE" "$XEDGE_C2S" "$@" 2>&1)
	printf '%s\n' "$out" | grep '^VERDICT=' | sed 's/^VERDICT=//'
	printf '%s\n' "$out" | grep -q '^VERDICT=' || diag "$out"
}

is "$(probe host-unknown)" "error=host-unknown closed=True" "stream to a domain not served: <host-unknown/>, then closed"
is "$(probe doctype)" "error=restricted-xml closed=True" "DOCTYPE: <restricted-xml/>"
is "$(probe billion-laughs)" "error=restricted-xml closed=True" "entity declarations (billion laughs): <restricted-xml/>"
is "$(probe bad-namespace)" "error=invalid-namespace closed=True" "content namespace jabber:server on c2s: <invalid-namespace/>"
is "$(probe no-version)" "error=unsupported-version closed=True" "header without version='1.0': <unsupported-version/>"
is "$(probe stanza-before-tls)" "error=policy-violation closed=True" "a stanza before TLS: <policy-violation/>"
is "$(probe not-well-formed)" "error=not-well-formed closed=True" "mismatched tags: <not-well-formed/>"
is "$(probe comment)" "error=restricted-xml closed=True" "an XML comment: <restricted-xml/>"
is "$(probe oversized)" "error=policy-violation closed=True" "a 100 KB element before authentication: <policy-violation/>"
is "$(probe byte-by-byte)" "proceed=True mechanisms=True" "header and <starttls/> sent one byte at a time"
is "$(probe starttls-injection alice@example.test "$PW")" "proceed=True features=True success=False" \
	"<auth/> pipelined after <starttls/> is discarded, never answered inside TLS"
grep -q 'event=starttls-injection' "$XEDGE_LOG"
ok $? "the dropped bytes are logged"
is "$(probe pipelined-restart alice@example.test "$PW")" \
	"success=True bound=alice@example.test/piped closed=True" \
	"<auth/>, the restarted header and a bind request in one TLS record: restart at the exact byte, bound"
is "$(probe tls-alert)" "alert=True closed=True" \
	"a broken ClientHello: the TLS alert xedge writes as it closes arrives before the close"
kill -0 "${XEDGE_PIDS%%,*}"
ok $? "xedge is still running"
