/* xedge: the backend handshake. See backend.h. */
#define _GNU_SOURCE /* memmem */
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "sasl.h"
#include "xelimits.h"
#include "xmlstream.h"

enum bstate {
    B_HEADER1,
    B_FEATURES1,
    B_AUTH,
    B_DIRECT, /* the direct login sent, waiting for its success */
    B_HEADER2,
    B_FEATURES2,
    B_BIND,    /* iq-auth: our bind iq sent, waiting for its result */
    B_SESSION, /* iq-auth: our session iq sent (the backend requires one) */
    B_READY,
    B_FAILED
};

#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
/* the direct login (doc/assertion.md): the assertion in one element, the
 * authenticated stream's features right after the success, no restart */
#define NS_DIRECT "urn:xedge:auth:0"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define BIND_ID "xe-bind-1"
#define SESSION_ID "xe-session-1"

struct xe_backend_hs {
    struct xe_xmlstream *xs;
    struct xe_buf out;
    struct xe_buf features;
    enum bstate st;
    enum xe_bhs_result result;
    char *domain;
    char *localpart;
    char *token;
    char error[256];
    char *resource;            /* iq-auth: the resource to bind before READY, or NULL */
    bool need_session;         /* the backend requires a session iq after the bind */
    char bind_error[64];       /* the backend's stanza error condition for bind/session */
    char bound[3072];          /* the full JID the backend bound */
    enum xe_bhs_login ahead;   /* the login sent with our header (not WAIT) */
    bool guessed_wrong;        /* the features did not offer it */
    enum xe_bhs_login offered; /* what the first features offered */
};

static void
send_header(struct xe_backend_hs *b)
{
    xe_buf_append_str(&b->out, "<?xml version='1.0'?><stream:stream xmlns='" XE_NS_CLIENT
                               "' xmlns:stream='" XE_NS_STREAMS "' to='");
    xe_buf_append_escaped(&b->out, b->domain);
    xe_buf_append_str(&b->out, "' version='1.0'>");
}

static int fail(struct xe_backend_hs *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct xe_backend_hs *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b->error, sizeof(b->error), fmt, ap);
    va_end(ap);
    b->st = B_FAILED;
    b->result = XE_BHS_FAIL;
    return XE_XS_STOP;
}

static int
on_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    struct xe_backend_hs *b = ctx;

    if (strcmp(h->ns, XE_NS_STREAMS) != 0 || strcmp(h->name, "stream") != 0 ||
        default_ns == NULL || strcmp(default_ns, XE_NS_CLIENT) != 0)
        return fail(b, "backend sent a bad stream header");
    if (h->prefix == NULL || strcmp(h->prefix, "stream") != 0)
        return fail(b, "backend uses the stream prefix '%s'; only 'stream' is supported",
                    h->prefix ? h->prefix : "(none)");
    b->st = b->st == B_HEADER1 ? B_FEATURES1 : B_FEATURES2;
    return XE_XS_CONTINUE;
}

static int
send_auth(struct xe_backend_hs *b)
{
    size_t ll = strlen(b->localpart), tl = strlen(b->token), plen = 1 + ll + 1 + tl,
           blen = 0;
    size_t cap = 4 * (plen / 3 + 2) + 1;
    char *plain = xe_malloc(plen), *enc = xe_malloc(cap);
    int r = -1;

    /* PLAIN: authzid (empty) NUL authcid NUL password */
    plain[0] = '\0';
    memcpy(plain + 1, b->localpart, ll);
    plain[1 + ll] = '\0';
    memcpy(plain + 2 + ll, b->token, tl);
    if (xe_sasl_b64_encode(plain, plen, enc, cap, &blen) == 0) {
        xe_buf_appendf(&b->out,
                       "<auth xmlns='" XE_NS_SASL "' mechanism='PLAIN'>%.*s</auth>",
                       (int)blen, enc);
        r = 0;
    }
    OPENSSL_cleanse(plain, plen);
    OPENSSL_cleanse(enc, cap);
    free(plain);
    free(enc);
    return r;
}

