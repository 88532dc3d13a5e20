/* Fuzz target: SASL framing and base64 (src/core/sasl.h), against the test user
 * store of fuzz.h.
 *
 * Input: one flags byte, then messages separated by the two bytes 0xff 0xfe
 * (never in UTF-8, so a seed is easy to write: see fuzz/README.md).
 * flags bits 0-2: the mechanism: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN,
 *                 SCRAM-SHA-1-PLUS, DIGEST-MD5, "" , or the first message
 *                 itself (6, 7: then the messages start with the second)
 *       bit 3: the session is not under TLS (PLAIN is not offered)
 *       bit 4: the first message is base64 text, decoded as c2s does
 *              (all messages are, when set)
 *       bit 5: no initial response (the first message goes to xe_sasl_step)
 *
 * Base64: every message is also round-tripped through xe_sasl_b64_encode and
 * xe_sasl_b64_decode into heap buffers of the exact size, so that a write
 * past the end is caught; decode(encode(x)) == x, and what decodes
 * re-encodes to something that decodes to the same bytes.
 *
 * Checked: success only for alice, and only with a mechanism that was
 * offered; after a failure or a success the exchange is over. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sasl.h"

#define MAX_MSGS 8

static const char *const mech_names[] = {
    "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "SCRAM-SHA-1-PLUS", "DIGEST-MD5", "",
};

/* The exact buffer size base64 needs for n bytes (without a NUL). */
static size_t
b64_len(size_t n)
{
    return 4 * ((n + 2) / 3);
}

static void
b64_round_trip(const uint8_t *msg, size_t len)
{
    size_t elen = 0, dlen = 0, dlen2 = 0;
    char *enc, *dec, *in, *dec2;
    int r;

    /* encode into the exact size plus the NUL Cyrus writes */
    enc = malloc(b64_len(len) + 1);
    FUZZ_CHECK(xe_sasl_b64_encode((const char *)msg, len, enc, b64_len(len) + 1, &elen) ==
               0);
    FUZZ_CHECK(elen == b64_len(len));
    /* ... one byte short of that must fail, not overflow */
    if (len > 0) {
        char *shorter = malloc(b64_len(len));
        size_t l = 0;
        r = xe_sasl_b64_encode((const char *)msg, len, shorter, b64_len(len), &l);
        FUZZ_CHECK(r < 0 || l <= b64_len(len));
        free(shorter);
    }
    dec = malloc(elen + 1);
    FUZZ_CHECK(xe_sasl_b64_decode(enc, elen, dec, elen + 1, &dlen) == 0);
    FUZZ_CHECK(dlen == len && memcmp(dec, msg, len) == 0);
    free(enc);
    free(dec);

    /* decode the message itself, as c2s does: a buffer of inlen + 1 bytes,
     * the input not NUL-terminated */
    in = malloc(len ? len : 1);
    memcpy(in, msg, len);
    dec = malloc(len + 1);
    r = xe_sasl_b64_decode(in, len, dec, len + 1, &dlen);
    if (r == 0) {
        FUZZ_CHECK(dlen <= len);
        enc = malloc(b64_len(dlen) + 1);
        FUZZ_CHECK(xe_sasl_b64_encode(dec, dlen, enc, b64_len(dlen) + 1, &elen) == 0);
        dec2 = malloc(elen + 1);
        FUZZ_CHECK(xe_sasl_b64_decode(enc, elen, dec2, elen + 1, &dlen2) == 0);
        FUZZ_CHECK(dlen2 == dlen && memcmp(dec2, dec, dlen) == 0);
        free(dec2);
        free(enc);
        /* and into a buffer that is exactly the decoded size (no room for the
         * NUL): fails or fits, never overflows */
        if (dlen > 0) {
            char *tight = malloc(dlen);
            size_t l = 0;
            r = xe_sasl_b64_decode(in, len, tight, dlen, &l);
            FUZZ_CHECK(r < 0 || l <= dlen);
            free(tight);
        }
    }
    free(dec);
    free(in);
}

