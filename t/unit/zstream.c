/* Unit tests of the XEP-0138 zlib stage (src/core/zstream.h): what xedge deflates
 * reads back whatever the split of the compressed bytes and the size of the
 * output buffer; each batch is readable on its own (sync flush); a "zip
 * bomb" never yields more than the output buffer per call; corrupt input is
 * an error; the backend's features are rewritten. TAP output. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "util.h"
#include "zstream.h"
#include "tap.h"

static const char sample[] =
    "<stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' "
    "to='example.test' version='1.0'><iq type='set' id='b1'><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"
    "<message to='alice@example.test' type='chat'><body>hello hello hello "
    "hello</body></message><presence/>";

/* Deflate src with a fresh stream (one batch); returns the bytes. */
static void
deflate_all(struct xe_zstream *z, const void *src, size_t len, struct xe_buf *out)
{
    unsigned char tmp[64];
    const unsigned char *p = src;
    bool more;

    do {
        size_t used = 0, got = 0;
        const char *err = NULL;
        if (xe_zstream_deflate(z, p, len, &used, tmp, sizeof(tmp), &got, &err) < 0) {
            printf("# deflate: %s\n", err);
            return;
        }
        p += used;
        len -= used;
        more = got == sizeof(tmp);
        xe_buf_append(out, tmp, got);
    } while (len > 0 || more);
}

/* Inflate in (fed in pieces of at most `piece` bytes, outcap at a time). */
static int
inflate_pieces(struct xe_zstream *z, const unsigned char *in, size_t len, size_t piece,
               size_t outcap, struct xe_buf *out, size_t *max_got_r)
{
    unsigned char *tmp = xe_malloc(outcap);
    int r = 0;

    *max_got_r = 0;
    while (len > 0 && r == 0) {
        size_t n = len < piece ? len : piece;
        const unsigned char *p = in;
        bool more = false;

        in += n;
        len -= n;
        while ((n > 0 || more) && r == 0) {
            size_t used = 0, got = 0;
            const char *err = NULL;
            r = xe_zstream_inflate(z, p, n, &used, tmp, outcap, &got, &err);
            p += used;
            n -= used;
            more = got == outcap;
            if (got > *max_got_r)
                *max_got_r = got;
            if (xe_buf_append(out, tmp, got) < 0)
                r = -2;
            if (used == 0 && got == 0)
                break;
        }
    }
    free(tmp);
    return r;
}

static void
test_round_trip(void)
{
    struct xe_zstream *tx = xe_zstream_new(&(const char *){NULL});
    struct xe_buf z;
    size_t n = sizeof(sample) - 1, bad_split = 0, bad_byte = 0, max_got = 0;

    xe_buf_init(&z, 0);
    deflate_all(tx, sample, n, &z);
    ok(z.len > 0 && z.len < n, "deflate: %zu bytes to %zu", n, z.len);
    /* every split of the compressed bytes into two, and byte by byte */
    for (size_t split = 1; split < z.len; split++) {
        struct xe_zstream *rx = xe_zstream_new(&(const char *){NULL});
        struct xe_buf out;
        xe_buf_init(&out, 0);
        if (inflate_pieces(rx, z.data, split, split, 4096, &out, &max_got) != 0 ||
            inflate_pieces(rx, z.data + split, z.len - split, z.len, 4096, &out,
                           &max_got) != 0 ||
            out.len != n || memcmp(out.data, sample, n) != 0)
            bad_split++;
        xe_buf_free(&out);
        xe_zstream_free(&rx);
    }
    is_int(bad_split, 0, "inflate: the same bytes at every split point");
    for (size_t cap = 1; cap <= 9; cap++) {
        struct xe_zstream *rx = xe_zstream_new(&(const char *){NULL});
        struct xe_buf out;
        xe_buf_init(&out, 0);
        if (inflate_pieces(rx, z.data, z.len, 1, cap, &out, &max_got) != 0 ||
            max_got > cap || out.len != n || memcmp(out.data, sample, n) != 0)
            bad_byte++;
        xe_buf_free(&out);
        xe_zstream_free(&rx);
    }
    is_int(bad_byte, 0, "inflate: byte by byte, into 1..9-byte buffers");
    xe_buf_free(&z);
    xe_zstream_free(&tx);
}

/* Each batch is flushed: the receiver reads it whole before the next one. */
static void
test_batches(void)
{
    struct xe_zstream *tx = xe_zstream_new(&(const char *){NULL});
    struct xe_zstream *rx = xe_zstream_new(&(const char *){NULL});
    const char *batches[] = {"<message><body>one</body></message>", "<presence/>",
                             "<iq type='get' id='x'/>", ""};
    int bad = 0;
    uint64_t a, b, c, d;

    for (int i = 0; batches[i][0]; i++) {
        struct xe_buf z, out;
        size_t max_got;
        xe_buf_init(&z, 0);
        xe_buf_init(&out, 0);
        deflate_all(tx, batches[i], strlen(batches[i]), &z);
        if (inflate_pieces(rx, z.data, z.len, z.len, 1024, &out, &max_got) != 0 ||
            out.len != strlen(batches[i]) || memcmp(out.data, batches[i], out.len) != 0)
            bad++;
        xe_buf_free(&z);
        xe_buf_free(&out);
    }
    is_int(bad, 0, "every batch reads back on its own (sync flush)");
    xe_zstream_counts(tx, &a, &b, &c, &d);
    ok(c > 0 && d > 0 && a == 0 && b == 0, "counts: deflated %llu to %llu",
       (unsigned long long)c, (unsigned long long)d);
    xe_zstream_free(&tx);
    xe_zstream_free(&rx);
}

