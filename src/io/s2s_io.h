/* xedge: the I/O glue of federation (doc/federation.md) on libuv: the
 * listeners "s2s", "s2s_direct_tls" and "s2s_backend", the outbound streams,
 * the dialback verification streams and the links to the backends' s2s
 * ports, each driven by a sans-IO core (s2s.h). Its state lives in one
 * struct xe_s2s_io, held by the server object; it runs on one loop. */
#ifndef XE_S2S_IO_H
#define XE_S2S_IO_H

#include <uv.h>

#include "conf.h"
#include "util.h"

struct xe_s2s_io;
struct gen; /* the server's configuration generation (gen.c) */

/* How the glue holds the server's generation: hold(ctx, gen) when it keeps
 * a reference (its current one, each stream's), release(ctx, gen) when it
 * gives it back; both on the glue's loop. */
struct xe_s2s_gen_ops {
    void (*hold)(void *ctx, struct gen *gen);
    void (*release)(void *ctx, struct gen *gen);
    void *ctx;
};

/* NULL when the configuration has no s2s listener (nothing to do). The glue
 * uses the server's generation GEN and its configuration CONF (the same
 * one c2s uses, not loaded again), held for as long as a stream started
 * under it lives, so that its streams outlive a reload. */
int xe_s2s_io_new(uv_loop_t *loop, const struct xe_conf *conf, struct gen *gen,
                  const struct xe_s2s_gen_ops *ops, struct xe_s2s_io **io_r,
                  char **error_r);
int xe_s2s_io_listen(struct xe_s2s_io *io, char **error_r);
/* New streams use generation GEN (configuration CONF); running ones keep
 * theirs. */
int xe_s2s_io_reload(struct xe_s2s_io *io, const struct xe_conf *conf, struct gen *gen,
                     char **error_r);
/* Stop listening and end every stream (the loop can then end). */
void xe_s2s_io_stop(struct xe_s2s_io *io);
void xe_s2s_io_free(struct xe_s2s_io **io);
/* Routing of a pool (doc/pool-routing.md) as federation sees it: the
 * server sets it when the configuration routes (route_io.h); each may be
 * NULL. deliver: a stanza of an authenticated remote domain FROM for TO
 * (its "to"; the domain TO_DOMAIN), RAW its bytes; 0 when it was taken
 * (sent to the recipient's home, or dropped there with a log line and,
 * in REPLY, the error for its sender: the glue sends it to FROM from
 * TO_DOMAIN on an outbound stream of its own), else the glue sends it
 * over its link to the domain's backend. (A routed
 * pool's component domains are served on the s2s listeners as its domain
 * is: xe_conf_component.) */
struct xe_s2s_router {
    int (*deliver)(void *ctx, const char *from, const char *to_domain, const char *to,
                   const unsigned char *raw, size_t len, struct xe_buf *reply);
    void *ctx;
};
void xe_s2s_io_set_router(struct xe_s2s_io *io, const struct xe_s2s_router *router);

/* For the operator (on the glue's loop): one line per stream, "s2s id=N
 * direction=in|out kind=in|out|verify|backend|link local= remote= peer=
 * state=negotiating|ready|closing mech= since= age_s= bytes=" (io may be
 * NULL: nothing); the gauge xedge_s2s_streams{kind,state}. */
void xe_s2s_io_list(struct xe_s2s_io *io, struct xe_buf *out);
void xe_s2s_io_gauges(struct xe_s2s_io *io, struct xe_buf *out);

#endif
