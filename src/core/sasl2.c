/* xedge: SASL2 (XEP-0388) on the client side; see sasl2.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mech.h"
#include "sasl2.h"

enum st { ST_IDLE, ST_EXCHANGE, ST_AUTHED, ST_DONE };

struct xe_sasl2 {
    struct xe_sasl *sasl;
    struct xe_sasl2_mech own;
    bool have_own, own_active;
    size_t max_sasl;
    enum st st;
    struct xe_sasl2_auth auth;
    char jid[3072];
    char *additional; /* success data kept until <success> is built */
    size_t add_len;
};

/* ---- the feature ---------------------------------------------------------------- */

int
xe_sasl2_features(struct xe_buf *out, const char *const *mechs, size_t n_mechs,
                  const char *const *cb_types, size_t n_cb,
                  const struct xe_sasl2_inline *inl)
{
    int r = xe_buf_append_str(out, "<authentication xmlns='" XE_NS_SASL2 "'>");

    for (size_t i = 0; i < n_mechs; i++) {
        r |= xe_buf_append_str(out, "<mechanism>");
        r |= xe_buf_append_escaped(out, mechs[i]);
        r |= xe_buf_append_str(out, "</mechanism>");
    }
    if (inl && (inl->bind2 || inl->sm_resume || inl->n_fast_mechs > 0)) {
        r |= xe_buf_append_str(out, "<inline>");
        if (inl->bind2)
            r |= xe_bind2_offer(out, &inl->bind2_caps);
        if (inl->sm_resume)
            r |= xe_buf_append_str(out, "<sm xmlns='" XE_NS_SM3 "'/>");
        if (inl->n_fast_mechs > 0) {
            r |= xe_buf_append_str(out, "<fast xmlns='" XE_NS_FAST "'>");
            for (size_t i = 0; i < inl->n_fast_mechs; i++) {
                r |= xe_buf_append_str(out, "<mechanism>");
                r |= xe_buf_append_escaped(out, inl->fast_mechs[i]);
                r |= xe_buf_append_str(out, "</mechanism>");
            }
            r |= xe_buf_append_str(out, "</fast>");
        }
        r |= xe_buf_append_str(out, "</inline>");
    }
    r |= xe_buf_append_str(out, "</authentication>");
    if (n_cb > 0) {
        r |= xe_buf_append_str(out, "<sasl-channel-binding xmlns='" XE_NS_SASL_CB "'>");
        for (size_t i = 0; i < n_cb; i++) {
            r |= xe_buf_append_str(out, "<channel-binding type='");
            r |= xe_buf_append_escaped(out, cb_types[i]);
            r |= xe_buf_append_str(out, "'/>");
        }
        r |= xe_buf_append_str(out, "</sasl-channel-binding>");
    }
    return r < 0 ? -1 : 0;
}

/* ---- parsing ---------------------------------------------------------------------- */

int
xe_sasl2_decode(const struct xe_xml_elem *e, size_t max_sasl, char **buf_r, size_t *len_r)
{
    const char *t = xe_xml_text(e);
    size_t tl = strlen(t), cap;
    char *b;

    *buf_r = NULL;
    *len_r = 0;
    if (tl > max_sasl)
        return -1;
    cap = tl / 4 * 3 + 4;
    b = xe_malloc(cap);
    if (tl == 0 || (tl == 1 && t[0] == '=')) {
        b[0] = '\0';
        *buf_r = b;
        return 0;
    }
    if (xe_sasl_b64_decode(t, tl, b, cap, len_r) < 0) {
        free(b);
        return -1;
    }
    *buf_r = b;
    return 0;
}

/* A user agent id: UUID-ish (letters, digits, '-', '_', '.', ':'), bounded. */
static bool
ua_id_ok(const char *s)
{
    size_t l = strlen(s);

    if (l == 0 || l > XE_SASL2_MAX_UA_ID)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.' ||
              *s == ':'))
            return false;
    return true;
}

