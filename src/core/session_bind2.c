/* xedge: the c2s login machine (session.h), SASL2's backend half: Bind2's
 * script (bind2.h) and inline resumption (XEP-0198 in SASL2) run over a
 * parser of the backend's stream once it is logged in, then the SASL2
 * answer (<success> with what was done inline, the backend's features less
 * it). Split from session.c (issue 14: no source file over ~1,500 lines);
 * what they share is in session_impl.h. */
#include "session_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xelimits.h"

/* ---- SASL2's Bind2 at the backend (doc/sasl2.md, "The backend script") ---- */

#define B2_FALLBACK_HEADER                                                               \
    "<stream:stream xmlns='" XE_NS_CLIENT "' xmlns:stream='" XE_NS_STREAMS "'>"

static int
b2_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    (void)ctx, (void)h, (void)default_ns;
    return XE_XS_CONTINUE;
}

/* The first element is the backend's post-login features: the script is
 * built from them; every later one is an answer (or held). */
static int
b2_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct xe_sess *s = ctx;

    if (s->rs_wait) { /* the resume's answer */
        if (xe_xml_is(e, XE_NS_SM3, "resumed")) {
            const char *h = xe_xml_attr(e, "h"), *id = xe_xml_attr(e, "previd");
            /* rebuilt without the backend's location, as <enabled/> is */
            xe_buf_append_str(&s->rs_xml, "<resumed xmlns='" XE_NS_SM3 "' h='");
            xe_buf_append_escaped(&s->rs_xml, h ? h : "0");
            xe_buf_append_str(&s->rs_xml, "' previd='");
            xe_buf_append_escaped(&s->rs_xml, id ? id : "");
            xe_buf_append_str(&s->rs_xml, "'/>");
            s->rs_result = 1;
            return XE_XS_STOP;
        }
        if (xe_xml_is(e, XE_NS_SM3, "failed")) {
            xe_buf_append(&s->rs_xml, raw, len);
            s->rs_result = -1;
            return XE_XS_STOP;
        }
        /* (nothing else comes before the answer: the stream has no
         * resource yet) */
        snprintf(s->backend_why, sizeof(s->backend_why),
                 "unexpected <%.40s/> before the "
                 "resume's answer",
                 e->name);
        s->b2_result = XE_BIND2_FAIL;
        s->rs_result = 0;
        return XE_XS_STOP;
    }
    if (s->b2_script == NULL) {
        const struct xe_sasl2_auth *a = xe_c2s_sasl2_request(s->c2s);
        const char *jid = xe_c2s_jid(s->c2s);
        struct xe_bind2_caps caps;
        char res[XE_BIND2_MAX_TAG + 16], *err = NULL;

        xe_bind2_pool_caps(s->pool, &caps);
        if (xe_bind2_resource(a->bind.tag, jid, a->has_ua ? a->ua_id : NULL,
                              s->pool ? s->pool->secret : NULL,
                              s->pool ? s->pool->secret_len : 0, res, sizeof(res)) < 0 &&
            xe_bind2_resource(a->bind.tag, jid, NULL, NULL, 0, res, sizeof(res)) < 0) {
            s->b2_result = XE_BIND2_FAIL;
            return XE_XS_STOP;
        }
        s->b2_script = xe_bind2_script_new(&a->bind, &caps, e, res, &err);
        if (s->b2_script == NULL) {
            snprintf(s->backend_why, sizeof(s->backend_why), "%.140s",
                     err ? err : "no bind in the backend's features");
            free(err);
            s->b2_result = XE_BIND2_FAIL;
            return XE_XS_STOP;
        }
        return XE_XS_CONTINUE;
    }
    s->b2_result = xe_bind2_script_answer(s->b2_script, e, raw, len);
    return s->b2_result == XE_BIND2_MORE ? XE_XS_CONTINUE : XE_XS_STOP;
}

