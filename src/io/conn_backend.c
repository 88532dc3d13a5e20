/* xedge: the backend side of a c2s connection: choice of the server
 * (pin, hash, least connections), connect, retry, the backend handshake, the
 * splice, and the in-band registration filter after authentication.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

static void connect_backend(struct conn *c, bool retry);
static void backend_go(struct conn *c, bool retry);
static int admit_enter(struct conn *c, bool retry);
static void deliver_end(struct conn *c);

/* ---- the backend --------------------------------------------------------- */

/* End a spliced session with a stream error of ours, between two of the
 * backend's stanzas: now if it is between them, else when its current
 * stanza ends (bounded by the close grace timer). Other sessions: at once. */
void
xe_srv_end_session_fail(struct conn *c, enum xe_sess_fail f)
{
    const struct xe_sess_outcome *o = xe_sess_outcome(f);

    xe_srv_end_session(c, o->condition, o->text);
}

void
xe_srv_end_session(struct conn *c, const char *condition, const char *text)
{
    if (c->closed || c->st == CS_CLOSING)
        return;
    if (c->st != CS_SPLICED) {
        xe_srv_client_stream_error(c, condition, text);
        return;
    }
    if (c->end_pending)
        return;
    xe_buf_init(&c->end_xml, 0);
    xe_stream_error_xml(&c->end_xml, false, NULL, NULL, condition, text);
    xe_metrics_inc(XE_M_STREAM_ERRORS, condition, NULL);
    xe_info("event=stream-error peer=%s jid=%s condition=%s text=\"%s\"", c->peer,
            c->jid ? c->jid : "-", condition, text ? text : "");
    c->end_pending = true;
    /* xedge going away is not the client logging out: the backend sees the
     * connection drop, as on a network failure, and keeps what it keeps for
     * a client that will come back (a XEP-0198 session to resume through
     * another or the restarted xedge) instead of a closed stream */
    c->end_keep_backend = strcmp(condition, "system-shutdown") == 0;
    xe_stream_pause(&c->cs); /* nothing more goes up (end_pending: for good) */
    if (xe_boundary_between(&c->down)) {
        deliver_end(c);
        return;
    }
    xe_stream_arm(&c->cs, CLOSE_GRACE_MS);
}

/* The backend is between stanzas: our stream error, the end of its stream
 * too when the client's side is between stanzas, then close. */
static void
deliver_end(struct conn *c)
{
    if (c->reg) {
        struct xe_buf down;
        xe_buf_init(&down, 0);
        xe_regsplice_flush(c->reg, &down, false); /* answers due at this boundary */
        xe_srv_send_client(c, down.data, down.len);
        xe_buf_free(&down);
    }
    xe_srv_send_client(c, c->end_xml.data, c->end_xml.len);
    xe_buf_free(&c->end_xml);
    c->end_pending = false;
    if (!c->end_keep_backend && !c->up_unknown && xe_boundary_between(&c->up) &&
        c->backend_inited)
        xe_srv_write_raw(c, false, "</stream:stream>", 16);
    xe_srv_close_conn(c);
}

/* The login machine says another server may take the login: choose
 * again, and reopen the backend stream for it (a TCP or a unix socket) once
 * the failed connection is closed. */
void
xe_srv_retry_backend(struct conn *c)
{
    xe_info("event=backend-retry peer=%s jid=%s failed=%s attempt=%u", c->peer, c->jid,
            c->server->name, xe_sess_retried(c->sess) + 1);
    xe_srv_admit_release(c); /* (the next server's admission decides) */
    if (c->bst) {
        srv_lock(c->srv);
        c->bst->st.sessions--;
        srv_unlock(c->srv);
        c->bst = NULL;
    }
    connect_backend(c, true);
}

/* ---- in-band registration after authentication ---------------------------
 * On a domain with `register`, the spliced client stream is read element by
 * element (xe_regsplice) so that xedge answers jabber:iq:register requests;
 * our answers go to the client between two of the backend's stanzas.
 * Elsewhere the pump stays a raw byte splice. */

