/* xedge: client-to-server stream negotiation (sans-IO).
 *
 * Plaintext XML in (after TLS is removed by the glue), bytes out, and one
 * action per call telling the glue what to do next: start TLS, open the
 * backend, hand the rest of the bytes to the backend, or close. It speaks
 * RFC 6120 up to and including the client's post-authentication stream
 * header; from there the glue splices bytes. */
#ifndef XE_C2S_H
#define XE_C2S_H

#include <stddef.h>
#include <stdbool.h>

#include "cbind.h"
#include "conf.h"
#include "util.h"

enum xe_c2s_action {
    XE_C2S_CONTINUE, /* all input consumed; send the output */
    XE_C2S_STARTTLS, /* <proceed/> queued: send it, drop the rest of the input, start TLS
                      */
    XE_C2S_AUTHENTICATED, /* <success/> queued: open the backend; keep feeding the rest */
    XE_C2S_RESTARTED,     /* the client opened its authenticated stream: the rest of
                             the input belongs to the backend */
    XE_C2S_CLOSE,         /* an error or the end was queued: send the output and close */
    XE_C2S_COMPRESS,      /* <compressed/> queued: send it as it is, then compress both
                             ways; the rest of the input is compressed: inflate it and
                             keep feeding */
    XE_C2S_SPLICE,        /* after a compression offer: the stream is answered; send the
                             output, then xe_c2s_splice_bytes() and the rest of the input
                             to the backend */
};

struct xe_c2s_params {
    const struct xe_conf *conf;
    bool tls;         /* TLS is up from the start (Direct TLS) */
    const char *peer; /* client address, for the log */
};

struct xe_c2s;

struct xe_c2s *xe_c2s_new(const struct xe_c2s_params *p);
void xe_c2s_free(struct xe_c2s **c);

/* Feed plaintext. *consumed_r: bytes of data used; the glue calls again with
 * the rest after acting on the returned action. */
enum xe_c2s_action xe_c2s_feed(struct xe_c2s *c, const void *data, size_t len,
                               size_t *consumed_r);
/* Bytes to send to the client; the glue empties it. */
struct xe_buf *xe_c2s_output(struct xe_c2s *c);

/* TLS is established (after STARTTLS, or Direct TLS with its SNI). */
void xe_c2s_tls_up(struct xe_c2s *c, const char *sni);
/* The TLS session's channel bindings (after xe_c2s_tls_up, before the next
 * stream header): -PLUS mechanisms are offered with them. */
void xe_c2s_set_channel_bindings(struct xe_c2s *c, const struct xe_cbind *cb, size_t n);
/* The JIDs a verified client certificate vouches for (after xe_c2s_tls_up):
 * EXTERNAL is offered with them, when configured. */
void xe_c2s_set_peer_identities(struct xe_c2s *c, const char (*ids)[3072], size_t n);
/* Queue a stream error (a header first if none was sent) and the stream end. */
void xe_c2s_stream_error(struct xe_c2s *c, const char *condition, const char *text);
/* Answer the client's restarted stream: our header and the backend's
 * features, given as raw bytes. */
int xe_c2s_answer_restart(struct xe_c2s *c, const unsigned char *features, size_t len);
/* After xe_c2s_answer_restart: the domain offers stream compression (XEP-0138),
 * so the core reads the client's next element before the splice: keep
 * feeding (a <compress/> gives XE_C2S_COMPRESS; anything else XE_C2S_SPLICE). */
bool xe_c2s_compression_offered(const struct xe_c2s *c);
/* After XE_C2S_SPLICE: the raw bytes of the element the core read but leaves
 * to the backend (none after a compressed restart). */
const unsigned char *xe_c2s_splice_bytes(const struct xe_c2s *c, size_t *len_r);

const char *xe_c2s_domain(const struct xe_c2s *c); /* NULL until known */
const char *xe_c2s_jid(const struct xe_c2s *c);    /* after AUTHENTICATED */
const char *xe_c2s_mech(const struct xe_c2s *c);
bool xe_c2s_anonymous(const struct xe_c2s *c); /* the JID is a temporary one */

/* Build a stream error document (with our header if header is true). */
int xe_stream_error_xml(struct xe_buf *out, bool header, const char *domain,
                        const char *id, const char *condition, const char *text);

#endif
