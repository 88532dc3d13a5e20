/* Unit tests of the glue's connection layer (src/io/stream.c) on a real
 * libuv loop over a socketpair (no network): reads, the peer's end, the
 * try-write and the queue, the water marks and the hard cap, cork, the
 * transform hook, half-close, the grace close, the lingering close, the
 * reopen into the other socket kind, and TLS driven by two
 * streams (a certificate generated at test time). TAP output. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "stream.h"
#include "tap.h"
#include "testcert.h"

static uv_loop_t loop;
static struct xe_stream_slab slab;
static const char *tmpdir;

/* What the callbacks saw. */
struct rec {
    struct xe_stream s;
    char data[4096];
    size_t n_data, total;
    int n_full, n_drained, n_eof, n_closed, n_released, n_tls_up, n_timeout;
    enum xe_stream_reason eof_reason, closed_reason;
    bool close_on_eof;
};

static void
cb_data(struct xe_stream *s, const char *d, size_t n, void *ctx)
{
    struct rec *r = ctx;

    (void)s;
    r->total += n;
    if (r->n_data + n <= sizeof(r->data)) {
        memcpy(r->data + r->n_data, d, n);
        r->n_data += n;
    }
}

static void
cb_full(struct xe_stream *s, void *ctx)
{
    (void)s;
    ((struct rec *)ctx)->n_full++;
}

static void
cb_drained(struct xe_stream *s, void *ctx)
{
    (void)s;
    ((struct rec *)ctx)->n_drained++;
}

static void
cb_eof(struct xe_stream *s, enum xe_stream_reason why, int status, void *ctx)
{
    struct rec *r = ctx;

    (void)status;
    r->n_eof++;
    r->eof_reason = why;
    if (r->close_on_eof)
        xe_stream_close(s, 1000);
}

static void
cb_closed(struct xe_stream *s, enum xe_stream_reason why, int status, void *ctx)
{
    struct rec *r = ctx;

    (void)s;
    (void)status;
    r->n_closed++;
    r->closed_reason = why;
}

static void
cb_released(struct xe_stream *s, void *ctx)
{
    (void)s;
    ((struct rec *)ctx)->n_released++;
}

static void
cb_tls_up(struct xe_stream *s, void *ctx)
{
    (void)s;
    ((struct rec *)ctx)->n_tls_up++;
}

static void
cb_timeout(struct xe_stream *s, void *ctx)
{
    (void)s;
    ((struct rec *)ctx)->n_timeout++;
}

static const struct xe_stream_cb cbs = {
    .tls_up = cb_tls_up,
    .data = cb_data,
    .eof = cb_eof,
    .full = cb_full,
    .drained = cb_drained,
    .timeout = cb_timeout,
    .closed = cb_closed,
    .released = cb_released,
};

static const struct xe_stream_limits lim = {64 * 1024, 256 * 1024, 4 * 1024 * 1024};

/* A stream R on one end of a socketpair; the other end (blocking off) in
 * *peer. */
static void
open_pair(struct rec *r, const struct xe_stream_limits *l, int *peer)
{
    int sv[2];
    int sz = 16 * 1024;

    memset(r, 0, sizeof(*r));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    /* small kernel buffers: the queue fills soon */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    xe_stream_init(&r->s, &loop, true, &slab, l ? l : &lim, &cbs, r);
    if (xe_stream_open(&r->s, sv[0]) != 0)
        abort();
    *peer = sv[1];
}

/* Run the loop until COND or about a second. */
#define RUN_UNTIL(cond)                                                                  \
    do {                                                                                 \
        for (int i_ = 0; i_ < 200 && !(cond); i_++) {                                    \
            uv_run(&loop, UV_RUN_NOWAIT);                                                \
            if (!(cond))                                                                 \
                usleep(5000);                                                            \
        }                                                                                \
    } while (0)

/* Everything the peer can read now (up to CAP). */
static size_t
peer_read(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
        got += (size_t)n;
    return got;
}

static size_t
peer_drain(int fd)
{
    char buf[65536];
    size_t got = 0, n;

    while ((n = peer_read(fd, buf, sizeof(buf))) > 0)
        got += n;
    return got;
}

