/* xedge: writes and backpressure of a c2s connection: try-write then
 * queue, the water marks and the hard cap, cork and uncork, the TLS flush.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- writes and backpressure -------------------------------------------- */

void
xe_srv_pause_reading(struct conn *c, bool client)
{
    if (client && !c->client_paused) {
        uv_read_stop((uv_stream_t *)&c->client);
        c->client_paused = true;
    } else if (!client && !c->backend_paused && c->backend_inited) {
        uv_read_stop((uv_stream_t *)&c->backend);
        c->backend_paused = true;
    }
}

void
xe_srv_resume_reading(struct conn *c, bool client)
{
    if (c->st == CS_CLOSING || (client && c->held))
        return;
    if (client && c->client_paused) {
        uv_read_start((uv_stream_t *)&c->client, xe_srv_on_alloc, xe_srv_on_client_read);
        c->client_paused = false;
    } else if (!client && c->backend_paused) {
        uv_read_start((uv_stream_t *)&c->backend, xe_srv_on_alloc,
                      xe_srv_on_backend_read);
        c->backend_paused = false;
    }
}

static void
on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct conn *c = wr->c;
    const struct xe_conf *conf = c->gen->conf;

    bool to_client = wr->to_client;

    if (to_client)
        c->to_client_q -= wr->len;
    else
        c->to_backend_q -= wr->len;
    free(wr);
    if (c->closed)
        return;
    if (status < 0) {
        xe_debug("event=write-failed peer=%s side=%s error=\"%s\"", c->peer,
                 to_client ? "client" : "backend", uv_strerror(status));
        xe_srv_finish_close(c);
        return;
    }
    if (c->st == CS_CLOSING) {
        xe_srv_maybe_shutdown(c);
        return;
    }
    if (c->zstalled && c->to_backend_q <= conf->pump_low_water) {
        xe_srv_inflate_held(c); /* before reading more from the client */
        if (c->closed || c->st == CS_CLOSING)
            return;
    }
    /* below the low water mark: read again from the side that fills this one */
    if (c->to_client_q <= conf->pump_low_water)
        xe_srv_resume_reading(c, false);
    if (c->to_backend_q <= conf->pump_low_water)
        xe_srv_resume_reading(c, true);
}

static struct wreq *
wreq_new(struct conn *c, bool to_client, size_t len)
{
    struct wreq *wr = xe_malloc(sizeof(*wr) + len);
    wr->c = c;
    wr->to_client = to_client;
    wr->len = len;
    return wr;
}

static int
submit(struct conn *c, struct wreq *wr)
{
    const struct xe_conf *conf = c->gen->conf;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    uv_stream_t *s =
        wr->to_client ? (uv_stream_t *)&c->client : (uv_stream_t *)&c->backend;
    size_t *q = wr->to_client ? &c->to_client_q : &c->to_backend_q;
    int r;

    r = uv_write(&wr->req, s, &b, 1, on_write);
    if (r < 0) {
        free(wr);
        return r;
    }
    *q += wr->len;
    if (*q > conf->pump_hard_cap) {
        xe_warn("event=buffer-cap peer=%s jid=%s side=%s queued=%zu", c->peer,
                c->jid ? c->jid : "-", wr->to_client ? "client" : "backend", *q);
        xe_srv_finish_close(c);
        return -1;
    }
    /* above the high water mark: stop reading the side that fills this one */
    if (*q > conf->pump_high_water)
        xe_srv_pause_reading(c, !wr->to_client);
    return 0;
}

/* What the socket takes now (uv_try_write: no request, no callback, no
 * epoll_ctl), the rest queued with uv_write; an error is left to uv_write
 * to report, as before. Bytes written at once never count as queued. */
static int
write_now(struct conn *c, bool to_client, const void *data, size_t len)
{
    uv_stream_t *s = to_client ? (uv_stream_t *)&c->client : (uv_stream_t *)&c->backend;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    struct wreq *wr;
    int r;

    if (len == 0 || c->closed || (to_client ? c->shutdown_sent : !c->backend_inited) ||
        uv_is_closing((uv_handle_t *)s))
        return 0; /* (nothing goes after our FIN, nor to a closing backend) */
    r = uv_try_write(s, &b, 1);
    if (r < 0)
        r = 0;
    if ((size_t)r == len)
        return 0;
    wr = wreq_new(c, to_client, len - (size_t)r);
    memcpy(wr->data, (const char *)data + r, len - (size_t)r);
    return submit(c, wr);
}

