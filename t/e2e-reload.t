#!/bin/bash
# e2e-reload.t: reload (xedgectl reload, SIGHUP) with 200 sessions open.
# A good configuration with a new certificate, a changed limit and a second
# backend in the pool: none of the 200 sessions drops (each answers a ping
# afterwards), the next client is shown the new certificate, the limit and
# the pool change for new connections. Bad configurations (a syntax error,
# an unknown setting, a missing certificate file, changed listeners) are
# refused with their error, by xedgectl reload (exit 1) and on SIGHUP (a log
# line), and the running configuration goes on serving.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 38

PW="rl-$RANDOM-$RANDOM"
HOLDERS=bob@example.test,carol@example.test,dave@example.test,erin@example.test
sandbox_up --backends 2 --user "alice@example.test=$PW" --user "bob@example.test=$PW" \
	--user "carol@example.test=$PW" --user "dave@example.test=$PW" \
	--user "erin@example.test=$PW"
SB=$XE_SANDBOX_DIR_SB
MANY="$XE_TOP_SRCDIR/t/lib/many_sessions.py"

# alice is pinned to prosody-1, which the first configuration's pool lacks
ctl user pin alice@example.test prosody-1 >/dev/null
is "$?" 0 "alice pinned to prosody-1"
cp "$XEDGE_CONF" "$SB/two-backends.conf"
sed -e '/name = "prosody-1"/d' -e 's/\(name = "prosody-0".*}\),$/\1/' \
	"$SB/two-backends.conf" >"$XEDGE_CONF"
grep -q prosody-1 "$XEDGE_CONF" && bail "could not remove prosody-1 from the pool"
xedge_restart "$XEDGE_CONF"
for _ in $(seq 1 100); do [ -S "$XEDGE_CONTROL" ] && break; sleep 0.05; done

fp() { "$PY" "$MANY" fingerprint --server "$1" --mode "$2" --timeout 10; }
fp_file() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
# backend_of RESOURCE: the backend of alice's login with that resource
backend_of() {
	raw --jid alice@example.test --password "$PW" --mech PLAIN --resource "$1" >/dev/null
	sed -n "s/.*event=session .*jid=alice@example\.test .*backend=\([^ ]*\).*/\1/p" "$XEDGE_LOG" | tail -n 1
}
old_fp=$(fp_file "$XEDGE_CERT")
is "$(fp "$XEDGE_C2S" starttls)" "$old_fp" "before: the sandbox's certificate is served"
is "$(backend_of before)" prosody-0 "before: alice's login goes to prosody-0 (her pin is not in the pool)"

# 200 sessions, held in one process until $SB/go exists
rm -f "$SB/go"
"$PY" "$MANY" hold --server "$XEDGE_C2S" --cafile "$XEDGE_CERT" --users "$HOLDERS" \
	--password "$PW" --count 200 --workers 8 --trigger "$SB/go" --timeout 100 \
	>"$SB/hold.out" 2>"$SB/hold.err" &
hold_pid=$!
for _ in $(seq 1 1200); do grep -q '^READY' "$SB/hold.out" && break; kill -0 $hold_pid 2>/dev/null || break; sleep 0.05; done
is "$(sed -n 's/^READY //p' "$SB/hold.out")" 200 "200 sessions open" || diag "$(head -n 5 "$SB/hold.out" "$SB/hold.err")"
like "$(ctl stats)" "^stats connections=200 .*spliced=200 .*max_connections=100000 " "stats: 200 spliced, the default max_connections"

# the new configuration: a new certificate, max_connections, two backends
(cd "$SB" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout key2.pem -out cert2.pem -days 2 -subj "/CN=$XEDGE_DOMAIN" \
	-addext "subjectAltName=DNS:$XEDGE_DOMAIN" -addext "basicConstraints=critical,CA:TRUE" \
	>openssl2.out 2>&1) || bail "openssl failed: $(cat "$SB/openssl2.out")"
new_fp=$(fp_file "$SB/cert2.pem")
sed -e "s|$SB/cert.pem|$SB/cert2.pem|" -e "s|$SB/key.pem|$SB/key2.pem|" "$SB/two-backends.conf" >"$SB/good.conf"
echo 'limits = { max_connections = 4321; };' >>"$SB/good.conf"
echo 'sasl = { mechanisms = [ "SCRAM-SHA-1", "PLAIN" ]; };' >>"$SB/good.conf"
cp "$SB/good.conf" "$XEDGE_CONF"
out=$(ctl reload 2>&1)
is "$?/$out" "0/reload result=ok generation=2" "xedgectl reload: ok, generation 2"
like "$(grep 'event=reload result=ok' "$XEDGE_LOG")" "generation=2" "... logged"
is "$(fp "$XEDGE_C2S" starttls)" "$new_fp" "the next STARTTLS client is shown the new certificate"
is "$(fp "$XEDGE_DIRECT_TLS" direct)" "$new_fp" "... and the next Direct TLS client"
raw --jid alice@example.test --password "$PW" --mech PLAIN --cafile "$SB/cert2.pem" --resource newcert >/dev/null
is "$RC" 0 "a client that trusts only the new certificate logs in"
like "$OUT" "FEATURES stage=post-tls list=mechanisms:SCRAM-SHA-1\+PLAIN( |$)" "... and is offered the new mechanisms"
like "$(ctl stats)" "^stats connections=200 .* max_connections=4321 " "the new max_connections is in force; the 200 are still there"
is "$(backend_of after)" prosody-1 "after: alice's new login goes to prosody-1, added to the pool"

