/* xedge: the I/O glue of federation. See s2s_io.h and doc/federation.md.
 *
 * One struct sconn per TCP connection, whatever its kind (s2s.h): IN (a
 * remote server's stream), OUT (ours to a remote server), VERIFY (a
 * dialback verification stream), BACKEND (a backend's outgoing stream) and
 * LINK (ours to a backend's s2s port, one per authenticated pair). They
 * find each other by domain pair or by id, never by a pointer that could
 * outlive its target, through the pair routing (s2s_pairs.h: hashed
 * lookups; BACKEND -> OUT is cleared when the OUT closes).
 * Handles are embedded; an sconn is freed in its last close callback.
 * This file: the streams' transport (writes, closing, timers, reads, TLS),
 * the generations, the interface and the operator's view; s2s_io_pair.c:
 * how the streams find each other and open (s2s_io_impl.h). */
#include "s2s_io_impl.h"

static void resume_feeders(struct sconn *c);

/* ---- common ---------------------------------------------------------------- */

const char *const xe_s2sio_kind_names[] = {"in", "out", "verify", "backend", "link"};

/* OUT/VERIFY: why the stream failed, for the backend's bounces; the first
 * reason stays. */
void
xe_s2sio_why_set(struct sconn *c, const char *fmt, ...)
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
    if (g->base)
        g->ops.release(g->ops.ctx, g->base);
    free(g);
}