static void
send_direct(struct xe_backend_hs *b)
{
    xe_buf_append_str(&b->out, "<auth xmlns='" NS_DIRECT "' user='");
    xe_buf_append_escaped(&b->out, b->localpart);
    xe_buf_append_str(&b->out, "'>");
    xe_buf_append_escaped(&b->out, b->token);
    xe_buf_append_str(&b->out, "</auth>");
}

/* ---- iq-auth: the resource binding done for the client (XEP-0078) ------- */

static int
start_bind(struct xe_backend_hs *b, const struct xe_xml_elem *features)
{
    const struct xe_xml_elem *sess = xe_xml_child(features, NS_SESSION, "session");

    if (xe_xml_child(features, XE_NS_BIND, "bind") == NULL)
        return fail(b, "backend offers no resource binding");
    /* RFC 3921 sessions: only when the backend does not mark it optional */
    b->need_session = sess != NULL && xe_xml_child(sess, NS_SESSION, "optional") == NULL;
    xe_buf_append_str(&b->out, "<iq type='set' id='" BIND_ID "'><bind xmlns='" XE_NS_BIND
                               "'><resource>");
    xe_buf_append_escaped(&b->out, b->resource);
    xe_buf_append_str(&b->out, "</resource></bind></iq>");
    b->st = B_BIND;
    return XE_XS_CONTINUE;
}

/* The condition of a stanza error (<iq type='error'>), kept only when it
 * looks like one (lower-case letters and '-'): it is passed to the client. */
static void
keep_stanza_error(struct xe_backend_hs *b, const struct xe_xml_elem *iq)
{
    const struct xe_xml_elem *err = xe_xml_child(iq, XE_NS_CLIENT, "error"), *x;

    snprintf(b->bind_error, sizeof(b->bind_error), "undefined-condition");
    for (x = err ? err->first_child : NULL; x; x = x->next) {
        size_t n = strlen(x->name);
        if (strcmp(x->ns, NS_STANZAS) != 0 || strcmp(x->name, "text") == 0)
            continue;
        if (n > 0 && n < sizeof(b->bind_error) &&
            strspn(x->name, "abcdefghijklmnopqrstuvwxyz-") == n)
            snprintf(b->bind_error, sizeof(b->bind_error), "%s", x->name);
        break;
    }
}

static int
on_bind_result(struct xe_backend_hs *b, const struct xe_xml_elem *e)
{
    const char *want = b->st == B_BIND ? BIND_ID : SESSION_ID;
    const char *what = b->st == B_BIND ? "bind" : "session";
    const char *id = xe_xml_attr(e, "id"), *type = xe_xml_attr(e, "type");

    if (!xe_xml_is(e, XE_NS_CLIENT, "iq") || id == NULL || strcmp(id, want) != 0)
        return fail(b, "backend sent <%s/> instead of the %s result", e->name, what);
    if (type && strcmp(type, "error") == 0) {
        keep_stanza_error(b, e);
        return fail(b, "backend refused the %s: %s", what, b->bind_error);
    }
    if (type == NULL || strcmp(type, "result") != 0)
        return fail(b, "backend answered the %s with type '%s'", what,
                    type ? "(other)" : "(none)");
    if (b->st == B_BIND) {
        const struct xe_xml_elem *bind = xe_xml_child(e, XE_NS_BIND, "bind");
        const struct xe_xml_elem *jid =
            bind ? xe_xml_child(bind, XE_NS_BIND, "jid") : NULL;
        const char *slash;
        snprintf(b->bound, sizeof(b->bound), "%s", jid ? xe_xml_text(jid) : "");
        /* the client cannot learn another resource than its own (XEP-0078
         * has no way to tell it): one the backend changed is refused */
        slash = strchr(b->bound, '/');
        if (b->bound[0] && (slash == NULL || strcmp(slash + 1, b->resource) != 0)) {
            snprintf(b->bind_error, sizeof(b->bind_error), "not-acceptable");
            return fail(b, "backend bound another resource than the client asked for");
        }
        if (b->need_session) {
            xe_buf_append_str(&b->out, "<iq type='set' id='" SESSION_ID
                                       "'><session xmlns='" NS_SESSION "'/></iq>");
            b->st = B_SESSION;
            return XE_XS_CONTINUE;
        }
    }
    b->st = B_READY;
    b->result = XE_BHS_READY;
    return XE_XS_STOP;
}

