#!/bin/bash
# e2e-tls-tickets.t: TLS session ticket keys from tls.ticket_key_file, with
# openssl s_client (-sess_out / -sess_in: a TLS 1.3 session kept in a file,
# across xedge processes) on the Direct TLS listener.
#  - without the file, a session does not resume after a restart (OpenSSL's
#    own keys, per process);
#  - with it, a session resumes after a restart, a reload and a SIGHUP;
#  - rotation: the new key first, the old second: the old ticket resumes;
#    the old key removed: a full handshake;
#  - a second xedge with the same file resumes the first one's sessions;
#  - a session of example.test still does not resume under other.test;
#  - the same on STARTTLS; a reload with a bad key file is refused and the
#    keys in use stay;
#  - xedge -t refuses a world-readable file, a missing one, a wrong length.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 21

sandbox_up
SB=$XE_SANDBOX_DIR_SB
D=$XE_SANDBOX_DIR
XEDGE=$XE_TOP_BUILDDIR/src/xedge

# sess out|in FILE [SNI] [HOST:PORT] -> R: "New" or "Reused" (or the output);
# STARTTLS=1: on the STARTTLS listener
sess() {
	local out st=() addr=${4:-$XEDGE_DIRECT_TLS}
	if [ -n "${STARTTLS:-}" ]; then
		st=(-starttls xmpp -xmpphost example.test)
		addr=${4:-$XEDGE_C2S}
	fi
	out=$( (sleep 1) | timeout 20 openssl s_client -connect "$addr" "${st[@]}" -tls1_3 \
		-servername "${3:-example.test}" -CAfile "$XEDGE_CERT" "-sess_$1" "$2" 2>&1)
	R=$(printf '%s\n' "$out" | sed -n 's/^\(New\|Reused\), TLSv1.3.*/\1/p' | head -n 1)
	[ -n "$R" ] || R="no handshake: $(printf '%s\n' "$out" | tail -n 3 | tr '\n' ' ')"
	diag "s_client -sess_$1 ${3:-example.test} $addr ${STARTTLS:+(STARTTLS)}: $R"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=other.test -addext subjectAltName=DNS:other.test \
	-keyout "$SB/other.key" -out "$SB/other.pem" >/dev/null 2>&1 || bail "openssl req failed"
awk -v sb="$SB" '
	/^domains = \(/ { d = 1 }
	d && /^\);/ { print "  , { name = \"other.test\"; certificate = \"" sb "/other.pem\"; key = \"" sb "/other.key\"; pool = \"main\"; }"; d = 0 }
	{ print }' "$XEDGE_CONF" >"$SB/plain.conf"
grep -q 'name = "other.test"' "$SB/plain.conf" || bail "could not add other.test"
{ cat "$SB/plain.conf"; echo "tls = { ticket_key_file = \"$D/tk\"; };"; } >"$SB/keys.conf"
(umask 077 && openssl rand 80 >"$D/k1" && openssl rand 80 >"$D/k2" && cp "$D/k1" "$D/tk")

# ---- 1. without the file: no resumption across a restart
xedge_restart "$SB/plain.conf"
sess out "$D/s0"
sess in "$D/s0"
is "$R" Reused "no key file: the session resumes on the same process"
xedge_restart "$SB/plain.conf"
sess in "$D/s0"
is "$R" New "no key file: after a restart, a full handshake (OpenSSL's own keys)"

# ---- 2. with the file: across a restart, a reload, a SIGHUP
xedge_restart "$SB/keys.conf"
sess out "$D/s1"
xedge_restart "$SB/keys.conf"
sess in "$D/s1"
is "$R" Reused "key file: the session resumes after a restart"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "reload with the key file: ok"
sess in "$D/s1"
is "$R" Reused "key file: the session resumes after a reload"
kill -HUP "$XEDGE_PID"
sleep 1
sess in "$D/s1"
is "$R" Reused "key file: the session resumes after a SIGHUP"
sess in "$D/s1" other.test
is "$R" New "a session of example.test does not resume under other.test"
STARTTLS=1 sess out "$D/st1"
xedge_restart "$SB/keys.conf"
STARTTLS=1 sess in "$D/st1"
is "$R" Reused "key file: a STARTTLS session resumes after a restart"
# a reload with a bad key file is refused; the keys in use stay
chmod 644 "$D/tk"
out=$(ctl reload 2>&1)
rc=$?
ok $((rc == 0)) "a reload with a world-readable key file is refused"
like "$out" "ticket_key_file.*accessible to others" "... naming the file: $out"
chmod 600 "$D/tk"
sess in "$D/s1"
is "$R" Reused "... and the keys in use stay: the session still resumes"
xedge_alive
ok $? "xedge is still running"

# ---- 3. rotation
cat "$D/k2" "$D/k1" >"$D/tk"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "reload with a new key first, the old second: ok"
sess in "$D/s1"
is "$R" Reused "rotation: a ticket under the old (second) key resumes"
cp "$D/k2" "$D/tk"
out=$(ctl reload 2>&1)
like "$out" "reload result=ok" "reload with the old key removed: ok"
sess in "$D/s1"
is "$R" New "rotation: a ticket under a removed key gets a full handshake"

# ---- 4. a second process with the same file
B=$(pick_base_port) || bail "no free port range"
base=${XEDGE_C2S##*:}
mkdir -p "$D/n2/users"
sed -e "s|port = $base;|port = $B;|" -e "s|port = $((base + 1));|port = $((B + 1));|" \
	-e "s|port = $((base + 2)); }|port = $((B + 2)); }|" \
	-e "s|path = \"$SB/users\";|path = \"$D/n2/users\";|" \
	-e "s|socket = \"$SB/control.sock\";|socket = \"$D/n2/control.sock\";|" "$SB/keys.conf" >"$D/n2.conf"
"$XEDGE" -c "$D/n2.conf" >>"$D/n2.log" 2>&1 &
N2=$!
XEDGE_PIDS="$N2,$XEDGE_PIDS"
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$((B + 1))") 2>/dev/null && break
	sleep 0.05
done
sess out "$D/s2"
sess in "$D/s2" example.test "127.0.0.1:$((B + 1))"
is "$R" Reused "a second xedge with the same key file resumes the first one's session"
kill -TERM "$N2"

# ---- 5. xedge -t on bad files
chmod 644 "$D/tk"
out=$("$XEDGE" -t -c "$SB/keys.conf" 2>&1)
rc=$?
ok $((rc == 0)) "xedge -t refuses a world-readable key file"
like "$out" "ticket_key_file.*accessible to others" "... saying why: $out"
chmod 600 "$D/tk"
head -c 79 "$D/k1" >"$D/tk"
out=$("$XEDGE" -t -c "$SB/keys.conf" 2>&1)
like "$out" "ticket_key_file.*holds 79 bytes" "xedge -t refuses a key file of 79 bytes: $out"
rm -f "$D/tk"
out=$("$XEDGE" -t -c "$SB/keys.conf" 2>&1)
like "$out" "ticket_key_file.*cannot open" "xedge -t refuses a missing key file: $out"
