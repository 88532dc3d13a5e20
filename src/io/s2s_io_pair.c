/* xedge: the I/O glue of federation: how its streams find each other and
 * open. The links to the backends, the IN stream's events (verifications),
 * the BACKEND and OUT verdicts, and the connections (static routes, DNS,
 * retries, the accept). See s2s_io_impl.h. */
#include "s2s_io_impl.h"

static void backend_go_on(struct sconn *b);
static void on_reopened(struct xe_stream *s, void *ctx);
static struct sconn *open_conn(struct xe_s2s_io *io, enum xe_s2s_kind kind,
                               const char *local, const char *remote, const char *key,
                               const char *stream_id);

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
struct sconn *
xe_s2sio_link_for(struct xe_s2s_io *io, const char *peer, const char *local)
{
    struct sconn *l = xe_s2sio_find(io, XE_S2S_LINK, local, peer);

    return l ? l : open_conn(io, XE_S2S_LINK, local, peer, NULL, NULL);
}

void
xe_s2sio_send_own(struct xe_s2s_io *io, const char *local, const char *remote,
                  const unsigned char *data, size_t len)
{
    struct sconn *out = xe_s2sio_find(io, XE_S2S_OUT, local, remote);

    if (out && out->ready && xe_s2s_pairs_n_backends(io->pairs, out->id) > 0) {
        xe_info("event=s2s-own-dropped local=%s remote=%s reason=\"a backend pumps into "
                "the outbound stream\"",
                local, remote);
        return;
    }
    if (out == NULL &&
        (out = open_conn(io, XE_S2S_OUT, local, remote, NULL, NULL)) == NULL) {
        xe_info("event=s2s-own-dropped local=%s remote=%s reason=\"no outbound stream\"",
                local, remote);
        return;
    }
    if (!out->ready) {
        if (xe_buf_append(&out->held, data, len) < 0)
            xe_info(
                "event=s2s-own-dropped local=%s remote=%s reason=\"held buffer full\"",
                local, remote);
        return;
    }
    out->bytes += len;
    xe_s2sio_arm(out, out->gen->conf->s2s_idle_ms);
    xe_s2sio_send_bytes(out, data, len);
}

