/* xedge: the XML stream parser on expat. See xmlstream.h. */
#include "config.h"

#include "xmlstream.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>
#include <openssl/rand.h>

#include "xelimits.h"

#define NS_SEP '\x01'

struct xe_xmlstream {
    XML_Parser p;
    struct xe_xmlstream_limits lim;
    struct xe_xmlstream_cb cb;
    void *ctx;

    unsigned depth; /* 0: outside the stream, 1: in the stream */
    bool in_stream;
    char *default_ns;         /* default namespace declared on the header */
    struct xe_xml_elem *root; /* top-level element being built */
    struct xe_xml_elem *cur;

    /* raw bytes of the current top-level element */
    struct xe_buf raw;
    size_t raw_base;   /* absolute stream offset of raw.data[0] */
    size_t elem_start; /* absolute offset where the top-level element started */
    size_t fed;        /* absolute offset of the end of all bytes fed */
    size_t boundary;   /* absolute offset after the last complete top-level event */

    bool stopped;
    bool at_start;  /* nothing but white space seen since the (re)start */
    size_t stop_at; /* absolute offset right after the stopping event */
    const char *condition;
    const char *text;
    struct xe_buf header; /* raw start tag of the last stream header */
    void (*space)(void *ctx, const char *s, size_t len);
};

const char *
xe_xml_attr(const struct xe_xml_elem *e, const char *name)
{
    for (size_t i = 0; i < e->n_attrs; i++)
        if (strcmp(e->attrs[i].name, name) == 0)
            return e->attrs[i].value;
    return NULL;
}

const struct xe_xml_elem *
xe_xml_child(const struct xe_xml_elem *e, const char *ns, const char *name)
{
    for (const struct xe_xml_elem *c = e->first_child; c; c = c->next)
        if (xe_xml_is(c, ns, name))
            return c;
    return NULL;
}

bool
xe_xml_is(const struct xe_xml_elem *e, const char *ns, const char *name)
{
    return (ns == NULL || strcmp(e->ns, ns) == 0) &&
           (name == NULL || strcmp(e->name, name) == 0);
}

const char *
xe_xml_text(const struct xe_xml_elem *e)
{
    return e->text.len ? (const char *)e->text.data : "";
}

static void
elem_free(struct xe_xml_elem *e)
{
    while (e) {
        struct xe_xml_elem *next = e->next;
        elem_free(e->first_child);
        for (size_t i = 0; i < e->n_attrs; i++) {
            free(e->attrs[i].name);
            free(e->attrs[i].value);
        }
        free(e->attrs);
        free(e->ns);
        free(e->name);
        free(e->prefix);
        xe_buf_free(&e->text);
        free(e);
        e = next;
    }
}

static void
fail(struct xe_xmlstream *xs, const char *condition, const char *text)
{
    if (xs->condition == NULL) {
        xs->condition = condition;
        xs->text = text;
    }
    XML_StopParser(xs->p, XML_FALSE);
}

/* Split expat's "ns\x01local\x01prefix" name. */
static void
split_name(const char *full, char **ns, char **local, char **prefix)
{
    const char *a = strchr(full, NS_SEP), *b;

    if (a == NULL) {
        *ns = xe_strdup("");
        *local = xe_strdup(full);
        *prefix = NULL;
        return;
    }
    *ns = xe_strndup(full, (size_t)(a - full));
    b = strchr(a + 1, NS_SEP);
    if (b == NULL) {
        *local = xe_strdup(a + 1);
        *prefix = NULL;
    } else {
        *local = xe_strndup(a + 1, (size_t)(b - a - 1));
        *prefix = xe_strdup(b + 1);
    }
}

