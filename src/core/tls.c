/* xedge: TLS on memory BIOs. See tls.h. */
#include "tls.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/buffer.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "jidprep.h"
#include "util.h"
#include "xelimits.h"

struct dom_ctx {
    char *domain;
    SSL_CTX *ctx;
    /* the session ID context: a session resumes only where it was made */
    unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
    /* the domain's own parameters, when they are not the default domain's:
     * a connection switched to it by SNI takes them */
    struct xe_tls_settings own;
    bool has_own;
};

struct xe_tls_ctx {
    struct dom_ctx *doms;
    size_t n;
    unsigned char *alpn; /* wire format, or NULL */
    size_t alpn_len;
    unsigned char *ticket_keys; /* XE_TLS_TICKET_KEY_BYTES each, or NULL */
    size_t n_ticket_keys;
};

struct xe_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* rbio: ciphertext from the peer; wbio: to the peer */
    struct xe_tls_ctx *ctx;
    bool client;
    bool fixed; /* STARTTLS: the stream's `to` chose the domain, not the SNI */
    /* a BIO held more than half of XE_TLS_BIO_KEEP since it was last empty:
     * it may have grown past it (the trim looks only then) */
    bool rbio_big, wbio_big;
    char err[256];
};

static void
ssl_error_string(char *buf, size_t len, const char *what)
{
    unsigned long e = ERR_get_error();
    char tmp[200];

    if (e) {
        ERR_error_string_n(e, tmp, sizeof(tmp));
        snprintf(buf, len, "%s: %s", what, tmp);
    } else {
        snprintf(buf, len, "%s", what);
    }
    ERR_clear_error();
}

static struct dom_ctx *
lookup(struct xe_tls_ctx *c, const char *domain)
{
    char folded[XE_JIDPREP_PART_MAX + 1];

    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->doms[i].domain, domain) == 0)
            return &c->doms[i];
    /* an internationalized domain: the SNI has its A-labels (xn--), the
     * configuration its nameprep form (conf.h) */
    if (xe_jidprep_domain_ace(domain, strlen(domain), folded, sizeof(folded), NULL) !=
            0 ||
        strcmp(folded, domain) == 0)
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->doms[i].domain, folded) == 0)
            return &c->doms[i];
    return NULL;
}

/* The host_name of a ClientHello's server_name extension (RFC 6066 3), or
 * false. */
static bool
sni_name(const unsigned char *p, size_t len, char *out, size_t max)
{
    size_t list;

    if (len < 2)
        return false;
    list = (size_t)p[0] << 8 | p[1];
    p += 2, len -= 2;
    if (list != len)
        return false;
    while (len >= 3) {
        unsigned type = p[0];
        size_t l = (size_t)p[1] << 8 | p[2];
        p += 3, len -= 3;
        if (l > len)
            return false;
        if (type == TLSEXT_NAMETYPE_host_name) {
            if (l == 0 || l >= max || memchr(p, '\0', l) != NULL)
                return false;
            memcpy(out, p, l);
            out[l] = '\0';
            return true;
        }
        p += l, len -= l;
    }
    return false;
}

/* TLS parameters onto a connection switched to another domain's context. */
static int
apply_ssl_settings(SSL *ssl, const struct xe_tls_settings *s)
{
    if (SSL_set_min_proto_version(ssl, s->min_version ? s->min_version
                                                      : TLS1_2_VERSION) != 1 ||
        SSL_set_cipher_list(ssl, s->ciphers ? s->ciphers : XE_TLS_DEFAULT_CIPHERS) != 1 ||
        SSL_set_ciphersuites(ssl, s->ciphersuites ? s->ciphersuites
                                                  : XE_TLS_DEFAULT_CIPHERSUITES) != 1 ||
        SSL_set1_groups_list(ssl, s->groups ? s->groups : XE_TLS_DEFAULT_GROUPS) != 1)
        return -1;
    return 0;
}

/* Direct TLS: the domain is the SNI's, chosen here, first thing in the
 * ClientHello's processing: the session the client offers is then looked
 * at under that domain's session ID context (a session of another domain,
 * or of another client_ca, is not resumed), a client certificate verified
 * against its client_ca, and the version and suites negotiated with its
 * parameters. (The servername callback comes after the session lookup, and
 * SSL_set_SSL_CTX there would leave the session's context and the suites
 * the default domain's.) STARTTLS keeps the domain of the stream's `to`. */
