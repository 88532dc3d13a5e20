/* xedgectl against the PostgreSQL user database (xedgectl_pg.h). Blocking
 * libpq: a command line tool may wait (connect_timeout bounds it). */
#define _GNU_SOURCE
#include "xedgectl_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "pgstore.h"
#include "tokens.h"
#include "util.h"

#define CTL_OK 0
#define CTL_FAILED 1
#define CTL_USAGE 2
#define CTL_CONFIG 3

/* a row as one string (columns joined by \x1f, NULL as \x1e): to compare */
struct snap {
    char **jid, **row;
    size_t n, cap;
};

struct xe_ctlpg {
    PGconn *db;
    char dir[64];
    struct snap users, tombs; /* the rows as copied */
};

static PGconn *
pg_connect(const struct xe_conf *conf, char **error_r)
{
    /* a command line tool may wait, but not forever: statement_timeout */
    const char *keys[5] = {"connect_timeout", "options", "dbname", NULL, NULL};
    const char *vals[5] = {"5", "-c statement_timeout=60000", conf->user_store_database,
                           NULL, NULL};
    char *pw = NULL;
    PGconn *db;

    if (xe_pg_read_password(conf->user_store_database_password_file, &pw, error_r) < 0)
        return NULL;
    if (pw != NULL) {
        keys[3] = "password";
        vals[3] = pw;
    }
    db = PQconnectdbParams(keys, vals, 1);
    if (pw != NULL) {
        OPENSSL_cleanse(pw, strlen(pw));
        free(pw);
    }
    if (db == NULL || PQstatus(db) != CONNECTION_OK) {
        *error_r = xe_asprintf("the user database is unreachable: %s",
                               db ? PQerrorMessage(db) : "out of memory");
        (*error_r)[strcspn(*error_r, "\n")] = '\0';
        PQfinish(db);
        return NULL;
    }
    PQclear(PQexec(db, "SET client_min_messages = warning"));
    return db;
}

/* run SQL (params: n values); PGRES_COMMAND_OK/TUPLES_OK, else NULL + error */
static PGresult *
pg_q(PGconn *db, const char *sql, int n, const char *const *v, char **error_r)
{
    PGresult *r =
        n > 0 ? PQexecParams(db, sql, n, NULL, v, NULL, NULL, 0) : PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    free(*error_r);
    *error_r = xe_asprintf("the user database: %s", PQerrorMessage(db));
    (*error_r)[strcspn(*error_r, "\n")] = '\0';
    PQclear(r);
    return NULL;
}

static bool
pg_ok(PGconn *db, const char *sql, int n, const char *const *v, char **error_r)
{
    PGresult *r = pg_q(db, sql, n, v, error_r);
    PQclear(r);
    return r != NULL;
}

static int
schema_version(PGconn *db, char **error_r)
{
    PGresult *r =
        pg_q(db, "SELECT coalesce(max(version), 0) FROM xe_schema", 0, NULL, error_r);
    int v = r != NULL ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

static int
check_schema(PGconn *db, char **error_r)
{
    PGresult *r =
        pg_q(db, "SELECT to_regclass('xe_schema') IS NOT NULL", 0, NULL, error_r);
    bool there = r != NULL && PQgetvalue(r, 0, 0)[0] == 't';
    int v;

    PQclear(r);
    if (r == NULL)
        return -1;
    if (!there || (v = schema_version(db, error_r)) < XE_PG_SCHEMA_VERSION) {
        free(*error_r);
        *error_r = xe_asprintf("the user database's schema is not at version %d: run "
                               "'xedgectl db migrate'",
                               XE_PG_SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

static char *
join_row(char *const *vals, size_t n)
{
    struct xe_buf b;
    char *s;

    xe_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        if (vals[i] == NULL)
            xe_buf_append(&b, "\x1e", 1);
        else
            xe_buf_append_str(&b, vals[i]);
        xe_buf_append(&b, "\x1f", 1);
    }
    xe_buf_append(&b, "", 1);
    s = xe_strdup((const char *)b.data);
    OPENSSL_cleanse(b.data, b.len);
    xe_buf_free(&b);
    return s;
}

static int
snap_add(struct snap *s, const char *jid, char *row)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **j = realloc(s->jid, cap * sizeof(char *));
        if (j == NULL)
            return -1;
        s->jid = j;
        if ((j = realloc(s->row, cap * sizeof(char *))) == NULL)
            return -1;
        s->row = j;
        s->cap = cap;
    }
    s->jid[s->n] = xe_strdup(jid);
    s->row[s->n++] = row;
    return 0;
}

static void
snap_free(struct snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->jid[i]);
        OPENSSL_cleanse(s->row[i], strlen(s->row[i]));
        free(s->row[i]);
    }
    free(s->jid);
    free(s->row);
    memset(s, 0, sizeof(*s));
}

