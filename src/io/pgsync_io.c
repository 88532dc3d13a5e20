/* xedge: the replica of several nodes, libpq on the libuv loop (pgsync_io.h).
 *
 * One connection, one query in flight at a time, a queue of the rest (the
 * LISTEN, pulls, writes, the heartbeat). The connection is driven by a
 * uv_poll_t on PQsocket() (a new one when libpq changes the socket) and
 * timers: a one-second tick (heartbeat, a pull in case a notification was
 * missed, the timeouts) and the reconnection's backoff. */
#define _GNU_SOURCE
#include "pgsync_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "lockout.h"
#include "log.h"
#include "metrics.h"
#include "pgstore.h"
#include "tokens.h"
#include "util.h"
#include "xelimits.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

enum ps_state { PS_DOWN, PS_CONNECTING, PS_READY, PS_STOPPED };
enum job_kind { J_LISTEN, J_PULL, J_WRITE, J_HEARTBEAT, J_LEADER, J_PRUNE };

struct job {
    enum job_kind kind;
    const char *sql;
    int n;
    char *vals[XE_PG_USER_COLS];
    struct job *next;
};

/* a write made on some thread, waiting for the loop */
struct pending {
    char kind; /* 'u', 't', 'l' (a lockout count: failed, and the settings),
                * 'k' (a token record, jid "JID/UA"), 'K' (all of JID's tokens) */
    char *jid;
    bool failed;
    unsigned threshold;
    uint64_t window_ms, lockout_ms;
    struct pending *next;
};

struct xe_pgsync {
    uv_loop_t *loop;
    char *conninfo; /* a copy: a reload replaces the configuration */
    struct xe_userstore *store;
    char node[256];
    char *password;
    enum ps_state state;
    PGconn *db;
    uv_poll_t *poll; /* on PQsocket(), heap: closed asynchronously */
    int poll_fd;
    int poll_events;
    uv_timer_t tick, retry;
    uv_async_t wake;
    unsigned backoff_ms;
    uint64_t since_ms; /* the connect, or the query in flight, started */
    struct job *head, *tail, *inflight;
    size_t queued_writes;
    bool pull_queued, heartbeat_queued, pull_again;
    bool leader, leader_queued; /* holds the purge lock (one node at a time) */
    unsigned ticks;
    int64_t seq;    /* the replica's sequence */
    int64_t lag_ms; /* behind the database, as last measured */
    uint64_t down_since_ms;
    char seq_path[4096];
    /* counters (loop thread), shown in the metrics */
    uint64_t round_trips, errors, applied, dropped;
    xe_pgsync_account_fn account_fn;
    void *account_ctx;
    struct xe_lockout *lockout; /* the accounts' counts, shared */
    struct xe_tokens *tokens;   /* FAST tokens: replicated like the users */
    /* the change log's pruning (doc/scaling.md) */
    unsigned retention_s;
    int64_t pruned_through; /* the database's mark, as last pulled */
    bool resync;            /* behind the mark: pulling everything from 0, then a sweep */
    char **keys;            /* the resync's keys seen ("u" JID, "t" JID, "k" JID/UA) */
    size_t nkeys, capkeys;
    uint64_t resyncs, pruned_runs, kicks;
    /* from any thread */
    pthread_mutex_t mu;
    struct pending *pend;
    size_t n_pend;
    atomic_bool up;
    atomic_bool stopping;
};

static _Thread_local bool applying; /* the replica's own writes: no echo */

static uint64_t
now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* ---- the replica's sequence, kept beside the store ---------------------- */

static int64_t
seq_load(const char *path)
{
    char buf[32] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 ? strtoll(buf, NULL, 10) : 0;
}

static void
seq_save(struct xe_pgsync *ps)
{
    char tmp[4200], buf[32];
    int fd, n = snprintf(buf, sizeof(buf), "%" PRId64 "\n", ps->seq);

    snprintf(tmp, sizeof(tmp), "%s.tmp", ps->seq_path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        write(fd, buf, (size_t)n) != n || close(fd) != 0 ||
        rename(tmp, ps->seq_path) != 0)
        xe_warn("event=replica error=\"cannot write %s: %s\"", ps->seq_path,
                strerror(errno));
}

/* ---- a full resync (the replica is behind the pruning's mark) -------------
 *
 * The log keeps the last entry of every key that has a row (the compaction
 * drops only superseded entries); what the pruning dropped is the last entry
 * of keys that have none (deletions, kicks). A replica whose sequence is
 * below the mark may have missed a deletion: it pulls the whole log from 0
 * (every key that exists), notes each key, and then deletes what it holds
 * and the log did not name. */

static void
resync_begin(struct xe_pgsync *ps)
{
    xe_warn("event=replica state=resync seq=%" PRId64 " pruned_through=%" PRId64
            " reason=\"the change log was pruned past this replica\"",
            ps->seq, ps->pruned_through);
    ps->resync = true;
    ps->resyncs++;
    ps->seq = 0;
    ps->nkeys = 0;
}