static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    struct xe_tls_ctx *c = arg;
    const struct xe_tls *t = SSL_get_app_data(ssl);
    const unsigned char *p = NULL;
    size_t len = 0;
    char name[256];
    struct dom_ctx *d;

    if (t == NULL || t->fixed ||
        SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 ||
        !sni_name(p, len, name, sizeof(name)) || (d = lookup(c, name)) == NULL ||
        d->ctx == SSL_get_SSL_CTX(ssl))
        return SSL_CLIENT_HELLO_SUCCESS; /* the context it was made with */
    if (SSL_set_SSL_CTX(ssl, d->ctx) == NULL ||
        SSL_set_session_id_context(ssl, d->sid, sizeof(d->sid)) != 1 ||
        (d->has_own && apply_ssl_settings(ssl, &d->own) < 0)) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    /* SSL_set_SSL_CTX takes the certificate, not the client verification */
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(d->ctx),
                   SSL_CTX_get_verify_callback(d->ctx));
    if (SSL_CTX_get_client_CA_list(d->ctx))
        SSL_set_client_CA_list(ssl, SSL_dup_CA_list(SSL_CTX_get_client_CA_list(d->ctx)));
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Acknowledges a name that is the domain of the context in use. */
static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
    struct xe_tls_ctx *c = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    struct dom_ctx *d;

    if (name == NULL || (d = lookup(c, name)) == NULL || d->ctx != SSL_get_SSL_CTX(ssl))
        return SSL_TLSEXT_ERR_NOACK; /* the stream's to decides */
    return SSL_TLSEXT_ERR_OK;
}

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
        const unsigned char *in, unsigned int inlen, void *arg)
{
    struct xe_tls_ctx *c = arg;
    unsigned char *sel = NULL;

    if (c->alpn == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned int)c->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* a client that speaks another protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* A client certificate that does not verify does not fail the handshake:
 * the client just cannot use EXTERNAL (xe_tls_peer_identities checks the
 * verification result). */
static int
accept_any(int preverify_ok, X509_STORE_CTX *x509_ctx)
{
    return 1;
}

/* TLS parameters onto a context; -1 and *setting_r, err when OpenSSL
 * refuses one, or a name in a list is unknown (OpenSSL skips those). */
static int
apply_ctx_settings(SSL_CTX *ctx, const struct xe_tls_settings *s, const char **setting_r,
                   char *err, size_t errlen)
{
    const char *ciphers = s && s->ciphers ? s->ciphers : XE_TLS_DEFAULT_CIPHERS;
    const char *suites =
        s && s->ciphersuites ? s->ciphersuites : XE_TLS_DEFAULT_CIPHERSUITES;
    const char *groups = s && s->groups ? s->groups : XE_TLS_DEFAULT_GROUPS;
    int minv = s && s->min_version ? s->min_version : TLS1_2_VERSION;
    char tok[128];

    if (SSL_CTX_set_min_proto_version(ctx, minv) != 1) {
        *setting_r = "min_version";
        ssl_error_string(err, errlen, "not a version this OpenSSL can do");
        return -1;
    }
    /* each plain name in the TLS 1.2 list must select a suite by itself */
    for (const char *p = ciphers; *p;) {
        size_t l = strcspn(p, ": ,");
        if (l > 0 && l < sizeof(tok) && strchr("!-+@", *p) == NULL) {
            memcpy(tok, p, l);
            tok[l] = '\0';
            if (SSL_CTX_set_cipher_list(ctx, tok) != 1) {
                *setting_r = "ciphers";
                snprintf(err, errlen, "'%s' names no TLS 1.2 cipher suite", tok);
                ERR_clear_error();
                return -1;
            }
        }
        p += l;
        p += strspn(p, ": ,");
    }
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        *setting_r = "ciphers";
        ssl_error_string(err, errlen, "no TLS 1.2 cipher suite in the list");
        return -1;
    }
    for (const char *p = suites; *p;) {
        size_t l = strcspn(p, ":");
        STACK_OF(SSL_CIPHER) * sk;
        bool known = false;
        if (l >= sizeof(tok))
            l = sizeof(tok) - 1;
        memcpy(tok, p, l);
        tok[l] = '\0';
        if (SSL_CTX_set_ciphersuites(ctx, tok) == 1 && (sk = SSL_CTX_get_ciphers(ctx)))
            for (int i = 0; i < sk_SSL_CIPHER_num(sk) && !known; i++)
                known = strcmp(SSL_CIPHER_get_version(sk_SSL_CIPHER_value(sk, i)),
                               "TLSv1.3") == 0;
        if (!known) {
            *setting_r = "ciphersuites";
            snprintf(err, errlen, "'%s' is not a TLS 1.3 cipher suite", tok);
            ERR_clear_error();
            return -1;
        }
        p += strcspn(p, ":");
        p += strspn(p, ":");
    }
    if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
        *setting_r = "ciphersuites";
        ssl_error_string(err, errlen, "no TLS 1.3 cipher suite in the list");
        return -1;
    }
    if (SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        *setting_r = "groups";
        ssl_error_string(err, errlen, "an unknown group in the list");
        return -1;
    }
    return 0;
}