static void
link_send(struct sconn *l, const unsigned char *data, size_t len)
{
    if (!l->ready) {
        if (xe_buf_append(&l->held, data, len) < 0) {
            xe_warn("event=buffer-cap kind=s2s-link local=%s remote=%s", l->local,
                    l->remote);
            xe_s2sio_sconn_close(l);
        }
        return;
    }
    l->bytes += len;
    xe_s2sio_arm(l, l->gen->conf->s2s_idle_ms);
    xe_s2sio_send_bytes(l, data, len);
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
void
xe_s2sio_notify_verify(struct sconn *v, enum xe_s2s_result r, const char *cond)
{
    struct sconn *in = xe_s2sio_find_id(v->io, v->asker);

    v->asker = 0;
    if (in == NULL || in->core == NULL)
        return;
    /* v: local = the receiving domain (ours), remote = the originating one */
    xe_s2s_dialback_verdict(in->core, v->remote, v->local, r, cond);
    xe_s2sio_flush_core(in);
    if (r == XE_S2S_VALID) {
        if (!in->ready) /* from now on the idle timeout applies */
            xe_s2sio_arm(in, in->gen->conf->s2s_idle_ms);
        in->ready = true;
        xe_s2sio_link_for(in->io, v->remote, v->local);
    } else if (xe_s2s_closed(in->core))
        xe_s2sio_sconn_close(in);
}

void
xe_s2sio_in_events(struct sconn *c)
{
    struct xe_s2s_event ev;

    while (!c->closed && xe_s2s_next_event(c->core, &ev)) {
        if (ev.type == XE_S2S_EV_DIALBACK) {
            start_verify(c, &ev);
            continue;
        }
        /* a stanza for a user of a routed pool: to the user's home */
        if (xe_s2sio_route_stanza(c, &ev))
            continue;
        /* a stanza of an authenticated pair: to its backend link */
        {
            struct sconn *l = xe_s2sio_link_for(c->io, ev.from, ev.to);
            if (l == NULL) {
                xe_s2s_stream_error(c->core, "remote-connection-failed",
                                    "the domain's server is unavailable");
                xe_s2sio_flush_core(c);
                xe_s2sio_sconn_close(c);
                return;
            }
            c->bytes += ev.len;
            link_send(l, ev.raw, ev.len);
            if (xe_s2sio_full(l))
                xe_s2sio_pause_reading(c);
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
        xe_s2sio_cb_policy(out->gen, out->remote) != XE_S2S_POLICY_DIALBACK)
        return false;
    out->ext_retried = true;
    remember_external_drop(out->io, out->remote);
    xe_info("event=s2s-external-dropped peer=%s local=%s remote=%s action=retry-dialback "
            "remember_s=%d",
            out->peer, out->local, out->remote, XE_S2S_EXTERNAL_DROP_MS / 1000);
    /* (the caller closes OUT right after: the new stream takes its pair) */
    xe_s2s_pairs_hide(out->io->pairs, out->id);
    n = open_conn(out->io, XE_S2S_OUT, out->local, out->remote, NULL, NULL);
    if (n == NULL)
        return false;
    xe_s2s_pairs_move(out->io->pairs, out->id, n->id);
    return true;
}

void
xe_s2sio_notify_out_verdict(struct sconn *out, enum xe_s2s_result r, const char *cond)
{
    struct sconn *b;

    if (r != XE_S2S_VALID && retry_without_external(out)) {
        struct sconn *n = xe_s2sio_find(out->io, XE_S2S_OUT, out->local, out->remote);
        if (n && n != out && out->held.len) /* xedge's own stanzas go with it */
            xe_buf_append(&n->held, out->held.data, out->held.len);
        xe_buf_consume(&out->held, out->held.len);
        return;
    }
    if (out->held.len) { /* xedge's own stanzas, before any backend's */
        if (r == XE_S2S_VALID) {
            out->bytes += out->held.len;
            xe_s2sio_send_bytes(out, out->held.data, out->held.len);
        } else {
            xe_info("event=s2s-own-dropped local=%s remote=%s reason=\"the outbound "
                    "stream failed\"",
                    out->local, out->remote);
        }
        xe_buf_consume(&out->held, out->held.len);
    }
    /* one at a time from the start: feeding a backend may close it */
    for (;;) {
        for (size_t i = 0; (b = xe_s2s_pairs_backend(out->io->pairs, out->id, i)); i++)
            if (b->waiting)
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
            xe_s2sio_flush_core(b);
            xe_s2s_pairs_attach(b->io->pairs, b->id, 0);
            xe_s2sio_arm(
                b, b->gen->conf->s2s_handshake_ms); /* its next request, or its end */
            backend_go_on(b);
            continue;
        }
        xe_s2s_backend_verdict(b->core, r, cond);
        xe_s2sio_flush_core(b);
        b->ready = true;
        xe_s2sio_arm(b, b->gen->conf->s2s_idle_ms);
        if (b->held.len) { /* what came after its db:result */
            out->bytes += b->held.len;
            xe_s2sio_send_bytes(out, b->held.data, b->held.len);
            xe_buf_consume(&b->held, b->held.len);
        }
        xe_s2sio_resume_reading(b);
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
        xe_s2sio_feed_plain(b, (const char *)rest.data, rest.len);
    }
    xe_buf_free(&rest);
    if (!b->waiting)
        xe_s2sio_resume_reading(b);
}

void
xe_s2sio_backend_open(struct sconn *b)
{
    const struct xe_s2s_request *req = xe_s2s_request(b->core);
    struct sconn *out;

    snprintf(b->local, sizeof(b->local), "%s", req->from);
    snprintf(b->remote, sizeof(b->remote), "%s", req->to);
    b->waiting = true;
    xe_s2sio_pause_reading(b); /* its stanzas wait until the verdict */
    /* which the outbound stream's own timeouts bound (DNS, connect,
     * handshake): the backend's must not end it first */
    xe_stream_disarm(&b->st);
    {
        /* The key must be an assertion (purpose "s2s-out", identity "LOCAL
         * REMOTE") signed with the pool secret of the local domain, as
         * mod_xedge_s2s writes it: a source address on loopback proves
         * nothing, any local process could claim to be the backend. */
        const struct xe_domain_conf *d = xe_s2sio_served_domain(b->gen->conf, b->local);
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
            xe_s2sio_flush_core(b);
            xe_s2sio_sconn_close(b);
            return;
        }
    }
    if (xe_s2sio_cb_policy(b->gen, b->remote) == XE_S2S_POLICY_REFUSE) {
        xe_info("event=s2s-refused kind=s2s-out local=%s remote=%s reason=policy",
                b->local, b->remote);
        xe_s2sio_arm(b, b->gen->conf->s2s_handshake_ms);
        b->waiting = false;
        xe_s2s_backend_failure(b->core, "policy-violation", "cancel",
                               "federation with this domain is refused by policy");
        xe_s2sio_flush_core(b);
        xe_s2sio_resume_reading(b);
        return;
    }
    out = xe_s2sio_find(b->io, XE_S2S_OUT, b->local, b->remote);
    if (out == NULL)
        out = open_conn(b->io, XE_S2S_OUT, b->local, b->remote, NULL, NULL);
    if (out == NULL) {
        xe_s2sio_arm(b, b->gen->conf->s2s_handshake_ms);
        b->waiting = false;
        xe_s2s_backend_failure(b->core, "remote-server-not-found", "cancel",
                               "no route to the domain's server");
        xe_s2sio_flush_core(b);
        xe_s2sio_resume_reading(b);
        return;
    }
    xe_s2s_pairs_attach(b->io->pairs, b->id, out->id);
    if (out->ready)
        xe_s2sio_notify_out_verdict(out, XE_S2S_VALID, NULL);
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
    xe_metrics_inc(XE_M_S2S_STREAMS, xe_s2sio_kind_names[kind], NULL);
    {
        const struct xe_conf *conf = io->gen->conf;
        struct xe_stream_limits lim = {conf->pump_low_water, conf->pump_high_water,
                                       conf->pump_hard_cap};
        xe_stream_init(&c->st, io->loop, false, &io->slab, &lim, &xe_s2sio_stream_cb, c);
    }
    xe_buf_init(&c->held, io->gen->conf->pump_hard_cap);
    c->next = io->conns;
    if (io->conns)
        io->conns->prev = c;
    io->conns = c;
    xe_s2s_pairs_add(io->pairs, c->id, kind, c);
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
    p->is_local = xe_s2sio_cb_is_local;
    p->policy = xe_s2sio_cb_policy;
    p->peer_secret = xe_s2sio_cb_peer_secret;
    p->max_auth_attempts = conf->max_auth_attempts;
    p->ctx = c->gen;
    p->secret = conf->s2s.dialback_secret;
    p->secret_len = conf->s2s.dialback_secret_len;
    p->max_stanza_preauth = conf->max_stanza_preauth;
    p->max_stanza = conf->s2s.max_stanza;
    p->max_depth_preauth = conf->max_xml_depth;
    p->max_attrs_preauth = conf->max_attrs;
}