static struct xe_xml_elem *
elem_new(const char *name, const char **atts)
{
    struct xe_xml_elem *e = xe_calloc(1, sizeof(*e));
    size_t n = 0;

    split_name(name, &e->ns, &e->name, &e->prefix);
    xe_buf_init(&e->text, 0);
    while (atts[2 * n])
        n++;
    e->attrs = xe_calloc(n ? n : 1, sizeof(*e->attrs));
    e->n_attrs = n;
    for (size_t i = 0; i < n; i++) {
        char *ns, *local, *prefix;
        split_name(atts[2 * i], &ns, &local, &prefix);
        if (*ns) {
            e->attrs[i].name = xe_asprintf("{%s}%s", ns, local);
            free(local);
        } else {
            e->attrs[i].name = local;
        }
        free(ns);
        free(prefix);
        e->attrs[i].value = xe_strdup(atts[2 * i + 1]);
    }
    return e;
}

static size_t
event_end(struct xe_xmlstream *xs)
{
    return (size_t)XML_GetCurrentByteIndex(xs->p) +
           (size_t)XML_GetCurrentByteCount(xs->p);
}

static void XMLCALL
on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    struct xe_xmlstream *xs = ud;

    if (xs->depth == 0 && prefix == NULL && xs->default_ns == NULL)
        xs->default_ns = xe_strdup(uri ? uri : "");
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xe_xmlstream *xs = ud;
    struct xe_xml_elem *e;
    size_t n = 0;

    if (xs->condition || xs->stopped)
        return; /* expat may still report events after a stop */
    while (atts[2 * n])
        n++;
    if (n > xs->lim.max_attrs) {
        fail(xs, "policy-violation", "too many attributes");
        return;
    }
    if (xs->depth == 0) {
        int r;
        if ((size_t)XML_GetCurrentByteCount(xs->p) > XE_MAX_HEADER_BYTES) {
            fail(xs, "policy-violation", "stream header too large");
            return;
        }
        {
            size_t at = (size_t)XML_GetCurrentByteIndex(xs->p);
            xs->header.len = 0;
            if (at >= xs->raw_base && event_end(xs) <= xs->raw_base + xs->raw.len)
                xe_buf_append(&xs->header, xs->raw.data + (at - xs->raw_base),
                              event_end(xs) - at);
        }
        e = elem_new(name, atts);
        xs->depth = 1;
        xs->in_stream = true;
        xs->boundary = event_end(xs);
        r = xs->cb.stream_start(xs->ctx, e, xs->default_ns);
        elem_free(e);
        if (r != XE_XS_CONTINUE) {
            xs->stopped = true;
            xs->stop_at = event_end(xs);
            XML_StopParser(xs->p, XML_FALSE);
        }
        return;
    }
    if (xs->depth >= xs->lim.max_depth + 1) {
        fail(xs, "policy-violation", "XML nesting too deep");
        return;
    }
    e = elem_new(name, atts);
    if (xs->depth == 1) {
        xs->root = xs->cur = e;
        xs->elem_start = (size_t)XML_GetCurrentByteIndex(xs->p);
    } else {
        e->parent = xs->cur;
        if (xs->cur->last_child)
            xs->cur->last_child->next = e;
        else
            xs->cur->first_child = e;
        xs->cur->last_child = e;
        xs->cur = e;
    }
    xs->depth++;
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
    struct xe_xmlstream *xs = ud;

    (void)name;
    if (xs->condition || xs->stopped)
        return; /* the end of an element refused at its start, or of an empty
                 * element whose start stopped the parser */
    if (xs->depth == 1) {
        /* the stream is over: nothing may follow on this parser */
        xs->depth = 0;
        xs->in_stream = false;
        if (xs->cb.stream_end)
            xs->cb.stream_end(xs->ctx);
        xs->stopped = true;
        xs->stop_at = event_end(xs);
        XML_StopParser(xs->p, XML_FALSE);
        return;
    }
    xs->depth--;
    if (xs->depth == 1) {
        size_t end = event_end(xs);
        struct xe_xml_elem *e = xs->root;
        int r;

        xs->root = xs->cur = NULL;
        xs->boundary = end;
        if (end - xs->elem_start > xs->lim.max_element_bytes) {
            elem_free(e);
            fail(xs, "policy-violation", "element too large");
            return;
        }
        r = xs->cb.element(xs->ctx, e, xs->raw.data + (xs->elem_start - xs->raw_base),
                           end - xs->elem_start);
        elem_free(e);
        if (r != XE_XS_CONTINUE) {
            xs->stopped = true;
            xs->stop_at = end;
            XML_StopParser(xs->p, XML_FALSE);
        }
    } else {
        xs->cur = xs->cur->parent;
    }
}

