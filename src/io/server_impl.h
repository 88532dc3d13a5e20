/* xedge: the types shared by the files of the c2s I/O glue, and the
 * functions they call in each other; not for other modules (server.h is the
 * interface). The files, by concern:
 *   gen.c            configuration generations and the backends' live state
 *   conn_write.c     writes and backpressure over the two streams
 *                    (stream.h: try-write, queue, water marks, cork, TLS)
 *   conn.c           the connection lifecycle: accept, the client stream's
 *                    callbacks, the executor of the login machine
 *                    (src/core/session.h), timers, the single close path
 *   conn_backend.c   backend choice, connect and retry, the backend's reads,
 *                    the splice, in-band registration after authentication
 *   health.c         the backends' health checks
 *   conn_lockout.c   brute-force protection glue (the held answer is the
 *                    login machine's)
 *   conn_compress.c  stream compression (XEP-0138): the client stream's
 *                    transform
 *   conn_proxy.c     the PROXY protocol
 *   conn_ws.c        XMPP over WebSocket (RFC 7395): the client stream's
 *                    transform (xe_srv_xform, on the stream's hook)
 *   conn_register.c  in-band registration's jobs in the thread pool
 *                    (register_io.h), the client not read meanwhile
 *   server.c         workers, start, reload, shutdown, the control views
 */
#ifndef XE_SERVER_IMPL_H
#define XE_SERVER_IMPL_H

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
#include "admit.h"
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
#include "session.h"
#include "stream.h"
#include "tls.h"
#include "userstore.h"
#include "route_io.h"
#include "util.h"
#include "xelimits.h"
#include "zstream.h"

#define CLOSE_GRACE_MS 3000

struct listener {
    uv_tcp_t tcp;
    struct xe_server *srv;
    struct worker *w;
    const struct xe_listener_conf *lc; /* at start (a connection: its generation's) */
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
    struct xe_tls_ctx *tls_ws; /* websocket listeners' (ALPN http/1.1), or NULL */
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
    /* the login its first features offered last (backend.h; WAIT: not
     * known yet), sent ahead of them next time (session.h) */
    enum xe_bhs_login login;
    uint64_t next_check_ms; /* loop time of the next active check */
    bool checking;
    /* admission control of its logins (admit.h), one per worker (each
     * worker's connections queue on their own loop; the caps are split
     * between workers), under the server's lock; allocated at first use */
    struct xe_admit *adm;
    unsigned n_adm;
};

/* An active health check (health.c). */
struct hcheck;

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
    /* FAST tokens on this loop: worker 0's is the server's, the others'
     * their siblings (tokens_io.h), freed as their loop ends */
    struct xe_tokio *tokens;
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
    /* the connections' reads: consumed (copied or decrypted) before the
     * callback returns */
    struct xe_stream_slab slab;
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
    struct xe_tokio *tokens;    /* FAST tokens (tokens_io.h) */
    struct xe_route_io *route;  /* routing between a pool's servers (route_io.h) */
    uv_timer_t health_timer;    /* starts the active health checks when due */
    bool health_inited;
    struct hcheck *checks; /* running */
    struct xe_s2s_io *s2s; /* federation (s2s_io.h), NULL without s2s listeners */
};

static inline void
srv_lock(struct xe_server *srv)
{
    uv_mutex_lock(&srv->mu);
}

static inline void
srv_unlock(struct xe_server *srv)
{
    uv_mutex_unlock(&srv->mu);
}

enum cstate { CS_NEGOTIATING, CS_BACKEND, CS_SPLICED, CS_CLOSING };

/* A transform between TLS and the c2s stream (XMPP over WebSocket,
 * conn_ws.c), on the client stream's transform hook (stream.h; conn.c
 * adapts it). in: the client's bytes after TLS; it hands the stream's on
 * with xe_stream_deliver. out: the stream's bytes for the client (the c2s
 * core's, the backend's), counted already; it writes what goes on the
 * wire (xe_stream_write_below) and flushes TLS. free: the connection is
 * gone. */
struct xe_srv_xform {
    const char *name; /* the transport, for the log, metrics and sessions */
    void (*in)(struct conn *c, const char *data, size_t n);
    int (*out)(struct conn *c, const void *data, size_t len);
    void (*free)(struct conn *c);
};

