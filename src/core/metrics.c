/* xedge: metrics. See metrics.h. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_SERIES 64    /* per family; beyond: folded into "other" */
#define MAX_ALLOWED 64   /* peer-chosen label values that are kept */
#define MAX_SCRAPES 8    /* HTTP requests served at once */
#define REQUEST_MAX 4096 /* bytes of one request (line and headers) */
#define SCRAPE_TIMEOUT_MS 5000

struct series {
    char labels[256]; /* rendered: name="value",... */
    uint64_t value;
};

struct family {
    const char *name, *help;
    const char *l1, *l2; /* label names (NULL: none) */
    bool l1_peer;        /* l1 is chosen by a peer: keep allowed values only */
    struct series s[MAX_SERIES];
    size_t n;
    const char *l3; /* a third label (NULL: none); its values are xedge's own */
};

static struct family fams[XE_M_N] = {
    [XE_M_ACCEPTED] = {"xedge_connections_accepted_total",
                       "Client connections accepted, by listener kind.", "listener",
                       NULL},
    [XE_M_REFUSED] = {"xedge_connections_refused_total",
                      "Client connections refused at accept, by reason.", "reason", NULL},
    [XE_M_LOGINS] = {"xedge_logins_total",
                     "Login attempts, by mechanism, result and the client's transport.",
                     "mechanism", "result", true, .l3 = "transport"},
    [XE_M_LOCKOUTS] = {"xedge_lockouts_total",
                       "Brute-force lockouts started, by kind (address, account).",
                       "kind", NULL},
    [XE_M_TLS] = {"xedge_tls_handshakes_total",
                  "TLS handshakes completed with clients, by protocol version.",
                  "version", NULL},
    [XE_M_TLS_FAILED] = {"xedge_tls_handshake_failures_total",
                         "TLS handshakes with clients that failed.", NULL, NULL},
    [XE_M_BACKEND_FAILED] = {"xedge_backend_failures_total",
                             "Backend connections or handshakes that failed, by server.",
                             "backend", NULL},
    [XE_M_BACKEND_LOST] = {"xedge_backend_lost_total",
                           "Established sessions whose backend connection was lost.",
                           "backend", NULL},
    [XE_M_BYTES] = {"xedge_bytes_total",
                    "Bytes relayed between clients and backends (up: client to backend).",
                    "direction", NULL},
    [XE_M_STREAM_ERRORS] = {"xedge_stream_errors_total",
                            "Stream errors sent to clients, by condition.", "condition",
                            NULL},
    [XE_M_S2S_STREAMS] = {"xedge_s2s_streams_total",
                          "Server-to-server streams opened, by kind (in: a peer's; out: "
                          "ours to a peer; verify: dialback verification; backend: a "
                          "backend's outgoing; link: to a backend for a peer).",
                          "kind", NULL},
    [XE_M_S2S_AUTH_IN] = {"xedge_s2s_auth_in_total",
                          "Authentications of peers on inbound streams, by mechanism "
                          "(external, dialback, a SASL mechanism of a peer's secret) and "
                          "result (success or the condition).",
                          "mechanism", "result"},
    [XE_M_S2S_AUTH_OUT] = {"xedge_s2s_auth_out_total",
                           "Authentications of ours on outbound streams, by mechanism "
                           "and result (success or the condition).",
                           "mechanism", "result"},
    [XE_M_HEAP_TRIMS] = {"xedge_heap_trims_total",
                         "Times the free heap was given back to the system (malloc_trim) "
                         "after the connections not yet authenticated fell by many.",
                         NULL, NULL},
    [XE_M_ROUTED] =
        {"xedge_routed_stanzas_total",
         "Stanzas routed from one server of a pool to the recipient's home "
         "(doc/pool-routing.md), by sending and receiving server; from "
         "\"federation\": a remote domain's stanza sent straight to the home.",
         "from", "to"},
    [XE_M_ROUTE_REFUSED] = {"xedge_route_refused_total",
                            "Stanzas a pool's server sent for routing that were refused, "
                            "by sending server (\"federation\": a remote domain's stanza "
                            "for a component) and reason (loop, home-down, queue-full, "
                            "bad-address, forged-from).",
                            "from", "reason"},
    [XE_M_ROUTE_MAP_SENDS] =
        {"xedge_route_map_sends_total",
         "Maps of homes sent to routing links (doc/pool-routing.md), "
         "by kind (full: the whole map, in parts; delta: the pins "
         "that changed), one per link.",
         "kind", NULL},
    [XE_M_ROUTE_MAP_BYTES] = {"xedge_route_map_bytes_total",
                              "Bytes of the maps of homes written to routing links, by "
                              "kind (full, delta).",
                              "kind", NULL},
    [XE_M_ADMIN] = {"xedge_admin_actions_total",
                    "Changes made by administrators (xedgectl, the control socket), by "
                    "action.",
                    "action", NULL},
    [XE_M_ACCOUNT_ENDED] = {"xedge_account_sessions_ended_total",
                            "Sessions ended because their account was disabled, removed "
                            "or had its password changed, by reason.",
                            "reason", NULL},
    [XE_M_PURGES] =
        {"xedge_purges_total",
         "Attempts to purge a deleted user's data at its backend, by result "
         "(ok, failed: retried, abandoned: the tombstone changed before the removal).",
         "result", NULL},
    [XE_M_TOKEN_WRITES] = {"xedge_token_writes_total",
                           "FAST token writes (issue, verify, revoke, revoke-user) by "
                           "result (ok, refused: no such user or token, database-down, "
                           "queue-full, failed).",
                           "op", "result"},
    [XE_M_LOGIN_PATHS] = {"xedge_login_paths_total",
                          "Sessions started, by login path (sasl1, iq-auth, sasl2, fast: "
                          "a FAST token, resume: SASL2's inline stream resumption).",
                          "path", NULL},
    [XE_M_BACKEND_QUEUE_REFUSED] = {"xedge_backend_queue_refused_total",
                                    "Logins refused because a backend server's queue of "
                                    "logins was full (max_queued_logins).",
                                    "pool", "backend"},
    [XE_M_REGISTER_JOBS] = {"xedge_register_jobs_total",
                            "In-band registration's jobs in the thread pool (register, "
                            "password, remove) by result (ok, refused: the name taken or "
                            "the account gone, database-down, failed, busy: too many "
                            "under way, dropped: the connection closed meanwhile).",
                            "op", "result"},
};

