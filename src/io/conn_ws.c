/* xedge: XMPP over WebSocket (RFC 7395) on a c2s connection: the glue of
 * the sans-IO cores (wshttp.c: the HTTP/1.1 Upgrade and host-meta,
 * wsframe.c: the frames, wsxmpp.c: <open/>/<close/> and one element per
 * message) as a transform between TLS and the c2s stream (struct
 * xe_srv_xform, server_impl.h, on the client stream's hook). The c2s core, the lockouts,
 * the limits, the backend and the splice see a plain XMPP stream, as from a Direct TLS
 * client; doc/websocket.md.
 *
 * Inbound: TLS plaintext -> wshttp until the 101 (or an error answer and
 * close) -> wsframe -> messages -> wsxmpp -> stream bytes ->
 * xe_stream_deliver. Outbound: the stream for the client (the c2s core's
 * before the splice, the backend's after) -> wsxmpp (one element per
 * message) -> wsframe -> frames -> TLS. Part of the c2s I/O glue
 * (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"
#include "wsframe.h"
#include "wshttp.h"
#include "wsxmpp.h"

enum ws_phase { WS_HTTP, WS_OPEN };

struct ws {
    struct conn *c;
    const struct xe_ws_listener_conf *lc;
    struct xe_wshttp_conf hc;
    struct xe_wshttp *http; /* until the Upgrade's answer */
    struct xe_wsframe *fr;  /* from the 101 */
    struct xe_wsxmpp *xm;
    enum ws_phase phase;
    bool deadline_set;       /* the Upgrade's deadline is in force */
    uint64_t saved_deadline; /* the login's, restored at the 101 */
    bool answered_timeout;   /* 408 sent */
    bool authed;             /* the message bound is max_stanza_postauth */
    bool overflow;           /* inq was full: the connection ends */
    /* the messages of one input, handled once the frame layer returns
     * (so that what they make is written at once, in order, and a close
     * frame never overtakes the <error/> and <close/> before it; wslay
     * sends a queued control frame first): each a size_t length, then
     * its bytes; bounded by one read and one message */
    struct xe_buf inq;
    struct batch *batch; /* inside ws_out: its frames (frame_write) */
};

static inline struct ws *
ws_of(struct conn *c)
{
    return c->xf_ctx;
}

/* Frame bytes (or an HTTP answer) to the client: into TLS (flushed by the
 * caller, once per batch) or, plain ws, to the socket. */
static int
wire(struct conn *c, const void *data, size_t len)
{
    if (c->closed)
        return -1;
    /* (a TLS error closes the stream: its closed callback tells) */
    return xe_stream_write_below(&c->cs, data, len);
}

/* The frames of one ws_out call, gathered so that they go into TLS as one
 * record (a login's answers are two or three elements at a time, and the
 * backend's reads several stanzas): on ws_out's stack, written before it
 * returns. */
struct batch {
    size_t len;
    char data[8192];
};

static int
batch_flush(struct conn *c, struct batch *b)
{
    int r = b->len ? wire(c, b->data, b->len) : 0;

    b->len = 0;
    return r;
}

static int
frame_write(void *ctx, const void *bytes, size_t len)
{
    struct conn *c = ctx;
    struct batch *b = ws_of(c)->batch;

    if (b == NULL)
        return wire(c, bytes, len);
    if (b->len + len > sizeof(b->data) && batch_flush(c, b) < 0)
        return -1;
    if (len > sizeof(b->data))
        return wire(c, bytes, len);
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    return 0;
}

static void ws_done_check(struct conn *c);
extern const struct xe_srv_xform xe_srv_ws_xform;

/* The messages the last input completed, to the RFC 7395 mapping and on
 * to the stream, in order; after a framing error the rest are dropped. */
