/* xedge: the c2s login as one sans-IO state machine (issue 14): its typed
 * failures, the timer's decision, and struct xe_sess, which drives the client
 * negotiation (c2s.h) and the backend handshake (backend.h) together from
 * client plaintext, backend bytes, timer expiries and connect results, and
 * answers with bytes for each side and one action for the glue.
 *
 * Every way a login (or a spliced session) can fail that the client sees is
 * one value of enum xe_sess_fail, and xe_sess_outcome() is the one place that
 * says what the client gets (the stream error's condition and text), the
 * event name of the log line and whether the failure is counted as a lost
 * backend. The glue no longer writes conditions and texts at call sites. */
#ifndef XE_SESSION_H
#define XE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "c2s.h"
#include "backend.h"
#include "cbind.h"
#include "sasl.h"
#include "conf.h"
#include "util.h"

#define XE_TEXT_UNAVAILABLE "the service is temporarily unavailable, try again later"
#define XE_TEXT_BUSY "the service is busy, try again later"
#define XE_TEXT_USER_SERVER                                                              \
    "the server that holds this account is unavailable, try again later"

enum xe_sess_fail {
    XE_SF_NONE = 0,
    /* no backend can take the session (down, refused, handshake failed,
     * retries used up): <remote-connection-failed/> */
    XE_SF_BACKEND_UNAVAILABLE,
    /* the same, under a sticky pool without on_down = next: the user's own
     * server is down */
    XE_SF_USER_SERVER_DOWN,
    /* the backend of a spliced session went away without closing its stream */
    XE_SF_BACKEND_LOST,
    /* the backend was ready, the client did not restart its stream in time */
    XE_SF_RESTART_TIMEOUT,
    /* the client's authentication passed its deadline */
    XE_SF_AUTH_TIMEOUT,
    /* the client was idle before authenticating */
    XE_SF_IDLE_TIMEOUT,
    /* the client sent more than the bound while the backend was set up */
    XE_SF_PENDING_OVERFLOW,
    /* the client sent more than the bound while an answer was held */
    XE_SF_HELD_OVERFLOW,
    /* a spliced client stanza over max_stanza_postauth */
    XE_SF_STANZA_TOO_LARGE,
    /* registration after authentication could not start */
    XE_SF_REGISTER_INTERNAL,
    /* the client's compressed data does not inflate (before the compressed
     * stream was answered: a stream error with a header) */
    XE_SF_COMPRESS_CORRUPT,
    /* admission control (admit.h): the server's queue of logins is full
     * (<resource-constraint/>), or the login waited in it until the client's
     * login deadline (<connection-timeout/>). After SASL's <success/>: a
     * stream error, never counted against the server */
    XE_SF_QUEUE_FULL,
    XE_SF_QUEUE_TIMEOUT,
    /* xedge is shutting down */
    XE_SF_SHUTDOWN,
    XE_SF_COUNT
};

struct xe_sess_outcome {
    const char *condition; /* the stream error's condition (RFC 6120 4.9.3) */
    const char *text;      /* its text, or NULL */
    const char *event;     /* the name of the failure in log lines */
    bool backend_lost;     /* also counted in xedge_backend_lost_total */
};

/* The outcome of F (XE_SF_NONE and out of range: XE_SF_BACKEND_UNAVAILABLE's,
 * so that a failure nobody typed still ends as a defined XMPP outcome). */
const struct xe_sess_outcome *xe_sess_outcome(enum xe_sess_fail f);

/* ---- the login timer ------------------------------------------------------
 * One timer per connection; what its expiry means depends on where the login
 * is. The glue fills in where it is, and does what comes back. */

enum xe_sess_phase {
    XE_SP_NEGOTIATING, /* the client negotiates with us (TLS, SASL, ...) */
    XE_SP_BACKEND,     /* authenticated: the backend is being set up */
    XE_SP_SPLICED,     /* the session runs */
    XE_SP_CLOSING      /* the close grace */
};

struct xe_sess_timer_in {
    enum xe_sess_phase phase;
    bool held;            /* an answer is held (failed-authentication delay) */
    bool tls_handshaking; /* the client's TLS handshake is under way */
    bool backend_failed;  /* the backend failed; the error waits for the restart */
    bool backend_ready;   /* the backend's handshake is done */
    bool end_pending;     /* spliced: our stream error waits for a stanza boundary */
    uint64_t now, auth_deadline;
};

