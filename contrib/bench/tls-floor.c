/* tls-floor: the crypto floor of a login, measured with OpenSSL alone.
 *
 *   tls-floor CERT KEY [HANDSHAKES [SESSIONS [full|resume]]]
 *
 * Runs HANDSHAKES full TLS 1.3 handshakes in memory (no sockets) between a
 * client and a server using CERT/KEY (the benchmark's own certificate) and
 * the group X25519, no session resumption, and reports the server side's
 * CPU time per handshake (thread CPU clock around the server's calls only)
 * and the whole handshake's (both sides). Then it keeps SESSIONS server SSL
 * objects (with their memory BIOs) alive after their handshakes, the client
 * side freed, and reports the resident memory they add per session: a bare
 * OpenSSL server session, what an idle TLS session costs at the least.
 *
 * resume: the server issues one session ticket per handshake (stateless, as
 * xedge does), the client keeps the ticket of a first full handshake, and
 * every measured handshake is a TLS 1.3 PSK resumption with the ticket the
 * one before it got (as a reconnecting client does; psk_dhe_ke,
 * OpenSSL's default: an X25519 exchange too, no certificate, no signature,
 * a fresh ticket sealed): the server side of a client's reconnect, the
 * floor of a resumed login (issue 18). FLOOR_RESUMED counts the handshakes
 * the server reports as resumed; all of them, or the run fails.
 *
 * Output: KEY=value lines: FLOOR_HANDSHAKES, FLOOR_SERVER_US_PER_HANDSHAKE,
 * FLOOR_TOTAL_US_PER_HANDSHAKE, FLOOR_SESSIONS, FLOOR_KIB_PER_SESSION,
 * FLOOR_PROTOCOL, FLOOR_GROUP, FLOOR_MODE, FLOOR_RESUMED. Exit status 0, or 1
 * on an error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_HANDSHAKES 1000000
#define MAX_SESSIONS 200000

struct side {
    SSL *ssl;
    BIO *in, *out; /* in: bytes to read; out: bytes written */
};

static double
cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6)) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static int
side_new(struct side *s, SSL_CTX *ctx, int server)
{
    s->ssl = SSL_new(ctx);
    s->in = BIO_new(BIO_s_mem());
    s->out = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->in || !s->out)
        return -1;
    SSL_set_bio(s->ssl, s->in, s->out);
    if (server)
        SSL_set_accept_state(s->ssl);
    else
        SSL_set_connect_state(s->ssl);
    return 0;
}

/* Move what `from` wrote to what `to` reads. */
static void
shuttle(struct side *from, struct side *to)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from->out, buf, sizeof(buf))) > 0)
        BIO_write(to->in, buf, n);
}

/* One full handshake; adds the server's CPU time to *srv_ns. */
static int
handshake(struct side *c, struct side *s, double *srv_ns)
{
    int cdone = 0, sdone = 0, r;
    for (int round = 0; round < 20 && !(cdone && sdone); round++) {
        if (!cdone) {
            r = SSL_do_handshake(c->ssl);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
                return -1;
        }
        shuttle(c, s);
        if (!sdone) {
            double t0 = cpu_ns();
            r = SSL_do_handshake(s->ssl);
            *srv_ns += cpu_ns() - t0;
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
                return -1;
        }
        shuttle(s, c);
    }
    return cdone && sdone ? 0 : -1;
}

