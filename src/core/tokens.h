/* xedge: FAST tokens (XEP-0484), kept in the user store's LMDB environment
 * in a database of their own ("fast_tokens").
 *
 * A record per (user, user agent id), with two slots: the current token and
 * the next one (rotation: a token issued while one is current goes to
 * "next"; the first login with "next" promotes it and drops the old one).
 * Each slot has its mechanism, its expiry and the highest `count` the client
 * has used with it. A record also holds a fingerprint of the user's stored
 * credentials at issue time (SHA-256 over the SCRAM secrets and any legacy
 * secret): a password change by any path (xedgectl, import, the shared
 * database, in-band registration) makes every token of the user fail, and a
 * disabled or deleted user's tokens fail because the user record is read on
 * every use; xe_tokens_revoke_user also deletes them. The tokens are
 * secrets (the HMAC key of HT-*): the store's file is 0600, and nothing here
 * logs one. Writes are LMDB write transactions: run them off the loop
 * (tokens_io.h). With the store's write hooks (several nodes), issue and
 * the revocations are refused when before_user_write refuses (the database
 * is unreachable), and every write is told to after_write ('k', "JID/UA";
 * 'K', JID: all of the user's); a verification's write (count, rotation)
 * is not refused: a login goes on from the replica. */
#ifndef XE_TOKENS_H
#define XE_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sasl.h"
#include "userstore.h"
#include "xelimits.h"

#define XE_TOKEN_MAX 128   /* bytes of a token string */
#define XE_TOKEN_FP_LEN 32 /* the credentials fingerprint */

struct xe_token_slot {
    bool present;
    char mech[XE_SASL2_MAX_MECH + 1];
    int64_t issued, expiry; /* seconds since the epoch */
    bool has_count;
    unsigned long long count; /* the highest count seen with this token */
    char token[XE_TOKEN_MAX + 1];
};

struct xe_token_rec {
    unsigned char fp[XE_TOKEN_FP_LEN];
    struct xe_token_slot cur, next;
};

/* The record's bytes (no JID: that is the key). 0, or -1 (no memory). */
int xe_token_encode(const struct xe_token_rec *rec, char **buf_r, size_t *len_r);
/* Strict: 0, or -1 when BUF is not a valid record. */
int xe_token_decode(const char *buf, size_t len, struct xe_token_rec *rec);
/* The fingerprint of USER's stored credentials. */
void xe_token_fingerprint(const struct xe_user *user, unsigned char fp[XE_TOKEN_FP_LEN]);

/* HT-* (draft-schmaus-kitten-sasl-ht, as XEP-0484 uses it):
 * HMAC-SHA-256(TOKEN, LABEL || CB). LABEL: "Initiator" or "Responder". */
int xe_ht_sha256(const char *token, size_t token_len, const char *label,
                 const unsigned char *cb, size_t cb_len, unsigned char out[32]);

struct xe_tokens;

/* Open (creating it unless the store is read-only) the token database in
 * STORE's environment. The store must outlive it. */
int xe_tokens_open(struct xe_userstore *store, struct xe_tokens **t_r, char **error_r);
void xe_tokens_close(struct xe_tokens **t);

/* Issue a token for MECH to (JID, UA_ID), valid LIFETIME seconds from NOW:
 * into the "next" slot when a current one is valid, else the current one.
 * TOKEN_R (XE_TOKEN_MAX + 1 bytes) gets the token, *expiry_r its expiry.
 * XE_US_OK, XE_US_NOTFOUND (no such user) or an error. */
int xe_tokens_issue(struct xe_tokens *t, const char *jid, const char *ua_id,
                    const char *mech, int64_t now, int64_t lifetime, char *token_r,
                    int64_t *expiry_r, char **error_r);

/* Verify a HT-* attempt: PROOF (the client's initiator hash) for MECH by
 * (JID, UA_ID) with channel binding data CB, COUNT when the client sent one.
 * XE_SASL_OK with RESPONDER (the success's additional data) and, on a
 * "next" token, the rotation done; else XE_SASL_FAIL with *cond_r and a
 * static *detail_r for the log (never a secret). The proof is compared in
 * constant time against each slot. The count rule (XEP-0484): once a count
 * was used with a token, every later use must carry a greater one; a
 * count is recorded only after a valid proof, so a guesser cannot move it. */
int xe_tokens_verify(struct xe_tokens *t, const char *jid, const char *ua_id,
                     const char *mech, const unsigned char *cb, size_t cb_len,
                     const unsigned char *proof, size_t proof_len, bool has_count,
                     unsigned long long count, int64_t now, unsigned char responder[32],
                     enum xe_sasl_cond *cond_r, const char **detail_r);
/* The same in one read-only transaction (no writer lock, no write): the
 * answer, or XE_TOKENS_WRITE_NEEDED when the login needs a write (a count,
 * a rotation), with nothing done: then xe_tokens_verify. */
#define XE_TOKENS_WRITE_NEEDED 1
int xe_tokens_verify_read(struct xe_tokens *t, const char *jid, const char *ua_id,
                          const char *mech, const unsigned char *cb, size_t cb_len,
                          const unsigned char *proof, size_t proof_len, bool has_count,
                          int64_t now, unsigned char responder[32],
                          enum xe_sasl_cond *cond_r, const char **detail_r);

/* Delete the tokens of (JID, UA_ID) (a client's <fast invalidate='true'/>,
 * `xedgectl user tokens revoke JID ID`). XE_US_OK or XE_US_NOTFOUND. */
int xe_tokens_revoke(struct xe_tokens *t, const char *jid, const char *ua_id,
                     char **error_r);
/* Delete every token of JID (password change, deletion, disable,
 * `xedgectl user tokens revoke JID`); *n_r: how many records. */
int xe_tokens_revoke_user(struct xe_tokens *t, const char *jid, size_t *n_r,
                          char **error_r);
/* Call CB for each record of JID (in user agent id order); stops when CB
 * returns non-zero. The record's tokens are blanked before CB sees them. */
int xe_tokens_list(struct xe_tokens *t, const char *jid,
                   int (*cb)(const char *ua_id, const struct xe_token_rec *rec,
                             void *ctx),
                   void *ctx, char **error_r);

/* One record, read in a short read-only transaction (cheap: the loop may
 * call it, as Cyrus reads users there). The tokens are in the record:
 * cleanse it after use. XE_US_OK, XE_US_NOTFOUND or an error. */
int xe_tokens_get(struct xe_tokens *t, const char *jid, const char *ua_id,
                  struct xe_token_rec *rec, char **error_r);

/* Several nodes (pgsync_io.c): a record as the database keeps it (the
 * encoded record; *buf_r malloc'd, secret: cleanse it), and the replica's
 * writes of one (no write hooks are called: the database is their source).
 * raw_put checks the record (XE_US_CORRUPT); raw_del of none is XE_US_OK. */
int xe_tokens_raw_get(struct xe_tokens *t, const char *jid, const char *ua_id,
                      char **buf_r, size_t *len_r, char **error_r);
int xe_tokens_raw_put(struct xe_tokens *t, const char *jid, const char *ua_id,
                      const char *buf, size_t len, char **error_r);
int xe_tokens_raw_del(struct xe_tokens *t, const char *jid, const char *ua_id,
                      char **error_r);
/* Every record's key, in key order (a full resync's sweep). */
int xe_tokens_keys(struct xe_tokens *t,
                   int (*cb)(const char *jid, const char *ua_id, void *ctx), void *ctx,
                   char **error_r);

#endif
