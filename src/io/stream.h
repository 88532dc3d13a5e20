/* xedge: one connection of the libuv glue: a socket (TCP or unix) with an
 * optional TLS session on memory BIOs (tls.h), its timer, the write queue
 * with its water marks and hard cap, cork, half-close and the grace close.
 * It knows nothing of c2s or s2s: its user sees plaintext through one set
 * of callbacks (struct xe_stream_cb).
 *
 * Lifetime (libuv's rules, STYLE.md 6): a struct xe_stream is embedded in
 * its user's object. It owns two handles, the socket and the timer, and
 * counts them itself. It closes by one path: xe_stream_abort() (or the
 * stream itself, on an error, the hard cap, the end of the grace time)
 * calls cb->closed once, synchronously, with a typed reason; after that no
 * other callback runs but cb->released, from the last handle's close
 * callback: only then may the user free the memory that holds the stream.
 * The TLS session and the transform stay until then (cb->closed may still
 * read xe_stream_tls()).
 *
 * Reads land in a per-loop slab (struct xe_stream_slab, one per loop,
 * owned by the user: a worker, the federation glue): each read is
 * consumed (decrypted, fed, copied into a write) before its callback
 * returns. Writes: what the socket takes now (uv_try_write), the rest
 * copied and queued (uv_write); the queue's size is the backpressure
 * signal: above the high water mark the user stops its feeders, cb->drained
 * says when a queued write completed at or below the low water mark, above
 * the hard cap the stream closes (XE_STREAM_HARD_CAP).
 *
 * Cork: between xe_stream_cork() and xe_stream_uncork() the writes of one
 * callback are held (plaintext in a buffer of at most XE_CORK_MAX, TLS
 * records in the BIO) and go out as one write when the last uncork comes.
 *
 * The transform hook (struct xe_stream_transform) sits between TLS and the
 * user: stream compression (XEP-0138) today, WebSocket framing next. in()
 * gets the plaintext from TLS (or the socket) and hands the user's bytes on
 * with xe_stream_deliver(); out() gets the user's writes and hands the wire
 * bytes on with xe_stream_write_below(). Either may keep input for later
 * (a bounded inflate: it delivers the rest when the user asks, e.g. from
 * cb->drained). A negative return closes the stream (XE_STREAM_TRANSFORM).
 *
 * How c2s uses it (src/io/conn*.c): struct conn embeds two
 * streams, the client's (TCP, TLS, compression as a transform) and the
 * backend's (TCP or unix, plaintext), both on the worker's slab (struct
 * worker's three slabs become one struct xe_stream_slab). Its two queue
 * counters are the two streams' queues: the client stream's cb->drained
 * resumes the backend stream and the other way round, a write that leaves
 * a stream above its high water mark pauses the other one (cb->full), the
 * inflate held back by a full backend (conn_compress.c) resumes from the
 * backend stream's cb->drained. The login keeps its cork around each
 * callback before the splice (cb->enter and cb->leave: each stream corks on
 * its own; the close inside a corked callback is xe_stream_abort() while
 * corked: one try-write of what is held). The client's EOF is cb->eof; its
 * close lingers (s->linger: keep reading and dropping what the client
 * still sends, our FIN after the last bytes, the close on the client's
 * FIN, bounded by the grace time). A retry may go from a TCP server to a
 * unix one: xe_stream_reopen_as(). The PROXY header and the backend's raw
 * bytes use xe_stream_write_raw(), the bytes read after a client's PROXY
 * header xe_stream_feed(); after the splice the client stream is lean
 * (the BIOs give back their capacity after each flush). */
#ifndef XE_STREAM_H
#define XE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "tls.h"
#include "util.h"
#include "xelimits.h"

/* Why a stream closed (cb->closed) or why its peer's side ended (cb->eof). */
enum xe_stream_reason {
    XE_STREAM_LOCAL,          /* its user closed it (xe_stream_abort, close) */
    XE_STREAM_EOF,            /* the peer closed its side (TCP FIN) */
    XE_STREAM_READ_ERROR,     /* reading failed (a reset...): status has it */
    XE_STREAM_WRITE_ERROR,    /* writing failed: status has it */
    XE_STREAM_CONNECT_FAILED, /* the connect failed: status has it */
    XE_STREAM_HARD_CAP,       /* more than the hard cap queued */
    XE_STREAM_TLS_FAILED,     /* the TLS handshake failed (xe_tls_error) */
    XE_STREAM_TLS_ERROR,      /* a TLS error after the handshake */
    XE_STREAM_TLS_CLOSED,     /* the peer sent its close_notify */
    XE_STREAM_TRANSFORM,      /* the transform refused the bytes */
    XE_STREAM_GRACE_TIMEOUT,  /* the grace close found bytes still queued */
};

