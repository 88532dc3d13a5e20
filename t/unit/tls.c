/* Unit tests of TLS on memory BIOs (src/core/tls.h): two in-memory endpoints,
 * certificates for a.test and b.test generated at test time, SNI and
 * STARTTLS certificate selection, ALPN, versions, application data, errors
 * and close_notify. No sockets. TAP output. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "xelimits.h"
#include "tap.h"
#include "testcert.h"

static const char *tmpdir;

static bool make_cert_san(const char *domain, const char *sans, char *cert_path,
                          char *key_path, size_t len);

/* A self-signed EC P-256 certificate with CN and SAN = domain. */
static bool
make_cert(const char *domain, char *cert_path, char *key_path, size_t len)
{
    char san[512];

    snprintf(san, sizeof(san), "DNS:%s", domain);
    return make_cert_san(domain, san, cert_path, key_path, len);
}

/* ... with CN = domain and the subjectAltName SANS (OpenSSL's syntax). */
static bool
make_cert_san(const char *domain, const char *sans, char *cert_path, char *key_path,
              size_t len)
{
    return tap_self_signed(tmpdir, domain, EVP_EC_gen("P-256"), 1, sans, EVP_sha256(),
                           cert_path, key_path, len);
}

/* ---- endpoints: an xe_tls, or a raw OpenSSL client on memory BIOs ------------ */

struct ep {
    struct xe_tls *x;
    SSL *ssl;
    BIO *rb, *wb;
};

static struct ep
ep_xe(struct xe_tls *t)
{
    struct ep e = {t, NULL, NULL, NULL};
    return e;
}

/* A raw client; min/max 0 for the defaults; alpn in wire format or NULL. */
static struct ep
ep_raw(const char *sni, int min_v, int max_v, const unsigned char *alpn, size_t alpn_len)
{
    struct ep e = {NULL, NULL, NULL, NULL};
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());

    if (c == NULL)
        return e;
    if (min_v && min_v < TLS1_2_VERSION) {
        SSL_CTX_set_security_level(c, 0);
        SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
    }
    if (min_v)
        SSL_CTX_set_min_proto_version(c, min_v);
    if (max_v)
        SSL_CTX_set_max_proto_version(c, max_v);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    e.ssl = SSL_new(c);
    SSL_CTX_free(c); /* the SSL keeps a reference */
    e.rb = BIO_new(BIO_s_mem());
    e.wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(e.rb, -1);
    SSL_set_bio(e.ssl, e.rb, e.wb);
    if (sni)
        SSL_set_tlsext_host_name(e.ssl, sni);
    if (alpn)
        SSL_set_alpn_protos(e.ssl, alpn, (unsigned)alpn_len);
    SSL_set_connect_state(e.ssl);
    return e;
}

static void
ep_free(struct ep *e)
{
    xe_tls_free(&e->x);
    if (e->ssl)
        SSL_free(e->ssl);
    e->ssl = NULL;
}

/* XE_TLS_DONE / _WANT / _ERROR */
static int
ep_handshake(struct ep *e)
{
    int r, err;

    if (e->x)
        return xe_tls_handshake(e->x);
    r = SSL_do_handshake(e->ssl);
    if (r == 1)
        return XE_TLS_DONE;
    err = SSL_get_error(e->ssl, r);
    ERR_clear_error();
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? XE_TLS_WANT
                                                                     : XE_TLS_ERROR;
}

/* Move all pending ciphertext from a to b; returns the bytes moved. */
static size_t
move(struct ep *a, struct ep *b)
{
    unsigned char buf[4096];
    size_t total = 0;

    for (;;) {
        size_t n;
        if (a->x) {
            size_t pend = xe_tls_out_pending(a->x);
            n = xe_tls_out_take(a->x, buf, sizeof(buf));
            if (pend > 0 && n == 0)
                printf("# out_pending %zu but out_take 0\n", pend);
        } else {
            int r = BIO_read(a->wb, buf, sizeof(buf));
            n = r > 0 ? (size_t)r : 0;
        }
        if (n == 0)
            break;
        total += n;
        if (b->x)
            xe_tls_feed(b->x, buf, n);
        else
            BIO_write(b->rb, buf, (int)n);
    }
    return total;
}

/* Run both handshakes; *cr, *sr: the final results. */
static void
pump_handshake(struct ep *c, struct ep *s, int *cr, int *sr)
{
    *cr = *sr = XE_TLS_WANT;
    for (int i = 0; i < 50; i++) {
        if (*cr == XE_TLS_WANT)
            *cr = ep_handshake(c);
        move(c, s);
        if (*sr == XE_TLS_WANT)
            *sr = ep_handshake(s);
        move(s, c);
        if ((*cr != XE_TLS_WANT && *sr != XE_TLS_WANT) ||
            (*cr == XE_TLS_ERROR || *sr == XE_TLS_ERROR)) {
            /* let the alert reach the other side */
            if (*cr == XE_TLS_WANT)
                *cr = ep_handshake(c);
            if (*sr == XE_TLS_WANT)
                *sr = ep_handshake(s);
            if (*cr != XE_TLS_WANT && *sr != XE_TLS_WANT)
                break;
        }
    }
    /* in TLS 1.3 the server's session tickets follow the handshake */
    move(s, c);
}

static char *
peer_cn(SSL *ssl, char *buf, size_t len)
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    GENERAL_NAMES *sans;
    int got = 0;

    buf[0] = '\0';
    if (peer == NULL)
        return buf;
    sans = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            snprintf(buf, len, "%s", (const char *)ASN1_STRING_get0_data(g->d.dNSName));
            got = 1;
            break;
        }
    }
    GENERAL_NAMES_free(sans);
    if (!got)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf,
                                  (int)len);
    X509_free(peer);
    return buf;
}

static struct xe_tls_ctx *ctx;
static const unsigned char alpn_xmpp[] = "\x0bxmpp-client";
static const unsigned char alpn_h2[] = "\x02h2";
static const unsigned char alpn_both[] = "\x02h2\x0bxmpp-client";

/* ---- tests ------------------------------------------------------------------------ */

static void
test_basic(void)
{
    struct ep c = ep_xe(xe_tls_new_client("a.test", "xmpp-client"));
    struct ep s = ep_xe(xe_tls_new(ctx, NULL));
    int cr, sr;
    char buf[64];

    ok(c.x != NULL && s.x != NULL, "client and server made");
    if (!c.x || !s.x)
        return;
    is_int(xe_tls_handshake(s.x), XE_TLS_WANT, "server: nothing yet -> WANT");
    is_int(xe_tls_out_pending(s.x), 0, "server: nothing to send before the ClientHello");
    pump_handshake(&c, &s, &cr, &sr);
    is_int(cr, XE_TLS_DONE, "client handshake DONE");
    is_int(sr, XE_TLS_DONE, "server handshake DONE");
    is_str(xe_tls_version(s.x), "TLSv1.3", "server: TLSv1.3");
    is_str(xe_tls_version(c.x), "TLSv1.3", "client: TLSv1.3");
    ok(xe_tls_cipher(s.x) && strncmp(xe_tls_cipher(s.x), "TLS_", 4) == 0,
       "server: a TLS 1.3 cipher suite (%s)", xe_tls_cipher(s.x));
    is_str(xe_tls_sni(s.x), "a.test", "server sees SNI a.test");
    is_str(xe_tls_alpn(s.x, buf, sizeof(buf)), "xmpp-client", "server: ALPN xmpp-client");
    is_str(xe_tls_alpn(c.x, buf, sizeof(buf)), "xmpp-client", "client: ALPN xmpp-client");
    ok(xe_tls_alpn(s.x, buf, 5) == NULL, "xe_tls_alpn: too small a buffer gives NULL");
    is_int(xe_tls_handshake(s.x), XE_TLS_DONE, "handshake again after done: DONE");
    is_int(xe_tls_read(s.x, buf, sizeof(buf)), XE_TLS_WANT, "server: no data yet: WANT");
    ep_free(&c);
    ep_free(&s);
}

static void
expect_cert(const char *what, const char *sni, const char *starttls_domain,
            const char *want_cert, const char *want_sni)
{
    struct ep c = ep_raw(sni, 0, 0, alpn_xmpp, sizeof(alpn_xmpp) - 1);
    struct ep s = ep_xe(xe_tls_new(ctx, starttls_domain));
    int cr, sr;
    char cn[256];

    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "%s: handshake done", what);
    is_str(peer_cn(c.ssl, cn, sizeof(cn)), want_cert, "%s: certificate of %s", what,
           want_cert);
    if (want_sni)
        is_str(xe_tls_sni(s.x), want_sni, "%s: xe_tls_sni", what);
    else
        ok(xe_tls_sni(s.x) == NULL, "%s: no SNI", what);
    ep_free(&c);
    ep_free(&s);
}