static void
messages(struct conn *c, struct ws *ws)
{
    size_t off = 0;

    while (off < ws->inq.len && !c->closed && c->st != CS_CLOSING) {
        size_t len;
        int r;

        memcpy(&len, ws->inq.data + off, sizeof(len));
        off += sizeof(len);
        r = xe_wsxmpp_client_message(ws->xm, (const char *)ws->inq.data + off, len);
        off += len;
        if (r == XE_WSXMPP_EFRAME) {
            /* the <error/> and <close/> are out: close the WebSocket */
            xe_metrics_inc(XE_M_STREAM_ERRORS, "websocket-framing", NULL);
            xe_info("event=stream-error peer=%s jid=%s transport=websocket error=\"%s\"",
                    c->peer, c->jid ? c->jid : "-", xe_wsxmpp_error(ws->xm));
            xe_wsframe_close(ws->fr, 1000, "");
            break;
        }
        if (r < 0)
            break;
    }
    xe_buf_free(&ws->inq); /* (an idle session keeps no buffer) */
}

/* Feed the frame layer, then handle the messages it completed. Returns 0,
 * or -1 (the connection must end). */
static int
frames_in(struct conn *c, struct ws *ws, const char *data, size_t n)
{
    if (xe_wsframe_input(ws->fr, data, n) < 0)
        return -1;
    messages(c, ws);
    if (ws->overflow && !c->closed) { /* (cannot happen within the bound) */
        xe_wsframe_close(ws->fr, 1008, "");
        xe_srv_close_conn(c);
    }
    return 0;
}

/* A message of the client's: kept for messages(). */
static int
frame_message(void *ctx, const char *text, size_t len)
{
    struct conn *c = ctx;
    struct ws *ws = ws_of(c);

    if (c->closed || c->st == CS_CLOSING)
        return 1;
    if (xe_buf_append(&ws->inq, &len, sizeof(len)) < 0 ||
        xe_buf_append(&ws->inq, text, len) < 0) {
        xe_warn("event=buffer-cap peer=%s jid=%s side=websocket queued=%zu", c->peer,
                c->jid ? c->jid : "-", ws->inq.len + len);
        ws->overflow = true;
        return 1;
    }
    return 0;
}

static const struct xe_wsframe_cb frame_cb = {frame_message, frame_write};

static int
to_stream(void *ctx, const void *bytes, size_t len)
{
    struct conn *c = ctx;

    if (c->closed || c->st == CS_CLOSING)
        return 0; /* (dropped, as a closing client's bytes are) */
    xe_stream_deliver(&c->cs, bytes, len); /* (to the client stream's data) */
    return 0;
}

static int
to_client(void *ctx, const char *msg, size_t len)
{
    struct conn *c = ctx;

    return xe_wsframe_send_text(ws_of(c)->fr, msg, len) < 0 ? -1 : 0;
}

static const struct xe_wsxmpp_cb xmpp_cb = {to_stream, to_client};

/* A peer's address as "a.b.c.d:port" / "[v6]:port", for the log. */
static void
format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?"; /* (with "[]:65535" it fits in 64) */

    if (ss->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof(ip));
        snprintf(out, len, "%s:%d", ip,
                 ntohs(((const struct sockaddr_in *)ss)->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%d", ip,
                 ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
    }
}

/* Plain ws behind a trusted proxy: the client is the one X-Forwarded-For
 * names (else the proxy itself); it is counted here, at the Upgrade, not
 * at the accept (xe_srv_ws_count_later): counted there, every client
 * would take the proxy's tokens, and a reconnecting crowd behind one proxy
 * would pass connection_rate_per_address. The header is read only when
 * the peer (after a PROXY header, the address it gave) is itself a trusted
 * proxy: behind a proxy that sends the PROXY protocol and no
 * X-Forwarded-For (HAProxy's send-proxy-v2 without option forwardfor), a
 * header the client wrote itself would otherwise name any address it
 * likes; the PROXY header's client was counted at the start. Returns 0,
 * or -1 (refused: the answer is set). */