/* The glue's view of the server's generation BASE (configuration CONF). */
static struct s2s_gen *
gen_new(const struct xe_conf *conf, struct gen *base, const struct xe_s2s_gen_ops *ops,
        char **error_r)
{
    struct s2s_gen *g = xe_calloc(1, sizeof(*g));
    struct xe_tls_cert *certs = NULL;

    g->refs = 1;
    g->conf = conf;
    g->ops = *ops;
    g->base = base;
    ops->hold(ops->ctx, base);
    certs = xe_calloc(conf->n_domains ? conf->n_domains : 1, sizeof(*certs));
    for (size_t i = 0; i < conf->n_domains; i++) {
        certs[i].domain = conf->domains[i].name;
        certs[i].certificate = conf->domains[i].certificate;
        certs[i].key = conf->domains[i].key;
        /* the peer's certificate is requested (optional) and verified */
        certs[i].client_ca = conf->s2s.trust_anchors;
        certs[i].settings = &conf->domains[i].tls;
        certs[i].ticket_keys = conf->ticket_keys;
        certs[i].ticket_keys_len = conf->ticket_keys_len;
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

bool
xe_s2sio_cb_is_local(void *ctx, const char *d)
{
    const struct s2s_gen *g = ctx;
    return xe_conf_domain(g->conf, d) != NULL || xe_conf_component(g->conf, d) != NULL;
}

enum xe_s2s_policy
xe_s2sio_cb_policy(void *ctx, const char *d)
{
    const struct s2s_gen *g = ctx;
    const struct xe_s2s_peer_conf *p = xe_conf_s2s_peer(g->conf, d);
    int pol = p && p->policy >= 0 ? p->policy : g->conf->s2s.default_policy;

    if (xe_conf_domain(g->conf, d) || xe_conf_component(g->conf, d))
        return XE_S2S_POLICY_REFUSE; /* ourselves: never over s2s */
    return pol == XE_S2S_POL_EXTERNAL ? XE_S2S_POLICY_EXTERNAL
           : pol == XE_S2S_POL_REFUSE ? XE_S2S_POLICY_REFUSE
           : pol == XE_S2S_POL_SECRET ? XE_S2S_POLICY_SECRET
                                      : XE_S2S_POLICY_DIALBACK;
}

/* A listed peer's pre-shared secret (s2s.peers[].secret_file); the
 * generation's configuration holds it as long as the stream lives. */
bool
xe_s2sio_cb_peer_secret(void *ctx, const char *d, struct xe_s2s_secret *out)
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

/* An OUT or LINK stream of a pair, not closing. */
struct sconn *
xe_s2sio_find(struct xe_s2s_io *io, enum xe_s2s_kind kind, const char *local,
              const char *remote)
{
    return xe_s2s_pairs_find(io->pairs, kind, local, remote);
}

/* A stream by its id, not closing. */
struct sconn *
xe_s2sio_find_id(struct xe_s2s_io *io, uint64_t id)
{
    return xe_s2s_pairs_get(io->pairs, id);
}

/* BACKEND B's outbound stream (closing or not), else NULL. */
struct sconn *
xe_s2sio_out_of(const struct sconn *b)
{
    return xe_s2s_pairs_out(b->io->pairs, b->id);
}

/* C is closing: no longer found by id or pair (a new stream may take its
 * pair); its BACKENDs stay until it is closed. */
void
xe_s2sio_set_closing(struct sconn *c)
{
    c->closing = true;
    xe_s2s_pairs_hide(c->io->pairs, c->id);
}

/* ---- writing ------------------------------------------------------------ */

int
xe_s2sio_send_bytes(struct sconn *c, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    return xe_stream_write(&c->st, data, len);
}

void
xe_s2sio_flush_core(struct sconn *c)
{
    struct xe_buf *out;

    if (c->core == NULL || c->closed)
        return;
    out = xe_s2s_output(c->core);
    if (out->len) {
        xe_s2sio_send_bytes(c, out->data, out->len);
        out->len = 0;
    }
}

/* Is C above its high water mark (its feeders should stop reading)? */
bool
xe_s2sio_full(const struct sconn *c)
{
    return xe_stream_above_high(&c->st, c->held.len);
}

void
xe_s2sio_pause_reading(struct sconn *c)
{
    if (!c->closed)
        xe_stream_pause(&c->st);
}

void
xe_s2sio_resume_reading(struct sconn *c)
{
    if (!c->closed && !c->closing)
        xe_stream_resume(&c->st);
}

static void
resume_one(void *v, void *ctx)
{
    struct sconn *f = v;

    (void)ctx;
    xe_s2sio_resume_reading(f);
}

/* C drained: the streams that fill it may read again (an OUT: its
 * BACKENDs; a LINK: the inbound streams). */
static void
resume_feeders(struct sconn *c)
{
    struct sconn *f;

    if (c->kind == XE_S2S_OUT)
        for (size_t i = 0; (f = xe_s2s_pairs_backend(c->io->pairs, c->id, i)); i++)
            resume_one(f, NULL);
    else if (c->kind == XE_S2S_LINK)
        xe_s2s_pairs_each(c->io->pairs, XE_S2S_IN, resume_one, NULL);
}

static void
on_drained(struct xe_stream *s, void *ctx)
{
    struct sconn *c = ctx;

    (void)s;
    if (!c->closing)
        resume_feeders(c);
}

/* ---- closing ------------------------------------------------------------- */

static void
on_released(struct xe_stream *s, void *ctx)
{
    struct sconn *c = ctx;

    (void)s;
    xe_s2s_free(&c->core);
    xe_buf_free(&c->held);
    free(c->targets);
    gen_unref(&c->gen);
    free(c);
}

void
xe_s2sio_finish_close(struct sconn *c)
{
    xe_stream_abort(&c->st, XE_STREAM_LOCAL, 0);
}

/* The stream is closing (its handles are): whatever the reason, the one
 * place where a stream leaves the routing and the list. */
static void
on_closed(struct xe_stream *s, enum xe_stream_reason why, int status, void *ctx)
{
    struct sconn *c = ctx;
    struct xe_s2s_io *io = c->io;

    (void)status;
    if (c->closed)
        return;
    switch (why) {
    case XE_STREAM_HARD_CAP:
        xe_warn("event=buffer-cap kind=s2s-%s peer=%s queued=%zu",
                xe_s2sio_kind_names[c->kind], c->peer, xe_stream_queued(s));
        break;
    case XE_STREAM_TLS_FAILED:
        if (xe_stream_tls(s) == NULL)
            break;
        xe_info("event=tls-failed kind=s2s-%s peer=%s error=\"%s\"",
                xe_s2sio_kind_names[c->kind], c->peer, xe_tls_error(xe_stream_tls(s)));
        xe_s2sio_why_set(c, "TLS with %s failed: %s", c->peer,
                         xe_tls_error(xe_stream_tls(s)));
        break;
    case XE_STREAM_TLS_ERROR:
        xe_info("event=tls-error kind=s2s-%s peer=%s error=\"%s\"",
                xe_s2sio_kind_names[c->kind], c->peer, xe_tls_error(xe_stream_tls(s)));
        break;
    default:
        break;
    }
    c->closed = true;
    xe_s2sio_set_closing(c);
    if (c->core && xe_s2s_failure(c->core))
        xe_s2sio_why_set(c, "%s", xe_s2s_failure(c->core));
    if (c->kind == XE_S2S_OUT && !c->ready)
        xe_s2sio_notify_out_verdict(c, XE_S2S_ERROR, "remote-server-not-found");
    if (c->kind == XE_S2S_VERIFY && c->asker)
        xe_s2sio_notify_verify(c, XE_S2S_ERROR, "remote-server-not-found");
    if (c->kind == XE_S2S_OUT) {
        struct sconn *o;
        while ((o = xe_s2s_pairs_detach_first(io->pairs, c->id)))
            if (o->ready) /* its pump has no outlet any more */
                xe_s2sio_sconn_close(o);
    }
    if (c->kind == XE_S2S_BACKEND && xe_s2sio_out_of(c)) {
        struct sconn *out = xe_s2sio_out_of(c);
        xe_s2s_pairs_attach(io->pairs, c->id, 0);
        if (xe_s2s_pairs_n_backends(io->pairs, out->id) == 0)
            xe_s2sio_sconn_close(out);
    }
    if (c->kind == XE_S2S_LINK) /* the inbound streams it held back */
        resume_feeders(c);
    if (c->core && !c->local[0] && xe_s2s_local(c->core))
        snprintf(c->local, sizeof(c->local), "%s", xe_s2s_local(c->core));
    if (c->core && !c->remote[0] && xe_s2s_remote(c->core))
        snprintf(c->remote, sizeof(c->remote), "%s", xe_s2s_remote(c->core));
    if (c->bytes || c->ready)
        xe_info("event=s2s-close kind=s2s-%s peer=%s local=%s remote=%s bytes=%llu",
                xe_s2sio_kind_names[c->kind], c->peer, c->local[0] ? c->local : "-",
                c->remote[0] ? c->remote : "-", (unsigned long long)c->bytes);
    xe_s2s_pairs_remove(io->pairs, c->id);
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
}

/* Close after what is queued has been written (at most CLOSE_GRACE_MS). */
void
xe_s2sio_sconn_close(struct sconn *c)
{
    if (c->closed || c->closing)
        return;
    xe_s2sio_flush_core(c);
    if (c->core && !xe_s2s_closed(c->core)) {
        xe_s2s_end(c->core);
        xe_s2sio_flush_core(c);
    }
    if (c->closed)
        return;
    xe_s2sio_set_closing(c);
    if (c->core && xe_s2s_failure(c->core))
        xe_s2sio_why_set(c, "%s", xe_s2s_failure(c->core));
    if (c->kind == XE_S2S_OUT && !c->ready)
        xe_s2sio_notify_out_verdict(c, XE_S2S_ERROR, "remote-server-not-found");
    if (c->kind == XE_S2S_VERIFY && c->asker)
        xe_s2sio_notify_verify(c, XE_S2S_ERROR, "remote-server-not-found");
    /* (the TLS close_notify, then the end once the queue is out) */
    xe_stream_close(&c->st, CLOSE_GRACE_MS);
}

/* ---- timers -------------------------------------------------------------- */

void
xe_s2sio_arm(struct sconn *c, unsigned ms)
{
    if (!c->closed)
        xe_stream_arm(&c->st, ms);
}

static void
on_timer(struct xe_stream *s, void *ctx)
{
    struct sconn *c = ctx;
    bool connected = s->connected;

    if (c->closing) {
        xe_s2sio_finish_close(c);
        return;
    }
    xe_info("event=s2s-timeout kind=s2s-%s peer=%s local=%s remote=%s stage=%s",
            xe_s2sio_kind_names[c->kind], c->peer, c->local[0] ? c->local : "-",
            c->remote[0] ? c->remote : "-",
            !connected ? "connect"
            : c->ready ? "idle"
                       : "handshake");
    xe_s2sio_why_set(c, "timeout: no answer from %s within the %s time", c->peer,
                     !connected ? "connect"
                     : c->ready ? "idle"
                                : "handshake");
    if (c->kind == XE_S2S_OUT && !c->ready)
        xe_s2sio_notify_out_verdict(c, XE_S2S_ERROR, "remote-server-timeout");
    if (c->kind == XE_S2S_VERIFY && c->asker)
        xe_s2sio_notify_verify(c, XE_S2S_ERROR, "remote-server-timeout");
    if (c->core && connected && !xe_s2s_closed(c->core))
        xe_s2s_stream_error(c->core, "connection-timeout", NULL);
    xe_s2sio_sconn_close(c);
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
            xe_s2sio_arm(c, c->gen->conf->s2s_idle_ms);
            xe_info("event=s2s-out peer=%s local=%s remote=%s mech=%s tls=%s", c->peer,
                    c->local, c->remote, xe_s2s_mech(c->core),
                    c->direct_tls           ? "direct"
                    : xe_stream_tls(&c->st) ? "starttls"
                                            : "none");
        } else {
            if (xe_s2s_failure(c->core))
                xe_s2sio_why_set(c, "%s", xe_s2s_failure(c->core));
            xe_info("event=s2s-auth-failed kind=s2s-out peer=%s local=%s remote=%s "
                    "result=%s condition=%s why=\"%s\"",
                    c->peer, c->local, c->remote,
                    r == XE_S2S_INVALID ? "invalid" : "error", cond ? cond : "-",
                    c->why[0] ? c->why : "-");
        }
        xe_s2sio_notify_out_verdict(c, r, cond);
        if (r != XE_S2S_VALID)
            xe_s2sio_sconn_close(c);
        break;
    case XE_S2S_VERIFY:
        xe_s2sio_notify_verify(c, r, cond);
        xe_s2sio_sconn_close(c);
        break;
    case XE_S2S_LINK:
        if (r != XE_S2S_VALID) {
            xe_warn("event=s2s-link-failed peer=%s local=%s remote=%s result=%s", c->peer,
                    c->local, c->remote, r == XE_S2S_INVALID ? "invalid" : "error");
            xe_s2sio_sconn_close(c);
            break;
        }
        c->ready = true;
        xe_s2sio_arm(c, c->gen->conf->s2s_idle_ms);
        if (c->held.len) {
            c->bytes += c->held.len;
            xe_s2sio_send_bytes(c, c->held.data, c->held.len);
            xe_buf_consume(&c->held, c->held.len);
        }
        break;
    default:
        break;
    }
}

