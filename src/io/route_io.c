/* xedge: routing between the servers of a pool, on libuv. See route_io.h,
 * route.h and doc/pool-routing.md. */
#include "route_io.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "route.h"
#include "listen.h"
#include "stream.h"
#include "xelimits.h"

struct rpool;

struct rlink {
    struct xe_stream st; /* (stream.h: rl is freed when it is released) */
    struct xe_route_io *io;
    struct xe_route_link *link;
    struct rpool *pool; /* after authentication */
    size_t server;      /* its index in pool->map */
    char peer[64];
    uint64_t since_ms;
    uint64_t heard_ms; /* uv_now when the glue last sent something */
    bool ready, closing;
    bool paused;      /* not read: what goes back to it is over XE_ROUTE_MAX_QUEUE */
    bool map_sending; /* parts of `sending` are still to be sent */
    bool resend;      /* then the pool's map again, whole (deltas overflowed) */
    struct xe_route_map *sending; /* the map going out in parts (held) */
    size_t map_pos;               /* the next part (xe_route_map_render_part) */
    struct xe_buf deltas;         /* deltas waiting behind the parts or a full queue */
    uint64_t log_second;          /* the second of uv_now the log counts are for */
    unsigned logged;              /* refusals logged in that second */
    unsigned long suppressed;     /* refusals not logged since the last summary */
    struct rlink *next;
};

struct rpool {
    const struct xe_pool_conf *pc; /* in io->conf */
    struct xe_route_map *map;
    struct rlink **links; /* per server of the map: its link or NULL */
    uint64_t gen;         /* the store's generation the map's pins were read at */
    bool scanning;        /* a read of the pins is in the thread pool */
};

struct xe_route_io {
    uv_loop_t *loop;
    struct xe_conf *conf; /* our own copy */
    struct xe_userstore *store;
    uv_tcp_t listener;
    uv_timer_t timer;
    bool listening, timer_on, stopped;
    struct rpool *pools;
    size_t n_pools;
    struct rlink *all;
    unsigned n_links;
    unsigned conf_gen; /* + 1 at each rebuild: a scan of older pools is dropped */
    unsigned scans;    /* reads of the pins in the thread pool */
    bool free_pending; /* xe_route_io_free came while scans > 0 */
};

static void link_close(struct rlink *rl, const char *why);

/* ---- maps -------------------------------------------------------------- */

struct pin_ctx {
    struct xe_route_map *m;
    size_t ignored;           /* pins naming no server of the pool, or too many */
    char first[128], why[96]; /* the first one, for the log */
};

/* A read of a pool's pins in the thread pool: everything it needs copied,
 * so that a reload or a stop while it runs frees nothing under it. */
struct scan {
    uv_work_t req;
    struct xe_route_io *io;
    struct xe_userstore *store;
    char *pool;
    char **domains;
    size_t n_domains;
    unsigned conf_gen;
    uint64_t gen;
    struct pin_ctx ctx;
    int r;
    char *err;
};

static int
add_pin(const struct xe_user *u, void *ctx)
{
    struct pin_ctx *pc = ctx;
    const char *why = NULL;

    if (u->pin[0] && xe_route_map_add_pin(pc->m, u->jid, u->pin, &why) < 0) {
        if (pc->ignored++ == 0) {
            snprintf(pc->first, sizeof(pc->first), "%.100s", u->jid);
            snprintf(pc->why, sizeof(pc->why), "%.90s", why);
        }
    }
    return 0;
}

/* The pins of DOMAINS' users into M, sealed: 0, or -1 with *err_r. Runs in
 * the thread pool (no log: the caller logs what ctx says). */
static int
read_pins(struct xe_userstore *store, char *const *domains, size_t n_domains,
          struct pin_ctx *ctx, char **err_r)
{
    int r = 0;

    for (size_t d = 0; store && d < n_domains && r == 0; d++)
        if (xe_userstore_foreach(store, domains[d], add_pin, ctx, err_r) < 0)
            r = -1;
    xe_route_map_seal(ctx->m);
    return r;
}

/* The names of io->conf's domains served by PC (freed by free_domains). */
static char **
pool_domains(struct xe_route_io *io, const struct xe_pool_conf *pc, size_t *n_r)
{
    char **v = xe_calloc(io->conf->n_domains + 1, sizeof(*v));
    size_t n = 0;

    for (size_t d = 0; d < io->conf->n_domains; d++)
        if (io->conf->domains[d].pool == pc)
            v[n++] = xe_strdup(io->conf->domains[d].name);
    *n_r = n;
    return v;
}