/* Copy the text of child NAME (or leave "") bounded; false when too long or
 * with control characters. */
static bool
ua_text(const struct xe_xml_elem *ua, const char *name, char *dst)
{
    const struct xe_xml_elem *c = xe_xml_child(ua, XE_NS_SASL2, name);
    const char *t = c ? xe_xml_text(c) : "";
    size_t l = strlen(t);

    if (l > XE_SASL2_MAX_UA_TEXT)
        return false;
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
            return false;
    memcpy(dst, t, l + 1);
    return true;
}

static bool
parse_ull(const char *s, unsigned long long *v)
{
    char *end = NULL;

    if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 20)
        return false;
    *v = strtoull(s, &end, 10);
    return *end == '\0';
}

void
xe_sasl2_auth_clear(struct xe_sasl2_auth *a)
{
    if (a->ir) {
        OPENSSL_cleanse(a->ir, a->ir_len);
        free(a->ir);
    }
    memset(a, 0, sizeof(*a));
}

int
xe_sasl2_parse_authenticate(const struct xe_xml_elem *e, size_t max_sasl,
                            struct xe_sasl2_auth *a, enum xe_sasl_cond *cond_r,
                            const char **why_r)
{
    const struct xe_xml_elem *c;
    const char *m;
    int r = -1;

    memset(a, 0, sizeof(*a));
    *cond_r = XE_SASL_MALFORMED_REQUEST;
    if (!xe_xml_is(e, XE_NS_SASL2, "authenticate")) {
        *why_r = "not an authenticate element";
        goto out;
    }
    m = xe_xml_attr(e, "mechanism");
    if (m == NULL || !xe_mech_name_ok(m)) {
        *cond_r = XE_SASL_INVALID_MECHANISM;
        *why_r = "no valid mechanism named";
        goto out;
    }
    memcpy(a->mech, m, strlen(m) + 1);
    for (c = e->first_child; c; c = c->next) {
        if (xe_xml_is(c, XE_NS_SASL2, "initial-response")) {
            if (a->ir) {
                *why_r = "two initial responses";
                goto out;
            }
            if (xe_sasl2_decode(c, max_sasl, &a->ir, &a->ir_len) < 0) {
                *cond_r = XE_SASL_INCORRECT_ENCODING;
                *why_r = "bad base64 in the initial response";
                goto out;
            }
        } else if (xe_xml_is(c, XE_NS_SASL2, "user-agent")) {
            const char *id = xe_xml_attr(c, "id");
            if (a->has_ua) {
                *why_r = "two user agents";
                goto out;
            }
            a->has_ua = true;
            if (id && !ua_id_ok(id)) {
                *why_r = "bad user-agent id";
                goto out;
            }
            if (id)
                memcpy(a->ua_id, id, strlen(id) + 1);
            if (!ua_text(c, "software", a->software) ||
                !ua_text(c, "device", a->device)) {
                *why_r = "bad user-agent software or device";
                goto out;
            }
        } else if (xe_xml_is(c, XE_NS_BIND2, "bind")) {
            if (a->bind.present) {
                *why_r = "two Bind2 requests";
                goto out;
            }
            if (xe_bind2_parse(c, &a->bind, why_r) < 0)
                goto out;
        } else if (xe_xml_is(c, XE_NS_FAST, "request-token")) {
            const char *tm = xe_xml_attr(c, "mechanism");
            if (tm == NULL || !xe_mech_name_ok(tm)) {
                *why_r = "bad request-token mechanism";
                goto out;
            }
            a->request_token = true;
            memcpy(a->token_mech, tm, strlen(tm) + 1);
        } else if (xe_xml_is(c, XE_NS_FAST, "fast")) {
            const char *inv = xe_xml_attr(c, "invalidate"),
                       *cnt = xe_xml_attr(c, "count");
            a->fast = true;
            a->fast_invalidate =
                inv && (strcmp(inv, "true") == 0 || strcmp(inv, "1") == 0);
            if (cnt) {
                if (!parse_ull(cnt, &a->fast_count)) {
                    *why_r = "bad FAST count";
                    goto out;
                }
                a->has_count = true;
            }
        } else if (xe_xml_is(c, XE_NS_SM3, "resume")) {
            const char *p = xe_xml_attr(c, "previd"), *h = xe_xml_attr(c, "h");
            if (p == NULL || *p == '\0' || strlen(p) >= sizeof(a->resume_prev) ||
                !parse_ull(h, &a->resume_h) || a->resume_h > 0xffffffffULL) {
                *why_r = "bad resume request";
                goto out;
            }
            a->resume = true;
            memcpy(a->resume_prev, p, strlen(p) + 1);
        }
        /* anything else: an extension we do not offer, ignored (XEP-0388) */
    }
    r = 0;
out:
    if (r < 0)
        xe_sasl2_auth_clear(a);
    return r;
}