int
main(int argc, char **argv)
{
    SSL_CTX *sctx, *cctx;
    long handshakes = 2000, sessions = 2000;
    double srv_ns = 0, t0, total_ns;
    struct side *held;
    long rss0, rss1;
    char proto[32] = "?";
    int resume = 0;
    long resumed = 0;
    SSL_SESSION *ticket = NULL;

    if (argc < 3 || argc > 6 ||
        (argc > 5 && strcmp(argv[5], "full") && strcmp(argv[5], "resume"))) {
        fprintf(stderr,
                "usage: tls-floor CERT KEY [HANDSHAKES [SESSIONS [full|resume]]]\n");
        return 2;
    }
    resume = argc > 5 && !strcmp(argv[5], "resume");
    if (argc > 3)
        handshakes = strtol(argv[3], NULL, 10);
    if (argc > 4)
        sessions = strtol(argv[4], NULL, 10);
    if (handshakes < 1 || handshakes > MAX_HANDSHAKES || sessions < 1 ||
        sessions > MAX_SESSIONS) {
        fprintf(stderr, "tls-floor: HANDSHAKES 1..%d, SESSIONS 1..%d\n", MAX_HANDSHAKES,
                MAX_SESSIONS);
        return 2;
    }
    sctx = SSL_CTX_new(TLS_server_method());
    cctx = SSL_CTX_new(TLS_client_method());
    if (!sctx || !cctx || SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set1_groups_list(sctx, "X25519");
    SSL_CTX_set1_groups_list(cctx, "X25519");
    /* resume: stateless tickets; the server's cache stays empty (no ID cache) */
    SSL_CTX_set_session_cache_mode(sctx, resume ? SSL_SESS_CACHE_SERVER |
                                                      SSL_SESS_CACHE_NO_INTERNAL
                                                : SSL_SESS_CACHE_OFF);
    /* resume: the client's cache on, or OpenSSL 3.0 drops the ticket it gets */
    SSL_CTX_set_session_cache_mode(cctx,
                                   resume ? SSL_SESS_CACHE_CLIENT : SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(sctx, resume ? 1 : 0);
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    if (resume) { /* the ticket of one full handshake, kept by the client */
        struct side c, s;
        double ignore = 0;
        char b[1];
        if (side_new(&c, cctx, 0) < 0 || side_new(&s, sctx, 1) < 0 ||
            handshake(&c, &s, &ignore) < 0) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        shuttle(&s, &c);
        (void)SSL_read(c.ssl, b, sizeof(b)); /* takes the NewSessionTicket in */
        ticket = SSL_get1_session(c.ssl);
        if (!ticket || !SSL_SESSION_is_resumable(ticket)) {
            fprintf(stderr, "tls-floor: no resumable session ticket\n");
            return 1;
        }
        SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c.ssl);
        SSL_free(s.ssl);
    }

    t0 = cpu_ns();
    for (long i = 0; i < handshakes; i++) {
        struct side c, s;
        if (side_new(&c, cctx, 0) < 0 || side_new(&s, sctx, 1) < 0 ||
            (ticket && SSL_set_session(c.ssl, ticket) != 1) ||
            handshake(&c, &s, &srv_ns) < 0) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        resumed += SSL_session_reused(s.ssl) == 1;
        if (ticket) { /* the next reconnect uses the ticket this one got, as a client does
                       */
            char b[1];
            shuttle(&s, &c);
            (void)SSL_read(c.ssl, b, sizeof(b));
            SSL_SESSION_free(ticket);
            ticket = SSL_get1_session(c.ssl);
        }
        if (i == 0)
            snprintf(proto, sizeof(proto), "%s", SSL_get_version(s.ssl));
        /* closed cleanly: SSL_free would otherwise mark the ticket's session
         * not resumable (ssl_clear_bad_session) */
        SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c.ssl);
        SSL_free(s.ssl);
    }
    total_ns = cpu_ns() - t0;

    held = calloc((size_t)sessions, sizeof(*held));
    if (!held)
        return 1;
    /* warm the allocator with one session, then measure */
    rss0 = rss_kib();
    for (long i = 0; i < sessions; i++) {
        struct side c;
        double ignore = 0;
        if (side_new(&c, cctx, 0) < 0 || side_new(&held[i], sctx, 1) < 0 ||
            handshake(&c, &held[i], &ignore) < 0) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_free(c.ssl);
    }
    rss1 = rss_kib();

    printf("FLOOR_PROTOCOL=%s\n", proto);
    printf("FLOOR_GROUP=X25519\n");
    printf("FLOOR_HANDSHAKES=%ld\n", handshakes);
    printf("FLOOR_SERVER_US_PER_HANDSHAKE=%.1f\n", srv_ns / 1e3 / (double)handshakes);
    printf("FLOOR_TOTAL_US_PER_HANDSHAKE=%.1f\n", total_ns / 1e3 / (double)handshakes);
    printf("FLOOR_SESSIONS=%ld\n", sessions);
    printf("FLOOR_KIB_PER_SESSION=%.2f\n", (double)(rss1 - rss0) / (double)sessions);
    printf("FLOOR_MODE=%s\n", resume ? "resume" : "full");
    printf("FLOOR_RESUMED=%ld\n", resumed);
    if (resume && resumed != handshakes) {
        fprintf(stderr, "tls-floor: %ld of %ld handshakes resumed\n", resumed,
                handshakes);
        return 1;
    }

    for (long i = 0; i < sessions; i++)
        SSL_free(held[i].ssl);
    free(held);
    SSL_SESSION_free(ticket);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
