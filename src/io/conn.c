/* xedge: the c2s connection lifecycle: accept, the client stream's
 * callbacks (stream.h: its reads, TLS, its timer), the login machine driven
 * on them, the pre-auth accounting and the single close path.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- closing ------------------------------------------------------------- */

/* A stream's handles are closed; the memory goes with the last stream's. */
void
xe_srv_stream_released(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    if (--c->streams > 0)
        return;
    xe_sess_free(&c->sess);
    free(c->ua);
    xe_regsplice_free(&c->reg);
    xe_buf_free(&c->end_xml);
    xe_zstream_free(&c->zs);
    xe_buf_free(&c->zin);
    xe_proxy_free(&c->proxy);
    if (c->xf)
        c->xf->free(c);
    free(c->jid);
    srv_lock(c->srv);
    xe_srv_gen_unref(&c->gen);
    srv_unlock(c->srv);
    free(c);
}

/* The limits in force: max_connections clamped to what the descriptor
 * limit serves, and the pre-auth cap (its setting, else the default or half
 * the effective max_connections, whichever is less; never above it). */
void
xe_srv_eff_limits(const struct xe_server *srv, const struct xe_conf *conf,
                  unsigned *max_r, unsigned *preauth_r)
{
    unsigned max = conf->max_connections, pre;

    if (srv->fd_cap && srv->fd_cap < max)
        max = srv->fd_cap;
    if (conf->max_preauth_connections)
        pre = conf->max_preauth_connections;
    else
        pre = max / 2 < XE_DEF_MAX_PREAUTH_CONNECTIONS ? max / 2
                                                       : XE_DEF_MAX_PREAUTH_CONNECTIONS;
    *max_r = max;
    *preauth_r = pre > max ? max : pre ? pre : 1;
}

/* The process's resident set (KiB), -1 if unknown. */
static long
rss_kib(void)
{
    long pages = -1, rss = -1;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* On the thread pool: give the free heap back to the system. */
static void
trim_work(uv_work_t *req)
{
    struct worker *w = req->data;
    uint64_t t0 = uv_hrtime();

    w->trim.rss_before_kib = rss_kib();
#ifdef HAVE_MALLOC_TRIM
    w->trim.released = malloc_trim(0) == 1;
#endif
    w->trim.rss_after_kib = rss_kib();
    w->trim.took_us = (uv_hrtime() - t0) / 1000;
}

static void
trim_done(uv_work_t *req, int status)
{
    struct worker *w = req->data;
    struct xe_server *srv = w->srv;

    srv_lock(srv);
    srv->trim_busy = false;
    srv->trim_last_ms = uv_now(w->loop);
    srv->preauth_peak = srv->n_preauth_all; /* the next drop counts from here */
    srv->trims += status == 0;
    srv_unlock(srv);
    if (status != 0)
        return;
    xe_metrics_inc(XE_M_HEAP_TRIMS, NULL, NULL);
    xe_info("event=heap-trimmed preauth_from=%u preauth_to=%u released=%s "
            "rss_before_kib=%ld rss_after_kib=%ld took_us=%llu",
            w->trim.from, w->trim.to, w->trim.released ? "yes" : "no",
            w->trim.rss_before_kib, w->trim.rss_after_kib,
            (unsigned long long)w->trim.took_us);
}

static void
on_trim_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    struct xe_server *srv = w->srv;
    int r;

    srv_lock(srv);
    w->trim.to = srv->n_preauth_all;
    srv_unlock(srv);
    w->trim_req.data = w;
    if ((r = uv_queue_work(w->loop, &w->trim_req, trim_work, trim_done)) != 0) {
        xe_warn("event=heap-trim-failed error=\"%s\"", uv_strerror(r));
        srv_lock(srv);
        srv->trim_busy = false;
        srv_unlock(srv);
    }
}

/* C is authenticated or gone: it no longer counts against the pre-auth cap.
 * After a large drop from the peak, the heap their parsers and TLS buffers
 * used is given back, on the thread pool (at most once per interval). */
