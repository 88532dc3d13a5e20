/* xedge: the PostgreSQL user database, sans-IO parts (pgstore.h). */
#include "pgstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util.h"

const char *const xe_pg_user_columns[XE_PG_USER_COLS] = {
    "jid",        "created",      "modified",     "disabled",        "pin",  "expires",
    "scram_sha1", "scram_sha256", "scram_sha512", "legacy_password", "extra"};
const char *const xe_pg_tomb_columns[XE_PG_TOMB_COLS] = {"jid",      "deleted", "pin",
                                                         "attempts", "next",    "error"};

const char xe_pg_sql_schema_table[] =
    "SET client_min_messages = warning;"
    "CREATE TABLE IF NOT EXISTS xe_schema (version integer PRIMARY KEY,"
    " applied timestamptz NOT NULL DEFAULT now())";

/* Version 1: users, tombstones, lockouts, the change log and its trigger,
 * the nodes' heartbeats. The trigger's advisory lock makes the sequence
 * order the commit order (a bigserial is taken at insert, not at commit: a
 * reader at N would otherwise miss an N-1 committed after N). */
static const char migration_1[] =
    "CREATE TABLE xe_users (jid text PRIMARY KEY, created bigint NOT NULL,"
    " modified bigint NOT NULL, disabled boolean NOT NULL DEFAULT false,"
    " pin text NOT NULL DEFAULT '', expires bigint NOT NULL DEFAULT 0,"
    " scram_sha1 text, scram_sha256 text, scram_sha512 text, legacy_password text,"
    " extra text NOT NULL DEFAULT '');"
    "CREATE TABLE xe_tombstones (jid text PRIMARY KEY, deleted bigint NOT NULL,"
    " pin text NOT NULL DEFAULT '', attempts integer NOT NULL DEFAULT 0,"
    " next bigint NOT NULL DEFAULT 0, error text NOT NULL DEFAULT '');"
    "CREATE TABLE xe_lockouts (jid text PRIMARY KEY, failures integer NOT NULL,"
    " last_failure timestamptz NOT NULL DEFAULT now(), locked_until timestamptz);"
    "CREATE TABLE xe_changes (seq bigserial PRIMARY KEY, kind char(1) NOT NULL,"
    " jid text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());"
    "CREATE TABLE xe_nodes (name text PRIMARY KEY, seen timestamptz NOT NULL,"
    " started timestamptz NOT NULL, sessions bigint NOT NULL DEFAULT 0,"
    " replica_seq bigint NOT NULL DEFAULT 0, replica_lag_ms bigint NOT NULL DEFAULT 0,"
    " writes_queued bigint NOT NULL DEFAULT 0, db_errors bigint NOT NULL DEFAULT 0,"
    " version text NOT NULL DEFAULT '');"
    "CREATE FUNCTION xe_log_change() RETURNS trigger LANGUAGE plpgsql AS $$"
    " DECLARE s bigint; k text; BEGIN"
    " PERFORM pg_advisory_xact_lock(7274017);"
    " k := CASE WHEN TG_OP = 'DELETE' THEN OLD.jid ELSE NEW.jid END;"
    " INSERT INTO xe_changes (kind, jid) VALUES (TG_ARGV[0], k) RETURNING seq INTO s;"
    " PERFORM pg_notify('" XE_PG_CHANNEL "', s::text); RETURN NULL; END $$;"
    "CREATE TRIGGER xe_users_changed AFTER INSERT OR UPDATE OR DELETE ON xe_users"
    " FOR EACH ROW EXECUTE FUNCTION xe_log_change('u');"
    "CREATE TRIGGER xe_tombstones_changed AFTER INSERT OR UPDATE OR DELETE ON "
    "xe_tombstones"
    " FOR EACH ROW EXECUTE FUNCTION xe_log_change('t');"
    "CREATE TRIGGER xe_lockouts_changed AFTER INSERT OR UPDATE OR DELETE ON xe_lockouts"
    " FOR EACH ROW EXECUTE FUNCTION xe_log_change('l');";

/* Version 2: FAST tokens (a row per user and user agent id, the encoded
 * record of tokens.h), changes of kind 'k' keyed "JID/USER-AGENT-ID" (a
 * bare JID has no '/'); the kicks of live sessions on every node (kind 'x',
 * an event: no row, xe_kick()); the pruning's mark (xe_prune: the highest
 * sequence pruned whose key has no row: a replica behind it resyncs); the
 * index the compaction uses. */