const char *xe_stream_reason_name(enum xe_stream_reason r);

/* The buffers shared by every stream of one loop. */
struct xe_stream_slab {
    char read[XE_READ_CHUNK];  /* the socket's reads */
    char plain[XE_READ_CHUNK]; /* TLS's plaintext */
    char write[XE_READ_CHUNK]; /* TLS records taken out of the BIO */
};

struct xe_stream_limits {
    size_t low_water, high_water, hard_cap; /* bytes queued in uv_write */
};

struct xe_stream;

/* Every callback gets the stream and the user's ctx. Only closed is
 * required; a NULL one is skipped (eof: the stream closes with that
 * reason). */
struct xe_stream_cb {
    /* connected (status 0) or not (status < 0: the stream stays open, the
     * user closes it or reopens it) */
    void (*connected)(struct xe_stream *s, int status, void *ctx);
    /* the TLS handshake is done */
    void (*tls_up)(struct xe_stream *s, void *ctx);
    /* plaintext from the peer (after TLS and the transform) */
    void (*data)(struct xe_stream *s, const char *data, size_t len, void *ctx);
    /* the peer's side ended (EOF, READ_ERROR, TLS_CLOSED, TLS_ERROR):
     * nothing more is read; the stream may still write (half-close) */
    void (*eof)(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx);
    /* a write left the queue above the high water mark */
    void (*full)(struct xe_stream *s, void *ctx);
    /* a queued write completed at or below the low water mark */
    void (*drained)(struct xe_stream *s, void *ctx);
    /* the timer (xe_stream_arm) expired; not while closing */
    void (*timeout)(struct xe_stream *s, void *ctx);
    /* closed: once, at the start of the close (the handles are closing) */
    void (*closed)(struct xe_stream *s, enum xe_stream_reason r, int status, void *ctx);
    /* the last handle is closed: the memory may go */
    void (*released)(struct xe_stream *s, void *ctx);
    /* around each of libuv's callbacks into the stream (a read, the
     * connect, the timer): c2s corks both its streams there */
    void (*enter)(struct xe_stream *s, void *ctx);
    void (*leave)(struct xe_stream *s, void *ctx);
};

/* The transform between TLS and the user (see above); X is its object. */
struct xe_stream_transform {
    int (*in)(struct xe_stream *s, void *x, const char *data, size_t len);
    int (*out)(struct xe_stream *s, void *x, const char *data, size_t len);
    void (*free)(void *x); /* at the release (may be NULL) */
};

struct xe_stream {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_timer_t timer;
    union { /* (a shutdown needs a connected socket: never both at once) */
        uv_connect_t creq;
        uv_shutdown_t sreq;
    };
    uv_loop_t *loop;
    struct xe_stream_slab *slab;
    const struct xe_stream_cb *cb;
    void *ctx;
    struct xe_stream_limits lim;
    struct xe_tls *tls;
    const struct xe_stream_transform *xf;
    void *xf_obj;
    struct xe_buf cork_buf; /* corked plaintext (no TLS) */
    void (*reopened)(struct xe_stream *s, void *ctx);
    size_t queued; /* bytes handed to uv_write, not yet written */
    unsigned corked;
    int handles;
    unsigned grace_ms;
    bool is_pipe, connected, tls_handshaking, reading, paused, peer_ended;
    bool closing, closed, reopening, shutdown_sent;
    bool linger;   /* the close keeps reading (see xe_stream_close) */
    bool lean;     /* the BIOs give their capacity back after each flush */
    bool tls_held; /* a pause stopped the TLS read loop: resume goes on */
};

/* A stream on LOOP (a TCP socket, or a unix one when PIPE), not connected;
 * its reads land in SLAB. */
void xe_stream_init(struct xe_stream *s, uv_loop_t *loop, bool pipe,
                    struct xe_stream_slab *slab, const struct xe_stream_limits *lim,
                    const struct xe_stream_cb *cb, void *ctx);