static void
test_cert_selection(void)
{
    expect_cert("SNI b.test", "b.test", NULL, "b.test", "b.test");
    expect_cert("SNI a.test", "a.test", NULL, "a.test", "a.test");
    expect_cert("SNI B.TEST (case)", "B.TEST", NULL, "b.test", "B.TEST");
    expect_cert("no SNI, Direct TLS: default", NULL, NULL, "a.test", NULL);
    expect_cert("unknown SNI: default", "c.test", NULL, "a.test", "c.test");
    expect_cert("STARTTLS to=b.test, no SNI", NULL, "b.test", "b.test", NULL);
    expect_cert("STARTTLS to=a.test, no SNI", NULL, "a.test", "a.test", NULL);
    expect_cert("STARTTLS to=unknown: default", NULL, "zzz.test", "a.test", NULL);
}

static void
test_versions(void)
{
    int cr, sr;

    {
        struct ep c =
            ep_raw("a.test", 0, TLS1_2_VERSION, alpn_xmpp, sizeof(alpn_xmpp) - 1);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        char buf[64];
        pump_handshake(&c, &s, &cr, &sr);
        ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "TLS 1.2 client: handshake done");
        is_str(xe_tls_version(s.x), "TLSv1.2", "TLS 1.2 client: server reports TLSv1.2");
        is_str(xe_tls_alpn(s.x, buf, sizeof(buf)), "xmpp-client", "TLS 1.2: ALPN");
        /* and data flows */
        if (cr == XE_TLS_DONE && sr == XE_TLS_DONE) {
            int n;
            ok(xe_tls_write(s.x, "hello 1.2", 9) == 0, "TLS 1.2: server writes");
            move(&s, &c);
            n = SSL_read(c.ssl, buf, sizeof(buf));
            ok(n == 9 && memcmp(buf, "hello 1.2", 9) == 0, "TLS 1.2: client reads it");
        }
        ep_free(&c);
        ep_free(&s);
    }
    {
        /* renegotiation is off: a TLS 1.2 client asking for it gets no new
         * handshake (at most an alert), and the session itself goes on */
        struct ep c =
            ep_raw("a.test", 0, TLS1_2_VERSION, alpn_xmpp, sizeof(alpn_xmpp) - 1);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        char buf[64];
        size_t answer;
        int r;

        pump_handshake(&c, &s, &cr, &sr);
        ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "renegotiation: TLS 1.2 session up");
        ok(SSL_renegotiate(c.ssl) == 1, "renegotiation: the client asks for it");
        SSL_do_handshake(c.ssl);
        ERR_clear_error();
        ok(move(&c, &s) > 0, "renegotiation: the client's ClientHello is sent");
        r = xe_tls_read(s.x, buf, sizeof(buf));
        ok(r == XE_TLS_WANT, "renegotiation: the server reads it as nothing (%d)", r);
        answer = move(&s, &c);
        ok(answer < 100, "renegotiation: no ServerHello in answer (%zu bytes: an alert)",
           answer);
        r = SSL_do_handshake(c.ssl);
        ERR_clear_error();
        ok(r != 1 || SSL_renegotiate_pending(c.ssl) == 1,
           "renegotiation: the client's new handshake does not complete");
        ok(xe_tls_write(s.x, "after", 5) == 0, "renegotiation: the server still writes");
        ep_free(&c);
        ep_free(&s);
    }
    {
        struct ep c = ep_raw("a.test", TLS1_1_VERSION, TLS1_1_VERSION, alpn_xmpp,
                             sizeof(alpn_xmpp) - 1);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        pump_handshake(&c, &s, &cr, &sr);
        is_int(sr, XE_TLS_ERROR, "TLS 1.1 client: server refuses (ERROR)");
        ok(cr != XE_TLS_DONE, "TLS 1.1 client: no handshake");
        ok(xe_tls_error(s.x) != NULL && *xe_tls_error(s.x), "TLS 1.1: an error text (%s)",
           xe_tls_error(s.x));
        ep_free(&c);
        ep_free(&s);
    }
    {
        struct ep c = ep_raw("a.test", TLS1_VERSION, TLS1_VERSION, alpn_xmpp,
                             sizeof(alpn_xmpp) - 1);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        pump_handshake(&c, &s, &cr, &sr);
        is_int(sr, XE_TLS_ERROR, "TLS 1.0 client: server refuses (ERROR)");
        ep_free(&c);
        ep_free(&s);
    }
}

static void
test_alpn(void)
{
    int cr, sr;
    char buf[64];

    {
        struct ep c = ep_raw("a.test", 0, 0, alpn_h2, sizeof(alpn_h2) - 1);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        pump_handshake(&c, &s, &cr, &sr);
        is_int(sr, XE_TLS_ERROR, "client offering only h2: server handshake fails");
        ok(cr != XE_TLS_DONE, "client offering only h2: client handshake fails");
        ep_free(&c);
        ep_free(&s);
    }
    {
        struct ep c = ep_raw("a.test", 0, 0, alpn_both, sizeof(alpn_both) - 1);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        const unsigned char *p = NULL;
        unsigned l = 0;
        pump_handshake(&c, &s, &cr, &sr);
        ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE,
           "client offering h2 and xmpp-client: ok");
        SSL_get0_alpn_selected(c.ssl, &p, &l);
        ok(l == 11 && memcmp(p, "xmpp-client", 11) == 0,
           "client offering h2 and xmpp-client: xmpp-client selected");
        ep_free(&c);
        ep_free(&s);
    }
    {
        struct ep c = ep_raw("a.test", 0, 0, NULL, 0);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        pump_handshake(&c, &s, &cr, &sr);
        ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "client without ALPN: ok");
        ok(xe_tls_alpn(s.x, buf, sizeof(buf)) == NULL,
           "client without ALPN: none selected");
        ep_free(&c);
        ep_free(&s);
    }
}

/* Send len bytes from a to b through xe_tls, read them all on b. */
static bool
transfer(struct ep *a, struct ep *b, const unsigned char *data, size_t len)
{
    unsigned char *got = malloc(len ? len : 1);
    size_t have = 0;
    bool ok_;

    if (xe_tls_write(a->x, data, len) != 0) {
        free(got);
        return false;
    }
    for (int guard = 0; have < len && guard < 100000; guard++) {
        int n;
        move(a, b);
        n = xe_tls_read(b->x, got + have, len - have);
        if (n > 0)
            have += (size_t)n;
        else if (n != XE_TLS_WANT)
            break;
        else if (xe_tls_out_pending(a->x) == 0)
            break;
    }
    ok_ = have == len && memcmp(got, data, len) == 0;
    if (!ok_)
        printf("# transferred %zu of %zu\n", have, len);
    free(got);
    return ok_;
}

static void
test_data(void)
{
    struct ep c = ep_xe(xe_tls_new_client("b.test", "xmpp-client"));
    struct ep s = ep_xe(xe_tls_new(ctx, NULL));
    int cr, sr;
    const size_t big = 1024 * 1024;
    unsigned char *data = malloc(big);
    unsigned char buf[16];

    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)((i * 2654435761u) >> 13);
    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "data: handshake done");
    ok(transfer(&c, &s, (const unsigned char *)"<stream:stream>", 15),
       "client -> server: small");
    ok(transfer(&s, &c, (const unsigned char *)"<stream:features/>", 18),
       "server -> client: small");
    ok(transfer(&c, &s, data, big), "client -> server: 1 MiB byte-exact");
    ok(transfer(&s, &c, data, big), "server -> client: 1 MiB byte-exact");
    ok(transfer(&c, &s, (const unsigned char *)"\0\x01\xff", 3), "binary bytes with NUL");
    is_int(xe_tls_read(s.x, buf, sizeof(buf)), XE_TLS_WANT, "nothing more: WANT");

    /* close_notify */
    xe_tls_shutdown(c.x);
    ok(xe_tls_out_pending(c.x) > 0, "shutdown queues a close_notify");
    move(&c, &s);
    is_int(xe_tls_read(s.x, buf, sizeof(buf)), XE_TLS_CLOSED, "close_notify -> CLOSED");
    ep_free(&c);
    ep_free(&s);

    /* garbage after the handshake */
    c = ep_xe(xe_tls_new_client("a.test", "xmpp-client"));
    s = ep_xe(xe_tls_new(ctx, NULL));
    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "handshake for the garbage test");
    {
        /* an application-data record with garbage inside */
        unsigned char rec[64] = {0x17, 0x03, 0x03, 0x00, 59};
        for (int i = 5; i < 64; i++)
            rec[i] = (unsigned char)(i * 37);
        xe_tls_feed(s.x, rec, sizeof(rec));
        is_int(xe_tls_read(s.x, buf, sizeof(buf)), XE_TLS_ERROR,
               "garbage record after the handshake -> ERROR");
    }
    ep_free(&c);
    ep_free(&s);
    free(data);
}

