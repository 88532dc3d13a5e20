/* Fuzz target: the XML stream parser (src/core/xmlstream.h), with tight limits.
 *
 * Input: one flags byte, then the chunker's bytes (fuzz.h), then the stream.
 * flags bit 0: stream_start returns XE_XS_STOP
 *       bit 1: element returns XE_XS_STOP on every (flags >> 4) + 1'th element
 *       bit 2: stream_end returns XE_XS_STOP
 *       bit 3: after an error, reset and go on with the rest (else stop)
 * After a stop the parser is reset and fed the rest from the exact byte where
 * it stopped, as c2s does after STARTTLS or SASL success.
 *
 * Checked: the consumed count is within the chunk and ends on '>', each
 * element's raw bytes are a '<'...'>' run of the input (UTF-16 too: expat
 * follows a byte order mark) within the size limit,
 * the tree is consistent, an error always has a condition. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xmlstream.h"

#define LIM_ELEMENT 2048
#define LIM_DEPTH 4
#define LIM_ATTRS 6

struct ctx {
    unsigned flags;
    int stopped_by; /* 0, or which callback returned XE_XS_STOP in this feed */
    unsigned n_elements;
    const uint8_t *input; /* the whole stream, for the raw-bytes check */
    size_t input_len;
    size_t sink; /* keeps the reads of the tree from being optimised out */
};

/* '<' or '>' as the first or last character, in UTF-8 or (expat follows a
 * byte order mark) UTF-16 of either byte order. */
static bool
starts_lt(const unsigned char *p, size_t n)
{
    return n >= 1 && (p[0] == '<' || (n >= 2 && p[0] == 0 && p[1] == '<') ||
                      (n >= 2 && p[0] == '<' && p[1] == 0));
}

static bool
ends_gt(const unsigned char *p, size_t n)
{
    return n >= 1 && (p[n - 1] == '>' || (n >= 2 && p[n - 2] == '>' && p[n - 1] == 0) ||
                      (n >= 2 && p[n - 2] == 0 && p[n - 1] == '>'));
}

static void
walk(struct ctx *c, const struct xe_xml_elem *e, unsigned depth)
{
    const struct xe_xml_elem *ch, *last = NULL;

    FUZZ_CHECK(depth <= LIM_DEPTH);
    FUZZ_CHECK(e->ns != NULL && e->name != NULL);
    FUZZ_CHECK(e->n_attrs <= LIM_ATTRS);
    for (size_t i = 0; i < e->n_attrs; i++) {
        FUZZ_CHECK(e->attrs[i].name && e->attrs[i].value);
        /* the first attribute of that name is found */
        FUZZ_CHECK(xe_xml_attr(e, e->attrs[i].name) != NULL);
        c->sink += strlen(e->attrs[i].value);
    }
    c->sink += strlen(xe_xml_text(e)) + strlen(e->ns) + strlen(e->name);
    if (e->prefix)
        c->sink += strlen(e->prefix);
    for (ch = e->first_child; ch; ch = ch->next) {
        FUZZ_CHECK(ch->parent == e);
        FUZZ_CHECK(xe_xml_child(e, ch->ns, ch->name) != NULL);
        walk(c, ch, depth + 1);
        last = ch;
    }
    FUZZ_CHECK(last == e->last_child);
}

static int
on_start(void *ctx, const struct xe_xml_elem *h, const char *default_ns)
{
    struct ctx *c = ctx;

    FUZZ_CHECK(!c->stopped_by); /* no event after a stop */
    walk(c, h, 0);
    FUZZ_CHECK(h->first_child == NULL);
    if (default_ns)
        c->sink += strlen(default_ns);
    if (c->flags & 1) {
        c->stopped_by = 1;
        return XE_XS_STOP;
    }
    return XE_XS_CONTINUE;
}

static int
on_element(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
           size_t raw_len)
{
    struct ctx *c = ctx;

    FUZZ_CHECK(!c->stopped_by); /* no event after a stop */
    walk(c, e, 1);
    FUZZ_CHECK(raw != NULL && raw_len >= 3 && raw_len <= LIM_ELEMENT);
    FUZZ_CHECK(starts_lt(raw, raw_len) && ends_gt(raw, raw_len));
    FUZZ_CHECK(memmem(c->input, c->input_len, raw, raw_len) != NULL);
    c->n_elements++;
    if ((c->flags & 2) && c->n_elements % ((c->flags >> 4) + 1) == 0) {
        c->stopped_by = 2;
        return XE_XS_STOP;
    }
    return XE_XS_CONTINUE;
}

static int
on_end(void *ctx)
{
    struct ctx *c = ctx;

    /* No event after a stop (an empty <stream:stream/> whose start stopped
     * the parser once had its end reported too:
     * fuzz/corpus/xmlstream/bug-empty-stream-after-stop). */
    FUZZ_CHECK(!c->stopped_by);
    if (c->flags & 4) {
        c->stopped_by = 3;
        return XE_XS_STOP;
    }
    return XE_XS_CONTINUE;
}

static const struct xe_xmlstream_cb cb = {
    .stream_start = on_start,
    .element = on_element,
    .stream_end = on_end,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_logs();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct xe_xmlstream_limits lim = {
        .max_element_bytes = LIM_ELEMENT,
        .max_depth = LIM_DEPTH,
        .max_attrs = LIM_ATTRS,
    };
    struct fuzz_chunker ch;
    struct ctx c;
    struct xe_xmlstream *xs;
    size_t stops = 0;

    memset(&c, 0, sizeof(c));
    if (!fuzz_take_flags(&data, &size, &c.flags))
        return 0;
    fuzz_chunker_init(&ch, &data, &size);
    c.input = data;
    c.input_len = size;

    xs = xe_xmlstream_new(&lim, &cb, &c);
    FUZZ_CHECK(xs != NULL);
    while (size > 0) {
        size_t len = fuzz_chunk_len(&ch, size), used = 0;
        int r;

        c.stopped_by = 0;
        r = xe_xmlstream_feed(xs, data, len, &used);

        if (r == XE_XS_OK) {
            FUZZ_CHECK(used == len);
        } else if (r == XE_XS_STOPPED) {
            FUZZ_CHECK(used >= 1 && used <= len);
            /* (a UTF-16 '>' may straddle two chunks: look at the whole input) */
            FUZZ_CHECK(ends_gt(c.input, (size_t)(data + used - c.input)));
            len = used;
            stops++;
            xe_xmlstream_reset(xs);
        } else {
            FUZZ_CHECK(r == XE_XS_ERROR);
            FUZZ_CHECK(xe_xmlstream_condition(xs) != NULL);
            FUZZ_CHECK(xe_xmlstream_error_text(xs) != NULL);
            c.stopped_by = 0;
            c.sink += strlen(xe_xmlstream_condition(xs));
            /* feeding again after an error keeps failing */
            FUZZ_CHECK(xe_xmlstream_feed(xs, data, len, &used) == XE_XS_ERROR);
            if (!(c.flags & 8))
                break;
            xe_xmlstream_reset(xs);
        }
        data += len;
        size -= len;
    }
    xe_xmlstream_free(&xs);
    FUZZ_CHECK(xs == NULL);
    (void)stops;
    return 0;
}