static const char *
snap_find(const struct snap *s, const char *jid)
{
    for (size_t i = 0; i < s->n; i++) /* sorted: a binary search would do */
        if (strcmp(s->jid[i], jid) == 0)
            return s->row[i];
    return NULL;
}

struct walk {
    struct snap *snap;
    int failed;
};

static int
user_snap_cb(const struct xe_user *u, void *ctx)
{
    struct walk *w = ctx;
    char *vals[XE_PG_USER_COLS];
    if (xe_pg_user_to_row(u, vals) != 0 ||
        snap_add(w->snap, u->jid, join_row(vals, XE_PG_USER_COLS)) != 0)
        w->failed = 1;
    xe_pg_vals_free(vals, XE_PG_USER_COLS);
    return w->failed;
}

static int
tomb_snap_cb(const struct xe_tombstone *t, void *ctx)
{
    struct walk *w = ctx;
    char *vals[XE_PG_TOMB_COLS];
    if (xe_pg_tomb_to_row(t, vals) != 0 ||
        snap_add(w->snap, t->jid, join_row(vals, XE_PG_TOMB_COLS)) != 0)
        w->failed = 1;
    xe_pg_vals_free(vals, XE_PG_TOMB_COLS);
    return w->failed;
}

/* the store's users and tombstones, as rows */
static int
take_snap(struct xe_userstore *store, struct snap *users, struct snap *tombs,
          char **error_r)
{
    struct walk w = {users, 0};
    if (xe_userstore_foreach(store, NULL, user_snap_cb, &w, error_r) != XE_US_OK ||
        w.failed)
        return -1;
    w.snap = tombs;
    if (xe_userstore_tomb_foreach(store, NULL, tomb_snap_cb, &w, error_r) != XE_US_OK ||
        w.failed)
        return -1;
    return 0;
}

/* copy the rows of result R into STORE: users (tomb false) or tombstones */
static int
load_rows(PGresult *r, bool tomb, struct xe_userstore *store, char **error_r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *v[XE_PG_USER_COLS];
        int ncol = tomb ? XE_PG_TOMB_COLS : XE_PG_USER_COLS, rc;

        for (int c = 0; c < ncol; c++)
            v[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
        if (tomb) {
            struct xe_tombstone t;
            struct xe_user *u = calloc(1, sizeof(*u));
            if (u == NULL || xe_pg_tomb_from_row(v, &t) != 0) {
                free(u);
                *error_r =
                    xe_asprintf("the user database: a bad tombstone row (%s)", v[0]);
                return -1;
            }
            /* a tombstone is made by burying a user */
            snprintf(u->jid, sizeof(u->jid), "%s", t.jid);
            rc = xe_userstore_put(store, u, false, error_r);
            free(u);
            if (rc != XE_US_OK || xe_userstore_bury(store, &t, error_r) != XE_US_OK)
                return -1;
        } else {
            struct xe_user *u = calloc(1, sizeof(*u));
            if (u == NULL || xe_pg_user_from_row(v, u) != 0) {
                free(u);
                *error_r = xe_asprintf("the user database: a bad user row (%s)", v[0]);
                return -1;
            }
            rc = xe_userstore_put(store, u, false, error_r);
            OPENSSL_cleanse(u, sizeof(*u));
            free(u);
            if (rc != XE_US_OK)
                return -1;
        }
    }
    return 0;
}

static void
rm_copy(const char *dir)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

int
xe_ctlpg_begin(const struct xe_conf *conf, const char *jid, struct xe_userstore **store_r,
               struct xe_ctlpg **pg_r, char **error_r)
{
    struct xe_ctlpg *pg = calloc(1, sizeof(*pg));
    const char *v[1] = {jid};
    PGresult *r = NULL;
    int ret = -1;