void
xe_srv_preauth_end(struct conn *c)
{
    struct xe_server *srv = c->srv;
    struct worker *w = c->w;
    bool trim = false;

    if (!c->preauth)
        return;
    c->preauth = false;
    srv_lock(srv);
    srv->n_preauth_all--;
#ifdef HAVE_MALLOC_TRIM /* (else nothing to give back with) */
    {
        unsigned max, pre, drop;
        xe_srv_eff_limits(srv, srv->gen->conf, &max, &pre);
        drop = pre / 4 < XE_PREAUTH_TRIM_DROP ? pre / 4 : XE_PREAUTH_TRIM_DROP;
        if (drop == 0)
            drop = 1;
        if (!srv->trim_busy && !w->stopping &&
            srv->preauth_peak >= srv->n_preauth_all + drop &&
            (srv->trims == 0 ||
             uv_now(w->loop) - srv->trim_last_ms >= XE_PREAUTH_TRIM_INTERVAL_MS)) {
            srv->trim_busy = true;
            w->trim.from = srv->preauth_peak;
            trim = true;
        }
    }
#endif
    srv_unlock(srv);
    if (!trim)
        return;
    /* a moment later: a mass close is over by then, one trim for all */
    if (!w->trim_timer_inited) {
        uv_timer_init(w->loop, &w->trim_timer);
        w->trim_timer.data = w;
        w->trim_timer_inited = true;
    }
    uv_timer_start(&w->trim_timer, on_trim_timer, XE_PREAUTH_TRIM_DELAY_MS, 0);
}

/* At once (what a corked callback holds gets one try-write): the client
 * stream closes, and with it the connection (client_closed). */
void
xe_srv_finish_close(struct conn *c)
{
    if (!c->closed)
        xe_stream_abort(&c->cs, XE_STREAM_LOCAL, 0);
}

/* The client stream closed: the connection's end (once). */
static void
client_closed(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    struct conn *c = ctx;
    struct xe_server *srv = c->srv;
    struct worker *w = c->w;

    switch (r) {
    case XE_STREAM_WRITE_ERROR:
        xe_debug("event=write-failed peer=%s side=client error=\"%s\"", c->peer,
                 uv_strerror(status));
        break;
    case XE_STREAM_HARD_CAP:
        xe_warn("event=buffer-cap peer=%s jid=%s side=client queued=%zu", c->peer,
                c->jid ? c->jid : "-", xe_stream_queued(s));
        break;
    case XE_STREAM_TLS_FAILED:
        xe_metrics_inc(XE_M_TLS_FAILED, NULL, NULL);
        xe_info("event=tls-failed peer=%s error=\"%s\"", c->peer,
                xe_tls_error(xe_stream_tls(s)));
        break;
    case XE_STREAM_TLS_ERROR:
        xe_warn("event=tls-error peer=%s error=\"%s\"", c->peer,
                xe_tls_error(xe_stream_tls(s)));
        break;
    default:
        break;
    }
    c->closed = true;
    c->st = CS_CLOSING;
    xe_srv_fast_cancel(c);
    xe_srv_reg_cancel(c);
    if (c->jid && c->bytes_up + c->bytes_down > 0)
        xe_info("event=close peer=%s jid=%s backend=%s bytes_up=%llu bytes_down=%llu",
                c->peer, c->jid, c->server ? c->server->name : "-",
                (unsigned long long)c->bytes_up, (unsigned long long)c->bytes_down);
    xe_srv_compress_log_close(c);
    xe_srv_preauth_end(c);
    xe_srv_admit_release(c); /* (a queued login leaves the queue) */
    srv_lock(srv);
    if (c->bst) {
        c->bst->st.sessions--;
        c->bst = NULL;
    }
    srv->n_conns_all--;
    srv_unlock(srv);
    /* unlink */
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    if (w->draining && w->n_conns == 0)
        xe_srv_worker_drained(w);
    if (c->counted)
        xe_addrlimit_release(srv->al, (struct sockaddr *)&c->sa, uv_now(w->loop));
    /* the backend goes with it (what it held corked gets one try-write) */
    if (c->backend_inited)
        xe_stream_abort(&c->bs, XE_STREAM_LOCAL, 0);
}