int
xe_tls_settings_check(const struct xe_tls_settings *s, const char **setting_r,
                      char **error_r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char err[512];
    int r = -1;

    *setting_r = NULL;
    if (ctx == NULL) {
        *setting_r = "tls";
        ssl_error_string(err, sizeof(err), "SSL_CTX_new");
    } else if (s->min_version != 0 && s->min_version != TLS1_2_VERSION &&
               s->min_version != TLS1_3_VERSION) {
        *setting_r = "min_version";
        snprintf(err, sizeof(err), "must be \"TLSv1.2\" or \"TLSv1.3\"");
    } else {
        r = apply_ctx_settings(ctx, s, setting_r, err, sizeof(err));
    }
    if (r < 0)
        *error_r = xe_strdup(err);
    SSL_CTX_free(ctx);
    return r;
}

static bool
str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
settings_eq(const struct xe_tls_settings *a, const struct xe_tls_settings *b)
{
    static const struct xe_tls_settings none;

    a = a ? a : &none, b = b ? b : &none;
    return str_eq(a->ciphers, b->ciphers) && str_eq(a->ciphersuites, b->ciphersuites) &&
           str_eq(a->groups, b->groups) &&
           (a->min_version ? a->min_version : TLS1_2_VERSION) ==
               (b->min_version ? b->min_version : TLS1_2_VERSION);
}

/* The session ID context of a domain's context: a hash of what a session
 * made there vouches for: the listener's protocol (ALPN), the domain, and
 * the trust its client certificate was verified with (the client_ca file's
 * name and content). A change of client_ca in a reload gives new contexts. */
static int
session_context(const char *alpn, const struct xe_tls_cert *cert, unsigned char *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[4096];
    unsigned int len = 0;
    FILE *f = NULL;
    int r = -1;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    EVP_DigestUpdate(md, "xedge session context 1", 24);
    EVP_DigestUpdate(md, alpn ? alpn : "", alpn ? strlen(alpn) + 1 : 1);
    for (const char *p = cert->domain; *p; p++) { /* SNI is case-insensitive */
        unsigned char ch = (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        EVP_DigestUpdate(md, &ch, 1);
    }
    if (cert->client_ca) {
        size_t n;
        EVP_DigestUpdate(md, cert->client_ca, strlen(cert->client_ca) + 1);
        if ((f = fopen(cert->client_ca, "rb")) == NULL)
            goto out;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            EVP_DigestUpdate(md, buf, n);
        if (ferror(f))
            goto out;
    }
    if (EVP_DigestFinal_ex(md, out, &len) != 1 || len != SSL_MAX_SID_CTX_LENGTH)
        goto out;
    r = 0;
out:
    if (f)
        fclose(f);
    EVP_MD_CTX_free(md);
    return r;
}

int
xe_tls_ticket_keys_read(const char *path, unsigned char **keys_r, size_t *len_r,
                        char **error_r)
{
    enum { MAX = XE_TLS_TICKET_KEY_BYTES * XE_TLS_TICKET_KEYS_MAX };
    unsigned char buf[MAX + 1];
    struct stat st;
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        *error_r = xe_asprintf("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *error_r = xe_asprintf("'%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRWXO | S_IWGRP)) {
        *error_r = xe_asprintf("'%s' is accessible to others or writable by its group "
                               "(mode %04o): the keys decrypt every session; "
                               "chmod 600 or 640",
                               path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return -1;
    }
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *error_r = xe_asprintf("cannot read '%s': %s", path, strerror(errno));
            close(fd);
            OPENSSL_cleanse(buf, sizeof(buf));
            return -1;
        }
        len += (size_t)n;
    }
    close(fd);
    if (len == 0 || len > MAX || len % XE_TLS_TICKET_KEY_BYTES != 0) {
        *error_r = xe_asprintf("'%s' holds %s%zu bytes: it must hold 1 to %d keys of %d "
                               "bytes each (openssl rand %d > file)",
                               path, len > MAX ? "more than " : "", len > MAX ? MAX : len,
                               XE_TLS_TICKET_KEYS_MAX, XE_TLS_TICKET_KEY_BYTES,
                               XE_TLS_TICKET_KEY_BYTES);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    *keys_r = xe_malloc(len);
    memcpy(*keys_r, buf, len);
    *len_r = len;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* Session tickets under the key file's keys (RFC 5077's layout, as
 * OpenSSL's own: a 16-byte key name, AES-256-CBC, HMAC-SHA256). */
static int
ticket_key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
              EVP_MAC_CTX *hctx, int enc)
{
    const struct xe_tls *t = SSL_get_app_data(ssl);
    const struct xe_tls_ctx *c = t ? t->ctx : NULL;
    const unsigned char *k = NULL;
    size_t i = 0;
    OSSL_PARAM params[3];

    if (c == NULL || c->n_ticket_keys == 0)
        return -1;
    if (enc) {
        k = c->ticket_keys;
        memcpy(name, k, 16);
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k + 48, iv) != 1)
            return -1;
    } else {
        for (i = 0; i < c->n_ticket_keys && k == NULL; i++)
            if (memcmp(name, c->ticket_keys + i * XE_TLS_TICKET_KEY_BYTES, 16) == 0)
                k = c->ticket_keys + i * XE_TLS_TICKET_KEY_BYTES;
        if (k == NULL)
            return 0; /* a key no longer in the file: a full handshake */
        if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k + 48, iv) != 1)
            return -1;
    }
    params[0] =
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(k + 16), 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    /* renew a ticket under a key after the first (under the first); on
     * TLS 1.3 every resumption gets a fresh ticket, as with OpenSSL's own
     * keys (RFC 8446 C.4: tickets single-use where they can be) */
    return enc || (i == 1 && SSL_version(ssl) != TLS1_3_VERSION) ? 1 : 2;
}