/* ---- builders --------------------------------------------------------------------- */

static int
append_b64(struct xe_buf *out, const char *data, size_t len)
{
    size_t cap = 4 * (len / 3 + 2) + 1, blen = 0;
    char *b;
    int r;

    if (len == 0)
        return xe_buf_append_str(out, "=");
    b = xe_malloc(cap);
    r = xe_sasl_b64_encode(data, len, b, cap, &blen);
    if (r == 0)
        r = xe_buf_append(out, b, blen);
    free(b);
    return r < 0 ? -1 : 0;
}

int
xe_sasl2_challenge(struct xe_buf *out, const char *data, size_t len)
{
    int r = xe_buf_append_str(out, "<challenge xmlns='" XE_NS_SASL2 "'>");

    if (data)
        r |= append_b64(out, data, len);
    r |= xe_buf_append_str(out, "</challenge>");
    return r < 0 ? -1 : 0;
}

int
xe_sasl2_success(struct xe_buf *out, const char *additional, size_t add_len,
                 const char *authzid, const char *extra, size_t extra_len)
{
    int r = xe_buf_append_str(out, "<success xmlns='" XE_NS_SASL2 "'>");

    if (additional) {
        r |= xe_buf_append_str(out, "<additional-data>");
        r |= append_b64(out, additional, add_len);
        r |= xe_buf_append_str(out, "</additional-data>");
    }
    r |= xe_buf_append_str(out, "<authorization-identifier>");
    r |= xe_buf_append_escaped(out, authzid);
    r |= xe_buf_append_str(out, "</authorization-identifier>");
    if (extra && extra_len)
        r |= xe_buf_append(out, extra, extra_len);
    r |= xe_buf_append_str(out, "</success>");
    return r < 0 ? -1 : 0;
}

int
xe_sasl2_failure(struct xe_buf *out, enum xe_sasl_cond cond, const char *text)
{
    int r = xe_buf_appendf(
        out, "<failure xmlns='" XE_NS_SASL2 "'><%s xmlns='" XE_NS_SASL "'/>",
        xe_sasl_cond_name(cond));

    if (text && *text) {
        r |= xe_buf_append_str(out, "<text xml:lang='en'>");
        r |= xe_buf_append_escaped(out, text);
        r |= xe_buf_append_str(out, "</text>");
    }
    r |= xe_buf_append_str(out, "</failure>");
    return r < 0 ? -1 : 0;
}

