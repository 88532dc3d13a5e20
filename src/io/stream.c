/* xedge: one connection of the libuv glue. See stream.h. */
#include "config.h"

#include "stream.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct swreq {
    uv_write_t req;
    struct xe_stream *s;
    size_t len;
    char data[];
};

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf);
static void tls_read_loop(struct xe_stream *s);

const char *
xe_stream_reason_name(enum xe_stream_reason r)
{
    static const char *const names[] = {
        "local",          "eof",       "read-error",    "write-error",
        "connect-failed", "hard-cap",  "tls-failed",    "tls-error",
        "tls-closed",     "transform", "grace-timeout",
    };

    return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

/* ---- handles --------------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
    struct xe_stream *s = h->data;

    if (h == &s->u.handle && s->reopening) {
        s->reopening = false;
        if (!s->closed) {
            s->shutdown_sent = s->peer_ended = false;
            if (s->is_pipe)
                uv_pipe_init(s->loop, &s->u.pipe, 0);
            else
                uv_tcp_init(s->loop, &s->u.tcp);
            s->u.handle.data = s;
            if (s->reopened)
                s->reopened(s, s->ctx);
            return;
        }
    }
    if (--s->handles > 0)
        return;
    xe_tls_free(&s->tls);
    if (s->xf && s->xf->free)
        s->xf->free(s->xf_obj);
    s->xf = NULL;
    s->xf_obj = NULL;
    xe_buf_free(&s->cork_buf);
    if (s->cb->released)
        s->cb->released(s, s->ctx);
}

void
xe_stream_init(struct xe_stream *s, uv_loop_t *loop, bool pipe,
               struct xe_stream_slab *slab, const struct xe_stream_limits *lim,
               const struct xe_stream_cb *cb, void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->slab = slab;
    s->lim = *lim;
    s->cb = cb;
    s->ctx = ctx;
    s->is_pipe = pipe;
    if (pipe)
        uv_pipe_init(loop, &s->u.pipe, 0);
    else
        uv_tcp_init(loop, &s->u.tcp);
    uv_timer_init(loop, &s->timer);
    s->u.handle.data = s->timer.data = s->creq.data = s; /* (and sreq's) */
    s->handles = 2;
    xe_buf_init(&s->cork_buf, XE_CORK_MAX);
}

