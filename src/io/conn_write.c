/* xedge: writes and backpressure of a c2s connection over its two streams
 * (stream.h: try-write then queue, the water marks and the hard cap, cork,
 * the TLS flush): before the splice each callback's writes are held and go
 * out as one per side when it returns; a stream above its high water mark
 * pauses the side that fills it, its drain resumes that side.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- writes and backpressure -------------------------------------------- */

struct xe_stream_limits
xe_srv_limits(const struct conn *c)
{
    const struct xe_conf *conf = c->gen->conf;
    struct xe_stream_limits l = {conf->pump_low_water, conf->pump_high_water,
                                 conf->pump_hard_cap};
    return l;
}

void
xe_srv_pause_reading(struct conn *c, bool client)
{
    if (client)
        xe_stream_pause(&c->cs);
    else if (c->backend_inited)
        xe_stream_pause(&c->bs);
}

void
xe_srv_resume_reading(struct conn *c, bool client)
{
    if (c->closed || c->st == CS_CLOSING)
        return;
    if (client && !c->held && !c->end_pending && c->reg_req == NULL)
        xe_stream_resume(&c->cs);
    else if (!client && c->backend_inited && !c->backend_stopped)
        xe_stream_resume(&c->bs);
}

int
xe_srv_write_raw(struct conn *c, bool to_client, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    if (to_client)
        return xe_stream_write_raw(&c->cs, data, len);
    if (!c->backend_inited) /* (nothing goes to a backend not yet there) */
        return 0;
    return xe_stream_write_raw(&c->bs, data, len);
}

/* Hold the connection's writes until the matching uncork(). */
void
xe_srv_cork(struct conn *c)
{
    xe_stream_cork(&c->cs);
    if (c->backend_inited)
        xe_stream_cork(&c->bs);
}

/* What is held, out: the client's plaintext (before TLS), then its TLS
 * records, then the backend's plaintext; each side in one write as a rule
 * (the BIO is taken in pieces of the worker's write slab). */
void
xe_srv_uncork(struct conn *c)
{
    xe_stream_uncork(&c->cs);
    if (c->backend_inited)
        xe_stream_uncork(&c->bs);
    if (c->closed)
        return;
    if (c->st == CS_SPLICED && !c->cs.lean) {
        /* the pump does not cork: no memory held per session, nor the
         * BIOs' capacity from the handshake and login */
        xe_buf_free(&c->cs.cork_buf);
        if (c->backend_inited)
            xe_buf_free(&c->bs.cork_buf);
        if (xe_stream_tls(&c->cs))
            xe_tls_release_bios(xe_stream_tls(&c->cs), 0);
        c->cs.lean = true;
    }
}

/* Before the splice, what a stream's callback (a read, the connect, the
 * timer) makes goes out when it returns. */
void
xe_srv_stream_enter(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    c->cb_corked = c->st != CS_SPLICED && !c->closed;
    if (c->cb_corked)
        xe_srv_cork(c);
}

void
xe_srv_stream_leave(struct xe_stream *s, void *ctx)
{
    struct conn *c = ctx;

    (void)s;
    if (!c->cb_corked)
        return;
    c->cb_corked = false;
    xe_srv_uncork(c);
}

int
xe_srv_send_client(struct conn *c, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    c->bytes_down += len;
    xe_metrics_bytes(false, len);
    return xe_stream_write(&c->cs, data, len); /* (the transform: compression or
                                                  WebSocket, then TLS) */
}