/* The second features go to the client after xedge's own stream header, not
 * the backend's. jabberd2 declares a prefix there (xmlns:ack='...') and uses
 * it in its features (<ack:ack/>): declare every prefix the features use,
 * other than "stream", on the <stream:features> start tag itself, so that
 * they stay well-formed for the client. */
static int
keep_features(struct xe_backend_hs *b, const struct xe_xml_elem *e,
              const unsigned char *raw, size_t raw_len)
{
    static const char tag[] = "<stream:features";
    size_t name_end = sizeof(tag) - 1, tag_end = name_end;
    const struct xe_xml_elem *x = e->first_child;
    char q = 0;

    xe_buf_free(&b->features);
    if (raw_len <= name_end || memcmp(raw, tag, name_end) != 0 || x == NULL)
        return xe_buf_append(&b->features, raw, raw_len);
    /* the end of the start tag ('>' outside quotes) */
    for (; tag_end < raw_len && (q || raw[tag_end] != '>'); tag_end++)
        if (raw[tag_end] == '\'' || raw[tag_end] == '"')
            q = q == 0 ? (char)raw[tag_end] : (q == raw[tag_end] ? 0 : q);
    if (xe_buf_append(&b->features, raw, name_end) < 0)
        return -1;
    while (x != NULL && x != e) { /* depth first, every descendant */
        if (x->prefix != NULL && strcmp(x->prefix, "stream") != 0 && x->ns[0] != '\0') {
            char decl[80];
            int n = snprintf(decl, sizeof(decl), "xmlns:%s=", x->prefix);
            bool have = n <= 0 || (size_t)n >= sizeof(decl) ||
                        memmem(b->features.data, b->features.len, decl, (size_t)n) ||
                        memmem(raw + name_end, tag_end - name_end, decl, (size_t)n);
            if (!have && (xe_buf_appendf(&b->features, " %s'", decl) < 0 ||
                          xe_buf_append_escaped(&b->features, x->ns) < 0 ||
                          xe_buf_append_str(&b->features, "'") < 0))
                return -1;
        }
        if (x->first_child != NULL)
            x = x->first_child;
        else {
            while (x != e && x->next == NULL)
                x = x->parent;
            if (x != e)
                x = x->next;
        }
    }
    return xe_buf_append(&b->features, raw + name_end, raw_len - name_end);
}

