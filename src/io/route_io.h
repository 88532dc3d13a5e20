/* xedge: the I/O glue of routing between the servers of a pool
 * (doc/pool-routing.md) on libuv: the "routing" listener, one connection per
 * backend glue (a link, driven by route.h's core), the maps of homes (pins
 * read again from the user store every XE_ROUTE_PIN_REFRESH_MS). It runs on
 * one loop (worker 0's). */
#ifndef XE_ROUTE_IO_H
#define XE_ROUTE_IO_H

#include <uv.h>

#include "conf.h"
#include "userstore.h"
#include "util.h"

struct xe_route_io;

/* NULL in *io_r when the configuration has no routing group. The
 * configuration is loaded again from conf->path and held here. */
int xe_route_io_new(uv_loop_t *loop, const struct xe_conf *conf,
                    struct xe_route_io **io_r, char **error_r);
/* The store the pins are read from (the daemon's). */
void xe_route_io_set_store(struct xe_route_io *io, struct xe_userstore *store);
int xe_route_io_listen(struct xe_route_io *io, char **error_r);
int xe_route_io_reload(struct xe_route_io *io, const struct xe_conf *conf,
                       char **error_r);
void xe_route_io_stop(struct xe_route_io *io);
void xe_route_io_free(struct xe_route_io **io);
/* Federation straight to the home (doc/pool-routing.md): a stanza a remote
 * domain FROM sent for TO (the stanza's "to"; its domain TO_DOMAIN), RAW
 * its bytes. XE_ROUTE_IO_SENT: written to the link of the home of the user
 * TO names, or of the server hosting the component TO_DOMAIN (counted in
 * xedge_routed_stanzas_total{from="federation"}). XE_ROUTE_IO_PASS: not a
 * user of a routed pool's domain, or the home's link is down or full: the
 * caller takes its federation link to the pool (whose server answers, or
 * routes and is answered, as before). XE_ROUTE_IO_DROPPED: for a component
 * whose server's link is down or full (counted and logged; no federation
 * link reaches a component): the error for its sender (remote-server-timeout
 * or resource-constraint, type wait; none for an error, a result, an
 * unavailable presence or a probe) is appended to REPLY (may be NULL), for
 * the caller to send to FROM from TO_DOMAIN. IO may be NULL (PASS). */
#define XE_ROUTE_IO_SENT 0
#define XE_ROUTE_IO_PASS 1
#define XE_ROUTE_IO_DROPPED 2
int xe_route_io_deliver(struct xe_route_io *io, const char *from, const char *to_domain,
                        const char *to, const unsigned char *raw, size_t len,
                        struct xe_buf *reply);
/* Whether NAME is a component domain of a routed pool (served on the s2s
 * listeners as the domain is). */
bool xe_route_io_is_component(const struct xe_route_io *io, const char *name);

/* The gauge xedge_route_links{pool,server} (1: the server's link is up). */
void xe_route_io_gauges(struct xe_route_io *io, struct xe_buf *out);

#endif
