/* Unit tests: XMPP over WebSocket's sans-IO cores: the Upgrade request
 * (wshttp), the framing (wsframe, over wslay) and the RFC 7395 mapping
 * (wsxmpp). Each input is fed whole and byte by byte. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "tap.h"
#include "wsframe.h"
#include "wshttp.h"
#include "wsxmpp.h"

/* ---- wshttp ---------------------------------------------------------------- */

static const char *const origins[] = {"https://chat.example.test"};
static struct xe_wshttp_conf hconf = {.path = NULL,
                                      .origins = origins,
                                      .n_origins = 1,
                                      .host_meta_url =
                                          "wss://xmpp.example.test/xmpp-websocket"};

#define GOOD_HEAD                                                                        \
    "Host: xmpp.example.test\r\nUpgrade: websocket\r\nConnection: keep-alive, "          \
    "Upgrade\r\n"                                                                        \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

/* Feed req whole (bytewise: one byte at a time); returns the result, *used
 * the bytes of the request head. */
static int
http_run(struct xe_wshttp *h, const struct xe_wshttp_conf *c, const char *req, size_t len,
         bool bytewise, size_t *used)
{
    int rc = XE_WSHTTP_MORE;
    size_t u, total = 0;

    xe_wshttp_init(h, c);
    if (!bytewise) {
        rc = xe_wshttp_feed(h, req, len, &u);
        *used = u;
        return rc;
    }
    for (size_t i = 0; i < len && rc == XE_WSHTTP_MORE; i++) {
        rc = xe_wshttp_feed(h, req + i, 1, &u);
        total += u;
    }
    *used = total;
    return rc;
}

static void
http_case(const char *name, const char *req, int want_status, const char *want_in_answer)
{
    static struct xe_wshttp h;
    size_t used;

    for (int bw = 0; bw < 2; bw++) {
        int rc = http_run(&h, &hconf, req, strlen(req), bw, &used);
        ok(rc != XE_WSHTTP_MORE && h.status == want_status, "%s (%s): status %d", name,
           bw ? "byte by byte" : "whole", want_status);
        if (h.status != want_status)
            printf("#   got %d (%s)\n", h.status, h.reason ? h.reason : "");
        if (want_in_answer)
            ok(strstr(h.answer, want_in_answer) != NULL, "%s (%s): answer has \"%s\"",
               name, bw ? "byte by byte" : "whole", want_in_answer);
    }
}