static int
on_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
           size_t raw_len)
{
    struct xe_backend_hs *b = ctx;

    if (xe_xml_is(e, XE_NS_STREAMS, "error")) {
        const struct xe_xml_elem *cond = e->first_child;
        return fail(b, "backend sent a stream error: %s", cond ? cond->name : "?");
    }
    switch (b->st) {
    case B_FEATURES1: {
        const struct xe_xml_elem *m = xe_xml_child(e, XE_NS_SASL, "mechanisms");
        bool plain = false, direct;
        if (!xe_xml_is(e, XE_NS_STREAMS, "features"))
            return fail(b, "backend sent <%s/> instead of its features", e->name);
        direct = xe_xml_child(e, NS_DIRECT, "auth") != NULL;
        for (const struct xe_xml_elem *x = m ? m->first_child : NULL; x; x = x->next)
            plain = plain || (xe_xml_is(x, XE_NS_SASL, "mechanism") &&
                              strcmp(xe_xml_text(x), "PLAIN") == 0);
        b->offered = direct  ? XE_BHS_LOGIN_DIRECT
                     : plain ? XE_BHS_LOGIN_PLAIN
                             : XE_BHS_LOGIN_WAIT;
        if (b->ahead != XE_BHS_LOGIN_WAIT) { /* sent already: it must be offered */
            bool direct_ahead = b->ahead == XE_BHS_LOGIN_DIRECT;
            if (direct_ahead ? !direct : !plain) {
                b->guessed_wrong = true;
                return fail(b,
                            "backend does not offer the %s that its kind says (sent "
                            "ahead); set the server's kind to \"generic\"",
                            direct_ahead ? "direct login" : "SASL PLAIN");
            }
            b->st = direct_ahead ? B_DIRECT : B_AUTH;
            return XE_XS_CONTINUE;
        }
        if (direct) {
            send_direct(b);
            b->st = B_DIRECT;
            return XE_XS_CONTINUE;
        }
        if (!plain)
            return fail(b, "backend does not offer SASL PLAIN on its plaintext stream");
        if (send_auth(b) < 0)
            return fail(b, "cannot encode the assertion");
        b->st = B_AUTH;
        return XE_XS_CONTINUE;
    }
    case B_AUTH:
        if (xe_xml_is(e, XE_NS_SASL, "success")) {
            b->st = B_HEADER2;
            send_header(b);
            return XE_XS_STOP; /* restart: a new parser for the next byte */
        }
        if (xe_xml_is(e, XE_NS_SASL, "failure")) {
            const struct xe_xml_elem *cond = e->first_child;
            return fail(b, "backend refused the identity assertion: %s",
                        cond ? cond->name : "?");
        }
        if (xe_xml_is(e, XE_NS_SASL, "challenge"))
            return fail(b, "backend sent a challenge to PLAIN");
        return fail(b, "unexpected <%s/> from the backend during SASL", e->name);
    case B_DIRECT:
        if (xe_xml_is(e, NS_DIRECT, "success")) {
            b->st = B_FEATURES2; /* on the same stream */
            return XE_XS_CONTINUE;
        }
        if (xe_xml_is(e, NS_DIRECT, "failure")) {
            const struct xe_xml_elem *cond = e->first_child;
            return fail(b, "backend refused the identity assertion: %s",
                        cond ? cond->name : "?");
        }
        return fail(b, "unexpected <%s/> from the backend during the direct login",
                    e->name);
    case B_FEATURES2:
        if (!xe_xml_is(e, XE_NS_STREAMS, "features"))
            return fail(b, "backend sent <%s/> instead of its features", e->name);
        if (keep_features(b, e, raw, raw_len) < 0)
            return fail(b, "backend features too large");
        if (b->resource)
            return start_bind(b, e);
        b->st = B_READY;
        b->result = XE_BHS_READY;
        return XE_XS_STOP;
    case B_BIND:
    case B_SESSION:
        return on_bind_result(b, e);
    default:
        return fail(b, "unexpected <%s/> from the backend", e->name);
    }
}

static int
on_end(void *ctx)
{
    struct xe_backend_hs *b = ctx;
    fail(b, "backend closed its stream during the handshake");
    return XE_XS_STOP;
}

static const struct xe_xmlstream_cb bcb = {
    .stream_start = on_start,
    .element = on_element,
    .stream_end = on_end,
};

struct xe_backend_hs *
xe_backend_hs_new(const char *domain, const char *localpart, const char *token,
                  size_t max_features)
{
    struct xe_backend_hs *b = xe_calloc(1, sizeof(*b));
    struct xe_xmlstream_limits lim = {
        .max_element_bytes = max_features,
        .max_depth = 16,
        .max_attrs = 64,
    };

    b->domain = xe_strdup(domain);
    b->localpart = xe_strdup(localpart);
    b->token = xe_strdup(token);
    xe_buf_init(&b->out, 0);
    xe_buf_init(&b->features, max_features);
    b->xs = xe_xmlstream_new(&lim, &bcb, b);
    if (b->xs == NULL) {
        xe_backend_hs_free(&b);
        return NULL;
    }
    send_header(b);
    return b;
}