/* Close after what is queued has been written: the client stream lingers
 * (stream.h): it keeps reading (and dropping) until the client closes, our
 * FIN goes after our last bytes (closing with unread input would reset the
 * connection and could lose the stream error), bounded by a grace time. */
void
xe_srv_close_conn(struct conn *c)
{
    if (c->closed || c->st == CS_CLOSING)
        return;
    if (c->sess) { /* what the login queued goes out (a held answer too) */
        xe_sess_closing(c->sess);
        xe_srv_exec(c, XE_SD_NONE);
    }
    if (c->closed)
        return;
    xe_srv_admit_release(c); /* the next login need not wait for the linger */
    c->st = CS_CLOSING;
    xe_srv_reg_cancel(c); /* a registration's answer can go no more */
    if (c->backend_inited)
        xe_stream_pause(&c->bs);
    xe_stream_close(&c->cs, CLOSE_GRACE_MS); /* (TLS close_notify first) */
}

/* A stream error to the client, then close. */
void
xe_srv_client_stream_error(struct conn *c, const char *condition, const char *text)
{
    if (c->st == CS_SPLICED && !xe_boundary_between(&c->down)) {
        /* inside one of the backend's stanzas (which will never end: the
         * backend is gone, or the client broke a limit): an error now would
         * be bad XML, so the connection just closes */
        xe_info("event=close peer=%s jid=%s reason=\"%s: %s\" (inside a stanza)", c->peer,
                c->jid ? c->jid : "-", condition, text ? text : "");
        xe_srv_close_conn(c);
        return;
    }
    if (c->sess) {
        xe_srv_exec(c, xe_sess_stream_error(c->sess, condition, text));
        return;
    } else {
        struct xe_buf b;
        xe_buf_init(&b, 0);
        xe_stream_error_xml(&b, false, NULL, NULL, condition, text);
        xe_srv_send_client(c, b.data, b.len);
        xe_buf_free(&b);
        xe_metrics_inc(XE_M_STREAM_ERRORS, condition, NULL);
        xe_info("event=stream-error peer=%s jid=%s condition=%s text=\"%s\"", c->peer,
                c->jid ? c->jid : "-", condition, text ? text : "");
    }
    xe_srv_close_conn(c);
}

void
xe_srv_fail(struct conn *c, enum xe_sess_fail f)
{
    const struct xe_sess_outcome *o = xe_sess_outcome(f);

    xe_srv_client_stream_error(c, o->condition, o->text);
}

/* ---- the client ---------------------------------------------------------- */

/* The client stream's timer: the login's timers, the PROXY header's and
 * the TLS handshake's deadlines, a pending end's (the grace at the close is
 * the stream's own), the rest of a spliced filter's parser. Corked before
 * the splice (xe_srv_stream_enter). */
static void
client_timeout(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;
    bool was_held = c->held;

    if (c->closed)
        return;
    if (c->proxy) {
        xe_srv_proxy_timeout(c);
        return;
    }
    switch (c->st) {
    case CS_CLOSING: /* (the stream's grace timer ends it) */
        return;
    case CS_SPLICED:
        if (c->end_pending) { /* the backend's stanza did not end in time */
            xe_info("event=close peer=%s jid=%s reason=\"no stanza boundary in time\"",
                    c->peer, c->jid ? c->jid : "-");
            xe_srv_close_conn(c);
        } else if (c->reg) {
            xe_srv_reg_rest(c); /* the filter's parser, when idle */
        }
        return;
    default:
        break;
    }
    if (c->st == CS_BACKEND && xe_srv_admit_timer(c))
        return;               /* (its queue deadline, or its turn came) */
    if (s->tls_handshaking) { /* the TLS handshake took too long: no error */
        xe_info("event=timeout peer=%s phase=tls", c->peer);
        xe_srv_finish_close(c);
        return;
    }
    if (c->sess == NULL)
        return;
    xe_srv_exec(c, xe_sess_timer_fired(c->sess, uv_now(c->w->loop)));
    if (was_held && !c->held && !c->closed) {
        /* the held answer went out (R2): what TLS holds (the stream's
         * resume delivers it first), then read again */
        xe_srv_resume_reading(c, true);
    }
}