/* The memory BIOs' capacity is given back (xe_tls_release_bios) and the
 * session goes on through the fresh BIOs. */
static void
test_bios(void)
{
    struct ep c = ep_xe(xe_tls_new_client("a.test", "xmpp-client"));
    struct ep s = ep_xe(xe_tls_new(ctx, NULL));
    const size_t big = 64 * 1024;
    unsigned char *data = malloc(big), buf[16];
    size_t cap, small;
    int cr, sr;

    memset(data, 'x', big);
    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "bios: handshake done");
    cap = xe_tls_bio_capacity(s.x);
    ok(cap > 500, "bios: the handshake left %zu bytes of capacity in the server's BIOs",
       cap);
    xe_tls_release_bios(s.x, big);
    ok(xe_tls_bio_capacity(s.x) == cap, "bios: below keep, nothing is replaced");
    xe_tls_release_bios(s.x, 0);
    ok(xe_tls_bio_capacity(s.x) == 0, "bios: keep 0 gives all of it back");
    ok(transfer(&c, &s, (const unsigned char *)"<message/>", 10),
       "bios: client -> server through the fresh read BIO");
    ok(transfer(&s, &c, (const unsigned char *)"<message/>", 10),
       "bios: server -> client through the fresh write BIO");
    is_int(xe_tls_read(s.x, buf, sizeof(buf)), XE_TLS_WANT,
           "bios: the fresh read BIO, empty, means WANT (not EOF)");
    small = xe_tls_bio_capacity(s.x);
    ok(small > 0 && small <= XE_TLS_BIO_KEEP, "bios: a stanza's worth of capacity (%zu)",
       small);
    xe_tls_release_bios(s.x, XE_TLS_BIO_KEEP);
    ok(xe_tls_bio_capacity(s.x) == small,
       "bios: up to XE_TLS_BIO_KEEP is kept (no new BIO per stanza)");
    ok(transfer(&s, &c, data, big) && transfer(&c, &s, data, big),
       "bios: 64 KiB each way");
    ok(xe_tls_bio_capacity(s.x) > big, "bios: ... which grew the BIOs (%zu)",
       xe_tls_bio_capacity(s.x));
    xe_tls_release_bios(s.x, XE_TLS_BIO_KEEP);
    ok(xe_tls_bio_capacity(s.x) == 0, "bios: given back once empty");
    /* a BIO that holds data is never replaced */
    ok(xe_tls_write(s.x, "<presence/>", 11) == 0,
       "bios: a record waits in the write BIO");
    cap = xe_tls_out_pending(s.x);
    xe_tls_release_bios(s.x, 0);
    ok(xe_tls_out_pending(s.x) == cap && cap > 0, "bios: a BIO with data in it is kept");
    move(&s, &c);
    {
        unsigned char got[16];
        int n = xe_tls_read(c.x, got, sizeof(got));
        ok(n == 11 && memcmp(got, "<presence/>", 11) == 0,
           "bios: ... and its data arrives");
    }
    ep_free(&c);
    ep_free(&s);
    free(data);
}

/* Every connection (before authentication too, issue 13) gives back a
 * large read's or write's BIO capacity by itself once the BIO is empty: no
 * xe_tls_release_bios needed; small traffic keeps its BIOs. */
static void
test_bios_auto(void)
{
    struct ep c = ep_xe(xe_tls_new_client("a.test", "xmpp-client"));
    struct ep s = ep_xe(xe_tls_new(ctx, NULL));
    const size_t elem = 15 * 1024, big = 64 * 1024;
    unsigned char *data = malloc(big), *got = malloc(elem), rec[2 * 16384], buf[16];
    size_t cap, n, have = 0;
    int cr, sr, r = 0;

    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)('a' + i % 26);
    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "bios auto: handshake done");
    ok(xe_tls_bio_capacity(s.x) <= 2 * XE_TLS_BIO_KEEP,
       "bios auto: after the handshake the server's BIOs hold %zu",
       xe_tls_bio_capacity(s.x));
    /* a 15 KiB element in one record, in one piece */
    ok(transfer(&c, &s, data, elem), "bios auto: 15 KiB client -> server");
    cap = xe_tls_bio_capacity(s.x);
    is_int(xe_tls_read(s.x, buf, sizeof(buf)), XE_TLS_WANT, "bios auto: then WANT");
    ok(xe_tls_bio_capacity(s.x) <= XE_TLS_BIO_KEEP,
       "bios auto: read to WANT, the read BIO is given back (%zu -> %zu)", cap,
       xe_tls_bio_capacity(s.x));
    /* 64 KiB server -> client: the write BIO grows, and is given back when taken */
    ok(xe_tls_write(s.x, data, big) == 0 && xe_tls_out_pending(s.x) > big,
       "bios auto: 64 KiB waits in the write BIO");
    cap = xe_tls_bio_capacity(s.x);
    move(&s, &c);
    ok(xe_tls_out_pending(s.x) == 0 && xe_tls_bio_capacity(s.x) <= XE_TLS_BIO_KEEP,
       "bios auto: all taken, the write BIO is given back (%zu -> %zu)", cap,
       xe_tls_bio_capacity(s.x));
    while (have < big && (r = xe_tls_read(c.x, got, elem)) > 0)
        have += (size_t)r;
    ok(have == big, "bios auto: ... and the client read all of it (%zu)", have);
    /* small stanzas: the same BIOs, no new one per stanza */
    ok(transfer(&c, &s, (const unsigned char *)"<presence/>", 11) &&
           xe_tls_read(s.x, buf, sizeof(buf)) == XE_TLS_WANT,
       "bios auto: a small stanza");
    cap = xe_tls_bio_capacity(s.x);
    ok(transfer(&c, &s, (const unsigned char *)"<presence/>", 11) &&
           xe_tls_read(s.x, buf, sizeof(buf)) == XE_TLS_WANT &&
           xe_tls_bio_capacity(s.x) == cap && cap > 0,
       "bios auto: another keeps the BIOs as they were (%zu)", cap);
    /* 15 KiB, its record fed byte by byte */
    ok(xe_tls_write(c.x, data, elem) == 0, "bios auto: 15 KiB record from the client");
    n = xe_tls_out_take(c.x, rec, sizeof(rec));
    have = 0;
    for (size_t i = 0; i < n; i++) {
        xe_tls_feed(s.x, rec + i, 1);
        while ((r = xe_tls_read(s.x, got + have, elem - have)) > 0)
            have += (size_t)r;
        if (r != XE_TLS_WANT || xe_tls_bio_capacity(s.x) > 2 * XE_TLS_BIO_KEEP)
            break;
    }
    ok(have == elem && memcmp(got, data, elem) == 0,
       "bios auto: byte by byte, the 15 KiB arrive intact (%zu)", have);
    ok(xe_tls_bio_capacity(s.x) <= 2 * XE_TLS_BIO_KEEP,
       "bios auto: ... and the BIOs stayed small (%zu)", xe_tls_bio_capacity(s.x));
    ep_free(&c);
    ep_free(&s);
    free(data);
    free(got);
}

