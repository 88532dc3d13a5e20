/* xedge: the FAST token store for the daemon; see tokens_io.h. */
#include "tokens_io.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cbind.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "xelimits.h"

struct xe_tokio {
    uv_loop_t *loop;
    struct xe_tokens *tokens; /* a sibling's is its first's (not closed) */
    bool owns_tokens;
    unsigned max_queued, queued;
    bool stopped; /* freed by the caller while requests ran: the last frees */
};

struct xe_tokio_req {
    uv_work_t work;
    struct xe_tokio *tio;
    enum xe_tokio_op op;
    xe_tokio_cb cb;
    void *ctx;
    bool cancelled;
    /* inputs */
    char jid[3072];
    char ua[XE_SASL2_MAX_UA_ID + 1];
    bool all;
    char mech[XE_SASL2_MAX_MECH + 1];
    int64_t lifetime;
    unsigned char cbd[XE_CB_DATA_MAX];
    size_t cb_len;
    unsigned char proof[64];
    size_t proof_len;
    bool has_count;
    unsigned long long count;
    /* outputs */
    struct xe_tokio_result res;
    char token[XE_TOKEN_MAX + 1];
    char *error;
};

static const char *const op_names[] = {"issue", "verify", "revoke", "revoke-user"};

struct xe_tokio *
xe_tokio_new(uv_loop_t *loop, struct xe_userstore *store, unsigned max_queued,
             char **error_r)
{
    struct xe_tokio *tio = xe_calloc(1, sizeof(*tio));

    tio->loop = loop;
    tio->max_queued = max_queued ? max_queued : XE_TOKIO_QUEUE_MAX;
    if (xe_tokens_open(store, &tio->tokens, error_r) != XE_US_OK) {
        free(tio);
        return NULL;
    }
    tio->owns_tokens = true;
    return tio;
}

struct xe_tokio *
xe_tokio_sibling(const struct xe_tokio *first, uv_loop_t *loop)
{
    struct xe_tokio *tio = xe_calloc(1, sizeof(*tio));

    tio->loop = loop;
    tio->max_queued = first->max_queued;
    tio->tokens = first->tokens;
    return tio;
}

static void
tokio_release(struct xe_tokio *tio)
{
    if (tio->owns_tokens)
        xe_tokens_close(&tio->tokens);
    free(tio);
}

void
xe_tokio_free(struct xe_tokio **tiop)
{
    struct xe_tokio *tio = *tiop;

    if (tio == NULL)
        return;
    *tiop = NULL;
    if (tio->queued > 0) { /* the last request's completion frees it */
        tio->stopped = true;
        return;
    }
    tokio_release(tio);
}

uv_loop_t *
xe_tokio_loop(const struct xe_tokio *tio)
{
    return tio->loop;
}

unsigned
xe_tokio_queued(const struct xe_tokio *tio)
{
    return tio->queued;
}

struct xe_tokens *
xe_tokio_tokens(struct xe_tokio *tio)
{
    return tio->tokens;
}

int
xe_tokio_lookup(struct xe_tokio *tio, const char *jid, const char *ua_id,
                struct xe_token_rec *rec, char **error_r)
{
    return xe_tokens_get(tio->tokens, jid, ua_id, rec, error_r);
}

int
xe_tokio_verify_now(struct xe_tokio *tio, const char *jid, const char *ua_id,
                    const char *mech, const unsigned char *cb_data, size_t cb_len,
                    const unsigned char *proof, size_t proof_len, bool has_count,
                    struct xe_tokio_result *res)
{
    memset(res, 0, sizeof(*res));
    res->op = XE_TOKIO_VERIFY;
    res->rc = xe_tokens_verify_read(tio->tokens, jid, ua_id, mech, cb_data, cb_len, proof,
                                    proof_len, has_count, (int64_t)time(NULL),
                                    res->responder, &res->cond, &res->detail);
    if (res->rc == XE_TOKENS_WRITE_NEEDED)
        return 0;
    xe_metrics_inc(XE_M_TOKEN_WRITES, "verify", res->rc == XE_SASL_OK ? "ok" : "refused");
    return 1;
}

/* ---- in the thread pool ---------------------------------------------------- */

static void
work(uv_work_t *w)
{
    struct xe_tokio_req *q = w->data;
    struct xe_tokens *t = q->tio->tokens;
    int64_t now = (int64_t)time(NULL);

    switch (q->op) {
    case XE_TOKIO_ISSUE:
        q->res.rc = xe_tokens_issue(t, q->jid, q->ua, q->mech, now, q->lifetime, q->token,
                                    &q->res.expiry, &q->error);
        break;
    case XE_TOKIO_VERIFY:
        q->res.rc = xe_tokens_verify(t, q->jid, q->ua, q->mech, q->cbd, q->cb_len,
                                     q->proof, q->proof_len, q->has_count, q->count, now,
                                     q->res.responder, &q->res.cond, &q->res.detail);
        break;
    case XE_TOKIO_REVOKE:
        q->res.rc = xe_tokens_revoke(t, q->jid, q->ua, &q->error);
        break;
    case XE_TOKIO_REVOKE_USER:
        q->res.rc = xe_tokens_revoke_user(t, q->jid, &q->res.n, &q->error);
        break;
    }
}

