/* xcbclient: a small XMPP client for the tests, built by `make check`, for
 * what no Debian client does yet: SCRAM-*-PLUS with tls-exporter (RFC 9266)
 * over TLS 1.3. STARTTLS with OpenSSL, SASL with Cyrus SASL's client side
 * (the channel binding handed to it), then the stream restart and a bind.
 *
 *   xcbclient HOST PORT DOMAIN USER PASSWORD MECH [options]
 *     --cb TYPE      tls-exporter (default), tls-unique or tls-server-end-point
 *                    (RFC 5929: the hash of the server's certificate by its
 *                    signature's hash, SHA-256 for MD5 and SHA-1)
 *     --corrupt-cb   flip one byte of the binding data (must fail)
 *     --tls12        cap TLS at 1.2
 *     --cafile FILE  verify the server certificate with this CA
 *
 * Prints FEATURES=..., then RESULT=ok mech=... cb=... tls=... jid=... or
 * RESULT=failure condition=...; exit 0 on success, 1 on a SASL failure,
 * 2 on any other error. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/evp.h>
#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#define CB(f) ((int (*)(void))(void *)(f))

static const char *user_name, *password;

static int
cb_user(void *ctx, int id, const char **result, unsigned *len)
{
    *result = user_name;
    if (len)
        *len = (unsigned)strlen(user_name);
    return SASL_OK;
}

static int
cb_pass(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
    static sasl_secret_t *s;
    size_t l = strlen(password);

    free(s);
    s = malloc(sizeof(*s) + l);
    s->len = (unsigned long)l;
    memcpy(s->data, password, l);
    *psecret = s;
    return SASL_OK;
}

static SSL *ssl;
static SSL_CTX *ctx;
static sasl_conn_t *conn;
static int fd = -1;

/* Leave with everything freed: the tests run this client under LeakSanitizer. */
static void
finish(int code)
{
    if (conn)
        sasl_dispose(&conn);
    sasl_client_done();
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    fflush(stdout);
    exit(code);
}
static char buf[65536];
static size_t blen;

static void
die(const char *what)
{
    printf("RESULT=error what=%s\n", what);
    finish(2);
}

static void
send_str(const char *s)
{
    size_t l = strlen(s);
    int n = ssl ? SSL_write(ssl, s, (int)l) : (int)write(fd, s, l);
    if (n != (int)l)
        die("write");
}

/* Read until pat appears in what was read since the last call. */
static const char *
read_until(const char *pat)
{
    blen = 0;
    buf[0] = '\0';
    while (strstr(buf, pat) == NULL) {
        int n;
        if (blen >= sizeof(buf) - 1)
            die("too-much-data");
        n = ssl ? SSL_read(ssl, buf + blen, (int)(sizeof(buf) - 1 - blen))
                : (int)read(fd, buf + blen, sizeof(buf) - 1 - blen);
        if (n <= 0)
            return buf[0] ? buf : NULL;
        blen += (size_t)n;
        buf[blen] = '\0';
        if (strstr(buf, "</stream:stream>") || strstr(buf, "<failure"))
            if (strstr(buf, pat) == NULL &&
                (strstr(buf, "</failure>") || strstr(buf, "</stream:stream>")))
                break;
    }
    return buf;
}