static SSL_CTX *
make_ctx(struct xe_tls_ctx *c, struct dom_ctx *dom, const struct xe_tls_cert *cert,
         const char *alpn, char **error_r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char err[512];
    const char *setting = NULL;

    if (ctx == NULL) {
        ssl_error_string(err, sizeof(err), "SSL_CTX_new");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(ctx, XE_TLS_SESSION_TICKETS);
    if (apply_ctx_settings(ctx, cert->settings, &setting, err, sizeof(err)) < 0) {
        SSL_CTX_free(ctx);
        *error_r = xe_asprintf("domain %s: tls.%s: %s", cert->domain, setting, err);
        return NULL;
    }
    if (session_context(alpn, cert, dom->sid) < 0 ||
        SSL_CTX_set_session_id_context(ctx, dom->sid, sizeof(dom->sid)) != 1) {
        snprintf(err, sizeof(err), "domain %s: cannot make the session ID context",
                 cert->domain);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert->certificate) != 1) {
        char what[300];
        snprintf(what, sizeof(what), "domain %s: cannot load certificate '%s'",
                 cert->domain, cert->certificate);
        ssl_error_string(err, sizeof(err), what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cert->key, SSL_FILETYPE_PEM) != 1) {
        char what[300];
        snprintf(what, sizeof(what), "domain %s: cannot load key '%s'", cert->domain,
                 cert->key);
        ssl_error_string(err, sizeof(err), what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        char what[300];
        snprintf(what, sizeof(what),
                 "domain %s: key '%s' does not match certificate '%s'", cert->domain,
                 cert->key, cert->certificate);
        ssl_error_string(err, sizeof(err), what);
        goto fail;
    }
    if (cert->client_ca) {
        /* ask for a client certificate (EXTERNAL), but do not require one */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cert->client_ca);
        if (names == NULL ||
            SSL_CTX_load_verify_locations(ctx, cert->client_ca, NULL) != 1) {
            char what[300];
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(what, sizeof(what), "domain %s: cannot load client_ca '%s'",
                     cert->domain, cert->client_ca);
            ssl_error_string(err, sizeof(err), what);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any);
    }
    /* A certificate file without its chain: OpenSSL looks for one in the
     * context's store at every handshake (an X509_STORE_CTX and a
     * verification per handshake, more with a client_ca); the same search
     * done once here, its result (possibly no certificate beyond the leaf)
     * kept as the chain, which turns the per-handshake search off for
     * every connection that uses this context. A file with a chain is sent
     * as it is, as before. (If the search fails, e.g. a CA below the
     * security level, nothing is kept: the handshake searches, as before.) */
    {
        STACK_OF(X509) *chain = NULL;
        if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && sk_X509_num(chain) <= 0)
            (void)SSL_CTX_build_cert_chain(ctx, SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR);
        ERR_clear_error(); /* an incomplete chain is not an error: as before */
    }
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, c);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, c);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, c);
    if (c->n_ticket_keys > 0 &&
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1) {
        ssl_error_string(err, sizeof(err), "cannot set the session ticket keys");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    *error_r = xe_strdup(err);
    return NULL;
}

int
xe_tls_ctx_new(const struct xe_tls_cert *certs, size_t n, const char *alpn,
               struct xe_tls_ctx **ctx_r, char **error_r)
{
    struct xe_tls_ctx *c = xe_calloc(1, sizeof(*c));