static void
test_garbage(void)
{
    struct ep s = ep_xe(xe_tls_new(ctx, NULL));
    static const char http[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    static const char xml[] = "<?xml version='1.0'?><stream:stream to='a.test'>";

    ok(xe_tls_feed(s.x, http, sizeof(http) - 1) == 0, "feed accepts bytes");
    is_int(xe_tls_handshake(s.x), XE_TLS_ERROR, "HTTP request as ClientHello -> ERROR");
    ok(*xe_tls_error(s.x) != '\0', "error text: %s", xe_tls_error(s.x));
    ep_free(&s);

    s = ep_xe(xe_tls_new(ctx, NULL));
    xe_tls_feed(s.x, xml, sizeof(xml) - 1);
    is_int(xe_tls_handshake(s.x), XE_TLS_ERROR, "plain XMPP on a TLS port -> ERROR");
    ep_free(&s);

    /* a handshake record header followed by garbage */
    s = ep_xe(xe_tls_new(ctx, NULL));
    {
        unsigned char rec[300] = {0x16, 0x03, 0x01, 0x01, 0x27};
        for (int i = 5; i < 300; i++)
            rec[i] = (unsigned char)(i * 91 + 7);
        xe_tls_feed(s.x, rec, sizeof(rec));
        is_int(xe_tls_handshake(s.x), XE_TLS_ERROR, "garbage ClientHello -> ERROR");
    }
    ep_free(&s);

    /* a truncated ClientHello is not an error yet: WANT */
    {
        struct ep c = ep_xe(xe_tls_new_client("a.test", "xmpp-client"));
        unsigned char buf[8192];
        size_t n;
        s = ep_xe(xe_tls_new(ctx, NULL));
        xe_tls_handshake(c.x);
        n = xe_tls_out_take(c.x, buf, sizeof(buf));
        ok(n > 10, "ClientHello produced");
        xe_tls_feed(s.x, buf, n / 2);
        is_int(xe_tls_handshake(s.x), XE_TLS_WANT, "half a ClientHello -> WANT");
        xe_tls_feed(s.x, buf + n / 2, n - n / 2);
        is_int(xe_tls_handshake(s.x), XE_TLS_WANT,
               "whole ClientHello -> WANT (for Finished)");
        ok(xe_tls_out_pending(s.x) > 0, "server answered");
        ep_free(&c);
        ep_free(&s);
    }
}

static void
test_ctx_errors(void)
{
    struct xe_tls_ctx *c = NULL;
    char *err = NULL;
    char ca[4096], ka[4096], cb[4096], kb[4096];
    struct xe_tls_cert bad[1];

    snprintf(ca, sizeof(ca), "%s/a.test.crt", tmpdir);
    snprintf(ka, sizeof(ka), "%s/a.test.key", tmpdir);
    snprintf(cb, sizeof(cb), "%s/b.test.crt", tmpdir);
    snprintf(kb, sizeof(kb), "%s/b.test.key", tmpdir);
    bad[0] = (struct xe_tls_cert){"a.test", ca, kb, NULL, NULL, NULL, 0};
    ok(xe_tls_ctx_new(bad, 1, "xmpp-client", &c, &err) < 0 && c == NULL,
       "key that does not match the certificate is refused");
    ok(err && strstr(err, "a.test"), "  error names the domain: %s", err ? err : "");
    free(err);
    err = NULL;
    bad[0] =
        (struct xe_tls_cert){"a.test", "/nonexistent/x.crt", ka, NULL, NULL, NULL, 0};
    ok(xe_tls_ctx_new(bad, 1, "xmpp-client", &c, &err) < 0, "missing certificate file");
    free(err);
    err = NULL;
    bad[0] =
        (struct xe_tls_cert){"a.test", ca, "/nonexistent/x.key", NULL, NULL, NULL, 0};
    ok(xe_tls_ctx_new(bad, 1, "xmpp-client", &c, &err) < 0, "missing key file");
    free(err);
    (void)cb;
}

/* Server to server: b.test's client side presents its certificate and
 * verifies a.test's; a.test's server side asks for and verifies b.test's.
 * Each sees the other's domain (dNSName) as an identity; a bare-JID rule
 * alone does not take a domain. */
static void
test_s2s(const char *ca, const char *ka, const char *cb, const char *kb)
{
    struct xe_tls_cert cert = {"a.test", ca,   ka, cb,
                               NULL,     NULL, 0}; /* b.test's as the trust anchor */
    struct xe_tls_ctx *sctx = NULL;
    struct xe_tls_client_ctx *cctx = NULL, *bare = NULL, *bad = NULL;
    char *err = NULL;
    char ids[4][3072];
    struct ep c, s;
    int cr, sr;
    size_t n;

    ok(xe_tls_ctx_new(&cert, 1, NULL, &sctx, &err) == 0, "s2s: server context %s",
       err ? err : "");
    free(err);
    if (sctx == NULL)
        return;
    ok(xe_tls_client_ctx_new(cb, kb, ca, &cctx, &err) == 0, "s2s: client context %s",
       err ? err : "");
    free(err);
    err = NULL;
    ok(xe_tls_client_ctx_new(NULL, NULL, NULL, &bare, &err) == 0,
       "s2s: client context without certificate or anchors");
    free(err);
    err = NULL;
    ok(xe_tls_client_ctx_new(cb, kb, "/nonexistent/ca.pem", &bad, &err) < 0 &&
           bad == NULL && err &&
           strstr(err, "cannot load trust anchors '/nonexistent/ca.pem'"),
       "s2s: missing trust anchors refused, the file named (%s)", err ? err : "");
    free(err);
    err = NULL;
    ok(xe_tls_client_ctx_new(ca, "/nonexistent/key.pem", NULL, &bad, &err) < 0 && err &&
           strstr(err, "cannot load key '/nonexistent/key.pem'"),
       "s2s: a missing key refused, the file named (%s)", err ? err : "");
    free(err);
    if (cctx == NULL || bare == NULL) {
        xe_tls_client_ctx_free(&cctx);
        xe_tls_client_ctx_free(&bare);
        xe_tls_ctx_free(&sctx);
        return;
    }
    s = ep_xe(xe_tls_new(sctx, "a.test"));
    c = ep_xe(xe_tls_new_s2s_client(cctx, "a.test", NULL));
    ok(s.x && c.x, "s2s: both sides made");
    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "s2s: handshake (%d, %d)", cr, sr);
    n = xe_tls_peer_identities(s.x, XE_ID_DNS | XE_ID_XMPPADDR, ids, 4);
    ok(n == 1 && strcmp(ids[0], "b.test") == 0, "s2s: the server sees b.test (%zu)", n);
    n = xe_tls_peer_identities(c.x, XE_ID_DNS | XE_ID_XMPPADDR, ids, 4);
    ok(n == 1 && strcmp(ids[0], "a.test") == 0, "s2s: the client sees a.test (%zu)", n);
    n = xe_tls_peer_identities(s.x, XE_ID_CN | XE_ID_XMPPADDR, ids, 4);
    is_int(n, 0, "s2s: client rules (bare JIDs) take no domain");
    ep_free(&c);
    ep_free(&s);
    /* no trust anchor on the client side: a.test's certificate does not verify */
    s = ep_xe(xe_tls_new(sctx, "a.test"));
    c = ep_xe(xe_tls_new_s2s_client(bare, "a.test", NULL));
    pump_handshake(&c, &s, &cr, &sr);
    ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "s2s: handshake without certificates");
    is_int(xe_tls_peer_identities(c.x, XE_ID_DNS, ids, 4), 0,
           "s2s: an unverified server certificate vouches for nothing");
    is_int(xe_tls_peer_identities(s.x, XE_ID_DNS, ids, 4), 0,
           "s2s: no client certificate, no identity");
    ep_free(&c);
    ep_free(&s);
    /* a peer certificate with wildcards: a dNSName's stays (s2s.c matches it,
     * RFC 6125), a server's xmppAddr with "*" is dropped (no wildcard there);
     * a user's xmppAddr may hold a "*" */
    {
        char wc[4096], wk[4096];
        struct xe_tls_cert wcert = {"a.test", ca, ka, wc, NULL, NULL, 0};
        struct xe_tls_ctx *wsctx = NULL;
        struct xe_tls_client_ctx *wcctx = NULL;
        bool made;

        err = NULL; /* (freed above) */
        made = make_cert_san("w.test",
                             "otherName:1.3.6.1.5.5.7.8.5;UTF8:*.x.test,DNS:*.w.test,"
                             "otherName:1.3.6.1.5.5.7.8.5;UTF8:a*b@x.test",
                             wc, wk, sizeof(wc));
        ok(made && xe_tls_ctx_new(&wcert, 1, NULL, &wsctx, &err) == 0 &&
               xe_tls_client_ctx_new(wc, wk, ca, &wcctx, &err) == 0,
           "s2s: contexts for a wildcard certificate");
        free(err);
        err = NULL;
        if (wsctx && wcctx) {
            s = ep_xe(xe_tls_new(wsctx, "a.test"));
            c = ep_xe(xe_tls_new_s2s_client(wcctx, "a.test", NULL));
            pump_handshake(&c, &s, &cr, &sr);
            n = xe_tls_peer_identities(s.x, XE_ID_DNS | XE_ID_XMPPADDR, ids, 4);
            ok(n == 1 && strcmp(ids[0], "*.w.test") == 0,
               "s2s: the dNSName *.w.test is kept, the xmppAddr *.x.test dropped (%zu: "
               "%s)",
               n, n ? ids[0] : "-");
            n = xe_tls_peer_identities(s.x, XE_ID_XMPPADDR, ids, 4);
            ok(n == 1 && strcmp(ids[0], "a*b@x.test") == 0,
               "c2s rules: a user's xmppAddr with a '*' is kept (%zu)", n);
            ep_free(&c);
            ep_free(&s);
        }
        xe_tls_ctx_free(&wsctx);
        xe_tls_client_ctx_free(&wcctx);
    }
    xe_tls_client_ctx_free(&cctx);
    xe_tls_client_ctx_free(&bare);
    xe_tls_ctx_free(&sctx);
}

