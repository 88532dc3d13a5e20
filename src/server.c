/* xedge: the I/O glue on libuv. See server.h.
 *
 * A connection moves through: negotiating (plaintext or TLS, the c2s core
 * parses) -> backend (the backend handshake runs while the client restarts
 * its stream) -> spliced (bytes pumped both ways, no parsing) -> closing.
 * Handles are embedded in struct conn; it is freed in the last close
 * callback. */
#include "config.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif

#include <openssl/crypto.h>

#include "addrlimit.h"
#include "assertion.h"
#include "backend.h"
#include "c2s.h"
#include "ctlcmd.h"
#include "boundary.h"
#include "lockout.h"
#include "metrics.h"
#include "listen.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "register.h"
#include "s2s_io.h"
#include "sasl.h"
#include "tls.h"
#include "userstore.h"
#include "route_io.h"
#include "util.h"
#include "xelimits.h"
#include "zstream.h"

#define CLOSE_GRACE_MS 3000
#define XE_TEXT_UNAVAILABLE "the service is temporarily unavailable, try again later"
#define XE_TEXT_USER_SERVER                                                              \
    "the server that holds this account is unavailable, try again later"

struct listener {
    uv_tcp_t tcp;
    struct xe_server *srv;
    struct worker *w;
    const struct xe_listener_conf *lc;
    bool open;
};

struct conn;

/* A generation: a configuration and the TLS contexts built from it. The
 * server holds a reference to the current one; each connection holds one to
 * the generation it was accepted under and uses its settings, certificates
 * and pools for its whole life, so that a reload changes new connections
 * only. Freed with the last reference. */
struct gen {
    unsigned refs;
    unsigned long number;
    const struct xe_conf *conf;
    struct xe_conf *owned; /* conf, when the generation owns it (reloads) */
    struct xe_tls_ctx *tls_starttls, *tls_direct;
    /* the live state of each configured server, in pool order: pool p's
     * servers are bs[pool_off[p]...] (st: the same, for pool.h) */
    struct bstate **bs;
    struct xe_server_state **st;
    size_t n_bs;
    size_t *pool_off;
};

/* A backend server's live state: health, draining, sessions. Known by pool
 * and server name, it lives on across reloads (each generation that lists
 * the server holds a reference, and so does a running health check). */
struct bstate {
    unsigned refs;
    char *pool, *name;
    /* in the current generation; NULL once a reload removed the server */
    const struct xe_pool_conf *pc;
    const struct xe_server_conf *sc;
    const char *domain; /* a domain of the pool, for the checks' stream header */
    struct xe_server_state st;
    uint64_t next_check_ms; /* loop time of the next active check */
    bool checking;
};

/* An active health check (pool.h): connect, a stream header, the features. */
/* A connection to a backend: TCP, or a unix socket (a server whose address
 * is a path). Both start with the stream: cast to uv_stream_t/uv_handle_t. */