static void
test_http(void)
{
    static struct xe_wshttp h;
    char acc[29];
    char big[XE_WS_MAX_HTTP_HEAD + 512];
    size_t used, n;
    int rc;

    ok(xe_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc) == 0 &&
           strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0,
       "Sec-WebSocket-Accept: RFC 6455's example");

    http_case("upgrade",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n"
              "Origin: https://chat.example.test\r\n\r\n",
              101, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
    http_case("upgrade answer names the subprotocol",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: chat, xmpp\r\n\r\n",
              101, "Sec-WebSocket-Protocol: xmpp\r\n");
    http_case("a query string on the path",
              "GET /xmpp-websocket?x=1 HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
              101, NULL);
    http_case("subprotocol in two header lines",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: chat\r\n"
              "sec-websocket-protocol: xmpp\r\n\r\n",
              101, NULL);
    http_case("no xmpp subprotocol",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: chat\r\n\r\n",
              400, "xmpp subprotocol");
    http_case("no subprotocol at all",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD "\r\n", 400, NULL);
    http_case("not \"xmpp\" but a longer token",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmppx\r\n\r\n",
              400, NULL);
    http_case("another path",
              "GET /ws HTTP/1.1\r\n" GOOD_HEAD "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
              404, "Connection: close\r\n");
    http_case("origin not allowed",
              "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n"
              "Origin: https://evil.example\r\n\r\n",
              403, NULL);
    http_case("no Upgrade", "GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\n\r\n", 426,
              "Upgrade: websocket\r\n");
    http_case("WebSocket version 8",
              "GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
              426, "Sec-WebSocket-Version: 13\r\n");
    http_case("a bad key",
              "GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
              400, "Sec-WebSocket-Key");
    http_case("POST",
              "POST /xmpp-websocket HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
              405, "Allow: GET\r\n");
    http_case("HTTP/1.0",
              "GET /xmpp-websocket HTTP/1.0\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
              400, NULL);
    http_case("no Host", "GET /xmpp-websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
              400, "Host");
    http_case("not HTTP", "<stream:stream xmlns='jabber:client'>\r\n\r\n", 400, NULL);
    http_case("host-meta", "GET /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n\r\n", 200,
              "href='wss://xmpp.example.test/xmpp-websocket'");
    http_case("host-meta: CORS", "GET /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n\r\n",
              200, "Access-Control-Allow-Origin: *\r\n");
    http_case("host-meta.json",
              "GET /.well-known/host-meta.json HTTP/1.1\r\nHost: x\r\n\r\n", 200,
              "\"href\":\"wss://xmpp.example.test/xmpp-websocket\"");

    {
        struct xe_wshttp_conf c = {.path = "/ws"};
        const char *req = "GET /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n\r\n";
        rc = http_run(&h, &c, req, strlen(req), false, &used);
        ok(rc == XE_WSHTTP_ANSWER && h.status == 404,
           "host-meta without a URL configured: 404");
        req = "GET /ws HTTP/1.1\r\n" GOOD_HEAD "Sec-WebSocket-Protocol: xmpp\r\n"
              "Origin: https://anywhere.example\r\n\r\n";
        rc = http_run(&h, &c, req, strlen(req), false, &used);
        ok(rc == XE_WSHTTP_UPGRADE, "a configured path; no origin list: any origin");
    }

    /* pipelined frame bytes after the head are the caller's */
    {
        const char *req = "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
                          "Sec-WebSocket-Protocol: xmpp\r\n\r\n\x81\x85";
        size_t len = strlen(req);
        rc = http_run(&h, &hconf, req, len, false, &used);
        ok(rc == XE_WSHTTP_UPGRADE && used == len - 2,
           "the frame bytes after the head are left");
        rc = http_run(&h, &hconf, req, len, true, &used);
        ok(rc == XE_WSHTTP_UPGRADE && used == len - 2, "byte by byte too");
    }

    /* bounds */
    n = (size_t)snprintf(big, sizeof(big),
                         "GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', sizeof(big) - n - 5);
    memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
    for (int bw = 0; bw < 2; bw++) {
        rc = http_run(&h, &hconf, big, strlen(big), bw, &used);
        ok(rc == XE_WSHTTP_ANSWER && h.status == 431 && used <= XE_WS_MAX_HTTP_HEAD,
           "a head over %d bytes: 431 (%s)", XE_WS_MAX_HTTP_HEAD,
           bw ? "byte by byte" : "whole");
    }
    n = (size_t)snprintf(big, sizeof(big), "GET /xmpp-websocket HTTP/1.1\r\n");
    for (int i = 0; i < XE_WS_MAX_HTTP_HEADERS + 2; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: 1\r\n", i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    rc = http_run(&h, &hconf, big, n, false, &used);
    ok(rc == XE_WSHTTP_ANSWER && h.status == 431, "more than %d header lines: 431",
       XE_WS_MAX_HTTP_HEADERS);
    n = (size_t)snprintf(big, sizeof(big), "GET /xmpp-websocket HTTP/1.1\r\nOrigin: ");
    memset(big + n, 'o', XE_WS_MAX_HTTP_VALUE + 10);
    n += XE_WS_MAX_HTTP_VALUE + 10;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n\r\n");
    rc = http_run(&h, &hconf, big, n, false, &used);
    ok(rc == XE_WSHTTP_ANSWER && h.status == 431, "a kept header over %d bytes: 431",
       XE_WS_MAX_HTTP_VALUE);
    rc =
        http_run(&h, &hconf, "GET /xmpp-websocket HTTP/1.1\r\nHost: x", 36, false, &used);
    ok(rc == XE_WSHTTP_MORE, "an incomplete head: more");

    /* X-Forwarded-For, read for a trusted proxy */
    {
        struct xe_cidr tr[1];
        struct sockaddr_storage ss;
        char a[64];
        const char *req = "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
                          "Sec-WebSocket-Protocol: xmpp\r\n"
                          "X-Forwarded-For: 192.0.2.66, 203.0.113.5\r\n"
                          "X-Forwarded-For: 10.1.2.3\r\n\r\n";
        xe_cidr_parse("10.0.0.0/8", &tr[0]);
        rc = http_run(&h, &hconf, req, strlen(req), true, &used);
        ok(rc == XE_WSHTTP_UPGRADE && xe_wshttp_client_addr(&h, tr, 1, &ss) == 0 &&
               ss.ss_family == AF_INET &&
               inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a)) &&
               strcmp(a, "203.0.113.5") == 0,
           "X-Forwarded-For: the rightmost address not a trusted proxy's");
        req = "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n"
              "X-Forwarded-For: 2001:db8::7\r\n\r\n";
        rc = http_run(&h, &hconf, req, strlen(req), false, &used);
        ok(xe_wshttp_client_addr(&h, tr, 1, &ss) == 0 && ss.ss_family == AF_INET6,
           "X-Forwarded-For: IPv6");
        req = "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n"
              "X-Forwarded-For: 192.0.2.1, unknown\r\n\r\n";
        rc = http_run(&h, &hconf, req, strlen(req), false, &used);
        ok(xe_wshttp_client_addr(&h, tr, 1, &ss) == -1,
           "X-Forwarded-For: not an address: none");
        req = "GET /xmpp-websocket HTTP/1.1\r\n" GOOD_HEAD
              "Sec-WebSocket-Protocol: xmpp\r\n\r\n";
        rc = http_run(&h, &hconf, req, strlen(req), false, &used);
        ok(xe_wshttp_client_addr(&h, tr, 1, &ss) == -1, "no X-Forwarded-For: none");
    }
}

