/* xedge: finding a remote XMPP server with c-ares on libuv (resolve.h).
 *
 * c-ares tells which sockets it wants watched (the socket state callback):
 * each gets a uv_poll handle; one uv_timer runs ares' own timeouts (the
 * retries of a query). Each request has its own uv_timer: its deadline,
 * then a zero timeout that hands the answer over, so that the callback is
 * never called from inside c-ares or from inside xe_resolve_xmpp_server.
 *
 * At most XE_RESOLVE_MAX_INFLIGHT queries are out at once, the rest wait
 * in a queue: a burst of requests would otherwise overflow the DNS
 * server's socket buffer, and what is lost there waits for c-ares' retry.
 *
 * c-ares cannot cancel one query: a request that is over (answered,
 * timed out or cancelled) stays allocated, silent, until c-ares has called
 * back every query it started (c-ares' own timeouts bound that), and only
 * then closes its timer and goes. XE_RESOLVE_MAX_REQUESTS bounds those as
 * well as the live ones. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <arpa/nameser.h>
#include <openssl/rand.h>

#include "log.h"
#include "resolve.h"
#include "xelimits.h"

#define XE_RESOLVE_NAME_MAX 253 /* a domain name, without the final dot */

struct xe_poll {
    uv_poll_t h;
    struct xe_resolver *r;
    ares_socket_t fd;
    struct xe_poll *next;
};

enum sub_kind { SUB_SRV_TCP, SUB_SRV_TLS, SUB_AAAA, SUB_A };

struct sub { /* what one ares query is for; its ares callback argument */
    struct xe_resolve_req *q;
    unsigned char kind;
    unsigned char slot;
    struct sub *next; /* in the resolver's queue, while waiting to be sent */
};

struct srv_rec {
    char host[256];
    uint16_t port, priority, weight;
    int tls;
};

struct slot { /* the addresses of one SRV target (or of the domain) */
    struct in6_addr v6[XE_RESOLVE_MAX_TARGETS];
    struct in_addr v4[XE_RESOLVE_MAX_TARGETS];
    int n6, n4;
};

enum req_state {
    REQ_SRV,   /* waiting for the SRV answers */
    REQ_ADDR,  /* waiting for the AAAA and A answers */
    REQ_READY, /* answer built, handed over at the next loop turn */
    REQ_DONE,  /* answered, timed out or cancelled: silent */
};

struct xe_resolve_req {
    struct xe_resolver *r;
    struct xe_resolve_req *prev, *next;
    xe_resolve_cb cb;
    void *arg;
    char domain[XE_RESOLVE_NAME_MAX + 1];
    uint16_t default_port;
    enum req_state state;
    bool releasing;
    unsigned pending; /* ares queries not yet called back */
    uv_timer_t timer;

    struct sub subs[2 + 2 * XE_RESOLVE_MAX_TARGETS];
    int srv_tcp_status, srv_tls_status; /* ARES_* of each SRV query */
    bool refused;                       /* a service's only record is "." */
    struct srv_rec srv[2 * XE_RESOLVE_MAX_SRV];
    size_t nsrv;
    struct slot slots[XE_RESOLVE_MAX_TARGETS];
    size_t nslots;
    bool addr_error; /* an address query failed other than "no such name/data" */

    int status;
    struct xe_target out[XE_RESOLVE_MAX_TARGETS];
    size_t nout;
};

struct xe_resolver {
    uv_loop_t *loop;
    ares_channel ch;
    bool ch_ok;
    bool closing;
    bool timer_closed;
    bool full_warned; /* too-many-requests logged */
    uv_timer_t timer; /* c-ares' timeouts */
    unsigned timeout_ms;
    struct xe_poll *polls;       /* watched sockets */
    size_t npolls;               /* poll handles not yet closed (watched or closing) */
    struct xe_resolve_req *reqs; /* every allocated request */
    struct sub *queue_head, *queue_tail; /* queries waiting to be sent */
    unsigned inflight;                   /* queries c-ares has */
    size_t nreqs;                        /* allocated (live or silent) */
    size_t nlive;                        /* not yet answered or cancelled */
};

static void schedule_ares_timer(struct xe_resolver *r);
static void resolver_maybe_free(struct xe_resolver *r);
static void req_maybe_release(struct xe_resolve_req *q);
static void finish_addr_phase(struct xe_resolve_req *q);