void
xe_stream_abort(struct xe_stream *s, enum xe_stream_reason r, int status)
{
    if (s->closed)
        return;
    xe_log_flush(); /* before the peer can see the close */
    if (s->corked && s->connected && !s->reopening) {
        /* what is held gets the one attempt uv_write would have made */
        uv_buf_t b;
        size_t n;
        if (s->cork_buf.len) {
            b = uv_buf_init((char *)s->cork_buf.data, (unsigned)s->cork_buf.len);
            uv_try_write(&s->u.stream, &b, 1);
        }
        if (s->tls &&
            (n = xe_tls_out_take(s->tls, s->slab->write, sizeof(s->slab->write))) > 0) {
            b = uv_buf_init(s->slab->write, (unsigned)n);
            uv_try_write(&s->u.stream, &b, 1);
        }
        s->cork_buf.len = 0;
    }
    s->closed = s->closing = true;
    s->cb->closed(s, r, status, s->ctx);
    if (!s->reopening) /* (else it is closing already) */
        uv_close(&s->u.handle, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

/* ---- connecting ------------------------------------------------------------- */

static void
enter(struct xe_stream *s)
{
    if (s->cb->enter)
        s->cb->enter(s, s->ctx);
}

static void
leave(struct xe_stream *s)
{
    if (s->cb->leave)
        s->cb->leave(s, s->ctx);
}

static void
connect_body(struct xe_stream *s, int status)
{
    if (s->closed || s->reopening) /* (a reopen cancels the connect) */
        return;
    if (status == 0)
        s->connected = true;
    if (s->cb->connected)
        s->cb->connected(s, status, s->ctx);
    else if (status < 0)
        xe_stream_abort(s, XE_STREAM_CONNECT_FAILED, status);
}

static void
on_connect(uv_connect_t *req, int status)
{
    struct xe_stream *s = req->data;

    /* (read early, xe_stream_connect_tcp_reading: not on a failed socket,
     * whose errors the connect has told) */
    if (status < 0 && s->reading && !s->closed) {
        uv_read_stop(&s->u.stream);
        s->reading = false;
    }
    enter(s);
    connect_body(s, status);
    leave(s);
}

int
xe_stream_accept(struct xe_stream *s, uv_stream_t *ls)
{
    int r = uv_accept(ls, &s->u.stream);

    if (r == 0)
        s->connected = true;
    return r;
}

int
xe_stream_open(struct xe_stream *s, uv_os_sock_t fd)
{
    int r = s->is_pipe ? uv_pipe_open(&s->u.pipe, fd) : uv_tcp_open(&s->u.tcp, fd);

    if (r == 0)
        s->connected = true;
    return r;
}

int
xe_stream_connect_tcp(struct xe_stream *s, const struct sockaddr *sa)
{
    return uv_tcp_connect(&s->creq, &s->u.tcp, sa, on_connect);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf);

/* Reading asked for with the connect: libuv registers the socket once for
 * both (one epoll_ctl ADD, then a MOD when the connect is done) instead of
 * an ADD for the connect, then an ADD that fails with EEXIST and a MOD for
 * the read (issue 18). libuv tells the connect before any read. */
int
xe_stream_connect_tcp_reading(struct xe_stream *s, const struct sockaddr *sa)
{
    int r = uv_tcp_connect(&s->creq, &s->u.tcp, sa, on_connect);

    if (r == 0 && !s->reading && uv_read_start(&s->u.stream, on_alloc, on_read) == 0) {
        s->reading = true;
        s->paused = false;
    }
    return r;
}

void
xe_stream_connect_pipe(struct xe_stream *s, const char *path)
{
    uv_pipe_connect(&s->creq, &s->u.pipe, path, on_connect); /* errors reach cb */
}

void
xe_stream_reopen(struct xe_stream *s, void (*reopened)(struct xe_stream *, void *))
{
    xe_stream_reopen_as(s, s->is_pipe, reopened);
}

void
xe_stream_reopen_as(struct xe_stream *s, bool pipe,
                    void (*reopened)(struct xe_stream *, void *))
{
    if (s->closed || s->reopening)
        return;
    s->reopening = true;
    s->reopened = reopened;
    s->is_pipe = pipe; /* (the handle is made again on its close) */
    s->connected = s->reading = s->paused = s->tls_held = false;
    s->cork_buf.len = 0; /* (held for the socket that goes) */
    uv_close(&s->u.handle, on_handle_closed);
}

/* ---- reading ---------------------------------------------------------------- */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct xe_stream *s = h->data;

    (void)suggested;
    *buf = uv_buf_init(s->slab->read, sizeof(s->slab->read));
}

void
xe_stream_start(struct xe_stream *s)
{
    if (s->closing || s->reading || !s->connected)
        return;
    if (uv_read_start(&s->u.stream, on_alloc, on_read) == 0) {
        s->reading = true;
        s->paused = false;
    }
}

void
xe_stream_pause(struct xe_stream *s)
{
    if (!s->paused && !s->closed && s->reading) {
        uv_read_stop(&s->u.stream);
        s->paused = true;
        s->reading = false;
    }
}

void
xe_stream_resume(struct xe_stream *s)
{
    if (s->paused && !s->closed && !s->closing && !s->peer_ended) {
        s->paused = false;
        if (s->tls_held && !s->tls_handshaking) { /* what TLS decrypted already */
            s->tls_held = false;
            tls_read_loop(s);
            if (s->paused || s->closing || s->closed)
                return;
        }
        xe_stream_start(s);
    }
}

void
xe_stream_deliver(struct xe_stream *s, const char *data, size_t len)
{
    if (len && !s->closed && s->cb->data)
        s->cb->data(s, data, len, s->ctx);
}

static void
plain_in(struct xe_stream *s, const char *data, size_t len)
{
    if (s->xf == NULL) {
        xe_stream_deliver(s, data, len);
        return;
    }
    if (s->xf->in(s, s->xf_obj, data, len) < 0)
        xe_stream_abort(s, XE_STREAM_TRANSFORM, 0);
}

static void
peer_ended(struct xe_stream *s, enum xe_stream_reason r, int status)
{
    if (s->linger && (r == XE_STREAM_TLS_CLOSED || r == XE_STREAM_TLS_ERROR)) {
        /* TLS ended, TCP not yet: the close will wait for the peer's FIN */
        if (s->cb->eof)
            s->cb->eof(s, r, status, s->ctx);
        else
            xe_stream_abort(s, r, status);
        return;
    }
    if (s->reading)
        uv_read_stop(&s->u.stream);
    s->reading = false;
    s->peer_ended = true;
    if (s->cb->eof)
        s->cb->eof(s, r, status, s->ctx);
    else
        xe_stream_abort(s, r, status);
}

/* Everything the records hold (SSL_pending), then what TLS wrote back;
 * a pause (the user's, inside cb->data) stops it: resume() goes on. */
static void
tls_read_loop(struct xe_stream *s)
{
    for (;;) {
        int r;
        if (s->closed || s->closing || s->tls == NULL)
            return;
        if (s->paused) {
            s->tls_held = true;
            break;
        }
        r = xe_tls_read(s->tls, s->slab->plain, sizeof(s->slab->plain));
        if (r > 0) {
            plain_in(s, s->slab->plain, (size_t)r);
            continue;
        }
        if (r == XE_TLS_CLOSED || r == XE_TLS_ERROR)
            peer_ended(s, r == XE_TLS_CLOSED ? XE_STREAM_TLS_CLOSED : XE_STREAM_TLS_ERROR,
                       0);
        break;
    }
    xe_stream_flush(s);
}

static void
feed(struct xe_stream *s, const char *data, size_t n)
{
    if (s->closing || s->closed)
        return; /* what a closing peer still sends is dropped */
    if (s->tls == NULL) {
        plain_in(s, data, n);
        return;
    }
    if (xe_tls_feed(s->tls, data, n) < 0) {
        xe_stream_abort(s, XE_STREAM_TLS_ERROR, 0);
        return;
    }
    if (s->tls_handshaking) {
        int r = xe_tls_handshake(s->tls);
        xe_stream_flush(s);
        if (r == XE_TLS_WANT || s->closed)
            return;
        if (r < 0) {
            xe_stream_abort(s, XE_STREAM_TLS_FAILED, 0);
            return;
        }
        s->tls_handshaking = false;
        if (s->cb->tls_up)
            s->cb->tls_up(s, s->ctx);
    }
    tls_read_loop(s);
}

void
xe_stream_feed(struct xe_stream *s, const char *data, size_t len)
{
    if (len > 0)
        feed(s, data, len);
}

static void
read_body(struct xe_stream *s, ssize_t n, const uv_buf_t *buf)
{
    if (n == 0 || s->closed)
        return;
    if (n < 0 && s->closing && s->linger) {
        /* the closing peer closed too: done once our bytes are out */
        uv_read_stop(&s->u.stream);
        s->reading = false;
        s->peer_ended = true;
        if (s->queued == 0 && !s->corked)
            xe_stream_abort(s, XE_STREAM_LOCAL, 0);
        return;
    }
    if (n < 0) {
        peer_ended(s, n == UV_EOF ? XE_STREAM_EOF : XE_STREAM_READ_ERROR, (int)n);
        return;
    }
    feed(s, buf->base, (size_t)n);
}

static void
on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct xe_stream *s = h->data;

    if (n == 0)
        return;
    enter(s);
    read_body(s, n, buf);
    leave(s);
}

