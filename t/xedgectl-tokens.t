#!/bin/bash
# xedgectl-tokens.t: `xedgectl user tokens list|revoke` against a user store
# in a temporary directory. The FAST token records are written with
# mdb_load in the format tokens.c keeps (so a change of that format fails
# here too); the CLI must list them without ever printing a token, revoke
# one client's or all of a user's, leave other users' alone, and refuse bad
# arguments; user passwd, disable and del revoke the user's tokens. No
# daemon needed.
set -u
top=${XE_TOP_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
CTL="$top/src/xedgectl"
. "${XE_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/t/lib/offline.sh"
d=$(mktemp -d "${TMPDIR:-/tmp}/xedgectl-tokens.XXXXXX")
trap 'rm -rf "$d"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
diag() { printf '%s\n' "$@" | sed 's/^/#   /'; }

echo "1..14"

for tool in mdb_load openssl; do
	command -v $tool >/dev/null 2>&1 || { echo "Bail out! $tool is missing"; exit 1; }
done
offline_conf "$d"
C="$d/xedge.conf"

run() {
	"$CTL" -c "$C" "$@" </dev/null >"$d/out" 2>"$d/err"
	rc=$?
	out=$(cat "$d/out")
	err=$(cat "$d/err")
}
expect() {
	local want=$1 desc=$2 bad=0 s
	shift 2
	[ "$rc" -eq "$want" ] || bad=1
	while [ $# -ge 2 ]; do
		if [ "$1" = out ]; then s=$out; elif [ "$1" = err ]; then s=$err; fi
		if [ "${2:0:1}" = '!' ]; then
			printf '%s\n' "$s" | grep -Eq -- "${2:1}" && bad=1
		else
			printf '%s\n' "$s" | grep -Eq -- "$2" || bad=1
		fi
		shift 2
	done
	ok $bad "$desc"
	[ $bad -eq 0 ] || diag "rc=$rc (want $want)" "stdout: $out" "stderr: $err"
}

printf 'pw-alice\n' | "$CTL" -c "$C" user add alice@example.test >/dev/null 2>&1
printf 'pw-bob\n' | "$CTL" -c "$C" user add bob@example.test >/dev/null 2>&1
FP=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
# key: JID NUL USER-AGENT-ID; value: the record (tokens.c), "\0a" newlines
{
	printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n'
	printf ' alice@example.test\\00d4565fa7-4d72-4749-b3d3-740edbf87770\n'
	printf ' xt1\\0afp %s\\0acur HT-SHA-256-EXPR 1800000000 1801814400 7 xe1-SECRETalice1\\0anext HT-SHA-256-EXPR 1800086400 1801900800 - xe1-SECRETalice2\\0a\n' "$FP"
	printf ' alice@example.test\\00phone-2\n'
	printf ' xt1\\0afp %s\\0acur HT-SHA-256-NONE 1800000000 1801814400 - xe1-SECRETalice3\\0a\n' "$FP"
	printf ' bob@example.test\\00phone-2\n'
	printf ' xt1\\0afp %s\\0acur HT-SHA-256-NONE 1800000000 1801814400 - xe1-SECRETbob\\0a\n' "$FP"
	printf 'DATA=END\n'
} >"$d/dump"
mdb_load -s fast_tokens -f "$d/dump" "$d/users" 2>"$d/load.err"
ok $? "three token records loaded ($(cat "$d/load.err"))"

run user tokens list alice@example.test
expect 0 "list: both clients of alice, both slots, mechanism, expiry, count" \
	out 'd4565fa7-4d72-4749-b3d3-740edbf87770 +cur +HT-SHA-256-EXPR +2027-01-15T08:00:00Z +2027-02-05T08:00:00Z +7' \
	out 'd4565fa7-4d72-4749-b3d3-740edbf87770 +next +HT-SHA-256-EXPR .* -$' \
	out '^phone-2 +cur +HT-SHA-256-NONE' out '!SECRET' out '!bob'
run user tokens list ALICE@Example.TEST
expect 0 "list: the JID is normalised" out '^phone-2 +cur'
run user tokens revoke alice@example.test phone-2
expect 0 "revoke one client" out 'revoked the tokens of alice@example.test for user agent phone-2'
run user tokens list alice@example.test
expect 0 "then only the other client is listed" out 'd4565fa7' out '!phone-2'
run user tokens revoke alice@example.test phone-2
expect 1 "revoking it again: exit 1" err 'has no token for user agent phone-2'
run user tokens revoke alice@example.test
expect 0 "revoke all of alice's" out 'revoked the tokens of alice@example.test: 1 client$'
run user tokens list alice@example.test
expect 0 "none left for alice" out '!d4565fa7' out '!phone-2'
run user tokens list bob@example.test
expect 0 "bob's untouched" out '^phone-2 +cur +HT-SHA-256-NONE'
bad=0
for args in "user tokens" "user tokens list" "user tokens show bob@example.test" \
	"user tokens list bob@example.test extra" "user tokens revoke a@b c d"; do
	run $args
	[ "$rc" -eq 64 ] || { bad=1; diag "$args: rc=$rc $err"; }
done
run user tokens list not-a-jid
[ "$rc" -eq 1 ] && printf '%s' "$err" | grep -q 'not a bare JID' || { bad=1; diag "bad JID: rc=$rc $err"; }
run user --help
printf '%s' "$out" | grep -q 'tokens revoke JID \[USER-AGENT-ID\]' || { bad=1; diag "help: $out"; }
ok $bad "usage errors exit 64, a bad JID exits 1, the help names the commands"

# a new password, a disable, a deletion: the user's tokens go
for u in carol dan; do printf 'pw\n' | "$CTL" -c "$C" user add $u@example.test >/dev/null 2>&1; done
{
	printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n'
	for u in carol dan; do
		printf ' %s@example.test\\00phone-1\n' $u
		printf ' xt1\\0afp %s\\0acur HT-SHA-256-NONE 1800000000 1801814400 - xe1-SECRET%s\\0a\n' "$FP" $u
	done
	printf 'DATA=END\n'
} >"$d/dump2"
mdb_load -s fast_tokens -f "$d/dump2" "$d/users" 2>"$d/load.err"
printf 'pw-bob-2\n' | "$CTL" -c "$C" user passwd bob@example.test >"$d/out" 2>"$d/err"
rc=$? out=$(cat "$d/out") err=$(cat "$d/err")
expect 0 "user passwd: the user's tokens revoked" err 'revoked the FAST tokens of bob@example.test: 1 client'
run user tokens list bob@example.test
expect 0 "... none left for bob" out '!phone-2'
run user disable carol@example.test
expect 0 "user disable: revoked" err 'revoked the FAST tokens of carol@example.test: 1 client'
run user del --keep-data dan@example.test
expect 0 "user del: revoked" err 'revoked the FAST tokens of dan@example.test: 1 client'
