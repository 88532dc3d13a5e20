#!/bin/bash
# e2e-backpressure.t: a client that stops reading does not make xedge buffer
# what the backend sends it. xedge stops reading the backend above the high
# water mark and resumes below the low one; nothing is lost.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 7

rss_is_honest
PW="bp-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --user "bob@example.test=$PW"
COUNT=600
SIZE=32768
BACKEND_PORT=$(sed -n 's/.*name = "prosody-0"; address = "[^"]*"; port = \([0-9]*\);.*/\1/p' "$XEDGE_CONF")
OUT=$(timeout 150 "$PY" "$XE_TOP_SRCDIR/t/lib/flood.py" "$XEDGE_C2S" "$XEDGE_CERT" "$PW" \
	"$XEDGE_PID" "$COUNT" "$SIZE" "$BACKEND_PORT" 2>&1)
diag "$OUT"
val() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p"; }

is "$(val RECEIVED)" "$COUNT" "the reader got all $COUNT messages ($((COUNT * SIZE / 1048576)) MiB) once it read"
is "$(val IN_ORDER)" "yes" "in order"
is "$(val INTACT)" "yes" "intact"
is "$(val BOB_PONG)" "yes" "the sender's session is unharmed"
unread=$(val XEDGE_BACKEND_UNREAD)
ok "$([ "${unread:-0}" -ge 65536 ] && echo 0 || echo 1)" \
	"while the reader stalls, xedge leaves the backend's bytes unread in the kernel (${unread:-?} bytes queued)"
before=$(val XEDGE_RSS_KIB_BEFORE)
peak=$(val XEDGE_RSS_KIB_PEAK)
growth=$((${peak:-999999} - ${before:-0}))
ok "$([ "$growth" -lt 8192 ] && echo 0 || echo 1)" \
	"xedge's RSS grew by ${growth} KiB while the reader stalled (bound 8 MiB; $((COUNT * SIZE / 1024)) KiB were sent)"
xedge_alive
ok $? "xedge is still running"