union backend_handle {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

/* Open H on LOOP and connect it to server SC; 0, or a libuv error. */
static int
backend_open(uv_loop_t *loop, union backend_handle *h, uv_connect_t *req,
             const struct xe_server_conf *sc, uv_connect_cb cb)
{
    struct sockaddr_storage ss;

    if (sc->unix_socket) {
        uv_pipe_init(loop, &h->pipe, 0);
        uv_pipe_connect(req, &h->pipe, sc->host, cb); /* errors reach cb */
        return 0;
    }
    uv_tcp_init(loop, &h->tcp);
    if (uv_ip4_addr(sc->host, sc->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(sc->host, sc->port, (struct sockaddr_in6 *)&ss) != 0)
        return UV_EINVAL;
    return uv_tcp_connect(req, &h->tcp, (struct sockaddr *)&ss, cb);
}

struct hcheck {
    union backend_handle tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    struct xe_server *srv;
    struct bstate *b;
    struct xe_health_probe *probe;
    struct hcheck *prev, *next;
    unsigned char proxy_hdr[XE_PROXY_V2_OUT_MAX];
    size_t proxy_len;
    int handles;
    bool done;
};

/* A job for a worker, from the main thread: run fn on the worker's own
 * loop; the caller waits (bounded) for every worker's answer (on_workers). */
struct worker;
typedef size_t (*worker_fn)(struct worker *w, const char *arg, struct xe_buf *out);

struct wcall {
    uv_mutex_t mu;
    uv_cond_t cv;
    unsigned refs, pending;
    worker_fn fn;
    char *arg;
    struct xe_buf *out; /* one per worker */
    unsigned n_out;
    size_t *n;
    bool *answered;
};

struct wjob {
    struct wjob *next;
    struct wcall *call;
};

/* A worker: a libuv loop with its own listeners (SO_REUSEPORT when there
 * are several) and the connections they accepted, which live and die on
 * it. Worker 0 runs on the main loop (with the control socket, metrics,
 * signals and health checks); workers 1..N-1 on threads of their own. */
struct worker {
    struct xe_server *srv;
    unsigned index;
    uv_loop_t *loop; /* the main loop for worker 0, else &own_loop */
    uv_loop_t own_loop;
    uv_thread_t thread;
    bool thread_started, loop_inited;
    struct listener *listeners;
    size_t n_listeners;
    struct conn *conns;
    unsigned n_conns;
    bool stopping;
    bool draining; /* graceful shutdown: ending the sessions */
    bool drained_told;
    uv_timer_t shutdown_timer;
    bool shutdown_timer_inited;
    uv_async_t async;  /* jobs are waiting */
    bool async_inited; /* (the worker's thread only) */
    uv_mutex_t qmu;    /* jobs, async_open */
    struct wjob *jobs;
    bool async_open;            /* jobs may be queued */
    uint64_t refused_logged_ms; /* refusals are logged at most once a second */
    unsigned long refused_unlogged;
    uint64_t proxy_logged_ms; /* the same for untrusted proxies */
    unsigned long proxy_unlogged;
    uv_timer_t trim_timer; /* the heap trim, when this worker started it: */
    bool trim_timer_inited;
    uv_work_t trim_req; /* ... a moment later, on the thread pool */
    struct trim_result {
        unsigned from, to;   /* the pre-auth connections: peak and now */
        long rss_before_kib; /* of the process, around malloc_trim */
        long rss_after_kib;
        uint64_t took_us;
        bool released; /* malloc_trim gave memory back */
    } trim;
    /* reads are consumed (copied or decrypted) before the callback returns */
    char read_slab[XE_READ_CHUNK];
    char plain_slab[XE_READ_CHUNK];
    char write_slab[XE_READ_CHUNK]; /* TLS records taken out of the BIO to be written */
};

/* The server: what every worker shares. The fields the workers touch
 * (gen and the generations' reference counts, the backends' states and
 * session counts, n_conns_all, next_id, n_drained) are under mu; the
 * lockout and address tables, the metrics and SASL lock for themselves.
 * The rest is the main thread's. */
struct xe_server {
    uv_loop_t *loop;
    uv_mutex_t mu;   /* recursive */
    struct gen *gen; /* the current generation */
    struct worker *workers;
    unsigned n_workers;
    unsigned n_conns_all; /* every worker's connections */
    /* connections not yet authenticated (the pre-auth cap), every worker's,
     * and their peak since the heap was last trimmed */
    unsigned n_preauth_all, preauth_peak;
    bool trim_busy;        /* a heap trim is running */
    uint64_t trim_last_ms; /* loop time of the last */
    unsigned long trims;   /* done */
    /* max_connections the descriptor limit can serve (xe_server_listen;
     * 0: not known yet) */
    unsigned fd_cap;
    unsigned n_drained; /* workers done with their graceful shutdown */
    bool stopping, stopped;
    uint64_t next_id;              /* of connections */
    void (*on_drained)(void *ctx); /* every connection is gone */
    void *drained_ctx;
    uv_async_t main_async; /* a worker drained */
    bool main_async_inited;
    /* accounts whose sessions end on every worker, asked from a worker
     * (a client removed its own account): done on the main thread */
    uv_async_t acct_async;
    bool acct_async_inited;
    struct xe_buf acct_queue; /* "JID\n"..., under mu */
    bool shutting_down;
    struct xe_addrlimit *al;
    struct xe_lockout *lockout; /* brute-force protection */
    struct xe_userstore *store; /* for the users' pins */
    struct xe_route_io *route;  /* routing between a pool's servers (route_io.h) */
    uv_timer_t health_timer;    /* starts the active health checks when due */
    bool health_inited;
    struct hcheck *checks; /* running */
    struct xe_s2s_io *s2s; /* federation (s2s_io.h), NULL without s2s listeners */
};

static void
srv_lock(struct xe_server *srv)
{
    uv_mutex_lock(&srv->mu);
}

static void
srv_unlock(struct xe_server *srv)
{
    uv_mutex_unlock(&srv->mu);
}

enum cstate { CS_NEGOTIATING, CS_BACKEND, CS_SPLICED, CS_CLOSING };

struct conn {
    struct xe_server *srv;
    struct worker *w; /* the connection lives on its loop */
    struct gen *gen;  /* this connection's generation (a reference) */
    struct conn *prev, *next;
    uv_tcp_t client;
    union backend_handle backend;
    uv_timer_t timer;
    uv_connect_t connect_req;
    int handles; /* handles still to be closed */
    bool backend_inited, closed;
    enum cstate st;
    bool direct;
    bool tls_handshaking;
    struct xe_tls *tls;
    struct xe_c2s *c2s;
    struct xe_backend_hs *bhs;
    bool backend_ready, client_restarted, backend_failed;
    bool iq_auth; /* non-SASL authentication: the backend binds, no client restart */
    struct xe_buf to_backend_pending; /* client bytes after its restart header */
    struct xe_buf to_client_pending;  /* backend bytes after its features */
    const struct xe_pool_conf *pool;  /* of server */
    const struct xe_server_conf *server;
    struct bstate *bst;               /* server's state: counts this session while set */
    const char *fail_text;            /* the error text when the backend fails */
    size_t to_client_q, to_backend_q; /* bytes handed to uv_write, not yet written */
    /* before the splice, a callback's writes are held until it returns and
     * go out as one per side (cork/uncork): the plaintext here ([0] to the
     * backend, [1] to the client, XE_CORK_MAX each), the client's TLS
     * records in the memory BIO */
    unsigned corked;
    struct xe_buf cork_buf[2];
    bool client_paused, backend_paused;
    bool client_eof, shutdown_sent;
    uv_shutdown_t shutdown_req;
    char tail[16]; /* last bytes the backend sent, to see whether it closed its stream */
    size_t tail_len;
    char *jid;
    struct xe_regsplice *reg;   /* spliced, parsing the client (in-band registration) */
    struct sockaddr_storage sa; /* the client's address */
    bool counted;               /* in the per-address accounting */
    bool preauth;               /* counted as not yet authenticated */
    uint64_t auth_deadline;     /* loop time by which SASL must succeed */
    char peer[64];
    uint64_t bytes_up, bytes_down;
    uint64_t accepted_ms; /* loop time of the accept (login duration) */
    /* backend retries (pools[].retries) */
    size_t pin;       /* the user's pinned server, or XE_POOL_NONE */
    uint64_t tried;   /* servers of the pool that failed this login (bits) */
    unsigned retried; /* how many times */
    bool retrying;    /* the failed backend connection is closing */
    /* once spliced: where each direction is between two stanzas, so that an
     * end of our own (kick, shutdown) never cuts one (boundary.h) */
    struct xe_boundary down, up;
    bool up_unknown;       /* the client's side is filtered (register) or unknown */
    bool end_pending;      /* end_session waits for the backend's stanza to end */
    bool end_keep_backend; /* ... and then leaves the backend's stream open */
    struct xe_buf end_xml; /* ... the stream error it will send then */
    uint64_t id;           /* for the control socket (sessions list, kick) */
    int64_t since;         /* wall clock of the accept */
    char mech[24];         /* the login's mechanism, once spliced */
    const char *tls_version;
    /* brute-force protection: a failed login's answer is held (lockout.h) */
    char addr_key[64];              /* the lockout key of the client's address */
    uint64_t hold_ms;               /* delay owed by the attempts of the last feed */
    bool held;                      /* holding the c2s output */
    enum xe_c2s_action held_action; /* what to do when it goes out */
    struct xe_buf held_in;          /* plaintext that came after the held attempt */
    struct xe_zstream *zs;          /* the client's stream is compressed (XEP-0138) */
    struct xe_buf zin; /* its compressed bytes held while the backend is full */
    bool zstalled;     /* inflating waits for the backend's queue to drain */
    /* the PROXY protocol (proxy.h) */
    struct xe_proxy *proxy;        /* in: reading the header from a trusted proxy */
    struct sockaddr_storage local; /* the address the client reached */
    bool proxy_out;                /* the pool wants a PROXY header first */
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    bool to_client;
    size_t len;
    char data[];
};

static void finish_close(struct conn *c);
static void maybe_shutdown(struct conn *c);
static void close_conn(struct conn *c);
static void client_plain(struct conn *c, const char *data, size_t n);
static void client_input(struct conn *c, const char *data, size_t n);
static void inflate_held(struct conn *c);
static int send_client_deflated(struct conn *c, const void *data, size_t len);
static void compress_log_close(const struct conn *c);
static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void read_tls_plain(struct conn *c);
static void hold_answer(struct conn *c, enum xe_c2s_action then, const char *rest,
                        size_t n);
static void release_answer(struct conn *c);
static void proxy_input(struct conn *c, const char *data, size_t n);
static void proxy_send(struct conn *c);

/* ---- generations ---------------------------------------------------------- */

static void
bstate_unref(struct bstate *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->pool);
    free(b->name);
    free(b);
}

/* The generation's server states: PREV's for the servers it lists too (by
 * pool and server name: health, draining and sessions go on), new ones
 * (up) for the others. */
static void
gen_states(struct gen *g, const struct gen *prev)
{
    const struct xe_conf *conf = g->conf;
    size_t k = 0;

    for (size_t p = 0; p < conf->n_pools; p++)
        g->n_bs += conf->pools[p].n_servers;
    g->bs = xe_calloc(g->n_bs ? g->n_bs : 1, sizeof(*g->bs));
    g->st = xe_calloc(g->n_bs ? g->n_bs : 1, sizeof(*g->st));
    g->pool_off = xe_calloc(conf->n_pools ? conf->n_pools : 1, sizeof(*g->pool_off));
    for (size_t p = 0; p < conf->n_pools; p++) {
        const struct xe_pool_conf *pc = &conf->pools[p];

        g->pool_off[p] = k;
        for (size_t i = 0; i < pc->n_servers; i++, k++) {
            const struct xe_server_conf *sc = &pc->servers[i];
            struct bstate *b = NULL;

            for (size_t j = 0; prev && j < prev->n_bs && b == NULL; j++)
                if (strcmp(prev->bs[j]->pool, pc->name) == 0 &&
                    strcmp(prev->bs[j]->name, sc->name) == 0)
                    b = prev->bs[j];
            if (b == NULL) {
                b = xe_calloc(1, sizeof(*b));
                b->pool = xe_strdup(pc->name);
                b->name = xe_strdup(sc->name);
                b->st.up = true;
            }
            b->refs++;
            if (pc->health.interval_ms == 0)
                b->st.up = true; /* unchecked: always up */
            g->bs[k] = b;
            g->st[k] = &b->st;
        }
    }
}

/* The servers of the current generation, in the log (at start and after a
 * reload). */
static void
log_backends(const struct gen *g)
{
    for (size_t i = 0; i < g->n_bs; i++) {
        const struct xe_pool_conf *pc = g->bs[i]->pc;
        const struct xe_server_conf *sc = g->bs[i]->sc;
        xe_info("event=backend pool=%s backend=%s kind=%s address=%s port=%d "
                "weight=%u policy=%s on_down=%s health_interval_s=%u",
                pc->name, sc->name, xe_server_kind_name(sc->kind), sc->host, sc->port,
                sc->weight, xe_pool_policy_name(pc->policy),
                pc->on_down == XE_ON_DOWN_NEXT ? "next" : "error",
                pc->health.interval_ms / 1000);
    }
}

/* This generation becomes the current one: its servers' states point to
 * its configuration; the servers PREV had and it has not are orphaned. */
static void
gen_adopt(struct gen *g, const struct gen *prev)
{
    const struct xe_conf *conf = g->conf;

    for (size_t i = 0; prev && i < prev->n_bs; i++) {
        prev->bs[i]->pc = NULL;
        prev->bs[i]->sc = NULL;
    }
    for (size_t p = 0; p < conf->n_pools; p++) {
        const struct xe_pool_conf *pc = &conf->pools[p];
        const char *domain = conf->n_domains ? conf->domains[0].name : "localhost";

        for (size_t d = 0; d < conf->n_domains; d++)
            if (conf->domains[d].pool == pc) {
                domain = conf->domains[d].name;
                break;
            }
        for (size_t i = 0; i < pc->n_servers; i++) {
            struct bstate *b = g->bs[g->pool_off[p] + i];
            b->pc = pc;
            b->sc = &pc->servers[i];
            b->domain = domain;
        }
    }
}

static struct gen *
gen_ref(struct gen *g)
{
    g->refs++;
    return g;
}

static void
gen_unref(struct gen **gp)
{
    struct gen *g = *gp;

    *gp = NULL;
    if (g == NULL || --g->refs > 0)
        return;
    xe_debug("event=generation-freed generation=%lu", g->number);
    for (size_t i = 0; i < g->n_bs; i++)
        bstate_unref(g->bs[i]);
    free(g->bs);
    free(g->st);
    free(g->pool_off);
    xe_tls_ctx_free(&g->tls_starttls);
    xe_tls_ctx_free(&g->tls_direct);
    xe_conf_free(&g->owned);
    free(g);
}

/* A generation for CONF (not owned), with its TLS contexts; NULL and
 * *error_r on a certificate or key that does not load. */
static struct gen *
gen_new(const struct xe_conf *conf, const struct gen *prev, char **error_r)
{
    struct gen *g = xe_calloc(1, sizeof(*g));
    struct xe_tls_cert *certs = xe_calloc(conf->n_domains, sizeof(*certs));

    g->refs = 1;
    g->conf = conf;
    gen_states(g, prev);
    for (size_t i = 0; i < conf->n_domains; i++) {
        certs[i].domain = conf->domains[i].name;
        certs[i].certificate = conf->domains[i].certificate;
        certs[i].key = conf->domains[i].key;
        certs[i].client_ca = conf->domains[i].client_ca;
        certs[i].settings = &conf->domains[i].tls;
    }
    if (xe_tls_ctx_new(certs, conf->n_domains, NULL, &g->tls_starttls, error_r) < 0 ||
        xe_tls_ctx_new(certs, conf->n_domains, "xmpp-client", &g->tls_direct, error_r) <
            0)
        gen_unref(&g);
    free(certs);
    return g;
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* reads are consumed (copied or decrypted) before the callback returns;
     * every loop's data is its worker */
    struct worker *w = h->loop->data;

    *buf = uv_buf_init(w->read_slab, sizeof(w->read_slab));
}

/* ---- writes and backpressure -------------------------------------------- */

static void
pause_reading(struct conn *c, bool client)
{
    if (client && !c->client_paused) {
        uv_read_stop((uv_stream_t *)&c->client);
        c->client_paused = true;
    } else if (!client && !c->backend_paused && c->backend_inited) {
        uv_read_stop((uv_stream_t *)&c->backend);
        c->backend_paused = true;
    }
}

static void
resume_reading(struct conn *c, bool client)
{
    if (c->st == CS_CLOSING || (client && c->held))
        return;
    if (client && c->client_paused) {
        uv_read_start((uv_stream_t *)&c->client, on_alloc, on_client_read);
        c->client_paused = false;
    } else if (!client && c->backend_paused) {
        uv_read_start((uv_stream_t *)&c->backend, on_alloc, on_backend_read);
        c->backend_paused = false;
    }
}

static void
on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct conn *c = wr->c;
    const struct xe_conf *conf = c->gen->conf;

    bool to_client = wr->to_client;

    if (to_client)
        c->to_client_q -= wr->len;
    else
        c->to_backend_q -= wr->len;
    free(wr);
    if (c->closed)
        return;
    if (status < 0) {
        xe_debug("event=write-failed peer=%s side=%s error=\"%s\"", c->peer,
                 to_client ? "client" : "backend", uv_strerror(status));
        finish_close(c);
        return;
    }
    if (c->st == CS_CLOSING) {
        maybe_shutdown(c);
        return;
    }
    if (c->zstalled && c->to_backend_q <= conf->pump_low_water) {
        inflate_held(c); /* before reading more from the client */
        if (c->closed || c->st == CS_CLOSING)
            return;
    }
    /* below the low water mark: read again from the side that fills this one */
    if (c->to_client_q <= conf->pump_low_water)
        resume_reading(c, false);
    if (c->to_backend_q <= conf->pump_low_water)
        resume_reading(c, true);
}

static struct wreq *
wreq_new(struct conn *c, bool to_client, size_t len)
{
    struct wreq *wr = xe_malloc(sizeof(*wr) + len);
    wr->c = c;
    wr->to_client = to_client;
    wr->len = len;
    return wr;
}

static int
submit(struct conn *c, struct wreq *wr)
{
    const struct xe_conf *conf = c->gen->conf;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    uv_stream_t *s =
        wr->to_client ? (uv_stream_t *)&c->client : (uv_stream_t *)&c->backend;
    size_t *q = wr->to_client ? &c->to_client_q : &c->to_backend_q;
    int r;

    r = uv_write(&wr->req, s, &b, 1, on_write);
    if (r < 0) {
        free(wr);
        return r;
    }
    *q += wr->len;
    if (*q > conf->pump_hard_cap) {
        xe_warn("event=buffer-cap peer=%s jid=%s side=%s queued=%zu", c->peer,
                c->jid ? c->jid : "-", wr->to_client ? "client" : "backend", *q);
        finish_close(c);
        return -1;
    }
    /* above the high water mark: stop reading the side that fills this one */
    if (*q > conf->pump_high_water)
        pause_reading(c, !wr->to_client);
    return 0;
}