/* login duration histogram, seconds */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))
static uint64_t hist[N_BUCKETS];
static uint64_t hist_count, hist_sum_ms;

static char allowed[MAX_ALLOWED][64];
static size_t n_allowed;

/* the counters are shared by the worker threads (workers > 1): every
 * update and the rendering hold this lock (the gauges are computed outside
 * it: they ask the workers); bytes are atomics */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static xe_metrics_gauges_fn gauges_fn;
static xe_metrics_gauges_fn extra_fn; /* several nodes: pgsync_io.c */
static void *extra_ctx;
static void *gauges_ctx;

void
xe_metrics_allow_label(const char *value)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_allowed; i++)
        if (strcmp(allowed[i], value) == 0) {
            pthread_mutex_unlock(&mu);
            return;
        }
    if (n_allowed < MAX_ALLOWED && strlen(value) < sizeof(allowed[0]))
        snprintf(allowed[n_allowed++], sizeof(allowed[0]), "%s", value);
    pthread_mutex_unlock(&mu);
}

static bool
is_allowed(const char *value)
{
    for (size_t i = 0; i < n_allowed; i++)
        if (strcmp(allowed[i], value) == 0)
            return true;
    return false;
}

/* A label value as Prometheus wants it: backslash, quote and newline
 * escaped; our values are short names, so also bounded. */
