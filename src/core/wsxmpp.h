/* xedge: XMPP over WebSocket (RFC 7395): the framing mapped to and from an
 * XMPP TCP stream (sans-IO).
 *
 * Client -> stream: each WebSocket text message must be one complete
 * element (xe_boundary finds where it ends; expat reads only its start
 * tag). `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>` becomes a
 * `<stream:stream>` header (jabber:client), `<close/>` becomes
 * `</stream:stream>`, any other element goes on as it came. Two elements in
 * one message, half of one, text, or a stanza before `<open/>`: the client
 * gets `<error xmlns='http://etherx.jabber.org/streams'>` with the stream
 * error, then `<close/>`, and the caller closes the WebSocket.
 *
 * Stream -> client: the TCP stream (ours before the splice, the backend's
 * after) is cut at its top-level element boundaries without building a
 * tree (xe_boundary again), each element sent as one message with the
 * namespaces it used from the stream header declared on it (the stream's
 * default namespace, jabber:client, on every top-level element that does
 * not declare its own; xmlns:stream where the prefix is used); the header
 * becomes `<open/>` (again at a restart), `<stream:error>` becomes
 * `<error xmlns='http://etherx.jabber.org/streams'>`, `</stream:stream>`
 * becomes `<close/>` (XE_WS_CLOSE_MSG); whitespace keepalives are dropped (RFC 7395 3.6).
 * Bounded: an element of the stream over max_out bytes is an error. */
#ifndef XE_WSXMPP_H
#define XE_WSXMPP_H

#include <stdbool.h>
#include <stddef.h>

#define XE_NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define XE_NS_STREAMS "http://etherx.jabber.org/streams"
/* The <close/> sent to a client, in the one spelling strophe.js (and the
 * libraries derived from it) recognise by string comparison: double quotes
 * and a space before "/>". Any XML parser reads it too. */
#define XE_WS_CLOSE_MSG "<close xmlns=\"" XE_NS_FRAMING "\" />"

struct xe_wsxmpp_cb {
    /* Bytes of the client's XMPP stream (to the c2s core, or the backend
     * after the splice). Return 0, or negative to fail. */
    int (*to_stream)(void *ctx, const void *bytes, size_t len);
    /* One complete element for the client: one WebSocket text message.
     * Return 0, or negative to fail. */
    int (*to_client)(void *ctx, const char *msg, size_t len);
};

enum {
    XE_WSXMPP_OK = 0,
    XE_WSXMPP_CLOSED = 1, /* the stream's end mapped: close the WebSocket after it */
};
#define XE_WSXMPP_EFRAME (-1)  /* the client broke the framing: error and close sent */
#define XE_WSXMPP_ESTREAM (-2) /* the stream's bytes cannot be mapped (too big, bad) */
#define XE_WSXMPP_ECB (-3)     /* a callback failed */

struct xe_wsxmpp;

struct xe_wsxmpp *xe_wsxmpp_new(size_t max_out, const struct xe_wsxmpp_cb *cb, void *ctx);
void xe_wsxmpp_free(struct xe_wsxmpp **x);
/* One text message of the client's. */
int xe_wsxmpp_client_message(struct xe_wsxmpp *x, const char *msg, size_t len);
/* Bytes of the stream towards the client (any split). */
int xe_wsxmpp_stream_input(struct xe_wsxmpp *x, const void *bytes, size_t len);
/* Why the last call failed (for the log), or "". */
const char *xe_wsxmpp_error(const struct xe_wsxmpp *x);
/* The client's stream is open (an <open/> came and no <close/> yet). */
bool xe_wsxmpp_client_open(const struct xe_wsxmpp *x);

#endif
