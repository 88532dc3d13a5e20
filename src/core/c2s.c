/* xedge: client-to-server stream negotiation. See c2s.h. */
#include "c2s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lockout.h"
#include "log.h"
#include "metrics.h"
#include "register.h"
#include "mech.h"
#include "sasl.h"
#include "sasl2.h"
#include "xelimits.h"
#include "xmlstream.h"
#include "zstream.h"

#define NS_IQ_AUTH "jabber:iq:auth"
#define NS_FEATURE_IQ_AUTH "http://jabber.org/features/iq-auth"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

enum state {
    ST_HEADER,    /* waiting for the client's stream header */
    ST_NEGOTIATE, /* header answered, features sent */
    ST_SASL,      /* a SASL exchange is running */
    ST_AUTHED,    /* <success/> sent, waiting for the restart header */
    ST_DONE,      /* restart header received: the glue splices */
    ST_OFFERED,   /* answered with compression offered: the client's next element */
    ST_ZHEADER,   /* <compressed/> sent: the compressed stream's header */
    ST_CLOSED,    /* an error or the end was sent */
};

struct xe_c2s {
    const char *transport; /* static: "tcp", "websocket" (metrics) */
    const struct xe_conf *conf;
    struct xe_xmlstream *xs;
    struct xe_sasl *sasl;
    struct xe_buf out;
    enum state st;
    bool tls;
    bool header_sent; /* our header for the current stream */
    unsigned failures;
    enum xe_c2s_action action; /* set by a callback that stops the parser */
    char *domain;
    char *sni;
    char *peer;
    char id[33];
    char *jid; /* after authentication; NULL before (issue 13) */
    char mech[32];
    struct xe_cbind cb[XE_CB_MAX];
    size_t n_cb;
    bool anonymous;
    char (*ext)[3072]; /* what a verified client certificate vouches for */
    size_t n_ext;
    char *resource;               /* iq-auth: the resource to bind at the backend */
    char iq_id[256];              /* iq-auth: the id of the client's last iq */
    struct xe_buf restart_header; /* the authenticated stream's start tag */
    const struct xe_c2s_guard *guard;
    void *guard_ctx;
    char tried[XE_LOCKOUT_KEY_MAX]; /* the account the current attempt named */
    bool zoffer;             /* the domain offers compression after authentication */
    unsigned zfailures;      /* refused <compress/> requests */
    unsigned zfailures_fast; /* token failures (half weight in the guard) */
    struct xe_buf zfeatures; /* the backend's features without compression */
    struct xe_buf head;      /* an element read after the offer, for the backend */
    /* SASL2 (XEP-0388, doc/sasl2.md) */
    struct xe_sasl2 *sasl2;
    struct xe_sasl2_mech own; /* FAST's HT-* (own.claims NULL: none) */
    const char *const *fast_mechs;
    size_t n_fast_mechs;
    unsigned inline_caps;            /* XE_C2S_INLINE_*: what the login machine can do */
    bool fast_attempt;               /* the current attempt is a token's */
    bool fast_ready;                 /* its verdict is in: the element comes again */
    bool repriming;                  /* the parser is fed this stream's header again */
    bool sasl2_xchg;                 /* the exchange under way is SASL2's (ST_SASL) */
    struct xe_sasl2_auth *fast_auth; /* the attempt waiting for its verdict */
    struct xe_buf fast_raw;          /* ... and its raw bytes */
    struct xe_reg_job *reg_job;      /* a registration's job (XE_C2S_REGISTER) */
    const char *path;                /* the login path: sasl1, sasl2, fast */
};

/* The session's JID ("" before authentication). */
static const char *
jid_of(const struct xe_c2s *c)
{
    return c->jid ? c->jid : "";
}

static void
send_str(struct xe_c2s *c, const char *s)
{
    if (xe_buf_append_str(&c->out, s) < 0)
        xe_warn("event=output-overflow peer=%s", c->peer);
}

static void
send_header(struct xe_c2s *c)
{
    xe_random_id(c->id);
    xe_buf_appendf(&c->out,
                   "<?xml version='1.0'?><stream:stream xmlns='" XE_NS_CLIENT
                   "' xmlns:stream='" XE_NS_STREAMS "' id='%s' from='",
                   c->id);
    xe_buf_append_escaped(&c->out, c->domain ? c->domain : "");
    send_str(c, "' version='1.0' xml:lang='en'>");
    c->header_sent = true;
}

void
xe_c2s_stream_error(struct xe_c2s *c, const char *condition, const char *text)
{
    if (c->st == ST_CLOSED)
        return;
    if (!c->header_sent)
        xe_random_id(c->id);
    xe_stream_error_xml(&c->out, !c->header_sent, c->domain, c->id, condition, text);
    c->header_sent = true;
    c->st = ST_CLOSED;
    xe_metrics_inc(XE_M_STREAM_ERRORS, condition, NULL);
    xe_info("event=stream-error peer=%s domain=%s jid=%s condition=%s text=\"%s\"",
            c->peer, c->domain ? c->domain : "-", c->jid ? c->jid : "-", condition,
            text ? text : "");
}

static int
stop_with(struct xe_c2s *c, enum xe_c2s_action a)
{
    c->action = a;
    return XE_XS_STOP;
}

static int
error_stop(struct xe_c2s *c, const char *condition, const char *text)
{
    xe_c2s_stream_error(c, condition, text);
    return stop_with(c, XE_C2S_CLOSE);
}

static bool iq_auth_enabled(const struct xe_c2s *c);

