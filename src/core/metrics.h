/* xedge: metrics in the Prometheus text format (version 0.0.4), served on a
 * configured HTTP address (GET /metrics).
 *
 * Counters live here (under a lock: the worker threads share them; bytes
 * are atomics); gauges (connections by
 * listener and state, sessions per backend) are computed when scraped by
 * the callback the glue registers, from its live connections. Every label
 * value is either xedge's own (listener kinds, states, TLS versions,
 * configured backend names and mechanisms) or folded into "other", so no
 * peer can grow the number of series. */
#ifndef XE_METRICS_H
#define XE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "util.h"

/* A labelled counter family, e.g. logins by mechanism and result. */
enum xe_metric {
    XE_M_ACCEPTED,        /* connections accepted, by listener */
    XE_M_REFUSED,         /* connections refused, by reason */
    XE_M_LOGINS,          /* logins, by mechanism, result and transport */
    XE_M_LOCKOUTS,        /* brute-force lockouts, by kind (address/account) */
    XE_M_TLS,             /* TLS handshakes, by version */
    XE_M_TLS_FAILED,      /* failed TLS handshakes */
    XE_M_BACKEND_FAILED,  /* backend connections that failed, by backend */
    XE_M_BACKEND_LOST,    /* established sessions whose backend went away */
    XE_M_BYTES,           /* bytes between client and backend, by direction */
    XE_M_STREAM_ERRORS,   /* stream errors sent to clients, by condition */
    XE_M_S2S_STREAMS,     /* server-to-server streams opened, by kind */
    XE_M_S2S_AUTH_IN,     /* peers' authentications, by mechanism and result */
    XE_M_S2S_AUTH_OUT,    /* ours towards peers, by mechanism and result */
    XE_M_HEAP_TRIMS,      /* heap given back after a drop of pre-auth connections */
    XE_M_ROUTED,          /* stanzas routed between a pool's servers, by pair */
    XE_M_ROUTE_REFUSED,   /* routed stanzas refused, by sending server and reason */
    XE_M_ROUTE_MAP_SENDS, /* maps of homes sent to routing links, by kind (full, delta) */
    XE_M_ROUTE_MAP_BYTES, /* their bytes, by kind */
    XE_M_ADMIN,           /* administrators' changes (the audit trail), by action */
    XE_M_ACCOUNT_ENDED,   /* sessions ended by an account change, by reason */
    XE_M_PURGES,          /* purges of deleted users' data at the backends, by result */
    XE_M_TOKEN_WRITES,    /* FAST token writes (tokens_io.c), by operation and result */
    XE_M_LOGIN_PATHS,     /* sessions started, by login path (sasl1, sasl2, fast...) */
    XE_M_BACKEND_QUEUE_REFUSED, /* logins refused, a server's queue full (admit.h) */
    XE_M_REGISTER_JOBS, /* in-band registration's jobs (register_io.c), by op, result */
    XE_M_N
};

/* Add delta to the series of metric m with these label values (as many as
 * the family has labels; see metrics.c). */
void xe_metrics_add(enum xe_metric m, uint64_t delta, const char *l1, const char *l2);
/* The same for a family with a third label (XE_M_LOGINS: the transport). */
void xe_metrics_add3(enum xe_metric m, uint64_t delta, const char *l1, const char *l2,
                     const char *l3);
static inline void
xe_metrics_inc(enum xe_metric m, const char *l1, const char *l2)
{
    xe_metrics_add(m, 1, l1, l2);
}
/* Bytes relayed (XE_M_BYTES), counted on every write of the pump: plain
 * counters, no label lookup. */
void xe_metrics_bytes(bool up, uint64_t n);
/* One login's duration, from the TCP accept to the spliced session. */
void xe_metrics_login_duration(uint64_t ms);
/* Label values a peer can choose (a mechanism name): only these are kept,
 * others count as "other". Call with the configured mechanisms. */
void xe_metrics_allow_label(const char *value);

/* Gauges, printed by the glue at scrape time into out. */
typedef void (*xe_metrics_gauges_fn)(void *ctx, struct xe_buf *out);
void xe_metrics_set_gauges(xe_metrics_gauges_fn fn, void *ctx);
/* A second such callback, printed after the first (the replica's). */
void xe_metrics_set_extra_gauges(xe_metrics_gauges_fn fn, void *ctx);

/* The whole text exposition. */
void xe_metrics_render(struct xe_buf *out);
/* Forget every counter (tests). */
void xe_metrics_reset(void);

/* The HTTP endpoint: listen on address:port (numeric). */
struct xe_metrics_http;
int xe_metrics_http_start(uv_loop_t *loop, const char *address, int port,
                          struct xe_metrics_http **h_r, char **error_r);
/* Stop listening and close open scrapes (their handles close on the loop). */
void xe_metrics_http_stop(struct xe_metrics_http **h);

#endif