/* ---- writing ---------------------------------------------------------------- */

static void try_finish(struct xe_stream *s);

static void
on_write(uv_write_t *req, int status)
{
    struct swreq *wr = (struct swreq *)req;
    struct xe_stream *s = wr->s;

    s->queued -= wr->len;
    free(wr);
    if (s->closed || s->reopening) /* (a reopen cancels the queued writes) */
        return;
    if (status < 0) {
        xe_stream_abort(s, XE_STREAM_WRITE_ERROR, status);
        return;
    }
    if (s->closing || s->shutdown_sent) {
        try_finish(s);
        return;
    }
    if (s->queued <= s->lim.low_water && s->cb->drained)
        s->cb->drained(s, s->ctx);
}

/* What the socket takes now (uv_try_write: no request, no callback, no
 * epoll_ctl), the rest queued with uv_write; an error is left to uv_write
 * to report. Bytes written at once never count as queued. */
static int
write_now(struct xe_stream *s, const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    struct swreq *wr;
    int r;

    if (len == 0 || s->closed || !s->connected || s->shutdown_sent)
        return 0;   /* (nothing goes after our FIN) */
    xe_log_flush(); /* a line goes out before the bytes it tells of */
    r = s->queued ? 0 : uv_try_write(&s->u.stream, &b, 1);
    if (r < 0)
        r = 0;
    if ((size_t)r == len)
        return 0;
    wr = xe_malloc(sizeof(*wr) + len - (size_t)r);
    wr->s = s;
    wr->len = len - (size_t)r;
    memcpy(wr->data, (const char *)data + r, wr->len);
    b = uv_buf_init(wr->data, (unsigned)wr->len);
    if ((r = uv_write(&wr->req, &s->u.stream, &b, 1, on_write)) < 0) {
        free(wr);
        xe_stream_abort(s, XE_STREAM_WRITE_ERROR, r);
        return -1;
    }
    s->queued += wr->len;
    if (s->queued > s->lim.hard_cap) {
        xe_stream_abort(s, XE_STREAM_HARD_CAP, 0);
        return -1;
    }
    if (s->queued > s->lim.high_water && s->cb->full)
        s->cb->full(s, s->ctx);
    return s->closed ? -1 : 0;
}

