/* xedge: per source address accounting (sans-IO): open connections and a
 * token bucket of new connections per second, keyed by the address (IPv4) or
 * its /64 prefix (IPv6), so that one host cannot hold or churn what all the
 * others need. Memory is bounded: an entry lives while the address has
 * connections or its bucket is refilling, and the table has a size cap. */
#ifndef XE_ADDRLIMIT_H
#define XE_ADDRLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;
struct xe_addrlimit;

struct xe_addrlimit_conf {
    unsigned max_per_address; /* open connections; 0 = no limit */
    unsigned rate;            /* new connections per period; 0 = no limit */
    unsigned burst;           /* bucket size (at least 1 when rate > 0) */
    size_t max_entries;       /* table size cap */
    uint64_t period_ms;       /* the period of rate (0: one second) */
};

enum xe_addrlimit_result {
    XE_AL_OK = 0,
    XE_AL_TOO_MANY = 1, /* the address holds max_per_address connections */
    XE_AL_TOO_FAST = 2, /* the address opened connections faster than rate */
    XE_AL_FULL = 3,     /* the table is full (only under an address flood) */
};

struct xe_addrlimit *xe_addrlimit_new(const struct xe_addrlimit_conf *conf);
void xe_addrlimit_free(struct xe_addrlimit **al);
/* New limits (a reload): max_per_address, rate and burst change at once for
 * the addresses already known (their open connections still count); the
 * table's size does not change. Turning every limit off forgets the table:
 * connections open then are not counted if limits come back. */
void xe_addrlimit_reconfigure(struct xe_addrlimit *al,
                              const struct xe_addrlimit_conf *conf);

/* A connection from sa at time now_ms: counted when XE_AL_OK. key_r (may be
 * NULL) gets the printable key ("192.0.2.1", "2001:db8:1:2::/64"). */
enum xe_addrlimit_result xe_addrlimit_acquire(struct xe_addrlimit *al,
                                              const struct sockaddr *sa, uint64_t now_ms,
                                              char *key_r, size_t key_len);
/* That connection is gone. */
void xe_addrlimit_release(struct xe_addrlimit *al, const struct sockaddr *sa,
                          uint64_t now_ms);
size_t xe_addrlimit_entries(const struct xe_addrlimit *al);
const char *xe_addrlimit_result_name(enum xe_addrlimit_result r);

#endif
