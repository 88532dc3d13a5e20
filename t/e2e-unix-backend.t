#!/bin/bash
# e2e-unix-backend.t: a backend server given by the path of a unix socket
# (pools[].servers[].address = "/..."; no port). The socket is a relay in
# front of the sandbox's real Prosody (t/lib/split_relay.py, passing every
# byte). Logins go through it, the health checks reach it, and a path with
# nothing behind it is a backend failure like a refused TCP connect.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 7

PW="ux-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB
BPORT=$(sed -n 's/.*name = "prosody-0"; address = "[^"]*"; port = \([0-9]*\);.*/\1/p' "$XEDGE_CONF")
SOCK="$SB/prosody.sock"
"$PY" "$XE_TOP_SRCDIR/t/lib/split_relay.py" "$SOCK" "$BPORT" NEVER-IN-A-STREAM 0 60 >"$SB/relay.out" 2>&1 &
for _ in $(seq 1 100); do grep -q READY "$SB/relay.out" && break; sleep 0.05; done
[ -S "$SOCK" ] || bail "the relay made no socket at $SOCK"

# the pool's server: the unix socket, checked every second
cp "$XEDGE_CONF" "$SB/orig.conf"
sed -e "s|address = \"127.0.0.1\"; port = $BPORT;|address = \"$SOCK\";|" \
	-e 's|{ name = "main";|{ name = "main"; health = { interval = 1; };|' "$SB/orig.conf" >"$XEDGE_CONF"
grep -q "address = \"$SOCK\";" "$XEDGE_CONF" || bail "could not point the pool at $SOCK"
out=$(ctl reload 2>&1)
ok $? "reload: the backend is the unix socket $SOCK" || diag "$out"

client --jid alice@example.test --password "$PW" --resource ux
is "$RC" 0 "alice logs in through the unix socket"
like "$(grep 'event=session .*jid=alice@example.test ' "$XEDGE_LOG" | tail -n 1)" 'backend=prosody-0$' "... on prosody-0"
sleep 1.5
like "$(ctl backend list)" "name=prosody-0 .*state=up" "the health checks reach it: up"

# nothing behind the path
sed -e "s|address = \"127.0.0.1\"; port = $BPORT;|address = \"$SB/nothing.sock\";|" \
	-e 's|{ name = "main";|{ name = "main"; health = { interval = 0; };|' "$SB/orig.conf" >"$XEDGE_CONF"
ctl reload >/dev/null 2>&1
client --jid alice@example.test --password "$PW" --resource none
is "$(result condition)" "remote-connection-failed" "a socket path with nothing behind it: <remote-connection-failed/>"
like "$(grep 'event=backend-failed' "$XEDGE_LOG" | tail -n 1)" 'backend=prosody-0 reason="(no such file or directory|connection refused)"' \
	"... logged as a backend failure"

printf 'pools = ( { name = "main"; secret_file = "%s"; servers = ( { name = "s"; address = "/tmp/s.sock"; port = 5222; } ); } );\n' "$SB/secret" >"$SB/bad.part"
out=$("$XE_TOP_BUILDDIR/src/xedge" -t -c <(sed '/^pools = (/,/^);/d' "$SB/orig.conf"; cat "$SB/bad.part") 2>&1)
like "$out" 'port: a unix socket \(address "/\.\.\."\) has no port' "a unix socket with a port is refused by xedge -t"
