/* xedge: the c2s login's decisions, sans-IO (see session.h). */
#include "session.h"

#include <string.h>

static const struct xe_sess_outcome outcomes[XE_SF_COUNT] = {
    [XE_SF_NONE] = {"remote-connection-failed", XE_TEXT_UNAVAILABLE,
                    "backend-unavailable", false},
    [XE_SF_BACKEND_UNAVAILABLE] = {"remote-connection-failed", XE_TEXT_UNAVAILABLE,
                                   "backend-unavailable", false},
    [XE_SF_USER_SERVER_DOWN] = {"remote-connection-failed", XE_TEXT_USER_SERVER,
                                "backend-unavailable", false},
    [XE_SF_BACKEND_LOST] = {"remote-connection-failed",
                            "the connection to the service was lost", "backend-lost",
                            true},
    [XE_SF_RESTART_TIMEOUT] = {"connection-timeout",
                               "the stream was not restarted in time", "timeout", false},
    [XE_SF_AUTH_TIMEOUT] = {"connection-timeout", "authentication took too long",
                            "timeout", false},
    [XE_SF_IDLE_TIMEOUT] = {"connection-timeout", "idle before authentication", "timeout",
                            false},
    [XE_SF_PENDING_OVERFLOW] = {"policy-violation",
                                "too much data before the session started", "limit",
                                false},
    [XE_SF_HELD_OVERFLOW] = {"policy-violation", "too much data during authentication",
                             "limit", false},
    [XE_SF_STANZA_TOO_LARGE] = {"policy-violation", "stanza too large", "limit", false},
    [XE_SF_REGISTER_INTERNAL] = {"internal-server-error", NULL, "register-error", false},
    [XE_SF_COMPRESS_CORRUPT] = {"undefined-condition", "the compressed data is corrupt",
                                "compression-error", false},
    [XE_SF_QUEUE_FULL] = {"resource-constraint", XE_TEXT_BUSY, "backend-queue-full",
                          false},
    [XE_SF_QUEUE_TIMEOUT] = {"connection-timeout", XE_TEXT_BUSY, "backend-queue-timeout",
                             false},
    [XE_SF_SHUTDOWN] = {"system-shutdown", "the server is shutting down", "shutdown",
                        false},
};

const struct xe_sess_outcome *
xe_sess_outcome(enum xe_sess_fail f)
{
    if ((unsigned)f >= XE_SF_COUNT)
        f = XE_SF_BACKEND_UNAVAILABLE;
    return &outcomes[f];
}

enum xe_sess_timer_do
xe_sess_timer(const struct xe_sess_timer_in *in, enum xe_sess_fail backend_fail,
              enum xe_sess_fail *fail)
{
    *fail = XE_SF_NONE;
    switch (in->phase) {
    case XE_SP_CLOSING:
        return XE_ST_FINISH_CLOSE;
    case XE_SP_BACKEND:
        if (in->backend_failed) {
            *fail = backend_fail != XE_SF_NONE ? backend_fail : XE_SF_BACKEND_UNAVAILABLE;
            return XE_ST_FAIL;
        }
        if (in->backend_ready) {
            *fail = XE_SF_RESTART_TIMEOUT;
            return XE_ST_FAIL;
        }
        return XE_ST_BACKEND_TIMEOUT;
    case XE_SP_NEGOTIATING:
        if (in->held)
            return XE_ST_RELEASE_HELD;
        if (in->tls_handshaking)
            return XE_ST_TLS_TIMEOUT;
        *fail = in->now >= in->auth_deadline ? XE_SF_AUTH_TIMEOUT : XE_SF_IDLE_TIMEOUT;
        return XE_ST_FAIL;
    case XE_SP_SPLICED:
        return in->end_pending ? XE_ST_BOUNDARY_TIMEOUT : XE_ST_NOTHING;
    }
    return XE_ST_NOTHING;
}

bool
xe_sess_starttls_injection(const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr(" \t\r\n", data[i]) == NULL) /* (a NUL counts as white space) */
            return true;
    return false;
}

bool
xe_sess_may_retry(const struct xe_pool_conf *pool, size_t server, unsigned retried,
                  bool in_handshake)
{
    if (pool == NULL || server == XE_SESS_NO_SERVER || !in_handshake ||
        retried >= pool->retries || pool->n_servers < 2)
        return false;
    if (pool->policy == XE_POLICY_STICKY && pool->on_down != XE_ON_DOWN_NEXT)
        return false;
    return server < 64; /* (the tried servers are a 64-bit mask) */
}

enum xe_sess_fail_when
xe_sess_fail_when(bool negotiated_by_us, bool client_restarted, bool already_failed)
{
    return negotiated_by_us && !client_restarted && !already_failed ? XE_SW_AT_RESTART
                                                                    : XE_SW_NOW;
}

enum xe_sess_join
xe_sess_join(bool in_backend_phase, bool backend_ready, bool client_restarted,
             bool iq_auth)
{
    if (!backend_ready || !client_restarted || !in_backend_phase)
        return XE_SJ_WAIT;
    return iq_auth ? XE_SJ_IQ_AUTH_SPLICE : XE_SJ_RESTART;
}

/* ---- the login machine ------------------------------------------------------ */

#include <stdlib.h>

#include <openssl/crypto.h>

#include "backend.h"
#include "bind2.h"
#include "fast.h"
#include "log.h"
#include "register.h"
#include "sasl2.h"
#include "xelimits.h"