/* TLS 1.3 session tickets: XE_TLS_SESSION_TICKETS after a full handshake
 * (not OpenSSL's 2: each costs the server a sealing), and the ticket still
 * resumes a session. */
static int tickets_seen;
static SSL_SESSION *ticket;

static int
on_ticket(SSL *ssl, SSL_SESSION *sess)
{
    tickets_seen++;
    if (ticket)
        SSL_SESSION_free(ticket);
    ticket = sess; /* keep the reference */
    return 1;
}

static void
test_tickets(void)
{
    for (int round = 0; round < 2; round++) {
        struct ep c = ep_raw("a.test", 0, 0, NULL, 0);
        struct ep s = ep_xe(xe_tls_new(ctx, NULL));
        SSL_CTX *cc = c.ssl ? SSL_get_SSL_CTX(c.ssl) : NULL;
        char buf[16];
        int cr, sr;

        ok(c.ssl != NULL && s.x != NULL, "tickets %d: client and server made", round);
        if (!c.ssl || !s.x)
            return;
        SSL_CTX_set_session_cache_mode(cc, SSL_SESS_CACHE_CLIENT |
                                               SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(cc, on_ticket);
        if (round == 1)
            SSL_set_session(c.ssl, ticket);
        tickets_seen = 0;
        pump_handshake(&c, &s, &cr, &sr);
        ok(cr == XE_TLS_DONE && sr == XE_TLS_DONE, "tickets %d: handshake done", round);
        SSL_read(c.ssl, buf, sizeof(buf)); /* the client takes the tickets */
        is_int(tickets_seen, XE_TLS_SESSION_TICKETS, "tickets %d: %d ticket(s) sent",
               round, XE_TLS_SESSION_TICKETS);
        if (round == 1)
            ok(SSL_session_reused(c.ssl), "the ticket resumes the session");
        /* a session closed without shutdown would not be resumable */
        SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        ep_free(&c);
        ep_free(&s);
    }
    if (ticket)
        SSL_SESSION_free(ticket);
    ticket = NULL;
}

/* ---- tls.ticket_key_file -------------------------------------------------------- */

/* A file of N bytes (each from SEED) and MODE; its path in out. */
static void
key_file(const char *name, size_t n, unsigned char seed, mode_t mode, char *out,
         size_t len)
{
    FILE *f;

    snprintf(out, len, "%s/%s", tmpdir, name);
    f = fopen(out, "wb");
    for (size_t i = 0; i < n && f; i++)
        fputc((int)(unsigned char)(seed + i), f);
    if (f)
        fclose(f);
    chmod(out, mode);
}

/* A TLS 1.3 handshake with a context of its own under KEYS (offering
 * *sess, when set); whether it resumed; *sess: the ticket it got. */
static bool
resume_under(const char *crt, const char *key, const unsigned char *keys, size_t keys_len,
             SSL_SESSION **sess)
{
    struct xe_tls_cert cert = {"a.test", crt, key, NULL, NULL, keys, keys_len};
    struct xe_tls_ctx *x = NULL;
    char *err = NULL, buf[16];
    bool reused = false;
    int cr, sr;

    if (xe_tls_ctx_new(&cert, 1, "xmpp-client", &x, &err) < 0) {
        ok(0, "ticket keys: context: %s", err ? err : "");
        free(err);
        return false;
    }
    {
        struct ep c = ep_raw("a.test", 0, 0, NULL, 0);
        struct ep s = ep_xe(xe_tls_new(x, NULL));
        SSL_CTX *cc = c.ssl ? SSL_get_SSL_CTX(c.ssl) : NULL;

        if (c.ssl && s.x) {
            SSL_CTX_set_session_cache_mode(cc, SSL_SESS_CACHE_CLIENT |
                                                   SSL_SESS_CACHE_NO_INTERNAL_STORE);
            SSL_CTX_sess_set_new_cb(cc, on_ticket);
            if (*sess)
                SSL_set_session(c.ssl, *sess);
            pump_handshake(&c, &s, &cr, &sr);
            SSL_read(c.ssl, buf, sizeof(buf)); /* the client takes the ticket */
            reused = cr == XE_TLS_DONE && SSL_session_reused(c.ssl);
            SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            if (ticket) {
                if (*sess)
                    SSL_SESSION_free(*sess);
                *sess = ticket;
                ticket = NULL;
            }
        }
        ep_free(&c);
        ep_free(&s);
    }
    xe_tls_ctx_free(&x);
    return reused;
}

static void
test_ticket_keys(const char *crt, const char *key)
{
    char path[4096];
    unsigned char *k1 = NULL, *k21 = NULL, *k2 = NULL, *k = NULL;
    size_t l1 = 0, l21 = 0, l2 = 0, l = 0;
    char *err = NULL;
    SSL_SESSION *s1 = NULL;
    unsigned char *der;
    int der_len;

    key_file("k1", 80, 1, 0600, path, sizeof(path));
    ok(xe_tls_ticket_keys_read(path, &k1, &l1, &err) == 0 && l1 == 80,
       "ticket keys: one key of 80 bytes");
    key_file("k2", 80, 101, 0640, path, sizeof(path));
    ok(xe_tls_ticket_keys_read(path, &k2, &l2, &err) == 0 && l2 == 80,
       "ticket keys: mode 0640 is accepted");
    k21 = malloc(160);
    memcpy(k21, k2, 80);
    memcpy(k21 + 80, k1, 80);
    l21 = 160;
    key_file("k8", 8 * 80, 7, 0600, path, sizeof(path));
    ok(xe_tls_ticket_keys_read(path, &k, &l, &err) == 0 && l == 640,
       "ticket keys: 8 keys");
    free(k);
    struct {
        const char *what, *name, *msg;
        size_t n;
        mode_t mode;
    } bad[] = {
        {"79 bytes", "b79", "holds 79 bytes", 79, 0600},
        {"81 bytes", "b81", "holds 81 bytes", 81, 0600},
        {"empty", "b0", "holds 0 bytes", 0, 0600},
        {"9 keys", "b9", "more than 640", 9 * 80, 0600},
        {"world-readable", "bw", "accessible to others", 80, 0604},
        {"group-writable", "bg", "writable by its group", 80, 0620},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        k = NULL;
        err = NULL;
        key_file(bad[i].name, bad[i].n, 3, bad[i].mode, path, sizeof(path));
        ok(xe_tls_ticket_keys_read(path, &k, &l, &err) < 0 && k == NULL && err &&
               strstr(err, bad[i].msg),
           "ticket keys: %s refused: %s", bad[i].what, err ? err : "");
        free(err);
    }
    err = NULL;
    ok(xe_tls_ticket_keys_read("/nonexistent/keys", &k, &l, &err) < 0 && err &&
           strstr(err, "cannot open"),
       "ticket keys: a missing file refused: %s", err ? err : "");
    free(err);

    ok(!resume_under(crt, key, k1, l1, &s1) && s1, "ticket keys: a first full handshake");
    /* a client marks a session it offered in vain as not resumable: each
     * attempt below offers a fresh copy of the first ticket */
    der_len = s1 ? i2d_SSL_SESSION(s1, NULL) : 0;
    tickets_seen = 0;
    der = malloc(der_len > 0 ? (size_t)der_len : 1);
    {
        unsigned char *p = der;
        if (der_len > 0)
            i2d_SSL_SESSION(s1, &p);
    }
    ok(resume_under(crt, key, k1, l1, &s1),
       "ticket keys: another context, same key: resumed");
    is_int(
        tickets_seen, 1,
        "ticket keys: a resumed TLS 1.3 session gets a fresh ticket (as OpenSSL's keys)");
    {
        const unsigned char *p = der;
        SSL_SESSION *o = d2i_SSL_SESSION(NULL, &p, der_len);
        ok(!resume_under(crt, key, NULL, 0, &o),
           "ticket keys: a context without keys does not resume it");
        SSL_SESSION_free(o);
    }
    {
        const unsigned char *p = der;
        SSL_SESSION *o = d2i_SSL_SESSION(NULL, &p, der_len);
        ok(resume_under(crt, key, k21, l21, &o), "ticket keys: old key second: resumed");
        SSL_SESSION *renewed = o; /* the renewed ticket, under the first key */
        ok(renewed != NULL && resume_under(crt, key, k2, l2, &renewed),
           "ticket keys: the renewed ticket is under the new key");
        SSL_SESSION_free(renewed);
    }
    {
        const unsigned char *p = der;
        SSL_SESSION *o = d2i_SSL_SESSION(NULL, &p, der_len);
        ok(!resume_under(crt, key, k2, l2, &o),
           "ticket keys: old key removed: full handshake");
        SSL_SESSION_free(o);
    }
    free(der);
    SSL_SESSION_free(s1);
    free(k1);
    free(k2);
    free(k21);
}

/* ---- resumption, per-domain sessions, parameters, tls-server-end-point ------------ */

/* A certificate of another kind: RSA (2048) or EC, signed (self) with MD. */
static bool
make_cert_kind(const char *domain, bool rsa, const EVP_MD *md, char *cert_path,
               char *key_path, size_t len)
{
    return tap_self_signed(tmpdir, domain, rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-384"),
                           7, NULL, md, cert_path, key_path, len);
}

/* TLS 1.2: the client offers no extended master secret (RFC 7627) */
static bool try_no_ems;

struct
try {
    const char *starttls; /* the stream's to (STARTTLS), or NULL: Direct TLS */
    const char *sni;
    int max_v;
    const char *cert, *key; /* the client's certificate, or NULL */
    const char *ciphers;    /* the client's TLS 1.2 list, or NULL */
    SSL_SESSION *resume;    /* offered, or NULL */
    bool no_ticket;         /* TLS 1.2: session IDs only (the server's cache) */
};
struct tried {
    bool done, reused;
    size_t ids;            /* identities the server's client_ca vouches for */
    char cert[256];        /* the server certificate's name */
    SSL_SESSION *sess;     /* the session to resume (a reference) */
    unsigned char epd[64]; /* the client's tls-server-end-point data */
    size_t epd_len;
    struct xe_cbind cb[XE_CB_MAX]; /* the server's bindings (data filled) */
    size_t n_cb;
};

static void
try_handshake(struct xe_tls_ctx *sctx, const struct try *t, struct tried *r)
{
    struct ep c = ep_raw(t->sni, 0, t->max_v, NULL, 0);
    struct ep s = ep_xe(xe_tls_new(sctx, t->starttls));
    char ids[4][3072], buf[16];
    int cr, sr;

    memset(r, 0, sizeof(*r));
    if (c.ssl == NULL || s.x == NULL)
        goto out;
    if (t->cert && (SSL_use_certificate_file(c.ssl, t->cert, SSL_FILETYPE_PEM) != 1 ||
                    SSL_use_PrivateKey_file(c.ssl, t->key, SSL_FILETYPE_PEM) != 1))
        goto out;
    if (t->ciphers)
        SSL_set_cipher_list(c.ssl, t->ciphers);
    if (t->no_ticket)
        SSL_set_options(c.ssl, SSL_OP_NO_TICKET);
    if (try_no_ems)
        SSL_set_options(c.ssl, SSL_OP_NO_EXTENDED_MASTER_SECRET);
    if (t->resume)
        SSL_set_session(c.ssl, t->resume);
    pump_handshake(&c, &s, &cr, &sr);
    ERR_clear_error();
    r->done = cr == XE_TLS_DONE && sr == XE_TLS_DONE;
    if (!r->done)
        goto out;
    SSL_read(c.ssl, buf, sizeof(buf)); /* the client takes a TLS 1.3 ticket */
    ERR_clear_error();
    r->reused = xe_tls_resumed(s.x);
    if (r->reused != (SSL_session_reused(c.ssl) == 1))
        printf("# the two sides disagree on resumption\n");
    r->ids = xe_tls_peer_identities(s.x, XE_ID_DNS | XE_ID_CN, ids, 4);
    peer_cn(c.ssl, r->cert, sizeof(r->cert));
    r->sess = SSL_get1_session(c.ssl);
    {
        X509 *peer = SSL_get0_peer_certificate(c.ssl);
        int md_nid = NID_undef;
        const EVP_MD *md = NULL;
        unsigned l = 0;
        if (peer && X509_get_signature_info(peer, &md_nid, NULL, NULL, NULL) == 1)
            md = md_nid == NID_sha1 || md_nid == NID_md5 ? EVP_sha256()
                                                         : EVP_get_digestbynid(md_nid);
        if (md && X509_digest(peer, md, r->epd, &l) == 1)
            r->epd_len = l;
    }
    r->n_cb = xe_tls_channel_bindings(s.x, true, r->cb, XE_CB_MAX);
    for (size_t i = 0; i < r->n_cb; i++)
        xe_cbind_fill(&r->cb[i]);
    SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    xe_tls_shutdown(s.x); /* as xedge closes a session (close_notify) */
out:
    ep_free(&c);
    ep_free(&s);
}

/* Sessions on domains with client_ca (issue: every resumption failed with
 * "session id context uninitialized"), TLS 1.2 and 1.3, Direct TLS (SNI) and
 * STARTTLS, with and without a client certificate: they resume, and a
 * verified client certificate's identity comes back with the session. A
 * session resumes under its own domain only, so it cannot carry a
 * certificate verified by a.test's client_ca to b.test. */
static void
test_resumption(const char *ca, const char *ka, const char *cb, const char *kb)
{
    /* a.test trusts a.test's certificate for clients, b.test b.test's */
    struct xe_tls_cert certs[2] = {{"a.test", ca, ka, ca, NULL, NULL, 0},
                                   {"b.test", cb, kb, cb, NULL, NULL, 0}};
    struct xe_tls_ctx *sctx = NULL;
    char *err = NULL;

    ok(xe_tls_ctx_new(certs, 2, "xmpp-client", &sctx, &err) == 0,
       "resumption: contexts with client_ca %s", err ? err : "");
    free(err);
    if (sctx == NULL)
        return;
    for (int v = 0; v < 2; v++) {
        int max_v = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        const char *vn = v ? "TLS 1.3" : "TLS 1.2";
        for (int mode = 0; mode < 2; mode++) {
            const char *how = mode ? "STARTTLS" : "Direct TLS";
            for (int with = 0; with < 2; with++) {
                struct try t = {mode ? "a.test" : NULL, "a.test", max_v, with ? ca : NULL,
                                with ? ka : NULL,       NULL,     NULL,  false};
                struct tried first, again, other;
                const char *cn = with ? "with" : "without";

                try_handshake(sctx, &t, &first);
                ok(first.done && !first.reused && first.sess != NULL,
                   "%s %s %s a client certificate: full handshake", vn, how, cn);
                is_int(first.ids, with ? 1 : 0, "  ... identities from client_ca");
                t.resume = first.sess;
                try_handshake(sctx, &t, &again);
                ok(again.done && again.reused, "  ... the session resumes");
                is_int(again.ids, with ? 1 : 0, "  ... with the same verified identity");
                /* the same session under b.test: a full handshake there */
                t.starttls = mode ? "b.test" : NULL;
                t.sni = "b.test";
                try_handshake(sctx, &t, &other);
                ok(other.done && !other.reused, "  ... but not under b.test");
                is_str(other.cert, "b.test", "  ... which shows its own certificate");
                is_int(other.ids, 0,
                       "  ... and a.test's client certificate counts for "
                       "nothing there");
                SSL_SESSION_free(first.sess);
                SSL_SESSION_free(again.sess);
                SSL_SESSION_free(other.sess);
            }
        }
        for (int mode = 0; mode < 2 && v == 0; mode++) {
            /* TLS 1.2 without tickets: the server's session cache */
            struct try t = {
                mode ? "a.test" : NULL, "a.test", max_v, ca, ka, NULL, NULL, true};
            struct tried first, again, other;
            try_handshake(sctx, &t, &first);
            t.resume = first.sess;
            try_handshake(sctx, &t, &again);
            ok(again.done && again.reused && again.ids == 1,
               "TLS 1.2 session ID (no ticket), %s: resumes with its identity",
               mode ? "STARTTLS" : "Direct TLS");
            t.starttls = mode ? "b.test" : NULL;
            t.sni = "b.test";
            try_handshake(sctx, &t, &other);
            ok(other.done && !other.reused && other.ids == 0,
               "  ... not under b.test, and nothing of a.test's client certificate");
            SSL_SESSION_free(first.sess);
            SSL_SESSION_free(again.sess);
            SSL_SESSION_free(other.sess);
        }
        {
            /* STARTTLS to a.test with the SNI b.test: the stream's `to`
             * decides, and a.test's session resumes there */
            struct try t = {"a.test", "a.test", max_v, ca, ka, NULL, NULL, false};
            struct tried first, again;
            try_handshake(sctx, &t, &first);
            t.sni = "b.test";
            t.resume = first.sess;
            try_handshake(sctx, &t, &again);
            ok(again.done && again.reused && again.ids == 1 &&
                   strcmp(again.cert, "a.test") == 0,
               "%s STARTTLS to a.test with SNI b.test: a.test's (resumed: %d)", vn,
               again.reused);
            SSL_SESSION_free(first.sess);
            SSL_SESSION_free(again.sess);
        }
    }
    xe_tls_ctx_free(&sctx);
}

/* TLS 1.2: AEAD suites with forward secrecy only, by default; the
 * parameters per domain (taken by SNI), and their checks. */
static void
test_parameters(const char *ca, const char *ka, const char *cb, const char *kb)
{
    static const char cbc[] = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
                              "ECDHE-ECDSA-AES128-SHA256:AES128-SHA:AES256-SHA:"
                              "ECDHE-RSA-AES128-SHA";
    struct xe_tls_settings mine = {"ECDHE-ECDSA-AES128-SHA", NULL, "P-256", 0};
    struct xe_tls_settings only13 = {NULL, "TLS_CHACHA20_POLY1305_SHA256", NULL,
                                     XE_TLS_1_3};
    struct xe_tls_cert certs[3] = {{"a.test", ca, ka, NULL, NULL, NULL, 0},
                                   {"b.test", cb, kb, NULL, &mine, NULL, 0},
                                   {"c.test", cb, kb, NULL, &only13, NULL, 0}};
    struct xe_tls_ctx *sctx = NULL;
    char *err = NULL;
    const char *setting = NULL;
    struct tried r;

    ok(xe_tls_ctx_new(certs, 3, NULL, &sctx, &err) == 0, "parameters: contexts %s",
       err ? err : "");
    free(err);
    err = NULL;
    if (sctx) {
        struct try t = {NULL, "a.test", TLS1_2_VERSION, NULL, NULL, cbc, NULL, false};
        try_handshake(sctx, &t, &r);
        ok(!r.done, "a TLS 1.2 client with only CBC suites is refused by default");
        t.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
        try_handshake(sctx, &t, &r);
        ok(r.done, "... one with ECDHE-ECDSA-AES256-GCM-SHA384 gets in");
        SSL_SESSION_free(r.sess);
        t.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
        try_handshake(sctx, &t, &r);
        ok(r.done, "... one with ECDHE-ECDSA-CHACHA20-POLY1305 too");
        SSL_SESSION_free(r.sess);
        t.ciphers = "AES128-GCM-SHA256";
        try_handshake(sctx, &t, &r);
        ok(!r.done, "... one with AES-GCM but no ECDHE (no forward secrecy) is refused");
        t.ciphers = cbc;
        t.sni = "b.test";
        try_handshake(sctx, &t, &r);
        ok(r.done, "b.test's own cipher list (SNI) lets the CBC client in");
        SSL_SESSION_free(r.sess);
        t.starttls = "b.test";
        t.sni = NULL;
        try_handshake(sctx, &t, &r);
        ok(r.done, "... on STARTTLS to b.test too");
        SSL_SESSION_free(r.sess);
        t.starttls = NULL;
        t.sni = "c.test";
        t.ciphers = NULL;
        try_handshake(sctx, &t, &r);
        ok(!r.done, "c.test's min_version TLSv1.3 refuses a TLS 1.2 client");
        t.max_v = 0;
        try_handshake(sctx, &t, &r);
        ok(r.done, "... and takes a TLS 1.3 one");
        SSL_SESSION_free(r.sess);
        xe_tls_ctx_free(&sctx);
    }
    {
        struct xe_tls_settings bad[] = {
            {"ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-SUITE", NULL, NULL, 0},
            {"!ALL", NULL, NULL, 0},
            {NULL, "TLS_AES_128_GCM_SHA256:TLS_NOPE", NULL, 0},
            {NULL, NULL, "X25519:P-999", 0},
            {NULL, NULL, NULL, 0x0302}};
        const char *want[] = {"ciphers", "ciphers", "ciphersuites", "groups",
                              "min_version"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            ok(xe_tls_settings_check(&bad[i], &setting, &err) < 0 && setting &&
                   strcmp(setting, want[i]) == 0 && err,
               "a bad %s is refused: %s", want[i], err ? err : "");
            free(err);
            err = NULL;
        }
        ok(xe_tls_settings_check(&mine, &setting, &err) == 0,
           "good settings pass the check");
        free(err);
        err = NULL;
        certs[1].settings = &bad[2];
        ok(xe_tls_ctx_new(certs, 2, NULL, &sctx, &err) < 0 && err &&
               strstr(err, "b.test") && strstr(err, "tls.ciphersuites"),
           "a context with a bad list is refused: %s", err ? err : "");
        free(err);
    }
}

/* tls-server-end-point (RFC 5929): the hash of the certificate the server
 * showed (the SNI's), by its signature's hash (SHA-1 -> SHA-256), equal to
 * what the client computes; EC and RSA, TLS 1.2 and 1.3, and after
 * resumption. */
static void
test_end_point(const char *ca, const char *ka)
{
    char rc[4096], rk[4096], sc[4096], sk[4096];
    struct xe_tls_cert certs[3];
    struct xe_tls_ctx *sctx = NULL;
    char *err = NULL;
    const char *doms[] = {"a.test", "rsa.test", "sha1.test"};
    const size_t lens[] = {32, 48, 32};

    ok(make_cert_kind("rsa.test", true, EVP_sha384(), rc, rk, sizeof(rc)) &&
           make_cert_kind("sha1.test", false, EVP_sha1(), sc, sk, sizeof(sc)),
       "end-point: an RSA certificate signed with SHA-384, an EC one with SHA-1");
    certs[0] = (struct xe_tls_cert){"a.test", ca, ka, NULL, NULL, NULL, 0};
    certs[1] = (struct xe_tls_cert){"rsa.test", rc, rk, NULL, NULL, NULL, 0};
    certs[2] = (struct xe_tls_cert){"sha1.test", sc, sk, NULL, NULL, NULL, 0};
    ok(xe_tls_ctx_new(certs, 3, NULL, &sctx, &err) == 0, "end-point: contexts %s",
       err ? err : "");
    free(err);
    if (sctx == NULL)
        return;
    for (int v = 0; v < 2; v++)
        for (size_t d = 0; d < 3; d++) {
            struct try t = {NULL, doms[d], v ? 0 : TLS1_2_VERSION, NULL, NULL, NULL,
                            NULL, false};
            struct tried r, again;
            const struct xe_cbind *ep = NULL;
            for (int round = 0; round < 2; round++) {
                struct tried *x = round ? &again : &r;
                try_handshake(sctx, &t, x);
                ep = NULL;
                for (size_t i = 0; i < x->n_cb; i++)
                    if (strcmp(x->cb[i].type, "tls-server-end-point") == 0)
                        ep = &x->cb[i];
                ok(x->done && ep && ep->advertise && ep->len == lens[d] &&
                       x->epd_len == lens[d] && memcmp(ep->data, x->epd, ep->len) == 0,
                   "TLS 1.%d %s%s: tls-server-end-point is the %zu-byte hash the client "
                   "computes",
                   v ? 3 : 2, doms[d], round ? " (resumed)" : "", lens[d]);
                if (round == 1)
                    ok(x->reused, "  ... (it was resumed)");
                t.resume = r.sess;
            }
            SSL_SESSION_free(r.sess);
            SSL_SESSION_free(again.sess);
        }
    xe_tls_ctx_free(&sctx);
}

/* TLS 1.2 without the extended master secret (RFC 7627): tls-unique and
 * tls-exporter do not identify the connection (the triple handshake:
 * RFC 7627 section 1, RFC 9266 section 3), so neither is offered; the
 * certificate's hash still is. With it, both are. */
static bool
has_cb(const struct tried *r, const char *type)
{
    for (size_t i = 0; i < r->n_cb; i++)
        if (strcmp(r->cb[i].type, type) == 0)
            return true;
    return false;
}

static void
test_unique_needs_ems(const char *ca, const char *ka)
{
    struct xe_tls_cert cert = {"a.test", ca, ka, NULL, NULL, NULL, 0};
    struct xe_tls_ctx *sctx = NULL;
    char *err = NULL;

    ok(xe_tls_ctx_new(&cert, 1, NULL, &sctx, &err) == 0, "ems: context %s",
       err ? err : "");
    free(err);
    if (sctx == NULL)
        return;
    for (int ems = 0; ems < 2; ems++) {
        struct try t = {NULL, "a.test", TLS1_2_VERSION, NULL, NULL, NULL, NULL, false};
        struct tried r;
        try_no_ems = !ems;
        try_handshake(sctx, &t, &r);
        try_no_ems = false;
        ok(r.done && has_cb(&r, "tls-unique") == (ems == 1) &&
               has_cb(&r, "tls-exporter") == (ems == 1) &&
               has_cb(&r, "tls-server-end-point"),
           "TLS 1.2 %s the extended master secret: tls-unique and tls-exporter %s, "
           "tls-server-end-point offered",
           ems ? "with" : "without", ems ? "offered" : "not offered");
        SSL_SESSION_free(r.sess);
    }
    xe_tls_ctx_free(&sctx);
}

/* ---- the certificate chain sent (built once per context) -------------------- */

/* A P-256 certificate for CN, signed by ISSUER/IKEY (NULL: self-signed);
 * ca: a CA certificate. Written as PEM to DIR/FILE (and the key beside it
 * when key_path); *x_r and *key_r returned to the caller (freed by it). */
static bool
make_signed(const char *cn, bool ca, X509 *issuer, EVP_PKEY *ikey, const char *file,
            char *cert_path, char *key_path, size_t len, X509 **x_r, EVP_PKEY **key_r)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_EXTENSION *ext;
    X509V3_CTX v3;
    FILE *f;
    bool ok_ = false;

    if (key == NULL || x == NULL)
        goto out;
    snprintf(cert_path, len, "%s/%s.crt", tmpdir, file);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 7 : 8);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ext == NULL)
        goto out;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (X509_sign(x, ikey ? ikey : key, EVP_sha256()) == 0)
        goto out;
    if ((f = fopen(cert_path, "w")) == NULL)
        goto out;
    PEM_write_X509(f, x);
    fclose(f);
    if (key_path) {
        snprintf(key_path, len, "%s/%s.key", tmpdir, file);
        if ((f = fopen(key_path, "w")) == NULL)
            goto out;
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
    }
    ok_ = true;
