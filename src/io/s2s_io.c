/* xedge: the I/O glue of federation. See s2s_io.h and doc/federation.md.
 *
 * One struct sconn per TCP connection, whatever its kind (s2s.h): IN (a
 * remote server's stream), OUT (ours to a remote server), VERIFY (a
 * dialback verification stream), BACKEND (a backend's outgoing stream) and
 * LINK (ours to a backend's s2s port, one per authenticated pair). They
 * find each other by domain pair or by id, never by a pointer that could
 * outlive its target (BACKEND -> OUT is cleared when the OUT closes).
 * Handles are embedded; an sconn is freed in its last close callback. */
#include "s2s_io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "assertion.h"
#include "log.h"
#include "metrics.h"
#include "resolve.h"
#include "s2s.h"
#include "listen.h"
#include "tls.h"
#include "util.h"
#include "xelimits.h"

#define CLOSE_GRACE_MS 3000
#define MAX_NAMES 8

/* A configuration of the glue, with the TLS contexts built from it; each
 * stream holds a reference for its life. */
struct s2s_gen {
    unsigned refs;
    struct xe_conf *conf;
    struct xe_tls_ctx *tls, *tls_direct;
    /* the outgoing side: [i] for conf->domains[i] (its certificate), [n]
     * for none; each with the trust anchors */
    struct xe_tls_client_ctx **client;
};

struct s2s_listener {
    uv_tcp_t tcp;
    struct xe_s2s_io *io;
    enum xe_listener_kind kind;
    bool open;
};

struct xe_s2s_io {
    uv_loop_t *loop;
    struct s2s_gen *gen;
    struct s2s_listener *ls;
    size_t n_ls;
    struct sconn *conns;
    uint64_t next_id;
    bool stopping;
    struct xe_resolver *resolver; /* for peers without a static route */
    /* resolvers a reload replaced: their requests in flight finish there;
     * freed once idle (the sweep timer runs while there are any) */
    struct xe_resolver *retired[XE_S2S_MAX_RETIRED_RESOLVERS];
    size_t n_retired;
    uv_timer_t sweep;
    /* remote domains that dropped the stream during our SASL EXTERNAL: the
     * next streams to them use dialback at once, until `until` */
    struct {
        char domain[XE_S2S_MAX_DOMAIN_BUF];
        int64_t until; /* uv_now, ms */
    } no_ext[XE_S2S_MAX_EXTERNAL_DROPS];
};

struct sconn {
    struct xe_s2s_io *io;
    struct s2s_gen *gen;
    struct sconn *prev, *next;
    uint64_t id;
    enum xe_s2s_kind kind;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    int handles;
    bool closed, closing, connected, tls_handshaking, paused, shutdown_sent;
    uv_shutdown_t sreq;
    struct xe_tls *tls;
    struct xe_s2s *core;
    char peer[128];
    char local[XE_S2S_MAX_DOMAIN_BUF], remote[XE_S2S_MAX_DOMAIN_BUF];
    size_t wq;          /* bytes handed to uv_write, not yet written */
    struct xe_buf held; /* BACKEND: its bytes waiting for the verdict;
                           LINK: stanzas waiting for the link to be up */
    bool ready;         /* OUT/LINK: authenticated; BACKEND: pumped */
    bool waiting;       /* BACKEND: waiting for its OUT */
    struct sconn *out;  /* BACKEND: the outbound stream it uses */
    uint64_t asker;     /* VERIFY: the id of the IN stream that asked */
    /* OUT/VERIFY without a static route: the resolver's answer */
    struct xe_resolve_req *rq;
    struct xe_target *targets;
    size_t n_targets, next_target;
    bool retrying;    /* the handle of a failed connect is closing */
    bool no_external; /* OUT: dialback only (the remote dropped EXTERNAL) */
    bool ext_retried; /* OUT: a stream without EXTERNAL took over */
    bool direct_tls;  /* the current target wants TLS at once (XEP-0368) */
    uint64_t bytes;
    int64_t since; /* unix time of its start */
    /* OUT/VERIFY: why it failed (the first reason) */
    char why[XE_S2S_MAX_LOG_TEXT + 128];
};

struct wreq {
    uv_write_t req;
    struct sconn *c;
    size_t len;
    char data[];
};

static void sconn_close(struct sconn *c);
static void finish_close(struct sconn *c);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void feed_plain(struct sconn *c, const char *data, size_t n);
static struct sconn *open_conn(struct xe_s2s_io *io, enum xe_s2s_kind kind,
                               const char *local, const char *remote, const char *key,
                               const char *stream_id);

static const char *const kind_names[] = {"in", "out", "verify", "backend", "link"};

/* OUT/VERIFY: why the stream failed, for the backend's bounces; the first
 * reason stays. */
static void __attribute__((format(printf, 2, 3)))
why_set(struct sconn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->why[0])
        return;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
}

/* ---- generations --------------------------------------------------------- */

static void
gen_unref(struct s2s_gen **gp)
{
    struct s2s_gen *g = *gp;

    *gp = NULL;
    if (g == NULL || --g->refs > 0)
        return;
    xe_tls_ctx_free(&g->tls);
    xe_tls_ctx_free(&g->tls_direct);
    for (size_t i = 0; g->client && g->conf && i <= g->conf->n_domains; i++)
        xe_tls_client_ctx_free(&g->client[i]);
    free(g->client);
    xe_conf_free(&g->conf);
    free(g);
}

static struct s2s_gen *
gen_new(const struct xe_conf *given, char **error_r)
{
    struct s2s_gen *g = xe_calloc(1, sizeof(*g));
    struct xe_tls_cert *certs = NULL;
    const struct xe_conf *conf;

    g->refs = 1;
    if (xe_conf_load(given->path, &g->conf, error_r) < 0)
        goto fail;
    conf = g->conf;
    certs = xe_calloc(conf->n_domains ? conf->n_domains : 1, sizeof(*certs));
    for (size_t i = 0; i < conf->n_domains; i++) {
        certs[i].domain = conf->domains[i].name;
        certs[i].certificate = conf->domains[i].certificate;
        certs[i].key = conf->domains[i].key;
        /* the peer's certificate is requested (optional) and verified */
        certs[i].client_ca = conf->s2s.trust_anchors;
        certs[i].settings = &conf->domains[i].tls;
    }
    if (xe_tls_ctx_new(certs, conf->n_domains, NULL, &g->tls, error_r) < 0 ||
        xe_tls_ctx_new(certs, conf->n_domains, "xmpp-server", &g->tls_direct, error_r) <
            0)
        goto fail;
    g->client = xe_calloc(conf->n_domains + 1, sizeof(*g->client));
    for (size_t i = 0; i <= conf->n_domains; i++) {
        const struct xe_domain_conf *d = i < conf->n_domains ? &conf->domains[i] : NULL;
        char *err = NULL;
        if (xe_tls_client_ctx_new(d ? d->certificate : NULL, d ? d->key : NULL,
                                  conf->s2s.trust_anchors, &g->client[i], &err) < 0) {
            *error_r = d ? xe_asprintf("domain %s: %s", d->name, err) : xe_strdup(err);
            free(err);
            goto fail;
        }
    }
    free(certs);
    return g;
fail:
    free(certs);
    gen_unref(&g);
    return NULL;
}