static void
free_domains(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void
log_pins(const char *pool, const struct pin_ctx *ctx, int r, const char *err)
{
    if (r < 0)
        xe_warn("event=route-pins-unread pool=%s error=\"%s\"", pool, err ? err : "?");
    if (ctx->ignored)
        xe_warn("event=route-pin-ignored pool=%s count=%zu first=%s reason=\"%s\"", pool,
                ctx->ignored, ctx->first, ctx->why);
}

/* The map of PC: its servers and the pins of its domains' users, read on
 * the loop (at start and on a reload; the timer reads them in the thread
 * pool). */
static struct xe_route_map *
build_map(struct xe_route_io *io, const struct xe_pool_conf *pc)
{
    struct pin_ctx ctx = {.m = xe_route_map_new(pc)};
    size_t n;
    char **domains = pool_domains(io, pc, &n), *err = NULL;
    int r = read_pins(io->store, domains, n, &ctx, &err);

    log_pins(pc->name, &ctx, r, err);
    free(err);
    free_domains(domains, n);
    return ctx.m;
}

/* The links' reads: they all run on the one loop. */
static struct xe_stream_slab slab;

/* Paused above XE_ROUTE_MAX_QUEUE, resumed at half; no hard cap (what
 * fills a link is bounded by the pausing and by send_map's check). */
static const struct xe_stream_limits limits = {XE_ROUTE_MAX_QUEUE / 2, XE_ROUTE_MAX_QUEUE,
                                               SIZE_MAX};

static void
send_bytes(struct rlink *rl, const void *data, size_t len)
{
    if (len == 0 || rl->closing)
        return;
    xe_stream_write(&rl->st, data, len); /* (a failure closes: link_closed) */
}

static void
send_buf(struct rlink *rl, struct xe_buf *b)
{
    send_bytes(rl, b->data, b->len);
}

/* Start sending the pool's map whole, from its first part (a map being
 * sent is dropped: the glue drops the parts it had of it at the new
 * <pool/>; so are the deltas waiting: the map has them). */
static void
start_map(struct rlink *rl)
{
    xe_route_map_free(&rl->sending);
    rl->sending = xe_route_map_ref(rl->pool->map);
    rl->map_sending = true;
    rl->resend = false;
    rl->map_pos = 0;
    rl->deltas.len = 0;
    xe_metrics_inc(XE_M_ROUTE_MAP_SENDS, "full", NULL);
}

/* What waits for the link, while what is queued to it is at most half of
 * XE_ROUTE_MAX_QUEUE (the stream's low water mark: link_drained calls
 * again as the glue reads): the next parts of the map (of any size, in
 * parts of XE_ROUTE_MAP_PART, at most about 2 MiB of it queued), then the
 * deltas that came meanwhile, in order: the glue applies a delta to the
 * map it has whole, so a delta never goes between two parts. */
static void
send_map_more(struct rlink *rl)
{
    while (!rl->closing && xe_stream_queued(&rl->st) <= XE_ROUTE_MAX_QUEUE / 2) {
        if (rl->map_sending) {
            struct xe_buf b;
            int r;
            xe_buf_init(&b, 0);
            r = xe_route_map_render_part(rl->sending, xe_route_link_server(rl->link),
                                         &rl->map_pos, XE_ROUTE_MAP_PART, &b);
            if (r >= 0) {
                xe_metrics_add(XE_M_ROUTE_MAP_BYTES, b.len, "full", NULL);
                send_buf(rl, &b);
            }
            xe_buf_free(&b);
            if (r <= 0) {
                rl->map_sending = false;
                xe_route_map_free(&rl->sending);
                if (rl->resend)
                    start_map(rl);
            }
        } else if (rl->deltas.len > 0) {
            xe_metrics_add(XE_M_ROUTE_MAP_BYTES, rl->deltas.len, "delta", NULL);
            send_buf(rl, &rl->deltas);
            rl->deltas.len = 0;
        } else {
            break;
        }
    }
}

/* The map whole (again: a new one replaces a send under way, from its
 * start; a reload, a link's first map, a resync, a change too large for a
 * delta). */
static void
send_map(struct rlink *rl)
{
    if (xe_stream_queued(&rl->st) > XE_ROUTE_MAX_QUEUE) {
        /* the glue has not read what it was sent, maps included: one more
         * map each second would grow without end */
        link_close(rl, "the glue does not read its link");
        return;
    }
    start_map(rl);
    send_map_more(rl);
}

/* A delta D (xe_route_map_delta) of the pool's map: now, or behind the map
 * parts and deltas still waiting; when those pass XE_ROUTE_MAX_DELTAS (a
 * slow glue and many changes), the map whole instead, after the parts
 * under way. */
static void
send_delta(struct rlink *rl, const struct xe_buf *d)
{
    if (rl->closing)
        return;
    xe_metrics_inc(XE_M_ROUTE_MAP_SENDS, "delta", NULL);
    if (rl->resend)
        return; /* the map goes again whole after the parts under way */
    if (rl->deltas.len + d->len > XE_ROUTE_MAX_DELTAS) {
        xe_info(
            "event=route-map-deltas-dropped server=%s bytes=%zu (the whole map instead)",
            xe_route_link_server(rl->link), rl->deltas.len + d->len);
        rl->deltas.len = 0;
        if (rl->map_sending)
            rl->resend = true;
        else
            send_map(rl);
        return;
    }
    xe_buf_append(&rl->deltas, d->data, d->len);
    send_map_more(rl);
}

/* ---- the link's callbacks ---------------------------------------------- */

static struct rpool *
pool_of(struct xe_route_io *io, const struct xe_pool_conf *pc)
{
    for (size_t i = 0; i < io->n_pools; i++)
        if (io->pools[i].pc == pc)
            return &io->pools[i];
    return NULL;
}

static const struct xe_route_map *
cb_find(void *ctx, const char *domain, const char *server, const unsigned char **secret_r,
        size_t *secret_len_r, const char **why_r)
{
    struct rlink *rl = ctx;
    const struct xe_domain_conf *d = xe_conf_domain(rl->io->conf, domain);
    struct rpool *p;

    if (d == NULL) {
        *why_r = "xedge does not serve this domain";
        return NULL;
    }
    if ((p = pool_of(rl->io, d->pool)) == NULL) {
        *why_r = "the domain's pool does not route (route = true)";
        return NULL;
    }
    if (xe_route_map_find(p->map, server) == XE_POOL_NONE) {
        *why_r = "no server of this name in the domain's pool";
        return NULL;
    }
    rl->pool = p;
    *secret_r = p->pc->secret;
    *secret_len_r = p->pc->secret_len;
    return p->map;
}

static bool
cb_up(void *ctx, size_t i)
{
    struct rlink *rl = ctx;

    return i < xe_route_map_n_servers(rl->pool->map) && rl->pool->links[i] &&
           !rl->pool->links[i]->closing;
}

static int
cb_forward(void *ctx, size_t i, const unsigned char *raw, size_t len)
{
    struct rlink *rl = ctx, *to = rl->pool->links[i];

    if (xe_stream_queued(&to->st) + len > XE_ROUTE_MAX_QUEUE)
        return -1;
    send_bytes(to, raw, len);
    return 0;
}

static void
cb_outcome(void *ctx, enum xe_route_outcome o, size_t home, const char *to)
{
    struct rlink *rl = ctx;
    const char *from = xe_route_link_server(rl->link);
    const char *hname =
        home == XE_POOL_NONE ? "none" : xe_route_map_server_name(rl->pool->map, home);

    if (o == XE_ROUTE_FORWARDED) {
        xe_metrics_inc(XE_M_ROUTED, from, hname);
        xe_debug("event=route from=%s to=%s jid=%s", from, hname, to);
        return;
    }
    xe_metrics_inc(XE_M_ROUTE_REFUSED, from, xe_route_outcome_name(o));
    {
        /* a link may send refusals as fast as it writes: XE_ROUTE_LOG_BURST
         * lines a second, then one line for what was left out (the counter
         * has them all) */
        uint64_t sec = uv_now(rl->io->loop) / 1000;
        if (sec != rl->log_second) {
            if (rl->suppressed)
                xe_warn("event=route-refused-suppressed from=%s count=%lu", from,
                        rl->suppressed);
            rl->log_second = sec;
            rl->logged = 0;
            rl->suppressed = 0;
        }
        if (rl->logged >= XE_ROUTE_LOG_BURST) {
            rl->suppressed++;
            return;
        }
        rl->logged++;
    }
    if (o == XE_ROUTE_LOOP || o == XE_ROUTE_BAD || o == XE_ROUTE_FORGED)
        xe_warn("event=route-refused from=%s home=%s jid=%s reason=%s", from, hname,
                to[0] ? to : "-", xe_route_outcome_name(o));
    else
        xe_info("event=route-refused from=%s home=%s jid=%s reason=%s", from, hname, to,
                xe_route_outcome_name(o));
}

static bool
cb_served(void *ctx, const char *domain)
{
    struct rlink *rl = ctx;
    const struct xe_conf *c = rl->io->conf;

    if (xe_conf_domain(c, domain) != NULL)
        return true;
    for (size_t i = 0; i < c->n_pools; i++)
        for (size_t j = 0; j < c->pools[i].n_components; j++)
            if (strcasecmp(c->pools[i].components[j].domain, domain) == 0)
                return true;
    return false;
}

static void
cb_resync(void *ctx)
{
    struct rlink *rl = ctx;

    if (!rl->ready || rl->closing || rl->map_sending)
        return; /* a whole map is on its way */
    xe_info("event=route-map-resync server=%s peer=%s", xe_route_link_server(rl->link),
            rl->peer);
    send_map(rl);
}

static const struct xe_route_link_cb link_cb = {cb_find,    cb_up,     cb_forward,
                                                cb_outcome, cb_served, cb_resync};

/* ---- federation straight to the home ----------------------------------- */

/* The routed pool serving TO_DOMAIN (a domain or one of its components), and
 * that domain's name, else NULL. */
static struct rpool *
fed_pool(struct xe_route_io *io, const char *to_domain, const char **domain_r)
{
    const struct xe_domain_conf *d = xe_conf_domain(io->conf, to_domain);
    struct rpool *p;

    if (d != NULL) {
        *domain_r = d->name;
        return d->pool ? pool_of(io, d->pool) : NULL;
    }
    for (size_t i = 0; i < io->n_pools; i++) {
        p = &io->pools[i];
        if (xe_route_component(p->map, to_domain) == XE_POOL_NONE)
            continue;
        for (size_t j = 0; j < io->conf->n_domains; j++)
            if (io->conf->domains[j].pool == p->pc) {
                *domain_r = io->conf->domains[j].name;
                return p;
            }
    }
    return NULL;
}

int
xe_route_io_deliver(struct xe_route_io *io, const char *from, const char *to_domain,
                    const char *to, const unsigned char *raw, size_t len,
                    struct xe_buf *reply)
{
    char bare[XE_ROUTE_MAX_JID + 1];
    const char *domain = NULL, *hname;
    struct rpool *p;
    struct rlink *rl;
    bool component;
    size_t home;

    if (io == NULL || io->stopped || to == NULL || to_domain == NULL ||
        (p = fed_pool(io, to_domain, &domain)) == NULL)
        return XE_ROUTE_IO_PASS;
    home = xe_route_target(p->map, domain, to, bare, sizeof(bare), &component);
    if (home == XE_POOL_NONE)
        return XE_ROUTE_IO_PASS;
    hname = xe_route_map_server_name(p->map, home);
    rl = p->links[home];
    if (rl == NULL || rl->closing || !rl->ready ||
        xe_stream_queued(&rl->st) + len > XE_ROUTE_MAX_QUEUE) {
        bool down = rl == NULL || rl->closing || !rl->ready;
        int e = 0;
        if (!component)
            return XE_ROUTE_IO_PASS;
        /* no federation link reaches a component: xedge answers for it
         * (remote-server-timeout: the service the JID names is known but
         * cannot be reached now; wait: it may be back) */
        if (reply)
            e = xe_route_component_error(
                raw, len, "wait", down ? "remote-server-timeout" : "resource-constraint",
                down ? XE_ROUTE_COMPONENT_DOWN_TEXT
                     : "the component's server is not keeping up",
                reply);
        xe_metrics_inc(XE_M_ROUTE_REFUSED, "federation",
                       down ? "home-down" : "queue-full");
        xe_info("event=route-refused from=federation remote=%s home=%s jid=%s reason=%s "
                "error=%s",
                from, hname, bare, down ? "home-down" : "queue-full",
                e > 0    ? "sent"
                : e == 0 ? "none-due"
                         : "unparsed");
        return XE_ROUTE_IO_DROPPED;
    }
    send_bytes(rl, raw, len);
    xe_metrics_inc(XE_M_ROUTED, "federation", hname);
    xe_debug("event=route from=federation remote=%s to=%s jid=%s", from, hname, bare);
    return XE_ROUTE_IO_SENT;
}

bool
xe_route_io_is_component(const struct xe_route_io *io, const char *name)
{
    for (size_t i = 0; io != NULL && name != NULL && i < io->n_pools; i++)
        if (xe_route_component(io->pools[i].map, name) != XE_POOL_NONE)
            return true;
    return false;
}

/* ---- connections ------------------------------------------------------- */

static void
on_released(struct xe_stream *s, void *ctx)
{
    struct rlink *rl = ctx;
    struct xe_route_io *io = rl->io;

    (void)s;
    for (struct rlink **pp = &io->all; *pp; pp = &(*pp)->next)
        if (*pp == rl) {
            *pp = rl->next;
            break;
        }
    io->n_links--;
    xe_route_link_free(&rl->link);
    xe_route_map_free(&rl->sending);
    xe_buf_free(&rl->deltas);
    free(rl);
}

static void
unregister(struct rlink *rl)
{
    if (rl->ready && rl->pool && rl->server < xe_route_map_n_servers(rl->pool->map) &&
        rl->pool->links[rl->server] == rl)
        rl->pool->links[rl->server] = NULL;
    rl->ready = false;
}

static void
link_close(struct rlink *rl, const char *why)
{
    if (rl->closing)
        return;
    if (rl->suppressed)
        xe_warn("event=route-refused-suppressed from=%s count=%lu",
                xe_route_link_server(rl->link) ? xe_route_link_server(rl->link) : "-",
                rl->suppressed);
    rl->suppressed = 0;
    if (rl->ready)
        xe_info("event=route-link-down server=%s peer=%s reason=\"%s\"",
                xe_route_link_server(rl->link), rl->peer, why ? why : "closed");
    else
        xe_info("event=route-link-refused peer=%s reason=\"%s\"", rl->peer,
                why ? why : "closed");
    unregister(rl);
    rl->closing = true;
    /* the stream error goes out first; a glue that reads nothing: its
     * last bytes are dropped after XE_ROUTE_AUTH_MS */
    xe_stream_close(&rl->st, XE_ROUTE_AUTH_MS);
}

/* The stream closed: by link_close, or by itself (a write failed). */
static void
link_closed(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    struct rlink *rl = ctx;

    (void)s;
    if (!rl->closing)
        link_close(rl, r == XE_STREAM_WRITE_ERROR ? uv_strerror(status) : "closed");
}

/* What went back to the glue is down to half: read it again. */
static void
link_drained(struct xe_stream *s, void *ctx)
{
    struct rlink *rl = ctx;

    if (rl->paused && !rl->closing) {
        rl->paused = false;
        xe_stream_resume(s);
    }
    send_map_more(rl);
}

static void
became_ready(struct rlink *rl)
{
    struct rlink *old;

    rl->server = xe_route_link_self(rl->link);
    old = rl->pool->links[rl->server];
    if (old && old != rl) {
        struct xe_buf b;
        xe_buf_init(&b, 0);
        xe_buf_append_str(&b, "<stream:error><conflict xmlns='"
                              "urn:ietf:params:xml:ns:xmpp-streams"
                              "'/></stream:error></stream:stream>");
        send_buf(old, &b);
        xe_buf_free(&b);
        link_close(old, "replaced by a new link of the same server");
    }
    rl->pool->links[rl->server] = rl;
    rl->ready = true;
    xe_info("event=route-link-up pool=%s server=%s domain=%s peer=%s", rl->pool->pc->name,
            xe_route_link_server(rl->link), xe_route_link_domain(rl->link), rl->peer);
    send_map(rl);
}

static void
link_eof(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    (void)s;
    link_close(ctx, r == XE_STREAM_EOF ? "the glue closed the connection"
                                       : uv_strerror(status));
}

static void
link_data(struct xe_stream *s, const char *data, size_t n, void *ctx)
{
    struct rlink *rl = ctx;
    struct xe_buf out;
    const char *why = NULL;
    int r;

    if (rl->closing)
        return;
    rl->heard_ms = uv_now(rl->io->loop);
    xe_buf_init(&out, 0);
    r = xe_route_link_feed(rl->link, data, n, xe_now_seconds(), &out, &why);
    send_buf(rl, &out);
    xe_buf_free(&out);
    if (r == XE_ROUTE_READY)
        became_ready(rl);
    else if (r == XE_ROUTE_CLOSE)
        link_close(rl, why);
    if (!rl->closing && !rl->paused && xe_stream_queued(s) > XE_ROUTE_MAX_QUEUE) {
        /* what goes back to this glue (errors for its stanzas) waits: read
         * nothing more from it until it has read half of it */
        rl->paused = true;
        xe_stream_pause(s);
        xe_info("event=route-link-paused server=%s peer=%s queued=%zu",
                xe_route_link_server(rl->link) ? xe_route_link_server(rl->link) : "-",
                rl->peer, xe_stream_queued(s));
    }
}

static const struct xe_stream_cb link_stream_cb = {
    .data = link_data,
    .eof = link_eof,
    .drained = link_drained,
    .closed = link_closed,
    .released = on_released,
};

static void
on_connection(uv_stream_t *server, int status)
{
    struct xe_route_io *io = server->data;
    struct rlink *rl;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (status < 0)
        return;
    rl = xe_calloc(1, sizeof(*rl));
    rl->io = io;
    xe_buf_init(&rl->deltas, 0);
    xe_stream_init(&rl->st, io->loop, false, &slab, &limits, &link_stream_cb, rl);
    rl->next = io->all; /* (its release unlinks it) */
    io->all = rl;
    io->n_links++;
    if (xe_stream_accept(&rl->st, server) < 0) {
        rl->closing = true; /* (nothing to log) */
        xe_stream_abort(&rl->st, XE_STREAM_LOCAL, 0);
        return;
    }
    snprintf(rl->peer, sizeof(rl->peer), "?");
    if (uv_tcp_getpeername(&rl->st.u.tcp, (struct sockaddr *)&ss, &len) == 0) {
        char a[48] = "?";
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, a, sizeof(a));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, a, sizeof(a));
        snprintf(rl->peer, sizeof(rl->peer), "%s", a);
    }
    rl->since_ms = uv_now(io->loop);
    rl->link = xe_route_link_new(&link_cb, rl, io->conf->assertion_lifetime_s);
    if (io->n_links > XE_ROUTE_MAX_LINKS || io->stopped) {
        link_close(rl, "too many routing connections");
        return;
    }
    uv_tcp_nodelay(&rl->st.u.tcp, 1);
    xe_stream_start(&rl->st);
}

