/* xedge: the purges of deleted users' data at their backends. See
 * purge_io.h. The tombstones are read on the loop (a read transaction
 * waits for nothing) and written in the thread pool: a write transaction
 * waits for LMDB's writer lock (xedgectl may hold it) and for its fsync. */
#include "purge_io.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "assertion.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proxy.h"
#include "purge.h"
#include "userstore.h"
#include "stream.h"
#include "util.h"
#include "xelimits.h"

struct job;

/* An attempt from its start to its tombstone's write: at most
 * XE_PURGE_PARALLEL at a time, at most one per backend server (a backend
 * that accepts and never answers holds one slot for XE_PURGE_TIMEOUT_MS,
 * not every purge). */
struct slot {
    bool busy;
    struct job *job; /* the attempt, until it ends; then its write */
    char jid[sizeof(((struct xe_tombstone *)0)->jid)];
    char server[300]; /* the backend: host:port or the socket's path */
};

struct xe_purger {
    uv_loop_t *loop;
    struct xe_userstore *store;
    const struct xe_conf *conf;
    uv_timer_t scan;
    bool stopped;
    struct slot slots[XE_PURGE_PARALLEL];
    unsigned writes;        /* tombstone writes in the thread pool */
    bool free_pending;      /* xe_purger_free came while writes > 0 */
    bool (*may)(void *ctx); /* several nodes: is it this node's turn? */
    void *may_ctx;
};

/* An attempt's outcome, written to its tombstone in the thread pool. */
struct twrite {
    uv_work_t req;
    struct xe_purger *pg;
    int slot;
    struct xe_tombstone t;
    char server[256];
    bool ok;
    int64_t delay;
    int r;
    char *err;
};

struct job {
    struct xe_purger *pg; /* NULL once the purger stopped */
    int slot;
    struct xe_tombstone t;
    char server[256];
    bool unix_socket, proxy;
    struct xe_stream st; /* once opened: j is freed when it is released */
    bool opened;
    struct xe_purge *purge;
    size_t read;
    bool done;
};

/* The jobs' reads (on the purger's loop). */
static struct xe_stream_slab slab;

/* (what a purge writes is a stream header, a login and a few requests) */
static const struct xe_stream_limits limits = {XE_READ_CHUNK, XE_READ_CHUNK,
                                               4 * XE_READ_CHUNK};

static void scan(struct xe_purger *pg);

static void
job_released(struct xe_stream *s, void *ctx)
{
    struct job *j = ctx;

    (void)s;
    xe_purge_free(&j->purge);
    free(j);
}

static void
twrite_work(uv_work_t *req)
{
    struct twrite *w = req->data;

    if (w->ok)
        w->r = xe_userstore_tomb_del(w->pg->store, w->t.jid, &w->err);
    else /* not written back if the operator gave the purge up meanwhile */
        w->r = xe_userstore_tomb_update(w->pg->store, &w->t, &w->err);
}

static void
twrite_done(uv_work_t *req, int status)
{
    struct twrite *w = req->data;
    struct xe_purger *pg = w->pg;

    if (status < 0 && w->err == NULL)
        w->err = xe_strdup(uv_strerror(status));
    if (w->ok) {
        xe_info("event=purge jid=%s server=%s result=ok attempts=%u%s%s", w->t.jid,
                w->server, w->t.attempts + 1,
                status < 0 || w->r != XE_US_OK ? " tombstone=" : "",
                status < 0 || w->r != XE_US_OK ? (w->err ? w->err : "gone") : "");
        xe_metrics_inc(XE_M_PURGES, "ok", NULL);
    } else {
        xe_warn("event=purge jid=%s server=%s result=failed attempts=%u retry_s=%lld "
                "error=\"%s\"",
                w->t.jid, w->server[0] ? w->server : "-", w->t.attempts,
                (long long)w->delay, w->t.error);
        xe_metrics_inc(XE_M_PURGES, "failed", NULL);
    }
    pg->slots[w->slot].busy = false;
    free(w->err);
    free(w);
    pg->writes--;
    if (pg->free_pending) {
        if (pg->writes == 0)
            free(pg);
        return;
    }
    scan(pg); /* the next due one (a kick that came meanwhile waited) */
}

/* Write the attempt's outcome: the tombstone goes (OK) or records the
 * failure and the next attempt. */