void
xe_backend_hs_free(struct xe_backend_hs **bp)
{
    struct xe_backend_hs *b = *bp;

    if (b == NULL)
        return;
    xe_xmlstream_free(&b->xs);
    xe_buf_free(&b->out);
    xe_buf_free(&b->features);
    free(b->domain);
    free(b->localpart);
    free(b->resource);
    if (b->token) {
        OPENSSL_cleanse(b->token, strlen(b->token));
        free(b->token);
    }
    free(b);
    *bp = NULL;
}

enum xe_bhs_result
xe_backend_hs_feed(struct xe_backend_hs *b, const void *data, size_t len,
                   size_t *consumed_r)
{
    const char *p = data;
    size_t left = len, used = 0;

    *consumed_r = len;
    while (b->st != B_FAILED && b->st != B_READY) {
        int r = xe_xmlstream_feed(b->xs, p, left, &used);
        if (r == XE_XS_ERROR) {
            const char *cond = xe_xmlstream_condition(b->xs);
            snprintf(b->error, sizeof(b->error), "backend sent %s: %s (%s)",
                     strcmp(cond, "policy-violation") == 0 ? "more than xedge accepts"
                                                           : "bad XML",
                     cond, xe_xmlstream_error_text(b->xs));
            b->st = B_FAILED;
            return XE_BHS_FAIL;
        }
        if (r == XE_XS_OK)
            return XE_BHS_CONTINUE;
        p += used;
        left -= used;
        if (b->st == B_HEADER2) /* after <success/>: the next byte starts a new stream */
            xe_xmlstream_reset(b->xs);
    }
    *consumed_r = (size_t)(p - (const char *)data);
    return b->st == B_READY ? XE_BHS_READY : XE_BHS_FAIL;
}

struct xe_buf *
xe_backend_hs_output(struct xe_backend_hs *b)
{
    return &b->out;
}

const unsigned char *
xe_backend_hs_features(const struct xe_backend_hs *b, size_t *len_r)
{
    *len_r = b->features.len;
    return b->features.data;
}

const char *
xe_backend_hs_error(const struct xe_backend_hs *b)
{
    return b->error[0] ? b->error : "backend handshake failed";
}

void
xe_backend_hs_bind(struct xe_backend_hs *b, const char *resource)
{
    free(b->resource);
    b->resource = xe_strdup(resource);
}

void
xe_backend_hs_send_ahead(struct xe_backend_hs *b, enum xe_bhs_login login)
{
    if (b->st != B_HEADER1 || b->ahead != XE_BHS_LOGIN_WAIT)
        return;
    if (login == XE_BHS_LOGIN_DIRECT)
        send_direct(b);
    else if (login != XE_BHS_LOGIN_PLAIN || send_auth(b) < 0)
        return; /* (PLAIN unencodable: the features decide, and fail the same) */
    b->ahead = login;
}

enum xe_bhs_login
xe_backend_hs_offered(const struct xe_backend_hs *b)
{
    return b->offered;
}

bool
xe_backend_hs_guessed_wrong(const struct xe_backend_hs *b)
{
    return b->guessed_wrong;
}

const char *
xe_backend_hs_bind_error(const struct xe_backend_hs *b)
{
    return b->bind_error[0] ? b->bind_error : NULL;
}

const char *
xe_backend_hs_bound_jid(const struct xe_backend_hs *b)
{
    return b->bound;
}

const unsigned char *
xe_backend_hs_header(const struct xe_backend_hs *b, size_t *len_r)
{
    *len_r = 0;
    return b->xs ? xe_xmlstream_header(b->xs, len_r) : NULL;
}