/* What the socket takes now (uv_try_write: no request, no callback, no
 * epoll_ctl), the rest queued with uv_write; an error is left to uv_write
 * to report, as before. Bytes written at once never count as queued. */
static int
write_now(struct conn *c, bool to_client, const void *data, size_t len)
{
    uv_stream_t *s = to_client ? (uv_stream_t *)&c->client : (uv_stream_t *)&c->backend;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    struct wreq *wr;
    int r;

    if (len == 0 || c->closed || (to_client ? c->shutdown_sent : !c->backend_inited) ||
        uv_is_closing((uv_handle_t *)s))
        return 0; /* (nothing goes after our FIN, nor to a closing backend) */
    r = uv_try_write(s, &b, 1);
    if (r < 0)
        r = 0;
    if ((size_t)r == len)
        return 0;
    wr = wreq_new(c, to_client, len - (size_t)r);
    memcpy(wr->data, (const char *)data + r, len - (size_t)r);
    return submit(c, wr);
}

static int
write_raw(struct conn *c, bool to_client, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    if (c->corked) {
        struct xe_buf *b = &c->cork_buf[to_client];
        if (b->len + len <= XE_CORK_MAX && xe_buf_append(b, data, len) == 0)
            return 0;
        /* it does not fit: what is held first, then this */
        if (write_now(c, to_client, b->data, b->len) < 0)
            return -1;
        b->len = 0;
        if (len <= XE_CORK_MAX && xe_buf_append(b, data, len) == 0)
            return 0;
        return write_now(c, to_client, data, len);
    }
    return write_now(c, to_client, data, len);
}

static int
flush_tls(struct conn *c)
{
    size_t n;

    if (c->corked)
        return 0; /* the records wait in the BIO until uncork() */
    while (c->tls && !c->closed && xe_tls_out_pending(c->tls) > 0) {
        n = xe_tls_out_take(c->tls, c->w->write_slab, sizeof(c->w->write_slab));
        if (n == 0)
            break;
        if (write_now(c, true, c->w->write_slab, n) < 0)
            return -1;
    }
    if (c->tls && !c->closed && c->st == CS_SPLICED)
        xe_tls_release_bios(c->tls, XE_TLS_BIO_KEEP);
    return 0;
}

/* Hold the connection's writes until the matching uncork(). */
static void
cork(struct conn *c)
{
    c->corked++;
}

/* What is held, out: the client's plaintext (before TLS), then its TLS
 * records, then the backend's plaintext; each side in one write as a rule
 * (the BIO is taken in pieces of the worker's write slab). */
static void
cork_flush(struct conn *c)
{
    if (c->cork_buf[1].len) {
        write_now(c, true, c->cork_buf[1].data, c->cork_buf[1].len);
        c->cork_buf[1].len = 0;
    }
    flush_tls(c);
    if (c->cork_buf[0].len && !c->closed) {
        write_now(c, false, c->cork_buf[0].data, c->cork_buf[0].len);
        c->cork_buf[0].len = 0;
    }
}

static void
uncork(struct conn *c)
{
    if (--c->corked > 0 || c->closed)
        return;
    cork_flush(c);
    if (c->closed)
        return;
    if (c->st == CS_SPLICED) { /* the pump does not cork: no memory held per session */
        xe_buf_free(&c->cork_buf[0]);
        xe_buf_free(&c->cork_buf[1]);
        if (c->tls) /* nor the BIOs' capacity from the handshake and login */
            xe_tls_release_bios(c->tls, 0);
    } else if (c->st == CS_CLOSING) {
        maybe_shutdown(c); /* (it waited for this) */
    }
}

/* The connection closes at once, inside a corked callback: what is held
 * gets the one attempt uv_write would have made, and no more. */
static void
cork_last(struct conn *c)
{
    uv_buf_t b;
    size_t n;

    if (c->cork_buf[1].len) {
        b = uv_buf_init((char *)c->cork_buf[1].data, (unsigned)c->cork_buf[1].len);
        uv_try_write((uv_stream_t *)&c->client, &b, 1);
    }
    if (c->tls &&
        (n = xe_tls_out_take(c->tls, c->w->write_slab, sizeof(c->w->write_slab))) > 0) {
        b = uv_buf_init(c->w->write_slab, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->client, &b, 1);
    }
    if (c->cork_buf[0].len && c->backend_inited && !c->retrying) {
        b = uv_buf_init((char *)c->cork_buf[0].data, (unsigned)c->cork_buf[0].len);
        uv_try_write((uv_stream_t *)&c->backend, &b, 1);
    }
    c->cork_buf[0].len = c->cork_buf[1].len = 0;
}

static int
send_client(struct conn *c, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    c->bytes_down += len;
    xe_metrics_bytes(false, len);
    if (c->zs)
        return send_client_deflated(c, data, len);
    if (c->tls == NULL)
        return write_raw(c, true, data, len);
    if (xe_tls_write(c->tls, data, len) < 0) {
        xe_warn("event=tls-error peer=%s error=\"%s\"", c->peer, xe_tls_error(c->tls));
        finish_close(c);
        return -1;
    }
    return flush_tls(c);
}

static void
flush_c2s(struct conn *c)
{
    struct xe_buf *out;

    if (c->c2s == NULL)
        return;
    out = xe_c2s_output(c->c2s);
    if (out->len) {
        send_client(c, out->data, out->len);
        out->len = 0;
    }
}

/* ---- closing ------------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->handles > 0)
        return;
    xe_tls_free(&c->tls);
    xe_c2s_free(&c->c2s);
    xe_backend_hs_free(&c->bhs);
    xe_regsplice_free(&c->reg);
    xe_buf_free(&c->to_backend_pending);
    xe_buf_free(&c->to_client_pending);
    xe_buf_free(&c->cork_buf[0]);
    xe_buf_free(&c->cork_buf[1]);
    xe_buf_free(&c->held_in);
    xe_buf_free(&c->end_xml);
    xe_zstream_free(&c->zs);
    xe_buf_free(&c->zin);
    xe_proxy_free(&c->proxy);
    free(c->jid);
    srv_lock(c->srv);
    gen_unref(&c->gen);
    srv_unlock(c->srv);
    free(c);
}

static void worker_drained(struct worker *w);

/* The limits in force: max_connections clamped to what the descriptor
 * limit serves, and the pre-auth cap (its setting, else the default or half
 * the effective max_connections, whichever is less; never above it). */
static void
eff_limits(const struct xe_server *srv, const struct xe_conf *conf, unsigned *max_r,
           unsigned *preauth_r)
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
static void
preauth_end(struct conn *c)
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
        eff_limits(srv, srv->gen->conf, &max, &pre);
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

static void
finish_close(struct conn *c)
{
    struct xe_server *srv = c->srv;
    struct worker *w = c->w;

    if (c->closed)
        return;
    if (c->corked)
        cork_last(c);
    c->closed = true;
    c->st = CS_CLOSING;
    if (c->jid && c->bytes_up + c->bytes_down > 0)
        xe_info("event=close peer=%s jid=%s backend=%s bytes_up=%llu bytes_down=%llu",
                c->peer, c->jid, c->server ? c->server->name : "-",
                (unsigned long long)c->bytes_up, (unsigned long long)c->bytes_down);
    compress_log_close(c);
    preauth_end(c);
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
        worker_drained(w);
    if (c->counted)
        xe_addrlimit_release(srv->al, (struct sockaddr *)&c->sa, uv_now(w->loop));
    uv_close((uv_handle_t *)&c->client, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->backend_inited && !c->retrying) /* (a retry is closing it already) */
        uv_close((uv_handle_t *)&c->backend, on_handle_closed);
}

static void on_timer(uv_timer_t *t);

/* Before authentication: fire at the auth deadline, or after preauth_idle of
 * silence, whichever comes first. */
static void
arm_preauth_timer(struct conn *c)
{
    uint64_t now = uv_now(c->w->loop), at = now + c->gen->conf->preauth_idle_ms;

    if (c->auth_deadline && c->auth_deadline < at)
        at = c->auth_deadline;
    uv_timer_start(&c->timer, on_timer, at > now ? at - now : 0, 0);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    /* the peer now sees our FIN; finish when it closes too, or at the grace
     * timer */
    if (!c->closed && (status < 0 || c->client_eof))
        finish_close(c);
}

/* In closing: once our last bytes are out, half-close and let the client read
 * them before the connection goes away (closing with unread input would reset
 * it and could lose the stream error). */
static void
maybe_shutdown(struct conn *c)
{
    if (c->closed || c->shutdown_sent || c->to_client_q > 0 || c->corked)
        return; /* (uncork() calls again) */
    if (c->to_backend_q == 0 && c->client_eof) {
        finish_close(c);
        return;
    }
    c->shutdown_sent = true;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->client, on_shutdown) < 0)
        finish_close(c);
}

/* Close after what is queued has been written (bounded by a grace timer). */
static void
close_conn(struct conn *c)
{
    if (c->closed || c->st == CS_CLOSING)
        return;
    flush_c2s(c);
    if (c->tls && !c->tls_handshaking) {
        xe_tls_shutdown(c->tls);
        flush_tls(c);
    }
    if (c->closed)
        return;
    c->st = CS_CLOSING;
    if (c->backend_inited)
        uv_read_stop((uv_stream_t *)&c->backend);
    if (c->client_paused || c->client_eof)
        uv_read_stop((uv_stream_t *)&c->client);
    else /* keep reading (and dropping) until the client closes */
        uv_read_start((uv_stream_t *)&c->client, on_alloc, on_client_read);
    uv_timer_start(&c->timer, on_timer, CLOSE_GRACE_MS, 0);
    maybe_shutdown(c);
}

static void deliver_end(struct conn *c);
static void backend_error(struct conn *c);

/* A stream error to the client, then close. */
static void
client_stream_error(struct conn *c, const char *condition, const char *text)
{
    if (c->st == CS_SPLICED && !xe_boundary_between(&c->down)) {
        /* inside one of the backend's stanzas (which will never end: the
         * backend is gone, or the client broke a limit): an error now would
         * be bad XML, so the connection just closes */
        xe_info("event=close peer=%s jid=%s reason=\"%s: %s\" (inside a stanza)", c->peer,
                c->jid ? c->jid : "-", condition, text ? text : "");
        close_conn(c);
        return;
    }
    if (c->c2s) {
        xe_c2s_stream_error(c->c2s, condition, text);
        flush_c2s(c);
    } else {
        struct xe_buf b;
        xe_buf_init(&b, 0);
        xe_stream_error_xml(&b, false, NULL, NULL, condition, text);
        send_client(c, b.data, b.len);
        xe_buf_free(&b);
        xe_metrics_inc(XE_M_STREAM_ERRORS, condition, NULL);
        xe_info("event=stream-error peer=%s jid=%s condition=%s text=\"%s\"", c->peer,
                c->jid ? c->jid : "-", condition, text ? text : "");
    }
    close_conn(c);
}

/* ---- the backend --------------------------------------------------------- */