struct xe_sess {
    const struct xe_conf *conf;
    const struct xe_sess_guard *guard;
    void *guard_ctx;
    enum xe_sess_state st;
    struct xe_c2s *c2s;
    struct xe_backend_hs *bhs;
    struct xe_buf to_client, to_backend;
    struct xe_buf client_pending;  /* backend bytes after its features (R7) */
    struct xe_buf backend_pending; /* client bytes after its restart (R7) */
    bool client_restarted, backend_ready, backend_failed, iq_auth, connected;
    bool sasl2; /* a SASL2 login: answered with <success> (sess_answer) */
    /* Bind2: the backend script (bind2.h) over a parser of the backend's
     * stream, between the backend's login and the answer */
    struct xe_xmlstream *b2_xs;
    struct xe_bind2_script *b2_script;
    bool b2_running;
    int b2_result;
    /* inline resumption (XEP-0198 in SASL2): the backend's answer */
    bool rs_tried, rs_wait;
    int rs_result;        /* 1 <resumed/>, -1 <failed/> */
    struct xe_buf rs_xml; /* for <success>: <resumed/> rebuilt, or <failed/> */
    /* FAST (fast.h): the HT-* plug, verified asynchronously by the glue */
    struct xe_fast *fast;
    struct xe_sasl2_mech fast_plug;
    const char *fast_mechs[4];
    bool fast_wait; /* the glue verifies s->freq; the client is not read */
    bool reg_wait;  /* the glue runs a registration's job; the client is not read */
    struct xe_fast_req freq;
    /* a token for the client (<request-token/>), issued by the glue */
    bool token_wanted, token_pending, revoke_wanted;
    struct xe_buf token_xml;
    enum xe_sess_fail fail;
    /* R2: the held answer */
    bool held;
    enum xe_c2s_action held_action;
    struct xe_buf held_in;
    struct xe_buf zrest; /* R6: compressed bytes re-parsed behind <compress/> */
    uint64_t hold_ms, auth_deadline;
    /* the backend's server and the retries */
    const struct xe_pool_conf *pool;
    size_t server;
    unsigned retried;
    uint64_t tried;
    bool no_ahead; /* a login sent ahead was refused: wait for the features */
    enum xe_bhs_login ahead_hint; /* xe_sess_set_login_ahead */
    enum xe_bhs_login offered;    /* xe_sess_login_offered, untold */
    bool offered_told;            /* (for the current server) */
    const char *backend_error;
    bool backend_error_counts;
    const char *bind_refused; /* R4: the condition */
    char backend_why[160];
    /* the timer wanted */
    int timer_op;
    uint64_t timer_ms;
};

static bool
g_refuse(void *ctx, const char *account)
{
    struct xe_sess *s = ctx;
    return s->guard && s->guard->refuse && s->guard->refuse(s->guard_ctx, account);
}

/* (the c2s guard has no time: the call's, per thread) */
static _Thread_local uint64_t call_now;

static void
g_failed(void *ctx, const char *account, bool counted)
{
    struct xe_sess *s = ctx;
    /* attempts pipelined in one read add up */
    if (s->guard && s->guard->failed)
        s->hold_ms += s->guard->failed(s->guard_ctx, account, counted, call_now);
}

static void
g_succeeded(void *ctx, const char *account)
{
    struct xe_sess *s = ctx;
    if (s->guard && s->guard->succeeded)
        s->guard->succeeded(s->guard_ctx, account, call_now);
}

static const struct xe_c2s_guard sess_guard = {g_refuse, g_failed, g_succeeded};

static void
arm(struct xe_sess *s, uint64_t ms)
{
    s->timer_op = 1;
    s->timer_ms = ms;
}

static void
stop_timer(struct xe_sess *s)
{
    s->timer_op = -1;
}

/* Before authentication: the auth deadline, or preauth_idle of silence,
 * whichever comes first. */
static void
arm_preauth(struct xe_sess *s, uint64_t now)
{
    uint64_t at = now + s->conf->preauth_idle_ms;

    if (s->auth_deadline && s->auth_deadline < at)
        at = s->auth_deadline;
    arm(s, at > now ? at - now : 0);
}

struct xe_sess *
xe_sess_new(const struct xe_sess_params *p, uint64_t now)
{
    struct xe_sess *s = calloc(1, sizeof(*s));
    struct xe_c2s_params cp = {.conf = p->conf,
                               .tls = p->direct_tls || p->encrypted,
                               .peer = p->peer,
                               .transport = p->transport};

    if (s == NULL)
        return NULL;
    s->conf = p->conf;
    s->guard = p->guard;
    s->guard_ctx = p->guard_ctx;
    s->server = XE_SESS_NO_SERVER;
    cp.guard = &sess_guard;
    cp.guard_ctx = s;
    s->c2s = xe_c2s_new(&cp);
    if (s->c2s == NULL) {
        free(s);
        return NULL;
    }
    /* SASL2: what this machine does inline (FAST: xe_sess_set_fast) */
    xe_c2s_set_sasl2(s->c2s,
                     XE_C2S_INLINE_BIND2 | XE_C2S_INLINE_SM | XE_C2S_INLINE_RESUME, NULL,
                     NULL, 0);
    xe_buf_init(&s->to_client, 0);
    xe_buf_init(&s->to_backend, 0);
    xe_buf_init(&s->client_pending, p->conf->pump_hard_cap);
    xe_buf_init(&s->backend_pending, p->conf->pump_hard_cap);
    xe_buf_init(&s->held_in, 2 * XE_READ_CHUNK);
    xe_buf_init(&s->zrest, p->conf->pump_hard_cap);
    xe_buf_init(&s->token_xml, 0);
    xe_buf_init(&s->rs_xml, 0);
    if (p->direct_tls) {
        s->st = XE_SS_TLS;
        arm(s, p->conf->tls_timeout_ms);
    } else {
        s->auth_deadline = now + p->conf->auth_timeout_ms;
        arm_preauth(s, now);
    }
    return s;
}

void
xe_sess_free(struct xe_sess **sp)
{
    struct xe_sess *s = *sp;

    if (s == NULL)
        return;
    xe_c2s_free(&s->c2s);
    xe_backend_hs_free(&s->bhs);
    xe_xmlstream_free(&s->b2_xs);
    xe_bind2_script_free(&s->b2_script);
    if (s->fast) {
        OPENSSL_cleanse(s->fast, sizeof(*s->fast));
        free(s->fast);
    }
    OPENSSL_cleanse(s->token_xml.data, s->token_xml.cap);
    xe_buf_free(&s->token_xml);
    xe_buf_free(&s->rs_xml);
    OPENSSL_cleanse(s->to_backend.data, s->to_backend.cap);
    xe_buf_free(&s->to_client);
    xe_buf_free(&s->to_backend);
    xe_buf_free(&s->client_pending);
    xe_buf_free(&s->backend_pending);
    xe_buf_free(&s->held_in);
    xe_buf_free(&s->zrest);
    free(s);
    *sp = NULL;
}