/* ---- pools, pins, reloads ---------------------------------------------- */

static void
free_pools(struct rpool *pools, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xe_route_map_free(&pools[i].map);
        free(pools[i].links);
    }
    free(pools);
}

/* The routed pools of io->conf, with fresh maps; the links move over by
 * pool and server name (a link whose server left is closed). */
static void
rebuild(struct xe_route_io *io)
{
    struct rpool *old = io->pools;
    size_t n_old = io->n_pools, n = 0;

    for (size_t i = 0; i < io->conf->n_pools; i++)
        n += io->conf->pools[i].route;
    io->pools = xe_calloc(n ? n : 1, sizeof(*io->pools));
    io->n_pools = 0;
    io->conf_gen++;
    for (size_t i = 0; i < io->conf->n_pools; i++) {
        const struct xe_pool_conf *pc = &io->conf->pools[i];
        struct rpool *p;
        if (!pc->route)
            continue;
        p = &io->pools[io->n_pools++];
        p->pc = pc;
        p->gen = xe_userstore_generation(io->store); /* before the read */
        p->map = build_map(io, pc);
        for (size_t k = 0; k < n_old; k++)
            if (strcmp(old[k].pc->name, pc->name) == 0) /* (old[k].pc: the old conf) */
                xe_route_map_set_gen(p->map, xe_route_map_gen(old[k].map) + 1);
        p->links = xe_calloc(pc->n_servers, sizeof(*p->links));
    }
    for (struct rlink *rl = io->all; rl; rl = rl->next) {
        struct rpool *np = NULL;
        struct xe_buf out;
        if (rl->closing || rl->pool == NULL)
            continue;
        for (size_t i = 0; i < io->n_pools; i++)
            if (strcmp(io->pools[i].pc->name, rl->pool->pc->name) == 0)
                np = &io->pools[i];
        rl->ready = false; /* the old arrays go */
        rl->pool = np;
        if (np == NULL) {
            struct xe_buf b;
            xe_buf_init(&b, 0);
            xe_buf_append_str(&b,
                              "<stream:error><not-authorized xmlns='urn:ietf:params:xml:"
                              "ns:xmpp-streams'/></stream:error></stream:stream>");
            send_buf(rl, &b);
            xe_buf_free(&b);
            link_close(rl, "its pool no longer routes");
            continue;
        }
        xe_buf_init(&out, 0);
        if (xe_route_link_set_map(rl->link, np->map, &out) < 0) {
            send_buf(rl, &out);
            xe_buf_free(&out);
            link_close(rl, "its server left the pool");
            continue;
        }
        xe_buf_free(&out);
        rl->server = xe_route_link_self(rl->link);
        if (xe_route_link_server(rl->link) == NULL)
            continue; /* not yet authenticated */
        np->links[rl->server] = rl;
        rl->ready = true;
        send_map(rl);
    }
    free_pools(old, n_old);
}

