#!/bin/bash
# e2e-reload-c2s.t: each c2s setting that a reload changes, changed, reloaded
# (xedgectl reload) and observed in what the next client gets: the offered
# mechanisms (sasl, a domain's own), iq_auth, register, compression,
# client_ca (EXTERNAL), a domain added and removed, tls.min_version,
# sasl.max_attempts, the limits (max_stanza_preauth, max_xml_depth,
# max_attributes, max_sasl_bytes, max_connections_per_address,
# max_preauth_connections, the connection rate), the timeouts
# (preauth_idle, tls_handshake, auth, backend_handshake, shutdown_grace),
# the lockout (address_threshold, account_threshold, delay_ms,
# lockout_time), log_level, a pool's retries and weights, a listener's
# proxy_protocol and proxy_from,
# registrations_per_address, scram_iterations and max_stanza_postauth (with
# in-band registration). The
# settings that need a restart (metrics, control, routing, workers,
# user_store.map_size_mb, log_to, user) are refused by name, and the running
# configuration goes on. One sandbox; xedge stops at the end (SIGTERM).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 119

PW="rc-$RANDOM-$RANDOM"
sandbox_up --user "alice@example.test=$PW" --enable external,iq-auth,register --log-level info
SB=$XE_SANDBOX_DIR_SB
PROBE="$XE_TOP_SRCDIR/t/lib/conn_probe.py"
probe() { timeout 60 "$PY" "$PROBE" "$@" 2>&1; }
# ge A B: A >= B (decimals)
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# The template: the sandbox's file without its sasl and lockout groups and
# with @DOM@ for the options of the domain's entry.
grep -q 'register = true; }' "$XEDGE_CONF" || bail "unexpected domain entry in $XEDGE_CONF"
sed -e '/^sasl = /d' -e '/^lockout = /d' -e '/iq_auth = true;/d' -e '/client_ca = /d' \
	-e 's/register = true; }/@DOM@ }/' "$XEDGE_CONF" >"$SB/template.conf"
CA_LINE="client_ca = \"$SB/ca.pem\";"
ML='mechanisms = [ "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "EXTERNAL" ];'
MECHS="sasl = { $ML };"
NOLOCK='lockout = { delay_ms = 0; address_threshold = 0; account_threshold = 0; };'
# install DOMOPTS [LINE...]: the template with DOMOPTS in the domain's entry
# and LINEs appended (a sasl and a lockout group unless given)
install() {
	local dom=$1 l
	shift
	sed "s|@DOM@|$dom|" "$SB/template.conf" >"$SB/next.conf"
	case "$*" in *"sasl = "*) ;; *) echo "$MECHS" >>"$SB/next.conf" ;; esac
	case "$*" in *"lockout = "*) ;; *) echo "$NOLOCK" >>"$SB/next.conf" ;; esac
	for l in "$@"; do echo "$l" >>"$SB/next.conf"; done
	cp "$SB/next.conf" "$XEDGE_CONF"
}
# reload_ok DESCRIPTION DOMOPTS [LINE...]: install, reload, expect ok
reload_ok() {
	local d=$1 out
	shift
	install "$@"
	out=$(ctl reload 2>&1)
	like "$?/$out" "^0/reload result=ok generation=[0-9]+$" "reload ($d): ok" || diag "$out"
}
feats() { # feats STAGE: the feature list of that stage in $OUT
	printf '%s\n' "$OUT" | sed -n "s/^FEATURES stage=$1 list=//p" | head -n 1
}
login() { raw --jid alice@example.test --password "$PW" --mech PLAIN "$@"; }

# --- the domain's options and the sasl group ---------------------------------
reload_ok "no iq_auth, no register, no client_ca; SCRAM and PLAIN" ""
login --resource a1
is "$RC/$(feats post-tls)" "0/mechanisms:SCRAM-SHA-256+SCRAM-SHA-1+PLAIN" \
	"offered: the sasl group's mechanisms, no iq-auth, no register"
case $(feats post-auth) in *compression*) c=yes ;; *) c=no ;; esac
is "$c" no "no compression after authentication"

reload_ok "the domain's own mechanisms, iq_auth, register" \
	'mechanisms = [ "PLAIN" ]; iq_auth = true; register = true;'
