/* xedge: the handshake with a backend server (sans-IO).
 *
 * xedge opens a plaintext stream to the backend, authenticates with SASL
 * PLAIN whose password is the identity assertion, restarts the stream and
 * keeps the backend's features (raw bytes) to hand to the client; for a
 * client that used non-SASL authentication it also binds the resource. */
#ifndef XE_BACKEND_H
#define XE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

enum xe_bhs_result {
    XE_BHS_CONTINUE, /* all input consumed */
    XE_BHS_READY,    /* features received; the rest of the input goes to the client */
    XE_BHS_FAIL,     /* see xe_backend_hs_error() */
};

struct xe_backend_hs;

/* localpart: the PLAIN authcid; token: the assertion. The first output (our
 * stream header) is queued at once. */
struct xe_backend_hs *xe_backend_hs_new(const char *domain, const char *localpart,
                                        const char *token, size_t max_features);
void xe_backend_hs_free(struct xe_backend_hs **b);
enum xe_bhs_result xe_backend_hs_feed(struct xe_backend_hs *b, const void *data,
                                      size_t len, size_t *consumed_r);
struct xe_buf *xe_backend_hs_output(struct xe_backend_hs *b);
/* After XE_BHS_READY: the backend's <stream:features/>, raw. */
const unsigned char *xe_backend_hs_features(const struct xe_backend_hs *b, size_t *len_r);
const char *xe_backend_hs_error(const struct xe_backend_hs *b);
/* The raw start tag of the backend's current stream (after XE_BHS_READY: its
 * post-login stream; the prefixes its features use are declared there). */
const unsigned char *xe_backend_hs_header(const struct xe_backend_hs *b, size_t *len_r);

/* The login sent ahead: right after our stream header, in the same write,
 * without waiting for the backend's first features (a round trip and a
 * wake-up less per login), when the server's kind says which login it takes
 * (conf.h's kind: Prosody with mod_auth_xedge the direct login, ejabberd
 * SASL PLAIN). When the features come they must offer that login;
 * if they do not, the handshake fails (xe_backend_hs_guessed_wrong() true:
 * the caller tries again without it, on a new connection). Call before the
 * first output is taken. */
enum xe_bhs_login { XE_BHS_LOGIN_WAIT, XE_BHS_LOGIN_PLAIN, XE_BHS_LOGIN_DIRECT };
void xe_backend_hs_send_ahead(struct xe_backend_hs *b, enum xe_bhs_login login);
bool xe_backend_hs_guessed_wrong(const struct xe_backend_hs *b);
/* What the backend's first features offered, once parsed (the direct login
 * where offered, else PLAIN; WAIT: neither, or not yet): the login to send
 * ahead to that server next time. */
enum xe_bhs_login xe_backend_hs_offered(const struct xe_backend_hs *b);

/* Non-SASL authentication (XEP-0078): the client does not bind, so after
 * the backend's post-authentication features the handshake binds RESOURCE
 * (and opens a session when the backend requires one: <session/> without
 * <optional/>) and reports READY only on the result; the bytes after the
 * result are the rest of the input. Call before the first feed. */
void xe_backend_hs_bind(struct xe_backend_hs *b, const char *resource);
/* After XE_BHS_FAIL: the stanza error condition with which the backend
 * refused the bind or session (e.g. "conflict"), else NULL. */
const char *xe_backend_hs_bind_error(const struct xe_backend_hs *b);
/* After XE_BHS_READY with a bind: the full JID the backend bound ("" if it
 * did not say). */
const char *xe_backend_hs_bound_jid(const struct xe_backend_hs *b);

#endif