/* End a spliced session with a stream error of ours, between two of the
 * backend's stanzas: now if it is between them, else when its current
 * stanza ends (bounded by the close grace timer). Other sessions: at once. */
static void
end_session(struct conn *c, const char *condition, const char *text)
{
    if (c->closed || c->st == CS_CLOSING)
        return;
    if (c->st != CS_SPLICED) {
        client_stream_error(c, condition, text);
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
    uv_read_stop((uv_stream_t *)&c->client); /* nothing more goes up */
    if (xe_boundary_between(&c->down)) {
        deliver_end(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, CLOSE_GRACE_MS, 0);
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
        send_client(c, down.data, down.len);
        xe_buf_free(&down);
    }
    send_client(c, c->end_xml.data, c->end_xml.len);
    xe_buf_free(&c->end_xml);
    c->end_pending = false;
    if (!c->end_keep_backend && !c->up_unknown && xe_boundary_between(&c->up) &&
        c->backend_inited)
        write_raw(c, false, "</stream:stream>", 16);
    close_conn(c);
}

static void health_result(struct xe_server *srv, struct bstate *b, bool ok, bool passive,
                          const char *why);

static void connect_backend(struct conn *c);

/* The failed backend connection is closed: try the next server. */
static void
on_backend_closed_retry(uv_handle_t *h)
{
    struct conn *c = h->data;

    c->retrying = false;
    c->backend_inited = false;
    if (c->closed) { /* the client went away meanwhile */
        on_handle_closed(h);
        return;
    }
    c->handles--;
    connect_backend(c);
}

/* May this login go to another server of its pool? Not once the backend
 * took it, nor for a sticky user whose server holds its data (on_down =
 * error), nor past pools[].retries. */
static bool
may_retry(const struct conn *c)
{
    const struct xe_pool_conf *pool = c->pool;
    size_t idx;

    if (pool == NULL || c->server == NULL || !c->backend_inited || c->closed ||
        c->st != CS_BACKEND || c->backend_ready || c->backend_failed ||
        c->retried >= pool->retries || pool->n_servers < 2)
        return false;
    if (pool->policy == XE_POLICY_STICKY && pool->on_down != XE_ON_DOWN_NEXT)
        return false;
    idx = (size_t)(c->server - pool->servers);
    return idx < 64;
}

static void
backend_failed(struct conn *c, const char *why)
{
    xe_metrics_inc(XE_M_BACKEND_FAILED, c->server ? c->server->name : "-", NULL);
    xe_warn("event=backend-failed peer=%s jid=%s backend=%s reason=\"%s\"", c->peer,
            c->jid ? c->jid : "-", c->server ? c->server->name : "-", why);
    /* a connect or handshake failure counts against the server */
    if (c->bst && c->st == CS_BACKEND && !c->backend_failed && !c->backend_ready)
        health_result(c->srv, c->bst, false, true, why);
    if (may_retry(c)) {
        c->tried |= UINT64_C(1) << (c->server - c->pool->servers);
        c->retried++;
        xe_info("event=backend-retry peer=%s jid=%s failed=%s attempt=%u", c->peer,
                c->jid, c->server->name, c->retried + 1);
        if (c->bst) {
            srv_lock(c->srv);
            c->bst->st.sessions--;
            srv_unlock(c->srv);
            c->bst = NULL;
        }
        xe_backend_hs_free(&c->bhs);
        uv_timer_stop(&c->timer);
        c->retrying = true;
        c->cork_buf[0].len = 0; /* (held for the failed server) */
        uv_read_stop((uv_stream_t *)&c->backend);
        uv_close((uv_handle_t *)&c->backend, on_backend_closed_retry);
        return;
    }
    backend_error(c);
}

/* The session cannot go to a backend (it failed, or none can take it): the
 * client gets <remote-connection-failed/> with c->fail_text. */
static void
backend_error(struct conn *c)
{
    if (c->c2s && !c->client_restarted && !c->backend_failed) {
        /* The client is between <success/> and its new stream header: answer
         * that header with the error (bounded by the timer), so that the
         * error arrives on the stream the client is reading. */
        c->backend_failed = true;
        if (c->backend_inited)
            uv_read_stop((uv_stream_t *)&c->backend);
        uv_timer_start(&c->timer, on_timer, c->gen->conf->backend_handshake_ms, 0);
        return;
    }
    client_stream_error(c, "remote-connection-failed",
                        c->fail_text ? c->fail_text : XE_TEXT_UNAVAILABLE);
}

/* iq-auth: the backend refused to bind the client's resource (a conflict,
 * a bad resource): the client's iq gets that error, then the stream ends. */
static void
bind_refused(struct conn *c)
{
    const char *cond = xe_backend_hs_bind_error(c->bhs);

    xe_info("event=bind-failed peer=%s jid=%s backend=%s condition=%s", c->peer, c->jid,
            c->server ? c->server->name : "-", cond);
    xe_c2s_answer_iq_auth(c->c2s, cond);
    close_conn(c);
}

/* ---- in-band registration after authentication ---------------------------
 * On a domain with `register`, the spliced client stream is read element by
 * element (xe_regsplice) so that xedge answers jabber:iq:register requests;
 * our answers go to the client between two of the backend's stanzas.
 * Elsewhere the pump stays a raw byte splice. */

static int
reg_start(struct conn *c)
{
    const char *domain = xe_c2s_domain(c->c2s);
    struct xe_regsplice_params p;

    if (!xe_register_postauth(c->gen->conf, domain))
        return 0;
    p.conf = c->gen->conf;
    p.domain = domain;
    p.jid = c->jid;
    p.peer = c->peer;
    p.anonymous = xe_c2s_anonymous(c->c2s);
    p.header = xe_c2s_restart_header(c->c2s, &p.header_len);
    c->reg = xe_regsplice_new(&p);
    if (c->reg == NULL) {
        xe_err("event=register-error peer=%s jid=%s error=\"cannot parse the client's "
               "stream header again\"",
               c->peer, c->jid);
        client_stream_error(c, "internal-server-error", NULL);
        return -1;
    }
    return 0;
}

/* Client bytes: what is not ours goes to the backend; our answers to the
 * client when the backend's stream allows. */
static void end_account_async(struct xe_server *srv, const char *jid);

static void
reg_client(struct conn *c, const char *data, size_t n)
{
    struct xe_buf up, down;
    enum xe_rs_result r;

    xe_buf_init(&up, 0);
    xe_buf_init(&down, 0);
    r = xe_regsplice_client(c->reg, data, n, &up);
    if (up.len) {
        c->bytes_up += up.len;
        xe_metrics_bytes(true, up.len);
        write_raw(c, false, up.data, up.len);
    }
    if (!c->closed) {
        xe_regsplice_flush(c->reg, &down, r == XE_RS_CLOSE);
        send_client(c, down.data, down.len);
    }
    xe_buf_free(&up);
    xe_buf_free(&down);
    if (r == XE_RS_CLOSE && xe_regsplice_removed(c->reg))
        end_account_async(c->srv, c->jid); /* the account's other sessions */
    if (r == XE_RS_CLOSE)
        close_conn(c);
}

static void
reg_backend(struct conn *c, const char *data, size_t n)
{
    struct xe_buf down;

    xe_buf_init(&down, 0);
    if (xe_regsplice_backend(c->reg, data, n, &down) == 0)
        send_client(c, down.data, down.len);
    xe_buf_free(&down);
}

static void compress_offered(struct conn *c);

/* Negotiation is over: from here bytes are pumped. */
static void
splice(struct conn *c)
{
    if (reg_start(c) < 0)
        return;
    xe_metrics_login_duration(uv_now(c->w->loop) - c->accepted_ms);
    xe_info("event=session peer=%s jid=%s mech=%s tls=%s backend=%s%s", c->peer, c->jid,
            xe_c2s_mech(c->c2s), c->tls ? xe_tls_version(c->tls) : "none",
            c->server->name, c->zs ? " compression=zlib" : "");
    snprintf(c->mech, sizeof(c->mech), "%s", xe_c2s_mech(c->c2s));
    c->tls_version = c->tls ? xe_tls_version(c->tls) : "none";
    /* free the parsers and SASL state */
    xe_c2s_free(&c->c2s);
    xe_backend_hs_free(&c->bhs);
    uv_timer_stop(&c->timer);
    c->st = CS_SPLICED;
    /* both streams are between stanzas here: the backend has just sent its
     * features (or its bind result), the client its header (or its iq) */
    xe_boundary_init(&c->down, 1);
    xe_boundary_init(&c->up, 1);
    c->up_unknown = c->reg != NULL;
    xe_boundary_scan(&c->down, c->to_client_pending.data, c->to_client_pending.len,
                     false);
    if (!c->reg)
        xe_boundary_scan(&c->up, c->to_backend_pending.data, c->to_backend_pending.len,
                         false);
    if (c->to_client_pending.len && c->reg)
        reg_backend(c, (const char *)c->to_client_pending.data, c->to_client_pending.len);
    else if (c->to_client_pending.len)
        send_client(c, c->to_client_pending.data, c->to_client_pending.len);
    if (c->to_backend_pending.len && c->reg && !c->closed && c->st == CS_SPLICED) {
        reg_client(c, (const char *)c->to_backend_pending.data,
                   c->to_backend_pending.len);
    } else if (c->to_backend_pending.len && !c->reg) {
        c->bytes_up += c->to_backend_pending.len;
        xe_metrics_bytes(true, c->to_backend_pending.len);
        write_raw(c, false, c->to_backend_pending.data, c->to_backend_pending.len);
    }
    xe_buf_free(&c->to_client_pending);
    xe_buf_free(&c->to_backend_pending);
}

static void
maybe_splice(struct conn *c)
{
    const unsigned char *features;
    size_t flen;

    if (!c->backend_ready || !c->client_restarted || c->st != CS_BACKEND)
        return;
    features = xe_backend_hs_features(c->bhs, &flen);
    if (c->iq_auth) /* the resource is bound: the client's iq gets its result */
        xe_c2s_answer_iq_auth(c->c2s, NULL);
    else
        xe_c2s_answer_restart(c->c2s, features, flen);
    flush_c2s(c);
    if (!c->iq_auth && xe_c2s_compression_offered(c->c2s)) {
        compress_offered(c);
        return;
    }
    splice(c);
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

static void
backend_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (n == 0 || c->closed)
        return;
    if (n < 0) {
        if (c->st == CS_SPLICED) {
            if (backend_closed_stream(c)) {
                xe_debug("event=backend-closed peer=%s jid=%s", c->peer, c->jid);
                close_conn(c);
            } else {
                xe_metrics_inc(XE_M_BACKEND_LOST, c->server->name, NULL);
                xe_warn("event=backend-lost peer=%s jid=%s backend=%s error=\"%s\"",
                        c->peer, c->jid, c->server->name, uv_strerror((int)n));
                client_stream_error(c, "remote-connection-failed",
                                    "the connection to the service was lost");
            }
        } else if (c->st == CS_BACKEND) {
            backend_failed(c, n == UV_EOF
                                  ? "backend closed the connection during the handshake"
                                  : uv_strerror((int)n));
        }
        return;
    }
    if (c->st == CS_SPLICED) {
        size_t len = (size_t)n;
        /* with an end pending, up to the end of the current stanza only */
        if (c->end_pending)
            len = xe_boundary_scan(&c->down, buf->base, len, true);
        else
            xe_boundary_scan(&c->down, buf->base, len, false);
        remember_tail(c, buf->base, len);
        if (c->reg)
            reg_backend(c, buf->base, len);
        else
            send_client(c, buf->base, len);
        if (c->end_pending && !c->closed && xe_boundary_between(&c->down))
            deliver_end(c);
        return;
    }
    if (c->st != CS_BACKEND || c->backend_ready) {
        /* bytes after the features, before the client restarted: keep them */
        if (c->st == CS_BACKEND &&
            xe_buf_append(&c->to_client_pending, buf->base, (size_t)n) < 0)
            backend_failed(c, "backend sent too much before the session started");
        return;
    }
    {
        size_t used = 0;
        enum xe_bhs_result r = xe_backend_hs_feed(c->bhs, buf->base, (size_t)n, &used);
        struct xe_buf *out = xe_backend_hs_output(c->bhs);

        if (out->len) {
            write_raw(c, false, out->data, out->len);
            OPENSSL_cleanse(out->data, out->len); /* it carried the assertion */
            out->len = 0;
        }
        if (r == XE_BHS_FAIL) {
            if (c->iq_auth && xe_backend_hs_bind_error(c->bhs))
                bind_refused(c);
            else
                backend_failed(c, xe_backend_hs_error(c->bhs));
            return;
        }
        if (r == XE_BHS_READY) {
            if (c->bst)
                health_result(c->srv, c->bst, true, true, NULL);
            c->backend_ready = true;
            /* the client must now restart its stream in time */
            uv_timer_start(&c->timer, on_timer, c->gen->conf->backend_handshake_ms, 0);
            if (used < (size_t)n && xe_buf_append(&c->to_client_pending, buf->base + used,
                                                  (size_t)n - used) < 0) {
                backend_failed(c, "backend sent too much before the session started");
                return;
            }
            maybe_splice(c);
        }
    }
}

/* Before the splice, what this read makes goes out when it returns. */
static void
on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    bool corked = c->st != CS_SPLICED && !c->closed;

    if (corked)
        cork(c);
    backend_read_cb(s, n, buf);
    if (corked)
        uncork(c);
}