static int
reg_start(struct conn *c)
{
    const char *domain = xe_c2s_domain(xe_srv_c2s(c));
    struct xe_regsplice_params p;

    if (!xe_register_postauth(c->gen->conf, domain))
        return 0;
    p.conf = c->gen->conf;
    p.domain = domain;
    p.jid = c->jid;
    p.peer = c->peer;
    p.anonymous = xe_c2s_anonymous(xe_srv_c2s(c));
    p.header = xe_c2s_restart_header(xe_srv_c2s(c), &p.header_len);
    c->reg = xe_regsplice_new(&p);
    if (c->reg == NULL) {
        xe_err("event=register-error peer=%s jid=%s error=\"cannot parse the client's "
               "stream header again\"",
               c->peer, c->jid);
        xe_srv_fail(c, XE_SF_REGISTER_INTERNAL);
        return -1;
    }
    return 0;
}

/* Client bytes: what is not ours goes to the backend; our answers to the
 * client when the backend's stream allows. */

void
xe_srv_reg_client(struct conn *c, const char *data, size_t n)
{
    struct xe_buf up;

    xe_buf_init(&up, 0);
    xe_srv_reg_deliver(c, xe_regsplice_client(c->reg, data, n, &up), &up);
    xe_buf_free(&up);
}

/* The filter has had the client's bytes: its parser rests once the client
 * has been quiet for XE_REGSPLICE_REST_MS (the client stream's timer, armed
 * by the first read after a rest or an expiry and looked at when it
 * expires: the reads between cost a store, not a timer operation). A
 * resting filter's white space keepalives arm nothing. The timer is the
 * pending end's when there is one. */
static void
reg_used(struct conn *c)
{
    if (c->closed || c->st != CS_SPLICED || c->reg == NULL)
        return;
    c->reg_used_ms = uv_now(c->w->loop);
    if (xe_regsplice_resting(c->reg))
        return;
    if (!c->reg_rest_armed && !c->end_pending) {
        c->reg_rest_armed = true;
        xe_stream_arm(&c->cs, XE_REGSPLICE_REST_MS);
    }
}

void
xe_srv_reg_rest(struct conn *c)
{
    uint64_t quiet = uv_now(c->w->loop) - c->reg_used_ms;

    if (!c->reg_rest_armed)
        return;
    c->reg_rest_armed = false;
    if (quiet < XE_REGSPLICE_REST_MS) {
        c->reg_rest_armed = true;
        xe_stream_arm(&c->cs, XE_REGSPLICE_REST_MS - quiet);
        return;
    }
    /* not between stanzas (a stanza sent in part, a request's job): the
     * next bytes arm the timer again */
    if (!xe_regsplice_resting(c->reg) && xe_regsplice_rest(c->reg))
        xe_debug("event=register-rest peer=%s jid=%s", c->peer, c->jid);
}

/* What the filter gave: UP to the backend, our answers due to the client;
 * a request's job started (conn_register.c), or the close. */
void
xe_srv_reg_deliver(struct conn *c, enum xe_rs_result r, struct xe_buf *upb)
{
    struct xe_buf up = *upb, down;

    xe_buf_init(&down, 0);
    if (up.len) {
        c->bytes_up += up.len;
        xe_metrics_bytes(true, up.len);
        xe_srv_write_raw(c, false, up.data, up.len);
    }
    if (!c->closed) {
        xe_regsplice_flush(c->reg, &down, r == XE_RS_CLOSE);
        xe_srv_send_client(c, down.data, down.len);
    }
    xe_buf_free(&down);
    if (r == XE_RS_JOB && !c->closed)
        xe_srv_reg_postauth(c);
    if (r == XE_RS_CLOSE && xe_regsplice_removed(c->reg))
        xe_srv_end_account_async(c->srv, c->jid); /* the account's other sessions */
    if (r == XE_RS_CLOSE)
        xe_srv_close_conn(c);
    else
        reg_used(c);
}

static void
reg_backend(struct conn *c, const char *data, size_t n)
{
    struct xe_buf down;

    xe_buf_init(&down, 0);
    if (xe_regsplice_backend(c->reg, data, n, &down) == 0)
        xe_srv_send_client(c, down.data, down.len);
    xe_buf_free(&down);
}

/* Negotiation is over (the login machine said SPLICE): from here bytes are
 * pumped, and the machine is gone. */