/* ---- lookups -------------------------------------------------------------- */

static bool
cb_is_local(void *ctx, const char *d)
{
    const struct s2s_gen *g = ctx;
    return xe_conf_domain(g->conf, d) != NULL;
}

static enum xe_s2s_policy
cb_policy(void *ctx, const char *d)
{
    const struct s2s_gen *g = ctx;
    const struct xe_s2s_peer_conf *p = xe_conf_s2s_peer(g->conf, d);
    int pol = p && p->policy >= 0 ? p->policy : g->conf->s2s.default_policy;

    if (xe_conf_domain(g->conf, d))
        return XE_S2S_POLICY_REFUSE; /* ourselves: never over s2s */
    return pol == XE_S2S_POL_EXTERNAL ? XE_S2S_POLICY_EXTERNAL
           : pol == XE_S2S_POL_REFUSE ? XE_S2S_POLICY_REFUSE
           : pol == XE_S2S_POL_SECRET ? XE_S2S_POLICY_SECRET
                                      : XE_S2S_POLICY_DIALBACK;
}

/* A listed peer's pre-shared secret (s2s.peers[].secret_file); the
 * generation's configuration holds it as long as the stream lives. */
static bool
cb_peer_secret(void *ctx, const char *d, struct xe_s2s_secret *out)
{
    const struct s2s_gen *g = ctx;
    const struct xe_s2s_peer_conf *p = xe_conf_s2s_peer(g->conf, d);

    if (p == NULL || p->secret == NULL || xe_conf_domain(g->conf, d))
        return false;
    out->secret = p->secret;
    out->len = p->secret_len;
    out->mechs = p->mechanisms;
    out->n_mechs = p->n_mechanisms;
    return true;
}

static struct sconn *
find(struct xe_s2s_io *io, enum xe_s2s_kind kind, const char *local, const char *remote)
{
    for (struct sconn *c = io->conns; c; c = c->next)
        if (c->kind == kind && !c->closing && strcmp(c->local, local) == 0 &&
            strcmp(c->remote, remote) == 0)
            return c;
    return NULL;
}

static struct sconn *
find_id(struct xe_s2s_io *io, uint64_t id)
{
    for (struct sconn *c = io->conns; c; c = c->next)
        if (c->id == id && !c->closing)
            return c;
    return NULL;
}

/* ---- writing ------------------------------------------------------------ */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xe_malloc(XE_READ_CHUNK);
    buf->len = XE_READ_CHUNK;
}

static void resume_feeders(struct sconn *c);

static void
on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct sconn *c = wr->c;

    c->wq -= wr->len;
    free(wr);
    if (c->closed)
        return;
    if (status < 0) {
        finish_close(c);
        return;
    }
    if (c->closing) {
        if (c->wq == 0 && !c->shutdown_sent)
            finish_close(c);
        return;
    }
    if (c->wq <= c->gen->conf->pump_low_water)
        resume_feeders(c);
}

static int
write_raw(struct sconn *c, const void *data, size_t len)
{
    struct wreq *wr;
    uv_buf_t b;

    if (len == 0 || c->closed || !c->connected)
        return 0;
    wr = xe_malloc(sizeof(*wr) + len);
    wr->c = c;
    wr->len = len;
    memcpy(wr->data, data, len);
    b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(wr);
        finish_close(c);
        return -1;
    }
    c->wq += len;
    if (c->wq > c->gen->conf->pump_hard_cap) {
        xe_warn("event=buffer-cap kind=s2s-%s peer=%s queued=%zu", kind_names[c->kind],
                c->peer, c->wq);
        finish_close(c);
        return -1;
    }
    return 0;
}

static int
flush_tls(struct sconn *c)
{
    char buf[16384];
    size_t n;

    while (c->tls && !c->closed && xe_tls_out_pending(c->tls) > 0) {
        n = xe_tls_out_take(c->tls, buf, sizeof(buf));
        if (n == 0)
            break;
        if (write_raw(c, buf, n) < 0)
            return -1;
    }
    return 0;
}

static int
send_bytes(struct sconn *c, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    if (c->tls == NULL)
        return write_raw(c, data, len);
    if (c->tls_handshaking)
        return 0; /* nothing of the stream can go out before TLS is up */
    if (xe_tls_write(c->tls, data, len) < 0) {
        xe_info("event=tls-error kind=s2s-%s peer=%s error=\"%s\"", kind_names[c->kind],
                c->peer, xe_tls_error(c->tls));
        finish_close(c);
        return -1;
    }
    return flush_tls(c);
}

static void
flush_core(struct sconn *c)
{
    struct xe_buf *out;

    if (c->core == NULL || c->closed)
        return;
    out = xe_s2s_output(c->core);
    if (out->len) {
        send_bytes(c, out->data, out->len);
        out->len = 0;
    }
}

/* Is C above its high water mark (its feeders should stop reading)? */
static bool
full(const struct sconn *c)
{
    return c->wq + c->held.len > c->gen->conf->pump_high_water;
}

static void
pause_reading(struct sconn *c)
{
    if (!c->paused && !c->closed) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->paused = true;
    }
}

