/* xedge: the replica of several nodes (doc/scaling.md), libpq on the libuv
 * loop. The node's LMDB store follows the PostgreSQL user database: LISTEN
 * for the change log's notifications, pull the changes since the replica's
 * sequence in bounded batches, apply each row's current state. The daemon's
 * own writes to the store (a registration, a password change, a removal, a
 * purge's progress) are queued to the database; a user's write is refused
 * (XE_US_UNAVAILABLE) while the database is unreachable. Every second, a
 * heartbeat row (xedgectl cluster status). Nothing here blocks the loop,
 * except xe_pgsync_new's first catch-up, before the node listens. */
#ifndef XE_PGSYNC_IO_H
#define XE_PGSYNC_IO_H

#include <uv.h>

#include "conf.h"
#include "userstore.h"

struct xe_pgsync;

/* An account that changed on another node or with xedgectl elsewhere:
 * REASON "disabled" or "removed" (its live sessions here end). */
typedef void (*xe_pgsync_account_fn)(void *ctx, const char *jid, const char *reason);

/* Open the replica of conf->user_store_database in STORE: the first
 * catch-up (blocking: the node does not listen yet) and then the loop's
 * connection. A node whose replica is empty and cannot reach the database
 * fails (-1, *error_r): it has nothing to check a password against; one with
 * a replica logs and serves it. */
int xe_pgsync_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_userstore *store,
                  struct xe_pgsync **ps_r, char **error_r);
/* The purges of deleted users' data (purge_io.h) run on one node at a time:
 * the one whose connection holds a session-level advisory lock (tried when
 * it connects and every few seconds; lost with the connection). For
 * xe_purger_set_gate: CTX is the xe_pgsync. */
bool xe_pgsync_purge_gate(void *ctx);
/* Share the per-account counts of LO through the database (lockout.h). */
struct xe_lockout;
void xe_pgsync_set_lockout(struct xe_pgsync *ps, struct xe_lockout *lo);
void xe_pgsync_set_account_cb(struct xe_pgsync *ps, xe_pgsync_account_fn fn, void *ctx);
/* Stop (the shutdown): writes still queued are logged (event=database
 * state=stopping queued_writes=N) and not sent. */
void xe_pgsync_stop(struct xe_pgsync *ps);
/* The database is reachable, and the writes waiting for it (queued, made
 * by some thread and not queued yet, or in flight). */
bool xe_pgsync_up(const struct xe_pgsync *ps);
size_t xe_pgsync_pending(struct xe_pgsync *ps);
void xe_pgsync_free(struct xe_pgsync **ps);

#endif
