/* xedge: the c2s login's decisions, sans-IO (see session.h). SASL2's backend
 * half (Bind2's script, inline resumption, the SASL2 answer) is in
 * session_bind2.c; session_impl.h is what the two share. */
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
#include "session_impl.h"
#include "xelimits.h"

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

void
xe_sess_arm(struct xe_sess *s, uint64_t ms)
{
    s->timer_op = 1;
    s->timer_ms = ms;
}

void
xe_sess_stop_timer(struct xe_sess *s)
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
    xe_sess_arm(s, at > now ? at - now : 0);
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
        xe_sess_arm(s, p->conf->tls_timeout_ms);
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
void
xe_sess_take_c2s(struct xe_sess *s)
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

enum xe_sess_do
xe_sess_fail_now(struct xe_sess *s, enum xe_sess_fail f)
{
    const struct xe_sess_outcome *o = xe_sess_outcome(f);

    s->fail = f;
    s->held = false;
    if (s->c2s) {
        xe_c2s_stream_error(s->c2s, o->condition, o->text);
        xe_sess_take_c2s(s);
    }
    s->st = XE_SS_CLOSING;
    xe_sess_stop_timer(s);
    return XE_SD_CLOSE;
}

static enum xe_sess_do
sess_close(struct xe_sess *s)
{
    xe_sess_take_c2s(s);
    s->st = XE_SS_CLOSING;
    xe_sess_stop_timer(s);
    return XE_SD_CLOSE;
}

/* Authenticated: the backend is next. RESTARTED: no restart follows (iq-auth;
 * SASL2 will too: its success is the place to call this with true, and Bind2's
 * request goes to the backend script next to xe_backend_hs_bind in
 * xe_sess_backend_begin). REST: what the client sent after (R7). */
static enum xe_sess_do
sess_authenticated(struct xe_sess *s, bool restarted, const void *rest, size_t n)
{
    xe_sess_stop_timer(s);
    s->st = XE_SS_BACKEND;
    if (restarted) {
        s->client_restarted = true;
        if (n > 0 && xe_buf_append(&s->backend_pending, rest, n) < 0)
            return xe_sess_fail_now(s, XE_SF_PENDING_OVERFLOW);
    }
    return XE_SD_CONNECT;
}

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
        return xe_sess_fail_now(s, XE_SF_HELD_OVERFLOW);
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
        return xe_sess_fail_now(s, XE_SF_HELD_OVERFLOW);
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
        return xe_sess_fail_now(s, XE_SF_HELD_OVERFLOW);
    s->reg_wait = true;
    if (s->auth_deadline)
        xe_sess_arm(s, s->auth_deadline > now ? s->auth_deadline - now : 0);
    else
        xe_sess_stop_timer(s);
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
    xe_sess_take_c2s(s);
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
    return xe_sess_answer(s);
}

/* The join (R3, R4): both sides are in; answer the client. (SASL2: a third
 * answer kind here, the <success/> with the Bind2 result, sent before any of
 * client_pending: what the backend sent after its <enabled/>.) */
