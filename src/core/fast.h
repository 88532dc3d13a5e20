/* xedge: FAST (XEP-0484) on SASL2, sans-IO: the HT-SHA-256-NONE, -UNIQ,
 * -EXPR and -ENDP mechanisms as xedge's own code (Cyrus has none), plugged
 * into the SASL2 exchange (sasl2.h's struct xe_sasl2_mech), and the <token/>
 * element of <success>. Tokens are kept by tokens.h.
 *
 * The initial response is AUTHCID NUL PROOF, PROOF being
 * HMAC-SHA-256(token, "Initiator" || cb-data); the success's additional
 * data is HMAC-SHA-256(token, "Responder" || cb-data). cb-data: nothing
 * (-NONE), tls-unique (-UNIQ, TLS 1.2), tls-exporter (-EXPR, TLS 1.3), the
 * hash of our certificate (-ENDP): the stream's bindings (cbind.h), as
 * SCRAM-PLUS gets them. */
#ifndef XE_FAST_H
#define XE_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbind.h"
#include "sasl2.h"
#include "tokens.h"
#include "util.h"

struct xe_fast {
    struct xe_tokens *tokens;
    const char *domain;            /* the stream's domain */
    struct xe_cbind cb[XE_CB_MAX]; /* the stream's bindings (copies) */
    size_t n_cb;
    int64_t now;    /* set by the caller before an attempt */
    char jid[3072]; /* after a step: the bare JID named */
    unsigned char responder[32];
    /* Asynchronous verification (the daemon: the verify is an LMDB write,
     * done in the thread pool): the glue verifies xe_fast_prepare()'s
     * request, hands the verdict in with xe_fast_set_verdict(), and the
     * step then takes it instead of calling xe_tokens_verify. */
    bool async;
    bool have_verdict;
    int v_rc;
    enum xe_sasl_cond v_cond;
    const char *v_detail;
};

/* What an HT-* attempt asks the store to verify (pointers into the
 * attempt and F: valid until the next attempt). */
struct xe_fast_req {
    const char *jid, *ua_id, *mech;
    const unsigned char *cb, *proof;
    size_t cb_len, proof_len;
    bool has_count;
    unsigned long long count;
};
/* The request of attempt A (its initial response IR/IR_LEN). 0; or -1 with
 * *cond_r and *detail_r when it fails before the store is asked (the step
 * fails the same way: no verdict is needed). */
int xe_fast_prepare(struct xe_fast *f, const struct xe_sasl2_auth *a,
                    struct xe_fast_req *req, enum xe_sasl_cond *cond_r,
                    const char **detail_r);
/* The verdict of the store (XE_SASL_OK with RESPONDER, else XE_SASL_FAIL
 * with COND and DETAIL, static) for the next step. */
void xe_fast_set_verdict(struct xe_fast *f, int rc, enum xe_sasl_cond cond,
                         const char *detail, const unsigned char responder[32]);

/* Set up F for a stream of DOMAIN with bindings CB (copied). */
void xe_fast_init(struct xe_fast *f, struct xe_tokens *tokens, const char *domain,
                  const struct xe_cbind *cb, size_t n_cb);
/* The sasl2 plug: claims the HT-SHA-256-* names this stream can do. */
struct xe_sasl2_mech xe_fast_mech(struct xe_fast *f);
/* The HT-* mechanisms this stream can do (for <fast/> in <inline>), the
 * strongest binding first: -EXPR, -UNIQ, -ENDP, then -NONE. */
size_t xe_fast_mechanisms(const struct xe_fast *f, const char **out, size_t max);
/* Whether MECH is one of ours this stream can do. */
bool xe_fast_can(const struct xe_fast *f, const char *mech);
/* <token xmlns='urn:xmpp:fast:0' expiry='ISO 8601' token='...'/> */
int xe_fast_token_xml(struct xe_buf *out, const char *token, int64_t expiry);

#endif
