/* xedge: FAST (XEP-0484) for a c2s login, the glue's part: the token store's
 * requests (tokens_io.h: verify, issue, revoke in the thread pool) for what
 * the login machine asks (session.h), their results handed back on the
 * loop. Each worker has its own instance of the store (tokens_io.h), whose
 * requests and callbacks live on that worker's loop. */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <stdio.h>
#include <stdlib.h>

#include "fast.h"
#include "sasl2.h"
#include "log.h"
#include "server_impl.h"
#include "tokens_io.h"

static struct xe_tokio *
tio_of(struct conn *c)
{
    struct xe_tokio *t = c->w->tokens;

    return t && xe_tokio_loop(t) == c->w->loop ? t : NULL;
}

/* HT-* bind as doc/sasl2.md says: -EXPR on TLS 1.3, -UNIQ on TLS 1.2 (not
 * on TLS 1.3, RFC 9266, even where SCRAM-PLUS is allowed it by
 * tls13_tls_unique), -ENDP when the stream advertises it. */
void
xe_srv_fast_setup(struct conn *c, const struct xe_cbind *cb, size_t n)
{
    struct xe_tokio *t = tio_of(c);
    struct xe_cbind adv[XE_CB_MAX];
    size_t k = 0;

    if (t == NULL || c->sess == NULL)
        return;
    {
        struct xe_tls *tls = xe_stream_tls(&c->cs);
        bool tls13 = tls && strcmp(xe_tls_version(tls), "TLSv1.3") == 0;

        for (size_t i = 0; i < n && k < XE_CB_MAX; i++) {
            bool exp = strcmp(cb[i].type, "tls-exporter") == 0;
            bool uniq = strcmp(cb[i].type, "tls-unique") == 0;
            if ((exp && !tls13) || (uniq && tls13) || (!exp && !uniq && !cb[i].advertise))
                continue;
            adv[k++] = cb[i];
        }
    }
    xe_sess_set_fast(c->sess, xe_tokio_tokens(t), adv, k);
    OPENSSL_cleanse(adv, sizeof(adv));
}

static void
on_verified(void *ctx, const struct xe_tokio_result *res)
{
    struct conn *c = ctx;

    c->fast_req = NULL;
    if (c->closed || c->sess == NULL)
        return;
    xe_srv_cork(c);
    xe_srv_exec(c, xe_sess_fast_verdict(c->sess, res->rc, res->cond, res->detail,
                                        res->responder, uv_now(c->w->loop)));
    if (!c->held && !c->closed) /* what TLS holds (the stream's resume
                                 * delivers it first), then read again */
        xe_srv_resume_reading(c, true);
    xe_srv_uncork(c);
}

/* XE_SD_FAST_VERIFY: the client is not read until the verdict is in. */
void
xe_srv_fast_verify(struct conn *c)
{
    const struct xe_fast_req *q = xe_sess_fast_request(c->sess);
    struct xe_tokio *t = tio_of(c);

    xe_srv_pause_reading(c, true);
    if (q && t) {
        struct xe_tokio_result res;
        if (xe_tokio_verify_now(t, q->jid, q->ua_id, q->mech, q->cb, q->cb_len, q->proof,
                                q->proof_len, q->has_count, &res)) {
            on_verified(c, &res); /* nothing to write: answered on the loop */
            OPENSSL_cleanse(&res, sizeof(res));
            return;
        }
    }
    if (q && t)
        c->fast_req =
            xe_tokio_verify(t, q->jid, q->ua_id, q->mech, q->cb, q->cb_len, q->proof,
                            q->proof_len, q->has_count, q->count, on_verified, c);
    if (c->fast_req == NULL) {
        xe_warn("event=fast-error peer=%s error=\"the token store is busy\"", c->peer);
        xe_srv_exec(
            c, xe_sess_fast_verdict(c->sess, XE_SASL_FAIL, XE_SASL_TEMPORARY_AUTH_FAILURE,
                                    "token store busy", NULL, uv_now(c->w->loop)));
    }
}

static void
on_issued(void *ctx, const struct xe_tokio_result *res)
{
    struct conn *c = ctx;
    const char *token = res->rc == XE_US_OK ? res->token : NULL;

    c->tok_req = NULL;
    if (c->closed || c->sess == NULL)
        return;
    if (token == NULL)
        xe_warn("event=fast-error peer=%s jid=%s error=\"no token issued: %s\"", c->peer,
                c->jid ? c->jid : "-", res->error ? res->error : "?");
    xe_srv_cork(c);
    xe_srv_exec(c, xe_sess_token_issued(c->sess, token, res->expiry));
    xe_srv_uncork(c);
}

