/* xedge: the purges of deleted users' data at their backends (I/O glue).
 *
 * `xedgectl user del` replaces the user by a tombstone (userstore.h); the
 * daemon finds the tombstones that are due (every XE_PURGE_SCAN_MS, and at
 * once when xedgectl tells it), runs up to XE_PURGE_PARALLEL purges at a
 * time, one per backend server (purge.h), each at the user's home server
 * (its pin, else the pool's rendezvous hash choice) with a bounded time,
 * reads the tombstone again right before <remove/> (a name given up and
 * created again meanwhile is left alone: the attempt is abandoned), and
 * removes the tombstone when the backend confirms; a failure is written
 * back to the tombstone (attempts, last error) and retried after
 * XE_PURGE_RETRY_MIN_S doubling to XE_PURGE_RETRY_MAX_S. */
#ifndef XE_PURGE_IO_H
#define XE_PURGE_IO_H

#include <uv.h>

#include "conf.h"

struct xe_userstore;
struct xe_purger;

/* Start on LOOP with the store and the current configuration. */
struct xe_purger *xe_purger_new(uv_loop_t *loop, struct xe_userstore *store,
                                const struct xe_conf *conf);
/* A reload: the configuration used from the next attempt on. */
void xe_purger_set_conf(struct xe_purger *pg, const struct xe_conf *conf);
/* Look for tombstones due now (xedgectl deleted a user). */
void xe_purger_kick(struct xe_purger *pg);
/* Stop (an attempt under way is abandoned: retried at the next start). */
void xe_purger_stop(struct xe_purger *pg);
/* After the loop has run the close callbacks. */
void xe_purger_free(struct xe_purger **pg);

/* Several nodes: the purges run only where MAY(CTX) says so (one node of
 * the cluster at a time, pgsync_io.h), else every node would purge every
 * tombstone of the shared store. */
void xe_purger_set_gate(struct xe_purger *pg, bool (*may)(void *ctx), void *ctx);

#endif
