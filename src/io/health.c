/* xedge: the backends' active and passive health checks (pool.h).
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

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

static void
hcheck_closed(uv_handle_t *h)
{
    struct hcheck *k = h->data;

    if (--k->handles > 0)
        return;
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
    uv_close((uv_handle_t *)&k->tcp, hcheck_closed);
    uv_close((uv_handle_t *)&k->timer, hcheck_closed);
}

static void
hcheck_timeout(uv_timer_t *t)
{
    hcheck_done(t->data, false, "no stream features in time", false);
}

static void
hcheck_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct hcheck *k = s->data;
    const char *why = NULL;
    int r;

    if (k->done || n == 0)
        return;
    if (n < 0) {
        hcheck_done(k, false,
                    n == UV_EOF ? "the server closed the connection"
                                : uv_strerror((int)n),
                    false);
        return;
    }
    r = xe_health_probe_feed(k->probe, buf->base, (size_t)n, &why);
    if (r != 0)
        hcheck_done(k, r > 0, why, false);
}

static void
hcheck_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status; /* a failure shows when reading */
}

static void
hcheck_connected(uv_connect_t *req, int status)
{
    struct hcheck *k = req->data;
    uv_buf_t b[2];
    size_t len;
    const char *data;
    unsigned nb = 0;

    if (k->done)
        return;
    if (status < 0) {
        hcheck_done(k, false, uv_strerror(status), false);
        return;
    }
    if (k->b->pc && k->b->pc->proxy_protocol) {
        struct sockaddr_storage self, peer;
        int l1 = sizeof(self), l2 = sizeof(peer);
        if (!k->b->sc->unix_socket &&
            uv_tcp_getsockname(&k->tcp.tcp, (struct sockaddr *)&self, &l1) == 0 &&
            uv_tcp_getpeername(&k->tcp.tcp, (struct sockaddr *)&peer, &l2) == 0)
            k->proxy_len =
                xe_proxy_write_v2((struct sockaddr *)&self, (struct sockaddr *)&peer,
                                  k->proxy_hdr, sizeof(k->proxy_hdr));
        if (k->proxy_len)
            b[nb++] = uv_buf_init((char *)k->proxy_hdr, (unsigned)k->proxy_len);
    }
    data = xe_health_probe_request(k->probe, &len);
    b[nb++] = uv_buf_init((char *)data, (unsigned)len);
    if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, b, nb, hcheck_written) < 0 ||
        uv_read_start((uv_stream_t *)&k->tcp, xe_srv_on_alloc, hcheck_read) < 0)
        hcheck_done(k, false, "cannot send the stream header", false);
}

static void
hcheck_start(struct xe_server *srv, struct bstate *b)
{
    struct hcheck *k;
    int r;

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
    uv_timer_init(srv->loop, &k->timer);
    k->timer.data = k->creq.data = k;
    r = xe_srv_backend_open(srv->loop, &k->tcp, &k->creq, b->sc, hcheck_connected);
    ((uv_handle_t *)&k->tcp)->data = k;
    k->handles = 2;
    uv_timer_start(&k->timer, hcheck_timeout, b->pc->health.timeout_ms, 0);
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