static void
on_revoked(void *ctx, const struct xe_tokio_result *res)
{
    (void)ctx, (void)res;
}

/* After a SASL2 success (XE_SD_CONNECT): a token asked for, or one due for
 * rotation, is issued while the backend is set up (the answer waits for
 * it); <fast invalidate='true'/> revokes the one used. */
void
xe_srv_fast_after_auth(struct conn *c)
{
    struct xe_tokio *t = tio_of(c);
    struct xe_c2s *c2s = xe_srv_c2s(c);
    const char *ua = NULL, *mech = NULL, *jid = c2s ? xe_c2s_jid(c2s) : "";
    bool revoke = false, want;

    if (c->sess == NULL || c2s == NULL)
        return;
    want = xe_sess_token_wanted(c->sess, &ua, &mech, &revoke);
    if (t == NULL || ua == NULL) {
        if (want)
            xe_srv_exec(c, xe_sess_token_issued(c->sess, NULL, 0));
        return;
    }
    if (revoke) { /* (a token asked for at the same time is not issued) */
        xe_tokio_revoke(t, jid, ua, on_revoked, NULL);
        if (want)
            xe_srv_exec(c, xe_sess_token_issued(c->sess, NULL, 0));
        return;
    }
    if (!want && strcmp(xe_c2s_path(c2s), "fast") == 0) {
        /* rotation: the token used is older than rotate_after */
        struct xe_token_rec rec;
        char *err = NULL;
        int64_t now = (int64_t)time(NULL);

        if (xe_tokio_lookup(t, jid, ua, &rec, &err) == XE_US_OK && rec.cur.present &&
            !rec.next.present &&
            rec.cur.issued + (int64_t)c->gen->conf->fast.rotate_after_s <= now) {
            want = true;
            mech = xe_c2s_mech(c2s);
            xe_sess_token_rotate(c->sess);
        }
        free(err);
        OPENSSL_cleanse(&rec, sizeof(rec));
    }
    if (!want)
        return;
    c->tok_req = xe_tokio_issue(
        t, jid, ua, mech, (int64_t)c->gen->conf->fast.token_lifetime_s, on_issued, c);
    if (c->tok_req == NULL)
        xe_srv_exec(c, xe_sess_token_issued(c->sess, NULL, 0));
}

/* The connection goes away: no callback for it. */
void
xe_srv_fast_cancel(struct conn *c)
{
    if (c->fast_req)
        xe_tokio_cancel(c->fast_req);
    if (c->tok_req)
        xe_tokio_cancel(c->tok_req);
    c->fast_req = c->tok_req = NULL;
}

/* The login path for logs: sasl1, sasl2, fast, resume (iq-auth: sasl1's
 * place is taken by "iq-auth"). */
const char *
xe_srv_login_path(struct conn *c)
{
    struct xe_c2s *c2s = xe_srv_c2s(c);

    if (c->sess && xe_sess_resumed(c->sess))
        return "resume";
    if (c->sess && xe_sess_iq_auth(c->sess))
        return "iq-auth";
    return c2s ? xe_c2s_path(c2s) : "-";
}

/* At the splice: a SASL2 login's path and user agent, kept for xedgectl
 * session list (the id is [A-Za-z0-9._:-]; software and device have no
 * control characters: quotes and backslashes become '_'). */
void
xe_srv_keep_user_agent(struct conn *c)
{
    struct xe_c2s *c2s = xe_srv_c2s(c);
    const struct xe_sasl2_auth *a = c2s ? xe_c2s_sasl2_request(c2s) : NULL;
    char ua[2 * XE_SASL2_MAX_UA_TEXT + 8];

    snprintf(c->path, sizeof(c->path), "%s", xe_srv_login_path(c));
    free(c->ua);
    c->ua = NULL;
    if (a == NULL || !a->has_ua)
        return;
    snprintf(ua, sizeof(ua), "%s%s%s", a->software,
             a->software[0] && a->device[0] ? " / " : "", a->device);
    for (char *p = ua; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '_';
    c->ua = xe_malloc(strlen(a->ua_id) + strlen(ua) + 32);
    sprintf(c->ua, " ua_id=%s ua=\"%s\"", a->ua_id[0] ? a->ua_id : "-", ua);
}