static void
resume_reading(struct sconn *c)
{
    if (c->paused && !c->closed && !c->closing) {
        c->paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* C drained: the streams that fill it may read again. */
static void
resume_feeders(struct sconn *c)
{
    for (struct sconn *f = c->io->conns; f; f = f->next) {
        if (!f->paused)
            continue;
        if ((c->kind == XE_S2S_OUT && f->kind == XE_S2S_BACKEND && f->out == c) ||
            (c->kind == XE_S2S_LINK && f->kind == XE_S2S_IN))
            resume_reading(f);
    }
}

/* ---- closing ------------------------------------------------------------- */

static void
on_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;

    if (--c->handles > 0)
        return;
    xe_tls_free(&c->tls);
    xe_s2s_free(&c->core);
    xe_buf_free(&c->held);
    free(c->targets);
    gen_unref(&c->gen);
    free(c);
}

static void notify_out_verdict(struct sconn *out, enum xe_s2s_result r, const char *cond);
static void backend_go_on(struct sconn *b);
static void notify_verify(struct sconn *v, enum xe_s2s_result r, const char *cond);

static void
finish_close(struct sconn *c)
{
    struct xe_s2s_io *io = c->io;

    if (c->closed)
        return;
    c->closed = c->closing = true;
    if (c->core && xe_s2s_failure(c->core))
        why_set(c, "%s", xe_s2s_failure(c->core));
    if (c->kind == XE_S2S_OUT && !c->ready)
        notify_out_verdict(c, XE_S2S_ERROR,
                           c->connected ? "remote-server-not-found"
                                        : "remote-server-not-found");
    if (c->kind == XE_S2S_VERIFY && c->asker)
        notify_verify(c, XE_S2S_ERROR, "remote-server-not-found");
    for (struct sconn *o = io->conns; o; o = o->next) {
        if (o->kind == XE_S2S_BACKEND && o->out == c) {
            o->out = NULL;
            if (o->ready) /* its pump has no outlet any more */
                sconn_close(o);
        }
    }
    if (c->kind == XE_S2S_BACKEND && c->out) {
        struct sconn *out = c->out;
        bool used = false;
        c->out = NULL;
        for (struct sconn *o = io->conns; o; o = o->next)
            used = used || (o != c && o->kind == XE_S2S_BACKEND && o->out == out);
        if (!used)
            sconn_close(out);
    }
    if (c->kind == XE_S2S_LINK) /* the inbound streams it held back */
        resume_feeders(c);
    if (c->core && !c->local[0] && xe_s2s_local(c->core))
        snprintf(c->local, sizeof(c->local), "%s", xe_s2s_local(c->core));
    if (c->core && !c->remote[0] && xe_s2s_remote(c->core))
        snprintf(c->remote, sizeof(c->remote), "%s", xe_s2s_remote(c->core));
    if (c->bytes || c->ready)
        xe_info("event=s2s-close kind=s2s-%s peer=%s local=%s remote=%s bytes=%llu",
                kind_names[c->kind], c->peer, c->local[0] ? c->local : "-",
                c->remote[0] ? c->remote : "-", (unsigned long long)c->bytes);
    if (c->prev)
        c->prev->next = c->next;
    else
        io->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->rq) {
        xe_resolve_cancel(c->rq);
        c->rq = NULL;
    }
    if (!c->retrying) /* (else it is closing already) */
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_timer(uv_timer_t *t);

/* Close after what is queued has been written (at most CLOSE_GRACE_MS). */
static void
sconn_close(struct sconn *c)
{
    if (c->closed || c->closing)
        return;
    flush_core(c);
    if (c->core && !xe_s2s_closed(c->core)) {
        xe_s2s_end(c->core);
        flush_core(c);
    }
    if (c->tls && !c->tls_handshaking) {
        xe_tls_shutdown(c->tls);
        flush_tls(c);
    }
    if (c->closed)
        return;
    c->closing = true;
    if (c->core && xe_s2s_failure(c->core))
        why_set(c, "%s", xe_s2s_failure(c->core));
    if (c->kind == XE_S2S_OUT && !c->ready)
        notify_out_verdict(c, XE_S2S_ERROR, "remote-server-not-found");
    if (c->kind == XE_S2S_VERIFY && c->asker)
        notify_verify(c, XE_S2S_ERROR, "remote-server-not-found");
    if (c->wq == 0 || !c->connected) {
        finish_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, on_timer, CLOSE_GRACE_MS, 0);
}

/* ---- timers -------------------------------------------------------------- */

static void
arm(struct sconn *c, unsigned ms)
{
    if (!c->closed)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void
on_timer(uv_timer_t *t)
{
    struct sconn *c = t->data;

    if (c->closing) {
        finish_close(c);
        return;
    }
    xe_info("event=s2s-timeout kind=s2s-%s peer=%s local=%s remote=%s stage=%s",
            kind_names[c->kind], c->peer, c->local[0] ? c->local : "-",
            c->remote[0] ? c->remote : "-",
            !c->connected ? "connect"
            : c->ready    ? "idle"
                          : "handshake");
    why_set(c, "timeout: no answer from %s within the %s time", c->peer,
            !c->connected ? "connect"
            : c->ready    ? "idle"
                          : "handshake");
    if (c->kind == XE_S2S_OUT && !c->ready)
        notify_out_verdict(c, XE_S2S_ERROR, "remote-server-timeout");
    if (c->kind == XE_S2S_VERIFY && c->asker)
        notify_verify(c, XE_S2S_ERROR, "remote-server-timeout");
    if (c->core && c->connected && !xe_s2s_closed(c->core))
        xe_s2s_stream_error(c->core, "connection-timeout", NULL);
    sconn_close(c);
}

/* ---- the links to the backends ------------------------------------------ */

static const struct xe_server_conf *
backend_server(const struct xe_conf *conf, const char *local)
{
    const struct xe_domain_conf *d = xe_conf_domain(conf, local);

    for (size_t i = 0; d && d->pool && i < d->pool->n_servers; i++)
        if (d->pool->servers[i].s2s_port > 0)
            return &d->pool->servers[i];
    return NULL;
}

/* The link for (peer, local), opened when needed. */
static struct sconn *
link_for(struct xe_s2s_io *io, const char *peer, const char *local)
{
    struct sconn *l = find(io, XE_S2S_LINK, local, peer);

    return l ? l : open_conn(io, XE_S2S_LINK, local, peer, NULL, NULL);
}

static void
link_send(struct sconn *l, const unsigned char *data, size_t len)
{
    if (!l->ready) {
        if (xe_buf_append(&l->held, data, len) < 0) {
            xe_warn("event=buffer-cap kind=s2s-link local=%s remote=%s", l->local,
                    l->remote);
            sconn_close(l);
        }
        return;
    }
    l->bytes += len;
    arm(l, l->gen->conf->s2s_idle_ms);
    send_bytes(l, data, len);
}

/* ---- IN: events of a remote server's stream ----------------------------- */

static void
start_verify(struct sconn *in, const struct xe_s2s_event *ev)
{
    struct sconn *v =
        open_conn(in->io, XE_S2S_VERIFY, ev->to, ev->from, ev->key, ev->stream_id);

    if (v == NULL) {
        xe_s2s_dialback_verdict(in->core, ev->from, ev->to, XE_S2S_ERROR,
                                "remote-server-not-found");
        return;
    }
    v->asker = in->id;
}

/* The verification stream V has its answer: tell the IN stream that asked. */
static void
notify_verify(struct sconn *v, enum xe_s2s_result r, const char *cond)
{
    struct sconn *in = find_id(v->io, v->asker);

    v->asker = 0;
    if (in == NULL || in->core == NULL)
        return;
    /* v: local = the receiving domain (ours), remote = the originating one */
    xe_s2s_dialback_verdict(in->core, v->remote, v->local, r, cond);
    flush_core(in);
    if (r == XE_S2S_VALID) {
        if (!in->ready) /* from now on the idle timeout applies */
            arm(in, in->gen->conf->s2s_idle_ms);
        in->ready = true;
        link_for(in->io, v->remote, v->local);
    } else if (xe_s2s_closed(in->core))
        sconn_close(in);
}

static void
in_events(struct sconn *c)
{
    struct xe_s2s_event ev;

    while (!c->closed && xe_s2s_next_event(c->core, &ev)) {
        if (ev.type == XE_S2S_EV_DIALBACK) {
            start_verify(c, &ev);
            continue;
        }
        /* a stanza of an authenticated pair: to its backend link */
        {
            struct sconn *l = link_for(c->io, ev.from, ev.to);
            if (l == NULL) {
                xe_s2s_stream_error(c->core, "remote-connection-failed",
                                    "the domain's server is unavailable");
                flush_core(c);
                sconn_close(c);
                return;
            }
            c->bytes += ev.len;
            link_send(l, ev.raw, ev.len);
            if (full(l))
                pause_reading(c);
        }
    }
}

/* ---- BACKEND and OUT ------------------------------------------------------ */

/* Is REMOTE remembered as dropping streams during EXTERNAL? */
static bool
external_dropped(struct xe_s2s_io *io, const char *remote)
{
    int64_t now = (int64_t)uv_now(io->loop);

    for (size_t i = 0; i < XE_S2S_MAX_EXTERNAL_DROPS; i++)
        if (io->no_ext[i].until > now && strcmp(io->no_ext[i].domain, remote) == 0)
            return true;
    return false;
}

/* Remember REMOTE for XE_S2S_EXTERNAL_DROP_MS (an expired entry, else the
 * one that expires first, makes room). */
static void
remember_external_drop(struct xe_s2s_io *io, const char *remote)
{
    size_t k = 0;

    for (size_t i = 1; i < XE_S2S_MAX_EXTERNAL_DROPS; i++)
        if (io->no_ext[i].until < io->no_ext[k].until)
            k = i;
    snprintf(io->no_ext[k].domain, sizeof(io->no_ext[k].domain), "%s", remote);
    io->no_ext[k].until = (int64_t)uv_now(io->loop) + XE_S2S_EXTERNAL_DROP_MS;
}

/* OUT failed because the remote dropped the stream during our SASL
 * EXTERNAL (not a <failure/>: it could not take it, e.g. ejabberd 23.01
 * with a certificate that has an xmppAddr). Where its policy allows
 * dialback, once: a new stream with dialback only takes over the waiting
 * backends, and the remote is remembered. True when it did. */
static bool
retry_without_external(struct sconn *out)
{
    struct sconn *n;

    if (out->kind != XE_S2S_OUT || out->no_external || out->ext_retried ||
        out->core == NULL || !xe_s2s_external_dropped(out->core) || out->io->stopping ||
        cb_policy(out->gen, out->remote) != XE_S2S_POLICY_DIALBACK)
        return false;
    out->ext_retried = true;
    remember_external_drop(out->io, out->remote);
    xe_info("event=s2s-external-dropped peer=%s local=%s remote=%s action=retry-dialback "
            "remember_s=%d",
            out->peer, out->local, out->remote, XE_S2S_EXTERNAL_DROP_MS / 1000);
    /* (the caller closes OUT right after) */
    n = open_conn(out->io, XE_S2S_OUT, out->local, out->remote, NULL, NULL);
    if (n == NULL)
        return false;
    for (struct sconn *b = out->io->conns; b; b = b->next)
        if (b->kind == XE_S2S_BACKEND && b->out == out)
            b->out = n;
    return true;
}

static void
notify_out_verdict(struct sconn *out, enum xe_s2s_result r, const char *cond)
{
    struct sconn *b;

    if (r != XE_S2S_VALID && retry_without_external(out))
        return;
    /* one at a time from the start: feeding a backend may close it */
    for (;;) {
        for (b = out->io->conns; b; b = b->next)
            if (b->kind == XE_S2S_BACKEND && b->out == out && b->waiting)
                break;
        if (b == NULL)
            return;
        b->waiting = false;
        if (r != XE_S2S_VALID) {
            /* the bounces say what happened: a timeout (wait), a policy,
             * else the remote server could not be reached or refused us */
            bool timeout = cond && strcmp(cond, "remote-server-timeout") == 0;
            bool policy = cond && strcmp(cond, "policy-violation") == 0;
            xe_s2s_backend_failure(b->core,
                                   timeout  ? "remote-server-timeout"
                                   : policy ? "policy-violation"
                                            : "remote-server-not-found",
                                   timeout ? "wait" : "cancel",
                                   out->why[0] ? out->why : "the connection failed");
            flush_core(b);
            b->out = NULL;
            arm(b, b->gen->conf->s2s_handshake_ms); /* its next request, or its end */
            backend_go_on(b);
            continue;
        }
        xe_s2s_backend_verdict(b->core, r, cond);
        flush_core(b);
        b->ready = true;
        arm(b, b->gen->conf->s2s_idle_ms);
        if (b->held.len) { /* what came after its db:result */
            out->bytes += b->held.len;
            send_bytes(out, b->held.data, b->held.len);
            xe_buf_consume(&b->held, b->held.len);
        }
        resume_reading(b);
    }
}

/* BACKEND B's request failed: what came after its db:result is read (its
 * end of the stream, or another request), then the rest. */
static void
backend_go_on(struct sconn *b)
{
    struct xe_buf rest;

    xe_buf_init(&rest, 0);
    if (b->held.len) {
        xe_buf_append(&rest, b->held.data, b->held.len);
        xe_buf_consume(&b->held, b->held.len);
        feed_plain(b, (const char *)rest.data, rest.len);
    }
    xe_buf_free(&rest);
    if (!b->waiting)
        resume_reading(b);
}

static void
backend_open(struct sconn *b)
{
    const struct xe_s2s_request *req = xe_s2s_request(b->core);
    struct sconn *out;

    snprintf(b->local, sizeof(b->local), "%s", req->from);
    snprintf(b->remote, sizeof(b->remote), "%s", req->to);
    b->waiting = true;
    pause_reading(b); /* its stanzas wait until the verdict */
    /* which the outbound stream's own timeouts bound (DNS, connect,
     * handshake): the backend's must not end it first */
    uv_timer_stop(&b->timer);
    {
        /* The key must be an assertion (purpose "s2s-out", identity "LOCAL
         * REMOTE") signed with the pool secret of the local domain, as
         * mod_xedge_s2s writes it: a source address on loopback proves
         * nothing, any local process could claim to be the backend. */
        const struct xe_domain_conf *d = xe_conf_domain(b->gen->conf, b->local);
        char *identity = xe_asprintf("%s %s", b->local, b->remote);
        int r = d && d->pool
                    ? xe_assertion_verify(d->pool->secret, d->pool->secret_len, "s2s-out",
                                          identity, req->key, xe_now_seconds(),
                                          b->gen->conf->assertion_lifetime_s)
                    : XE_ASSERT_MALFORMED;

        free(identity);
        if (r != XE_ASSERT_OK) {
            xe_info("event=s2s-refused kind=s2s-backend peer=%s local=%s remote=%s "
                    "reason=assertion detail=%s",
                    b->peer, b->local, b->remote,
                    d && d->pool ? xe_assertion_result_name(r) : "no-pool");
            b->waiting = false;
            xe_s2s_backend_verdict(b->core, XE_S2S_INVALID, NULL);
            flush_core(b);
            sconn_close(b);
            return;
        }
    }
    if (cb_policy(b->gen, b->remote) == XE_S2S_POLICY_REFUSE) {
        xe_info("event=s2s-refused kind=s2s-out local=%s remote=%s reason=policy",
                b->local, b->remote);
        arm(b, b->gen->conf->s2s_handshake_ms);
        b->waiting = false;
        xe_s2s_backend_failure(b->core, "policy-violation", "cancel",
                               "federation with this domain is refused by policy");
        flush_core(b);
        resume_reading(b);
        return;
    }
    out = find(b->io, XE_S2S_OUT, b->local, b->remote);
    if (out == NULL)
        out = open_conn(b->io, XE_S2S_OUT, b->local, b->remote, NULL, NULL);
    if (out == NULL) {
        arm(b, b->gen->conf->s2s_handshake_ms);
        b->waiting = false;
        xe_s2s_backend_failure(b->core, "remote-server-not-found", "cancel",
                               "no route to the domain's server");
        flush_core(b);
        resume_reading(b);
        return;
    }
    b->out = out;
    if (out->ready)
        notify_out_verdict(out, XE_S2S_VALID, NULL);
}

/* ---- reading -------------------------------------------------------------- */

static void
on_verdict(struct sconn *c)
{
    const char *cond = NULL;
    enum xe_s2s_result r = xe_s2s_verdict(c->core, &cond);

    switch (c->kind) {
    case XE_S2S_OUT:
        if (r == XE_S2S_VALID) {
            c->ready = true;
            arm(c, c->gen->conf->s2s_idle_ms);
            xe_info("event=s2s-out peer=%s local=%s remote=%s mech=%s tls=%s", c->peer,
                    c->local, c->remote, xe_s2s_mech(c->core),
                    c->direct_tls ? "direct"
                    : c->tls      ? "starttls"
                                  : "none");
        } else {
            if (xe_s2s_failure(c->core))
                why_set(c, "%s", xe_s2s_failure(c->core));
            xe_info("event=s2s-auth-failed kind=s2s-out peer=%s local=%s remote=%s "
                    "result=%s condition=%s why=\"%s\"",
                    c->peer, c->local, c->remote,
                    r == XE_S2S_INVALID ? "invalid" : "error", cond ? cond : "-",
                    c->why[0] ? c->why : "-");
        }
        notify_out_verdict(c, r, cond);
        if (r != XE_S2S_VALID)
            sconn_close(c);
        break;
    case XE_S2S_VERIFY:
        notify_verify(c, r, cond);
        sconn_close(c);
        break;
    case XE_S2S_LINK:
        if (r != XE_S2S_VALID) {
            xe_warn("event=s2s-link-failed peer=%s local=%s remote=%s result=%s", c->peer,
                    c->local, c->remote, r == XE_S2S_INVALID ? "invalid" : "error");
            sconn_close(c);
            break;
        }
        c->ready = true;
        arm(c, c->gen->conf->s2s_idle_ms);
        if (c->held.len) {
            c->bytes += c->held.len;
            send_bytes(c, c->held.data, c->held.len);
            xe_buf_consume(&c->held, c->held.len);
        }
        break;
    default:
        break;
    }
}

static void
start_tls(struct sconn *c)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_domain_conf *d = xe_conf_domain(conf, c->local);

    if (c->kind == XE_S2S_IN)
        c->tls = xe_tls_new(c->gen->tls, xe_s2s_local(c->core));
    else
        c->tls = xe_tls_new_s2s_client(
            c->gen->client[d ? (size_t)(d - conf->domains) : conf->n_domains], c->remote,
            c->direct_tls ? "xmpp-server" : NULL);
    if (c->tls == NULL) {
        finish_close(c);
        return;
    }
    c->tls_handshaking = true;
    arm(c, conf->tls_timeout_ms);
    if (c->kind != XE_S2S_IN && xe_tls_handshake(c->tls) == XE_TLS_ERROR) {
        finish_close(c);
        return;
    }
    flush_tls(c);
}

static void
tls_up(struct sconn *c)
{
    char ids[MAX_NAMES][3072];
    const char *names[MAX_NAMES];
    size_t n = xe_tls_peer_identities(c->tls, XE_ID_DNS | XE_ID_XMPPADDR, ids, MAX_NAMES);
    char alpn[32];

    for (size_t i = 0; i < n; i++)
        names[i] = ids[i];
    xe_debug("event=tls kind=s2s-%s peer=%s version=%s cipher=%s alpn=%s",
             kind_names[c->kind], c->peer, xe_tls_version(c->tls), xe_tls_cipher(c->tls),
             xe_tls_alpn(c->tls, alpn, sizeof(alpn)) ? alpn : "-");
    c->tls_handshaking = false;
    arm(c, c->gen->conf->s2s_handshake_ms);
    {
        struct xe_cbind cb[XE_CB_MAX];
        size_t ncb = xe_tls_channel_bindings(c->tls, false, cb, XE_CB_MAX);
        xe_s2s_set_channel_bindings(c->core, cb, ncb);
        OPENSSL_cleanse(cb, sizeof(cb));
    }
    xe_s2s_tls_up(c->core, names, n);
    flush_core(c);
}

static void
feed_plain(struct sconn *c, const char *data, size_t n)
{
    while (n > 0 && !c->closed && !c->closing) {
        enum xe_s2s_action a;
        size_t used = 0;

        if (c->kind == XE_S2S_BACKEND && c->ready) {
            if (c->out == NULL) {
                sconn_close(c);
                return;
            }
            c->out->bytes += n;
            arm(c->out, c->gen->conf->s2s_idle_ms); /* traffic on the outbound stream */
            send_bytes(c->out, data, n);
            if (!c->out->closed && full(c->out))
                pause_reading(c);
            return;
        }
        if (c->kind == XE_S2S_BACKEND && c->waiting) {
            if (xe_buf_append(&c->held, data, n) < 0)
                sconn_close(c);
            return;
        }
        a = xe_s2s_feed(c->core, data, n, &used);
        data += used;
        n -= used;
        if (c->kind == XE_S2S_IN)
            in_events(c);
        flush_core(c);
        if (c->closed)
            return;
        switch (a) {
        case XE_S2S_CONTINUE:
            break;
        case XE_S2S_STARTTLS:
            start_tls(c);
            return; /* the rest (there should be none) is dropped */
        case XE_S2S_PAIR_UP:
            c->ready = true;
            arm(c, c->gen->conf->s2s_idle_ms);
            link_for(c->io, xe_s2s_request(c->core)->from, xe_s2s_request(c->core)->to);
            break;
        case XE_S2S_OPEN:
            backend_open(c);
            break;
        case XE_S2S_VERDICT:
            on_verdict(c);
            break;
        case XE_S2S_CLOSE:
            /* (a stream that was up has had its verdict) */
            if ((c->kind == XE_S2S_OUT && !c->ready) || c->kind == XE_S2S_VERIFY)
                on_verdict(c);
            sconn_close(c);
            return;
        }
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *c = s->data;
    char plain[16384];

    if (nread <= 0 || c->closed) {
        free(buf->base);
        if (nread < 0 && !c->closed) {
            why_set(c, "%s closed the connection%s", c->peer,
                    c->tls_handshaking ? " during the TLS handshake" : "");
            if (c->kind == XE_S2S_OUT && !c->ready)
                notify_out_verdict(c, XE_S2S_ERROR, "remote-server-not-found");
            finish_close(c);
        }
        return;
    }
    if (c->ready)
        arm(c, c->gen->conf->s2s_idle_ms);
    if (c->tls == NULL) {
        feed_plain(c, buf->base, (size_t)nread);
        free(buf->base);
        return;
    }
    if (xe_tls_feed(c->tls, buf->base, (size_t)nread) < 0) {
        free(buf->base);
        finish_close(c);
        return;
    }
    free(buf->base);
    if (c->tls_handshaking) {
        int r = xe_tls_handshake(c->tls);
        flush_tls(c);
        if (r == XE_TLS_ERROR) {
            xe_info("event=tls-failed kind=s2s-%s peer=%s error=\"%s\"",
                    kind_names[c->kind], c->peer, xe_tls_error(c->tls));
            why_set(c, "TLS with %s failed: %s", c->peer, xe_tls_error(c->tls));
            finish_close(c);
            return;
        }
        if (r != XE_TLS_DONE)
            return;
        tls_up(c);
    }
    for (;;) {
        int r;
        if (c->closed || c->tls == NULL)
            return;
        r = xe_tls_read(c->tls, plain, sizeof(plain));
        if (r > 0) {
            feed_plain(c, plain, (size_t)r);
            continue;
        }
        if (r == XE_TLS_CLOSED || r == XE_TLS_ERROR)
            sconn_close(c);
        flush_tls(c);
        return;
    }
}

/* ---- connections --------------------------------------------------------- */

static struct sconn *
sconn_new(struct xe_s2s_io *io, enum xe_s2s_kind kind)
{
    struct sconn *c = xe_calloc(1, sizeof(*c));

    c->io = io;
    c->gen = io->gen;
    io->gen->refs++;
    c->kind = kind;
    c->id = ++io->next_id;
    c->since = (int64_t)time(NULL);
    xe_metrics_inc(XE_M_S2S_STREAMS, kind_names[kind], NULL);
    uv_tcp_init(io->loop, &c->tcp);
    uv_timer_init(io->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    xe_buf_init(&c->held, io->gen->conf->pump_hard_cap);
    c->next = io->conns;
    if (io->conns)
        io->conns->prev = c;
    io->conns = c;
    return c;
}

static void
core_params(struct sconn *c, struct xe_s2s_params *p)
{
    const struct xe_conf *conf = c->gen->conf;

    memset(p, 0, sizeof(*p));
    p->kind = c->kind;
    p->peer = c->peer;
    p->require_tls = conf->s2s.require_encryption;
    p->tls_possible = true;
    p->is_local = cb_is_local;
    p->policy = cb_policy;
    p->peer_secret = cb_peer_secret;
    p->max_auth_attempts = conf->max_auth_attempts;
    p->ctx = c->gen;
    p->secret = conf->s2s.dialback_secret;
    p->secret_len = conf->s2s.dialback_secret_len;
    p->max_stanza_preauth = conf->max_stanza_preauth;
    p->max_stanza = conf->s2s.max_stanza;
    p->max_depth_preauth = conf->max_xml_depth;
    p->max_attrs_preauth = conf->max_attrs;
}

static void on_retry_closed(uv_handle_t *h);
static void start_tls(struct sconn *c);

static void
on_connect(uv_connect_t *req, int status)
{
    struct sconn *c = req->data;

    if (c->closed)
        return;
    if (status < 0) {
        xe_info("event=s2s-connect-failed kind=s2s-%s peer=%s local=%s remote=%s "
                "error=\"%s\"",
                kind_names[c->kind], c->peer, c->local, c->remote, uv_strerror(status));
        if (c->next_target < c->n_targets) { /* the resolver gave another one */
            c->retrying = true;
            uv_close((uv_handle_t *)&c->tcp, on_retry_closed);
            return;
        }
        why_set(c, "cannot connect to %s: %s", c->peer, uv_strerror(status));
        finish_close(c);
        return;
    }
    c->connected = true;
    arm(c, c->gen->conf->s2s_handshake_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->direct_tls) {
        xe_buf_consume(xe_s2s_output(c->core), xe_s2s_output(c->core)->len);
        start_tls(c); /* the header goes out once TLS is up */
        return;
    }
    flush_core(c);
}

/* Connect to the resolver's next target. */
static void
connect_next(struct sconn *c)
{
    const struct xe_target *t = &c->targets[c->next_target++];
    char ip[64] = "?";
    int port = 0;

    if (t->addr.ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)&t->addr, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in *)&t->addr)->sin_port);
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    } else {
        uv_ip6_name((const struct sockaddr_in6 *)&t->addr, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in6 *)&t->addr)->sin6_port);
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
    }
    c->direct_tls = t->direct_tls != 0;
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->addr, on_connect) <
        0)
        finish_close(c);
    else
        arm(c, c->gen->conf->s2s_connect_ms);
}