enum xe_sess_timer_do {
    XE_ST_NOTHING,
    XE_ST_FINISH_CLOSE,    /* close now (the grace is over) */
    XE_ST_FAIL,            /* the stream error of *fail, then close */
    XE_ST_BACKEND_TIMEOUT, /* the backend did not answer: fail it (retry or not) */
    XE_ST_RELEASE_HELD,    /* send the held answer, resume reading */
    XE_ST_TLS_TIMEOUT,     /* the TLS handshake took too long: close, no error */
    XE_ST_BOUNDARY_TIMEOUT /* the backend's stanza did not end: close */
};

/* What the expiry of the login timer means. *FAIL is set with XE_ST_FAIL
 * (BACKEND_FAIL: the failure the backend's error recorded, e.g.
 * XE_SF_USER_SERVER_DOWN; XE_SF_NONE for the usual one). */
enum xe_sess_timer_do xe_sess_timer(const struct xe_sess_timer_in *in,
                                    enum xe_sess_fail backend_fail,
                                    enum xe_sess_fail *fail);

/* Ordering rule 1: whatever a client pipelined after <starttls/> is dropped
 * (command injection, CVE-2011-0411 style). True when the N bytes at DATA are
 * more than white space, i.e. the drop is worth a log line. */
bool xe_sess_starttls_injection(const char *data, size_t n);

/* ---- the backend side ------------------------------------------------------ */

/* May this login go to another server of its pool after its server failed?
 * IN_HANDSHAKE: the backend connection is set up and its handshake neither
 * done nor failed (once the backend took the session, it stays). SERVER: the
 * failed server's index in POOL (XE_SESS_NO_SERVER: none was chosen).
 * RETRIED: the retries so far. Not for a sticky user whose server holds its
 * data (on_down = error), nor past pools[].retries, nor with one server. */
#define XE_SESS_NO_SERVER ((size_t)-1)
bool xe_sess_may_retry(const struct xe_pool_conf *pool, size_t server, unsigned retried,
                       bool in_handshake);

/* The backend failed for good: when does the client hear it? Between
 * <success/> and its new stream header the error must answer that header
 * (on the stream the client reads), so it waits for the restart, bounded by
 * the timer; else it goes now. */
enum xe_sess_fail_when { XE_SW_NOW, XE_SW_AT_RESTART };
enum xe_sess_fail_when xe_sess_fail_when(bool negotiated_by_us, bool client_restarted,
                                         bool already_failed);

/* Where the two sides meet (ordering rules 3 and 4): the backend's features
 * (or its bind result, for iq-auth) and the client's restart (or its iq). The
 * client is answered only once both are in: its restart with the backend's
 * features, its iq-auth with the result of the bind the backend did. */
enum xe_sess_join {
    XE_SJ_WAIT,           /* one side is not there yet */
    XE_SJ_IQ_AUTH_SPLICE, /* answer the client's iq-auth, then splice */
    XE_SJ_RESTART         /* answer the restart with the features; then, if
                             that answer offered compression, the client's next
                             element decides (rule 6), else splice */
};
enum xe_sess_join xe_sess_join(bool in_backend_phase, bool backend_ready,
                               bool client_restarted, bool iq_auth);

