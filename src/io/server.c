/* xedge: the I/O glue on libuv. See server.h.
 *
 * A connection moves through: negotiating (plaintext or TLS, the c2s core
 * parses) -> backend (the backend handshake runs while the client restarts
 * its stream) -> spliced (bytes pumped both ways, no parsing) -> closing.
 * Until the splice the login machine (src/core/session.h) decides every
 * step; the glue carries out its actions (conn.c, xe_srv_exec).
 * Handles are embedded in struct conn; it is freed in the last close
 * callback. The glue is split by concern (server_impl.h names the files);
 * this one holds the workers (one libuv loop each), start, reload, stop and
 * graceful shutdown, and the control socket's views (sessions, kick, stats,
 * backends, drain). */
#include "config.h"

#include "server_impl.h"
#include "register_io.h"
#include "tokens_io.h"

static void acct_async_init(struct xe_server *srv);
static void log_limits(const struct xe_server *srv, const struct xe_conf *conf,
                       const char *when);

/* ---- the workers ------------------------------------------------------------ */

static void
wcall_unref(struct wcall *k)
{
    bool last;

    uv_mutex_lock(&k->mu);
    last = --k->refs == 0;
    uv_mutex_unlock(&k->mu);
    if (!last)
        return;
    for (unsigned i = 0; i < k->n_out; i++)
        xe_buf_free(&k->out[i]);
    free(k->out);
    uv_cond_destroy(&k->cv);
    uv_mutex_destroy(&k->mu);
    free(k->arg);
    free(k->n);
    free(k->answered);
    free(k);
}

/* Worker W runs call K's function on its loop and answers. */
static void
wcall_answer(struct worker *w, struct wcall *k)
{
    size_t n = k->fn(w, k->arg, &k->out[w->index]);

    uv_mutex_lock(&k->mu);
    k->n[w->index] = n;
    k->answered[w->index] = true;
    k->pending--;
    uv_cond_signal(&k->cv);
    uv_mutex_unlock(&k->mu);
    wcall_unref(k);
}

static void
on_worker_async(uv_async_t *a)
{
    struct worker *w = a->data;
    struct wjob *jobs, *fifo = NULL;

    uv_mutex_lock(&w->qmu);
    jobs = w->jobs;
    w->jobs = NULL;
    uv_mutex_unlock(&w->qmu);
    while (jobs) { /* queued newest first: answer in order */
        struct wjob *j = jobs;
        jobs = j->next;
        j->next = fifo;
        fifo = j;
    }
    while (fifo) {
        struct wjob *j = fifo;
        fifo = j->next;
        wcall_answer(w, j->call);
        free(j);
    }
}

/* Run FN(worker, ARG, out) on every worker's own loop (worker 0's here, on
 * the main thread, the others' through their async handle), wait for their
 * answers (at most XE_WORKER_ANSWER_MS), append their outputs to OUT (may be
 * NULL) in worker order, and return the sum of what FN returned. A worker
 * that does not answer in time is left out, and logged. Never called with
 * srv->mu held (the workers may need it to answer). */
static size_t
on_workers(struct xe_server *srv, worker_fn fn, const char *arg, struct xe_buf *out)
{
    struct wcall *k = xe_calloc(1, sizeof(*k));
    unsigned nw = srv->n_workers;
    uint64_t deadline = uv_hrtime() + (uint64_t)XE_WORKER_ANSWER_MS * 1000000;
    size_t total = 0;

    uv_mutex_init(&k->mu);
    uv_cond_init(&k->cv);
    k->refs = 1;
    k->fn = fn;
    k->arg = xe_strdup(arg ? arg : "");
    /* the outputs live in the call's own block, freed with it */
    k->out = xe_calloc(nw, sizeof(*k->out));
    k->n = xe_calloc(nw, sizeof(*k->n));
    k->answered = xe_calloc(nw, sizeof(*k->answered));
    k->n_out = nw;
    for (unsigned i = 0; i < nw; i++)
        xe_buf_init(&k->out[i], 0);
    for (unsigned i = 1; i < nw; i++) {
        struct worker *w = &srv->workers[i];
        uv_mutex_lock(&w->qmu);
        if (w->async_open) {
            struct wjob *j = xe_calloc(1, sizeof(*j));
            j->call = k;
            j->next = w->jobs;
            w->jobs = j;
            uv_mutex_lock(&k->mu);
            k->refs++;
            k->pending++;
            uv_mutex_unlock(&k->mu);
            uv_async_send(&w->async);
        } else
            k->answered[i] = true; /* stopped: nothing to say */
        uv_mutex_unlock(&w->qmu);
    }
    k->n[0] = fn(&srv->workers[0], k->arg, &k->out[0]);
    k->answered[0] = true;
    uv_mutex_lock(&k->mu);
    while (k->pending > 0) {
        uint64_t now = uv_hrtime();
        if (now >= deadline || uv_cond_timedwait(&k->cv, &k->mu, deadline - now) != 0)
            break;
    }
    for (unsigned i = 0; i < nw; i++) {
        if (!k->answered[i]) {
            xe_warn("event=worker-timeout worker=%u waited_ms=%u", i,
                    XE_WORKER_ANSWER_MS);
            continue;
        }
        total += k->n[i];
        if (out && k->out[i].len)
            xe_buf_append(out, k->out[i].data, k->out[i].len);
        xe_buf_free(&k->out[i]);
    }
    uv_mutex_unlock(&k->mu);
    wcall_unref(k);
    return total;
}

/* ---- the server ---------------------------------------------------------- */