/* 10 MiB of zeros, compressed (about 10 KiB): never more than the output
 * buffer per call, and all of it comes out through a 16 KiB buffer. */
static void
test_bomb(void)
{
    size_t n = 10u << 20, zlen = compressBound(n), total = 0, calls = 0, max_got = 0;
    unsigned char *zeros = xe_calloc(1, n), *z = xe_malloc(zlen), out[16384];
    struct xe_zstream *rx = xe_zstream_new(&(const char *){NULL});
    const unsigned char *p = z;
    uLongf zl = zlen;
    bool more = false, err = false;
    size_t left;

    ok(compress2(z, &zl, zeros, n, 9) == Z_OK, "bomb: 10 MiB of zeros to %lu bytes",
       (unsigned long)zl);
    free(zeros);
    left = zl;
    while ((left > 0 || more) && !err) {
        size_t used = 0, got = 0;
        const char *e = NULL;
        if (xe_zstream_inflate(rx, p, left, &used, out, sizeof(out), &got, &e) < 0)
            err = true;
        p += used;
        left -= used;
        more = got == sizeof(out);
        total += got;
        calls++;
        if (got > max_got)
            max_got = got;
        if (used == 0 && got == 0)
            break;
    }
    ok(!err, "bomb: inflates without error");
    is_int(total, n, "bomb: all of it, in %zu calls", calls);
    ok(max_got <= sizeof(out), "bomb: at most one buffer per call (%zu)", max_got);
    free(z);
    xe_zstream_free(&rx);
}

static void
test_corrupt(void)
{
    struct xe_zstream *rx = xe_zstream_new(&(const char *){NULL});
    unsigned char out[256];
    const unsigned char junk[] = "<message>not compressed</message>";
    size_t used, got;
    const char *err = NULL;

    ok(xe_zstream_inflate(rx, junk, sizeof(junk) - 1, &used, out, sizeof(out), &got,
                          &err) < 0 &&
           err != NULL,
       "plain text where zlib is due: an error (%s)", err ? err : "none");
    xe_zstream_free(&rx);
}

static void
features(const char *in, int want_r, const char *want_offered, const char *want_after,
         const char *what)
{
    struct xe_buf o, a;
    int r;

    xe_buf_init(&o, 0);
    xe_buf_init(&a, 0);
    r = xe_zstream_features((const unsigned char *)in, strlen(in), &o, &a);
    xe_buf_append(&o, "", 1);
    xe_buf_append(&a, "", 1);
    is_int(r, want_r, "features, %s: result", what);
    if (want_r == 0) {
        is_str((const char *)o.data, want_offered, "features, %s: offered", what);
        is_str((const char *)a.data, want_after, "features, %s: after", what);
    } else {
        ok(o.len == 1 && a.len == 1, "features, %s: nothing written", what);
    }
    xe_buf_free(&o);
    xe_buf_free(&a);
}

#define BIND "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind>"
#define THEIRS                                                                           \
    "<compression xmlns='http://jabber.org/features/compress'><method>zlib</method>"     \
    "<method>lzw</method></compression>"

static void
test_features(void)
{
    features("<stream:features>" BIND "</stream:features>", 0,
             "<stream:features>" XE_COMPRESS_FEATURE BIND "</stream:features>",
             "<stream:features>" BIND "</stream:features>", "ours added");
    features("<stream:features>" BIND " " THEIRS "<sm xmlns='urn:xmpp:sm:3'/>"
             "</stream:features>",
             0,
             "<stream:features>" XE_COMPRESS_FEATURE BIND
             "<sm xmlns='urn:xmpp:sm:3'/></stream:features>",
             "<stream:features>" BIND "<sm xmlns='urn:xmpp:sm:3'/></stream:features>",
             "the backend's dropped");
    features("<stream:features/>", 0,
             "<stream:features>" XE_COMPRESS_FEATURE "</stream:features>",
             "<stream:features/>", "empty element");
    features("<stream:features a='>'>" BIND "</stream:features >", 0,
             "<stream:features a='>'>" XE_COMPRESS_FEATURE BIND "</stream:features >",
             "<stream:features a='>'>" BIND "</stream:features >", "a '>' in a value");
    features("<stream:features>" BIND, -1, NULL, NULL, "truncated");
    features("<stream:features><x:y/></stream:features>", -1, NULL, NULL,
             "an unbound prefix");
    features("", -1, NULL, NULL, "nothing");
    features("<stream:f<eatures/>", -1, NULL, NULL, "a bad name (found by fuzz/zstream)");
    features("<message/>", -1, NULL, NULL, "not features");
    features("<stream:features/> ", -1, NULL, NULL, "bytes after the element");
}

static void
test_error_xml(void)
{
    struct xe_buf b;

    xe_buf_init(&b, 0);
    xe_zstream_error_xml(&b, "processing-failed", "a <bad> thing");
    xe_buf_append(&b, "", 1);
    is_str((const char *)b.data,
           "<stream:error><undefined-condition "
           "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
           "xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>a &lt;bad&gt; "
           "thing</text><failure xmlns='http://jabber.org/protocol/compress'>"
           "<processing-failed/></failure></stream:error></stream:stream>",
           "the stream error of a compression failure");
    xe_buf_free(&b);
}

int
main(void)
{
    test_round_trip();
    test_batches();
    test_bomb();
    test_corrupt();
    test_features();
    test_error_xml();
    return tap_done();
}