static void
resync_note(struct xe_pgsync *ps, char kind, const char *jid)
{
    if (ps->nkeys >= XE_PG_RESYNC_KEYS_MAX)
        return;
    if (ps->nkeys == ps->capkeys) {
        ps->capkeys = ps->capkeys ? ps->capkeys * 2 : 1024;
        ps->keys = xe_realloc(ps->keys, ps->capkeys * sizeof(*ps->keys));
    }
    ps->keys[ps->nkeys++] = xe_asprintf("%c%s", kind, jid);
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct sweep {
    struct xe_pgsync *ps;
    char kind;
    char **gone;
    size_t n, cap;
};

static void
sweep_check(struct sweep *sw, const char *key)
{
    char buf[4096];
    const char *p = buf;

    snprintf(buf, sizeof(buf), "%c%s", sw->kind, key);
    if (bsearch(&p, sw->ps->keys, sw->ps->nkeys, sizeof(char *), key_cmp) != NULL)
        return;
    if (sw->n == sw->cap) {
        sw->cap = sw->cap ? sw->cap * 2 : 64;
        sw->gone = xe_realloc(sw->gone, sw->cap * sizeof(*sw->gone));
    }
    sw->gone[sw->n++] = xe_strdup(key);
}

static int
sweep_user(const struct xe_user *u, void *ctx)
{
    sweep_check(ctx, u->jid);
    return 0;
}

static int
sweep_tomb(const struct xe_tombstone *t, void *ctx)
{
    sweep_check(ctx, t->jid);
    return 0;
}

static int
sweep_token(const char *jid, const char *ua, void *ctx)
{
    char k[600];
    snprintf(k, sizeof(k), "%s/%s", jid, ua);
    sweep_check(ctx, k);
    return 0;
}

static void
resync_finish(struct xe_pgsync *ps)
{
    static const char kinds[] = "utk";
    size_t removed = 0;
    char *err = NULL;

    if (ps->nkeys >= XE_PG_RESYNC_KEYS_MAX) {
        xe_err("event=replica state=resync error=\"more than %d keys: the sweep of "
               "deleted ones is skipped\"",
               XE_PG_RESYNC_KEYS_MAX);
        goto done;
    }
    qsort(ps->keys, ps->nkeys, sizeof(char *), key_cmp);
    applying = true;
    for (const char *k = kinds; *k; k++) {
        struct sweep sw = {.ps = ps, .kind = *k};
        if (*k == 'u')
            xe_userstore_foreach(ps->store, NULL, sweep_user, &sw, &err);
        else if (*k == 't')
            xe_userstore_tomb_foreach(ps->store, NULL, sweep_tomb, &sw, &err);
        else if (ps->tokens != NULL)
            xe_tokens_keys(ps->tokens, sweep_token, &sw, &err);
        free(err);
        err = NULL;
        for (size_t i = 0; i < sw.n; i++) {
            char *slash;
            if (*k == 'u') {
                if (xe_userstore_del(ps->store, sw.gone[i], &err) == XE_US_OK &&
                    ps->account_fn != NULL)
                    ps->account_fn(ps->account_ctx, sw.gone[i], "removed");
            } else if (*k == 't') {
                xe_userstore_tomb_del(ps->store, sw.gone[i], &err);
            } else if ((slash = strchr(sw.gone[i], '/')) != NULL) {
                *slash = '\0';
                xe_tokens_raw_del(ps->tokens, sw.gone[i], slash + 1, &err);
            }
            free(err);
            err = NULL;
            free(sw.gone[i]);
            removed++;
        }
        free(sw.gone);
    }
    applying = false;
    if (xe_userstore_sync(ps->store, &err) != XE_US_OK) {
        xe_err("event=replica error=\"%s\"", err ? err : "?");
        free(err);
        ps->errors++;
    }
done:
    for (size_t i = 0; i < ps->nkeys; i++)
        free(ps->keys[i]);
    free(ps->keys);
    ps->keys = NULL;
    ps->nkeys = ps->capkeys = 0;
    ps->resync = false;
    seq_save(ps);
    xe_info("event=replica state=resynced seq=%" PRId64 " removed=%zu", ps->seq, removed);
}

/* ---- applying a pulled row ------------------------------------------------ */

static const char *
val(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static void
apply_row(struct xe_pgsync *ps, PGresult *r, int i)
{
    const char *kind = PQgetvalue(r, i, 1), *jid = PQgetvalue(r, i, 2);
    char *err = NULL;
    int rc = XE_US_OK;

    if (ps->resync)
        resync_note(ps, kind[0], jid);
    applying = true;
    if (kind[0] == 'k' && ps->tokens != NULL) {
        const char *tj = val(r, i, XE_PG_PULL_TOK), *rec = val(r, i, XE_PG_PULL_TOK + 1);
        char key[600];
        char *slash;

        snprintf(key, sizeof(key), "%s", jid);
        if ((slash = strchr(key, '/')) == NULL) {
            rc = XE_US_CORRUPT;
            err = xe_asprintf("a bad token change %s", jid);
        } else {
            *slash = '\0';
            rc = tj != NULL && rec != NULL
                     ? xe_tokens_raw_put(ps->tokens, key, slash + 1, rec, strlen(rec),
                                         &err)
                     : xe_tokens_raw_del(ps->tokens, key, slash + 1, &err);
        }
    } else if (kind[0] == 'x') {
        /* a kick (xedgectl user passwd --kick anywhere): the user's live
         * sessions here end, unless it is old news (a catch-up) */
        if (strtoll(PQgetvalue(r, i, 3), NULL, 10) < XE_PG_KICK_MAX_AGE_MS &&
            ps->account_fn != NULL) {
            ps->kicks++;
            ps->account_fn(ps->account_ctx, jid, "password");
        }
    } else if (kind[0] == 'u') {
        const char *v[XE_PG_USER_COLS];
        struct xe_user *u = xe_calloc(2, sizeof(*u)), *old = u + 1;
        bool had = xe_userstore_get(ps->store, jid, old, NULL) == XE_US_OK;
        const char *end = NULL;

        for (int c = 0; c < XE_PG_USER_COLS; c++)
            v[c] = val(r, i, XE_PG_PULL_USER + c);
        if (v[0] == NULL) {
            rc = xe_userstore_del(ps->store, jid, &err);
            if (rc == XE_US_NOTFOUND)
                rc = XE_US_OK;
            if (had)
                end = "removed";
        } else if (xe_pg_user_from_row(v, u) != 0) {
            rc = XE_US_CORRUPT;
            err = xe_asprintf("a bad user row for %s", jid);
        } else {
            rc = xe_userstore_put(ps->store, u, false, &err);
            if (had && !old->disabled && u->disabled)
                end = "disabled";
        }
        OPENSSL_cleanse(u, 2 * sizeof(*u));
        free(u);
        if (rc == XE_US_OK && end != NULL && ps->account_fn != NULL)
            ps->account_fn(ps->account_ctx, jid, end);
    } else if (kind[0] == 't') {
        const char *v[XE_PG_TOMB_COLS];
        struct xe_tombstone t;

        for (int c = 0; c < XE_PG_TOMB_COLS; c++)
            v[c] = val(r, i, XE_PG_PULL_TOMB + c);
        if (v[0] == NULL) {
            rc = xe_userstore_tomb_del(ps->store, jid, &err);
            if (rc == XE_US_NOTFOUND)
                rc = XE_US_OK;
        } else if (xe_pg_tomb_from_row(v, &t) != 0) {
            rc = XE_US_CORRUPT;
            err = xe_asprintf("a bad tombstone row for %s", jid);
        } else {
            rc = xe_userstore_tomb_put(ps->store, &t, &err);
        }
    } else if (kind[0] == 'l' && ps->lockout != NULL) {
        const char *f = val(r, i, XE_PG_PULL_LOCK),
                   *until = val(r, i, XE_PG_PULL_LOCK + 1);
        struct timespec ts;
        int64_t now_real, left = 0;

        clock_gettime(CLOCK_REALTIME, &ts);
        now_real = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (until != NULL && strtoll(until, NULL, 10) > now_real)
            left = strtoll(until, NULL, 10) - now_real;
        xe_lockout_apply_account(ps->lockout, jid, f ? (unsigned)strtoul(f, NULL, 10) : 0,
                                 (uint64_t)left, now_ms());
    }
    applying = false;
    if (rc != XE_US_OK) {
        ps->errors++;
        xe_err("event=replica seq=%s jid=%s error=\"%s\"", PQgetvalue(r, i, 0), jid,
               err ? err : "?");
    }
    free(err);
    ps->applied++;
}

/* a pull's rows; returns how many */
static int
apply_pull(struct xe_pgsync *ps, PGresult *r)
{
    int n = PQntuples(r);

    if (PQnfields(r) != XE_PG_PULL_COLS)
        return 0;
    if (n > 0 && !ps->resync) {
        /* the mark, read in the pull's own snapshot: the pruning dropped
         * entries past this replica's sequence (it was away longer than
         * the retention): pull everything again instead */
        ps->pruned_through = strtoll(PQgetvalue(r, 0, XE_PG_PULL_MARK), NULL, 10);
        if (ps->pruned_through > ps->seq) {
            resync_begin(ps);
            return XE_PG_PULL_BATCH; /* pull again, from 0 */
        }
    }
    for (int i = 0; i < n; i++) {
        apply_row(ps, r, i);
        ps->seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    }
    if (n > 0) {
        char *err = NULL;
        if (xe_userstore_sync(ps->store, &err) != XE_US_OK) {
            /* the sequence stays where it was on disk: pulled again at the next start */
            xe_err("event=replica error=\"%s\"", err ? err : "?");
            free(err);
            ps->errors++;
            return n;
        }
        ps->lag_ms =
            n == XE_PG_PULL_BATCH ? strtoll(PQgetvalue(r, n - 1, 3), NULL, 10) : 0;
        if (!ps->resync) /* a resync's sequence counts once it is whole */
            seq_save(ps);
        xe_debug("event=replica pulled=%d seq=%" PRId64, n, ps->seq);
    } else {
        ps->lag_ms = 0;
    }
    if (ps->resync && n < XE_PG_PULL_BATCH)
        resync_finish(ps);
    return n;
}

/* ---- the queue ------------------------------------------------------------ */

static void
job_free(struct job *j)
{
    if (j == NULL)
        return;
    xe_pg_vals_free(j->vals, XE_PG_USER_COLS);
    free(j);
}

static void
enqueue(struct xe_pgsync *ps, struct job *j, bool front)
{
    if (front) {
        j->next = ps->head;
        ps->head = j;
        if (ps->tail == NULL)
            ps->tail = j;
    } else {
        j->next = NULL;
        if (ps->tail)
            ps->tail->next = j;
        else
            ps->head = j;
        ps->tail = j;
    }
    if (j->kind == J_WRITE)
        ps->queued_writes++;
}

static struct job *
new_job(enum job_kind kind, const char *sql)
{
    struct job *j = xe_calloc(1, sizeof(*j));
    j->kind = kind;
    j->sql = sql;
    return j;
}

static void pump(struct xe_pgsync *ps);

/* the purging node prunes the log: the compaction, then the retention */
static void
queue_prune(struct xe_pgsync *ps)
{
    struct job *j;
    char num[32];

    enqueue(ps, new_job(J_PRUNE, xe_pg_sql_compact), false);
    j = new_job(J_PRUNE, xe_pg_sql_prune);
    snprintf(num, sizeof(num), "%u", ps->retention_s);
    j->vals[0] = xe_strdup(num);
    j->n = 1;
    enqueue(ps, j, false);
    ps->pruned_runs++;
}

static void
queue_pull(struct xe_pgsync *ps)
{
    if (ps->pull_queued) {
        ps->pull_again = ps->inflight != NULL && ps->inflight->kind == J_PULL;
        return;
    }
    struct job *j = new_job(J_PULL, xe_pg_sql_pull);
    char seq[32], batch[16];
    snprintf(seq, sizeof(seq), "%" PRId64, ps->seq);
    snprintf(batch, sizeof(batch), "%d", XE_PG_PULL_BATCH);
    j->vals[0] = xe_strdup(seq);
    j->vals[1] = xe_strdup(batch);
    j->n = 2;
    ps->pull_queued = true;
    enqueue(ps, j, false);
}

/* the write of JID's current state in the store (kind 'u' or 't'), or of a
 * lockout count (P's kind 'l') */
static void
queue_write(struct xe_pgsync *ps, const struct pending *p)
{
    char kind = p->kind;
    const char *jid = p->jid;
    struct job *j;
    char *err = NULL;

    if (ps->queued_writes >= XE_PG_WRITE_QUEUE_MAX) {
        /* logged at the first and then every 1000th: a flood of failed
         * logins must not become a flood of log lines */
        if (ps->dropped++ % 1000 == 0)
            xe_err("event=database error=\"the write queue is full (%d): changes are not "
                   "sent\" jid=%s dropped=%" PRIu64,
                   XE_PG_WRITE_QUEUE_MAX, jid, ps->dropped);
        ps->errors++;
        return;
    }
    if (kind == 'l') {
        char num[3][32];
        j = new_job(J_WRITE, p->failed ? xe_pg_sql_lock_failure : xe_pg_sql_lock_forget);
        j->vals[0] = xe_strdup(jid);
        j->n = 1;
        if (p->failed) {
            snprintf(num[0], sizeof(num[0]), "%u", p->threshold);
            snprintf(num[1], sizeof(num[1]), "%" PRIu64, p->window_ms);
            snprintf(num[2], sizeof(num[2]), "%" PRIu64, p->lockout_ms);
            for (int i = 0; i < 3; i++)
                j->vals[i + 1] = xe_strdup(num[i]);
            j->n = 4;
        }
    } else if (kind == 'K') {
        j = new_job(J_WRITE, xe_pg_sql_token_delete_user);
        j->vals[0] = xe_strdup(jid);
        j->n = 1;
    } else if (kind == 'k') {
        const char *slash = strchr(jid, '/');
        char *buf = NULL;
        size_t len = 0;
        j = NULL;
        if (slash != NULL && ps->tokens != NULL) {
            char *user = xe_strdup(jid);
            user[slash - jid] = '\0';
            if (xe_tokens_raw_get(ps->tokens, user, slash + 1, &buf, &len, &err) ==
                XE_US_OK) {
                j = new_job(J_WRITE, xe_pg_sql_token_upsert);
                j->vals[2] = xe_calloc(1, len + 1);
                memcpy(j->vals[2], buf, len);
                j->n = 3;
                OPENSSL_cleanse(buf, len);
                free(buf);
            } else {
                j = new_job(J_WRITE, xe_pg_sql_token_delete);
                j->n = 2;
            }
            j->vals[0] = user;
            j->vals[1] = xe_strdup(slash + 1);
        }
    } else if (kind == 'u') {
        struct xe_user *u = xe_calloc(1, sizeof(*u));
        int r = xe_userstore_get(ps->store, jid, u, &err);
        if (r == XE_US_OK) {
            j = new_job(J_WRITE, xe_pg_sql_user_upsert);
            j->n = XE_PG_USER_COLS;
            if (xe_pg_user_to_row(u, j->vals) != 0) {
                job_free(j);
                j = NULL;
            }
        } else {
            j = new_job(J_WRITE, xe_pg_sql_user_delete);
            j->vals[0] = xe_strdup(jid);
            j->n = 1;
        }
        OPENSSL_cleanse(u, sizeof(*u));
        free(u);
    } else {
        struct xe_tombstone t;
        if (xe_userstore_tomb_get(ps->store, jid, &t, &err) == XE_US_OK) {
            j = new_job(J_WRITE, xe_pg_sql_tomb_upsert);
            j->n = XE_PG_TOMB_COLS;
            if (xe_pg_tomb_to_row(&t, j->vals) != 0) {
                job_free(j);
                j = NULL;
            }
        } else {
            j = new_job(J_WRITE, xe_pg_sql_tomb_delete);
            j->vals[0] = xe_strdup(jid);
            j->n = 1;
        }
    }
    free(err);
    if (j != NULL)
        enqueue(ps, j, false);
}

/* ---- the connection ------------------------------------------------------- */

static void
poll_closed(uv_handle_t *h)
{
    free(h);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* watch PQsocket() for EVENTS (a new handle if the socket changed) */
static void
watch(struct xe_pgsync *ps, int events)
{
    int fd = ps->db ? PQsocket(ps->db) : -1;

    if (ps->poll != NULL && (fd != ps->poll_fd || fd < 0)) {
        uv_close((uv_handle_t *)ps->poll, poll_closed);
        ps->poll = NULL;
    }
    if (fd < 0)
        return;
    if (ps->poll == NULL) {
        ps->poll = xe_calloc(1, sizeof(*ps->poll));
        if (uv_poll_init(ps->loop, ps->poll, fd) != 0) {
            free(ps->poll);
            ps->poll = NULL;
            return;
        }
        ps->poll->data = ps;
        ps->poll_fd = fd;
        ps->poll_events = 0;
    }
    if (events != ps->poll_events) {
        uv_poll_start(ps->poll, events, on_poll);
        ps->poll_events = events;
    }
}

static void connect_start(struct xe_pgsync *ps);

static void
on_retry(uv_timer_t *t)
{
    struct xe_pgsync *ps = t->data;
    if (ps->state == PS_DOWN)
        connect_start(ps);
}

/* the connection failed or broke: log (once per outage), drop, retry later */
static void
fail(struct xe_pgsync *ps, const char *what)
{
    char msg[512];
    bool was_up = atomic_load(&ps->up);

    snprintf(msg, sizeof(msg), "%s", ps->db ? PQerrorMessage(ps->db) : "");
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '"')
            *p = *p == '"' ? '\'' : ' ';
    ps->errors++;
    if (was_up || ps->down_since_ms == 0)
        xe_err("event=database state=down what=\"%s\" error=\"%s\" queued_writes=%zu",
               what, msg, ps->queued_writes);
    else
        xe_debug("event=database state=down what=\"%s\" error=\"%s\"", what, msg);
    if (was_up || ps->down_since_ms == 0)
        ps->down_since_ms = now_ms();
    atomic_store(&ps->up, false);
    if (ps->inflight != NULL) {
        struct job *j = ps->inflight;
        ps->inflight = NULL;
        if (j->kind == J_WRITE) /* sent again after the reconnection: nothing lost */
            enqueue(ps, j, true);
        else {
            if (j->kind == J_PULL)
                ps->pull_queued = false;
            if (j->kind == J_HEARTBEAT)
                ps->heartbeat_queued = false;
            job_free(j);
        }
    }
    /* what only makes sense on a live connection goes; the writes stay */
    struct job **pp = &ps->head;
    ps->tail = NULL;
    while (*pp != NULL) {
        struct job *j = *pp;
        if (j->kind != J_WRITE) {
            *pp = j->next;
            job_free(j);
        } else {
            ps->tail = j;
            pp = &j->next;
        }
    }
    ps->pull_queued = ps->heartbeat_queued = ps->pull_again = false;
    ps->leader = ps->leader_queued = false; /* the session's lock went with it */
    if (ps->poll != NULL) {
        uv_close((uv_handle_t *)ps->poll, poll_closed);
        ps->poll = NULL;
    }
    PQfinish(ps->db);
    ps->db = NULL;
    if (ps->state == PS_STOPPED)
        return;
    ps->state = PS_DOWN;
    uv_timer_start(&ps->retry, on_retry, ps->backoff_ms, 0);
    ps->backoff_ms =
        ps->backoff_ms * 2 > XE_PG_RETRY_MAX_MS ? XE_PG_RETRY_MAX_MS : ps->backoff_ms * 2;
}

static void
notice(void *arg, const char *msg)
{
    (void)arg;
    xe_debug("event=database notice=\"%.*s\"", (int)strcspn(msg, "\n"), msg);
}

static void
connect_start(struct xe_pgsync *ps)
{
    const char *keys[5] = {"connect_timeout", "dbname", "application_name", NULL, NULL};
    const char *vals[5] = {"5", ps->conninfo, "xedge", NULL, NULL};

    if (ps->password != NULL) {
        keys[3] = "password";
        vals[3] = ps->password;
    }
    ps->db = PQconnectStartParams(keys, vals, 1);
    if (ps->db == NULL || PQstatus(ps->db) == CONNECTION_BAD) {
        fail(ps, "connect");
        return;
    }
    PQsetnonblocking(ps->db, 1);
    PQsetNoticeProcessor(ps->db, notice, ps);
    ps->state = PS_CONNECTING;
    ps->since_ms = now_ms();
    watch(ps, UV_WRITABLE);
}

static uint64_t sessions_here(void);

static void
on_tick_heartbeat(struct xe_pgsync *ps)
{
    if (ps->heartbeat_queued)
        return;
    {
        struct job *j = new_job(J_HEARTBEAT, xe_pg_sql_heartbeat);
        char num[5][32];
        snprintf(num[0], sizeof(num[0]), "%" PRIu64, sessions_here());
        snprintf(num[1], sizeof(num[1]), "%" PRId64, ps->seq);
        snprintf(num[2], sizeof(num[2]), "%" PRId64, ps->lag_ms);
        snprintf(num[3], sizeof(num[3]), "%zu", ps->queued_writes);
        snprintf(num[4], sizeof(num[4]), "%" PRIu64, ps->errors);
        j->vals[0] = xe_strdup(ps->node);
        for (int i = 0; i < 5; i++)
            j->vals[i + 1] = xe_strdup(num[i]);
        j->vals[6] = xe_strdup(PACKAGE_VERSION);
        j->n = 7;
        ps->heartbeat_queued = true;
        enqueue(ps, j, false);
    }
}

static void
connected(struct xe_pgsync *ps)
{
    ps->state = PS_READY;
    ps->backoff_ms = XE_PG_RETRY_MIN_MS;
    atomic_store(&ps->up, true);
    xe_info("event=database state=up seq=%" PRId64 " queued_writes=%zu down_ms=%" PRIu64,
            ps->seq, ps->queued_writes,
            ps->down_since_ms ? now_ms() - ps->down_since_ms : 0);
    ps->down_since_ms = 0;
    /* LISTEN committed on its own, then the pull: a change after the pull's
     * snapshot is notified */
    struct job *rest = ps->head, *rest_tail = ps->tail;
    ps->head = ps->tail = NULL;
    enqueue(ps, new_job(J_LISTEN, "LISTEN " XE_PG_CHANNEL), false);
    ps->pull_queued = false;
    queue_pull(ps);
    ps->heartbeat_queued = false;
    on_tick_heartbeat(ps); /* say at once that this node is back */
    ps->ticks = 0;         /* the purge lock: tried at the next tick */
    if (rest != NULL) {    /* the writes queued meanwhile, after the pull */
        ps->tail->next = rest;
        ps->tail = rest_tail;
    }
    pump(ps);
}

static void
send_next(struct xe_pgsync *ps)
{
    struct job *j = ps->head;
    int f;

    if (j == NULL || ps->inflight != NULL || ps->state != PS_READY)
        return;
    ps->head = j->next;
    if (ps->head == NULL)
        ps->tail = NULL;
    if (j->kind == J_WRITE)
        ps->queued_writes--;
    if (j->kind == J_PULL) { /* the sequence now: a resync may have reset it */
        char seq[32];
        snprintf(seq, sizeof(seq), "%" PRId64, ps->seq);
        free(j->vals[0]);
        j->vals[0] = xe_strdup(seq);
    }
    ps->inflight = j;
    ps->since_ms = now_ms();
    if (!PQsendQueryParams(ps->db, j->sql, j->n, NULL, (const char *const *)j->vals, NULL,
                           NULL, 0)) {
        fail(ps, "send");
        return;
    }
    f = PQflush(ps->db);
    if (f < 0) {
        fail(ps, "send");
        return;
    }
    watch(ps, f == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void
job_done(struct xe_pgsync *ps, struct job *j, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char *m = PQresultErrorMessage(r);
        ps->errors++;
        xe_err("event=database what=%s error=\"%.*s\"",
               j->kind == J_WRITE  ? "write"
               : j->kind == J_PULL ? "pull"
                                   : "query",
               (int)strcspn(m, "\n"), m);
        return;
    }
    if (j->kind == J_PRUNE && j->sql == xe_pg_sql_compact && atoi(PQcmdTuples(r)) > 0)
        xe_info("event=database changes_compacted=%s", PQcmdTuples(r));
    if (j->kind == J_PULL && apply_pull(ps, r) == XE_PG_PULL_BATCH)
        ps->pull_again = true;
    if (j->kind == J_LEADER && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't' &&
        !ps->leader) {
        ps->leader = true;
        xe_info("event=database purges=here node=%s", ps->node);
    }
}

static void
drain_notifies(struct xe_pgsync *ps)
{
    PGnotify *nf;
    bool any = false;

    while ((nf = PQnotifies(ps->db)) != NULL) {
        if (strtoll(nf->extra, NULL, 10) > ps->seq)
            any = true;
        PQfreemem(nf);
    }
    if (any)
        queue_pull(ps);
}

static void
pump(struct xe_pgsync *ps)
{
    /* results of the query in flight */
    while (ps->state == PS_READY && ps->inflight != NULL && !PQisBusy(ps->db)) {
        PGresult *r = PQgetResult(ps->db);
        struct job *j = ps->inflight;
        if (r == NULL) {
            ps->inflight = NULL;
            ps->round_trips++;
            if (j->kind == J_PULL)
                ps->pull_queued = false;
            if (j->kind == J_HEARTBEAT)
                ps->heartbeat_queued = false;
            if (j->kind == J_LEADER)
                ps->leader_queued = false;
            job_free(j);
            if (ps->pull_again) {
                ps->pull_again = false;
                queue_pull(ps);
            }
            send_next(ps);
            continue;
        }
        job_done(ps, j, r);
        PQclear(r);
    }
    if (ps->state == PS_READY) {
        drain_notifies(ps);
        send_next(ps);
    }
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    struct xe_pgsync *ps = h->data;

    if (h != ps->poll)
        return;
    if (ps->state == PS_CONNECTING) {
        PostgresPollingStatusType st = PQconnectPoll(ps->db);
        (void)events;
        if (st == PGRES_POLLING_FAILED)
            fail(ps, "connect");
        else if (st == PGRES_POLLING_OK)
            connected(ps);
        else
            watch(ps, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
        return;
    }
    if (ps->state != PS_READY)
        return;
    if (status < 0 || ((events & UV_READABLE) && !PQconsumeInput(ps->db))) {
        fail(ps, "read");
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(ps->db);
        if (f < 0) {
            fail(ps, "send");
            return;
        }
        if (f == 0)
            watch(ps, UV_READABLE);
    }
    pump(ps);
}

/* ---- the tick: heartbeat, a pull, timeouts -------------------------------- */

static uint64_t
sessions_here(void)
{
    struct xe_buf b;
    uint64_t n = 0;
    const char *p;

    xe_buf_init(&b, 4 << 20);
    xe_metrics_render(&b);
    xe_buf_append(&b, "", 1);
    for (p = (const char *)b.data;
         (p = strstr(p, "\nxedge_backend_sessions{")) != NULL;) {
        const char *sp = strchr(p + 1, '\n');
        const char *v = sp ? memrchr(p + 1, ' ', (size_t)(sp - p - 1)) : NULL;
        if (v != NULL)
            n += strtoull(v + 1, NULL, 10);
        p = sp ? sp : p + 1;
    }
    xe_buf_free(&b);
    return n;
}

static void
on_tick(uv_timer_t *t)
{
    struct xe_pgsync *ps = t->data;
    uint64_t now = now_ms();

    if (ps->state == PS_CONNECTING && now - ps->since_ms > XE_PG_CONNECT_TIMEOUT_MS) {
        fail(ps, "connect timeout");
        return;
    }
    if (ps->state != PS_READY)
        return;
    if (ps->inflight != NULL && now - ps->since_ms > XE_PG_QUERY_TIMEOUT_MS) {
        fail(ps, "query timeout");
        return;
    }
    if (ps->leader && ps->ticks % XE_PG_PRUNE_TICKS == XE_PG_PRUNE_TICKS - 1)
        queue_prune(ps);
    queue_pull(ps); /* in case a notification was missed */
    /* the purges: one node at a time, the one holding a session lock */
    if (!ps->leader && !ps->leader_queued && ps->ticks % XE_PG_LEADER_TICKS == 0) {
        ps->leader_queued = true;
        enqueue(ps, new_job(J_LEADER, "SELECT pg_try_advisory_lock(7274018)"), false);
    }
    on_tick_heartbeat(ps);
    ps->ticks++;
    pump(ps);
}

/* ---- writes from any thread ----------------------------------------------- */

static int
before_user_write(void *ctx, const char *jid, char **error_r)
{
    struct xe_pgsync *ps = ctx;

    if (applying || atomic_load(&ps->up))
        return XE_US_OK;
    xe_metrics_inc(XE_M_REFUSED, "database-down", NULL);
    if (error_r != NULL)
        *error_r = xe_asprintf(
            "the user database is unreachable: %s cannot be changed now", jid);
    return XE_US_UNAVAILABLE;
}

static void
push(struct xe_pgsync *ps, struct pending *p)
{
    if (atomic_load(&ps->stopping)) { /* the shutdown: the loop's handles go */
        free(p->jid);
        free(p);
        return;
    }
    pthread_mutex_lock(&ps->mu);
    p->next = ps->pend;
    ps->pend = p;
    ps->n_pend++;
    pthread_mutex_unlock(&ps->mu);
    uv_async_send(&ps->wake);
}

static void
after_write(void *ctx, char kind, const char *jid)
{
    struct xe_pgsync *ps = ctx;
    struct pending *p;

    if (applying)
        return;
    p = xe_calloc(1, sizeof(*p));
    p->kind = kind;
    p->jid = xe_strdup(jid);
    push(ps, p);
}

/* a worker counted a failure for an account, or forgot one (lockout.h) */
static void
lockout_shared(void *ctx, const char *account, bool failed,
               const struct xe_lockout_conf *conf)
{
    struct xe_pgsync *ps = ctx;
    struct pending *p = xe_calloc(1, sizeof(*p));

    p->kind = 'l';
    p->jid = xe_strdup(account);
    p->failed = failed;
    p->threshold = conf->account_threshold;
    p->window_ms = conf->window_ms;
    p->lockout_ms = conf->lockout_ms;
    push(ps, p);
}

bool
xe_pgsync_purge_gate(void *ctx)
{
    struct xe_pgsync *ps = ctx;
    return ps != NULL && ps->leader && ps->state == PS_READY;
}

void
xe_pgsync_set_lockout(struct xe_pgsync *ps, struct xe_lockout *lo)
{
    if (ps == NULL || lo == NULL)
        return;
    ps->lockout = lo;
    xe_lockout_set_share(lo, lockout_shared, ps);
}

static void
on_wake(uv_async_t *a)
{
    struct xe_pgsync *ps = a->data;
    struct pending *list, *rev = NULL;

    pthread_mutex_lock(&ps->mu);
    list = ps->pend;
    ps->pend = NULL;
    ps->n_pend = 0;
    pthread_mutex_unlock(&ps->mu);
    while (list != NULL) { /* in the order they were made */
        struct pending *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev != NULL) {
        struct pending *n = rev->next;
        queue_write(ps, rev);
        free(rev->jid);
        free(rev);
        rev = n;
    }
    if (ps->state == PS_READY)
        pump(ps);
}

static const struct xe_userstore_hooks hooks = {before_user_write, after_write};

/* ---- metrics ---------------------------------------------------------------- */

static void
gauges(void *ctx, struct xe_buf *out)
{
    struct xe_pgsync *ps = ctx;

    xe_buf_appendf(
        out,
        "# HELP xedge_db_up The user database is reachable (several nodes).\n"
        "# TYPE xedge_db_up gauge\nxedge_db_up %d\n"
        "# HELP xedge_replica_seq The last change applied to this node's replica.\n"
        "# TYPE xedge_replica_seq gauge\nxedge_replica_seq %" PRId64 "\n"
        "# HELP xedge_replica_lag_seconds How far the replica is behind the database.\n"
        "# TYPE xedge_replica_lag_seconds gauge\nxedge_replica_lag_seconds %.3f\n"
        "# HELP xedge_db_writes_queued Writes waiting to be sent to the database.\n"
        "# TYPE xedge_db_writes_queued gauge\nxedge_db_writes_queued %zu\n"
        "# HELP xedge_db_round_trips_total Queries answered by the database.\n"
        "# TYPE xedge_db_round_trips_total counter\nxedge_db_round_trips_total %" PRIu64
        "\n"
        "# HELP xedge_db_errors_total Failed connections, queries and rows.\n"
        "# TYPE xedge_db_errors_total counter\nxedge_db_errors_total %" PRIu64 "\n"
        "# HELP xedge_replica_changes_total Changes applied to the replica.\n"
        "# TYPE xedge_replica_changes_total counter\nxedge_replica_changes_total %" PRIu64
        "\n",
        atomic_load(&ps->up) ? 1 : 0, ps->seq,
        (double)(atomic_load(&ps->up)
                     ? ps->lag_ms
                     : (int64_t)(ps->down_since_ms ? now_ms() - ps->down_since_ms : 0)) /
            1000.0,
        ps->queued_writes, ps->round_trips, ps->errors, ps->applied);
    xe_buf_appendf(
        out,
        "# HELP xedge_db_writes_dropped_total Writes dropped: the queue was full.\n"
        "# TYPE xedge_db_writes_dropped_total counter\n"
        "xedge_db_writes_dropped_total %" PRIu64 "\n"
        "# HELP xedge_replica_resyncs_total Full resyncs (behind the change log's "
        "pruning).\n"
        "# TYPE xedge_replica_resyncs_total counter\n"
        "xedge_replica_resyncs_total %" PRIu64 "\n"
        "# HELP xedge_changes_prune_runs_total Prunings of the change log run by this "
        "node.\n"
        "# TYPE xedge_changes_prune_runs_total counter\n"
        "xedge_changes_prune_runs_total %" PRIu64 "\n"
        "# HELP xedge_replica_kicks_total Kicks from the change log acted on here.\n"
        "# TYPE xedge_replica_kicks_total counter\n"
        "xedge_replica_kicks_total %" PRIu64 "\n",
        ps->dropped, ps->resyncs, ps->pruned_runs, ps->kicks);
}

/* ---- the first catch-up (blocking: before the node listens) ---------------- */

static int
first_catch_up(struct xe_pgsync *ps, char **error_r)
{
    /* blocking, before the node listens: bounded (the connection by
     * connect_timeout, each pull by statement_timeout) */
    const char *keys[6] = {"connect_timeout",  "options", "dbname",
                           "application_name", NULL,      NULL};
    const char *vals[6] = {"5",          "-c statement_timeout=" XE_PG_STATEMENT_TIMEOUT,
                           ps->conninfo, "xedge",
                           NULL,         NULL};
    PGconn *db;
    int ret = -1, n;

    if (ps->password != NULL) {
        keys[4] = "password";
        vals[4] = ps->password;
    }
    db = PQconnectdbParams(keys, vals, 1);
    if (db == NULL || PQstatus(db) != CONNECTION_OK) {
        *error_r = xe_asprintf("%s", db ? PQerrorMessage(db) : "out of memory");
        (*error_r)[strcspn(*error_r, "\n")] = '\0';
        goto out;
    }
    do {
        char seq[32], batch[16];
        const char *p[2] = {seq, batch};
        PGresult *r;

        snprintf(seq, sizeof(seq), "%" PRId64, ps->seq);
        snprintf(batch, sizeof(batch), "%d", XE_PG_PULL_BATCH);
        r = PQexecParams(db, xe_pg_sql_pull, 2, NULL, p, NULL, NULL, 0);
        ps->round_trips++;
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            *error_r = xe_asprintf("%s", PQresultErrorMessage(r));
            (*error_r)[strcspn(*error_r, "\n")] = '\0';
            PQclear(r);
            goto out;
        }
        n = apply_pull(ps, r);
        PQclear(r);
    } while (n == XE_PG_PULL_BATCH);
    ret = 0;
out:
    PQfinish(db);
    return ret;
}

int
xe_pgsync_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_userstore *store,
              struct xe_pgsync **ps_r, char **error_r)
{
    struct xe_pgsync *ps = xe_calloc(1, sizeof(*ps));
    char *err = NULL;
    uint64_t t0 = now_ms();

    *ps_r = NULL;
    ps->loop = loop;
    ps->conninfo = xe_strdup(conf->user_store_database);
    ps->store = store;
    ps->backoff_ms = XE_PG_RETRY_MIN_MS;
    pthread_mutex_init(&ps->mu, NULL);
    if (conf->node_name != NULL)
        snprintf(ps->node, sizeof(ps->node), "%s", conf->node_name);
    else if (gethostname(ps->node, sizeof(ps->node) - 1) != 0)
        snprintf(ps->node, sizeof(ps->node), "xedge");
    snprintf(ps->seq_path, sizeof(ps->seq_path), "%s/replica.seq", conf->user_store);
    if (xe_pg_read_password(conf->user_store_database_password_file, &ps->password,
                            error_r) < 0) {
        free(ps->conninfo);
        free(ps);
        return -1;
    }
    ps->seq = seq_load(ps->seq_path);
    ps->retention_s = conf->changes_retention_s ? conf->changes_retention_s
                                                : XE_DEF_CHANGES_RETENTION_S;
    if (xe_tokens_open(store, &ps->tokens, error_r) != XE_US_OK) {
        free(ps->password);
        free(ps->conninfo);
        free(ps);
        return -1;
    }
    /* one flush per batch, not per change (before replica.seq is written) */
    if (xe_userstore_set_nosync(store, true, error_r) != XE_US_OK) {
        free(ps->password);
        free(ps->conninfo);
        free(ps);
        return -1;
    }
    if (first_catch_up(ps, &err) < 0) {
        if (ps->seq == 0) {
            *error_r =
                xe_asprintf("the user database is unreachable and this node has no "
                            "replica yet (%s): not listening",
                            err);
            free(err);
            xe_pgsync_free(&ps);
            return -1;
        }
        xe_warn("event=database state=down what=\"first catch-up\" error=\"%s\" "
                "serving=replica seq=%" PRId64,
                err, ps->seq);
        ps->errors++;
        ps->down_since_ms = now_ms();
        free(err);
    } else {
        xe_info("event=replica state=caught-up seq=%" PRId64 " duration_ms=%" PRIu64,
                ps->seq, now_ms() - t0);
    }
    uv_timer_init(loop, &ps->tick);
    uv_timer_init(loop, &ps->retry);
    uv_async_init(loop, &ps->wake, on_wake);
    ps->tick.data = ps->retry.data = ps->wake.data = ps;
    uv_timer_start(&ps->tick, on_tick, XE_PG_TICK_MS, XE_PG_TICK_MS);
    xe_userstore_set_hooks(store, &hooks, ps);
    xe_metrics_set_extra_gauges(gauges, ps);
    connect_start(ps);
    *ps_r = ps;
    return 0;
}

void
xe_pgsync_set_account_cb(struct xe_pgsync *ps, xe_pgsync_account_fn fn, void *ctx)
{
    if (ps == NULL)
        return;
    ps->account_fn = fn;
    ps->account_ctx = ctx;
}

bool
xe_pgsync_up(const struct xe_pgsync *ps)
{
    return ps != NULL && atomic_load(&ps->up);
}

size_t
xe_pgsync_pending(struct xe_pgsync *ps)
{
    size_t n;

    pthread_mutex_lock(&ps->mu);
    n = ps->n_pend;
    pthread_mutex_unlock(&ps->mu);
    return n + ps->queued_writes +
           (ps->inflight != NULL && ps->inflight->kind == J_WRITE);
}

void
xe_pgsync_stop(struct xe_pgsync *ps)
{
    if (ps == NULL || ps->state == PS_STOPPED)
        return;
    if (ps->queued_writes > 0 || ps->inflight != NULL)
        xe_warn("event=database state=stopping queued_writes=%zu", ps->queued_writes);
    ps->state = PS_STOPPED;
    atomic_store(&ps->up, false);
    atomic_store(&ps->stopping, true);
    xe_userstore_set_hooks(ps->store, NULL, NULL);
    xe_metrics_set_extra_gauges(NULL, NULL);
    if (ps->lockout != NULL)
        xe_lockout_set_share(ps->lockout, NULL, NULL);
    if (ps->poll != NULL) {
        uv_close((uv_handle_t *)ps->poll, poll_closed);
        ps->poll = NULL;
    }
    PQfinish(ps->db);
    ps->db = NULL;
    if (ps->tick.loop != NULL) {
        uv_close((uv_handle_t *)&ps->tick, NULL);
        uv_close((uv_handle_t *)&ps->retry, NULL);
        uv_close((uv_handle_t *)&ps->wake, NULL);
    }
}

void
xe_pgsync_free(struct xe_pgsync **psp)
{
    struct xe_pgsync *ps = *psp;
    struct pending *p;

    if (ps == NULL)
        return;
    *psp = NULL;
    job_free(ps->inflight);
    while (ps->head != NULL) {
        struct job *j = ps->head;
        ps->head = j->next;
        job_free(j);
    }
    while ((p = ps->pend) != NULL) {
        ps->pend = p->next;
        free(p->jid);
        free(p);
    }
    if (ps->password != NULL) {
        OPENSSL_cleanse(ps->password, strlen(ps->password));
        free(ps->password);
    }
    pthread_mutex_destroy(&ps->mu);
    for (size_t i = 0; i < ps->nkeys; i++)
        free(ps->keys[i]);
    free(ps->keys);
    xe_tokens_close(&ps->tokens);
    free(ps->conninfo);
    free(ps);
}