static void
on_retry_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;

    c->retrying = false;
    if (c->closed) {
        on_closed(h);
        return;
    }
    uv_tcp_init(c->io->loop, &c->tcp);
    c->tcp.data = c;
    connect_next(c);
}

static void
on_resolved(void *arg, int status, const struct xe_target *targets, size_t n)
{
    struct sconn *c = arg;

    c->rq = NULL;
    if (c->closed)
        return;
    if (status < 0 || n == 0) {
        xe_info("event=s2s-dns-failed kind=s2s-%s local=%s remote=%s status=%s",
                kind_names[c->kind], c->local, c->remote, xe_resolve_strstatus(status));
        why_set(c, "DNS: %s %s",
                status == XE_RESOLVE_TIMEOUT ? "no answer in time for"
                : status == XE_RESOLVE_FAIL  ? "the DNS servers failed for"
                                             : "no server found for",
                c->remote);
        if (c->kind == XE_S2S_OUT)
            notify_out_verdict(c, XE_S2S_ERROR,
                               status == XE_RESOLVE_TIMEOUT ? "remote-server-timeout"
                                                            : "remote-server-not-found");
        if (c->kind == XE_S2S_VERIFY && c->asker)
            notify_verify(c, XE_S2S_ERROR,
                          status == XE_RESOLVE_TIMEOUT ? "remote-server-timeout"
                                                       : "remote-server-not-found");
        finish_close(c);
        return;
    }
    c->targets = xe_calloc(n, sizeof(*c->targets));
    memcpy(c->targets, targets, n * sizeof(*targets));
    c->n_targets = n;
    connect_next(c);
}