static void
tls_established(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;
    struct xe_tls *tls = xe_stream_tls(s);
    char alpn[32];
    const char *sni = xe_tls_sni(tls);

    xe_metrics_inc(XE_M_TLS, xe_tls_version(tls), NULL);
    xe_debug("event=tls peer=%s version=%s cipher=%s sni=%s alpn=%s", c->peer,
             xe_tls_version(tls), xe_tls_cipher(tls), sni ? sni : "-",
             xe_tls_alpn(tls, alpn, sizeof(alpn)) ? alpn : "-");
    xe_sess_tls_up(c->sess, c->direct ? sni : NULL, uv_now(c->w->loop));
    xe_srv_exec(c, XE_SD_NONE); /* (its timer) */
    {
        struct xe_cbind cb[XE_CB_MAX];
        size_t n =
            xe_tls_channel_bindings(tls, c->gen->conf->tls13_tls_unique, cb, XE_CB_MAX);
        xe_c2s_set_channel_bindings(xe_srv_c2s(c), cb, n);
        xe_srv_fast_setup(c, cb, n); /* (FAST's HT-* bind to the same) */
        OPENSSL_cleanse(cb, sizeof(cb));
    }
    {
        /* a client certificate, verified against the domain's client_ca */
        const char *dom = c->direct ? (sni ? sni : c->gen->conf->domains[0].name)
                                    : xe_c2s_domain(xe_srv_c2s(c));
        const struct xe_domain_conf *d = dom ? xe_conf_domain(c->gen->conf, dom) : NULL;
        char(*ids)[3072];
        size_t n;

        if (d == NULL || d->client_ca == NULL)
            return;
        ids = xe_calloc(XE_MAX_PEER_IDS, sizeof(*ids));
        n = xe_tls_peer_identities(tls, d->client_identities, ids, XE_MAX_PEER_IDS);
        if (n > 0)
            xe_debug("event=client-certificate peer=%s identity=%s count=%zu", c->peer,
                     ids[0], n);
        xe_c2s_set_peer_identities(xe_srv_c2s(c), (const char(*)[3072])ids, n);
        free(ids);
    }
}

static void
start_tls(struct conn *c)
{
    struct xe_tls *t = xe_tls_new(c->gen->tls_starttls, xe_c2s_domain(xe_srv_c2s(c)));

    if (t == NULL) {
        xe_err("event=tls-error peer=%s error=\"cannot create a TLS session\"", c->peer);
        xe_srv_finish_close(c);
        return;
    }
    xe_stream_start_tls(&c->cs, t, false); /* (the machine armed tls_timeout) */
}

void
xe_srv_client_plain(struct conn *c, const char *data, size_t n)
{
    if (c->st == CS_SPLICED) {
        if (c->reg) {
            xe_srv_reg_client(c, data, n);
            return;
        }
        xe_boundary_scan(&c->up, data, n, false);
        if (c->up.stanza > c->gen->conf->max_stanza_postauth) {
            /* the stanza in progress is too large: it does not reach the
             * backend; the client's stream ends (between the backend's
             * stanzas), the backend's connection closes */
            xe_warn("event=limit peer=%s jid=%s limit=max_stanza_postauth bytes=%zu",
                    c->peer, c->jid ? c->jid : "-", c->up.stanza);
            c->up_unknown = true;
            xe_srv_end_session_fail(c, XE_SF_STANZA_TOO_LARGE);
            return;
        }
        c->bytes_up += n;
        xe_metrics_bytes(true, n);
        xe_srv_write_raw(c, false, data, n);
        return;
    }
    if (n > 0 && !c->closed && c->sess) {
        size_t used = 0;
        enum xe_sess_do d = xe_sess_client(c->sess, data, n, &used, uv_now(c->w->loop));

        data += used;
        n -= used;
        if (d == XE_SD_START_TLS && xe_sess_starttls_injection(data, n))
            xe_info("event=starttls-injection peer=%s dropped=%zu", c->peer, n);
        xe_srv_exec(c, d);
        if (d == XE_SD_START_COMPRESSION && c->zs && !c->closed && n > 0)
            xe_srv_client_input(c, data, n); /* R6: the rest is compressed */
        /* (anything else took all of it; START_TLS drops the rest, R1) */
    }
}