static void
send_features(struct xe_c2s *c)
{
    const char *mechs[XE_MECH_COUNT]; /* every mechanism can be on offer */
    size_t n;

    send_str(c, "<stream:features>");
    if (!c->tls) {
        send_str(c, "<starttls xmlns='" XE_NS_TLS "'><required/></starttls>");
    } else {
        n = xe_sasl_mechanisms(c->sasl, mechs, XE_MECH_COUNT);
        send_str(c, "<mechanisms xmlns='" XE_NS_SASL "'>");
        for (size_t i = 0; i < n; i++)
            xe_buf_appendf(&c->out, "<mechanism>%s</mechanism>", mechs[i]);
        send_str(c, "</mechanisms>");
        n = xe_sasl_cb_types(c->sasl, mechs, 8);
        if (n > 0) { /* XEP-0440: which channel bindings we can verify */
            send_str(c, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>");
            for (size_t i = 0; i < n; i++)
                xe_buf_appendf(&c->out, "<channel-binding type='%s'/>", mechs[i]);
            send_str(c, "</sasl-channel-binding>");
        }
        if (iq_auth_enabled(c))
            send_str(c, "<auth xmlns='" NS_FEATURE_IQ_AUTH "'/>");
        if (xe_c2s_sasl2_enabled(c))
            xe_c2s_sasl2_features(c, &c->out);
    }
    if (c->tls && xe_register_enabled(c->conf, c->domain))
        send_str(c, "<register xmlns='" XE_NS_IQ_REGISTER_FEATURE "'/>");
    send_str(c, "</stream:features>");
}

/* Checks shared by every stream header; returns NULL or the error condition. */
static const char *
check_header(struct xe_c2s *c, const struct xe_xml_elem *h, const char *default_ns,
             const char **text)
{
    const char *to = xe_xml_attr(h, "to"), *version = xe_xml_attr(h, "version");
    const struct xe_domain_conf *d;

    if (strcmp(h->name, "stream") != 0) {
        *text = "the stream must start with <stream:stream>";
        return "bad-format";
    }
    if (strcmp(h->ns, XE_NS_STREAMS) != 0) {
        *text = "the stream element is not in the streams namespace";
        return "invalid-namespace";
    }
    if (default_ns == NULL || strcmp(default_ns, XE_NS_CLIENT) != 0) {
        *text = "the content namespace must be jabber:client";
        return "invalid-namespace";
    }
    if (version == NULL || strtol(version, NULL, 10) < 1 ||
        strchr(version, '.') == NULL) {
        *text = "XMPP version 1.0 is required";
        return "unsupported-version";
    }
    if (to == NULL && c->sni)
        to = c->sni;
    if (to == NULL) {
        *text = "the stream header has no 'to'";
        return "host-unknown";
    }
    d = xe_conf_domain(c->conf, to);
    if (d == NULL) {
        *text = "this domain is not served here";
        return "host-unknown";
    }
    if (c->domain && strcmp(c->domain, d->name) != 0) {
        *text = "the domain changed during negotiation";
        return "host-unknown";
    }
    if (c->domain == NULL)
        c->domain = xe_strdup(d->name);
    return NULL;
}

static void
keep_restart_header(struct xe_c2s *c)
{
    size_t len;
    const unsigned char *h = xe_xmlstream_header(c->xs, &len);

    c->restart_header.len = 0;
    if (h)
        xe_buf_append(&c->restart_header, h, len);
}

/* ---- stream compression (XEP-0138), after authentication ------------------ */

/* The client's compressed stream header: answer with the backend's features
 * (without compression) and hand over to the backend. */
static int
compressed_restart(struct xe_c2s *c)
{
    send_header(c);
    if (xe_buf_append(&c->out, c->zfeatures.data, c->zfeatures.len) < 0)
        return error_stop(c, "internal-server-error", NULL);
    c->st = ST_DONE;
    return stop_with(c, XE_C2S_SPLICE);
}

static int
compress_failure(struct xe_c2s *c, const char *condition)
{
    c->zfailures++;
    xe_buf_appendf(&c->out, "<failure xmlns='" XE_NS_COMPRESS "'><%s/></failure>",
                   condition);
    xe_info("event=compress-failed peer=%s jid=%s condition=%s attempt=%u", c->peer,
            jid_of(c), condition, c->zfailures);
    if (c->zfailures >= XE_MAX_COMPRESS_FAILURES)
        return error_stop(c, "policy-violation", "too many failed compression requests");
    return XE_XS_CONTINUE;
}

/* The client's first element after the features that offered compression. */
static int
on_offered_element(struct xe_c2s *c, const struct xe_xml_elem *e,
                   const unsigned char *raw, size_t raw_len)
{
    const struct xe_xml_elem *m;

    if (!xe_xml_is(e, XE_NS_COMPRESS, "compress")) {
        /* not for us: the backend gets it as it came, and the rest */
        if (xe_buf_append(&c->head, raw, raw_len) < 0)
            return error_stop(c, "internal-server-error", NULL);
        c->st = ST_DONE;
        return stop_with(c, XE_C2S_SPLICE);
    }
    m = xe_xml_child(e, XE_NS_COMPRESS, "method");
    if (m == NULL)
        return compress_failure(c, "setup-failed");
    if (strcmp(xe_xml_text(m), "zlib") != 0)
        return compress_failure(c, "unsupported-method");
    send_str(c, "<compressed xmlns='" XE_NS_COMPRESS "'/>");
    xe_debug("event=compress peer=%s jid=%s method=zlib", c->peer, jid_of(c));
    c->st = ST_ZHEADER;
    c->header_sent = false;
    return stop_with(c, XE_C2S_COMPRESS);
}

/* Offer compression with the backend's features, and read the client's next
 * element on this stream: the parser goes on behind a stand-in for the
 * client's header (what the backend's stream gets too: the client's own
 * header is not passed on). */
static int
offer_compression(struct xe_c2s *c, const unsigned char *features, size_t len)
{
    static const char stand_in[] =
        "<stream:stream xmlns='" XE_NS_CLIENT "' xmlns:stream='" XE_NS_STREAMS "'>";
    size_t used = 0;

    xe_xmlstream_reset(c->xs);
    c->st = ST_OFFERED;
    if (xe_xmlstream_feed(c->xs, stand_in, sizeof(stand_in) - 1, &used) != XE_XS_OK ||
        xe_zstream_features(features, len, &c->out, &c->zfeatures) < 0) {
        xe_warn("event=compression-unavailable peer=%s jid=%s reason=\"the backend's "
                "features cannot be read\"",
                c->peer, jid_of(c));
        return -1;
    }
    return 0;
}

bool
xe_c2s_compression_offered(const struct xe_c2s *c)
{
    return c->st == ST_OFFERED;
}

const unsigned char *
xe_c2s_splice_bytes(const struct xe_c2s *c, size_t *len_r)
{
    *len_r = c->head.len;
    return c->head.data;
}

static int
on_stream_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    struct xe_c2s *c = ctx;
    const char *text = NULL, *cond;

    if (c->st == ST_OFFERED || c->repriming) /* a stand-in header */
        return XE_XS_CONTINUE;
    cond = check_header(c, h, default_ns, &text);
    if (cond)
        return error_stop(c, cond, text);
    if (c->st == ST_AUTHED) {
        /* the authenticated stream: answered once the backend is ready */
        keep_restart_header(c);
        const struct xe_domain_conf *d = xe_conf_domain(c->conf, c->domain);
        c->zoffer = d && d->compression;
        c->st = ST_DONE;
        return stop_with(c, XE_C2S_RESTARTED);
    }
    if (c->st == ST_ZHEADER) {
        keep_restart_header(c); /* the compressed stream's, for the register filter */
        return compressed_restart(c);
    }
    send_header(c);
    if (c->tls) /* iq-auth sessions go on on this stream: keep its header too */
        keep_restart_header(c);
    if (c->tls && c->sasl == NULL) {
        char *err = NULL;
        size_t n;
        char *const *mechs =
            xe_conf_mechanisms(c->conf, xe_conf_domain(c->conf, c->domain), &n);
        c->sasl = xe_sasl_new_tls(c->domain, mechs, n, true, c->cb, c->n_cb,
                                  (const char(*)[3072])c->ext, c->n_ext, &err);
        if (c->sasl == NULL) {
            xe_err("event=sasl-error peer=%s error=\"%s\"", c->peer, err ? err : "?");
            free(err);
            return error_stop(c, "internal-server-error",
                              "authentication is unavailable");
        }
    }
    send_features(c);
    c->st = ST_NEGOTIATE;
    return XE_XS_CONTINUE;
}