/* The address to connect to for KIND: the backend's s2s port for a link,
 * else the remote domain's static route. */
static int
route(struct sconn *c, struct sockaddr_storage *ss)
{
    const struct xe_conf *conf = c->gen->conf;
    const char *host = NULL;
    int port = 0;

    if (c->kind == XE_S2S_LINK) {
        const struct xe_server_conf *sv = backend_server(conf, c->local);
        if (sv) {
            host = sv->host;
            port = sv->s2s_port;
        }
    } else {
        const struct xe_s2s_peer_conf *p = xe_conf_s2s_peer(conf, c->remote);
        if (p && p->address) {
            host = p->address;
            port = p->port;
        }
    }
    if (host == NULL)
        return c->kind == XE_S2S_LINK || c->io->resolver == NULL ? -1 : 1;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) != 0)
        return -1;
    return 0;
}

static struct sconn *
open_conn(struct xe_s2s_io *io, enum xe_s2s_kind kind, const char *local,
          const char *remote, const char *key, const char *stream_id)
{
    struct sconn *c;
    struct xe_s2s_params p;
    struct sockaddr_storage ss;
    char token[XE_ASSERTION_MAX];
    char *identity = NULL;
    int how;

    if (io->stopping)
        return NULL;
    c = sconn_new(io, kind);
    snprintf(c->local, sizeof(c->local), "%s", local);
    snprintf(c->remote, sizeof(c->remote), "%s", remote);
    if ((how = route(c, &ss)) < 0) {
        xe_info("event=s2s-no-route kind=s2s-%s local=%s remote=%s", kind_names[kind],
                local, remote);
        finish_close(c);
        return NULL;
    }
    if (how == 1) /* (named before the core copies it) */
        snprintf(c->peer, sizeof(c->peer), "dns:%s", remote);
    core_params(c, &p);
    if (kind == XE_S2S_LINK) {
        const struct xe_domain_conf *d = xe_conf_domain(c->gen->conf, local);
        identity = xe_asprintf("%s %s", remote, local);
        if (d == NULL || d->pool == NULL ||
            xe_assertion_make(d->pool->secret, d->pool->secret_len, "s2s", identity,
                              xe_now_seconds() + c->gen->conf->assertion_lifetime_s, NULL,
                              token, sizeof(token)) < 0) {
            free(identity);
            finish_close(c);
            return NULL;
        }
        free(identity);
        p.from = remote; /* the link's stream is from the peer to us */
        p.to = local;
        p.assertion = token;
        p.tls_possible = false; /* plaintext on loopback */
        p.require_tls = false;
    } else {
        p.from = local;
        p.to = remote;
        p.require_tls = kind == XE_S2S_OUT && c->gen->conf->s2s.require_encryption;
        if (kind == XE_S2S_OUT && external_dropped(io, remote)) {
            c->no_external = p.no_external = true;
            xe_info("event=s2s-external-skipped local=%s remote=%s reason=dropped-before",
                    local, remote);
        }
    }
    p.key = key;
    p.stream_id = stream_id;
    c->core = xe_s2s_new(&p);
    OPENSSL_cleanse(token, sizeof(token));
    if (c->core == NULL) {
        finish_close(c);
        return NULL;
    }
    if (how == 1) { /* no static route: DNS (SRV, then A/AAAA) */
        snprintf(c->peer, sizeof(c->peer), "dns:%s", remote);
        c->rq = xe_resolve_xmpp_server(io->resolver, remote, 5269, on_resolved, c);
        if (c->rq == NULL) {
            finish_close(c);
            return NULL;
        }
        arm(c, c->gen->conf->dns_ms + c->gen->conf->s2s_connect_ms);
        return c;
    }
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect) < 0) {
        finish_close(c);
        return NULL;
    }
    arm(c, c->gen->conf->s2s_connect_ms);
    return c;
}