static void
scan_work(uv_work_t *req)
{
    struct scan *sc = req->data;

    sc->r = read_pins(sc->store, sc->domains, sc->n_domains, &sc->ctx, &sc->err);
}

static void
scan_free(struct scan *sc)
{
    xe_route_map_free(&sc->ctx.m);
    free_domains(sc->domains, sc->n_domains);
    free(sc->pool);
    free(sc->err);
    free(sc);
}

static void io_free_now(struct xe_route_io *io);

/* A read of the pins is back: a changed map goes to the pool's links. */
static void
scan_done(uv_work_t *req, int status)
{
    struct scan *sc = req->data;
    struct xe_route_io *io = sc->io;
    struct rpool *p = NULL;

    io->scans--;
    if (io->free_pending) {
        scan_free(sc);
        if (io->scans == 0)
            io_free_now(io);
        return;
    }
    for (size_t i = 0; !io->stopped && sc->conf_gen == io->conf_gen && i < io->n_pools;
         i++)
        if (strcmp(io->pools[i].pc->name, sc->pool) == 0)
            p = &io->pools[i];
    if (p == NULL) { /* stopped, or a reload made new maps meanwhile */
        scan_free(sc);
        return;
    }
    p->scanning = false;
    log_pins(sc->pool, &sc->ctx, status < 0 ? -1 : sc->r, sc->err);
    if (status < 0 || sc->r < 0) {
        scan_free(sc);
        return;
    }
    p->gen = sc->gen;
    if (xe_route_map_same(sc->ctx.m, p->map)) {
        scan_free(sc);
        return;
    }
    {
        /* only pins change here (a reload rebuilds): a delta, unless it
         * is large (a bulk import: the map whole) */
        struct xe_buf d;
        int dr;
        xe_route_map_set_gen(sc->ctx.m, xe_route_map_gen(p->map) + 1);
        xe_buf_init(&d, 0);
        dr = xe_route_map_delta(p->map, sc->ctx.m, XE_ROUTE_MAX_DELTA, &d);
        if (dr == 0)
            xe_info(
                "event=route-map-changed pool=%s generation=%llu kind=delta bytes=%zu",
                p->pc->name, (unsigned long long)xe_route_map_gen(sc->ctx.m), d.len);
        else
            xe_info("event=route-map-changed pool=%s generation=%llu kind=full",
                    p->pc->name, (unsigned long long)xe_route_map_gen(sc->ctx.m));
        xe_route_map_free(&p->map);
        p->map = sc->ctx.m;
        sc->ctx.m = NULL;
        scan_free(sc);
        for (size_t s = 0; s < p->pc->n_servers; s++) {
            struct rlink *rl = p->links[s];
            struct xe_buf out;
            if (rl == NULL)
                continue;
            xe_buf_init(&out, 0);
            xe_route_link_set_map(rl->link, p->map, &out); /* same servers: cannot fail */
            xe_buf_free(&out);
            if (dr == 0)
                send_delta(rl, &d);
            else
                send_map(rl);
        }
        xe_buf_free(&d);
    }
}