static void
sasl_failure(struct xe_c2s *c, enum xe_sasl_cond cond, const char *detail)
{
    c->failures++;
    c->st = ST_NEGOTIATE;
    xe_buf_appendf(&c->out, "<failure xmlns='" XE_NS_SASL "'><%s/></failure>",
                   xe_sasl_cond_name(cond));
    const char *who = c->sasl ? xe_sasl_jid(c->sasl) : "";
    xe_metrics_add3(XE_M_LOGINS, 1, c->mech[0] ? c->mech : "other",
                    xe_sasl_cond_name(cond), c->transport);
    xe_info("event=auth-failed peer=%s domain=%s user=%s mech=%s condition=%s "
            "attempt=%u detail=\"%s\" path=sasl1",
            c->peer, c->domain, *who ? who : "-", c->mech[0] ? c->mech : "-",
            xe_sasl_cond_name(cond), c->failures, detail ? detail : "");
    if (c->guard) {
        if (c->tried[0] == '\0' && *who)
            xe_lockout_account_key(who, strlen(who), c->tried);
        c->guard->failed(c->guard_ctx, c->tried, cond == XE_SASL_NOT_AUTHORIZED);
    }
}

/* Ask the guard about the attempt, once the account it names is known (from
 * this SASL message, or an earlier one of the exchange). True: refused, and
 * answered (like a wrong password, with a text); no credential is checked. */
static bool
guard_refuses(struct xe_c2s *c, const char *msg, size_t len)
{
    if (c->guard == NULL)
        return false;
    if (c->tried[0] == '\0' && msg)
        xe_lockout_sasl_account(c->mech, msg, len, c->domain, c->tried);
    if (!c->guard->refuse(c->guard_ctx, c->tried))
        return false;
    c->failures++;
    c->st = ST_NEGOTIATE;
    xe_buf_append_str(&c->out, "<failure xmlns='" XE_NS_SASL
                               "'><not-authorized/><text xml:lang='en'>" XE_LOCKOUT_TEXT
                               "</text></failure>");
    xe_info("event=auth-failed peer=%s domain=%s user=%s mech=%s "
            "condition=not-authorized attempt=%u detail=\"locked out\" path=sasl1",
            c->peer, c->domain, c->tried[0] ? c->tried : "-", c->mech[0] ? c->mech : "-",
            c->failures);
    xe_metrics_add3(XE_M_LOGINS, 1, c->mech[0] ? c->mech : "other", "locked-out",
                    c->transport);
    c->guard->failed(c->guard_ctx, c->tried, false);
    return true;
}

/* Result of xe_sasl_start/step: answer it. Returns a callback result. */
static int
sasl_result(struct xe_c2s *c, int r, const char *out, size_t outlen,
            enum xe_sasl_cond cond)
{
    if (r == XE_SASL_FAIL) {
        sasl_failure(c, cond, xe_sasl_detail(c->sasl));
        if (c->failures >= c->conf->max_auth_attempts)
            return error_stop(c, "not-authorized",
                              "too many failed authentication attempts");
        return XE_XS_CONTINUE;
    }
    if (outlen > 0) {
        size_t cap = 4 * (outlen / 3 + 2) + 1, blen = 0;
        char *b = xe_malloc(cap);
        if (xe_sasl_b64_encode(out, outlen, b, cap, &blen) < 0) {
            free(b);
            return error_stop(c, "internal-server-error", NULL);
        }
        xe_buf_appendf(&c->out, "<%s xmlns='" XE_NS_SASL "'>%.*s</%s>",
                       r == XE_SASL_OK ? "success" : "challenge", (int)blen, b,
                       r == XE_SASL_OK ? "success" : "challenge");
        free(b);
    } else {
        xe_buf_appendf(&c->out, "<%s xmlns='" XE_NS_SASL "'/>",
                       r == XE_SASL_OK ? "success" : "challenge");
    }
    if (r == XE_SASL_CONTINUE) {
        c->st = ST_SASL;
        return XE_XS_CONTINUE;
    }
    free(c->jid);
    c->jid = xe_strndup(xe_sasl_jid(c->sasl), strnlen(xe_sasl_jid(c->sasl), 3071));
    c->anonymous = xe_sasl_anonymous(c->sasl);
    c->path = "sasl1";
    xe_info("event=auth-ok peer=%s jid=%s mech=%s path=sasl1", c->peer, c->jid, c->mech);
    xe_metrics_add3(XE_M_LOGINS, 1, c->mech, "success", c->transport);
    if (c->guard) {
        char key[XE_LOCKOUT_KEY_MAX];
        xe_lockout_account_key(c->jid, strlen(c->jid), key);
        c->guard->succeeded(c->guard_ctx, key);
    }
    xe_sasl_free(&c->sasl); /* SASL state is not needed any more */
    c->st = ST_AUTHED;
    c->header_sent = false;
    return stop_with(c, XE_C2S_AUTHENTICATED);
}

/* Decode the base64 payload of <auth/> or <response/>. *present: false
 * when the element was empty (no initial response). */
static int
decode_payload(struct xe_c2s *c, const struct xe_xml_elem *e, char **buf_r, size_t *len_r,
               bool *present, enum xe_sasl_cond *cond_r)
{
    const char *t = xe_xml_text(e);
    size_t tl = strlen(t), ol = 0;
    char *buf;

    *buf_r = NULL;
    *len_r = 0;
    *present = tl > 0;
    if (tl == 0)
        return 0;
    if (tl > c->conf->max_sasl_bytes) {
        *cond_r = XE_SASL_MALFORMED_REQUEST;
        return -1;
    }
    if (tl == 1 && t[0] == '=') { /* RFC 6120: an empty response */
        *buf_r = xe_calloc(1, 1);
        return 0;
    }
    buf = xe_malloc(tl + 1);
    if (xe_sasl_b64_decode(t, tl, buf, tl + 1, &ol) < 0) {
        free(buf);
        *cond_r = XE_SASL_INCORRECT_ENCODING;
        return -1;
    }
    *buf_r = buf;
    *len_r = ol;
    return 0;
}

