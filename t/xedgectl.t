#!/bin/bash
# xedgectl.t: the admin CLI against a user store in a temporary directory:
# exit codes, messages, what `show` reveals (never the SCRAM keys), that the
# password is never taken from argv, and the no-echo prompt on a terminal
# (driven through a pseudo-terminal). No daemon needed.
set -u
top=${XE_TOP_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
CTL="$top/src/xedgectl"
. "${XE_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/t/lib/offline.sh"
PY=/usr/bin/python3
d=$(mktemp -d "${TMPDIR:-/tmp}/xedgectl.XXXXXX")
trap 'rm -rf "$d"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# diag TEXT...: indented TAP comment lines
diag() { printf '%s\n' "$@" | sed 's/^/#   /'; }

echo "1..29"

if ! command -v mdb_dump >/dev/null 2>&1; then
	diag "mdb_dump (lmdb-utils) is missing"
fi

offline_conf "$d"
C="$d/xedge.conf"

# run ARGS...: runs xedgectl -c $C ARGS with stdin from $IN (default
# /dev/null); sets rc, out (stdout), err (stderr).
IN=/dev/null
run() {
	"$CTL" -c "$C" "$@" <"$IN" >"$d/out" 2>"$d/err"
	rc=$?
	out=$(cat "$d/out")
	err=$(cat "$d/err")
}
# runpw PASSWORD ARGS...: the same with PASSWORD as one line on stdin
runpw() {
	printf '%s\n' "$1" >"$d/pw"
	shift
	IN="$d/pw" run "$@"
}
# expect RC DESCRIPTION [STREAM REGEX]...: rc must be RC and each stream
# (out|err) must match its extended regex.
expect() {
	local want=$1 desc=$2 bad=0 s
	shift 2
	[ "$rc" -eq "$want" ] || bad=1
	while [ $# -ge 2 ]; do
		if [ "$1" = out ]; then s=$out; else s=$err; fi
		printf '%s\n' "$s" | grep -Eq -- "$2" || bad=1
		shift 2
	done
	ok $bad "$desc"
	[ $bad -eq 0 ] || diag "rc=$rc (want $want)" "stdout: $out" "stderr: $err"
}

# record JID: the raw LMDB value of JID (mdb_dump -p, "\0a" between lines),
# empty when there is none.
record() {
	mdb_dump -p -s users "$d/users" 2>/dev/null |
		awk -v k=" $1" 'f { print; exit } $0 == k { f = 1 }'
}
# secrets RECORD: the base64 salts, StoredKeys and ServerKeys, one a line
secrets() {
	printf '%s\n' "$1" | sed 's/\\0a/\n/g' | sed -n 's/^SCRAM-SHA-[0-9]*=[0-9]*://p' | tr ':' '\n'
}
# scram_ok RECORD PASSWORD: the record's StoredKeys/ServerKeys derive from PASSWORD
scram_ok() {
	"$PY" - "$1" "$2" <<'PY'
import base64, hashlib, hmac, sys
rec, pw = sys.argv[1], sys.argv[2].encode()
n = 0
for line in rec.strip().split("\\0a"):
    name, _, val = line.partition("=")
    if not name.startswith("SCRAM-SHA-"):
        continue
    md = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[name]
    it, salt, sk, svk = val.split(":")
    sp = hashlib.pbkdf2_hmac(md, pw, base64.b64decode(salt), int(it))
    ck = hmac.new(sp, b"Client Key", md).digest()
    if hashlib.new(md, ck).digest() != base64.b64decode(sk):
        sys.exit(1)
    if hmac.new(sp, b"Server Key", md).digest() != base64.b64decode(svk):
        sys.exit(1)
    n += 1
sys.exit(0 if n == 3 else 1)
PY
}

# ---- help ------------------------------------------------------------------
run --help
expect 0 "--help: exit 0, usage on stdout" out "^usage: xedgectl \[-c FILE\] user COMMAND" out "user --help"
run user --help
expect 0 "user --help: exit 0, the commands on stdout" out "^commands:" \
	out "add .*JID" out "passwd .*JID" out "list .*\[DOMAIN\]" out "expire JID WHEN" out "show JID" out "exit status"

# ---- add -------------------------------------------------------------------
runpw 'correct horse battery' user add alice@example.test
rec_alice=$(record alice@example.test)
bad=0
[ "$rc" -eq 0 ] || bad=1
[ -n "$rec_alice" ] || bad=1
scram_ok "$rec_alice" 'correct horse battery' || bad=1
ok $bad "add with the password on stdin: exit 0, the stored secrets derive from it"
[ $bad -eq 0 ] || diag "rc=$rc err=$err" "record: $rec_alice"

runpw 'other' user add alice@example.test
expect 1 "add an existing user: exit 1, says it exists" err "user alice@example\.test already exists"
rec=$(record alice@example.test)
ok "$([ "$rec" = "$rec_alice" ] && echo 0 || echo 1)" "the refused add left the record as it was"

# ---- show ------------------------------------------------------------------
run user show Alice@Example.TEST
expect 0 "show (JID case-folded): jid, created, disabled, SCRAM info" \
	out "^jid: alice@example\.test$" \
	out "^created: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$" \
	out "^disabled: no$" \
	out "^SCRAM-SHA-1: [0-9]+ iterations$" \
	out "^SCRAM-SHA-256: [0-9]+ iterations$" \
	out "^SCRAM-SHA-512: [0-9]+ iterations$"
show_out=$out
nsec=0
leak=0
for s in $(secrets "$rec_alice"); do
	nsec=$((nsec + 1))
	case "$show_out" in *"$s"*)
		leak=1
		diag "show reveals $s"
		;;
	esac
done
ok "$([ $nsec -eq 9 ] && [ $leak -eq 0 ] && echo 0 || echo 1)" \
	"show reveals none of the $nsec base64 salts/StoredKeys/ServerKeys of the record"
[ $nsec -eq 9 ] || diag "expected 9 secrets in the record: $rec_alice"

# ---- list ------------------------------------------------------------------
runpw 'pw-bob' user add bob@example.test
rc1=$rc
runpw 'pw-carol' user add carol@other.test
expect 0 "add in a domain the configuration does not serve: exit 0 with a warning" \
	err "warning: the domain other\.test is not served"
[ "$rc1" -eq 0 ] || diag "add bob: rc=$rc1"
run user list
expect 0 "list: every user, in key order" out "^alice@example\.test
bob@example\.test
carol@other\.test$"
run user list Example.Test
expect 0 "list DOMAIN: only that domain's users" out "^alice@example\.test
bob@example\.test$"
run user list other.test
expect 0 "list another DOMAIN: only carol" out "^carol@other\.test$"

# ---- disable / enable ------------------------------------------------------
run user disable bob@example.test
rc1=$rc
run user list example.test
l1=$out
run user show bob@example.test
s1=$out
rc=$rc1 out="$l1
$s1"
expect 0 "disable: exit 0, list marks the user, show says so" \
	out "^bob@example\.test \(disabled\)$" out "^alice@example\.test$" out "^disabled: yes$"
run user enable bob@example.test
rc1=$rc
run user list example.test
l1=$out
run user show bob@example.test
rc=$rc1 out="$l1
$out"
bad=0
case "$out" in *"(disabled)"*) bad=1 ;; esac
expect 0 "enable: exit 0, the marker is gone" out "^bob@example\.test$" out "^disabled: no$"
ok $bad "enable: no user is listed as disabled"