int
xe_stream_write_raw(struct xe_stream *s, const void *data, size_t len)
{
    if (len == 0 || s->closed)
        return 0;
    if (s->corked) {
        struct xe_buf *b = &s->cork_buf;
        if (b->len + len <= XE_CORK_MAX && xe_buf_append(b, data, len) == 0)
            return 0;
        /* it does not fit: what is held first, then this */
        if (write_now(s, b->data, b->len) < 0)
            return -1;
        b->len = 0;
        if (len <= XE_CORK_MAX && xe_buf_append(b, data, len) == 0)
            return 0;
    }
    return write_now(s, data, len);
}

int
xe_stream_flush(struct xe_stream *s)
{
    size_t n;

    if (s->corked)
        return 0; /* the records wait in the BIO until uncork() */
    while (s->tls && !s->closed && xe_tls_out_pending(s->tls) > 0) {
        n = xe_tls_out_take(s->tls, s->slab->write, sizeof(s->slab->write));
        if (n == 0)
            break;
        if (write_now(s, s->slab->write, n) < 0)
            return -1;
    }
    if (s->lean && s->tls && !s->closed)
        xe_tls_release_bios(s->tls, XE_TLS_BIO_KEEP);
    return s->closed ? -1 : 0;
}

int
xe_stream_write_below(struct xe_stream *s, const void *data, size_t len)
{
    if (len == 0 || s->closed)
        return 0;
    if (s->tls == NULL)
        return xe_stream_write_raw(s, data, len);
    if (s->tls_handshaking)
        return 0; /* nothing of the stream can go out before TLS is up */
    if (xe_tls_write(s->tls, data, len) < 0) {
        xe_stream_abort(s, XE_STREAM_TLS_ERROR, 0);
        return -1;
    }
    return xe_stream_flush(s);
}

int
xe_stream_write(struct xe_stream *s, const void *data, size_t len)
{
    if (len == 0 || s->closed)
        return 0;
    if (s->xf == NULL)
        return xe_stream_write_below(s, data, len);
    if (s->xf->out(s, s->xf_obj, data, len) < 0) {
        xe_stream_abort(s, XE_STREAM_TRANSFORM, 0);
        return -1;
    }
    return s->closed ? -1 : 0;
}

void
xe_stream_cork(struct xe_stream *s)
{
    s->corked++;
}

void
xe_stream_uncork(struct xe_stream *s)
{
    if (s->corked == 0 || --s->corked > 0 || s->closed)
        return;
    /* the plaintext (before TLS) first, then the records */
    if (s->cork_buf.len) {
        write_now(s, s->cork_buf.data, s->cork_buf.len);
        s->cork_buf.len = 0;
    }
    xe_stream_flush(s);
    if (!s->closed && (s->closing || s->shutdown_sent))
        try_finish(s);
}

/* ---- TLS and the transform ---------------------------------------------------- */

int
xe_stream_start_tls(struct xe_stream *s, struct xe_tls *t, bool client_side)
{
    if (s->closed) {
        xe_tls_free(&t);
        return -1;
    }
    xe_tls_free(&s->tls);
    s->tls = t;
    s->tls_handshaking = true;
    if (client_side && xe_tls_handshake(t) == XE_TLS_ERROR) {
        xe_stream_abort(s, XE_STREAM_TLS_FAILED, 0);
        return -1;
    }
    return xe_stream_flush(s);
}