/* RFC 4422 3.1: 1 to 20 of upper-case letters, digits, '-' and '_' */
static bool
mech_name_ok(const char *m)
{
    size_t n = 0;

    if (m == NULL)
        return false;
    for (; m[n]; n++)
        if (n >= 20 || !((m[n] >= 'A' && m[n] <= 'Z') || (m[n] >= '0' && m[n] <= '9') ||
                         m[n] == '-' || m[n] == '_'))
            return false;
    return n > 0;
}

static int
on_auth(struct xe_c2s *c, const struct xe_xml_elem *e)
{
    const char *mech = xe_xml_attr(e, "mechanism"), *out = NULL;
    enum xe_sasl_cond cond = XE_SASL_TEMPORARY_AUTH_FAILURE;
    char *in = NULL;
    size_t inlen = 0, outlen = 0;
    bool present;
    int r;

    c->tried[0] = '\0'; /* a new attempt */
    if (!mech_name_ok(mech)) {
        /* logged as "-": a peer's bytes do not reach the log's fields */
        c->mech[0] = '\0';
        sasl_failure(c, XE_SASL_INVALID_MECHANISM, "no or bad mechanism attribute");
        goto check;
    }
    snprintf(c->mech, sizeof(c->mech), "%s", mech);
    if (decode_payload(c, e, &in, &inlen, &present, &cond) < 0) {
        sasl_failure(c, cond, "bad initial response");
        goto check;
    }
    if (guard_refuses(c, in, inlen)) {
        if (in) {
            OPENSSL_cleanse(in, inlen);
            free(in);
        }
        goto check;
    }
    /* RFC 4505: the trace is optional; clients that send none (libstrophe)
     * mean an empty one, and expect <success/> rather than a challenge */
    if (!present && strcmp(mech, "ANONYMOUS") == 0)
        present = true;
    r = xe_sasl_start(c->sasl, mech, present ? (in ? in : "") : NULL, inlen, &out,
                      &outlen, &cond);
    if (in) {
        OPENSSL_cleanse(in, inlen);
        free(in);
    }
    return sasl_result(c, r, out, outlen, cond);
check:
    if (c->failures >= c->conf->max_auth_attempts)
        return error_stop(c, "not-authorized", "too many failed authentication attempts");
    return XE_XS_CONTINUE;
}

static int
on_response(struct xe_c2s *c, const struct xe_xml_elem *e)
{
    enum xe_sasl_cond cond = XE_SASL_TEMPORARY_AUTH_FAILURE;
    const char *out = NULL;
    char *in = NULL;
    size_t inlen = 0, outlen = 0;
    bool present;
    int r;

    if (decode_payload(c, e, &in, &inlen, &present, &cond) < 0) {
        sasl_failure(c, cond, "bad response");
        if (c->failures >= c->conf->max_auth_attempts)
            return error_stop(c, "not-authorized",
                              "too many failed authentication attempts");
        return XE_XS_CONTINUE;
    }
    if (guard_refuses(c, in, inlen)) {
        if (in) {
            OPENSSL_cleanse(in, inlen);
            free(in);
        }
        if (c->failures >= c->conf->max_auth_attempts)
            return error_stop(c, "not-authorized",
                              "too many failed authentication attempts");
        return XE_XS_CONTINUE;
    }
    r = xe_sasl_step(c->sasl, in ? in : "", inlen, &out, &outlen, &cond);
    if (in) {
        OPENSSL_cleanse(in, inlen);
        free(in);
    }
    return sasl_result(c, r, out, outlen, cond);
}

/* ---- non-SASL authentication (XEP-0078) ---------------------------------- */

static bool
iq_auth_enabled(const struct xe_c2s *c)
{
    const struct xe_domain_conf *d =
        c->domain ? xe_conf_domain(c->conf, c->domain) : NULL;
    return c->tls && d != NULL && d->iq_auth;
}

/* <iq type='TYPE' id='...'>, the id being the client's (XEP-0078's errors
 * carry the legacy code too). */
static void
iq_open(struct xe_c2s *c, const char *type, bool empty)
{
    xe_buf_appendf(&c->out, "<iq type='%s'", type);
    if (c->iq_id[0]) {
        send_str(c, " id='");
        xe_buf_append_escaped(&c->out, c->iq_id);
        send_str(c, "'");
    }
    send_str(c, empty ? "/>" : ">");
}

static void
iq_error(struct xe_c2s *c, const char *condition, const char *text)
{
    static const struct {
        const char *cond;
        int code;
        const char *type;
    } errs[] = {
        {"bad-request", 400, "modify"},
        {"conflict", 409, "cancel"},
        {"forbidden", 403, "auth"},
        {"internal-server-error", 500, "wait"},
        {"jid-malformed", 400, "modify"},
        {"not-acceptable", 406, "modify"},
        {"not-allowed", 405, "cancel"},
        {"not-authorized", 401, "auth"},
        {"resource-constraint", 500, "wait"},
        {"service-unavailable", 503, "cancel"},
        {"undefined-condition", 500, "cancel"},
    };
    size_t i, n = sizeof(errs) / sizeof(errs[0]);

    for (i = 0; i < n && strcmp(errs[i].cond, condition) != 0; i++)
        ;
    if (i == n)
        i = n - 1; /* undefined-condition */
    iq_open(c, "error", false);
    xe_buf_appendf(&c->out, "<error code='%d' type='%s'><%s xmlns='" NS_STANZAS "'/>",
                   errs[i].code, errs[i].type, errs[i].cond);
    if (text)
        xe_buf_appendf(&c->out, "<text xmlns='" NS_STANZAS "' xml:lang='en'>%s</text>",
                       text);
    send_str(c, "</error></iq>");
}

/* A refused iq-auth set: it counts as a failed authentication. */
static int
iq_auth_failure(struct xe_c2s *c, const char *condition, const char *text,
                const char *user, const char *detail)
{
    c->failures++;
    iq_error(c, condition, text);
    xe_metrics_add3(XE_M_LOGINS, 1, "iq-auth", condition, c->transport);
    xe_info("event=auth-failed peer=%s domain=%s user=%s mech=iq-auth condition=%s "
            "attempt=%u detail=\"%s\"",
            c->peer, c->domain, user && *user ? user : "-", condition, c->failures,
            detail);
    if (c->failures >= c->conf->max_auth_attempts)
        return error_stop(c, "not-authorized", "too many failed authentication attempts");
    return XE_XS_CONTINUE;
}