/* The c2s core's output to the client's bytes (not while an answer is held). */
static void
take_c2s(struct xe_sess *s)
{
    struct xe_buf *o;

    if (s->c2s == NULL || s->held)
        return;
    o = xe_c2s_output(s->c2s);
    if (o->len) {
        xe_buf_append(&s->to_client, o->data, o->len);
        o->len = 0;
    }
}

static enum xe_sess_do
sess_fail(struct xe_sess *s, enum xe_sess_fail f)
{
    const struct xe_sess_outcome *o = xe_sess_outcome(f);

    s->fail = f;
    s->held = false;
    if (s->c2s) {
        xe_c2s_stream_error(s->c2s, o->condition, o->text);
        take_c2s(s);
    }
    s->st = XE_SS_CLOSING;
    stop_timer(s);
    return XE_SD_CLOSE;
}

static enum xe_sess_do
sess_close(struct xe_sess *s)
{
    take_c2s(s);
    s->st = XE_SS_CLOSING;
    stop_timer(s);
    return XE_SD_CLOSE;
}

/* Authenticated: the backend is next. RESTARTED: no restart follows (iq-auth;
 * SASL2 will too: its success is the place to call this with true, and Bind2's
 * request goes to the backend script next to xe_backend_hs_bind in
 * xe_sess_backend_begin). REST: what the client sent after (R7). */
static enum xe_sess_do
sess_authenticated(struct xe_sess *s, bool restarted, const void *rest, size_t n)
{
    stop_timer(s);
    s->st = XE_SS_BACKEND;
    if (restarted) {
        s->client_restarted = true;
        if (n > 0 && xe_buf_append(&s->backend_pending, rest, n) < 0)
            return sess_fail(s, XE_SF_PENDING_OVERFLOW);
    }
    return XE_SD_CONNECT;
}

static enum xe_sess_do sess_answer(struct xe_sess *s);
static enum xe_sess_do sess_backend_failed(struct xe_sess *s, const char *why);

/* ---- FAST (fast.h, tokens.h): the token's verdict and a new token ------- */

void
xe_sess_set_fast(struct xe_sess *s, struct xe_tokens *tokens, const struct xe_cbind *cb,
                 size_t n_cb)
{
    size_t n;

    if (s->fast == NULL)
        s->fast = calloc(1, sizeof(*s->fast));
    if (s->fast == NULL || tokens == NULL)
        return;
    xe_fast_init(s->fast, tokens, xe_c2s_domain(s->c2s), cb, n_cb);
    s->fast->async = true;
    s->fast_plug = xe_fast_mech(s->fast);
    n = xe_fast_mechanisms(s->fast, s->fast_mechs, 4);
    xe_c2s_set_sasl2(s->c2s,
                     XE_C2S_INLINE_BIND2 | XE_C2S_INLINE_SM | XE_C2S_INLINE_RESUME,
                     &s->fast_plug, s->fast_mechs, n);
}

/* The element waiting for its verdict comes again, then what the client
 * sent meanwhile (in order). */
static enum xe_sess_do
sess_fast_refeed(struct xe_sess *s, uint64_t now)
{
    const unsigned char *raw;
    size_t rl, used;
    struct xe_buf again;
    enum xe_sess_do d;

    xe_c2s_fast_pending(s->c2s, &raw, &rl);
    xe_buf_init(&again, 0);
    if (xe_buf_append(&again, raw, rl) < 0 ||
        xe_buf_append(&again, s->held_in.data, s->held_in.len) < 0) {
        xe_buf_free(&again);
        return sess_fail(s, XE_SF_HELD_OVERFLOW);
    }
    s->held_in.len = 0;
    s->fast_wait = false;
    xe_c2s_fast_ready(s->c2s);
    d = xe_sess_client(s, again.data, again.len, &used, now);
    OPENSSL_cleanse(again.data, again.len);
    xe_buf_free(&again);
    return d;
}

static enum xe_sess_do
sess_fast_verify(struct xe_sess *s, const char *rest, size_t n, uint64_t now)
{
    const unsigned char *raw;
    size_t rl;
    const struct xe_sasl2_auth *a = xe_c2s_fast_pending(s->c2s, &raw, &rl);
    enum xe_sasl_cond cond = XE_SASL_TEMPORARY_AUTH_FAILURE;
    const char *detail = NULL;

    if (n > 0 && xe_buf_append(&s->held_in, rest, n) < 0)
        return sess_fail(s, XE_SF_HELD_OVERFLOW);
    s->fast_wait = true;
    s->fast->domain = xe_c2s_domain(s->c2s);
    if (a == NULL || xe_fast_prepare(s->fast, a, &s->freq, &cond, &detail) < 0 ||
        (s->freq.proof_len != 32 && (cond = XE_SASL_NOT_AUTHORIZED) &&
         (detail = "HT-*: the proof is not 32 bytes"))) {
        /* refused before the store is asked: the step fails the same way */
        xe_fast_set_verdict(s->fast, XE_SASL_FAIL, cond, detail, NULL);
        return sess_fast_refeed(s, now);
    }
    return XE_SD_FAST_VERIFY;
}

/* XE_C2S_REGISTER: the job runs off the loop; what the client sent after
 * the request waits for its answer. The client is not silent meanwhile:
 * only the auth deadline runs (preauth_idle starts again with the answer). */