/* A worker's connections by listener kind and state (8 numbers), then its
 * spliced sessions on each server of the current generation (by name: a
 * session of an older generation points into its own configuration), into
 * out as unsigned longs. */
static size_t
w_count_states(struct worker *w, const char *arg, struct xe_buf *out)
{
    struct xe_server *srv = w->srv;
    unsigned long n[12] = {0};

    for (const struct conn *c = w->conns; c; c = c->next)
        n[(c->xf ? 8 : c->direct ? 4 : 0) + c->st]++;
    xe_buf_append(out, n, sizeof(n));
    srv_lock(srv);
    for (size_t i = 0; i < srv->gen->n_bs; i++) {
        const struct bstate *b = srv->gen->bs[i];
        unsigned long k = 0;
        for (const struct conn *c = w->conns; c; c = c->next)
            k += c->st == CS_SPLICED && c->server &&
                 strcmp(c->server->name, b->name) == 0 &&
                 strcmp(c->pool->name, b->pool) == 0;
        xe_buf_append(out, &k, sizeof(k));
    }
    srv_unlock(srv);
    return w->n_conns;
}

/* Gauges for the metrics endpoint: the connections are counted by every
 * worker and summed (no worker label: one figure, whatever the number of
 * workers); the backends' sessions and health are shared. */
static void
metrics_gauges(void *ctx, struct xe_buf *out)
{
    static const char *const states[] = {"negotiating", "backend", "spliced", "closing"};
    struct xe_server *srv = ctx;
    const struct gen *g;
    static const char *const kinds[] = {"starttls", "direct_tls", "websocket"};
    unsigned long n[3][4] = {{0}};
    struct xe_buf counts;
    unsigned long *sessions;
    size_t per;

    xe_buf_init(&counts, 0);
    /* (no reload can come in between: reloads run on this thread) */
    on_workers(srv, w_count_states, NULL, &counts);
    srv_lock(srv);
    g = srv->gen;
    per = (12 + g->n_bs) * sizeof(unsigned long);
    sessions = xe_calloc(g->n_bs + 1, sizeof(*sessions));
    for (size_t off = 0; off + per <= counts.len; off += per) {
        unsigned long v;
        for (size_t i = 0; i < 12 + g->n_bs; i++) {
            memcpy(&v, counts.data + off + i * sizeof(v), sizeof(v));
            if (i < 12)
                n[i / 4][i % 4] += v;
            else
                sessions[i - 12] += v;
        }
    }
    xe_buf_free(&counts);
    xe_buf_append_str(out,
                      "# HELP xedge_connections Open client connections, by listener "
                      "kind and state.\n# TYPE xedge_connections gauge\n");
    for (int l = 0; l < 3; l++)
        for (int s = 0; s < 4; s++)
            xe_buf_appendf(out, "xedge_connections{listener=\"%s\",state=\"%s\"} %lu\n",
                           kinds[l], states[s], n[l][s]);
    xe_buf_append_str(out, "# HELP xedge_sessions Spliced sessions, by the client's "
                           "transport.\n# TYPE xedge_sessions gauge\n");
    xe_buf_appendf(out, "xedge_sessions{transport=\"tcp\"} %lu\n",
                   n[0][CS_SPLICED] + n[1][CS_SPLICED]);
    xe_buf_appendf(out, "xedge_sessions{transport=\"websocket\"} %lu\n",
                   n[2][CS_SPLICED]);
    xe_buf_append_str(out, "# HELP xedge_backend_sessions Spliced sessions, by backend "
                           "server.\n# TYPE xedge_backend_sessions gauge\n");
    for (size_t i = 0; i < g->n_bs; i++)
        xe_buf_appendf(out, "xedge_backend_sessions{pool=\"%s\",backend=\"%s\"} %lu\n",
                       g->bs[i]->pool, g->bs[i]->name, sessions[i]);
    xe_buf_append_str(out, "# HELP xedge_backend_up Whether a backend server is healthy "
                           "(1) or down (0), by its health checks.\n# TYPE "
                           "xedge_backend_up gauge\n");
    for (size_t i = 0; i < g->n_bs; i++)
        xe_buf_appendf(out, "xedge_backend_up{pool=\"%s\",backend=\"%s\"} %d\n",
                       g->bs[i]->pool, g->bs[i]->name, g->bs[i]->st.up ? 1 : 0);
    /* admission control (admit.h): every worker's share, summed */
    xe_buf_append_str(out, "# HELP xedge_backend_pending_logins Backend logins in "
                           "progress (connect to splice), by server.\n# TYPE "
                           "xedge_backend_pending_logins gauge\n");
    srv_lock(srv);
    for (size_t i = 0; i < g->n_bs; i++) {
        unsigned long k = 0;
        for (unsigned w = 0; g->bs[i]->adm && w < g->bs[i]->n_adm; w++)
            k += g->bs[i]->adm[w].pending;
        xe_buf_appendf(out,
                       "xedge_backend_pending_logins{pool=\"%s\",backend=\"%s\"} %lu\n",
                       g->bs[i]->pool, g->bs[i]->name, k);
    }
    xe_buf_append_str(out, "# HELP xedge_backend_queued_logins Logins waiting for a "
                           "backend login slot (max_pending_logins), by server.\n# TYPE "
                           "xedge_backend_queued_logins gauge\n");
    for (size_t i = 0; i < g->n_bs; i++) {
        unsigned long k = 0;
        for (unsigned w = 0; g->bs[i]->adm && w < g->bs[i]->n_adm; w++)
            k += g->bs[i]->adm[w].queued;
        xe_buf_appendf(out,
                       "xedge_backend_queued_logins{pool=\"%s\",backend=\"%s\"} %lu\n",
                       g->bs[i]->pool, g->bs[i]->name, k);
    }
    srv_unlock(srv);
    xe_buf_append_str(out, "# HELP xedge_backend_draining Whether a backend server is "
                           "draining (no new sessions).\n# TYPE "
                           "xedge_backend_draining gauge\n");
    for (size_t i = 0; i < g->n_bs; i++)
        xe_buf_appendf(out, "xedge_backend_draining{pool=\"%s\",backend=\"%s\"} %d\n",
                       g->bs[i]->pool, g->bs[i]->name, g->bs[i]->st.draining ? 1 : 0);
    {
        unsigned max, pre;
        xe_srv_eff_limits(srv, g->conf, &max, &pre);
        xe_buf_appendf(
            out,
            "# HELP xedge_max_connections The configured limit of open connections.\n"
            "# TYPE xedge_max_connections gauge\nxedge_max_connections %u\n"
            "# HELP xedge_effective_max_connections The limit of open connections in "
            "force: max_connections, clamped to what the descriptor limit serves.\n"
            "# TYPE xedge_effective_max_connections gauge\n"
            "xedge_effective_max_connections %u\n"
            "# HELP xedge_max_preauth_connections The limit of connections not yet "
            "authenticated in force.\n"
            "# TYPE xedge_max_preauth_connections gauge\n"
            "xedge_max_preauth_connections %u\n"
            "# HELP xedge_preauth_connections Open client connections not yet "
            "authenticated.\n"
            "# TYPE xedge_preauth_connections gauge\nxedge_preauth_connections %u\n",
            g->conf->max_connections, max, pre, srv->n_preauth_all);
    }
    xe_buf_appendf(out,
                   "# HELP xedge_workers Worker threads (the workers setting).\n"
                   "# TYPE xedge_workers gauge\nxedge_workers %u\n",
                   srv->n_workers);
    xe_buf_appendf(out,
                   "# HELP xedge_register_jobs In-band registration's jobs under way "
                   "in the thread pool (at most %u).\n"
                   "# TYPE xedge_register_jobs gauge\nxedge_register_jobs %u\n",
                   XE_REGIO_MAX_JOBS, xe_regio_running());
    srv_unlock(srv);
    free(sessions);
    if (srv->s2s) /* federation runs on this thread (worker 0's loop) */
        xe_s2s_io_gauges(srv->s2s, out);
    xe_route_io_gauges(srv->route, out);
}

