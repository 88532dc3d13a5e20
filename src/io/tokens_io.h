/* xedge: the FAST token store for the daemon (I/O glue over tokens.h).
 *
 * Reads are on the loop: xe_tokio_lookup is one short LMDB read-only
 * transaction (no lock, no disk write: what Cyrus does on the loop for every
 * user lookup). Writes (issue, a verification's count and rotation, the
 * revocations) are LMDB write transactions, which wait for the store's one
 * writer and flush to disk: they run in libuv's thread pool, and the result
 * comes back on the loop to the request's callback. At most MAX_QUEUED
 * requests wait or run at a time; more are refused at once (queue-full).
 * Each write is counted in xedge_token_writes_total{op,result}.
 *
 * Several workers: each worker's loop has its own instance (a sibling of
 * the first, xe_tokio_sibling) over the same store handle: the LMDB
 * environment is shared by the threads (a read transaction is the reading
 * thread's own), each instance queues its writes on its own loop, under its
 * own MAX_QUEUED, and its callbacks run on that loop.
 *
 * Several nodes: the store's write hooks (pgsync_io.h) send each write to
 * the database; while it is unreachable, issue and the revocations fail
 * with XE_US_UNAVAILABLE (result database-down; a login that wanted a token
 * goes on without one), and a verification still succeeds from the
 * replica. */
#ifndef XE_TOKENS_IO_H
#define XE_TOKENS_IO_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "sasl.h"
#include "tokens.h"

#define XE_TOKIO_QUEUE_FULL (-100) /* not queued: MAX_QUEUED are under way */

enum xe_tokio_op {
    XE_TOKIO_ISSUE,
    XE_TOKIO_VERIFY,
    XE_TOKIO_REVOKE,
    XE_TOKIO_REVOKE_USER
};

/* A request's result, valid during the callback only. */
struct xe_tokio_result {
    enum xe_tokio_op op;
    int rc;            /* XE_US_* (issue, revoke), XE_SASL_OK/FAIL (verify) */
    const char *error; /* a write's error message, or NULL */
    /* issue */
    const char *token; /* the new token (secret: not to be logged) */
    int64_t expiry;
    /* verify */
    unsigned char responder[32];
    enum xe_sasl_cond cond;
    const char *detail; /* static, for the log */
    /* revoke_user */
    size_t n;
};

struct xe_tokio;
struct xe_tokio_req;
typedef void (*xe_tokio_cb)(void *ctx, const struct xe_tokio_result *res);

/* Open the token database in STORE (which must outlive it). NULL and
 * *error_r on failure. */
struct xe_tokio *xe_tokio_new(uv_loop_t *loop, struct xe_userstore *store,
                              unsigned max_queued, char **error_r);
/* Another instance over FIRST's store, for LOOP (another worker's), with
 * the same bound on queued requests; FIRST must outlive it. */
struct xe_tokio *xe_tokio_sibling(const struct xe_tokio *first, uv_loop_t *loop);
/* Stop: the requests under way complete without their callbacks; free
 * after the loop has run them (xe_tokio_free waits for none). */
void xe_tokio_free(struct xe_tokio **tio);
/* The loop it runs its callbacks on (a connection of another worker's
 * loop may not use it). */
uv_loop_t *xe_tokio_loop(const struct xe_tokio *tio);
/* Requests under way (queued or running). */
unsigned xe_tokio_queued(const struct xe_tokio *tio);
/* The store's handle (the synchronous API of tokens.h: tests, the CLI). */
struct xe_tokens *xe_tokio_tokens(struct xe_tokio *tio);

/* On the loop, synchronous: (JID, UA_ID)'s record (tokens.h). */
int xe_tokio_lookup(struct xe_tokio *tio, const char *jid, const char *ua_id,
                    struct xe_token_rec *rec, char **error_r);

/* On the loop, at once: a verification that writes nothing (no count, no
 * rotation: the common re-login) is one short LMDB read transaction, as a
 * user lookup is; 1 with *res filled, or 0: it needs a write (then
 * xe_tokio_verify, in the thread pool). */
int xe_tokio_verify_now(struct xe_tokio *tio, const char *jid, const char *ua_id,
                        const char *mech, const unsigned char *cb_data, size_t cb_len,
                        const unsigned char *proof, size_t proof_len, bool has_count,
                        struct xe_tokio_result *res);

/* The writes: each returns the request (to cancel it) or NULL when the
 * queue is full (CB is then not called; counted as queue-full). CB runs on
 * the loop, once, unless the request was cancelled. */
struct xe_tokio_req *xe_tokio_issue(struct xe_tokio *tio, const char *jid,
                                    const char *ua_id, const char *mech, int64_t lifetime,
                                    xe_tokio_cb cb, void *ctx);
struct xe_tokio_req *xe_tokio_verify(struct xe_tokio *tio, const char *jid,
                                     const char *ua_id, const char *mech,
                                     const unsigned char *cb_data, size_t cb_len,
                                     const unsigned char *proof, size_t proof_len,
                                     bool has_count, unsigned long long count,
                                     xe_tokio_cb cb, void *ctx);
/* UA_ID NULL: every token of JID (revoke-user). */
struct xe_tokio_req *xe_tokio_revoke(struct xe_tokio *tio, const char *jid,
                                     const char *ua_id, xe_tokio_cb cb, void *ctx);
/* The caller goes away (its connection closed): no callback. */
void xe_tokio_cancel(struct xe_tokio_req *req);

#endif