static enum xe_sess_do
sess_reg_wait(struct xe_sess *s, const char *rest, size_t n, uint64_t now)
{
    if (n > 0 && xe_buf_append(&s->held_in, rest, n) < 0)
        return sess_fail(s, XE_SF_HELD_OVERFLOW);
    s->reg_wait = true;
    if (s->auth_deadline)
        arm(s, s->auth_deadline > now ? s->auth_deadline - now : 0);
    else
        stop_timer(s);
    return XE_SD_REGISTER;
}

struct xe_reg_job *
xe_sess_take_reg_job(struct xe_sess *s)
{
    return s->reg_wait && s->c2s ? xe_c2s_take_reg_job(s->c2s) : NULL;
}

enum xe_sess_do
xe_sess_reg_done(struct xe_sess *s, struct xe_reg_job *job, uint64_t now)
{
    struct xe_buf rest;
    enum xe_sess_do d = XE_SD_NONE;
    size_t used;

    call_now = now;
    s->backend_error = NULL;
    if (!s->reg_wait || s->st != XE_SS_NEGOTIATING || s->c2s == NULL) {
        xe_reg_job_free(&job);
        return XE_SD_NONE;
    }
    s->reg_wait = false;
    xe_c2s_reg_done(s->c2s, job);
    take_c2s(s);
    rest = s->held_in;
    xe_buf_init(&s->held_in, 2 * XE_READ_CHUNK);
    if (rest.len > 0)
        d = xe_sess_client(s, rest.data, rest.len, &used, now);
    else
        arm_preauth(s, now);
    OPENSSL_cleanse(rest.data, rest.len);
    xe_buf_free(&rest);
    return d;
}

const struct xe_fast_req *
xe_sess_fast_request(const struct xe_sess *s)
{
    return s->fast_wait ? &s->freq : NULL;
}

enum xe_sess_do
xe_sess_fast_verdict(struct xe_sess *s, int rc, enum xe_sasl_cond cond,
                     const char *detail, const unsigned char responder[32], uint64_t now)
{
    call_now = now;
    s->backend_error = NULL;
    if (!s->fast_wait || s->st != XE_SS_NEGOTIATING)
        return XE_SD_NONE;
    xe_fast_set_verdict(s->fast, rc, cond, detail, responder);
    return sess_fast_refeed(s, now);
}

/* After a SASL2 success: does the client get a token (<request-token/> for
 * a mechanism this stream can do, with a user agent id to bind it to), or
 * lose the one it used (<fast invalidate='true'/>)? */
static void
sess_token_check(struct xe_sess *s)
{
    const struct xe_sasl2_auth *a = xe_c2s_sasl2_request(s->c2s);

    if (a == NULL || s->fast == NULL || !a->has_ua || a->ua_id[0] == '\0')
        return;
    if (a->request_token && xe_fast_can(s->fast, a->token_mech))
        s->token_wanted = s->token_pending = true;
    if (a->fast && a->fast_invalidate && strcmp(xe_c2s_path(s->c2s), "fast") == 0)
        s->revoke_wanted = true;
}

bool
xe_sess_token_wanted(struct xe_sess *s, const char **ua_id_r, const char **mech_r,
                     bool *revoke_r)
{
    const struct xe_sasl2_auth *a = xe_c2s_sasl2_request(s->c2s);
    bool want = s->token_wanted;

    *revoke_r = s->revoke_wanted;
    s->token_wanted = s->revoke_wanted = false;
    if (a == NULL)
        return false;
    *ua_id_r = a->ua_id;
    *mech_r = a->token_mech;
    return want;
}

void
xe_sess_token_rotate(struct xe_sess *s)
{
    if (s->st == XE_SS_BACKEND && !s->backend_ready && s->sasl2)
        s->token_pending = true;
}

enum xe_sess_do
xe_sess_token_issued(struct xe_sess *s, const char *token, int64_t expiry)
{
    s->backend_error = NULL;
    if (!s->token_pending)
        return XE_SD_NONE;
    s->token_pending = false;
    if (token)
        xe_fast_token_xml(&s->token_xml, token, expiry);
    if (s->st != XE_SS_BACKEND || !s->backend_ready || s->b2_running)
        return XE_SD_NONE;
    return sess_answer(s);
}
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
static bool
b2_wanted(struct xe_sess *s)
{
    const struct xe_sasl2_auth *a = s->sasl2 ? xe_c2s_sasl2_request(s->c2s) : NULL;
    return a && (a->bind.present || a->resume);
}

static enum xe_sess_do b2_begin(struct xe_sess *s, const char *rest, size_t n);

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
    return sess_fail(s, XE_SF_BACKEND_UNAVAILABLE);
}

/* The backend's bytes while the script runs. */
static enum xe_sess_do
b2_feed(struct xe_sess *s, const char *data, size_t n)
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
            return b2_begin(s, data + used, n - used);
        }
        s->b2_running = false;
        s->backend_ready = true;
        if (used < n && xe_buf_append(&s->client_pending, data + used, n - used) < 0)
            return sess_backend_failed(
                s, "backend sent too much before the session started");
        return sess_answer(s);
    }
    if (s->b2_result != XE_BIND2_DONE)
        return b2_failed(s);
    /* done: what follows <enabled/> (or the last answer) waits for the
     * success (R7) */
    s->b2_running = false;
    s->backend_ready = true;
    if (used < n && xe_buf_append(&s->client_pending, data + used, n - used) < 0)
        return sess_backend_failed(s, "backend sent too much before the session started");
    if (xe_bind2_script_unsynced(s->b2_script) > 0)
        xe_warn("event=bind2-unsynced jid=%s held=%u", xe_c2s_jid(s->c2s),
                xe_bind2_script_unsynced(s->b2_script));
    return sess_answer(s);
}

/* The backend is logged in: start the script (its features, then the
 * requests in one write); REST: what the backend sent after its features. */