/* The labels a login can be counted under (others: "other"): every
 * configured mechanism. Labels are only ever added, so that the series of
 * a mechanism a reload removed stay as they were. */
static void
allow_mech_labels(const struct xe_conf *conf)
{
    for (size_t k = 0; k <= conf->n_domains; k++) {
        size_t n;
        char *const *m = xe_conf_mechanisms(conf, k ? &conf->domains[k - 1] : NULL, &n);
        for (size_t i = 0; i < n; i++)
            xe_metrics_allow_label(m[i]);
    }
    xe_metrics_allow_label("iq-auth");
}

static void
addrlimit_conf(const struct xe_conf *conf, struct xe_addrlimit_conf *alc)
{
    *alc = (struct xe_addrlimit_conf){
        .max_per_address = conf->max_conns_per_address,
        .rate = conf->conn_rate_per_address,
        .burst = conf->conn_burst_per_address,
        .max_entries = XE_ADDRLIMIT_MAX_ENTRIES,
    };
}

static void
lockout_conf(const struct xe_conf *conf, struct xe_lockout_conf *loc)
{
    *loc = (struct xe_lockout_conf){
        .free_failures = conf->lockout.free_failures,
        .delay_ms = conf->lockout.delay_ms,
        .max_delay_ms = conf->lockout.max_delay_ms,
        .address_threshold = conf->lockout.address_threshold,
        .account_threshold = conf->lockout.account_threshold,
        .lockout_ms = (uint64_t)conf->lockout.time_s * 1000,
        .window_ms = (uint64_t)conf->lockout.window_s * 1000,
        .max_entries = conf->lockout.max_entries,
    };
}

/* The federation glue (on worker 0's loop) holds the same generations as
 * the c2s connections, counted under the same lock. */
static void
s2s_gen_hold(void *ctx, struct gen *g)
{
    struct xe_server *srv = ctx;

    srv_lock(srv);
    xe_srv_gen_ref(g);
    srv_unlock(srv);
}

static void
s2s_gen_release(void *ctx, struct gen *g)
{
    struct xe_server *srv = ctx;

    srv_lock(srv);
    xe_srv_gen_unref(&g);
    srv_unlock(srv);
}

/* A remote domain's stanza for a routed pool: to its home (route_io.h);
 * srv->route is read at each call (NULL once it is freed). */
static int
route_federation(void *ctx, const char *from, const char *to_domain, const char *to,
                 const unsigned char *raw, size_t len, struct xe_buf *reply)
{
    struct xe_server *srv = ctx;

    return xe_route_io_deliver(srv->route, from, to_domain, to, raw, len, reply) ==
                   XE_ROUTE_IO_PASS
               ? -1
               : 0;
}

