/* xedge: the I/O glue: listeners, connections, TLS driving, the backend
 * connection, timers and the pump, on one libuv loop. */
#ifndef XE_SERVER_H
#define XE_SERVER_H

#include <uv.h>

#include "conf.h"

struct xe_server;

int xe_server_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_server **srv_r,
                  char **error_r);
/* Bind and listen on every configured listener. */
int xe_server_listen(struct xe_server *srv, char **error_r);
/* Stop accepting and close every connection; the loop then ends. */
void xe_server_stop(struct xe_server *srv);
void xe_server_free(struct xe_server **srv);
/* The user store, for the users' pins (xedgectl user pin). */
struct xe_userstore;
void xe_server_set_store(struct xe_server *srv, struct xe_userstore *store);
/* The brute-force protection table (lockout.h), for the control socket. */
struct xe_lockout *xe_server_lockout(struct xe_server *srv);

#endif