enum xe_sess_do
xe_sess_answer(struct xe_sess *s)
{
    const unsigned char *features;
    size_t flen;
    enum xe_sess_join j = xe_sess_join(s->st == XE_SS_BACKEND, s->backend_ready,
                                       s->client_restarted, s->iq_auth);

    if (j == XE_SJ_WAIT || s->token_pending) /* (a token is being issued) */
        return XE_SD_NONE;
    features = xe_backend_hs_features(s->bhs, &flen);
    if (s->sasl2) /* no restart: <success>, then the backend's features */
        return xe_sess_sasl2_answer(s, features, flen);
    if (j == XE_SJ_IQ_AUTH_SPLICE)
        xe_c2s_answer_iq_auth(s->c2s, NULL);
    else
        xe_c2s_answer_restart(s->c2s, features, flen);
    xe_sess_take_c2s(s);
    if (j == XE_SJ_RESTART && xe_c2s_compression_offered(s->c2s)) {
        /* R6: the client's next element decides; what it sent so far is
         * parsed again by the core */
        struct xe_buf again = s->backend_pending;
        size_t used = 0;
        enum xe_sess_do d;

        xe_buf_init(&s->backend_pending, s->conf->pump_hard_cap);
        s->client_restarted = false;
        s->st = XE_SS_COMPRESS_OFFER;
        xe_sess_arm(s, s->conf->preauth_idle_ms);
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
    xe_sess_stop_timer(s);
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
            return xe_sess_fail_now(s, XE_SF_PENDING_OVERFLOW);
        return XE_SD_NONE;
    }
    if (s->held || s->fast_wait || s->reg_wait) {
        if (xe_buf_append(&s->held_in, data, n) < 0)
            return xe_sess_fail_now(s, XE_SF_HELD_OVERFLOW);
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
                return xe_sess_fail_now(s, XE_SF_HELD_OVERFLOW);
            s->held = true;
            s->held_action = a;
            xe_sess_arm(s, ms);
            return XE_SD_HOLD;
        }
        s->hold_ms = 0;
        xe_sess_take_c2s(s);
        switch (a) {
        case XE_C2S_CONTINUE:
            break;
        case XE_C2S_STARTTLS: /* R1: the rest is dropped */
            *used_r = total - n;
            s->st = XE_SS_TLS;
            xe_sess_arm(s, s->conf->tls_timeout_ms);
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
                return xe_sess_fail_now(s, s->fail);
            if (n > 0 && xe_buf_append(&s->backend_pending, data, n) < 0)
                return xe_sess_fail_now(s, XE_SF_PENDING_OVERFLOW);
            return xe_sess_answer(s);
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
                return xe_sess_fail_now(s, s->fail);
            if (xe_buf_append(&s->backend_pending, head, hlen) < 0 ||
                xe_buf_append(&s->backend_pending, data, n) < 0)
                return xe_sess_fail_now(s, XE_SF_PENDING_OVERFLOW);
            s->st = XE_SS_SPLICED;
            xe_sess_stop_timer(s);
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
        xe_sess_arm(s, s->conf->backend_handshake_ms);
        return XE_SD_NONE;
    }
    return xe_sess_fail_now(s, s->fail);
}

enum xe_sess_do
xe_sess_backend_failed(struct xe_sess *s, const char *why)
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
        xe_sess_stop_timer(s);
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
        return xe_sess_backend_failed(s, "cannot start the backend handshake");
    if (!s->no_ahead && pool != NULL && server < pool->n_servers)
        xe_backend_hs_send_ahead(s->bhs,
                                 login_ahead(pool->servers[server].kind, s->ahead_hint));
    s->ahead_hint = XE_BHS_LOGIN_WAIT; /* (told again before each) */
    if (s->iq_auth)
        xe_backend_hs_bind(s->bhs, xe_c2s_resource(s->c2s));
    xe_sess_arm(s, s->conf->backend_connect_ms);
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
        return xe_sess_backend_failed(s, why);
    s->connected = true;
    out = xe_backend_hs_output(s->bhs);
    xe_buf_append(&s->to_backend, out->data, out->len);
    out->len = 0;
    xe_sess_arm(s, s->conf->backend_handshake_ms);
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
        return xe_sess_backend_failed(s, why ? why
                                             : "backend closed the connection during the "
                                               "handshake");
    if (s->backend_failed)
        return XE_SD_NONE;
    if (s->b2_running)
        return xe_sess_b2_feed(s, data, n);
    if (s->st != XE_SS_BACKEND || s->backend_ready) {
        /* R7: bytes after the features, before the client restarted */
        if (xe_buf_append(&s->client_pending, data, n) < 0)
            return xe_sess_backend_failed(
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
        return xe_sess_backend_failed(s, xe_backend_hs_error(s->bhs));
    }
    /* SASL2 with Bind2: the script first */
    if (r == XE_BHS_READY && xe_sess_b2_wanted(s))
        return xe_sess_b2_begin(s, data + used, n - used);
    if (r == XE_BHS_READY) {
        s->backend_ready = true;
        /* the client must restart in time */
        xe_sess_arm(s, s->conf->backend_handshake_ms);
        if (used < n && xe_buf_append(&s->client_pending, data + used, n - used) < 0)
            return xe_sess_backend_failed(
                s, "backend sent too much before the session started");
        return xe_sess_answer(s);
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
    xe_sess_take_c2s(s);
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
        return xe_sess_fail_now(s, f);
    case XE_ST_BACKEND_TIMEOUT:
        return xe_sess_backend_failed(s, "backend did not answer in time");
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
    xe_sess_take_c2s(s);
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
    xe_sess_take_c2s(s);
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
    xe_sess_take_c2s(s);
    s->st = XE_SS_CLOSING;
    xe_sess_stop_timer(s);
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