static void
twrite_start(struct xe_purger *pg, struct job *j, bool ok, const char *why)
{
    struct twrite *w = xe_calloc(1, sizeof(*w));

    w->pg = pg;
    w->slot = j->slot;
    w->t = j->t;
    w->ok = ok;
    snprintf(w->server, sizeof(w->server), "%s", j->server);
    if (!ok) {
        unsigned shift = w->t.attempts < 10 ? w->t.attempts : 10;
        w->delay = (int64_t)XE_PURGE_RETRY_MIN_S << shift;
        if (w->delay > XE_PURGE_RETRY_MAX_S)
            w->delay = XE_PURGE_RETRY_MAX_S;
        w->t.attempts++;
        w->t.next = xe_now_seconds() + w->delay;
        snprintf(w->t.error, sizeof(w->t.error), "%s", why);
        for (char *c = w->t.error; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == '"')
                *c = ' ';
    }
    w->req.data = w;
    pg->writes++;
    if (uv_queue_work(pg->loop, &w->req, twrite_work, twrite_done) < 0) {
        twrite_work(&w->req); /* cannot happen with a live loop: write here */
        twrite_done(&w->req, 0);
    }
}

/* The attempt ended: the tombstone goes (OK) or records the failure; an
 * abandoned one (ABANDONED: the tombstone changed) writes nothing. */
static void
job_end2(struct job *j, bool ok, bool abandoned, const char *why)
{
    struct xe_purger *pg = j->pg;

    if (j->done)
        return;
    j->done = true;
    if (pg != NULL) {
        pg->slots[j->slot].job = NULL;
        if (abandoned) {
            xe_warn("event=purge jid=%s server=%s result=abandoned reason=\"%s\"",
                    j->t.jid, j->server, why);
            xe_metrics_inc(XE_M_PURGES, "abandoned", NULL);
            pg->slots[j->slot].busy = false;
        } else {
            twrite_start(pg, j, ok, why);
        }
    }
    if (!j->opened) { /* nothing was opened */
        xe_purge_free(&j->purge);
        free(j);
        return;
    }
    xe_stream_abort(&j->st, XE_STREAM_LOCAL, 0);
}

static void
job_end(struct job *j, bool ok, const char *why)
{
    job_end2(j, ok, false, why);
}

/* Right before <remove/>: is the tombstone the one this attempt read (a
 * short read transaction on the loop: it waits for no writer)? A name
 * given up (`xedgectl user del --keep-data`) and created again meanwhile
 * has no tombstone, or another deletion's: its new account's data must not
 * be removed. NULL: go on. */
static const char *
recheck(void *ctx)
{
    struct job *j = ctx;
    struct xe_tombstone *cur;
    const char *why = NULL;
    char *err = NULL;
    int r;

    if (j->pg == NULL)
        return "stopping";
    cur = xe_calloc(1, sizeof(*cur));
    r = xe_userstore_tomb_get(j->pg->store, j->t.jid, cur, &err);
    if (r == XE_US_NOTFOUND)
        why = "the tombstone is gone (the purge was given up)";
    else if (r != XE_US_OK)
        why = "cannot read the tombstone again";
    else if (!xe_tombstone_same(cur, &j->t))
        why = "the name was deleted again since (another tombstone)";
    if (r != XE_US_OK && r != XE_US_NOTFOUND)
        xe_err("event=purge-recheck jid=%s error=\"%s\"", j->t.jid, err ? err : "?");
    free(err);
    free(cur);
    return why;
}

static void
on_job_timeout(struct xe_stream *s, void *ctx)
{
    (void)s;
    job_end(ctx, false, "no answer from the backend in time");
}

/* Send what the purge has queued. */
static void
flush(struct job *j)
{
    struct xe_buf *o = xe_purge_output(j->purge);

    if (j->done || o->len == 0)
        return;
    /* (a failure closes the stream: job_closed) */
    if (xe_stream_write(&j->st, o->data, o->len) == 0)
        xe_buf_consume(o, o->len);
}

/* The stream closed by itself (a write failed). */
static void
job_closed(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    (void)s;
    job_end(ctx, false,
            r == XE_STREAM_WRITE_ERROR ? uv_strerror(status)
                                       : "cannot write to the backend");
}

static void
job_eof(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    (void)s;
    job_end(ctx, false,
            r == XE_STREAM_EOF ? "the backend closed the connection before it answered"
                               : uv_strerror(status));
}

static void
job_data(struct xe_stream *s, const char *data, size_t n, void *ctx)
{
    struct job *j = ctx;

    (void)s;
    if (j->done)
        return;
    if ((j->read += n) > XE_PURGE_MAX_READ) {
        job_end(j, false, "too much from the backend before its answer");
        return;
    }
    switch (xe_purge_feed(j->purge, data, n)) {
    case XE_PURGE_DONE:
        job_end(j, true, NULL);
        return;
    case XE_PURGE_FAIL:
        job_end(j, false, xe_purge_error(j->purge));
        return;
    case XE_PURGE_ABANDONED:
        job_end2(j, false, true, xe_purge_error(j->purge));
        return;
    case XE_PURGE_CONTINUE:
        flush(j);
        return;
    }
}

