/* xedge: stream compression (XEP-0138, zstream.h) as the client stream's
 * transform (stream.h): between TLS and the c2s stream.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- stream compression (XEP-0138) ---------------------------------------- */

static int compress_in(struct xe_stream *s, void *x, const char *data, size_t len);
static int compress_out(struct xe_stream *s, void *x, const char *data, size_t len);

static const struct xe_stream_transform compress_xf = {compress_in, compress_out, NULL};

int
xe_srv_compress_start(struct conn *c)
{
    const char *err = "?";

    c->zs = xe_zstream_new(&err);
    if (c->zs == NULL) {
        /* <compressed/> is out: nothing readable can follow */
        xe_err("event=compression-error peer=%s jid=%s error=\"%s\"", c->peer, c->jid,
               err);
        xe_srv_finish_close(c);
        return -1;
    }
    /* (the conn frees zs: its close logs the counts) */
    xe_stream_set_transform(&c->cs, &compress_xf, c);
    return 0;
}

/* Inflating failed: the stream error (XEP-0138), then close. */
static void
compress_failed(struct conn *c, const char *why)
{
    struct xe_buf b;

    xe_warn("event=compression-error peer=%s jid=%s error=\"%s\"", c->peer,
            c->jid ? c->jid : "-", why);
    if (c->sess) { /* before the compressed stream was answered: with a header */
        xe_srv_fail(c, XE_SF_COMPRESS_CORRUPT);
        return;
    }
    xe_buf_init(&b, 0);
    xe_zstream_error_xml(&b, "processing-failed", "the compressed data is corrupt");
    xe_srv_send_client(c, b.data, b.len);
    xe_buf_free(&b);
    xe_srv_close_conn(c);
}

/* Inflate in bounded chunks, each handed on before the next; while the
 * backend's queue is above its high water mark, the rest is held (client
 * reading is paused then) until the backend stream drains. more: zlib may
 * hold output from an earlier call. */
static void
client_inflate(struct conn *c, const unsigned char *data, size_t n, bool more)
{
    static _Thread_local char slab[XE_INFLATE_CHUNK]; /* per worker thread */

    while ((n > 0 || more) && !c->closed && c->st != CS_CLOSING) {
        size_t used = 0, got = 0;
        const char *err = "?";

        if (c->st == CS_SPLICED && c->backend_inited && xe_stream_above_high(&c->bs, 0)) {
            c->zstalled = true;
            if (xe_buf_append(&c->zin, data, n) < 0) {
                xe_warn("event=buffer-cap peer=%s jid=%s side=inflate queued=%zu",
                        c->peer, c->jid ? c->jid : "-", c->zin.len + n);
                xe_srv_finish_close(c);
            }
            return;
        }
        if (xe_zstream_inflate(c->zs, data, n, &used, slab, sizeof(slab), &got, &err) <
            0) {
            compress_failed(c, err);
            return;
        }
        data += used;
        n -= used;
        more = got == sizeof(slab);
        if (got > 0)
            xe_stream_deliver(&c->cs, slab, got);
        else if (used == 0)
            break; /* no progress: zlib wants more input */
    }
}

/* The held bytes, once the backend's queue is below its low water mark. */
void
xe_srv_inflate_held(struct conn *c)
{
    struct xe_buf held = c->zin;

    xe_buf_init(&c->zin, XE_MAX_INFLATE_PENDING);
    c->zstalled = false;
    client_inflate(c, held.data, held.len, true);
    xe_buf_free(&held);
}

/* What the client sent, after TLS: inflated first when it compresses. */
void
xe_srv_client_input(struct conn *c, const char *data, size_t n)
{
    if (c->zs == NULL) {
        xe_srv_client_plain(c, data, n);
        return;
    }
    compress_in(&c->cs, c, data, n);
}

static int
compress_in(struct xe_stream *s, void *x, const char *data, size_t n)
{
    struct conn *c = x;

    (void)s;
    if (c->zstalled) { /* behind the held bytes */
        if (xe_buf_append(&c->zin, data, n) < 0) {
            xe_warn("event=buffer-cap peer=%s jid=%s side=inflate queued=%zu", c->peer,
                    c->jid ? c->jid : "-", c->zin.len + n);
            xe_srv_finish_close(c);
        }
        return 0;
    }
    client_inflate(c, (const unsigned char *)data, n, false);
    return 0;
}

/* One batch to the client: deflated with a sync flush, then TLS. */
static int
compress_out(struct xe_stream *s, void *x, const char *data, size_t len)
{
    static _Thread_local unsigned char slab[XE_DEFLATE_CHUNK]; /* per worker thread */
    struct conn *c = x;
    const unsigned char *p = (const unsigned char *)data;
    bool more;

    do {
        size_t used = 0, got = 0;
        const char *err = "?";

        if (xe_zstream_deflate(c->zs, p, len, &used, slab, sizeof(slab), &got, &err) <
            0) {
            xe_warn("event=compression-error peer=%s jid=%s error=\"%s\"", c->peer,
                    c->jid ? c->jid : "-", err);
            return -1; /* (the stream closes: TRANSFORM) */
        }
        p += used;
        len -= used;
        more = got == sizeof(slab);
        if (got > 0 && xe_stream_write_below(s, slab, got) < 0)
            return 0; /* (closed, and told) */
        if (used == 0 && got == 0)
            break;
    } while (len > 0 || more);
    return 0;
}

void
xe_srv_compress_log_close(const struct conn *c)
{
    uint64_t in_z, in_plain, out_plain, out_z;

    if (c->zs == NULL)
        return;
    xe_zstream_counts(c->zs, &in_z, &in_plain, &out_plain, &out_z);
    xe_info("event=compression-close peer=%s jid=%s up_compressed=%llu up_plain=%llu "
            "down_plain=%llu down_compressed=%llu",
            c->peer, c->jid ? c->jid : "-", (unsigned long long)in_z,
            (unsigned long long)in_plain, (unsigned long long)out_plain,
            (unsigned long long)out_z);
}
