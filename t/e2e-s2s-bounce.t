#!/bin/bash
# e2e-s2s-bounce.t: when xedge cannot federate for a backend, the backend's
# bounces say why (issue 21, item 3). xedge tells the Prosody glue
# (contrib/prosody/mod_xedge_s2s.lua) what failed in <db:result
# type='error'> (condition, type, text); the glue bounces the queued
# stanzas with them instead of a generic "dialback authentication failed",
# and Prosody's end of the link (</stream:stream>) is the normal end there,
# not a not-well-formed stream. a.test on 127.0.0.11 with a real Prosody
# behind it and the test DNS server (dnsmasq) for every other domain.
# Then s2s settings changed by reload, each observed in the next bounce
# (item 5): default_policy, peers (a static route), timeouts.s2s_handshake,
# dns_servers and timeouts.dns (a DNS server that never answers),
# dialback_secret_file (the keys it verifies).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_* are set by fed_ports, fed_sandbox

plan 27

FED_SEND="$XE_TOP_SRCDIR/t/lib/fed_send.py"
PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ports a
# closed.test: an address where nothing listens
fed_dns srv:closed.test=host.closed.test:1 a:host.closed.test=127.0.0.1
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --dns "$FED_DNS" \
	--conf 's2s = { peers = (
	  { domain = "refused.test"; policy = "refuse"; }
	); };'

# send TO...: alice sends one message to each; OUT, RC
send() {
	local a=()
	for t in "$@"; do a+=(--to "$t"); done
	OUT=$(timeout -k 2 60 "$PY" "$FED_SEND" --jid alice@a.test --password "$PW" \
		--server "$A_XEDGE_C2S" --cafile "$A_CAFILE" --timeout 20 "${a[@]}" 2>"$FED_DIR/send.err")
	RC=$?
	diag "fed_send.py $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
}
bounce() { printf '%s\n' "$OUT" | grep "^BOUNCE from=$1" | head -n 1; }

send bob@nowhere.test
is "$RC" 0 "a message to a domain that does not resolve bounces"
like "$OUT" 'RESULT=bounced n=1 seconds=[0-4]\.' "... at once (under 5 s)"
like "$(bounce bob@nowhere.test)" 'type=cancel condition=remote-server-not-found ' \
	"... with <remote-server-not-found/>, type cancel"
like "$(bounce bob@nowhere.test)" 'text=.*DNS:_no_server_found_for_nowhere\.test' \
	"... and the text says what happened: no server in DNS for nowhere.test"
bounce bob@nowhere.test | grep -q 'dialback_authentication_failed'
ok $((!$?)) "... not 'dialback authentication failed'"

send carol@closed.test
like "$(bounce carol@closed.test)" 'condition=remote-server-not-found text=.*cannot_connect_to_127\.0\.0\.1:1' \
	"a domain whose server refuses the connection: the bounce says it could not connect"

send dave@refused.test
like "$(bounce dave@refused.test)" 'condition=policy-violation text=.*refused_by_policy' \
	"a domain refused by policy: <policy-violation/> and the text says so"

sleep 0.5
log=$A_XEDGE_LOG
is "$(count_lines "$log" 'kind=s2s-backend.*condition=not-well-formed|not-well-formed.*kind=s2s-backend')" 0 \
	"xedge logs no not-well-formed stream on the backend links: Prosody's end of the stream is the normal end"
is "$(count_lines "$log" 'event=stream-error kind=s2s-backend')" 0 \
	"xedge sends no stream error to the backend"
like "$(grep 'event=s2s-dns-failed' "$log" | head -n 1)" 'remote=nowhere.test status=nxdomain' \
	"xedge logs the DNS failure"
like "$(grep 'event=s2s-connect-failed' "$log" | head -n 1)" 'remote=closed.test' \
	"xedge logs the failed connection"
plog=$A_DIR/prosody-0/prosody.log
grep -q 'xedge could not federate a.test -> nowhere.test: remote-server-not-found' "$plog"
ok $? "the glue logs xedge's answer for nowhere.test"
is "$(grep -c 'dialback authentication failed' "$plog")" 0 \
	"Prosody never took xedge's answer for a failed dialback"

# --- s2s settings on reload
cp "$A_XEDGE_CONF" "$FED_DIR/a.conf.orig"
# reload_with PERL-EXPRESSION: the original configuration, edited; xedgectl reload
reload_with() {
	cp "$FED_DIR/a.conf.orig" "$A_XEDGE_CONF"
	perl -0pi -e "$1" "$A_XEDGE_CONF"
	out=$($A_XEDGECTL reload 2>&1)
	like "$out" 'reload result=ok' "reload: $2"
}
reload_with 's/^s2s = \{$/s2s = { default_policy = "refuse";/m' 's2s.default_policy = "refuse"'
send bob@nowhere.test
like "$(bounce bob@nowhere.test)" 'condition=policy-violation text=.*refused_by_policy' \
	"... a message to nowhere.test now bounces as refused by policy"
