/* xedge: the HTTP/1.1 side of a WebSocket listener (sans-IO; RFC 6455 section
 * 4, RFC 7395 section 3.3, XEP-0156).
 *
 * Bytes of the client's request in (http-parser does the parsing), one
 * answer out: 101 Switching Protocols with Sec-WebSocket-Accept and the
 * `xmpp` subprotocol; 200 for host-meta (XML or JSON, with CORS headers);
 * or a clear error (400, 403, 404, 405, 426, 431), after which the glue
 * closes. Bounded: the request head's bytes (XE_WS_MAX_HTTP_HEAD), its
 * header count (XE_WS_MAX_HTTP_HEADERS), each kept header's value. Bytes
 * after the request head (the client's first frames, pipelined) are left
 * to the caller: `used` says where the head ended.
 *
 * X-Forwarded-For: kept, and read (xe_wshttp_client_addr) only when the
 * glue says the peer is a trusted proxy. */
#ifndef XE_WSHTTP_H
#define XE_WSHTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "proxy.h"
#include "xelimits.h"

#define XE_WS_HOST_META "/.well-known/host-meta"
#define XE_WS_HOST_META_JSON "/.well-known/host-meta.json"

struct xe_wshttp_conf {
    const char *path;           /* NULL: XE_WS_DEFAULT_PATH */
    const char *const *origins; /* allowed Origin values; n_origins 0: any */
    size_t n_origins;
    const char *host_meta_url; /* the wss:// URL host-meta lists; NULL: no host-meta */
};

enum xe_wshttp_result {
    XE_WSHTTP_MORE = 0,    /* the request head is not complete yet */
    XE_WSHTTP_UPGRADE = 1, /* answer is the 101: send it, then frames */
    XE_WSHTTP_ANSWER = 2,  /* answer is a complete HTTP answer: send it, then close */
};

struct xe_wshttp {
    http_parser parser;
    const struct xe_wshttp_conf *conf;
    size_t head_bytes;
    unsigned n_headers;
    bool in_value, done, too_big;
    int field;                          /* the header being read (internal) */
    char name[XE_WS_MAX_HTTP_NAME + 1]; /* its name so far */
    size_t name_len;
    char url[XE_WS_MAX_HTTP_VALUE + 1];
    size_t url_len;
    char val[8][XE_WS_MAX_HTTP_VALUE + 1]; /* the kept headers (internal order) */
    size_t val_len[8];
    int status; /* the answer's status once done */
    char answer[XE_WS_MAX_HTTP_ANSWER];
    size_t answer_len;
    const char *reason; /* why not 101, for the log */
};

void xe_wshttp_init(struct xe_wshttp *h, const struct xe_wshttp_conf *conf);
/* Feed len bytes; *used: how many belong to the request head (the rest is
 * the WebSocket's). Returns an enum xe_wshttp_result; once not MORE,
 * h->answer/answer_len hold what to send and h->status its status. */
int xe_wshttp_feed(struct xe_wshttp *h, const void *data, size_t len, size_t *used);
/* The value of a kept request header once done ("host", "origin",
 * "sec-websocket-protocol", "x-forwarded-for", ...), or NULL. */
const char *xe_wshttp_header(const struct xe_wshttp *h, const char *name);
/* The client's address from X-Forwarded-For (call it only for a peer that is
 * a trusted proxy): the rightmost address not itself in trusted. Returns 0
 * and fills out, or -1 (no header, or not an address). */
int xe_wshttp_client_addr(const struct xe_wshttp *h, const struct xe_cidr *trusted,
                          size_t n_trusted, struct sockaddr_storage *out);
/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2): SHA-1 and base64.
 * out: at least 29 bytes. Returns 0, or -1. */
int xe_ws_accept_key(const char *key, char out[29]);

#endif