int
xe_server_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_server **srv_r,
              char **error_r)
{
    struct xe_server *srv = xe_calloc(1, sizeof(*srv));
    struct xe_addrlimit_conf alc;
    struct xe_lockout_conf loc;
    const struct xe_s2s_gen_ops s2s_gen_ops = {s2s_gen_hold, s2s_gen_release, srv};

    srv->loop = loop;
    uv_mutex_init_recursive(&srv->mu);
    srv->n_workers = conf->workers ? conf->workers : 1;
    srv->workers = xe_calloc(srv->n_workers, sizeof(*srv->workers));
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        w->loop = i == 0 ? loop : &w->own_loop;
        uv_mutex_init(&w->qmu);
    }
    *srv_r = srv;
    if ((srv->gen = xe_srv_gen_new(conf, NULL, error_r)) == NULL) {
        xe_server_free(srv_r);
        return -1;
    }
    xe_srv_gen_adopt(srv->gen, NULL);
    srv->gen->number = 1;
    allow_mech_labels(conf);
    xe_metrics_set_gauges(metrics_gauges, srv);
    addrlimit_conf(conf, &alc);
    srv->al = xe_addrlimit_new(&alc);
    lockout_conf(conf, &loc);
    srv->lockout = xe_lockout_new(&loc);
    if (xe_s2s_io_new(loop, conf, srv->gen, &s2s_gen_ops, &srv->s2s, error_r) < 0 ||
        xe_route_io_new(loop, conf, &srv->route, error_r) < 0) {
        xe_server_free(srv_r);
        return -1;
    }
    if (srv->s2s && srv->route) {
        /* federation straight to a routed pool's homes */
        struct xe_s2s_router router = {route_federation, srv};
        xe_s2s_io_set_router(srv->s2s, &router);
    }
    return 0;
}

/* Whether the listeners of A and B are the same, in the same order. */
static bool
same_listeners(const struct xe_conf *a, const struct xe_conf *b)
{
    if (a->n_listeners != b->n_listeners)
        return false;
    for (size_t i = 0; i < a->n_listeners; i++)
        if (a->listeners[i].kind != b->listeners[i].kind ||
            a->listeners[i].port != b->listeners[i].port ||
            strcmp(a->listeners[i].address, b->listeners[i].address) != 0)
            return false;
    return true;
}

/* The new generation is built and swapped in under the lock: a worker
 * accepting meanwhile gets the old one or the new one, whole. */
int
xe_server_reload(struct xe_server *srv, struct xe_conf *conf, unsigned long *generation_r,
                 char **error_r)
{
    struct gen *g;
    struct xe_addrlimit_conf alc;
    struct xe_lockout_conf loc;

    if (srv->stopping) {
        *error_r = xe_strdup("the server is shutting down");
        xe_conf_free(&conf);
        return -1;
    }
    if (!same_listeners(srv->gen->conf, conf)) {
        *error_r = xe_strdup("the listeners changed: a restart is needed to change "
                             "listen/listen_tls");
        xe_conf_free(&conf);
        return -1;
    }
    srv_lock(srv);
    if ((g = xe_srv_gen_new(conf, srv->gen, error_r)) == NULL) {
        srv_unlock(srv);
        xe_conf_free(&conf);
        return -1;
    }
    /* the generation owns CONF from here: the federation glue may hold it
     * (its reference keeps it) even if the reload fails after it */
    g->owned = conf;
    if (xe_s2s_io_reload(srv->s2s, conf, g, error_r) < 0 ||
        xe_route_io_reload(srv->route, conf, error_r) < 0) {
        xe_srv_gen_unref(&g);
        srv_unlock(srv);
        return -1;
    }
    g->number = srv->gen->number + 1;
    xe_srv_gen_adopt(g, srv->gen);
    if (srv->health_inited)
        xe_srv_log_backends(g);
    xe_srv_gen_unref(&srv->gen); /* freed now unless a connection still holds it */
    srv->gen = g;
    srv_unlock(srv);
    /* what is shared by every connection follows the new configuration */
    allow_mech_labels(conf);
    addrlimit_conf(conf, &alc);
    xe_addrlimit_reconfigure(srv->al, &alc);
    lockout_conf(conf, &loc);
    xe_lockout_reconfigure(srv->lockout, &loc);
    log_limits(srv, conf, "reload");
    *generation_r = g->number;
    return 0;
}

static void
on_main_async(uv_async_t *a)
{
    struct xe_server *srv = a->data;
    bool all;

    srv_lock(srv);
    all = srv->n_drained == srv->n_workers;
    srv_unlock(srv);
    if (all && srv->on_drained) {
        void (*fn)(void *) = srv->on_drained;
        srv->on_drained = NULL;
        fn(srv->drained_ctx);
    }
}

static void
on_log_turn(uv_prepare_t *p)
{
    (void)p;
    xe_log_flush();
}

void
xe_srv_log_turns(uv_loop_t *loop, uv_prepare_t *p)
{
    uv_prepare_init(loop, p);
    uv_prepare_start(p, on_log_turn);
    uv_unref((uv_handle_t *)p);
    xe_log_buffer_start();
}

void
xe_srv_log_turns_stop(uv_prepare_t *p)
{
    xe_log_buffer_stop();
    if (!uv_is_closing((uv_handle_t *)p))
        uv_close((uv_handle_t *)p, NULL);
}

static void
worker_main(void *arg)
{
    struct worker *w = arg;
    uv_prepare_t log_turn;

    xe_log_worker = (int)w->index;
    xe_srv_log_turns(w->loop, &log_turn);
    uv_run(w->loop, UV_RUN_DEFAULT);
    /* everything is closed (xe_server_stop): let the close callbacks run */
    uv_run(w->loop, UV_RUN_DEFAULT);
    xe_srv_log_turns_stop(&log_turn);
    uv_run(w->loop, UV_RUN_NOWAIT);
    on_worker_async(&w->async); /* jobs queued as it closed: answered, empty */
    xe_tokio_free(&w->tokens);  /* its requests are done: the loop ran them */
    if (uv_loop_close(w->loop) != 0)
        xe_warn("event=worker-loop-busy worker=%u", w->index);
}