static enum xe_sess_do
b2_begin(struct xe_sess *s, const char *rest, size_t n)
{
    struct xe_xmlstream_limits lim = {.max_element_bytes = s->conf->max_stanza_postauth,
                                      .max_depth = XE_POSTAUTH_MAX_XML_DEPTH,
                                      .max_attrs = XE_POSTAUTH_MAX_ATTRS};
    const unsigned char *h, *f, *req;
    size_t hl, fl, rl, used;

    const struct xe_sasl2_auth *a = xe_c2s_sasl2_request(s->c2s);

    s->b2_xs = xe_xmlstream_new(&lim, &b2_cb, s);
    if (s->b2_xs == NULL)
        return sess_backend_failed(s, "no memory for Bind2");
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
                    return sess_backend_failed(s, "backend sent too much");
                return sess_answer(s);
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
        arm(s, s->conf->backend_handshake_ms);
        return b2_feed(s, rest, n);
    }
    if (xe_xmlstream_feed(s->b2_xs, h, hl, &used) != XE_XS_OK ||
        xe_xmlstream_feed(s->b2_xs, f, fl, &used) != XE_XS_OK || s->b2_script == NULL)
        return b2_failed(s);
    req = xe_bind2_script_requests(s->b2_script, &rl);
    xe_buf_append(&s->to_backend, req, rl);
    arm(s, s->conf->backend_handshake_ms);
    return b2_feed(s, rest, n);
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
static enum xe_sess_do
sasl2_answer(struct xe_sess *s, const unsigned char *features, size_t flen)
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
        return sess_fail(s, XE_SF_BACKEND_UNAVAILABLE);
    take_c2s(s);
    if (s->b2_script && (held = xe_bind2_script_held(s->b2_script, &hl)) && hl > 0)
        xe_buf_append(&s->to_client, held, hl);
    s->st = XE_SS_SPLICED;
    stop_timer(s);
    return XE_SD_SPLICE;
}

/* The join (R3, R4): both sides are in; answer the client. (SASL2: a third
 * answer kind here, the <success/> with the Bind2 result, sent before any of
 * client_pending: what the backend sent after its <enabled/>.) */
static enum xe_sess_do
sess_answer(struct xe_sess *s)
{
    const unsigned char *features;
    size_t flen;
    enum xe_sess_join j = xe_sess_join(s->st == XE_SS_BACKEND, s->backend_ready,
                                       s->client_restarted, s->iq_auth);

    if (j == XE_SJ_WAIT || s->token_pending) /* (a token is being issued) */
        return XE_SD_NONE;
    features = xe_backend_hs_features(s->bhs, &flen);
    if (s->sasl2) /* no restart: <success>, then the backend's features */
        return sasl2_answer(s, features, flen);
    if (j == XE_SJ_IQ_AUTH_SPLICE)
        xe_c2s_answer_iq_auth(s->c2s, NULL);
    else
        xe_c2s_answer_restart(s->c2s, features, flen);
    take_c2s(s);
    if (j == XE_SJ_RESTART && xe_c2s_compression_offered(s->c2s)) {
        /* R6: the client's next element decides; what it sent so far is
         * parsed again by the core */
        struct xe_buf again = s->backend_pending;
        size_t used = 0;
        enum xe_sess_do d;

        xe_buf_init(&s->backend_pending, s->conf->pump_hard_cap);
        s->client_restarted = false;
        s->st = XE_SS_COMPRESS_OFFER;
        arm(s, s->conf->preauth_idle_ms);
        d = again.len ? xe_sess_client(s, again.data, again.len, &used, call_now)
                      : XE_SD_NONE;
        if (d == XE_SD_START_COMPRESSION && used < again.len) {
            /* compressed bytes pipelined behind <compress/>: kept for the
             * glue, which inflates them first (as the rest of a read) */
            xe_buf_append(&s->zrest, again.data + used, again.len - used);
        }
        xe_buf_free(&again);
        return d;
    }
    s->st = XE_SS_SPLICED;
    stop_timer(s);
    return XE_SD_SPLICE;
}