static void
put_value(char *out, size_t max, const char *v)
{
    size_t o = 0;

    for (; *v && o + 3 < max; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

void
xe_metrics_add(enum xe_metric m, uint64_t delta, const char *l1, const char *l2)
{
    xe_metrics_add3(m, delta, l1, l2, NULL);
}

void
xe_metrics_add3(enum xe_metric m, uint64_t delta, const char *l1, const char *l2,
                const char *l3)
{
    struct family *f;
    char key[sizeof(((struct series *)0)->labels)], v1[64], v2[64], v3[32];
    size_t i;

    if ((unsigned)m >= XE_M_N)
        return;
    f = &fams[m];
    pthread_mutex_lock(&mu);
    key[0] = '\0';
    if (f->l1) {
        if (l1 == NULL || (f->l1_peer && !is_allowed(l1)))
            l1 = "other";
        put_value(v1, sizeof(v1), l1);
        if (f->l2 && f->l3) {
            put_value(v2, sizeof(v2), l2 ? l2 : "other");
            put_value(v3, sizeof(v3), l3 ? l3 : "other");
            snprintf(key, sizeof(key), "%s=\"%s\",%s=\"%s\",%s=\"%s\"", f->l1, v1, f->l2,
                     v2, f->l3, v3);
        } else if (f->l2) {
            put_value(v2, sizeof(v2), l2 ? l2 : "other");
            snprintf(key, sizeof(key), "%s=\"%s\",%s=\"%s\"", f->l1, v1, f->l2, v2);
        } else {
            snprintf(key, sizeof(key), "%s=\"%s\"", f->l1, v1);
        }
    }
    for (i = 0; i < f->n; i++)
        if (strcmp(f->s[i].labels, key) == 0)
            break;
    if (i == f->n) {
        if (f->n == MAX_SERIES) {
            i = MAX_SERIES - 1; /* the last series collects the rest */
            snprintf(f->s[i].labels, sizeof(f->s[i].labels), "%s=\"other\"%s%s%s%s%s%s",
                     f->l1 ? f->l1 : "", f->l2 ? "," : "", f->l2 ? f->l2 : "",
                     f->l2 ? "=\"other\"" : "", f->l3 ? "," : "", f->l3 ? f->l3 : "",
                     f->l3 ? "=\"other\"" : "");
        } else {
            snprintf(f->s[i].labels, sizeof(f->s[i].labels), "%s", key);
            f->s[i].value = 0;
            f->n++;
        }
    }
    f->s[i].value += delta;
    pthread_mutex_unlock(&mu);
}

static _Atomic uint64_t bytes[2]; /* XE_M_BYTES: down, up */

void
xe_metrics_bytes(bool up, uint64_t n)
{
    atomic_fetch_add_explicit(&bytes[up], n, memory_order_relaxed);
}

void
xe_metrics_login_duration(uint64_t ms)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < N_BUCKETS; i++)
        if ((double)ms / 1000.0 <= buckets[i])
            hist[i]++;
    hist_count++;
    hist_sum_ms += ms;
    pthread_mutex_unlock(&mu);
}

void
xe_metrics_set_gauges(xe_metrics_gauges_fn fn, void *ctx)
{
    pthread_mutex_lock(&mu);
    gauges_fn = fn;
    gauges_ctx = ctx;
    pthread_mutex_unlock(&mu);
}

void
xe_metrics_set_extra_gauges(xe_metrics_gauges_fn fn, void *ctx)
{
    pthread_mutex_lock(&mu);
    extra_fn = fn;
    extra_ctx = ctx;
    pthread_mutex_unlock(&mu);
}

void
xe_metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t m = 0; m < XE_M_N; m++)
        fams[m].n = 0;
    memset(hist, 0, sizeof(hist));
    atomic_store(&bytes[0], 0);
    atomic_store(&bytes[1], 0);
    hist_count = hist_sum_ms = 0;
    n_allowed = 0;
    pthread_mutex_unlock(&mu);
}