void
xe_srv_splice(struct conn *c)
{
    struct xe_buf to_client, to_backend;

    if (reg_start(c) < 0)
        return;
    xe_srv_admit_release(c); /* the login is done: the next may start */
    xe_metrics_login_duration(uv_now(c->w->loop) - c->accepted_ms);
    {
        struct xe_tls *t = xe_stream_tls(&c->cs);
        xe_info("event=session peer=%s jid=%s mech=%s path=%s tls=%s backend=%s%s",
                c->peer, c->jid, xe_c2s_mech(xe_srv_c2s(c)), xe_srv_login_path(c),
                t ? xe_tls_version(t) : "none", c->server->name,
                c->zs ? " compression=zlib" : "");
        snprintf(c->mech, sizeof(c->mech), "%s", xe_c2s_mech(xe_srv_c2s(c)));
        xe_srv_keep_user_agent(c); /* (SASL2: for xedgectl session list) */
        xe_metrics_inc(XE_M_LOGIN_PATHS, xe_srv_login_path(c), NULL);
        c->tls_version = t ? xe_tls_version(t) : "none";
    }
    /* what each side sent beyond the login (R7); then free the parsers and
     * SASL state */
    xe_sess_take_pending(c->sess, &to_client, &to_backend);
    xe_sess_free(&c->sess);
    c->held = false;
    xe_stream_disarm(&c->cs);
    c->st = CS_SPLICED;
    /* both streams are between stanzas here: the backend has just sent its
     * features (or its bind result), the client its header (or its iq) */
    xe_boundary_init(&c->down, 1);
    xe_boundary_init(&c->up, 1);
    c->up_unknown = c->reg != NULL;
    xe_boundary_scan(&c->down, to_client.data, to_client.len, false);
    if (!c->reg)
        xe_boundary_scan(&c->up, to_backend.data, to_backend.len, false);
    if (to_client.len && c->reg)
        reg_backend(c, (const char *)to_client.data, to_client.len);
    else if (to_client.len)
        xe_srv_send_client(c, to_client.data, to_client.len);
    if (to_backend.len && c->reg && !c->closed && c->st == CS_SPLICED) {
        xe_srv_reg_client(c, (const char *)to_backend.data, to_backend.len);
    } else if (to_backend.len && !c->reg) {
        c->bytes_up += to_backend.len;
        xe_metrics_bytes(true, to_backend.len);
        xe_srv_write_raw(c, false, to_backend.data, to_backend.len);
    }
    xe_buf_free(&to_client);
    xe_buf_free(&to_backend);
    reg_used(c); /* (a client quiet from the start rests it too) */
}

static void
remember_tail(struct conn *c, const char *data, size_t n)
{
    if (n >= sizeof(c->tail)) {
        memcpy(c->tail, data + n - sizeof(c->tail), sizeof(c->tail));
        c->tail_len = sizeof(c->tail);
    } else {
        size_t keep =
            c->tail_len + n > sizeof(c->tail) ? sizeof(c->tail) - n : c->tail_len;
        memmove(c->tail, c->tail + c->tail_len - keep, keep);
        memcpy(c->tail + keep, data, n);
        c->tail_len = keep + n;
    }
}

static bool
backend_closed_stream(const struct conn *c)
{
    static const char end[] = "</stream:stream>";
    size_t l = sizeof(end) - 1;
    return c->tail_len >= l && memcmp(c->tail + c->tail_len - l, end, l) == 0;
}

/* The backend's side ended (its FIN or an error). */
static void
backend_eof(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    struct conn *c = ctx;
    const char *err = r == XE_STREAM_EOF ? "end of file" : uv_strerror(status);

    (void)s;
    if (c->closed)
        return;
    if (c->st == CS_SPLICED) {
        if (backend_closed_stream(c)) {
            xe_debug("event=backend-closed peer=%s jid=%s", c->peer, c->jid);
            xe_srv_close_conn(c);
        } else {
            const struct xe_sess_outcome *o = xe_sess_outcome(XE_SF_BACKEND_LOST);

            if (o->backend_lost)
                xe_metrics_inc(XE_M_BACKEND_LOST, c->server->name, NULL);
            xe_warn("event=%s peer=%s jid=%s backend=%s error=\"%s\"", o->event, c->peer,
                    c->jid, c->server->name, err);
            xe_srv_fail(c, XE_SF_BACKEND_LOST);
        }
    } else if (c->st == CS_BACKEND && c->sess) {
        xe_srv_exec(c,
                    xe_sess_backend(c->sess, "", 0,
                                    r == XE_STREAM_EOF ? "backend closed the connection "
                                                         "during the handshake"
                                                       : err));
    }
}