# ---- passwd ----------------------------------------------------------------
runpw 'new secret words' user passwd alice@example.test
rec=$(record alice@example.test)
bad=0
[ "$rc" -eq 0 ] || bad=1
[ -n "$rec" ] && [ "$rec" != "$rec_alice" ] || bad=1
for s in $(secrets "$rec_alice"); do
	case "$rec" in *"$s"*) bad=1 ;; esac
done
scram_ok "$rec" 'new secret words' || bad=1
ok $bad "passwd: exit 0, new salts and keys, derived from the new password"
[ $bad -eq 0 ] || diag "rc=$rc err=$err" "old: $rec_alice" "new: $rec"
rec_alice=$rec

printf 'crlf words\r\n' >"$d/pw"
IN="$d/pw" run user passwd alice@example.test
rec=$(record alice@example.test)
scram_ok "$rec" 'crlf words'
ok $? "passwd: a line ending in CR LF gives the password without the CR"
rec_alice=$rec

runpw '' user passwd alice@example.test
rec=$(record alice@example.test)
expect 1 "passwd refuses an empty password (exit 1)" err "an empty password is refused"
ok "$([ "$rec" = "$rec_alice" ] && echo 0 || echo 1)" "the refused passwd left the record as it was"

# ---- del -------------------------------------------------------------------
run user del bob@example.test
rc1=$rc
run user show bob@example.test
rc2=$rc
e2=$err
run user del bob@example.test
bad=0
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 1 ] && [ "$rc" -eq 1 ] || bad=1
printf '%s\n' "$e2" | grep -q "no such user: bob@example.test" || bad=1
printf '%s\n' "$err" | grep -q "user bob@example.test is deleted already; the purge of its data at the backend is pending" || bad=1
[ -z "$(record bob@example.test)" ] || bad=1
ok $bad "del: exit 0; then show: no such user; del again: exit 1, the purge is pending"
[ $bad -eq 0 ] || diag "rc1=$rc1 rc2=$rc2 rc=$rc" "e2: $e2" "err: $err"

