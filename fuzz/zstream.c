/* Fuzz target: the XEP-0138 zlib stage and the features rewrite
 * (src/core/zstream.h).
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then the data.
 * flags bit 0: the data is a backend's <stream:features/> to rewrite; else
 *              it is what a client sends on a compressed stream, inflated
 *       bits 1-6: the inflate output buffer is 1 + this many bytes
 *
 * Checked: inflate never writes more than the buffer nor uses more than it
 * was given, and stops at its first error; what xedge deflates (the data
 * itself, in the chunker's batches) inflates back to the same bytes; a
 * rewrite that succeeds gives features that parse, ours first and none of
 * the backend's compression features; one that fails writes nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xmlstream.h"
#include "zstream.h"

#define MAX_OUT (1 << 20) /* inflated bytes looked at per input */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    return 0;
}

/* ---- the features rewrite ------------------------------------------------- */

struct feat_check {
    int n_features, n_children, n_ours, n_theirs;
    bool ours_first;
};

static int
fc_start(void *ctx, const struct xe_xml_elem *h, const char *dns)
{
    return XE_XS_CONTINUE;
}

static int
fc_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw, size_t len)
{
    struct feat_check *k = ctx;

    k->n_features++;
    for (const struct xe_xml_elem *c = e->first_child; c; c = c->next) {
        bool comp = xe_xml_is(c, XE_NS_COMPRESS_FEATURE, "compression");
        const struct xe_xml_elem *m = xe_xml_child(c, XE_NS_COMPRESS_FEATURE, "method");
        bool ours = comp && m && strcmp(xe_xml_text(m), "zlib") == 0 && !m->next;
        if (k->n_children++ == 0)
            k->ours_first = ours;
        if (comp)
            k->n_theirs++;
        if (ours)
            k->n_ours++;
    }
    return XE_XS_CONTINUE;
}

static int
fc_end(void *ctx)
{
    return XE_XS_STOP;
}

static struct feat_check
parse_features(const struct xe_buf *b)
{
    static const char open[] =
        "<stream:stream xmlns='" XE_NS_CLIENT "' xmlns:stream='" XE_NS_STREAMS "'>";
    const struct xe_xmlstream_cb cb = {
        .stream_start = fc_start, .element = fc_element, .stream_end = fc_end};
    const struct xe_xmlstream_limits lim = {
        .max_element_bytes = b->len + 1, .max_depth = 32, .max_attrs = 128};
    struct feat_check k = {0};
    struct xe_xmlstream *xs = xe_xmlstream_new(&lim, &cb, &k);
    size_t used;

    FUZZ_CHECK(xs != NULL);
    FUZZ_CHECK(xe_xmlstream_feed(xs, open, sizeof(open) - 1, &used) == XE_XS_OK);
    FUZZ_CHECK(xe_xmlstream_feed(xs, b->data, b->len, &used) == XE_XS_OK);
    xe_xmlstream_free(&xs);
    return k;
}

static void
features(const uint8_t *data, size_t size)
{
    struct xe_buf o, a;
    struct feat_check ko, ka;

    xe_buf_init(&o, 0);
    xe_buf_init(&a, 0);
    if (xe_zstream_features(data, size, &o, &a) < 0) {
        FUZZ_CHECK(o.len == 0 && a.len == 0);
        goto out;
    }
    ko = parse_features(&o);
    ka = parse_features(&a);
    FUZZ_CHECK(ko.n_features == 1 && ka.n_features == 1);
    FUZZ_CHECK(ko.ours_first && ko.n_ours == 1 && ko.n_theirs == 1);
    FUZZ_CHECK(ka.n_theirs == 0);
    FUZZ_CHECK(ko.n_children == ka.n_children + 1);
out:
    xe_buf_free(&o);
    xe_buf_free(&a);
}

/* ---- inflate, and the round trip ------------------------------------------ */

static void
inflate_input(struct fuzz_chunker *ch, const uint8_t *data, size_t size, size_t outcap)
{
    struct xe_zstream *z = xe_zstream_new(&(const char *){NULL});
    unsigned char *out = malloc(outcap);
    size_t total = 0;

    FUZZ_CHECK(z != NULL && out != NULL);
    while (size > 0 && total < MAX_OUT) {
        size_t len = fuzz_chunk_len(ch, size);
        const uint8_t *p = data;
        bool more = false;

        data += len;
        size -= len;
        while ((len > 0 || more) && total < MAX_OUT) {
            size_t used = 7777, got = 7777;
            const char *err = NULL;
            int r = xe_zstream_inflate(z, p, len, &used, out, outcap, &got, &err);
            FUZZ_CHECK(used <= len && got <= outcap);
            if (r < 0) {
                FUZZ_CHECK(err != NULL);
                goto out;
            }
            p += used;
            len -= used;
            total += got;
            more = got == outcap;
            if (used == 0 && got == 0)
                break;
        }
    }
out:
    free(out);
    xe_zstream_free(&z);
}

static void
round_trip(struct fuzz_chunker *ch, const uint8_t *data, size_t size)
{
    struct xe_zstream *tx = xe_zstream_new(&(const char *){NULL});
    struct xe_zstream *rx = xe_zstream_new(&(const char *){NULL});
    unsigned char buf[512], back[700];
    size_t done = 0;

    FUZZ_CHECK(tx != NULL && rx != NULL);
    while (done < size) {
        size_t len = fuzz_chunk_len(ch, size - done), off = 0, bl = 0;
        unsigned char *batch = malloc(len + 1);
        bool more;

        FUZZ_CHECK(batch != NULL);
        do { /* one batch, sync-flushed: it must read back whole */
            size_t used, got, u2, g2 = 0, at = 0;
            const char *err = NULL;
            FUZZ_CHECK(xe_zstream_deflate(tx, data + done + off, len - off, &used, buf,
                                          sizeof(buf), &got, &err) == 0);
            off += used;
            more = got == sizeof(buf);
            while (at < got || g2 == sizeof(back)) {
                FUZZ_CHECK(xe_zstream_inflate(rx, buf + at, got - at, &u2, back,
                                              sizeof(back), &g2, &err) == 0);
                FUZZ_CHECK(bl + g2 <= len);
                memcpy(batch + bl, back, g2);
                bl += g2;
                at += u2;
                if (u2 == 0 && g2 == 0)
                    break;
            }
        } while (off < len || more);
        FUZZ_CHECK(bl == len && memcmp(batch, data + done, len) == 0);
        free(batch);
        done += len;
    }
    xe_zstream_free(&tx);
    xe_zstream_free(&rx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_chunker ch;
    unsigned flags;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);
    if (flags & 1) {
        features(data, size);
        return 0;
    }
    inflate_input(&ch, data, size, 1 + ((flags >> 1) & 63));
    ch.i = 0; /* the same batches, deflated */
    round_trip(&ch, data, size);
    return 0;
}