static void
on_connect(struct xe_stream *s, int status, void *ctx)
{
    struct job *j = ctx;

    if (j->done)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect to the backend: %s",
                 uv_strerror(status));
        job_end(j, false, why);
        return;
    }
    if (j->proxy && !j->unix_socket) {
        struct sockaddr_storage self, peer;
        int l1 = sizeof(self), l2 = sizeof(peer);
        unsigned char hdr[XE_PROXY_V2_OUT_MAX];
        size_t len = 0;
        if (uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&self, &l1) == 0 &&
            uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&peer, &l2) == 0)
            len = xe_proxy_write_v2((struct sockaddr *)&self, (struct sockaddr *)&peer,
                                    hdr, sizeof(hdr));
        /* the header goes first: put it in front of the stream header */
        struct xe_buf *o = xe_purge_output(j->purge), tmp;
        xe_buf_init(&tmp, 0);
        xe_buf_append(&tmp, hdr, len);
        xe_buf_append(&tmp, o->data, o->len);
        xe_buf_consume(o, o->len);
        xe_buf_append(o, tmp.data, tmp.len);
        xe_buf_free(&tmp);
    }
    xe_stream_start(s);
    if (!s->reading) {
        job_end(j, false, "cannot read from the backend");
        return;
    }
    flush(j);
}

static const struct xe_stream_cb job_cb = {
    .connected = on_connect,
    .data = job_data,
    .eof = job_eof,
    .timeout = on_job_timeout,
    .closed = job_closed,
    .released = job_released,
};

/* T's home server (its pin, else the pool's choice), or NULL if its domain
 * is not served; *KEY: the backend's address (one attempt per backend). */
static const struct xe_server_conf *
home(const struct xe_purger *pg, const struct xe_tombstone *t,
     const struct xe_domain_conf **d_r, char *key, size_t size)
{
    const struct xe_domain_conf *d = xe_conf_domain(pg->conf, strchr(t->jid, '@') + 1);
    const struct xe_pool_conf *pool;
    const struct xe_server_conf *sc = NULL;

    *d_r = d;
    snprintf(key, size, "-");
    if (d == NULL)
        return NULL;
    pool = d->pool;
    for (size_t i = 0; t->pin[0] && i < pool->n_servers; i++)
        if (strcmp(pool->servers[i].name, t->pin) == 0)
            sc = &pool->servers[i];
    if (sc == NULL)
        sc = &pool->servers[xe_pool_pick(pool, t->jid)];
    if (sc->unix_socket)
        snprintf(key, size, "%s", sc->host);
    else
        snprintf(key, size, "[%s]:%u", sc->host, (unsigned)sc->port);
    return sc;
}

/* Start the purge of T's user in slot SLOT (taken). */
static void
start(struct xe_purger *pg, const struct xe_tombstone *t, int slot)
{
    struct job *j = xe_calloc(1, sizeof(*j));
    const char *domain = strchr(t->jid, '@') + 1;
    const struct xe_domain_conf *d;
    const struct xe_pool_conf *pool;
    const struct xe_server_conf *sc;
    char token[512], *local;
    struct sockaddr_storage ss;
    int r;

    j->pg = pg;
    j->slot = slot;
    j->t = *t;
    sc = home(pg, t, &d, pg->slots[slot].server, sizeof(pg->slots[slot].server));
    snprintf(pg->slots[slot].jid, sizeof(pg->slots[slot].jid), "%s", t->jid);
    pg->slots[slot].busy = true;
    pg->slots[slot].job = j;
    if (d == NULL) {
        job_end(j, false, "the domain is not served by this configuration");
        return;
    }
    pool = d->pool;
    snprintf(j->server, sizeof(j->server), "%s", sc->name);
    j->unix_socket = sc->unix_socket;
    j->proxy = pool->proxy_protocol;
    if (xe_assertion_make(pool->secret, pool->secret_len, "c2s", t->jid,
                          xe_now_seconds() + pg->conf->assertion_lifetime_s, NULL, token,
                          sizeof(token)) < 0) {
        job_end(j, false, "cannot make the identity assertion");
        return;
    }
    local = xe_strndup(t->jid, (size_t)(domain - 1 - t->jid));
    j->purge = xe_purge_new(d->name, local, token);
    xe_purge_set_recheck(j->purge, recheck, j);
    OPENSSL_cleanse(token, sizeof(token));
    free(local);
    xe_info("event=purge-start jid=%s server=%s attempt=%u", t->jid, sc->name,
            t->attempts + 1);
    xe_stream_init(&j->st, pg->loop, sc->unix_socket, &slab, &limits, &job_cb, j);
    j->opened = true;
    if (sc->unix_socket) {
        xe_stream_connect_pipe(&j->st, sc->host); /* errors reach on_connect */
        r = 0;
    } else {
        if (uv_ip4_addr(sc->host, sc->port, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(sc->host, sc->port, (struct sockaddr_in6 *)&ss) != 0)
            r = UV_EINVAL;
        else
            r = xe_stream_connect_tcp(&j->st, (struct sockaddr *)&ss);
    }
    if (r < 0) {
        job_end(j, false, uv_strerror(r));
        return;
    }
    xe_stream_arm(&j->st, XE_PURGE_TIMEOUT_MS);
}

/* The due tombstones to start now: not under way, not at a busy backend. */
struct due {
    struct xe_purger *pg;
    int64_t now;
    size_t want, n;
    struct xe_tombstone *t; /* [XE_PURGE_PARALLEL] */
    char keys[XE_PURGE_PARALLEL][300];
};

static bool
busy(const struct due *d, const char *jid, const char *key)
{
    for (int i = 0; i < XE_PURGE_PARALLEL; i++)
        if (d->pg->slots[i].busy && (strcmp(d->pg->slots[i].jid, jid) == 0 ||
                                     strcmp(d->pg->slots[i].server, key) == 0))
            return true;
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->keys[i], key) == 0)
            return true;
    return false;
}