    *store_r = NULL;
    *pg_r = NULL;
    if (pg == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(pg->dir, sizeof(pg->dir), "%s/xedgectl.XXXXXX",
             tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
    if (mkdtemp(pg->dir) == NULL) {
        *error_r = xe_asprintf("%s: %s", pg->dir, strerror(errno));
        pg->dir[0] = '\0';
        goto out;
    }
    if ((pg->db = pg_connect(conf, error_r)) == NULL ||
        check_schema(pg->db, error_r) < 0 || !pg_ok(pg->db, "BEGIN", 0, NULL, error_r))
        goto out;
    if (xe_userstore_open(pg->dir, false, 64 + (jid ? 0 : conf->user_store_map_mb),
                          store_r, error_r) != XE_US_OK)
        goto out;
    if ((r = pg_q(pg->db, jid ? xe_pg_sql_tomb_one : xe_pg_sql_tomb_all, jid ? 1 : 0, v,
                  error_r)) == NULL ||
        load_rows(r, true, *store_r, error_r) < 0)
        goto out;
    PQclear(r);
    if ((r = pg_q(pg->db, jid ? xe_pg_sql_user_one : xe_pg_sql_user_all, jid ? 1 : 0, v,
                  error_r)) == NULL ||
        load_rows(r, false, *store_r, error_r) < 0)
        goto out;
    if (take_snap(*store_r, &pg->users, &pg->tombs, error_r) < 0)
        goto out;
    ret = 0;
out:
    PQclear(r);
    if (ret < 0) {
        xe_userstore_close(store_r);
        PQfinish(pg->db);
        if (pg->dir[0])
            rm_copy(pg->dir);
        snap_free(&pg->users);
        snap_free(&pg->tombs);
        free(pg);
    } else
        *pg_r = pg;
    return ret;
}

/* the insert of a new row: the upsert without its ON CONFLICT (a row made
 * meanwhile by someone else is an error, not overwritten) */
static char *
insert_sql(const char *upsert)
{
    const char *p = strstr(upsert, " ON CONFLICT");
    return xe_strndup(upsert, (size_t)(p - upsert));
}

static const char *const *
split_row(char *row, const char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *e = strchr(row, '\x1f');
        *e = '\0';
        v[i] = strcmp(row, "\x1e") == 0 ? NULL : row;
        row = e + 1;
    }
    return v;
}

/* write what differs between OLD and NOW (rows of one table) */
static int
write_diff(PGconn *db, const struct snap *old, const struct snap *now, bool tomb,
           unsigned *changes, char **error_r)
{
    const char *upsert = tomb ? xe_pg_sql_tomb_upsert : xe_pg_sql_user_upsert;
    const char *del = tomb ? xe_pg_sql_tomb_delete : xe_pg_sql_user_delete;
    int ncol = tomb ? XE_PG_TOMB_COLS : XE_PG_USER_COLS;
    char *ins = insert_sql(upsert);
    int ret = -1;

    for (size_t i = 0; i < old->n; i++) {
        const char *v[1] = {old->jid[i]};
        if (snap_find(now, old->jid[i]) == NULL) {
            if (!pg_ok(db, del, 1, v, error_r))
                goto out;
            (*changes)++;
        }
    }
    for (size_t i = 0; i < now->n; i++) {
        const char *was = snap_find(old, now->jid[i]);
        const char *v[XE_PG_USER_COLS];
        char *copy;
        bool ok;

        if (was != NULL && strcmp(was, now->row[i]) == 0)
            continue;
        copy = xe_strdup(now->row[i]);
        ok = pg_ok(db, was ? upsert : ins, ncol, split_row(copy, v, (size_t)ncol),
                   error_r);
        OPENSSL_cleanse(copy, strlen(now->row[i]));
        free(copy);
        if (!ok)
            goto out;
        (*changes)++;
    }
    ret = 0;
out:
    free(ins);
    return ret;
}

int
xe_ctlpg_end(struct xe_ctlpg **pgp, struct xe_userstore **store, bool commit,
             char **error_r)
{
    struct xe_ctlpg *pg = *pgp;
    struct snap users = {0}, tombs = {0};
    unsigned changes = 0;
    int ret = -1;

    if (pg == NULL)
        return 0;
    *pgp = NULL;
    if (commit) {
        if (take_snap(*store, &users, &tombs, error_r) < 0 ||
            write_diff(pg->db, &pg->tombs, &tombs, true, &changes, error_r) < 0 ||
            write_diff(pg->db, &pg->users, &users, false, &changes, error_r) < 0 ||
            !pg_ok(pg->db, "COMMIT", 0, NULL, error_r))
            goto out;
    }
    ret = 0;
out:
    if (ret < 0 || !commit)
        PQclear(PQexec(pg->db, "ROLLBACK"));
    xe_userstore_close(store);
    PQfinish(pg->db);
    rm_copy(pg->dir);
    snap_free(&users);
    snap_free(&tombs);
    snap_free(&pg->users);
    snap_free(&pg->tombs);
    free(pg);
    return ret;
}

/* ---- db migrate | import | export, cluster status ---------------------- */

static void
pg_usage(FILE *f)
{
    fprintf(
        f,
        "usage: xedgectl [-c FILE] db migrate    create or upgrade the schema "
        "(idempotent)\n"
        "       xedgectl [-c FILE] db version    the schema's version\n"
        "       xedgectl [-c FILE] db import     copy the LMDB store (user_store.path) "
        "into "
        "the database\n"
        "       xedgectl [-c FILE] db export     copy the database into the LMDB store\n"
        "       xedgectl [-c FILE] db prune [--retention SECONDS]\n"
        "                                        prune the change log now (as the\n"
        "                                        purging node does every minute)\n"
        "       xedgectl [-c FILE] cluster status [--json]   each node's heartbeat\n");
}

static int
db_migrate(PGconn *db, char **error_r)
{
    int v;

    if (!pg_ok(db, xe_pg_sql_schema_table, 0, NULL, error_r) ||
        !pg_ok(db, "BEGIN", 0, NULL, error_r) ||
        !pg_ok(db, "LOCK TABLE xe_schema IN EXCLUSIVE MODE", 0, NULL, error_r) ||
        (v = schema_version(db, error_r)) < 0)
        return CTL_FAILED;
    if (v > XE_PG_SCHEMA_VERSION) {
        *error_r = xe_asprintf("the user database's schema is at version %d, newer than "
                               "this xedgectl's %d",
                               v, XE_PG_SCHEMA_VERSION);
        return CTL_FAILED;
    }
    for (unsigned s = (unsigned)v + 1; s <= XE_PG_SCHEMA_VERSION; s++) {
        char num[16];
        const char *p[1] = {num};
        snprintf(num, sizeof(num), "%u", s);
        if (!pg_ok(db, xe_pg_migration(s), 0, NULL, error_r) ||
            !pg_ok(db, "INSERT INTO xe_schema (version) VALUES ($1::integer)", 1, p,
                   error_r))
            return CTL_FAILED;
        printf("schema version %u applied\n", s);
    }
    if (!pg_ok(db, "COMMIT", 0, NULL, error_r))
        return CTL_FAILED;
    printf("schema at version %d\n", XE_PG_SCHEMA_VERSION);
    return CTL_OK;
}

struct copy_ctx {
    PGconn *db;
    unsigned users, tombs;
    char *err;
    int failed;
};

static int
import_user_cb(const struct xe_user *u, void *arg)
{
    struct copy_ctx *c = arg;
    char *vals[XE_PG_USER_COLS];
    if (xe_pg_user_to_row(u, vals) != 0) {
        c->err = xe_asprintf("cannot convert the record of %s", u->jid);
        c->failed = 1;
    } else if (!pg_ok(c->db, xe_pg_sql_user_upsert, XE_PG_USER_COLS,
                      (const char *const *)vals, &c->err))
        c->failed = 1;
    else
        c->users++;
    xe_pg_vals_free(vals, XE_PG_USER_COLS);
    return c->failed;
}

static int
import_tomb_cb(const struct xe_tombstone *t, void *arg)
{
    struct copy_ctx *c = arg;
    char *vals[XE_PG_TOMB_COLS];
    if (xe_pg_tomb_to_row(t, vals) != 0 ||
        !pg_ok(c->db, xe_pg_sql_tomb_upsert, XE_PG_TOMB_COLS, (const char *const *)vals,
               &c->err))
        c->failed = 1;
    else
        c->tombs++;
    xe_pg_vals_free(vals, XE_PG_TOMB_COLS);
    return c->failed;
}

/* LMDB store -> database, one transaction */
static int
db_import(const struct xe_conf *conf, PGconn *db, char **error_r)
{
    struct xe_userstore *store = NULL;
    struct copy_ctx c = {db, 0, 0, NULL, 0};
    int ret = CTL_FAILED;

    if (check_schema(db, error_r) < 0)
        return CTL_FAILED;
    if (xe_userstore_open(conf->user_store, true, conf->user_store_map_mb, &store,
                          error_r) != XE_US_OK)
        return CTL_CONFIG;
    if (!pg_ok(db, "BEGIN", 0, NULL, error_r))
        goto out;
    if (xe_userstore_tomb_foreach(store, NULL, import_tomb_cb, &c, error_r) != XE_US_OK ||
        c.failed ||
        xe_userstore_foreach(store, NULL, import_user_cb, &c, error_r) != XE_US_OK ||
        c.failed) {
        if (c.err != NULL) {
            free(*error_r);
            *error_r = c.err;
            c.err = NULL;
        }
        goto out;
    }
    if (!pg_ok(db, "COMMIT", 0, NULL, error_r))
        goto out;
    printf("imported %u users and %u tombstones from %s\n", c.users, c.tombs,
           conf->user_store);
    ret = CTL_OK;
out:
    free(c.err);
    xe_userstore_close(&store);
    return ret;
}

/* database -> LMDB store (the rows replace the store's records of the same
 * names; the store's other records stay), and the sequence of that snapshot
 * in replica.seq */
static int
db_export(const struct xe_conf *conf, PGconn *db, char **error_r)
{
    struct xe_userstore *store = NULL;
    PGresult *ru = NULL, *rt = NULL, *rs = NULL;
    int ret = CTL_FAILED;
    char path[4200];
    FILE *f;

    if (check_schema(db, error_r) < 0 ||
        !pg_ok(db, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, error_r))
        return CTL_FAILED;
    if ((rs = pg_q(db, "SELECT coalesce(max(seq), 0) FROM xe_changes", 0, NULL,
                   error_r)) == NULL ||
        (rt = pg_q(db, xe_pg_sql_tomb_all, 0, NULL, error_r)) == NULL ||
        (ru = pg_q(db, xe_pg_sql_user_all, 0, NULL, error_r)) == NULL)
        goto out;
    if (xe_userstore_open(conf->user_store, false, conf->user_store_map_mb, &store,
                          error_r) != XE_US_OK) {
        ret = CTL_CONFIG;
        goto out;
    }
    for (int i = 0; i < PQntuples(rt);
         i++) /* a same-named user goes: the tombstone stays */
        (void)xe_userstore_tomb_del(store, PQgetvalue(rt, i, 0), NULL);
    if (load_rows(rt, true, store, error_r) < 0 ||
        load_rows(ru, false, store, error_r) < 0)
        goto out;
    /* the copy is a replica at that sequence: a node started on it pulls
     * only what came after (pgsync_io.c) */
    snprintf(path, sizeof(path), "%s/replica.seq", conf->user_store);
    if ((f = fopen(path, "w")) == NULL || fprintf(f, "%s\n", PQgetvalue(rs, 0, 0)) < 0 ||
        fclose(f) != 0) {
        *error_r = xe_asprintf("%s: %s", path, strerror(errno));
        goto out;
    }
    printf("exported %d users and %d tombstones to %s (at change %s)\n", PQntuples(ru),
           PQntuples(rt), conf->user_store, PQgetvalue(rs, 0, 0));
    ret = CTL_OK;
out:
    PQclear(ru);
    PQclear(rt);
    PQclear(rs);
    PQclear(PQexec(db, "ROLLBACK"));
    xe_userstore_close(&store);
    return ret;
}

static int
cluster_status(PGconn *db, bool json, char **error_r)
{
    PGresult *r;

    if (check_schema(db, error_r) < 0 ||
        (r = pg_q(db, xe_pg_sql_nodes, 0, NULL, error_r)) == NULL)
        return CTL_FAILED;
    if (!json)
        printf("%-20s %8s %9s %10s %8s %8s %7s %7s %s\n", "NODE", "SEEN_S", "SESSIONS",
               "REPLICA", "BEHIND", "LAG_MS", "QUEUED", "ERRORS", "DATABASE");
    else
        printf("[");
    for (int i = 0; i < PQntuples(r); i++) {
        double seen = atof(PQgetvalue(r, i, 1));
        long long seq = atoll(PQgetvalue(r, i, 3)), newest = atoll(PQgetvalue(r, i, 4));
        /* a node writes its heartbeat every second when it reaches the database */
        const char *reach = seen < 5 ? "reachable" : "unreachable";
        if (json)
            printf(
                "%s{\"node\":\"%s\",\"seen_s\":%.1f,\"sessions\":%s,\"replica_seq\":%lld,"
                "\"behind\":%lld,\"lag_ms\":%s,\"queued\":%s,\"errors\":%s,"
                "\"database\":\"%s\",\"version\":\"%s\",\"started\":\"%s\"}",
                i ? "," : "", PQgetvalue(r, i, 0), seen, PQgetvalue(r, i, 2), seq,
                newest > seq ? newest - seq : 0, PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
                PQgetvalue(r, i, 7), reach, PQgetvalue(r, i, 8), PQgetvalue(r, i, 9));
        else
            printf("%-20s %8.1f %9s %10lld %8lld %8s %7s %7s %s\n", PQgetvalue(r, i, 0),
                   seen, PQgetvalue(r, i, 2), seq, newest > seq ? newest - seq : 0,
                   PQgetvalue(r, i, 5), PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), reach);
    }
    if (json)
        printf("]\n");
    PQclear(r);
    return CTL_OK;
}