login --resource a2
is "$RC/$(feats post-tls)" "0/mechanisms:PLAIN,auth,register" \
	"offered: the domain's own mechanisms, iq-auth and register"
raw --jid alice@example.test --password "$PW" --iq-auth plain --resource a3
is "$RC" 0 "... and a non-SASL login works"

reload_ok "compression" 'compression = true;'
login --resource a4 --compress zlib
like "$RC/$(feats post-auth)" "^0/(.*,)?compression(,|$)" "compression is offered after authentication"
like "$OUT" "COMPRESS method=zlib result=compressed" "... and works"

reload_ok "a sasl group of SCRAM-SHA-1 only" "" 'sasl = { mechanisms = [ "SCRAM-SHA-1" ]; };'
login --resource a5
is "$(feats post-tls)" "mechanisms:SCRAM-SHA-1" \
	"offered: SCRAM-SHA-1 alone"
is "$(result RESULT)" "failure" "... and PLAIN is refused"

# client_ca: EXTERNAL with a client certificate
client --jid alice@example.test --password unused --mech EXTERNAL \
	--certfile "$XEDGE_CLIENT_CERT" --keyfile "$XEDGE_CLIENT_KEY" --resource e1
ok "$([ "$RC" != 0 ] && echo 0 || echo 1)" "without client_ca: EXTERNAL with a client certificate fails"
reload_ok "client_ca" "$CA_LINE"
client --jid alice@example.test --password unused --mech EXTERNAL \
	--certfile "$XEDGE_CLIENT_CERT" --keyfile "$XEDGE_CLIENT_KEY" --resource e2
is "$RC" 0 "with client_ca: EXTERNAL with the client certificate logs in"

# sasl.max_attempts
reload_ok "max_attempts = 1" "" "sasl = { $ML max_attempts = 1; };"
raw --jid alice@example.test --password wrong1 --password "$PW" --mech PLAIN --resource m1
ok "$([ "$RC" != 0 ] && echo 0 || echo 1)" "max_attempts = 1: no second attempt after a failure ($(result RESULT))"
reload_ok "max_attempts = 3" "" "sasl = { $ML max_attempts = 3; };"
raw --jid alice@example.test --password wrong1 --password "$PW" --mech PLAIN --resource m2
is "$RC/$(result attempts)" "0/2" "max_attempts = 3: the second attempt logs in"

# --- a domain added, then removed ---------------------------------------------
other() { raw --jid carol@other.test --password x --mech PLAIN --insecure --resource o; }
other
is "$(result RESULT)/$(result condition)" "stream-error/host-unknown" "other.test, not served: host-unknown"
install ""
# the new entry after the first one (the line that ends the first entry)
python3 - "$SB/next.conf" "$SB" <<'PYEOF' || bail "could not add other.test"
import sys
p, sb = sys.argv[1], sys.argv[2]
s = open(p).read()
i = s.index('domains = (')
j = s.index('}\n', i) + 1
s = s[:j] + ',\n  { name = "other.test"; certificate = "%s/cert.pem"; key = "%s/key.pem"; pool = "main"; }' % (sb, sb) + s[j:]
open(p, 'w').write(s)
PYEOF
cp "$SB/next.conf" "$XEDGE_CONF"
out=$(ctl reload 2>&1)
like "$?/$out" "^0/reload result=ok" "reload (other.test added): ok" || diag "$out" "$(cat "$XEDGE_CONF")"
other
is "$(result RESULT)/$(feats post-tls)" "failure/mechanisms:SCRAM-SHA-256+SCRAM-SHA-1+PLAIN" \
	"other.test added: served (its mechanisms; carol has no account there)"
reload_ok "other.test removed" ""
other
is "$(result RESULT)/$(result condition)" "stream-error/host-unknown" "other.test removed: host-unknown again"

# --- tls.min_version ------------------------------------------------------------
tls12() {
	timeout 10 openssl s_client -connect "$XEDGE_DIRECT_TLS" -servername example.test \
		-tls1_2 -alpn xmpp-client </dev/null >"$SB/s_client.out" 2>&1
}
tls12
is "$?" 0 "before: a TLS 1.2 handshake succeeds"
reload_ok "tls.min_version = TLSv1.3" "" 'tls = { min_version = "TLSv1.3"; };'
tls12
ok "$([ $? != 0 ] && echo 0 || echo 1)" "tls.min_version = TLSv1.3: a TLS 1.2 handshake fails"
login --resource t13
is "$RC/$(result tls)" "0/TLSv1.3" "... a TLS 1.3 client logs in"