reload_with 's/(\{ domain = "refused.test"; policy = "refuse"; \})/$1, { domain = "nowhere.test"; address = "127.0.0.1"; port = 1; }/' \
	"s2s.peers: a static route for nowhere.test"
send bob@nowhere.test
like "$(bounce bob@nowhere.test)" 'condition=remote-server-not-found text=.*cannot_connect_to_127\.0\.0\.1:1' \
	"... a message to nowhere.test now goes to the static route (and bounces: nothing listens there)"
# silent.test: a server that accepts and never answers
SILENT_PORT=$(pick_base_port) || bail "no free port"
"$PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
conns = []
while True:
    conns.append(s.accept()[0])
' "$SILENT_PORT" &
fed_track $!
export SILENT_PORT
reload_with 's/(\{ domain = "refused.test"; policy = "refuse"; \})/$1, { domain = "silent.test"; address = "127.0.0.1"; port = $ENV{SILENT_PORT}; }/; $_ .= "timeouts = { s2s_handshake = 1; };\n"' \
	"timeouts.s2s_handshake = 1 and a route to a server that never answers"
t0=$(now_ms)
send eve@silent.test
t1=$(now_ms)
like "$(bounce eve@silent.test)" 'type=wait condition=remote-server-timeout text=.*timeout:_no_answer_from_127\.0\.0\.1:[0-9]+_within_the_handshake_time' \
	"... a message to it bounces with <remote-server-timeout/>, type wait"
ok $((t1 - t0 > 6000)) "... after the new handshake timeout (1 s), not the old one (30 s): $((t1 - t0)) ms"
# a DNS server that never answers, and timeouts.dns = 1
DNS_SILENT=$(pick_base_port) || bail "no free port"
"$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    s.recvfrom(4096)
' "$DNS_SILENT" &
fed_track $!
export DNS_SILENT
reload_with 's/dns_servers = "[^"]*";/dns_servers = "127.0.0.1:$ENV{DNS_SILENT}";/; $_ .= "timeouts = { dns = 1; };\n"' \
	"s2s.dns_servers: a server that never answers; timeouts.dns = 1"
t0=$(now_ms)
send frank@nowhere.test
t1=$(now_ms)
like "$(bounce frank@nowhere.test)" 'type=wait condition=remote-server-timeout text=.*DNS:_no_answer_in_time_for_nowhere\.test' \
	"... a message to nowhere.test bounces: no answer in time from the new DNS server"
ok $((t1 - t0 > 6000)) "... after the new DNS timeout (1 s): $((t1 - t0)) ms"


# --- s2s.dialback_secret_file on reload: the keys xedge verifies are the
# new secret's (db:verify from c.test, XEP-0185 keys computed here)
SID=stream-$RANDOM-$RANDOM
key_for() { # SECRET_FILE: the key for (c.test receiving, a.test originating, SID)
	"$PY" -c 'import hashlib, hmac, sys
s = open(sys.argv[1], "rb").read().rstrip()
k = hashlib.sha256(s).hexdigest().encode()
print(hmac.new(k, ("c.test a.test " + sys.argv[2]).encode(), hashlib.sha256).hexdigest())' "$1" "$SID"
}
verify() { # KEY: db:verify of KEY on a.test's s2s listener; OUT
	s2s_peer --server "$A_XEDGE_S2S" --to a.test --cafile "$A_CAFILE" --from c.test --wait 5 \
		--stream-id "$SID" --dbkey "$1" verify
}
k1=$(key_for "$A_DIR/dialback.secret")
verify "$k1"
like "$OUT" 'DB_VERIFY type=valid' "a key made with the dialback secret verifies"
openssl rand -hex 32 >"$FED_DIR/new.secret"
NEW_SECRET=$FED_DIR/new.secret
export NEW_SECRET
reload_with 's/dialback_secret_file = "[^"]*";/dialback_secret_file = "$ENV{NEW_SECRET}";/' \
	"s2s.dialback_secret_file: another secret"
verify "$k1"
like "$OUT" 'DB_VERIFY type=invalid' "... the old secret's key is now invalid"
verify "$(key_for "$NEW_SECRET")"
like "$OUT" 'DB_VERIFY type=valid' "... and the new secret's key valid"
