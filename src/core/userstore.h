/* xedge: the user store, one LMDB environment.
 *
 * Key: the bare JID, "localpart@domain", lower case (no resource).
 * Value: a versioned text record, one "name=value" per line:
 *   v=1
 *   created=<unix seconds>
 *   modified=<unix seconds>
 *   disabled=0|1
 *   pin=<backend server name or empty>
 *   expires=<unix seconds>   (optional: the password expires then)
 *   SCRAM-SHA-1=<iterations>:<base64 salt>:<base64 StoredKey>:<base64 ServerKey>
 *   SCRAM-SHA-256=<iterations>:<base64 salt>:<base64 StoredKey>:<base64 ServerKey>
 *   SCRAM-SHA-512=<iterations>:<base64 salt>:<base64 StoredKey>:<base64 ServerKey>
 *   legacy-password=<base64 password>   (only with the legacy mechanisms on)
 * (each SCRAM line is optional: a user whose password was set before a hash
 * was supported has no line for it until the password is set again)
 * The password itself is stored only for a user on whom the operator enabled
 * the legacy mechanisms. Unknown names are kept as they are by
 * a rewrite (forward compatibility).
 *
 * The daemon opens the environment read-write (so that it can create an empty
 * store) but only reads it, with one short read transaction per lookup, so it
 * sees xedgectl's writes at once. */
#ifndef XE_USERSTORE_H
#define XE_USERSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define XE_SCRAM_MAX_HASH 64
#define XE_SCRAM_MAX_SALT 64

enum xe_scram_hash {
    XE_SCRAM_SHA1 = 0,
    XE_SCRAM_SHA256 = 1,
    XE_SCRAM_SHA512 = 2,
    XE_SCRAM_N
};

struct xe_scram_secret {
    bool present;
    unsigned iterations;
    unsigned char salt[XE_SCRAM_MAX_SALT];
    size_t salt_len;
    unsigned char stored_key[XE_SCRAM_MAX_HASH];
    unsigned char server_key[XE_SCRAM_MAX_HASH];
    size_t key_len; /* 20 for SHA-1, 32 for SHA-256, 64 for SHA-512 */
};

struct xe_user {
    char jid[3072]; /* bare JID */
    int64_t created;
    int64_t modified;
    bool disabled;
    char pin[256];
    int64_t expires; /* the password expires at this time (0: never) */
    struct xe_scram_secret scram[XE_SCRAM_N];
    /* The password itself, for the legacy mechanisms (DIGEST-MD5, CRAM-MD5)
     * that need a plaintext-equivalent: kept only for a user on whom the
     * operator enabled them (xedgectl --legacy-mechs). */
    bool legacy;
    char legacy_password[1024];
    size_t legacy_len;
};

struct xe_userstore;

/* "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512": the mechanism, and the
 * name of the record line, for each hash. */
const char *xe_scram_hash_name(enum xe_scram_hash h);

/* Error codes (negative). */
#define XE_US_OK 0
#define XE_US_NOTFOUND (-1)    /* no such user */
#define XE_US_EXISTS (-2)      /* user add: already there */
#define XE_US_IO (-3)          /* LMDB error: the store cannot be read/written */
#define XE_US_CORRUPT (-4)     /* record cannot be parsed */
#define XE_US_INVALID (-5)     /* bad argument (JID syntax, ...) */
#define XE_US_TOMBSTONE (-6)   /* user add: the name is being deleted (a tombstone) */
#define XE_US_UNAVAILABLE (-7) /* several nodes: the user database is unreachable */
#define XE_US_UNAVAILABLE_TEXT "the user database is unreachable; try again later"

/* Open the environment at PATH (a directory, created if missing when
 * !readonly). map_mb: LMDB map size in MiB (0 = default 1024). */
int xe_userstore_open(const char *path, bool readonly, size_t map_mb,
                      struct xe_userstore **store_r, char **error_r);
void xe_userstore_close(struct xe_userstore **store);
/* The LMDB environment, for a module that keeps its own database in it
 * (tokens.c: FAST tokens), and whether it was opened read-only. */
struct MDB_env *xe_userstore_env(struct xe_userstore *store);
bool xe_userstore_readonly(const struct xe_userstore *store);

/* Lookup: XE_US_OK and *user filled, XE_US_NOTFOUND, or an error. */
int xe_userstore_get(struct xe_userstore *store, const char *jid, struct xe_user *user,
                     char **error_r);
/* The same without the secrets (no SCRAM secret, no legacy password in
 * *user; their fields not decoded): the account's state (disabled, expires,
 * pin...) for a check after the login, at a third of the cost. */
int xe_userstore_get_state(struct xe_userstore *store, const char *jid,
                           struct xe_user *user, char **error_r);
/* Create (must_not_exist) or replace the record for user->jid. */
int xe_userstore_put(struct xe_userstore *store, const struct xe_user *user,
                     bool must_not_exist, char **error_r);
int xe_userstore_del(struct xe_userstore *store, const char *jid, char **error_r);
/* Calls cb for each user in key order whose JID ends with "@domain" (domain
 * NULL: all); stops when cb returns non-zero. */
int xe_userstore_foreach(struct xe_userstore *store, const char *domain,
                         int (*cb)(const struct xe_user *user, void *ctx), void *ctx,
                         char **error_r);

/* The id of the store's last committed write, by any process (LMDB's last
 * transaction id): the same id, the same records. 0 if unknown. Cheap: no
 * transaction, no read of a record. */