static const char migration_2[] =
    "CREATE TABLE xe_tokens (jid text NOT NULL, ua text NOT NULL, rec text NOT NULL,"
    " modified timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (jid, ua));"
    "CREATE FUNCTION xe_log_token_change() RETURNS trigger LANGUAGE plpgsql AS $$"
    " DECLARE s bigint; k text; BEGIN"
    " PERFORM pg_advisory_xact_lock(7274017);"
    " k := CASE WHEN TG_OP = 'DELETE' THEN OLD.jid || '/' || OLD.ua"
    " ELSE NEW.jid || '/' || NEW.ua END;"
    " INSERT INTO xe_changes (kind, jid) VALUES ('k', k) RETURNING seq INTO s;"
    " PERFORM pg_notify('" XE_PG_CHANNEL "', s::text); RETURN NULL; END $$;"
    "CREATE TRIGGER xe_tokens_changed AFTER INSERT OR UPDATE OR DELETE ON xe_tokens"
    " FOR EACH ROW EXECUTE FUNCTION xe_log_token_change();"
    "CREATE FUNCTION xe_kick(j text) RETURNS void LANGUAGE plpgsql AS $$"
    " DECLARE s bigint; BEGIN PERFORM pg_advisory_xact_lock(7274017);"
    " INSERT INTO xe_changes (kind, jid) VALUES ('x', j) RETURNING seq INTO s;"
    " PERFORM pg_notify('" XE_PG_CHANNEL "', s::text); END $$;"
    "CREATE TABLE xe_prune (id integer PRIMARY KEY CHECK (id = 1),"
    " through bigint NOT NULL DEFAULT 0, at timestamptz);"
    "INSERT INTO xe_prune (id) VALUES (1);"
    "CREATE INDEX xe_changes_key ON xe_changes (kind, jid, seq);";

const char *
xe_pg_migration(unsigned version)
{
    switch (version) {
    case 1:
        return migration_1;
    case 2:
        return migration_2;
    default:
        return NULL;
    }
}

#define USER_COLS_SQL                                                                    \
    "jid, created, modified, disabled, pin, expires, scram_sha1, scram_sha256,"          \
    " scram_sha512, legacy_password, extra"
#define TOMB_COLS_SQL "jid, deleted, pin, attempts, next, error"

const char xe_pg_sql_user_upsert[] =
    "INSERT INTO xe_users (" USER_COLS_SQL ") VALUES ($1, $2::bigint, $3::bigint,"
    " $4::boolean, $5, $6::bigint, $7, $8, $9, $10, $11) ON CONFLICT (jid) DO UPDATE SET"
    " created = EXCLUDED.created, modified = EXCLUDED.modified,"
    " disabled = EXCLUDED.disabled, pin = EXCLUDED.pin, expires = EXCLUDED.expires,"
    " scram_sha1 = EXCLUDED.scram_sha1, scram_sha256 = EXCLUDED.scram_sha256,"
    " scram_sha512 = EXCLUDED.scram_sha512, legacy_password = EXCLUDED.legacy_password,"
    " extra = EXCLUDED.extra";
const char xe_pg_sql_user_delete[] = "DELETE FROM xe_users WHERE jid = $1";
const char xe_pg_sql_tomb_upsert[] =
    "INSERT INTO xe_tombstones (" TOMB_COLS_SQL ") VALUES ($1, $2::bigint, $3,"
    " $4::integer, $5::bigint, $6) ON CONFLICT (jid) DO UPDATE SET"
    " deleted = EXCLUDED.deleted, pin = EXCLUDED.pin, attempts = EXCLUDED.attempts,"
    " next = EXCLUDED.next, error = EXCLUDED.error";