enum xe_sess_do
xe_sess_client(struct xe_sess *s, const void *data_, size_t n, size_t *used_r,
               uint64_t now)
{
    const char *data = data_;
    size_t total = n;

    call_now = now;
    s->backend_error = NULL;
    *used_r = n;
    if (s->st == XE_SS_CLOSING || s->st == XE_SS_SPLICED || s->st == XE_SS_TLS)
        return XE_SD_NONE;     /* (the glue does not feed these) */
    if (s->client_restarted) { /* R7 */
        if (xe_buf_append(&s->backend_pending, data, n) < 0)
            return sess_fail(s, XE_SF_PENDING_OVERFLOW);
        return XE_SD_NONE;
    }
    if (s->held || s->fast_wait || s->reg_wait) {
        if (xe_buf_append(&s->held_in, data, n) < 0)
            return sess_fail(s, XE_SF_HELD_OVERFLOW);
        return XE_SD_HOLD;
    }
    if (s->st == XE_SS_NEGOTIATING)
        arm_preauth(s, now); /* the client spoke: the idle time starts again */
    while (n > 0 && s->c2s) {
        size_t used = 0;
        enum xe_c2s_action a = xe_c2s_feed(s->c2s, data, n, &used);

        data += used;
        n -= used;
        if (s->hold_ms > 0 && (a == XE_C2S_CONTINUE || a == XE_C2S_CLOSE ||
                               a == XE_C2S_AUTHENTICATED || a == XE_C2S_SASL2_AUTHED ||
                               a == XE_C2S_FAST_VERIFY || a == XE_C2S_REGISTER)) {
            /* R2 (a success after failures pipelined in one read waits too;
             * so does a token attempt: its verification starts after) */
            uint64_t ms = s->hold_ms;

            s->hold_ms = 0;
            if (s->auth_deadline && now + ms > s->auth_deadline)
                ms = s->auth_deadline > now ? s->auth_deadline - now : 0;
            if (a != XE_C2S_CLOSE && xe_buf_append(&s->held_in, data, n) < 0)
                return sess_fail(s, XE_SF_HELD_OVERFLOW);
            s->held = true;
            s->held_action = a;
            arm(s, ms);
            return XE_SD_HOLD;
        }
        s->hold_ms = 0;
        take_c2s(s);
        switch (a) {
        case XE_C2S_CONTINUE:
            break;
        case XE_C2S_STARTTLS: /* R1: the rest is dropped */
            *used_r = total - n;
            s->st = XE_SS_TLS;
            arm(s, s->conf->tls_timeout_ms);
            return XE_SD_START_TLS;
        case XE_C2S_AUTHENTICATED: {
            enum xe_sess_do d = sess_authenticated(s, false, NULL, 0);
            if (n > 0 && d == XE_SD_CONNECT) {
                /* the rest (the client's new header, R3) is parsed now; what
                 * it brings waits for the backend */
                size_t u;
                enum xe_sess_do d2 = xe_sess_client(s, data, n, &u, now);
                if (d2 == XE_SD_CLOSE)
                    return d2;
            }
            return d;
        }
        case XE_C2S_RESTARTED:
            s->client_restarted = true;
            if (s->backend_failed)
                return sess_fail(s, s->fail);
            if (n > 0 && xe_buf_append(&s->backend_pending, data, n) < 0)
                return sess_fail(s, XE_SF_PENDING_OVERFLOW);
            return sess_answer(s);
        case XE_C2S_IQ_AUTHED:
            s->iq_auth = true;
            return sess_authenticated(s, true, data, n);
        case XE_C2S_SASL2_AUTHED: /* no restart: the rest is the backend's */
            s->sasl2 = true;
            sess_token_check(s);
            return sess_authenticated(s, true, data, n);
        case XE_C2S_FAST_VERIFY:
            return sess_fast_verify(s, data, n, now);
        case XE_C2S_REGISTER:
            return sess_reg_wait(s, data, n, now);
        case XE_C2S_COMPRESS: /* R6: the next byte is compressed */
            *used_r = total - n;
            return XE_SD_START_COMPRESSION;
        case XE_C2S_SPLICE: {
            size_t hlen;
            const unsigned char *head = xe_c2s_splice_bytes(s->c2s, &hlen);

            s->client_restarted = true;
            if (s->backend_failed)
                return sess_fail(s, s->fail);
            if (xe_buf_append(&s->backend_pending, head, hlen) < 0 ||
                xe_buf_append(&s->backend_pending, data, n) < 0)
                return sess_fail(s, XE_SF_PENDING_OVERFLOW);
            s->st = XE_SS_SPLICED;
            stop_timer(s);
            return XE_SD_SPLICE;
        }
        case XE_C2S_CLOSE:
            return sess_close(s);
        }
    }
    return XE_SD_NONE;
}

void
xe_sess_tls_up(struct xe_sess *s, const char *sni, uint64_t now)
{
    xe_c2s_tls_up(s->c2s, sni);
    s->st = XE_SS_NEGOTIATING;
    s->auth_deadline = now + s->conf->auth_timeout_ms;
    arm_preauth(s, now);
}

/* The backend failed for good: the client hears it now or at its restart. */
static enum xe_sess_do
sess_backend_error(struct xe_sess *s)
{
    if (s->fail == XE_SF_NONE)
        s->fail = XE_SF_BACKEND_UNAVAILABLE;
    if (xe_sess_fail_when(s->c2s != NULL, s->client_restarted, s->backend_failed) ==
        XE_SW_AT_RESTART) {
        s->backend_failed = true;
        arm(s, s->conf->backend_handshake_ms);
        return XE_SD_NONE;
    }
    return sess_fail(s, s->fail);
}

static enum xe_sess_do
sess_backend_failed(struct xe_sess *s, const char *why)
{
    bool in_hs = s->st == XE_SS_BACKEND && !s->backend_ready && !s->backend_failed;
    bool again = false;

    snprintf(s->backend_why, sizeof(s->backend_why), "%s", why ? why : "?");
    s->backend_error = s->backend_why;
    s->backend_error_counts = in_hs; /* a connect or handshake failure */
    if (in_hs && !s->no_ahead && s->bhs && xe_backend_hs_guessed_wrong(s->bhs)) {
        /* the login sent ahead for the server's kind was not offered: once
         * more, on a new connection, waiting for the features; the server
         * is not to blame and no retry is spent */
        s->no_ahead = true;
        s->backend_error_counts = false;
        again = true;
    } else if (xe_sess_may_retry(s->pool, s->server, s->retried, in_hs)) {
        s->tried |= UINT64_C(1) << s->server;
        s->retried++;
        again = true;
    }
    if (again) {
        s->offered_told = false;
        xe_backend_hs_free(&s->bhs);
        xe_xmlstream_free(&s->b2_xs); /* (Bind2 starts over on the next) */
        xe_bind2_script_free(&s->b2_script);
        s->b2_running = s->rs_tried = s->rs_wait = false;
        s->rs_result = 0;
        s->rs_xml.len = 0;
        OPENSSL_cleanse(s->to_backend.data, s->to_backend.cap);
        s->to_backend.len = 0; /* (for the failed server) */
        s->connected = false;
        stop_timer(s);
        return XE_SD_RETRY;
    }
    return sess_backend_error(s);
}

/* The login sent with our stream header to a server of KIND (backend.h):
 * what it offered last time (HINT), else by its kind, the direct login of
 * Prosody's mod_auth_xedge, SASL PLAIN for ejabberd. Nothing ahead of the
 * features of jabberd2 (2.7 leaves a login sent before it sent its features
 * unanswered: the login timed out in t/e2e-jabberd2.t) nor of a generic
 * server. */
static enum xe_bhs_login
login_ahead(enum xe_server_kind kind, enum xe_bhs_login hint)
{
    switch (kind) {
    case XE_KIND_PROSODY:
        return hint != XE_BHS_LOGIN_WAIT ? hint : XE_BHS_LOGIN_DIRECT;
    case XE_KIND_EJABBERD:
        return hint != XE_BHS_LOGIN_WAIT ? hint : XE_BHS_LOGIN_PLAIN;
    default:
        return XE_BHS_LOGIN_WAIT;
    }
}