/* ---- the login machine's executor ------------------------------------------ */

struct xe_c2s *
xe_srv_c2s(struct conn *c)
{
    return c->sess ? xe_sess_c2s(c->sess) : NULL;
}

/* The backend failed (connect, handshake, or it sent too much): logged,
 * counted, and held against the server when it was in its handshake. */
static void
told_backend_error(struct conn *c, const char *why, bool counts)
{
    xe_metrics_inc(XE_M_BACKEND_FAILED, c->server ? c->server->name : "-", NULL);
    xe_warn("event=backend-failed peer=%s jid=%s backend=%s reason=\"%s\"", c->peer,
            c->jid ? c->jid : "-", c->server ? c->server->name : "-", why);
    if (c->bst && counts)
        xe_srv_health_result(c->srv, c->bst, false, true, why);
}

void
xe_srv_exec(struct conn *c, enum xe_sess_do d)
{
    struct xe_sess *s = c->sess;
    struct xe_buf *out;
    const char *why;
    uint64_t ms = 0;
    bool counts = false;
    enum xe_bhs_login login;
    int op;

    if (s == NULL || c->closed)
        return;
    c->held = xe_sess_held(s);
    if (c->bst && xe_sess_login_offered(s, &login)) { /* for its next logins */
        srv_lock(c->srv);
        c->bst->login = login;
        srv_unlock(c->srv);
    }
    if ((why = xe_sess_backend_error(s, &counts)) != NULL) {
        told_backend_error(c, why, counts);
        if (d != XE_SD_RETRY && c->backend_inited && !c->retrying) {
            c->backend_stopped = true; /* nothing more of it */
            xe_stream_pause(&c->bs);
        }
    }
    if (!c->ready_told && xe_sess_backend_ready(s)) {
        c->ready_told = true;
        if (c->bst)
            xe_srv_health_result(c->srv, c->bst, true, true, NULL);
    }
    out = xe_sess_to_backend(s);
    if (out->len && d != XE_SD_RETRY)
        xe_srv_write_raw(c, false, out->data, out->len);
    out = xe_sess_to_client(s);
    if (out->len)
        xe_srv_send_client(c, out->data, out->len);
    xe_sess_sent(s); /* (wipes the assertion) */
    if (c->closed)
        return;
    op = xe_sess_timer_want(s, &ms);
    if (op > 0)
        xe_stream_arm(&c->cs, ms);
    else if (op < 0)
        xe_stream_disarm(&c->cs);
    switch (d) {
    case XE_SD_NONE:
        break;
    case XE_SD_START_TLS:
        if (c->xf) { /* (not offered there: TLS is under the transform) */
            xe_srv_close_conn(c);
            break;
        }
        start_tls(c);
        break;
    case XE_SD_HOLD: /* R2: nothing is read meanwhile; the timer releases */
        xe_srv_pause_reading(c, true);
        if (op > 0)
            xe_debug("event=auth-delay peer=%s delay_ms=%llu", c->peer,
                     (unsigned long long)ms);
        break;
    case XE_SD_CONNECT:
        xe_srv_fast_after_auth(c); /* (a SASL2 login's token) */
        if (!c->closed && c->sess && xe_sess_state(s) == XE_SS_BACKEND)
            xe_srv_start_backend(c);
        break;
    case XE_SD_FAST_VERIFY:
        xe_srv_fast_verify(c);
        break;
    case XE_SD_REGISTER:
        xe_srv_reg_preauth(c);
        break;
    case XE_SD_RETRY:
        xe_srv_retry_backend(c);
        break;
    case XE_SD_START_COMPRESSION:
        /* <compressed/> went out as it is; from here both ways are zlib */
        if (xe_srv_compress_start(c) == 0) {
            struct xe_buf *z = xe_sess_compressed_rest(s);
            if (z->len > 0) { /* compressed bytes the machine parsed again */
                struct xe_buf rest = *z;
                xe_buf_init(z, 0);
                xe_srv_client_input(c, (const char *)rest.data, rest.len);
                xe_buf_free(&rest);
            }
        }
        break;
    case XE_SD_SPLICE:
        xe_srv_splice(c);
        break;
    case XE_SD_CLOSE:
        if (xe_sess_bind_refused(s))
            xe_info("event=bind-failed peer=%s jid=%s backend=%s condition=%s", c->peer,
                    c->jid, c->server ? c->server->name : "-", xe_sess_bind_refused(s));
        xe_srv_close_conn(c);
        break;
    }
}