void
xe_s2sio_start_tls(struct sconn *c)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_domain_conf *d = xe_conf_domain(conf, c->local);
    struct xe_tls *t;

    if (c->kind == XE_S2S_IN)
        t = xe_tls_new(c->gen->tls, xe_s2sio_tls_name(conf, xe_s2s_local(c->core)));
    else
        t = xe_tls_new_s2s_client(
            c->gen->client[d ? (size_t)(d - conf->domains) : conf->n_domains], c->remote,
            c->direct_tls ? "xmpp-server" : NULL);
    if (t == NULL) {
        xe_s2sio_finish_close(c);
        return;
    }
    xe_s2sio_arm(c, conf->tls_timeout_ms);
    xe_stream_start_tls(&c->st, t, c->kind != XE_S2S_IN);
}

static void
on_tls_up(struct xe_stream *s, void *ctx)
{
    struct sconn *c = ctx;
    struct xe_tls *tls = xe_stream_tls(s);
    char ids[MAX_NAMES][3072];
    const char *names[MAX_NAMES];
    size_t n = xe_tls_peer_identities(tls, XE_ID_DNS | XE_ID_XMPPADDR, ids, MAX_NAMES);
    char alpn[32];

    for (size_t i = 0; i < n; i++)
        names[i] = ids[i];
    xe_debug("event=tls kind=s2s-%s peer=%s version=%s cipher=%s alpn=%s",
             xe_s2sio_kind_names[c->kind], c->peer, xe_tls_version(tls),
             xe_tls_cipher(tls), xe_tls_alpn(tls, alpn, sizeof(alpn)) ? alpn : "-");
    xe_s2sio_arm(c, c->gen->conf->s2s_handshake_ms);
    {
        struct xe_cbind cb[XE_CB_MAX];
        size_t ncb = xe_tls_channel_bindings(tls, false, cb, XE_CB_MAX);
        xe_s2s_set_channel_bindings(c->core, cb, ncb);
        OPENSSL_cleanse(cb, sizeof(cb));
    }
    xe_s2s_tls_up(c->core, names, n);
    xe_s2sio_flush_core(c);
}