/* Decode a base64 message as c2s does; false when it is not base64. */
static bool
decode_as_c2s(const uint8_t *msg, size_t len, char **out, size_t *outlen)
{
    char *buf;

    if (len == 1 && msg[0] == '=') {
        *out = calloc(1, 1);
        *outlen = 0;
        return true;
    }
    buf = malloc(len + 1);
    if (xe_sasl_b64_decode((const char *)msg, len, buf, len + 1, outlen) < 0) {
        free(buf);
        return false;
    }
    *out = buf;
    return true;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    fuzz_sasl_setup();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *const mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"};
    const uint8_t *msg[MAX_MSGS];
    size_t msg_len[MAX_MSGS], n = 0, first = 0;
    unsigned flags;
    struct xe_sasl *s;
    char *err = NULL, mech[64];
    const char *offered[8];
    size_t n_offered;
    bool is_offered = false, tls;
    int r = XE_SASL_CONTINUE;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;

    /* split into messages */
    while (n < MAX_MSGS) {
        const uint8_t *sep = memmem(data, size, "\xff\xfe", 2);
        size_t l = sep ? (size_t)(sep - data) : size;
        msg[n] = data;
        msg_len[n++] = l;
        if (sep == NULL)
            break;
        data += l + 2;
        size -= l + 2;
    }
    for (size_t i = 0; i < n; i++)
        b64_round_trip(msg[i], msg_len[i]);

    if ((flags & 7) >= 6) {
        snprintf(mech, sizeof(mech), "%.*s", (int)(msg_len[0] < 40 ? msg_len[0] : 40),
                 (const char *)msg[0]);
        first = 1;
    } else {
        snprintf(mech, sizeof(mech), "%s", mech_names[flags & 7]);
    }
    tls = !(flags & 8);
    s = xe_sasl_new("example.test", mechs, 3, tls, &err);
    FUZZ_CHECK(s != NULL);
    n_offered = xe_sasl_mechanisms(s, offered, 8);
    for (size_t i = 0; i < n_offered; i++) {
        FUZZ_CHECK(tls || strcmp(offered[i], "PLAIN") != 0);
        is_offered = is_offered || strcmp(offered[i], mech) == 0;
    }

    for (size_t i = first; i < n || i == first; i++) {
        const char *out = NULL, *in = NULL;
        char *decoded = NULL;
        size_t inlen = 0, outlen = 0;
        enum xe_sasl_cond cond = XE_SASL_TEMPORARY_AUTH_FAILURE;

        if (i < n) {
            in = (const char *)msg[i];
            inlen = msg_len[i];
            if (flags & 16) {
                if (!decode_as_c2s(msg[i], msg_len[i], &decoded, &inlen))
                    break; /* c2s answers <incorrect-encoding/> */
                in = decoded;
            }
        }
        if (i == first)
            r = xe_sasl_start(s, mech, (flags & 32) ? NULL : in, (flags & 32) ? 0 : inlen,
                              &out, &outlen, &cond);
        else
            r = xe_sasl_step(s, in ? in : "", inlen, &out, &outlen, &cond);
        free(decoded);
        FUZZ_CHECK(outlen == 0 || out != NULL);
        if (r == XE_SASL_FAIL) {
            FUZZ_CHECK(xe_sasl_cond_name(cond) != NULL);
            FUZZ_CHECK(xe_sasl_detail(s) != NULL);
            break;
        }
        if (r == XE_SASL_OK) {
            FUZZ_CHECK(is_offered);
            FUZZ_CHECK(strcmp(xe_sasl_jid(s), FUZZ_USER) == 0);
            break;
        }
        FUZZ_CHECK(r == XE_SASL_CONTINUE);
        if (outlen > 0) { /* a challenge goes out as base64 */
            size_t cap = 4 * (outlen / 3 + 2) + 1, blen = 0;
            char *b = malloc(cap);
            FUZZ_CHECK(xe_sasl_b64_encode(out, outlen, b, cap, &blen) == 0);
            free(b);
        }
    }
    (void)r;
    xe_sasl_free(&s);
    FUZZ_CHECK(s == NULL);
    return 0;
}