static void
backend_connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct xe_buf *out;

    if (c->closed || c->retrying) /* (a retry closed it: ECANCELED) */
        return;
    if (status < 0) {
        backend_failed(c, uv_strerror(status));
        return;
    }
    if (!c->server->unix_socket)
        uv_tcp_nodelay(&c->backend.tcp, 1);
    if (c->proxy_out)
        proxy_send(c);
    out = xe_backend_hs_output(c->bhs);
    write_raw(c, false, out->data, out->len);
    out->len = 0;
    uv_read_start((uv_stream_t *)&c->backend, on_alloc, on_backend_read);
    uv_timer_start(&c->timer, on_timer, c->gen->conf->backend_handshake_ms, 0);
}

static void
on_backend_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    bool corked = c->st != CS_SPLICED && !c->closed;

    if (corked)
        cork(c);
    backend_connect_cb(req, status);
    if (corked)
        uncork(c);
}

/* The index of the server the operator pinned the user to (xedgectl user
 * pin), if it is in the pool; XE_POOL_NONE: none, or it is gone (then the
 * hash decides). */
static size_t
pinned_server(struct conn *c, const struct xe_pool_conf *pool, const char *jid)
{
    size_t s = XE_POOL_NONE;
    struct xe_user *u;
    char *err = NULL;

    if (c->srv->store == NULL || xe_c2s_anonymous(c->c2s))
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

static void
start_backend(struct conn *c)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_domain_conf *d = xe_conf_domain(conf, xe_c2s_domain(c->c2s));
    const struct xe_pool_conf *pool = d->pool;
    const char *jid = xe_c2s_jid(c->c2s);
    size_t pin = XE_POOL_NONE;

    c->jid = xe_strdup(jid);
    c->pool = pool;
    c->st = CS_BACKEND;
    preauth_end(c); /* authenticated: no longer held against the pre-auth cap */
    if (pool->policy == XE_POLICY_STICKY)
        pin = pinned_server(c, pool, jid);
    c->pin = pin;
    connect_backend(c);
}

/* Choose a server of the connection's pool (none it already tried) and open
 * the backend connection to it. */
static void
connect_backend(struct conn *c)
{
    const struct xe_conf *conf = c->gen->conf;
    const struct xe_domain_conf *d = xe_conf_domain(conf, xe_c2s_domain(c->c2s));
    const struct xe_pool_conf *pool = c->pool;
    const char *jid = c->jid;
    char token[XE_ASSERTION_MAX], *local;
    size_t off = c->gen->pool_off[pool - conf->pools], i;
    const char *why = NULL;
    int r;

    srv_lock(c->srv); /* the servers' states are shared by the workers */
    {
        /* the servers tried already count as down for this choice */
        struct xe_server_state tried_state = {0}; /* up = false */
        struct xe_server_state **st = xe_calloc(pool->n_servers, sizeof(*st));
        for (size_t k = 0; k < pool->n_servers; k++) {
            /* a server back up lately gets part of its weight (slow start) */
            xe_pool_slow_start(c->gen->st[off + k], uv_now(c->w->loop),
                               pool->health.slow_start_ms);
            st[k] = k < 64 && (c->tried & (UINT64_C(1) << k)) ? &tried_state
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
        c->fail_text =
            pool->policy == XE_POLICY_STICKY && pool->on_down != XE_ON_DOWN_NEXT
                ? XE_TEXT_USER_SERVER
                : XE_TEXT_UNAVAILABLE;
        backend_error(c);
        return;
    }
    c->server = &pool->servers[i];
    c->proxy_out = pool->proxy_protocol;
    /* the purpose tells the backend an anonymous session from a user's */
    if (xe_assertion_make(pool->secret, pool->secret_len,
                          xe_c2s_anonymous(c->c2s) ? "c2s-anonymous" : "c2s", jid,
                          xe_now_seconds() + conf->assertion_lifetime_s, NULL, token,
                          sizeof(token)) < 0) {
        backend_failed(c, "cannot make the identity assertion");
        return;
    }
    local = xe_strndup(jid, (size_t)(strchr(jid, '@') - jid));
    c->bhs = xe_backend_hs_new(d->name, local, token, XE_MAX_BACKEND_FEATURES);
    if (c->iq_auth)
        xe_backend_hs_bind(c->bhs, xe_c2s_resource(c->c2s));
    OPENSSL_cleanse(token, sizeof(token));
    free(local);
    c->connect_req.data = c;
    r = backend_open(c->w->loop, &c->backend, &c->connect_req, c->server,
                     on_backend_connect);
    ((uv_handle_t *)&c->backend)->data = c;
    c->backend_inited = true;
    c->handles++;
    if (r < 0) {
        backend_failed(c, uv_strerror(r));
        return;
    }
    uv_timer_start(&c->timer, on_timer, conf->backend_connect_ms, 0);
    xe_debug("event=backend-connect peer=%s jid=%s backend=%s", c->peer, c->jid,
             c->server->name);
}

/* ---- backend health (pool.h) ----------------------------------------------- */

/* A check's result for B (a server of the current generation, else it is
 * ignored): down after fall failures, up after rise successes. */
static void
health_result(struct xe_server *srv, struct bstate *b, bool ok, bool passive,
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
    bstate_unref(k->b);
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
        health_result(k->srv, k->b, ok, false, why);
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
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, hcheck_read) < 0)
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
    r = backend_open(srv->loop, &k->tcp, &k->creq, b->sc, hcheck_connected);
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
    log_backends(srv->gen);
    uv_timer_init(srv->loop, &srv->health_timer);
    srv->health_timer.data = srv;
    srv->health_inited = true;
    uv_timer_start(&srv->health_timer, health_tick, 0, XE_HEALTH_TICK_MS);
}

static void
stop_health(struct xe_server *srv)
{
    if (srv->health_inited && !uv_is_closing((uv_handle_t *)&srv->health_timer))
        uv_close((uv_handle_t *)&srv->health_timer, NULL);
    for (struct hcheck *k = srv->checks; k; k = k->next)
        hcheck_done(k, false, NULL, true);
}

/* ---- brute-force protection (lockout.h) ---------------------------------- */

static const char *
addr_key(const struct conn *c)
{
    return c->addr_key[0] ? c->addr_key : NULL;
}

static bool
guard_refuse(void *ctx, const char *account)
{
    struct conn *c = ctx;
    uint64_t left = 0;
    bool r = xe_lockout_check(c->srv->lockout, addr_key(c), account, uv_now(c->w->loop),
                              &left);

    if (r)
        xe_debug("event=lockout-refused peer=%s account=%s remaining_ms=%llu", c->peer,
                 *account ? account : "-", (unsigned long long)left);
    return r;
}

static void
guard_failed(void *ctx, const char *account, bool counted)
{
    struct conn *c = ctx;
    uint64_t now = uv_now(c->w->loop);

    /* attempts pipelined in one read add up */
    c->hold_ms += counted ? xe_lockout_failure(c->srv->lockout, addr_key(c), account, now)
                          : xe_lockout_delay(c->srv->lockout, addr_key(c), account, now);
}

static void
guard_succeeded(void *ctx, const char *account)
{
    struct conn *c = ctx;

    xe_lockout_success(c->srv->lockout, account, uv_now(c->w->loop));
}

static const struct xe_c2s_guard lockout_guard = {
    .refuse = guard_refuse,
    .failed = guard_failed,
    .succeeded = guard_succeeded,
};

/* A failed attempt's answer (in the c2s output) waits hold_ms: nothing is
 * read from the client meanwhile, so its next attempt waits too, while every
 * other connection goes on. The timer is the connection's own; the auth
 * deadline still bounds the whole. */
static void
hold_answer(struct conn *c, enum xe_c2s_action then, const char *rest, size_t n)
{
    uint64_t now = uv_now(c->w->loop), ms = c->hold_ms;

    c->hold_ms = 0;
    if (c->auth_deadline && now + ms > c->auth_deadline)
        ms = c->auth_deadline > now ? c->auth_deadline - now : 0;
    if (then != XE_C2S_CLOSE && xe_buf_append(&c->held_in, rest, n) < 0) {
        client_stream_error(c, "policy-violation", "too much data during authentication");
        return;
    }
    c->held = true;
    c->held_action = then;
    pause_reading(c, true);
    uv_timer_start(&c->timer, on_timer, ms, 0);
    xe_debug("event=auth-delay peer=%s delay_ms=%llu", c->peer, (unsigned long long)ms);
}

static void
release_answer(struct conn *c)
{
    struct xe_buf rest = c->held_in;

    xe_buf_init(&c->held_in, 2 * XE_READ_CHUNK);
    c->held = false;
    flush_c2s(c);
    switch (c->held_action) {
    case XE_C2S_CLOSE:
        close_conn(c);
        goto out;
    case XE_C2S_AUTHENTICATED:
        uv_timer_stop(&c->timer);
        start_backend(c);
        break;
    default:
        arm_preauth_timer(c);
        break;
    }
    if (rest.len > 0)
        client_plain(c, (const char *)rest.data, rest.len);
    if (c->tls && !c->held)
        read_tls_plain(c);
    if (!c->held && !c->closed)
        resume_reading(c, true);
out:
    xe_buf_free(&rest);
}