/* ---- the login machine -----------------------------------------------------
 *
 * ORDERING RULES (each one is a test in t/unit/session.c, fed whole and byte
 * by byte; a change that breaks one is a behaviour change a client sees):
 *
 *  R1 Bytes a client pipelines after <starttls/> are dropped (never parsed in
 *     the clear, never handed on): XE_SD_START_TLS stops *used_r at the
 *     element's end; the glue logs the rest (xe_sess_starttls_injection) and
 *     drops it.
 *  R2 A held answer (the failed-authentication delay, lockout.h) is not sent
 *     and nothing more of the client is parsed until xe_sess_timer_fired();
 *     then the answer goes out, what came meanwhile is parsed in order, and
 *     reading resumes (xe_sess_held() false).
 *  R3 The backend's post-authentication features arrive before the client's
 *     restart is answered: the client's new header is answered only once the
 *     backend is ready, with those features; a backend failure between the
 *     client's <success/> and its new header is told as the answer to that
 *     header (bounded by the timer).
 *  R4 iq-auth (XEP-0078) binds before the splice: the client's iq result goes
 *     out only after the backend bound the resource; a bind refusal is the
 *     iq's error, and the stream ends.
 *  R5 Registration answers (in-band registration after authentication) sit
 *     between two of the backend's stanzas: after the splice the glue's
 *     xe_regsplice (register.h) puts them there; the machine hands over with
 *     both streams between stanzas (tested in t/unit/register.c, and here:
 *     the splice happens on a boundary of both sides).
 *  R6 Compression starts on the right byte: after a restart whose answer
 *     offered compression the client's next element decides; after
 *     <compressed/> the very next byte of input is compressed
 *     (XE_SD_START_COMPRESSION returns with *used_r at that byte).
 *  R7 Input the client pipelines before it read our features (after its new
 *     header, or after its iq-auth) is kept, in order, and reaches the
 *     backend right after the machine's own bytes at the splice; the backend's
 *     bytes after its features likewise reach the client after the answer.
 *
 * THE STATES (enum xe_sess_state): NEGOTIATING (the c2s core talks with the
 * client; SASL, iq-auth) <-> TLS (the glue's handshake, after STARTTLS or
 * first on Direct TLS) ; held (a flag of NEGOTIATING: an answer waits) ->
 * BACKEND (authenticated: connect, backend handshake, the join R3/R4) ->
 * COMPRESS_OFFER (the restart was answered with compression offered) ->
 * SPLICED (out of the data path: the glue pumps bytes) | CLOSING.
 *
 * SASL2, BIND2, FAST AND INLINE RESUMPTION (doc/sasl2.md, "Wired"):
 *  - SASL2 (XEP-0388): the c2s core answers <authenticate/>; its success
 *    (XE_C2S_SASL2_AUTHED) comes without a stream restart: the machine goes
 *    to BACKEND with client_restarted already true, as for iq-auth, and the
 *    join answers with <success/> (the authorization identifier, <bound/>,
 *    <token/>, <resumed/>) and the backend's features less what was done
 *    inline, instead of a restart's features.
 *  - Bind2 (XEP-0386) and <resume/>: after the backend's login, the script
 *    (bind2.h) runs over a parser of the backend's stream before the join;
 *    what the backend sends among its answers is held and delivered after
 *    <success>, what follows <enabled/> (or <resumed/>) waits in
 *    client_pending (R7).
 *  - FAST: XE_SD_FAST_VERIFY, xe_sess_fast_verdict(); a token is issued
 *    while the backend is set up (xe_sess_token_wanted/_issued). */

enum xe_sess_state {
    XE_SS_NEGOTIATING,
    XE_SS_TLS, /* the glue runs the TLS handshake: xe_sess_tls_up() next */
    XE_SS_BACKEND,
    XE_SS_COMPRESS_OFFER,
    XE_SS_SPLICED,
    XE_SS_CLOSING
};

enum xe_sess_do {
    XE_SD_NONE,      /* send the outputs; wait for input */
    XE_SD_START_TLS, /* send the output (<proceed/>), start TLS; input dropped (R1) */
    XE_SD_HOLD,      /* stop reading the client; the timer releases (R2) */
    XE_SD_CONNECT,   /* authenticated: choose a server, xe_sess_backend_begin(),
                        connect, then xe_sess_connected() */
    XE_SD_RETRY,     /* the server failed, another may take the login: close the
                        backend connection, then as XE_SD_CONNECT */
    XE_SD_START_COMPRESSION, /* send the output as it is, then compress both ways;
                                the input from *used_r on is compressed (R6) */
    XE_SD_SPLICE,      /* send the outputs, then xe_sess_pending(); from here the glue
                          pumps bytes and the machine is out of the data path */
    XE_SD_CLOSE,       /* send the output (a stream error of xe_sess_failure(), if
                          any), then close */
    XE_SD_FAST_VERIFY, /* a FAST token attempt: stop reading the client (as HOLD),
                         verify xe_sess_fast_request() off the loop, then
                         xe_sess_fast_verdict() */
    XE_SD_REGISTER     /* an in-band registration: stop reading the client, run
                          xe_sess_take_reg_job() off the loop (register_io.h),
                          then xe_sess_reg_done() */
};

/* The brute-force hooks (c2s.h's guard; failed returns the delay owed). */
struct xe_sess_guard {
    bool (*refuse)(void *ctx, const char *account);
    uint64_t (*failed)(void *ctx, const char *account, bool counted, uint64_t now);
    void (*succeeded)(void *ctx, const char *account, uint64_t now);
};