const char xe_pg_sql_tomb_delete[] = "DELETE FROM xe_tombstones WHERE jid = $1";
#define MS " * interval '1 millisecond'"
#define RESTART "(l.last_failure < now() - $3::bigint" MS " OR l.locked_until < now())"
const char xe_pg_sql_lock_failure[] =
    "INSERT INTO xe_lockouts AS l (jid, failures, last_failure, locked_until)"
    " VALUES ($1, 1, now(), CASE WHEN 1 >= $2::integer THEN now() + $4::bigint" MS " END)"
    " ON CONFLICT (jid) DO UPDATE SET"
    " failures = CASE WHEN " RESTART " THEN 1 ELSE l.failures + 1 END,"
    " last_failure = now(),"
    " locked_until = CASE WHEN l.locked_until > now() THEN l.locked_until"
    " WHEN (CASE WHEN " RESTART " THEN 1 ELSE l.failures + 1 END) >= $2::integer"
    " THEN now() + $4::bigint" MS " END";
const char xe_pg_sql_lock_forget[] = "DELETE FROM xe_lockouts WHERE jid = $1";
const char xe_pg_sql_user_all[] = "SELECT " USER_COLS_SQL " FROM xe_users ORDER BY jid";
const char xe_pg_sql_user_one[] =
    "SELECT " USER_COLS_SQL " FROM xe_users WHERE jid = $1 FOR UPDATE";
const char xe_pg_sql_tomb_all[] =
    "SELECT " TOMB_COLS_SQL " FROM xe_tombstones ORDER BY jid";
const char xe_pg_sql_tomb_one[] =
    "SELECT " TOMB_COLS_SQL " FROM xe_tombstones WHERE jid = $1 FOR UPDATE";

const char xe_pg_sql_pull[] =
    "SELECT c.seq, c.kind, c.jid,"
    " (extract(epoch FROM clock_timestamp() - c.at) * 1000)::bigint,"
    " u.jid, u.created, u.modified, u.disabled, u.pin, u.expires, u.scram_sha1,"
    " u.scram_sha256, u.scram_sha512, u.legacy_password, u.extra,"
    " t.jid, t.deleted, t.pin, t.attempts, t.next, t.error,"
    " l.failures, (extract(epoch FROM l.locked_until) * 1000)::bigint,"
    " k.jid, k.rec, (SELECT through FROM xe_prune WHERE id = 1)"
    " FROM xe_changes c"
    " LEFT JOIN xe_users u ON c.kind = 'u' AND u.jid = c.jid"
    " LEFT JOIN xe_tombstones t ON c.kind = 't' AND t.jid = c.jid"
    " LEFT JOIN xe_lockouts l ON c.kind = 'l' AND l.jid = c.jid"
    " LEFT JOIN xe_tokens k ON c.kind = 'k' AND k.jid = split_part(c.jid, '/', 1)"
    " AND k.ua = substr(c.jid, strpos(c.jid, '/') + 1)"
    " WHERE c.seq > $1::bigint ORDER BY c.seq LIMIT $2::integer";

const char xe_pg_sql_token_upsert[] =
    "INSERT INTO xe_tokens (jid, ua, rec) VALUES ($1, $2, $3) ON CONFLICT (jid, ua)"
    " DO UPDATE SET rec = EXCLUDED.rec, modified = now()";
const char xe_pg_sql_token_delete[] = "DELETE FROM xe_tokens WHERE jid = $1 AND ua = $2";
const char xe_pg_sql_token_delete_user[] = "DELETE FROM xe_tokens WHERE jid = $1";
const char xe_pg_sql_token_list[] =
    "SELECT ua, rec FROM xe_tokens WHERE jid = $1 ORDER BY ua";
const char xe_pg_sql_kick[] = "SELECT xe_kick($1)";

/* Compaction: an entry with a newer one of the same key is of no use to any
 * replica (a pull applies the key's current row), whatever its sequence. */
const char xe_pg_sql_compact[] =
    "DELETE FROM xe_changes c WHERE EXISTS (SELECT 1 FROM xe_changes d"
    " WHERE d.kind = c.kind AND d.jid = c.jid AND d.seq > c.seq)";
/* Retention: the last entry of a key that has no row any more (a deletion,
 * a kick) goes once every node seen within $1 seconds has applied it, or
 * once it is older than $1 seconds; the mark records the highest pruned. */