/* the change log's pruning (pgstore.h): compaction, then retention */
static int
db_prune(PGconn *db, unsigned retention_s, char **error_r)
{
    char num[32];
    const char *v[1] = {num};
    PGresult *r;
    long before, compacted;

    snprintf(num, sizeof(num), "%u", retention_s);
    if (check_schema(db, error_r) < 0 ||
        (r = pg_q(db, "SELECT count(*) FROM xe_changes", 0, NULL, error_r)) == NULL)
        return CTL_FAILED;
    before = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    if ((r = pg_q(db, xe_pg_sql_compact, 0, NULL, error_r)) == NULL)
        return CTL_FAILED;
    compacted = atol(PQcmdTuples(r));
    PQclear(r);
    if (!pg_ok(db, xe_pg_sql_prune, 1, v, error_r) ||
        (r = pg_q(db,
                  "SELECT (SELECT count(*) FROM xe_changes), through FROM xe_prune"
                  " WHERE id = 1",
                  0, NULL, error_r)) == NULL)
        return CTL_FAILED;
    printf("change log: %ld entries, %ld superseded removed, %ld without a row removed, "
           "%s left; pruned through %s\n",
           before, compacted, before - compacted - atol(PQgetvalue(r, 0, 0)),
           PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    PQclear(r);
    return CTL_OK;
}

int
xe_ctlpg_main(const char *config, int argc, char **argv)
{
    struct xe_conf *conf = NULL;
    PGconn *db = NULL;
    char *err = NULL;
    int ret = CTL_USAGE;
    bool json = false;
    const char *what = argc > 1 ? argv[1] : NULL;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        pg_usage(stdout);
        return CTL_OK;
    }
    if (strcmp(argv[0], "cluster") == 0) {
        if (what == NULL || strcmp(what, "status") != 0 ||
            (argc == 3 && strcmp(argv[2], "--json") != 0) || argc > 3) {
            pg_usage(stderr);
            return CTL_USAGE;
        }
        json = argc == 3;
    } else if (what != NULL && strcmp(what, "prune") == 0) {
        if (!(argc == 2 || (argc == 4 && strcmp(argv[2], "--retention") == 0 &&
                            strtoul(argv[3], NULL, 10) > 0))) {
            pg_usage(stderr);
            return CTL_USAGE;
        }
    } else if (what == NULL || argc != 2 ||
               (strcmp(what, "migrate") != 0 && strcmp(what, "import") != 0 &&
                strcmp(what, "export") != 0 && strcmp(what, "version") != 0)) {
        pg_usage(stderr);
        return CTL_USAGE;
    }
    ret = CTL_CONFIG;
    if (xe_conf_load(config, &conf, &err) != 0)
        goto out;
    if (conf->user_store_database == NULL) {
        err = xe_asprintf("%s: no user_store.database: the users are in the LMDB store "
                          "alone",
                          config);
        goto out;
    }
    if ((db = pg_connect(conf, &err)) == NULL) {
        ret = CTL_FAILED;
        goto out;
    }
    if (strcmp(argv[0], "cluster") == 0)
        ret = cluster_status(db, json, &err);
    else if (strcmp(what, "migrate") == 0)
        ret = db_migrate(db, &err);
    else if (strcmp(what, "import") == 0)
        ret = db_import(conf, db, &err);
    else if (strcmp(what, "export") == 0)
        ret = db_export(conf, db, &err);
    else if (strcmp(what, "prune") == 0)
        ret = db_prune(db,
                       argc == 4 ? (unsigned)strtoul(argv[3], NULL, 10)
                                 : conf->changes_retention_s,
                       &err);
    else {
        int v;
        PGresult *r =
            pg_q(db, "SELECT to_regclass('xe_schema') IS NOT NULL", 0, NULL, &err);
        if (r != NULL && PQgetvalue(r, 0, 0)[0] == 'f')
            v = 0;
        else
            v = r != NULL ? schema_version(db, &err) : -1;
        PQclear(r);
        ret = v < 0 ? CTL_FAILED : CTL_OK;
        if (v >= 0)
            printf("schema at version %d (this xedgectl knows %d)\n", v,
                   XE_PG_SCHEMA_VERSION);
    }
out:
    if (ret != CTL_OK && err != NULL)
        fprintf(stderr, "xedgectl: %s\n", err);
    free(err);
    PQfinish(db);
    if (conf != NULL)
        xe_conf_free(&conf);
    return ret;
}