/* The client's transform of the connection (XMPP over WebSocket,
 * struct xe_srv_xform) on the client stream's hook. */
static int
xf_in(struct xe_stream *s, void *x, const char *data, size_t len)
{
    struct conn *c = x;

    (void)s;
    c->xf->in(c, data, len);
    return 0;
}

static int
xf_out(struct xe_stream *s, void *x, const char *data, size_t len)
{
    struct conn *c = x;

    (void)s;
    c->xf->out(c, data, len);
    return 0; /* (a failure closed the connection already, and told why) */
}

static const struct xe_stream_transform xf_hook = {xf_in, xf_out, NULL};

/* Plaintext from the client (after TLS and the transform). */
static void
client_data(struct xe_stream *s, const char *data, size_t n, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    if (c->closed || c->st == CS_CLOSING)
        return;
    if (c->proxy) { /* (before TLS: the PROXY header) */
        xe_srv_proxy_input(c, data, n);
        return;
    }
    if (c->sess && !c->held) {
        /* the client spoke: before authentication the idle time starts again */
        xe_sess_client_spoke(c->sess, uv_now(c->w->loop));
        xe_srv_exec(c, XE_SD_NONE);
    }
    xe_srv_client_plain(c, data, n);
}

/* The client's side ended: its FIN, a reset, its TLS close_notify or a TLS
 * error; the connection closes (lingering for its FIN). */
static void
client_eof(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    struct conn *c = ctx;

    if (r == XE_STREAM_TLS_CLOSED)
        xe_debug("event=client-close-notify peer=%s", c->peer);
    else if (r == XE_STREAM_TLS_ERROR)
        xe_info("event=tls-failed peer=%s error=\"%s\"", c->peer,
                xe_tls_error(xe_stream_tls(s)));
    else
        xe_debug("event=client-closed peer=%s jid=%s reason=\"%s\"", c->peer,
                 c->jid ? c->jid : "-", uv_strerror(status));
    xe_srv_close_conn(c);
}

/* The client drained below its low water mark: read the backend again. */
static void
client_drained(struct xe_stream *s, void *ctx)
{
    (void)s;
    xe_srv_resume_reading(ctx, false);
}

/* The client is above its high water mark: stop reading the backend. */
static void
client_full(struct xe_stream *s, void *ctx)
{
    (void)s;
    xe_srv_pause_reading(ctx, false);
}

static const struct xe_stream_cb client_cb = {
    .tls_up = tls_established,
    .data = client_data,
    .eof = client_eof,
    .full = client_full,
    .drained = client_drained,
    .timeout = client_timeout,
    .closed = client_closed,
    .released = xe_srv_stream_released,
    .enter = xe_srv_stream_enter,
    .leave = xe_srv_stream_leave,
};

/* The peer's address into SS (zeroed: AF_UNSPEC, if there is none) and
 * formatted into OUT ("?" if none). */