static int
b2_end(void *ctx)
{
    struct xe_sess *s = ctx;

    s->b2_result = XE_BIND2_FAIL;
    snprintf(s->backend_why, sizeof(s->backend_why), "backend closed its stream");
    return XE_XS_STOP;
}

static const struct xe_xmlstream_cb b2_cb = {b2_start, b2_element, b2_end};

/* Does this login bind inline? */
bool
xe_sess_b2_wanted(struct xe_sess *s)
{
    const struct xe_sasl2_auth *a = s->sasl2 ? xe_c2s_sasl2_request(s->c2s) : NULL;
    return a && (a->bind.present || a->resume);
}

/* Bind2 could not be done (the bind refused, the backend's stream broke):
 * the client hears a SASL2 failure (temporary-auth-failure: it may log in
 * again), then the stream ends. */
static enum xe_sess_do
b2_failed(struct xe_sess *s)
{
    const char *why = s->b2_script ? xe_bind2_script_error(s->b2_script) : NULL;
    char tmp[sizeof(s->backend_why)];

    snprintf(tmp, sizeof(tmp), "%s",
             why                 ? why
             : s->backend_why[0] ? s->backend_why
                                 : "Bind2 failed at the backend");
    snprintf(s->backend_why, sizeof(s->backend_why), "Bind2: %.140s", tmp);
    s->backend_error = s->backend_why;
    s->backend_error_counts = false;
    s->b2_running = false;
    xe_sasl2_failure(&s->to_client, XE_SASL_TEMPORARY_AUTH_FAILURE,
                     "the session could not be bound");
    return xe_sess_fail_now(s, XE_SF_BACKEND_UNAVAILABLE);
}

/* The backend's bytes while the script runs. */
enum xe_sess_do
xe_sess_b2_feed(struct xe_sess *s, const char *data, size_t n)
{
    size_t used = 0;
    int r;

    if (n == 0)
        return XE_SD_NONE;
    r = xe_xmlstream_feed(s->b2_xs, data, n, &used);
    if (r == XE_XS_ERROR) {
        snprintf(s->backend_why, sizeof(s->backend_why), "bad XML from the backend: %s",
                 xe_xmlstream_error_text(s->b2_xs));
        return b2_failed(s);
    }
    if (r != XE_XS_STOPPED)
        return XE_SD_NONE;
    if (s->rs_wait && s->rs_result != 0) {
        s->rs_wait = false;
        xe_info("event=%s jid=%s path=resume",
                s->rs_result > 0 ? "resumed" : "resume-failed", xe_c2s_jid(s->c2s));
        if (s->rs_result < 0 && xe_c2s_sasl2_request(s->c2s)->bind.present) {
            /* <failed/>: Bind2 on the same backend stream */
            xe_xmlstream_free(&s->b2_xs);
            return xe_sess_b2_begin(s, data + used, n - used);
        }
        s->b2_running = false;
        s->backend_ready = true;
        if (used < n && xe_buf_append(&s->client_pending, data + used, n - used) < 0)
            return xe_sess_backend_failed(
                s, "backend sent too much before the session started");
        return xe_sess_answer(s);
    }
    if (s->b2_result != XE_BIND2_DONE)
        return b2_failed(s);
    /* done: what follows <enabled/> (or the last answer) waits for the
     * success (R7) */
    s->b2_running = false;
    s->backend_ready = true;
    if (used < n && xe_buf_append(&s->client_pending, data + used, n - used) < 0)
        return xe_sess_backend_failed(s,
                                      "backend sent too much before the session started");
    if (xe_bind2_script_unsynced(s->b2_script) > 0)
        xe_warn("event=bind2-unsynced jid=%s held=%u", xe_c2s_jid(s->c2s),
                xe_bind2_script_unsynced(s->b2_script));
    return xe_sess_answer(s);
}

/* The backend is logged in: start the script (its features, then the
 * requests in one write); REST: what the backend sent after its features. */