/* ------------------------------------------------------------ small helpers */

const char *
xe_resolve_strstatus(int status)
{
    switch (status) {
    case 0:
        return "ok";
    case XE_RESOLVE_NXDOMAIN:
        return "nxdomain";
    case XE_RESOLVE_TIMEOUT:
        return "timeout";
    case XE_RESOLVE_FAIL:
        return "fail";
    default:
        return "unknown";
    }
}

static uint32_t
rand_u32(void)
{
    uint32_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)random();
    return v;
}

/* A DNS name of letters, digits, '-', '_' and dots, no empty label. */
static bool
dns_name_ok(const char *d, size_t len)
{
    size_t label = 0;
    if (len == 0 || len > XE_RESOLVE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

/* "no such name" and "no data" are answers; the rest are failures */
static bool
ares_is_absent(int status)
{
    return status == ARES_ENOTFOUND || status == ARES_ENODATA;
}

/* ------------------------------------------------------------ libuv glue */

static void
on_poll_closed(uv_handle_t *h)
{
    struct xe_poll *p = h->data;
    struct xe_resolver *r = p->r;
    free(p);
    r->npolls--;
    resolver_maybe_free(r);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    struct xe_poll *p = h->data;
    struct xe_resolver *r = p->r;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0 || (events & UV_READABLE))
        rfd = p->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = p->fd;
    /* may close this very poll handle (freed in its close callback only) */
    ares_process_fd(r->ch, rfd, wfd);
    schedule_ares_timer(r);
}

static void
poll_close(struct xe_resolver *r, struct xe_poll *p)
{
    struct xe_poll **pp;
    for (pp = &r->polls; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    uv_poll_stop(&p->h);
    uv_close((uv_handle_t *)&p->h, on_poll_closed);
}

/* c-ares: watch fd for reading and/or writing, or not at all (it is about to
 * be closed). */
static void
on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct xe_resolver *r = data;
    struct xe_poll *p;
    for (p = r->polls; p; p = p->next)
        if (p->fd == fd)
            break;
    if (!readable && !writable) {
        if (p)
            poll_close(r, p);
        return;
    }
    if (!p) {
        if (r->closing)
            return;
        p = calloc(1, sizeof *p);
        if (!p) {
            xe_err("event=dns-error reason=out-of-memory");
            return;
        }
        if (uv_poll_init_socket(r->loop, &p->h, fd) != 0) {
            xe_err("event=dns-error reason=poll-init fd=%d", (int)fd);
            free(p);
            return;
        }
        p->h.data = p;
        p->r = r;
        p->fd = fd;
        p->next = r->polls;
        r->polls = p;
        r->npolls++;
    }
    uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                  on_poll);
}

static void
on_ares_timer(uv_timer_t *t)
{
    struct xe_resolver *r = t->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    schedule_ares_timer(r);
}

static void
schedule_ares_timer(struct xe_resolver *r)
{
    struct timeval tv, *tvp;
    if (r->closing || !r->ch_ok)
        return;
    tvp = ares_timeout(r->ch, NULL, &tv);
    if (!tvp) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, on_ares_timer, ms, 0);
}

/* ------------------------------------------------------------ the resolver */

static void
resolver_maybe_free(struct xe_resolver *r)
{
    if (!r->closing || !r->timer_closed || r->npolls > 0 || r->nreqs > 0)
        return;
    free(r);
    ares_library_cleanup();
}

static void
on_resolver_timer_closed(uv_handle_t *h)
{
    struct xe_resolver *r = h->data;
    r->timer_closed = true;
    resolver_maybe_free(r);
}