void
xe_metrics_render(struct xe_buf *out)
{
    xe_metrics_gauges_fn fn;
    void *ctx;

    pthread_mutex_lock(&mu);
    for (size_t m = 0; m < XE_M_N; m++) {
        const struct family *f = &fams[m];
        xe_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", f->name, f->help,
                       f->name);
        if (m == XE_M_BYTES) { /* kept apart (xe_metrics_bytes) */
            xe_buf_appendf(out,
                           "%s{direction=\"up\"} %llu\n%s{direction=\"down\"} %llu\n",
                           f->name, (unsigned long long)atomic_load(&bytes[1]), f->name,
                           (unsigned long long)atomic_load(&bytes[0]));
            continue;
        }
        if (f->l1 == NULL && f->n == 0)
            xe_buf_appendf(out, "%s 0\n", f->name);
        for (size_t i = 0; i < f->n; i++) {
            if (f->s[i].labels[0])
                xe_buf_appendf(out, "%s{%s} %llu\n", f->name, f->s[i].labels,
                               (unsigned long long)f->s[i].value);
            else
                xe_buf_appendf(out, "%s %llu\n", f->name,
                               (unsigned long long)f->s[i].value);
        }
    }
    xe_buf_append_str(out, "# HELP xedge_login_duration_seconds From the TCP accept to "
                           "the spliced session.\n"
                           "# TYPE xedge_login_duration_seconds histogram\n");
    for (size_t i = 0; i < N_BUCKETS; i++)
        xe_buf_appendf(out, "xedge_login_duration_seconds_bucket{le=\"%g\"} %llu\n",
                       buckets[i], (unsigned long long)hist[i]);
    xe_buf_appendf(out,
                   "xedge_login_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                   "xedge_login_duration_seconds_sum %.3f\n"
                   "xedge_login_duration_seconds_count %llu\n",
                   (unsigned long long)hist_count, (double)hist_sum_ms / 1000.0,
                   (unsigned long long)hist_count);
    fn = gauges_fn;
    ctx = gauges_ctx;
    xe_metrics_gauges_fn efn = extra_fn;
    void *ectx = extra_ctx;
    pthread_mutex_unlock(&mu);
    if (fn)
        fn(ctx, out);
    if (efn)
        efn(ectx, out);
}

/* ---- the HTTP endpoint ---------------------------------------------------- */

struct xe_metrics_http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct scrape *scrapes;
    unsigned n_scrapes;
    bool stopping;
};

struct scrape {
    struct xe_metrics_http *h;
    struct scrape *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    int handles;
    bool answered, closing;
    char req[REQUEST_MAX + 1];
    size_t len;
    struct xe_buf resp;
};

static void
scrape_freed(uv_handle_t *hd)
{
    struct scrape *s = hd->data;

    if (--s->handles > 0)
        return;
    xe_buf_free(&s->resp);
    free(s);
}

static void
scrape_close(struct scrape *s)
{
    struct xe_metrics_http *h = s->h;
    struct scrape **pp;

    if (s->closing)
        return;
    s->closing = true;
    for (pp = &h->scrapes; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    h->n_scrapes--;
    uv_close((uv_handle_t *)&s->tcp, scrape_freed);
    uv_close((uv_handle_t *)&s->timer, scrape_freed);
}

static void
scrape_written(uv_write_t *w, int status)
{
    (void)status;
    scrape_close(w->data);
}

static void
respond(struct scrape *s, const char *status, const char *ctype,
        const struct xe_buf *body)
{
    uv_buf_t b;

    s->answered = true;
    uv_read_stop((uv_stream_t *)&s->tcp);
    xe_buf_appendf(&s->resp,
                   "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, ctype, body ? body->len : 0);
    if (body)
        xe_buf_append(&s->resp, body->data, body->len);
    b = uv_buf_init((char *)s->resp.data, (unsigned)s->resp.len);
    s->wreq.data = s;
    if (uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, scrape_written) < 0)
        scrape_close(s);
}

static void
answer(struct scrape *s)
{
    struct xe_buf body;
    char *sp;

    xe_buf_init(&body, 0);
    s->req[s->len] = '\0';
    /* the request line: METHOD SP TARGET SP VERSION */
    if (strncmp(s->req, "GET ", 4) != 0 && strncmp(s->req, "HEAD ", 5) != 0) {
        xe_buf_append_str(&body, "only GET\n");
        respond(s, "405 Method Not Allowed", "text/plain", &body);
    } else if ((sp = strchr(s->req, ' ')) == NULL ||
               (strncmp(sp + 1, "/metrics ", 9) != 0 &&
                strncmp(sp + 1, "/metrics? ", 10) != 0)) {
        xe_buf_append_str(&body, "see /metrics\n");
        respond(s, "404 Not Found", "text/plain", &body);
    } else {
        xe_metrics_render(&body);
        if (s->req[0] == 'H')
            body.len = 0; /* HEAD: headers only (the length is of no body) */
        respond(s, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body);
    }
    xe_buf_free(&body);
}

static void
scrape_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct scrape *s = hd->data;

    (void)suggested;
    buf->base = s->req + s->len;
    buf->len = REQUEST_MAX - s->len;
}

