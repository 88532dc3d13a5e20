#!/bin/bash
# e2e-import.t: users move from a legacy Prosody to xedge without a password
# reset. Prosody (storage "internal") keeps internal_hashed accounts as
# SCRAM-SHA-1 secrets and internal_plain ones as passwords;
# contrib/prosody/prosody-export-users turns its data directory into JSON
# lines and `xedgectl user import` adds them to the LMDB store, after which
# the users log in through xedge with their old passwords. `user export`
# writes the same format back (SCRAM secrets, never a password).
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

plan 21

EXPORTER="$XE_TOP_SRCDIR/contrib/prosody/prosody-export-users"
command -v prosodyctl >/dev/null || bail "prosodyctl is not installed (apt-get install prosody)"

APW="old-alice-$RANDOM"
BPW="old bob pw $RANDOM"
CPW="plain-carol-$RANDOM"
# An SHA-1-only domain: what the imported (SHA-1) secrets can serve, as a
# migrated domain is configured until its users set new passwords.
sandbox_up --conf 'sasl = { mechanisms = [ "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN" ]; };'
P="$XE_SANDBOX_DIR/legacy"
mkdir -p "$P/data" "$P/certs"
# register_in AUTH USER PASSWORD: create an account the way the legacy server does
register_in() {
	cat >"$P/$1.cfg.lua" <<CFG
data_path = "$P/data"
run_as_root = true
interfaces = { "127.0.0.1" }
authentication = "$1"
storage = "internal"
log = { { levels = { min = "error" }, to = "console" } }
VirtualHost "example.test"
CFG
	prosodyctl --config "$P/$1.cfg.lua" register "$2" example.test "$3" >/dev/null 2>&1
}
register_in internal_hashed alice "$APW"
register_in internal_hashed bob.smith "$BPW"
register_in internal_plain carol "$CPW"
[ -f "$P/data/example%2etest/accounts/bob%2esmith.dat" ] || bail "prosodyctl did not create the accounts: $(find "$P/data")"

"$EXPORTER" "$P/data" >"$P/users.jsonl" 2>"$P/export.err"
is "$?/$(wc -l <"$P/users.jsonl")" "0/3" "prosody-export-users: 3 accounts, exit 0"
like "$(grep '"alice@example.test"' "$P/users.jsonl")" '"SCRAM-SHA-1":\{.*"iterations":[0-9]+' \
	"... alice (internal_hashed) as SCRAM-SHA-1 secrets"
like "$(grep 'bob.smith@example.test' "$P/users.jsonl")" '"jid":"bob\.smith@example\.test"' \
	"... the escaped file name decoded (bob%2esmith.dat)"

out=$(ctl user import <"$P/users.jsonl" 2>&1)
is "$?" 0 "xedgectl user import: exit 0"
like "$out" "3 added, 0 replaced, 0 kept \(already there\), 0 failed" "... 3 added" || diag "$out"

raw --jid alice@example.test --password "$APW" --mech SCRAM-SHA-1
is "$(result RESULT)/$(result mech)" "ok/SCRAM-SHA-1" "alice logs in through xedge with her old password (SCRAM-SHA-1)"
client --jid alice@example.test --password "$APW" --mech SCRAM-SHA-1-PLUS
is "$RC/$(result mech)" "0/SCRAM-SHA-1-PLUS" "... and with SCRAM-SHA-1-PLUS (slixmpp)"
client --jid bob.smith@example.test --password "$BPW" --mech PLAIN
is "$RC/$(result mech)" "0/PLAIN" "bob.smith, with his (PLAIN, checked against the SHA-1 secret)"
client --jid alice@example.test --password "not-$APW" --mech SCRAM-SHA-1-PLUS
is "$(result RESULT)/$(result condition)" "failure/not-authorized" "a wrong password still fails"
client --jid carol@example.test --password "$CPW" --mech SCRAM-SHA-1-PLUS
is "$RC" 0 "carol (internal_plain: secrets derived at import) logs in"
like "$(ctl user show carol@example.test)" "SCRAM-SHA-256: [0-9]+ iterations" \
	"... and has the SHA-256 secret too"

out=$(ctl user import <"$P/users.jsonl" 2>&1)
like "$out" "0 added, 0 replaced, 3 kept" "importing again keeps the existing users"
out=$(ctl user import --replace "$P/users.jsonl" 2>&1)
like "$out" "0 added, 3 replaced, 0 kept" "--replace FILE replaces them"

# export: SCRAM secrets and metadata, never a password
ctl user export >"$P/export.jsonl"
is "$?/$(wc -l <"$P/export.jsonl")" "0/3" "user export: one line per user"
ok "$(grep -qi password "$P/export.jsonl" && echo 1 || echo 0)" "... no password in it"
ctl user export example.test >"$P/export2.jsonl"
cmp -s "$P/export.jsonl" "$P/export2.jsonl"
ok $? "... export DOMAIN gives the same for the only domain"
# an exported user, deleted and imported back, logs in again
grep '"alice@example.test"' "$P/export.jsonl" >"$P/alice.jsonl"
ctl user del alice@example.test
wait_purged
out=$(ctl user import "$P/alice.jsonl" 2>&1)
client --jid alice@example.test --password "$APW" --mech SCRAM-SHA-1-PLUS
is "$RC" 0 "export, delete, import: alice logs in again"
cmp -s "$P/alice.jsonl" <(ctl user export | grep '"alice@example.test"')
ok $? "... and exports exactly as before (created/modified kept)"

# bad lines are reported with their number; the good ones are imported
{
	echo '{"jid":"dave@example.test","password":"dave-pw"}'
	echo 'not json'
	echo '{"jid":"erin@example.test","password":"x","colour":"blue"}'
	echo '{"jid":"frank@example.test","scram":{"SCRAM-SHA-1":{"iterations":4096,"salt":"QUJD","stored_key":"QUJD","server_key":"QUJD"}}}'
	echo '{"jid":"no-domain","password":"x"}'
} >"$P/bad.jsonl"
out=$(ctl user import "$P/bad.jsonl" 2>&1)
is "$?" 1 "import with bad lines: exit 1"
like "$out" "bad\.jsonl:2: not JSON" "... line 2 reported (not JSON)" || diag "$out"
like "$(printf '%s\n' "$out" | grep -c 'bad\.jsonl:[345]:')" '^3$' \
	"... lines 3 (unknown key), 4 (key of the wrong length) and 5 (bad JID) too; only dave added ($(printf '%s' "$out" | tail -n 1))"
