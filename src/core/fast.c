/* xedge: FAST's HT-* mechanisms; see fast.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "fast.h"

struct variant {
    const char *mech, *cb_type; /* cb_type NULL: no binding */
};

static const struct variant variants[] = {
    {"HT-SHA-256-EXPR", "tls-exporter"},
    {"HT-SHA-256-UNIQ", "tls-unique"},
    {"HT-SHA-256-ENDP", "tls-server-end-point"},
    {"HT-SHA-256-NONE", NULL},
};
#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

void
xe_fast_init(struct xe_fast *f, struct xe_tokens *tokens, const char *domain,
             const struct xe_cbind *cb, size_t n_cb)
{
    memset(f, 0, sizeof(*f));
    f->tokens = tokens;
    f->domain = domain;
    if (n_cb > XE_CB_MAX)
        n_cb = XE_CB_MAX;
    for (size_t i = 0; i < n_cb; i++)
        f->cb[i] = cb[i];
    f->n_cb = n_cb;
}

static struct xe_cbind *
find_cb(struct xe_fast *f, const char *type)
{
    for (size_t i = 0; i < f->n_cb; i++)
        if (f->cb[i].type && strcmp(f->cb[i].type, type) == 0)
            return &f->cb[i];
    return NULL;
}

static const struct variant *
variant_of(const struct xe_fast *f, const char *mech)
{
    for (size_t i = 0; i < N_VARIANTS; i++) {
        if (strcmp(variants[i].mech, mech) != 0)
            continue;
        if (variants[i].cb_type &&
            find_cb((struct xe_fast *)f, variants[i].cb_type) == NULL)
            return NULL;
        return &variants[i];
    }
    return NULL;
}

bool
xe_fast_can(const struct xe_fast *f, const char *mech)
{
    return f->tokens != NULL && variant_of(f, mech) != NULL;
}

size_t
xe_fast_mechanisms(const struct xe_fast *f, const char **out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < N_VARIANTS && n < max; i++)
        if (xe_fast_can(f, variants[i].mech))
            out[n++] = variants[i].mech;
    return n;
}

static bool
claims(void *ctx, const char *mech)
{
    return xe_fast_can(ctx, mech);
}

/* AUTHCID: a localpart of the stream's domain, or a bare JID of it. */
static int
authcid_jid(const struct xe_fast *f, const char *a, size_t alen, char *jid, size_t max)
{
    int n;

    if (alen == 0 || memchr(a, '\0', alen) != NULL || memchr(a, '/', alen) != NULL)
        return -1;
    if (memchr(a, '@', alen) != NULL)
        n = snprintf(jid, max, "%.*s", (int)alen, a);
    else
        n = snprintf(jid, max, "%.*s@%s", (int)alen, a, f->domain);
    if (n < 0 || (size_t)n >= max || xe_jid_normalize(jid, max, NULL) != 0)
        return -1;
    {
        const char *at = strrchr(jid, '@');
        char dom[1024];
        snprintf(dom, sizeof(dom), "%s", f->domain);
        xe_tolower_ascii(dom);
        if (at == NULL || strcmp(at + 1, dom) != 0)
            return -1;
    }
    return 0;
}

static int
step(void *ctx, const struct xe_sasl2_auth *a, const char *in, size_t inlen,
     const char **out, size_t *outlen, char *jid_r, size_t jidmax,
     enum xe_sasl_cond *cond_r, const char **detail_r)
{
    struct xe_fast *f = ctx;
    const struct variant *v = variant_of(f, a->mech);
    const unsigned char *cbd = NULL;
    size_t cbl = 0;
    const char *nul;
    int r;

    jid_r[0] = '\0';
    *cond_r = XE_SASL_MALFORMED_REQUEST;
    if (v == NULL) {
        *cond_r = XE_SASL_INVALID_MECHANISM;
        *detail_r = "mechanism not offered";
        return XE_SASL_FAIL;
    }
    /* one round trip: the initial response is required */
    if (in == NULL || (nul = memchr(in, '\0', inlen)) == NULL) {
        *detail_r = "HT-*: no initial response, or no NUL in it";
        return XE_SASL_FAIL;
    }
    if (authcid_jid(f, in, (size_t)(nul - in), f->jid, sizeof(f->jid)) < 0) {
        *detail_r = "HT-*: not a user of this domain";
        *cond_r = XE_SASL_NOT_AUTHORIZED;
        return XE_SASL_FAIL;
    }
    snprintf(jid_r, jidmax, "%s", f->jid);
    if (v->cb_type) {
        struct xe_cbind *cb = find_cb(f, v->cb_type);
        if (cb->len == 0 && xe_cbind_fill(cb) == 0) {
            *cond_r = XE_SASL_TEMPORARY_AUTH_FAILURE;
            *detail_r = "HT-*: the channel binding cannot be had";
            return XE_SASL_FAIL;
        }
        cbd = cb->data;
        cbl = cb->len;
    }
    r = xe_tokens_verify(f->tokens, f->jid, a->ua_id, a->mech, cbd, cbl,
                         (const unsigned char *)nul + 1, inlen - (size_t)(nul - in) - 1,
                         a->has_count, a->fast_count, f->now, f->responder, cond_r,
                         detail_r);
    if (r != XE_SASL_OK)
        return XE_SASL_FAIL;
    *out = (const char *)f->responder;
    *outlen = sizeof(f->responder);
    return XE_SASL_OK;
}

struct xe_sasl2_mech
xe_fast_mech(struct xe_fast *f)
{
    struct xe_sasl2_mech m = {claims, step, f};
    return m;
}

int
xe_fast_token_xml(struct xe_buf *out, const char *token, int64_t expiry)
{
    time_t t = (time_t)expiry;
    struct tm tm;
    char when[32];
    int r;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return -1;
    r = xe_buf_appendf(out, "<token xmlns='" XE_NS_FAST "' expiry='%s' token='", when);
    r |= xe_buf_append_escaped(out, token);
    r |= xe_buf_append_str(out, "'/>");
    return r < 0 ? -1 : 0;
}