const char xe_pg_sql_prune[] =
    "WITH gone AS (DELETE FROM xe_changes c WHERE"
    " (c.at < now() - $1::bigint * interval '1 second'"
    " OR c.seq <= (SELECT coalesce(min(n.replica_seq), 0) FROM xe_nodes n"
    " WHERE n.seen > now() - $1::bigint * interval '1 second'))"
    " AND c.seq < (SELECT max(seq) FROM xe_changes)"
    " AND CASE c.kind WHEN 'u' THEN NOT EXISTS (SELECT 1 FROM xe_users WHERE jid = c.jid)"
    " WHEN 't' THEN NOT EXISTS (SELECT 1 FROM xe_tombstones WHERE jid = c.jid)"
    " WHEN 'l' THEN NOT EXISTS (SELECT 1 FROM xe_lockouts WHERE jid = c.jid)"
    " WHEN 'k' THEN NOT EXISTS (SELECT 1 FROM xe_tokens k WHERE"
    " k.jid = split_part(c.jid, '/', 1) AND k.ua = substr(c.jid, strpos(c.jid, '/') + 1))"
    " ELSE true END RETURNING c.seq)"
    " UPDATE xe_prune SET through = greatest(through, (SELECT max(seq) FROM gone)),"
    " at = now() WHERE id = 1 AND EXISTS (SELECT 1 FROM gone)";

const char xe_pg_sql_heartbeat[] =
    "INSERT INTO xe_nodes (name, seen, started, sessions, replica_seq, replica_lag_ms,"
    " writes_queued, db_errors, version) VALUES ($1, now(), now(), $2::bigint, "
    "$3::bigint,"
    " $4::bigint, $5::bigint, $6::bigint, $7) ON CONFLICT (name) DO UPDATE SET"
    " seen = now(), sessions = EXCLUDED.sessions, replica_seq = EXCLUDED.replica_seq,"
    " replica_lag_ms = EXCLUDED.replica_lag_ms, writes_queued = EXCLUDED.writes_queued,"
    " db_errors = EXCLUDED.db_errors, version = EXCLUDED.version";

const char xe_pg_sql_nodes[] =
    "SELECT n.name, round(extract(epoch FROM now() - n.seen)::numeric, 1), n.sessions,"
    " n.replica_seq, (SELECT coalesce(max(seq), 0) FROM xe_changes), n.replica_lag_ms,"
    " n.writes_queued, n.db_errors, n.version,"
    " to_char(n.started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM xe_nodes n ORDER BY n.name";

void
xe_pg_vals_free(char **vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (vals[i] != NULL) {
            OPENSSL_cleanse(vals[i], strlen(vals[i]));
            free(vals[i]);
        }
        vals[i] = NULL;
    }
}

static char *
dupn(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* the column of a record line's name (-1: unknown, -2: the version) */
static int
user_col(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int col;
    } map[] = {{"v", -2},
               {"created", 1},
               {"modified", 2},
               {"disabled", 3},
               {"pin", 4},
               {"expires", 5},
               {"SCRAM-SHA-1", 6},
               {"SCRAM-SHA-256", 7},
               {"SCRAM-SHA-512", 8},
               {"legacy-password", 9}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].name) == len && memcmp(map[i].name, name, len) == 0)
            return map[i].col;
    return -1;
}

int
xe_pg_user_to_row(const struct xe_user *user, char *vals[XE_PG_USER_COLS])
{
    char *buf = NULL, *extra = NULL;
    size_t len = 0, extra_len = 0;
    int r;

    memset(vals, 0, sizeof(char *) * XE_PG_USER_COLS);
    if ((r = xe_user_encode(user, &buf, &len)) != 0)
        return r;
    r = XE_US_IO;
    if ((extra = calloc(1, len + 1)) == NULL || (vals[0] = strdup(user->jid)) == NULL ||
        (vals[5] = strdup("0")) == NULL)
        goto out;
    for (size_t pos = 0; pos < len;) {
        const char *line = buf + pos, *nl = memchr(line, '\n', len - pos), *eq;
        size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
        int col;

        pos += ll + 1;
        if ((eq = memchr(line, '=', ll)) == NULL)
            continue;
        col = user_col(line, (size_t)(eq - line));
        if (col == -2)
            continue;
        if (col == -1) { /* a line this version does not know: kept as it is */
            memcpy(extra + extra_len, line, ll);
            extra_len += ll;
            extra[extra_len++] = '\n';
            continue;
        }
        free(vals[col]);
        if (col == 3)
            vals[col] = strdup(eq[1] == '1' ? "true" : "false");
        else
            vals[col] = dupn(eq + 1, ll - (size_t)(eq - line) - 1);
        if (vals[col] == NULL)
            goto out;
    }
    vals[10] = extra;
    extra = NULL;
    r = vals[1] && vals[2] && vals[3] && vals[4] ? 0 : XE_US_INVALID;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    free(extra);
    if (r != 0)
        xe_pg_vals_free(vals, XE_PG_USER_COLS);
    return r;
}

