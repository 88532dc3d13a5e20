/* Fuzz target: XMPP over WebSocket's sans-IO cores as the glue will chain
 * them (src/core/wshttp.h, wsframe.h, wsxmpp.h).
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then the data.
 * flags bit 0: the data is a client's bytes: the HTTP Upgrade request, then
 *              (after a 101) WebSocket frames whose text messages go
 *              through the RFC 7395 mapping to the stream; else it is the
 *              stream towards the client (ours or a backend's), cut into
 *              messages that go out as frames
 *       bits 1-2: the message bound: 64, 1024, 16384 or 65536 bytes
 *       bit 3: an Origin allow-list and a host-meta URL configured
 *
 * Checked: the HTTP answer fits its buffer, is one of the statuses the core
 * promises and ends its head with CRLF CRLF; a 101 carries the accept key
 * of the request's key; the request head never takes more than its bound;
 * no message over the bound comes out of the framing; what the mapping
 * hands to the stream is a header, the stream's end, or one balanced
 * element; what it sends to the client is one balanced element per
 * message, each framed unmasked as one final text frame. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boundary.h"
#include "fuzz.h"
#include "wsframe.h"
#include "wshttp.h"
#include "wsxmpp.h"

static const char *const origins[] = {"https://chat.example.test",
                                      "http://localhost:8080"};

#define OUT_MAX (4 << 20) /* frame bytes kept for the check */

struct state {
    struct xe_wsframe *frame;
    struct xe_wsxmpp *xmpp;
    size_t max;
    unsigned char *out;
    size_t out_len;
    bool out_full;
};

/* one balanced element: '<' first, and the scan from inside the stream
 * comes back between stanzas exactly at its end */
static bool
one_element(const char *p, size_t len)
{
    struct xe_boundary b;

    if (len < 3 || p[0] != '<')
        return false;
    xe_boundary_init(&b, 1);
    return xe_boundary_scan(&b, p, len, true) == len && xe_boundary_between(&b);
}

static int
to_stream(void *ctx, const void *bytes, size_t len)
{
    const char *p = bytes;

    (void)ctx;
    static const char header[] = "<?xml version='1.0'?><stream:stream ";

    if (len >= sizeof(header) - 1 && memcmp(p, header, sizeof(header) - 1) == 0)
        FUZZ_CHECK(p[len - 1] == '>');
    else if (len == 16 && memcmp(p, "</stream:stream>", 16) == 0)
        ;
    else
        FUZZ_CHECK(one_element(p, len));
    return 0;
}

static int
to_client(void *ctx, const char *msg, size_t len)
{
    struct state *s = ctx;

    FUZZ_CHECK(one_element(msg, len));
    return xe_wsframe_send_text(s->frame, msg, len) < 0 ? -1 : 0;
}

static const struct xe_wsxmpp_cb xcb = {to_stream, to_client};

static int
on_message(void *ctx, const char *text, size_t len)
{
    struct state *s = ctx;

    FUZZ_CHECK(len <= s->max);
    return xe_wsxmpp_client_message(s->xmpp, text, len) == XE_WSXMPP_OK ? 0 : 1;
}

static int
on_write(void *ctx, const void *bytes, size_t len)
{
    struct state *s = ctx;

    if (s->out_full || s->out_len + len > OUT_MAX) {
        s->out_full = true;
        return 0;
    }
    memcpy(s->out + s->out_len, bytes, len);
    s->out_len += len;
    return 0;
}

static const struct xe_wsframe_cb fcb = {on_message, on_write};

/* The frames the server wrote: each final, unmasked, without RSV bits, a
 * text, pong or close frame; nothing after the close; the last one whole. */
static void
check_frames(const struct state *s)
{
    size_t off = 0;
    bool closed = false;

    while (off < s->out_len) {
        const unsigned char *f = s->out + off;
        size_t left = s->out_len - off, h = 2;
        uint64_t len;
        int op;

        FUZZ_CHECK(!closed && left >= 2);
        op = f[0] & 0x0f;
        FUZZ_CHECK((f[0] & 0xf0) == 0x80 && !(f[1] & 0x80));
        FUZZ_CHECK(op == 1 || op == 8 || op == 0xA);
        len = f[1] & 0x7f;
        if (len == 126) {
            FUZZ_CHECK(left >= 4);
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            FUZZ_CHECK(left >= 10);
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        FUZZ_CHECK(len <= left - h);
        if (op == 8)
            closed = true;
        off += h + (size_t)len;
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_logs();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {64, 1024, 16384, 65536};
    struct xe_wshttp_conf hc = {0};
    static struct xe_wshttp h;
    struct fuzz_chunker ch;
    struct state s = {0};
    uint8_t flags;
    bool upgraded = false;

    if (size < 1)
        return 0;
    flags = data[0];
    data++, size--;
    fuzz_chunker_init(&ch, &data, &size);
    s.max = maxes[(flags >> 1) & 3];
    if (flags & 8) {
        hc.origins = origins;
        hc.n_origins = 2;
        hc.host_meta_url = "wss://example.test/xmpp-websocket";
    }
    s.out = malloc(OUT_MAX);
    FUZZ_CHECK(s.out != NULL);
    s.frame = xe_wsframe_new(s.max, &fcb, &s);
    s.xmpp = xe_wsxmpp_new(s.max, &xcb, &s);
    FUZZ_CHECK(s.frame && s.xmpp);
    xe_wshttp_init(&h, &hc);

    if (!(flags & 1)) { /* the stream towards the client */
        while (size > 0) {
            size_t n = fuzz_chunk_len(&ch, size);
            int rc = xe_wsxmpp_stream_input(s.xmpp, data, n);
            data += n, size -= n;
            if (rc != XE_WSXMPP_OK)
                break;
        }
        goto out;
    }
    while (size > 0) {
        size_t n = fuzz_chunk_len(&ch, size), used = 0;
        if (!upgraded) {
            int rc = xe_wshttp_feed(&h, data, n, &used);
            FUZZ_CHECK(used <= n && h.head_bytes <= XE_WS_MAX_HTTP_HEAD);
            if (rc == XE_WSHTTP_MORE) {
                FUZZ_CHECK(used == n);
                data += n, size -= n;
                continue;
            }
            FUZZ_CHECK(h.answer_len > 0 && h.answer_len < sizeof(h.answer));
            FUZZ_CHECK(h.status == 101 || h.status == 200 || h.status == 400 ||
                       h.status == 403 || h.status == 404 || h.status == 405 ||
                       h.status == 426 || h.status == 431 || h.status == 500);
            FUZZ_CHECK(strstr(h.answer, "\r\n\r\n") != NULL);
            if (rc != XE_WSHTTP_UPGRADE)
                goto out; /* the glue sends the answer and closes */
            {
                char acc[29];
                const char *key = xe_wshttp_header(&h, "sec-websocket-key");
                FUZZ_CHECK(key && xe_ws_accept_key(key, acc) == 0 &&
                           strstr(h.answer, acc));
            }
            upgraded = true;
            data += used, size -= used;
            n -= used;
            if (n == 0)
                continue;
        }
        if (xe_wsframe_input(s.frame, data, n) < 0 || xe_wsframe_done(s.frame))
            break;
        data += n, size -= n;
    }
out:
    if (!s.out_full)
        check_frames(&s);
    free(s.out);
    xe_wsxmpp_free(&s.xmpp);
    xe_wsframe_free(&s.frame);
    return 0;
}