static bool
loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}

static void
on_connection(uv_stream_t *ls, int status)
{
    struct s2s_listener *l = ls->data;
    struct xe_s2s_io *io = l->io;
    struct xe_s2s_params p;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char ip[64] = "?";
    struct sconn *c;

    if (status < 0 || io->stopping)
        return;
    c = sconn_new(io, l->kind == XE_LISTEN_S2S_BACKEND ? XE_S2S_BACKEND : XE_S2S_IN);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        finish_close(c);
        return;
    }
    c->connected = true;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
    }
    snprintf(c->peer, sizeof(c->peer), "%s", ip);
    if (c->kind == XE_S2S_BACKEND) {
        /* only the pools' servers may send us their outgoing streams */
        bool known = false;
        const struct xe_conf *conf = c->gen->conf;
        for (size_t i = 0; i < conf->n_pools && !known; i++)
            for (size_t j = 0; j < conf->pools[i].n_servers && !known; j++) {
                const char *h = conf->pools[i].servers[j].host;
                /* a backend on loopback connects from whatever loopback
                 * address the kernel picks (127.0.0.1 for 127.0.0.11) */
                known = strcmp(h, ip) == 0 || (loopback(h) && loopback(ip));
            }
        if (!known) {
            xe_info("event=s2s-refused kind=s2s-backend peer=%s reason=not-a-backend",
                    ip);
            finish_close(c);
            return;
        }
    }
    core_params(c, &p);
    p.tls = l->kind == XE_LISTEN_S2S_DIRECT_TLS;
    c->core = xe_s2s_new(&p);
    if (c->core == NULL) {
        finish_close(c);
        return;
    }
    if (l->kind == XE_LISTEN_S2S_DIRECT_TLS) {
        c->tls = xe_tls_new(c->gen->tls_direct, NULL);
        c->tls_handshaking = true;
        if (c->tls == NULL) {
            finish_close(c);
            return;
        }
    }
    arm(c, c->tls ? c->gen->conf->tls_timeout_ms : c->gen->conf->s2s_handshake_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- the API -------------------------------------------------------------- */

int
xe_s2s_io_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_s2s_io **io_r,
              char **error_r)
{
    struct xe_s2s_io *io;
    bool wants = false;

    *io_r = NULL;
    for (size_t i = 0; i < conf->n_listeners; i++)
        wants = wants || XE_LISTEN_IS_S2S(conf->listeners[i].kind);
    if (!wants)
        return 0;
    io = xe_calloc(1, sizeof(*io));
    io->loop = loop;
    if ((io->gen = gen_new(conf, error_r)) == NULL) {
        free(io);
        return -1;
    }
    {
        char err[256] = "";
        io->resolver =
            xe_resolver_new(loop, conf->s2s.dns_servers, conf->dns_ms, err, sizeof(err));
        if (io->resolver == NULL) {
            *error_r = xe_asprintf("s2s.dns_servers: %s", err);
            gen_unref(&io->gen);
            free(io);
            return -1;
        }
    }
    uv_timer_init(loop, &io->sweep);
    io->sweep.data = io;
    *io_r = io;
    return 0;
}