out:
    if (ok_) {
        *x_r = x;
        *key_r = key;
    } else {
        X509_free(x);
        EVP_PKEY_free(key);
    }
    return ok_;
}

/* The CNs of the chain a client is sent, "leaf|next|...", or NULL. */
static const char *
chain_seen(const struct xe_tls_cert *cert, char *buf, size_t len)
{
    struct xe_tls_ctx *sctx = NULL;
    char *err = NULL;
    const char *r = NULL;

    buf[0] = '\0';
    if (xe_tls_ctx_new(cert, 1, "xmpp-client", &sctx, &err) == 0) {
        struct ep c = ep_raw("chain.test", 0, 0, alpn_xmpp, sizeof(alpn_xmpp) - 1);
        struct ep s = ep_xe(xe_tls_new(sctx, NULL));
        int cr, sr;
        STACK_OF(X509) * sk;

        pump_handshake(&c, &s, &cr, &sr);
        if (cr == XE_TLS_DONE && sr == XE_TLS_DONE &&
            (sk = SSL_get_peer_cert_chain(c.ssl))) {
            for (int i = 0; i < sk_X509_num(sk); i++) {
                char cn[128] = "";
                X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(sk, i)),
                                          NID_commonName, cn, sizeof(cn));
                snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "|" : "", cn);
            }
            r = buf;
        }
        ep_free(&c);
        ep_free(&s);
        xe_tls_ctx_free(&sctx);
    }
    free(err);
    return r;
}