static int
forwarded_client(struct conn *c, struct ws *ws)
{
    struct sockaddr_storage sa;
    enum xe_addrlimit_result ar;
    char key[64] = "-", peer[64];
    uint64_t now = uv_now(c->w->loop);
    bool fwd;

    if (c->counted)
        return 0; /* the PROXY header named the client: it stays */
    fwd = xe_wshttp_client_addr(ws->http, ws->lc->trusted_proxies,
                                ws->lc->n_trusted_proxies, &sa) == 0;
    if (!fwd)
        sa = c->sa; /* none given: the proxy's own address */
    ar = xe_addrlimit_acquire(c->srv->al, (struct sockaddr *)&sa, now, key, sizeof(key));
    if (ar != XE_AL_OK) {
        xe_metrics_inc(XE_M_REFUSED, xe_addrlimit_result_name(ar), NULL);
        xe_warn(
            "event=connection-refused reason=%s address=%s via=%s transport=websocket",
            xe_addrlimit_result_name(ar), key, c->peer);
        return -1;
    }
    c->counted = true;
    snprintf(c->addr_key, sizeof(c->addr_key), "%s", key);
    if (!fwd)
        return 0;
    format_addr(&sa, peer, sizeof(peer));
    xe_debug("event=websocket-forwarded peer=%s via=%s", peer, c->peer);
    c->sa = sa;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    if (xe_srv_c2s(c))
        xe_c2s_set_peer(xe_srv_c2s(c), peer);
    return 0;
}

/* At the start of a connection (c->sa known: the socket's peer or the
 * PROXY header's): true when the per-address accounting waits for the
 * Upgrade, on plain ws from a trusted proxy (forwarded_client). */
bool
xe_srv_ws_count_later(const struct conn *c)
{
    const struct ws *ws;

    if (c->xf != &xe_srv_ws_xform)
        return false;
    ws = ws_of((struct conn *)c);
    return ws != NULL && !ws->lc->tls &&
           xe_cidr_match(ws->lc->trusted_proxies, ws->lc->n_trusted_proxies,
                         (const struct sockaddr *)&c->sa);
}

static const char busy_answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";

/* The request head is complete: the 101 and the frames from here, or an
 * answer and close. rest: the bytes after the head (pipelined frames). */
static void
upgrade_done(struct conn *c, struct ws *ws, int r, const char *rest, size_t n)
{
    struct xe_wshttp *h = ws->http;
    const struct xe_conf *conf = c->gen->conf;

    if (r == XE_WSHTTP_UPGRADE && !ws->lc->tls && forwarded_client(c, ws) < 0) {
        wire(c, busy_answer, sizeof(busy_answer) - 1);
        xe_srv_close_conn(c);
        return;
    }
    wire(c, h->answer, h->answer_len);
    if (r != XE_WSHTTP_UPGRADE) {
        if (h->status == 200)
            xe_debug("event=host-meta peer=%s", c->peer);
        else
            xe_info("event=websocket-refused peer=%s status=%d reason=\"%s\"", c->peer,
                    h->status, h->reason ? h->reason : "-");
        xe_srv_close_conn(c);
        return;
    }
    xe_debug("event=websocket-upgrade peer=%s origin=%s", c->peer,
             xe_wshttp_header(h, "origin") ? xe_wshttp_header(h, "origin") : "-");
    free(ws->http);
    ws->http = NULL;
    /* the message bound: the stanza limit, before authentication its own
     * (so that a client not logged in cannot make xedge hold more), after
     * it max_stanza_postauth (ws_in raises it) */
    ws->fr = xe_wsframe_new(conf->max_stanza_preauth, &frame_cb, c);
    ws->xm = xe_wsxmpp_new(XE_WS_MAX_OUT_MESSAGE, &xmpp_cb, c);
    if (ws->fr == NULL || ws->xm == NULL) {
        xe_err("event=websocket-error peer=%s error=\"out of memory\"", c->peer);
        xe_srv_finish_close(c);
        return;
    }
    /* one read's messages (each at least 6 bytes of frame, 8 of length
     * here) and one whole message at most */
    xe_buf_init(&ws->inq, 2 * XE_READ_CHUNK + conf->max_stanza_postauth + 64);
    ws->phase = WS_OPEN;
    xe_sess_set_auth_deadline(c->sess, ws->saved_deadline, uv_now(c->w->loop));
    xe_srv_exec(c, XE_SD_NONE);
    if (c->closed)
        return;
    if (n > 0) {
        if (frames_in(c, ws, rest, n) < 0)
            xe_srv_finish_close(c);
        else
            ws_done_check(c);
    }
}