/* Bytes from the backend: its handshake, then what it sends until the
 * client is answered (the login machine's); once spliced, the pump: on to
 * the client from the read slab, no copy but what the socket does not
 * take. Corked before the splice (xe_srv_stream_enter). */
static void
backend_data(struct xe_stream *s, const char *data, size_t n, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    if (c->closed)
        return;
    if (c->st == CS_SPLICED) {
        size_t len = n;
        /* with an end pending, up to the end of the current stanza only */
        if (c->end_pending)
            len = xe_boundary_scan(&c->down, data, len, true);
        else
            xe_boundary_scan(&c->down, data, len, false);
        remember_tail(c, data, len);
        if (c->reg)
            reg_backend(c, data, len);
        else
            xe_srv_send_client(c, data, len);
        if (c->end_pending && !c->closed && xe_boundary_between(&c->down))
            deliver_end(c);
        return;
    }
    if (c->st == CS_BACKEND && c->sess)
        xe_srv_exec(c, xe_sess_backend(c->sess, data, n, NULL));
}

static void
backend_connected(struct xe_stream *s, int status, void *ctx)
{
    struct conn *c = ctx;

    if (c->closed || c->retrying || c->sess == NULL)
        return;
    if (status < 0) {
        xe_srv_exec(c, xe_sess_connected(c->sess, false, uv_strerror(status)));
        return;
    }
    if (!c->server->unix_socket)
        uv_tcp_nodelay(&s->u.tcp, 1);
    if (c->proxy_out)
        xe_srv_proxy_send(c);
    /* our stream header (the machine's), then read */
    xe_srv_exec(c, xe_sess_connected(c->sess, true, NULL));
    if (!c->closed)
        xe_stream_start(s);
}

/* The backend drained below its low water mark: what inflating held back
 * first, then read the client again. */
static void
backend_drained(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    if (c->st == CS_CLOSING || c->closed)
        return;
    if (c->zstalled) {
        xe_srv_inflate_held(c); /* before reading more from the client */
        if (c->closed || c->st == CS_CLOSING)
            return;
    }
    xe_srv_resume_reading(c, true);
}

/* The backend is above its high water mark: stop reading the client. */
static void
backend_full(struct xe_stream *s, void *ctx)
{
    (void)s;
    xe_srv_pause_reading(ctx, true);
}

/* The backend stream closed: by the connection's close (LOCAL), or on its
 * own (a write failed, the hard cap): then the connection closes. */
static void
backend_closed(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx)
{
    struct conn *c = ctx;

    if (c->closed || r == XE_STREAM_LOCAL)
        return;
    if (r == XE_STREAM_HARD_CAP)
        xe_warn("event=buffer-cap peer=%s jid=%s side=backend queued=%zu", c->peer,
                c->jid ? c->jid : "-", xe_stream_queued(s));
    else
        xe_debug("event=write-failed peer=%s side=backend error=\"%s\"", c->peer,
                 status ? uv_strerror(status) : xe_stream_reason_name(r));
    xe_srv_finish_close(c);
}

static const struct xe_stream_cb backend_cb = {
    .connected = backend_connected,
    .data = backend_data,
    .eof = backend_eof,
    .full = backend_full,
    .drained = backend_drained,
    .closed = backend_closed,
    .released = xe_srv_stream_released,
    .enter = xe_srv_stream_enter,
    .leave = xe_srv_stream_leave,
};

/* The index of the server the operator pinned the user to (xedgectl user
 * pin), if it is in the pool; XE_POOL_NONE: none, or it is gone (then the
 * hash decides). */
static size_t
pinned_server(struct conn *c, const struct xe_pool_conf *pool, const char *jid)
{
    size_t s = XE_POOL_NONE;
    struct xe_user *u;
    char *err = NULL;

    if (c->srv->store == NULL || xe_c2s_anonymous(xe_srv_c2s(c)))
        return XE_POOL_NONE;
    u = xe_calloc(1, sizeof(*u));
    if (xe_userstore_get(c->srv->store, jid, u, &err) == XE_US_OK && u->pin[0]) {
        for (size_t i = 0; i < pool->n_servers && s == XE_POOL_NONE; i++)
            if (strcmp(pool->servers[i].name, u->pin) == 0)
                s = i;
        if (s == XE_POOL_NONE)
            xe_warn("event=pin-ignored peer=%s jid=%s pin=%s reason=\"no such server in "
                    "pool %s\"",
                    c->peer, jid, u->pin, pool->name);
    }
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
    free(err);
    return s;
}