/* The text of Q's child NAME: NULL when absent or empty. */
static const char *
field(const struct xe_xml_elem *q, const char *name)
{
    const struct xe_xml_elem *f = xe_xml_child(q, NS_IQ_AUTH, name);
    const char *t = f ? xe_xml_text(f) : NULL;
    return t && *t ? t : NULL;
}

/* <iq type='get|set'><query xmlns='jabber:iq:auth'>: the same fields for
 * every user name (no enumeration); a set is checked against the store
 * like PLAIN (password) or with the legacy secret (digest). */
static int
on_iq_auth(struct xe_c2s *c, const struct xe_xml_elem *e)
{
    const struct xe_xml_elem *q = xe_xml_child(e, NS_IQ_AUTH, "query");
    const char *type = xe_xml_attr(e, "type"), *id = xe_xml_attr(e, "id");
    const char *user = field(q, "username"), *res = field(q, "resource");
    const char *pw = field(q, "password"), *dg = field(q, "digest");
    char jid[3072], detail[128], key[XE_LOCKOUT_KEY_MAX];
    enum xe_sasl_cond cond = XE_SASL_NOT_AUTHORIZED;
    int r;

    snprintf(c->iq_id, sizeof(c->iq_id), "%s",
             id && strlen(id) < sizeof(c->iq_id) ? id : "");
    if (type && strcmp(type, "get") == 0) {
        iq_open(c, "result", false);
        send_str(c, "<query xmlns='" NS_IQ_AUTH "'><username>");
        if (user && strlen(user) < 1024)
            xe_buf_append_escaped(&c->out, user);
        send_str(c, "</username><password/><digest/><resource/></query></iq>");
        return XE_XS_CONTINUE;
    }
    if (type == NULL || strcmp(type, "set") != 0)
        return iq_auth_failure(c, "bad-request", NULL, NULL, "not a get or a set");
    if (c->st != ST_NEGOTIATE)
        return iq_auth_failure(c, "not-acceptable", NULL, NULL, "during a SASL exchange");
    if (user == NULL || res == NULL || (pw == NULL && dg == NULL))
        return iq_auth_failure(c, "not-acceptable", NULL, NULL,
                               "username, resource and password or digest are required");
    if (strlen(user) >= 1024 || strlen(res) >= 1024 ||
        (pw && strlen(pw) > c->conf->max_sasl_bytes))
        return iq_auth_failure(c, "not-acceptable", NULL, NULL, "a field is too long");
    /* brute-force protection, as for SASL: the account is user@domain */
    snprintf(jid, sizeof(jid), "%s%s%s", user, strchr(user, '@') ? "" : "@",
             strchr(user, '@') ? "" : c->domain);
    xe_lockout_account_key(jid, strlen(jid), key);
    if (c->guard && c->guard->refuse(c->guard_ctx, key)) {
        c->guard->failed(c->guard_ctx, key, false);
        return iq_auth_failure(c, "not-authorized", XE_LOCKOUT_TEXT, jid, "locked out");
    }
    if (dg)
        r = xe_sasl_check_digest(c->domain, user, c->id, dg, jid, sizeof(jid), &cond,
                                 detail, sizeof(detail));
    else
        r = xe_sasl_check_plain(c->domain, user, pw, strlen(pw), jid, sizeof(jid), &cond,
                                detail, sizeof(detail));
    if (r != XE_SASL_OK && c->guard)
        c->guard->failed(c->guard_ctx, key, cond == XE_SASL_NOT_AUTHORIZED);
    if (r != XE_SASL_OK) {
        if (cond == XE_SASL_ACCOUNT_DISABLED)
            return iq_auth_failure(c, "not-allowed", "the account is disabled", jid,
                                   detail);
        if (cond == XE_SASL_CREDENTIALS_EXPIRED)
            return iq_auth_failure(c, "not-allowed", "the password has expired", jid,
                                   detail);
        return iq_auth_failure(c,
                               cond == XE_SASL_TEMPORARY_AUTH_FAILURE
                                   ? "internal-server-error"
                                   : "not-authorized",
                               NULL, jid, detail);
    }
    if (c->guard)
        c->guard->succeeded(c->guard_ctx, key);
    free(c->jid);
    c->jid = xe_strdup(jid);
    snprintf(c->mech, sizeof(c->mech), "iq-auth");
    free(c->resource);
    c->resource = xe_strdup(res);
    xe_metrics_add3(XE_M_LOGINS, 1, "iq-auth", "success", c->transport);
    xe_info("event=auth-ok peer=%s jid=%s mech=iq-auth digest=%s", c->peer, c->jid,
            dg ? "yes" : "no");
    xe_sasl_free(&c->sasl);
    c->st = ST_DONE; /* no restart: the rest of the stream is the backend's */
    return stop_with(c, XE_C2S_IQ_AUTHED);
}

void
xe_c2s_answer_iq_auth(struct xe_c2s *c, const char *condition)
{
    if (condition == NULL) {
        iq_open(c, "result", true);
        return;
    }
    iq_error(c, condition, NULL);
    send_str(c, "</stream:stream>");
    c->st = ST_CLOSED;
}

const char *
xe_c2s_resource(const struct xe_c2s *c)
{
    return c->resource;
}

/* ---- SASL2 (XEP-0388; doc/sasl2.md) --------------------------------------- */

bool
xe_c2s_sasl2_enabled(const struct xe_c2s *c)
{
    const struct xe_domain_conf *d =
        c->domain ? xe_conf_domain(c->conf, c->domain) : NULL;
    return c->tls && d != NULL && d->sasl2;
}

void
xe_c2s_set_sasl2(struct xe_c2s *c, unsigned inline_caps, const struct xe_sasl2_mech *own,
                 const char *const *fast_mechs, size_t n_fast)
{
    c->inline_caps = inline_caps;
    memset(&c->own, 0, sizeof(c->own));
    if (own)
        c->own = *own;
    c->fast_mechs = fast_mechs;
    c->n_fast_mechs = own ? n_fast : 0;
}

/* The <authentication/> feature: the classic list of mechanisms, and what
 * every server of the domain's pool lets the login machine do inline. */