enum xe_sess_do
xe_sess_b2_begin(struct xe_sess *s, const char *rest, size_t n)
{
    struct xe_xmlstream_limits lim = {.max_element_bytes = s->conf->max_stanza_postauth,
                                      .max_depth = XE_POSTAUTH_MAX_XML_DEPTH,
                                      .max_attrs = XE_POSTAUTH_MAX_ATTRS};
    const unsigned char *h, *f, *req;
    size_t hl, fl, rl, used;

    const struct xe_sasl2_auth *a = xe_c2s_sasl2_request(s->c2s);

    s->b2_xs = xe_xmlstream_new(&lim, &b2_cb, s);
    if (s->b2_xs == NULL)
        return xe_sess_backend_failed(s, "no memory for Bind2");
    s->b2_running = true;
    s->b2_result = XE_BIND2_MORE;
    h = xe_backend_hs_header(s->bhs, &hl);
    f = xe_backend_hs_features(s->bhs, &fl);
    if (h == NULL) {
        h = (const unsigned char *)B2_FALLBACK_HEADER;
        hl = strlen(B2_FALLBACK_HEADER);
    }
    if (a->resume && !s->rs_tried) {
        struct xe_bind2_caps caps;
        xe_bind2_pool_caps(s->pool, &caps);
        if (!caps.sm) { /* (not offered: the pool cannot) */
            s->rs_tried = true;
            s->rs_result = -1;
            xe_buf_append_str(&s->rs_xml,
                              "<failed xmlns='" XE_NS_SM3
                              "'><feature-not-implemented xmlns='"
                              "urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
            if (!a->bind.present) {
                xe_xmlstream_free(&s->b2_xs);
                s->b2_running = false;
                s->backend_ready = true;
                if (n > 0 && xe_buf_append(&s->client_pending, rest, n) < 0)
                    return xe_sess_backend_failed(s, "backend sent too much");
                return xe_sess_answer(s);
            }
        }
    }
    if (a->resume && !s->rs_tried) {
        /* inline resumption: the client's <resume/> on this fresh
         * authenticated stream, no bind; its answer comes first */
        s->rs_tried = s->rs_wait = true;
        if (xe_xmlstream_feed(s->b2_xs, h, hl, &used) != XE_XS_OK)
            return b2_failed(s);
        xe_buf_append_str(&s->to_backend, "<resume xmlns='" XE_NS_SM3 "' previd='");
        xe_buf_append_escaped(&s->to_backend, a->resume_prev);
        xe_buf_appendf(&s->to_backend, "' h='%llu'/>", a->resume_h);
        xe_sess_arm(s, s->conf->backend_handshake_ms);
        return xe_sess_b2_feed(s, rest, n);
    }
    if (xe_xmlstream_feed(s->b2_xs, h, hl, &used) != XE_XS_OK ||
        xe_xmlstream_feed(s->b2_xs, f, fl, &used) != XE_XS_OK || s->b2_script == NULL)
        return b2_failed(s);
    req = xe_bind2_script_requests(s->b2_script, &rl);
    xe_buf_append(&s->to_backend, req, rl);
    xe_sess_arm(s, s->conf->backend_handshake_ms);
    return xe_sess_b2_feed(s, rest, n);
}

/* The backend's features without what Bind2 did (bind, session, and stream
 * management once enabled): the children of FEATURES are read as elements of
 * the backend's stream (HEADER declares their prefixes) and kept raw. On
 * anything unexpected the features go unchanged. */
struct b2_filter {
    struct xe_buf *out;
    bool drop_sm;
};

static int
f_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct b2_filter *f = ctx;

    if (xe_xml_is(e, XE_NS_BIND, "bind") || xe_xml_is(e, XE_NS_SESSION, "session") ||
        (f->drop_sm && xe_xml_is(e, NULL, "sm") &&
         (strcmp(e->ns, XE_NS_SM3) == 0 || strcmp(e->ns, "urn:xmpp:sm:2") == 0)))
        return XE_XS_CONTINUE;
    xe_buf_append(f->out, raw, len);
    return XE_XS_CONTINUE;
}

static int
f_end(void *ctx)
{
    (void)ctx;
    return XE_XS_STOP;
}