/* Both closing frames are through (or a protocol error was answered): the
 * TCP connection closes once they are written. */
static void
ws_done_check(struct conn *c)
{
    struct ws *ws = ws_of(c);

    if (c->closed || !xe_wsframe_done(ws->fr))
        return;
    if (xe_wsframe_peer_code(ws->fr) != 1000 && xe_wsframe_our_code(ws->fr) != 1000 &&
        xe_wsframe_our_code(ws->fr) != 0)
        xe_info("event=websocket-error peer=%s jid=%s code=%u peer_code=%u", c->peer,
                c->jid ? c->jid : "-", xe_wsframe_our_code(ws->fr),
                xe_wsframe_peer_code(ws->fr));
    else
        xe_debug("event=websocket-closed peer=%s jid=%s code=%u peer_code=%u", c->peer,
                 c->jid ? c->jid : "-", xe_wsframe_our_code(ws->fr),
                 xe_wsframe_peer_code(ws->fr));
    xe_srv_close_conn(c);
}

/* The client's bytes, after TLS. */
static void
ws_in(struct conn *c, const char *data, size_t n)
{
    struct ws *ws = ws_of(c);

    if (ws->phase == WS_HTTP) {
        size_t used = 0;
        int r;

        if (!ws->deadline_set) { /* the whole head within the Upgrade's time */
            uint64_t now = uv_now(c->w->loop), at = now + XE_WS_UPGRADE_TIMEOUT_MS;
            ws->deadline_set = true;
            ws->saved_deadline = xe_sess_auth_deadline(c->sess);
            if (ws->saved_deadline == 0 || at < ws->saved_deadline)
                xe_sess_set_auth_deadline(c->sess, at, now);
            xe_srv_exec(c, XE_SD_NONE);
            if (c->closed)
                return;
        }
        r = xe_wshttp_feed(ws->http, data, n, &used);
        if (r == XE_WSHTTP_MORE)
            return;
        upgrade_done(c, ws, r, data + used, n - used);
        return;
    }
    if (!ws->authed && c->st != CS_NEGOTIATING) { /* logged in: the larger bound */
        ws->authed = true;
        xe_wsframe_set_max(ws->fr, c->gen->conf->max_stanza_postauth);
    }
    if (frames_in(c, ws, data, n) < 0) {
        xe_srv_finish_close(c);
        return;
    }
    ws_done_check(c);
}

static const char timeout_answer[] = "HTTP/1.1 408 Request Timeout\r\n"
                                     "Content-Length: 0\r\nConnection: close\r\n\r\n";

