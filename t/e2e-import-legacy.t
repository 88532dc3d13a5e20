#!/bin/bash
# e2e-import-legacy.t: the users of every backend kind move into xedge
# without a password reset, from the stores and exports the legacy servers
# write themselves:
#   - ejabberd 23.01: users made with `ejabberdctl register` under
#     auth_password_format scram and plain, exported with export_piefxis
#     (XEP-0227: a main file including one file per host);
#   - Prosody 0.12: internal_hashed and internal_plain accounts, exported by
#     prosody-migrator to its xep0227 store;
#   - jabberd2: accounts made by in-band registration on jabberd2's c2s with
#     Debian's authreg module (sqlite), plaintext and crypt;
# each user then logs in through xedge with the original password. Then
# malformed files are refused record by record (truncated XML, unknown
# elements, bad base64, a duplicate user, billion laughs), --dry-run,
# --replace and the progress output.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/legacy_stores.sh"

plan 47

command -v prosody-migrator >/dev/null || bail "prosody-migrator is not installed (apt-get install prosody)"
command -v sqlite3 >/dev/null || bail "sqlite3 is not installed"
command -v script >/dev/null || bail "script (bsdutils) is not installed"

# SHA-1 secrets are what ejabberd and Prosody keep: a migrated domain offers
# the SHA-1 mechanisms until its users set new passwords.
sandbox_up --conf 'sasl = { mechanisms = [ "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN" ]; };'
PR=
trap 'rc=$?; legacy_stop_all; [ -n "$PR" ] && rm -rf "$PR"; (exit $rc); _sandbox_cleanup' EXIT
L=$XE_SANDBOX_DIR/legacy
mkdir -p "$L"
legacy_ports 2

# login JID PASSWORD MECH: through xedge, slixmpp; LOGIN=ok or what failed
login() {
	client --jid "$1" --password "$2" --mech "$3"
	if [ "$RC" = 0 ]; then LOGIN=ok; else LOGIN="$(result RESULT)/$(result condition)"; fi
}

# ---- ejabberd -----------------------------------------------------------
APW="alice <&> pw $RANDOM"
BPW="bob'\"pw$RANDOM"
CPW="carol:pw $RANDOM"
# two ejabberd servers, as an operator has one or the other (ejabberd turns
# plain passwords into SCRAM ones when it starts with the scram format)
EJ=$L/ejabberd
ejabberd_start "$EJ" scram
ejabberd_ctl "$EJ" register alice example.test "$APW" >/dev/null &&
	ejabberd_ctl "$EJ" register bob example.test "$BPW" >/dev/null || bail "ejabberdctl register failed"
