#!/bin/bash
# t/e2e-prosody-s2s-glue.t: contrib/prosody/mod_xedge_s2s.lua, the backend
# side of federation, in a real Prosody 0.12 on loopback (no xedge: the
# probe, t/lib/s2s_glue_probe.py, plays xedge byte by byte).
#   inbound: an s2s assertion in <db:result> is checked (valid -> 'valid'
#     and the stream carries stanzas; forged or replayed -> 'invalid' and
#     <not-authorized/>); a plain dialback key goes on to mod_dialback;
#   outbound: a stanza for a remote domain makes Prosody connect to
#     xedge_s2s_route (the probe listens there), not to DNS;
#   the module refuses to load without a good secret.
. "${XE_TOP_SRCDIR:-.}/t/lib/sandbox.sh"

PROSODY=${PROSODY:-$(command -v prosody)}
[ -n "$PROSODY" ] || bail "prosody not found"
PROBE="$XE_TOP_SRCDIR/t/lib/s2s_glue_probe.py"

XE_SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-s2s-glue.XXXXXX") || bail "mktemp failed"
D=$XE_SANDBOX_DIR
XEDGE_PIDS=
cleanup() {
	local p
	for p in $(cat "$D"/*/prosody.pid 2>/dev/null) $PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	if [ "$_tap_failed" -gt 0 ] && [ -f "$D/p/prosody.log" ]; then
		diag "last lines of Prosody's log:" "$(tail -n 40 "$D/p/prosody.log" | sed 's/^/  /')"
	fi
	_sandbox_cleanup
}
PIDS=
trap cleanup EXIT
trap 'exit 130' INT TERM

BASE=$(pick_base_port) || bail "no free port range"
C2S=$BASE S2S=$((BASE + 1)) ROUTE=$((BASE + 2))

# write_config DIR SECRET_FILE: a Prosody serving a.test with the glue
write_config() {
	mkdir -p "$1/data"
	cat >"$1/prosody.cfg.lua" <<EOF
-- written by t/e2e-prosody-s2s-glue.t
run_as_root = true
pidfile = "$1/prosody.pid"
data_path = "$1/data"
plugin_paths = { "$XE_TOP_SRCDIR/contrib/prosody" }
interfaces = { "127.0.0.1" }
c2s_ports = { $C2S }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { $S2S }
s2s_direct_tls_ports = { }
modules_disabled = { "offline" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = false
s2s_secure_auth = false
log = {
  { levels = { min = "debug" }, to = "file", filename = "$1/prosody.log" };
  { levels = { min = "info" }, to = "console" };
}
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "posix"; "xedge_s2s"; }
authentication = "xedge"
xedge_secret_file = "$2"
xedge_s2s_route = "127.0.0.1:$ROUTE"
storage = "internal"
VirtualHost "a.test"
-- components do not inherit the global modules_enabled: each names the glue
Component "conference.a.test" "muc"
  modules_enabled = { "xedge_s2s" }
EOF
}

# start_prosody DIR: started in the background, its pid in PIDS
start_prosody() {
	"$PROSODY" -F --config "$1/prosody.cfg.lua" </dev/null >"$1/console.out" 2>&1 &
	PIDS="$PIDS $!"
}

plan 17

# --- a short secret: the module refuses to load
printf 'short\n' >"$D/short.secret"
write_config "$D/short" "$D/short.secret"
start_prosody "$D/short"
for _ in $(seq 1 50); do
	grep -q "xedge_secret_file.*refused" "$D/short/prosody.log" "$D/short/console.out" 2>/dev/null && break
	sleep 0.1
done
like "$(cat "$D/short/prosody.log" "$D/short/console.out" 2>/dev/null | grep -m1 'mod_xedge_s2s\|xedge_secret_file')" \
	"xedge_secret_file .* refused: secret is 5 bytes, at least 32" \
	"a secret under 32 bytes: mod_xedge_s2s refuses to load"
p=$(cat "$D/short/prosody.pid" 2>/dev/null) && kill -TERM "$p" 2>/dev/null
for _ in $(seq 1 50); do _port_free "$S2S" && _port_free "$C2S" && break; sleep 0.1; done

# --- the real one
openssl rand -hex 32 >"$D/secret"
write_config "$D/p" "$D/secret"
start_prosody "$D/p"
for _ in $(seq 1 100); do
	! _port_free "$S2S" && ! _port_free "$C2S" && break
	sleep 0.1
done
_port_free "$S2S" && bail "Prosody did not listen on $S2S: $(tail -5 "$D/p/console.out" "$D/p/prosody.log" 2>/dev/null)"
grep -q "outgoing s2s routed to 127.0.0.1:$ROUTE" "$D/p/prosody.log" ||
	bail "mod_xedge_s2s did not load: $(grep -i 'error' "$D/p/prosody.log" | tail -3)"

# (the component's line may come after the host's: wait for it, 5 s at most)
for _ in $(seq 1 50); do
	grep -q "xedge s2s assertions accepted for conference.a.test; outgoing s2s routed to 127.0.0.1:$ROUTE" "$D/p/prosody.log" && break
	sleep 0.1
done
grep -q "xedge s2s assertions accepted for conference.a.test; outgoing s2s routed to 127.0.0.1:$ROUTE" "$D/p/prosody.log"
ok $? "the glue loads on a component too (conference.a.test)"

out=$(timeout 60 "$PY" "$PROBE" "$D/secret" "$C2S" "$S2S" "$ROUTE" 2>&1)
check() { echo "$out" | sed -n "s/^CHECK $1=//p"; }
is "$(check login)" ok "alice@a.test logs in (mod_auth_xedge, for the test's user)"
is "$(check valid)" valid "inbound: a valid s2s assertion (b.test a.test) gets <db:result type='valid'/>"
is "$(check delivered)" yes "... and a message from bob@b.test on that stream reaches alice@a.test"
grep -q "xedge s2s assertion accepted for b.test -> a.test" "$D/p/prosody.log"
ok $? "... logged as accepted"
is "$(check bad)" invalid "an assertion signed with another secret: type='invalid'"
is "$(check bad_closed)" yes "... then <not-authorized/> and the stream closed"
grep -q "xedge s2s assertion rejected for b.test -> a.test: bad-signature" "$D/p/prosody.log"
ok $? "... logged with the reason (bad-signature)"
is "$(check replay)" invalid "the same assertion again (replay): type='invalid'"
is "$(check replay_closed)" yes "... then <not-authorized/> and the stream closed"
grep -q "xedge s2s assertion rejected for b.test -> a.test: replayed" "$D/p/prosody.log"
ok $? "... logged as replayed"
is "$(check out_header)" "from=a.test to=b.test" \
	"outbound: a message for b.test makes Prosody connect to xedge_s2s_route, stream from=a.test to=b.test"
is "$(check out_message)" hello-to-b "... and, its dialback key accepted there, the message goes over that link"
is "$(check fallthrough)" "db:verify key=0123456789abcdef" \
	"a plain dialback key inbound goes to mod_dialback (its db:verify comes over the route)"
is "$(check bounce)" remote-server-not-found \
	"the route down: a message for c.test bounces with <remote-server-not-found/>"
grep -Eq "_xmpp-server._tcp.[bc].test|[bc].test IN (A|AAAA|SRV)" "$D/p/prosody.log"
ok $((!$?)) "no DNS lookup for b.test or c.test"
[ -n "$out" ] && [ "$_tap_failed" -gt 0 ] && diag "probe output:" "$out"