static void
test_read_and_eof(void)
{
    struct rec r;
    int peer;

    open_pair(&r, NULL, &peer);
    xe_stream_start(&r.s);
    ok(write(peer, "hello", 5) == 5, "the peer writes");
    RUN_UNTIL(r.n_data == 5);
    ok(r.n_data == 5 && memcmp(r.data, "hello", 5) == 0, "data: the peer's bytes");
    close(peer);
    RUN_UNTIL(r.n_eof == 1);
    is_int(r.n_eof, 1, "the peer's close: eof once");
    is_int(r.eof_reason, XE_STREAM_EOF, "... with the reason EOF");
    is_int(r.n_closed, 0, "eof alone does not close (half-close is the user's choice)");
    ok(xe_stream_write(&r.s, "bye", 3) == 0, "the stream still writes after eof");
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    is_int(r.n_closed, 1, "abort: closed once, however often asked");
    is_int(r.closed_reason, XE_STREAM_LOCAL, "... reason LOCAL");
    is_int(r.n_released, 0, "not released inside abort (the handles are closing)");
    RUN_UNTIL(r.n_released == 1);
    is_int(r.n_released, 1, "released once both handles are closed");
}

static void
test_water_marks(void)
{
    struct rec r;
    int peer;
    static char big[1024 * 1024];
    size_t got;

    open_pair(&r, NULL, &peer);
    memset(big, 'x', sizeof(big));
    ok(xe_stream_write(&r.s, "abc", 3) == 0, "a small write");
    is_int(xe_stream_queued(&r.s), 0, "taken by the socket at once: nothing queued");
    ok(xe_stream_write(&r.s, big, sizeof(big)) == 0,
       "1 MiB to a peer that reads nothing");
    ok(xe_stream_queued(&r.s) > 0 && xe_stream_queued(&r.s) <= sizeof(big),
       "the rest is queued (%zu bytes)", xe_stream_queued(&r.s));
    is_int(r.n_full, 1, "above the high water mark: full");
    ok(xe_stream_above_high(&r.s, 0), "above_high says so");
    is_int(r.n_drained, 0, "not drained yet");
    got = 3 + sizeof(big);
    for (int i = 0; i < 400 && (xe_stream_queued(&r.s) > 0 || got > 0); i++) {
        got -= peer_drain(peer);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    is_int(got, 0, "the peer got every byte");
    is_int(xe_stream_queued(&r.s), 0, "the queue is empty");
    ok(r.n_drained >= 1, "drained came at or below the low water mark");
    is_int(r.n_closed, 0, "the stream stays open");
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    RUN_UNTIL(r.n_released == 1);
    close(peer);
}

static void
test_hard_cap(void)
{
    struct rec r;
    int peer;
    static char big[256 * 1024];
    struct xe_stream_limits small = {1024, 4096, 100 * 1024};

    open_pair(&r, &small, &peer);
    memset(big, 'y', sizeof(big));
    ok(xe_stream_write(&r.s, big, sizeof(big)) < 0, "a write over the hard cap fails");
    is_int(r.n_closed, 1, "the stream closed");
    is_int(r.closed_reason, XE_STREAM_HARD_CAP, "... reason HARD_CAP");
    ok(xe_stream_write(&r.s, "z", 1) == 0 && xe_stream_queued(&r.s) > 0,
       "a closed stream takes no more bytes (a no-op)");
    RUN_UNTIL(r.n_released == 1);
    is_int(r.n_released, 1, "released");
    close(peer);
}

static void
test_cork(void)
{
    struct rec r;
    int peer;
    char buf[64];

    open_pair(&r, NULL, &peer);
    xe_stream_cork(&r.s);
    xe_stream_cork(&r.s);
    xe_stream_write(&r.s, "one ", 4);
    xe_stream_write(&r.s, "two ", 4);
    xe_stream_uncork(&r.s);
    xe_stream_write(&r.s, "three", 5);
    is_int(peer_read(peer, buf, sizeof(buf)), 0,
           "corked (twice, uncorked once): nothing out");
    xe_stream_uncork(&r.s);
    is_int(peer_read(peer, buf, sizeof(buf)), 13, "the last uncork: everything");
    ok(memcmp(buf, "one two three", 13) == 0, "in order, as one write");
    /* an abort while corked: one try-write of what is held */
    xe_stream_cork(&r.s);
    xe_stream_write(&r.s, "last", 4);
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    is_int(peer_read(peer, buf, sizeof(buf)), 4, "abort while corked: the held bytes go");
    RUN_UNTIL(r.n_released == 1);
    close(peer);
}

/* a transform: the peer's bytes upper-cased, ours in brackets */
static int
up_in(struct xe_stream *s, void *x, const char *d, size_t n)
{
    char b[256];

    (*(int *)x)++;
    if (n > sizeof(b))
        return -1;
    for (size_t i = 0; i < n; i++)
        b[i] = (char)(d[i] >= 'a' && d[i] <= 'z' ? d[i] - 32 : d[i]);
    xe_stream_deliver(s, b, n);
    return 0;
}

static int
bracket_out(struct xe_stream *s, void *x, const char *d, size_t n)
{
    (void)x;
    if (n == 1 && d[0] == '!')
        return -1; /* refused */
    if (xe_stream_write_below(s, "[", 1) < 0 || xe_stream_write_below(s, d, n) < 0)
        return -1;
    return xe_stream_write_below(s, "]", 1);
}

static int freed;

static void
xf_free(void *x)
{
    (void)x;
    freed++;
}

static void
test_transform(void)
{
    static const struct xe_stream_transform xf = {up_in, bracket_out, xf_free};
    struct rec r;
    int peer, calls = 0;
    char buf[64];

    open_pair(&r, NULL, &peer);
    xe_stream_set_transform(&r.s, &xf, &calls);
    xe_stream_start(&r.s);
    ok(write(peer, "quiet", 5) == 5, "the peer writes");
    RUN_UNTIL(r.n_data == 5);
    ok(r.n_data == 5 && memcmp(r.data, "QUIET", 5) == 0,
       "in(): the user sees its output");
    xe_stream_write(&r.s, "hi", 2);
    is_int(peer_read(peer, buf, sizeof(buf)), 4, "out(): the peer sees its output");
    ok(memcmp(buf, "[hi]", 4) == 0, "... \"[hi]\"");
    ok(xe_stream_write(&r.s, "!", 1) < 0, "a refused write fails");
    is_int(r.closed_reason, XE_STREAM_TRANSFORM, "... and closes: reason TRANSFORM");
    is_int(freed, 0, "the transform lives until the release");
    RUN_UNTIL(r.n_released == 1);
    is_int(freed, 1, "then it is freed");
    close(peer);
}

static void
test_grace_close(void)
{
    struct rec r;
    int peer;
    static char big[512 * 1024];
    char buf[16];

    /* nothing queued: at once */
    open_pair(&r, NULL, &peer);
    xe_stream_close(&r.s, 5000);
    is_int(r.n_closed, 0, "close with nothing queued: not inside the call");
    uv_run(&loop, UV_RUN_NOWAIT);
    is_int(r.n_closed, 1, "... but on the loop's next turn");
    is_int(r.closed_reason, XE_STREAM_LOCAL, "... reason LOCAL");
    RUN_UNTIL(r.n_released == 1);
    close(peer);

    /* a peer that reads: closed once the queue is out */
    open_pair(&r, NULL, &peer);
    xe_stream_write(&r.s, big, sizeof(big));
    xe_stream_close(&r.s, 2000);
    is_int(r.n_closed, 0, "bytes queued: not closed yet");
    ok(xe_stream_is_closing(&r.s), "but closing");
    for (int i = 0; i < 400 && r.n_closed == 0; i++) {
        peer_drain(peer);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    is_int(r.closed_reason, XE_STREAM_LOCAL, "the queue out: closed, reason LOCAL");
    RUN_UNTIL(r.n_released == 1);
    close(peer);

    /* a peer that reads nothing: the grace time ends it */
    open_pair(&r, NULL, &peer);
    xe_stream_arm(&r.s, 10);
    xe_stream_write(&r.s, big, sizeof(big));
    xe_stream_close(&r.s, 50);
    xe_stream_arm(&r.s, 5000); /* (ignored while closing) */
    RUN_UNTIL(r.n_closed == 1);
    is_int(r.closed_reason, XE_STREAM_GRACE_TIMEOUT, "no reader: reason GRACE_TIMEOUT");
    is_int(r.n_timeout, 0, "the user's timer does not fire while closing");
    RUN_UNTIL(r.n_released == 1);
    close(peer);

    /* half-close: our FIN after our bytes; the peer may still write */
    open_pair(&r, NULL, &peer);
    xe_stream_start(&r.s);
    xe_stream_write(&r.s, "end", 3);
    xe_stream_shutdown(&r.s);
    {
        size_t got = 0;
        ssize_t n = -1;
        for (int i = 0; i < 200 && n != 0; i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            n = read(peer, buf + got, sizeof(buf) - got);
            if (n > 0)
                got += (size_t)n;
            else if (n < 0)
                usleep(5000);
        }
        ok(n == 0 && got == 3 && memcmp(buf, "end", 3) == 0,
           "shutdown: the peer reads our bytes, then EOF");
    }
    ok(write(peer, "more", 4) == 4, "the peer still writes");
    RUN_UNTIL(r.n_data == 4);
    is_int(r.n_data, 4, "and we still read it");
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    RUN_UNTIL(r.n_released == 1);
    close(peer);

    /* the timer */
    open_pair(&r, NULL, &peer);
    xe_stream_arm(&r.s, 10);
    RUN_UNTIL(r.n_timeout == 1);
    is_int(r.n_timeout, 1, "arm: timeout once");
    xe_stream_arm(&r.s, 10);
    xe_stream_disarm(&r.s);
    usleep(30000);
    uv_run(&loop, UV_RUN_NOWAIT);
    is_int(r.n_timeout, 1, "disarm: no timeout");
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    RUN_UNTIL(r.n_released == 1);
    close(peer);
}

/* ---- TLS: two streams, a server and a client ----------------------------- */

static bool
make_cert(const char *domain, char *cert_path, char *key_path, size_t len)
{
    return tap_self_signed(tmpdir, domain, EVP_EC_gen("P-256"), 1, NULL, EVP_sha256(),
                           cert_path, key_path, len);
}

static void
test_tls(void)
{
    char crt[512], key[512], *err = NULL;
    struct xe_tls_cert cert = {0};
    struct xe_tls_ctx *ctx = NULL;
    struct rec a, b;
    int sv[2];
    static char big[200 * 1024];

    if (!make_cert("a.test", crt, key, sizeof(crt))) {
        ok(0, "a certificate");
        return;
    }
    cert.domain = "a.test";
    cert.certificate = crt;
    cert.key = key;
    if (xe_tls_ctx_new(&cert, 1, NULL, &ctx, &err) < 0) {
        ok(0, "a TLS context: %s", err);
        free(err);
        return;
    }
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    xe_stream_init(&a.s, &loop, true, &slab, &lim, &cbs, &a);
    xe_stream_init(&b.s, &loop, true, &slab, &lim, &cbs, &b);
    xe_stream_open(&a.s, sv[0]);
    xe_stream_open(&b.s, sv[1]);
    xe_stream_start(&a.s);
    xe_stream_start(&b.s);
    ok(xe_stream_start_tls(&a.s, xe_tls_new(ctx, "a.test"), false) == 0, "server side");
    ok(xe_stream_start_tls(&b.s, xe_tls_new_client("a.test", NULL), true) == 0,
       "client side (its handshake starts)");
    xe_stream_write(&b.s, "dropped", 7);
    RUN_UNTIL(a.n_tls_up == 1 && b.n_tls_up == 1);
    ok(a.n_tls_up == 1 && b.n_tls_up == 1, "tls_up on both sides");
    memset(big, 'q', sizeof(big));
    xe_stream_write(&b.s, "ping", 4);
    xe_stream_write(&b.s, big, sizeof(big));
    RUN_UNTIL(a.total == 4 + sizeof(big));
    ok(a.total == 4 + sizeof(big) && memcmp(a.data, "ping", 4) == 0,
       "plaintext through TLS (the bytes written during the handshake "
       "are not sent)");
    xe_stream_close(&b.s, 1000); /* close_notify */
    a.close_on_eof = true;
    RUN_UNTIL(a.n_eof == 1);
    is_int(a.eof_reason, XE_STREAM_TLS_CLOSED, "the peer's close_notify: eof TLS_CLOSED");
    RUN_UNTIL(a.n_released == 1 && b.n_released == 1);
    ok(a.n_released == 1 && b.n_released == 1, "both released");
    xe_tls_ctx_free(&ctx);
}

/* ---- the lingering close and the reopen (c2s's client and backend) --------- */

static void
test_linger(void)
{
    struct rec r;
    int peer;
    char buf[16];
    size_t got = 0;
    ssize_t n = -1;

    /* our bytes, our FIN, what the peer still sends dropped, the close on
     * the peer's FIN */
    open_pair(&r, NULL, &peer);
    r.s.linger = true;
    xe_stream_start(&r.s);
    xe_stream_write(&r.s, "bye", 3);
    xe_stream_close(&r.s, 5000);
    for (int i = 0; i < 200 && n != 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        n = read(peer, buf + got, sizeof(buf) - got);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0)
            usleep(5000);
    }
    ok(n == 0 && got == 3 && memcmp(buf, "bye", 3) == 0,
       "linger: the peer reads our bytes, then our FIN");
    ok(write(peer, "junk", 4) == 4, "the peer still writes");
    for (int i = 0; i < 10; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    is_int(r.n_closed, 0, "linger: not closed before the peer's FIN");
    is_int((int)r.n_data, 0, "what a closing peer sends is dropped");
    shutdown(peer, SHUT_WR);
    RUN_UNTIL(r.n_closed == 1);
    is_int(r.n_closed, 1, "the peer's FIN: closed");
    is_int(r.closed_reason, XE_STREAM_LOCAL, "... reason LOCAL");
    is_int(r.n_eof, 0, "... no eof callback while closing");
    RUN_UNTIL(r.n_released == 1);
    close(peer);

    /* a peer that never closes: the grace time ends it */
    open_pair(&r, NULL, &peer);
    r.s.linger = true;
    xe_stream_start(&r.s);
    xe_stream_close(&r.s, 30);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    is_int(r.n_closed, 0, "linger, nothing queued: still waiting for the peer");
    RUN_UNTIL(r.n_closed == 1);
    is_int(r.n_closed, 1, "the grace time ends it");
    RUN_UNTIL(r.n_released == 1);
    close(peer);
}

static int n_reopened, n_connected, connect_status;

static void
on_reopened(struct xe_stream *s, void *ctx)
{
    (void)s;
    (void)ctx;
    n_reopened++;
}

static void
cb_connected(struct xe_stream *s, int status, void *ctx)
{
    (void)s;
    (void)ctx;
    n_connected++;
    connect_status = status;
}

static const struct xe_stream_cb cbs_connect = {
    .connected = cb_connected,
    .data = cb_data,
    .closed = cb_closed,
    .released = cb_released,
};

static void
test_reopen_as(void)
{
    struct rec r;
    int peer, ls;
    static char big[512 * 1024];
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);

    /* a unix socket with bytes queued, reopened as TCP: the queued write
     * is dropped without closing the stream */
    open_pair(&r, NULL, &peer);
    r.s.cb = &cbs_connect;
    xe_stream_write(&r.s, big, sizeof(big));
    ok(xe_stream_queued(&r.s) > 0, "bytes queued on the unix socket");
    xe_stream_reopen_as(&r.s, false, on_reopened);
    RUN_UNTIL(n_reopened == 1);
    is_int(n_reopened, 1, "reopen_as: reopened once");
    is_int(r.n_closed, 0, "... not closed (the canceled write is no error)");
    ok(!r.s.is_pipe && xe_stream_queued(&r.s) == 0, "... a TCP socket, nothing queued");
    close(peer);
    ls = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(ls, 4) < 0 || getsockname(ls, (struct sockaddr *)&sin, &sl) < 0)
        abort();
    ok(xe_stream_connect_tcp(&r.s, (struct sockaddr *)&sin) == 0, "connect over TCP");
    RUN_UNTIL(n_connected == 1);
    ok(n_connected == 1 && connect_status == 0, "... connected");
    ok(xe_stream_write(&r.s, "hi", 2) == 0, "... and writes");
    xe_stream_abort(&r.s, XE_STREAM_LOCAL, 0);
    RUN_UNTIL(r.n_released == 1);
    is_int(r.n_released, 1, "released once");
    close(ls);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN); /* (as the daemon: a write to a closed peer fails) */
    tmpdir = tap_mkdtemp("stream-test");
    if (tmpdir == NULL)
        return 1;
    uv_loop_init(&loop);
    test_read_and_eof();
    test_water_marks();
    test_hard_cap();
    test_cork();
    test_transform();
    test_grace_close();
    test_linger();
    test_reopen_as();
    test_tls();
    uv_run(&loop, UV_RUN_NOWAIT);
    is_int(uv_loop_close(&loop), 0, "every handle closed (the loop closes)");
    rm_rf(tmpdir);
    return tap_done();
}