mkdir -p "$EJ/export"
ejabberd_ctl "$EJ" export_piefxis "$EJ/export" >/dev/null || bail "export_piefxis failed"
ejabberd_stop "$EJ"
EP=$L/ejabberd-plain
ejabberd_start "$EP" plain
ejabberd_ctl "$EP" register carol example.test "$CPW" >/dev/null || bail "ejabberdctl register failed"
mkdir -p "$EP/export"
ejabberd_ctl "$EP" export_piefxis "$EP/export" >/dev/null || bail "export_piefxis failed"
ejabberd_stop "$EP"
main=$(ls "$EJ/export"/*.xml | grep -v _example_test)
hostfile=$(ls "$EJ/export"/*_example_test.xml)
plainmain=$(ls "$EP/export"/*.xml | grep -v _example_test)
like "$(cat "$main")" "<xi:include href='[^']+_example_test.xml'/>" \
	"export_piefxis: a main file including the host's file"
like "$(cat "$hostfile")" "<user name='alice'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>" \
	"... alice as SCRAM credentials" || diag "$(cat "$hostfile")"
like "$(cat "$EP/export"/*_example_test.xml)" "<user name='carol' password='" \
	"... carol (plain format) with her password"

out=$(ctl user import "$main" "$plainmain" 2>&1)
is "$?" 0 "xedgectl user import of ejabberd's export: exit 0" || diag "$out"
like "$out" "import: 3 added, 0 replaced, 0 kept \(already there\), 0 failed" "... 3 added (from the included file)"
login alice@example.test "$APW" SCRAM-SHA-1-PLUS
is "$LOGIN" ok "alice (SCRAM secrets from ejabberd) logs in with her password"
login bob@example.test "$BPW" PLAIN
is "$LOGIN" ok "bob, with PLAIN checked against his SCRAM secret"
login carol@example.test "$CPW" SCRAM-SHA-1-PLUS
is "$LOGIN" ok "carol (plain format: secrets derived at import) logs in"
login alice@example.test "not $APW" SCRAM-SHA-1-PLUS
is "$LOGIN" "failure/not-authorized" "a wrong password still fails"
like "$(ctl user show carol@example.test | grep -c -E '^(SCRAM-SHA-256: [0-9]+ iterations|legacy mechanisms: no)$')" '^2$' \
	"carol has every hash, and no password kept (no --legacy-mechs)"

# ---- Prosody -------------------------------------------------------------
EPW="erin pw $RANDOM"
FPW="frank&pw $RANDOM"
# the migrator runs as the prosody user: a directory it can reach (the
# sandbox's is private)
PR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-import-prosody.XXXXXX") || bail "mktemp failed"
mkdir -p "$PR/data" "$PR/out"
for a in internal_hashed:erin:"$EPW" internal_plain:frank:"$FPW"; do
	auth=${a%%:*} rest=${a#*:}
	cat >"$PR/$auth.cfg.lua" <<CFG
data_path = "$PR/data"
run_as_root = true
authentication = "$auth"
storage = "internal"
log = { { levels = { min = "error" }, to = "console" } }
VirtualHost "example.test"
CFG
	prosodyctl --config "$PR/$auth.cfg.lua" register "${rest%%:*}" example.test "${rest#*:}" >/dev/null 2>&1 ||
		bail "prosodyctl register failed"
done
cat >"$PR/migrator.cfg.lua" <<CFG
input { type = "internal"; path = "$PR/data"; hosts = { ["example.test"] = { "accounts" } }; }
output { type = "xep0227"; path = "$PR/out"; }
CFG
# Prosody 0.12's xep0227 store writes into the data directory compiled into
# the migrator (/var/lib/prosody): this copy of it writes into $PR/out.
sed "s|^CFG_DATADIR=.*|CFG_DATADIR='$PR/out';|" /usr/bin/prosody-migrator >"$PR/prosody-migrator"
chown -R prosody:prosody "$PR"
timeout 60 lua5.4 "$PR/prosody-migrator" --config="$PR/migrator.cfg.lua" input output >"$PR/migrator.out" 2>&1 ||
	bail "prosody-migrator failed: $(tail -n 5 "$PR/migrator.out")"
like "$(cat "$PR/out/erin@example.test.xml")" "<scram-credentials [^>]*mechanism='SCRAM-SHA-1'" \
	"prosody-migrator: erin (internal_hashed) as SCRAM credentials"
out=$(ctl user import "$PR/out/erin@example.test.xml" "$PR/out/frank@example.test.xml" 2>&1)
like "$out" "import: 2 added, 0 replaced, 0 kept \(already there\), 0 failed" "Prosody's export: 2 added" || diag "$out"
login erin@example.test "$EPW" SCRAM-SHA-1-PLUS
is "$LOGIN" ok "erin (SCRAM secrets from Prosody) logs in"
login frank@example.test "$FPW" PLAIN
is "$LOGIN" ok "frank (internal_plain) logs in"

# ---- jabberd2 ------------------------------------------------------------
GPW="gina pw $RANDOM"
HPW="hank'pw $RANDOM"
IPW="ivy-pw-$RANDOM"
JD=$L/jabberd2
# register JID PASSWORD: in-band registration on jabberd2's own c2s
jd_register() {
	timeout 20 "$PY" "$XMPP_CLIENT" --server "127.0.0.1:$LEGACY_PORT" --cafile "$JD/cert.pem" \
		--jid "$1" --password "$2" --register --mech PLAIN --timeout 3 2>/dev/null | grep '^REGISTER'
}
jabberd2_start "$JD" plaintext
r1=$(jd_register gina@example.test "$GPW") &&
	r2=$(jd_register hank@example.test "$HPW")
jabberd2_stop "$JD"
is "$r1/$r2" "REGISTER result=ok/REGISTER result=ok" \
	"jabberd2 registered gina and hank in its sqlite authreg (plaintext, Debian's default)"
# jabberd2 with <crypt/> stores crypt(3) hashes (SHA-512-crypt with glibc)
# and offers no registration; Debian's jabberd2-c2s 2.7 crashes at the first
# connection with <crypt/>, so ivy's row is written as it would write it
sqlite3 "$JD/sqlite.db" "INSERT INTO authreg (username, realm, password) VALUES ('ivy', 'example.test', '$(openssl passwd -6 "$IPW")')"
out=$(ctl user import "$JD/sqlite.db" 2>&1)
is "$?" 1 "import of jabberd2's database: exit 1 (one row cannot be carried over)"
like "$out" "authreg row 3: user ivy@example.test: the password is a [A-Za-z0-9-]*crypt hash, which cannot be turned into SCRAM secrets" \
	"... ivy's row refused with why" || diag "$out"
like "$out" "import: 2 added, 0 replaced, 0 kept \(already there\), 1 failed" "... gina and hank added"
login gina@example.test "$GPW" SCRAM-SHA-1-PLUS
is "$LOGIN" ok "gina (jabberd2) logs in with her password"
login hank@example.test "$HPW" PLAIN
is "$LOGIN" ok "hank (jabberd2) logs in with his"
# a row with an empty realm needs --domain
sqlite3 "$JD/sqlite.db" "INSERT INTO authreg (username, realm, password) VALUES ('jack', '', 'jack pw')"
out=$(ctl user import --dry-run "$JD/sqlite.db" 2>&1)
like "$out" "authreg row 4: user jack@: an empty realm \(give --domain D\); not imported" \
	"a row with an empty realm is refused without --domain" || diag "$out"
out=$(ctl user import --domain example.test --format jabberd2 "$JD/sqlite.db" 2>&1)
like "$out" "import: 1 added, 0 replaced, 2 kept \(already there\), 1 failed" "... and imported with --domain example.test"
login jack@example.test "jack pw" PLAIN
is "$LOGIN" ok "jack logs in"
# a row whose name holds terminal control sequences is reported escaped,
# not written raw to the operator's terminal
sqlite3 "$JD/sqlite.db" "INSERT INTO authreg (username, realm, password) VALUES ('ev' || char(27) || '[2Jil', '', '')"
out=$(ctl user import --dry-run --domain example.test "$JD/sqlite.db" 2>&1)
like "$out" 'ev\\x1b\[2Jil(@example\.test)?[: ].*not imported' \
	"a name with an escape sequence is printed with \\x1b" || diag "$out"
case "$out" in *$'\033'*) raw=0 ;; *) raw=1 ;; esac
ok "$((1 - raw))" "... and no raw ESC reaches the terminal" || diag "$out"

# ---- skip, replace, dry run ---------------------------------------------
out=$(ctl user import "$main" "$plainmain" 2>&1)
like "$out" "0 added, 0 replaced, 3 kept" "importing again keeps the existing users"
ctl user export >"$L/before"
out=$(ctl user import --dry-run --replace "$main" "$plainmain" 2>&1)
like "$out" "dry run: nothing written\): 0 would be added, 3 would be replaced" "--dry-run --replace says what it would do"
ctl user export >"$L/after"
cmp -s "$L/before" "$L/after"
ok $? "... and writes nothing"
out=$(ctl user import --replace "$main" "$plainmain" 2>&1)
like "$out" "0 added, 3 replaced, 0 kept" "--replace replaces them"
ctl user import --replace --legacy-mechs "$main" "$plainmain" >/dev/null 2>&1
is "$(ctl user show carol@example.test | grep '^legacy')/$(ctl user show alice@example.test | grep '^legacy')" \
	"legacy mechanisms: yes (DIGEST-MD5, CRAM-MD5: the password is kept)/legacy mechanisms: no" \
	"--legacy-mechs keeps carol's plaintext password for the legacy mechanisms (alice has none to keep)"

# ---- malformed files -----------------------------------------------------
S1=$(grep -o "<user name='alice'><scram-credentials.*" "$hostfile" |
	sed "s|^<user name='alice'>||; s|</scram-credentials>.*|</scram-credentials>|")
[ -n "$S1" ] || bail "no SCRAM credentials in $hostfile"
hdr="<?xml version='1.0' encoding='UTF-8'?>"
# bad.xml: one record per line
{
	echo "$hdr"
	echo "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.test'>"
	echo "<user name='u1' password='u1 pw'/>"
	echo "<user name='u2'>${S1/<iter-count>/<frobnicate\/><iter-count>}</user>"
	echo "<user name='u3'><colour xmlns='urn:xmpp:pie:0'>blue</colour>${S1}</user>"
	echo "<user name='u4'>${S1/<stored-key>/<stored-key>%%%}</user>"
	echo "<user name='u5' password='u5 pw'/>"
	echo "<user name='u5' password='another pw'/>"
	echo "<user name='u6'><query xmlns='jabber:iq:roster'><item jid='x@example.test'/></query>${S1}</user>"
	echo "<user name='u7' password='right'>${S1}</user>"
	echo "<user name='u 8' password='x'/>"
	echo "<bogus/>"
	echo "</host></server-data>"
} >"$L/bad.xml"
out=$(ctl user import "$L/bad.xml" 2>&1)
is "$?" 1 "a file with bad records: exit 1"
like "$out" "bad\.xml:4: user u2@example.test: unknown element <frobnicate> in <scram-credentials>; not imported" \
	"... line 4: an unknown element in the credentials" || diag "$out"
like "$out" "bad\.xml:5: user u3@example.test: unknown element <colour> in <user>; not imported" \
	"... line 5: an unknown element of XEP-0227 in a user"
like "$out" "bad\.xml:6: user u4@example.test: line 6: <stored-key> is not base64; not imported" "... line 6: bad base64"
like "$out" "bad\.xml:8: user u5@example.test: a second record for the same user \(the first, at [^ ]*bad\.xml:7, is the one imported\)" \
	"... line 8: a duplicate user"
like "$out" "bad\.xml:10: user u7@example.test: its password and its SCRAM credentials do not match" \
	"... line 10: a password that contradicts the credentials"
like "$out" "bad\.xml:11: user u 8: u 8@example.test is not a valid JID" "... line 11: a bad JID"
like "$out" "bad\.xml:12: unknown element <bogus> in <host>" "... line 12: an unknown element in the host"
like "$out" "import: 3 added, 0 replaced, 0 kept \(already there\), 7 failed" \
	"... u1, u5 and u6 (roster skipped) added, the 7 others refused"
n=0
for u in u2 u3 u4 u7; do ctl user show $u@example.test >/dev/null 2>&1 && n=$((n + 1)); done
login u5@example.test 'u5 pw' PLAIN
l5=$LOGIN
login u6@example.test "$APW" PLAIN
is "$n/$l5/$LOGIN" "0/ok/ok" \
	"no refused record written; u5 has the first record's password; u6 alice's secrets"

# truncated: a host file as ejabberd writes it, cut inside bob's record
printf "%s<host xmlns='urn:xmpp:pie:0' jid='example.test'><user name='alice'>%s</user><user name='bob'>%s" \
	"$hdr" "$S1" "${S1:0:60}" >"$L/truncated.xml"
ctl user del alice@example.test >/dev/null
ctl user del bob@example.test >/dev/null
wait_purged
out=$(ctl user import "$L/truncated.xml" 2>&1)
like "$out" "truncated\.xml:1: user bob: the file breaks off inside it; not imported" \
	"a truncated file: the record cut off is refused" || diag "$out"
like "$out" "truncated\.xml:1: XML error: .*; the rest of the file is not read" "... with the XML error and its line"
is "$(ctl user show alice@example.test >/dev/null 2>&1; echo $?)/$(ctl user show bob@example.test >/dev/null 2>&1; echo $?)" "0/1" \
	"... the record before it imported, bob not (no partial record)"

# billion laughs: refused at its DOCTYPE, nothing expanded
cat >"$L/laughs.xml" <<'EOF'
<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<server-data xmlns='urn:xmpp:pie:0'><host jid='example.test'><user name='lol' password='&lol9;'/></host></server-data>
EOF
out=$(timeout 10 $XEDGECTL user import "$L/laughs.xml" 2>&1)
is "$?" 1 "billion laughs: exit 1, at once"
like "$out" "laughs\.xml:2: a DOCTYPE is refused" "... refused at its DOCTYPE (line 2)" || diag "$out"

# ---- progress ------------------------------------------------------------
{
	echo "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.test'>"
	for i in $(seq 1 2500); do echo "<user name='bulk$i'>$S1</user>"; done
	echo "</host></server-data>"
} >"$L/bulk.xml"
out=$(ctl user import --dry-run "$L/bulk.xml" 2>&1)
like "$(printf '%s\n' "$out" | grep -c '^import: [12]000 records so far')/$(printf '%s\n' "$out" | tail -n 1)" \
	"^2/.*2500 would be added" "not on a terminal: a plain line every 1000 records, then the summary"
tty_out=$(script -qec "$XEDGECTL user import --dry-run $L/bulk.xml" /dev/null 2>&1)
like "$(printf '%s' "$tty_out" | tr '\r' '\n' | grep -c '^\[#*  *\] *[0-9]*%\|^\[#*\] 100%')" '^[1-9]' \
	"on a terminal: a progress bar" || diag "$(printf '%s' "$tty_out" | tr '\r' '\n' | tail -n 3)"