/* The chain a client sees, now built once per context (issue 18) instead of
 * at each handshake: a certificate file without a chain gets its issuer
 * from the context's store (the client_ca file) as before, none without
 * one, and a file with a chain is sent as it is, even with a certificate
 * of the store that would make another chain. */
static void
test_chain(const char *other_cert)
{
    char cap[4096], leafp[4096], leafk[4096], bundle[4096], unused[4096], buf[512];
    X509 *cax = NULL, *leaf = NULL;
    EVP_PKEY *cak = NULL, *leafkey = NULL;
    FILE *f, *g;
    bool made;

    made = make_signed("Chain Test CA", true, NULL, NULL, "chain-ca", cap, unused,
                       sizeof(cap), &cax, &cak) &&
           make_signed("chain.test", false, cax, cak, "chain-leaf", leafp, leafk,
                       sizeof(leafp), &leaf, &leafkey);
    ok(made, "chain: a CA and a certificate it issued");
    if (made) {
        struct xe_tls_cert with_ca = {"chain.test", leafp, leafk, cap, NULL, NULL, 0};
        struct xe_tls_cert alone = {"chain.test", leafp, leafk, NULL, NULL, NULL, 0};
        struct xe_tls_cert odd = {"chain.test", bundle, leafk, cap, NULL, NULL, 0};
        char line[1024];

        /* a file with a chain that is not the store's: the leaf, then a.test's */
        snprintf(bundle, sizeof(bundle), "%s/chain-bundle.crt", tmpdir);
        if ((f = fopen(bundle, "w")) != NULL) {
            PEM_write_X509(f, leaf);
            if ((g = fopen(other_cert, "r")) != NULL) {
                while (fgets(line, sizeof(line), g))
                    fputs(line, f);
                fclose(g);
            }
            fclose(f);
        }
        is_str(
            chain_seen(&with_ca, buf, sizeof(buf)), "chain.test|Chain Test CA",
            "chain: the issuer from the store (client_ca) is sent after the certificate");
        is_str(chain_seen(&alone, buf, sizeof(buf)), "chain.test",
               "chain: no store, no issuer: the certificate alone");
        is_str(chain_seen(&odd, buf, sizeof(buf)), "chain.test|a.test",
               "chain: a file's own chain is sent as it is");
    }
    X509_free(cax);
    X509_free(leaf);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(leafkey);
}

