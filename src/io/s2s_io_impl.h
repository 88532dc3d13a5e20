/* xedge: the types of the federation glue and the functions its two files
 * call in each other; not for other modules (s2s_io.h is the interface). */
#ifndef XE_S2S_IO_IMPL_H
#define XE_S2S_IO_IMPL_H

#include "s2s_io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "assertion.h"
#include "log.h"
#include "metrics.h"
#include "resolve.h"
#include "s2s.h"
#include "stream.h"
#include "s2s_pairs.h"
#include "listen.h"
#include "tls.h"
#include "util.h"
#include "xelimits.h"

#define CLOSE_GRACE_MS 3000
#define MAX_NAMES 8

/* The server's generation as the glue sees it: its configuration (held
 * through the server's reference counting) and the federation's TLS
 * contexts built from it; each stream holds a reference for its life. */
struct s2s_gen {
    unsigned refs;
    const struct xe_conf *conf; /* base's */
    struct gen *base;           /* the server's generation (gen.c) */
    struct xe_s2s_gen_ops ops;  /* (a copy: a stream may outlive the glue) */
    struct xe_tls_ctx *tls, *tls_direct;
    /* the outgoing side: [i] for conf->domains[i] (its certificate), [n]
     * for none; each with the trust anchors */
    struct xe_tls_client_ctx **client;
};

struct s2s_listener {
    uv_tcp_t tcp;
    struct xe_s2s_io *io;
    enum xe_listener_kind kind;
    bool open;
};

struct xe_s2s_io {
    uv_loop_t *loop;
    /* every stream's reads land here: they run on this one loop and are
     * consumed (fed, decrypted, copied into a write) before the callback
     * returns (stream.h) */
    struct xe_stream_slab slab;
    struct s2s_gen *gen;
    struct xe_s2s_gen_ops ops;
    struct xe_s2s_router router; /* a routed pool's homes (xe_s2s_io_set_router) */
    struct s2s_listener *ls;
    size_t n_ls;
    struct sconn *conns; /* every stream (the operator's view, the stop) */
    /* how they find each other: by id, by pair, a BACKEND's OUT */
    struct xe_s2s_pairs *pairs;
    uint64_t next_id;
    bool stopping;
    struct xe_resolver *resolver; /* for peers without a static route */
    /* resolvers a reload replaced: their requests in flight finish there;
     * freed once idle (the sweep timer runs while there are any) */
    struct xe_resolver *retired[XE_S2S_MAX_RETIRED_RESOLVERS];
    size_t n_retired;
    uv_timer_t sweep;
    /* remote domains that dropped the stream during our SASL EXTERNAL: the
     * next streams to them use dialback at once, until `until` */
    struct {
        char domain[XE_S2S_MAX_DOMAIN_BUF];
        int64_t until; /* uv_now, ms */
    } no_ext[XE_S2S_MAX_EXTERNAL_DROPS];
};

struct sconn {
    struct xe_s2s_io *io;
    struct s2s_gen *gen;
    struct sconn *prev, *next;
    uint64_t id;
    enum xe_s2s_kind kind;
    /* the socket, its timer, TLS, the write queue (stream.h): an sconn is
     * freed when its stream is released */
    struct xe_stream st;
    bool closed, closing;
    struct xe_s2s *core;
    char peer[128];
    char local[XE_S2S_MAX_DOMAIN_BUF], remote[XE_S2S_MAX_DOMAIN_BUF];
    struct xe_buf held; /* BACKEND: its bytes waiting for the verdict;
                           LINK: stanzas waiting for the link to be up;
                           OUT: xedge's own (xe_s2sio_send_own) waiting */
    bool ready;         /* OUT/LINK: authenticated; BACKEND: pumped */
    bool waiting;       /* BACKEND: waiting for its OUT (io->pairs: its OUT) */
    uint64_t asker;     /* VERIFY: the id of the IN stream that asked */
    /* OUT/VERIFY without a static route: the resolver's answer */
    struct xe_resolve_req *rq;
    struct xe_target *targets;
    size_t n_targets, next_target;
    bool no_external; /* OUT: dialback only (the remote dropped EXTERNAL) */
    bool ext_retried; /* OUT: a stream without EXTERNAL took over */
    bool direct_tls;  /* the current target wants TLS at once (XEP-0368) */
    uint64_t bytes;
    int64_t since; /* unix time of its start */
    /* OUT/VERIFY: why it failed (the first reason) */
    char why[XE_S2S_MAX_LOG_TEXT + 128];
};

/* s2s_io.c */
void xe_s2sio_arm(struct sconn *c, unsigned ms);
bool xe_s2sio_cb_is_local(void *ctx, const char *d);
bool xe_s2sio_cb_peer_secret(void *ctx, const char *d, struct xe_s2s_secret *out);
enum xe_s2s_policy xe_s2sio_cb_policy(void *ctx, const char *d);
void xe_s2sio_feed_plain(struct sconn *c, const char *data, size_t n);
struct sconn *xe_s2sio_find(struct xe_s2s_io *io, enum xe_s2s_kind kind,
                            const char *local, const char *remote);
struct sconn *xe_s2sio_find_id(struct xe_s2s_io *io, uint64_t id);
struct sconn *xe_s2sio_out_of(const struct sconn *b);
void xe_s2sio_set_closing(struct sconn *c);
void xe_s2sio_finish_close(struct sconn *c);
void xe_s2sio_flush_core(struct sconn *c);
bool xe_s2sio_full(const struct sconn *c);
extern const struct xe_stream_cb xe_s2sio_stream_cb;
void xe_s2sio_pause_reading(struct sconn *c);
void xe_s2sio_resume_reading(struct sconn *c);
void xe_s2sio_sconn_close(struct sconn *c);
int xe_s2sio_send_bytes(struct sconn *c, const void *data, size_t len);
void xe_s2sio_start_tls(struct sconn *c);
void xe_s2sio_why_set(struct sconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
extern const char *const xe_s2sio_kind_names[];

/* s2s_io_route.c */
bool xe_s2sio_route_stanza(struct sconn *c, const struct xe_s2s_event *ev);
/* A stanza of xedge's own (whole stanzas: DATA, LEN) from LOCAL for
 * REMOTE: on the pair's outbound stream, opened when needed and held until
 * it is up (its held buffer: bounded), sent before the bytes of any backend
 * waiting for it. Dropped (logged) when that stream is up with a backend
 * pumping into it: a backend's bytes are raw, not cut at stanzas. */
void xe_s2sio_send_own(struct xe_s2s_io *io, const char *local, const char *remote,
                       const unsigned char *data, size_t len);
const char *xe_s2sio_tls_name(const struct xe_conf *conf, const char *name);
const struct xe_domain_conf *xe_s2sio_served_domain(const struct xe_conf *conf,
                                                    const char *name);

/* s2s_io_pair.c */
void xe_s2sio_backend_open(struct sconn *b);
void xe_s2sio_in_events(struct sconn *c);
struct sconn *xe_s2sio_link_for(struct xe_s2s_io *io, const char *peer,
                                const char *local);
void xe_s2sio_notify_out_verdict(struct sconn *out, enum xe_s2s_result r,
                                 const char *cond);
void xe_s2sio_notify_verify(struct sconn *v, enum xe_s2s_result r, const char *cond);
void xe_s2sio_on_connection(uv_stream_t *ls, int status);
void xe_s2sio_on_connected(struct xe_stream *s, int status, void *ctx);

#endif