/* How many sessions the descriptor limit serves: two descriptors each (the
 * client, then its backend), after the listeners and the reserve
 * (xelimits.h). 0: no limit known. */
unsigned
xe_srv_fd_cap(const struct xe_server *srv, const struct xe_conf *conf)
{
    struct rlimit rl;
    unsigned long long have, keep, backends = 0;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    for (size_t i = 0; i < conf->n_pools; i++)
        backends += conf->pools[i].n_servers; /* a health check each */
    have = (unsigned long long)rl.rlim_cur;
    keep = XE_FD_RESERVE + backends +
           (unsigned long long)srv->n_workers * (XE_FD_PER_WORKER + conf->n_listeners);
    return have > keep + 2
               ? (unsigned)((have - keep) / 2 > UINT32_MAX / 2 ? UINT32_MAX / 2
                                                               : (have - keep) / 2)
               : 1;
}

/* The limits in force, logged; a warning naming both numbers when the
 * descriptor limit serves fewer connections than max_connections. */
static void
log_limits(const struct xe_server *srv, const struct xe_conf *conf, const char *when)
{
    struct rlimit rl;
    unsigned max, pre;

    xe_srv_eff_limits(srv, conf, &max, &pre);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = 0;
    if (max < conf->max_connections)
        xe_warn("event=max-connections-clamped when=%s max_connections=%u effective=%u "
                "nofile=%llu warning=\"the descriptor limit serves %u sessions (two "
                "descriptors each, after the listeners and a reserve): raise it "
                "(systemd: LimitNOFILE=) or lower max_connections\"",
                when, conf->max_connections, max, (unsigned long long)rl.rlim_cur, max);
    xe_info("event=limits when=%s max_connections=%u effective_max_connections=%u "
            "max_preauth_connections=%u nofile=%llu",
            when, conf->max_connections, max, pre, (unsigned long long)rl.rlim_cur);
}

int
xe_server_listen(struct xe_server *srv, char **error_r)
{
    const struct xe_conf *conf = srv->gen->conf;
    bool many = srv->n_workers > 1;

    srv->loop->data = &srv->workers[0];
    for (unsigned k = 1; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        int r = uv_loop_init(&w->own_loop);
        if (r < 0) {
            *error_r =
                xe_asprintf("worker %u: cannot make its loop: %s", k, uv_strerror(r));
            return -1;
        }
        w->loop_inited = true;
        w->own_loop.data = w;
        if (srv->tokens != NULL) /* FAST on every worker */
            w->tokens = xe_tokio_sibling(srv->tokens, w->loop);
    }
    srv->workers[0].tokens = srv->tokens;
    for (unsigned k = 0; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];

        w->listeners = xe_calloc(conf->n_listeners, sizeof(*w->listeners));
        w->n_listeners = conf->n_listeners;
        for (size_t i = 0; i < conf->n_listeners; i++) {
            struct listener *l = &w->listeners[i];
            const struct xe_listener_conf *lc = &conf->listeners[i];
            struct sockaddr_storage ss;
            int r, port = lc->port;

            if (k > 0 && port == 0) { /* the port worker 0 got */
                int sl = sizeof(ss);
                if (uv_tcp_getsockname(&srv->workers[0].listeners[i].tcp,
                                       (struct sockaddr *)&ss, &sl) == 0)
                    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            }
            l->srv = srv;
            l->w = w;
            l->lc = lc;
            if (XE_LISTEN_IS_S2S(lc->kind))
                continue; /* s2s_io.c's, on worker 0 */
            uv_tcp_init(w->loop, &l->tcp);
            l->tcp.data = l;
            l->open = true;
            r = xe_tcp_listen(&l->tcp, lc->address, port, many, xe_srv_on_connection);
            if (r < 0) {
                *error_r = xe_asprintf("cannot listen on %s port %d: %s", lc->address,
                                       lc->port, uv_strerror(r));
                return -1;
            }
            if (k == 0)
                xe_info("event=listen address=%s port=%d kind=%s", lc->address, lc->port,
                        lc->kind == XE_LISTEN_STARTTLS    ? "starttls"
                        : lc->kind == XE_LISTEN_WEBSOCKET ? "websocket"
                                                          : "direct_tls");
        }
    }
    uv_async_init(srv->loop, &srv->main_async, on_main_async);
    srv->main_async.data = srv;
    srv->main_async_inited = true;
    acct_async_init(srv);
    for (unsigned k = 0; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        uv_async_init(w->loop, &w->async, on_worker_async);
        w->async.data = w;
        w->async_inited = true;
        w->async_open = k == 0; /* the others' once their thread runs */
    }
    if (srv->s2s && xe_s2s_io_listen(srv->s2s, error_r) < 0)
        return -1; /* federation runs on worker 0 (the main loop) */
    srv->fd_cap = xe_srv_fd_cap(srv, conf);
    log_limits(srv, conf, "start");
    if (xe_route_io_listen(srv->route, error_r) < 0)
        return -1; /* routing too */
    if (!many)
        return 0;
    xe_log_worker = 0; /* the main thread is worker 0 */
    for (unsigned k = 1; k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        int r;

        w->async_open = true; /* (before the thread: nothing reads it yet) */
        if ((r = uv_thread_create(&w->thread, worker_main, w)) < 0)
            w->async_open = false;
        if (r < 0) {
            *error_r =
                xe_asprintf("worker %u: cannot start its thread: %s", k, uv_strerror(r));
            return -1;
        }
        w->thread_started = true;
    }
    xe_info("event=workers workers=%u%s", srv->n_workers,
            conf->workers_auto ? " auto=yes" : "");
    return 0;
}

