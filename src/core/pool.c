/* xedge: choosing a backend server; health. See pool.h. */
#include "pool.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util.h"
#include "xelimits.h"
#include "xmlstream.h"

/* A uniform value in (0, 1) from SHA-256(server NUL jid). */
static double
unit_hash(const char *server, const char *jid)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t v = 0;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, server, strlen(server) + 1) != 1 ||
        EVP_DigestUpdate(ctx, jid, strlen(jid)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        EVP_MD_CTX_free(ctx);
        return 0.5;
    }
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 8; i++)
        v = (v << 8) | md[i];
    /* 53 bits, shifted away from 0 and 1 */
    return ((double)(v >> 11) + 0.5) / 9007199254740992.0;
}

static double
score(const struct xe_server_conf *s, const char *jid)
{
    return (double)s->weight / -log(unit_hash(s->name, jid));
}

size_t
xe_pool_pick(const struct xe_pool_conf *pool, const char *jid)
{
    size_t best = 0;
    double best_score = -1.0;

    for (size_t i = 0; i < pool->n_servers; i++) {
        double sc = score(&pool->servers[i], jid);
        if (sc > best_score) {
            best_score = sc;
            best = i;
        }
    }
    return best;
}

static bool
available(const struct xe_server_state *st)
{
    return st->up && !st->draining;
}

/* Sticky: the pin or the hash choice; with on_down = next, the first
 * available server in the user's hash order (highest score first). */
static size_t
choose_sticky(const struct xe_pool_conf *pool, struct xe_server_state *const *st,
              const char *jid, size_t pinned, const char **why_r)
{
    size_t first = pinned != XE_POOL_NONE ? pinned : xe_pool_pick(pool, jid), best;
    double *scores, bound;

    if (available(st[first]))
        return first;
    *why_r = st[first]->draining ? "the user's server is draining"
                                 : "the user's server is down";
    if (pool->on_down != XE_ON_DOWN_NEXT)
        return XE_POOL_NONE;
    /* the next in hash order (a pinned server comes first, whatever its
     * score: the others follow by score) */
    scores = malloc(pool->n_servers * sizeof(*scores));
    if (scores == NULL)
        return XE_POOL_NONE;
    for (size_t i = 0; i < pool->n_servers; i++)
        scores[i] = score(&pool->servers[i], jid);
    bound = HUGE_VAL;
    for (;;) {
        double best_score = -1.0;
        best = XE_POOL_NONE;
        for (size_t i = 0; i < pool->n_servers; i++)
            if (i != first && scores[i] < bound && scores[i] > best_score) {
                best_score = scores[i];
                best = i;
            }
        if (best == XE_POOL_NONE || available(st[best]))
            break;
        bound = best_score;
    }
    free(scores);
    if (best == XE_POOL_NONE)
        *why_r = "no server of the pool is available";
    return best;
}

/* A server's weight now, in thousandths of a weight unit (slow start). */
static uint64_t
eff_weight(const struct xe_pool_conf *pool, struct xe_server_state *const *st, size_t i)
{
    unsigned pm = st[i]->weight_permille;
    return (uint64_t)pool->servers[i].weight * (pm == 0 || pm > 1000 ? 1000 : pm);
}

void
xe_pool_slow_start(struct xe_server_state *st, uint64_t now_ms, uint64_t slow_ms)
{
    uint64_t t;

    st->weight_permille = 0;
    if (slow_ms == 0 || st->up_since_ms == 0 || now_ms < st->up_since_ms ||
        (t = now_ms - st->up_since_ms) >= slow_ms)
        return;
    st->weight_permille = (unsigned)(100 + 900 * t / slow_ms);
}

size_t
xe_pool_choose(const struct xe_pool_conf *pool, struct xe_server_state *const *st,
               const char *jid, size_t pinned, const char **why_r)
{
    size_t best = XE_POOL_NONE;
    int64_t total = 0;

    *why_r = NULL;
    if (pool->n_servers == 0) {
        *why_r = "the pool has no server";
        return XE_POOL_NONE;
    }
    switch (pool->policy) {
    case XE_POLICY_STICKY:
        return choose_sticky(pool, st, jid, pinned, why_r);
    case XE_POLICY_LEAST_CONN:
        /* the fewest sessions per weight: s_i / w_i < s_b / w_b, in
         * integers; ties go to the first */
        for (size_t i = 0; i < pool->n_servers; i++) {
            if (!available(st[i]))
                continue;
            if (best == XE_POOL_NONE ||
                (uint64_t)st[i]->sessions * eff_weight(pool, st, best) <
                    (uint64_t)st[best]->sessions * eff_weight(pool, st, i))
                best = i;
        }
        break;
    case XE_POLICY_ROUND_ROBIN:
        /* smooth weighted round-robin: each available server gains its
         * weight, the highest goes next and loses the total */
        for (size_t i = 0; i < pool->n_servers; i++) {
            if (!available(st[i]))
                continue;
            st[i]->rr_current += (int64_t)eff_weight(pool, st, i);
            total += (int64_t)eff_weight(pool, st, i);
            if (best == XE_POOL_NONE || st[i]->rr_current > st[best]->rr_current)
                best = i;
        }
        if (best != XE_POOL_NONE)
            st[best]->rr_current -= total;
        break;
    }
    if (best == XE_POOL_NONE)
        *why_r = "no server of the pool is available";
    return best;
}