void
xe_sess_set_login_ahead(struct xe_sess *s, enum xe_bhs_login login)
{
    s->ahead_hint = login;
}

bool
xe_sess_login_offered(struct xe_sess *s, enum xe_bhs_login *login_r)
{
    *login_r = s->offered;
    s->offered = XE_BHS_LOGIN_WAIT;
    return *login_r != XE_BHS_LOGIN_WAIT;
}

enum xe_sess_do
xe_sess_backend_begin(struct xe_sess *s, const struct xe_pool_conf *pool, size_t server,
                      const char *local, const char *token, enum xe_sess_fail fail)
{
    const struct xe_domain_conf *d = xe_conf_domain(s->conf, xe_c2s_domain(s->c2s));

    s->backend_error = NULL;
    s->pool = pool;
    if (local == NULL || d == NULL) {
        s->server = XE_SESS_NO_SERVER;
        s->fail = fail != XE_SF_NONE ? fail : XE_SF_BACKEND_UNAVAILABLE;
        return sess_backend_error(s);
    }
    s->server = server;
    s->bhs = xe_backend_hs_new(d->name, local, token, XE_MAX_BACKEND_FEATURES);
    if (s->bhs == NULL)
        return sess_backend_failed(s, "cannot start the backend handshake");
    if (!s->no_ahead && pool != NULL && server < pool->n_servers)
        xe_backend_hs_send_ahead(s->bhs,
                                 login_ahead(pool->servers[server].kind, s->ahead_hint));
    s->ahead_hint = XE_BHS_LOGIN_WAIT; /* (told again before each) */
    if (s->iq_auth)
        xe_backend_hs_bind(s->bhs, xe_c2s_resource(s->c2s));
    arm(s, s->conf->backend_connect_ms);
    return XE_SD_NONE;
}

enum xe_sess_do
xe_sess_connected(struct xe_sess *s, bool ok, const char *why)
{
    struct xe_buf *out;

    s->backend_error = NULL;
    if (s->st != XE_SS_BACKEND || s->bhs == NULL || s->backend_failed)
        return XE_SD_NONE; /* (a connect that ends after the login gave up) */
    if (!ok)
        return sess_backend_failed(s, why);
    s->connected = true;
    out = xe_backend_hs_output(s->bhs);
    xe_buf_append(&s->to_backend, out->data, out->len);
    out->len = 0;
    arm(s, s->conf->backend_handshake_ms);
    return XE_SD_NONE;
}

enum xe_sess_do
xe_sess_backend(struct xe_sess *s, const void *data_, size_t n, const char *why)
{
    const char *data = data_;
    size_t used = 0;
    enum xe_bhs_result r;
    struct xe_buf *out;

    s->backend_error = NULL;
    if (s->st != XE_SS_BACKEND && s->st != XE_SS_COMPRESS_OFFER)
        return XE_SD_NONE;
    if (n == 0)
        return sess_backend_failed(s, why ? why
                                          : "backend closed the connection during the "
                                            "handshake");
    if (s->backend_failed)
        return XE_SD_NONE;
    if (s->b2_running)
        return b2_feed(s, data, n);
    if (s->st != XE_SS_BACKEND || s->backend_ready) {
        /* R7: bytes after the features, before the client restarted */
        if (xe_buf_append(&s->client_pending, data, n) < 0)
            return sess_backend_failed(
                s, "backend sent too much before the session started");
        return XE_SD_NONE;
    }
    r = xe_backend_hs_feed(s->bhs, data, n, &used);
    if (s->offered == XE_BHS_LOGIN_WAIT && !s->offered_told) {
        s->offered = xe_backend_hs_offered(s->bhs);
        s->offered_told = s->offered != XE_BHS_LOGIN_WAIT;
    }
    out = xe_backend_hs_output(s->bhs);
    if (out->len) {
        xe_buf_append(&s->to_backend, out->data, out->len);
        OPENSSL_cleanse(out->data, out->len); /* it carried the assertion */
        out->len = 0;
    }
    if (r == XE_BHS_FAIL) {
        if (s->iq_auth && xe_backend_hs_bind_error(s->bhs)) { /* R4 */
            s->bind_refused = xe_backend_hs_bind_error(s->bhs);
            xe_c2s_answer_iq_auth(s->c2s, xe_backend_hs_bind_error(s->bhs));
            return sess_close(s);
        }
        return sess_backend_failed(s, xe_backend_hs_error(s->bhs));
    }
    if (r == XE_BHS_READY && b2_wanted(s)) /* SASL2 with Bind2: the script first */
        return b2_begin(s, data + used, n - used);
    if (r == XE_BHS_READY) {
        s->backend_ready = true;
        arm(s, s->conf->backend_handshake_ms); /* the client must restart in time */
        if (used < n && xe_buf_append(&s->client_pending, data + used, n - used) < 0)
            return sess_backend_failed(
                s, "backend sent too much before the session started");
        return sess_answer(s);
    }
    return XE_SD_NONE;
}

/* R2: the held answer goes out; what came meanwhile is parsed. */
static enum xe_sess_do
sess_release(struct xe_sess *s, uint64_t now)
{
    struct xe_buf rest = s->held_in;
    enum xe_sess_do d = XE_SD_NONE;
    size_t used;

    xe_buf_init(&s->held_in, 2 * XE_READ_CHUNK);
    s->held = false;
    take_c2s(s);
    switch (s->held_action) {
    case XE_C2S_CLOSE:
        xe_buf_free(&rest);
        return sess_close(s);
    case XE_C2S_AUTHENTICATED:
        d = sess_authenticated(s, false, NULL, 0);
        break;
    case XE_C2S_FAST_VERIFY: /* the token's verification starts now */
        d = sess_fast_verify(s, NULL, 0, now);
        break;
    case XE_C2S_REGISTER: /* the registration's job starts now */
        d = sess_reg_wait(s, NULL, 0, now);
        break;
    case XE_C2S_SASL2_AUTHED: /* (the rest, parsed below, goes to backend_pending) */
        s->sasl2 = true;
        sess_token_check(s);
        d = sess_authenticated(s, true, NULL, 0);
        break;
    default:
        arm_preauth(s, now);
        break;
    }
    if (rest.len > 0) {
        enum xe_sess_do d2 = xe_sess_client(s, rest.data, rest.len, &used, now);
        if (d2 != XE_SD_NONE)
            d = (d == XE_SD_CONNECT || d == XE_SD_FAST_VERIFY || d == XE_SD_REGISTER) &&
                        d2 != XE_SD_CLOSE
                    ? d
                    : d2;
        if (d2 == XE_SD_START_COMPRESSION && used < rest.len)
            xe_buf_append(&s->zrest, rest.data + used, rest.len - used);
    }
    xe_buf_free(&rest);
    return d;
}

