/* xedge: WebSocket framing over wslay's event API, sans-IO. See wsframe.h. */
#include "wsframe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

struct xe_wsframe {
    wslay_event_context_ptr ctx;
    const struct xe_wsframe_cb *cb;
    void *user;
    const unsigned char *in; /* the bytes of the current input call */
    size_t in_len, in_off;
    bool in_input; /* inside xe_wsframe_input: sends wait for its end */
    bool failed;   /* a write failed: nothing more */
    unsigned peer_code, our_code;
    /* Between frames, with nothing queued and no close, wslay holds no
     * state worth its 8 KiB of buffers: its context is freed (ctx NULL)
     * and made again for the next bytes either way (RSS per idle
     * session). Whether wslay holds part of a frame is known by counting:
     * the bytes fed against the bytes of the frames it completed (their
     * header sizes from the payload lengths, the client's mask included:
     * a frame that was longer, with a non-minimal length, only keeps the
     * context), and a fragmented message in progress. */
    size_t max_message;
    uint64_t fed, framed;
    uint64_t frame_len; /* the frame being read, header included */
    bool msg_open;      /* a fragmented data message is not complete */
};

static int make_ctx(struct xe_wsframe *w);

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    struct xe_wsframe *w = user;
    size_t n = w->in_len - w->in_off;

    (void)flags;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n > len)
        n = len;
    memcpy(buf, w->in + w->in_off, n);
    w->in_off += n;
    return (ssize_t)n;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
        void *user)
{
    struct xe_wsframe *w = user;

    (void)flags;
    if (w->failed || w->cb->write(w->user, data, len) < 0) {
        w->failed = true;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void
close_with(struct xe_wsframe *w, unsigned code, const char *reason)
{
    if (!w->our_code)
        w->our_code = code;
    wslay_event_queue_close(w->ctx, (uint16_t)code, (const uint8_t *)reason,
                            reason ? strlen(reason) : 0);
    wslay_event_shutdown_read(w->ctx);
}

static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
       void *user)
{
    struct xe_wsframe *w = user;

    (void)ctx;
    switch (a->opcode) {
    case WSLAY_TEXT_FRAME:
        if (!wslay_event_get_read_enabled(w->ctx))
            return;
        if (w->cb->message(w->user, (const char *)a->msg, a->msg_length) != 0)
            wslay_event_shutdown_read(w->ctx);
        break;
    case WSLAY_BINARY_FRAME:
        close_with(w, WSLAY_CODE_UNSUPPORTED_DATA, "text frames only");
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* wslay answers with the same code (or 1000) and stops reading */
        w->peer_code = a->status_code ? a->status_code : WSLAY_CODE_NO_STATUS_RCVD;
        if (!w->our_code)
            w->our_code = a->status_code ? a->status_code : WSLAY_CODE_NORMAL_CLOSURE;
        break;
    default: /* ping (answered by wslay), pong */
        break;
    }
}

static void
frame_start_cb(wslay_event_context_ptr ctx,
               const struct wslay_event_on_frame_recv_start_arg *a, void *user)
{
    struct xe_wsframe *w = user;
    uint64_t n = a->payload_length;

    (void)ctx;
    w->frame_len = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4 + n;
    if (a->opcode < 8) /* a data frame or a continuation: control frames interleave */
        w->msg_open = !a->fin;
}

static void
frame_end_cb(wslay_event_context_ptr ctx, void *user)
{
    struct xe_wsframe *w = user;

    (void)ctx;
    w->framed += w->frame_len;
    w->frame_len = 0;
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = frame_start_cb,
    .on_frame_recv_end_callback = frame_end_cb,
    .on_msg_recv_callback = msg_cb,
};

static int
make_ctx(struct xe_wsframe *w)
{
    if (w->ctx)
        return 0;
    if (wslay_event_context_server_init(&w->ctx, &callbacks, w) != 0) {
        w->ctx = NULL;
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
    return 0;
}

/* Idle: free wslay's context (see struct xe_wsframe). */
static void
maybe_release(struct xe_wsframe *w)
{
    if (w->ctx == NULL || w->in_input || w->failed || w->fed != w->framed ||
        w->msg_open || w->peer_code || w->our_code || wslay_event_want_write(w->ctx) ||
        !wslay_event_get_read_enabled(w->ctx) || !wslay_event_get_write_enabled(w->ctx))
        return;
    wslay_event_context_free(w->ctx);
    w->ctx = NULL;
}

struct xe_wsframe *
xe_wsframe_new(size_t max_message, const struct xe_wsframe_cb *cb, void *user)
{
    struct xe_wsframe *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->max_message = max_message;
    w->cb = cb;
    w->user = user;
    return w; /* (the context comes with the first bytes) */
}

void
xe_wsframe_set_max(struct xe_wsframe *w, size_t max_message)
{
    w->max_message = max_message;
    if (w->ctx)
        wslay_event_config_set_max_recv_msg_length(w->ctx, max_message);
}

void
xe_wsframe_free(struct xe_wsframe **w)
{
    if (!*w)
        return;
    if ((*w)->ctx)
        wslay_event_context_free((*w)->ctx);
    free(*w);
    *w = NULL;
}

static int
flush(struct xe_wsframe *w)
{
    if (w->failed)
        return -1;
    if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0)
        return -1;
    return w->failed ? -1 : 0;
}

int
xe_wsframe_input(struct xe_wsframe *w, const void *data, size_t len)
{
    int rc = 0;

    if (w->failed || make_ctx(w) < 0)
        return -1;
    if (!wslay_event_get_read_enabled(w->ctx))
        return 0; /* after a close: the rest is dropped */
    w->fed += len;
    w->in = data;
    w->in_len = len;
    w->in_off = 0;
    w->in_input = true;
    if (wslay_event_recv(w->ctx) != 0)
        rc = -1;
    w->in_input = false;
    w->in = NULL;
    w->in_len = w->in_off = 0;
    /* a protocol error (unmasked frame, bad opcode, bad UTF-8, too big):
     * wslay queued the close with its code and stopped reading */
    if (flush(w) != 0)
        rc = -1;
    maybe_release(w);
    return rc;
}

int
xe_wsframe_send_text(struct xe_wsframe *w, const void *text, size_t len)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, text, len};

    int r;

    if (w->failed || make_ctx(w) < 0 || wslay_event_queue_msg(w->ctx, &m) != 0)
        return -1;
    if (w->in_input)
        return 0;
    r = flush(w);
    maybe_release(w);
    return r;
}

int
xe_wsframe_close(struct xe_wsframe *w, unsigned code, const char *reason)
{
    if (w->failed || make_ctx(w) < 0)
        return -1;
    if (reason && strlen(reason) > 123)
        reason = NULL;
    close_with(w, code, reason);
    return w->in_input ? 0 : flush(w);
}

bool
xe_wsframe_done(const struct xe_wsframe *w)
{
    return w->failed ||
           (w->ctx && !wslay_event_get_read_enabled(w->ctx) &&
            !wslay_event_want_write(w->ctx) && !wslay_event_get_write_enabled(w->ctx));
}

unsigned
xe_wsframe_peer_code(const struct xe_wsframe *w)
{
    return w->peer_code;
}

unsigned
xe_wsframe_our_code(const struct xe_wsframe *w)
{
    return w->ctx && wslay_event_get_close_sent(w->ctx)
               ? wslay_event_get_status_code_sent(w->ctx)
               : w->our_code;
}