void
xe_srv_start_backend(struct conn *c)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_domain_conf *d = xe_conf_domain(conf, xe_c2s_domain(xe_srv_c2s(c)));
    const struct xe_pool_conf *pool = d->pool;
    const char *jid = xe_c2s_jid(xe_srv_c2s(c));
    size_t pin = XE_POOL_NONE;

    c->jid = xe_strdup(jid);
    c->pool = pool;
    c->st = CS_BACKEND;
    xe_srv_preauth_end(c); /* authenticated: no longer held against the pre-auth cap */
    if (pool->policy == XE_POLICY_STICKY)
        pin = pinned_server(c, pool, jid);
    c->pin = pin;
    connect_backend(c, false);
}

/* The identity assertion could not be made: told as a failure of the
 * server chosen, as a handshake failure would be. */
static void
told_assertion_failed(struct conn *c)
{
    static const char why[] = "cannot make the identity assertion";

    xe_metrics_inc(XE_M_BACKEND_FAILED, c->server ? c->server->name : "-", NULL);
    xe_warn("event=backend-failed peer=%s jid=%s backend=%s reason=\"%s\"", c->peer,
            c->jid ? c->jid : "-", c->server ? c->server->name : "-", why);
    if (c->bst)
        xe_srv_health_result(c->srv, c->bst, false, true, why);
}

/* Connect the backend stream to the server chosen (c->server). */
static void
backend_open(struct conn *c)
{
    struct sockaddr_storage ss;
    const struct xe_server_conf *sc = c->server;
    int r = 0;

    if (sc->unix_socket) {
        xe_stream_connect_pipe(&c->bs, sc->host); /* errors reach the callback */
    } else if (uv_ip4_addr(sc->host, sc->port, (struct sockaddr_in *)&ss) != 0 &&
               uv_ip6_addr(sc->host, sc->port, (struct sockaddr_in6 *)&ss) != 0) {
        r = UV_EINVAL;
    } else {
        r = xe_stream_connect_tcp_reading(&c->bs, (struct sockaddr *)&ss);
    }
    if (r < 0) {
        xe_srv_exec(c, xe_sess_connected(c->sess, false, uv_strerror(r)));
        return;
    }
    xe_debug("event=backend-connect peer=%s jid=%s backend=%s", c->peer, c->jid,
             c->server->name);
}

/* The failed connection is closed: the one to the next server. */
static void
backend_reopened(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    c->retrying = false;
    if (c->closed || c->sess == NULL || xe_sess_state(c->sess) != XE_SS_BACKEND)
        return;
    if (c->adm == ADM_QUEUED || c->adm == ADM_READY)
        return; /* (backend_go opens it when the login's turn comes) */
    c->backend_stopped = false;
    backend_open(c);
}

/* Choose a server of the connection's pool (none it already tried) and open
 * the backend connection to it; on a RETRY, the failed one closes first
 * (its stream is reopened, of the new server's kind). */
static void
connect_backend(struct conn *c, bool retry)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_pool_conf *pool = c->pool;
    const char *jid = c->jid;
    size_t off = c->gen->pool_off[pool - conf->pools], i;
    const char *why = NULL;
    uint64_t tried = xe_sess_tried(c->sess);

    srv_lock(c->srv); /* the servers' states are shared by the workers */
    {
        /* the servers tried already count as down for this choice */
        struct xe_server_state tried_state = {0}; /* up = false */
        struct xe_server_state **st = xe_calloc(pool->n_servers, sizeof(*st));
        for (size_t k = 0; k < pool->n_servers; k++) {
            /* a server back up lately gets part of its weight (slow start) */
            xe_pool_slow_start(c->gen->st[off + k], uv_now(c->w->loop),
                               pool->health.slow_start_ms);
            st[k] = k < 64 && (tried & (UINT64_C(1) << k)) ? &tried_state
                                                           : c->gen->st[off + k];
        }
        i = xe_pool_choose(pool, st, jid, c->pin, &why);
        free(st);
    }
    if (i != XE_POOL_NONE) {
        c->bst = c->gen->bs[off + i];
        c->bst->st.sessions++;
    }
    srv_unlock(c->srv);
    if (i == XE_POOL_NONE) {
        xe_metrics_inc(XE_M_BACKEND_FAILED, "-", NULL);
        xe_warn("event=backend-unavailable peer=%s jid=%s pool=%s reason=\"%s\"", c->peer,
                jid, pool->name, why);
        xe_srv_exec(c, xe_sess_backend_begin(c->sess, pool, XE_SESS_NO_SERVER, NULL, NULL,
                                             pool->policy == XE_POLICY_STICKY &&
                                                     pool->on_down != XE_ON_DOWN_NEXT
                                                 ? XE_SF_USER_SERVER_DOWN
                                                 : XE_SF_BACKEND_UNAVAILABLE));
        return;
    }
    c->server = &pool->servers[i];
    c->proxy_out = pool->proxy_protocol;
    if (retry) { /* nothing more to or from the failed server */
        c->retrying = true;
        xe_stream_reopen_as(&c->bs, c->server->unix_socket, backend_reopened);
    }
    if (admit_enter(c, retry) < 0)
        return; /* (queued, or refused) */
    backend_go(c, retry);
}