enum xe_sess_do
xe_sess_timer_fired(struct xe_sess *s, uint64_t now)
{
    struct xe_sess_timer_in in = {
        .held = s->held,
        .tls_handshaking = s->st == XE_SS_TLS,
        .backend_failed = s->backend_failed,
        .backend_ready = s->backend_ready,
        .now = now,
        .auth_deadline = s->auth_deadline,
    };
    enum xe_sess_fail f;

    call_now = now;
    s->backend_error = NULL;
    switch (s->st) {
    case XE_SS_CLOSING:
        in.phase = XE_SP_CLOSING;
        break;
    case XE_SS_BACKEND:
        in.phase = XE_SP_BACKEND;
        break;
    case XE_SS_SPLICED:
        return XE_SD_NONE;     /* (the glue's, once spliced) */
    case XE_SS_COMPRESS_OFFER: /* the client did not answer the offer in time */
        in.phase = XE_SP_BACKEND;
        break;
    default:
        in.phase = XE_SP_NEGOTIATING;
        break;
    }
    switch (xe_sess_timer(&in, s->fail, &f)) {
    case XE_ST_FAIL:
        return sess_fail(s, f);
    case XE_ST_BACKEND_TIMEOUT:
        return sess_backend_failed(s, "backend did not answer in time");
    case XE_ST_RELEASE_HELD:
        return sess_release(s, now);
    case XE_ST_TLS_TIMEOUT:
    case XE_ST_FINISH_CLOSE:
        s->st = XE_SS_CLOSING;
        return XE_SD_CLOSE;
    default:
        return XE_SD_NONE;
    }
}

struct xe_buf *
xe_sess_to_client(struct xe_sess *s)
{
    take_c2s(s);
    return &s->to_client;
}

struct xe_buf *
xe_sess_to_backend(struct xe_sess *s)
{
    return &s->to_backend;
}

void
xe_sess_sent(struct xe_sess *s)
{
    s->to_client.len = 0;
    OPENSSL_cleanse(s->to_backend.data, s->to_backend.len);
    s->to_backend.len = 0;
}

void
xe_sess_take_pending(struct xe_sess *s, struct xe_buf *to_client,
                     struct xe_buf *to_backend)
{
    *to_client = s->client_pending;
    *to_backend = s->backend_pending;
    xe_buf_init(&s->client_pending, 0);
    xe_buf_init(&s->backend_pending, 0);
}

struct xe_buf *
xe_sess_compressed_rest(struct xe_sess *s)
{
    return &s->zrest;
}

int
xe_sess_timer_want(struct xe_sess *s, uint64_t *ms_r)
{
    int op = s->timer_op;

    *ms_r = s->timer_ms;
    s->timer_op = 0;
    return op;
}

enum xe_sess_state
xe_sess_state(const struct xe_sess *s)
{
    return s->st;
}

bool
xe_sess_held(const struct xe_sess *s)
{
    return s->held || s->fast_wait;
}

enum xe_sess_fail
xe_sess_failure(const struct xe_sess *s)
{
    return s->fail;
}

const char *
xe_sess_backend_error(struct xe_sess *s, bool *counts_r)
{
    const char *e = s->backend_error;

    if (counts_r)
        *counts_r = s->backend_error_counts;
    s->backend_error = NULL; /* told once */
    return e;
}

const char *
xe_sess_bind_refused(const struct xe_sess *s)
{
    return s->bind_refused;
}

bool
xe_sess_backend_ready(const struct xe_sess *s)
{
    return s->backend_ready;
}

void
xe_sess_closing(struct xe_sess *s)
{
    s->held = false;
    take_c2s(s);
    s->st = XE_SS_CLOSING;
}

void
xe_sess_client_spoke(struct xe_sess *s, uint64_t now)
{
    if (s->st == XE_SS_NEGOTIATING && !s->held)
        arm_preauth(s, now);
}

uint64_t
xe_sess_auth_deadline(const struct xe_sess *s)
{
    return s->auth_deadline;
}

void
xe_sess_set_auth_deadline(struct xe_sess *s, uint64_t at, uint64_t now)
{
    s->auth_deadline = at;
    if (s->st == XE_SS_NEGOTIATING && !s->held)
        arm_preauth(s, now);
}

enum xe_sess_do
xe_sess_stream_error(struct xe_sess *s, const char *condition, const char *text)
{
    s->held = false;
    xe_c2s_stream_error(s->c2s, condition, text);
    take_c2s(s);
    s->st = XE_SS_CLOSING;
    stop_timer(s);
    return XE_SD_CLOSE;
}

struct xe_c2s *
xe_sess_c2s(struct xe_sess *s)
{
    return s->c2s;
}

unsigned
xe_sess_retried(const struct xe_sess *s)
{
    return s->retried;
}

uint64_t
xe_sess_tried(const struct xe_sess *s)
{
    return s->tried;
}

bool
xe_sess_resumed(const struct xe_sess *s)
{
    return s->rs_result > 0;
}

bool
xe_sess_iq_auth(const struct xe_sess *s)
{
    return s->iq_auth;
}
