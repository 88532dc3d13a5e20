#!/bin/bash
# pg-store.t: xedgectl against a real PostgreSQL 15 (a throwaway cluster this
# test starts on 127.0.0.1 and stops by its PID): the schema created and
# migrated (versioned, idempotent), user commands as with LMDB, each a change
# in the log, a tombstone keeping a name, the LMDB store copied into the
# database and back.
. "${XE_TOP_SRCDIR:-.}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/pg.sh"
. "$XE_TOP_SRCDIR/t/lib/offline.sh"
top=$XE_TOP_BUILDDIR
d=$(mktemp -d "${TMPDIR:-/tmp}/xedge-pg.XXXXXX")
trap 'pg_down; rm -rf "$d"' EXIT
plan 20

port=$(pick_free_port) || bail "no free port"
pg_up "$d" "$port"

offline_keys "$d"
conf() { # conf STORE_PATH [DATABASE]
	cat <<CONF
listeners = ( { kind = "starttls"; address = "127.0.0.1"; port = 5222; } );
domains = ( { name = "example.test"; certificate = "$d/cert.pem"; key = "$d/key.pem"; pool = "main"; } );
pools = ( { name = "main"; secret_file = "$d/secret";
            servers = ( { name = "p1"; address = "127.0.0.1"; port = 15222; } ); } );
user_store = { path = "$1"; ${2:+database = \"$2\"; database_password_file = \"$PG_PASSFILE\";} };
CONF
}
conf "$d/replica" "$PG_CONNINFO" >"$d/pg.conf"
conf "$d/lmdb" >"$d/lmdb.conf"
X() { timeout 30 "$top/src/xedgectl" -c "$d/pg.conf" "$@"; }
L() { timeout 30 "$top/src/xedgectl" -c "$d/lmdb.conf" "$@"; }

out=$(echo pw | X user add alice@example.test 2>&1)
like "$out" "db migrate" "before the schema: a user command says to migrate ($out)"
is "$(X db version)" "schema at version 0 (this xedgectl knows 2)" "db version: none yet"
out=$(X db migrate)
like "${out//$'\n'/ }" "schema version 1 applied schema version 2 applied" "db migrate creates versions 1 and 2 (${out//$'\n'/ | })"
out=$(X db migrate)
is "$out" "schema at version 2" "db migrate again: nothing to do"
is "$(pg_sql "select string_agg(version::text, ' ' order by version) from xe_schema")" "1 2" "one row per version"

echo secret1 | X user add alice@example.test
is "$?" 0 "user add"
out=$(echo other | X user add alice@example.test 2>&1)
is "$?" 1 "user add again: refused ($out)"
is "$(pg_sql "select disabled, scram_sha256 like '4096:%' from xe_users where jid = 'alice@example.test'")" \
	"f|t" "the row: enabled, a SCRAM-SHA-256 secret"
X user disable alice@example.test >/dev/null 2>&1
is "$(pg_sql "select disabled from xe_users where jid = 'alice@example.test'")" t "user disable"
like "$(X user show alice@example.test)" "disabled: yes" "user show reads the database"
X user pin alice@example.test p1 >/dev/null 2>&1
is "$(pg_sql "select pin from xe_users where jid = 'alice@example.test'")" p1 "user pin"
is "$(pg_sql "select string_agg(kind || ':' || jid, ' ' order by seq) from xe_changes")" \
	"u:alice@example.test u:alice@example.test u:alice@example.test" "each change one row in the log"

X user del alice@example.test >/dev/null 2>&1
is "$(pg_sql "select (select count(*) from xe_users) || '/' || (select count(*) from xe_tombstones)")" \
	"0/1" "user del: the row goes, a tombstone stays (the purge is pending)"
out=$(echo pw | X user add alice@example.test 2>&1)
like "$out" "not purged yet" "the tombstone keeps the name ($out)"
X user del --keep-data alice@example.test >/dev/null 2>&1
is "$(pg_sql "select count(*) from xe_tombstones")" 0 "del --keep-data: the tombstone goes"

# LMDB -> database -> LMDB
echo pw-b | L user add bob@example.test
echo pw-c | L user add carol@example.test
L user disable carol@example.test >/dev/null 2>&1
conf "$d/lmdb" "$PG_CONNINFO" >"$d/both.conf"
out=$(timeout 30 "$top/src/xedgectl" -c "$d/both.conf" db import)
is "$out" "imported 2 users and 0 tombstones from $d/lmdb" "db import"
is "$(X user list | tr '\n' ' ')" "bob@example.test carol@example.test (disabled) " "the database has them"
conf "$d/back" "$PG_CONNINFO" >"$d/back.conf"
out=$(timeout 30 "$top/src/xedgectl" -c "$d/back.conf" db export)
newest=$(pg_sql 'select max(seq) from xe_changes')
is "$out/$(cat "$d/back/replica.seq")" "exported 2 users and 0 tombstones to $d/back (at change $newest)/$newest" \
	"db export: the copy is a replica at the database's newest change"
conf "$d/back" >"$d/backonly.conf"
is "$(timeout 30 "$top/src/xedgectl" -c "$d/backonly.conf" user show bob@example.test | grep -v '^created\|^modified')" \
	"$(L user show bob@example.test | grep -v '^created\|^modified')" "db export: the same record back in LMDB"
is "$(timeout 30 "$top/src/xedgectl" -c "$d/backonly.conf" user list | tr '\n' ' ')" \
	"bob@example.test carol@example.test (disabled) " "db export: every user, flags kept"
