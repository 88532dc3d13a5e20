/* xedge: the PostgreSQL user database of several nodes, its sans-IO parts
 * (doc/scaling.md): the schema and its versions, the SQL the daemon and
 * xedgectl send, and the conversion between the store's records and rows.
 *
 * A user row holds the LMDB record's fields as columns, each SCRAM secret in
 * the record's text form ("iterations:salt:StoredKey:ServerKey", base64), so
 * that a row and a record convert both ways without loss. No libpq here:
 * values are C strings (NULL: SQL NULL), as libpq's text format has them. */
#ifndef XE_PGSTORE_H
#define XE_PGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userstore.h"

/* the newest schema version this build knows (xe_schema) */
#define XE_PG_SCHEMA_VERSION 2
/* the channel the change trigger notifies */
#define XE_PG_CHANNEL "xe_changes"

/* The SQL of migration step VERSION (1 .. XE_PG_SCHEMA_VERSION), one script
 * for PQexec, run in one transaction with its row in xe_schema; NULL beyond. */
const char *xe_pg_migration(unsigned version);
/* Creates the version table if missing (run before reading it). */
extern const char xe_pg_sql_schema_table[];

/* xe_users columns, in the order of the values below */
#define XE_PG_USER_COLS 11
extern const char *const xe_pg_user_columns[XE_PG_USER_COLS];
/* xe_tombstones columns */
#define XE_PG_TOMB_COLS 6
extern const char *const xe_pg_tomb_columns[XE_PG_TOMB_COLS];

/* upserts and deletes ($1 .. $n: the columns above; delete: $1 the JID) */
extern const char xe_pg_sql_user_upsert[];
extern const char xe_pg_sql_user_delete[];
extern const char xe_pg_sql_tomb_upsert[];
extern const char xe_pg_sql_tomb_delete[];
/* per-account lockouts: a failure ($1 the account's lockout key, $2 the
 * threshold, $3 the window and $4 the lockout, in ms: the count restarts
 * after the window or a lockout's end, and reaching the threshold locks the
 * account, in one statement); a success forgets the account ($1) */
extern const char xe_pg_sql_lock_failure[];
extern const char xe_pg_sql_lock_forget[];
/* the rows of a user/tombstone, all of them (no parameter) or one ($1) */
extern const char xe_pg_sql_user_all[];
extern const char xe_pg_sql_user_one[];
extern const char xe_pg_sql_tomb_all[];
extern const char xe_pg_sql_tomb_one[];

/* The replica's pull: $1 the last applied sequence, $2 the batch size.
 * Columns: seq, kind ('u', 't', 'l'), jid, lag_ms (now - the change's time),
 * then the user's XE_PG_USER_COLS (the first, jid, NULL: no such user now),
 * then the tombstone's XE_PG_TOMB_COLS (likewise), then the lockout's
 * failures and locked_until (unix ms; NULL: none), then the token's jid
 * and record (kind 'k': the change's jid is "JID/USER-AGENT-ID"), then the
 * pruning's mark: above $1, entries this replica needed may be gone (the
 * newest entry is never pruned, so such a pull has a row to say it). */
extern const char xe_pg_sql_pull[];
#define XE_PG_PULL_USER 4
#define XE_PG_PULL_TOMB (XE_PG_PULL_USER + XE_PG_USER_COLS)
#define XE_PG_PULL_LOCK (XE_PG_PULL_TOMB + XE_PG_TOMB_COLS)
#define XE_PG_PULL_TOK (XE_PG_PULL_LOCK + 2) /* the token's jid (NULL: none), record */
#define XE_PG_PULL_MARK                                                                  \
    (XE_PG_PULL_TOK + 2) /* the pruning's mark, in the same snapshot */
#define XE_PG_PULL_COLS (XE_PG_PULL_MARK + 1)

/* FAST tokens (version 2): upsert ($1 jid, $2 user agent id, $3 the
 * encoded record), delete one ($1, $2) or all of a user ($1); list ($1:
 * ua, rec). A kick of JID's live sessions on every node ($1). */
extern const char xe_pg_sql_token_upsert[];
extern const char xe_pg_sql_token_delete[];
extern const char xe_pg_sql_token_delete_user[];
extern const char xe_pg_sql_token_list[];
extern const char xe_pg_sql_kick[];
/* The change log's pruning (doc/scaling.md): the compaction (no parameter)
 * and the retention ($1 seconds), which moves the mark (xe_prune: the
 * highest sequence pruned of a key that has no row; a replica whose
 * sequence is below it resyncs whole). */
extern const char xe_pg_sql_compact[];
extern const char xe_pg_sql_prune[];

/* A node's heartbeat: $1 name, $2 sessions, $3 replica seq, $4 lag ms,
 * $5 queued writes, $6 errors, $7 version. */
extern const char xe_pg_sql_heartbeat[];
/* cluster status: name, seconds since seen, sessions, replica seq, the
 * database's newest seq, lag ms, queued writes, errors, version, started */
extern const char xe_pg_sql_nodes[];

/* User -> row: vals[i] malloc'd strings (NULL: SQL NULL). 0, or XE_US_IO
 * (no memory) / XE_US_INVALID. Free with xe_pg_vals_free. */
int xe_pg_user_to_row(const struct xe_user *user, char *vals[XE_PG_USER_COLS]);
/* Row -> user (vals[0] the JID). 0 or XE_US_CORRUPT. */
int xe_pg_user_from_row(const char *const vals[XE_PG_USER_COLS], struct xe_user *user);
int xe_pg_tomb_to_row(const struct xe_tombstone *t, char *vals[XE_PG_TOMB_COLS]);
int xe_pg_tomb_from_row(const char *const vals[XE_PG_TOMB_COLS], struct xe_tombstone *t);
void xe_pg_vals_free(char **vals, size_t n);

/* The connection parameters: CONNINFO (a libpq connection string or URI)
 * and the password read from PASSWORD_FILE (its first line; NULL: none).
 * keys/vals for PQconnectdbParams/PQconnectStartParams with expand_dbname 1,
 * NULL-terminated; *password_r is to be cleansed and freed by the caller.
 * 0, or -1 with *error_r. */
int xe_pg_read_password(const char *password_file, char **password_r, char **error_r);

#endif