/* The stream's bytes for the client. */
static int
ws_out(struct conn *c, const void *data, size_t len)
{
    struct ws *ws = ws_of(c);
    struct batch b;
    int r;

    b.len = 0;
    if (ws->phase == WS_HTTP) {
        /* the c2s core's error before any WebSocket (the Upgrade's time
         * ran out): an HTTP answer instead */
        if (!ws->answered_timeout) {
            ws->answered_timeout = true;
            xe_info("event=websocket-refused peer=%s status=408 reason=\"no complete "
                    "Upgrade request in time\"",
                    c->peer);
            wire(c, timeout_answer, sizeof(timeout_answer) - 1);
        }
        return xe_stream_flush(&c->cs);
    }
    ws->batch = &b;
    r = xe_wsxmpp_stream_input(ws->xm, data, len);
    if (r == XE_WSXMPP_CLOSED)
        xe_wsframe_close(ws->fr, 1000, "");
    ws->batch = NULL;
    if (batch_flush(c, &b) < 0)
        return -1;
    if (r == XE_WSXMPP_ESTREAM) {
        static const char err[] = "<error xmlns='" XE_NS_STREAMS "'>"
                                  "<internal-server-error "
                                  "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>";
        xe_warn("event=websocket-error peer=%s jid=%s error=\"%s\"", c->peer,
                c->jid ? c->jid : "-", xe_wsxmpp_error(ws->xm));
        xe_wsframe_send_text(ws->fr, err, sizeof(err) - 1);
        xe_wsframe_send_text(ws->fr, XE_WS_CLOSE_MSG, sizeof(XE_WS_CLOSE_MSG) - 1);
        xe_wsframe_close(ws->fr, 1011, "");
        xe_stream_flush(&c->cs);
        xe_srv_close_conn(c);
        return -1;
    } else if (r < 0) {
        xe_srv_finish_close(c);
        return -1;
    }
    return xe_stream_flush(&c->cs);
}

static void
ws_free(struct conn *c)
{
    struct ws *ws = ws_of(c);

    if (ws == NULL)
        return;
    free(ws->http);
    xe_buf_free(&ws->inq);
    xe_wsframe_free(&ws->fr);
    xe_wsxmpp_free(&ws->xm);
    free(ws);
    c->xf_ctx = NULL;
}

/* Plain ws whose proxy terminated TLS (the listener's `encrypted`). */
bool
xe_srv_ws_encrypted(const struct conn *c)
{
    return c->xf == &xe_srv_ws_xform && ws_of((struct conn *)c)->lc->encrypted;
}

const struct xe_srv_xform xe_srv_ws_xform = {"websocket", ws_in, ws_out, ws_free};

/* A connection accepted on a websocket listener: plain ws only from a
 * trusted proxy; the transform set up for the Upgrade. Returns 0, or -1
 * (closed). */
int
xe_srv_ws_accept(struct conn *c, const struct xe_listener_conf *lc)
{
    const struct xe_ws_listener_conf *wl = lc->ws;
    struct ws *ws;

    if (!wl->tls) {
        struct sockaddr_storage ss;
        int sl = sizeof(ss);

        if (uv_tcp_getpeername(&c->cs.u.tcp, (struct sockaddr *)&ss, &sl) != 0 ||
            !xe_cidr_match(wl->trusted_proxies, wl->n_trusted_proxies,
                           (struct sockaddr *)&ss)) {
            struct worker *w = c->w;
            uint64_t now = uv_now(w->loop);

            /* logged at most once a second (with those not logged), as
             * the PROXY protocol's untrusted sources: a flood cannot
             * flood the log */
            xe_metrics_inc(XE_M_REFUSED, "websocket_untrusted", NULL);
            if (w->proxy_logged_ms && now - w->proxy_logged_ms < 1000) {
                w->proxy_unlogged++;
            } else {
                xe_warn("event=connection-refused reason=\"plain ws from a source not in "
                        "trusted_proxies\" peer=%s also_refused=%lu",
                        c->peer, w->proxy_unlogged);
                w->proxy_logged_ms = now;
                w->proxy_unlogged = 0;
            }
            xe_srv_finish_close(c);
            return -1;
        }
    }
    ws = xe_calloc(1, sizeof(*ws));
    ws->c = c;
    ws->lc = wl;
    ws->hc.path = wl->path;
    ws->hc.origins = (const char *const *)wl->origins;
    ws->hc.n_origins = wl->n_origins;
    ws->hc.host_meta_url = wl->host_meta_url;
    ws->http = xe_malloc(sizeof(*ws->http));
    xe_wshttp_init(ws->http, &ws->hc);
    c->xf = &xe_srv_ws_xform;
    c->xf_ctx = ws;
    return 0;
}