static void XMLCALL
on_chars(void *ud, const XML_Char *s, int len)
{
    struct xe_xmlstream *xs = ud;

    if (xs->condition || xs->stopped)
        return;
    if (xs->cur == NULL) {
        /* white space between top-level elements */
        xs->boundary = event_end(xs);
        if (xs->space)
            xs->space(xs->ctx, s, (size_t)len);
        return;
    }
    if (xe_buf_append(&xs->cur->text, s, (size_t)len) < 0 ||
        xe_buf_append(&xs->cur->text, "", 1) < 0) {
        fail(xs, "policy-violation", "element too large");
        return;
    }
    xs->cur->text.len--; /* keep the NUL outside the length */
}

static void XMLCALL
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal)
{
    fail(ud, "restricted-xml", "DOCTYPE is not allowed");
}

static void XMLCALL
on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *value, int vlen,
          const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
          const XML_Char *notation)
{
    fail(ud, "restricted-xml", "entity declarations are not allowed");
}

static void XMLCALL
on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    fail(ud, "restricted-xml", "processing instructions are not allowed");
}

static void XMLCALL
on_comment(void *ud, const XML_Char *data)
{
    fail(ud, "restricted-xml", "comments are not allowed");
}

/* Expat's hash salt (against hash flooding) is drawn per parser from the
 * kernel (getrandom, getpid) unless one is given: a secret random salt per
 * process serves as well and saves two system calls per stream. */
static unsigned long hash_salt;
static pthread_once_t hash_salt_once = PTHREAD_ONCE_INIT;

static void
draw_hash_salt(void)
{
    while (hash_salt == 0)
        if (RAND_bytes((unsigned char *)&hash_salt, sizeof(hash_salt)) != 1)
            abort(); /* no randomness: nothing here is safe to run */
}

