/* xedge: the control socket (I/O glue): a unix socket on which xedgectl
 * sends one request line and reads the answer (the commands are in
 * ctlcmd.c). Off unless `control.socket` is configured. */
#ifndef XE_CONTROL_H
#define XE_CONTROL_H

#include <uv.h>

#include "conf.h"

struct xe_server;
struct xe_control;

/* Listen on conf->control.socket (a stale socket file there is replaced),
 * with conf->control.mode. */
int xe_control_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_server *srv,
                   struct xe_control **ctl_r, char **error_r);
/* The reload command's action (xedge.c). */
void xe_control_set_reload(struct xe_control *ctl,
                           int (*fn)(void *ctx, unsigned long *generation_r,
                                     char **error_r),
                           void *ctx);
/* The purges' kick (purge_io.h): a user was deleted. */
void xe_control_set_purge(struct xe_control *ctl, void (*kick)(void *ctx), void *ctx);
/* Stop listening and drop the clients (the loop runs the close callbacks);
 * the socket file is removed. */
void xe_control_stop(struct xe_control *ctl);
/* After the loop has run the close callbacks. */
void xe_control_free(struct xe_control **ctl);

#endif
