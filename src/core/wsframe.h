/* xedge: WebSocket framing, server side (sans-IO, over wslay; RFC 6455).
 *
 * Bytes in -> complete text messages out (through a callback); messages in
 * -> frame bytes out (through a callback). wslay does the framing: the
 * client's frames must be masked (else close 1002), pings are answered with
 * pongs, a fragmented message is reassembled, a message over max_message
 * bytes closes with 1009, a text message that is not UTF-8 with 1007.
 * XMPP is text only (RFC 7395 3.2): a binary message closes with 1003.
 * After a close frame either way no message goes out or comes in; once
 * xe_wsframe_done() the glue closes the TCP connection. */
#ifndef XE_WSFRAME_H
#define XE_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>

struct xe_wsframe_cb {
    /* One complete text message. Return 0, or nonzero to stop reading (the
     * callback has queued what must go out, a close among it). */
    int (*message)(void *ctx, const char *text, size_t len);
    /* Frame bytes for the client. Return 0, or negative (the connection is
     * failing). */
    int (*write)(void *ctx, const void *bytes, size_t len);
};

struct xe_wsframe;

struct xe_wsframe *xe_wsframe_new(size_t max_message, const struct xe_wsframe_cb *cb,
                                  void *ctx);
void xe_wsframe_free(struct xe_wsframe **w);
/* Change the message bound (the next message on). */
void xe_wsframe_set_max(struct xe_wsframe *w, size_t max_message);
/* Feed the client's bytes (all are taken). Returns 0, or negative when the
 * connection must end now (an allocation or a write failed). A protocol
 * error is not an error here: the close frame goes out through write and
 * xe_wsframe_done() tells when to close. */
int xe_wsframe_input(struct xe_wsframe *w, const void *data, size_t len);
/* Send one text message (inside a message callback: queued, written when
 * it returns). Returns 0, or negative (closing: nothing more goes out). */
int xe_wsframe_send_text(struct xe_wsframe *w, const void *text, size_t len);
/* Start the closing handshake with code (1000 normal, 1001 going away,
 * 1008 policy, 1011 internal) and a short reason (at most 123 bytes). */
int xe_wsframe_close(struct xe_wsframe *w, unsigned code, const char *reason);
/* Both directions are over (a close sent and received, or a protocol
 * error answered): close the TCP connection. */
bool xe_wsframe_done(const struct xe_wsframe *w);
/* The close code the client sent (0: none yet, 1005: none in its frame)
 * and the one we sent (0: none yet). */
unsigned xe_wsframe_peer_code(const struct xe_wsframe *w);
unsigned xe_wsframe_our_code(const struct xe_wsframe *w);

#endif
