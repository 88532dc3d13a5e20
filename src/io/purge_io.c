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

struct xe_purger {
    uv_loop_t *loop;
    struct xe_userstore *store;
    const struct xe_conf *conf;
    uv_timer_t scan;
    bool stopped;
    struct job *job;        /* the attempt under way, or NULL */
    unsigned writes;        /* tombstone writes in the thread pool */
    bool free_pending;      /* xe_purger_free came while writes > 0 */
    bool (*may)(void *ctx); /* several nodes: is it this node's turn? */
    void *may_ctx;
};

/* An attempt's outcome, written to its tombstone in the thread pool. */
struct twrite {
    uv_work_t req;
    struct xe_purger *pg;
    struct xe_tombstone t;
    char server[256];
    bool ok;
    int64_t delay;
    int r;
    char *err;
};

struct job {
    struct xe_purger *pg; /* NULL once the purger stopped */
    struct xe_tombstone t;
    char server[256];
    bool unix_socket, proxy;
    struct xe_stream st; /* once opened: j is freed when it is released */
    bool opened;
    struct xe_purge *purge;
    size_t read;
    bool done;
};

/* The jobs' reads (one job at a time, on the purger's loop). */
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

/* The attempt ended: the tombstone goes (OK) or records the failure. */
static void
job_end(struct job *j, bool ok, const char *why)
{
    struct xe_purger *pg = j->pg;

    if (j->done)
        return;
    j->done = true;
    if (pg != NULL) {
        pg->job = NULL;
        twrite_start(pg, j, ok, why);
    }
    if (!j->opened) { /* nothing was opened */
        xe_purge_free(&j->purge);
        free(j);
        return;
    }
    xe_stream_abort(&j->st, XE_STREAM_LOCAL, 0);
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

/* Start the purge of T's user; false if it could not start (recorded). */
static void
start(struct xe_purger *pg, const struct xe_tombstone *t)
{
    struct job *j = xe_calloc(1, sizeof(*j));
    const char *domain = strchr(t->jid, '@') + 1;
    const struct xe_domain_conf *d = xe_conf_domain(pg->conf, domain);
    const struct xe_pool_conf *pool;
    const struct xe_server_conf *sc = NULL;
    char token[512], *local;
    struct sockaddr_storage ss;
    int r;

    j->pg = pg;
    j->t = *t;
    pg->job = j;
    if (d == NULL) {
        job_end(j, false, "the domain is not served by this configuration");
        return;
    }
    pool = d->pool;
    for (size_t i = 0; t->pin[0] && i < pool->n_servers; i++)
        if (strcmp(pool->servers[i].name, t->pin) == 0)
            sc = &pool->servers[i];
    if (sc == NULL)
        sc = &pool->servers[xe_pool_pick(pool, t->jid)];
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

struct due {
    int64_t now;
    struct xe_tombstone *t;
    bool found;
};

static int
due_cb(const struct xe_tombstone *t, void *ctx)
{
    struct due *d = ctx;

    if (t->next > d->now)
        return 0;
    *d->t = *t;
    d->found = true;
    return 1;
}

static void
scan(struct xe_purger *pg)
{
    struct xe_tombstone *t;
    struct due d;
    char *err = NULL;

    if (pg->stopped || pg->job != NULL || pg->writes > 0 || pg->conf == NULL)
        return; /* one attempt at a time, after the last one's write */
    if (pg->may != NULL && !pg->may(pg->may_ctx))
        return;
    t = xe_calloc(1, sizeof(*t));
    d.now = xe_now_seconds();
    d.t = t;
    d.found = false;
    if (xe_userstore_tomb_foreach(pg->store, NULL, due_cb, &d, &err) != XE_US_OK)
        xe_err("event=purge-scan error=\"%s\"", err ? err : "?");
    else if (d.found)
        start(pg, t); /* after the walk: its read transaction is over */
    free(err);
    free(t);
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
    if (pg->job) {
        struct job *j = pg->job;
        pg->job = NULL;
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