# --- limits ----------------------------------------------------------------------
reload_ok "max_stanza_preauth = 1024" "" 'limits = { max_stanza_preauth = 1024; };'
is "$(probe send "$XEDGE_C2S" 3 stanza 4000)" "ERROR=policy-violation CLOSED=yes TEXT=element_too_large" \
	"max_stanza_preauth = 1024: a 4000-byte element before authentication is refused"
reload_ok "max_stanza_preauth = 16384, max_xml_depth = 4" "" 'limits = { max_stanza_preauth = 16384; max_xml_depth = 4; };'
r=$(probe send "$XEDGE_C2S" 3 stanza 4000)
ok "$(case $r in *too_large*) echo 1 ;; *) echo 0 ;; esac)" "max_stanza_preauth = 16384: a 4000-byte element is not too large ($r)"
is "$(probe send "$XEDGE_C2S" 3 nesting 8)" "ERROR=policy-violation CLOSED=yes TEXT=XML_nesting_too_deep" \
	"max_xml_depth = 4: 8 nested elements are refused"
reload_ok "max_attributes = 4, max_sasl_bytes = 1024" "" 'limits = { max_attributes = 4; max_sasl_bytes = 1024; };'
is "$(probe send "$XEDGE_C2S" 3 attrs 8)" "ERROR=policy-violation CLOSED=yes TEXT=too_many_attributes" \
	"max_attributes = 4: an element with 8 attributes is refused"
sasl_big() { timeout 30 "$PY" "$XE_TOP_SRCDIR/t/lib/hostile.py" "$XEDGE_C2S" sasl-oversized "$XEDGE_CERT" 2000 2>&1 | tr '\n' ' '; }
r=$(sasl_big)
ok "$(case $r in *SUCCESS=no*) echo 0 ;; *) echo 1 ;; esac)" "max_sasl_bytes = 1024: a 2000-byte PLAIN message is refused ($r)"
reload_ok "max_attributes = 16, max_sasl_bytes = 8192" "" 'limits = { max_attributes = 16; max_sasl_bytes = 8192; };'
r=$(probe send "$XEDGE_C2S" 3 attrs 8)
ok "$(case $r in *too_many*) echo 1 ;; *) echo 0 ;; esac)" "max_attributes = 16: 8 attributes are not too many ($r)"
r2=$(sasl_big)
ok "$([ "$r2" != "$r" ] && echo 0 || echo 1)" "max_sasl_bytes = 8192: the 2000-byte message gets another answer ($r2)"

# 3 idle connections from 127.0.0.5
rm -f "$SB/release"
probe hold "$XEDGE_C2S" 127.0.0.5 3 "$SB/release" 60 >"$SB/hold.out" &
holder=$!
for _ in $(seq 1 100); do grep -q HELD "$SB/hold.out" && break; sleep 0.05; done
is "$(cat "$SB/hold.out")" "HELD=3" "3 idle connections held from 127.0.0.5"
reload_ok "max_connections_per_address = 3" "" 'limits = { max_connections_per_address = 3; };'
like "$(probe idle "$XEDGE_C2S" 127.0.0.5 1)" "^CLOSED" "max_connections_per_address = 3: a fourth from 127.0.0.5 is closed at once"
login --resource pa --source 127.0.0.6
is "$RC" 0 "... one from 127.0.0.6 logs in"
reload_ok "max_preauth_connections = 3" "" 'limits = { max_preauth_connections = 3; };'
like "$(probe idle "$XEDGE_C2S" 127.0.0.6 1)" "^CLOSED" "max_preauth_connections = 3: a fourth unauthenticated connection is closed at once"
reload_ok "no connection limits" ""
like "$(probe idle "$XEDGE_C2S" 127.0.0.5 1)" "^OPEN" "without them: a fourth from 127.0.0.5 is accepted"
touch "$SB/release"
wait $holder
reload_ok "connection_rate_per_address = 1, burst 2" "" \
	'limits = { connection_rate_per_address = 1; connection_burst_per_address = 2; };'