static void
format_peer(uv_tcp_t *t, struct sockaddr_storage *ss, char *out, size_t len)
{
    int sl = sizeof(*ss), n = -1;
    char ip[64] = "?";

    if (uv_tcp_getpeername(t, (struct sockaddr *)ss, &sl) == 0) {
        if (ss->ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)ss, ip, sizeof(ip));
            n = snprintf(out, len, "%s:%d", ip,
                         ntohs(((struct sockaddr_in *)ss)->sin_port));
        } else {
            uv_ip6_name((struct sockaddr_in6 *)ss, ip, sizeof(ip));
            n = snprintf(out, len, "[%s]:%d", ip,
                         ntohs(((struct sockaddr_in6 *)ss)->sin6_port));
        }
    } else {
        memset(ss, 0, sizeof(*ss));
    }
    if (n < 0 || (size_t)n >= len) /* no address, or (impossibly) too long */
        snprintf(out, len, "?");
}

static void
on_reject_closed(uv_handle_t *h)
{
    free(h);
}

/* A connection refused before any byte: closed at once. Logged at most once a
 * second, with the count of those not logged, so that a flood cannot flood
 * the log. */
static void
refused(struct worker *w, const char *reason, const char *address)
{
    uint64_t now = uv_now(w->loop);

    xe_metrics_inc(XE_M_REFUSED, reason, NULL);
    if (w->refused_logged_ms && now - w->refused_logged_ms < 1000) {
        w->refused_unlogged++;
        return;
    }
    xe_warn("event=connection-refused reason=%s address=%s also_refused=%lu", reason,
            address, w->refused_unlogged);
    w->refused_logged_ms = now;
    w->refused_unlogged = 0;
}

static const char *
listener_name(const struct conn *c)
{
    return c->xf ? xe_srv_transport(c) : c->direct ? "direct_tls" : "starttls";
}

void
xe_srv_on_connection(uv_stream_t *ls, int status)
{
    struct listener *l = ls->data;
    struct xe_server *srv = l->srv;
    struct worker *w = l->w;
    struct conn *c;
    const struct xe_listener_conf *lc;
    const char *full = NULL;
    unsigned max, pre;

    if (status < 0) {
        xe_warn("event=accept-failed error=\"%s\"", uv_strerror(status));
        return;
    }
    srv_lock(srv); /* the caps count every worker's */
    xe_srv_eff_limits(srv, srv->gen->conf, &max, &pre);
    if (w->stopping)
        full = "stopping";
    else if (srv->n_conns_all >= max)
        full = "max_connections";
    else if (srv->n_preauth_all >= pre)
        full = "max_preauth_connections";
    if (full == NULL) {
        srv->n_conns_all++;
        if (++srv->n_preauth_all > srv->preauth_peak)
            srv->preauth_peak = srv->n_preauth_all;
    }
    srv_unlock(srv);
    if (full) {
        /* closed at once: no TLS, no parser, no timer. Before its header
         * a client cannot be sent a stream error (nor before a handshake
         * on Direct TLS), and answering one would spend what the caps
         * protect; the client sees the connection close and retries. */
        uv_tcp_t *t = xe_malloc(sizeof(*t));
        struct sockaddr_storage ss;
        char peer[64] = "-";
        uv_tcp_init(w->loop, t);
        if (uv_accept(ls, (uv_stream_t *)t) == 0) {
            if (strcmp(full, "stopping") != 0)
                format_peer(t, &ss, peer, sizeof(peer));
            refused(w, full, peer);
        }
        uv_close((uv_handle_t *)t, on_reject_closed);
        return;
    }
    c = xe_calloc(1, sizeof(*c));
    c->srv = srv;
    c->w = w;
    c->preauth = true; /* counted above */
    srv_lock(srv);
    c->gen = xe_srv_gen_ref(srv->gen);
    c->id = ++srv->next_id;
    srv_unlock(srv);
    /* the listener's settings (proxy_protocol, proxy_from) of the current
     * generation: a reload keeps the listeners, in their order */
    lc = &c->gen->conf->listeners[l - w->listeners];
    c->direct = lc->kind == XE_LISTEN_DIRECT_TLS ||
                (lc->kind == XE_LISTEN_WEBSOCKET && lc->ws->tls);
    {
        struct xe_stream_limits lim = xe_srv_limits(c);
        xe_stream_init(&c->cs, w->loop, false, &w->slab, &lim, &client_cb, c);
    }
    c->cs.linger = true;
    c->streams = 1;
    xe_buf_init(&c->zin, XE_MAX_INFLATE_PENDING);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    if (xe_stream_accept(&c->cs, ls) != 0) {
        xe_srv_finish_close(c);
        return;
    }
    /* (c->sa: the socket's peer, until a PROXY header or X-Forwarded-For
     * says otherwise; one getpeername per connection) */
    format_peer(&c->cs.u.tcp, &c->sa, c->peer, sizeof(c->peer));
    c->accepted_ms = uv_now(w->loop);
    c->since = (int64_t)time(NULL);
    if (lc->kind == XE_LISTEN_WEBSOCKET && xe_srv_ws_accept(c, lc) < 0)
        return;
    xe_metrics_inc(XE_M_ACCEPTED, listener_name(c), NULL);
    if (lc->proxy_protocol) {
        xe_srv_proxy_accept(c, lc); /* conn_start once the header is read */
        return;
    }
    xe_srv_conn_start(c);
}