# bad configurations: refused, the running one goes on
bad() { # bad NAME: install $SB/NAME.conf, reload by xedgectl; sets OUT and RC
	cp "$SB/$1.conf" "$XEDGE_CONF"
	OUT=$(ctl reload 2>&1)
	RC=$?
}
printf 'log_level = "debug"\nthis is not libconfig\n' >"$SB/syntax.conf"
bad syntax
is "$RC" 1 "a syntax error: xedgectl reload exits 1"
like "$OUT" "refused.*xedge\.conf:2: syntax error" "... with the error" || diag "$OUT"
cp "$SB/good.conf" "$SB/unknown.conf"
echo 'no_such_setting = 1;' >>"$SB/unknown.conf"
bad unknown
is "$RC" 1 "an unknown setting: exit 1"
like "$OUT" "no_such_setting" "... named in the error"
sed -e "s|$SB/cert2.pem|$SB/missing.pem|" "$SB/good.conf" >"$SB/nocert.conf"
bad nocert
is "$RC" 1 "a missing certificate file: refused by xedge, exit 1"
like "$OUT" "^xedgectl: xedge: error .*missing\.pem" "... with the error" || diag "$OUT"
like "$(grep 'event=reload result=error' "$XEDGE_LOG" | tail -n 1)" 'error=".*missing\.pem' "... logged by xedge"
port=${XEDGE_C2S##*:}
sed -e "s/port = $port;/port = $((port + 7));/" "$SB/good.conf" >"$SB/listeners.conf"
bad listeners
is "$RC" 1 "changed listeners: refused, exit 1"
like "$OUT" "listeners changed.*restart" "... a restart is needed, says the error"
sed -e "s|path = \"$SB/users\"|path = \"$SB/users2\"|" "$SB/good.conf" >"$SB/store.conf"
bad store
is "$RC/$OUT" "1/xedgectl: xedge: error user_store.path changed: a reload cannot change it (restart xedge for that)" \
	"a changed user store: refused, a restart is needed"

# SIGHUP with bad files: a log line each, nothing changes
n0=$(grep -c 'event=reload result=error' "$XEDGE_LOG")
for f in syntax unknown nocert; do
	cp "$SB/$f.conf" "$XEDGE_CONF"
	kill -HUP "$XEDGE_PID"
	for _ in $(seq 1 100); do
		[ "$(grep -c 'event=reload result=error' "$XEDGE_LOG")" -gt "$n0" ] && break
		sleep 0.05
	done
	n1=$(grep -c 'event=reload result=error' "$XEDGE_LOG")
	is "$((n1 - n0))" 1 "SIGHUP with the $f configuration: refused, logged"
	n0=$n1
done
like "$(grep 'event=reload result=error' "$XEDGE_LOG" | tail -n 3 | head -n 1)" 'error=".*xedge\.conf:2: syntax error' "... the syntax error's line is in the log"
ok "$(xedge_alive; echo $?)" "xedge still runs"
is "$(fp "$XEDGE_C2S" starttls)" "$new_fp" "the running configuration goes on: the new certificate is served"
like "$(ctl stats)" " max_connections=4321 " "... with its limit"
raw --jid alice@example.test --password "$PW" --mech PLAIN --cafile "$SB/cert2.pem" --resource stillok >/dev/null
is "$RC" 0 "... and logins work"

# SIGHUP with a good file: generation 3 (back to the old certificate)
cp "$SB/two-backends.conf" "$XEDGE_CONF"
echo 'limits = { max_connections = 5000; };' >>"$XEDGE_CONF"
kill -HUP "$XEDGE_PID"
for _ in $(seq 1 100); do grep -q 'event=reload result=ok generation=3' "$XEDGE_LOG" && break; sleep 0.05; done
ok "$(grep -q 'event=reload result=ok generation=3' "$XEDGE_LOG"; echo $?)" "SIGHUP with a good file: generation 3"
is "$(fp "$XEDGE_C2S" starttls)" "$old_fp" "... its certificate is served"

# the 200, through three generations: each still answers
touch "$SB/go"
wait $hold_pid
is "$?" 0 "the held sessions ended cleanly" || diag "$(grep -v '^READY' "$SB/hold.out" | head -n 10)"
is "$(sed -n 's/^ALIVE //p' "$SB/hold.out")" "200/200" "none of the 200 sessions dropped: each answers a ping"
ok "$(xedge_alive; echo $?)" "xedge still runs at the end"
# the older configurations are freed with their last connection
for g in 1 2; do
	for _ in $(seq 1 100); do grep -q "event=generation-freed generation=$g\$" "$XEDGE_LOG" && break; sleep 0.05; done
	ok "$(grep -q "event=generation-freed generation=$g\$" "$XEDGE_LOG"; echo $?)" "generation $g is freed once its connections are gone"
done