/* W stops accepting (worker 0: and the health checks stop). */
static void
stop_listening(struct worker *w)
{
    if (w->index == 0) {
        xe_srv_stop_health(w->srv);
        xe_s2s_io_stop(w->srv->s2s);
        xe_route_io_stop(w->srv->route);
    }
    for (size_t i = 0; i < w->n_listeners; i++)
        if (w->listeners[i].open) {
            uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
            w->listeners[i].open = false;
        }
}

/* Close every connection of W at once. */
static void
close_all(struct worker *w)
{
    w->draining = false; /* no drained report from what follows */
    while (w->conns) {
        struct conn *c = w->conns;
        if (c->st == CS_SPLICED)
            xe_srv_close_conn(c);
        else
            xe_srv_client_stream_error(c, "system-shutdown",
                                       "the server is shutting down");
        if (!c->closed)
            xe_srv_finish_close(
                c); /* the loop is about to end: do not wait for flushes */
    }
}

/* On worker W: everything closes, and its loop ends (for worker 0, the
 * main loop goes on until xedge stops it). */
static size_t
w_stop(struct worker *w, const char *arg, struct xe_buf *out)
{
    w->stopping = true;
    stop_listening(w);
    if (w->shutdown_timer_inited && !uv_is_closing((uv_handle_t *)&w->shutdown_timer))
        uv_close((uv_handle_t *)&w->shutdown_timer, NULL);
    close_all(w);
    if (w->trim_timer_inited && !uv_is_closing((uv_handle_t *)&w->trim_timer))
        uv_close((uv_handle_t *)&w->trim_timer, NULL);
    uv_mutex_lock(&w->qmu);
    w->async_open = false; /* jobs queued already are answered all the same */
    uv_mutex_unlock(&w->qmu);
    if (w->async_inited && !uv_is_closing((uv_handle_t *)&w->async))
        uv_close((uv_handle_t *)&w->async, NULL);
    return 0;
}

void
xe_server_stop(struct xe_server *srv)
{
    srv->stopping = true;
    if (srv->stopped)
        return;
    srv->stopped = true;
    on_workers(srv, w_stop, NULL, NULL);
    if (srv->main_async_inited && !uv_is_closing((uv_handle_t *)&srv->main_async))
        uv_close((uv_handle_t *)&srv->main_async, NULL);
    if (srv->acct_async_inited && !uv_is_closing((uv_handle_t *)&srv->acct_async))
        uv_close((uv_handle_t *)&srv->acct_async, NULL);
}

/* ---- graceful shutdown ----------------------------------------------------- */

/* Worker W has no connection left (or has closed the rest): when every
 * worker is there, the main thread calls on_drained. */
void
xe_srv_worker_drained(struct worker *w)
{
    struct xe_server *srv = w->srv;
    bool all;

    if (w->drained_told)
        return;
    w->drained_told = true;
    if (w->shutdown_timer_inited)
        uv_timer_stop(&w->shutdown_timer);
    srv_lock(srv);
    all = ++srv->n_drained == srv->n_workers;
    srv_unlock(srv);
    if (all)
        uv_async_send(&srv->main_async);
}

static void
shutdown_force(uv_timer_t *t)
{
    struct worker *w = t->data;

    xe_info("event=shutdown-forced connections=%u", w->n_conns);
    close_all(w);
    xe_srv_worker_drained(w);
}

/* The grace period is over: every session ends with <system-shutdown/>. */
static void
shutdown_end_sessions(uv_timer_t *t)
{
    struct worker *w = t->data;

    w->draining = true;
    xe_info("event=shutdown-ending-sessions connections=%u", w->n_conns);
    if (w->n_conns == 0) {
        xe_srv_worker_drained(w);
        return;
    }
    uv_timer_start(&w->shutdown_timer, shutdown_force, CLOSE_GRACE_MS + 2000, 0);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        xe_srv_end_session(c, "system-shutdown", "the server is shutting down");
    }
}

/* On worker W: stop accepting; the grace period (ARG, ms) starts. */
static size_t
w_shutdown(struct worker *w, const char *arg, struct xe_buf *out)
{
    uint64_t grace_ms = strtoull(arg, NULL, 10);

    if (w->shutdown_timer_inited || w->stopping)
        return 0;
    w->stopping = true;
    stop_listening(w);
    uv_timer_init(w->loop, &w->shutdown_timer);
    w->shutdown_timer.data = w;
    w->shutdown_timer_inited = true;
    xe_info("event=shutdown grace_ms=%llu connections=%u", (unsigned long long)grace_ms,
            w->n_conns);
    uv_timer_start(&w->shutdown_timer, shutdown_end_sessions, grace_ms, 0);
    return 0;
}

void
xe_server_shutdown(struct xe_server *srv, uint64_t grace_ms, void (*on_drained)(void *),
                   void *ctx)
{
    char arg[32];

    if (srv->shutting_down || srv->stopped)
        return;
    srv->shutting_down = true;
    srv->stopping = true;
    srv->on_drained = on_drained;
    srv->drained_ctx = ctx;
    snprintf(arg, sizeof(arg), "%llu", (unsigned long long)grace_ms);
    on_workers(srv, w_shutdown, arg, NULL);
}

