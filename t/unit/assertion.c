/* Unit tests of the identity assertion (src/core/assertion.h) against the test
 * vectors of doc/assertion-vectors.tsv, and make -> verify round trips.
 * TAP output. */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assertion.h"
#include "tap.h"

#define MAX_FIELDS 8

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* -1 on bad hex */
static long
unhex(const char *in, size_t inlen, unsigned char *out, size_t outmax)
{
    if (inlen % 2 || inlen / 2 > outmax)
        return -1;
    for (size_t i = 0; i < inlen / 2; i++) {
        int a = hexval((unsigned char)in[2 * i]),
            b = hexval((unsigned char)in[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (unsigned char)(a * 16 + b);
    }
    return (long)(inlen / 2);
}

static FILE *
open_vectors(const char *argv0)
{
    const char *top = getenv("XE_TOP_SRCDIR");
    char path[4096], dir[4096];
    FILE *f;

    if (top && *top) {
        snprintf(path, sizeof(path), "%s/doc/assertion-vectors.tsv", top);
        if ((f = fopen(path, "r")) != NULL)
            return f;
    }
    snprintf(dir, sizeof(dir), "%s", argv0);
    snprintf(path, sizeof(path), "%s/../../doc/assertion-vectors.tsv", dirname(dir));
    if ((f = fopen(path, "r")) != NULL)
        return f;
    return fopen("doc/assertion-vectors.tsv", "r");
}

/* Split a line on tabs in place, keeping empty fields. */
static int
split_tabs(char *line, char **f, int max)
{
    int n = 0;

    for (;;) {
        char *t = strchr(line, '\t');
        if (n == max)
            return -1;
        f[n++] = line;
        if (t == NULL)
            break;
        *t = '\0';
        line = t + 1;
    }
    return n;
}

struct okvec {
    unsigned char secret[256];
    size_t secret_len;
    char purpose[32], identity[256], token[XE_ASSERTION_MAX];
    int64_t now, max_lifetime;
};

static struct okvec okvecs[64];
static int n_okvecs;

static void
run_vectors(const char *argv0)
{
    FILE *f = open_vectors(argv0);
    char line[8192], desc[512] = "";
    int n = 0, lineno = 0, bad_lines = 0;
    bool seen[6] = {false};

    ok(f != NULL, "vectors file found (XE_TOP_SRCDIR or ../../doc)");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *fld[MAX_FIELDS];
        unsigned char secret[256];
        long slen;
        int nf, r;
        char *end;
        int64_t now, maxl;
        size_t l = strlen(line);

        lineno++;
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (l == 0)
            continue;
        if (line[0] == '#') {
            snprintf(desc, sizeof(desc), "%s", line + 1 + (line[1] == ' '));
            continue;
        }
        nf = split_tabs(line, fld, MAX_FIELDS);
        if (nf != 7) {
            bad_lines++;
            printf("# line %d: %d fields\n", lineno, nf);
            continue;
        }
        slen = unhex(fld[0], strlen(fld[0]), secret, sizeof(secret));
        errno = 0;
        now = strtoll(fld[3], &end, 10);
        if (*end || errno)
            slen = -1;
        maxl = strtoll(fld[4], &end, 10);
        if (*end || errno)
            slen = -1;
        if (slen < 0) {
            bad_lines++;
            printf("# line %d: cannot parse\n", lineno);
            continue;
        }
        r = xe_assertion_verify(secret, (size_t)slen, fld[1], fld[2], fld[5], now, maxl);
        is_str(xe_assertion_result_name(r), fld[6], "vector line %d: %s", lineno, desc);
        if (r <= 0 && r >= -5)
            seen[-r] = true;
        n++;
        if (strcmp(fld[6], "ok") == 0 && n_okvecs < 64 &&
            strlen(fld[5]) < XE_ASSERTION_MAX && strlen(fld[2]) < 256 &&
            strlen(fld[1]) < 32) {
            struct okvec *v = &okvecs[n_okvecs++];
            memcpy(v->secret, secret, (size_t)slen);
            v->secret_len = (size_t)slen;
            strcpy(v->purpose, fld[1]);
            strcpy(v->identity, fld[2]);
            strcpy(v->token, fld[5]);
            v->now = now;
            v->max_lifetime = maxl;
        }
    }
    fclose(f);
    is_int(bad_lines, 0, "every data line has 7 parseable fields");
    ok(n >= 40, "at least 40 vectors (%d)", n);
    ok(n_okvecs >= 5, "several ok vectors (%d)", n_okvecs);
    ok(seen[0] && seen[1] && seen[2] && seen[3] && seen[4] && seen[5],
       "every result is produced by some vector");
}

static void
test_names(void)
{
    is_str(xe_assertion_result_name(XE_ASSERT_OK), "ok", "name ok");
    is_str(xe_assertion_result_name(XE_ASSERT_MALFORMED), "malformed", "name malformed");
    is_str(xe_assertion_result_name(XE_ASSERT_WRONG_PURPOSE), "wrong-purpose",
           "name wrong-purpose");
    is_str(xe_assertion_result_name(XE_ASSERT_EXPIRED), "expired", "name expired");
    is_str(xe_assertion_result_name(XE_ASSERT_LIFETIME_TOO_LONG), "lifetime-too-long",
           "name lifetime-too-long");
    is_str(xe_assertion_result_name(XE_ASSERT_BAD_SIGNATURE), "bad-signature",
           "name bad-signature");
    is_str(xe_assertion_result_name(42), "unknown", "name of an unknown result");
}

/* The token's expiry and nonce fields. */
static bool
token_parts(const char *tok, int64_t *expiry, unsigned char nonce[16])
{
    const char *p = strchr(tok, ':');
    char *end;

    if (p == NULL || (p = strchr(p + 1, ':')) == NULL)
        return false;
    *expiry = strtoll(p + 1, &end, 10);
    if (*end != ':')
        return false;
    return unhex(end + 1, 32, nonce, 16) == 16 && end[33] == ':';
}

static void
test_round_trips(void)
{
    for (int i = 0; i < n_okvecs; i++) {
        struct okvec *v = &okvecs[i];
        unsigned char nonce[16];
        int64_t expiry = 0;
        char tok[XE_ASSERTION_MAX];
        int n;

        ok(token_parts(v->token, &expiry, nonce), "ok vector %d: token parts", i);
        n = xe_assertion_make(v->secret, v->secret_len, v->purpose, v->identity, expiry,
                              nonce, tok, sizeof(tok));
        is_int(n, (long long)strlen(v->token), "ok vector %d: make returns the length",
               i);
        is_str(n > 0 ? tok : NULL, v->token,
               "ok vector %d (%s): deterministic nonce gives the exact token", i,
               v->identity);
    }
}

static void
test_make_verify(void)
{
    static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
    const size_t slen = sizeof(secret) - 1;
    static const unsigned char other[] = "0123456789abcdef0123456789abcdef-test-secreT";
    const int64_t now = 1700000000;
    char tok[XE_ASSERTION_MAX], tok2[XE_ASSERTION_MAX];
    int n, n2;

    n = xe_assertion_make(secret, slen, "c2s", "alice@example.test", now + 60, NULL, tok,
                          sizeof(tok));
    ok(n > 0 && (size_t)n == strlen(tok), "random nonce: make returns the length");
    ok(strncmp(tok, "xe1:c2s:1700000060:", 19) == 0, "token format: xe1:c2s:expiry:");
    is_int(n, 4 + 4 + 11 + 33 + 64, "token length with a 10-digit expiry");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "alice@example.test", tok, now, 60)),
           "ok", "random nonce: verifies");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "alice@example.test", tok, now + 59, 60)),
           "ok", "verifies one second before expiry");
    n2 = xe_assertion_make(secret, slen, "c2s", "alice@example.test", now + 60, NULL,
                           tok2, sizeof(tok2));
    ok(n2 == n && strcmp(tok, tok2) != 0, "two random nonces give different tokens");

    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "bob@example.test", tok, now, 60)),
           "bad-signature", "rejected for another identity");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "Alice@example.test", tok, now, 60)),
           "bad-signature", "identity is compared exactly (case)");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "s2s", "alice@example.test", tok, now, 60)),
           "wrong-purpose", "rejected for another purpose");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "alice@example.test", tok, now + 60, 60)),
           "expired", "rejected at expiry");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "alice@example.test", tok, now + 3600, 60)),
           "expired", "rejected after expiry");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen, "c2s", "alice@example.test", tok, now - 1, 60)),
           "lifetime-too-long", "rejected when further ahead than max_lifetime");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               other, slen, "c2s", "alice@example.test", tok, now, 60)),
           "bad-signature", "rejected under another secret");
    is_str(xe_assertion_result_name(xe_assertion_verify(
               secret, slen - 1, "c2s", "alice@example.test", tok, now, 60)),
           "bad-signature", "rejected under a truncated secret");

    /* each single-character change of the token is rejected */
    {
        int accepted = 0;
        for (int i = 0; i < n; i++) {
            char t[XE_ASSERTION_MAX];
            memcpy(t, tok, (size_t)n + 1);
            t[i] = t[i] == '0' ? '1' : t[i] == ':' ? ';' : '0';
            if (xe_assertion_verify(secret, slen, "c2s", "alice@example.test", t, now,
                                    60) == XE_ASSERT_OK)
                accepted++;
        }
        is_int(accepted, 0, "no single-character change of the token verifies");
    }
    /* truncations are rejected */
    {
        int accepted = 0;
        for (int i = 0; i < n; i++) {
            char t[XE_ASSERTION_MAX];
            memcpy(t, tok, (size_t)i);
            t[i] = '\0';
            if (xe_assertion_verify(secret, slen, "c2s", "alice@example.test", t, now,
                                    60) == XE_ASSERT_OK)
                accepted++;
        }
        is_int(accepted, 0, "no truncation of the token verifies");
    }

    /* argument checks of make */
    ok(xe_assertion_make(secret, slen, "c2s", "alice@example.test", now + 60, NULL, tok,
                         (size_t)n) < 0,
       "make: a buffer one byte short is refused");
    ok(xe_assertion_make(secret, slen, "c2s", "alice@example.test", now + 60, NULL, tok,
                         (size_t)n + 1) == n,
       "make: a buffer of exactly length+1 is enough");
    ok(xe_assertion_make(secret, slen, "c2s", "alice@example.test", 0, NULL, tok,
                         sizeof(tok)) < 0,
       "make: expiry 0 is refused");
    ok(xe_assertion_make(secret, slen, "c2s", "alice@example.test", -5, NULL, tok,
                         sizeof(tok)) < 0,
       "make: negative expiry is refused");

    /* an s2s token */
    n = xe_assertion_make(secret, slen, "s2s", "example.test", now + 10, NULL, tok,
                          sizeof(tok));
    ok(n > 0, "s2s token made");
    is_str(xe_assertion_result_name(
               xe_assertion_verify(secret, slen, "s2s", "example.test", tok, now, 60)),
           "ok", "s2s token verifies as s2s");
    is_str(xe_assertion_result_name(
               xe_assertion_verify(secret, slen, "c2s", "example.test", tok, now, 60)),
           "wrong-purpose", "s2s token refused as c2s");

    /* a deterministic nonce gives a deterministic token */
    {
        unsigned char nonce[16];
        for (int i = 0; i < 16; i++)
            nonce[i] = (unsigned char)(i * 17);
        n = xe_assertion_make(secret, slen, "c2s", "alice@example.test", now + 60, nonce,
                              tok, sizeof(tok));
        n2 = xe_assertion_make(secret, slen, "c2s", "alice@example.test", now + 60, nonce,
                               tok2, sizeof(tok2));
        ok(n > 0 && n == n2 && strcmp(tok, tok2) == 0, "same nonce, same token");
        ok(strstr(tok, ":00112233445566778899aabbccddeeff:") != NULL,
           "nonce in lower-case hex in the token");
    }
}