/* ---- stream compression (XEP-0138) ---------------------------------------- */

/* After the restart was answered with compression offered: the core reads the
 * client's next element; what the client sent so far goes to it. */
static void
compress_offered(struct conn *c)
{
    struct xe_buf held = c->to_backend_pending;

    xe_buf_init(&c->to_backend_pending, c->gen->conf->pump_hard_cap);
    c->client_restarted = false;
    uv_timer_start(&c->timer, on_timer, c->gen->conf->preauth_idle_ms, 0);
    if (held.len)
        client_plain(c, (const char *)held.data, held.len);
    xe_buf_free(&held);
}

static int
compress_start(struct conn *c)
{
    const char *err = "?";

    c->zs = xe_zstream_new(&err);
    if (c->zs == NULL) {
        /* <compressed/> is out: nothing readable can follow */
        xe_err("event=compression-error peer=%s jid=%s error=\"%s\"", c->peer, c->jid,
               err);
        finish_close(c);
        return -1;
    }
    return 0;
}

/* Inflating failed: the stream error (XEP-0138), then close. */
static void
compress_failed(struct conn *c, const char *why)
{
    struct xe_buf b;

    xe_warn("event=compression-error peer=%s jid=%s error=\"%s\"", c->peer,
            c->jid ? c->jid : "-", why);
    if (c->c2s) { /* before the compressed stream was answered: with a header */
        client_stream_error(c, "undefined-condition", "the compressed data is corrupt");
        return;
    }
    xe_buf_init(&b, 0);
    xe_zstream_error_xml(&b, "processing-failed", "the compressed data is corrupt");
    send_client(c, b.data, b.len);
    xe_buf_free(&b);
    close_conn(c);
}

/* Inflate in bounded chunks, each handed on before the next; while the
 * backend's queue is above its high water mark, the rest is held (client
 * reading is paused then) until on_write sees it drained. more: zlib may hold
 * output from an earlier call. */
static void
client_inflate(struct conn *c, const unsigned char *data, size_t n, bool more)
{
    static _Thread_local char slab[XE_INFLATE_CHUNK]; /* per worker thread */
    const struct xe_conf *conf = c->gen->conf;

    while ((n > 0 || more) && !c->closed && c->st != CS_CLOSING) {
        size_t used = 0, got = 0;
        const char *err = "?";

        if (c->st == CS_SPLICED && c->to_backend_q > conf->pump_high_water) {
            c->zstalled = true;
            if (xe_buf_append(&c->zin, data, n) < 0) {
                xe_warn("event=buffer-cap peer=%s jid=%s side=inflate queued=%zu",
                        c->peer, c->jid ? c->jid : "-", c->zin.len + n);
                finish_close(c);
            }
            return;
        }
        if (xe_zstream_inflate(c->zs, data, n, &used, slab, sizeof(slab), &got, &err) <
            0) {
            compress_failed(c, err);
            return;
        }
        data += used;
        n -= used;
        more = got == sizeof(slab);
        if (got > 0)
            client_plain(c, slab, got);
        else if (used == 0)
            break; /* no progress: zlib wants more input */
    }
}

/* The held bytes, once the backend's queue is below its low water mark. */
static void
inflate_held(struct conn *c)
{
    struct xe_buf held = c->zin;

    xe_buf_init(&c->zin, XE_MAX_INFLATE_PENDING);
    c->zstalled = false;
    client_inflate(c, held.data, held.len, true);
    xe_buf_free(&held);
}

/* What the client sent, after TLS: inflated first when it compresses. */
static void
client_input(struct conn *c, const char *data, size_t n)
{
    if (c->zs == NULL) {
        client_plain(c, data, n);
        return;
    }
    if (c->zstalled) { /* behind the held bytes */
        if (xe_buf_append(&c->zin, data, n) < 0) {
            xe_warn("event=buffer-cap peer=%s jid=%s side=inflate queued=%zu", c->peer,
                    c->jid ? c->jid : "-", c->zin.len + n);
            finish_close(c);
        }
        return;
    }
    client_inflate(c, (const unsigned char *)data, n, false);
}

/* One batch to the client: deflated with a sync flush, then TLS. */
static int
send_client_deflated(struct conn *c, const void *data, size_t len)
{
    static _Thread_local unsigned char slab[XE_DEFLATE_CHUNK]; /* per worker thread */
    const unsigned char *p = data;
    bool more;

    do {
        size_t used = 0, got = 0;
        const char *err = "?";
        int r;

        if (xe_zstream_deflate(c->zs, p, len, &used, slab, sizeof(slab), &got, &err) <
            0) {
            xe_warn("event=compression-error peer=%s jid=%s error=\"%s\"", c->peer,
                    c->jid ? c->jid : "-", err);
            finish_close(c);
            return -1;
        }
        p += used;
        len -= used;
        more = got == sizeof(slab);
        r = got == 0 ? 0
            : c->tls ? xe_tls_write(c->tls, slab, got)
                     : write_raw(c, true, slab, got);
        if (r < 0) {
            if (c->tls)
                xe_warn("event=tls-error peer=%s error=\"%s\"", c->peer,
                        xe_tls_error(c->tls));
            finish_close(c);
            return -1;
        }
        if (used == 0 && got == 0)
            break;
    } while (len > 0 || more);
    return c->tls ? flush_tls(c) : 0;
}

static void
compress_log_close(const struct conn *c)
{
    uint64_t in_z, in_plain, out_plain, out_z;

    if (c->zs == NULL)
        return;
    xe_zstream_counts(c->zs, &in_z, &in_plain, &out_plain, &out_z);
    xe_info("event=compression-close peer=%s jid=%s up_compressed=%llu up_plain=%llu "
            "down_plain=%llu down_compressed=%llu",
            c->peer, c->jid ? c->jid : "-", (unsigned long long)in_z,
            (unsigned long long)in_plain, (unsigned long long)out_plain,
            (unsigned long long)out_z);
}

/* ---- the client ---------------------------------------------------------- */

static void
timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->closed)
        return;
    switch (c->st) {
    case CS_CLOSING:
        finish_close(c);
        break;
    case CS_BACKEND:
        if (c->backend_failed)
            client_stream_error(c, "remote-connection-failed",
                                c->fail_text ? c->fail_text : XE_TEXT_UNAVAILABLE);
        else if (c->backend_ready)
            client_stream_error(c, "connection-timeout",
                                "the stream was not restarted in time");
        else
            backend_failed(c, "backend did not answer in time");
        break;
    case CS_NEGOTIATING:
        if (c->held) {
            release_answer(c);
        } else if (c->tls_handshaking) {
            xe_info("event=timeout peer=%s phase=tls", c->peer);
            finish_close(c);
        } else if (uv_now(c->w->loop) >= c->auth_deadline) {
            client_stream_error(c, "connection-timeout", "authentication took too long");
        } else {
            client_stream_error(c, "connection-timeout", "idle before authentication");
        }
        break;
    case CS_SPLICED:
        if (c->end_pending) { /* the backend's stanza did not end in time */
            xe_info("event=close peer=%s jid=%s reason=\"no stanza boundary in time\"",
                    c->peer, c->jid ? c->jid : "-");
            close_conn(c);
        }
        break;
    }
}

static void
on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    bool corked = c->st != CS_SPLICED && !c->closed;

    if (corked)
        cork(c);
    timer_cb(t);
    if (corked)
        uncork(c);
}

static void
tls_established(struct conn *c)
{
    char alpn[32];
    const char *sni = xe_tls_sni(c->tls);

    xe_metrics_inc(XE_M_TLS, xe_tls_version(c->tls), NULL);
    xe_debug("event=tls peer=%s version=%s cipher=%s sni=%s alpn=%s", c->peer,
             xe_tls_version(c->tls), xe_tls_cipher(c->tls), sni ? sni : "-",
             xe_tls_alpn(c->tls, alpn, sizeof(alpn)) ? alpn : "-");
    xe_c2s_tls_up(c->c2s, c->direct ? sni : NULL);
    {
        struct xe_cbind cb[XE_CB_MAX];
        size_t n = xe_tls_channel_bindings(c->tls, c->gen->conf->tls13_tls_unique, cb,
                                           XE_CB_MAX);
        xe_c2s_set_channel_bindings(c->c2s, cb, n);
        OPENSSL_cleanse(cb, sizeof(cb));
    }
    {
        /* a client certificate, verified against the domain's client_ca */
        const char *dom = c->direct ? (sni ? sni : c->gen->conf->domains[0].name)
                                    : xe_c2s_domain(c->c2s);
        const struct xe_domain_conf *d = dom ? xe_conf_domain(c->gen->conf, dom) : NULL;
        char(*ids)[3072];
        size_t n;

        if (d == NULL || d->client_ca == NULL)
            return;
        ids = xe_calloc(XE_MAX_PEER_IDS, sizeof(*ids));
        n = xe_tls_peer_identities(c->tls, d->client_identities, ids, XE_MAX_PEER_IDS);
        if (n > 0)
            xe_debug("event=client-certificate peer=%s identity=%s count=%zu", c->peer,
                     ids[0], n);
        xe_c2s_set_peer_identities(c->c2s, (const char(*)[3072])ids, n);
        free(ids);
    }
}

static void
start_tls(struct conn *c)
{
    c->tls = xe_tls_new(c->gen->tls_starttls, xe_c2s_domain(c->c2s));
    if (c->tls == NULL) {
        xe_err("event=tls-error peer=%s error=\"cannot create a TLS session\"", c->peer);
        finish_close(c);
        return;
    }
    c->tls_handshaking = true;
    uv_timer_start(&c->timer, on_timer, c->gen->conf->tls_timeout_ms, 0);
}

/* Non-SASL authentication (XEP-0078) succeeded: no stream restart follows,
 * so what the client sent after its iq is already the backend's; the
 * backend binds the resource before the session is spliced. */
static void
start_iq_auth_session(struct conn *c, const char *data, size_t n)
{
    uv_timer_stop(&c->timer);
    c->iq_auth = true;
    c->client_restarted = true;
    if (n > 0 && xe_buf_append(&c->to_backend_pending, data, n) < 0) {
        client_stream_error(c, "policy-violation",
                            "too much data before the session started");
        return;
    }
    start_backend(c);
}

