/* Fuzz target: the backend handshake (src/core/backend.h), fed what a backend
 * sends.
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then the
 * backend's bytes.
 * flags bit 0: max_features is 512 bytes (else XE_MAX_BACKEND_FEATURES)
 *
 * Checked: READY only after the handshake (our header, <auth/>, our second
 * header were sent), with the features as a '<'...'>' run of the input within
 * the limit (but for the prefix declarations added to their start tag); FAIL
 * always with an error text; consumed counts within the chunk; nothing is fed
 * after READY or FAIL. */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "fuzz.h"
#include "xelimits.h"

/* a token of the real length; the backend never sees it verified here */
#define TOKEN                                                                            \
    "xe1:c2s:1700000060:00112233445566778899aabbccddeeff:"                               \
    "0000000000000000000000000000000000000000000000000000000000000000"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_chunker ch;
    struct xe_backend_hs *b;
    const uint8_t *input;
    size_t input_len, max_features, sent = 0;
    unsigned flags;
    enum xe_bhs_result r = XE_BHS_CONTINUE;
    bool auth_sent = false;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);
    input = data;
    input_len = size;
    max_features = (flags & 1) ? 512 : XE_MAX_BACKEND_FEATURES;

    b = xe_backend_hs_new("example.test", "alice", TOKEN, max_features);
    FUZZ_CHECK(b != NULL);
    while (size > 0 && r == XE_BHS_CONTINUE) {
        size_t len = fuzz_chunk_len(&ch, size), used = 0;
        struct xe_buf *out;

        r = xe_backend_hs_feed(b, data, len, &used);
        FUZZ_CHECK(used <= len);
        if (r == XE_BHS_CONTINUE)
            FUZZ_CHECK(used == len);
        out = xe_backend_hs_output(b);
        if (out->len > 0) {
            if (memmem(out->data, out->len, "<auth ", 6))
                auth_sent = true;
            sent += out->len;
            xe_buf_consume(out, out->len);
        }
        data += used;
        size -= used;
    }
    if (r == XE_BHS_READY) {
        size_t flen = 0;
        const unsigned char *f = xe_backend_hs_features(b, &flen);
        FUZZ_CHECK(auth_sent);
        FUZZ_CHECK(f != NULL && flen >= 3 && flen <= max_features);
        FUZZ_CHECK(f[0] == '<' && f[flen - 1] == '>');
        if (memmem(input, input_len, f, flen) == NULL) {
            /* prefixes declared on the backend's header were added to the
             * start tag (src/core/backend.c, keep_features): without some of the
             * first declarations, the features are a run of the input */
            static const char tag[] = "<stream:features";
            size_t tl = sizeof(tag) - 1, off = tl;
            bool found = false;
            unsigned char *g = malloc(flen);

            FUZZ_CHECK(g != NULL && flen > tl && memcmp(f, tag, tl) == 0);
            memcpy(g, tag, tl);
            while (!found && off + 7 < flen && memcmp(f + off, " xmlns:", 7) == 0) {
                const unsigned char *q = memchr(f + off, '\'', flen - off);
                FUZZ_CHECK(q != NULL);
                q = memchr(q + 1, '\'', flen - (size_t)(q + 1 - f));
                FUZZ_CHECK(q != NULL);
                off = (size_t)(q + 1 - f);
                memcpy(g + tl, f + off, flen - off);
                found = memmem(input, input_len, g, tl + flen - off) != NULL;
            }
            FUZZ_CHECK(found);
            free(g);
        }
    } else if (r == XE_BHS_FAIL) {
        const char *e = xe_backend_hs_error(b);
        FUZZ_CHECK(e != NULL && *e != '\0');
    }
    xe_backend_hs_free(&b);
    FUZZ_CHECK(b == NULL);
    (void)sent;
    return 0;
}
