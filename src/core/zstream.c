/* xedge: XEP-0138 stream compression. See zstream.h. */
#include "zstream.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "xelimits.h"
#include "xmlstream.h"

struct xe_zstream {
    z_stream in;  /* inflate: from the peer */
    z_stream out; /* deflate: to the peer */
    bool in_ok, out_ok;
    bool in_end; /* the peer ended its zlib stream: nothing may follow */
    uint64_t in_z, in_plain, out_plain, out_z;
};

struct xe_zstream *
xe_zstream_new(const char **error_r)
{
    struct xe_zstream *z = xe_calloc(1, sizeof(*z));

    /* the peer chooses its window (up to 32 KiB, in the zlib header) */
    if (inflateInit2(&z->in, 15) != Z_OK) {
        *error_r = "inflateInit failed";
        goto fail;
    }
    z->in_ok = true;
    if (deflateInit2(&z->out, XE_ZLIB_LEVEL, Z_DEFLATED, XE_ZLIB_WINDOW_BITS,
                     XE_ZLIB_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
        *error_r = "deflateInit failed";
        goto fail;
    }
    z->out_ok = true;
    return z;
fail:
    xe_zstream_free(&z);
    return NULL;
}

void
xe_zstream_free(struct xe_zstream **zp)
{
    struct xe_zstream *z = *zp;

    if (z == NULL)
        return;
    if (z->in_ok)
        inflateEnd(&z->in);
    if (z->out_ok)
        deflateEnd(&z->out);
    free(z);
    *zp = NULL;
}

/* zlib counts in uInt: one call takes at most this much */
static uInt
clamp(size_t n)
{
    return n > UINT_MAX / 2 ? UINT_MAX / 2 : (uInt)n;
}

int
xe_zstream_inflate(struct xe_zstream *z, const void *in, size_t inlen, size_t *used_r,
                   void *out, size_t outcap, size_t *produced_r, const char **error_r)
{
    int r;

    *used_r = *produced_r = 0;
    if (outcap == 0)
        return 0;
    if (z->in_end) {
        if (inlen == 0)
            return 0;
        *error_r = "data after the end of the compressed stream";
        return -1;
    }
    z->in.next_in = (Bytef *)(uintptr_t)in;
    z->in.avail_in = clamp(inlen);
    z->in.next_out = out;
    z->in.avail_out = clamp(outcap);
    r = inflate(&z->in, Z_SYNC_FLUSH);
    *used_r = (size_t)(z->in.next_in - (const Bytef *)in);
    *produced_r = (size_t)(z->in.next_out - (Bytef *)out);
    z->in_z += *used_r;
    z->in_plain += *produced_r;
    switch (r) {
    case Z_OK:
        return 0;
    case Z_BUF_ERROR: /* no progress possible: more input is needed */
        return 0;
    case Z_STREAM_END:
        z->in_end = true;
        if (*used_r < inlen) {
            *error_r = "data after the end of the compressed stream";
            return -1;
        }
        return 0;
    case Z_NEED_DICT:
        *error_r = "a preset dictionary is not supported";
        return -1;
    case Z_MEM_ERROR:
        *error_r = "out of memory";
        return -1;
    default:
        *error_r = "corrupt compressed data";
        return -1;
    }
}

int
xe_zstream_deflate(struct xe_zstream *z, const void *in, size_t inlen, size_t *used_r,
                   void *out, size_t outcap, size_t *produced_r, const char **error_r)
{
    int r;

    *used_r = *produced_r = 0;
    if (outcap < 64) {
        *error_r = "output buffer too small";
        return -1;
    }
    z->out.next_in = (Bytef *)(uintptr_t)in;
    z->out.avail_in = clamp(inlen);
    z->out.next_out = out;
    z->out.avail_out = clamp(outcap);
    r = deflate(&z->out, Z_SYNC_FLUSH);
    *used_r = (size_t)(z->out.next_in - (const Bytef *)in);
    *produced_r = (size_t)(z->out.next_out - (Bytef *)out);
    z->out_plain += *used_r;
    z->out_z += *produced_r;
    if (r == Z_OK || r == Z_BUF_ERROR) /* BUF_ERROR: the flush was already done */
        return 0;
    *error_r = "deflate failed";
    return -1;
}

void
xe_zstream_counts(const struct xe_zstream *z, uint64_t *in_z, uint64_t *in_plain,
                  uint64_t *out_plain, uint64_t *out_z)
{
    *in_z = z->in_z;
    *in_plain = z->in_plain;
    *out_plain = z->out_plain;
    *out_z = z->out_z;
}

/* ---- the stream features -------------------------------------------------- */

struct feat_ctx {
    struct xe_buf *kept; /* raw children that are not a compression feature */
    bool ended;
    unsigned n;       /* top-level elements */
    bool is_features; /* the only one is <stream:features/> */
    size_t raw_len;   /* ... of this many bytes */
};

static int
feat_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    return XE_XS_CONTINUE;
}

static int
feat_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
             size_t raw_len)
{
    struct feat_ctx *f = ctx;

    f->n++;
    if (f->kept == NULL) { /* checking the whole features element */
        f->is_features = xe_xml_is(e, XE_NS_STREAMS, "features");
        f->raw_len = raw_len;
        return XE_XS_CONTINUE;
    }
    if (xe_xml_is(e, XE_NS_COMPRESS_FEATURE, "compression"))
        return XE_XS_CONTINUE; /* the backend's own: the client talks to us */
    return xe_buf_append(f->kept, raw, raw_len) < 0 ? XE_XS_STOP : XE_XS_CONTINUE;
}