int
xe_ctlpg_account_ended(struct xe_ctlpg *pg, const char *jid, bool kick, size_t *revoked_r,
                       char **error_r)
{
    const char *v[1] = {jid};
    PGresult *r = pg_q(pg->db, xe_pg_sql_token_delete_user, 1, v, error_r);

    if (r == NULL)
        return -1;
    *revoked_r = strtoul(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (kick && !pg_ok(pg->db, xe_pg_sql_kick, 1, v, error_r))
        return -1;
    return 0;
}

int
xe_ctlpg_tokens(const struct xe_conf *conf, const char *jid, const char *ua, bool list,
                int (*cb)(const char *ua, const struct xe_token_rec *rec, void *ctx),
                void *ctx, size_t *n_r, char **error_r)
{
    const char *v[2] = {jid, ua};
    PGconn *db = pg_connect(conf, error_r);
    PGresult *r = NULL;
    int ret = -1;

    *n_r = 0;
    if (db == NULL || check_schema(db, error_r) < 0)
        goto out;
    if (!list) {
        r = pg_q(db, ua ? xe_pg_sql_token_delete : xe_pg_sql_token_delete_user,
                 ua ? 2 : 1, v, error_r);
        if (r == NULL)
            goto out;
        *n_r = strtoul(PQcmdTuples(r), NULL, 10);
        ret = 0;
        goto out;
    }
    if ((r = pg_q(db, xe_pg_sql_token_list, 1, v, error_r)) == NULL)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        struct xe_token_rec rec;
        const char *b = PQgetvalue(r, i, 1);
        if (xe_token_decode(b, strlen(b), &rec) < 0)
            memset(&rec, 0, sizeof(rec)); /* listed, empty: revoke it */
        OPENSSL_cleanse(rec.cur.token, sizeof(rec.cur.token));
        OPENSSL_cleanse(rec.next.token, sizeof(rec.next.token));
        (*n_r)++;
        if (cb(PQgetvalue(r, i, 0), &rec, ctx) != 0)
            break;
    }
    ret = 0;
out:
    PQclear(r);
    PQfinish(db);
    return ret;
}