static int
setup(struct xe_xmlstream *xs)
{
    if (xs->p == NULL)
        xs->p = XML_ParserCreate_MM("UTF-8", NULL, "\x01");
    else if (XML_ParserReset(xs->p, "UTF-8") != XML_TRUE)
        return -1;
    if (xs->p == NULL)
        return -1;
    pthread_once(&hash_salt_once, draw_hash_salt);
    XML_SetHashSalt(xs->p, hash_salt);
    XML_SetReturnNSTriplet(xs->p, XML_TRUE);
    XML_SetUserData(xs->p, xs);
    XML_SetElementHandler(xs->p, on_start, on_end);
    XML_SetCharacterDataHandler(xs->p, on_chars);
    XML_SetStartNamespaceDeclHandler(xs->p, on_ns_start);
    XML_SetStartDoctypeDeclHandler(xs->p, on_doctype);
    XML_SetEntityDeclHandler(xs->p, on_entity);
    XML_SetProcessingInstructionHandler(xs->p, on_pi);
    XML_SetCommentHandler(xs->p, on_comment);
    XML_SetParamEntityParsing(xs->p, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
    /* Deferral would hold back an element that arrived whole (a <starttls/>
     * in its own packet) until more bytes come: a stream must be processed
     * as it arrives. The element size limit bounds the cost of reparsing a
     * token that arrives in pieces. */
    XML_SetReparseDeferralEnabled(xs->p, XML_FALSE);
#endif
    return 0;
}

struct xe_xmlstream *
xe_xmlstream_new(const struct xe_xmlstream_limits *limits,
                 const struct xe_xmlstream_cb *cb, void *ctx)
{
    struct xe_xmlstream *xs = xe_calloc(1, sizeof(*xs));

    xs->lim = *limits;
    xs->cb = *cb;
    xs->ctx = ctx;
    xe_buf_init(&xs->raw, 0);
    xe_buf_init(&xs->header, XE_MAX_HEADER_BYTES);
    xs->at_start = true;
    if (setup(xs) < 0) {
        free(xs);
        return NULL;
    }
    return xs;
}

void
xe_xmlstream_set_limits(struct xe_xmlstream *xs, const struct xe_xmlstream_limits *limits)
{
    xs->lim = *limits;
}

static void
clear_state(struct xe_xmlstream *xs)
{
    elem_free(xs->root);
    xs->root = xs->cur = NULL;
    free(xs->default_ns);
    xs->default_ns = NULL;
    xs->depth = 0;
    xs->in_stream = false;
    xs->raw.len = 0;
    if (xs->raw.cap > XE_XML_RAW_KEEP)
        xe_buf_free(&xs->raw);
    xs->raw_base = xs->elem_start = xs->fed = xs->boundary = 0;
    xs->stopped = false;
    xs->at_start = true;
    xs->condition = xs->text = NULL;
}

void
xe_xmlstream_reset(struct xe_xmlstream *xs)
{
    clear_state(xs);
    if (setup(xs) < 0)
        xs->condition = "internal-server-error";
}

void
xe_xmlstream_free(struct xe_xmlstream **xsp)
{
    struct xe_xmlstream *xs = *xsp;

    if (xs == NULL)
        return;
    clear_state(xs);
    xe_buf_free(&xs->raw);
    xe_buf_free(&xs->header);
    if (xs->p)
        XML_ParserFree(xs->p);
    free(xs);
    *xsp = NULL;
}

static const char *
expat_condition(enum XML_Error e)
{
    switch (e) {
    case XML_ERROR_NO_MEMORY:
        return "resource-constraint";
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        return "unsupported-encoding";
    case XML_ERROR_UNBOUND_PREFIX:
        return "invalid-namespace";
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_MISPLACED_XML_PI:
        return "restricted-xml";
    default:
        return "not-well-formed";
    }
}

static int feed_slice(struct xe_xmlstream *xs, const void *data, size_t len,
                      size_t *consumed_r);

/* The chunk to expat in slices (XE_XML_FEED_SLICE), each consumed or not. */
static int
feed_parser(struct xe_xmlstream *xs, const void *data, size_t len, size_t *consumed_r)
{
    const unsigned char *p = data;
    size_t done = 0;

    *consumed_r = 0;
    while (done < len) {
        size_t n = len - done < XE_XML_FEED_SLICE ? len - done : XE_XML_FEED_SLICE,
               used = 0;
        int r = feed_slice(xs, p + done, n, &used);

        if (r != XE_XS_OK) {
            *consumed_r = r == XE_XS_STOPPED ? done + used : 0;
            return r;
        }
        done += n;
    }
    *consumed_r = len;
    return XE_XS_OK;
}

static bool
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
xe_xmlstream_feed(struct xe_xmlstream *xs, const void *data, size_t len,
                  size_t *consumed_r)
{
    size_t skipped = 0;
    int r;

    *consumed_r = 0;
    if (xs->condition)
        return XE_XS_ERROR;
    if (xs->at_start) {
        /* Clients put a line break between </auth> (or <starttls/>) and the
         * restarted stream's <?xml ...?>, which must start the document:
         * white space before a stream is not part of it. */
        const unsigned char *p = data;
        while (skipped < len && is_space(p[skipped]))
            skipped++;
        if (skipped == len) {
            *consumed_r = len;
            return XE_XS_OK;
        }
        /* RFC 6120 11.6: UTF-8 only. Expat would follow a UTF-16 byte order
         * mark (or guess UTF-16 from a NUL) whatever it was told. */
        if (p[skipped] == 0xfe || p[skipped] == 0xff || p[skipped] == 0x00) {
            xs->condition = "unsupported-encoding";
            xs->text = "the stream must be UTF-8";
            return XE_XS_ERROR;
        }
        xs->at_start = false;
        data = p + skipped;
        len -= skipped;
    }
    r = feed_parser(xs, data, len, consumed_r);
    *consumed_r += skipped;
    return r;
}

static int
feed_slice(struct xe_xmlstream *xs, const void *data, size_t len, size_t *consumed_r)
{
    size_t base = xs->fed;
    enum XML_Status st;

    /* keep the raw bytes of the element being parsed */
    if (xe_buf_append(&xs->raw, data, len) < 0) {
        xs->condition = "resource-constraint";
        return XE_XS_ERROR;
    }
    xs->fed += len;
    st = XML_Parse(xs->p, data, (int)len, XML_FALSE);
    if (xs->condition) /* a limit or a refused construct, whatever else happened */
        return XE_XS_ERROR;
    if (xs->stopped) {
        xs->stopped = false;
        *consumed_r = xs->stop_at - base;
        /* the caller resets or discards the parser after a stop */
        return XE_XS_STOPPED;
    }
    if (st != XML_STATUS_OK) {
        if (xs->condition == NULL) {
            enum XML_Error e = XML_GetErrorCode(xs->p);
            xs->condition =
                e == XML_ERROR_ABORTED ? "internal-server-error" : expat_condition(e);
            xs->text = XML_ErrorString(e);
        }
        return XE_XS_ERROR;
    }
    *consumed_r = len;
    /* drop raw bytes that no open element needs, and bound the open one */
    {
        size_t keep_from = xs->root ? xs->elem_start : xs->boundary;
        if (keep_from > xs->raw_base) {
            xe_buf_consume(&xs->raw, keep_from - xs->raw_base);
            xs->raw_base = keep_from;
        }
        if (xs->raw.len == 0 && xs->raw.cap > XE_XML_RAW_KEEP)
            xe_buf_free(&xs->raw); /* a large element's capacity, given back */
        if (xs->fed - keep_from > xs->lim.max_element_bytes) {
            xs->condition = "policy-violation";
            xs->text = "element too large";
            return XE_XS_ERROR;
        }
    }
    return XE_XS_OK;
}

void
xe_xmlstream_set_space_cb(struct xe_xmlstream *xs,
                          void (*space)(void *ctx, const char *s, size_t len))
{
    xs->space = space;
}

size_t
xe_xmlstream_raw_capacity(const struct xe_xmlstream *xs)
{
    return xs->raw.cap;
}

bool
xe_xmlstream_between(const struct xe_xmlstream *xs)
{
    return xs->in_stream && xs->depth == 1 && xs->root == NULL && !xs->stopped &&
           xs->condition == NULL && xs->fed == xs->boundary;
}

const unsigned char *
xe_xmlstream_header(const struct xe_xmlstream *xs, size_t *len_r)
{
    *len_r = xs->header.len;
    return xs->header.len ? xs->header.data : NULL;
}

const char *
xe_xmlstream_condition(const struct xe_xmlstream *xs)
{
    return xs->condition ? xs->condition : "internal-server-error";
}

const char *
xe_xmlstream_error_text(const struct xe_xmlstream *xs)
{
    return xs->text ? xs->text : "";
}

int
xe_stream_error_xml(struct xe_buf *out, bool header, const char *domain, const char *id,
                    const char *condition, const char *text)
{
    int r = 0;

    if (header) {
        r |= xe_buf_appendf(out,
                            "<?xml version='1.0'?><stream:stream xmlns='" XE_NS_CLIENT
                            "' xmlns:stream='" XE_NS_STREAMS "' id='%s'",
                            id);
        if (domain) {
            r |= xe_buf_append_str(out, " from='");
            r |= xe_buf_append_escaped(out, domain);
            r |= xe_buf_append_str(out, "'");
        }
        r |= xe_buf_append_str(out, " version='1.0'>");
    }
    r |= xe_buf_appendf(out, "<stream:error><%s xmlns='" XE_NS_STREAM_ERRORS "'/>",
                        condition);
    if (text && *text) {
        r |= xe_buf_append_str(out,
                               "<text xmlns='" XE_NS_STREAM_ERRORS "' xml:lang='en'>");
        r |= xe_buf_append_escaped(out, text);
        r |= xe_buf_append_str(out, "</text>");
    }
    r |= xe_buf_append_str(out, "</stream:error></stream:stream>");
    return r;
}
