/* xedge: the identity assertion (doc/assertion.md).
 *
 *   token = "xe1:" purpose ":" expiry ":" nonce ":" mac
 *   mac   = hex(HMAC-SHA256(secret, "xe1\n" purpose "\n" identity "\n" expiry "\n"
 * nonce))
 */
#include "assertion.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

static const char hexdigits[] = "0123456789abcdef";

static void
to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* HMAC-SHA256 keyed once per secret: a login signs one assertion, and
 * fetching the MAC and the digest from OpenSSL's providers and hashing the
 * key into its pads cost more than the MAC itself. A few secrets (one per
 * pool) are kept keyed; every call copies one (EVP_MAC_CTX_dup), under a
 * lock, as the event loops may sign at the same time. */
#define KEYED_MAX 8           /* secrets kept keyed */
#define KEYED_SECRET_MAX 1024 /* longer secrets are keyed on every call */

static struct {
    EVP_MAC_CTX *ctx;
    unsigned char secret[KEYED_SECRET_MAX];
    size_t len;
} keyed[KEYED_MAX];
static size_t n_keyed;
static EVP_MAC *hmac;
static pthread_mutex_t keyed_lock = PTHREAD_MUTEX_INITIALIZER;

static EVP_MAC_CTX *
new_keyed(const unsigned char *secret, size_t secret_len)
{
    OSSL_PARAM params[2];
    EVP_MAC_CTX *ctx;

    if (hmac == NULL && (hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        return NULL;
    if ((ctx = EVP_MAC_CTX_new(hmac)) == NULL)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, secret, secret_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A fresh context keyed with secret, ready for updates (the caller frees it). */
static EVP_MAC_CTX *
keyed_ctx(const unsigned char *secret, size_t secret_len)
{
    EVP_MAC_CTX *ctx = NULL, *k = NULL;
    size_t i;

    pthread_mutex_lock(&keyed_lock);
    for (i = 0; i < n_keyed; i++) {
        if (keyed[i].len == secret_len &&
            CRYPTO_memcmp(keyed[i].secret, secret, secret_len) == 0) {
            k = keyed[i].ctx;
            break;
        }
    }
    if (k == NULL && secret_len <= KEYED_SECRET_MAX && n_keyed < KEYED_MAX &&
        (k = new_keyed(secret, secret_len)) != NULL) {
        keyed[n_keyed].ctx = k;
        memcpy(keyed[n_keyed].secret, secret, secret_len);
        keyed[n_keyed].len = secret_len;
        n_keyed++;
    }
    if (k != NULL)
        ctx = EVP_MAC_CTX_dup(k);
    pthread_mutex_unlock(&keyed_lock);
    if (k == NULL) /* too many or too long secrets: key this one alone */
        ctx = new_keyed(secret, secret_len);
    return ctx;
}

static int
mac_hex(const unsigned char *secret, size_t secret_len, const char *purpose,
        const char *identity, const char *expiry, size_t expiry_len, const char *nonce,
        char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    int r = -1;
    EVP_MAC_CTX *ctx = keyed_ctx(secret, secret_len);
    size_t outl = 0;

    if (ctx == NULL)
        goto out;
    if (EVP_MAC_update(ctx, (const unsigned char *)"xe1\n", 4) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)purpose, strlen(purpose)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)identity, strlen(identity)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)expiry, expiry_len) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)nonce, 32) != 1 ||
        EVP_MAC_final(ctx, md, &outl, sizeof(md)) != 1 || outl != 32)
        goto out;
    to_hex(md, outl, out);
    r = 0;
out:
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(md, sizeof(md));
    return r;
}

int
xe_assertion_make(const unsigned char *secret, size_t secret_len, const char *purpose,
                  const char *identity, int64_t expiry, const unsigned char *nonce16,
                  char *out, size_t out_size)
{
    unsigned char rnd[16];
    char nonce[33], exp[24], mac[65];
    int n;

    if (expiry <= 0)
        return -1;
    if (nonce16 == NULL) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return -1;
        nonce16 = rnd;
    }
    to_hex(nonce16, 16, nonce);
    n = snprintf(exp, sizeof(exp), "%lld", (long long)expiry);
    if (mac_hex(secret, secret_len, purpose, identity, exp, (size_t)n, nonce, mac) < 0)
        return -1;
    n = snprintf(out, out_size, "xe1:%s:%s:%s:%s", purpose, exp, nonce, mac);
    if (n < 0 || (size_t)n >= out_size)
        return -1;
    return n;
}

static bool
all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int
xe_assertion_verify(const unsigned char *secret, size_t secret_len, const char *purpose,
                    const char *identity, const char *token, int64_t now,
                    int64_t max_lifetime)
{
    const char *f[5], *p = token;
    size_t flen[5];
    char want[65], got_purpose[32];
    int64_t expiry = 0;

    /* split into exactly five fields */
    for (int i = 0; i < 5; i++) {
        const char *colon = strchr(p, ':');
        f[i] = p;
        if (i < 4) {
            if (colon == NULL)
                return XE_ASSERT_MALFORMED;
            flen[i] = (size_t)(colon - p);
            p = colon + 1;
        } else {
            if (colon != NULL)
                return XE_ASSERT_MALFORMED;
            flen[i] = strlen(p);
        }
    }
    if (flen[0] != 3 || memcmp(f[0], "xe1", 3) != 0)
        return XE_ASSERT_MALFORMED;
    if (flen[1] == 0 || flen[1] >= sizeof(got_purpose))
        return XE_ASSERT_MALFORMED;
    if (flen[2] < 1 || flen[2] > 20)
        return XE_ASSERT_MALFORMED;
    for (size_t i = 0; i < flen[2]; i++) {
        int d = f[2][i] - '0';
        if (d < 0 || d > 9 || expiry > (INT64_MAX - d) / 10)
            return XE_ASSERT_MALFORMED; /* not a decimal, or beyond int64 */
        expiry = expiry * 10 + d;
    }
    if (flen[3] != 32 || !all_lower_hex(f[3], 32))
        return XE_ASSERT_MALFORMED;
    if (flen[4] != 64 || !all_lower_hex(f[4], 64))
        return XE_ASSERT_MALFORMED;
    memcpy(got_purpose, f[1], flen[1]);
    got_purpose[flen[1]] = '\0';
    if (strcmp(got_purpose, purpose) != 0)
        return XE_ASSERT_WRONG_PURPOSE;
    if (now >= expiry)
        return XE_ASSERT_EXPIRED;
    if (expiry - now > max_lifetime)
        return XE_ASSERT_LIFETIME_TOO_LONG;
    if (mac_hex(secret, secret_len, purpose, identity, f[2], flen[2], f[3], want) < 0)
        return XE_ASSERT_BAD_SIGNATURE;
    if (CRYPTO_memcmp(want, f[4], 64) != 0)
        return XE_ASSERT_BAD_SIGNATURE;
    return XE_ASSERT_OK;
}

const char *
xe_assertion_result_name(int r)
{
    switch (r) {
    case XE_ASSERT_OK:
        return "ok";
    case XE_ASSERT_MALFORMED:
        return "malformed";
    case XE_ASSERT_WRONG_PURPOSE:
        return "wrong-purpose";
    case XE_ASSERT_EXPIRED:
        return "expired";
    case XE_ASSERT_LIFETIME_TOO_LONG:
        return "lifetime-too-long";
    case XE_ASSERT_BAD_SIGNATURE:
        return "bad-signature";
    }
    return "unknown";
}