/* ---- the control socket's view --------------------------------------------- */

static const char *const conn_states[] = {"negotiating", "backend", "spliced", "closing"};

static size_t
w_sessions(struct worker *w, const char *arg, struct xe_buf *out)
{
    int64_t now = (int64_t)time(NULL);
    char wk[24] = "";

    if (w->srv->n_workers > 1)
        snprintf(wk, sizeof(wk), " worker=%u", w->index);
    for (const struct conn *c = w->conns; c; c = c->next)
        xe_buf_appendf(
            out,
            "session id=%llu jid=%s peer=%s listener=%s transport=%s state=%s tls=%s "
            "mech=%s backend=%s since=%lld age_s=%lld bytes_up=%llu bytes_down=%llu"
            "%s%s%s%s\n",
            (unsigned long long)c->id, c->jid ? c->jid : "-", c->peer,
            c->xf       ? xe_srv_transport(c)
            : c->direct ? "direct_tls"
                        : "starttls",
            xe_srv_transport(c), conn_states[c->st],
            c->tls_version ? c->tls_version : "-", c->mech[0] ? c->mech : "-",
            c->server && c->st == CS_SPLICED ? c->server->name : "-", (long long)c->since,
            (long long)(now - c->since), (unsigned long long)c->bytes_up,
            (unsigned long long)c->bytes_down,
            /* (SASL2 logins: the path and the user agent) */
            c->ua ? " path=" : "", c->ua ? c->path : "", c->ua ? c->ua : "", wk);
    return w->n_conns;
}

void
xe_server_sessions(struct xe_server *srv, struct xe_buf *out)
{
    on_workers(srv, w_sessions, NULL, out);
}

/* Federation's streams: on worker 0's loop, the control socket's thread */
void
xe_server_s2s(struct xe_server *srv, struct xe_buf *out)
{
    xe_s2s_io_list(srv->s2s, out);
}

static size_t
w_kick(struct worker *w, const char *what, struct xe_buf *out)
{
    char *end;
    unsigned long long id = strtoull(what, &end, 10);
    bool by_id = *what && *end == '\0', bare = strchr(what, '/') == NULL;
    size_t n = 0;

    for (struct conn *c = w->conns, *next; c; c = next) {
        bool match;
        next = c->next;
        if (c->closed || c->st == CS_CLOSING)
            continue;
        if (by_id)
            match = c->id == id;
        else if (c->jid == NULL)
            match = false;
        else if (bare) /* a bare JID: every session of the user */
            match = strcasecmp(c->jid, what) == 0;
        else
            match = false; /* sessions are known by bare JID and id */
        if (!match)
            continue;
        xe_info("event=kick peer=%s jid=%s id=%llu", c->peer, c->jid ? c->jid : "-",
                (unsigned long long)c->id);
        xe_srv_end_session(c, "policy-violation",
                           "the administrator closed this session");
        n++;
    }
    return n;
}

size_t
xe_server_kick(struct xe_server *srv, const char *what)
{
    return on_workers(srv, w_kick, what, NULL);
}

/* On worker W: end the sessions of a bare JID whose account changed (ARG:
 * "REASON JID"). */
static size_t
w_end_account(struct worker *w, const char *arg, struct xe_buf *out)
{
    const char *jid = strchr(arg, ' ');
    char reason[16];
    const char *text;
    size_t n = 0;

    (void)out;
    if (jid == NULL || (size_t)(jid - arg) >= sizeof(reason))
        return 0;
    memcpy(reason, arg, (size_t)(jid - arg));
    reason[jid - arg] = '\0';
    jid++;
    if ((text = xe_ctlcmd_reason_text(reason)) == NULL)
        return 0;
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->closed || c->st == CS_CLOSING || c->jid == NULL ||
            strcasecmp(c->jid, jid) != 0)
            continue;
        xe_info("event=account-end peer=%s jid=%s id=%llu reason=%s", c->peer, c->jid,
                (unsigned long long)c->id, reason);
        xe_metrics_inc(XE_M_ACCOUNT_ENDED, reason, NULL);
        xe_srv_end_session(c, "not-authorized", text);
        n++;
    }
    return n;
}

size_t
xe_server_end_account(struct xe_server *srv, const char *jid, const char *reason)
{
    char *arg = xe_asprintf("%s %s", reason, jid);
    size_t n = on_workers(srv, w_end_account, arg, NULL);

    free(arg);
    return n;
}

/* The main thread: end the sessions of the accounts the workers queued. */
static void
on_acct_async(uv_async_t *a)
{
    struct xe_server *srv = a->data;
    struct xe_buf q;

    srv_lock(srv);
    q = srv->acct_queue;
    xe_buf_init(&srv->acct_queue, 0);
    srv_unlock(srv);
    for (size_t off = 0; off < q.len;) {
        char *jid = (char *)q.data + off, *nl = memchr(jid, '\n', q.len - off);
        if (nl == NULL)
            break;
        *nl = '\0';
        xe_server_end_account(srv, jid, "removed");
        off = (size_t)(nl - (char *)q.data) + 1;
    }
    xe_buf_free(&q);
}

static void
acct_async_init(struct xe_server *srv)
{
    xe_buf_init(&srv->acct_queue, 0);
    uv_async_init(srv->loop, &srv->acct_async, on_acct_async);
    srv->acct_async.data = srv;
    srv->acct_async_inited = true;
}