void
xe_c2s_sasl2_features(struct xe_c2s *c, struct xe_buf *out)
{
    const char *mechs[XE_MECH_COUNT];
    const struct xe_domain_conf *d = xe_conf_domain(c->conf, c->domain);
    struct xe_sasl2_inline inl = {0};
    size_t n = xe_sasl_mechanisms(c->sasl, mechs, XE_MECH_COUNT);

    xe_bind2_pool_caps(d->pool, &inl.bind2_caps);
    inl.bind2 = (c->inline_caps & XE_C2S_INLINE_BIND2) != 0;
    if (!(c->inline_caps & XE_C2S_INLINE_SM))
        inl.bind2_caps.sm = false;
    inl.sm_resume = (c->inline_caps & XE_C2S_INLINE_RESUME) && inl.bind2_caps.sm;
    inl.fast_mechs = (char *const *)c->fast_mechs;
    inl.n_fast_mechs = c->n_fast_mechs;
    if (xe_sasl2_features(out, mechs, n, NULL, 0, &inl) < 0)
        xe_warn("event=output-overflow peer=%s", c->peer);
}

/* A SASL2 attempt failed (the <failure/> is queued). A token's failure is
 * not counted against max_auth_attempts (the password attempt that follows
 * it on the same stream is always allowed) and weighs half a password's in
 * the lockout guard (only every second one is counted). */
static void
sasl2_failed(struct xe_c2s *c, enum xe_sasl_cond cond, const char *detail, bool refused)
{
    const char *who = c->fast_attempt ? xe_sasl2_jid(c->sasl2)
                      : c->sasl       ? xe_sasl_jid(c->sasl)
                                      : "";
    bool counted = cond == XE_SASL_NOT_AUTHORIZED && !refused;

    if (!c->fast_attempt)
        c->failures++;
    c->st = ST_NEGOTIATE;
    xe_metrics_add3(XE_M_LOGINS, 1, c->mech[0] ? c->mech : "other",
                    refused ? "locked-out" : xe_sasl_cond_name(cond), c->transport);
    xe_info("event=auth-failed peer=%s domain=%s user=%s mech=%s condition=%s "
            "attempt=%u detail=\"%s\" path=%s",
            c->peer, c->domain, *who ? who : (c->tried[0] ? c->tried : "-"),
            c->mech[0] ? c->mech : "-", xe_sasl_cond_name(cond), c->failures,
            refused  ? "locked out"
            : detail ? detail
                     : "",
            c->fast_attempt ? "fast" : "sasl2");
    if (c->guard == NULL)
        return;
    if (c->tried[0] == '\0' && *who)
        xe_lockout_account_key(who, strlen(who), c->tried);
    if (c->fast_attempt && counted)
        counted = (++c->zfailures_fast & 1) == 0;
    c->guard->failed(c->guard_ctx, c->tried, counted);
}

/* The account an <authenticate> names, for the guard: a token's AUTHCID
 * (before its NUL), or what the SASL message names. */
static void
sasl2_account(struct xe_c2s *c, const struct xe_sasl2_auth *a)
{
    c->tried[0] = '\0';
    if (a->ir == NULL)
        return;
    if (c->fast_attempt) {
        size_t l = strnlen(a->ir, a->ir_len);
        char jid[1100];
        if (l == 0 || l > 1023)
            return;
        snprintf(jid, sizeof(jid), "%.*s%s%s", (int)l, a->ir,
                 memchr(a->ir, '@', l) ? "" : "@",
                 memchr(a->ir, '@', l) ? "" : c->domain);
        xe_lockout_account_key(jid, strlen(jid), c->tried);
        return;
    }
    xe_lockout_sasl_account(c->mech, a->ir, a->ir_len, c->domain, c->tried);
}

static int
sasl2_check(struct xe_c2s *c)
{
    if (c->failures >= c->conf->max_auth_attempts)
        return error_stop(c, "not-authorized", "too many failed authentication attempts");
    return XE_XS_CONTINUE;
}

static int
on_sasl2(struct xe_c2s *c, const struct xe_xml_elem *e, const unsigned char *raw,
         size_t raw_len)
{
    enum xe_sasl_cond cond = XE_SASL_TEMPORARY_AUTH_FAILURE;
    const char *detail = NULL;
    int r;

    if (c->sasl2 == NULL) {
        c->sasl2 = xe_sasl2_new(c->sasl, c->own.claims ? &c->own : NULL,
                                c->conf->max_sasl_bytes);
        if (c->sasl2 == NULL)
            return error_stop(c, "internal-server-error",
                              "authentication is unavailable");
    }
    if (xe_xml_is(e, XE_NS_SASL2, "authenticate") && c->st != ST_SASL) {
        struct xe_sasl2_auth *a = xe_calloc(1, sizeof(*a));
        enum xe_sasl_cond pc;
        const char *why = NULL;
        bool refused = false;

        c->mech[0] = '\0';
        c->tried[0] = '\0';
        c->fast_attempt = false;
        if (xe_sasl2_parse_authenticate(e, c->conf->max_sasl_bytes, a, &pc, &why) == 0) {
            snprintf(c->mech, sizeof(c->mech), "%s", a->mech);
            c->fast_attempt = c->own.claims && c->own.claims(c->own.ctx, a->mech);
            if (c->guard) {
                sasl2_account(c, a);
                refused = c->guard->refuse(c->guard_ctx, c->tried);
            }
        }
        if (!refused && c->fast_attempt && !c->fast_ready) {
            /* the token is verified off the loop: the machine asks the
             * glue, then this element comes again with the verdict */
            if (c->fast_auth) {
                xe_sasl2_auth_clear(c->fast_auth);
                free(c->fast_auth);
            }
            c->fast_auth = a;
            c->fast_raw.len = 0;
            if (xe_buf_append(&c->fast_raw, raw, raw_len) < 0)
                return error_stop(c, "policy-violation", "authenticate too large");
            return stop_with(c, XE_C2S_FAST_VERIFY);
        }
        c->fast_ready = false;
        xe_sasl2_auth_clear(a);
        free(a);
        if (refused) {
            xe_sasl2_failure(&c->out, XE_SASL_NOT_AUTHORIZED, XE_LOCKOUT_TEXT);
            c->fast_attempt = false; /* (a refusal counts as an attempt) */
            sasl2_failed(c, XE_SASL_NOT_AUTHORIZED, NULL, true);
            return sasl2_check(c);
        }
    }
    r = xe_sasl2_element(c->sasl2, e, &c->out, &cond, &detail);
    switch (r) {
    case XE_SASL2_CHALLENGE:
        c->st = ST_SASL;
        c->sasl2_xchg = true;
        return XE_XS_CONTINUE;
    case XE_SASL2_FAILURE:
        c->sasl2_xchg = false;
        sasl2_failed(c, cond, detail, false);
        return sasl2_check(c);
    case XE_SASL2_SUCCESS:
        break;
    default:
        return error_stop(c, "policy-violation",
                          detail ? detail : "unexpected SASL2 element");
    }
    free(c->jid);
    c->jid = xe_strndup(xe_sasl2_jid(c->sasl2), strnlen(xe_sasl2_jid(c->sasl2), 3071));
    c->anonymous = !c->fast_attempt && xe_sasl_anonymous(c->sasl);
    c->path = c->fast_attempt ? "fast" : "sasl2";
    xe_info("event=auth-ok peer=%s jid=%s mech=%s path=%s", c->peer, c->jid, c->mech,
            c->path);
    xe_metrics_add3(XE_M_LOGINS, 1, c->mech, "success", c->transport);
    if (c->guard) {
        char key[XE_LOCKOUT_KEY_MAX];
        xe_lockout_account_key(c->jid, strlen(c->jid), key);
        c->guard->succeeded(c->guard_ctx, key);
    }
    c->st = ST_DONE; /* no restart: what follows is the backend's (and Bind2's) */
    return stop_with(c, XE_C2S_SASL2_AUTHED);
}