int
xe_sasl2_continue(struct xe_buf *out, const char *additional, size_t add_len,
                  const char *const *tasks, size_t n_tasks, const char *text)
{
    int r = xe_buf_append_str(out, "<continue xmlns='" XE_NS_SASL2 "'><additional-data>");

    r |= append_b64(out, additional ? additional : "", additional ? add_len : 0);
    r |= xe_buf_append_str(out, "</additional-data><tasks>");
    for (size_t i = 0; i < n_tasks; i++) {
        r |= xe_buf_append_str(out, "<task>");
        r |= xe_buf_append_escaped(out, tasks[i]);
        r |= xe_buf_append_str(out, "</task>");
    }
    r |= xe_buf_append_str(out, "</tasks>");
    if (text && *text) {
        r |= xe_buf_append_str(out, "<text>");
        r |= xe_buf_append_escaped(out, text);
        r |= xe_buf_append_str(out, "</text>");
    }
    r |= xe_buf_append_str(out, "</continue>");
    return r < 0 ? -1 : 0;
}

/* ---- the exchange ----------------------------------------------------------------- */

struct xe_sasl2 *
xe_sasl2_new(struct xe_sasl *sasl, const struct xe_sasl2_mech *own, size_t max_sasl)
{
    struct xe_sasl2 *s2 = xe_calloc(1, sizeof(*s2));

    s2->sasl = sasl;
    if (own) {
        s2->own = *own;
        s2->have_own = true;
    }
    s2->max_sasl = max_sasl;
    return s2;
}

static void
drop_additional(struct xe_sasl2 *s2)
{
    if (s2->additional) {
        OPENSSL_cleanse(s2->additional, s2->add_len);
        free(s2->additional);
    }
    s2->additional = NULL;
    s2->add_len = 0;
}

void
xe_sasl2_free(struct xe_sasl2 **p)
{
    struct xe_sasl2 *s2 = *p;

    if (s2 == NULL)
        return;
    xe_sasl2_auth_clear(&s2->auth);
    drop_additional(s2);
    free(s2);
    *p = NULL;
}

/* The answer to a step's result R. */
static int
answer(struct xe_sasl2 *s2, int r, const char *out, size_t outlen, const char *jid,
       struct xe_buf *obuf, enum xe_sasl_cond cond, enum xe_sasl_cond *cond_r)
{
    if (r == XE_SASL_FAIL) {
        *cond_r = cond;
        s2->st = ST_IDLE;
        return xe_sasl2_failure(obuf, cond, NULL) < 0 ? XE_SASL2_UNEXPECTED
                                                      : XE_SASL2_FAILURE;
    }
    if (r == XE_SASL_CONTINUE) {
        s2->st = ST_EXCHANGE;
        return xe_sasl2_challenge(obuf, out, outlen) < 0 ? XE_SASL2_UNEXPECTED
                                                         : XE_SASL2_CHALLENGE;
    }
    drop_additional(s2);
    if (outlen > 0) {
        s2->additional = xe_malloc(outlen);
        memcpy(s2->additional, out, outlen);
        s2->add_len = outlen;
    }
    snprintf(s2->jid, sizeof(s2->jid), "%s", jid ? jid : "");
    s2->st = ST_AUTHED;
    return XE_SASL2_SUCCESS;
}

static int
step(struct xe_sasl2 *s2, bool first, const char *in, size_t inlen, struct xe_buf *obuf,
     enum xe_sasl_cond *cond_r, const char **detail_r)
{
    const char *out = NULL;
    size_t outlen = 0;
    enum xe_sasl_cond cond = XE_SASL_NOT_AUTHORIZED;
    int r;

    if (s2->own_active) {
        char jid[3072] = "";
        r = s2->own.step(s2->own.ctx, &s2->auth, in, inlen, &out, &outlen, jid,
                         sizeof(jid), &cond, detail_r);
        if (r == XE_SASL_FAIL)
            snprintf(s2->jid, sizeof(s2->jid), "%s", jid);
        return answer(s2, r, out, outlen, jid, obuf, cond, cond_r);
    }
    if (s2->sasl == NULL) {
        *cond_r = XE_SASL_INVALID_MECHANISM;
        s2->st = ST_IDLE;
        xe_sasl2_failure(obuf, XE_SASL_INVALID_MECHANISM, NULL);
        return XE_SASL2_FAILURE;
    }
    r = first ? xe_sasl_start(s2->sasl, s2->auth.mech, in, inlen, &out, &outlen, &cond)
              : xe_sasl_step(s2->sasl, in, inlen, &out, &outlen, &cond);
    *detail_r = xe_sasl_detail(s2->sasl);
    if (r == XE_SASL_FAIL)
        snprintf(s2->jid, sizeof(s2->jid), "%s", xe_sasl_jid(s2->sasl));
    return answer(s2, r, out, outlen, r == XE_SASL_OK ? xe_sasl_jid(s2->sasl) : NULL,
                  obuf, cond, cond_r);
}