int
xe_s2s_io_listen(struct xe_s2s_io *io, char **error_r)
{
    const struct xe_conf *conf = io->gen->conf;

    io->ls = xe_calloc(conf->n_listeners, sizeof(*io->ls));
    for (size_t i = 0; i < conf->n_listeners; i++) {
        const struct xe_listener_conf *lc = &conf->listeners[i];
        struct s2s_listener *l = &io->ls[io->n_ls];
        int r;

        if (!XE_LISTEN_IS_S2S(lc->kind))
            continue;
        io->n_ls++;
        l->io = io;
        l->kind = lc->kind;
        uv_tcp_init(io->loop, &l->tcp);
        l->tcp.data = l;
        l->open = true;
        r = xe_tcp_listen(&l->tcp, lc->address, lc->port, false, on_connection);
        if (r < 0) {
            *error_r = xe_asprintf("cannot listen on %s port %d: %s", lc->address,
                                   lc->port, uv_strerror(r));
            return -1;
        }
        xe_info("event=listen address=%s port=%d kind=%s", lc->address, lc->port,
                lc->kind == XE_LISTEN_S2S              ? "s2s"
                : lc->kind == XE_LISTEN_S2S_DIRECT_TLS ? "s2s_direct_tls"
                                                       : "s2s_backend");
    }
    return 0;
}