/* ---- wsframe --------------------------------------------------------------- */

struct fsink {
    char msgs[8192];
    size_t msgs_len;
    int n_msgs;
    unsigned char out[1 << 16];
    size_t out_len;
};

static int
f_message(void *ctx, const char *text, size_t len)
{
    struct fsink *s = ctx;

    if (s->msgs_len + len + 1 < sizeof(s->msgs)) {
        memcpy(s->msgs + s->msgs_len, text, len);
        s->msgs_len += len;
        s->msgs[s->msgs_len++] = '|';
        s->msgs[s->msgs_len] = '\0';
    }
    s->n_msgs++;
    return 0;
}

static int
f_write(void *ctx, const void *b, size_t len)
{
    struct fsink *s = ctx;

    if (s->out_len + len > sizeof(s->out))
        return -1;
    memcpy(s->out + s->out_len, b, len);
    s->out_len += len;
    return 0;
}

static const struct xe_wsframe_cb fcb = {f_message, f_write};

/* A client frame, masked unless told. */
static size_t
frame(unsigned char *o, bool fin, int opcode, const void *payload, size_t len, bool mask)
{
    static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t n = 0;

    o[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126)
        o[n++] = (unsigned char)((mask ? 0x80 : 0) | len);
    else if (len < 65536) {
        o[n++] = (unsigned char)((mask ? 0x80 : 0) | 126);
        o[n++] = (unsigned char)(len >> 8);
        o[n++] = (unsigned char)len;
    } else {
        o[n++] = (unsigned char)((mask ? 0x80 : 0) | 127);
        for (int i = 7; i >= 0; i--)
            o[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(o + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        o[n + i] = ((const unsigned char *)payload)[i] ^ (mask ? key[i % 4] : 0);
    return n + len;
}

/* The server's frames in s->out: the first's opcode and payload. */
static int
first_frame(const struct fsink *s, size_t skip_frames, char *payload, size_t *plen)
{
    size_t off = 0;

    for (;;) {
        size_t len, h = 2;
        int op;
        if (off + 2 > s->out_len || (s->out[off + 1] & 0x80))
            return -1; /* none, or masked: a server never masks */
        op = s->out[off] & 0x0f;
        len = s->out[off + 1] & 0x7f;
        if (len == 126) {
            len = ((size_t)s->out[off + 2] << 8) | s->out[off + 3];
            h = 4;
        }
        if (skip_frames-- == 0) {
            memcpy(payload, s->out + off + h, len);
            *plen = len;
            return op;
        }
        off += h + len;
    }
}

static void
feed_frames(struct xe_wsframe *w, const unsigned char *b, size_t len, bool bytewise)
{
    if (!bytewise)
        xe_wsframe_input(w, b, len);
    else
        for (size_t i = 0; i < len; i++)
            xe_wsframe_input(w, b + i, 1);
}

static void
test_frame(void)
{
    static unsigned char in[1 << 17];
    static struct fsink s;
    char p[256];
    size_t n, plen;
    struct xe_wsframe *w;

    for (int bw = 0; bw < 2; bw++) {
        const char *how = bw ? "byte by byte" : "whole";

        memset(&s, 0, sizeof(s));
        w = xe_wsframe_new(1024, &fcb, &s);
        n = frame(in, true, 1, "<presence/>", 11, true);
        n += frame(in + n, false, 1, "<message><bo", 12, true);
        n += frame(in + n, true, 9, "hb", 2, true); /* a ping between fragments */
        n += frame(in + n, true, 0, "dy>hi</body></message>", 22, true);
        feed_frames(w, in, n, bw);
        is_str(s.msgs, "<presence/>|<message><body>hi</body></message>|",
               "two messages, the second fragmented and reassembled (%s)", how);
        ok(first_frame(&s, 0, p, &plen) == 0xA && plen == 2 && memcmp(p, "hb", 2) == 0,
           "a ping answered with a pong of its payload (%s)", how);
        ok(!xe_wsframe_done(w), "still open (%s)", how);
        s.out_len = 0;
        ok(xe_wsframe_send_text(w, "<open/>", 7) == 0 &&
               first_frame(&s, 0, p, &plen) == 1 && plen == 7 &&
               memcmp(p, "<open/>", 7) == 0 && s.out[0] == 0x81,
           "a message out: one unmasked final text frame (%s)", how);
        s.out_len = 0;
        {
            unsigned char cp[2] = {0x03, 0xe8}; /* 1000 */
            n = frame(in, true, 8, cp, 2, true);
        }
        feed_frames(w, in, n, bw);
        ok(first_frame(&s, 0, p, &plen) == 8 && plen >= 2 &&
               ((unsigned char)p[0] << 8 | (unsigned char)p[1]) == 1000,
           "the client's close answered with 1000 (%s)", how);
        ok(xe_wsframe_peer_code(w) == 1000 && xe_wsframe_done(w), "then done (%s)", how);
        ok(xe_wsframe_send_text(w, "x", 1) < 0, "nothing goes out after the close (%s)",
           how);
        xe_wsframe_free(&w);

        struct {
            const char *what;
            unsigned code;
        } bad[] = {{"an unmasked frame", 1002},
                   {"a binary frame", 1003},
                   {"a message over the bound", 1009},
                   {"a fragmented message over the bound", 1009},
                   {"bad UTF-8", 1007},
                   {"a continuation without a start", 1002}};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            static char bigp[2048];
            memset(&s, 0, sizeof(s));
            memset(bigp, 'a', sizeof(bigp));
            w = xe_wsframe_new(1024, &fcb, &s);
            switch (i) {
            case 0:
                n = frame(in, true, 1, "<a/>", 4, false);
                break;
            case 1:
                n = frame(in, true, 2, "<a/>", 4, true);
                break;
            case 2:
                n = frame(in, true, 1, bigp, 1025, true);
                break;
            case 3:
                n = frame(in, false, 1, bigp, 600, true);
                n += frame(in + n, true, 0, bigp, 600, true);
                break;
            case 4:
                n = frame(in, true, 1, "<a>\xc3\x28</a>", 9, true);
                break;
            case 5:
                n = frame(in, true, 0, "<a/>", 4, true);
                break;
            }
            n += frame(in + n, true, 1, "<after/>", 8, true); /* never delivered */
            feed_frames(w, in, n, bw);
            int op = first_frame(&s, 0, p, &plen);
            unsigned code =
                plen >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 0;
            ok(op == 8 && code == bad[i].code && s.n_msgs == 0 &&
                   xe_wsframe_our_code(w) == code,
               "%s: close %u, no message (%s)", bad[i].what, bad[i].code, how);
            if (op != 8 || code != bad[i].code)
                printf("#   got opcode %d code %u, %d messages\n", op, code, s.n_msgs);
            ok(xe_wsframe_done(w), "%s: done (%s)", bad[i].what, how);
            xe_wsframe_free(&w);
        }
    }

    /* a message at the bound is taken; a 1 MiB frame is refused at its start */
    memset(&s, 0, sizeof(s));
    w = xe_wsframe_new(1024, &fcb, &s);
    {
        static char m[1024];
        memset(m, 'b', sizeof(m));
        n = frame(in, true, 1, m, sizeof(m), true);
        xe_wsframe_input(w, in, n);
        ok(s.n_msgs == 1 && s.msgs_len == 1025,
           "a message of exactly the bound is taken");
        n = frame(in, true, 1, "", 0, true);
        in[1] = 0x80 | 127; /* claims 1 MiB */
        memset(in + 2, 0, 8);
        in[7] = 0x10;
        memset(in + 10, 0, 4 + 100);
        s.out_len = 0;
        xe_wsframe_input(w, in, 14 + 100);
        ok(first_frame(&s, 0, p, &plen) == 8 &&
               ((unsigned char)p[0] << 8 | (unsigned char)p[1]) == 1009,
           "a 1 MiB frame: 1009 after its first 100 bytes");
    }
    xe_wsframe_free(&w);

    /* we close: 1008 with a reason */
    memset(&s, 0, sizeof(s));
    w = xe_wsframe_new(1024, &fcb, &s);
    ok(xe_wsframe_close(w, 1008, "policy") == 0 && first_frame(&s, 0, p, &plen) == 8 &&
           plen == 8 && memcmp(p + 2, "policy", 6) == 0 && xe_wsframe_done(w),
       "our close: 1008 with its reason, then done");
    xe_wsframe_free(&w);
}

/* ---- wsxmpp ---------------------------------------------------------------- */

struct xsink {
    char stream[8192];
    size_t stream_len;
    char msgs[16384];
    size_t msgs_len;
};

static int
x_stream(void *ctx, const void *b, size_t len)
{
    struct xsink *s = ctx;

    if (s->stream_len + len + 1 > sizeof(s->stream))
        return -1;
    memcpy(s->stream + s->stream_len, b, len);
    s->stream_len += len;
    s->stream[s->stream_len] = '\0';
    return 0;
}

static int
x_client(void *ctx, const char *m, size_t len)
{
    struct xsink *s = ctx;

    if (s->msgs_len + len + 2 > sizeof(s->msgs))
        return -1;
    memcpy(s->msgs + s->msgs_len, m, len);
    s->msgs_len += len;
    s->msgs[s->msgs_len++] = '\n';
    s->msgs[s->msgs_len] = '\0';
    return 0;
}

static const struct xe_wsxmpp_cb xcb = {x_stream, x_client};

#define FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define STREAMS "http://etherx.jabber.org/streams"

static void
test_xmpp_client(void)
{
    static struct xsink s;
    struct xe_wsxmpp *x;
    const char *m;
    int rc;

    memset(&s, 0, sizeof(s));
    x = xe_wsxmpp_new(1 << 16, &xcb, &s);
    m = "<open xmlns='" FRAMING "' to='example.test' version='1.0' xml:lang='en'/>";
    rc = xe_wsxmpp_client_message(x, m, strlen(m));
    is_str(
        s.stream,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" STREAMS
        "' to='example.test' version='1.0' xml:lang='en'>",
        "<open/> becomes the stream header");
    ok(rc == XE_WSXMPP_OK && xe_wsxmpp_client_open(x), "the stream is open");
    s.stream_len = 0;
    m = "  <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
        "mechanism='PLAIN'>AGFsaWNlAHg=</auth>\n";
    rc = xe_wsxmpp_client_message(x, m, strlen(m));
    is_str(s.stream,
           "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
           "mechanism='PLAIN'>AGFsaWNlAHg=</auth>",
           "an element goes on as it came (whitespace around it trimmed)");
    s.stream_len = 0;
    m = "<message xmlns='jabber:client' to='a@b'><body>a &gt; b, "
        "x='&apos;'</body></message>";
    rc = xe_wsxmpp_client_message(x, m, strlen(m));
    is_str(s.stream, m, "a stanza goes on as it came");
    s.stream_len = 0;
    m = "<open xmlns='" FRAMING "' to='ex&amp;&apos;' version='1.0'/>";
    rc = xe_wsxmpp_client_message(x, m, strlen(m));
    ok(rc == 0 && strstr(s.stream, "to='ex&amp;&apos;'") != NULL,
       "a restart's <open/>: a new header, its values escaped again");
    ok(xe_wsxmpp_client_message(x, "   ", 3) == 0 && s.msgs_len == 0,
       "a whitespace message: nothing");
    s.stream_len = 0;
    m = "<close xmlns='" FRAMING "'/>";
    rc = xe_wsxmpp_client_message(x, m, strlen(m));
    ok(rc == XE_WSXMPP_CLOSED && strcmp(s.stream, "</stream:stream>") == 0 &&
           !xe_wsxmpp_client_open(x),
       "<close/> becomes the stream's end");
    xe_wsxmpp_free(&x);

    struct {
        const char *what, *msg, *cond;
        bool open_first;
    } bad[] = {
        {"two elements in a message", "<presence/><presence/>", "not-well-formed", true},
        {"half an element", "<message xmlns='jabber:client'><body>hi", "not-well-formed",
         true},
        {"text", "hello", "not-well-formed", true},
        {"an end tag", "</stream:stream>", "not-well-formed", true},
        {"an XML declaration", "<?xml version='1.0'?>", "not-well-formed", true},
        {"an element and text", "<presence/>x", "not-well-formed", true},
        {"a stanza before <open/>", "<presence xmlns='jabber:client'/>", "bad-format",
         false},
        {"an unknown framing element", "<opens xmlns='" FRAMING "'/>", "bad-format",
         true},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[512];
        memset(&s, 0, sizeof(s));
        x = xe_wsxmpp_new(1 << 16, &xcb, &s);
        if (bad[i].open_first) {
            m = "<open xmlns='" FRAMING "' to='example.test' version='1.0'/>";
            xe_wsxmpp_client_message(x, m, strlen(m));
        }
        s.stream_len = 0;
        s.stream[0] = '\0';
        rc = xe_wsxmpp_client_message(x, bad[i].msg, strlen(bad[i].msg));
        snprintf(want, sizeof(want),
                 "<error xmlns='" STREAMS
                 "'><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                 "</error>\n" XE_WS_CLOSE_MSG "\n",
                 bad[i].cond);
        ok(rc == XE_WSXMPP_EFRAME && s.stream_len == 0,
           "%s: refused, nothing reaches the stream", bad[i].what);
        is_str(s.msgs, want, "%s: <%s/> then <close/>", bad[i].what, bad[i].cond);
        rc = xe_wsxmpp_client_message(x, "<presence/>", 11);
        ok(rc == XE_WSXMPP_CLOSED && s.stream_len == 0, "%s: nothing taken after it",
           bad[i].what);
        xe_wsxmpp_free(&x);
    }
}

static const char stream_in[] =
    "<?xml version='1.0'?>"
    "<stream:stream xmlns='jabber:client' xmlns:stream='" STREAMS "' id='s1' "
    "from='example.test' version='1.0' xml:lang='en'>"
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" STREAMS
    "' "
    "id='s2' from='example.test' version='1.0'>"
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    " \n "
    "<message from='b@example.test' to='a@example.test' type=\"chat\" x='a>b/&apos;'>"
    "<body>1 &lt; 2 &amp; 3</body><x "
    "xmlns='urn:x'><![CDATA[</message><y>]]></x></message>"
    "<iq type='result' id='1'/>"
    "<presence xmlns='jabber:client'><stream:x xmlns:stream='urn:other'/></presence>"
    "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></stream:error>"
    "</stream:stream>";

static const char msgs_out[] =
    "<open xmlns='" FRAMING
    "' from='example.test' id='s1' version='1.0' xml:lang='en'/>\n"
    "<stream:features xmlns='jabber:client' xmlns:stream='" STREAMS "'><mechanisms "
    "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
    "</stream:features>\n"
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\n"
    "<open xmlns='" FRAMING "' from='example.test' id='s2' version='1.0'/>\n"
    "<stream:features xmlns='jabber:client' xmlns:stream='" STREAMS
    "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    "</stream:features>\n"
    "<message xmlns='jabber:client' from='b@example.test' to='a@example.test' "
    "type=\"chat\" "
    "x='a>b/&apos;'><body>1 &lt; 2 &amp; 3</body><x "
    "xmlns='urn:x'><![CDATA[</message><y>]]>"
    "</x></message>\n"
    "<iq xmlns='jabber:client' type='result' id='1'/>\n"
    "<presence xmlns:stream='" STREAMS "' xmlns='jabber:client'><stream:x "
    "xmlns:stream='urn:other'/></presence>\n"
    "<error xmlns='" STREAMS
    "'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "<text "
    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></error>\n" XE_WS_CLOSE_MSG
    "\n";

static void
test_xmpp_stream(void)
{
    static struct xsink s;
    struct xe_wsxmpp *x;
    int rc = 0;

    for (int bw = 0; bw < 2; bw++) {
        memset(&s, 0, sizeof(s));
        x = xe_wsxmpp_new(1 << 16, &xcb, &s);
        rc = 0;
        if (!bw)
            rc = xe_wsxmpp_stream_input(x, stream_in, sizeof(stream_in) - 1);
        else
            for (size_t i = 0; i < sizeof(stream_in) - 1 && rc == 0; i++)
                rc = xe_wsxmpp_stream_input(x, stream_in + i, 1);
        ok(rc == XE_WSXMPP_CLOSED, "the stream's end: closed (%s)",
           bw ? "byte by byte" : "whole");
        is_str(s.msgs, msgs_out, "each element one message, its namespaces declared (%s)",
               bw ? "byte by byte" : "whole");
        xe_wsxmpp_free(&x);
    }

    /* an element over the bound */
    memset(&s, 0, sizeof(s));
    x = xe_wsxmpp_new(256, &xcb, &s);
    {
        static char big[4096];
        const char *h =
            "<stream:stream xmlns='jabber:client' xmlns:stream='" STREAMS "'>";
        rc = xe_wsxmpp_stream_input(x, h, strlen(h));
        memcpy(big, "<message><body>", 15);
        memset(big + 15, 'a', sizeof(big) - 15);
        rc = 0;
        for (size_t off = 0; off < sizeof(big) && rc == 0; off += 100)
            rc = xe_wsxmpp_stream_input(x, big + off, 100);
        ok(rc == XE_WSXMPP_ESTREAM && strstr(xe_wsxmpp_error(x), "too big"),
           "an element of the stream over the bound: an error, not a buffer without end");
    }
    xe_wsxmpp_free(&x);

    /* a namespace value with a quote is escaped again where it is declared */
    memset(&s, 0, sizeof(s));
    x = xe_wsxmpp_new(1 << 16, &xcb, &s);
    {
        const char *b = "<stream:stream xmlns=\"jabber:'c\" xmlns:stream='" STREAMS
                        "' xmlns:db=\"a'&amp;b\"><db:result/>";
        rc = xe_wsxmpp_stream_input(x, b, strlen(b));
        ok(rc == 0 && strstr(s.msgs, "\n<db:result xmlns='jabber:&apos;c' "
                                     "xmlns:db='a&apos;&amp;b'/>\n") != NULL,
           "namespace values escaped again where they are declared");
    }
    xe_wsxmpp_free(&x);

    /* a second stream error in c2s's own words (before the splice) */
    memset(&s, 0, sizeof(s));
    x = xe_wsxmpp_new(1 << 16, &xcb, &s);
    {
        const char *b = "<?xml version='1.0'?><stream:stream xmlns:stream='" STREAMS
                        "' xmlns='jabber:client' from='e' id='i' version='1.0'>"
                        "<stream:error><policy-violation "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                        "</stream:stream>";
        rc = xe_wsxmpp_stream_input(x, b, strlen(b));
        ok(rc == XE_WSXMPP_CLOSED &&
               strstr(s.msgs, "\n<error xmlns='" STREAMS "'><policy-violation "
                              "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></"
                              "error>\n" XE_WS_CLOSE_MSG "\n") != NULL,
           "a stream error: <error/> then <close/> (strophe.js's spelling)");
    }
    xe_wsxmpp_free(&x);
}

int
main(void)
{
    test_http();
    test_frame();
    test_xmpp_client();
    test_xmpp_stream();
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