static const struct xe_xmlstream_cb f_cb = {b2_start, f_element, f_end};

static void
b2_features(struct xe_sess *s, const unsigned char *f, size_t fl, struct xe_buf *out)
{
    struct xe_xmlstream_limits lim = {.max_element_bytes = XE_MAX_BACKEND_FEATURES,
                                      .max_depth = XE_POSTAUTH_MAX_XML_DEPTH,
                                      .max_attrs = XE_POSTAUTH_MAX_ATTRS};
    struct b2_filter flt = {out, xe_bind2_script_sm(s->b2_script)};
    const unsigned char *h;
    size_t hl, gt, lt, used;
    char q = 0;
    struct xe_xmlstream *xs;
    bool ok = false;

    for (gt = 0; gt < fl; gt++) { /* the end of the start tag */
        if (q) {
            if (f[gt] == (unsigned char)q)
                q = 0;
        } else if (f[gt] == '\'' || f[gt] == '"') {
            q = (char)f[gt];
        } else if (f[gt] == '>') {
            break;
        }
    }
    for (lt = fl; lt > 0 && f[lt - 1] != '<'; lt--)
        ;
    if (gt >= fl || gt == 0 || f[gt - 1] == '/' || lt == 0 || lt - 1 <= gt) {
        xe_buf_append(out, f, fl); /* (<stream:features/>: nothing to take out) */
        return;
    }
    lt--;
    h = xe_backend_hs_header(s->bhs, &hl);
    if (h == NULL) {
        h = (const unsigned char *)B2_FALLBACK_HEADER;
        hl = strlen(B2_FALLBACK_HEADER);
    }
    xs = xe_xmlstream_new(&lim, &f_cb, &flt);
    xe_buf_append(out, f, gt + 1);
    if (xs && xe_xmlstream_feed(xs, h, hl, &used) == XE_XS_OK &&
        xe_xmlstream_feed(xs, f + gt + 1, lt - gt - 1, &used) == XE_XS_OK)
        ok = true;
    xe_xmlstream_free(&xs);
    if (!ok) {
        out->len = 0;
        xe_buf_append(out, f, fl);
        return;
    }
    xe_buf_append(out, f + lt, fl - lt);
}

/* The SASL2 answer: <success> (with <bound/> and the full JID after Bind2),
 * the backend's features less what was done inline, then what the backend
 * sent meanwhile (held by the script, in order). */
enum xe_sess_do
xe_sess_sasl2_answer(struct xe_sess *s, const unsigned char *features, size_t flen)
{
    struct xe_buf extra, feat;
    const unsigned char *held;
    size_t hl = 0;
    int r;

    xe_buf_init(&extra, 0);
    xe_buf_init(&feat, 0);
    xe_buf_append(&extra, s->rs_xml.data, s->rs_xml.len);
    if (s->b2_script)
        xe_bind2_script_bound(s->b2_script, &extra);
    xe_buf_append(&extra, s->token_xml.data, s->token_xml.len);
    if (s->rs_result > 0) {
        /* resumed: the session goes on; no features */
    } else if (s->b2_script) {
        b2_features(s, features, flen, &feat);
    } else {
        xe_buf_append(&feat, features, flen);
    }
    r = xe_c2s_answer_sasl2(s->c2s,
                            s->b2_script ? xe_bind2_script_jid(s->b2_script) : NULL,
                            (const char *)extra.data, extra.len, feat.data, feat.len);
    xe_buf_free(&extra);
    xe_buf_free(&feat);
    if (r < 0)
        return xe_sess_fail_now(s, XE_SF_BACKEND_UNAVAILABLE);
    xe_sess_take_c2s(s);
    if (s->b2_script && (held = xe_bind2_script_held(s->b2_script, &hl)) && hl > 0)
        xe_buf_append(&s->to_client, held, hl);
    s->st = XE_SS_SPLICED;
    xe_sess_stop_timer(s);
    return XE_SD_SPLICE;
}