const struct xe_sasl2_auth *
xe_c2s_fast_pending(const struct xe_c2s *c, const unsigned char **raw_r, size_t *len_r)
{
    *raw_r = c->fast_raw.data;
    *len_r = c->fast_raw.len;
    return c->fast_auth;
}

static void reprime(struct xe_c2s *c);

/* The parser stopped at the element (a stop is not resumable): it starts
 * over, primed quietly with this stream's header, for the element again. */
void
xe_c2s_fast_ready(struct xe_c2s *c)
{
    c->fast_ready = true;
    reprime(c);
}

struct xe_reg_job *
xe_c2s_take_reg_job(struct xe_c2s *c)
{
    struct xe_reg_job *j = c->reg_job;

    c->reg_job = NULL;
    return j;
}

/* The registration's answer, then the parser starts over (primed) for what
 * the client sent after the request. */
void
xe_c2s_reg_done(struct xe_c2s *c, struct xe_reg_job *job)
{
    xe_register_preauth_done(job, &c->out);
    xe_reg_job_free(&job);
    reprime(c);
}

static void
reprime(struct xe_c2s *c)
{
    size_t used;

    if (c->xs == NULL)
        return;
    xe_xmlstream_reset(c->xs);
    c->repriming = true;
    if (xe_xmlstream_feed(c->xs, c->restart_header.data, c->restart_header.len, &used) !=
        XE_XS_OK)
        xe_c2s_stream_error(c, "internal-server-error", NULL);
    c->repriming = false;
}

const struct xe_sasl2_auth *
xe_c2s_sasl2_request(const struct xe_c2s *c)
{
    return c->sasl2 ? xe_sasl2_request(c->sasl2) : NULL;
}

const char *
xe_c2s_path(const struct xe_c2s *c)
{
    return c->path ? c->path : "-";
}

int
xe_c2s_answer_sasl2(struct xe_c2s *c, const char *authzid, const char *extra,
                    size_t extra_len, const unsigned char *features, size_t flen)
{
    int r;

    if (c->sasl2 == NULL)
        return -1;
    r = xe_sasl2_build_success(c->sasl2, &c->out, authzid, extra, extra_len);
    if (r == 0 && flen > 0)
        r = xe_buf_append(&c->out, features, flen);
    return r; /* (the request stays readable until the c2s is freed) */
}

static int
on_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
           size_t raw_len)
{
    struct xe_c2s *c = ctx;

    if (c->st == ST_OFFERED)
        return on_offered_element(c, e, raw, raw_len);
    if (!c->tls) {
        if (xe_xml_is(e, XE_NS_TLS, "starttls")) {
            send_str(c, "<proceed xmlns='" XE_NS_TLS "'/>");
            xe_debug("event=starttls peer=%s domain=%s", c->peer, c->domain);
            return stop_with(c, XE_C2S_STARTTLS);
        }
        if (xe_xml_is(e, XE_NS_SASL, "auth")) {
            xe_buf_append_str(&c->out, "<failure xmlns='" XE_NS_SASL
                                       "'><encryption-required/></failure>");
            c->failures++;
            if (c->failures >= c->conf->max_auth_attempts)
                return error_stop(c, "policy-violation", "TLS is required");
            return XE_XS_CONTINUE;
        }
        return error_stop(c, "policy-violation", "TLS is required before anything else");
    }
    if (strcmp(e->ns, XE_NS_SASL2) == 0 && xe_c2s_sasl2_enabled(c))
        return on_sasl2(c, e, raw, raw_len);
    if (c->sasl2_xchg && c->st == ST_SASL && strcmp(e->ns, XE_NS_SASL) == 0)
        return error_stop(c, "policy-violation", "a classic SASL element inside SASL2");
    if (xe_xml_is(e, XE_NS_SASL, "auth"))
        return on_auth(c, e);
    if (xe_xml_is(e, XE_NS_SASL, "response")) {
        if (c->st != ST_SASL) {
            sasl_failure(c, XE_SASL_MALFORMED_REQUEST, "response outside an exchange");
            return XE_XS_CONTINUE;
        }
        return on_response(c, e);
    }
    if (xe_xml_is(e, XE_NS_SASL, "abort")) {
        if (c->st == ST_SASL) {
            sasl_failure(c, XE_SASL_ABORTED, "client aborted");
            if (c->failures >= c->conf->max_auth_attempts)
                return error_stop(c, "not-authorized",
                                  "too many failed authentication attempts");
        }
        return XE_XS_CONTINUE;
    }
    if (xe_xml_is(e, XE_NS_TLS, "starttls"))
        return error_stop(c, "policy-violation", "TLS is already established");
    if (iq_auth_enabled(c) && xe_xml_is(e, XE_NS_CLIENT, "iq") &&
        xe_xml_child(e, NS_IQ_AUTH, "query") != NULL)
        return on_iq_auth(c, e);
    if (xe_register_is_query(e) && xe_register_enabled(c->conf, c->domain)) {
        struct xe_reg_job *j =
            xe_register_preauth(c->conf, c->domain, c->peer, e, &c->out);

        if (j == NULL) /* answered */
            return XE_XS_CONTINUE;
        xe_reg_job_free(&c->reg_job);
        c->reg_job = j;
        return stop_with(c, XE_C2S_REGISTER);
    }
    return error_stop(c, "not-authorized", "authenticate first");
}

