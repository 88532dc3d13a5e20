/* xedge: the backends' active and passive health checks (pool.h).
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"
#include "stream.h"

/* ---- backend health (pool.h) ----------------------------------------------- */

/* A check's result for B (a server of the current generation, else it is
 * ignored): down after fall failures, up after rise successes. */
void
xe_srv_health_result(struct xe_server *srv, struct bstate *b, bool ok, bool passive,
                     const char *why)
{
    int t;

    srv_lock(srv); /* passive results come from every worker */
    if (b->pc == NULL || b->pc->health.interval_ms == 0) {
        srv_unlock(srv);
        return; /* removed, or unchecked */
    }
    t = xe_pool_health(&b->st, ok, passive, b->pc->health.fall, b->pc->health.rise);
    if (t < 0)
        xe_warn("event=backend-down pool=%s backend=%s reason=\"%s%s\" failures=%u "
                "sessions=%u",
                b->pool, b->name, passive ? "passive: " : "", why ? why : "-",
                b->pc->health.fall, b->st.sessions);
    else if (t > 0) {
        /* for its slow start: the loops' clock (uv_now), read on any thread */
        b->st.up_since_ms = uv_hrtime() / 1000000;
        xe_info("event=backend-up pool=%s backend=%s reason=\"%u health checks "
                "passed\" slow_start_ms=%u",
                b->pool, b->name, b->pc->health.rise, b->pc->health.slow_start_ms);
    }
    srv_unlock(srv);
}

/* An active health check (pool.h): connect, a stream header, the features.
 * Its connection is a stream (stream.h): freed when the stream is
 * released. */
struct hcheck {
    struct xe_stream st;
    struct xe_server *srv;
    struct bstate *b;
    struct xe_health_probe *probe;
    struct hcheck *prev, *next;
    unsigned char proxy_hdr[XE_PROXY_V2_OUT_MAX];
    size_t proxy_len;
    bool done;
};

/* The checks run on the main loop only: their reads land here. */
static struct xe_stream_slab health_slab;

/* (a check writes a stream header and reads the features: these bound it) */
static const struct xe_stream_limits health_limits = {XE_READ_CHUNK, XE_READ_CHUNK,
                                                      4 * XE_READ_CHUNK};

static void
hcheck_released(struct xe_stream *s, void *ctx)
{
    struct hcheck *k = ctx;

    (void)s;
    if (k->prev)
        k->prev->next = k->next;
    else
        k->srv->checks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->b->checking = false;
    xe_srv_bstate_unref(k->b);
    xe_health_probe_free(&k->probe);
    free(k);
}

/* The check is over (OK or not; ABORT: the server stops, no result). */
static void
hcheck_done(struct hcheck *k, bool ok, const char *why, bool abort)
{
    if (k->done)
        return;
    k->done = true;
    if (!abort) {
        if (!ok)
            xe_debug("event=health-check pool=%s backend=%s result=fail reason=\"%s\"",
                     k->b->pool, k->b->name, why);
        else
            xe_debug("event=health-check pool=%s backend=%s result=ok", k->b->pool,
                     k->b->name);
        xe_srv_health_result(k->srv, k->b, ok, false, why);
    }
    xe_stream_abort(&k->st, XE_STREAM_LOCAL, 0);
}

static void
hcheck_timeout(struct xe_stream *s, void *ctx)
{
    (void)s;
    hcheck_done(ctx, false, "no stream features in time", false);
}

static const char *
closed_why(int status)
{
    return status == UV_EOF || status == UV_EPIPE || status == 0
               ? "the server closed the connection"
               : uv_strerror(status);
}

static void
hcheck_eof(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    (void)s;
    (void)r;
    hcheck_done(ctx, false, closed_why(status), false);
}

/* Closed by the stream itself (a write failed, the cap): a failure. */
static void
hcheck_closed(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    (void)s;
    (void)r;
    hcheck_done(ctx, false, closed_why(status), false);
}

static void
hcheck_read(struct xe_stream *s, const char *data, size_t n, void *ctx)
{
    struct hcheck *k = ctx;
    const char *why = NULL;
    int r;

    (void)s;
    if (k->done)
        return;
    r = xe_health_probe_feed(k->probe, data, n, &why);
    if (r != 0)
        hcheck_done(k, r > 0, why, false);
}