/* The pins of P again, in the thread pool: a scan of every user of the
 * pool's domains takes 140 ms for 100,000 users, too long for the loop. */
static void
scan_start(struct xe_route_io *io, struct rpool *p, uint64_t gen)
{
    struct scan *sc = xe_calloc(1, sizeof(*sc));

    sc->io = io;
    sc->store = io->store;
    sc->pool = xe_strdup(p->pc->name);
    sc->domains = pool_domains(io, p->pc, &sc->n_domains);
    sc->conf_gen = io->conf_gen;
    sc->gen = gen;
    sc->ctx.m = xe_route_map_new(p->pc);
    sc->req.data = sc;
    if (uv_queue_work(io->loop, &sc->req, scan_work, scan_done) < 0) {
        scan_free(sc);
        return;
    }
    p->scanning = true;
    io->scans++;
    xe_debug("event=route-pins-read pool=%s generation=%llu", p->pc->name,
             (unsigned long long)gen);
}

/* Every XE_ROUTE_PIN_REFRESH_MS: the pins again if the store changed (its
 * generation: any write, by xedge or xedgectl), read in the thread pool;
 * a changed map goes to the pool's links (scan_done). Links still
 * unauthenticated after XE_ROUTE_AUTH_MS are closed (a closing link's
 * last bytes wait as long: its stream's grace time). */