/* Free the retired resolvers that have no request left. */
static void
on_sweep(uv_timer_t *t)
{
    struct xe_s2s_io *io = t->data;
    size_t j = 0;

    for (size_t i = 0; i < io->n_retired; i++) {
        if (xe_resolver_pending(io->retired[i]) == 0) {
            xe_resolver_free(io->retired[i]);
            xe_debug("event=s2s-resolver-retired");
        } else
            io->retired[j++] = io->retired[i];
    }
    io->n_retired = j;
    if (j == 0)
        uv_timer_stop(&io->sweep);
}

int
xe_s2s_io_reload(struct xe_s2s_io *io, const struct xe_conf *conf, char **error_r)
{
    const struct xe_conf *old;
    struct s2s_gen *g;
    struct xe_resolver *r = NULL;
    bool dns;

    if (io == NULL)
        return 0;
    old = io->gen->conf;
    dns = strcmp(old->s2s.dns_servers ? old->s2s.dns_servers : "",
                 conf->s2s.dns_servers ? conf->s2s.dns_servers : "") != 0 ||
          old->dns_ms != conf->dns_ms;
    if (dns) {
        /* a new resolver for new requests (s2s.dns_servers, timeouts.dns);
         * the old one's requests in flight finish on it */
        char err[256] = "";
        on_sweep(&io->sweep);
        if (io->n_retired >= XE_S2S_MAX_RETIRED_RESOLVERS) {
            *error_r =
                xe_strdup("s2s.dns_servers: the resolvers of earlier reloads still "
                          "have requests in flight; reload again in a few seconds");
            return -1;
        }
        r = xe_resolver_new(io->loop, conf->s2s.dns_servers, conf->dns_ms, err,
                            sizeof(err));
        if (r == NULL) {
            *error_r = xe_asprintf("s2s.dns_servers: %s", err);
            return -1;
        }
    }
    if ((g = gen_new(conf, error_r)) == NULL) {
        if (r)
            xe_resolver_free(r);
        return -1;
    }
    if (r) {
        xe_info("event=s2s-resolver servers=\"%s\" timeout_ms=%u in_flight=%zu",
                conf->s2s.dns_servers && *conf->s2s.dns_servers ? conf->s2s.dns_servers
                                                                : "system",
                conf->dns_ms, xe_resolver_pending(io->resolver));
        io->retired[io->n_retired++] = io->resolver;
        io->resolver = r;
        on_sweep(&io->sweep); /* an idle one goes at once */
        if (io->n_retired)
            uv_timer_start(&io->sweep, on_sweep, 1000, 1000);
    }
    gen_unref(&io->gen);
    io->gen = g;
    return 0;
}

void
xe_s2s_io_stop(struct xe_s2s_io *io)
{
    if (io == NULL)
        return;
    io->stopping = true;
    if (io->resolver) { /* cancels its requests, closes its handles */
        xe_resolver_free(io->resolver);
        io->resolver = NULL;
    }
    for (size_t i = 0; i < io->n_retired; i++)
        xe_resolver_free(io->retired[i]);
    io->n_retired = 0;
    if (!uv_is_closing((uv_handle_t *)&io->sweep))
        uv_close((uv_handle_t *)&io->sweep, NULL);
    for (size_t i = 0; i < io->n_ls; i++)
        if (io->ls[i].open) {
            uv_close((uv_handle_t *)&io->ls[i].tcp, NULL);
            io->ls[i].open = false;
        }
    while (io->conns) {
        struct sconn *c = io->conns;
        if (c->core && c->connected && !xe_s2s_closed(c->core) &&
            (c->kind == XE_S2S_IN || c->kind == XE_S2S_BACKEND)) {
            xe_s2s_stream_error(c->core, "system-shutdown", NULL);
            flush_core(c);
        }
        finish_close(c);
    }
}

void
xe_s2s_io_free(struct xe_s2s_io **iop)
{
    struct xe_s2s_io *io = *iop;

    if (io == NULL)
        return;
    xe_s2s_io_stop(io);
    gen_unref(&io->gen);
    free(io->ls);
    free(io);
    *iop = NULL;
}

/* ---- the operator's view ---------------------------------------------------- */

/* in: a peer's stream to us and our links for it to the backends; out: ours
 * to a peer, dialback verifications, the backends' outgoing streams */
static const char *
direction(enum xe_s2s_kind k)
{
    return k == XE_S2S_IN || k == XE_S2S_LINK ? "in" : "out";
}

static const char *
sconn_state(const struct sconn *c)
{
    if (c->closing || c->closed)
        return "closing";
    return c->ready ? "ready" : "negotiating";
}

/* How the stream was authenticated (IN, OUT), when it is. */
static const char *
sconn_mech(const struct sconn *c)
{
    if (!c->ready || c->core == NULL || (c->kind != XE_S2S_IN && c->kind != XE_S2S_OUT))
        return "-";
    return xe_s2s_mech(c->core);
}

void
xe_s2s_io_list(struct xe_s2s_io *io, struct xe_buf *out)
{
    int64_t now = (int64_t)time(NULL);

    for (const struct sconn *c = io ? io->conns : NULL; c; c = c->next) {
        /* an inbound stream: its header's domains (more pairs may ride on it) */
        const char *l = c->local[0] || !c->core ? c->local : xe_s2s_local(c->core);
        const char *r = c->remote[0] || !c->core ? c->remote : xe_s2s_remote(c->core);
        xe_buf_appendf(out,
                       "s2s id=%llu direction=%s kind=%s local=%s remote=%s peer=%s "
                       "state=%s mech=%s since=%lld age_s=%lld bytes=%llu\n",
                       (unsigned long long)c->id, direction(c->kind), kind_names[c->kind],
                       l && *l ? l : "-", r && *r ? r : "-", c->peer[0] ? c->peer : "-",
                       sconn_state(c), sconn_mech(c), (long long)c->since,
                       (long long)(now - c->since), (unsigned long long)c->bytes);
    }
}

void
xe_s2s_io_gauges(struct xe_s2s_io *io, struct xe_buf *out)
{
    static const char *const states[] = {"negotiating", "ready", "closing"};
    unsigned long n[5][3] = {{0}};

    for (const struct sconn *c = io ? io->conns : NULL; c; c = c->next) {
        const char *st = sconn_state(c);
        n[c->kind][st[0] == 'n' ? 0 : st[0] == 'r' ? 1 : 2]++;
    }
    xe_buf_append_str(out, "# HELP xedge_s2s_streams Open server-to-server streams, by "
                           "kind and state.\n# TYPE xedge_s2s_streams gauge\n");
    for (int k = 0; k < 5; k++)
        for (int s = 0; s < 3; s++)
            xe_buf_appendf(out, "xedge_s2s_streams{kind=\"%s\",state=\"%s\"} %lu\n",
                           kind_names[k], states[s], n[k][s]);
}