int
xe_srv_write_raw(struct conn *c, bool to_client, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    if (c->corked) {
        struct xe_buf *b = &c->cork_buf[to_client];
        if (b->len + len <= XE_CORK_MAX && xe_buf_append(b, data, len) == 0)
            return 0;
        /* it does not fit: what is held first, then this */
        if (write_now(c, to_client, b->data, b->len) < 0)
            return -1;
        b->len = 0;
        if (len <= XE_CORK_MAX && xe_buf_append(b, data, len) == 0)
            return 0;
        return write_now(c, to_client, data, len);
    }
    return write_now(c, to_client, data, len);
}

int
xe_srv_flush_tls(struct conn *c)
{
    size_t n;

    if (c->corked)
        return 0; /* the records wait in the BIO until uncork() */
    while (c->tls && !c->closed && xe_tls_out_pending(c->tls) > 0) {
        n = xe_tls_out_take(c->tls, c->w->write_slab, sizeof(c->w->write_slab));
        if (n == 0)
            break;
        if (write_now(c, true, c->w->write_slab, n) < 0)
            return -1;
    }
    if (c->tls && !c->closed && c->st == CS_SPLICED)
        xe_tls_release_bios(c->tls, XE_TLS_BIO_KEEP);
    return 0;
}

/* Hold the connection's writes until the matching uncork(). */
void
xe_srv_cork(struct conn *c)
{
    c->corked++;
}

/* What is held, out: the client's plaintext (before TLS), then its TLS
 * records, then the backend's plaintext; each side in one write as a rule
 * (the BIO is taken in pieces of the worker's write slab). */
static void
cork_flush(struct conn *c)
{
    if (c->cork_buf[1].len) {
        write_now(c, true, c->cork_buf[1].data, c->cork_buf[1].len);
        c->cork_buf[1].len = 0;
    }
    xe_srv_flush_tls(c);
    if (c->cork_buf[0].len && !c->closed) {
        write_now(c, false, c->cork_buf[0].data, c->cork_buf[0].len);
        c->cork_buf[0].len = 0;
    }
}

void
xe_srv_uncork(struct conn *c)
{
    if (--c->corked > 0 || c->closed)
        return;
    cork_flush(c);
    if (c->closed)
        return;
    if (c->st == CS_SPLICED) { /* the pump does not cork: no memory held per session */
        xe_buf_free(&c->cork_buf[0]);
        xe_buf_free(&c->cork_buf[1]);
        if (c->tls) /* nor the BIOs' capacity from the handshake and login */
            xe_tls_release_bios(c->tls, 0);
    } else if (c->st == CS_CLOSING) {
        xe_srv_maybe_shutdown(c); /* (it waited for this) */
    }
}

/* The connection closes at once, inside a corked callback: what is held
 * gets the one attempt uv_write would have made, and no more. */
void
xe_srv_cork_last(struct conn *c)
{
    uv_buf_t b;
    size_t n;

    if (c->cork_buf[1].len) {
        b = uv_buf_init((char *)c->cork_buf[1].data, (unsigned)c->cork_buf[1].len);
        uv_try_write((uv_stream_t *)&c->client, &b, 1);
    }
    if (c->tls &&
        (n = xe_tls_out_take(c->tls, c->w->write_slab, sizeof(c->w->write_slab))) > 0) {
        b = uv_buf_init(c->w->write_slab, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->client, &b, 1);
    }
    if (c->cork_buf[0].len && c->backend_inited && !c->retrying) {
        b = uv_buf_init((char *)c->cork_buf[0].data, (unsigned)c->cork_buf[0].len);
        uv_try_write((uv_stream_t *)&c->backend, &b, 1);
    }
    c->cork_buf[0].len = c->cork_buf[1].len = 0;
}

int
xe_srv_send_client(struct conn *c, const void *data, size_t len)
{
    if (len == 0 || c->closed)
        return 0;
    c->bytes_down += len;
    xe_metrics_bytes(false, len);
    if (c->xf) /* the transform writes what it makes of them */
        return c->xf->out(c, data, len);
    if (c->zs)
        return xe_srv_send_client_deflated(c, data, len);
    if (c->tls == NULL)
        return xe_srv_write_raw(c, true, data, len);
    if (xe_tls_write(c->tls, data, len) < 0) {
        xe_warn("event=tls-error peer=%s error=\"%s\"", c->peer, xe_tls_error(c->tls));
        xe_srv_finish_close(c);
        return -1;
    }
    return xe_srv_flush_tls(c);
}