struct xe_resolver *
xe_resolver_new(uv_loop_t *loop, const char *servers, unsigned timeout_ms, char *err,
                size_t errlen)
{
    struct xe_resolver *r = NULL;
    struct ares_options opts;
    int optmask = 0, st;

    if ((st = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        ares_library_cleanup();
        return NULL;
    }
    r->loop = loop;
    r->timeout_ms = timeout_ms ? timeout_ms : XE_DEF_DNS_TIMEOUT_MS;

    memset(&opts, 0, sizeof opts);
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = r;
    optmask |= ARES_OPT_SOCK_STATE_CB;
    /* one query: a try, then one more (c-ares doubles the second wait):
     * about the request's whole deadline */
    opts.timeout = (int)(r->timeout_ms / 3 > 100 ? r->timeout_ms / 3 : 100);
    optmask |= ARES_OPT_TIMEOUTMS;
    opts.tries = 2;
    optmask |= ARES_OPT_TRIES;
    if ((st = ares_init_options(&r->ch, &opts, optmask)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    r->ch_ok = true;
    if (servers && *servers) {
        if ((st = ares_set_servers_ports_csv(r->ch, servers)) != ARES_SUCCESS) {
            snprintf(err, errlen, "DNS servers \"%s\": %s", servers, ares_strerror(st));
            ares_destroy(r->ch);
            free(r);
            ares_library_cleanup();
            return NULL;
        }
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    return r;
}

void
xe_resolver_free(struct xe_resolver *r)
{
    struct xe_resolve_req *q, *next;
    if (!r || r->closing)
        return;
    r->closing = true;
    for (q = r->reqs; q; q = q->next) {
        if (q->state != REQ_DONE) {
            q->state = REQ_DONE;
            r->nlive--;
        }
        uv_timer_stop(&q->timer);
    }
    /* every query is called back (ARES_EDESTRUCTION) and every socket
     * closed (the state callback closes its poll handle) */
    if (r->ch_ok) {
        ares_destroy(r->ch);
        r->ch_ok = false;
    }
    while (r->queue_head) {
        struct sub *s = r->queue_head;
        r->queue_head = s->next;
        s->q->pending--;
    }
    r->queue_tail = NULL;
    while (r->polls)
        poll_close(r, r->polls);
    for (q = r->reqs; q; q = next) {
        next = q->next;
        req_maybe_release(q);
    }
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_resolver_timer_closed);
}

size_t
xe_resolver_pending(const struct xe_resolver *r)
{
    return r ? r->nlive : 0;
}

/* ------------------------------------------------------------ requests */

static void
on_req_timer_closed(uv_handle_t *h)
{
    struct xe_resolve_req *q = h->data;
    struct xe_resolver *r = q->r;
    if (q->prev)
        q->prev->next = q->next;
    else
        r->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    r->nreqs--;
    free(q);
    resolver_maybe_free(r);
}

/* Over and nothing of c-ares refers to it any more: go. */
static void
req_maybe_release(struct xe_resolve_req *q)
{
    if (q->state != REQ_DONE || q->pending > 0 || q->releasing)
        return;
    q->releasing = true;
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, on_req_timer_closed);
}

static void
on_req_deliver(uv_timer_t *t)
{
    struct xe_resolve_req *q = t->data;
    if (q->state != REQ_READY)
        return;
    q->state = REQ_DONE;
    q->r->nlive--;
    /* the callback may free the resolver: q stays valid until its timer's
     * close callback, which runs after this returns */
    q->cb(q->arg, q->status, q->status == 0 ? q->out : NULL,
          q->status == 0 ? q->nout : 0);
    req_maybe_release(q);
}

static void
on_req_deadline(uv_timer_t *t)
{
    struct xe_resolve_req *q = t->data;
    if (q->state != REQ_SRV && q->state != REQ_ADDR)
        return;
    q->state = REQ_DONE;
    q->r->nlive--;
    xe_debug("event=dns-timeout domain=%s", q->domain);
    q->cb(q->arg, XE_RESOLVE_TIMEOUT, NULL, 0);
    req_maybe_release(q);
}

/* The answer is built: hand it over at the next loop turn. */
static void
req_ready(struct xe_resolve_req *q, int status)
{
    q->status = status;
    if (status != 0)
        q->nout = 0;
    q->state = REQ_READY;
    uv_timer_stop(&q->timer);
    uv_timer_start(&q->timer, on_req_deliver, 0, 0);
}

static void on_ares_answer(void *arg, int status, int timeouts, unsigned char *abuf,
                           int alen);

static void
sub_send(struct xe_resolver *r, struct sub *s)
{
    struct xe_resolve_req *q = s->q;
    char name[XE_RESOLVE_NAME_MAX + 32];
    int type;
    switch (s->kind) {
    case SUB_SRV_TCP:
        snprintf(name, sizeof name, "_xmpp-server._tcp.%s", q->domain);
        type = ns_t_srv;
        break;
    case SUB_SRV_TLS:
        snprintf(name, sizeof name, "_xmpps-server._tcp.%s", q->domain);
        type = ns_t_srv;
        break;
    case SUB_AAAA:
        snprintf(name, sizeof name, "%s", q->srv[s->slot].host);
        type = ns_t_aaaa;
        break;
    default:
        snprintf(name, sizeof name, "%s", q->srv[s->slot].host);
        type = ns_t_a;
        break;
    }
    r->inflight++;
    /* may call back at once (a bad name, out of memory) */
    ares_query(r->ch, name, ns_c_in, type, on_ares_answer, s);
}

/* Send the queued queries while fewer than XE_RESOLVE_MAX_INFLIGHT are out
 * (a burst of requests must not overflow the DNS server's socket buffer:
 * what is lost there waits for c-ares' retry). Those of requests that are
 * over are dropped. */
static void
queue_pump(struct xe_resolver *r)
{
    while (!r->closing && r->queue_head && r->inflight < XE_RESOLVE_MAX_INFLIGHT) {
        struct sub *s = r->queue_head;
        r->queue_head = s->next;
        if (!r->queue_head)
            r->queue_tail = NULL;
        s->next = NULL;
        if (s->q->state == REQ_DONE) {
            s->q->pending--;
            req_maybe_release(s->q);
            continue;
        }
        sub_send(r, s);
    }
}

static void
req_query(struct xe_resolve_req *q, struct sub *s)
{
    struct xe_resolver *r = q->r;
    q->pending++;
    s->next = NULL;
    if (r->queue_tail)
        r->queue_tail->next = s;
    else
        r->queue_head = s;
    r->queue_tail = s;
    queue_pump(r);
}

/* RFC 2782: by priority, then within a priority by weighted random
 * selection (records of weight 0 first, so that they are rarely chosen
 * before the others). */
static void
order_srv(struct srv_rec *v, size_t n)
{
    struct srv_rec tmp;
    /* stable insertion sort by priority (n is small) */
    for (size_t i = 1; i < n; i++) {
        size_t j = i;
        tmp = v[i];
        while (j > 0 && v[j - 1].priority > tmp.priority) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = tmp;
    }
    for (size_t g = 0; g < n;) {
        size_t end = g;
        while (end < n && v[end].priority == v[g].priority)
            end++;
        /* weight 0 first, in their order */
        size_t z = g;
        for (size_t i = g; i < end; i++) {
            if (v[i].weight == 0) {
                tmp = v[i];
                memmove(&v[z + 1], &v[z], (i - z) * sizeof *v);
                v[z++] = tmp;
            }
        }
        for (size_t pos = g; pos + 1 < end; pos++) {
            uint32_t total = 0, run = 0, pick;
            size_t k;
            for (k = pos; k < end; k++)
                total += v[k].weight;
            pick = total ? rand_u32() % (total + 1) : 0;
            for (k = pos; k < end; k++) {
                run += v[k].weight;
                if (run >= pick)
                    break;
            }
            if (k >= end)
                k = end - 1;
            tmp = v[k];
            memmove(&v[pos + 1], &v[pos], (k - pos) * sizeof *v);
            v[pos] = tmp;
        }
        g = end;
    }
}

static void
take_srv(struct xe_resolve_req *q, int tls, const unsigned char *abuf, int alen,
         int *status)
{
    struct ares_srv_reply *list = NULL, *s;
    size_t seen = 0, dots = 0, first = q->nsrv, kept = 0;
    int st = ares_parse_srv_reply(abuf, alen, &list);
    if (st != ARES_SUCCESS) {
        *status = st;
        return;
    }
    /* the list is as long as the message allows (64 KiB over TCP); keep the
     * XE_RESOLVE_MAX_SRV of the best priorities */
    for (s = list; s; s = s->next, seen++) {
        size_t hl = s->host ? strlen(s->host) : 0;
        if (hl == 0 || (hl == 1 && s->host[0] == '.')) {
            dots++;
            continue;
        }
        if (s->host[hl - 1] == '.')
            hl--;
        if (!dns_name_ok(s->host, hl) || s->port == 0) {
            xe_debug("event=dns-srv-skipped domain=%s reason=bad-target", q->domain);
            continue;
        }
        struct srv_rec *rec;
        if (kept < XE_RESOLVE_MAX_SRV) {
            rec = &q->srv[first + kept++];
            q->nsrv++;
        } else {
            size_t worst = first;
            for (size_t i = first + 1; i < first + kept; i++)
                if (q->srv[i].priority > q->srv[worst].priority)
                    worst = i;
            if (q->srv[worst].priority <= s->priority)
                continue;
            rec = &q->srv[worst];
        }
        memcpy(rec->host, s->host, hl);
        rec->host[hl] = '\0';
        rec->port = s->port;
        rec->priority = s->priority;
        rec->weight = s->weight;
        rec->tls = tls;
    }
    /* RFC 6120 3.2.1: a single record "." says the service is not offered */
    if (dots > 0 && dots == seen)
        q->refused = true;
    ares_free_data(list);
    *status = ARES_SUCCESS;
}

static void
start_addr_phase(struct xe_resolve_req *q)
{
    q->state = REQ_ADDR;
    if (q->nsrv > 0) {
        order_srv(q->srv, q->nsrv);
        q->nslots = q->nsrv < XE_RESOLVE_MAX_TARGETS ? q->nsrv : XE_RESOLVE_MAX_TARGETS;
    } else {
        bool failed =
            !ares_is_absent(q->srv_tcp_status) && q->srv_tcp_status != ARES_SUCCESS &&
            !ares_is_absent(q->srv_tls_status) && q->srv_tls_status != ARES_SUCCESS;
        if (q->refused) {
            req_ready(q, XE_RESOLVE_NXDOMAIN);
            return;
        }
        /* no SRV record (RFC 6120 3.2.2: fallback, also when the SRV lookup
         * failed) */
        if (failed)
            xe_debug("event=dns-srv-failed domain=%s status=%s", q->domain,
                     ares_strerror(q->srv_tcp_status));
        struct srv_rec *rec = &q->srv[0];
        snprintf(rec->host, sizeof rec->host, "%s", q->domain);
        rec->port = q->default_port;
        rec->tls = 0;
        q->nsrv = 1;
        q->nslots = 1;
    }
    /* a guard: a query that calls back at once must not end the phase */
    q->pending++;
    for (size_t i = 0; i < q->nslots; i++) {
        struct sub *s6 = &q->subs[2 + 2 * i], *s4 = &q->subs[2 + 2 * i + 1];
        s6->q = s4->q = q;
        s6->kind = SUB_AAAA;
        s4->kind = SUB_A;
        s6->slot = s4->slot = (unsigned char)i;
        req_query(q, s6);
        req_query(q, s4);
    }
    if (--q->pending == 0 && q->state == REQ_ADDR)
        finish_addr_phase(q);
}

static void
finish_addr_phase(struct xe_resolve_req *q)
{
    q->nout = 0;
    for (size_t i = 0; i < q->nslots && q->nout < XE_RESOLVE_MAX_TARGETS; i++) {
        const struct srv_rec *rec = &q->srv[i];
        const struct slot *sl = &q->slots[i];
        for (int k = 0; k < sl->n6 + sl->n4 && q->nout < XE_RESOLVE_MAX_TARGETS; k++) {
            struct xe_target *t = &q->out[q->nout++];
            memset(t, 0, sizeof *t);
            if (k < sl->n6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&t->addr;
                a->sin6_family = AF_INET6;
                a->sin6_addr = sl->v6[k];
                a->sin6_port = htons(rec->port);
                t->addrlen = sizeof *a;
            } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&t->addr;
                a->sin_family = AF_INET;
                a->sin_addr = sl->v4[k - sl->n6];
                a->sin_port = htons(rec->port);
                t->addrlen = sizeof *a;
            }
            snprintf(t->host, sizeof t->host, "%s", rec->host);
            t->direct_tls = rec->tls;
        }
    }
    if (q->nout > 0)
        req_ready(q, 0);
    else
        req_ready(q, q->addr_error ? XE_RESOLVE_FAIL : XE_RESOLVE_NXDOMAIN);
}

static void
take_addrs(struct xe_resolve_req *q, struct sub *s, int status, const unsigned char *abuf,
           int alen)
{
    struct slot *sl = &q->slots[s->slot];
    int st = status, n = XE_RESOLVE_MAX_TARGETS;
    if (st == ARES_SUCCESS && s->kind == SUB_AAAA) {
        struct ares_addr6ttl a6[XE_RESOLVE_MAX_TARGETS];
        st = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
        for (int i = 0; st == ARES_SUCCESS && i < n && sl->n6 < XE_RESOLVE_MAX_TARGETS;
             i++)
            memcpy(&sl->v6[sl->n6++], &a6[i].ip6addr, sizeof(struct in6_addr));
    } else if (st == ARES_SUCCESS) {
        struct ares_addrttl a4[XE_RESOLVE_MAX_TARGETS];
        st = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
        for (int i = 0; st == ARES_SUCCESS && i < n && sl->n4 < XE_RESOLVE_MAX_TARGETS;
             i++)
            sl->v4[sl->n4++] = a4[i].ipaddr;
    }
    if (st != ARES_SUCCESS && !ares_is_absent(st)) {
        q->addr_error = true;
        xe_debug("event=dns-address-failed host=%s status=%s", q->srv[s->slot].host,
                 ares_strerror(st));
    }
}

static void
on_ares_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct sub *s = arg;
    struct xe_resolve_req *q = s->q;
    struct xe_resolver *r = q->r;

    r->inflight--;
    q->pending--;
    if (q->state == REQ_DONE || q->state == REQ_READY || r->closing ||
        status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        if (q->state == REQ_SRV || q->state == REQ_ADDR) {
            /* c-ares is going away under a live request: answer FAIL */
            if (q->pending == 0)
                req_ready(q, XE_RESOLVE_FAIL);
        }
        req_maybe_release(q);
        queue_pump(r);
        return;
    }
    if (q->state == REQ_SRV) {
        int *st = s->kind == SUB_SRV_TCP ? &q->srv_tcp_status : &q->srv_tls_status;
        *st = status;
        if (status == ARES_SUCCESS)
            take_srv(q, s->kind == SUB_SRV_TLS, abuf, alen, st);
        if (q->pending == 0)
            start_addr_phase(q);
    } else if (q->state == REQ_ADDR) {
        take_addrs(q, s, status, abuf, alen);
        if (q->pending == 0)
            finish_addr_phase(q);
    }
    queue_pump(r);
    (void)timeouts;
}

