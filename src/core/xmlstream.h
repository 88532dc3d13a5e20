/* xedge: the XML stream parser (sans-IO), on expat.
 *
 * Bytes in; callbacks out for the stream header, each complete top-level
 * element (as a small tree plus its raw bytes) and the stream end. A callback
 * may stop the parser right after its event: xe_xmlstream_feed then reports
 * how many bytes of the chunk were consumed, so that a stream restart (after
 * STARTTLS or SASL) happens at the exact byte where it belongs. DOCTYPE,
 * entity declarations, processing instructions and comments are refused;
 * depth, attributes and element size are bounded while parsing. */
#ifndef XE_XMLSTREAM_H
#define XE_XMLSTREAM_H

#include <stddef.h>
#include <stdbool.h>

#include "util.h"

#define XE_NS_STREAMS "http://etherx.jabber.org/streams"
#define XE_NS_CLIENT "jabber:client"
#define XE_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define XE_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define XE_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define XE_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define XE_NS_XML "http://www.w3.org/XML/1998/namespace"

struct xe_xml_attr {
    char *name; /* local name, or "{namespace}local" for a qualified one */
    char *value;
};

struct xe_xml_elem {
    char *ns;     /* namespace URI ("" when none) */
    char *name;   /* local name */
    char *prefix; /* prefix as written, or NULL */
    struct xe_xml_attr *attrs;
    size_t n_attrs;
    struct xe_buf text; /* character data directly inside, NUL-terminated when read */
    struct xe_xml_elem *parent, *first_child, *last_child, *next;
};

const char *xe_xml_attr(const struct xe_xml_elem *e, const char *name);
const struct xe_xml_elem *xe_xml_child(const struct xe_xml_elem *e, const char *ns,
                                       const char *name);
const char *xe_xml_text(const struct xe_xml_elem *e);
bool xe_xml_is(const struct xe_xml_elem *e, const char *ns, const char *name);

/* Callback return values */
#define XE_XS_CONTINUE 0
#define XE_XS_STOP 1

struct xe_xmlstream_cb {
    /* header: the <stream:stream> start tag; default_ns: the default namespace
     * declared on it (NULL if none). */
    int (*stream_start)(void *ctx, const struct xe_xml_elem *header,
                        const char *default_ns);
    int (*element)(void *ctx, const struct xe_xml_elem *e, const unsigned char *raw,
                   size_t raw_len);
    int (*stream_end)(void *ctx);
};

struct xe_xmlstream_limits {
    size_t max_element_bytes;
    unsigned max_depth; /* below the stream element */
    unsigned max_attrs;
};

/* feed results */
#define XE_XS_OK 0       /* the whole chunk was consumed */
#define XE_XS_STOPPED 1  /* a callback stopped; *consumed_r tells where */
#define XE_XS_ERROR (-1) /* see xe_xmlstream_condition() */

struct xe_xmlstream;

struct xe_xmlstream *xe_xmlstream_new(const struct xe_xmlstream_limits *limits,
                                      const struct xe_xmlstream_cb *cb, void *ctx);
int xe_xmlstream_feed(struct xe_xmlstream *xs, const void *data, size_t len,
                      size_t *consumed_r);
/* After XE_XS_ERROR: the RFC 6120 stream error condition and a text. */
const char *xe_xmlstream_condition(const struct xe_xmlstream *xs);
const char *xe_xmlstream_error_text(const struct xe_xmlstream *xs);
/* Optional: told of character data between top-level elements (white space
 * keepalives) as it arrives, with the callbacks' ctx. */
void xe_xmlstream_set_space_cb(struct xe_xmlstream *xs,
                               void (*space)(void *ctx, const char *s, size_t len));
/* The raw bytes of the last stream header's start tag (NULL before one). */
const unsigned char *xe_xmlstream_header(const struct xe_xmlstream *xs, size_t *len_r);
/* Bytes allocated for the raw bytes of the open element (tests, metrics). */
size_t xe_xmlstream_raw_capacity(const struct xe_xmlstream *xs);
/* New limits from the next element on (s2s: larger after authentication). */
void xe_xmlstream_set_limits(struct xe_xmlstream *xs,
                             const struct xe_xmlstream_limits *limits);
/* Inside the stream, between two top-level elements, with every byte fed
 * accounted for by a complete event (nothing of a next element or of a
 * token is held): a parser primed again with the stream header would go on
 * from here as this one would. */
bool xe_xmlstream_between(const struct xe_xmlstream *xs);
/* Start over for a new stream (a restart), keeping limits and callbacks. */
void xe_xmlstream_reset(struct xe_xmlstream *xs);
void xe_xmlstream_free(struct xe_xmlstream **xs);

/* A stream error document (with our c2s stream header first when HEADER,
 * from DOMAIN if set, with ID): used by the c2s core, the registration
 * splice and the glue. 0, or -1 when out of memory. */
int xe_stream_error_xml(struct xe_buf *out, bool header, const char *domain,
                        const char *id, const char *condition, const char *text);

#endif