    c->doms = xe_calloc(n, sizeof(*c->doms));
    if (alpn) {
        size_t l = strlen(alpn);
        c->alpn = xe_malloc(l + 1);
        c->alpn[0] = (unsigned char)l;
        memcpy(c->alpn + 1, alpn, l);
        c->alpn_len = l + 1;
    }
    if (n > 0 && certs[0].ticket_keys &&
        certs[0].ticket_keys_len >= XE_TLS_TICKET_KEY_BYTES) {
        c->n_ticket_keys = certs[0].ticket_keys_len / XE_TLS_TICKET_KEY_BYTES;
        c->ticket_keys = xe_malloc(c->n_ticket_keys * XE_TLS_TICKET_KEY_BYTES);
        memcpy(c->ticket_keys, certs[0].ticket_keys,
               c->n_ticket_keys * XE_TLS_TICKET_KEY_BYTES);
    }
    for (size_t i = 0; i < n; i++) {
        c->doms[i].domain = xe_strdup(certs[i].domain);
        c->doms[i].ctx = make_ctx(c, &c->doms[i], &certs[i], alpn, error_r);
        if (!settings_eq(certs[i].settings, certs[0].settings)) {
            const struct xe_tls_settings *o = certs[i].settings;
            c->doms[i].has_own = true;
            c->doms[i].own.ciphers = o->ciphers ? xe_strdup(o->ciphers) : NULL;
            c->doms[i].own.ciphersuites =
                o->ciphersuites ? xe_strdup(o->ciphersuites) : NULL;
            c->doms[i].own.groups = o->groups ? xe_strdup(o->groups) : NULL;
            c->doms[i].own.min_version = o->min_version;
        }
        c->n = i + 1;
        if (c->doms[i].ctx == NULL) {
            xe_tls_ctx_free(&c);
            return -1;
        }
    }
    *ctx_r = c;
    return 0;
}

void
xe_tls_ctx_free(struct xe_tls_ctx **cp)
{
    struct xe_tls_ctx *c = *cp;

    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        SSL_CTX_free(c->doms[i].ctx);
        free(c->doms[i].domain);
        free(c->doms[i].own.ciphers);
        free(c->doms[i].own.ciphersuites);
        free(c->doms[i].own.groups);
    }
    free(c->doms);
    free(c->alpn);
    if (c->ticket_keys)
        OPENSSL_cleanse(c->ticket_keys, c->n_ticket_keys * XE_TLS_TICKET_KEY_BYTES);
    free(c->ticket_keys);
    free(c);
    *cp = NULL;
}

static struct xe_tls *
tls_wrap(SSL *ssl)
{
    struct xe_tls *t;

    if (ssl == NULL)
        return NULL;
    t = xe_calloc(1, sizeof(*t));
    t->ssl = ssl;
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(ssl);
        free(t);
        return NULL;
    }
    /* an empty memory BIO reports "retry", not EOF */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(ssl, t->rbio, t->wbio);
    return t;
}

struct xe_tls *
xe_tls_new(struct xe_tls_ctx *ctx, const char *domain)
{
    struct dom_ctx *d = domain ? lookup(ctx, domain) : NULL;
    struct xe_tls *t;

    t = tls_wrap(SSL_new(d ? d->ctx : ctx->doms[0].ctx));
    if (t == NULL)
        return NULL;
    t->ctx = ctx;
    t->fixed = domain != NULL;
    SSL_set_app_data(t->ssl, t);
    SSL_set_accept_state(t->ssl);
    return t;
}

/* A client side made: its SNI and ALPN, then the connect state. */
static struct xe_tls *
client_start(struct xe_tls *t, const char *sni, const char *alpn)
{
    t->client = true;
    if (sni)
        SSL_set_tlsext_host_name(t->ssl, sni);
    if (alpn) {
        unsigned char wire[256];
        size_t l = strlen(alpn);
        if (l < 255) {
            wire[0] = (unsigned char)l;
            memcpy(wire + 1, alpn, l);
            SSL_set_alpn_protos(t->ssl, wire, (unsigned)l + 1);
        }
    }
    SSL_set_connect_state(t->ssl);
    return t;
}

struct xe_tls *
xe_tls_new_client(const char *sni, const char *alpn)
{
    static SSL_CTX *cctx;
    struct xe_tls *t;

    if (cctx == NULL) {
        cctx = SSL_CTX_new(TLS_client_method());
        if (cctx == NULL)
            return NULL;
        SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    }
    t = tls_wrap(SSL_new(cctx));
    if (t == NULL)
        return NULL;
    return client_start(t, sni, alpn);
}

struct xe_tls_client_ctx {
    SSL_CTX *ssl;
};

int
xe_tls_client_ctx_new(const char *certificate, const char *key, const char *ca_file,
                      struct xe_tls_client_ctx **ctx_r, char **error_r)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    const char *bad = NULL, *file = NULL;

    *ctx_r = NULL;
    char what[300], err[600];

    if (cctx == NULL) {
        ssl_error_string(err, sizeof(err), "cannot make a TLS client context");
        *error_r = xe_strdup(err);
        return -1;
    }
    SSL_CTX_set_min_proto_version(cctx, TLS1_2_VERSION);
    SSL_CTX_set_options(cctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* a certificate that does not verify does not fail the handshake: the
     * remote just cannot be authenticated by it (dialback then) */
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, accept_any);
    if (ca_file && SSL_CTX_load_verify_locations(cctx, ca_file, NULL) != 1)
        bad = "trust anchors", file = ca_file;
    else if (certificate && key &&
             SSL_CTX_use_certificate_chain_file(cctx, certificate) != 1)
        bad = "certificate", file = certificate;
    else if (certificate && key &&
             SSL_CTX_use_PrivateKey_file(cctx, key, SSL_FILETYPE_PEM) != 1)
        bad = "key", file = key;
    if (bad) {
        snprintf(what, sizeof(what), "cannot load %s '%s' for outgoing TLS", bad, file);
        ssl_error_string(err, sizeof(err), what);
        *error_r = xe_strdup(err);
        SSL_CTX_free(cctx);
        return -1;
    }
    *ctx_r = xe_calloc(1, sizeof(**ctx_r));
    (*ctx_r)->ssl = cctx;
    return 0;
}