struct conn {
    struct xe_server *srv;
    struct worker *w; /* the connection lives on its loop */
    struct gen *gen;  /* this connection's generation (a reference) */
    struct conn *prev, *next;
    /* the client's stream (TCP, TLS, compression as its transform; its
     * timer is the connection's) and the backend's (TCP or unix), once
     * backend_inited; the memory goes when both are released */
    struct xe_stream cs, bs;
    int streams; /* not yet released */
    bool backend_inited, closed;
    bool cb_corked;       /* the stream callback running corked both (enter) */
    bool backend_stopped; /* nothing more is read from the backend */
    enum cstate st;
    bool direct;
    /* the login (session.h): its state and decisions, until the splice; the
     * glue carries out its actions (xe_srv_exec) */
    struct xe_sess *sess;
    bool ready_told;                 /* the backend's readiness went to its health */
    const struct xe_pool_conf *pool; /* of server */
    const struct xe_server_conf *server;
    struct bstate *bst; /* server's state: counts this session while set */
    char tail[16]; /* last bytes the backend sent, to see whether it closed its stream */
    size_t tail_len;
    char *jid;
    struct xe_regsplice *reg;   /* spliced, parsing the client (in-band registration) */
    uint64_t reg_used_ms;       /* ... loop time the filter last had the client's bytes */
    struct sockaddr_storage sa; /* the client's address */
    bool reg_rest_armed;        /* the client's timer will rest reg's parser */
    bool counted;               /* in the per-address accounting */
    bool preauth;               /* counted as not yet authenticated */
    char peer[64];
    uint64_t bytes_up, bytes_down;
    uint64_t accepted_ms; /* loop time of the accept (login duration) */
    /* backend retries (pools[].retries) */
    size_t pin;    /* the user's pinned server, or XE_POOL_NONE */
    bool retrying; /* the failed backend connection is closing */
    /* admission control (admit.h): where this login stands at adm_b's
     * server: none, waiting in its queue, given a slot and about to start
     * (the timer of 0 ms starts it off the caller's stack), or holding a
     * slot (until the splice or the end); adm_retry: it is a retry */
    enum { ADM_NONE, ADM_QUEUED, ADM_READY, ADM_PENDING } adm;
    bool adm_retry;
    struct bstate *adm_b;
    struct xe_admit_wait adw;
    uint64_t adm_since_ms; /* loop time it was queued */
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
    char addr_key[64];     /* the lockout key of the client's address */
    bool held;             /* the login holds an answer (xe_sess_held, mirrored) */
    struct xe_zstream *zs; /* the client's stream is compressed (XEP-0138):
                              the transform's object (conn_compress.c) */
    struct xe_buf zin;     /* its compressed bytes held while the backend is full */
    bool zstalled;         /* inflating waits for the backend's queue to drain */
    /* the PROXY protocol (proxy.h) */
    struct xe_proxy *proxy;        /* in: reading the header from a trusted proxy */
    struct sockaddr_storage local; /* the address the client reached */
    bool proxy_out;                /* the pool wants a PROXY header first */
    const struct xe_srv_xform *xf; /* a transform under the stream, or NULL */
    void *xf_ctx;                  /* ... its state */
    /* FAST (conn_fast.c): the token store's requests under way */
    struct xe_tokio_req *fast_req, *tok_req;
    /* in-band registration (conn_register.c): the job under way; the
     * client is not read meanwhile */
    struct xe_regio_req *reg_req;
    char path[8]; /* the login path (sasl1, sasl2, fast, resume), once spliced */
    char *ua;     /* a SASL2 login's user agent, as session list shows it */
};

/* The client's transport: "tcp", or the transform's ("websocket"). */
static inline const char *
xe_srv_transport(const struct conn *c)
{
    return c->xf ? c->xf->name : "tcp";
}

/* gen.c */
void xe_srv_bstate_unref(struct bstate *b);
void xe_srv_gen_adopt(struct gen *g, const struct gen *prev);
struct gen *xe_srv_gen_new(const struct xe_conf *conf, const struct gen *prev,
                           char **error_r);
struct gen *xe_srv_gen_ref(struct gen *g);
void xe_srv_gen_unref(struct gen **gp);
void xe_srv_log_backends(const struct gen *g);

/* conn_fast.c */
void xe_srv_fast_setup(struct conn *c, const struct xe_cbind *cb, size_t n);
void xe_srv_fast_verify(struct conn *c);
void xe_srv_fast_after_auth(struct conn *c);
void xe_srv_fast_cancel(struct conn *c);
const char *xe_srv_login_path(struct conn *c);
void xe_srv_keep_user_agent(struct conn *c);

