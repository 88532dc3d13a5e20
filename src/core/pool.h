/* xedge: choosing a backend server for a user, and the servers' health
 * (sans-IO: the glue gives the counts and the check results). */
#ifndef XE_POOL_H
#define XE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* No server can take the session. */
#define XE_POOL_NONE ((size_t)-1)

/* What the chooser knows of one server; the glue keeps one per configured
 * server (by pool and server name, across reloads). */
struct xe_server_state {
    bool up;            /* healthy (health checks); true when unchecked */
    bool draining;      /* the operator drains it: no new sessions */
    unsigned sessions;  /* sessions it serves now (being set up or spliced) */
    int64_t rr_current; /* round-robin: its smooth weighted current value */
    /* slow start: the share of its weight it gets now, in thousandths (0:
     * all of it); the glue ramps it up after the server comes back */
    unsigned weight_permille;
    uint64_t up_since_ms; /* when it came back up (0: it never went down) */
    /* health: consecutive results of the other kind reset these */
    unsigned fails, oks;
};

/* Weighted rendezvous (highest random weight) hashing of the bare JID over
 * the pool's servers: stable for a user, the same on every xedge node, and
 * only the users of a removed server move. Returns the server index. */
size_t xe_pool_pick(const struct xe_pool_conf *pool, const char *jid);

/* The server for a new session of JID by the pool's policy, given each
 * server's state ST[i] (in the pool's order; round-robin updates it).
 * PINNED: the index of the user's pin, or XE_POOL_NONE; it replaces the hash
 * choice under the sticky policy only. Sticky: the pin or hash choice if it
 * can take sessions (up, not draining), else, with on_down = next, the next
 * such server in the user's hash order, else none. least-conn: the server
 * with the fewest sessions per weight; round-robin: smooth weighted, in
 * turn; both over the servers that can take sessions, each weight scaled by
 * its weight_permille (slow start). Returns the index or
 * XE_POOL_NONE with *why_r (a constant text) saying why. */
size_t xe_pool_choose(const struct xe_pool_conf *pool, struct xe_server_state *const *st,
                      const char *jid, size_t pinned, const char **why_r);

/* A health check's result (active or passive) for a server: OK resets the
 * failures and counts towards rise, a failure resets the successes and
 * counts towards fall. Returns +1 when the server comes up, -1 when it goes
 * down, 0 when its state stays. A passive success (PASSIVE_OK) only resets
 * the failures: it never brings a down server back. */
int xe_pool_health(struct xe_server_state *st, bool ok, bool passive, unsigned fall,
                   unsigned rise);
/* Slow start: set ST's weight_permille for NOW_MS, ramping from a tenth to
 * all of its weight over SLOW_MS after it came back up (up_since_ms). */
void xe_pool_slow_start(struct xe_server_state *st, uint64_t now_ms, uint64_t slow_ms);

/* An active health check's exchange: a client stream header to DOMAIN out,
 * the server's header and <stream:features/> in (no login). */
struct xe_health_probe;
struct xe_health_probe *xe_health_probe_new(const char *domain);
/* The bytes to send (the stream header). */
const char *xe_health_probe_request(const struct xe_health_probe *p, size_t *len_r);
/* Feed the server's bytes: 0 more needed, 1 the features arrived (healthy),
 * -1 not healthy, with *why_r (a text of the probe's, valid until it is
 * freed). At most XE_HEALTH_MAX_BYTES are read. */
int xe_health_probe_feed(struct xe_health_probe *p, const void *data, size_t n,
                         const char **why_r);
void xe_health_probe_free(struct xe_health_probe **p);

const char *xe_pool_policy_name(enum xe_pool_policy p);
const char *xe_server_kind_name(enum xe_server_kind k);

#endif