int
xe_pg_user_from_row(const char *const vals[XE_PG_USER_COLS], struct xe_user *user)
{
    static const char *const names[XE_PG_USER_COLS] = {
        NULL,      "created",     "modified",      "disabled",      "pin",
        "expires", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "legacy-password",
        NULL};
    size_t cap = 64, len, n;
    char *buf;
    int r;

    if (vals[0] == NULL || vals[1] == NULL || vals[2] == NULL || vals[3] == NULL)
        return XE_US_CORRUPT;
    for (int i = 1; i < XE_PG_USER_COLS; i++)
        cap += (vals[i] != NULL ? strlen(vals[i]) : 0) + 20;
    if ((buf = malloc(cap)) == NULL)
        return XE_US_IO;
    len = (size_t)snprintf(buf, cap, "v=1\n");
    for (int i = 1; i < XE_PG_USER_COLS - 1; i++) {
        const char *v = vals[i];
        if (v == NULL || (i == 5 && strcmp(v, "0") == 0))
            continue;
        if (i == 3)
            v = v[0] == 't' ? "1" : "0";
        n = (size_t)snprintf(buf + len, cap - len, "%s=%s\n", names[i], v);
        len += n;
    }
    if (vals[10] != NULL) {
        n = (size_t)snprintf(buf + len, cap - len, "%s", vals[10]);
        len += n;
    }
    r = xe_user_decode(vals[0], buf, len, user);
    OPENSSL_cleanse(buf, cap);
    free(buf);
    return r != 0 ? XE_US_CORRUPT : 0;
}

int
xe_pg_tomb_to_row(const struct xe_tombstone *t, char *vals[XE_PG_TOMB_COLS])
{
    char num[3][32];

    snprintf(num[0], sizeof(num[0]), "%" PRId64, t->deleted);
    snprintf(num[1], sizeof(num[1]), "%u", t->attempts);
    snprintf(num[2], sizeof(num[2]), "%" PRId64, t->next);
    vals[0] = strdup(t->jid);
    vals[1] = strdup(num[0]);
    vals[2] = strdup(t->pin);
    vals[3] = strdup(num[1]);
    vals[4] = strdup(num[2]);
    vals[5] = strdup(t->error);
    for (int i = 0; i < XE_PG_TOMB_COLS; i++) {
        if (vals[i] == NULL) {
            xe_pg_vals_free(vals, XE_PG_TOMB_COLS);
            return XE_US_IO;
        }
    }
    return 0;
}

static int
parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

int
xe_pg_tomb_from_row(const char *const vals[XE_PG_TOMB_COLS], struct xe_tombstone *t)
{
    int64_t attempts;

    memset(t, 0, sizeof(*t));
    for (int i = 0; i < XE_PG_TOMB_COLS; i++)
        if (vals[i] == NULL)
            return XE_US_CORRUPT;
    if (strlen(vals[0]) >= sizeof(t->jid) || strlen(vals[2]) >= sizeof(t->pin) ||
        parse_i64(vals[1], &t->deleted) != 0 || parse_i64(vals[3], &attempts) != 0 ||
        attempts < 0 || attempts > 1000000000 || parse_i64(vals[4], &t->next) != 0)
        return XE_US_CORRUPT;
    t->attempts = (unsigned)attempts;
    snprintf(t->jid, sizeof(t->jid), "%s", vals[0]);
    snprintf(t->pin, sizeof(t->pin), "%s", vals[2]);
    snprintf(t->error, sizeof(t->error), "%s", vals[5]); /* truncated if longer */
    return 0;
}

int
xe_pg_read_password(const char *password_file, char **password_r, char **error_r)
{
    char buf[1024];
    FILE *f;
    size_t n;

    *password_r = NULL;
    if (password_file == NULL)
        return 0;
    if ((f = fopen(password_file, "r")) == NULL) {
        *error_r =
            xe_asprintf("database password file %s: %s", password_file, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    *password_r = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (*password_r == NULL) {
        *error_r = xe_asprintf("out of memory");
        return -1;
    }
    return 0;
}