int
xe_pool_health(struct xe_server_state *st, bool ok, bool passive, unsigned fall,
               unsigned rise)
{
    if (ok) {
        st->fails = 0;
        if (passive || st->up)
            return 0;
        if (++st->oks >= rise) {
            st->oks = 0;
            st->up = true;
            return 1;
        }
        return 0;
    }
    st->oks = 0;
    if (!st->up)
        return 0;
    if (++st->fails >= fall) {
        st->fails = 0;
        st->up = false;
        return -1;
    }
    return 0;
}

const char *
xe_pool_policy_name(enum xe_pool_policy p)
{
    switch (p) {
    case XE_POLICY_LEAST_CONN:
        return "least-conn";
    case XE_POLICY_ROUND_ROBIN:
        return "round-robin";
    case XE_POLICY_STICKY:
        break;
    }
    return "sticky";
}

const char *
xe_server_kind_name(enum xe_server_kind k)
{
    switch (k) {
    case XE_KIND_PROSODY:
        return "prosody";
    case XE_KIND_EJABBERD:
        return "ejabberd";
    case XE_KIND_JABBERD2:
        return "jabberd2";
    case XE_KIND_GENERIC:
        break;
    }
    return "generic";
}

/* ---- active health checks ------------------------------------------------- */

struct xe_health_probe {
    struct xe_xmlstream *xs;
    struct xe_buf request;
    size_t received;
    int result; /* 0 pending, 1 healthy, -1 not */
    char why[160];
};

static int
probe_start(void *ctx, const struct xe_xml_elem *header, const char *default_ns)
{
    (void)ctx;
    (void)header;
    (void)default_ns;
    return XE_XS_CONTINUE;
}

static int
probe_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
              size_t raw_len)
{
    struct xe_health_probe *p = ctx;

    (void)raw;
    (void)raw_len;
    if (xe_xml_is(e, XE_NS_STREAMS, "features")) {
        p->result = 1;
    } else if (xe_xml_is(e, XE_NS_STREAMS, "error")) {
        const struct xe_xml_elem *k = e->first_child;
        p->result = -1;
        snprintf(p->why, sizeof(p->why), "stream error: %s", k ? k->name : "(none)");
    } else {
        p->result = -1;
        snprintf(p->why, sizeof(p->why), "unexpected <%.64s/> instead of the features",
                 e->name);
    }
    return XE_XS_STOP;
}

static int
probe_end(void *ctx)
{
    struct xe_health_probe *p = ctx;

    p->result = -1;
    snprintf(p->why, sizeof(p->why), "the server closed its stream");
    return XE_XS_STOP;
}

struct xe_health_probe *
xe_health_probe_new(const char *domain)
{
    static const struct xe_xmlstream_cb cb = {probe_start, probe_element, probe_end};
    static const struct xe_xmlstream_limits lim = {XE_HEALTH_MAX_BYTES, 32, 64};
    struct xe_health_probe *p = xe_calloc(1, sizeof(*p));

    p->xs = xe_xmlstream_new(&lim, &cb, p);
    xe_buf_init(&p->request, 0);
    xe_buf_appendf(&p->request,
                   "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                   "xmlns:stream='http://etherx.jabber.org/streams' to='%s' "
                   "version='1.0'>",
                   domain);
    return p;
}

const char *
xe_health_probe_request(const struct xe_health_probe *p, size_t *len_r)
{
    *len_r = p->request.len;
    return (const char *)p->request.data;
}

int
xe_health_probe_feed(struct xe_health_probe *p, const void *data, size_t n,
                     const char **why_r)
{
    size_t used = 0;

    *why_r = p->why;
    if (p->result != 0)
        return p->result;
    if (n > XE_HEALTH_MAX_BYTES - p->received) {
        snprintf(p->why, sizeof(p->why), "more than %d bytes before the features",
                 XE_HEALTH_MAX_BYTES);
        return p->result = -1;
    }
    p->received += n;
    if (xe_xmlstream_feed(p->xs, data, n, &used) == XE_XS_ERROR) {
        snprintf(p->why, sizeof(p->why), "bad XML: %.120s",
                 xe_xmlstream_error_text(p->xs));
        return p->result = -1;
    }
    return p->result;
}

void
xe_health_probe_free(struct xe_health_probe **pp)
{
    struct xe_health_probe *p = *pp;

    if (p == NULL)
        return;
    xe_xmlstream_free(&p->xs);
    xe_buf_free(&p->request);
    free(p);
    *pp = NULL;
}