static int
on_stream_end(void *ctx)
{
    struct xe_c2s *c = ctx;

    if (c->st != ST_CLOSED) {
        send_str(c, "</stream:stream>");
        c->st = ST_CLOSED;
    }
    c->action = XE_C2S_CLOSE;
    return XE_XS_STOP;
}

static const struct xe_xmlstream_cb c2s_cb = {
    .stream_start = on_stream_start,
    .element = on_element,
    .stream_end = on_stream_end,
};

struct xe_c2s *
xe_c2s_new(const struct xe_c2s_params *p)
{
    struct xe_c2s *c = xe_calloc(1, sizeof(*c));
    struct xe_xmlstream_limits lim = {
        .max_element_bytes = p->conf->max_stanza_preauth,
        .max_depth = p->conf->max_xml_depth,
        .max_attrs = p->conf->max_attrs,
    };

    c->conf = p->conf;
    c->tls = p->tls;
    c->transport = p->transport ? p->transport : "tcp";
    c->peer = xe_strdup(p->peer ? p->peer : "-");
    c->guard = p->guard;
    c->guard_ctx = p->guard_ctx;
    xe_buf_init(&c->out, 64 * 1024);
    xe_buf_init(&c->restart_header, XE_MAX_HEADER_BYTES);
    xe_buf_init(&c->zfeatures, XE_MAX_BACKEND_FEATURES);
    xe_buf_init(&c->head, 0); /* one element: bounded by the parser */
    xe_buf_init(&c->fast_raw, 0);
    c->xs = xe_xmlstream_new(&lim, &c2s_cb, c);
    if (c->xs == NULL) {
        xe_c2s_free(&c);
        return NULL;
    }
    return c;
}

void
xe_c2s_free(struct xe_c2s **cp)
{
    struct xe_c2s *c = *cp;

    if (c == NULL)
        return;
    xe_xmlstream_free(&c->xs);
    xe_sasl2_free(&c->sasl2);
    xe_sasl_free(&c->sasl);
    if (c->fast_auth) {
        xe_sasl2_auth_clear(c->fast_auth);
        free(c->fast_auth);
    }
    OPENSSL_cleanse(c->fast_raw.data, c->fast_raw.len);
    xe_buf_free(&c->fast_raw);
    xe_reg_job_free(&c->reg_job);
    OPENSSL_cleanse(c->cb, sizeof(c->cb));
    free(c->ext);
    free(c->jid);
    xe_buf_free(&c->out);
    xe_buf_free(&c->restart_header);
    xe_buf_free(&c->zfeatures);
    xe_buf_free(&c->head);
    free(c->domain);
    free(c->sni);
    free(c->peer);
    free(c->resource);
    free(c);
    *cp = NULL;
}

enum xe_c2s_action
xe_c2s_feed(struct xe_c2s *c, const void *data, size_t len, size_t *consumed_r)
{
    size_t used = 0;
    int r;

    *consumed_r = len;
    if (c->st == ST_CLOSED)
        return XE_C2S_CLOSE;
    if (c->st == ST_DONE)
        return XE_C2S_RESTARTED;
    c->action = XE_C2S_CONTINUE;
    r = xe_xmlstream_feed(c->xs, data, len, &used);
    if (r == XE_XS_ERROR) {
        xe_c2s_stream_error(c, xe_xmlstream_condition(c->xs),
                            xe_xmlstream_error_text(c->xs));
        return XE_C2S_CLOSE;
    }
    if (r == XE_XS_STOPPED) {
        *consumed_r = used;
        switch (c->action) {
        case XE_C2S_AUTHENTICATED:
            xe_xmlstream_reset(c->xs); /* the next byte starts the new stream */
            break;
        case XE_C2S_RESTARTED:
            if (!c->zoffer) /* else the next element is read (offer_compression) */
                xe_xmlstream_free(&c->xs); /* no more parsing: bytes are spliced */
            break;
        case XE_C2S_IQ_AUTHED:
        case XE_C2S_SASL2_AUTHED:
            xe_xmlstream_free(&c->xs); /* no more parsing: bytes are spliced */
            break;
        case XE_C2S_COMPRESS:
            xe_xmlstream_reset(c->xs); /* the next (inflated) byte starts a stream */
            break;
        case XE_C2S_SPLICE:
            xe_xmlstream_free(&c->xs);
            break;
        default:
            break;
        }
        return c->action;
    }
    return XE_C2S_CONTINUE;
}

struct xe_buf *
xe_c2s_output(struct xe_c2s *c)
{
    return &c->out;
}

void
xe_c2s_tls_up(struct xe_c2s *c, const char *sni)
{
    c->tls = true;
    c->header_sent = false;
    free(c->sni);
    c->sni = sni ? xe_strdup(sni) : NULL;
    xe_xmlstream_reset(c->xs);
    c->st = ST_HEADER;
}

void
xe_c2s_set_peer_identities(struct xe_c2s *c, const char (*ids)[3072], size_t n)
{
    free(c->ext);
    c->ext = NULL;
    c->n_ext = 0;
    if (n == 0)
        return;
    c->ext = xe_calloc(n, sizeof(*c->ext));
    memcpy(c->ext, ids, n * sizeof(*c->ext));
    c->n_ext = n;
}

void
xe_c2s_set_channel_bindings(struct xe_c2s *c, const struct xe_cbind *cb, size_t n)
{
    c->n_cb = 0;
    for (size_t i = 0; i < n && c->n_cb < XE_CB_MAX; i++)
        c->cb[c->n_cb++] = cb[i];
}

int
xe_c2s_answer_restart(struct xe_c2s *c, const unsigned char *features, size_t len)
{
    send_header(c);
    if (c->zoffer && c->xs && offer_compression(c, features, len) == 0)
        return 0;
    c->zoffer = false;
    c->st = ST_DONE;
    xe_xmlstream_free(&c->xs);
    return xe_buf_append(&c->out, features, len);
}

void
xe_c2s_set_peer(struct xe_c2s *c, const char *peer)
{
    free(c->peer);
    c->peer = xe_strdup(peer);
}

const char *
xe_c2s_domain(const struct xe_c2s *c)
{
    return c->domain;
}

const char *
xe_c2s_jid(const struct xe_c2s *c)
{
    return jid_of(c);
}

bool
xe_c2s_anonymous(const struct xe_c2s *c)
{
    return c->anonymous;
}

const char *
xe_c2s_mech(const struct xe_c2s *c)
{
    return c->mech;
}

const unsigned char *
xe_c2s_restart_header(const struct xe_c2s *c, size_t *len_r)
{
    *len_r = c->restart_header.len;
    return c->restart_header.data;
}