void
xe_s2sio_on_connected(struct xe_stream *s, int status, void *ctx)
{
    struct sconn *c = ctx;

    if (c->closed)
        return;
    if (status < 0) {
        xe_info("event=s2s-connect-failed kind=s2s-%s peer=%s local=%s remote=%s "
                "error=\"%s\"",
                xe_s2sio_kind_names[c->kind], c->peer, c->local, c->remote,
                uv_strerror(status));
        if (c->next_target < c->n_targets) { /* the resolver gave another one */
            xe_stream_reopen(s, on_reopened);
            return;
        }
        xe_s2sio_why_set(c, "cannot connect to %s: %s", c->peer, uv_strerror(status));
        xe_s2sio_finish_close(c);
        return;
    }
    xe_s2sio_arm(c, c->gen->conf->s2s_handshake_ms);
    xe_stream_start(s);
    if (c->direct_tls) {
        xe_buf_consume(xe_s2s_output(c->core), xe_s2s_output(c->core)->len);
        xe_s2sio_start_tls(c); /* the header goes out once TLS is up */
        return;
    }
    xe_s2sio_flush_core(c);
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
    if (xe_stream_connect_tcp(&c->st, (const struct sockaddr *)&t->addr) < 0)
        xe_s2sio_finish_close(c);
    else
        xe_s2sio_arm(c, c->gen->conf->s2s_connect_ms);
}