void
xe_s2sio_feed_plain(struct sconn *c, const char *data, size_t n)
{
    while (n > 0 && !c->closed && !c->closing) {
        enum xe_s2s_action a;
        size_t used = 0;

        if (c->kind == XE_S2S_BACKEND && c->ready) {
            struct sconn *out = xe_s2sio_out_of(c);
            if (out == NULL) {
                xe_s2sio_sconn_close(c);
                return;
            }
            out->bytes += n;
            xe_s2sio_arm(out,
                         c->gen->conf->s2s_idle_ms); /* traffic on the outbound stream */
            xe_s2sio_send_bytes(out, data, n);
            if (!out->closed && xe_s2sio_full(out))
                xe_s2sio_pause_reading(c);
            return;
        }
        if (c->kind == XE_S2S_BACKEND && c->waiting) {
            if (xe_buf_append(&c->held, data, n) < 0)
                xe_s2sio_sconn_close(c);
            return;
        }
        a = xe_s2s_feed(c->core, data, n, &used);
        data += used;
        n -= used;
        if (c->kind == XE_S2S_IN)
            xe_s2sio_in_events(c);
        xe_s2sio_flush_core(c);
        if (c->closed)
            return;
        switch (a) {
        case XE_S2S_CONTINUE:
            break;
        case XE_S2S_STARTTLS:
            xe_s2sio_start_tls(c);
            return; /* the rest (there should be none) is dropped */
        case XE_S2S_PAIR_UP:
            c->ready = true;
            xe_s2sio_arm(c, c->gen->conf->s2s_idle_ms);
            xe_s2sio_link_for(c->io, xe_s2s_request(c->core)->from,
                              xe_s2s_request(c->core)->to);
            break;
        case XE_S2S_OPEN:
            xe_s2sio_backend_open(c);
            break;
        case XE_S2S_VERDICT:
            on_verdict(c);
            break;
        case XE_S2S_CLOSE:
            /* (a stream that was up has had its verdict) */
            if ((c->kind == XE_S2S_OUT && !c->ready) || c->kind == XE_S2S_VERIFY)
                on_verdict(c);
            xe_s2sio_sconn_close(c);
            return;
        }
    }
}