uint64_t xe_userstore_generation(struct xe_userstore *store);

/* Set every SCRAM secret from PASSWORD (fresh random 16-byte salts,
 * ITERATIONS rounds of PBKDF2). The password is not kept. */
int xe_user_set_password(struct xe_user *user, const char *password, size_t len,
                         unsigned iterations);
/* Keep PASSWORD for the legacy mechanisms (NULL: forget it). */
int xe_user_set_legacy(struct xe_user *user, const char *password, size_t len);
/* Verify a plaintext password against the SCRAM secrets (SHA-256 if present,
 * else SHA-512, else SHA-1) in constant time. true on match. */
bool xe_user_check_password(const struct xe_user *user, const char *password, size_t len);

/* Record codec, exposed for tests. */
int xe_user_encode(const struct xe_user *user, char **buf_r, size_t *len_r);
int xe_user_decode(const char *jid, const char *buf, size_t len, struct xe_user *user);

/* ---- tombstones ----------------------------------------------------------
 *
 * A deleted user whose data at the backend is not purged yet: a record in a
 * second database ("tombstones"), same key, until the daemon's purge is
 * confirmed by the backend. While it is there the name cannot be created
 * again (xe_userstore_put of a new user: XE_US_TOMBSTONE). Record:
 *   v=1
 *   deleted=<unix seconds>
 *   pin=<the user's pin when deleted, or empty: the home server>
 *   attempts=<purges tried>
 *   next=<unix seconds: the next attempt, not before>
 *   error=<the last attempt's failure, one line, or empty>
 * Unknown names are ignored (forward compatibility). */
struct xe_tombstone {
    char jid[3072];
    int64_t deleted;
    char pin[256];
    unsigned attempts;
    int64_t next;
    char error[256];
};

int xe_tombstone_encode(const struct xe_tombstone *t, char **buf_r, size_t *len_r);
int xe_tombstone_decode(const char *jid, const char *buf, size_t len,
                        struct xe_tombstone *t);

/* Delete the user JID and put its tombstone T (T->jid is JID) in one
 * transaction: XE_US_NOTFOUND if there is no such user. */
int xe_userstore_bury(struct xe_userstore *store, const struct xe_tombstone *t,
                      char **error_r);
/* XE_US_OK and *t, or XE_US_NOTFOUND. */
int xe_userstore_tomb_get(struct xe_userstore *store, const char *jid,
                          struct xe_tombstone *t, char **error_r);
/* Rewrite an existing tombstone (attempts, next, error): XE_US_NOTFOUND if
 * it is gone (the operator forgot it meanwhile). */
int xe_userstore_tomb_update(struct xe_userstore *store, const struct xe_tombstone *t,
                             char **error_r);
/* Remove the tombstone (the purge is confirmed, or forgotten). */
int xe_userstore_tomb_del(struct xe_userstore *store, const char *jid, char **error_r);
/* Each tombstone in key order (of DOMAIN's users, or all); stops when cb
 * returns non-zero. */
int xe_userstore_tomb_foreach(struct xe_userstore *store, const char *domain,
                              int (*cb)(const struct xe_tombstone *t, void *ctx),
                              void *ctx, char **error_r);

/* Write a tombstone, whether or not there is one (a replica's copy). */
int xe_userstore_tomb_put(struct xe_userstore *store, const struct xe_tombstone *t,
                          char **error_r);

/* A replica's writes (several nodes): commits without a flush to disk
 * (nosync on), and one flush when a batch is applied (sync). A crash of the
 * system may lose the last unflushed commits, never the store's consistency;
 * the replica pulls them again (its sequence is written after the flush). */
int xe_userstore_set_nosync(struct xe_userstore *store, bool on, char **error_r);
int xe_userstore_sync(struct xe_userstore *store, char **error_r);

/* ---- write hooks (several nodes, pgsync_io.h) -------------------------------
 *
 * before_user_write runs before a user's record is written, deleted or
 * buried; a code other than XE_US_OK refuses the write (with *error_r).
 * after_write runs after each write that succeeded: kind 'u' a user's record,
 * 't' a tombstone, 'k'/'K' FAST tokens (tokens.h). Either may be NULL; they may run on
 * any thread. */
struct xe_userstore_hooks {
    int (*before_user_write)(void *ctx, const char *jid, char **error_r);
    void (*after_write)(void *ctx, char kind, const char *jid);
};
void xe_userstore_set_hooks(struct xe_userstore *store,
                            const struct xe_userstore_hooks *hooks, void *ctx);
/* The hooks, for a module keeping its own database in the environment
 * (tokens.c: kind 'k' a token record, KEY "JID/USER-AGENT-ID"; 'K' every
 * token record of the user KEY is deleted). */
int xe_userstore_hook_before(struct xe_userstore *store, const char *jid, char **error_r);
void xe_userstore_hook_after(struct xe_userstore *store, char kind, const char *key);

/* Normalise a bare JID in place, in its buffer of SIZE bytes: the localpart
 * through nodeprep and the domain through nameprep (jidprep.h: what Prosody
 * does; ASCII is lower-cased, as it always was), then the syntax checked
 * (localpart@domain, no resource, sizes). Returns 0, or XE_US_INVALID with
 * *why_r (static text; WHY_R may be NULL) when the JID is not a bare JID or
 * a part fails its profile, or the prepared JID does not fit. */
int xe_jid_normalize(char *jid, size_t size, const char **why_r);

#endif