int
main(void)
{
    char ca[4096], ka[4096], cb[4096], kb[4096];
    char *err = NULL;
    struct xe_tls_cert certs[2];

    tmpdir = tap_mkdtemp("tls-test");
    ok(tmpdir != NULL, "mkdtemp");
    if (tmpdir == NULL)
        return tap_done();
    ok(make_cert("a.test", ca, ka, sizeof(ca)), "certificate for a.test");
    ok(make_cert("b.test", cb, kb, sizeof(cb)), "certificate for b.test");
    certs[0] = (struct xe_tls_cert){"a.test", ca, ka, NULL, NULL, NULL, 0};
    certs[1] = (struct xe_tls_cert){"b.test", cb, kb, NULL, NULL, NULL, 0};
    ok(xe_tls_ctx_new(certs, 2, "xmpp-client", &ctx, &err) == 0, "xe_tls_ctx_new %s",
       err ? err : "");
    free(err);
    if (ctx) {
        test_basic();
        test_tickets();
        test_cert_selection();
        test_versions();
        test_alpn();
        test_data();
        test_bios();
        test_bios_auto();
        test_garbage();
        test_ctx_errors();
        test_s2s(ca, ka, cb, kb);
        test_resumption(ca, ka, cb, kb);
        test_parameters(ca, ka, cb, kb);
        test_end_point(ca, ka);
        test_unique_needs_ems(ca, ka);
        test_chain(ca);
        test_ticket_keys(ca, ka);
        xe_tls_ctx_free(&ctx);
        ok(ctx == NULL, "xe_tls_ctx_free clears the pointer");
    }
    rm_rf(tmpdir);
    return tap_done();
}