/* Secrets are kept keyed (a few of them): more secrets than are kept, each
 * signing and verifying in turn, give the same tokens every time; a secret
 * too long to keep is keyed for each call. */
static void
test_many_secrets(void)
{
    unsigned char secret[20][40];
    unsigned char big[2000];
    const int64_t now = 1700000000;
    char tok[20][XE_ASSERTION_MAX], t[XE_ASSERTION_MAX];
    int bad = 0;

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20; i++) {
            memset(secret[i], 'a' + i, sizeof(secret[i]));
            if (xe_assertion_make(secret[i], sizeof(secret[i]), "c2s", "a@b.test",
                                  now + 60, (const unsigned char *)"0123456789abcdef", t,
                                  sizeof(t)) <= 0)
                bad++;
            else if (round == 0)
                memcpy(tok[i], t, sizeof(t));
            else if (strcmp(tok[i], t) != 0)
                bad++;
            for (int j = 0; j < 20; j += 7)
                if ((xe_assertion_verify(secret[j], sizeof(secret[j]), "c2s", "a@b.test",
                                         tok[i], now, 60) == XE_ASSERT_OK) != (i == j))
                    bad++;
        }
    }
    is_int(bad, 0,
           "20 secrets: each token verifies under its own secret only, twice over");
    memset(big, 'k', sizeof(big));
    ok(xe_assertion_make(big, sizeof(big), "c2s", "a@b.test", now + 60, NULL, t,
                         sizeof(t)) > 0 &&
           xe_assertion_verify(big, sizeof(big), "c2s", "a@b.test", t, now, 60) ==
               XE_ASSERT_OK &&
           xe_assertion_verify(big, sizeof(big) - 1, "c2s", "a@b.test", t, now, 60) ==
               XE_ASSERT_BAD_SIGNATURE,
       "a 2000-byte secret signs and verifies");
}

int
main(int argc, char **argv)
{
    (void)argc;
    test_names();
    run_vectors(argv[0]);
    test_round_trips();
    test_make_verify();
    test_many_secrets();
    return tap_done();
}