static int
due_cb(const struct xe_tombstone *t, void *ctx)
{
    struct due *d = ctx;
    const struct xe_domain_conf *dc;
    char key[300];

    if (t->next > d->now)
        return 0;
    home(d->pg, t, &dc, key, sizeof(key));
    if (busy(d, t->jid, key))
        return 0;
    d->t[d->n] = *t;
    snprintf(d->keys[d->n], sizeof(d->keys[d->n]), "%s", key);
    return ++d->n == d->want;
}

static void
scan(struct xe_purger *pg)
{
    struct due *d;
    char *err = NULL;
    size_t free_slots = 0;

    if (pg->stopped || pg->conf == NULL)
        return;
    for (int i = 0; i < XE_PURGE_PARALLEL; i++)
        free_slots += !pg->slots[i].busy;
    if (free_slots == 0)
        return;
    if (pg->may != NULL && !pg->may(pg->may_ctx))
        return;
    d = xe_calloc(1, sizeof(*d));
    d->t = xe_calloc(XE_PURGE_PARALLEL, sizeof(*d->t));
    d->pg = pg;
    d->now = xe_now_seconds();
    d->want = free_slots;
    if (xe_userstore_tomb_foreach(pg->store, NULL, due_cb, d, &err) != XE_US_OK)
        xe_err("event=purge-scan error=\"%s\"", err ? err : "?");
    /* after the walk: its read transaction is over */
    for (size_t i = 0, slot = 0; i < d->n && !pg->stopped; i++) {
        while (pg->slots[slot].busy)
            slot++;
        start(pg, &d->t[i], (int)slot);
    }
    free(err);
    free(d->t);
    free(d);
}

static void
on_scan(uv_timer_t *t)
{
    scan(t->data);
}

void
xe_purger_set_gate(struct xe_purger *pg, bool (*may)(void *ctx), void *ctx)
{
    if (pg == NULL)
        return;
    pg->may = may;
    pg->may_ctx = ctx;
}

struct xe_purger *
xe_purger_new(uv_loop_t *loop, struct xe_userstore *store, const struct xe_conf *conf)
{
    struct xe_purger *pg = xe_calloc(1, sizeof(*pg));

    pg->loop = loop;
    pg->store = store;
    pg->conf = conf;
    uv_timer_init(loop, &pg->scan);
    pg->scan.data = pg;
    uv_timer_start(&pg->scan, on_scan, 0, XE_PURGE_SCAN_MS);
    return pg;
}

void
xe_purger_set_conf(struct xe_purger *pg, const struct xe_conf *conf)
{
    if (pg)
        pg->conf = conf;
}

void
xe_purger_kick(struct xe_purger *pg)
{
    if (pg)
        scan(pg);
}

void
xe_purger_stop(struct xe_purger *pg)
{
    if (pg == NULL || pg->stopped)
        return;
    pg->stopped = true;
    uv_close((uv_handle_t *)&pg->scan, NULL);
    for (int i = 0; i < XE_PURGE_PARALLEL; i++) {
        struct job *j = pg->slots[i].job;
        if (j == NULL)
            continue;
        pg->slots[i].job = NULL;
        j->pg = NULL; /* abandoned: the tombstone stays as it was */
        job_end(j, false, "stopping");
    }
}

void
xe_purger_free(struct xe_purger **pgp)
{
    struct xe_purger *pg = *pgp;

    *pgp = NULL;
    if (pg == NULL)
        return;
    if (pg->writes > 0) {
        pg->free_pending = true; /* the last write's callback frees it */
        return;
    }
    free(pg);
}