/* ---- admission control (admit.h) -------------------------------------------
 * At most pools[].max_pending_logins logins in progress per server (this
 * worker's share); the others wait in its FIFO, at most max_queued_logins,
 * each until the client's login deadline. The backend's own timer starts
 * when the login leaves the queue (xe_sess_backend_begin), so that time in
 * the queue is never held against the server's health. */

/* This worker's admission at server B (under the server's lock). */
static struct xe_admit *
admit_of(struct conn *c, struct bstate *b)
{
    const struct xe_pool_conf *p = c->pool;
    unsigned w = c->w->index;
    struct xe_admit *a;

    if (b->adm == NULL) {
        b->n_adm = c->srv->n_workers ? c->srv->n_workers : 1;
        b->adm = xe_calloc(b->n_adm, sizeof(*b->adm));
    }
    if (w >= b->n_adm)
        return NULL;
    a = &b->adm[w];
    a->max_pending = xe_admit_share(p->max_pending_logins, w, b->n_adm);
    a->max_queued = xe_admit_share(p->max_queued_logins, w, b->n_adm);
    return a;
}

/* The login asks for a slot at c->bst's server: 0 it has one (go on), -1
 * it waits (its turn: xe_srv_admit_timer) or was refused (told). */
static int
admit_enter(struct conn *c, bool retry)
{
    struct xe_admit *a;
    enum xe_admit_r r = XE_ADMIT_GO;
    unsigned pending = 0, queued = 0;

    c->adw.ctx = c;
    srv_lock(c->srv);
    a = admit_of(c, c->bst);
    if (a != NULL) {
        r = xe_admit_enter(a, &c->adw);
        pending = a->pending;
        queued = a->queued;
    }
    srv_unlock(c->srv);
    if (a == NULL)
        return 0;
    c->adm_b = c->bst;
    if (r == XE_ADMIT_GO) {
        c->adm = ADM_PENDING;
        return 0;
    }
    if (r == XE_ADMIT_FULL) {
        const struct xe_sess_outcome *o = xe_sess_outcome(XE_SF_QUEUE_FULL);

        c->adm_b = NULL;
        xe_metrics_inc(XE_M_BACKEND_QUEUE_REFUSED, c->pool->name, c->server->name);
        xe_warn("event=%s peer=%s jid=%s pool=%s backend=%s pending=%u queued=%u "
                "max_queued_logins=%u",
                o->event, c->peer, c->jid, c->pool->name, c->server->name, pending,
                queued, c->pool->max_queued_logins);
        xe_srv_exec(c, xe_sess_backend_begin(c->sess, c->pool, XE_SESS_NO_SERVER, NULL,
                                             NULL, XE_SF_QUEUE_FULL));
        return -1;
    }
    /* it waits, within the client's login deadline (at least the connect
     * time it would have had without the queue) */
    {
        uint64_t now = uv_now(c->w->loop), dl = xe_sess_auth_deadline(c->sess);
        uint64_t min = now + c->gen->conf->backend_connect_ms;

        if (dl < min)
            dl = min;
        c->adm = ADM_QUEUED;
        c->adm_retry = retry;
        c->adm_since_ms = now;
        xe_stream_arm(&c->cs, dl - now);
        xe_debug("event=backend-queued peer=%s jid=%s backend=%s pending=%u queued=%u "
                 "wait_max_ms=%llu",
                 c->peer, c->jid, c->server->name, pending, queued,
                 (unsigned long long)(dl - now));
    }
    return -1;
}

