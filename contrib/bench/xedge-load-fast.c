/* xedge-load's re-login mode (see xedge-load.c): SASL2 (XEP-0388) logins, a
 * FAST token (XEP-0484) requested with the first login and kept, the TLS
 * session of the newest ticket kept, and the re-login with both: TLS
 * resumption and HT-SHA-256-NONE or -EXPR. The HMACs are OpenSSL's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sasl/saslutil.h>

#include "xedge-load.h"

#define NS_SASL2 "urn:xmpp:sasl:2"
#define NS_FAST "urn:xmpp:fast:0"

static unsigned run_id; /* the user agents' ids: xl-RUN-INDEX */

/* TLS 1.3 tickets come after the handshake; keep the newest one's session. */
static int
new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct sess *s = SSL_get_app_data(ssl);
    if (!s)
        return 0;
    if (s->tls_sess)
        SSL_SESSION_free(s->tls_sess);
    s->tls_sess = sess;
    return 1; /* the reference is ours */
}

int
xl_fast_ctx(SSL_CTX *ctx)
{
    if (RAND_bytes((unsigned char *)&run_id, sizeof(run_id)) != 1)
        return -1;
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    return 0;
}

/* After SSL_new: the tickets come back to S; a re-login offers the newest. */
void
xl_fast_ssl(struct sess *s)
{
    SSL_set_app_data(s->ssl, s);
    if (s->relogin && s->tls_sess)
        SSL_set_session(s->ssl, s->tls_sess);
}

/* <authenticate> with the initial response IR and the extensions: the user
 * agent, Bind2 (--bind2), <request-token> (a first login with --fast) or
 * <fast/> (a re-login). */
int
xl_sasl2_send(struct sess *s, const char *mech, const char *ir, unsigned irlen)
{
    char b64[2048], buf[4096];
    char req[160] = "";
    unsigned el = 0;
    int n;

    if (irlen && sasl_encode64(ir, irlen, b64, sizeof(b64), &el) != SASL_OK)
        return -1;
    b64[el] = 0;
    if (s->relogin)
        snprintf(req, sizeof(req), "<fast xmlns='" NS_FAST "'/>");
    else if (o.fast)
        snprintf(req, sizeof(req), "<request-token xmlns='" NS_FAST "' mechanism='%s'/>",
                 o.fast);
    n = snprintf(
        buf, sizeof(buf),
        "<authenticate xmlns='" NS_SASL2 "' mechanism='%s'>"
        "<initial-response>%s</initial-response>"
        "<user-agent id='xl-%08x-%u'><software>xedge-load</software></user-agent>"
        "%s%s</authenticate>",
        mech, el ? b64 : "=", run_id, s->idx,
        o.bind2 ? "<bind xmlns='urn:xmpp:bind:0'><tag>xedge-load</tag></bind>" : "", req);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -1;
    send_str(s, buf);
    return 0;
}

/* HMAC-SHA-256(token, LABEL || cb-data): the HT-SHA-256-* proofs. */
static int
ht(struct sess *s, const char *label, unsigned char md[32])
{
    unsigned char msg[16 + 32];
    size_t ll = strlen(label), n = ll;
    unsigned mdlen = 0;

    memcpy(msg, label, ll);
    if (!strcmp(o.fast, "HT-SHA-256-EXPR")) {
        memcpy(msg + ll, s->ht_cb, 32);
        n += 32;
    }
    if (!HMAC(EVP_sha256(), s->token, (int)strlen(s->token), msg, n, md, &mdlen) ||
        mdlen != 32)
        return -1;
    return 0;
}

/* A re-login's <authenticate>: authcid NUL HMAC(token, "Initiator" || cb). */
int
xl_fast_start(struct sess *s)
{
    char ir[XL_NAME_MAX + 40];
    const char *p = strstr(o.user_fmt, "%u");
    int n;

    if (!s->token)
        return -1;
    if (!strcmp(o.fast, "HT-SHA-256-EXPR") &&
        SSL_export_keying_material(s->ssl, s->ht_cb, 32, "EXPORTER-Channel-Binding", 24,
                                   NULL, 0, 0) != 1)
        return -1;
    if (p)
        n = snprintf(ir, XL_NAME_MAX, "%.*s%u%s", (int)(p - o.user_fmt), o.user_fmt,
                     s->idx + o.user_offset, p + 2);
    else
        n = snprintf(ir, XL_NAME_MAX, "%s", o.user_fmt);
    if (n < 0 || n >= XL_NAME_MAX)
        return -1;
    ir[n] = 0; /* the NUL between authcid and proof */
    if (ht(s, "Initiator", (unsigned char *)ir + n + 1) < 0)
        return -1;
    return xl_sasl2_send(s, o.fast, ir, (unsigned)n + 33);
}

/* The success's additional data: HMAC(token, "Responder" || cb). 0: it is. */
int
xl_fast_verify(struct sess *s, const char *b64, size_t len)
{
    char dec[128];
    unsigned dl = 0;
    unsigned char md[32];

    if (!b64 || sasl_decode64(b64, (unsigned)len, dec, sizeof(dec), &dl) != SASL_OK ||
        dl != 32 || ht(s, "Responder", md) < 0)
        return -1;
    return CRYPTO_memcmp(dec, md, 32) == 0 ? 0 : -1;
}

int
xl_fast_keep_token(struct sess *s, const char *tok)
{
    size_t l = strlen(tok);
    if (l == 0 || l >= XL_TOKEN_MAX)
        return -1;
    if (s->token)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->token);
    s->token = strdup(tok);
    return s->token ? 0 : -1;
}

void
xl_fast_free(struct sess *s)
{
    if (s->tls_sess)
        SSL_SESSION_free(s->tls_sess);
    s->tls_sess = NULL;
    if (s->token)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->token);
    s->token = NULL;
}
