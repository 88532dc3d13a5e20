/* Fuzz target: the identity assertion (src/core/assertion.h, doc/assertion.md).
 *
 * 1. The input, up to its first NUL, is a token: xe_assertion_verify with a
 *    fixed secret, purpose "c2s" (and "s2s"), identity alice@example.test,
 *    now and lifetime. It must never accept a token it did not make: whatever it
 *    accepts must be byte for byte what xe_assertion_make writes for that
 *    expiry and nonce (so the seed corpus may hold valid tokens, but no
 *    other spelling of one is accepted).
 * 2. Round trip with a fuzzed identity (the input up to its first NUL, at
 *    most 3071 bytes) and nonce (the first 16 bytes): make, then verify must
 *    accept it for that identity only, reject it for a different identity,
 *    purpose, secret or time, and reject any one-byte change of the token. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "fuzz.h"

#define NOW INT64_C(1700000000)
#define LIFETIME 60

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef0123456789abcdef";
#define SECRET_LEN (sizeof(secret) - 1)
#define IDENTITY "alice@example.test"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* An accepted token must be exactly what make writes for its expiry and
 * nonce. */
static void
check_accepted(const char *token, const char *purpose, const char *identity)
{
    const char *p, *q, *nonce;
    unsigned char n16[16];
    char again[XE_ASSERTION_MAX];
    long long expiry;
    int len;

    FUZZ_CHECK(strncmp(token, "xe1:", 4) == 0);
    FUZZ_CHECK(strncmp(token + 4, purpose, strlen(purpose)) == 0);
    p = token + 4 + strlen(purpose);
    FUZZ_CHECK(*p++ == ':');
    expiry = strtoll(p, (char **)&q, 10);
    FUZZ_CHECK(*q == ':');
    nonce = q + 1;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(nonce[2 * i]), lo = hexval(nonce[2 * i + 1]);
        FUZZ_CHECK(hi >= 0 && lo >= 0);
        n16[i] = (unsigned char)(hi << 4 | lo);
    }
    len = xe_assertion_make(secret, SECRET_LEN, purpose, identity, expiry, n16, again,
                            sizeof(again));
    FUZZ_CHECK(len > 0);
    if (strcmp(again, token) != 0) {
        fprintf(stderr, "accepted a token it did not make:\n  %s\nmake gives:\n  %s\n",
                token, again);
        FUZZ_CHECK(!"verify accepts only what make writes");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), token[XE_ASSERTION_MAX], identity[3072], other[3080];
    unsigned char nonce[16] = {0};
    int len, r;

    /* 1. the input as a token */
    memcpy(s, data, size);
    s[size] = '\0';
    r = xe_assertion_verify(secret, SECRET_LEN, "c2s", IDENTITY, s, NOW, LIFETIME);
    FUZZ_CHECK(xe_assertion_result_name(r) != NULL);
    if (r == XE_ASSERT_OK)
        check_accepted(s, "c2s", IDENTITY);
    r = xe_assertion_verify(secret, SECRET_LEN, "s2s", IDENTITY, s, NOW, LIFETIME);
    if (r == XE_ASSERT_OK)
        check_accepted(s, "s2s", IDENTITY);

    /* 2. round trip with the input as the identity */
    snprintf(identity, sizeof(identity), "%s", s);
    memcpy(nonce, data, size < 16 ? size : 16);
    free(s);
    len = xe_assertion_make(secret, SECRET_LEN, "c2s", identity, NOW + 30, nonce, token,
                            sizeof(token));
    FUZZ_CHECK(len > 0 && (size_t)len < sizeof(token) && strlen(token) == (size_t)len);
    for (int i = 0; i < len; i++) /* pure ASCII, no separators but ':' */
        FUZZ_CHECK(token[i] > ' ' && token[i] < 0x7f);
    FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "c2s", identity, token, NOW,
                                   LIFETIME) == XE_ASSERT_OK);
    check_accepted(token, "c2s", identity);
    /* not for another identity ... */
    snprintf(other, sizeof(other), "%s.", identity);
    FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "c2s", other, token, NOW,
                                   LIFETIME) == XE_ASSERT_BAD_SIGNATURE);
    if (identity[0]) {
        snprintf(other, sizeof(other), "%s", identity);
        other[strlen(other) - 1] ^= 1;
        FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "c2s", other, token, NOW,
                                       LIFETIME) == XE_ASSERT_BAD_SIGNATURE);
    }
    /* ... another purpose, secret, or time */
    FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "s2s", identity, token, NOW,
                                   LIFETIME) == XE_ASSERT_WRONG_PURPOSE);
    FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN - 1, "c2s", identity, token, NOW,
                                   LIFETIME) == XE_ASSERT_BAD_SIGNATURE);
    FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "c2s", identity, token, NOW + 30,
                                   LIFETIME) == XE_ASSERT_EXPIRED);
    FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "c2s", identity, token, NOW - 31,
                                   LIFETIME) == XE_ASSERT_LIFETIME_TOO_LONG);
    /* a one-byte change anywhere (position and new byte from the input) */
    if (size >= 2) {
        size_t pos = data[size - 1] % (size_t)len;
        char b = (char)data[size - 2];
        if (b != '\0' && b != token[pos]) {
            token[pos] = b;
            FUZZ_CHECK(xe_assertion_verify(secret, SECRET_LEN, "c2s", identity, token,
                                           NOW, LIFETIME) != XE_ASSERT_OK);
        }
    }
    return 0;
}