struct xe_sess_params {
    const struct xe_conf *conf;
    bool direct_tls;                   /* TLS is up from the start */
    bool encrypted;                    /* no TLS here, but the transport is
                                          encrypted (plain ws behind a TLS proxy) */
    const char *peer;                  /* for the log */
    const char *transport;             /* "tcp" (NULL) or "websocket": metrics */
    const struct xe_sess_guard *guard; /* NULL: none */
    void *guard_ctx;
};

struct xe_sess;

/* NOW: the loop's time (ms). The first timer is in xe_sess_timer_want(). */
struct xe_sess *xe_sess_new(const struct xe_sess_params *p, uint64_t now);
/* The authentication deadline (the loop's ms; 0: none yet), and a new one
 * (a front-end transport's own first step, such as WebSocket's Upgrade, may
 * shorten it for a while): re-arms the timer before authentication, which
 * the glue applies with its next xe_srv_exec. */
uint64_t xe_sess_auth_deadline(const struct xe_sess *s);
void xe_sess_set_auth_deadline(struct xe_sess *s, uint64_t at, uint64_t now);
void xe_sess_free(struct xe_sess **s);

/* Client plaintext (after TLS and, once compressed, after inflating).
 * *used_r: bytes taken, less than N only with XE_SD_START_TLS (the rest is
 * to be dropped, R1; the glue logs it) and XE_SD_START_COMPRESSION (the rest
 * is compressed, R6). */
enum xe_sess_do xe_sess_client(struct xe_sess *s, const void *data, size_t n,
                               size_t *used_r, uint64_t now);
/* The client's TLS is up (SNI: Direct TLS's, else NULL). */
void xe_sess_tls_up(struct xe_sess *s, const char *sni, uint64_t now);
/* After XE_SD_CONNECT/RETRY: the server chosen (its index in POOL, for the
 * retry decision) and the backend script's inputs; NULL DOMAIN: no server
 * can take the login (FAIL says why). */
enum xe_sess_do xe_sess_backend_begin(struct xe_sess *s, const struct xe_pool_conf *pool,
                                      size_t server, const char *local, const char *token,
                                      enum xe_sess_fail fail);
/* The login to send ahead to the server of the next xe_sess_backend_begin
 * (backend.h), as that server's first features offered last time (the glue
 * remembers it per server: xe_sess_login_offered); WAIT: not known, the
 * server's kind decides (Prosody: the direct login; ejabberd: PLAIN).
 * jabberd2 and a generic server never get a login ahead of their features. */
void xe_sess_set_login_ahead(struct xe_sess *s, enum xe_bhs_login login);
/* What the current server's first features offered, told once (true), to
 * remember for that server's next logins. */
bool xe_sess_login_offered(struct xe_sess *s, enum xe_bhs_login *login_r);
/* The backend connection: connected (OK) or failed (WHY). */
enum xe_sess_do xe_sess_connected(struct xe_sess *s, bool ok, const char *why);
/* Bytes from the backend before the splice; N == 0: it closed (WHY). */
enum xe_sess_do xe_sess_backend(struct xe_sess *s, const void *data, size_t n,
                                const char *why);
/* The login timer expired. */
enum xe_sess_do xe_sess_timer_fired(struct xe_sess *s, uint64_t now);

/* The bytes for each side; the glue sends and empties them (the backend's
 * carry the assertion: wipe with xe_sess_sent). */
struct xe_buf *xe_sess_to_client(struct xe_sess *s);
struct xe_buf *xe_sess_to_backend(struct xe_sess *s);
void xe_sess_sent(struct xe_sess *s);
/* After XE_SD_SPLICE: what each side sent beyond the machine's bytes (R7),
 * moved out to the caller (who frees them); the glue sends them (to_client
 * first) and frees the machine. */
void xe_sess_take_pending(struct xe_sess *s, struct xe_buf *to_client,
                          struct xe_buf *to_backend);
/* After XE_SD_START_COMPRESSION from a re-parse (the bytes the client sent
 * before the restart was answered, or while an answer was held): the
 * compressed rest, which the glue inflates before its own input; it
 * empties it. */
struct xe_buf *xe_sess_compressed_rest(struct xe_sess *s);
/* The timer the glue arms: 0 none wanted since the last call (keep it),
 * 1 arm *ms_r, -1 stop. */
