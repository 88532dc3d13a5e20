/* xedge: a listening TCP socket on a libuv loop (I/O glue), used by the c2s
 * listeners (server.c) and the s2s listeners (s2s_io.c). */
#ifndef XE_LISTEN_H
#define XE_LISTEN_H

#include <stdbool.h>
#include <uv.h>

/* Binds T (initialized on its loop) to ADDRESS:PORT (IPv4, else IPv6 only),
 * with SO_REUSEPORT when REUSEPORT (one socket per worker), and listens with
 * CB. 0 or a libuv error code. */
int xe_tcp_listen(uv_tcp_t *t, const char *address, int port, bool reuseport,
                  uv_connection_cb cb);

#endif