/* The socket, for uv_accept, getpeername and the like. */
static inline uv_stream_t *
xe_stream_uv(struct xe_stream *s)
{
    return &s->u.stream;
}
/* Accept from listener LS: 0 or a libuv error (then abort the stream). */
int xe_stream_accept(struct xe_stream *s, uv_stream_t *ls);
/* Adopt FD, a connected socket of the stream's kind: 0 or a libuv error. */
int xe_stream_open(struct xe_stream *s, uv_os_sock_t fd);
/* Connect (cb->connected tells): 0 or a libuv error. */
int xe_stream_connect_tcp(struct xe_stream *s, const struct sockaddr *sa);
/* The same, reading from the start (no xe_stream_start needed): what the
 * peer sends is delivered after cb->connected, never before. */
int xe_stream_connect_tcp_reading(struct xe_stream *s, const struct sockaddr *sa);
void xe_stream_connect_pipe(struct xe_stream *s, const char *path);
/* After a failed connect: a fresh socket of the same kind, then REOPENED
 * (unless the stream closed meanwhile). */
void xe_stream_reopen(struct xe_stream *s, void (*reopened)(struct xe_stream *, void *));
/* The same into a socket of the kind PIPE says (a retry from a TCP server
 * to a unix one); what was corked or queued for the old socket is dropped. */
void xe_stream_reopen_as(struct xe_stream *s, bool pipe,
                         void (*reopened)(struct xe_stream *, void *));
/* Bytes the user read before the stream did (after a PROXY header), into
 * the stream as if read from the socket. */
void xe_stream_feed(struct xe_stream *s, const char *data, size_t len);
/* Start reading (after accept or connect); pause and resume. A pause
 * inside cb->data also stops the delivery of what TLS has decrypted
 * already: resume delivers it (before reading again). */
void xe_stream_start(struct xe_stream *s);
void xe_stream_pause(struct xe_stream *s);
void xe_stream_resume(struct xe_stream *s);

/* TLS: the stream owns T from now on. A client (CONNECT_SIDE) starts its
 * handshake at once. 0, or -1 (the stream has closed: TLS_FAILED). */
int xe_stream_start_tls(struct xe_stream *s, struct xe_tls *t, bool client_side);
static inline struct xe_tls *
xe_stream_tls(struct xe_stream *s)
{
    return s->tls;
}
void xe_stream_set_transform(struct xe_stream *s, const struct xe_stream_transform *xf,
                             void *obj);

/* The user's plaintext to the peer: through the transform and TLS (while
 * the TLS handshake runs it is dropped: nothing of the stream goes out
 * before TLS is up). 0, or -1 when the stream has closed. */
int xe_stream_write(struct xe_stream *s, const void *data, size_t len);
/* For a transform's out(): bytes on to TLS (or the socket). */
int xe_stream_write_below(struct xe_stream *s, const void *data, size_t len);
/* Bytes to the socket as they are (before TLS: a PROXY header). */
int xe_stream_write_raw(struct xe_stream *s, const void *data, size_t len);
/* For a transform's in(): the user's bytes. */
void xe_stream_deliver(struct xe_stream *s, const char *data, size_t len);
/* The TLS records waiting in the BIO, out (unless corked). */
int xe_stream_flush(struct xe_stream *s);
void xe_stream_cork(struct xe_stream *s);
void xe_stream_uncork(struct xe_stream *s);

static inline size_t
xe_stream_queued(const struct xe_stream *s)
{
    return s->queued;
}
static inline bool
xe_stream_above_high(const struct xe_stream *s, size_t extra)
{
    return s->queued + extra > s->lim.high_water;
}

/* The timer: cb->timeout after MS (again: from now); stop it. */
void xe_stream_arm(struct xe_stream *s, uint64_t ms);
void xe_stream_disarm(struct xe_stream *s);

/* Send our FIN once what is queued is out (the peer may still write). */
void xe_stream_shutdown(struct xe_stream *s);
/* Graceful: TLS close_notify, stop reading, close once what is queued is
 * out, at most GRACE_MS later (then GRACE_TIMEOUT); never inside the call
 * when connected (nothing queued: on the timer, this loop turn or the next,
 * after the timers already due). Not connected: at once. A lingering
 * stream (s->linger, set by its user) keeps reading and drops what the
 * peer still sends, sends our FIN once what is queued is out and closes
 * when the peer's FIN comes, at most GRACE_MS later. */
void xe_stream_close(struct xe_stream *s, unsigned grace_ms);
/* At once (cb->closed with R); no-op when closed. A corked stream gets
 * one try-write of what it holds. */
void xe_stream_abort(struct xe_stream *s, enum xe_stream_reason r, int status);

static inline bool
xe_stream_is_closed(const struct xe_stream *s)
{
    return s->closed;
}
static inline bool
xe_stream_is_closing(const struct xe_stream *s)
{
    return s->closing || s->closed;
}

#endif