/* The socket of a failed connect is closed and a fresh one ready: the
 * resolver's next target. */
static void
on_reopened(struct xe_stream *s, void *ctx)
{
    struct sconn *c = ctx;

    (void)s;
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
                xe_s2sio_kind_names[c->kind], c->local, c->remote,
                xe_resolve_strstatus(status));
        xe_s2sio_why_set(c, "DNS: %s %s",
                         status == XE_RESOLVE_TIMEOUT ? "no answer in time for"
                         : status == XE_RESOLVE_FAIL  ? "the DNS servers failed for"
                                                      : "no server found for",
                         c->remote);
        if (c->kind == XE_S2S_OUT)
            xe_s2sio_notify_out_verdict(c, XE_S2S_ERROR,
                                        status == XE_RESOLVE_TIMEOUT
                                            ? "remote-server-timeout"
                                            : "remote-server-not-found");
        if (c->kind == XE_S2S_VERIFY && c->asker)
            xe_s2sio_notify_verify(c, XE_S2S_ERROR,
                                   status == XE_RESOLVE_TIMEOUT
                                       ? "remote-server-timeout"
                                       : "remote-server-not-found");
        xe_s2sio_finish_close(c);
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
    if (kind == XE_S2S_OUT || kind == XE_S2S_LINK) /* the pair's stream */
        xe_s2s_pairs_bind(io->pairs, c->id, local, remote);
    if ((how = route(c, &ss)) < 0) {
        xe_info("event=s2s-no-route kind=s2s-%s local=%s remote=%s",
                xe_s2sio_kind_names[kind], local, remote);
        xe_s2sio_finish_close(c);
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
            xe_s2sio_finish_close(c);
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
        xe_s2sio_finish_close(c);
        return NULL;
    }
    if (how == 1) { /* no static route: DNS (SRV, then A/AAAA) */
        snprintf(c->peer, sizeof(c->peer), "dns:%s", remote);
        c->rq = xe_resolve_xmpp_server(io->resolver, remote, 5269, on_resolved, c);
        if (c->rq == NULL) {
            xe_s2sio_finish_close(c);
            return NULL;
        }
        xe_s2sio_arm(c, c->gen->conf->dns_ms + c->gen->conf->s2s_connect_ms);
        return c;
    }
    if (xe_stream_connect_tcp(&c->st, (struct sockaddr *)&ss) < 0) {
        xe_s2sio_finish_close(c);
        return NULL;
    }
    xe_s2sio_arm(c, c->gen->conf->s2s_connect_ms);
    return c;
}

static bool
loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}

void
xe_s2sio_on_connection(uv_stream_t *ls, int status)
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
    if (xe_stream_accept(&c->st, ls) != 0) {
        xe_s2sio_finish_close(c);
        return;
    }
    if (uv_tcp_getpeername(&c->st.u.tcp, (struct sockaddr *)&ss, &sl) == 0) {
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
            xe_s2sio_finish_close(c);
            return;
        }
    }
    core_params(c, &p);
    p.tls = l->kind == XE_LISTEN_S2S_DIRECT_TLS;
    c->core = xe_s2s_new(&p);
    if (c->core == NULL) {
        xe_s2sio_finish_close(c);
        return;
    }
    if (l->kind == XE_LISTEN_S2S_DIRECT_TLS) {
        struct xe_tls *t = xe_tls_new(c->gen->tls_direct, NULL);
        if (t == NULL || xe_stream_start_tls(&c->st, t, false) < 0) {
            xe_s2sio_finish_close(c);
            return;
        }
    }
    xe_s2sio_arm(c, xe_stream_tls(&c->st) ? c->gen->conf->tls_timeout_ms
                                          : c->gen->conf->s2s_handshake_ms);
    xe_stream_start(&c->st);
}