static void
on_timer(uv_timer_t *t)
{
    struct xe_route_io *io = t->data;
    uint64_t now = uv_now(io->loop), gen = xe_userstore_generation(io->store);

    for (size_t i = 0; io->store && i < io->n_pools; i++) {
        struct rpool *p = &io->pools[i];
        if (p->scanning || (gen != 0 && gen == p->gen))
            continue;
        scan_start(io, p, gen);
    }
    for (struct rlink *rl = io->all; rl; rl = rl->next) {
        if (!rl->closing && xe_route_link_server(rl->link) == NULL &&
            now - rl->since_ms > XE_ROUTE_AUTH_MS)
            link_close(rl, "no authentication in time");
        else if (!rl->closing && rl->ready) {
            /* a glue that pings (every N s it writes at least that) and is
             * silent for XE_ROUTE_SILENT_PINGS times N: hung, or the path
             * drops silently; closing makes its users' home down at once */
            uint64_t n = (uint64_t)xe_route_link_ping_interval(rl->link) * 1000;
            if (n > 0 && now - rl->heard_ms > XE_ROUTE_SILENT_PINGS * n) {
                char why[80];
                snprintf(why, sizeof(why), "silent for %llu s (pings every %llu s)",
                         (unsigned long long)(now - rl->heard_ms) / 1000,
                         (unsigned long long)n / 1000);
                link_close(rl, why);
            }
        }
    }
}