is "$(probe hold "$XEDGE_C2S" 127.0.0.11 3 "$SB/no-such-file" 0)" "HELD=2" \
	"rate 1/s, burst 2: of 3 connections at once from 127.0.0.11, the third is refused"
reload_ok "no connection rate" "" 'limits = { connection_rate_per_address = 0; };'
is "$(probe idle "$XEDGE_C2S" 127.0.0.11 0.3 | cut -d' ' -f1)" OPEN "without it: the next one is accepted"

# --- timeouts ----------------------------------------------------------------------
reload_ok "preauth_idle = 1" "" 'timeouts = { preauth_idle = 1; };'
r=$(probe idle "$XEDGE_C2S" - 4)
t=${r#*after=}
ok "$([ "${r%% *}" = CLOSED ] && ge "$t" 0.8 && ge 2.5 "$t" && echo 0 || echo 1)" "preauth_idle = 1: a silent connection is closed after 1 s ($r)"
reload_ok "preauth_idle = 30, tls_handshake = 1" "" 'timeouts = { preauth_idle = 30; tls_handshake = 1; };'
like "$(probe idle "$XEDGE_C2S" - 2.5)" "^OPEN" "preauth_idle = 30: a silent connection is still open after 2.5 s"
r=$(probe idle "$XEDGE_DIRECT_TLS" - 4)
t=${r#*after=}
ok "$([ "${r%% *}" = CLOSED ] && ge "$t" 0.8 && ge 2.5 "$t" && echo 0 || echo 1)" "tls_handshake = 1: a silent Direct TLS connection is closed after 1 s ($r)"
reload_ok "tls_handshake = 30, auth = 2" "" 'timeouts = { tls_handshake = 30; auth = 2; };'
like "$(probe idle "$XEDGE_DIRECT_TLS" - 2.5)" "^OPEN" "tls_handshake = 30: a silent Direct TLS connection is still open after 2.5 s"
OUT=$(timeout 30 "$PY" "$XE_TOP_SRCDIR/t/lib/hostile.py" "$XEDGE_C2S" slow-client 2>&1)
t=$(printf '%s\n' "$OUT" | sed -n 's/^ENDED_AFTER_S=//p')
ok "$(printf '%s\n' "$OUT" | grep -q '^ERROR=connection-timeout' && ge "$t" 1.8 && ge 3.5 "$t" && echo 0 || echo 1)" \
	"auth = 2: a client one byte a second is ended after 2 s (${t}s)" || diag "$OUT"

# --- lockout ----------------------------------------------------------------------
reload_ok "lockout address_threshold = 2" "" \
	'lockout = { free_failures = 10; delay_ms = 0; address_threshold = 2; account_threshold = 0; lockout_time = 60; window = 60; };'
raw --jid alice@example.test --password w1 --password w2 --mech PLAIN --source 127.0.0.7
raw --jid alice@example.test --password "$PW" --mech PLAIN --source 127.0.0.7 --resource l1
ok "$([ "$RC" != 0 ] && echo 0 || echo 1)" "address_threshold = 2: after 2 failures, the right password from 127.0.0.7 is refused"
like "$OUT" "too many failed login attempts" "... as locked out"
reload_ok "lockout address_threshold = 0, delay_ms = 1500" "" \
	'lockout = { free_failures = 0; delay_ms = 1500; max_delay_ms = 1500; address_threshold = 0; account_threshold = 0; };'
raw --jid alice@example.test --password "$PW" --mech PLAIN --source 127.0.0.7 --resource l2
ok "$(case $RC/$OUT in 1/*"too many failed login attempts"*) echo 0 ;; *) echo 1 ;; esac)" \
	"address_threshold = 0: the lockout in force stays (state, like a session; xedgectl lockout clear ends it)"
raw --jid alice@example.test --password w1 --password w2 --password "$PW" --mech PLAIN \
	--source 127.0.0.10 --resource l3
is "$RC/$(result attempts)" "0/3" "... and 127.0.0.10 is not locked after 2 failures: the 3rd attempt logs in"
raw --jid alice@example.test --password w3 --mech PLAIN --source 127.0.0.8
t=$(printf '%s\n' "$OUT" | sed -n 's/^TIMING n=1 took=//p')
ok "$(ge "$t" 1.4 && echo 0 || echo 1)" "delay_ms = 1500: a failure is answered after 1.5 s (${t}s)"
reload_ok "lockout delay_ms = 0" ""
raw --jid alice@example.test --password w4 --mech PLAIN --source 127.0.0.9
t=$(printf '%s\n' "$OUT" | sed -n 's/^TIMING n=1 took=//p')
ok "$(ge 0.7 "$t" && echo 0 || echo 1)" "delay_ms = 0: a failure is answered at once (${t}s)"
reload_ok "lockout account_threshold = 2" "" \
	'lockout = { free_failures = 10; delay_ms = 0; address_threshold = 0; account_threshold = 2; lockout_time = 60; window = 60; };'
raw --jid alice@example.test --password w5 --mech PLAIN --source 127.0.0.12
raw --jid alice@example.test --password w6 --mech PLAIN --source 127.0.0.13
raw --jid alice@example.test --password "$PW" --mech PLAIN --source 127.0.0.14 --resource l4
ok "$(case $RC/$OUT in 1/*"too many failed login attempts"*) echo 0 ;; *) echo 1 ;; esac)" \
	"account_threshold = 2: after 2 failures from 2 addresses, alice is locked out from a third"
out=$(ctl lockout clear --all 2>&1)
is "$?" 0 "xedgectl lockout clear --all" || diag "$out"
reload_ok "lockout address_threshold = 1, lockout_time = 2" "" \
	'lockout = { free_failures = 10; delay_ms = 0; address_threshold = 1; account_threshold = 0; lockout_time = 2; window = 60; };'
raw --jid alice@example.test --password w7 --mech PLAIN --source 127.0.0.15
raw --jid alice@example.test --password "$PW" --mech PLAIN --source 127.0.0.15 --resource l5
ok "$(case $RC/$OUT in 1/*"too many failed login attempts"*) echo 0 ;; *) echo 1 ;; esac)" \
	"address_threshold = 1: one failure locks 127.0.0.15 out"
sleep 2.2
raw --jid alice@example.test --password "$PW" --mech PLAIN --source 127.0.0.15 --resource l6
is "$RC" 0 "lockout_time = 2: 2 s later it logs in"

# --- log_level --------------------------------------------------------------------
install "" && sed -i 's/^log_level = .*/log_level = "debug";/' "$XEDGE_CONF"
out=$(ctl reload 2>&1)
is "$?" 0 "reload (log_level = debug): ok"
n0=$(wc -l <"$XEDGE_LOG")
login --resource d1
ok "$(tail -n +$((n0 + 1)) "$XEDGE_LOG" | grep -q 'level=debug' && echo 0 || echo 1)" "log_level = debug: a login logs debug lines"
sed -i 's/^log_level = .*/log_level = "warn";/' "$XEDGE_CONF"
out=$(ctl reload 2>&1)
is "$?" 0 "reload (log_level = warn): ok"
n0=$(wc -l <"$XEDGE_LOG")
login --resource d2
is "$RC/$(tail -n +$((n0 + 1)) "$XEDGE_LOG" | grep -c 'level=\(info\|debug\)')" "0/0" "log_level = warn: a login logs no info or debug line"
sed -i 's/^log_level = .*/log_level = "info";/' "$XEDGE_CONF"
ctl reload >/dev/null 2>&1

# --- a pool's retries and weights: a dead server in a round-robin pool ----------------
# (each step's dead server has a name of its own: a server's health state is
# known by its name across reloads, and the passive checks mark a dead one
# down after a few failures)
dead=$(pick_base_port)
# deadpool NAME RETRIES WEIGHT [PROSODY_WEIGHT]: the pool with a server NAME
# where nothing listens first, then a reload; n = how many of 4 logins work
deadpool() {
	install ""
	sed -i -e "s|servers = (|policy = \"round-robin\"; allow_split = true; retries = $2;\n    servers = (\n      { name = \"$1\"; address = \"127.0.0.1\"; port = $dead; weight = $3; },|" \
		-e "s|\(name = \"prosody-0\";.*\)weight = 1;|\1weight = ${4:-1};|" "$XEDGE_CONF"
	out=$(ctl reload 2>&1)
	is "$?" 0 "reload (server $1 of weight $3 where nothing listens, prosody-0 of weight ${4:-1}, retries = $2): ok" ||
		diag "$out" "$(cat "$XEDGE_CONF")"
	n=0
	for i in 1 2 3 4; do login --resource "$1-$i"; [ "$RC" = 0 ] && n=$((n + 1)); done
}
deadpool dead-a 0 1
is "$n" 2 "retries = 0, weights 1 and 1: the 2 logins sent to the dead server fail"
deadpool dead-b 1 1
is "$n" 4 "retries = 1: every login works"
like "$(grep -c 'event=backend-failed .*backend=dead-b ' "$XEDGE_LOG")" "^[1-9]" "... those sent to the dead server first were retried"
deadpool dead-c 0 1 3
is "$n" 3 "weights 1 and 3: 1 login of 4 is sent to the dead server"

# timeouts.backend_handshake: the pool's one server accepts and never answers
rm -f "$SB/silent.stop"
probe silent "127.0.0.1:$dead" "$SB/silent.stop" 60 >"$SB/silent.out" &
silent=$!
for _ in $(seq 1 100); do grep -q LISTENING "$SB/silent.out" && break; sleep 0.05; done
hung() { # hung SECONDS: backend_handshake = SECONDS, the pool's server the silent one
	install "" "timeouts = { backend_handshake = $1; };"
	# (another name: a server's health state is known by its name across reloads)
	sed -i -e "s/{ name = \"prosody-0\"; address = \"127.0.0.1\"; port = [0-9]*;/{ name = \"hung-$1\"; address = \"127.0.0.1\"; port = $dead;/" \
		-e 's|servers = (|retries = 0;\n    servers = (|' "$XEDGE_CONF"
	grep -q "hung-$1" "$XEDGE_CONF" || bail "could not set the hung server"
	out=$(ctl reload 2>&1)
	is "$?" 0 "reload (a hung server, backend_handshake = $1): ok" || diag "$out"
	login --resource h$1
	t=$(result elapsed)
}
hung 1
ok "$([ "$RC" != 0 ] && ge "$t" 0.9 && ge 2.5 "$t" && echo 0 || echo 1)" "backend_handshake = 1: the login fails after 1 s (${t}s, $(result RESULT))"
hung 3
ok "$([ "$RC" != 0 ] && ge "$t" 2.9 && ge 4.5 "$t" && echo 0 || echo 1)" "backend_handshake = 3: after 3 s (${t}s)"
touch "$SB/silent.stop"
wait $silent

# --- in-band registration: registrations_per_address, sasl.scram_iterations --------
reg() { _run_tool "$XE_TOP_SRCDIR/t/lib/register_probe.py" register "$1" "reg-$PW"; }
iterations() { # iterations JID: the SCRAM-SHA-256 iterations of JID's stored secret
	ctl user export example.test | "$PY" -c '
import json, sys
for l in sys.stdin:
    u = json.loads(l)
    if u["jid"] == sys.argv[1]:
        print(u["scram"]["SCRAM-SHA-256"]["iterations"])' "$1"
}
reload_ok "registration, 1 an hour an address, 4321 iterations" 'register = true;' \
	"sasl = { $ML scram_iterations = 4321; };" 'limits = { registrations_per_address = 1; max_stanza_postauth = 16384; };'
big() { _run_tool "$XE_TOP_SRCDIR/t/lib/register_probe.py" big alice@example.test "$PW" 20000; }
big
like "$OUT" "CLOSE how=stream-error:policy-violation" \
	"max_stanza_postauth = 16384 (a domain with register): a 20000-byte stanza after authentication is refused"
reg reg1@example.test
like "$OUT" "REGISTER result=ok" "a registration"
is "$(iterations reg1@example.test)" 4321 "... stored with scram_iterations = 4321"
reg reg2@example.test
like "$OUT" "REGISTER result=error type=wait condition=policy-violation" "registrations_per_address = 1: a second one is refused"
reload_ok "registrations unlimited, 5000 iterations" 'register = true;' \
	"sasl = { $ML scram_iterations = 5000; };" 'limits = { registrations_per_address = 0; max_stanza_postauth = 65536; };'
big
like "$OUT" "CLOSE how=none" "max_stanza_postauth = 65536: the 20000-byte stanza goes through"
reg reg2@example.test
like "$OUT" "REGISTER result=ok" "registrations_per_address = 0: the second one registers"
is "$(iterations reg2@example.test)" 5000 "... stored with scram_iterations = 5000"

# --- a listener's proxy_protocol and proxy_from ------------------------------------
# proxyfrom LIST: the STARTTLS listener takes the PROXY protocol from LIST
proxyfrom() {
	install ""
	sed -i "s/\(kind = \"starttls\";.*port = [0-9]*;\) }/\1 proxy_protocol = true; proxy_from = [ $1 ]; }/" "$SB/next.conf"
	grep -q proxy_from "$SB/next.conf" || bail "could not set proxy_from"
	cp "$SB/next.conf" "$XEDGE_CONF"
	out=$(ctl reload 2>&1)
	like "$?/$out" "^0/reload result=ok" "reload (proxy_protocol, proxy_from = [ $1 ]): ok" || diag "$out"
}
proxyfrom '"127.0.0.1"'
login --resource p1 --proxy v2 --proxy-src 203.0.113.7:4242
is "$RC" 0 "proxy_from = 127.0.0.1: a login behind a PROXY v2 header works"
like "$(grep 'event=session ' "$XEDGE_LOG" | tail -n 1)" "peer=203\.0\.113\.7:4242 " "... the header's address is the peer"
login --resource p2
ok "$([ "$RC" != 0 ] && echo 0 || echo 1)" "... and a client without the header fails ($(result RESULT))"
proxyfrom '"127.0.0.2"'
login --resource p3 --proxy v2 --proxy-src 203.0.113.7:4242
ok "$([ "$RC" != 0 ] && echo 0 || echo 1)" "proxy_from = 127.0.0.2: the header from 127.0.0.1 is refused ($(result RESULT))"
reload_ok "no PROXY protocol" ""
login --resource p4
is "$RC" 0 "without proxy_protocol: a client without the header logs in"

# --- what needs a restart: refused, by name --------------------------------------------
refused() { # refused NAME: the reload of $SB/next.conf is refused, naming NAME
	cp "$SB/next.conf" "$XEDGE_CONF"
	out=$(ctl reload 2>&1)
	is "$?/$out" "1/xedgectl: xedge: error $1 changed: a reload cannot change it (restart xedge for that)" \
		"$1 changed: refused, a restart is needed"
}
mport=${XEDGE_METRICS##*:}
mport=${mport%%/*}
install "" && sed -i "s/port = $mport; }/port = $((mport + 100)); }/" "$SB/next.conf" && refused metrics
install "" && sed -i 's/mode = "0600";/mode = "0660";/' "$SB/next.conf" && refused control.mode
install "" 'workers = 2;' && refused workers
install "" "routing = { address = \"127.0.0.1\"; port = $dead; };" && refused routing
install "" && sed -i 's/map_size_mb = 64;/map_size_mb = 128;/' "$SB/next.conf" && refused user_store.map_size_mb
install "" 'log_to = "syslog";' && refused log_to/syslog_facility
install "" 'user = "nobody";' && refused user
ok "$(xedge_alive && echo 0 || echo 1)" "xedge still runs"
install "" # (xedgectl reads the file too)
login --resource end
is "$RC/$(feats post-tls)" "0/mechanisms:SCRAM-SHA-256+SCRAM-SHA-1+PLAIN" \
	"the running configuration goes on: a login works"
like "$(ctl stats)" "^stats " "... and so does the control socket"

# --- timeouts.shutdown_grace (last: xedge stops) ------------------------------------
reload_ok "shutdown_grace = 2" "" 'timeouts = { shutdown_grace = 2; };'
"$PY" "$RAW_CLIENT" --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --jid alice@example.test \
	--password "$PW" --mech PLAIN --resource g1 --hold 20 --timeout 30 >"$SB/grace.out" 2>&1 &
holder=$!
for _ in $(seq 1 200); do grep -q '^READY' "$SB/grace.out" && break; sleep 0.05; done
t0=$(now_ms)
kill -TERM "$XEDGE_PID"
wait $holder
ms=$(($(now_ms) - t0))
ok "$([ $ms -ge 1800 ] && [ $ms -le 4000 ] && echo 0 || echo 1)" \
	"shutdown_grace = 2 (default 0): on SIGTERM a session goes on for 2 s (${ms} ms)"
like "$(cat "$SB/grace.out")" "CLOSE how=stream-error:system-shutdown" "... then ends with <system-shutdown/>"