void
xe_stream_set_transform(struct xe_stream *s, const struct xe_stream_transform *xf,
                        void *obj)
{
    if (s->xf && s->xf->free)
        s->xf->free(s->xf_obj);
    s->xf = xf;
    s->xf_obj = obj;
}

/* ---- the timer and the close ------------------------------------------------ */

static void
on_timer(uv_timer_t *t)
{
    struct xe_stream *s = t->data;

    if (s->closed)
        return;
    if (s->closing) {
        xe_stream_abort(s, s->queued ? XE_STREAM_GRACE_TIMEOUT : XE_STREAM_LOCAL, 0);
        return;
    }
    if (s->cb->timeout) {
        enter(s);
        s->cb->timeout(s, s->ctx);
        leave(s);
    }
}

void
xe_stream_arm(struct xe_stream *s, uint64_t ms)
{
    if (!s->closing)
        uv_timer_start(&s->timer, on_timer, ms, 0);
}

void
xe_stream_disarm(struct xe_stream *s)
{
    if (!s->closing)
        uv_timer_stop(&s->timer);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    struct xe_stream *s = req->data;

    /* the peer now sees our FIN; a closing stream is done once the peer
     * has closed too (else the grace timer ends it) */
    if (!s->closed && s->closing && (status < 0 || s->peer_ended))
        xe_stream_abort(s, XE_STREAM_LOCAL, 0);
}

/* Queued bytes out, not corked: the FIN (shutdown asked), or the end
 * (closing, unless a shutdown waits for the peer). */
static void
try_finish(struct xe_stream *s)
{
    if (s->closed || s->queued > 0 || s->corked)
        return;
    if (s->closing && s->linger && !s->shutdown_sent) {
        /* our last bytes are out: the FIN, then wait for the peer's */
        if (s->peer_ended) {
            xe_stream_abort(s, XE_STREAM_LOCAL, 0);
            return;
        }
        s->shutdown_sent = true;
        xe_log_flush();
        if (uv_shutdown(&s->sreq, &s->u.stream, on_shutdown) < 0)
            xe_stream_abort(s, XE_STREAM_LOCAL, 0);
        return;
    }
    if (s->shutdown_sent) {
        if (s->closing && s->peer_ended)
            xe_stream_abort(s, XE_STREAM_LOCAL, 0);
        return;
    }
    if (s->closing)
        xe_stream_abort(s, XE_STREAM_LOCAL, 0);
}

void
xe_stream_shutdown(struct xe_stream *s)
{
    if (s->closed || s->shutdown_sent || !s->connected)
        return;
    if (s->corked) { /* what is held goes first */
        s->corked = 1;
        xe_stream_uncork(s);
        if (s->closed)
            return;
    }
    /* (libuv sends the FIN after the queued writes) */
    s->shutdown_sent = true;
    xe_log_flush();
    if (uv_shutdown(&s->sreq, &s->u.stream, on_shutdown) < 0)
        xe_stream_abort(s, XE_STREAM_WRITE_ERROR, 0);
}

void
xe_stream_close(struct xe_stream *s, unsigned grace_ms)
{
    if (s->closed || s->closing)
        return;
    if (s->tls && !s->tls_handshaking) {
        xe_tls_shutdown(s->tls);
        xe_stream_flush(s);
    }
    if (s->closed)
        return;
    if (!s->connected) {
        xe_stream_abort(s, XE_STREAM_LOCAL, 0);
        return;
    }
    s->closing = true;
    s->grace_ms = grace_ms;
    if (s->linger) {
        /* keep reading (and dropping) to see the peer's close: closing
         * with unread input would reset the connection and could lose
         * our last bytes; our FIN goes once they are out (try_finish) */
        uv_timer_start(&s->timer, on_timer, s->peer_ended && !s->queued ? 0 : grace_ms,
                       0);
        if (!s->peer_ended)
            try_finish(s);
        return;
    }
    if (s->reading)
        uv_read_stop(&s->u.stream);
    s->reading = false;
    /* Nothing queued (the socket took it all at once): the end comes on
     * the timer at once, never inside this call, as it would have after
     * uv_write's callback: the callbacks and timers of this loop turn
     * (another stream's timeout that is due) run first. */
    uv_timer_start(&s->timer, on_timer, s->queued ? grace_ms : 0, 0);
}