static const char *
result_name(const struct xe_tokio_req *q)
{
    if (q->op == XE_TOKIO_VERIFY)
        return q->res.rc == XE_SASL_OK ? "ok" : "refused";
    switch (q->res.rc) {
    case XE_US_OK:
        return "ok";
    case XE_US_NOTFOUND:
    case XE_US_INVALID:
        return "refused";
    case XE_US_UNAVAILABLE:
        return "database-down";
    default:
        return "failed";
    }
}

static void
done(uv_work_t *w, int status)
{
    struct xe_tokio_req *q = w->data;
    struct xe_tokio *tio = q->tio;
    const char *result = status == UV_ECANCELED ? "failed" : result_name(q);

    tio->queued--;
    xe_metrics_inc(XE_M_TOKEN_WRITES, op_names[q->op], result);
    if (strcmp(result, "failed") == 0 || strcmp(result, "database-down") == 0)
        xe_warn("event=token op=%s jid=%s result=%s error=\"%s\"", op_names[q->op],
                q->jid, result, q->error ? q->error : "?");
    if (!q->cancelled && !tio->stopped && q->cb != NULL) {
        q->res.op = q->op;
        q->res.error = q->error;
        q->res.token = q->token[0] ? q->token : NULL;
        if (status == UV_ECANCELED) {
            q->res.rc = q->op == XE_TOKIO_VERIFY ? XE_SASL_FAIL : XE_US_IO;
            q->res.cond = XE_SASL_TEMPORARY_AUTH_FAILURE;
            q->res.detail = "cancelled";
        }
        q->cb(q->ctx, &q->res);
    }
    free(q->error);
    OPENSSL_cleanse(q, sizeof(*q));
    free(q);
    if (tio->stopped && tio->queued == 0)
        tokio_release(tio);
}

static struct xe_tokio_req *
start(struct xe_tokio *tio, struct xe_tokio_req *q)
{
    q->tio = tio;
    q->work.data = q;
    tio->queued++;
    if (uv_queue_work(tio->loop, &q->work, work, done) != 0) {
        tio->queued--;
        xe_metrics_inc(XE_M_TOKEN_WRITES, op_names[q->op], "failed");
        OPENSSL_cleanse(q, sizeof(*q));
        free(q);
        return NULL;
    }
    return q;
}

static struct xe_tokio_req *
new_req(struct xe_tokio *tio, enum xe_tokio_op op, const char *jid, const char *ua_id,
        xe_tokio_cb cb, void *ctx)
{
    struct xe_tokio_req *q;

    if (tio->queued >= tio->max_queued) {
        xe_metrics_inc(XE_M_TOKEN_WRITES, op_names[op], "queue-full");
        xe_warn("event=token op=%s jid=%s result=queue-full queued=%u", op_names[op], jid,
                tio->queued);
        return NULL;
    }
    if (strlen(jid) >= sizeof(q->jid) ||
        (ua_id != NULL && strlen(ua_id) > XE_SASL2_MAX_UA_ID))
        return NULL;
    q = xe_calloc(1, sizeof(*q));
    q->op = op;
    q->cb = cb;
    q->ctx = ctx;
    memcpy(q->jid, jid, strlen(jid) + 1);
    if (ua_id != NULL)
        memcpy(q->ua, ua_id, strlen(ua_id) + 1);
    return q;
}

struct xe_tokio_req *
xe_tokio_issue(struct xe_tokio *tio, const char *jid, const char *ua_id, const char *mech,
               int64_t lifetime, xe_tokio_cb cb, void *ctx)
{
    struct xe_tokio_req *q;

    if (strlen(mech) > XE_SASL2_MAX_MECH ||
        (q = new_req(tio, XE_TOKIO_ISSUE, jid, ua_id, cb, ctx)) == NULL)
        return NULL;
    memcpy(q->mech, mech, strlen(mech) + 1);
    q->lifetime = lifetime;
    return start(tio, q);
}

struct xe_tokio_req *
xe_tokio_verify(struct xe_tokio *tio, const char *jid, const char *ua_id,
                const char *mech, const unsigned char *cb_data, size_t cb_len,
                const unsigned char *proof, size_t proof_len, bool has_count,
                unsigned long long count, xe_tokio_cb cb, void *ctx)
{
    struct xe_tokio_req *q;

    if (strlen(mech) > XE_SASL2_MAX_MECH || cb_len > XE_CB_DATA_MAX ||
        proof_len > sizeof(q->proof) ||
        (q = new_req(tio, XE_TOKIO_VERIFY, jid, ua_id, cb, ctx)) == NULL)
        return NULL;
    memcpy(q->mech, mech, strlen(mech) + 1);
    if (cb_len)
        memcpy(q->cbd, cb_data, cb_len);
    q->cb_len = cb_len;
    if (proof_len)
        memcpy(q->proof, proof, proof_len);
    q->proof_len = proof_len;
    q->has_count = has_count;
    q->count = count;
    return start(tio, q);
}

struct xe_tokio_req *
xe_tokio_revoke(struct xe_tokio *tio, const char *jid, const char *ua_id, xe_tokio_cb cb,
                void *ctx)
{
    struct xe_tokio_req *q = new_req(
        tio, ua_id != NULL ? XE_TOKIO_REVOKE : XE_TOKIO_REVOKE_USER, jid, ua_id, cb, ctx);

    return q != NULL ? start(tio, q) : NULL;
}

void
xe_tokio_cancel(struct xe_tokio_req *req)
{
    if (req != NULL)
        req->cancelled = true;
}