static void
scrape_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct scrape *s = st->data;

    (void)buf;
    if (n == 0 || s->answered)
        return;
    if (n < 0) {
        scrape_close(s);
        return;
    }
    s->len += (size_t)n;
    s->req[s->len] = '\0';
    if (strstr(s->req, "\r\n\r\n") || strstr(s->req, "\n\n")) {
        answer(s);
    } else if (s->len >= REQUEST_MAX) {
        respond(s, "431 Request Header Fields Too Large", "text/plain", NULL);
    }
}

static void
scrape_timeout(uv_timer_t *t)
{
    scrape_close(t->data);
}

static void
on_scrape(uv_stream_t *ls, int status)
{
    struct xe_metrics_http *h = ls->data;
    struct scrape *s;

    if (status < 0)
        return;
    s = xe_calloc(1, sizeof(*s));
    s->h = h;
    uv_tcp_init(h->loop, &s->tcp);
    uv_timer_init(h->loop, &s->timer);
    s->tcp.data = s->timer.data = s;
    s->handles = 2;
    xe_buf_init(&s->resp, 0);
    s->next = h->scrapes;
    h->scrapes = s;
    h->n_scrapes++;
    if (uv_accept(ls, (uv_stream_t *)&s->tcp) != 0 || h->n_scrapes > MAX_SCRAPES) {
        scrape_close(s);
        return;
    }
    uv_timer_start(&s->timer, scrape_timeout, SCRAPE_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&s->tcp, scrape_alloc, scrape_read);
}

static void
listener_freed(uv_handle_t *hd)
{
    free(hd->data);
}

int
xe_metrics_http_start(uv_loop_t *loop, const char *address, int port,
                      struct xe_metrics_http **h_r, char **error_r)
{
    struct xe_metrics_http *h = xe_calloc(1, sizeof(*h));
    struct sockaddr_storage ss;
    int r;

    h->loop = loop;
    if (uv_ip4_addr(address, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(address, port, (struct sockaddr_in6 *)&ss) != 0) {
        *error_r = xe_asprintf("metrics: bad address %s", address);
        free(h);
        return -1;
    }
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    if ((r = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) < 0 ||
        (r = uv_listen((uv_stream_t *)&h->listener, 64, on_scrape)) < 0) {
        *error_r = xe_asprintf("metrics: cannot listen on %s port %d: %s", address, port,
                               uv_strerror(r));
        uv_close((uv_handle_t *)&h->listener, listener_freed);
        return -1;
    }
    xe_info("event=metrics-listening address=%s port=%d", address, port);
    *h_r = h;
    return 0;
}

void
xe_metrics_http_stop(struct xe_metrics_http **hp)
{
    struct xe_metrics_http *h = *hp;

    if (h == NULL)
        return;
    while (h->scrapes)
        scrape_close(h->scrapes);
    uv_close((uv_handle_t *)&h->listener, listener_freed);
    *hp = NULL;
}