int
xe_sasl2_element(struct xe_sasl2 *s2, const struct xe_xml_elem *e, struct xe_buf *obuf,
                 enum xe_sasl_cond *cond_r, const char **detail_r)
{
    *detail_r = NULL;
    *cond_r = XE_SASL_MALFORMED_REQUEST;
    if (s2->st == ST_IDLE && xe_xml_is(e, XE_NS_SASL2, "authenticate")) {
        const char *why = NULL;
        xe_sasl2_auth_clear(&s2->auth);
        s2->jid[0] = '\0';
        if (xe_sasl2_parse_authenticate(e, s2->max_sasl, &s2->auth, cond_r, &why) < 0) {
            *detail_r = why;
            return xe_sasl2_failure(obuf, *cond_r, why) < 0 ? XE_SASL2_UNEXPECTED
                                                            : XE_SASL2_FAILURE;
        }
        s2->own_active = s2->have_own && s2->own.claims(s2->own.ctx, s2->auth.mech);
        return step(s2, true, s2->auth.ir, s2->auth.ir_len, obuf, cond_r, detail_r);
    }
    if (s2->st == ST_EXCHANGE && xe_xml_is(e, XE_NS_SASL2, "response")) {
        char *in = NULL;
        size_t inlen = 0;
        int r;
        if (xe_sasl2_decode(e, s2->max_sasl, &in, &inlen) < 0) {
            *cond_r = XE_SASL_INCORRECT_ENCODING;
            *detail_r = "bad base64 in a response";
            s2->st = ST_IDLE;
            return xe_sasl2_failure(obuf, *cond_r, NULL) < 0 ? XE_SASL2_UNEXPECTED
                                                             : XE_SASL2_FAILURE;
        }
        r = step(s2, false, in, inlen, obuf, cond_r, detail_r);
        OPENSSL_cleanse(in, inlen);
        free(in);
        return r;
    }
    if (s2->st == ST_EXCHANGE && xe_xml_is(e, XE_NS_SASL2, "abort")) {
        *cond_r = XE_SASL_ABORTED;
        *detail_r = "aborted by the client";
        s2->st = ST_IDLE;
        return xe_sasl2_failure(obuf, XE_SASL_ABORTED, NULL) < 0 ? XE_SASL2_UNEXPECTED
                                                                 : XE_SASL2_FAILURE;
    }
    *detail_r = "unexpected element";
    return XE_SASL2_UNEXPECTED;
}

const struct xe_sasl2_auth *
xe_sasl2_request(const struct xe_sasl2 *s2)
{
    return &s2->auth;
}

const char *
xe_sasl2_jid(const struct xe_sasl2 *s2)
{
    return s2->jid;
}

const char *
xe_sasl2_mech(const struct xe_sasl2 *s2)
{
    return s2->auth.mech;
}

int
xe_sasl2_build_success(struct xe_sasl2 *s2, struct xe_buf *out, const char *authzid,
                       const char *extra, size_t extra_len)
{
    int r;

    if (s2->st != ST_AUTHED)
        return -1;
    r = xe_sasl2_success(out, s2->additional, s2->add_len, authzid ? authzid : s2->jid,
                         extra, extra_len);
    drop_additional(s2);
    s2->st = ST_DONE;
    return r;
}