/* The text of <tag ...>TEXT</tag> in buf, or "" for an empty element. */
static char *
element_text(const char *tag)
{
    char open[64], close[64];
    const char *a, *b, *gt;

    snprintf(open, sizeof(open), "<%s", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    a = strstr(buf, open);
    if (a == NULL)
        return NULL;
    gt = strchr(a, '>');
    if (gt == NULL)
        return NULL;
    if (gt[-1] == '/')
        return strdup("");
    b = strstr(gt, close);
    if (b == NULL)
        return NULL;
    return strndup(gt + 1, (size_t)(b - gt - 1));
}

int
main(int argc, char **argv)
{
    const char *host, *port, *domain, *mech, *cbtype = "tls-exporter", *cafile = NULL;
    int corrupt = 0, tls12 = 0;
    char hdr[512], tmp[8192];
    unsigned char cbdata[64];
    size_t cblen = 0;
    struct addrinfo hints, *ai;
    sasl_channel_binding_t cbind;
    const char *out = NULL, *chosen = NULL;
    unsigned outlen = 0;
    int r;
    sasl_callback_t cbs[] = {
        {SASL_CB_AUTHNAME, CB(cb_user), NULL},
        {SASL_CB_USER, CB(cb_user), NULL},
        {SASL_CB_PASS, CB(cb_pass), NULL},
        {SASL_CB_LIST_END, NULL, NULL},
    };

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 7) {
        fprintf(stderr,
                "usage: xcbclient HOST PORT DOMAIN USER PASSWORD MECH [--cb TYPE] "
                "[--corrupt-cb] [--tls12] [--cafile FILE]\n");
        return 2;
    }
    host = argv[1], port = argv[2], domain = argv[3], user_name = argv[4];
    password = argv[5], mech = argv[6];
    for (int i = 7; i < argc; i++) {
        if (strcmp(argv[i], "--cb") == 0 && i + 1 < argc)
            cbtype = argv[++i];
        else if (strcmp(argv[i], "--corrupt-cb") == 0)
            corrupt = 1;
        else if (strcmp(argv[i], "--tls12") == 0)
            tls12 = 1;
        else if (strcmp(argv[i], "--cafile") == 0 && i + 1 < argc)
            cafile = argv[++i];
        else
            die("usage");
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("resolve");
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("connect");
    freeaddrinfo(ai);
    {
        struct timeval tv = {20, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    snprintf(hdr, sizeof(hdr),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>",
             domain);
    send_str(hdr);
    if (!read_until("</stream:features>"))
        die("features");
    send_str("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    if (!read_until("<proceed"))
        die("proceed");

    ctx = SSL_CTX_new(TLS_client_method());
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    if (cafile) {
        SSL_CTX_load_verify_locations(ctx, cafile, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(ssl, domain);
    SSL_set1_host(ssl, domain);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        die("tls");

    /* the channel binding, computed on the client's side */
    if (strcmp(cbtype, "tls-exporter") == 0) {
        static const char label[] = "EXPORTER-Channel-Binding";
        if (SSL_export_keying_material(ssl, cbdata, 32, label, sizeof(label) - 1, NULL, 0,
                                       0) != 1)
            die("exporter");
        cblen = 32;
    } else if (strcmp(cbtype, "tls-server-end-point") == 0) {
        X509 *peer = SSL_get0_peer_certificate(ssl);
        int md_nid = NID_undef;
        const EVP_MD *md;
        unsigned l = 0;
        if (peer == NULL || X509_get_signature_info(peer, &md_nid, NULL, NULL, NULL) != 1)
            die("end-point");
        md = md_nid == NID_md5 || md_nid == NID_sha1 ? EVP_sha256()
                                                     : EVP_get_digestbynid(md_nid);
        if (md == NULL || X509_digest(peer, md, cbdata, &l) != 1)
            die("end-point");
        cblen = l;
        printf("END_POINT md=%s len=%u\n", EVP_MD_get0_name(md), l);
    } else {
        /* tls-unique: the first Finished of the handshake: ours */
        cblen = SSL_get_finished(ssl, cbdata, sizeof(cbdata));
    }
    if (corrupt)
        cbdata[0] ^= 0x5a;

    send_str(hdr);
    if (!read_until("</stream:features>"))
        die("tls-features");
    {
        /* what was offered, for the test to see */
        char *m = strstr(buf, "<mechanisms"), *cbt = strstr(buf, "sasl-channel-binding");
        printf("FEATURES=%s cb-advertised=%s\n", m ? "mechanisms" : "-",
               cbt ? "yes" : "no");
        for (char *p = buf; (p = strstr(p, "<channel-binding type='")) != NULL; p++)
            printf("CB_TYPE=%.*s\n", (int)strcspn(p + 23, "'"), p + 23);
    }

    if (sasl_client_init(NULL) != SASL_OK ||
        sasl_client_new("xmpp", domain, NULL, NULL, cbs, 0, &conn) != SASL_OK)
        die("sasl-init");
    cbind.name = cbtype;
    cbind.critical = 1;
    cbind.len = cblen;
    cbind.data = cbdata;
    if (sasl_setprop(conn, SASL_CHANNEL_BINDING, &cbind) != SASL_OK)
        die("sasl-cb");
    r = sasl_client_start(conn, mech, NULL, &out, &outlen, &chosen);
    if (r != SASL_OK && r != SASL_CONTINUE) {
        printf("RESULT=error what=client-start detail=%s\n", sasl_errdetail(conn));
        finish(2);
    }
    chosen = mech; /* Cyrus reports the base name; the exchange is the -PLUS one */
    for (;;) {
        unsigned el = 0;
        char *t;
        if (outlen == 0) {
            snprintf(tmp, sizeof(tmp),
                     "<%s xmlns='urn:ietf:params:xml:ns:xmpp-sasl'%s%s%s>",
                     chosen ? "auth" : "response", chosen ? " mechanism='" : "",
                     chosen ? chosen : "", chosen ? "'" : "");
            strcat(tmp, "=</");
            strcat(tmp, chosen ? "auth>" : "response>");
        } else {
            char enc[4096];
            sasl_encode64(out, outlen, enc, sizeof(enc), &el);
            if (chosen)
                snprintf(tmp, sizeof(tmp),
                         "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                         "mechanism='%s'>%s</auth>",
                         chosen, enc);
            else
                snprintf(
                    tmp, sizeof(tmp),
                    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>",
                    enc);
        }
        chosen = NULL;
        send_str(tmp);
        if (!read_until("</"))
            die("sasl-answer");
        if (strstr(buf, "<failure")) {
            char *c = strstr(buf, "<failure");
            c = strchr(c, '>');
            c = c ? strchr(c, '<') : NULL;
            printf("RESULT=failure condition=%.*s\n", c ? (int)strcspn(c + 1, " />") : 1,
                   c ? c + 1 : "?");
            finish(1);
        }
        if (strstr(buf, "<success")) {
            char dec[4096];
            unsigned dl = 0;
            t = element_text("success");
            if (t && *t &&
                sasl_decode64(t, (unsigned)strlen(t), dec, sizeof(dec), &dl) == SASL_OK)
                r = sasl_client_step(conn, dec, dl, NULL, &out, &outlen);
            else
                r = SASL_OK;
            free(t);
            if (r != SASL_OK) {
                printf("RESULT=error what=server-signature detail=%s\n",
                       sasl_errdetail(conn));
                finish(2);
            }
            break;
        }
        t = element_text("challenge");
        if (t == NULL)
            die("no-challenge");
        {
            char dec[4096];
            unsigned dl = 0;
            if (*t &&
                sasl_decode64(t, (unsigned)strlen(t), dec, sizeof(dec), &dl) != SASL_OK)
                die("challenge-b64");
            r = sasl_client_step(conn, dec, dl, NULL, &out, &outlen);
        }
        free(t);
        if (r != SASL_OK && r != SASL_CONTINUE) {
            printf("RESULT=error what=client-step detail=%s\n", sasl_errdetail(conn));
            finish(2);
        }
    }
    send_str(hdr);
    if (!read_until("</stream:features>"))
        die("post-auth-features");
    send_str("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>xcb</resource></bind></iq>");
    if (!read_until("</iq>"))
        die("bind");
    {
        char *j = element_text("jid");
        printf("RESULT=ok mech=%s cb=%s tls=%s jid=%s\n", mech, cbtype,
               SSL_get_version(ssl), j ? j : "-");
        free(j);
    }
    send_str("</stream:stream>");
    finish(0);
    return 0;
}
