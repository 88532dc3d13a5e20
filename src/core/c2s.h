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
    XE_C2S_IQ_AUTHED,     /* non-SASL authentication (XEP-0078) succeeded: open the
                             backend and bind xe_c2s_resource() there; no restart
                             follows, the rest of the input belongs to the backend;
                             then answer with xe_c2s_answer_iq_auth() */
    XE_C2S_COMPRESS,      /* <compressed/> queued: send it as it is, then compress both
                             ways; the rest of the input is compressed: inflate it and
                             keep feeding */
    XE_C2S_SASL2_AUTHED,  /* SASL2 (XEP-0388) succeeded, nothing sent: open the
                             backend (Bind2: xe_c2s_sasl2_request()); no restart
                             follows, the rest of the input belongs to the backend;
                             then answer with xe_c2s_answer_sasl2() */
    XE_C2S_FAST_VERIFY,   /* a FAST token attempt (SASL2 HT-*): its verdict is
                             needed (xe_c2s_fast_pending); then xe_c2s_fast_ready()
                             and feed the element's raw bytes again, then the rest */
    XE_C2S_REGISTER,      /* an in-band registration (register.h) waits for its
                             job (xe_c2s_take_reg_job), run off the loop; then
                             xe_c2s_reg_done() and feed the rest */
    XE_C2S_SPLICE,        /* after a compression offer: the stream is answered; send the
                             output, then xe_c2s_splice_bytes() and the rest of the input
                             to the backend */
};

/* Brute-force protection hooks (optional; lockout.h keeps the counts),
 * called synchronously from xe_c2s_feed, once per attempt. account: the
 * lockout key (lockout.h) of the bare JID the attempt named, "" if none. */
struct xe_c2s_guard {
    /* Before an attempt's credentials are checked: true refuses it (a
     * <failure><not-authorized/> with a text; nothing is checked). */
    bool (*refuse)(void *ctx, const char *account);
    /* An attempt failed. counted: its credentials were checked and were
     * wrong (not a refusal, a malformed request or an unavailable store). */
    void (*failed)(void *ctx, const char *account, bool counted);
    /* An attempt succeeded. */
    void (*succeeded)(void *ctx, const char *account);
};

struct xe_c2s_params {
    const struct xe_conf *conf;
    bool tls;                         /* TLS is up from the start (Direct TLS) */
    const char *peer;                 /* client address, for the log */
    const char *transport;            /* "tcp" (NULL) or "websocket": metrics */
    const struct xe_c2s_guard *guard; /* NULL: none; must outlive the c2s */
    void *guard_ctx;
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

/* The client's address changed before the stream began (a trusted
 * proxy's X-Forwarded-For): for the log. */
void xe_c2s_set_peer(struct xe_c2s *c, const char *peer);
const char *xe_c2s_domain(const struct xe_c2s *c); /* NULL until known */
const char *xe_c2s_jid(const struct xe_c2s *c);    /* after AUTHENTICATED */
const char *xe_c2s_mech(const struct xe_c2s *c);
bool xe_c2s_anonymous(const struct xe_c2s *c); /* the JID is a temporary one */
/* After XE_C2S_IQ_AUTHED: the resource the client asked for (else NULL). */
const char *xe_c2s_resource(const struct xe_c2s *c);
/* Answer the client's iq-auth set once the backend bound its resource:
 * condition NULL queues the iq result; else a stanza error condition (e.g.
 * "conflict", from the backend's bind error) queues the iq error and the
 * stream end. */
void xe_c2s_answer_iq_auth(struct xe_c2s *c, const char *condition);
/* The raw start tag of the client's authenticated stream (after RESTARTED):
 * a parser of what follows it is primed with it. */
const unsigned char *xe_c2s_restart_header(const struct xe_c2s *c, size_t *len_r);

/* ---- SASL2 (XEP-0388, doc/sasl2.md) ---- */
struct xe_sasl2_mech;
struct xe_sasl2_auth;
/* SASL2 is on for the stream's domain (and TLS is up). */
bool xe_c2s_sasl2_enabled(const struct xe_c2s *c);
/* What the login machine can do inline (XE_C2S_INLINE_*; the pool's servers
 * narrow it further), FAST's mechanism OWN (NULL: none) and the HT-* names
 * this stream offers (kept, not copied). Before the features are sent. */
#define XE_C2S_INLINE_BIND2 1u
#define XE_C2S_INLINE_SM 2u     /* SM enable in Bind2 */
#define XE_C2S_INLINE_RESUME 4u /* <resume/> in <authenticate> */
void xe_c2s_set_sasl2(struct xe_c2s *c, unsigned inline_caps,
                      const struct xe_sasl2_mech *own, const char *const *fast_mechs,
                      size_t n_fast);
/* Append the <authentication/> feature (used by the features). */
void xe_c2s_sasl2_features(struct xe_c2s *c, struct xe_buf *out);
/* After XE_C2S_SASL2_AUTHED: the client's <authenticate> (user agent, Bind2,
 * FAST, resume); NULL for other logins. */
const struct xe_sasl2_auth *xe_c2s_sasl2_request(const struct xe_c2s *c);
/* Answer the SASL2 login: <success> (AUTHZID: NULL for the bare JID; EXTRA:
 * <bound/>, <token/>... raw), then FEATURES (the backend's, raw; 0: none). */
int xe_c2s_answer_sasl2(struct xe_c2s *c, const char *authzid, const char *extra,
                        size_t extra_len, const unsigned char *features, size_t flen);
/* After XE_C2S_FAST_VERIFY: the attempt and its raw bytes (to feed again
 * once the verdict is in: xe_c2s_fast_ready() first). */
const struct xe_sasl2_auth *
xe_c2s_fast_pending(const struct xe_c2s *c, const unsigned char **raw_r, size_t *len_r);
void xe_c2s_fast_ready(struct xe_c2s *c);
/* After XE_C2S_REGISTER: the job, now the caller's (NULL if none). */
struct xe_reg_job;
struct xe_reg_job *xe_c2s_take_reg_job(struct xe_c2s *c);
/* The job done (register.h: run or busy): its answer queued; frees it. */
void xe_c2s_reg_done(struct xe_c2s *c, struct xe_reg_job *job);
/* The login path for logs and metrics: sasl1, sasl2, fast (resume: the
 * machine's), "-" before authentication. */
const char *xe_c2s_path(const struct xe_c2s *c);
#endif