/* The connection's own life begins: at the accept, or once a trusted
 * proxy's header has said whose connection it is (c->sa). */
void
xe_srv_conn_start(struct conn *c)
{
    struct xe_server *srv = c->srv;
    struct xe_sess_params p;

    {
        int sl = sizeof(c->sa);
        enum xe_addrlimit_result ar = XE_AL_OK;
        char key[64] = "-";
        bool later = false;

        /* (plain ws from a trusted proxy: counted at the Upgrade, as the
         * client X-Forwarded-For names) */
        if (c->sa.ss_family != AF_UNSPEC ||
            uv_tcp_getpeername(&c->cs.u.tcp, (struct sockaddr *)&c->sa, &sl) == 0) {
            later = c->xf && xe_srv_ws_count_later(c);
            if (!later)
                ar = xe_addrlimit_acquire(srv->al, (struct sockaddr *)&c->sa,
                                          uv_now(c->w->loop), key, sizeof(key));
        }
        if (ar != XE_AL_OK) {
            refused(c->w, xe_addrlimit_result_name(ar), key);
            xe_srv_finish_close(c);
            return;
        }
        c->counted = !later;
        snprintf(c->addr_key, sizeof(c->addr_key), "%s", key);
    }
    uv_tcp_nodelay(&c->cs.u.tcp, 1);
    /* the WebSocket transform on the client stream's hook: from here (a
     * PROXY header before it is the connection's, not the transform's) */
    if (c->xf)
        xe_stream_set_transform(&c->cs, &xf_hook, c);
    p.conf = c->gen->conf;
    p.direct_tls = c->direct;
    /* (plain ws: encrypted when the operator says its proxy terminated TLS) */
    p.encrypted = c->xf && xe_srv_ws_encrypted(c);
    p.peer = c->peer;
    p.transport = xe_srv_transport(c);
    p.guard = &xe_srv_lockout_guard;
    p.guard_ctx = c;
    c->sess = xe_sess_new(&p, uv_now(c->w->loop));
    if (c->sess == NULL) {
        xe_srv_finish_close(c);
        return;
    }
    if (c->direct) {
        struct xe_tls *t = xe_tls_new(c->xf ? c->gen->tls_ws : c->gen->tls_direct, NULL);
        if (t == NULL || xe_stream_start_tls(&c->cs, t, false) < 0) {
            xe_srv_finish_close(c);
            return;
        }
    }
    xe_srv_exec(c, XE_SD_NONE); /* the first timer: TLS, or the auth deadline */
    xe_debug("event=accept peer=%s listener=%s", c->peer, listener_name(c));
    xe_stream_start(&c->cs);
}