int
xe_route_io_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_route_io **io_r,
                char **error_r)
{
    struct xe_route_io *io;

    *io_r = NULL;
    if (conf->route_address == NULL)
        return 0;
    io = xe_calloc(1, sizeof(*io));
    io->loop = loop;
    if (xe_conf_load(conf->path, &io->conf, error_r) < 0) {
        free(io);
        return -1;
    }
    *io_r = io;
    return 0;
}

void
xe_route_io_set_store(struct xe_route_io *io, struct xe_userstore *store)
{
    if (io)
        io->store = store;
}

int
xe_route_io_listen(struct xe_route_io *io, char **error_r)
{
    int r;

    if (io == NULL)
        return 0;
    rebuild(io);
    uv_tcp_init(io->loop, &io->listener);
    io->listener.data = io;
    io->listening = true;
    if ((r = xe_tcp_listen(&io->listener, io->conf->route_address, io->conf->route_port,
                           false, on_connection)) < 0) {
        *error_r = xe_asprintf("routing listener %s:%d: %s", io->conf->route_address,
                               io->conf->route_port, uv_strerror(r));
        return -1;
    }
    uv_timer_init(io->loop, &io->timer);
    io->timer.data = io;
    io->timer_on = true;
    uv_timer_start(&io->timer, on_timer, XE_ROUTE_PIN_REFRESH_MS,
                   XE_ROUTE_PIN_REFRESH_MS);
    xe_info("event=listening kind=routing address=%s port=%d pools=%zu",
            io->conf->route_address, io->conf->route_port, io->n_pools);
    return 0;
}