static int
feat_end(void *ctx)
{
    struct feat_ctx *f = ctx;

    f->ended = true;
    return XE_XS_STOP;
}

/* Parse content inside a wrapper that declares what the backend's stream
 * header declares for it (the default namespace and the stream prefix); with
 * kept, keep the raw top-level elements that are not a compression feature
 * (the children of the features element); without, check that content is one
 * <stream:features/> element. */
static int
parse_wrapped(const unsigned char *content, size_t len, struct xe_buf *kept)
{
    static const char open[] =
        "<x xmlns='" XE_NS_CLIENT "' xmlns:stream='" XE_NS_STREAMS "'>",
                      close[] = "</x>";
    const struct xe_xmlstream_cb cb = {
        .stream_start = feat_start, .element = feat_element, .stream_end = feat_end};
    const struct xe_xmlstream_limits lim = {
        .max_element_bytes = len + 1, .max_depth = 16, .max_attrs = 64};
    struct feat_ctx f = {.kept = kept};
    struct xe_xmlstream *xs = xe_xmlstream_new(&lim, &cb, &f);
    size_t used;
    int r = -1;

    if (xs == NULL)
        return -1;
    if (xe_xmlstream_feed(xs, open, sizeof(open) - 1, &used) != XE_XS_OK ||
        xe_xmlstream_feed(xs, content, len, &used) != XE_XS_OK || used != len)
        goto out;
    if (xe_xmlstream_feed(xs, close, sizeof(close) - 1, &used) != XE_XS_STOPPED ||
        !f.ended)
        goto out;
    if (kept == NULL && (f.n != 1 || !f.is_features || f.raw_len != len))
        goto out;
    r = 0;
out:
    xe_xmlstream_free(&xs);
    return r;
}

int
xe_zstream_features(const unsigned char *features, size_t len, struct xe_buf *offered_r,
                    struct xe_buf *after_r)
{
    const unsigned char *p = features;
    size_t gt, lt, name_end;
    char quote = 0;
    bool empty;
    size_t olen = offered_r->len, alen = after_r->len;
    struct xe_buf kept;
    int r = -1;

    xe_buf_init(&kept, 0);
    if (len < 4 || p[0] != '<' || parse_wrapped(p, len, NULL) < 0)
        goto out;
    /* the end of the start tag ('>' outside a quoted attribute value) */
    for (gt = 1; gt < len; gt++) {
        if (quote) {
            if (p[gt] == (unsigned char)quote)
                quote = 0;
        } else if (p[gt] == '\'' || p[gt] == '"') {
            quote = (char)p[gt];
        } else if (p[gt] == '>') {
            break;
        }
    }
    if (gt >= len)
        goto out;
    for (name_end = 1; name_end < gt && !strchr(" \t\r\n/>", p[name_end]); name_end++)
        ;
    if (name_end == 1)
        goto out;
    empty = p[gt - 1] == '/';
    if (empty) {
        if (gt + 1 != len)
            goto out;
        /* <stream:features/> -> <stream:features>OURS</stream:features> */
        if (xe_buf_append(offered_r, p, gt - 1) < 0 ||
            xe_buf_append_str(offered_r, ">" XE_COMPRESS_FEATURE "</") < 0 ||
            xe_buf_append(offered_r, p + 1, name_end - 1) < 0 ||
            xe_buf_append_str(offered_r, ">") < 0 || xe_buf_append(after_r, p, len) < 0)
            goto out;
        r = 0;
        goto out;
    }
    /* the end tag: from the last '<' */
    for (lt = len; lt > gt + 1 && p[lt - 1] != '<'; lt--)
        ;
    if (lt <= gt + 1 || lt >= len || p[lt] != '/')
        goto out;
    lt--; /* at the '<' */
    if (parse_wrapped(p + gt + 1, lt - (gt + 1), &kept) < 0)
        goto out;
    if (xe_buf_append(offered_r, p, gt + 1) < 0 ||
        xe_buf_append_str(offered_r, XE_COMPRESS_FEATURE) < 0 ||
        xe_buf_append(offered_r, kept.data, kept.len) < 0 ||
        xe_buf_append(offered_r, p + lt, len - lt) < 0 ||
        xe_buf_append(after_r, p, gt + 1) < 0 ||
        xe_buf_append(after_r, kept.data, kept.len) < 0 ||
        xe_buf_append(after_r, p + lt, len - lt) < 0)
        goto out;
    r = 0;
out:
    xe_buf_free(&kept);
    if (r < 0) { /* nothing half-written */
        offered_r->len = olen;
        after_r->len = alen;
    }
    return r;
}

int
xe_zstream_error_xml(struct xe_buf *out, const char *condition, const char *text)
{
    int r = 0;

    r |= xe_buf_append_str(
        out, "<stream:error><undefined-condition xmlns='" XE_NS_STREAM_ERRORS "'/>");
    if (text && *text) {
        r |= xe_buf_append_str(out,
                               "<text xmlns='" XE_NS_STREAM_ERRORS "' xml:lang='en'>");
        r |= xe_buf_append_escaped(out, text);
        r |= xe_buf_append_str(out, "</text>");
    }
    r |= xe_buf_appendf(out, "<failure xmlns='" XE_NS_COMPRESS "'><%s/></failure>",
                        condition);
    r |= xe_buf_append_str(out, "</stream:error></stream:stream>");
    return r;
}
