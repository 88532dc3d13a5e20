/* xedge: what userstore.c and userstore_tomb.c share, private to them (the
 * split keeps each file under issue 14's size bound). Not for other files:
 * the public interface is userstore.h. */
#ifndef XE_USERSTORE_IMPL_H
#define XE_USERSTORE_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "userstore.h"

struct xe_userstore {
    MDB_env *env;
    MDB_dbi dbi;
    bool have_dbi;
    MDB_dbi tdbi; /* the tombstones */
    bool have_tdbi;
    bool readonly;
    char *path;
    pthread_mutex_t dbi_lock; /* mdb_dbi_open must not run concurrently */
    bool lock_init;
    const struct xe_userstore_hooks *hooks; /* several nodes (pgsync_io.c) */
    void *hooks_ctx;
};

void xe_us_error(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The one place where LMDB codes are mapped. */
int xe_us_mdb_error(const struct xe_userstore *store, const char *path, int rc,
                    const char *what, char **error_r);
int xe_us_dbi(struct xe_userstore *store, char **error_r);
int xe_us_tdbi(struct xe_userstore *store, char **error_r);
int xe_us_key(const struct xe_userstore *store, const char *jid, MDB_val *key);
int xe_us_key_jid(struct xe_userstore *store, const MDB_val *key, const char *domain,
                  size_t dlen, char *jid, size_t size, const char *what, char **error_r);
/* One keyed write transaction, for the users' and the tombstones'
 * databases alike: on KEY of DBI (opened by the caller, xe_us_dbi or
 * xe_us_tdbi), APPLY (NULL: delete KEY; XE_US_NOTFOUND when it is not
 * there), then the commit. OP and COMMIT name the steps in LMDB's errors
 * ("deleting a user", "committing a deletion"). The caller checks that the
 * store is writable. */
struct xe_us_keyed {
    MDB_dbi dbi;
    MDB_val key;
    const char *op, *commit;
    int (*apply)(struct xe_userstore *store, MDB_txn *txn, MDB_dbi dbi, MDB_val *key,
                 void *ctx, char **error_r);
    void *ctx;
};
int xe_us_keyed_write(struct xe_userstore *store, const struct xe_us_keyed *k,
                      char **error_r);
/* The store is writable, or XE_US_INVALID with the error said. */
int xe_us_writable(const struct xe_userstore *store, char **error_r);
int xe_us_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *v_r);
bool xe_us_pin_valid(const char *pin, size_t len);

#endif