static void
client_plain(struct conn *c, const char *data, size_t n)
{
    if (c->st == CS_SPLICED) {
        if (c->reg) {
            reg_client(c, data, n);
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
            end_session(c, "policy-violation", "stanza too large");
            return;
        }
        c->bytes_up += n;
        xe_metrics_bytes(true, n);
        write_raw(c, false, data, n);
        return;
    }
    if (c->client_restarted) {
        if (xe_buf_append(&c->to_backend_pending, data, n) < 0)
            client_stream_error(c, "policy-violation",
                                "too much data before the session started");
        return;
    }
    if (c->held) { /* reading is stopped; in case a read was under way */
        if (xe_buf_append(&c->held_in, data, n) < 0)
            client_stream_error(c, "policy-violation",
                                "too much data during authentication");
        return;
    }
    while (n > 0 && !c->closed && c->c2s) {
        size_t used = 0;
        enum xe_c2s_action a = xe_c2s_feed(c->c2s, data, n, &used);

        data += used;
        n -= used;
        if (c->hold_ms > 0 &&
            (a == XE_C2S_CONTINUE || a == XE_C2S_CLOSE || a == XE_C2S_AUTHENTICATED)) {
            /* (a success after failures pipelined in one read waits too) */
            hold_answer(c, a, data, n);
            return;
        }
        c->hold_ms = 0;
        flush_c2s(c);
        switch (a) {
        case XE_C2S_CONTINUE:
            break;
        case XE_C2S_STARTTLS:
            /* anything pipelined after <starttls/> is dropped (command injection) */
            for (size_t i = 0; i < n; i++)
                if (strchr(" \t\r\n", data[i]) == NULL) { /* more than white space */
                    xe_info("event=starttls-injection peer=%s dropped=%zu", c->peer, n);
                    break;
                }
            start_tls(c);
            return;
        case XE_C2S_AUTHENTICATED:
            uv_timer_stop(&c->timer);
            start_backend(c);
            break;
        case XE_C2S_RESTARTED:
            c->client_restarted = true;
            if (c->backend_failed) {
                client_stream_error(c, "remote-connection-failed",
                                    c->fail_text ? c->fail_text : XE_TEXT_UNAVAILABLE);
                return;
            }
            if (n > 0 && xe_buf_append(&c->to_backend_pending, data, n) < 0) {
                client_stream_error(c, "policy-violation",
                                    "too much data before the session started");
                return;
            }
            maybe_splice(c);
            return;
        case XE_C2S_IQ_AUTHED:
            start_iq_auth_session(c, data, n);
            return;
        case XE_C2S_COMPRESS:
            /* <compressed/> went out as it is; from here both ways are zlib */
            if (compress_start(c) == 0)
                client_input(c, data, n);
            return;
        case XE_C2S_SPLICE: {
            /* the element the core read after offering compression, if it
             * was not for it, then the rest */
            size_t hlen;
            const unsigned char *head = xe_c2s_splice_bytes(c->c2s, &hlen);

            c->client_restarted = true;
            if (c->backend_failed) {
                client_stream_error(c, "remote-connection-failed",
                                    c->fail_text ? c->fail_text : XE_TEXT_UNAVAILABLE);
                return;
            }
            if (xe_buf_append(&c->to_backend_pending, head, hlen) < 0 ||
                xe_buf_append(&c->to_backend_pending, data, n) < 0) {
                client_stream_error(c, "policy-violation",
                                    "too much data before the session started");
                return;
            }
            splice(c);
            return;
        }
        case XE_C2S_CLOSE:
            close_conn(c);
            return;
        }
    }
}

static void
client_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (n == 0 || c->closed)
        return;
    if (n < 0) {
        xe_debug("event=client-closed peer=%s jid=%s reason=\"%s\"", c->peer,
                 c->jid ? c->jid : "-", uv_strerror((int)n));
        c->client_eof = true;
        uv_read_stop(s);
        if (c->st == CS_CLOSING) {
            if (c->shutdown_sent || c->to_client_q == 0)
                finish_close(c);
            return;
        }
        close_conn(c);
        return;
    }
    if (c->st == CS_CLOSING)
        return; /* what a closing client still sends is dropped */
    if (c->proxy) {
        proxy_input(c, buf->base, (size_t)n);
        return;
    }
    if (c->st == CS_NEGOTIATING && !c->tls_handshaking && !c->held)
        arm_preauth_timer(c); /* the client spoke: the idle time starts again */
    if (c->tls == NULL) {
        client_input(c, buf->base, (size_t)n);
        return;
    }
    if (xe_tls_feed(c->tls, buf->base, (size_t)n) < 0) {
        finish_close(c);
        return;
    }
    if (c->tls_handshaking) {
        int r = xe_tls_handshake(c->tls);
        flush_tls(c);
        if (r == XE_TLS_WANT || c->closed)
            return;
        if (r < 0) {
            xe_metrics_inc(XE_M_TLS_FAILED, NULL, NULL);
            xe_info("event=tls-failed peer=%s error=\"%s\"", c->peer,
                    xe_tls_error(c->tls));
            finish_close(c);
            return;
        }
        c->tls_handshaking = false;
        c->auth_deadline = uv_now(c->w->loop) + c->gen->conf->auth_timeout_ms;
        arm_preauth_timer(c);
        tls_established(c);
    }
    read_tls_plain(c);
}

/* Before the splice, what this read makes goes out when it returns. */
static void
on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    bool corked = c->st != CS_SPLICED && !c->closed;

    if (corked)
        cork(c);
    client_read_cb(s, n, buf);
    if (corked)
        uncork(c);
}

/* Decrypt what TLS holds and hand it on, until it is empty or an answer is
 * held. */
static void
read_tls_plain(struct conn *c)
{
    while (!c->closed && c->st != CS_CLOSING && !c->held) {
        int r = xe_tls_read(c->tls, c->w->plain_slab, sizeof(c->w->plain_slab));
        if (r > 0) {
            client_input(c, c->w->plain_slab, (size_t)r);
            continue;
        }
        if (r == XE_TLS_WANT)
            break;
        if (r == XE_TLS_CLOSED) {
            xe_debug("event=client-close-notify peer=%s", c->peer);
        } else {
            xe_info("event=tls-failed peer=%s error=\"%s\"", c->peer,
                    xe_tls_error(c->tls));
        }
        close_conn(c);
        return;
    }
    flush_tls(c);
}

static void
format_peer(uv_tcp_t *t, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss), n = -1;
    char ip[64] = "?";

    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            n = snprintf(out, len, "%s:%d", ip,
                         ntohs(((struct sockaddr_in *)&ss)->sin_port));
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            n = snprintf(out, len, "[%s]:%d", ip,
                         ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        }
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

static void conn_start(struct conn *c);
static void proxy_accept(struct conn *c, const struct xe_listener_conf *lc);

static void
on_connection(uv_stream_t *ls, int status)
{
    struct listener *l = ls->data;
    struct xe_server *srv = l->srv;
    struct worker *w = l->w;
    struct conn *c;
    const char *full = NULL;
    unsigned max, pre;

    if (status < 0) {
        xe_warn("event=accept-failed error=\"%s\"", uv_strerror(status));
        return;
    }
    srv_lock(srv); /* the caps count every worker's */
    eff_limits(srv, srv->gen->conf, &max, &pre);
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
        char peer[64] = "-";
        uv_tcp_init(w->loop, t);
        if (uv_accept(ls, (uv_stream_t *)t) == 0) {
            if (strcmp(full, "stopping") != 0)
                format_peer(t, peer, sizeof(peer));
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
    c->gen = gen_ref(srv->gen);
    c->id = ++srv->next_id;
    srv_unlock(srv);
    c->direct = l->lc->kind == XE_LISTEN_DIRECT_TLS;
    uv_tcp_init(w->loop, &c->client);
    uv_timer_init(w->loop, &c->timer);
    c->client.data = c->timer.data = c;
    c->handles = 2;
    xe_buf_init(&c->to_backend_pending, c->gen->conf->pump_hard_cap);
    xe_buf_init(&c->to_client_pending, c->gen->conf->pump_hard_cap);
    xe_buf_init(&c->held_in, 2 * XE_READ_CHUNK);
    xe_buf_init(&c->zin, XE_MAX_INFLATE_PENDING);
    xe_buf_init(&c->cork_buf[0], XE_CORK_MAX);
    xe_buf_init(&c->cork_buf[1], XE_CORK_MAX);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    if (uv_accept(ls, (uv_stream_t *)&c->client) != 0) {
        finish_close(c);
        return;
    }
    format_peer(&c->client, c->peer, sizeof(c->peer));
    c->accepted_ms = uv_now(w->loop);
    c->since = (int64_t)time(NULL);
    xe_metrics_inc(XE_M_ACCEPTED, c->direct ? "direct_tls" : "starttls", NULL);
    if (l->lc->proxy_protocol) {
        proxy_accept(c, l->lc); /* conn_start once the header is read */
        return;
    }
    conn_start(c);
}

/* The connection's own life begins: at the accept, or once a trusted
 * proxy's header has said whose connection it is (c->sa). */
static void
conn_start(struct conn *c)
{
    struct xe_server *srv = c->srv;
    struct xe_c2s_params p;

    {
        int sl = sizeof(c->sa);
        enum xe_addrlimit_result ar = XE_AL_OK;
        char key[64] = "-";

        if (c->sa.ss_family != AF_UNSPEC ||
            uv_tcp_getpeername(&c->client, (struct sockaddr *)&c->sa, &sl) == 0)
            ar = xe_addrlimit_acquire(srv->al, (struct sockaddr *)&c->sa,
                                      uv_now(c->w->loop), key, sizeof(key));
        if (ar != XE_AL_OK) {
            refused(c->w, xe_addrlimit_result_name(ar), key);
            finish_close(c);
            return;
        }
        c->counted = true;
        snprintf(c->addr_key, sizeof(c->addr_key), "%s", key);
    }
    uv_tcp_nodelay(&c->client, 1);
    p.conf = c->gen->conf;
    p.tls = c->direct;
    p.peer = c->peer;
    p.guard = &lockout_guard;
    p.guard_ctx = c;
    c->c2s = xe_c2s_new(&p);
    if (c->c2s == NULL) {
        finish_close(c);
        return;
    }
    if (c->direct) {
        c->tls = xe_tls_new(c->gen->tls_direct, NULL);
        if (c->tls == NULL) {
            finish_close(c);
            return;
        }
        c->tls_handshaking = true;
        uv_timer_start(&c->timer, on_timer, c->gen->conf->tls_timeout_ms, 0);
    } else {
        c->auth_deadline = uv_now(c->w->loop) + c->gen->conf->auth_timeout_ms;
        arm_preauth_timer(c);
    }
    xe_debug("event=accept peer=%s listener=%s", c->peer,
             c->direct ? "direct_tls" : "starttls");
    uv_read_start((uv_stream_t *)&c->client, on_alloc, on_client_read);
}

/* ---- the PROXY protocol (proxy.h) ----------------------------------------- */

/* A trusted proxy did not send its header in time. */
static void
on_proxy_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->closed)
        return;
    if (c->st == CS_CLOSING) {
        finish_close(c);
        return;
    }
    xe_info("event=timeout peer=%s phase=proxy", c->peer);
    finish_close(c);
}

/* On a proxy_protocol listener: only a trusted source may speak, and it
 * must start with a PROXY header (read by proxy_input), within the TLS
 * handshake's time. Others are closed at once (logged at most once a
 * second, with the count of those not logged). */
