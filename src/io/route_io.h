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
/* The gauge xedge_route_links{pool,server} (1: the server's link is up). */
void xe_route_io_gauges(struct xe_route_io *io, struct xe_buf *out);

#endif