void
xe_tls_client_ctx_free(struct xe_tls_client_ctx **ctxp)
{
    if (*ctxp == NULL)
        return;
    SSL_CTX_free((*ctxp)->ssl);
    free(*ctxp);
    *ctxp = NULL;
}

struct xe_tls *
xe_tls_new_s2s_client(const struct xe_tls_client_ctx *ctx, const char *sni,
                      const char *alpn)
{
    struct xe_tls *t = tls_wrap(SSL_new(ctx->ssl));

    if (t == NULL)
        return NULL;
    return client_start(t, sni, alpn);
}

void
xe_tls_free(struct xe_tls **tp)
{
    struct xe_tls *t = *tp;

    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees the BIOs too */
    free(t);
    *tp = NULL;
}

static void trim_rbio(struct xe_tls *t);
static void trim_wbio(struct xe_tls *t);

int
xe_tls_feed(struct xe_tls *t, const void *data, size_t len)
{
    while (len > 0) {
        int n = BIO_write(t->rbio, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            snprintf(t->err, sizeof(t->err), "cannot buffer TLS input");
            return -1;
        }
        data = (const char *)data + n;
        len -= (size_t)n;
    }
    if (!t->rbio_big && BIO_ctrl_pending(t->rbio) > XE_TLS_BIO_KEEP / 2)
        t->rbio_big = true;
    return 0;
}

static int
map_error(struct xe_tls *t, int ret, const char *what)
{
    int e = SSL_get_error(t->ssl, ret);

    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return XE_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return XE_TLS_CLOSED;
    default:
        ssl_error_string(t->err, sizeof(t->err), what);
        return XE_TLS_ERROR;
    }
}

int
xe_tls_handshake(struct xe_tls *t)
{
    int r = SSL_do_handshake(t->ssl);

    if (r == 1)
        return XE_TLS_DONE;
    return map_error(t, r, "TLS handshake failed");
}

int
xe_tls_read(struct xe_tls *t, void *buf, size_t len)
{
    int r = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

    if (r > 0)
        return r;
    r = map_error(t, r, "TLS read failed");
    if (r == XE_TLS_WANT && t->rbio_big)
        trim_rbio(t); /* all read: a large read's capacity is not kept */
    return r;
}

