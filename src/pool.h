/* xedge: choosing a backend server for a user (sans-IO). */
#ifndef XE_POOL_H
#define XE_POOL_H

#include <stddef.h>

#include "conf.h"

/* Weighted rendezvous (highest random weight) hashing of the bare JID over
 * the pool's servers: stable for a user, the same on every xedge node, and
 * only the users of a removed server move. Returns the server index. */
size_t xe_pool_pick(const struct xe_pool_conf *pool, const char *jid);

#endif