# the tombstone (no xedge runs here to purge): the name stays taken
run user list --pending
expect 0 "list --pending: bob's tombstone, no attempt yet" \
	out '^bob@example\.test deleted=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z pin=- attempts=0 next=- error=""$'
runpw 'again' user add bob@example.test
expect 1 "add of a name whose purge is pending: exit 1, why and how" \
	err "not purged yet" err "user del --keep-data bob@example\.test"
run user del --keep-data bob@example.test
expect 0 "del --keep-data on the pending name: the purge given up" err "given up"
runpw 'again' user add bob@example.test
rc1=$rc
run user del --keep-data bob@example.test
rc2=$rc
run user list --pending
ok "$([ "$rc1/$rc2/$rc/$out" = "0/0/0/" ] && echo 0 || echo 1)" "then the name is free; del --keep-data leaves no tombstone"
[ $bad -eq 0 ] || diag "rc del=$rc1 show=$rc2 del2=$rc" "$e2" "$err"

# ---- usage errors ----------------------------------------------------------
bad=0
for j in example.test alice@ @example.test 'alice@example.test/res' 'a b@example.test' 'a:b@example.test'; do
	runpw 'pw' user add "$j"
	if [ "$rc" -ne 2 ] || ! printf '%s\n' "$err" | grep -q "invalid JID"; then
		bad=1
		diag "add '$j': rc=$rc err=$err"
	fi
done
run user show example.test
[ "$rc" -eq 2 ] || bad=1
run user list 'bad/domain'
if [ "$rc" -ne 2 ] || ! printf '%s\n' "$err" | grep -q "invalid domain"; then
	bad=1
	diag "list bad/domain: rc=$rc err=$err"
fi
ok $bad "invalid JIDs and domains: exit 2 with a message"

bad=0
# ARGS | expected stderr regex
while IFS='|' read -r args re; do
	# shellcheck disable=SC2086
	run $args
	if [ "$rc" -ne 2 ] || ! printf '%s\n' "$err" | grep -Eq -- "$re"; then
		bad=1
		diag "'$args': rc=$rc (want 2) err=$err (want /$re/)"
	fi
done <<'CASES'
frobnicate|unknown command 'frobnicate'
user frobnicate x@example.test|unknown user command 'frobnicate'
user|^usage: xedgectl
user show|user show: a JID \(localpart@domain\) is required
user del a@example.test b@example.test|user del: too many arguments
user list a b|user list: too many arguments
--bogus user list|usage: xedgectl
CASES
"$CTL" >/dev/null 2>&1 </dev/null
r0=$?
[ "$r0" -eq 2 ] || {
	bad=1
	diag "no arguments: rc=$r0"
}
ok $bad "unknown commands, missing/extra arguments, bad options: exit 2"