int xe_sess_timer_want(struct xe_sess *s, uint64_t *ms_r);

enum xe_sess_state xe_sess_state(const struct xe_sess *s);
bool xe_sess_held(const struct xe_sess *s);
enum xe_sess_fail xe_sess_failure(const struct xe_sess *s); /* with XE_SD_CLOSE */
/* The backend failure of the last call, to log (NULL: none); *COUNTS_R: it
 * counts against the server (a connect or handshake failure). Taken: it is
 * told once (a second call gives NULL). */
const char *xe_sess_backend_error(struct xe_sess *s, bool *counts_r);
/* The CLOSE was iq-auth's bind refused by the backend (R4): its condition. */
const char *xe_sess_bind_refused(const struct xe_sess *s);
/* The glue closes: what the core queued goes out (a held answer too). */
void xe_sess_closing(struct xe_sess *s);
bool xe_sess_backend_ready(const struct xe_sess *s);
/* The client sent bytes (even a TLS record with no plaintext yet): before
 * authentication the idle time starts again. */
void xe_sess_client_spoke(struct xe_sess *s, uint64_t now);
/* An end the glue decides (shutdown, kick) before the splice: the stream
 * error on the client's stream (a held answer is dropped); XE_SD_CLOSE. */
enum xe_sess_do xe_sess_stream_error(struct xe_sess *s, const char *condition,
                                     const char *text);
/* The c2s core (domain, JID, mechanism, resource...), until freed. */
struct xe_c2s *xe_sess_c2s(struct xe_sess *s);
unsigned xe_sess_retried(const struct xe_sess *s);
uint64_t xe_sess_tried(const struct xe_sess *s); /* servers failed (bits) */
bool xe_sess_iq_auth(const struct xe_sess *s);
bool xe_sess_resumed(const struct xe_sess *s); /* SASL2's inline resumption succeeded */

/* ---- FAST (XEP-0484; doc/sasl2.md) ----
 * TOKENS: the store's handle, CB: the TLS session's channel bindings (after
 * xe_sess_tls_up, before the features): HT-* is offered in SASL2's <inline>
 * for the variants this stream can bind to. NULL TOKENS: no FAST. */
struct xe_tokens;
struct xe_fast_req;
void xe_sess_set_fast(struct xe_sess *s, struct xe_tokens *tokens,
                      const struct xe_cbind *cb, size_t n_cb);
/* After XE_SD_REGISTER: the registration's job (register.h), now the
 * caller's; NULL if none waits. */
struct xe_reg_job;
struct xe_reg_job *xe_sess_take_reg_job(struct xe_sess *s);
/* The job done (run, or busy): its answer, then what the client sent
 * meanwhile. Frees the job (also when the session has moved on). */
enum xe_sess_do xe_sess_reg_done(struct xe_sess *s, struct xe_reg_job *job, uint64_t now);
/* After XE_SD_FAST_VERIFY: what to verify (tokens_io's verify). */
const struct xe_fast_req *xe_sess_fast_request(const struct xe_sess *s);
/* The verify's result (RC XE_SASL_OK with RESPONDER, else XE_SASL_FAIL with
 * COND, DETAIL static): the attempt is answered, reading resumes. */
enum xe_sess_do xe_sess_fast_verdict(struct xe_sess *s, int rc, enum xe_sasl_cond cond,
                                     const char *detail,
                                     const unsigned char responder[32], uint64_t now);
/* After XE_SD_CONNECT, once: does the SASL2 login want a token issued (for
 * *UA_ID_R and *MECH_R; then xe_sess_token_issued, which the answer waits
 * for), and *REVOKE_R the token it used revoked (<fast invalidate/>)? */
bool xe_sess_token_wanted(struct xe_sess *s, const char **ua_id_r, const char **mech_r,
                          bool *revoke_r);
/* The glue issues a token the client did not ask for (a rotation: the one
 * it logged in with is older than fast.rotate_after); right after
 * xe_sess_token_wanted. */
void xe_sess_token_rotate(struct xe_sess *s);
/* The token (NULL: none could be issued; the login goes on without) and
 * its expiry (seconds since the epoch). */
enum xe_sess_do xe_sess_token_issued(struct xe_sess *s, const char *token,
                                     int64_t expiry);

#endif