struct xe_resolve_req *
xe_resolve_xmpp_server(struct xe_resolver *r, const char *domain, uint16_t default_port,
                       xe_resolve_cb cb, void *arg)
{
    struct xe_resolve_req *q;
    size_t len;

    if (!r || r->closing || !r->ch_ok || !domain || !cb)
        return NULL;
    len = strlen(domain);
    if (len > 1 && domain[len - 1] == '.')
        len--; /* an absolute name */
    if (!dns_name_ok(domain, len)) {
        xe_debug("event=dns-refused reason=bad-name");
        return NULL;
    }
    if (r->nreqs >= XE_RESOLVE_MAX_REQUESTS) {
        if (!r->full_warned) /* once, until requests are taken again */
            xe_warn("event=dns-refused reason=too-many-requests max=%d",
                    XE_RESOLVE_MAX_REQUESTS);
        r->full_warned = true;
        return NULL;
    }
    r->full_warned = false;
    q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    memcpy(q->domain, domain, len);
    q->domain[len] = '\0';
    q->default_port = default_port;
    q->state = REQ_SRV;
    q->srv_tcp_status = q->srv_tls_status = ARES_ENODATA;
    uv_timer_init(r->loop, &q->timer);
    q->timer.data = q;
    q->next = r->reqs;
    if (r->reqs)
        r->reqs->prev = q;
    r->reqs = q;
    r->nreqs++;
    r->nlive++;
    uv_timer_start(&q->timer, on_req_deadline, r->timeout_ms, 0);

    q->subs[0].q = q->subs[1].q = q;
    q->subs[0].kind = SUB_SRV_TCP;
    q->subs[1].kind = SUB_SRV_TLS;
    /* a guard: a query that calls back at once must not end the phase */
    q->pending = 1;
    req_query(q, &q->subs[0]);
    req_query(q, &q->subs[1]);
    if (--q->pending == 0 && q->state == REQ_SRV)
        start_addr_phase(q);
    schedule_ares_timer(r);
    return q;
}

void
xe_resolve_cancel(struct xe_resolve_req *q)
{
    if (!q || q->state == REQ_DONE)
        return;
    q->state = REQ_DONE;
    q->r->nlive--;
    uv_timer_stop(&q->timer);
    req_maybe_release(q);
}