"$CTL" -c "$d/nope.conf" user list >"$d/out" 2>"$d/err" </dev/null
rc=$?
out=$(cat "$d/out") err=$(cat "$d/err")
expect 3 "a missing configuration file: exit 3, names the file" err "nope\.conf"

# The password is never taken from argv.
runpw 'pw-from-stdin' user add dave@example.test 'hunter2-argv'
r1=$rc e1=$err
run user show dave@example.test
bad=0
[ "$r1" -eq 2 ] || bad=1
printf '%s\n' "$e1" | grep -q "too many arguments" || bad=1
[ "$rc" -eq 1 ] || bad=1
[ -z "$(record dave@example.test)" ] || bad=1
ok $bad "'user add JID PASSWORD': usage error (exit 2), the user is not created"
[ $bad -eq 0 ] || diag "add rc=$r1 err=$e1" "show rc=$rc"

# ---- the prompt on a terminal ----------------------------------------------
# ttydrive.py CTL CONF JID PW1 PW2 TRANSCRIPT: runs `xedgectl user add JID` on a
# pseudo-terminal, types PW1 and PW2 at the two prompts (each only once the
# terminal's echo is off), saves what the terminal showed, exits with
# xedgectl's status (100+ on a driver failure).
cat >"$d/ttydrive.py" <<'PY'
import os, pty, select, sys, termios, time
ctl, conf, jid, pw1, pw2, path = sys.argv[1:7]
pid, fd = pty.fork()
if pid == 0:
    os.execv(ctl, [ctl, "-c", conf, "user", "add", jid])
    os._exit(127)
seen = b""
def pump(timeout):
    global seen
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(fd, 4096)
    except OSError:
        return False
    if not data:
        return False
    seen += data
    return True
def echo_off():
    try:
        return not (termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        return False
def answer(prompt, pw):
    deadline = time.time() + 10
    while time.time() < deadline:
        if prompt in seen and echo_off():
            os.write(fd, pw.encode() + b"\n")
            return
        if not pump(0.02):
            break
    open(path, "wb").write(seen)
    sys.exit(101)
answer(b"New password: ", pw1)
# the second prompt: printed after the echo was restored, then echo off again
start = len(seen)
deadline = time.time() + 10
while time.time() < deadline and b"Retype new password: " not in seen[start:]:
    if not pump(0.02):
        break
answer(b"Retype new password: ", pw2)
deadline = time.time() + 10
while time.time() < deadline and pump(0.1):
    pass
_, st = os.waitpid(pid, 0)
open(path, "wb").write(seen)
sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 102)
PY
PW='Tty-Pass-7f3e9a'
"$PY" "$d/ttydrive.py" "$CTL" "$C" erin@example.test "$PW" "$PW" "$d/tty"
r1=$?
tty=$(tr -d '\r' <"$d/tty")
rec=$(record erin@example.test)
bad=0
[ "$r1" -eq 0 ] || bad=1
case "$tty" in *"$PW"*) bad=1 ;; esac
case "$tty" in *"New password: "*"Retype new password: "*) ;; *) bad=1 ;; esac
[ -n "$rec" ] && scram_ok "$rec" "$PW" || bad=1
ok $bad "terminal: prompts twice without echo, the password never shown, the user created with it"
[ $bad -eq 0 ] || diag "rc=$r1" "terminal showed: $tty" "record: $rec"

"$PY" "$d/ttydrive.py" "$CTL" "$C" frank@example.test "$PW" "${PW}x" "$d/tty"
r1=$?
tty=$(tr -d '\r' <"$d/tty")
bad=0
[ "$r1" -eq 1 ] || bad=1
printf '%s\n' "$tty" | grep -q "the passwords do not match" || bad=1
case "$tty" in *"$PW"*) bad=1 ;; esac
[ -z "$(record frank@example.test)" ] || bad=1
ok $bad "terminal: two different entries are refused (exit 1), no user created"
[ $bad -eq 0 ] || diag "rc=$r1" "terminal showed: $tty"
