/* xedge: purging a deleted user's data at its home backend (sans-IO).
 *
 * xedge logs in to the backend as the user, as for any session (the
 * identity assertion over SASL PLAIN, a stream restart, a resource bound:
 * backend.h), then asks for the account's removal with XEP-0077's
 * <iq type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>.
 * Each kind's own account removal runs, the one its admin tools use:
 * Prosody's usermanager.delete_user (the glue's delete_user, then every
 * per-user store purged, as `prosodyctl deluser`), ejabberd's
 * ejabberd_auth:remove_user (the remove_user hook of every module, as
 * `ejabberdctl unregister`), jabberd2's sm user deletion (the user-delete
 * chain of every sm module). The result of that iq is the confirmation;
 * an error, a stream error or the stream's end before it is a failure
 * (doc/assertion.md, "Purging a deleted user"). */
#ifndef XE_PURGE_H
#define XE_PURGE_H

#include <stddef.h>

#include "util.h"

enum xe_purge_result {
    XE_PURGE_CONTINUE,  /* all input consumed; send the output, read on */
    XE_PURGE_DONE,      /* the backend confirmed the removal */
    XE_PURGE_FAIL,      /* see xe_purge_error() */
    XE_PURGE_ABANDONED, /* the recheck said no: <remove/> was not sent (why:
                           xe_purge_error()) */
};

struct xe_purge;

/* DOMAIN: the stream's to=; LOCALPART: the user's; TOKEN: a c2s identity
 * assertion for the user. The first output (our stream header) is queued
 * at once. */
struct xe_purge *xe_purge_new(const char *domain, const char *localpart,
                              const char *token);
void xe_purge_free(struct xe_purge **p);
enum xe_purge_result xe_purge_feed(struct xe_purge *p, const void *data, size_t len);
/* The bytes to send to the backend now (the caller takes them and resets the
 * buffer). */
struct xe_buf *xe_purge_output(struct xe_purge *p);
/* RECHECK runs right before <remove/> would be queued (after the login and
 * the bind, seconds after the caller decided to purge): NULL to go on, or
 * why not (the feed then returns XE_PURGE_ABANDONED and nothing more is
 * sent). The caller re-reads there that the user is still the one it meant
 * to purge (the name may have been given up and created again meanwhile). */
void xe_purge_set_recheck(struct xe_purge *p, const char *(*recheck)(void *ctx),
                          void *ctx);
/* After XE_PURGE_FAIL or XE_PURGE_ABANDONED: why, one line. */
const char *xe_purge_error(const struct xe_purge *p);

#endif