int
xe_tls_write(struct xe_tls *t, const void *data, size_t len)
{
    while (len > 0) {
        int r = SSL_write(t->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (r <= 0) {
            map_error(t, r, "TLS write failed");
            return XE_TLS_ERROR;
        }
        data = (const char *)data + r;
        len -= (size_t)r;
    }
    return 0;
}

void
xe_tls_shutdown(struct xe_tls *t)
{
    if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t
xe_tls_out_pending(struct xe_tls *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t
xe_tls_out_take(struct xe_tls *t, void *buf, size_t len)
{
    size_t pending = BIO_ctrl_pending(t->wbio);
    int n = BIO_read(t->wbio, buf, len > INT32_MAX ? INT32_MAX : (int)len);

    if (pending > XE_TLS_BIO_KEEP / 2)
        t->wbio_big = true;
    if (n > 0 && (size_t)n == pending && t->wbio_big)
        trim_wbio(t); /* all taken: a large flight's capacity is not kept */
    return n > 0 ? (size_t)n : 0;
}

static size_t
bio_capacity(BIO *b)
{
    BUF_MEM *bm = NULL;

    BIO_get_mem_ptr(b, &bm); /* (syncs the read position first) */
    return bm ? bm->max : 0;
}

static BIO *
bio_renew(BIO *b, size_t keep)
{
    BIO *n;

    if (BIO_ctrl_pending(b) != 0 || bio_capacity(b) <= keep)
        return NULL;
    n = BIO_new(BIO_s_mem());
    if (n != NULL)
        BIO_set_mem_eof_return(n, -1); /* empty: "retry", not EOF */
    return n;
}

void
xe_tls_release_bios(struct xe_tls *t, size_t keep)
{
    BIO *r = bio_renew(t->rbio, keep), *w = bio_renew(t->wbio, keep);

    if (r != NULL) { /* the SSL owns its BIOs: set0 frees the old one */
        SSL_set0_rbio(t->ssl, r);
        t->rbio = r;
    }
    if (w != NULL) {
        SSL_set0_wbio(t->ssl, w);
        t->wbio = w;
    }
}

/* A memory BIO never gives back what it grew to: once empty, one that holds
 * more than XE_TLS_BIO_KEEP is replaced, on every connection (before
 * authentication too, issue 13: a connection that sent a large element and
 * then waits holds no ciphertext capacity). */
static void
trim_rbio(struct xe_tls *t)
{
    BIO *r = bio_renew(t->rbio, XE_TLS_BIO_KEEP);

    if (BIO_ctrl_pending(t->rbio) == 0)
        t->rbio_big = false; /* replaced, or never grew past XE_TLS_BIO_KEEP */
    if (r != NULL) {
        SSL_set0_rbio(t->ssl, r);
        t->rbio = r;
    }
}

static void
trim_wbio(struct xe_tls *t)
{
    BIO *w = bio_renew(t->wbio, XE_TLS_BIO_KEEP);

    t->wbio_big = false; /* (called only when empty) */
    if (w != NULL) {
        SSL_set0_wbio(t->ssl, w);
        t->wbio = w;
    }
}

size_t
xe_tls_bio_capacity(struct xe_tls *t)
{
    return bio_capacity(t->rbio) + bio_capacity(t->wbio);
}

const char *
xe_tls_version(const struct xe_tls *t)
{
    return SSL_get_version(t->ssl);
}

const char *
xe_tls_cipher(const struct xe_tls *t)
{
    return SSL_get_cipher_name(t->ssl);
}

const char *
xe_tls_sni(const struct xe_tls *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

bool
xe_tls_resumed(const struct xe_tls *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

const char *
xe_tls_alpn(const struct xe_tls *t, char *buf, size_t len)
{
    const unsigned char *p = NULL;
    unsigned int l = 0;

    SSL_get0_alpn_selected(t->ssl, &p, &l);
    if (p == NULL || l == 0 || l >= len)
        return NULL;
    memcpy(buf, p, l);
    buf[l] = '\0';
    return buf;
}

const char *
xe_tls_error(struct xe_tls *t)
{
    return t->err[0] ? t->err : "TLS error";
}

/* RFC 5929: the first Finished message of the latest handshake: the
 * client's in a full handshake, the server's in a resumed one. Computed the
 * same way on TLS 1.3, as the clients that use it there do. */
static size_t
tls_unique(const struct xe_tls *t, unsigned char *out, size_t max)
{
    bool first_is_ours = SSL_session_reused(t->ssl) ? !t->client : t->client;

    return first_is_ours ? SSL_get_finished(t->ssl, out, max)
                         : SSL_get_peer_finished(t->ssl, out, max);
}

/* RFC 9266 */
static size_t
tls_exporter(const struct xe_tls *t, unsigned char *out, size_t max)
{
    static const char label[] = "EXPORTER-Channel-Binding";

    if (max < 32 || SSL_export_keying_material(t->ssl, out, 32, label, sizeof(label) - 1,
                                               NULL, 0, 0) != 1)
        return 0;
    return 32;
}

static const char cb_end_point[] = "tls-server-end-point";

/* The server's certificate: ours on the server side (the one the SNI
 * chose), the peer's on a client side. Not a new reference. */
static X509 *
server_cert(const struct xe_tls *t)
{
    return t->client ? SSL_get0_peer_certificate(t->ssl) : SSL_get_certificate(t->ssl);
}

/* RFC 5929 4.1: the hash of tls-server-end-point is the certificate's
 * signature hash, SHA-256 for MD5 and SHA-1; none for a signature without
 * one (Ed25519: no binding). */
static const EVP_MD *
end_point_md(X509 *x)
{
    int md_nid = NID_undef;

    if (x == NULL || X509_get_signature_info(x, &md_nid, NULL, NULL, NULL) != 1)
        return NULL;
    if (md_nid == NID_md5 || md_nid == NID_sha1)
        return EVP_sha256();
    return md_nid == NID_undef ? NULL : EVP_get_digestbynid(md_nid);
}

static size_t
tls_server_end_point(const struct xe_tls *t, unsigned char *out, size_t max)
{
    X509 *x = server_cert(t);
    const EVP_MD *md = end_point_md(x);
    unsigned int len = 0;

    if (md == NULL || (size_t)EVP_MD_get_size(md) > max ||
        X509_digest(x, md, out, &len) != 1)
        return 0;
    return len;
}

size_t
xe_tls_channel_bindings(const struct xe_tls *t, bool tls13_unique, struct xe_cbind *out,
                        size_t max)
{
    int v = SSL_version(t->ssl);
    size_t n = 0;

    if (!SSL_is_init_finished(t->ssl))
        return 0;
    if (v == TLS1_3_VERSION) {
        if (n < max) { /* derived when used: xe_cbind_fill */
            out[n].len = 0;
            out[n].lazy = t;
            out[n].type = "tls-exporter";
            out[n++].advertise = true;
        }
        if (tls13_unique && n < max &&
            (out[n].len = tls_unique(t, out[n].data, XE_CB_DATA_MAX)) > 0) {
            out[n].lazy = NULL;
            out[n].type = "tls-unique";
            out[n++].advertise = false;
        }
    } else if (SSL_get_extms_support(t->ssl) == 1) {
        /* without the extended master secret (RFC 7627), neither tls-unique
         * nor the exporter identifies this connection (the triple
         * handshake); the certificate's hash below still binds */
        if (n < max && (out[n].len = tls_unique(t, out[n].data, XE_CB_DATA_MAX)) > 0) {
            out[n].lazy = NULL;
            out[n].type = "tls-unique";
            out[n++].advertise = true;
        }
        if (n < max) {
            out[n].len = 0;
            out[n].lazy = t;
            out[n].type = "tls-exporter";
            out[n++].advertise = true;
        }
    }
    if (n < max && end_point_md(server_cert(t)) != NULL) { /* hashed when used */
        out[n].len = 0;
        out[n].lazy = t;
        out[n].type = cb_end_point;
        out[n++].advertise = true;
    }
    ERR_clear_error();
    return n;
}

size_t
xe_cbind_fill(struct xe_cbind *cb)
{
    if (cb->len == 0 && cb->lazy != NULL) {
        cb->len = cb->type == cb_end_point
                      ? tls_server_end_point(cb->lazy, cb->data, XE_CB_DATA_MAX)
                      : tls_exporter(cb->lazy, cb->data, XE_CB_DATA_MAX);
        cb->lazy = NULL;
        ERR_clear_error();
    }
    return cb->len;
}

/* domain: a server's name (no '@', no '/'), else a bare JID. */
static void
add_identity(char out[][3072], size_t max, size_t *n, const unsigned char *data, int len,
             bool domain)
{
    char jid[3072];

    if (*n >= max || len <= 0 || (size_t)len >= sizeof(jid) ||
        memchr(data, '\0', (size_t)len))
        return;
    memcpy(jid, data, (size_t)len);
    jid[len] = '\0';
    if (strchr(jid, '/') != NULL || (strchr(jid, '@') == NULL) != domain)
        return; /* a bare JID only (a server: a domain only) */
    xe_tolower_ascii(jid);
    for (size_t i = 0; i < *n; i++)
        if (strcmp(out[i], jid) == 0)
            return;
    memcpy(out[(*n)++], jid, (size_t)len + 1);
}

size_t
xe_tls_peer_identities(const struct xe_tls *t, unsigned rules, char out[][3072],
                       size_t max)
{
    X509 *peer;
    GENERAL_NAMES *sans;
    size_t n = 0;

    if (SSL_get_verify_result(t->ssl) != X509_V_OK)
        return 0;
    peer = SSL_get1_peer_certificate(t->ssl);
    if (peer == NULL)
        return 0;
    sans = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_OTHERNAME && (rules & XE_ID_XMPPADDR)) {
            static const char xmppaddr[] = "1.3.6.1.5.5.7.8.5";
            char oid[64];
            const ASN1_TYPE *v = g->d.otherName->value;
            /* a server's xmppAddr is a domain as it is: no wildcard
             * (RFC 6120 13.7.1.4), so no "*" in it (a user's may have one) */
            if (OBJ_obj2txt(oid, sizeof(oid), g->d.otherName->type_id, 1) > 0 &&
                strcmp(oid, xmppaddr) == 0 && v && v->type == V_ASN1_UTF8STRING &&
                !((rules & XE_ID_DNS) &&
                  memchr(ASN1_STRING_get0_data(v->value.utf8string), '*',
                         (size_t)ASN1_STRING_length(v->value.utf8string)) != NULL))
                add_identity(out, max, &n, ASN1_STRING_get0_data(v->value.utf8string),
                             ASN1_STRING_length(v->value.utf8string),
                             (rules & XE_ID_DNS) != 0);
        } else if (g->type == GEN_DNS && (rules & XE_ID_DNS)) {
            add_identity(out, max, &n, ASN1_STRING_get0_data(g->d.dNSName),
                         ASN1_STRING_length(g->d.dNSName), true);
        } else if (g->type == GEN_EMAIL && (rules & XE_ID_EMAIL)) {
            add_identity(out, max, &n, ASN1_STRING_get0_data(g->d.rfc822Name),
                         ASN1_STRING_length(g->d.rfc822Name), false);
        }
    }
    GENERAL_NAMES_free(sans);
    if (rules & XE_ID_CN) {
        X509_NAME *subj = X509_get_subject_name(peer);
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (idx >= 0) {
            ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
            add_identity(out, max, &n, ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn),
                         false);
        }
    }
    X509_free(peer);
    return n;
}