static void
proxy_accept(struct conn *c, const struct xe_listener_conf *lc)
{
    struct worker *w = c->w;
    int sl = sizeof(c->sa);

    if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&c->sa, &sl) != 0 ||
        !xe_cidr_match(lc->proxy_from, lc->n_proxy_from, (struct sockaddr *)&c->sa)) {
        uint64_t now = uv_now(w->loop);

        xe_metrics_inc(XE_M_REFUSED, "proxy_untrusted", NULL);
        if (w->proxy_logged_ms && now - w->proxy_logged_ms < 1000) {
            w->proxy_unlogged++;
        } else {
            xe_warn("event=proxy-refused peer=%s reason=\"not a trusted proxy "
                    "(proxy_from)\" also_refused=%lu",
                    c->peer, w->proxy_unlogged);
            w->proxy_logged_ms = now;
            w->proxy_unlogged = 0;
        }
        finish_close(c);
        return;
    }
    sl = sizeof(c->local);
    if (uv_tcp_getsockname(&c->client, (struct sockaddr *)&c->local, &sl) != 0)
        memset(&c->local, 0, sizeof(c->local));
    c->proxy = xe_proxy_new(c->gen->conf->max_proxy_header);
    uv_tcp_nodelay(&c->client, 1);
    uv_timer_start(&c->timer, on_proxy_timer, c->gen->conf->tls_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->client, on_alloc, on_client_read);
}

/* The first bytes from a trusted proxy: its header, then the client's own
 * stream. The address it carries is the client's from now on (the log, the
 * per-address limits and lockouts, the backend's PROXY header); LOCAL or
 * UNKNOWN keep the connection's own. */
static void
proxy_input(struct conn *c, const char *data, size_t n)
{
    const struct xe_proxy_info *info;
    char via[sizeof(c->peer)];
    size_t used;
    uv_buf_t rest;

    switch (xe_proxy_feed(c->proxy, data, n, &used)) {
    case XE_PROXY_MORE:
        return;
    case XE_PROXY_ERROR:
        xe_metrics_inc(XE_M_REFUSED, "proxy_bad_header", NULL);
        xe_info("event=proxy-failed peer=%s reason=\"%s\"", c->peer,
                xe_proxy_error(c->proxy));
        finish_close(c);
        return;
    case XE_PROXY_DONE:
        break;
    }
    info = xe_proxy_info(c->proxy);
    memcpy(via, c->peer, sizeof(via));
    if (info->addresses) {
        memcpy(&c->sa, &info->src, sizeof(c->sa));
        memcpy(&c->local, &info->dst, sizeof(c->local));
        xe_proxy_format((const struct sockaddr *)&c->sa, c->peer, sizeof(c->peer));
    }
    xe_info("event=proxy peer=%s via=%s version=%d%s", c->peer, via, info->version,
            info->addresses ? "" : " addresses=none");
    xe_proxy_free(&c->proxy);
    uv_timer_stop(&c->timer);
    conn_start(c);
    if (c->closed || used == n)
        return;
    rest = uv_buf_init((char *)data + used, (unsigned)(n - used));
    on_client_read((uv_stream_t *)&c->client, (ssize_t)rest.len, &rest);
}

/* A pool with proxy_protocol: a PROXY v2 header, the client's address and
 * the one it reached, before anything else on the backend connection. */
static void
proxy_send(struct conn *c)
{
    unsigned char hdr[XE_PROXY_V2_OUT_MAX];
    size_t n;

    if (c->local.ss_family == AF_UNSPEC) {
        int sl = sizeof(c->local);
        if (uv_tcp_getsockname(&c->client, (struct sockaddr *)&c->local, &sl) != 0)
            memset(&c->local, 0, sizeof(c->local));
    }
    n = xe_proxy_write_v2((const struct sockaddr *)&c->sa,
                          (const struct sockaddr *)&c->local, hdr, sizeof(hdr));
    write_raw(c, false, hdr, n);
}

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
    unsigned long n[8] = {0};

    for (const struct conn *c = w->conns; c; c = c->next)
        n[(c->direct ? 4 : 0) + c->st]++;
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
    unsigned long n[2][4] = {{0}};
    struct xe_buf counts;
    unsigned long *sessions;
    size_t per;

    xe_buf_init(&counts, 0);
    /* (no reload can come in between: reloads run on this thread) */
    on_workers(srv, w_count_states, NULL, &counts);
    srv_lock(srv);
    g = srv->gen;
    per = (8 + g->n_bs) * sizeof(unsigned long);
    sessions = xe_calloc(g->n_bs + 1, sizeof(*sessions));
    for (size_t off = 0; off + per <= counts.len; off += per) {
        unsigned long v;
        for (size_t i = 0; i < 8 + g->n_bs; i++) {
            memcpy(&v, counts.data + off + i * sizeof(v), sizeof(v));
            if (i < 8)
                n[i / 4][i % 4] += v;
            else
                sessions[i - 8] += v;
        }
    }
    xe_buf_free(&counts);
    xe_buf_append_str(out,
                      "# HELP xedge_connections Open client connections, by listener "
                      "kind and state.\n# TYPE xedge_connections gauge\n");
    for (int l = 0; l < 2; l++)
        for (int s = 0; s < 4; s++)
            xe_buf_appendf(out, "xedge_connections{listener=\"%s\",state=\"%s\"} %lu\n",
                           l ? "direct_tls" : "starttls", states[s], n[l][s]);
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
    xe_buf_append_str(out, "# HELP xedge_backend_draining Whether a backend server is "
                           "draining (no new sessions).\n# TYPE "
                           "xedge_backend_draining gauge\n");
    for (size_t i = 0; i < g->n_bs; i++)
        xe_buf_appendf(out, "xedge_backend_draining{pool=\"%s\",backend=\"%s\"} %d\n",
                       g->bs[i]->pool, g->bs[i]->name, g->bs[i]->st.draining ? 1 : 0);
    {
        unsigned max, pre;
        eff_limits(srv, g->conf, &max, &pre);
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

int
xe_server_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_server **srv_r,
              char **error_r)
{
    struct xe_server *srv = xe_calloc(1, sizeof(*srv));
    struct xe_addrlimit_conf alc;
    struct xe_lockout_conf loc;

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
    if ((srv->gen = gen_new(conf, NULL, error_r)) == NULL) {
        xe_server_free(srv_r);
        return -1;
    }
    gen_adopt(srv->gen, NULL);
    srv->gen->number = 1;
    allow_mech_labels(conf);
    xe_metrics_set_gauges(metrics_gauges, srv);
    addrlimit_conf(conf, &alc);
    srv->al = xe_addrlimit_new(&alc);
    lockout_conf(conf, &loc);
    srv->lockout = xe_lockout_new(&loc);
    if (xe_s2s_io_new(loop, conf, &srv->s2s, error_r) < 0 ||
        xe_route_io_new(loop, conf, &srv->route, error_r) < 0) {
        xe_server_free(srv_r);
        return -1;
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

static void log_limits(const struct xe_server *srv, const struct xe_conf *conf,
                       const char *when);

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
    if ((g = gen_new(conf, srv->gen, error_r)) == NULL) {
        srv_unlock(srv);
        xe_conf_free(&conf);
        return -1;
    }
    if (xe_s2s_io_reload(srv->s2s, conf, error_r) < 0 ||
        xe_route_io_reload(srv->route, conf, error_r) < 0) {
        gen_unref(&g);
        srv_unlock(srv);
        xe_conf_free(&conf);
        return -1;
    }
    g->owned = conf;
    g->number = srv->gen->number + 1;
    gen_adopt(g, srv->gen);
    if (srv->health_inited)
        log_backends(g);
    gen_unref(&srv->gen); /* freed now unless a connection still holds it */
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

static void acct_async_init(struct xe_server *srv);

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
worker_main(void *arg)
{
    struct worker *w = arg;

    xe_log_worker = (int)w->index;
    uv_run(w->loop, UV_RUN_DEFAULT);
    /* everything is closed (xe_server_stop): let the close callbacks run */
    uv_run(w->loop, UV_RUN_DEFAULT);
    on_worker_async(&w->async); /* jobs queued as it closed: answered, empty */
    if (uv_loop_close(w->loop) != 0)
        xe_warn("event=worker-loop-busy worker=%u", w->index);
}

/* How many sessions the descriptor limit serves: two descriptors each (the
 * client, then its backend), after the listeners and the reserve
 * (xelimits.h). 0: no limit known. */
static unsigned
fd_cap(const struct xe_server *srv, const struct xe_conf *conf)
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

    eff_limits(srv, conf, &max, &pre);
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
    }
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
            r = xe_tcp_listen(&l->tcp, lc->address, port, many, on_connection);
            if (r < 0) {
                *error_r = xe_asprintf("cannot listen on %s port %d: %s", lc->address,
                                       lc->port, uv_strerror(r));
                return -1;
            }
            if (k == 0)
                xe_info("event=listen address=%s port=%d kind=%s", lc->address, lc->port,
                        lc->kind == XE_LISTEN_STARTTLS ? "starttls" : "direct_tls");
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
    srv->fd_cap = fd_cap(srv, conf);
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

static void stop_health(struct xe_server *srv);

/* W stops accepting (worker 0: and the health checks stop). */
static void
stop_listening(struct worker *w)
{
    if (w->index == 0) {
        stop_health(w->srv);
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
            close_conn(c);
        else
            client_stream_error(c, "system-shutdown", "the server is shutting down");
        if (!c->closed)
            finish_close(c); /* the loop is about to end: do not wait for flushes */
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
static void
worker_drained(struct worker *w)
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
    worker_drained(w);
}

/* The grace period is over: every session ends with <system-shutdown/>. */
static void
shutdown_end_sessions(uv_timer_t *t)
{
    struct worker *w = t->data;

    w->draining = true;
    xe_info("event=shutdown-ending-sessions connections=%u", w->n_conns);
    if (w->n_conns == 0) {
        worker_drained(w);
        return;
    }
    uv_timer_start(&w->shutdown_timer, shutdown_force, CLOSE_GRACE_MS + 2000, 0);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        end_session(c, "system-shutdown", "the server is shutting down");
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
            "session id=%llu jid=%s peer=%s listener=%s state=%s tls=%s mech=%s "
            "backend=%s since=%lld age_s=%lld bytes_up=%llu bytes_down=%llu%s\n",
            (unsigned long long)c->id, c->jid ? c->jid : "-", c->peer,
            c->direct ? "direct_tls" : "starttls", conn_states[c->st],
            c->tls_version ? c->tls_version : "-", c->mech[0] ? c->mech : "-",
            c->server && c->st == CS_SPLICED ? c->server->name : "-", (long long)c->since,
            (long long)(now - c->since), (unsigned long long)c->bytes_up,
            (unsigned long long)c->bytes_down, wk);
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
        end_session(c, "policy-violation", "the administrator closed this session");
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
        end_session(c, "not-authorized", text);
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
static void
end_account_async(struct xe_server *srv, const char *jid)
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
    eff_limits(srv, srv->gen->conf, &eff, &pre);
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
    gen_unref(&srv->gen);
    free(srv->workers);
    uv_mutex_destroy(&srv->mu);
    free(srv);
    *srvp = NULL;
}