int
xe_route_io_reload(struct xe_route_io *io, const struct xe_conf *conf, char **error_r)
{
    struct xe_conf *nc = NULL;

    if (io == NULL)
        return 0;
    if (xe_conf_load(conf->path, &nc, error_r) < 0)
        return -1;
    {
        struct xe_conf *old = io->conf;
        io->conf = nc;
        rebuild(io); /* (the old maps and arrays go; the old conf after) */
        xe_conf_free(&old);
    }
    return 0;
}

void
xe_route_io_stop(struct xe_route_io *io)
{
    if (io == NULL || io->stopped)
        return;
    io->stopped = true;
    if (io->listening) {
        uv_close((uv_handle_t *)&io->listener, NULL);
        io->listening = false;
    }
    if (io->timer_on) {
        uv_close((uv_handle_t *)&io->timer, NULL);
        io->timer_on = false;
    }
    for (struct rlink *rl = io->all; rl; rl = rl->next) {
        if (!rl->closing)
            unregister(rl);
        rl->closing = true; /* no waiting on a glue at shutdown */
        xe_stream_abort(&rl->st, XE_STREAM_LOCAL, 0);
    }
}

static void
io_free_now(struct xe_route_io *io)
{
    free(io);
}

void
xe_route_io_free(struct xe_route_io **iop)
{
    struct xe_route_io *io = *iop;

    if (io == NULL)
        return;
    *iop = NULL;
    free_pools(io->pools, io->n_pools);
    io->pools = NULL;
    io->n_pools = 0;
    xe_conf_free(&io->conf);
    if (io->scans > 0) {
        io->free_pending = true; /* the last scan_done frees it */
        return;
    }
    io_free_now(io);
}

void
xe_route_io_gauges(struct xe_route_io *io, struct xe_buf *out)
{
    if (io == NULL)
        return;
    xe_buf_append_str(out, "# HELP xedge_route_links Whether a server's routing link is "
                           "up (1) or not (0), by pool and server.\n"
                           "# TYPE xedge_route_links gauge\n");
    for (size_t i = 0; i < io->n_pools; i++)
        for (size_t s = 0; s < io->pools[i].pc->n_servers; s++)
            xe_buf_appendf(out, "xedge_route_links{pool=\"%s\",server=\"%s\"} %d\n",
                           io->pools[i].pc->name, io->pools[i].pc->servers[s].name,
                           io->pools[i].links[s] != NULL);
}