static void
on_data(struct xe_stream *s, const char *data, size_t n, void *ctx)
{
    struct sconn *c = ctx;

    (void)s;
    if (c->ready)
        xe_s2sio_arm(c, c->gen->conf->s2s_idle_ms);
    xe_s2sio_feed_plain(c, data, n);
}

/* The peer's side ended: a closed connection fails the stream at once; a
 * TLS close_notify or error ends it with our end of the stream. */
static void
on_eof(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    struct sconn *c = ctx;

    (void)status;
    if (c->closed)
        return;
    if (r == XE_STREAM_TLS_CLOSED || r == XE_STREAM_TLS_ERROR) {
        xe_s2sio_sconn_close(c);
        return;
    }
    xe_s2sio_why_set(c, "%s closed the connection%s", c->peer,
                     s->tls_handshaking ? " during the TLS handshake" : "");
    if (c->kind == XE_S2S_OUT && !c->ready)
        xe_s2sio_notify_out_verdict(c, XE_S2S_ERROR, "remote-server-not-found");
    xe_s2sio_finish_close(c);
}

const struct xe_stream_cb xe_s2sio_stream_cb = {
    .connected = xe_s2sio_on_connected,
    .tls_up = on_tls_up,
    .data = on_data,
    .eof = on_eof,
    .drained = on_drained,
    .timeout = on_timer,
    .closed = on_closed,
    .released = on_released,
};

/* ---- the API -------------------------------------------------------------- */

int
xe_s2s_io_new(uv_loop_t *loop, const struct xe_conf *conf, struct gen *gen,
              const struct xe_s2s_gen_ops *ops, struct xe_s2s_io **io_r, char **error_r)
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
    io->ops = *ops;
    if ((io->gen = gen_new(conf, gen, &io->ops, error_r)) == NULL) {
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
    io->pairs = xe_s2s_pairs_new();
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
        r = xe_tcp_listen(&l->tcp, lc->address, lc->port, false, xe_s2sio_on_connection);
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
xe_s2s_io_reload(struct xe_s2s_io *io, const struct xe_conf *conf, struct gen *gen,
                 char **error_r)
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
    if ((g = gen_new(conf, gen, &io->ops, error_r)) == NULL) {
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
        if (c->core && c->st.connected && !xe_s2s_closed(c->core) &&
            (c->kind == XE_S2S_IN || c->kind == XE_S2S_BACKEND)) {
            xe_s2s_stream_error(c->core, "system-shutdown", NULL);
            xe_s2sio_flush_core(c);
        }
        xe_s2sio_finish_close(c);
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
    xe_s2s_pairs_free(&io->pairs);
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
                       (unsigned long long)c->id, direction(c->kind),
                       xe_s2sio_kind_names[c->kind], l && *l ? l : "-", r && *r ? r : "-",
                       c->peer[0] ? c->peer : "-", sconn_state(c), sconn_mech(c),
                       (long long)c->since, (long long)(now - c->since),
                       (unsigned long long)c->bytes);
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
                           xe_s2sio_kind_names[k], states[s], n[k][s]);
}