void
xe_srv_admit_release(struct conn *c)
{
    struct xe_admit_wait *next = NULL;
    struct xe_admit *a;

    if (c->adm == ADM_NONE || c->adm_b == NULL) {
        c->adm = ADM_NONE;
        return;
    }
    srv_lock(c->srv);
    a = &c->adm_b->adm[c->w->index];
    if (c->adm == ADM_QUEUED)
        xe_admit_cancel(a, &c->adw);
    else
        next = xe_admit_leave(a);
    srv_unlock(c->srv);
    c->adm = ADM_NONE;
    c->adm_b = NULL;
    if (next != NULL) {
        /* its turn: started from its own timer, off this caller's stack
         * (this may be another connection's close or splice) */
        struct conn *n = next->ctx;
        n->adm = ADM_READY;
        xe_stream_arm(&n->cs, 0);
    }
}

bool
xe_srv_admit_timer(struct conn *c)
{
    if (c->adm == ADM_READY) {
        c->adm = ADM_PENDING;
        xe_debug("event=backend-dequeued peer=%s jid=%s backend=%s waited_ms=%llu",
                 c->peer, c->jid, c->server->name,
                 (unsigned long long)(uv_now(c->w->loop) - c->adm_since_ms));
        backend_go(c, c->adm_retry);
        return true;
    }
    if (c->adm != ADM_QUEUED)
        return false;
    {
        const struct xe_sess_outcome *o = xe_sess_outcome(XE_SF_QUEUE_TIMEOUT);
        xe_srv_admit_release(c);
        xe_warn("event=%s peer=%s jid=%s pool=%s backend=%s waited_ms=%llu", o->event,
                c->peer, c->jid, c->pool->name, c->server->name,
                (unsigned long long)(uv_now(c->w->loop) - c->adm_since_ms));
        xe_srv_exec(c, xe_sess_backend_begin(c->sess, c->pool, XE_SESS_NO_SERVER, NULL,
                                             NULL, XE_SF_QUEUE_TIMEOUT));
    }
    return true;
}

/* The login has its slot at c->server: the identity assertion, the backend
 * script (its timer starts here), the connection. */
static void
backend_go(struct conn *c, bool retry)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_pool_conf *pool = c->pool;
    const char *jid = c->jid;
    char token[XE_ASSERTION_MAX], *local;
    size_t i = (size_t)(c->server - pool->servers);

    /* the purpose tells the backend an anonymous session from a user's */
    if (xe_assertion_make(pool->secret, pool->secret_len,
                          xe_c2s_anonymous(xe_srv_c2s(c)) ? "c2s-anonymous" : "c2s", jid,
                          xe_now_seconds() + conf->assertion_lifetime_s, NULL, token,
                          sizeof(token)) < 0) {
        told_assertion_failed(c);
        xe_srv_exec(c, xe_sess_backend_begin(c->sess, pool, XE_SESS_NO_SERVER, NULL, NULL,
                                             XE_SF_BACKEND_UNAVAILABLE));
        return;
    }
    local = xe_strndup(jid, (size_t)(strchr(jid, '@') - jid));
    srv_lock(c->srv);
    xe_sess_set_login_ahead(c->sess, c->bst->login);
    srv_unlock(c->srv);
    /* the backend script (session.h: the machine keeps it) */
    xe_srv_exec(c, xe_sess_backend_begin(c->sess, pool, i, local, token, XE_SF_NONE));
    OPENSSL_cleanse(token, sizeof(token));
    free(local);
    if (c->closed || c->sess == NULL || xe_sess_state(c->sess) != XE_SS_BACKEND)
        return;
    if (retry) {
        if (c->retrying)
            return;                 /* (backend_reopened goes on) */
        c->backend_stopped = false; /* (it reopened while the login waited) */
        backend_open(c);
        return;
    }
    {
        struct xe_stream_limits lim = xe_srv_limits(c);
        xe_stream_init(&c->bs, c->w->loop, c->server->unix_socket, &c->w->slab, &lim,
                       &backend_cb, c);
    }
    c->backend_inited = true;
    c->streams++;
    backend_open(c);
}