/* conn_write.c */
void xe_srv_cork(struct conn *c);
void xe_srv_stream_enter(struct xe_stream *s, void *ctx);
void xe_srv_stream_leave(struct xe_stream *s, void *ctx);
struct xe_stream_limits xe_srv_limits(const struct conn *c);
void xe_srv_pause_reading(struct conn *c, bool client);
void xe_srv_resume_reading(struct conn *c, bool client);
int xe_srv_send_client(struct conn *c, const void *data, size_t len);
void xe_srv_uncork(struct conn *c);
int xe_srv_write_raw(struct conn *c, bool to_client, const void *data, size_t len);

/* conn.c */
/* The login's c2s core (NULL once spliced). */
struct xe_c2s *xe_srv_c2s(struct conn *c);
/* Send what the login machine made, arm its timer, then do D. */
void xe_srv_exec(struct conn *c, enum xe_sess_do d);
void xe_srv_client_plain(struct conn *c, const char *data, size_t n);
void xe_srv_client_stream_error(struct conn *c, const char *condition, const char *text);
/* The client-visible outcome of F (xe_sess_outcome), then close. */
void xe_srv_fail(struct conn *c, enum xe_sess_fail f);
/* xe_srv_end_session with the outcome of F. */
void xe_srv_end_session_fail(struct conn *c, enum xe_sess_fail f);
void xe_srv_close_conn(struct conn *c);
void xe_srv_conn_start(struct conn *c);
void xe_srv_eff_limits(const struct xe_server *srv, const struct xe_conf *conf,
                       unsigned *max_r, unsigned *preauth_r);
void xe_srv_finish_close(struct conn *c);
void xe_srv_on_connection(uv_stream_t *ls, int status);
void xe_srv_preauth_end(struct conn *c);
void xe_srv_stream_released(struct xe_stream *s, void *ctx);

/* conn_backend.c */
void xe_srv_end_session(struct conn *c, const char *condition, const char *text);
void xe_srv_reg_client(struct conn *c, const char *data, size_t n);
void xe_srv_reg_deliver(struct conn *c, enum xe_rs_result r, struct xe_buf *up);
/* The client's timer expired on a spliced session with the filter and no
 * end pending: rest its parser if it has been idle, or look again later. */
void xe_srv_reg_rest(struct conn *c);
/* conn_register.c: XE_SD_REGISTER (before authentication) and a spliced
 * request's job (after): run in the thread pool; the close drops them. */
void xe_srv_reg_preauth(struct conn *c);
void xe_srv_reg_postauth(struct conn *c);
void xe_srv_reg_cancel(struct conn *c);
void xe_srv_splice(struct conn *c);
void xe_srv_retry_backend(struct conn *c);
/* Admission control (conn_backend.c): the login gives up its slot or its
 * place in the queue (the splice, a retry, the end; idempotent); the
 * connection's timer while it waits or is about to start (true: handled). */
void xe_srv_admit_release(struct conn *c);
bool xe_srv_admit_timer(struct conn *c);
void xe_srv_start_backend(struct conn *c);

/* health.c */
void xe_srv_health_result(struct xe_server *srv, struct bstate *b, bool ok, bool passive,
                          const char *why);
void xe_srv_stop_health(struct xe_server *srv);

/* conn_lockout.c */
const char *xe_srv_addr_key(const struct conn *c);
extern const struct xe_sess_guard xe_srv_lockout_guard;

/* conn_compress.c */
void xe_srv_client_input(struct conn *c, const char *data, size_t n);
void xe_srv_compress_log_close(const struct conn *c);
int xe_srv_compress_start(struct conn *c);
void xe_srv_inflate_held(struct conn *c);

/* conn_proxy.c */
void xe_srv_proxy_accept(struct conn *c, const struct xe_listener_conf *lc);
void xe_srv_proxy_input(struct conn *c, const char *data, size_t n);
void xe_srv_proxy_send(struct conn *c);
void xe_srv_proxy_timeout(struct conn *c);

/* conn_ws.c */
int xe_srv_ws_accept(struct conn *c, const struct xe_listener_conf *lc);
bool xe_srv_ws_encrypted(const struct conn *c);
bool xe_srv_ws_count_later(const struct conn *c);

/* server.c */
void xe_srv_end_account_async(struct xe_server *srv, const char *jid);
unsigned xe_srv_fd_cap(const struct xe_server *srv, const struct xe_conf *conf);
void xe_srv_worker_drained(struct worker *w);

#endif