static void
hcheck_connected(struct xe_stream *s, int status, void *ctx)
{
    struct hcheck *k = ctx;
    size_t len;
    const char *data;

    if (k->done)
        return;
    if (status < 0) {
        hcheck_done(k, false, uv_strerror(status), false);
        return;
    }
    /* the PROXY header and the stream header: one write */
    xe_stream_cork(s);
    if (k->b->pc && k->b->pc->proxy_protocol) {
        struct sockaddr_storage self, peer;
        int l1 = sizeof(self), l2 = sizeof(peer);
        if (!k->b->sc->unix_socket &&
            uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&self, &l1) == 0 &&
            uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&peer, &l2) == 0)
            k->proxy_len =
                xe_proxy_write_v2((struct sockaddr *)&self, (struct sockaddr *)&peer,
                                  k->proxy_hdr, sizeof(k->proxy_hdr));
        if (k->proxy_len)
            xe_stream_write_raw(s, k->proxy_hdr, k->proxy_len);
    }
    data = xe_health_probe_request(k->probe, &len);
    xe_stream_write_raw(s, data, len);
    xe_stream_uncork(s);
    if (!k->done)
        xe_stream_start(s);
}

static const struct xe_stream_cb hcheck_cb = {
    .connected = hcheck_connected,
    .data = hcheck_read,
    .eof = hcheck_eof,
    .timeout = hcheck_timeout,
    .closed = hcheck_closed,
    .released = hcheck_released,
};

static void
hcheck_start(struct xe_server *srv, struct bstate *b)
{
    const struct xe_server_conf *sc = b->sc;
    struct hcheck *k;
    int r = 0;

    k = xe_calloc(1, sizeof(*k));
    k->srv = srv;
    k->b = b;
    b->refs++;
    b->checking = true;
    k->probe = xe_health_probe_new(b->domain);
    k->next = srv->checks;
    if (srv->checks)
        srv->checks->prev = k;
    srv->checks = k;
    xe_stream_init(&k->st, srv->loop, sc->unix_socket, &health_slab, &health_limits,
                   &hcheck_cb, k);
    xe_stream_arm(&k->st, b->pc->health.timeout_ms);
    if (sc->unix_socket) {
        xe_stream_connect_pipe(&k->st, sc->host); /* errors reach the callback */
    } else {
        struct sockaddr_storage ss;
        if (uv_ip4_addr(sc->host, sc->port, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(sc->host, sc->port, (struct sockaddr_in6 *)&ss) != 0)
            r = UV_EINVAL;
        else
            r = xe_stream_connect_tcp(&k->st, (struct sockaddr *)&ss);
    }
    if (r < 0)
        hcheck_done(k, false, uv_strerror(r), false);
}

/* Every tick: the checks that are due. */
static void
health_tick(uv_timer_t *t)
{
    struct xe_server *srv = t->data;
    struct gen *g;
    uint64_t now = uv_now(srv->loop);

    srv_lock(srv); /* the states are shared with the workers (recursive) */
    g = srv->gen;
    for (size_t i = 0; i < g->n_bs; i++) {
        struct bstate *b = g->bs[i];
        if (b->pc == NULL || b->pc->health.interval_ms == 0 || b->checking)
            continue;
        /* a reload may have shortened the interval */
        if (b->next_check_ms > now + b->pc->health.interval_ms)
            b->next_check_ms = now + b->pc->health.interval_ms;
        if (now < b->next_check_ms)
            continue;
        b->next_check_ms = now + b->pc->health.interval_ms;
        hcheck_start(srv, b);
    }
    srv_unlock(srv);
}

void
xe_server_start_health(struct xe_server *srv)
{
    if (srv->health_inited)
        return;
    xe_srv_log_backends(srv->gen);
    uv_timer_init(srv->loop, &srv->health_timer);
    srv->health_timer.data = srv;
    srv->health_inited = true;
    uv_timer_start(&srv->health_timer, health_tick, 0, XE_HEALTH_TICK_MS);
}

void
xe_srv_stop_health(struct xe_server *srv)
{
    if (srv->health_inited && !uv_is_closing((uv_handle_t *)&srv->health_timer))
        uv_close((uv_handle_t *)&srv->health_timer, NULL);
    for (struct hcheck *k = srv->checks; k; k = k->next)
        hcheck_done(k, false, NULL, true);
}
