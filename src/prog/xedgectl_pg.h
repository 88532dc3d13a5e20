/* xedgectl against the PostgreSQL user database (doc/scaling.md).
 *
 * The user commands keep their code: with user_store.database set, a command
 * runs against a private LMDB copy of the rows it needs, made in one
 * database transaction (the user's rows locked: SELECT ... FOR UPDATE), and
 * what it changed there is written back in that transaction. */
#ifndef XE_XEDGECTL_PG_H
#define XE_XEDGECTL_PG_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "userstore.h"

struct xe_ctlpg;

/* Connect, begin, copy the rows of JID (NULL: all users and tombstones) into
 * a new private store *store_r. 0, or -1 with *error_r. */
int xe_ctlpg_begin(const struct xe_conf *conf, const char *jid,
                   struct xe_userstore **store_r, struct xe_ctlpg **pg_r, char **error_r);
/* COMMIT what changed in *store (commit) or roll back; closes *store and
 * removes the copy. 0, or -1 with *error_r (nothing written). */
int xe_ctlpg_end(struct xe_ctlpg **pg, struct xe_userstore **store, bool commit,
                 char **error_r);

/* In the command's transaction: every FAST token of JID deleted (*revoked_r:
 * how many) and, with KICK, its live sessions ended on every node (the
 * nodes learn it through the change log). 0, or -1 with *error_r. */
int xe_ctlpg_account_ended(struct xe_ctlpg *pg, const char *jid, bool kick,
                           size_t *revoked_r, char **error_r);

/* xedgectl user tokens against the database: LIST calls CB for each of
 * JID's records (tokens blanked); else deletes (JID, UA) or, UA NULL, all of
 * JID's. *n_r: how many. 0, or -1 with *error_r. */
struct xe_token_rec;
int xe_ctlpg_tokens(const struct xe_conf *conf, const char *jid, const char *ua,
                    bool list,
                    int (*cb)(const char *ua, const struct xe_token_rec *rec, void *ctx),
                    void *ctx, size_t *n_r, char **error_r);

/* xedgectl [-c FILE] db migrate|import|export and cluster status: argv[0] is
 * "db" or "cluster". Returns the exit status. */
int xe_ctlpg_main(const char *config, int argc, char **argv);

#endif