/* From a worker: the account of JID was removed by its client: its other
 * sessions end, on every worker (asked of the main thread, which can wait
 * for the workers). */
void
xe_srv_end_account_async(struct xe_server *srv, const char *jid)
{
    if (!srv->acct_async_inited)
        return;
    srv_lock(srv);
    xe_buf_appendf(&srv->acct_queue, "%s\n", jid);
    srv_unlock(srv);
    uv_async_send(&srv->acct_async);
}

void
xe_server_stats(struct xe_server *srv, struct xe_buf *out)
{
    unsigned long n[4] = {0};
    struct xe_buf counts;
    size_t total, per;
    uint64_t accepted;
    unsigned max, eff, pre, n_pre;

    xe_buf_init(&counts, 0);
    total = on_workers(srv, w_count_states, NULL, &counts);
    srv_lock(srv);
    per = (8 + srv->gen->n_bs) * sizeof(unsigned long);
    for (size_t off = 0; off + per <= counts.len; off += per)
        for (size_t i = 0; i < 8; i++) {
            unsigned long v;
            memcpy(&v, counts.data + off + i * sizeof(v), sizeof(v));
            n[i % 4] += v;
        }
    accepted = srv->next_id;
    max = srv->gen->conf->max_connections;
    xe_srv_eff_limits(srv, srv->gen->conf, &eff, &pre);
    n_pre = srv->n_preauth_all;
    srv_unlock(srv);
    xe_buf_free(&counts);
    xe_buf_appendf(
        out,
        "stats connections=%zu negotiating=%lu backend=%lu spliced=%lu closing=%lu "
        "accepted=%llu max_connections=%u effective_max_connections=%u preauth=%u "
        "max_preauth_connections=%u stopping=%s",
        total, n[0], n[1], n[2], n[3], (unsigned long long)accepted, max, eff, n_pre, pre,
        srv->stopping ? "yes" : "no");
    if (srv->n_workers > 1)
        xe_buf_appendf(out, " workers=%u", srv->n_workers);
    xe_buf_append_str(out, "\n");
}

void
xe_server_backends(struct xe_server *srv, struct xe_buf *out)
{
    const struct gen *g;

    srv_lock(srv);
    g = srv->gen;
    for (size_t i = 0; i < g->n_bs; i++) {
        const struct bstate *b = g->bs[i];
        xe_buf_appendf(out,
                       "backend name=%s pool=%s kind=%s address=%s port=%d weight=%u "
                       "state=%s health=%s sessions=%u\n",
                       b->name, b->pool, xe_server_kind_name(b->sc->kind), b->sc->host,
                       b->sc->port, b->sc->weight,
                       b->st.draining ? "draining"
                       : b->st.up     ? "up"
                                      : "down",
                       b->st.up ? "up" : "down", b->st.sessions);
    }
    srv_unlock(srv);
}

size_t
xe_server_drain(struct xe_server *srv, const char *name, bool drain)
{
    const struct gen *g;
    size_t n = 0;

    srv_lock(srv);
    g = srv->gen;
    for (size_t i = 0; i < g->n_bs; i++) {
        struct bstate *b = g->bs[i];
        if (strcmp(b->name, name) != 0)
            continue;
        n++;
        if (b->st.draining != drain)
            xe_info("event=%s pool=%s backend=%s sessions=%u",
                    drain ? "backend-drain" : "backend-undrain", b->pool, b->name,
                    b->st.sessions);
        b->st.draining = drain;
    }
    srv_unlock(srv);
    return n;
}

void
xe_server_set_store(struct xe_server *srv, struct xe_userstore *store)
{
    srv->store = store;
    xe_route_io_set_store(srv->route, store);
}

void
xe_server_set_tokens(struct xe_server *srv, struct xe_tokio *tokens)
{
    srv->tokens = tokens;
}

struct xe_tokio *
xe_server_tokens(struct xe_server *srv)
{
    return srv->tokens;
}

struct xe_lockout *
xe_server_lockout(struct xe_server *srv)
{
    return srv->lockout;
}

void
xe_server_free(struct xe_server **srvp)
{
    struct xe_server *srv = *srvp;

    if (srv == NULL)
        return;
    if (srv->workers && srv->n_workers > 1 && !srv->stopped)
        xe_server_stop(srv); /* (an error after the start) the threads must end */
    for (unsigned k = 0; srv->workers && k < srv->n_workers; k++) {
        struct worker *w = &srv->workers[k];
        if (w->thread_started) {
            uv_thread_join(&w->thread);
        } else if (w->loop_inited) { /* an error before its thread started */
            for (size_t i = 0; i < w->n_listeners; i++)
                if (w->listeners[i].open)
                    uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
            if (w->async_inited)
                uv_close((uv_handle_t *)&w->async, NULL);
            uv_run(w->loop, UV_RUN_DEFAULT);
            if (k > 0)
                xe_tokio_free(&w->tokens);
            uv_loop_close(w->loop);
        }
        uv_mutex_destroy(&w->qmu);
        free(w->listeners);
    }
    xe_metrics_set_gauges(NULL, NULL);
    xe_addrlimit_free(&srv->al);
    xe_buf_free(&srv->acct_queue);
    xe_lockout_free(&srv->lockout);
    xe_s2s_io_free(&srv->s2s);
    xe_route_io_free(&srv->route);
    xe_srv_gen_unref(&srv->gen);
    free(srv->workers);
    uv_mutex_destroy(&srv->mu);
    free(srv);
    *srvp = NULL;
}
