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
};

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

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_msg_recv_callback = msg_cb,
};

struct xe_wsframe *
xe_wsframe_new(size_t max_message, const struct xe_wsframe_cb *cb, void *user)
{
    struct xe_wsframe *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    if (wslay_event_context_server_init(&w->ctx, &callbacks, w) != 0) {
        free(w);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, max_message);
    w->cb = cb;
    w->user = user;
    return w;
}

void
xe_wsframe_free(struct xe_wsframe **w)
{
    if (!*w)
        return;
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

    if (w->failed)
        return -1;
    if (!wslay_event_get_read_enabled(w->ctx))
        return 0; /* after a close: the rest is dropped */
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
    return rc;
}

int
xe_wsframe_send_text(struct xe_wsframe *w, const void *text, size_t len)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, text, len};

    if (w->failed || wslay_event_queue_msg(w->ctx, &m) != 0)
        return -1;
    return w->in_input ? 0 : flush(w);
}

int
xe_wsframe_close(struct xe_wsframe *w, unsigned code, const char *reason)
{
    if (w->failed)
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
           (!wslay_event_get_read_enabled(w->ctx) && !wslay_event_want_write(w->ctx) &&
            !wslay_event_get_write_enabled(w->ctx));
}

unsigned
xe_wsframe_peer_code(const struct xe_wsframe *w)
{
    return w->peer_code;
}

unsigned
xe_wsframe_our_code(const struct xe_wsframe *w)
{
    return wslay_event_get_close_sent(w->ctx) ? wslay_event_get_status_code_sent(w->ctx)
                                              : w->our_code;
}
